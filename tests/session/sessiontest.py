# SPDX-License-Identifier: MIT
"""Test parts for the nRF Cloud connection procedure, built on the cloud
fixtures (tests/cloud/cloudtest.py): a stand-in for nRF Cloud that serves the
gateway's shadow, the real nrfcloud-gatewayd in host TLS mode, and a reader of
the broker's log that lists what one client did, packet by packet."""

import json
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import threading
import unittest
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cloud"))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import cloudtest as ct  # noqa: E402
from nrfgw_test import DAEMON, stop_process  # noqa: E402

TEAM = ct.TEAM
PREFIX = "prod/%s/" % TEAM


def merge(dst, src):
    """AWS IoT shadow merge: objects merge key by key, null deletes."""
    for k, v in src.items():
        if v is None:
            dst.pop(k, None)
        elif isinstance(v, dict) and isinstance(dst.get(k), dict):
            merge(dst[k], v)
        else:
            dst[k] = v


class _Recorder(list):
    """The peer's message list; every append is also shown to a handler."""

    def __init__(self, handler):
        super().__init__()
        self.handler = handler

    def append(self, item):
        super().append(item)
        self.handler(*item)


def gateway_topics(device_id):
    """desired.pairing.topics as nRF Cloud's library reads them (spec §1.4): the
    gateway takes c2g and g2c from there, not from a rule of its own."""
    return {"c2g": "%sgateways/%s/c2g" % (PREFIX, device_id), "g2c": "%sgateways/%s/g2c" % (PREFIX, device_id)}


# CloudPeer's default: the explicit pairing.topics of a real gateway shadow.
EXPLICIT_TOPICS = "explicit"


class CloudPeer(ct.Peer):
    """nRF Cloud for one gateway: answers shadow gets on the nRF Cloud shadow
    topics in the trimmed or the full form, answers desiredConnections
    transforms, applies the gateway's shadow updates to its copy of the
    shadow, sends deltas and c2g messages, and records everything (it
    subscribes to every topic but $-topics).  pairing_topics=None leaves
    desired.pairing.topics out (the gateway then derives them)."""

    def __init__(self, broker, pki, device_id, form="trimmed", paired=True, pairing_topics=EXPLICIT_TOPICS,
                 desired_connections=None, omit_connections=False, with_prefix=True):
        super().__init__(broker, pki, ["#"], client_id=ct.PEER_ID, clean=True)
        self.device_id = device_id
        self.form = form
        self.version = 1
        self.desired = {}
        self.reported = {}
        self.gets = 0
        # Leave desiredConnections out of the document (the transform still has it).
        self.omit_connections = omit_connections
        if pairing_topics == EXPLICIT_TOPICS:
            pairing_topics = gateway_topics(device_id)
        if paired:
            self.desired.update(self.paired_state(pairing_topics))
            if not with_prefix:
                del self.desired["nrfcloud_mqtt_topic_prefix"]
        else:
            self.desired["pairing"] = {"state": "not_associated", "topics": None}
        if desired_connections is not None:
            self.desired["desiredConnections"] = desired_connections
        self.messages = _Recorder(self._on_message)

    @staticmethod
    def paired_state(pairing_topics=None):
        pairing = {"state": "paired"}
        if pairing_topics:
            pairing["topics"] = pairing_topics
        return {"pairing": pairing, "nrfcloud_mqtt_topic_prefix": PREFIX}

    def topic(self, suffix):
        return "%s/shadow/%s" % (self.device_id, suffix)

    def document(self):
        desired = dict(self.desired)
        if self.omit_connections:
            desired.pop("desiredConnections", None)
        if self.form == "full":
            return {"state": {"desired": desired, "reported": self.reported},
                    "metadata": {"desired": {}}, "version": self.version, "timestamp": int(time.time())}
        return {"desired": desired, "reported": self.reported, "config": {}}

    def _on_message(self, topic, payload):
        # Runs on the peer's thread, for every message the broker delivers.
        if topic == self.topic("get/trim"):
            self.gets += 1
            self.publish(self.topic("get/accepted/trim"), json.dumps(self.document()), qos=1)
        elif topic == self.topic("get/tf"):
            req = json.loads(payload)
            if req.get("t") == "state.desired.desiredConnections":
                self.publish(self.topic("get/accepted/tf"),
                             json.dumps({"tf": self.desired.get("desiredConnections", [])}), qos=1)
        elif topic == self.topic("update"):
            doc = json.loads(payload)
            merge(self.reported, doc.get("state", {}).get("reported", {}) or {})
            self.version += 1

    # AWS IoT sends nRF Cloud's .../delta/full topic at most this much; a larger delta goes to
    # .../delta/full/err instead (spec §1.3, nRF Cloud's MQTT topics page).
    DELTA_FULL_MAX = 1792

    def delta(self, state):
        """Changes desired and sends the delta, as AWS IoT does."""
        merge(self.desired, json.loads(json.dumps(state)))
        self.version += 1
        delta = json.dumps({"version": self.version, "timestamp": int(time.time()), "state": state})
        if len(delta) > self.DELTA_FULL_MAX:
            self.publish(self.topic("update/delta/full/err"),
                         json.dumps({"code": 413, "message": "The delta is %d bytes, more than %d"
                                     % (len(delta), self.DELTA_FULL_MAX)}), qos=1)
            return
        self.publish(self.topic("update/delta/full"), delta, qos=1)

    def c2g(self, message):
        topics = (self.desired.get("pairing") or {}).get("topics") or gateway_topics(self.device_id)
        self.publish(topics.get("c2g") or gateway_topics(self.device_id)["c2g"], json.dumps(message), qos=1)

    def updates(self):
        """The gateway's shadow updates, decoded, in order."""
        return [json.loads(p) for t, p in self.received(self.topic("update"))]


# What mosquitto (log_type all) writes for one client's packets.
_RE_SUB = re.compile(r"^\d+: Received SUBSCRIBE from (\S+)$")
_RE_SUB_TOPIC = re.compile(r"^\d+: \t(\S+) \(QoS (\d)\)$")
_RE_PUB = re.compile(r"^\d+: Received PUBLISH from (\S+) \(d\d, q(\d), r\d, m\d+, '([^']*)', \.\.\. \((\d+) bytes\)\)$")
_RE_CONN = re.compile(r"^\d+: New client connected from \S+ as (\S+) ")


def client_packets(log, client_id):
    """[("CONNECT",), ("SUBSCRIBE", [topics]), ("PUBLISH", topic, qos, size), ...] of one client."""
    out = []
    lines = log.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _RE_CONN.match(line)
        if m and m.group(1) == client_id:
            out.append(("CONNECT",))
        m = _RE_SUB.match(line)
        if m and m.group(1) == client_id:
            topics = []
            while i + 1 < len(lines):
                t = _RE_SUB_TOPIC.match(lines[i + 1])
                if t:
                    topics.append(t.group(1))
                elif not re.match(r"^\d+: %s \d+ \S+$" % re.escape(client_id), lines[i + 1]):
                    break  # each topic line is followed by "<client> <qos> <topic>"
                i += 1
            out.append(("SUBSCRIBE", topics))
        m = _RE_PUB.match(line)
        if m and m.group(1) == client_id:
            out.append(("PUBLISH", m.group(3), int(m.group(2)), int(m.group(4))))
        i += 1
    return out


def wait_until(predicate, timeout=15.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = predicate()
        if v:
            return v
        time.sleep(step)
    return predicate()


class Daemon:
    """nrfcloud-gatewayd with TLS=host, its configuration written here;
    stderr (console log) to a file."""

    def __init__(self, folder, broker, pki, device_id, cert, extra_conf="", journal=False, modem=None, wrapper=()):
        """wrapper: a command line the daemon runs under (valgrind, ...).
        modem: None for TLS=host, else (port, runtime directory) of a
        provisioned nRF91 for TLS=modem, whose device id is then the modem's."""
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        self.conf = os.path.join(folder, "gateway.conf")
        if modem:
            # LocationIntervalSec=0: no REST request to api.nrfcloud.com from a test (tests/location sets its own).
            tls = f"""[Modem]
Port={modem[0]}
[Cloud]
TLS=modem
LocationIntervalSec=0
"""
        else:
            tls = f"""DeviceId={device_id}
[Cloud]
TLS=host
CAFile={pki.root[0]}
CertFile={cert[0]}
KeyFile={cert[1]}
"""
        with open(self.conf, "w") as f:
            f.write(f"""[Gateway]
StateDirectory={folder}/state
{tls}Host=localhost
Port={broker.port}
ReconnectMinSec=1
ReconnectMaxSec=2
{extra_conf}
[Log]
Level=debug
Target={"auto" if journal else "console"}
""")
        self.err_path = os.path.join(folder, "daemon.stderr")
        # Plays systemd's side of sd_notify(); a thread keeps the socket drained.
        self.notify_path = os.path.join(folder, "notify")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.notify.settimeout(0.2)
        self.notifications = []
        self.closing = False
        self.notify_thread = threading.Thread(target=self._read_notify, daemon=True)
        self.notify_thread.start()
        env = dict(os.environ)
        env.pop("JOURNAL_STREAM", None)
        env.pop("STATE_DIRECTORY", None)
        env["NOTIFY_SOCKET"] = self.notify_path
        env["LSAN_OPTIONS"] = "suppressions=%s" % ct.LSAN_SUPPRESSIONS
        # The runtime directory systemd would give (RuntimeDirectory=, kept across restarts): the port
        # locks and the outbox's runtime folder.  The same folder for a daemon started again.
        # NRFGW_TEST_RUNTIME_DIR: a folder on a tmpfs, as /run is (the benchmarks measure disk writes).
        self.runtime_dir = (modem[1] if modem else
                            os.environ.get("NRFGW_TEST_RUNTIME_DIR") or os.path.join(folder, "run"))
        env["NRFCLOUD_GATEWAY_RUNTIME_DIR"] = self.runtime_dir
        self.journal_records = []
        self.journal_times = []  # when each record arrived (time.monotonic())
        self.journal = None
        if journal:
            # journald's socket is replaced, in a private mount namespace, by one read here.
            jdir = os.path.join(folder, "journal")
            os.makedirs(jdir, exist_ok=True)
            self.journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.journal.bind(os.path.join(jdir, "socket"))
            self.journal.settimeout(0.2)
            self.journal_thread = threading.Thread(target=self._read_journal, daemon=True)
            self.journal_thread.start()
            wrapper = ("unshare", "-m", "--propagation", "private", "sh", "-c",
                       'mkdir -p /run/systemd/journal && mount --bind "$0" /run/systemd/journal && '
                       'export JOURNAL_STREAM="$(stat -L -c %d:%i /proc/self/fd/2)" && exec "$@"', jdir)
        with open(self.err_path, "w") as err:
            self.proc = subprocess.Popen([*wrapper, DAEMON, "--config", self.conf], env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err)

    def _read_notify(self):
        while not self.closing:
            try:
                data = self.notify.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            self.notifications.append(data.decode(errors="replace"))

    def _read_journal(self):
        while not self.closing:
            try:
                data = self.journal.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.journal_times.append(time.monotonic())
            # Native protocol: KEY=value lines (our values hold no newline).
            self.journal_records.append(dict(line.split("=", 1) for line in data.decode(errors="replace").split("\n")
                                             if "=" in line))

    def wait_record(self, **fields):
        """The first journal record carrying all these fields (values: exact, or a substring of MESSAGE)."""
        def find():
            for r in list(self.journal_records):
                if all((r.get(k) == v) if k != "MESSAGE" else (v in r.get(k, "")) for k, v in fields.items()):
                    return r
            return None
        return wait_until(find, 15)

    def statuses(self):
        return [line[7:] for n in list(self.notifications) for line in n.splitlines() if line.startswith("STATUS=")]

    def wait_status(self, status, timeout=15.0):
        return wait_until(lambda: status in self.statuses(), timeout)

    def log(self):
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def wait_log(self, text, timeout=15.0, count=1):
        return wait_until(lambda: self.log().count(text) >= count, timeout)

    def stop(self):
        rc = stop_process(self.proc, timeout=10)
        self.closing = True
        self.notify_thread.join(5)
        self.notify.close()
        if self.journal:
            self.journal_thread.join(5)
            self.journal.close()
        return rc


def stop_cleanly(tc, daemon):
    """Stops daemon: it must exit with 0 and its log must hold no sanitizer report (under the
    sanitizers an error or a leak makes the exit fail).  Its log."""
    rc = daemon.stop()
    log = daemon.log()
    tc.assertNotIn("Sanitizer", log)
    tc.assertNotIn("runtime error", log)
    tc.assertEqual(rc, 0, log[-3000:])
    return log


class PkiCase(unittest.TestCase):
    """A test case with a temporary folder and a test PKI for the class's DEVICE
    (cls.tmp, cls.pki, cls.cert); self.dir is a fresh folder for each test."""
    DEVICE = None
    n = 0

    @classmethod
    def setUpClass(cls):
        cls.tmp = ct.TempDir(cls.__name__.lower() + "-")
        cls.pki = ct.Pki(os.path.join(cls.tmp.path, "pki"))
        cls.cert = cls.pki.device(cls.DEVICE)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        type(self).n += 1
        self.dir = os.path.join(self.tmp.path, "t%d" % type(self).n)


class ModemCase(PkiCase):
    """A PkiCase with, for each test, a broker (self.broker), a provisioned
    nrf91-sim for the class's DEVICE (self.sim, its runtime directory
    self.runtime) and the stand-in for nRF Cloud (self.peer), for a daemon
    in TLS=modem mode."""
    BROKER_VERBOSE = True

    def setUp(self):
        super().setUp()
        sys.path.insert(0, os.path.join(HERE, "..", "tools"))
        import simfixture as sf
        self.broker = ct.Broker(os.path.join(self.dir, "broker"), self.pki, verbose=self.BROKER_VERBOSE)
        self.broker.start()
        self.addCleanup(self.broker.stop)
        work = os.path.join(self.dir, "modem")
        self.runtime = os.path.join(work, "run")
        os.makedirs(self.runtime)
        self.sim = sf.Sim(work, self.DEVICE)
        self.sim.start()
        self.addCleanup(self.sim.stop)
        env = dict(os.environ, NRFCLOUD_GATEWAY_RUNTIME_DIR=self.runtime)
        r = subprocess.run([sf.CTL, "provision", "--port", self.sim.link, "--ca-cert", self.pki.device_ca[0],
                            "--ca-key", self.pki.device_ca[1], "--root-ca", self.pki.root[0]],
                           env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.peer = CloudPeer(self.broker, self.pki, self.DEVICE)
        self.peer.start()
        self.addCleanup(self.peer.stop)
        self.assertTrue(self.peer.connected.wait(10))

    def stop_daemon(self):
        """Stops self.daemon: it exits with 0 and its log has no sanitizer report."""
        stop_cleanly(self, self.daemon)

    def ready(self, count, timeout=60):
        """Waits for the count-th "nRF Cloud session ready" of self.daemon."""
        self.assertTrue(self.daemon.wait_log("nRF Cloud session ready", timeout=timeout, count=count),
                        self.daemon.log()[-2000:])


def _mqtt_string(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def kick(broker, pki, client_id):
    """Takes client_id at the broker, which closes that client's connection (MQTT 3.1.1 §3.1.4)."""
    ctx = ssl.create_default_context(cafile=pki.root[0])
    ctx.load_cert_chain(pki.peer[0], pki.peer[1])
    with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as sock:
            body = _mqtt_string("MQTT") + bytes([4, 0x02]) + struct.pack(">H", 30) + _mqtt_string(client_id)
            sock.sendall(bytes([0x10, len(body)]) + body)
            sock.recv(4)  # CONNACK
            sock.sendall(bytes([0xE0, 0]))  # DISCONNECT


# Re-exported for the tests.
Pki = ct.Pki
Broker = ct.Broker
TempDir = ct.TempDir
