# SPDX-License-Identifier: MIT
"""Beacons end to end: the real daemon, mosquitto with mutual TLS, the stand-in
for nRF Cloud and the BlueZ mock advertising an iBeacon, an Eddystone-UID
beacon and a sensor that broadcasts its readings in manufacturer data, as
Device1 ManufacturerData/ServiceData/AdvertisingData/AdvertisingFlags/TxPower
properties updated with every advertisement.  Covers beacon scans (scanType
1) and the beacons watched from the shadow's desired.beacons.  Run one test
with BEACON_TEST=<name> (ctest does), all without it."""

import os
import sys
import time
import unittest

import dbus

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prototest as pt  # noqa: E402
from prototest import A, B  # noqa: E402

IBEACON = "C0:FF:EE:00:00:B1"
EDDYSTONE = "C0:FF:EE:00:00:B2"
SENSOR = "C0:FF:EE:00:00:B3"
OTHER_BEACON = "C0:FF:EE:00:00:B4"
PLAIN = "C0:FF:EE:00:00:0D"  # advertises a name only: not a beacon

IBEACON_UUID = "e2c56db5-dffb-48d2-b060-d0f5a71096e0"
EDDY_NS = "00112233445566778899"
EDDY_INSTANCE = "a1b2c3d4e5f6"
NORDIC = 0x0059
SENSOR_PAYLOAD = bytes([0x01, 0x2A, 0x00])
BROADCAST_NAME = 0x30  # an AD type bluetoothd hands over undecoded in AdvertisingData
EDDYSTONE_UUID = "0000feaa-0000-1000-8000-00805f9b34fb"


class BeaconTest(pt.WorldTestCase):
    def world(self, **kw):
        self.w = pt.World(self.pki, self.cert, pt.subdir(self.tmp, self.id().split(".")[-1]), **kw)
        return self.w

    def add_beacons(self, w):
        ib = w.mock.add_ibeacon(IBEACON, IBEACON_UUID, 258, 772, tx_power=-59, name="ibeacon")
        ed = w.mock.add_eddystone_uid(EDDYSTONE, EDDY_NS, EDDY_INSTANCE, tx_power=-18, name="eddy",
                                      address_type="random", advertised_tx_power=-18,
                                      ad_data={str(BROADCAST_NAME): b"eddy-b".hex()})
        w.mock.add_sensor_beacon(SENSOR, NORDIC, SENSOR_PAYLOAD, name="sensor", rssi=-70)
        w.mock.add_device(PLAIN, name="plain", rssi=-65, advertising=True)
        return ib, ed

    def sightings(self, address):
        """Unsolicited scan_result messages about address (watched beacons)."""
        return [e for e in self.w.events("scan_result") if e["requestId"] == "N/A"
                and [d["address"]["address"] for d in e["event"]["devices"]] == [address]]

    def discovering(self):
        a = self.w.mock.conn.get_object("org.bluez", "/org/bluez/hci0")
        return bool(a.Get("org.bluez.Adapter1", "Discovering", dbus_interface=dbus.PROPERTIES_IFACE))

    def test_beacon_scan(self):
        """scanType 1: the advertisers that broadcast data are reported with their advertisementData, byte
        for byte as the fixture advertises them; a device advertising only a name is not a beacon."""
        w = self.world(desired=())
        ib, ed = self.add_beacons(w)
        self.assertTrue(w.daemon.wait_log("nRF Cloud session ready"), w.daemon.log()[-3000:])
        rid = w.c2g({"type": "scan", "scanType": 1, "scanMode": "passive", "scanTimeout": 2,
                     "scanReporting": "instant", "scanInterval": 0})
        final = w.wait_events(lambda e: e.get("requestId") == rid and e["event"]["timeout"], 1, 20)
        self.assertEqual(final[0]["event"]["devices"], [])
        self.assertEqual([e for e in w.events("error") if e["requestId"] == rid], [])
        parts = [e for e in w.events("scan_result") if e["requestId"] == rid and not e["event"]["timeout"]]
        by = {e["event"]["devices"][0]["address"]["address"]: e["event"]["devices"][0] for e in parts}
        self.assertEqual(sorted(by), [IBEACON, EDDYSTONE, SENSOR], w.daemon.log()[-3000:])

        d = by[IBEACON]
        self.assertEqual(d["name"], "ibeacon")
        self.assertEqual(d["address"], {"address": IBEACON, "type": "public"})
        self.assertIn(d["rssi"], (-60, -61, -62))
        self.assertEqual(d["advertisementData"], {
            "advertiseFlag": 6, "serviceUuids": None, "localName": "ibeacon", "txPower": None,
            "manufacturerData": {"76": list(ib)}, "serviceData": {}})
        # The bytes are an iBeacon: type 0x02, length 0x15, UUID, major 258, minor 772, power -59.
        self.assertEqual(ib[:2], b"\x02\x15")
        self.assertEqual(ib[2:18].hex(), IBEACON_UUID.replace("-", ""))
        self.assertEqual(ib[18:], bytes([1, 2, 3, 4, 0xc5]))

        d = by[EDDYSTONE]
        self.assertEqual(d["address"], {"address": EDDYSTONE, "type": "randomStatic"})
        self.assertEqual(d["advertisementData"], {
            "advertiseFlag": 6, "serviceUuids": [EDDYSTONE_UUID], "localName": "eddy", "txPower": -18,
            "manufacturerData": {}, "serviceData": {"feaa": list(ed)},
            "rawData": [7, BROADCAST_NAME] + list(b"eddy-b")})
        self.assertEqual(ed[:2], bytes([0x00, 0xee]))
        self.assertEqual(ed[2:12].hex(), EDDY_NS)
        self.assertEqual(ed[12:18].hex(), EDDY_INSTANCE)

        d = by[SENSOR]["advertisementData"]
        self.assertEqual(list(d["manufacturerData"]), [str(NORDIC)])
        data = bytes(d["manufacturerData"][str(NORDIC)])
        self.assertEqual(data[:3], SENSOR_PAYLOAD)
        self.assertGreater(int.from_bytes(data[3:], "little"), 0)
        self.assertEqual(d["advertiseFlag"], -1)

        # Batch: the same devices in one message.
        rid = w.c2g({"type": "scan", "scanType": 1, "scanTimeout": 1, "scanReporting": "batch"})
        got = w.answers(rid, 1)
        self.assertEqual(sorted(x["address"]["address"] for x in got[0]["event"]["devices"]),
                         [IBEACON, EDDYSTONE, SENSOR])
        # A regular scan reports every advertiser, without advertisementData.
        rid = w.c2g({"type": "scan", "scanType": 0, "scanTimeout": 1, "scanReporting": "batch"})
        got = w.answers(rid, 1)[0]["event"]["devices"]
        self.assertIn(PLAIN, [x["address"]["address"] for x in got])
        self.assertFalse([x for x in got if "advertisementData" in x], got)
        # Nothing was watched: no unsolicited scan_result.
        self.assertEqual([e for e in w.events("scan_result") if e["requestId"] == "N/A"], [])

    def test_watched_beacons(self):
        """desired.beacons: the listed beacons are reported without connecting, each at most once per
        BeaconReportIntervalSec= with its latest advertisement; others are not; connections go on; removing
        the list stops the reports and the discovery session."""
        interval = 1.0
        w = self.world(desired=(A,), extra_conf="[Bluetooth]\nBeaconReportIntervalSec=1\n")
        ib, _ = self.add_beacons(w)
        w.mock.add_ibeacon(OTHER_BEACON, IBEACON_UUID, 9, 9, name="other")
        w.wait_ready(A)
        self.assertFalse(self.discovering())

        w.peer.delta({"beacons": [IBEACON, SENSOR.lower()]})
        self.assertTrue(w.daemon.wait_log("Watching 2 beacon(s)"), w.daemon.log()[-3000:])
        w.wait_events(lambda e: e in self.sightings(IBEACON), 1, 20)
        w.wait_events(lambda e: e in self.sightings(SENSOR), 1, 20)
        self.assertTrue(self.discovering())

        # Count over a measured span: the fixture advertises every 100 ms, so without the interval there
        # would be about ten reports per second and beacon.
        begin = {a: len(self.sightings(a)) for a in (IBEACON, SENSOR)}
        t0 = time.monotonic()
        # Meanwhile, connections are not disturbed: a read on A, and B connects while beacons are watched.
        rid = w.c2g({"type": "device_characteristic_value_read", "deviceAddress": A, "serviceUUID": "180F",
                     "characteristicUUID": "2A19"})
        self.assertEqual(w.answers(rid, 2)[0]["event"]["characteristic"]["value"], [100])
        w.peer.delta({"desiredConnections": [A, B]})
        w.wait_ready(B)
        time.sleep(max(0.0, 5.0 - (time.monotonic() - t0)))
        span = time.monotonic() - t0
        for a in (IBEACON, SENSOR):
            n = len(self.sightings(a)) - begin[a]
            self.assertLessEqual(n, int(span / interval) + 1, (a, n, span))
            self.assertGreaterEqual(n, 2, (a, n, span))
            print("%s: %d reports in %.1f s (interval %.0f s)" % (a, n, span, interval), file=sys.stderr)
        self.assertEqual(self.sightings(OTHER_BEACON), [])
        self.assertEqual(self.sightings(EDDYSTONE), [])

        # Each sighting carries the latest advertisement: the sensor's count moves on by several
        # advertisements between reports, and the iBeacon's bytes are exact.
        counts = [int.from_bytes(bytes(e["event"]["devices"][0]["advertisementData"]["manufacturerData"]
                                       [str(NORDIC)][3:]), "little") for e in self.sightings(SENSOR)]
        self.assertEqual(counts, sorted(counts))
        self.assertGreaterEqual(max(b - a for a, b in zip(counts, counts[1:])), 3, counts)
        e = self.sightings(IBEACON)[-1]
        self.assertEqual(e["event"]["subType"], "instant")
        self.assertFalse(e["event"]["timeout"])
        dev = e["event"]["devices"][0]
        self.assertEqual(dev["advertisementData"]["manufacturerData"], {"76": list(ib)})
        self.assertIn(dev["rssi"], (-60, -61, -62))
        # Watching never connects to a beacon; A and B stayed connected.
        self.assertFalse(w.mock.state(IBEACON)["connected"])
        self.assertFalse(w.mock.state(SENSOR)["connected"])
        self.assertEqual(w.events("device_disconnect"), [])
        self.assertEqual([x for x in w.mock.log() if x.get("method") == "Connect"
                          and x.get("path") in (w.mock.path(IBEACON), w.mock.path(SENSOR))], [])
        self.assertTrue(w.mock.state(A)["connected"] and w.mock.state(B)["connected"])

        # The list emptied: no more reports, and the discovery session ends.
        w.peer.delta({"beacons": []})
        self.assertTrue(w.daemon.wait_log("Stopped watching beacons"), w.daemon.log()[-3000:])
        self.assertTrue(pt.st.wait_until(lambda: not self.discovering(), 10))
        time.sleep(interval + 0.5)  # a report armed before the change would be out by now
        after = {a: len(self.sightings(a)) for a in (IBEACON, SENSOR)}
        time.sleep(3 * interval)
        self.assertEqual({a: len(self.sightings(a)) for a in (IBEACON, SENSOR)}, after)
        self.assertTrue(w.mock.state(A)["connected"] and w.mock.state(B)["connected"])
        self.assertEqual(w.events("device_disconnect"), [])

    def test_watched_beacons_survive_bluetoothd_restart(self):
        """bluetoothd restarts while beacons are watched: the gateway opens discovery again by itself and the
        reports go on."""
        w = self.world(desired=(), extra_conf="[Bluetooth]\nBeaconReportIntervalSec=1\n")
        self.add_beacons(w)
        self.assertTrue(w.daemon.wait_log("nRF Cloud session ready"), w.daemon.log()[-3000:])
        w.peer.delta({"beacons": [EDDYSTONE]})
        w.wait_events(lambda e: e in self.sightings(EDDYSTONE), 2, 20)
        w.mock.kill()
        w.mock.start()
        before = len(self.sightings(EDDYSTONE))
        self.assertTrue(w.daemon.wait_log("Discovery held open for 1 watched beacon(s)", count=2),
                        w.daemon.log()[-3000:])
        self.assertTrue(pt.st.wait_until(self.discovering, 10))
        w.wait_events(lambda e: e in self.sightings(EDDYSTONE), before + 2, 20)
        self.assertEqual(self.sightings(IBEACON), [])

if __name__ == "__main__":
    name = os.environ.get("BEACON_TEST")
    argv = [sys.argv[0]] + (["BeaconTest." + name] if name else [])
    unittest.main(argv=argv, verbosity=2)
