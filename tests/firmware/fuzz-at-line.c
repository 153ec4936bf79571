/* SPDX-License-Identifier: MIT */
/*
 * The AT line assembler, alone and inside the whole core: arbitrary serial
 * input, cut into reads of a size taken from the first byte.  Checks that a
 * line never exceeds the limit and the core never holds input back from a
 * port that answers at once.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "at-line.h"
#include "fake-port.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fake_port port;
static struct at_line line;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        size_t step, refused = 0;

        if (size == 0)
                return 0;
        step = 1 + data[0] % 64;
        data++, size--;

        at_line_init(&line);
        for (size_t i = 0; i < size; i++) {
                switch (at_line_feed(&line, data[i])) {
                case AT_LINE_NONE:
                        break;
                case AT_LINE_READY:
                        if (line.len == 0 || line.len > AT_LINE_MAX || line.buf[line.len] != '\0' || line.in_quotes)
                                abort();
                        at_line_discard(&line);
                        break;
                case AT_LINE_TOO_LONG:
                        refused++;
                        break;
                }
                if (line.len > AT_LINE_MAX)
                        abort();
        }

        fake_port_start(&port);
        for (size_t off = 0; off < size; off += step) {
                size_t n = size - off < step ? size - off : step;
                /* The fake port finishes every command at once: input is never held back. */
                if (nrf91_core_input(&port.core, data + off, n) != n)
                        abort();
                port.now_ms += 100;
                nrf91_core_tick(&port.core);
        }
        (void) refused;
        return 0;
}
