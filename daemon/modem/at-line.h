/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Pure classification of the lines the nRF91 firmware sends (modem-link.md,
 * "Framing"): final results, binary payload headers, and the +CME ERROR
 * codes of the nRF91 AT reference.  No loop, no allocation, no logging.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest counted binary payload after a header (#XRECV: 1..2048, #XDOWNLOAD chunks, #XSEND 1..4096). */
#define AT_BINARY_MAX 4096u

typedef enum AtLineKind {
        AT_LINE_INFO,         /* an information line or URC */
        AT_LINE_OK,           /* final result OK */
        AT_LINE_ERROR,        /* final result ERROR */
        AT_LINE_CME_ERROR,    /* final result +CME ERROR: <n> */
        AT_LINE_CMS_ERROR,    /* final result +CMS ERROR: <n> */
        AT_LINE_BINARY_HEADER,/* a header followed by a counted binary payload */
        _AT_LINE_KIND_MAX,
} AtLineKind;

typedef struct AtLineClass {
        AtLineKind kind;
        unsigned code;        /* CME/CMS error code */
        size_t binary_length; /* for AT_LINE_BINARY_HEADER: the bytes that follow */
} AtLineClass;

/*
 * Classifies one line (without its terminator).  A malformed final result
 * ("+CME ERROR: x") or a binary header with a length of 0 or above
 * AT_BINARY_MAX is -EBADMSG: the caller cannot know where the next line
 * starts, so it must treat the link as out of sync.
 */
int at_line_classify(const char *line, size_t len, AtLineClass *ret);

bool at_line_kind_is_final(AtLineKind k);
const char *at_line_kind_to_string(AtLineKind k);

/* +CME ERROR code → negative errno and an operator-readable text (nrf91-at.md §2.4, §3.1, §5.1). */
int at_cme_to_errno(unsigned code);
const char *at_cme_to_string(unsigned code); /* NULL for codes the table does not know */

/* Escapes bytes for debug logs: CR and LF as <CR> <LF>, other controls as <xx>.  Truncates to fit. */
const char *at_escape(const void *data, size_t len, char *buf, size_t buflen);

/*
 * Cursor over the parameters of an information line "<prefix>: a,"b",c":
 * numbers and quoted strings, optional spaces after commas (the CREDSTORE
 * fixture shows "%CMNG: 12345678, 0, ...").
 */
typedef struct AtCursor {
        const char *p;
        const char *end;
} AtCursor;

/* Positions the cursor after "prefix:" (and spaces); -ENOMSG if the line has another prefix. */
int at_cursor_init(AtCursor *c, const char *line, size_t len, const char *prefix);
bool at_cursor_at_end(const AtCursor *c);
/* Each reader consumes one parameter and the comma after it, if any. */
int at_cursor_uint(AtCursor *c, uint64_t max, uint64_t *ret);
int at_cursor_int(AtCursor *c, int64_t min, int64_t max, int64_t *ret);
/* A quoted string (no escapes on this link) or, unquoted, everything up to the next comma. */
int at_cursor_string(AtCursor *c, const char **ret, size_t *ret_len);
