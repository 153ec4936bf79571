# SPDX-License-Identifier: MIT
"""The cost of one message, against Paho's own floor (prints figures; not a test).

In each TLS mode (host, and modem through nrf91-sim), in one run:

  1. the gateway: the real nrfcloud-gatewayd (publish budget MaxPublishRate=100,
     the cloud's limit, and the default durability: SyncIntervalSec=1, the
     runtime directory on a tmpfs) takes a steady 100 notifications/s from the
     BlueZ mock for --seconds; the stand-in for nRF Cloud times each g2c message
     as it reads it.  Printed: the daemon's CPU (utime+stime of every thread,
     /proc/PID/task/*/stat) per notification, per thread, context switches
     per notification per thread, latency emission -> reception p50/p99/max;
  2. the floor: tests/bench/paho-bare (a bare Paho MQTTAsync client, mutual
     TLS, QoS 1) publishes the same g2c message (same topic, same bytes) to the
     same broker at the same rate for the same time; the same figures of its
     process, and the ratio daemon / bare Paho.
  3. host TLS only: a flood of --flood notifications without a budget, the
     daemon's CPU per notification end to end (the protocol bench's flood).

In modem TLS mode Paho in the daemon speaks plain MQTT to the loopback bridge
and the TLS is nrf91-sim's (the nRF91's: not counted); the bare Paho client
still does TLS itself, to the same broker, so the ratio there compares the
daemon's whole path (bridge and AT link included) with a TLS publisher.

CPU is counted in the kernel's ticks (10 ms): over 2000 notifications one
tick is 5 us per notification.  Note the machine's load beside the figures;
the ratio of the same run is what counts.

--all also runs, one after the other, the benchmarks that print the other
figures of the resource budget: durability_bench.py (bytes and syncs to the
state directory at 100/s), idle_bench.py (idle wakeups per thread, both
modes), memory_bench.py (VmRSS, Pss and USS with 1 and 100 devices, both
modes), modem_start_bench.py (registration to cloud ready, by phase),
devices_bench.py (memory with 1 and 100 devices, and the most
publishes in any one-second window with 20 devices at 20 Hz).

--syscalls counts the daemon's system calls per notification (strace -c -f)
in a second paced run of each mode (strace slows what it traces: the CPU
figures come from the first run).

Usage: NRFGW_BUILD_DIR=build /usr/bin/python3 tests/bench/resource_bench.py [--seconds 20] [--flood 20000]
       [--modes host,modem] [--syscalls] [--all]
"""

import argparse
import glob
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "protocol"))
import prototest as pt  # noqa: E402
import protocol_bench as pb  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
RATE = 100
SHM = None


def threads(pid):
    """{tid: (name, cpu seconds, context switches)} of every thread of pid."""
    out = {}
    for d in glob.glob("/proc/%d/task/*" % pid):
        try:
            with open(os.path.join(d, "stat")) as f:
                s = f.read()
            name = s[s.index("(") + 1:s.rindex(")")]
            fields = s.rsplit(")", 1)[1].split()
            cpu = (int(fields[11]) + int(fields[12])) / TICK
            sw = 0
            with open(os.path.join(d, "status")) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        sw += int(line.split()[1])
            out[int(os.path.basename(d))] = (name, cpu, sw)
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass
    return out


def process_cpu(pid):
    """utime+stime of the whole process, its exited threads included."""
    return pb.cpu_seconds(pid)


class Sample:
    def __init__(self, pid):
        self.pid = pid
        self.t = time.monotonic()
        self.cpu = process_cpu(pid)
        self.threads = threads(pid)

    def diff(self, later, n):
        """Per notification: process CPU us, context switches, and per thread (name, us, switches)."""
        per = []
        sw = 0
        for tid, (name, cpu, s) in sorted(later.threads.items()):
            _, cpu0, s0 = self.threads.get(tid, (name, 0.0, 0))
            per.append((name, tid, (cpu - cpu0) * 1e6 / n, (s - s0) / n))
            sw += s - s0
        return {"us": (later.cpu - self.cpu) * 1e6 / n, "switches": sw / n, "threads": per,
                "pct": (later.cpu - self.cpu) / (later.t - self.t) * 100, "n": n}


def load():
    return "load average %s" % " ".join(open("/proc/loadavg").read().split()[:3])


def start_world(tmp, pki, cert, rate_limit):
    # The runtime directory on a tmpfs, as systemd's /run is; one per world.
    os.environ["NRFGW_TEST_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="run-", dir=SHM)
    for attempt in range(3):
        w = pt.World.__new__(pt.World)  # so that the parts started are stopped if the start fails
        try:
            w.__init__(pki, cert, pt.subdir(tmp, "bench-" + pt.TLS), desired=(pt.A,),
                       extra_conf="[Cloud]\nMaxPublishRate=%d\n" % rate_limit, log_level="info")
            break
        except RuntimeError as e:
            w.close()
            if attempt == 2:
                raise
            print("(start failed, again: %s)" % str(e).splitlines()[-1], flush=True)
    w.pki, w.cert = pki, cert
    w.wait_ready(pt.A, timeout=60)
    rid = w.c2g({"type": "device_descriptor_value_write", "deviceAddress": pt.A, "serviceUUID": pt.NUS,
                 "characteristicUUID": pt.NUS_TX, "descriptorUUID": "2902", "descriptorValue": [1, 0]})
    w.answers(rid, 1)
    return w


def paced_gateway(w, clock, seconds, start_seq, size=20):
    """100 notifications/s for seconds; (figures, latencies in ms)."""
    pid = w.daemon.proc.pid
    n = int(seconds * RATE)
    a = Sample(pid)
    sent = pb.notify_paced(w, clock, n, RATE, size, start_seq)
    b = Sample(pid)
    lat = sorted((clock.t[s] - sent[s]) * 1000 for s in sent if s in clock.t)
    f = a.diff(b, n)
    f.update(received=len(lat), p50=pb.percentile(lat, 50), p99=pb.percentile(lat, 99), max=lat[-1])
    return f


def paced_bare(w, payload, seconds):
    """tests/bench/paho-bare at 100/s for seconds, to the world's broker, as the device; its figures."""
    exe = os.path.join(pt.st.ct.BUILD, "tests", "bench", "paho-bare")
    path = os.path.join(w.folder, "bare-payload.json")
    with open(path, "wb") as f:
        f.write(payload)
    cert = w.cert
    p = subprocess.Popen([exe, "--uri", "ssl://localhost:%d" % w.broker.port, "--ca", w.pki.root[0],
                          "--cert", cert[0], "--key", cert[1], "--topic", pt.G2C, "--payload", path,
                          "--client-id", "paho-bare", "--rate", str(RATE), "--seconds", str(seconds)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        if line.strip() != "connected":
            raise RuntimeError("paho-bare did not connect: %r" % line)
        line = p.stdout.readline()
        a = Sample(p.pid)
        line = p.stdout.readline().split()
        b = Sample(p.pid)
        if not line or line[0] != "done":
            raise RuntimeError("paho-bare: %r" % line)
        sent, acked = int(line[1]), int(line[2])
        f = a.diff(b, sent)
        f.update(sent=sent, acked=acked)
        return f
    finally:
        p.stdin.close()
        p.wait(10)


class Perf:
    """perf record -g of every thread of pid, into FILE.data (a profile run: its CPU figures are inflated)."""

    def __init__(self, pid, out):
        self.proc = subprocess.Popen(["perf", "record", "-g", "-q", "-o", out + ".data", "-p", str(pid)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(30)


class Syscalls:
    """strace -c -f on every thread of pid: system calls by name."""

    def __init__(self, pid):
        args = ["strace", "-c", "-f", "-q"]
        for t in os.listdir("/proc/%d/task" % pid):
            args += ["-p", t]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=30)
        calls = {}
        for line in err.splitlines():
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", line)
            if m and m.group(2) != "total":
                calls[m.group(2)] = int(m.group(1))
        return calls


def print_figures(who, f):
    print("  %s: %.0f us CPU per notification (%.2f %% of a core), %.2f context switches per notification"
          % (who, f["us"], f["pct"], f["switches"]))
    for name, tid, us, sw in f["threads"]:
        print("    %-16s tid %-7d %6.0f us  %5.2f switches" % (name, tid, us, sw))


def run_mode(mode, tmp, pki, cert, a):
    pt.TLS = mode
    print("== TLS in %s: %d notifications/s for %.0f s (%s)" % (mode, RATE, a.seconds, load()), flush=True)
    w = start_world(tmp, pki, cert, a.budget)
    try:
        clock = pb.Clock(w)
        time.sleep(2)  # the connection's start-up traffic done
        prof = Perf(w.daemon.proc.pid, "%s-%s-daemon" % (a.perf, mode)) if a.perf else None
        g = paced_gateway(w, clock, a.seconds, 1)
        if prof:
            prof.stop()
        print("gateway: %d of %d received; latency emission -> stand-in p50 %.2f ms, p99 %.2f ms, max %.2f ms"
              % (g["received"], g["n"], g["p50"], g["p99"], g["max"]))
        print_figures("daemon (all threads)", g)
        last = w.peer.received(pt.G2C)[-1][1]
        payload = last.replace(b'"requestId":"N/A"', b'"requestId":"BAR"')
        b = paced_bare(w, payload, a.seconds)
        print("bare Paho MQTTAsync, %d-byte payload on the g2c topic, QoS 1, TLS: %d sent, %d acknowledged (%s)"
              % (len(payload), b["sent"], b["acked"], load()))
        print_figures("paho-bare (all threads)", b)
        print("RATIO %s: daemon / bare Paho = %.2f (target <= 1.2); p99 %.2f ms (target <= 20)"
              % (mode, g["us"] / b["us"] if b["us"] else float("inf"), g["p99"]), flush=True)
        if a.syscalls:
            s = Syscalls(w.daemon.proc.pid)
            g2 = paced_gateway(w, clock, min(a.seconds, 10), 5_000_000)
            calls = s.stop()
            total = sum(calls.values())
            top = sorted(calls.items(), key=lambda kv: -kv[1])[:10]
            print("system calls per notification (strace -c -f, %d notifications): %.1f; %s"
                  % (g2["n"], total / g2["n"], ", ".join("%s %.2f" % (k, v / g2["n"]) for k, v in top)))
        clock.close()
    finally:
        w.close()

    if mode == "host" and a.flood > 0:
        w = start_world(tmp, pki, cert, 0)
        try:
            clock = pb.Clock(w)
            time.sleep(1)
            f = pb.flood(w, clock, a.flood, 20, 1)
            print("flood (no budget), %d notifications: received %d, in order %s; %.0f notifications/s end to end; "
                  "daemon CPU %.1f us per notification (target <= 40) (%s)"
                  % (a.flood, f["received"], f["in_order"], f["rate"], f["cpu_us"], load()), flush=True)
            clock.close()
        finally:
            w.close()


def run_other(script, *args, env=None):
    cmd = [sys.executable, os.path.join(HERE, script)] + list(args)
    print("== %s %s (%s)" % (script, " ".join(args), load()), flush=True)
    subprocess.run(cmd, env=dict(os.environ, **(env or {})), check=False)
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--flood", type=int, default=20000)
    ap.add_argument("--modes", default="host,modem")
    ap.add_argument("--syscalls", action="store_true")
    ap.add_argument("--all", action="store_true")
    ap.add_argument("--perf", metavar="PREFIX", help="perf record -g the daemon's paced run into PREFIX-MODE-daemon.data")
    ap.add_argument("--budget", type=int, default=0,
                    help="[Cloud] MaxPublishRate= of the paced run (default 0: none; at 100, the cloud's limit, "
                    "100 notifications/s queue behind it)")
    a = ap.parse_args()

    tmp, pki, cert = pt.make_pki()
    global SHM
    SHM = tempfile.mkdtemp(prefix="resource-bench-", dir="/dev/shm")
    try:
        for mode in a.modes.split(","):
            run_mode(mode, tmp, pki, cert, a)
    finally:
        tmp.cleanup()
        subprocess.run(["rm", "-rf", SHM])
        os.environ.pop("NRFGW_TEST_RUNTIME_DIR", None)

    if a.all:
        run_other("durability_bench.py", "--seconds", "10", "--outage", "0")
        for mode in a.modes.split(","):
            run_other("idle_bench.py", "--seconds", "30", env={"PROTOCOL_TLS": mode})
            run_other("devices_bench.py", "--devices", "1", "--idle-seconds", "5", env={"PROTOCOL_TLS": mode})
            run_other("devices_bench.py", "--devices", "100", "--idle-seconds", "5", env={"PROTOCOL_TLS": mode})
        run_other("devices_bench.py", "--devices", "20", "--idle-seconds", "5")
        run_other("memory_bench.py", "--tls", a.modes, "--devices", "1,100", "--runs", "3")
        run_other("modem_start_bench.py", "--rounds", "10")


if __name__ == "__main__":
    main()
