/* SPDX-License-Identifier: MIT */
#include <cbor.h>
#include <ctype.h>
#include <errno.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"

int emu_random(void *buf, size_t len) {
        if (len > INT32_MAX || RAND_bytes(buf, (int) len) != 1)
                return -EIO;
        return 0;
}

void emu_sha256(const void *data, size_t len, uint8_t out[32]) {
        SHA256(data, len, out);
}

void emu_hex(const uint8_t *data, size_t len, bool upper, char *out) {
        const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
        for (size_t i = 0; i < len; i++) {
                out[2 * i] = digits[data[i] >> 4];
                out[2 * i + 1] = digits[data[i] & 15];
        }
        out[2 * len] = 0;
}

static int unhex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

int emu_unhex(const char *s, size_t len, uint8_t *out) {
        if (len % 2)
                return -EINVAL;
        for (size_t i = 0; i < len; i += 2) {
                int hi = unhex_digit(s[i]), lo = unhex_digit(s[i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                out[i / 2] = (uint8_t) (hi << 4 | lo);
        }
        return 0;
}

char *emu_b64url(const uint8_t *data, size_t len) {
        static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        char *out = malloc(len / 3 * 4 + 5), *o = out;
        size_t i = 0;

        if (!out)
                return NULL;
        for (; i + 3 <= len; i += 3) {
                uint32_t v = (uint32_t) data[i] << 16 | (uint32_t) data[i + 1] << 8 | data[i + 2];
                *o++ = tbl[v >> 18];
                *o++ = tbl[(v >> 12) & 63];
                *o++ = tbl[(v >> 6) & 63];
                *o++ = tbl[v & 63];
        }
        if (len - i == 1) {
                uint32_t v = (uint32_t) data[i] << 16;
                *o++ = tbl[v >> 18];
                *o++ = tbl[(v >> 12) & 63];
        } else if (len - i == 2) {
                uint32_t v = (uint32_t) data[i] << 16 | (uint32_t) data[i + 1] << 8;
                *o++ = tbl[v >> 18];
                *o++ = tbl[(v >> 12) & 63];
                *o++ = tbl[(v >> 6) & 63];
        }
        *o = 0;
        return out;
}

EVP_PKEY *emu_p256_generate(void) {
        return EVP_EC_gen("P-256");
}

char *emu_pkey_to_pem(EVP_PKEY *k) {
        BIO *bio = BIO_new(BIO_s_mem());
        char *data = NULL, *ret = NULL;
        long n;

        if (!bio)
                return NULL;
        if (PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL) == 1) {
                n = BIO_get_mem_data(bio, &data);
                if (n > 0 && (ret = malloc((size_t) n + 1))) {
                        memcpy(ret, data, (size_t) n);
                        ret[n] = 0;
                }
        }
        BIO_free(bio);
        return ret;
}

bool emu_pkey_is_p256(EVP_PKEY *k) {
        char group[64];
        size_t glen = 0;

        if (!k || EVP_PKEY_get_base_id(k) != EVP_PKEY_EC)
                return false;
        if (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &glen) != 1)
                return false;
        return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

EVP_PKEY *emu_pkey_from_pem(const char *pem, size_t len, const char *passwd) {
        BIO *bio;
        EVP_PKEY *k;

        if (len > INT32_MAX)
                return NULL;
        bio = BIO_new_mem_buf(pem, (int) len);
        if (!bio)
                return NULL;
        /* A NULL callback with a NULL password would prompt on the terminal: pass "" instead. */
        k = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *) (passwd ? passwd : ""));
        BIO_free(bio);
        return k;
}

int emu_spki_der(EVP_PKEY *k, uint8_t **ret, size_t *ret_len) {
        unsigned char *der = NULL;
        int n = i2d_PUBKEY(k, &der);

        if (n <= 0)
                return -EIO;
        *ret = malloc((size_t) n);
        if (!*ret) {
                OPENSSL_free(der);
                return -ENOMEM;
        }
        memcpy(*ret, der, (size_t) n);
        *ret_len = (size_t) n;
        OPENSSL_free(der);
        return 0;
}

int emu_es256_sign(EVP_PKEY *k, const void *data, size_t len, uint8_t sig[64]) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        unsigned char der[80];
        const unsigned char *p = der;
        size_t dlen = sizeof der;
        ECDSA_SIG *s = NULL;
        int r = -EIO;

        if (!ctx)
                return -ENOMEM;
        if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k) != 1 ||
            EVP_DigestSign(ctx, der, &dlen, data, len) != 1)
                goto out;
        s = d2i_ECDSA_SIG(NULL, &p, (long) dlen);
        if (!s)
                goto out;
        if (BN_bn2binpad(ECDSA_SIG_get0_r(s), sig, 32) != 32 || BN_bn2binpad(ECDSA_SIG_get0_s(s), sig + 32, 32) != 32)
                goto out;
        r = 0;
out:
        ECDSA_SIG_free(s);
        EVP_MD_CTX_free(ctx);
        return r;
}

/* "O=Nordic Semiconductor,L=PDX,C=no" -> X509_NAME, in the given order. */
static int parse_attrs(const char *attrs, size_t len, X509_NAME *name) {
        size_t i = 0;

        if (len == 0)
                return -EINVAL;
        while (i < len) {
                char key[32], val[256];
                size_t k = 0, v = 0;

                while (i < len && attrs[i] != '=') {
                        if (k + 1 >= sizeof key || !(isalnum((unsigned char) attrs[i]) || attrs[i] == '.'))
                                return -EINVAL;
                        key[k++] = attrs[i++];
                }
                if (i >= len || k == 0)
                        return -EINVAL;
                key[k] = 0;
                i++; /* '=' */
                while (i < len && attrs[i] != ',') {
                        if (v + 1 >= sizeof val || (unsigned char) attrs[i] < 0x20)
                                return -EINVAL;
                        val[v++] = attrs[i++];
                }
                val[v] = 0;
                if (v == 0)
                        return -EINVAL;
                if (i < len) {
                        i++; /* ',' */
                        if (i == len)
                                return -EINVAL; /* trailing comma */
                }
                if (OBJ_txt2nid(key) == NID_undef)
                        return -EINVAL;
                if (X509_NAME_add_entry_by_txt(name, key, MBSTRING_UTF8, (const unsigned char *) val, -1, -1, 0) != 1)
                        return -EINVAL;
        }
        return 0;
}

int emu_csr_der(EVP_PKEY *key, const char *attrs, size_t attrs_len, const char *default_cn,
                unsigned key_usage, uint8_t **ret, size_t *ret_len) {
        X509_REQ *req = X509_REQ_new();
        X509_NAME *name = X509_NAME_new();
        ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
        STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
        X509_EXTENSION *ext = NULL;
        X509_ALGOR *alg = NULL;
        unsigned char *der = NULL;
        int n, r = -EIO;

        if (!req || !name || !ku || !exts)
                goto out;
        if (X509_REQ_set_version(req, 0) != 1)
                goto out;
        if (attrs) {
                r = parse_attrs(attrs, attrs_len, name);
                if (r < 0)
                        goto out;
                r = -EIO;
        } else if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *) default_cn, -1, -1,
                                              0) != 1)
                goto out;
        if (X509_REQ_set_subject_name(req, name) != 1 || X509_REQ_set_pubkey(req, key) != 1)
                goto out;

        for (int bit = 0; bit < 9; bit++)
                if (key_usage & (1u << bit))
                        if (ASN1_BIT_STRING_set_bit(ku, bit, 1) != 1)
                                goto out;
        ext = X509V3_EXT_i2d(NID_key_usage, 0, ku);
        if (!ext || !sk_X509_EXTENSION_push(exts, ext))
                goto out;
        ext = NULL;
        if (X509_REQ_add_extensions(req, exts) != 1)
                goto out;
        if (X509_REQ_sign(req, key, EVP_sha256()) <= 0)
                goto out;

        /* The modem writes ecdsa-with-SHA256 with NULL parameters; the signature covers only the request info. */
        alg = X509_ALGOR_new();
        if (!alg || X509_ALGOR_set0(alg, OBJ_nid2obj(NID_ecdsa_with_SHA256), V_ASN1_NULL, NULL) != 1 ||
            X509_REQ_set1_signature_algo(req, alg) != 1)
                goto out;

        n = i2d_X509_REQ(req, &der);
        if (n <= 0)
                goto out;
        *ret = malloc((size_t) n);
        if (!*ret) {
                r = -ENOMEM;
                goto out;
        }
        memcpy(*ret, der, (size_t) n);
        *ret_len = (size_t) n;
        r = 0;
out:
        OPENSSL_free(der);
        X509_ALGOR_free(alg);
        X509_EXTENSION_free(ext);
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
        ASN1_BIT_STRING_free(ku);
        X509_NAME_free(name);
        X509_REQ_free(req);
        return r;
}

/* --- CBOR --- */

static cbor_item_t *cbor_uint_min(uint64_t v) {
        if (v <= UINT8_MAX)
                return cbor_build_uint8((uint8_t) v);
        if (v <= UINT16_MAX)
                return cbor_build_uint16((uint16_t) v);
        if (v <= UINT32_MAX)
                return cbor_build_uint32((uint32_t) v);
        return cbor_build_uint64(v);
}

/* -1 - n */
static cbor_item_t *cbor_negint_min(uint64_t n) {
        if (n <= UINT8_MAX)
                return cbor_build_negint8((uint8_t) n);
        if (n <= UINT16_MAX)
                return cbor_build_negint16((uint16_t) n);
        if (n <= UINT32_MAX)
                return cbor_build_negint32((uint32_t) n);
        return cbor_build_negint64(n);
}

static int serialize(cbor_item_t *item, uint8_t **ret, size_t *ret_len) {
        unsigned char *buf = NULL;
        size_t cap = 0, n;

        if (!item)
                return -ENOMEM;
        n = cbor_serialize_alloc(item, &buf, &cap);
        cbor_decref(&item);
        if (n == 0) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        *ret_len = n;
        return 0;
}

/* Serialises a single small item into a byte string item. */
static cbor_item_t *bstr_of(cbor_item_t *inner) {
        uint8_t *buf;
        size_t len;
        cbor_item_t *b;

        if (serialize(inner, &buf, &len) < 0)
                return NULL;
        b = cbor_build_bytestring(buf, len);
        free(buf);
        return b;
}

static bool push(cbor_item_t *array, cbor_item_t *item) {
        bool ok;
        if (!item)
                return false;
        ok = cbor_array_push(array, item);
        cbor_decref(&item);
        return ok;
}

static bool map_add(cbor_item_t *map, cbor_item_t *key, cbor_item_t *value) {
        bool ok = key && value && cbor_map_add(map, (struct cbor_pair){ .key = key, .value = value });
        if (key)
                cbor_decref(&key);
        if (value)
                cbor_decref(&value);
        return ok;
}

static int tagged_55799(cbor_item_t *array, uint8_t **ret, size_t *ret_len) {
        cbor_item_t *tag = cbor_build_tag(55799, array);
        cbor_decref(&array);
        return serialize(tag, ret, ret_len);
}

int emu_keygen_payload(int payload_id, const uint8_t uuid[16], uint32_t sec_tag, const uint8_t sha[32],
                       const uint8_t nonce[16], uint8_t **ret, size_t *ret_len) {
        cbor_item_t *a = cbor_new_definite_array(5);

        if (!a)
                return -ENOMEM;
        if (!push(a, cbor_uint_min((uint64_t) payload_id)) || !push(a, cbor_build_bytestring(uuid, 16)) ||
            !push(a, bstr_of(cbor_uint_min(sec_tag))) || !push(a, cbor_build_bytestring(sha, 32)) ||
            !push(a, cbor_build_bytestring(nonce, 16))) {
                cbor_decref(&a);
                return -ENOMEM;
        }
        return tagged_55799(a, ret, ret_len);
}

int emu_attest_body(const uint8_t uuid[16], int device_type, const uint8_t fw_uuid[16], const uint8_t nonce[16],
                    uint8_t **ret, size_t *ret_len) {
        cbor_item_t *a = cbor_new_definite_array(5);

        if (!a)
                return -ENOMEM;
        if (!push(a, cbor_uint_min(1)) || !push(a, cbor_build_bytestring(uuid, 16)) ||
            !push(a, cbor_uint_min((uint64_t) device_type)) || !push(a, cbor_build_bytestring(fw_uuid, 16)) ||
            !push(a, cbor_build_bytestring(nonce, 16))) {
                cbor_decref(&a);
                return -ENOMEM;
        }
        return tagged_55799(a, ret, ret_len);
}

int emu_cose_sign1(EVP_PKEY *key, const uint8_t *payload, size_t payload_len, bool detached, uint8_t **ret,
                   size_t *ret_len) {
        cbor_item_t *prot_map = cbor_new_definite_map(1), *unprot = cbor_new_definite_map(1);
        cbor_item_t *prot = NULL, *sigs = NULL, *cose = NULL;
        static const uint8_t empty[1] = { 0 };
        uint8_t *tbs = NULL, sig[64];
        size_t tbs_len;
        int r = -ENOMEM;

        if (!prot_map || !unprot)
                goto out;
        /* protected = bstr({1: -7}) (alg ES256); unprotected = {4: bstr(CBOR(-2))} (kid: identity key) */
        if (!map_add(prot_map, cbor_uint_min(1), cbor_negint_min(6)))
                goto out;
        prot = bstr_of(prot_map);
        prot_map = NULL;
        if (!prot || !map_add(unprot, cbor_uint_min(4), bstr_of(cbor_negint_min(1))))
                goto out;

        /* Sig_structure = ["Signature1", protected, external_aad h'', payload] */
        sigs = cbor_new_definite_array(4);
        if (!sigs || !push(sigs, cbor_build_string("Signature1")) || !push(sigs, cbor_incref(prot)) ||
            !push(sigs, cbor_build_bytestring(empty, 0)) || !push(sigs, cbor_build_bytestring(payload, payload_len)))
                goto out;
        r = serialize(sigs, &tbs, &tbs_len);
        sigs = NULL;
        if (r < 0)
                goto out;
        r = emu_es256_sign(key, tbs, tbs_len, sig);
        if (r < 0)
                goto out;

        r = -ENOMEM;
        cose = cbor_new_definite_array(4);
        if (!cose || !push(cose, cbor_incref(prot)) || !push(cose, cbor_incref(unprot)) ||
            !push(cose, detached ? cbor_new_null() : cbor_build_bytestring(payload, payload_len)) ||
            !push(cose, cbor_build_bytestring(sig, 64)))
                goto out;
        {
                cbor_item_t *tag = cbor_build_tag(18, cose);
                cbor_decref(&cose); /* the tag holds it now; cbor_decref() only NULLs what it frees */
                cose = NULL;
                r = serialize(tag, ret, ret_len);
        }
out:
        free(tbs);
        if (sigs)
                cbor_decref(&sigs);
        if (cose)
                cbor_decref(&cose);
        if (prot)
                cbor_decref(&prot);
        if (unprot)
                cbor_decref(&unprot);
        if (prot_map)
                cbor_decref(&prot_map);
        return r;
}
