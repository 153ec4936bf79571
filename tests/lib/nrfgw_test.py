# SPDX-License-Identifier: MIT
"""Helpers shared by the integration tests: paths, temp dirs, a NOTIFY_SOCKET
listener, free ports and process control by PID."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

BUILD_DIR = os.environ.get("NRFGW_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SOURCE_DIR = os.environ.get("NRFGW_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
# NRFGW_DAEMON: another build of the daemon (scripts/package.sh runs the arm64 one under qemu-user).
DAEMON = os.environ.get("NRFGW_DAEMON") or os.path.join(BUILD_DIR, "daemon", "nrfcloud-gatewayd")

EX_USAGE = 64
EX_CONFIG = 78


class TempDir:
    """A private temporary directory, removed at the end of the test."""

    def __init__(self, prefix="nrfgw-test-", base=None):
        self.path = tempfile.mkdtemp(prefix=prefix, dir=base)

    def file(self, name, text=None, mode=None):
        p = os.path.join(self.path, name)
        if text is not None:
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                f.write(text)
            if mode is not None:
                os.chmod(p, mode)
        return p

    def cleanup(self):
        """Removes the folder, unless NRFGW_KEEP_TMP is set (to look at a failed test's files)."""
        if os.environ.get("NRFGW_KEEP_TMP"):
            print("kept", self.path)
            return
        shutil.rmtree(self.path, ignore_errors=True)


class NotifySocket:
    """Plays systemd's side of sd_notify(3): a datagram socket the daemon writes to."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []

    def receive(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return None
        msg = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        self.messages.append(msg)
        return msg

    def wait_for(self, key, value=None, timeout=10.0):
        """Waits for a message carrying key (=value); returns it, or None on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.receive(max(0.01, deadline - time.monotonic()))
            if msg is not None and key in msg and (value is None or msg[key] == value):
                return msg
        return None

    def close(self):
        self.sock.close()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc, timeout=5.0):
    """Stops a process we started, by PID: SIGTERM, then SIGKILL."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def wait_for_file_text(path, text, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path, errors="replace") as f:
                if text in f.read():
                    return True
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    return False
