# SPDX-License-Identifier: MIT
"""Shadow documents and deltas larger than [Cloud] MaxIncomingBytes= (issue 13
§2), through the real nrfcloud-gatewayd (TLS=host), mosquitto and the stand-in
for nRF Cloud.  Before, the 16 KiB c2g limit applied to the shadow too: a
17 KB document kept the gateway out of service (a reconnect every 60 s), and
deltas of 5 000 or 10 000 desiredConnections entries were dropped with one
warning."""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sessiontest as st  # noqa: E402

DEVICE = "9d1c2b3a-4e5f-4a6b-8c7d-0e1f2a3b4c5d"


def addresses(n):
    return ["AA:BB:%02X:%02X:%02X:%02X" % (i >> 24, (i >> 16) & 255, (i >> 8) & 255, i & 255) for i in range(n)]


class LimitedTransformPeer(st.CloudPeer):
    """The stand-in, with nRF Cloud's limit on a transform's result ("l", 1792
    bytes by default): a longer result is refused with the error form."""

    def _on_message(self, topic, payload):
        if topic == self.topic("get/tf"):
            self.tf_requests += 1
            req = json.loads(payload)
            result = json.dumps({"tf": self.desired.get("desiredConnections", [])})
            if len(result) > req.get("l", 1792):
                result = json.dumps({"err": 3, "position": 0,
                                     "message": "transformed result exceeds %d bytes" % req.get("l", 1792)})
            self.publish(self.topic("get/accepted/tf"), result, qos=1)
            return
        super()._on_message(topic, payload)


class LargeShadow(st.PkiCase):
    DEVICE = DEVICE

    def setUp(self):
        super().setUp()
        # Above AWS IoT's 128 KiB, so that a message over the daemon's shadow bound reaches it.
        self.broker = st.Broker(os.path.join(self.dir, "broker"), self.pki, listener_conf="max_packet_size 400000\n")
        self.broker.start()
        self.peer = self.daemon = None

    def tearDown(self):
        if self.daemon:
            st.stop_cleanly(self, self.daemon)
        if self.peer:
            self.peer.stop()
        self.broker.stop()

    def start(self, **peer_args):
        self.peer = LimitedTransformPeer(self.broker, self.pki, DEVICE, **peer_args)
        self.peer.tf_requests = 0
        self.peer.start()
        self.assertTrue(self.peer.connected.wait(10))
        self.assertTrue(st.wait_until(lambda: "Received SUBSCRIBE from %s" % st.ct.PEER_ID in self.broker.log_text()))
        self.daemon = st.Daemon(os.path.join(self.dir, "daemon"), self.broker, self.pki, DEVICE, self.cert)
        self.assertTrue(self.daemon.wait_log("nRF Cloud session ready", 30), self.daemon.log()[-3000:])

    def test_17k_document(self):
        """A 17 KB accepted document (default MaxIncomingBytes=16K) is read: paired and ready at once."""
        self.start(desired_connections=["C0:FF:EE:00:00:01"])
        self.peer.desired["padding"] = "x" * (17 * 1024)
        self.assertGreater(len(json.dumps(self.peer.document())), 17 * 1024)
        # The document of the next connection is the large one.
        self.peer.c2g({"appId": "DEVICE", "messageType": "DISCON"})
        self.assertTrue(self.daemon.wait_log("nRF Cloud session ready", 30, count=2), self.daemon.log()[-3000:])
        log = self.daemon.log()
        self.assertNotIn("Dropped a", log)
        self.assertNotIn("did not complete", log)
        self.assertIn("Desired connections: 1 device(s)", log)

    def test_delta_5000_entries(self):
        """A delta naming 5 000 devices (100 KB) is read: 'N desired, M allowed', not an address error."""
        self.start()
        wanted = addresses(5000)
        self.peer.delta({"desiredConnections": wanted})
        self.assertTrue(self.daemon.wait_log("names 5000 desired devices, 8 allowed", 30), self.daemon.log()[-3000:])
        self.assertTrue(self.daemon.wait_log("Desired connections: 100 device(s)", 10))
        log = self.daemon.log()
        self.assertNotIn("Dropped a", log)
        self.assertNotIn("not Bluetooth addresses", log)

    def test_delta_10000_entries(self):
        """A delta of 10 000 entries (200 KB) is over the shadow bound too: the daemon says why and
        asks for desiredConnections through the transform instead, and stays in service."""
        self.start(desired_connections=["C0:FF:EE:00:00:01"])
        before = self.peer.tf_requests
        self.peer.delta({"desiredConnections": addresses(10000)})
        self.assertTrue(self.daemon.wait_log("over the shadow limit of 131072 bytes", 30), self.daemon.log()[-3000:])
        self.assertTrue(self.daemon.wait_log("too large to be read: asking for desiredConnections through the shadow "
                                             "transform", 10))
        self.assertTrue(st.wait_until(lambda: self.peer.tf_requests > before, 10))
        # This stand-in refuses a result over "l" bytes, as nRF Cloud does; the answer is reported, the set kept.
        self.assertTrue(self.daemon.wait_log("nRF Cloud could not transform the shadow", 10))
        log = self.daemon.log()
        self.assertEqual(log.count("nRF Cloud session ready"), 1, log[-3000:])
        self.assertEqual(log.count("Desired connections:"), 1)

    def test_transform_fallback_applies(self):
        """When the transform can give the list, it is applied after a delta that was too large."""
        self.start(desired_connections=["C0:FF:EE:00:00:01"])
        big = ["C0:FF:EE:00:00:02"] + ["not an address %06d" % i for i in range(7000)]
        # Straight onto delta/full, past AWS's 1792-byte rule (the stand-in's delta() would send it
        # to delta/full/err): what is tested is the daemon's own bound on a shadow message.
        self.peer.version += 1
        self.peer.publish(self.peer.topic("update/delta/full"),
                          json.dumps({"version": self.peer.version, "timestamp": int(time.time()),
                                      "state": {"desiredConnections": big}}), qos=1)
        # What the cloud's transform gives: the list without the filler.
        self.peer.desired["desiredConnections"] = ["C0:FF:EE:00:00:02"]
        self.assertTrue(self.daemon.wait_log("too large to be read", 30), self.daemon.log()[-3000:])
        self.assertTrue(self.daemon.wait_log("Desired connections: 1 device(s)", 10, count=2),
                        self.daemon.log()[-3000:])


if __name__ == "__main__":
    unittest.main(verbosity=2)
