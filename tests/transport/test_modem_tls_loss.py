# SPDX-License-Identifier: MIT
"""Loss test of modem TLS mode, counted message by message: 10 000 g2c events
published through the outbox while the nRF91 link (nrf91-sim's pty) is gone
for 30 s.  Delivery is at-least-once and in order: every number arrives, the
first arrivals are in order, duplicates are counted and printed."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_modem_tls as base  # noqa: E402


class ModemTlsLoss(base.ModemTls):
    def test_10000_messages_across_a_30s_link_loss(self):
        err, dup = self.run_with_fault("vanish30", 10000, 500, lambda sim: sim.command("vanish 30000"), 2000,
                                       done_timeout=240)
        self.assertIn("the modem link was lost", err)
        self.assertGreaterEqual(err.count("connected to localhost"), 2, err[-3000:])
        print("10000 messages, 30 s link loss: all delivered in order, %d duplicate(s)" % dup)


# Only the loss test runs from this file.
for name in [n for n in dir(base.ModemTls) if n.startswith("test_")]:
    setattr(ModemTlsLoss, name, None)

if __name__ == "__main__":
    unittest.main(verbosity=2)
