#!/usr/bin/env bash
# `make run`: start a local Curve-C cluster (etcd, 3 MDS, 3 chunkservers), create a volume,
# export it with nbdkit, copy 64 MiB of random data in with nbdcopy, read it back, compare
# checksums, print `curve bs status`, and say how to stop it (`make stop`).
# The RPC echo demo of the first milestone is still available: see docs/rpc.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
exec bash "$ROOT/tools/curve-demo.sh" "${CURVE_BUILD_DIR:-$ROOT/build/release}"
