#!/usr/bin/env bash
# RPC echo benchmark: curve-echo-server + rpc_bench against a raw TCP echo with the same
# 4 KiB payload, measured in the same run (the machine is shared and noisy).
#
#   bash bench/rpc/run.sh <builddir>        (make bench-rpc uses build/release)
#   env: ROUNDS (default 5), SECONDS_PER_RUN (default 1), SIZE (default 4096)
#
# Prints one table row per round and measurement, then the TARGET lines computed from the
# median round:
#   rpc_rtt_1_inflight      mean RPC round trip / mean raw round trip, 1 in flight   (<= 1.5)
#   rpc_tput_32_inflight    RPC calls/s / raw messages/s, 32 in flight              (>= 0.60)
set -euo pipefail

B=${1:-build/release}
ROUNDS=${ROUNDS:-5}
SECS=${SECONDS_PER_RUN:-1}
SIZE=${SIZE:-4096}
SERVER="$B/src/rpc/curve-echo-server"
BENCH="$B/bench/rpc/rpc_bench"
for f in "$SERVER" "$BENCH"; do
    [[ -x "$f" ]] || { echo "run.sh: $f not built (cmake --build $B)" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/curve-bench-rpc.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        # bounded wait, then SIGKILL
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT

# start_server <name> <cmd...>: starts it, waits (bounded) for "listening ADDR", sets ADDR.
# (Not called in a $(...) subshell, so that PIDS reaches the cleanup trap.)
start_server() {
    local name=$1; shift
    "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PIDS+=($!)
    for _ in $(seq 100); do
        if grep -q '^listening ' "$TMP/$name.out"; then
            ADDR=$(awk '/^listening /{print $2; exit}' "$TMP/$name.out")
            return 0
        fi
        sleep 0.05
    done
    echo "run.sh: $name did not start:" >&2
    cat "$TMP/$name.err" >&2
    exit 1
}

# One loop thread on the server side, like the raw server's one thread per connection.
start_server rpc "$SERVER" --listen=127.0.0.1:0 --threads=1
RPC_ADDR=$ADDR
start_server raw "$BENCH" raw-server --listen=127.0.0.1:0
RAW_ADDR=$ADDR

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

echo "# rpc echo benchmark: payload ${SIZE} B, ${SECS} s per run, ${ROUNDS} rounds, $(nproc) cores"
echo "# (shared machine: other processes may be running; compare RPC with raw within a round)"
printf "%-5s %-4s %-8s %12s %12s %12s %12s\n" round kind inflight ops/s rtt_mean_us \
    rtt_p50_us rtt_p99_us
declare -a R1 R32 P1
for r in $(seq "$ROUNDS"); do
    declare -A res=()
    for inflight in 1 32; do
        for kind in raw rpc; do
            addr=$RAW_ADDR; [[ $kind == rpc ]] && addr=$RPC_ADDR
            line=$("$BENCH" "$kind-client" --addr="$addr" --size="$SIZE" \
                   --inflight="$inflight" --seconds="$SECS" | grep '^RESULT')
            ops=$(field ops_per_s <<<"$line")
            mean=$(field rtt_mean_us <<<"$line")
            printf "%-5s %-4s %-8s %12s %12s %12s %12s\n" "$r" "$kind" "$inflight" "$ops" \
                "$mean" "$(field rtt_p50_us <<<"$line")" "$(field rtt_p99_us <<<"$line")"
            res[$kind.$inflight.ops]=$ops
            res[$kind.$inflight.mean]=$mean
            res[$kind.$inflight.p50]=$(field rtt_p50_us <<<"$line")
        done
    done
    R1+=("$(awk -v a="${res[rpc.1.mean]}" -v b="${res[raw.1.mean]}" 'BEGIN{printf "%.3f", a/b}')")
    P1+=("$(awk -v a="${res[rpc.1.p50]}" -v b="${res[raw.1.p50]}" 'BEGIN{printf "%.3f", a/b}')")
    R32+=("$(awk -v a="${res[rpc.32.ops]}" -v b="${res[raw.32.ops]}" 'BEGIN{printf "%.3f", a/b}')")
    unset res
done

median() { printf "%s\n" "$@" | sort -g | awk '{v[NR]=$1} END{print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
m1=$(median "${R1[@]}")
m32=$(median "${R32[@]}")
echo "# per-round rpc/raw round-trip ratio at 1 in flight: ${R1[*]}"
echo "# per-round rpc/raw p50 round-trip ratio at 1 in flight (information): ${P1[*]}"
echo "# per-round rpc/raw throughput ratio at 32 in flight: ${R32[*]}"
ok1=$(awk -v m="$m1" 'BEGIN{print (m <= 1.5) ? "MET" : "MISSED"}')
ok32=$(awk -v m="$m32" 'BEGIN{print (m >= 0.60) ? "MET" : "MISSED"}')
echo "TARGET rpc_rtt_1_inflight_vs_raw measured=${m1}x goal=<=1.50x $ok1"
echo "TARGET rpc_tput_32_inflight_vs_raw measured=${m32}x goal=>=0.60x $ok32"
