# SPDX-License-Identifier: MIT
"""The shipped systemd unit: the directives the daemon relies on, and its
hardening as measured by systemd-analyze security."""

import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from nrfgw_test import BUILD_DIR  # noqa: E402

UNIT = os.path.join(BUILD_DIR, "systemd", "nrfcloud-gatewayd.service")


class UnitTest(unittest.TestCase):
    def setUp(self):
        with open(UNIT) as f:
            self.text = f.read()

    def directive(self, name):
        return re.findall(rf"(?m)^{name}=(.*)$", self.text)

    def test_notify_watchdog_reload(self):
        self.assertEqual(self.directive("Type"), ["notify"])
        self.assertTrue(self.directive("WatchdogSec"))
        self.assertEqual(self.directive("Restart"), ["on-failure"])
        self.assertIn("-HUP $MAINPID", self.directive("ExecReload")[0])

    def test_user_and_directories(self):
        self.assertEqual(self.directive("User"), ["nrfcloud-gateway"])
        self.assertEqual(self.directive("SupplementaryGroups"), ["dialout"])
        self.assertEqual(self.directive("StateDirectory"), ["nrfcloud-gateway"])
        self.assertEqual(self.directive("ConfigurationDirectory"), ["nrfcloud-gateway"])
        # The outbox keeps messages not yet acknowledged in the runtime directory: kept across restarts.
        self.assertEqual(self.directive("RuntimeDirectory"), ["nrfcloud-gateway"])
        self.assertEqual(self.directive("RuntimeDirectoryPreserve"), ["restart"])

    def test_device_access(self):
        self.assertEqual(self.directive("DevicePolicy"), ["closed"])
        self.assertIn("char-ttyACM rw", self.directive("DeviceAllow"))
        self.assertEqual(self.directive("PrivateDevices"), [], "PrivateDevices= would hide the modem tty")

    def test_proc_subset(self):
        # The daemon reads only /proc/self; the bridge's peer check needs no /proc/net
        # (protocol-modem-proc-subset-pid runs the daemon with /proc mounted so).
        self.assertEqual(self.directive("ProcSubset"), ["pid"])
        self.assertEqual(self.directive("ProtectProc"), ["invisible"])

    def test_exposure(self):
        if not shutil.which("systemd-analyze"):
            self.skipTest("systemd-analyze not installed")
        r = subprocess.run(["systemd-analyze", "security", "--offline=yes", UNIT],
                           capture_output=True, text=True, timeout=60)
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
        self.assertIsNotNone(m, r.stdout + r.stderr)
        print(f"systemd-analyze security exposure: {m.group(1)}")
        self.assertLessEqual(float(m.group(1)), 1.5)
        # Each setting the daemon can live with is set: what is left is what it needs (the
        # network, the modem tty, netlink for sock_diag, its groups).
        self.assertRegex(r.stdout, r"(?m)^\S+ ProcSubset=\s")
        self.assertNotRegex(r.stdout, r"(?m)^✗ ProcSubset=")


if __name__ == "__main__":
    unittest.main(verbosity=2)
