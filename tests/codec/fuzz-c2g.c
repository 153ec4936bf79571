/* SPDX-License-Identifier: MIT */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c2g.h"
#include "g2c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok) {
        if (!ok)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const G2cHeader h = { .gateway_id = "fuzz", .message_id = 1, .timestamp_usec = 1 };
        C2gOperation o;
        C2gError e;
        char *s = NULL;
        char u[UUID_STR_MAX + 1];
        int r;

        r = c2g_decode(data, size, &o, &e);
        if (r < 0) {
                /* Every refusal names a description and the request id, if any, can be echoed. */
                check(strlen(e.error.description) > 0 && strlen(e.error.field) < CODEC_FIELD_MAX);
                r = g2c_encode_c2g_error(&h, &e, r, &s);
                /* Descriptions quote only our own text and the cloud's numbers. */
                check(r == 0);
                free(s);
                return 0;
        }
        if (r == C2G_MESSAGE_DISCON)
                return 0;
        check(r == C2G_MESSAGE_OPERATION);
        check(o.id[0] != 0 && strlen(o.id) <= C2G_ID_MAX);
        check(o.value_len <= GATT_VALUE_MAX);

        switch (o.type) {
        case C2G_OP_SCAN:
                check(o.scan.timeout_sec >= 1 && o.scan.timeout_sec <= C2G_SCAN_TIMEOUT_MAX);
                check(c2g_scan_mode_to_string(o.scan.mode) && c2g_scan_reporting_to_string(o.scan.reporting));
                r = g2c_encode_scan_result(&h, o.scan.reporting, true, NULL, 0, &s);
                check(r == 0);
                free(s);
                break;
        case C2G_OP_DEVICE_DISCOVER:
                check(bt_addr_is_valid(o.target.address));
                break;
        case C2G_OP_CHARACTERISTIC_READ:
        case C2G_OP_CHARACTERISTIC_WRITE:
                check(bt_addr_is_valid(o.target.address));
                /* Normalised UUIDs are fixed points. */
                check(uuid_normalize(o.target.service_uuid, u) == 0 && streq(u, o.target.service_uuid));
                check(uuid_normalize(o.target.characteristic_uuid, u) == 0 && streq(u, o.target.characteristic_uuid));
                G2cDevice d = { .address = o.target.address };
                G2cHeader ah = h;
                ah.request_id = o.id;
                r = g2c_encode_characteristic_value(&ah, G2C_EVENT_CHARACTERISTIC_VALUE_WRITE_RESULT, &d,
                                                    o.target.service_uuid, o.target.characteristic_uuid, o.value,
                                                    o.value_len, &s);
                check(r == 0);
                free(s);
                break;
        case C2G_OP_DESCRIPTOR_READ:
        case C2G_OP_DESCRIPTOR_WRITE:
                check(bt_addr_is_valid(o.target.address));
                check(uuid_normalize(o.target.descriptor_uuid, u) == 0 && streq(u, o.target.descriptor_uuid));
                break;
        case C2G_OP_GET_GATEWAY_STATUS:
        case C2G_OP_DELETE_YOURSELF:
                break;
        case _C2G_OP_MAX:
        case _C2G_OP_INVALID:
                abort();
        }
        return 0;
}
