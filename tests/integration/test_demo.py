# SPDX-License-Identifier: MIT
"""README command 1's demo, run for a bounded time: the two simulated devices
connect and are discovered, heart-rate notifications flow, the c2g read,
write and 2902 subscribe get their answers, and everything stops cleanly."""

import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from nrfgw_test import BUILD_DIR, SOURCE_DIR  # noqa: E402


class DemoTest(unittest.TestCase):
    def run_demo(self, tls, *extra, duration=25):
        work = tempfile.mkdtemp(prefix="nrfgw-demo-")
        r = subprocess.run(["/usr/bin/python3", os.path.join(SOURCE_DIR, "scripts", "demo.py"), "--tls", tls,
                            "--workdir", work, "--build-dir", BUILD_DIR, "--duration", str(duration),
                            "--ops-after", "3", *extra], capture_output=True, text=True, timeout=240)
        out = r.stdout
        self.assertEqual(r.returncode, 0, out[-4000:] + r.stderr[-2000:])
        for addr in ("C0:FF:EE:00:00:01", "C0:FF:EE:00:00:02"):
            self.assertRegex(out, r"g2c device_connect_result +%s connected" % addr)
            self.assertRegex(out, r"g2c device_discover_result +%s" % addr)
            self.assertIn("shadow statusConnections.%s = connected" % addr, out)
        self.assertGreaterEqual(len(re.findall(r"180D/2A37 \(heart rate\) = \[0, \d+\]", out)), 3, out[-4000:])
        for op, result in (("device_characteristic_value_read", "device_characteristic_value_read_result"),
                           ("device_characteristic_value_write", "device_characteristic_value_write_result"),
                           ("device_descriptor_value_write", "device_descriptor_value_write_result")):
            rids = re.findall(r"^c2g %s .*\[request (\w+)\]$" % op, out, re.M)
            self.assertTrue(rids, op)
            for rid in rids:
                self.assertRegex(out, r"(?m)^g2c %s .*\[request %s\]$" % (result, rid))
        self.assertIn("nrfcloud-gatewayd exit status: 0", out)
        self.assertNotIn("g2c error", out)
        # Nothing the demo started is left running.
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        self.assertNotIn(work, ps)
        return out

    def test_demo_modem_tls(self):
        """The default: nrf91-sim provisioned by nrfcloud-gatewayctl, TLS in the modem."""
        out = self.run_demo("modem")
        self.assertIn("[9/9] Appending the onboarding row", out)
        self.assertIn("TLS in the nRF91", out)

    def test_demo_host_tls(self):
        self.run_demo("host")

    def test_demo_offline_buffering(self):
        """The broker goes away: the outbox grows in gatewayctl status, and the readings taken
        meanwhile arrive once it is back; then the closing lines."""
        out = self.run_demo("host", "--offline-seconds", "6", duration=70)
        self.assertIn("==> Offline buffering: the broker stops for 6 s", out)
        grown = [int(n) for n in re.findall(r"offline: nrfcloud-gatewayctl status: Cloud \S+, outbox (\d+) message",
                                            out)]
        self.assertTrue(grown and max(grown) > 0, out[-4000:])
        m = re.search(r"(\d+) heart-rate readings taken while the broker was away arrived after it came back, "
                      r"oldest first", out)
        self.assertTrue(m, out[-4000:])
        self.assertGreaterEqual(int(m.group(1)), 3)
        self.assertIn("after:  nrfcloud-gatewayctl status: Cloud ready, outbox 0 message(s)", out)
        self.assertIn("==> The scripted part is over; the demo keeps streaming until Ctrl-C.", out)
        # One line per fact: a desired device is announced once, the connect line names the broker.
        self.assertEqual(out.count("C0:FF:EE:00:00:01: idle → connecting"), 1, out[-4000:])
        self.assertNotIn("is desired, connecting", out)
        self.assertNotIn("Cloud connected to tcp://127.0.0.1", out)

    def test_demo_fota(self):
        """--fota: an application job, its steps, the reset and the new version in the shadow."""
        out = self.run_demo("modem", "--fota", "--fota-after", "1", duration=50)
        self.assertIn("FOTA: nRF Cloud queues an application job: 1.1.0", out)
        steps = re.findall(r"(?m)^jobs/update +demo-fota-1 (\w+) (.*)$", out)
        self.assertEqual(steps[0], ("DOWNLOADING", "0"), out[-4000:])
        self.assertIn(("DOWNLOADING", "100"), steps)
        self.assertEqual(steps[-2:], [("IN_PROGRESS", "''"), ("SUCCEEDED", "''")], out[-4000:])
        self.assertRegex(out, r"(?m)^shadow deviceInfo.appVersion = .*1\.1\.0")
        self.assertIn("the nRF91 runs application 1.1.0", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
