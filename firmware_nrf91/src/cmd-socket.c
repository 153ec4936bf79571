/* SPDX-License-Identifier: MIT */
/*
 * TLS sockets: #XSSOCKET, #XSSOCKETOPT, #XCONNECT, #XSEND, #XRECVCFG,
 * #XCLOSE and the #XRECV / #XCLOSE URCs.
 */
#include "core-internal.h"

#define SEC_TAG_MAX 2147483647
#define SPROTO_TLS1V2 258 /* NRF_SPROTO_TLS1v2 */

/* A handle argument: -NRF91_EINVAL out of range, -NRF91_EBADF not open. */
static int arg_socket(struct nrf91_core *c, const struct at_args *args, size_t i, struct nrf91_socket **ret) {
        int64_t h;

        if (at_param_int(args, i, 0, NRF91_MAX_SOCKETS - 1, &h) < 0)
                return -NRF91_EINVAL;
        if (!c->sockets[h].used)
                return -NRF91_EBADF;
        *ret = &c->sockets[h];
        return (int) h;
}

static void line_handle_value(struct nrf91_core *c, const char *prefix, int h, int64_t v, bool urc) {
        char buf[48];
        struct fmt f;

        fmt_init(&f, buf, sizeof buf);
        fmt_str(&f, prefix);
        fmt_int(&f, h);
        fmt_str(&f, ",");
        fmt_int(&f, v);
        if (urc)
                core_urc(c, buf, f.len);
        else
                core_line(c, buf, f.len);
}

/* AT#XSSOCKET=<family>,<type>,<role>,<sec_tag>[,<peer_verify>] */
int cmd_xssocket(struct nrf91_core *c, const struct at_cmd *cmd, const struct at_args *args) {
        int64_t family, type, role, sec_tag, peer_verify;
        char buf[48];
        struct fmt f;
        int h, r;

        (void) cmd;
        if (at_param_int(args, 0, 1, 2, &family) < 0 || /* IPv4, IPv6 */
            at_param_int(args, 1, 1, 1, &type) < 0 ||   /* TLS 1.2 stream; no DTLS */
            at_param_int(args, 2, 0, 0, &role) < 0 ||   /* client; no TLS server */
            at_param_int(args, 3, 0, SEC_TAG_MAX, &sec_tag) < 0 ||
            at_param_int_opt(args, 4, 0, 2, 2, &peer_verify) < 0)
                return -NRF91_EINVAL;

        for (h = 0; h < NRF91_MAX_SOCKETS; h++)
                if (!c->sockets[h].used)
                        break;
        if (h == NRF91_MAX_SOCKETS)
                return -NRF91_EMFILE;

        r = c->port->sock_open(c->ctx, h, (uint32_t) sec_tag, (int) peer_verify);
        if (r < 0)
                return r;
        c->sockets[h] = (struct nrf91_socket){
                .used = true,
                .sec_tag = (uint32_t) sec_tag,
                .peer_verify = (uint8_t) peer_verify,
        };
        fmt_init(&f, buf, sizeof buf);
        fmt_str(&f, "#XSSOCKET: ");
        fmt_int(&f, h);
        fmt_str(&f, ",1,");
        fmt_int(&f, SPROTO_TLS1V2);
        core_line(c, buf, f.len);
        return 0;
}

/* AT#XSSOCKETOPT=<handle>,1,2,"<hostname>": TLS_HOSTNAME; "" clears it. */
int cmd_xssocketopt(struct nrf91_core *c, const struct at_cmd *cmd, const struct at_args *args) {
        char hostname[NRF91_HOSTNAME_MAX + 1];
        struct nrf91_socket *s;
        int64_t op, name;
        int h;

        (void) cmd;
        if (at_param_int(args, 1, 1, 1, &op) < 0 || at_param_int(args, 2, 2, 2, &name) < 0 ||
            at_param_str(args, 3, hostname, sizeof hostname) < 0)
                return -NRF91_EINVAL;
        h = arg_socket(c, args, 0, &s);
        if (h < 0)
                return h;
        if (s->connected)
                return -NRF91_EISCONN;
        return c->port->sock_set_hostname(c->ctx, h, hostname[0] ? hostname : NULL);
}

static void connect_complete(struct nrf91_core *c, int h, int err) {
        if (err == 0) {
                c->sockets[h].connected = true;
                line_handle_value(c, "#XCONNECT: ", h, 1, false);
        }
        core_final(c, err);
}

/* AT#XCONNECT=<handle>,"<host>",<port> */
int cmd_xconnect(struct nrf91_core *c, const struct at_cmd *cmd, const struct at_args *args) {
        char host[NRF91_HOSTNAME_MAX + 1];
        struct nrf91_socket *s;
        int64_t port;
        int h, r;

        (void) cmd;
        if (at_param_str(args, 1, host, sizeof host) < 0 || host[0] == '\0' ||
            at_param_int(args, 2, 1, 65535, &port) < 0)
                return -NRF91_EINVAL;
        h = arg_socket(c, args, 0, &s);
        if (h < 0)
                return h;
        if (s->connected)
                return -NRF91_EISCONN;

        c->pending = NRF91_PENDING_CONNECT;
        c->pending_handle = h;
        r = c->port->sock_connect(c->ctx, h, host, (uint16_t) port);
        if (r == -NRF91_EINPROGRESS)
                return NRF91_HANDLER_ASYNC;
        c->pending = NRF91_PENDING_NONE;
        connect_complete(c, h, r < 0 ? r : 0);
        return NRF91_HANDLER_DONE;
}

void nrf91_core_sock_connected(struct nrf91_core *c, int handle, int err) {
        if (c->state != NRF91_CORE_BUSY || c->pending != NRF91_PENDING_CONNECT || c->pending_handle != handle)
                return;
        c->pending = NRF91_PENDING_NONE;
        c->state = NRF91_CORE_IDLE;
        core_begin(c);
        connect_complete(c, handle, err > 0 ? -err : err);
        core_end(c);
}

/* AT#XSEND=<handle>,<len>: OK, then exactly <len> raw bytes, then #XSEND: <handle>,<sent>. */
int cmd_xsend(struct nrf91_core *c, const struct at_cmd *cmd, const struct at_args *args) {
        struct nrf91_socket *s;
        int64_t len;
        int h;

        (void) cmd;
        if (at_param_int(args, 1, 1, NRF91_SEND_MAX, &len) < 0)
                return -NRF91_EINVAL;
        h = arg_socket(c, args, 0, &s);
        if (h < 0)
                return h;
        if (!s->connected)
                return -NRF91_ENOTCONN;

        c->payload_handle = h;
        c->payload_len = (size_t) len;
        c->payload_got = 0;
        c->payload_deadline_ms = c->port->uptime_ms(c->ctx) + NRF91_SEND_TIMEOUT_MS;
        c->state = NRF91_CORE_PAYLOAD;
        return 0;
}

static void send_complete(struct nrf91_core *c, int h, int sent_or_err) {
        char buf[48];
        struct fmt f;

        fmt_init(&f, buf, sizeof buf);
        fmt_str(&f, "#XSEND: ");
        fmt_int(&f, h);
        fmt_str(&f, ",");
        fmt_int(&f, sent_or_err);
        core_begin(c);
        /* It closes the #XSEND exchange: mark it as a final result for fault injection. */
        core_write(c, "\r\n", 2, 0);
        core_write(c, buf, f.len, 0);
        core_write(c, "\r\n", 2, NRF91_OUT_FINAL);
        core_end(c);
}

void socket_payload_complete(struct nrf91_core *c) {
        int h = c->payload_handle, r;

        c->state = NRF91_CORE_IDLE;
        if (!c->sockets[h].used || !c->sockets[h].connected) {
                send_complete(c, h, -NRF91_ENOTCONN);
                return;
        }
        r = c->port->sock_send(c->ctx, h, c->payload, c->payload_len);
        if (r == -NRF91_EINPROGRESS) {
                c->pending = NRF91_PENDING_SEND;
                c->pending_handle = h;
                c->state = NRF91_CORE_BUSY;
                return;
        }
        send_complete(c, h, r);
}

void socket_payload_timeout(struct nrf91_core *c) {
        c->state = NRF91_CORE_IDLE;
        send_complete(c, c->payload_handle, -NRF91_ETIMEDOUT);
}

void nrf91_core_sock_sent(struct nrf91_core *c, int handle, int sent_or_err) {
        if (c->state != NRF91_CORE_BUSY || c->pending != NRF91_PENDING_SEND || c->pending_handle != handle)
                return;
        c->pending = NRF91_PENDING_NONE;
        c->state = NRF91_CORE_IDLE;
        send_complete(c, handle, sent_or_err);
}

/* AT#XRECVCFG=<handle>,<flags>: 1 = received data as #XRECV URCs, 0 = off. */
int cmd_xrecvcfg(struct nrf91_core *c, const struct at_cmd *cmd, const struct at_args *args) {
        struct nrf91_socket *s;
        int64_t flags;
        int h;

        (void) cmd;
        if (at_param_int(args, 1, 0, 1, &flags) < 0)
                return -NRF91_EINVAL;
        h = arg_socket(c, args, 0, &s);
        if (h < 0)
                return h;
        s->recv_auto = flags == 1;
        c->port->sock_recv_enable(c->ctx, h, s->recv_auto);
        return 0;
}

/* AT#XCLOSE=<handle> */
int cmd_xclose(struct nrf91_core *c, const struct at_cmd *cmd, const struct at_args *args) {
        struct nrf91_socket *s;
        int h;

        (void) cmd;
        h = arg_socket(c, args, 0, &s);
        if (h < 0)
                return h;
        c->port->sock_close(c->ctx, h);
        *s = (struct nrf91_socket){ .used = false };
        line_handle_value(c, "#XCLOSE: ", h, 0, false);
        return 0;
}

int nrf91_core_sock_data(struct nrf91_core *c, int handle, const uint8_t *data, size_t len) {
        char buf[40];
        struct fmt f;

        if (handle < 0 || handle >= NRF91_MAX_SOCKETS || !c->sockets[handle].used || len == 0)
                return 0; /* nobody to give it to */
        if (len > NRF91_RECV_MAX)
                return -NRF91_EMSGSIZE;
        fmt_init(&f, buf, sizeof buf);
        fmt_str(&f, "#XRECV: ");
        fmt_int(&f, handle);
        fmt_str(&f, ",");
        fmt_int(&f, (int64_t) len);
        return core_urc_payload(c, buf, f.len, data, len);
}

void nrf91_core_sock_closed(struct nrf91_core *c, int handle, int err) {
        if (handle < 0 || handle >= NRF91_MAX_SOCKETS || !c->sockets[handle].used)
                return;
        if (err > 0)
                err = -err;
        if (c->state == NRF91_CORE_BUSY && c->pending_handle == handle) {
                if (c->pending == NRF91_PENDING_CONNECT)
                        nrf91_core_sock_connected(c, handle, err < 0 ? err : -NRF91_ECONNRESET);
                else if (c->pending == NRF91_PENDING_SEND)
                        nrf91_core_sock_sent(c, handle, err < 0 ? err : -NRF91_ECONNRESET);
        }
        c->sockets[handle] = (struct nrf91_socket){ .used = false };
        line_handle_value(c, "#XCLOSE: ", handle, err, true);
}

void sockets_drop_all(struct nrf91_core *c, int err) {
        for (int h = 0; h < NRF91_MAX_SOCKETS; h++) {
                if (!c->sockets[h].used)
                        continue;
                c->port->sock_close(c->ctx, h);
                c->sockets[h] = (struct nrf91_socket){ .used = false };
                line_handle_value(c, "#XCLOSE: ", h, err, true);
        }
}
