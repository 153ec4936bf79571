/* SPDX-License-Identifier: MIT */
#include "at-line.h"

void at_line_init(struct at_line *l) {
        at_line_discard(l);
        l->skip_lf = false;
}

void at_line_discard(struct at_line *l) {
        l->len = 0;
        l->buf[0] = '\0';
        l->in_quotes = false;
        l->overflow = false;
        l->quoted_newline = false;
}

bool at_line_pending(const struct at_line *l) {
        return l->len > 0 || l->overflow;
}

enum at_line_result at_line_feed(struct at_line *l, uint8_t c) {
        bool skip_lf = l->skip_lf;

        l->skip_lf = false;
        if (!l->in_quotes && (c == '\r' || c == '\n')) {
                if (c == '\n' && skip_lf)
                        return AT_LINE_NONE; /* second half of CR LF */
                l->skip_lf = c == '\r';
                if (l->overflow) {
                        at_line_discard(l);
                        return AT_LINE_TOO_LONG;
                }
                if (l->len == 0)
                        return AT_LINE_NONE; /* empty line */
                l->buf[l->len] = '\0';
                return AT_LINE_READY;
        }

        if (c == '"')
                l->in_quotes = !l->in_quotes;
        else if (l->in_quotes && (c == '\r' || c == '\n'))
                l->quoted_newline = true;

        if (l->overflow)
                return AT_LINE_NONE;
        if (l->len >= AT_LINE_MAX) {
                l->overflow = true;
                l->len = 0;
                return AT_LINE_NONE;
        }
        l->buf[l->len++] = (char) c;
        return AT_LINE_NONE;
}
