# SPDX-License-Identifier: MIT
"""nrf91-sim on a pty for the tests of the modem side: start, control, stop by PID."""

import atexit
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import termios
import time
import tty

BUILD = os.environ.get("NRFGW_BUILD_DIR", "build")
SIM = os.path.join(BUILD, "firmware_nrf91", "nrf91-sim")
CTL = os.path.join(BUILD, "daemon", "tools", "nrfcloud-gatewayctl")
DAEMON = os.path.join(BUILD, "daemon", "nrfcloud-gatewayd")

# Every pty link here is called ttyNRF91, and the UUCP lock files (LCK..<name>) are per name: the
# processes of one test run lock in a folder of their own, not /run/lock, so that runs outside ctest
# (which gives each test its own) do not take each other's ports.
if not os.environ.get("NRFCLOUD_GATEWAY_LOCK_DIR"):
    _lock_dir = tempfile.mkdtemp(prefix="nrfgw-lock-")
    os.environ["NRFCLOUD_GATEWAY_LOCK_DIR"] = _lock_dir
    atexit.register(shutil.rmtree, _lock_dir, True)


def wait_for(predicate, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


class Sim:
    """One nrf91-sim with its own state directory and pty link."""

    def __init__(self, workdir, uuid, imei="352656100367872"):
        self.workdir = workdir
        self.uuid = uuid
        self.imei = imei
        self.link = os.path.join(workdir, "ttyNRF91")
        self.state = os.path.join(workdir, "sim-state")
        self.control = os.path.join(self.state, "control")
        self.log_path = os.path.join(workdir, "sim.log")
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [SIM, "--pty-link", self.link, "--state-dir", self.state, "--uuid", self.uuid, "--imei", self.imei],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: os.path.exists(self.link) and os.path.exists(self.control), 10, "nrf91-sim's pty")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
            self.log = None

    def restart(self):
        self.stop()
        wait_for(lambda: not os.path.lexists(self.link), 5, "the old pty link to go")
        self.start()

    def command(self, line):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(self.control)
        s.sendall((line + "\n").encode())
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = s.recv(256)
            if not chunk:
                break
            reply += chunk
        s.close()
        return reply.decode().strip()

    def at(self, cmd, timeout=5):
        """Sends one AT command straight to the pty (nothing else may hold it); returns the answer text."""
        fd = os.open(self.link, os.O_RDWR | os.O_NOCTTY)
        try:
            tty.setraw(fd)
            termios.tcflush(fd, termios.TCIOFLUSH)
            os.write(fd, (cmd + "\r\n").encode())
            out = b""
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                r, _, _ = select.select([fd], [], [], 0.1)
                if r:
                    out += os.read(fd, 4096)
                    if out.endswith(b"OK\r\n") or b"ERROR" in out:
                        break
            return out.decode(errors="replace")
        finally:
            os.close(fd)


def make_workdir(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    os.makedirs(os.path.join(d, "run"))
    with open(os.path.join(d, "empty.conf"), "w"):
        pass
    return d


def ctl_env(workdir):
    env = dict(os.environ)
    env["NRFCLOUD_GATEWAY_RUNTIME_DIR"] = os.path.join(workdir, "run")
    return env
