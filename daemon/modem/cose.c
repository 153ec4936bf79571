/* SPDX-License-Identifier: MIT */
#include <cbor.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "cose.h"
#include "macro.h"

/* RFC 8152: COSE_Sign1 is CBOR tag 18; RFC 8949 §3.4.6: self-described CBOR is tag 55799. */
#define COSE_SIGN1_TAG 18
#define CBOR_SELF_DESCRIBE_TAG 55799
#define COSE_HEADER_ALG 1
#define COSE_HEADER_KID 4

static void cbor_item_unref_p(cbor_item_t **p) {
        if (*p)
                cbor_decref(p);
}
#define _cleanup_cbor_ _cleanup_(cbor_item_unref_p)

static int b64url_value(char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '-')
                return 62;
        if (c == '_')
                return 63;
        return -1;
}

int base64url_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_len) {
        uint8_t *out;
        size_t o = 0;
        uint32_t acc = 0;
        unsigned bits = 0;

        while (len > 0 && s[len - 1] == '=')
                len--;
        if (len % 4 == 1)
                return -EBADMSG;
        out = malloc(len / 4 * 3 + 3);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < len; i++) {
                int v = b64url_value(s[i]);
                if (v < 0) {
                        free(out);
                        return -EBADMSG;
                }
                acc = (acc << 6) | (uint32_t) v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[o++] = (uint8_t) (acc >> bits);
                }
        }
        /* Leftover bits must be zero for a canonical encoding; tolerate them as Nordic's tools do. */
        *ret = out;
        *ret_len = o;
        return 0;
}

void uuid_format(const uint8_t u[16], char ret[MODEM_UUID_STRING_MAX]) {
        snprintf(ret, MODEM_UUID_STRING_MAX,
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3],
                 u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

/*
 * A bounded walk over the encoding before libcbor sees it.  libcbor 0.8
 * allocates a definite array or map for its declared size up front, so a
 * few bytes declaring 2^28 items would cost gigabytes.  Here every declared
 * count must fit in the bytes that are left (each item takes at least one),
 * nesting is capped, and indefinite lengths (which the nRF91 never sends)
 * are refused.
 */
#define CBOR_DEPTH_MAX 16

static int cbor_precheck(const uint8_t *p, size_t len) {
        uint64_t stack[CBOR_DEPTH_MAX];
        int depth = 0;
        size_t i = 0;

        stack[0] = 1;
        while (depth >= 0) {
                unsigned mt, ai;
                uint64_t v;

                if (stack[depth] == 0) {
                        depth--;
                        continue;
                }
                stack[depth]--;
                if (i >= len)
                        return -EBADMSG;
                mt = p[i] >> 5;
                ai = p[i] & 0x1f;
                i++;
                if (ai < 24)
                        v = ai;
                else if (ai <= 27) {
                        size_t n = (size_t) 1 << (ai - 24);
                        if (len - i < n)
                                return -EBADMSG;
                        v = 0;
                        for (size_t k = 0; k < n; k++)
                                v = (v << 8) | p[i + k];
                        i += n;
                } else
                        return -EBADMSG; /* reserved, or indefinite length */

                switch (mt) {
                case 0: /* unsigned, negative, simple/float: no content */
                case 1:
                case 7:
                        break;
                case 2: /* byte and text strings */
                case 3:
                        if (v > len - i)
                                return -EBADMSG;
                        i += (size_t) v;
                        break;
                case 4: /* arrays and maps */
                case 5:
                        if (v > len - i || (mt == 5 && 2 * v > len - i))
                                return -EBADMSG;
                        if (depth + 1 >= CBOR_DEPTH_MAX)
                                return -EBADMSG;
                        stack[++depth] = mt == 5 ? 2 * v : v;
                        break;
                case 6: /* a tag and the one item it applies to */
                        if (depth + 1 >= CBOR_DEPTH_MAX)
                                return -EBADMSG;
                        stack[++depth] = 1;
                        break;
                }
        }
        return i == len ? 0 : -EBADMSG;
}

/* Loads exactly one CBOR item that fills the buffer. */
static int cbor_load_exact(const uint8_t *data, size_t len, cbor_item_t **ret) {
        struct cbor_load_result res;
        cbor_item_t *item;
        int r;

        if (len == 0)
                return -EBADMSG;
        r = cbor_precheck(data, len);
        if (r < 0)
                return r;
        item = cbor_load(data, len, &res);
        if (!item)
                return res.error.code == CBOR_ERR_MEMERROR ? -ENOMEM : -EBADMSG;
        if (res.read != len) {
                cbor_decref(&item);
                return -EBADMSG;
        }
        *ret = item;
        return 0;
}

static int cbor_get_int64(const cbor_item_t *i, int64_t *ret) {
        uint64_t v;

        if (cbor_isa_uint(i)) {
                v = cbor_get_int(i);
                if (v > INT64_MAX)
                        return -ERANGE;
                *ret = (int64_t) v;
                return 0;
        }
        if (cbor_isa_negint(i)) {
                v = cbor_get_int(i); /* the value is -1 - v */
                if (v > INT64_MAX)
                        return -ERANGE;
                *ret = -1 - (int64_t) v;
                return 0;
        }
        return -EBADMSG;
}

/* cbor_is_null() asserts on floats in libcbor 0.8: ask about the width first. */
static bool is_null(const cbor_item_t *i) {
        return cbor_isa_float_ctrl(i) && cbor_float_get_width(i) == CBOR_FLOAT_0 && cbor_is_null(i);
}

static bool is_definite_bytes(const cbor_item_t *i) {
        return cbor_isa_bytestring(i) && cbor_bytestring_is_definite(i);
}

/* A definite bstr of exactly n bytes (n == 0: any length). */
static int get_bytes(const cbor_item_t *i, size_t n, const uint8_t **ret, size_t *ret_len) {
        if (!is_definite_bytes(i))
                return -EBADMSG;
        if (n != 0 && cbor_bytestring_length(i) != n)
                return -EBADMSG;
        *ret = cbor_bytestring_handle(i);
        if (ret_len)
                *ret_len = cbor_bytestring_length(i);
        return 0;
}

/* Decodes a bstr whose content is itself one CBOR item. */
static int get_embedded(const cbor_item_t *i, cbor_item_t **ret) {
        const uint8_t *p;
        size_t n;
        int r;

        r = get_bytes(i, 0, &p, &n);
        if (r < 0)
                return r;
        return cbor_load_exact(p, n, ret);
}

/* Tag t around a definite array of n items. */
static int get_tagged_array(const cbor_item_t *i, uint64_t tag, size_t n, cbor_item_t **ret_array) {
        cbor_item_t *a;

        if (!cbor_isa_tag(i) || cbor_tag_value(i) != tag)
                return -EBADMSG;
        a = cbor_tag_item(i); /* a new reference */
        if (!cbor_isa_array(a) || !cbor_array_is_definite(a) || cbor_array_size(a) != n) {
                cbor_decref(&a);
                return -EBADMSG;
        }
        *ret_array = a;
        return 0;
}

typedef struct CoseSign1 {
        int64_t alg;
        int64_t kid;
        bool has_kid;
        cbor_item_t *payload; /* borrowed from the array: NULL item or bstr */
        size_t signature_len;
} CoseSign1;

/* Checks a COSE_Sign1 and reads its headers; *ret_array keeps the payload alive. */
static int cose_sign1_parse(const uint8_t *data, size_t len, CoseSign1 *ret, cbor_item_t **ret_array) {
        _cleanup_cbor_ cbor_item_t *root = NULL, *array = NULL, *prot = NULL;
        cbor_item_t **items;
        CoseSign1 c = { .alg = 0 };
        bool have_alg = false;
        const uint8_t *sig;
        int r;

        /*
         * libcbor 0.8 (Debian 12) refuses the one-byte tags 6..20 (0xc6..0xd4)
         * as "unassigned", and COSE_Sign1 is exactly such a tag (0xd2).  Take
         * that byte off ourselves and decode the array behind it; the
         * two-byte form (0xd8 0x12) is left to libcbor.
         */
        if (len >= 1 && data[0] == 0xc0 + COSE_SIGN1_TAG) {
                r = cbor_load_exact(data + 1, len - 1, &array);
                if (r < 0)
                        return r;
                if (!cbor_isa_array(array) || !cbor_array_is_definite(array) || cbor_array_size(array) != 4)
                        return -EBADMSG;
        } else {
                r = cbor_load_exact(data, len, &root);
                if (r < 0)
                        return r;
                r = get_tagged_array(root, COSE_SIGN1_TAG, 4, &array);
                if (r < 0)
                        return r;
        }
        items = cbor_array_handle(array);

        /* [0] protected: bstr holding a map {1: alg} */
        r = get_embedded(items[0], &prot);
        if (r < 0)
                return r;
        if (!cbor_isa_map(prot) || !cbor_map_is_definite(prot))
                return -EBADMSG;
        for (size_t i = 0; i < cbor_map_size(prot); i++) {
                struct cbor_pair *pr = cbor_map_handle(prot) + i;
                int64_t k;
                if (cbor_get_int64(pr->key, &k) < 0)
                        continue;
                if (k == COSE_HEADER_ALG) {
                        if (cbor_get_int64(pr->value, &c.alg) < 0)
                                return -EBADMSG;
                        have_alg = true;
                }
        }
        if (!have_alg)
                return -EBADMSG;

        /* [1] unprotected: a map; kid (4) is a bstr holding a CBOR integer */
        if (!cbor_isa_map(items[1]) || !cbor_map_is_definite(items[1]))
                return -EBADMSG;
        for (size_t i = 0; i < cbor_map_size(items[1]); i++) {
                struct cbor_pair *pr = cbor_map_handle(items[1]) + i;
                _cleanup_cbor_ cbor_item_t *kid = NULL;
                int64_t k;
                if (cbor_get_int64(pr->key, &k) < 0 || k != COSE_HEADER_KID)
                        continue;
                if (get_embedded(pr->value, &kid) >= 0 && cbor_get_int64(kid, &c.kid) >= 0)
                        c.has_kid = true;
        }

        /* [2] payload: bstr, or nil when detached */
        if (!is_definite_bytes(items[2]) && !is_null(items[2]))
                return -EBADMSG;
        c.payload = items[2];

        /* [3] signature: ES256 raw r||s is 64 bytes */
        r = get_bytes(items[3], 0, &sig, &c.signature_len);
        if (r < 0)
                return r;
        if (c.signature_len == 0 || c.signature_len > 512)
                return -EBADMSG;

        *ret = c;
        *ret_array = TAKE_PTR(array);
        return 0;
}

/* Splits "<a>.<b>" into two decoded parts. */
static int split_two(const char *text, size_t len, uint8_t **a, size_t *alen, uint8_t **b, size_t *blen) {
        const char *dot;
        int r;

        if (len == 0 || len > COSE_INPUT_MAX)
                return -EBADMSG;
        dot = memchr(text, '.', len);
        if (!dot || dot == text || dot == text + len - 1)
                return -EBADMSG;
        if (memchr(dot + 1, '.', (size_t) (text + len - dot - 1)))
                return -EBADMSG;
        r = base64url_decode(text, (size_t) (dot - text), a, alen);
        if (r < 0)
                return r;
        r = base64url_decode(dot + 1, (size_t) (text + len - dot - 1), b, blen);
        if (r < 0) {
                free(*a);
                *a = NULL;
                return r;
        }
        return 0;
}

KeygenResult *keygen_result_free(KeygenResult *k) {
        if (!k)
                return NULL;
        free(k->body);
        free(k);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(KeygenResult *, keygen_result_free);

int keygen_decode(const char *text, size_t len, KeygenResult **ret) {
        _cleanup_(keygen_result_freep) KeygenResult *k = NULL;
        _cleanup_free_ uint8_t *cose = NULL;
        _cleanup_cbor_ cbor_item_t *array = NULL, *payload = NULL, *fields = NULL, *tag = NULL;
        cbor_item_t **f;
        const uint8_t *p;
        size_t cose_len, n;
        CoseSign1 c;
        int64_t v;
        int r;

        k = calloc(1, sizeof *k);
        if (!k)
                return -ENOMEM;
        r = split_two(text, len, &k->body, &k->body_len, &cose, &cose_len);
        if (r < 0)
                return r;
        if (k->body_len == 0)
                return -EBADMSG;
        if (EVP_Digest(k->body, k->body_len, k->body_sha256, NULL, EVP_sha256(), NULL) != 1)
                return -EIO;

        r = cose_sign1_parse(cose, cose_len, &c, &array);
        if (r < 0)
                return r;
        k->alg = c.alg;
        k->kid = c.has_kid ? c.kid : 0;
        k->signature_len = c.signature_len;
        if (!is_definite_bytes(c.payload))
                return -EBADMSG; /* %KEYGEN carries its payload */

        /* payload = Tag(55799, [id, uuid(16), bstr(CBOR(sec_tag)), sha256(32), nonce(16)]) */
        r = get_embedded(c.payload, &payload);
        if (r < 0)
                return r;
        r = get_tagged_array(payload, CBOR_SELF_DESCRIBE_TAG, 5, &fields);
        if (r < 0)
                return r;
        f = cbor_array_handle(fields);

        if (cbor_get_int64(f[0], &v) < 0 || (v != KEYGEN_PAYLOAD_CSR_V1 && v != KEYGEN_PAYLOAD_PUBKEY_V2))
                return -EBADMSG;
        k->payload_id = (unsigned) v;
        if (get_bytes(f[1], 16, &p, NULL) < 0)
                return -EBADMSG;
        uuid_format(p, k->uuid);
        r = get_embedded(f[2], &tag);
        if (r < 0)
                return r;
        if (cbor_get_int64(tag, &v) < 0)
                return -EBADMSG;
        /* Nordic's parser turns a negative tag into its uint32 value; do the same. */
        if (v < 0 && v >= INT32_MIN)
                v = (int64_t) (uint32_t) (int32_t) v;
        if (v < 0 || v > UINT32_MAX)
                return -EBADMSG;
        k->sec_tag = (uint32_t) v;
        if (get_bytes(f[3], 32, &p, NULL) < 0)
                return -EBADMSG;
        memcpy(k->digest, p, 32);
        if (get_bytes(f[4], 0, &p, &n) < 0 || n > sizeof k->nonce)
                return -EBADMSG;
        memcpy(k->nonce, p, n);

        *ret = TAKE_PTR(k);
        return 0;
}

static const char *const keygen_check_table[_KEYGEN_CHECK_MAX] = {
        [KEYGEN_CHECK_OK] = "ok",
        [KEYGEN_CHECK_DIGEST] = "the signed SHA-256 differs from the SHA-256 of the CSR",
        [KEYGEN_CHECK_UUID] = "the signed device UUID differs from the device's UUID",
        [KEYGEN_CHECK_SEC_TAG] = "the signed security tag differs from the one asked for",
        [KEYGEN_CHECK_TYPE] = "the signed message is not a CSR message",
};

const char *keygen_check_to_string(KeygenCheck c) {
        return c >= 0 && c < _KEYGEN_CHECK_MAX ? keygen_check_table[c] : NULL;
}

KeygenCheck keygen_verify(const KeygenResult *k, const char *uuid, uint32_t sec_tag) {
        if (CRYPTO_memcmp(k->digest, k->body_sha256, 32) != 0)
                return KEYGEN_CHECK_DIGEST;
        if (!uuid || strcasecmp(k->uuid, uuid) != 0)
                return KEYGEN_CHECK_UUID;
        if (k->sec_tag != sec_tag)
                return KEYGEN_CHECK_SEC_TAG;
        if (k->payload_id != KEYGEN_PAYLOAD_CSR_V1)
                return KEYGEN_CHECK_TYPE;
        return KEYGEN_CHECK_OK;
}

int attest_decode(const char *text, size_t len, AttestToken *ret) {
        _cleanup_free_ uint8_t *body = NULL, *cose = NULL;
        _cleanup_cbor_ cbor_item_t *root = NULL, *fields = NULL, *array = NULL;
        AttestToken t = {};
        size_t body_len, cose_len, n;
        const uint8_t *p;
        cbor_item_t **f;
        CoseSign1 c;
        int r;

        r = split_two(text, len, &body, &body_len, &cose, &cose_len);
        if (r < 0)
                return r;

        /* body = Tag(55799, [msg type, uuid(16), device type, fw uuid(16), nonce(16)]) */
        r = cbor_load_exact(body, body_len, &root);
        if (r < 0)
                return r;
        r = get_tagged_array(root, CBOR_SELF_DESCRIBE_TAG, 5, &fields);
        if (r < 0)
                return r;
        f = cbor_array_handle(fields);
        if (cbor_get_int64(f[0], &t.msg_type) < 0)
                return -EBADMSG;
        if (get_bytes(f[1], 16, &p, NULL) < 0)
                return -EBADMSG;
        uuid_format(p, t.uuid);
        if (cbor_get_int64(f[2], &t.device_type) < 0)
                return -EBADMSG;
        if (get_bytes(f[3], 16, &p, NULL) < 0)
                return -EBADMSG;
        uuid_format(p, t.fw_uuid);
        if (get_bytes(f[4], 0, &p, &n) < 0 || n != sizeof t.nonce)
                return -EBADMSG;
        memcpy(t.nonce, p, n);

        /* The COSE_Sign1 has a detached payload (nil): the message above. */
        r = cose_sign1_parse(cose, cose_len, &c, &array);
        if (r < 0)
                return r;
        t.alg = c.alg;
        t.signature_len = c.signature_len;

        *ret = t;
        return 0;
}

const char *attest_msg_type_to_string(int64_t t) {
        switch (t) {
        case 1:
                return "device identity message v1";
        case 2:
                return "public key message v1";
        case 3:
                return "CSR message v1";
        case 5:
                return "provisioning response v1";
        default:
                return "unknown";
        }
}

const char *attest_device_type_to_string(int64_t t) {
        /* The names Nordic's own tools print (nrf91-at.md §4). */
        switch (t) {
        case 1:
                return "nRF9160 SIAA";
        case 2:
                return "nRF9160 SIBA";
        case 3:
                return "nRF9160 SIAA";
        case 4:
                return "nRF9161 LACA";
        case 5:
                return "nRF9131 LACA";
        case 6:
                return "nRF9151 LACA";
        default:
                return "unknown";
        }
}
