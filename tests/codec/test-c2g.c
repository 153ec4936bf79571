/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "c2g.h"

static int decode(const char *s, C2gOperation *o, C2gError *e) {
        return c2g_decode(s, strlen(s), o, e);
}

static C2gOperation decode_ok(const char *s) {
        C2gOperation o;
        C2gError e = {};
        int r = decode(s, &o, &e);
        if (r != C2G_MESSAGE_OPERATION)
                fail_msg("%s: r=%d field=%s: %s", s, r, e.error.field, e.error.description);
        return o;
}

/* The example requests of spec §2.3. */
static void test_scan(void **state) {
        (void) state;
        C2gOperation o = decode_ok("{\"type\":\"operation\",\"id\":\"7b6a5c1e-0000-4000-8000-000000000001\","
                                   "\"operation\":{\"type\":\"scan\",\"scanType\":0,\"scanMode\":\"active\","
                                   "\"scanTimeout\":10,\"scanReporting\":\"instant\",\"scanInterval\":0}}");
        assert_int_equal(o.type, C2G_OP_SCAN);
        assert_string_equal(o.id, "7b6a5c1e-0000-4000-8000-000000000001");
        assert_int_equal(o.scan.type, C2G_SCAN_TYPE_REGULAR);
        assert_int_equal(o.scan.mode, C2G_SCAN_MODE_ACTIVE);
        assert_int_equal(o.scan.timeout_sec, 10);
        assert_int_equal(o.scan.reporting, C2G_SCAN_REPORTING_INSTANT);
        assert_int_equal(o.scan.interval, 0);
        assert_false(o.scan.has_filter_rssi);
        assert_string_equal(o.scan.filter_name, "");

        o = decode_ok("{\"type\":\"operation\",\"id\":\"2\",\"operation\":{\"type\":\"scan\",\"scanType\":1,"
                      "\"scanMode\":\"passive\",\"scanTimeout\":3,\"scanReporting\":\"batch\",\"scanInterval\":100,"
                      "\"filter\":{\"rssi\":-70,\"name\":\"Thingy\"}}}");
        assert_int_equal(o.scan.type, C2G_SCAN_TYPE_BEACON);
        assert_int_equal(o.scan.mode, C2G_SCAN_MODE_PASSIVE);
        assert_int_equal(o.scan.timeout_sec, 3);
        assert_int_equal(o.scan.reporting, C2G_SCAN_REPORTING_BATCH);
        assert_int_equal(o.scan.interval, 100);
        assert_true(o.scan.has_filter_rssi);
        assert_int_equal(o.scan.filter_rssi, -70);
        assert_string_equal(o.scan.filter_name, "Thingy");

        /* Defaults. */
        o = decode_ok("{\"type\":\"operation\",\"id\":\"3\",\"operation\":{\"type\":\"scan\",\"filter\":null}}");
        assert_int_equal(o.scan.timeout_sec, C2G_SCAN_TIMEOUT_DEFAULT);
        assert_int_equal(o.scan.mode, C2G_SCAN_MODE_ACTIVE);
        assert_int_equal(o.scan.reporting, C2G_SCAN_REPORTING_INSTANT);
        assert_int_equal(o.scan.defaulted, 0);

        /* Lenient: what cannot be used falls back to its default, and says so. */
        static const struct {
                const char *json;
                unsigned defaulted;
        } lenient[] = {
                { "\"scanTimeout\":0", C2G_SCAN_DEFAULTED_TIMEOUT },
                { "\"scanTimeout\":\"10\"", C2G_SCAN_DEFAULTED_TIMEOUT },
                { "\"scanTimeout\":1e3", C2G_SCAN_DEFAULTED_TIMEOUT },
                { "\"scanTimeout\":100000", C2G_SCAN_DEFAULTED_TIMEOUT },
                { "\"scanMode\":\"loud\"", C2G_SCAN_DEFAULTED_MODE },
                { "\"scanReporting\":1", C2G_SCAN_DEFAULTED_REPORTING },
                { "\"scanInterval\":-1", C2G_SCAN_DEFAULTED_INTERVAL },
                { "\"scanInterval\":99999,\"scanMode\":null,\"scanReporting\":\"later\"",
                  C2G_SCAN_DEFAULTED_INTERVAL | C2G_SCAN_DEFAULTED_MODE | C2G_SCAN_DEFAULTED_REPORTING },
        };
        for (size_t i = 0; i < ELEMENTSOF(lenient); i++) {
                char json[256];
                snprintf(json, sizeof json, "{\"type\":\"operation\",\"id\":\"4\",\"operation\":{\"type\":\"scan\",%s}}",
                         lenient[i].json);
                o = decode_ok(json);
                assert_int_equal(o.scan.defaulted, lenient[i].defaulted);
                assert_int_equal(o.scan.timeout_sec, C2G_SCAN_TIMEOUT_DEFAULT);
                assert_int_equal(o.scan.interval, 0);
                assert_int_equal(o.scan.mode, C2G_SCAN_MODE_ACTIVE);
                assert_int_equal(o.scan.reporting, C2G_SCAN_REPORTING_INSTANT);
        }
}

static void test_discover(void **state) {
        (void) state;
        C2gOperation o = decode_ok("{\"type\":\"operation\",\"id\":\"a\",\"operation\":{\"type\":\"device_discover\","
                                   "\"deviceAddress\":\"d6:57:7d:cc:50:17\"}}");
        assert_int_equal(o.type, C2G_OP_DEVICE_DISCOVER);
        assert_string_equal(o.target.address, "D6:57:7D:CC:50:17");
}

static void test_characteristic_read(void **state) {
        (void) state;
        C2gOperation o = decode_ok("{\"type\":\"operation\",\"id\":\"b\",\"operation\":{\"type\":\"device_characteristic_value_read\","
                                   "\"deviceAddress\":\"D6:57:7D:CC:50:17\",\"serviceUUID\":\"180f\",\"characteristicUUID\":\"2A19\"}}");
        assert_int_equal(o.type, C2G_OP_CHARACTERISTIC_READ);
        assert_string_equal(o.target.address, "D6:57:7D:CC:50:17");
        assert_string_equal(o.target.service_uuid, "180F");
        assert_string_equal(o.target.characteristic_uuid, "2A19");
        assert_string_equal(o.target.descriptor_uuid, "");
}

static void test_characteristic_write(void **state) {
        (void) state;
        C2gOperation o = decode_ok("{\"type\":\"operation\",\"id\":\"c\",\"operation\":{\"type\":\"device_characteristic_value_write\","
                                   "\"deviceAddress\":\"D6:57:7D:CC:50:17\",\"serviceUUID\":\"EF6801009B3549339B1052FFA9740042\","
                                   "\"characteristicUUID\":\"ef680101-9b35-4933-9b10-52ffa9740042\","
                                   "\"characteristicValue\":[84,104,105,110,103,121]}}");
        assert_int_equal(o.type, C2G_OP_CHARACTERISTIC_WRITE);
        assert_string_equal(o.target.service_uuid, "EF6801009B3549339B1052FFA9740042");
        assert_string_equal(o.target.characteristic_uuid, "EF6801019B3549339B1052FFA9740042");
        assert_int_equal(o.value_len, 6);
        assert_memory_equal(o.value, "Thingy", 6);

        /* Value as a string (lte-gateway accepts that too). */
        o = decode_ok("{\"type\":\"operation\",\"id\":\"c\",\"operation\":{\"type\":\"device_characteristic_value_write\","
                      "\"deviceAddress\":\"D6:57:7D:CC:50:17\",\"serviceUUID\":\"180F\",\"characteristicUUID\":\"2A19\","
                      "\"characteristicValue\":\"hi\"}}");
        assert_int_equal(o.value_len, 2);
        assert_memory_equal(o.value, "hi", 2);

        /* Empty value: a zero-length write is legal. */
        o = decode_ok("{\"type\":\"operation\",\"id\":\"c\",\"operation\":{\"type\":\"device_characteristic_value_write\","
                      "\"deviceAddress\":\"D6:57:7D:CC:50:17\",\"serviceUUID\":\"180F\",\"characteristicUUID\":\"2A19\","
                      "\"characteristicValue\":[]}}");
        assert_int_equal(o.value_len, 0);
}

static void test_descriptor_read(void **state) {
        (void) state;
        C2gOperation o = decode_ok("{\"type\":\"operation\",\"id\":\"d\",\"operation\":{\"type\":\"device_descriptor_value_read\","
                                   "\"deviceAddress\":\"D6:57:7D:CC:50:17\",\"serviceUUID\":\"180F\",\"characteristicUUID\":\"2A19\","
                                   "\"descriptorUUID\":\"00002902-0000-1000-8000-00805f9b34fb\"}}");
        assert_int_equal(o.type, C2G_OP_DESCRIPTOR_READ);
        assert_string_equal(o.target.descriptor_uuid, "2902");
}

static void test_descriptor_write(void **state) {
        (void) state;
        C2gOperation o = decode_ok("{\"type\":\"operation\",\"id\":\"e\",\"operation\":{\"type\":\"device_descriptor_value_write\","
                                   "\"deviceAddress\":\"D6:57:7D:CC:50:17\",\"serviceUUID\":\"EF6802009B3549339B1052FFA9740042\","
                                   "\"characteristicUUID\":\"EF6802019B3549339B1052FFA9740042\",\"descriptorUUID\":\"2902\","
                                   "\"descriptorValue\":[1,0]}}");
        assert_int_equal(o.type, C2G_OP_DESCRIPTOR_WRITE);
        assert_string_equal(o.target.service_uuid, "EF6802009B3549339B1052FFA9740042");
        assert_string_equal(o.target.characteristic_uuid, "EF6802019B3549339B1052FFA9740042");
        assert_string_equal(o.target.descriptor_uuid, "2902");
        assert_int_equal(o.value_len, 2);
        assert_int_equal(o.value[0], 1);
        assert_int_equal(o.value[1], 0);
}

static void test_ccc(void **state) {
        static const struct {
                uint8_t v[3];
                size_t len;
                int r;
                C2gCccMode mode;
        } t[] = {
                { { 1, 0 }, 2, 0, C2G_CCC_NOTIFY },  { { 2, 0 }, 2, 0, C2G_CCC_INDICATE },
                { { 0, 0 }, 2, 0, C2G_CCC_OFF },     { { 1 }, 1, 0, C2G_CCC_NOTIFY },
                { { 3, 0 }, 2, -EOPNOTSUPP, 0 },     { { 4, 0 }, 2, -EINVAL, 0 },
                { { 1, 1 }, 2, -EINVAL, 0 },         { { 1, 0, 0 }, 3, -EINVAL, 0 },
                { {}, 0, -EINVAL, 0 },
        };
        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                C2gCccMode m = _C2G_CCC_MODE_INVALID;
                assert_int_equal(c2g_ccc_mode(t[i].v, t[i].len, &m), t[i].r);
                assert_int_equal(m, t[i].r == 0 ? t[i].mode : _C2G_CCC_MODE_INVALID);
        }
        assert_string_equal(c2g_ccc_mode_to_string(C2G_CCC_INDICATE), "indicate");

        C2gOperation o = decode_ok("{\"type\":\"operation\",\"id\":\"e\",\"operation\":{\"type\":\"device_descriptor_value_write\","
                                   "\"deviceAddress\":\"D6:57:7D:CC:50:17\",\"serviceUUID\":\"180F\",\"characteristicUUID\":\"2A19\","
                                   "\"descriptorUUID\":\"00002902-0000-1000-8000-00805F9B34FB\",\"descriptorValue\":[2,0]}}");
        assert_true(c2g_is_ccc_write(&o));
        C2gCccMode m;
        assert_int_equal(c2g_ccc_mode(o.value, o.value_len, &m), 0);
        assert_int_equal(m, C2G_CCC_INDICATE);
        o = decode_ok("{\"type\":\"operation\",\"id\":\"e\",\"operation\":{\"type\":\"device_descriptor_value_write\","
                      "\"deviceAddress\":\"D6:57:7D:CC:50:17\",\"serviceUUID\":\"180F\",\"characteristicUUID\":\"2A19\","
                      "\"descriptorUUID\":\"2901\",\"descriptorValue\":\"label\"}}");
        assert_false(c2g_is_ccc_write(&o));
        o = decode_ok("{\"type\":\"operation\",\"id\":\"e\",\"operation\":{\"type\":\"device_descriptor_value_read\","
                      "\"deviceAddress\":\"D6:57:7D:CC:50:17\",\"serviceUUID\":\"180F\",\"characteristicUUID\":\"2A19\","
                      "\"descriptorUUID\":\"2902\"}}");
        assert_false(c2g_is_ccc_write(&o));
}

static void test_gateway_ops(void **state) {
        (void) state;
        C2gOperation o = decode_ok("{\"type\":\"operation\",\"id\":\"f\",\"operation\":{\"type\":\"get_gateway_status\"}}");
        assert_int_equal(o.type, C2G_OP_GET_GATEWAY_STATUS);
        o = decode_ok("{\"type\":\"operation\",\"id\":\"g\",\"operation\":{\"type\":\"delete_yourself\"}}");
        assert_int_equal(o.type, C2G_OP_DELETE_YOURSELF);
        assert_string_equal(o.id, "g");
}

static void test_discon(void **state) {
        C2gOperation o = { .type = C2G_OP_SCAN, .id = "untouched" };
        (void) state;
        assert_int_equal(decode("{\"appId\":\"DEVICE\",\"messageType\":\"DISCON\"}", &o, NULL), C2G_MESSAGE_DISCON);
        assert_string_equal(o.id, "untouched");
        assert_int_equal(decode("{\"messageType\":\"DISCON\",\"appId\":\"DEVICE\",\"data\":{}}", &o, NULL), C2G_MESSAGE_DISCON);
        /* Not a DISCON: wrong appId. */
        assert_int_equal(decode("{\"appId\":\"OTHER\",\"messageType\":\"DISCON\"}", &o, NULL), -EPROTO);
}

/* Every violation names its field, carries the id when readable, and never
 * yields an operation. */
static void test_errors(void **state) {
#define OP(body) "{\"type\":\"operation\",\"id\":\"req-1\",\"operation\":{" body "}}"
#define CHR(extra) OP("\"type\":\"device_characteristic_value_write\",\"deviceAddress\":\"D6:57:7D:CC:50:17\"," \
                      "\"serviceUUID\":\"180F\",\"characteristicUUID\":\"2A19\"" extra)
        static const struct {
                const char *in;
                int r;
                const char *field;
                bool has_id;
        } t[] = {
                { "", -EBADMSG, "", false },
                { "{", -EBADMSG, "", false },
                { "[]", -EPROTO, "", false },
                { "null", -EBADMSG, "", false },
                { "{\"type\":\"operation\",\"id\":\"x\",\"id\":\"y\",\"operation\":{\"type\":\"scan\"}}", -EBADMSG, "", false },
                { "{\"type\":\"event\",\"id\":\"req-1\",\"operation\":{\"type\":\"scan\"}}", -EPROTO, "type", true },
                { "{\"id\":\"req-1\",\"operation\":{\"type\":\"scan\"}}", -EPROTO, "type", true },
                { "{\"type\":\"operationX\",\"id\":\"req-1\",\"operation\":{\"type\":\"scan\"}}", -EPROTO, "type", true },
                { "{\"type\":\"operation\",\"operation\":{\"type\":\"scan\"}}", -EBADMSG, "id", false },
                { "{\"type\":\"operation\",\"id\":7,\"operation\":{\"type\":\"scan\"}}", -EBADMSG, "id", false },
                { "{\"type\":\"operation\",\"id\":\"\",\"operation\":{\"type\":\"scan\"}}", -EBADMSG, "id", false },
                { "{\"type\":\"operation\",\"id\":\"a\\nb\",\"operation\":{\"type\":\"scan\"}}", -EBADMSG, "id", false },
                { "{\"type\":\"operation\",\"id\":\"req-1\"}", -EBADMSG, "operation", true },
                { "{\"type\":\"operation\",\"id\":\"req-1\",\"operation\":[]}", -EBADMSG, "operation", true },
                { OP("\"scanType\":0"), -EBADMSG, "operation.type", true },
                { OP("\"type\":5"), -EBADMSG, "operation.type", true },
                { OP("\"type\":\"device_connect\""), -EOPNOTSUPP, "operation.type", true },
                { OP("\"type\":\"scan_\""), -EOPNOTSUPP, "operation.type", true },
                { OP("\"type\":\"scan\",\"scanType\":2"), -ERANGE, "operation.scanType", true },
                { OP("\"type\":\"scan\",\"filter\":1"), -EBADMSG, "operation.filter", true },
                { OP("\"type\":\"scan\",\"filter\":{\"rssi\":-200}"), -ERANGE, "operation.filter.rssi", true },
                { OP("\"type\":\"scan\",\"filter\":{\"name\":[]}"), -EBADMSG, "operation.filter.name", true },
                { OP("\"type\":\"device_discover\""), -EBADMSG, "operation.deviceAddress", true },
                { OP("\"type\":\"device_discover\",\"deviceAddress\":\"D6:57:7D:CC:50\""), -EBADMSG, "operation.deviceAddress", true },
                { OP("\"type\":\"device_discover\",\"deviceAddress\":\"D6:57:7D:CC:50:17 (random)\""), -EBADMSG, "operation.deviceAddress", true },
                { OP("\"type\":\"device_discover\",\"deviceAddress\":\"D6-57-7D-CC-50-17\""), -EBADMSG, "operation.deviceAddress", true },
                { OP("\"type\":\"device_discover\",\"deviceAddress\":\"G6:57:7D:CC:50:17\""), -EBADMSG, "operation.deviceAddress", true },
                { OP("\"type\":\"device_discover\",\"deviceAddress\":{\"address\":\"D6:57:7D:CC:50:17\"}"), -EBADMSG, "operation.deviceAddress", true },
                { OP("\"type\":\"device_characteristic_value_read\",\"deviceAddress\":\"D6:57:7D:CC:50:17\",\"characteristicUUID\":\"2A19\""),
                  -EBADMSG, "operation.serviceUUID", true },
                { OP("\"type\":\"device_characteristic_value_read\",\"deviceAddress\":\"D6:57:7D:CC:50:17\",\"serviceUUID\":\"180F\""),
                  -EBADMSG, "operation.characteristicUUID", true },
                { OP("\"type\":\"device_characteristic_value_read\",\"deviceAddress\":\"D6:57:7D:CC:50:17\",\"serviceUUID\":\"180\",\"characteristicUUID\":\"2A19\""),
                  -EBADMSG, "operation.serviceUUID", true },
                { OP("\"type\":\"device_characteristic_value_read\",\"deviceAddress\":\"D6:57:7D:CC:50:17\",\"serviceUUID\":\"180F\",\"characteristicUUID\":\"2A1G\""),
                  -EBADMSG, "operation.characteristicUUID", true },
                { OP("\"type\":\"device_characteristic_value_read\",\"deviceAddress\":\"D6:57:7D:CC:50:17\",\"serviceUUID\":\"180F\",\"characteristicUUID\":\"ef680101-9b35-4933-9b10-52ffa974004\""),
                  -EBADMSG, "operation.characteristicUUID", true },
                { OP("\"type\":\"device_characteristic_value_read\",\"deviceAddress\":\"D6:57:7D:CC:50:17\",\"serviceUUID\":\"180F\",\"characteristicUUID\":\"ef6801019-b35-4933-9b10-52ffa9740042\""),
                  -EBADMSG, "operation.characteristicUUID", true },
                { CHR(""), -EBADMSG, "operation.characteristicValue", true },
                { CHR(",\"characteristicValue\":null"), -EBADMSG, "operation.characteristicValue", true },
                { CHR(",\"characteristicValue\":[1,256]"), -EBADMSG, "operation.characteristicValue", true },
                { CHR(",\"characteristicValue\":[1,-1]"), -EBADMSG, "operation.characteristicValue", true },
                { CHR(",\"characteristicValue\":[1,2.5]"), -EBADMSG, "operation.characteristicValue", true },
                { CHR(",\"characteristicValue\":[\"1\"]"), -EBADMSG, "operation.characteristicValue", true },
                { CHR(",\"characteristicValue\":[[1]]"), -EBADMSG, "operation.characteristicValue", true },
                { CHR(",\"characteristicValue\":12"), -EBADMSG, "operation.characteristicValue", true },
                { OP("\"type\":\"device_descriptor_value_write\",\"deviceAddress\":\"D6:57:7D:CC:50:17\",\"serviceUUID\":\"180F\","
                     "\"characteristicUUID\":\"2A19\",\"descriptorValue\":[1,0]"), -EBADMSG, "operation.descriptorUUID", true },
                { OP("\"type\":\"device_descriptor_value_write\",\"deviceAddress\":\"D6:57:7D:CC:50:17\",\"serviceUUID\":\"180F\","
                     "\"characteristicUUID\":\"2A19\",\"descriptorUUID\":\"2902\""), -EBADMSG, "operation.descriptorValue", true },
                { OP("\"type\":\"device_descriptor_value_read\",\"deviceAddress\":\"D6:57:7D:CC:50:17\",\"serviceUUID\":\"180F\","
                     "\"characteristicUUID\":\"2A19\",\"descriptorUUID\":\"\""), -EBADMSG, "operation.descriptorUUID", true },
                { "{\"type\":\"operation\",\"id\":\"req-1\",\"operation\":{\"type\":\"scan\",\"x\":[[[[[[[[[[1]]]]]]]]]]}}",
                  -ELOOP, "", false },
        };
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                C2gOperation o = { .type = C2G_OP_SCAN, .id = "untouched" };
                C2gError e;
                int r;

                memset(&e, 0xaa, sizeof e);
                r = decode(t[i].in, &o, &e);
                if (r != t[i].r || !streq(e.error.field, t[i].field) || e.has_id != t[i].has_id)
                        fail_msg("case %zu %s: r=%d field='%s' has_id=%d (%s)", i, t[i].in, r, e.error.field,
                                 e.has_id, e.error.description);
                assert_true(strlen(e.error.description) > 0);
                if (t[i].has_id)
                        assert_string_equal(e.id, "req-1");
                assert_string_equal(o.id, "untouched");
        }
#undef OP
#undef CHR
}

static void test_value_cap(void **state) {
        char buf[8192], *p = buf;
        C2gOperation o;
        C2gError e;
        (void) state;

        /* 512 bytes pass, 513 are refused. */
        for (int n = GATT_VALUE_MAX; n <= GATT_VALUE_MAX + 1; n++) {
                p = buf + sprintf(buf, "{\"type\":\"operation\",\"id\":\"v\",\"operation\":{\"type\":"
                                       "\"device_characteristic_value_write\",\"deviceAddress\":\"D6:57:7D:CC:50:17\","
                                       "\"serviceUUID\":\"180F\",\"characteristicUUID\":\"2A19\",\"characteristicValue\":[");
                for (int i = 0; i < n; i++)
                        p += sprintf(p, "%s%d", i ? "," : "", i & 0xff);
                strcpy(p, "]}}");
                int r = decode(buf, &o, &e);
                if (n == GATT_VALUE_MAX) {
                        assert_int_equal(r, C2G_MESSAGE_OPERATION);
                        assert_int_equal(o.value_len, GATT_VALUE_MAX);
                        assert_int_equal(o.value[511], 511 & 0xff);
                } else {
                        assert_int_equal(r, -EMSGSIZE);
                        assert_string_equal(e.error.field, "operation.characteristicValue");
                }
        }
}

static void test_size_cap(void **state) {
        size_t n = C2G_MESSAGE_MAX + 1;
        char *buf = malloc(n);
        C2gOperation o;
        C2gError e;
        (void) state;
        assert_non_null(buf);
        memset(buf, ' ', n);
        memcpy(buf, "{\"type\":\"operation\",\"id\":\"v\",\"operation\":{\"type\":\"scan\"}}",
               strlen("{\"type\":\"operation\",\"id\":\"v\",\"operation\":{\"type\":\"scan\"}}"));
        assert_int_equal(c2g_decode(buf, n, &o, &e), -EMSGSIZE);
        assert_int_equal(c2g_decode(buf, n - 1, &o, &e), C2G_MESSAGE_OPERATION);
        free(buf);
}

static void test_tables(void **state) {
        (void) state;
        for (int i = 0; i < _C2G_OP_MAX; i++)
                assert_int_equal(c2g_op_type_from_string(c2g_op_type_to_string(i)), i);
        assert_null(c2g_op_type_to_string(_C2G_OP_MAX));
        assert_int_equal(c2g_op_type_from_string("DEVICE_DISCOVER"), _C2G_OP_INVALID);
        assert_string_equal(c2g_scan_mode_to_string(C2G_SCAN_MODE_PASSIVE), "passive");
        assert_string_equal(c2g_scan_reporting_to_string(C2G_SCAN_REPORTING_BATCH), "batch");
        assert_string_equal(c2g_scan_type_to_string(C2G_SCAN_TYPE_BEACON), "beacon");
        assert_string_equal(c2g_message_kind_to_string(C2G_MESSAGE_DISCON), "discon");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_scan),
                cmocka_unit_test(test_discover),
                cmocka_unit_test(test_characteristic_read),
                cmocka_unit_test(test_characteristic_write),
                cmocka_unit_test(test_descriptor_read),
                cmocka_unit_test(test_descriptor_write),
                cmocka_unit_test(test_ccc),
                cmocka_unit_test(test_gateway_ops),
                cmocka_unit_test(test_discon),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_value_cap),
                cmocka_unit_test(test_size_cap),
                cmocka_unit_test(test_tables),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
