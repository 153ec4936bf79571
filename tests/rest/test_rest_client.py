#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The REST client (daemon/rest/) against the nRF Cloud stand-in on
127.0.0.1, through rest-harness: one request per run on a real sd-event
loop, the result printed as JSON.

Covers: success with the ground-fix body checked against the schema and
the JWT verified (ES256, sub, exp); 4xx answered once and never retried;
5xx and a hung server retried with backoff up to the attempt limit; an
answer over the size limit refused; the server's certificate checked
against the CA and against the name or the IP address; and the loop never
stalls while the server hangs (a 10 ms timer beside the request).
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reststandin  # noqa: E402

BUILD = os.environ.get("NRFGW_BUILD_DIR", "build")
HARNESS = os.path.join(BUILD, "tests", "rest", "rest-harness")
DEVICE_ID = "50503642-3239-4f86-80c4-06122e299623"
BODY = {"lte": [{"mcc": 262, "mnc": 95, "eci": 72455, "tac": 183, "earfcn": 300, "adv": 24, "rsrp": -78,
                 "rsrq": -4.0, "nmr": [{"earfcn": 300, "pci": 8, "rsrp": -81, "rsrq": -5.0}]}]}


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class Pki:
    def __init__(self, d):
        self.d = d
        self.ca("root")
        self.ca("other")
        self.leaf("server", "root", "localhost", "DNS:localhost,IP:127.0.0.1")
        self.leaf("wrong-name", "root", "other.example", "DNS:other.example")
        self.leaf("untrusted", "other", "localhost", "DNS:localhost,IP:127.0.0.1")
        self.leaf("device", "root", DEVICE_ID, None)

    def p(self, name):
        return os.path.join(self.d, name)

    def key(self, name):
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", self.p(name + ".key"))

    def ca(self, name):
        self.key(name)
        openssl("req", "-x509", "-new", "-key", self.p(name + ".key"), "-subj", "/CN=" + name, "-days", "2",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
                "-out", self.p(name + ".pem"))

    def leaf(self, name, ca, cn, san):
        self.key(name)
        openssl("req", "-new", "-key", self.p(name + ".key"), "-subj", "/CN=" + cn, "-out", self.p(name + ".csr"))
        with open(self.p(name + ".ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\n" + ("subjectAltName=%s\n" % san if san else ""))
        openssl("x509", "-req", "-in", self.p(name + ".csr"), "-CA", self.p(ca + ".pem"), "-CAkey",
                self.p(ca + ".key"), "-CAcreateserial", "-days", "2", "-extfile", self.p(name + ".ext"),
                "-out", self.p(name + ".pem"))

    def jwt(self, sub=DEVICE_ID, exp_in=600):
        with open(self.p("device.key"), "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
        head = b64url(json.dumps({"typ": "JWT", "alg": "ES256"}).encode())
        claims = b64url(json.dumps({"iss": "nRF9160." + DEVICE_ID, "sub": sub,
                                    "iat": int(time.time()), "exp": int(time.time()) + exp_in}).encode())
        r, s = decode_dss_signature(key.sign((head + "." + claims).encode(), ec.ECDSA(hashes.SHA256())))
        return head + "." + claims + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


class RestClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="nrfgw-rest-")
        cls.pki = Pki(cls.tmp)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop()

    def server(self, cert="server", slow_sec=60):
        s = reststandin.RestStandIn(self.pki.p(cert + ".pem"), self.pki.p(cert + ".key"),
                                    device_cert=self.pki.p("device.pem"), device_id=DEVICE_ID,
                                    iss="nRF9160." + DEVICE_ID, slow_sec=slow_sec)
        self.servers.append(s)
        return s

    def run_harness(self, srv, *opts, host="127.0.0.1", body=BODY, ca="root", token=None, timeout=60):
        args = [HARNESS, host, str(srv.port), self.pki.p(ca + ".pem") if ca else "", "POST",
                "/v1/location/ground-fix"]
        if body is not None:
            args.append(json.dumps(body))
        args.append("bearer=" + (token or self.pki.jwt()))
        args += list(opts)
        p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)

    def test_success_body_and_token_checked(self):
        srv = self.server()
        r = self.run_harness(srv)
        self.assertEqual((r["error"], r["status"], r["attempts"]), (0, 200, 1), r)
        self.assertEqual(r["body"], reststandin.GROUND_FIX)
        (req,) = srv.requests
        self.assertIsNone(req.problem)
        self.assertEqual(req.claims["sub"], DEVICE_ID)
        self.assertEqual(req.headers["host"], "127.0.0.1")
        self.assertEqual(json.loads(req.body), BODY)
        # The client's byte count is what the server saw on the wire, TLS included; of what the
        # server sent, only its closing alert (after the complete answer) may go unread.
        (conn,) = srv.connections
        self.assertEqual(r["sent"], conn.bytes_in)
        self.assertLessEqual(conn.bytes_out - r["received"], 64)
        self.assertGreater(r["received"], 1000)

    def test_host_name_verified(self):
        srv = self.server()
        r = self.run_harness(srv, host="localhost")
        self.assertEqual((r["error"], r["status"]), (0, 200), r)
        self.assertEqual(srv.requests[0].headers["host"], "localhost")
        # A certificate for another name, and one from an unknown CA: refused, not retried.
        for cert in ("wrong-name", "untrusted"):
            srv = self.server(cert)
            r = self.run_harness(srv, "attempts=3", "retry_ms=50", host="localhost")
            self.assertEqual((r["error"], r["attempts"]), (-13, 1), (cert, r))  # -EACCES
            self.assertEqual(srv.requests, [])
        # The system's CAs do not know the test root either.
        srv = self.server()
        r = self.run_harness(srv, "attempts=1", ca=None)
        self.assertEqual(r["error"], -13, r)

    def test_4xx_is_final(self):
        srv = self.server()
        srv.set_actions("4xx")
        r = self.run_harness(srv, "attempts=3", "retry_ms=50")
        self.assertEqual((r["error"], r["status"], r["attempts"], r["code"]), (0, 400, 1, 40000), r)
        self.assertEqual(len(srv.requests), 1)
        # A token the stand-in refuses: nRF Cloud's 401 and its code, once.
        r = self.run_harness(srv, "attempts=3", "retry_ms=50", token=self.pki.jwt(sub="someone-else"))
        self.assertEqual((r["status"], r["attempts"], r["code"]), (401, 1, 40100), r)
        self.assertIn("sub", srv.requests[-1].problem)
        # A body off the schema.
        r = self.run_harness(srv, "attempts=3", body={"lte": [{"mcc": 262}]})
        self.assertEqual((r["status"], r["code"]), (400, 40000), r)

    def test_5xx_retried_with_backoff(self):
        srv = self.server()
        srv.set_actions("5xx", "5xx", "ok")
        r = self.run_harness(srv, "attempts=3", "retry_ms=200")
        self.assertEqual((r["error"], r["status"], r["attempts"]), (0, 200, 3), r)
        reqs = srv.requests
        self.assertEqual([q.status for q in reqs], [503, 503, 200])
        self.assertGreaterEqual(reqs[1].t - reqs[0].t, 0.2)
        # Always 5xx: the last answer after the attempts are used up.
        srv.set_actions("5xx")
        r = self.run_harness(srv, "attempts=2", "retry_ms=50")
        self.assertEqual((r["error"], r["status"], r["attempts"], r["code"]), (0, 503, 2, 50300), r)

    def test_hung_server_times_out_and_loop_keeps_running(self):
        srv = self.server(slow_sec=30)
        srv.set_actions("slow")
        r = self.run_harness(srv, "attempts=2", "retry_ms=100", "timeout_ms=1500")
        self.assertEqual((r["error"], r["status"], r["attempts"]), (-110, 0, 2), r)  # -ETIMEDOUT
        self.assertEqual(len(srv.requests), 2)
        # The 10 ms timer beside the request was never held up for long.
        self.assertLess(r["max_gap_ms"], 500, r)
        # Nobody listening: a network error, retried, then reported.
        port = srv.port
        srv.stop()
        self.servers.remove(srv)
        p = subprocess.run([HARNESS, "127.0.0.1", str(port), self.pki.p("root.pem"), "GET", "/v1/x",
                            "attempts=2", "retry_ms=50"], capture_output=True, text=True, timeout=30)
        r = json.loads(p.stdout)
        self.assertEqual((r["error"], r["attempts"]), (-111, 2), r)  # -ECONNREFUSED

    def test_huge_answer_refused(self):
        srv = self.server()
        srv.set_actions("huge")
        r = self.run_harness(srv, "attempts=1", "max_response=65536")
        self.assertEqual((r["error"], r["status"]), (-27, 0), r)  # -EFBIG
        # Below the limit it is fine.
        srv.set_actions("ok")
        r = self.run_harness(srv, "attempts=1", "max_response=200")
        self.assertEqual(r["status"], 200, r)


if __name__ == "__main__":
    unittest.main(verbosity=2)
