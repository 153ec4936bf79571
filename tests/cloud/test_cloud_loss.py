# SPDX-License-Identifier: MIT
"""Loss tests, counted message by message: 10 000 g2c messages go through the
outbox while the broker is restarted twice, and while the publisher is killed
with SIGKILL twice and started again.  Every message taken into the outbox
must reach the stand-in for nRF Cloud at least once, and the first arrivals
must be in order.  Delivery is at-least-once: duplicates are counted and
printed, not refused.

The broker keeps its state across restarts (persistence on, saved when it is
stopped) and the peer has a persistent session, so that what the broker
acknowledged to the gateway is not lost between broker and peer: the test is
about the gateway's side."""

import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cloudtest as ct  # noqa: E402

DEVICE = "6c2a1f0e-9b7d-4c55-8e3a-2d4f6a8b0c1d"
COUNT = int(os.environ.get("NRFGW_LOSS_COUNT", "10000"))
RATE = "1000"


class Loss(unittest.TestCase):
    def setUp(self):
        self.tmp = ct.TempDir("cloud-loss-")
        self.pki = ct.Pki(os.path.join(self.tmp.path, "pki"))
        self.broker = ct.Broker(os.path.join(self.tmp.path, "broker"), self.pki, persistence=True, verbose=False)
        self.broker.start()
        self.peer = ct.Peer(self.broker, self.pki, [ct.g2c_topic(DEVICE)], clean=False)
        self.peer.start()
        self.assertTrue(self.peer.connected.wait(10), "the test peer could not connect")
        self.cert = self.pki.device(DEVICE)
        self.state = os.path.join(self.tmp.path, "state")
        self.harnesses = []

    def tearDown(self):
        for h in self.harnesses:
            h.kill()
        self.peer.stop()
        self.broker.stop()
        self.tmp.cleanup()

    def start_harness(self, name, more=()):
        args = ct.harness_args(self.broker, self.pki, DEVICE, self.state, cert=self.cert,
                               extra=["--count", str(COUNT), "--rate", RATE, "--exit-when-done", "--progress",
                                      "--reconnect-min-ms", "200", "--reconnect-max-ms", "1000"] + list(more))
        h = ct.Harness(self.tmp.path, name, args)
        self.harnesses.append(h)
        return h

    def wait_peer(self, timeout):
        topic = ct.g2c_topic(DEVICE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(set(self.peer.numbers(topic))) >= COUNT:
                break
            time.sleep(0.2)
        time.sleep(0.5)  # let late duplicates in, so that they are counted
        return self.peer.numbers(topic)

    def test_broker_restarted_twice(self):
        self.broker_restarts("restarts")

    def test_broker_restarted_twice_bridged(self):
        """The same through the modem-mode bridge (an OpenSSL socket standing in for the nRF91's)."""
        self.broker_restarts("restarts-bridged", ["--bridge"])

    def broker_restarts(self, name, more=()):
        h = self.start_harness(name, more)
        self.assertIsNotNone(h.wait_line("state ready", 15), h.stderr()[-2000:])
        for _ in range(2):
            time.sleep(3)
            self.broker.stop()
            time.sleep(1.5)
            self.broker.start()
        self.assertEqual(h.wait(120), 0, h.stderr()[-3000:])
        numbers = self.wait_peer(30)
        dups = ct.check_delivery(self, numbers, COUNT)
        err = h.stderr()
        self.assertEqual(err.count("Cloud connection lost"), 2, err[-3000:])
        self.assertEqual(err.count("Cloud connected"), 3, err[-3000:])
        print("%s: %d messages, all delivered in order, %d duplicate(s); %s" % (name, COUNT, dups, h.stats()))

    def test_publisher_killed_twice(self):
        h = self.start_harness("run1")
        for run in (2, 3):
            self.assertIsNotNone(h.wait_line("state ready", 15), h.stderr()[-2000:])
            time.sleep(3)
            h.kill(signal.SIGKILL)
            h = self.start_harness("run%d" % run)
        self.assertEqual(h.wait(120), 0, h.stderr()[-3000:])
        numbers = self.wait_peer(30)
        dups = ct.check_delivery(self, numbers, COUNT)
        print("publisher killed twice: %d messages, all delivered in order, %d duplicate(s)" % (COUNT, dups))


if __name__ == "__main__":
    unittest.main(verbosity=2)
