#!/usr/bin/env bash
# Installs the Debian packages nrfcloud-gateway needs to build, test and run
# its demo: "apt-get update" and then only the packages that are missing.
# Usage: scripts/deps.sh [build|test|demo]   (default: test, which is all)
set -euo pipefail

build_pkgs=(
  build-essential cmake pkg-config
  libsystemd-dev libjansson-dev libpaho-mqtt-dev libssl-dev
  libcmocka-dev libinih-dev libcbor-dev
)
run_pkgs=(
  openssl mosquitto dbus python3 python3-dbusmock socat util-linux procps
)
test_pkgs=(
  clang llvm libclang-rt-14-dev python3-cryptography iproute2
  gcc-arm-none-eabi libnewlib-arm-none-eabi binutils-arm-none-eabi
  systemd
)

case "${1:-test}" in
  build) want=("${build_pkgs[@]}") ;;
  demo) want=("${build_pkgs[@]}" "${run_pkgs[@]}") ;;
  test) want=("${build_pkgs[@]}" "${run_pkgs[@]}" "${test_pkgs[@]}") ;;
  *) echo "usage: $0 [build|test|demo]" >&2; exit 64 ;;
esac

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "==> Debian packages: all ${#want[@]} present"
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  sudo=(sudo)
fi
echo "==> Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
