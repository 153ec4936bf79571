# SPDX-License-Identifier: MIT
"""A stand-in for nRF Cloud's REST API on 127.0.0.1, standard library plus
python3-cryptography.

It serves HTTPS with a test certificate and, for every request, records and
checks what nRF Cloud would check (docs/location.md cites the sources):

* the JWT in "Authorization: Bearer": ES256 (header "alg"), the signature
  verified with the public key of the device certificate given (the one
  `nrfcloud-gatewayctl provision` wrote into the modem), "sub" the device
  id, "iss" "nRF9160.<device UUID>" when expected, "exp" in the future;
* for POST /v1/location/ground-fix, the body against the request schema:
  an object with "lte", a non-empty array of cells, each with integer
  "mcc", "mnc", "eci", "tac", optional integer "earfcn", "adv" (at most
  20512), "rsrp", number "rsrq", "nmr" an array of {"earfcn", "pci"} with
  optional "rsrp", "rsrq", "timeDiff" (nrf_cloud_codec_internal.c's
  nrf_cloud_format_cell_pos_req_json(): required and optional keys).

It answers like nRF Cloud, as told per request by a queue of actions (the
last one repeats):
  "ok"      200 with {"lat", "lon", "uncertainty", "fulfilledWith"}
  "4xx"     400 with {"message": ..., "code": 40000}
  "401"     401 with {"message": ..., "code": 40100}
  "5xx"     503 with {"message": ..., "code": 50300}
  "slow"    nothing for `slow_sec`, then the connection is closed
  "huge"    200 with a body larger than any client limit (1 MiB)
A request whose JWT or body fails the checks gets 400/401 whatever the queue
says, and the failure is recorded.

TLS runs over memory BIOs so the server counts the bytes on the wire of
every connection, TLS records and handshake included.
"""

import base64
import json
import os
import socket
import ssl
import sys
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import https_standin  # noqa: E402

GROUND_FIX = {"lat": 63.42113, "lon": 10.43715, "uncertainty": 1250, "fulfilledWith": "MCELL"}


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def check_jwt(token, public_key, device_id, iss=None, now=None):
    """Returns the claims, or raises ValueError with the reason."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT")
    header = json.loads(b64url_decode(parts[0]))
    claims = json.loads(b64url_decode(parts[1]))
    sig = b64url_decode(parts[2])
    if header.get("alg") != "ES256":
        raise ValueError("alg %r" % header.get("alg"))
    if len(sig) != 64:
        raise ValueError("signature of %d bytes" % len(sig))
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    try:
        public_key.verify(der, (parts[0] + "." + parts[1]).encode(), ec.ECDSA(hashes.SHA256()))
    except Exception:
        raise ValueError("bad signature")
    if claims.get("sub") != device_id:
        raise ValueError("sub %r" % claims.get("sub"))
    if iss is not None and claims.get("iss") != iss:
        raise ValueError("iss %r" % claims.get("iss"))
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= (now or time.time()):
        raise ValueError("exp %r" % exp)
    return claims


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_ground_fix(body):
    """The ground-fix request schema (LTE part); raises ValueError."""
    if not isinstance(body, dict) or set(body) - {"lte", "wifi"} or "lte" not in body:
        raise ValueError("top level %r" % list(body) if isinstance(body, dict) else "not an object")
    cells = body["lte"]
    if not isinstance(cells, list) or not cells:
        raise ValueError("lte not a non-empty array")
    for cell in cells:
        for k in ("mcc", "mnc", "eci", "tac"):
            if not _is_int(cell.get(k)):
                raise ValueError("cell %s missing or not an integer" % k)
        if not 0 <= cell["eci"] <= 0x0FFFFFFF or not 0 <= cell["tac"] <= 0xFFFF:
            raise ValueError("eci/tac out of range")
        if set(cell) - {"mcc", "mnc", "eci", "tac", "earfcn", "adv", "rsrp", "rsrq", "nmr"}:
            raise ValueError("unknown cell keys %r" % sorted(set(cell)))
        for k in ("earfcn", "adv", "rsrp"):
            if k in cell and not _is_int(cell[k]):
                raise ValueError("%s not an integer" % k)
        if "rsrp" in cell and not -157 <= cell["rsrp"] <= -44:
            raise ValueError("rsrp %r out of range" % cell["rsrp"])
        if "rsrq" in cell and not (isinstance(cell["rsrq"], (int, float)) and -34.5 <= cell["rsrq"] <= 3.5):
            raise ValueError("rsrq %r" % cell["rsrq"])
        if "adv" in cell and not 0 <= cell["adv"] <= 20512:
            raise ValueError("adv %r out of range" % cell["adv"])
        for n in cell.get("nmr", []):
            if not {"earfcn", "pci"} <= set(n) <= {"earfcn", "pci", "rsrp", "rsrq", "timeDiff"}:
                raise ValueError("nmr entry %r" % n)
            if not _is_int(n["pci"]) or not 0 <= n["pci"] <= 503 or not _is_int(n["earfcn"]):
                raise ValueError("nmr entry %r" % n)


class Request:
    def __init__(self, method, path, headers, body):
        self.method, self.path, self.headers, self.body = method, path, headers, body
        self.claims = None
        self.problem = None  # why the checks refused it
        self.action = None
        self.status = None
        self.t = time.monotonic()

    @property
    def token(self):
        a = self.headers.get("authorization", "")
        return a[7:] if a.startswith("Bearer ") else None

    def __repr__(self):
        return "<%s %s action=%s status=%s problem=%s>" % (self.method, self.path, self.action, self.status,
                                                          self.problem)


class Connection:
    def __init__(self):
        self.bytes_in = 0
        self.bytes_out = 0
        self.requests = []


class RestStandIn:
    def __init__(self, cert, key, device_cert=None, device_id=None, iss=None, slow_sec=60):
        self.ctx = https_standin.server_context(cert, key)
        self.public_key = None
        if device_cert:
            with open(device_cert, "rb") as f:
                self.public_key = x509.load_pem_x509_certificate(f.read()).public_key()
        self.device_id, self.iss = device_id, iss
        self.slow_sec = slow_sec
        self.actions = ["ok"]
        self.lock = threading.Lock()
        self.requests = []
        self.connections = []
        self.server = https_standin.LoopbackServer(self._serve)
        self.port = self.server.port
        self.stopping = self.server.stopping

    def set_actions(self, *actions):
        with self.lock:
            self.actions = list(actions)

    def _next_action(self):
        with self.lock:
            return self.actions.pop(0) if len(self.actions) > 1 else self.actions[0]

    def wait_requests(self, n, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len([r for r in self.requests if r.status is not None or r.action == "slow"]) >= n:
                    return list(self.requests)
            time.sleep(0.05)
        raise TimeoutError("%d requests wanted, got %r" % (n, self.requests))

    def stop(self):
        self.server.stop()

    # --- the server ---

    def _serve(self, s):
        conn = Connection()
        with self.lock:
            self.connections.append(conn)
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.ctx.wrap_bio(inc, out, server_side=True)
        s.settimeout(0.2)

        def flush():
            data = out.read()
            if data:
                conn.bytes_out += len(data)
                s.sendall(data)

        def fill():
            while not self.stopping.is_set():
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    inc.write_eof()
                    return False
                conn.bytes_in += len(data)
                inc.write(data)
                return True
            return False

        def read():
            while True:
                try:
                    return tls.read(65536)
                except ssl.SSLWantReadError:
                    flush()
                    if not fill():
                        return b""

        try:
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    flush()
                    if not fill():
                        return
            flush()
            head = https_standin.read_request_head(read)
            if head is None:
                return
            length = int(head.headers.get("content-length", "0"))
            rest = head.rest
            while len(rest) < length:
                data = read()
                if not data:
                    return
                rest += data
            req = Request(head.method, head.path, head.headers, rest[:length])
            status, body = self._answer(req)
            conn.requests.append(req)
            with self.lock:
                self.requests.append(req)
            if status is None:  # slow: say nothing, then hang up
                self.stopping.wait(self.slow_sec)
                return
            reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 503: "Service Unavailable"}[status]
            tls.write(("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                       "Connection: close\r\n\r\n" % (status, reason, len(body))).encode() + body)
            flush()
            try:
                tls.unwrap()
            except (ssl.SSLWantReadError, ssl.SSLError):
                pass
            flush()
            req.status = status
        except (OSError, ssl.SSLError, ValueError):
            return

    def _answer(self, req):
        req.action = self._next_action()
        try:
            if self.public_key is not None:
                if not req.token:
                    raise PermissionError("no bearer token")
                try:
                    req.claims = check_jwt(req.token, self.public_key, self.device_id, self.iss)
                except ValueError as e:
                    raise PermissionError(str(e))
            if req.method == "POST" and req.path.split("?")[0] == "/v1/location/ground-fix":
                check_ground_fix(json.loads(req.body))
        except PermissionError as e:
            req.problem = "jwt: %s" % e
            return 401, json.dumps({"message": "Unauthorized: " + str(e), "code": 40100}).encode()
        except (ValueError, json.JSONDecodeError) as e:
            req.problem = "body: %s" % e
            return 400, json.dumps({"message": "Invalid request: " + str(e), "code": 40000}).encode()

        a = req.action
        if a == "ok":
            return 200, json.dumps(GROUND_FIX).encode()
        if a == "4xx":
            return 400, json.dumps({"message": "Bad request", "code": 40000}).encode()
        if a == "401":
            return 401, json.dumps({"message": "Unauthorized", "code": 40100}).encode()
        if a == "5xx":
            return 503, json.dumps({"message": "Service unavailable", "code": 50300}).encode()
        if a == "huge":
            return 200, b'{"pad":"' + b"x" * (1 << 20) + b'"}'
        if a == "slow":
            return None, None
        raise AssertionError("unknown action " + a)
