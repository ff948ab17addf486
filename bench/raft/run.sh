#!/usr/bin/env bash
# Raft runtime benchmark (make bench-raft): 3 replicas on loopback, 4 KiB entries, 1 and 32
# proposals in flight, against one 4 KiB pwrite+fdatasync on the same disk in the same run.
#
#   bash bench/raft/run.sh <builddir>        (default build/release)
#   env: SECONDS_PER_RUN (default 3), SIZE (default 4096), BENCH_DIR (default /tmp),
#        RAFT_GROUPS (default 16: adds a phase with that many groups, 4 proposals in flight
#        each; run first with a log IO thread per group, then with the default shared log
#        writer per data dir, so both are measured in the same run; 1 = single group only)
#
# Prints a table (p50/p99 commit latency, commits/s, entries per fdatasync) and ends with:
#   TARGET raft_p50_commit_1_inflight  measured=<raft p50 / baseline p50>  goal=2.0
#   TARGET raft_batching_32_inflight   measured=<entries per fdatasync>    goal=8
set -euo pipefail

B=${1:-build/release}
SECS=${SECONDS_PER_RUN:-3}
SIZE=${SIZE:-4096}
DIR=${BENCH_DIR:-/tmp}
BENCH="$B/bench/raft/raft_bench"
[[ -x "$BENCH" ]] || { echo "run.sh: $BENCH not built (cmake --build $B)" >&2; exit 1; }
NG=${RAFT_GROUPS:-16}
echo "raft benchmark: 3 replicas on 127.0.0.1, ${SIZE}-byte entries, ${SECS} s per phase, disk $DIR"
if [[ "$NG" -gt 1 ]]; then
    echo "--- comparison run: a disk-log IO thread per group (raftrt_host_opts.log_thread_per_group)"
    "$BENCH" --seconds="$SECS" --entry-bytes="$SIZE" --dir="$DIR" --groups="$NG" \
        --log-thread-per-group | grep -v '^TARGET'
    echo "--- default: one shared disk-log writer per host data dir"
fi
exec "$BENCH" --seconds="$SECS" --entry-bytes="$SIZE" --dir="$DIR" --groups="$NG"
