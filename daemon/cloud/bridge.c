/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bridge.h"
#include "log.h"
#include "util.h"

static const char *const bridge_state_table[_BRIDGE_STATE_MAX] = {
        [BRIDGE_IDLE] = "idle",
        [BRIDGE_OPENING] = "opening",
        [BRIDGE_LISTENING] = "listening",
        [BRIDGE_RUNNING] = "running",
        [BRIDGE_CLOSED] = "closed",
};

const char *bridge_state_to_string(BridgeState s) {
        return s >= 0 && s < _BRIDGE_STATE_MAX ? bridge_state_table[s] : NULL;
}

struct Bridge {
        sd_event *event;
        const RemoteSocketOps *ops;
        void *impl;
        BridgeCallbacks cb;
        void *userdata;

        BridgeState state;
        int listen_fd;
        uint16_t listen_port;
        int local_fd; /* the accepted connection from Paho */
        sd_event_source *listen_source;
        sd_event_source *local_source;
        sd_event_source *accept_timer;
        sd_event_source *flush_source; /* writes what the remote sent, once per loop iteration */
        bool remote_open;
        bool remote_paused;
        bool remote_blocked; /* the remote took less than offered: wait for writable */
        bool local_eof;
        bool closed_by_remote; /* the last close came through bridge_remote_closed() */
        uint64_t refused;

        uint8_t up[BRIDGE_UP_BUFFER]; /* read from Paho, not yet taken by the remote */
        size_t up_len;
        uint8_t *down; /* from the remote, not yet written to Paho */
        size_t down_len;
};

/* ---- who is at the other end: sock_diag ---- */

int sock_diag_parse_tcp4(const uint8_t *buf, size_t len, uint32_t seq, uint32_t src_addr, uint16_t src_port,
                         uint32_t dst_addr, uint16_t dst_port, uint64_t *ret_inode, uint32_t *ret_uid) {
        struct nlmsghdr h;
        struct inet_diag_msg m;

        /* Copied out: the bytes need not be aligned (the fuzzer's are not). */
        if (len < NLMSG_HDRLEN)
                return -EBADMSG;
        memcpy(&h, buf, sizeof h);
        if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > len)
                return -EBADMSG;
        if (h.nlmsg_seq != seq)
                return -EPROTO;
        if (h.nlmsg_type == NLMSG_ERROR) {
                struct nlmsgerr e;
                if (h.nlmsg_len < NLMSG_LENGTH(sizeof e))
                        return -EBADMSG;
                memcpy(&e, buf + NLMSG_HDRLEN, sizeof e);
                /* The kernel answers -ENOENT when no socket has that 4-tuple. */
                return e.error < 0 && e.error > -4096 ? e.error : -EPROTO;
        }
        if (h.nlmsg_type != SOCK_DIAG_BY_FAMILY)
                return -EPROTO;
        if (h.nlmsg_len < NLMSG_LENGTH(sizeof m))
                return -EBADMSG;
        memcpy(&m, buf + NLMSG_HDRLEN, sizeof m);
        /* Exactly the socket asked for, nothing near it. */
        if (m.idiag_family != AF_INET || m.id.idiag_src[0] != src_addr || m.id.idiag_dst[0] != dst_addr ||
            m.id.idiag_sport != htons(src_port) || m.id.idiag_dport != htons(dst_port))
                return -EPROTO;
        *ret_inode = m.idiag_inode;
        *ret_uid = m.idiag_uid;
        return 0;
}

int sock_diag_lookup_tcp4(uint32_t src_addr, uint16_t src_port, uint32_t dst_addr, uint16_t dst_port,
                          uint64_t *ret_inode, uint32_t *ret_uid) {
        static uint32_t seq;
        struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
        struct {
                struct nlmsghdr nlh;
                struct inet_diag_req_v2 req;
        } q = {
                .nlh = { .nlmsg_len = sizeof q, .nlmsg_type = SOCK_DIAG_BY_FAMILY, .nlmsg_flags = NLM_F_REQUEST },
                .req = { .sdiag_family = AF_INET,
                         .sdiag_protocol = IPPROTO_TCP,
                         .idiag_states = UINT32_MAX,
                         .id = { .idiag_sport = htons(src_port),
                                 .idiag_dport = htons(dst_port),
                                 .idiag_src = { src_addr },
                                 .idiag_dst = { dst_addr },
                                 .idiag_cookie = { INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE } } },
        };
        _cleanup_close_ int fd = -EBADF;
        union {
                struct nlmsghdr h;
                uint8_t buf[1024];
        } reply;
        ssize_t n;

        q.nlh.nlmsg_seq = ++seq;
        fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
        if (fd < 0)
                return -errno;
        if (sendto(fd, &q, sizeof q, 0, (struct sockaddr *) &kernel, sizeof kernel) < 0)
                return -errno;
        /* Not a dump: one lookup in the kernel's hash of connections, answered before
         * sendto() returns, whatever the number of sockets on the machine. */
        n = recv(fd, &reply, sizeof reply, MSG_DONTWAIT);
        if (n < 0)
                return errno == EAGAIN ? -ETIMEDOUT : -errno;
        return sock_diag_parse_tcp4(reply.buf, (size_t) n, q.nlh.nlmsg_seq, src_addr, src_port, dst_addr, dst_port,
                                    ret_inode, ret_uid);
}

int process_has_socket_inode(uint64_t inode) {
        char want[48];
        DIR *d;
        struct dirent *de;
        int r = 0;

        snprintf(want, sizeof want, "socket:[%" PRIu64 "]", inode);
        /* Our own folder of /proc: there also with ProcSubset=pid. */
        d = opendir("/proc/self/fd");
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                char target[64];
                ssize_t n;
                if (de->d_name[0] == '.')
                        continue;
                n = readlinkat(dirfd(d), de->d_name, target, sizeof target - 1);
                if (n < 0)
                        continue;
                target[n] = 0;
                if (streq(target, want)) {
                        r = 1;
                        break;
                }
        }
        closedir(d);
        return r;
}

/* Whether the peer of the accepted socket fd is a socket of this process. */
static int peer_is_own_socket(int fd) {
        struct sockaddr_in peer, self;
        socklen_t pl = sizeof peer, sl = sizeof self;
        uint64_t inode;
        uint32_t uid;
        int r;

        if (getpeername(fd, (struct sockaddr *) &peer, &pl) < 0 || getsockname(fd, (struct sockaddr *) &self, &sl) < 0)
                return -errno;
        if (peer.sin_family != AF_INET)
                return 0;
        /* The peer's own socket: its local address is our remote one and the other way round. */
        r = sock_diag_lookup_tcp4(peer.sin_addr.s_addr, ntohs(peer.sin_port), self.sin_addr.s_addr,
                                  ntohs(self.sin_port), &inode, &uid);
        if (r == -ENOENT)
                return 0; /* gone already */
        if (r < 0)
                return r;
        if (uid != (uint32_t) geteuid())
                return 0;
        return process_has_socket_inode(inode);
}

/* ---- the bridge ---- */

static void bridge_enter_state(Bridge *b, BridgeState n) {
        if (b->state == n)
                return;
        log_debug("Bridge state %s -> %s", bridge_state_to_string(b->state), bridge_state_to_string(n));
        b->state = n;
}

static void bridge_close_all(Bridge *b) {
        b->listen_source = sd_event_source_disable_unref(b->listen_source);
        b->local_source = sd_event_source_disable_unref(b->local_source);
        b->accept_timer = sd_event_source_disable_unref(b->accept_timer);
        b->flush_source = sd_event_source_disable_unref(b->flush_source);
        b->listen_fd = safe_close(b->listen_fd);
        b->local_fd = safe_close(b->local_fd);
        if (b->remote_open && b->ops->close)
                b->ops->close(b->impl);
        b->remote_open = false;
        b->up_len = b->down_len = 0;
        b->remote_paused = b->remote_blocked = b->local_eof = false;
}

static void bridge_fail(Bridge *b, int error, const char *reason) {
        if (b->state == BRIDGE_CLOSED || b->state == BRIDGE_IDLE)
                return;
        log_debug_errno(error, "Bridge closing: %s", reason);
        /* What the remote sent before it went reaches Paho as it would have without the batching. */
        while (b->local_fd >= 0 && b->down_len > 0) {
                ssize_t n = send(b->local_fd, b->down, b->down_len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n <= 0)
                        break;
                memmove(b->down, b->down + n, b->down_len - (size_t) n);
                b->down_len -= (size_t) n;
        }
        bridge_close_all(b);
        bridge_enter_state(b, BRIDGE_CLOSED);
        if (b->cb.closed)
                b->cb.closed(b, error, reason, b->userdata);
}

static bool bridge_flush_pending(Bridge *b) {
        int enabled = SD_EVENT_OFF;
        return b->flush_source && sd_event_source_get_enabled(b->flush_source, &enabled) >= 0 &&
               enabled != SD_EVENT_OFF;
}

static void bridge_update_events(Bridge *b) {
        uint32_t ev = 0;

        if (!b->local_source)
                return;
        /*
         * Read from Paho while there is room, also while the remote is busy: what
         * piles up meanwhile goes out in one piece once it is writable again.
         */
        if (!b->local_eof && b->up_len < sizeof b->up)
                ev |= EPOLLIN;
        /* Bytes for Paho wait for the flush source; EPOLLOUT only once a write fell short. */
        if (b->down_len > 0 && !bridge_flush_pending(b))
                ev |= EPOLLOUT;
        (void) sd_event_source_set_io_events(b->local_source, ev);
        (void) sd_event_source_set_enabled(b->local_source, ev ? SD_EVENT_ON : SD_EVENT_OFF);
}

static void bridge_set_remote_paused(Bridge *b, bool pause) {
        if (b->remote_paused == pause)
                return;
        b->remote_paused = pause;
        if (b->ops->pause_recv)
                b->ops->pause_recv(b->impl, pause);
}

/* Hands what Paho wrote to the remote, as much as it takes in one call. */
static int bridge_flush_up(Bridge *b) {
        while (b->up_len > 0 && !b->remote_blocked) {
                ssize_t n = b->ops->send(b->impl, b->up, b->up_len);
                if (n < 0)
                        return (int) n;
                if (n == 0) {
                        b->remote_blocked = true;
                        break;
                }
                memmove(b->up, b->up + n, b->up_len - (size_t) n);
                b->up_len -= (size_t) n;
        }
        return 0;
}

/* One read of what Paho wrote into the room left: 1 if it got bytes, 0 if none now, -errno; EOF is 0 and noted. */
static int bridge_read_local(Bridge *b) {
        ssize_t n;

        if (b->local_eof || b->up_len >= sizeof b->up)
                return 0;
        n = read(b->local_fd, b->up + b->up_len, sizeof b->up - b->up_len);
        if (n < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : -errno;
        if (n == 0) {
                b->local_eof = true;
                return 0;
        }
        b->up_len += (size_t) n;
        return 1;
}

/* Writes what the remote sent to Paho. */
static int bridge_flush_down(Bridge *b) {
        while (b->down_len > 0) {
                ssize_t n = write(b->local_fd, b->down, b->down_len);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                break;
                        return -errno;
                }
                memmove(b->down, b->down + n, b->down_len - (size_t) n);
                b->down_len -= (size_t) n;
        }
        if (b->down_len <= BRIDGE_DOWN_LOW_WATER)
                bridge_set_remote_paused(b, false);
        return 0;
}

/* Hands what came from the remote to the MQTT client; false (and the bridge failed) on error. */
static bool bridge_deliver_down(Bridge *b) {
        int r = bridge_flush_down(b);
        if (r < 0) {
                bridge_fail(b, r, "writing to the MQTT client failed");
                return false;
        }
        return true;
}

static int on_flush(sd_event_source *s, void *userdata) {
        Bridge *b = userdata;
        (void) s;

        (void) sd_event_source_set_enabled(b->flush_source, SD_EVENT_OFF);
        if (bridge_deliver_down(b))
                bridge_update_events(b);
        return 0;
}

static int on_local_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Bridge *b = userdata;
        int r;
        (void) s, (void) fd;

        if ((revents & EPOLLOUT) && !bridge_deliver_down(b))
                return 0;
        if (revents & EPOLLERR) {
                bridge_fail(b, -ECONNRESET, "the MQTT client connection failed");
                return 0;
        }
        if ((revents & EPOLLHUP) && b->up_len >= sizeof b->up) {
                /* Cannot read what is left while the remote is full: the client is gone anyway. */
                bridge_fail(b, 0, "the MQTT client closed its connection");
                return 0;
        }
        if (revents & (EPOLLIN | EPOLLHUP)) {
                r = bridge_read_local(b);
                if (r < 0) {
                        bridge_fail(b, r, "reading from the MQTT client failed");
                        return 0;
                }
                if (b->local_eof) {
                        bridge_fail(b, 0, "the MQTT client closed its connection");
                        return 0;
                }
                r = bridge_flush_up(b);
                if (r < 0) {
                        bridge_fail(b, r, "the remote socket refused data");
                        return 0;
                }
        }
        bridge_update_events(b);
        return 0;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Bridge *b = userdata;
        _cleanup_close_ int cfd = -EBADF;
        int r;
        (void) s, (void) revents;

        cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
                return 0;
        r = peer_is_own_socket(cfd);
        if (r <= 0) {
                /* Someone else on this machine: refuse, and keep waiting for our own client. */
                b->refused++;
                if (r < 0)
                        log_warning_errno(r, "Refused a connection to the cloud bridge, cannot tell where it comes "
                                             "from: %m");
                else
                        log_warning("Refused a connection to the cloud bridge that does not come from this process");
                return 0;
        }

        /* MQTT packets are small: do not hold PUBACKs and PINGRESPs back for Nagle. */
        {
                int one = 1;
                (void) setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }

        /* Exactly one connection: the listener goes at once. */
        b->listen_source = sd_event_source_disable_unref(b->listen_source);
        b->accept_timer = sd_event_source_disable_unref(b->accept_timer);
        b->listen_fd = safe_close(b->listen_fd);
        b->local_fd = TAKE_FD(cfd);
        r = sd_event_add_io(b->event, &b->local_source, b->local_fd, EPOLLIN, on_local_io, b);
        if (r >= 0)
                r = sd_event_add_defer(b->event, &b->flush_source, on_flush, b);
        if (r >= 0)
                r = sd_event_source_set_enabled(b->flush_source, SD_EVENT_OFF);
        if (r < 0) {
                bridge_fail(b, r, "cannot watch the MQTT client connection");
                return 0;
        }
        bridge_enter_state(b, BRIDGE_RUNNING);
        /* Bytes the remote sent before Paho connected (none expected for MQTT) go out now. */
        if (b->down_len > 0)
                bridge_update_events(b);
        return 0;
}

static int on_accept_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Bridge *b = userdata;
        (void) s, (void) usec;
        bridge_fail(b, -ETIMEDOUT, "the MQTT client did not connect to the bridge");
        return 0;
}

int bridge_start(Bridge *b, const char *host, uint16_t port) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t al = sizeof a;
        int r;

        bridge_stop(b);
        b->closed_by_remote = false;
        b->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (b->listen_fd < 0)
                return -errno;
        if (bind(b->listen_fd, (struct sockaddr *) &a, sizeof a) < 0 || listen(b->listen_fd, 1) < 0 ||
            getsockname(b->listen_fd, (struct sockaddr *) &a, &al) < 0) {
                r = -errno;
                bridge_close_all(b);
                return r;
        }
        b->listen_port = ntohs(a.sin_port);
        r = sd_event_add_io(b->event, &b->listen_source, b->listen_fd, EPOLLIN, on_accept, b);
        if (r < 0) {
                bridge_close_all(b);
                return r;
        }
        /* Not accepting before the remote is up. */
        (void) sd_event_source_set_enabled(b->listen_source, SD_EVENT_OFF);

        bridge_enter_state(b, BRIDGE_OPENING);
        b->remote_open = true;
        r = b->ops->open(b->impl, b, host, port);
        if (r < 0) {
                b->remote_open = false;
                bridge_close_all(b);
                bridge_enter_state(b, BRIDGE_IDLE);
                return r;
        }
        return 0;
}

void bridge_remote_connected(Bridge *b) {
        char uri[64];
        int r;

        if (b->state != BRIDGE_OPENING)
                return;
        r = sd_event_source_set_enabled(b->listen_source, SD_EVENT_ON);
        if (r >= 0)
                r = sd_event_add_time_relative(b->event, &b->accept_timer, CLOCK_BOOTTIME, BRIDGE_ACCEPT_TIMEOUT_USEC,
                                               0, on_accept_timeout, b);
        if (r < 0) {
                bridge_fail(b, r, "cannot accept on the bridge");
                return;
        }
        bridge_enter_state(b, BRIDGE_LISTENING);
        snprintf(uri, sizeof uri, "tcp://127.0.0.1:%u", b->listen_port);
        if (b->cb.ready)
                b->cb.ready(b, uri, b->userdata);
}

int bridge_remote_recv(Bridge *b, const uint8_t *data, size_t len) {
        bool was_empty;
        int r;

        if (b->state != BRIDGE_RUNNING && b->state != BRIDGE_LISTENING)
                return -ENOTCONN;
        if (b->down_len + len > BRIDGE_DOWN_BUFFER_MAX) {
                bridge_fail(b, -ENOBUFS, "the remote socket sent past the pause");
                return -ENOBUFS;
        }
        was_empty = b->down_len == 0;
        memcpy(b->down + b->down_len, data, len);
        b->down_len += len;
        /*
         * Not written at once: the modem delivers a PUBACK per #XRECV, several per
         * read of the port, and one write per loop iteration carries them all to
         * Paho (one wake-up of its receiving thread instead of one per packet).
         */
        if (was_empty && b->state == BRIDGE_RUNNING && b->flush_source) {
                r = sd_event_source_set_enabled(b->flush_source, SD_EVENT_ONESHOT);
                if (r < 0) {
                        bridge_fail(b, r, "cannot schedule writing to the MQTT client");
                        return r;
                }
        }
        if (b->down_len > BRIDGE_DOWN_HIGH_WATER)
                bridge_set_remote_paused(b, true);
        bridge_update_events(b);
        return 0;
}

void bridge_remote_writable(Bridge *b) {
        int r;
        if (b->state != BRIDGE_RUNNING)
                return;
        b->remote_blocked = false;
        /* What Paho wrote since the loop last looked goes out in the same send. */
        r = bridge_read_local(b);
        if (r < 0) {
                bridge_fail(b, r, "reading from the MQTT client failed");
                return;
        }
        if (b->local_eof) {
                bridge_fail(b, 0, "the MQTT client closed its connection");
                return;
        }
        r = bridge_flush_up(b);
        if (r < 0) {
                bridge_fail(b, r, "the remote socket refused data");
                return;
        }
        bridge_update_events(b);
}

void bridge_remote_closed(Bridge *b, int error) {
        b->remote_open = false; /* gone already: no close() call */
        if (b->state != BRIDGE_CLOSED && b->state != BRIDGE_IDLE)
                b->closed_by_remote = true;
        bridge_fail(b, error, error ? "the remote socket failed" : "the remote socket was closed");
}

void bridge_stop(Bridge *b) {
        bridge_close_all(b);
        bridge_enter_state(b, BRIDGE_IDLE);
}

int bridge_new(sd_event *event, const RemoteSocketOps *ops, void *impl, const BridgeCallbacks *cb, void *userdata,
               Bridge **ret) {
        Bridge *b;

        if (!ops || !ops->open || !ops->send || !ops->close)
                return -EINVAL;
        b = calloc(1, sizeof *b);
        if (!b)
                return -ENOMEM;
        b->down = malloc(BRIDGE_DOWN_BUFFER_MAX);
        if (!b->down) {
                free(b);
                return -ENOMEM;
        }
        b->event = sd_event_ref(event);
        b->ops = ops;
        b->impl = impl;
        if (cb)
                b->cb = *cb;
        b->userdata = userdata;
        b->listen_fd = b->local_fd = -EBADF;
        *ret = b;
        return 0;
}

Bridge *bridge_free(Bridge *b) {
        if (!b)
                return NULL;
        bridge_close_all(b);
        sd_event_unref(b->event);
        free(b->down);
        free(b);
        return NULL;
}

BridgeState bridge_get_state(const Bridge *b) {
        return b->state;
}
bool bridge_closed_by_remote(const Bridge *b) {
        return b->closed_by_remote;
}
uint16_t bridge_listen_port(const Bridge *b) {
        return b->listen_port;
}
uint64_t bridge_refused_connections(const Bridge *b) {
        return b->refused;
}
