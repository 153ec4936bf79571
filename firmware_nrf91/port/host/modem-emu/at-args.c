/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "at-args.h"

static bool name_char(char ch) {
        return isalnum((unsigned char) ch) || ch == '+' || ch == '%' || ch == '#' || ch == '&' || ch == '_';
}

int at_parse(const char *cmd, size_t len, AtCommand *ret) {
        size_t i = 0, n = 0;

        if (!cmd || !ret)
                return -EINVAL;
        memset(ret, 0, sizeof *ret);

        if (len < 2 || toupper((unsigned char) cmd[0]) != 'A' || toupper((unsigned char) cmd[1]) != 'T')
                return -EINVAL;
        i = 2;

        /* The name: "+CFUN", "%CMNG", "E0", or nothing (plain "AT"). */
        while (i < len && name_char(cmd[i])) {
                if (n >= AT_NAME_MAX)
                        return -EINVAL;
                ret->name[n++] = (char) toupper((unsigned char) cmd[i]);
                i++;
        }
        ret->name[n] = 0;

        if (i == len) {
                ret->op = AT_OP_EXEC;
                return 0;
        }
        if (cmd[i] == '?') {
                if (i + 1 != len)
                        return -EINVAL;
                ret->op = AT_OP_READ;
                return 0;
        }
        if (cmd[i] != '=')
                return -EINVAL;
        i++;
        if (i + 1 == len && cmd[i] == '?') {
                ret->op = AT_OP_TEST;
                return 0;
        }
        ret->op = AT_OP_SET;

        /* Parameters: comma separated; "AT+X=" has one empty parameter. */
        for (;;) {
                AtArg *a;

                if (ret->n_args >= AT_ARGS_MAX)
                        return -EINVAL;
                a = &ret->args[ret->n_args++];

                if (i < len && cmd[i] == '"') {
                        size_t start = ++i;
                        while (i < len && cmd[i] != '"')
                                i++;
                        if (i >= len)
                                return -EINVAL; /* unterminated */
                        a->kind = AT_ARG_STRING;
                        a->p = cmd + start;
                        a->len = i - start;
                        i++; /* closing quote */
                } else {
                        size_t start = i;
                        while (i < len && cmd[i] != ',') {
                                unsigned char ch = (unsigned char) cmd[i];
                                if (ch == '"' || ch < 0x20 || ch >= 0x7f)
                                        return -EINVAL;
                                i++;
                        }
                        a->kind = i > start ? AT_ARG_TOKEN : AT_ARG_EMPTY;
                        a->p = cmd + start;
                        a->len = i - start;
                }

                if (i == len)
                        return 0;
                if (cmd[i] != ',')
                        return -EINVAL; /* junk after a closing quote */
                i++;
        }
}

bool at_arg_present(const AtCommand *c, size_t i) {
        return i < c->n_args && c->args[i].kind != AT_ARG_EMPTY;
}

int at_arg_int(const AtCommand *c, size_t i, int64_t min, int64_t max, int64_t *ret) {
        const AtArg *a;
        bool neg = false;
        uint64_t v = 0;
        size_t k = 0;

        if (!at_arg_present(c, i))
                return -ENODATA;
        a = &c->args[i];
        if (a->kind != AT_ARG_TOKEN)
                return -EINVAL;
        if (a->p[0] == '-' && min < 0) {
                neg = true;
                k = 1;
        }
        if (k >= a->len)
                return -EINVAL;
        for (; k < a->len; k++) {
                if (a->p[k] < '0' || a->p[k] > '9')
                        return -EINVAL;
                if (v > (UINT64_MAX / 2 - 9) / 10)
                        return -EINVAL; /* far too large for any parameter */
                v = v * 10 + (uint64_t) (a->p[k] - '0');
        }
        if (neg) {
                if (v > (uint64_t) INT64_MAX)
                        return -EINVAL;
                if (-(int64_t) v < min)
                        return -EINVAL;
                *ret = -(int64_t) v;
                return 0;
        }
        if (v > (uint64_t) INT64_MAX || (int64_t) v > max || (int64_t) v < min)
                return -EINVAL;
        *ret = (int64_t) v;
        return 0;
}

int at_arg_str(const AtCommand *c, size_t i, bool allow_token, const char **ret, size_t *ret_len) {
        const AtArg *a;

        if (!at_arg_present(c, i))
                return -ENODATA;
        a = &c->args[i];
        if (a->kind == AT_ARG_STRING || (allow_token && a->kind == AT_ARG_TOKEN)) {
                *ret = a->p;
                *ret_len = a->len;
                return 0;
        }
        return -EINVAL;
}
