# SPDX-License-Identifier: MIT
"""Benchmark of the cloud path in modem TLS mode (prints figures; not a test).

cloud-harness --modem: Paho in plain TCP to the loopback bridge, bytes over
AT#XSEND / #XRECV on a pty to nrf91-sim, TLS in the sim with the key that
`nrfcloud-gatewayctl provision` generated there, mosquitto with mutual TLS.
Measures:
  1. QoS 1 throughput with 200-byte payloads through the outbox (flood);
  2. enqueue -> PUBACK latency p50/p99 and CPU at 100 messages/s;
  3. CPU and RSS while connected and idle.
CPU figures: the harness process (every thread, Paho's included) and, apart,
nrf91-sim (which stands in for the nRF91 and costs nothing on a real gateway).

Usage: NRFGW_BUILD_DIR=build python3 tests/bench/modem_tls_bench.py [--flood N] [--paced-seconds S]
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cloud"))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
sys.path.insert(0, HERE)
import cloudtest as ct  # noqa: E402
import simfixture as sf  # noqa: E402
import time  # noqa: E402
from cloud_bench import proc_cpu_seconds, proc_rss_kib  # noqa: E402

DEVICE = "b3c1e2d4-0f6a-4b8c-9d1e-2f3a4b5c6d80"


def run(tmp, broker, sim, name, extra, timeout):
    args = ["--uri", "ssl://localhost:%d" % broker.port, "--client-id", DEVICE, "--state-dir",
            os.path.join(tmp.path, name), "--topic", ct.g2c_topic(DEVICE), "--modem", sim.link,
            "--exit-when-done", "--wait-ready"] + extra
    h = ct.Harness(tmp.path, name, args)
    sim_cpu0 = proc_cpu_seconds(sim.proc.pid)
    code = h.wait(timeout)
    sim_cpu = proc_cpu_seconds(sim.proc.pid) - sim_cpu0
    if code is None:
        h.kill()
        raise SystemExit("%s did not finish: %s" % (name, h.stderr()[-2000:]))
    st = h.stats()
    if not st:
        raise SystemExit("%s printed no figures: %s" % (name, h.stderr()[-2000:]))
    st["sim_cpu_s"] = round(sim_cpu, 3)
    return st


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flood", type=int, default=20000)
    ap.add_argument("--paced-seconds", type=int, default=30)
    ap.add_argument("--idle-seconds", type=int, default=30)
    a = ap.parse_args()

    tmp = ct.TempDir("modem-tls-bench-", base=os.environ.get("NRFGW_BENCH_TMP"))
    sim = broker = None
    try:
        pki = ct.Pki(os.path.join(tmp.path, "pki"))
        broker = ct.Broker(os.path.join(tmp.path, "broker"), pki, verbose=False)
        broker.start()
        wd = os.path.join(tmp.path, "sim")
        os.makedirs(os.path.join(wd, "run"))
        conf = os.path.join(wd, "empty.conf")
        open(conf, "w").close()
        sim = sf.Sim(wd, DEVICE)
        sim.start()
        subprocess.run([sf.CTL, "provision", "--port", sim.link, "--config", conf, "--ca-cert", pki.device_ca[0],
                        "--ca-key", pki.device_ca[1], "--root-ca", pki.root[0], "--csv", os.path.join(wd, "o.csv")],
                       env=sf.ctl_env(wd), check=True, capture_output=True, timeout=120)

        st = run(tmp, broker, sim, "flood", ["--count", str(a.flood)], 600)
        print("modem TLS flood: %d QoS 1 messages of 200 bytes: %.0f msg/s, p50 %.1f ms, p99 %.1f ms, "
              "harness CPU %.1f us/msg, nrf91-sim CPU %.2f s" % (st["acked"], st["msg_per_s"], st["p50_ms"],
                                                                  st["p99_ms"], st["cpu_us_per_msg"], st["sim_cpu_s"]))
        n = 100 * a.paced_seconds
        st2 = run(tmp, broker, sim, "paced", ["--count", str(n), "--rate", "100"], a.paced_seconds + 120)
        print("modem TLS paced 100 msg/s for %d s: p50 %.2f ms, p99 %.2f ms, max %.2f ms, harness CPU %.2f %% of "
              "one core, nrf91-sim CPU %.2f s" % (a.paced_seconds, st2["p50_ms"], st2["p99_ms"], st2["max_ms"],
                                                  st2["cpu_percent"], st2["sim_cpu_s"]))
        # 3. Connected and idle (keepalive 1200 s, as the daemon's default).
        args = ["--uri", "ssl://localhost:%d" % broker.port, "--client-id", DEVICE, "--state-dir",
                os.path.join(tmp.path, "idle"), "--topic", ct.g2c_topic(DEVICE), "--modem", sim.link,
                "--count", "0", "--keepalive", "1200"]
        h = ct.Harness(tmp.path, "idle", args)
        try:
            if h.wait_line("state ready", 60) is None:
                raise SystemExit("idle run did not connect: " + h.stderr()[-2000:])
            time.sleep(2)
            cpu0, sim0 = proc_cpu_seconds(h.proc.pid), proc_cpu_seconds(sim.proc.pid)
            time.sleep(a.idle_seconds)
            cpu = proc_cpu_seconds(h.proc.pid) - cpu0
            sim_cpu = proc_cpu_seconds(sim.proc.pid) - sim0
            rss = proc_rss_kib(h.proc.pid)
        finally:
            h.kill()
        idle = {"seconds": a.idle_seconds, "cpu_percent": round(100.0 * cpu / a.idle_seconds, 3), "rss_kib": rss,
                "sim_cpu_percent": round(100.0 * sim_cpu / a.idle_seconds, 3)}
        print("modem TLS connected and idle for %d s: harness CPU %.2f %%, RSS %d KiB, nrf91-sim CPU %.2f %%" %
              (a.idle_seconds, idle["cpu_percent"], rss, idle["sim_cpu_percent"]))
        print(json.dumps({"flood": st, "paced": st2, "idle": idle}))
    finally:
        if sim:
            sim.stop()
        if broker:
            broker.stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()
