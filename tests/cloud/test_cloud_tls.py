# SPDX-License-Identifier: MIT
"""Host TLS mode against mosquitto with mutual TLS: a connection that works,
delivery in both directions, and the refusal cases, each with a clear reason in
the log and reconnect attempts spaced by the backoff."""

import os
import re
import shutil
import socket
import ssl
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cloudtest as ct  # noqa: E402

DEVICE = "50503041-3633-4ab2-8047-0e1c3a1e0c11"


class HostTls(ct.BrokerTestCase):
    PREFIX = "cloud-tls-"

    @classmethod
    def set_up_class(cls):
        cls.cert = cls.pki.device(DEVICE)

    def state_dir(self):
        HostTls.n += 1
        return os.path.join(self.tmp.path, "state%d" % HostTls.n)

    def harness(self, name, cert=None, ca=None, extra=(), uri=None):
        args = ct.harness_args(self.broker, self.pki, DEVICE, self.state_dir(), cert=cert or self.cert, ca=ca,
                               extra=extra)
        if uri:
            args[args.index("--uri") + 1] = uri
        return ct.Harness(self.tmp.path, name, args)

    def test_connect_and_deliver(self):
        before = len(self.peer.numbers(ct.g2c_topic(DEVICE)))
        h = self.harness("deliver", extra=["--count", "50", "--exit-when-done"])
        self.assertEqual(h.wait(30), 0, h.stderr())
        self.assertIn("Cloud connected to ssl://localhost:%d as %s" % (self.broker.port, DEVICE), h.stderr())
        self.assertEqual(h.stats()["acked"], 50)
        deadline = time.monotonic() + 10
        while len(self.peer.numbers(ct.g2c_topic(DEVICE))) < before + 50 and time.monotonic() < deadline:
            time.sleep(0.1)
        numbers = self.peer.numbers(ct.g2c_topic(DEVICE))[before:]
        self.assertEqual(numbers, list(range(50)))
        # The broker saw MQTT 3.1.1 (protocol level 4) with the device id as client id.
        self.assertRegex(self.broker.log_text(), r"New client connected from 127\.0\.0\.1:\d+ as %s \(p2, c1, k60" % DEVICE)

    def test_bridge_connect_and_deliver(self):
        """Modem TLS mode's path with an OpenSSL socket in place of the nRF91's: Paho in
        plain TCP to the loopback bridge, TLS in the remote socket."""
        c2g = ct.c2g_topic(DEVICE)
        before = len(self.peer.numbers(ct.g2c_topic(DEVICE)))
        h = self.harness("bridge", extra=["--bridge", "--count", "300", "--subscribe", c2g])
        try:
            self.assertIsNotNone(h.wait_line("done 300", 30), h.stderr()[-3000:])
            self.assertRegex(h.stderr(), r"Cloud connected to tcp://127\.0\.0\.1:\d+ as %s" % DEVICE)
            self.peer.publish(c2g, '{"type":"operation","id":7}', qos=1)
            self.assertIsNotNone(h.wait_line('message %s 27 {"type":"operation","id":7}' % c2g, 10))
        finally:
            h.kill()
        deadline = time.monotonic() + 10
        while len(self.peer.numbers(ct.g2c_topic(DEVICE))) < before + 300 and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(self.peer.numbers(ct.g2c_topic(DEVICE))[before:], list(range(300)))

    def test_bridge_refused_wrong_ca(self):
        h = self.harness("bridge-wrong-ca", ca=self.pki.rogue_ca[0],
                         extra=["--bridge", "--debug", "--reconnect-min-ms", "200", "--reconnect-max-ms", "800"])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and h.stderr().count("Cannot connect") < 2:
            time.sleep(0.2)
        h.kill()
        err = h.stderr()
        self.assertNotIn("Cloud connected", err)
        self.assertIn("certificate verify failed", err)
        self.assertGreaterEqual(err.count("Cannot connect"), 2, err[-2000:])

    def test_outbox_full_drops_oldest(self):
        """200 notifications pushed at once into an outbox of 16: the oldest not yet on the
        wire go, what arrives is in order, and the drops are counted and reported."""
        before = len(self.peer.numbers(ct.g2c_topic(DEVICE)))
        h = self.harness("drops", extra=["--count", "200", "--max-messages", "16", "--exit-when-done"])
        self.assertEqual(h.wait(30), 0, h.stderr()[-2000:])
        self.assertGreater(h.stats()["dropped"], 0)
        self.assertIn("Outbox full: dropped", h.stderr())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and 199 not in self.peer.numbers(ct.g2c_topic(DEVICE))[before:]:
            time.sleep(0.1)
        got = self.peer.numbers(ct.g2c_topic(DEVICE))[before:]
        dropped = h.stats()["dropped"]
        self.assertEqual(got, sorted(got))
        # The newest message always survives.  Which older ones do depends on whether the
        # connection came up during the pushes: then the ones already on the wire go
        # through and the oldest unsent ones are dropped; before it, the oldest go.
        self.assertEqual(got[-1], 199)
        if got[0] >= 184:
            self.assertEqual(got, list(range(184, 200)))
        # Each message is delivered or counted as dropped (one dropped while already on the
        # wire may be both, when the connection came up during the pushes).
        self.assertLessEqual(200 - len(set(got)), dropped, (got, dropped))

    def test_incoming_and_size_cap(self):
        c2g = ct.c2g_topic(DEVICE)
        h = self.harness("incoming", extra=["--subscribe", c2g, "--max-incoming", "1024"])
        try:
            self.assertIsNotNone(h.wait_line("state ready", 15), h.stderr())
            self.peer.publish(c2g, '{"type":"operation","id":1}', qos=1)
            self.peer.publish(c2g, "x" * 2000, qos=1)
            self.peer.publish(c2g, '{"type":"operation","id":2}', qos=1)
            self.assertIsNotNone(h.wait_line('message %s 27 {"type":"operation","id":2}' % c2g, 10), h.stderr())
            self.assertIsNotNone(h.wait_line('message %s 27 {"type":"operation","id":1}' % c2g, 0))
            self.assertIsNone(h.wait_line("message %s 2000" % c2g, 0))
            self.assertIn("Dropped a 2000-byte message on %s: over MaxIncomingBytes=1024" % c2g, h.stderr())
        finally:
            h.kill()

    def refused(self, name, expect, **kw):
        """Runs the harness for a few seconds; it must never connect, must say why,
        and must retry with backoff (200..800 ms here)."""
        h = self.harness(name, extra=["--debug", "--reconnect-min-ms", "200", "--reconnect-max-ms", "800"], **kw)
        # Paho notices a handshake refused by the broker only at its next poll (about 1 s).
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(re.findall("Cannot connect", h.stderr())) < 3:
            time.sleep(0.2)
        h.kill()
        err = h.stderr()
        self.assertNotIn("Cloud connected", err)
        self.assertIsNone(h.wait_line("state ready", 0))
        attempts = re.findall(r"Cannot connect to \S+: (.*); retrying in (\d+\.\d) s", err)
        self.assertGreaterEqual(len(attempts), 3, err)
        for reason, delay in attempts:
            self.assertRegex(reason, expect)
            self.assertTrue(0.2 <= float(delay) <= 0.8, delay)
        # Said once at warning level, the repeats at debug level only.
        self.assertEqual(err.count("warning: Cannot connect"), 1, err)
        return attempts[0][0]

    def test_refused_wrong_ca(self):
        reason = self.refused("wrong-ca", r"TLS error: .*certificate verify failed", ca=self.pki.rogue_ca[0])
        print("wrong CA:", reason)

    def test_refused_client_cert_other_ca(self):
        reason = self.refused("other-ca", r"TLS error|network", cert=self.pki.device(DEVICE, ca=self.pki.rogue_ca))
        self.assertTrue("certificate verify failed" in self.broker.log_text(), "the broker did not refuse it")
        print("client certificate from another CA:", reason)

    def test_refused_expired_cert(self):
        reason = self.refused("expired", r"TLS error|network", cert=self.pki.device(DEVICE, expired=True))
        self.assertTrue("certificate verify failed" in self.broker.log_text(), "the broker did not refuse it")
        print("expired certificate:", reason)

    def test_refused_hostname_mismatch(self):
        other = ct.Broker(os.path.join(self.tmp.path, "broker-wrong-host"), self.pki, server=self.pki.wrong_host)
        other.start()
        try:
            reason = self.refused("wrong-host", r"TLS error|network|host",
                                  uri="ssl://localhost:%d" % other.port)
            print("host name mismatch:", reason)
            self.assertFalse("New client connected" in other.log_text(), "a client got through")
        finally:
            other.stop()

    def test_refused_tls_1_1(self):
        """A server that offers TLS 1.1 at most (and completes such a handshake: checked
        with a client that allows it) is refused: the gateway speaks TLS 1.2 or 1.3 only."""
        server = Tls11Server(self.pki)
        server.start()
        try:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.load_verify_locations(self.pki.root[0])
            ctx.load_cert_chain(*self.cert)
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                    self.assertEqual(tls.version(), "TLSv1.1")
            self.assertTrue(wait_for(lambda: server.handshakes == 1), "the TLS 1.1 server does not work")
            uri = "ssl://localhost:%d" % server.port
            # OpenSSL's defaults (security level 1) refuse it already.
            reason = self.refused("tls11", r"TLS error", uri=uri)
            print("server with TLS 1.1 at most:", reason)
            self.assertEqual(server.handshakes, 1, "a gateway handshake got through")
            # Still refused when the system's OpenSSL configuration lowers the security
            # level to 0 (Paho's context keeps refusing TLS 1.1's MD5-SHA1 signatures).
            conf = os.path.join(self.tmp.path, "openssl-seclevel0.cnf")
            with open(conf, "w") as f:
                f.write("openssl_conf = init\n[init]\nssl_conf = ssl_sect\n[ssl_sect]\nsystem_default = sys\n"
                        "[sys]\nCipherString = DEFAULT:@SECLEVEL=0\n")
            os.environ["OPENSSL_CONF"] = conf
            try:
                reason = self.refused("tls11-seclevel0", r"TLS error", uri=uri)
            finally:
                del os.environ["OPENSSL_CONF"]
            print("the same with OpenSSL at security level 0:", reason)
            self.assertEqual(server.handshakes, 1, "a gateway handshake got through")
            self.assertGreaterEqual(server.failures, 6)
        finally:
            server.stop()

    def test_refused_key_permissions(self):
        key = os.path.join(self.tmp.path, "loose.key")
        shutil.copy(self.cert[1], key)
        os.chmod(key, 0o640)
        h = self.harness("key-perms", cert=(self.cert[0], key), extra=["--count", "1"])
        self.assertEqual(h.wait(10), 1)
        self.assertIn("Refusing KeyFile=%s: it is accessible by group or other (mode 0640)" % key, h.stderr())

    def test_refused_key_owner(self):
        """A 0600 key owned by another user is refused (the daemon's user must own its key)."""
        key = os.path.join(self.tmp.path, "foreign.key")
        shutil.copy(self.cert[1], key)
        os.chmod(key, 0o600)
        if os.geteuid() != 0:
            self.skipTest("chown to another user needs root")
        os.chown(key, 65534, 65534)
        h = self.harness("key-owner", cert=(self.cert[0], key), extra=["--count", "1"])
        self.assertEqual(h.wait(10), 1)
        self.assertIn("Refusing KeyFile=%s: it is owned by UID 65534, not by the daemon's user" % key, h.stderr())



def wait_for(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not pred() and time.monotonic() < deadline:
        time.sleep(0.05)
    return pred()


class Tls11Server(threading.Thread):
    """A TLS server on 127.0.0.1 that offers TLS 1.0 and 1.1 only (mosquitto's
    tls_version sets a minimum, not a maximum).  It counts the handshakes that
    complete and those that fail; after a complete one it answers CONNECT."""

    def __init__(self, pki):
        super().__init__(daemon=True)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1
        self.ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        self.ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        self.ctx.load_cert_chain(*pki.server)
        self.ctx.load_verify_locations(pki.broker_ca)
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.handshakes = self.failures = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False

    def run(self):
        while not self.stopping:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                continue
            raw.settimeout(5)
            try:
                with self.ctx.wrap_socket(raw, server_side=True) as tls:
                    self.handshakes += 1
                    if tls.recv(1) and tls.recv(4096) is not None:
                        tls.sendall(b"\x20\x02\x00\x00")
                        tls.recv(1)
            except (OSError, ssl.SSLError):
                self.failures += 1
            finally:
                raw.close()

    def stop(self):
        self.stopping = True
        self.join(5)
        self.sock.close()


class SubackBroker(threading.Thread):
    """A stand-in MQTT 3.1.1 server on 127.0.0.1, plain TCP, for what mosquitto
    2.0.11 cannot do: refuse a SUBSCRIBE (it checks acl_file on delivery only,
    while AWS IoT answers an unauthorised filter with SUBACK 0x80).  It accepts
    one client, answers CONNECT, PINGREQ and PUBLISH (QoS 1), and answers each
    SUBSCRIBE with the code codes(topic) gives per filter."""

    def __init__(self, codes):
        super().__init__(daemon=True)
        self.codes = codes
        self.subscribed = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]

    def run(self):
        c, _ = self.sock.accept()
        with c:
            f = c.makefile("rb")

            def read_exact(n):
                data = f.read(n)
                if len(data) < n:
                    raise EOFError
                return data

            while True:
                try:
                    first, body = ct.read_packet(read_exact)
                except EOFError:
                    return
                kind = first >> 4
                if kind == 1:
                    c.sendall(b"\x20\x02\x00\x00")
                elif kind == 8:
                    pid, off, codes = body[:2], 2, b""
                    while off < len(body):
                        tl = struct.unpack(">H", body[off:off + 2])[0]
                        topic = body[off + 2:off + 2 + tl].decode()
                        off += 2 + tl + 1
                        self.subscribed.append(topic)
                        codes += bytes([self.codes(topic)])
                    c.sendall(bytes([0x90, 2 + len(codes)]) + pid + codes)
                elif kind == 12:
                    c.sendall(b"\xd0\x00")
                elif kind == 3 and first & 0x06:
                    tl = struct.unpack(">H", body[:2])[0]
                    c.sendall(b"\x40\x02" + body[2 + tl:4 + tl])
                elif kind == 14:
                    return


class SubackCodes(unittest.TestCase):
    def test_each_suback_code_is_read(self):
        """Each topic goes in its own SUBSCRIBE, so every SUBACK code is seen and the
        topic named: a refusal (0x80) and a downgrade to QoS 0 are logged, the other
        subscriptions stand, and the session gets ready."""
        tmp = ct.TempDir("cloud-suback-")
        broker = SubackBroker(lambda t: 0x80 if "forbidden" in t else 0 if "qos0" in t else 1)
        broker.start()
        topics = ["prod/t/gateways/%s/c2g" % DEVICE, "prod/t/forbidden", "prod/t/qos0", "prod/t/m/x"]
        args = ["--uri", "tcp://127.0.0.1:%d" % broker.port, "--client-id", DEVICE,
                "--state-dir", os.path.join(tmp.path, "state"), "--topic", "prod/t/gateways/%s/g2c" % DEVICE,
                "--count", "3", "--exit-when-done"]
        for t in topics:
            args += ["--subscribe", t]
        h = ct.Harness(tmp.path, "suback", args)
        try:
            self.assertEqual(h.wait(20), 0, h.stderr())
            err = h.stderr()
            self.assertEqual(sorted(broker.subscribed), sorted(topics))
            self.assertIn("The broker refused the subscription to prod/t/forbidden (SUBACK 0x80)", err)
            self.assertIn("The broker granted QoS 0, not 1, to the subscription to prod/t/qos0", err)
            self.assertEqual(len(re.findall("refused the subscription", err)), 1, err)
            self.assertEqual(len(re.findall("granted QoS", err)), 1, err)
            self.assertEqual(h.stats()["acked"], 3)
        finally:
            h.kill()
            tmp.cleanup()
            broker.sock.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
