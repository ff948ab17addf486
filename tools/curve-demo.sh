#!/usr/bin/env bash
# The `make run` demo (proposed body of scripts/run.sh): start a local Curve-C cluster, create a
# volume, export it with nbdkit, copy 64 MiB of random data in with nbdcopy, read it back,
# compare checksums, print `curve bs status`, and say how to stop everything.
#
#   tools/curve-demo.sh [BUILD_DIR]          run the demo (default build/release; env
#                                            CURVE_RUN_DIR = cluster dir, default BUILD_DIR/run-cluster)
#   tools/curve-demo.sh --stop [BUILD_DIR]   stop the demo's nbdkit and cluster (for `make stop`)
#
# Every wait is bounded; on failure whatever was started is stopped again.
set -euo pipefail

STOP=0
if [[ "${1:-}" == "--stop" ]]; then
    STOP=1
    shift
fi
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
B="$(cd "${1:-${CURVE_BUILD_DIR:-$SRC/build/release}}" && pwd)"
D="${CURVE_RUN_DIR:-$B/run-cluster}"
CURVE="$B/tools/curve"
PLUGIN="$B/src/nbd/nbdkit-curve-plugin.so"
VOL=/demo
COPY_MB=64
NBD_START_TIMEOUT_S=30

for f in "$CURVE" "$PLUGIN"; do
    [[ -e "$f" ]] || { echo "run: $f is missing: build first (make release)" >&2; exit 1; }
done
for t in nbdkit nbdcopy etcd sha256sum; do
    command -v "$t" >/dev/null || { echo "run: $t not installed (make deps)" >&2; exit 1; }
done

say() { printf '\n==> %s\n' "$*"; }

stop_all() {
    if [[ -f "$D/nbdkit.pid" ]]; then
        local pid
        pid="$(cat "$D/nbdkit.pid")"
        # only if that PID still is our nbdkit
        if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "nbdkit.*$PLUGIN"; then
            kill "$pid" || true
        fi
        rm -f "$D/nbdkit.pid"
    fi
    "$CURVE" cluster down --dir="$D" >/dev/null 2>&1 || true
}

on_error() {
    echo "run: FAILED (logs in $D/logs); stopping what was started" >&2
    stop_all
}

if ((STOP)); then
    if [[ -f "$D/cluster.json" ]]; then
        stop_all
        echo "stopped the demo in $D"
    else
        echo "no demo running in $D"
    fi
    exit 0
fi

# A previous demo in the same directory is stopped and wiped first.
if [[ -f "$D/cluster.json" ]]; then
    say "stopping the previous demo cluster in $D"
    stop_all
fi
rm -rf "$D"
mkdir -p "$D"
trap on_error ERR

say "curve cluster up --dir=$D   (etcd, 3 MDS, 3 chunkservers on 127.0.0.1)"
"$CURVE" cluster up --dir="$D" --wait=120s
CONF="$D/client.conf"

say "curve bs create volume $VOL --size=128m"
"$CURVE" --conf="$CONF" bs create volume "$VOL" --size=128m

say "nbdkit curve volume=$VOL (unix socket $D/nbd.sock)"
nbdkit --unix "$D/nbd.sock" --pidfile "$D/nbdkit.pid" "$PLUGIN" \
    volume="$VOL" conf="$CONF" 2>"$D/logs/nbdkit.log"
for ((i = 0; i < NBD_START_TIMEOUT_S * 10; i++)); do
    [[ -s "$D/nbdkit.pid" ]] && break
    sleep 0.1
done
[[ -s "$D/nbdkit.pid" ]] || { echo "run: nbdkit did not start" >&2; false; }
URI="nbd+unix:///?socket=$D/nbd.sock"

say "nbdcopy $COPY_MB MiB of random data into the volume and back"
head -c "${COPY_MB}M" /dev/urandom >"$D/random.bin"
nbdcopy --flush "$D/random.bin" "$URI"
nbdcopy "$URI" "$D/readback.bin"
SUM_IN="$(sha256sum <"$D/random.bin" | cut -d' ' -f1)"
SUM_OUT="$(head -c "${COPY_MB}M" "$D/readback.bin" | sha256sum | cut -d' ' -f1)"
echo "written  sha256 $SUM_IN"
echo "readback sha256 $SUM_OUT"
if [[ "$SUM_IN" != "$SUM_OUT" ]]; then
    echo "run: CHECKSUM MISMATCH" >&2
    false
fi
echo "checksums match"
rm -f "$D/random.bin" "$D/readback.bin"

say "curve bs status"
"$CURVE" --conf="$CONF" bs status
trap - ERR

cat <<EOT

The volume $VOL stays exported at $URI
(e.g. nbdinfo '$URI', qemu-img info '$URI', fio --ioengine=nbd --uri='$URI' ...).
CLI:    $CURVE --conf=$CONF bs list volume /
Stop:   make stop   (or: $0 --stop $B; or by hand:
        kill \$(cat $D/nbdkit.pid); $CURVE cluster down --dir=$D)
EOT
