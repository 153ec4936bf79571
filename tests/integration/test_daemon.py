# SPDX-License-Identifier: MIT
"""The real nrfcloud-gatewayd binary under a NOTIFY_SOCKET owned by the test:
readiness, status, reload (valid and invalid), watchdog, graceful stop,
configuration errors, and native journal records."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from nrfgw_test import (DAEMON, EX_CONFIG, EX_USAGE, SOURCE_DIR, NotifySocket, TempDir,  # noqa: E402
                        stop_process, wait_for_file_text)


class DaemonTest(unittest.TestCase):
    def setUp(self):
        self.tmp = TempDir()
        self.notify = NotifySocket(self.tmp.path)
        self.stderr_path = self.tmp.file("stderr.log")
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            stop_process(p)
        if hasattr(self, "stderr"):
            self.stderr.close()
        self.notify.close()
        self.tmp.cleanup()

    def start(self, config_text, extra_env=None, args=(), wrapper=()):
        conf = self.tmp.file("gateway.conf", config_text)
        env = dict(os.environ)
        env.pop("JOURNAL_STREAM", None)
        env["NOTIFY_SOCKET"] = self.notify.path
        env["STATE_DIRECTORY"] = self.tmp.path
        env.update(extra_env or {})
        if hasattr(self, "stderr"):
            self.stderr.close()
        self.stderr = open(self.stderr_path, "w")
        p = subprocess.Popen([*wrapper, DAEMON, "--config", conf, *args], env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr)
        self.procs.append(p)
        return p, conf

    def log(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def test_ready_and_status(self):
        p, _ = self.start("[Log]\nLevel=info\n")
        ready = self.notify.wait_for("READY", "1")
        self.assertIsNotNone(ready, "no READY=1; log:\n" + self.log())
        statuses = [m["STATUS"] for m in self.notify.messages if "STATUS" in m]
        # No modem on the default port: the one line says what the gateway waits for.
        self.assertTrue(any(s.startswith("Waiting for the nRF91 on /dev/nrf91 (") for s in statuses), statuses)
        self.assertIsNone(p.poll())

    def test_reload_valid_then_invalid(self):
        p, conf = self.start("[Log]\nLevel=info\n[Cloud]\nHost=mqtt.nrfcloud.com\n")
        self.assertIsNotNone(self.notify.wait_for("READY", "1"))

        # A valid file: the live key is applied, the restart-only key is named.
        with open(conf, "w") as f:
            f.write("[Log]\nLevel=debug\n[Cloud]\nHost=broker.example.com\n")
        p.send_signal(signal.SIGHUP)
        self.assertIsNotNone(self.notify.wait_for("RELOADING", "1"))
        self.assertIsNotNone(self.notify.wait_for("READY", "1"))
        self.assertTrue(wait_for_file_text(self.stderr_path, "Configuration reloaded, 2 key(s) changed"), self.log())
        log = self.log()
        self.assertIn("[Log] Level changed from 'info' to 'debug', applied", log)
        self.assertIn("[Cloud] Host changed from 'mqtt.nrfcloud.com' to 'broker.example.com', "
                      "which takes effect only after a restart", log)

        # An invalid file: the error names file and line, the daemon keeps running.
        with open(conf, "w") as f:
            f.write("[Log]\nLevel=debug\n[Cloud]\nKeepAliveSec=5\n")
        p.send_signal(signal.SIGHUP)
        self.assertIsNotNone(self.notify.wait_for("RELOADING", "1"))
        self.assertIsNotNone(self.notify.wait_for("READY", "1"))
        self.assertTrue(wait_for_file_text(self.stderr_path, "keeping the current one"), self.log())
        self.assertIn(f"{conf}:4: [Cloud] KeepAliveSec=5: must be between 30 and 1200", self.log())
        time.sleep(0.2)
        self.assertIsNone(p.poll(), "daemon died on an invalid reload")

        # The configuration in effect is still the last valid one: reloading
        # the same valid content changes nothing (Level=debug stayed, Host is
        # still the running one).
        with open(conf, "w") as f:
            f.write("[Log]\nLevel=debug\n[Cloud]\nHost=mqtt.nrfcloud.com\n")
        p.send_signal(signal.SIGHUP)
        self.assertTrue(wait_for_file_text(self.stderr_path, "Configuration reloaded, 0 key(s) changed"), self.log())

        self.assertEqual(stop_process(p), 0)

    def test_sigterm_clean_exit(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            with self.subTest(signal=sig.name):
                p, _ = self.start("")
                self.assertIsNotNone(self.notify.wait_for("READY", "1"))
                t0 = time.monotonic()
                p.send_signal(sig)
                rc = p.wait(timeout=2.0)
                elapsed = time.monotonic() - t0
                self.assertEqual(rc, 0, self.log())
                self.assertLess(elapsed, 2.0)
                self.assertIsNotNone(self.notify.wait_for("STOPPING", "1", timeout=1.0))

    def test_watchdog(self):
        # sh's $$ becomes the daemon's PID through exec, as WATCHDOG_PID must be.
        wrapper = ("sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh")
        p, _ = self.start("", extra_env={"WATCHDOG_USEC": "200000"}, wrapper=wrapper)
        self.assertIsNotNone(self.notify.wait_for("READY", "1"))
        pings = 0
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            m = self.notify.receive(0.2)
            if m and m.get("WATCHDOG") == "1":
                pings += 1
        self.assertGreaterEqual(pings, 3, "expected WATCHDOG=1 about every 100 ms")

    def test_bad_config_exit_78(self):
        p, conf = self.start("[Cloud]\nKeepAliveSec=60\n\n[Bluetooth]\nMaxConnections=lots\n")
        self.assertEqual(p.wait(timeout=5), EX_CONFIG)
        self.assertIn(f"{conf}:5: [Bluetooth] MaxConnections=lots: must be between 1 and 100", self.log())
        self.assertIsNone(self.notify.wait_for("READY", timeout=0.2))

    def test_unknown_key_suggestion(self):
        p, conf = self.start("[Modem]\nBaudrate=115200\n")
        self.assertEqual(p.wait(timeout=5), EX_CONFIG)
        self.assertIn(f"{conf}:2: [Modem] Baudrate=115200: unknown key; did you mean BaudRate=?", self.log())

    def test_missing_explicit_config(self):
        r = subprocess.run([DAEMON, "--config", os.path.join(self.tmp.path, "nope.conf")],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, EX_CONFIG)
        self.assertIn("nope.conf: No such file or directory", r.stderr)

    def test_check_config(self):
        example = os.path.join(SOURCE_DIR, "config", "gateway.conf")
        r = subprocess.run([DAEMON, "--check-config", example], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("[Cloud]\n", r.stdout)
        self.assertIn("KeepAliveSec=1200", r.stdout)
        self.assertIn("SecTag=16842753", r.stdout)

        bad = self.tmp.file("bad.conf", "[Cloud]\nTLS=both\n")
        r = subprocess.run([DAEMON, "--check-config", "--config", bad], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, EX_CONFIG)
        self.assertIn(f"{bad}:2: [Cloud] TLS=both: must be one of: modem, host", r.stderr)

    def test_example_documents_every_default(self):
        """config/gateway.conf lists every key with its built-in default."""
        example = os.path.join(SOURCE_DIR, "config", "gateway.conf")
        with open(example) as f:
            uncommented = re.sub(r"(?m)^#([A-Za-z][A-Za-z0-9]*=)", r"\1", f.read())
        path = self.tmp.file("uncommented.conf", uncommented)
        empty = self.tmp.file("empty.conf", "")

        def effective(p):
            r = subprocess.run([DAEMON, "--check-config", p], capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 0, r.stderr)
            return [re.sub(r" ;.*", "", line) for line in r.stdout.splitlines() if not line.startswith("#")]

        self.assertEqual(effective(path), effective(empty))
        # and every key was present in the example (all came from the file)
        r = subprocess.run([DAEMON, "--check-config", path], capture_output=True, text=True, timeout=10)
        keys = [line for line in r.stdout.splitlines() if "=" in line]
        self.assertGreater(len(keys), 30)
        for line in keys:
            self.assertIn(f" ; {path}:", line)

    def test_command_line(self):
        r = subprocess.run([DAEMON, "--help"], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0)
        self.assertIn("--check-config", r.stdout)
        r = subprocess.run([DAEMON, "--version"], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^nrfcloud-gatewayd \d+\.\d+\.\d+\n$")
        r = subprocess.run([DAEMON, "--frobnicate"], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, EX_USAGE)
        r = subprocess.run([DAEMON, "--log-level=chatty"], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, EX_USAGE)
        self.assertIn("Invalid --log-level=chatty", r.stderr)

    def test_log_level_from_command_line(self):
        p, _ = self.start("[Log]\nLevel=warning\n", args=("--log-level", "debug"))
        self.assertIsNotNone(self.notify.wait_for("READY", "1"))
        self.assertTrue(wait_for_file_text(self.stderr_path, "debug: "), self.log())

    def test_native_journal_records(self):
        """Under journald (JOURNAL_STREAM matching stderr), records are native
        journal entries with PRIORITY, CODE_* fields. journald's socket is
        replaced, in a private mount namespace, by one the test reads."""
        if os.geteuid() != 0 or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
            self.skipTest("needs a private mount namespace (root)")
        jdir = os.path.join(self.tmp.path, "journal")
        os.mkdir(jdir)
        jsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        jsock.bind(os.path.join(jdir, "socket"))
        jsock.settimeout(5)
        wrapper = ("unshare", "-m", "--propagation", "private", "sh", "-c",
                   'mkdir -p /run/systemd/journal && mount --bind "$0" /run/systemd/journal && '
                   'export JOURNAL_STREAM="$(stat -L -c %d:%i /proc/self/fd/2)" && exec "$@"', jdir)
        p, _ = self.start("", wrapper=wrapper)
        self.assertIsNotNone(self.notify.wait_for("READY", "1"), self.log())
        records = []
        try:
            while True:
                data = jsock.recv(65536)
                records.append(data)
                if b"MESSAGE=Started" in data:
                    break
        except socket.timeout:
            pass
        jsock.close()
        started = [r for r in records if b"MESSAGE=Started" in r]
        self.assertTrue(started, f"no native record received; stderr:\n{self.log()}")
        fields = dict(line.split(b"=", 1) for line in started[0].split(b"\n") if b"=" in line)
        self.assertEqual(fields[b"PRIORITY"], b"6")
        self.assertEqual(fields[b"CODE_FILE"], b"daemon/gateway.c", fields)
        self.assertEqual(fields[b"CODE_FUNC"], b"gateway_start")
        self.assertTrue(fields[b"CODE_LINE"].isdigit())
        self.assertEqual(fields[b"SYSLOG_IDENTIFIER"], b"nrfcloud-gatewayd")
        # Nothing went to stderr as plain text while the journal was in use.
        self.assertNotIn("info: Started", self.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
