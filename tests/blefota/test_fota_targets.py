# SPDX-License-Identifier: MIT
"""The target-side doubles of BLE FOTA (tests/ble/smp_target.py and
nrfdfu_target.py), driven directly over the private bus as a BLE central
would drive the real devices through bluetoothd: no daemon involved.  The
client side here is written from the protocol descriptions (MCUmgr SMP,
nRF5 SDK Secure DFU), independently of the doubles' own code paths.

Run one test with FOTA_TARGET_TEST=<name> (ctest does), all without it."""

import hashlib
import os
import struct
import sys
import time
import unittest
import zlib

import dbus
import dbus.mainloop.glib
from gi.repository import GLib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'ble'))
from blefixture import Fixture  # noqa: E402
import nrfdfu_target as dfu  # noqa: E402
import smp_target as smp  # noqa: E402

A = 'C0:FF:EE:00:01:01'
B = 'C0:FF:EE:00:01:FF'
CHRC = 'org.bluez.GattCharacteristic1'
DEV = 'org.bluez.Device1'
KB = 1024
DIS_FW_REV = '00002a26-0000-1000-8000-00805f9b34fb'


class Central:
    """A BLE central on the private bus: connect, resolve, subscribe, write,
    collect notifications (PropertiesChanged on the characteristic)."""

    def __init__(self, address):
        dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
        self.bus = dbus.bus.BusConnection(address)
        self.notes = {}
        self.bus.add_signal_receiver(self._changed, 'PropertiesChanged', dbus.PROPERTIES_IFACE, 'org.bluez',
                                     path_keyword='path')

    def close(self):
        self.bus.close()

    def _changed(self, iface, changed, invalidated, path=None):
        if iface == CHRC and 'Value' in changed:
            self.notes.setdefault(str(path), []).append(bytes(changed['Value']))

    def pump(self, seconds=0.0):
        ctx = GLib.MainContext.default()
        end = time.time() + seconds
        while True:
            while ctx.iteration(False):
                pass
            if time.time() >= end:
                return
            time.sleep(0.001)

    def wait(self, pred, timeout=10.0, what='condition'):
        end = time.time() + timeout
        while time.time() < end:
            self.pump()
            v = pred()
            if v:
                return v
            time.sleep(0.0005)
        raise TimeoutError(what)

    def obj(self, path, iface):
        return dbus.Interface(self.bus.get_object('org.bluez', path), iface)

    def prop(self, path, iface, name):
        return self.obj(path, dbus.PROPERTIES_IFACE).Get(iface, name)

    def objects(self):
        return self.obj('/', 'org.freedesktop.DBus.ObjectManager').GetManagedObjects()

    def connect(self, dev_path):
        self.obj(dev_path, DEV).Connect()
        self.wait(lambda: bool(self.prop(dev_path, DEV, 'ServicesResolved')), what='services resolved')

    def chrc(self, dev_path, uuid):
        for path, ifaces in self.objects().items():
            if str(path).startswith(dev_path + '/') and CHRC in ifaces and str(ifaces[CHRC]['UUID']) == uuid:
                return str(path)
        raise KeyError(uuid)

    def subscribe(self, path):
        self.obj(path, CHRC).StartNotify()

    def write(self, path, data, wtype):
        self.obj(path, CHRC).WriteValue(dbus.ByteArray(bytes(data)), {'type': wtype})

    def take(self, path):
        return self.notes.pop(path, [])

    def next_note(self, path, timeout=10.0):
        self.wait(lambda: self.notes.get(path), timeout, 'notification on ' + path)
        return self.notes[path].pop(0)


class SmpClient:
    """MCUmgr SMP over the characteristic: one request in flight, response
    put together from notifications by the header's length."""

    def __init__(self, central, path, mtu, version=1):
        self.c, self.path, self.mtu, self.version, self.seq = central, path, mtu, version, 0
        self.rx = b''

    def request(self, op, group, cid, body):
        payload = smp.cbor_encode(body, indefinite=False)
        self.seq = (self.seq + 1) & 0xff
        frame = bytes([op | self.version << 3, 0]) + struct.pack('>HH', len(payload), group) + \
            bytes([self.seq, cid]) + payload
        assert len(frame) <= self.mtu - 3, len(frame)
        self.c.write(self.path, frame, 'command')
        rx = b''
        while len(rx) < 8 or len(rx) < 8 + (rx[2] << 8 | rx[3]):
            rx += self.c.next_note(self.path)
        assert len(rx) == 8 + (rx[2] << 8 | rx[3]), 'notification past the frame'
        assert rx[0] & 7 == op + 1 and rx[6] == self.seq and rx[7] == cid and rx[4:6] == struct.pack('>H', group)
        assert (rx[0] >> 3) & 3 == self.version
        rsp, end = smp.cbor_decode(rx, 8)
        assert end == len(rx)
        return rsp

    def chunk_max(self, off, first_fields):
        """Largest data length whose frame fits one write of mtu-3 bytes."""
        base = {**first_fields, 'off': off, 'data': b''}
        fixed = 8 + len(smp.cbor_encode(base, indefinite=False)) - 1
        room = self.mtu - 3 - fixed
        n = room - 1
        while n > 0 and len(smp._head(2, n)) + n > room:
            n -= 1
        return n

    def upload(self, image, start_off=0, sha=True):
        digest = hashlib.sha256(image).digest()
        off, rsp, requests = start_off, None, 0
        while off < len(image):
            first = {'image': 0, 'len': len(image), **({'sha': digest} if sha else {})} if off == 0 else {}
            n = min(self.chunk_max(off, first), len(image) - off)
            rsp = self.request(2, 1, 1, {**first, 'off': off, 'data': image[off:off + n]})
            requests += 1
            assert 'err' not in rsp and rsp.get('rc', 0) == 0, rsp
            assert rsp['off'] == off + n, (rsp, off, n)
            off = rsp['off']
        return rsp, requests

    def images(self):
        rsp = self.request(0, 1, 0, {})
        return {i['slot']: i for i in rsp['images']}


class TargetsTest(unittest.TestCase):
    def setUp(self):
        self.f = Fixture()
        self.mock = self.f.mock
        self.fx = dbus.Interface(self.mock.conn.get_object('org.bluez', '/'), 'org.nrfgw.FotaTarget')
        self.c = Central(self.f.bus.address)

    def tearDown(self):
        self.c.close()
        self.f.close()

    # ---- MCUmgr SMP ----

    def smp_device(self, address=A, mtu=247, version=(1, 0, 0)):
        path = str(self.fx.SmpAddDevice('hci0', address, smp.json.dumps({'mtu': mtu, 'version': list(version),
                                                                         'reset_ms': 50})))
        self.c.connect(path)
        ch = self.c.chrc(path, smp.SMP_CHR)
        self.assertEqual(int(self.c.prop(ch, CHRC, 'MTU')), mtu)
        self.c.subscribe(ch)
        return path, ch

    def smp_state(self, path):
        return smp.json.loads(self.fx.SmpState(path))

    def reconnect_after_reset(self, path):
        self.c.wait(lambda: not self.c.prop(path, DEV, 'Connected'), what='link drop on reset')
        self.c.connect(path)

    def test_smp_upload_256k_test_confirm(self):
        path, ch = self.smp_device()
        cl = SmpClient(self.c, ch, 247, version=1)
        before = cl.images()
        self.assertEqual(list(before), [0])
        self.assertEqual(before[0]['version'], '1.0.0')
        self.assertTrue(before[0]['active'] and before[0]['confirmed'])

        image = smp.make_image((1, 1, 0), 256 * KB, seed=7)
        t0 = time.time()
        last, requests = cl.upload(image)
        elapsed = time.time() - t0
        print('SMP upload: %d bytes in %d requests of at most %d bytes, %.1f s, %.0f B/s'
              % (len(image), requests, 244, elapsed, len(image) / elapsed))
        self.assertEqual(last, {'off': len(image), 'match': True})
        # Byte-identical storage in the secondary slot.
        self.assertEqual(bytes(self.fx.SmpSlot(path, 1)), image)
        listed = cl.images()
        tlv_hash = smp.parse_image(image)[1]
        self.assertEqual(listed[1]['version'], '1.1.0')
        self.assertEqual(listed[1]['hash'], tlv_hash)
        self.assertFalse(listed[1]['pending'] or listed[1]['active'])

        # Test: pending until the reset, then running but not confirmed.
        rsp = cl.request(2, 1, 0, {'hash': tlv_hash, 'confirm': False})
        self.assertTrue({i['slot']: i for i in rsp['images']}[1]['pending'])
        self.assertEqual(cl.request(2, 0, 5, {}), {})
        self.reconnect_after_reset(path)
        self.c.subscribe(ch)
        after = cl.images()
        self.assertEqual(after[0]['version'], '1.1.0')
        self.assertTrue(after[0]['active'])
        self.assertFalse(after[0]['confirmed'])
        self.assertEqual(after[1]['version'], '1.0.0')
        self.assertTrue(after[1]['confirmed'])
        self.assertEqual(bytes(self.c.prop(self.c.chrc(path, DIS_FW_REV), CHRC, 'Value')), b'1.1.0')
        # Confirm the running image: it stays after another reset.
        rsp = cl.request(2, 1, 0, {'confirm': True})
        self.assertTrue({i['slot']: i for i in rsp['images']}[0]['confirmed'])
        cl.request(2, 0, 5, {})
        self.reconnect_after_reset(path)
        self.assertEqual(cl.images()[0]['version'], '1.1.0')
        st = self.smp_state(path)
        self.assertEqual((st['boots'], st['swap'], st['version']), (2, 'none', '1.1.0'))
        self.assertEqual(st['slots'][0]['sha256'], hashlib.sha256(image).hexdigest())

    def test_smp_revert_without_confirm(self):
        path, ch = self.smp_device()
        cl = SmpClient(self.c, ch, 247, version=0)  # the original protocol: "rc" in every answer
        image = smp.make_image((2, 0, 0), 32 * KB)
        last, _ = cl.upload(image)
        self.assertEqual(last, {'rc': 0, 'off': len(image), 'match': True})
        cl.request(2, 1, 0, {'hash': smp.parse_image(image)[1], 'confirm': False})
        self.assertEqual(cl.request(2, 0, 5, {}), {'rc': 0})
        self.reconnect_after_reset(path)
        self.assertEqual(cl.images()[0]['version'], '2.0.0')
        # Not confirmed: the next reset goes back to the old image.
        self.fx.SmpReset(path)
        self.reconnect_after_reset(path)
        listed = cl.images()
        self.assertEqual(listed[0]['version'], '1.0.0')
        self.assertTrue(listed[0]['confirmed'])

    def test_smp_offsets_and_errors(self):
        # MTU 140: a first chunk with "sha" must still carry the 32-byte MCUboot header (with MTU 100
        # it would hold 24 bytes, and the device answers 22, IMG_MGMT_ERR_INVALID_IMAGE_HEADER).
        path, ch = self.smp_device(mtu=140)
        cl = SmpClient(self.c, ch, 140, version=1)
        image = smp.make_image((1, 2, 0), 8 * KB)
        digest = hashlib.sha256(image).digest()
        n = cl.chunk_max(0, {'image': 0, 'len': len(image), 'sha': digest})
        first = cl.request(2, 1, 1, {'image': 0, 'len': len(image), 'sha': digest, 'off': 0, 'data': image[:n]})
        self.assertEqual(first, {'off': n})
        # Out of order (ahead, then behind): dropped, answered with success and the offset expected.
        for wrong in (n + 50, n - 10):
            rsp = cl.request(2, 1, 1, {'off': wrong, 'data': image[wrong:wrong + 20]})
            self.assertEqual(rsp, {'off': n})
        self.assertEqual(self.smp_state(path)['upload']['off'], n)
        # The same "sha" at offset 0 resumes instead of starting over.
        rsp = cl.request(2, 1, 1, {'image': 0, 'len': len(image), 'sha': digest, 'off': 0, 'data': image[:n]})
        self.assertEqual(rsp, {'off': n})
        # The rest, with one chunk whose bytes differ from the image: "match" is false at the end.
        off = n
        while off < len(image):
            k = min(cl.chunk_max(off, {}), len(image) - off)
            rsp = cl.request(2, 1, 1, {'off': off, 'data': bytes(k) if off == n else image[off:off + k]})
            self.assertEqual(rsp['off'], off + k)
            off = rsp['off']
        self.assertIs(rsp['match'], False)
        # Test of a hash no slot has: IMG_MGMT_ERR_HASH_NOT_FOUND (8), in SMP v2 form...
        self.assertEqual(cl.request(2, 1, 0, {'hash': bytes(32), 'confirm': False}), {'err': {'group': 1, 'rc': 8}})
        # ... and MGMT_ERR_EUNKNOWN (1) for an original-protocol client (img_mgmt_translate_error_code).
        v1 = SmpClient(self.c, ch, 140, version=0)
        self.assertEqual(v1.request(2, 1, 0, {'hash': bytes(32), 'confirm': False}), {'rc': 1})
        # A test of the running image (33), a short hash (24), a first chunk without the MCUboot magic (23).
        running = cl.images()[0]['hash']
        self.assertEqual(cl.request(2, 1, 0, {'hash': running, 'confirm': False}), {'err': {'group': 1, 'rc': 33}})
        self.assertEqual(cl.request(2, 1, 0, {'hash': b'\x01', 'confirm': False}), {'err': {'group': 1, 'rc': 24}})
        self.assertEqual(cl.request(2, 1, 1, {'image': 0, 'len': 64, 'off': 0, 'data': bytes(40)}),
                         {'err': {'group': 1, 'rc': 23}})
        self.assertEqual(v1.request(2, 1, 1, {'image': 0, 'len': 64, 'off': 0, 'data': bytes(40)}), {'rc': 1})
        # Data beyond the announced length.
        cl.request(2, 1, 1, {'image': 0, 'len': 64, 'off': 0, 'data': image[:40]})
        self.assertEqual(cl.request(2, 1, 1, {'off': 40, 'data': bytes(30)}), {'err': {'group': 1, 'rc': 31}})
        # A write longer than MTU-3 is refused by bluetoothd, as is a write request.
        with self.assertRaises(dbus.exceptions.DBusException) as e:
            self.c.write(ch, bytes(138), 'command')
        self.assertEqual(e.exception.get_dbus_name(), 'org.bluez.Error.NotSupported')
        with self.assertRaises(dbus.exceptions.DBusException) as e:
            self.c.write(ch, bytes(10), 'request')
        self.assertEqual(e.exception.get_dbus_name(), 'org.bluez.Error.NotSupported')

    def test_smp_request_split_over_writes(self):
        path, ch = self.smp_device(mtu=23)
        cl = SmpClient(self.c, ch, 23, version=1)
        frame = bytes([0x08, 0, 0, 1, 0, 1, 0x42, 0]) + b'\xa0'  # image state read, v2, seq 0x42
        for i in range(0, len(frame), 4):
            self.c.write(ch, frame[i:i + 4], 'command')
        rx = b''
        while len(rx) < 8 or len(rx) < 8 + (rx[2] << 8 | rx[3]):
            note = self.c.next_note(ch)
            self.assertLessEqual(len(note), 20)
            rx += note
        self.assertEqual(rx[6], 0x42)
        self.assertEqual(smp.cbor_decode(rx, 8)[0]['images'][0]['version'], '1.0.0')
        self.assertEqual(cl.images()[0]['slot'], 0)

    # ---- nRF5 SDK Secure DFU ----

    def dfu_device(self, address=A, version=1, mtu=247):
        path = str(self.fx.NrfDfuAddDevice('hci0', address, dfu.json.dumps({'version': version, 'mtu': mtu,
                                                                            'reset_ms': 50})))
        self.c.connect(path)
        return path

    def enter_bootloader(self, app):
        bl = self.c.chrc(app, dfu.BUTTONLESS)
        with self.assertRaises(dbus.exceptions.DBusException) as e:  # indications off: ATT error 0xFD
            self.c.write(bl, b'\x01', 'request')
        self.assertIn('0xfd', str(e.exception))
        self.c.subscribe(bl)
        self.c.write(bl, b'\x01', 'request')
        self.assertEqual(self.c.next_note(bl), bytes([0x20, 0x01, 0x01]))
        self.c.wait(lambda: not self.c.prop(app, DEV, 'Connected'), what='application resets')
        with self.assertRaises(dbus.exceptions.DBusException):
            self.c.obj(app, DEV).Connect()  # the application is gone
        boot_addr = dfu.shift_address(self.mock_address(app), 1)
        boot = self.mock.path(boot_addr)
        adapter = self.c.obj('/org/bluez/hci0', 'org.bluez.Adapter1')
        adapter.StartDiscovery()
        self.c.wait(lambda: boot in self.c.objects(), what='bootloader advertising at address + 1')
        adapter.StopDiscovery()
        self.c.connect(boot)
        cp = self.c.chrc(boot, dfu.CONTROL_POINT)
        pk = self.c.chrc(boot, dfu.PACKET)
        self.c.subscribe(cp)
        return boot, cp, pk

    @staticmethod
    def mock_address(path):
        return path.rsplit('dev_', 1)[1].replace('_', ':')

    def cp(self, cp, req):
        self.c.write(cp, req, 'request')
        rsp = self.c.next_note(cp)
        self.assertEqual(rsp[:2], bytes([0x60, req[0]]))
        return rsp[2], rsp[3:]

    def stream(self, cp, pk, data, crc_start, off_start, prn, packet, corrupt_at=None):
        """Packets with receipt checks; returns (crc, receipts seen, receipt mismatches)."""
        crc, sent, count, receipts, bad = crc_start, off_start, 0, 0, 0
        for i in range(0, len(data), packet):
            p = data[i:i + packet]
            wire = bytes([p[0] ^ 0xff]) + p[1:] if corrupt_at is not None and i <= corrupt_at < i + packet else p
            self.c.write(pk, wire, 'command')
            crc = zlib.crc32(p, crc)
            sent += len(p)
            count += 1
            if prn and count % prn == 0:
                note = self.c.next_note(cp)
                self.assertEqual(note[:3], bytes([0x60, 0x03, 0x01]))
                off, dcrc = struct.unpack('<II', note[3:])
                self.assertEqual(off, sent)
                receipts += 1
                bad += dcrc != crc
        return crc, receipts, bad

    def send_object(self, cp, pk, kind, data, crc_start, off_start, prn=10, packet=244, corrupt_at=None):
        self.assertEqual(self.cp(cp, struct.pack('<BBI', 0x01, kind, len(data))), (0x01, b''))
        crc, receipts, bad = self.stream(cp, pk, data, crc_start, off_start, prn, packet, corrupt_at)
        res, payload = self.cp(cp, b'\x03')
        self.assertEqual(res, 0x01)
        off, dcrc = struct.unpack('<II', payload)
        self.assertEqual(off, off_start + len(data))
        return crc, dcrc, receipts, bad

    def dfu(self, cp, pk, init, fw, prn=10):
        """The whole transfer as the nRF DFU libraries run it; returns the last Execute's answer."""
        self.assertEqual(self.cp(cp, struct.pack('<BH', 0x02, prn)), (0x01, b''))
        res, payload = self.cp(cp, b'\x06\x01')
        self.assertEqual(res, 0x01)
        self.assertEqual(struct.unpack('<III', payload)[0], 512)
        crc, dcrc, _, _ = self.send_object(cp, pk, 1, init, 0, 0, prn)
        self.assertEqual(dcrc, crc)
        res = self.cp(cp, b'\x04')
        if res != (0x01, b''):
            return res
        res, payload = self.cp(cp, b'\x06\x02')
        data_max, off, _ = struct.unpack('<III', payload)
        self.assertEqual((data_max, off), (4096, 0))
        crc, receipts = 0, 0
        for start in range(0, len(fw), data_max):
            obj = fw[start:start + data_max]
            crc, dcrc, r, bad = self.send_object(cp, pk, 2, obj, crc, start, prn)
            receipts += r
            self.assertEqual((dcrc, bad), (crc, 0))
            res = self.cp(cp, b'\x04')
            if res != (0x01, b''):
                return res
        self.assertEqual(receipts, sum((min(data_max, len(fw) - s) + 243) // 244 // prn
                                       for s in range(0, len(fw), data_max)))
        return res

    def test_nrfdfu_update(self):
        app = self.dfu_device(version=3)
        fw = hashlib.shake_256(b'new firmware').digest(100 * KB + 123)
        init = dfu.make_init_packet(fw, fw_version=4)
        boot, cp, pk = self.enter_bootloader(app)
        self.assertEqual(boot, self.mock.path('C0:FF:EE:00:01:02'))
        t0 = time.time()
        self.assertEqual(self.dfu(cp, pk, init, fw, prn=10), (0x01, b''))
        print('nRF5 DFU: %d bytes in %.1f s, %.0f B/s' % (len(fw), time.time() - t0, len(fw) / (time.time() - t0)))
        # The bootloader goes away, the application comes back at its own address with the new image.
        self.c.wait(lambda: boot not in self.c.objects(), what='bootloader gone')
        self.c.wait(lambda: dfu.json.loads(self.fx.NrfDfuState(app))['mode'] == 'app', what='application back')
        self.c.connect(app)
        self.assertEqual(bytes(self.fx.NrfDfuFirmware(app)), fw)
        self.assertEqual(bytes(self.c.prop(self.c.chrc(app, DIS_FW_REV), CHRC, 'Value')), b'4')
        st = dfu.json.loads(self.fx.NrfDfuState(app))
        self.assertEqual((st['version'], st['updates']), (4, 1))

    def test_nrfdfu_bad_crc_and_refusals(self):
        app = self.dfu_device(address=B, version=3)
        boot, cp, pk = self.enter_bootloader(app)
        # The bootloader of C0:FF:EE:00:01:FF is at ...:01:00: the octet wraps, nothing carries.
        self.assertEqual(boot, self.mock.path('C0:FF:EE:00:01:00'))
        fw = hashlib.shake_256(b'fw').digest(10 * KB)
        # An init packet for an older version: extended error 0x05 (FW version failure).
        self.assertEqual(self.dfu(cp, pk, dfu.make_init_packet(fw, fw_version=2), fw), (0x0b, b'\x05'))
        # A data object without a valid init packet: operation not permitted.
        self.assertEqual(self.cp(cp, struct.pack('<BBI', 0x01, 2, 4096)), (0x08, b''))
        # Garbage as init packet: 0x04 (init command invalid).
        self.assertEqual(self.dfu(cp, pk, b'\x12\x34garbage', fw), (0x0b, b'\x04'))

        # A corrupted packet: the receipt's CRC is that of what arrived, not what was meant.
        init = dfu.make_init_packet(fw, fw_version=4)
        self.assertEqual(self.cp(cp, b'\x02\x04\x00'), (0x01, b''))
        self.cp(cp, b'\x06\x01')
        crc, dcrc, _, _ = self.send_object(cp, pk, 1, init, 0, 0, prn=4)
        self.assertEqual(dcrc, crc)
        self.assertEqual(self.cp(cp, b'\x04'), (0x01, b''))
        self.cp(cp, b'\x06\x02')
        crc1, dcrc, receipts, bad = self.send_object(cp, pk, 2, fw[:4096], 0, 0, prn=4, corrupt_at=1000)
        self.assertNotEqual(dcrc, crc1)
        self.assertGreater(bad, 0)
        # Executing it anyway: the whole image then fails verification at the end (0x0C) ...
        self.assertEqual(self.cp(cp, b'\x04'), (0x01, b''))
        crc = dcrc
        for start in range(4096, len(fw), 4096):
            crc, dcrc, _, _ = self.send_object(cp, pk, 2, fw[start:start + 4096], crc, start, prn=4)
            self.assertEqual(self.cp(cp, b'\x04'), (0x01, b'') if start + 4096 < len(fw) else (0x0b, b'\x0c'))
        # ... and the application is not replaced.
        st = dfu.json.loads(self.fx.NrfDfuState(app))
        self.assertEqual((st['mode'], st['updates'], st['version']), ('bootloader', 0, 3))

        # Resume after a lost link: Select reports what the bootloader kept.
        self.c.obj(boot, DEV).Disconnect()
        self.c.connect(boot)
        self.c.subscribe(cp)
        res, payload = self.cp(cp, b'\x06\x02')
        self.assertEqual(struct.unpack('<III', payload)[1], len(fw))
        # A fresh command object discards it all; then a correct update goes through.
        self.assertEqual(self.dfu(cp, pk, init, fw, prn=4), (0x01, b''))
        self.c.wait(lambda: dfu.json.loads(self.fx.NrfDfuState(app))['mode'] == 'app', what='application back')
        self.assertEqual(bytes(self.fx.NrfDfuFirmware(app)), fw)


if __name__ == '__main__':
    only = os.environ.get('FOTA_TARGET_TEST')
    argv = [sys.argv[0], '-v'] + (['TargetsTest.' + only] if only else [])
    unittest.main(argv=argv)
