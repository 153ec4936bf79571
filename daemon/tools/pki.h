/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The OpenSSL side of provisioning: the operator CA, the CSR the modem made,
 * the device certificate, and the exact text %CMNG receives (nrf91-at.md
 * §2.3, §3.5, §8.2).
 */

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

#define PKI_DAYS_DEFAULT 3650u
#define PKI_CA_CN_DEFAULT "nrfcloud-gateway operator CA"
#define PKI_PEM_FILE_MAX (64u * 1024u)

/* EC P-256, SHA-256, CA:TRUE, keyCertSign/cRLSign, SKI/AKI; DIR/ca.pem and DIR/ca-key.pem (0600), never overwritten. */
int pki_ca_create(const char *dir, const char *cn, unsigned days, char **ret_cert_path, char **ret_key_path,
                  char *err, size_t errlen);
/* Loads the CA and checks that the key belongs to the certificate and that it is a CA. */
int pki_ca_load(const char *cert_path, const char *key_path, X509 **ret_cert, EVP_PKEY **ret_key, char *err,
                size_t errlen);

/* Parses the CSR DER and checks its self-signature. */
int pki_csr_parse(const uint8_t *der, size_t len, X509_REQ **ret);
/* The subject CN of the CSR. */
int pki_csr_common_name(X509_REQ *req, char **ret);
/* subject = CSR subject, issuer = CA, CSR key, random serial, now .. now + days, SHA-256, no extensions. */
int pki_sign_csr(X509_REQ *req, X509 *ca, EVP_PKEY *ca_key, unsigned days, X509 **ret);

int pki_cert_to_pem(X509 *cert, char **ret);
/* Every line ending as CR LF, as Nordic's tools send credentials (the modem hashes exactly this text). */
char *pki_crlf_normalize(const char *text);
/* Upper-case hex SHA-256, as %CMNG lists it. */
void pki_sha256_hex(const void *data, size_t len, char out[65]);
/* Reads a small PEM file; -EFBIG beyond PKI_PEM_FILE_MAX. */
int pki_read_text_file(const char *path, char **ret);
/* Checks that text holds at least one certificate that OpenSSL can read. */
int pki_check_certificates(const char *pem);
