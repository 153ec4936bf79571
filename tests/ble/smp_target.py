# SPDX-License-Identifier: MIT
"""A Zephyr/MCUboot peripheral with MCUmgr over BLE, as a dbusmock template
loaded after bluez_gatt_template.py.  Control interface org.nrfgw.FotaTarget
on '/': SmpAddDevice, SmpState, SmpSlot, SmpMakeImage.

Reproduced from Zephyr's subsys/mgmt/mcumgr (smp_bt.c, img_mgmt.c,
zephyr_img_mgmt.c, img_mgmt_state.c, os_mgmt.c) and MCUboot's swap:
  * the SMP service 8D53DC1D-… with one characteristic DA2E7828-… flagged
    write-without-response and notify only (a write request is refused by
    bluetoothd as NotSupported, as for the real characteristic); writes
    longer than MTU-3 are refused like bluetoothd does;
  * requests reassembled from several writes by the header's length
    (CONFIG_MCUMGR_TRANSPORT_BT_REASSEMBLY); responses cut into
    notifications of MTU-3 bytes, dropped when the client has not
    subscribed; header echoed (op+1, version, group, sequence, id);
  * CBOR written as zcbor does without CONFIG_ZCBOR_CANONICAL: indefinite
    maps and lists; "rc": 0 in original-protocol (v1) answers as with
    CONFIG_MCUMGR_SMP_LEGACY_RC_BEHAVIOUR, none in SMP v2 answers; errors as
    "err": {"group", "rc"} for v2 and as the translated "rc" for v1
    (img_mgmt_translate_error_code);
  * image upload: "off" required (20), first chunk needs "len" (21) and a
    32-byte MCUboot header (22) with its magic (23), "sha" of at most 32
    bytes (24), an image no larger than the slot (30), a secondary slot not
    pending or holding the image to revert to (9); the same "sha" at off 0
    resumes the upload in progress; a chunk at another offset than expected
    is dropped and answered with success and the offset expected (Zephyr:
    "Invalid offset. Drop the data"); data beyond "len" is 31; the last
    chunk answers "match" (CONFIG_IMG_ENABLE_IMAGE_CHECK);
  * image list: slots with a readable MCUboot header and SHA-256 TLV,
    version as img_mgmt_ver_str, the TLV hash, flags from the swap state;
  * image state set: test needs the hash of the secondary slot (24 without
    hash, 8 for an unknown one, 33 for the active slot, 28 when another
    swap is pending), confirm of the running image; answered with the list;
  * os reset: answered, then after reset_ms the link drops, and MCUboot
    swaps (test: run the new image, revert on the next reset unless
    confirmed; permanent; revert), checking the image's SHA-256 TLV first
    (a corrupt image is not booted); the running version is also the
    Device Information firmware revision (0x2A26); the upload state is lost;
  * the application's own services beside DIS and SMP (opts "gatt"): their
    writes are the application's, MCUmgr sees only those of its characteristic.
Not reproduced: other groups (they answer rc 8, ENOTSUP), multi-image
devices, image erase's flash timing, the upload window of newer clients
(one request at a time is answered, several in flight work), signatures
and encryption of images, direct-XIP and RAM-load modes, the device being
unreachable while it reboots (it reconnects at once), connection
parameters, pairing.
"""

import hashlib
import json
import os
import struct
import sys

import dbus
from gi.repository import GLib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import target_common as tc  # noqa: E402

FIXTURE_IFACE = 'org.nrfgw.FotaTarget'
SMP_SVC = '8d53dc1d-1db7-4cd3-868b-8a527460aa84'
SMP_CHR = 'da2e7828-fbce-4e01-ae9e-261174997c48'
DIS = '180a'
DIS_FW_REV = '2a26'

IMAGE_MAGIC = 0x96f3b83d
TLV_INFO_MAGIC = 0x6907
TLV_SHA256 = 0x10

# img_mgmt_err_code_t → mcumgr_err_t for original-protocol clients (img_mgmt_translate_error_code).
_V1 = {3: 5, 4: 5, 9: 6, 27: 6, 28: 6, 15: 2, 14: 3, 19: 3, 20: 3, 21: 3, 22: 3, 24: 3, 25: 3}

TARGETS = {}  # device path → SmpTarget


# ---- CBOR (RFC 8949), enough for SMP ----

def _head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for ai, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | ai]) + n.to_bytes(size, 'big')
    raise ValueError('too large')


def cbor_encode(v, indefinite=True):
    if isinstance(v, bool):
        return b'\xf5' if v else b'\xf4'
    if isinstance(v, int):
        return _head(0, v) if v >= 0 else _head(1, -1 - v)
    if isinstance(v, (bytes, bytearray)):
        return _head(2, len(v)) + bytes(v)
    if isinstance(v, str):
        b = v.encode()
        return _head(3, len(b)) + b
    if isinstance(v, list):
        body = b''.join(cbor_encode(x, indefinite) for x in v)
        return (b'\x9f' + body + b'\xff') if indefinite else _head(4, len(v)) + body
    if isinstance(v, dict):
        body = b''.join(cbor_encode(k, indefinite) + cbor_encode(x, indefinite) for k, x in v.items())
        return (b'\xbf' + body + b'\xff') if indefinite else _head(5, len(v)) + body
    raise TypeError(type(v))


def cbor_decode(b, pos=0, depth=0):
    """Returns (value, next position); ValueError on malformed input."""
    if depth > 16 or pos >= len(b):
        raise ValueError('truncated')
    ib = b[pos]
    major, ai = ib >> 5, ib & 0x1f
    pos += 1
    if ai < 24:
        n = ai
    elif ai <= 27:
        size = 1 << (ai - 24)
        if pos + size > len(b):
            raise ValueError('truncated')
        n = int.from_bytes(b[pos:pos + size], 'big')
        pos += size
    elif ai == 31 and major in (4, 5):
        n = None
    else:
        raise ValueError('unsupported')
    if major == 0:
        return n, pos
    if major == 1:
        return -1 - n, pos
    if major in (2, 3):
        if pos + n > len(b):
            raise ValueError('truncated')
        s = bytes(b[pos:pos + n])
        return (s if major == 2 else s.decode()), pos + n
    if major in (4, 5):
        out = [] if major == 4 else {}
        i = 0
        while n is None or i < n:
            if n is None:
                if pos >= len(b):
                    raise ValueError('truncated')
                if b[pos] == 0xff:
                    pos += 1
                    break
            k, pos = cbor_decode(b, pos, depth + 1)
            if major == 4:
                out.append(k)
            else:
                out[k], pos = cbor_decode(b, pos, depth + 1)
            i += 1
        return out, pos
    if major == 7 and ai in (20, 21):
        return ai == 21, pos
    if major == 7 and ai == 22:
        return None, pos
    raise ValueError('unsupported')


# ---- MCUboot images ----

def make_image(version, size, seed=0):
    """An MCUboot image of exactly size bytes: 32-byte header, a body, and
    the TLV area with the SHA-256 of header and body (image_tlv_info,
    IMAGE_TLV_SHA256)."""
    major, minor, rev, build = (list(version) + [0, 0, 0, 0])[:4]
    body_len = size - 32 - 4 - 4 - 32
    hdr = struct.pack('<IIHHII', IMAGE_MAGIC, 0, 32, 0, body_len, 0) + struct.pack('<BBHI', major, minor, rev, build) \
        + struct.pack('<I', 0)
    body = hashlib.shake_256(b'%d:%s' % (seed, bytes([major, minor]))).digest(body_len)
    digest = hashlib.sha256(hdr + body).digest()
    tlv = struct.pack('<HH', TLV_INFO_MAGIC, 4 + 4 + 32) + struct.pack('<HH', TLV_SHA256, 32) + digest
    return hdr + body + tlv


def parse_image(data):
    """(version string, TLV hash, hash verifies) of an image, or None (img_mgmt_read_info)."""
    if data is None or len(data) < 32:
        return None
    magic, _load, hdr_size, _prot, img_size, _flags = struct.unpack_from('<IIHHII', data, 0)
    major, minor, rev, build = struct.unpack_from('<BBHI', data, 20)
    if magic != IMAGE_MAGIC:
        return None
    off = hdr_size + img_size
    if off + 4 > len(data):
        return None
    tmagic, ttot = struct.unpack_from('<HH', data, off)
    if tmagic != TLV_INFO_MAGIC or off + ttot > len(data):
        return None
    p, end, digest = off + 4, off + ttot, None
    while p + 4 <= end:
        ttype, tlen = struct.unpack_from('<HH', data, p)
        if ttype == TLV_SHA256 and tlen == 32:
            digest = bytes(data[p + 4:p + 36])
        p += 4 + tlen
    if digest is None:
        return None
    version = '%d.%d.%d' % (major, minor, rev) + ('.%d' % build if build else '')
    return version, digest, hashlib.sha256(bytes(data[:off])).digest() == digest


# ---- the device ----

class SmpTarget:
    def __init__(self, path, opts):
        self.path = path
        self.mtu = int(opts.get('mtu', 247))
        self.slot_size = int(opts.get('slot_size', 512 * 1024))
        self.reset_ms = int(opts.get('reset_ms', 100))
        # The time an answer takes to leave (a connection event or two on a real link); 0: at once.
        self.answer_ms = float(opts.get('answer_ms', 0))
        self.slots = [bytearray(make_image(opts.get('version', [1, 0, 0]), int(opts.get('image_size', 4096)))),
                      None]
        self.swap = 'none'  # none, test, perm, revert (running a tested image that is not confirmed)
        self.upload = None  # dict(off, size, sha)
        self.rx = bytearray()
        self.boots = 0
        self.requests = []
        self.dropped = 0

    # -- transport --

    def on_write(self, path, value, wtype):
        if tc.chrc_uuid(path) != SMP_CHR:
            return  # another characteristic of the application (opts "gatt"): not MCUmgr's
        tc.check_command_size(value, wtype, self.mtu)
        self.rx += value
        while len(self.rx) >= 8:
            need = 8 + (self.rx[2] << 8 | self.rx[3])
            if len(self.rx) < need:
                return
            frame, self.rx = bytes(self.rx[:need]), self.rx[need:]
            rsp = self.handle(frame)
            if rsp is not None:
                # The answer goes out after the write's reply, as a peripheral's would.
                if self.answer_ms > 0:
                    GLib.timeout_add(max(1, round(self.answer_ms)), self._send, path, rsp)
                else:
                    GLib.idle_add(self._send, path, rsp)

    def _send(self, path, rsp):
        if not tc.notify(path, rsp, self.mtu):
            self.dropped += 1
        return False

    def handle(self, frame):
        op, ver = frame[0] & 7, (frame[0] >> 3) & 3
        group, seq, cid = frame[4] << 8 | frame[5], frame[6], frame[7]
        if op not in (0, 2) or ver > 1:
            return None
        req = None
        try:
            req, end = cbor_decode(frame, 8)
            if end != len(frame) or not isinstance(req, dict):
                raise ValueError
            body = self.dispatch(op, ver, group, cid, req)
        except (ValueError, TypeError, UnicodeDecodeError):
            body = {'rc': 3}  # MGMT_ERR_EINVAL
        self.requests.append({'group': group, 'id': cid, 'seq': seq,
                              'off': req.get('off') if isinstance(req, dict) else None,
                              'rsp': {k: v for k, v in body.items() if k != 'images'}})
        payload = cbor_encode(body)
        return bytes([(op + 1) | ver << 3, 0]) + struct.pack('>HH', len(payload), group) + bytes([seq, cid]) + payload

    def error(self, ver, code):
        return {'err': {'group': 1, 'rc': code}} if ver == 1 else {'rc': _V1.get(code, 1)}

    def ok(self, ver, body):
        return dict({'rc': 0}, **body) if ver == 0 else body

    def dispatch(self, op, ver, group, cid, req):
        if group == 1 and cid == 1 and op == 2:
            return self.img_upload(ver, req)
        if group == 1 and cid == 0 and op == 0:
            return self.img_list(ver)
        if group == 1 and cid == 0 and op == 2:
            return self.img_state_set(ver, req)
        if group == 0 and cid == 5 and op == 2:
            GLib.timeout_add(self.reset_ms, self.reboot)
            return self.ok(ver, {})
        if group == 0 and cid == 0:
            return self.ok(ver, {'r': req.get('d', '')})
        return {'rc': 8}  # MGMT_ERR_ENOTSUP

    # -- image group --

    def img_upload(self, ver, req):
        off, data = req.get('off'), req.get('data', b'')
        if not isinstance(off, int):
            return self.error(ver, 20)
        if not isinstance(data, bytes):
            raise ValueError
        if off == 0:
            size, sha = req.get('len'), req.get('sha', b'')
            if len(data) < 32:
                return self.error(ver, 22)
            if not isinstance(size, int):
                return self.error(ver, 21)
            if struct.unpack_from('<I', data, 0)[0] != IMAGE_MAGIC:
                return self.error(ver, 23)
            if len(sha) > 32:
                return self.error(ver, 24)
            if sha and self.upload and self.upload['sha'] == sha:
                return self.ok(ver, {'off': self.upload['off']})  # resume
            if self.swap != 'none':
                return self.error(ver, 9)
            if size > self.slot_size:
                return self.error(ver, 30)
            self.slots[1] = bytearray(b'\xff' * size)  # erased
            self.upload = {'off': 0, 'size': size, 'sha': sha}
        elif self.upload is None or off != self.upload['off']:
            return self.ok(ver, {'off': self.upload['off'] if self.upload else 0})
        elif off + len(data) > self.upload['size']:
            return self.error(ver, 31)
        up = self.upload
        self.slots[1][off:off + len(data)] = data
        up['off'] = off + len(data)
        rsp = {'off': up['off']}
        if up['off'] == up['size']:
            if len(up['sha']) == 32:
                rsp['match'] = hashlib.sha256(bytes(self.slots[1])).digest() == up['sha']
            self.upload = None
        return self.ok(ver, rsp)

    def slot_flags(self, slot):
        # img_mgmt_state_read for one image: slot 0 runs.
        if slot == 0:
            return {'active': True, 'confirmed': self.swap != 'revert', 'pending': False, 'permanent': False}
        return {'active': False, 'confirmed': self.swap == 'revert', 'pending': self.swap in ('test', 'perm'),
                'permanent': self.swap == 'perm'}

    def img_list(self, ver):
        images = []
        for slot in (0, 1):
            info = parse_image(self.slots[slot])
            if info is None:
                continue
            f = self.slot_flags(slot)
            images.append({'slot': slot, 'version': info[0], 'hash': info[1], 'bootable': True,
                           'pending': f['pending'], 'confirmed': f['confirmed'], 'active': f['active'],
                           'permanent': f['permanent']})
        return self.ok(ver, {'images': images, 'splitStatus': 0})

    def img_state_set(self, ver, req):
        h, confirm = req.get('hash', b''), bool(req.get('confirm', False))
        if not h:
            if not confirm:
                return self.error(ver, 24)
            slot = 0
        elif len(h) != 32:
            return self.error(ver, 24)
        else:
            slot = next((s for s in (0, 1) if (parse_image(self.slots[s]) or (None, None))[1] == h), None)
            if slot is None:
                return self.error(ver, 8)
        if slot == 0:
            if not confirm:
                return self.error(ver, 33)
            if self.swap == 'revert':
                self.swap = 'none'
            elif self.swap != 'none':
                return self.error(ver, 28)
        else:
            if self.swap == 'revert' or (self.swap != 'none' and not (self.swap == 'test' and not confirm)):
                return self.error(ver, 28)
            self.swap = 'perm' if confirm else 'test'
        return self.img_list(ver)

    # -- reset --

    def reboot(self):
        """The link drops, MCUboot swaps or reverts, the application runs."""
        tc.fixture()['LinkLoss'](None, dbus.ObjectPath(self.path))
        if self.swap in ('test', 'perm'):
            info = parse_image(self.slots[1])
            if info and info[2]:
                self.slots = [self.slots[1], self.slots[0]]
                self.swap = 'revert' if self.swap == 'test' else 'none'
            else:
                self.swap = 'none'  # MCUboot refuses an image whose hash does not verify
        elif self.swap == 'revert':
            self.slots = [self.slots[1], self.slots[0]]
            self.swap = 'none'
        self.upload = None
        self.rx = bytearray()
        self.boots += 1
        self.publish_version()
        return False

    def version(self):
        return parse_image(self.slots[0])[0]

    def publish_version(self):
        tc.set_value(self.path, DIS, DIS_FW_REV, self.version().encode())

    def state(self):
        slots = []
        for s in (0, 1):
            info = parse_image(self.slots[s])
            slots.append(None if self.slots[s] is None else dict(
                {'size': len(self.slots[s]), 'sha256': hashlib.sha256(bytes(self.slots[s])).hexdigest(),
                 'version': info[0] if info else None, 'hash': info[1].hex() if info else None,
                 'valid': bool(info and info[2])}, **self.slot_flags(s)))
        return {'slots': slots, 'swap': self.swap, 'upload': dict(self.upload, sha=self.upload['sha'].hex())
                if self.upload else None, 'boots': self.boots, 'version': self.version(),
                'requests': len(self.requests), 'dropped': self.dropped,
                'last': self.requests[-1] if self.requests else None}


def gatt(opts):
    return [
        {'uuid': DIS, 'characteristics': [{'uuid': DIS_FW_REV, 'flags': ['read'],
                                           'value': parse_image(make_image(opts.get('version', [1, 0, 0]), 128))[0]
                                           .encode().hex()}]},
        {'uuid': SMP_SVC, 'characteristics': [{'uuid': SMP_CHR, 'flags': ['write-without-response', 'notify'],
                                               'mtu': int(opts.get('mtu', 247)),
                                               'descriptors': [{'uuid': '2902', 'value': '0000'}]}]},
    ] + list(opts.get('gatt', []))  # the application's own services


def load(mock, _parameters):
    pass


@dbus.service.method(FIXTURE_IFACE, in_signature='sss', out_signature='o')
def SmpAddDevice(self, adapter, address, opts_json):
    """A Zephyr device with MCUmgr: opts version [maj,min,rev], mtu, slot_size, image_size, reset_ms, name,
    answer_ms (delay of each answer, as connection events would add),
    gatt (the application's services, in blefixture.GATT's form, beside DIS and SMP)."""
    opts = json.loads(opts_json)
    path, target = tc.add_device(self, adapter, address, opts, 'zephyr-' + address[-2:], gatt(opts), [SMP_SVC],
                                 lambda p: SmpTarget(p, opts))
    TARGETS[path] = target
    return dbus.ObjectPath(path)


@dbus.service.method(FIXTURE_IFACE, in_signature='o', out_signature='s')
def SmpState(self, path):
    return json.dumps(TARGETS[str(path)].state())


@dbus.service.method(FIXTURE_IFACE, in_signature='ou', out_signature='ay')
def SmpSlot(self, path, slot):
    data = TARGETS[str(path)].slots[int(slot)]
    return dbus.ByteArray(bytes(data or b''))


@dbus.service.method(FIXTURE_IFACE, in_signature='o', out_signature='')
def SmpReset(self, path):
    """The device resets by itself (power cycle, watchdog)."""
    TARGETS[str(path)].reboot()
