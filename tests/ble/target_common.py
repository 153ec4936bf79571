# SPDX-License-Identifier: MIT
"""What the target-side doubles of BLE FOTA (smp_target.py, nrfdfu_target.py)
share: access to the GATT fixture's state and notifications cut to the MTU.

The doubles run inside the dbusmock process, loaded as templates after
bluez_gatt_template.py, which hands them its module globals
(mock.gatt_fixture) and routes the writes to a registered device's
characteristics to the double's on_write(path, value, type)."""

import json

import dbus
import dbus.lowlevel
from dbusmock import mockobject

CHRC_IFACE = 'org.bluez.GattCharacteristic1'
DEVICE_IFACE = 'org.bluez.Device1'
BASE_TAIL = '-0000-1000-8000-00805f9b34fb'


def long_uuid(u):
    u = u.lower()
    return '0000' + u + BASE_TAIL if len(u) == 4 else u


def fixture():
    return mockobject.objects['/'].gatt_fixture


def dev_path(address, adapter='hci0'):
    return '/org/bluez/%s/dev_%s' % (adapter, address.upper().replace(':', '_'))


def chrc_path(dev, svc, chrc):
    info = fixture()['DEVICES'].get(dev)
    return info['chrcs'].get((long_uuid(svc), long_uuid(chrc))) if info else None


def chrc_uuid(path):
    return str(mockobject.objects[path].props[CHRC_IFACE]['UUID'])


def connected(dev):
    obj = mockobject.objects.get(dev)
    return bool(obj and obj.props[DEVICE_IFACE]['Connected'])


def notify(path, data, mtu):
    """Sends data as notifications of at most mtu-3 bytes (what the ATT layer
    allows), if the client subscribed; a peripheral drops them otherwise."""
    obj = mockobject.objects.get(path)
    if not obj or not obj.props[CHRC_IFACE].get('Notifying'):
        return False
    step = max(1, mtu - 3)
    for i in range(0, len(data), step):
        value = dbus.ByteArray(bytes(data[i:i + step]))
        msg = dbus.lowlevel.SignalMessage(path, dbus.PROPERTIES_IFACE, 'PropertiesChanged')
        msg.append(CHRC_IFACE, {'Value': value}, dbus.Array([], signature='s'), signature='sa{sv}as')
        obj.connection.send_message(msg)
        obj.props[CHRC_IFACE]['Value'] = dbus.Array(value, signature='y')
    return True


def set_value(dev, svc, chrc, data):
    """A readable value of the peripheral (Device Information's firmware revision)."""
    path = chrc_path(dev, svc, chrc)
    if path:
        mockobject.objects[path].props[CHRC_IFACE]['Value'] = dbus.Array(
            [dbus.Byte(b) for b in data], signature='y')


def att_error(code):
    """How bluetoothd 5.66 reports an ATT error it has no better name for."""
    return dbus.exceptions.DBusException('Operation failed with ATT error: 0x%02x' % code,
                                         name='org.bluez.Error.Failed')


def check_command_size(value, wtype, mtu):
    """bluetoothd sends a write without response only if it fits one ATT
    packet (mtu-3); a characteristic without 'write' then gets NotSupported."""
    if wtype == 'command' and len(value) > mtu - 3:
        raise dbus.exceptions.DBusException('Operation is not supported', name='org.bluez.Error.NotSupported')


def add_device(mock, adapter, address, opts, name, gatt, uuids, make_target):
    """Publishes the peripheral through the GATT fixture and routes its writes
    to the double make_target(path) returns."""
    dev_opts = {'name': opts.get('name', name), 'gatt': gatt, 'uuids': uuids,
                'address_type': opts.get('address_type', 'random')}
    path = str(fixture()['AddLeDevice'](mock, adapter, address, json.dumps(dev_opts)))
    target = make_target(path)
    fixture()['TARGETS'][path] = target
    return path, target
