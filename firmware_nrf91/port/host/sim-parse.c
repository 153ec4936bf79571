/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "macro.h"
#include "sim-parse.h"
#include "util.h"

static int parse_ms(const char *arg, uint64_t *ret) {
        uint64_t v;

        if (!arg || parse_uint64(arg, &v) < 0 || v > 3600000)
                return -EINVAL;
        *ret = v;
        return 0;
}

static bool plmn_valid(const char *s) {
        size_t n = strlen(s);

        if (n != 5 && n != 6)
                return false;
        for (size_t i = 0; i < n; i++)
                if (s[i] < '0' || s[i] > '9')
                        return false;
        return true;
}

/* The radio part shared by "cell" and "ncell": <earfcn> <pci> <rsrp> <rsrq>, then nothing. */
static bool cell_radio_valid(const SimControlCell *c) {
        return c->earfcn <= 262143 && c->pci <= 503 && c->rsrp >= 0 && c->rsrp <= 97 && c->rsrq >= 0 && c->rsrq <= 34;
}

static int parse_cell(const char *line, SimControlCell *ret) {
        SimControlCell c = {};
        char plmn[8] = "", junk[2];

        if (sscanf(line, "%*s %7s %x %x %u %u %d %d %1s", plmn, &c.tac, &c.ci, &c.earfcn, &c.pci, &c.rsrp, &c.rsrq,
                   junk) != 7)
                return -EINVAL;
        if (!plmn_valid(plmn) || c.tac > 0xffff || c.ci > 0xfffffff || !cell_radio_valid(&c))
                return -EINVAL;
        memcpy(c.plmn, plmn, sizeof c.plmn);
        *ret = c;
        return 0;
}

static int parse_ncell(const char *line, SimControlCell *ret) {
        SimControlCell c = {};
        char junk[2];

        if (sscanf(line, "%*s %u %u %d %d %1s", &c.earfcn, &c.pci, &c.rsrp, &c.rsrq, junk) != 4 ||
            !cell_radio_valid(&c))
                return -EINVAL;
        *ret = c;
        return 0;
}

static int usage(char *error, size_t size, const char *text) {
        snprintf(error, size, "ERROR usage: %s\n", text);
        return -EINVAL;
}

int sim_control_parse(const char *line, SimControlCommand *ret, char *error, size_t error_size) {
        char cmd[32] = "", arg[64] = "";
        SimControlCommand c = {};
        int n = sscanf(line, "%31s %63s", cmd, arg);
        const char *a = n > 1 ? arg : NULL;

        if (n < 1) {
                snprintf(error, error_size, "ERROR empty command\n");
                return -EINVAL;
        }
        if (streq(cmd, "delay")) {
                c.kind = SIM_CONTROL_DELAY;
                if (parse_ms(a, &c.value) < 0)
                        return usage(error, error_size, "delay <ms>");
        } else if (streq(cmd, "drop")) {
                c.kind = SIM_CONTROL_DROP;
                if (parse_ms(a, &c.value) < 0)
                        return usage(error, error_size, "drop <count>");
        } else if (streq(cmd, "reboot"))
                c.kind = SIM_CONTROL_REBOOT;
        else if (streq(cmd, "vanish")) {
                c.kind = SIM_CONTROL_VANISH;
                if (a && parse_ms(a, &c.value) < 0)
                        return usage(error, error_size, "vanish [<ms>]");
        } else if (streq(cmd, "appear"))
                c.kind = SIM_CONTROL_APPEAR;
        else if (streq(cmd, "fota-mute")) {
                c.kind = SIM_CONTROL_FOTA_MUTE;
                c.value = 0;
                if (!a)
                        c.value = UINT64_MAX; /* the default, chosen by the caller */
                else if (parse_ms(a, &c.value) < 0 || c.value == 0)
                        return usage(error, error_size, "fota-mute [<ms>]");
        } else if (streq(cmd, "fota-write-error")) {
                c.kind = SIM_CONTROL_FOTA_WRITE_ERROR;
                if (!a || parse_uint64(a, &c.value) < 0 || c.value == 0)
                        return usage(error, error_size, "fota-write-error <byte>");
        } else if (streq(cmd, "short-recv")) {
                /* Two numbers: parsed again here, arg holds only the first. */
                unsigned announced = 0, sent = 100;
                c.kind = SIM_CONTROL_SHORT_RECV;
                if (sscanf(line, "%*s %u %u", &announced, &sent) < 1 || announced == 0 ||
                    announced > SIM_SHORT_RECV_MAX || sent >= announced) {
                        snprintf(error, error_size, "ERROR usage: short-recv <announced 1-%u> [<sent>]\n",
                                 SIM_SHORT_RECV_MAX);
                        return -EINVAL;
                }
                c.value = announced;
                c.value2 = sent;
        } else if (streq(cmd, "status"))
                c.kind = SIM_CONTROL_STATUS;
        else if (streq(cmd, "cell")) {
                c.kind = SIM_CONTROL_CELL;
                if (parse_cell(line, &c.cell) < 0)
                        return usage(error, error_size,
                                     "cell <plmn> <tac hex> <cell id hex> <earfcn> <pci> <rsrp 0-97> <rsrq 0-34>");
        } else if (streq(cmd, "ncell")) {
                c.kind = SIM_CONTROL_NCELL;
                if (parse_ncell(line, &c.cell) < 0)
                        return usage(error, error_size, "ncell <earfcn> <pci> <rsrp 0-97> <rsrq 0-34>");
        } else if (streq(cmd, "ncell-clear"))
                c.kind = SIM_CONTROL_NCELL_CLEAR;
        else if (streq(cmd, "network-time")) {
                c.kind = SIM_CONTROL_NETWORK_TIME;
                if (!a || (!streq(a, "on") && !streq(a, "off")))
                        return usage(error, error_size, "network-time on|off");
                c.value = streq(a, "on");
        }
        else {
                snprintf(error, error_size, "ERROR unknown command %s\n", cmd);
                return -EINVAL;
        }
        *ret = c;
        return 0;
}

enum {
        CHUNK_SIZE,
        CHUNK_DATA,
        CHUNK_DATA_END,
        CHUNK_TRAILER,
        CHUNK_DONE,
};

/* The value of header name (case-insensitive) in a NUL-terminated head, or NULL. */
static const char *header_value(const char *head, const char *name) {
        size_t n = strlen(name);

        for (const char *l = strstr(head, "\r\n"); l; l = strstr(l, "\r\n")) {
                l += 2;
                if (strncasecmp(l, name, n) == 0 && l[n] == ':') {
                        l += n + 1;
                        while (*l == ' ' || *l == '\t')
                                l++;
                        return l;
                }
        }
        return NULL;
}

int sim_http_parse_head(const char *head, SimHttpHead *ret) {
        SimHttpHead h = { .content_length = -1 };
        const char *v;

        if (sscanf(head, "HTTP/1.%*d %d", &h.status) != 1)
                return -EBADMSG;
        v = header_value(head, "Transfer-Encoding");
        h.chunked = v && strncasecmp(v, "chunked", 7) == 0;
        v = header_value(head, "Content-Length");
        if (v && !h.chunked) {
                char *e;
                unsigned long long len = strtoull(v, &e, 10);
                if (e == v)
                        return -EBADMSG;
                /* Over INT64_MAX: as good as unknown, the connection's end says. */
                h.content_length = len > INT64_MAX ? -1 : (int64_t) len;
        }
        *ret = h;
        return 0;
}

void sim_http_body_init(SimHttpBody *b, const SimHttpHead *head) {
        *b = (SimHttpBody){ .content_length = head->content_length, .chunked = head->chunked,
                            .chunk_state = CHUNK_SIZE };
}

bool sim_http_body_feed(SimHttpBody *b, const uint8_t *p, size_t len,
                        void (*deliver)(const uint8_t *data, size_t len, void *userdata), void *userdata) {
        if (!b->chunked) {
                if (b->content_length >= 0) {
                        uint64_t left = (uint64_t) b->content_length - b->got;
                        len = (size_t) MIN((uint64_t) len, left);
                }
                b->got += len;
                if (len > 0)
                        deliver(p, len, userdata);
                return b->content_length >= 0 && b->got >= (uint64_t) b->content_length;
        }

        while (len > 0) {
                switch (b->chunk_state) {
                case CHUNK_SIZE:
                case CHUNK_DATA_END:
                case CHUNK_TRAILER: {
                        char c = (char) *p++;
                        len--;
                        if (c != '\n') {
                                if (b->chunk_line_len < sizeof b->chunk_line - 1)
                                        b->chunk_line[b->chunk_line_len++] = c;
                                break;
                        }
                        b->chunk_line[b->chunk_line_len] = '\0';
                        b->chunk_line_len = 0;
                        if (b->chunk_state == CHUNK_DATA_END) {
                                b->chunk_state = CHUNK_SIZE;
                        } else if (b->chunk_state == CHUNK_TRAILER) {
                                if (b->chunk_line[0] == '\r' || b->chunk_line[0] == '\0') {
                                        b->chunk_state = CHUNK_DONE;
                                        return true;
                                }
                        } else {
                                b->chunk_left = strtoull(b->chunk_line, NULL, 16);
                                b->chunk_state = b->chunk_left == 0 ? CHUNK_TRAILER : CHUNK_DATA;
                        }
                        break;
                }
                case CHUNK_DATA: {
                        size_t n = (size_t) MIN((uint64_t) len, b->chunk_left);
                        b->got += n;
                        deliver(p, n, userdata);
                        p += n, len -= n;
                        b->chunk_left -= n;
                        if (b->chunk_left == 0)
                                b->chunk_state = CHUNK_DATA_END;
                        break;
                }
                case CHUNK_DONE:
                        return true;
                }
        }
        return b->chunk_state == CHUNK_DONE;
}
