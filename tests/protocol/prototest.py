# SPDX-License-Identifier: MIT
"""The whole gateway protocol with real parts: nrfcloud-gatewayd (TLS=host)
against mosquitto with mutual TLS and the gateway ACL, the stand-in for nRF
Cloud of the session tests, and the BlueZ mock of the BLE tests on a private
system bus that the daemon finds through DBUS_SYSTEM_BUS_ADDRESS."""

import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "session"))
sys.path.insert(0, os.path.join(HERE, "..", "ble"))
import sessiontest as st  # noqa: E402
import blefixture as bf  # noqa: E402
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import simfixture as sf  # noqa: E402

# PROTOCOL_TLS=modem runs the tests with TLS terminated in nrf91-sim,
# provisioned by nrfcloud-gatewayctl; the default is TLS=host.
TLS = os.environ.get("PROTOCOL_TLS", "host")

DEVICE = "3f2c9a61-7d1e-4b8a-a0c5-6e2f9d4b1c07"
G2C = f"{st.PREFIX}gateways/{DEVICE}/g2c"
JOBS_BLE_REQ = f"{st.PREFIX}{DEVICE}/jobs/ble/req"

A = "C0:FF:EE:00:00:0A"  # battery + UART-like service (blefixture.GATT)
B = "C0:FF:EE:00:00:0B"  # environmental sensor, and a second 2A19 in another service
NUS = bf.NUS.replace("-", "").upper()
NUS_RX = bf.NUS_RX.replace("-", "").upper()
NUS_TX = bf.NUS_TX.replace("-", "").upper()
VENDOR = "AABB0001-0000-1000-8000-00805F9B34FB"
VENDOR_N = VENDOR.replace("-", "")
GATT_B = [
    {"uuid": "181a", "characteristics": [
        {"uuid": "2a6e", "flags": ["read", "notify"], "value": "e803",
         "descriptors": [{"uuid": "2902", "value": "0000"}]},
        {"uuid": "2a6f", "flags": ["read"], "value": "1027"}]},
    {"uuid": "180f", "characteristics": [{"uuid": "2a19", "flags": ["read"], "value": "64"}]},
    {"uuid": VENDOR.lower(), "characteristics": [
        {"uuid": "2a19", "flags": ["read", "write"], "value": "11",
         "descriptors": [{"uuid": "2901", "value": b"vendor".hex()}]}]},
]


class Daemon(st.Daemon):
    """The session tests' daemon (debug level), with the log level given on
    the command line instead, for measurements."""

    def __init__(self, folder, broker, pki, device_id, cert, extra_conf="", log_level="debug", modem=None,
                 proc_subset_pid=False):
        """proc_subset_pid: in a private mount namespace whose /proc is mounted as systemd does it
        for ProcSubset=pid and ProtectProc=invisible (no /proc/net, /proc/sys; needs root)."""
        if log_level == "debug" and not proc_subset_pid:
            super().__init__(folder, broker, pki, device_id, cert, extra_conf, modem=modem)
            return
        real = st.DAEMON
        wrapper = os.path.join(folder, "run-daemon")
        os.makedirs(folder, exist_ok=True)
        with open(wrapper, "w") as f:
            if proc_subset_pid:
                f.write("#!/bin/sh\nexec unshare -m --propagation private sh -c "
                        "'mount -t proc -o nosuid,nodev,noexec,subset=pid,hidepid=invisible proc /proc "
                        "&& exec \"$@\"' sh %s --log-level=%s \"$@\"\n" % (real, log_level))
            else:
                f.write("#!/bin/sh\nexec %s --log-level=%s \"$@\"\n" % (real, log_level))
        os.chmod(wrapper, 0o755)
        st.DAEMON = wrapper
        try:
            super().__init__(folder, broker, pki, device_id, cert, extra_conf, modem=modem)
        finally:
            st.DAEMON = real


class World:
    """Everything one test needs, stopped by PID in close()."""

    def __init__(self, pki, cert, folder, desired=(A, B), extra_conf="", devices=True, log_level="debug",
                 reported=None, proc_subset_pid=False):
        self.folder = folder
        self.daemon = self.peer = self.broker = self.bus = self.mock = self.sim = None
        self.bus = bf.Bus(folder)
        self.mock = bf.BluezMock(self.bus, folder)
        if devices:
            self.mock.add_device(A, name="sensor-a")
            self.mock.add_device(B, gatt=GATT_B, name="sensor-b")
        self.broker = st.Broker(os.path.join(folder, "broker"), pki)
        self.broker.start()
        self.peer = st.CloudPeer(self.broker, pki, DEVICE, desired_connections=list(desired))
        if reported:
            self.peer.reported.update(reported)
        self.peer.start()
        if not self.peer.connected.wait(10):
            raise RuntimeError("the stand-in for nRF Cloud could not connect")
        st.wait_until(lambda: "Received SUBSCRIBE from %s" % st.ct.PEER_ID in self.broker.log_text())
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = self.bus.address
        modem = self.provisioned_sim(pki) if TLS == "modem" else None
        self.daemon = Daemon(os.path.join(folder, "daemon"), self.broker, pki, DEVICE, cert, extra_conf, log_level,
                             modem=modem, proc_subset_pid=proc_subset_pid)

    def provisioned_sim(self, pki):
        """nrf91-sim with the device id DEVICE, provisioned by nrfcloud-gatewayctl
        with the test's device CA and the broker's root CA: TLS ends in it."""
        work = os.path.join(self.folder, "modem")
        runtime = os.path.join(work, "run")
        os.makedirs(runtime)
        self.sim = sf.Sim(work, DEVICE)
        self.sim.start()
        env = dict(os.environ, NRFCLOUD_GATEWAY_RUNTIME_DIR=runtime)
        r = subprocess.run([sf.CTL, "provision", "--port", self.sim.link, "--ca-cert", pki.device_ca[0],
                            "--ca-key", pki.device_ca[1], "--root-ca", pki.root[0]],
                           env=env, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError("provisioning nrf91-sim failed:\n" + r.stdout + r.stderr)
        return (self.sim.link, runtime)

    def close(self):
        rc = self.daemon.stop() if self.daemon else None
        for part in (self.peer, self.broker, self.mock, self.bus, self.sim):
            if part:
                part.stop()
        return rc

    # ---- what the gateway sent ----

    def events(self, type_=None):
        out = []
        for _, p in self.peer.received(G2C):
            e = json.loads(p)
            if type_ is None or e["event"]["type"] == type_:
                out.append(e)
        return out

    def wait_events(self, pred, count=1, timeout=20.0):
        got = st.wait_until(lambda: len([e for e in self.events() if pred(e)]) >= count, timeout)
        if not got:
            raise AssertionError("expected %d matching g2c events, have %d; last events: %s\n--- daemon log:\n%s"
                                 % (count, len([e for e in self.events() if pred(e)]),
                                    [e["event"]["type"] for e in self.events()][-20:], self.daemon.log()[-5000:]))
        return [e for e in self.events() if pred(e)]

    def c2g(self, op):
        """Sends an operation; returns its id."""
        rid = str(uuid.uuid4())
        self.peer.c2g({"type": "operation", "id": rid, "operation": op})
        return rid

    def answers(self, rid, count, timeout=20.0):
        return self.wait_events(lambda e: e.get("requestId") == rid, count, timeout)

    def status(self, address):
        return self.peer.reported.get("statusConnections", {}).get(address)

    def wait_ready(self, *addresses, timeout=30.0):
        for a in addresses:
            self.wait_events(lambda e, a=a: e["event"]["type"] == "device_discover_result"
                             and e["event"]["device"]["address"]["address"] == a, 1, timeout)


class WorldTestCase(unittest.TestCase):
    """A test class whose tests each run in a World (self.w), made by the test:
    one PKI for the class; after each test the daemon must have stayed up,
    stopped cleanly and logged no sanitizer report."""

    @classmethod
    def setUpClass(cls):
        cls.tmp, cls.pki, cls.cert = make_pki()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.w = None

    def tearDown(self):
        if not self.w:
            return
        alive = self.w.daemon and self.w.daemon.proc.poll() is None
        rc = self.w.close()
        # Read after the exit: sanitizer reports come last.
        log = self.w.daemon.log() if self.w.daemon else ""
        self.assertTrue(alive, "the daemon died:\n" + log[-5000:])
        self.assertEqual(rc, 0, "the daemon did not stop cleanly:\n" + log[-5000:])
        self.assertNotIn("AddressSanitizer", log)
        self.assertNotIn("runtime error", log)


def make_pki():
    tmp = st.TempDir("protocol-")
    pki = st.Pki(os.path.join(tmp.path, "pki"))
    cert = pki.device(DEVICE)
    return tmp, pki, cert


def subdir(tmp, name):
    return tempfile.mkdtemp(prefix=name + "-", dir=tmp.path)


def seq(e):
    v = e["event"]["characteristic"]["value"]
    return int.from_bytes(bytes(v[:4]), "little")


def now():
    return time.monotonic()
