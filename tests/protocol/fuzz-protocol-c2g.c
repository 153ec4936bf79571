/* SPDX-License-Identifier: MIT */
/*
 * Fuzzer of the protocol's c2g dispatch: any payload, on a gateway with one
 * connected device (a battery service) and no radio, must be answered
 * without a crash, a leak or a sanitizer report.  What it sends is freed
 * unread; the unit and integration tests check the contents.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "protocol.h"

#define A "C0:FF:EE:00:00:01"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t sent;

static int sink_publish(void *impl, OutboxClass class, const char *payload, size_t len) {
        (void) impl, (void) class, (void) payload, (void) len;
        sent++;
        return 0;
}

static int sink_report(void *impl, const ShadowConnectionStatus *v, size_t n) {
        (void) impl, (void) v, (void) n;
        return 0;
}

static const ProtocolSink sink = {
        .publish_g2c = sink_publish,
        .report_connections = sink_report,
};

static BleGattDesc ccc = { .uuid = "2902" };
static BleGattChrc chrcs[] = { { .uuid = "2A19", .properties = BLE_CHRC_READ | BLE_CHRC_NOTIFY, .descs = &ccc,
                                 .n_descs = 1 } };
static BleGattService services[] = { { .uuid = "180F", .primary = true, .chrcs = chrcs, .n_chrcs = 1 } };
static const BleGattModel model = { .services = services, .n_services = 1 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static sd_event *event;
        static Config config;
        DesiredConnection d = { .address = A };
        Protocol *p = NULL;

        if (!event && sd_event_new(&event) < 0)
                return 0;
        if (protocol_new(event, &config, "gw", NULL, &sink, NULL, &p) < 0)
                return 0;
        (void) protocol_set_desired(p, &d, 1, true);
        protocol_device_state(p, A, "public", BLE_DEVICE_RESOLVING, BLE_DEVICE_READY, &model);
        protocol_handle_c2g(p, data, size);
        protocol_free(p);
        return 0;
}
