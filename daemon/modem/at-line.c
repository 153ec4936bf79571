/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "at-line.h"
#include "macro.h"

static const char *const at_line_kind_table[_AT_LINE_KIND_MAX] = {
        [AT_LINE_INFO] = "info",
        [AT_LINE_OK] = "OK",
        [AT_LINE_ERROR] = "ERROR",
        [AT_LINE_CME_ERROR] = "+CME ERROR",
        [AT_LINE_CMS_ERROR] = "+CMS ERROR",
        [AT_LINE_BINARY_HEADER] = "binary-header",
};

const char *at_line_kind_to_string(AtLineKind k) {
        return k >= 0 && k < _AT_LINE_KIND_MAX ? at_line_kind_table[k] : NULL;
}

bool at_line_kind_is_final(AtLineKind k) {
        switch (k) {
        case AT_LINE_OK:
        case AT_LINE_ERROR:
        case AT_LINE_CME_ERROR:
        case AT_LINE_CMS_ERROR:
                return true;
        case AT_LINE_INFO:
        case AT_LINE_BINARY_HEADER:
        case _AT_LINE_KIND_MAX:
                return false;
        }
        return false;
}

/*
 * +CME ERROR codes used by the commands this daemon sends.  The errno values
 * follow sdk-nrf's modem_key_mgmt mapping where it has one (513 ENOENT,
 * 514 EACCES, 515 ENOMEM, 518 EPERM, 519 EALREADY, 528 ECANCELED).
 */
static const struct {
        unsigned code;
        int error;
        const char *text;
} cme_table[] = {
        { 50, -EINVAL, "incorrect parameters" },
        { 51, -EOPNOTSUPP, "command disabled in this software build" },
        { 513, -ENOENT, "not found" },
        { 514, -EACCES, "no access" },
        { 515, -ENOMEM, "memory full" },
        { 518, -EPERM, "not allowed while the modem is active (needs AT+CFUN=4 or 0)" },
        { 519, -EALREADY, "already exists" },
        { 523, -EKEYREJECTED, "key generation failed" },
        { 525, -EBADE, "JWT creation failed" },
        { 528, -ECANCELED, "not allowed while a power-off warning is active" },
};

int at_cme_to_errno(unsigned code) {
        for (size_t i = 0; i < ELEMENTSOF(cme_table); i++)
                if (cme_table[i].code == code)
                        return cme_table[i].error;
        return -EREMOTEIO;
}

const char *at_cme_to_string(unsigned code) {
        for (size_t i = 0; i < ELEMENTSOF(cme_table); i++)
                if (cme_table[i].code == code)
                        return cme_table[i].text;
        return NULL;
}

static bool has_prefix(const char *line, size_t len, const char *prefix, size_t *ret_plen) {
        size_t n = strlen(prefix);
        if (len < n || memcmp(line, prefix, n) != 0)
                return false;
        *ret_plen = n;
        return true;
}

/* Exactly decimal digits up to end, value <= max. */
static int parse_decimal(const char *p, const char *end, uint64_t max, uint64_t *ret) {
        uint64_t v = 0;
        if (p >= end)
                return -EBADMSG;
        for (; p < end; p++) {
                if (*p < '0' || *p > '9')
                        return -EBADMSG;
                /* d > max first: max - d must not wrap for small caps. */
                if ((uint64_t) (*p - '0') > max || v > (max - (uint64_t) (*p - '0')) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t) (*p - '0');
        }
        *ret = v;
        return 0;
}

static int classify_error_code(const char *line, size_t len, size_t plen, AtLineKind kind, AtLineClass *ret) {
        const char *p = line + plen, *end = line + len;
        uint64_t v;
        int r;

        while (p < end && *p == ' ')
                p++;
        while (end > p && end[-1] == ' ')
                end--;
        r = parse_decimal(p, end, 65535, &v);
        if (r < 0)
                return -EBADMSG;
        *ret = (AtLineClass){ .kind = kind, .code = (unsigned) v };
        return 0;
}

/* Binary headers of modem-link.md: "#XRECV: <handle>,<len>" and "#XDOWNLOAD: <id>,1,<len>". */
static int classify_binary(const char *line, size_t len, AtLineClass *ret) {
        AtCursor c;
        uint64_t a, b, n;

        if (at_cursor_init(&c, line, len, "#XRECV") >= 0) {
                if (at_cursor_uint(&c, UINT32_MAX, &a) < 0 || at_cursor_uint(&c, UINT32_MAX, &n) < 0 ||
                    !at_cursor_at_end(&c))
                        return -EBADMSG;
        } else if (at_cursor_init(&c, line, len, "#XDOWNLOAD") >= 0) {
                if (at_cursor_uint(&c, UINT32_MAX, &a) < 0 || at_cursor_uint(&c, UINT32_MAX, &b) < 0)
                        return -ENOMSG; /* "#XDOWNLOAD: <id>,0" and friends are plain lines */
                if (b != 1)
                        return -ENOMSG;
                if (at_cursor_uint(&c, UINT32_MAX, &n) < 0 || !at_cursor_at_end(&c))
                        return -EBADMSG;
        } else
                return -ENOMSG;

        if (n == 0 || n > AT_BINARY_MAX)
                return -EBADMSG;
        *ret = (AtLineClass){ .kind = AT_LINE_BINARY_HEADER, .binary_length = (size_t) n };
        return 0;
}

int at_line_classify(const char *line, size_t len, AtLineClass *ret) {
        size_t plen;
        int r;

        if (len == 2 && memcmp(line, "OK", 2) == 0) {
                *ret = (AtLineClass){ .kind = AT_LINE_OK };
                return 0;
        }
        if (len == 5 && memcmp(line, "ERROR", 5) == 0) {
                *ret = (AtLineClass){ .kind = AT_LINE_ERROR };
                return 0;
        }
        if (has_prefix(line, len, "+CME ERROR:", &plen))
                return classify_error_code(line, len, plen, AT_LINE_CME_ERROR, ret);
        if (has_prefix(line, len, "+CMS ERROR:", &plen))
                return classify_error_code(line, len, plen, AT_LINE_CMS_ERROR, ret);

        r = classify_binary(line, len, ret);
        if (r != -ENOMSG)
                return r;

        *ret = (AtLineClass){ .kind = AT_LINE_INFO };
        return 0;
}

const char *at_escape(const void *data, size_t len, char *buf, size_t buflen) {
        const unsigned char *p = data;
        size_t o = 0;

        if (buflen == 0)
                return "";
        for (size_t i = 0; i < len; i++) {
                char tmp[8];
                size_t n;

                if (p[i] == '\r')
                        n = (size_t) snprintf(tmp, sizeof tmp, "<CR>");
                else if (p[i] == '\n')
                        n = (size_t) snprintf(tmp, sizeof tmp, "<LF>");
                else if (p[i] < 0x20 || p[i] >= 0x7f)
                        n = (size_t) snprintf(tmp, sizeof tmp, "<%02x>", p[i]);
                else {
                        tmp[0] = (char) p[i];
                        n = 1;
                }
                if (o + n + 4 > buflen) {
                        if (o + 4 <= buflen) {
                                memcpy(buf + o, "...", 3);
                                o += 3;
                        }
                        break;
                }
                memcpy(buf + o, tmp, n);
                o += n;
        }
        buf[MIN(o, buflen - 1)] = 0;
        return buf;
}

int at_cursor_init(AtCursor *c, const char *line, size_t len, const char *prefix) {
        size_t n = strlen(prefix);
        const char *p = line, *end = line + len;

        if (len < n + 1 || memcmp(line, prefix, n) != 0 || line[n] != ':')
                return -ENOMSG;
        p += n + 1;
        while (p < end && *p == ' ')
                p++;
        *c = (AtCursor){ .p = p, .end = end };
        return 0;
}

bool at_cursor_at_end(const AtCursor *c) {
        return c->p >= c->end;
}

/* Ends the current parameter: spaces, then a comma (followed by spaces) or the end. */
static int cursor_next(AtCursor *c) {
        while (c->p < c->end && *c->p == ' ')
                c->p++;
        if (c->p >= c->end)
                return 0;
        if (*c->p != ',')
                return -EBADMSG;
        c->p++;
        while (c->p < c->end && *c->p == ' ')
                c->p++;
        if (c->p >= c->end)
                return -EBADMSG; /* a trailing comma promises a parameter */
        return 0;
}

static const char *cursor_token_end(const AtCursor *c) {
        const char *q = c->p;
        while (q < c->end && *q != ',' && *q != ' ')
                q++;
        return q;
}

int at_cursor_uint(AtCursor *c, uint64_t max, uint64_t *ret) {
        const char *q;
        uint64_t v;
        int r;

        if (c->p >= c->end)
                return -ENODATA;
        q = cursor_token_end(c);
        r = parse_decimal(c->p, q, max, &v);
        if (r < 0)
                return r;
        c->p = q;
        r = cursor_next(c);
        if (r < 0)
                return r;
        *ret = v;
        return 0;
}

int at_cursor_int(AtCursor *c, int64_t min, int64_t max, int64_t *ret) {
        const char *q, *p = c->p;
        bool neg = false;
        uint64_t v;
        int64_t s;
        int r;

        if (p >= c->end)
                return -ENODATA;
        if (*p == '-') {
                neg = true;
                p++;
        }
        q = cursor_token_end(c);
        r = parse_decimal(p, q, (uint64_t) INT64_MAX, &v);
        if (r < 0)
                return r;
        s = neg ? -(int64_t) v : (int64_t) v;
        if (s < min || s > max)
                return -ERANGE;
        c->p = q;
        r = cursor_next(c);
        if (r < 0)
                return r;
        *ret = s;
        return 0;
}

int at_cursor_string(AtCursor *c, const char **ret, size_t *ret_len) {
        const char *s, *q;
        int r;

        if (c->p >= c->end)
                return -ENODATA;
        if (*c->p == '"') {
                s = c->p + 1;
                q = memchr(s, '"', (size_t) (c->end - s));
                if (!q)
                        return -EBADMSG;
                c->p = q + 1;
        } else {
                s = c->p;
                q = s;
                while (q < c->end && *q != ',')
                        q++;
                c->p = q;
        }
        r = cursor_next(c);
        if (r < 0)
                return r;
        *ret = s;
        *ret_len = (size_t) (q - s);
        return 0;
}
