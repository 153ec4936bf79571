/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "publish-budget.h"

void publish_budget_init(PublishBudget *b, unsigned rate) {
        memset(b, 0, sizeof *b);
        b->rate = rate > PUBLISH_BUDGET_RATE_MAX ? PUBLISH_BUDGET_RATE_MAX : rate;
}

uint64_t publish_budget_next(const PublishBudget *b, uint64_t now) {
        uint64_t t;

        if (b->rate == 0 || b->n < b->rate)
                return now;
        /* Strictly more than a window after the oldest of the last `rate`. */
        t = b->sent[b->head] + PUBLISH_BUDGET_WINDOW_USEC + 1;
        return t > now ? t : now;
}

bool publish_budget_take(PublishBudget *b, uint64_t now) {
        if (b->rate == 0)
                return true;
        if (publish_budget_next(b, now) > now) {
                b->deferred++;
                b->saturated = true;
                return false;
        }
        b->saturated = false;
        if (b->n < b->rate) {
                b->sent[(b->head + b->n) % b->rate] = now;
                b->n++;
        } else {
                b->sent[b->head] = now; /* the oldest leaves, the newest takes its slot */
                b->head = (b->head + 1) % b->rate;
        }
        return true;
}

unsigned publish_budget_used(const PublishBudget *b, uint64_t now) {
        unsigned used = 0;

        for (unsigned i = 0; i < b->n; i++) {
                uint64_t t = b->sent[(b->head + i) % b->rate];
                if (t + PUBLISH_BUDGET_WINDOW_USEC > now)
                        used++;
        }
        return used;
}
