/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The publish budget of one MQTT connection: at most `rate` publishes in any
 * one-second window, whatever its start.  AWS IoT (nRF Cloud's broker) allows
 * 100 publishes per second per connection and throttles beyond.
 *
 * Two rules, both must allow a publish:
 *
 * - The bound, a sliding window: the times of the last `rate` publishes are
 *   kept, and one more may go only when the oldest of them is more than a
 *   second old.  So any rate + 1 consecutive publishes span more than a
 *   second, and no window of one second (open or closed) ever holds more than
 *   `rate`.  A token bucket alone cannot give this: one of capacity B filled
 *   at R per second lets B + R through one second (a full bucket, then the
 *   refill), so at R = 100 no capacity of at least one token stays under 100.
 *
 * - The pace, a token bucket (as GCRA: a theoretical arrival time) of rate
 *   `rate` and capacity `burst` (a tenth of a second's worth, at least 1).
 *   The window alone would let `rate` publishes go at once after a pause and
 *   repeat that burst every second under a backlog; a burst of 90 sent a
 *   microsecond more than a second after the previous one is within the bound
 *   here but, with a few milliseconds of jitter on the way, not at the
 *   broker.  Paced, the publishes of a backlog are 1/rate apart, and jitter
 *   can move only a few of them across a window's edge.
 *
 * Pure: the caller gives the time (any monotonic clock, in µs), so tests run
 * on a fake clock.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PUBLISH_BUDGET_RATE_DEFAULT 90u
#define PUBLISH_BUDGET_RATE_MAX 100u /* AWS IoT: publishes per second per connection */
#define PUBLISH_BUDGET_WINDOW_USEC UINT64_C(1000000)

typedef struct PublishBudget {
        unsigned rate;                           /* publishes per window; 0: no limit */
        unsigned burst;                          /* the token bucket's capacity */
        uint64_t interval;                       /* µs per token (1 s / rate, rounded up) */
        uint64_t tat;                            /* the bucket's theoretical arrival time */
        unsigned n, head;                        /* times in the ring, index of the oldest */
        uint64_t sent[PUBLISH_BUDGET_RATE_MAX];  /* the last `rate` publish times, oldest at head */
        uint64_t deferred;                       /* times a publish had to wait for the budget */
        bool saturated;                          /* the last attempt had to wait */
        bool window_held;                        /* the window held one back since the last publish */
} PublishBudget;

/* rate 0: no limit; above PUBLISH_BUDGET_RATE_MAX: that. */
void publish_budget_init(PublishBudget *b, unsigned rate);
/* Whether one publish may go at now; when it may, it is counted. */
bool publish_budget_take(PublishBudget *b, uint64_t now);
/* The earliest time one publish may go (now or later). */
uint64_t publish_budget_next(const PublishBudget *b, uint64_t now);
/* Publishes counted in the window (now - 1 s, now]. */
unsigned publish_budget_used(const PublishBudget *b, uint64_t now);

/* The outbox's key of a g2c message (outbox_key_fn): a hash of the device's address, so that
 * notifications are served round-robin per device; the sub-key, for a characteristic's value
 * change, names the device's characteristic (NotifyOverflow=latest coalesces those). */
uint64_t publish_budget_g2c_key(const char *topic, const uint8_t *payload, size_t len, uint64_t *ret_sub_key);
