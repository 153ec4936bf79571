#!/usr/bin/env bash
# README command 1: installs what is missing, builds, and runs the gateway in
# the foreground on its example configuration. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh demo
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"

state=$PWD/.demo/state
mkdir -p "$state"
echo "==> Starting nrfcloud-gatewayd (Ctrl-C to stop)"
STATE_DIRECTORY=$state exec build/daemon/nrfcloud-gatewayd --config config/gateway.conf "$@"
