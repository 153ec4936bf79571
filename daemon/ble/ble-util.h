/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Pure helpers of the BLE layer: UUID normalisation to nRF Cloud's form,
 * Bluetooth address checks, and a small string-keyed hash map.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* nRF Cloud form: upper-case hex, no dashes; 16-bit SIG UUIDs as 4 digits. */
#define BLE_UUID_STR_MAX 33 /* 32 hex digits + NUL */
#define BLE_ADDR_STR_MAX 18 /* "AA:BB:CC:DD:EE:FF" + NUL */

/*
 * Normalises a UUID given as 4 or 8 hex digits, 32 hex digits, or the
 * 36-character dashed form, in any case.  A 128-bit UUID built on the
 * Bluetooth base UUID (0000xxxx-0000-1000-8000-00805F9B34FB) collapses to its
 * 4 digits.  Returns -EINVAL for anything else.
 */
int ble_uuid_normalize(const char *in, char ret[static BLE_UUID_STR_MAX]);

/* "aa:bb:cc:dd:ee:ff" → "AA:BB:CC:DD:EE:FF"; -EINVAL unless six colon-separated octets. */
int ble_address_normalize(const char *in, char ret[static BLE_ADDR_STR_MAX]);

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
