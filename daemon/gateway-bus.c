/* SPDX-License-Identifier: MIT */
/*
 * The daemon's D-Bus API (docs/dbus-api.md), on its own connection to the
 * system bus, on the daemon's loop.  As in systemd's hostnamed-bus.c, this
 * file only shows what the gateway's objects hold: the managers do not know
 * D-Bus.  Each interface is one fill function (bus-props.c); the gateway
 * says "changed", the values are computed again, and PropertiesChanged
 * carries the names whose value differs from the last one announced.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <strings.h>

#include "at-line.h"
#include "bus-props.h"
#include "gateway-bus.h"
#include "gateway.h"
#include "location-manager.h"
#include "log.h"
#include "modem.h"
#include "fota-manager.h"
#include "util.h"
#include "version.h"

#define SIGNAL_REFRESH_USEC (60u * 1000000u) /* AT+CESQ at most once a minute */
#define CESQ_TIMEOUT_USEC (5u * 1000000u)
#define COUNTERS_INTERVAL_USEC (1000000u)
#define SCAN_SECONDS_MAX 60u
#define PROPS_MAX 16

/* A property signalled on change, and one that is not (const, or read when asked). */
#define P(n) { .name = n, .quiet = false }
#define Q(n) { .name = n, .quiet = true }

enum { IFACE_GATEWAY, IFACE_MODEM, IFACE_OUTBOX, IFACE_FOTA, IFACE_LOCATION, _IFACE_MAX };

typedef struct BusDevice BusDevice;
struct BusDevice {
        GatewayBus *bus;
        BusDevice *next;
        char address[BLE_ADDR_STR_MAX];
        char *path;
        BusValue last[PROPS_MAX];
        uint64_t notifications;
        uint64_t last_notification_usec;
        const char *last_error;
        bool seen;
};

typedef struct BusScan BusScan;
struct BusScan {
        GatewayBus *bus;
        BusScan *next;
        sd_bus_message *call;
};

struct GatewayBus {
        Gateway *gateway;
        sd_bus *bus; /* NULL: the system bus could not be reached */
        sd_bus_slot *slots[_IFACE_MAX];
        sd_bus_slot *device_slot, *enumerator_slot, *manager_slot, *name_slot;
        BusValue last[_IFACE_MAX][PROPS_MAX];
        bool filled;
        sd_event_source *flush_defer;
        sd_event_source *counters_timer;

        uint64_t cloud_since_usec;

        int32_t rsrp, rsrq; /* dBm, tenths of a dB */
        uint64_t signal_usec; /* CLOCK_REALTIME of the last answer */
        uint64_t signal_asked_usec; /* CLOCK_MONOTONIC of the last AT+CESQ */
        bool cesq_pending;

        BusDevice *devices;
        BusScan *scans;
};

/* One errno → D-Bus error table (docs/dbus-api.md, "Errors"). */
static const sd_bus_error_map gateway_bus_errors[] = {
        SD_BUS_ERROR_MAP(GATEWAY_BUS_PREFIX "Error.InvalidConfiguration", EBADMSG),
        SD_BUS_ERROR_MAP(GATEWAY_BUS_PREFIX "Error.NotConnected", ENOTCONN),
        SD_BUS_ERROR_MAP(GATEWAY_BUS_PREFIX "Error.NoBluetooth", ENODEV),
        SD_BUS_ERROR_MAP(GATEWAY_BUS_PREFIX "Error.NoModem", ENXIO),
        SD_BUS_ERROR_MAP(GATEWAY_BUS_PREFIX "Error.Stopping", ESHUTDOWN),
        SD_BUS_ERROR_MAP_END,
};

static uint64_t boottime_to_realtime(uint64_t t) {
        uint64_t now = now_usec(CLOCK_BOOTTIME);
        return t == 0 ? 0 : now_usec(CLOCK_REALTIME) + (t > now ? t - now : 0);
}

/* ---- Gateway1 ---- */

static const BusProperty gateway_props[] = {
        P("State"),          Q("Version"),    P("GatewayId"),    P("TeamId"),
        P("MqttEndpoint"),   P("Tls"),              P("CloudState"),   P("CloudStateSince"),
        P("CloudLastError"), P("CloudNextRetry"),   P("DevicesDesired"), P("DevicesConnected"),
};

static const char *gateway_id(Gateway *g) {
        if (g->config->device_id)
                return g->config->device_id;
        if (g->modem && modem_get_identity(g->modem)->device_id)
                return modem_get_identity(g->modem)->device_id;
        return "";
}

static void gateway_fill(void *object, BusValue *v) {
        GatewayBus *b = object;
        Gateway *g = b->gateway;
        const Config *c = g->config;
        const char *prefix = g->cloud ? cloud_session_topic_prefix(g->cloud) : NULL, *slash;
        char endpoint[300], team[128] = "";

        if (c->team_id)
                snprintf(team, sizeof team, "%s", c->team_id);
        else if (prefix && (slash = strchr(prefix, '/')))
                /* "<stage>/<team>/" */
                snprintf(team, sizeof team, "%.*s", (int) strcspn(slash + 1, "/"), slash + 1);
        snprintf(endpoint, sizeof endpoint, "%s:%u", c->cloud_host, c->cloud_port);

        bus_value_s(&v[0], gateway_state_to_string(g->state));
        bus_value_s(&v[1], NRFGW_VERSION);
        bus_value_s(&v[2], gateway_id(g));
        bus_value_s(&v[3], team);
        bus_value_s(&v[4], endpoint);
        bus_value_s(&v[5], c->cloud_tls == CLOUD_TLS_HOST ? "host" : "modem");
        bus_value_s(&v[6], cloud_session_state_to_string(g->cloud ? cloud_session_get_state(g->cloud)
                                                                  : CLOUD_SESSION_DISCONNECTED));
        bus_value_t(&v[7], b->cloud_since_usec);
        bus_value_s(&v[8], g->mqtt ? mqtt_session_last_error(g->mqtt) : NULL);
        bus_value_t(&v[9], g->mqtt ? boottime_to_realtime(mqtt_session_next_retry_usec(g->mqtt)) : 0);
        bus_value_u(&v[10], gateway_devices_desired(g));
        bus_value_u(&v[11], gateway_devices_ready(g));
}

/* ---- Modem1 ---- */

static const BusProperty modem_props[] = {
        P("Present"),       P("Port"),       P("State"), P("ModemFirmware"), P("FirmwareVersion"),
        P("DeviceUuid"),    P("Registration"), P("Rsrp"), P("Rsrq"),        P("SignalUpdated"),
        P("SecTag"),        P("Credentials"),
};

/* "<sha256 or -> <name>" of each credential the tag holds (CA, client certificate, key), as read at the probe. */
static char **modem_credentials(const ModemIdentity *id) {
        char **l = NULL;

        for (CredType t = CRED_ROOT_CA; id && t <= CRED_CLIENT_KEY; t++)
                if (id->has_credential[t])
                        (void) strv_extendf(&l, "%s %s", id->sha256[t][0] ? id->sha256[t] : "-", cred_type_to_string(t));
        return l ? l : calloc(1, sizeof(char *));
}

static void modem_fill(void *object, BusValue *v) {
        GatewayBus *b = object;
        Gateway *g = b->gateway;
        const ModemIdentity *id = g->modem ? modem_get_identity(g->modem) : NULL;
        bool ready = g->modem && modem_get_state(g->modem) == MODEM_READY;

        bus_value_b(&v[0], g->modem);
        bus_value_s(&v[1], g->modem ? g->config->modem_port : CONFIG_MODEM_NONE);
        bus_value_s(&v[2], g->modem ? modem_state_to_string(modem_get_state(g->modem)) : "none");
        bus_value_s(&v[3], id ? id->modem_firmware : NULL);
        bus_value_s(&v[4], id ? id->firmware_version : NULL);
        bus_value_s(&v[5], id ? id->uuid : NULL);
        bus_value_s(&v[6], !ready || g->config->cloud_tls != CLOUD_TLS_MODEM ? "unknown"
                           : g->modem_registered                            ? "registered"
                                                                            : "not-registered");
        bus_value_i(&v[7], b->rsrp);
        bus_value_i(&v[8], b->rsrq);
        bus_value_t(&v[9], b->signal_usec);
        bus_value_u(&v[10], g->config->sec_tag);
        bus_value_strv(&v[11], modem_credentials(id));
}

/* The answer to AT+CESQ: the LTE signal (at_parse_cesq()). */
static void on_cesq(AtEngine *e, const AtResponse *r, void *userdata) {
        GatewayBus *b = userdata;
        (void) e;

        b->cesq_pending = false;
        for (size_t i = 0; r->result >= 0 && i < r->n_lines; i++)
                if (at_parse_cesq(r->lines[i], &b->rsrp, &b->rsrq) >= 0) {
                        b->signal_usec = now_usec(CLOCK_REALTIME);
                        gateway_bus_changed(b);
                        return;
                }
}

/* Someone reads the signal: ask the modem if the value is older than a minute. */
static void modem_signal_refresh(GatewayBus *b) {
        Gateway *g = b->gateway;
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        if (!g->modem || modem_get_state(g->modem) != MODEM_READY || b->cesq_pending ||
            (b->signal_asked_usec != 0 && now < b->signal_asked_usec + SIGNAL_REFRESH_USEC))
                return;
        if (at_engine_send(modem_get_engine(g->modem), "AT+CESQ", CESQ_TIMEOUT_USEC, on_cesq, b) < 0)
                return;
        b->cesq_pending = true;
        b->signal_asked_usec = now;
}

/* ---- Outbox1 ---- */

static const BusProperty outbox_props[] = {
        P("Messages"), P("Bytes"), P("OldestQueued"), P("Dropped"), P("MaxMessages"), P("MaxBytes"),
        P("BudgetSaturated"), P("BudgetDeferred"), P("Coalesced"), P("MaxPublishRate"),
};

static void outbox_fill(void *object, BusValue *v) {
        GatewayBus *b = object;
        Gateway *g = b->gateway;
        Outbox *o = g->outbox;

        bus_value_t(&v[0], o ? outbox_count(o) : 0);
        bus_value_t(&v[1], o ? outbox_bytes(o) : 0);
        bus_value_t(&v[2], o ? outbox_oldest_usec(o) : 0);
        bus_value_t(&v[3], o ? outbox_dropped(o) : 0);
        bus_value_t(&v[4], g->config->buffer_max_messages);
        bus_value_t(&v[5], g->config->buffer_max_bytes);
        bus_value_b(&v[6], g->mqtt && mqtt_session_budget_saturated(g->mqtt));
        bus_value_t(&v[7], g->mqtt ? mqtt_session_budget_deferred(g->mqtt) : 0);
        bus_value_t(&v[8], o ? outbox_coalesced(o) : 0);
        bus_value_u(&v[9], g->config->max_publish_rate);
}

/* ---- Fota1 ---- */

static const BusProperty fota_props[] = {
        P("State"), P("JobId"), P("Progress"), P("LastJobId"), P("SupportedTypes"),
};

static void fota_fill(void *object, BusValue *v) {
        GatewayBus *b = object;
        Gateway *g = b->gateway;
        const FotaRecord *rec = g->fota ? fota_manager_get_record(g->fota) : NULL;
        FotaState s = g->fota ? fota_manager_get_state(g->fota) : FOTA_STATE_IDLE;
        unsigned types = g->fota ? fota_manager_supported_types(g->fota) : 0;
        char **l = NULL;

        for (int t = 0; t < _FOTA_TYPE_MAX; t++)
                if (types & (1u << t))
                        (void) strv_extendf(&l, "%s", fota_type_to_string((FotaType) t));
        bus_value_s(&v[0], !g->modem ? "unavailable" : fota_state_to_string(s));
        bus_value_s(&v[1], rec && rec->stage != FOTA_STAGE_NONE ? rec->id : NULL);
        bus_value_i(&v[2], rec && s == FOTA_STATE_DOWNLOADING ? rec->progress : -1);
        bus_value_s(&v[3], rec ? rec->last_job : NULL);
        bus_value_strv(&v[4], l ? l : calloc(1, sizeof(char *)));
}

/* ---- Location1 ---- */

static const BusProperty location_props[] = {
        P("State"), P("Latitude"), P("Longitude"), P("Uncertainty"), P("Method"), P("Time"), P("Requests"),
        P("LastError"),
};

static void location_fill(void *object, BusValue *v) {
        GatewayBus *b = object;
        LocationManager *l = b->gateway->location;
        const LocationFix *fix = location_manager_get_fix(l);

        /* No manager (TLS=host, LocationIntervalSec=0, no modem): "off". */
        bus_value_s(&v[0], location_state_to_string(location_manager_get_state(l)));
        bus_value_d(&v[1], fix ? fix->latitude : 0);
        bus_value_d(&v[2], fix ? fix->longitude : 0);
        bus_value_d(&v[3], fix && !isnan(fix->uncertainty) ? fix->uncertainty : -1);
        bus_value_s(&v[4], fix ? fix->method : NULL);
        bus_value_t(&v[5], fix && fix->time > 0 ? (uint64_t) fix->time * UINT64_C(1000000) : 0);
        bus_value_u(&v[6], location_manager_get_requests(l));
        bus_value_s(&v[7], l ? location_manager_get_last_error(l) : NULL);
}

static const BusInterface gateway_ifaces[_IFACE_MAX] = {
        [IFACE_GATEWAY] = { GATEWAY_BUS_PREFIX "Gateway1", gateway_props, ELEMENTSOF(gateway_props), gateway_fill },
        [IFACE_MODEM] = { GATEWAY_BUS_PREFIX "Modem1", modem_props, ELEMENTSOF(modem_props), modem_fill },
        [IFACE_OUTBOX] = { GATEWAY_BUS_PREFIX "Outbox1", outbox_props, ELEMENTSOF(outbox_props), outbox_fill },
        [IFACE_FOTA] = { GATEWAY_BUS_PREFIX "Fota1", fota_props, ELEMENTSOF(fota_props), fota_fill },
        [IFACE_LOCATION] = { GATEWAY_BUS_PREFIX "Location1", location_props, ELEMENTSOF(location_props),
                             location_fill },
};

static int gateway_property_get(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        GatewayBus *b = userdata;
        (void) bus, (void) path;

        for (size_t i = 0; i < _IFACE_MAX; i++)
                if (streq(gateway_ifaces[i].name, interface)) {
                        if (i == IFACE_MODEM && (streq(property, "Rsrp") || streq(property, "Rsrq") ||
                                                 streq(property, "SignalUpdated")))
                                modem_signal_refresh(b);
                        return bus_property_get(&gateway_ifaces[i], b, property, reply, error);
                }
        return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_INTERFACE, "Unknown interface %s", interface);
}

/* ---- Device1 ---- */

static const BusProperty device_props[] = {
        Q("Address"),  P("AddressType"), Q("Name"),    Q("RSSI"),
        P("Desired"),        P("State"),       P("Connected"),     P("LastError"),
        P("Subscriptions"),  P("Notifications"), P("LastNotification"),
};

static bool device_desired(Gateway *g, const char *address) {
        const DesiredConnection *v;
        size_t n;

        if (!g->cloud || cloud_session_get_desired_connections(g->cloud, &v, &n) < 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((strcasecmp(v[i].address, address) == 0))
                        return true;
        return false;
}

static void device_fill(void *object, BusValue *v) {
        BusDevice *bd = object;
        Gateway *g = bd->bus->gateway;
        BleDevice *d = g->ble ? ble_manager_get_device(g->ble, bd->address) : NULL;
        const BleObject *o = NULL;
        char **subs = NULL;

        if (d && g->ble && ble_manager_adapter(g->ble)) {
                char path[256];
                size_t n = (size_t) snprintf(path, sizeof path, "%s/dev_", ble_manager_adapter(g->ble));
                for (size_t i = 0; bd->address[i] && n + 1 < sizeof path; i++)
                        path[n++] = bd->address[i] == ':' ? '_' : bd->address[i];
                path[n] = 0;
                o = ble_mirror_get(ble_manager_mirror(g->ble), path);
                if (o && o->kind != BLE_OBJ_DEVICE)
                        o = NULL;
        }
        for (size_t i = 0; d && i < ble_device_n_subscriptions(d); i++) {
                const char *svc, *chrc;
                if (ble_device_subscription(d, i, &svc, &chrc) >= 0)
                        (void) strv_extendf(&subs, "%s/%s", svc, chrc);
        }

        bus_value_s(&v[0], bd->address);
        bus_value_s(&v[1], d ? ble_device_address_type(d) : NULL);
        bus_value_s(&v[2], o ? o->device.name : NULL);
        bus_value_n(&v[3], o && o->device.has_rssi ? o->device.rssi : 0);
        bus_value_b(&v[4], device_desired(g, bd->address));
        bus_value_s(&v[5], d ? ble_device_state_to_string(ble_device_state(d)) : "idle");
        bus_value_b(&v[6], d && ble_device_state(d) == BLE_DEVICE_READY);
        bus_value_s(&v[7], bd->last_error);
        bus_value_strv(&v[8], subs ? subs : calloc(1, sizeof(char *)));
        bus_value_t(&v[9], bd->notifications);
        bus_value_t(&v[10], bd->last_notification_usec);
}

static const BusInterface device_iface = { GATEWAY_BUS_PREFIX "Device1", device_props, ELEMENTSOF(device_props),
                                           device_fill };

static int device_property_get(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        (void) bus, (void) path, (void) interface;
        return bus_property_get(&device_iface, userdata, property, reply, error);
}

static BusDevice *device_find(GatewayBus *b, const char *address) {
        for (BusDevice *d = b->devices; d; d = d->next)
                if ((strcasecmp(d->address, address) == 0))
                        return d;
        return NULL;
}

static int device_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                              sd_bus_error *error) {
        GatewayBus *b = userdata;
        (void) bus, (void) interface, (void) error;

        for (BusDevice *d = b->devices; d; d = d->next)
                if (streq(d->path, path)) {
                        *found = d;
                        return 1;
                }
        return 0;
}

static int device_enumerate(sd_bus *bus, const char *path, void *userdata, char ***ret, sd_bus_error *error) {
        GatewayBus *b = userdata;
        char **l = NULL;
        (void) bus, (void) path, (void) error;

        for (BusDevice *d = b->devices; d; d = d->next)
                if (strv_extendf(&l, "%s", d->path) < 0) {
                        strv_free(l);
                        return -ENOMEM;
                }
        *ret = l;
        return 0;
}

static BusDevice *device_free(BusDevice *d) {
        if (!d)
                return NULL;
        bus_values_clear(d->last, PROPS_MAX);
        free(d->path);
        free(d);
        return NULL;
}

static int device_new(GatewayBus *b, const char *address, BusDevice **ret) {
        BusDevice *d = calloc(1, sizeof *d);
        size_t n;

        if (!d)
                return -ENOMEM;
        d->bus = b;
        snprintf(d->address, sizeof d->address, "%s", address);
        if (asprintf(&d->path, "%s/dev_%s", GATEWAY_BUS_ROOT, address) < 0) {
                free(d);
                return -ENOMEM;
        }
        for (n = strlen(GATEWAY_BUS_ROOT); d->path[n]; n++)
                if (d->path[n] == ':')
                        d->path[n] = '_';
        d->next = b->devices;
        b->devices = d;
        *ret = d;
        return 0;
}

/* The device objects follow the BLE manager's desired devices. */
static void devices_sync(GatewayBus *b) {
        Gateway *g = b->gateway;
        BusDevice **p;

        for (BusDevice *d = b->devices; d; d = d->next)
                d->seen = false;
        for (BleDevice *d = g->ble ? ble_manager_next_device(g->ble, NULL) : NULL; d;
             d = ble_manager_next_device(g->ble, d)) {
                BusDevice *bd = device_find(b, ble_device_address(d));
                if (!bd) {
                        if (device_new(b, ble_device_address(d), &bd) < 0) {
                                log_error_errno(ENOMEM, "Out of memory");
                                continue;
                        }
                        (void) bus_properties_update(NULL, bd->path, &device_iface, bd, bd->last, false);
                        if (b->bus)
                                (void) sd_bus_emit_interfaces_added(b->bus, bd->path, device_iface.name, NULL);
                } else
                        (void) bus_properties_update(b->bus, bd->path, &device_iface, bd, bd->last, true);
                bd->seen = true;
        }
        for (p = &b->devices; *p;) {
                BusDevice *bd = *p;
                if (bd->seen) {
                        p = &bd->next;
                        continue;
                }
                if (b->bus)
                        (void) sd_bus_emit_interfaces_removed(b->bus, bd->path, device_iface.name, NULL);
                *p = bd->next;
                device_free(bd);
        }
}

/* ---- Methods ---- */

/* Methods are root's (the policy says so too; this holds on a permissive bus). */
static int check_root(sd_bus_message *m, sd_bus_error *error) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        uid_t uid;
        int r;

        /* Only what the bus daemon tells (GetConnectionUnixUser): with ProtectProc=invisible the
         * caller's /proc entry is not visible to us, so nothing may need augmenting from there. */
        r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID, &creds);
        if (r >= 0)
                r = sd_bus_creds_get_euid(creds, &uid);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot tell who is calling: %m");
        if (uid != 0)
                return sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED, "Only root may call this method");
        return 0;
}

static int method_reload(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        GatewayBus *b = userdata;
        int r;

        r = check_root(m, error);
        if (r < 0)
                return r;
        if (b->gateway->state == GATEWAY_STOPPING)
                return sd_bus_error_set_errno(error, ESHUTDOWN);
        log_info("Reload asked over D-Bus");
        r = gateway_reload(b->gateway);
        if (r < 0)
                return sd_bus_error_setf(error, GATEWAY_BUS_PREFIX "Error.InvalidConfiguration",
                                         "The configuration is invalid, the current one is kept (see the journal)");
        return sd_bus_reply_method_return(m, NULL);
}

static int method_reconnect(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        GatewayBus *b = userdata;
        int r;

        r = check_root(m, error);
        if (r < 0)
                return r;
        if (!b->gateway->mqtt)
                return sd_bus_error_setf(error, GATEWAY_BUS_PREFIX "Error.NotConnected",
                                         "There is no cloud session yet");
        log_info("Cloud reconnection asked over D-Bus");
        r = mqtt_session_reconnect(b->gateway->mqtt, "asked over D-Bus");
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Cannot reconnect: %m");
        return sd_bus_reply_method_return(m, NULL);
}

static int method_get_imei(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        GatewayBus *b = userdata;
        Gateway *g = b->gateway;
        int r;

        r = check_root(m, error);
        if (r < 0)
                return r;
        if (!g->modem || !modem_get_identity(g->modem)->imei[0])
                return sd_bus_error_setf(error, GATEWAY_BUS_PREFIX "Error.NoModem",
                                         g->modem ? "The modem has not told its IMEI yet" : "There is no modem");
        return sd_bus_reply_method_return(m, "s", modem_get_identity(g->modem)->imei);
}

static BusScan *scan_free(BusScan *s) {
        if (!s)
                return NULL;
        for (BusScan **p = &s->bus->scans; *p; p = &(*p)->next)
                if (*p == s) {
                        *p = s->next;
                        break;
                }
        sd_bus_message_unref(s->call);
        free(s);
        return NULL;
}

static void on_scan_done(BleManager *m, int error, const BleScanResult *results, size_t n, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        BusScan *s = userdata;
        int r;
        (void) m;

        if (error < 0) {
                (void) sd_bus_reply_method_errnof(s->call, error, "The scan failed: %m");
                scan_free(s);
                return;
        }
        r = sd_bus_message_new_method_return(s->call, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(ssn)");
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = sd_bus_message_append(reply, "(ssn)", results[i].address, strempty(results[i].name),
                                          results[i].has_rssi ? results[i].rssi : (int16_t) 0);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        if (r < 0)
                (void) sd_bus_reply_method_errnof(s->call, r, "Failed to answer: %m");
        scan_free(s);
}

static int method_scan(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        GatewayBus *b = userdata;
        Gateway *g = b->gateway;
        BusScan *s;
        uint32_t seconds;
        int r;

        r = check_root(m, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "u", &seconds);
        if (r < 0)
                return r;
        if (seconds < 1 || seconds > SCAN_SECONDS_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "seconds must be 1 to %u",
                                         SCAN_SECONDS_MAX);
        if (!g->ble)
                return sd_bus_error_setf(error, GATEWAY_BUS_PREFIX "Error.NoBluetooth",
                                         "Bluetooth is not in use (no BlueZ, or no cloud session yet)");
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->bus = b;
        s->call = sd_bus_message_ref(m);
        s->next = b->scans;
        b->scans = s;
        r = ble_manager_scan(g->ble, (uint64_t) seconds * 1000000u, on_scan_done, s);
        if (r < 0) {
                scan_free(s);
                if (r == -EHOSTDOWN || r == -ENODEV)
                        return sd_bus_error_setf(error, GATEWAY_BUS_PREFIX "Error.NoBluetooth",
                                                 r == -ENODEV ? "There is no Bluetooth adapter" : "BlueZ is not running");
                return sd_bus_error_set_errnof(error, r, "Cannot scan: %m");
        }
        return 1;
}

static const sd_bus_vtable gateway_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("State", "s", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Version", "s", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("GatewayId", "s", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("TeamId", "s", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MqttEndpoint", "s", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Tls", "s", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("CloudState", "s", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("CloudStateSince", "t", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("CloudLastError", "s", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("CloudNextRetry", "t", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("DevicesDesired", "u", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("DevicesConnected", "u", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD("Reload", "", "", method_reload, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Reconnect", "", "", method_reconnect, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Scan", "u", SD_BUS_PARAM(seconds), "a(ssn)", SD_BUS_PARAM(devices), method_scan,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable modem_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Present", "b", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Port", "s", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("State", "s", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ModemFirmware", "s", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("FirmwareVersion", "s", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("DeviceUuid", "s", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Registration", "s", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Rsrp", "i", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Rsrq", "i", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("SignalUpdated", "t", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("SecTag", "u", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Credentials", "as", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_NAMES("GetImei", "", , "s", SD_BUS_PARAM(imei), method_get_imei,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable outbox_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Messages", "t", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Bytes", "t", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("OldestQueued", "t", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Dropped", "t", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MaxMessages", "t", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MaxBytes", "t", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("BudgetSaturated", "b", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("BudgetDeferred", "t", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Coalesced", "t", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MaxPublishRate", "u", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable fota_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("State", "s", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("JobId", "s", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Progress", "i", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastJobId", "s", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("SupportedTypes", "as", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable location_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("State", "s", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Latitude", "d", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Longitude", "d", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Uncertainty", "d", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Method", "s", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Time", "t", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Requests", "u", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastError", "s", gateway_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable device_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Address", "s", device_property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("AddressType", "s", device_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Name", "s", device_property_get, 0, 0),
        SD_BUS_PROPERTY("RSSI", "n", device_property_get, 0, 0),
        SD_BUS_PROPERTY("Desired", "b", device_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("State", "s", device_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Connected", "b", device_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastError", "s", device_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Subscriptions", "as", device_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Notifications", "t", device_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastNotification", "t", device_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END,
};

/* ---- Change signals ---- */

static void gateway_bus_flush(GatewayBus *b) {
        for (size_t i = 0; i < _IFACE_MAX; i++)
                (void) bus_properties_update(b->bus, GATEWAY_BUS_PATH, &gateway_ifaces[i], b, b->last[i], b->filled);
        b->filled = true;
        devices_sync(b);
        gateway_status_send(b->gateway); /* the counters in STATUS= */
}

static int on_flush_defer(sd_event_source *s, void *userdata) {
        GatewayBus *b = userdata;
        (void) s;
        gateway_bus_flush(b);
        return 0;
}

static int on_counters_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        GatewayBus *b = userdata;
        (void) s, (void) usec;
        gateway_bus_flush(b);
        return 0;
}

void gateway_bus_changed(GatewayBus *b) {
        int r;

        if (!b || b->gateway->freeing)
                return;
        r = b->flush_defer ? sd_event_source_set_enabled(b->flush_defer, SD_EVENT_ONESHOT)
                           : sd_event_add_defer(b->gateway->event, &b->flush_defer, on_flush_defer, b);
        if (r < 0)
                log_debug_errno(r, "Failed to schedule the D-Bus change signals, ignoring: %m");
}

void gateway_bus_counters_changed(GatewayBus *b) {
        int enabled = SD_EVENT_OFF;
        int r;

        if (!b || b->gateway->freeing)
                return;
        if (b->counters_timer && sd_event_source_get_enabled(b->counters_timer, &enabled) >= 0 &&
            enabled != SD_EVENT_OFF)
                return; /* already due within a second */
        if (b->counters_timer) {
                r = sd_event_source_set_time_relative(b->counters_timer, COUNTERS_INTERVAL_USEC);
                if (r >= 0)
                        r = sd_event_source_set_enabled(b->counters_timer, SD_EVENT_ONESHOT);
        } else
                r = sd_event_add_time_relative(b->gateway->event, &b->counters_timer, CLOCK_MONOTONIC,
                                               COUNTERS_INTERVAL_USEC, 0, on_counters_timer, b);
        if (r < 0)
                log_debug_errno(r, "Failed to schedule the D-Bus counter signals, ignoring: %m");
}

void gateway_bus_cloud_state_changed(GatewayBus *b) {
        if (!b)
                return;
        b->cloud_since_usec = now_usec(CLOCK_REALTIME);
        gateway_bus_changed(b);
}

void gateway_bus_device_state(GatewayBus *b, const char *address, BleDeviceState old_state,
                              BleDeviceState new_state) {
        BusDevice *d;

        if (!b)
                return;
        d = device_find(b, address);
        if (d) {
                if (new_state == BLE_DEVICE_READY)
                        d->last_error = NULL;
                else if (new_state == BLE_DEVICE_BACKOFF)
                        d->last_error = old_state == BLE_DEVICE_READY       ? "connection lost"
                                        : old_state == BLE_DEVICE_RESOLVING ? "service discovery failed"
                                                                            : "connect failed";
        }
        gateway_bus_changed(b);
}

void gateway_bus_device_notification(GatewayBus *b, const char *address) {
        BusDevice *d;

        if (!b)
                return;
        d = device_find(b, address);
        if (!d) {
                /* Not announced yet: the next flush adds it, the count starts with this one. */
                if (device_new(b, address, &d) < 0)
                        return;
                if (b->bus)
                        (void) sd_bus_emit_interfaces_added(b->bus, d->path, device_iface.name, NULL);
        }
        d->notifications++;
        d->last_notification_usec = now_usec(CLOCK_REALTIME);
        gateway_bus_counters_changed(b);
}

/* ---- Set-up ---- */

static int on_name_acquired(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const sd_bus_error *e = sd_bus_message_get_error(m);
        (void) userdata, (void) ret_error;

        if (e)
                log_warning("Cannot own the D-Bus name %s, the API is not reachable by name: %s", GATEWAY_BUS_NAME,
                            e->message ? e->message : e->name);
        else
                log_debug("D-Bus name %s acquired", GATEWAY_BUS_NAME);
        return 0;
}

static int gateway_bus_serve(GatewayBus *b) {
        static const sd_bus_vtable *const vtables[_IFACE_MAX] = {
                [IFACE_GATEWAY] = gateway_vtable,
                [IFACE_MODEM] = modem_vtable,
                [IFACE_OUTBOX] = outbox_vtable,
                [IFACE_FOTA] = fota_vtable,
                [IFACE_LOCATION] = location_vtable,
        };
        int r;

        r = sd_bus_open_system_with_description(&b->bus, "nrfcloud-gateway-api");
        if (r < 0)
                return r;
        r = sd_bus_attach_event(b->bus, b->gateway->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;
        (void) sd_bus_error_add_map(gateway_bus_errors);
        for (size_t i = 0; i < _IFACE_MAX; i++) {
                r = sd_bus_add_object_vtable(b->bus, &b->slots[i], GATEWAY_BUS_PATH, gateway_ifaces[i].name,
                                             vtables[i], b);
                if (r < 0)
                        return r;
        }
        r = sd_bus_add_fallback_vtable(b->bus, &b->device_slot, GATEWAY_BUS_ROOT, device_iface.name, device_vtable,
                                       device_object_find, b);
        if (r < 0)
                return r;
        r = sd_bus_add_node_enumerator(b->bus, &b->enumerator_slot, GATEWAY_BUS_ROOT, device_enumerate, b);
        if (r < 0)
                return r;
        r = sd_bus_add_object_manager(b->bus, &b->manager_slot, GATEWAY_BUS_ROOT);
        if (r < 0)
                return r;
        return sd_bus_request_name_async(b->bus, &b->name_slot, GATEWAY_BUS_NAME, 0, on_name_acquired, b);
}

int gateway_bus_new(Gateway *g, GatewayBus **ret) {
        GatewayBus *b;
        int r;

        b = calloc(1, sizeof *b);
        if (!b)
                return log_error_errno(ENOMEM, "Out of memory");
        b->gateway = g;
        b->cloud_since_usec = now_usec(CLOCK_REALTIME);
        b->rsrp = b->rsrq = AT_CESQ_UNKNOWN;
        r = gateway_bus_serve(b);
        if (r < 0) {
                log_warning_errno(r, "The D-Bus API is not available (system bus: %m); running without it");
                for (size_t i = 0; i < _IFACE_MAX; i++)
                        b->slots[i] = sd_bus_slot_unref(b->slots[i]);
                b->device_slot = sd_bus_slot_unref(b->device_slot);
                b->enumerator_slot = sd_bus_slot_unref(b->enumerator_slot);
                b->manager_slot = sd_bus_slot_unref(b->manager_slot);
                b->name_slot = sd_bus_slot_unref(b->name_slot);
                b->bus = sd_bus_flush_close_unref(b->bus);
        }
        *ret = b;
        return 0;
}

GatewayBus *gateway_bus_free(GatewayBus *b) {
        if (!b)
                return NULL;
        while (b->scans) {
                (void) sd_bus_reply_method_errorf(b->scans->call, GATEWAY_BUS_PREFIX "Error.Stopping",
                                                  "The daemon stops");
                scan_free(b->scans);
        }
        while (b->devices) {
                BusDevice *d = b->devices;
                b->devices = d->next;
                device_free(d);
        }
        sd_event_source_disable_unref(b->flush_defer);
        sd_event_source_disable_unref(b->counters_timer);
        for (size_t i = 0; i < _IFACE_MAX; i++) {
                sd_bus_slot_unref(b->slots[i]);
                bus_values_clear(b->last[i], PROPS_MAX);
        }
        sd_bus_slot_unref(b->device_slot);
        sd_bus_slot_unref(b->enumerator_slot);
        sd_bus_slot_unref(b->manager_slot);
        sd_bus_slot_unref(b->name_slot);
        sd_bus_flush_close_unref(b->bus);
        free(b);
        return NULL;
}

/* ---- For the *-bus.c files that add properties to these objects (blefota-bus.c) ---- */

sd_bus *gateway_bus_get_bus(GatewayBus *b) {
        return b ? b->bus : NULL;
}

const char *gateway_bus_device_address(GatewayBus *b, const char *path) {
        for (BusDevice *d = b && path ? b->devices : NULL; d; d = d->next)
                if (streq(d->path, path))
                        return d->address;
        return NULL;
}

const char *gateway_bus_device_path(GatewayBus *b, const char *address) {
        BusDevice *d = b && address ? device_find(b, address) : NULL;
        return d ? d->path : NULL;
}
