/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ble-util.h"
#include "macro.h"

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
