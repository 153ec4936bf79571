# SPDX-License-Identifier: MIT
"""The nRF Cloud connection procedure (spec nrfcloud-mqtt.md §5.2, §5.3) as
the real nrfcloud-gatewayd runs it in host TLS mode, against mosquitto with
mutual TLS and the nRF Cloud gateway ACL, and a stand-in for nRF Cloud that
serves the shadow.  What the daemon does is read back from the broker's log,
packet by packet, and from what the stand-in received."""

import json
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sessiontest as st  # noqa: E402

DEVICE = "6c0f4e2a-5a8b-4f1e-9d3c-2b7a1e0c5d11"
SHADOW = [f"{DEVICE}/shadow/get/accepted/trim", f"{DEVICE}/shadow/get/rejected",
          f"{DEVICE}/shadow/update/delta/full", f"{DEVICE}/shadow/get/accepted/tf",
          f"{DEVICE}/shadow/update/delta/full/err"]
GET = f"{DEVICE}/shadow/get/trim"
GET_TF = f"{DEVICE}/shadow/get/tf"
UPDATE = f"{DEVICE}/shadow/update"
C2G = f"{st.PREFIX}gateways/{DEVICE}/c2g"
G2C = f"{st.PREFIX}gateways/{DEVICE}/g2c"
# No jobs/ble/rcv: the gateway cannot update BLE devices (fota_v2_ble false).
JOBS = [f"{st.PREFIX}{DEVICE}/jobs/rcv"]
DERIVED = "The shadow names no c2g or g2c topic under desired.pairing.topics"
JOBS_REQ = f"{st.PREFIX}{DEVICE}/jobs/req"
UNPAIRED_ID = "e294462c09184318b0bcb1ade64fcfad"
TOPIC_REFUSED_ID = "bbcf813f834741b6969be001dfe9bf68"
OTHER_DEVICE = "0b7e8a52-2f39-4d6e-9c1a-5e3f7d2b9a40"
# An operation the gateway answers with one error event on g2c, Bluetooth or not.
C2G_UNKNOWN_OP = {"type": "operation", "id": "13", "operation": {"type": "nope"}}



def subscribes(topics):
    """A step that subscribes topics: one SUBSCRIBE per topic (so that each SUBACK
    code can be read), in this order."""
    return [("SUBSCRIBE", [t]) for t in topics]


# §5.2 steps 2 to 7, in this order, each after the acknowledgement of the one before.
FIRST_STEPS = subscribes(SHADOW) + [("PUBLISH", GET), ("PUBLISH", UPDATE)]
PAIRED_STEPS = FIRST_STEPS + subscribes([C2G]) + subscribes(JOBS) + [("PUBLISH", JOBS_REQ)]
N = len(PAIRED_STEPS)


def steps(packets):
    """Packets without sizes and QoS, for comparison with PAIRED_STEPS."""
    return [(p[0], p[1]) if len(p) > 1 else p for p in packets]


class Procedure(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = st.TempDir("session-")
        cls.pki = st.Pki(os.path.join(cls.tmp.path, "pki"))
        cls.cert = cls.pki.device(DEVICE)
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        Procedure.n += 1
        self.dir = os.path.join(self.tmp.path, "t%d" % Procedure.n)
        self.broker = st.Broker(os.path.join(self.dir, "broker"), self.pki)
        self.broker.start()
        self.peer = None
        self.daemon = None

    def tearDown(self):
        if self.daemon:
            st.stop_cleanly(self, self.daemon)
        if self.peer:
            self.peer.stop()
        self.broker.stop()

    def start(self, extra_conf="", journal=False, **peer_args):
        """The stand-in cloud, then the daemon; journal: its records go to a journal socket read here."""
        if journal and (os.geteuid() != 0 or
                        subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0):
            self.skipTest("needs a private mount namespace (root)")
        self.peer = st.CloudPeer(self.broker, self.pki, DEVICE, **peer_args)
        self.peer.start()
        self.assertTrue(self.peer.connected.wait(10), "the stand-in for nRF Cloud could not connect")
        self.assertTrue(st.wait_until(lambda: "Received SUBSCRIBE from %s" % st.ct.PEER_ID in self.broker.log_text()))
        self.daemon = st.Daemon(os.path.join(self.dir, "daemon"), self.broker, self.pki, DEVICE, self.cert,
                                extra_conf=extra_conf, journal=journal)

    def packets(self):
        return st.client_packets(self.broker.log_text(), DEVICE)

    def wait_packets(self, predicate, timeout=15):
        ok = st.wait_until(lambda: predicate(self.packets()), timeout)
        self.assertTrue(ok, "daemon packets: %s\n--- daemon log:\n%s" % (self.packets(), self.daemon.log()[-4000:]))

    def wait_ready(self, count=1):
        self.assertTrue(self.daemon.wait_log("nRF Cloud session ready", count=count),
                        "not ready; packets %s\n--- daemon log:\n%s" % (self.packets(), self.daemon.log()[-4000:]))
        # The daemon says ready as it hands jobs/req to the MQTT library: wait until the broker has it.
        self.wait_packets(lambda p: len([x for x in p if x[0] == "PUBLISH" and x[1] == JOBS_REQ]) >= count)

    def connection(self, index):
        """The packets of the index-th connection (0-based)."""
        out, n = [], -1
        for p in self.packets():
            if p[0] == "CONNECT":
                n += 1
                continue
            if n == index:
                out.append(p)
        return out

    def test_paired_trimmed(self):
        """The whole procedure with a trimmed document, message by message."""
        self.start(form="trimmed")
        self.wait_ready()
        # The device report and the transform request follow jobs/req.
        self.wait_packets(lambda p: len(steps(p)) >= 3 + N)
        got = steps(self.packets())
        self.assertEqual(got[0], ("CONNECT",))
        self.assertEqual(got[1:1 + N], PAIRED_STEPS, got)
        self.assertEqual(sorted(got[1 + N:3 + N]), sorted([("PUBLISH", UPDATE), ("PUBLISH", GET_TF)]), got)
        # Every subscription and publish of the gateway at QoS 1; the shadow get is empty.
        for p in self.packets():
            if p[0] == "PUBLISH":
                self.assertEqual(p[2], 1, p)
        self.assertEqual([p[3] for p in self.packets() if p[0] == "PUBLISH" and p[1] == GET], [0])
        self.assertIn("(QoS 1)", self.broker.log_text())
        self.assertNotIn("Denied", self.broker.log_text())

        # What the stand-in received, in order: the pairing report, then the device report.
        st.wait_until(lambda: len(self.peer.updates()) >= 2)
        updates = self.peer.updates()
        self.assertEqual(updates[0], {"state": {"reported": {
            "pairing": {"state": "paired", "config": None, "topics": {"g2c": G2C, "c2g": C2G}},
            "connection": {"keepalive": 1200}, "nrfcloud_mqtt_topic_prefix": st.PREFIX, "pairingStatus": None}}})
        device = updates[1]["state"]["reported"]["device"]
        self.assertEqual(device["serviceInfo"], {"fota_v2": [], "fota_v2_ble": False})
        self.assertEqual(device["deviceInfo"]["appName"], "nrfcloud-gatewayd")
        self.assertIn("appVersion", device["deviceInfo"])
        # Host mode: no modem, so no modem fields.
        self.assertNotIn("modemFirmware", device["deviceInfo"])
        self.assertNotIn("imei", device["deviceInfo"])
        self.assertEqual([p for t, p in self.peer.received(JOBS_REQ)], [b'[""]'])
        self.assertEqual([json.loads(p) for t, p in self.peer.received(GET_TF)],
                         [{"t": "state.desired.desiredConnections", "l": 1024}])
        self.assertIn("Cloud session paired -> ready", self.daemon.log())
        self.assertTrue(self.daemon.wait_status("Cloud ready (localhost), outbox empty"), self.daemon.statuses())
        # The stand-in names the topics, as a real gateway shadow does: nothing derived.
        self.assertNotIn(DERIVED, self.daemon.log())

    def test_topics_derived_warning(self):
        """A shadow without desired.pairing.topics: the gateways/<id>/... topics are derived, and that is
        said once at warning level, not again on the next connection."""
        self.start(pairing_topics=None)
        self.wait_ready()
        self.assertEqual(steps(self.connection(0))[:N], PAIRED_STEPS)
        self.assertIn("warning: %s, using the derived c2g %s and g2c %s" % (DERIVED, C2G, G2C), self.daemon.log())
        self.broker.stop()
        self.broker.start()
        self.assertTrue(self.peer.connected.wait(10))
        self.wait_ready(count=2)
        self.assertEqual(self.daemon.log().count(DERIVED), 1, self.daemon.log())

    def test_full_form_with_connections(self):
        """The full AWS form; desiredConnections in the document: no transform needed."""
        self.start(form="full", desired_connections=["C2:6B:AC:6D:05:A2", {"id": "d6:57:7d:cc:50:17"}])
        self.wait_ready()
        self.assertTrue(self.daemon.wait_log("Desired connections: 2 device(s)"), self.daemon.log())
        time.sleep(1)
        got = steps(self.connection(0))
        self.assertEqual(got[:N], PAIRED_STEPS, got)
        self.assertNotIn(("PUBLISH", GET_TF), got)

    def test_transform_gives_connections(self):
        """A trimmed document without desiredConnections: the transform's answer is used."""
        self.start(form="trimmed", desired_connections=[{"address": {"address": "C2:6B:AC:6D:05:A2", "type": "random"}}],
                   omit_connections=True)
        self.wait_ready()
        self.assertTrue(self.daemon.wait_log("Desired connections: 1 device(s)"), self.daemon.log())
        self.assertEqual(len(self.peer.received(GET_TF)), 1)

    def test_not_associated_then_paired(self):
        self.start(paired=False)
        self.assertTrue(self.daemon.wait_log("is not associated with an nRF Cloud account"), self.daemon.log())
        # Reported not_associated, and nothing past the shadow: no c2g, no jobs.
        st.wait_until(lambda: self.peer.updates())
        self.assertEqual(self.peer.updates()[0]["state"]["reported"]["pairing"]["state"], "not_associated")
        time.sleep(1.5)
        got = steps(self.packets())
        self.assertEqual(got, [("CONNECT",)] + FIRST_STEPS)
        self.assertIn("Cloud session shadow -> not-associated", self.daemon.log())
        self.assertTrue(self.daemon.wait_status("Cloud not-associated (localhost), outbox empty"), self.daemon.statuses())

        # The user adds the gateway to an account: a delta; the daemon echoes it, reconnects (§5.3)
        # and runs the whole procedure.
        self.peer.delta(st.CloudPeer.paired_state())
        self.wait_ready()
        self.wait_packets(lambda p: len([x for x in p if x[0] == "CONNECT"]) == 2)
        first = steps(self.connection(0))
        self.assertEqual(first[len(FIRST_STEPS):], [("PUBLISH", UPDATE)], first)  # the echo of the delta
        echo = self.peer.updates()[1]
        self.assertEqual(echo["state"]["reported"]["pairing"]["state"], "paired")
        self.assertEqual(steps(self.connection(1))[:N], PAIRED_STEPS)
        self.assertIn("added to an nRF Cloud account, reconnecting", self.daemon.log())

    def test_delta_accepted(self):
        self.start()
        self.wait_ready()
        # The device report follows jobs/req: count from after it.
        self.assertTrue(st.wait_until(lambda: any("device" in u["state"].get("reported", {})
                                                  for u in self.peer.updates())), self.peer.updates())
        n = len(self.peer.updates())
        self.peer.delta({"desiredConnections": ["C2:6B:AC:6D:05:A2", "D6:57:7D:CC:50:17"]})
        self.assertTrue(st.wait_until(lambda: len(self.peer.updates()) > n), self.daemon.log())
        self.assertEqual(self.peer.updates()[n],
                         {"state": {"reported": {"desiredConnections": ["C2:6B:AC:6D:05:A2", "D6:57:7D:CC:50:17"]}}})
        self.assertTrue(self.daemon.wait_log("Desired connections: 2 device(s)"), self.daemon.log())
        self.assertEqual(self.peer.reported["desiredConnections"], self.peer.desired["desiredConnections"])

    def test_discon(self):
        self.start(desired_connections=["C2:6B:AC:6D:05:A2"])
        self.wait_ready()
        # The cloud removes the gateway from the account: the shadow goes back to not_associated.
        self.peer.desired = {"pairing": {"state": "not_associated", "topics": None}}
        self.peer.c2g({"appId": "DEVICE", "messageType": "DISCON"})
        self.assertTrue(self.daemon.wait_log("removed gateway %s from its account (DISCON)" % DEVICE),
                        self.daemon.log())
        self.assertTrue(self.daemon.wait_log("is not associated with an nRF Cloud account"), self.daemon.log())
        time.sleep(1)
        # A new connection that stops after the not_associated report.
        second = steps(self.connection(1))
        self.assertEqual(second, FIRST_STEPS, second)
        self.assertEqual(self.peer.updates()[-1]["state"]["reported"]["pairing"]["state"], "not_associated")
        log = self.daemon.log()
        self.assertIn("Cloud session ready -> not-associated", log)
        self.assertIn("Cloud session not-associated -> connecting", log)

    def test_journal_fields(self):
        """Structured records: each transition with MQTT_STATE=, the unpaired notice with its MESSAGE_ID."""
        self.start(journal=True, paired=False)
        unpaired = self.daemon.wait_record(MESSAGE_ID=UNPAIRED_ID)
        self.assertIsNotNone(unpaired, self.daemon.journal_records[-5:])
        self.assertEqual(unpaired["PRIORITY"], "4")
        self.assertEqual(unpaired["GATEWAY_ID"], DEVICE)
        self.assertIn("must be added to an account", unpaired["MESSAGE"])
        r = self.daemon.wait_record(MESSAGE="Cloud session shadow -> not-associated")
        self.assertIsNotNone(r)
        self.assertEqual(r["MQTT_STATE"], "not-associated")
        self.assertEqual(r["CODE_FUNC"], "cloud_session_enter_state")

        self.peer.delta(st.CloudPeer.paired_state())
        r = self.daemon.wait_record(MESSAGE="Cloud session paired -> ready")
        self.assertIsNotNone(r, [x.get("MESSAGE") for x in self.daemon.journal_records])
        self.assertEqual(r["MQTT_STATE"], "ready")
        self.assertEqual(r["CLOUD_TEAM"], st.TEAM)
        self.assertEqual(r["GATEWAY_ID"], DEVICE)
        # Nothing went to stderr as plain text while the journal was in use.
        self.assertNotIn("Cloud session", self.daemon.log())

    def test_team_configured(self):
        """[Cloud] TeamId= gives the team: a shadow without nrfcloud_mqtt_topic_prefix still pairs."""
        self.start(extra_conf="TeamId=%s" % st.TEAM, with_prefix=False)
        self.wait_ready()
        self.assertEqual(steps(self.connection(0))[:N], PAIRED_STEPS)
        self.assertEqual(self.peer.updates()[0]["state"]["reported"]["nrfcloud_mqtt_topic_prefix"], st.PREFIX)

    def test_topic_guard(self):
        """The shadow names c2g/g2c topics outside the policy: refused, never sent; the defaults are used."""
        evil_c2g = f"prod/other-team/gateways/{DEVICE}/c2g"
        evil_g2c = f"prod/other-team/gateways/{DEVICE}/g2c"
        self.start(pairing_topics={"c2g": evil_c2g, "g2c": evil_g2c})
        self.wait_ready()
        log = self.daemon.log()
        self.assertIn("Refusing the c2g topic %s of the shadow" % evil_c2g, log)
        self.assertIn("Refusing the g2c topic %s of the shadow" % evil_g2c, log)
        self.assertEqual(steps(self.connection(0))[:N], PAIRED_STEPS)
        broker_log = self.broker.log_text()
        self.assertNotIn("other-team", broker_log)
        self.assertNotIn("Denied", broker_log)
        self.assertEqual([t for t, p in self.peer.received() if "other-team" in t], [])
        self.assertEqual(self.peer.updates()[0]["state"]["reported"]["pairing"]["topics"], {"g2c": G2C, "c2g": C2G})

    def test_topic_guard_wildcard_c2g(self):
        """NCS 2.2..2.7's '+/r' wildcard is turned back into c2g (its m/ form is allowed)."""
        self.start(pairing_topics={"c2g": f"{st.PREFIX}m/d/{DEVICE}/+/r"})
        self.wait_ready()
        self.assertEqual(steps(self.connection(0))[len(FIRST_STEPS)], ("SUBSCRIBE", [f"{st.PREFIX}m/d/{DEVICE}/c2g"]))

    def answers(self):
        """The stand-in sends one c2g operation; returns the topics the daemon published on since,
        after the answer on the default g2c topic."""
        before = len(self.packets())
        # On the topic the gateway subscribed, not the refused one the shadow names.
        self.peer.publish(C2G, json.dumps(C2G_UNKNOWN_OP), qos=1)
        self.assertTrue(st.wait_until(lambda: self.peer.received(G2C)), self.daemon.log()[-3000:])
        time.sleep(1)
        return [p[1] for p in self.packets()[before:] if p[0] == "PUBLISH"]

    def test_topic_guard_loop(self):
        """Issue 13: c2g == g2c == <prefix>m/loop made the gateway answer its own answers (5 452
        messages in 15 s).  Both are refused, each reported once even across a reconnection, and
        the gateway pairs on its own topics: one operation, one answer."""
        loop = f"{st.PREFIX}m/loop"
        self.start(pairing_topics={"c2g": loop, "g2c": loop})
        self.wait_ready()
        self.assertEqual(steps(self.connection(0))[:N], PAIRED_STEPS)
        self.assertEqual(self.peer.updates()[0]["state"]["reported"]["pairing"]["topics"], {"g2c": G2C, "c2g": C2G})
        self.assertEqual(self.answers(), [G2C])
        self.assertEqual(len(self.peer.received(G2C)), 1)
        self.assertEqual(self.peer.received(loop), [])
        self.broker.stop()
        self.broker.start()
        self.assertTrue(self.peer.connected.wait(10))
        self.wait_ready(count=2)
        log = self.daemon.log()
        self.assertEqual(log.count("Refusing the c2g topic %s of the shadow" % loop), 1, log)
        self.assertEqual(log.count("Refusing the g2c topic %s of the shadow" % loop), 1, log)
        self.assertNotIn(loop, self.broker.log_text())

    def test_topic_guard_other_device(self):
        """Issue 13: a g2c naming another device's d2c made the gateway publish as that device.
        Refused; its events go to its own g2c."""
        other = f"{st.PREFIX}m/d/{OTHER_DEVICE}/d2c"
        self.start(pairing_topics={"g2c": other})
        self.wait_ready()
        self.assertIn("Refusing the g2c topic %s of the shadow" % other, self.daemon.log())
        self.assertEqual(self.answers(), [G2C])
        self.assertNotIn(OTHER_DEVICE, self.broker.log_text())
        self.assertEqual(self.peer.received(other), [])

    def test_topic_guard_wildcard_filter(self):
        """Issue 13: a wildcard c2g passed the guard, the pairing report refused it and the session
        reconnected every 60 s.  Now it is refused at once, in one journal record with its
        MESSAGE_ID, and the gateway is ready on its own c2g within seconds, on one connection."""
        wildcard = f"{st.PREFIX}m/d/+/c2g"
        self.start(journal=True, pairing_topics={"c2g": wildcard})
        r = self.daemon.wait_record(MESSAGE_ID=TOPIC_REFUSED_ID)
        self.assertIsNotNone(r, [x.get("MESSAGE") for x in self.daemon.journal_records])
        self.assertEqual(r["PRIORITY"], "3")
        self.assertEqual(r["MQTT_TOPIC"], wildcard)
        self.assertEqual(r["GATEWAY_ID"], DEVICE)
        self.assertIn("using %s instead" % C2G, r["MESSAGE"])
        self.assertIsNotNone(self.daemon.wait_record(MESSAGE="Cloud session paired -> ready"),
                             [x.get("MESSAGE") for x in self.daemon.journal_records])
        self.wait_packets(lambda p: len([x for x in p if x[0] == "PUBLISH" and x[1] == JOBS_REQ]) >= 1)
        self.assertEqual(steps(self.connection(0))[:N], PAIRED_STEPS)
        self.assertEqual(len([p for p in self.packets() if p[0] == "CONNECT"]), 1)
        # A new connection reads the same shadow: no second record.
        self.broker.stop()
        self.broker.start()
        self.assertTrue(self.peer.connected.wait(10))
        self.assertTrue(st.wait_until(lambda: len([x for x in self.daemon.journal_records
                                                   if "Cloud session paired -> ready" in x.get("MESSAGE", "")]) >= 2),
                        [x.get("MESSAGE") for x in self.daemon.journal_records][-30:])
        self.assertEqual(len([x for x in self.daemon.journal_records if x.get("MESSAGE_ID") == TOPIC_REFUSED_ID]), 1)

    def test_broker_restart(self):
        self.start()
        self.wait_ready()
        self.broker.stop()
        self.broker.start()
        self.assertTrue(self.peer.connected.wait(10))
        self.wait_ready(count=2)
        self.wait_packets(lambda p: len([x for x in p if x[0] == "CONNECT"]) >= 1)
        # The log was appended: the second CONNECT is the reconnection.
        got = steps(self.connection(1))
        self.assertEqual(got[:N], PAIRED_STEPS, got)
        self.assertIn("Cloud connection lost", self.daemon.log())
        self.assertIn("Cloud session ready -> connecting", self.daemon.log())

    def test_outbox_waits_for_procedure(self):
        """g2c messages left in the outbox by an earlier run go out after the procedure, in order,
        and do not hold up its control messages."""
        state = os.path.join(self.dir, "daemon", "state")
        os.makedirs(state)
        args = st.ct.harness_args(self.broker, self.pki, DEVICE, state, cert=self.cert, extra=["--count", "40"])
        args[args.index("--uri") + 1] = "ssl://localhost:%d" % st.ct.free_port()  # nobody listens
        harness = st.ct.Harness(self.dir, "offline", args)
        # The harness writes the messages into the outbox as it starts, then fails to connect.
        self.assertIsNotNone(harness.wait_line("state backoff", 20), harness.stderr())
        time.sleep(0.2)
        harness.kill()

        self.start()
        self.wait_ready()
        self.assertTrue(st.wait_until(lambda: len(self.peer.numbers(G2C)) >= 40), self.daemon.log())
        self.assertEqual(self.peer.numbers(G2C), list(range(40)))
        got = steps(self.connection(0))
        self.assertEqual(got[:N], PAIRED_STEPS, got)
        first_g2c = got.index(("PUBLISH", G2C))
        self.assertGreater(first_g2c, got.index(("PUBLISH", JOBS_REQ)))

    def test_topic_guard_restored_outbox(self):
        """Outbox entries from an earlier run on a topic outside the policy are dropped, not sent."""
        state = os.path.join(self.dir, "daemon", "state")
        os.makedirs(state)
        evil = f"prod/other-team/gateways/{DEVICE}/g2c"
        for topic, count in ((evil, 5), (G2C, 10)):
            args = st.ct.harness_args(self.broker, self.pki, DEVICE, state, cert=self.cert,
                                      extra=["--count", str(count)])
            args[args.index("--uri") + 1] = "ssl://localhost:%d" % st.ct.free_port()  # nobody listens
            args[args.index("--topic") + 1] = topic
            harness = st.ct.Harness(self.dir, "offline", args)
            self.assertIsNotNone(harness.wait_line("state backoff", 20), harness.stderr())
            time.sleep(0.2)
            harness.kill()

        self.start()
        self.wait_ready()
        self.assertTrue(st.wait_until(lambda: len(self.peer.numbers(G2C)) >= 10), self.daemon.log())
        time.sleep(0.5)
        self.assertEqual(self.peer.numbers(G2C), list(range(10)))
        self.assertEqual(self.daemon.log().count("Refusing to publish on %s" % evil), 5)
        broker_log = self.broker.log_text()
        self.assertNotIn("other-team", broker_log)
        self.assertNotIn("Denied", broker_log)
        self.assertEqual([t for t, p in self.peer.received() if "other-team" in t], [])
        # One connection: nothing made the broker drop the gateway.
        self.assertEqual(len([p for p in self.packets() if p[0] == "CONNECT"]), 1)

    def test_reload_live_keys(self):
        self.start()
        self.wait_ready()
        with open(self.daemon.conf) as f:
            text = f.read()
        with open(self.daemon.conf, "w") as f:
            f.write(text.replace("ReconnectMaxSec=2", "ReconnectMaxSec=5") + "[Buffer]\nMaxMessages=500\n")
        self.daemon.proc.send_signal(signal.SIGHUP)
        self.assertTrue(self.daemon.wait_log("Configuration reloaded, 2 key(s) changed"), self.daemon.log())
        log = self.daemon.log()
        self.assertIn("[Cloud] ReconnectMaxSec changed from '2' to '5', applied", log)
        self.assertIn("[Buffer] MaxMessages changed from '100000' to '500', applied", log)
        self.assertNotIn("Failed to apply the new [Buffer] limits", log)
        # The session is not disturbed by a reload.
        time.sleep(0.5)
        self.assertEqual(len([p for p in self.packets() if p[0] == "CONNECT"]), 1)

    def test_graceful_stop(self):
        self.start()
        self.wait_ready()
        self.assertEqual(self.daemon.stop(), 0, self.daemon.log())
        self.assertIn("Received DISCONNECT from %s" % DEVICE, self.broker.log_text())


if __name__ == "__main__":
    unittest.main(verbosity=2)
