/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * AT command names and parameters.
 *
 * at_cmd_parse() splits "AT<name>[=<params>|?|=?]".  at_args_parse() splits
 * the parameter text: comma-separated values, each empty, a decimal integer
 * (optional sign) or a double-quoted string (no escapes; it may hold CR/LF
 * and, being counted, even NUL).  Spaces around values are tolerated.
 * Strings point into the parsed text; nothing is copied.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AT_ARGS_MAX 8
#define AT_NAME_MAX 32

enum at_cmd_type {
        AT_CMD_EXEC, /* AT<name> */
        AT_CMD_SET,  /* AT<name>=<params> */
        AT_CMD_READ, /* AT<name>? */
        AT_CMD_TEST, /* AT<name>=? */
};

struct at_cmd {
        const char *name; /* after "AT", e.g. "#XSEND" */
        size_t name_len;
        enum at_cmd_type type;
        const char *params; /* AT_CMD_SET: the text after '=' */
        size_t params_len;
};

enum at_arg_type {
        AT_ARG_EMPTY,
        AT_ARG_INT,
        AT_ARG_STRING,
};

struct at_arg {
        enum at_arg_type type;
        int64_t num;     /* AT_ARG_INT */
        const char *str; /* AT_ARG_STRING, without the quotes */
        size_t len;
};

struct at_args {
        size_t count;
        struct at_arg v[AT_ARGS_MAX];
};

/* 0, or -NRF91_EINVAL if line is not an AT command. */
int at_cmd_parse(const char *line, size_t len, struct at_cmd *ret);
/* Case-insensitive comparison of the command name. */
bool at_cmd_is(const struct at_cmd *cmd, const char *name);

/* 0, -NRF91_EINVAL (malformed), -NRF91_E2BIG... see at-params.c */
int at_args_parse(const char *s, size_t len, struct at_args *ret);

/* Integer i in [min, max]; -NRF91_EINVAL if absent, not an integer or out of range. */
int at_param_int(const struct at_args *a, size_t i, int64_t min, int64_t max, int64_t *ret);
/* Same, but an absent or empty value gives def. */
int at_param_int_opt(const struct at_args *a, size_t i, int64_t min, int64_t max, int64_t def, int64_t *ret);
/*
 * Copies string i NUL-terminated into buf; -NRF91_EINVAL if absent, not a
 * string, longer than size - 1 or containing NUL.
 */
int at_param_str(const struct at_args *a, size_t i, char *buf, size_t size);
