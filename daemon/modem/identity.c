/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "at-line.h"
#include "identity.h"
#include "macro.h"

static const char *const cred_type_table[_CRED_TYPE_MAX] = {
        [CRED_ROOT_CA] = "root CA certificate",
        [CRED_CLIENT_CERT] = "client certificate",
        [CRED_CLIENT_KEY] = "client private key",
        [CRED_PSK] = "PSK",
        [CRED_PSK_IDENTITY] = "PSK identity",
        [CRED_PUBLIC_KEY] = "public key",
        [CRED_DEVICE_IDENTITY_PUBLIC_KEY] = "device identity public key",
        [CRED_RESERVED] = "reserved",
        [CRED_ENDORSEMENT_KEY] = "endorsement key",
        [CRED_OWNERSHIP_KEY] = "ownership key",
        [CRED_NORDIC_ID_ROOT_CA] = "Nordic identity root CA",
        [CRED_NORDIC_PUBLIC_KEY] = "Nordic base public key",
};

const char *cred_type_to_string(CredType t) {
        return t >= 0 && t < _CRED_TYPE_MAX ? cred_type_table[t] : NULL;
}

int at_parse_cmng_list(const char *line, CmngEntry *ret) {
        CmngEntry e = {};
        AtCursor c;
        uint64_t tag, type;
        const char *s;
        size_t n;
        int r;

        r = at_cursor_init(&c, line, strlen(line), "%CMNG");
        if (r < 0)
                return r;
        r = at_cursor_uint(&c, UINT32_MAX, &tag);
        if (r < 0)
                return -EBADMSG;
        r = at_cursor_uint(&c, 255, &type);
        if (r < 0 || type >= _CRED_TYPE_MAX)
                return -EBADMSG;
        e.sec_tag = (uint32_t) tag;
        e.type = (CredType) type;
        if (!at_cursor_at_end(&c)) {
                r = at_cursor_string(&c, &s, &n);
                if (r < 0 || n != 64 || !at_cursor_at_end(&c))
                        return -EBADMSG;
                for (size_t i = 0; i < n; i++) {
                        if (!isxdigit((unsigned char) s[i]))
                                return -EBADMSG;
                        e.sha256[i] = (char) toupper((unsigned char) s[i]);
                }
                e.sha256[64] = 0;
                e.has_sha = true;
        }
        *ret = e;
        return 0;
}

bool uuid_string_is_valid(const char *s) {
        static const unsigned groups[] = { 8, 4, 4, 4, 12 };
        const char *p = s;

        for (size_t g = 0; g < ELEMENTSOF(groups); g++) {
                for (unsigned i = 0; i < groups[g]; i++, p++)
                        if (!isxdigit((unsigned char) *p))
                                return false;
                if (g + 1 < ELEMENTSOF(groups)) {
                        if (*p != '-')
                                return false;
                        p++;
                }
        }
        return *p == 0;
}

int at_parse_xuuid(const char *line, char ret[MODEM_UUID_STRING_MAX]) {
        char buf[MODEM_UUID_STRING_MAX];
        AtCursor c;
        const char *s;
        size_t n;
        int r;

        r = at_cursor_init(&c, line, strlen(line), "#XUUID");
        if (r < 0)
                return r;
        r = at_cursor_string(&c, &s, &n);
        if (r < 0 || n != MODEM_UUID_STRING_MAX - 1 || !at_cursor_at_end(&c))
                return -EBADMSG;
        for (size_t i = 0; i < n; i++)
                buf[i] = (char) tolower((unsigned char) s[i]);
        buf[n] = 0;
        if (!uuid_string_is_valid(buf))
                return -EBADMSG;
        memcpy(ret, buf, sizeof buf);
        return 0;
}

int at_parse_cgsn(const char *line, char ret[MODEM_IMEI_STRING_MAX]) {
        AtCursor c;
        const char *s;
        size_t n;
        int r;

        r = at_cursor_init(&c, line, strlen(line), "+CGSN");
        if (r < 0)
                return r;
        r = at_cursor_string(&c, &s, &n);
        if (r < 0 || n != MODEM_IMEI_STRING_MAX - 1 || !at_cursor_at_end(&c))
                return -EBADMSG;
        for (size_t i = 0; i < n; i++)
                if (s[i] < '0' || s[i] > '9')
                        return -EBADMSG;
        memcpy(ret, s, n);
        ret[n] = 0;
        return 0;
}

static int copy_printable(const char *s, size_t n, size_t max, char **ret) {
        char *copy;

        if (n == 0 || n > max)
                return -EBADMSG;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) s[i] < 0x20 || (unsigned char) s[i] >= 0x7f)
                        return -EBADMSG;
        copy = strndup(s, n);
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

int at_parse_cgmr(const char *line, char **ret) {
        /* The answer is a bare line; refuse what looks like another command's information line. */
        if (strchr(line, ':') || strchr(line, '"') || strchr(line, ' '))
                return -EBADMSG;
        return copy_printable(line, strlen(line), MODEM_VERSION_MAX, ret);
}

int at_parse_smver(const char *line, char **ret_fw, char **ret_sdk) {
        _cleanup_free_ char *fw = NULL, *sdk = NULL;
        AtCursor c;
        const char *s;
        size_t n;
        int r;

        r = at_cursor_init(&c, line, strlen(line), "#XSMVER");
        if (r < 0)
                return r;
        r = at_cursor_string(&c, &s, &n);
        if (r < 0)
                return -EBADMSG;
        r = copy_printable(s, n, MODEM_VERSION_MAX, &fw);
        if (r < 0)
                return r;
        if (!at_cursor_at_end(&c)) {
                r = at_cursor_string(&c, &s, &n);
                if (r < 0)
                        return -EBADMSG;
                r = copy_printable(s, n, MODEM_VERSION_MAX, &sdk);
                if (r < 0)
                        return r;
        }
        *ret_fw = TAKE_PTR(fw);
        if (ret_sdk)
                *ret_sdk = TAKE_PTR(sdk);
        return 0;
}

int at_parse_cfun(const char *line, unsigned *ret) {
        AtCursor c;
        uint64_t v;
        int r;

        r = at_cursor_init(&c, line, strlen(line), "+CFUN");
        if (r < 0)
                return r;
        r = at_cursor_uint(&c, 255, &v);
        if (r < 0 || !at_cursor_at_end(&c))
                return -EBADMSG;
        *ret = (unsigned) v;
        return 0;
}

int at_parse_cesq(const char *line, int32_t *ret_rsrp, int32_t *ret_rsrq) {
        uint64_t f[6];
        AtCursor c;
        int r;

        r = at_cursor_init(&c, line, strlen(line), "+CESQ");
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(f); i++)
                if (at_cursor_uint(&c, 255, &f[i]) < 0)
                        return -EBADMSG;
        if (!at_cursor_at_end(&c) || (f[4] > 34 && f[4] != 255) || (f[5] > 97 && f[5] != 255))
                return -EBADMSG;
        *ret_rsrq = f[4] == 255 ? AT_CESQ_UNKNOWN : (int32_t) f[4] * 5 - 200;
        *ret_rsrp = f[5] == 255 ? AT_CESQ_UNKNOWN : (int32_t) f[5] - 141;
        return 0;
}

int at_parse_quoted(const char *line, const char *prefix, size_t max, char **ret) {
        AtCursor c;
        const char *s;
        size_t n;
        int r;

        r = at_cursor_init(&c, line, strlen(line), prefix);
        if (r < 0)
                return r;
        if (at_cursor_at_end(&c) || *c.p != '"')
                return -EBADMSG;
        r = at_cursor_string(&c, &s, &n);
        if (r < 0 || !at_cursor_at_end(&c))
                return -EBADMSG;
        return copy_printable(s, n, max, ret);
}

const char *imei_redact(const char *imei, char buf[MODEM_IMEI_STRING_MAX]) {
        size_t n = strlen(imei);

        if (n != MODEM_IMEI_STRING_MAX - 1)
                return "(invalid)";
        /* TAC (8 digits) identifies the model, not the unit; the serial number (6) does. */
        memcpy(buf, imei, 8);
        memset(buf + 8, 'X', 6);
        buf[14] = imei[14];
        buf[15] = 0;
        return buf;
}

int mfw_version_parse(const char *s, unsigned ret[3]) {
        /* The first "<1-3 digits>.<1-3>.<1-3>" that starts at the beginning or after '-'/'_'. */
        for (const char *p = s; *p; p++) {
                unsigned v[3] = {};
                const char *q = p;
                bool ok = true;

                if (p != s && p[-1] != '_' && p[-1] != '-')
                        continue;
                for (int k = 0; k < 3 && ok; k++) {
                        int digits = 0;
                        while (*q >= '0' && *q <= '9' && digits < 4) {
                                v[k] = v[k] * 10 + (unsigned) (*q - '0');
                                q++;
                                digits++;
                        }
                        if (digits == 0 || digits > 3)
                                ok = false;
                        else if (k < 2) {
                                if (*q != '.')
                                        ok = false;
                                else
                                        q++;
                        }
                }
                if (ok && (*q == 0 || *q == '-' || *q == '_')) {
                        memcpy(ret, v, sizeof v);
                        return 0;
                }
        }
        return -EBADMSG;
}
