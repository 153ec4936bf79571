/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A neutral model of a device's GATT database, as the BLE layer discovers
 * it and as device_discover_result sends it (spec nrfcloud-mqtt.md §2.4).
 * The BLE layer fills it; the g2c encoder reads it.  UUIDs are stored
 * normalised (upper case, no dashes, SIG UUIDs in 4-digit form) so that
 * lookups by the UUIDs of a c2g operation match.
 *
 * Objects are heap-allocated and stay where they are while the model grows,
 * so pointers returned by the add and find functions remain valid until the
 * model is freed.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec-util.h"

#define GATT_MODEL_SERVICES_MAX 32
#define GATT_MODEL_CHARACTERISTICS_MAX 32 /* per service */
#define GATT_MODEL_DESCRIPTORS_MAX 8      /* per characteristic */

#define GATT_UUID_CCC "2902"

/* Characteristic properties, the bits of the declaration's property byte
 * (Bluetooth Core Vol 3 Part G 3.3.1.1). */
typedef enum GattProperty {
        GATT_PROP_BROADCAST = 1u << 0,
        GATT_PROP_READ = 1u << 1,
        GATT_PROP_WRITE_WITHOUT_RESPONSE = 1u << 2,
        GATT_PROP_WRITE = 1u << 3,
        GATT_PROP_NOTIFY = 1u << 4,
        GATT_PROP_INDICATE = 1u << 5,
        GATT_PROP_AUTHENTICATED_SIGNED_WRITES = 1u << 6,
        GATT_PROP_EXTENDED_PROPERTIES = 1u << 7,
} GattProperty;

/* The flag names of BlueZ's org.bluez.GattCharacteristic1.Flags, for the
 * BLE layer: "read" -> GATT_PROP_READ, "write-without-response" -> ...
 * Returns 0 for BlueZ flags without a property bit (e.g. "encrypt-read"),
 * -EINVAL for unknown strings. */
int gatt_property_from_bluez_flag(const char *flag);

typedef struct GattDescriptor {
        char uuid[UUID_STR_MAX + 1];
        char *path;             /* the BLE layer's handle (e.g. D-Bus object path); not sent */
        uint8_t *value;         /* last known value, NULL if none */
        size_t value_len;
} GattDescriptor;

typedef struct GattCharacteristic {
        char uuid[UUID_STR_MAX + 1];
        char *path;
        unsigned properties;    /* GattProperty bits */
        uint8_t *value;
        size_t value_len;
        GattDescriptor **descriptors;
        size_t n_descriptors;
} GattCharacteristic;

typedef struct GattService {
        char uuid[UUID_STR_MAX + 1];
        char *path;
        bool primary;
        GattCharacteristic **characteristics;
        size_t n_characteristics;
} GattService;

typedef struct GattModel {
        GattService **services;
        size_t n_services;
} GattModel;

int gatt_model_new(GattModel **ret);
GattModel *gatt_model_free(GattModel *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(GattModel *, gatt_model_free);

/* Adders: uuid in any accepted spelling (-EINVAL otherwise), path may be
 * NULL.  -E2BIG over the caps above.  *ret (may be NULL) points into the
 * model. */
int gatt_model_add_service(GattModel *m, const char *uuid, const char *path, bool primary, GattService **ret);
int gatt_service_add_characteristic(GattService *s, const char *uuid, const char *path, unsigned properties,
                                    GattCharacteristic **ret);
int gatt_characteristic_add_descriptor(GattCharacteristic *c, const char *uuid, const char *path,
                                       GattDescriptor **ret);

/* Replace the cached value (at most GATT_VALUE_MAX bytes, -EMSGSIZE). */
int gatt_characteristic_set_value(GattCharacteristic *c, const uint8_t *data, size_t len);
int gatt_descriptor_set_value(GattDescriptor *d, const uint8_t *data, size_t len);

/* Lookups by UUID in any accepted spelling; the first match wins.  NULL if
 * not found or a UUID is malformed.  The service UUID is always honoured, so
 * equal characteristic UUIDs in different services do not collide. */
GattService *gatt_model_find_service(const GattModel *m, const char *service_uuid);
GattCharacteristic *gatt_model_find_characteristic(const GattModel *m, const char *service_uuid,
                                                   const char *characteristic_uuid);
GattDescriptor *gatt_model_find_descriptor(const GattModel *m, const char *service_uuid,
                                           const char *characteristic_uuid, const char *descriptor_uuid);
