#!/usr/bin/env bash
# MDS metadata benchmark: etcd + curve-mds on loopback, then bench/mds/mds_bench runs N raw
# etcd puts (the baseline) and N each of CreateVolume, Stat, GetOrAllocateSegment and Delete
# against the MDS, with the same concurrency, in the same run (the machine is shared and noisy).
#
#   bash bench/mds/run.sh <builddir>        (make bench-mds uses build/release)
#   env: N (default 10000), CONCURRENCY (default 16), ROUNDS (default 3)
#
# TARGET (goal: MDS metadata ops/s >= 50% of raw etcd puts/s), median of the rounds:
#   mds_ops_vs_etcd_put     4N MDS ops / their total time, over raw etcd puts/s
# Per-operation ratios are printed as information.
set -euo pipefail

B=${1:-build/release}
N=${N:-10000}
CONC=${CONCURRENCY:-16}
ROUNDS=${ROUNDS:-3}
MDS="$B/src/mds/curve-mds"
TOOL="$B/src/mds/curve-mds-tool"
BENCH="$B/bench/mds/mds_bench"
ETCD=${ETCD_BIN:-$(command -v etcd || echo /usr/bin/etcd)}
for f in "$MDS" "$TOOL" "$BENCH" "$ETCD"; do
    [[ -x "$f" ]] || { echo "run.sh: $f not built/installed" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/curve-bench-mds.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT

# Free ports are found at run time; another process may take one first: retry (bounded).
for attempt in 1 2 3; do
    read -r CPORT PPORT < <(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
    EP="http://127.0.0.1:$CPORT"
    rm -rf "$TMP/etcd"
    "$ETCD" --name b1 --data-dir "$TMP/etcd" --listen-client-urls "$EP" \
        --advertise-client-urls "$EP" --listen-peer-urls "http://127.0.0.1:$PPORT" \
        --initial-advertise-peer-urls "http://127.0.0.1:$PPORT" \
        --initial-cluster "b1=http://127.0.0.1:$PPORT" >"$TMP/etcd.log" 2>&1 &
    EPID=$!
    PIDS+=($EPID)
    for _ in $(seq 200); do
        curl -sf "$EP/health" >/dev/null 2>&1 && break
        kill -0 "$EPID" 2>/dev/null || break
        sleep 0.05
    done
    curl -sf "$EP/health" >/dev/null 2>&1 && break
    kill "$EPID" 2>/dev/null || true
done
curl -sf "$EP/health" >/dev/null || { echo "run.sh: etcd did not start" >&2; cat "$TMP/etcd.log" >&2; exit 1; }

"$MDS" --etcd-endpoints="$EP" --port=0 --admin-port=0 --chunk-size=4m --segment-size=64m \
    --min-volume-size=64m --workers=32 >"$TMP/mds.out" 2>"$TMP/mds.err" &
PIDS+=($!)
for _ in $(seq 200); do grep -q '^leader serving' "$TMP/mds.out" && break; sleep 0.05; done
ADDR=$(awk '/^leader serving/{print $3; exit}' "$TMP/mds.out")
[[ -n "$ADDR" ]] || { echo "run.sh: curve-mds did not start" >&2; cat "$TMP/mds.err" >&2; exit 1; }

cat >"$TMP/topo.json" <<JSON
{"physical_pools": [{"name": "pp1"}],
 "zones": [{"name": "z1", "physical_pool": "pp1"}, {"name": "z2", "physical_pool": "pp1"},
           {"name": "z3", "physical_pool": "pp1"}],
 "servers": [{"name": "s1", "zone": "z1", "host": "127.0.0.11"},
             {"name": "s2", "zone": "z2", "host": "127.0.0.12"},
             {"name": "s3", "zone": "z3", "host": "127.0.0.13"}],
 "logical_pools": [{"name": "lp1", "physical_pool": "pp1", "replicas": 3, "copysets": 100}]}
JSON
T() { "$TOOL" --addr="$ADDR" "$@" >/dev/null; }
T apply-topology "$TMP/topo.json"
for i in 1 2 3; do T register 127.0.0.1$i 8200 $((1 << 40)) /data; done
for _ in $(seq 100); do
    "$TOOL" --addr="$ADDR" status | grep -q '"copysets":100' && break; sleep 0.1
done
T mkdir /bench

echo "# mds benchmark: N=$N, concurrency $CONC, $ROUNDS rounds, $(nproc) cores, single-member etcd (fsync)"
echo "# (shared machine: compare the MDS with raw etcd within a round; TARGETs use the median round)"
declare -A RATIOS=()
for r in $(seq "$ROUNDS"); do
    OUT=$("$BENCH" --mds="$ADDR" --etcd="$EP" --n="$N" --concurrency="$CONC" --round="$r") || \
        echo "# round $r: mds_bench reported errors (see first_error)"
    echo "$OUT" | sed "s/^/round $r: /"
    rate() { awk -v p="$1" '$1=="RESULT" {for(i=2;i<=NF;i++){split($i,kv,"="); v[kv[1]]=kv[2]}
            if (v["phase"]==p) print v["ops_per_s"]}' <<<"$OUT"; }
    secs() { awk -v p="$1" '$1=="RESULT" {for(i=2;i<=NF;i++){split($i,kv,"="); v[kv[1]]=kv[2]}
            if (v["phase"]==p) print v["seconds"]}' <<<"$OUT"; }
    PUT=$(rate etcd_put)
    TOTAL_S=$(awk -v a="$(secs create)" -v b="$(secs stat)" -v c="$(secs segment)" \
              -v d="$(secs delete)" 'BEGIN{print a+b+c+d}')
    ALL=$(awk -v n="$N" -v s="$TOTAL_S" 'BEGIN{printf "%.1f", 4*n/s}')
    ratio() { awk -v a="$1" -v b="$PUT" 'BEGIN{printf "%.2f", a/b}'; }
    RATIOS[all]+="$(ratio "$ALL") "
    for op in create stat segment delete; do
        RATIOS[$op]+="$(ratio "$(rate $op)") "
    done
    echo "# round $r: raw etcd put/s $PUT, MDS ops/s over the 4 phases $ALL"
done
median() { printf "%s\n" $@ | sort -g | awk '{v[NR]=$1} END{print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
met() { awk -v r="$1" 'BEGIN{print (r >= 0.5) ? "MET" : "MISSED"}'; }
for k in create stat segment delete; do
    echo "# mds_${k}_vs_etcd_put per round: ${RATIOS[$k]} (median $(median ${RATIOS[$k]})x)"
done
echo "# all MDS ops vs etcd put per round: ${RATIOS[all]}"
M=$(median ${RATIOS[all]})
echo "TARGET mds_ops_vs_etcd_put measured=${M}x goal=>=0.50x $(met "$M")"
