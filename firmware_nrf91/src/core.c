/* SPDX-License-Identifier: MIT */
/*
 * The AT server: input state machine, command table, final results and the
 * output discipline (URCs never split a response or a counted payload).
 */
#include <string.h>

#include "core-internal.h"

#define T(x) (1u << (x))
#define T_EXEC T(AT_CMD_EXEC)
#define T_SET T(AT_CMD_SET)
#define T_TEST T(AT_CMD_TEST)

/* The firmware's own commands (spec modem-link.md, "Firmware commands"). */
static const struct nrf91_command commands[] = {
        { "#XUUID", cmd_xuuid, T_EXEC | T_TEST, 0, 0, NULL },
        { "#XSMVER", cmd_xsmver, T_EXEC | T_TEST, 0, 0, NULL },
        { "#XRESET", cmd_xreset, T_EXEC | T_TEST, 0, 0, NULL },
        { "#XMODEMRESET", cmd_xmodemreset, T_EXEC | T_TEST, 0, 0, NULL },
        { "#XSSOCKET", cmd_xssocket, T_SET | T_TEST, 4, 5,
          "#XSSOCKET: (1,2),(1),(0),<sec_tag>,<peer_verify>" },
        { "#XSSOCKETOPT", cmd_xssocketopt, T_SET | T_TEST, 4, 4,
          "#XSSOCKETOPT: <handle>,(1),(2),<hostname>" },
        { "#XCONNECT", cmd_xconnect, T_SET | T_TEST, 3, 3, "#XCONNECT: <handle>,<host>,<port>" },
        { "#XSEND", cmd_xsend, T_SET | T_TEST, 2, 2, "#XSEND: <handle>,(1-4096)" },
        { "#XRECVCFG", cmd_xrecvcfg, T_SET | T_TEST, 2, 2, "#XRECVCFG: <handle>,(0,1)" },
        { "#XCLOSE", cmd_xclose, T_SET | T_TEST, 1, 1, "#XCLOSE: <handle>" },
        { "#XDOWNLOAD", cmd_xdownload, T_SET | T_TEST, 2, 3,
          "#XDOWNLOAD: <url>,<sec_tag>[,<offset>] | 0,<id>" },
        { "#XFOTA", cmd_xfota, T_SET | T_TEST, 1, 3, "#XFOTA: (0,1,2,3,9),<url>,<sec_tag>" },
        { "#XFOTAINFO", cmd_xfotainfo, T_EXEC | T_TEST, 0, 0, NULL },
};

static const struct nrf91_command *command_find(const struct at_cmd *cmd) {
        for (size_t i = 0; i < ELEMENTS(commands); i++)
                if (at_cmd_is(cmd, commands[i].name))
                        return &commands[i];
        return NULL;
}

static uint64_t now(const struct nrf91_core *c) {
        return c->port->uptime_ms(c->ctx);
}

/* ---- output ---------------------------------------------------------- */

void core_write(struct nrf91_core *c, const void *data, size_t len, unsigned flags) {
        if (len > 0)
                c->port->serial_write(c->ctx, data, len, flags);
}

static void write_line(struct nrf91_core *c, const char *line, size_t len, unsigned flags) {
        core_write(c, "\r\n", 2, 0);
        core_write(c, line, len, 0);
        core_write(c, "\r\n", 2, flags);
}

void core_line(struct nrf91_core *c, const char *line, size_t len) {
        write_line(c, line, len, 0);
}

void core_final(struct nrf91_core *c, int r) {
        char buf[32];
        struct fmt f;

        if (r == 0) {
                write_line(c, "OK", 2, NRF91_OUT_FINAL);
        } else if (r == -NRF91_EINVAL) {
                write_line(c, "ERROR", 5, NRF91_OUT_FINAL);
        } else {
                fmt_init(&f, buf, sizeof buf);
                fmt_str(&f, "+CME ERROR: ");
                fmt_int(&f, r < 0 ? -(int64_t) r : r);
                write_line(c, buf, f.len, NRF91_OUT_FINAL);
        }
}

bool core_urc_fits(const struct nrf91_core *c, size_t n) {
        return n <= sizeof c->urc_queue - c->urc_len;
}

static void urc_enqueue(struct nrf91_core *c, const void *data, size_t len) {
        memcpy(c->urc_queue + c->urc_len, data, len);
        c->urc_len += len;
}

void core_urc(struct nrf91_core *c, const char *line, size_t len) {
        if (c->state == NRF91_CORE_OFF)
                return;
        if (c->atomic == 0) {
                write_line(c, line, len, NRF91_OUT_URC);
                return;
        }
        if (!core_urc_fits(c, len + 4)) {
                /* Bounded: a burst of modem URCs during one command loses the newest. */
                c->urcs_dropped++;
                return;
        }
        urc_enqueue(c, "\r\n", 2);
        urc_enqueue(c, line, len);
        urc_enqueue(c, "\r\n", 2);
}

size_t core_urc_payload_size(size_t line_len, size_t len) {
        return line_len + 4 + len;
}

int core_urc_payload(struct nrf91_core *c, const char *line, size_t line_len, const uint8_t *data, size_t len) {
        if (c->state == NRF91_CORE_OFF)
                return 0;
        if (c->atomic > 0) {
                if (!core_urc_fits(c, core_urc_payload_size(line_len, len)))
                        return -NRF91_EAGAIN;
                urc_enqueue(c, "\r\n", 2);
                urc_enqueue(c, line, line_len);
                urc_enqueue(c, "\r\n", 2);
                urc_enqueue(c, data, len);
                return 0;
        }
        /* Header and bytes go out as one unit: nothing may come between them. */
        core_begin(c);
        core_write(c, "\r\n", 2, NRF91_OUT_URC);
        core_write(c, line, line_len, NRF91_OUT_URC);
        core_write(c, "\r\n", 2, NRF91_OUT_URC);
        core_write(c, data, len, NRF91_OUT_URC);
        core_end(c);
        return 0;
}

void core_begin(struct nrf91_core *c) {
        c->atomic++;
}

void core_end(struct nrf91_core *c) {
        if (--c->atomic > 0)
                return;
        /* Flush what waited, keeping the window closed while writing. */
        c->atomic++;
        while (c->urc_len > 0) {
                size_t n = c->urc_len;
                core_write(c, c->urc_queue, n, NRF91_OUT_URC);
                memmove(c->urc_queue, c->urc_queue + n, c->urc_len - n);
                c->urc_len -= n;
        }
        c->atomic--;
}

/* ---- commands -------------------------------------------------------- */

static bool is_firmware_command(const struct at_cmd *cmd) {
        return cmd->name_len >= 2 && cmd->name[0] == '#' && (cmd->name[1] == 'X' || cmd->name[1] == 'x');
}

/*
 * The link reports modem errors numerically, "as if AT+CMEE=1 were always
 * on" (spec modem-link.md), whatever the host does with +CMEE: the modem
 * gets it after every start and after every +CMEE write.
 */
void core_modem_setup(struct nrf91_core *c) {
        static const char cmee[] = "AT+CMEE=1";

        (void) c->port->modem_at(c->ctx, cmee, sizeof cmee - 1, c->response, sizeof c->response);
}

static bool is_cmee_write(const char *line, size_t len) {
        struct at_cmd cmd;

        return at_cmd_parse(line, len, &cmd) == 0 && cmd.type == AT_CMD_SET && at_cmd_is(&cmd, "+CMEE");
}

static void pass_through(struct nrf91_core *c, const char *line, size_t len) {
        int r = c->port->modem_at(c->ctx, line, len, c->response, sizeof c->response);

        if (r < 0 || (size_t) r > sizeof c->response)
                core_final(c, -NRF91_EINVAL);
        else
                core_write(c, c->response, (size_t) r, NRF91_OUT_FINAL);
        if (is_cmee_write(line, len))
                core_modem_setup(c);
}

static int run_command(struct nrf91_core *c, const struct nrf91_command *e, const struct at_cmd *cmd) {
        struct at_args args = { .count = 0 };

        if (!(e->types & T(cmd->type)))
                return -NRF91_EINVAL;
        if (cmd->type == AT_CMD_TEST) {
                if (e->test)
                        core_line(c, e->test, strlen(e->test));
                return 0;
        }
        if (cmd->type == AT_CMD_SET) {
                if (at_args_parse(cmd->params, cmd->params_len, 0, &args) < 0 ||
                    args.count < e->min_args || args.count > e->max_args)
                        return -NRF91_EINVAL;
        }
        return e->handler(c, cmd, &args);
}

static void execute_line(struct nrf91_core *c) {
        const char *line = c->line.buf;
        size_t len = c->line.len;
        const struct nrf91_command *e;
        struct at_cmd cmd;

        core_begin(c);
        if (at_cmd_parse(line, len, &cmd) < 0) {
                core_final(c, -NRF91_EINVAL);
        } else if (is_firmware_command(&cmd) && (e = command_find(&cmd))) {
                int r = run_command(c, e, &cmd);
                if (r == NRF91_HANDLER_ASYNC)
                        c->state = NRF91_CORE_BUSY;
                else if (r != NRF91_HANDLER_DONE)
                        core_final(c, r);
        } else {
                pass_through(c, line, len);
        }
        at_line_discard(&c->line);
        core_end(c);

        if (c->reset_requested) {
                c->reset_requested = false;
                c->state = NRF91_CORE_OFF;
                c->port->reset(c->ctx);
        }
}

/* ---- lifecycle and input --------------------------------------------- */

void nrf91_core_init(struct nrf91_core *c, const struct nrf91_port *port, void *ctx) {
        memset(c, 0, sizeof *c);
        c->port = port;
        c->ctx = ctx;
        c->state = NRF91_CORE_OFF;
        at_line_init(&c->line);
}

void nrf91_core_boot(struct nrf91_core *c) {
        const struct nrf91_port *port = c->port;
        void *ctx = c->ctx;
        struct nrf91_fota_result res = { .valid = false };
        uint16_t r = 0;

        /* Everything from before the (re)start is gone, as on the device. */
        nrf91_core_init(c, port, ctx);
        /* Download ids differ from boot to boot, so a stale URC cannot be taken for a new transfer. */
        if (port->random(ctx, &r, sizeof r) < 0)
                r = 0;
        c->next_download_id = 1 + (int32_t) (r % 1000u) * 1000;
        c->state = NRF91_CORE_IDLE;
        c->last_input_ms = now(c);
        core_modem_setup(c);

        core_urc(c, "Ready", 5);
        port->fota_boot_result(ctx, &res);
        if (res.valid)
                fota_result_line(c, &res, true);
}

bool nrf91_core_wants_input(const struct nrf91_core *c) {
        return c->state != NRF91_CORE_BUSY;
}

size_t nrf91_core_input(struct nrf91_core *c, const uint8_t *data, size_t len) {
        size_t i = 0;

        if (c->state == NRF91_CORE_OFF)
                return len; /* nobody listens while the application (re)starts */
        if (len > 0)
                c->last_input_ms = now(c);

        while (i < len) {
                switch (c->state) {
                case NRF91_CORE_OFF:
                        return len;
                case NRF91_CORE_BUSY:
                        return i;
                case NRF91_CORE_PAYLOAD: {
                        size_t n = len - i;
                        if (c->line.skip_lf) {
                                /* The LF of the #XSEND line's CR LF is not payload. */
                                c->line.skip_lf = false;
                                if (data[i] == '\n') {
                                        i++;
                                        continue;
                                }
                        }
                        if (n > c->payload_len - c->payload_got)
                                n = c->payload_len - c->payload_got;
                        memcpy(c->payload + c->payload_got, data + i, n);
                        c->payload_got += n;
                        i += n;
                        c->payload_deadline_ms = c->last_input_ms + NRF91_SEND_TIMEOUT_MS;
                        if (c->payload_got == c->payload_len)
                                socket_payload_complete(c);
                        break;
                }
                case NRF91_CORE_IDLE:
                        switch (at_line_feed(&c->line, data[i++])) {
                        case AT_LINE_NONE:
                                break;
                        case AT_LINE_READY:
                                execute_line(c);
                                break;
                        case AT_LINE_TOO_LONG:
                                core_begin(c);
                                core_final(c, -NRF91_EINVAL);
                                core_end(c);
                                break;
                        }
                        break;
                }
        }
        return i;
}

uint64_t nrf91_core_next_timeout(const struct nrf91_core *c) {
        switch (c->state) {
        case NRF91_CORE_PAYLOAD:
                return c->payload_deadline_ms;
        case NRF91_CORE_IDLE:
                if (c->line.in_quotes && c->line.quoted_newline)
                        return c->last_input_ms + NRF91_QUOTED_IDLE_MS;
                return UINT64_MAX;
        case NRF91_CORE_OFF:
        case NRF91_CORE_BUSY:
                return UINT64_MAX;
        }
        return UINT64_MAX;
}

void nrf91_core_tick(struct nrf91_core *c) {
        uint64_t t = now(c);

        if (t < nrf91_core_next_timeout(c))
                return;
        if (c->state == NRF91_CORE_PAYLOAD) {
                socket_payload_timeout(c);
        } else if (c->state == NRF91_CORE_IDLE) {
                /*
                 * A quoted string spanning lines stopped arriving (the host
                 * died in the middle of a %CMNG write): give up on it, or an
                 * open quote would swallow every later command.
                 */
                at_line_discard(&c->line);
                core_begin(c);
                core_final(c, -NRF91_EINVAL);
                core_end(c);
        }
}

void nrf91_core_urc(struct nrf91_core *c, const char *line) {
        core_urc(c, line, strlen(line));
}
