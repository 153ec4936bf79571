# SPDX-License-Identifier: MIT
"""Benchmark of BLE device FOTA through the whole gateway (prints figures;
not a test).

The parts are those of tests/blefota/test_blefota.py: the stand-in for nRF
Cloud with its BLE job service, the HTTPS file server, nrf91-sim downloading
for the gateway, the BlueZ fixture with the MCUmgr SMP double (and the nRF5
Secure DFU double), and nrfcloud-gatewayd.  For an image of --kib KB:

  1. the fixture's own maximum rate: a plain writer (this script, through
     BlueZ's D-Bus API of the fixture, as the daemon writes) sends the same
     number of bytes to the same SMP characteristic, in write commands of
     MTU-3 bytes (frames the SMP double reads and drops without answering),
     one write in flight (as the daemon's BLE layer does) and --window in
     flight; the better of the two is the fixture's maximum;
  2. the SMP transfer's rate: image bytes over the time from FotaStage
     "transferring" to "testing" on the device's Device1 object (followed
     with nrfcloud-gatewayctl monitor --json; it includes the image list
     before and after the upload and the test request), and the steady rate
     between the first and the last FotaBytesDone of the upload;
  3. time from the job's arrival on jobs/ble/rcv to SUCCEEDED on
     jobs/ble/update, and its parts (download through the nRF91, transfer,
     reset and confirmation);
  4. the daemon's memory during the job: peak of USS (Private_Clean +
     Private_Dirty), Pss and Rss from /proc/PID/smaps_rollup, sampled every
     10 ms, against the same before the job; and VmHWM.
With --protocol nrf5 (or both) the same for an nRF5 SDK Secure DFU device
(init packet and firmware, two files); a daemon that does not update nRF5
devices answers the job REJECTED "FOTA type not supported", and the bench
says so and skips it.

Usage: NRFGW_BUILD_DIR=build /usr/bin/python3 tests/bench/blefota_bench.py [--kib 256] [--mtu 247]
       [--protocol smp|nrf5|both] [--window 8] [--answer-ms 0]
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import threading
import time

import dbus
import dbus.mainloop.glib
from gi.repository import GLib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "blefota"))
sys.path.insert(0, os.path.join(HERE, "..", "ble"))
import test_blefota as tb  # noqa: E402
import smp_target as smp  # noqa: E402
import nrfdfu_target as dfu  # noqa: E402

ft, cj, pt, st = tb.ft, tb.cj, tb.pt, tb.st
KB = 1024
A = "C0:FF:EE:00:03:01"  # SMP
B = "C0:FF:EE:00:03:10"  # nRF5 (its bootloader at ...:11)
API_ROOT = "/io/github/nrfcloud_gateway"


# ---- the plain writer ----

def smp_chrc_path(conn, dev_path):
    om = dbus.Interface(conn.get_object("org.bluez", "/"), "org.freedesktop.DBus.ObjectManager")
    for path, ifaces in om.GetManagedObjects().items():
        c = ifaces.get("org.bluez.GattCharacteristic1")
        if c and str(path).startswith(dev_path + "/") and str(c["UUID"]).lower() == smp.SMP_CHR:
            return str(path)
    raise RuntimeError("no SMP characteristic under %s" % dev_path)


def plain_frames(total, size):
    """Write commands of size bytes adding up to total: each a whole SMP frame with op 1 (a read
    response), which the double reads and drops without answering (and without storing)."""
    frames, seq = [], 0
    for off in range(0, total, size):
        n = min(size, total - off)
        body = max(0, n - 8)
        frames.append(dbus.ByteArray(bytes([1, 0, body >> 8, body & 0xff, 0, 0, seq & 0xff, 0]) + bytes(body)))
        seq += 1
    return frames


def plain_writer(address, path, total, size, window):
    """Seconds to write total bytes as write commands of size bytes: one call in flight, and window in flight."""
    conn = dbus.bus.BusConnection(address)
    try:
        chrc = dbus.Interface(conn.get_object("org.bluez", path), "org.bluez.GattCharacteristic1")
        opts = dbus.Dictionary({"type": "command"}, signature="sv")
        frames = plain_frames(total, size)
        t0 = time.monotonic()
        for f in frames:
            chrc.WriteValue(f, opts)
        serial = time.monotonic() - t0
    finally:
        conn.close()

    # Several in flight: asynchronous calls on a GLib loop of this thread.
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    conn = dbus.bus.BusConnection(address)
    loop = GLib.MainLoop()
    state = {"next": 0, "done": 0, "errors": []}
    frames = plain_frames(total, size)
    chrc = dbus.Interface(conn.get_object("org.bluez", path), "org.bluez.GattCharacteristic1")

    def send():
        i = state["next"]
        state["next"] += 1
        chrc.WriteValue(frames[i], opts, reply_handler=replied, error_handler=failed)

    def replied():
        state["done"] += 1
        if state["next"] < len(frames):
            send()
        elif state["done"] == len(frames):
            loop.quit()

    def failed(e):
        state["errors"].append(str(e))
        replied()

    t0 = time.monotonic()
    for _ in range(min(window, len(frames))):
        send()
    loop.run()
    windowed = time.monotonic() - t0
    conn.close()
    if state["errors"]:
        raise RuntimeError("the plain writer's writes failed: %s" % state["errors"][:3])
    return serial, windowed


# ---- what the daemon shows, and its memory ----

class Monitor:
    """nrfcloud-gatewayctl monitor --json: (time, changed) of each device's Device1 signal."""

    def __init__(self):
        self.events = []
        self.proc = subprocess.Popen([ft.sf.CTL, "monitor", "--json"], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        time.sleep(0.5)

    def _read(self):
        for line in self.proc.stdout:
            t = time.monotonic()
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("interface") == "Device1" and "changed" in e:
                self.events.append((t, e["path"], e["changed"]))

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.thread.join(10)
        self.proc.stdout.close()

    def device(self, address, since):
        path = API_ROOT + "/dev_" + address.replace(":", "_")
        return [(t, c) for t, p, c in self.events if p == path and t >= since]


def memory(pid):
    """kB: USS (Private_Clean + Private_Dirty), Pss, Rss of smaps_rollup; VmRSS, VmHWM of status."""
    m = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":"):
                m[parts[0][:-1]] = int(parts[1])
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                m[line.split(":")[0]] = int(line.split()[1])
    return {"USS": m.get("Private_Clean", 0) + m.get("Private_Dirty", 0), "Pss": m.get("Pss", 0),
            "Rss": m.get("Rss", 0), "VmRSS": m.get("VmRSS", 0), "VmHWM": m.get("VmHWM", 0)}


class Sampler:
    def __init__(self, pid, period=0.01):
        self.pid, self.period, self.peak, self.stop_ = pid, period, {}, threading.Event()
        self.samples = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop_.is_set():
            try:
                m = memory(self.pid)
            except OSError:
                return
            self.samples += 1
            for k, v in m.items():
                self.peak[k] = max(self.peak.get(k, 0), v)
            time.sleep(self.period)

    def stop(self):
        self.stop_.set()
        self.thread.join(5)
        return self.peak


def record_update_times(w):
    """(time, array) of every jobs/ble/update, on the stand-in's side."""
    timed, handle = [], w.ble.handle

    def wrapped(topic, payload):
        if topic == w.ble.base + "update":
            timed.append((time.monotonic(), json.loads(payload)))
        return handle(topic, payload)
    w.ble.handle = wrapped
    return timed


# ---- one job ----

def run_job(w, mon, timed, job, address, size, check):
    pid = w.daemon.proc.pid
    time.sleep(0.5)
    before = memory(pid)
    sampler = Sampler(pid)
    t0 = time.monotonic()
    w.ble.offer(job)
    final = w.ble.wait_final(job[1], 600)
    t_final = time.monotonic()
    peak = sampler.stop()
    time.sleep(0.3)
    after = memory(pid)
    r = {"final": final, "total": t_final - t0, "before": before, "peak": peak, "after": after,
         "samples": sampler.samples}
    if final != [address, job[1], cj.SUCCEEDED, ""]:
        return r
    r["ok"] = check()
    ups = [(t, u) for t, u in timed if u[1] == job[1]]
    r["t_download"] = next((t for t, u in ups if u[2] == cj.DOWNLOADING and u[3] == 100), t0) - t0
    t_inprog = next((t for t, u in ups if u[2] == cj.IN_PROGRESS), None)
    ev = mon.device(address, t0)
    t_tr = next((t for t, c in ev if c.get("FotaStage") == "transferring"), None)
    t_te = next((t for t, c in ev if c.get("FotaStage") == "testing"), None)
    if t_tr and t_te:
        r["transfer"] = t_te - t_tr
        r["rate"] = size / r["transfer"]
        prog = [(t, c["FotaBytesDone"]) for t, c in ev if t_tr <= t < t_te and c.get("FotaBytesDone")]
        if len(prog) >= 2 and prog[-1][0] > prog[0][0]:
            r["steady"] = (prog[-1][1] - prog[0][1]) / (prog[-1][0] - prog[0][0])
        r["signals"] = len([1 for t, c in ev if t_tr <= t <= t_te])
        r["reset_confirm"] = t_final - t_te
    elif t_inprog:
        # No stage signals (a protocol that does not report them): IN_PROGRESS -> SUCCEEDED, an upper bound.
        r["transfer_upper"] = t_final - t_inprog
    return r


def print_result(label, r, size, fixture_rate):
    if r.get("skipped"):
        print("%s: skipped: %s" % (label, r["skipped"]))
        return
    if r["final"] is None or r["final"][2] != cj.SUCCEEDED:
        print("%s: the job ended %s (no figures)" % (label, r["final"]))
        return
    print("%s, %d KB image: job received -> SUCCEEDED %.2f s (download through the nRF91 %.2f s; image on the "
          "device identical to the file served: %s)" % (label, size // KB, r["total"], r["t_download"],
                                                       "yes" if r["ok"] else "NO"))
    if "rate" in r:
        steady = ("steady upload rate %.0f B/s (%.0f %%)" % (r["steady"], 100 * r["steady"] / fixture_rate)
                  if "steady" in r else "too short for a steady rate from two FotaBytesDone signals")
        print("    transfer to the device (FotaStage transferring -> testing, %d signals) %.3f s: %.0f B/s = "
              "%.0f %% of the plain writer's %.0f B/s; %s; reset, reconnection, image list and confirm %.2f s"
              % (r["signals"], r["transfer"], r["rate"], 100 * r["rate"] / fixture_rate, fixture_rate, steady,
                 r["reset_confirm"]))
    elif "transfer_upper" in r:
        print("    IN_PROGRESS -> SUCCEEDED %.3f s (transfer, reset and verification; no FotaStage signals): "
              "%.0f B/s at least = %.0f %% of the plain writer's %.0f B/s"
              % (r["transfer_upper"], size / r["transfer_upper"], 100 * size / r["transfer_upper"] / fixture_rate,
                 fixture_rate))
    b, p, a = r["before"], r["peak"], r["after"]
    print("    daemon memory (kB), before / peak during the job (%d samples) / after: USS %d / %d / %d, "
          "Pss %d / %d / %d, Rss %d / %d / %d; VmHWM %d -> %d"
          % (r["samples"], b["USS"], p["USS"], a["USS"], b["Pss"], p["Pss"], a["Pss"], b["Rss"], p["Rss"],
             a["Rss"], b["VmHWM"], a["VmHWM"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kib", type=int, default=256)
    ap.add_argument("--mtu", type=int, default=247)
    ap.add_argument("--window", type=int, default=8)
    ap.add_argument("--protocol", choices=("smp", "nrf5", "both"), default="both")
    ap.add_argument("--answer-ms", type=float, default=0,
                    help="the SMP double answers each request this much later (a real link's connection events)")
    args = ap.parse_args()
    size = args.kib * KB

    tmp, pki, cert = pt.make_pki()
    w = mon = None
    try:
        devices = {A: {"version": [1, 0, 0], "slot_size": 2 * size + 64 * KB, "mtu": args.mtu,
                       "answer_ms": args.answer_ms}}
        w = tb.BleFotaWorld(pki, cert, pt.subdir(tmp, "bench"), devices)
        timed = record_update_times(w)
        w.wait_asked(A)

        # 1. The fixture's own rate, through the same bus, characteristic, MTU and write type.
        path = smp_chrc_path(w.mock.conn, w.paths[A])
        serial, windowed = plain_writer(w.bus.address, path, size, args.mtu - 3, args.window)
        fixture_rate = max(size / serial, size / windowed)
        print("plain writer, %d bytes in write commands of %d bytes: one in flight %.3f s (%.0f B/s), %d in flight "
              "%.3f s (%.0f B/s)" % (size, args.mtu - 3, serial, size / serial, args.window, windowed,
                                     size / windowed))
        mon = Monitor()
        results = []

        if args.protocol in ("smp", "both"):
            image = smp.make_image((2, 0, 0), size, seed=21)
            job = w.ble_job("bench-smp", A, "zephyr/bench.bin", image)
            r = run_job(w, mon, timed, job, A, size,
                        lambda: w.slot(A, 0) == image and w.smp_state(A)["version"] == "2.0.0")
            results.append(("MCUmgr SMP" + (", answers %g ms late" % args.answer_ms if args.answer_ms else ""), r))

        if args.protocol in ("nrf5", "both"):
            dev = str(w.fx.NrfDfuAddDevice("hci0", B, json.dumps({"version": 3, "mtu": args.mtu,
                                                                   "bank_size": 2 * size + 64 * KB})))
            w.peer.delta({"desiredConnections": [A, B]})
            w.wait_asked(B)
            fw = hashlib.shake_256(b"bench nrf5").digest(size)
            init = dfu.make_init_packet(fw, fw_version=4)
            w.files.add("nrf5/bench.dat", init)
            w.files.add("nrf5/bench.bin", fw)
            job = [B, "bench-nrf5", cj.APP, len(init) + len(fw), w.files.host, "nrf5/bench.dat nrf5/bench.bin"]
            r = run_job(w, mon, timed, job, B, size, lambda: bytes(w.fx.NrfDfuFirmware(dev)) == fw)
            if r["final"] == [B, job[1], cj.REJECTED, ft.E_UNSUPPORTED]:
                r["skipped"] = ("this daemon does not update nRF5 SDK devices (the job was answered REJECTED "
                                "\"FOTA type not supported\"); run the bench again on a daemon that does")
            results.append(("nRF5 Secure DFU", r))

        print()
        for label, r in results:
            print_result(label, r, size, fixture_rate)
        return 0 if all(r.get("skipped") or r.get("ok") for _, r in results) else 1
    finally:
        if mon:
            mon.close()
        if w:
            w.close()
        tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
