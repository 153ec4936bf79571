/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A bounded pull reader of CBOR over libcbor's streaming decoder
 * (cbor_stream_decode): one item head at a time, no allocation, no
 * recursion.  libcbor's cbor_load() would allocate a definite array or map
 * for its declared size up front; this reader never allocates, so a few
 * bytes that declare 2^60 items cost nothing.  Definite and indefinite
 * arrays and maps are both accepted (Zephyr's zcbor writes SMP responses as
 * indefinite maps unless CONFIG_ZCBOR_CANONICAL is set); indefinite strings
 * are refused where a string value is expected and skipped elsewhere.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CBOR_IN_DEPTH_MAX 8u
#define CBOR_IN_INDEFINITE UINT64_MAX

typedef enum CborKind {
        CBOR_KIND_UINT,
        CBOR_KIND_NEGINT,    /* the value is -1 - v */
        CBOR_KIND_BYTES,     /* definite */
        CBOR_KIND_TEXT,      /* definite */
        CBOR_KIND_STRING_START, /* an indefinite byte or text string */
        CBOR_KIND_ARRAY,     /* v items, or CBOR_IN_INDEFINITE */
        CBOR_KIND_MAP,       /* v pairs, or CBOR_IN_INDEFINITE */
        CBOR_KIND_TAG,
        CBOR_KIND_BOOL,
        CBOR_KIND_SIMPLE,    /* null, undefined, floats */
        CBOR_KIND_BREAK,
} CborKind;

typedef struct CborToken {
        CborKind kind;
        uint64_t v;
        const uint8_t *ptr; /* bytes and text */
        size_t len;
        bool b;
} CborToken;

typedef struct CborIn {
        const uint8_t *p;
        size_t len, pos;
        CborToken tok; /* filled by the callbacks */
} CborIn;

void cbor_in_init(CborIn *c, const uint8_t *p, size_t len);
bool cbor_in_at_end(const CborIn *c);

/* The next item head; -EBADMSG for malformed or truncated input. */
int cbor_in_next(CborIn *c, CborToken *ret);
/* Skips one whole item, nested items included (depth at most CBOR_IN_DEPTH_MAX). */
int cbor_in_skip(CborIn *c);

/* Typed reads; -EBADMSG for another type. */
int cbor_in_uint(CborIn *c, uint64_t *ret);
int cbor_in_int(CborIn *c, int64_t *ret);
int cbor_in_bool(CborIn *c, bool *ret);
int cbor_in_text(CborIn *c, const uint8_t **ret, size_t *ret_len);
int cbor_in_bytes(CborIn *c, const uint8_t **ret, size_t *ret_len);

/* Containers: *ret_left is the count of items (pairs for maps) or
 * CBOR_IN_INDEFINITE.  *_next return 1 while there is one more item (for a
 * map, its key is read and must be text: *ret_key), 0 at the end (the
 * break of an indefinite container is consumed). */
int cbor_in_array(CborIn *c, uint64_t *ret_left);
int cbor_in_array_next(CborIn *c, uint64_t *left);
int cbor_in_map(CborIn *c, uint64_t *ret_left);
int cbor_in_map_next(CborIn *c, uint64_t *left, CborToken *ret_key);
