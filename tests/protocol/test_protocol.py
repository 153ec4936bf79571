# SPDX-License-Identifier: MIT
"""The nRF Cloud gateway protocol end to end (issue 7): the real daemon,
mosquitto with mutual TLS and the gateway ACL, the stand-in for nRF Cloud,
and the BlueZ mock with two devices.  Run one test with PROTOCOL_TEST=<name>
(ctest does), all without it."""

import json
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prototest as pt  # noqa: E402
from prototest import A, B, NUS, NUS_RX, NUS_TX, VENDOR_N  # noqa: E402

EXTRA = "C0:FF:EE:00:00:0C"
UNKNOWN = "C0:FF:EE:00:00:99"


def _sanitized():
    with open(pt.st.DAEMON, "rb") as f:
        return b"__asan_init" in f.read()


# Under AddressSanitizer freed memory sits in its quarantine, and its allocator keeps what glibc's
# malloc_trim() would return: no memory figure means anything (in the c2g flood USS went from 15 to
# 184 MB, and from 12.7 to 17.0 MB with quarantine_size_mb=0).  Only the memory check depends on it.
SANITIZED = _sanitized()


def memory(pid):
    """USS (private pages, from smaps_rollup), anonymous memory (heap, stacks: what the process allocated
    itself), RSS and peak RSS of a process, in bytes."""
    out = {"uss": 0}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            k, v = line.split(":", 1)
            if k in ("Private_Clean", "Private_Dirty"):
                out["uss"] += int(v.split()[0]) * 1024
            elif k == "Rss":
                out["rss"] = int(v.split()[0]) * 1024
            elif k == "Anonymous":
                out["anon"] = int(v.split()[0]) * 1024
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                out["hwm"] = int(line.split()[1]) * 1024
    return out


class ProtocolTest(pt.WorldTestCase):
    def world(self, **kw):
        self.w = pt.World(self.pki, self.cert, pt.subdir(self.tmp, self.id().split(".")[-1]), **kw)
        return self.w

    def ready(self, *addresses):
        w = self.w
        w.wait_ready(*addresses)
        return w

    def subscribe(self, address, svc, chrc, value=(1, 0)):
        rid = self.w.c2g({"type": "device_descriptor_value_write", "deviceAddress": address, "serviceUUID": svc,
                          "characteristicUUID": chrc, "descriptorUUID": "2902", "descriptorValue": list(value)})
        # Only the write result answers the request; the CCCD's value_changed is unsolicited ("N/A"),
        # as in the captured nRF Cloud messages.
        result = self.w.answers(rid, 1)[0]
        self.assertEqual(result["event"]["type"], "device_descriptor_value_write_result", result)
        changed = [e for e in self.w.events("device_descriptor_value_changed")
                   if e["requestId"] == "N/A" and e["messageId"] < result["messageId"]
                   and e["event"]["device"]["address"]["address"] == address]
        self.assertTrue(changed, self.w.events()[-5:])
        return rid, [changed[-1], result]

    def assertError(self, e, rid, *words):
        self.assertEqual(e["event"]["type"], "error", e)
        self.assertEqual(e["requestId"], rid, e)
        for word in words:
            self.assertIn(word, e["event"]["error"]["description"], e)
        self.assertIsInstance(e["event"]["error"]["code"], int)
        self.assertLess(e["event"]["error"]["code"], 0)

    # ---- connections ----

    def test_two_devices_connect(self):
        """desiredConnections lists two devices: both connect, connect results, discovery results, statusConnections
        and the BLE job requests arrive."""
        w = self.world()
        self.ready(A, B)
        for a in (A, B):
            conn = [e for e in w.events("device_connect_result") if e["event"]["device"]["address"]["address"] == a]
            self.assertEqual(len(conn), 1, conn)
            self.assertEqual(conn[0]["event"]["device"]["status"], {"connected": True})
            self.assertEqual(conn[0]["requestId"], "N/A")
            # The fixture's devices have BlueZ's AddressType "public".
            self.assertEqual(conn[0]["event"]["device"]["address"]["type"], "public")
            self.assertEqual(conn[0]["gatewayId"], pt.DEVICE)
            self.assertTrue(pt.st.wait_until(lambda a=a: w.status(a) is not None
                                             and w.status(a).get("status", {}).get("connected")), w.peer.reported)
            self.assertEqual(w.status(a), {"id": a, "status": {"connected": True, "connecting": False}})
            self.assertTrue(w.mock.state(a)["connected"])
        disc = {e["event"]["device"]["address"]["address"]: e for e in w.events("device_discover_result")}
        self.assertEqual(len(w.events("device_discover_result")), 2)
        svc = disc[A]["event"]["services"]
        self.assertEqual(sorted(svc), sorted(["180F", NUS]))
        self.assertEqual(sorted(disc[B]["event"]["services"]), sorted(["181A", "180F", VENDOR_N]))
        bat = svc["180F"]["characteristics"]["2A19"]
        self.assertEqual(bat["path"], "180F/2A19")
        self.assertEqual(bat["properties"], {"read": True, "notify": True})
        self.assertEqual(bat["descriptors"]["2902"], {"uuid": "2902", "path": "180F/2A19/2902", "value": [0, 0]})
        self.assertEqual(svc[NUS]["characteristics"][NUS_RX]["properties"],
                         {"write": True, "writeWithoutResponse": True})
        self.assertIn(VENDOR_N, disc[B]["event"]["services"])
        # BLE FOTA ([Bluetooth] Fota=yes by default) needs the modem's downloads.  Without a modem:
        # no job is asked for on jobs/ble/req, jobs/ble/rcv is not subscribed, and the shadow says
        # fota_v2_ble false.  With one: both devices ask for their job after their discovery.
        ble_fota = pt.TLS == "modem"
        self.assertTrue(pt.st.wait_until(lambda: "serviceInfo" in w.peer.reported.get("device", {})), w.peer.reported)
        self.assertIs(w.peer.reported["device"]["serviceInfo"]["fota_v2_ble"], ble_fota)
        if ble_fota:
            self.assertTrue(pt.st.wait_until(lambda: len(w.peer.received(pt.JOBS_BLE_REQ)) >= 2),
                            w.peer.received(pt.JOBS_BLE_REQ))
            self.assertEqual(sorted(json.loads(p) for _, p in w.peer.received(pt.JOBS_BLE_REQ)), [[A], [B]])
        else:
            self.assertEqual(w.peer.received(pt.JOBS_BLE_REQ), [])
        subscribed = [t for p in pt.st.client_packets(w.broker.log_text(), pt.DEVICE) if p[0] == "SUBSCRIBE"
                      for t in p[1]]
        self.assertIn(f"{pt.st.PREFIX}{pt.DEVICE}/jobs/rcv", subscribed)
        self.assertEqual(f"{pt.st.PREFIX}{pt.DEVICE}/jobs/ble/rcv" in subscribed, ble_fota)
        # Message ids increase.
        ids = [e["messageId"] for e in w.events()]
        self.assertEqual(ids, sorted(ids))
        self.assertEqual(len(set(ids)), len(ids))

    def test_stale_status_removed(self):
        """statusConnections left in the shadow for a device that is not desired is removed at start."""
        stale = "C0:FF:EE:00:00:55"
        w = self.world(desired=(A,), reported={"statusConnections": {
            stale: {"id": stale, "status": {"connected": True, "connecting": False}}}})
        self.ready(A)
        self.assertTrue(pt.st.wait_until(lambda: w.status(stale) is None and w.status(A) is not None
                                         and w.status(A)["status"]["connected"]), w.peer.reported)
        self.assertIn("Removing the status of %s" % stale, w.daemon.log())

    def test_device_removed_disconnects(self):
        w = self.world()
        self.ready(A, B)
        w.peer.delta({"desiredConnections": [A]})
        d = w.wait_events(lambda e: e["event"]["type"] == "device_disconnect")
        self.assertEqual(d[0]["event"]["device"]["address"]["address"], B)
        self.assertEqual(d[0]["event"]["device"]["status"], {"connected": False})
        self.assertTrue(pt.st.wait_until(lambda: not w.mock.state(B).get("connected")), w.mock.state(B))
        # B's entry is removed from statusConnections (null), A stays connected.
        self.assertTrue(pt.st.wait_until(lambda: w.status(B) is None), w.peer.reported)
        self.assertEqual(w.status(A)["status"]["connected"], True)
        self.assertTrue(w.mock.state(A)["connected"])
        # An operation on the removed device is answered with an error.
        rid = w.c2g({"type": "device_characteristic_value_read", "deviceAddress": B, "serviceUUID": "180F",
                     "characteristicUUID": "2A19"})
        self.assertError(w.answers(rid, 1)[0], rid, B)

    def test_large_delta_reads_shadow(self):
        """desiredConnections grows to 100 addresses: the delta is over AWS's cap and arrives as a notice on
        delta/full/err; the gateway reads the shadow again and applies the whole list."""
        w = self.world()
        self.ready(A, B)
        many = [A, B] + ["C0:FF:EE:01:%02X:%02X" % (i // 256, i % 256) for i in range(98)]
        gets = w.peer.gets
        w.peer.delta({"desiredConnections": many})
        self.assertTrue(w.daemon.wait_log("Desired connections: 100 device(s)", timeout=20), w.daemon.log()[-3000:])
        self.assertEqual(w.peer.gets, gets + 1)
        self.assertTrue(pt.st.wait_until(lambda: all(w.status(a) is not None for a in many), 20),
                        sorted(w.peer.reported.get("statusConnections", {})))
        self.assertEqual(w.status(many[-1])["status"], {"connected": False, "connecting": True})
        self.assertTrue(w.status(A)["status"]["connected"])

    def test_delete_yourself_and_discon(self):
        """delete_yourself and DISCON: every device is disconnected, and the gateway waits to be paired again."""
        for how in ("delete_yourself", "DISCON"):
            with self.subTest(how=how):
                if self.w:
                    self.tearDown()
                w = self.world()
                self.ready(A, B)
                # The account no longer has the gateway: its shadow says so.
                w.peer.desired = {"pairing": {"state": "not_associated", "topics": None}}
                if how == "DISCON":
                    w.peer.c2g({"appId": "DEVICE", "messageType": "DISCON"})
                else:
                    w.c2g({"type": "delete_yourself"})
                for a in (A, B):
                    self.assertTrue(pt.st.wait_until(lambda a=a: not w.mock.state(a).get("connected"), 20),
                                    (a, w.mock.state(a), w.daemon.log()[-3000:]))
                self.assertTrue(w.daemon.wait_log("removed gateway %s from its account" % pt.DEVICE),
                                w.daemon.log()[-3000:])
                # Paired again (a delta), with one device: it connects again; B's status entry,
                # held in the outbox meanwhile, is removed.
                w.peer.delta(dict(pt.st.CloudPeer.paired_state(), desiredConnections=[A]))
                w.wait_events(lambda e: e["event"]["type"] == "device_connect_result"
                              and e["event"]["device"]["address"]["address"] == A, 2, 40)
                self.assertTrue(pt.st.wait_until(lambda: w.status(B) is None and w.status(A) is not None
                                                 and w.status(A)["status"]["connected"]), w.peer.reported)
                self.assertFalse(w.mock.state(B).get("connected"))

    # ---- operations ----

    def test_scan(self):
        w = self.world(desired=())
        w.mock.add_device(EXTRA, name="adv-c", rssi=-45, advertising=True, appear_on_discovery=True,
                          address_type="random")
        w.mock.add_device("C0:FF:EE:00:00:0D", name="adv-d", rssi=-65, advertising=True)
        self.assertTrue(w.daemon.wait_log("nRF Cloud session ready"), w.daemon.log()[-3000:])
        rid = w.c2g({"type": "scan", "scanType": 0, "scanMode": "active", "scanTimeout": 1,
                     "scanReporting": "instant", "scanInterval": 0})
        final = w.wait_events(lambda e: e.get("requestId") == rid and e["event"]["timeout"], 1, 20)
        self.assertEqual(final[0]["event"]["devices"], [])
        parts = [e for e in w.events("scan_result") if e["requestId"] == rid and not e["event"]["timeout"]]
        by = {e["event"]["devices"][0]["address"]["address"]: e["event"]["devices"][0] for e in parts}
        self.assertEqual(sorted(by), [EXTRA, "C0:FF:EE:00:00:0D"])
        self.assertEqual(by[EXTRA]["name"], "adv-c")
        # BlueZ says "random"; C0:... has the two top bits set, so the address is static.
        self.assertEqual(by[EXTRA]["address"]["type"], "randomStatic")
        self.assertIn(by[EXTRA]["rssi"], (-45, -46, -47))
        for e in parts:
            self.assertEqual(len(e["event"]["devices"]), 1)
            self.assertEqual(e["event"]["subType"], "instant")
        # The final message comes last.
        mine = [e for e in w.events("scan_result") if e["requestId"] == rid]
        self.assertTrue(mine[-1]["event"]["timeout"])
        # Batch reporting with a name filter: one message.
        rid = w.c2g({"type": "scan", "scanTimeout": 1, "scanReporting": "batch", "filter": {"name": "adv-d"}})
        got = w.answers(rid, 1)
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0]["event"]["subType"], "batch")
        self.assertTrue(got[0]["event"]["timeout"])
        self.assertEqual([d["name"] for d in got[0]["event"]["devices"]], ["adv-d"])
        # A beacon scan runs (test_beacons.py has its results): these devices broadcast no data.
        rid = w.c2g({"type": "scan", "scanType": 1, "scanTimeout": 1})
        got = w.answers(rid, 1)
        self.assertEqual([e["event"]["type"] for e in got], ["scan_result"])
        self.assertEqual(got[0]["event"]["devices"], [])
        # Parameters out of range or unknown fall back to the defaults with a warning, no error event.
        rid = w.c2g({"type": "scan", "scanType": 0, "scanMode": "loud", "scanTimeout": 0,
                     "scanReporting": "sometimes", "scanInterval": -5})
        self.assertTrue(w.daemon.wait_log("warning: Scan %s: scanTimeout scanInterval scanMode scanReporting could "
                                          "not be used, running with the defaults" % rid), w.daemon.log()[-2000:])
        self.assertTrue(w.daemon.wait_log("Scanning for 10s for request %s" % rid), w.daemon.log()[-2000:])
        self.assertEqual([e for e in w.events("error") if e["requestId"] == rid], [])
        # Stopping during that 10 s scan is not a failure.
        self.assertEqual(w.close(), 0)
        log = w.daemon.log()
        self.w = None
        self.assertIn("info: Scan stopped before its end", log)
        self.assertNotIn("Scan failed", log)
        self.assertNotIn("AddressSanitizer", log)

    def test_read_write_subscribe(self):
        w = self.world()
        self.ready(A, B)
        # Read: read result and value changed, requestId echoed.
        rid = w.c2g({"type": "device_characteristic_value_read", "deviceAddress": A.lower(), "serviceUUID": "180f",
                     "characteristicUUID": "00002a19-0000-1000-8000-00805f9b34fb"})
        got = w.answers(rid, 2)
        self.assertEqual([e["event"]["type"] for e in got],
                         ["device_characteristic_value_read_result", "device_characteristic_value_changed"])
        for e in got:
            self.assertEqual(e["event"]["characteristic"], {"uuid": "2A19", "path": "180F/2A19", "value": [100]})
            self.assertEqual(e["event"]["device"]["address"]["address"], A)
        # The service UUID is honoured: B has 2A19 in two services.
        rid1 = w.c2g({"type": "device_characteristic_value_read", "deviceAddress": B, "serviceUUID": "180F",
                      "characteristicUUID": "2A19"})
        rid2 = w.c2g({"type": "device_characteristic_value_read", "deviceAddress": B, "serviceUUID": VENDOR_N,
                      "characteristicUUID": "2A19"})
        self.assertEqual(w.answers(rid1, 2)[0]["event"]["characteristic"]["value"], [0x64])
        v = w.answers(rid2, 2)[0]["event"]["characteristic"]
        self.assertEqual(v, {"uuid": "2A19", "path": VENDOR_N + "/2A19", "value": [0x11]})
        # Write: write result and value changed carrying the written bytes; the device got them.
        rid = w.c2g({"type": "device_characteristic_value_write", "deviceAddress": A, "serviceUUID": NUS,
                     "characteristicUUID": NUS_RX, "characteristicValue": [1, 2, 3]})
        got = w.answers(rid, 2)
        self.assertEqual([e["event"]["type"] for e in got],
                         ["device_characteristic_value_write_result", "device_characteristic_value_changed"])
        self.assertEqual(got[0]["event"]["characteristic"]["value"], [1, 2, 3])
        writes = [x for x in w.mock.log() if x["method"] == "WriteValue" and x.get("value") == "010203"]
        self.assertTrue(writes, w.mock.log())
        # A string value is sent as its bytes.
        rid = w.c2g({"type": "device_characteristic_value_write", "deviceAddress": A, "serviceUUID": NUS,
                     "characteristicUUID": NUS_RX, "characteristicValue": "hi"})
        self.assertEqual(w.answers(rid, 2)[0]["event"]["characteristic"]["value"], [104, 105])
        # 2902 subscribe: descriptor changed + write result with [1,0]; notifications flow.
        rid, got = self.subscribe(A, NUS, NUS_TX)
        self.assertEqual([e["event"]["type"] for e in got],
                         ["device_descriptor_value_changed", "device_descriptor_value_write_result"])
        for e in got:
            self.assertEqual(e["event"]["descriptor"],
                             {"uuid": "2902", "path": "%s/%s/2902" % (NUS, NUS_TX), "value": [1, 0]})
        self.assertTrue(w.mock.state(A)["notifying"][bf_lower(NUS_TX)])
        self.assertEqual(w.mock.notify(A, NUS_TX_LONG_SVC, NUS_TX_LONG, 3, start=7, size=4), 3)
        got = w.wait_events(lambda e: e["event"]["type"] == "device_characteristic_value_changed"
                            and e["requestId"] == "N/A", 3)
        self.assertEqual([pt.seq(e) for e in got], [7, 8, 9])
        self.assertEqual(got[0]["event"]["characteristic"]["path"], "%s/%s" % (NUS, NUS_TX))
        # A discovery now shows the subscription, with the requestId.
        rid = w.c2g({"type": "device_discover", "deviceAddress": A})
        d = w.answers(rid, 1)[0]
        self.assertEqual(d["event"]["type"], "device_discover_result")
        self.assertEqual(d["event"]["services"][NUS]["characteristics"][NUS_TX]["descriptors"]["2902"]["value"], [1, 0])
        # Other descriptors go to the descriptor.
        rid = w.c2g({"type": "device_descriptor_value_read", "deviceAddress": B, "serviceUUID": VENDOR_N,
                     "characteristicUUID": "2A19", "descriptorUUID": "2901"})
        e = w.answers(rid, 1)[0]
        self.assertEqual(e["event"]["type"], "device_descriptor_value_read_result")
        self.assertEqual(bytes(e["event"]["descriptor"]["value"]), b"vendor")
        rid = w.c2g({"type": "device_descriptor_value_write", "deviceAddress": B, "serviceUUID": VENDOR_N,
                     "characteristicUUID": "2A19", "descriptorUUID": "2901", "descriptorValue": [65]})
        self.assertEqual([e["event"]["type"] for e in w.answers(rid, 2)],
                         ["device_descriptor_value_changed", "device_descriptor_value_write_result"])
        # Off: [0,0].
        rid, got = self.subscribe(A, NUS, NUS_TX, (0, 0))
        self.assertEqual(got[1]["event"]["descriptor"]["value"], [0, 0])
        self.assertTrue(pt.st.wait_until(lambda: not w.mock.state(A)["notifying"][bf_lower(NUS_TX)]))

    def test_subscription_survives_reconnect(self):
        w = self.world()
        self.ready(A, B)
        self.subscribe(B, "181A", "2A6E")
        # The device goes away and comes back: a second connect result, the subscription applied again.
        w.mock.remove_device(B)
        w.wait_events(lambda e: e["event"]["type"] == "device_disconnect")
        w.mock.add_device(B, gatt=pt.GATT_B, name="sensor-b")
        w.wait_events(lambda e: e["event"]["type"] == "device_connect_result"
                      and e["event"]["device"]["address"]["address"] == B, 2, 40)
        self.assertTrue(pt.st.wait_until(lambda: w.mock.state(B)["notifying"].get("00002a6e-0000-1000-8000-00805f9b34fb"),
                                         20), w.mock.state(B))
        self.assertEqual(w.mock.notify(B, "181a", "2a6e", 1, start=42, size=4), 1)
        got = w.wait_events(lambda e: e["event"]["type"] == "device_characteristic_value_changed"
                            and e["requestId"] == "N/A")
        self.assertEqual(pt.seq(got[0]), 42)
        # A discovery result after each connection, the second with the subscription in its CCCD.
        disc = w.wait_events(lambda e: e["event"]["type"] == "device_discover_result"
                             and e["event"]["device"]["address"]["address"] == B, 2)
        self.assertEqual(len(disc), 2)
        self.assertEqual(disc[1]["requestId"], "N/A")
        self.assertEqual(disc[1]["event"]["services"]["181A"]["characteristics"]["2A6E"]["descriptors"]["2902"]["value"],
                         [1, 0])

    def test_notifications_5000_in_order(self):
        w = self.world(desired=(A,))
        self.ready(A)
        self.subscribe(A, NUS, NUS_TX)
        n = 5000
        self.assertEqual(w.mock.notify(A, NUS_TX_LONG_SVC, NUS_TX_LONG, n, start=1, size=20), n)
        got = w.wait_events(lambda e: e["event"]["type"] == "device_characteristic_value_changed"
                            and e["requestId"] == "N/A", n, 120)
        self.assertEqual([pt.seq(e) for e in got], list(range(1, n + 1)))
        self.assertEqual(len(got[0]["event"]["characteristic"]["value"]), 20)

    def test_memory_returned_after_burst(self):
        """After a burst the daemon gives the heap it freed back to the system once the outbox is empty
        (daemon/memory-trim.h): without it 5000 notifications left 3 MB more private memory behind, for good."""
        w = self.world(desired=(A,))
        self.ready(A)
        self.subscribe(A, NUS, NUS_TX)
        pid = w.daemon.proc.pid
        before = memory(pid)["anon"] // 1024
        n = 5000
        self.assertEqual(w.mock.notify(A, NUS_TX_LONG_SVC, NUS_TX_LONG, n, start=1, size=20), n)
        w.wait_events(lambda e: e["event"]["type"] == "device_characteristic_value_changed"
                      and e["requestId"] == "N/A", n, 120)
        peak = memory(pid)["anon"] // 1024
        # The trim runs MEMORY_TRIM_DELAY_USEC (10 s) after the outbox is empty, give or take 5 s.
        pt.st.wait_until(lambda: memory(pid)["anon"] // 1024 < before + 512, 30, 0.5)
        after = memory(pid)["anon"] // 1024
        print("anonymous memory: %d KiB before %d notifications, %d KiB right after, %d KiB once idle"
              % (before, n, peak, after), file=sys.stderr)
        if not SANITIZED:
            self.assertLess(after, before + 512, (before, peak, after))

    def test_notify_min_interval_coalesces(self):
        w = self.world(desired=(A,), extra_conf="[Bluetooth]\nNotifyMinIntervalMs=1000\n")
        self.ready(A)
        self.subscribe(A, NUS, NUS_TX)
        t0 = pt.now()
        self.assertEqual(w.mock.notify(A, NUS_TX_LONG_SVC, NUS_TX_LONG, 50, start=1, size=4), 50)
        # The first at once, then only the latest value when the interval ends.
        got = w.wait_events(lambda e: e["event"]["type"] == "device_characteristic_value_changed"
                            and e["requestId"] == "N/A", 2, 10)
        self.assertEqual([pt.seq(e) for e in got], [1, 50])
        pt.st.wait_until(lambda: False, 1.5)
        self.assertEqual(len([e for e in w.events("device_characteristic_value_changed") if e["requestId"] == "N/A"]),
                         2)
        self.assertLess(pt.now() - t0, 10)

    # ---- the unit's ProcSubset=pid ----

    def test_proc_subset_pid(self):
        """The daemon seeing /proc as ProcSubset=pid and ProtectProc=invisible make it (no /proc/net,
        no /proc/sys): it connects, in modem mode through the bridge whose peer check must find
        its own connection without /proc/net/tcp (issue 13 §5), and answers an operation."""
        if os.geteuid() != 0:
            self.skipTest("mounting /proc in a mount namespace needs root")
        w = self.world(desired=(A,), proc_subset_pid=True)
        self.ready(A)
        with open("/proc/%d/mountinfo" % w.daemon.proc.pid) as f:
            proc = [line for line in f if " - proc " in line and line.split()[4] == "/proc"]
        # The last one mounted on /proc is the one the daemon sees.
        self.assertIn("subset=pid", proc[-1], proc)
        self.assertFalse(os.path.exists("/proc/%d/root/proc/net/tcp" % w.daemon.proc.pid))
        rid = w.c2g({"type": "device_characteristic_value_read", "deviceAddress": A, "serviceUUID": "180F",
                     "characteristicUUID": "2A19"})
        self.assertEqual(w.answers(rid, 2)[0]["event"]["characteristic"]["value"], [100])
        self.assertNotIn("refus", w.daemon.log().lower())

    # ---- c2g floods ----

    def test_c2g_flood(self):
        """20 000 c2g operations as fast as the stand-in can send them, while the device
        notifies: C2gRateMax= of them are answered per second, those refused get one error
        event per 10 s, the log says it in a few lines, every notification arrives, and the
        daemon's memory comes back near its level before the burst."""
        rate, n, notes = 50, 20000, 500
        w = self.world(desired=(A,), log_level="info", extra_conf="[Cloud]\nC2gRateMax=%d\n" % rate)
        self.ready(A)
        self.subscribe(A, NUS, NUS_TX)
        pid = w.daemon.proc.pid
        time.sleep(1.0)
        before = memory(pid)
        lines_before = len(w.daemon.log().splitlines())
        op = {"type": "device_characteristic_value_read", "deviceAddress": A, "serviceUUID": "180F",
              "characteristicUUID": "2A19"}
        noted = []
        notifier = threading.Thread(target=lambda: noted.append(
            w.mock.notify(A, NUS_TX_LONG_SVC, NUS_TX_LONG, notes, start=1, size=20)))
        topic = pt.st.PREFIX + "gateways/%s/c2g" % pt.DEVICE
        t0 = pt.now()
        notifier.start()
        for i in range(n):
            w.peer.publish(topic, json.dumps({"type": "operation", "id": "f%d" % i, "operation": op}))
        sent = pt.now() - t0
        notifier.join(120)
        self.assertEqual(noted, [notes])
        # The end of the burst: one warning with the count.
        self.assertTrue(w.daemon.wait_log("c2g operation(s) over [Cloud] C2gRateMax=%d" % rate, 60),
                        w.daemon.log()[-3000:])
        elapsed = pt.now() - t0
        time.sleep(2.0)
        after = memory(pid)
        answered = {e["requestId"] for e in w.events() if e.get("requestId", "").startswith("f")}
        errors = [e for e in w.events("error") if e.get("requestId", "").startswith("f")]
        lines = w.daemon.log().splitlines()[lines_before:]
        warnings = [x for x in lines if x.startswith("warning")]
        got = w.wait_events(lambda e: e["event"]["type"] == "device_characteristic_value_changed"
                            and e["requestId"] == "N/A", notes, 60)
        print("c2g flood: %d operations sent in %.1fs, %d answered (%d error events) in %.1fs; "
              "%d log lines, %d warnings; %d/%d notifications; "
              "USS %.1f -> %.1f MB, RSS %.1f -> %.1f MB (peak RSS %.1f MB)"
              % (n, sent, len(answered), len(errors), elapsed, len(lines), len(warnings), len(got), notes,
                 before["uss"] / 1e6, after["uss"] / 1e6, before["rss"] / 1e6, after["rss"] / 1e6,
                 after["hwm"] / 1e6), file=sys.stderr)
        # C2gRateMax= per started second, and one error event about refusals per 10 s, however fast
        # the daemon works through the flood (more slowly under ASan: a device's queue fills, and
        # refusals come in several windows of the rate).
        self.assertLessEqual(len(answered), rate * (int(elapsed) + 2) + (int(elapsed) + 2) // 10 + 1)
        self.assertGreaterEqual(len(answered), rate)
        self.assertGreaterEqual(len(errors), 1)
        self.assertLessEqual(len(errors), (int(elapsed) + 2) // 10 + 1, [e["event"]["error"] for e in errors[:5]])
        self.assertRegex(errors[0]["event"]["error"]["description"],
                         r"^too many operations: over %d per second; 1 refused since the last such error" % rate)
        self.assertEqual(errors[0]["event"]["error"]["code"], -16)  # -EBUSY
        self.assertLessEqual(len(warnings), 5, warnings)
        self.assertLessEqual(len(lines), 100, lines[-20:])
        self.assertEqual(sorted(pt.seq(e) for e in got), list(range(1, notes + 1)))
        if not SANITIZED:
            self.assertLess(after["uss"], before["uss"] + 2_000_000, (before, after))

    # ---- refusals ----

    def test_malformed_c2g(self):
        w = self.world()
        self.ready(A)
        cases = [
            (b"{not json", "N/A", ""),
            (json.dumps({"type": "operation", "id": "m1", "operation": {"type": "device_characteristic_value_read",
                         "deviceAddress": "C0:FF:EE:00:00", "serviceUUID": "180F", "characteristicUUID": "2A19"}}),
             "m1", "deviceAddress"),
            (json.dumps({"type": "operation", "id": "m2", "operation": {"type": "device_characteristic_value_read",
                         "deviceAddress": A, "serviceUUID": "18G", "characteristicUUID": "2A19"}}),
             "m2", "serviceUUID"),
            (json.dumps({"type": "operation", "id": "m3", "operation": {"type": "device_characteristic_value_write",
                         "deviceAddress": A, "serviceUUID": NUS, "characteristicUUID": NUS_RX,
                         "characteristicValue": [1, 256]}}), "m3", "characteristicValue"),
            (json.dumps({"type": "operation", "id": "m4", "operation": {"type": "reboot"}}), "m4", "type"),
            (json.dumps({"type": "operation", "id": "m5"}), "m5", "operation"),
            (json.dumps({"type": "operation", "id": "m6", "operation": {"type": "scan", "scanType": 7}}),
             "m6", "scanType"),
            (json.dumps({"type": "operation", "id": "m7", "operation": {"type": "device_descriptor_value_write",
                         "deviceAddress": A, "serviceUUID": NUS, "characteristicUUID": NUS_TX,
                         "descriptorUUID": "2902", "descriptorValue": [3, 0]}}), "m7", "descriptorValue"),
        ]
        for payload, rid, field in cases:
            before = len(w.events("error"))
            w.peer.publish(pt.st.PREFIX + "gateways/%s/c2g" % pt.DEVICE, payload, qos=1)
            w.wait_events(lambda e: e["event"]["type"] == "error", before + 1)
            e = w.events("error")[-1]
            self.assertEqual(e["requestId"], rid, (payload, e))
            self.assertIn(field, e["event"]["error"]["description"], (payload, e))
        # Nothing was written to the device by the refused write.
        self.assertFalse([x for x in w.mock.log() if x["method"] == "WriteValue"], w.mock.log())
        # The daemon is still up and answers.
        rid = w.c2g({"type": "device_characteristic_value_read", "deviceAddress": A, "serviceUUID": "180F",
                     "characteristicUUID": "2A19"})
        self.assertEqual(w.answers(rid, 1)[0]["event"]["type"], "device_characteristic_value_read_result")
        # get_gateway_status is not answered (no Nordic gateway does; there is no event type for it).
        rid = w.c2g({"type": "get_gateway_status"})
        self.assertTrue(w.daemon.wait_log("get_gateway_status %s: not answered" % rid), w.daemon.log()[-2000:])
        time.sleep(0.5)
        self.assertEqual([e for e in w.events() if e.get("requestId") == rid], [])
        self.assertEqual([e for e in w.events() if e["event"]["type"] == "gateway_status"], [])

    def test_unknown_device_and_attribute(self):
        w = self.world()
        self.ready(A, B)
        ops = [
            ({"type": "device_characteristic_value_read", "deviceAddress": UNKNOWN, "serviceUUID": "180F",
              "characteristicUUID": "2A19"}, [UNKNOWN, "desiredConnections"]),
            ({"type": "device_discover", "deviceAddress": UNKNOWN}, [UNKNOWN]),
            ({"type": "device_characteristic_value_write", "deviceAddress": UNKNOWN, "serviceUUID": "180F",
              "characteristicUUID": "2A19", "characteristicValue": [1]}, [UNKNOWN]),
            ({"type": "device_descriptor_value_write", "deviceAddress": UNKNOWN, "serviceUUID": "180F",
              "characteristicUUID": "2A19", "descriptorUUID": "2902", "descriptorValue": [1, 0]}, [UNKNOWN]),
            ({"type": "device_characteristic_value_read", "deviceAddress": A, "serviceUUID": "180F",
              "characteristicUUID": "2A6E"}, ["2A6E", "not found"]),
            ({"type": "device_characteristic_value_read", "deviceAddress": A, "serviceUUID": "181A",
              "characteristicUUID": "2A19"}, ["181A", "not found"]),
            ({"type": "device_descriptor_value_read", "deviceAddress": A, "serviceUUID": "180F",
              "characteristicUUID": "2A19", "descriptorUUID": "2901"}, ["2901", "not found"]),
            ({"type": "device_characteristic_value_write", "deviceAddress": A, "serviceUUID": "180F",
              "characteristicUUID": "2A19", "characteristicValue": [1]}, ["not writable"]),
            ({"type": "device_descriptor_value_write", "deviceAddress": B, "serviceUUID": "180F",
              "characteristicUUID": "2A19", "descriptorUUID": "2902", "descriptorValue": [1, 0]}, ["notify"]),
        ]
        for op, words in ops:
            rid = w.c2g(op)
            got = w.answers(rid, 1)
            self.assertError(got[0], rid, *words)
        self.assertEqual(w.daemon.proc.poll(), None)


NUS_TX_LONG_SVC = pt.bf.NUS
NUS_TX_LONG = pt.bf.NUS_TX


def bf_lower(u):
    return pt.bf.NUS_TX if u == NUS_TX else u


if __name__ == "__main__":
    name = os.environ.get("PROTOCOL_TEST")
    argv = [sys.argv[0]] + (["ProtocolTest." + name] if name else [])
    unittest.main(argv=argv, verbosity=2)
