/* SPDX-License-Identifier: MIT */
/*
 * The emulated nRF91 modem (mfw 1.3.x on an nRF9160), as spec nrf91-at.md
 * describes it.  One call of modem_emu_execute() is one nrf_modem_at_cmd()
 * on real hardware.
 *
 * Behaviour worth knowing (each mirrors the real modem):
 *  - +CMEE is 0 after start and after modem_emu_reboot(): failures then read
 *    "ERROR"; AT+CMEE=1 turns on "+CME ERROR: <n>".  Syntax and parameter
 *    errors are always plain "ERROR".
 *  - %CMNG writes and deletes, and %KEYGEN, answer 518 while CFUN=1 (checked
 *    before anything about the credential itself).  A write to an existing
 *    (tag, type) replaces it.  Reading a type-2 key answers 514; reading or
 *    deleting a missing entry 513; %KEYGEN into a tag holding a key 519.
 *  - Modem-reserved tags (> 2147483647) answer 514 for writes, deletes and
 *    %KEYGEN.
 *  - The modem has no time until the network gives it one (registration) or
 *    +CCLK/%CCLK sets it: %CCLK? and +CCLK? answer ERROR before that, and
 *    %JWT then leaves out iat and exp.
 *  - %XICCID answers ERROR in CFUN=0 (the SIM is powered off).
 *  - URCs are only ever emitted from modem_emu_tick(), never inside a
 *    response.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "at-params.h"
#include "crypto.h"
#include "modem-emu-internal.h"

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

#define SEC_TAG_USER_MAX 2147483647LL
#define SEC_TAG_MAX 4294967295LL

/* Results of a command handler: 0 OK, RES_ERROR plain ERROR, > 0 a CME error code. */
#define RES_OK 0
#define RES_ERROR (-1)

#define CME_INCORRECT_PARAMS 50
#define CME_NOT_FOUND 513
#define CME_NO_ACCESS 514
#define CME_MEMORY_FULL 515
#define CME_ACTIVE_STATE 518
#define CME_ALREADY_EXISTS 519
#define CME_KEYGEN_FAIL 523
#define CME_JWT_FAIL 525

/* KeyUsage requested by the modem's CSR when none is given: digitalSignature,
 * nonRepudiation, keyEncipherment, keyAgreement (decoded in nrf91-at.md §3.3). */
#define KEYGEN_DEFAULT_KEY_USAGE 0x17u

#define CHIP_NAME "nRF9160"
#define DEVICE_TYPE_NRF9160_SIAA 3
/* The serving cell until modem_emu_set_cell(): +CEREG's location ("0140", "0A0B0C0D") and +CESQ's levels. */
static const ModemEmuCell default_cell = {
        .plmn = "26295", .tac = 0x0140, .ci = 0x0A0B0C0D, .earfcn = 6300, .pci = 194, .rsrp = 62, .rsrq = 31,
};
#define XMONITOR_OPERATOR_LONG "EMU Mobile"
#define XMONITOR_OPERATOR_SHORT "EMU"
#define XMONITOR_SNR 39 /* index: dB = index - 24 */
#define NCELLMEAS_TA 24 /* timing advance of the serving cell */

/* --- response buffer --- */

typedef struct Buf {
        char *p;
        size_t len, cap;
        bool oom;
} Buf;

static void buf_add(Buf *b, const char *s, size_t n) {
        if (b->oom)
                return;
        if (b->len + n + 1 > b->cap) {
                size_t cap = MAX(b->cap * 2, b->len + n + 256);
                char *p = realloc(b->p, cap);
                if (!p) {
                        b->oom = true;
                        return;
                }
                b->p = p;
                b->cap = cap;
        }
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = 0;
}

static void buf_adds(Buf *b, const char *s) {
        buf_add(b, s, strlen(s));
}

_printf_(2, 3) static void buf_printf(Buf *b, const char *fmt, ...) {
        char small[256];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(small, sizeof small, fmt, ap);
        va_end(ap);
        if (n < 0) {
                b->oom = true;
                return;
        }
        if ((size_t) n < sizeof small) {
                buf_add(b, small, (size_t) n);
                return;
        }
        char *big = malloc((size_t) n + 1);
        if (!big) {
                b->oom = true;
                return;
        }
        va_start(ap, fmt);
        vsnprintf(big, (size_t) n + 1, fmt, ap);
        va_end(ap);
        buf_add(b, big, (size_t) n);
        free(big);
}

/* One information line, framed "\r\n<line>\r\n". */
_printf_(2, 3) static void buf_line(Buf *b, const char *fmt, ...) {
        char small[512];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(small, sizeof small, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t) n >= sizeof small) {
                b->oom = true; /* every formatted line is short; long content goes through buf_add() */
                return;
        }
        buf_add(b, "\r\n", 2);
        buf_add(b, small, (size_t) n);
        buf_add(b, "\r\n", 2);
}

/* --- helpers --- */

static bool cfun_supported(int64_t n) {
        return n == 0 || n == 1 || n == 4;
}

static int64_t modem_time(const ModemEmu *m) {
        return (int64_t) time(NULL) + m->time_offset_s;
}

static void urc_queue(ModemEmu *m, const char *line) {
        char *s;
        if (m->n_urcs >= MODEM_EMU_URC_QUEUE_MAX)
                return; /* the real modem drops URCs nobody reads, too */
        s = strdup(line);
        if (s)
                m->urcs[m->n_urcs++] = s;
}

static void urc_clear(ModemEmu *m) {
        for (size_t i = 0; i < m->n_urcs; i++)
                free(m->urcs[i]);
        m->n_urcs = 0;
}

/* "+CEREG: ..." body after the prefix: stat and, with n >= 2 while registered, the location. */
static void format_cereg(const ModemEmu *m, bool with_n, char *out, size_t size) {
        int n = m->cereg_n;
        int len = with_n ? snprintf(out, size, "+CEREG: %d,%d", n, (int) m->reg)
                         : snprintf(out, size, "+CEREG: %d", (int) m->reg);

        if (len < 0 || (size_t) len >= size)
                return;
        if (n >= 2 && m->reg == REG_HOME) {
                int k = snprintf(out + len, size - (size_t) len, ",\"%04" PRIX32 "\",\"%08" PRIX32 "\",7", m->cell.tac,
                                 m->cell.ci);
                if (k < 0 || (size_t) k >= size - (size_t) len)
                        return;
                len += k;
                if (n >= 4)
                        snprintf(out + len, size - (size_t) len, ",,,\"11100000\",\"11100000\"");
        }
}

static void cereg_changed(ModemEmu *m) {
        char line[128];
        if (m->cereg_n == 0)
                return;
        format_cereg(m, false, line, sizeof line);
        urc_queue(m, line);
}

static void set_cfun(ModemEmu *m, int fun) {
        if (fun == m->cfun)
                return;
        m->cfun = fun;
        if (fun == 1) {
                m->reg = REG_SEARCHING;
                m->reg_start_pending = true;
                m->reg_timer = false;
                cereg_changed(m);
        } else {
                m->reg_start_pending = false;
                m->reg_timer = false;
                if (m->reg != REG_NOT_SEARCHING) {
                        m->reg = REG_NOT_SEARCHING;
                        cereg_changed(m);
                }
        }
}

static bool printable(const char *s, size_t len) {
        for (size_t i = 0; i < len; i++)
                if ((unsigned char) s[i] < 0x20 || (unsigned char) s[i] >= 0x7f)
                        return false;
        return true;
}

/* --- commands --- */

/* One command, split by the firmware core's parser (at-params.h): the modem reads the same dialect. */
typedef struct Command {
        struct at_cmd cmd;
        struct at_args args; /* AT_CMD_SET only; unquoted tokens allowed (a PSK, an identity) */
} Command;

typedef int (*Handler)(ModemEmu *m, const Command *c, Buf *b);

static int cmd_at(ModemEmu *m, const Command *c, Buf *b) {
        (void) m;
        (void) b;
        return c->cmd.type == AT_CMD_EXEC ? RES_OK : RES_ERROR;
}

static int cmd_echo_off(ModemEmu *m, const Command *c, Buf *b) {
        (void) m;
        (void) b;
        return c->cmd.type == AT_CMD_EXEC ? RES_OK : RES_ERROR; /* "ATE0" / "ATE": no echo, which is all there is */
}

static int cmd_cmee(ModemEmu *m, const Command *c, Buf *b) {
        int64_t v = 0;

        switch (c->cmd.type) {
        case AT_CMD_READ:
                buf_line(b, "+CMEE: %d", m->cmee);
                return RES_OK;
        case AT_CMD_TEST:
                buf_line(b, "+CMEE: (0,1)");
                return RES_OK;
        case AT_CMD_SET:
                if (c->args.count != 1)
                        return RES_ERROR;
                if (at_param_int_opt(&c->args, 0, 0, 1, 0, &v) < 0)
                        return RES_ERROR;
                m->cmee = (int) v;
                return RES_OK;
        case AT_CMD_EXEC:
                return RES_ERROR;
        }
        return RES_ERROR;
}

static int cmd_cfun(ModemEmu *m, const Command *c, Buf *b) {
        int64_t v;

        switch (c->cmd.type) {
        case AT_CMD_READ:
                buf_line(b, "+CFUN: %d", m->cfun);
                return RES_OK;
        case AT_CMD_TEST:
                buf_line(b, "+CFUN: (0,1,4)");
                return RES_OK;
        case AT_CMD_SET:
                if (c->args.count != 1 || at_param_int(&c->args, 0, 0, 255, &v) < 0 || !cfun_supported(v))
                        return RES_ERROR;
                set_cfun(m, (int) v);
                return RES_OK;
        case AT_CMD_EXEC:
                return RES_ERROR;
        }
        return RES_ERROR;
}

static int cmd_cereg(ModemEmu *m, const Command *c, Buf *b) {
        char line[128];
        int64_t v;

        switch (c->cmd.type) {
        case AT_CMD_READ:
                format_cereg(m, true, line, sizeof line);
                buf_line(b, "%s", line);
                return RES_OK;
        case AT_CMD_TEST:
                buf_line(b, "+CEREG: (0-5)");
                return RES_OK;
        case AT_CMD_SET:
                if (c->args.count != 1 || at_param_int(&c->args, 0, 0, 5, &v) < 0)
                        return RES_ERROR;
                m->cereg_n = (int) v;
                return RES_OK;
        case AT_CMD_EXEC:
                return RES_ERROR;
        }
        return RES_ERROR;
}

static int cmd_cesq(ModemEmu *m, const Command *c, Buf *b) {
        if (c->cmd.type != AT_CMD_EXEC)
                return RES_ERROR;
        if (m->cfun == 1 && m->reg == REG_HOME)
                buf_line(b, "+CESQ: 99,99,255,255,%d,%d", m->cell.rsrq, m->cell.rsrp);
        else
                buf_line(b, "+CESQ: 99,99,255,255,255,255");
        return RES_OK;
}

static int cmd_cgsn(ModemEmu *m, const Command *c, Buf *b) {
        int64_t snt = 0;

        if (c->cmd.type == AT_CMD_SET) {
                if (c->args.count != 1 || at_param_int(&c->args, 0, 0, 3, &snt) < 0)
                        return RES_ERROR;
        } else if (c->cmd.type == AT_CMD_TEST) {
                buf_line(b, "+CGSN: (0-3)");
                return RES_OK;
        } else if (c->cmd.type != AT_CMD_EXEC)
                return RES_ERROR;

        switch (snt) {
        case 0:
                buf_line(b, "%s", m->imei);
                break;
        case 1:
                buf_line(b, "+CGSN: \"%s\"", m->imei);
                break;
        case 2:
                buf_line(b, "+CGSN: \"%.14s12\"", m->imei); /* IMEISV: TAC + SNR + SVN */
                break;
        default:
                buf_line(b, "+CGSN: \"12\"");
                break;
        }
        return RES_OK;
}

static int cmd_cgmr(ModemEmu *m, const Command *c, Buf *b) {
        if (c->cmd.type != AT_CMD_EXEC)
                return RES_ERROR;
        buf_line(b, "%s", m->fw_version);
        return RES_OK;
}

static int cmd_cgmi(ModemEmu *m, const Command *c, Buf *b) {
        (void) m;
        if (c->cmd.type != AT_CMD_EXEC)
                return RES_ERROR;
        buf_line(b, "Nordic Semiconductor ASA");
        return RES_OK;
}

static int cmd_cgmm(ModemEmu *m, const Command *c, Buf *b) {
        (void) m;
        if (c->cmd.type != AT_CMD_EXEC)
                return RES_ERROR;
        buf_line(b, "nRF9160-SICA");
        return RES_OK;
}

static int cmd_hwversion(ModemEmu *m, const Command *c, Buf *b) {
        (void) m;
        if (c->cmd.type != AT_CMD_EXEC)
                return RES_ERROR;
        buf_line(b, "%%HWVERSION: nRF9160 SICA B1A");
        return RES_OK;
}

static int cmd_shortswver(ModemEmu *m, const Command *c, Buf *b) {
        const char *v = m->fw_version;
        if (c->cmd.type != AT_CMD_EXEC)
                return RES_ERROR;
        if (strncmp(v, "mfw_", 4) == 0)
                v += 4;
        buf_line(b, "%%SHORTSWVER: %s", v);
        return RES_OK;
}

static int cmd_xmodemuuid(ModemEmu *m, const Command *c, Buf *b) {
        if (c->cmd.type != AT_CMD_EXEC)
                return RES_ERROR;
        buf_line(b, "%%XMODEMUUID: %s", m->fw_uuid);
        return RES_OK;
}

static int cmd_xiccid(ModemEmu *m, const Command *c, Buf *b) {
        if (c->cmd.type != AT_CMD_EXEC)
                return RES_ERROR;
        if (m->cfun == 0)
                return RES_ERROR; /* UICC not powered */
        buf_line(b, "%%XICCID: %s", m->iccid);
        return RES_OK;
}

/* "yy/MM/dd,hh:mm:ss±zz" */
static int parse_cclk(const char *s, size_t len, int64_t *ret_utc, int *ret_tz) {
        char buf[32];
        int yy, mo, dd, hh, mi, ss, tz, n = 0;
        char sign;
        struct tm tm = { 0 };

        if (len >= sizeof buf)
                return -EINVAL;
        memcpy(buf, s, len);
        buf[len] = 0;
        if (sscanf(buf, "%2d/%2d/%2d,%2d:%2d:%2d%c%2d%n", &yy, &mo, &dd, &hh, &mi, &ss, &sign, &tz, &n) != 8 ||
            (size_t) n != len || (sign != '+' && sign != '-'))
                return -EINVAL;
        if (yy < 0 || mo < 1 || mo > 12 || dd < 1 || dd > 31 || hh > 23 || mi > 59 || ss > 59 || hh < 0 || mi < 0 ||
            ss < 0 || tz > 96 || tz < 0)
                return -EINVAL;
        tm.tm_year = 100 + yy;
        tm.tm_mon = mo - 1;
        tm.tm_mday = dd;
        tm.tm_hour = hh;
        tm.tm_min = mi;
        tm.tm_sec = ss;
        /* The time given is local time; tz is in quarters of an hour. */
        *ret_tz = sign == '-' ? -tz : tz;
        *ret_utc = (int64_t) timegm(&tm) - (int64_t) *ret_tz * 15 * 60;
        return 0;
}

static void format_cclk(const ModemEmu *m, char *out, size_t size) {
        time_t t = (time_t) (modem_time(m) + (int64_t) m->tz_quarters * 15 * 60);
        struct tm tm;
        gmtime_r(&t, &tm);
        snprintf(out, size, "%02d/%02d/%02d,%02d:%02d:%02d%c%02d", tm.tm_year % 100, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec, m->tz_quarters < 0 ? '-' : '+', abs(m->tz_quarters));
}

static int cclk_common(ModemEmu *m, const Command *c, Buf *b, bool percent) {
        char now[40];

        switch (c->cmd.type) {
        case AT_CMD_READ:
                if (!m->time_valid)
                        return RES_ERROR;
                format_cclk(m, now, sizeof now);
                if (percent)
                        buf_line(b, "%%CCLK: \"%s\",0", now);
                else
                        buf_line(b, "+CCLK: \"%s\"", now);
                return RES_OK;
        case AT_CMD_SET: {
                const char *s;
                size_t len;
                int64_t utc, dst = 0;
                int tz;

                if (c->args.count > (percent ? 2u : 1u) || at_param_text(&c->args, 0, false, &s, &len) < 0 ||
                    parse_cclk(s, len, &utc, &tz) < 0)
                        return RES_ERROR;
                if (percent && at_param_int_opt(&c->args, 1, 0, 2, 0, &dst) < 0)
                        return RES_ERROR;
                m->time_offset_s = utc - (int64_t) time(NULL);
                m->tz_quarters = tz;
                m->time_valid = true;
                return RES_OK;
        }
        case AT_CMD_EXEC:
        case AT_CMD_TEST:
                return RES_ERROR;
        }
        return RES_ERROR;
}

static int cmd_pcclk(ModemEmu *m, const Command *c, Buf *b) {
        return cclk_common(m, c, b, true);
}

static int cmd_cclk(ModemEmu *m, const Command *c, Buf *b) {
        return cclk_common(m, c, b, false);
}

/* --- %CMNG --- */

static void cmng_line(Buf *b, const Credential *cr) {
        char sha[65];
        emu_hex(cr->sha256, 32, true, sha);
        buf_line(b, "%%CMNG: %" PRIu32 ",%d,\"%s\"", cr->tag, cr->type, sha);
}

static int cmd_cmng(ModemEmu *m, const Command *c, Buf *b) {
        int64_t op, tag = -1, type = -1;
        int r;

        if (c->cmd.type != AT_CMD_SET || at_param_int(&c->args, 0, 0, 3, &op) < 0)
                return RES_ERROR;

        if (op == 1) { /* list */
                if (c->args.count > 3)
                        return RES_ERROR;
                if (at_param_int_opt(&c->args, 1, 0, SEC_TAG_MAX, -1, &tag) < 0)
                        return RES_ERROR;
                if (at_param_present(&c->args, 2) && (tag < 0 || at_param_int(&c->args, 2, 0, 255, &type) < 0))
                        return RES_ERROR;
                for (size_t i = 0; i < m->n_creds; i++) {
                        const Credential *cr = &m->creds[i];
                        if ((tag < 0 || cr->tag == (uint32_t) tag) && (type < 0 || cr->type == type))
                                cmng_line(b, cr);
                }
                return RES_OK;
        }

        /* write, read and delete need <sec_tag> and <type> */
        if (at_param_int(&c->args, 1, 0, SEC_TAG_MAX, &tag) < 0 || at_param_int(&c->args, 2, 0, 255, &type) < 0)
                return RES_ERROR;

        if (op == 2) { /* read */
                const Credential *cr;
                char sha[65];

                if (c->args.count != 3)
                        return RES_ERROR;
                cr = modem_emu_cred_find(m, (uint32_t) tag, (int) type);
                if (!cr)
                        return CME_NOT_FOUND;
                if (cr->type == 2)
                        return CME_NO_ACCESS; /* the private key never leaves the modem */
                emu_hex(cr->sha256, 32, true, sha);
                buf_printf(b, "\r\n%%CMNG: %" PRIu32 ",%d,\"%s\",\"", cr->tag, cr->type, sha);
                buf_add(b, cr->content, cr->len);
                buf_adds(b, "\"\r\n");
                return RES_OK;
        }

        if (op == 3) { /* delete */
                if (c->args.count != 3)
                        return RES_ERROR;
                if (m->cfun == 1)
                        return CME_ACTIVE_STATE;
                if (tag > SEC_TAG_USER_MAX)
                        return CME_NO_ACCESS;
                if (modem_emu_cred_delete(m, (uint32_t) tag, (int) type) < 0)
                        return CME_NOT_FOUND;
                return modem_emu_state_save_credentials(m) < 0 ? RES_ERROR : RES_OK;
        }

        /* write: %CMNG=0,<sec_tag>,<type>,<content>[,<passwd>] */
        {
                const char *content, *pw = NULL;
                size_t len, pwlen = 0;
                char *dup, *pwdup = NULL;

                if (c->args.count < 4 || c->args.count > 5)
                        return RES_ERROR;
                if (type > 6)
                        return RES_ERROR;
                /* PSKs and identities are often written without quotes; the modem takes either. */
                if (at_param_text(&c->args, 3, true, &content, &len) < 0 || len == 0 || memchr(content, 0, len))
                        return RES_ERROR;
                if (at_param_present(&c->args, 4)) {
                        if (type != 2 || at_param_text(&c->args, 4, false, &pw, &pwlen) < 0 || pwlen == 0 ||
                            pwlen > 32 || !printable(pw, pwlen))
                                return RES_ERROR;
                }
                if (m->cfun == 1)
                        return CME_ACTIVE_STATE;
                if (tag > SEC_TAG_USER_MAX)
                        return CME_NO_ACCESS;
                if (!modem_emu_cred_find(m, (uint32_t) tag, (int) type) && m->n_creds >= MODEM_EMU_CRED_MAX)
                        return CME_MEMORY_FULL;
                dup = strndup(content, len);
                if (pw)
                        pwdup = strndup(pw, pwlen);
                if (!dup || (pw && !pwdup)) {
                        free(dup);
                        free(pwdup);
                        return CME_MEMORY_FULL;
                }
                r = modem_emu_cred_put(m, (uint32_t) tag, (int) type, dup, len, pwdup);
                if (r < 0)
                        return CME_MEMORY_FULL;
                return modem_emu_state_save_credentials(m) < 0 ? RES_ERROR : RES_OK;
        }
}

/* --- %KEYGEN --- */

static int cmd_keygen(ModemEmu *m, const Command *c, Buf *b) {
        int64_t tag, key_type, content = 0;
        const char *attrs = NULL, *ku_s;
        size_t attrs_len = 0, ku_len;
        unsigned ku = KEYGEN_DEFAULT_KEY_USAGE;
        EVP_PKEY *key = NULL;
        uint8_t *body = NULL, *payload = NULL, *cose = NULL, sha[32], nonce[16];
        size_t body_len = 0, payload_len = 0, cose_len = 0;
        char *pem = NULL, *b64_body = NULL, *b64_cose = NULL;
        int res = CME_KEYGEN_FAIL;

        if (c->cmd.type != AT_CMD_SET || c->args.count < 2 || c->args.count > 5)
                return RES_ERROR;
        if (at_param_int(&c->args, 0, 0, SEC_TAG_MAX, &tag) < 0 || at_param_int(&c->args, 1, 0, 255, &key_type) < 0)
                return RES_ERROR;
        if (key_type != 2)
                return RES_ERROR; /* endorsement keys (8) are not emulated */
        if (at_param_int_opt(&c->args, 2, 0, 1, 0, &content) < 0)
                return RES_ERROR;
        if (at_param_present(&c->args, 3)) {
                if (at_param_text(&c->args, 3, false, &attrs, &attrs_len) < 0)
                        return RES_ERROR;
                if (attrs_len == 0)
                        attrs = NULL;
        }
        if (at_param_present(&c->args, 4)) {
                if (at_param_text(&c->args, 4, false, &ku_s, &ku_len) < 0 || ku_len != 9)
                        return RES_ERROR;
                ku = 0;
                for (size_t i = 0; i < 9; i++) {
                        if (ku_s[i] != '0' && ku_s[i] != '1')
                                return RES_ERROR;
                        if (ku_s[i] == '1')
                                ku |= 1u << i;
                }
        }

        if (m->cfun == 1)
                return CME_ACTIVE_STATE;
        if (tag > SEC_TAG_USER_MAX)
                return CME_NO_ACCESS;
        if (modem_emu_cred_find(m, (uint32_t) tag, 2))
                return CME_ALREADY_EXISTS;
        if (m->n_creds >= MODEM_EMU_CRED_MAX)
                return CME_MEMORY_FULL;

        key = emu_p256_generate();
        if (!key)
                goto out;
        if (content == 0) {
                int r = emu_csr_der(key, attrs, attrs_len, m->uuid, ku, &body, &body_len);
                if (r == -EINVAL) {
                        res = RES_ERROR; /* attributes the modem cannot parse */
                        goto out;
                }
                if (r < 0)
                        goto out;
        } else if (emu_spki_der(key, &body, &body_len) < 0)
                goto out;

        emu_sha256(body, body_len, sha);
        if (emu_random(nonce, sizeof nonce) < 0 ||
            emu_keygen_payload(content == 0 ? 9 : 8, m->uuid_bin, (uint32_t) tag, sha, nonce, &payload,
                               &payload_len) < 0 ||
            emu_cose_sign1(m->identity_key, payload, payload_len, false, &cose, &cose_len) < 0)
                goto out;
        b64_body = emu_b64url(body, body_len);
        b64_cose = emu_b64url(cose, cose_len);
        pem = emu_pkey_to_pem(key);
        if (!b64_body || !b64_cose || !pem)
                goto out;

        if (modem_emu_cred_put(m, (uint32_t) tag, 2, pem, strlen(pem), NULL) < 0) {
                pem = NULL;
                goto out;
        }
        pem = NULL;
        if (modem_emu_state_save_credentials(m) < 0) {
                (void) modem_emu_cred_delete(m, (uint32_t) tag, 2);
                goto out;
        }
        buf_printf(b, "\r\n%%KEYGEN: \"%s.%s\"\r\n", b64_body, b64_cose);
        res = RES_OK;
out:
        free(pem);
        free(b64_body);
        free(b64_cose);
        free(body);
        free(payload);
        free(cose);
        EVP_PKEY_free(key);
        return res;
}

/* --- %ATTESTTOKEN --- */

static int cmd_attesttoken(ModemEmu *m, const Command *c, Buf *b) {
        uint8_t nonce[16], *body = NULL, *cose = NULL;
        size_t body_len = 0, cose_len = 0;
        char *b64_body = NULL, *b64_cose = NULL;
        int res = RES_ERROR;

        if (c->cmd.type == AT_CMD_SET) {
                const char *s;
                size_t len;
                if (c->args.count != 1)
                        return RES_ERROR;
                if (at_param_present(&c->args, 0)) {
                        if (at_param_text(&c->args, 0, false, &s, &len) < 0 || len != 32 ||
                            emu_unhex(s, len, nonce) < 0)
                                return RES_ERROR;
                } else if (emu_random(nonce, sizeof nonce) < 0)
                        return RES_ERROR;
        } else if (c->cmd.type == AT_CMD_EXEC) {
                if (emu_random(nonce, sizeof nonce) < 0)
                        return RES_ERROR;
        } else
                return RES_ERROR;

        if (emu_attest_body(m->uuid_bin, DEVICE_TYPE_NRF9160_SIAA, m->fw_uuid_bin, nonce, &body, &body_len) < 0 ||
            emu_cose_sign1(m->identity_key, body, body_len, true, &cose, &cose_len) < 0)
                goto out;
        b64_body = emu_b64url(body, body_len);
        b64_cose = emu_b64url(cose, cose_len);
        if (!b64_body || !b64_cose)
                goto out;
        buf_printf(b, "\r\n%%ATTESTTOKEN: \"%s.%s\"\r\n", b64_body, b64_cose);
        res = RES_OK;
out:
        free(body);
        free(cose);
        free(b64_body);
        free(b64_cose);
        return res;
}

/* --- %JWT --- */

static void json_string(Buf *b, const char *s, size_t len) {
        buf_add(b, "\"", 1);
        for (size_t i = 0; i < len; i++) {
                unsigned char ch = (unsigned char) s[i];
                if (ch == '"' || ch == '\\') {
                        char esc[2] = { '\\', (char) ch };
                        buf_add(b, esc, 2);
                } else if (ch < 0x20)
                        buf_printf(b, "\\u%04x", ch);
                else
                        buf_add(b, (const char *) &ch, 1);
        }
        buf_add(b, "\"", 1);
}

/* The modem pads its JSON with spaces so that the base64 needs no '=' padding. */
static char *b64url_padded_json(Buf *j) {
        while (!j->oom && j->len % 3 != 0)
                buf_add(j, " ", 1);
        if (j->oom)
                return NULL;
        return emu_b64url((const uint8_t *) j->p, j->len);
}

static int cmd_jwt(ModemEmu *m, const Command *c, Buf *b) {
        int64_t alg = 0, exp_delta = 0, tag = -1, key_type = 0;
        const char *sub = NULL, *aud = NULL;
        size_t sub_len = 0, aud_len = 0;
        EVP_PKEY *key = NULL;
        bool own_key = false;
        uint8_t *spki = NULL, kid[32], jti[16], sig[64];
        size_t spki_len = 0;
        char kid_hex[65], jti_hex[33];
        Buf h = { 0 }, p = { 0 }, tbs = { 0 };
        char *h64 = NULL, *p64 = NULL, *s64 = NULL;
        int res = CME_JWT_FAIL;

        if (c->cmd.type == AT_CMD_SET) {
                if (c->args.count > 6 || c->args.count == 5)
                        return RES_ERROR;
                if (at_param_int_opt(&c->args, 0, INT32_MIN, INT32_MAX, 0, &alg) < 0)
                        return RES_ERROR;
                if (at_param_int_opt(&c->args, 1, INT32_MIN, UINT32_MAX, 0, &exp_delta) < 0)
                        return RES_ERROR;
                if (at_param_present(&c->args, 2) && at_param_text(&c->args, 2, false, &sub, &sub_len) < 0)
                        return RES_ERROR;
                if (at_param_present(&c->args, 3) && at_param_text(&c->args, 3, false, &aud, &aud_len) < 0)
                        return RES_ERROR;
                if (c->args.count == 6) {
                        if (at_param_int(&c->args, 4, 0, SEC_TAG_MAX, &tag) < 0 ||
                            at_param_int(&c->args, 5, 0, 255, &key_type) < 0)
                                return RES_ERROR;
                }
        } else if (c->cmd.type != AT_CMD_EXEC)
                return RES_ERROR;

        if (alg != 0 || exp_delta < 0 || (tag >= 0 && key_type != 2 && key_type != 8))
                return CME_INCORRECT_PARAMS;
        if ((sub && !printable(sub, sub_len)) || (aud && !printable(aud, aud_len)))
                return CME_INCORRECT_PARAMS;

        if (tag >= 0) {
                const Credential *cr = key_type == 2 ? modem_emu_cred_find(m, (uint32_t) tag, 2) : NULL;
                if (!cr)
                        return CME_NOT_FOUND; /* no such key (endorsement keys are not emulated) */
                key = emu_pkey_from_pem(cr->content, cr->len, cr->passwd);
                if (!key || !emu_pkey_is_p256(key)) {
                        EVP_PKEY_free(key);
                        return CME_NO_ACCESS; /* "Could not read key" */
                }
                own_key = true;
        } else
                key = m->identity_key;

        if (emu_spki_der(key, &spki, &spki_len) < 0 || emu_random(jti, sizeof jti) < 0)
                goto out;
        emu_sha256(spki, spki_len, kid);
        emu_hex(kid, 32, false, kid_hex);
        emu_hex(jti, 16, false, jti_hex);

        buf_printf(&h, "{\"typ\":\"JWT\",\"alg\":\"ES256\",\"kid\":\"%s\"}", kid_hex);
        buf_printf(&p, "{\"iss\":\"%s.%s\",\"jti\":\"%s.%s.%s\"", CHIP_NAME, m->uuid, CHIP_NAME, m->fw_uuid, jti_hex);
        if (sub && sub_len > 0) {
                buf_adds(&p, ",\"sub\":");
                json_string(&p, sub, sub_len);
        }
        if (aud && aud_len > 0) {
                buf_adds(&p, ",\"aud\":");
                json_string(&p, aud, aud_len);
        }
        if (exp_delta > 0 && m->time_valid) {
                int64_t now = modem_time(m);
                buf_printf(&p, ",\"iat\":%" PRId64 ",\"exp\":%" PRId64, now, now + exp_delta);
        }
        buf_adds(&p, "}");

        h64 = b64url_padded_json(&h);
        p64 = b64url_padded_json(&p);
        if (!h64 || !p64)
                goto out;
        buf_printf(&tbs, "%s.%s", h64, p64);
        if (tbs.oom || emu_es256_sign(key, tbs.p, tbs.len, sig) < 0)
                goto out;
        s64 = emu_b64url(sig, sizeof sig);
        if (!s64)
                goto out;
        buf_printf(b, "\r\n%%JWT: \"%s.%s\"\r\n", tbs.p, s64);
        res = RES_OK;
out:
        free(h.p);
        free(p.p);
        free(tbs.p);
        free(h64);
        free(p64);
        free(s64);
        free(spki);
        if (own_key)
                EVP_PKEY_free(key);
        return res;
}

/* The E-UTRA band of a downlink EARFCN (3GPP TS 36.101 table 5.7.3-1), the bands an nRF91 supports; 0 unknown. */
static int earfcn_band(uint32_t earfcn) {
        static const struct {
                uint32_t first, last;
                int band;
        } bands[] = {
                { 0, 599, 1 },         { 600, 1199, 2 },      { 1200, 1949, 3 },     { 1950, 2399, 4 },
                { 2400, 2649, 5 },     { 3450, 3799, 8 },     { 5010, 5179, 12 },    { 5180, 5279, 13 },
                { 5280, 5379, 14 },    { 5730, 5849, 17 },    { 5850, 5999, 18 },    { 6000, 6149, 19 },
                { 6150, 6449, 20 },    { 8040, 8689, 25 },    { 8690, 9039, 26 },    { 9210, 9659, 28 },
                { 66436, 67335, 66 },  { 68586, 68935, 71 },
        };
        for (size_t i = 0; i < ELEMENTSOF(bands); i++)
                if (earfcn >= bands[i].first && earfcn <= bands[i].last)
                        return bands[i].band;
        return 0;
}

/*
 * %XMONITOR (nRF91 AT Commands, "Modem monitor %XMONITOR"): the registration
 * status alone while not registered, else
 * <reg_status>,<full_name>,<short_name>,<plmn>,<tac>,<AcT>,<band>,<cell_id>,
 * <phys_cell_id>,<EARFCN>,<rsrp>,<snr>,<NW-provided_eDRX_value>,<Active-Time>,
 * <Periodic-TAU-ext>,<Periodic-TAU>.
 */
static int cmd_xmonitor(ModemEmu *m, const Command *c, Buf *b) {
        const ModemEmuCell *cell = &m->cell;

        if (c->cmd.type != AT_CMD_EXEC)
                return RES_ERROR;
        if (m->cfun != 1 || m->reg != REG_HOME) {
                buf_line(b, "%%XMONITOR: %d", (int) m->reg);
                return RES_OK;
        }
        buf_line(b,
                 "%%XMONITOR: %d,\"%s\",\"%s\",\"%s\",\"%04" PRIX32 "\",7,%d,\"%08" PRIX32 "\",%" PRIu32 ",%" PRIu32
                 ",%d,%d,\"\",\"11100000\",\"00000110\",\"01001001\"",
                 (int) m->reg, XMONITOR_OPERATOR_LONG, XMONITOR_OPERATOR_SHORT, cell->plmn, cell->tac,
                 earfcn_band(cell->earfcn), cell->ci, cell->pci, cell->earfcn, cell->rsrp, XMONITOR_SNR);
        return RES_OK;
}

/*
 * AT%NCELLMEAS[=<search_type>]: OK at once, the result later as the URC
 * %NCELLMEAS: <status>[,<cell_id>,<plmn>,<tac>,<timing_advance>,<earfcn>,
 * <phys_cell_id>,<rsrp>,<rsrq>,<measurement_time>,[<n_earfcn>,<n_phys_cell_id>,
 * <n_rsrp>,<n_rsrq>,<time_diff>]...,<timing_advance_measurement_time>]
 * (mfw 1.3.1 and later).  Search types 0..2 share that format; the GCI
 * searches (3..5) are not emulated.  One measurement at a time.
 */
static int cmd_ncellmeas(ModemEmu *m, const Command *c, Buf *b) {
        int64_t type = 1;

        (void) b;
        if (c->cmd.type == AT_CMD_SET) {
                if (c->args.count > 2 || at_param_int(&c->args, 0, 0, 5, &type) < 0)
                        return RES_ERROR;
                if (type > 2)
                        return RES_ERROR;
        } else if (c->cmd.type != AT_CMD_EXEC)
                return RES_ERROR;
        if (m->ncellmeas_pending)
                return RES_ERROR;
        m->ncellmeas_pending = true;
        m->ncellmeas_at_ms = m->now_ms + MODEM_EMU_NCELLMEAS_DELAY_MS;
        return RES_OK;
}

static int cmd_ncellmeasstop(ModemEmu *m, const Command *c, Buf *b) {
        (void) b;
        if (c->cmd.type != AT_CMD_EXEC)
                return RES_ERROR;
        if (m->ncellmeas_pending) {
                m->ncellmeas_pending = false;
                urc_queue(m, "%NCELLMEAS: 2"); /* interrupted, no results */
        }
        return RES_OK;
}

static void ncellmeas_report(ModemEmu *m) {
        const ModemEmuCell *cell = &m->cell;
        Buf b = { 0 };

        if (m->cfun != 1 || m->reg != REG_HOME) {
                urc_queue(m, "%NCELLMEAS: 1"); /* no cell to measure */
                return;
        }
        buf_printf(&b, "%%NCELLMEAS: 0,\"%08" PRIX32 "\",\"%s\",\"%04" PRIX32 "\",%d,%" PRIu32 ",%" PRIu32 ",%d,%d,%" PRIu64,
                   cell->ci, cell->plmn, cell->tac, NCELLMEAS_TA, cell->earfcn, cell->pci, cell->rsrp, cell->rsrq,
                   m->now_ms);
        for (size_t i = 0; i < m->n_ncells; i++) {
                const ModemEmuCell *n = &m->ncells[i];
                buf_printf(&b, ",%" PRIu32 ",%" PRIu32 ",%d,%d,%zu", n->earfcn, n->pci, n->rsrp, n->rsrq, 20 * (i + 1));
        }
        buf_printf(&b, ",%" PRIu64, m->now_ms);
        if (!b.oom)
                urc_queue(m, b.p);
        free(b.p);
}

static bool cell_valid(const ModemEmuCell *c, bool serving) {
        if (c->earfcn > 262143 || c->pci > 503 || c->rsrp < 0 || c->rsrp > 97 || c->rsrq < 0 || c->rsrq > 34)
                return false;
        if (!serving)
                return true;
        size_t n = strnlen(c->plmn, sizeof c->plmn);
        if (n != 5 && n != 6)
                return false;
        for (size_t i = 0; i < n; i++)
                if (c->plmn[i] < '0' || c->plmn[i] > '9')
                        return false;
        return c->tac <= 0xffff && c->ci <= 0xfffffff;
}

int modem_emu_set_cell(ModemEmu *m, const ModemEmuCell *cell) {
        bool moved;

        if (!m || !cell || !cell_valid(cell, true))
                return -EINVAL;
        moved = cell->tac != m->cell.tac || cell->ci != m->cell.ci;
        m->cell = *cell;
        /* A reselection to another cell: with +CEREG=2 or higher the host sees the new TAC and cell id. */
        if (moved && m->cfun == 1 && m->reg == REG_HOME && m->cereg_n >= 2)
                cereg_changed(m);
        return 0;
}

int modem_emu_add_ncell(ModemEmu *m, const ModemEmuCell *cell) {
        if (!m || !cell || !cell_valid(cell, false))
                return -EINVAL;
        if (m->n_ncells >= MODEM_EMU_NCELL_MAX)
                return -ENOSPC;
        m->ncells[m->n_ncells++] = *cell;
        return 0;
}

void modem_emu_clear_ncells(ModemEmu *m) {
        m->n_ncells = 0;
}

void modem_emu_set_network_time(ModemEmu *m, bool on) {
        m->no_network_time = !on;
        if (!on) {
                m->time_valid = false;
                m->time_offset_s = 0;
        } else if (m->cfun == 1 && m->reg == REG_HOME)
                m->time_valid = true;
}

/* --- dispatch --- */

static const struct {
        const char *name;
        Handler handler;
} commands[] = {
        { "", cmd_at },
        { "E", cmd_echo_off },
        { "E0", cmd_echo_off },
        { "+CMEE", cmd_cmee },
        { "+CFUN", cmd_cfun },
        { "+CEREG", cmd_cereg },
        { "+CESQ", cmd_cesq },
        { "+CGSN", cmd_cgsn },
        { "+CGMR", cmd_cgmr },
        { "+CGMI", cmd_cgmi },
        { "+CGMM", cmd_cgmm },
        { "+CCLK", cmd_cclk },
        { "%CCLK", cmd_pcclk },
        { "%HWVERSION", cmd_hwversion },
        { "%SHORTSWVER", cmd_shortswver },
        { "%XMODEMUUID", cmd_xmodemuuid },
        { "%XICCID", cmd_xiccid },
        { "%CMNG", cmd_cmng },
        { "%KEYGEN", cmd_keygen },
        { "%ATTESTTOKEN", cmd_attesttoken },
        { "%JWT", cmd_jwt },
        { "%XMONITOR", cmd_xmonitor },
        { "%NCELLMEAS", cmd_ncellmeas },
        { "%NCELLMEASSTOP", cmd_ncellmeasstop },
};

ssize_t modem_emu_execute(ModemEmu *m, const char *cmd, size_t len, char *out, size_t out_size) {
        Command c = { .args.count = 0 };
        Buf b = { 0 };
        int res = RES_ERROR;
        ssize_t ret;

        if (!m || (!cmd && len > 0) || (!out && out_size > 0))
                return -EINVAL;

        /* Syntax errors (text after a closing quote, control bytes outside quotes, too many parameters) are ERROR. */
        if (at_cmd_parse(cmd, len, &c.cmd) == 0 &&
            (c.cmd.type != AT_CMD_SET || at_args_parse(c.cmd.params, c.cmd.params_len, AT_ARGS_TOKENS, &c.args) == 0)) {
                for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                        if (at_cmd_is(&c.cmd, commands[i].name)) {
                                res = commands[i].handler(m, &c, &b);
                                break;
                        }
        }

        if (res != RES_OK)
                b.len = 0; /* a failed command prints nothing but its final result */
        if (res == RES_OK)
                buf_adds(&b, "\r\nOK\r\n");
        else if (res > 0 && m->cmee)
                buf_printf(&b, "\r\n+CME ERROR: %d\r\n", res);
        else
                buf_adds(&b, "\r\nERROR\r\n");

        if (b.oom)
                ret = -ENOMEM;
        else if (b.len > out_size)
                ret = -ENOBUFS;
        else {
                memcpy(out, b.p, b.len);
                ret = (ssize_t) b.len;
        }
        free(b.p);
        return ret;
}

/* --- life cycle and the host port's view --- */

int modem_emu_new(const char *state_dir, const char *uuid, const char *imei, ModemEmu **ret) {
        ModemEmu *m;
        const char *e;
        int r;

        if (!state_dir || !*state_dir || !ret)
                return -EINVAL;
        m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        m->state_dir = strdup(state_dir);
        if (!m->state_dir) {
                free(m);
                return -ENOMEM;
        }
        m->sync = true;
        m->cell = default_cell;
        m->reg_delay_ms = MODEM_EMU_DEFAULT_REG_DELAY_MS;
        e = getenv("MODEM_EMU_REG_DELAY_MS");
        if (e && *e) {
                char *end;
                unsigned long v = strtoul(e, &end, 10);
                if (*end == 0 && v <= 600000)
                        m->reg_delay_ms = (unsigned) v;
        }

        r = modem_emu_state_load(m, uuid, imei);
        if (r < 0) {
                modem_emu_free(m);
                return r;
        }
        *ret = m;
        return 0;
}

ModemEmu *modem_emu_free(ModemEmu *m) {
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_creds; i++) {
                free(m->creds[i].content);
                free(m->creds[i].passwd);
                free(m->creds[i].tls_pem);
        }
        free(m->creds);
        urc_clear(m);
        EVP_PKEY_free(m->identity_key);
        free(m->state_dir);
        free(m);
        return NULL;
}

void modem_emu_set_urc_callback(ModemEmu *m, modem_emu_urc_cb cb, void *userdata) {
        m->urc_cb = cb;
        m->urc_userdata = userdata;
}

void modem_emu_tick(ModemEmu *m, uint64_t now_ms) {
        m->now_ms = now_ms;

        if (m->reg_start_pending) {
                m->reg_start_pending = false;
                m->reg_timer = true;
                m->reg_at_ms = now_ms + m->reg_delay_ms;
        }
        if (m->reg_timer && now_ms >= m->reg_at_ms && m->cfun == 1) {
                m->reg_timer = false;
                m->reg = REG_HOME;
                if (!m->no_network_time)
                        m->time_valid = true; /* the network hands out the time */
                cereg_changed(m);
        }
        if (m->ncellmeas_pending && now_ms >= m->ncellmeas_at_ms) {
                m->ncellmeas_pending = false;
                ncellmeas_report(m);
        }

        /* The callback may call back into the modem (even execute): take the queue first. */
        while (m->n_urcs > 0) {
                char *line = m->urcs[0];
                memmove(&m->urcs[0], &m->urcs[1], sizeof(char *) * (m->n_urcs - 1));
                m->n_urcs--;
                if (m->urc_cb)
                        m->urc_cb(line, m->urc_userdata);
                free(line);
        }
}

void modem_emu_reboot(ModemEmu *m) {
        m->cfun = 0;
        m->cmee = 0;
        m->cereg_n = 0;
        m->reg = REG_NOT_SEARCHING;
        m->reg_start_pending = false;
        m->reg_timer = false;
        m->ncellmeas_pending = false;
        m->time_valid = false;
        m->time_offset_s = 0;
        m->tz_quarters = 0;
        urc_clear(m);
}

const char *modem_emu_device_uuid(const ModemEmu *m) {
        return m->uuid;
}

int modem_emu_cfun(const ModemEmu *m) {
        return m->cfun;
}

bool modem_emu_network_ready(const ModemEmu *m) {
        return m->cfun == 1 && m->reg == REG_HOME;
}

const char *modem_emu_credential(const ModemEmu *m, uint32_t sec_tag, int type) {
        const Credential *c;

        if (type < 0 || type > 2)
                return NULL;
        c = modem_emu_cred_find(m, sec_tag, type);
        if (!c)
                return NULL;
        return c->tls_pem ? c->tls_pem : c->content;
}

int modem_emu_set_firmware_version(ModemEmu *m, const char *version) {
        char old[sizeof m->fw_version];
        size_t len;
        int r;

        if (!m || !version)
                return -EINVAL;
        len = strlen(version);
        if (len == 0 || len > MODEM_EMU_FW_VERSION_MAX || !printable(version, len))
                return -EINVAL;
        memcpy(old, m->fw_version, sizeof old);
        memcpy(m->fw_version, version, len + 1);
        r = modem_emu_state_save_identity(m);
        if (r < 0) {
                memcpy(m->fw_version, old, sizeof old);
                return r;
        }
        modem_emu_derive_fw_uuid(m);
        return 0;
}
