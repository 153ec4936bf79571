/* SPDX-License-Identifier: MIT */
/* The few formatting primitives the core needs, instead of printf. */
#include <string.h>

#include "core-internal.h"

void fmt_init(struct fmt *f, char *buf, size_t size) {
        f->buf = buf;
        f->size = size;
        f->len = 0;
        if (size > 0)
                buf[0] = '\0';
}

void fmt_mem(struct fmt *f, const char *s, size_t n) {
        if (f->size == 0)
                return;
        if (n > f->size - 1 - f->len)
                n = f->size - 1 - f->len;
        memcpy(f->buf + f->len, s, n);
        f->len += n;
        f->buf[f->len] = '\0';
}

void fmt_str(struct fmt *f, const char *s) {
        fmt_mem(f, s, strlen(s));
}

void fmt_int(struct fmt *f, int64_t v) {
        char tmp[21];
        size_t i = sizeof tmp;
        uint64_t u = v < 0 ? (uint64_t) 0 - (uint64_t) v : (uint64_t) v;

        do {
                tmp[--i] = (char) ('0' + u % 10);
                u /= 10;
        } while (u > 0);
        if (v < 0)
                tmp[--i] = '-';
        fmt_mem(f, tmp + i, sizeof tmp - i);
}

void fmt_hex(struct fmt *f, const uint8_t *data, size_t n) {
        static const char digits[] = "0123456789abcdef";

        for (size_t i = 0; i < n; i++) {
                char two[2] = { digits[data[i] >> 4], digits[data[i] & 15] };
                fmt_mem(f, two, 2);
        }
}
