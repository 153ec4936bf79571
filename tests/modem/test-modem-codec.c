/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "at-line.h"
#include "cose.h"
#include "identity.h"
#include "transcripts.h"

static void hex(const uint8_t *p, size_t n, char *out) {
        for (size_t i = 0; i < n; i++)
                sprintf(out + 2 * i, "%02x", p[i]);
}

static void test_keygen_transcript(void **state) {
        KeygenResult *k = NULL;
        char buf[65];
        (void) state;

        assert_int_equal(keygen_decode(KEYGEN_TRANSCRIPT, strlen(KEYGEN_TRANSCRIPT), &k), 0);
        assert_int_equal(k->payload_id, KEYGEN_PAYLOAD_CSR_V1);
        assert_string_equal(k->uuid, KEYGEN_UUID);
        assert_int_equal(k->sec_tag, 16842753);
        assert_int_equal(k->alg, -7);
        assert_int_equal(k->kid, -2);
        assert_int_equal(k->signature_len, 64);
        hex(k->digest, 32, buf);
        assert_string_equal(buf, KEYGEN_SHA256);
        hex(k->body_sha256, 32, buf);
        assert_string_equal(buf, KEYGEN_SHA256);
        hex(k->nonce, 16, buf);
        assert_string_equal(buf, KEYGEN_NONCE);
        /* The CSR DER: a SEQUENCE of 0x10a bytes. */
        assert_int_equal(k->body_len, 4 + 0x10a);
        assert_int_equal(k->body[0], 0x30);

        assert_int_equal(keygen_verify(k, KEYGEN_UUID, 16842753), KEYGEN_CHECK_OK);
        assert_int_equal(keygen_verify(k, "50503642-3239-4f86-80c4-06122e299624", 16842753), KEYGEN_CHECK_UUID);
        assert_int_equal(keygen_verify(k, KEYGEN_UUID, 42), KEYGEN_CHECK_SEC_TAG);
        assert_int_equal(keygen_verify(k, NULL, 16842753), KEYGEN_CHECK_UUID);
        assert_non_null(keygen_check_to_string(KEYGEN_CHECK_DIGEST));
        keygen_result_free(k);
}

static void test_keygen_tampered_csr(void **state) {
        char *t = strdup(KEYGEN_TRANSCRIPT);
        KeygenResult *k = NULL;
        (void) state;

        /* One character of the CSR changed: the signed digest no longer matches. */
        t[40] = t[40] == 'A' ? 'B' : 'A';
        assert_int_equal(keygen_decode(t, strlen(t), &k), 0);
        assert_int_equal(keygen_verify(k, KEYGEN_UUID, 16842753), KEYGEN_CHECK_DIGEST);
        keygen_result_free(k);
        free(t);
}

static void test_keygen_malformed(void **state) {
        static const char *const bad[] = {
                "",
                ".",
                "abc",
                "abc.",
                ".abc",
                "a.b.c",
                "MIIB.0oRD",   /* truncated CBOR */
                "MIIB.oA",     /* an empty map, not a COSE_Sign1 */
                "MII*.0oRD",   /* not base64url */
        };
        KeygenResult *k = NULL;
        const char *dot;
        char *t;
        (void) state;

        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                assert_int_equal(keygen_decode(bad[i], strlen(bad[i]), &k), -EBADMSG);

        /* An attestation token is not a %KEYGEN answer (detached payload). */
        assert_int_equal(keygen_decode(ATTEST_TRANSCRIPT, strlen(ATTEST_TRANSCRIPT), &k), -EBADMSG);

        /* Every truncation of the COSE part is refused, never misread. */
        dot = strchr(KEYGEN_TRANSCRIPT, '.');
        for (size_t n = (size_t) (dot - KEYGEN_TRANSCRIPT) + 2; n < strlen(KEYGEN_TRANSCRIPT) - 1; n++) {
                t = strndup(KEYGEN_TRANSCRIPT, n);
                assert_int_equal(keygen_decode(t, n, &k), -EBADMSG);
                free(t);
        }
}

static void test_attest_transcript(void **state) {
        AttestToken t;
        char buf[33];
        (void) state;

        assert_int_equal(attest_decode(ATTEST_TRANSCRIPT, strlen(ATTEST_TRANSCRIPT), &t), 0);
        assert_int_equal(t.msg_type, 1);
        assert_string_equal(attest_msg_type_to_string(t.msg_type), "device identity message v1");
        assert_string_equal(t.uuid, ATTEST_UUID);
        assert_int_equal(t.device_type, 3);
        assert_string_equal(t.fw_uuid, ATTEST_FW_UUID);
        hex(t.nonce, 16, buf);
        assert_string_equal(buf, ATTEST_NONCE);
        assert_int_equal(t.alg, -7);
        assert_int_equal(t.signature_len, 64);

        assert_int_equal(attest_decode(KEYGEN_TRANSCRIPT, strlen(KEYGEN_TRANSCRIPT), &t), -EBADMSG);
        assert_int_equal(attest_decode("2dn3hQFQ.0oRD", 13, &t), -EBADMSG);
}

static void test_base64url(void **state) {
        uint8_t *p = NULL;
        size_t n;
        (void) state;

        assert_int_equal(base64url_decode("-_8", 3, &p, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(p[0], 0xfb);
        assert_int_equal(p[1], 0xff);
        free(p);
        assert_int_equal(base64url_decode("YQ==", 4, &p, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(p[0], 'a');
        free(p);
        assert_int_equal(base64url_decode("Y", 1, &p, &n), -EBADMSG);
        assert_int_equal(base64url_decode("Y+Q", 3, &p, &n), -EBADMSG);
}

static void test_cmng_list(void **state) {
        CmngEntry e;
        (void) state;

        assert_int_equal(at_parse_cmng_list(
                                 "%CMNG: 16842753,0,\"2C43952EE9E000FF2ACC4E2ED0897C0A72AD5FA72C3D934E81741CBD54F05BD1\"", &e),
                         0);
        assert_int_equal(e.sec_tag, 16842753);
        assert_int_equal(e.type, CRED_ROOT_CA);
        assert_true(e.has_sha);
        assert_string_equal(e.sha256, "2C43952EE9E000FF2ACC4E2ED0897C0A72AD5FA72C3D934E81741CBD54F05BD1");

        /* Spaces after commas (CREDSTORE fixture), lower case normalised. */
        assert_int_equal(at_parse_cmng_list(
                                 "%CMNG: 12345678, 2, \"978cabcdef0123456789abcdef0123456789abcdef0123456789abcdef0102c4\"", &e),
                         0);
        assert_int_equal(e.sec_tag, 12345678);
        assert_int_equal(e.type, CRED_CLIENT_KEY);
        assert_string_equal(e.sha256, "978CABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0102C4");

        /* Modem-reserved tags above 2^31 appear in lists. */
        assert_int_equal(at_parse_cmng_list("%CMNG: 4294967292,10", &e), 0);
        assert_int_equal(e.sec_tag, 4294967292u);
        assert_false(e.has_sha);

        assert_int_equal(at_parse_cmng_list("%CMNG: 1,0,\"ABC\"", &e), -EBADMSG);
        assert_int_equal(at_parse_cmng_list("%CMNG: 1,99", &e), -EBADMSG);
        assert_int_equal(at_parse_cmng_list("%CMNG: 4294967296,0", &e), -EBADMSG);
        assert_int_equal(at_parse_cmng_list("%CMNG: 1,", &e), -EBADMSG);
        assert_int_equal(at_parse_cmng_list("%CMNG: ,1", &e), -EBADMSG);
        assert_int_equal(at_parse_cmng_list("%CMNG: 1,0,"
                                            "\"2C43952EE9E000FF2ACC4E2ED0897C0A72AD5FA72C3D934E81741CBD54F05BD1\",5",
                                            &e),
                         -EBADMSG);
        assert_int_equal(at_parse_cmng_list("+CGSN: 1,0", &e), -ENOMSG);
}

static void test_identity_lines(void **state) {
        char uuid[MODEM_UUID_STRING_MAX], imei[MODEM_IMEI_STRING_MAX], red[MODEM_IMEI_STRING_MAX];
        char *fw = NULL, *sdk = NULL, *mfw = NULL, *jwt = NULL;
        unsigned v[3], cfun;
        (void) state;

        assert_int_equal(at_parse_xuuid("#XUUID: 50503041-3633-4261-803D-1e2b8f70111a", uuid), 0);
        assert_string_equal(uuid, "50503041-3633-4261-803d-1e2b8f70111a");
        assert_int_equal(at_parse_xuuid("#XUUID: 50503041-3633-4261-803d-1e2b8f70111", uuid), -EBADMSG);
        assert_int_equal(at_parse_xuuid("#XUUID: 50503041-3633-4261-803d+1e2b8f70111a", uuid), -EBADMSG);
        assert_int_equal(at_parse_xuuid("%XMODEMUUID: 25c95751-efa4-40d4-8b4a-1dcaab81fac9", uuid), -ENOMSG);

        assert_int_equal(at_parse_cgsn("+CGSN: \"352656100367872\"", imei), 0);
        assert_string_equal(imei, "352656100367872");
        assert_string_equal(imei_redact(imei, red), "35265610XXXXXX2");
        assert_int_equal(at_parse_cgsn("+CGSN: \"35265610036787\"", imei), -EBADMSG);
        assert_int_equal(at_parse_cgsn("+CGSN: \"35265610036787a\"", imei), -EBADMSG);

        assert_int_equal(at_parse_cgmr("mfw_nrf9160_1.3.5", &mfw), 0);
        assert_string_equal(mfw, "mfw_nrf9160_1.3.5");
        assert_int_equal(mfw_version_parse(mfw, v), 0);
        assert_int_equal(v[0], 1);
        assert_int_equal(v[1], 3);
        assert_int_equal(v[2], 5);
        free(mfw);
        assert_int_equal(mfw_version_parse("mfw_nrf9160_1.3.0-FOTA-TEST", v), 0);
        assert_int_equal(v[2], 0);
        assert_int_equal(mfw_version_parse("mfw_nrf91x1_2.0.2", v), 0);
        assert_int_equal(v[0], 2);
        assert_int_equal(mfw_version_parse("mfw", v), -EBADMSG);
        assert_int_equal(at_parse_cgmr("+CEREG: 5", &mfw), -EBADMSG);

        assert_int_equal(at_parse_smver("#XSMVER: \"2.5.0\",\"2.5.0-lte-5ccd2d4dd54c\"", &fw, &sdk), 0);
        assert_string_equal(fw, "2.5.0");
        assert_string_equal(sdk, "2.5.0-lte-5ccd2d4dd54c");
        free(fw);
        free(sdk);
        assert_int_equal(at_parse_smver("#XSMVER: \"\"", &fw, NULL), -EBADMSG);

        /* 3GPP TS 27.007 §8.69: rsrq 31 → -4.5 dB, rsrp 62 → -79 dBm; 255: not known. */
        int32_t rsrp, rsrq;
        assert_int_equal(at_parse_cesq("+CESQ: 99,99,255,255,31,62", &rsrp, &rsrq), 0);
        assert_int_equal(rsrp, -79);
        assert_int_equal(rsrq, -45);
        assert_int_equal(at_parse_cesq("+CESQ: 99,99,255,255,0,97", &rsrp, &rsrq), 0);
        assert_int_equal(rsrp, -44);
        assert_int_equal(rsrq, -200);
        assert_int_equal(at_parse_cesq("+CESQ: 99,99,255,255,255,255", &rsrp, &rsrq), 0);
        assert_int_equal(rsrp, AT_CESQ_UNKNOWN);
        assert_int_equal(rsrq, AT_CESQ_UNKNOWN);
        assert_int_equal(at_parse_cesq("+CESQ: 99,99,255,255,35,62", &rsrp, &rsrq), -EBADMSG);
        assert_int_equal(at_parse_cesq("+CESQ: 99,99,255,255,31,98", &rsrp, &rsrq), -EBADMSG);
        assert_int_equal(at_parse_cesq("+CESQ: 99,99,255,255,31", &rsrp, &rsrq), -EBADMSG);
        assert_int_equal(at_parse_cesq("+CESQ: 99,99,255,255,31,62,1", &rsrp, &rsrq), -EBADMSG);
        assert_int_equal(at_parse_cesq("+CEREG: 5", &rsrp, &rsrq) < 0, true);

        assert_int_equal(at_parse_cfun("+CFUN: 4", &cfun), 0);
        assert_int_equal(cfun, 4);
        assert_int_equal(at_parse_cfun("+CFUN: x", &cfun), -EBADMSG);

        assert_int_equal(at_parse_quoted("%JWT: \"eyJ0.eyJp.tW2w\"", "%JWT", MODEM_JWT_MAX, &jwt), 0);
        assert_string_equal(jwt, "eyJ0.eyJp.tW2w");
        free(jwt);
        assert_int_equal(at_parse_quoted("%JWT: \"eyJ0", "%JWT", MODEM_JWT_MAX, &jwt), -EBADMSG);
        assert_int_equal(at_parse_quoted("%JWT: eyJ0", "%JWT", MODEM_JWT_MAX, &jwt), -EBADMSG);
        assert_int_equal(at_parse_quoted("%JWT: \"abcdef\"", "%JWT", 4, &jwt), -EBADMSG);
}

static void test_classify(void **state) {
        AtLineClass c;
        (void) state;

        assert_int_equal(at_line_classify("OK", 2, &c), 0);
        assert_int_equal(c.kind, AT_LINE_OK);
        assert_int_equal(at_line_classify("OKAY", 4, &c), 0);
        assert_int_equal(c.kind, AT_LINE_INFO);
        assert_int_equal(at_line_classify("+CME ERROR: 518", 15, &c), 0);
        assert_int_equal(c.kind, AT_LINE_CME_ERROR);
        assert_int_equal(c.code, 518);
        assert_int_equal(at_line_classify("+CME ERROR: 5x", 14, &c), -EBADMSG);
        assert_int_equal(at_line_classify("#XRECV: 1,2048", 14, &c), 0);
        assert_int_equal(c.kind, AT_LINE_BINARY_HEADER);
        assert_int_equal(c.binary_length, 2048);
        assert_int_equal(at_line_classify("#XRECV: 1,0", 11, &c), -EBADMSG);
        assert_int_equal(at_line_classify("#XRECV: 1,4097", 14, &c), -EBADMSG);
        assert_int_equal(at_line_classify("#XDOWNLOAD: 2,0", 15, &c), 0);
        assert_int_equal(c.kind, AT_LINE_INFO);
        assert_int_equal(at_line_classify("#XDOWNLOAD: 2,1,100", 19, &c), 0);
        assert_int_equal(c.kind, AT_LINE_BINARY_HEADER);
        assert_int_equal(c.binary_length, 100);
        assert_int_equal(at_line_classify("#XDOWNLOAD: 2,3,-13", 19, &c), 0);
        assert_int_equal(c.kind, AT_LINE_INFO);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_keygen_transcript),
                cmocka_unit_test(test_keygen_tampered_csr),
                cmocka_unit_test(test_keygen_malformed),
                cmocka_unit_test(test_attest_transcript),
                cmocka_unit_test(test_base64url),
                cmocka_unit_test(test_cmng_list),
                cmocka_unit_test(test_identity_lines),
                cmocka_unit_test(test_classify),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
