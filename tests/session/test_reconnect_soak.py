# SPDX-License-Identifier: MIT
"""Memory stays flat over many reconnections in TLS=modem mode (issue 13 §6).

The broker drops the connection on purpose: a client that connects with the
gateway's client id takes its place (MQTT 3.1.1 §3.1.4), then leaves.

* BridgedSoak: the daemon's MQTT session in cloud-harness, through the
  modem-mode bridge (TLS in a separate socket, Paho in plain TCP to the
  loopback bridge), reconnecting 20 ms after each loss: 200 reconnections
  (SOAK_RECONNECTS) publishing 200 messages/s through the outbox, so that
  every lost connection has publishes in flight and queued in Paho, and 30
  idle (SOAK_IDLE_RECONNECTS).  Before the fix, Paho 1.3.12 leaked the topic
  and payload copies of every publish still queued in it when its client was
  destroyed: 3.3 to 3.9 KB per reconnection beyond the expected growth here.
* ReconnectSoak: the real nrfcloud-gatewayd through a provisioned nrf91-sim,
  against mosquitto and the stand-in for nRF Cloud, idle; it reconnects at
  most once a second (ReconnectMinSec=1), so it runs only when asked:
  SOAK_DAEMON_RECONNECTS=40 (about 55 s).  With
  SOAK_MODE=restart the broker is stopped for 1.5 s and started again
  instead; with SOAK_MODE=vanish the sim's pty goes away for 0.3 s.
  SOAK_WRAPPER runs the daemon under a command (e.g. "valgrind
  --leak-check=full").

Checked: the growth of anonymous memory (heap, stacks) after a warm-up, at
most SLACK_BYTES_PER_RECONNECT per reconnection (glibc's per-thread caches
off in the harness, which otherwise hold freed blocks as memory in use), and nothing lost under
valgrind (test_nothing_lost); USS (private pages, /proc/PID/smaps_rollup) and RSS are
reported beside it.  The publishing harness pauses for half a second before each
sample so that its outbox backlog is sent (a backlog is memory, not a leak).
SOAK_MALLOC_STATS=1 (or =trim) prints glibc's bytes in use at every sample
(through gdb; see docs/performance.md, "Reconnect memory").
NRFGW_SANITIZED=ON (a sanitizer build, whose quarantine grows memory): the
figures only."""

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sessiontest as st  # noqa: E402

DEVICE = "5f0c9d2a-7e41-4b8a-a3c6-1d2e3f405162"
MODE = os.environ.get("SOAK_MODE", "kick")
RECONNECTS = int(os.environ.get("SOAK_RECONNECTS", "200"))
# The daemon reconnects after at least ReconnectMinSec=1 s: fewer rounds by default.
DAEMON_RECONNECTS = int(os.environ.get("SOAK_DAEMON_RECONNECTS", "0"))
IDLE_RECONNECTS = int(os.environ.get("SOAK_IDLE_RECONNECTS", "40"))
SETTLE_SEC = 0.5


def warmup(n):
    return min(20, n // 4)
# Allowed growth of anonymous memory after the warm-up, per reconnection beyond
# what the harness is expected to take, plus one page (memory is counted in
# pages).  The leak fixed was 3.3 KB per reconnection with publishes in flight.
# The harness runs without glibc's per-thread caches (TCACHE_OFF): with them,
# freed blocks kept in the caches count as memory in use, and they fill up over
# hundreds of reconnections (about 1 KB per reconnection over the first 200,
# bounded by the caches' size, docs/performance.md).  Without them what is left
# is 48 bytes per reconnection (the OpenSSL ex_data index Paho takes anew at
# every client, see daemon/cloud/mqtt.c): 34 bytes per reconnection measured.
SLACK_BYTES_PER_RECONNECT = 256
TCACHE_OFF = "glibc.malloc.tcache_count=0"
# The daemon through nrf91-sim, run only when asked, tcache off: 683 bytes per
# reconnection from 20 to 50 reconnections, then 82 from 50 to 100 (it levels
# off; a run of 40 sees only the first part).
DAEMON_SLACK_BYTES_PER_RECONNECT = 2048
VALGRIND_RECONNECTS = int(os.environ.get("SOAK_VALGRIND_RECONNECTS", "6"))


def memory_kb(pid):
    """(anonymous, USS, RSS) of a process, in KiB.  Anonymous memory (heap,
    stacks) is what the process allocated itself; its USS also counts library
    pages no other process maps at the moment, which come and go as the
    broker, the sim and the tools start and stop (hundreds of KiB)."""
    fields = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                fields[parts[0][:-1]] = int(parts[1])
    return (fields.get("Anonymous", 0), fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0),
            fields.get("Rss", 0))


MALLOC_STATS = os.environ.get("SOAK_MALLOC_STATS", "")


@contextlib.contextmanager
def tcache_off():
    """Processes started inside run without glibc's per-thread caches."""
    saved = os.environ.get("GLIBC_TUNABLES")
    os.environ["GLIBC_TUNABLES"] = ":".join(t for t in (saved, TCACHE_OFF) if t)
    try:
        yield
    finally:
        if saved is None:
            del os.environ["GLIBC_TUNABLES"]
        else:
            os.environ["GLIBC_TUNABLES"] = saved


def malloc_stats(pid, err_path):
    """With SOAK_MALLOC_STATS=1 (or =trim, which calls malloc_trim(0) first): glibc's
    own count of the bytes in use and taken from the system, all arenas, read by
    calling malloc_stats() in the process through gdb (it prints to the process's
    stderr).  A diagnostic, not a check: (arenas, in use, system) in bytes."""
    if not MALLOC_STATS or shutil.which("gdb") is None:
        return None
    calls = ["-ex", "call (int) malloc_trim(0)"] if MALLOC_STATS == "trim" else []
    subprocess.run(["gdb", "-p", str(pid), "-batch", "-nx", *calls, "-ex", "call (void) malloc_stats()"],
                   check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(err_path, errors="replace") as f:
        text = f.read()
    block = text[text.rfind("Arena 0:"):]
    total = re.search(r"Total \(incl\. mmap\):\s*system bytes\s*=\s*(\d+)\s*in use bytes\s*=\s*(\d+)", block)
    if not total:
        return None
    return (block.count("Arena "), int(total.group(2)), int(total.group(1)))


def report_and_check(tc, samples, reconnects, took, expected_kb=0, slack=SLACK_BYTES_PER_RECONNECT, expected=None):
    """samples: (reconnects, anonymous, USS, RSS); the first is after the warm-up.
    expected_kb: growth that is no leak (the harness's own per-message tables);
    expected: the same for each sample, from the first (KiB), when known.

    A leak grows memory at every reconnection, so it shows in each part of the run;
    a one-off step (a heap page first touched, an arena's top moved under load)
    shows in one.  With a sample in the middle, the run is checked in its two
    halves, and the smaller growth of the two must stay within the bound."""
    for i, anon, uss, rss in samples:
        print("after %3d reconnects: anonymous %6d KiB, USS %6d KiB, RSS %6d KiB" % (i, anon, uss, rss))
    (i0, anon0, _, rss0), (i1, anon1, _, rss1) = samples[0], samples[-1]
    grown = anon1 - anon0 - expected_kb
    print("%d reconnects in %.1f s; after the warm-up: anonymous %+d KiB (%+d KiB of it expected), "
          "%.0f bytes per reconnect beyond that; RSS %+d KiB" %
          (reconnects, took, anon1 - anon0, expected_kb, grown * 1024 / max(1, i1 - i0), rss1 - rss0))
    if os.environ.get("NRFGW_SANITIZED", "OFF").upper() in ("ON", "1", "TRUE"):
        print("sanitizer build: its quarantine grows memory, not checked")
        return
    if len(samples) < 3:
        tc.assertLessEqual(grown * 1024, slack * max(1, i1 - i0) + 4096, samples)
        return
    if expected is None:
        expected = [expected_kb * (s[0] - i0) // max(1, i1 - i0) for s in samples]
    m = len(samples) // 2
    halves = []
    for a, b in ((0, m), (m, len(samples) - 1)):
        n = max(1, samples[b][0] - samples[a][0])
        g = samples[b][1] - samples[a][1] - (expected[b] - expected[a])
        halves.append((g * 1024 - 4096) / n)
    print("bytes per reconnect beyond the expected, by half (one page allowed in each): %.0f, %.0f"
          % tuple(halves))
    tc.assertLessEqual(min(halves), slack, samples)


kick = st.kick


class BridgedSoak(unittest.TestCase):
    """The MQTT session of the daemon in cloud-harness, through the modem-mode
    bridge (an OpenSSL socket standing in for the nRF91's); reconnects 20 ms
    after a loss."""

    def start(self, extra, wrapper=None):
        self.tmp = st.TempDir("bridged-soak-")
        self.addCleanup(self.tmp.cleanup)
        self.pki = st.Pki(os.path.join(self.tmp.path, "pki"))
        self.broker = st.Broker(os.path.join(self.tmp.path, "broker"), self.pki, verbose=False)
        self.broker.start()
        self.addCleanup(self.broker.stop)
        args = st.ct.harness_args(self.broker, self.pki, DEVICE, os.path.join(self.tmp.path, "state"),
                                  extra=["--bridge", "--progress", "--reconnect-min-ms", "20",
                                         "--reconnect-max-ms", "20"] + extra)
        if wrapper:
            # A copy of the harness module's command line with the wrapper in front.
            saved = st.ct.HARNESS
            script = os.path.join(self.tmp.path, "wrapped-harness")
            with open(script, "w") as f:
                f.write("#!/bin/sh\nexec %s %s \"$@\"\n" % (" ".join(shlex.quote(w) for w in wrapper),
                                                            shlex.quote(os.path.abspath(saved))))
            os.chmod(script, 0o755)
            st.ct.HARNESS = script
            try:
                self.harness = st.ct.Harness(self.tmp.path, "harness", args)
            finally:
                st.ct.HARNESS = saved
        else:
            with tcache_off():
                self.harness = st.ct.Harness(self.tmp.path, "harness", args)
        self.addCleanup(self.stop_harness)
        self.next_path = os.path.join(self.tmp.path, "state", "next")

    def stop_harness(self):
        self.harness.kill(signal.SIGTERM)
        err = self.harness.stderr()
        self.assertNotIn("Sanitizer", err)
        self.assertNotIn("runtime error", err)

    def taken(self):
        """Messages taken into the outbox so far (the harness writes it down)."""
        try:
            with open(self.next_path) as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0

    def connected(self, count, timeout=30):
        self.assertTrue(st.wait_until(lambda: self.harness.stderr().count("Cloud connected") >= count, timeout),
                        self.harness.stderr()[-2000:])

    def soak(self, in_flight, reconnects):
        self.connected(1)
        pid = self.harness.proc.pid
        t0 = time.monotonic()
        samples, taken = [], []
        for i in range(1, reconnects + 1):
            if in_flight:
                time.sleep(0.03)  # publishes in flight and queued in Paho
            kick(self.broker, self.pki, DEVICE)
            self.connected(i + 1)
            if i in (warmup(reconnects), (warmup(reconnects) + reconnects) // 2, reconnects) or i % 50 == 0:
                if in_flight:
                    time.sleep(SETTLE_SEC)
                ms = malloc_stats(pid, self.harness.err_path)
                samples.append((i, *memory_kb(pid)))
                if ms:
                    print("after %3d reconnects: malloc: %d arenas, in use %d B, system %d B, Anonymous %d KiB"
                          % (i, *ms, samples[-1][1]))
                taken.append(self.taken())
        # The harness keeps two 8-byte entries per message number (push time, latency),
        # in tables allocated for --count and touched as the numbers go.
        report_and_check(self, samples, reconnects, time.monotonic() - t0,
                         expected_kb=(taken[-1] - taken[0]) * 16 // 1024,
                         expected=[(t - taken[0]) * 16 // 1024 for t in taken])

    def test_publishes_in_flight(self):
        self.start(["--count", "100000000", "--rate", "200"])
        self.soak(True, RECONNECTS)

    def test_idle(self):
        self.start(["--count", "1"])
        self.soak(False, IDLE_RECONNECTS)

    def test_nothing_lost(self):
        """Under valgrind, with publishes in flight at every loss: no block lost at exit.
        Before the fix: 12.6 KB definitely and indirectly lost over 10 reconnections,
        all allocated in MQTTAsync_sendMessage()."""
        if shutil.which("valgrind") is None:
            self.skipTest("valgrind is not installed")
        if os.environ.get("NRFGW_SANITIZED", "OFF").upper() in ("ON", "1", "TRUE"):
            self.skipTest("a sanitizer build does not run under valgrind")
        log = os.path.join(tempfile.gettempdir(), "soak-valgrind-%d.log" % os.getpid())
        self.addCleanup(lambda: os.path.exists(log) and os.unlink(log))
        self.start(["--count", "100000000", "--rate", "200"],
                   wrapper=("valgrind", "--leak-check=full", "--show-leak-kinds=definite,indirect",
                            "--errors-for-leak-kinds=definite,indirect", "--log-file=" + log))
        self.connected(1, timeout=60)
        for i in range(1, VALGRIND_RECONNECTS + 1):
            time.sleep(0.05)
            kick(self.broker, self.pki, DEVICE)
            self.connected(i + 1, timeout=60)
        self.harness.kill(signal.SIGTERM)
        self.harness.proc.wait(60)
        with open(log) as f:
            report = f.read()
        if "All heap blocks were freed -- no leaks are possible" in report:
            lost = ("0", "0")
        else:
            summary = re.search(r"definitely lost: ([\d,]+) bytes.*?indirectly lost: ([\d,]+) bytes", report, re.S)
            self.assertIsNotNone(summary, report[-3000:])
            lost = summary.groups()
        print("valgrind, %d reconnections with publishes in flight: definitely lost %s bytes, indirectly lost %s bytes"
              % (VALGRIND_RECONNECTS, *lost))
        self.assertEqual(lost, ("0", "0"), report[-6000:])


class ReconnectSoak(st.ModemCase):
    DEVICE = DEVICE
    BROKER_VERBOSE = False

    def setUp(self):
        if DAEMON_RECONNECTS <= 0:
            self.skipTest("the daemon reconnects at most once a second: set SOAK_DAEMON_RECONNECTS=40 to run it")
        super().setUp()
        wrapper = tuple(shlex.split(os.environ.get("SOAK_WRAPPER", "")))
        with tcache_off():
            self.daemon = st.Daemon(os.path.join(self.dir, "daemon"), self.broker, self.pki, DEVICE, self.cert,
                                    extra_conf="ReconnectMaxSec=1\n", modem=(self.sim.link, self.runtime),
                                    wrapper=wrapper)

    def tearDown(self):
        self.stop_daemon()

    def test_reconnects(self):
        self.ready(1)
        pid = self.daemon.proc.pid
        t0 = time.monotonic()
        samples = []
        for i in range(1, DAEMON_RECONNECTS + 1):
            if MODE == "restart":
                self.broker.stop()
                time.sleep(1.5)
                self.broker.start()
            elif MODE == "vanish":
                self.assertEqual(self.sim.command("vanish 300"), "OK")
            else:
                kick(self.broker, self.pki, DEVICE)
            self.ready(i + 1, timeout=30)
            if i == warmup(DAEMON_RECONNECTS) or i == DAEMON_RECONNECTS or i % 50 == 0:
                samples.append((i, *memory_kb(pid)))
        report_and_check(self, samples, DAEMON_RECONNECTS, time.monotonic() - t0,
                         slack=DAEMON_SLACK_BYTES_PER_RECONNECT)

if __name__ == "__main__":
    unittest.main(verbosity=2)
