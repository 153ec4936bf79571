/* SPDX-License-Identifier: MIT */
/*
 * The SMP response decoder and the reassembler, on what a BLE device may
 * notify.  The first input byte picks the notification size (1..64, as an
 * MTU would); the rest is fed through the reassembler, and every frame it
 * completes is decoded, as is the whole input on its own.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok) {
        if (!ok)
                abort();
}

static void decode(const uint8_t *frame, size_t len) {
        SmpResponse r;
        uint16_t group = 0;

        if (smp_decode_response(frame, len, &r) < 0)
                return;
        check(r.hdr.length + SMP_HEADER_SIZE == len);
        check(r.hdr.op == SMP_OP_READ_RSP || r.hdr.op == SMP_OP_WRITE_RSP);
        check(r.n_images <= SMP_IMAGES_MAX);
        for (size_t i = 0; i < r.n_images; i++) {
                check(strnlen(r.images[i].version, SMP_VERSION_STRING_MAX) < SMP_VERSION_STRING_MAX);
                check(r.images[i].hash_len <= SMP_HASH_MAX);
        }
        int st = smp_response_status(&r, &group);
        check(st >= 0);
        if (st > 0)
                check(r.has_err || r.has_rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static SmpReassembler ra;
        size_t step, pos = 1;

        decode(data, size);
        if (size < 1)
                return 0;
        step = (data[0] & 0x3f) + 1;
        smp_reassembler_reset(&ra);
        while (pos < size) {
                size_t n = size - pos < step ? size - pos : step;
                const uint8_t *frame;
                size_t len;
                int r = smp_reassembler_feed(&ra, data + pos, n, &frame, &len);

                check(r <= 1);
                if (r == 1) {
                        check(len >= SMP_HEADER_SIZE && len <= SMP_FRAME_MAX);
                        decode(frame, len);
                }
                pos += n;
        }
        return 0;
}
