# SPDX-License-Identifier: MIT
"""Test fixture of the BLE layer: a private system-type dbus-daemon,
python-dbusmock's bluez5 template extended by bluez_gatt_template.py, and the
ble-harness program driven through JSON lines.

Everything runs in a temporary directory, on a private bus; processes are
stopped by PID."""

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time

import dbus

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, 'bluez_gatt_template.py')
TARGET_TEMPLATES = [os.path.join(HERE, t) for t in ('smp_target.py', 'nrfdfu_target.py')]  # FOTA target doubles
PYTHON = '/usr/bin/python3'

# A private system-type bus; {policy}: its <policy> elements.
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
{policy}</busconfig>
"""
# Everything allowed to everyone: the tests of the BLE layer.
PERMISSIVE_POLICY = """  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
  </policy>
"""

# Debian's default policy of /usr/share/dbus-1/system.conf (deny by default), and {policy}, the project's
# policy file as project_policy() writes it.  Root plays bluetoothd and the daemon: it may own any name and
# call BlueZ.
SYSTEM_POLICY = """  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <policy user="root">
    <allow own="*"/>
    <allow send_destination="org.bluez"/>
  </policy>
  <include>{policy}</include>
"""
PROJECT_POLICY = os.path.join(HERE, '..', '..', 'systemd', 'nrfcloud-gateway-dbus.conf')


def project_policy(folder, user='nobody', group='nogroup'):
    """systemd/nrfcloud-gateway-dbus.conf with the service user and group played by user and group;
    returns the <policy> elements of a system bus that includes it."""
    with open(PROJECT_POLICY) as f:
        text = f.read()
    assert 'user="nrfcloud-gateway"' in text and 'group="nrfcloud-gateway"' in text
    path = os.path.join(folder, 'policy.conf')
    with open(path, 'w') as f:
        f.write(text.replace('user="nrfcloud-gateway"', 'user="%s"' % user)
                .replace('group="nrfcloud-gateway"', 'group="%s"' % group))
    return SYSTEM_POLICY.format(policy=path)


# A device like a small sensor: battery service and a UART-like service.
NUS = '6e400001-b5a3-f393-e0a9-e50e24dcca9e'
NUS_RX = '6e400002-b5a3-f393-e0a9-e50e24dcca9e'
NUS_TX = '6e400003-b5a3-f393-e0a9-e50e24dcca9e'
GATT = [
    {'uuid': '180f', 'characteristics': [
        {'uuid': '2a19', 'flags': ['read', 'notify'], 'value': '64',
         'descriptors': [{'uuid': '2902', 'flags': ['read', 'write'], 'value': '0000'}]}]},
    {'uuid': NUS, 'characteristics': [
        {'uuid': NUS_RX, 'flags': ['write', 'write-without-response']},
        {'uuid': NUS_TX, 'flags': ['read', 'notify'], 'value': '00',
         'descriptors': [{'uuid': '2902', 'value': '0000'},
                         {'uuid': '2901', 'value': b'TX'.hex()}]}]},
]


def build_dir():
    return os.environ.get('NRFGW_BUILD_DIR', os.path.join(HERE, '..', '..', 'build'))


class Bus:
    def __init__(self, tmp, policy=PERMISSIVE_POLICY):
        self.socket = os.path.join(tmp, 'system_bus_socket')
        conf = os.path.join(tmp, 'system.conf')
        with open(conf, 'w') as f:
            f.write(BUS_CONFIG.format(socket=self.socket, policy=policy))
        self.proc = subprocess.Popen(['dbus-daemon', '--config-file=' + conf, '--nofork', '--print-address=1'],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.address = self.proc.stdout.readline().strip()
        if not self.address:
            raise RuntimeError('dbus-daemon did not start')

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(5)
        self.proc.stdout.close()


class BluezMock:
    """bluetoothd stand-in: dbusmock bluez5 + the project's extension."""

    def __init__(self, bus, tmp):
        self.bus_address = bus.address
        self.tmp = tmp
        self.devices = {}  # address → opts, for restarts
        self.proc = None
        self.conn = dbus.bus.BusConnection(self.bus_address)
        self.start()

    def start(self):
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus_address)
        self.logfile = open(os.path.join(self.tmp, 'mock.log'), 'a')
        self.proc = subprocess.Popen([PYTHON, '-m', 'dbusmock', '--system', '-t', 'bluez5'], env=env,
                                     stdout=self.logfile, stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while not self.conn.name_has_owner('org.bluez'):
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError('dbusmock did not claim org.bluez')
            time.sleep(0.02)
        root = self.conn.get_object('org.bluez', '/')
        dbus.Interface(root, 'org.bluez.Mock').AddAdapter('hci0', 'gateway')
        dbus.Interface(root, 'org.freedesktop.DBus.Mock').AddTemplate(TEMPLATE, dbus.Dictionary({}, signature='sv'))
        for t in TARGET_TEMPLATES:
            dbus.Interface(root, 'org.freedesktop.DBus.Mock').AddTemplate(t, dbus.Dictionary({}, signature='sv'))
        self.fx = dbus.Interface(root, 'org.nrfgw.BluezFixture')
        self.fx.FixAdapter('/org/bluez/hci0')
        for address, opts in self.devices.items():
            self.fx.AddLeDevice('hci0', address, json.dumps(opts))

    def kill(self):  # noqa: E301
        """bluetoothd crashes: the name goes away with every object."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.logfile.close()
        deadline = time.time() + 5
        while self.conn.name_has_owner('org.bluez') and time.time() < deadline:
            time.sleep(0.02)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(5)
        self.logfile.close()
        self.conn.close()

    def add_device(self, address, gatt=GATT, remember=True, **opts):
        opts = dict(opts)
        opts.setdefault('name', 'dev-' + address[-2:])
        opts['gatt'] = gatt
        if remember:
            self.devices[address] = dict(opts, appear_on_discovery=False)
        return str(self.fx.AddLeDevice('hci0', address, json.dumps(opts)))

    # ---- beacons: advertisers with real advertisement bytes ----

    def add_ibeacon(self, address, uuid, major, minor, tx_power=-59, **opts):
        """An iBeacon: Apple's manufacturer data (company 0x004C), type 0x02, length 0x15, the proximity
        UUID, major and minor (big endian) and the measured power at 1 m.  Returns its bytes."""
        data = bytes([0x02, 0x15]) + bytes.fromhex(uuid.replace("-", "")) + major.to_bytes(2, "big") + \
            minor.to_bytes(2, "big") + (tx_power & 0xff).to_bytes(1, "big")
        opts.setdefault("flags", "06")
        self.add_device(address, gatt=[], manufacturer_data={str(0x004C): data.hex()}, advertising=True, **opts)
        return data

    def add_eddystone_uid(self, address, namespace, instance, tx_power=-18, advertised_tx_power=None, **opts):
        """An Eddystone-UID beacon: service UUID 0xFEAA listed and its service data, frame type 0x00, the
        ranging data (TX power at 0 m), a 10-byte namespace, a 6-byte instance and two reserved bytes.
        advertised_tx_power: a TX Power Level AD as well (Device1.TxPower)."""
        data = bytes([0x00, tx_power & 0xff]) + bytes.fromhex(namespace) + bytes.fromhex(instance) + b"\0\0"
        opts.setdefault("flags", "06")
        if advertised_tx_power is not None:
            opts["tx_power"] = advertised_tx_power
        self.add_device(address, gatt=[], uuids=["feaa"], service_data={"feaa": data.hex()}, advertising=True,
                        **opts)
        return data

    def add_sensor_beacon(self, address, company, payload, **opts):
        """A sensor that broadcasts its readings in manufacturer data: payload, then a 16-bit count of the
        advertisements sent so far (little endian), which changes with each advertisement."""
        self.add_device(address, gatt=[], manufacturer_data={str(company): payload.hex() + "0000"},
                        counter=True, advertising=True, **opts)

    @staticmethod
    def path(address):
        return '/org/bluez/hci0/dev_' + address.replace(':', '_')

    def remove_device(self, address, forget=False):
        self.fx.RemoveLeDevice(self.path(address))
        if forget:
            self.devices.pop(address, None)

    def inject(self, path, method, name, message='', count=1):
        self.fx.InjectError(path, method, name, message, dbus.UInt32(count))

    def link_loss(self, address):
        self.fx.LinkLoss(self.path(address))

    def delay(self, path, method, seconds, count=1):
        self.fx.InjectDelay(path, method, dbus.Double(seconds), dbus.UInt32(count))

    def notify(self, address, svc, chrc, count, start=0, size=20):
        return int(self.fx.Notify(self.path(address), svc, chrc, dbus.UInt32(count), dbus.UInt32(start),
                                  dbus.UInt32(size), timeout=120))

    def set_value(self, address, svc, chrc, hexvalue):
        self.fx.SetValue(self.path(address), svc, chrc, hexvalue)

    def notify_during_next_read(self, address, svc, chrc, count, start):
        self.fx.NotifyDuringNextRead(self.path(address), svc, chrc, dbus.UInt32(count), dbus.UInt32(start))

    def drop_acquired(self, address, svc, chrc):
        return bool(self.fx.DropAcquired(self.path(address), svc, chrc))

    def notify_value(self, address, svc, chrc, hexvalue):
        """Sets a characteristic's value and notifies it if subscribed; True if notified."""
        return bool(self.fx.NotifyValue(self.path(address), svc, chrc, hexvalue))

    def state(self, address):
        return json.loads(self.fx.DeviceState(self.path(address)))

    def log(self):
        return json.loads(self.fx.GetLog())


class Harness:
    def __init__(self, bus, *args, debug=False, logfile=None):
        exe = os.path.join(build_dir(), 'tests', 'ble', 'ble-harness')
        self.logfile = logfile
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus.address)
        self.errfile = None if os.environ.get('BLE_DEBUG') else open(logfile, 'w')
        argv = [exe] + list(args) + (['--debug'] if debug or os.environ.get('BLE_DEBUG') else [])
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.errfile or sys.stderr,
                                     text=True, bufsize=1)
        self.events = []
        self.queue = queue.Queue()
        self.next_id = 1
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.wait_for(lambda e: e['event'] == 'started')

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.queue.put(json.loads(line))
            except ValueError:
                self.queue.put({'event': 'garbage', 'line': line})
        self.queue.put({'event': 'eof'})

    def send(self, cmd, **kw):
        kw['cmd'] = cmd
        if 'id' not in kw:
            kw['id'] = self.next_id
            self.next_id += 1
        self.proc.stdin.write(json.dumps(kw) + '\n')
        self.proc.stdin.flush()
        return kw['id']

    def wait_for(self, pred, timeout=10.0, seen_ok=False, since=None):
        """Returns the first event matching pred: among those already seen if seen_ok (all of
        them) or since is given (those from index since on), else among new ones."""
        if seen_ok or since is not None:
            for e in self.events[since or 0:]:
                if pred(e):
                    return e
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError('no matching event; last events: %s' % self.events[-10:])
            try:
                e = self.queue.get(timeout=left)
            except queue.Empty:
                continue
            self.events.append(e)
            if e['event'] == 'eof':
                raise RuntimeError('harness exited')
            if pred(e):
                return e

    def call(self, cmd, timeout=10.0, **kw):
        i = self.send(cmd, **kw)
        return self.wait_for(lambda e: e.get('id') == i and e['event'] != 'state', timeout)

    def wait_state(self, address, state, timeout=10.0, seen_ok=False, since=None):
        return self.wait_for(lambda e: e['event'] == 'state' and e['address'] == address and e['new'] == state,
                             timeout, seen_ok, since)

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write('{"cmd":"quit"}\n')
                self.proc.stdin.flush()
                self.proc.wait(5)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.errfile:
            self.errfile.close()
        self.proc.stdin.close()
        self.reader.join(5)
        self.proc.stdout.close()
        return self.proc.returncode


class Fixture:
    """Bus + mock; the harness is started by the test with the options it needs."""

    def __init__(self):
        self.tmpobj = tempfile.TemporaryDirectory(prefix='nrfgw-ble-')
        self.tmp = self.tmpobj.name
        self.bus = Bus(self.tmp)
        try:
            self.mock = BluezMock(self.bus, self.tmp)
        except Exception:
            self.bus.stop()
            self.tmpobj.cleanup()
            raise
        self.harnesses = []

    def harness(self, *args, **kw):
        kw.setdefault('logfile', os.path.join(self.tmp, 'harness-%d.log' % len(self.harnesses)))
        h = Harness(self.bus, *args, **kw)
        self.harnesses.append(h)
        return h

    def close(self):
        rcs = [h.stop() for h in self.harnesses]
        for h, rc in zip(self.harnesses, rcs):
            if rc != 0 and h.logfile and os.path.exists(h.logfile):
                with open(h.logfile) as f:
                    sys.stderr.write('--- %s (exit %s) ---\n%s\n' % (h.logfile, rc, f.read()[-6000:]))
        self.mock.stop()
        self.bus.stop()
        if os.environ.get('BLE_KEEP_TMP'):
            print('kept', self.tmp)
        else:
            self.tmpobj.cleanup()
        return rcs
