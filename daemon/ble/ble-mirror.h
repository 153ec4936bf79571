/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The BlueZ object mirror: a copy of the org.bluez objects the gateway cares
 * about (adapters, devices, GATT services, characteristics, descriptors),
 * kept up to date from GetManagedObjects, InterfacesAdded,
 * InterfacesRemoved and PropertiesChanged messages.
 *
 * Pure engine: it is fed sd_bus_message objects and reports through
 * callbacks; it owns no bus, loop or timer, so tests feed it hand-built
 * (also malformed) messages.  Interfaces are dispatched through a table and
 * property dictionaries are decoded declaratively; unknown interfaces and
 * properties are skipped, a property of the wrong D-Bus type is ignored
 * (python-dbusmock's bluez5 template sends some as arrays of the right type).
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "macro.h"

#define BLE_VALUE_MAX 512            /* ATT: an attribute value is at most 512 bytes */
#define BLE_MIRROR_OBJECTS_MAX 16384 /* every object BlueZ may make us hold */
#define BLE_STRV_MAX 64              /* UUIDs, Flags */
#define BLE_STRING_MAX 1024
#define BLE_ADV_ENTRIES_MAX 16       /* ManufacturerData / ServiceData entries */

typedef enum BleObjKind {
        BLE_OBJ_ADAPTER,
        BLE_OBJ_DEVICE,
        BLE_OBJ_SERVICE,
        BLE_OBJ_CHRC,
        BLE_OBJ_DESC,
        _BLE_OBJ_KIND_MAX,
} BleObjKind;

typedef struct BleBytes {
        uint8_t *data;
        size_t size;
} BleBytes;

typedef struct BleMfrEntry {
        uint16_t company;
        BleBytes data;
} BleMfrEntry;

typedef struct BleMfrList {
        BleMfrEntry *items;
        size_t n;
} BleMfrList;

typedef struct BleSvcDataEntry {
        char *uuid;
        BleBytes data;
} BleSvcDataEntry;

typedef struct BleSvcDataList {
        BleSvcDataEntry *items;
        size_t n;
} BleSvcDataList;

/* Property bit numbers: the index in each interface's table (ble-mirror.c). */
typedef enum BleAdapterProp {
        BLE_ADAPTER_ADDRESS,
        BLE_ADAPTER_NAME,
        BLE_ADAPTER_POWERED,
        BLE_ADAPTER_DISCOVERING,
        _BLE_ADAPTER_PROP_MAX,
} BleAdapterProp;

typedef struct BleAdapterProps {
        char *address;
        char *name;
        bool powered;
        bool discovering;
} BleAdapterProps;

typedef enum BleDeviceProp {
        BLE_DEVICE_ADDRESS,
        BLE_DEVICE_ADDRESS_TYPE,
        BLE_DEVICE_NAME,
        BLE_DEVICE_ALIAS,
        BLE_DEVICE_ADAPTER,
        BLE_DEVICE_PAIRED,
        BLE_DEVICE_CONNECTED,
        BLE_DEVICE_SERVICES_RESOLVED,
        BLE_DEVICE_RSSI,
        BLE_DEVICE_TX_POWER,
        BLE_DEVICE_UUIDS,
        BLE_DEVICE_MANUFACTURER_DATA,
        BLE_DEVICE_SERVICE_DATA,
        BLE_DEVICE_ADVERTISING_FLAGS,
        BLE_DEVICE_ADVERTISING_DATA,
        _BLE_DEVICE_PROP_MAX,
} BleDeviceProp;

typedef struct BleDeviceProps {
        char *address;
        char *address_type;
        char *name; /* optional in BlueZ */
        char *alias;
        char *adapter;
        bool paired;
        bool connected;
        bool services_resolved;
        int16_t rssi;
        bool has_rssi; /* RSSI is optional and invalidated when discovery stops */
        int16_t tx_power;
        bool has_tx_power;
        char **uuids;
        BleMfrList manufacturer_data;
        BleSvcDataList service_data;
        BleBytes advertising_flags; /* AdvertisingFlags: the Flags AD's bytes (Core Supplement Part A §1.3) */
        bool has_advertising_flags;
        /* AdvertisingData a{yv}: the AD structures bluetoothd does not decode itself, keyed by AD type
         * (held in BleMfrEntry.company). */
        BleMfrList advertising_data;
} BleDeviceProps;

typedef enum BleServiceProp {
        BLE_SERVICE_UUID,
        BLE_SERVICE_DEVICE,
        BLE_SERVICE_PRIMARY,
        _BLE_SERVICE_PROP_MAX,
} BleServiceProp;

typedef struct BleServiceProps {
        char *uuid;
        char *device;
        bool primary;
} BleServiceProps;

typedef enum BleChrcProp {
        BLE_CHRC_UUID,
        BLE_CHRC_SERVICE,
        BLE_CHRC_FLAGS,
        BLE_CHRC_VALUE,
        BLE_CHRC_NOTIFYING,
        BLE_CHRC_MTU,
        _BLE_CHRC_PROP_MAX,
} BleChrcProp;

typedef struct BleChrcProps {
        char *uuid;
        char *service;
        char **flags;
        BleBytes value;
        bool notifying;
        uint16_t mtu;
} BleChrcProps;

typedef enum BleDescProp {
        BLE_DESC_UUID,
        BLE_DESC_CHARACTERISTIC,
        BLE_DESC_FLAGS,
        BLE_DESC_VALUE,
        _BLE_DESC_PROP_MAX,
} BleDescProp;

typedef struct BleDescProps {
        char *uuid;
        char *characteristic;
        char **flags;
        BleBytes value;
} BleDescProps;

/* Allocated with only its kind's member of the union (ble-mirror.c): nothing may follow the union,
 * and only the member of o->kind may be touched. */
typedef struct BleObject {
        char *path;
        BleObjKind kind;
        void *userdata; /* free for the owner of the mirror */
        union {
                BleAdapterProps adapter;
                BleDeviceProps device;
                BleServiceProps service;
                BleChrcProps chrc;
                BleDescProps desc;
        };
} BleObject;

typedef struct BleMirror BleMirror;

typedef struct BleMirrorCallbacks {
        /* A new object; its properties are decoded. */
        void (*added)(BleMirror *m, BleObject *o, void *userdata);
        /* Properties changed (bit i = property i of the kind's enum) or were invalidated. */
        void (*changed)(BleMirror *m, BleObject *o, uint64_t changed, uint64_t invalidated, void *userdata);
        /* The object is about to be freed. */
        void (*removed)(BleMirror *m, BleObject *o, void *userdata);
} BleMirrorCallbacks;

typedef struct BleMirrorStats {
        uint64_t type_mismatches; /* properties of the wrong D-Bus type, ignored */
        uint64_t oversized;       /* values or lists over their cap, ignored */
        uint64_t unknown_paths;   /* PropertiesChanged for objects we do not hold */
} BleMirrorStats;

int ble_mirror_new(const BleMirrorCallbacks *cb, void *userdata, BleMirror **ret);
BleMirror *ble_mirror_free(BleMirror *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(BleMirror *, ble_mirror_free);

/* Drops every object (removed() for each): bluetoothd went away. */
void ble_mirror_clear(BleMirror *m);

/*
 * Feeds one message.  Return 0 when applied (or ignored as not ours),
 * -EBADMSG when its body does not have the expected signature, -E2BIG when
 * the mirror is full, -ENOMEM.  A partly applied message keeps what was
 * decoded before the error.
 */
int ble_mirror_load(BleMirror *m, sd_bus_message *reply);                /* a{oa{sa{sv}}} */
int ble_mirror_interfaces_added(BleMirror *m, sd_bus_message *msg);     /* oa{sa{sv}} */
int ble_mirror_interfaces_removed(BleMirror *m, sd_bus_message *msg);   /* oas */
int ble_mirror_properties_changed(BleMirror *m, sd_bus_message *msg);   /* sa{sv}as, path = object */

BleObject *ble_mirror_get(BleMirror *m, const char *path);
size_t ble_mirror_size(BleMirror *m);
/* Calls f for every object, in no particular order; f must not add or remove objects. */
void ble_mirror_foreach(BleMirror *m, void (*f)(BleObject *o, void *userdata), void *userdata);
const BleMirrorStats *ble_mirror_stats(BleMirror *m);

const char *ble_obj_kind_to_string(BleObjKind k);
/* The BlueZ interface name of a kind, e.g. "org.bluez.Device1". */
const char *ble_obj_kind_interface(BleObjKind k);
bool ble_strv_contains(char *const *l, const char *s);
