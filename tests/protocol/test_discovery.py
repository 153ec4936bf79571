# SPDX-License-Identifier: MIT
"""Values in device_discover_result, end to end: the real daemon, mosquitto,
the stand-in for nRF Cloud and the BlueZ mock.  nRF Cloud's gateway-common
reads every readable characteristic and descriptor before it reports a
discovery, and again after each connection; the captured cloud example
(nRFCloud/application-protocols, schemas/gatewayToCloud/events/
device-discover-result-example.json) has real values everywhere.  Run one
test with DISCOVERY_TEST=<name> (ctest does), all without it."""

import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import prototest as pt  # noqa: E402

C = "C0:FF:EE:00:00:0E"
SVC = "ef680100-9b35-4933-9b10-52ffa9740042"
LOCKED = "ef680101-9b35-4933-9b10-52ffa9740042"  # read refused: NotAuthorized
SLOW = "ef680102-9b35-4933-9b10-52ffa9740042"    # answers after 3 s, over the 2 s bound
LABELLED = "ef680103-9b35-4933-9b10-52ffa9740042"  # with a readable descriptor
WRITE_ONLY = "ef680104-9b35-4933-9b10-52ffa9740042"


def norm(u):
    return u.replace("-", "").upper()


GATT_C = [
    {"uuid": "1800", "characteristics": [
        {"uuid": "2a00", "flags": ["read"], "value": b"Thingy".hex()},
        {"uuid": "2a01", "flags": ["read"], "value": "4003"}]},
    {"uuid": "180f", "characteristics": [
        {"uuid": "2a19", "flags": ["read", "notify"], "value": "62",
         "descriptors": [{"uuid": "2902", "value": "0000"}]}]},
    {"uuid": SVC, "characteristics": [
        {"uuid": LOCKED, "flags": ["read", "encrypt-authenticated-read"], "value": "01020304",
         "read_error": "org.bluez.Error.NotAuthorized", "read_message": "Operation Not Authorized"},
        {"uuid": SLOW, "flags": ["read"], "value": "5555", "read_delay": 3.0},
        {"uuid": LABELLED, "flags": ["read", "write"], "value": "2a",
         "descriptors": [{"uuid": "2901", "value": b"level".hex()}]},
        {"uuid": WRITE_ONLY, "flags": ["write"], "value": "77"}]},
]

with open(os.path.join(HERE, "golden", "discover-values.json")) as f:
    GOLDEN = json.load(f)

# The field sets of the captured cloud example (device-discover-result-example.json).
CAPTURED_EVENT_KEYS = {"type", "timestamp", "device", "services"}
CAPTURED_SERVICE_KEYS = {"uuid", "characteristics"}
CAPTURED_CHRC_KEYS = {"uuid", "path", "value", "properties", "descriptors"}
CAPTURED_DESC_KEYS = {"uuid", "path", "value"}

REFUSED = "warning: %s: read of %s/%s refused" % (C, norm(SVC), norm(LOCKED))


class DiscoveryTest(pt.WorldTestCase):
    def world(self, gatt=GATT_C):
        self.w = pt.World(self.pki, self.cert, pt.subdir(self.tmp, self.id().split(".")[-1]), desired=(C,),
                          devices=False)
        self.w.mock.add_device(C, gatt=gatt, name="thingy")
        return self.w

    def discoveries(self, count, timeout=30.0):
        return self.w.wait_events(lambda e: e["event"]["type"] == "device_discover_result"
                                  and e["event"]["device"]["address"]["address"] == C, count, timeout)

    def reads(self):
        """Object paths of the fixture's ReadValue calls, in order."""
        return [e["path"] for e in self.w.mock.log() if e.get("method") == "ReadValue"]

    def test_values(self):
        """Every readable characteristic and descriptor is read before the result is sent; a refused read and a
        read slower than the bound leave [], the refusal is logged once; the field set is the captured one."""
        w = self.world()
        d = self.discoveries(1)[0]
        self.assertEqual(d["event"]["services"], GOLDEN)
        self.assertEqual(set(d["event"]), CAPTURED_EVENT_KEYS)
        for s in d["event"]["services"].values():
            self.assertEqual(set(s), CAPTURED_SERVICE_KEYS)
            for c in s["characteristics"].values():
                self.assertEqual(set(c), CAPTURED_CHRC_KEYS)
                for ds in c["descriptors"].values():
                    self.assertEqual(set(ds), CAPTURED_DESC_KEYS)
        # The result came after the connect result, with requestId "N/A" (unsolicited).
        conn = w.events("device_connect_result")
        self.assertEqual(len(conn), 1)
        self.assertLess(conn[0]["messageId"], d["messageId"])
        self.assertEqual(d["requestId"], "N/A")
        # Reads: 6 characteristics and the 2901 descriptor; never the write-only one nor the CCCD.
        reads = self.reads()
        self.assertEqual(len(reads), 7, reads)
        self.assertEqual(len([p for p in reads if "/desc" in p]), 1, reads)
        log = w.daemon.log()
        self.assertEqual(log.count(REFUSED), 1, log[-4000:])
        self.assertIn("read of %s/%s failed (org.freedesktop.DBus.Error" % (norm(SVC), norm(SLOW)), log)
        self.assertIn("%s: values read for discovery: 7 reads, 2 without value, 15 bytes" % C, log)

    def test_reconnect_reads_again(self):
        """After a reconnection with BlueZ's GATT objects unchanged, the model is kept and the values are read
        again (gateway-common reads at every connection): a value changed meanwhile shows; the refusal is not
        logged at warning level again."""
        w = self.world()
        self.discoveries(1)
        reads = len(self.reads())
        w.mock.set_value(C, "180f", "2a19", "63")
        w.mock.link_loss(C)
        second = self.discoveries(2)[1]
        expected = json.loads(json.dumps(GOLDEN))
        expected["180F"]["characteristics"]["2A19"]["value"] = [0x63]
        self.assertEqual(second["event"]["services"], expected)
        self.assertEqual(len(self.reads()), 2 * reads)
        log = w.daemon.log()
        self.assertEqual(log.count(REFUSED), 1, log[-4000:])
        self.assertIn("debug: %s: read of %s/%s refused" % (C, norm(SVC), norm(LOCKED)), log)
        self.assertIn("%s: GATT objects unchanged since the last connection, keeping the model" % C, log)

    def test_link_lost_during_discovery(self):
        """The link drops while the values are read: no connect result and no half discovery result for that
        connection; the next connection sends the whole result."""
        gatt = json.loads(json.dumps(GATT_C))
        gatt[0]["characteristics"][1]["read_drops_link"] = 1  # 2A01, read second
        w = self.world(gatt)
        d = self.discoveries(1)[0]
        self.assertEqual(d["event"]["services"], GOLDEN)
        self.assertTrue(w.daemon.wait_log("%s: link lost" % C), w.daemon.log()[-4000:])
        # One connection counted by the cloud, one result: nothing of the lost one.
        pt.st.wait_until(lambda: False, 1.0)
        self.assertEqual(len(w.events("device_discover_result")), 1)
        self.assertEqual(len(w.events("device_connect_result")), 1)
        self.assertEqual(len([e for e in w.mock.log() if e.get("method") == "Connect"]), 2)


if __name__ == "__main__":
    name = os.environ.get("DISCOVERY_TEST")
    if name:
        suite = unittest.TestSuite([DiscoveryTest(name)])
        sys.exit(0 if unittest.TextTestRunner(verbosity=2).run(suite).wasSuccessful() else 1)
    unittest.main(verbosity=2)
