#!/usr/bin/env bash
# Installs every Debian 12 package Curve-C needs. Idempotent; quiet when all is present.
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
  libuv1-dev libprotobuf-c-dev protobuf-c-compiler libisal-dev libmicrohttpd-dev
  libcmocka-dev libcurl4-openssl-dev libjansson-dev liburing-dev
  libfuse3-dev fuse3 libucx-dev ucx-utils
  nbdkit nbdkit-plugin-dev libnbd-bin libnbd-dev fio qemu-utils
  etcd-server etcd-client prometheus
  python3 python3-pytest curl procps psmisc iproute2 iptables nftables
)
missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/curve-apt.log 2>&1; then
  $SUDO apt-get update -qq >/dev/null
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/curve-apt.log 2>&1 \
    || { cat /tmp/curve-apt.log; exit 1; }
fi
