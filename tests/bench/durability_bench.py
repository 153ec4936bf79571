# SPDX-License-Identifier: MIT
"""What the outbox costs the SD card (prints figures; not a test).

The real nrfcloud-gatewayd (TLS=host) takes BLE notifications from the BlueZ
mock at a steady rate (default 100/s) and publishes them to mosquitto (mutual
TLS), where the stand-in for nRF Cloud takes them.  The daemon's runtime
directory is put on a tmpfs (/dev/shm), as systemd's /run is; its state
directory is on the disk of the test folder.  Measured:

  1. cloud reachable, for --seconds: bytes the daemon made the kernel write
     to block devices (/proc/PID/io write_bytes, minus cancelled_write_bytes;
     tmpfs writes are not counted there, and the daemon's own log, at the
     warning level, is counted but is empty at steady state), and the bytes
     added to the state directory's outbox files; sync calls (fsync,
     fdatasync, sync_file_range, syncfs, msync) per second, counted by
     `strace -c` attached to every thread of the daemon;
  2. an outage of --outage seconds (the broker frozen with SIGSTOP) at the
     same rate, then the broker resumed: the same counts during the outage,
     and whether every notification emitted arrived, first arrivals in order,
     and how long the backlog took to go out.

Usage: NRFGW_BUILD_DIR=build /usr/bin/python3 tests/bench/durability_bench.py [--rate 100] [--seconds 30]
       [--outage 60] [--sync-interval N]
--sync-interval sets [Buffer] SyncIntervalSec= (0: a sync per message, as
before); leave it out for the daemon's default (and for builds without the
key)."""

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "protocol"))
import prototest as pt  # noqa: E402
import test_power_cut as tpc  # noqa: E402
import test_protocol_loss as tpl  # noqa: E402

SYNC_CALLS = "fsync,fdatasync,sync_file_range,syncfs,msync,sync"


def io_bytes(pid):
    v = {}
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            k, n = line.split(":")
            v[k] = int(n)
    return v["write_bytes"] - v["cancelled_write_bytes"], v["wchar"]


def outbox_bytes(state_dir):
    folder = os.path.join(state_dir, "outbox")
    return sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder) if n.endswith(".seg"))


class SyncCounter:
    """strace -c on every thread of pid, for the sync calls only."""

    def __init__(self, pid):
        tids = os.listdir("/proc/%d/task" % pid)
        args = ["strace", "-c", "-f", "-e", "trace=" + SYNC_CALLS]
        for t in tids:
            args += ["-p", t]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)  # attached

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=30)
        calls = 0
        for line in err.splitlines():
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", line)
            if m and m.group(2) in SYNC_CALLS.split(","):
                calls += int(m.group(1))
        return calls


def measure(w, emitter, seconds):
    """(notifications emitted, bytes to block devices, bytes added to the outbox files, sync calls) over
    seconds."""
    pid = w.daemon.proc.pid
    counter = SyncCounter(pid)
    b0, _ = io_bytes(pid)
    o0 = outbox_bytes(w.state_dir)
    n0 = emitter.next
    time.sleep(seconds)
    n = emitter.next - n0
    b1, _ = io_bytes(pid)
    o1 = outbox_bytes(w.state_dir)
    return n, b1 - b0, o1 - o0, counter.stop()


class BenchWorld(tpl.LossWorld):
    """The loss tests' world, its daemon at the warning level (nothing logged per message) with extra."""

    extra = ""

    def start_daemon(self):
        self.daemon = pt.Daemon(os.path.join(self.folder, "daemon"), self.broker, self.pki, pt.DEVICE, self.cert,
                                self.extra, "warning", modem=self.modem)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--outage", type=float, default=60.0)
    ap.add_argument("--sync-interval", type=int, default=None)
    a = ap.parse_args()
    tpc.RATE = a.rate

    tmp, pki, cert = pt.make_pki()
    shm = tempfile.mkdtemp(prefix="durability-bench-", dir="/dev/shm")
    os.environ["NRFGW_TEST_RUNTIME_DIR"] = os.path.join(shm, "run")
    # The cloud's own limit as the publish budget, so that 100 notifications/s do not back up.
    extra = "[Cloud]\nMaxPublishRate=100\n"
    extra += "" if a.sync_interval is None else "[Buffer]\nSyncIntervalSec=%d\n" % a.sync_interval
    w = None
    try:
        BenchWorld.extra = extra
        w = BenchWorld(pki, cert, pt.subdir(tmp, "bench"))
        w.wait_ready(pt.A, timeout=60)
        w.subscribe()
        arrivals = tpl.Arrivals(w.peer)
        emitter = tpc.TimedEmitter(w.bus, 1)
        emitter.start()
        arrivals.wait(lambda nums: len(set(nums)) >= int(a.rate * 3), 60)
        setting = "default" if a.sync_interval is None else str(a.sync_interval)

        n, disk, outbox, syncs = measure(w, emitter, a.seconds)
        print("cloud reachable, %.0f notifications/s for %.0f s (%d), SyncIntervalSec=%s: %.0f B/s written to block "
              "devices by the daemon, %.0f B/s added to the state directory's outbox files, %.2f sync calls/s "
              "(%d in all)" % (n / a.seconds, a.seconds, n, setting, disk / a.seconds, outbox / a.seconds,
                               syncs / a.seconds, syncs))

        if a.outage > 0:
            os.kill(w.broker.proc.pid, signal.SIGSTOP)
            n, disk, outbox, syncs = measure(w, emitter, a.outage)
            os.kill(w.broker.proc.pid, signal.SIGCONT)
            t_resume = time.monotonic()
            print("outage of %.0f s (broker frozen), %.0f notifications/s (%d): %.0f B/s written to block devices, "
                  "%.0f B/s to the outbox files, %.2f sync calls/s (%d in all)"
                  % (a.outage, n / a.outage, n, disk / a.outage, outbox / a.outage, syncs / a.outage, syncs))
            emitter.stop()
            emitted = set(emitter.times)
            ok = arrivals.wait(lambda nums: emitted <= set(nums), max(120.0, a.outage * 2), idle=60)
            t_drain = time.monotonic() - t_resume
            numbers = arrivals.update()
            seen, first = set(), []
            for x in numbers:
                if x not in seen:
                    seen.add(x)
                    first.append(x)
            in_order = all(b > c for c, b in zip(first, first[1:]))
            print("after the outage: %d of %d emitted notifications delivered%s, first arrivals %s, %d duplicate "
                  "arrival(s); the backlog went out in %.1f s"
                  % (len(emitted & seen), len(emitted), "" if ok else " (MISSING SOME)",
                     "in order" if in_order else "OUT OF ORDER", len(numbers) - len(seen), t_drain))
        else:
            emitter.stop()
    finally:
        if w:
            w.close()
        tmp.cleanup()
        subprocess.run(["rm", "-rf", shm])


if __name__ == "__main__":
    main()
