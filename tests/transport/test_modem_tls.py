# SPDX-License-Identifier: MIT
"""Modem TLS mode end to end: Paho in plain TCP to the loopback bridge, the
bytes carried over AT commands (#XSEND / #XRECV) to nrf91-sim on a pty, TLS
terminated in the sim with the key that `nrfcloud-gatewayctl provision`
generated inside it, and mosquitto with mutual TLS at the other end.

The host side is given no certificate, key or CA file at all: the broker
knows the gateway only by the certificate in the modem's security tag."""

import os
import re
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cloud"))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import cloudtest as ct  # noqa: E402
import simfixture as sf  # noqa: E402

DEVICE = "50503041-3633-4ab2-8047-0e1c3a1e0c31"
ROGUE_ROOT = "50503041-3633-4ab2-8047-0e1c3a1e0c32"
ROGUE_CLIENT = "50503041-3633-4ab2-8047-0e1c3a1e0c33"


class ModemTls(ct.BrokerTestCase):
    PREFIX = "modem-tls-"

    @classmethod
    def set_up_class(cls):
        cls.sims = {}

    @classmethod
    def tear_down_class(cls):
        for sim in cls.sims.values():
            sim.stop()

    def sim(self, device_id, root=None, device_ca=None):
        """A sim provisioned by nrfcloud-gatewayctl: key made in the sim, certificate signed by
        device_ca (default: the CA the broker trusts), root CA of the tag = root (default: the
        CA of the broker's server certificate)."""
        if device_id in self.sims:
            return self.sims[device_id]
        wd = os.path.join(self.tmp.path, "sim-" + device_id)
        os.makedirs(os.path.join(wd, "run"))
        conf = os.path.join(wd, "empty.conf")
        open(conf, "w").close()
        sim = sf.Sim(wd, device_id)
        sim.start()
        self.sims[device_id] = sim
        ca = device_ca or self.pki.device_ca
        r = subprocess.run([sf.CTL, "provision", "--port", sim.link, "--config", conf, "--ca-cert", ca[0],
                            "--ca-key", ca[1], "--root-ca", (root or self.pki.root)[0], "--csv",
                            os.path.join(wd, "onboard.csv")], env=sf.ctl_env(wd), capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return sim

    def harness(self, name, sim, device_id, extra=(), port=None):
        type(self).n += 1
        state = os.path.join(self.tmp.path, "state%d" % type(self).n)
        args = ["--uri", "ssl://localhost:%d" % (port or self.broker.port), "--client-id", device_id,
                "--state-dir", state, "--topic", ct.g2c_topic(device_id), "--modem", sim.link,
                "--reconnect-min-ms", "300", "--reconnect-max-ms", "2000"] + list(extra)
        if os.environ.get("NRFGW_TEST_DEBUG"):
            args.append("--debug")
        return ct.Harness(self.tmp.path, name, args)

    def wait_numbers(self, device_id, count, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            numbers = self.peer.numbers(ct.g2c_topic(device_id))
            if len(set(numbers)) >= count:
                break
            time.sleep(0.1)
        return self.peer.numbers(ct.g2c_topic(device_id))

    def test_connect_and_deliver_both_ways(self):
        sim = self.sim(DEVICE)
        c2g = ct.c2g_topic(DEVICE)
        before = len(self.peer.numbers(ct.g2c_topic(DEVICE)))
        h = self.harness("deliver", sim, DEVICE, ["--count", "500", "--subscribe", c2g])
        try:
            self.assertIsNotNone(h.wait_line("done 500", 60), h.stderr()[-3000:])
            err = h.stderr()
            self.assertIn("Modem TLS socket 0 connected to localhost:%d (security tag 16842753)" % self.broker.port,
                          err)
            self.assertRegex(err, r"Cloud connected to tcp://127\.0\.0\.1:\d+ as %s" % DEVICE)
            # Downstream: a c2g message from the cloud arrives through #XRECV.
            self.peer.publish(c2g, '{"type":"operation","id":42}', qos=1)
            self.assertIsNotNone(h.wait_line('message %s 28 {"type":"operation","id":42}' % c2g, 15),
                                 h.stderr()[-3000:])
        finally:
            h.kill(signal.SIGTERM)
        numbers = self.wait_numbers(DEVICE, 500)[before:]
        self.assertEqual(numbers[:500], list(range(500)))
        # The broker authenticated the certificate held in the sim: its CN is the user name.
        self.assertRegex(self.broker.log_text(),
                         r"New client connected from 127\.0\.0\.1:\d+ as %s \(p2, c1, k60, u'%s'\)" % (DEVICE, DEVICE))

    def assert_refused(self, sim, device_id, pattern, broker=None):
        broker = broker or self.broker
        h = self.harness("refused-" + device_id, sim, device_id, ["--count", "1"], port=broker.port)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(re.findall(pattern, h.stderr())) < 2:
                time.sleep(0.2)
            err = h.stderr()
            self.assertGreaterEqual(len(re.findall(pattern, err)), 2, err[-3000:])
            self.assertIsNone(h.wait_line("state ready", 0), "connected although it must not")
        finally:
            h.kill()
        # Each failure is followed by a backoff, not a busy retry.
        self.assertRegex(err, r"retrying in \d+\.\d s")
        self.assertLess(len(re.findall(pattern, err)), 40, "retries are not spaced by the backoff")
        self.assertNotRegex(broker.log_text(), r"New client connected from \S+ as %s" % device_id)
        return err

    def test_refused_untrusted_server(self):
        """The tag's root CA does not sign the broker's certificate: the sim refuses the server."""
        sim = self.sim(ROGUE_ROOT, root=self.pki.rogue_ca)
        self.assert_refused(sim, ROGUE_ROOT, r"failed at #XCONNECT \(security tag 16842753\): the server certificate "
                                             r"is not trusted by the CA of the security tag")

    def test_refused_client_certificate_of_another_ca(self):
        """The device certificate in the sim comes from a CA the broker does not trust."""
        sim = self.sim(ROGUE_CLIENT, device_ca=self.pki.rogue_ca)
        self.assert_refused(sim, ROGUE_CLIENT, r"failed at #XCONNECT \(security tag 16842753\): the server aborted "
                                               r"the handshake")

    def test_refused_hostname_mismatch(self):
        """A broker whose certificate (from the trusted root) names another host."""
        broker = ct.Broker(os.path.join(self.tmp.path, "broker-wrong-host"), self.pki, server=self.pki.wrong_host)
        broker.start()
        try:
            sim = self.sim(DEVICE)
            self.assert_refused(sim, DEVICE, r"failed at #XCONNECT \(security tag 16842753\): the server certificate "
                                             r"is not trusted by the CA of the security tag, or does not name the host",
                                broker=broker)
        finally:
            broker.stop()

    def run_with_fault(self, name, count, rate, fault, after, done_timeout=90):
        """Publishes count numbered messages at rate through the modem while fault() hits the sim
        after `after` messages were acknowledged; checks every one arrives, in order."""
        sim = self.sim(DEVICE)
        before = len(self.peer.numbers(ct.g2c_topic(DEVICE)))
        h = self.harness(name, sim, DEVICE, ["--count", str(count), "--rate", str(rate), "--keepalive", "30"])
        try:
            self.assertIsNotNone(h.wait_line("state ready", 30), h.stderr()[-3000:])
            deadline = time.monotonic() + 30
            while len(set(self.peer.numbers(ct.g2c_topic(DEVICE))[before:])) < after:
                self.assertLess(time.monotonic(), deadline, "no progress before the fault")
                time.sleep(0.05)
            fault(sim)
            self.assertIsNotNone(h.wait_line("done %d" % count, done_timeout), h.stderr()[-4000:])
        finally:
            h.kill(signal.SIGTERM)
        numbers = self.wait_numbers(DEVICE, count)[before:]
        duplicates = ct.check_delivery(self, numbers, count)
        return h.stderr(), duplicates

    def test_sim_reboot_mid_stream(self):
        err, dup = self.run_with_fault("reboot", 1500, 300, lambda sim: sim.command("reboot"), 300)
        self.assertIn("Modem TLS socket 0: the modem link was lost", err)
        self.assertGreaterEqual(err.count("Modem TLS socket 0 connected"), 2, err[-3000:])
        print("reboot: %d duplicate(s)" % dup)

    def test_port_vanishes_mid_stream(self):
        err, dup = self.run_with_fault("vanish", 1500, 300, lambda sim: sim.command("vanish 3000"), 300)
        self.assertIn("the modem link was lost", err)
        self.assertGreaterEqual(err.count("connected to localhost"), 2, err[-3000:])
        print("vanish: %d duplicate(s)" % dup)


if __name__ == "__main__":
    unittest.main(verbosity=2)
