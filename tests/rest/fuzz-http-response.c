/* SPDX-License-Identifier: MIT */
/*
 * The REST client's HTTP response parser: the input is fed whole and again
 * in pieces (the first byte chooses their size); both must agree, and the
 * body never exceeds its bound.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http-response.h"

#define MAX_BODY 4096u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run(const uint8_t *data, size_t size, size_t piece, HttpResponse *r, bool eof) {
        int k = 0;

        http_response_init(r, MAX_BODY);
        for (size_t i = 0; i < size && k == 0; i += piece) {
                size_t n = size - i < piece ? size - i : piece;
                k = http_response_feed(r, data + i, n);
        }
        if (k == 0 && eof)
                k = http_response_eof(r);
        if (r->body_len > MAX_BODY || (r->body && r->body[r->body_len] != '\0'))
                abort();
        return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static HttpResponse a, b;
        bool eof;
        size_t piece;
        int ka, kb;

        if (size < 1)
                return 0;
        piece = 1 + data[0] % 17;
        eof = data[0] & 0x80;
        data++, size--;

        ka = run(data, size, size > 0 ? size : 1, &a, eof);
        kb = run(data, size, piece, &b, eof);
        if (ka != kb)
                abort();
        if (ka == 1) {
                char v[64];
                if (a.status != b.status || a.body_len != b.body_len ||
                    (a.body_len > 0 && memcmp(a.body, b.body, a.body_len) != 0))
                        abort();
                if (a.status < 100 || a.status > 999)
                        abort();
                (void) http_response_header(&a, "Content-Type", v, sizeof v);
        }
        http_response_clear(&a);
        http_response_clear(&b);
        return 0;
}
