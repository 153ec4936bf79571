/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "publish-budget.h"

#define SEC UINT64_C(1000000)

/* The most publishes in any window [t, t + 1 s] (closed) over the times given, sorted. */
static unsigned max_in_window(const uint64_t *t, unsigned n) {
        unsigned best = 0;
        for (unsigned i = 0, j = 0; i < n; i++) {
                while (t[i] - t[j] > SEC)
                        j++;
                if (i - j + 1 > best)
                        best = i - j + 1;
        }
        return best;
}

/* Someone always wanting to publish, at every step µs of fake time for secs. */
static unsigned flood(unsigned rate, uint64_t step, unsigned secs, uint64_t *times, unsigned cap) {
        PublishBudget b;
        unsigned n = 0;

        publish_budget_init(&b, rate);
        for (uint64_t now = 1000; now < secs * SEC; now += step)
                while (n < cap && publish_budget_take(&b, now))
                        times[n++] = now;
        return n;
}

static void test_window_bound(void **state) {
        static uint64_t times[20000];
        (void) state;

        for (unsigned rate = 1; rate <= PUBLISH_BUDGET_RATE_MAX; rate += 11) {
                /* Fine steps and coarse ones (a loop that wakes late). */
                static const uint64_t steps[] = { 1, 997, 100000, 1000000, 1000001 };
                for (size_t k = 0; k < sizeof steps / sizeof *steps; k++) {
                        unsigned n = flood(rate, steps[k], 10, times, 20000);
                        assert_true(max_in_window(times, n) <= rate);
                        /* And the budget is used: rate per second, give or take one window. */
                        if (steps[k] <= 1000)
                                assert_true(n + rate >= rate * 10);
                }
        }
        /* At the cloud's limit itself. */
        unsigned n = flood(PUBLISH_BUDGET_RATE_MAX, 1, 3, times, 20000);
        assert_true(n >= 2 * PUBLISH_BUDGET_RATE_MAX);
        assert_true(max_in_window(times, n) <= PUBLISH_BUDGET_RATE_MAX);
}

static void test_take_next(void **state) {
        PublishBudget b;
        (void) state;

        publish_budget_init(&b, 30); /* burst 3, one token per 33334 µs */
        assert_int_equal(b.burst, 3);
        assert_int_equal(b.interval, 33334);
        assert_true(publish_budget_take(&b, 10));
        assert_true(publish_budget_take(&b, 10));
        assert_true(publish_budget_take(&b, 10));
        assert_false(b.saturated);
        assert_int_equal(publish_budget_used(&b, 10), 3);
        /* The bucket is empty: the next one when a token has come. */
        assert_int_equal(publish_budget_next(&b, 20), 10 + 33334);
        assert_false(publish_budget_take(&b, 20));
        assert_true(b.saturated);
        assert_int_equal(b.deferred, 1);
        assert_true(publish_budget_take(&b, 10 + 33334));
        assert_false(b.saturated);
        /* Idle for long: a full bucket again, not more. */
        assert_int_equal(publish_budget_next(&b, 100 * SEC), 100 * SEC);
        assert_int_equal(publish_budget_used(&b, 100 * SEC), 0);
        for (unsigned i = 0; i < 3; i++)
                assert_true(publish_budget_take(&b, 100 * SEC));
        assert_false(publish_budget_take(&b, 100 * SEC));
}

/* The window binds where the bucket would not: a full bucket after a second of steady use. */
static void test_window_over_bucket(void **state) {
        PublishBudget b;
        uint64_t now = SEC;
        (void) state;

        publish_budget_init(&b, 10); /* burst 1, 100 ms */
        for (unsigned i = 0; i < 10; i++, now += 100000)
                assert_true(publish_budget_take(&b, now));
        /* now = 2 s: the bucket has a token, and the first publish (1 s) is exactly a second old. */
        assert_int_equal(publish_budget_next(&b, now), SEC + SEC + 1);
        assert_false(publish_budget_take(&b, now));
        assert_true(publish_budget_take(&b, now + 1));
}

/* Under a backlog, publishes are paced: no tenth of a second holds more than two bursts' worth
 * (the window alone would send all 90 at once each second). */
static void test_paced(void **state) {
        static uint64_t times[2000];
        unsigned n = flood(90, 1, 10, times, 2000);
        (void) state;

        assert_true(n >= 880 && n <= 900);
        for (unsigned i = 18; i < n; i++)
                assert_true(times[i] - times[i - 18] > 100000);
}

static void test_unlimited_and_clamp(void **state) {
        PublishBudget b;
        (void) state;

        publish_budget_init(&b, 0);
        for (unsigned i = 0; i < 1000; i++)
                assert_true(publish_budget_take(&b, 5));
        assert_int_equal(publish_budget_next(&b, 5), 5);

        publish_budget_init(&b, 1000);
        assert_int_equal(b.rate, PUBLISH_BUDGET_RATE_MAX);
        assert_int_equal(b.burst, PUBLISH_BUDGET_RATE_MAX / 10);
        for (unsigned i = 0; i < PUBLISH_BUDGET_RATE_MAX / 10; i++)
                assert_true(publish_budget_take(&b, 7));
        assert_false(publish_budget_take(&b, 7));
}

static void test_g2c_key(void **state) {
#define EV(dev, type, path) \
        "{\"type\":\"event\",\"gatewayId\":\"gw\",\"requestId\":\"N/A\",\"event\":{\"type\":\"" type "\"," \
        "\"device\":{\"id\":\"" dev "\",\"address\":{\"address\":\"" dev "\"}}," \
        "\"characteristic\":{\"uuid\":\"2A19\",\"path\":\"" path "\",\"value\":[1]}},\"messageId\":1}"
        static const char a1[] = EV("C0:FF:EE:00:00:0A", "device_characteristic_value_changed", "180F/2A19");
        static const char a2[] = EV("C0:FF:EE:00:00:0A", "device_characteristic_value_changed", "180F/2A1A");
        static const char b1[] = EV("C0:FF:EE:00:00:0B", "device_characteristic_value_changed", "180F/2A19");
        static const char a3[] = EV("C0:FF:EE:00:00:0A", "device_descriptor_value_changed", "180F/2A19/2902");
        static const char none[] = "{\"type\":\"event\",\"event\":{\"type\":\"scan_result\"}}";
        uint64_t s1, s2, s3, s4, s5;
        (void) state;

        uint64_t ka1 = publish_budget_g2c_key("t", (const uint8_t *) a1, sizeof a1 - 1, &s1);
        uint64_t ka2 = publish_budget_g2c_key("t", (const uint8_t *) a2, sizeof a2 - 1, &s2);
        uint64_t kb1 = publish_budget_g2c_key("t", (const uint8_t *) b1, sizeof b1 - 1, &s3);
        uint64_t ka3 = publish_budget_g2c_key("t", (const uint8_t *) a3, sizeof a3 - 1, &s4);
        uint64_t kn = publish_budget_g2c_key("t", (const uint8_t *) none, sizeof none - 1, &s5);
        assert_true(ka1 != 0 && ka1 == ka2 && ka1 == ka3 && ka1 != kb1);
        assert_true(s1 != 0 && s2 != 0 && s3 != 0 && s1 != s2 && s1 != s3);
        assert_int_equal(s4, 0); /* only characteristic value changes coalesce */
        assert_int_equal(kn, 0);
        assert_int_equal(s5, 0);
        /* Cut short: no key rather than a read past the end. */
        assert_int_equal(publish_budget_g2c_key("t", (const uint8_t *) a1, 60, &s1), 0);
        assert_int_equal(publish_budget_g2c_key("t", NULL, 0, &s1), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_window_bound),
                cmocka_unit_test(test_take_next),
                cmocka_unit_test(test_window_over_bucket),
                cmocka_unit_test(test_paced),
                cmocka_unit_test(test_unlimited_and_clamp),
                cmocka_unit_test(test_g2c_key),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
