#!/usr/bin/env bash
# Chunkserver benchmark: 4 KiB random writes and reads to one copyset of 3 chunkservers on
# 127.0.0.1 (curve-chunk-tool bench), against fio on a plain file in the same directory, in the
# same run (the machine is shared and noisy).
#
#   bash bench/chunkserver/run.sh <builddir>      (make bench-chunkserver uses build/release)
#   env: ROUNDS (default 3), SECONDS_PER_RUN (default 3), BENCH_DIR (default /tmp)
#
# cs_cpu_us_op: CPU time (user + system, /proc/<pid>/stat) of the three chunkservers per
# operation — less distorted by a loaded machine than latency or IOPS; compare it between
# builds measured back to back.
#
# Baselines (fio, 4 KiB, file of 64 MiB):
#   local_w1   randwrite, psync, fdatasync after every write, QD1  (latency = 1 / IOPS)
#   local_w32  randwrite, O_DIRECT, libaio, QD32                   (IOPS)
#   local_r32  randread,  O_DIRECT, libaio, QD32                   (IOPS)
# TARGET lines from the median round:
#   chunkserver_qd1_write_latency_vs_local   cs QD1 write latency / local_w1 latency  (<= 2.5)
#   chunkserver_qd32_write_iops_vs_local     cs QD32 write IOPS / local_w32 IOPS      (>= 0.25)
#   chunkserver_qd32_read_iops_vs_local      cs QD32 read IOPS / local_r32 IOPS       (>= 0.50)
set -euo pipefail

B=${1:-build/release}
ROUNDS=${ROUNDS:-3}
SECS=${SECONDS_PER_RUN:-3}
CS="$B/src/chunkserver/curve-chunkserver"
TOOL="$B/src/chunkserver/curve-chunk-tool"
for f in "$CS" "$TOOL"; do
    [[ -x "$f" ]] || { echo "run.sh: $f not built (cmake --build $B)" >&2; exit 1; }
done
command -v fio >/dev/null || { echo "run.sh: fio not installed" >&2; exit 1; }

TMP=$(mktemp -d "${BENCH_DIR:-/tmp}/curve-bench-cs.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PEERS=()
for i in 1 2 3; do
    port=$(free_port)
    "$CS" --data-dir="$TMP/cs$i" --port="$port" --pool.target-files=8 --pool.min-ready=8 \
        --pool.reserve-bytes=0 --log-file="$TMP/cs$i.log" >"$TMP/cs$i.out" 2>"$TMP/cs$i.err" &
    PIDS+=($!)
    PEERS+=("127.0.0.1:$port")
done
for i in 1 2 3; do
    for _ in $(seq 600); do grep -q '^listening ' "$TMP/cs$i.out" && break; sleep 0.1; done
    grep -q '^listening ' "$TMP/cs$i.out" || { echo "run.sh: cs$i did not start" >&2;
        cat "$TMP/cs$i.err" "$TMP/cs$i.log" >&2; exit 1; }
done
PLIST=$(IFS=,; echo "${PEERS[*]}")
CSPEERS=$(printf "%s:0," "${PEERS[@]}"); CSPEERS=${CSPEERS%,}
for p in "${PEERS[@]}"; do
    "$TOOL" --addr="$p" create-copyset --pool=1 --copyset=1 --peers="$CSPEERS" 2>/dev/null |
        grep -q COPYSET_OK || { echo "run.sh: create-copyset on $p failed" >&2; exit 1; }
done

jnum() { python3 -c "import json,sys; d=json.loads(sys.stdin.read()); print($1)"; }
fio_run() { # fio_run <rw> <extra...>: prints IOPS
    local rw=$1; shift
    fio --name=b --filename="$TMP/fio.dat" --size=64m --bs=4k --rw="$rw" --time_based \
        --runtime="$SECS" --randrepeat=0 --output-format=json "$@" 2>/dev/null |
        jnum "d['jobs'][0]['${rw#rand}']['iops']"
}
# CPU time (user + system, clock ticks) of the three chunkservers: a per-write cost that the
# machine's load does not distort the way it distorts latency and IOPS.
cs_ticks() { for p in "${PIDS[@]}"; do awk '{print $14 + $15}' "/proc/$p/stat"; done |
    awk '{s += $1} END {print s}'; }
cs_run() { # cs_run <op> <qd>: prints the tool's JSON line; the daemons' CPU µs per op -> $TMP/cpu_last
    local t0 t1 out
    t0=$(cs_ticks)
    out=$("$TOOL" --peers="$PLIST" bench --pool=1 --copyset=1 --op="$1" --qd="$2" \
        --seconds="$SECS" --chunks=4 2>/dev/null | tail -1)
    t1=$(cs_ticks)
    echo "$out"
    local hz; hz=$(getconf CLK_TCK)
    awk -v d=$((t1 - t0)) -v hz="$hz" -v o="$(jnum "d['ops']" <<<"$out")" \
        'BEGIN{printf "%.1f", (o > 0) ? d * 1e6 / hz / o : 0}' >"$TMP/cpu_last"
}

echo "# chunkserver benchmark: 4 KiB random IO, ${SECS} s per run, ${ROUNDS} rounds, $(nproc) cores"
echo "# 3 chunkservers on 127.0.0.1, one copyset; baseline fio on $TMP (same file system)"
printf "%-5s %-22s %12s %14s %14s\n" round measurement iops lat_avg_us cs_cpu_us_op
declare -a RW1 RW32 RR32
for r in $(seq "$ROUNDS"); do
    lw1=$(fio_run randwrite --ioengine=psync --fdatasync=1 --iodepth=1)
    lw32=$(fio_run randwrite --ioengine=libaio --direct=1 --iodepth=32)
    lr32=$(fio_run randread --ioengine=libaio --direct=1 --iodepth=32)
    cw1=$(cs_run write 1); c1=$(cat "$TMP/cpu_last")
    cw32=$(cs_run write 32); c32=$(cat "$TMP/cpu_last")
    cr32=$(cs_run read 32); cr=$(cat "$TMP/cpu_last")
    cw1i=$(jnum "d['iops']" <<<"$cw1"); cw32i=$(jnum "d['iops']" <<<"$cw32")
    cr32i=$(jnum "d['iops']" <<<"$cr32")
    for e in "$cw1" "$cw32" "$cr32"; do
        [[ $(jnum "d['errors']" <<<"$e") == 0 ]] || { echo "run.sh: bench errors: $e" >&2; exit 1; }
    done
    lat() { awk -v i="$1" 'BEGIN{printf "%.1f", 1e6 / i}'; }
    printf "%-5s %-22s %12.0f %14s\n" "$r" local_write_fdatasync_qd1 "$lw1" "$(lat "$lw1")"
    printf "%-5s %-22s %12.0f %14s\n" "$r" local_write_direct_qd32 "$lw32" "-"
    printf "%-5s %-22s %12.0f %14s\n" "$r" local_read_direct_qd32 "$lr32" "-"
    avg() { jnum "round(d['lat_avg_us'], 1)" <<<"$1"; }
    printf "%-5s %-22s %12.0f %14s %14s\n" "$r" cs_write_qd1 "$cw1i" "$(avg "$cw1")" "$c1"
    printf "%-5s %-22s %12.0f %14s %14s\n" "$r" cs_write_qd32 "$cw32i" "$(avg "$cw32")" "$c32"
    printf "%-5s %-22s %12.0f %14s %14s\n" "$r" cs_read_qd32 "$cr32i" "$(avg "$cr32")" "$cr"
    RW1+=("$(awk -v c="$cw1i" -v l="$lw1" 'BEGIN{printf "%.3f", l / c}')")
    RW32+=("$(awk -v c="$cw32i" -v l="$lw32" 'BEGIN{printf "%.3f", c / l}')")
    RR32+=("$(awk -v c="$cr32i" -v l="$lr32" 'BEGIN{printf "%.3f", c / l}')")
done

median() { printf "%s\n" "$@" | sort -g | awk '{v[NR]=$1} END{print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
m1=$(median "${RW1[@]}"); m32=$(median "${RW32[@]}"); r32=$(median "${RR32[@]}")
echo "# per-round QD1 write latency ratio cs/local: ${RW1[*]}"
echo "# per-round QD32 write IOPS ratio cs/local: ${RW32[*]}"
echo "# per-round QD32 read IOPS ratio cs/local: ${RR32[*]}"
ok() { awk -v m="$1" -v g="$2" -v op="$3" 'BEGIN{print ((op == "le") ? (m <= g) : (m >= g)) ? "MET" : "MISSED"}'; }
echo "TARGET chunkserver_qd1_write_latency_vs_local measured=${m1}x goal=<=2.50x $(ok "$m1" 2.5 le)"
echo "TARGET chunkserver_qd32_write_iops_vs_local measured=${m32}x goal=>=0.25x $(ok "$m32" 0.25 ge)"
echo "TARGET chunkserver_qd32_read_iops_vs_local measured=${r32}x goal=>=0.50x $(ok "$r32" 0.50 ge)"
