#!/usr/bin/env bash
# What this machine allows (docs/benchmarks.md "What this machine allows"): measures the
# thread wake-up cost and the durable 4 KiB write rates of the disk under BENCH_DIR with
# floor-bench (no Curve-C code), then prints the bounds they put on the write targets of
# bench/chunkserver (issue 4) and bench/nbd (issue 6). Sets no target of its own.
#
#   bash bench/floor/run.sh <builddir>      (make bench-floor uses build/release)
#   env: SECONDS_PER_RUN (default 3), BENCH_DIR (default /tmp)
set -euo pipefail
B="$(cd "${1:-build/release}" && pwd)"
FB="$B/bench/floor/floor-bench"
SECS=${SECONDS_PER_RUN:-3}
[[ -x "$FB" ]] || { echo "run.sh: $FB not built (make release)" >&2; exit 1; }
[[ "$SECS" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: SECONDS_PER_RUN must be a positive integer" >&2; exit 2; }
TMP=$(mktemp -d "${BENCH_DIR:-/tmp}/curve-bench-floor.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

echo "# floor-bench on $(nproc) CPUs, disk under $TMP"
OUT=$("$FB" wake)
echo "$OUT"
for n in 1 8 32; do
    LINE=$("$FB" disk --dir="$TMP" --files="$n" --seconds="$SECS")
    echo "$LINE"
    OUT+=$'\n'"$LINE"
done

val() { # val <line regex> <key>
    echo "$OUT" | grep -E "$1" | head -1 | tr ' ' '\n' | sed -n "s/^$2=//p"; }
wake=$(val '^wake mode=cross_cpu' one_way_us)
wake=${wake:-$(val '^wake mode=same_cpu' one_way_us)}
one=$(val '^disk mode=parallel files=1 ' durable_4k_writes_per_s)
par32=$(val '^disk mode=parallel files=32 ' durable_4k_writes_per_s)
jour32=$(val '^disk mode=journal files=32 ' durable_4k_writes_per_s)
awk -v w="$wake" -v one="$one" -v p="$par32" -v j="$jour32" 'BEGIN {
    t = 1e6 / one
    printf "# local 4 KiB write+fdatasync (one file, QD1): %.0f us\n", t
    printf "# a replicated QD1 write crosses >= 6 sleeping threads in series (client -> leader loop\n"
    printf "#   -> follower loop -> follower log writer -> follower loop -> leader loop -> client):\n"
    printf "#   floor = 6 x %.1f us + %.0f us = %.0f us = %.2fx local write+fdatasync (issue 4 goal <= 2.5x)\n", w, t, 6 * w + t, (6 * w + t) / t
    printf "# durable 4 KiB writes/s into 32 separate files (one fdatasync per copyset log): %.0f\n", p
    printf "#   3 replicas on this one disk: <= %.0f replicated writes/s with a log per copyset\n", p / 3
    printf "# the same 32 blocks as one journal write + one fdatasync: %.0f/s (%.1fx)\n", j, j / p
}'
