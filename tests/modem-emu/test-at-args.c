/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "at-args.h"

static int parse(const char *s, AtCommand *c) {
        return at_parse(s, strlen(s), c);
}

static void test_names(void **state) {
        AtCommand c;
        (void) state;
        assert_int_equal(parse("AT", &c), 0);
        assert_string_equal(c.name, "");
        assert_int_equal(c.op, AT_OP_EXEC);
        assert_int_equal(parse("at%cmng=1", &c), 0);
        assert_string_equal(c.name, "%CMNG");
        assert_int_equal(c.op, AT_OP_SET);
        assert_int_equal(parse("AT+CFUN?", &c), 0);
        assert_int_equal(c.op, AT_OP_READ);
        assert_int_equal(parse("AT+CFUN=?", &c), 0);
        assert_int_equal(c.op, AT_OP_TEST);
        assert_int_equal(parse("ATE0", &c), 0);
        assert_string_equal(c.name, "E0");
        assert_int_equal(parse("AT+CFUN?x", &c), -EINVAL);
        assert_int_equal(parse("AT+CF UN", &c), -EINVAL);
        assert_int_equal(parse("A", &c), -EINVAL);
        assert_int_equal(parse("", &c), -EINVAL);
        assert_int_equal(parse("XT", &c), -EINVAL);
        assert_int_equal(parse("AT+ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGH", &c), -EINVAL);
}

static void test_args(void **state) {
        AtCommand c;
        int64_t v;
        const char *s;
        size_t len;
        (void) state;

        assert_int_equal(parse("AT%CMNG=0,16842753,0,\"a,b\r\n\"\"\",", &c), -EINVAL); /* junk after quote */
        assert_int_equal(parse("AT%CMNG=0,16842753,0,\"a,b\r\nc\",\"pw\"", &c), 0);
        assert_int_equal(c.n_args, 5);
        assert_int_equal(at_arg_int(&c, 1, 0, 4294967295LL, &v), 0);
        assert_int_equal(v, 16842753);
        assert_int_equal(at_arg_str(&c, 3, false, &s, &len), 0);
        assert_int_equal(len, 6);
        assert_memory_equal(s, "a,b\r\nc", 6);
        assert_int_equal(at_arg_str(&c, 1, false, &s, &len), -EINVAL);
        assert_int_equal(at_arg_str(&c, 1, true, &s, &len), 0);
        assert_int_equal(at_arg_int(&c, 3, 0, 10, &v), -EINVAL);
        assert_int_equal(at_arg_int(&c, 7, 0, 10, &v), -ENODATA);

        assert_int_equal(parse("AT%JWT=,,\"\",", &c), 0);
        assert_int_equal(c.n_args, 4);
        assert_false(at_arg_present(&c, 0));
        assert_true(at_arg_present(&c, 2)); /* "" is a present, empty string */
        assert_int_equal(at_arg_str(&c, 2, false, &s, &len), 0);
        assert_int_equal(len, 0);
        assert_false(at_arg_present(&c, 3));

        assert_int_equal(parse("AT+X=", &c), 0);
        assert_int_equal(c.n_args, 1);
        assert_int_equal(parse("AT+X=-5,+5,5x,99999999999999999999", &c), 0);
        assert_int_equal(at_arg_int(&c, 0, -10, 10, &v), 0);
        assert_int_equal(v, -5);
        assert_int_equal(at_arg_int(&c, 0, 0, 10, &v), -EINVAL);
        assert_int_equal(at_arg_int(&c, 1, 0, 10, &v), -EINVAL);
        assert_int_equal(at_arg_int(&c, 2, 0, 10, &v), -EINVAL);
        assert_int_equal(at_arg_int(&c, 3, 0, INT64_MAX, &v), -EINVAL);
        assert_int_equal(parse("AT+X=1,2,3,4,5,6,7,8,9,10,11,12", &c), 0);
        assert_int_equal(parse("AT+X=1,2,3,4,5,6,7,8,9,10,11,12,13", &c), -EINVAL);
        assert_int_equal(parse("AT+X=a\"b", &c), -EINVAL);
        assert_int_equal(parse("AT+X=a\rb", &c), -EINVAL);
        assert_int_equal(at_parse("AT+X=\"a\0b\"", 10, &c), 0); /* NUL inside quotes is data */
        assert_int_equal(at_parse("AT+X=a\0b", 8, &c), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_args),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
