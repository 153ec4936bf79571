#!/usr/bin/env bash
# README command 1: installs what is missing, builds, and runs the local demo:
# simulated nRF91, simulated BLE devices, a local broker standing in for
# nRF Cloud, and nrfcloud-gatewayd, all on this machine. Ctrl-C stops it.
# Options are passed to scripts/demo.py (see scripts/demo.py --help); --fota
# adds a FOTA job of the nRF91 application: the job's steps, the reset and the
# new version in the shadow.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh demo
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
exec /usr/bin/python3 scripts/demo.py "$@"
