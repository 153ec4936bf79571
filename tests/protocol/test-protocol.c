/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the gateway protocol without bluetoothd: the BLE events are
 * fed through protocol_device_state()/protocol_notification(), the cloud is
 * a sink that records what the protocol sends.  The protocol runs with no
 * BleManager, so operations that need the radio answer errors; everything
 * decided before the radio (device known, connected, attribute present,
 * malformed c2g) and everything reported upwards is checked here.
 */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "protocol.h"
#include "util.h"

#define A "C0:FF:EE:00:00:01"
#define B "C0:FF:EE:00:00:02"
#define MAX_SENT 64

typedef struct Sent {
        char *topic; /* "g2c", "status" */
        json_t *json;
        OutboxClass class; /* of a g2c event */
} Sent;

typedef struct Fake {
        Sent sent[MAX_SENT];
        size_t n;
        unsigned unpaired;
} Fake;

static void fake_record(Fake *f, const char *topic, json_t *j) {
        assert_non_null(j);
        assert_true(f->n < MAX_SENT);
        f->sent[f->n].topic = strdup(topic);
        f->sent[f->n++].json = j;
}

static int fake_publish_g2c(void *impl, OutboxClass class, const char *payload, size_t len) {
        Fake *f = impl;
        json_error_t e;
        fake_record(f, "g2c", json_loadb(payload, len, 0, &e));
        f->sent[f->n - 1].class = class;
        return 0;
}

static int fake_report_connections(void *impl, const ShadowConnectionStatus *v, size_t n) {
        for (size_t i = 0; i < n; i++)
                fake_record(impl, "status",
                            json_pack("{s:s,s:s}", "address", v[i].address, "status",
                                      connection_status_to_string(v[i].status)));
        return 0;
}

static void fake_unpair(void *impl, const char *why) {
        (void) why;
        ((Fake *) impl)->unpaired++;
}

static const ProtocolSink fake_sink = {
        .publish_g2c = fake_publish_g2c,
        .report_connections = fake_report_connections,
        .unpair = fake_unpair,
};

static void fake_clear(Fake *f) {
        for (size_t i = 0; i < f->n; i++) {
                free(f->sent[i].topic);
                json_decref(f->sent[i].json);
        }
        f->n = 0;
}

typedef struct T {
        sd_event *event;
        Config config;
        Fake fake;
        Protocol *p;
} T;

static int setup(void **state) {
        T *t = calloc(1, sizeof *t);
        assert_non_null(t);
        assert_int_equal(sd_event_new(&t->event), 0);
        assert_int_equal(protocol_new(t->event, &t->config, "gw-1", NULL, &fake_sink, &t->fake, &t->p), 0);
        *state = t;
        return 0;
}

static int teardown(void **state) {
        T *t = *state;
        protocol_free(t->p);
        fake_clear(&t->fake);
        sd_event_unref(t->event);
        free(t);
        return 0;
}

static const char *event_type(const Sent *s) {
        return json_string_value(json_object_get(json_object_get(s->json, "event"), "type"));
}

static const char *request_id(const Sent *s) {
        return json_string_value(json_object_get(s->json, "requestId"));
}

static const char *error_description(const Sent *s) {
        return json_string_value(
                json_object_get(json_object_get(json_object_get(s->json, "event"), "error"), "description"));
}

static void desire(T *t, const char *const *addresses, size_t n) {
        DesiredConnection v[4] = {};
        for (size_t i = 0; i < n; i++)
                strcpy(v[i].address, addresses[i]);
        assert_int_equal(protocol_set_desired(t->p, v, n, true), 0);
}

static void c2g(T *t, const char *json) {
        protocol_handle_c2g(t->p, (const uint8_t *) json, strlen(json));
}

/* A: battery service 180F/2A19 (read, notify, CCC) and a vendor service with 2A19 (write). */
static BleGattDesc a_ccc = { .uuid = "2902" };
static BleGattChrc a_bat[] = { { .uuid = "2A19", .properties = BLE_CHRC_READ | BLE_CHRC_NOTIFY, .descs = &a_ccc,
                                 .n_descs = 1 } };
static BleGattChrc a_vendor[] = { { .uuid = "2A19", .properties = BLE_CHRC_WRITE } };
static BleGattService a_services[] = {
        { .uuid = "180F", .primary = true, .chrcs = a_bat, .n_chrcs = 1 },
        { .uuid = "AABB000100001000800000805F9B34FB", .primary = true, .chrcs = a_vendor, .n_chrcs = 1 },
};
static const BleGattModel a_model = { .services = a_services, .n_services = 2 };

/* A, already desired, connects. */
static void connect_a(T *t) {
        protocol_device_state(t->p, A, "random", BLE_DEVICE_IDLE, BLE_DEVICE_CONNECTING, NULL);
        protocol_device_state(t->p, A, "random", BLE_DEVICE_CONNECTING, BLE_DEVICE_RESOLVING, NULL);
        protocol_device_state(t->p, A, "random", BLE_DEVICE_RESOLVING, BLE_DEVICE_READY, &a_model);
}

static void test_connect_reports(void **state) {
        T *t = *state;
        static const char *const one[] = { A };
        json_t *svc, *chrc;

        desire(t, one, 1);
        connect_a(t);
        /* connecting, connected, connect result, discover result: in this order; no BLE job request
         * (FOTA of BLE devices does not exist). */
        assert_int_equal(t->fake.n, 4);
        assert_string_equal(t->fake.sent[0].topic, "status");
        assert_string_equal(json_string_value(json_object_get(t->fake.sent[0].json, "status")), "connecting");
        assert_string_equal(t->fake.sent[1].topic, "status");
        assert_string_equal(json_string_value(json_object_get(t->fake.sent[1].json, "status")), "connected");
        assert_string_equal(event_type(&t->fake.sent[2]), "device_connect_result");
        assert_string_equal(request_id(&t->fake.sent[2]), "N/A");
        /* BlueZ's "random" for C0:...: the two top bits are set, so static. */
        assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(json_object_get(
                                    t->fake.sent[2].json, "event"), "device"), "address"), "type")),
                            "randomStatic");
        assert_string_equal(json_string_value(json_object_get(t->fake.sent[2].json, "gatewayId")), "gw-1");
        assert_string_equal(event_type(&t->fake.sent[3]), "device_discover_result");
        svc = json_object_get(json_object_get(t->fake.sent[3].json, "event"), "services");
        assert_int_equal(json_object_size(svc), 2);
        chrc = json_object_get(json_object_get(json_object_get(svc, "180F"), "characteristics"), "2A19");
        assert_string_equal(json_string_value(json_object_get(chrc, "path")), "180F/2A19");
        assert_true(json_is_true(json_object_get(json_object_get(chrc, "properties"), "notify")));
        assert_int_equal(json_array_size(json_object_get(
                                 json_object_get(json_object_get(chrc, "descriptors"), "2902"), "value")),
                         2);

        /* Lost and back: disconnect, connecting, then connected, a connect result and the discovery
         * result again (the peripheral's firmware may have changed meanwhile). */
        fake_clear(&t->fake);
        protocol_device_state(t->p, A, "random", BLE_DEVICE_READY, BLE_DEVICE_BACKOFF, NULL);
        assert_int_equal(t->fake.n, 2);
        assert_string_equal(event_type(&t->fake.sent[0]), "device_disconnect");
        assert_string_equal(json_string_value(json_object_get(t->fake.sent[1].json, "status")), "connecting");
        protocol_device_state(t->p, A, "random", BLE_DEVICE_BACKOFF, BLE_DEVICE_CONNECTING, NULL);
        assert_int_equal(t->fake.n, 2); /* already connecting: nothing new */
        protocol_device_state(t->p, A, "random", BLE_DEVICE_RESOLVING, BLE_DEVICE_READY, &a_model);
        assert_int_equal(t->fake.n, 5);
        assert_string_equal(event_type(&t->fake.sent[3]), "device_connect_result");
        assert_string_equal(event_type(&t->fake.sent[4]), "device_discover_result");
}

static void test_removed_device(void **state) {
        T *t = *state;
        static const char *const two[] = { A, B };

        desire(t, two, 2);
        connect_a(t);
        fake_clear(&t->fake);
        desire(t, two + 1, 1);
        /* A was connected: device_disconnect, then its statusConnections entry removed. */
        assert_int_equal(t->fake.n, 2);
        assert_string_equal(event_type(&t->fake.sent[0]), "device_disconnect");
        assert_string_equal(json_string_value(json_object_get(t->fake.sent[1].json, "address")), A);
        assert_string_equal(json_string_value(json_object_get(t->fake.sent[1].json, "status")), "removed");
        /* Unknown now. */
        fake_clear(&t->fake);
        c2g(t, "{\"type\":\"operation\",\"id\":\"r1\",\"operation\":{\"type\":\"device_discover\","
               "\"deviceAddress\":\"" A "\"}}");
        assert_int_equal(t->fake.n, 1);
        assert_string_equal(event_type(&t->fake.sent[0]), "error");
        assert_string_equal(request_id(&t->fake.sent[0]), "r1");
        /* DISCON: every device goes. */
        fake_clear(&t->fake);
        assert_int_equal(protocol_set_desired(t->p, NULL, 0, false), 0);
        assert_int_equal(t->fake.n, 1);
        assert_string_equal(json_string_value(json_object_get(t->fake.sent[0].json, "address")), B);
}

static void test_stale_status(void **state) {
        T *t = *state;
        static const char *const one[] = { A };
        static const char stale[][BT_ADDR_STR_LEN + 1] = { A, B, "garbage" };

        desire(t, one, 1);
        fake_clear(&t->fake);
        protocol_clear_stale_status(t->p, stale, ELEMENTSOF(stale));
        /* Only B: A is desired, the third is not an address. */
        assert_int_equal(t->fake.n, 1);
        assert_string_equal(json_string_value(json_object_get(t->fake.sent[0].json, "address")), B);
        assert_string_equal(json_string_value(json_object_get(t->fake.sent[0].json, "status")), "removed");
}

static void test_malformed(void **state) {
        T *t = *state;

        c2g(t, "{\"type\":\"operation\",\"id\":\"x1\",\"operation\":{\"type\":\"device_characteristic_value_read\","
               "\"deviceAddress\":\"nope\",\"serviceUUID\":\"180F\",\"characteristicUUID\":\"2A19\"}}");
        c2g(t, "[1,2");
        assert_int_equal(t->fake.n, 2);
        assert_string_equal(event_type(&t->fake.sent[0]), "error");
        assert_string_equal(request_id(&t->fake.sent[0]), "x1");
        assert_non_null(strstr(error_description(&t->fake.sent[0]), "deviceAddress"));
        assert_string_equal(event_type(&t->fake.sent[1]), "error");
        assert_string_equal(request_id(&t->fake.sent[1]), "N/A");
}

static void test_operation_refusals(void **state) {
        T *t = *state;
        static const char *const two[] = { A, B };
        static const struct {
                const char *json, *id, *word;
        } cases[] = {
                { "{\"type\":\"operation\",\"id\":\"u1\",\"operation\":{\"type\":\"device_characteristic_value_read\","
                  "\"deviceAddress\":\"C0:FF:EE:00:00:99\",\"serviceUUID\":\"180F\",\"characteristicUUID\":\"2A19\"}}",
                  "u1", "desiredConnections" },
                { "{\"type\":\"operation\",\"id\":\"u2\",\"operation\":{\"type\":\"device_characteristic_value_read\","
                  "\"deviceAddress\":\"" B "\",\"serviceUUID\":\"180F\",\"characteristicUUID\":\"2A19\"}}",
                  "u2", "not connected" },
                { "{\"type\":\"operation\",\"id\":\"u3\",\"operation\":{\"type\":\"device_characteristic_value_read\","
                  "\"deviceAddress\":\"" A "\",\"serviceUUID\":\"1800\",\"characteristicUUID\":\"2A19\"}}",
                  "u3", "not found" },
                { "{\"type\":\"operation\",\"id\":\"u4\",\"operation\":{\"type\":\"device_characteristic_value_read\","
                  "\"deviceAddress\":\"" A "\",\"serviceUUID\":\"AABB000100001000800000805F9B34FB\","
                  "\"characteristicUUID\":\"2A19\"}}",
                  "u4", "not readable" },
                { "{\"type\":\"operation\",\"id\":\"u5\",\"operation\":{\"type\":\"device_characteristic_value_write\","
                  "\"deviceAddress\":\"" A "\",\"serviceUUID\":\"180F\",\"characteristicUUID\":\"2A19\","
                  "\"characteristicValue\":[1]}}",
                  "u5", "not writable" },
                { "{\"type\":\"operation\",\"id\":\"u6\",\"operation\":{\"type\":\"device_descriptor_value_write\","
                  "\"deviceAddress\":\"" A "\",\"serviceUUID\":\"180F\",\"characteristicUUID\":\"2A19\","
                  "\"descriptorUUID\":\"2902\",\"descriptorValue\":[2,0]}}",
                  "u6", "indicate" },
                { "{\"type\":\"operation\",\"id\":\"u7\",\"operation\":{\"type\":\"device_descriptor_value_read\","
                  "\"deviceAddress\":\"" A "\",\"serviceUUID\":\"180F\",\"characteristicUUID\":\"2A19\","
                  "\"descriptorUUID\":\"2901\"}}",
                  "u7", "not found" },
                /* Valid and present: only the missing radio refuses it. */
                { "{\"type\":\"operation\",\"id\":\"u8\",\"operation\":{\"type\":\"device_characteristic_value_read\","
                  "\"deviceAddress\":\"" A "\",\"serviceUUID\":\"180F\",\"characteristicUUID\":\"2A19\"}}",
                  "u8", "Bluetooth is not available" },
                /* A beacon scan is supported: it too needs the radio. */
                { "{\"type\":\"operation\",\"id\":\"u9\",\"operation\":{\"type\":\"scan\",\"scanType\":1}}", "u9",
                  "Bluetooth is not available" },
                { "{\"type\":\"operation\",\"id\":\"u10\",\"operation\":{\"type\":\"scan\"}}", "u10",
                  "Bluetooth is not available" },
        };

        desire(t, two, 2);
        connect_a(t);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                fake_clear(&t->fake);
                c2g(t, cases[i].json);
                assert_int_equal(t->fake.n, 1);
                assert_string_equal(event_type(&t->fake.sent[0]), "error");
                assert_string_equal(request_id(&t->fake.sent[0]), cases[i].id);
                if (!strstr(error_description(&t->fake.sent[0]), cases[i].word))
                        fail_msg("%s: %s", cases[i].id, error_description(&t->fake.sent[0]));
        }
}

static void test_discover_waits_for_ready(void **state) {
        T *t = *state;
        static const char *const one[] = { A };

        desire(t, one, 1);
        fake_clear(&t->fake);
        c2g(t, "{\"type\":\"operation\",\"id\":\"d1\",\"operation\":{\"type\":\"device_discover\","
               "\"deviceAddress\":\"" A "\"}}");
        assert_int_equal(t->fake.n, 0); /* answered when the device is ready */
        protocol_device_state(t->p, A, "random", BLE_DEVICE_RESOLVING, BLE_DEVICE_READY, &a_model);
        /* connected, connect result, unsolicited discovery, then the answer. */
        assert_int_equal(t->fake.n, 4);
        assert_string_equal(event_type(&t->fake.sent[3]), "device_discover_result");
        assert_string_equal(request_id(&t->fake.sent[3]), "d1");
        /* Ready: answered at once from the cache. */
        fake_clear(&t->fake);
        c2g(t, "{\"type\":\"operation\",\"id\":\"d2\",\"operation\":{\"type\":\"device_discover\","
               "\"deviceAddress\":\"" A "\"}}");
        assert_int_equal(t->fake.n, 1);
        assert_string_equal(request_id(&t->fake.sent[0]), "d2");
}

/* A flood of c2g operations: C2gRateMax= of them run per second, the first one over it is answered
 * with one error event, the others of the burst are not answered; after the burst all run again. */
static void test_c2g_rate(void **state) {
        T *t = *state;
        char json[256];
        const char *b[] = { B };

        t->config.c2g_rate_max = 5;
        desire(t, b, 1);
        fake_clear(&t->fake);
        for (unsigned i = 0; i < 1000; i++) {
                snprintf(json, sizeof json,
                         "{\"type\":\"operation\",\"id\":\"f%u\",\"operation\":{\"type\":\"device_discover\","
                         "\"deviceAddress\":\"" A "\"}}",
                         i);
                c2g(t, json);
        }
        assert_int_equal(t->fake.n, 6);
        for (size_t i = 0; i < 6; i++) {
                assert_string_equal(event_type(&t->fake.sent[i]), "error");
                assert_int_equal(t->fake.sent[i].class, OUTBOX_ANSWER);
        }
        assert_string_equal(request_id(&t->fake.sent[4]), "f4");
        assert_string_equal(request_id(&t->fake.sent[5]), "f5");
        assert_non_null(strstr(error_description(&t->fake.sent[5]), "too many operations: over 5 per second"));
        assert_int_equal(json_integer_value(json_object_get(
                                 json_object_get(json_object_get(t->fake.sent[5].json, "event"), "error"), "code")),
                         -EBUSY);
        /* Malformed messages count as well. */
        c2g(t, "[1,2");
        assert_int_equal(t->fake.n, 6);

        /* The burst ends a second after its last refusal; then operations run again. */
        for (unsigned i = 0; i < 50 && t->fake.n == 6; i++) {
                assert_true(sd_event_run(t->event, 100 * 1000) >= 0);
                c2g(t, "{\"type\":\"operation\",\"id\":\"late\",\"operation\":{\"type\":\"device_discover\","
                       "\"deviceAddress\":\"" A "\"}}");
        }
        assert_int_equal(t->fake.n, 7);
        assert_string_equal(request_id(&t->fake.sent[6]), "late");
        assert_non_null(strstr(error_description(&t->fake.sent[6]), "not a device of this gateway"));
}

/* A flood the gateway works through slowly, with pauses of more than two seconds between the chunks
 * it reads (a loaded machine, a modem link delivering in spurts): the cloud gets one error event about
 * refusals per C2G_REFUSAL_EVENT_INTERVAL_USEC (10 s), not one per chunk, and the next one counts
 * those refused meanwhile.  Takes 13 s. */
static void test_c2g_rate_slow_flood(void **state) {
        T *t = *state;
        char json[256];
        const char *b[] = { B };
        size_t errors = 0, refusals = 0, refusal[2] = { 0 };
        uint64_t t0;

        t->config.c2g_rate_max = 5;
        desire(t, b, 1);
        fake_clear(&t->fake);
        t0 = now_usec(CLOCK_MONOTONIC);
        for (unsigned chunk = 0; chunk < 6; chunk++) {
                for (unsigned i = 0; i < 50; i++) {
                        snprintf(json, sizeof json,
                                 "{\"type\":\"operation\",\"id\":\"s%u-%u\",\"operation\":{\"type\":"
                                 "\"device_discover\",\"deviceAddress\":\"" A "\"}}",
                                 chunk, i);
                        c2g(t, json);
                }
                /* Chunks at 0, 2.2, 4.4, 6.6, 8.8 and 11 s. */
                while (now_usec(CLOCK_MONOTONIC) < t0 + (chunk + 1) * 2200 * 1000)
                        assert_true(sd_event_run(t->event, 100 * 1000) >= 0);
        }
        for (size_t i = 0; i < t->fake.n; i++) {
                assert_string_equal(event_type(&t->fake.sent[i]), "error");
                if (strstr(error_description(&t->fake.sent[i]), "too many operations")) {
                        if (refusals < 2)
                                refusal[refusals] = i;
                        refusals++;
                } else
                        errors++;
        }
        /* The chunks are 2.2 s apart: each one opens a new window of the rate, 5 run, 45 are refused. */
        assert_int_equal(errors, 6 * 5);
        assert_int_equal(refusals, 2);
        assert_string_equal(request_id(&t->fake.sent[refusal[0]]), "s0-5");
        assert_non_null(strstr(error_description(&t->fake.sent[refusal[0]]),
                               "too many operations: over 5 per second; 1 refused since the last such error, "
                               "this one included"));
        assert_string_equal(request_id(&t->fake.sent[refusal[1]]), "s5-5");
        assert_non_null(strstr(error_description(&t->fake.sent[refusal[1]]),
                               "too many operations: over 5 per second; 225 refused since the last such error, "
                               "this one included"));
}

static void test_gateway_status_and_delete(void **state) {
        T *t = *state;
        static const char *const two[] = { A, B };

        desire(t, two, 2);
        connect_a(t);
        fake_clear(&t->fake);
        c2g(t, "{\"type\":\"operation\",\"id\":\"s1\",\"operation\":{\"type\":\"get_gateway_status\"}}");
        /* Not answered: no Nordic gateway does, and no event type exists for it. */
        assert_int_equal(t->fake.n, 0);
        fake_clear(&t->fake);
        c2g(t, "{\"type\":\"operation\",\"id\":\"z1\",\"operation\":{\"type\":\"delete_yourself\"}}");
        assert_int_equal(t->fake.unpaired, 1);
        /* A disconnected, both entries removed. */
        assert_int_equal(t->fake.n, 3);
        for (size_t i = 0, disconnects = 0; i < 3; i++) {
                if (streq(t->fake.sent[i].topic, "g2c")) {
                        assert_string_equal(event_type(&t->fake.sent[i]), "device_disconnect");
                        disconnects++;
                } else
                        assert_string_equal(json_string_value(json_object_get(t->fake.sent[i].json, "status")),
                                            "removed");
                if (i == 2)
                        assert_int_equal(disconnects, 1);
        }
}

static int run_loop_until(T *t, size_t n, uint64_t timeout_usec) {
        uint64_t end = now_usec(CLOCK_MONOTONIC) + timeout_usec;
        while (t->fake.n < n && now_usec(CLOCK_MONOTONIC) < end)
                if (sd_event_run(t->event, 10000) < 0)
                        return -1;
        return (int) t->fake.n;
}

static void test_notifications(void **state) {
        T *t = *state;
        static const char *const one[] = { A };
        uint8_t v[4];
        json_t *c;

        desire(t, one, 1);
        connect_a(t);
        fake_clear(&t->fake);
        /* Off by default: each notification is sent. */
        for (uint8_t i = 0; i < 5; i++) {
                v[0] = i;
                protocol_notification(t->p, A, "180F", "2A19", v, 1);
        }
        assert_int_equal(t->fake.n, 5);
        c = json_object_get(json_object_get(t->fake.sent[4].json, "event"), "characteristic");
        assert_string_equal(json_string_value(json_object_get(c, "path")), "180F/2A19");
        assert_int_equal(json_integer_value(json_array_get(json_object_get(c, "value"), 0)), 4);
        /* Not a desired device: dropped. */
        protocol_notification(t->p, B, "180F", "2A19", v, 1);
        assert_int_equal(t->fake.n, 5);

        /* Coalesced: the first at once, the latest when the interval ends, per characteristic. */
        fake_clear(&t->fake);
        t->config.notify_min_interval_ms = 200;
        for (uint8_t i = 10; i < 60; i++) {
                v[0] = i;
                protocol_notification(t->p, A, "180F", "2A19", v, 1);
                protocol_notification(t->p, A, "AABB000100001000800000805F9B34FB", "2A19", v, 1);
        }
        assert_int_equal(t->fake.n, 2);
        assert_int_equal(run_loop_until(t, 4, 2 * 1000 * 1000), 4);
        for (size_t i = 2; i < 4; i++) {
                c = json_object_get(json_object_get(t->fake.sent[i].json, "event"), "characteristic");
                assert_int_equal(json_integer_value(json_array_get(json_object_get(c, "value"), 0)), 59);
        }
        /* Nothing more is pending. */
        assert_int_equal(run_loop_until(t, 5, 400 * 1000), 4);
}

static void test_convert_gatt(void **state) {
        _cleanup_(gatt_model_freep) GattModel *m = NULL;
        (void) state;

        assert_int_equal(protocol_convert_gatt(&a_model, NULL, NULL, &m), 0);
        assert_int_equal(m->n_services, 2);
        assert_non_null(gatt_model_find_characteristic(m, "180F", "2A19"));
        assert_non_null(gatt_model_find_descriptor(m, "180F", "2A19", "2902"));
        assert_int_equal(gatt_model_find_characteristic(m, "180F", "2A19")->properties,
                         GATT_PROP_READ | GATT_PROP_NOTIFY);
        assert_int_equal(gatt_model_find_characteristic(m, "AABB0001-0000-1000-8000-00805F9B34FB", "2A19")->properties,
                         GATT_PROP_WRITE);
}

/* Values read by the BLE layer go into the model; the CCC's stays the subscription's. */
static void test_convert_gatt_values(void **state) {
        static uint8_t level[] = { 0x64 }, label[] = { 'T', 'X' }, ccc[] = { 9, 9 };
        BleGattDesc descs[] = { { .uuid = "2901", .value = label, .value_size = sizeof label },
                                { .uuid = "2902", .value = ccc, .value_size = sizeof ccc } };
        BleGattChrc chrcs[] = { { .uuid = "2A19", .properties = BLE_CHRC_READ | BLE_CHRC_NOTIFY, .value = level,
                                  .value_size = sizeof level, .descs = descs, .n_descs = 2 },
                                { .uuid = "2A1A", .properties = BLE_CHRC_READ } };
        BleGattService svc = { .uuid = "180F", .primary = true, .chrcs = chrcs, .n_chrcs = 2 };
        BleGattModel in = { .services = &svc, .n_services = 1 };
        _cleanup_(gatt_model_freep) GattModel *m = NULL;
        const GattCharacteristic *c;
        const GattDescriptor *d;
        (void) state;

        assert_int_equal(protocol_convert_gatt(&in, NULL, NULL, &m), 0);
        c = gatt_model_find_characteristic(m, "180F", "2A19");
        assert_int_equal(c->value_len, 1);
        assert_int_equal(c->value[0], 0x64);
        d = gatt_model_find_descriptor(m, "180F", "2A19", "2901");
        assert_int_equal(d->value_len, 2);
        assert_memory_equal(d->value, label, 2);
        d = gatt_model_find_descriptor(m, "180F", "2A19", "2902");
        assert_int_equal(d->value_len, 2);
        assert_int_equal(d->value[0], 0);
        assert_int_equal(d->value[1], 0);
        c = gatt_model_find_characteristic(m, "180F", "2A1A");
        assert_null(c->value);
        assert_int_equal(c->value_len, 0);
}

/* A device being updated: its operations are held in order (at most PROTOCOL_HELD_MAX), run when the
 * update ends, answered with an error when it is removed; other devices are not affected. */
typedef struct Updating {
        bool busy;
        unsigned removed;
} Updating;

static bool updating_busy(void *userdata, const char *address) {
        return ((Updating *) userdata)->busy && streq(address, A);
}

static void updating_removed(void *userdata, const char *address) {
        assert_string_equal(address, A);
        ((Updating *) userdata)->removed++;
}

static void test_held_while_updating(void **state) {
        static const ProtocolDeviceHooks hooks = { .busy = updating_busy, .removed = updating_removed };
        static const char *const two[] = { A, B };
        T *t = *state;
        Updating u = { .busy = true };
        char json[256], id[16];

        desire(t, two, 2);
        connect_a(t);
        protocol_set_device_hooks(t->p, &hooks, &u);
        fake_clear(&t->fake);
        for (unsigned i = 0; i <= PROTOCOL_HELD_MAX; i++) {
                snprintf(json, sizeof json,
                         "{\"type\":\"operation\",\"id\":\"h%u\",\"operation\":{\"type\":"
                         "\"device_characteristic_value_read\",\"deviceAddress\":\"" A "\",\"serviceUUID\":\"180F\","
                         "\"characteristicUUID\":\"2A19\"}}",
                         i);
                c2g(t, json);
        }
        /* Only the one over the bound is answered, at once. */
        assert_int_equal(t->fake.n, 1);
        assert_string_equal(request_id(&t->fake.sent[0]), "h32");
        assert_non_null(strstr(error_description(&t->fake.sent[0]), "is being updated"));
        /* B is not being updated: answered at once (not connected). */
        c2g(t, "{\"type\":\"operation\",\"id\":\"b1\",\"operation\":{\"type\":\"device_discover\","
               "\"deviceAddress\":\"" B "\"}}");
        c2g(t, "{\"type\":\"operation\",\"id\":\"b2\",\"operation\":{\"type\":"
               "\"device_characteristic_value_read\",\"deviceAddress\":\"" B "\",\"serviceUUID\":\"180F\","
               "\"characteristicUUID\":\"2A19\"}}");
        assert_int_equal(t->fake.n, 2);
        assert_string_equal(request_id(&t->fake.sent[1]), "b2");
        /* Resumed while still busy: nothing runs. */
        fake_clear(&t->fake);
        protocol_device_resume(t->p, A);
        assert_true(sd_event_run(t->event, 0) >= 0);
        assert_int_equal(t->fake.n, 0);
        /* The update ended: from the loop, in order, each with its id (here no radio refuses them). */
        u.busy = false;
        protocol_device_resume(t->p, A);
        assert_int_equal(t->fake.n, 0);
        assert_true(sd_event_run(t->event, 0) >= 0);
        assert_int_equal(t->fake.n, PROTOCOL_HELD_MAX);
        for (unsigned i = 0; i < PROTOCOL_HELD_MAX; i++) {
                snprintf(id, sizeof id, "h%u", i);
                assert_string_equal(request_id(&t->fake.sent[i]), id);
                assert_non_null(strstr(error_description(&t->fake.sent[i]), "Bluetooth is not available"));
        }
        /* Held again, then A leaves desiredConnections: answered with an error, the hook told. */
        u.busy = true;
        fake_clear(&t->fake);
        c2g(t, "{\"type\":\"operation\",\"id\":\"r1\",\"operation\":{\"type\":\"device_discover\","
               "\"deviceAddress\":\"" A "\"}}");
        assert_int_equal(t->fake.n, 0);
        desire(t, two + 1, 1);
        assert_int_equal(u.removed, 1);
        for (size_t i = 0; i < t->fake.n; i++)
                if (streq(t->fake.sent[i].topic, "g2c") && streq_ptr(event_type(&t->fake.sent[i]), "error")) {
                        assert_string_equal(request_id(&t->fake.sent[i]), "r1");
                        assert_non_null(strstr(error_description(&t->fake.sent[i]), "removed from desiredConnections"));
                        u.removed += 10;
                }
        assert_int_equal(u.removed, 11);
        assert_true(sd_event_run(t->event, 0) >= 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_connect_reports, setup, teardown),
                cmocka_unit_test_setup_teardown(test_removed_device, setup, teardown),
                cmocka_unit_test_setup_teardown(test_stale_status, setup, teardown),
                cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_operation_refusals, setup, teardown),
                cmocka_unit_test_setup_teardown(test_discover_waits_for_ready, setup, teardown),
                cmocka_unit_test_setup_teardown(test_gateway_status_and_delete, setup, teardown),
                cmocka_unit_test_setup_teardown(test_c2g_rate, setup, teardown),
                cmocka_unit_test_setup_teardown(test_c2g_rate_slow_flood, setup, teardown),
                cmocka_unit_test_setup_teardown(test_notifications, setup, teardown),
                cmocka_unit_test_setup_teardown(test_held_while_updating, setup, teardown),
                cmocka_unit_test(test_convert_gatt),
                cmocka_unit_test(test_convert_gatt_values),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
