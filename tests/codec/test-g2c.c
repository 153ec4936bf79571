/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "g2c.h"

/* 2025-02-27T18:38:50.123Z */
#define TS 1740681530123456ULL
#define HDR(req) "{\"type\":\"event\",\"gatewayId\":\"gw-1\",\"requestId\":" req ",\"event\":{\"type\":"
#define TAIL(id) "},\"messageId\":" id "}"

static const G2cHeader unsolicited = { .gateway_id = "gw-1", .message_id = 42, .timestamp_usec = TS };
static const G2cHeader answer = { .gateway_id = "gw-1", .request_id = "req-1", .message_id = 43, .timestamp_usec = TS };
static const G2cDevice thingy = { .address = "d6:57:7d:cc:50:17" };
static const G2cDevice thingy_random = { .address = "D6:57:7D:CC:50:17", .address_type = BT_ADDR_TYPE_RANDOM };

static void check(int r, char **sp, const char *expected) {
        char *s = *sp;
        *sp = NULL;
        if (r < 0)
                fail_msg("encoder failed: %d", r);
        assert_non_null(s);
        if (!streq(s, expected))
                fail_msg("\n got: %s\nwant: %s", s, expected);
        /* And it is valid JSON. */
        json_t *j = json_loads(s, 0, NULL);
        assert_non_null(j);
        json_decref(j);
        free(s);
}

/* Parses both and compares structurally. */
static void check_json_equal(const char *got, const char *want) {
        json_error_t e;
        json_t *a = json_loads(got, JSON_REJECT_DUPLICATES, &e), *b = json_loads(want, JSON_REJECT_DUPLICATES, &e);
        assert_non_null(a);
        if (!b)
                fail_msg("bad expected JSON: %s", e.text);
        if (!json_equal(a, b))
                fail_msg("\n got: %s\nwant: %s", got, want);
        json_decref(a);
        json_decref(b);
}

static void test_timestamp(void **state) {
        char b[G2C_TIMESTAMP_LEN + 1];
        (void) state;
        assert_int_equal(g2c_format_timestamp(TS, b), 0);
        assert_string_equal(b, "2025-02-27T18:38:50.123Z");
        assert_int_equal(g2c_format_timestamp(0, b), 0);
        assert_string_equal(b, "1970-01-01T00:00:00.000Z");
        if (sizeof(time_t) >= 8) {
                assert_int_equal(g2c_format_timestamp(253402300799999999ULL, b), 0);
                assert_string_equal(b, "9999-12-31T23:59:59.999Z");
        } else
                assert_int_equal(g2c_format_timestamp(253402300799999999ULL, b), -ERANGE);
        assert_int_equal(g2c_format_timestamp(253402300800000000ULL, b), -ERANGE);
}

static void test_scan_result(void **state) {
        G2cScanDevice d[] = {
                { .device = thingy, .has_rssi = true, .rssi = -58, .name = "Thingy" },
                { .device = { .address = "C2:6B:AC:6D:05:A2", .address_type = BT_ADDR_TYPE_RANDOM_STATIC }, .has_rssi = true, .rssi = -90 },
        };
        char *s = NULL;
        (void) state;

        check(g2c_encode_scan_result(&answer, C2G_SCAN_REPORTING_INSTANT, false, d, 2, &s), &s, HDR("\"req-1\"") "\"scan_result\",\"timestamp\":\"2025-02-27T18:38:50.123Z\",\"subType\":\"instant\","
              "\"timeout\":false,\"devices\":[{\"deviceType\":\"BLE\",\"rssi\":-58,\"name\":\"Thingy\","
              "\"address\":{\"address\":\"D6:57:7D:CC:50:17\"}},{\"deviceType\":\"BLE\",\"rssi\":-90,"
              "\"address\":{\"address\":\"C2:6B:AC:6D:05:A2\",\"type\":\"randomStatic\"}}]" TAIL("43"));
        s = NULL;
        check(g2c_encode_scan_result(&answer, C2G_SCAN_REPORTING_BATCH, true, NULL, 0, &s), &s, HDR("\"req-1\"") "\"scan_result\",\"timestamp\":\"2025-02-27T18:38:50.123Z\",\"subType\":\"batch\","
              "\"timeout\":true,\"devices\":[]" TAIL("43"));
}

/* Captured desktop-gateway scan_result (spec §2.4, AP scan-result-example.json):
 * the same structure once the fields we do not produce ("time" and
 * "advertisementData", both null there) are left out. */
static void test_scan_result_captured(void **state) {
        G2cHeader h = { .gateway_id = "21fc11e9-0000-4000-8000-000000000000", .request_id = "N/A", .message_id = 145,
                        .timestamp_usec = 1582214543542000ULL };
        G2cScanDevice d = { .device = { .address = "D6:57:7D:CC:50:17", .address_type = BT_ADDR_TYPE_RANDOM_STATIC },
                            .has_rssi = true, .rssi = -46, .name = "Thingy" };
        char *s = NULL;
        (void) state;
        assert_int_equal(g2c_encode_scan_result(&h, C2G_SCAN_REPORTING_INSTANT, false, &d, 1, &s), 0);
        check_json_equal(s, "{\"type\":\"event\",\"gatewayId\":\"21fc11e9-0000-4000-8000-000000000000\",\"requestId\":\"N/A\","
                            "\"event\":{\"type\":\"scan_result\",\"subType\":\"instant\",\"timestamp\":\"2020-02-20T16:02:23.542Z\","
                            "\"devices\":[{\"deviceType\":\"BLE\",\"address\":{\"address\":\"D6:57:7D:CC:50:17\",\"type\":\"randomStatic\"},"
                            "\"name\":\"Thingy\",\"rssi\":-46}],\"timeout\":false},\"messageId\":145}");
        free(s);
}

/* Beacon scans and watched beacons: advertisementData in the shape of nRF Cloud's beacon-utilities
 * AdvertisementPacket (gateway-common scanResult.ts), byte for byte. */
static void test_scan_result_advertisement(void **state) {
        static const uint8_t ibeacon[] = { 0x02, 0x15, 0xe2, 0xc5, 0x6d, 0xb5, 0xdf, 0xfb, 0x48, 0xd2, 0xb0, 0x60,
                                           0xd0, 0xf5, 0xa7, 0x10, 0x96, 0xe0, 0x00, 0x01, 0x00, 0x02, 0xc5 };
        static const uint8_t eddystone[] = { 0x00, 0xee, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
                                             0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x00, 0x00 };
        static const uint8_t broadcast_name[] = { 'a', 'b' };
        static const G2cAdEntry mfr[] = { { .key = 0x004c, .data = ibeacon, .size = sizeof ibeacon } };
        static const G2cAdEntry svc[] = {
                { .uuid = "0000feaa-0000-1000-8000-00805f9b34fb", .data = eddystone, .size = sizeof eddystone },
                { .uuid = "6E400001B5A3F393E0A9E50E24DCCA9E", .data = NULL, .size = 0 },
        };
        static const G2cAdEntry raw[] = { { .key = 0x30, .data = broadcast_name, .size = 2 } };
        static const char *const uuids[] = { "FEAA", "6e400001-b5a3-f393-e0a9-e50e24dcca9e" };
        const G2cAdvertisement ib = { .flags = 6, .manufacturer_data = mfr, .n_manufacturer_data = 1 };
        const G2cAdvertisement ed = { .flags = -1, .service_uuids = uuids, .n_service_uuids = 2, .local_name = "eddy",
                                      .has_tx_power = true, .tx_power = -4, .service_data = svc, .n_service_data = 2,
                                      .raw = raw, .n_raw = 1 };
        G2cScanDevice d[] = {
                { .device = { .address = "C0:FF:EE:00:00:B1", .address_type = BT_ADDR_TYPE_PUBLIC }, .has_rssi = true,
                  .rssi = -59, .advertisement = &ib },
                { .device = { .address = "C0:FF:EE:00:00:B2", .address_type = BT_ADDR_TYPE_RANDOM_STATIC },
                  .has_rssi = true, .rssi = -70, .name = "eddy", .advertisement = &ed },
        };
        G2cAdvertisement bad = ib;
        G2cAdEntry bad_svc = { .uuid = "not-a-uuid" };
        G2cScanDevice bd = d[0];
        char *s = NULL;
        (void) state;

        check(g2c_encode_scan_result(&unsolicited, C2G_SCAN_REPORTING_INSTANT, false, d, 2, &s), &s,
              HDR("\"N/A\"") "\"scan_result\",\"timestamp\":\"2025-02-27T18:38:50.123Z\",\"subType\":\"instant\","
              "\"timeout\":false,\"devices\":[{\"deviceType\":\"BLE\",\"rssi\":-59,"
              "\"address\":{\"address\":\"C0:FF:EE:00:00:B1\",\"type\":\"public\"},"
              "\"advertisementData\":{\"advertiseFlag\":6,\"serviceUuids\":null,\"localName\":null,\"txPower\":null,"
              "\"manufacturerData\":{\"76\":[2,21,226,197,109,181,223,251,72,210,176,96,208,245,167,16,150,224,0,1,0,2,"
              "197]},\"serviceData\":{}}},"
              "{\"deviceType\":\"BLE\",\"rssi\":-70,\"name\":\"eddy\","
              "\"address\":{\"address\":\"C0:FF:EE:00:00:B2\",\"type\":\"randomStatic\"},"
              "\"advertisementData\":{\"advertiseFlag\":-1,\"serviceUuids\":[\"0000feaa-0000-1000-8000-00805f9b34fb\","
              "\"6e400001-b5a3-f393-e0a9-e50e24dcca9e\"],\"localName\":\"eddy\",\"txPower\":-4,\"manufacturerData\":{},"
              "\"serviceData\":{\"feaa\":[0,238,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,0,0],"
              "\"6e400001-b5a3-f393-e0a9-e50e24dcca9e\":[]},\"rawData\":[3,48,97,98]}}]" TAIL("42"));

        /* What cannot be encoded is refused, not sent half. */
        bd.advertisement = &bad;
        bad.flags = 256;
        assert_int_equal(g2c_encode_scan_result(&unsolicited, C2G_SCAN_REPORTING_INSTANT, false, &bd, 1, &s), -EINVAL);
        bad = ib;
        bad.service_data = &bad_svc;
        bad.n_service_data = 1;
        assert_int_equal(g2c_encode_scan_result(&unsolicited, C2G_SCAN_REPORTING_INSTANT, false, &bd, 1, &s), -EINVAL);
        bad = ib;
        bad.local_name = "\xff\xfe";
        assert_int_equal(g2c_encode_scan_result(&unsolicited, C2G_SCAN_REPORTING_INSTANT, false, &bd, 1, &s), -EINVAL);
        bad = ib;
        bad.n_raw = 1;
        bad.raw = &(G2cAdEntry){ .key = 0x30, .data = ibeacon, .size = 255 };
        assert_int_equal(g2c_encode_scan_result(&unsolicited, C2G_SCAN_REPORTING_INSTANT, false, &bd, 1, &s), -EINVAL);
        assert_null(s);
}

static void test_connect_disconnect(void **state) {
        char *s = NULL;
        (void) state;
        check(g2c_encode_device_connect_result(&unsolicited, &thingy, true, &s), &s, HDR("\"N/A\"") "\"device_connect_result\",\"timestamp\":\"2025-02-27T18:38:50.123Z\",\"device\":{\"id\":"
              "\"D6:57:7D:CC:50:17\",\"address\":{\"address\":\"D6:57:7D:CC:50:17\"},\"status\":{\"connected\":true}}" TAIL("42"));
        s = NULL;
        check(g2c_encode_device_disconnect(&unsolicited, &thingy_random, &s), &s, HDR("\"N/A\"") "\"device_disconnect\",\"timestamp\":\"2025-02-27T18:38:50.123Z\",\"device\":{\"id\":"
              "\"D6:57:7D:CC:50:17\",\"address\":{\"address\":\"D6:57:7D:CC:50:17\",\"type\":\"random\"},"
              "\"status\":{\"connected\":false}}" TAIL("42"));
}

/* lte-gateway's device_connect_result / device_disconnect (spec §2.4),
 * plus the messageId it lacks. */
static void test_connect_captured(void **state) {
        char *s = NULL;
        (void) state;
        assert_int_equal(g2c_encode_device_disconnect(&unsolicited, &thingy, &s), 0);
        check_json_equal(s, "{\"type\":\"event\",\"gatewayId\":\"gw-1\",\"requestId\":\"N/A\","
                            "\"event\":{\"type\":\"device_disconnect\",\"timestamp\":\"2025-02-27T18:38:50.123Z\","
                            "\"device\":{\"id\":\"D6:57:7D:CC:50:17\",\"status\":{\"connected\":false},"
                            "\"address\":{\"address\":\"D6:57:7D:CC:50:17\"}}},\"messageId\":42}");
        free(s);
}

static GattModel *thingy_model(void) {
        GattModel *m = NULL;
        GattService *s;
        GattCharacteristic *c;
        GattDescriptor *d;
        static const uint8_t name[] = { 84, 104, 105, 110, 103, 121 }, batt[] = { 98 }, ccc[] = { 0, 0 };

        assert_int_equal(gatt_model_new(&m), 0);
        assert_int_equal(gatt_model_add_service(m, "00001800-0000-1000-8000-00805f9b34fb", "/org/bluez/hci0/dev_D6/service0001", true, &s), 0);
        assert_int_equal(gatt_service_add_characteristic(s, "2a00", NULL, GATT_PROP_READ, &c), 0);
        assert_int_equal(gatt_characteristic_set_value(c, name, sizeof name), 0);
        assert_int_equal(gatt_model_add_service(m, "180F", NULL, true, &s), 0);
        assert_int_equal(gatt_service_add_characteristic(s, "2A19", NULL, GATT_PROP_READ | GATT_PROP_NOTIFY, &c), 0);
        assert_int_equal(gatt_characteristic_set_value(c, batt, sizeof batt), 0);
        assert_int_equal(gatt_characteristic_add_descriptor(c, "2902", NULL, &d), 0);
        assert_int_equal(gatt_descriptor_set_value(d, ccc, sizeof ccc), 0);
        return m;
}

/* The discovery example of spec §2.4, which is lte-gateway's layout. */
static void test_discover_result(void **state) {
        _cleanup_(gatt_model_freep) GattModel *m = thingy_model();
        char *s = NULL;
        (void) state;

        check(g2c_encode_device_discover_result(&unsolicited, &thingy, m, &s), &s, HDR("\"N/A\"") "\"device_discover_result\",\"timestamp\":\"2025-02-27T18:38:50.123Z\","
              "\"device\":{\"id\":\"D6:57:7D:CC:50:17\",\"address\":{\"address\":\"D6:57:7D:CC:50:17\"},\"status\":{\"connected\":true}},"
              "\"services\":{"
              "\"1800\":{\"uuid\":\"1800\",\"characteristics\":{"
              "\"2A00\":{\"uuid\":\"2A00\",\"path\":\"1800/2A00\",\"properties\":{\"read\":true},\"value\":[84,104,105,110,103,121],\"descriptors\":{}}}},"
              "\"180F\":{\"uuid\":\"180F\",\"characteristics\":{"
              "\"2A19\":{\"uuid\":\"2A19\",\"path\":\"180F/2A19\",\"properties\":{\"read\":true,\"notify\":true},\"value\":[98],"
              "\"descriptors\":{\"2902\":{\"uuid\":\"2902\",\"path\":\"180F/2A19/2902\",\"value\":[0,0]}}}}}}" TAIL("42"));
}

/* The captured cloud fragment for service 1801 (AP device-discover-result-example.json). */
static void test_discover_captured(void **state) {
        _cleanup_(gatt_model_freep) GattModel *m = NULL;
        GattService *s;
        GattCharacteristic *c;
        GattDescriptor *d;
        static const uint8_t ccc[] = { 0, 0 };
        char *out = NULL;
        (void) state;

        assert_int_equal(gatt_model_new(&m), 0);
        assert_int_equal(gatt_model_add_service(m, "1801", NULL, true, &s), 0);
        assert_int_equal(gatt_service_add_characteristic(s, "2A05", NULL, GATT_PROP_INDICATE, &c), 0);
        assert_int_equal(gatt_characteristic_add_descriptor(c, "2902", NULL, &d), 0);
        assert_int_equal(gatt_descriptor_set_value(d, ccc, 2), 0);
        assert_int_equal(g2c_encode_device_discover_result(&unsolicited, &thingy, m, &out), 0);

        json_t *j = json_loads(out, 0, NULL);
        assert_non_null(j);
        json_t *got = json_object_get(json_object_get(json_object_get(j, "event"), "services"), "1801");
        json_t *want = json_loads("{\"uuid\":\"1801\",\"characteristics\":{\"2A05\":{\"uuid\":\"2A05\",\"path\":\"1801/2A05\",\"value\":[],"
                                  "\"properties\":{\"indicate\":true},\"descriptors\":{\"2902\":{\"uuid\":\"2902\",\"value\":[0,0],"
                                  "\"path\":\"1801/2A05/2902\"}}}}}", 0, NULL);
        assert_non_null(want);
        assert_true(json_equal(got, want));
        json_decref(want);
        json_decref(j);
        free(out);
}

static void test_discover_duplicates_and_flags(void **state) {
        _cleanup_(gatt_model_freep) GattModel *m = NULL;
        GattService *s1, *s2;
        GattCharacteristic *c;
        char *out = NULL;
        (void) state;

        assert_int_equal(gatt_model_new(&m), 0);
        /* Two instances of one service: merged, first characteristic of a UUID kept. */
        assert_int_equal(gatt_model_add_service(m, "AAAA", NULL, true, &s1), 0);
        assert_int_equal(gatt_service_add_characteristic(s1, "BBBB", NULL, 0xff, &c), 0);
        assert_int_equal(gatt_model_add_service(m, "aaaa", NULL, false, &s2), 0);
        assert_int_equal(gatt_service_add_characteristic(s2, "BBBB", NULL, GATT_PROP_READ, &c), 0);
        assert_int_equal(gatt_service_add_characteristic(s2, "CCCC", NULL, 0, &c), 0);
        check(g2c_encode_device_discover_result(&unsolicited, &thingy, m, &out), &out,
              HDR("\"N/A\"") "\"device_discover_result\",\"timestamp\":\"2025-02-27T18:38:50.123Z\","
              "\"device\":{\"id\":\"D6:57:7D:CC:50:17\",\"address\":{\"address\":\"D6:57:7D:CC:50:17\"},\"status\":{\"connected\":true}},"
              "\"services\":{\"AAAA\":{\"uuid\":\"AAAA\",\"characteristics\":{"
              "\"BBBB\":{\"uuid\":\"BBBB\",\"path\":\"AAAA/BBBB\",\"properties\":{\"broadcast\":true,\"read\":true,\"write\":true,"
              "\"writeWithoutResponse\":true,\"notify\":true,\"indicate\":true,\"authorizedSignedWrite\":true},\"value\":[],\"descriptors\":{}},"
              "\"CCCC\":{\"uuid\":\"CCCC\",\"path\":\"AAAA/CCCC\",\"properties\":{},\"value\":[],\"descriptors\":{}}}}}" TAIL("42"));
}

static void test_characteristic_events(void **state) {
        static const uint8_t v[] = { 24, 84 };
        char *s = NULL;
        (void) state;

        /* Notification: path SVC/CHRC (not lte-gateway's SVC/CHRC/2902). */
        check(g2c_encode_characteristic_value(&unsolicited, G2C_EVENT_CHARACTERISTIC_VALUE_CHANGED, &thingy_random,
                                              "ef680200-9b35-4933-9b10-52ffa9740042", "EF6802019B3549339B1052FFA9740042", v, 2, &s), &s, HDR("\"N/A\"") "\"device_characteristic_value_changed\",\"timestamp\":\"2025-02-27T18:38:50.123Z\","
              "\"device\":{\"id\":\"D6:57:7D:CC:50:17\",\"address\":{\"address\":\"D6:57:7D:CC:50:17\",\"type\":\"random\"}},"
              "\"characteristic\":{\"uuid\":\"EF6802019B3549339B1052FFA9740042\","
              "\"path\":\"EF6802009B3549339B1052FFA9740042/EF6802019B3549339B1052FFA9740042\",\"value\":[24,84]}" TAIL("42"));
        s = NULL;
        /* Read result: one "value", the byte array. */
        check(g2c_encode_characteristic_value(&answer, G2C_EVENT_CHARACTERISTIC_VALUE_READ_RESULT, &thingy, "1800", "2A00",
                                              (const uint8_t *) "Thingy", 6, &s), &s, HDR("\"req-1\"") "\"device_characteristic_value_read_result\",\"timestamp\":\"2025-02-27T18:38:50.123Z\","
              "\"device\":{\"id\":\"D6:57:7D:CC:50:17\",\"address\":{\"address\":\"D6:57:7D:CC:50:17\"}},"
              "\"characteristic\":{\"uuid\":\"2A00\",\"path\":\"1800/2A00\",\"value\":[84,104,105,110,103,121]}" TAIL("43"));
        s = NULL;
        check(g2c_encode_characteristic_value(&answer, G2C_EVENT_CHARACTERISTIC_VALUE_WRITE_RESULT, &thingy, "180F", "2A19",
                                              NULL, 0, &s), &s, HDR("\"req-1\"") "\"device_characteristic_value_write_result\",\"timestamp\":\"2025-02-27T18:38:50.123Z\","
              "\"device\":{\"id\":\"D6:57:7D:CC:50:17\",\"address\":{\"address\":\"D6:57:7D:CC:50:17\"}},"
              "\"characteristic\":{\"uuid\":\"2A19\",\"path\":\"180F/2A19\",\"value\":[]}" TAIL("43"));
        s = NULL;
        assert_int_equal(g2c_encode_characteristic_value(&answer, G2C_EVENT_DESCRIPTOR_VALUE_CHANGED, &thingy, "180F", "2A19",
                                                         NULL, 0, &s), -EINVAL);
        assert_null(s);
}

/* The captured GWC read result (spec §2.4): same envelope, event type,
 * requestId, messageId, uuid and value.  (Its path "180F/2A19/2A19" and the
 * extra properties/descriptors are a desktop-gateway oddity we do not send.) */
static void test_read_result_captured(void **state) {
        G2cHeader h = { .gateway_id = "089839d5-0000-4000-8000-000000000000", .request_id = "950339be-83c5-4efe-ac8d-a57d8362d9a0",
                        .message_id = 91, .timestamp_usec = 1582910152566000ULL };
        static const uint8_t v[] = { 98 };
        char *s = NULL;
        (void) state;
        assert_int_equal(g2c_encode_characteristic_value(&h, G2C_EVENT_CHARACTERISTIC_VALUE_READ_RESULT, &thingy, "180F",
                                                         "2A19", v, 1, &s), 0);
        json_t *j = json_loads(s, 0, NULL);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "requestId")), "950339be-83c5-4efe-ac8d-a57d8362d9a0");
        assert_int_equal(json_integer_value(json_object_get(j, "messageId")), 91);
        json_t *ev = json_object_get(j, "event");
        assert_string_equal(json_string_value(json_object_get(ev, "type")), "device_characteristic_value_read_result");
        assert_string_equal(json_string_value(json_object_get(ev, "timestamp")), "2020-02-28T17:15:52.566Z");
        json_t *c = json_object_get(ev, "characteristic");
        assert_string_equal(json_string_value(json_object_get(c, "uuid")), "2A19");
        json_t *want = json_pack("[i]", 98);
        assert_true(json_equal(json_object_get(c, "value"), want));
        json_decref(want);
        json_decref(j);
        free(s);
}

/* lte-gateway's subscribe pair (spec §2.4) with its bugs fixed: uuid
 * "2902" (not "BT_UUID_GATT_CCC_VAL"), two bytes. */
/* The attribute events are written without jansson: compare them with what
 * jansson's compact dump gives for the same content, over random ids (every
 * printable character, quotes and backslashes included), values and types. */
static void test_attribute_events_match_jansson(void **state) {
        (void) state;
        srand(1);
        for (int round = 0; round < 2000; round++) {
                char gw[C2G_ID_MAX + 1], req[C2G_ID_MAX + 1];
                size_t ngw = 1 + (size_t) rand() % C2G_ID_MAX, nreq = 1 + (size_t) rand() % C2G_ID_MAX;
                uint8_t v[GATT_VALUE_MAX];
                size_t nv = (size_t) rand() % (round % 10 == 0 ? GATT_VALUE_MAX + 1 : 24);
                bool descriptor = rand() % 2, with_req = rand() % 2;
                BtAddrType at = (BtAddrType) (rand() % _BT_ADDR_TYPE_MAX);
                G2cEventType type = descriptor ? G2C_EVENT_DESCRIPTOR_VALUE_CHANGED + rand() % 3
                                               : G2C_EVENT_CHARACTERISTIC_VALUE_CHANGED + rand() % 3;
                for (size_t i = 0; i < ngw; i++)
                        gw[i] = (char) (0x20 + rand() % 95);
                gw[ngw] = 0;
                for (size_t i = 0; i < nreq; i++)
                        req[i] = (char) (0x20 + rand() % 95);
                req[nreq] = 0;
                for (size_t i = 0; i < nv; i++)
                        v[i] = (uint8_t) rand();
                G2cHeader h = { .gateway_id = gw, .request_id = with_req ? req : NULL,
                                .message_id = (uint64_t) rand() * (uint64_t) rand() * (round % 7 == 0 ? 4294967296ULL : 1) % INT64_MAX,
                                .timestamp_usec = (uint64_t) rand() * 1000000ULL };
                G2cDevice d = { .address = "d6:57:7d:cc:50:17", .address_type = at };
                char *got = NULL;
                int r;

                if (descriptor)
                        r = g2c_encode_descriptor_value(&h, type, &d, "EF680200-9B35-4933-9B10-52FFA9740042", "2a19", "2902", v, nv, &got);
                else
                        r = g2c_encode_characteristic_value(&h, type, &d, "180f", "ef680201-9b35-4933-9b10-52ffa9740042", v, nv, &got);
                assert_int_equal(r, 0);

                char ts[G2C_TIMESTAMP_LEN + 1];
                assert_int_equal(g2c_format_timestamp(h.timestamp_usec, ts), 0);
                json_t *addr = json_pack("{s:s}", "address", "D6:57:7D:CC:50:17");
                if (bt_addr_type_to_string(at))
                        json_object_set_new(addr, "type", json_string(bt_addr_type_to_string(at)));
                json_t *vals = json_array();
                for (size_t i = 0; i < nv; i++)
                        json_array_append_new(vals, json_integer(v[i]));
                json_t *attr = descriptor
                        ? json_pack("{s:s,s:s,s:o}", "uuid", "2902", "path", "EF6802009B3549339B1052FFA9740042/2A19/2902", "value", vals)
                        : json_pack("{s:s,s:s,s:o}", "uuid", "EF6802019B3549339B1052FFA9740042", "path",
                                    "180F/EF6802019B3549339B1052FFA9740042", "value", vals);
                json_t *want = json_pack("{s:s,s:s,s:o,s:{s:s,s:s,s:{s:s,s:o},s:o},s:I}", "type", "event", "gatewayId", gw,
                                         "requestId", json_string(with_req ? req : "N/A"), "event", "type",
                                         g2c_event_type_to_string(type), "timestamp", ts, "device", "id", "D6:57:7D:CC:50:17",
                                         "address", addr, descriptor ? "descriptor" : "characteristic", attr, "messageId",
                                         (json_int_t) h.message_id);
                assert_non_null(want);
                char *w = json_dumps(want, JSON_COMPACT);
                if (!streq(got, w))
                        fail_msg("round %d\n got: %s\nwant: %s", round, got, w);
                free(w);
                free(got);
                json_decref(want);
        }
}

static void test_descriptor_events(void **state) {
        static const uint8_t on[] = { 1, 0 };
        G2cDevice dev = { .address = "D6:BB:DE:01:E4:0B", .address_type = BT_ADDR_TYPE_RANDOM };
        char *s = NULL;
        (void) state;

#define DESC_EVENT(type, req)                                                                                       \
        HDR(req) "\"" type "\",\"timestamp\":\"2025-02-27T18:38:50.123Z\","                                        \
                 "\"device\":{\"id\":\"D6:BB:DE:01:E4:0B\",\"address\":{\"address\":\"D6:BB:DE:01:E4:0B\",\"type\":\"random\"}}," \
                 "\"descriptor\":{\"uuid\":\"2902\",\"path\":\"086011118277EF8E1523785788778193/"               \
                 "086022228277EF8E1523785788778193/2902\",\"value\":[1,0]}"
        check(g2c_encode_descriptor_value(&answer, G2C_EVENT_DESCRIPTOR_VALUE_CHANGED, &dev, "086011118277ef8e1523785788778193",
                                          "08602222-8277-EF8E-1523-785788778193", "00002902-0000-1000-8000-00805F9B34FB", on, 2, &s), &s, DESC_EVENT("device_descriptor_value_changed", "\"req-1\"") TAIL("43"));
        s = NULL;
        check(g2c_encode_descriptor_value(&answer, G2C_EVENT_DESCRIPTOR_VALUE_WRITE_RESULT, &dev, "086011118277EF8E1523785788778193",
                                          "086022228277EF8E1523785788778193", "2902", on, 2, &s), &s, DESC_EVENT("device_descriptor_value_write_result", "\"req-1\"") TAIL("43"));
        s = NULL;
        check(g2c_encode_descriptor_value(&unsolicited, G2C_EVENT_DESCRIPTOR_VALUE_READ_RESULT, &dev, "086011118277EF8E1523785788778193",
                                          "086022228277EF8E1523785788778193", "2902", on, 2, &s), &s, DESC_EVENT("device_descriptor_value_read_result", "\"N/A\"") TAIL("42"));
#undef DESC_EVENT
}

static void test_error(void **state) {
        char *s = NULL;
        (void) state;
        check(g2c_encode_error(&answer, "d6:57:7d:cc:50:17", "Reached subscription limit of 16", -1, &s), &s, HDR("\"req-1\"") "\"error\",\"timestamp\":\"2025-02-27T18:38:50.123Z\",\"device\":{\"deviceAddress\":"
              "\"D6:57:7D:CC:50:17\"},\"error\":{\"description\":\"Reached subscription limit of 16\",\"code\":-1}" TAIL("43"));
        s = NULL;
        check(g2c_encode_error(&unsolicited, NULL, "operation.deviceAddress: \"quoted\"", 74, &s), &s, HDR("\"N/A\"") "\"error\",\"timestamp\":\"2025-02-27T18:38:50.123Z\",\"error\":{\"description\":"
              "\"operation.deviceAddress: \\\"quoted\\\"\",\"code\":74}" TAIL("42"));
}

/* The whole path from a refused c2g message to the error event. */
static void test_c2g_error(void **state) {
        static const char bad[] = "{\"type\":\"operation\",\"id\":\"req-9\",\"operation\":{\"type\":\"device_discover\","
                                  "\"deviceAddress\":\"D6:57:7D:CC:50\"}}";
        C2gOperation o;
        C2gError e;
        char *s = NULL;
        int r;
        (void) state;

        r = c2g_decode(bad, strlen(bad), &o, &e);
        assert_int_equal(r, -EBADMSG);
        check(g2c_encode_c2g_error(&unsolicited, &e, r, &s), &s,
              HDR("\"req-9\"") "\"error\",\"timestamp\":\"2025-02-27T18:38:50.123Z\",\"error\":{\"description\":"
              "\"operation.deviceAddress: not a Bluetooth address AA:BB:CC:DD:EE:FF\",\"code\":-74}" TAIL("42"));

        /* Garbage: no id to echo, and jansson's text (which quotes the input) stays printable. */
        r = c2g_decode("{\"id\":\"\xff\xfe", 9, &o, &e);
        assert_int_equal(r, -EBADMSG);
        assert_false(e.has_id);
        assert_int_equal(g2c_encode_c2g_error(&answer, &e, r, &s), 0);
        json_t *j = json_loads(s, 0, NULL);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "requestId")), "N/A");
        assert_non_null(strstr(json_string_value(json_object_get(json_object_get(json_object_get(j, "event"), "error"),
                                                                 "description")), "invalid JSON"));
        json_decref(j);
        free(s);
}

static void test_invalid_inputs(void **state) {
        G2cHeader h = unsolicited;
        G2cDevice bad = { .address = "D6:57:7D:CC:50" };
        char *s = NULL;
        (void) state;

        assert_int_equal(g2c_encode_device_connect_result(&h, &bad, true, &s), -EINVAL);
        bad.address = NULL;
        assert_int_equal(g2c_encode_device_connect_result(&h, &bad, true, &s), -EINVAL);
        h.gateway_id = "";
        assert_int_equal(g2c_encode_device_connect_result(&h, &thingy, true, &s), -EINVAL);
        h.gateway_id = NULL;
        assert_int_equal(g2c_encode_device_connect_result(&h, &thingy, true, &s), -EINVAL);
        h = unsolicited;
        h.request_id = "a\nb";
        assert_int_equal(g2c_encode_device_connect_result(&h, &thingy, true, &s), -EINVAL);
        h = unsolicited;
        h.message_id = (uint64_t) INT64_MAX + 1;
        assert_int_equal(g2c_encode_device_connect_result(&h, &thingy, true, &s), -EINVAL);
        assert_int_equal(g2c_encode_characteristic_value(&unsolicited, G2C_EVENT_CHARACTERISTIC_VALUE_CHANGED, &thingy, "18",
                                                         "2A19", NULL, 0, &s), -EINVAL);
        uint8_t big[GATT_VALUE_MAX + 1] = {};
        assert_int_equal(g2c_encode_characteristic_value(&unsolicited, G2C_EVENT_CHARACTERISTIC_VALUE_CHANGED, &thingy, "180F",
                                                         "2A19", big, sizeof big, &s), -EINVAL);
        assert_int_equal(g2c_encode_error(&unsolicited, NULL, "\xff\xfe", 1, &s), -EINVAL);
        assert_int_equal(g2c_encode_error(&unsolicited, "nope", "x", 1, &s), -EINVAL);
        G2cScanDevice sd = { .device = thingy, .name = "\xc3" };
        assert_int_equal(g2c_encode_scan_result(&unsolicited, C2G_SCAN_REPORTING_INSTANT, true, &sd, 1, &s), -EINVAL);
        assert_int_equal(g2c_encode_scan_result(&unsolicited, _C2G_SCAN_REPORTING_INVALID, true, NULL, 0, &s), -EINVAL);
        assert_null(s);
}

static void test_size_cap(void **state) {
        _cleanup_(gatt_model_freep) GattModel *m = NULL;
        uint8_t v[GATT_VALUE_MAX];
        char *s = NULL;
        (void) state;

        /* 32 services x 32 characteristics x 512 bytes is far over 128 KiB. */
        memset(v, 255, sizeof v);
        assert_int_equal(gatt_model_new(&m), 0);
        for (unsigned i = 0; i < GATT_MODEL_SERVICES_MAX; i++) {
                char u[5];
                GattService *sv;
                snprintf(u, sizeof u, "%04X", 0x1000 + i);
                assert_int_equal(gatt_model_add_service(m, u, NULL, true, &sv), 0);
                for (unsigned j = 0; j < GATT_MODEL_CHARACTERISTICS_MAX; j++) {
                        GattCharacteristic *c;
                        snprintf(u, sizeof u, "%04X", 0x2000 + j);
                        assert_int_equal(gatt_service_add_characteristic(sv, u, NULL, GATT_PROP_READ, &c), 0);
                        assert_int_equal(gatt_characteristic_set_value(c, v, sizeof v), 0);
                }
                assert_int_equal(gatt_service_add_characteristic(sv, "FFFF", NULL, 0, NULL), -E2BIG);
        }
        assert_int_equal(gatt_model_add_service(m, "FFFF", NULL, true, NULL), -E2BIG);
        assert_int_equal(g2c_encode_device_discover_result(&unsolicited, &thingy, m, &s), -EMSGSIZE);
        assert_null(s);
}

static void test_tables(void **state) {
        (void) state;
        for (int i = 0; i < _G2C_EVENT_TYPE_MAX; i++)
                assert_int_equal(g2c_event_type_from_string(g2c_event_type_to_string(i)), i);
        assert_int_equal(g2c_event_type_from_string("nope"), _G2C_EVENT_TYPE_INVALID);
        assert_null(g2c_event_type_to_string(_G2C_EVENT_TYPE_MAX));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_timestamp),
                cmocka_unit_test(test_scan_result),
                cmocka_unit_test(test_scan_result_captured),
                cmocka_unit_test(test_scan_result_advertisement),
                cmocka_unit_test(test_connect_disconnect),
                cmocka_unit_test(test_connect_captured),
                cmocka_unit_test(test_discover_result),
                cmocka_unit_test(test_discover_captured),
                cmocka_unit_test(test_discover_duplicates_and_flags),
                cmocka_unit_test(test_characteristic_events),
                cmocka_unit_test(test_read_result_captured),
                cmocka_unit_test(test_attribute_events_match_jansson),
                cmocka_unit_test(test_descriptor_events),
                cmocka_unit_test(test_error),
                cmocka_unit_test(test_c2g_error),
                cmocka_unit_test(test_invalid_inputs),
                cmocka_unit_test(test_size_cap),
                cmocka_unit_test(test_tables),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
