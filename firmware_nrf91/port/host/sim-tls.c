/* SPDX-License-Identifier: MIT */
/*
 * TLS 1.2 client connections as the nRF91 modem makes them, with OpenSSL:
 * credentials of one security tag from the emulated modem's store, peer
 * verification and hostname as #XSSOCKET/#XSSOCKETOPT set them.  Everything
 * is non-blocking (getaddrinfo_a, O_NONBLOCK connect, SSL_connect retried
 * from the loop), so the AT link keeps working meanwhile.
 *
 * Also the socket operations of the port (sim_sock_*).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "sim.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free_all);

/* ---- name resolution ------------------------------------------------- */

/*
 * getaddrinfo_a() requests must stay allocated until glibc is done with
 * them; a connection closed while resolving leaves its request here.
 */
static struct gaicb *orphans[16];

static void gaicb_free(struct gaicb *g) {
        if (!g)
                return;
        if (g->ar_result)
                freeaddrinfo(g->ar_result);
        free((char *) g->ar_name);
        free((void *) g->ar_request);
        free(g);
}

void tls_resolver_gc(bool wait) {
        for (size_t i = 0; i < ELEMENTSOF(orphans); i++) {
                if (!orphans[i])
                        continue;
                if (wait) {
                        const struct gaicb *l[1] = { orphans[i] };
                        (void) gai_suspend(l, 1, NULL);
                }
                if (gai_error(orphans[i]) == EAI_INPROGRESS)
                        continue;
                gaicb_free(orphans[i]);
                orphans[i] = NULL;
        }
}

static void gaicb_abandon(struct gaicb *g) {
        if (!g)
                return;
        if (gai_cancel(g) == EAI_CANCELED || gai_error(g) != EAI_INPROGRESS) {
                gaicb_free(g);
                return;
        }
        for (size_t i = 0; i < ELEMENTSOF(orphans); i++)
                if (!orphans[i]) {
                        orphans[i] = g;
                        return;
                }
        /* Sixteen lookups stuck at once: wait for this one rather than leak it. */
        const struct gaicb *l[1] = { g };
        (void) gai_suspend(l, 1, NULL);
        gaicb_free(g);
}

/* ---- credentials ----------------------------------------------------- */

static int load_ca(SSL_CTX *ctx, const char *pem) {
        _cleanup_(BIO_free_allp) BIO *bio = NULL;
        X509_STORE *store = SSL_CTX_get_cert_store(ctx);
        X509 *x;
        int n = 0;

        bio = BIO_new_mem_buf(pem, -1);
        if (!bio)
                return -ENOMEM;
        /* A type-0 entry may hold several concatenated PEM certificates. */
        while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
                if (X509_STORE_add_cert(store, x) == 1)
                        n++;
                X509_free(x);
        }
        ERR_clear_error();
        return n > 0 ? 0 : -EINVAL;
}

static int load_client(SSL_CTX *ctx, const char *cert_pem, const char *key_pem) {
        _cleanup_(BIO_free_allp) BIO *cb = NULL, *kb = NULL;
        EVP_PKEY *key;
        X509 *x;

        cb = BIO_new_mem_buf(cert_pem, -1);
        kb = BIO_new_mem_buf(key_pem, -1);
        if (!cb || !kb)
                return -ENOMEM;
        x = PEM_read_bio_X509(cb, NULL, NULL, NULL);
        if (!x)
                return -EINVAL;
        if (SSL_CTX_use_certificate(ctx, x) != 1) {
                X509_free(x);
                return -EINVAL;
        }
        X509_free(x);
        while ((x = PEM_read_bio_X509(cb, NULL, NULL, NULL)))
                if (SSL_CTX_add_extra_chain_cert(ctx, x) != 1)
                        X509_free(x);
        ERR_clear_error();

        key = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
        if (!key)
                return -EINVAL;
        if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
                EVP_PKEY_free(key);
                ERR_clear_error();
                return -EINVAL;
        }
        EVP_PKEY_free(key);
        return 0;
}

/* peer_verify 1 (optional): verify, log, but go on whatever the result. */
static int verify_optional(int ok, X509_STORE_CTX *x) {
        if (!ok)
                log_debug("Peer certificate not verified (%s), peer_verify=1 goes on",
                          X509_verify_cert_error_string(X509_STORE_CTX_get_error(x)));
        return 1;
}

static bool is_ip_literal(const char *host) {
        struct in6_addr a6;
        struct in_addr a4;

        return inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
}

int tls_conn_init(TlsConn *c, const ModemEmu *m, uint32_t sec_tag, int peer_verify, const char *verify_host) {
        const char *ca = modem_emu_credential(m, sec_tag, 0);
        const char *cert = modem_emu_credential(m, sec_tag, 1);
        const char *key = modem_emu_credential(m, sec_tag, 2);
        int r;

        *c = (TlsConn){ .state = TLS_IDLE, .fd = -EBADF };
        c->ctx = SSL_CTX_new(TLS_client_method());
        if (!c->ctx)
                return -ENOMEM;
        /* The nRF91 modem speaks TLS 1.2 only (NRF_SPROTO_TLS1v2). */
        SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
        SSL_CTX_set_max_proto_version(c->ctx, TLS1_2_VERSION);
        SSL_CTX_set_mode(c->ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

        if (ca && load_ca(c->ctx, ca) < 0)
                log_warning("sec_tag %u: CA certificate unreadable, ignoring", sec_tag);
        if (cert && key) {
                r = load_client(c->ctx, cert, key);
                if (r < 0)
                        log_warning("sec_tag %u: client certificate or key unusable, connecting without", sec_tag);
        }
        switch (peer_verify) {
        case 0:
                SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
                break;
        case 1:
                SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, verify_optional);
                break;
        default:
                SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
                break;
        }

        c->ssl = SSL_new(c->ctx);
        if (!c->ssl)
                return -ENOMEM;
        /*
         * An IP address is no name to check (NCS sets TLS_HOSTNAME only for
         * names): such a peer is verified by its chain alone.
         */
        if (verify_host && *verify_host && !is_ip_literal(verify_host)) {
                SSL_set_tlsext_host_name(c->ssl, verify_host);
                if (peer_verify > 0) {
                        X509_VERIFY_PARAM_set_hostflags(SSL_get0_param(c->ssl), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                        if (SSL_set1_host(c->ssl, verify_host) != 1)
                                return -EINVAL;
                }
        }
        return 0;
}

/* ---- connecting ------------------------------------------------------ */

static void fail(TlsConn *c, int err) {
        c->state = TLS_FAILED;
        c->err = err;
        c->want = 0;
        c->fd = safe_close(c->fd);
}

static void try_next_address(TlsConn *c) {
        for (; c->next_addr; c->next_addr = c->next_addr->ai_next) {
                struct addrinfo *a = c->next_addr;
                int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
                if (fd < 0)
                        continue;
                if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS) {
                        c->fd = fd;
                        c->next_addr = a->ai_next;
                        c->state = TLS_CONNECTING;
                        c->want = POLLOUT;
                        return;
                }
                c->err = -errno;
                close(fd);
        }
        fail(c, c->err < 0 ? c->err : -ECONNREFUSED);
}

static void resolved(TlsConn *c, struct addrinfo *list) {
        c->addrs = list;
        c->next_addr = list;
        c->err = -ECONNREFUSED;
        try_next_address(c);
}

int tls_conn_start(TlsConn *c, const char *host, uint16_t port, uint64_t now_ms) {
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
        struct addrinfo *list = NULL;

        snprintf(c->port, sizeof c->port, "%u", port);
        c->deadline_ms = now_ms + SIM_CONNECT_TIMEOUT_MS;
        c->err = 0;

        if (is_ip_literal(host)) {
                hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
                if (getaddrinfo(host, c->port, &hints, &list) != 0)
                        return -EHOSTUNREACH;
                resolved(c, list);
                return 0;
        }

        /* A name: resolve without blocking the loop. */
        c->gai = calloc(1, sizeof *c->gai);
        struct addrinfo *h = malloc(sizeof *h);
        char *name = strdup(host);
        if (!c->gai || !h || !name) {
                free(h);
                free(name);
                free(c->gai);
                c->gai = NULL;
                return -ENOMEM;
        }
        hints.ai_flags = AI_ADDRCONFIG;
        *h = hints;
        c->gai->ar_name = name;
        c->gai->ar_service = c->port;
        c->gai->ar_request = h;
        struct gaicb *l[1] = { c->gai };
        if (getaddrinfo_a(GAI_NOWAIT, l, 1, NULL) != 0) {
                gaicb_free(c->gai);
                c->gai = NULL;
                return -EHOSTUNREACH;
        }
        c->state = TLS_RESOLVING;
        c->want = 0;
        return 0;
}

static int handshake_error(TlsConn *c, int ssl_err) {
        unsigned long e = ERR_peek_last_error();
        long v = SSL_get_verify_result(c->ssl);
        char buf[256];

        if (ssl_err == SSL_ERROR_SSL && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
                log_info("TLS handshake failed: peer certificate not trusted (%s)", X509_verify_cert_error_string(v));
                ERR_clear_error();
                return -EACCES;
        }
        if (ssl_err == SSL_ERROR_SSL) {
                ERR_error_string_n(e, buf, sizeof buf);
                log_info("TLS handshake failed: %s", buf);
                ERR_clear_error();
                return -ECONNABORTED;
        }
        ERR_clear_error();
        log_info("TLS handshake failed: connection closed");
        return -ECONNRESET;
}

static void step_handshake(TlsConn *c) {
        int r = SSL_connect(c->ssl);

        if (r == 1) {
                c->state = TLS_OPEN;
                c->want = 0;
                return;
        }
        switch (SSL_get_error(c->ssl, r)) {
        case SSL_ERROR_WANT_READ:
                c->want = POLLIN;
                return;
        case SSL_ERROR_WANT_WRITE:
                c->want = POLLOUT;
                return;
        default:
                fail(c, handshake_error(c, SSL_get_error(c->ssl, r)));
                return;
        }
}

void tls_conn_step(TlsConn *c, uint64_t now_ms) {
        switch (c->state) {
        case TLS_IDLE:
        case TLS_OPEN:
        case TLS_FAILED:
                return;
        case TLS_RESOLVING: {
                int r = gai_error(c->gai);
                if (r == EAI_INPROGRESS)
                        break;
                if (r != 0) {
                        log_info("Cannot resolve %s: %s", c->gai->ar_name, gai_strerror(r));
                        gaicb_free(c->gai);
                        c->gai = NULL;
                        fail(c, -EHOSTUNREACH);
                        return;
                }
                struct addrinfo *list = c->gai->ar_result;
                c->gai->ar_result = NULL;
                gaicb_free(c->gai);
                c->gai = NULL;
                resolved(c, list);
                return;
        }
        case TLS_CONNECTING: {
                int so_error = 0;
                socklen_t len = sizeof so_error;
                struct pollfd p = { .fd = c->fd, .events = POLLOUT };
                if (poll(&p, 1, 0) <= 0)
                        break;
                if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &so_error, &len) < 0)
                        so_error = errno;
                if (so_error != 0) {
                        c->err = -so_error;
                        c->fd = safe_close(c->fd);
                        try_next_address(c);
                        return;
                }
                (void) setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
                SSL_set_fd(c->ssl, c->fd);
                c->state = TLS_HANDSHAKE;
                step_handshake(c);
                return;
        }
        case TLS_HANDSHAKE:
                step_handshake(c);
                if (c->state != TLS_HANDSHAKE)
                        return;
                break;
        }
        if (now_ms >= c->deadline_ms)
                fail(c, -ETIMEDOUT);
}

short tls_conn_events(const TlsConn *c) {
        return c->fd >= 0 ? c->want : 0;
}

uint64_t tls_conn_deadline(const TlsConn *c) {
        switch (c->state) {
        case TLS_RESOLVING:
                return sim_now_ms() + 10; /* glibc tells no fd: look again soon */
        case TLS_CONNECTING:
        case TLS_HANDSHAKE:
                return c->deadline_ms;
        case TLS_IDLE:
        case TLS_OPEN:
        case TLS_FAILED:
                return UINT64_MAX;
        }
        return UINT64_MAX;
}

ssize_t tls_conn_read(TlsConn *c, void *buf, size_t len) {
        int r, e;

        if (c->state != TLS_OPEN)
                return -ENOTCONN;
        r = SSL_read(c->ssl, buf, (int) len);
        if (r > 0) {
                c->want &= ~POLLIN;
                return r;
        }
        e = SSL_get_error(c->ssl, r);
        switch (e) {
        case SSL_ERROR_WANT_READ:
                c->want |= POLLIN;
                return -EAGAIN;
        case SSL_ERROR_WANT_WRITE:
                c->want |= POLLOUT;
                return -EAGAIN;
        case SSL_ERROR_ZERO_RETURN:
                return 0;
        case SSL_ERROR_SYSCALL:
                ERR_clear_error();
                return errno == 0 || errno == EAGAIN ? 0 : -errno;
        default: {
                unsigned long err = ERR_get_error();
                ERR_clear_error();
                /* A peer that closes TCP without close_notify: closed all the same. */
                if (ERR_GET_REASON(err) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
                        return 0;
                return -ECONNRESET;
        }
        }
}

ssize_t tls_conn_write(TlsConn *c, const void *buf, size_t len) {
        int r;

        if (c->state != TLS_OPEN)
                return -ENOTCONN;
        r = SSL_write(c->ssl, buf, (int) len);
        if (r > 0) {
                c->want &= ~POLLOUT;
                return r;
        }
        switch (SSL_get_error(c->ssl, r)) {
        case SSL_ERROR_WANT_READ:
                c->want |= POLLIN;
                return -EAGAIN;
        case SSL_ERROR_WANT_WRITE:
                c->want |= POLLOUT;
                return -EAGAIN;
        default:
                ERR_clear_error();
                return -ECONNRESET;
        }
}

bool tls_conn_pending(const TlsConn *c) {
        return c->state == TLS_OPEN && SSL_pending(c->ssl) > 0;
}

void tls_conn_done(TlsConn *c) {
        if (c->ssl && c->state == TLS_OPEN)
                (void) SSL_shutdown(c->ssl); /* close_notify, best effort */
        gaicb_abandon(c->gai);
        c->gai = NULL;
        if (c->addrs)
                freeaddrinfo(c->addrs);
        c->addrs = c->next_addr = NULL;
        SSL_free(c->ssl);
        SSL_CTX_free(c->ctx);
        c->ssl = NULL;
        c->ctx = NULL;
        c->fd = safe_close(c->fd);
        c->state = TLS_IDLE;
        ERR_clear_error();
}

/* ---- port: sockets ---------------------------------------------------- */

static Sim *SIM(void *ctx) {
        return ctx;
}

static void socket_reset(SimSocket *k) {
        tls_conn_done(&k->conn);
        free(k->send_buf);
        *k = (SimSocket){ .conn = { .fd = -EBADF } };
}

int sim_sock_open(void *ctx, int handle, uint32_t sec_tag, int peer_verify) {
        SimSocket *k = &SIM(ctx)->sockets[handle];

        socket_reset(k);
        k->open = true;
        k->sec_tag = sec_tag;
        k->peer_verify = peer_verify;
        log_debug("Socket %d: sec_tag %u, peer_verify %d", handle, sec_tag, peer_verify);
        return 0;
}

int sim_sock_set_hostname(void *ctx, int handle, const char *hostname) {
        SimSocket *k = &SIM(ctx)->sockets[handle];

        snprintf(k->hostname, sizeof k->hostname, "%s", hostname ? hostname : "");
        return 0;
}

int sim_sock_connect(void *ctx, int handle, const char *host, uint16_t port) {
        Sim *s = SIM(ctx);
        SimSocket *k = &s->sockets[handle];
        int r;

        /* The modem has no data path before it is registered. */
        if (!modem_emu_network_ready(s->modem))
                return -NRF91_ENETDOWN;
        tls_conn_done(&k->conn);
        r = tls_conn_init(&k->conn, s->modem, k->sec_tag, k->peer_verify, k->hostname[0] ? k->hostname : NULL);
        if (r >= 0)
                r = tls_conn_start(&k->conn, host, port, sim_now_ms());
        if (r < 0) {
                tls_conn_done(&k->conn);
                return r == -EHOSTUNREACH ? -NRF91_EHOSTUNREACH : -NRF91_ENOMEM;
        }
        log_info("Socket %d: connecting to %s:%u (sec_tag %u, hostname %s)", handle, host, port, k->sec_tag,
                 k->hostname[0] ? k->hostname : "(none)");
        k->connecting = true;
        return -NRF91_EINPROGRESS;
}

/* Linux errno to the link's numbering (port.h): the same values, spelled out for the reader. */
int sim_link_errno(int e) {
        switch (e) {
        case -EACCES:
                return -NRF91_EACCES;
        case -ECONNREFUSED:
                return -NRF91_ECONNREFUSED;
        case -ECONNRESET:
                return -NRF91_ECONNRESET;
        case -ECONNABORTED:
                return -NRF91_ECONNABORTED;
        case -ETIMEDOUT:
                return -NRF91_ETIMEDOUT;
        case -EHOSTUNREACH:
                return -NRF91_EHOSTUNREACH;
        case -ENETUNREACH:
                return -NRF91_ENETUNREACH;
        case -ENETDOWN:
                return -NRF91_ENETDOWN;
        case -ENOTCONN:
                return -NRF91_ENOTCONN;
        case -ENOMEM:
                return -NRF91_ENOMEM;
        case -ENOENT:
                return -NRF91_ENOENT;
        case -EBADMSG:
                return -NRF91_EBADMSG;
        case -EMSGSIZE:
                return -NRF91_EMSGSIZE;
        default:
                return -NRF91_EIO;
        }
}

int sim_sock_send(void *ctx, int handle, const uint8_t *data, size_t len) {
        SimSocket *k = &SIM(ctx)->sockets[handle];
        ssize_t n;

        if (!k->connected)
                return -NRF91_ENOTCONN;
        n = tls_conn_write(&k->conn, data, len);
        if (n >= 0)
                return (int) n;
        if (n != -EAGAIN)
                return sim_link_errno((int) n);
        /* OpenSSL must be called again with the same data: keep a copy. */
        k->send_buf = malloc(len);
        if (!k->send_buf)
                return -NRF91_ENOMEM;
        memcpy(k->send_buf, data, len);
        k->send_len = len;
        return -NRF91_EINPROGRESS;
}

void sim_sock_recv_enable(void *ctx, int handle, bool enable) {
        SIM(ctx)->sockets[handle].recv_enabled = enable;
}

void sim_sock_close(void *ctx, int handle) {
        SimSocket *k = &SIM(ctx)->sockets[handle];

        if (k->open)
                log_debug("Socket %d: closed", handle);
        socket_reset(k);
}

void sim_sockets_close_all(Sim *s) {
        for (int h = 0; h < NRF91_MAX_SOCKETS; h++)
                socket_reset(&s->sockets[h]);
}

/* The peer or the network ended the socket: tell the core, which frees the handle. */
static void socket_lost(Sim *s, int h, int err) {
        log_info("Socket %d: closed by %s (%d)", h, err == 0 ? "peer" : "error", err);
        socket_reset(&s->sockets[h]);
        nrf91_core_sock_closed(&s->core, h, err);
}

static void service_socket(Sim *s, int h, uint64_t now_ms) {
        SimSocket *k = &s->sockets[h];

        if (k->connecting) {
                if (!modem_emu_network_ready(s->modem)) {
                        tls_conn_done(&k->conn);
                        k->connecting = false;
                        nrf91_core_sock_connected(&s->core, h, -NRF91_ENETDOWN);
                        return;
                }
                tls_conn_step(&k->conn, now_ms);
                if (k->conn.state == TLS_OPEN) {
                        k->connecting = false;
                        k->connected = true;
                        log_info("Socket %d: connected (%s)", h, SSL_get_cipher(k->conn.ssl));
                        nrf91_core_sock_connected(&s->core, h, 0);
                } else if (k->conn.state == TLS_FAILED) {
                        int err = k->conn.err;
                        tls_conn_done(&k->conn);
                        k->connecting = false;
                        nrf91_core_sock_connected(&s->core, h, sim_link_errno(err));
                }
                return;
        }
        if (!k->connected)
                return;
        if (!modem_emu_network_ready(s->modem)) {
                /* CFUN=0/4 or a lost registration takes the data path away. */
                if (k->send_buf)
                        nrf91_core_sock_sent(&s->core, h, -NRF91_ENETDOWN);
                socket_lost(s, h, -NRF91_ENETDOWN);
                return;
        }

        if (k->send_buf) {
                ssize_t n = tls_conn_write(&k->conn, k->send_buf, k->send_len);
                if (n != -EAGAIN) {
                        free(k->send_buf);
                        k->send_buf = NULL;
                        nrf91_core_sock_sent(&s->core, h, n >= 0 ? (int) n : sim_link_errno((int) n));
                        if (!s->sockets[h].open)
                                return;
                }
        }

        /* Receive only what the serial link can carry now (flow control). */
        for (int round = 0; k->recv_enabled && round < 8 && s->tx_bytes < SIM_TX_THROTTLE; round++) {
                if (k->rx_len == 0) {
                        ssize_t n = tls_conn_read(&k->conn, k->rx, sizeof k->rx);
                        if (n == -EAGAIN)
                                break;
                        if (n <= 0) {
                                if (k->send_buf)
                                        nrf91_core_sock_sent(&s->core, h, -NRF91_ECONNRESET);
                                socket_lost(s, h, n == 0 ? 0 : sim_link_errno((int) n));
                                return;
                        }
                        k->rx_len = (size_t) n;
                }
                if (nrf91_core_sock_data(&s->core, h, k->rx, k->rx_len) == -NRF91_EAGAIN)
                        break;
                k->rx_len = 0;
        }
}

void sim_sockets_service(Sim *s, uint64_t now_ms) {
        for (int h = 0; h < NRF91_MAX_SOCKETS; h++)
                if (s->sockets[h].open)
                        service_socket(s, h, now_ms);
}

short sim_socket_events(const Sim *s, int h) {
        const SimSocket *k = &s->sockets[h];
        short ev;

        if (!k->open || k->conn.fd < 0)
                return 0;
        ev = tls_conn_events(&k->conn);
        if (k->connected && k->recv_enabled && s->tx_bytes < SIM_TX_THROTTLE && k->rx_len == 0)
                ev |= POLLIN;
        return ev;
}

uint64_t sim_sockets_deadline(const Sim *s) {
        uint64_t t = UINT64_MAX;

        for (int h = 0; h < NRF91_MAX_SOCKETS; h++) {
                const SimSocket *k = &s->sockets[h];
                if (!k->open)
                        continue;
                if (k->connecting)
                        t = MIN(t, tls_conn_deadline(&k->conn));
                /* Data OpenSSL already decrypted, or bytes the core could not take yet. */
                if (k->connected && k->recv_enabled && (tls_conn_pending(&k->conn) || k->rx_len > 0) &&
                    s->tx_bytes < SIM_TX_THROTTLE)
                        t = 0;
        }
        return t;
}
