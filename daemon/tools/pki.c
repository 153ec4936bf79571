/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "macro.h"
#include "pki.h"
#include "util.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(X509 *, X509_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509_REQ *, X509_REQ_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIGNUM *, BN_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(FILE *, fclose);

static void ssl_error(char *err, size_t errlen, const char *what) {
        unsigned long e = ERR_get_error();
        char buf[256] = "";
        if (e)
                ERR_error_string_n(e, buf, sizeof buf);
        snprintf(err, errlen, "%s%s%s", what, buf[0] ? ": " : "", buf);
        ERR_clear_error();
}

/* RFC 5280 §4.1.2.2: positive, at most 20 octets; 159 random bits. */
static int random_serial(X509 *x) {
        _cleanup_(BN_freep) BIGNUM *bn = BN_new();
        if (!bn || !BN_rand(bn, 159, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY))
                return -EIO;
        if (!BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
                return -EIO;
        return 0;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
        X509V3_CTX ctx;
        X509_EXTENSION *ext;
        int ok;

        X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        if (!ext)
                return -EIO;
        ok = X509_add_ext(cert, ext, -1);
        X509_EXTENSION_free(ext);
        return ok ? 0 : -EIO;
}

static int write_pem_file(const char *path, mode_t mode, X509 *cert, EVP_PKEY *key) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_(fclosep) FILE *f = NULL;
        int ok;

        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return -errno;
        /* The umask must not widen or narrow what we asked for. */
        if (fchmod(fd, mode) < 0)
                return -errno;
        f = fdopen(fd, "w");
        if (!f)
                return -errno;
        fd = -EBADF;
        ok = cert ? PEM_write_X509(f, cert) : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
        if (!ok)
                return -EIO;
        if (fflush(f) != 0 || fsync(fileno(f)) < 0)
                return -errno;
        return 0;
}

int pki_ca_create(const char *dir, const char *cn, unsigned days, char **ret_cert_path, char **ret_key_path,
                  char *err, size_t errlen) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *x = NULL;
        _cleanup_free_ char *cert_path = NULL, *key_path = NULL;
        X509_NAME *name;
        struct stat st;
        int r;

        if (stat(dir, &st) < 0 && errno == ENOENT && mkdir(dir, 0755) < 0) {
                snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
                return -errno;
        }
        if (asprintf(&cert_path, "%s/ca.pem", dir) < 0 || asprintf(&key_path, "%s/ca-key.pem", dir) < 0)
                return -ENOMEM;
        if (access(cert_path, F_OK) == 0 || access(key_path, F_OK) == 0) {
                snprintf(err, errlen, "%s or %s already exists; not overwriting a CA", cert_path, key_path);
                return -EEXIST;
        }

        key = EVP_EC_gen("P-256");
        if (!key) {
                ssl_error(err, errlen, "cannot generate an EC P-256 key");
                return -EIO;
        }
        x = X509_new();
        if (!x || !X509_set_version(x, 2) || random_serial(x) < 0 ||
            !X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
            !X509_time_adj_ex(X509_getm_notAfter(x), (int) days, 0, NULL) || !X509_set_pubkey(x, key)) {
                ssl_error(err, errlen, "cannot build the CA certificate");
                return -EIO;
        }
        name = X509_get_subject_name(x);
        if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *) cn, -1, -1, 0) ||
            !X509_set_issuer_name(x, name)) {
                ssl_error(err, errlen, "cannot set the CA name");
                return -EIO;
        }
        /* SKI before AKI: the AKI of a self-signed certificate is its own SKI. */
        if (add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
            add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
            add_ext(x, x, NID_subject_key_identifier, "hash") < 0 ||
            add_ext(x, x, NID_authority_key_identifier, "keyid:always") < 0) {
                ssl_error(err, errlen, "cannot add the CA extensions");
                return -EIO;
        }
        if (!X509_sign(x, key, EVP_sha256())) {
                ssl_error(err, errlen, "cannot sign the CA certificate");
                return -EIO;
        }

        /* The key first, 0600: if anything fails after it, no certificate points at a missing key. */
        r = write_pem_file(key_path, 0600, NULL, key);
        if (r < 0) {
                snprintf(err, errlen, "cannot write %s: %s", key_path, strerror(-r));
                return r;
        }
        r = write_pem_file(cert_path, 0644, x, NULL);
        if (r < 0) {
                snprintf(err, errlen, "cannot write %s: %s", cert_path, strerror(-r));
                (void) unlink(key_path);
                return r;
        }
        *ret_cert_path = TAKE_PTR(cert_path);
        *ret_key_path = TAKE_PTR(key_path);
        return 0;
}

int pki_ca_load(const char *cert_path, const char *key_path, X509 **ret_cert, EVP_PKEY **ret_key, char *err,
                size_t errlen) {
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(fclosep) FILE *f = NULL;

        f = fopen(cert_path, "re");
        if (!f) {
                snprintf(err, errlen, "cannot open %s: %s", cert_path, strerror(errno));
                return -errno;
        }
        cert = PEM_read_X509(f, NULL, NULL, NULL);
        if (!cert) {
                ssl_error(err, errlen, "the CA certificate cannot be read");
                return -EBADMSG;
        }
        fclose(f);
        f = fopen(key_path, "re");
        if (!f) {
                snprintf(err, errlen, "cannot open %s: %s", key_path, strerror(errno));
                return -errno;
        }
        key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        if (!key) {
                ssl_error(err, errlen, "the CA key cannot be read (encrypted keys are not supported)");
                return -EBADMSG;
        }
        if (X509_check_private_key(cert, key) != 1) {
                ERR_clear_error();
                snprintf(err, errlen, "the CA key does not belong to the CA certificate");
                return -EINVAL;
        }
        if (X509_check_ca(cert) == 0) {
                snprintf(err, errlen, "the CA certificate is not a CA certificate (no CA:TRUE)");
                return -EINVAL;
        }
        *ret_cert = TAKE_PTR(cert);
        *ret_key = TAKE_PTR(key);
        return 0;
}

int pki_csr_parse(const uint8_t *der, size_t len, X509_REQ **ret) {
        _cleanup_(X509_REQ_freep) X509_REQ *req = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pub = NULL;
        const unsigned char *p = der;

        if (len > LONG_MAX)
                return -EBADMSG;
        req = d2i_X509_REQ(NULL, &p, (long) len);
        if (!req || p != der + len) {
                ERR_clear_error();
                return -EBADMSG;
        }
        pub = X509_REQ_get_pubkey(req);
        if (!pub || X509_REQ_verify(req, pub) != 1) {
                ERR_clear_error();
                return -EBADMSG;
        }
        if (!EVP_PKEY_is_a(pub, "EC")) {
                return -EPROTO;
        }
        *ret = TAKE_PTR(req);
        return 0;
}

int pki_csr_common_name(X509_REQ *req, char **ret) {
        X509_NAME *name = X509_REQ_get_subject_name(req);
        int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
        ASN1_STRING *s;
        unsigned char *utf8 = NULL;
        char *copy;
        int n;

        if (i < 0)
                return -ENOENT;
        if (X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0)
                return -EBADMSG; /* two CNs: which one is the device? */
        s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
        n = ASN1_STRING_to_UTF8(&utf8, s);
        if (n < 0)
                return -EBADMSG;
        if (memchr(utf8, 0, (size_t) n)) {
                OPENSSL_free(utf8);
                return -EBADMSG;
        }
        copy = strndup((char *) utf8, (size_t) n);
        OPENSSL_free(utf8);
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

int pki_sign_csr(X509_REQ *req, X509 *ca, EVP_PKEY *ca_key, unsigned days, X509 **ret) {
        _cleanup_(X509_freep) X509 *x = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pub = X509_REQ_get_pubkey(req);

        x = X509_new();
        if (!x || !pub || !X509_set_version(x, 2) || random_serial(x) < 0 ||
            !X509_set_subject_name(x, X509_REQ_get_subject_name(req)) ||
            !X509_set_issuer_name(x, X509_get_subject_name(ca)) || !X509_set_pubkey(x, pub) ||
            !X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
            !X509_time_adj_ex(X509_getm_notAfter(x), (int) days, 0, NULL)) {
                ERR_clear_error();
                return -EIO;
        }
        /* nrf91-at.md §3.5/§8.2: nRF Cloud needs no extensions, and Nordic's own tools add none. */
        if (!X509_sign(x, ca_key, EVP_sha256())) {
                ERR_clear_error();
                return -EIO;
        }
        *ret = TAKE_PTR(x);
        return 0;
}

int pki_cert_to_pem(X509 *cert, char **ret) {
        _cleanup_(BIO_freep) BIO *b = BIO_new(BIO_s_mem());
        char *data;
        long n;

        if (!b || !PEM_write_bio_X509(b, cert))
                return -EIO;
        n = BIO_get_mem_data(b, &data);
        if (n <= 0)
                return -EIO;
        *ret = strndup(data, (size_t) n);
        return *ret ? 0 : -ENOMEM;
}

char *pki_crlf_normalize(const char *text) {
        size_t n = strlen(text), o = 0;
        char *out = malloc(2 * n + 1);

        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                if (text[i] == '\r')
                        continue;
                if (text[i] == '\n')
                        out[o++] = '\r';
                out[o++] = text[i];
        }
        out[o] = 0;
        return out;
}

void pki_sha256_hex(const void *data, size_t len, char out[65]) {
        unsigned char md[32];
        (void) EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL);
        for (size_t i = 0; i < 32; i++)
                snprintf(out + 2 * i, 3, "%02X", md[i]);
}

int pki_read_text_file(const char *path, char **ret) {
        size_t n;
        return read_full_file(path, PKI_PEM_FILE_MAX, ret, &n);
}

int pki_check_certificates(const char *pem) {
        _cleanup_(BIO_freep) BIO *b = BIO_new_mem_buf(pem, -1);
        X509 *x;
        int count = 0;

        if (!b)
                return -ENOMEM;
        while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
                X509_free(x);
                count++;
        }
        ERR_clear_error();
        return count > 0 ? count : -EBADMSG;
}
