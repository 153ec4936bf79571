/* SPDX-License-Identifier: MIT */
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "c2g.h"
#include "g2c.h"
#include "log.h"
#include "message-ids.h"
#include "protocol.h"
#include "ratelimit.h"
#include "util.h"

#define USEC_PER_SEC UINT64_C(1000000)
#define USEC_PER_MSEC UINT64_C(1000)

/* A burst of refused c2g operations ends when none was refused for this long. */
#define C2G_BURST_QUIET_USEC (2 * USEC_PER_SEC)
/* At most one error event about refused c2g operations in this time. */
#define C2G_REFUSAL_EVENT_INTERVAL_USEC (10 * USEC_PER_SEC)

typedef struct ProtocolCcc {
        char service_uuid[UUID_STR_MAX + 1];
        char chrc_uuid[UUID_STR_MAX + 1];
        C2gCccMode mode;
} ProtocolCcc;

/* A c2g operation of a device being updated, waiting for the update to end. */
typedef struct ProtocolHeld {
        struct ProtocolHeld *next;
        C2gOperation op;
} ProtocolHeld;

/* One desired device, as the protocol reports it. */
typedef struct ProtocolDevice {
        struct ProtocolDevice *next;
        char address[BT_ADDR_STR_LEN + 1];
        ProtocolDeviceState state;
        BtAddrType address_type; /* from BlueZ's AddressType, as nRF Cloud names it */
        GattModel *model; /* converted at each READY; NULL before */
        /* Both lists grow as needed (a device costs little while it has none). */
        ProtocolCcc *ccc; /* at most PROTOCOL_CCC_MAX */
        size_t n_ccc;
        /* Ids of device_discover operations waiting for READY, at most PROTOCOL_DISCOVER_WAITERS_MAX. */
        char (*discover_waiters)[C2G_ID_MAX + 1];
        size_t n_discover_waiters;
        /* Operations held while the device is updated (protocol.h), oldest first. */
        ProtocolHeld *held, *held_tail;
        size_t n_held;
} ProtocolDevice;

/* A c2g operation waiting for the BLE layer.  Orphaned (p == NULL) when
 * the protocol is freed first; its callback then only frees it. */
typedef struct ProtocolOp {
        Protocol *p;
        struct ProtocolOp *prev, *next;
        C2gOperation op;
        C2gCccMode ccc_mode;
} ProtocolOp;

/* The latest value of one characteristic, held back for NotifyMinIntervalMs. */
typedef struct ProtocolCoalesce {
        Protocol *p;
        struct ProtocolCoalesce *next;
        char address[BT_ADDR_STR_LEN + 1];
        char service_uuid[UUID_STR_MAX + 1];
        char chrc_uuid[UUID_STR_MAX + 1];
        uint64_t last_sent; /* CLOCK_MONOTONIC, 0: never */
        bool pending;
        sd_event_source *timer;
        size_t size;
        uint8_t value[GATT_VALUE_MAX];
} ProtocolCoalesce;

struct Protocol {
        sd_event *event;
        const Config *config;
        char *gateway_id;
        BleManager *ble;
        ProtocolSink sink;
        void *sink_impl;

        uint64_t message_id;
        uint64_t messages_sent;

        ProtocolDevice *devices;
        size_t n_devices;
        ProtocolOp *ops;
        size_t n_ops, n_scans;
        ProtocolCoalesce *coalesce;
        size_t n_coalesce;

        /* c2g operations run, C2gRateMax= per second; those over it (or over what the BLE layer can
         * queue) are refused.  A burst of refusals ends when none was needed for a quiet period; the
         * cloud hears of refusals through at most one error event per interval, which counts them. */
        RateLimit c2g_rate;
        RateLimit c2g_error_rate;    /* error events about refusals */
        uint64_t c2g_refused;        /* in the current burst */
        uint64_t c2g_last_refusal;   /* CLOCK_MONOTONIC, 0: none in this burst */
        uint64_t c2g_burst_begin;    /* CLOCK_MONOTONIC */
        sd_event_source *c2g_burst_timer;
        /* Records each c2g message can cause: a flood of them logs a few lines with a count. */
        RateLimit log_rate;
        /* Devices being updated: their operations are held (protocol.h). */
        ProtocolDeviceHooks hooks;
        void *hooks_userdata;
        sd_event_source *resume_defer;
};

static const char *const protocol_device_state_table[_PROTOCOL_DEVICE_STATE_MAX] = {
        [PROTOCOL_DEVICE_CONNECTING] = "connecting",
        [PROTOCOL_DEVICE_CONNECTED] = "connected",
};

const char *protocol_device_state_to_string(ProtocolDeviceState s) {
        return s >= 0 && s < _PROTOCOL_DEVICE_STATE_MAX ? protocol_device_state_table[s] : NULL;
}

uint64_t protocol_messages_sent(const Protocol *p) {
        return p->messages_sent;
}

BtAddrType protocol_address_type(const char *bluez_type, const char *address) {
        unsigned top;

        if (streq_ptr(bluez_type, "public"))
                return BT_ADDR_TYPE_PUBLIC;
        if (!streq_ptr(bluez_type, "random"))
                return BT_ADDR_TYPE_UNSPECIFIED;
        /* A random address with the two top bits set is static (Core spec Vol 6 Part B §1.3.2.1). */
        if (!address || sscanf(address, "%2x", &top) != 1)
                return BT_ADDR_TYPE_RANDOM;
        return (top & 0xc0u) == 0xc0u ? BT_ADDR_TYPE_RANDOM_STATIC : BT_ADDR_TYPE_RANDOM;
}

static ProtocolDevice *protocol_find_device(Protocol *p, const char *address);
static void protocol_c2g_refuse(Protocol *p, const char *request_id, const char *cause);
static void protocol_held_free(ProtocolDevice *d, bool answer, Protocol *p);

/* The address of a g2c event, with its type when the device is known. */
static G2cDevice protocol_g2c_device(Protocol *p, const char *address) {
        ProtocolDevice *d = protocol_find_device(p, address);
        return (G2cDevice){ .address = address, .address_type = d ? d->address_type : BT_ADDR_TYPE_UNSPECIFIED };
}

/* ---- Sending ---- */

static G2cHeader protocol_header(Protocol *p, const char *request_id) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (G2cHeader){
                .gateway_id = p->gateway_id,
                .request_id = request_id,
                .message_id = ++p->message_id,
                .timestamp_usec = (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000,
        };
}

/* Takes the encoder's result r and payload; what fails here is logged here. */
static int protocol_publish(Protocol *p, OutboxClass class, int r, char *payload, const char *what) {
        _cleanup_free_ char *owned = payload;

        if (r < 0)
                return log_error_errno(r, "Failed to encode %s, not sent: %m", what);
        r = p->sink.publish_g2c(p->sink_impl, class, owned, strlen(owned));
        if (r == -EAGAIN) /* not paired: there is no g2c topic to send to */
                return log_debug_errno(r, "No g2c topic while not paired, %s dropped", what);
        if (r < 0) {
                log_ratelimited(&p->log_rate, LOG_WARNING, "Failed to queue %s for nRF Cloud, dropped: %s", what,
                                strerror(-r));
                return r;
        }
        p->messages_sent++;
        return 0;
}

static int protocol_send_error(Protocol *p, const char *request_id, const char *address, int code,
                               const char *format, ...) _printf_(5, 6);
static int protocol_send_error(Protocol *p, const char *request_id, const char *address, int code,
                               const char *format, ...) {
        char description[G2C_DESCRIPTION_MAX];
        G2cHeader h = protocol_header(p, request_id);
        char *json = NULL;
        va_list ap;
        int r;

        va_start(ap, format);
        (void) vsnprintf(description, sizeof description, format, ap);
        va_end(ap);
        log_ratelimited(&p->log_rate, LOG_INFO, "Answering request %s%s%s with an error: %s", strna(request_id),
                        address ? " on " : "", strempty(address), description);
        r = g2c_encode_error(&h, address, description, code, &json);
        return protocol_publish(p, OUTBOX_ANSWER, r, json, "an error event");
}

static int protocol_send_chrc(Protocol *p, OutboxClass class, G2cEventType type, const char *request_id,
                              const char *address, const char *svc, const char *chrc, const uint8_t *value,
                              size_t size) {
        G2cHeader h = protocol_header(p, request_id);
        G2cDevice dev = protocol_g2c_device(p, address);
        char *json = NULL;
        int r;

        r = g2c_encode_characteristic_value(&h, type, &dev, svc, chrc, value, size, &json);
        return protocol_publish(p, class, r, json, g2c_event_type_to_string(type));
}

static int protocol_send_desc(Protocol *p, G2cEventType type, const char *request_id, const char *address,
                              const char *svc, const char *chrc, const char *desc, const uint8_t *value,
                              size_t size) {
        G2cHeader h = protocol_header(p, request_id);
        G2cDevice dev = protocol_g2c_device(p, address);
        char *json = NULL;
        int r;

        r = g2c_encode_descriptor_value(&h, type, &dev, svc, chrc, desc, value, size, &json);
        return protocol_publish(p, OUTBOX_ANSWER, r, json, g2c_event_type_to_string(type));
}

/* ---- GATT model conversion ---- */

int protocol_convert_gatt(const BleGattModel *in, ProtocolCccValueFn ccc_value, void *userdata, GattModel **ret) {
        _cleanup_(gatt_model_freep) GattModel *m = NULL;
        int r;

        r = gatt_model_new(&m);
        if (r < 0)
                return r;
        for (size_t i = 0; in && i < in->n_services; i++) {
                const BleGattService *bs = &in->services[i];
                GattService *s;

                r = gatt_model_add_service(m, bs->uuid, bs->object_path, bs->primary, &s);
                if (r < 0)
                        return r;
                for (size_t j = 0; j < bs->n_chrcs; j++) {
                        const BleGattChrc *bc = &bs->chrcs[j];
                        GattCharacteristic *c;

                        /* BLE_CHRC_* and GattProperty are both the declaration's property bits. */
                        r = gatt_service_add_characteristic(s, bc->uuid, bc->object_path, bc->properties & 0xffu, &c);
                        if (r >= 0 && bc->value)
                                r = gatt_characteristic_set_value(c, bc->value, bc->value_size);
                        if (r < 0)
                                return r;
                        for (size_t k = 0; k < bc->n_descs; k++) {
                                const BleGattDesc *bd = &bc->descs[k];
                                GattDescriptor *d;
                                uint8_t v[2] = { 0, 0 };

                                r = gatt_characteristic_add_descriptor(c, bd->uuid, bd->object_path, &d);
                                if (r >= 0 && bd->value)
                                        r = gatt_descriptor_set_value(d, bd->value, bd->value_size);
                                if (r < 0)
                                        return r;
                                if (!streq(d->uuid, GATT_UUID_CCC))
                                        continue;
                                /* The CCC's value is what the gateway subscribed, not read. */
                                if (ccc_value)
                                        (void) ccc_value(s->uuid, c->uuid, v, userdata);
                                r = gatt_descriptor_set_value(d, v, sizeof v);
                                if (r < 0)
                                        return r;
                        }
                }
        }
        *ret = TAKE_PTR(m);
        return 0;
}

/* ---- Devices ---- */

static ProtocolDevice *protocol_find_device(Protocol *p, const char *address) {
        char a[BT_ADDR_STR_LEN + 1];

        if (!address || bt_addr_normalize(address, a) < 0)
                return NULL;
        for (ProtocolDevice *d = p->devices; d; d = d->next)
                if (streq(d->address, a))
                        return d;
        return NULL;
}

static void protocol_report_status(Protocol *p, const char *address, ConnectionStatus status) {
        ShadowConnectionStatus s = { .address = address, .status = status };
        int r;

        r = p->sink.report_connections(p->sink_impl, &s, 1);
        if (r < 0)
                log_warning_errno(r, "Failed to report statusConnections.%s = %s, ignoring: %m", address,
                                  connection_status_to_string(status));
}

static ConnectionStatus device_state_status(ProtocolDeviceState s) {
        switch (s) {
        case PROTOCOL_DEVICE_CONNECTING:
                return CONNECTION_STATUS_CONNECTING;
        case PROTOCOL_DEVICE_CONNECTED:
                return CONNECTION_STATUS_CONNECTED;
        case _PROTOCOL_DEVICE_STATE_MAX:
        case _PROTOCOL_DEVICE_STATE_INVALID:
                break;
        }
        return CONNECTION_STATUS_DISCONNECTED;
}

/* Logs old → new and reports reported.statusConnections.<addr>. */
static void protocol_device_enter_state(Protocol *p, ProtocolDevice *d, ProtocolDeviceState s) {
        if (d->state == s)
                return;
        log_fields(LOG_DEBUG, LOG_FIELDS({ "BT_ADDR", d->address }), "Device %s reported state %s -> %s", d->address,
                   protocol_device_state_to_string(d->state), protocol_device_state_to_string(s));
        d->state = s;
        protocol_report_status(p, d->address, device_state_status(s));
}

static int ccc_value_of(const char *svc, const char *chrc, uint8_t ret[2], void *userdata) {
        ProtocolDevice *d = userdata;

        for (size_t i = 0; i < d->n_ccc; i++)
                if (streq(d->ccc[i].service_uuid, svc) && streq(d->ccc[i].chrc_uuid, chrc)) {
                        ret[0] = d->ccc[i].mode == C2G_CCC_NOTIFY ? 1 : d->ccc[i].mode == C2G_CCC_INDICATE ? 2 : 0;
                        ret[1] = 0;
                        return 1;
                }
        return 0;
}

static void protocol_send_connection(Protocol *p, ProtocolDevice *d, bool connected) {
        G2cHeader h = protocol_header(p, NULL);
        G2cDevice dev = { .address = d->address, .address_type = d->address_type };
        char *json = NULL;
        int r;

        if (connected)
                r = g2c_encode_device_connect_result(&h, &dev, true, &json);
        else
                r = g2c_encode_device_disconnect(&h, &dev, &json);
        (void) protocol_publish(p, OUTBOX_STATUS, r, json, connected ? "device_connect_result" : "device_disconnect");
}

static int protocol_send_discover(Protocol *p, ProtocolDevice *d, const char *request_id) {
        G2cHeader h;
        G2cDevice dev = { .address = d->address, .address_type = d->address_type };
        char *json = NULL;
        int r;

        if (!d->model)
                return protocol_send_error(p, request_id, d->address, -ENODATA,
                                           "the GATT model of %s is not available", d->address);
        /* The CCC values follow the subscriptions made since the model was built. */
        for (size_t i = 0; i < d->model->n_services; i++) {
                GattService *s = d->model->services[i];
                for (size_t j = 0; j < s->n_characteristics; j++) {
                        GattCharacteristic *c = s->characteristics[j];
                        for (size_t k = 0; k < c->n_descriptors; k++) {
                                uint8_t v[2] = { 0, 0 };
                                if (!streq(c->descriptors[k]->uuid, GATT_UUID_CCC))
                                        continue;
                                (void) ccc_value_of(s->uuid, c->uuid, v, d);
                                (void) gatt_descriptor_set_value(c->descriptors[k], v, sizeof v);
                        }
                }
        }
        h = protocol_header(p, request_id);
        r = g2c_encode_device_discover_result(&h, &dev, d->model, &json);
        /* The one after each connection is the device's status; those asked for are answers. */
        return protocol_publish(p, request_id ? OUTBOX_ANSWER : OUTBOX_STATUS, r, json, "device_discover_result");
}

static void protocol_coalesce_drop_device(Protocol *p, const char *address);

static ProtocolDevice *protocol_device_free(Protocol *p, ProtocolDevice *d) {
        if (!d)
                return NULL;
        for (ProtocolDevice **pp = &p->devices; *pp; pp = &(*pp)->next)
                if (*pp == d) {
                        *pp = d->next;
                        p->n_devices--;
                        break;
                }
        protocol_coalesce_drop_device(p, d->address);
        protocol_held_free(d, false, p);
        gatt_model_free(d->model);
        free(d->ccc);
        free(d->discover_waiters);
        free(d);
        return NULL;
}

/* The device is no longer desired: tell the cloud, answer who waits. */
static void protocol_device_remove(Protocol *p, ProtocolDevice *d) {
        char address[BT_ADDR_STR_LEN + 1];

        log_fields(LOG_INFO, LOG_FIELDS({ "BT_ADDR", d->address }), "Device %s is no longer desired", d->address);
        if (d->state == PROTOCOL_DEVICE_CONNECTED)
                protocol_send_connection(p, d, false);
        for (size_t i = 0; i < d->n_discover_waiters; i++)
                (void) protocol_send_error(p, d->discover_waiters[i], d->address, -ECANCELED,
                                           "device %s was removed from desiredConnections", d->address);
        protocol_held_free(d, true, p);
        protocol_report_status(p, d->address, CONNECTION_STATUS_REMOVED);
        strcpy(address, d->address);
        protocol_device_free(p, d);
        /* A job updating it ends (it cannot be finished without the device). */
        if (p->hooks.removed)
                p->hooks.removed(p->hooks_userdata, address);
}

static int protocol_device_add(Protocol *p, const char *address) {
        ProtocolDevice *d;

        if (p->n_devices >= PROTOCOL_DEVICES_MAX)
                return -E2BIG;
        d = calloc(1, sizeof *d);
        if (!d)
                return -ENOMEM;
        (void) bt_addr_normalize(address, d->address);
        d->state = PROTOCOL_DEVICE_CONNECTING;
        d->next = p->devices;
        p->devices = d;
        p->n_devices++;
        /* The BLE layer tells the operator (its state transitions); once is enough. */
        log_fields(LOG_DEBUG, LOG_FIELDS({ "BT_ADDR", d->address }), "Device %s is desired, connecting", d->address);
        protocol_report_status(p, d->address, CONNECTION_STATUS_CONNECTING);
        return 0;
}

int protocol_set_desired(Protocol *p, const DesiredConnection *v, size_t n, bool known) {
        _cleanup_free_ char **addresses = NULL;
        size_t k = 0;
        int r;

        if (!known)
                n = 0;
        if (n > PROTOCOL_DEVICES_MAX) {
                log_warning("desiredConnections lists %zu devices, only the first %u are kept", n,
                            PROTOCOL_DEVICES_MAX);
                n = PROTOCOL_DEVICES_MAX;
        }
        for (ProtocolDevice *d = p->devices, *next; d; d = next) {
                bool keep = false;
                next = d->next;
                for (size_t i = 0; i < n && !keep; i++)
                        keep = strcasecmp(v[i].address, d->address) == 0;
                if (!keep)
                        protocol_device_remove(p, d);
        }
        addresses = calloc(n + 1, sizeof(char *));
        if (!addresses)
                return log_error_errno(ENOMEM, "Out of memory");
        for (size_t i = 0; i < n; i++) {
                if (!bt_addr_is_valid(v[i].address))
                        continue;
                if (!protocol_find_device(p, v[i].address)) {
                        r = protocol_device_add(p, v[i].address);
                        if (r < 0) {
                                log_error_errno(r, "Failed to add desired device %s, ignoring: %m", v[i].address);
                                continue;
                        }
                }
                addresses[k++] = (char *) v[i].address;
        }
        if (!p->ble)
                return 0;
        r = ble_manager_set_desired(p->ble, addresses);
        if (r < 0)
                return log_error_errno(r, "Failed to hand the desired connections to the BLE layer: %m");
        return 0;
}

void protocol_clear_stale_status(Protocol *p, const char (*addresses)[BT_ADDR_STR_LEN + 1], size_t n) {
        for (size_t i = 0; i < n; i++) {
                if (!bt_addr_is_valid(addresses[i]) || protocol_find_device(p, addresses[i]))
                        continue;
                log_fields(LOG_INFO, LOG_FIELDS({ "BT_ADDR", addresses[i] }),
                           "Removing the status of %s, which is not desired, from the shadow", addresses[i]);
                protocol_report_status(p, addresses[i], CONNECTION_STATUS_REMOVED);
        }
}

void protocol_device_state(Protocol *p, const char *address, const char *address_type, BleDeviceState old_state,
                           BleDeviceState new_state, const BleGattModel *gatt) {
        ProtocolDevice *d = protocol_find_device(p, address);
        GattModel *m = NULL;
        int r;

        (void) old_state;
        if (!d) {
                log_debug("State of %s, which is not desired, ignoring", strna(address));
                return;
        }
        if (address_type)
                d->address_type = protocol_address_type(address_type, d->address);
        switch (new_state) {
        case BLE_DEVICE_READY:
                r = protocol_convert_gatt(gatt, ccc_value_of, d, &m);
                if (r < 0)
                        log_fields_errno(LOG_ERR, r, LOG_FIELDS({ "BT_ADDR", d->address }),
                                         "Failed to convert the GATT model of %s, operations on it will fail: %m",
                                         d->address);
                gatt_model_free(d->model);
                d->model = m;
                protocol_device_enter_state(p, d, PROTOCOL_DEVICE_CONNECTED);
                protocol_send_connection(p, d, true);
                /* After every connection: the peripheral's firmware, and so its GATT
                 * database, may have changed (nRF Cloud's gateways do the same). */
                if (d->model)
                        (void) protocol_send_discover(p, d, NULL);
                for (size_t i = 0; i < d->n_discover_waiters; i++)
                        (void) protocol_send_discover(p, d, d->discover_waiters[i]);
                free(d->discover_waiters);
                d->discover_waiters = NULL;
                d->n_discover_waiters = 0;
                break;
        case BLE_DEVICE_IDLE:
        case BLE_DEVICE_CONNECTING:
        case BLE_DEVICE_RESOLVING:
        case BLE_DEVICE_BACKOFF:
                if (d->state == PROTOCOL_DEVICE_CONNECTED)
                        protocol_send_connection(p, d, false);
                protocol_device_enter_state(p, d, PROTOCOL_DEVICE_CONNECTING);
                break;
        case _BLE_DEVICE_STATE_MAX:
                break;
        }
}

/* ---- Notifications ---- */

static void protocol_send_notification(Protocol *p, const char *address, const char *svc, const char *chrc,
                                       const uint8_t *value, size_t size) {
        (void) protocol_send_chrc(p, OUTBOX_NOTIFICATION, G2C_EVENT_CHARACTERISTIC_VALUE_CHANGED, NULL, address, svc,
                                  chrc, value, size);
}

static ProtocolCoalesce *protocol_coalesce_free(ProtocolCoalesce *c) {
        if (!c)
                return NULL;
        sd_event_source_disable_unref(c->timer);
        free(c);
        return NULL;
}

static void protocol_coalesce_drop_device(Protocol *p, const char *address) {
        for (ProtocolCoalesce **pp = &p->coalesce; *pp;) {
                ProtocolCoalesce *c = *pp;
                if (streq(c->address, address)) {
                        *pp = c->next;
                        p->n_coalesce--;
                        protocol_coalesce_free(c);
                } else
                        pp = &c->next;
        }
}

static int on_coalesce_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        ProtocolCoalesce *c = userdata;
        (void) s;

        if (!c->pending)
                return 0;
        c->pending = false;
        c->last_sent = usec;
        protocol_send_notification(c->p, c->address, c->service_uuid, c->chrc_uuid, c->value, c->size);
        return 0;
}

static ProtocolCoalesce *protocol_coalesce_get(Protocol *p, const char *address, const char *svc, const char *chrc) {
        ProtocolCoalesce *c;

        for (c = p->coalesce; c; c = c->next)
                if (streq(c->chrc_uuid, chrc) && streq(c->service_uuid, svc) && streq(c->address, address))
                        return c;
        if (p->n_coalesce >= PROTOCOL_COALESCE_MAX)
                return NULL;
        if (strlen(svc) > UUID_STR_MAX || strlen(chrc) > UUID_STR_MAX || strlen(address) > BT_ADDR_STR_LEN)
                return NULL;
        c = calloc(1, sizeof *c);
        if (!c)
                return NULL;
        c->p = p;
        strcpy(c->address, address);
        strcpy(c->service_uuid, svc);
        strcpy(c->chrc_uuid, chrc);
        c->next = p->coalesce;
        p->coalesce = c;
        p->n_coalesce++;
        return c;
}

void protocol_notification(Protocol *p, const char *address, const char *service_uuid, const char *chrc_uuid,
                           const uint8_t *value, size_t size) {
        uint64_t interval = (uint64_t) p->config->notify_min_interval_ms * USEC_PER_MSEC, now;
        ProtocolDevice *d = protocol_find_device(p, address);
        ProtocolCoalesce *c;
        int r;

        if (!d) {
                log_debug("Notification of %s, which is not desired, ignoring", strna(address));
                return;
        }
        if (interval == 0 || size > GATT_VALUE_MAX) {
                protocol_send_notification(p, d->address, service_uuid, chrc_uuid, value, size);
                return;
        }
        c = protocol_coalesce_get(p, d->address, service_uuid, chrc_uuid);
        if (!c) {
                /* Over the cap (or out of memory): not coalesced, but not lost either. */
                protocol_send_notification(p, d->address, service_uuid, chrc_uuid, value, size);
                return;
        }
        now = now_usec(CLOCK_MONOTONIC);
        if (!c->pending && (c->last_sent == 0 || now >= c->last_sent + interval)) {
                c->last_sent = now;
                protocol_send_notification(p, d->address, service_uuid, chrc_uuid, value, size);
                return;
        }
        /* Within the interval: keep only the latest value, sent when it ends. */
        memcpy(c->value, value, size);
        c->size = size;
        if (c->pending)
                return;
        c->pending = true;
        if (!c->timer)
                r = sd_event_add_time(p->event, &c->timer, CLOCK_MONOTONIC, c->last_sent + interval, 0,
                                      on_coalesce_timer, c);
        else {
                r = sd_event_source_set_time(c->timer, c->last_sent + interval);
                if (r >= 0)
                        r = sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
        }
        if (r < 0) {
                log_warning_errno(r, "Failed to arm the coalescing timer, sending at once: %m");
                c->pending = false;
                c->last_sent = now;
                protocol_send_notification(p, d->address, service_uuid, chrc_uuid, value, size);
        }
}

/* ---- c2g operations ---- */

static ProtocolOp *protocol_op_free(ProtocolOp *op) {
        if (!op)
                return NULL;
        if (op->p) {
                if (op->prev)
                        op->prev->next = op->next;
                else
                        op->p->ops = op->next;
                if (op->next)
                        op->next->prev = op->prev;
                op->p->n_ops--;
                if (op->op.type == C2G_OP_SCAN)
                        op->p->n_scans--;
        }
        free(op);
        return NULL;
}

static ProtocolOp *protocol_op_new(Protocol *p, const C2gOperation *o) {
        ProtocolOp *op;

        if (p->n_ops >= PROTOCOL_OPS_MAX)
                return NULL;
        op = calloc(1, sizeof *op);
        if (!op)
                return NULL;
        op->p = p;
        op->op = *o;
        op->next = p->ops;
        if (p->ops)
                p->ops->prev = op;
        p->ops = op;
        p->n_ops++;
        if (o->type == C2G_OP_SCAN)
                p->n_scans++;
        return op;
}

/* The BLE layer's failure as an error event. */
static void protocol_send_op_error(Protocol *p, const ProtocolOp *op, const BleOpResult *res) {
        const C2gTarget *t = &op->op.target;

        if (res->error_message)
                (void) protocol_send_error(p, op->op.id, t->address, res->error,
                                           "%s failed: %s (%s)", c2g_op_type_to_string(op->op.type),
                                           res->error_message, strna(res->error_name));
        else
                (void) protocol_send_error(p, op->op.id, t->address, res->error, "%s failed: %s",
                                           c2g_op_type_to_string(op->op.type), strerror(-res->error));
}

/* A read or a write answers with its result event and then value_changed (spec §2.4, as nRF Cloud's UI expects). */
static void protocol_send_chrc_answer(Protocol *p, const ProtocolOp *op, G2cEventType result, const uint8_t *value,
                                      size_t len) {
        const C2gTarget *t = &op->op.target;

        (void) protocol_send_chrc(p, OUTBOX_ANSWER, result, op->op.id, t->address, t->service_uuid,
                                  t->characteristic_uuid, value, len);
        (void) protocol_send_chrc(p, OUTBOX_ANSWER, G2C_EVENT_CHARACTERISTIC_VALUE_CHANGED, op->op.id, t->address,
                                  t->service_uuid, t->characteristic_uuid, value, len);
}

/* The CCCD's value_changed is unsolicited in the captured nRF Cloud messages ("N/A"): only the
 * write result answers the request. */
static void protocol_send_desc_written(Protocol *p, const ProtocolOp *op, const uint8_t *value, size_t size) {
        const C2gTarget *t = &op->op.target;

        (void) protocol_send_desc(p, G2C_EVENT_DESCRIPTOR_VALUE_CHANGED,
                                  c2g_is_ccc_write(&op->op) ? NULL : op->op.id, t->address, t->service_uuid,
                                  t->characteristic_uuid, t->descriptor_uuid, value, size);
        (void) protocol_send_desc(p, G2C_EVENT_DESCRIPTOR_VALUE_WRITE_RESULT, op->op.id, t->address,
                                  t->service_uuid, t->characteristic_uuid, t->descriptor_uuid, value, size);
}

/* Remembers the subscription for discovery results (the BLE layer itself
 * re-applies it on every reconnect). */
static int protocol_device_remember_ccc(ProtocolDevice *d, const char *svc, const char *chrc, C2gCccMode mode) {
        for (size_t i = 0; i < d->n_ccc; i++)
                if (streq(d->ccc[i].service_uuid, svc) && streq(d->ccc[i].chrc_uuid, chrc)) {
                        d->ccc[i].mode = mode;
                        return 0;
                }
        if (d->n_ccc >= PROTOCOL_CCC_MAX)
                return -E2BIG;
        ProtocolCcc *n = reallocarray(d->ccc, d->n_ccc + 1, sizeof *n);
        if (!n)
                return -ENOMEM;
        d->ccc = n;
        strcpy(d->ccc[d->n_ccc].service_uuid, svc);
        strcpy(d->ccc[d->n_ccc].chrc_uuid, chrc);
        d->ccc[d->n_ccc++].mode = mode;
        return 0;
}

static void protocol_ccc_done(Protocol *p, const ProtocolOp *op) {
        const C2gTarget *t = &op->op.target;
        ProtocolDevice *d = protocol_find_device(p, t->address);
        uint8_t v[2] = { op->ccc_mode == C2G_CCC_NOTIFY ? 1 : op->ccc_mode == C2G_CCC_INDICATE ? 2 : 0, 0 };

        if (d)
                (void) protocol_device_remember_ccc(d, t->service_uuid, t->characteristic_uuid, op->ccc_mode);
        log_fields(LOG_INFO, LOG_FIELDS({ "BT_ADDR", t->address }), "Subscription of %s/%s on %s: %s",
                   t->service_uuid, t->characteristic_uuid, t->address, c2g_ccc_mode_to_string(op->ccc_mode));
        protocol_send_desc_written(p, op, v, sizeof v);
}

/* The answer of an attribute operation that succeeded: its events, in the order of spec §2.4. */
static void protocol_send_attr_answer(Protocol *p, const ProtocolOp *op, const BleOpResult *res) {
        const C2gTarget *t = &op->op.target;
        C2gOpType type = op->op.type;

        if (type == C2G_OP_CHARACTERISTIC_READ)
                protocol_send_chrc_answer(p, op, G2C_EVENT_CHARACTERISTIC_VALUE_READ_RESULT, res->value, res->size);
        else if (type == C2G_OP_CHARACTERISTIC_WRITE)
                protocol_send_chrc_answer(p, op, G2C_EVENT_CHARACTERISTIC_VALUE_WRITE_RESULT, op->op.value,
                                          op->op.value_len);
        else if (type == C2G_OP_DESCRIPTOR_READ)
                (void) protocol_send_desc(p, G2C_EVENT_DESCRIPTOR_VALUE_READ_RESULT, op->op.id, t->address,
                                          t->service_uuid, t->characteristic_uuid, t->descriptor_uuid, res->value,
                                          res->size);
        else if (type == C2G_OP_DESCRIPTOR_WRITE && c2g_is_ccc_write(&op->op))
                protocol_ccc_done(p, op);
        else if (type == C2G_OP_DESCRIPTOR_WRITE)
                protocol_send_desc_written(p, op, op->op.value, op->op.value_len);
}

/* Where every read, write and subscription of an attribute ends: an error event carrying the
 * request id, or the answer.  Without its Protocol (freed meanwhile) the operation just ends. */
static void on_attr_done(BleDevice *bd, const BleOpResult *res, void *userdata) {
        ProtocolOp *op = userdata;
        (void) bd;

        if (op->p && res->error < 0)
                protocol_send_op_error(op->p, op, res);
        else if (op->p)
                protocol_send_attr_answer(op->p, op, res);
        protocol_op_free(op);
}

static bool scan_result_passes(const C2gScan *s, const BleScanResult *r) {
        if (s->has_filter_rssi && (!r->has_rssi || r->rssi < s->filter_rssi))
                return false;
        if (s->filter_name[0] && !streq_ptr(r->name, s->filter_name))
                return false;
        return true;
}

/* The codec's view of a scan result's advertisement; the entries live in the struct. */
typedef struct ProtocolAdvertisement {
        G2cAdvertisement ad;
        G2cAdEntry mfr[BLE_ADV_ENTRIES_MAX], svc[BLE_ADV_ENTRIES_MAX], raw[BLE_ADV_ENTRIES_MAX];
} ProtocolAdvertisement;

static void scan_advertisement(const BleScanResult *r, ProtocolAdvertisement *a) {
        size_t n_uuids = 0;

        while (r->uuids && r->uuids[n_uuids])
                n_uuids++;
        *a = (ProtocolAdvertisement){ 0 };
        a->ad = (G2cAdvertisement){
                .flags = r->advertising_flags,
                .service_uuids = (const char *const *) r->uuids,
                .n_service_uuids = MIN(n_uuids, (size_t) G2C_AD_ENTRIES_MAX),
                .local_name = r->name,
                .has_tx_power = r->has_tx_power,
                .tx_power = r->tx_power,
                .manufacturer_data = a->mfr,
                .service_data = a->svc,
                .raw = a->raw,
        };
        for (size_t i = 0; i < r->manufacturer_data.n && i < BLE_ADV_ENTRIES_MAX; i++)
                a->mfr[a->ad.n_manufacturer_data++] = (G2cAdEntry){
                        .key = r->manufacturer_data.items[i].company,
                        .data = r->manufacturer_data.items[i].data.data,
                        .size = r->manufacturer_data.items[i].data.size,
                };
        for (size_t i = 0; i < r->service_data.n && i < BLE_ADV_ENTRIES_MAX; i++)
                a->svc[a->ad.n_service_data++] = (G2cAdEntry){
                        .uuid = r->service_data.items[i].uuid,
                        .data = r->service_data.items[i].data.data,
                        .size = r->service_data.items[i].data.size,
                };
        /* An AD structure holds at most 254 bytes after its type: a larger one cannot be real. */
        for (size_t i = 0; i < r->advertising_data.n && i < BLE_ADV_ENTRIES_MAX; i++)
                if (r->advertising_data.items[i].data.size <= 254)
                        a->raw[a->ad.n_raw++] = (G2cAdEntry){
                                .key = r->advertising_data.items[i].company,
                                .data = r->advertising_data.items[i].data.data,
                                .size = r->advertising_data.items[i].data.size,
                        };
}

/* What a beacon scan reports: advertisers that broadcast data. */
static bool scan_result_broadcasts(const BleScanResult *r) {
        return r->manufacturer_data.n > 0 || r->service_data.n > 0 || r->advertising_data.n > 0;
}

static G2cScanDevice scan_device(const BleScanResult *r, const ProtocolAdvertisement *a) {
        BtAddrType type = protocol_address_type(r->address_type, r->address);

        return (G2cScanDevice){
                .device = { .address = r->address, .address_type = type < 0 ? BT_ADDR_TYPE_UNSPECIFIED : type },
                .has_rssi = r->has_rssi,
                .rssi = r->rssi,
                .name = r->name,
                .advertisement = a ? &a->ad : NULL,
        };
}

static void protocol_send_scan(Protocol *p, const ProtocolOp *op, bool timeout, const G2cScanDevice *v, size_t n) {
        G2cHeader h = protocol_header(p, op->op.id);
        char *json = NULL;
        int r;

        r = g2c_encode_scan_result(&h, op->op.scan.reporting, timeout, v, n, &json);
        (void) protocol_publish(p, OUTBOX_NOTIFICATION, r, json, "scan_result");
}

static void on_scan_done(BleManager *m, int error, const BleScanResult *results, size_t n, void *userdata) {
        ProtocolOp *op = userdata;
        Protocol *p = op->p;
        const C2gScan *s = &op->op.scan;
        bool beacon = s->type == C2G_SCAN_TYPE_BEACON;
        _cleanup_free_ G2cScanDevice *v = NULL;
        _cleanup_free_ ProtocolAdvertisement *ads = NULL;
        size_t k = 0;
        (void) m;

        if (!p)
                goto done;
        if (error < 0) {
                (void) protocol_send_error(p, op->op.id, NULL, error, "scan failed: %s", strerror(-error));
                goto done;
        }
        v = calloc(n + 1, sizeof *v);
        if (beacon)
                ads = calloc(n + 1, sizeof *ads);
        if (!v || (beacon && !ads)) {
                (void) protocol_send_error(p, op->op.id, NULL, -ENOMEM, "scan failed: out of memory");
                goto done;
        }
        for (size_t i = 0; i < n; i++) {
                if (!scan_result_passes(s, &results[i]) || (beacon && !scan_result_broadcasts(&results[i])))
                        continue;
                if (beacon)
                        scan_advertisement(&results[i], &ads[k]);
                v[k] = scan_device(&results[i], beacon ? &ads[k] : NULL);
                k++;
        }
        log_info("Scan %s done: %zu device(s) seen, %zu after the filters", op->op.id, n, k);
        switch (s->reporting) {
        case C2G_SCAN_REPORTING_INSTANT:
                for (size_t i = 0; i < k; i++)
                        protocol_send_scan(p, op, false, &v[i], 1);
                protocol_send_scan(p, op, true, NULL, 0);
                break;
        case C2G_SCAN_REPORTING_BATCH:
                protocol_send_scan(p, op, true, v, k);
                break;
        case _C2G_SCAN_REPORTING_MAX:
        case _C2G_SCAN_REPORTING_INVALID:
                break;
        }
done:
        protocol_op_free(op);
}

static void protocol_op_scan(Protocol *p, const C2gOperation *o) {
        const C2gScan *s = &o->scan;
        ProtocolOp *op;
        int r;

        if (!p->ble) {
                (void) protocol_send_error(p, o->id, NULL, -ENODEV, "scan: Bluetooth is not available");
                return;
        }
        if (p->n_scans >= PROTOCOL_SCANS_MAX) {
                (void) protocol_send_error(p, o->id, NULL, -EBUSY, "scan: %u scans are already waiting",
                                           PROTOCOL_SCANS_MAX);
                return;
        }
        if (s->defaulted)
                log_warning("Scan %s: %s%s%s%scould not be used, running with the default%s", o->id,
                            s->defaulted & C2G_SCAN_DEFAULTED_TIMEOUT ? "scanTimeout " : "",
                            s->defaulted & C2G_SCAN_DEFAULTED_INTERVAL ? "scanInterval " : "",
                            s->defaulted & C2G_SCAN_DEFAULTED_MODE ? "scanMode " : "",
                            s->defaulted & C2G_SCAN_DEFAULTED_REPORTING ? "scanReporting " : "",
                            (s->defaulted & (s->defaulted - 1)) ? "s" : "");
        if (s->mode == C2G_SCAN_MODE_PASSIVE)
                log_info("Scan %s asks for a passive scan; BlueZ discovery scans actively", o->id);
        op = protocol_op_new(p, o);
        if (!op) {
                (void) protocol_send_error(p, o->id, NULL, -ENOBUFS, "scan: too many operations in progress");
                return;
        }
        r = ble_manager_scan(p->ble, (uint64_t) s->timeout_sec * USEC_PER_SEC, on_scan_done, op);
        if (r < 0) {
                protocol_op_free(op);
                (void) protocol_send_error(p, o->id, NULL, r, "scan could not start: %s", strerror(-r));
                return;
        }
        log_info("Scanning for %us for request %s%s", s->timeout_sec, o->id,
                 s->type == C2G_SCAN_TYPE_BEACON ? " (beacons: advertisers that broadcast data)" : "");
}

int protocol_set_beacons(Protocol *p, const char (*addresses)[BT_ADDR_STR_LEN + 1], size_t n) {
        _cleanup_free_ char **list = NULL;
        int r;

        if (!p->ble)
                return n > 0 ? -ENODEV : 0;
        list = calloc(n + 1, sizeof *list);
        if (!list)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                list[i] = (char *) addresses[i];
        r = ble_manager_set_beacons(p->ble, list);
        if (r < 0)
                return log_warning_errno(r, "Failed to watch the %zu beacon(s) of the shadow: %m", n);
        return 0;
}

void protocol_beacon(Protocol *p, const BleScanResult *r) {
        _cleanup_free_ ProtocolAdvertisement *a = malloc(sizeof *a);
        G2cHeader h = protocol_header(p, NULL);
        G2cScanDevice d;
        char *json = NULL;
        int e;

        if (!a)
                return (void) log_warning_errno(-ENOMEM, "Failed to report beacon %s: %m", r->address);
        scan_advertisement(r, a);
        d = scan_device(r, a);
        e = g2c_encode_scan_result(&h, C2G_SCAN_REPORTING_INSTANT, false, &d, 1, &json);
        (void) protocol_publish(p, OUTBOX_NOTIFICATION, e, json, "scan_result");
}

static void protocol_op_discover(Protocol *p, ProtocolDevice *d, const C2gOperation *o) {
        if (d->state == PROTOCOL_DEVICE_CONNECTED && d->model) {
                (void) protocol_send_discover(p, d, o->id);
                return;
        }
        /* Not ready: answered when the device is (discovery runs as part of connecting). */
        if (d->n_discover_waiters >= PROTOCOL_DISCOVER_WAITERS_MAX) {
                (void) protocol_send_error(p, o->id, d->address, -EBUSY,
                                           "device_discover: %u requests for %s are already waiting",
                                           PROTOCOL_DISCOVER_WAITERS_MAX, d->address);
                return;
        }
        void *n = reallocarray(d->discover_waiters, d->n_discover_waiters + 1, sizeof d->discover_waiters[0]);
        if (!n) {
                (void) protocol_send_error(p, o->id, d->address, -ENOMEM, "device_discover: out of memory");
                return;
        }
        d->discover_waiters = n;
        strcpy(d->discover_waiters[d->n_discover_waiters++], o->id);
        log_info("device_discover %s waits for %s to connect", o->id, d->address);
}

/* Checks the attribute an operation addresses.  Returns the characteristic, or NULL after answering. */
static const GattCharacteristic *protocol_op_chrc(Protocol *p, ProtocolDevice *d, const C2gOperation *o) {
        const C2gTarget *t = &o->target;
        const GattCharacteristic *c = gatt_model_find_characteristic(d->model, t->service_uuid,
                                                                     t->characteristic_uuid);

        if (!c) {
                (void) protocol_send_error(p, o->id, d->address, -ENOENT,
                                           "characteristicUUID: %s not found in service %s of %s",
                                           t->characteristic_uuid, t->service_uuid, d->address);
                return NULL;
        }
        if (o->type == C2G_OP_DESCRIPTOR_READ ||
            (o->type == C2G_OP_DESCRIPTOR_WRITE && !streq(t->descriptor_uuid, GATT_UUID_CCC))) {
                if (!gatt_model_find_descriptor(d->model, t->service_uuid, t->characteristic_uuid,
                                                t->descriptor_uuid)) {
                        (void) protocol_send_error(p, o->id, d->address, -ENOENT,
                                                   "descriptorUUID: %s not found in %s/%s of %s", t->descriptor_uuid,
                                                   t->service_uuid, t->characteristic_uuid, d->address);
                        return NULL;
                }
        }
        return c;
}

static void protocol_op_attribute(Protocol *p, ProtocolDevice *d, const C2gOperation *o) {
        const C2gTarget *t = &o->target;
        const GattCharacteristic *c;
        BleDevice *bd;
        ProtocolOp *op;
        C2gCccMode mode = C2G_CCC_OFF;
        int r = 0;

        c = protocol_op_chrc(p, d, o);
        if (!c)
                return;
        if (o->type == C2G_OP_CHARACTERISTIC_READ && !(c->properties & GATT_PROP_READ)) {
                (void) protocol_send_error(p, o->id, d->address, -EPERM, "characteristic %s/%s is not readable",
                                           t->service_uuid, t->characteristic_uuid);
                return;
        }
        if (o->type == C2G_OP_CHARACTERISTIC_WRITE &&
            !(c->properties & (GATT_PROP_WRITE | GATT_PROP_WRITE_WITHOUT_RESPONSE))) {
                (void) protocol_send_error(p, o->id, d->address, -EPERM, "characteristic %s/%s is not writable",
                                           t->service_uuid, t->characteristic_uuid);
                return;
        }
        if (c2g_is_ccc_write(o)) {
                r = c2g_ccc_mode(o->value, o->value_len, &mode);
                if (r < 0) {
                        (void) protocol_send_error(p, o->id, d->address, r,
                                                   "descriptorValue: not a CCC value ([1,0], [2,0] or [0,0])");
                        return;
                }
                if ((mode == C2G_CCC_NOTIFY && !(c->properties & GATT_PROP_NOTIFY)) ||
                    (mode == C2G_CCC_INDICATE && !(c->properties & GATT_PROP_INDICATE))) {
                        (void) protocol_send_error(p, o->id, d->address, -EOPNOTSUPP,
                                                   "characteristic %s/%s does not support %s", t->service_uuid,
                                                   t->characteristic_uuid, c2g_ccc_mode_to_string(mode));
                        return;
                }
        }
        bd = p->ble ? ble_manager_get_device(p->ble, d->address) : NULL;
        if (!bd) {
                (void) protocol_send_error(p, o->id, d->address, -ENOTCONN, "%s: Bluetooth is not available",
                                           c2g_op_type_to_string(o->type));
                return;
        }
        op = protocol_op_new(p, o);
        if (!op) {
                protocol_c2g_refuse(p, o->id, "the gateway's operations in progress are at their limit");
                return;
        }
        op->ccc_mode = mode;
        switch (o->type) {
        case C2G_OP_CHARACTERISTIC_READ:
                r = ble_device_read(bd, t->service_uuid, t->characteristic_uuid, on_attr_done, op);
                break;
        case C2G_OP_CHARACTERISTIC_WRITE:
                r = ble_device_write(bd, t->service_uuid, t->characteristic_uuid, o->value, o->value_len,
                                     BLE_WRITE_AUTO, on_attr_done, op);
                break;
        case C2G_OP_DESCRIPTOR_READ:
                r = ble_device_read_descriptor(bd, t->service_uuid, t->characteristic_uuid, t->descriptor_uuid,
                                               on_attr_done, op);
                break;
        case C2G_OP_DESCRIPTOR_WRITE:
                if (c2g_is_ccc_write(o)) {
                        r = ble_device_set_notify(bd, t->service_uuid, t->characteristic_uuid, mode != C2G_CCC_OFF,
                                                  on_attr_done, op);
                        if (r == 1) {
                                /* Only the wish was recorded (not READY): applied on connection. */
                                protocol_ccc_done(p, op);
                                protocol_op_free(op);
                                return;
                        }
                } else
                        r = ble_device_write_descriptor(bd, t->service_uuid, t->characteristic_uuid,
                                                        t->descriptor_uuid, o->value, o->value_len, on_attr_done,
                                                        op);
                break;
        case C2G_OP_SCAN:
        case C2G_OP_DEVICE_DISCOVER:
        case C2G_OP_GET_GATEWAY_STATUS:
        case C2G_OP_DELETE_YOURSELF:
        case _C2G_OP_MAX:
        case _C2G_OP_INVALID:
                r = -EINVAL;
                break;
        }
        if (r == -ENOBUFS && !c2g_is_ccc_write(o)) {
                /* The device's queue is full: the cloud sends faster than the device answers. */
                char cause[64];

                protocol_op_free(op);
                (void) snprintf(cause, sizeof cause, "the queue of %s is full", d->address);
                protocol_c2g_refuse(p, o->id, cause);
        } else if (r < 0) {
                protocol_op_free(op);
                (void) protocol_send_error(p, o->id, d->address, r, "%s: %s", c2g_op_type_to_string(o->type),
                                           strerror(-r));
        }
}

static void protocol_op_delete(Protocol *p, const C2gOperation *o) {
        log_notice("nRF Cloud asked the gateway to delete itself (request %s): disconnecting every device", o->id);
        (void) protocol_set_desired(p, NULL, 0, false);
        if (p->sink.unpair)
                p->sink.unpair(p->sink_impl, "delete_yourself operation");
}

/* ---- Operations of a device being updated (protocol.h) ---- */

static bool protocol_device_busy(Protocol *p, ProtocolDevice *d) {
        return p->hooks.busy && p->hooks.busy(p->hooks_userdata, d->address);
}

/* Drops the held operations; answer: each with an error event (the device was removed). */
static void protocol_held_free(ProtocolDevice *d, bool answer, Protocol *p) {
        while (d->held) {
                ProtocolHeld *h = d->held;
                d->held = h->next;
                if (answer)
                        (void) protocol_send_error(p, h->op.id, d->address, -ECANCELED,
                                                   "%s: device %s was removed from desiredConnections",
                                                   c2g_op_type_to_string(h->op.type), d->address);
                free(h);
        }
        d->held_tail = NULL;
        d->n_held = 0;
}

static void protocol_run(Protocol *p, const C2gOperation *o);

/* Runs the held operations of every device no longer busy, oldest first. */
static int on_resume_defer(sd_event_source *s, void *userdata) {
        Protocol *p = userdata;
        (void) s;

        for (ProtocolDevice *d = p->devices; d; d = d->next) {
                ProtocolHeld *list;
                size_t n = d->n_held;

                if (n == 0 || protocol_device_busy(p, d))
                        continue;
                list = d->held;
                d->held = d->held_tail = NULL;
                d->n_held = 0;
                log_fields(LOG_INFO, LOG_FIELDS({ "BT_ADDR", d->address }),
                           "Running the %zu c2g operation(s) held for %s during its update", n, d->address);
                /* Each runs as if it came now: checked against the device's state and model after the
                 * update, answered with its request id.  None is held again (not busy, none held). */
                while (list) {
                        ProtocolHeld *h = list;
                        list = h->next;
                        protocol_run(p, &h->op);
                        free(h);
                }
        }
        return 0;
}

static void protocol_schedule_resume(Protocol *p) {
        int r;

        r = p->resume_defer ? sd_event_source_set_enabled(p->resume_defer, SD_EVENT_ONESHOT)
                            : sd_event_add_defer(p->event, &p->resume_defer, on_resume_defer, p); /* one-shot */
        if (r < 0)
                log_error_errno(r, "Failed to schedule the operations held during an update, they wait: %m");
}

/* While the device is updated, or earlier operations of it still wait: the operation is held
 * (or answered, over the bound).  Returns true if so. */
static bool protocol_hold(Protocol *p, ProtocolDevice *d, const C2gOperation *o) {
        bool busy = protocol_device_busy(p, d);
        ProtocolHeld *h;

        if (d->n_held == 0 && !busy)
                return false;
        if (!busy)
                protocol_schedule_resume(p); /* the update ended: they run in order, this one last */
        if (d->n_held >= PROTOCOL_HELD_MAX) {
                (void) protocol_send_error(p, o->id, d->address, -EBUSY,
                                           "%s: device %s is being updated and %u operations already wait for it",
                                           c2g_op_type_to_string(o->type), d->address, PROTOCOL_HELD_MAX);
                return true;
        }
        h = calloc(1, sizeof *h);
        if (!h) {
                (void) protocol_send_error(p, o->id, d->address, -ENOMEM, "%s: out of memory",
                                           c2g_op_type_to_string(o->type));
                return true;
        }
        h->op = *o;
        if (d->held_tail)
                d->held_tail->next = h;
        else
                d->held = h;
        d->held_tail = h;
        d->n_held++;
        log_ratelimited(&p->log_rate, LOG_INFO, "c2g operation %s (%s) for %s waits: the device is being updated",
                        o->id, c2g_op_type_to_string(o->type), d->address);
        return true;
}

void protocol_set_device_hooks(Protocol *p, const ProtocolDeviceHooks *hooks, void *userdata) {
        p->hooks = hooks ? *hooks : (ProtocolDeviceHooks){};
        p->hooks_userdata = userdata;
}

void protocol_device_resume(Protocol *p, const char *address) {
        ProtocolDevice *d = p ? protocol_find_device(p, address) : NULL;

        if (d && d->n_held > 0)
                protocol_schedule_resume(p);
}

static void protocol_run(Protocol *p, const C2gOperation *o) {
        ProtocolDevice *d;

        switch (o->type) {
        case C2G_OP_SCAN:
                protocol_op_scan(p, o);
                return;
        case C2G_OP_GET_GATEWAY_STATUS:
                /* No Nordic gateway answers it, and no g2c event type exists for it (spec §2.3, §2.4). */
                log_debug("get_gateway_status %s: not answered, as nRF Cloud's own gateways do", o->id);
                return;
        case C2G_OP_DELETE_YOURSELF:
                protocol_op_delete(p, o);
                return;
        case C2G_OP_DEVICE_DISCOVER:
        case C2G_OP_CHARACTERISTIC_READ:
        case C2G_OP_CHARACTERISTIC_WRITE:
        case C2G_OP_DESCRIPTOR_READ:
        case C2G_OP_DESCRIPTOR_WRITE:
                break;
        case _C2G_OP_MAX:
        case _C2G_OP_INVALID:
                return;
        }

        d = protocol_find_device(p, o->target.address);
        if (!d) {
                (void) protocol_send_error(p, o->id, o->target.address, -ENOENT,
                                           "deviceAddress: %s is not a device of this gateway (not in "
                                           "desiredConnections)",
                                           o->target.address);
                return;
        }
        if (protocol_hold(p, d, o))
                return;
        if (o->type == C2G_OP_DEVICE_DISCOVER) {
                protocol_op_discover(p, d, o);
                return;
        }
        if (d->state != PROTOCOL_DEVICE_CONNECTED || !d->model) {
                (void) protocol_send_error(p, o->id, d->address, -ENOTCONN, "deviceAddress: %s is not connected",
                                           d->address);
                return;
        }
        protocol_op_attribute(p, d, o);
}

/* The end of a burst of refused operations: none refused for C2G_BURST_QUIET_USEC.  One warning with the
 * count, and the memory the burst took (answers acknowledged meanwhile, the MQTT client's buffers) goes
 * back to the system: glibc keeps freed heap otherwise. */
static int on_c2g_burst_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Protocol *p = userdata;

        if (usec < p->c2g_last_refusal + C2G_BURST_QUIET_USEC)
                return sd_event_source_set_time(s, p->c2g_last_refusal + C2G_BURST_QUIET_USEC) < 0 ? 0 :
                       sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        log_warning("Refused %" PRIu64 " c2g operation(s) over [Cloud] C2gRateMax=%u per second or over what "
                    "the BLE devices can queue, in %.1fs",
                    p->c2g_refused, p->config->c2g_rate_max,
                    (double) (p->c2g_last_refusal - p->c2g_burst_begin) / (double) USEC_PER_SEC);
        p->c2g_refused = 0;
        p->c2g_last_refusal = 0;
        (void) malloc_trim(0);
        return 0;
}

/* Refuses an operation (request_id may be NULL) because of a flood; cause says what is full.  An
 * operation refused so is answered only when no error event about refusals went out for
 * C2G_REFUSAL_EVENT_INTERVAL_USEC, and that event counts those refused in between (spec §2.4
 * "error", as any refused operation): a flood makes a bounded number of answers per interval, and
 * how fast the daemon works through it does not change that number. */
static void protocol_c2g_refuse(Protocol *p, const char *request_id, const char *cause) {
        uint64_t now = now_usec(CLOCK_MONOTONIC), unanswered;
        int r;

        if (p->c2g_refused++ == 0)
                p->c2g_burst_begin = now;
        p->c2g_last_refusal = now;
        if (!p->c2g_burst_timer)
                r = sd_event_add_time(p->event, &p->c2g_burst_timer, CLOCK_MONOTONIC, now + C2G_BURST_QUIET_USEC,
                                      0, on_c2g_burst_timer, p);
        else if (sd_event_source_get_enabled(p->c2g_burst_timer, NULL) > 0)
                r = 0; /* armed: it looks at c2g_last_refusal when it fires */
        else {
                r = sd_event_source_set_time(p->c2g_burst_timer, now + C2G_BURST_QUIET_USEC);
                if (r >= 0)
                        r = sd_event_source_set_enabled(p->c2g_burst_timer, SD_EVENT_ONESHOT);
        }
        if (r < 0)
                log_warning_errno(r, "Failed to arm the c2g burst timer, ignoring: %m");

        p->c2g_error_rate.interval_usec = C2G_REFUSAL_EVENT_INTERVAL_USEC;
        p->c2g_error_rate.burst = 1;
        if (!ratelimit_below(&p->c2g_error_rate, now, &unanswered))
                return;
        (void) protocol_send_error(p, request_id, NULL, -EBUSY,
                                   "too many operations: %s; %" PRIu64 " refused since the last such error, "
                                   "this one included; those refused in the next %us are not answered",
                                   cause, unanswered + 1,
                                   (unsigned) (C2G_REFUSAL_EVENT_INTERVAL_USEC / USEC_PER_SEC));
}

/* Whether the operation (request_id may be NULL) may run now; if not, it is refused. */
static bool protocol_c2g_admit(Protocol *p, const char *request_id) {
        char cause[64];

        p->c2g_rate.interval_usec = USEC_PER_SEC;
        p->c2g_rate.burst = p->config->c2g_rate_max; /* read each time: a reload applies at once */
        if (ratelimit_below(&p->c2g_rate, now_usec(CLOCK_MONOTONIC), NULL))
                return true;
        (void) snprintf(cause, sizeof cause, "over %u per second", p->config->c2g_rate_max);
        protocol_c2g_refuse(p, request_id, cause);
        return false;
}

void protocol_handle_c2g(Protocol *p, const uint8_t *payload, size_t len) {
        C2gOperation o;
        C2gError e;
        G2cHeader h;
        char *json = NULL;
        int r;

        r = c2g_decode(payload, len, &o, &e);
        if (r < 0) {
                if (!protocol_c2g_admit(p, e.has_id ? e.id : NULL))
                        return;
                log_ratelimited(&p->log_rate, LOG_WARNING, "Refusing a c2g message of %zu bytes: %s%s%s", len,
                                e.error.field, e.error.field[0] ? ": " : "", e.error.description);
                h = protocol_header(p, NULL);
                r = g2c_encode_c2g_error(&h, &e, r, &json);
                (void) protocol_publish(p, OUTBOX_ANSWER, r, json, "an error event");
                return;
        }
        switch ((C2gMessageKind) r) {
        case C2G_MESSAGE_OPERATION:
                if (!protocol_c2g_admit(p, o.id))
                        return;
                log_debug("c2g operation %s (%s)", c2g_op_type_to_string(o.type), o.id);
                protocol_run(p, &o);
                break;
        case C2G_MESSAGE_DISCON:
                /* The cloud session handles DISCON before us; nothing arrives here. */
                log_debug("DISCON on c2g, handled by the cloud session");
                break;
        case _C2G_MESSAGE_KIND_MAX:
        case _C2G_MESSAGE_KIND_INVALID:
                break;
        }
}

/* ---- Lifetime ---- */

int protocol_new(sd_event *event, const Config *config, const char *gateway_id, BleManager *ble,
                 const ProtocolSink *sink, void *sink_impl, Protocol **ret) {
        _cleanup_(protocol_freep) Protocol *p = NULL;

        if (!event || !config || !gateway_id || !sink || !sink->publish_g2c || !sink->report_connections || !ret)
                return -EINVAL;
        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->event = sd_event_ref(event);
        p->config = config;
        p->gateway_id = strdup(gateway_id);
        if (!p->gateway_id)
                return -ENOMEM;
        p->ble = ble;
        p->sink = *sink;
        p->sink_impl = sink_impl;
        p->log_rate = (RateLimit){ .interval_usec = 10 * USEC_PER_SEC, .burst = 20 };
        *ret = TAKE_PTR(p);
        return 0;
}

Protocol *protocol_free(Protocol *p) {
        if (!p)
                return NULL;
        /* The BLE layer still owns the callbacks of pending operations. */
        for (ProtocolOp *op = p->ops, *next; op; op = next) {
                next = op->next;
                op->p = NULL;
                op->prev = op->next = NULL;
        }
        while (p->devices)
                protocol_device_free(p, p->devices);
        while (p->coalesce) {
                ProtocolCoalesce *c = p->coalesce;
                p->coalesce = c->next;
                protocol_coalesce_free(c);
        }
        sd_event_source_disable_unref(p->c2g_burst_timer);
        sd_event_source_disable_unref(p->resume_defer);
        sd_event_unref(p->event);
        free(p->gateway_id);
        free(p);
        return NULL;
}
