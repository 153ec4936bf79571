/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "g2c.h"

static const char *const g2c_event_type_table[_G2C_EVENT_TYPE_MAX] = {
        [G2C_EVENT_SCAN_RESULT] = "scan_result",
        [G2C_EVENT_DEVICE_CONNECT_RESULT] = "device_connect_result",
        [G2C_EVENT_DEVICE_DISCONNECT] = "device_disconnect",
        [G2C_EVENT_DEVICE_DISCOVER_RESULT] = "device_discover_result",
        [G2C_EVENT_CHARACTERISTIC_VALUE_CHANGED] = "device_characteristic_value_changed",
        [G2C_EVENT_CHARACTERISTIC_VALUE_READ_RESULT] = "device_characteristic_value_read_result",
        [G2C_EVENT_CHARACTERISTIC_VALUE_WRITE_RESULT] = "device_characteristic_value_write_result",
        [G2C_EVENT_DESCRIPTOR_VALUE_CHANGED] = "device_descriptor_value_changed",
        [G2C_EVENT_DESCRIPTOR_VALUE_READ_RESULT] = "device_descriptor_value_read_result",
        [G2C_EVENT_DESCRIPTOR_VALUE_WRITE_RESULT] = "device_descriptor_value_write_result",
        [G2C_EVENT_ERROR] = "error",
};

const char *g2c_event_type_to_string(G2cEventType t) {
        if (t < 0 || t >= _G2C_EVENT_TYPE_MAX)
                return NULL;
        return g2c_event_type_table[t];
}

G2cEventType g2c_event_type_from_string(const char *s) {
        if (!s)
                return _G2C_EVENT_TYPE_INVALID;
        for (int i = 0; i < _G2C_EVENT_TYPE_MAX; i++)
                if (streq(g2c_event_type_table[i], s))
                        return (G2cEventType) i;
        return _G2C_EVENT_TYPE_INVALID;
}

int g2c_format_timestamp(uint64_t usec, char buf[static G2C_TIMESTAMP_LEN + 1]) {
        time_t t = (time_t) (usec / 1000000);
        unsigned ms = (unsigned) (usec / 1000 % 1000);
        struct tm tm;
        char b[64];

        if (usec / 1000000 > (uint64_t) 253402300799) /* 9999-12-31T23:59:59Z */
                return -ERANGE;
        /* Debian 12 armhf still has a 32-bit time_t. */
        if ((uint64_t) t != usec / 1000000)
                return -ERANGE;
        if (!gmtime_r(&t, &tm))
                return -ERANGE;
        if (strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm) != 19)
                return -ERANGE;
        memcpy(buf, b, 19);
        snprintf(buf + 19, G2C_TIMESTAMP_LEN + 1 - 19, ".%03uZ", ms % 1000);
        return 0;
}

/* Ids travel in JSON and in logs: printable ASCII, bounded. */
static bool id_valid(const char *s) {
        size_t n;

        if (!s)
                return false;
        n = strlen(s);
        if (n == 0 || n > C2G_ID_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (s[i] < 0x20 || s[i] > 0x7e)
                        return false;
        return true;
}

/* Wraps the event-specific members (stolen) into the envelope and dumps it. */
static int envelope(const G2cHeader *h, G2cEventType type, json_t *members, char **ret) {
        _cleanup_(json_decrefp) json_t *m = members, *event = NULL, *env = NULL;
        char ts[G2C_TIMESTAMP_LEN + 1];
        _cleanup_free_ char *s = NULL;
        int r;

        if (!m)
                return -ENOMEM;
        if (!h || !id_valid(h->gateway_id) || (h->request_id && !id_valid(h->request_id)) ||
            h->message_id > INT64_MAX)
                return -EINVAL;
        r = g2c_format_timestamp(h->timestamp_usec, ts);
        if (r < 0)
                return r;

        event = json_pack("{s:s,s:s}", "type", g2c_event_type_to_string(type), "timestamp", ts);
        if (!event || json_object_update(event, m) < 0)
                return -ENOMEM;
        env = json_pack("{s:s,s:s,s:s,s:O,s:I}", "type", "event", "gatewayId", h->gateway_id, "requestId",
                        h->request_id ?: G2C_REQUEST_ID_NONE, "event", event, "messageId",
                        (json_int_t) h->message_id);
        if (!env)
                return -ENOMEM;
        r = codec_json_dump(env, &s);
        if (r < 0)
                return r;
        if (strlen(s) > G2C_MESSAGE_MAX)
                return -EMSGSIZE;
        *ret = TAKE_PTR(s);
        return 0;
}

/* {"address":A[,"type":T]} */
static json_t *address_object(const char *addr, BtAddrType type) {
        const char *t = bt_addr_type_to_string(type);
        return json_pack("{s:s,s:s*}", "address", addr, "type", t);
}

static int device_normalize(const G2cDevice *d, char addr[static BT_ADDR_STR_LEN + 1]) {
        if (!d || d->address_type < 0 || d->address_type >= _BT_ADDR_TYPE_MAX)
                return -EINVAL;
        return bt_addr_normalize(d->address, addr);
}

/* {"id":A,"address":{...}[,"status":{"connected":b}]} */
static json_t *device_object(const char *addr, BtAddrType type, int connected) {
        if (connected < 0)
                return json_pack("{s:s,s:o}", "id", addr, "address", address_object(addr, type));
        return json_pack("{s:s,s:o,s:{s:b}}", "id", addr, "address", address_object(addr, type), "status",
                         "connected", connected);
}

/* beacon-utilities' UUID spelling: 16-bit SIG UUIDs widened to the lower-case dashed 128-bit form. */
static int uuid_dashed(const char *in, char ret[static 37]) {
        char u[UUID_STR_MAX + 1], full[UUID_STR_MAX + 1];
        size_t k = 0;

        if (uuid_normalize(in, u) < 0)
                return -EINVAL;
        if (strlen(u) == 4)
                snprintf(full, sizeof full, "0000%s00001000800000805F9B34FB", u);
        else
                memcpy(full, u, sizeof full);
        for (size_t i = 0; i < 32; i++) {
                if (i == 8 || i == 12 || i == 16 || i == 20)
                        ret[k++] = '-';
                ret[k++] = (char) (full[i] >= 'A' && full[i] <= 'F' ? full[i] - 'A' + 'a' : full[i]);
        }
        ret[k] = 0;
        return 0;
}

/* serviceData keys: beacon-utilities keys 16-bit UUIDs by their lower-case hex ("feaa"). */
static int service_data_key(const char *in, char ret[static 37]) {
        char u[UUID_STR_MAX + 1];

        if (uuid_normalize(in, u) < 0)
                return -EINVAL;
        if (strlen(u) != 4)
                return uuid_dashed(u, ret);
        for (size_t i = 0; i < 5; i++)
                ret[i] = (char) (u[i] >= 'A' && u[i] <= 'F' ? u[i] - 'A' + 'a' : u[i]);
        return 0;
}

int g2c_advertisement_object(const G2cAdvertisement *a, json_t **ret) {
        _cleanup_(json_decrefp) json_t *o = NULL, *uuids = NULL, *mfr = json_object(), *svc = json_object(),
                                      *raw = NULL;
        char key[37];

        if (!mfr || !svc)
                return -ENOMEM;
        if (!a || a->flags < -1 || a->flags > 255 || a->n_service_uuids > G2C_AD_ENTRIES_MAX ||
            a->n_manufacturer_data > G2C_AD_ENTRIES_MAX || a->n_service_data > G2C_AD_ENTRIES_MAX ||
            a->n_raw > G2C_AD_ENTRIES_MAX || (a->n_service_uuids && !a->service_uuids) ||
            (a->n_manufacturer_data && !a->manufacturer_data) || (a->n_service_data && !a->service_data) ||
            (a->n_raw && !a->raw))
                return -EINVAL;
        if (a->n_service_uuids > 0) {
                uuids = json_array();
                if (!uuids)
                        return -ENOMEM;
                for (size_t i = 0; i < a->n_service_uuids; i++) {
                        if (uuid_dashed(a->service_uuids[i], key) < 0)
                                return -EINVAL;
                        if (json_array_append_new(uuids, json_string(key)) < 0)
                                return -ENOMEM;
                }
        }
        for (size_t i = 0; i < a->n_manufacturer_data; i++) {
                const G2cAdEntry *e = &a->manufacturer_data[i];
                if (e->size > GATT_VALUE_MAX || (e->size && !e->data))
                        return -EINVAL;
                snprintf(key, sizeof key, "%u", (unsigned) e->key);
                if (json_object_set_new(mfr, key, codec_json_bytes(e->data, e->size)) < 0)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < a->n_service_data; i++) {
                const G2cAdEntry *e = &a->service_data[i];
                if (e->size > GATT_VALUE_MAX || (e->size && !e->data) || service_data_key(e->uuid, key) < 0)
                        return -EINVAL;
                if (json_object_set_new(svc, key, codec_json_bytes(e->data, e->size)) < 0)
                        return -ENOMEM;
        }
        if (a->n_raw > 0) {
                raw = json_array();
                if (!raw)
                        return -ENOMEM;
                for (size_t i = 0; i < a->n_raw; i++) {
                        const G2cAdEntry *e = &a->raw[i];
                        /* An AD structure's length octet covers the type and the data. */
                        if (e->key > 255 || e->size > 254 || (e->size && !e->data))
                                return -EINVAL;
                        if (json_array_append_new(raw, json_integer((json_int_t) e->size + 1)) < 0 ||
                            json_array_append_new(raw, json_integer(e->key)) < 0)
                                return -ENOMEM;
                        for (size_t k = 0; k < e->size; k++)
                                if (json_array_append_new(raw, json_integer(e->data[k])) < 0)
                                        return -ENOMEM;
                }
        }
        o = json_object();
        if (!o)
                return -ENOMEM;
        if (json_object_set_new(o, "advertiseFlag", json_integer(a->flags)) < 0 ||
            json_object_set_new(o, "serviceUuids", uuids ? json_incref(uuids) : json_null()) < 0)
                return -ENOMEM;
        if (a->local_name) {
                json_t *n = json_string(a->local_name);
                if (!n)
                        return -EINVAL; /* not UTF-8 */
                if (json_object_set_new(o, "localName", n) < 0)
                        return -ENOMEM;
        } else if (json_object_set_new(o, "localName", json_null()) < 0)
                return -ENOMEM;
        if (json_object_set_new(o, "txPower", a->has_tx_power ? json_integer(a->tx_power) : json_null()) < 0 ||
            json_object_set(o, "manufacturerData", mfr) < 0 || json_object_set(o, "serviceData", svc) < 0 ||
            (raw && json_object_set(o, "rawData", raw) < 0))
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}

int g2c_encode_scan_result(const G2cHeader *h, C2gScanReporting sub_type, bool timeout,
                           const G2cScanDevice *devices, size_t n_devices, char **ret) {
        _cleanup_(json_decrefp) json_t *list = json_array();
        const char *st = c2g_scan_reporting_to_string(sub_type);

        if (!list)
                return -ENOMEM;
        if (!st || (n_devices > 0 && !devices))
                return -EINVAL;
        for (size_t i = 0; i < n_devices; i++) {
                const G2cScanDevice *sd = devices + i;
                char addr[BT_ADDR_STR_LEN + 1];
                json_t *o;

                if (device_normalize(&sd->device, addr) < 0)
                        return -EINVAL;
                if (sd->name && strlen(sd->name) > G2C_SCAN_NAME_MAX)
                        return -EINVAL;
                o = json_pack("{s:s}", "deviceType", "BLE");
                if (!o || json_array_append_new(list, o) < 0)
                        return -ENOMEM;
                if (sd->has_rssi && json_object_set_new(o, "rssi", json_integer(sd->rssi)) < 0)
                        return -ENOMEM;
                if (sd->name) {
                        /* Advertised names are not always UTF-8: refuse rather than send garbage. */
                        json_t *n = json_string(sd->name);
                        if (!n)
                                return -EINVAL;
                        if (json_object_set_new(o, "name", n) < 0)
                                return -ENOMEM;
                }
                if (json_object_set_new(o, "address", address_object(addr, sd->device.address_type)) < 0)
                        return -ENOMEM;
                if (sd->advertisement) {
                        json_t *ad = NULL;
                        int r = g2c_advertisement_object(sd->advertisement, &ad);
                        if (r < 0)
                                return r;
                        if (json_object_set_new(o, "advertisementData", ad) < 0)
                                return -ENOMEM;
                }
        }
        return envelope(h, G2C_EVENT_SCAN_RESULT,
                        json_pack("{s:s,s:b,s:O}", "subType", st, "timeout", timeout, "devices", list), ret);
}

int g2c_encode_device_connect_result(const G2cHeader *h, const G2cDevice *d, bool connected, char **ret) {
        char addr[BT_ADDR_STR_LEN + 1];

        if (device_normalize(d, addr) < 0)
                return -EINVAL;
        return envelope(h, G2C_EVENT_DEVICE_CONNECT_RESULT,
                        json_pack("{s:o}", "device", device_object(addr, d->address_type, connected)), ret);
}

int g2c_encode_device_disconnect(const G2cHeader *h, const G2cDevice *d, char **ret) {
        char addr[BT_ADDR_STR_LEN + 1];

        if (device_normalize(d, addr) < 0)
                return -EINVAL;
        return envelope(h, G2C_EVENT_DEVICE_DISCONNECT,
                        json_pack("{s:o}", "device", device_object(addr, d->address_type, false)), ret);
}

/* Only the flags nRF Cloud knows, in this order, and only the true ones. */
static const struct {
        unsigned bit;
        const char *name;
} property_names[] = {
        { GATT_PROP_BROADCAST, "broadcast" },
        { GATT_PROP_READ, "read" },
        { GATT_PROP_WRITE, "write" },
        { GATT_PROP_WRITE_WITHOUT_RESPONSE, "writeWithoutResponse" },
        { GATT_PROP_NOTIFY, "notify" },
        { GATT_PROP_INDICATE, "indicate" },
        { GATT_PROP_AUTHENTICATED_SIGNED_WRITES, "authorizedSignedWrite" },
};

static json_t *properties_object(unsigned props) {
        json_t *o = json_object();

        if (!o)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(property_names); i++)
                if ((props & property_names[i].bit) && json_object_set_new(o, property_names[i].name, json_true()) < 0) {
                        json_decref(o);
                        return NULL;
                }
        return o;
}

static int add_characteristic(json_t *chars, const char *svc_uuid, const GattCharacteristic *c) {
        char path[3 * (UUID_STR_MAX + 1)];
        json_t *descs, *co;

        if (json_object_get(chars, c->uuid))
                return 0; /* keyed format: the first one wins */
        snprintf(path, sizeof path, "%s/%s", svc_uuid, c->uuid);
        descs = json_object();
        co = json_pack("{s:s,s:s,s:o,s:o,s:o}", "uuid", c->uuid, "path", path, "properties",
                       properties_object(c->properties), "value", codec_json_bytes(c->value, c->value_len),
                       "descriptors", descs);
        if (!co || json_object_set_new(chars, c->uuid, co) < 0)
                return -ENOMEM;
        for (size_t k = 0; k < c->n_descriptors; k++) {
                const GattDescriptor *d = c->descriptors[k];
                char dpath[sizeof path + UUID_STR_MAX + 1];
                json_t *dobj;

                if (json_object_get(descs, d->uuid))
                        continue;
                snprintf(dpath, sizeof dpath, "%s/%s", path, d->uuid);
                dobj = json_pack("{s:s,s:s,s:o}", "uuid", d->uuid, "path", dpath, "value",
                                 codec_json_bytes(d->value, d->value_len));
                if (!dobj || json_object_set_new(descs, d->uuid, dobj) < 0)
                        return -ENOMEM;
        }
        return 0;
}

int g2c_encode_device_discover_result(const G2cHeader *h, const G2cDevice *d, const GattModel *m, char **ret) {
        _cleanup_(json_decrefp) json_t *services = json_object();
        char addr[BT_ADDR_STR_LEN + 1];
        int r;

        if (!services)
                return -ENOMEM;
        if (device_normalize(d, addr) < 0 || !m)
                return -EINVAL;
        for (size_t i = 0; i < m->n_services; i++) {
                const GattService *s = m->services[i];
                json_t *so = json_object_get(services, s->uuid), *chars;

                if (!so) {
                        so = json_pack("{s:s,s:{}}", "uuid", s->uuid, "characteristics");
                        if (!so || json_object_set_new(services, s->uuid, so) < 0)
                                return -ENOMEM;
                }
                chars = json_object_get(so, "characteristics");
                for (size_t j = 0; j < s->n_characteristics; j++) {
                        r = add_characteristic(chars, s->uuid, s->characteristics[j]);
                        if (r < 0)
                                return r;
                }
        }
        return envelope(h, G2C_EVENT_DEVICE_DISCOVER_RESULT,
                        json_pack("{s:o,s:O}", "device", device_object(addr, d->address_type, true), "services",
                                  services),
                        ret);
}

/*
 * Attribute value events are the hot path: every notification of every
 * device becomes one.  They are written directly rather than built as a
 * jansson tree (about ten times cheaper), producing exactly the bytes
 * jansson's compact dump would (the tests compare both).  This is safe
 * because every string in them has been checked to be printable ASCII, so
 * only '"' and '\\' need escaping.
 */
typedef struct Writer {
        char *p;
        size_t n;
} Writer;

static void w_raw(Writer *w, const char *s) {
        size_t n = strlen(s);
        memcpy(w->p + w->n, s, n);
        w->n += n;
}

static void w_string(Writer *w, const char *s) {
        w->p[w->n++] = '"';
        for (; *s; s++) {
                if (*s == '"' || *s == '\\')
                        w->p[w->n++] = '\\';
                w->p[w->n++] = *s;
        }
        w->p[w->n++] = '"';
}

static void w_uint(Writer *w, uint64_t v) {
        char b[24];
        size_t k = sizeof b;

        do {
                b[--k] = (char) ('0' + v % 10);
                v /= 10;
        } while (v > 0);
        memcpy(w->p + w->n, b + k, sizeof b - k);
        w->n += sizeof b - k;
}

static int attribute_event(const G2cHeader *h, G2cEventType type, const char *addr, BtAddrType addr_type,
                           const char *kind, const char *uuid, const char *path, const uint8_t *value,
                           size_t value_len, char **ret) {
        const char *addr_type_name = bt_addr_type_to_string(addr_type);
        char ts[G2C_TIMESTAMP_LEN + 1];
        Writer w = {};
        size_t cap;
        int r;

        if (!h || !id_valid(h->gateway_id) || (h->request_id && !id_valid(h->request_id)) ||
            h->message_id > INT64_MAX)
                return -EINVAL;
        r = g2c_format_timestamp(h->timestamp_usec, ts);
        if (r < 0)
                return r;

        /* The fixed text (under 300 bytes), two ids of which each character
         * may need escaping, short checked strings with their quotes, and at
         * most four characters per byte of value. */
        cap = 1024 + 2 * (2 * C2G_ID_MAX) + 2 * BT_ADDR_STR_LEN + strlen(path) + strlen(uuid) + 4 * value_len + 1;
        w.p = malloc(cap);
        if (!w.p)
                return -ENOMEM;

        w_raw(&w, "{\"type\":\"event\",\"gatewayId\":");
        w_string(&w, h->gateway_id);
        w_raw(&w, ",\"requestId\":");
        w_string(&w, h->request_id ?: G2C_REQUEST_ID_NONE);
        w_raw(&w, ",\"event\":{\"type\":");
        w_string(&w, g2c_event_type_to_string(type));
        w_raw(&w, ",\"timestamp\":");
        w_string(&w, ts);
        w_raw(&w, ",\"device\":{\"id\":");
        w_string(&w, addr);
        w_raw(&w, ",\"address\":{\"address\":");
        w_string(&w, addr);
        if (addr_type_name) {
                w_raw(&w, ",\"type\":");
                w_string(&w, addr_type_name);
        }
        w_raw(&w, "}},");
        w_string(&w, kind);
        w_raw(&w, ":{\"uuid\":");
        w_string(&w, uuid);
        w_raw(&w, ",\"path\":");
        w_string(&w, path);
        w_raw(&w, ",\"value\":[");
        for (size_t i = 0; i < value_len; i++) {
                if (i > 0)
                        w.p[w.n++] = ',';
                w_uint(&w, value[i]);
        }
        w_raw(&w, "]}},\"messageId\":");
        w_uint(&w, h->message_id);
        w_raw(&w, "}");
        w.p[w.n] = 0;
        *ret = w.p;
        return 0;
}

int g2c_encode_characteristic_value(const G2cHeader *h, G2cEventType type, const G2cDevice *d,
                                    const char *service_uuid, const char *characteristic_uuid,
                                    const uint8_t *value, size_t value_len, char **ret) {
        char addr[BT_ADDR_STR_LEN + 1], su[UUID_STR_MAX + 1], cu[UUID_STR_MAX + 1];
        char path[2 * (UUID_STR_MAX + 1)];

        switch (type) {
        case G2C_EVENT_CHARACTERISTIC_VALUE_CHANGED:
        case G2C_EVENT_CHARACTERISTIC_VALUE_READ_RESULT:
        case G2C_EVENT_CHARACTERISTIC_VALUE_WRITE_RESULT:
                break;
        case G2C_EVENT_SCAN_RESULT:
        case G2C_EVENT_DEVICE_CONNECT_RESULT:
        case G2C_EVENT_DEVICE_DISCONNECT:
        case G2C_EVENT_DEVICE_DISCOVER_RESULT:
        case G2C_EVENT_DESCRIPTOR_VALUE_CHANGED:
        case G2C_EVENT_DESCRIPTOR_VALUE_READ_RESULT:
        case G2C_EVENT_DESCRIPTOR_VALUE_WRITE_RESULT:
        case G2C_EVENT_ERROR:
        case _G2C_EVENT_TYPE_MAX:
        case _G2C_EVENT_TYPE_INVALID:
                return -EINVAL;
        }
        if (device_normalize(d, addr) < 0 || uuid_normalize(service_uuid, su) < 0 ||
            uuid_normalize(characteristic_uuid, cu) < 0 || value_len > GATT_VALUE_MAX || (value_len > 0 && !value))
                return -EINVAL;
        snprintf(path, sizeof path, "%s/%s", su, cu);
        return attribute_event(h, type, addr, d->address_type, "characteristic", cu, path, value, value_len, ret);
}

int g2c_encode_descriptor_value(const G2cHeader *h, G2cEventType type, const G2cDevice *d,
                                const char *service_uuid, const char *characteristic_uuid,
                                const char *descriptor_uuid, const uint8_t *value, size_t value_len,
                                char **ret) {
        char addr[BT_ADDR_STR_LEN + 1], su[UUID_STR_MAX + 1], cu[UUID_STR_MAX + 1], du[UUID_STR_MAX + 1];
        char path[3 * (UUID_STR_MAX + 1)];

        switch (type) {
        case G2C_EVENT_DESCRIPTOR_VALUE_CHANGED:
        case G2C_EVENT_DESCRIPTOR_VALUE_READ_RESULT:
        case G2C_EVENT_DESCRIPTOR_VALUE_WRITE_RESULT:
                break;
        case G2C_EVENT_SCAN_RESULT:
        case G2C_EVENT_DEVICE_CONNECT_RESULT:
        case G2C_EVENT_DEVICE_DISCONNECT:
        case G2C_EVENT_DEVICE_DISCOVER_RESULT:
        case G2C_EVENT_CHARACTERISTIC_VALUE_CHANGED:
        case G2C_EVENT_CHARACTERISTIC_VALUE_READ_RESULT:
        case G2C_EVENT_CHARACTERISTIC_VALUE_WRITE_RESULT:
        case G2C_EVENT_ERROR:
        case _G2C_EVENT_TYPE_MAX:
        case _G2C_EVENT_TYPE_INVALID:
                return -EINVAL;
        }
        if (device_normalize(d, addr) < 0 || uuid_normalize(service_uuid, su) < 0 ||
            uuid_normalize(characteristic_uuid, cu) < 0 || uuid_normalize(descriptor_uuid, du) < 0 ||
            value_len > GATT_VALUE_MAX || (value_len > 0 && !value))
                return -EINVAL;
        snprintf(path, sizeof path, "%s/%s/%s", su, cu, du);
        return attribute_event(h, type, addr, d->address_type, "descriptor", du, path, value, value_len, ret);
}

int g2c_encode_error(const G2cHeader *h, const char *address, const char *description, int code, char **ret) {
        char addr[BT_ADDR_STR_LEN + 1];
        json_t *desc, *m;

        if (!description || strlen(description) > G2C_DESCRIPTION_MAX)
                return -EINVAL;
        if (address && bt_addr_normalize(address, addr) < 0)
                return -EINVAL;
        desc = json_string(description);
        if (!desc)
                return -EINVAL; /* not UTF-8 */
        if (address)
                m = json_pack("{s:{s:s},s:{s:o,s:i}}", "device", "deviceAddress", addr, "error", "description", desc,
                              "code", code);
        else
                m = json_pack("{s:{s:o,s:i}}", "error", "description", desc, "code", code);
        return envelope(h, G2C_EVENT_ERROR, m, ret);
}

int g2c_encode_c2g_error(const G2cHeader *h, const C2gError *e, int code, char **ret) {
        char desc[CODEC_FIELD_MAX + 2 + CODEC_DESCRIPTION_MAX];
        G2cHeader eh;

        if (!h || !e)
                return -EINVAL;
        eh = *h;
        eh.request_id = e->has_id ? e->id : NULL;
        if (e->error.field[0])
                snprintf(desc, sizeof desc, "%.*s: %.*s", CODEC_FIELD_MAX - 1, e->error.field,
                         CODEC_DESCRIPTION_MAX - 1, e->error.description);
        else
                snprintf(desc, sizeof desc, "%.*s", CODEC_DESCRIPTION_MAX - 1, e->error.description);
        return g2c_encode_error(&eh, NULL, desc, code, ret);
}
