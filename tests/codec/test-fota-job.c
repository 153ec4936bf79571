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

        /* An unknown firmware type parses; the caller decides. */
        assert_int_equal(parse("[\"id\",9,1,\"h.example:8443\",\"f\"]", false, &j, &e), 0);
        assert_int_equal(j.type, 9);
        assert_string_equal(j.host, "h.example:8443");
}

static void test_parse_no_job(void **state) {
        FotaJob j = { .id = "untouched" };
        (void) state;
        assert_int_equal(parse("[]", false, &j, NULL), -ENOENT);
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
                { "[\"job\",0,1,\"h\"]", false, "", "job", "" },
                { "[\"job\",0,1,\"h\",\"p\",\"x\"]", false, "", "job", "" },
                { "[\"job\",\"0\",1,\"h\",\"p\"]", false, "[1]", "job", "" },
                { "[\"job\",-1,1,\"h\",\"p\"]", false, "[1]", "job", "" },
                { "[\"job\",0,-1,\"h\",\"p\"]", false, "[2]", "job", "" },
                { "[\"job\",0,1.5,\"h\",\"p\"]", false, "[2]", "job", "" },
                { "[\"job\",0,99999999999,\"h\",\"p\"]", false, "[2]", "job", "" },
                { "[\"job\",0,1,\"\",\"p\"]", false, "[3]", "job", "" },
                { "[\"job\",0,1,\"h/x\",\"p\"]", false, "[3]", "job", "" },
                { "[\"job\",0,1,\"h:\",\"p\"]", false, "[3]", "job", "" },
                { "[\"job\",0,1,\"h\",\"\"]", false, "[4]", "job", "" },
                { "[\"job\",0,1,\"h\",\"a b\"]", false, "[4]", "job", "" },
                { "[\"job\",0,1,\"h\",\"../etc/passwd\"]", false, "[4]", "job", "" },
                { "[\"job\",0,1,\"h\",\"a/../../b\"]", false, "[4]", "job", "" },
                { "[\"job\",0,1,\"h\",\"/abs\"]", false, "[4]", "job", "" },
                { "[\"job\",0,1,\"h\",\"a?b\"]", false, "[4]", "job", "" },
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
                cmocka_unit_test(test_parse_no_job),
                cmocka_unit_test(test_parse_errors),
                cmocka_unit_test(test_build),
                cmocka_unit_test(test_tables),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
