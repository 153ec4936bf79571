/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Splitting one AT command line into its name and parameters, the way the
 * nRF91 modem reads them.  Internal to the emulated modem; exposed in a
 * header only for its unit tests and fuzzer.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AT_ARGS_MAX 12
#define AT_NAME_MAX 32

typedef enum AtOp {
        AT_OP_EXEC,  /* AT+X          */
        AT_OP_SET,   /* AT+X=...      */
        AT_OP_READ,  /* AT+X?         */
        AT_OP_TEST,  /* AT+X=?        */
} AtOp;

typedef enum AtArgKind {
        AT_ARG_EMPTY,  /* nothing between two commas */
        AT_ARG_STRING, /* "..." (content excludes the quotes; may hold CR/LF and commas) */
        AT_ARG_TOKEN,  /* unquoted text, e.g. a number */
} AtArgKind;

typedef struct AtArg {
        AtArgKind kind;
        const char *p; /* points into the command; not NUL-terminated */
        size_t len;
} AtArg;

typedef struct AtCommand {
        char name[AT_NAME_MAX + 1]; /* upper case, without the leading "AT", e.g. "%CMNG", "+CFUN", "" */
        AtOp op;
        size_t n_args;
        AtArg args[AT_ARGS_MAX];
} AtCommand;

/*
 * Parses "AT<name>[=<args>|?|=?]".  Returns 0, or -EINVAL for anything the
 * modem answers with ERROR (no "AT" prefix, bad name, unterminated quote,
 * junk after a closing quote, too many parameters, NUL bytes outside quotes).
 */
int at_parse(const char *cmd, size_t len, AtCommand *ret);

/* Parameter helpers: index past the end counts as empty. */
bool at_arg_present(const AtCommand *c, size_t i);
/* Decimal integer token, no sign unless allowed, within [min, max]; -EINVAL otherwise, -ENODATA if empty. */
int at_arg_int(const AtCommand *c, size_t i, int64_t min, int64_t max, int64_t *ret);
/* Quoted string (or, if allow_token, an unquoted token); -ENODATA if empty/absent, -EINVAL if the kind is wrong. */
int at_arg_str(const AtCommand *c, size_t i, bool allow_token, const char **ret, size_t *ret_len);
