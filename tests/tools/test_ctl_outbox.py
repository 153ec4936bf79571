# SPDX-License-Identifier: MIT
"""nrfcloud-gatewayctl outbox: the listing of an outbox folder.

The segment files are written here from the format described in
daemon/cloud/outbox.h (an independent encoder, so that the test also pins the
on-disk format): entries, REMOVE records, a second segment, a binary payload,
damage, a folder held by another process, and missing folders."""

import fcntl
import json
import os
import struct
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from nrfgw_test import BUILD_DIR, TempDir  # noqa: E402

CTL = os.path.join(BUILD_DIR, "daemon", "tools", "nrfcloud-gatewayctl")

EXIT_FAILED, EXIT_USAGE, EXIT_BUSY, EXIT_VERIFY = 1, 2, 3, 7
FILE_HEADER = b"NGWOBX01"
MAGIC = 0x52424F58
ENTRY, REMOVE = 1, 2
NOTIFICATION, STATUS, SHADOW = 0, 1, 2
TOPIC = "prod/test-team/gateways/3f2c9a61-7d1e-4b8a-a0c5-6e2f9d4b1c07/g2c"
SHADOW_TOPIC = "3f2c9a61-7d1e-4b8a-a0c5-6e2f9d4b1c07/shadow/update"


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC_TABLE = _crc32c_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def record(kind, cls, seq, topic=b"", payload=b""):
    if isinstance(topic, str):
        topic = topic.encode()
    if isinstance(payload, str):
        payload = payload.encode()
    head = struct.pack("<IBBHIQ", MAGIC, kind, cls, len(topic), len(payload), seq)
    return head + struct.pack("<I", crc32c(head + topic + payload)) + topic + payload


def entry(seq, payload, cls=NOTIFICATION, topic=TOPIC):
    return record(ENTRY, cls, seq, topic, payload)


def remove(seq):
    return record(REMOVE, NOTIFICATION, seq)


def g2c(n):
    return json.dumps({"type": "event", "n": n}, separators=(",", ":"))


class CtlOutbox(unittest.TestCase):
    def setUp(self):
        self.tmp = TempDir("ctl-outbox-")
        self.state = os.path.join(self.tmp.path, "state")
        self.outbox = os.path.join(self.state, "outbox")
        os.makedirs(self.outbox)

    def tearDown(self):
        self.tmp.cleanup()

    def segment(self, segment_id, *records, raw=None):
        path = os.path.join(self.outbox, "%016x.seg" % segment_id)
        with open(path, "wb") as f:
            f.write(raw if raw is not None else FILE_HEADER + b"".join(records))
        return path

    def ctl(self, *args, state=None):
        argv = [CTL, "outbox", "--state-dir", state or self.state] + list(args)
        return subprocess.run(argv, capture_output=True, text=True, timeout=30)

    def listing(self, state=None):
        r = self.ctl("--json", state=state)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return json.loads(r.stdout)

    def snapshot(self):
        out = {}
        for name in sorted(os.listdir(self.outbox)):
            with open(os.path.join(self.outbox, name), "rb") as f:
                out[name] = f.read()
        return out

    def test_live_entries_in_order(self):
        """Entries without a REMOVE, over two segments, ordered by sequence number; count and bytes."""
        self.segment(1, entry(1, g2c(1)), entry(2, g2c(2)), entry(3, "{}", STATUS, SHADOW_TOPIC),
                     entry(4, g2c(4)), remove(2))
        self.segment(2, remove(1), entry(5, g2c(5)), entry(6, b"\x00\x01\xfe\xff"), entry(7, g2c(7), SHADOW),
                     remove(7))
        before = self.snapshot()
        j = self.listing()
        self.assertEqual(j["directory"], self.outbox)
        self.assertEqual([e["seq"] for e in j["entries"]], [3, 4, 5, 6])
        self.assertEqual(j["count"], 4)
        self.assertEqual(j["segments"], 2)
        self.assertEqual(j["damaged_files"], 0)
        want_bytes = len(SHADOW_TOPIC) + 2 + 2 * (len(TOPIC) + len(g2c(4))) + len(TOPIC) + 4
        self.assertEqual(j["bytes"], want_bytes)
        e3, e4, e5, e6 = j["entries"]
        self.assertEqual((e3["class"], e3["topic"], e3["payload"], e3["size"]), ("status", SHADOW_TOPIC, "{}", 2))
        self.assertEqual((e4["class"], e4["topic"]), ("notification", TOPIC))
        self.assertEqual(json.loads(e4["payload"]), {"type": "event", "n": 4})
        self.assertEqual(json.loads(e5["payload"])["n"], 5)
        # Binary: its size, no payload.
        self.assertEqual((e6["payload"], e6["size"]), (None, 4))
        # Read only: not a byte changed, no file added (the daemon would start a new segment).
        self.assertEqual(self.snapshot(), before)

        r = self.ctl()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Messages:  4 (%d bytes of topics and payloads)" % want_bytes, r.stdout)
        self.assertIn("Segments:  2", r.stdout)
        lines = [line.split() for line in r.stdout.splitlines() if line.strip()[:1].isdigit()]
        self.assertEqual([int(x[0]) for x in lines], [3, 4, 5, 6])
        self.assertEqual(lines[0][1:4], ["status", "2", SHADOW_TOPIC])
        self.assertEqual(lines[1][4], g2c(4))
        self.assertIn("(4 bytes, not text)", r.stdout)

    def test_runtime_part_merged(self):
        """What a crash left in the outbox's runtime folder is listed with the state directory's, by sequence
        number: a REMOVE counts in its own folder only (one there means moved), and a message found in both
        (a crash while it was moved) is listed once."""
        runtime = os.path.join(self.tmp.path, "run")
        os.makedirs(os.path.join(runtime, "outbox"))
        self.segment(1, entry(1, g2c(1)), entry(2, g2c(2)), entry(3, g2c(3)), entry(4, "{}", STATUS, SHADOW_TOPIC))
        with open(os.path.join(runtime, "outbox", "%016x.seg" % 7), "wb") as f:
            f.write(FILE_HEADER + entry(2, g2c(2)) + remove(2) + entry(3, g2c(3)) + entry(5, g2c(5))
                    + entry(6, g2c(6)) + remove(6))
        env = dict(os.environ, NRFCLOUD_GATEWAY_RUNTIME_DIR=runtime)
        r = subprocess.run([CTL, "outbox", "--state-dir", self.state, "--json"], capture_output=True, text=True,
                           timeout=30, env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        j = json.loads(r.stdout)
        self.assertEqual([e["seq"] for e in j["entries"]], [1, 2, 3, 4, 5])
        self.assertEqual(json.loads(j["entries"][4]["payload"])["n"], 5)
        # Another runtime directory: the state directory's alone.
        env["NRFCLOUD_GATEWAY_RUNTIME_DIR"] = os.path.join(self.tmp.path, "elsewhere")
        r = subprocess.run([CTL, "outbox", "--state-dir", self.state, "--json"], capture_output=True, text=True,
                           timeout=30, env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual([e["seq"] for e in json.loads(r.stdout)["entries"]], [1, 2, 3, 4])

    def test_empty_outbox(self):
        j = self.listing()
        self.assertEqual((j["count"], j["bytes"], j["segments"], j["entries"]), (0, 0, 0, []))
        # A new segment holding only its header (the daemon's head segment): still empty.
        self.segment(3)
        j = self.listing()
        self.assertEqual((j["count"], j["segments"]), (0, 1))

    def test_damaged_segment(self):
        """A torn last record and a bad CRC: every intact record is listed (also those after the damaged
        one, as the daemon would load them), the damage reported with exit 7, the files left as they are."""
        good = entry(1, g2c(1)) + entry(2, g2c(2))
        self.segment(1, raw=FILE_HEADER + good + entry(3, g2c(3))[:-5])
        bad = bytearray(entry(5, g2c(5)))
        bad[-1] ^= 0x01
        self.segment(2, entry(4, g2c(4)), bytes(bad), entry(6, g2c(6)))
        before = self.snapshot()
        r = self.ctl("--json")
        self.assertEqual(r.returncode, EXIT_VERIFY, r.stdout + r.stderr)
        j = json.loads(r.stdout)
        self.assertEqual([e["seq"] for e in j["entries"]], [1, 2, 4, 6])
        self.assertEqual(j["damaged_files"], 2)
        self.assertIn("2 file(s) of %s are damaged" % self.outbox, r.stderr)
        self.assertEqual(self.snapshot(), before)
        self.assertFalse([n for n in os.listdir(self.outbox) if "corrupt" in n])

    def test_not_an_outbox_file(self):
        """A segment that does not even start with the file header: damaged, nothing listed from it."""
        self.segment(1, raw=b"this is not an outbox segment at all")
        self.segment(2, entry(9, g2c(9)))
        r = self.ctl("--json")
        self.assertEqual(r.returncode, EXIT_VERIFY, r.stdout + r.stderr)
        self.assertEqual([e["seq"] for e in json.loads(r.stdout)["entries"]], [9])

    def test_missing_folder(self):
        r = self.ctl(state=os.path.join(self.tmp.path, "nowhere"))
        self.assertEqual(r.returncode, EXIT_FAILED)
        self.assertIn("No outbox in %s" % os.path.join(self.tmp.path, "nowhere"), r.stderr)
        self.assertIn("is missing", r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertFalse(os.path.exists(os.path.join(self.tmp.path, "nowhere")), "the tool created the folder")
        # The outbox is a file, not a folder.
        other = os.path.join(self.tmp.path, "other")
        os.makedirs(other)
        open(os.path.join(other, "outbox"), "w").close()
        r = self.ctl(state=other)
        self.assertEqual(r.returncode, EXIT_FAILED)
        self.assertIn("is not a directory", r.stderr)

    def test_unreadable_segment(self):
        if os.geteuid() == 0:
            self.skipTest("root reads files whatever their mode")
        os.chmod(self.segment(1, entry(1, g2c(1))), 0)
        r = self.ctl()
        self.assertEqual(r.returncode, EXIT_FAILED)
        self.assertIn("Cannot read the outbox %s" % self.outbox, r.stderr)

    def test_held_by_a_running_daemon(self):
        """The daemon holds an exclusive flock() on the folder: the tool refuses (exit 3), and reads it once
        the lock is gone."""
        self.segment(1, entry(1, g2c(1)))
        fd = os.open(self.outbox, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            r = self.ctl()
            self.assertEqual(r.returncode, EXIT_BUSY, r.stdout + r.stderr)
            self.assertIn("in use by a running nrfcloud-gatewayd", r.stderr)
            self.assertEqual(r.stdout, "")
        finally:
            os.close(fd)
        self.assertEqual(self.listing()["count"], 1)

    def test_state_directory_from_the_configuration(self):
        self.segment(1, entry(1, g2c(1)), entry(2, g2c(2)))
        conf = os.path.join(self.tmp.path, "gateway.conf")
        with open(conf, "w") as f:
            f.write("[Gateway]\nStateDirectory=%s\n" % self.state)
        r = subprocess.run([CTL, "outbox", "--config", conf, "--json"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["count"], 2)

    def test_usage(self):
        r = self.ctl("extra")
        self.assertEqual(r.returncode, EXIT_USAGE)
        self.assertIn("Usage:", r.stderr)
        r = subprocess.run([CTL, "outbox", "--port", "/dev/null", "--json", "--state-dir", self.state, "--force"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, EXIT_USAGE)
        self.assertIn("'outbox' does not take --force", r.stderr)
        r = subprocess.run([CTL, "--help"], capture_output=True, text=True, timeout=30)
        self.assertIn("outbox [--state-dir DIR] [--json]", r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
