# SPDX-License-Identifier: MIT
"""Loss tests of the whole gateway, counted message by message.

The real nrfcloud-gatewayd turns BLE notifications from the BlueZ mock into
g2c device_characteristic_value_changed events, which go through its outbox
to mosquitto (mutual TLS, the gateway ACL) and the stand-in for nRF Cloud.
Each notification value carries a sequence number (prototest.seq()).
NRFGW_LOSS_COUNT notifications (default 10 000) are emitted at a steady rate
while:

  1. host TLS: the broker is restarted twice;
  2. modem TLS through nrf91-sim: the nRF91 link vanishes for 30 s (the sim's
     fault injection, as in tests/transport/test_modem_tls_loss.py);
  3. host TLS: the daemon is killed with SIGKILL and started again on the same
     state directory, twice, the second time while the broker is frozen
     (SIGSTOP), so that the outbox holds a backlog at the kill.

The guarantee checked is the daemon's: at-least-once, in order.  An outbox
entry is removed only on PUBACK; after a reconnect or a restart the
unacknowledged entries are sent again, so the broker may get a message twice.
Every message accepted into the outbox must arrive; the first arrivals must
be in increasing order; duplicates are counted and printed, not refused.

Which messages were accepted: in 1 and 2 every notification emitted (the daemon
runs throughout).  In 3, at each kill, the messages delivered so far plus those
the outbox holds (read with `nrfcloud-gatewayctl outbox --json` while the
daemon is dead).  The daemon takes notifications in order, so every number up
to the highest accepted one must have been accepted; those after it were still
in the D-Bus queue, or emitted while the daemon was dead or not yet subscribed
again, and are reported as not accepted.

The broker keeps its state across restarts (persistence, saved when it stops)
and the peer has a persistent session, so that what the broker acknowledged to
the gateway is not lost between broker and peer: the tests are about the
gateway's side.  Run one test with PROTOCOL_LOSS_TEST=<name>; NRFGW_LOSS_COUNT
and NRFGW_LOSS_RATE (notifications/s: 500, 250 for the modem test, whose
notifications flow before, during and after the 30 s) change the load."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import unittest

import dbus

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prototest as pt  # noqa: E402

st, bf, sf = pt.st, pt.bf, pt.sf
COUNT = int(os.environ.get("NRFGW_LOSS_COUNT", "10000"))
SIZE = 20  # bytes of each notification value
ANSWER_TIMEOUT = 60.0


class Emitter(threading.Thread):
    """Emits notifications 1..count of device A's NUS TX characteristic at a
    steady rate, in batches, on its own D-Bus connection.  hold() pauses it
    between batches, so that the test can note the next number at a fault."""

    def __init__(self, bus, count, rate, batch=25):
        super().__init__(daemon=True)
        conn = dbus.bus.BusConnection(bus.address)
        self.conn = conn
        self.fx = dbus.Interface(conn.get_object("org.bluez", "/"), "org.nrfgw.BluezFixture")
        self.count, self.rate, self.batch = count, rate, batch
        self.next = 1  # the next number to emit
        self.lock = threading.Lock()
        self.error = None
        self.t_start = self.t_end = None

    def run(self):
        try:
            self.t_start = time.monotonic()
            while self.next <= self.count:
                due = self.t_start + (self.next - 1) / self.rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                with self.lock:
                    n = min(self.batch, self.count - self.next + 1)
                    self.fx.Notify(bf.BluezMock.path(pt.A), bf.NUS, bf.NUS_TX, dbus.UInt32(n),
                                   dbus.UInt32(self.next), dbus.UInt32(SIZE), timeout=120)
                    self.next += n
            self.t_end = time.monotonic()
        except Exception as e:  # reported by the test
            self.error = e
        finally:
            self.conn.close()

    def hold(self):
        return self.lock


class Arrivals:
    """The sequence numbers of the notifications the stand-in for nRF Cloud
    received, in arrival order, parsed once each."""

    def __init__(self, peer):
        self.peer = peer
        self.seen = 0
        self.numbers = []

    def update(self):
        msgs = self.peer.received(pt.G2C)
        for _, p in msgs[self.seen:]:
            e = json.loads(p)
            if e["event"]["type"] == "device_characteristic_value_changed" and e.get("requestId") == "N/A":
                self.numbers.append(pt.seq(e))
        self.seen = len(msgs)
        return self.numbers

    def distinct(self):
        return len(set(self.update()))

    def wait(self, predicate, timeout, step=0.1, idle=None):
        """Until predicate(numbers), for at most timeout seconds, or idle seconds without a new arrival."""
        deadline = time.monotonic() + timeout
        last_count, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            numbers = self.update()
            if predicate(numbers):
                return True
            if len(numbers) != last_count:
                last_count, last_change = len(numbers), time.monotonic()
            elif idle and time.monotonic() - last_change > idle:
                break
            time.sleep(step)
        return predicate(self.update())


class LossWorld(pt.World):
    """pt.World with a persistent broker and a persistent session for the peer,
    only device A, and the daemon at info level (a debug line per message would
    slow it down and fill the disk)."""

    def __init__(self, pki, cert, folder, modem=False):
        self.folder = folder
        self.daemon = self.peer = self.broker = self.bus = self.mock = self.sim = None
        self.pki, self.cert, self.modem = pki, cert, None
        self.killed = []  # daemons killed by the test, for their logs
        self.bus = bf.Bus(folder)
        self.mock = bf.BluezMock(self.bus, folder)
        self.mock.add_device(pt.A, name="sensor-a")
        self.broker = st.Broker(os.path.join(folder, "broker"), pki, persistence=True)
        self.broker.start()
        self.peer = st.CloudPeer(self.broker, pki, pt.DEVICE, desired_connections=[pt.A])
        self.peer.clean = False
        self.peer.start()
        if not self.peer.connected.wait(10):
            raise RuntimeError("the stand-in for nRF Cloud could not connect")
        st.wait_until(lambda: "Received SUBSCRIBE from %s" % st.ct.PEER_ID in self.broker.log_text())
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = self.bus.address
        if modem:
            self.modem = self.provisioned_sim(pki)
        self.start_daemon()

    def start_daemon(self):
        folder = os.path.join(self.folder, "daemon")
        if self.daemon:
            # The same folder (and state directory) again; keep the old log.
            os.replace(self.daemon.err_path, "%s.%d" % (self.daemon.err_path, len(self.killed)))
            os.unlink(self.daemon.notify_path)
        self.daemon = pt.Daemon(folder, self.broker, self.pki, pt.DEVICE, self.cert, "", "info", modem=self.modem)

    def kill_daemon(self):
        os.kill(self.daemon.proc.pid, signal.SIGKILL)
        self.daemon.proc.wait(10)
        self.daemon.stop()  # closes the notify socket
        self.killed.append(self.daemon)

    @property
    def state_dir(self):
        return os.path.join(self.folder, "daemon", "state")

    def subscribe(self):
        """nRF Cloud subscribes to A's NUS TX notifications (CCCD write), as after a gateway restart."""
        rid = self.c2g({"type": "device_descriptor_value_write", "deviceAddress": pt.A, "serviceUUID": pt.NUS,
                        "characteristicUUID": pt.NUS_TX, "descriptorUUID": "2902", "descriptorValue": [1, 0]})
        got = self.answers(rid, 1, ANSWER_TIMEOUT)
        types = [e["event"]["type"] for e in got]
        if "device_descriptor_value_write_result" not in types:
            raise AssertionError("the subscription was refused: %s" % got)

    def events(self, type_=None):
        # Only what the setup waits for: the notifications are counted by Arrivals.
        out = []
        for _, p in self.peer.received(pt.G2C):
            if b"device_characteristic_value_changed" in p and b'"requestId":"N/A"' in p:
                continue
            e = json.loads(p)
            if type_ is None or e["event"]["type"] == type_:
                out.append(e)
        return out


class ProtocolLoss(pt.WorldTestCase):
    def setUp(self):
        super().setUp()
        self.t0 = time.monotonic()

    def tearDown(self):
        super().tearDown()
        if not self.w:
            return
        # The logs of the daemons the test killed.
        for path in sorted(os.listdir(os.path.join(self.w.folder, "daemon"))):
            if path.startswith("daemon.stderr."):
                with open(os.path.join(self.w.folder, "daemon", path), errors="replace") as f:
                    text = f.read()
                self.assertNotIn("AddressSanitizer", text, path)
                self.assertNotIn("runtime error", text, path)

    def world(self, modem=False):
        name = self.id().split(".")[-1]
        self.w = LossWorld(self.pki, self.cert, pt.subdir(self.tmp, name), modem=modem)
        self.w.wait_ready(pt.A, timeout=ANSWER_TIMEOUT)
        self.w.subscribe()
        return self.w

    def emit(self, rate):
        e = Emitter(self.w.bus, COUNT, rate)
        e.start()
        self.addCleanup(e.join, 30)
        return e

    def wait_progress(self, arrivals, emitter, at_least, timeout=60):
        ok = arrivals.wait(lambda nums: len(set(nums)) >= at_least or emitter.error, timeout)
        self.assertIsNone(emitter.error)
        self.assertTrue(ok, "no progress: %d of %d delivered\n%s" % (arrivals.distinct(), at_least,
                                                                      self.w.daemon.log()[-3000:]))

    def finish(self, arrivals, emitter, required, timeout, idle=30):
        emitter.join(300)
        self.assertIsNone(emitter.error, "the emitter failed")
        self.assertFalse(emitter.is_alive())
        t_emit = emitter.t_end - emitter.t_start
        # Done when every accepted number is in, or when nothing has come for idle seconds (a loss).
        arrivals.wait(lambda nums: required <= set(nums), timeout, idle=idle)
        time.sleep(1.0)  # late duplicates, so that they are counted
        numbers = arrivals.update()
        emitted = set(range(1, COUNT + 1))
        dups, twice = st.ct.check_delivery_of(self, numbers, required, emitted)
        return numbers, dups, twice, t_emit

    def report(self, what, numbers, required, dups, twice, t_emit, extra=""):
        print("%s: %d notifications emitted in %.1f s, %d accepted, %d delivered (all accepted, first arrivals in "
              "order), %d duplicate arrival(s)%s%s; %.1f s in all" %
              (what, COUNT, t_emit, len(required), len(set(numbers)), dups,
               " (of %s%s)" % (twice[:20], "..." if len(twice) > 20 else "") if twice else "", extra,
               time.monotonic() - self.t0))

    # ---- 1. host TLS, the broker restarted twice ----

    def test_broker_restarted_twice(self):
        w = self.world()
        arrivals = Arrivals(w.peer)
        rate = float(os.environ.get("NRFGW_LOSS_RATE", "500"))
        emitter = self.emit(rate)
        for i, fraction in enumerate((0.2, 0.55)):
            self.wait_progress(arrivals, emitter, int(COUNT * fraction))
            w.broker.stop()
            time.sleep(1.5)
            w.broker.start()
            # Reconnected before the next fault.
            self.assertTrue(w.daemon.wait_log("Cloud connected", ANSWER_TIMEOUT, count=i + 2),
                            w.daemon.log()[-3000:])
        numbers, dups, twice, t_emit = self.finish(arrivals, emitter, set(range(1, COUNT + 1)), 180)
        log = w.daemon.log()
        self.assertEqual(log.count("Cloud connection lost"), 2, log[-3000:])
        self.assertEqual(log.count("Cloud connected"), 3, log[-3000:])
        self.report("host TLS, broker restarted twice", numbers, set(range(1, COUNT + 1)), dups, twice, t_emit)

    # ---- 2. modem TLS through nrf91-sim, the nRF91 link gone for 30 s ----

    def test_modem_link_vanishes_30s(self):
        w = self.world(modem=True)
        arrivals = Arrivals(w.peer)
        # Slower, so that notifications flow before, during and after the 30 s without the link.
        rate = float(os.environ.get("NRFGW_LOSS_RATE", "250"))
        emitter = self.emit(rate)
        self.wait_progress(arrivals, emitter, int(COUNT * 0.15))
        t_fault = time.monotonic()
        print("nrf91-sim: vanish 30000: %s" % w.sim.command("vanish 30000"))
        # Nothing reaches the cloud while the link is gone, but the notifications go on.
        time.sleep(5)
        during = arrivals.distinct()
        time.sleep(2)
        self.assertLessEqual(arrivals.distinct() - during, 0, "messages arrived without the nRF91 link")
        # The emission may end before the link is back: a longer silence is no sign of loss here.
        numbers, dups, twice, t_emit = self.finish(arrivals, emitter, set(range(1, COUNT + 1)), 240, idle=60)
        log = w.daemon.log()
        self.assertGreaterEqual(log.count("Cloud connected"), 2, log[-3000:])
        self.assertGreaterEqual(log.count("Cloud connection lost"), 1, log[-3000:])
        self.report("modem TLS, nRF91 link gone for 30 s", numbers, set(range(1, COUNT + 1)), dups, twice, t_emit,
                    "; link back and drained %.1f s after the fault" % (time.monotonic() - t_fault))

    # ---- 3. host TLS, the daemon killed with SIGKILL and started again ----

    def outbox(self):
        """The g2c notification numbers the outbox holds, by nrfcloud-gatewayctl outbox --json; and the listing."""
        r = subprocess.run([sf.CTL, "outbox", "--state-dir", self.w.state_dir, "--json"], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        listing = json.loads(r.stdout)
        numbers = []
        for e in listing["entries"]:
            if e["topic"] != pt.G2C or e["payload"] is None:
                continue
            ev = json.loads(e["payload"])
            if ev["event"]["type"] == "device_characteristic_value_changed" and ev.get("requestId") == "N/A":
                numbers.append(pt.seq(ev))
        self.assertEqual(numbers, sorted(numbers), "the outbox lists its entries out of order")
        return numbers, listing

    def test_daemon_killed_and_restarted(self):
        w = self.world()
        arrivals = Arrivals(w.peer)
        rate = float(os.environ.get("NRFGW_LOSS_RATE", "500"))
        emitter = self.emit(rate)
        required = set()
        resume = 1  # from this number on, every emitted notification is accepted
        stats = []
        for i, fraction in enumerate((0.25, 0.6)):
            self.wait_progress(arrivals, emitter, int(COUNT * fraction))
            if i == 0:
                # While the daemon runs, the tool refuses its outbox.
                r = subprocess.run([sf.CTL, "outbox", "--state-dir", w.state_dir], capture_output=True, text=True,
                                   timeout=60)
                self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
                self.assertIn("in use by a running nrfcloud-gatewayd", r.stderr)
            frozen = i == 1
            if frozen:
                # A backlog: the broker stops reading; the outbox fills.
                os.kill(w.broker.proc.pid, signal.SIGSTOP)
                time.sleep(2.0)
            with emitter.hold():
                w.kill_daemon()
                killed_at = emitter.next
            if frozen:
                os.kill(w.broker.proc.pid, signal.SIGCONT)
            in_outbox, listing = self.outbox()
            # What the broker had taken before the kill reaches the peer now.
            time.sleep(1.5)
            delivered = set(arrivals.update())
            accepted = delivered | set(in_outbox)
            last = max(n for n in accepted if n < killed_at)
            # In order: everything up to the last accepted number was accepted.
            required |= set(range(resume, last + 1))
            self.assertTrue(set(in_outbox) <= set(range(1, killed_at)), "the outbox holds numbers never emitted")
            w.start_daemon()
            self.assertTrue(w.daemon.wait_log("Cloud connected", ANSWER_TIMEOUT), w.daemon.log()[-3000:])
            w.wait_events(lambda e: e["event"]["type"] == "device_connect_result"
                          and e["event"]["device"]["address"]["address"] == pt.A, i + 2, ANSWER_TIMEOUT)
            w.subscribe()
            resume = emitter.next
            stats.append((i, frozen, in_outbox, listing, len([n for n in delivered if n < killed_at]), last, resume))
            if frozen:
                self.assertGreater(len(in_outbox), 100, "no backlog in the outbox at the kill")
        required |= set(range(resume, COUNT + 1))
        numbers, dups, twice, t_emit = self.finish(arrivals, emitter, required, 180)
        self.assertGreater(len(required), COUNT // 2)
        got = set(numbers)
        text = []
        for i, frozen, in_outbox, listing, before, last, resume in stats:
            gap = range(last + 1, resume)
            lost = len([n for n in gap if n not in got])
            text.append("kill %d%s: %d notification(s) in the outbox (%d entries, %d bytes, %d segment file(s)), "
                        "%d delivered before; of the %d numbers emitted from the last accepted one until the "
                        "daemon was subscribed again, %d never arrived (not accepted: in the D-Bus queue at the "
                        "kill, or emitted while the daemon was dead) and %d did"
                        % (i + 1, " with the broker frozen" if frozen else "", len(in_outbox), listing["count"],
                           listing["bytes"], listing["segments"], before, len(gap), lost, len(gap) - lost))
        self.report("host TLS, daemon killed twice", numbers, required, dups, twice, t_emit, "; " + "; ".join(text))


if __name__ == "__main__":
    name = os.environ.get("PROTOCOL_LOSS_TEST")
    argv = [sys.argv[0]] + (["ProtocolLoss." + name] if name else [])
    unittest.main(argv=argv, verbosity=2)
