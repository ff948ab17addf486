#!/usr/bin/env bash
# `make run`: starts what exists of Curve-C so far and shows it working.
# Today: an RPC echo server on a free port, exercised by the echo client (calls with a 1 MiB
# attachment, every reply verified). The server keeps running; its PID and how to stop it are
# printed at the end. Later issues replace this with a whole local cluster.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${CURVE_BUILD_DIR:-$ROOT/build/release}
SERVER="$B/src/rpc/curve-echo-server"
CLIENT="$B/src/rpc/curve-echo-client"
for f in "$SERVER" "$CLIENT"; do
    [[ -x "$f" ]] || { echo "run.sh: $f is not built (run 'make release')" >&2; exit 1; }
done

RUN_DIR=${CURVE_RUN_DIR:-/tmp/curve-run}
mkdir -p "$RUN_DIR"
OUT="$RUN_DIR/echo-server.out"
ERR="$RUN_DIR/echo-server.log"

# Port 0: the kernel picks a free port and the server prints it.
nohup "$SERVER" --listen=127.0.0.1:0 --threads=2 >"$OUT" 2>"$ERR" </dev/null &
PID=$!
ADDR=""
for _ in $(seq 100); do   # bounded wait (5 s) for "listening IP:PORT"
    ADDR=$(awk '/^listening /{print $2; exit}' "$OUT" 2>/dev/null || true)
    [[ -n "$ADDR" ]] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.05
done
if [[ -z "$ADDR" ]]; then
    echo "run.sh: curve-echo-server did not start; its log:" >&2
    cat "$ERR" >&2
    kill "$PID" 2>/dev/null || true
    exit 1
fi
echo "curve-echo-server (pid $PID) listening on $ADDR"

echo "running curve-echo-client: 64 calls, 8 in flight, 1 MiB attachment each, all verified"
if ! "$CLIENT" --addr="$ADDR" --calls=64 --inflight=8 --attach=1048576; then
    echo "run.sh: the echo client FAILED (server log: $ERR)" >&2
    exit 1
fi
echo "running curve-echo-client: 1000 calls, 32 in flight, attachments 0 B .. 1 MiB"
"$CLIENT" --addr="$ADDR" --calls=1000 --inflight=32 --attach-mixed=1048576

cat <<MSG

The echo server is still running:
  pid     $PID
  address $ADDR
  log     $ERR
Try:  $CLIENT --addr=$ADDR --calls=100 --attach=4096
Stop: kill $PID
MSG
