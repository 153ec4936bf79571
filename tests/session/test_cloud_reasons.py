# SPDX-License-Identifier: MIT
"""What the daemon says when the cloud connection through the modem fails or
ends (TLS=modem, nrf91-sim, mosquitto):

* a TLS handshake the modem refuses is said once, by the modem's TLS socket,
  with its reason; the session's retry line names no placeholder address and
  no errno of its own beside it;
* a broker that shuts down (it closes its connections) is "the broker closed
  the connection", not a keepalive timeout;
* a client that takes the gateway's client id makes the broker close the
  gateway's connection: said the same way; with TLS=host, where Paho owns the
  socket, "closed by the broker or the network" (it cannot tell which), not
  a keepalive timeout."""

import os
import re
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sessiontest as st  # noqa: E402

DEVICE = "7c1e5a90-2b64-4f3d-9e81-5a6b7c8d9e01"


class CloudReasons(st.ModemCase):
    DEVICE = DEVICE
    BROKER_VERBOSE = False

    def start_daemon(self, broker, modem=True):
        self.daemon = st.Daemon(os.path.join(self.dir, "daemon"), broker, self.pki, DEVICE, self.cert,
                                modem=(self.sim.link, self.runtime) if modem else None)

    def tearDown(self):
        self.stop_daemon()

    def lines(self, pattern):
        return [x for x in self.daemon.log().splitlines() if re.search(pattern, x)]

    def lost_lines(self):
        return self.lines(r"Cloud connection lost: ")

    def test_tls_failure_said_once(self):
        """The broker's certificate names another host: the modem refuses the handshake."""
        bad = st.Broker(os.path.join(self.dir, "broker-wrong-host"), self.pki, server=self.pki.wrong_host,
                        verbose=False)
        bad.start()
        self.addCleanup(bad.stop)
        self.start_daemon(bad)
        cause = r"Modem TLS connection to localhost:%d failed at #XCONNECT" % bad.port
        self.assertTrue(st.wait_until(lambda: len(self.lines(cause)) >= 2, 60), self.daemon.log()[-3000:])
        attempts = self.lines(r"Cannot connect")
        print("\n".join(self.lines(cause)[:1] + attempts[:2]))
        # The session's retry lines: no placeholder address, no made-up errno.
        for line in attempts:
            self.assertNotIn("127.0.0.1:1", line)
            self.assertNotIn("Permission denied", line)
        # Said once: the modem's line is the only warning of each attempt.
        self.assertEqual([x for x in attempts if "warning" in x.lower()], [], attempts)

    def test_broker_shutdown(self):
        self.start_daemon(self.broker)
        self.ready(1)
        self.broker.stop()
        self.assertTrue(st.wait_until(lambda: self.lost_lines(), 30), self.daemon.log()[-3000:])
        self.broker.start()
        self.ready(2)
        lost = self.lost_lines()
        print(lost[0])
        self.assertIn("the broker closed the connection", lost[0])
        self.assertNotIn("keepalive", lost[0])

    def test_taken_over(self):
        self.start_daemon(self.broker)
        self.ready(1)
        st.kick(self.broker, self.pki, DEVICE)
        self.ready(2)
        lost = self.lost_lines()
        print(lost[0])
        self.assertIn("the broker closed the connection", lost[0])
        self.assertNotIn("keepalive", lost[0])


    def test_taken_over_host_tls(self):
        """TLS=host: Paho's own socket; the broker closed it long before a keepalive
        timeout could have (KeepAliveSec= is 1200 s)."""
        self.start_daemon(self.broker, modem=False)
        self.ready(1)
        st.kick(self.broker, self.pki, DEVICE)
        self.ready(2)
        lost = self.lost_lines()
        print(lost[0])
        self.assertIn("connection closed by the broker or the network", lost[0])
        self.assertNotIn("keepalive", lost[0])


if __name__ == "__main__":
    unittest.main(verbosity=2)
