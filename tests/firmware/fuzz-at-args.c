/* SPDX-License-Identifier: MIT */
/*
 * The command name and parameter parser on arbitrary text, in both of its
 * dialects: the core's own commands (integers and strings only) and the
 * modem's (unquoted tokens too), which must accept everything the first does.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "at-params.h"
#include "port.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool inside(const char *p, size_t n, const char *s, size_t size) {
        return p >= s && p + n <= s + size;
}

static void check_args(const char *s, size_t size, const struct at_args *args) {
        const char *t;
        char buf[64];
        size_t n;
        int64_t v;

        if (args->count == 0 || args->count > AT_ARGS_MAX)
                abort();
        for (size_t i = 0; i <= args->count; i++) {
                if (i < args->count && args->v[i].type != AT_ARG_EMPTY && !inside(args->v[i].str, args->v[i].len, s, size))
                        abort();
                if (at_param_int(args, i, INT64_MIN, INT64_MAX, &v) == 0 && v != args->v[i].num)
                        abort();
                (void) at_param_int_opt(args, i, -5, 5, 0, &v);
                (void) at_param_int(args, i, 0, 4294967295LL, &v);
                if (at_param_str(args, i, buf, sizeof buf) == 0 && strlen(buf) != args->v[i].len)
                        abort();
                if (at_param_text(args, i, true, &t, &n) == 0 && (t != args->v[i].str || n != args->v[i].len))
                        abort();
                if (at_param_present(args, i) != (at_param_text(args, i, true, &t, &n) == 0))
                        abort();
                if (i < args->count && args->v[i].type == AT_ARG_TOKEN &&
                    (n == 0 || memchr(t, ',', n) || memchr(t, '"', n) || t[0] == ' ' || t[n - 1] == ' '))
                        abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *s = (const char *) data;
        struct at_args args, tokens;
        struct at_cmd cmd;
        int r;

        if (size > 8192)
                return 0;
        if (at_cmd_parse(s, size, &cmd) == 0) {
                if (cmd.name < s || cmd.name + cmd.name_len > s + size)
                        abort();
                (void) at_cmd_is(&cmd, "#XSEND");
                if (cmd.type == AT_CMD_SET && (cmd.params < s || cmd.params + cmd.params_len > s + size))
                        abort();
        }

        r = at_args_parse(s, size, AT_ARGS_TOKENS, &tokens);
        if (r == 0)
                check_args(s, size, &tokens);
        if (at_args_parse(s, size, 0, &args) < 0)
                return 0;
        check_args(s, size, &args);
        /* Tokens only add: the same values, integers and strings alike. */
        if (r < 0 || tokens.count != args.count)
                abort();
        for (size_t i = 0; i < args.count; i++)
                if (tokens.v[i].type != args.v[i].type || tokens.v[i].len != args.v[i].len ||
                    (args.v[i].type == AT_ARG_INT && tokens.v[i].num != args.v[i].num))
                        abort();
        return 0;
}
