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
     subscriber (which comes after the broker has the message; the daemon's
     PUBACK arrives at about the same time), p50/p99;
  3. daemon CPU per notification (utime+stime of every thread, /proc);
  4. bytes per notification: the JSON, the MQTT PUBLISH packet, and what the
     TCP connection to the broker sent (TLS records included; tcp_info
     bytes_sent from ss), against the 1.2 x (JSON + MQTT header) target.  That
     connection is the daemon's in host TLS mode and nrf91-sim's in modem TLS
     mode (PROTOCOL_TLS=modem), where the daemon's own socket is only the
     loopback to its bridge;
  5. NotifyMinIntervalMs=1000 with a 50 Hz characteristic: messages/s.
The emitter (python-dbusmock) and the subscriber are Python; in the flood the
figure is a lower bound of what the daemon sustains if either is the limit.

Usage: [PROTOCOL_TLS=modem] NRFGW_BUILD_DIR=build /usr/bin/python3 tests/bench/protocol_bench.py [--flood N]
       [--paced N] [--size B]
"""

import argparse
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "protocol"))
import prototest as pt  # noqa: E402
import cloudtest as ct  # noqa: E402

VALUE_CHANGED = "device_characteristic_value_changed"


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def tcp_bytes_sent(pid, port):
    """bytes_sent of process pid's TCP connection to the broker's port (tcp_info, via ss; IPv4 or IPv6)."""
    out = subprocess.run(["ss", "-tinpH", "dport", "=", ":%d" % port], capture_output=True, text=True).stdout
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if "pid=%d," % pid in line and i + 1 < len(lines):
            m = re.search(r"bytes_sent:(\d+)", lines[i + 1])
            if m:
                return int(m.group(1))
    return None


def percentile(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(q / 100.0 * (len(v) - 1))))]


class Clock(threading.Thread):
    """Reception time of each notification, by sequence number: a minimal
    MQTT subscriber of its own (QoS 0, reading the socket in large chunks),
    so that the measuring side is not the Python stand-in for nRF Cloud,
    which reads packet by packet and acknowledges each one."""

    def __init__(self, world):
        super().__init__(daemon=True)
        self.t = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        ctx = ssl.create_default_context(cafile=world.pki.root[0])
        ctx.load_cert_chain(world.pki.peer[0], world.pki.peer[1])
        raw = socket.create_connection(("127.0.0.1", world.broker.port), timeout=5)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        body = ct._str("MQTT") + bytes([4, 0x02]) + struct.pack(">H", 60) + ct._str("bench-clock")
        self.sock.sendall(bytes([0x10]) + ct._encode_len(len(body)) + body)
        body = struct.pack(">H", 1) + ct._str(pt.G2C) + b"\x00"
        self.sock.sendall(bytes([0x82]) + ct._encode_len(len(body)) + body)
        self.suback = threading.Event()
        self.sock.settimeout(0.5)
        self.start()
        if not self.suback.wait(10):
            raise RuntimeError("the benchmark subscriber could not subscribe")

    def _handle(self, h, body, now):
        if h & 0xF0 == 0x90:
            self.suback.set()
        if h & 0xF0 != 0x30:
            return
        tl = struct.unpack(">H", body[:2])[0]
        payload = body[2 + tl + (2 if (h >> 1) & 3 else 0):]
        if b'"requestId":null' not in payload or VALUE_CHANGED.encode() not in payload:
            return
        i = payload.index(b'"value":[') + 9
        vals = payload[i:payload.index(b"]", i)].split(b",")
        seq = int.from_bytes(bytes(int(x) for x in vals[:4]), "little")
        with self.lock:
            self.t.setdefault(seq, now)

    def run(self):
        buf = b""
        while not self.stopping.is_set():
            try:
                chunk = self.sock.recv(1 << 16)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            except OSError:
                return
            if not chunk:
                return
            now = time.monotonic()
            buf += chunk
            while True:
                if len(buf) < 2:
                    break
                n, mult, i = 0, 1, 1
                while i < len(buf):
                    b = buf[i]
                    n += (b & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        break
                else:
                    break
                if len(buf) < i + n:
                    break
                self._handle(buf[0], buf[i:i + n], now)
                buf = buf[i + n:]

    def close(self):
        self.stopping.set()
        self.join(5)
        self.sock.close()

    def count(self, lo, hi):
        with self.lock:
            return sum(1 for s in self.t if lo <= s < hi)


def start(tmp, pki, cert, extra=""):
    w = pt.World(pki, cert, pt.subdir(tmp, "bench"), desired=(pt.A,), extra_conf=extra, log_level="info")
    w.pki = pki
    w.wait_ready(pt.A)
    rid = w.c2g({"type": "device_descriptor_value_write", "deviceAddress": pt.A, "serviceUUID": pt.NUS,
                 "characteristicUUID": pt.NUS_TX, "descriptorUUID": "2902", "descriptorValue": [1, 0]})
    w.answers(rid, 2)
    return w


def wire_process(w):
    """The process whose TCP connection carries the TLS records to the broker, and what to call it."""
    if pt.TLS == "modem" and w.sim is not None:
        return w.sim.proc.pid, "nrf91-sim's"
    return w.daemon.proc.pid, "daemon's"


def flood(w, clock, n, size, start_seq):
    pid = w.daemon.proc.pid
    wire_pid = wire_process(w)[0]
    cpu0, wire0 = cpu_seconds(pid), tcp_bytes_sent(wire_pid, w.broker.port)
    bcpu0 = cpu_seconds(w.broker.proc.pid)
    n_before = len(w.events(VALUE_CHANGED))
    # The sending side (the daemon, or nrf91-sim in modem mode): when its TCP connection stopped sending.
    samples, done = [], threading.Event()

    def poll():
        while not done.is_set():
            samples.append((time.monotonic(), tcp_bytes_sent(wire_pid, w.broker.port)))
            time.sleep(0.01)

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
    cpu1, wire1 = cpu_seconds(pid), tcp_bytes_sent(wire_pid, w.broker.port)
    bcpu1 = cpu_seconds(w.broker.proc.pid)
    t_sent = next((t for t, b in samples if b is not None and b >= wire1), None)
    events = w.events(VALUE_CHANGED)[n_before:]
    seqs = [pt.seq(e) for e in events if e["requestId"] is None]
    in_order = seqs == list(range(start_seq, start_seq + n))
    return {
        "emitted": emitted, "received": len(seqs), "in_order": in_order and ok,
        "emit_s": t_emit, "rate": n / (t_last - t0),
        "sent_rate": n / (t_sent - t0) if t_sent else None,
        "cpu_us": (cpu1 - cpu0) * 1e6 / n,
        "cpu_pct": (cpu1 - cpu0) / (t_last - t0) * 100,
        "broker_pct": (bcpu1 - bcpu0) / (t_last - t0) * 100,
        "wire": (wire1 - wire0) / n if wire0 is not None and wire1 is not None else None,
        "events": events,
    }


def paced(w, clock, n, rate, size, start_seq):
    pid = w.daemon.proc.pid
    sent = {}
    cpu0 = cpu_seconds(pid)
    period = 1.0 / rate
    t_start = time.monotonic()
    for i in range(n):
        target = t_start + i * period
        d = target - time.monotonic()
        if d > 0:
            time.sleep(d)
        seq = start_seq + i
        sent[seq] = time.monotonic()
        w.mock.notify(pt.A, pt.bf.NUS, pt.bf.NUS_TX, 1, start=seq, size=size)
    pt.st.wait_until(lambda: clock.count(start_seq, start_seq + n) >= n, 60, 0.05)
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
                      "byte sent, sampled every 10 ms)" % (f["sent_rate"], "modem" if wire_pid != pid else "daemon"))
            print("flood: daemon CPU %.1f us per notification (%.0f%% of a core); mosquitto %.0f%% of a core"
                  % (f["cpu_us"], f["cpu_pct"], f["broker_pct"]))
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
            got = [e for e in w.events(VALUE_CHANGED)[n_before:] if e["requestId"] is None]
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
