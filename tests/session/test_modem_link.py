# SPDX-License-Identifier: MIT
"""A stalled or silent nRF91 link is found, whatever the MQTT keepalive
(issue 13 §3).  The real nrfcloud-gatewayd in TLS=modem mode through a
provisioned nrf91-sim, against mosquitto and the stand-in for nRF Cloud, with
the default KeepAliveSec=1200:

* the sim's `short-recv 4096 100` fault writes a #XRECV header promising 4096
  bytes followed by 100 (a UART that dropped the rest).  Before, the AT engine
  took every later line as payload and the idle gateway logged nothing and
  answered nothing for the keepalive's 20 minutes; now the payload times out,
  the link is resynchronised, the modem's socket dropped and the session
  comes back within seconds;
* the sim's `drop 3` fault loses the answers of the next three commands, the
  first of which is the idle link check: found within LinkCheckSec plus the
  check's timeout."""

import os
import re
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sessiontest as st  # noqa: E402

DEVICE = "0b6d7f1e-93a4-4c2b-8e15-4a7c2d9f3e60"
C2G = f"{st.PREFIX}gateways/{DEVICE}/c2g"


class ModemLink(st.ModemCase):
    DEVICE = DEVICE

    def setUp(self):
        super().setUp()
        self.assertTrue(st.wait_until(lambda: "Received SUBSCRIBE from %s" % st.ct.PEER_ID in self.broker.log_text()))
        self.daemon = st.Daemon(os.path.join(self.dir, "daemon"), self.broker, self.pki, DEVICE, self.cert,
                                extra_conf="[Modem]\nLinkCheckSec=3\n", modem=(self.sim.link, self.runtime))

    def tearDown(self):
        self.stop_daemon()

    def answers_c2g(self):
        """A c2g operation gets an answer on g2c (an error: no device by that address): MQTT flows again."""
        before = len(self.peer.received(f"{st.PREFIX}gateways/{DEVICE}/g2c"))
        self.peer.c2g({"type": "operation", "id": "link-%d" % time.monotonic_ns(),
                       "operation": {"type": "device_characteristic_value_read", "deviceAddress": "C0:FF:EE:00:00:01",
                                     "serviceUUID": "180F", "characteristicUUID": "2A19"}})
        self.assertTrue(st.wait_until(lambda: len(self.peer.received(f"{st.PREFIX}gateways/{DEVICE}/g2c")) > before,
                                      20), self.daemon.log()[-2000:])

    def test_short_payload(self):
        self.ready(1)
        t0 = time.monotonic()
        self.assertEqual(self.sim.command("short-recv 4096 100"), "OK")
        self.assertTrue(self.daemon.wait_log("lost bytes: '#XRECV: ", timeout=10), self.daemon.log()[-2000:])
        self.ready(2)
        took = time.monotonic() - t0
        log = self.daemon.log()
        line = [x for x in log.splitlines() if "lost bytes" in x]
        # 100 bytes, and whatever came behind them within the gap (the answer to a link check).
        self.assertEqual(len(line), 1, line)
        m = re.search(r"'#XRECV: 0,4096' announced 4096 bytes, (\d+) came before the link went quiet", line[0])
        self.assertIsNotNone(m, line[0])
        # The 100 bytes and what the sim wrote behind them within the gap (a link check's answer,
        # a URC): more than 100, never the whole 4096.
        self.assertGreaterEqual(int(m.group(1)), 100, line[0])
        self.assertLess(int(m.group(1)), 4096, line[0])
        self.assertLess(took, 60)
        self.answers_c2g()
        print("%s\nshort #XRECV payload: found and back in service after %.1f s" % (line[0], took))

    def test_silent_link(self):
        self.ready(1)
        time.sleep(1)
        t0 = time.monotonic()
        self.assertEqual(self.sim.command("drop 3"), "OK")
        self.assertTrue(self.daemon.wait_log("failed its check", timeout=30), self.daemon.log()[-2000:])
        found = time.monotonic() - t0
        # LinkCheckSec=3 plus the check's 5 s timeout, with room for a loaded machine.
        self.assertLess(found, 15)
        self.ready(2)
        self.answers_c2g()
        print("unanswered link check: found after %.1f s, back in service after %.1f s" %
              (found, time.monotonic() - t0))


    def test_restart_with_pending_output(self):
        """A daemon restarted against a modem that still owes the killed daemon an
        answer: the answer comes after the new daemon opened the port."""
        self.ready(1)
        # Every answer of the modem comes 1.5 s late from now on; the idle
        # link check (LinkCheckSec=3) sends an AT whose answer is then pending.
        self.sim.command("delay 1500")
        sent = self.daemon.log().count("--> AT")
        self.assertTrue(self.daemon.wait_log("--> AT", timeout=10, count=sent + 1), self.daemon.log()[-2000:])
        self.daemon.proc.send_signal(signal.SIGKILL)
        self.daemon.stop()
        self.sim.command("delay 0")
        self.daemon = st.Daemon(os.path.join(self.dir, "daemon2"), self.broker, self.pki, self.DEVICE, self.cert,
                                extra_conf="[Modem]\nLinkCheckSec=3\n", modem=(self.sim.link, self.daemon.runtime_dir))
        self.ready(1)
        log = self.daemon.log()
        # The late answer is swallowed by the synchronisation at open: the probe's
        # commands each get their own answer, none times out, nothing is retried.
        self.assertNotIn("did not answer", log, log[-3000:])
        self.assertIn("synchronising before the first command", log)
        self.assertNotIn("timed out", log, log[-3000:])
        self.assertNotIn("lost sync", log, log[-3000:])


if __name__ == "__main__":
    unittest.main(verbosity=2)
