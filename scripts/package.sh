#!/usr/bin/env bash
# Builds the Debian packages and checks them:
#   1. dpkg-buildpackage -b for the build machine (amd64), then lintian (no errors);
#   2. the .debs installed into a throwaway root: files, user, unit, conffile,
#      the demo run from the installed files, and a reinstall that keeps an
#      edited gateway.conf;
#   3. dpkg-buildpackage -a arm64 (cross), and the arm64 programs run under
#      qemu-user: --version, --check-config on the shipped configuration, and
#      one end-to-end session test (TLS=host) against the amd64 broker and
#      stand-in cloud of the test suite.
# Needs the "package" set of scripts/deps.sh and a GCC build in ./build (for
# the amd64 test parts).  Prints how long each step took.  The arm64 programs
# run through qemu-aarch64-static directly: no binfmt_misc registration needed
# (containers often cannot have one).
#   --no-cross   skip step 3
#   --out DIR    where the .debs go (default: build-deb/)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
out=$top/build-deb
cross=1

usage() { sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --no-cross) cross=0 ;;
    --out) out=$(realpath -m "$2"); shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option $1; see --help" >&2; exit 64 ;;
  esac
  shift
done

jobs=$(nproc)
step() { printf '\n==> %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
elapsed() { echo "time: $(( $(date +%s) - $1 )) s"; }

rm -rf "$out"
mkdir -p "$out"

# A clean copy of the sources: the packaging must not see build trees.
copy_sources() {
  local dst=$1
  mkdir -p "$dst"
  if git rev-parse --git-dir >/dev/null 2>&1; then
    git ls-files -co --exclude-standard | tar -cf - -T - | tar -xf - -C "$dst"
  else
    tar -cf - --exclude='./build*' --exclude=./.demo . | tar -xf - -C "$dst"
  fi
}

build_arch() {
  local arch=$1 src=$out/src-$1 t
  t=$(date +%s)
  copy_sources "$src/nrfcloud-gateway"
  local a=()
  [ "$arch" = "$(dpkg --print-architecture)" ] || a=(-a "$arch")
  if ! (cd "$src/nrfcloud-gateway" && dpkg-buildpackage "${a[@]}" -us -uc -b -j"$jobs") >"$out/build-$arch.log" 2>&1; then
    tail -n 40 "$out/build-$arch.log"
    fail "dpkg-buildpackage ${a[*]} (log: $out/build-$arch.log)"
  fi
  mv "$src"/*.deb "$src"/*.changes "$src"/*.buildinfo "$out"/
  rm -rf "$src"
  elapsed "$t"
}

host=$(dpkg --print-architecture)
step "dpkg-buildpackage -b ($host)"
build_arch "$host"
ls -1 "$out"/*.deb

step "lintian"
t=$(date +%s)
# Kept warnings (and why) are listed in debian/README.source.
lintian --fail-on error --allow-root "$out"/nrfcloud-gateway_*_"$host".changes
elapsed "$t"

step "Install into a throwaway root"
t=$(date +%s)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/etc"
touch "$root/var/lib/dpkg/status"
# Maintainer scripts run outside a chroot with DPKG_ROOT set (debhelper's
# snippets honour it: systemd-sysusers --root, deb-systemd-helper).
dpkg_root() {
  dpkg --root="$root" --force-script-chrootless --force-depends --force-not-root \
       --log=/dev/null "$@"
}
gw_deb=$(ls "$out"/nrfcloud-gateway_*_"$host".deb)
sim_deb=$(ls "$out"/nrfcloud-gateway-sim_*_"$host".deb)
dpkg_root -i "$gw_deb" "$sim_deb" >"$out/install.log" 2>&1 || { cat "$out/install.log"; fail "dpkg -i"; }
for f in usr/sbin/nrfcloud-gatewayd usr/bin/nrfcloud-gatewayctl \
         lib/systemd/system/nrfcloud-gatewayd.service usr/lib/sysusers.d/nrfcloud-gateway.conf \
         usr/lib/systemd/catalog/nrfcloud-gateway.catalog lib/udev/rules.d/70-nrfcloud-gateway.rules \
         usr/share/dbus-1/system.d/io.github.nrfcloud_gateway.Gateway1.conf etc/nrfcloud-gateway/gateway.conf \
         usr/share/dbus-1/interfaces/io.github.nrfcloud_gateway.Gateway1.xml \
         usr/share/man/man8/nrfcloud-gatewayd.8.gz usr/share/man/man5/nrfcloud-gateway.conf.5.gz \
         usr/share/man/man1/nrfcloud-gatewayctl.1.gz usr/bin/nrf91-sim usr/bin/nrfcloud-gateway-demo; do
  [ -e "$root/$f" ] || fail "$f missing after installation"
done
# The simulator belongs to -sim only.
dpkg-deb -c "$gw_deb" | grep -q nrf91-sim && fail "nrf91-sim in nrfcloud-gateway"
grep -q '^nrfcloud-gateway:' "$root/etc/passwd" || fail "no nrfcloud-gateway user in etc/passwd"
grep -q '^nrfcloud-gateway:' "$root/etc/group" || fail "no nrfcloud-gateway group"
[ -L "$root/etc/systemd/system/multi-user.target.wants/nrfcloud-gatewayd.service" ] ||
  fail "the unit is not enabled"
grep -qx /etc/nrfcloud-gateway/gateway.conf "$root/var/lib/dpkg/info/nrfcloud-gateway.conffiles" ||
  fail "gateway.conf is not a conffile"
grep -q '^Port=/dev/nrf91' "$root/etc/nrfcloud-gateway/gateway.conf" ||
  grep -q "^#Port=/dev/nrf91" "$root/etc/nrfcloud-gateway/gateway.conf" || fail "the shipped config does not use /dev/nrf91"
echo "files, user, group, enabled unit and conffile: ok"

# nrfcloud-gateway-sim: the demo runs from the installed files (its "build"
# folder holds relative links to the installed programs, here inside the root).
demo_work=$(mktemp -d)
if ! timeout 300 /usr/bin/python3 "$root/usr/share/nrfcloud-gateway-sim/scripts/demo.py" \
     --workdir "$demo_work/demo" --duration 5 >"$out/demo.log" 2>&1; then
  tail -n 30 "$out/demo.log"
  fail "the installed demo (log: $out/demo.log)"
fi
rm -rf "$demo_work"
echo "the installed demo runs: ok"

# An operator's edit survives a reinstall (an upgrade with the same conffile).
echo "# edited by the operator" >>"$root/etc/nrfcloud-gateway/gateway.conf"
dpkg_root -i "$gw_deb" >>"$out/install.log" 2>&1 || { cat "$out/install.log"; fail "reinstall"; }
grep -q '^# edited by the operator' "$root/etc/nrfcloud-gateway/gateway.conf" || fail "the reinstall overwrote gateway.conf"
echo "reinstall keeps the edited gateway.conf: ok"
dpkg_root -r nrfcloud-gateway-sim nrfcloud-gateway >>"$out/install.log" 2>&1 || { cat "$out/install.log"; fail "dpkg -r"; }
[ ! -e "$root/usr/sbin/nrfcloud-gatewayd" ] || fail "the daemon is still there after removal"
[ -e "$root/etc/nrfcloud-gateway/gateway.conf" ] || fail "removal (not purge) deleted the conffile"
echo "removal keeps the configuration: ok"
elapsed "$t"

if [ "$cross" -eq 0 ]; then
  exit 0
fi

step "dpkg-buildpackage -a arm64 (cross)"
build_arch arm64

step "lintian (arm64)"
lintian --fail-on error --allow-root "$out"/nrfcloud-gateway_*_arm64.changes

step "arm64 programs under qemu-user"
t=$(date +%s)
qemu=$(command -v qemu-aarch64-static || command -v qemu-aarch64) || fail "qemu-aarch64 missing"
x=$out/arm64-root
for d in "$out"/nrfcloud-gateway_*_arm64.deb "$out"/nrfcloud-gateway-sim_*_arm64.deb; do
  dpkg-deb -x "$d" "$x"
done
file -L "$x/usr/sbin/nrfcloud-gatewayd" | grep -q 'ARM aarch64' || fail "the daemon is not an arm64 program"
# The arm64 libraries come from the :arm64 build dependencies (multiarch), the loader from libc6:arm64.
"$qemu" "$x/usr/sbin/nrfcloud-gatewayd" --version
"$qemu" "$x/usr/bin/nrfcloud-gatewayctl" --version
"$qemu" "$x/usr/bin/nrf91-sim" --version 2>&1 | head -n 1
"$qemu" "$x/usr/sbin/nrfcloud-gatewayd" --check-config "$x/etc/nrfcloud-gateway/gateway.conf"
# The integration tests take the daemon from $NRFGW_DAEMON: this one runs the arm64 build.
cat >"$out/nrfcloud-gatewayd-arm64" <<EOF
#!/bin/sh
exec "$qemu" "$x/usr/sbin/nrfcloud-gatewayd" "\$@"
EOF
chmod +x "$out/nrfcloud-gatewayd-arm64"
[ -x build/daemon/nrfcloud-gatewayd ] || fail "the end-to-end test needs the GCC build in ./build"
NRFGW_DAEMON=$out/nrfcloud-gatewayd-arm64 NRFGW_BUILD_DIR=$top/build NRFGW_SOURCE_DIR=$top \
  NRFCLOUD_GATEWAY_LOCK_DIR=$(mktemp -d) PYTHONDONTWRITEBYTECODE=1 \
  /usr/bin/python3 -u tests/session/test_session.py -v Procedure.test_full_form_with_connections ||
  fail "end-to-end test with the arm64 daemon"
elapsed "$t"
