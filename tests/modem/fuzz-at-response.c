/* SPDX-License-Identifier: MIT */
/*
 * Feeds arbitrary modem output to the AT engine with commands in flight, a
 * URC handler for binary headers, and time that runs out now and then.
 * The first byte chooses how the input is cut into reads.  Every line is
 * also classified on its own.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "at-engine.h"
#include "fake-loop.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_done(AtEngine *e, const AtResponse *r, void *userdata) {
        (void) userdata;
        /* Touch everything the engine hands out. */
        for (size_t i = 0; i < r->n_lines; i++)
                if (!r->lines[i])
                        abort();
        if (r->payload && r->payload_len > AT_BINARY_MAX)
                abort();
        if (r->result == -ETIMEDOUT)
                (void) at_engine_send(e, "AT+CFUN?", 1000, on_done, NULL);
}

static void on_urc(AtEngine *e, const char *line, const uint8_t *payload, size_t len, void *userdata) {
        (void) e;
        (void) line;
        (void) userdata;
        if (payload && (len == 0 || len > AT_BINARY_MAX))
                abort();
}

static void on_ready(AtEngine *e, const char *line, const uint8_t *payload, size_t len, void *userdata) {
        (void) line;
        (void) payload;
        (void) len;
        (void) userdata;
        at_engine_reset(e, -ECONNRESET);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static FakeLoop l;
        AtEngine *e = NULL;
        size_t chunk, i = 0;
        AtLineClass cls;

        if (size < 1)
                return 0;
        log_set_max_level(LOG_ERR);
        l = (FakeLoop){ .deadline = UINT64_MAX };
        chunk = (size_t) (data[0] % 17) + 1;
        data++;
        size--;

        /* The classifier alone, over the whole input as one line. */
        (void) at_line_classify((const char *) data, size, &cls);

        if (at_engine_new(&fake_ops, &l, &e) < 0)
                return 0;
        (void) at_engine_add_urc(e, "#XRECV:", on_urc, NULL);
        (void) at_engine_add_urc(e, "+CEREG:", on_urc, NULL);
        (void) at_engine_add_urc(e, "Ready", on_ready, NULL);
        (void) at_engine_send(e, "AT%CMNG=1", 1000, on_done, NULL);
        (void) at_engine_send(e, "AT+CGSN=1", 1000, on_done, NULL);

        while (i < size) {
                size_t n = MIN(chunk, size - i);
                at_engine_feed(e, data + i, n);
                i += n;
                if (data[i - 1] == 0x7f)
                        fake_advance(&l, e, 1000);
                l.written_len = 0;
        }
        at_engine_free(e);
        return 0;
}
