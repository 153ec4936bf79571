/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "pki.h"

static char dir[64];

static int setup(void **state) {
        (void) state;
        snprintf(dir, sizeof dir, "/tmp/test-pki-XXXXXX");
        assert_non_null(mkdtemp(dir));
        return 0;
}

static int teardown(void **state) {
        char cmd[128];
        (void) state;
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
        return 0;
}

static void test_crlf_and_sha(void **state) {
        char *t, sha[65];
        (void) state;

        t = pki_crlf_normalize("a\nb\r\nc\r\r\n");
        assert_string_equal(t, "a\r\nb\r\nc\r\n");
        free(t);
        pki_sha256_hex("abc", 3, sha);
        assert_string_equal(sha, "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD");
}

/* A CSR made here the way the modem makes one: EC P-256, CN = device id, ecdsa-with-SHA256. */
static size_t make_csr(const char *cn, unsigned char **der) {
        EVP_PKEY *key = EVP_EC_gen("P-256");
        X509_REQ *req = X509_REQ_new();
        int n;

        assert_non_null(key);
        assert_non_null(req);
        assert_true(X509_REQ_set_pubkey(req, key));
        assert_true(X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_UTF8,
                                               (const unsigned char *) cn, -1, -1, 0));
        assert_true(X509_REQ_sign(req, key, EVP_sha256()) > 0);
        *der = NULL;
        n = i2d_X509_REQ(req, der);
        assert_true(n > 0);
        X509_REQ_free(req);
        EVP_PKEY_free(key);
        return (size_t) n;
}

static void test_ca_and_device_certificate(void **state) {
        char *cert_path = NULL, *key_path = NULL, *cn = NULL, err[256];
        X509 *ca = NULL, *cert = NULL;
        EVP_PKEY *ca_key = NULL, *ca_pub;
        X509_REQ *req = NULL;
        unsigned char *der;
        size_t n;
        struct stat st;
        (void) state;

        assert_int_equal(pki_ca_create(dir, "Unit CA", 30, &cert_path, &key_path, err, sizeof err), 0);
        assert_int_equal(stat(key_path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(pki_ca_create(dir, "Unit CA", 30, &cert_path, &key_path, err, sizeof err), -EEXIST);
        assert_int_equal(pki_ca_load(cert_path, key_path, &ca, &ca_key, err, sizeof err), 0);
        assert_int_equal(X509_check_ca(ca), 1);
        assert_true(X509_get_key_usage(ca) & KU_KEY_CERT_SIGN);
        assert_non_null(X509_get0_subject_key_id(ca));
        assert_non_null(X509_get0_authority_key_id(ca));

        n = make_csr("50503041-3633-4261-803d-1e2b8f70111a", &der);
        assert_int_equal(pki_csr_parse(der, n, &req), 0);
        assert_int_equal(pki_csr_common_name(req, &cn), 0);
        assert_string_equal(cn, "50503041-3633-4261-803d-1e2b8f70111a");
        assert_int_equal(pki_sign_csr(req, ca, ca_key, 365, &cert), 0);
        ca_pub = X509_get_pubkey(ca);
        assert_int_equal(X509_verify(cert, ca_pub), 1);
        assert_int_equal(X509_get_ext_count(cert), 0);
        assert_int_equal(X509_NAME_cmp(X509_get_subject_name(cert), X509_REQ_get_subject_name(req)), 0);
        assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(cert), X509_get_subject_name(ca)), 0);

        /* A CSR whose self-signature no longer matches is refused. */
        der[n - 5] ^= 0x01;
        X509_REQ_free(req);
        req = NULL;
        assert_int_equal(pki_csr_parse(der, n, &req), -EBADMSG);
        /* So is trailing garbage. */
        assert_int_equal(pki_csr_parse(der, n - 1, &req), -EBADMSG);

        EVP_PKEY_free(ca_pub);
        OPENSSL_free(der);
        X509_free(cert);
        X509_free(ca);
        EVP_PKEY_free(ca_key);
        free(cn);
        free(cert_path);
        free(key_path);
}

static void test_ca_key_mismatch(void **state) {
        char *c1 = NULL, *k1 = NULL, *c2 = NULL, *k2 = NULL, err[256], sub[128];
        X509 *ca = NULL;
        EVP_PKEY *key = NULL;
        (void) state;

        snprintf(sub, sizeof sub, "%s/a", dir);
        assert_int_equal(pki_ca_create(sub, "A", 30, &c1, &k1, err, sizeof err), 0);
        snprintf(sub, sizeof sub, "%s/b", dir);
        assert_int_equal(pki_ca_create(sub, "B", 30, &c2, &k2, err, sizeof err), 0);
        assert_int_equal(pki_ca_load(c1, k2, &ca, &key, err, sizeof err), -EINVAL);
        assert_non_null(strstr(err, "does not belong"));
        free(c1);
        free(k1);
        free(c2);
        free(k2);
}

static void test_check_certificates(void **state) {
        char *pem = NULL;
        (void) state;
        assert_int_equal(pki_read_text_file(AMAZON_ROOT_CA_1, &pem), 0);
        assert_int_equal(pki_check_certificates(pem), 1);
        {
                /* The published SHA-256 fingerprint of Amazon Root CA 1 (amazontrust.com/repository). */
                BIO *b = BIO_new_mem_buf(pem, -1);
                X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
                unsigned char md[32];
                unsigned n = 0;
                char hex[65];

                assert_non_null(x);
                assert_true(X509_digest(x, EVP_sha256(), md, &n));
                assert_int_equal(n, 32);
                for (unsigned i = 0; i < 32; i++)
                        snprintf(hex + 2 * i, 3, "%02X", md[i]);
                assert_string_equal(hex, "8ECDE6884F3D87B1125BA31AC3FCB13D7016DE7F57CC904FE1CB97C6AE98196E");
                X509_free(x);
                BIO_free(b);
        }
        free(pem);
        assert_int_equal(pki_check_certificates("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
                         -EBADMSG);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_crlf_and_sha),
                cmocka_unit_test_setup_teardown(test_ca_and_device_certificate, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ca_key_mismatch, setup, teardown),
                cmocka_unit_test(test_check_certificates),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
