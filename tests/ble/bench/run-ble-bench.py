#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Runs the BLE notification benchmark on a private bus and prints the figures.

  tests/ble/bench/run-ble-bench.py [--devices N] [--notifications M] [--size B] [--prefill] [--acquire]

--prefill stops the receiver (SIGSTOP) once it is subscribed, lets the
emitter send everything into dbus-daemon's queue, then resumes it: the rate
is then how fast the BLE layer drains a backlog, not how fast the emitter
and dbus-daemon produce.

Needs a build (NRFGW_BUILD_DIR, default ./build).  Starts dbus-daemon,
ble-emitter and ble-bench, stops them by PID.  Prints measurements only."""

import argparse
import os
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from blefixture import Bus, build_dir  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--devices', type=int, default=1)
    ap.add_argument('--notifications', type=int, default=200000)
    ap.add_argument('--size', type=int, default=20)
    ap.add_argument('--prefill', action='store_true')
    ap.add_argument('--acquire', action='store_true', help='AcquireNotify=yes: notifications over the socket')
    a = ap.parse_args()
    bench_dir = os.path.join(build_dir(), 'tests', 'ble', 'bench')
    with tempfile.TemporaryDirectory(prefix='nrfgw-ble-bench-') as tmp:
        bus = Bus(tmp)
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus.address)
        emitter = subprocess.Popen([os.path.join(bench_dir, 'ble-emitter'), str(a.devices), str(a.notifications),
                                    str(a.size)], env=env, stdout=subprocess.PIPE, text=True)
        try:
            print(emitter.stdout.readline().strip())
            bench = subprocess.Popen([os.path.join(bench_dir, 'ble-bench'), str(a.devices), str(a.notifications)] +
                                     (['acquire'] if a.acquire else []),
                                     env=env, stdout=subprocess.PIPE, text=True)
            line = bench.stdout.readline()
            if a.prefill:
                os.kill(bench.pid, signal.SIGSTOP)
            print(line.strip())
            sent = emitter.stdout.readline().strip()
            if a.prefill:
                os.kill(bench.pid, signal.SIGCONT)
            out, _ = bench.communicate(timeout=600)
            print(out.strip())
            print(sent)
            rc = bench.returncode
        finally:
            emitter.kill()
            emitter.wait(5)
            bus.stop()
    sys.exit(rc)


if __name__ == '__main__':
    main()
