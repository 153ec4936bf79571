/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A fixed-window rate limit (as systemd's RateLimit): at most burst events in
 * each window of interval_usec.  Used for the c2g operations the cloud may
 * make the gateway run, and for log records a peer can repeat at will
 * (one line, then one line with the count of those refused meanwhile).
 */

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "log.h"
#include "util.h"

typedef struct RateLimit {
        uint64_t interval_usec;
        unsigned burst; /* 0: no limit */
        uint64_t begin; /* start of the current window, 0: none yet */
        unsigned num;   /* events allowed in the current window */
        uint64_t suppressed; /* events refused since the last allowed one */
} RateLimit;

/* Whether one more event fits at time now (any clock, in µs).  When it does, *ret_suppressed (may be
 * NULL) is the number refused since the last allowed event, and the count restarts. */
bool ratelimit_below(RateLimit *rl, uint64_t now, uint64_t *ret_suppressed);

/* A log record at most rl->burst times per window; the first one after others were refused says how
 * many: "... (N similar messages suppressed)". */
#define log_ratelimited(rl, level, format, ...)                                                        \
        do {                                                                                           \
                uint64_t _n_;                                                                          \
                if (log_get_max_level() < (level) ||                                                   \
                    !ratelimit_below((rl), now_usec(CLOCK_MONOTONIC), &_n_))                           \
                        break;                                                                         \
                if (_n_ > 0)                                                                           \
                        log_full((level), format " (%" PRIu64 " similar messages suppressed)",         \
                                 ##__VA_ARGS__, _n_);                                                  \
                else                                                                                   \
                        log_full((level), format, ##__VA_ARGS__);                                      \
        } while (0)
