/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

/*
 * Capped exponential backoff with full jitter (the "Full Jitter" scheme):
 * the n-th delay is uniform in [min, min(cap, base * 2^n)], so that a fleet
 * of gateways that lost the same broker does not come back in step.
 * Pure: randomness comes from a caller-supplied function.
 */
typedef struct Backoff {
        uint64_t base_usec;
        uint64_t cap_usec;
        unsigned attempt;
        uint64_t (*random)(void *userdata); /* NULL: random from getrandom() */
        void *userdata;
} Backoff;

void backoff_init(Backoff *b, uint64_t base_usec, uint64_t cap_usec);
/* The delay before the next attempt; counts the attempt. */
uint64_t backoff_next(Backoff *b);
void backoff_reset(Backoff *b);
