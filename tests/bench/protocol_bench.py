# SPDX-License-Identifier: MIT
"""End-to-end benchmark of the gateway protocol in host TLS mode (prints
figures; not a test).

A BLE notification leaves the BlueZ mock as a D-Bus PropertiesChanged signal,
nrfcloud-gatewayd turns it into a device_characteristic_value_changed g2c
event, publishes it at QoS 1 to mosquitto (mutual TLS, gateway ACL), and the
stand-in for nRF Cloud receives it.  Measured:
  1. flood: N notifications emitted back to back; notifications/s from the
     first emission to the last reception, loss and order checked;
  2. paced: 100 notifications/s; latency emission -> reception by the
     stand-in for nRF Cloud (which comes after the broker has the message;
     the daemon's PUBACK arrives at about the same time), p50/p99;
  3. daemon CPU per notification (utime+stime of every thread, /proc);
  4. bytes per notification: the JSON, the MQTT PUBLISH packet, and what the
     TCP connection to the broker sent (TLS records included; tcp_info
     bytes_sent from ss), against the 1.2 x (JSON + MQTT header) target.  That
     connection is the daemon's in host TLS mode and nrf91-sim's in modem TLS
     mode (PROTOCOL_TLS=modem), where the daemon's own socket is only the
     loopback to its bridge;
  5. NotifyMinIntervalMs=1000 with a 50 Hz characteristic: messages/s.
The emitter (python-dbusmock) and the stand-in for nRF Cloud are Python and
share the CPUs with the daemon; in the flood the figure is a lower bound of
what the daemon sustains if either is the limit.  The flood prints each
part's share of a core.  Reception times are taken by the stand-in itself
(no second subscriber), and the sender's TCP counters are sampled every
100 ms with `ss` without -p (each sample is a process; at 10 ms with -p the
sampling took about a third of a core from the parts it measured).

Usage: [PROTOCOL_TLS=modem] NRFGW_BUILD_DIR=build /usr/bin/python3 tests/bench/protocol_bench.py [--flood N]
       [--paced N] [--size B]
"""

import argparse
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "protocol"))
import prototest as pt  # noqa: E402

VALUE_CHANGED = "device_characteristic_value_changed"


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def steal_seconds():
    """CPU time the hypervisor gave to others, all CPUs (/proc/stat; 0 on bare metal)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


def parts(w):
    """The processes of the benchmark, by name: who shares the CPUs with the daemon."""
    p = {"daemon": w.daemon.proc.pid, "mosquitto": w.broker.proc.pid, "dbus-daemon": w.bus.proc.pid,
         "BlueZ mock (Python)": w.mock.proc.pid, "stand-in for nRF Cloud (Python, this process)": os.getpid()}
    if w.sim is not None:
        p["nrf91-sim"] = w.sim.proc.pid
    return p


def cpu_of(pids):
    out = {}
    for name, pid in pids.items():
        try:
            out[name] = cpu_seconds(pid)
        except OSError:
            out[name] = 0.0
    return out


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def tcp_local_port(pid, port):
    """The local port of process pid's TCP connection to the broker's port (ss -p: a scan of every process's
    file descriptors, too costly to run in a loop during the flood)."""
    out = subprocess.run(["ss", "-tnpH", "dport", "=", ":%d" % port], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "pid=%d," % pid in line:
            return int(line.split()[3].rsplit(":", 1)[1])
    return None


def tcp_bytes_sent(sport, port):
    """bytes_sent (tcp_info, via ss) of the TCP connection from local port sport to the broker's port."""
    if sport is None:
        return None
    out = subprocess.run(["ss", "-tinH", "sport", "=", ":%d" % sport, "dport", "=", ":%d" % port],
                         capture_output=True, text=True).stdout
    m = re.search(r"bytes_sent:(\d+)", out)
    return int(m.group(1)) if m else None


def percentile(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(q / 100.0 * (len(v) - 1))))]


class Clock:
    """Reception time of each notification, by sequence number, taken on the
    stand-in for nRF Cloud's thread as it reads each g2c message (it reads the
    socket in large chunks).  A second subscriber of its own would double the
    broker's fan-out and add a Python TLS reader to the CPUs the daemon runs on."""

    def __init__(self, world):
        self.t = {}
        self.lock = threading.Lock()
        self.messages = world.peer.messages
        self.inner = self.messages.handler
        self.messages.handler = self._on_message

    def _on_message(self, topic, payload):
        if topic == pt.G2C and b'"requestId":"N/A"' in payload and VALUE_CHANGED.encode() in payload:
            now = time.monotonic()
            i = payload.index(b'"value":[') + 9
            vals = payload[i:payload.index(b"]", i)].split(b",")
            seq = int.from_bytes(bytes(int(x) for x in vals[:4]), "little")
            with self.lock:
                self.t.setdefault(seq, now)
        self.inner(topic, payload)

    def close(self):
        self.messages.handler = self.inner

    def count(self, lo, hi):
        with self.lock:
            return sum(1 for s in self.t if lo <= s < hi)


def start(tmp, pki, cert, extra=""):
    # No publish budget: the flood measures the daemon's own cost, not nRF Cloud's limit.
    w = pt.World(pki, cert, pt.subdir(tmp, "bench"), desired=(pt.A,),
                 extra_conf="[Cloud]\nMaxPublishRate=0\n" + extra, log_level="info")
    w.pki = pki
    w.wait_ready(pt.A)
    rid = w.c2g({"type": "device_descriptor_value_write", "deviceAddress": pt.A, "serviceUUID": pt.NUS,
                 "characteristicUUID": pt.NUS_TX, "descriptorUUID": "2902", "descriptorValue": [1, 0]})
    w.answers(rid, 1)
    return w


def wire_process(w):
    """The process whose TCP connection carries the TLS records to the broker, and what to call it."""
    if pt.TLS == "modem" and w.sim is not None:
        return w.sim.proc.pid, "nrf91-sim's"
    return w.daemon.proc.pid, "daemon's"


def flood(w, clock, n, size, start_seq):
    pid = w.daemon.proc.pid
    wire_pid = wire_process(w)[0]
    sport = tcp_local_port(wire_pid, w.broker.port)
    cpu0, wire0 = cpu_seconds(pid), tcp_bytes_sent(sport, w.broker.port)
    who = parts(w)
    cpus0, steal0 = cpu_of(who), steal_seconds()
    n_before = len(w.events(VALUE_CHANGED))
    # The sending side (the daemon, or nrf91-sim in modem mode): when its TCP connection stopped sending.
    samples, done = [], threading.Event()

    def poll():
        while not done.is_set():
            samples.append((time.monotonic(), tcp_bytes_sent(sport, w.broker.port)))
            time.sleep(0.1)  # each sample is a process: more often would take CPU from what is measured

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    t0 = time.monotonic()
    emitted = w.mock.notify(pt.A, pt.bf.NUS, pt.bf.NUS_TX, n, start=start_seq, size=size)
    t_emit = time.monotonic() - t0
    ok = pt.st.wait_until(lambda: clock.count(start_seq, start_seq + n) >= n, 300, 0.05)
    t_last = max(clock.t[s] for s in range(start_seq, start_seq + n) if s in clock.t)
    time.sleep(0.5)  # let the last PUBACKs and socket counters settle
    done.set()
    poller.join()
    cpu1, wire1 = cpu_seconds(pid), tcp_bytes_sent(sport, w.broker.port)
    cpus1, steal1 = cpu_of(who), steal_seconds()
    t_sent = next((t for t, b in samples if b is not None and b >= wire1), None)
    events = w.events(VALUE_CHANGED)[n_before:]
    seqs = [pt.seq(e) for e in events if e["requestId"] == "N/A"]
    in_order = seqs == list(range(start_seq, start_seq + n))
    return {
        "emitted": emitted, "received": len(seqs), "in_order": in_order and ok,
        "emit_s": t_emit, "rate": n / (t_last - t0),
        "sent_rate": n / (t_sent - t0) if t_sent else None,
        "cpu_us": (cpu1 - cpu0) * 1e6 / n,
        "cpu_pct": (cpu1 - cpu0) / (t_last - t0) * 100,
        "shares": {k: (cpus1[k] - cpus0[k]) / (t_last + 0.5 - t0) * 100 for k in who},
        "steal_pct": (steal1 - steal0) / (t_last + 0.5 - t0) * 100,
        "wire": (wire1 - wire0) / n if wire0 is not None and wire1 is not None else None,
        "events": events,
    }


def notify_paced(w, clock, n, rate, size, start_seq):
    """n notifications from the mock at rate per second, numbered from start_seq; waits until
    the stand-in has them all.  {seq: time sent}."""
    sent = {}
    t_start = time.monotonic()
    for i in range(n):
        d = t_start + i / rate - time.monotonic()
        if d > 0:
            time.sleep(d)
        seq = start_seq + i
        sent[seq] = time.monotonic()
        w.mock.notify(pt.A, pt.bf.NUS, pt.bf.NUS_TX, 1, start=seq, size=size)
    pt.st.wait_until(lambda: clock.count(start_seq, start_seq + n) >= n, 60, 0.05)
    return sent


def paced(w, clock, n, rate, size, start_seq):
    pid = w.daemon.proc.pid
    cpu0 = cpu_seconds(pid)
    t_start = time.monotonic()
    sent = notify_paced(w, clock, n, rate, size, start_seq)
    cpu1 = cpu_seconds(pid)
    elapsed = time.monotonic() - t_start
    lat = [(clock.t[s] - sent[s]) * 1000 for s in sent if s in clock.t]
    return {"received": len(lat), "p50": percentile(lat, 50), "p99": percentile(lat, 99), "max": max(lat),
            "cpu_us": (cpu1 - cpu0) * 1e6 / n, "cpu_pct": (cpu1 - cpu0) / elapsed * 100}


def mqtt_publish_size(topic, payload_len):
    rem = 2 + len(topic) + 2 + payload_len
    n = 1
    while rem >= 128 ** n:
        n += 1
    return 1 + n + rem


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flood", type=int, default=20000)
    ap.add_argument("--paced", type=int, default=1000)
    ap.add_argument("--size", type=int, default=20)
    args = ap.parse_args()

    tmp, pki, cert = pt.make_pki()
    try:
        w = start(tmp, pki, cert)
        try:
            clock = Clock(w)
            pid = w.daemon.proc.pid
            wire_pid, wire_who = wire_process(w)
            print("daemon pid %d, RSS %d KiB connected with 1 device; TLS in %s" % (pid, rss_kib(pid), pt.TLS))
            f = flood(w, clock, args.flood, args.size, 1)
            print("flood: %d notifications of %d bytes emitted in %.2fs; received %d, in order and none lost: %s"
                  % (f["emitted"], args.size, f["emit_s"], f["received"], f["in_order"]))
            print("flood: %.0f notifications/s end to end (first emission -> last reception)" % f["rate"])
            if f["sent_rate"]:
                print("flood: %.0f notifications/s out of the %s (first emission -> its TCP connection's last "
                      "byte sent, sampled every 100 ms: a lower bound)" % (f["sent_rate"], "modem" if wire_pid != pid else "daemon"))
            print("flood: daemon CPU %.1f us per notification (%.0f%% of a core)" % (f["cpu_us"], f["cpu_pct"]))
            print("flood: %% of a core during the flood (%d CPUs): %s; stolen by the hypervisor %.0f%%"
                  % (os.cpu_count(), ", ".join("%s %.0f" % kv for kv in f["shares"].items()), f["steal_pct"]))
            sizes = [len(w.peer.received(pt.G2C)[-1][1])]
            json_len = sum(sizes) / len(sizes)
            mqtt = mqtt_publish_size(pt.G2C, json_len)
            print("bytes: JSON %d, MQTT PUBLISH %d (header %d), %s TCP bytes sent to the broker %.1f per "
                  "notification -> %.3f x (JSON + MQTT header); target 1.2 x = %.0f"
                  % (json_len, mqtt, mqtt - json_len, wire_who, f["wire"] or -1, (f["wire"] or 0) / mqtt,
                     1.2 * mqtt))
            p = paced(w, clock, args.paced, 100, args.size, 10_000_000)
            print("paced 100/s: %d received; latency p50 %.2f ms, p99 %.2f ms, max %.2f ms; daemon CPU %.1f us per "
                  "notification (%.2f%% of a core)" % (p["received"], p["p50"], p["p99"], p["max"], p["cpu_us"],
                                                        p["cpu_pct"]))
            print("daemon RSS after the runs: %d KiB" % rss_kib(pid))
            clock.close()
        finally:
            w.close()

        w = start(tmp, pki, cert, "[Bluetooth]\nNotifyMinIntervalMs=1000\n")
        try:
            clock = Clock(w)
            n_before = len(w.events(VALUE_CHANGED))
            t0 = time.monotonic()
            for i in range(500):  # 50 Hz for 10 s
                d = t0 + i * 0.02 - time.monotonic()
                if d > 0:
                    time.sleep(d)
                w.mock.notify(pt.A, pt.bf.NUS, pt.bf.NUS_TX, 1, start=20_000_000 + i, size=args.size)
            time.sleep(1.2)
            elapsed = time.monotonic() - t0
            got = [e for e in w.events(VALUE_CHANGED)[n_before:] if e["requestId"] == "N/A"]
            print("NotifyMinIntervalMs=1000, 50 Hz for 10 s: %d messages in %.1f s = %.2f messages/s; last value "
                  "seq %d (of %d)" % (len(got), elapsed, len(got) / elapsed, pt.seq(got[-1]) - 20_000_000,
                                      499))
            clock.close()
        finally:
            w.close()
    finally:
        tmp.cleanup()


if __name__ == "__main__":
    main()
