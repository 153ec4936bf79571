/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Bounded AT command line assembly (spec modem-link.md, "Framing").
 *
 * A command ends with CR, LF or CR LF outside double quotes; inside quotes
 * CR and LF are content (multi-line PEM in %CMNG writes).  Empty lines are
 * ignored.  A command longer than AT_LINE_MAX bytes is refused as a whole:
 * the rest of it up to its terminator is discarded and AT_LINE_TOO_LONG
 * is reported once, so the host gets exactly one final result for it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "port.h"

#define AT_LINE_MAX NRF91_AT_MAX_CMD_LEN

enum at_line_result {
        AT_LINE_NONE,     /* byte taken, no complete line yet */
        AT_LINE_READY,    /* buf[0..len) holds a command (NUL-terminated) */
        AT_LINE_TOO_LONG, /* a command over AT_LINE_MAX ended and was discarded */
};

struct at_line {
        char buf[AT_LINE_MAX + 1];
        size_t len;
        bool in_quotes;
        bool overflow;
        /* The last terminator was CR: a LF right after it belongs to it. */
        bool skip_lf;
        /* A CR or LF was taken as content inside quotes. */
        bool quoted_newline;
};

void at_line_init(struct at_line *l);
/* Drops a partial command (skip_lf survives). */
void at_line_discard(struct at_line *l);
enum at_line_result at_line_feed(struct at_line *l, uint8_t c);
/* A command is partly received. */
bool at_line_pending(const struct at_line *l);
