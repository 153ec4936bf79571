/* SPDX-License-Identifier: MIT */
/*
 * Test double of the modem's TLS socket: a real TLS client socket (OpenSSL,
 * non-blocking, on sd-event) behind the bridge's RemoteSocketOps, delivering
 * received bytes in chunks of at most TLS_REMOTE_CHUNK like #XRECV would, and
 * honouring the bridge's pause.  Server certificate and host name verified.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include "log.h"
#include "tls-remote.h"

#define TLS_REMOTE_CHUNK 2048 /* like one #XRECV */

struct TlsRemote {
        sd_event *event;
        Bridge *bridge;
        SSL_CTX *ctx;
        SSL *ssl;
        int fd;
        sd_event_source *io;
        sd_event_source *resume;
        bool handshaking;
        bool paused;
        bool send_blocked;
};

static void tls_remote_close(void *impl);

static void log_ssl_errors(const char *what) {
        unsigned long e;
        char buf[256];
        while ((e = ERR_get_error()) != 0) {
                ERR_error_string_n(e, buf, sizeof buf);
                log_warning("%s: %s", what, buf);
        }
}

static void tls_remote_update(TlsRemote *t, bool want_write) {
        uint32_t ev = EPOLLIN;
        if (want_write || t->send_blocked)
                ev |= EPOLLOUT;
        if (t->paused && !t->handshaking && !want_write && !t->send_blocked)
                ev = 0;
        (void) sd_event_source_set_io_events(t->io, ev ? ev : EPOLLIN);
        (void) sd_event_source_set_enabled(t->io, ev ? SD_EVENT_ON : SD_EVENT_OFF);
}

/* Gone: tell the bridge once, after tearing down (the bridge calls no close() then). */
static void tls_remote_gone(TlsRemote *t, int error) {
        Bridge *b = t->bridge;
        tls_remote_close(t);
        if (b)
                bridge_remote_closed(b, error);
}

static void tls_remote_read(TlsRemote *t) {
        uint8_t buf[TLS_REMOTE_CHUNK];

        while (t->ssl && !t->paused) {
                int n = SSL_read(t->ssl, buf, sizeof buf);
                if (n > 0) {
                        if (bridge_remote_recv(t->bridge, buf, (size_t) n) < 0)
                                return; /* the bridge closed us */
                        continue;
                }
                switch (SSL_get_error(t->ssl, n)) {
                case SSL_ERROR_WANT_READ:
                        return;
                case SSL_ERROR_WANT_WRITE:
                        tls_remote_update(t, true);
                        return;
                case SSL_ERROR_ZERO_RETURN:
                        tls_remote_gone(t, 0);
                        return;
                default:
                        log_ssl_errors("TLS read");
                        tls_remote_gone(t, -ECONNRESET);
                        return;
                }
        }
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        TlsRemote *t = userdata;
        (void) s, (void) fd;

        if (t->handshaking) {
                int r = SSL_do_handshake(t->ssl);
                if (r == 1) {
                        t->handshaking = false;
                        tls_remote_update(t, false);
                        bridge_remote_connected(t->bridge);
                        return 0;
                }
                switch (SSL_get_error(t->ssl, r)) {
                case SSL_ERROR_WANT_READ:
                        tls_remote_update(t, false);
                        return 0;
                case SSL_ERROR_WANT_WRITE:
                        tls_remote_update(t, true);
                        return 0;
                default:
                        log_ssl_errors("TLS handshake");
                        tls_remote_gone(t, -ECONNREFUSED);
                        return 0;
                }
        }
        if ((revents & EPOLLOUT) && t->send_blocked) {
                t->send_blocked = false;
                tls_remote_update(t, false);
                bridge_remote_writable(t->bridge);
                if (!t->ssl)
                        return 0;
        }
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
                tls_remote_read(t);
        return 0;
}

static int on_resume(sd_event_source *s, void *userdata) {
        TlsRemote *t = userdata;
        (void) s;
        (void) sd_event_source_set_enabled(t->resume, SD_EVENT_OFF);
        /* Bytes OpenSSL already decrypted do not show up as EPOLLIN again. */
        if (t->ssl && !t->paused && !t->handshaking)
                tls_remote_read(t);
        return 0;
}

static int tls_remote_open(void *impl, Bridge *b, const char *host, uint16_t port) {
        TlsRemote *t = impl;
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
        int one = 1, r;

        tls_remote_close(t);
        t->bridge = b;
        /* Tests only: the broker is on this machine. */
        if (!streq(host, "localhost") && inet_pton(AF_INET, host, &a.sin_addr) != 1)
                return -EHOSTUNREACH;
        if (streq(host, "localhost"))
                a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        t->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (t->fd < 0)
                return -errno;
        (void) setsockopt(t->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(t->fd, (struct sockaddr *) &a, sizeof a) < 0 && errno != EINPROGRESS) {
                r = -errno;
                tls_remote_close(t);
                return r;
        }
        t->ssl = SSL_new(t->ctx);
        if (!t->ssl || SSL_set_fd(t->ssl, t->fd) != 1 || SSL_set_tlsext_host_name(t->ssl, host) != 1 ||
            SSL_set1_host(t->ssl, host) != 1) {
                tls_remote_close(t);
                return -ENOMEM;
        }
        SSL_set_mode(t->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        SSL_set_connect_state(t->ssl);
        t->handshaking = true;
        r = sd_event_add_io(t->event, &t->io, t->fd, EPOLLIN | EPOLLOUT, on_io, t);
        if (r < 0) {
                tls_remote_close(t);
                return r;
        }
        return 0;
}

static ssize_t tls_remote_send(void *impl, const uint8_t *buf, size_t len) {
        TlsRemote *t = impl;
        int n;

        if (!t->ssl || t->handshaking)
                return -ENOTCONN;
        if (t->send_blocked)
                return 0;
        n = SSL_write(t->ssl, buf, (int) MIN(len, (size_t) 16384));
        if (n > 0)
                return n;
        switch (SSL_get_error(t->ssl, n)) {
        case SSL_ERROR_WANT_WRITE:
        case SSL_ERROR_WANT_READ:
                t->send_blocked = true;
                tls_remote_update(t, true);
                return 0;
        default:
                log_ssl_errors("TLS write");
                return -EIO;
        }
}

static void tls_remote_pause(void *impl, bool pause) {
        TlsRemote *t = impl;
        t->paused = pause;
        if (!t->io)
                return;
        tls_remote_update(t, false);
        if (!pause)
                (void) sd_event_source_set_enabled(t->resume, SD_EVENT_ONESHOT);
}

static void tls_remote_close(void *impl) {
        TlsRemote *t = impl;
        t->io = sd_event_source_disable_unref(t->io);
        if (t->ssl) {
                (void) SSL_shutdown(t->ssl); /* best effort, non-blocking */
                SSL_free(t->ssl);
                t->ssl = NULL;
        }
        if (t->fd >= 0)
                close(t->fd);
        t->fd = -1;
        t->handshaking = t->paused = t->send_blocked = false;
        t->bridge = NULL;
}

const RemoteSocketOps tls_remote_ops = {
        .open = tls_remote_open,
        .send = tls_remote_send,
        .pause_recv = tls_remote_pause,
        .close = tls_remote_close,
};

int tls_remote_new(sd_event *event, const char *ca, const char *cert, const char *key, TlsRemote **ret) {
        TlsRemote *t = calloc(1, sizeof *t);
        int r;

        if (!t)
                return -ENOMEM;
        t->fd = -1;
        t->event = sd_event_ref(event);
        t->ctx = SSL_CTX_new(TLS_client_method());
        if (!t->ctx || SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION) != 1 ||
            SSL_CTX_load_verify_locations(t->ctx, ca, NULL) != 1 ||
            SSL_CTX_use_certificate_chain_file(t->ctx, cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM) != 1) {
                log_ssl_errors("TLS setup");
                tls_remote_free(t);
                return -EINVAL;
        }
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
        r = sd_event_add_defer(event, &t->resume, on_resume, t);
        if (r < 0) {
                tls_remote_free(t);
                return r;
        }
        (void) sd_event_source_set_enabled(t->resume, SD_EVENT_OFF);
        *ret = t;
        return 0;
}

TlsRemote *tls_remote_free(TlsRemote *t) {
        if (!t)
                return NULL;
        tls_remote_close(t);
        t->resume = sd_event_source_disable_unref(t->resume);
        SSL_CTX_free(t->ctx);
        sd_event_unref(t->event);
        free(t);
        return NULL;
}
