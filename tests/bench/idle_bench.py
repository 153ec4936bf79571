# SPDX-License-Identifier: MIT
"""Wakeups of a connected, idle gateway, per thread (prints figures; not a test).

The protocol bench's world (nrfcloud-gatewayd against mosquitto with mutual
TLS, the stand-in for nRF Cloud, one BLE device in python-dbusmock), in host
TLS mode unless PROTOCOL_TLS=modem.  With TLS=host the daemon keeps its
default [Modem] Port=/dev/nrf91, absent on a machine without the nRF91: the
case of a gateway whose modem is unplugged.  After the session is ready and a
settling time, the context switches (voluntary and involuntary) of every
thread of the daemon are counted over the window from
/proc/PID/task/*/status, and printed per thread with its name; Paho's
threads are the ones it names MQTTAsync_send and MQTTAsync_rcv.

Usage: [PROTOCOL_TLS=modem] NRFGW_BUILD_DIR=build /usr/bin/python3 tests/bench/idle_bench.py [--seconds 60]
"""

import argparse
import glob
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "protocol"))
import prototest as pt  # noqa: E402
import protocol_bench as pb  # noqa: E402


def thread_switches(pid):
    """{tid: (name, voluntary + involuntary context switches)}."""
    out = {}
    for d in glob.glob("/proc/%d/task/*" % pid):
        try:
            with open(os.path.join(d, "comm")) as f:
                name = f.read().strip()
            n = 0
            with open(os.path.join(d, "status")) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        n += int(line.split()[1])
            out[int(os.path.basename(d))] = (name, n)
        except FileNotFoundError:
            pass
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--settle", type=float, default=5)
    args = ap.parse_args()

    tmp, pki, cert = pt.make_pki()
    try:
        w = pb.start(tmp, pki, cert)
        try:
            pid = w.daemon.proc.pid
            time.sleep(args.settle)
            a = thread_switches(pid)
            time.sleep(args.seconds)
            b = thread_switches(pid)
            print("idle, connected, 1 device, TLS in %s, %.0f s: context switches per second by thread" %
                  (pt.TLS, args.seconds))
            total = paho = 0.0
            for tid in sorted(b):
                name, n = b[tid]
                rate = (n - a.get(tid, (name, 0))[1]) / args.seconds
                total += rate
                if name.startswith("MQTTAsync"):
                    paho += rate
                print("  %-16s tid %-7d %.2f/s%s" % (name, tid, rate, "  (main loop)" if tid == pid else ""))
            print("  all threads %.2f/s; Paho's threads %.2f/s; the daemon's own %.2f/s" % (total, paho, total - paho))
        finally:
            w.close()
    finally:
        tmp.cleanup()


if __name__ == "__main__":
    main()
