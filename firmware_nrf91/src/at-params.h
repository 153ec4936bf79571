/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * AT command names and parameters.
 *
 * at_cmd_parse() splits "AT<name>[=<params>|?|=?]".  at_args_parse() splits
 * the parameter text: comma-separated values, each empty, a decimal integer
 * (optional sign) or a double-quoted string (no escapes; it may hold CR/LF,
 * commas and, being counted, even NUL).  Spaces around values are tolerated.
 * With AT_ARGS_TOKENS, other unquoted text (printable ASCII, no quote) is a
 * token, as the modem takes for a PSK or an identity; without it, it is an
 * error (the core's own commands).  Strings point into the parsed text;
 * nothing is copied.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* More than any command takes, the modem's included (%JWT, the most, has 6). */
#define AT_ARGS_MAX 12
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
        AT_ARG_TOKEN, /* only with AT_ARGS_TOKENS */
};

struct at_arg {
        enum at_arg_type type;
        int64_t num;     /* AT_ARG_INT */
        const char *str; /* AT_ARG_STRING: without the quotes; AT_ARG_INT, AT_ARG_TOKEN: as written */
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

/* at_args_parse() flags */
#define AT_ARGS_TOKENS 1u

/*
 * 0, -NRF91_EINVAL (malformed: unterminated string, text after a closing
 * quote, control bytes outside quotes...), -NRF91_ERANGE (an integer beyond
 * int64_t; a token with AT_ARGS_TOKENS) or -NRF91_E2BIG (over AT_ARGS_MAX).
 */
int at_args_parse(const char *s, size_t len, unsigned flags, struct at_args *ret);

/* Value i is there and not empty ("" is not empty). */
bool at_param_present(const struct at_args *a, size_t i);

/* Integer i in [min, max]; -NRF91_EINVAL if absent, not an integer or out of range. */
int at_param_int(const struct at_args *a, size_t i, int64_t min, int64_t max, int64_t *ret);
/* Same, but an absent or empty value gives def. */
int at_param_int_opt(const struct at_args *a, size_t i, int64_t min, int64_t max, int64_t def, int64_t *ret);
/*
 * Copies string i NUL-terminated into buf; -NRF91_EINVAL if absent, not a
 * string, longer than size - 1 or containing NUL.
 */
int at_param_str(const struct at_args *a, size_t i, char *buf, size_t size);
/*
 * String i in place (not NUL-terminated), or with unquoted also an unquoted
 * value as written; -NRF91_EINVAL if absent, empty or of another type.
 */
int at_param_text(const struct at_args *a, size_t i, bool unquoted, const char **ret, size_t *ret_len);
