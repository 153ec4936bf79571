/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Parsers for the identity and credential lines of the nRF91 (nrf91-at.md
 * §1, §2, §5; modem-link.md "Firmware commands").  Pure, cursor based, each
 * takes one information line without its terminator.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MODEM_UUID_STRING_MAX 37 /* 8-4-4-4-12 and NUL */
#define MODEM_IMEI_STRING_MAX 16 /* 15 digits and NUL */
#define MODEM_VERSION_MAX 64     /* firmware version strings are refused beyond this */
#define MODEM_JWT_MAX 2048       /* "~820 bytes with long sub and aud" (§5.2); refused beyond */
#define MODEM_SEC_TAG_MAX 2147483647u /* user tags; the modem may list larger reserved ones */

/* Credential types of %CMNG (§2.2). */
typedef enum CredType {
        CRED_ROOT_CA = 0,
        CRED_CLIENT_CERT = 1,
        CRED_CLIENT_KEY = 2,
        CRED_PSK = 3,
        CRED_PSK_IDENTITY = 4,
        CRED_PUBLIC_KEY = 5,
        CRED_DEVICE_IDENTITY_PUBLIC_KEY = 6,
        CRED_RESERVED = 7,
        CRED_ENDORSEMENT_KEY = 8,
        CRED_OWNERSHIP_KEY = 9,
        CRED_NORDIC_ID_ROOT_CA = 10,
        CRED_NORDIC_PUBLIC_KEY = 11,
        _CRED_TYPE_MAX,
} CredType;

const char *cred_type_to_string(CredType t);

typedef struct CmngEntry {
        uint32_t sec_tag;
        CredType type;
        bool has_sha;
        char sha256[65]; /* upper-case hex as the modem prints it */
} CmngEntry;

/* "%CMNG: <sec_tag>,<type>[,"<sha>"]" with optional spaces after commas. */
int at_parse_cmng_list(const char *line, CmngEntry *ret);

/* "#XUUID: <8-4-4-4-12>" → lower-case UUID string. */
int at_parse_xuuid(const char *line, char ret[MODEM_UUID_STRING_MAX]);
/* Checks the 8-4-4-4-12 hex form. */
bool uuid_string_is_valid(const char *s);

/* "+CGSN: "<15 digits>"" (AT+CGSN=1) → IMEI. */
int at_parse_cgsn(const char *line, char ret[MODEM_IMEI_STRING_MAX]);
/* The bare "mfw_nrf9160_1.3.5" line of AT+CGMR → a copy. */
int at_parse_cgmr(const char *line, char **ret);
/* "#XSMVER: "<fw>","<sdk>"[,...]" → copies of fw and sdk (ret_sdk may be NULL). */
int at_parse_smver(const char *line, char **ret_fw, char **ret_sdk);
/* "+CFUN: <n>" → n. */
int at_parse_cfun(const char *line, unsigned *ret);
/*
 * "+CESQ: <rxlev>,<ber>,<rscp>,<ecno>,<rsrq>,<rsrp>" (3GPP TS 27.007 §8.69) → LTE RSRP in dBm
 * (<rsrp> 0..97: <rsrp> - 141) and RSRQ in tenths of a dB (<rsrq> 0..34: <rsrq> * 5 - 200), each
 * AT_CESQ_UNKNOWN when the modem says 255 (not known or not detectable).
 */
#define AT_CESQ_UNKNOWN INT32_MIN
int at_parse_cesq(const char *line, int32_t *ret_rsrp, int32_t *ret_rsrq);
/* "<prefix>: "<text>"" (%JWT, %KEYGEN, %ATTESTTOKEN) → a copy of text, at most max bytes. */
int at_parse_quoted(const char *line, const char *prefix, size_t max, char **ret);

/* Redacts an IMEI for logs: the TAC and the check digit stay, the serial number goes. */
const char *imei_redact(const char *imei, char buf[MODEM_IMEI_STRING_MAX]);
/* Parses "1.3.5" out of "mfw_nrf9160_1.3.5" (nrf91-at.md §1.2). */
int mfw_version_parse(const char *s, unsigned ret[3]);
