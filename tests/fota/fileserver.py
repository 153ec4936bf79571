# SPDX-License-Identifier: MIT
"""An HTTPS file server on 127.0.0.1 for the FOTA tests, standard library only.

It stands in for nRF Cloud's bundle host (bundles.nrfcloud.com): the nRF91
(nrf91-sim) downloads images from it with the CA of its security tag, so its
certificate chains to the test PKI's root CA, the one the broker's
certificate chains to and that `nrfcloud-gatewayctl provision` writes into
the modem.  nrf91-sim resolves host names with getaddrinfo() and tries every
address, so `localhost` (the certificate's name) reaches this server.

What it checks and records, per connection and request: the SNI the client
sent (refused when missing or not the expected name: the handshake fails
with unrecognized_name), the request line, the Range header (206 Partial
Content for `bytes=<from>-[<to>]`), the bytes it sent.

Fault modes, per path (set_fault) or for the whole server:
  * "404": HTTP 404;
  * "truncate": Content-Length of the whole body, then the connection closed
    after `truncate_at` bytes;
  * throttle: at most `rate` bytes per second (a download that lasts long
    enough for a link drop or a reboot to happen in the middle);
  * another certificate: one that chains to another CA (untrusted), or one for
    another host name (wrong host name).
"""

import os
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import https_standin  # noqa: E402


class Request:
    """One HTTP request as the server saw it."""

    def __init__(self, sni, method, path, headers, t):
        self.sni, self.method, self.path, self.headers, self.t = sni, method, path, headers, t
        self.status = None
        self.sent = 0  # body bytes sent
        self.done = False  # the whole answer was sent
        self.t_end = None  # when the last byte was handed to the socket

    @property
    def range(self):
        return self.headers.get("range")

    def __repr__(self):
        return "<%s %s sni=%s range=%s status=%s sent=%d>" % (self.method, self.path, self.sni, self.range,
                                                               self.status, self.sent)


class FileServer:
    """Serves files (path -> bytes) over HTTPS on 127.0.0.1:<free port>."""

    def __init__(self, cert, sni="localhost", rate=None, chunk=4096):
        """cert: (certificate file, key file); sni: the name the client must send
        (None: accept anything, also none); rate: bytes/s for every download."""
        self.files = {}
        self.faults = {}  # path -> {"mode": ..., "truncate_at": n, "rate": bps}
        self.expect_sni = sni
        self.rate = rate
        self.chunk = chunk
        self.lock = threading.Lock()
        self.requests = []
        self.handshakes = []  # (sni or None, accepted)
        self.ctx = None
        self.set_cert(cert)
        self.server = https_standin.LoopbackServer(self._serve)
        self.port = self.server.port
        self.stopping = self.server.stopping

    # ---- configuration ----

    def set_cert(self, cert):
        self.ctx = https_standin.server_context(cert[0], cert[1], self._sni)

    def add(self, name, data):
        """Serves data at /name; returns the path."""
        path = "/" + name.lstrip("/")
        self.files[path] = data
        return path

    def set_fault(self, name, mode=None, truncate_at=None, rate=None):
        """mode None (served), "404" or "truncate" (after truncate_at bytes); rate: bytes/s for this file."""
        self.faults["/" + name.lstrip("/")] = {"mode": mode, "truncate_at": truncate_at, "rate": rate}

    @property
    def host(self):
        """host[:port] as it goes into a job: the name the certificate holds, and the port."""
        return "localhost:%d" % self.port

    def url(self, name):
        return "https://%s/%s" % (self.host, name.lstrip("/"))

    # ---- what happened ----

    def requests_for(self, name):
        path = "/" + name.lstrip("/")
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def ranges(self, name):
        return [r.range for r in self.requests_for(name)]

    def snis(self):
        with self.lock:
            return list(self.handshakes)

    # ---- serving ----

    def _sni(self, sslobj, name, ctx):
        ok = self.expect_sni is None or name == self.expect_sni
        sslobj.sni_seen = name
        with self.lock:
            self.handshakes.append((name, ok))
        if not ok:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        return None

    def _serve(self, raw):
        raw.settimeout(30)
        try:
            conn = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            return  # refused, untrusted by the client, ...
        try:
            self._http(conn, getattr(conn, "sni_seen", None))
        finally:
            conn.close()

    def _http(self, conn, sni):
        head = https_standin.read_request_head(lambda: conn.recv(4096))
        if head is None:
            return
        method, path, headers = head.method, head.path, head.headers
        req = Request(sni, method, path, headers, time.monotonic())
        with self.lock:
            self.requests.append(req)
        fault = self.faults.get(path, {})
        body = self.files.get(path)
        if method != "GET" or body is None or fault.get("mode") == "404":
            req.status = 404
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found")
            req.done = True
            return
        start, end = 0, len(body)
        status = "200 OK"
        extra = ""
        rng = headers.get("range")
        if rng and rng.startswith("bytes="):
            try:
                a, b = rng[6:].split("-", 1)
                start = int(a)
                end = int(b) + 1 if b else len(body)
            except ValueError:
                start, end = 0, len(body)
            if start >= len(body) or end <= start:
                req.status = 416
                conn.sendall(b"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                req.done = True
                return
            end = min(end, len(body))
            status = "206 Partial Content"
            extra = "Content-Range: bytes %d-%d/%d\r\n" % (start, end - 1, len(body))
        req.status = int(status.split()[0])
        conn.sendall(("HTTP/1.1 %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n%s"
                      "Accept-Ranges: bytes\r\nConnection: close\r\n\r\n" % (status, end - start, extra)).encode())
        limit = end
        if fault.get("mode") == "truncate":
            limit = min(end, max(start, fault.get("truncate_at") or (len(body) // 2)))
        rate = fault.get("rate") or self.rate
        t0 = time.monotonic()
        pos = start
        while pos < limit and not self.stopping.is_set():
            n = min(self.chunk, limit - pos)
            conn.sendall(body[pos:pos + n])
            pos += n
            req.sent += n
            if rate:
                due = t0 + req.sent / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        req.done = pos == end
        req.t_end = time.monotonic()
        if req.done:
            try:
                conn.unwrap()
            except (ssl.SSLError, OSError):
                pass

    def stop(self):
        self.server.stop()


def measure_rate(server, name, ca, timeout=60):
    """Downloads name with a plain TLS client (python ssl, verified with ca);
    returns (bytes, seconds): the server's own rate on this machine."""
    ctx = ssl.create_default_context(cafile=ca)
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(("GET /%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (name, server.host)).encode())
            got = b""
            while True:
                try:
                    chunk = s.recv(1 << 16)
                except ssl.SSLZeroReturnError:
                    break
                if not chunk:
                    break
                got += chunk
    body = got.split(b"\r\n\r\n", 1)[1]
    return len(body), time.monotonic() - t0


def app_image(version, body_size=65536, build=0, hdr_size=32, announce=None):
    """An MCUboot application image: the 32-byte header (ih_magic 0x96f3b83d at
    0, ih_hdr_size at 8, ih_img_size at 12, ih_ver at 20: major, minor,
    revision u16, build u32), then body_size bytes.  announce: another
    ih_img_size than the body's (a broken image)."""
    major, minor, rev = (int(x) for x in version.split("."))
    hdr = bytearray(hdr_size)
    hdr[0:4] = (0x96f3b83d).to_bytes(4, "little")
    hdr[8:10] = hdr_size.to_bytes(2, "little")
    hdr[12:16] = (body_size if announce is None else announce).to_bytes(4, "little")
    hdr[20] = major
    hdr[21] = minor
    hdr[22:24] = rev.to_bytes(2, "little")
    hdr[24:28] = build.to_bytes(4, "little")
    return bytes(hdr) + filler(body_size, version)


def modem_delta(from_version, to_version, size=65536, chip="nrf9160"):
    """A modem delta image: the delta magic 0x7544656d at bytes 4..7 and, inside,
    mfw_<chip>_update_from_<A>_to_<B> (nrf91-sim takes the versions from it)."""
    head = bytearray(32)
    head[4:8] = (0x7544656d).to_bytes(4, "little")
    tag = ("mfw_%s_update_from_%s_to_%s" % (chip, from_version, to_version)).encode() + b"\0"
    data = bytes(head) + tag
    return data + filler(max(0, size - len(data)), tag.decode(errors="replace"))


def filler(n, seed):
    """n bytes that never spell a version tag: no letters, digits, '.', '_' or '-' (0x80..0xff)."""
    out = bytearray()
    block = bytes(0x80 | (i * 131 + len(seed)) & 0x7F for i in range(256))
    while len(out) < n:
        out += block
    return bytes(out[:n])


def image_name(prefix, data):
    return "%s-%d.bin" % (prefix, len(data))

