/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "modem-tls.h"
#include "util.h"

/* The steps of opening a socket, in order (modem-link.md, "Firmware commands"). */
typedef enum OpenStep {
        OPEN_SOCKET,   /* AT#XSSOCKET=1,1,0,<tag>,2 → #XSSOCKET: <h>,1,258 */
        OPEN_HOSTNAME, /* AT#XSSOCKETOPT=<h>,1,2,"<host>" */
        OPEN_RECVCFG,  /* AT#XRECVCFG=<h>,1 */
        OPEN_CONNECT,  /* AT#XCONNECT=<h>,"<host>",<port> → #XCONNECT: <h>,1 */
        _OPEN_STEP_MAX,
} OpenStep;

struct ModemTls {
        AtEngine *engine;
        unsigned sec_tag;
        ModemTlsState state;
        Bridge *bridge;
        char host[MODEM_TLS_HOSTNAME_MAX + 1];
        uint16_t port;
        int handle; /* -1: none */
        int orphan; /* a handle that may have outlived a lost link, closed before the next open; -1: none */
        bool swept;  /* the sockets an earlier run of the daemon may have left open were closed */

        OpenStep step;
        int64_t step_id; /* the open command in flight, 0: none */

        /* One #XSEND in flight; its bytes stay here until the modem took them all. */
        int64_t send_id;
        uint8_t pending[MODEM_TLS_SEND_MAX];
        size_t pending_len, pending_off;

        /* Receive switch: what the bridge wants, what the modem was told, a change in flight. */
        bool pause_wanted, pause_applied;
        int64_t recvcfg_id;

        /*
         * Inside an op the bridge called: a failure the engine reports at once
         * is returned to the bridge instead of an upcall into it.
         */
        bool in_op;
        int op_error;

        uint64_t sends, bytes_sent, bytes_received;
};

/* Command ids: 0 none, ID_STARTING while at_engine_send() runs (its callback may run inside it). */
#define ID_STARTING INT64_C(-1)

static const struct {
        const char *name;
        uint64_t timeout_usec;
} open_steps[_OPEN_STEP_MAX] = {
        [OPEN_SOCKET] = { "#XSSOCKET", MODEM_TLS_COMMAND_TIMEOUT_USEC },
        [OPEN_HOSTNAME] = { "#XSSOCKETOPT", MODEM_TLS_COMMAND_TIMEOUT_USEC },
        [OPEN_RECVCFG] = { "#XRECVCFG", MODEM_TLS_COMMAND_TIMEOUT_USEC },
        [OPEN_CONNECT] = { "#XCONNECT", MODEM_TLS_CONNECT_TIMEOUT_USEC },
};

static const char *const modem_tls_state_table[_MODEM_TLS_STATE_MAX] = {
        [MODEM_TLS_IDLE] = "idle",
        [MODEM_TLS_OPENING] = "opening",
        [MODEM_TLS_CONNECTED] = "connected",
        [MODEM_TLS_CLOSED] = "closed",
};

const char *modem_tls_state_to_string(ModemTlsState s) {
        return s >= 0 && s < _MODEM_TLS_STATE_MAX ? modem_tls_state_table[s] : NULL;
}

/* The firmware's socket errors (Linux errno numbers, firmware_nrf91/doc/at-commands.md). */
static const struct {
        int error;
        const char *text;
} socket_errors[] = {
        { EBADF, "the socket handle is not open" },
        { EACCES, "the server certificate is not trusted by the CA of the security tag, or does not name the host" },
        { EMFILE, "all 8 sockets of the modem are in use" },
        { ENETDOWN, "the modem is not registered to a network" },
        { ECONNABORTED, "the server aborted the handshake (it refused the client certificate)" },
        { ECONNRESET, "the peer closed the connection" },
        { ENOTCONN, "the socket is not connected" },
        { ETIMEDOUT, "no answer in time" },
        { ECONNREFUSED, "nothing listens on that port" },
        { EHOSTUNREACH, "the host name does not resolve" },
        { EREMOTEIO, "the modem refused the command" },
};

const char *modem_tls_error_to_string(int error) {
        for (size_t i = 0; i < ELEMENTSOF(socket_errors); i++)
                if (socket_errors[i].error == -error || socket_errors[i].error == error)
                        return socket_errors[i].text;
        return NULL;
}

/* The negative errno of a failed #X command. */
static int response_error(const AtResponse *r) {
        int k = at_response_firmware_errno(r);
        return k < 0 ? k : -EPROTO;
}

static void modem_tls_enter_state(ModemTls *t, ModemTlsState s) {
        if (t->state == s)
                return;
        log_debug("Modem TLS socket %s -> %s", modem_tls_state_to_string(t->state), modem_tls_state_to_string(s));
        t->state = s;
}

static void cancel_commands(ModemTls *t) {
        if (t->step_id > 0)
                at_engine_cancel(t->engine, t->step_id);
        if (t->send_id > 0)
                at_engine_cancel(t->engine, t->send_id);
        if (t->recvcfg_id > 0)
                at_engine_cancel(t->engine, t->recvcfg_id);
        t->step_id = t->send_id = t->recvcfg_id = 0;
        t->pending_len = t->pending_off = 0;
}

/* Forgets the socket; with close_in_modem, tells the modem to close it (nobody waits for the answer). */
static void release_socket(ModemTls *t, bool close_in_modem) {
        char cmd[32];
        int64_t id;

        cancel_commands(t);
        if (t->handle >= 0 && close_in_modem) {
                snprintf(cmd, sizeof cmd, "AT#XCLOSE=%d", t->handle);
                id = at_engine_send(t->engine, cmd, MODEM_TLS_COMMAND_TIMEOUT_USEC, NULL, NULL);
                if (id < 0)
                        log_debug_errno((int) id, "Cannot queue %s, ignoring: %m", cmd);
        }
        t->handle = -1;
}

/* The socket is gone; the bridge hears of it once. */
static void modem_tls_fail(ModemTls *t, int error, bool close_in_modem) {
        Bridge *b = t->bridge;

        release_socket(t, close_in_modem);
        modem_tls_enter_state(t, MODEM_TLS_CLOSED);
        if (t->in_op) {
                t->op_error = error;
                return;
        }
        if (b)
                bridge_remote_closed(b, error);
}

static void run_step(ModemTls *t);
static void sync_recvcfg(ModemTls *t);

static void on_step_done(AtEngine *e, const AtResponse *r, void *userdata) {
        ModemTls *t = userdata;
        const char *name = open_steps[t->step].name;
        const char *what;
        char desc[160];
        AtCursor c;
        int64_t h, v;
        int error;
        (void) e;

        t->step_id = 0;
        if (r->result < 0) {
                error = response_error(r);
                what = modem_tls_error_to_string(error);
                /* The code of a #X command is an errno number, not one of at_response_describe()'s modem codes. */
                if (r->final == AT_LINE_CME_ERROR)
                        snprintf(desc, sizeof desc, "+CME ERROR: %u", r->code);
                else
                        (void) at_response_describe(r, desc, sizeof desc);
                log_warning_errno(error, "Modem TLS connection to %s:%u failed at %s (security tag %u): %s (%s)", t->host,
                                  t->port, name, t->sec_tag, what ? what : strerror(-error), desc);
                /* After a failed #XCONNECT the handle stays open in the modem. */
                modem_tls_fail(t, error, true);
                return;
        }

        switch (t->step) {
        case OPEN_SOCKET:
                /* #XSSOCKET: <handle>,1,258 (TLS 1.2) */
                if (r->n_lines != 1 || at_cursor_init(&c, r->lines[0], strlen(r->lines[0]), "#XSSOCKET") < 0 ||
                    at_cursor_int(&c, 0, 7, &h) < 0) {
                        log_warning("Modem TLS: unexpected answer to #XSSOCKET: '%s'",
                                    r->n_lines ? r->lines[0] : "(none)");
                        modem_tls_fail(t, -EBADMSG, false);
                        return;
                }
                t->handle = (int) h;
                break;
        case OPEN_CONNECT:
                /* #XCONNECT: <handle>,1 */
                if (r->n_lines != 1 || at_cursor_init(&c, r->lines[0], strlen(r->lines[0]), "#XCONNECT") < 0 ||
                    at_cursor_int(&c, 0, 7, &h) < 0 || at_cursor_int(&c, 0, 1, &v) < 0 || h != t->handle || v != 1) {
                        log_warning("Modem TLS: unexpected answer to #XCONNECT: '%s'",
                                    r->n_lines ? r->lines[0] : "(none)");
                        modem_tls_fail(t, -EBADMSG, true);
                        return;
                }
                break;
        case OPEN_HOSTNAME:
        case OPEN_RECVCFG:
        case _OPEN_STEP_MAX:
                break;
        }

        if (t->step + 1 < _OPEN_STEP_MAX) {
                t->step++;
                run_step(t);
                return;
        }
        log_info("Modem TLS socket %d connected to %s:%u (security tag %u)", t->handle, t->host, t->port, t->sec_tag);
        modem_tls_enter_state(t, MODEM_TLS_CONNECTED);
        bridge_remote_connected(t->bridge);
        /* A pause asked for while connecting is applied now. */
        sync_recvcfg(t);
}

static void run_step(ModemTls *t) {
        char cmd[64 + MODEM_TLS_HOSTNAME_MAX * 2];
        int64_t id;

        switch (t->step) {
        case OPEN_SOCKET:
                /* IPv4, TLS 1.2 stream, client, peer verification required. */
                snprintf(cmd, sizeof cmd, "AT#XSSOCKET=1,1,0,%u,2", t->sec_tag);
                break;
        case OPEN_HOSTNAME:
                snprintf(cmd, sizeof cmd, "AT#XSSOCKETOPT=%d,1,2,\"%s\"", t->handle, t->host);
                break;
        case OPEN_RECVCFG:
                snprintf(cmd, sizeof cmd, "AT#XRECVCFG=%d,1", t->handle);
                break;
        case OPEN_CONNECT:
                snprintf(cmd, sizeof cmd, "AT#XCONNECT=%d,\"%s\",%u", t->handle, t->host, t->port);
                break;
        case _OPEN_STEP_MAX:
                return;
        }
        t->step_id = ID_STARTING;
        id = at_engine_send(t->engine, cmd, open_steps[t->step].timeout_usec, on_step_done, t);
        if (id < 0) {
                t->step_id = 0;
                log_warning_errno((int) id, "Modem TLS: cannot send %s: %m", open_steps[t->step].name);
                modem_tls_fail(t, (int) id, true);
                return;
        }
        /* Unless the engine completed it at once (a port found gone). */
        if (t->step_id == ID_STARTING)
                t->step_id = id;
}

static bool hostname_valid(const char *host) {
        size_t n = strlen(host);

        if (n == 0 || n > MODEM_TLS_HOSTNAME_MAX)
                return false;
        /* It is quoted on the AT line, which has no escapes. */
        for (const char *p = host; *p; p++)
                if (*p <= ' ' || *p >= 127 || *p == '"' || *p == ',')
                        return false;
        return true;
}

void modem_tls_sweep(ModemTls *t) {
        char cmd[32];

        if (t->state == MODEM_TLS_OPENING || t->state == MODEM_TLS_CONNECTED)
                return;
        if (!t->swept) {
                /*
                 * The daemon holds the modem port alone (it is locked), so any socket open
                 * in the modem now was left by an earlier run, one killed before its #XCLOSE:
                 * close them all once, or they would use up the modem's eight.
                 */
                for (int h = 0; h < MODEM_TLS_SOCKETS_MAX; h++) {
                        snprintf(cmd, sizeof cmd, "AT#XCLOSE=%d", h);
                        (void) at_engine_send(t->engine, cmd, MODEM_TLS_COMMAND_TIMEOUT_USEC, NULL, NULL);
                }
                t->swept = true;
                t->orphan = -1;
        }
        if (t->orphan >= 0) {
                /* +CME ERROR: 9 if the modem rebooted meanwhile: nobody waits for the answer. */
                snprintf(cmd, sizeof cmd, "AT#XCLOSE=%d", t->orphan);
                (void) at_engine_send(t->engine, cmd, MODEM_TLS_COMMAND_TIMEOUT_USEC, NULL, NULL);
                t->orphan = -1;
        }
}

static int tls_open(void *impl, Bridge *b, const char *host, uint16_t port) {
        ModemTls *t = impl;

        if (!host || !hostname_valid(host) || port == 0)
                return -EINVAL;
        switch (t->state) {
        case MODEM_TLS_IDLE:
        case MODEM_TLS_CLOSED:
                break;
        case MODEM_TLS_OPENING:
        case MODEM_TLS_CONNECTED:
        case _MODEM_TLS_STATE_MAX:
                return -EBUSY;
        }
        release_socket(t, false);
        modem_tls_sweep(t);
        t->bridge = b;
        snprintf(t->host, sizeof t->host, "%s", host);
        t->port = port;
        t->pause_wanted = t->pause_applied = false;
        t->step = OPEN_SOCKET;
        modem_tls_enter_state(t, MODEM_TLS_OPENING);
        t->in_op = true;
        t->op_error = 0;
        run_step(t);
        t->in_op = false;
        return t->op_error;
}

static int start_send(ModemTls *t);

static void on_sent(AtEngine *e, const AtResponse *r, void *userdata) {
        ModemTls *t = userdata;
        const char *what;
        AtCursor c;
        int64_t h, sent;
        (void) e;

        t->send_id = 0;
        if (r->result < 0) {
                int error = response_error(r);
                log_warning_errno(error, "Modem TLS socket %d: #XSEND failed: %m", t->handle);
                modem_tls_fail(t, error, true);
                return;
        }
        /* #XSEND: <handle>,<sent or -errno> */
        if (r->n_lines < 1 ||
            at_cursor_init(&c, r->lines[r->n_lines - 1], strlen(r->lines[r->n_lines - 1]), "#XSEND") < 0 ||
            at_cursor_int(&c, 0, 7, &h) < 0 || at_cursor_int(&c, -4095, MODEM_TLS_SEND_MAX, &sent) < 0 ||
            h != t->handle) {
                log_warning("Modem TLS: unexpected end of #XSEND: '%s'",
                            r->n_lines ? r->lines[r->n_lines - 1] : "(none)");
                modem_tls_fail(t, -EBADMSG, true);
                return;
        }
        if (sent <= 0 || (size_t) sent > t->pending_len - t->pending_off) {
                int error = sent < 0 ? (int) sent : -EIO;
                what = modem_tls_error_to_string(error);
                log_warning_errno(error, "Modem TLS socket %d: sending failed: %s", t->handle, what ? what : strerror(-error));
                modem_tls_fail(t, error, true);
                return;
        }
        t->sends++;
        t->bytes_sent += (uint64_t) sent;
        t->pending_off += (size_t) sent;
        if (t->pending_off < t->pending_len) {
                /* The TLS layer took part of it: the rest goes first. */
                int k = start_send(t);
                if (k < 0)
                        modem_tls_fail(t, k, true);
                return;
        }
        t->pending_len = t->pending_off = 0;
        bridge_remote_writable(t->bridge);
}

static int start_send(ModemTls *t) {
        size_t n = t->pending_len - t->pending_off;
        char cmd[48];
        int64_t id;

        snprintf(cmd, sizeof cmd, "AT#XSEND=%d,%zu", t->handle, n);
        t->send_id = ID_STARTING;
        id = at_engine_send_with_payload(t->engine, cmd, t->pending + t->pending_off, n, "#XSEND: ",
                                         MODEM_TLS_SEND_TIMEOUT_USEC, on_sent, t);
        if (id < 0) {
                t->send_id = 0;
                return log_warning_errno((int) id, "Modem TLS socket %d: cannot queue #XSEND: %m", t->handle);
        }
        if (t->send_id == ID_STARTING)
                t->send_id = id;
        return 0;
}

static ssize_t tls_send(void *impl, const uint8_t *buf, size_t len) {
        ModemTls *t = impl;
        size_t n;
        int r;

        if (t->state != MODEM_TLS_CONNECTED)
                return -ENOTCONN;
        if (t->pending_len > 0)
                return 0; /* one #XSEND at a time; bridge_remote_writable() follows */
        t->op_error = 0;
        if (len == 0)
                return 0;
        n = MIN(len, (size_t) MODEM_TLS_SEND_MAX);
        memcpy(t->pending, buf, n);
        t->pending_len = n;
        t->pending_off = 0;
        t->in_op = true;
        t->op_error = 0;
        r = start_send(t);
        t->in_op = false;
        if (r < 0) {
                t->pending_len = 0;
                return r;
        }
        if (t->op_error < 0)
                return t->op_error;
        return (ssize_t) n;
}

static void on_recvcfg_done(AtEngine *e, const AtResponse *r, void *userdata) {
        ModemTls *t = userdata;
        (void) e;

        t->recvcfg_id = 0;
        if (r->result < 0) {
                int error = response_error(r);
                log_warning_errno(error, "Modem TLS socket %d: #XRECVCFG failed: %m", t->handle);
                modem_tls_fail(t, error, true);
                return;
        }
        sync_recvcfg(t);
}

/* Tells the modem what the bridge wants, one #XRECVCFG at a time. */
static void sync_recvcfg(ModemTls *t) {
        char cmd[40];
        int64_t id;

        if (t->state != MODEM_TLS_CONNECTED || t->recvcfg_id != 0 || t->pause_wanted == t->pause_applied)
                return;
        snprintf(cmd, sizeof cmd, "AT#XRECVCFG=%d,%d", t->handle, t->pause_wanted ? 0 : 1);
        t->pause_applied = t->pause_wanted;
        log_debug("Modem TLS socket %d: receiving %s", t->handle, t->pause_wanted ? "paused" : "resumed");
        t->recvcfg_id = ID_STARTING;
        id = at_engine_send(t->engine, cmd, MODEM_TLS_COMMAND_TIMEOUT_USEC, on_recvcfg_done, t);
        if (id < 0) {
                t->recvcfg_id = 0;
                log_warning_errno((int) id, "Modem TLS socket %d: cannot queue #XRECVCFG: %m", t->handle);
                modem_tls_fail(t, (int) id, true);
                return;
        }
        if (t->recvcfg_id == ID_STARTING)
                t->recvcfg_id = id;
}

static void tls_pause_recv(void *impl, bool pause) {
        ModemTls *t = impl;

        t->pause_wanted = pause;
        /* A failure at once leaves the socket closed; the bridge learns it from its next send(). */
        t->in_op = true;
        sync_recvcfg(t);
        t->in_op = false;
}

static void tls_close(void *impl) {
        ModemTls *t = impl;

        switch (t->state) {
        case MODEM_TLS_OPENING:
        case MODEM_TLS_CONNECTED:
                log_debug("Modem TLS socket %d: closing", t->handle);
                release_socket(t, true);
                modem_tls_enter_state(t, MODEM_TLS_CLOSED);
                break;
        case MODEM_TLS_IDLE:
        case MODEM_TLS_CLOSED:
        case _MODEM_TLS_STATE_MAX:
                break;
        }
        t->bridge = NULL;
}

const RemoteSocketOps modem_tls_ops = {
        .open = tls_open,
        .send = tls_send,
        .pause_recv = tls_pause_recv,
        .close = tls_close,
};

/* #XRECV: <handle>,<len> and its bytes. */
static void on_xrecv(AtEngine *e, const char *line, const uint8_t *payload, size_t len, void *userdata) {
        ModemTls *t = userdata;
        AtCursor c;
        uint64_t n;
        int64_t h;
        (void) e;

        if (at_cursor_init(&c, line, strlen(line), "#XRECV") < 0 || at_cursor_int(&c, 0, 7, &h) < 0 ||
            at_cursor_uint(&c, AT_BINARY_MAX, &n) < 0 || !payload || n != len) {
                log_debug("Modem TLS: malformed '%s', ignoring", line);
                return;
        }
        if (h != t->handle || (t->state != MODEM_TLS_CONNECTED && t->state != MODEM_TLS_OPENING)) {
                log_debug("Modem TLS: %zu bytes for socket %" PRIi64 ", which is not ours, ignoring", len, h);
                return;
        }
        t->bytes_received += len;
        /* On -ENOBUFS the bridge closes, and so this socket through close(). */
        (void) bridge_remote_recv(t->bridge, payload, len);
}

/* #XCLOSE: <handle>,<err>: the peer closed (0) or the socket failed; the handle is free. */
static void on_xclose(AtEngine *e, const char *line, const uint8_t *payload, size_t len, void *userdata) {
        ModemTls *t = userdata;
        const char *what;
        AtCursor c;
        int64_t h, err;
        (void) e, (void) payload, (void) len;

        if (at_cursor_init(&c, line, strlen(line), "#XCLOSE") < 0 || at_cursor_int(&c, 0, 7, &h) < 0 ||
            at_cursor_int(&c, -4095, 0, &err) < 0) {
                log_debug("Modem TLS: malformed '%s', ignoring", line);
                return;
        }
        /* Also the answer to our own #XCLOSE, after which the handle is no longer ours. */
        if (h != t->handle || (t->state != MODEM_TLS_CONNECTED && t->state != MODEM_TLS_OPENING))
                return;
        what = modem_tls_error_to_string((int) err);
        if (err == 0)
                log_info("Modem TLS socket %d: closed by the peer", t->handle);
        else
                log_warning_errno((int) err, "Modem TLS socket %d failed: %s", t->handle, what ? what : strerror((int) -err));
        t->handle = -1; /* freed in the modem already */
        modem_tls_fail(t, err == 0 ? -ECONNRESET : (int) err, false);
}

void modem_tls_link_lost(ModemTls *t, int error) {
        switch (t->state) {
        case MODEM_TLS_OPENING:
        case MODEM_TLS_CONNECTED:
                log_info("Modem TLS socket %d: the modem link was lost", t->handle);
                /* After a reboot it is gone; after a lost port it may live on in the modem. */
                t->orphan = t->handle;
                t->handle = -1;
                modem_tls_fail(t, error < 0 ? error : -ECONNRESET, false);
                break;
        case MODEM_TLS_IDLE:
        case MODEM_TLS_CLOSED:
        case _MODEM_TLS_STATE_MAX:
                break;
        }
}

int modem_tls_new(AtEngine *engine, unsigned sec_tag, ModemTls **ret) {
        _cleanup_(modem_tls_freep) ModemTls *t = NULL;
        int r;

        if (!engine || !ret)
                return -EINVAL;
        t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        t->engine = engine;
        t->sec_tag = sec_tag;
        t->handle = t->orphan = -1;
        t->state = MODEM_TLS_IDLE;
        r = at_engine_add_urc(engine, "#XRECV:", on_xrecv, t);
        if (r < 0)
                return r;
        r = at_engine_add_urc(engine, "#XCLOSE:", on_xclose, t);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(t);
        return 0;
}

/* Frees before the engine does; a socket still open is closed in the modem. */
ModemTls *modem_tls_free(ModemTls *t) {
        if (!t)
                return NULL;
        release_socket(t, true);
        at_engine_remove_urc(t->engine, "#XRECV:", on_xrecv, t);
        at_engine_remove_urc(t->engine, "#XCLOSE:", on_xclose, t);
        free(t);
        return NULL;
}

ModemTlsState modem_tls_get_state(const ModemTls *t) {
        return t->state;
}

int modem_tls_handle(const ModemTls *t) {
        return t->handle;
}

uint64_t modem_tls_sends(const ModemTls *t) {
        return t->sends;
}

uint64_t modem_tls_bytes_sent(const ModemTls *t) {
        return t->bytes_sent;
}

uint64_t modem_tls_bytes_received(const ModemTls *t) {
        return t->bytes_received;
}
