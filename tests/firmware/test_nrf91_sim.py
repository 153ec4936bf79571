#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""nrf91-sim over a real pseudo-terminal, as the daemon and a person see it.

Every test starts nrf91-sim with --pty-link in a fresh state directory and
talks AT through the pty (spec modem-link.md).  The test PKI is made at test
time with the openssl CLI; credentials reach the simulated modem through
%CMNG writes.  Peers run on 127.0.0.1 with free ports: openssl s_server for
TLS sockets, Python's http.server with ssl for downloads and FOTA images.
"""
import base64
import hashlib
import http.server
import os
import re
import select
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import termios
import threading
import time
import unittest

BUILD = os.environ.get("NRFGW_BUILD_DIR", "build")
SIM = os.environ.get("NRF91_SIM") or os.path.join(BUILD, "firmware_nrf91", "nrf91-sim")
TAG = 16842753
OTHER_TAG = 4242
FINAL = re.compile(rb"^(OK|ERROR|\+CME ERROR: -?\d+)$")
COUNTED = re.compile(rb"^#X(?:RECV: \d+|DOWNLOAD: \d+,1),(\d+)$")


def openssl(*args, **kw):
    return subprocess.run(["openssl", *args], check=True, capture_output=True, **kw)


class Pki:
    """Root CA + server certificate, a device CA + client certificate, and
    look-alikes from unrelated CAs, all EC P-256, valid for two days."""

    def __init__(self, d):
        self.d = d
        self.ca = self._ca("root", "Test Root CA")
        self.server = self._leaf("server", "localhost", self.ca, san="DNS:localhost,IP:127.0.0.1")
        self.device_ca = self._ca("device-ca", "Test Device CA")
        self.client = self._leaf("client", "50503642-3239-4f86-80c4-06122e299623", self.device_ca)
        self.other_ca = self._ca("other-ca", "Unrelated CA")
        self.other_client = self._leaf("other-client", "50503642-3239-4f86-80c4-06122e299623", self.other_ca)
        self.rogue_server = self._leaf("rogue-server", "localhost", self.other_ca,
                                       san="DNS:localhost,IP:127.0.0.1")
        # trusted, but for another name than the URL's
        self.other_name = self._leaf("other-name", "other.example", self.ca, san="DNS:other.example")

    def path(self, name):
        return os.path.join(self.d, name)

    def _key(self, name):
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", self.path(name + ".key"))

    def _ca(self, name, cn):
        self._key(name)
        openssl("req", "-x509", "-new", "-key", self.path(name + ".key"), "-subj", "/CN=" + cn, "-days", "2",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", self.path(name + ".pem"))
        return name

    def _leaf(self, name, cn, ca, san=None):
        self._key(name)
        openssl("req", "-new", "-key", self.path(name + ".key"), "-subj", "/CN=" + cn,
                "-out", self.path(name + ".csr"))
        ext = self.path(name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\n")
            if san:
                f.write("subjectAltName=" + san + "\n")
        openssl("x509", "-req", "-in", self.path(name + ".csr"), "-CA", self.path(ca + ".pem"),
                "-CAkey", self.path(ca + ".key"), "-CAcreateserial", "-days", "2", "-extfile", ext,
                "-out", self.path(name + ".pem"))
        return name

    def pem(self, name, ext="pem"):
        with open(self.path(f"{name}.{ext}")) as f:
            return f.read()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Link:
    """The host side of the AT link: one command in flight, URCs collected,
    counted payloads (#XRECV, #XDOWNLOAD) read as raw bytes."""

    def __init__(self, path):
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        t = termios.tcgetattr(self.fd)
        t[0] = t[1] = t[3] = 0  # raw: no input/output processing, no echo, no canonical mode
        t[2] = termios.CS8 | termios.CREAD | termios.CLOCAL
        termios.tcsetattr(self.fd, termios.TCSANOW, t)
        self.buf = b""
        self.events = []  # (line, payload or None) in arrival order, URCs and responses alike
        self.history = []  # every line ever parsed, in order

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def write(self, data):
        while data:
            try:
                n = os.write(self.fd, data)
                data = data[n:]
            except BlockingIOError:
                select.select([], [self.fd], [], 1)

    def _fill(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return False
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return True
        if not chunk:
            raise EOFError
        self.buf += chunk
        return True

    def _parse(self):
        """Moves complete lines (and their counted payloads) from buf to events."""
        while True:
            self.buf = self.buf.lstrip(b"\r\n") if self.buf[:1] in (b"\r", b"\n") else self.buf
            end = self.buf.find(b"\r\n")
            if end < 0:
                return
            line = self.buf[:end]
            m = COUNTED.match(line)
            if m:
                n = int(m.group(1))
                if len(self.buf) < end + 2 + n:
                    return
                self.events.append((line, self.buf[end + 2:end + 2 + n]))
                self.history.append(line)
                self.buf = self.buf[end + 2 + n:]
            else:
                self.events.append((line, None))
                self.history.append(line)
                self.buf = self.buf[end + 2:]

    def wait(self, pred, timeout=10.0):
        """Waits for the first event matching pred, removes and returns it."""
        deadline = time.monotonic() + timeout
        while True:
            self._parse()
            for i, (line, payload) in enumerate(self.events):
                if pred(line):
                    del self.events[i]
                    return line, payload
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"nothing matched; pending events {self.events!r}, buffer {self.buf[:200]!r}")
            self._fill(left)

    def wait_line(self, prefix, timeout=10.0):
        return self.wait(lambda l: l.startswith(prefix), timeout)

    def cmd(self, text, timeout=10.0, payload=None):
        """Sends one command; returns (information lines, final result).  URCs
        stay in self.events."""
        self.events = [e for e in self.events if not FINAL.match(e[0])]
        self.write(text.encode() + b"\r\n" if isinstance(text, str) else text)
        info = []
        deadline = time.monotonic() + timeout
        prefix = None
        if isinstance(text, str) and text.upper().startswith("AT") and ("=" in text or "?" in text):
            prefix = re.split(r"[=?]", text[2:], maxsplit=1)[0].encode()
        elif isinstance(text, str):
            prefix = text[2:].encode()
        while True:
            self._parse()
            i = 0
            while i < len(self.events):
                line, _ = self.events[i]
                if FINAL.match(line):
                    del self.events[i]
                    return info, line.decode()
                if (prefix and line.startswith(prefix + b":")) or \
                        (prefix is not None and not line.startswith((b"+", b"%", b"#")) and line != b"Ready"):
                    info.append(line.decode())  # its own lines, and bare ones (+CGMR, +CGSN)
                    del self.events[i]
                    continue
                i += 1  # a URC: left for wait()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{text!r}: no final result; events {self.events!r}, buffer {self.buf[:200]!r}")
            self._fill(left)

    def ok(self, text, timeout=10.0):
        info, final = self.cmd(text, timeout)
        if final != "OK":
            raise AssertionError(f"{text!r} -> {final}")
        return info

    def drain(self, quiet=0.3):
        while self._fill(quiet):
            pass
        self._parse()
        events, self.events = self.events, []
        return events


class FileServer:
    """HTTPS file server on 127.0.0.1 for FOTA images that records every
    request (path, Range header) and the SNI of every handshake.  A file can
    stall after some bytes of its first response (until release() or the
    client goes away) or be cut short (Content-Length says more, then the
    connection closes)."""

    def __init__(self, pki, files, cert="server", stall_after=None, truncate_at=None):
        self.files = files
        self.requests = []
        self.sni = []
        self.stall_after = dict(stall_after or {})
        self.truncate_at = dict(truncate_at or {})
        self.released = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                if rng and rng.startswith("bytes=") and rng.endswith("-"):
                    start = int(rng[6:-1])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.send_header("Connection", "close")
                self.end_headers()
                stall = server.stall_after.pop(self.path, None)
                cut = server.truncate_at.get(self.path)
                if stall is not None:
                    self.wfile.write(body[start:stall])
                    self.wfile.flush()
                    server.released.wait(30)
                    return
                self.wfile.write(body[start:cut] if cut is not None else body[start:])
                self.close_connection = True

            def log_message(self, *args):
                pass

            def handle(self):
                try:
                    super().handle()
                except (ssl.SSLError, ConnectionError):
                    pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.srv.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki.path(cert + ".pem"), pki.path(cert + ".key"))
        ctx.sni_callback = lambda sslobj, name, c: self.sni.append(name)
        self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def release(self):
        self.released.set()

    def shutdown(self):
        self.released.set()
        self.srv.shutdown()

    def server_close(self):
        self.srv.server_close()


class Sim:
    def __init__(self, workdir, *extra, env=None):
        self.dir = workdir
        self.link_path = os.path.join(workdir, "nrf91.tty")
        self.state = os.path.join(workdir, "state")
        self.log = open(os.path.join(workdir, "sim.log"), "ab")
        e = dict(os.environ, MODEM_EMU_REG_DELAY_MS="100", **(env or {}))
        self.proc = subprocess.Popen([SIM, "--pty-link", self.link_path, "--state-dir", self.state,
                                      "--uuid", "50503642-3239-4f86-80c4-06122e299623", "-v", *extra],
                                     stdout=self.log, stderr=self.log, env=e)
        deadline = time.monotonic() + 10
        while not (os.path.islink(self.link_path) and os.path.exists(os.path.join(self.state, "control"))):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("nrf91-sim did not start; see " + self.log.name)
            time.sleep(0.02)
        self.link = Link(self.link_path)

    def control(self, line):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.settimeout(5)
            c.connect(os.path.join(self.state, "control"))
            c.sendall(line.encode() + b"\n")
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = c.recv(512)
                if not chunk:
                    break
                reply += chunk
        return reply.decode().strip()

    def stop(self):
        self.link.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class SimTestCase(unittest.TestCase):
    pki = None
    pki_dir = None

    @classmethod
    def setUpClass(cls):
        cls.pki_dir = tempfile.TemporaryDirectory(prefix="nrf91-pki-")
        cls.pki = Pki(cls.pki_dir.name)

    @classmethod
    def tearDownClass(cls):
        cls.pki_dir.cleanup()

    def setUp(self):
        # NRF91_SIM_KEEP=1 keeps each test's directory (sim.log, state) for a post-mortem
        self.keep = bool(os.environ.get("NRF91_SIM_KEEP"))
        self.tmpdir = tempfile.mkdtemp(prefix="nrf91-sim-")
        self.sim = Sim(self.tmpdir)
        self.link = self.sim.link
        self.link.wait(lambda l: l == b"Ready")
        self.peers = []

    def tearDown(self):
        for p in self.peers:
            if isinstance(p, subprocess.Popen):
                if p.poll() is None:
                    p.terminate()
                    p.wait(5)
                p.stdout.close()
            else:
                p.shutdown()
                p.server_close()
        self.sim.stop()
        if self.keep:
            print("kept", self.tmpdir)
        else:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    # --- helpers ---

    def write_credential(self, tag, kind, text):
        """%CMNG write of text between quotes, exactly as given (CR/LF inside are content)."""
        info, final = self.link.cmd(f'AT%CMNG=0,{tag},{kind},"{text}"')
        self.assertEqual(final, "OK", f"%CMNG write {tag},{kind}")

    def provision(self, tag=TAG, ca="root", client="client"):
        self.link.ok("AT+CFUN=4")
        if ca:
            self.write_credential(tag, 0, self.pki.pem(ca))
        if client:
            self.write_credential(tag, 1, self.pki.pem(client))
            self.write_credential(tag, 2, self.pki.pem(client, "key"))

    def online(self):
        self.link.ok("AT+CEREG=5")
        self.link.ok("AT+CFUN=1")
        self.link.wait(lambda l: re.match(rb"^\+CEREG: [15]\b", l) is not None, timeout=10)

    def s_server(self, cert="server", extra=()):
        port = free_port()
        p = subprocess.Popen(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-tls1_2", "-rev",
                              "-cert", self.pki.path(cert + ".pem"), "-key", self.pki.path(cert + ".key"),
                              "-CAfile", self.pki.path("device-ca.pem"), "-Verify", "1",
                              "-verify_return_error", *extra],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.peers.append(p)
        # s_server prints ACCEPT once it listens
        for _ in range(10):
            line = p.stdout.readline()
            if b"ACCEPT" in line or not line:
                break
        self.assertIn(b"ACCEPT", line)
        return port

    def file_server(self, files, **kw):
        srv = FileServer(self.pki, files, **kw)
        self.peers.append(srv)
        return srv

    def https_server(self, files, cert="server"):
        return self.file_server(files, cert=cert).port

    def open_socket(self, tag=TAG, hostname="localhost"):
        info, final = self.link.cmd(f"AT#XSSOCKET=1,1,0,{tag}")
        self.assertEqual(final, "OK")
        m = re.match(r"#XSSOCKET: (\d+),1,258", info[0])
        self.assertIsNotNone(m, info)
        h = int(m.group(1))
        if hostname:
            self.link.ok(f'AT#XSSOCKETOPT={h},1,2,"{hostname}"')
        return h

    def download(self, url, tag=TAG, offset=None, timeout=30):
        """Returns (bytes received, total, sha from the URC) or raises with the error URC."""
        cmd = f'AT#XDOWNLOAD="{url}",{tag}' + (f",{offset}" if offset is not None else "")
        info, final = self.link.cmd(cmd)
        self.assertEqual(final, "OK", cmd)
        dl_id = int(re.match(r"#XDOWNLOAD: (\d+),0$", info[0]).group(1))
        data = b""
        while True:
            line, payload = self.link.wait(lambda l: l.startswith(b"#XDOWNLOAD: %d," % dl_id), timeout)
            fields = line.decode().split(": ", 1)[1].split(",")
            if fields[1] == "1":
                self.assertEqual(len(payload), int(fields[2]))
                self.assertLessEqual(len(payload), 2048)
                data += payload
            elif fields[1] == "2":
                return data, int(fields[2]), fields[3].strip('"')
            else:
                return data, None, int(fields[2])


class TestLink(SimTestCase):
    def test_identity_and_framing(self):
        info = self.link.ok("AT#XUUID")
        self.assertEqual(info, ["#XUUID: 50503642-3239-4f86-80c4-06122e299623"])
        info = self.link.ok("AT#XSMVER")
        self.assertRegex(info[0], r'^#XSMVER: "1\.0\.0","nrf91-sim-[^"]+"$')
        # numeric errors although the host never sent AT+CMEE=1
        self.assertEqual(self.link.cmd("AT%CMNG=2,7,2")[1], "+CME ERROR: 513")
        self.link.ok("AT+CMEE=0")
        self.assertEqual(self.link.cmd("AT%CMNG=2,7,2")[1], "+CME ERROR: 513")
        # three commands in one write, lone CR / lone LF terminators
        self.link.write(b"AT\rAT\nAT+CGMR\r\n")
        finals = [self.link.wait(lambda l: FINAL.match(l) is not None)[0] for _ in range(3)]
        self.assertEqual(finals, [b"OK"] * 3)
        # an over-long command is refused whole, and the link goes on
        self.assertEqual(self.link.cmd("AT+CGMI=" + "9" * 4200)[1], "ERROR")
        self.link.ok("AT")

    def test_cmng_multiline_pem_over_the_pty(self):
        """A PEM with CR LF line ends goes through the line assembler as one
        command; %CMNG lists the SHA-256 of exactly the text between the quotes."""
        pem = self.pki.pem("root").replace("\n", "\r\n")
        self.link.ok("AT+CFUN=4")
        self.write_credential(TAG, 0, pem)
        info = self.link.ok(f"AT%CMNG=1,{TAG},0")
        self.assertEqual(info, [f'%CMNG: {TAG},0,"{hashlib.sha256(pem.encode()).hexdigest().upper()}"'])
        # 518: writes while CFUN=1; 514: reading a key; 513: missing entry
        self.write_credential(TAG, 2, self.pki.pem("client", "key"))
        self.assertEqual(self.link.cmd(f"AT%CMNG=2,{TAG},2")[1], "+CME ERROR: 514")
        self.assertEqual(self.link.cmd(f"AT%CMNG=2,{TAG},1")[1], "+CME ERROR: 513")
        self.link.ok("AT+CFUN=1")
        self.assertEqual(self.link.cmd(f'AT%CMNG=0,{TAG},1,"x"')[1], "+CME ERROR: 518")

    def test_keygen_csr_verifies(self):
        self.link.ok("AT+CFUN=4")
        info = self.link.ok(f"AT%KEYGEN={OTHER_TAG},2,0", timeout=30)
        m = re.match(r'%KEYGEN: "([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)"$', info[0])
        self.assertIsNotNone(m, info)
        der = base64.urlsafe_b64decode(m.group(1) + "=" * (-len(m.group(1)) % 4))
        r = subprocess.run(["openssl", "req", "-inform", "DER", "-verify", "-noout", "-subject"],
                           input=der, capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"50503642-3239-4f86-80c4-06122e299623", r.stdout)
        self.assertEqual(self.link.cmd(f"AT%KEYGEN={OTHER_TAG},2,0")[1], "+CME ERROR: 519")


class TestSockets(SimTestCase):
    def test_mutual_tls_to_s_server(self):
        self.provision()
        self.online()
        port = self.s_server()
        h = self.open_socket()
        info, final = self.link.cmd(f'AT#XCONNECT={h},"127.0.0.1",{port}', timeout=30)
        self.assertEqual((info, final), ([f"#XCONNECT: {h},1"], "OK"))
        self.link.ok(f"AT#XRECVCFG={h},1")
        info, final = self.link.cmd(f"AT#XSEND={h},6")
        self.assertEqual(final, "OK")
        self.link.write(b"hello\n")
        line, _ = self.link.wait_line(b"#XSEND:")
        self.assertEqual(line, b"#XSEND: %d,6" % h)
        data = b""
        while not data.endswith(b"\n"):
            line, payload = self.link.wait_line(b"#XRECV: %d," % h)
            data += payload
        self.assertEqual(data, b"olleh\n")
        self.assertEqual(self.link.ok(f"AT#XCLOSE={h}"), [f"#XCLOSE: {h},0"])

    def test_client_certificate_from_another_ca_is_refused(self):
        self.provision(client="other-client")
        self.online()
        port = self.s_server()
        h = self.open_socket()
        info, final = self.link.cmd(f'AT#XCONNECT={h},"127.0.0.1",{port}', timeout=30)
        # The server's "unknown CA" alert aborts the TLS 1.2 handshake: ECONNABORTED.
        self.assertEqual((info, final), ([], "+CME ERROR: 103"))

    def test_wrong_hostname_is_refused(self):
        self.provision()
        self.online()
        port = self.s_server()
        h = self.open_socket(hostname="not-the-server.example")
        info, final = self.link.cmd(f'AT#XCONNECT={h},"127.0.0.1",{port}', timeout=30)
        self.assertEqual(final, "+CME ERROR: 13")  # EACCES: the certificate does not name the host

    def test_untrusted_server_is_refused(self):
        self.provision()
        self.online()
        port = self.s_server(cert="rogue-server")
        h = self.open_socket()
        self.assertEqual(self.link.cmd(f'AT#XCONNECT={h},"127.0.0.1",{port}', timeout=30)[1], "+CME ERROR: 13")

    def test_binary_round_trip_and_link_stays_responsive(self):
        """Payloads with CR LF, OK and NUL both ways, through a TLS echo peer
        that answers slowly: AT commands keep working meanwhile."""
        self.provision()
        self.online()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.pki.path("server.pem"), self.pki.path("server.key"))
        ctx.load_verify_locations(self.pki.path("device-ca.pem"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(1)
        port = lsock.getsockname()[1]
        got = []

        def echo():
            conn, _ = lsock.accept()
            with ctx.wrap_socket(conn, server_side=True) as tls:
                data = b""
                while len(data) < 3000:
                    chunk = tls.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                got.append(data)
                time.sleep(0.5)
                tls.sendall(data)
                time.sleep(0.5)
            lsock.close()

        t = threading.Thread(target=echo, daemon=True)
        t.start()
        h = self.open_socket()
        self.link.ok(f'AT#XCONNECT={h},"localhost",{port}', timeout=30)
        self.link.ok(f"AT#XRECVCFG={h},1")
        payload = bytes((b"\r\nOK\r\n\x00AT#XRESET\r\n\"" * 200)[:3000])
        self.link.ok(f"AT#XSEND={h},{len(payload)}")
        self.link.write(payload)
        self.assertEqual(self.link.wait_line(b"#XSEND:")[0], b"#XSEND: %d,%d" % (h, len(payload)))
        # the peer holds the data back: the link answers other commands meanwhile
        self.link.ok("AT#XUUID")
        data = b""
        while len(data) < len(payload):
            line, chunk = self.link.wait_line(b"#XRECV: %d," % h)
            data += chunk
        self.assertEqual(data, payload)
        self.assertEqual(got, [payload])
        # the peer closes: a URC says so, the handle is free
        self.assertEqual(self.link.wait_line(b"#XCLOSE:")[0], b"#XCLOSE: %d,0" % h)
        self.assertEqual(self.link.cmd(f"AT#XCLOSE={h}")[1], "+CME ERROR: 9")
        t.join(5)

    def test_data_flows_while_another_socket_connects(self):
        """A handshake that hangs does not stop the loop: data of another
        socket keeps arriving as URCs before the #XCONNECT result."""
        self.provision()
        self.online()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.pki.path("server.pem"), self.pki.path("server.key"))
        ctx.load_verify_locations(self.pki.path("device-ca.pem"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        talker = socket.socket()
        talker.bind(("127.0.0.1", 0))
        talker.listen(1)
        silent = socket.socket()  # accepts TCP, never answers the TLS ClientHello
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        go = threading.Event()
        held = []

        def talk():
            conn, _ = talker.accept()
            with ctx.wrap_socket(conn, server_side=True) as tls:
                go.wait(10)
                time.sleep(0.3)
                tls.sendall(b"while you wait\r\nOK\r\n")
                time.sleep(1.0)
            talker.close()

        def hold():
            conn, _ = silent.accept()
            held.append(conn)
            time.sleep(1.5)
            conn.close()  # the handshake ends with a reset
            silent.close()

        threading.Thread(target=talk, daemon=True).start()
        threading.Thread(target=hold, daemon=True).start()
        a = self.open_socket()
        self.link.ok(f'AT#XCONNECT={a},"localhost",{talker.getsockname()[1]}', timeout=30)
        self.link.ok(f"AT#XRECVCFG={a},1")
        b = self.open_socket()
        go.set()
        t0 = time.monotonic()
        info, final = self.link.cmd(f'AT#XCONNECT={b},"127.0.0.1",{silent.getsockname()[1]}', timeout=30)
        self.assertGreater(time.monotonic() - t0, 1.0)
        self.assertEqual((info, final), ([], "+CME ERROR: 104"))
        # the URC was already there, ahead of the final result
        line, data = self.link.wait_line(b"#XRECV: %d," % a, timeout=0.1)
        self.assertEqual(data, b"while you wait\r\nOK\r\n")
        self.assertLess(self.link.history.index(line), self.link.history.index(b"+CME ERROR: 104"))

    def test_no_network_no_connect(self):
        self.provision()
        h = self.open_socket()
        self.assertEqual(self.link.cmd(f'AT#XCONNECT={h},"127.0.0.1",1')[1], "+CME ERROR: 100")


class TestDownloads(SimTestCase):
    def test_download_sha256_matches(self):
        blob = (b"\r\nOK\r\n\x00" + os.urandom(50000)) * 3
        port = self.https_server({"/blob.bin": blob})
        self.provision(client=None)
        self.online()
        data, total, sha = self.download(f"https://localhost:{port}/blob.bin")
        self.assertEqual(data, blob)
        self.assertEqual(total, len(blob))
        self.assertEqual(sha, hashlib.sha256(blob).hexdigest())
        # from an offset (Range)
        data, total, sha = self.download(f"https://localhost:{port}/blob.bin", offset=1000)
        self.assertEqual(data, blob[1000:])
        self.assertEqual(sha, hashlib.sha256(blob[1000:]).hexdigest())
        # 404
        data, total, err = self.download(f"https://localhost:{port}/missing")
        self.assertEqual((total, err), (None, -2))

    def test_untrusted_server_gives_eacces(self):
        port = self.https_server({"/blob.bin": b"x" * 100}, cert="rogue-server")
        self.provision(client=None)
        self.online()
        data, total, err = self.download(f"https://localhost:{port}/blob.bin")
        self.assertEqual((data, total, err), (b"", None, -13))

    def test_cancel(self):
        blob = os.urandom(4 * 1024 * 1024)
        port = self.https_server({"/big.bin": blob})
        self.provision(client=None)
        self.online()
        info, final = self.link.cmd(f'AT#XDOWNLOAD="https://localhost:{port}/big.bin",{TAG}')
        dl_id = int(info[0].split(": ")[1].split(",")[0])
        self.link.wait_line(b"#XDOWNLOAD: %d,1," % dl_id)
        self.link.ok(f"AT#XDOWNLOAD=0,{dl_id}")
        self.assertEqual(self.link.cmd(f"AT#XDOWNLOAD=0,{dl_id}")[1], "+CME ERROR: 2")
        rest = self.link.drain(0.5)
        self.assertFalse(any(l.startswith(b"#XDOWNLOAD: %d,2" % dl_id) for l, _ in rest))


def mcuboot_image(major, minor, rev, build=0, body=20000):
    # struct image_header: magic, load_addr, hdr_size, protect_tlv_size, img_size, flags, ver, pad1
    hdr = struct.pack("<IIHHII", 0x96F3B83D, 0, 32, 0, body, 0) + struct.pack("<BBHII", major, minor, rev, build, 0)
    return hdr + os.urandom(body)


class TestFota(SimTestCase):
    def fota(self, op, url):
        self.link.ok(f'AT#XFOTA={op},"{url}",{TAG}')
        stages = []
        while True:
            line, _ = self.link.wait_line(b"#XFOTA:", timeout=30)
            stages.append(line.decode())
            if line.startswith((b"#XFOTA: 4,", b"#XFOTA: 1,1", b"#XFOTA: 3,1")):
                return stages

    def test_application_update_applies_on_reset(self):
        port = self.https_server({"/app.bin": mcuboot_image(1, 2, 3)})
        self.provision(client=None)
        self.online()
        stages = self.fota(1, f"https://localhost:{port}/app.bin")
        self.assertEqual(stages[0], "#XFOTA: 1,0,0")
        self.assertIn("#XFOTA: 1,0,100", stages)
        self.assertEqual(stages[-3:], ["#XFOTA: 2,0", "#XFOTA: 3,0", "#XFOTA: 4,0"])
        self.assertEqual(self.link.ok("AT#XSMVER")[0].split('"')[1], "1.0.0")
        self.link.ok("AT#XRESET")
        self.link.wait(lambda l: l == b"Ready")
        self.assertEqual(self.link.wait_line(b"#XFOTA:")[0], b"#XFOTA: 5,0")
        self.assertEqual(self.link.ok("AT#XSMVER")[0].split('"')[1], "1.2.3")

    def test_mismatch_and_modem_delta(self):
        # modem delta magic 0x7544656d at bytes 4..7, and the version tag the sim reads
        delta = b"\x00\x00\x00\x00" + struct.pack("<I", 0x7544656D) + b"mfw_nrf9160_update_from_1.3.5_to_1.3.6\x00" + os.urandom(5000)
        port = self.https_server({"/app.bin": mcuboot_image(2, 0, 0), "/delta.bin": delta})
        self.provision(client=None)
        self.online()
        # an application image behind op 2 (modem delta) is refused
        self.assertEqual(self.fota(2, f"https://localhost:{port}/app.bin")[-1], "#XFOTA: 1,1,3")
        stages = self.fota(2, f"https://localhost:{port}/delta.bin")
        self.assertEqual(stages[-1], "#XFOTA: 4,0")
        self.assertEqual(self.link.ok("AT+CGMR"), ["mfw_nrf9160_1.3.5"])
        info, final = self.link.cmd("AT#XMODEMRESET", timeout=30)
        self.assertEqual((info, final), (["#XMODEMRESET: 0"], "OK"))
        self.assertEqual(self.link.wait_line(b"#XFOTA:")[0], b"#XFOTA: 5,0")
        self.assertEqual(self.link.ok("AT+CGMR"), ["mfw_nrf9160_1.3.6"])
        self.assertEqual(self.link.ok("AT+CFUN?"), ["+CFUN: 0"])


def modem_full_image(version):
    # a COSE_Sign1 manifest starts with d2 84; the sim reads the version tag inside
    return b"\xd2\x84" + b"\x00" * 30 + b"mfw_nrf9160_" + version.encode() + b"\x00" + os.urandom(3000)


def modem_delta_image(base, target):
    return (b"\x00" * 4 + struct.pack("<I", 0x7544656D) + b"mfw_nrf9160_update_from_%s_to_%s\x00" %
            (base.encode(), target.encode()) + os.urandom(5000))


class TestFotaStates(SimTestCase):
    """#XFOTAINFO, resume with an HTTP range after a reset, MCUboot
    test/confirm/revert, the mute test image and the watchdog, external flash,
    TLS and HTTP failures with their errno."""

    def info(self):
        info = self.link.ok("AT#XFOTAINFO")
        self.assertEqual(len(info), 1, info)
        self.assertTrue(info[0].startswith("#XFOTAINFO: "), info)
        return tuple(int(x) for x in info[0][len("#XFOTAINFO: "):].split(","))

    def start(self, op, url, tag=TAG):
        self.link.ok(f'AT#XFOTA={op},"{url}",{tag}')
        return self.link.wait_line(b"#XFOTA: 1,0,")[0].decode()

    def until(self, *ends, timeout=30):
        stages = []
        while True:
            line = self.link.wait_line(b"#XFOTA:", timeout=timeout)[0].decode()
            stages.append(line)
            if line.startswith(ends):
                return stages

    def version(self):
        return self.link.ok("AT#XSMVER")[0].split('"')[1]

    def restart(self, *extra, kill=False):
        """Stops the sim (SIGKILL: a power cut) and starts it again on the same state directory."""
        if kill:
            self.sim.proc.kill()
            self.sim.proc.wait()
        self.sim.stop()
        # what a killed process leaves behind must not pass for the new one's
        for stale in (self.sim.link_path, os.path.join(self.sim.state, "control")):
            if os.path.lexists(stale):
                os.unlink(stale)
        self.sim = Sim(self.tmpdir, *extra)
        self.link = self.sim.link

    def interrupted_download(self, image, how):
        """Downloads image until its first half is stored, then resets the device `how`;
        returns the file server and the URL."""
        half = len(image) // 2
        srv = self.file_server({"/app.bin": image}, stall_after={"/app.bin": half})
        url = f"https://localhost:{srv.port}/app.bin"
        self.provision(client=None)
        self.online()
        self.assertEqual(self.info(), (6, 0, 0, 0, 0, -1, 0))
        self.assertEqual(self.start(1, url), "#XFOTA: 1,0,0")
        pct = half * 100 // len(image)
        self.link.wait(lambda l: l == b"#XFOTA: 1,0,%d" % pct, timeout=30)
        self.assertEqual(self.info(), (6, 1, 1, half, len(image), -1, 0))
        self.assertRegex(self.sim.control("status"), rf" fota=1,{half}/{len(image)}$")
        if how == "reboot":
            self.assertEqual(self.sim.control("reboot"), "OK")
        elif how == "kill":
            self.restart(kill=True)
        self.link.wait(lambda l: l == b"Ready")
        srv.release()
        self.assertEqual(self.info(), (6, 2, 1, half, len(image), -1, 0))
        self.assertRegex(self.sim.control("status"), rf" fota=2,{half}/{len(image)}$")
        return srv, url

    def resume(self, srv, url, image):
        half = len(image) // 2
        self.online()
        self.assertEqual(self.start(1, url), "#XFOTA: 1,0,%d" % (half * 100 // len(image)))
        self.assertEqual(self.until("#XFOTA: 4,", "#XFOTA: 1,1", "#XFOTA: 3,1")[-3:],
                         ["#XFOTA: 2,0", "#XFOTA: 3,0", "#XFOTA: 4,0"])
        self.assertEqual(srv.requests, [("/app.bin", None), ("/app.bin", f"bytes={half}-")])
        self.assertEqual(self.info(), (6, 3, 1, len(image), len(image), -1, 0))
        with open(os.path.join(self.sim.state, "fota", "image"), "rb") as f:
            self.assertEqual(f.read(), image)

    def test_resume_after_reboot_then_confirm(self):
        image = mcuboot_image(1, 2, 3, body=200000)
        srv, url = self.interrupted_download(image, "reboot")
        self.resume(srv, url, image)
        # the version changes only when the image boots, as a test image
        self.assertEqual(self.version(), "1.0.0")
        self.link.ok("AT#XRESET")
        self.link.wait(lambda l: l == b"Ready")
        self.assertEqual(self.link.wait_line(b"#XFOTA:")[0], b"#XFOTA: 5,0")
        self.assertEqual(self.version(), "1.2.3")
        self.assertEqual(self.info(), (6, 4, 1, len(image), len(image), 0, 0))
        self.assertRegex(self.sim.control("status"), r" app=1\.2\.3 fota=4,")
        self.assertEqual(self.link.cmd(f'AT#XFOTA=1,"{url}",{TAG}')[1], "+CME ERROR: 16")
        self.link.ok("AT#XFOTA=9")
        self.assertEqual(self.link.cmd("AT#XFOTA=9")[1], "+CME ERROR: 2")
        self.assertEqual(self.info(), (6, 0, 0, 0, 0, 0, 0))
        # confirmed: it stays across a reset and a power cycle
        self.assertEqual(self.sim.control("reboot"), "OK")
        self.link.wait(lambda l: l == b"Ready")
        self.restart()
        self.link.wait(lambda l: l == b"Ready")
        self.assertEqual(self.version(), "1.2.3")
        self.assertFalse(any(l.startswith(b"#XFOTA:") for l, _ in self.link.drain()))

    def test_resume_after_kill_and_revert_on_power_cycle(self):
        image = mcuboot_image(2, 0, 1, build=7, body=150000)
        srv, url = self.interrupted_download(image, "kill")
        self.resume(srv, url, image)
        self.link.ok("AT#XRESET")
        self.link.wait(lambda l: l == b"Ready")
        self.assertEqual(self.link.wait_line(b"#XFOTA:")[0], b"#XFOTA: 5,0")
        self.assertEqual(self.version(), "2.0.1+7")
        # never confirmed: a power cut and MCUboot goes back
        self.restart(kill=True)
        self.link.wait(lambda l: l == b"Ready")
        self.assertEqual(self.link.wait_line(b"#XFOTA:")[0], b"#XFOTA: 5,3")
        self.assertEqual(self.version(), "1.0.0")
        self.assertEqual(self.info(), (6, 0, 0, 0, 0, 3, 0))

    def test_other_url_starts_from_zero(self):
        image = mcuboot_image(1, 1, 0, body=100000)
        srv, url = self.interrupted_download(image, "reboot")
        srv.files["/other.bin"] = image
        self.online()
        self.assertEqual(self.start(1, f"https://localhost:{srv.port}/other.bin"), "#XFOTA: 1,0,0")
        self.until("#XFOTA: 4,")
        self.assertEqual(srv.requests[-1], ("/other.bin", None))

    def apply_app(self, image):
        srv = self.file_server({"/app.bin": image})
        self.provision(client=None)
        self.online()
        self.start(1, f"https://localhost:{srv.port}/app.bin")
        self.until("#XFOTA: 4,")
        self.assertEqual(self.info()[1], 3)

    def test_revert_on_reset_while_testing(self):
        self.apply_app(mcuboot_image(3, 0, 0))
        self.link.ok("AT#XRESET")
        self.link.wait(lambda l: l == b"Ready")
        self.assertEqual(self.link.wait_line(b"#XFOTA:")[0], b"#XFOTA: 5,0")
        self.assertEqual(self.version(), "3.0.0")
        # a modem reset does not touch the application
        self.assertEqual(self.link.ok("AT#XMODEMRESET", timeout=30), ["#XMODEMRESET: 0"])
        self.assertEqual(self.info()[1], 4)
        self.link.ok("AT#XRESET")
        self.link.wait(lambda l: l == b"Ready")
        self.assertEqual(self.link.wait_line(b"#XFOTA:")[0], b"#XFOTA: 5,3")
        self.assertEqual(self.version(), "1.0.0")
        self.assertEqual(self.info(), (6, 0, 0, 0, 0, 3, 0))
        self.assertEqual(self.link.cmd("AT#XFOTA=9")[1], "+CME ERROR: 2")

    def test_mute_test_image_is_reverted_by_the_watchdog(self):
        self.apply_app(mcuboot_image(4, 0, 0))
        self.assertEqual(self.sim.control("fota-mute 1500"), "OK")
        self.assertTrue(self.sim.control("fota-mute 0").startswith("ERROR"))
        t0 = time.monotonic()
        self.link.ok("AT#XRESET")
        # the test image boots but says nothing and hears nothing, not even a confirm
        self.link.write(b"AT#XFOTA=9\r\n")
        heard = [l for l, _ in self.link.drain(0.8)]
        self.assertFalse([l for l in heard if l in (b"Ready", b"OK") or l.startswith(b"#XFOTA")], heard)
        self.assertRegex(self.sim.control("status"), r" app=4\.0\.0 fota=4,")
        self.link.wait(lambda l: l == b"Ready", timeout=10)
        self.assertGreater(time.monotonic() - t0, 1.4)
        self.assertEqual(self.link.wait_line(b"#XFOTA:")[0], b"#XFOTA: 5,3")
        self.assertEqual(self.version(), "1.0.0")
        self.assertEqual(self.info(), (6, 0, 0, 0, 0, 3, 0))
        # one-shot: the next test image talks
        self.apply_app(mcuboot_image(4, 0, 1))
        self.link.ok("AT#XRESET")
        self.link.wait(lambda l: l == b"Ready")
        self.assertEqual(self.link.wait_line(b"#XFOTA:")[0], b"#XFOTA: 5,0")
        self.link.ok("AT#XFOTA=9")
        self.assertEqual(self.version(), "4.0.1")

    def test_full_modem_needs_external_flash(self):
        srv = self.file_server({"/mfw_nrf9160_1.3.7.bin": modem_full_image("1.3.7")})
        url = f"https://localhost:{srv.port}/mfw_nrf9160_1.3.7.bin"
        self.assertEqual(self.link.cmd(f'AT#XFOTA=3,"{url}",{TAG}')[1], "+CME ERROR: 95")
        self.assertEqual(self.info()[0], 6)
        self.restart("--external-flash")
        self.link.wait(lambda l: l == b"Ready")
        self.assertEqual(self.info(), (14, 0, 0, 0, 0, -1, 0))
        self.provision(client=None)
        self.online()
        self.start(3, url)
        self.assertEqual(self.until("#XFOTA: 4,", "#XFOTA: 1,1")[-1], "#XFOTA: 4,0")
        self.assertEqual(self.info()[:3], (14, 3, 3))
        self.assertEqual(self.link.ok("AT#XMODEMRESET", timeout=30), ["#XMODEMRESET: 0"])
        self.assertEqual(self.link.wait_line(b"#XFOTA:")[0], b"#XFOTA: 5,0")
        self.assertEqual(self.link.ok("AT+CGMR"), ["mfw_nrf9160_1.3.7"])
        self.assertEqual(self.info(), (14, 0, 0, 0, 0, 0, 0))

    def test_modem_delta_base_version(self):
        srv = self.file_server({"/wrong.bin": modem_delta_image("1.3.4", "1.3.6"),
                          "/right.bin": modem_delta_image("1.3.5", "1.3.6"),
                          "/prefix.bin": modem_delta_image("1.3", "1.3.9")})
        self.provision(client=None)
        for path, result in (("/wrong.bin", "#XFOTA: 5,1,71303172"), ("/prefix.bin", "#XFOTA: 5,1,71303172"),
                             ("/right.bin", "#XFOTA: 5,0")):
            self.online()
            self.start(2, f"https://localhost:{srv.port}{path}")
            self.assertEqual(self.until("#XFOTA: 4,", "#XFOTA: 1,1")[-1], "#XFOTA: 4,0")
            self.assertEqual(self.link.ok("AT#XMODEMRESET", timeout=30), ["#XMODEMRESET: 0"])
            self.assertEqual(self.link.wait_line(b"#XFOTA:")[0].decode(), result, path)
            if result != "#XFOTA: 5,0":
                self.assertEqual(self.link.ok("AT+CGMR"), ["mfw_nrf9160_1.3.5"])
                self.assertEqual(self.info(), (6, 0, 0, 0, 0, 1, 71303172))
        self.assertEqual(self.link.ok("AT+CGMR"), ["mfw_nrf9160_1.3.6"])
        self.assertEqual(self.info(), (6, 0, 0, 0, 0, 0, 0))

    def test_tls_checks_and_sni(self):
        image = mcuboot_image(1, 0, 1)
        good = self.file_server({"/app.bin": image})
        rogue = self.file_server({"/app.bin": image}, cert="rogue-server")
        misnamed = self.file_server({"/app.bin": image}, cert="other-name")
        self.provision(client=None)
        self.provision(tag=OTHER_TAG, ca="other-ca", client=None)
        self.online()
        cases = [
            (rogue, "localhost", TAG),       # untrusted CA
            (misnamed, "localhost", TAG),    # trusted, but issued for other.example
            (good, "localhost", OTHER_TAG),  # the tag's CA is not the server's
        ]
        for srv, host, tag in cases:
            self.start(1, f"https://{host}:{srv.port}/app.bin", tag=tag)
            self.assertEqual(self.until("#XFOTA: 1,1"), ["#XFOTA: 1,1,1,-13"], (srv.port, tag))
            self.assertEqual(srv.requests, [])
            self.assertEqual(self.info()[1], 0)
        self.assertEqual(rogue.sni, ["localhost"])
        self.assertEqual(misnamed.sni, ["localhost"])
        # the name of the URL goes out as SNI; an IP address does not (and is checked by the chain alone)
        self.start(1, f"https://localhost:{good.port}/app.bin")
        self.assertEqual(self.until("#XFOTA: 4,", "#XFOTA: 1,1")[-1], "#XFOTA: 4,0")
        self.start(1, f"https://127.0.0.1:{good.port}/app.bin")
        self.assertEqual(self.until("#XFOTA: 4,", "#XFOTA: 1,1")[-1], "#XFOTA: 4,0")
        self.assertEqual(good.sni, ["localhost", "localhost", None])

    def test_http_errors_carry_errno(self):
        image = mcuboot_image(1, 0, 2, body=50000)
        srv = self.file_server({"/app.bin": image, "/cut.bin": image}, truncate_at={"/cut.bin": 30000})
        self.provision(client=None)
        self.online()
        self.start(1, f"https://localhost:{srv.port}/missing.bin")
        self.assertEqual(self.until("#XFOTA: 1,1"), ["#XFOTA: 1,1,1,-2"])
        self.start(1, f"https://localhost:{srv.port}/cut.bin")
        self.assertEqual(self.until("#XFOTA: 1,1")[-1], "#XFOTA: 1,1,1,-104")
        # a failed download keeps nothing to resume
        self.assertEqual(self.info(), (6, 0, 0, 0, 0, -1, 0))
        self.assertEqual(self.start(1, f"https://localhost:{srv.port}/cut.bin"), "#XFOTA: 1,0,0")
        self.until("#XFOTA: 1,1")
        self.assertEqual(srv.requests[-1], ("/cut.bin", None))
        # the flash fails under the image: the store's errno
        self.assertEqual(self.sim.control("fota-write-error 20000"), "OK")
        self.start(1, f"https://localhost:{srv.port}/app.bin")
        self.assertEqual(self.until("#XFOTA: 1,1")[-1], "#XFOTA: 1,1,1,-5")
        # no network
        self.link.ok("AT+CFUN=4")
        self.assertEqual(self.link.cmd(f'AT#XFOTA=1,"https://localhost:{srv.port}/app.bin",{TAG}')[1],
                         "+CME ERROR: 100")


class TestFaults(SimTestCase):
    def test_reboot(self):
        self.provision()
        self.online()
        h = self.open_socket()
        self.assertEqual(self.sim.control("reboot"), "OK")
        self.link.wait(lambda l: l == b"Ready")
        self.assertEqual(self.link.cmd(f"AT#XCLOSE={h}")[1], "+CME ERROR: 9")
        self.assertEqual(self.link.ok("AT+CFUN?"), ["+CFUN: 0"])
        # credentials survive, as in the modem's flash
        self.assertEqual(len(self.link.ok(f"AT%CMNG=1,{TAG}")), 3)

    def test_pty_vanishes_and_comes_back(self):
        self.assertEqual(self.sim.control("vanish 700"), "OK")
        self.assertFalse(os.path.lexists(self.sim.link_path))
        # the old device is dead for whoever still holds it open
        with self.assertRaises((EOFError, OSError)):
            for _ in range(50):
                self.link.write(b"AT\r\n")
                self.link._fill(0.05)
        self.link.close()
        deadline = time.monotonic() + 10
        while not os.path.exists(self.sim.link_path):
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        self.sim.link = self.link = Link(self.sim.link_path)
        self.link.ok("AT")
        self.assertTrue(os.readlink(self.sim.link_path).startswith("/dev/pts/"))
        # vanish until told
        self.assertEqual(self.sim.control("vanish"), "OK")
        time.sleep(0.3)
        self.assertFalse(os.path.lexists(self.sim.link_path))
        self.assertEqual(self.sim.control("appear"), "OK")
        self.link.close()
        self.sim.link = self.link = Link(self.sim.link_path)
        self.link.ok("AT")

    def test_delay_and_drop(self):
        self.assertEqual(self.sim.control("delay 400"), "OK")
        t0 = time.monotonic()
        self.link.ok("AT")
        self.assertGreaterEqual(time.monotonic() - t0, 0.38)
        self.assertEqual(self.sim.control("delay 0"), "OK")
        self.assertEqual(self.sim.control("drop 1"), "OK")
        with self.assertRaises(TimeoutError):
            self.link.cmd("AT#XUUID", timeout=1)
        self.link.ok("AT")
        self.assertRegex(self.sim.control("status"), r"^OK pty=/dev/pts/\d+ .*drop=0")
        self.assertTrue(self.sim.control("bogus").startswith("ERROR"))


XMONITOR = re.compile(r'^%XMONITOR: 1,"[^"]*","[^"]*","(\d{5,6})","([0-9A-F]{4})",7,(\d+),"([0-9A-F]{8})",'
                      r'(\d+),(\d+),(\d+),(\d+),"[01]*","[01]{8}","[01]{8}","[01]{8}"$')


class TestCells(SimTestCase):
    """%XMONITOR and %NCELLMEAS in the formats of the nRF91 AT Commands
    reference, and the cells set through the control socket."""

    def test_xmonitor_before_and_after_registration(self):
        self.assertEqual(self.link.ok("AT%XMONITOR"), ["%XMONITOR: 0"])
        self.online()
        (line,) = self.link.ok("AT%XMONITOR")
        m = XMONITOR.match(line)
        self.assertIsNotNone(m, line)
        # the default cell: the location +CEREG reports, band 20 for EARFCN 6300
        self.assertEqual(m.groups(), ("26295", "0140", "20", "0A0B0C0D", "194", "6300", "62", "39"))

    def test_cell_change_reported_and_measured(self):
        self.assertEqual(self.sim.control("cell 26295 00B7 00011B07 300 7 63 31"), "OK")
        self.assertEqual(self.sim.control("ncell 300 8 60 29"), "OK")
        self.assertEqual(self.sim.control("ncell 1200 11 55 26"), "OK")
        self.assertTrue(self.sim.control("cell 2629 00B7 1 1 1 1 1").startswith("ERROR usage"))
        self.assertTrue(self.sim.control("ncell 300 504 1 1").startswith("ERROR usage"))
        self.online()
        (line,) = self.link.ok("AT%XMONITOR")
        self.assertEqual(XMONITOR.match(line).groups(), ("26295", "00B7", "1", "00011B07", "7", "300", "63", "39"))

        self.assertEqual(self.link.ok("AT%NCELLMEAS"), [])
        self.assertEqual(self.link.cmd("AT%NCELLMEAS")[1], "ERROR")  # one at a time
        line, _ = self.link.wait_line(b"%NCELLMEAS:", timeout=5)
        f = line.decode()[len("%NCELLMEAS: "):].split(",")
        self.assertEqual(f[:4], ["0", '"00011B07"', '"26295"', '"00B7"'])
        self.assertEqual(f[5:9], ["300", "7", "63", "31"])
        self.assertEqual(len(f), 11 + 2 * 5)  # serving cell, two neighbours, the TA measurement time
        self.assertEqual(f[10:14] + f[15:19], ["300", "8", "60", "29", "1200", "11", "55", "26"])

        # A reselection: +CEREG with the new TAC and cell id (AT+CEREG=5 is on)
        self.assertEqual(self.sim.control("cell 26295 00B8 00011C01 300 9 50 20"), "OK")
        line, _ = self.link.wait(lambda l: l.startswith(b"+CEREG: 1,") and b"00B8" in l, timeout=5)
        self.assertRegex(line, rb'^\+CEREG: 1,"00B8","00011C01",7')
        self.assertEqual(self.sim.control("ncell-clear"), "OK")
        self.link.ok("AT%NCELLMEAS=1")
        line, _ = self.link.wait_line(b"%NCELLMEAS:", timeout=5)
        self.assertRegex(line, rb'^%NCELLMEAS: 0,"00011C01","26295","00B8",\d+,300,9,50,20,\d+,\d+$')

    def test_ncellmeas_without_network_and_stop(self):
        self.link.ok("AT%NCELLMEAS")
        line, _ = self.link.wait_line(b"%NCELLMEAS:", timeout=5)
        self.assertEqual(line, b"%NCELLMEAS: 1")
        self.link.ok("AT%NCELLMEAS")
        self.link.ok("AT%NCELLMEASSTOP")
        line, _ = self.link.wait_line(b"%NCELLMEAS:", timeout=5)
        self.assertEqual(line, b"%NCELLMEAS: 2")
        self.assertEqual(self.link.cmd("AT%NCELLMEAS=3")[1], "ERROR")  # GCI searches: not emulated

    def test_network_without_time(self):
        self.assertEqual(self.sim.control("network-time off"), "OK")
        self.assertTrue(self.sim.control("network-time").startswith("ERROR usage"))
        self.online()
        self.assertEqual(self.link.cmd("AT%CCLK?")[1], "ERROR")
        self.assertEqual(self.sim.control("network-time on"), "OK")
        (line,) = self.link.ok("AT%CCLK?")
        self.assertRegex(line, r'^%CCLK: "\d\d/\d\d/\d\d,\d\d:\d\d:\d\d[+-]\d\d",0$')


if __name__ == "__main__":
    unittest.main(verbosity=2)
