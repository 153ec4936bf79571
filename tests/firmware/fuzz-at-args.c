/* SPDX-License-Identifier: MIT */
/* The command name and parameter parser on arbitrary text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "at-params.h"
#include "port.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *s = (const char *) data;
        struct at_args args;
        struct at_cmd cmd;
        char buf[64];
        int64_t v;

        if (size > 8192)
                return 0;
        if (at_cmd_parse(s, size, &cmd) == 0) {
                if (cmd.name < s || cmd.name + cmd.name_len > s + size)
                        abort();
                (void) at_cmd_is(&cmd, "#XSEND");
                if (cmd.type == AT_CMD_SET && (cmd.params < s || cmd.params + cmd.params_len > s + size))
                        abort();
        }
        if (at_args_parse(s, size, &args) < 0)
                return 0;
        if (args.count == 0 || args.count > AT_ARGS_MAX)
                abort();
        for (size_t i = 0; i <= args.count; i++) {
                if (i < args.count && args.v[i].type == AT_ARG_STRING &&
                    (args.v[i].str < s || args.v[i].str + args.v[i].len > s + size))
                        abort();
                if (at_param_int(&args, i, INT64_MIN, INT64_MAX, &v) == 0 && v != args.v[i].num)
                        abort();
                (void) at_param_int_opt(&args, i, -5, 5, 0, &v);
                if (at_param_str(&args, i, buf, sizeof buf) == 0 && strlen(buf) != args.v[i].len)
                        abort();
        }
        return 0;
}
