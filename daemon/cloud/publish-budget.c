/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "publish-budget.h"

void publish_budget_init(PublishBudget *b, unsigned rate) {
        memset(b, 0, sizeof *b);
        b->rate = rate > PUBLISH_BUDGET_RATE_MAX ? PUBLISH_BUDGET_RATE_MAX : rate;
        if (b->rate == 0)
                return;
        b->burst = b->rate / 10 > 0 ? b->rate / 10 : 1;
        b->interval = (PUBLISH_BUDGET_WINDOW_USEC + b->rate - 1) / b->rate;
}

uint64_t publish_budget_next(const PublishBudget *b, uint64_t now) {
        uint64_t t = now, slack;

        if (b->rate == 0)
                return now;
        /* The window: strictly more than a second after the oldest of the last `rate`. */
        if (b->n >= b->rate && b->sent[b->head] + PUBLISH_BUDGET_WINDOW_USEC + 1 > t)
                t = b->sent[b->head] + PUBLISH_BUDGET_WINDOW_USEC + 1;
        /* The bucket: one more fits while the arrival time is at most burst - 1 intervals ahead. */
        slack = (uint64_t) (b->burst - 1) * b->interval;
        if (b->tat > slack && b->tat - slack > t)
                t = b->tat - slack;
        return t;
}

bool publish_budget_take(PublishBudget *b, uint64_t now) {
        uint64_t base;

        if (b->rate == 0)
                return true;
        if (publish_budget_next(b, now) > now) {
                b->deferred++;
                b->saturated = true;
                /* Held back by the window rather than the bucket? */
                if (b->n >= b->rate && b->sent[b->head] + PUBLISH_BUDGET_WINDOW_USEC >= now)
                        b->window_held = true;
                return false;
        }
        b->saturated = false;
        base = b->tat > now ? b->tat : now;
        /* After the window held publishes back, the bucket starts empty: the tokens it gathered
         * meanwhile would send the slots the window frees together, a burst repeated each second
         * from the first one. */
        if (b->window_held && base < now + (uint64_t) (b->burst - 1) * b->interval)
                base = now + (uint64_t) (b->burst - 1) * b->interval;
        b->window_held = false;
        b->tat = base + b->interval;
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

/* FNV-1a, 64 bits, continued from h. */
static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++) {
                h ^= p[i];
                h *= UINT64_C(0x100000001b3);
        }
        return h;
}

/* The string value after marker (a JSON key and its opening quote), or NULL. */
static const uint8_t *json_string_after(const uint8_t *p, size_t len, const char *marker, size_t *ret_len) {
        size_t m = strlen(marker);
        const uint8_t *s = memmem(p, len, marker, m), *end;

        if (!s)
                return NULL;
        s += m;
        end = memchr(s, '"', len - (size_t) (s - p));
        if (!end)
                return NULL;
        *ret_len = (size_t) (end - s);
        return s;
}

uint64_t publish_budget_g2c_key(const char *topic, const uint8_t *payload, size_t len, uint64_t *ret_sub_key) {
        static const char value_changed[] = "\"device_characteristic_value_changed\"";
        const uint8_t *dev, *path;
        size_t dev_len, path_len;
        uint64_t key;

        (void) topic;
        *ret_sub_key = 0;
        if (!payload)
                return 0;
        dev = json_string_after(payload, len, "\"device\":{\"id\":\"", &dev_len);
        if (!dev)
                return 0;
        key = fnv1a(UINT64_C(0xcbf29ce484222325), dev, dev_len);
        if (memmem(payload, len, value_changed, sizeof value_changed - 1) &&
            (path = json_string_after(payload, len, "\"path\":\"", &path_len)))
                *ret_sub_key = fnv1a(fnv1a(key, (const uint8_t *) "/", 1), path, path_len) | 1;
        return key;
}
