/* SPDX-License-Identifier: MIT */
/* The REST client's HTTP response parser over answers shaped like nRF Cloud's. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http-response.h"

static HttpResponse r;

static int feed_all(const char *s, size_t max_body, size_t piece) {
        size_t len = strlen(s);
        int k = 0;

        http_response_init(&r, max_body);
        for (size_t i = 0; i < len && k == 0; i += piece)
                k = http_response_feed(&r, s + i, len - i < piece ? len - i : piece);
        return k;
}

#define GROUND_FIX "{\"lat\":63.41999531,\"lon\":10.42999506,\"uncertainty\":2420,\"fulfilledWith\":\"SCELL\"}"

static void test_content_length(void **state) {
        char buf[64];
        (void) state;

        for (size_t piece = 1; piece <= 64; piece *= 4) {
                char text[512];
                snprintf(text, sizeof text,
                         "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                         strlen(GROUND_FIX), GROUND_FIX);
                assert_int_equal(feed_all(text, 1024, piece), 1);
                assert_int_equal(r.status, 200);
                assert_string_equal(r.body, GROUND_FIX);
                assert_int_equal(http_response_header(&r, "content-type", buf, sizeof buf), 0);
                assert_string_equal(buf, "application/json");
                assert_int_equal(http_response_header(&r, "X-Nope", buf, sizeof buf), -ENOENT);
                http_response_clear(&r);
        }
}

static void test_chunked_error_body(void **state) {
        (void) state;
        assert_int_equal(feed_all("HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  "f;x=y\r\n{\"code\":40000,\"\r\nE\r\nmessage\":\"no\"}\r\n0\r\n\r\n",
                                  1024, 3),
                         1);
        assert_int_equal(r.status, 400);
        assert_string_equal(r.body, "{\"code\":40000,\"message\":\"no\"}");
        http_response_clear(&r);
}

static void test_close_delimited_and_truncated(void **state) {
        (void) state;
        assert_int_equal(feed_all("HTTP/1.0 503 Service Unavailable\r\n\r\n<html>", 1024, 5), 0);
        assert_int_equal(http_response_eof(&r), 1);
        assert_int_equal(r.status, 503);
        assert_string_equal(r.body, "<html>");
        http_response_clear(&r);

        assert_int_equal(feed_all("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345", 1024, 5), 0);
        assert_int_equal(http_response_eof(&r), -EBADMSG);
        http_response_clear(&r);
        assert_int_equal(feed_all("HTTP/1.1 200 OK\r\nContent-", 1024, 5), 0);
        assert_int_equal(http_response_eof(&r), -EBADMSG);
        http_response_clear(&r);
}

static void test_bounds(void **state) {
        char big[HTTP_HEAD_MAX + 64];
        (void) state;

        /* An announced body over the bound is refused before any byte of it. */
        assert_int_equal(feed_all("HTTP/1.1 200 OK\r\nContent-Length: 4097\r\n\r\n", 4096, 7), -EFBIG);
        http_response_clear(&r);
        /* Close-delimited and chunked bodies are cut off at the bound. */
        memset(big, 'x', sizeof big);
        strcpy(big, "HTTP/1.1 200 OK\r\n\r\n");
        big[strlen(big)] = 'x';
        big[sizeof big - 1] = '\0';
        assert_int_equal(feed_all(big, 100, 64), -EFBIG);
        http_response_clear(&r);
        assert_int_equal(feed_all("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n", 100, 64), -EFBIG);
        http_response_clear(&r);
        /* A head that never ends. */
        memset(big, 'a', sizeof big - 1);
        memcpy(big, "HTTP/1.1 200 OK\r\n", 17);
        assert_int_equal(feed_all(big, 100, 1000), -EFBIG);
        http_response_clear(&r);
}

static void test_garbled(void **state) {
        (void) state;
        assert_int_equal(feed_all("HTTP/2 200 OK\r\n\r\n", 100, 4), -EBADMSG);
        assert_int_equal(feed_all("HTTP/1.1 2x0 OK\r\n\r\n", 100, 4), -EBADMSG);
        assert_int_equal(feed_all("HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", 100, 4), -EBADMSG);
        assert_int_equal(feed_all("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 100, 4), -EBADMSG);
        assert_int_equal(feed_all("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 100, 4), -EBADMSG);
        assert_int_equal(feed_all("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n", 100, 4), -EBADMSG);
        http_response_clear(&r);
        /* No body for 204, whatever follows. */
        assert_int_equal(feed_all("HTTP/1.1 204 No Content\r\n\r\ngarbage", 100, 4), 1);
        assert_null(r.body);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_content_length),
                cmocka_unit_test(test_chunked_error_body),
                cmocka_unit_test(test_close_delimited_and_truncated),
                cmocka_unit_test(test_bounds),
                cmocka_unit_test(test_garbled),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
