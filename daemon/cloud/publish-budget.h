/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The publish budget of one MQTT connection: at most `rate` publishes in any
 * one-second window, whatever its start.  AWS IoT (nRF Cloud's broker) allows
 * 100 publishes per second per connection and throttles beyond.
 *
 * A sliding window rather than a token bucket: a bucket of capacity B filled
 * at R per second lets B + R publishes through one second (a full bucket, then
 * the refill), so at R = 100 no capacity of at least one token keeps a window
 * under 100.  The window keeps the times of the last `rate` publishes; one
 * more may go when the oldest of them is more than a second old.  So any
 * rate + 1 consecutive publishes span more than a second, and no window of one
 * second (open or closed) ever holds more than `rate`.  The burst it allows is
 * `rate` at once, which is what the cloud's per-second limit accepts.
 *
 * Pure: the caller gives the time (any monotonic clock, in µs), so tests run
 * on a fake clock.
 */

#include <stdbool.h>
#include <stdint.h>

#define PUBLISH_BUDGET_RATE_DEFAULT 90u
#define PUBLISH_BUDGET_RATE_MAX 100u /* AWS IoT: publishes per second per connection */
#define PUBLISH_BUDGET_WINDOW_USEC UINT64_C(1000000)

typedef struct PublishBudget {
        unsigned rate;                           /* publishes per window; 0: no limit */
        unsigned n, head;                        /* times in the ring, index of the oldest */
        uint64_t sent[PUBLISH_BUDGET_RATE_MAX];  /* the last `rate` publish times, oldest at head */
        uint64_t deferred;                       /* times a publish had to wait for the budget */
        bool saturated;                          /* the last attempt had to wait */
} PublishBudget;

/* rate 0: no limit; above PUBLISH_BUDGET_RATE_MAX: that. */
void publish_budget_init(PublishBudget *b, unsigned rate);
/* Whether one publish may go at now; when it may, it is counted. */
bool publish_budget_take(PublishBudget *b, uint64_t now);
/* The earliest time one publish may go (now or later). */
uint64_t publish_budget_next(const PublishBudget *b, uint64_t now);
/* Publishes counted in the window (now - 1 s, now]. */
unsigned publish_budget_used(const PublishBudget *b, uint64_t now);
