/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "at-params.h"
#include "port.h"

static char lower(char c) {
        return c >= 'A' && c <= 'Z' ? (char) (c - 'A' + 'a') : c;
}

int at_cmd_parse(const char *line, size_t len, struct at_cmd *ret) {
        size_t i = 2;

        if (len < 2 || lower(line[0]) != 'a' || lower(line[1]) != 't')
                return -NRF91_EINVAL;

        *ret = (struct at_cmd){ .name = line + 2 };
        while (i < len && line[i] != '=' && line[i] != '?')
                i++;
        ret->name_len = i - 2;
        if (i == len) {
                ret->type = AT_CMD_EXEC;
        } else if (line[i] == '?') {
                if (i + 1 != len)
                        return -NRF91_EINVAL;
                ret->type = AT_CMD_READ;
        } else if (i + 2 == len && line[i + 1] == '?') {
                ret->type = AT_CMD_TEST;
        } else {
                ret->type = AT_CMD_SET;
                ret->params = line + i + 1;
                ret->params_len = len - i - 1;
        }
        return 0;
}

bool at_cmd_is(const struct at_cmd *cmd, const char *name) {
        size_t n = strlen(name);

        if (cmd->name_len != n)
                return false;
        for (size_t i = 0; i < n; i++)
                if (lower(cmd->name[i]) != lower(name[i]))
                        return false;
        return true;
}

static size_t skip_spaces(const char *s, size_t len, size_t i) {
        while (i < len && s[i] == ' ')
                i++;
        return i;
}

/* A decimal integer with an optional sign at s[*i]: 0, -NRF91_EINVAL (no digits) or -NRF91_ERANGE. */
static int parse_int(const char *s, size_t len, size_t *i, int64_t *ret) {
        bool negative = false;
        uint64_t v = 0;
        size_t digits = 0;

        if (s[*i] == '-' || s[*i] == '+')
                negative = s[(*i)++] == '-';
        for (; *i < len && s[*i] >= '0' && s[*i] <= '9'; (*i)++, digits++) {
                v = v * 10 + (uint64_t) (s[*i] - '0');
                if (v > (uint64_t) INT64_MAX)
                        return -NRF91_ERANGE;
        }
        if (digits == 0)
                return -NRF91_EINVAL;
        *ret = negative ? -(int64_t) v : (int64_t) v;
        return 0;
}

/* An unquoted token runs to the next comma; printable ASCII only, no quote. */
static int parse_token(const char *s, size_t len, size_t *i, struct at_arg *ret) {
        size_t start = *i, end;

        for (; *i < len && s[*i] != ','; (*i)++)
                if (s[*i] == '"' || (unsigned char) s[*i] < 0x20 || (unsigned char) s[*i] >= 0x7f)
                        return -NRF91_EINVAL;
        for (end = *i; s[end - 1] == ' '; end--)
                ;
        ret->type = AT_ARG_TOKEN;
        ret->str = s + start;
        ret->len = end - start;
        return 0;
}

int at_args_parse(const char *s, size_t len, unsigned flags, struct at_args *ret) {
        size_t i = 0;
        int r;

        ret->count = 0;
        for (;;) {
                struct at_arg arg = { .type = AT_ARG_EMPTY };

                if (ret->count == AT_ARGS_MAX)
                        return -NRF91_E2BIG;
                i = skip_spaces(s, len, i);
                if (i < len && s[i] == '"') {
                        size_t start = ++i;
                        while (i < len && s[i] != '"')
                                i++;
                        if (i == len)
                                return -NRF91_EINVAL; /* unterminated string */
                        arg.type = AT_ARG_STRING;
                        arg.str = s + start;
                        arg.len = i - start;
                        i++;
                } else if (i < len && s[i] != ',') {
                        size_t start = i, next;

                        r = parse_int(s, len, &i, &arg.num);
                        next = skip_spaces(s, len, i);
                        if (r == 0 && next < len && s[next] != ',')
                                r = -NRF91_EINVAL; /* more after the digits */
                        if (r == 0) {
                                arg.type = AT_ARG_INT;
                                arg.str = s + start;
                                arg.len = i - start;
                        } else if (!(flags & AT_ARGS_TOKENS)) {
                                return r;
                        } else {
                                i = start;
                                r = parse_token(s, len, &i, &arg);
                                if (r < 0)
                                        return r;
                        }
                }
                i = skip_spaces(s, len, i);
                ret->v[ret->count++] = arg;
                if (i == len)
                        return 0;
                if (s[i] != ',')
                        return -NRF91_EINVAL;
                i++;
        }
}

bool at_param_present(const struct at_args *a, size_t i) {
        return i < a->count && a->v[i].type != AT_ARG_EMPTY;
}

int at_param_int(const struct at_args *a, size_t i, int64_t min, int64_t max, int64_t *ret) {
        if (i >= a->count || a->v[i].type != AT_ARG_INT || a->v[i].num < min || a->v[i].num > max)
                return -NRF91_EINVAL;
        *ret = a->v[i].num;
        return 0;
}

int at_param_int_opt(const struct at_args *a, size_t i, int64_t min, int64_t max, int64_t def, int64_t *ret) {
        if (!at_param_present(a, i)) {
                *ret = def;
                return 0;
        }
        return at_param_int(a, i, min, max, ret);
}

int at_param_text(const struct at_args *a, size_t i, bool unquoted, const char **ret, size_t *ret_len) {
        if (!at_param_present(a, i) || (a->v[i].type != AT_ARG_STRING && !unquoted))
                return -NRF91_EINVAL;
        *ret = a->v[i].str;
        *ret_len = a->v[i].len;
        return 0;
}

int at_param_str(const struct at_args *a, size_t i, char *buf, size_t size) {
        const char *s;
        size_t n;

        if (at_param_text(a, i, false, &s, &n) < 0 || n >= size || memchr(s, '\0', n))
                return -NRF91_EINVAL;
        memcpy(buf, s, n);
        buf[n] = '\0';
        return 0;
}
