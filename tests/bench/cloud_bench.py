# SPDX-License-Identifier: MIT
"""Benchmark of the cloud path in host TLS mode (prints figures; not a test).

Runs cloud-harness (the MQTT session + durable outbox on sd-event) against
mosquitto with mutual TLS on 127.0.0.1 and measures:
  1. QoS 1 throughput with 200-byte payloads through the outbox (flood);
  2. enqueue -> PUBACK latency p50/p99 and CPU at 100 messages/s;
  3. CPU and RSS while connected and idle.
CPU figures are the harness process's own (getrusage/proc: every thread,
Paho's included).

Usage: NRFGW_BUILD_DIR=build python3 tests/bench/cloud_bench.py [--flood N] [--paced-seconds S] [--idle-seconds S]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cloud"))
import cloudtest as ct  # noqa: E402

DEVICE = "b3c1e2d4-0f6a-4b8c-9d1e-2f3a4b5c6d7e"


def proc_cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


def proc_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flood", type=int, default=50000)
    ap.add_argument("--paced-seconds", type=int, default=30)
    ap.add_argument("--idle-seconds", type=int, default=30)
    ap.add_argument("--window", type=int, default=0)
    a = ap.parse_args()

    tmp = ct.TempDir("cloud-bench-", base=os.environ.get("NRFGW_BENCH_TMP"))
    try:
        pki = ct.Pki(os.path.join(tmp.path, "pki"))
        broker = ct.Broker(os.path.join(tmp.path, "broker"), pki, verbose=False)
        broker.start()
        cert = pki.device(DEVICE)
        extra = ["--window", str(a.window)] if a.window else []
        try:
            # 1. Flood: as fast as the outbox takes them.
            h = ct.Harness(tmp.path, "flood", ct.harness_args(
                broker, pki, DEVICE, os.path.join(tmp.path, "s1"), cert=cert,
                extra=["--count", str(a.flood), "--exit-when-done", "--wait-ready"] + extra))
            h.wait(600)
            s = h.stats()
            print("flood: %d x 200 B QoS 1 through the outbox: %.0f msg/s, %.1f us CPU per message, "
                  "p50 %.1f ms p99 %.1f ms (enqueue -> PUBACK, queue included)"
                  % (s["acked"], s["msg_per_s"], s["cpu_us_per_msg"], s["p50_ms"], s["p99_ms"]))

            # 2. Paced at 100 msg/s.
            n = 100 * a.paced_seconds
            h = ct.Harness(tmp.path, "paced", ct.harness_args(
                broker, pki, DEVICE, os.path.join(tmp.path, "s2"), cert=cert,
                extra=["--count", str(n), "--rate", "100", "--exit-when-done", "--wait-ready"] + extra))
            h.wait(a.paced_seconds + 120)
            s = h.stats()
            print("paced: %d msg at 100 msg/s: p50 %.2f ms, p99 %.2f ms, max %.2f ms (enqueue -> PUBACK); "
                  "CPU %.2f %% of one core (%.0f us per message, process start and TLS setup included)"
                  % (s["acked"], s["p50_ms"], s["p99_ms"], s["max_ms"], s["cpu_percent"], s["cpu_us_per_msg"]))

            # 1b/2b. The same through the modem-mode bridge, an OpenSSL socket in place of the nRF91.
            h = ct.Harness(tmp.path, "flood-bridge", ct.harness_args(
                broker, pki, DEVICE, os.path.join(tmp.path, "s4"), cert=cert,
                extra=["--count", str(a.flood), "--exit-when-done", "--wait-ready", "--bridge"] + extra))
            h.wait(600)
            s = h.stats()
            print("flood via bridge: %d x 200 B QoS 1: %.0f msg/s, %.1f us CPU per message (TLS in the same process)"
                  % (s["acked"], s["msg_per_s"], s["cpu_us_per_msg"]))
            h = ct.Harness(tmp.path, "paced-bridge", ct.harness_args(
                broker, pki, DEVICE, os.path.join(tmp.path, "s5"), cert=cert,
                extra=["--count", str(n), "--rate", "100", "--exit-when-done", "--wait-ready", "--bridge"] + extra))
            h.wait(a.paced_seconds + 120)
            s = h.stats()
            print("paced via bridge: %d msg at 100 msg/s: p50 %.2f ms, p99 %.2f ms, max %.2f ms; CPU %.2f %% of one core"
                  % (s["acked"], s["p50_ms"], s["p99_ms"], s["max_ms"], s["cpu_percent"]))

            # 3. Connected and idle.
            h = ct.Harness(tmp.path, "idle", ct.harness_args(
                broker, pki, DEVICE, os.path.join(tmp.path, "s3"), cert=cert, extra=["--count", "0"] + extra))
            h.wait_line("state ready", 15)
            time.sleep(3)
            c0, t0 = proc_cpu_seconds(h.proc.pid), time.monotonic()
            time.sleep(a.idle_seconds)
            c1, t1 = proc_cpu_seconds(h.proc.pid), time.monotonic()
            rss = proc_rss_kib(h.proc.pid)
            with open("/proc/%d/smaps_rollup" % h.proc.pid) as f:
                rollup = {l.split(":")[0]: l.split()[1] for l in f if l.endswith("kB\n")}
            h.kill()
            print("idle: connected %d s: CPU %.3f %% of one core, RSS %.1f MiB (anonymous %.1f MiB, file-backed %.1f MiB)"
                  % (a.idle_seconds, 100 * (c1 - c0) / (t1 - t0), rss / 1024, int(rollup.get("Anonymous", 0)) / 1024,
                     (rss - int(rollup.get("Anonymous", 0))) / 1024))
        finally:
            broker.stop()
    finally:
        tmp.cleanup()


if __name__ == "__main__":
    main()
