# SPDX-License-Identifier: MIT
"""An nRF5 SDK peripheral with buttonless Secure DFU and its bootloader, as a
dbusmock template loaded after bluez_gatt_template.py.  Control interface
org.nrfgw.FotaTarget on '/': NrfDfuAddDevice, NrfDfuState, NrfDfuFirmware.

Reproduced from the nRF5 SDK 15-17 (ble_dfu_unbonded.c, nrf_dfu_ble.c,
nrf_dfu_req_handler.c, nrf_dfu_validation.c, dfu-cc.proto):
  * the application: DFU service 0xFE59 with the buttonless characteristic
    8EC90003-… (write, indicate); a write while indications are off fails
    with ATT error 0xFD (CCCD improperly configured); [01] is answered
    [20 01 01] and the device resets into the bootloader: its link drops, it
    no longer accepts connections, and the bootloader ("DfuTarg") advertises
    at the address whose least significant octet is one higher (wrapping,
    no carry), seen when the client scans; [02 len name] answers success;
  * the bootloader: control point 8EC90001-… (write, notify; 0xFD without
    notifications) and packet 8EC90002-… (write without response, at most
    MTU-3 bytes as bluetoothd allows); Select (command object max 512, data
    object max 4096, offset and CRC-32 of what was received), Create (an
    unexecuted data object is discarded; a new command object discards the
    update; a data object needs an executed init packet: 0x08; bad sizes:
    0x03/0x04), Set PRN and a receipt (Calculate CRC response) every N
    packets since Create or Set PRN, Calculate CRC, Execute (incomplete
    object: 0x08);
  * the init packet is parsed as dfu-cc.proto (Packet, Command,
    SignedCommand, InitCommand, Hash): not decodable or not an application
    update → extended error 0x04, hardware version → 0x06, firmware version
    lower than the running one (unless is_debug) → 0x05, hash type other
    than SHA-256 → 0x09, app_size larger than the bank → 0x0D, and, with
    require_signature, an unsigned packet → 0x08;
  * after the last data object, the SHA-256 of the firmware (stored
    little-endian in the init packet, as nrfutil writes it) is checked
    (0x0C on mismatch); on success the bootloader disconnects and goes away
    and the application comes back at its own address with the new
    firmware and version (Device Information firmware revision 0x2A26);
  * what was received survives a disconnection from the bootloader, so a
    client can resume with Select; executing the init packet again has no
    effect (the firmware received is kept), as in the SDK.
For tests, never_back makes the updated application never start (nothing
advertises after the bootloader has taken the image), and
drop_after_execute=N drops the bootloader's link right after it has answered
the Execute of the Nth data object.
Not reproduced: signatures are not verified (no keys), SoftDevice and
bootloader updates, bonded buttonless DFU (8EC90004-…: the bootloader keeps
the address and the bond), the bootloader's inactivity timeout, flash write
timing and the delays it causes, the legacy DFU service (0x1530), MTU and
ping requests beyond a plain answer.
"""

import hashlib
import json
import os
import struct
import sys
import zlib

import dbus
from dbusmock import mockobject
from gi.repository import GLib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import target_common as tc  # noqa: E402

FIXTURE_IFACE = 'org.nrfgw.FotaTarget'
DFU_SVC = 'fe59'
CONTROL_POINT = '8ec90001-f315-4f60-9fb8-838830daea50'
PACKET = '8ec90002-f315-4f60-9fb8-838830daea50'
BUTTONLESS = '8ec90003-f315-4f60-9fb8-838830daea50'
DIS = '180a'
DIS_FW_REV = '2a26'
CMD_MAX = 512
DATA_MAX = 4096

TARGETS = {}  # device path (application's and bootloader's) → NrfDfuTarget


def shift_address(address, delta):
    octets = address.upper().split(':')
    octets[-1] = '%02X' % ((int(octets[-1], 16) + delta) & 0xff)
    return ':'.join(octets)


# ---- protobuf (dfu-cc.proto), enough for an init packet ----

def _varint(b, pos):
    n, shift = 0, 0
    while True:
        if pos >= len(b) or shift > 63:
            raise ValueError('truncated varint')
        c = b[pos]
        pos += 1
        n |= (c & 0x7f) << shift
        shift += 7
        if not c & 0x80:
            return n, pos


def pb_decode(b):
    """{field: [values]}: varints as ints, length-delimited as bytes."""
    out, pos = {}, 0
    while pos < len(b):
        key, pos = _varint(b, pos)
        field, wt = key >> 3, key & 7
        if wt == 0:
            v, pos = _varint(b, pos)
        elif wt == 2:
            n, pos = _varint(b, pos)
            if pos + n > len(b):
                raise ValueError('truncated field')
            v, pos = bytes(b[pos:pos + n]), pos + n
        elif wt in (1, 5):
            n = 8 if wt == 1 else 4
            if pos + n > len(b):
                raise ValueError('truncated field')
            v, pos = bytes(b[pos:pos + n]), pos + n
        else:
            raise ValueError('wire type')
        out.setdefault(field, []).append(v)
    return out


def _enc_varint(n):
    out = bytearray()
    while True:
        out.append((n & 0x7f) | (0x80 if n > 0x7f else 0))
        n >>= 7
        if not n:
            return bytes(out)


def pb_field(field, v):
    if isinstance(v, (bytes, bytearray)):
        return _enc_varint(field << 3 | 2) + _enc_varint(len(v)) + bytes(v)
    return _enc_varint(field << 3) + _enc_varint(int(v))


def make_init_packet(firmware, fw_version, hw_version=52, sd_req=(0xfffe,), signed=True, hash_type=3,
                     is_debug=False):
    """An init packet as nrfutil writes one for an application update: the
    SHA-256 of the firmware, reversed (little-endian); signed with a dummy
    ECDSA-P256 signature (the double does not verify it)."""
    digest = hashlib.sha256(firmware).digest()[::-1]
    init = pb_field(1, fw_version) + pb_field(2, hw_version) \
        + pb_field(3, b''.join(_enc_varint(s) for s in sd_req)) + pb_field(4, 0) + pb_field(5, 0) \
        + pb_field(6, 0) + pb_field(7, len(firmware)) + pb_field(8, pb_field(1, hash_type) + pb_field(2, digest)) \
        + (pb_field(9, 1) if is_debug else b'')
    command = pb_field(1, 1) + pb_field(2, init)
    if signed:
        return pb_field(2, pb_field(1, command) + pb_field(2, 0) + pb_field(3, bytes(64)))
    return pb_field(1, command)


def parse_init_packet(b):
    """(InitCommand fields, signed) or ValueError."""
    pkt = pb_decode(b)
    signed = 2 in pkt
    if signed:
        sc = pb_decode(pkt[2][0])
        if 1 not in sc or 2 not in sc or 3 not in sc:
            raise ValueError('signed command incomplete')
        command = pb_decode(sc[1][0])
    elif 1 in pkt:
        command = pb_decode(pkt[1][0])
    else:
        raise ValueError('no command')
    if command.get(1, [None])[0] != 1 or 2 not in command:
        raise ValueError('not an init command')
    init = pb_decode(command[2][0])
    fields = {k: v[0] for k, v in init.items()}
    if 8 in fields:
        h = pb_decode(fields[8])
        fields['hash_type'], fields['hash'] = h.get(1, [None])[0], h.get(2, [b''])[0]
    return fields, signed


# ---- the device ----

class NrfDfuTarget:
    def __init__(self, path, address, opts):
        self.app_path = path
        self.address = address.upper()
        self.boot_address = shift_address(address, 1)
        self.boot_path = tc.dev_path(self.boot_address)
        self.mtu = int(opts.get('mtu', 247))
        self.version = int(opts.get('version', 1))
        self.hw_version = int(opts.get('hw_version', 52))
        self.bank_size = int(opts.get('bank_size', 512 * 1024))
        self.reset_ms = int(opts.get('reset_ms', 100))
        self.require_signature = bool(opts.get('require_signature', False))
        self.never_back = bool(opts.get('never_back', False))
        self.drop_after_execute = int(opts.get('drop_after_execute', 0))
        self.data_executes = 0
        self.firmware = hashlib.shake_256(b'app %d' % self.version).digest(int(opts.get('app_size', 8192)))
        self.mode = 'app'
        self.updates = 0
        self.receipts = 0
        self.results = []  # (op, result[, ext]) the bootloader answered
        self.prn = self.prn_cnt = 0  # a setting of the transport, kept across objects
        self.reset_progress()

    def reset_progress(self):
        self.init = bytearray()
        self.init_size = 0
        self.init_cmd = None
        self.fw = bytearray()
        self.fw_exec = 0
        self.obj_start = 0
        self.obj_size = 0
        self.current = None

    # -- writes --

    def on_write(self, path, value, wtype):
        uuid = tc.chrc_uuid(path)
        if uuid == BUTTONLESS:
            self.buttonless(path, value)
        elif uuid == CONTROL_POINT:
            if not mockobject.objects[path].props[tc.CHRC_IFACE].get('Notifying'):
                raise tc.att_error(0xfd)
            rsp = self.control(value)
            self.results.append(list(rsp[1:]))
            if rsp[1] == 0x04 and rsp[2] == 0x01 and self.current == 2:
                self.data_executes += 1
                if self.data_executes == self.drop_after_execute:
                    GLib.idle_add(self._send_and_drop, path, rsp)
                    return
            GLib.idle_add(self._send, path, rsp)
        elif uuid == PACKET:
            tc.check_command_size(value, wtype, self.mtu)
            self.packet(value)

    def _send(self, path, data):
        tc.notify(path, data, self.mtu)
        return False

    def _send_and_drop(self, path, data):
        """The answer to an Execute goes out, then the link drops (out of range)."""
        tc.notify(path, data, self.mtu)
        if tc.connected(self.boot_path):
            tc.fixture()['LinkLoss'](None, dbus.ObjectPath(self.boot_path))
        return False

    def buttonless(self, path, value):
        if not mockobject.objects[path].props[tc.CHRC_IFACE].get('Notifying'):
            raise tc.att_error(0xfd)  # indications not enabled
        op = value[0] if value else 0
        if op == 0x01:
            GLib.idle_add(self._send, path, bytes([0x20, 0x01, 0x01]))
            GLib.timeout_add(self.reset_ms, self.enter_bootloader)
        elif op == 0x02 and len(value) >= 2 and value[1] == len(value) - 2:
            GLib.idle_add(self._send, path, bytes([0x20, 0x02, 0x01]))
        else:
            GLib.idle_add(self._send, path, bytes([0x20, op, 0x02]))

    def enter_bootloader(self):
        g = tc.fixture()
        g['LinkLoss'](None, dbus.ObjectPath(self.app_path))
        # The application no longer advertises: connecting to it fails.
        g['FAULTS'][(self.app_path, 'Connect')] = [['org.bluez.Error.Failed', 'le-connection-abort-by-local', 10 ** 9]]
        self.mode = 'bootloader'
        if self.boot_path not in g['DEVICES']:
            g['AddLeDevice'](mockobject.objects['/'], 'hci0', self.boot_address, json.dumps(
                {'name': 'DfuTarg', 'gatt': boot_gatt(self.mtu), 'uuids': [DFU_SVC], 'address_type': 'random',
                 'appear_on_discovery': True, 'advertising': True}))
            g['TARGETS'][self.boot_path] = self
            TARGETS[self.boot_path] = self
        return False

    def crc_of(self, obj_type):
        data = self.init if obj_type == 1 else self.fw
        return struct.pack('<II', len(data), zlib.crc32(bytes(data)) & 0xffffffff)

    def control(self, v):
        op = v[0] if v else 0

        def rsp(result, payload=b''):
            return bytes([0x60, op, result]) + payload

        def ext(code):
            return rsp(0x0b, bytes([code]))

        if op == 0x02 and len(v) == 3:  # Set PRN
            self.prn = self.prn_cnt = v[1] | v[2] << 8
            return rsp(0x01)
        if op == 0x06 and len(v) == 2:  # Select
            if v[1] not in (1, 2):
                return rsp(0x07)
            self.current = v[1]
            return rsp(0x01, struct.pack('<I', CMD_MAX if v[1] == 1 else DATA_MAX) + self.crc_of(v[1]))
        if op == 0x01 and len(v) == 6:  # Create
            kind, size = v[1], struct.unpack_from('<I', v, 2)[0]
            if kind == 1:
                if size == 0 or size > CMD_MAX:
                    return rsp(0x04)
                self.reset_progress()
                self.init_size, self.current = size, 1
                self.prn_cnt = self.prn
                return rsp(0x01)
            if kind == 2:
                if self.init_cmd is None:
                    return rsp(0x08)
                if size == 0 or size > DATA_MAX:
                    return rsp(0x03)
                if self.fw_exec + size > self.init_cmd.get(7, 0):
                    return rsp(0x04)
                del self.fw[self.fw_exec:]  # an object not executed is discarded
                self.obj_start, self.obj_size, self.current = self.fw_exec, size, 2
                self.prn_cnt = self.prn
                return rsp(0x01)
            return rsp(0x07)
        if op == 0x03 and len(v) == 1:  # Calculate CRC
            return rsp(0x01, self.crc_of(self.current or 1))
        if op == 0x04 and len(v) == 1:  # Execute
            if self.current == 1:
                if self.init_size == 0 or len(self.init) != self.init_size:
                    return rsp(0x08)
                code = self.validate_init()
                return rsp(0x01) if code is None else ext(code)
            if self.current == 2:
                if len(self.fw) - self.obj_start != self.obj_size or self.obj_size == 0:
                    return rsp(0x08)
                self.fw_exec = len(self.fw)
                self.obj_size = 0
                if self.fw_exec == self.init_cmd.get(7, 0):
                    if hashlib.sha256(bytes(self.fw)).digest()[::-1] != self.init_cmd.get('hash'):
                        return ext(0x0c)
                    GLib.timeout_add(self.reset_ms, self.activate)
                return rsp(0x01)
            return rsp(0x08)
        if op == 0x07:  # MTU get
            return rsp(0x01, struct.pack('<H', self.mtu))
        if op == 0x09 and len(v) == 2:  # ping
            return rsp(0x01, v[1:2])
        if op == 0x00:  # protocol version
            return rsp(0x01, b'\x01')
        return rsp(0x02)

    def validate_init(self):
        if self.init_cmd is not None:
            # Executed before (a client resuming after a lost link): no effect, the firmware
            # received so far stays (nrf_dfu_validation_init_cmd_execute(), m_valid_init_cmd_present).
            return None
        try:
            cmd, signed = parse_init_packet(bytes(self.init))
        except (ValueError, IndexError):
            return 0x04
        if self.require_signature and not signed:
            return 0x08
        if cmd.get(4, 0) != 0 or not cmd.get(7):  # an application update, with its size
            return 0x04
        if cmd.get(2) is not None and cmd[2] != self.hw_version:
            return 0x06
        if not cmd.get(9) and cmd.get(1, 0) < self.version:
            return 0x05
        if cmd.get('hash_type') != 3 or len(cmd.get('hash', b'')) != 32:
            return 0x09
        if cmd[7] > self.bank_size:
            return 0x0d
        self.init_cmd = cmd
        self.fw = bytearray()
        self.fw_exec = 0
        return None

    def packet(self, value):
        if self.current == 1:
            self.init += value[:max(0, self.init_size - len(self.init))]
        elif self.current == 2:
            self.fw += value[:max(0, self.obj_start + self.obj_size - len(self.fw))]
        if self.prn:
            self.prn_cnt -= 1
            if self.prn_cnt <= 0:
                self.prn_cnt = self.prn
                self.receipts += 1
                cp = tc.chrc_path(self.boot_path, DFU_SVC, CONTROL_POINT)
                GLib.idle_add(self._send, cp, bytes([0x60, 0x03, 0x01]) + self.crc_of(self.current or 1))

    def activate(self):
        """The bootloader swaps the image in and starts the application."""
        g = tc.fixture()
        if tc.connected(self.boot_path):
            g['LinkLoss'](None, dbus.ObjectPath(self.boot_path))
        g['RemoveLeDevice'](mockobject.objects['/'], dbus.ObjectPath(self.boot_path))
        g['TARGETS'].pop(self.boot_path, None)
        TARGETS.pop(self.boot_path, None)
        self.firmware = bytes(self.fw)
        self.version = int(self.init_cmd.get(1, 0))
        self.updates += 1
        self.mode = 'app'
        self.reset_progress()
        if self.never_back:
            self.mode = 'dead'  # the new application does not start: nothing advertises any more
            return False
        g['FAULTS'].pop((self.app_path, 'Connect'), None)
        tc.set_value(self.app_path, DIS, DIS_FW_REV, str(self.version).encode())
        return False

    def state(self):
        return {'mode': self.mode, 'version': self.version, 'address': self.address,
                'bootloader': self.boot_address, 'firmware_len': len(self.firmware),
                'firmware_sha256': hashlib.sha256(self.firmware).hexdigest(), 'updates': self.updates,
                'init_valid': self.init_cmd is not None, 'received': len(self.fw), 'executed': self.fw_exec,
                'receipts': self.receipts, 'results': self.results[-8:]}


def app_gatt(opts):
    return [
        {'uuid': DIS, 'characteristics': [{'uuid': DIS_FW_REV, 'flags': ['read'],
                                           'value': str(int(opts.get('version', 1))).encode().hex()}]},
        {'uuid': DFU_SVC, 'characteristics': [{'uuid': BUTTONLESS, 'flags': ['write', 'indicate'],
                                               'descriptors': [{'uuid': '2902', 'value': '0000'}]}]},
    ]


def boot_gatt(mtu):
    return [{'uuid': DFU_SVC, 'characteristics': [
        {'uuid': CONTROL_POINT, 'flags': ['write', 'notify'], 'mtu': mtu,
         'descriptors': [{'uuid': '2902', 'value': '0000'}]},
        {'uuid': PACKET, 'flags': ['write-without-response'], 'mtu': mtu}]}]


def load(mock, _parameters):
    pass


@dbus.service.method(FIXTURE_IFACE, in_signature='sss', out_signature='o')
def NrfDfuAddDevice(self, adapter, address, opts_json):
    """An nRF5 SDK application with buttonless DFU: opts version (int), app_size, mtu, hw_version,
    bank_size, reset_ms, require_signature, name, never_back (the updated application never starts:
    the device stays silent after the bootloader has taken the image), drop_after_execute (the
    bootloader's link drops right after it answered the Execute of that data object)."""
    opts = json.loads(opts_json)
    path, target = tc.add_device(self, adapter, address, opts, 'nrf5-' + address[-2:], app_gatt(opts), [DFU_SVC],
                                 lambda p: NrfDfuTarget(p, address, opts))
    TARGETS[path] = target
    return dbus.ObjectPath(path)


@dbus.service.method(FIXTURE_IFACE, in_signature='o', out_signature='s')
def NrfDfuState(self, path):
    return json.dumps(TARGETS[str(path)].state())


@dbus.service.method(FIXTURE_IFACE, in_signature='o', out_signature='ay')
def NrfDfuFirmware(self, path):
    return dbus.ByteArray(TARGETS[str(path)].firmware)
