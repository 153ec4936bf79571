# SPDX-License-Identifier: MIT
"""How often Paho's threads wake the loop: at a steady 100 messages/s through
the outbox, the PUBACKs are handed to the loop without a wake-up of their own
(the loop takes them at its next publish, or a timer at most 100 ms later),
so the loop is woken a few times for the whole run (connection, subscription)
instead of once per message, and every message still arrives, in order, and
leaves the outbox.  Counts, not times: the harness reports the session's
wake-ups (mqtt_session_wakeups())."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cloudtest as ct  # noqa: E402

DEVICE = "0d6b2e4f-8a1c-4f37-9e5d-3c7a1b2f4e60"
COUNT = 300


class Wakeups(unittest.TestCase):
    def setUp(self):
        self.tmp = ct.TempDir("cloud-wakeups-")
        self.pki = ct.Pki(os.path.join(self.tmp.path, "pki"))
        self.broker = ct.Broker(os.path.join(self.tmp.path, "broker"), self.pki, verbose=False)
        self.broker.start()
        self.peer = ct.Peer(self.broker, self.pki, [ct.g2c_topic(DEVICE)])
        self.peer.start()
        self.assertTrue(self.peer.connected.wait(10), "the test peer could not connect")
        self.h = None

    def tearDown(self):
        if self.h:
            self.h.kill()
        self.peer.stop()
        self.broker.stop()
        self.tmp.cleanup()

    def test_acknowledgements_do_not_wake_the_loop(self):
        args = ct.harness_args(self.broker, self.pki, DEVICE, os.path.join(self.tmp.path, "state"),
                               extra=["--count", str(COUNT), "--rate", "100", "--exit-when-done"])
        self.h = ct.Harness(self.tmp.path, "harness", args)
        # "done" comes once the outbox is empty: every PUBACK was taken by the loop.
        self.assertIsNotNone(self.h.wait_line("done ", 60), self.h.stderr()[-3000:])
        stats = self.h.stats()
        self.assertEqual(self.h.wait(20), 0, self.h.stderr()[-3000:])
        self.assertEqual(stats["acked"], COUNT)
        deadline = time.monotonic() + 10
        while len(self.peer.numbers(ct.g2c_topic(DEVICE))) < COUNT and time.monotonic() < deadline:
            time.sleep(0.1)
        numbers = self.peer.numbers(ct.g2c_topic(DEVICE))
        self.assertEqual(sorted(set(numbers)), list(range(COUNT)))
        self.assertEqual(numbers, sorted(numbers))
        # Before: a wake-up per batch of PUBACKs (34 in a run, the harness pushing in bursts); now
        # the connection's own events only.
        self.assertLess(stats["wakeups"], 10, stats)
        print("%d messages at 100/s: %d wake-ups of the loop by Paho's threads" % (COUNT, stats["wakeups"]))


if __name__ == "__main__":
    unittest.main()
