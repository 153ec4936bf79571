/* SPDX-License-Identifier: MIT */
/*
 * Control point notifications of an nRF5 bootloader, through the response
 * decoder, the buttonless decoder and a plan that takes each decoded
 * notification as the answer to what it asked (or as a receipt while it
 * sends packets).  Input: notifications, each prefixed by its length byte.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nrf-dfu.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok) {
        if (!ok)
                abort();
}

static const uint8_t image[300];

static int read_image(void *userdata, NrfDfuObject which, uint32_t off, uint8_t *buf, size_t len) {
        (void) userdata;
        (void) which;
        if (off > sizeof image || len > sizeof image - off)
                return -5;
        memcpy(buf, image + off, len);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        NrfDfuPlanConfig cfg = { .init_len = 40, .fw_len = sizeof image, .prn = 3, .packet_size = 20,
                                 .retries = 2, .read = read_image };
        NrfDfuPlan p;
        NrfDfuResponse r;
        uint8_t op, res;
        size_t pos = 0;

        (void) nrf_dfu_decode_response(data, size, &r);
        (void) nrf_dfu_decode_buttonless(data, size, &op, &res);
        check(nrf_dfu_plan_init(&p, &cfg) == 0);
        while (pos < size) {
                size_t n = data[pos++];
                NrfDfuAction a;

                if (n > size - pos)
                        n = size - pos;
                nrf_dfu_plan_next(&p, &a);
                if (a.kind == NRF_DFU_ACTION_DONE || a.kind == NRF_DFU_ACTION_FAILED)
                        break;
                if (nrf_dfu_decode_response(data + pos, n, &r) == 0) {
                        check(!r.has_object || r.has_crc);
                        if (a.kind == NRF_DFU_ACTION_PACKETS) {
                                /* Send one packet of what the plan asks, then take the input as a receipt. */
                                size_t k = a.len < a.packet_size ? a.len : a.packet_size;
                                check(a.off <= sizeof image && k <= sizeof image - a.off && k > 0);
                                (void) nrf_dfu_plan_packet_sent(&p, image + a.off, k);
                                (void) nrf_dfu_plan_receipt(&p, &r);
                        } else
                                (void) nrf_dfu_plan_response(&p, &r);
                }
                check(p.state < _NRF_DFU_PLAN_STATE_MAX);
                check(p.sent <= (p.state <= NRF_DFU_PLAN_EXECUTE_COMMAND ? cfg.init_len : cfg.fw_len));
                check(nrf_dfu_plan_progress(&p) <= cfg.fw_len);
                pos += n;
        }
        return 0;
}
