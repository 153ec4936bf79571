# SPDX-License-Identifier: MIT
"""[Buffer] SyncIntervalSec=: what reaches the state directory, and what a
power cut keeps.

The real nrfcloud-gatewayd (TLS=host) with its runtime directory, as systemd
gives it (RuntimeDirectory=, here a folder of the test), gets BLE
notifications at 100/s from the BlueZ mock; mosquitto and the stand-in for
nRF Cloud take them.

  1. With the cloud acknowledging promptly, no notification is written to the
     outbox in the state directory: its segment files are parsed record by
     record (the format of daemon/cloud/outbox.h) and hold no notification
     entry (fewer than a tenth of those delivered are tolerated, for a
     machine that stalls an acknowledgement for over a second).  Before
     SyncIntervalSec= every message was written there.
  2. A power cut during an outage: the broker is frozen (SIGSTOP) so that
     nothing is acknowledged, notifications go on for a few seconds, then the
     daemon is frozen (SIGSTOP), its state directory copied as it is at that
     instant, and the daemon killed.  A new daemon starts on the copy alone,
     with an empty runtime directory (a reboot empties the tmpfs).  Every
     notification emitted more than SyncIntervalSec (1 s, the default) plus
     a margin of 1 s before the freeze must reach the cloud, first arrivals
     in order; those of the last moments may be lost, and their count is
     printed.

The copy holds what the kernel had not yet written to the disk too, so this
test checks that the messages were moved to the state directory in time; that
they are synced there (fdatasync) is checked by the outbox's unit tests
(tests/cloud/test-outbox.c) and counted by tests/bench/durability_bench.py."""

import os
import shutil
import signal
import struct
import sys
import threading
import time
import unittest

import dbus

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prototest as pt  # noqa: E402
import test_protocol_loss as tpl  # noqa: E402

st, bf = pt.st, pt.bf
RATE = 100.0
INTERVAL = 1.0  # SyncIntervalSec= default
MARGIN = 1.0    # D-Bus delivery, the timer's slack, a loaded machine
RECORD = struct.Struct("<IBBHIQI")  # magic, type, class, topic length, payload length, seq, CRC
MAGIC, ENTRY, NOTIFICATION = 0x52424F58, 1, 0


def notification_records(state_dir):
    """The notification ENTRY records in the segment files of <state_dir>/outbox."""
    n = 0
    folder = os.path.join(state_dir, "outbox")
    for name in os.listdir(folder):
        if not name.endswith(".seg"):
            continue
        with open(os.path.join(folder, name), "rb") as f:
            data = f.read()
        off = 8
        while off + RECORD.size <= len(data):
            magic, typ, cls, tlen, plen, _, _ = RECORD.unpack_from(data, off)
            if magic != MAGIC:
                break
            if typ == ENTRY and cls == NOTIFICATION:
                n += 1
            off += RECORD.size + tlen + plen
    return n


class TimedEmitter(threading.Thread):
    """Notifications first, first+1, ... of device A at RATE, one per D-Bus call;
    notes when each call returned (the mock has sent the signal)."""

    def __init__(self, bus, first):
        super().__init__(daemon=True)
        self.conn = dbus.bus.BusConnection(bus.address)
        self.fx = dbus.Interface(self.conn.get_object("org.bluez", "/"), "org.nrfgw.BluezFixture")
        self.next = first
        self.times = {}
        self.lock = threading.Lock()
        self.stopping = False
        self.error = None

    def run(self):
        try:
            t0, k = time.monotonic(), 0
            while True:
                delay = t0 + k / RATE - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                with self.lock:
                    if self.stopping:
                        return
                    self.fx.Notify(bf.BluezMock.path(pt.A), bf.NUS, bf.NUS_TX, dbus.UInt32(1),
                                   dbus.UInt32(self.next), dbus.UInt32(tpl.SIZE), timeout=60)
                    self.times[self.next] = time.monotonic()
                    self.next += 1
                k += 1
        except Exception as e:  # reported by the test
            self.error = e
        finally:
            self.conn.close()

    def stop(self):
        with self.lock:
            self.stopping = True
        self.join(30)


class PowerCut(pt.WorldTestCase):
    def test_power_cut_loses_at_most_the_interval(self):
        name = self.id().split(".")[-1]
        w = self.w = tpl.LossWorld(self.pki, self.cert, pt.subdir(self.tmp, name))
        w.wait_ready(pt.A, timeout=tpl.ANSWER_TIMEOUT)
        w.subscribe()
        arrivals = tpl.Arrivals(w.peer)

        # 1. The cloud acknowledges promptly: nothing of it reaches the state directory.
        emitter = TimedEmitter(w.bus, 1)
        emitter.start()
        self.addCleanup(emitter.stop)
        self.assertTrue(arrivals.wait(lambda nums: len(set(nums)) >= 500, 60), w.daemon.log()[-3000:])
        self.assertIsNone(emitter.error)
        on_disk = notification_records(w.state_dir)
        delivered = arrivals.distinct()
        print("cloud reachable: %d notification(s) delivered, %d written to the state directory"
              % (delivered, on_disk))
        # None, normally; a few only if the machine stalled an acknowledgement for over a second.
        self.assertLess(on_disk, delivered // 10, "%d of %d notifications written to the state directory while "
                                                  "the cloud acknowledged them" % (on_disk, delivered))

        # 2. An outage, then a power cut.
        os.kill(w.broker.proc.pid, signal.SIGSTOP)
        outage = time.monotonic()
        time.sleep(4.0)
        emitter.stop()
        self.assertIsNone(emitter.error)
        os.kill(w.daemon.proc.pid, signal.SIGSTOP)
        t_cut = time.monotonic()
        after = os.path.join(w.folder, "after-power-cut")
        os.makedirs(after)
        shutil.copytree(w.state_dir, os.path.join(after, "state"), symlinks=True)
        spilled = notification_records(os.path.join(after, "state"))
        w.kill_daemon()
        os.kill(w.broker.proc.pid, signal.SIGCONT)
        times = dict(emitter.times)
        required = {n for n, t in times.items() if t <= t_cut - INTERVAL - MARGIN}
        self.assertGreater(len([n for n in required if times[n] >= outage]), 150,
                           "too few notifications emitted during the outage")

        # Only the copy, with an empty runtime directory: what survives a power cut.
        w.daemon = pt.Daemon(after, w.broker, w.pki, pt.DEVICE, w.cert, "", "info")
        self.assertFalse(os.listdir(w.daemon.runtime_dir) if os.path.isdir(w.daemon.runtime_dir) else [])
        self.assertTrue(w.daemon.wait_log("Cloud connected", tpl.ANSWER_TIMEOUT), w.daemon.log()[-3000:])
        arrivals.wait(lambda nums: required <= set(nums), 90, idle=30)
        time.sleep(1.0)
        numbers = arrivals.update()
        dups, twice = st.ct.check_delivery_of(self, numbers, required, set(times))
        got = set(numbers)
        late = [n for n in times if n not in required]
        lost = [n for n in late if n not in got]
        print("power cut after a %.1f s outage at %.0f notifications/s: %d emitted, %d in the state directory "
              "at the cut; all %d emitted more than %.1f s before it delivered, first arrivals in order; of the "
              "%d emitted later, %d lost; %d duplicate arrival(s)"
              % (t_cut - outage, RATE, len(times), spilled, len(required), INTERVAL + MARGIN, len(late), len(lost),
                 dups))


if __name__ == "__main__":
    unittest.main(verbosity=2)
