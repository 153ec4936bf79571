/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the BlueZ object mirror with sequences of D-Bus messages.  sd-bus
 * validates messages on the wire, so what a peer controls is the body's
 * types and values: the input bytes pick an operation (GetManagedObjects
 * reply, InterfacesAdded, InterfacesRemoved, PropertiesChanged, clear), a
 * body signature (the right one or a wrong one), and then drive a generator
 * that walks the signature, choosing variant types, container sizes,
 * strings and object paths from tables of names the mirror knows.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ble-mirror.h"
#include "ble-test-bus.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct Cursor {
        const uint8_t *p;
        size_t n;
} Cursor;

static uint8_t take(Cursor *c) {
        if (c->n == 0)
                return 0;
        c->n--;
        return *c->p++;
}

#define DEV "/org/bluez/hci0/dev_C0_FF_EE_00_00_01"
static const char *const paths[] = {
        "/", "/org/bluez/hci0", DEV, DEV "/service0010", DEV "/service0010/char0011",
        DEV "/service0010/char0011/desc0013", "/org/bluez/hci0/dev_C0_FF_EE_00_00_02", "/org/bluez",
};
static const char *const strings[] = {
        "org.bluez.Adapter1", "org.bluez.Device1", "org.bluez.GattService1", "org.bluez.GattCharacteristic1",
        "org.bluez.GattDescriptor1", "org.freedesktop.DBus.Properties", "Address", "AddressType", "Name", "Alias",
        "Adapter", "Paired", "Connected", "ServicesResolved", "RSSI", "TxPower", "UUIDs", "ManufacturerData",
        "ServiceData", "UUID", "Device", "Primary", "Service", "Flags", "Value", "Notifying", "MTU", "Characteristic",
        "Powered", "Discovering", "c0:ff:ee:00:00:01", "0000180f-0000-1000-8000-00805f9b34fb", "read", "notify", "",
        "6e400001-b5a3-f393-e0a9-e50e24dcca9e", "xyz",
};
static const char *const variant_sigs[] = {
        "s", "o", "b", "n", "q", "y", "u", "as", "ay", "a{qv}", "a{sv}", "aay", "aa{qv}", "v", "(ss)", "ao", "a{sa{sv}}", "x",
};
static const char *const top_sigs[] = {
        "a{oa{sa{sv}}}", "oa{sa{sv}}", "oas", "sa{sv}as", "sa{sv}", "s", "", "oa{sv}", "sa{sv}as",
};

/* Length of the complete type at s. */
static size_t type_len(const char *s) {
        size_t depth = 0, i = 0;
        if (s[0] == 'a')
                return 1 + type_len(s + 1);
        if (s[0] != '(' && s[0] != '{')
                return 1;
        do {
                if (s[i] == '(' || s[i] == '{')
                        depth++;
                else if (s[i] == ')' || s[i] == '}')
                        depth--;
                i++;
        } while (depth > 0 && s[i]);
        return i;
}

static int append_type(sd_bus_message *m, const char *t, size_t len, Cursor *c, unsigned depth);

static int append_seq(sd_bus_message *m, const char *s, size_t len, Cursor *c, unsigned depth) {
        for (size_t i = 0; i < len;) {
                size_t l = type_len(s + i);
                int r = append_type(m, s + i, l, c, depth);
                if (r < 0)
                        return r;
                i += l;
        }
        return 0;
}

static int append_type(sd_bus_message *m, const char *t, size_t len, Cursor *c, unsigned depth) {
        char sig[64];
        int r;

        if (len >= sizeof sig)
                return -E2BIG;
        switch (t[0]) {
        case 'y': {
                uint8_t v = take(c);
                return sd_bus_message_append_basic(m, 'y', &v);
        }
        case 'b': {
                int v = take(c) & 1;
                return sd_bus_message_append_basic(m, 'b', &v);
        }
        case 'n':
        case 'q': {
                uint16_t v = (uint16_t) (take(c) | take(c) << 8);
                return sd_bus_message_append_basic(m, t[0], &v);
        }
        case 'u':
        case 'i': {
                uint32_t v = take(c);
                return sd_bus_message_append_basic(m, t[0], &v);
        }
        case 'x':
        case 't': {
                uint64_t v = take(c);
                return sd_bus_message_append_basic(m, t[0], &v);
        }
        case 's':
                return sd_bus_message_append_basic(m, 's', strings[take(c) % ELEMENTSOF(strings)]);
        case 'o':
                return sd_bus_message_append_basic(m, 'o', paths[take(c) % ELEMENTSOF(paths)]);
        case 'v': {
                const char *vs = depth > 4 ? "s" : variant_sigs[take(c) % ELEMENTSOF(variant_sigs)];
                r = sd_bus_message_open_container(m, 'v', vs);
                if (r < 0)
                        return r;
                r = append_seq(m, vs, strlen(vs), c, depth + 1);
                if (r < 0)
                        return r;
                return sd_bus_message_close_container(m);
        }
        case 'a': {
                uint8_t b = take(c);
                size_t n;
                memcpy(sig, t + 1, len - 1);
                sig[len - 1] = '\0';
                if (streq(sig, "y")) {
                        /* byte arrays: mostly short, sometimes around the 512-byte cap */
                        static uint8_t buf[600];
                        n = b & 0x80 ? 500 + (b & 0x1f) : b & 0x3f;
                        for (size_t i = 0; i < n && i < 16; i++)
                                buf[i] = take(c);
                        return sd_bus_message_append_array(m, 'y', buf, n);
                }
                n = depth > 4 ? 0 : b % 6;
                r = sd_bus_message_open_container(m, 'a', sig);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < n; i++) {
                        r = append_type(m, sig, len - 1, c, depth + 1);
                        if (r < 0)
                                return r;
                }
                return sd_bus_message_close_container(m);
        }
        case '{':
        case '(':
                memcpy(sig, t + 1, len - 2);
                sig[len - 2] = '\0';
                r = sd_bus_message_open_container(m, t[0] == '{' ? 'e' : 'r', sig);
                if (r < 0)
                        return r;
                r = append_seq(m, sig, len - 2, c, depth + 1);
                if (r < 0)
                        return r;
                return sd_bus_message_close_container(m);
        default:
                return -EINVAL;
        }
}

static void touch(BleMirror *mi, BleObject *o, uint64_t changed, uint64_t invalidated, void *userdata) {
        size_t *sum = userdata;
        (void) mi;
        (void) changed;
        (void) invalidated;
        /* Read what was decoded, so that the sanitizers see bad memory. */
        switch (o->kind) {
        case BLE_OBJ_DEVICE:
                *sum += strlen(o->device.address ? o->device.address : "");
                for (size_t i = 0; i < o->device.manufacturer_data.n; i++)
                        for (size_t j = 0; j < o->device.manufacturer_data.items[i].data.size; j++)
                                *sum += o->device.manufacturer_data.items[i].data.data[j];
                for (char **u = o->device.uuids; u && *u; u++)
                        *sum += strlen(*u);
                break;
        case BLE_OBJ_CHRC:
                for (size_t j = 0; j < o->chrc.value.size; j++)
                        *sum += o->chrc.value.data[j];
                break;
        case BLE_OBJ_ADAPTER:
        case BLE_OBJ_SERVICE:
        case BLE_OBJ_DESC:
        case _BLE_OBJ_KIND_MAX:
                break;
        }
}

static void touch_added(BleMirror *mi, BleObject *o, void *userdata) {
        touch(mi, o, 0, 0, userdata);
}

static volatile size_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static sd_bus *bus;
        static const char *const correct[] = { "a{oa{sa{sv}}}", "oa{sa{sv}}", "oas", "sa{sv}as" };
        BleMirrorCallbacks cb = { .added = touch_added, .changed = touch };
        Cursor c = { data, size };
        BleMirror *mi = NULL;
        size_t sum = 0;

        if (!bus && test_bus_new(&bus) < 0)
                return 0;
        if (ble_mirror_new(&cb, &sum, &mi) < 0)
                return 0;
        for (unsigned ops = 0; c.n > 0 && ops < 64; ops++) {
                uint8_t op = take(&c) % 5, s = take(&c);
                const char *sig = s < 128 && op < 4 ? correct[op] : top_sigs[s % ELEMENTSOF(top_sigs)];
                const char *path = paths[take(&c) % ELEMENTSOF(paths)];
                sd_bus_message *m = NULL;

                if (op == 4) {
                        ble_mirror_clear(mi);
                        continue;
                }
                if (sd_bus_message_new_signal(bus, &m, path, "org.example.Fuzz", "Input") < 0)
                        break;
                if (append_seq(m, sig, strlen(sig), &c, 0) >= 0 && test_msg_seal(m) >= 0)
                        switch (op) {
                        case 0:
                                (void) ble_mirror_load(mi, m);
                                break;
                        case 1:
                                (void) ble_mirror_interfaces_added(mi, m);
                                break;
                        case 2:
                                (void) ble_mirror_interfaces_removed(mi, m);
                                break;
                        default:
                                (void) ble_mirror_properties_changed(mi, m);
                                break;
                        }
                sd_bus_message_unref(m);
        }
        ble_mirror_free(mi);
        sink = sum;
        return 0;
}
