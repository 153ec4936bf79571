# SPDX-License-Identifier: MIT
"""Test parts for the cloud session: a test PKI made with the openssl command,
mosquitto with mutual TLS and an ACL that mirrors the nRF Cloud gateway policy,
a stand-in for nRF Cloud (a minimal MQTT 3.1.1 client over TLS, standard
library only) and a runner for the C harness.

Everything listens on 127.0.0.1 on free ports, lives in a temporary folder, and
every process started here is stopped by its PID."""

import getpass
import json
import os
import select
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from nrfgw_test import TempDir, free_port  # noqa: E402,F401  (re-exported for the tests)

TEAM = "test-team"
PEER_ID = "nrfcloud-peer"

BUILD = os.environ.get("NRFGW_BUILD_DIR", "build")
LSAN_SUPPRESSIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib", "lsan-paho.supp")
HARNESS = os.path.join(BUILD, "tests", "cloud", "cloud-harness")


def run(*args, **kw):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)


def g2c_topic(device_id):
    return f"prod/{TEAM}/gateways/{device_id}/g2c"


def c2g_topic(device_id):
    return f"prod/{TEAM}/gateways/{device_id}/c2g"


class Pki:
    """Stand-in root CA with a server certificate for localhost, a device CA
    (the operator's) with device certificates whose CN is the device id, and a
    second, untrusted CA for refusal tests."""

    def __init__(self, folder):
        self.dir = folder
        os.makedirs(folder, exist_ok=True)
        self.root = self._ca("root", "Test Root CA")
        self.device_ca = self._ca("device-ca", "Test Device CA")
        self.rogue_ca = self._ca("rogue-ca", "Rogue CA")
        self.server = self._leaf("server", "localhost", self.root, san="DNS:localhost,IP:127.0.0.1", eku="serverAuth")
        self.wrong_host = self._leaf("wrong-host", "wrong.example", self.root, san="DNS:wrong.example", eku="serverAuth")
        self.peer = self._leaf("peer", PEER_ID, self.device_ca, eku="clientAuth")
        self.broker_ca = os.path.join(folder, "broker-ca.pem")
        with open(self.broker_ca, "w") as f:
            for ca in (self.root, self.device_ca):
                with open(ca[0]) as c:
                    f.write(c.read())

    def path(self, name):
        return os.path.join(self.dir, name)

    def _key(self, name):
        key = self.path(name + ".key")
        run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
        os.chmod(key, 0o600)
        return key

    def _ca(self, name, cn):
        key = self._key(name)
        crt = self.path(name + ".crt")
        run("openssl", "req", "-x509", "-new", "-key", key, "-out", crt, "-subj", "/CN=" + cn, "-days", "30",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return crt, key

    def _leaf(self, name, cn, ca, san=None, eku="clientAuth", dates=None):
        key = self._key(name)
        csr = self.path(name + ".csr")
        crt = self.path(name + ".crt")
        run("openssl", "req", "-new", "-key", key, "-out", csr, "-subj", "/CN=" + cn)
        ext = self.path(name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=%s\n" % eku)
            if san:
                f.write("subjectAltName=%s\n" % san)
        if dates is None:
            run("openssl", "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
                "-out", crt, "-days", "30", "-extfile", ext)
        else:
            # openssl x509 cannot back-date; the ca command can.
            cadir = self.path(name + "-ca")
            os.makedirs(os.path.join(cadir, "new"), exist_ok=True)
            open(os.path.join(cadir, "index.txt"), "w").close()
            with open(os.path.join(cadir, "serial"), "w") as f:
                f.write("1000\n")
            cnf = os.path.join(cadir, "ca.cnf")
            with open(cnf, "w") as f:
                f.write(f"""[ca]
default_ca = c
[c]
database = {cadir}/index.txt
new_certs_dir = {cadir}/new
serial = {cadir}/serial
default_md = sha256
policy = p
unique_subject = no
[p]
commonName = supplied
""")
            run("openssl", "ca", "-batch", "-config", cnf, "-cert", ca[0], "-keyfile", ca[1], "-in", csr,
                "-out", crt, "-startdate", dates[0], "-enddate", dates[1], "-notext", "-extfile", ext)
        return crt, key

    def device(self, device_id, ca=None, expired=False):
        """A device certificate (CN = device id), from the device CA unless told."""
        # One file per issuer: a certificate from another CA must not replace the good one.
        name = "dev-" + device_id + ("-expired" if expired else "")
        if ca is not None and ca != self.device_ca:
            name += "-by-" + os.path.splitext(os.path.basename(ca[0]))[0]
        dates = ("20200101000000Z", "20200201000000Z") if expired else None
        return self._leaf(name, device_id, ca or self.device_ca, dates=dates)


class Broker:
    """mosquitto on 127.0.0.1 with mutual TLS, identity as user name and the
    gateway policy as ACL.  Can be stopped and started again on its port."""

    def __init__(self, folder, pki, server=None, persistence=False, verbose=True, listener_conf=""):
        self.dir = folder
        os.makedirs(folder, exist_ok=True)
        self.port = free_port()
        self.proc = None
        self.log = os.path.join(folder, "mosquitto.log")
        acl = os.path.join(folder, "acl")
        with open(acl, "w") as f:
            # The test peer plays nRF Cloud: everything.
            f.write(f"user {PEER_ID}\ntopic readwrite #\n\n")
            # nRF Cloud's gateway policy, for the device whose certificate CN is %u.
            f.write(f"pattern read prod/{TEAM}/gateways/%u/c2g\n")
            f.write(f"pattern write prod/{TEAM}/gateways/%u/g2c\n")
            f.write("pattern readwrite $aws/things/%u/shadow/#\n")
            f.write("pattern readwrite %u/shadow/#\n")
            f.write(f"pattern readwrite prod/{TEAM}/%u/jobs/#\n")
            f.write(f"pattern readwrite prod/{TEAM}/m/#\n")
        server = server or pki.server
        self.conf = os.path.join(folder, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write(f"""user {getpass.getuser()}
per_listener_settings false
allow_anonymous false
acl_file {acl}
log_dest file {self.log}
log_type {'all' if verbose else 'error warning notice'}
max_queued_messages 0
max_packet_size 131400
# Without it mosquitto's PUBACKs wait behind Nagle's algorithm (tens of ms on loopback).
set_tcp_nodelay true
listener {self.port} 127.0.0.1
cafile {pki.broker_ca}
certfile {server[0]}
keyfile {server[1]}
require_certificate true
use_identity_as_username true
{listener_conf}""")
            if persistence:
                f.write(f"persistence true\npersistence_location {folder}/\nautosave_interval 600\n")
            else:
                f.write("persistence false\n")

    def start(self):
        self.proc = subprocess.Popen(["mosquitto", "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("mosquitto exited: " + self.log_text()[-2000:])
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not listen")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def _encode_len(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">H", len(b)) + b


class Peer(threading.Thread):
    """The stand-in for nRF Cloud: one MQTT 3.1.1 client over TLS that
    subscribes at QoS 1, acknowledges and records every message, reconnects
    when the broker goes away, and can publish."""

    def __init__(self, broker, pki, topics, client_id=PEER_ID, clean=False):
        super().__init__(daemon=True)
        self.broker, self.pki, self.topics, self.client_id, self.clean = broker, pki, topics, client_id, clean
        self.messages = []  # (topic, payload bytes)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.connected = threading.Event()
        self.sock = None
        self.send_lock = threading.Lock()
        self.next_id = 1

    def _connect(self):
        ctx = ssl.create_default_context(cafile=self.pki.root[0])
        ctx.load_cert_chain(self.pki.peer[0], self.pki.peer[1])
        raw = socket.create_connection(("127.0.0.1", self.broker.port), timeout=5)
        sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self._rbuf, self._rpos = b"", 0
        flags = 0x02 if self.clean else 0x00
        var = _str("MQTT") + bytes([4, flags]) + struct.pack(">H", 30)
        body = var + _str(self.client_id)
        sock.sendall(bytes([0x10]) + _encode_len(len(body)) + body)
        self.sock = sock
        t, data = self._read_packet()
        if t != 0x20 or data[1] != 0:
            raise ConnectionError("CONNACK refused: %r" % data)
        pid = self._id()
        body = struct.pack(">H", pid) + b"".join(_str(t) + b"\x01" for t in self.topics)
        self._send(bytes([0x82]) + _encode_len(len(body)) + body)
        # Blocking from here on; the reader waits in select() instead.  A socket timeout would also
        # bound each sendall(): a publish or a PUBACK that waits a second for a busy broker would
        # stop half written, and the next packet would follow the half one (the broker closes the
        # connection with "Protocol error").
        sock.settimeout(None)

    def _id(self):
        self.next_id = self.next_id % 65535 + 1
        return self.next_id

    def _send(self, data):
        with self.send_lock:
            self.sock.sendall(data)

    def _read_exact(self, n):
        # Reads in large chunks and hands out packets from the buffer: a recv per byte of
        # header would make this stand-in, not the gateway, the busy part of a flood.
        while len(self._rbuf) - self._rpos < n:
            if self.sock.gettimeout() is None and not self.sock.pending() and \
                    not select.select([self.sock], [], [], 1.0)[0]:
                if self.stopping.is_set():
                    raise ConnectionError("stopping")
                continue
            try:
                chunk = self.sock.recv(1 << 16)
            except socket.timeout:
                if self.stopping.is_set():
                    raise ConnectionError("stopping")
                continue
            if not chunk:
                raise ConnectionError("closed")
            self._rbuf, self._rpos = self._rbuf[self._rpos:] + chunk, 0
        out = self._rbuf[self._rpos:self._rpos + n]
        self._rpos += n
        return out

    def _read_packet(self):
        h, body = read_packet(self._read_exact)
        return h & 0xF0, (h, body) if (h & 0xF0) == 0x30 else body

    def run(self):
        last_ping = time.monotonic()
        while not self.stopping.is_set():
            try:
                self._connect()
                self.connected.set()
                while not self.stopping.is_set():
                    if time.monotonic() - last_ping > 10:
                        self._send(b"\xc0\x00")
                        last_ping = time.monotonic()
                    t, data = self._read_packet()
                    if t == 0x30:
                        h, body = data
                        qos = (h >> 1) & 3
                        tl = struct.unpack(">H", body[:2])[0]
                        topic = body[2:2 + tl].decode()
                        off = 2 + tl
                        if qos:
                            pid = body[off:off + 2]
                            off += 2
                        with self.lock:
                            self.messages.append((topic, body[off:]))
                        if qos:
                            self._send(b"\x40\x02" + pid)
            except (OSError, ConnectionError, ssl.SSLError):
                self.connected.clear()
                if self.sock:
                    try:
                        self.sock.close()
                    except OSError:
                        pass
                self.sock = None
                time.sleep(0.2)

    def publish(self, topic, payload, qos=0):
        if isinstance(payload, str):
            payload = payload.encode()
        if qos:
            body = _str(topic) + struct.pack(">H", self._id()) + payload
            h = 0x32
        else:
            body = _str(topic) + payload
            h = 0x30
        self._send(bytes([h]) + _encode_len(len(body)) + body)

    def stop(self):
        self.stopping.set()
        self.join(10)

    def received(self, topic=None):
        with self.lock:
            return [(t, p) for t, p in self.messages if topic is None or t == topic]

    def numbers(self, topic):
        return [json.loads(p)["n"] for t, p in self.received(topic)]


class Harness:
    """Runs cloud-harness; collects its stdout lines, its stderr goes to a file."""

    def __init__(self, folder, name, args):
        self.err_path = os.path.join(folder, name + ".stderr")
        self.args = [HARNESS] + args
        self.lines = []
        self.cond = threading.Condition()
        err = open(self.err_path, "a")
        env = dict(os.environ)
        # Sanitizer builds: a known leak inside Paho (see the file).
        env.setdefault("LSAN_OPTIONS", "suppressions=" + LSAN_SUPPRESSIONS)
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        err.close()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_line(self, prefix, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if line.startswith(prefix):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self.reader.is_alive()):
                    return None
                self.cond.wait(min(left, 0.5))

    def stats(self):
        line = self.wait_line("stats ", 0)
        return json.loads(line[6:]) if line else None

    def stderr(self):
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        self.proc.wait(30)
        self.reader.join(5)

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None


def harness_args(broker, pki, device_id, state_dir, cert=None, ca=None, extra=()):
    cert = cert or pki.device(device_id)
    return ["--uri", f"ssl://localhost:{broker.port}", "--client-id", device_id, "--state-dir", state_dir,
            "--topic", g2c_topic(device_id), "--ca", ca or pki.root[0], "--cert", cert[0], "--key", cert[1]] + list(extra)


class BrokerTestCase(unittest.TestCase):
    """A test class with one PKI, one broker (mutual TLS, the gateway ACL) and one
    peer recording every g2c message, for all its tests; a subclass adds its own
    parts in set_up_class() and tear_down_class()."""

    PREFIX = "cloud-"

    @classmethod
    def setUpClass(cls):
        cls.tmp = TempDir(cls.PREFIX)
        cls.pki = Pki(os.path.join(cls.tmp.path, "pki"))
        cls.broker = Broker(os.path.join(cls.tmp.path, "broker"), cls.pki)
        cls.broker.start()
        cls.peer = Peer(cls.broker, cls.pki, ["prod/%s/gateways/+/g2c" % TEAM])
        cls.peer.start()
        assert cls.peer.connected.wait(10), "the test peer could not connect"
        cls.n = 0
        cls.set_up_class()

    @classmethod
    def set_up_class(cls):
        pass

    @classmethod
    def tearDownClass(cls):
        cls.tear_down_class()
        cls.peer.stop()
        cls.broker.stop()
        cls.tmp.cleanup()

    @classmethod
    def tear_down_class(cls):
        pass


def read_packet(read_exact):
    """One MQTT packet through read_exact(n), which returns n bytes or raises:
    (its first byte, its body)."""
    h = read_exact(1)[0]
    mult, n = 1, 0
    while True:
        b = read_exact(1)[0]
        n += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            break
    return h, read_exact(n)


def check_delivery_of(tc, numbers, required, emitted):
    """Every required number at least once, first arrivals in increasing order,
    nothing that was never emitted.  Returns (duplicate arrivals, the numbers
    that arrived more than once)."""
    seen = set()
    first = []
    for n in numbers:
        if n not in seen:
            seen.add(n)
            first.append(n)
    missing = sorted(required - seen)
    if missing:
        tc.fail("messages lost: %d of %d accepted (first: %s)" % (len(missing), len(required), missing[:20]))
    out_of_order = [(a, b) for a, b in zip(first, first[1:]) if b <= a]
    if out_of_order:
        tc.fail("first arrivals out of order: %d times (first pairs: %s)" % (len(out_of_order), out_of_order[:10]))
    strange = sorted(seen - emitted)
    if strange:
        tc.fail("numbers that were never emitted arrived: %s" % strange[:20])
    counts = {}
    for n in numbers:
        counts[n] = counts.get(n, 0) + 1
    twice = sorted(n for n, c in counts.items() if c > 1)
    return len(numbers) - len(seen), twice


def check_delivery(testcase, numbers, count):
    """Every number 0..count-1 at least once, first arrivals in increasing order,
    nothing else.  Returns the number of duplicates."""
    everything = set(range(count))
    return check_delivery_of(testcase, numbers, everything, everything)[0]


