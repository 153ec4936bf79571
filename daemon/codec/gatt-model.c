/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gatt-model.h"

static const struct {
        const char *flag;
        unsigned bit;
} bluez_flags[] = {
        { "broadcast", GATT_PROP_BROADCAST },
        { "read", GATT_PROP_READ },
        { "write-without-response", GATT_PROP_WRITE_WITHOUT_RESPONSE },
        { "write", GATT_PROP_WRITE },
        { "notify", GATT_PROP_NOTIFY },
        { "indicate", GATT_PROP_INDICATE },
        { "authenticated-signed-writes", GATT_PROP_AUTHENTICATED_SIGNED_WRITES },
        { "extended-properties", GATT_PROP_EXTENDED_PROPERTIES },
        /* BlueZ flags that describe security or extended properties, not the property byte. */
        { "reliable-write", 0 },
        { "writable-auxiliaries", 0 },
        { "encrypt-read", 0 },
        { "encrypt-write", 0 },
        { "encrypt-notify", 0 },
        { "encrypt-indicate", 0 },
        { "encrypt-authenticated-read", 0 },
        { "encrypt-authenticated-write", 0 },
        { "encrypt-authenticated-notify", 0 },
        { "encrypt-authenticated-indicate", 0 },
        { "secure-read", 0 },
        { "secure-write", 0 },
        { "secure-notify", 0 },
        { "secure-indicate", 0 },
        { "authorize", 0 },
};

int gatt_property_from_bluez_flag(const char *flag) {
        if (!flag)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(bluez_flags); i++)
                if (streq(bluez_flags[i].flag, flag))
                        return (int) bluez_flags[i].bit;
        return -EINVAL;
}

static GattDescriptor *descriptor_free(GattDescriptor *d) {
        if (!d)
                return NULL;
        free(d->path);
        free(d->value);
        free(d);
        return NULL;
}

static GattCharacteristic *characteristic_free(GattCharacteristic *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_descriptors; i++)
                descriptor_free(c->descriptors[i]);
        free(c->descriptors);
        free(c->path);
        free(c->value);
        free(c);
        return NULL;
}

static GattService *service_free(GattService *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_characteristics; i++)
                characteristic_free(s->characteristics[i]);
        free(s->characteristics);
        free(s->path);
        free(s);
        return NULL;
}

int gatt_model_new(GattModel **ret) {
        GattModel *m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        *ret = m;
        return 0;
}

GattModel *gatt_model_free(GattModel *m) {
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_services; i++)
                service_free(m->services[i]);
        free(m->services);
        free(m);
        return NULL;
}

/* Appends p to a vector of pointers of at most max entries. */
static int push(void ***v, size_t *n, size_t max, void *p) {
        void **nv;

        if (*n >= max)
                return -E2BIG;
        nv = realloc(*v, sizeof(void *) * (*n + 1));
        if (!nv)
                return -ENOMEM;
        nv[(*n)++] = p;
        *v = nv;
        return 0;
}

static int dup_path(const char *path, char **ret) {
        if (!path) {
                *ret = NULL;
                return 0;
        }
        *ret = strdup(path);
        return *ret ? 0 : -ENOMEM;
}

int gatt_model_add_service(GattModel *m, const char *uuid, const char *path, bool primary, GattService **ret) {
        GattService *s;
        int r;

        if (!m)
                return -EINVAL;
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        r = uuid_normalize(uuid, s->uuid);
        if (r >= 0)
                r = dup_path(path, &s->path);
        if (r >= 0)
                r = push((void ***) &m->services, &m->n_services, GATT_MODEL_SERVICES_MAX, s);
        if (r < 0) {
                service_free(s);
                return r;
        }
        s->primary = primary;
        if (ret)
                *ret = s;
        return 0;
}

int gatt_service_add_characteristic(GattService *s, const char *uuid, const char *path, unsigned properties,
                                    GattCharacteristic **ret) {
        GattCharacteristic *c;
        int r;

        if (!s || properties > 0xff)
                return -EINVAL;
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        r = uuid_normalize(uuid, c->uuid);
        if (r >= 0)
                r = dup_path(path, &c->path);
        if (r >= 0)
                r = push((void ***) &s->characteristics, &s->n_characteristics, GATT_MODEL_CHARACTERISTICS_MAX, c);
        if (r < 0) {
                characteristic_free(c);
                return r;
        }
        c->properties = properties;
        if (ret)
                *ret = c;
        return 0;
}

int gatt_characteristic_add_descriptor(GattCharacteristic *c, const char *uuid, const char *path,
                                       GattDescriptor **ret) {
        GattDescriptor *d;
        int r;

        if (!c)
                return -EINVAL;
        d = calloc(1, sizeof *d);
        if (!d)
                return -ENOMEM;
        r = uuid_normalize(uuid, d->uuid);
        if (r >= 0)
                r = dup_path(path, &d->path);
        if (r >= 0)
                r = push((void ***) &c->descriptors, &c->n_descriptors, GATT_MODEL_DESCRIPTORS_MAX, d);
        if (r < 0) {
                descriptor_free(d);
                return r;
        }
        if (ret)
                *ret = d;
        return 0;
}

static int set_value(uint8_t **value, size_t *value_len, const uint8_t *data, size_t len) {
        uint8_t *v = NULL;

        if (len > GATT_VALUE_MAX)
                return -EMSGSIZE;
        if (len > 0 && !data)
                return -EINVAL;
        if (len > 0) {
                v = malloc(len);
                if (!v)
                        return -ENOMEM;
                memcpy(v, data, len);
        }
        free(*value);
        *value = v;
        *value_len = len;
        return 0;
}

int gatt_characteristic_set_value(GattCharacteristic *c, const uint8_t *data, size_t len) {
        if (!c)
                return -EINVAL;
        return set_value(&c->value, &c->value_len, data, len);
}

int gatt_descriptor_set_value(GattDescriptor *d, const uint8_t *data, size_t len) {
        if (!d)
                return -EINVAL;
        return set_value(&d->value, &d->value_len, data, len);
}

GattService *gatt_model_find_service(const GattModel *m, const char *service_uuid) {
        char u[UUID_STR_MAX + 1];

        if (!m || uuid_normalize(service_uuid, u) < 0)
                return NULL;
        for (size_t i = 0; i < m->n_services; i++)
                if (streq(m->services[i]->uuid, u))
                        return m->services[i];
        return NULL;
}

GattCharacteristic *gatt_model_find_characteristic(const GattModel *m, const char *service_uuid,
                                                   const char *characteristic_uuid) {
        char su[UUID_STR_MAX + 1], cu[UUID_STR_MAX + 1];

        if (!m || uuid_normalize(service_uuid, su) < 0 || uuid_normalize(characteristic_uuid, cu) < 0)
                return NULL;
        /* Several instances of a service may exist: search them all. */
        for (size_t i = 0; i < m->n_services; i++) {
                const GattService *s = m->services[i];
                if (!streq(s->uuid, su))
                        continue;
                for (size_t j = 0; j < s->n_characteristics; j++)
                        if (streq(s->characteristics[j]->uuid, cu))
                                return s->characteristics[j];
        }
        return NULL;
}

GattDescriptor *gatt_model_find_descriptor(const GattModel *m, const char *service_uuid,
                                           const char *characteristic_uuid, const char *descriptor_uuid) {
        char du[UUID_STR_MAX + 1];
        GattCharacteristic *c;

        if (uuid_normalize(descriptor_uuid, du) < 0)
                return NULL;
        c = gatt_model_find_characteristic(m, service_uuid, characteristic_uuid);
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_descriptors; i++)
                if (streq(c->descriptors[i]->uuid, du))
                        return c->descriptors[i];
        return NULL;
}
