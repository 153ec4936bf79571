/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Decoders for what the nRF91 signs with its device identity key
 * (nrf91-at.md §3, §4): the %KEYGEN answer "<base64url body>.<base64url
 * COSE_Sign1>" and the %ATTESTTOKEN answer "<base64url attestation
 * message>.<base64url COSE_Sign1>".  Pure, CBOR through libcbor.  They check
 * structure and the payload digest; verifying the COSE signature needs
 * Nordic's identity service and is not done here (neither do Nordic's tools).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "identity.h"

#define COSE_INPUT_MAX 4096u  /* a %KEYGEN answer is ~700 bytes; refuse beyond */

/* base64url without padding (a trailing '=' padding is tolerated). */
int base64url_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_len);

typedef enum KeygenPayloadId {
        KEYGEN_PAYLOAD_PUBKEY_V2 = 8, /* body is a SubjectPublicKeyInfo */
        KEYGEN_PAYLOAD_CSR_V1 = 9,    /* body is a PKCS#10 CSR */
} KeygenPayloadId;

typedef struct KeygenResult {
        uint8_t *body;              /* base64url-decoded first part (CSR DER) */
        size_t body_len;
        uint8_t body_sha256[32];    /* computed over body */
        int64_t alg;                /* protected header label 1 (-7 = ES256) */
        int64_t kid;                /* unprotected header label 4, CBOR inside a bstr (-2 = identity key) */
        unsigned payload_id;        /* 8 or 9 */
        char uuid[MODEM_UUID_STRING_MAX];
        uint32_t sec_tag;
        uint8_t digest[32];         /* the SHA-256 the modem signed */
        uint8_t nonce[16];
        size_t signature_len;
} KeygenResult;

/* Decodes; -EBADMSG for anything malformed.  Does not compare the digest: see keygen_verify(). */
int keygen_decode(const char *text, size_t len, KeygenResult **ret);
KeygenResult *keygen_result_free(KeygenResult *k);

typedef enum KeygenCheck {
        KEYGEN_CHECK_OK,
        KEYGEN_CHECK_DIGEST,   /* payload SHA-256 differs from sha256(body) */
        KEYGEN_CHECK_UUID,     /* payload UUID differs from the device's */
        KEYGEN_CHECK_SEC_TAG,  /* payload security tag differs from the one asked for */
        KEYGEN_CHECK_TYPE,     /* not a CSR message */
        _KEYGEN_CHECK_MAX,
} KeygenCheck;

/* The first mismatch, in the order above. */
KeygenCheck keygen_verify(const KeygenResult *k, const char *uuid, uint32_t sec_tag);
const char *keygen_check_to_string(KeygenCheck c);

typedef struct AttestToken {
        int64_t msg_type;          /* 1 = device identity message v1 */
        char uuid[MODEM_UUID_STRING_MAX];
        int64_t device_type;
        char fw_uuid[MODEM_UUID_STRING_MAX];
        uint8_t nonce[16];
        int64_t alg;
        size_t signature_len;
} AttestToken;

int attest_decode(const char *text, size_t len, AttestToken *ret);
const char *attest_msg_type_to_string(int64_t t);
const char *attest_device_type_to_string(int64_t t);

/* 16 bytes → 8-4-4-4-12 lower case. */
void uuid_format(const uint8_t u[16], char ret[MODEM_UUID_STRING_MAX]);
