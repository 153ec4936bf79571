/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Helpers shared by the nRF Cloud codecs: capped JSON parsing, Bluetooth
 * address and UUID normalisation, byte arrays, and the error record that
 * names the offending field.  Pure: no I/O, no globals, no logging.
 */

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bt-id.h"
#include "macro.h"

/* "AA:BB:CC:DD:EE:FF" */
#define BT_ADDR_STR_LEN (BT_ADDR_STR_MAX - 1)
/* 16-bit UUIDs as 4 hex digits, 128-bit UUIDs as 32 hex digits. */
#define UUID_STR_MAX (BT_UUID_STR_MAX - 1)
/* Largest attribute value (Bluetooth Core, Vol 3 Part F 3.2.9). */
#define GATT_VALUE_MAX 512

#define CODEC_FIELD_MAX 96
#define CODEC_DESCRIPTION_MAX 160

/* What was wrong with a document, and where. field is a path such as
 * "operation.characteristicValue[3]", or "" for the document as a whole. */
typedef struct CodecError {
        char field[CODEC_FIELD_MAX];
        char description[CODEC_DESCRIPTION_MAX];
} CodecError;

/* Fills e (when not NULL) and returns r, so that callers can write
 * "return codec_error(e, -EBADMSG, "operation.id", "not a string");". */
int codec_error(CodecError *e, int r, const char *field, const char *format, ...) _printf_(4, 5);

/* Parses one JSON object or array of at most max_size bytes nested at most
 * max_depth deep.  The depth is checked on the raw bytes before jansson
 * sees them, so a hostile peer cannot make the parser recurse.  Duplicate
 * keys are refused.  -EMSGSIZE over the size cap, -ELOOP over the depth cap,
 * -EBADMSG for anything that is not JSON. */
int codec_json_parse(const void *data, size_t size, size_t max_size, unsigned max_depth,
                     json_t **ret, CodecError *e);

/* Serialises compactly (no whitespace, keys in insertion order). */
int codec_json_dump(const json_t *j, char **ret);

/* The address type that travels with an address in nRF Cloud JSON
 * ("address":{"address":"...","type":"random"}).  UNSPECIFIED: not sent. */
typedef enum BtAddrType {
        BT_ADDR_TYPE_UNSPECIFIED,
        BT_ADDR_TYPE_PUBLIC,
        BT_ADDR_TYPE_RANDOM,
        BT_ADDR_TYPE_RANDOM_STATIC,
        _BT_ADDR_TYPE_MAX,
        _BT_ADDR_TYPE_INVALID = -EINVAL,
} BtAddrType;

/* "public", "random", "randomStatic"; NULL for UNSPECIFIED. */
const char *bt_addr_type_to_string(BtAddrType t);
BtAddrType bt_addr_type_from_string(const char *s);

/* Addresses and UUIDs in nRF Cloud's spelling: one implementation for the
 * codecs and the BLE layer, in bt-id.h. */
static inline bool bt_addr_is_valid(const char *s) {
        return bt_address_is_valid(s);
}
static inline int bt_addr_normalize(const char *s, char ret[static BT_ADDR_STR_LEN + 1]) {
        return bt_address_normalize(s, ret);
}
static inline int uuid_normalize(const char *s, char ret[static UUID_STR_MAX + 1]) {
        return bt_uuid_normalize(s, ret);
}

/* A byte value as nRF Cloud sends it: an array of integers 0..255, or a
 * string whose bytes are the value.  At most max bytes.  Writes the bytes
 * to buf, only on success.  Errors name field. */
int codec_json_get_bytes(const json_t *v, const char *field, uint8_t *buf, size_t max,
                         size_t *ret_len, CodecError *e);
/* [b0,b1,...] */
json_t *codec_json_bytes(const uint8_t *data, size_t len);

/* Object members with type checks.  Missing members give -ENOENT without
 * touching e; members of the wrong type give -EBADMSG naming the field. */
int codec_json_get_string(const json_t *obj, const char *key, const char *field_prefix,
                          size_t max_len, const char **ret, CodecError *e);
int codec_json_get_int(const json_t *obj, const char *key, const char *field_prefix,
                       int64_t min, int64_t max, int64_t *ret, CodecError *e);

/* jansson provides json_decrefp() for this. */
#define _cleanup_json_ _cleanup_(json_decrefp)
