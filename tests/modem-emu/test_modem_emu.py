#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The emulated nRF91 modem checked from the outside with the openssl CLI.

Drives modem-emu-cli (one AT command per line on stdin, raw responses on
stdout) and checks what nrf91-at.md promises: the %KEYGEN CSR verifies and
its COSE_Sign1 carries SHA-256(CSR DER) under the device identity key, a %JWT
verifies with the public key of that CSR, %ATTESTTOKEN is signed by the same
identity key, the %CMNG hashes are SHA-256 over the exact text written, and
518/519/514/513 appear exactly where the modem gives them.
"""
import base64
import hashlib
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
import unittest

CLI = os.environ.get("MODEM_EMU_CLI") or os.path.join(
    os.environ.get("NRFGW_BUILD_DIR", "build"), "tests", "modem-emu", "modem-emu-cli")
UUID = "50503642-3239-4f86-80c4-06122e299623"
IMEI = "352656100367872"
TAG = 16842753
FINAL = re.compile(rb"\r\n(OK|ERROR|\+CME ERROR: \d+)\r\n")


# --- a minimal CBOR decoder (RFC 8949), enough for COSE and the modem's payloads ---

class Tag:
    def __init__(self, tag, value):
        self.tag, self.value = tag, value

    def __repr__(self):
        return f"Tag({self.tag}, {self.value!r})"


def cbor_decode(data):
    value, end = _cbor_item(data, 0)
    if end != len(data):
        raise ValueError(f"trailing bytes after CBOR item: {len(data) - end}")
    return value


def _cbor_item(d, i):
    ib = d[i]
    major, info = ib >> 5, ib & 31
    i += 1
    if info < 24:
        arg = info
    elif info in (24, 25, 26, 27):
        n = 1 << (info - 24)
        arg = int.from_bytes(d[i:i + n], "big")
        # the modem's encoder is canonical: the shortest form, always
        if (n == 1 and arg < 24) or (n > 1 and arg < (1 << (4 * n))):
            raise ValueError("non-minimal CBOR integer encoding")
        i += n
    else:
        raise ValueError("indefinite lengths are not used by the modem")
    if major == 0:
        return arg, i
    if major == 1:
        return -1 - arg, i
    if major in (2, 3):
        raw = d[i:i + arg]
        return (bytes(raw) if major == 2 else raw.decode()), i + arg
    if major == 4:
        out = []
        for _ in range(arg):
            v, i = _cbor_item(d, i)
            out.append(v)
        return out, i
    if major == 5:
        out = {}
        for _ in range(arg):
            k, i = _cbor_item(d, i)
            v, i = _cbor_item(d, i)
            out[k] = v
        return out, i
    if major == 6:
        v, i = _cbor_item(d, i)
        return Tag(arg, v), i
    if major == 7 and info == 22:
        return None, i
    raise ValueError(f"unsupported CBOR item 0x{ib:02x}")


def cbor_head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | info]) + n.to_bytes(size, "big")
    raise ValueError(n)


def sig_structure(protected, payload):
    """COSE Sig_structure for COSE_Sign1: ["Signature1", protected, h'', payload]."""
    return (cbor_head(4, 4) + cbor_head(3, 10) + b"Signature1" + cbor_head(2, len(protected)) + protected +
            cbor_head(2, 0) + cbor_head(2, len(payload)) + payload)


def b64url_decode(s):
    if "=" in s or "+" in s or "/" in s:
        raise ValueError("not unpadded base64url: " + s)
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def raw_to_der_sig(raw):
    def integer(b):
        b = b.lstrip(b"\0") or b"\0"
        if b[0] & 0x80:
            b = b"\0" + b
        return b"\x02" + bytes([len(b)]) + b
    body = integer(raw[:32]) + integer(raw[32:])
    return b"\x30" + bytes([len(body)]) + body


class Modem:
    def __init__(self, state_dir, *args, env=None):
        self.proc = subprocess.Popen([CLI, "--state-dir", state_dir, *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env)
        self.pending = b""  # output after the last match (URCs that follow a final result)

    def send(self, text, timeout=10):
        """Sends one command (it may contain CR/LF inside quotes); returns the raw response."""
        self.proc.stdin.write(text.encode() + b"\r\n")
        self.proc.stdin.flush()
        return self.read_until(FINAL, timeout)

    def read_until(self, pattern, timeout=10):
        """Reads up to the end of the first match; what follows is kept for the next read."""
        buf, self.pending = self.pending, b""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while not pattern.search(buf):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(repr(buf))
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise EOFError(repr(buf))
                buf += chunk
        end = pattern.search(buf).end()
        buf, self.pending = buf[:end], buf[end:]
        return buf.decode()

    def driver(self, text, expect=None):
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()
        if expect:
            return self.read_until(expect)
        return None

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)
        self.proc.stdout.close()


def quoted_value(resp, prefix):
    m = re.fullmatch(r'\r\n' + re.escape(prefix) + r': "([^"]*)"\r\n\r\nOK\r\n', resp)
    if not m:
        raise AssertionError(f"unexpected response to {prefix}: {resp!r}")
    return m.group(1)


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=False)


class ModemEmuTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="modem-emu-py-")
        env = dict(os.environ, MODEM_EMU_REG_DELAY_MS="200")
        self.modem = Modem(os.path.join(self.dir, "state"), "--uuid", UUID, "--imei", IMEI, env=env)
        self.assertEqual(self.modem.send("AT+CMEE=1"), "\r\nOK\r\n")

    def tearDown(self):
        self.modem.close()
        shutil.rmtree(self.dir)

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, data):
        with open(self.path(name), "wb") as f:
            f.write(data)
        return self.path(name)

    def identity_pub(self):
        r = openssl("pkey", "-in", os.path.join(self.dir, "state", "identity-key.pem"), "-pubout")
        self.assertEqual(r.returncode, 0, r.stderr)
        return self.write("identity-pub.pem", r.stdout)

    def verify_es256(self, pub_pem, message, raw_sig):
        self.assertEqual(len(raw_sig), 64)
        sig = self.write("sig.der", raw_to_der_sig(raw_sig))
        msg = self.write("msg.bin", message)
        r = openssl("dgst", "-sha256", "-verify", pub_pem, "-signature", sig, msg)
        return r.returncode == 0 and b"Verified OK" in r.stdout

    def keygen(self, tag=TAG, attrs=None):
        cmd = f"AT%KEYGEN={tag},2,0" + (f',"{attrs}"' if attrs is not None else "")
        value = quoted_value(self.modem.send(cmd), "%KEYGEN")
        body, cose = value.split(".")
        return b64url_decode(body), b64url_decode(cose)

    def check_cose_sign1(self, cose, payload=None):
        """Checks the COSE_Sign1 of nrf91-at.md §3.3/§4 and returns its payload (or the detached one)."""
        msg = cbor_decode(cose)
        self.assertIsInstance(msg, Tag)
        self.assertEqual(msg.tag, 18)
        protected, unprotected, embedded, sig = msg.value
        self.assertEqual(protected, b"\xa1\x01\x26")  # {1: -7}
        self.assertEqual(cbor_decode(protected), {1: -7})
        self.assertEqual(unprotected, {4: b"\x21"})  # kid = bstr(CBOR(-2)), the identity key
        if payload is None:
            self.assertIsInstance(embedded, bytes)
            payload = embedded
        else:
            self.assertIsNone(embedded)  # detached
        self.assertTrue(self.verify_es256(self.identity_pub(), sig_structure(protected, payload), sig),
                        "COSE signature does not verify with the identity key")
        return payload

    # --- %KEYGEN ---

    def test_keygen_csr_and_cose(self):
        self.assertEqual(self.modem.send("AT+CFUN=4"), "\r\nOK\r\n")
        csr, cose = self.keygen()
        der = self.write("csr.der", csr)

        r = openssl("req", "-inform", "DER", "-in", der, "-verify", "-noout")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"verify OK", r.stdout + r.stderr)
        r = openssl("req", "-inform", "DER", "-in", der, "-noout", "-text")
        text = r.stdout.decode()
        self.assertRegex(text, r"Subject: CN\s?=\s?" + UUID)
        self.assertIn("prime256v1", text)
        self.assertIn("Digital Signature, Non Repudiation, Key Encipherment, Key Agreement", text)
        # the modem's quirk: ecdsa-with-SHA256 with explicit NULL parameters
        self.assertIn(bytes.fromhex("06082a8648ce3d0403020500"), csr)

        payload = cbor_decode(self.check_cose_sign1(cose))
        self.assertIsInstance(payload, Tag)
        self.assertEqual(payload.tag, 55799)
        pid, uuid, sec_tag, digest, nonce = payload.value
        self.assertEqual(pid, 9)
        self.assertEqual(uuid, bytes.fromhex(UUID.replace("-", "")))
        self.assertEqual(sec_tag, b"\x1a\x01\x01\x00\x01")
        self.assertEqual(cbor_decode(sec_tag), TAG)
        self.assertEqual(digest, hashlib.sha256(csr).digest())
        self.assertEqual(len(nonce), 16)

        # the key is in the store (type 2), listed but not readable
        lst = self.modem.send(f"AT%CMNG=1,{TAG}")
        self.assertRegex(lst, rf'^\r\n%CMNG: {TAG},2,"[0-9A-F]{{64}}"\r\n\r\nOK\r\n$')
        self.assertEqual(self.modem.send(f"AT%CMNG=2,{TAG},2"), "\r\n+CME ERROR: 514\r\n")
        # and its public half is the one in the CSR
        out = self.modem.driver(f"!cred {TAG} 2", re.compile(rb">>>\n$"))
        key_pem = out[out.index("-----BEGIN"):out.index(">>>")]
        self.assertEqual(hashlib.sha256(key_pem.encode()).hexdigest().upper(), re.search(r'"(\w+)"', lst).group(1))
        pub_from_key = openssl("pkey", "-pubout", data=key_pem.encode()).stdout
        pub_from_csr = openssl("req", "-inform", "DER", "-in", der, "-pubkey", "-noout").stdout
        self.assertEqual(pub_from_key, pub_from_csr)

    def test_keygen_attributes(self):
        self.assertEqual(self.modem.send("AT+CFUN=0"), "\r\nOK\r\n")
        csr, cose = self.keygen(tag=42, attrs="O=Nordic Semiconductor,L=PDX,C=no,CN=nrf-352656100367872")
        r = openssl("req", "-inform", "DER", "-in", self.write("csr.der", csr), "-noout", "-subject",
                    "-nameopt", "RFC2253")
        self.assertEqual(r.stdout.decode().strip(), "subject=CN=nrf-352656100367872,C=no,L=PDX,O=Nordic Semiconductor")
        payload = cbor_decode(self.check_cose_sign1(cose))
        self.assertEqual(payload.value[2], b"\x18\x2a")  # CBOR(42)
        self.assertEqual(self.modem.send('AT%KEYGEN=43,2,0,"XX=y"'), "\r\nERROR\r\n")

    def test_keygen_public_key(self):
        self.assertEqual(self.modem.send("AT+CFUN=4"), "\r\nOK\r\n")
        value = quoted_value(self.modem.send("AT%KEYGEN=7,2,1"), "%KEYGEN")
        body, cose = (b64url_decode(p) for p in value.split("."))
        r = openssl("pkey", "-pubin", "-inform", "DER", "-in", self.write("pub.der", body), "-noout", "-text")
        self.assertEqual(r.returncode, 0, r.stderr)
        payload = cbor_decode(self.check_cose_sign1(cose))
        self.assertEqual(payload.value[0], 8)
        self.assertEqual(payload.value[3], hashlib.sha256(body).digest())

    # --- %JWT ---

    def check_jwt(self, jwt, pub_pem):
        parts = jwt.split(".")
        self.assertEqual(len(parts), 3)
        self.assertTrue(self.verify_es256(pub_pem, f"{parts[0]}.{parts[1]}".encode(), b64url_decode(parts[2])),
                        "JWT signature does not verify")
        header_raw, claims_raw = b64url_decode(parts[0]), b64url_decode(parts[1])
        # the modem pads with spaces so no '=' padding is needed
        self.assertEqual(len(header_raw) % 3, 0)
        self.assertEqual(len(claims_raw) % 3, 0)
        header, claims = json.loads(header_raw), json.loads(claims_raw)
        self.assertEqual(list(header), ["typ", "alg", "kid"])
        self.assertEqual(header["typ"], "JWT")
        self.assertEqual(header["alg"], "ES256")
        self.assertRegex(header["kid"], r"^[0-9a-f]{64}$")
        self.assertEqual(claims["iss"], "nRF9160." + UUID)
        fw_uuid = self.modem.send("AT%XMODEMUUID").split(": ")[1].split("\r\n")[0]
        self.assertRegex(claims["jti"], r"^nRF9160\." + fw_uuid + r"\.[0-9a-f]{32}$")
        return header, claims

    def test_jwt_with_keygen_key(self):
        self.assertEqual(self.modem.send("AT+CFUN=4"), "\r\nOK\r\n")
        csr, _ = self.keygen()
        r = openssl("req", "-inform", "DER", "-in", self.write("csr.der", csr), "-pubkey", "-noout")
        pub = self.write("csr-pub.pem", r.stdout)

        # no time yet (not registered): exp/iat are left out
        jwt = quoted_value(self.modem.send(f'AT%JWT=0,600,"{UUID}","",{TAG},2'), "%JWT")
        _, claims = self.check_jwt(jwt, pub)
        self.assertEqual(claims["sub"], UUID)
        self.assertNotIn("exp", claims)
        self.assertNotIn("aud", claims)

        # registered: the network gave the time
        self.assertEqual(self.modem.send("AT+CFUN=1"), "\r\nOK\r\n")
        self.modem.driver("!sleep 400")
        self.assertRegex(self.modem.send("AT%CCLK?"), r'^\r\n%CCLK: "\d\d/\d\d/\d\d,\d\d:\d\d:\d\d\+00",0\r\n\r\nOK\r\n$')
        before = int(time.time())
        jwt = quoted_value(self.modem.send(f'AT%JWT=0,600,"my-device","urn:aud",{TAG},2'), "%JWT")
        header, claims = self.check_jwt(jwt, pub)
        self.assertEqual(list(claims), ["iss", "jti", "sub", "aud", "iat", "exp"])
        self.assertEqual(claims["sub"], "my-device")
        self.assertEqual(claims["aud"], "urn:aud")
        self.assertTrue(before - 2 <= claims["iat"] <= int(time.time()) + 2)
        self.assertEqual(claims["exp"] - claims["iat"], 600)
        spki = openssl("pkey", "-pubin", "-in", pub, "-outform", "DER").stdout
        self.assertEqual(header["kid"], hashlib.sha256(spki).hexdigest())
        # not the identity key
        self.assertFalse(self.verify_es256(self.identity_pub(), jwt.rsplit(".", 1)[0].encode(),
                                           b64url_decode(jwt.rsplit(".", 1)[1])))

    def test_jwt_identity_key(self):
        for cmd in ("AT%JWT", 'AT%JWT=0,0,"",""', "AT%JWT=,", "AT%JWT=0"):
            jwt = quoted_value(self.modem.send(cmd), "%JWT")
            _, claims = self.check_jwt(jwt, self.identity_pub())
            self.assertEqual(list(claims), ["iss", "jti"], cmd)

    def test_jwt_errors(self):
        self.assertEqual(self.modem.send(f'AT%JWT=0,600,"a","",{TAG},2'), "\r\n+CME ERROR: 513\r\n")
        self.assertEqual(self.modem.send('AT%JWT=1,600,"a",""'), "\r\n+CME ERROR: 50\r\n")
        self.assertEqual(self.modem.send("AT+CFUN=4"), "\r\nOK\r\n")
        self.assertEqual(self.modem.send(f'AT%CMNG=0,{TAG},2,"not a key"'), "\r\nOK\r\n")
        self.assertEqual(self.modem.send(f'AT%JWT=0,600,"a","",{TAG},2'), "\r\n+CME ERROR: 514\r\n")

    # --- %ATTESTTOKEN ---

    def test_attesttoken(self):
        challenge = "90115c20ac3f381b520b43c76bd5d99c"
        for cmd, nonce in (("AT%ATTESTTOKEN", None), (f'AT%ATTESTTOKEN="{challenge}"', challenge)):
            value = quoted_value(self.modem.send(cmd), "%ATTESTTOKEN")
            body_b64, cose_b64 = value.split(".")
            body = b64url_decode(body_b64)
            msg = cbor_decode(body)
            self.assertEqual(msg.tag, 55799)
            mtype, uuid, dtype, fw_uuid, n = msg.value
            self.assertEqual(mtype, 1)
            self.assertEqual(uuid, bytes.fromhex(UUID.replace("-", "")))
            self.assertEqual(dtype, 3)
            fw = self.modem.send("AT%XMODEMUUID").split(": ")[1].split("\r\n")[0]
            self.assertEqual(fw_uuid, bytes.fromhex(fw.replace("-", "")))
            self.assertEqual(len(n), 16)
            if nonce:
                self.assertEqual(n, bytes.fromhex(nonce))
            self.check_cose_sign1(b64url_decode(cose_b64), payload=body)
        self.assertEqual(self.modem.send('AT%ATTESTTOKEN="1234"'), "\r\nERROR\r\n")

    # --- %CMNG ---

    def test_cmng_sha(self):
        self.assertEqual(self.modem.send("AT+CFUN=4"), "\r\nOK\r\n")
        certs = []
        for i in range(3):
            r = openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", self.path(f"k{i}.pem"), "-subj", f"/CN=test-{i}", "-days", "1")
            self.assertEqual(r.returncode, 0, r.stderr)
            certs.append(r.stdout.decode())
        texts = {
            0: certs[0] + certs[1],                        # two CAs in one entry, LF
            1: certs[2].replace("\n", "\r\n"),             # CRLF, as nrfcloud-utils sends it
            2: "-----BEGIN PRIVATE KEY-----\nxyz\n-----END PRIVATE KEY-----",  # no final newline
        }
        for t, text in texts.items():
            self.assertEqual(self.modem.send(f'AT%CMNG=0,{TAG},{t},"{text}"'), "\r\nOK\r\n")
        lst = self.modem.send(f"AT%CMNG=1,{TAG}")
        expect = "".join(f'\r\n%CMNG: {TAG},{t},"{hashlib.sha256(x.encode()).hexdigest().upper()}"\r\n'
                         for t, x in texts.items())
        self.assertEqual(lst, expect + "\r\nOK\r\n")
        for t in (0, 1):
            sha = hashlib.sha256(texts[t].encode()).hexdigest().upper()
            self.assertEqual(self.modem.send(f"AT%CMNG=2,{TAG},{t}"),
                             f'\r\n%CMNG: {TAG},{t},"{sha}","{texts[t]}"\r\n\r\nOK\r\n')

    # --- error codes where the modem gives them ---

    def test_error_codes(self):
        s = self.modem.send
        # CFUN=1: writes, deletes and %KEYGEN refused with 518; reads and lists allowed
        self.assertEqual(s("AT+CFUN=1"), "\r\nOK\r\n")
        self.assertEqual(s(f'AT%CMNG=0,{TAG},0,"x"'), "\r\n+CME ERROR: 518\r\n")
        self.assertEqual(s(f"AT%CMNG=3,{TAG},0"), "\r\n+CME ERROR: 518\r\n")
        self.assertEqual(s(f"AT%KEYGEN={TAG},2,0"), "\r\n+CME ERROR: 518\r\n")
        self.assertEqual(s(f"AT%CMNG=1,{TAG}"), "\r\nOK\r\n")
        self.assertEqual(s(f"AT%CMNG=2,{TAG},0"), "\r\n+CME ERROR: 513\r\n")
        # offline: the store is writable
        self.assertEqual(s("AT+CFUN=4"), "\r\nOK\r\n")
        self.assertEqual(s(f"AT%CMNG=3,{TAG},0"), "\r\n+CME ERROR: 513\r\n")
        self.keygen()
        self.assertEqual(s(f"AT%KEYGEN={TAG},2,0"), "\r\n+CME ERROR: 519\r\n")
        self.assertEqual(s(f"AT%CMNG=2,{TAG},2"), "\r\n+CME ERROR: 514\r\n")
        # deleting the key allows a new one
        self.assertEqual(s(f"AT%CMNG=3,{TAG},2"), "\r\nOK\r\n")
        self.keygen()
        # without +CMEE=1 the same failures read ERROR
        self.assertEqual(s("AT+CMEE=0"), "\r\nOK\r\n")
        self.assertEqual(s(f"AT%KEYGEN={TAG},2,0"), "\r\nERROR\r\n")

    # --- +CEREG ---

    def test_cereg(self):
        s = self.modem.send
        self.assertEqual(s("AT+CEREG=5"), "\r\nOK\r\n")
        self.assertEqual(s("AT+CEREG?"), "\r\n+CEREG: 5,0\r\n\r\nOK\r\n")
        self.assertEqual(s("AT+CFUN=1"), "\r\nOK\r\n")
        # the URC comes at the next tick, which the driver runs before the next command
        self.assertEqual(s("AT+CEREG?"), "\r\n+CEREG: 2\r\n\r\n+CEREG: 5,2\r\n\r\nOK\r\n")
        self.assertEqual(s("AT+CESQ"), "\r\n+CESQ: 99,99,255,255,255,255\r\n\r\nOK\r\n")
        self.modem.driver("!sleep 500")
        self.assertEqual(s("AT"), '\r\n+CEREG: 1,"0140","0A0B0C0D",7,,,"11100000","11100000"\r\n\r\nOK\r\n')
        self.assertEqual(s("AT+CEREG?"),
                         '\r\n+CEREG: 5,1,"0140","0A0B0C0D",7,,,"11100000","11100000"\r\n\r\nOK\r\n')
        self.assertEqual(s("AT+CESQ"), "\r\n+CESQ: 99,99,255,255,31,62\r\n\r\nOK\r\n")
        self.assertEqual(s("AT+CFUN=4"), "\r\nOK\r\n")
        self.modem.driver("!sleep 50")
        self.assertEqual(s("AT"), "\r\n+CEREG: 0\r\n\r\nOK\r\n")


if __name__ == "__main__":
    unittest.main(verbosity=2)
