/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "backoff.h"
#include "macro.h"
#include "ratelimit.h"
#include "util.h"

static void test_string_distance(void **state) {
        (void) state;
        assert_int_equal(string_distance("KeepAliveSec", "KeepAliveSec"), 0);
        assert_int_equal(string_distance("KeepAlive", "KeepAliveSec"), 3);
        assert_int_equal(string_distance("keepalivesec", "KeepAliveSec"), 0);
        assert_int_equal(string_distance("", "abc"), 3);
        assert_int_equal(string_distance("Hots", "Host"), 2);
}

static void test_parse_size(void **state) {
        static const struct {
                const char *in;
                int r;
                uint64_t v;
        } t[] = {
                { "0", 0, 0 },         { "512", 0, 512 },          { "64K", 0, 65536 },
                { "8M", 0, 8u << 20 }, { "1g", 0, 1u << 30 },      { "", -EINVAL, 0 },
                { "K", -EINVAL, 0 },   { "-1", -EINVAL, 0 },       { "1.5M", -EINVAL, 0 },
                { "12 M", -EINVAL, 0 }, { "99999999999999999999", -ERANGE, 0 },
                { "17179869184G", -ERANGE, 0 },
        };
        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                uint64_t v = 0;
                int r = parse_size(t[i].in, &v);
                assert_int_equal(r, t[i].r);
                if (r == 0)
                        assert_int_equal(v, t[i].v);
        }
}

static void test_parse_boolean(void **state) {
        (void) state;
        assert_int_equal(parse_boolean("yes"), 1);
        assert_int_equal(parse_boolean("ON"), 1);
        assert_int_equal(parse_boolean("0"), 0);
        assert_int_equal(parse_boolean("false"), 0);
        assert_int_equal(parse_boolean("maybe"), -EINVAL);
        assert_int_equal(parse_boolean(""), -EINVAL);
}

static uint64_t rnd_max(void *u) {
        (void) u;
        return UINT64_MAX;
}
static uint64_t rnd_zero(void *u) {
        (void) u;
        return 0;
}

static void test_unhexchar(void **state) {
        (void) state;
        assert_int_equal(unhexchar('0'), 0);
        assert_int_equal(unhexchar('9'), 9);
        assert_int_equal(unhexchar('a'), 10);
        assert_int_equal(unhexchar('F'), 15);
        assert_int_equal(unhexchar('g'), -EINVAL);
        assert_int_equal(unhexchar('\0'), -EINVAL);
}

static void test_backoff(void **state) {
        Backoff b;
        (void) state;

        backoff_init(&b, 1000000, 300000000);
        b.random = rnd_zero;
        for (int i = 0; i < 20; i++)
                assert_int_equal(backoff_next(&b), 1000000); /* never below the base */

        backoff_init(&b, 1000000, 300000000);
        b.random = rnd_max;
        uint64_t prev = 0;
        for (int i = 0; i < 30; i++) {
                uint64_t d = backoff_next(&b);
                assert_true(d >= 1000000 && d <= 300000000);
                assert_true(d >= prev || d == 300000000 || prev == 300000000);
                prev = d;
        }
        /* The cap is reached and kept. */
        assert_true(prev <= 300000000 && prev > 150000000);
        backoff_reset(&b);
        assert_true(backoff_next(&b) <= 1000000);

        /* Default randomness stays in range. */
        backoff_init(&b, 1000, 64000);
        for (int i = 0; i < 1000; i++) {
                uint64_t d = backoff_next(&b);
                assert_true(d >= 1000 && d <= 64000);
        }
}

static void test_strv(void **state) {
        char **l = NULL;
        (void) state;
        assert_int_equal(strv_extendf(&l, "a%d", 1), 0);
        assert_int_equal(strv_extendf(&l, "b"), 0);
        assert_int_equal(strv_length(l), 2);
        assert_string_equal(l[0], "a1");
        assert_null(l[2]);
        l = strv_free(l);
        assert_null(l);
}

static void test_read_full_file(void **state) {
        char *text = NULL;
        size_t size = 0;
        (void) state;

        /* /proc files report st_size 0 and are read to their end anyway. */
        assert_int_equal(read_full_file("/proc/self/status", 1 << 20, &text, &size), 0);
        assert_true(size > 0);
        assert_int_equal(strlen(text), size);
        assert_non_null(strstr(text, "Name:"));
        free(text);

        assert_int_equal(read_full_file("/proc/self/status", 16, &text, &size), -EFBIG);
        assert_int_equal(read_full_file("/", 1024, &text, &size), -EISDIR);
        assert_int_equal(read_full_file("/dev/null", 1024, &text, &size), -EBADFD);
        assert_int_equal(read_full_file("/nonexistent", 1024, &text, &size), -ENOENT);
}

static void test_ratelimit(void **state) {
        RateLimit rl = { .interval_usec = 1000, .burst = 3 };
        uint64_t n = 99;
        (void) state;

        for (unsigned i = 0; i < 3; i++)
                assert_true(ratelimit_below(&rl, 5000 + i, &n));
        assert_int_equal(n, 0);
        for (unsigned i = 0; i < 100; i++)
                assert_false(ratelimit_below(&rl, 5500 + i, NULL));
        /* The next window: allowed again, with the count of those refused. */
        assert_true(ratelimit_below(&rl, 6000, &n));
        assert_int_equal(n, 100);
        assert_true(ratelimit_below(&rl, 6001, &n));
        assert_int_equal(n, 0);
        /* No burst: no limit. */
        rl = (RateLimit){ .interval_usec = 1000 };
        for (unsigned i = 0; i < 1000; i++)
                assert_true(ratelimit_below(&rl, 1, NULL));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_string_distance), cmocka_unit_test(test_parse_size),
                cmocka_unit_test(test_unhexchar),
                cmocka_unit_test(test_parse_boolean), cmocka_unit_test(test_backoff),
                cmocka_unit_test(test_strv), cmocka_unit_test(test_ratelimit),
                cmocka_unit_test(test_read_full_file),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
