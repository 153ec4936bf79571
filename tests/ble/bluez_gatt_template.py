# SPDX-License-Identifier: MIT
"""Extension of python-dbusmock's bluez5 template, loaded with AddTemplate on '/'.

Fixes, from the outside, what the bluez5 template of python3-dbusmock 0.28
gets wrong or lacks (see the BlueZ D-Bus spec, section 2):
  * LE devices with correctly typed advertising properties (ManufacturerData
    a{qv}, ServiceData a{sv}, RSSI n, AddressType);
  * Device1.Connect/Disconnect that update Connected and ServicesResolved,
    and a Connect of a connected LE device that succeeds;
  * GATT services, characteristics and descriptors, created when the device
    connects, with ReadValue/WriteValue/StartNotify/StopNotify behaving like
    bluetoothd 5.66 (a read emits PropertiesChanged(Value) before its reply,
    notifications are PropertiesChanged(Value), CCCD writes are refused);
  * devices that appear while discovering, RSSI updates of known devices,
    RSSI invalidated when discovery stops;
  * error injection, a log of calls and writes, device removal.
Control interface: org.nrfgw.BluezFixture on '/'.
"""

import json
import socket
import time

import dbus
import dbus.lowlevel
from dbusmock import mockobject
from gi.repository import GLib

FIXTURE_IFACE = 'org.nrfgw.BluezFixture'
ADAPTER_IFACE = 'org.bluez.Adapter1'
DEVICE_IFACE = 'org.bluez.Device1'
SERVICE_IFACE = 'org.bluez.GattService1'
CHRC_IFACE = 'org.bluez.GattCharacteristic1'
DESC_IFACE = 'org.bluez.GattDescriptor1'
OM_IFACE = 'org.freedesktop.DBus.ObjectManager'
BASE_TAIL = '-0000-1000-8000-00805f9b34fb'

IS_OBJECT_MANAGER = False

# path → dict(opts=..., gatt_paths=[...], chrcs={uuid: path})
DEVICES = {}
# (path, method) → list of [name, message, count]
FAULTS = {}
LOG = []
DELAYS = {}  # (path, method) → [seconds, count]
PENDING = {}  # adapter path → [device paths that appear during discovery]
TIMERS = {}
READ_NOTIFY = {}
# characteristic path → its definition, for the read behaviour it asks for:
#   read_error/read_message: every ReadValue fails with that D-Bus error (e.g. org.bluez.Error.NotAuthorized);
#   read_delay: seconds the peer takes to answer a ReadValue (blocks the mock, like a slow bluetoothd);
#   read_drops_link: that many ReadValue calls lose the link first and fail with "Not connected".
CHRC_DEFS = {}
ACQUIRED = {}  # characteristic path → the mock's end of the AcquireNotify socket  # characteristic path → (count, first sequence number) for the next ReadValue
TARGETS = {}  # device path → target-side double (smp_target.py, nrfdfu_target.py) answering writes: on_write()


def load(mock, _parameters):
    mock.fixture_loaded = True
    mock.gatt_fixture = globals()  # for the target-side doubles, loaded as further templates


def _long_uuid(u):
    u = u.lower()
    if len(u) == 4:
        return '0000' + u + BASE_TAIL
    if len(u) == 8:
        return u + BASE_TAIL
    return u


def _bytes(hexstr):
    return dbus.Array([dbus.Byte(b) for b in bytes.fromhex(hexstr)], signature='y')


def _emit(obj_path, iface, member, signature, args):
    obj = mockobject.objects['/']
    msg = dbus.lowlevel.SignalMessage(obj_path, iface, member)
    msg.append(*args, signature=signature)
    obj.connection.send_message(msg)


def _props_changed(path, iface, changed, invalidated=()):
    obj = mockobject.objects[path]
    for k, v in changed.items():
        obj.props[iface][k] = v
    for k in invalidated:
        obj.props[iface].pop(k, None)
    _emit(path, dbus.PROPERTIES_IFACE, 'PropertiesChanged', 'sa{sv}as',
          [iface, dbus.Dictionary(changed, signature='sv'), dbus.Array(list(invalidated), signature='s')])


def _interfaces_added(path, iface, props):
    _emit('/', OM_IFACE, 'InterfacesAdded', 'oa{sa{sv}}',
          [dbus.ObjectPath(path), dbus.Dictionary({iface: dbus.Dictionary(props, signature='sv')}, signature='sa{sv}')])


def _interfaces_removed(path, ifaces):
    _emit('/', OM_IFACE, 'InterfacesRemoved', 'oas', [dbus.ObjectPath(path), dbus.Array(ifaces, signature='s')])


def _maybe_fail(path, method):
    delay = DELAYS.get((str(path), method))
    if delay:
        seconds, count = delay
        if count <= 1:
            del DELAYS[(str(path), method)]
        else:
            delay[1] = count - 1
        time.sleep(seconds)  # a peer that does not answer: blocks the whole mock, like a stuck bluetoothd
    lst = FAULTS.get((str(path), method))
    if lst:
        name, message, count = lst[0]
        if count <= 1:
            lst.pop(0)
        else:
            lst[0][2] = count - 1
        if LOG and LOG[-1].get('method') == method and LOG[-1].get('path') == str(path):
            LOG[-1]['injected'] = name
        else:
            LOG.append({'method': method, 'path': str(path), 'injected': name})
        raise dbus.exceptions.DBusException(message, name=name)


# ---- devices ----

def _adv_payload(opts, count=0):
    """The advertising properties of a device: ManufacturerData a{qv}, ServiceData a{sv},
    AdvertisingData a{yv} (AD type → bytes), AdvertisingFlags ay, TxPower n.  With
    'counter' set, the last two bytes of each manufacturer data entry carry the
    number of advertisements sent so far (little endian), like a sensor counting."""
    mfr = {}
    for k, v in opts.get('manufacturer_data', {}).items():
        b = bytes.fromhex(v)
        if opts.get('counter') and len(b) >= 2:
            b = b[:-2] + (count & 0xffff).to_bytes(2, 'little')
        mfr[dbus.UInt16(int(k))] = dbus.Array([dbus.Byte(x) for x in b], signature='y', variant_level=1)
    p = {
        'ManufacturerData': dbus.Dictionary(mfr, signature='qv'),
        'ServiceData': dbus.Dictionary(
            {_long_uuid(k): dbus.Array(_bytes(v), signature='y', variant_level=1)
             for k, v in opts.get('service_data', {}).items()}, signature='sv'),
    }
    if 'ad_data' in opts:
        p['AdvertisingData'] = dbus.Dictionary(
            {dbus.Byte(int(k)): dbus.Array(_bytes(v), signature='y', variant_level=1)
             for k, v in opts['ad_data'].items()}, signature='yv')
    if 'flags' in opts:
        p['AdvertisingFlags'] = _bytes(opts['flags'])
    if 'tx_power' in opts:
        p['TxPower'] = dbus.Int16(opts['tx_power'])
    return p


def _device_props(adapter_path, address, opts):
    p = {
        'Address': dbus.String(address),
        'AddressType': dbus.String(opts.get('address_type', 'public')),
        'Alias': dbus.String(opts.get('name', address.replace(':', '-'))),
        'Adapter': dbus.ObjectPath(adapter_path),
        'Paired': dbus.Boolean(False),
        'Bonded': dbus.Boolean(False),
        'Trusted': dbus.Boolean(False),
        'Blocked': dbus.Boolean(False),
        'LegacyPairing': dbus.Boolean(False),
        'Connected': dbus.Boolean(False),
        'ServicesResolved': dbus.Boolean(False),
        'UUIDs': dbus.Array([_long_uuid(u) for u in opts.get('uuids', [])], signature='s'),
    }
    p.update(_adv_payload(opts))
    if 'name' in opts:
        p['Name'] = dbus.String(opts['name'])
    if 'rssi' in opts:
        p['RSSI'] = dbus.Int16(opts['rssi'])
    return p


def _publish_device(path):
    info = DEVICES[path]
    props = _device_props(info['adapter'], info['address'], info['opts'])
    mock = mockobject.objects['/']
    mock.AddObject(path, DEVICE_IFACE, props, [
        ('Connect', '', '', _dev_connect),
        ('Disconnect', '', '', _dev_disconnect),
        ('Pair', '', '', ''),
        ('CancelPairing', '', '', ''),
    ])
    _interfaces_added(path, DEVICE_IFACE, props)


def _gatt_create(dev_path):
    info = DEVICES[dev_path]
    if info['gatt_paths']:
        return
    mock = mockobject.objects['/']
    handle = 0x10
    for svc in info['opts'].get('gatt', []):
        spath = '%s/service%04x' % (dev_path, handle)
        handle += 1
        sprops = {'UUID': dbus.String(_long_uuid(svc['uuid'])), 'Device': dbus.ObjectPath(dev_path),
                  'Primary': dbus.Boolean(svc.get('primary', True)), 'Includes': dbus.Array([], signature='o')}
        mock.AddObject(spath, SERVICE_IFACE, sprops, [])
        _interfaces_added(spath, SERVICE_IFACE, sprops)
        info['gatt_paths'].append((spath, SERVICE_IFACE))
        for ch in svc.get('characteristics', []):
            cpath = '%s/char%04x' % (spath, handle)
            handle += 2
            flags = ch.get('flags', ['read'])
            cprops = {'UUID': dbus.String(_long_uuid(ch['uuid'])), 'Service': dbus.ObjectPath(spath),
                      'Value': _bytes(ch.get('value', '')), 'Flags': dbus.Array(flags, signature='s')}
            if 'notify' in flags or 'indicate' in flags:
                cprops['Notifying'] = dbus.Boolean(False)
            if 'mtu' in ch:
                cprops['MTU'] = dbus.UInt16(ch['mtu'])
            mock.AddObject(cpath, CHRC_IFACE, cprops, [
                ('ReadValue', 'a{sv}', 'ay', _chrc_read),
                ('WriteValue', 'aya{sv}', '', _chrc_write),
                ('StartNotify', '', '', _chrc_start_notify),
                ('StopNotify', '', '', _chrc_stop_notify),
                ('AcquireNotify', 'a{sv}', 'hq', _chrc_acquire_notify),
            ])
            _interfaces_added(cpath, CHRC_IFACE, cprops)
            info['gatt_paths'].append((cpath, CHRC_IFACE))
            info['chrcs'][(_long_uuid(svc['uuid']), _long_uuid(ch['uuid']))] = cpath
            CHRC_DEFS[cpath] = ch
            for ds in ch.get('descriptors', []):
                dpath = '%s/desc%04x' % (cpath, handle)
                handle += 1
                dprops = {'UUID': dbus.String(_long_uuid(ds['uuid'])), 'Characteristic': dbus.ObjectPath(cpath),
                          'Value': _bytes(ds.get('value', '')),
                          'Flags': dbus.Array(ds.get('flags', ['read']), signature='s')}
                mock.AddObject(dpath, DESC_IFACE, dprops, [
                    ('ReadValue', 'a{sv}', 'ay', _desc_read),
                    ('WriteValue', 'aya{sv}', '', _desc_write),
                ])
                _interfaces_added(dpath, DESC_IFACE, dprops)
                info['gatt_paths'].append((dpath, DESC_IFACE))


def _gatt_remove(dev_path):
    info = DEVICES.get(dev_path)
    if not info:
        return
    mock = mockobject.objects['/']
    for p, iface in reversed(info['gatt_paths']):
        if p in mockobject.objects:
            mock.RemoveObject(p)
        _interfaces_removed(p, [iface])
    info['gatt_paths'] = []
    info['chrcs'] = {}


def _resolve(dev_path):
    if dev_path not in DEVICES or dev_path not in mockobject.objects:
        return False
    dev = mockobject.objects[dev_path]
    if not dev.props[DEVICE_IFACE]['Connected']:
        return False
    _gatt_create(dev_path)
    _props_changed(dev_path, DEVICE_IFACE, {'ServicesResolved': dbus.Boolean(True)})
    return False


def _dev_connect(dev):
    path = dev.__dbus_object_path__
    LOG.append({'method': 'Connect', 'path': path})
    _maybe_fail(path, 'Connect')
    if dev.props[DEVICE_IFACE]['Connected']:
        return  # LE: already connected → success (the template said AlreadyConnected)
    _props_changed(path, DEVICE_IFACE, {'Connected': dbus.Boolean(True)})
    # Like bluetoothd: the reply comes when ATT is up, services resolve afterwards.
    GLib.timeout_add(DEVICES[path]['opts'].get('resolve_ms', 30), _resolve, path)


def _dev_disconnect(dev):
    path = dev.__dbus_object_path__
    LOG.append({'method': 'Disconnect', 'path': path})
    _maybe_fail(path, 'Disconnect')
    if not dev.props[DEVICE_IFACE]['Connected']:
        raise dbus.exceptions.DBusException('Not Connected', name='org.bluez.Error.NotConnected')
    _props_changed(path, DEVICE_IFACE, {'ServicesResolved': dbus.Boolean(False)})
    _props_changed(path, DEVICE_IFACE, {'Connected': dbus.Boolean(False)})


# ---- GATT ----

def _chrc_read(chrc, options):
    path = chrc.__dbus_object_path__
    LOG.append({'method': 'ReadValue', 'path': path})
    _maybe_fail(path, 'ReadValue')
    ch = CHRC_DEFS.get(path, {})
    if ch.get('read_delay'):
        time.sleep(ch['read_delay'])
    if ch.get('read_drops_link', 0) > 0:
        ch['read_drops_link'] -= 1
        dev_path = path.rsplit('/', 2)[0]
        _props_changed(dev_path, DEVICE_IFACE, {'ServicesResolved': dbus.Boolean(False)})
        _props_changed(dev_path, DEVICE_IFACE, {'Connected': dbus.Boolean(False)})
        raise dbus.exceptions.DBusException('Not connected', name='org.bluez.Error.Failed')
    if ch.get('read_error'):
        raise dbus.exceptions.DBusException(ch.get('read_message', ''), name=ch['read_error'])
    if 'read' not in chrc.props[CHRC_IFACE]['Flags']:
        raise dbus.exceptions.DBusException('Read not permitted', name='org.bluez.Error.NotPermitted')
    value = chrc.props[CHRC_IFACE]['Value']
    # Notifications that the peer sends while the read is in flight come before its echo.
    extra = READ_NOTIFY.pop(path, None)
    if extra and chrc.props[CHRC_IFACE].get('Notifying'):
        count, start = extra
        for i in range(count):
            msg = dbus.lowlevel.SignalMessage(path, dbus.PROPERTIES_IFACE, 'PropertiesChanged')
            msg.append(CHRC_IFACE, {'Value': dbus.ByteArray((start + i).to_bytes(4, 'little'))},
                       dbus.Array([], signature='s'), signature='sa{sv}as')
            chrc.connection.send_message(msg)
    # bluetoothd 5.66: the cache update is flushed as PropertiesChanged before the reply.
    _props_changed(path, CHRC_IFACE, {'Value': dbus.Array(value, signature='y')})
    return dbus.Array(value, signature='y')


def _chrc_write(chrc, value, options):
    path = chrc.__dbus_object_path__
    flags = chrc.props[CHRC_IFACE]['Flags']
    wtype = str(options.get('type', ''))
    LOG.append({'method': 'WriteValue', 'path': path, 'value': bytes(value).hex(), 'type': wtype})
    _maybe_fail(path, 'WriteValue')
    if wtype == 'command' and 'write-without-response' not in flags:
        raise dbus.exceptions.DBusException('Operation is not supported', name='org.bluez.Error.NotSupported')
    if wtype == 'request' and 'write' not in flags:
        raise dbus.exceptions.DBusException('Operation is not supported', name='org.bluez.Error.NotSupported')
    if not wtype and 'write' not in flags and 'write-without-response' not in flags:
        raise dbus.exceptions.DBusException('Write not permitted', name='org.bluez.Error.NotPermitted')
    if path.rsplit('/service', 1)[0] in TARGETS:
        TARGETS[path.rsplit('/service', 1)[0]].on_write(path, bytes(value), wtype)


def _chrc_start_notify(chrc):
    path = chrc.__dbus_object_path__
    LOG.append({'method': 'StartNotify', 'path': path})
    _maybe_fail(path, 'StartNotify')
    flags = chrc.props[CHRC_IFACE]['Flags']
    if 'notify' not in flags and 'indicate' not in flags:
        raise dbus.exceptions.DBusException('Operation is not supported', name='org.bluez.Error.NotSupported')
    if not chrc.props[CHRC_IFACE]['Notifying']:
        _props_changed(path, CHRC_IFACE, {'Notifying': dbus.Boolean(True)})


def _chrc_acquire_notify(chrc, options):
    path = chrc.__dbus_object_path__
    LOG.append({'method': 'AcquireNotify', 'path': path})
    _maybe_fail(path, 'AcquireNotify')
    if 'notify' not in chrc.props[CHRC_IFACE]['Flags']:
        raise dbus.exceptions.DBusException('Operation is not supported', name='org.bluez.Error.NotSupported')
    if chrc.props[CHRC_IFACE].get('Notifying'):
        raise dbus.exceptions.DBusException('Operation already in progress', name='org.bluez.Error.InProgress')
    if path in ACQUIRED:
        raise dbus.exceptions.DBusException('Notify acquired', name='org.bluez.Error.NotPermitted')
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ACQUIRED[path] = ours
    fd = dbus.types.UnixFd(theirs)  # dbus-python keeps its own duplicate
    theirs.close()
    # The client closing its end releases the subscription, as in bluetoothd.
    GLib.io_add_watch(ours.fileno(), GLib.IO_HUP | GLib.IO_ERR, _acquired_hup, path)
    return (fd, dbus.UInt16(23))


def _acquired_hup(fd, condition, path):
    sock = ACQUIRED.pop(path, None)
    if sock:
        LOG.append({'method': 'ReleaseAcquired', 'path': path})
        sock.close()
    return False


def _chrc_stop_notify(chrc):
    path = chrc.__dbus_object_path__
    LOG.append({'method': 'StopNotify', 'path': path})
    _maybe_fail(path, 'StopNotify')
    if not chrc.props[CHRC_IFACE].get('Notifying'):
        raise dbus.exceptions.DBusException('No notify session started', name='org.bluez.Error.Failed')
    _props_changed(path, CHRC_IFACE, {'Notifying': dbus.Boolean(False)})


def _desc_read(desc, options):
    path = desc.__dbus_object_path__
    LOG.append({'method': 'ReadValue', 'path': path})
    _maybe_fail(path, 'ReadValue')
    return dbus.Array(desc.props[DESC_IFACE]['Value'], signature='y')


def _desc_write(desc, value, options):
    path = desc.__dbus_object_path__
    LOG.append({'method': 'WriteValue', 'path': path, 'value': bytes(value).hex(), 'type': ''})
    _maybe_fail(path, 'WriteValue')
    if str(desc.props[DESC_IFACE]['UUID']).startswith('00002902'):
        raise dbus.exceptions.DBusException('Write not permitted', name='org.bluez.Error.NotPermitted')
    desc.props[DESC_IFACE]['Value'] = dbus.Array(value, signature='y')


# ---- discovery ----

def _adapter_tick(adapter_path):
    adapter = mockobject.objects.get(adapter_path)
    if not adapter or not adapter.props[ADAPTER_IFACE]['Discovering']:
        TIMERS.pop(adapter_path, None)
        return False
    for path in PENDING.pop(adapter_path, []):
        if path not in mockobject.objects:
            _publish_device(path)
    for path, info in DEVICES.items():
        if info['adapter'] == adapter_path and info['opts'].get('advertising') and path in mockobject.objects:
            dev = mockobject.objects[path]
            if dev.props[DEVICE_IFACE]['Connected']:
                continue
            info['rssi_step'] = info.get('rssi_step', 0) + 1
            changed = {'RSSI': dbus.Int16(info['opts'].get('rssi', -60) - info['rssi_step'] % 3)}
            # Like bluetoothd with DuplicateData=true: every advertisement re-sends its data.
            adv = _adv_payload(info['opts'], info['rssi_step'])
            for key in ('ManufacturerData', 'ServiceData', 'AdvertisingData'):
                if len(adv.get(key, {})) > 0:
                    changed[key] = adv[key]
            if 'TxPower' in adv:
                changed['TxPower'] = adv['TxPower']
            _props_changed(path, DEVICE_IFACE, changed)
    return True


def _start_discovery(adapter):
    path = adapter.__dbus_object_path__
    LOG.append({'method': 'StartDiscovery', 'path': path})
    _maybe_fail(path, 'StartDiscovery')
    if adapter.props[ADAPTER_IFACE]['Discovering']:
        raise dbus.exceptions.DBusException('Operation already in progress', name='org.bluez.Error.InProgress')
    _props_changed(path, ADAPTER_IFACE, {'Discovering': dbus.Boolean(True)})
    if path not in TIMERS:
        TIMERS[path] = GLib.timeout_add(100, _adapter_tick, path)


def _stop_discovery(adapter):
    path = adapter.__dbus_object_path__
    LOG.append({'method': 'StopDiscovery', 'path': path})
    _maybe_fail(path, 'StopDiscovery')
    if not adapter.props[ADAPTER_IFACE]['Discovering']:
        raise dbus.exceptions.DBusException('No discovery started', name='org.bluez.Error.Failed')
    _props_changed(path, ADAPTER_IFACE, {'Discovering': dbus.Boolean(False)})
    # bluetoothd invalidates RSSI/TxPower when discovery stops (spec §1.5.2).
    for dpath, info in DEVICES.items():
        if info['adapter'] == path and dpath in mockobject.objects:
            dev = mockobject.objects[dpath]
            if 'RSSI' in dev.props[DEVICE_IFACE]:
                _props_changed(dpath, DEVICE_IFACE, {}, ['RSSI'])


def _set_discovery_filter(adapter, filt):
    LOG.append({'method': 'SetDiscoveryFilter', 'path': adapter.__dbus_object_path__,
                'filter': {str(k): (bool(v) if isinstance(v, dbus.Boolean) else
                                    int(v) if isinstance(v, (dbus.Int16, dbus.UInt16, dbus.Int32)) else
                                    [str(x) for x in v] if isinstance(v, dbus.Array) else str(v))
                           for k, v in filt.items()}})
    _maybe_fail(adapter.__dbus_object_path__, 'SetDiscoveryFilter')


# ---- control interface ----

@dbus.service.method(FIXTURE_IFACE, in_signature='o', out_signature='')
def FixAdapter(self, adapter_path):
    adapter = mockobject.objects[adapter_path]
    adapter.AddMethods(ADAPTER_IFACE, [
        ('StartDiscovery', '', '', _start_discovery),
        ('StopDiscovery', '', '', _stop_discovery),
        ('SetDiscoveryFilter', 'a{sv}', '', _set_discovery_filter),
    ])
    # A client may have started discovery with the template's own StartDiscovery before this ran
    # (bluetoothd restarted under a running gateway): advertise from now on as well.
    if adapter.props[ADAPTER_IFACE].get('Discovering') and adapter_path not in TIMERS:
        TIMERS[adapter_path] = GLib.timeout_add(100, _adapter_tick, adapter_path)


@dbus.service.method(FIXTURE_IFACE, in_signature='sss', out_signature='o')
def AddLeDevice(self, adapter, address, opts_json):
    opts = json.loads(opts_json)
    adapter_path = '/org/bluez/' + adapter
    path = adapter_path + '/dev_' + address.upper().replace(':', '_')
    DEVICES[path] = {'adapter': adapter_path, 'address': address.upper(), 'opts': opts,
                     'gatt_paths': [], 'chrcs': {}}
    if opts.get('appear_on_discovery'):
        PENDING.setdefault(adapter_path, []).append(path)
    else:
        _publish_device(path)
    return dbus.ObjectPath(path)


@dbus.service.method(FIXTURE_IFACE, in_signature='o', out_signature='')
def RemoveLeDevice(self, path):
    path = str(path)
    _gatt_remove(path)
    if path in mockobject.objects:
        self.RemoveObject(path)
        _interfaces_removed(path, [DEVICE_IFACE])
    DEVICES.pop(path, None)


@dbus.service.method(FIXTURE_IFACE, in_signature='osssu', out_signature='')
def InjectError(self, path, method, name, message, count):
    FAULTS.setdefault((str(path), str(method)), []).append([str(name), str(message), int(count)])


@dbus.service.method(FIXTURE_IFACE, in_signature='o', out_signature='')
def LinkLoss(self, dev_path):
    """The peer goes out of range: Connected and ServicesResolved drop, GATT cache kept."""
    dev = mockobject.objects[str(dev_path)]
    if dev.props[DEVICE_IFACE]['Connected']:
        _props_changed(str(dev_path), DEVICE_IFACE, {'ServicesResolved': dbus.Boolean(False)})
        _props_changed(str(dev_path), DEVICE_IFACE, {'Connected': dbus.Boolean(False)})


@dbus.service.method(FIXTURE_IFACE, in_signature='osdu', out_signature='')
def InjectDelay(self, path, method, seconds, count):
    DELAYS[(str(path), str(method))] = [float(seconds), int(count)]


@dbus.service.method(FIXTURE_IFACE, in_signature='ossuuu', out_signature='u')
def Notify(self, dev_path, svc_uuid, chrc_uuid, count, start_seq, size):
    """Emits count notifications carrying a 32-bit little-endian sequence number, if subscribed."""
    cpath = DEVICES[str(dev_path)]['chrcs'].get((_long_uuid(svc_uuid), _long_uuid(chrc_uuid)))
    if cpath in ACQUIRED:
        # One packet per notification.  bluetoothd drops on a full socket; the fixture blocks
        # instead so that tests are deterministic.
        sock = ACQUIRED[cpath]
        for i in range(int(count)):
            sock.send((int(start_seq) + i).to_bytes(4, 'little') + bytes(max(0, int(size) - 4)))
        return dbus.UInt32(count)
    if not cpath or not mockobject.objects[cpath].props[CHRC_IFACE].get('Notifying'):
        return dbus.UInt32(0)
    chrc = mockobject.objects[cpath]
    conn = chrc.connection
    pad = bytes(max(0, int(size) - 4))
    for i in range(int(count)):
        seq = int(start_seq) + i
        value = dbus.ByteArray(seq.to_bytes(4, 'little') + pad)
        msg = dbus.lowlevel.SignalMessage(cpath, dbus.PROPERTIES_IFACE, 'PropertiesChanged')
        msg.append(CHRC_IFACE, {'Value': value}, dbus.Array([], signature='s'), signature='sa{sv}as')
        conn.send_message(msg)
    chrc.props[CHRC_IFACE]['Value'] = dbus.Array(value, signature='y')
    return dbus.UInt32(count)


@dbus.service.method(FIXTURE_IFACE, in_signature='ossuu', out_signature='')
def NotifyDuringNextRead(self, dev_path, svc_uuid, chrc_uuid, count, start_seq):
    cpath = DEVICES[str(dev_path)]['chrcs'][(_long_uuid(svc_uuid), _long_uuid(chrc_uuid))]
    READ_NOTIFY[cpath] = (int(count), int(start_seq))


@dbus.service.method(FIXTURE_IFACE, in_signature='oss', out_signature='b')
def DropAcquired(self, dev_path, svc_uuid, chrc_uuid):
    """bluetoothd closes the AcquireNotify socket (reconnect, MTU change)."""
    cpath = DEVICES[str(dev_path)]['chrcs'][(_long_uuid(svc_uuid), _long_uuid(chrc_uuid))]
    sock = ACQUIRED.pop(cpath, None)
    if not sock:
        return False
    sock.close()
    return True


@dbus.service.method(FIXTURE_IFACE, in_signature='osss', out_signature='')
def SetValue(self, dev_path, svc_uuid, chrc_uuid, hexvalue):
    cpath = DEVICES[str(dev_path)]['chrcs'][(_long_uuid(svc_uuid), _long_uuid(chrc_uuid))]
    mockobject.objects[cpath].props[CHRC_IFACE]['Value'] = _bytes(hexvalue)


@dbus.service.method(FIXTURE_IFACE, in_signature='osss', out_signature='b')
def NotifyValue(self, dev_path, svc_uuid, chrc_uuid, hexvalue):
    """The characteristic takes a new value and notifies it, if subscribed (the demo's sensors)."""
    cpath = DEVICES[str(dev_path)]['chrcs'][(_long_uuid(svc_uuid), _long_uuid(chrc_uuid))]
    chrc = mockobject.objects[cpath]
    chrc.props[CHRC_IFACE]['Value'] = _bytes(hexvalue)
    if not chrc.props[CHRC_IFACE].get('Notifying'):
        return False
    _props_changed(cpath, CHRC_IFACE, {'Value': _bytes(hexvalue)})
    return True


@dbus.service.method(FIXTURE_IFACE, in_signature='o', out_signature='s')
def DeviceState(self, dev_path):
    dev_path = str(dev_path)
    out = {'exists': dev_path in mockobject.objects}
    if out['exists']:
        p = mockobject.objects[dev_path].props[DEVICE_IFACE]
        out['connected'] = bool(p['Connected'])
        out['resolved'] = bool(p['ServicesResolved'])
    info = DEVICES.get(dev_path)
    out['notifying'] = {}
    if info:
        for (s, c), cpath in info['chrcs'].items():
            cp = mockobject.objects[cpath].props[CHRC_IFACE]
            if 'Notifying' in cp:
                out['notifying'][c] = bool(cp['Notifying'])
    return json.dumps(out)


@dbus.service.method(FIXTURE_IFACE, in_signature='', out_signature='s')
def GetLog(self):
    return json.dumps(LOG)


@dbus.service.method(FIXTURE_IFACE, in_signature='', out_signature='')
def ClearLog(self):
    del LOG[:]
    for o in mockobject.objects.values():
        o.call_log = []
