/* SPDX-License-Identifier: MIT */
/*
 * The nRF5 SDK Secure DFU codec and planner.  Byte vectors are written out
 * from the nRF5 SDK 17 documentation of the DFU transport ("DFU protocol":
 * nrf_dfu_req_handler.h op codes and result codes, little-endian fields,
 * responses [0x60, request, result, payload]) and ble_dfu.h for the
 * buttonless service.  The planner runs against a small bootloader model
 * written here from the same description (object offsets, discard of an
 * unexecuted object on Create, receipt notifications every N packets since
 * Create or Set PRN, CRC-32 of everything received).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nrf-dfu.h"

static void test_crc32(void **state) {
        (void) state;
        /* The CRC-32 check value (IEEE 802.3, zlib): "123456789" → 0xCBF43926. */
        assert_int_equal(nrf_dfu_crc32(0, "123456789", 9), 0xcbf43926u);
        assert_int_equal(nrf_dfu_crc32(nrf_dfu_crc32(0, "1234", 4), "56789", 5), 0xcbf43926u);
        assert_int_equal(nrf_dfu_crc32(0, "", 0), 0);
}

static void test_encode(void **state) {
        (void) state;
        uint8_t b[NRF_DFU_REQUEST_MAX];

        assert_int_equal(nrf_dfu_encode_create(b, NRF_DFU_OBJ_DATA, 4096), 6);
        assert_memory_equal(b, ((const uint8_t[]) { 0x01, 0x02, 0x00, 0x10, 0x00, 0x00 }), 6);
        assert_int_equal(nrf_dfu_encode_create(b, NRF_DFU_OBJ_COMMAND, 0x8c), 6);
        assert_memory_equal(b, ((const uint8_t[]) { 0x01, 0x01, 0x8c, 0x00, 0x00, 0x00 }), 6);
        assert_int_equal(nrf_dfu_encode_set_prn(b, 0x010c), 3);
        assert_memory_equal(b, ((const uint8_t[]) { 0x02, 0x0c, 0x01 }), 3);
        assert_int_equal(nrf_dfu_encode_crc(b), 1);
        assert_int_equal(b[0], 0x03);
        assert_int_equal(nrf_dfu_encode_execute(b), 1);
        assert_int_equal(b[0], 0x04);
        assert_int_equal(nrf_dfu_encode_select(b, NRF_DFU_OBJ_COMMAND), 2);
        assert_memory_equal(b, ((const uint8_t[]) { 0x06, 0x01 }), 2);
        assert_int_equal(nrf_dfu_encode_enter_bootloader(b), 1);
        assert_int_equal(b[0], 0x01);
}

static void test_decode(void **state) {
        (void) state;
        NrfDfuResponse r;
        uint8_t op, res;

        /* Select data: max 4096, offset 0x2345, CRC 0xdeadbeef */
        const uint8_t sel[] = { 0x60, 0x06, 0x01, 0x00, 0x10, 0x00, 0x00, 0x45, 0x23, 0x00, 0x00,
                                0xef, 0xbe, 0xad, 0xde };
        assert_int_equal(nrf_dfu_decode_response(sel, sizeof sel, &r), 0);
        assert_true(r.has_object && r.has_crc);
        assert_int_equal(r.request, NRF_DFU_OP_SELECT);
        assert_int_equal(r.max_size, 4096);
        assert_int_equal(r.offset, 0x2345);
        assert_int_equal(r.crc, 0xdeadbeefu);
        assert_int_equal(nrf_dfu_decode_response(sel, sizeof sel - 1, &r), -EBADMSG);

        /* Calculate CRC (also the receipt notification): offset 20, CRC 0x01020304 */
        const uint8_t crc[] = { 0x60, 0x03, 0x01, 0x14, 0x00, 0x00, 0x00, 0x04, 0x03, 0x02, 0x01 };
        assert_int_equal(nrf_dfu_decode_response(crc, sizeof crc, &r), 0);
        assert_true(r.has_crc && !r.has_object);
        assert_int_equal(r.offset, 20);
        assert_int_equal(r.crc, 0x01020304u);

        /* Create refused: insufficient resources; Execute: extended error 0x05 (FW version). */
        assert_int_equal(nrf_dfu_decode_response((const uint8_t[]) { 0x60, 0x01, 0x04 }, 3, &r), 0);
        assert_int_equal(r.result, NRF_DFU_RES_INSUFFICIENT_RESOURCES);
        assert_int_equal(nrf_dfu_decode_response((const uint8_t[]) { 0x60, 0x04, 0x0b, 0x05 }, 4, &r), 0);
        assert_int_equal(r.result, NRF_DFU_RES_EXT_ERROR);
        assert_int_equal(r.ext_error, NRF_DFU_EXT_FW_VERSION_FAILURE);
        assert_string_equal(nrf_dfu_ext_error_to_string(r.ext_error), "firmware version too low");
        assert_string_equal(nrf_dfu_result_to_string(NRF_DFU_RES_OPERATION_FAILED), "operation failed");

        /* Execute success; an unknown result; extended error without its code; not a response. */
        assert_int_equal(nrf_dfu_decode_response((const uint8_t[]) { 0x60, 0x04, 0x01 }, 3, &r), 0);
        assert_int_equal(nrf_dfu_decode_response((const uint8_t[]) { 0x60, 0x04, 0x09 }, 3, &r), -EBADMSG);
        assert_int_equal(nrf_dfu_decode_response((const uint8_t[]) { 0x60, 0x04, 0x0b }, 3, &r), -EBADMSG);
        assert_int_equal(nrf_dfu_decode_response((const uint8_t[]) { 0x60, 0x04, 0x01, 0x00 }, 4, &r), -EBADMSG);
        assert_int_equal(nrf_dfu_decode_response((const uint8_t[]) { 0x20, 0x01, 0x01 }, 3, &r), -EPROTO);
        assert_int_equal(nrf_dfu_decode_response(sel, 2, &r), -EBADMSG);

        /* Buttonless: [0x20, 0x01 enter bootloader, 0x01 success] */
        assert_int_equal(nrf_dfu_decode_buttonless((const uint8_t[]) { 0x20, 0x01, 0x01 }, 3, &op, &res), 0);
        assert_int_equal(op, NRF_DFU_BUTTONLESS_OP_ENTER_BOOTLOADER);
        assert_int_equal(res, NRF_DFU_BUTTONLESS_SUCCESS);
        assert_int_equal(nrf_dfu_decode_buttonless((const uint8_t[]) { 0x60, 0x01, 0x01 }, 3, &op, &res), -EPROTO);
        assert_int_equal(nrf_dfu_decode_buttonless((const uint8_t[]) { 0x20, 0x01 }, 2, &op, &res), -EBADMSG);
}

static void test_address(void **state) {
        (void) state;
        char out[NRF_DFU_ADDR_STR_MAX];

        assert_int_equal(nrf_dfu_shift_address("aa:bb:cc:dd:ee:fe", 1, out), 0);
        assert_string_equal(out, "AA:BB:CC:DD:EE:FF");
        /* The bootloader adds one to the least significant octet as a uint8_t:
         * 0xFF wraps to 0x00 and nothing carries into 0xEE (nrf_dfu_ble.c;
         * the Android DFU library masks with 0xFF; lte-gateway increments
         * a.val[0]).  A carry would give AA:BB:CC:DD:EF:00, where no
         * bootloader ever advertises. */
        assert_int_equal(nrf_dfu_shift_address("AA:BB:CC:DD:EE:FF", 1, out), 0);
        assert_string_equal(out, "AA:BB:CC:DD:EE:00");
        assert_int_equal(nrf_dfu_shift_address("00:00:00:00:FF:FF", 1, out), 0);
        assert_string_equal(out, "00:00:00:00:FF:00");
        /* And back, with the same wrap and no borrow. */
        assert_int_equal(nrf_dfu_shift_address("AA:BB:CC:DD:EE:00", -1, out), 0);
        assert_string_equal(out, "AA:BB:CC:DD:EE:FF");
        assert_int_equal(nrf_dfu_shift_address("C0:01:02:03:04:7F", 1, out), 0);
        assert_string_equal(out, "C0:01:02:03:04:80");
        assert_int_equal(nrf_dfu_shift_address("AA:BB:CC:DD:EE", 1, out), -EINVAL);
        assert_int_equal(nrf_dfu_shift_address("AA:BB:CC:DD:EE:FG", 1, out), -EINVAL);
        assert_int_equal(nrf_dfu_shift_address("AA:BB:CC:DD:EE:FF", 2, out), -EINVAL);
}

/* ---- a bootloader model ---- */

#define CMD_MAX 512u
#define DATA_MAX 4096u
#define FW_MAX (64u * 1024u)

typedef struct Boot {
        uint8_t cmd[CMD_MAX];
        uint32_t cmd_size, cmd_off;
        bool cmd_valid;
        uint8_t fw[FW_MAX];
        uint32_t fw_off, fw_exec, obj_size;
        NrfDfuObject current;
        uint16_t prn, prn_cnt;
        int corrupt_packets; /* flip a bit in the next n packets */
        uint8_t fail_op, fail_result, fail_ext;
        unsigned creates, packets, receipts;
} Boot;

static size_t boot_rsp(uint8_t *out, uint8_t op, uint8_t result) {
        out[0] = 0x60;
        out[1] = op;
        out[2] = result;
        return 3;
}

static size_t put32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
        p[2] = (uint8_t) (v >> 16);
        p[3] = (uint8_t) (v >> 24);
        return 4;
}

static size_t boot_crc_rsp(Boot *b, uint8_t *out) {
        size_t n = boot_rsp(out, NRF_DFU_OP_CRC, NRF_DFU_RES_SUCCESS);
        if (b->current == NRF_DFU_OBJ_COMMAND) {
                n += put32(out + n, b->cmd_off);
                n += put32(out + n, nrf_dfu_crc32(0, b->cmd, b->cmd_off));
        } else {
                n += put32(out + n, b->fw_off);
                n += put32(out + n, nrf_dfu_crc32(0, b->fw, b->fw_off));
        }
        return n;
}

static size_t boot_control(Boot *b, const uint8_t *req, size_t len, uint8_t *out) {
        uint8_t op = req[0];
        size_t n;

        if (b->fail_op == op) {
                n = boot_rsp(out, op, b->fail_result);
                if (b->fail_result == NRF_DFU_RES_EXT_ERROR)
                        out[n++] = b->fail_ext;
                return n;
        }
        switch (op) {
        case NRF_DFU_OP_SET_PRN:
                assert_int_equal(len, 3);
                b->prn = b->prn_cnt = (uint16_t) (req[1] | req[2] << 8);
                return boot_rsp(out, op, NRF_DFU_RES_SUCCESS);
        case NRF_DFU_OP_SELECT:
                b->current = req[1];
                n = boot_rsp(out, op, NRF_DFU_RES_SUCCESS);
                if (req[1] == NRF_DFU_OBJ_COMMAND) {
                        n += put32(out + n, CMD_MAX);
                        n += put32(out + n, b->cmd_off);
                        n += put32(out + n, nrf_dfu_crc32(0, b->cmd, b->cmd_off));
                } else {
                        n += put32(out + n, DATA_MAX);
                        n += put32(out + n, b->fw_off);
                        n += put32(out + n, nrf_dfu_crc32(0, b->fw, b->fw_off));
                }
                return n;
        case NRF_DFU_OP_CREATE: {
                uint32_t size = req[2] | req[3] << 8 | req[4] << 16 | (uint32_t) req[5] << 24;
                b->creates++;
                b->current = req[1];
                b->prn_cnt = b->prn;
                if (req[1] == NRF_DFU_OBJ_COMMAND) {
                        if (size > CMD_MAX)
                                return boot_rsp(out, op, NRF_DFU_RES_INSUFFICIENT_RESOURCES);
                        b->cmd_size = size;
                        b->cmd_off = 0;
                        b->cmd_valid = false;
                } else {
                        if (size > DATA_MAX || b->fw_exec + size > FW_MAX)
                                return boot_rsp(out, op, NRF_DFU_RES_INSUFFICIENT_RESOURCES);
                        b->fw_off = b->fw_exec; /* an unexecuted object is discarded */
                        b->obj_size = size;
                }
                return boot_rsp(out, op, NRF_DFU_RES_SUCCESS);
        }
        case NRF_DFU_OP_CRC:
                return boot_crc_rsp(b, out);
        case NRF_DFU_OP_EXECUTE:
                if (b->current == NRF_DFU_OBJ_COMMAND) {
                        if (b->cmd_off != b->cmd_size)
                                return boot_rsp(out, op, NRF_DFU_RES_OPERATION_NOT_PERMITTED);
                        b->cmd_valid = true;
                } else {
                        if (!b->cmd_valid || b->fw_off == b->fw_exec || b->fw_off - b->fw_exec > DATA_MAX)
                                return boot_rsp(out, op, NRF_DFU_RES_OPERATION_NOT_PERMITTED);
                        b->fw_exec = b->fw_off;
                }
                return boot_rsp(out, op, NRF_DFU_RES_SUCCESS);
        }
        return boot_rsp(out, op, NRF_DFU_RES_OP_CODE_NOT_SUPPORTED);
}

/* A packet; returns the length of a receipt notification, or 0. */
static size_t boot_packet(Boot *b, const uint8_t *data, size_t len, uint8_t *out) {
        uint8_t *dst = b->current == NRF_DFU_OBJ_COMMAND ? b->cmd + b->cmd_off : b->fw + b->fw_off;

        b->packets++;
        memcpy(dst, data, len);
        if (b->corrupt_packets > 0) {
                b->corrupt_packets--;
                dst[0] ^= 0x01;
        }
        if (b->current == NRF_DFU_OBJ_COMMAND)
                b->cmd_off += (uint32_t) len;
        else
                b->fw_off += (uint32_t) len;
        if (b->prn && --b->prn_cnt == 0) {
                b->prn_cnt = b->prn;
                b->receipts++;
                return boot_crc_rsp(b, out);
        }
        return 0;
}

typedef struct Images {
        const uint8_t *init, *fw;
        uint32_t init_len, fw_len;
        unsigned reads;
} Images;

static int read_image(void *userdata, NrfDfuObject which, uint32_t off, uint8_t *buf, size_t len) {
        Images *im = userdata;
        const uint8_t *src = which == NRF_DFU_OBJ_COMMAND ? im->init : im->fw;
        uint32_t size = which == NRF_DFU_OBJ_COMMAND ? im->init_len : im->fw_len;

        im->reads++;
        if (off > size || len > size - off)
                return -EIO;
        memcpy(buf, src + off, len);
        return 0;
}

/* Runs a plan against the model to its end; returns the plan's error. */
static int run(Boot *b, Images *im, uint16_t prn, size_t packet_size, unsigned retries, NrfDfuPlan *p) {
        NrfDfuPlanConfig cfg = { .init_len = im->init_len, .fw_len = im->fw_len, .prn = prn,
                                 .packet_size = packet_size, .retries = retries, .read = read_image,
                                 .userdata = im };
        assert_int_equal(nrf_dfu_plan_init(p, &cfg), 0);
        for (unsigned steps = 0; steps < 100000; steps++) {
                NrfDfuAction a;
                NrfDfuResponse r;
                uint8_t out[NRF_DFU_RESPONSE_MAX];
                size_t n;

                nrf_dfu_plan_next(p, &a);
                switch (a.kind) {
                case NRF_DFU_ACTION_CONTROL:
                        n = boot_control(b, a.cp, a.cp_len, out);
                        assert_int_equal(nrf_dfu_decode_response(out, n, &r), 0);
                        (void) nrf_dfu_plan_response(p, &r);
                        break;
                case NRF_DFU_ACTION_PACKETS: {
                        const uint8_t *src = a.object == NRF_DFU_OBJ_COMMAND ? im->init : im->fw;
                        uint32_t end = a.off + a.len;
                        for (uint32_t off = a.off; off < end;) {
                                size_t k = end - off < a.packet_size ? end - off : a.packet_size;
                                n = boot_packet(b, src + off, k, out);
                                off += (uint32_t) k;
                                int due = nrf_dfu_plan_packet_sent(p, src + off - k, k);
                                assert_true(due >= 0);
                                /* The model notifies exactly when the plan waits for it. */
                                assert_int_equal(due == 1, n > 0);
                                if (n > 0) {
                                        assert_int_equal(nrf_dfu_decode_response(out, n, &r), 0);
                                        if (nrf_dfu_plan_receipt(p, &r) < 0 || p->sent != off)
                                                break; /* restarted or failed: ask the plan again */
                                }
                        }
                        break;
                }
                case NRF_DFU_ACTION_DONE:
                        return 0;
                case NRF_DFU_ACTION_FAILED:
                        return p->error;
                }
        }
        fail_msg("plan did not end");
        return 0;
}

static uint8_t init_packet[140], firmware[10000];

static void fill_images(Images *im) {
        for (size_t i = 0; i < sizeof init_packet; i++)
                init_packet[i] = (uint8_t) (i * 7 + 3);
        for (size_t i = 0; i < sizeof firmware; i++)
                firmware[i] = (uint8_t) (i * 31 + (i >> 8));
        *im = (Images) { .init = init_packet, .fw = firmware, .init_len = sizeof init_packet,
                         .fw_len = sizeof firmware };
}

static void test_plan_full(void **state) {
        (void) state;
        Boot *b = calloc(1, sizeof *b);
        Images im;
        NrfDfuPlan p;

        fill_images(&im);
        assert_int_equal(run(b, &im, 12, 20, 3, &p), 0);
        assert_memory_equal(b->cmd, init_packet, sizeof init_packet);
        assert_int_equal(b->fw_exec, sizeof firmware);
        assert_memory_equal(b->fw, firmware, sizeof firmware);
        /* One command object and three data objects (4096 + 4096 + 1808). */
        assert_int_equal(b->creates, 4);
        /* ceil(140/20) = 7 packets for the init packet, 205 + 205 + 91 for the firmware. */
        assert_int_equal(b->packets, 7 + 205 + 205 + 91);
        assert_false(p.resumed);
        assert_int_equal(nrf_dfu_plan_progress(&p), sizeof firmware);
        free(b);
}

static void test_plan_resume(void **state) {
        (void) state;
        Boot *b = calloc(1, sizeof *b);
        Images im;
        NrfDfuPlan p;

        fill_images(&im);
        /* The device has the init packet executed and 5000 bytes of firmware:
         * 4096 executed, 904 of the second object (a link lost mid-object). */
        memcpy(b->cmd, init_packet, sizeof init_packet);
        b->cmd_size = b->cmd_off = sizeof init_packet;
        b->cmd_valid = true;
        memcpy(b->fw, firmware, 5000);
        b->fw_off = 5000;
        b->fw_exec = 4096;
        b->current = NRF_DFU_OBJ_DATA;
        assert_int_equal(run(b, &im, 0, 100, 3, &p), 0);
        assert_true(p.resumed);
        assert_memory_equal(b->fw, firmware, sizeof firmware);
        assert_int_equal(b->fw_exec, sizeof firmware);
        /* Nothing of the init packet again; the rest of object 2 without a Create, then object 3. */
        assert_int_equal(b->creates, 1);
        assert_int_equal(b->packets, (8192 - 5000 + 99) / 100 + (10000 - 8192 + 99) / 100);

        /* The same, but what the device has is another firmware: its last
         * object is dropped and sent again from 4096. */
        memset(b, 0, sizeof *b);
        memcpy(b->cmd, init_packet, sizeof init_packet);
        b->cmd_size = b->cmd_off = sizeof init_packet;
        b->cmd_valid = true;
        memcpy(b->fw, firmware, 5000);
        b->fw[4500] ^= 0xff;
        b->fw_off = 5000;
        b->fw_exec = 4096;
        assert_int_equal(run(b, &im, 0, 100, 3, &p), 0);
        assert_memory_equal(b->fw, firmware, sizeof firmware);
        assert_int_equal(b->creates, 2);
        free(b);
}

static void test_plan_resume_executed_boundary(void **state) {
        (void) state;
        Boot *b = calloc(1, sizeof *b);
        Images im;
        NrfDfuPlan p;

        fill_images(&im);
        /* The link dropped right after the second object was executed: Select says 8192 and the
         * bootloader refuses to execute it again (operation not permitted).  That is no error. */
        memcpy(b->cmd, init_packet, sizeof init_packet);
        b->cmd_size = b->cmd_off = sizeof init_packet;
        b->cmd_valid = true;
        memcpy(b->fw, firmware, 8192);
        b->fw_off = b->fw_exec = 8192;
        b->current = NRF_DFU_OBJ_DATA;
        assert_int_equal(run(b, &im, 0, 100, 3, &p), 0);
        assert_memory_equal(b->fw, firmware, sizeof firmware);
        assert_int_equal(b->fw_exec, sizeof firmware);
        assert_int_equal(b->creates, 1); /* only the last object */

        /* At the same boundary but not executed yet: the Execute is done, then the last object. */
        memset(b, 0, sizeof *b);
        memcpy(b->cmd, init_packet, sizeof init_packet);
        b->cmd_size = b->cmd_off = sizeof init_packet;
        b->cmd_valid = true;
        memcpy(b->fw, firmware, 8192);
        b->fw_off = 8192;
        b->fw_exec = 4096;
        b->current = NRF_DFU_OBJ_DATA;
        assert_int_equal(run(b, &im, 0, 100, 3, &p), 0);
        assert_int_equal(b->fw_exec, sizeof firmware);
        assert_memory_equal(b->fw, firmware, sizeof firmware);
        assert_int_equal(b->creates, 1);

        /* Outside that case the refusal still ends the plan. */
        memset(b, 0, sizeof *b);
        b->fail_op = NRF_DFU_OP_EXECUTE;
        b->fail_result = NRF_DFU_RES_OPERATION_NOT_PERMITTED;
        assert_int_equal(run(b, &im, 0, 100, 3, &p), -EPROTO);
        free(b);
}

static void test_plan_crc_retry(void **state) {
        (void) state;
        Boot *b = calloc(1, sizeof *b);
        Images im;
        NrfDfuPlan p;

        fill_images(&im);
        /* One bad packet: the receipt after it shows a CRC that does not
         * match, the object is created and sent again, the result is exact. */
        b->corrupt_packets = 1;
        assert_int_equal(run(b, &im, 4, 20, 3, &p), 0);
        assert_memory_equal(b->fw, firmware, sizeof firmware);
        assert_int_equal(b->creates, 5);

        /* Without receipts, the object's Calculate CRC catches it. */
        memset(b, 0, sizeof *b);
        b->corrupt_packets = 1;
        assert_int_equal(run(b, &im, 0, 20, 3, &p), 0);
        assert_memory_equal(b->fw, firmware, sizeof firmware);
        assert_int_equal(b->creates, 5);

        /* A link that corrupts everything: given up after the retries. */
        memset(b, 0, sizeof *b);
        b->corrupt_packets = 1000000;
        assert_int_equal(run(b, &im, 0, 20, 2, &p), -EIO);
        assert_int_equal(p.state, NRF_DFU_PLAN_FAILED);
        assert_int_equal(b->creates, 3); /* the init packet, three times */
        free(b);
}

static void test_plan_refused(void **state) {
        (void) state;
        Boot *b = calloc(1, sizeof *b);
        Images im;
        NrfDfuPlan p;

        fill_images(&im);
        /* The init packet is refused on Execute: a version the bootloader will not take. */
        b->fail_op = NRF_DFU_OP_EXECUTE;
        b->fail_result = NRF_DFU_RES_EXT_ERROR;
        b->fail_ext = NRF_DFU_EXT_FW_VERSION_FAILURE;
        assert_int_equal(run(b, &im, 0, 20, 3, &p), -EPROTO);
        assert_int_equal(p.result, NRF_DFU_RES_EXT_ERROR);
        assert_int_equal(p.ext_error, NRF_DFU_EXT_FW_VERSION_FAILURE);

        /* An init packet larger than the command object. */
        memset(b, 0, sizeof *b);
        uint8_t big[CMD_MAX + 1] = {};
        Images im2 = { .init = big, .init_len = sizeof big, .fw = firmware, .fw_len = sizeof firmware };
        assert_int_equal(run(b, &im2, 0, 20, 3, &p), -EFBIG);

        /* A response to another request. */
        NrfDfuPlanConfig cfg = { .init_len = 1, .fw_len = 1, .packet_size = 20, .read = read_image, .userdata = &im };
        NrfDfuResponse r = { .request = NRF_DFU_OP_EXECUTE, .result = NRF_DFU_RES_SUCCESS };
        assert_int_equal(nrf_dfu_plan_init(&p, &cfg), 0);
        assert_int_equal(nrf_dfu_plan_response(&p, &r), -EPROTO);
        cfg.read = NULL;
        assert_int_equal(nrf_dfu_plan_init(&p, &cfg), -EINVAL);
        free(b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_crc32),        cmocka_unit_test(test_encode),
                cmocka_unit_test(test_decode),       cmocka_unit_test(test_address),
                cmocka_unit_test(test_plan_full),    cmocka_unit_test(test_plan_resume),
                cmocka_unit_test(test_plan_resume_executed_boundary),
                cmocka_unit_test(test_plan_crc_retry), cmocka_unit_test(test_plan_refused),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
