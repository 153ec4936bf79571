/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "fota-job.h"

static int parse(const char *s, bool ble, FotaJob *j, FotaJobError *e) {
        return fota_job_parse(s, strlen(s), ble, j, e);
}

/* The examples of spec §4.1 and §4.2. */
static void test_parse_examples(void **state) {
        FotaJob j;
        FotaJobError e;
        (void) state;

        assert_int_equal(parse("[\"abcd1234\", 0, 1234, \"nrfcloud.com\", \"v1/firmwares/appfw.bin\"]", false, &j, &e), 0);
        assert_false(j.ble);
        assert_string_equal(j.ble_address, "");
        assert_string_equal(j.id, "abcd1234");
        assert_int_equal(j.type, FOTA_TYPE_APP);
        assert_int_equal(j.file_size, 1234);
        assert_string_equal(j.host, "nrfcloud.com");
        assert_int_equal(j.n_files, 1);
        assert_string_equal(j.files[0], "v1/firmwares/appfw.bin");

        assert_int_equal(parse("[\"12:ab:34:cd:56:ef\", \"efgh5678\", 0, 321, \"nrfcloud.com\", \"v1/firmwares/ble.bin\"]", true, &j, &e), 0);
        assert_true(j.ble);
        assert_string_equal(j.ble_address, "12:AB:34:CD:56:EF");
        assert_string_equal(j.id, "efgh5678");
        assert_int_equal(j.file_size, 321);
        assert_int_equal(j.n_files, 1);

        /* nRF5 DFU: init packet and image, space-separated, in order. */
        assert_int_equal(parse("[\"12:AB:34:CD:56:EF\",\"3f6a0b1c-2d3e-4f50-8a9b-0c1d2e3f4a5b\",4,70000,\"files.nrfcloud.com\","
                               "\"t/3f6a/app.dat  t/3f6a/app.bin\"]", true, &j, &e), 0);
        assert_string_equal(j.id, "3f6a0b1c-2d3e-4f50-8a9b-0c1d2e3f4a5b");
        assert_int_equal(j.type, FOTA_TYPE_BLE_SOFTDEVICE);
        assert_int_equal(j.n_files, 2);
        assert_string_equal(j.files[0], "t/3f6a/app.dat");
        assert_string_equal(j.files[1], "t/3f6a/app.bin");

        /* A type outside enum nrf_cloud_fota_type makes the job invalid, its id still read. */
        assert_int_equal(parse("[\"id\",9,1,\"h.example:8443\",\"f\"]", false, &j, &e), -EBADMSG);
        assert_string_equal(e.id, "id");
        assert_int_equal(parse("[\"id\",5,1,\"h.example:8443\",\"f\"]", false, &j, &e), 0);
        assert_int_equal(j.type, FOTA_TYPE_MDM_FULL);
        assert_string_equal(j.host, "h.example:8443");
}

/* A job longer than FOTA_JOB_MESSAGE_MAX is refused, but by its id so that it can be answered. */
static void test_parse_too_long(void **state) {
        char buf[FOTA_JOB_MESSAGE_MAX + 256], *path;
        FotaJob j;
        FotaJobError e;
        int n;
        (void) state;

        path = malloc(FOTA_JOB_MESSAGE_MAX + 1);
        assert_non_null(path);
        memset(path, 'a', FOTA_JOB_MESSAGE_MAX);
        path[FOTA_JOB_MESSAGE_MAX] = 0;
        n = snprintf(buf, sizeof buf, "[\"long-1\",0,10,\"h.example\",\"%s\"]", path);
        assert_true(n > FOTA_JOB_MESSAGE_MAX && (size_t) n < sizeof buf);
        assert_int_equal(parse(buf, false, &j, &e), -EBADMSG);
        assert_string_equal(e.id, "long-1");
        free(path);
}

static void test_parse_no_job(void **state) {
        FotaJob j = { .id = "untouched" };
        FotaJobError e;
        (void) state;
        assert_int_equal(parse("[]", false, &j, NULL), -ENOENT);
        assert_int_equal(parse(" [ ] ", false, &j, NULL), -ENOENT);
        assert_int_equal(parse("null", false, &j, NULL), -ENOENT);
        assert_int_equal(parse(" \r\n", false, &j, NULL), -ENOENT);
        /* Garbage: an error without an id, so nothing can be answered. */
        assert_int_equal(parse("\x01\xfe garbage", false, &j, &e), -EBADMSG);
        assert_string_equal(e.id, "");
        assert_int_equal(parse("{\"id\":\"abc\"}", false, &j, &e), -EBADMSG);
        assert_string_equal(e.id, "");
        assert_int_equal(parse("[null]", false, &j, &e), -EBADMSG);
        assert_string_equal(e.id, "");
        assert_int_equal(fota_job_parse("", 0, true, &j, NULL), -ENOENT);
        assert_string_equal(j.id, "untouched");
}

static void test_parse_errors(void **state) {
        static const struct {
                const char *in;
                bool ble;
                const char *field, *id, *addr;
        } t[] = {
                { "{}", false, "", "", "" },
                { "[", false, "", "", "" },
                { "[1,0,1,\"h\",\"p\"]", false, "[0]", "", "" },
                { "[\"\",0,1,\"h\",\"p\"]", false, "[0]", "", "" },
                { "[\"a/b\",0,1,\"h\",\"p\"]", false, "[0]", "", "" },
                { "[\"0123456789012345678901234567890123456\",0,1,\"h\",\"p\"]", false, "[0]", "", "" },
                { "[\"job\",0,1,\"h\"]", false, "[4]", "job", "" },
                { "[\"job\"]", false, "[1]", "job", "" },
                { "[\"job\",0,1,\"h\",\"a/%2e%2E/b\"]", false, "[4]", "job", "" },
                { "[\"job\",0,1,\"h\",\"a/%2e%2E?b\"]", false, "[4]", "job", "" },
                { "[\"job\",0,1,\"h\",\"a/..#b\"]", false, "[4]", "job", "" },
                { "[\"job\",0,1,\"h\",\"a/%0a\"]", false, "[4]", "job", "" },
                { "[\"job\",0,1,\"h\",\"a\\u0001b\"]", false, "[4]", "job", "" },
                { "[\"job\",0,1,\"h\",\"a%zz\"]", false, "[4]", "job", "" },
                { "[\"job\",0,1,\"h\",\"a%2\"]", false, "[4]", "job", "" },
                { "[\"job\",0,1,\"h\",\"..\"]", false, "[4]", "job", "" },
                { "[\"job\",0,1,\"h\",\"///\"]", false, "[4]", "job", "" },
                { "[\"job\",0,1,\"https://\",\"p\"]", false, "[3]", "job", "" },
                { "[\"job\",0,1,\"http://h\",\"p\"]", false, "[3]", "job", "" },
                { "[\"job\",0,1,\"h x\",\"p\"]", false, "[3]", "job", "" },
                { "[\"job\",0,1,\"[zz]\",\"p\"]", false, "[3]", "job", "" },
                { "[\"job\",6.5,1,\"h\",\"p\"]", false, "[1]", "job", "" },
                { "[\"job\",256,1,\"h\",\"p\"]", false, "[1]", "job", "" },
                { "[\"job\",\"0\",1,\"h\",\"p\"]", false, "[1]", "job", "" },
                { "[\"job\",-1,1,\"h\",\"p\"]", false, "[1]", "job", "" },
                { "[\"job\",0,-1,\"h\",\"p\"]", false, "[2]", "job", "" },
                { "[\"job\",0,1.5,\"h\",\"p\"]", false, "[2]", "job", "" },
                { "[\"job\",0,99999999999,\"h\",\"p\"]", false, "[2]", "job", "" },
                { "[\"job\",0,1,\"\",\"p\"]", false, "[3]", "job", "" },
                { "[\"job\",0,1,\"h/x\",\"p\"]", false, "[3]", "job", "" },
                { "[\"job\",0,1,\"h:\",\"p\"]", false, "[3]", "job", "" },
                { "[\"job\",0,1,\"h\",\"\"]", false, "[4]", "job", "" },
                { "[\"job\",0,1,\"h\",\"../etc/passwd\"]", false, "[4]", "job", "" },
                { "[\"job\",0,1,\"h\",\"a/../../b\"]", false, "[4]", "job", "" },
                { "[\"job\",0,1,\"h\",[\"p\"]]", false, "[4]", "job", "" },
                { "[\"job\",0,1,\"h\",\"p\"]", true, "[0]", "", "" },
                { "[\"12:AB:34:CD:56:EF\",\"job\",0,1,\"h\",\"a b c d e\"]", true, "[5]", "job", "12:AB:34:CD:56:EF" },
                { "[\"12:AB:34:CD:56:EF\",\"job\",0,1,\"h\",\"   \"]", true, "[5]", "job", "12:AB:34:CD:56:EF" },
                { "[\"12:AB:34:CD:56:EF\",7,0,1,\"h\",\"p\"]", true, "[1]", "", "12:AB:34:CD:56:EF" },
                { "[[[\"job\"]]]", false, "", "", "" },
        };
        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                FotaJob j = { .id = "untouched" };
                FotaJobError e;
                memset(&e, 0x55, sizeof e);
                int r = parse(t[i].in, t[i].ble, &j, &e);
                if (r >= 0 || r == -ENOENT || !streq(e.error.field, t[i].field) || !streq(e.id, t[i].id) ||
                    !streq(e.ble_address, t[i].addr))
                        fail_msg("case %zu %s: r=%d field='%s' id='%s'", i, t[i].in, r, e.error.field, e.id);
                assert_string_equal(j.id, "untouched");
        }
}

/* What nRF Cloud's decoder accepts, we accept (spec nrfcloud-fota.md §1.3). */
static void test_parse_lenient(void **state) {
        static const struct {
                const char *in;
                const char *host, *file, *url;
        } t[] = {
                /* extra elements are ignored */
                { "[\"job\",0,1,\"h.example\",\"p.bin\",\"x\",7,null]", "h.example", "p.bin", "https://h.example/p.bin" },
                /* the scheme on the host, any case, and a trailing slash */
                { "[\"job\",0,1,\"https://h.example\",\"p.bin\"]", "h.example", "p.bin", "https://h.example/p.bin" },
                { "[\"job\",0,1,\"HTTPS://h.example/\",\"p.bin\"]", "h.example", "p.bin", "https://h.example/p.bin" },
                /* a leading '/' on the path */
                { "[\"job\",0,1,\"h\",\"/v1/a.bin\"]", "h", "v1/a.bin", "https://h/v1/a.bin" },
                /* percent-encoded paths are kept as they are */
                { "[\"job\",0,1,\"h\",\"v1/my%20app%2Fx.bin\"]", "h", "v1/my%20app%2Fx.bin", "https://h/v1/my%20app%2Fx.bin" },
                /* what a URL cannot carry is encoded: spaces, quotes, backslashes, UTF-8 */
                { "[\"job\",0,1,\"h\",\"a b\\\"c\\\\d\\u00e9.bin\"]", "h", "a b\"c\\d\xc3\xa9.bin",
                  "https://h/a%20b%22c%5Cd%C3%A9.bin" },
                /* a query string is a part of the file's address */
                { "[\"job\",0,1,\"h\",\"a.bin?sig=1\"]", "h", "a.bin?sig=1", "https://h/a.bin?sig=1" },
                /* "..." and ".x" are names, not parent folders */
                { "[\"job\",0,1,\"h\",\".../.x/a..b\"]", "h", ".../.x/a..b", "https://h/.../.x/a..b" },
                /* numbers written as reals */
                { "[\"job\",1.0,1234.0,\"h\",\"p\"]", "h", "p", "https://h/p" },
                /* IP literals and ports */
                { "[\"job\",0,1,\"127.0.0.1:8443\",\"p\"]", "127.0.0.1:8443", "p", "https://127.0.0.1:8443/p" },
                { "[\"job\",0,1,\"[::1]:8443\",\"p\"]", "[::1]:8443", "p", "https://[::1]:8443/p" },
                /* the real job of spec §1.3 (DevZone) */
                { "[\"a7b5c1e2-3d4f-4a5b-8c9d-0e1f2a3b4c5d\",0,284416,\"bundles.nrfcloud.com\","
                  "\"64c49359-9733-4f53-b5ed-8a92b8d20fc6/at_monitor.signed.bin\"]",
                  "bundles.nrfcloud.com", "64c49359-9733-4f53-b5ed-8a92b8d20fc6/at_monitor.signed.bin",
                  "https://bundles.nrfcloud.com/64c49359-9733-4f53-b5ed-8a92b8d20fc6/at_monitor.signed.bin" },
        };
        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                FotaJob j;
                FotaJobError e;
                char url[FOTA_URL_MAX + 1];
                int r = parse(t[i].in, false, &j, &e);
                if (r < 0)
                        fail_msg("case %zu %s: r=%d field='%s' %s", i, t[i].in, r, e.error.field, e.error.description);
                assert_string_equal(j.host, t[i].host);
                assert_int_equal(j.n_files, 1);
                assert_string_equal(j.files[0], t[i].file);
                assert_int_equal(fota_job_url(&j, 0, url, sizeof url), 0);
                assert_string_equal(url, t[i].url);
        }
}

static void test_url_and_delta(void **state) {
        FotaJob j;
        char buf[64];
        (void) state;

        assert_int_equal(parse("[\"job\",1,9,\"h\",\"mfw_nrf9160_update_from_1.3.5_to_1.3.6.bin\"]", false, &j, NULL), 0);
        assert_int_equal(fota_job_url(&j, 1, buf, sizeof buf), -EINVAL);
        assert_int_equal(fota_job_url(&j, 0, buf, 12), -ENOBUFS);
        assert_int_equal(fota_delta_target_version(j.files[0], buf, sizeof buf), 0);
        assert_string_equal(buf, "1.3.6");
        assert_int_equal(fota_delta_target_version("x/mfw_nrf9160_update_from_mfw_nrf9160_1.3.5_to_mfw_nrf9160_1.3.6.bin",
                                                   buf, sizeof buf), 0);
        assert_string_equal(buf, "mfw_nrf9160_1.3.6");
        assert_int_equal(fota_delta_target_version("a/b_from_1_to_2/delta.bin", buf, sizeof buf), -ENOENT);
        assert_int_equal(fota_delta_target_version("delta.bin", buf, sizeof buf), -ENOENT);
        assert_int_equal(fota_delta_target_version("x_from_1_to_.bin", buf, sizeof buf), -ENOENT);
        assert_int_equal(fota_delta_target_version("x_from_1_to_1.2.3", buf, 3), -ENOBUFS);
}

static void test_build(void **state) {
        char *s = NULL;
        (void) state;

#define EXPECT(call, want)                          \
        do {                                        \
                assert_int_equal(call, 0);          \
                assert_string_equal(s, want);       \
                free(s);                            \
                s = NULL;                           \
        } while (0)
        EXPECT(fota_job_build_request(NULL, &s), "[\"\"]");
        EXPECT(fota_job_build_request("", &s), "[\"\"]");
        EXPECT(fota_job_build_request("abcd1234", &s), "[\"abcd1234\"]");
        EXPECT(fota_ble_job_build_request("12:ab:34:cd:56:ef", &s), "[\"12:AB:34:CD:56:EF\"]");
        EXPECT(fota_job_build_update("abcd1234", FOTA_STATUS_DOWNLOADING, 30, NULL, &s), "[\"abcd1234\",7,30]");
        EXPECT(fota_job_build_update("abcd1234", FOTA_STATUS_IN_PROGRESS, 0, NULL, &s), "[\"abcd1234\",1,\"\"]");
        EXPECT(fota_job_build_update("abcd1234", FOTA_STATUS_SUCCEEDED, 0, "", &s), "[\"abcd1234\",3,\"\"]");
        EXPECT(fota_job_build_update("abcd1234", FOTA_STATUS_FAILED, 0, "Error during download", &s),
               "[\"abcd1234\",2,\"Error during download\"]");
        EXPECT(fota_ble_job_build_update("12:AB:34:CD:56:EF", "efgh5678", FOTA_STATUS_DOWNLOADING, 45, NULL, &s),
               "[\"12:AB:34:CD:56:EF\",\"efgh5678\",7,45]");
        EXPECT(fota_ble_job_build_update("12:AB:34:CD:56:EF", "efgh5678", FOTA_STATUS_SUCCEEDED, 0, NULL, &s),
               "[\"12:AB:34:CD:56:EF\",\"efgh5678\",3,\"\"]");
        EXPECT(fota_ble_job_build_update("12:AB:34:CD:56:EF", "efgh5678", FOTA_STATUS_FAILED, 0, "Error applying update", &s),
               "[\"12:AB:34:CD:56:EF\",\"efgh5678\",2,\"Error applying update\"]");
#undef EXPECT

        assert_int_equal(fota_job_build_request("a\"b", &s), -EINVAL);
        assert_int_equal(fota_ble_job_build_request("12:AB", &s), -EINVAL);
        assert_int_equal(fota_job_build_update("abcd1234", FOTA_STATUS_DOWNLOADING, 101, NULL, &s), -EINVAL);
        assert_int_equal(fota_job_build_update("abcd1234", _FOTA_STATUS_MAX, 0, NULL, &s), -EINVAL);
        assert_int_equal(fota_job_build_update("", FOTA_STATUS_FAILED, 0, NULL, &s), -EINVAL);
        assert_int_equal(fota_job_build_update("abcd1234", FOTA_STATUS_FAILED, 0, "\xff", &s), -EINVAL);
        assert_int_equal(fota_ble_job_build_update(NULL, "abcd1234", FOTA_STATUS_FAILED, 0, NULL, &s), -EINVAL);
        assert_int_equal(fota_ble_job_build_update("bad", "abcd1234", FOTA_STATUS_DOWNLOADING, 1, NULL, &s), -EINVAL);
        assert_null(s);
}

static void test_tables(void **state) {
        (void) state;
        for (int i = 0; i < _FOTA_TYPE_MAX; i++)
                assert_int_equal(fota_type_from_string(fota_type_to_string(i)), i);
        assert_string_equal(fota_type_to_string(FOTA_TYPE_MDM_FULL), "MDM_FULL");
        assert_null(fota_type_to_string(_FOTA_TYPE_MAX));
        assert_string_equal(fota_status_to_string(FOTA_STATUS_DOWNLOADING), "DOWNLOADING");
        assert_null(fota_status_to_string(_FOTA_STATUS_INVALID));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_examples),
                cmocka_unit_test(test_parse_too_long),
                cmocka_unit_test(test_parse_no_job),
                cmocka_unit_test(test_parse_errors),
                cmocka_unit_test(test_parse_lenient),
                cmocka_unit_test(test_url_and_delta),
                cmocka_unit_test(test_build),
                cmocka_unit_test(test_tables),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
