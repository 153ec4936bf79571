/* SPDX-License-Identifier: MIT */
/*
 * nrf91-sim's HTTP response parsing for #XDOWNLOAD and #XFOTA: the input is
 * a response as the server sends it.  The head (up to the blank line, at
 * most the sim's 8 KiB) is parsed, then the body is fed in pieces of a size
 * taken from the input's first byte, as reads of the TLS connection give it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sim-parse.h"

#define HEAD_MAX 8191

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct Sink {
        uint64_t delivered;
} Sink;

static void deliver(const uint8_t *data, size_t len, void *userdata) {
        Sink *s = userdata;
        if (len == 0 || !data)
                abort();
        s->delivered += len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static char head[HEAD_MAX + 1];
        SimHttpHead h;
        SimHttpBody b;
        Sink sink = {};
        size_t piece, n, fed = 0;
        const uint8_t *end;

        if (size < 1)
                return 0;
        piece = (size_t) data[0] + 1;
        data++, size--;
        n = size < HEAD_MAX ? size : HEAD_MAX;
        memcpy(head, data, n);
        head[n] = '\0';
        end = (const uint8_t *) strstr(head, "\r\n\r\n");
        if (!end)
                return 0;
        n = (size_t) ((const char *) end - head) + 4;
        head[n] = '\0';
        if (sim_http_parse_head(head, &h) < 0)
                return 0;
        if (h.chunked && h.content_length != -1)
                abort();
        sim_http_body_init(&b, &h);
        data += n, size -= n;
        while (size > 0) {
                size_t k = size < piece ? size : piece;
                bool done = sim_http_body_feed(&b, data, k, deliver, &sink);
                fed += k;
                if (sink.delivered > fed)
                        abort();
                if (done)
                        break;
                data += k, size -= k;
        }
        if (!h.chunked && h.content_length >= 0 && sink.delivered > (uint64_t) h.content_length)
                abort();
        return 0;
}
