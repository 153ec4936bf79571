#!/usr/bin/env bash
# Installs the Debian packages nrfcloud-gateway needs to build, test and run
# its demo: "apt-get update" and then only the packages that are missing.
# Usage: scripts/deps.sh [build|test|demo|package]   (default: test)
#   package: what scripts/package.sh needs (debhelper, lintian, the arm64
#   cross toolchain and :arm64 libraries, qemu-user); adds the arm64 architecture.
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
  systemd udev valgrind
)

# The Debian package, its cross build for arm64 and the qemu-user run.
package_pkgs=(
  debhelper dpkg-dev fakeroot lintian file pkgconf
  crossbuild-essential-arm64 qemu-user-static
  pkgconf:arm64 libsystemd-dev:arm64 libjansson-dev:arm64 libpaho-mqtt-dev:arm64
  libssl-dev:arm64 libinih-dev:arm64 libcbor-dev:arm64
)

case "${1:-test}" in
  build) want=("${build_pkgs[@]}") ;;
  demo) want=("${build_pkgs[@]}" "${run_pkgs[@]}") ;;
  test) want=("${build_pkgs[@]}" "${run_pkgs[@]}" "${test_pkgs[@]}") ;;
  package) want=("${build_pkgs[@]}" "${package_pkgs[@]}") ;;
  *) echo "usage: $0 [build|test|demo|package]" >&2; exit 64 ;;
esac

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  sudo=(sudo)
fi
added_arch=0
if [ "${1:-test}" = package ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "==> Adding the arm64 architecture to dpkg"
  "${sudo[@]}" dpkg --add-architecture arm64
  added_arch=1
fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ] && [ "$added_arch" -eq 0 ]; then
  echo "==> Debian packages: all ${#want[@]} present"
  exit 0
fi

echo "==> Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
