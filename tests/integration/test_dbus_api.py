# SPDX-License-Identifier: MIT
"""The daemon's D-Bus API (docs/dbus-api.md) on a private system-type bus
with the stock deny-by-default policy and the project's policy file: the
real nrfcloud-gatewayd in TLS=host mode with [Modem] Port=none, mosquitto
with mutual TLS, a stand-in nRF Cloud, and BlueZ's stand-in.  Every
property, change signals, methods, access refused to other users, the
gatewayctl views with --json, the STATUS= line, and that no serial port
is opened without a modem."""

import json
import os
import pty
import re
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "session"))
sys.path.insert(0, os.path.join(HERE, "..", "ble"))
sys.path.insert(0, os.path.join(HERE, "..", "rest"))
import reststandin  # noqa: E402
import sessiontest as st  # noqa: E402
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import simfixture as sf  # noqa: E402
import blefixture  # noqa: E402
import dbus  # noqa: E402
import dbus.mainloop.glib  # noqa: E402
from gi.repository import GLib  # noqa: E402

DEVICE = "6c0f4e2a-5a8b-4f1e-9d3c-2b7a1e0c5d11"
NAME = "io.github.nrfcloud_gateway.Gateway1"
ROOT = "/io/github/nrfcloud_gateway"
PATH = ROOT + "/gateway"
P = "io.github.nrfcloud_gateway."
BLE_ADDR = "C2:6B:AC:6D:05:A2"
GATT_HR = [{"uuid": "180d", "characteristics": [
    {"uuid": "2a37", "flags": ["notify"], "value": "0048", "descriptors": [{"uuid": "2902", "value": "0000"}]}]}]
CTL = os.path.join(os.path.dirname(st.DAEMON), "tools", "nrfcloud-gatewayctl")
if not os.path.exists(CTL):
    CTL = os.path.join(os.path.dirname(st.DAEMON), "nrfcloud-gatewayctl")
READER = ("nobody", "nogroup")  # plays a member of the nrfcloud-gateway group
STRANGER = ("daemon", "daemon")  # in no group of the policy

def read_text(path):
    with open(path, errors="replace") as f:
        return f.read()


class Signals:
    """PropertiesChanged and InterfacesAdded of the daemon, recorded by a GLib loop in a thread."""

    def __init__(self, address):
        # Only this connection is dispatched by the loop's thread: the test's other connections make
        # blocking calls from the main thread, which dbus-python must not mix with a loop elsewhere.
        self.conn = dbus.bus.BusConnection(address, mainloop=dbus.mainloop.glib.DBusGMainLoop())
        self.items = []
        self.conn.add_signal_receiver(self._changed, "PropertiesChanged", "org.freedesktop.DBus.Properties",
                                      path_keyword="path")
        self.conn.add_signal_receiver(self._added, "InterfacesAdded", "org.freedesktop.DBus.ObjectManager")
        self.loop = GLib.MainLoop()
        self.thread = threading.Thread(target=self.loop.run, daemon=True)
        self.thread.start()

    def _changed(self, iface, changed, invalidated, path=None):
        self.items.append(("changed", str(path), str(iface), {str(k): v for k, v in changed.items()}))

    def _added(self, path, ifaces):
        self.items.append(("added", str(path), sorted(str(i) for i in ifaces)))

    def find(self, iface, prop, value=None):
        return [i for i in list(self.items) if i[0] == "changed" and i[2] == iface and prop in i[3] and
                (value is None or i[3][prop] == value)]

    def stop(self):
        self.loop.quit()
        self.thread.join(5)
        self.conn.close()


class Base(unittest.TestCase):
    DEVICE = DEVICE
    MODEM = False

    @classmethod
    def setUpClass(cls):
        cls.tmp = st.TempDir("dbus-api-")
        os.chmod(cls.tmp.path, 0o755)
        cls.pki = st.Pki(os.path.join(cls.tmp.path, "pki"))
        cls.cert = cls.pki.device(cls.DEVICE)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.dir = os.path.join(self.tmp.path, self.id().split(".")[-1])
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.bus = blefixture.Bus(self.dir, policy=blefixture.project_policy(self.dir, "nobody", READER[1]))
        self.old_env = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = self.bus.address
        self.bluez = blefixture.BluezMock(self.bus, self.dir)
        self.bluez.add_device(BLE_ADDR, gatt=GATT_HR, name="Heart Rate Sensor")
        self.broker = st.Broker(os.path.join(self.dir, "broker"), self.pki)
        self.broker.start()
        self.sim = None
        if self.MODEM:
            work = os.path.join(self.dir, "modem")
            self.runtime = os.path.join(work, "run")
            os.makedirs(self.runtime)
            self.sim = sf.Sim(work, self.DEVICE)
            self.sim.start()
            env = dict(os.environ, NRFCLOUD_GATEWAY_RUNTIME_DIR=self.runtime)
            r = subprocess.run([sf.CTL, "provision", "--port", self.sim.link, "--ca-cert", self.pki.device_ca[0],
                                "--ca-key", self.pki.device_ca[1], "--root-ca", self.pki.root[0]],
                               env=env, capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.peer = st.CloudPeer(self.broker, self.pki, self.DEVICE, desired_connections=[BLE_ADDR])
        self.peer.start()
        self.assertTrue(self.peer.connected.wait(10))
        self.assertTrue(st.wait_until(lambda: "Received SUBSCRIBE from %s" % st.ct.PEER_ID in self.broker.log_text()))
        self.signals = Signals(self.bus.address)
        self.daemon = None
        self.pty = None

    def tearDown(self):
        if self.daemon:
            st.stop_cleanly(self, self.daemon)
        self.signals.stop()
        self.peer.stop()
        self.broker.stop()
        self.bluez.stop()
        self.bus.stop()
        if self.sim:
            self.sim.stop()
        if self.pty:
            os.close(self.pty[0])
            os.close(self.pty[1])
        if self.old_env is None:
            os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
        else:
            os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = self.old_env

    def start(self, extra=""):
        if self.MODEM:
            self.daemon = st.Daemon(os.path.join(self.dir, "daemon"), self.broker, self.pki, self.DEVICE, self.cert,
                                    extra_conf=extra, modem=(self.sim.link, self.runtime))
            self.assertTrue(self.daemon.wait_log("nRF Cloud session ready", timeout=60), self.daemon.log()[-3000:])
            self.conn = dbus.bus.BusConnection(self.bus.address)
            self.assertTrue(st.wait_until(lambda: self.conn.name_has_owner(NAME)))
            return
        self.pty = pty.openpty()
        self.pty_name = os.ttyname(self.pty[1])
        # The main file names a port; the drop-in says there is no modem: the pty must stay unopened.
        folder = os.path.join(self.dir, "daemon")
        os.makedirs(os.path.join(folder, "gateway.conf.d"), exist_ok=True)
        with open(os.path.join(folder, "gateway.conf.d", "no-modem.conf"), "w") as f:
            f.write("[Modem]\nPort=none\n")
        self.daemon = st.Daemon(folder, self.broker, self.pki, DEVICE, self.cert,
                                extra_conf=extra + "[Modem]\nPort=%s\n" % self.pty_name)
        self.assertTrue(self.daemon.wait_log("nRF Cloud session ready"), self.daemon.log()[-3000:])
        conn = dbus.bus.BusConnection(self.bus.address)
        self.assertTrue(st.wait_until(lambda: conn.name_has_owner(NAME)), self.daemon.log()[-3000:])
        self.conn = conn

    def props(self, path, iface):
        return dbus.Interface(self.conn.get_object(NAME, path), "org.freedesktop.DBus.Properties").GetAll(iface)

    def as_user(self, user, *args):
        cmd = ["setpriv", "--reuid", user[0], "--regid", user[1], "--clear-groups", "dbus-send",
               "--bus=" + self.bus.address, "--print-reply", "--reply-timeout=5000", "--dest=" + NAME, *args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return r.returncode == 0, r.stdout + r.stderr

    def ctl(self, *args, user=None):
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus.address)
        if self.MODEM:
            env["NRFCLOUD_GATEWAY_RUNTIME_DIR"] = self.runtime
        pre = ["setpriv", "--reuid", user[0], "--regid", user[1], "--clear-groups"] if user else []
        conf = self.daemon.conf if self.daemon else os.path.join(self.dir, "daemon", "gateway.conf")
        if user:  # the daemon's file names its key, which only root reads
            conf = os.path.join(self.dir, "reader.conf")
            with open(conf, "w") as f:
                f.write("[Log]\nLevel=info\n")
            os.chmod(conf, 0o644)
        return subprocess.run([*pre, CTL, args[0], "--config", conf, *args[1:]], capture_output=True, text=True,
                              timeout=30, env=env)



@unittest.skipUnless(os.geteuid() == 0, "needs root to run clients as other users")
class DbusApi(Base):
    def test_properties_signals_methods(self):
        self.start()
        om = dbus.Interface(self.conn.get_object(NAME, ROOT), "org.freedesktop.DBus.ObjectManager")
        objects = om.GetManagedObjects()
        self.assertEqual(sorted(i for i in objects[PATH].keys() if i.startswith(P)),
                         [P + "Fota1", P + "Gateway1", P + "Location1", P + "Modem1", P + "Outbox1"])
        dev_path = ROOT + "/dev_" + BLE_ADDR.replace(":", "_")
        self.assertTrue(st.wait_until(lambda: dev_path in om.GetManagedObjects()), om.GetManagedObjects().keys())

        gw = self.props(PATH, P + "Gateway1")
        self.assertEqual(gw["State"], "running")
        self.assertTrue(gw["Version"])
        self.assertEqual(gw["GatewayId"], DEVICE)
        self.assertEqual(gw["TeamId"], st.TEAM)
        self.assertEqual(gw["MqttEndpoint"], "localhost:%d" % self.broker.port)
        self.assertEqual(gw["Tls"], "host")
        self.assertTrue(st.wait_until(lambda: self.props(PATH, P + "Gateway1")["CloudState"] == "ready"))
        gw = self.props(PATH, P + "Gateway1")
        self.assertGreater(gw["CloudStateSince"], (time.time() - 60) * 1e6)
        self.assertEqual(gw["CloudLastError"], "")
        self.assertEqual(gw["CloudNextRetry"], 0)
        self.assertEqual(gw["DevicesDesired"], 1)
        self.assertIn(gw["DevicesConnected"], (0, 1))

        modem = self.props(PATH, P + "Modem1")
        self.assertEqual(dict(modem), {"Present": False, "Port": "none", "State": "none", "ModemFirmware": "",
                                       "FirmwareVersion": "", "DeviceUuid": "", "Registration": "unknown",
                                       "Rsrp": -2**31, "Rsrq": -2**31, "SignalUpdated": 0, "SecTag": 16842753,
                                       "Credentials": dbus.Array([], signature="s")})
        outbox = self.props(PATH, P + "Outbox1")
        self.assertEqual(sorted(outbox.keys()), ["BudgetDeferred", "BudgetSaturated", "Bytes", "Coalesced",
                                                 "Dropped", "MaxBytes", "MaxMessages", "MaxPublishRate", "Messages",
                                                 "OldestQueued"])
        self.assertEqual(outbox["MaxPublishRate"], 90)
        self.assertEqual(outbox["Dropped"], 0)
        self.assertEqual(outbox["BudgetSaturated"], False)
        self.assertEqual(outbox["BudgetDeferred"], 0)
        fota = self.props(PATH, P + "Fota1")
        self.assertEqual(dict(fota), {"State": "unavailable", "JobId": "", "Progress": -1, "LastJobId": "",
                                      "SupportedTypes": dbus.Array([], signature="s")})
        dev = self.props(dev_path, P + "Device1")
        self.assertEqual(dev["Address"], BLE_ADDR)
        self.assertTrue(dev["Desired"])
        self.assertEqual(dev["Notifications"], 0)
        self.assertEqual(dev["LastNotification"], 0)
        self.assertEqual(list(dev["Subscriptions"]), [])
        self.assertTrue(st.wait_until(lambda: self.props(dev_path, P + "Device1")["Connected"], 20),
                        self.props(dev_path, P + "Device1"))
        dev = self.props(dev_path, P + "Device1")
        self.assertEqual(dev["State"], "ready")
        self.assertEqual(dev["AddressType"], "public")
        self.assertEqual(dev["Name"], "Heart Rate Sensor")
        self.assertEqual(dev["LastError"], "")
        self.assertTrue(self.signals.find(P + "Device1", "State", "ready"), self.signals.items)
        self.assertTrue(st.wait_until(lambda: self.props(PATH, P + "Gateway1")["DevicesConnected"] == 1))
        self.assertTrue(st.wait_until(lambda: any(x.startswith("Cloud ready (localhost), 1/1 device connected")
                                                  for x in self.daemon.statuses())), self.daemon.statuses())

        # nRF Cloud subscribes to the heart rate; notifications are counted and signalled.
        self.peer.c2g({"type": "operation", "id": "sub-1", "operation": {
            "type": "device_descriptor_value_write", "deviceAddress": BLE_ADDR, "serviceUUID": "180D",
            "characteristicUUID": "2A37", "descriptorUUID": "2902", "descriptorValue": [1, 0]}})
        self.assertTrue(st.wait_until(lambda: len(self.props(dev_path, P + "Device1")["Subscriptions"]) == 1),
                        self.daemon.log()[-2000:])
        sub = str(self.props(dev_path, P + "Device1")["Subscriptions"][0]).lower()
        self.assertIn("180d", sub.split("/")[0])
        self.assertIn("2a37", sub.split("/")[1])
        for bpm in (70, 71, 72):
            self.assertTrue(st.wait_until(lambda: self.bluez.notify_value(BLE_ADDR, "180d", "2a37",
                                                                          bytes([0, bpm]).hex())))
            time.sleep(0.2)
        self.assertTrue(st.wait_until(lambda: self.props(dev_path, P + "Device1")["Notifications"] >= 3))
        self.assertGreater(self.props(dev_path, P + "Device1")["LastNotification"], (time.time() - 60) * 1e6)
        self.assertTrue(st.wait_until(lambda: self.signals.find(P + "Device1", "Notifications")))

        # The broker goes away: the change is signalled, with the reason and the retry.
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus.address)
        mon_out = open(os.path.join(self.dir, "monitor.out"), "w+")
        monitor = subprocess.Popen([CTL, "monitor"], stdout=mon_out, stderr=subprocess.STDOUT, env=env)
        self.addCleanup(mon_out.close)
        self.addCleanup(st.stop_process, monitor)
        self.assertTrue(st.wait_until(lambda: "Following" in read_text(mon_out.name)))
        self.broker.stop()
        self.assertTrue(st.wait_until(lambda: self.signals.find(P + "Gateway1", "CloudState", "connecting")),
                        self.signals.items)
        self.assertTrue(st.wait_until(lambda: self.props(PATH, P + "Gateway1")["CloudLastError"] != ""))
        self.assertTrue(st.wait_until(lambda: self.signals.find(P + "Gateway1", "CloudLastError")))
        self.assertGreater(self.props(PATH, P + "Gateway1")["CloudNextRetry"], (time.time() - 5) * 1e6)
        # While offline, the readings wait in the outbox, and that is signalled.
        for bpm in (80, 81, 82, 83):
            self.bluez.notify_value(BLE_ADDR, "180d", "2a37", bytes([0, bpm]).hex())
            time.sleep(0.2)
        self.assertTrue(st.wait_until(lambda: self.props(PATH, P + "Outbox1")["Messages"] >= 4),
                        self.props(PATH, P + "Outbox1"))
        outbox = self.props(PATH, P + "Outbox1")
        self.assertGreater(outbox["Bytes"], 0)
        self.assertGreater(outbox["OldestQueued"], (time.time() - 60) * 1e6)
        self.assertTrue(st.wait_until(lambda: [x for x in self.signals.find(P + "Outbox1", "Messages")
                                               if x[3]["Messages"] >= 4]), self.signals.items)
        self.assertTrue(st.wait_until(lambda: any(x.startswith("Cloud connecting: ") and "retry in" in x and
                                                  x.endswith(" messages") for x in self.daemon.statuses())),
                        self.daemon.statuses())
        r = self.ctl("outbox")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"Outbox: +\d+ message\(s\)")
        self.broker.start()
        self.assertTrue(st.wait_until(lambda: self.props(PATH, P + "Gateway1")["CloudState"] == "ready", 30))
        self.assertTrue(self.signals.find(P + "Gateway1", "CloudState", "ready"))
        self.assertTrue(st.wait_until(lambda: self.props(PATH, P + "Outbox1")["Messages"] == 0))
        self.assertEqual(self.props(PATH, P + "Outbox1")["OldestQueued"], 0)
        # gatewayctl monitor followed the same, readably.
        self.assertTrue(st.wait_until(lambda: 'gateway Gateway1.CloudState = "ready"' in read_text(mon_out.name)),
                        read_text(mon_out.name))
        self.assertIn('gateway Gateway1.CloudState = "connecting"', read_text(mon_out.name))

        # Methods: root may, others may not.
        connects = self.daemon.log().count("Cloud connected to")
        gwi = dbus.Interface(self.conn.get_object(NAME, PATH), P + "Gateway1")
        gwi.Reconnect()
        self.assertTrue(st.wait_until(lambda: self.daemon.log().count("Cloud connected to") > connects),
                        self.daemon.log()[-3000:])
        gwi.Reload()
        self.assertTrue(self.daemon.wait_log("Reload asked over D-Bus"))
        seen = gwi.Scan(dbus.UInt32(1), timeout=10)
        self.assertIsInstance(seen, dbus.Array)
        r = self.ctl("scan", "1", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIsInstance(json.loads(r.stdout), list)
        r = self.ctl("scan", "1", user=READER)
        self.assertEqual(r.returncode, 9, r.stdout + r.stderr)
        with self.assertRaises(dbus.DBusException) as e:
            gwi.Scan(dbus.UInt32(0))
        self.assertEqual(e.exception.get_dbus_name(), "org.freedesktop.DBus.Error.InvalidArgs")
        with self.assertRaises(dbus.DBusException) as e:
            dbus.Interface(self.conn.get_object(NAME, PATH), P + "Modem1").GetImei()
        self.assertEqual(e.exception.get_dbus_name(), P + "Error.NoModem")

        # A member of the group reads; it may not call methods, nor read the IMEI.
        ok, out = self.as_user(READER, PATH, "org.freedesktop.DBus.Properties.Get", "string:" + P + "Gateway1",
                               "string:CloudState")
        self.assertTrue(ok, out)
        self.assertIn('"ready"', out)
        ok, out = self.as_user(READER, ROOT, "org.freedesktop.DBus.ObjectManager.GetManagedObjects")
        self.assertTrue(ok, out)
        for method in (P + "Gateway1.Reload", P + "Gateway1.Reconnect", P + "Modem1.GetImei"):
            ok, out = self.as_user(READER, PATH, method)
            self.assertFalse(ok, out)
            self.assertIn("AccessDenied", out)
        # Someone else reads nothing.
        ok, out = self.as_user(STRANGER, PATH, "org.freedesktop.DBus.Properties.Get", "string:" + P + "Gateway1",
                               "string:CloudState")
        self.assertFalse(ok, out)
        self.assertIn("AccessDenied", out)

    def test_ctl_status_json_and_status_line(self):
        self.start()
        self.assertTrue(st.wait_until(lambda: any(s.startswith("Cloud ready (localhost), 1/1 device connected, "
                                                               "outbox ") for s in self.daemon.statuses())),
                        self.daemon.statuses())
        r = self.ctl("status", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        j = json.loads(r.stdout)
        self.assertEqual(j["gateway"]["CloudState"], "ready")
        self.assertEqual(j["gateway"]["GatewayId"], DEVICE)
        self.assertEqual(j["modem"]["Present"], False)
        self.assertIn("Messages", j["outbox"])
        r = self.ctl("status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Cloud:", r.stdout)
        self.assertIn("ready", r.stdout)
        self.assertIn("none ([Modem] Port=none)", r.stdout)
        # TLS=host: no location manager.
        self.assertEqual(j["location"]["State"], "off")
        self.assertEqual(j["location"]["Time"], 0)
        self.assertIn("  Location:      off\n", r.stdout)
        # A member of the group sees the same.
        r = self.ctl("status", "--json", user=READER)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["gateway"]["CloudState"], "ready")

        r = self.ctl("devices", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        devices = json.loads(r.stdout)
        self.assertEqual([d["Address"] for d in devices], [BLE_ADDR])
        r = self.ctl("devices")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(BLE_ADDR, r.stdout)

        r = self.ctl("outbox", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Messages", json.loads(r.stdout))

        # No modem: the pty named by the main file was never opened.
        pid = self.daemon.proc.pid
        fds = [os.readlink("/proc/%d/fd/%s" % (pid, fd)) for fd in os.listdir("/proc/%d/fd" % pid)]
        self.assertNotIn(self.pty_name, fds)
        self.assertIn("[Modem] Port=none: no nRF91", self.daemon.log())
        self.assertNotIn(self.pty_name, self.daemon.log())

        # identity: the daemon says it has no modem; stopped, the tool does not open a port either.
        r = self.ctl("identity")
        self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
        self.assertIn("without a modem", r.stderr)

        # The daemon is gone: status says so with its own exit code.
        conf = self.daemon.conf
        self.daemon.stop()
        self.daemon = None
        r = self.ctl("status")
        self.assertEqual(r.returncode, 8, r.stdout + r.stderr)
        r = subprocess.run([CTL, "identity", "--config", conf], capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus.address))
        self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
        self.assertIn("[Modem] Port=none", r.stderr)
        self.assertNotIn(self.pty_name, r.stdout + r.stderr)

    def test_introspection_matches_the_installed_xml(self):
        """What the daemon serves is what systemd/io.github.nrfcloud_gateway.Gateway1.xml documents:
        the same interfaces, properties with their types, and methods with their arguments."""
        import xml.etree.ElementTree as ET

        def members(root):
            out = {}
            for iface in root.findall("interface"):
                name = iface.get("name")
                if not name.startswith(P):
                    continue
                out[name] = (sorted((p.get("name"), p.get("type"), p.get("access")) for p in iface.findall("property")),
                             sorted((m.get("name"), tuple((a.get("type"), a.get("direction", "in"))
                                                         for a in m.findall("arg"))) for m in iface.findall("method")))
            return out

        self.start()
        documented = members(ET.parse(os.path.join(HERE, "..", "..", "systemd",
                                                    "io.github.nrfcloud_gateway.Gateway1.xml")).getroot())
        served = {}
        dev_path = ROOT + "/dev_" + BLE_ADDR.replace(":", "_")
        self.assertTrue(st.wait_until(lambda: dev_path in dbus.Interface(
            self.conn.get_object(NAME, ROOT), "org.freedesktop.DBus.ObjectManager").GetManagedObjects()))
        for path in (PATH, dev_path):
            text = dbus.Interface(self.conn.get_object(NAME, path), "org.freedesktop.DBus.Introspectable").Introspect()
            served.update(members(ET.fromstring(str(text))))
        self.assertEqual(len(documented), 6)
        self.assertEqual(served, documented)

    def test_device_removed_and_reload_refused(self):
        self.start()
        om = dbus.Interface(self.conn.get_object(NAME, ROOT), "org.freedesktop.DBus.ObjectManager")
        dev_path = ROOT + "/dev_" + BLE_ADDR.replace(":", "_")
        self.assertTrue(st.wait_until(lambda: dev_path in om.GetManagedObjects()))
        removed = []
        self.signals.conn.add_signal_receiver(lambda path, ifaces: removed.append((str(path), list(ifaces))),
                                              "InterfacesRemoved", "org.freedesktop.DBus.ObjectManager")
        # nRF Cloud no longer wants the device: its object goes, with InterfacesRemoved.
        self.peer.delta({"desiredConnections": []})
        self.assertTrue(st.wait_until(lambda: (dev_path, [P + "Device1"]) in removed), removed)
        self.assertNotIn(dev_path, om.GetManagedObjects())
        self.assertTrue(st.wait_until(lambda: self.props(PATH, P + "Gateway1")["DevicesDesired"] == 0))
        # Reload() with an invalid file: refused with the API's error, the daemon runs on.
        with open(self.daemon.conf, "a") as f:
            f.write("[Cloud]\nKeepAliveSec=5\n")
        with self.assertRaises(dbus.DBusException) as e:
            dbus.Interface(self.conn.get_object(NAME, PATH), P + "Gateway1").Reload()
        self.assertEqual(e.exception.get_dbus_name(), P + "Error.InvalidConfiguration")
        self.assertEqual(self.props(PATH, P + "Gateway1")["State"], "running")


MODEM_DEVICE = "3f1c9a7e-2b64-4d0e-8a51-7c9e2f4b6d13"
IMEI = "352656100367872"


@unittest.skipUnless(os.geteuid() == 0, "needs root to run clients as other users")
class ModemApi(Base):
    """TLS=modem through a provisioned nrf91-sim: the modem's properties, the signal read on demand,
    the IMEI for root only, identity and fota answered by the daemon while it holds the port."""
    DEVICE = MODEM_DEVICE
    MODEM = True

    def test_modem(self):
        self.start()
        # Nobody asked yet: no AT+CESQ was sent.  The first read asks; the answer is signalled.
        self.assertNotIn("--> AT+CESQ", self.daemon.log())
        modem = self.props(PATH, P + "Modem1")
        self.assertTrue(modem["Present"])
        self.assertEqual(modem["Port"], self.sim.link)
        self.assertEqual(modem["State"], "ready")
        self.assertEqual(modem["DeviceUuid"], MODEM_DEVICE)
        self.assertTrue(modem["ModemFirmware"].startswith("mfw_nrf91"), modem)
        self.assertEqual(modem["FirmwareVersion"], "1.0.0")
        self.assertEqual(modem["Registration"], "registered")
        self.assertEqual(len(modem["Credentials"]), 3, modem["Credentials"])
        self.assertEqual(self.props(PATH, P + "Gateway1")["GatewayId"], MODEM_DEVICE)
        self.assertEqual(self.props(PATH, P + "Gateway1")["Tls"], "modem")
        self.assertEqual(modem["SignalUpdated"], 0)
        self.assertTrue(st.wait_until(lambda: self.signals.find(P + "Modem1", "Rsrp")), self.signals.items)
        modem = self.props(PATH, P + "Modem1")
        # The sim answers +CESQ: 99,99,255,255,31,62: RSRQ 31 → -4.5 dB, RSRP 62 → -79 dBm.
        self.assertEqual((modem["Rsrp"], modem["Rsrq"]), (-79, -45))
        self.assertGreater(modem["SignalUpdated"], (time.time() - 60) * 1e6)
        # Read again within the minute: no second AT+CESQ.
        for _ in range(3):
            self.props(PATH, P + "Modem1")
        time.sleep(0.5)
        self.assertEqual(self.daemon.log().count("--> AT+CESQ"), 1,
                         [line for line in self.daemon.log().splitlines() if "CESQ" in line])

        # The IMEI: root gets it, a reader does not.
        imei = dbus.Interface(self.conn.get_object(NAME, PATH), P + "Modem1").GetImei()
        self.assertEqual(imei, IMEI)
        ok, out = self.as_user(READER, PATH, P + "Modem1.GetImei")
        self.assertFalse(ok, out)
        self.assertIn("AccessDenied", out)

        # identity while the daemon holds the port: the daemon answers; the IMEI is redacted unless asked.
        r = self.ctl("identity")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("Device UUID:      %s" % MODEM_DEVICE, r.stdout)
        self.assertNotIn(IMEI, r.stdout)
        self.assertIn("answered by the running daemon", r.stdout)
        r = self.ctl("identity", "--json", "--show-personal")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        j = json.loads(r.stdout)
        self.assertEqual((j["uuid"], j["imei"], j["source"]), (MODEM_DEVICE, IMEI, "daemon"))
        self.assertEqual(len(j["credentials"]), 3)
        r = self.ctl("identity", user=READER)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("IMEI:             (root only)", r.stdout)
        # fota: the manager's view, with what the firmware can apply.
        r = self.ctl("fota", "--json")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        j = json.loads(r.stdout)
        self.assertEqual(j["State"], "idle")
        self.assertEqual(sorted(j["SupportedTypes"]), ["APP", "MODEM"])
        r = self.ctl("status")
        self.assertIn("ready on %s, registered" % self.sim.link, r.stdout)
        self.assertIn("Signal:        RSRP -79 dBm, RSRQ -4.5 dB", r.stdout)

    def test_location(self):
        """The REST stand-in's ground fix on Location1, announced with PropertiesChanged when it arrives,
        in `status` and `status --json`, a later fix as one line of `monitor`, and a failed request's error."""
        fix = reststandin.GROUND_FIX
        rest = reststandin.RestStandIn(self.pki.server[0], self.pki.server[1])
        self.addCleanup(rest.stop)
        self.assertEqual(self.sim.command("cell 26295 00B7 00011B07 300 7 63 31"), "OK")
        interval = 4
        self.start("RestHost=localhost\nRestPort=%d\nRestCAFile=%s\nLocationIntervalSec=%d\n"
                   % (rest.port, self.pki.root[0], interval))
        L = P + "Location1"
        got = lambda: self.signals.find(L, "Latitude", fix["lat"])  # noqa: E731
        self.assertTrue(st.wait_until(got, 60), (self.signals.find(L, "State"), self.daemon.log()[-3000:]))
        (sig,) = got()
        self.assertEqual((sig[1], sig[3]["Longitude"], sig[3]["Uncertainty"], sig[3]["Method"]),
                         (PATH, fix["lon"], fix["uncertainty"], fix["fulfilledWith"]))
        self.assertGreater(sig[3]["Time"], 0)
        loc = self.props(PATH, L)
        self.assertEqual((loc["Latitude"], loc["Longitude"], loc["Uncertainty"], loc["Method"]),
                         (fix["lat"], fix["lon"], fix["uncertainty"], "MCELL"))
        self.assertLessEqual(abs(loc["Time"] / 1e6 - time.time()), 60)
        self.assertEqual(loc["Requests"], 1)
        self.assertEqual(loc["LastError"], "")
        self.assertIn(loc["State"], ("idle", "monitor"))

        r = self.ctl("status", "--json", user=READER)
        self.assertEqual(r.returncode, 0, r.stderr)
        j = json.loads(r.stdout)["location"]
        self.assertEqual((j["Latitude"], j["Longitude"], j["Uncertainty"], j["Method"], j["Time"]),
                         (fix["lat"], fix["lon"], fix["uncertainty"], "MCELL", loc["Time"]))
        r = self.ctl("status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"  Location:      %.4f N, %.4f E ±%d m \(MCELL, \d+ s ago\)\n"
                         % (fix["lat"], fix["lon"], fix["uncertainty"]))

        # A cell change asks again once the interval allows: the new fix is one line of monitor.
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus.address, NRFCLOUD_GATEWAY_RUNTIME_DIR=self.runtime)
        mon = subprocess.Popen([CTL, "monitor", "--config", self.daemon.conf], stdout=subprocess.PIPE, text=True,
                               env=env)
        lines = []
        try:
            self.assertIn("Following", mon.stdout.readline())
            self.assertEqual(self.sim.command("cell 26295 00B8 00022C01 300 9 50 20"), "OK")
            want = re.compile(r"^\d\d:\d\d:\d\d gateway Location1: %.4f N, %.4f E ±%d m \(MCELL, \d+ s ago\)$"
                              % (fix["lat"], fix["lon"], fix["uncertainty"]))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not any(want.match(x) for x in lines):
                line = mon.stdout.readline()
                if not line:
                    break
                lines.append(line.rstrip("\n"))
        finally:
            mon.kill()
            mon.wait(10)
            mon.stdout.close()
        self.assertTrue(any(want.match(x) for x in lines), lines)
        # The state's steps are plain property lines; the fix's values are not repeated one by one.
        self.assertTrue(any(x.endswith(" gateway Location1.State = \"requesting\"") for x in lines), lines)
        self.assertFalse(any("Location1.Latitude" in x for x in lines), lines)
        self.assertTrue(st.wait_until(lambda: self.props(PATH, L)["State"] == "idle"))
        self.assertEqual(self.props(PATH, L)["Requests"], 2)

        # A failed request: its error beside the fix that stays.
        rest.set_actions("4xx")
        self.assertEqual(self.sim.command("cell 26295 00B9 00033D02 300 10 50 20"), "OK")
        error = "HTTP 400, nRF Cloud error 40000: Bad request"
        self.assertTrue(st.wait_until(lambda: self.signals.find(L, "LastError", error), 30), self.daemon.log()[-3000:])
        loc = self.props(PATH, L)
        self.assertEqual((loc["Requests"], loc["Latitude"], loc["LastError"]), (3, fix["lat"], error))
        r = self.ctl("status")
        self.assertIn(" ±%d m (MCELL, " % fix["uncertainty"], r.stdout)
        self.assertIn("; last request failed: " + error + "\n", r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
