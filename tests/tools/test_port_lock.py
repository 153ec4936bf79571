# SPDX-License-Identifier: MIT
"""nrfcloud-gatewayctl on a port where nothing answers, and the port locks.

A pty whose other side never answers stands for the wrong UART: the tool must
give up with exit code 4 within its probe timeout instead of hanging.  While a
tool holds the port, every other path to the same device (a symlink, a
relative path) is refused with exit code 3, and the UUCP lock file
LCK..<device> that picocom and minicom honour holds its PID in the HDB format.
"""

import os
import pty
import shutil
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from simfixture import CTL, ctl_env, make_workdir, wait_for  # noqa: E402

# What gatewayctl promises (CTL_PROBE_TIMEOUT_USEC, 5 s) plus room for a slow machine.
PROBE_BOUND = 12


class SilentPty:
    """A pty whose master reads and drops everything: nothing ever answers."""

    def __init__(self):
        self.master, slave = pty.openpty()
        self.path = os.ttyname(slave)
        os.close(slave)
        self.stop = False
        self.thread = threading.Thread(target=self.drain, daemon=True)
        self.thread.start()

    def drain(self):
        while not self.stop:
            try:
                os.read(self.master, 4096)
            except OSError:
                time.sleep(0.05)

    def close(self):
        self.stop = True
        os.close(self.master)


class PortLockTest(unittest.TestCase):
    def setUp(self):
        self.dir = make_workdir("portlock-")
        self.env = ctl_env(self.dir)
        self.lockdir = os.path.join(self.dir, "lock")
        os.mkdir(self.lockdir)
        self.env["NRFCLOUD_GATEWAY_LOCK_DIR"] = self.lockdir
        self.conf = os.path.join(self.dir, "empty.conf")
        self.pty = SilentPty()
        self.link = os.path.join(self.dir, "nrf91")
        os.symlink(self.pty.path, self.link)
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.pty.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def ctl(self, port, *args, cwd=None, timeout=60):
        return subprocess.run([os.path.abspath(CTL), "identity", "--port", port, "--config", self.conf] + list(args),
                              env=self.env, capture_output=True, text=True, timeout=timeout, cwd=cwd)

    def start_holder(self, port):
        """A gatewayctl that holds the port while it probes the silent modem."""
        p = subprocess.Popen([CTL, "identity", "--port", port, "--config", self.conf], env=self.env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        wait_for(lambda: os.path.exists(self.lck(os.path.basename(self.pty.path))), 5, "the holder's lock file")
        return p

    def lck(self, name):
        return os.path.join(self.lockdir, "LCK.." + name)

    def test_silent_port_exits_4_within_timeout(self):
        t0 = time.monotonic()
        r = self.ctl(self.pty.path, timeout=120)
        took = time.monotonic() - t0
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertIn("does not answer", r.stderr)
        self.assertLess(took, PROBE_BOUND, "identity gave up after %.1f s" % took)
        # Nothing is left behind.
        self.assertEqual(os.listdir(self.lockdir), [])

    def test_lock_across_paths(self):
        holder = self.start_holder(self.link)
        dev = os.path.basename(self.pty.path)
        # The HDB UUCP format: ten characters, the PID right-aligned, a newline;
        # under the device's name and under the symlink's name.
        for name in (dev, "nrf91"):
            with open(self.lck(name)) as f:
                self.assertEqual(f.read(), "%10d\n" % holder.pid)

        # The device itself, the symlink, and relative paths to both are refused.
        cases = [(self.pty.path, None), (self.link, None), ("nrf91", self.dir),
                 (os.path.join("pts", dev), "/dev"), ("./" + dev, os.path.dirname(self.pty.path))]
        for port, cwd in cases:
            r = self.ctl(port, cwd=cwd)
            self.assertEqual(r.returncode, 3, "%s (cwd %s): %s" % (port, cwd, r.stderr))
            self.assertIn("in use by process %d" % holder.pid, r.stderr)

        holder.wait(PROBE_BOUND)
        self.assertEqual(holder.returncode, 4)
        self.assertEqual(os.listdir(self.lockdir), [])

    def test_foreign_uucp_lock(self):
        dev = os.path.basename(self.pty.path)
        # A terminal program (picocom, minicom) holds the port: a live PID.
        other = subprocess.Popen(["sleep", "60"])
        self.procs.append(other)
        with open(self.lck(dev), "w") as f:
            f.write("%10d\n" % other.pid)
        r = self.ctl(self.link)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("in use by process %d" % other.pid, r.stderr)
        with open(self.lck(dev)) as f:
            self.assertEqual(f.read(), "%10d\n" % other.pid, "a live lock must stay")

        # Its process is gone: the lock is stale and broken; the tool gets as far as the modem.
        other.kill()
        other.wait()
        r = self.ctl(self.link, timeout=120)
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertEqual(os.listdir(self.lockdir), [])

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv"), "needs root and setpriv")
    def test_stale_lock_of_another_user(self):
        # A root nrfcloud-gatewayctl was killed: its LCK file stays in the sticky
        # lock folder, where the service user cannot remove it.  It must not keep
        # the port closed.
        dev = os.path.basename(self.pty.path)
        dead = subprocess.Popen(["true"])
        dead.wait()
        with open(self.lck(dev), "w") as f:
            f.write("%10d\n" % dead.pid)
        os.chmod(self.lockdir, 0o1777)
        os.chmod(self.pty.path, 0o666)
        for d in (self.dir, os.path.join(self.dir, "run")):
            os.chmod(d, 0o777)
        os.chmod(self.conf, 0o644)
        # A copy the unprivileged user can reach, wherever the build tree is.
        ctl = os.path.join(self.dir, "nrfcloud-gatewayctl")
        shutil.copy(CTL, ctl)
        os.chmod(ctl, 0o755)
        t0 = time.monotonic()
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            ctl, "identity", "--port", self.pty.path, "--config", self.conf],
                           env=self.env, capture_output=True, text=True, timeout=120)
        # Past the locks to the (silent) modem: exit 4, not "cannot open".
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertIn("does not answer", r.stderr)
        self.assertLess(time.monotonic() - t0, PROBE_BOUND)


if __name__ == "__main__":
    unittest.main(verbosity=2)
