/* SPDX-License-Identifier: MIT */
/* The BlueZ object mirror and the pure helpers, with real and malformed messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "ble-error.h"
#include "ble-mirror.h"
#include "ble-test-bus.h"
#include "ble-util.h"
#include "ble.h"

#define DEV "/org/bluez/hci0/dev_C0_FF_EE_00_00_01"
#define SVC DEV "/service0010"
#define CHR SVC "/char0011"
#define DSC CHR "/desc0013"

typedef struct Counts {
        unsigned added, changed, removed;
        uint64_t last_changed, last_invalidated;
        char last_removed[128];
} Counts;

static void cb_added(BleMirror *m, BleObject *o, void *u) {
        (void) m;
        (void) o;
        ((Counts *) u)->added++;
}
static void cb_changed(BleMirror *m, BleObject *o, uint64_t c, uint64_t i, void *u) {
        Counts *k = u;
        (void) m;
        (void) o;
        k->changed++;
        k->last_changed = c;
        k->last_invalidated = i;
}
static void cb_removed(BleMirror *m, BleObject *o, void *u) {
        Counts *k = u;
        (void) m;
        k->removed++;
        strncpy(k->last_removed, o->path, sizeof k->last_removed - 1);
}
static const BleMirrorCallbacks cbs = { cb_added, cb_changed, cb_removed };

static sd_bus *bus;

static sd_bus_message *signal_new(const char *path, const char *iface, const char *member) {
        sd_bus_message *m = NULL;
        assert_int_equal(sd_bus_message_new_signal(bus, &m, path, iface, member), 0);
        return m;
}

static void sealed(sd_bus_message *m) {
        assert_int_equal(test_msg_seal(m), 0);
}

/* The object list of a small BlueZ: what GetManagedObjects returns. */
static sd_bus_message *managed_objects(void) {
        static const uint8_t mfr[] = { 0x01, 0x02 };
        sd_bus_message *m = signal_new("/", "org.freedesktop.DBus.ObjectManager", "Test");

        assert_true(sd_bus_message_open_container(m, 'a', "{oa{sa{sv}}}") >= 0);
        /* adapter, plus interfaces that are not ours */
        assert_true(sd_bus_message_append(m, "{oa{sa{sv}}}", "/org/bluez/hci0", 3,
                                          "org.freedesktop.DBus.Introspectable", 0,
                                          "org.bluez.Adapter1", 3, "Address", "s", "00:01:02:03:04:05", "Powered", "b", 1,
                                          "Discovering", "b", 0,
                                          "org.bluez.LEAdvertisingManager1", 1, "SupportedInstances", "y", 5) >= 0);
        /* device: ManufacturerData right, ServiceData as the dbusmock template types it (aa{sv}) */
        assert_true(sd_bus_message_open_container(m, 'e', "oa{sa{sv}}") >= 0);
        assert_true(sd_bus_message_append(m, "o", DEV) >= 0);
        assert_true(sd_bus_message_open_container(m, 'a', "{sa{sv}}") >= 0);
        assert_true(sd_bus_message_open_container(m, 'e', "sa{sv}") >= 0);
        assert_true(sd_bus_message_append(m, "s", "org.bluez.Device1") >= 0);
        assert_true(sd_bus_message_open_container(m, 'a', "{sv}") >= 0);
        assert_true(sd_bus_message_append(m, "{sv}{sv}{sv}{sv}{sv}", "Address", "s", "c0:ff:ee:00:00:01", "RSSI", "n",
                                          (int16_t) -61, "Connected", "b", 0, "UUIDs", "as", 2,
                                          "0000180f-0000-1000-8000-00805f9b34fb", "6e400001-b5a3-f393-e0a9-e50e24dcca9e",
                                          "Adapter", "o", "/org/bluez/hci0") >= 0);
        assert_true(sd_bus_message_open_container(m, 'e', "sv") >= 0);
        assert_true(sd_bus_message_append(m, "s", "ManufacturerData") >= 0);
        assert_true(sd_bus_message_open_container(m, 'v', "a{qv}") >= 0);
        assert_true(sd_bus_message_open_container(m, 'a', "{qv}") >= 0);
        assert_true(sd_bus_message_open_container(m, 'e', "qv") >= 0);
        assert_true(sd_bus_message_append(m, "q", (uint16_t) 89) >= 0);
        assert_true(sd_bus_message_open_container(m, 'v', "ay") >= 0);
        assert_true(sd_bus_message_append_array(m, 'y', mfr, sizeof mfr) >= 0);
        for (int i = 0; i < 5; i++)
                assert_true(sd_bus_message_close_container(m) >= 0);
        assert_true(sd_bus_message_append(m, "{sv}", "ServiceData", "aa{sv}", 0) >= 0);
        for (int i = 0; i < 4; i++)
                assert_true(sd_bus_message_close_container(m) >= 0);
        /* GATT */
        assert_true(sd_bus_message_append(m, "{oa{sa{sv}}}", SVC, 1, "org.bluez.GattService1", 3, "UUID", "s",
                                          "0000180f-0000-1000-8000-00805f9b34fb", "Device", "o", DEV, "Primary", "b", 1) >= 0);
        assert_true(sd_bus_message_append(m, "{oa{sa{sv}}}", CHR, 1, "org.bluez.GattCharacteristic1", 4, "UUID", "s",
                                          "00002a19-0000-1000-8000-00805f9b34fb", "Service", "o", SVC, "Flags", "as", 2,
                                          "read", "notify", "Value", "ay", 1, 0x64) >= 0);
        assert_true(sd_bus_message_append(m, "{oa{sa{sv}}}", DSC, 1, "org.bluez.GattDescriptor1", 2, "UUID", "s",
                                          "00002902-0000-1000-8000-00805f9b34fb", "Characteristic", "o", CHR) >= 0);
        assert_true(sd_bus_message_close_container(m) >= 0);
        sealed(m);
        return m;
}

static BleMirror *loaded(Counts *k) {
        BleMirror *mi = NULL;
        sd_bus_message *m = managed_objects();
        assert_int_equal(ble_mirror_new(&cbs, k, &mi), 0);
        assert_int_equal(ble_mirror_load(mi, m), 0);
        sd_bus_message_unref(m);
        return mi;
}

static void test_load(void **state) {
        Counts k = { 0 };
        BleMirror *mi = loaded(&k);
        BleObject *o;

        (void) state;
        assert_int_equal(k.added, 5);
        assert_int_equal(ble_mirror_size(mi), 5);
        o = ble_mirror_get(mi, "/org/bluez/hci0");
        assert_non_null(o);
        assert_int_equal(o->kind, BLE_OBJ_ADAPTER);
        assert_true(o->adapter.powered);
        o = ble_mirror_get(mi, DEV);
        assert_int_equal(o->kind, BLE_OBJ_DEVICE);
        assert_string_equal(o->device.address, "c0:ff:ee:00:00:01");
        assert_true(o->device.has_rssi);
        assert_int_equal(o->device.rssi, -61);
        assert_null(o->device.name); /* Name is optional */
        assert_int_equal(o->device.manufacturer_data.n, 1);
        assert_int_equal(o->device.manufacturer_data.items[0].company, 89);
        assert_int_equal(o->device.manufacturer_data.items[0].data.size, 2);
        /* aa{sv} instead of a{sv}: skipped and counted, not fatal */
        assert_int_equal(o->device.service_data.n, 0);
        assert_int_equal(ble_mirror_stats(mi)->type_mismatches, 1);
        assert_string_equal(o->device.uuids[1], "6e400001-b5a3-f393-e0a9-e50e24dcca9e");
        o = ble_mirror_get(mi, CHR);
        assert_int_equal(o->kind, BLE_OBJ_CHRC);
        assert_int_equal(ble_chrc_flags_to_properties(o->chrc.flags), BLE_CHRC_READ | BLE_CHRC_NOTIFY);
        assert_int_equal(o->chrc.value.size, 1);
        assert_int_equal(o->chrc.value.data[0], 0x64);
        assert_int_equal(ble_mirror_get(mi, DSC)->kind, BLE_OBJ_DESC);
        /* bluetoothd gone: every object is reported removed, children first */
        ble_mirror_clear(mi);
        assert_int_equal(k.removed, 5);
        assert_string_equal(k.last_removed, "/org/bluez/hci0");
        ble_mirror_free(mi);
}

static void test_properties_changed_and_invalidated(void **state) {
        Counts k = { 0 };
        BleMirror *mi = loaded(&k);
        sd_bus_message *m;
        BleObject *o = ble_mirror_get(mi, DEV);

        (void) state;
        m = signal_new(DEV, "org.freedesktop.DBus.Properties", "PropertiesChanged");
        assert_true(sd_bus_message_append(m, "sa{sv}as", "org.bluez.Device1", 2, "Connected", "b", 1, "Name", "s", "x",
                                          1, "RSSI") >= 0);
        sealed(m);
        assert_int_equal(ble_mirror_properties_changed(mi, m), 0);
        sd_bus_message_unref(m);
        assert_true(o->device.connected);
        assert_string_equal(o->device.name, "x");
        assert_false(o->device.has_rssi); /* invalidated when discovery stops */
        assert_int_equal(k.last_changed, (UINT64_C(1) << BLE_DEVICE_CONNECTED) | (UINT64_C(1) << BLE_DEVICE_NAME));
        assert_int_equal(k.last_invalidated, UINT64_C(1) << BLE_DEVICE_RSSI);

        /* Another interface on the same path, and unknown paths: ignored. */
        m = signal_new(DEV, "org.freedesktop.DBus.Properties", "PropertiesChanged");
        assert_true(sd_bus_message_append(m, "sa{sv}as", "org.bluez.Battery1", 1, "Percentage", "y", 5, 0) >= 0);
        sealed(m);
        assert_int_equal(ble_mirror_properties_changed(mi, m), 0);
        sd_bus_message_unref(m);
        m = signal_new("/org/bluez/hci9/dev_X", "org.freedesktop.DBus.Properties", "PropertiesChanged");
        assert_true(sd_bus_message_append(m, "sa{sv}as", "org.bluez.Device1", 1, "Connected", "b", 0, 0) >= 0);
        sealed(m);
        assert_int_equal(ble_mirror_properties_changed(mi, m), 0);
        sd_bus_message_unref(m);
        assert_int_equal(ble_mirror_stats(mi)->unknown_paths, 1);
        assert_true(o->device.connected);
        ble_mirror_free(mi);
}

/* Device1 AdvertisingFlags (ay) and AdvertisingData (a{yv}: AD type → bytes), as bluetoothd sends them. */
static void test_advertising_props(void **state) {
        Counts k = { 0 };
        BleMirror *mi = loaded(&k);
        sd_bus_message *m;
        BleObject *o = ble_mirror_get(mi, DEV);

        (void) state;
        assert_false(o->device.has_advertising_flags);
        assert_int_equal(o->device.advertising_data.n, 0);
        m = signal_new(DEV, "org.freedesktop.DBus.Properties", "PropertiesChanged");
        assert_true(sd_bus_message_append(m, "sa{sv}as", "org.bluez.Device1", 3, "AdvertisingFlags", "ay", 1, 0x06,
                                          "AdvertisingData", "a{yv}", 2, 0x30, "ay", 2, 'a', 'b', 0x2d, "ay", 0,
                                          "TxPower", "n", (int16_t) -4, 0) >= 0);
        sealed(m);
        assert_int_equal(ble_mirror_properties_changed(mi, m), 0);
        sd_bus_message_unref(m);
        assert_true(o->device.has_advertising_flags);
        assert_int_equal(o->device.advertising_flags.size, 1);
        assert_int_equal(o->device.advertising_flags.data[0], 0x06);
        assert_int_equal(o->device.advertising_data.n, 2);
        assert_int_equal(o->device.advertising_data.items[0].company, 0x30);
        assert_memory_equal(o->device.advertising_data.items[0].data.data, "ab", 2);
        assert_int_equal(o->device.advertising_data.items[1].company, 0x2d);
        assert_int_equal(o->device.advertising_data.items[1].data.size, 0);
        assert_true(o->device.has_tx_power);
        assert_int_equal(o->device.tx_power, -4);
        assert_int_equal(k.last_changed, (UINT64_C(1) << BLE_DEVICE_ADVERTISING_FLAGS) |
                                                 (UINT64_C(1) << BLE_DEVICE_ADVERTISING_DATA) |
                                                 (UINT64_C(1) << BLE_DEVICE_TX_POWER));

        /* The dbusmock template's aa{yv}: skipped and counted; the value held stays. */
        m = signal_new(DEV, "org.freedesktop.DBus.Properties", "PropertiesChanged");
        assert_true(sd_bus_message_append(m, "sa{sv}as", "org.bluez.Device1", 1, "AdvertisingData", "aa{yv}", 0,
                                          1, "AdvertisingFlags") >= 0);
        sealed(m);
        assert_int_equal(ble_mirror_properties_changed(mi, m), 0);
        sd_bus_message_unref(m);
        assert_int_equal(o->device.advertising_data.n, 2);
        assert_false(o->device.has_advertising_flags);
        ble_mirror_free(mi);
}

static void test_value_cap(void **state) {
        Counts k = { 0 };
        BleMirror *mi = loaded(&k);
        uint8_t big[BLE_VALUE_MAX + 1] = { 0 };
        sd_bus_message *m;
        BleObject *o = ble_mirror_get(mi, CHR);

        (void) state;
        for (size_t n = BLE_VALUE_MAX; n <= BLE_VALUE_MAX + 1; n++) {
                m = signal_new(CHR, "org.freedesktop.DBus.Properties", "PropertiesChanged");
                assert_true(sd_bus_message_append(m, "s", "org.bluez.GattCharacteristic1") >= 0);
                assert_true(sd_bus_message_open_container(m, 'a', "{sv}") >= 0);
                assert_true(sd_bus_message_open_container(m, 'e', "sv") >= 0);
                assert_true(sd_bus_message_append(m, "s", "Value") >= 0);
                assert_true(sd_bus_message_open_container(m, 'v', "ay") >= 0);
                assert_true(sd_bus_message_append_array(m, 'y', big, n) >= 0);
                for (int i = 0; i < 3; i++)
                        assert_true(sd_bus_message_close_container(m) >= 0);
                assert_true(sd_bus_message_append(m, "as", 0) >= 0);
                sealed(m);
                assert_int_equal(ble_mirror_properties_changed(mi, m), 0);
                sd_bus_message_unref(m);
                /* 512 is accepted, 513 refused and the old value kept */
                assert_int_equal(o->chrc.value.size, BLE_VALUE_MAX);
        }
        assert_int_equal(ble_mirror_stats(mi)->oversized, 1);
        ble_mirror_free(mi);
}

static void test_malformed(void **state) {
        Counts k = { 0 };
        BleMirror *mi = loaded(&k);
        sd_bus_message *m;
        BleObject *o = ble_mirror_get(mi, DEV);

        (void) state;
        /* PropertiesChanged without its dictionary */
        m = signal_new(DEV, "org.freedesktop.DBus.Properties", "PropertiesChanged");
        assert_true(sd_bus_message_append(m, "s", "org.bluez.Device1") >= 0);
        sealed(m);
        assert_int_equal(ble_mirror_properties_changed(mi, m), -EBADMSG);
        sd_bus_message_unref(m);
        /* without the invalidated list: what was decoded is applied, the error reported */
        m = signal_new(DEV, "org.freedesktop.DBus.Properties", "PropertiesChanged");
        assert_true(sd_bus_message_append(m, "sa{sv}", "org.bluez.Device1", 1, "Connected", "b", 1) >= 0);
        sealed(m);
        assert_int_equal(ble_mirror_properties_changed(mi, m), -EBADMSG);
        sd_bus_message_unref(m);
        assert_true(o->device.connected);
        /* a dictionary of the wrong type */
        m = signal_new(DEV, "org.freedesktop.DBus.Properties", "PropertiesChanged");
        assert_true(sd_bus_message_append(m, "sa{ss}as", "org.bluez.Device1", 1, "Connected", "no", 0) >= 0);
        sealed(m);
        assert_int_equal(ble_mirror_properties_changed(mi, m), -EBADMSG);
        sd_bus_message_unref(m);
        /* wrong variant types: RSSI as a string, Connected as a variant in a variant */
        m = signal_new(DEV, "org.freedesktop.DBus.Properties", "PropertiesChanged");
        assert_true(sd_bus_message_append(m, "sa{sv}as", "org.bluez.Device1", 2, "RSSI", "s", "-5", "Connected", "v",
                                          "b", 0, 0) >= 0);
        sealed(m);
        assert_int_equal(ble_mirror_properties_changed(mi, m), 0);
        sd_bus_message_unref(m);
        assert_true(o->device.connected);
        /* InterfacesAdded with a flat dictionary: nothing added */
        m = signal_new("/", "org.freedesktop.DBus.ObjectManager", "InterfacesAdded");
        assert_true(sd_bus_message_append(m, "oa{sv}", DEV "/service0020", 1, "UUID", "s", "180a") >= 0);
        sealed(m);
        assert_int_equal(ble_mirror_interfaces_added(mi, m), -EBADMSG);
        sd_bus_message_unref(m);
        assert_null(ble_mirror_get(mi, DEV "/service0020"));
        /* InterfacesRemoved without the list */
        m = signal_new("/", "org.freedesktop.DBus.ObjectManager", "InterfacesRemoved");
        assert_true(sd_bus_message_append(m, "o", DEV) >= 0);
        sealed(m);
        assert_int_equal(ble_mirror_interfaces_removed(mi, m), -EBADMSG);
        sd_bus_message_unref(m);
        /* empty body everywhere */
        m = signal_new("/", "org.freedesktop.DBus.ObjectManager", "InterfacesAdded");
        sealed(m);
        assert_int_equal(ble_mirror_interfaces_added(mi, m), -EBADMSG);
        assert_int_equal(ble_mirror_load(mi, m), -EBADMSG);
        sd_bus_message_unref(m);
        assert_int_equal(ble_mirror_size(mi), 5);
        ble_mirror_free(mi);
}

static void test_interfaces_added_removed(void **state) {
        Counts k = { 0 };
        BleMirror *mi = loaded(&k);
        sd_bus_message *m;

        (void) state;
        m = signal_new("/", "org.freedesktop.DBus.ObjectManager", "InterfacesAdded");
        assert_true(sd_bus_message_append(m, "oa{sa{sv}}", DEV "/service0020", 1, "org.bluez.GattService1", 1, "UUID", "s",
                                          "180a") >= 0);
        sealed(m);
        assert_int_equal(ble_mirror_interfaces_added(mi, m), 0);
        sd_bus_message_unref(m);
        assert_int_equal(k.added, 6);
        /* removing an interface the object does not have changes nothing */
        m = signal_new("/", "org.freedesktop.DBus.ObjectManager", "InterfacesRemoved");
        assert_true(sd_bus_message_append(m, "oas", DEV, 1, "org.bluez.Battery1") >= 0);
        sealed(m);
        assert_int_equal(ble_mirror_interfaces_removed(mi, m), 0);
        sd_bus_message_unref(m);
        assert_non_null(ble_mirror_get(mi, DEV));
        m = signal_new("/", "org.freedesktop.DBus.ObjectManager", "InterfacesRemoved");
        assert_true(sd_bus_message_append(m, "oas", DEV, 2, "org.freedesktop.DBus.Properties", "org.bluez.Device1") >= 0);
        sealed(m);
        assert_int_equal(ble_mirror_interfaces_removed(mi, m), 0);
        sd_bus_message_unref(m);
        assert_null(ble_mirror_get(mi, DEV));
        assert_string_equal(k.last_removed, DEV);
        ble_mirror_clear(mi);
        assert_int_equal(ble_mirror_size(mi), 0);
        assert_int_equal(k.removed, 6);
        ble_mirror_free(mi);
}

static void test_uuid(void **state) {
        static const struct {
                const char *in, *out;
        } t[] = {
                { "0000180f-0000-1000-8000-00805f9b34fb", "180F" },
                { "00002A19-0000-1000-8000-00805F9B34FB", "2A19" },
                { "2a19", "2A19" },
                { "00002a19", "2A19" },
                { "12345678", "1234567800001000800000805F9B34FB" },
                { "6e400001-b5a3-f393-e0a9-e50e24dcca9e", "6E400001B5A3F393E0A9E50E24DCCA9E" },
                { "6E400001B5A3F393E0A9E50E24DCCA9E", "6E400001B5A3F393E0A9E50E24DCCA9E" },
                { "0001180f-0000-1000-8000-00805f9b34fb", "0001180F00001000800000805F9B34FB" },
        };
        static const char *const bad[] = { "", "180", "180g", "6e400001b5a3-f393-e0a9-e50e24dcca9e-",
                                           "6e400001-b5a3-f393-e0a9-e50e24dcca9", "6e400001_b5a3-f393-e0a9-e50e24dcca9e",
                                           "0x180f" };
        char out[BLE_UUID_STR_MAX];

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                assert_int_equal(ble_uuid_normalize(t[i].in, out), 0);
                assert_string_equal(out, t[i].out);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(ble_uuid_normalize(bad[i], out), -EINVAL);
        assert_int_equal(ble_uuid_normalize(NULL, out), -EINVAL);
}

static void test_address(void **state) {
        char out[BLE_ADDR_STR_MAX];
        (void) state;
        assert_int_equal(ble_address_normalize("c0:ff:ee:00:00:0a", out), 0);
        assert_string_equal(out, "C0:FF:EE:00:00:0A");
        assert_int_equal(ble_address_normalize("c0:ff:ee:00:00:0", out), -EINVAL);
        assert_int_equal(ble_address_normalize("c0-ff-ee-00-00-0a", out), -EINVAL);
        assert_int_equal(ble_address_normalize("c0:ff:ee:00:00:0g", out), -EINVAL);
        assert_int_equal(ble_address_normalize("c0:ff:ee:00:00:0a:", out), -EINVAL);
}

static void test_errors(void **state) {
        static const struct {
                const char *name, *message;
                int error, att;
        } t[] = {
                { "org.bluez.Error.Failed", "Operation already in progress", -EALREADY, -1 },
                { "org.bluez.Error.InProgress", "br-connection-busy", -EINPROGRESS, -1 },
                { "org.bluez.Error.Failed", "le-connection-abort-by-local", -ECONNABORTED, -1 },
                { "org.bluez.Error.Failed", "Operation failed with ATT error: 0x0e", -EIO, 0x0e },
                { "org.bluez.Error.Failed", "Operation failed with ATT error: 0x0", -EIO, -1 },
                { "org.bluez.Error.NotPermitted", "Not paired", -EPERM, -1 },
                { "org.bluez.Error.NotSupported", NULL, -EOPNOTSUPP, -1 },
                { "org.freedesktop.DBus.Error.NoReply", "timeout", -ETIMEDOUT, -1 },
                { "org.freedesktop.DBus.Error.ServiceUnknown", "", -EHOSTDOWN, -1 },
                { "org.freedesktop.DBus.Error.UnknownObject", "", -ENOENT, -1 },
                { "com.example.Whatever", "", -EIO, -1 },
        };
        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                sd_bus_error e = SD_BUS_ERROR_MAKE_CONST(t[i].name, t[i].message);
                int att = 99;
                assert_int_equal(ble_error_from_dbus(&e, &att), t[i].error);
                assert_int_equal(att, t[i].att);
        }
        sd_bus_error a = SD_BUS_ERROR_MAKE_CONST("org.bluez.Error.Failed", "Operation already in progress");
        sd_bus_error b = SD_BUS_ERROR_MAKE_CONST("org.bluez.Error.InProgress", "br-connection-busy");
        sd_bus_error c = SD_BUS_ERROR_MAKE_CONST("org.bluez.Error.Failed", "le-connection-abort-by-local");
        assert_true(ble_error_is_connect_in_progress(&a));
        assert_true(ble_error_is_connect_in_progress(&b));
        assert_false(ble_error_is_connect_in_progress(&c));
        assert_int_equal(ble_error_from_dbus(NULL, NULL), -EIO);
}

static void test_map(void **state) {
        static char keys[2000][24];
        BleMap m;
        size_t i = 0, n = 0;
        BleMapEntry *e = NULL;
        void *v;

        (void) state;
        ble_map_init(&m);
        for (size_t k = 0; k < ELEMENTSOF(keys); k++) {
                snprintf(keys[k], sizeof keys[k], "/org/bluez/%zu", k);
                assert_int_equal(ble_map_put(&m, keys[k], keys[k]), 0);
        }
        assert_int_equal(ble_map_put(&m, keys[5], keys[5]), -EEXIST);
        assert_int_equal(ble_map_size(&m), ELEMENTSOF(keys));
        for (size_t k = 0; k < ELEMENTSOF(keys); k += 2)
                assert_ptr_equal(ble_map_remove(&m, keys[k]), keys[k]);
        assert_null(ble_map_get(&m, keys[0]));
        assert_ptr_equal(ble_map_get(&m, keys[1]), keys[1]);
        while (ble_map_iterate(&m, &i, &e, &v))
                n++;
        assert_int_equal(n, ELEMENTSOF(keys) / 2);
        ble_map_done(&m);
}

static int setup(void **state) {
        (void) state;
        return test_bus_new(&bus) < 0 ? -1 : 0;
}

static int teardown(void **state) {
        (void) state;
        bus = sd_bus_flush_close_unref(bus);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_load),
                cmocka_unit_test(test_properties_changed_and_invalidated),
                cmocka_unit_test(test_advertising_props),
                cmocka_unit_test(test_value_cap),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_interfaces_added_removed),
                cmocka_unit_test(test_uuid),
                cmocka_unit_test(test_address),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_map),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
