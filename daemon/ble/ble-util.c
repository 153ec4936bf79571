/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ble-util.h"
#include "macro.h"

/* Bluetooth Core spec, Vol 3 Part B §2.5.1: the base UUID. */
static const char base_uuid_tail[] = "00001000800000805F9B34FB";

static int hexval(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

int ble_uuid_normalize(const char *in, char ret[static BLE_UUID_STR_MAX]) {
        char hex[BLE_UUID_STR_MAX];
        size_t n = 0, len;

        if (!in)
                return -EINVAL;
        len = strnlen(in, 40);
        if (len == 36) {
                /* 8-4-4-4-12 with dashes exactly at 8, 13, 18, 23. */
                for (size_t i = 0; i < len; i++) {
                        if (i == 8 || i == 13 || i == 18 || i == 23) {
                                if (in[i] != '-')
                                        return -EINVAL;
                                continue;
                        }
                        if (hexval(in[i]) < 0)
                                return -EINVAL;
                        hex[n++] = (char) toupper((unsigned char) in[i]);
                }
        } else if (len == 4 || len == 8 || len == 32) {
                for (size_t i = 0; i < len; i++) {
                        if (hexval(in[i]) < 0)
                                return -EINVAL;
                        hex[n++] = (char) toupper((unsigned char) in[i]);
                }
        } else
                return -EINVAL;
        hex[n] = '\0';

        if (n == 4) {
                memcpy(ret, hex, 5);
                return 0;
        }
        if (n == 8) {
                /* A 32-bit SIG UUID: expand onto the base UUID, collapse if it is 16-bit. */
                if (strncmp(hex, "0000", 4) == 0) {
                        memcpy(ret, hex + 4, 5);
                        return 0;
                }
                memcpy(ret, hex, 8);
                memcpy(ret + 8, base_uuid_tail, sizeof base_uuid_tail);
                return 0;
        }
        if (strncmp(hex, "0000", 4) == 0 && streq(hex + 8, base_uuid_tail)) {
                memcpy(ret, hex + 4, 4);
                ret[4] = '\0';
                return 0;
        }
        memcpy(ret, hex, n + 1);
        return 0;
}

int ble_address_normalize(const char *in, char ret[static BLE_ADDR_STR_MAX]) {
        char out[BLE_ADDR_STR_MAX];

        if (!in || strnlen(in, BLE_ADDR_STR_MAX) != BLE_ADDR_STR_MAX - 1)
                return -EINVAL;
        for (size_t i = 0; i < BLE_ADDR_STR_MAX - 1; i++) {
                if (i % 3 == 2) {
                        if (in[i] != ':')
                                return -EINVAL;
                        out[i] = ':';
                } else {
                        if (hexval(in[i]) < 0)
                                return -EINVAL;
                        out[i] = (char) toupper((unsigned char) in[i]);
                }
        }
        out[BLE_ADDR_STR_MAX - 1] = '\0';
        memcpy(ret, out, sizeof out);
        return 0;
}

void ble_hex(const uint8_t *data, size_t size, char *ret) {
        static const char digits[] = "0123456789abcdef";
        for (size_t i = 0; i < size; i++) {
                ret[2 * i] = digits[data[i] >> 4];
                ret[2 * i + 1] = digits[data[i] & 15];
        }
        ret[2 * size] = '\0';
}

struct BleMapEntry {
        const char *key;
        void *value;
        uint32_t hash;
        BleMapEntry *next;
};

static uint32_t hash_string(const char *s) {
        /* FNV-1a: object paths share long prefixes; FNV mixes every byte. */
        uint32_t h = 2166136261u;
        for (; *s; s++) {
                h ^= (uint8_t) *s;
                h *= 16777619u;
        }
        return h;
}

void ble_map_init(BleMap *m) {
        *m = (BleMap){ 0 };
}

void ble_map_done(BleMap *m) {
        for (size_t i = 0; i < m->n_buckets; i++)
                for (BleMapEntry *e = m->buckets[i], *next; e; e = next) {
                        next = e->next;
                        free(e);
                }
        free(m->buckets);
        *m = (BleMap){ 0 };
}

static int map_grow(BleMap *m) {
        size_t n = m->n_buckets ? m->n_buckets * 2 : 16;
        BleMapEntry **b = calloc(n, sizeof *b);

        if (!b)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_buckets; i++)
                for (BleMapEntry *e = m->buckets[i], *next; e; e = next) {
                        next = e->next;
                        e->next = b[e->hash & (n - 1)];
                        b[e->hash & (n - 1)] = e;
                }
        free(m->buckets);
        m->buckets = b;
        m->n_buckets = n;
        return 0;
}

static BleMapEntry *map_find(const BleMap *m, const char *key, uint32_t h) {
        if (m->n_buckets == 0)
                return NULL;
        for (BleMapEntry *e = m->buckets[h & (m->n_buckets - 1)]; e; e = e->next)
                if (e->hash == h && streq(e->key, key))
                        return e;
        return NULL;
}

int ble_map_put(BleMap *m, const char *key, void *value) {
        uint32_t h = hash_string(key);
        BleMapEntry *e;
        int r;

        if (map_find(m, key, h))
                return -EEXIST;
        if (m->n_entries >= m->n_buckets) {
                r = map_grow(m);
                if (r < 0)
                        return r;
        }
        e = malloc(sizeof *e);
        if (!e)
                return -ENOMEM;
        *e = (BleMapEntry){ .key = key, .value = value, .hash = h, .next = m->buckets[h & (m->n_buckets - 1)] };
        m->buckets[h & (m->n_buckets - 1)] = e;
        m->n_entries++;
        return 0;
}

void *ble_map_get(const BleMap *m, const char *key) {
        BleMapEntry *e = map_find(m, key, hash_string(key));
        return e ? e->value : NULL;
}

void *ble_map_remove(BleMap *m, const char *key) {
        uint32_t h = hash_string(key);
        BleMapEntry **p;

        if (m->n_buckets == 0)
                return NULL;
        for (p = &m->buckets[h & (m->n_buckets - 1)]; *p; p = &(*p)->next)
                if ((*p)->hash == h && streq((*p)->key, key)) {
                        BleMapEntry *e = *p;
                        void *v = e->value;
                        *p = e->next;
                        free(e);
                        m->n_entries--;
                        return v;
                }
        return NULL;
}

size_t ble_map_size(const BleMap *m) {
        return m->n_entries;
}

bool ble_map_iterate(const BleMap *m, size_t *i, BleMapEntry **e, void **ret_value) {
        if (*e && (*e)->next) {
                *e = (*e)->next;
                *ret_value = (*e)->value;
                return true;
        }
        if (*e)
                (*i)++;
        for (; *i < m->n_buckets; (*i)++)
                if (m->buckets[*i]) {
                        *e = m->buckets[*i];
                        *ret_value = (*e)->value;
                        return true;
                }
        return false;
}
