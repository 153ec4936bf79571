/* SPDX-License-Identifier: MIT */
#pragma once

/* OpenSSL and libcbor helpers of the emulated modem (internal). */

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int emu_random(void *buf, size_t len);
void emu_sha256(const void *data, size_t len, uint8_t out[32]);
void emu_hex(const uint8_t *data, size_t len, bool upper, char *out); /* out: 2*len+1 */
int emu_unhex(const char *s, size_t len, uint8_t *out);               /* len even, out len/2 */

/* base64url without padding; malloc'd, NULL on OOM. */
char *emu_b64url(const uint8_t *data, size_t len);

EVP_PKEY *emu_p256_generate(void);
/* PKCS#8 PEM text, malloc'd. */
char *emu_pkey_to_pem(EVP_PKEY *k);
/* A private key from PEM (optionally encrypted PKCS#8 with passwd); NULL if unreadable. */
EVP_PKEY *emu_pkey_from_pem(const char *pem, size_t len, const char *passwd);
bool emu_pkey_is_p256(EVP_PKEY *k);
/* DER SubjectPublicKeyInfo of the key; malloc'd. */
int emu_spki_der(EVP_PKEY *k, uint8_t **ret, size_t *ret_len);
/* ECDSA P-256 / SHA-256 over data, as raw r||s. */
int emu_es256_sign(EVP_PKEY *k, const void *data, size_t len, uint8_t sig[64]);

/*
 * A PKCS#10 CSR in DER signed by key, the way the modem makes it: subject from
 * attrs ("O=...,CN=...") or CN=default_cn, a KeyUsage extension request from
 * key_usage (9 bits, X.509 order, bit 0 = digitalSignature), and
 * ecdsa-with-SHA256 with explicit NULL parameters.  -EINVAL for bad attrs.
 */
int emu_csr_der(EVP_PKEY *key, const char *attrs, size_t attrs_len, const char *default_cn,
                unsigned key_usage, uint8_t **ret, size_t *ret_len);

/* CBOR: Tag(55799, [9 or 8, uuid16, bstr(CBOR(sec_tag)), sha256(body), nonce16]). */
int emu_keygen_payload(int payload_id, const uint8_t uuid[16], uint32_t sec_tag, const uint8_t sha[32],
                       const uint8_t nonce[16], uint8_t **ret, size_t *ret_len);
/* CBOR: Tag(55799, [1, uuid16, device_type, fw_uuid16, nonce16]). */
int emu_attest_body(const uint8_t uuid[16], int device_type, const uint8_t fw_uuid[16], const uint8_t nonce[16],
                    uint8_t **ret, size_t *ret_len);
/*
 * COSE_Sign1 Tag(18, [bstr({1:-7}), {4: bstr(CBOR(-2))}, payload or nil, sig64]) signed with
 * key over Sig_structure ["Signature1", protected, h'', payload].
 */
int emu_cose_sign1(EVP_PKEY *key, const uint8_t *payload, size_t payload_len, bool detached, uint8_t **ret,
                   size_t *ret_len);
