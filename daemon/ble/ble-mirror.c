/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ble-mirror.h"
#include "ble-util.h"
#include "util.h"

typedef enum BlePropType {
        BLE_PROP_STRING,
        BLE_PROP_PATH,
        BLE_PROP_BOOL,
        BLE_PROP_INT16,
        BLE_PROP_UINT16,
        BLE_PROP_STRV,
        BLE_PROP_BYTES,
        BLE_PROP_MFR_DATA,
        BLE_PROP_SVC_DATA,
        BLE_PROP_AD_DATA,
        _BLE_PROP_TYPE_MAX,
} BlePropType;

static const char *const prop_signature[_BLE_PROP_TYPE_MAX] = {
        [BLE_PROP_STRING] = "s",      [BLE_PROP_PATH] = "o",  [BLE_PROP_BOOL] = "b",
        [BLE_PROP_INT16] = "n",       [BLE_PROP_UINT16] = "q", [BLE_PROP_STRV] = "as",
        [BLE_PROP_BYTES] = "ay",      [BLE_PROP_MFR_DATA] = "a{qv}", [BLE_PROP_SVC_DATA] = "a{sv}",
        [BLE_PROP_AD_DATA] = "a{yv}",
};

#define NO_PRESENT SIZE_MAX

typedef struct BleProp {
        const char *name;
        BlePropType type;
        size_t offset;  /* of the field inside the props struct */
        size_t present; /* of a bool saying the optional property exists, or NO_PRESENT */
} BleProp;

#define P(i, n, t, s, f) [i] = { n, t, offsetof(s, f), NO_PRESENT }
#define PO(i, n, t, s, f, p) [i] = { n, t, offsetof(s, f), offsetof(s, p) }

static const BleProp adapter_props[_BLE_ADAPTER_PROP_MAX] = {
        P(BLE_ADAPTER_ADDRESS, "Address", BLE_PROP_STRING, BleAdapterProps, address),
        P(BLE_ADAPTER_NAME, "Name", BLE_PROP_STRING, BleAdapterProps, name),
        P(BLE_ADAPTER_POWERED, "Powered", BLE_PROP_BOOL, BleAdapterProps, powered),
        P(BLE_ADAPTER_DISCOVERING, "Discovering", BLE_PROP_BOOL, BleAdapterProps, discovering),
};

static const BleProp device_props[_BLE_DEVICE_PROP_MAX] = {
        P(BLE_DEVICE_ADDRESS, "Address", BLE_PROP_STRING, BleDeviceProps, address),
        P(BLE_DEVICE_ADDRESS_TYPE, "AddressType", BLE_PROP_STRING, BleDeviceProps, address_type),
        P(BLE_DEVICE_NAME, "Name", BLE_PROP_STRING, BleDeviceProps, name),
        P(BLE_DEVICE_ALIAS, "Alias", BLE_PROP_STRING, BleDeviceProps, alias),
        P(BLE_DEVICE_ADAPTER, "Adapter", BLE_PROP_PATH, BleDeviceProps, adapter),
        P(BLE_DEVICE_PAIRED, "Paired", BLE_PROP_BOOL, BleDeviceProps, paired),
        P(BLE_DEVICE_CONNECTED, "Connected", BLE_PROP_BOOL, BleDeviceProps, connected),
        P(BLE_DEVICE_SERVICES_RESOLVED, "ServicesResolved", BLE_PROP_BOOL, BleDeviceProps, services_resolved),
        PO(BLE_DEVICE_RSSI, "RSSI", BLE_PROP_INT16, BleDeviceProps, rssi, has_rssi),
        PO(BLE_DEVICE_TX_POWER, "TxPower", BLE_PROP_INT16, BleDeviceProps, tx_power, has_tx_power),
        P(BLE_DEVICE_UUIDS, "UUIDs", BLE_PROP_STRV, BleDeviceProps, uuids),
        P(BLE_DEVICE_MANUFACTURER_DATA, "ManufacturerData", BLE_PROP_MFR_DATA, BleDeviceProps, manufacturer_data),
        P(BLE_DEVICE_SERVICE_DATA, "ServiceData", BLE_PROP_SVC_DATA, BleDeviceProps, service_data),
        PO(BLE_DEVICE_ADVERTISING_FLAGS, "AdvertisingFlags", BLE_PROP_BYTES, BleDeviceProps, advertising_flags,
           has_advertising_flags),
        P(BLE_DEVICE_ADVERTISING_DATA, "AdvertisingData", BLE_PROP_AD_DATA, BleDeviceProps, advertising_data),
};

static const BleProp service_props[_BLE_SERVICE_PROP_MAX] = {
        P(BLE_SERVICE_UUID, "UUID", BLE_PROP_STRING, BleServiceProps, uuid),
        P(BLE_SERVICE_DEVICE, "Device", BLE_PROP_PATH, BleServiceProps, device),
        P(BLE_SERVICE_PRIMARY, "Primary", BLE_PROP_BOOL, BleServiceProps, primary),
};

static const BleProp chrc_props[_BLE_CHRC_PROP_MAX] = {
        P(BLE_CHRC_UUID, "UUID", BLE_PROP_STRING, BleChrcProps, uuid),
        P(BLE_CHRC_SERVICE, "Service", BLE_PROP_PATH, BleChrcProps, service),
        P(BLE_CHRC_FLAGS, "Flags", BLE_PROP_STRV, BleChrcProps, flags),
        P(BLE_CHRC_VALUE, "Value", BLE_PROP_BYTES, BleChrcProps, value),
        P(BLE_CHRC_NOTIFYING, "Notifying", BLE_PROP_BOOL, BleChrcProps, notifying),
        P(BLE_CHRC_MTU, "MTU", BLE_PROP_UINT16, BleChrcProps, mtu),
};

static const BleProp desc_props[_BLE_DESC_PROP_MAX] = {
        P(BLE_DESC_UUID, "UUID", BLE_PROP_STRING, BleDescProps, uuid),
        P(BLE_DESC_CHARACTERISTIC, "Characteristic", BLE_PROP_PATH, BleDescProps, characteristic),
        P(BLE_DESC_FLAGS, "Flags", BLE_PROP_STRV, BleDescProps, flags),
        P(BLE_DESC_VALUE, "Value", BLE_PROP_BYTES, BleDescProps, value),
};

typedef struct BleInterface {
        const char *name;
        const BleProp *props;
        size_t n_props;
        size_t object_size; /* an object of this kind: the common part and its own properties */
} BleInterface;

/* A characteristic or descriptor (most objects) needs half the size of a device: objects are
 * allocated with their kind's properties only, not the whole union. */
#define OBJECT_SIZE(member) (offsetof(BleObject, member) + sizeof(((BleObject *) NULL)->member))

static const BleInterface interfaces[_BLE_OBJ_KIND_MAX] = {
        [BLE_OBJ_ADAPTER] = { "org.bluez.Adapter1", adapter_props, ELEMENTSOF(adapter_props), OBJECT_SIZE(adapter) },
        [BLE_OBJ_DEVICE] = { "org.bluez.Device1", device_props, ELEMENTSOF(device_props), OBJECT_SIZE(device) },
        [BLE_OBJ_SERVICE] = { "org.bluez.GattService1", service_props, ELEMENTSOF(service_props),
                              OBJECT_SIZE(service) },
        [BLE_OBJ_CHRC] = { "org.bluez.GattCharacteristic1", chrc_props, ELEMENTSOF(chrc_props), OBJECT_SIZE(chrc) },
        [BLE_OBJ_DESC] = { "org.bluez.GattDescriptor1", desc_props, ELEMENTSOF(desc_props), OBJECT_SIZE(desc) },
};

static const char *const obj_kind_names[_BLE_OBJ_KIND_MAX] = {
        [BLE_OBJ_ADAPTER] = "adapter", [BLE_OBJ_DEVICE] = "device", [BLE_OBJ_SERVICE] = "service",
        [BLE_OBJ_CHRC] = "characteristic", [BLE_OBJ_DESC] = "descriptor",
};

const char *ble_obj_kind_to_string(BleObjKind k) {
        return k < _BLE_OBJ_KIND_MAX ? obj_kind_names[k] : NULL;
}

const char *ble_obj_kind_interface(BleObjKind k) {
        return k < _BLE_OBJ_KIND_MAX ? interfaces[k].name : NULL;
}

struct BleMirror {
        BleMap objects;
        BleMirrorCallbacks cb;
        void *userdata;
        BleMirrorStats stats;
};

bool ble_strv_contains(char *const *l, const char *s) {
        for (; l && *l; l++)
                if (streq(*l, s))
                        return true;
        return false;
}

/* ---- values ---- */

static void bytes_clear(BleBytes *b) {
        free(b->data);
        *b = (BleBytes){ 0 };
}

static void mfr_clear(BleMfrList *l) {
        for (size_t i = 0; i < l->n; i++)
                bytes_clear(&l->items[i].data);
        free(l->items);
        *l = (BleMfrList){ 0 };
}

static void svc_data_clear(BleSvcDataList *l) {
        for (size_t i = 0; i < l->n; i++) {
                free(l->items[i].uuid);
                bytes_clear(&l->items[i].data);
        }
        free(l->items);
        *l = (BleSvcDataList){ 0 };
}

static void value_clear(BlePropType t, void *field) {
        switch (t) {
        case BLE_PROP_STRING:
        case BLE_PROP_PATH:
                free(*(char **) field);
                *(char **) field = NULL;
                break;
        case BLE_PROP_BOOL:
                *(bool *) field = false;
                break;
        case BLE_PROP_INT16:
                *(int16_t *) field = 0;
                break;
        case BLE_PROP_UINT16:
                *(uint16_t *) field = 0;
                break;
        case BLE_PROP_STRV:
                *(char ***) field = strv_free(*(char ***) field);
                break;
        case BLE_PROP_BYTES:
                bytes_clear(field);
                break;
        case BLE_PROP_MFR_DATA:
        case BLE_PROP_AD_DATA:
                mfr_clear(field);
                break;
        case BLE_PROP_SVC_DATA:
                svc_data_clear(field);
                break;
        case _BLE_PROP_TYPE_MAX:
                break;
        }
}

/* Reads an "ay" into a fresh buffer (or reuses *b's when it is big enough). */
static int read_bytes(sd_bus_message *msg, BleBytes *ret) {
        const void *p;
        size_t n;
        int r;

        r = sd_bus_message_read_array(msg, 'y', &p, &n);
        if (r < 0)
                return r;
        if (n > BLE_VALUE_MAX)
                return -EMSGSIZE;
        ret->data = malloc(n ? n : 1);
        if (!ret->data)
                return -ENOMEM;
        if (n)
                memcpy(ret->data, p, n);
        ret->size = n;
        return 0;
}

static int read_strv(sd_bus_message *msg, char ***ret) {
        char **l = NULL;
        size_t n = 0;
        bool over = false;
        int r;

        r = sd_bus_message_enter_container(msg, 'a', "s");
        if (r < 0)
                return r;
        for (;;) {
                const char *s;
                r = sd_bus_message_read_basic(msg, 's', &s);
                if (r < 0)
                        goto fail;
                if (r == 0)
                        break;
                if (over || n >= BLE_STRV_MAX || strlen(s) > BLE_STRING_MAX) {
                        /* Keep reading so the cursor ends after the array. */
                        over = true;
                        continue;
                }
                char *c = strdup(s);
                if (!c) {
                        r = -ENOMEM;
                        goto fail;
                }
                r = strv_push(&l, c);
                if (r < 0)
                        goto fail;
                n++;
        }
        r = sd_bus_message_exit_container(msg);
        if (r < 0)
                goto fail;
        if (over) {
                r = -EMSGSIZE;
                goto fail;
        }
        if (!l) {
                l = calloc(1, sizeof(char *));
                if (!l)
                        return -ENOMEM;
        }
        *ret = l;
        return 0;
fail:
        strv_free(l);
        return r;
}

/* a{qv}, a{yv} or a{sv} whose variants hold "ay" (ManufacturerData, AdvertisingData, ServiceData); key is
 * the signature of the key: 's' fills ret_svc, 'q' and 'y' fill ret_mfr. */
static int read_adv_dict(sd_bus_message *msg, char key, BleMfrList *ret_mfr, BleSvcDataList *ret_svc) {
        const char dict[] = { '{', key, 'v', '}', 0 }, entry[] = { key, 'v', 0 };
        bool string_keys = key == 's';
        BleMfrList mfr = { 0 };
        BleSvcDataList svc = { 0 };
        bool over = false;
        int r;

        r = sd_bus_message_enter_container(msg, 'a', dict);
        if (r < 0)
                return r;
        for (;;) {
                BleBytes b = { 0 };
                uint16_t company = 0;
                uint8_t ad_type = 0;
                const char *uuid = NULL;

                r = sd_bus_message_enter_container(msg, 'e', entry);
                if (r < 0)
                        goto fail;
                if (r == 0)
                        break;
                r = key == 's'   ? sd_bus_message_read_basic(msg, 's', &uuid)
                    : key == 'y' ? sd_bus_message_read_basic(msg, 'y', &ad_type)
                                 : sd_bus_message_read_basic(msg, 'q', &company);
                if (key == 'y')
                        company = ad_type;
                if (r <= 0) {
                        r = r < 0 ? r : -EBADMSG;
                        goto fail;
                }
                r = sd_bus_message_enter_container(msg, 'v', "ay");
                if (r <= 0) {
                        r = r < 0 ? r : -EBADMSG;
                        goto fail;
                }
                r = read_bytes(msg, &b);
                if (r == -EMSGSIZE || (r >= 0 && (string_keys ? svc.n : mfr.n) >= BLE_ADV_ENTRIES_MAX)) {
                        /* Over a cap: read on to the end, refuse the whole property. */
                        bytes_clear(&b);
                        over = true;
                } else if (r < 0)
                        goto fail;
                else if (string_keys) {
                        BleSvcDataEntry *n = realloc(svc.items, (svc.n + 1) * sizeof *n);
                        char *u = strndup(uuid, BLE_STRING_MAX);
                        if (!n || !u) {
                                if (n)
                                        svc.items = n;
                                free(u);
                                bytes_clear(&b);
                                r = -ENOMEM;
                                goto fail;
                        }
                        svc.items = n;
                        svc.items[svc.n++] = (BleSvcDataEntry){ .uuid = u, .data = b };
                } else {
                        BleMfrEntry *n = realloc(mfr.items, (mfr.n + 1) * sizeof *n);
                        if (!n) {
                                bytes_clear(&b);
                                r = -ENOMEM;
                                goto fail;
                        }
                        mfr.items = n;
                        mfr.items[mfr.n++] = (BleMfrEntry){ .company = company, .data = b };
                }
                r = sd_bus_message_exit_container(msg); /* v */
                if (r < 0)
                        goto fail;
                r = sd_bus_message_exit_container(msg); /* e */
                if (r < 0)
                        goto fail;
        }
        r = sd_bus_message_exit_container(msg);
        if (r < 0)
                goto fail;
        if (over) {
                r = -EMSGSIZE;
                goto fail;
        }
        if (string_keys)
                *ret_svc = svc;
        else
                *ret_mfr = mfr;
        return 0;
fail:
        mfr_clear(&mfr);
        svc_data_clear(&svc);
        return r;
}

/* Reads the value inside an entered variant whose signature was checked. */
static int read_value(sd_bus_message *msg, BlePropType t, void *field) {
        int r;

        switch (t) {
        case BLE_PROP_STRING:
        case BLE_PROP_PATH: {
                const char *s;
                char *c;
                r = sd_bus_message_read_basic(msg, prop_signature[t][0], &s);
                if (r < 0)
                        return r;
                if (strlen(s) > BLE_STRING_MAX)
                        return -EMSGSIZE;
                c = strdup(s);
                if (!c)
                        return -ENOMEM;
                free(*(char **) field);
                *(char **) field = c;
                return 0;
        }
        case BLE_PROP_BOOL: {
                int b;
                r = sd_bus_message_read_basic(msg, 'b', &b);
                if (r < 0)
                        return r;
                *(bool *) field = b;
                return 0;
        }
        case BLE_PROP_INT16:
                return sd_bus_message_read_basic(msg, 'n', field) < 0 ? -EBADMSG : 0;
        case BLE_PROP_UINT16:
                return sd_bus_message_read_basic(msg, 'q', field) < 0 ? -EBADMSG : 0;
        case BLE_PROP_STRV: {
                char **l;
                r = read_strv(msg, &l);
                if (r < 0)
                        return r;
                strv_free(*(char ***) field);
                *(char ***) field = l;
                return 0;
        }
        case BLE_PROP_BYTES: {
                BleBytes b = { 0 };
                r = read_bytes(msg, &b);
                if (r < 0)
                        return r;
                bytes_clear(field);
                *(BleBytes *) field = b;
                return 0;
        }
        case BLE_PROP_MFR_DATA:
        case BLE_PROP_AD_DATA: {
                BleMfrList l = { 0 };
                r = read_adv_dict(msg, t == BLE_PROP_AD_DATA ? 'y' : 'q', &l, NULL);
                if (r < 0)
                        return r;
                mfr_clear(field);
                *(BleMfrList *) field = l;
                return 0;
        }
        case BLE_PROP_SVC_DATA: {
                BleSvcDataList l = { 0 };
                r = read_adv_dict(msg, 's', NULL, &l);
                if (r < 0)
                        return r;
                svc_data_clear(field);
                *(BleSvcDataList *) field = l;
                return 0;
        }
        case _BLE_PROP_TYPE_MAX:
                break;
        }
        return -EINVAL;
}

static void *props_base(BleObject *o) {
        switch (o->kind) {
        case BLE_OBJ_ADAPTER:
                return &o->adapter;
        case BLE_OBJ_DEVICE:
                return &o->device;
        case BLE_OBJ_SERVICE:
                return &o->service;
        case BLE_OBJ_CHRC:
                return &o->chrc;
        case BLE_OBJ_DESC:
                return &o->desc;
        case _BLE_OBJ_KIND_MAX:
                break;
        }
        return NULL;
}

/*
 * Decodes an a{sv} at the cursor into o's properties.  Unknown keys are
 * skipped; a known key of the wrong type, or over a cap, is skipped and
 * counted; only a broken container is an error.
 */
static int decode_dict(BleMirror *m, BleObject *o, sd_bus_message *msg, uint64_t *changed) {
        const BleInterface *iface = &interfaces[o->kind];
        uint8_t *base = props_base(o);
        int r;

        r = sd_bus_message_enter_container(msg, 'a', "{sv}");
        if (r <= 0)
                return -EBADMSG;
        for (;;) {
                const char *key, *contents;
                const BleProp *p = NULL;
                size_t idx = 0;
                char type;

                r = sd_bus_message_enter_container(msg, 'e', "sv");
                if (r < 0)
                        return -EBADMSG;
                if (r == 0)
                        break;
                r = sd_bus_message_read_basic(msg, 's', &key);
                if (r <= 0)
                        return -EBADMSG;
                for (idx = 0; idx < iface->n_props; idx++)
                        if (streq(iface->props[idx].name, key)) {
                                p = &iface->props[idx];
                                break;
                        }
                r = sd_bus_message_peek_type(msg, &type, &contents);
                if (r <= 0 || type != 'v')
                        return -EBADMSG;
                if (!p) {
                        r = sd_bus_message_skip(msg, "v");
                        if (r < 0)
                                return -EBADMSG;
                } else if (!streq(contents, prop_signature[p->type])) {
                        m->stats.type_mismatches++;
                        r = sd_bus_message_skip(msg, "v");
                        if (r < 0)
                                return -EBADMSG;
                } else {
                        r = sd_bus_message_enter_container(msg, 'v', contents);
                        if (r <= 0)
                                return -EBADMSG;
                        r = read_value(msg, p->type, base + p->offset);
                        if (r == -ENOMEM)
                                return r;
                        if (r == -EMSGSIZE) {
                                /* Over a cap: leave the old value, skip the rest of the variant. */
                                m->stats.oversized++;
                                r = sd_bus_message_exit_container(msg);
                                if (r < 0)
                                        return -EBADMSG;
                        } else if (r < 0)
                                return -EBADMSG;
                        else {
                                if (p->present != NO_PRESENT)
                                        *(bool *) (base + p->present) = true;
                                *changed |= UINT64_C(1) << idx;
                                r = sd_bus_message_exit_container(msg);
                                if (r < 0)
                                        return -EBADMSG;
                        }
                }
                r = sd_bus_message_exit_container(msg);
                if (r < 0)
                        return -EBADMSG;
        }
        r = sd_bus_message_exit_container(msg);
        return r < 0 ? -EBADMSG : 0;
}

static int decode_invalidated(BleObject *o, sd_bus_message *msg, uint64_t *invalidated) {
        const BleInterface *iface = &interfaces[o->kind];
        uint8_t *base = props_base(o);
        int r;

        r = sd_bus_message_enter_container(msg, 'a', "s");
        if (r <= 0)
                return -EBADMSG;
        for (;;) {
                const char *key;
                r = sd_bus_message_read_basic(msg, 's', &key);
                if (r < 0)
                        return -EBADMSG;
                if (r == 0)
                        break;
                for (size_t i = 0; i < iface->n_props; i++)
                        if (streq(iface->props[i].name, key)) {
                                value_clear(iface->props[i].type, base + iface->props[i].offset);
                                if (iface->props[i].present != NO_PRESENT)
                                        *(bool *) (base + iface->props[i].present) = false;
                                *invalidated |= UINT64_C(1) << i;
                        }
        }
        return sd_bus_message_exit_container(msg) < 0 ? -EBADMSG : 0;
}

/* ---- objects ---- */

static void object_free(BleObject *o) {
        const BleInterface *iface;
        uint8_t *base;

        if (!o)
                return;
        iface = &interfaces[o->kind];
        base = props_base(o);
        for (size_t i = 0; i < iface->n_props; i++)
                value_clear(iface->props[i].type, base + iface->props[i].offset);
        free(o->path);
        free(o);
}

static int kind_from_interface(const char *name, BleObjKind *ret) {
        for (BleObjKind k = 0; k < _BLE_OBJ_KIND_MAX; k++)
                if (streq(interfaces[k].name, name)) {
                        *ret = k;
                        return 0;
                }
        return -ENOENT;
}

int ble_mirror_new(const BleMirrorCallbacks *cb, void *userdata, BleMirror **ret) {
        BleMirror *m = calloc(1, sizeof *m);

        if (!m)
                return -ENOMEM;
        ble_map_init(&m->objects);
        if (cb)
                m->cb = *cb;
        m->userdata = userdata;
        *ret = m;
        return 0;
}

static void remove_object(BleMirror *m, BleObject *o) {
        if (m->cb.removed)
                m->cb.removed(m, o, m->userdata);
        (void) ble_map_remove(&m->objects, o->path);
        object_free(o);
}

void ble_mirror_clear(BleMirror *m) {
        size_t n = ble_map_size(&m->objects);
        BleObject **all;

        if (n == 0)
                return;
        all = malloc(n * sizeof *all);
        /* Children first, so that owners see GATT objects go before their device. */
        for (int k = _BLE_OBJ_KIND_MAX - 1; k >= 0; k--) {
                size_t i = 0, found = 0;
                BleMapEntry *e = NULL;
                BleObject *o;

                if (!all) {
                        /* Out of memory: the slow way, one lookup pass per object. */
                        for (;;) {
                                BleObject *victim = NULL;
                                i = 0;
                                e = NULL;
                                while (ble_map_iterate(&m->objects, &i, &e, (void **) &o))
                                        if ((int) o->kind == k) {
                                                victim = o;
                                                break;
                                        }
                                if (!victim)
                                        break;
                                remove_object(m, victim);
                        }
                        continue;
                }
                while (ble_map_iterate(&m->objects, &i, &e, (void **) &o))
                        if ((int) o->kind == k && found < n)
                                all[found++] = o;
                for (size_t j = 0; j < found; j++)
                        remove_object(m, all[j]);
        }
        free(all);
}

BleMirror *ble_mirror_free(BleMirror *m) {
        if (!m)
                return NULL;
        m->cb = (BleMirrorCallbacks){ 0 };
        ble_mirror_clear(m);
        ble_map_done(&m->objects);
        free(m);
        return NULL;
}

BleObject *ble_mirror_get(BleMirror *m, const char *path) {
        return path ? ble_map_get(&m->objects, path) : NULL;
}

size_t ble_mirror_size(BleMirror *m) {
        return ble_map_size(&m->objects);
}

const BleMirrorStats *ble_mirror_stats(BleMirror *m) {
        return &m->stats;
}

void ble_mirror_foreach(BleMirror *m, void (*f)(BleObject *o, void *userdata), void *userdata) {
        size_t i = 0;
        BleMapEntry *e = NULL;
        void *v;

        while (ble_map_iterate(&m->objects, &i, &e, &v))
                f(v, userdata);
}

/* Cursor at a{sa{sv}} of object path; applies the first interface we know. */
static int apply_interfaces(BleMirror *m, const char *path, sd_bus_message *msg) {
        int r;

        r = sd_bus_message_enter_container(msg, 'a', "{sa{sv}}");
        if (r <= 0)
                return -EBADMSG;
        for (;;) {
                const char *name;
                BleObjKind kind;
                BleObject *o;
                uint64_t changed = 0;
                bool is_new = false;

                r = sd_bus_message_enter_container(msg, 'e', "sa{sv}");
                if (r < 0)
                        return -EBADMSG;
                if (r == 0)
                        break;
                r = sd_bus_message_read_basic(msg, 's', &name);
                if (r <= 0)
                        return -EBADMSG;
                o = ble_mirror_get(m, path);
                if (kind_from_interface(name, &kind) < 0 || (o && o->kind != kind)) {
                        /* Introspectable, Properties, Peer, Battery1, ...: not ours. */
                        r = sd_bus_message_skip(msg, "a{sv}");
                        if (r < 0)
                                return -EBADMSG;
                } else {
                        if (!o) {
                                if (ble_map_size(&m->objects) >= BLE_MIRROR_OBJECTS_MAX)
                                        return -E2BIG;
                                o = calloc(1, interfaces[kind].object_size);
                                if (!o)
                                        return -ENOMEM;
                                o->kind = kind;
                                o->path = strdup(path);
                                if (!o->path || ble_map_put(&m->objects, o->path, o) < 0) {
                                        object_free(o);
                                        return -ENOMEM;
                                }
                                is_new = true;
                        }
                        r = decode_dict(m, o, msg, &changed);
                        if (r < 0) {
                                if (is_new) {
                                        (void) ble_map_remove(&m->objects, o->path);
                                        object_free(o);
                                }
                                return r;
                        }
                        if (is_new) {
                                if (m->cb.added)
                                        m->cb.added(m, o, m->userdata);
                        } else if (changed && m->cb.changed)
                                m->cb.changed(m, o, changed, 0, m->userdata);
                }
                r = sd_bus_message_exit_container(msg);
                if (r < 0)
                        return -EBADMSG;
        }
        return sd_bus_message_exit_container(msg) < 0 ? -EBADMSG : 0;
}

int ble_mirror_load(BleMirror *m, sd_bus_message *reply) {
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "{oa{sa{sv}}}");
        if (r <= 0)
                return -EBADMSG;
        for (;;) {
                const char *path;
                r = sd_bus_message_enter_container(reply, 'e', "oa{sa{sv}}");
                if (r < 0)
                        return -EBADMSG;
                if (r == 0)
                        break;
                r = sd_bus_message_read_basic(reply, 'o', &path);
                if (r <= 0)
                        return -EBADMSG;
                r = apply_interfaces(m, path, reply);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return -EBADMSG;
        }
        return sd_bus_message_exit_container(reply) < 0 ? -EBADMSG : 0;
}

int ble_mirror_interfaces_added(BleMirror *m, sd_bus_message *msg) {
        const char *path;
        int r;

        r = sd_bus_message_read_basic(msg, 'o', &path);
        if (r <= 0)
                return -EBADMSG;
        return apply_interfaces(m, path, msg);
}

int ble_mirror_interfaces_removed(BleMirror *m, sd_bus_message *msg) {
        const char *path, *name;
        BleObject *o;
        int r;

        r = sd_bus_message_read_basic(msg, 'o', &path);
        if (r <= 0)
                return -EBADMSG;
        r = sd_bus_message_enter_container(msg, 'a', "s");
        if (r <= 0)
                return -EBADMSG;
        for (;;) {
                r = sd_bus_message_read_basic(msg, 's', &name);
                if (r < 0)
                        return -EBADMSG;
                if (r == 0)
                        break;
                o = ble_mirror_get(m, path);
                if (o && streq(name, interfaces[o->kind].name))
                        remove_object(m, o);
        }
        return sd_bus_message_exit_container(msg) < 0 ? -EBADMSG : 0;
}

int ble_mirror_properties_changed(BleMirror *m, sd_bus_message *msg) {
        const char *name, *path = sd_bus_message_get_path(msg);
        uint64_t changed = 0, invalidated = 0;
        BleObjKind kind;
        BleObject *o;
        int r, q;

        r = sd_bus_message_read_basic(msg, 's', &name);
        if (r <= 0)
                return -EBADMSG;
        if (kind_from_interface(name, &kind) < 0)
                return 0;
        o = ble_mirror_get(m, path);
        if (!o || o->kind != kind) {
                m->stats.unknown_paths++;
                return 0;
        }
        r = decode_dict(m, o, msg, &changed);
        q = r < 0 ? 0 : decode_invalidated(o, msg, &invalidated);
        /* Report what was applied even if the rest was garbled. */
        if ((changed || invalidated) && m->cb.changed)
                m->cb.changed(m, o, changed, invalidated, m->userdata);
        return r < 0 ? r : q;
}
