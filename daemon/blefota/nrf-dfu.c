/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "codec-util.h"
#include "macro.h"
#include "nrf-dfu.h"

/* ---- names ---- */

const char *nrf_dfu_result_to_string(uint8_t result) {
        switch (result) {
        case NRF_DFU_RES_INVALID:
                return "invalid opcode";
        case NRF_DFU_RES_SUCCESS:
                return "success";
        case NRF_DFU_RES_OP_CODE_NOT_SUPPORTED:
                return "opcode not supported";
        case NRF_DFU_RES_INVALID_PARAMETER:
                return "invalid parameter";
        case NRF_DFU_RES_INSUFFICIENT_RESOURCES:
                return "insufficient resources";
        case NRF_DFU_RES_INVALID_OBJECT:
                return "invalid object";
        case NRF_DFU_RES_UNSUPPORTED_TYPE:
                return "unsupported object type";
        case NRF_DFU_RES_OPERATION_NOT_PERMITTED:
                return "operation not permitted";
        case NRF_DFU_RES_OPERATION_FAILED:
                return "operation failed";
        case NRF_DFU_RES_EXT_ERROR:
                return "extended error";
        }
        return NULL;
}

static const char *const ext_error_table[_NRF_DFU_EXT_MAX] = {
        [NRF_DFU_EXT_NO_ERROR] = "no error",
        [NRF_DFU_EXT_INVALID_ERROR_CODE] = "invalid error code",
        [NRF_DFU_EXT_WRONG_COMMAND_FORMAT] = "wrong command format",
        [NRF_DFU_EXT_UNKNOWN_COMMAND] = "unknown command",
        [NRF_DFU_EXT_INIT_COMMAND_INVALID] = "init command invalid",
        [NRF_DFU_EXT_FW_VERSION_FAILURE] = "firmware version too low",
        [NRF_DFU_EXT_HW_VERSION_FAILURE] = "hardware version mismatch",
        [NRF_DFU_EXT_SD_VERSION_FAILURE] = "SoftDevice version mismatch",
        [NRF_DFU_EXT_SIGNATURE_MISSING] = "signature missing",
        [NRF_DFU_EXT_WRONG_HASH_TYPE] = "wrong hash type",
        [NRF_DFU_EXT_HASH_FAILED] = "hash failed",
        [NRF_DFU_EXT_WRONG_SIGNATURE_TYPE] = "wrong signature type",
        [NRF_DFU_EXT_VERIFICATION_FAILED] = "verification failed",
        [NRF_DFU_EXT_INSUFFICIENT_SPACE] = "insufficient space",
};

const char *nrf_dfu_ext_error_to_string(uint8_t ext) {
        return ext < _NRF_DFU_EXT_MAX ? ext_error_table[ext] : NULL;
}

static const char *const plan_state_table[_NRF_DFU_PLAN_STATE_MAX] = {
        [NRF_DFU_PLAN_SET_PRN] = "set-prn",
        [NRF_DFU_PLAN_SELECT_COMMAND] = "select-command",
        [NRF_DFU_PLAN_CREATE_COMMAND] = "create-command",
        [NRF_DFU_PLAN_WRITE_COMMAND] = "write-command",
        [NRF_DFU_PLAN_CRC_COMMAND] = "crc-command",
        [NRF_DFU_PLAN_EXECUTE_COMMAND] = "execute-command",
        [NRF_DFU_PLAN_SELECT_DATA] = "select-data",
        [NRF_DFU_PLAN_CREATE_DATA] = "create-data",
        [NRF_DFU_PLAN_WRITE_DATA] = "write-data",
        [NRF_DFU_PLAN_CRC_DATA] = "crc-data",
        [NRF_DFU_PLAN_EXECUTE_DATA] = "execute-data",
        [NRF_DFU_PLAN_DONE] = "done",
        [NRF_DFU_PLAN_FAILED] = "failed",
};

const char *nrf_dfu_plan_state_to_string(NrfDfuPlanState s) {
        return s < _NRF_DFU_PLAN_STATE_MAX ? plan_state_table[s] : NULL;
}

/* ---- CRC-32 ---- */

/* zlib is not linked by the project, and a 1 KiB table is all it takes.
 * (The outbox's CRC-32C is another polynomial.) */
static uint32_t crc_table[256];

static void crc_table_init(void) {
        for (uint32_t i = 0; i < 256; i++) {
                uint32_t c = i;
                for (int k = 0; k < 8; k++)
                        c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
                crc_table[i] = c;
        }
}

uint32_t nrf_dfu_crc32(uint32_t crc, const void *data, size_t len) {
        const uint8_t *p = data;

        if (crc_table[1] == 0)
                crc_table_init();
        crc = ~crc;
        while (len-- > 0)
                crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
        return ~crc;
}

/* ---- requests and responses ---- */

static void put_le32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
        p[2] = (uint8_t) (v >> 16);
        p[3] = (uint8_t) (v >> 24);
}

static uint32_t get_le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

size_t nrf_dfu_encode_create(uint8_t out[static NRF_DFU_REQUEST_MAX], NrfDfuObject type, uint32_t size) {
        out[0] = NRF_DFU_OP_CREATE;
        out[1] = (uint8_t) type;
        put_le32(out + 2, size);
        return 6;
}

size_t nrf_dfu_encode_set_prn(uint8_t out[static NRF_DFU_REQUEST_MAX], uint16_t prn) {
        out[0] = NRF_DFU_OP_SET_PRN;
        out[1] = (uint8_t) prn;
        out[2] = (uint8_t) (prn >> 8);
        return 3;
}

size_t nrf_dfu_encode_crc(uint8_t out[static NRF_DFU_REQUEST_MAX]) {
        out[0] = NRF_DFU_OP_CRC;
        return 1;
}

size_t nrf_dfu_encode_execute(uint8_t out[static NRF_DFU_REQUEST_MAX]) {
        out[0] = NRF_DFU_OP_EXECUTE;
        return 1;
}

size_t nrf_dfu_encode_select(uint8_t out[static NRF_DFU_REQUEST_MAX], NrfDfuObject type) {
        out[0] = NRF_DFU_OP_SELECT;
        out[1] = (uint8_t) type;
        return 2;
}

size_t nrf_dfu_encode_enter_bootloader(uint8_t out[static NRF_DFU_REQUEST_MAX]) {
        out[0] = NRF_DFU_BUTTONLESS_OP_ENTER_BOOTLOADER;
        return 1;
}

int nrf_dfu_decode_response(const uint8_t *buf, size_t len, NrfDfuResponse *ret) {
        NrfDfuResponse r = {};
        size_t n;

        if (!buf || len < 3 || len > NRF_DFU_RESPONSE_MAX)
                return -EBADMSG;
        if (buf[0] != NRF_DFU_OP_RESPONSE)
                return -EPROTO;
        r.request = buf[1];
        r.result = buf[2];
        n = len - 3;
        if (r.result != NRF_DFU_RES_SUCCESS) {
                /* Errors carry nothing but the extended code. */
                if (r.result == NRF_DFU_RES_EXT_ERROR) {
                        if (n != 1)
                                return -EBADMSG;
                        r.ext_error = buf[3];
                } else if (n != 0 || !nrf_dfu_result_to_string(r.result))
                        return -EBADMSG;
                *ret = r;
                return 0;
        }
        switch (r.request) {
        case NRF_DFU_OP_SELECT:
                if (n != 12)
                        return -EBADMSG;
                r.has_object = r.has_crc = true;
                r.max_size = get_le32(buf + 3);
                r.offset = get_le32(buf + 7);
                r.crc = get_le32(buf + 11);
                break;
        case NRF_DFU_OP_CRC:
                if (n != 8)
                        return -EBADMSG;
                r.has_crc = true;
                r.offset = get_le32(buf + 3);
                r.crc = get_le32(buf + 7);
                break;
        case NRF_DFU_OP_CREATE:
        case NRF_DFU_OP_SET_PRN:
        case NRF_DFU_OP_EXECUTE:
        case NRF_DFU_OP_ABORT:
                if (n != 0)
                        return -EBADMSG;
                break;
        case NRF_DFU_OP_MTU_GET:
                if (n != 2)
                        return -EBADMSG;
                r.mtu = (uint16_t) (buf[3] | buf[4] << 8);
                break;
        default:
                /* Protocol version, ping, hardware and firmware version: payload not used here. */
                break;
        }
        *ret = r;
        return 0;
}

int nrf_dfu_decode_buttonless(const uint8_t *buf, size_t len, uint8_t *ret_op, uint8_t *ret_result) {
        if (!buf || len != 3)
                return -EBADMSG;
        if (buf[0] != NRF_DFU_BUTTONLESS_OP_RESPONSE)
                return -EPROTO;
        *ret_op = buf[1];
        *ret_result = buf[2];
        return 0;
}

int nrf_dfu_shift_address(const char *addr, int delta, char ret[static NRF_DFU_ADDR_STR_MAX]) {
        char norm[BT_ADDR_STR_LEN + 1];
        unsigned lsb;
        int r;

        if (!addr || (delta != 1 && delta != -1))
                return -EINVAL;
        r = bt_addr_normalize(addr, norm);
        if (r < 0)
                return r;
        /* "AA:BB:CC:DD:EE:FF": the least significant octet is written last. */
        if (sscanf(norm + 15, "%2x", &lsb) != 1)
                return -EINVAL;
        lsb = (lsb + (unsigned) (delta + 256)) & 0xff; /* wraps, no carry: see the header */
        memcpy(ret, norm, 15);
        snprintf(ret + 15, NRF_DFU_ADDR_STR_MAX - 15, "%02X", lsb);
        return 0;
}

/* ---- planner ---- */

/* CRC-32 of [0, end) of an image, read through the callback; with the CRC
 * at mid (≤ end) on the way. */
static int prefix_crc(NrfDfuPlan *p, NrfDfuObject which, uint32_t mid, uint32_t end, uint32_t *ret_mid,
                      uint32_t *ret_end) {
        uint8_t buf[1024];
        uint32_t crc = 0, off = 0;

        if (ret_mid && mid == 0)
                *ret_mid = 0;
        while (off < end) {
                uint32_t stop = off < mid ? mid : end;
                size_t n = MIN(sizeof buf, (size_t) (stop - off));
                int r = p->cfg.read(p->cfg.userdata, which, off, buf, n);
                if (r < 0)
                        return r;
                crc = nrf_dfu_crc32(crc, buf, n);
                off += (uint32_t) n;
                if (off == mid && ret_mid)
                        *ret_mid = crc;
        }
        *ret_end = crc;
        return 0;
}

static int plan_fail(NrfDfuPlan *p, int error, const NrfDfuResponse *r) {
        p->state = NRF_DFU_PLAN_FAILED;
        p->error = error;
        if (r) {
                p->result = r->result;
                p->ext_error = r->ext_error;
        }
        return error;
}

/* The next data object starts where the device's image ends. */
static void start_data_object(NrfDfuPlan *p, uint32_t start, uint32_t crc_at_start) {
        p->obj_start = start;
        p->obj_end = start + MIN(p->data_max, p->cfg.fw_len - start);
        p->crc_obj_start = crc_at_start;
        p->sent = start;
        p->crc = crc_at_start;
        p->state = NRF_DFU_PLAN_CREATE_DATA;
}

/* An object whose CRC does not match is created and sent again. */
static int retry_object(NrfDfuPlan *p, const NrfDfuResponse *r) {
        if (++p->tries > p->cfg.retries)
                return plan_fail(p, -EIO, r);
        p->sent = p->obj_start;
        p->crc = p->crc_obj_start;
        p->state = p->state <= NRF_DFU_PLAN_EXECUTE_COMMAND ? NRF_DFU_PLAN_CREATE_COMMAND : NRF_DFU_PLAN_CREATE_DATA;
        return 0;
}

int nrf_dfu_plan_init(NrfDfuPlan *p, const NrfDfuPlanConfig *cfg) {
        if (!p || !cfg || !cfg->read || cfg->packet_size == 0 || cfg->fw_len == 0 || cfg->init_len == 0)
                return -EINVAL;
        *p = (NrfDfuPlan) { .cfg = *cfg, .state = NRF_DFU_PLAN_SET_PRN };
        return 0;
}

void nrf_dfu_plan_next(const NrfDfuPlan *p, NrfDfuAction *ret) {
        NrfDfuAction a = { .packet_size = p->cfg.packet_size };

        switch (p->state) {
        case NRF_DFU_PLAN_SET_PRN:
                a.cp_len = nrf_dfu_encode_set_prn(a.cp, p->cfg.prn);
                break;
        case NRF_DFU_PLAN_SELECT_COMMAND:
                a.cp_len = nrf_dfu_encode_select(a.cp, NRF_DFU_OBJ_COMMAND);
                break;
        case NRF_DFU_PLAN_CREATE_COMMAND:
                a.cp_len = nrf_dfu_encode_create(a.cp, NRF_DFU_OBJ_COMMAND, p->cfg.init_len);
                break;
        case NRF_DFU_PLAN_SELECT_DATA:
                a.cp_len = nrf_dfu_encode_select(a.cp, NRF_DFU_OBJ_DATA);
                break;
        case NRF_DFU_PLAN_CREATE_DATA:
                a.cp_len = nrf_dfu_encode_create(a.cp, NRF_DFU_OBJ_DATA, p->obj_end - p->obj_start);
                break;
        case NRF_DFU_PLAN_CRC_COMMAND:
        case NRF_DFU_PLAN_CRC_DATA:
                a.cp_len = nrf_dfu_encode_crc(a.cp);
                break;
        case NRF_DFU_PLAN_EXECUTE_COMMAND:
        case NRF_DFU_PLAN_EXECUTE_DATA:
                a.cp_len = nrf_dfu_encode_execute(a.cp);
                break;
        case NRF_DFU_PLAN_WRITE_COMMAND:
        case NRF_DFU_PLAN_WRITE_DATA:
                a.kind = NRF_DFU_ACTION_PACKETS;
                a.object = p->state == NRF_DFU_PLAN_WRITE_COMMAND ? NRF_DFU_OBJ_COMMAND : NRF_DFU_OBJ_DATA;
                a.off = p->sent;
                a.len = p->obj_end - p->sent;
                break;
        case NRF_DFU_PLAN_DONE:
                a.kind = NRF_DFU_ACTION_DONE;
                break;
        case NRF_DFU_PLAN_FAILED:
        case _NRF_DFU_PLAN_STATE_MAX:
                a.kind = NRF_DFU_ACTION_FAILED;
                break;
        }
        *ret = a;
}

static uint8_t expected_op(NrfDfuPlanState s) {
        switch (s) {
        case NRF_DFU_PLAN_SET_PRN:
                return NRF_DFU_OP_SET_PRN;
        case NRF_DFU_PLAN_SELECT_COMMAND:
        case NRF_DFU_PLAN_SELECT_DATA:
                return NRF_DFU_OP_SELECT;
        case NRF_DFU_PLAN_CREATE_COMMAND:
        case NRF_DFU_PLAN_CREATE_DATA:
                return NRF_DFU_OP_CREATE;
        case NRF_DFU_PLAN_CRC_COMMAND:
        case NRF_DFU_PLAN_CRC_DATA:
                return NRF_DFU_OP_CRC;
        case NRF_DFU_PLAN_EXECUTE_COMMAND:
        case NRF_DFU_PLAN_EXECUTE_DATA:
                return NRF_DFU_OP_EXECUTE;
        case NRF_DFU_PLAN_WRITE_COMMAND:
        case NRF_DFU_PLAN_WRITE_DATA:
        case NRF_DFU_PLAN_DONE:
        case NRF_DFU_PLAN_FAILED:
        case _NRF_DFU_PLAN_STATE_MAX:
                break;
        }
        return NRF_DFU_OP_RESPONSE; /* no request is outstanding */
}

static int on_select_command(NrfDfuPlan *p, const NrfDfuResponse *r) {
        uint32_t crc;
        int k;

        p->cmd_max = r->max_size;
        if (p->cfg.init_len > r->max_size)
                return plan_fail(p, -EFBIG, NULL);
        p->obj_start = 0;
        p->obj_end = p->cfg.init_len;
        p->crc_obj_start = 0;
        /* The init packet the device already has, whole or in part (as pc-nrfutil and
         * the Android DFU library resume it): send what is missing and execute. */
        if (r->offset > 0 && r->offset <= p->cfg.init_len) {
                k = prefix_crc(p, NRF_DFU_OBJ_COMMAND, 0, r->offset, NULL, &crc);
                if (k < 0)
                        return plan_fail(p, k, NULL);
                if (crc == r->crc) {
                        p->resumed = true;
                        p->sent = r->offset;
                        p->crc = crc;
                        p->state = r->offset < p->cfg.init_len ? NRF_DFU_PLAN_WRITE_COMMAND
                                                                : NRF_DFU_PLAN_EXECUTE_COMMAND;
                        return 0;
                }
        }
        p->sent = 0;
        p->crc = 0;
        p->state = NRF_DFU_PLAN_CREATE_COMMAND;
        return 0;
}

static int on_select_data(NrfDfuPlan *p, const NrfDfuResponse *r) {
        uint32_t off = r->offset, rem, crc_obj = 0, crc = 0;
        int k;

        if (r->max_size == 0)
                return plan_fail(p, -EPROTO, r);
        p->data_max = r->max_size;
        p->sent = 0;
        p->crc = 0;
        if (off == 0 || off > p->cfg.fw_len) {
                start_data_object(p, 0, 0);
                return 0;
        }
        rem = off % p->data_max;
        k = prefix_crc(p, NRF_DFU_OBJ_DATA, off - (rem ? rem : MIN(off, p->data_max)), off, &crc_obj, &crc);
        if (k < 0)
                return plan_fail(p, k, NULL);
        if (crc != r->crc) {
                /* What the device has is not this firmware: drop its last object (the
                 * partial one, or the last whole one) and go on from there. */
                uint32_t start = off - (rem ? rem : MIN(off, p->data_max));
                start_data_object(p, start, crc_obj);
                return 0;
        }
        p->resumed = true;
        p->obj_start = off - (rem ? rem : MIN(off, p->data_max));
        p->crc_obj_start = crc_obj;
        p->sent = off;
        p->crc = crc;
        if (rem != 0 && off != p->cfg.fw_len) {
                /* Finish the object the device has started. */
                p->obj_end = p->obj_start + MIN(p->data_max, p->cfg.fw_len - p->obj_start);
                p->state = NRF_DFU_PLAN_WRITE_DATA;
        } else {
                /* A whole object: it may not have been executed yet. */
                p->obj_end = off;
                p->state = NRF_DFU_PLAN_EXECUTE_DATA;
                p->exec_unsure = true;
        }
        return 0;
}

int nrf_dfu_plan_response(NrfDfuPlan *p, const NrfDfuResponse *r) {
        uint8_t want = expected_op(p->state);

        if (want == NRF_DFU_OP_RESPONSE || r->request != want)
                return plan_fail(p, -EPROTO, NULL);
        if (p->state == NRF_DFU_PLAN_EXECUTE_DATA && p->exec_unsure &&
            r->result == NRF_DFU_RES_OPERATION_NOT_PERMITTED) {
                /* The whole object the device has was executed before the link dropped: the
                 * bootloader refuses a second Execute (nrf_dfu_req_handler.c: nothing received
                 * since the last one).  Go on with the next object. */
                NrfDfuResponse ok = *r;
                ok.result = NRF_DFU_RES_SUCCESS;
                p->exec_unsure = false;
                return nrf_dfu_plan_response(p, &ok);
        }
        p->exec_unsure = false;
        if (r->result != NRF_DFU_RES_SUCCESS)
                return plan_fail(p, -EPROTO, r);

        switch (p->state) {
        case NRF_DFU_PLAN_SET_PRN:
                p->since_prn = 0;
                p->state = NRF_DFU_PLAN_SELECT_COMMAND;
                return 0;
        case NRF_DFU_PLAN_SELECT_COMMAND:
                return on_select_command(p, r);
        case NRF_DFU_PLAN_CREATE_COMMAND:
        case NRF_DFU_PLAN_CREATE_DATA:
                /* Create restarts the bootloader's receipt count. */
                p->since_prn = 0;
                p->state = p->state == NRF_DFU_PLAN_CREATE_COMMAND ? NRF_DFU_PLAN_WRITE_COMMAND
                                                                    : NRF_DFU_PLAN_WRITE_DATA;
                return 0;
        case NRF_DFU_PLAN_CRC_COMMAND:
        case NRF_DFU_PLAN_CRC_DATA:
                if (r->offset != p->obj_end || r->crc != p->crc)
                        return retry_object(p, r);
                p->state = p->state == NRF_DFU_PLAN_CRC_COMMAND ? NRF_DFU_PLAN_EXECUTE_COMMAND
                                                                 : NRF_DFU_PLAN_EXECUTE_DATA;
                return 0;
        case NRF_DFU_PLAN_EXECUTE_COMMAND:
                p->tries = 0;
                p->state = NRF_DFU_PLAN_SELECT_DATA;
                return 0;
        case NRF_DFU_PLAN_SELECT_DATA:
                return on_select_data(p, r);
        case NRF_DFU_PLAN_EXECUTE_DATA:
                p->tries = 0;
                if (p->obj_end >= p->cfg.fw_len) {
                        p->state = NRF_DFU_PLAN_DONE;
                        return 0;
                }
                start_data_object(p, p->obj_end, p->crc);
                return 0;
        case NRF_DFU_PLAN_WRITE_COMMAND:
        case NRF_DFU_PLAN_WRITE_DATA:
        case NRF_DFU_PLAN_DONE:
        case NRF_DFU_PLAN_FAILED:
        case _NRF_DFU_PLAN_STATE_MAX:
                break;
        }
        return plan_fail(p, -EPROTO, NULL);
}

int nrf_dfu_plan_packet_sent(NrfDfuPlan *p, const uint8_t *data, size_t len) {
        if (p->state != NRF_DFU_PLAN_WRITE_COMMAND && p->state != NRF_DFU_PLAN_WRITE_DATA)
                return plan_fail(p, -EPROTO, NULL);
        if (!data || len == 0 || len > p->cfg.packet_size || len > p->obj_end - p->sent)
                return plan_fail(p, -EINVAL, NULL);
        p->crc = nrf_dfu_crc32(p->crc, data, len);
        p->sent += (uint32_t) len;
        if (p->sent == p->obj_end)
                p->state = p->state == NRF_DFU_PLAN_WRITE_COMMAND ? NRF_DFU_PLAN_CRC_COMMAND : NRF_DFU_PLAN_CRC_DATA;
        if (p->cfg.prn == 0)
                return 0;
        if (++p->since_prn < p->cfg.prn)
                return 0;
        p->since_prn = 0;
        return 1;
}

int nrf_dfu_plan_receipt(NrfDfuPlan *p, const NrfDfuResponse *r) {
        if (p->state != NRF_DFU_PLAN_WRITE_COMMAND && p->state != NRF_DFU_PLAN_WRITE_DATA &&
            p->state != NRF_DFU_PLAN_CRC_COMMAND && p->state != NRF_DFU_PLAN_CRC_DATA)
                return plan_fail(p, -EPROTO, NULL);
        if (r->request != NRF_DFU_OP_CRC || r->result != NRF_DFU_RES_SUCCESS || !r->has_crc)
                return plan_fail(p, -EPROTO, r);
        if (r->offset != p->sent || r->crc != p->crc)
                return retry_object(p, r);
        return 0;
}

uint32_t nrf_dfu_plan_progress(const NrfDfuPlan *p) {
        if (p->state == NRF_DFU_PLAN_DONE)
                return p->cfg.fw_len;
        if (p->state >= NRF_DFU_PLAN_SELECT_DATA && p->state < NRF_DFU_PLAN_DONE)
                return p->sent;
        return 0;
}
