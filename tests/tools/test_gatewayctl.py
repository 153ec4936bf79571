# SPDX-License-Identifier: MIT
"""nrfcloud-gatewayctl against nrf91-sim on a pty: provisioning end to end, JWTs, failures mid-way."""

import base64
import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from simfixture import CTL, DAEMON, Sim, ctl_env, make_workdir, wait_for  # noqa: E402

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature  # noqa: E402

UUID = "50503041-3633-4261-803d-1e2b8f70111a"


def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class GatewayctlTest(unittest.TestCase):
    def setUp(self):
        self.dir = make_workdir("gatewayctl-")
        self.env = ctl_env(self.dir)
        self.sim = Sim(self.dir, UUID)
        self.sim.start()
        self.conf = os.path.join(self.dir, "empty.conf")
        self.ca_dir = os.path.join(self.dir, "ca")
        self.csv = os.path.join(self.dir, "onboard.csv")
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                p.wait(5)
        self.sim.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def ctl(self, *args, check=None):
        r = subprocess.run([CTL, args[0], "--port", self.sim.link, "--config", self.conf] + list(args[1:]),
                           env=self.env, capture_output=True, text=True, timeout=120)
        if check is not None:
            self.assertEqual(r.returncode, check, "stdout:\n%s\nstderr:\n%s" % (r.stdout, r.stderr))
        return r

    def make_ca(self):
        self.ctl("ca", "create", "--out-dir", self.ca_dir, "--cn", "Test operator CA", check=0)
        key = os.path.join(self.ca_dir, "ca-key.pem")
        self.assertEqual(os.stat(key).st_mode & 0o777, 0o600)
        return os.path.join(self.ca_dir, "ca.pem"), key

    def provision(self, *extra, check=0):
        ca, key = self.ca if hasattr(self, "ca") else self.make_ca()
        self.ca = (ca, key)
        return self.ctl("provision", "--ca-cert", ca, "--ca-key", key, "--csv", self.csv, *extra, check=check)

    def csv_rows(self):
        with open(self.csv, newline="") as f:
            return list(csv.reader(f))

    def test_provision_end_to_end(self):
        r = self.provision("--tags", "lab|bench", "--subtype", "gateway")
        for n in range(1, 10):
            self.assertIn("[%d/9]" % n, r.stdout)

        rows = self.csv_rows()
        self.assertEqual(len(rows), 1)
        device_id, subtype, tags, fw_types, pem = rows[0]
        self.assertEqual(device_id, UUID)
        self.assertEqual(subtype, "gateway")
        self.assertEqual(tags, "lab|bench")
        self.assertEqual(fw_types, "APP|MODEM")
        self.assertTrue(pem.startswith("-----BEGIN CERTIFICATE-----\n"))
        self.assertTrue(pem.endswith("-----END CERTIFICATE-----\n"))

        # The certificate chains to the CA, and its CN is the sim's UUID.
        cert_path = os.path.join(self.dir, "device.pem")
        with open(cert_path, "w") as f:
            f.write(pem)
        v = subprocess.run(["openssl", "verify", "-CAfile", self.ca[0], cert_path], capture_output=True, text=True)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        cert = x509.load_pem_x509_certificate(pem.encode())
        cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        self.assertEqual([a.value for a in cn], [UUID])
        self.assertIsInstance(cert.public_key(), ec.EllipticCurvePublicKey)
        self.assertEqual(len(cert.extensions), 0)

        # The CSV holds exactly the certificate the modem holds: same SHA-256 over the CRLF text.
        ident = self.ctl("identity", check=0).stdout
        crlf = pem.replace("\r", "").replace("\n", "\r\n").encode()
        sha = hashlib.sha256(crlf).hexdigest().upper()
        m = re.search(r"client certificate\s+present, SHA-256 ([0-9A-F]{64})", ident)
        self.assertIsNotNone(m, ident)
        self.assertEqual(m.group(1), sha)
        self.assertRegex(ident, r"client private key\s+present")
        self.assertRegex(ident, r"root CA certificate\s+present")
        self.assertIn("Device ID:        " + UUID, ident)
        self.assertIn("35265610XXXXXX2", ident)
        self.assertNotIn("352656100367872", ident)
        self.assertIn("352656100367872", self.ctl("identity", "--show-personal", check=0).stdout)
        # --json with no daemon running: the modem asked directly, the same fields as the daemon's answer.
        j = json.loads(self.ctl("identity", "--json", check=0).stdout)
        self.assertEqual(j["source"], "modem", j)
        self.assertEqual(j["uuid"], UUID, j)
        self.assertEqual(j["device_id"], UUID, j)
        self.assertEqual(j["imei"], "35265610XXXXXX2", j)
        self.assertEqual(j["sec_tag"], 16842753, j)
        self.assertIn(sha + " client certificate", j["credentials"], j)
        self.assertTrue(any(c.endswith(" client private key") for c in j["credentials"]), j)

        # A JWT from the modem verifies with the certificate's public key.
        out = self.ctl("jwt", "--decode", "--aud", "test-audience", check=0).stdout
        token = out.splitlines()[0]
        header_b64, claims_b64, sig_b64 = token.split(".")
        sig = b64url(sig_b64)
        self.assertEqual(len(sig), 64)
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        cert.public_key().verify(der, (header_b64 + "." + claims_b64).encode(), ec.ECDSA(hashes.SHA256()))
        self.assertIn('"sub": "%s"' % UUID, out)
        self.assertIn('"aud": "test-audience"', out)
        self.assertIn('"alg": "ES256"', out)

        # Attestation with a challenge carries that nonce.
        out = self.ctl("attest", "--challenge", "90115c20ac3f381b520b43c76bd5d99c", check=0).stdout
        self.assertIn("Device UUID:      " + UUID, out)
        self.assertIn("Nonce:            90115c20ac3f381b520b43c76bd5d99c", out)

    def test_reprovision_needs_force(self):
        self.provision()
        first = self.csv_rows()[0][4]
        r = self.provision(check=5)
        self.assertIn("--force", r.stderr)
        self.assertIn("Step 2 failed", r.stderr)
        self.assertEqual(len(self.csv_rows()), 1)
        self.provision("--force")
        rows = self.csv_rows()
        self.assertEqual(len(rows), 2)
        self.assertNotEqual(rows[1][4], first)
        # The new certificate carries a new key: the old one is gone from the modem.
        old = x509.load_pem_x509_certificate(first.encode()).public_key()
        new = x509.load_pem_x509_certificate(rows[1][4].encode()).public_key()
        self.assertNotEqual(old.public_numbers(), new.public_numbers())

    def test_busy_port(self):
        """While the daemon holds the port, the tool refuses with a clear message."""
        conf = os.path.join(self.dir, "daemon.conf")
        with open(conf, "w") as f:
            f.write("[Modem]\nPort=%s\n[Cloud]\nLocationIntervalSec=0\n" % self.sim.link)  # no REST to nRF Cloud
        with open(os.path.join(self.dir, "daemon.log"), "w") as log:
            d = subprocess.Popen([DAEMON, "--config", conf], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(d)
        wait_for(lambda: "Modem ready" in open(os.path.join(self.dir, "daemon.log")).read(), 15, "the daemon")
        r = self.ctl("identity", check=3)
        self.assertIn("Stop the service first", r.stderr)
        self.assertIn(str(d.pid), r.stderr)
        d.terminate()
        d.wait(10)
        self.ctl("identity", check=0)

    def run_provision_and_interrupt(self, action, at_step):
        """Starts provision with slow answers and acts on the sim when a step begins."""
        self.assertIn("+CFUN: 0", self.sim.at("AT+CFUN?"))
        self.assertIn("OK", self.sim.at("AT+CFUN=1"))
        self.assertIn("OK", self.sim.command("delay 300"))
        ca, key = self.make_ca()
        p = subprocess.Popen([CTL, "provision", "--port", self.sim.link, "--config", self.conf, "--ca-cert", ca,
                              "--ca-key", key, "--csv", self.csv], env=self.env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        out = ""
        while "[%d/9]" % at_step not in out:
            line = p.stdout.readline()
            self.assertTrue(line, "provision ended early: " + out)
            out += line
        self.assertIn("OK", self.sim.command(action))
        self.sim.command("delay 0")
        rest, err = p.communicate(timeout=90)
        return p.returncode, out + rest, err

    def test_sim_reboots_mid_provision(self):
        code, out, err = self.run_provision_and_interrupt("reboot", 3)
        self.assertNotEqual(code, 0)
        # The step that was running when the firmware restarted fails, and says so.
        self.assertRegex(err, r"Step [3-8] failed: the modem restarted")
        self.assertIn("back in CFUN=1", err)
        self.assertIn("+CFUN: 1", self.sim.at("AT+CFUN?"))
        self.assertFalse(os.path.exists(self.csv))

    def test_sim_vanishes_mid_provision(self):
        code, out, err = self.run_provision_and_interrupt("vanish 1500", 6)
        self.assertNotEqual(code, 0)
        self.assertRegex(err, r"Step [6-8] failed: the modem port went away")
        self.assertIn("back in CFUN=1", err)
        self.assertIn("+CFUN: 1", self.sim.at("AT+CFUN?"))

    def test_provision_configured_device_id(self):
        """[Gateway] DeviceId= overrides the UUID: the CSR, the certificate and the CSV carry it."""
        self.conf = os.path.join(self.dir, "id.conf")
        with open(self.conf, "w") as f:
            f.write("[Gateway]\nDeviceId=lab-gateway-7\n")
        r = self.provision()
        self.assertIn('CN=lab-gateway-7', r.stdout)
        row = self.csv_rows()[0]
        self.assertEqual(row[0], "lab-gateway-7")
        cert = x509.load_pem_x509_certificate(row[4].encode())
        self.assertEqual(cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value, "lab-gateway-7")
        out = self.ctl("jwt", "--decode", check=0).stdout
        self.assertIn('"sub": "lab-gateway-7"', out)

    def test_identity_lists_every_type_in_the_tag(self):
        self.assertIn("OK", self.sim.at('AT%CMNG=0,16842753,3,"0123456789abcdef"'))
        out = self.ctl("identity", check=0).stdout
        sha = hashlib.sha256(b"0123456789abcdef").hexdigest().upper()
        self.assertRegex(out, r"PSK\s+present, SHA-256 " + sha)
        self.assertRegex(out, r"client private key\s+absent")

    def test_debug_shows_at_traffic(self):
        r = self.ctl("identity", "--debug", check=0)
        self.assertIn("--> AT#XUUID<CR><LF>", r.stderr)
        self.assertIn("<-- #XUUID: %s<CR><LF>" % UUID, r.stderr)
        self.assertNotIn("<CR><LF>", self.ctl("identity", check=0).stderr)

    def test_usage_errors(self):
        self.assertEqual(self.ctl("jwt", "--force").returncode, 2)
        self.assertEqual(self.ctl("provision").returncode, 2)
        self.assertEqual(self.ctl("attest", "--challenge", "xyz").returncode, 2)
        r = subprocess.run([CTL, "identity", "--port", os.path.join(self.dir, "nothing"), "--config", self.conf],
                           env=self.env, capture_output=True, text=True)
        self.assertEqual(r.returncode, 4)
        self.assertIn("Cannot open the modem port", r.stderr)
        for verb in ("identity", "provision", "jwt", "attest", "ca"):
            r = subprocess.run([CTL, verb, "--help"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0)
            self.assertIn("--port", r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
