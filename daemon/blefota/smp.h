/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * MCUmgr SMP (Simple Management Protocol) codec for the BLE FOTA of
 * Zephyr/MCUboot devices.  Pure: no I/O, no allocation, no recursion.
 *
 * A frame is an 8-byte header followed by a CBOR map (Zephyr
 * include/zephyr/mgmt/mcumgr/smp/smp.h, struct smp_hdr):
 *
 *   byte 0   bits 0-2 op (0 read, 1 read response, 2 write, 3 write response),
 *            bits 3-4 version (0 = original protocol "v1", 1 = SMP v2), bits 5-7 reserved
 *   byte 1   flags (none defined)
 *   byte 2-3 length of the CBOR payload, big endian
 *   byte 4-5 group id, big endian
 *   byte 6   sequence number (the response echoes the request's)
 *   byte 7   command id
 *
 * Over BLE (SMP service 8D53DC1D-1DB7-4CD3-868B-8A527460AA84, characteristic
 * DA2E7828-FBCE-4E01-AE9E-261174997C48, write without response + notify), a
 * request is written as one ATT write of at most MTU-3 bytes, and the device
 * answers with as many notifications of at most MTU-3 bytes as the response
 * needs: SmpReassembler puts them back together by the header's length.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMP_SERVICE_UUID "8d53dc1d-1db7-4cd3-868b-8a527460aa84"
#define SMP_CHARACTERISTIC_UUID "da2e7828-fbce-4e01-ae9e-261174997c48"

#define SMP_HEADER_SIZE 8u
/* The largest frame accepted from a device.  Zephyr's default SMP buffer
 * (CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE) is 384 bytes; configurations for fast
 * uploads raise it to 2475.  An image list of four slots is about 400 bytes. */
#define SMP_FRAME_MAX 4096u
#define SMP_IMAGES_MAX 8u          /* slots in an image list: 2 per image, up to 4 images */
#define SMP_HASH_MAX 64u           /* image hash in a list: SHA-256 (32) usually, SHA-512 on newer MCUboot */
#define SMP_UPLOAD_SHA_MAX 32u     /* "sha" of an upload (Zephyr IMG_MGMT_DATA_SHA_LEN) */
#define SMP_VERSION_STRING_MAX 48u /* "255.255.65535.4294967295" and room for a suffix */

typedef enum SmpOp {
        SMP_OP_READ = 0,
        SMP_OP_READ_RSP = 1,
        SMP_OP_WRITE = 2,
        SMP_OP_WRITE_RSP = 3,
} SmpOp;

/* The version field: 0 is the original protocol, 1 is SMP v2 (errors as
 * "err": {"group", "rc"}, no "rc": 0 on success). */
#define SMP_VERSION_1 0u
#define SMP_VERSION_2 1u

/* Groups and commands (Zephyr mgmt_defines.h, os_mgmt.h, img_mgmt.h). */
#define SMP_GROUP_OS 0u
#define SMP_GROUP_IMAGE 1u
#define SMP_OS_ID_ECHO 0u
#define SMP_OS_ID_RESET 5u
#define SMP_IMG_ID_STATE 0u
#define SMP_IMG_ID_UPLOAD 1u
#define SMP_IMG_ID_ERASE 5u

/* The "rc" of the original protocol (Zephyr enum mcumgr_err_t). */
typedef enum SmpMgmtErr {
        SMP_MGMT_EOK = 0,
        SMP_MGMT_EUNKNOWN = 1,
        SMP_MGMT_ENOMEM = 2,
        SMP_MGMT_EINVAL = 3,
        SMP_MGMT_ETIMEOUT = 4,
        SMP_MGMT_ENOENT = 5,
        SMP_MGMT_EBADSTATE = 6,
        SMP_MGMT_EMSGSIZE = 7,
        SMP_MGMT_ENOTSUP = 8,
        SMP_MGMT_ECORRUPT = 9,
        SMP_MGMT_EBUSY = 10,
        SMP_MGMT_EACCESSDENIED = 11,
        SMP_MGMT_UNSUPPORTED_TOO_OLD = 12,
        SMP_MGMT_UNSUPPORTED_TOO_NEW = 13,
        _SMP_MGMT_ERR_MAX,
} SmpMgmtErr;

/* The image group's own codes in an SMP v2 "err" (Zephyr enum img_mgmt_err_code_t). */
typedef enum SmpImgErr {
        SMP_IMG_ERR_OK = 0,
        SMP_IMG_ERR_UNKNOWN = 1,
        SMP_IMG_ERR_FLASH_CONFIG_QUERY_FAIL = 2,
        SMP_IMG_ERR_NO_IMAGE = 3,
        SMP_IMG_ERR_NO_TLVS = 4,
        SMP_IMG_ERR_INVALID_TLV = 5,
        SMP_IMG_ERR_TLV_MULTIPLE_HASHES_FOUND = 6,
        SMP_IMG_ERR_TLV_INVALID_SIZE = 7,
        SMP_IMG_ERR_HASH_NOT_FOUND = 8,
        SMP_IMG_ERR_NO_FREE_SLOT = 9,
        SMP_IMG_ERR_FLASH_OPEN_FAILED = 10,
        SMP_IMG_ERR_FLASH_READ_FAILED = 11,
        SMP_IMG_ERR_FLASH_WRITE_FAILED = 12,
        SMP_IMG_ERR_FLASH_ERASE_FAILED = 13,
        SMP_IMG_ERR_INVALID_SLOT = 14,
        SMP_IMG_ERR_NO_FREE_MEMORY = 15,
        SMP_IMG_ERR_FLASH_CONTEXT_ALREADY_SET = 16,
        SMP_IMG_ERR_FLASH_CONTEXT_NOT_SET = 17,
        SMP_IMG_ERR_FLASH_AREA_DEVICE_NULL = 18,
        SMP_IMG_ERR_INVALID_PAGE_OFFSET = 19,
        SMP_IMG_ERR_INVALID_OFFSET = 20,
        SMP_IMG_ERR_INVALID_LENGTH = 21,
        SMP_IMG_ERR_INVALID_IMAGE_HEADER = 22,
        SMP_IMG_ERR_INVALID_IMAGE_HEADER_MAGIC = 23,
        SMP_IMG_ERR_INVALID_HASH = 24,
        SMP_IMG_ERR_INVALID_FLASH_ADDRESS = 25,
        SMP_IMG_ERR_VERSION_GET_FAILED = 26,
        SMP_IMG_ERR_CURRENT_VERSION_IS_NEWER = 27,
        SMP_IMG_ERR_IMAGE_ALREADY_PENDING = 28,
        SMP_IMG_ERR_INVALID_IMAGE_VECTOR_TABLE = 29,
        SMP_IMG_ERR_INVALID_IMAGE_TOO_LARGE = 30,
        SMP_IMG_ERR_INVALID_IMAGE_DATA_OVERRUN = 31,
        SMP_IMG_ERR_IMAGE_CONFIRMATION_DENIED = 32,
        SMP_IMG_ERR_IMAGE_SETTING_TEST_TO_ACTIVE_DENIED = 33,
        _SMP_IMG_ERR_MAX,
} SmpImgErr;

const char *smp_mgmt_err_to_string(int64_t rc);
const char *smp_img_err_to_string(int64_t rc);

typedef struct SmpHeader {
        uint8_t op;      /* SmpOp */
        uint8_t version; /* SMP_VERSION_1 or SMP_VERSION_2 */
        uint8_t flags;
        uint16_t length; /* of the CBOR payload */
        uint16_t group;
        uint8_t seq;
        uint8_t id;
} SmpHeader;

void smp_header_pack(const SmpHeader *h, uint8_t out[static SMP_HEADER_SIZE]);
/* -EBADMSG if shorter than a header, or reserved bits or an op value above 3 are set. */
int smp_header_unpack(const uint8_t *buf, size_t len, SmpHeader *ret);

/* ---- requests: each writes a whole frame (header + CBOR) into buf ---- */

/* One image upload request.  The first chunk (off == 0) carries "image",
 * "len" and "sha" (the SHA-256 of the whole image: the device uses it to
 * resume an interrupted upload and, with CONFIG_IMG_ENABLE_IMAGE_CHECK, to
 * check the result); later chunks carry "off" and "data" only. */
typedef struct SmpUpload {
        uint32_t image;          /* image number, 0 for single-image devices */
        uint64_t total_len;      /* size of the whole image */
        const uint8_t *sha;      /* NULL: no "sha" */
        size_t sha_len;          /* at most SMP_UPLOAD_SHA_MAX */
        uint64_t off;
        const uint8_t *data;
        size_t data_len;
} SmpUpload;

/* -ENOBUFS if the frame does not fit in size bytes, -EINVAL for
 * arguments that make no request (data beyond total_len, sha over 32 bytes). */
int smp_encode_upload(uint8_t *buf, size_t size, uint8_t version, uint8_t seq, const SmpUpload *u,
                      size_t *ret_len);
/* Image state read: op read, group image, id 0, empty map. */
int smp_encode_image_state_read(uint8_t *buf, size_t size, uint8_t version, uint8_t seq, size_t *ret_len);
/* Image state set: hash of the image to test (confirm false) or to confirm;
 * hash NULL with confirm true confirms the running image. */
int smp_encode_image_state_set(uint8_t *buf, size_t size, uint8_t version, uint8_t seq, const uint8_t *hash,
                               size_t hash_len, bool confirm, size_t *ret_len);
/* Image erase of the secondary slot (slot < 0: the device's default). */
int smp_encode_image_erase(uint8_t *buf, size_t size, uint8_t version, uint8_t seq, int slot, size_t *ret_len);
/* OS reset; force adds "force": true (Zephyr refuses a reset a callback vetoes unless forced). */
int smp_encode_os_reset(uint8_t *buf, size_t size, uint8_t version, uint8_t seq, bool force, size_t *ret_len);

/* The largest number of image bytes that an upload request for u (its data
 * fields ignored) can carry so that the whole frame fits in frame_max bytes
 * (ATT MTU - 3 for one write without response).  Never more than what is
 * left of the image.  0 if not even one byte fits.
 *
 * Zephyr refuses a first chunk shorter than the MCUboot image header
 * (SMP_UPLOAD_FIRST_CHUNK_MIN, IMG_MGMT_ERR_INVALID_IMAGE_HEADER): with a
 * 32-byte "sha" that takes a frame of about 107 bytes (ATT MTU 110).  Below
 * that, write the first request in several writes (devices built with
 * CONFIG_MCUMGR_TRANSPORT_BT_REASSEMBLY put it back together) or leave the
 * "sha" out. */
#define SMP_UPLOAD_FIRST_CHUNK_MIN 32u
size_t smp_upload_chunk_max(size_t frame_max, const SmpUpload *u);

/* ---- responses ---- */

typedef struct SmpImage {
        uint32_t image;  /* "image", 0 when absent (single-image devices omit it) */
        uint32_t slot;
        char version[SMP_VERSION_STRING_MAX];
        uint8_t hash[SMP_HASH_MAX];
        size_t hash_len;      /* 0: no "hash" */
        bool bootable, pending, confirmed, active, permanent;
} SmpImage;

typedef struct SmpResponse {
        SmpHeader hdr;
        bool has_rc;           /* "rc" (original protocol, or a v2 device's legacy rc) */
        int64_t rc;
        bool has_err;          /* SMP v2 "err": {"group", "rc"} */
        uint16_t err_group;
        int64_t err_rc;
        bool has_off;          /* image upload: the offset the device expects next */
        uint64_t off;
        bool has_match;        /* image upload, last chunk: the "sha" matched what was written */
        bool match;
        bool has_images;       /* image state: "images" */
        size_t n_images;
        SmpImage images[SMP_IMAGES_MAX];
} SmpResponse;

/* Decodes one whole frame: the header's length must match what follows it,
 * the op must be a response, the payload one CBOR map.  Unknown keys are
 * skipped; known keys of the wrong type, over-long strings and hashes, more
 * than SMP_IMAGES_MAX images and nesting deeper than 8 give -EBADMSG. */
int smp_decode_response(const uint8_t *frame, size_t len, SmpResponse *ret);

/* 0 if the response reports success.  Otherwise the positive error code:
 * for an SMP v2 "err" its "rc", with *ret_group set to the group it belongs
 * to (SmpImgErr for SMP_GROUP_IMAGE); for an original-protocol "rc" the
 * SmpMgmtErr, with *ret_group set to SMP_GROUP_GENERIC. */
#define SMP_GROUP_GENERIC UINT16_MAX
int smp_response_status(const SmpResponse *r, uint16_t *ret_group);

/* Puts a response back together from notifications. */
typedef struct SmpReassembler {
        uint8_t buf[SMP_FRAME_MAX];
        size_t len;
} SmpReassembler;

void smp_reassembler_reset(SmpReassembler *r);
/* Appends one notification.  Returns 1 when a whole frame is there
 * (*ret_frame and *ret_len point into r, valid until the next call), 0 when more
 * is needed, -EMSGSIZE for a header announcing more than SMP_FRAME_MAX,
 * -EBADMSG for a notification that runs past the end of the frame it
 * completes or an empty one; after an error the reassembler is empty. */
int smp_reassembler_feed(SmpReassembler *r, const uint8_t *data, size_t len, const uint8_t **ret_frame,
                         size_t *ret_len);
