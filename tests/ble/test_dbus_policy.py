# SPDX-License-Identifier: MIT
"""The daemon's D-Bus policy (systemd/nrfcloud-gateway-dbus.conf) on a
private system-type dbus-daemon with the stock deny-by-default policy: the
gateway's user (played by nobody) reaches org.bluez, including its
Properties and ObjectManager interfaces, and nothing of any other service;
it owns the daemon's API name and no other.  The API (docs/dbus-api.md) is
readable by the group nrfcloud-gateway (played by nogroup) and by nobody
else, and its methods are root's."""

import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import blefixture  # noqa: E402

GATEWAY_USER = "nobody"
GATEWAY_GROUP = "nogroup"
API_NAME = "io.github.nrfcloud_gateway.Gateway1"
OTHER = ("daemon", "daemon")  # neither the service user nor in its group

# A system service on the bus: owns a name, answers Properties and ObjectManager on "/".
SERVICE = r"""
import sys
import dbus, dbus.service, dbus.mainloop.glib
from gi.repository import GLib

class Root(dbus.service.Object):
    @dbus.service.method("org.freedesktop.DBus.Properties", in_signature="s", out_signature="a{sv}")
    def GetAll(self, interface):
        return {"Name": "x"}

    @dbus.service.method("org.freedesktop.DBus.ObjectManager", out_signature="a{oa{sa{sv}}}")
    def GetManagedObjects(self):
        return {}

    @dbus.service.method("org.example.Other", out_signature="s")
    def Hello(self):
        return "hello"

    @dbus.service.method("io.github.nrfcloud_gateway.Gateway1")
    def Reload(self):
        pass

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.bus.BusConnection(sys.argv[1])
name = dbus.service.BusName(sys.argv[2], bus)
Root(bus, "/")
print("ready", flush=True)
GLib.MainLoop().run()
"""

CALLS = [("org.freedesktop.DBus.Properties.GetAll", "string:org.bluez.Adapter1"),
         ("org.freedesktop.DBus.ObjectManager.GetManagedObjects",)]


@unittest.skipUnless(os.geteuid() == 0, "needs root to run a client as another user")
class DbusPolicy(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="dbus-policy-")
        os.chmod(self.tmp.name, 0o755)
        self.bus = blefixture.Bus(self.tmp.name,
                                  policy=blefixture.project_policy(self.tmp.name, GATEWAY_USER, GATEWAY_GROUP))
        self.address = self.bus.address
        self.services = []
        for name in ("org.bluez", "org.freedesktop.hostname1", API_NAME):
            p = subprocess.Popen(["/usr/bin/python3", "-c", SERVICE, self.address, name],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.services.append(p)
            self.assertEqual(p.stdout.readline().strip(), "ready", p.stderr.read() if p.poll() is not None else "")

    def tearDown(self):
        for p in self.services:
            if p.poll() is None:
                p.terminate()
                p.wait(5)
            p.stdout.close()
            p.stderr.close()
        self.bus.stop()
        self.tmp.cleanup()

    def call(self, dest, method, *args, user=(GATEWAY_USER, GATEWAY_GROUP)):
        """dbus-send as the gateway's user (or user): (ok, output)."""
        cmd = ["setpriv", "--reuid", user[0], "--regid", user[1], "--clear-groups",
               "dbus-send", "--bus=" + self.address, "--print-reply", "--reply-timeout=5000",
               "--dest=" + dest, "/", method, *args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return r.returncode == 0, r.stdout + r.stderr

    def test_bluez_only(self):
        for call in CALLS:
            ok, out = self.call("org.bluez", *call)
            self.assertTrue(ok, "%s on org.bluez refused: %s" % (call[0], out))
        # Issue 13: the old policy allowed Properties and ObjectManager on every service of the bus.
        for call in CALLS + [("org.example.Other.Hello",)]:
            ok, out = self.call("org.freedesktop.hostname1", *call)
            self.assertFalse(ok, "%s on another service allowed: %s" % (call[0], out))
            self.assertIn("AccessDenied", out)

    def test_api_name_owned_by_the_service_user_only(self):
        own = r"""
import sys, dbus
bus = dbus.bus.BusConnection(sys.argv[1])
print(bus.request_name(sys.argv[2], dbus.bus.NAME_FLAG_DO_NOT_QUEUE))
"""
        for name, allowed in (("io.github.nrfcloud_gateway.Gateway1", True), ("org.example.Other", False)):
            r = subprocess.run(["setpriv", "--reuid", GATEWAY_USER, "--regid", GATEWAY_GROUP, "--clear-groups",
                                "/usr/bin/python3", "-c", own, self.address, name],
                               capture_output=True, text=True, timeout=20)
            if allowed:
                # The name is held by the test's service here: allowed, but it exists (3).
                self.assertEqual((r.returncode, r.stdout.strip()), (0, "3"), r.stderr)
            else:
                self.assertNotEqual(r.returncode, 0, r.stdout)
                self.assertIn("AccessDenied", r.stderr)

    def test_api_read_by_the_group_methods_by_root(self):
        for call in CALLS + [("org.freedesktop.DBus.Introspectable.Introspect",)]:
            ok, out = self.call(API_NAME, *call)
            self.assertTrue(ok, "%s on the API refused to the group: %s" % (call[0], out))
            ok, out = self.call(API_NAME, *call, user=OTHER)
            self.assertFalse(ok, "%s on the API allowed to another user: %s" % (call[0], out))
            self.assertIn("AccessDenied", out)
        ok, out = self.call(API_NAME, "io.github.nrfcloud_gateway.Gateway1.Reload")
        self.assertFalse(ok, out)
        self.assertIn("AccessDenied", out)
        ok, out = self.call(API_NAME, "io.github.nrfcloud_gateway.Gateway1.Reload", user=("root", "root"))
        self.assertTrue(ok, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
