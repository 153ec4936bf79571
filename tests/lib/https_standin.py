# SPDX-License-Identifier: MIT
"""What the HTTPS stand-ins of the tests share (tests/fota/fileserver.py,
tests/rest/reststandin.py): a TLS server context, a listening socket on
127.0.0.1 at a free port with one thread accepting and one thread per
connection, and the parsing of a request's head.  How a connection speaks
TLS (a wrapped socket, or memory BIOs to count the bytes on the wire) and
what it answers is the stand-in's own."""

import socket
import ssl
import threading


def server_context(cert, key, sni_callback=None):
    """A TLS server context with the certificate chain in cert and its key."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if sni_callback:
        ctx.sni_callback = sni_callback
    return ctx


class LoopbackServer:
    """Listens on 127.0.0.1:<free port> (self.port); handle(sock) runs in a
    thread of its own for every connection, which it may close or leave to
    the server.  stop() ends the accepting, shuts down the connections still
    open (their handlers see EOF or an error) and sets self.stopping, which
    a handler that waits should wait on."""

    def __init__(self, handle):
        self.handle = handle
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._conns = set()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with self._lock:
            self._conns.add(conn)
        try:
            self.handle(conn)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def stop(self):
        self.stopping.set()
        try:
            self.sock.close()
        except OSError:
            pass
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(5)


class RequestHead:
    """method, path, headers (names in lower case) and rest: what came after the head."""

    def __init__(self, method, path, headers, rest):
        self.method, self.path, self.headers, self.rest = method, path, headers, rest


def read_request_head(recv, limit=16384):
    """Reads an HTTP request head with recv() (bytes, b"" at the end of the
    stream); a RequestHead, or None if the stream ends first, the head is
    over limit bytes or its request line is malformed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = recv()
        if not chunk:
            return None
        data += chunk
        if len(data) > limit:
            return None
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, path, _ = lines[0].split(" ", 2)
    except ValueError:
        return None
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return RequestHead(method, path, headers, rest)
