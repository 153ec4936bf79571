/* SPDX-License-Identifier: MIT */
#include <cbor.h>
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "cbor-in.h"
#include "macro.h"
#include "smp.h"

/* ---- error names ---- */

static const char *const mgmt_err_table[_SMP_MGMT_ERR_MAX] = {
        [SMP_MGMT_EOK] = "ok",
        [SMP_MGMT_EUNKNOWN] = "unknown error",
        [SMP_MGMT_ENOMEM] = "out of memory",
        [SMP_MGMT_EINVAL] = "invalid argument",
        [SMP_MGMT_ETIMEOUT] = "timeout",
        [SMP_MGMT_ENOENT] = "no such entry",
        [SMP_MGMT_EBADSTATE] = "bad state",
        [SMP_MGMT_EMSGSIZE] = "response too large",
        [SMP_MGMT_ENOTSUP] = "command not supported",
        [SMP_MGMT_ECORRUPT] = "corrupt",
        [SMP_MGMT_EBUSY] = "busy",
        [SMP_MGMT_EACCESSDENIED] = "access denied",
        [SMP_MGMT_UNSUPPORTED_TOO_OLD] = "protocol version too old",
        [SMP_MGMT_UNSUPPORTED_TOO_NEW] = "protocol version too new",
};

static const char *const img_err_table[_SMP_IMG_ERR_MAX] = {
        [SMP_IMG_ERR_OK] = "ok",
        [SMP_IMG_ERR_UNKNOWN] = "unknown error",
        [SMP_IMG_ERR_FLASH_CONFIG_QUERY_FAIL] = "flash configuration query failed",
        [SMP_IMG_ERR_NO_IMAGE] = "no image in slot",
        [SMP_IMG_ERR_NO_TLVS] = "image has no TLVs",
        [SMP_IMG_ERR_INVALID_TLV] = "invalid TLV",
        [SMP_IMG_ERR_TLV_MULTIPLE_HASHES_FOUND] = "multiple hash TLVs",
        [SMP_IMG_ERR_TLV_INVALID_SIZE] = "invalid TLV size",
        [SMP_IMG_ERR_HASH_NOT_FOUND] = "hash not found",
        [SMP_IMG_ERR_NO_FREE_SLOT] = "no free slot",
        [SMP_IMG_ERR_FLASH_OPEN_FAILED] = "flash open failed",
        [SMP_IMG_ERR_FLASH_READ_FAILED] = "flash read failed",
        [SMP_IMG_ERR_FLASH_WRITE_FAILED] = "flash write failed",
        [SMP_IMG_ERR_FLASH_ERASE_FAILED] = "flash erase failed",
        [SMP_IMG_ERR_INVALID_SLOT] = "invalid slot",
        [SMP_IMG_ERR_NO_FREE_MEMORY] = "no free memory",
        [SMP_IMG_ERR_FLASH_CONTEXT_ALREADY_SET] = "flash context already set",
        [SMP_IMG_ERR_FLASH_CONTEXT_NOT_SET] = "flash context not set",
        [SMP_IMG_ERR_FLASH_AREA_DEVICE_NULL] = "flash area device missing",
        [SMP_IMG_ERR_INVALID_PAGE_OFFSET] = "invalid page offset",
        [SMP_IMG_ERR_INVALID_OFFSET] = "invalid or missing offset",
        [SMP_IMG_ERR_INVALID_LENGTH] = "invalid or missing length",
        [SMP_IMG_ERR_INVALID_IMAGE_HEADER] = "image shorter than its header",
        [SMP_IMG_ERR_INVALID_IMAGE_HEADER_MAGIC] = "bad image header magic",
        [SMP_IMG_ERR_INVALID_HASH] = "invalid hash",
        [SMP_IMG_ERR_INVALID_FLASH_ADDRESS] = "image load address does not match slot",
        [SMP_IMG_ERR_VERSION_GET_FAILED] = "running version unknown",
        [SMP_IMG_ERR_CURRENT_VERSION_IS_NEWER] = "running version is newer",
        [SMP_IMG_ERR_IMAGE_ALREADY_PENDING] = "an image is already pending",
        [SMP_IMG_ERR_INVALID_IMAGE_VECTOR_TABLE] = "invalid image vector table",
        [SMP_IMG_ERR_INVALID_IMAGE_TOO_LARGE] = "image too large for slot",
        [SMP_IMG_ERR_INVALID_IMAGE_DATA_OVERRUN] = "data beyond the announced length",
        [SMP_IMG_ERR_IMAGE_CONFIRMATION_DENIED] = "confirmation denied",
        [SMP_IMG_ERR_IMAGE_SETTING_TEST_TO_ACTIVE_DENIED] = "cannot test the active slot",
};

const char *smp_mgmt_err_to_string(int64_t rc) {
        if (rc < 0 || rc >= _SMP_MGMT_ERR_MAX)
                return rc == 256 ? "group-specific error" : NULL;
        return mgmt_err_table[rc];
}

const char *smp_img_err_to_string(int64_t rc) {
        if (rc < 0 || rc >= _SMP_IMG_ERR_MAX)
                return NULL;
        return img_err_table[rc];
}

/* ---- header ---- */

void smp_header_pack(const SmpHeader *h, uint8_t out[static SMP_HEADER_SIZE]) {
        out[0] = (uint8_t) ((h->op & 0x07) | ((h->version & 0x03) << 3));
        out[1] = h->flags;
        out[2] = (uint8_t) (h->length >> 8);
        out[3] = (uint8_t) h->length;
        out[4] = (uint8_t) (h->group >> 8);
        out[5] = (uint8_t) h->group;
        out[6] = h->seq;
        out[7] = h->id;
}

int smp_header_unpack(const uint8_t *buf, size_t len, SmpHeader *ret) {
        if (!buf || len < SMP_HEADER_SIZE)
                return -EBADMSG;
        if (buf[0] & 0xe0) /* reserved bits */
                return -EBADMSG;
        *ret = (SmpHeader) {
                .op = buf[0] & 0x07,
                .version = (buf[0] >> 3) & 0x03,
                .flags = buf[1],
                .length = (uint16_t) (buf[2] << 8 | buf[3]),
                .group = (uint16_t) (buf[4] << 8 | buf[5]),
                .seq = buf[6],
                .id = buf[7],
        };
        if (ret->op > SMP_OP_WRITE_RSP)
                return -EBADMSG;
        return 0;
}

/* ---- requests ---- */

/* A bounded CBOR writer over libcbor's streaming encoders: each returns 0
 * when the buffer is too small, which sticks as an overflow. */
typedef struct CborOut {
        uint8_t *p;
        size_t size, pos;
        bool overflow;
} CborOut;

static void co_advance(CborOut *o, size_t written) {
        if (written == 0)
                o->overflow = true;
        else
                o->pos += written;
}

static void co_raw(CborOut *o, const void *data, size_t n) {
        if (o->overflow)
                return;
        if (n > o->size - o->pos) {
                o->overflow = true;
                return;
        }
        if (n > 0)
                memcpy(o->p + o->pos, data, n);
        o->pos += n;
}

static void co_map(CborOut *o, size_t n) {
        if (!o->overflow)
                co_advance(o, cbor_encode_map_start(n, o->p + o->pos, o->size - o->pos));
}

static void co_text(CborOut *o, const char *s) {
        size_t n = strlen(s);

        if (!o->overflow)
                co_advance(o, cbor_encode_string_start(n, o->p + o->pos, o->size - o->pos));
        co_raw(o, s, n);
}

static void co_uint(CborOut *o, uint64_t v) {
        if (!o->overflow)
                co_advance(o, cbor_encode_uint(v, o->p + o->pos, o->size - o->pos));
}

static void co_bytes(CborOut *o, const uint8_t *data, size_t n) {
        if (!o->overflow)
                co_advance(o, cbor_encode_bytestring_start(n, o->p + o->pos, o->size - o->pos));
        co_raw(o, data, n);
}

static void co_bool(CborOut *o, bool b) {
        if (!o->overflow)
                co_advance(o, cbor_encode_bool(b, o->p + o->pos, o->size - o->pos));
}

/* Starts a frame: room for the header, then the payload. */
static int frame_begin(CborOut *o, uint8_t *buf, size_t size, uint8_t version) {
        if (!buf || version > SMP_VERSION_2)
                return -EINVAL;
        if (size < SMP_HEADER_SIZE)
                return -ENOBUFS;
        *o = (CborOut) { .p = buf, .size = size, .pos = SMP_HEADER_SIZE };
        return 0;
}

static int frame_end(CborOut *o, SmpOp op, uint8_t version, uint16_t group, uint8_t seq, uint8_t id,
                     size_t *ret_len) {
        size_t payload;

        if (o->overflow)
                return -ENOBUFS;
        payload = o->pos - SMP_HEADER_SIZE;
        if (payload > UINT16_MAX)
                return -ENOBUFS;
        smp_header_pack(&(SmpHeader) { .op = op, .version = version, .length = (uint16_t) payload,
                                       .group = group, .seq = seq, .id = id },
                        o->p);
        *ret_len = o->pos;
        return 0;
}

static int upload_check(const SmpUpload *u) {
        if (!u || (!u->data && u->data_len > 0) || (!u->sha && u->sha_len > 0) ||
            u->sha_len > SMP_UPLOAD_SHA_MAX)
                return -EINVAL;
        if (u->off > u->total_len || u->data_len > u->total_len - u->off)
                return -EINVAL;
        return 0;
}

static void upload_payload(CborOut *o, const SmpUpload *u, size_t data_len) {
        bool first = u->off == 0;

        /* Zephyr's img_mgmt decodes the keys in any order (zcbor_map_decode_bulk). */
        co_map(o, first ? (u->sha ? 5 : 4) : 2);
        if (first) {
                co_text(o, "image");
                co_uint(o, u->image);
                co_text(o, "len");
                co_uint(o, u->total_len);
                if (u->sha) {
                        co_text(o, "sha");
                        co_bytes(o, u->sha, u->sha_len);
                }
        }
        co_text(o, "off");
        co_uint(o, u->off);
        co_text(o, "data");
        co_bytes(o, u->data, data_len);
}

int smp_encode_upload(uint8_t *buf, size_t size, uint8_t version, uint8_t seq, const SmpUpload *u,
                      size_t *ret_len) {
        CborOut o;
        int r;

        r = upload_check(u);
        if (r < 0)
                return r;
        r = frame_begin(&o, buf, size, version);
        if (r < 0)
                return r;
        upload_payload(&o, u, u->data_len);
        return frame_end(&o, SMP_OP_WRITE, version, SMP_GROUP_IMAGE, seq, SMP_IMG_ID_UPLOAD, ret_len);
}

/* Size of the head of a CBOR byte string of n bytes (RFC 8949 §3). */
static size_t cbor_head_size(uint64_t n) {
        return n < 24 ? 1 : n <= UINT8_MAX ? 2 : n <= UINT16_MAX ? 3 : n <= UINT32_MAX ? 5 : 9;
}

size_t smp_upload_chunk_max(size_t frame_max, const SmpUpload *u) {
        SmpUpload empty;
        uint8_t scratch[128];
        size_t base, left, avail, d;
        CborOut o;

        if (!u)
                return 0;
        empty = *u;
        empty.data = NULL;
        empty.data_len = 0;
        if (upload_check(&empty) < 0 || frame_begin(&o, scratch, sizeof scratch, SMP_VERSION_1) < 0)
                return 0;
        /* The frame with no data: what every chunk costs besides its bytes
         * (one of them the head of an empty byte string). */
        upload_payload(&o, &empty, 0);
        if (o.overflow)
                return 0;
        base = o.pos - 1;
        if (frame_max <= base + 1)
                return 0;
        avail = frame_max - base; /* for the byte string's head and its bytes */
        left = u->total_len - u->off > SIZE_MAX ? SIZE_MAX : (size_t) (u->total_len - u->off);
        d = MIN(avail - 1, left);
        while (d > 0 && cbor_head_size(d) + d > avail)
                d--;
        return d;
}

int smp_encode_image_state_read(uint8_t *buf, size_t size, uint8_t version, uint8_t seq, size_t *ret_len) {
        CborOut o;
        int r;

        r = frame_begin(&o, buf, size, version);
        if (r < 0)
                return r;
        co_map(&o, 0);
        return frame_end(&o, SMP_OP_READ, version, SMP_GROUP_IMAGE, seq, SMP_IMG_ID_STATE, ret_len);
}

int smp_encode_image_state_set(uint8_t *buf, size_t size, uint8_t version, uint8_t seq, const uint8_t *hash,
                               size_t hash_len, bool confirm, size_t *ret_len) {
        CborOut o;
        int r;

        /* A test without a hash is refused by the device (IMG_MGMT_ERR_INVALID_HASH). */
        if ((!hash && hash_len > 0) || (!hash && !confirm) || hash_len > SMP_HASH_MAX || (hash && hash_len == 0))
                return -EINVAL;
        r = frame_begin(&o, buf, size, version);
        if (r < 0)
                return r;
        co_map(&o, hash ? 2 : 1);
        if (hash) {
                co_text(&o, "hash");
                co_bytes(&o, hash, hash_len);
        }
        co_text(&o, "confirm");
        co_bool(&o, confirm);
        return frame_end(&o, SMP_OP_WRITE, version, SMP_GROUP_IMAGE, seq, SMP_IMG_ID_STATE, ret_len);
}

int smp_encode_image_erase(uint8_t *buf, size_t size, uint8_t version, uint8_t seq, int slot, size_t *ret_len) {
        CborOut o;
        int r;

        r = frame_begin(&o, buf, size, version);
        if (r < 0)
                return r;
        co_map(&o, slot >= 0 ? 1 : 0);
        if (slot >= 0) {
                co_text(&o, "slot");
                co_uint(&o, (uint64_t) slot);
        }
        return frame_end(&o, SMP_OP_WRITE, version, SMP_GROUP_IMAGE, seq, SMP_IMG_ID_ERASE, ret_len);
}

int smp_encode_os_reset(uint8_t *buf, size_t size, uint8_t version, uint8_t seq, bool force, size_t *ret_len) {
        CborOut o;
        int r;

        r = frame_begin(&o, buf, size, version);
        if (r < 0)
                return r;
        co_map(&o, force ? 1 : 0);
        if (force) {
                co_text(&o, "force");
                co_bool(&o, true);
        }
        return frame_end(&o, SMP_OP_WRITE, version, SMP_GROUP_OS, seq, SMP_OS_ID_RESET, ret_len);
}

/* ---- responses ---- */

static bool key_is(const CborToken *k, const char *s) {
        size_t n = strlen(s);
        return k->len == n && memcmp(k->ptr, s, n) == 0;
}

static int get_u32(CborIn *c, uint32_t *ret) {
        uint64_t v;
        int r = cbor_in_uint(c, &v);
        if (r < 0)
                return r;
        if (v > UINT32_MAX)
                return -EBADMSG;
        *ret = (uint32_t) v;
        return 0;
}

static int decode_err(CborIn *c, SmpResponse *rsp) {
        uint64_t left, group = UINT64_MAX;
        bool has_rc = false;
        int r;

        r = cbor_in_map(c, &left);
        if (r < 0)
                return r;
        for (;;) {
                CborToken key;

                r = cbor_in_map_next(c, &left, &key);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (key_is(&key, "group")) {
                        if (group != UINT64_MAX)
                                return -EBADMSG;
                        r = cbor_in_uint(c, &group);
                        if (r >= 0 && group > UINT16_MAX)
                                r = -EBADMSG;
                } else if (key_is(&key, "rc")) {
                        if (has_rc)
                                return -EBADMSG;
                        r = cbor_in_int(c, &rsp->err_rc);
                        has_rc = true;
                } else
                        r = cbor_in_skip(c);
                if (r < 0)
                        return r;
        }
        if (group == UINT64_MAX || !has_rc)
                return -EBADMSG;
        rsp->err_group = (uint16_t) group;
        rsp->has_err = true;
        return 0;
}

static int decode_image(CborIn *c, SmpImage *img) {
        uint64_t left;
        unsigned seen = 0;
        int r;

        *img = (SmpImage) {};
        r = cbor_in_map(c, &left);
        if (r < 0)
                return r;
        for (;;) {
                static const char *const flags[] = { "bootable", "pending", "confirmed", "active", "permanent" };
                bool *flag_fields[] = { &img->bootable, &img->pending, &img->confirmed, &img->active,
                                        &img->permanent };
                CborToken key;
                unsigned bit = 0;
                bool known = false;

                r = cbor_in_map_next(c, &left, &key);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                for (size_t i = 0; i < ELEMENTSOF(flags); i++)
                        if (key_is(&key, flags[i])) {
                                bit = 1u << i;
                                r = cbor_in_bool(c, flag_fields[i]);
                                known = true;
                        }
                if (known) {
                } else if (key_is(&key, "image")) {
                        bit = 1u << 5;
                        r = get_u32(c, &img->image);
                } else if (key_is(&key, "slot")) {
                        bit = 1u << 6;
                        r = get_u32(c, &img->slot);
                } else if (key_is(&key, "version")) {
                        const uint8_t *p;
                        size_t n;

                        bit = 1u << 7;
                        r = cbor_in_text(c, &p, &n);
                        if (r >= 0 && (n >= sizeof img->version || memchr(p, 0, n)))
                                r = -EBADMSG;
                        if (r >= 0)
                                memcpy(img->version, p, n);
                } else if (key_is(&key, "hash")) {
                        const uint8_t *p;
                        size_t n;

                        bit = 1u << 8;
                        r = cbor_in_bytes(c, &p, &n);
                        if (r >= 0 && (n == 0 || n > sizeof img->hash))
                                r = -EBADMSG;
                        if (r >= 0) {
                                memcpy(img->hash, p, n);
                                img->hash_len = n;
                        }
                } else
                        r = cbor_in_skip(c);
                if (r < 0)
                        return r;
                if (seen & bit)
                        return -EBADMSG; /* a key twice */
                seen |= bit;
        }
        /* Zephyr's img_mgmt_state_encode_slot always writes "slot". */
        return (seen & (1u << 6)) ? 0 : -EBADMSG;
}

static int decode_images(CborIn *c, SmpResponse *rsp) {
        uint64_t left;
        int r;

        r = cbor_in_array(c, &left);
        if (r < 0)
                return r;
        for (;;) {
                r = cbor_in_array_next(c, &left);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (rsp->n_images >= SMP_IMAGES_MAX)
                        return -EBADMSG;
                r = decode_image(c, &rsp->images[rsp->n_images]);
                if (r < 0)
                        return r;
                rsp->n_images++;
        }
        rsp->has_images = true;
        return 0;
}

int smp_decode_response(const uint8_t *frame, size_t len, SmpResponse *ret) {
        SmpResponse rsp = {};
        uint64_t left;
        CborIn c;
        int r;

        r = smp_header_unpack(frame, len, &rsp.hdr);
        if (r < 0)
                return r;
        if (len - SMP_HEADER_SIZE != rsp.hdr.length || rsp.hdr.length == 0)
                return -EBADMSG;
        if (rsp.hdr.op != SMP_OP_READ_RSP && rsp.hdr.op != SMP_OP_WRITE_RSP)
                return -EPROTO;

        cbor_in_init(&c, frame + SMP_HEADER_SIZE, rsp.hdr.length);
        r = cbor_in_map(&c, &left);
        if (r < 0)
                return r;
        for (;;) {
                CborToken key;
                bool dup = false;

                r = cbor_in_map_next(&c, &left, &key);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (key_is(&key, "rc")) {
                        dup = rsp.has_rc;
                        r = cbor_in_int(&c, &rsp.rc);
                        rsp.has_rc = true;
                } else if (key_is(&key, "err")) {
                        dup = rsp.has_err;
                        r = decode_err(&c, &rsp);
                } else if (key_is(&key, "off")) {
                        dup = rsp.has_off;
                        r = cbor_in_uint(&c, &rsp.off);
                        rsp.has_off = true;
                } else if (key_is(&key, "match")) {
                        dup = rsp.has_match;
                        r = cbor_in_bool(&c, &rsp.match);
                        rsp.has_match = true;
                } else if (key_is(&key, "images")) {
                        dup = rsp.has_images;
                        r = dup ? 0 : decode_images(&c, &rsp);
                } else
                        r = cbor_in_skip(&c);
                if (r < 0)
                        return r;
                if (dup)
                        return -EBADMSG;
        }
        if (!cbor_in_at_end(&c))
                return -EBADMSG;
        *ret = rsp;
        return 0;
}

int smp_response_status(const SmpResponse *r, uint16_t *ret_group) {
        int64_t rc;
        uint16_t group;

        if (r->has_err && r->err_rc != 0) {
                rc = r->err_rc;
                group = r->err_group;
        } else if (r->has_rc && r->rc != 0) {
                rc = r->rc;
                group = SMP_GROUP_GENERIC;
        } else
                return 0;
        if (ret_group)
                *ret_group = group;
        return rc > 0 && rc <= INT_MAX ? (int) rc : SMP_MGMT_EUNKNOWN;
}

/* ---- reassembly ---- */

void smp_reassembler_reset(SmpReassembler *r) {
        r->len = 0;
}

int smp_reassembler_feed(SmpReassembler *r, const uint8_t *data, size_t len, const uint8_t **ret_frame,
                         size_t *ret_len) {
        size_t want;

        if (!data || len == 0) {
                smp_reassembler_reset(r);
                return -EBADMSG;
        }
        /* A previous frame was handed out: this notification starts a new one. */
        if (r->len >= SMP_HEADER_SIZE && r->len == SMP_HEADER_SIZE + (size_t) (r->buf[2] << 8 | r->buf[3]))
                r->len = 0;

        /* Fill the header first, to learn the length. */
        if (r->len < SMP_HEADER_SIZE) {
                size_t n = MIN(len, SMP_HEADER_SIZE - r->len);

                memcpy(r->buf + r->len, data, n);
                r->len += n;
                data += n;
                len -= n;
                if (r->len < SMP_HEADER_SIZE)
                        return 0;
        }
        want = SMP_HEADER_SIZE + (size_t) (r->buf[2] << 8 | r->buf[3]);
        if (want > SMP_FRAME_MAX) {
                smp_reassembler_reset(r);
                return -EMSGSIZE;
        }
        if (len > want - r->len) {
                smp_reassembler_reset(r);
                return -EBADMSG;
        }
        if (len > 0)
                memcpy(r->buf + r->len, data, len);
        r->len += len;
        if (r->len < want)
                return 0;
        *ret_frame = r->buf;
        *ret_len = r->len;
        return 1;
}
