/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gatt-model.h"

static void test_uuid_normalize(void **state) {
        static const struct {
                const char *in, *out;
        } t[] = {
                { "2a19", "2A19" },
                { "2A19", "2A19" },
                { "ef680101-9b35-4933-9b10-52ffa9740042", "EF6801019B3549339B1052FFA9740042" },
                { "EF6801019B3549339B1052FFA9740042", "EF6801019B3549339B1052FFA9740042" },
                { "00002902-0000-1000-8000-00805f9b34fb", "2902" },
                { "0000290200001000800000805F9B34FB", "2902" },
                /* 32-bit SIG UUIDs stay long, spelt in 128 bits or as 8 digits; the BLE layer's
                 * normaliser is the same function, so the two layers agree. */
                { "12345678-0000-1000-8000-00805f9b34fb", "12345678000010008000" "00805F9B34FB" },
                { "12345678", "12345678000010008000" "00805F9B34FB" },
                { "00002a19", "2A19" },
                { "1234567", NULL }, { "123456789", NULL }, { "1234567G", NULL },
                { "", NULL }, { "2A1", NULL }, { "2A190", NULL }, { "2A1G", NULL },
                { "ef680101-9b35-4933-9b10-52ffa974004", NULL }, { "ef680101-9b35-4933-9b1052-ffa9740042", NULL },
                { "ef680101 9b35 4933 9b10 52ffa9740042", NULL }, { "+2a1", NULL }, { "{2a19}", NULL },
        };
        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                char out[UUID_STR_MAX + 1] = "unset";
                int r = uuid_normalize(t[i].in, out);
                if (t[i].out) {
                        assert_int_equal(r, 0);
                        assert_string_equal(out, t[i].out);
                } else {
                        assert_int_equal(r, -EINVAL);
                        assert_string_equal(out, "unset");
                }
        }
        assert_int_equal(uuid_normalize(NULL, (char[UUID_STR_MAX + 1]){}), -EINVAL);
}

static void test_addr_normalize(void **state) {
        char out[BT_ADDR_STR_LEN + 1] = "unset";
        (void) state;
        assert_int_equal(bt_addr_normalize("c2:6b:ac:6d:05:a2", out), 0);
        assert_string_equal(out, "C2:6B:AC:6D:05:A2");
        strcpy(out, "unset");
        assert_int_equal(bt_addr_normalize("C2:6B:AC:6D:05:A2 ", out), -EINVAL);
        assert_int_equal(bt_addr_normalize("C2:6B:AC:6D:05", out), -EINVAL);
        assert_int_equal(bt_addr_normalize("C26:B:AC:6D:05:A2", out), -EINVAL);
        assert_int_equal(bt_addr_normalize("C2:6B:AC:6D:05:AZ", out), -EINVAL);
        assert_int_equal(bt_addr_normalize(NULL, out), -EINVAL);
        assert_string_equal(out, "unset");
        assert_string_equal(bt_addr_type_to_string(BT_ADDR_TYPE_RANDOM_STATIC), "randomStatic");
        assert_null(bt_addr_type_to_string(BT_ADDR_TYPE_UNSPECIFIED));
        assert_int_equal(bt_addr_type_from_string("public"), BT_ADDR_TYPE_PUBLIC);
        assert_int_equal(bt_addr_type_from_string("Public"), _BT_ADDR_TYPE_INVALID);
}

static void test_find(void **state) {
        _cleanup_(gatt_model_freep) GattModel *m = NULL;
        GattService *s1, *s2;
        GattCharacteristic *c1, *c2;
        GattDescriptor *d;
        (void) state;

        assert_int_equal(gatt_model_new(&m), 0);
        assert_int_equal(gatt_model_add_service(m, "180F", "/svc1", true, &s1), 0);
        assert_int_equal(gatt_model_add_service(m, "ef680200-9b35-4933-9b10-52ffa9740042", "/svc2", true, &s2), 0);
        /* The same characteristic UUID in two services. */
        assert_int_equal(gatt_service_add_characteristic(s1, "2A19", "/svc1/c", GATT_PROP_READ, &c1), 0);
        assert_int_equal(gatt_service_add_characteristic(s2, "2a19", "/svc2/c", GATT_PROP_NOTIFY, &c2), 0);
        assert_int_equal(gatt_characteristic_add_descriptor(c2, "00002902-0000-1000-8000-00805f9b34fb", "/svc2/c/d", &d), 0);

        assert_ptr_equal(gatt_model_find_service(m, "180f"), s1);
        assert_ptr_equal(gatt_model_find_characteristic(m, "180F", "2A19"), c1);
        assert_ptr_equal(gatt_model_find_characteristic(m, "EF6802009B3549339B1052FFA9740042", "2A19"), c2);
        assert_string_equal(gatt_model_find_characteristic(m, "EF6802009B3549339B1052FFA9740042", "2A19")->path, "/svc2/c");
        assert_ptr_equal(gatt_model_find_descriptor(m, "EF6802009B3549339B1052FFA9740042", "2A19", "2902"), d);
        assert_null(gatt_model_find_descriptor(m, "180F", "2A19", "2902"));
        assert_null(gatt_model_find_characteristic(m, "1800", "2A19"));
        assert_null(gatt_model_find_characteristic(m, "18", "2A19"));
        assert_null(gatt_model_find_service(NULL, "180F"));

        /* Bad UUIDs are refused and leave the model as it was. */
        assert_int_equal(gatt_model_add_service(m, "18", NULL, true, NULL), -EINVAL);
        assert_int_equal(m->n_services, 2);
        assert_int_equal(gatt_service_add_characteristic(s1, "x", NULL, 0, NULL), -EINVAL);
        assert_int_equal(gatt_service_add_characteristic(s1, "2A1A", NULL, 0x100, NULL), -EINVAL);
        assert_int_equal(s1->n_characteristics, 1);

        /* Values: replaced, capped, cleared. */
        uint8_t big[GATT_VALUE_MAX + 1] = { 1 };
        assert_int_equal(gatt_characteristic_set_value(c1, big, GATT_VALUE_MAX), 0);
        assert_int_equal(c1->value_len, GATT_VALUE_MAX);
        assert_int_equal(gatt_characteristic_set_value(c1, big, sizeof big), -EMSGSIZE);
        assert_int_equal(c1->value_len, GATT_VALUE_MAX);
        assert_int_equal(gatt_characteristic_set_value(c1, NULL, 0), 0);
        assert_int_equal(c1->value_len, 0);
        assert_null(c1->value);

        for (int i = 1; i < GATT_MODEL_DESCRIPTORS_MAX; i++)
                assert_int_equal(gatt_characteristic_add_descriptor(c2, "2901", NULL, NULL), 0);
        assert_int_equal(gatt_characteristic_add_descriptor(c2, "2901", NULL, NULL), -E2BIG);
        assert_null(gatt_model_free(NULL));
}

static void test_bluez_flags(void **state) {
        (void) state;
        assert_int_equal(gatt_property_from_bluez_flag("read"), GATT_PROP_READ);
        assert_int_equal(gatt_property_from_bluez_flag("write-without-response"), GATT_PROP_WRITE_WITHOUT_RESPONSE);
        assert_int_equal(gatt_property_from_bluez_flag("authenticated-signed-writes"), GATT_PROP_AUTHENTICATED_SIGNED_WRITES);
        assert_int_equal(gatt_property_from_bluez_flag("indicate"), GATT_PROP_INDICATE);
        assert_int_equal(gatt_property_from_bluez_flag("encrypt-read"), 0);
        assert_int_equal(gatt_property_from_bluez_flag("READ"), -EINVAL);
        assert_int_equal(gatt_property_from_bluez_flag(NULL), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_uuid_normalize),
                cmocka_unit_test(test_addr_normalize),
                cmocka_unit_test(test_find),
                cmocka_unit_test(test_bluez_flags),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
