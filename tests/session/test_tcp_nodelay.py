# SPDX-License-Identifier: MIT
"""The daemon's MQTT connection does not wait behind Nagle's algorithm: once the
session is ready, every established TCP socket of the daemon has TCP_NODELAY,
in TLS=host (Paho's socket to the broker) and in TLS=modem (Paho's socket to
the modem bridge on loopback, and the bridge's end of it).  Paho MQTT C does
not set it; without it a PUBLISH written after a PUBACK waits for the peer's
delayed ACK (40 ms), which the start-up benchmark showed between the shadow
document and the session ready.

The sockets are read from the outside: pidfd_getfd(2) gives this process a
copy of the daemon's descriptor, whose options getsockopt() reads."""

import ctypes
import os
import socket
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sessiontest as st  # noqa: E402

DEVICE = "5a0f3c2e-8d41-4b7a-9e26-1c3d5f7a9b04"
SYS_PIDFD_GETFD = 438
libc = ctypes.CDLL(None, use_errno=True)


def established_tcp_inodes():
    """Socket inodes of established TCP connections (state 01), IPv4 and IPv6."""
    out = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "01":
                        out.add(fields[9])
        except FileNotFoundError:
            pass
    return out


def tcp_sockets_nodelay(pid):
    """{fd: TCP_NODELAY} for each established TCP socket of the process."""
    est = established_tcp_inodes()
    pidfd = os.pidfd_open(pid)
    result = {}
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if not link.startswith("socket:[") or link[8:-1] not in est:
                continue
            local = libc.syscall(SYS_PIDFD_GETFD, pidfd, int(fd), 0)
            if local < 0:
                raise OSError(ctypes.get_errno(), "pidfd_getfd")
            s = socket.socket(fileno=local)
            try:
                result[int(fd)] = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            finally:
                s.close()
    finally:
        os.close(pidfd)
    return result


def check_nodelay(case, daemon):
    case.assertTrue(daemon.wait_log("nRF Cloud session ready", 60), daemon.log()[-3000:])
    socks = tcp_sockets_nodelay(daemon.proc.pid)
    case.assertTrue(socks, "no established TCP socket in the daemon")
    case.assertEqual([fd for fd, on in socks.items() if not on], [],
                     "TCP sockets of the daemon without TCP_NODELAY (of %s)" % sorted(socks))


class HostTls(st.PkiCase):
    DEVICE = DEVICE

    def test_host_tls(self):
        broker = st.Broker(os.path.join(self.dir, "broker"), self.pki)
        broker.start()
        self.addCleanup(broker.stop)
        peer = st.CloudPeer(broker, self.pki, DEVICE)
        peer.start()
        self.addCleanup(peer.stop)
        self.assertTrue(peer.connected.wait(10))
        daemon = st.Daemon(os.path.join(self.dir, "daemon"), broker, self.pki, DEVICE, self.cert)
        self.addCleanup(daemon.stop)
        check_nodelay(self, daemon)


class ModemTls(st.ModemCase):
    DEVICE = DEVICE
    BROKER_VERBOSE = False

    def test_modem_tls(self):
        self.daemon = st.Daemon(os.path.join(self.dir, "daemon"), self.broker, self.pki, DEVICE, self.cert,
                                modem=(self.sim.link, self.runtime))
        check_nodelay(self, self.daemon)
        self.stop_daemon()


if __name__ == "__main__":
    unittest.main(verbosity=2)
