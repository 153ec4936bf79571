/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Pure helpers of the BLE layer: UUID normalisation to nRF Cloud's form,
 * Bluetooth address checks, and a small string-keyed hash map.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bt-id.h"

/* nRF Cloud form: upper-case hex, no dashes; 16-bit SIG UUIDs as 4 digits (bt-id.h). */
#define BLE_UUID_STR_MAX BT_UUID_STR_MAX
#define BLE_ADDR_STR_MAX BT_ADDR_STR_MAX

static inline int ble_uuid_normalize(const char *in, char ret[static BLE_UUID_STR_MAX]) {
        return bt_uuid_normalize(in, ret);
}

static inline int ble_address_normalize(const char *in, char ret[static BLE_ADDR_STR_MAX]) {
        return bt_address_normalize(in, ret);
}

/* Lower-case hex of a byte buffer into a caller buffer of 2*size+1 bytes. */
void ble_hex(const uint8_t *data, size_t size, char *ret);

/*
 * A chained hash map from NUL-terminated strings to pointers.  Keys are not
 * copied: the key must live as long as its entry (objects key themselves by
 * their own path).
 */
typedef struct BleMapEntry BleMapEntry;
typedef struct BleMap {
        BleMapEntry **buckets;
        size_t n_buckets; /* power of two */
        size_t n_entries;
} BleMap;

void ble_map_init(BleMap *m);
void ble_map_done(BleMap *m); /* frees the entries, not the values */
int ble_map_put(BleMap *m, const char *key, void *value); /* -EEXIST if present */
void *ble_map_get(const BleMap *m, const char *key);
void *ble_map_remove(BleMap *m, const char *key);
size_t ble_map_size(const BleMap *m);

/* Iteration: set *i = 0 and *e = NULL first; returns false at the end. Removing the current entry is not allowed. */
bool ble_map_iterate(const BleMap *m, size_t *i, BleMapEntry **e, void **ret_value);
