/* SPDX-License-Identifier: MIT */
/*
 * The MCUmgr SMP codec against frames written out by hand from the protocol
 * description: Zephyr's doc/services/device_mgmt/smp_protocol.rst (the
 * 8-byte header: op/version byte, flags, big-endian length and group,
 * sequence, command id), smp_groups/smp_group_0.rst (OS reset, group 0 id 5)
 * and smp_group_1.rst (image state read/set id 0, upload id 1, erase id 5,
 * their request and response maps), and the encoder of Zephyr's
 * img_mgmt_state.c, which writes the image list with indefinite-length maps
 * (zcbor without CONFIG_ZCBOR_CANONICAL).  CBOR bytes follow RFC 8949.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smp.h"

static uint8_t frame[SMP_FRAME_MAX];

/* ---- header ---- */

static void test_header_roundtrip(void **state) {
        (void) state;
        /* Write response, SMP v2, 0x1234 payload bytes, group 1, seq 0xfe, id 1. */
        const uint8_t bytes[] = { 0x0b, 0x00, 0x12, 0x34, 0x00, 0x01, 0xfe, 0x01 };
        SmpHeader h;
        uint8_t out[8];

        assert_int_equal(smp_header_unpack(bytes, sizeof bytes, &h), 0);
        assert_int_equal(h.op, SMP_OP_WRITE_RSP);
        assert_int_equal(h.version, SMP_VERSION_2);
        assert_int_equal(h.length, 0x1234);
        assert_int_equal(h.group, SMP_GROUP_IMAGE);
        assert_int_equal(h.seq, 0xfe);
        assert_int_equal(h.id, SMP_IMG_ID_UPLOAD);
        smp_header_pack(&h, out);
        assert_memory_equal(out, bytes, 8);

        /* Short, reserved bits set, op 4..7. */
        assert_int_equal(smp_header_unpack(bytes, 7, &h), -EBADMSG);
        assert_int_equal(smp_header_unpack((const uint8_t[]) { 0x23, 0, 0, 0, 0, 0, 0, 0 }, 8, &h), -EBADMSG);
        assert_int_equal(smp_header_unpack((const uint8_t[]) { 0x04, 0, 0, 0, 0, 0, 0, 0 }, 8, &h), -EBADMSG);
}

/* ---- requests ---- */

static void test_encode_state_read(void **state) {
        (void) state;
        /* op read, v1, length 1, group 1 (image), seq 0, id 0 (state); payload {} */
        const uint8_t want[] = { 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0xa0 };
        size_t n;

        assert_int_equal(smp_encode_image_state_read(frame, sizeof frame, SMP_VERSION_1, 0, &n), 0);
        assert_int_equal(n, sizeof want);
        assert_memory_equal(frame, want, n);
        assert_int_equal(smp_encode_image_state_read(frame, 8, SMP_VERSION_1, 0, &n), -ENOBUFS);
        assert_int_equal(smp_encode_image_state_read(frame, sizeof frame, 2, 0, &n), -EINVAL);
}

static void test_encode_upload_first(void **state) {
        (void) state;
        uint8_t sha[32], data[] = { 0xde, 0xad, 0xbe, 0xef };
        uint8_t want[8 + 68];
        size_t n, k = 0;

        memset(sha, 0x11, sizeof sha);
        /* op write, v1, 68 payload bytes, group 1, seq 7, id 1 (upload) */
        memcpy(want, (const uint8_t[]) { 0x02, 0x00, 0x00, 0x44, 0x00, 0x01, 0x07, 0x01 }, 8);
        k = 8;
#define PUT(...)                                                  \
        do {                                                      \
                const uint8_t b_[] = { __VA_ARGS__ };             \
                memcpy(want + k, b_, sizeof b_);                  \
                k += sizeof b_;                                   \
        } while (0)
        PUT(0xa5);                                          /* map(5) */
        PUT(0x65, 'i', 'm', 'a', 'g', 'e', 0x00);           /* "image": 0 */
        PUT(0x63, 'l', 'e', 'n', 0x19, 0x10, 0x00);         /* "len": 4096 */
        PUT(0x63, 's', 'h', 'a', 0x58, 0x20);               /* "sha": bstr(32) */
        memcpy(want + k, sha, 32);
        k += 32;
        PUT(0x63, 'o', 'f', 'f', 0x00);                     /* "off": 0 */
        PUT(0x64, 'd', 'a', 't', 'a', 0x44, 0xde, 0xad, 0xbe, 0xef); /* "data": h'deadbeef' */
        assert_int_equal(k, sizeof want);

        SmpUpload u = { .total_len = 4096, .sha = sha, .sha_len = 32, .off = 0, .data = data, .data_len = 4 };
        assert_int_equal(smp_encode_upload(frame, sizeof frame, SMP_VERSION_1, 7, &u, &n), 0);
        assert_int_equal(n, sizeof want);
        assert_memory_equal(frame, want, n);
        /* One byte short of room. */
        assert_int_equal(smp_encode_upload(frame, n - 1, SMP_VERSION_1, 7, &u, &n), -ENOBUFS);
}

static void test_encode_upload_later(void **state) {
        (void) state;
        uint8_t data[3] = { 1, 2, 3 };
        /* op write, v2 (0x08), 17 bytes, group 1, seq 8, id 1; {"off": 512, "data": h'010203'} */
        const uint8_t want[] = { 0x0a, 0x00, 0x00, 0x11, 0x00, 0x01, 0x08, 0x01, 0xa2, 0x63, 'o', 'f', 'f', 0x19,
                                 0x02, 0x00, 0x64, 'd', 'a', 't', 'a', 0x43, 1, 2, 3 };
        SmpUpload u = { .total_len = 4096, .off = 512, .data = data, .data_len = 3 };
        size_t n;

        assert_int_equal(smp_encode_upload(frame, sizeof frame, SMP_VERSION_2, 8, &u, &n), 0);
        assert_int_equal(n, sizeof want);
        assert_memory_equal(frame, want, n);

        /* Data beyond the image, a sha too long. */
        u.off = 4094;
        assert_int_equal(smp_encode_upload(frame, sizeof frame, SMP_VERSION_2, 8, &u, &n), -EINVAL);
        u.off = 0;
        u.sha = data;
        u.sha_len = 33;
        assert_int_equal(smp_encode_upload(frame, sizeof frame, SMP_VERSION_2, 8, &u, &n), -EINVAL);
}

static void test_encode_state_set_and_reset(void **state) {
        (void) state;
        uint8_t hash[32];
        size_t n;

        memset(hash, 0xab, sizeof hash);
        assert_int_equal(smp_encode_image_state_set(frame, sizeof frame, SMP_VERSION_2, 9, hash, 32, false, &n), 0);
        /* op write v2, 49 bytes, group 1, seq 9, id 0; {"hash": h'ab..', "confirm": false} */
        assert_int_equal(n, 8 + 49);
        assert_memory_equal(frame, ((const uint8_t[]) { 0x0a, 0x00, 0x00, 0x31, 0x00, 0x01, 0x09, 0x00, 0xa2, 0x64,
                                                        'h', 'a', 's', 'h', 0x58, 0x20 }),
                            16);
        assert_memory_equal(frame + 16, hash, 32);
        assert_memory_equal(frame + 48, ((const uint8_t[]) { 0x67, 'c', 'o', 'n', 'f', 'i', 'r', 'm', 0xf4 }), 9);

        /* Confirm the running image: {"confirm": true} */
        assert_int_equal(smp_encode_image_state_set(frame, sizeof frame, SMP_VERSION_1, 1, NULL, 0, true, &n), 0);
        assert_int_equal(n, 8 + 10);
        assert_memory_equal(frame + 8, ((const uint8_t[]) { 0xa1, 0x67, 'c', 'o', 'n', 'f', 'i', 'r', 'm', 0xf5 }),
                            10);
        /* A test needs a hash. */
        assert_int_equal(smp_encode_image_state_set(frame, sizeof frame, SMP_VERSION_1, 1, NULL, 0, false, &n),
                         -EINVAL);

        /* OS reset: op write, group 0, id 5, {} */
        assert_int_equal(smp_encode_os_reset(frame, sizeof frame, SMP_VERSION_1, 5, false, &n), 0);
        assert_int_equal(n, 9);
        assert_memory_equal(frame, ((const uint8_t[]) { 0x02, 0x00, 0x00, 0x01, 0x00, 0x00, 0x05, 0x05, 0xa0 }), 9);
        /* Erase of slot 1: {"slot": 1} */
        assert_int_equal(smp_encode_image_erase(frame, sizeof frame, SMP_VERSION_1, 6, 1, &n), 0);
        assert_memory_equal(frame, ((const uint8_t[]) { 0x02, 0x00, 0x00, 0x07, 0x00, 0x01, 0x06, 0x05, 0xa1, 0x64,
                                                        's', 'l', 'o', 't', 0x01 }),
                            15);
}

static void test_chunk_max(void **state) {
        (void) state;
        uint8_t sha[32] = {}, *data;
        struct {
                size_t frame_max;
                uint64_t off;
                bool sha;
                size_t want;
        } cases[] = {
                /* ATT MTU 247 → 244 bytes a write.  First chunk: 8 header + a5 + "image" 0 (7)
                 * + "len" 262144 (4+5) + "sha" (4+2+32) + "off" 0 (5) + "data" (5) = 73, and
                 * a 2-byte bstr head: 169 bytes. */
                { 244, 0, true, 169 },
                /* Later chunk at 169: 8 + a2 + "off" 18 a9 (6) + "data" (5) = 20, head 2: 222. */
                { 244, 169, false, 222 },
                /* At 65536 "off" takes 5 bytes: 8 + 1 + 4 + 5 + 5 = 23, head 2: 219. */
                { 244, 65536, false, 219 },
                /* The last 100 bytes of the image: never more than is left. */
                { 244, 262144 - 100, false, 100 },
                /* MTU 23: 20 bytes; 20 of header and keys leave nothing. */
                { 20, 169, false, 0 },
                /* 30 bytes at offset 1: 8+1+5+5 = 19, 11 left: head 1 + 10. */
                { 30, 1, false, 10 },
                /* 45 bytes at offset 1: 19 fixed, 26 left: 24 with a 2-byte head (25 would need 27). */
                { 45, 1, false, 24 },
                /* ATT MTU 100: a first chunk with "sha" holds fewer bytes than the MCUboot
                 * header that Zephyr wants in it (see smp.h); 107 bytes just do. */
                { 97, 0, true, 23 },
                { 107, 0, true, SMP_UPLOAD_FIRST_CHUNK_MIN },
        };

        data = calloc(1, 262144);
        assert_non_null(data);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                SmpUpload u = { .total_len = 262144, .off = cases[i].off, .sha = cases[i].sha ? sha : NULL,
                                .sha_len = cases[i].sha ? 32 : 0, .data = data };
                size_t d = smp_upload_chunk_max(cases[i].frame_max, &u), n;

                assert_int_equal(d, cases[i].want);
                if (d == 0)
                        continue;
                /* It fits, and one byte more does not (unless the image ends there). */
                u.data_len = d;
                assert_int_equal(smp_encode_upload(frame, cases[i].frame_max, SMP_VERSION_2, 0, &u, &n), 0);
                assert_true(n <= cases[i].frame_max);
                if (u.off + d < u.total_len) {
                        u.data_len = d + 1;
                        assert_int_equal(smp_encode_upload(frame, cases[i].frame_max, SMP_VERSION_2, 0, &u, &n),
                                         -ENOBUFS);
                }
        }
        free(data);
}

/* ---- responses ---- */

static void test_decode_upload_rsp(void **state) {
        (void) state;
        /* v1: write rsp, 12 bytes, group 1, seq 5, id 1; {"rc": 0, "off": 512} */
        const uint8_t v1[] = { 0x03, 0x00, 0x00, 0x0c, 0x00, 0x01, 0x05, 0x01, 0xa2, 0x62, 'r', 'c', 0x00,
                               0x63, 'o', 'f', 'f', 0x19, 0x02, 0x00 };
        /* v2 as zcbor writes it: indefinite map {"off": 262144, "match": true} */
        const uint8_t v2[] = { 0x0b, 0x00, 0x00, 0x12, 0x00, 0x01, 0x06, 0x01, 0xbf, 0x63, 'o', 'f', 'f', 0x1a,
                               0x00, 0x04, 0x00, 0x00, 0x65, 'm', 'a', 't', 'c', 'h', 0xf5, 0xff };
        SmpResponse r;
        uint16_t g = 0;

        assert_int_equal(smp_decode_response(v1, sizeof v1, &r), 0);
        assert_int_equal(r.hdr.seq, 5);
        assert_true(r.has_rc && r.rc == 0);
        assert_true(r.has_off && r.off == 512);
        assert_false(r.has_match);
        assert_int_equal(smp_response_status(&r, &g), 0);

        assert_int_equal(smp_decode_response(v2, sizeof v2, &r), 0);
        assert_int_equal(r.hdr.version, SMP_VERSION_2);
        assert_false(r.has_rc);
        assert_true(r.has_off && r.off == 262144);
        assert_true(r.has_match && r.match);

        /* Length in the header does not match, trailing bytes, a request. */
        assert_int_equal(smp_decode_response(v1, sizeof v1 - 1, &r), -EBADMSG);
        uint8_t bad[sizeof v1 + 1];
        memcpy(bad, v1, sizeof v1);
        bad[sizeof v1] = 0;
        bad[3] = 0x0d;
        assert_int_equal(smp_decode_response(bad, sizeof bad, &r), -EBADMSG);
        memcpy(bad, v1, sizeof v1);
        bad[0] = 0x02;
        assert_int_equal(smp_decode_response(bad, sizeof v1, &r), -EPROTO);
}

static void test_decode_errors(void **state) {
        (void) state;
        /* v2: {"err": {"group": 1, "rc": 8}} — image state set of an unknown hash
         * (Zephyr img_mgmt_state_write: IMG_MGMT_ERR_HASH_NOT_FOUND). */
        const uint8_t v2[] = { 0x0b, 0x00, 0x00, 0x13, 0x00, 0x01, 0x02, 0x00, 0xbf, 0x63, 'e', 'r', 'r',
                               0xbf, 0x65, 'g', 'r', 'o', 'u', 'p', 0x01, 0x62, 'r', 'c', 0x08, 0xff, 0xff };
        /* v1: {"rc": 3} (MGMT_ERR_EINVAL) */
        const uint8_t v1[] = { 0x03, 0x00, 0x00, 0x05, 0x00, 0x01, 0x02, 0x00, 0xa1, 0x62, 'r', 'c', 0x03 };
        SmpResponse r;
        uint16_t g = 0;

        assert_int_equal(smp_decode_response(v2, sizeof v2, &r), 0);
        assert_true(r.has_err);
        assert_int_equal(r.err_group, SMP_GROUP_IMAGE);
        assert_int_equal(r.err_rc, SMP_IMG_ERR_HASH_NOT_FOUND);
        assert_int_equal(smp_response_status(&r, &g), SMP_IMG_ERR_HASH_NOT_FOUND);
        assert_int_equal(g, SMP_GROUP_IMAGE);
        assert_string_equal(smp_img_err_to_string(r.err_rc), "hash not found");

        assert_int_equal(smp_decode_response(v1, sizeof v1, &r), 0);
        assert_int_equal(smp_response_status(&r, &g), SMP_MGMT_EINVAL);
        assert_int_equal(g, SMP_GROUP_GENERIC);
        assert_string_equal(smp_mgmt_err_to_string(r.rc), "invalid argument");

        /* "err" without "rc"; "rc" as text; "rc" twice. */
        const uint8_t no_rc[] = { 0x03, 0x00, 0x00, 0x0d, 0x00, 0x01, 0x02, 0x00, 0xa1, 0x63, 'e', 'r', 'r',
                                  0xa1, 0x65, 'g', 'r', 'o', 'u', 'p', 0x01 };
        const uint8_t rc_text[] = { 0x03, 0x00, 0x00, 0x05, 0x00, 0x01, 0x02, 0x00, 0xa1, 0x62, 'r', 'c', 0x60 };
        const uint8_t rc_twice[] = { 0x03, 0x00, 0x00, 0x09, 0x00, 0x01, 0x02, 0x00, 0xa2, 0x62, 'r', 'c', 0x00,
                                     0x62, 'r', 'c', 0x00 };
        assert_int_equal(smp_decode_response(no_rc, sizeof no_rc, &r), -EBADMSG);
        assert_int_equal(smp_decode_response(rc_text, sizeof rc_text, &r), -EBADMSG);
        assert_int_equal(smp_decode_response(rc_twice, sizeof rc_twice, &r), -EBADMSG);
}

/* Zephyr's image list of a single-image device after an upload: slot 0 runs
 * 1.0.0 (active, confirmed), slot 1 holds 1.1.0 marked for test (pending). */
static size_t image_list(uint8_t *out, uint8_t seq) {
        size_t k = 8;
#undef PUT
#define PUT(...)                                                  \
        do {                                                      \
                const uint8_t b_[] = { __VA_ARGS__ };             \
                memcpy(out + k, b_, sizeof b_);                   \
                k += sizeof b_;                                   \
        } while (0)
        PUT(0xbf, 0x66, 'i', 'm', 'a', 'g', 'e', 's', 0x9f); /* {_ "images": [_ */
        for (int slot = 0; slot < 2; slot++) {
                PUT(0xbf, 0x64, 's', 'l', 'o', 't', (uint8_t) slot);
                PUT(0x67, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x65, '1', '.', (uint8_t) ('0' + slot), '.', '0');
                PUT(0x64, 'h', 'a', 's', 'h', 0x58, 0x20);
                memset(out + k, 0xa0 + slot, 32);
                k += 32;
                PUT(0x68, 'b', 'o', 'o', 't', 'a', 'b', 'l', 'e', 0xf5);
                PUT(0x67, 'p', 'e', 'n', 'd', 'i', 'n', 'g', slot ? 0xf5 : 0xf4);
                PUT(0x69, 'c', 'o', 'n', 'f', 'i', 'r', 'm', 'e', 'd', slot ? 0xf4 : 0xf5);
                PUT(0x66, 'a', 'c', 't', 'i', 'v', 'e', slot ? 0xf4 : 0xf5);
                PUT(0x69, 'p', 'e', 'r', 'm', 'a', 'n', 'e', 'n', 't', 0xf4);
                PUT(0xff);
        }
        PUT(0xff, 0x6b, 's', 'p', 'l', 'i', 't', 'S', 't', 'a', 't', 'u', 's', 0x00, 0xff);
        smp_header_pack(&(SmpHeader) { .op = SMP_OP_READ_RSP, .version = SMP_VERSION_2, .length = (uint16_t) (k - 8),
                                       .group = SMP_GROUP_IMAGE, .seq = seq, .id = SMP_IMG_ID_STATE },
                        out);
        return k;
}

static void test_decode_image_list(void **state) {
        (void) state;
        size_t n = image_list(frame, 3);
        SmpResponse r;

        assert_int_equal(smp_decode_response(frame, n, &r), 0);
        assert_true(r.has_images);
        assert_int_equal(r.n_images, 2);
        assert_int_equal(r.images[0].slot, 0);
        assert_string_equal(r.images[0].version, "1.0.0");
        assert_int_equal(r.images[0].hash_len, 32);
        assert_int_equal(r.images[0].hash[31], 0xa0);
        assert_true(r.images[0].active && r.images[0].confirmed && r.images[0].bootable);
        assert_false(r.images[0].pending || r.images[0].permanent);
        assert_int_equal(r.images[1].slot, 1);
        assert_string_equal(r.images[1].version, "1.1.0");
        assert_true(r.images[1].pending && !r.images[1].active && !r.images[1].confirmed);
        assert_int_equal(r.images[1].hash[0], 0xa1);
        assert_int_equal(smp_response_status(&r, NULL), 0);

        /* Every truncation is refused (the length in the header is kept). */
        for (size_t cut = 9; cut < n; cut++) {
                uint8_t copy[SMP_FRAME_MAX];
                memcpy(copy, frame, cut);
                copy[2] = (uint8_t) ((cut - 8) >> 8);
                copy[3] = (uint8_t) (cut - 8);
                assert_int_equal(smp_decode_response(copy, cut, &r), -EBADMSG);
        }
}

static void test_decode_bounds(void **state) {
        (void) state;
        SmpResponse r;
        /* {"x": [2^60 items]} announced in 9 bytes */
        const uint8_t huge[] = { 0x03, 0x00, 0x00, 0x0c, 0x00, 0x01, 0x00, 0x00, 0xa1, 0x61, 'x', 0x9b,
                                 0x10, 0, 0, 0, 0, 0, 0, 0 };
        assert_int_equal(smp_decode_response(huge, sizeof huge, &r), -EBADMSG);

        /* An unknown key whose value nests 9 deep is refused; 7 deep is skipped. */
        uint8_t deep[64] = { 0x03, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0xa1, 0x61, 'x' };
        for (int depth = 7; depth <= 9; depth += 2) {
                size_t k = 11;
                for (int i = 0; i < depth; i++)
                        deep[k++] = 0x81; /* [ */
                deep[k++] = 0x00;
                deep[3] = (uint8_t) (k - 8);
                assert_int_equal(smp_decode_response(deep, k, &r), depth <= 8 ? 0 : -EBADMSG);
        }

        /* Nine images. */
        uint8_t many[256] = { 0x03, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0xa1, 0x66, 'i', 'm', 'a', 'g', 'e', 's',
                              0x89 };
        size_t k = 17;
        for (int i = 0; i < 9; i++) {
                const uint8_t img[] = { 0xa1, 0x64, 's', 'l', 'o', 't', 0x00 };
                memcpy(many + k, img, sizeof img);
                k += sizeof img;
        }
        many[3] = (uint8_t) (k - 8);
        assert_int_equal(smp_decode_response(many, k, &r), -EBADMSG);
        many[16] = 0x88; /* eight fit */
        many[3] = (uint8_t) (k - 8 - 7);
        assert_int_equal(smp_decode_response(many, k - 7, &r), 0);
        assert_int_equal(r.n_images, 8);

        /* A version string that does not fit, a hash of 65 bytes. */
        uint8_t v[128] = { 0x03, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0xa1, 0x66, 'i', 'm', 'a', 'g', 'e', 's',
                           0x81, 0xa2, 0x64, 's', 'l', 'o', 't', 0x00, 0x67, 'v', 'e', 'r', 's', 'i', 'o', 'n',
                           0x78, 48 };
        memset(v + 34, '1', 48);
        v[3] = (uint8_t) (34 + 48 - 8);
        assert_int_equal(smp_decode_response(v, 34 + 48, &r), -EBADMSG);
        v[33] = 47;
        v[3] = (uint8_t) (34 + 47 - 8);
        assert_int_equal(smp_decode_response(v, 34 + 47, &r), 0);
        assert_int_equal(strlen(r.images[0].version), 47);
}

/* ---- reassembly ---- */

static void test_reassembly(void **state) {
        (void) state;
        uint8_t list[SMP_FRAME_MAX];
        size_t n = image_list(list, 4);
        SmpReassembler *ra = calloc(1, sizeof *ra);
        const uint8_t *out;
        size_t out_len;
        SmpResponse r;

        assert_non_null(ra);
        /* MTU 23: notifications of 20 bytes, the header itself split at 3. */
        for (int round = 0; round < 2; round++) {
                size_t pos = 0;
                int rr = 0;

                assert_int_equal(smp_reassembler_feed(ra, list, 3, &out, &out_len), 0);
                pos = 3;
                while (pos < n) {
                        size_t k = n - pos < 20 ? n - pos : 20;
                        rr = smp_reassembler_feed(ra, list + pos, k, &out, &out_len);
                        pos += k;
                        assert_int_equal(rr, pos == n ? 1 : 0);
                }
                assert_int_equal(out_len, n);
                assert_memory_equal(out, list, n);
                assert_int_equal(smp_decode_response(out, out_len, &r), 0);
                assert_int_equal(r.n_images, 2);
        }

        /* A notification that runs past the frame it completes. */
        uint8_t over[SMP_FRAME_MAX + 1];
        memcpy(over, list, n);
        over[n] = 0;
        assert_int_equal(smp_reassembler_feed(ra, over, n + 1, &out, &out_len), -EBADMSG);
        /* The reassembler is empty again: a whole frame in one notification. */
        assert_int_equal(smp_reassembler_feed(ra, list, n, &out, &out_len), 1);

        /* A header announcing more than SMP_FRAME_MAX. */
        const uint8_t big[] = { 0x03, 0x00, 0xff, 0xff, 0x00, 0x01, 0x00, 0x00 };
        assert_int_equal(smp_reassembler_feed(ra, big, sizeof big, &out, &out_len), -EMSGSIZE);
        assert_int_equal(smp_reassembler_feed(ra, list, 0, &out, &out_len), -EBADMSG);
        free(ra);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_header_roundtrip),
                cmocka_unit_test(test_encode_state_read),
                cmocka_unit_test(test_encode_upload_first),
                cmocka_unit_test(test_encode_upload_later),
                cmocka_unit_test(test_encode_state_set_and_reset),
                cmocka_unit_test(test_chunk_max),
                cmocka_unit_test(test_decode_upload_rsp),
                cmocka_unit_test(test_decode_errors),
                cmocka_unit_test(test_decode_image_list),
                cmocka_unit_test(test_decode_bounds),
                cmocka_unit_test(test_reassembly),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
