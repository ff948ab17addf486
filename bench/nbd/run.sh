#!/usr/bin/env bash
# The headline benchmark (`make bench`, `make bench-nbd`): fio over NBD on a local 3-chunkserver
# Curve-C cluster, against the same fio jobs on a plain file in the same directory (the disk's
# limit) and on `nbdkit file` (the NBD path without replication), all in the same run.
#
#   bash bench/nbd/run.sh <builddir>          (default build/release)
#
# env:
#   SECONDS_PER_JOB  measured seconds of every fio job (default 10)
#   RAMP_SECONDS     warm-up of every fio job, not measured (fio ramp_time, default 2)
#   SIZE_MB          working set of every job, MiB (default 128; the volume is rounded up to
#                    the 64 MiB segment; `cluster up` formats 192 MiB of chunk files per
#                    chunkserver, so keep it <= 128)
#   NBD_THREADS      nbdkit worker threads per connection, both exports (default 64, so QD32
#                    is not capped by nbdkit's default of 16)
#   FILL_BS          block size of the sequential fill before the jobs (default 1m)
#   BENCH_DIR        parent of the temporary directory (default /tmp): cluster, baseline file
#                    and nbdkit-file backing file all live in it, on the same file system
#   CURVE_PLUGIN     the nbdkit-curve-plugin.so to export the volume with (default: the one of
#                    <builddir>; e.g. a build of an older commit, to compare client builds on
#                    the same cluster binaries)
#   CURVE_PLUGIN_ARGS  extra parameters of the Curve export, e.g. "client.fast_path_inflight=0"
#                    (space-separated key=value; to compare libcurve settings run by run)
#   KEEP=1           keep the temporary directory (logs, fio JSON) after the run
#   RESULT_JSON      also write the parsed results and targets to this file
#
# Jobs (each run on the three backends back to back, so they see the same machine noise):
#   randwrite_4k_qd1   local: psync + fdatasync after every write (the write+fdatasync
#                      baseline); nbdkit-file: fsync=1 (an NBD flush after each write, as the
#                      nbd engine refuses fdatasync);
#                      curve: plain writes (an acknowledged curve write is already durable on a
#                      Raft quorum, see docs/nbd.md, FUA)
#   randwrite_4k_qd32, randread_4k_qd1, randread_4k_qd32, write_1m_qd8
#                      local: O_DIRECT, io_uring; NBD backends: fio's nbd engine (unix socket)
# The working set is written sequentially first on every backend (reads of unwritten curve
# blocks would return zeros without touching a chunkserver).
#
# Then the libcurve path alone on the same volume (bench/nbd/curve-io-bench, built with the
# plugin; skipped when missing): 4 KiB random writes and reads at QD1/QD32 (AIO) and reads from
# 1 and 32 blocking threads, printed as comment lines above the table.
# Output: the table (IOPS, MiB/s, avg and p99 latency, ratios) and one line per target:
#   TARGET nbd_randwrite_4k_qd1_avg_lat_vs_local_fdatasync measured=<x> goal=<=3.00x MET|MISSED
#   TARGET nbd_randwrite_4k_qd32_iops_vs_local            measured=<x> goal=>=0.20x MET|MISSED
#   TARGET nbd_randread_4k_qd32_iops_vs_local             measured=<x> goal=>=0.40x MET|MISSED
# Everything started (cluster, two nbdkit) is stopped by PID on exit, whatever happens.
# shellcheck disable=SC2317 # stop_pid and cleanup run from the EXIT trap
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
B="$(cd "${1:-build/release}" && pwd)"
SECS=${SECONDS_PER_JOB:-10}
RAMP=${RAMP_SECONDS:-2}
SIZE_MB=${SIZE_MB:-128}
FILL_BS=${FILL_BS:-1m}
NBD_THREADS=${NBD_THREADS:-64}
NBD_START_TIMEOUT_S=30   # bound of waiting for an nbdkit to serve
STOP_TIMEOUT_S=10        # SIGTERM -> SIGKILL
FILL_TIMEOUT_S=120       # bound of filling the working set on one backend
FIO_KILL_AFTER_S=5       # fio ignoring SIGTERM that long (a stuck NBD request) gets SIGKILL
SEGMENT_MB=64            # `curve cluster up` segment size (docs/cli.md)
VOL=/bench

CURVE="$B/tools/curve"
PLUGIN="${CURVE_PLUGIN:-$B/src/nbd/nbdkit-curve-plugin.so}"
for f in "$CURVE" "$PLUGIN" "$B/src/mds/curve-mds" "$B/src/chunkserver/curve-chunkserver"; do
    [[ -e "$f" ]] || { echo "bench-nbd: $f is missing: build first (make release)" >&2; exit 1; }
done
for t in fio nbdkit etcd python3; do
    command -v "$t" >/dev/null || { echo "bench-nbd: $t not installed (make deps)" >&2; exit 1; }
done
[[ "$FILL_BS" =~ ^[0-9]+[km]$ ]] || { echo "bench-nbd: FILL_BS '$FILL_BS': want e.g. 64k, 1m" >&2; exit 2; }
for v in "$SECS" "$RAMP" "$SIZE_MB" "$NBD_THREADS"; do
    [[ "$v" =~ ^[0-9]+$ ]] || { echo "bench-nbd: '$v' is not a non-negative integer" >&2; exit 2; }
done
((SECS >= 1 && SIZE_MB >= 4 && NBD_THREADS >= 1)) || {
    echo "bench-nbd: need SECONDS_PER_JOB >= 1, SIZE_MB >= 4, NBD_THREADS >= 1" >&2; exit 2; }
JOB_TIMEOUT_S=$((SECS + RAMP + 60)) # bound of one measured fio job
VOL_MB=$(((SIZE_MB + SEGMENT_MB - 1) / SEGMENT_MB * SEGMENT_MB))

TMP=$(mktemp -d "${BENCH_DIR:-/tmp}/curve-bench-nbd.XXXXXX")
CL="$TMP/cluster"
OUT="$TMP/fio"
mkdir -p "$OUT"
NBD_PIDS=()
CLUSTER_UP=0

# stop_pid PID NAME: SIGTERM, bounded wait, SIGKILL; only while /proc/PID still is an nbdkit.
stop_pid() {
    local pid=$1 i
    # (stderr first: the Curve export may be stopped already, its /proc entry gone)
    tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q '^nbdkit ' || return 0
    kill "$pid" 2>/dev/null || return 0
    for ((i = 0; i < STOP_TIMEOUT_S * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    echo "bench-nbd: nbdkit $pid ignored SIGTERM for ${STOP_TIMEOUT_S}s: SIGKILL" >&2
    kill -9 "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? p
    trap - EXIT INT TERM
    for p in "${NBD_PIDS[@]}"; do stop_pid "$p"; done
    if ((CLUSTER_UP)); then
        "$CURVE" cluster down --dir="$CL" >/dev/null 2>&1 ||
            echo "bench-nbd: cluster down --dir=$CL failed" >&2
    fi
    if [[ "${KEEP:-0}" == 1 || $rc -ne 0 ]]; then
        echo "# logs and fio JSON kept in $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_nbdkit NAME ARGS...: nbdkit in the foreground (so $! is its PID) on $TMP/NAME.sock;
# waits, bounded, until it wrote its pidfile (it does once it serves). Sets URI.
start_nbdkit() {
    local name=$1 i
    shift
    nbdkit -f --threads="$NBD_THREADS" --unix "$TMP/$name.sock" --pidfile "$TMP/$name.pid" \
        "$@" >"$TMP/nbdkit-$name.log" 2>&1 &
    NBD_PIDS+=($!)
    for ((i = 0; i < NBD_START_TIMEOUT_S * 10; i++)); do
        [[ -s "$TMP/$name.pid" ]] && break
        kill -0 "${NBD_PIDS[-1]}" 2>/dev/null || break
        sleep 0.1
    done
    if [[ ! -s "$TMP/$name.pid" ]]; then
        echo "bench-nbd: nbdkit $name did not start within ${NBD_START_TIMEOUT_S}s:" >&2
        cat "$TMP/nbdkit-$name.log" >&2
        exit 1
    fi
    URI="nbd+unix:///?socket=$TMP/$name.sock"
}

# fio_run BACKEND JOB OUTFILE TIMEOUT_S EXTRA...: one fio job on a backend, killed after
# TIMEOUT_S (a stuck NBD request must not hang the benchmark); measured when OUTFILE is set.
# Returns fio's status (124 = timed out) after printing its log; never exits.
fio_run() {
    local backend=$1 job=$2 out=$3 tmo=$4
    shift 4
    local target=()
    case $backend in
    local) target=(--filename="$TMP/local.dat") ;;
    nbdfile) target=(--ioengine=nbd --uri="$NBDFILE_URI") ;;
    curve) target=(--ioengine=nbd --uri="$CURVE_URI") ;;
    esac
    [[ -n "$out" ]] || out="$TMP/fio-$backend-$job.json"
    local rc=0
    timeout -k "$FIO_KILL_AFTER_S" "$tmo" fio --name="$job" --size="${SIZE_MB}m" \
        "${target[@]}" "$@" --output="$out" --output-format=json \
        >"$TMP/fio-$backend-$job.log" 2>&1 || rc=$?
    if ((rc != 0)); then
        if ((rc == 124 || rc == 137)); then
            echo "bench-nbd: fio $job on $backend did not finish within ${tmo}s" >&2
        else
            echo "bench-nbd: fio $job on $backend failed (exit $rc):" >&2
        fi
        cat "$TMP/fio-$backend-$job.log" >&2 || true
        rm -f "$out" # a partial result must not be read as a measurement
    fi
    return "$rc"
}

echo "# bench-nbd: $(date -u +%FT%TZ), $(nproc) cores, dir $TMP ($(df -T "$TMP" |
    awk 'NR==2{print $2}')), working set ${SIZE_MB} MiB, ${SECS}s per job (+${RAMP}s warm-up)"
echo "# shared machine: other processes may be running; compare backends within one run"
echo "# curve export: $PLUGIN ${CURVE_PLUGIN_ARGS:-(default parameters)}"

echo "# curve cluster up --dir=$CL"
CLUSTER_UP=1
"$CURVE" cluster up --dir="$CL" --wait=120s >"$TMP/cluster-up.log" 2>&1 || {
    echo "bench-nbd: cluster up failed:" >&2; cat "$TMP/cluster-up.log" >&2; exit 1; }
"$CURVE" --conf="$CL/client.conf" bs create volume "$VOL" --size="${VOL_MB}m" >/dev/null

truncate -s "${SIZE_MB}M" "$TMP/nbdfile.dat"
start_nbdkit nbdfile file file="$TMP/nbdfile.dat"
NBDFILE_URI=$URI
# shellcheck disable=SC2086 # CURVE_PLUGIN_ARGS is a list of key=value words
start_nbdkit curve "$PLUGIN" volume="$VOL" conf="$CL/client.conf" ${CURVE_PLUGIN_ARGS:-}
CURVE_URI=$URI
CURVE_NBD_PID=${NBD_PIDS[-1]}

COMMON=(--randrepeat=0 --norandommap --lat_percentiles=1 --time_based --runtime="$SECS"
    --ramp_time="$RAMP")
LOCAL_DIRECT=(--ioengine=io_uring --direct=1)

# A backend whose fio failed or hung is skipped for the remaining jobs (its rows print `-`,
# its targets are MISSED and the script exits 1): nothing is waited for twice.
declare -A BROKEN=()
echo "# filling the working set on every backend (sequential writes of $FILL_BS, QD8)"
for backend in local nbdfile curve; do
    extra=(--rw=write --bs="$FILL_BS" --iodepth=8 --end_fsync=1)
    [[ $backend == local ]] && extra+=("${LOCAL_DIRECT[@]}")
    fio_run "$backend" fill "" "$FILL_TIMEOUT_S" "${extra[@]}" || BROKEN[$backend]=fill
done

# job name, fio options shared by all backends
JOBS=(
    "randwrite_4k_qd1|--rw=randwrite --bs=4k --iodepth=1"
    "randwrite_4k_qd32|--rw=randwrite --bs=4k --iodepth=32"
    "randread_4k_qd1|--rw=randread --bs=4k --iodepth=1"
    "randread_4k_qd32|--rw=randread --bs=4k --iodepth=32"
    "write_1m_qd8|--rw=write --bs=1m --iodepth=8"
)
for entry in "${JOBS[@]}"; do
    job=${entry%%|*}
    read -r -a opts <<<"${entry#*|}"
    for backend in local nbdfile curve; do
        if [[ -n "${BROKEN[$backend]:-}" ]]; then
            echo "# fio $job on $backend: skipped (failed in ${BROKEN[$backend]})"
            continue
        fi
        extra=()
        case "$backend/$job" in
        local/randwrite_4k_qd1) extra=(--ioengine=psync --fdatasync=1) ;;
        local/*) extra=("${LOCAL_DIRECT[@]}") ;;
        nbdfile/randwrite_4k_qd1) extra=(--fsync=1) ;; # fio's nbd engine: fsync = NBD flush
        esac
        echo "# fio $job on $backend"
        fio_run "$backend" "$job" "$OUT/${backend}__${job}.json" "$JOB_TIMEOUT_S" \
            "${opts[@]}" "${COMMON[@]}" "${extra[@]}" || BROKEN[$backend]=$job
    done
done

# The libcurve path alone (no NBD): the same volume through curve-io-bench once the Curve export
# is stopped (one opener at a time), to tell the client's cost from nbdkit's.
IOBENCH="$B/bench/nbd/curve-io-bench"
LIBCURVE_LINES=()
if [[ -x "$IOBENCH" && -z "${BROKEN[curve]:-}" ]]; then
    stop_pid "$CURVE_NBD_PID"
    mds=$(sed -n 's/^mds.addrs=//p' "$CL/client.conf")
    for j in "randwrite 1" "randwrite 32" "randread 1" "randread 32" "randread 1 -S" \
        "randread 32 -S"; do
        read -r rw qd sync <<<"$j"
        echo "# curve-io-bench $rw QD$qd ${sync:+(blocking threads)}"
        # shellcheck disable=SC2086 # $sync is empty or one flag
        line=$(timeout -k "$FIO_KILL_AFTER_S" "$JOB_TIMEOUT_S" "$IOBENCH" -m "$mds" -r "$rw" \
            -q "$qd" -t "$SECS" -s "$((SIZE_MB << 20))" $sync "$VOL" 2>>"$TMP/curve-io-bench.log" |
            grep '^curve-io-bench ') || line="curve-io-bench $rw qd=$qd: failed (see $TMP/curve-io-bench.log)"
        LIBCURVE_LINES+=("$line")
    done
fi

echo
if ((${#LIBCURVE_LINES[@]})); then
    echo "# libcurve alone (no NBD; aio: QD requests circulating from the completion callback;"
    echo "# mode=sync: QD threads in curve_pread/curve_pwrite, like the plugin's nbdkit threads):"
    for l in "${LIBCURVE_LINES[@]}"; do echo "#   $l"; done
fi
args=("$OUT")
[[ -n "${RESULT_JSON:-}" ]] && args+=(--json "$RESULT_JSON")
rc=0
python3 "$SRC/bench/nbd/fio_table.py" "${args[@]}" || rc=$?
if ((${#BROKEN[@]})); then
    for b in "${!BROKEN[@]}"; do echo "# FAILED: backend $b broke in fio job ${BROKEN[$b]}"; done
    echo "# (logs kept in $TMP: cluster/logs, nbdkit-*.log, fio-*.log)"
    KEEP=1
    rc=1
fi
exit "$rc"
