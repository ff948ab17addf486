#!/usr/bin/env bash
# Raft disk log benchmark: closed-loop appends at 1 and 32 concurrent appenders against a plain
# 4 KiB pwrite+fdatasync loop on the same disk, measured in the same run.
#
#   bash bench/raftlog/run.sh <builddir>        (make bench-raftlog uses build/release)
#   env: SECONDS_PER_RUN (default 3), SIZE (entry bytes, default 4096), DIR (default $TMPDIR)
#
# Last line: TARGET raftlog_batching measured=<entries per fdatasync at 32> goal=8 MET|MISSED
set -euo pipefail

B=${1:-build/release}
SECS=${SECONDS_PER_RUN:-3}
SIZE=${SIZE:-4096}
DIR=${DIR:-${TMPDIR:-/tmp}}
BENCH="$B/bench/raftlog/raftlog_bench"
[[ -x "$BENCH" ]] || { echo "run.sh: $BENCH not built (cmake --build $B)" >&2; exit 1; }
# The benchmark creates and removes its own temporary directory under $DIR.
CURVE_LOG_LEVEL=${CURVE_LOG_LEVEL:-warn} exec "$BENCH" --seconds="$SECS" --entry-bytes="$SIZE" \
    --dir="$DIR"
