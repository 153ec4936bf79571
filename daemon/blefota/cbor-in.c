/* SPDX-License-Identifier: MIT */
#include <cbor.h>
#include <errno.h>

#include "cbor-in.h"

#define SET(c, k, val) (*(CborIn *) (c)).tok = (CborToken) { .kind = (k), .v = (val) }

static void on_uint8(void *c, uint8_t v) { SET(c, CBOR_KIND_UINT, v); }
static void on_uint16(void *c, uint16_t v) { SET(c, CBOR_KIND_UINT, v); }
static void on_uint32(void *c, uint32_t v) { SET(c, CBOR_KIND_UINT, v); }
static void on_uint64(void *c, uint64_t v) { SET(c, CBOR_KIND_UINT, v); }
static void on_neg8(void *c, uint8_t v) { SET(c, CBOR_KIND_NEGINT, v); }
static void on_neg16(void *c, uint16_t v) { SET(c, CBOR_KIND_NEGINT, v); }
static void on_neg32(void *c, uint32_t v) { SET(c, CBOR_KIND_NEGINT, v); }
static void on_neg64(void *c, uint64_t v) { SET(c, CBOR_KIND_NEGINT, v); }
static void on_string_start(void *c) { SET(c, CBOR_KIND_STRING_START, 0); }
static void on_array(void *c, size_t n) { SET(c, CBOR_KIND_ARRAY, n); }
static void on_indef_array(void *c) { SET(c, CBOR_KIND_ARRAY, CBOR_IN_INDEFINITE); }
static void on_map(void *c, size_t n) { SET(c, CBOR_KIND_MAP, n); }
static void on_indef_map(void *c) { SET(c, CBOR_KIND_MAP, CBOR_IN_INDEFINITE); }
static void on_tag(void *c, uint64_t v) { SET(c, CBOR_KIND_TAG, v); }
static void on_simple(void *c) { SET(c, CBOR_KIND_SIMPLE, 0); }
static void on_float(void *c, float f) { (void) f; SET(c, CBOR_KIND_SIMPLE, 0); }
static void on_double(void *c, double d) { (void) d; SET(c, CBOR_KIND_SIMPLE, 0); }
static void on_break(void *c) { SET(c, CBOR_KIND_BREAK, 0); }

static void on_bool(void *c, bool b) {
        SET(c, CBOR_KIND_BOOL, 0);
        ((CborIn *) c)->tok.b = b;
}

static void on_string(CborIn *c, CborKind kind, cbor_data p, size_t n) {
        c->tok = (CborToken) { .kind = kind, .ptr = p, .len = n };
}
static void on_bytes(void *c, cbor_data p, size_t n) { on_string(c, CBOR_KIND_BYTES, p, n); }
static void on_text(void *c, cbor_data p, size_t n) { on_string(c, CBOR_KIND_TEXT, p, n); }

static const struct cbor_callbacks callbacks = {
        .uint8 = on_uint8,
        .uint16 = on_uint16,
        .uint32 = on_uint32,
        .uint64 = on_uint64,
        .negint8 = on_neg8,
        .negint16 = on_neg16,
        .negint32 = on_neg32,
        .negint64 = on_neg64,
        .byte_string_start = on_string_start,
        .byte_string = on_bytes,
        .string = on_text,
        .string_start = on_string_start,
        .indef_array_start = on_indef_array,
        .array_start = on_array,
        .indef_map_start = on_indef_map,
        .map_start = on_map,
        .tag = on_tag,
        .float2 = on_float,
        .float4 = on_float,
        .float8 = on_double,
        .undefined = on_simple,
        .null = on_simple,
        .boolean = on_bool,
        .indef_break = on_break,
};

void cbor_in_init(CborIn *c, const uint8_t *p, size_t len) {
        *c = (CborIn) { .p = p, .len = len };
}

bool cbor_in_at_end(const CborIn *c) {
        return c->pos == c->len;
}

int cbor_in_next(CborIn *c, CborToken *ret) {
        struct cbor_decoder_result res;

        if (c->pos >= c->len)
                return -EBADMSG;
        res = cbor_stream_decode(c->p + c->pos, c->len - c->pos, &callbacks, c);
        if (res.status != CBOR_DECODER_FINISHED || res.read == 0 || res.read > c->len - c->pos)
                return -EBADMSG;
        c->pos += res.read;
        /* Every item takes at least one byte: a count beyond what is left is a lie. */
        if ((c->tok.kind == CBOR_KIND_ARRAY || c->tok.kind == CBOR_KIND_MAP) && c->tok.v != CBOR_IN_INDEFINITE &&
            c->tok.v > (c->len - c->pos) / (c->tok.kind == CBOR_KIND_MAP ? 2 : 1))
                return -EBADMSG;
        *ret = c->tok;
        return 0;
}

int cbor_in_skip(CborIn *c) {
        /* left[d]: items still to read at depth d, or CBOR_IN_INDEFINITE. */
        uint64_t left[CBOR_IN_DEPTH_MAX + 1];
        int depth = 0;

        left[0] = 1;
        for (;;) {
                CborToken t;
                int r;

                while (depth >= 0 && left[depth] == 0)
                        depth--;
                if (depth < 0)
                        return 0;
                r = cbor_in_next(c, &t);
                if (r < 0)
                        return r;
                if (t.kind == CBOR_KIND_BREAK) {
                        if (left[depth] != CBOR_IN_INDEFINITE)
                                return -EBADMSG;
                        depth--;
                        continue;
                }
                if (left[depth] != CBOR_IN_INDEFINITE)
                        left[depth]--;
                if (t.kind == CBOR_KIND_ARRAY || t.kind == CBOR_KIND_MAP || t.kind == CBOR_KIND_TAG ||
                    t.kind == CBOR_KIND_STRING_START) {
                        if (depth + 1 > (int) CBOR_IN_DEPTH_MAX)
                                return -EBADMSG;
                        depth++;
                        if (t.kind == CBOR_KIND_TAG)
                                left[depth] = 1;
                        else if (t.kind == CBOR_KIND_STRING_START || t.v == CBOR_IN_INDEFINITE)
                                left[depth] = CBOR_IN_INDEFINITE;
                        else
                                left[depth] = t.kind == CBOR_KIND_MAP ? 2 * t.v : t.v;
                }
        }
}

static int next_of(CborIn *c, CborKind kind, CborToken *ret) {
        int r = cbor_in_next(c, ret);
        if (r < 0)
                return r;
        return ret->kind == kind ? 0 : -EBADMSG;
}

int cbor_in_uint(CborIn *c, uint64_t *ret) {
        CborToken t;
        int r = next_of(c, CBOR_KIND_UINT, &t);
        if (r < 0)
                return r;
        *ret = t.v;
        return 0;
}

int cbor_in_int(CborIn *c, int64_t *ret) {
        CborToken t;
        int r = cbor_in_next(c, &t);
        if (r < 0)
                return r;
        if ((t.kind != CBOR_KIND_UINT && t.kind != CBOR_KIND_NEGINT) || t.v > INT64_MAX)
                return -EBADMSG;
        *ret = t.kind == CBOR_KIND_UINT ? (int64_t) t.v : -1 - (int64_t) t.v;
        return 0;
}

int cbor_in_bool(CborIn *c, bool *ret) {
        CborToken t;
        int r = next_of(c, CBOR_KIND_BOOL, &t);
        if (r < 0)
                return r;
        *ret = t.b;
        return 0;
}

int cbor_in_text(CborIn *c, const uint8_t **ret, size_t *ret_len) {
        CborToken t;
        int r = next_of(c, CBOR_KIND_TEXT, &t);
        if (r < 0)
                return r;
        *ret = t.ptr;
        *ret_len = t.len;
        return 0;
}

int cbor_in_bytes(CborIn *c, const uint8_t **ret, size_t *ret_len) {
        CborToken t;
        int r = next_of(c, CBOR_KIND_BYTES, &t);
        if (r < 0)
                return r;
        *ret = t.ptr;
        *ret_len = t.len;
        return 0;
}

static int container(CborIn *c, CborKind kind, uint64_t *ret_left) {
        CborToken t;
        int r = next_of(c, kind, &t);
        if (r < 0)
                return r;
        *ret_left = t.v;
        return 0;
}

int cbor_in_array(CborIn *c, uint64_t *ret_left) {
        return container(c, CBOR_KIND_ARRAY, ret_left);
}

int cbor_in_map(CborIn *c, uint64_t *ret_left) {
        return container(c, CBOR_KIND_MAP, ret_left);
}

int cbor_in_array_next(CborIn *c, uint64_t *left) {
        if (*left == CBOR_IN_INDEFINITE) {
                if (c->pos >= c->len)
                        return -EBADMSG;
                if (c->p[c->pos] == 0xff) { /* break */
                        c->pos++;
                        return 0;
                }
                return 1;
        }
        if (*left == 0)
                return 0;
        (*left)--;
        return 1;
}

int cbor_in_map_next(CborIn *c, uint64_t *left, CborToken *ret_key) {
        int r = cbor_in_array_next(c, left);
        if (r <= 0)
                return r;
        r = next_of(c, CBOR_KIND_TEXT, ret_key);
        return r < 0 ? r : 1;
}
