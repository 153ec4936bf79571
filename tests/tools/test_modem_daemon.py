# SPDX-License-Identifier: MIT
"""The daemon's modem manager against nrf91-sim on a pty: ready, identity, reboots, restarts, a vanishing pty."""

import os
import shutil
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from simfixture import CTL, DAEMON, Sim, ctl_env, make_workdir, wait_for  # noqa: E402

UUID = "6784b83c-68f4-4ef9-adf2-a29f1bfff682"


class ModemDaemonTest(unittest.TestCase):
    def setUp(self):
        self.dir = make_workdir("modem-daemon-")
        self.env = ctl_env(self.dir)
        self.sim = Sim(self.dir, UUID, imei="352656109480783")
        self.sim.start()
        self.conf = os.path.join(self.dir, "gateway.conf")
        with open(self.conf, "w") as f:
            # LocationIntervalSec=0: no REST request to api.nrfcloud.com from a test.
            f.write("[Modem]\nPort=%s\n\n[Cloud]\nLocationIntervalSec=0\n\n[Log]\nLevel=info\n" % self.sim.link)
        self.log_path = os.path.join(self.dir, "daemon.log")
        self.daemon = None

    def tearDown(self):
        self.stop_daemon()
        self.sim.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start_daemon(self):
        with open(self.log_path, "a") as log:
            self.daemon = subprocess.Popen([DAEMON, "--config", self.conf], env=self.env, stdout=log,
                                           stderr=subprocess.STDOUT)

    def stop_daemon(self):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(10)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
                self.fail("the daemon did not stop on SIGTERM")
        self.daemon = None

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_count(self, text, count, timeout=20):
        wait_for(lambda: self.log().count(text) >= count, timeout,
                 "%d x '%s' in the daemon's log:\n%s" % (count, text, self.log() if os.path.exists(self.log_path)
                                                          else ""))

    def test_ready_identity_and_missing_credentials(self):
        self.start_daemon()
        self.wait_count("Modem ready", 1)
        log = self.log()
        self.assertIn("device id %s" % UUID, log)
        self.assertIn("modem firmware mfw_nrf9160", log)
        # The IMEI is personal data: redacted at info level.
        self.assertIn("IMEI 35265610XXXXXX3", log)
        self.assertNotIn("352656109480783", log)
        self.assertIn("lacks: root CA certificate, client certificate, client private key", log)
        self.assertIn("nrfcloud-gatewayctl provision", log)

        # After provisioning, nothing is missing any more.
        self.stop_daemon()
        ca = os.path.join(self.dir, "ca")
        subprocess.run([CTL, "ca", "create", "--out-dir", ca], check=True, capture_output=True)
        r = subprocess.run([CTL, "provision", "--port", self.sim.link, "--config", self.conf, "--ca-cert",
                            os.path.join(ca, "ca.pem"), "--ca-key", os.path.join(ca, "ca-key.pem")],
                           env=self.env, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        before = self.log().count("lacks:")
        self.start_daemon()
        self.wait_count("Modem ready", 2)
        self.assertEqual(self.log().count("lacks:"), before)

    def test_absent_port_is_watched_not_polled(self):
        """A configured port that does not exist yet (no USB device plugged in) is
        waited for with inotify: no open attempts while it is absent, and it is
        opened as soon as it appears."""
        self.sim.stop()
        wait_for(lambda: not os.path.lexists(self.sim.link), 5, "the pty link to go")
        with open(self.conf, "w") as f:
            f.write("[Modem]\nPort=%s\n\n[Cloud]\nLocationIntervalSec=0\n\n[Log]\nLevel=debug\n" % self.sim.link)
        self.start_daemon()
        self.wait_count("Cannot open modem port", 1)
        self.wait_count("waiting for ttyNRF91 to appear in %s" % self.dir, 1)
        # Retrying with backoff made an attempt at 0.2, 0.6, 1.4, 3 s...: none now.
        time.sleep(3)
        self.assertNotIn(": attempt ", self.log())
        self.sim.start()
        self.wait_count("ttyNRF91 appeared, trying it", 1, timeout=5)
        self.wait_count("Modem ready", 1, timeout=10)

    def test_survives_reboot_restart_and_vanishing_pty(self):
        self.start_daemon()
        self.wait_count("Modem ready", 1)

        # The firmware restarts: "Ready" in the ready state means start over.
        self.assertEqual(self.sim.command("reboot"), "OK")
        self.wait_count("restarted, starting over", 1)
        self.wait_count("Modem ready", 2)

        # The pty vanishes and comes back at the same path: lost once, back once.
        self.assertEqual(self.sim.command("vanish 1500"), "OK")
        self.wait_count("lost", 1)
        self.wait_count("is back", 1)
        self.wait_count("Modem ready", 3)
        self.assertEqual(self.log().count("lost"), 1)

        # The emulator process itself is restarted.
        self.sim.restart()
        self.wait_count("Modem ready", 4, timeout=30)
        self.assertEqual(self.daemon.poll(), None)
        self.assertEqual(self.log().count(" lost:"), 2)
        self.assertEqual(self.log().count("is back"), 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
