#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The gateway's location end to end: the real nrfcloud-gatewayd in
TLS=modem mode through an nrf91-sim provisioned by `nrfcloud-gatewayctl
provision`, mosquitto with mutual TLS and the nRF Cloud stand-in, and the
REST stand-in (tests/rest/reststandin.py) on 127.0.0.1 with the test PKI's
server certificate.

The stand-in verifies each request's JWT (ES256) with the public key of the
device certificate that `provision` wrote (taken from its onboarding CSV),
with "sub" the device id and "iss" "nRF9160.<device UUID>" as the modem
writes them and "exp" in the future, and checks the ground-fix body against
the schema of docs/location.md.

Tests: a location at start, persisted and not asked again after a restart
within the interval; a cell change driven through the sim's control socket
triggers one request, and only one per interval, reusing the modem's
token; no request while the modem has no time; failures logged once and
retried as specified; MQTT answers while the REST server hangs."""

import csv
import json
import os
import re
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "session"))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
sys.path.insert(0, os.path.join(HERE, "..", "rest"))
import reststandin  # noqa: E402
import sessiontest as st  # noqa: E402
import simfixture as sf  # noqa: E402

DEVICE = "6c1f3b52-8a0e-4d7b-9f21-3e5d7a9c0b14"
MESSAGE_ID_LOCATION = "3e6a235b0bc14fdeba9803b3447fe71c"
G2C = f"{st.PREFIX}gateways/{DEVICE}/g2c"


class Location(st.PkiCase):
    DEVICE = DEVICE

    def setUp(self):
        super().setUp()
        self.broker = st.Broker(os.path.join(self.dir, "broker"), self.pki)
        self.broker.start()
        self.addCleanup(self.broker.stop)
        work = os.path.join(self.dir, "modem")
        self.runtime = os.path.join(work, "run")
        os.makedirs(self.runtime)
        self.sim = sf.Sim(work, DEVICE)
        self.sim.start()
        self.addCleanup(self.sim.stop)
        onboard = os.path.join(work, "onboard.csv")
        env = dict(os.environ, NRFCLOUD_GATEWAY_RUNTIME_DIR=self.runtime)
        r = subprocess.run([sf.CTL, "provision", "--port", self.sim.link, "--ca-cert", self.pki.device_ca[0],
                            "--ca-key", self.pki.device_ca[1], "--root-ca", self.pki.root[0], "--csv", onboard],
                           env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # The device certificate nRF Cloud would hold after onboarding: the last field of the CSV row.
        with open(onboard, newline="") as f:
            row = [r for r in csv.reader(f) if r and r[0] == DEVICE][-1]
        self.device_cert = os.path.join(work, "device-cert.pem")
        with open(self.device_cert, "w") as f:
            f.write(row[-1])
        self.rest = reststandin.RestStandIn(self.pki.server[0], self.pki.server[1], device_cert=self.device_cert,
                                            device_id=DEVICE, iss="nRF9160." + DEVICE, slow_sec=120)
        self.addCleanup(self.rest.stop)
        self.peer = st.CloudPeer(self.broker, self.pki, DEVICE)
        self.peer.start()
        self.addCleanup(self.peer.stop)
        self.assertTrue(self.peer.connected.wait(10))
        self.daemon = None
        # The serving cell and two neighbours the modem will report.
        self.assertEqual(self.sim.command("cell 26295 00B7 00011B07 300 7 63 31"), "OK")
        self.assertEqual(self.sim.command("ncell 300 8 60 29"), "OK")
        self.assertEqual(self.sim.command("ncell 1200 11 55 26"), "OK")

    def start_daemon(self, interval=3600, journal=False, extra=""):
        conf = (f"RestHost=localhost\nRestPort={self.rest.port}\nRestCAFile={self.pki.root[0]}\n"
                f"LocationIntervalSec={interval}\n{extra}")
        notify = os.path.join(self.dir, "daemon", "notify")
        if os.path.exists(notify):  # a restart: the last run's notify socket
            os.unlink(notify)
        self.daemon = st.Daemon(os.path.join(self.dir, "daemon"), self.broker, self.pki, DEVICE, self.cert,
                                extra_conf=conf, journal=journal, modem=(self.sim.link, self.runtime))
        return self.daemon

    def stop_daemon(self):
        log = st.stop_cleanly(self, self.daemon)
        self.daemon = None
        return log

    def tearDown(self):
        if self.daemon:
            self.stop_daemon()

    def requests(self):
        return [r for r in self.rest.requests if r.path == "/v1/location/ground-fix"]

    def wait_requests(self, n, timeout=30):
        ok = st.wait_until(lambda: len(self.requests()) >= n, timeout)
        self.assertTrue(ok, "%d requests wanted, got %r\n%s" % (n, self.requests(), self.daemon.log()[-3000:]))
        return self.requests()

    def assert_valid(self, req):
        """The stand-in found nothing wrong with the token and the body."""
        self.assertIsNone(req.problem, req)
        self.assertEqual(req.claims["sub"], DEVICE)
        self.assertEqual(req.claims["iss"], "nRF9160." + DEVICE)
        self.assertGreater(req.claims["exp"], time.time())

    def test_location_at_start_persisted_across_restart(self):
        d = self.start_daemon(journal=True)
        (req,) = self.wait_requests(1)
        self.assert_valid(req)
        body = json.loads(req.body)
        # The serving cell of the sim with its two neighbours, in nRF Cloud's units.
        self.assertEqual(body, {"lte": [{
            "mcc": 262, "mnc": 95, "eci": 0x11B07, "tac": 0xB7, "earfcn": 300, "adv": 24, "rsrp": -78,
            "rsrq": -4.0, "nmr": [{"earfcn": 300, "pci": 8, "rsrp": -81, "rsrq": -5.0},
                                  {"earfcn": 1200, "pci": 11, "rsrp": -86, "rsrq": -6.5}]}]})
        rec = d.wait_record(MESSAGE_ID=MESSAGE_ID_LOCATION)
        self.assertIsNotNone(rec, d.journal_records[-20:])
        fix = reststandin.GROUND_FIX
        self.assertEqual(rec["LOCATION_LATITUDE"], "%.6f" % fix["lat"])
        self.assertEqual(rec["LOCATION_LONGITUDE"], "%.6f" % fix["lon"])
        self.assertEqual(rec["LOCATION_UNCERTAINTY"], "%d" % fix["uncertainty"])
        self.assertEqual(rec["LOCATION_METHOD"], "MCELL")
        self.assertLessEqual(abs(int(rec["LOCATION_TIME"]) - time.time()), 60)
        with open(os.path.join(self.dir, "daemon", "state", "location")) as f:
            saved = json.load(f)
        self.assertEqual((saved["lat"], saved["lon"], saved["method"]), (fix["lat"], fix["lon"], "MCELL"))
        self.assertEqual(saved["cell"], {"mcc": 262, "mnc": 95, "tac": 0xB7, "eci": 0x11B07})
        # LTE cost of one request, TLS included, as the stand-in counted it on the wire.
        (conn,) = [c for c in self.rest.connections if req in c.requests]
        print("\nground fix: %d bytes to the server, %d from it, %d in all (token %d, body %d)"
              % (conn.bytes_in, conn.bytes_out, conn.bytes_in + conn.bytes_out, len(req.token), len(req.body)))
        self.stop_daemon()

        # A restart within the interval, same cell: no new request.
        self.start_daemon()
        self.assertTrue(self.daemon.wait_log("nRF Cloud session ready", timeout=60), self.daemon.log()[-2000:])
        time.sleep(3)
        self.assertEqual(len(self.requests()), 1, self.daemon.log()[-3000:])

    def test_cell_change_once_per_interval_with_one_token(self):
        interval = 6
        self.start_daemon(interval=interval)
        (first,) = self.wait_requests(1)
        self.assert_valid(first)
        # A reselection right away: asked for, but only once the interval since the first ends.
        self.assertEqual(self.sim.command("cell 26295 00B8 00022C01 300 9 50 20"), "OK")
        reqs = self.wait_requests(2, timeout=interval + 15)
        self.assertGreaterEqual(reqs[1].t - first.t, interval - 0.5)
        self.assertEqual(json.loads(reqs[1].body)["lte"][0]["eci"], 0x22C01)
        # Two more changes in quick succession: one request for both, with the last cell.
        time.sleep(0.5)
        self.assertEqual(self.sim.command("cell 26295 00B9 00033D01 300 9 50 20"), "OK")
        time.sleep(0.5)
        self.assertEqual(self.sim.command("cell 26295 00BA 00044E01 300 9 50 20"), "OK")
        reqs = self.wait_requests(3, timeout=interval + 15)
        self.assertGreaterEqual(reqs[2].t - reqs[1].t, interval - 0.5)
        time.sleep(interval + 2)
        reqs = self.requests()
        self.assertEqual(len(reqs), 3, reqs)
        self.assertEqual(json.loads(reqs[2].body)["lte"][0]["eci"], 0x44E01)
        for r in reqs:
            self.assert_valid(r)
        # The modem's token (valid for an hour) is reused, not signed again for every request.
        self.assertEqual(len({r.token for r in reqs}), 1)

    def test_no_request_without_modem_time(self):
        self.assertEqual(self.sim.command("network-time off"), "OK")
        self.start_daemon()
        self.assertTrue(self.daemon.wait_log("nRF Cloud session ready", timeout=60), self.daemon.log()[-2000:])
        self.assertTrue(self.daemon.wait_log("Location request waits for the modem's time", timeout=20),
                        self.daemon.log()[-3000:])
        time.sleep(6)
        self.assertEqual(self.requests(), [])
        self.assertEqual(self.daemon.log().count("info: Location request waits for the modem's time"), 1)
        # The network gives the time: the next try signs a token with exp, and asks.
        self.assertEqual(self.sim.command("network-time on"), "OK")
        (req,) = self.wait_requests(1, timeout=40)
        self.assert_valid(req)

    def test_errors_logged_once_and_retried(self):
        interval = 12
        # 5xx: retried by the client (3 attempts with backoff); then, at the interval, a 4xx: once.
        self.rest.set_actions("5xx", "5xx", "5xx", "4xx")
        self.start_daemon(interval=interval)
        reqs = self.wait_requests(3, timeout=40)
        self.assertTrue(self.daemon.wait_log("HTTP 503, nRF Cloud error 50300", timeout=10), self.daemon.log()[-2000:])
        self.assertGreaterEqual(reqs[1].t - reqs[0].t, 1.5)  # the client's backoff
        reqs = self.wait_requests(4, timeout=interval + 20)
        self.assertGreaterEqual(reqs[3].t - reqs[0].t, interval - 0.5)
        self.assertTrue(self.daemon.wait_log("HTTP 400, nRF Cloud error 40000", timeout=10), self.daemon.log()[-2000:])
        # The 4xx is not retried by the client; the next try waits the interval, and fails the same way.
        time.sleep(2)
        self.assertEqual(len(self.requests()), 4)
        self.wait_requests(5, timeout=interval + 20)
        time.sleep(1)
        log = self.daemon.log()
        self.assertEqual(log.count("warning: Location request to localhost failed: HTTP 503"), 1, log[-3000:])
        self.assertEqual(log.count("warning: Location request to localhost failed: HTTP 400"), 1, log[-3000:])
        self.assertEqual(len(re.findall(r"debug: Location request to localhost failed: HTTP 400", log)), 1)

    def test_mqtt_unaffected_while_rest_hangs(self):
        self.rest.set_actions("slow")
        self.start_daemon()
        self.wait_requests(1)
        self.assertTrue(self.daemon.wait_log("nRF Cloud session ready", timeout=60), self.daemon.log()[-2000:])
        # While the REST server says nothing, c2g operations are answered on g2c.
        for i in range(3):
            before = len(self.peer.received(G2C))
            self.peer.c2g({"type": "operation", "id": "loc-%d" % i,
                           "operation": {"type": "device_characteristic_value_read",
                                         "deviceAddress": "C0:FF:EE:00:00:01", "serviceUUID": "180F",
                                         "characteristicUUID": "2A19"}})
            self.assertTrue(st.wait_until(lambda: len(self.peer.received(G2C)) > before, 10),
                            self.daemon.log()[-2000:])
        self.assertEqual(len(self.requests()), 1)
        self.assertIsNone(self.requests()[0].status)  # still unanswered

    def test_interval_zero_is_off(self):
        self.start_daemon(interval=0)
        self.assertTrue(self.daemon.wait_log("nRF Cloud session ready", timeout=60), self.daemon.log()[-2000:])
        time.sleep(3)
        self.assertEqual(self.requests(), [])
        self.assertNotIn("%NCELLMEAS", self.daemon.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
