/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * nRF5 SDK Secure DFU over BLE: the control point codec, the CRC-32 the
 * bootloader checks, the buttonless entry and the planner that splits an
 * update into objects.  Pure: no I/O of its own (the planner reads the
 * image through a callback), no allocation.
 *
 * Protocol (nRF5 SDK 15-17 nrf_dfu_req_handler.h, nrf_dfu_ble.c, ble_dfu.h;
 * the same in pc-nrfutil's dfu_transport_ble.py and Nordic's Android DFU
 * library):
 *  - DFU service 0xFE59 with the control point 8EC90001-… (write, notify)
 *    and the packet characteristic 8EC90002-… (write without response);
 *  - requests on the control point, little-endian: Create [01 type size32],
 *    Set PRN [02 n16], Calculate CRC [03], Execute [04], Select [06 type];
 *  - responses as notifications [60 request-op result payload…]: Select
 *    gives max_size32 offset32 crc32, Calculate CRC offset32 crc32; an
 *    extended error [60 op 0B ext];
 *  - with a packet receipt notification (PRN) value N, the bootloader sends
 *    a Calculate CRC response after every N packets written since the last
 *    Create or Set PRN: the flow control of the transfer;
 *  - the init packet (.dat) is one command object; the firmware (.bin) is
 *    sent in data objects of at most the max_size that Select reports (a
 *    flash page, 4096 bytes), each checked with Calculate CRC (CRC-32 of
 *    the whole image so far) and executed.
 *  - buttonless DFU (application side): write [01] to the buttonless
 *    characteristic (indicate); it answers [20 01 result] and the device
 *    resets into the bootloader.  Without bonds the bootloader advertises
 *    at the application's address with its least significant byte plus one.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NRF_DFU_SERVICE_UUID "0000fe59-0000-1000-8000-00805f9b34fb"
#define NRF_DFU_CONTROL_POINT_UUID "8ec90001-f315-4f60-9fb8-838830daea50"
#define NRF_DFU_PACKET_UUID "8ec90002-f315-4f60-9fb8-838830daea50"
#define NRF_DFU_BUTTONLESS_UUID "8ec90003-f315-4f60-9fb8-838830daea50"        /* without bonds */
#define NRF_DFU_BUTTONLESS_BONDED_UUID "8ec90004-f315-4f60-9fb8-838830daea50" /* with bonds */

#define NRF_DFU_REQUEST_MAX 6u   /* Create: op, type, size32 */
#define NRF_DFU_RESPONSE_MAX 64u /* the longest a bootloader sends (firmware version query) is 3 + 17 */

typedef enum NrfDfuOp {
        NRF_DFU_OP_PROTOCOL_VERSION = 0x00,
        NRF_DFU_OP_CREATE = 0x01,
        NRF_DFU_OP_SET_PRN = 0x02,
        NRF_DFU_OP_CRC = 0x03,
        NRF_DFU_OP_EXECUTE = 0x04,
        NRF_DFU_OP_SELECT = 0x06,
        NRF_DFU_OP_MTU_GET = 0x07,
        NRF_DFU_OP_OBJECT_WRITE = 0x08,
        NRF_DFU_OP_PING = 0x09,
        NRF_DFU_OP_HARDWARE_VERSION = 0x0a,
        NRF_DFU_OP_FIRMWARE_VERSION = 0x0b,
        NRF_DFU_OP_ABORT = 0x0c,
        NRF_DFU_OP_RESPONSE = 0x60,
} NrfDfuOp;

typedef enum NrfDfuObject {
        NRF_DFU_OBJ_COMMAND = 0x01,
        NRF_DFU_OBJ_DATA = 0x02,
} NrfDfuObject;

typedef enum NrfDfuResult {
        NRF_DFU_RES_INVALID = 0x00,
        NRF_DFU_RES_SUCCESS = 0x01,
        NRF_DFU_RES_OP_CODE_NOT_SUPPORTED = 0x02,
        NRF_DFU_RES_INVALID_PARAMETER = 0x03,
        NRF_DFU_RES_INSUFFICIENT_RESOURCES = 0x04,
        NRF_DFU_RES_INVALID_OBJECT = 0x05,
        NRF_DFU_RES_UNSUPPORTED_TYPE = 0x07,
        NRF_DFU_RES_OPERATION_NOT_PERMITTED = 0x08,
        NRF_DFU_RES_OPERATION_FAILED = 0x0a,
        NRF_DFU_RES_EXT_ERROR = 0x0b,
} NrfDfuResult;

typedef enum NrfDfuExtError {
        NRF_DFU_EXT_NO_ERROR = 0x00,
        NRF_DFU_EXT_INVALID_ERROR_CODE = 0x01,
        NRF_DFU_EXT_WRONG_COMMAND_FORMAT = 0x02,
        NRF_DFU_EXT_UNKNOWN_COMMAND = 0x03,
        NRF_DFU_EXT_INIT_COMMAND_INVALID = 0x04,
        NRF_DFU_EXT_FW_VERSION_FAILURE = 0x05,
        NRF_DFU_EXT_HW_VERSION_FAILURE = 0x06,
        NRF_DFU_EXT_SD_VERSION_FAILURE = 0x07,
        NRF_DFU_EXT_SIGNATURE_MISSING = 0x08,
        NRF_DFU_EXT_WRONG_HASH_TYPE = 0x09,
        NRF_DFU_EXT_HASH_FAILED = 0x0a,
        NRF_DFU_EXT_WRONG_SIGNATURE_TYPE = 0x0b,
        NRF_DFU_EXT_VERIFICATION_FAILED = 0x0c,
        NRF_DFU_EXT_INSUFFICIENT_SPACE = 0x0d,
        _NRF_DFU_EXT_MAX,
} NrfDfuExtError;

const char *nrf_dfu_result_to_string(uint8_t result);
const char *nrf_dfu_ext_error_to_string(uint8_t ext);

/* CRC-32 as zlib's crc32() (IEEE 802.3, reflected, start with 0): what the
 * bootloader's crc32_compute() reports for the bytes received so far. */
uint32_t nrf_dfu_crc32(uint32_t crc, const void *data, size_t len);

/* ---- control point requests; each returns the number of bytes written ---- */
size_t nrf_dfu_encode_create(uint8_t out[static NRF_DFU_REQUEST_MAX], NrfDfuObject type, uint32_t size);
size_t nrf_dfu_encode_set_prn(uint8_t out[static NRF_DFU_REQUEST_MAX], uint16_t prn);
size_t nrf_dfu_encode_crc(uint8_t out[static NRF_DFU_REQUEST_MAX]);
size_t nrf_dfu_encode_execute(uint8_t out[static NRF_DFU_REQUEST_MAX]);
size_t nrf_dfu_encode_select(uint8_t out[static NRF_DFU_REQUEST_MAX], NrfDfuObject type);

typedef struct NrfDfuResponse {
        uint8_t request;  /* the op code answered */
        uint8_t result;   /* NrfDfuResult */
        uint8_t ext_error; /* with NRF_DFU_RES_EXT_ERROR */
        bool has_object;  /* Select: max_size, offset, crc */
        bool has_crc;     /* Select and Calculate CRC: offset, crc */
        uint32_t max_size, offset, crc;
        uint16_t mtu;     /* MTU get */
} NrfDfuResponse;

/* Decodes one control point notification.  A successful Select must carry
 * exactly 12 bytes, a Calculate CRC 8, Create/Set PRN/Execute none; an error
 * no payload but the extended code.  -EBADMSG otherwise, -EPROTO for a
 * notification that is not a response (first byte not 0x60). */
int nrf_dfu_decode_response(const uint8_t *buf, size_t len, NrfDfuResponse *ret);

/* ---- buttonless DFU (ble_dfu.h) ---- */
#define NRF_DFU_BUTTONLESS_OP_ENTER_BOOTLOADER 0x01
#define NRF_DFU_BUTTONLESS_OP_SET_ADV_NAME 0x02
#define NRF_DFU_BUTTONLESS_OP_RESPONSE 0x20

typedef enum NrfDfuButtonlessResult {
        NRF_DFU_BUTTONLESS_SUCCESS = 0x01,
        NRF_DFU_BUTTONLESS_OP_CODE_NOT_SUPPORTED = 0x02,
        NRF_DFU_BUTTONLESS_OPERATION_FAILED = 0x04,
        NRF_DFU_BUTTONLESS_ADV_NAME_INVALID = 0x05,
        NRF_DFU_BUTTONLESS_BUSY = 0x06,
        NRF_DFU_BUTTONLESS_NOT_BONDED = 0x07,
} NrfDfuButtonlessResult;

size_t nrf_dfu_encode_enter_bootloader(uint8_t out[static NRF_DFU_REQUEST_MAX]);
/* [20 op result]: *ret_op the request answered, *ret_result its result. */
int nrf_dfu_decode_buttonless(const uint8_t *buf, size_t len, uint8_t *ret_op, uint8_t *ret_result);

/* The address the bootloader advertises at: the application's with its
 * least significant octet plus one, wrapping at 0xFF without a carry into
 * the next octet (nRF5 SDK nrf_dfu_ble.c gap_address_change(): addr[0] += 1
 * on a uint8_t; the Android DFU library and Nordic's LTE gateway do the
 * same).  delta is +1 to find the bootloader, -1 to go back.  Upper case
 * out; -EINVAL for an input that is not an address. */
#define NRF_DFU_ADDR_STR_MAX 18
int nrf_dfu_shift_address(const char *addr, int delta, char ret[static NRF_DFU_ADDR_STR_MAX]);

/* ---- the planner ---- */

/* Reads len bytes at off of the init packet (COMMAND) or the firmware
 * (DATA); 0 or a negative errno. */
typedef int (*NrfDfuReadFn)(void *userdata, NrfDfuObject which, uint32_t off, uint8_t *buf, size_t len);

typedef struct NrfDfuPlanConfig {
        uint32_t init_len;    /* the .dat */
        uint32_t fw_len;      /* the .bin */
        uint16_t prn;         /* 0: no receipt notifications */
        size_t packet_size;   /* bytes a packet write: ATT MTU - 3 */
        unsigned retries;     /* an object whose CRC does not match is sent again this many times */
        NrfDfuReadFn read;
        void *userdata;
} NrfDfuPlanConfig;

typedef enum NrfDfuActionKind {
        NRF_DFU_ACTION_CONTROL, /* write cp[0..cp_len) to the control point, then feed its response */
        NRF_DFU_ACTION_PACKETS, /* write [off, off+len) of `object` to the packet characteristic in
                                 * packets of at most packet_size, calling nrf_dfu_plan_packet_sent()
                                 * after each and waiting for a receipt notification when it says so */
        NRF_DFU_ACTION_DONE,    /* the firmware is executed: the device resets into the application */
        NRF_DFU_ACTION_FAILED,  /* see plan->error, plan->result, plan->ext_error */
} NrfDfuActionKind;

typedef struct NrfDfuAction {
        NrfDfuActionKind kind;
        uint8_t cp[NRF_DFU_REQUEST_MAX];
        size_t cp_len;
        NrfDfuObject object;
        uint32_t off, len;
        size_t packet_size;
} NrfDfuAction;

typedef enum NrfDfuPlanState {
        NRF_DFU_PLAN_SET_PRN,
        NRF_DFU_PLAN_SELECT_COMMAND,
        NRF_DFU_PLAN_CREATE_COMMAND,
        NRF_DFU_PLAN_WRITE_COMMAND,
        NRF_DFU_PLAN_CRC_COMMAND,
        NRF_DFU_PLAN_EXECUTE_COMMAND,
        NRF_DFU_PLAN_SELECT_DATA,
        NRF_DFU_PLAN_CREATE_DATA,
        NRF_DFU_PLAN_WRITE_DATA,
        NRF_DFU_PLAN_CRC_DATA,
        NRF_DFU_PLAN_EXECUTE_DATA,
        NRF_DFU_PLAN_DONE,
        NRF_DFU_PLAN_FAILED,
        _NRF_DFU_PLAN_STATE_MAX,
} NrfDfuPlanState;

const char *nrf_dfu_plan_state_to_string(NrfDfuPlanState s);

typedef struct NrfDfuPlan {
        NrfDfuPlanConfig cfg;
        NrfDfuPlanState state;
        uint32_t cmd_max;      /* Select command: max size of the init packet */
        uint32_t data_max;     /* Select data: max size of a data object */
        uint32_t obj_start;    /* the current object: [obj_start, obj_end) of its image */
        uint32_t obj_end;
        uint32_t sent;         /* bytes of the current image the device has (or is being sent) */
        uint32_t crc;          /* CRC-32 of [0, sent) */
        uint32_t crc_obj_start;
        uint16_t since_prn;    /* packets since the last receipt notification, Create or Set PRN */
        unsigned tries;        /* of the current object */
        bool resumed;          /* the device already had part of the update (Select offset > 0) */
        bool exec_unsure;      /* resumed at an object boundary: the Execute may have been done */
        int error;             /* NRF_DFU_PLAN_FAILED: negative errno */
        uint8_t result, ext_error; /* and the device's result, if it refused */
} NrfDfuPlan;

/* -EINVAL for an empty firmware, a packet size of 0 or no read function. */
int nrf_dfu_plan_init(NrfDfuPlan *p, const NrfDfuPlanConfig *cfg);
/* What to do next (the plan does not move until it is fed). */
void nrf_dfu_plan_next(const NrfDfuPlan *p, NrfDfuAction *ret);
/* The response to the last CONTROL action.  0, or a negative errno when
 * the plan failed (-EPROTO: a response to another request or a device
 * error; -EFBIG: the init packet is larger than the command object; -EIO:
 * CRC mismatch after every retry; or what the read function returned). */
int nrf_dfu_plan_response(NrfDfuPlan *p, const NrfDfuResponse *r);
/* One packet of the PACKETS action was written.  1 when a receipt
 * notification is due before the next packet, 0 otherwise. */
int nrf_dfu_plan_packet_sent(NrfDfuPlan *p, const uint8_t *data, size_t len);
/* A receipt notification (a Calculate CRC response) arrived.  0 if it
 * matches what was sent; a mismatch restarts the object (or fails the plan
 * when retries are used up: -EIO). */
int nrf_dfu_plan_receipt(NrfDfuPlan *p, const NrfDfuResponse *r);
/* Bytes of the firmware the device has, for progress. */
uint32_t nrf_dfu_plan_progress(const NrfDfuPlan *p);
