/* SPDX-License-Identifier: MIT */
#include <sys/random.h>

#include "backoff.h"
#include "macro.h"

static uint64_t default_random(void *userdata) {
        uint64_t v = 0;
        (void) userdata;
        if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t) sizeof v)
                v = (uint64_t) random() << 32 ^ (uint64_t) random();
        return v;
}

void backoff_init(Backoff *b, uint64_t base_usec, uint64_t cap_usec) {
        *b = (Backoff){ .base_usec = MAX(base_usec, UINT64_C(1)), .cap_usec = MAX(cap_usec, base_usec) };
}

uint64_t backoff_next(Backoff *b) {
        uint64_t ceiling = b->base_usec;
        uint64_t r;

        for (unsigned i = 0; i < b->attempt && ceiling < b->cap_usec; i++)
                ceiling = ceiling > b->cap_usec / 2 ? b->cap_usec : ceiling * 2;
        ceiling = MIN(ceiling, b->cap_usec);
        if (b->attempt < 64)
                b->attempt++;

        r = b->random ? b->random(b->userdata) : default_random(NULL);
        /* Never below the base: reconnecting in 0 s is what the base exists to prevent. */
        return b->base_usec + (ceiling > b->base_usec ? r % (ceiling - b->base_usec + 1) : 0);
}

void backoff_reset(Backoff *b) {
        b->attempt = 0;
}
