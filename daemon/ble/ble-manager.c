/* SPDX-License-Identifier: MIT */
/*
 * The BlueZ client: bus matches, the object mirror, bluetoothd presence,
 * adapter choice, scanning, and the connection-slot arbitration between the
 * desired devices (whose state machines live in ble-device.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ble-internal.h"
#include "log.h"
#include "util.h"

#define MATCH_INTERFACES_ADDED                                                                         \
        "type='signal',sender='org.bluez',path='/',interface='org.freedesktop.DBus.ObjectManager',"      \
        "member='InterfacesAdded'"
#define MATCH_INTERFACES_REMOVED                                                                       \
        "type='signal',sender='org.bluez',path='/',interface='org.freedesktop.DBus.ObjectManager',"      \
        "member='InterfacesRemoved'"
/* Spec §1.5.8: sender and path_namespace keep dbusmock's MethodCalled and other services out. */
#define MATCH_PROPERTIES_CHANGED                                                                       \
        "type='signal',sender='org.bluez',interface='org.freedesktop.DBus.Properties',"                 \
        "member='PropertiesChanged',path_namespace='/org/bluez'"
#define MATCH_NAME_OWNER                                                                               \
        "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"                     \
        "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='org.bluez'"

static const char *const scan_state_table[_BLE_SCAN_STATE_MAX] = {
        [BLE_SCAN_IDLE] = "idle",
        [BLE_SCAN_STARTING] = "starting",
        [BLE_SCAN_RUNNING] = "running",
        [BLE_SCAN_STOPPING] = "stopping",
};

static const char *scan_state_to_string(BleScanState s) {
        return s < _BLE_SCAN_STATE_MAX ? scan_state_table[s] : NULL;
}

static void scan_finish(BleManager *m, int error);
static void scan_hold_check(BleManager *m);
static void load_objects(BleManager *m);

/* ---- devices ---- */

BleDevice *ble_manager_device_for_object(BleManager *m, BleObject *o) {
        /* Follow the GATT parents by their properties, not by path shape (spec §1). */
        for (unsigned depth = 0; o && depth < 4; depth++) {
                switch (o->kind) {
                case BLE_OBJ_ADAPTER:
                        return NULL;
                case BLE_OBJ_DEVICE:
                        return o->userdata;
                case BLE_OBJ_SERVICE:
                        o = ble_mirror_get(m->mirror, o->service.device);
                        break;
                case BLE_OBJ_CHRC:
                        o = ble_mirror_get(m->mirror, o->chrc.service);
                        break;
                case BLE_OBJ_DESC:
                        o = ble_mirror_get(m->mirror, o->desc.characteristic);
                        break;
                case _BLE_OBJ_KIND_MAX:
                        return NULL;
                }
        }
        return NULL;
}

static BleObject *adapter_object(BleManager *m) {
        BleObject *o = ble_mirror_get(m->mirror, m->adapter_path);
        return o && o->kind == BLE_OBJ_ADAPTER ? o : NULL;
}

BleDevice *ble_manager_next_device(BleManager *m, BleDevice *d) {
        d = d ? d->next : m->devices_head;
        while (d && d->own)
                d = d->next;
        return d;
}

unsigned ble_manager_connected_count(BleManager *m) {
        unsigned n = 0;
        for (BleDevice *d = m->devices_head; d; d = d->next)
                if (!d->own && ble_device_holds_slot(d))
                        n++;
        return n;
}

/*
 * Desired devices that BlueZ does not know cannot be connected: BlueZ only
 * creates device objects for what it sees advertising.  While there are
 * such devices, scan in the background (BACKGROUND_SCAN_USEC, then a pause
 * of BACKGROUND_PAUSE_USEC so that the radio is not kept busy).  Devices
 * BlueZ creates this way count as created by the gateway.
 */
#define BACKGROUND_SCAN_USEC (10 * UINT64_C(1000000))
#define BACKGROUND_PAUSE_USEC (20 * UINT64_C(1000000))

static void missing_check(BleManager *m);

static int missing_timer_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        BleManager *m = userdata;

        (void) s;
        (void) usec;
        m->missing_timer = sd_event_source_disable_unref(m->missing_timer);
        missing_check(m);
        return 0;
}

static void missing_arm(BleManager *m, uint64_t usec) {
        if (m->missing_timer)
                return;
        if (sd_event_add_time_relative(m->event, &m->missing_timer, CLOCK_MONOTONIC, usec, 100000,
                                       missing_timer_handler, m) < 0)
                log_warning("Failed to schedule a background scan, desired devices unknown to BlueZ may not connect");
}

static void missing_scan_done(BleManager *m, int error, const BleScanResult *results, size_t n, void *userdata) {
        (void) results;
        (void) n;
        (void) userdata;
        m->missing_scan = false;
        if (error == -ECANCELED)
                return; /* the manager is going away */
        missing_arm(m, BACKGROUND_PAUSE_USEC);
}

static void missing_check(BleManager *m) {
        unsigned missing = 0;
        BleObject *a = adapter_object(m);
        int r;

        if (m->missing_scan || m->missing_timer || !m->bluez_present || !a || !a->adapter.powered)
                return;
        for (BleDevice *d = m->devices_head; d; d = d->next)
                if (!d->path && !d->removing)
                        missing++;
        if (missing == 0)
                return;
        r = ble_manager_scan(m, BACKGROUND_SCAN_USEC, missing_scan_done, NULL);
        if (r < 0) {
                log_debug_errno(r, "Background scan not started, retrying later: %m");
                missing_arm(m, BACKGROUND_PAUSE_USEC / 4);
                return;
        }
        m->missing_scan = true;
        log_info("Scanning for %u desired device(s) that BlueZ does not know", missing);
}

/* Gives free connection slots to idle devices, in the order they were desired. */
static int dispatch_handler(sd_event_source *s, void *userdata) {
        BleManager *m = userdata;
        BleObject *a = adapter_object(m);
        unsigned used, max = m->config->max_connections;

        (void) s;
        /* Connections of the gateway's own that were released (ble_manager_release_own()). */
        for (BleDevice *d = m->devices_head, *next; d; d = next) {
                next = d->next;
                if (d->own && d->removing)
                        ble_device_free(d);
        }
        if (!m->bluez_present || !a || !a->adapter.powered)
                return 0;
        used = ble_manager_connected_count(m);
        for (BleDevice *d = m->devices_head, *next; d; d = next) {
                BleObject *o;
                next = d->next;
                if (d->state != BLE_DEVICE_IDLE || !d->path || d->removing || d->held || (!d->own && used >= max))
                        continue;
                o = ble_mirror_get(m->mirror, d->path);
                if (!o || (o->device.adapter && !streq(o->device.adapter, m->adapter_path)))
                        continue;
                ble_device_start_connect(d);
                if (!d->own)
                        used++;
        }
        missing_check(m);
        scan_hold_check(m);
        return 0;
}

void ble_manager_schedule_dispatch(BleManager *m) {
        int r;

        if (!m->dispatch_source) {
                r = sd_event_add_defer(m->event, &m->dispatch_source, dispatch_handler, m);
                if (r < 0) {
                        log_error_errno(r, "Failed to schedule BLE connection dispatch: %m");
                        return;
                }
                (void) sd_event_source_set_description(m->dispatch_source, "ble-dispatch");
        }
        (void) sd_event_source_set_enabled(m->dispatch_source, SD_EVENT_ONESHOT);
}

/* ---- adapter ---- */

static int power_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        BleManager *m = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        (void) ret_error;
        m->power_slot = sd_bus_slot_unref(m->power_slot);
        if (e)
                log_error_errno(ble_error_from_dbus(e, NULL), "Failed to power on Bluetooth adapter %s: %s",
                                strna(m->adapter_path), strna(e->message));
        else
                log_info("Powered on Bluetooth adapter %s", strna(m->adapter_path));
        return 0;
}

static void adapter_power_on(BleManager *m) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        int r;

        m->power_slot = sd_bus_slot_unref(m->power_slot);
        r = sd_bus_message_new_method_call(m->bus, &msg, BLUEZ_SERVICE, m->adapter_path,
                                           "org.freedesktop.DBus.Properties", "Set");
        if (r >= 0)
                r = sd_bus_message_append(msg, "ssv", "org.bluez.Adapter1", "Powered", "b", 1);
        if (r >= 0)
                r = sd_bus_call_async(m->bus, &m->power_slot, msg, power_reply, m, 0);
        if (r < 0)
                log_error_errno(r, "Failed to request power-on of %s: %m", m->adapter_path);
}

static void adapter_report(BleManager *m) {
        BleObject *a = adapter_object(m);
        if (m->cb.adapter)
                m->cb.adapter(m, a ? a->path : NULL, a ? a->adapter.powered : false, m->userdata);
}

static void find_first_adapter(BleObject *o, void *userdata) {
        const char **best = userdata;
        if (o->kind == BLE_OBJ_ADAPTER && (!*best || strcmp(o->path, *best) < 0))
                *best = o->path;
}

static int no_adapter_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        BleManager *m = userdata;

        (void) s;
        (void) usec;
        m->no_adapter_timer = sd_event_source_disable_unref(m->no_adapter_timer);
        if (!m->adapter_path)
                log_error("No Bluetooth adapter %s%sfound; waiting for one to appear",
                          m->config->adapter ? m->config->adapter : "", m->config->adapter ? " " : "");
        return 0;
}

/* bluetoothd claims its name before it registers the adapters: give them a moment before complaining. */
static void no_adapter_arm(BleManager *m) {
        int r;

        if (m->no_adapter_timer)
                return;
        r = sd_event_add_time_relative(m->event, &m->no_adapter_timer, CLOCK_MONOTONIC, 2 * UINT64_C(1000000), 0,
                                       no_adapter_handler, m);
        if (r < 0)
                log_error("No Bluetooth adapter found; waiting for one to appear");
}

/* Picks [Bluetooth] Adapter= or the first adapter; reports clearly when there is none. */
static void adapter_select(BleManager *m, bool report_missing) {
        const char *path = NULL;
        char want[64];
        BleObject *a;

        if (m->adapter_path)
                return;
        if (m->config->adapter) {
                (void) snprintf(want, sizeof want, "/org/bluez/%s", m->config->adapter);
                a = ble_mirror_get(m->mirror, want);
                if (a && a->kind == BLE_OBJ_ADAPTER)
                        path = a->path;
        } else
                ble_mirror_foreach(m->mirror, find_first_adapter, &path);

        if (!path) {
                if (report_missing)
                        no_adapter_arm(m);
                return;
        }
        m->no_adapter_timer = sd_event_source_disable_unref(m->no_adapter_timer);
        m->adapter_path = strdup(path);
        if (!m->adapter_path) {
                log_error_errno(-ENOMEM, "Failed to remember the adapter: %m");
                return;
        }
        a = adapter_object(m);
        log_info("Using Bluetooth adapter %s (%s), %s", m->adapter_path, strna(a->adapter.address),
                 a->adapter.powered ? "powered" : "not powered");
        if (!a->adapter.powered) {
                if (m->config->auto_power_on)
                        adapter_power_on(m);
                else
                        log_warning("Bluetooth adapter %s is off and AutoPowerOn=no; nothing will connect",
                                    m->adapter_path);
        }
        adapter_report(m);
        ble_manager_schedule_dispatch(m);
}

static void adapter_lost(BleManager *m) {
        log_warning("Bluetooth adapter %s went away", strna(m->adapter_path));
        free(m->adapter_path);
        m->adapter_path = NULL;
        if (m->scan_state != BLE_SCAN_IDLE)
                scan_finish(m, -ENODEV);
        adapter_report(m);
        /* Another adapter may be there already. */
        adapter_select(m, true);
}

/* ---- scan ---- */

void ble_scan_result_clear(BleScanResult *r) {
        free(r->address_type);
        free(r->name);
        strv_free(r->uuids);
        for (size_t i = 0; i < r->manufacturer_data.n; i++)
                free(r->manufacturer_data.items[i].data.data);
        free(r->manufacturer_data.items);
        for (size_t i = 0; i < r->service_data.n; i++) {
                free(r->service_data.items[i].uuid);
                free(r->service_data.items[i].data.data);
        }
        free(r->service_data.items);
        for (size_t i = 0; i < r->advertising_data.n; i++)
                free(r->advertising_data.items[i].data.data);
        free(r->advertising_data.items);
        *r = (BleScanResult){ 0 };
}

static int bytes_dup(const BleBytes *src, BleBytes *dst) {
        dst->data = malloc(src->size ? src->size : 1);
        if (!dst->data)
                return -ENOMEM;
        if (src->size)
                memcpy(dst->data, src->data, src->size);
        dst->size = src->size;
        return 0;
}

static int mfr_list_dup(const BleMfrList *src, BleMfrList *dst) {
        if (src->n == 0)
                return 0;
        dst->items = calloc(src->n, sizeof(BleMfrEntry));
        if (!dst->items)
                return -ENOMEM;
        for (size_t i = 0; i < src->n; i++) {
                dst->items[i].company = src->items[i].company;
                if (bytes_dup(&src->items[i].data, &dst->items[i].data) < 0)
                        return -ENOMEM;
                dst->n++;
        }
        return 0;
}

void ble_scan_result_update(BleScanResult *cur, BleScanResult *newer) {
        /* Keep a name or RSSI seen earlier if this update has none (RSSI is invalidated at stop). */
        if (!newer->name && cur->name)
                newer->name = TAKE_PTR(cur->name);
        if (!newer->has_rssi && cur->has_rssi) {
                newer->rssi = cur->rssi;
                newer->has_rssi = true;
        }
        ble_scan_result_clear(cur);
        *cur = *newer;
        *newer = (BleScanResult){ 0 };
}

/* Builds a result from the mirror's device properties, UUIDs normalised. */
int ble_scan_result_fill(BleScanResult *r, const BleDeviceProps *p) {
        char u[BLE_UUID_STR_MAX];

        ble_scan_result_clear(r);
        if (ble_address_normalize(p->address, r->address) < 0)
                return -EINVAL;
        if ((p->address_type && !(r->address_type = strdup(p->address_type))) ||
            (p->name && !(r->name = strdup(p->name))))
                return -ENOMEM;
        r->rssi = p->rssi;
        r->has_rssi = p->has_rssi;
        r->tx_power = p->tx_power;
        r->has_tx_power = p->has_tx_power;
        r->advertising_flags = p->has_advertising_flags && p->advertising_flags.size > 0 ? p->advertising_flags.data[0]
                                                                                           : -1;
        if (mfr_list_dup(&p->advertising_data, &r->advertising_data) < 0)
                return -ENOMEM;
        r->uuids = calloc(1, sizeof(char *));
        if (!r->uuids)
                return -ENOMEM;
        for (char **i = p->uuids; i && *i; i++)
                if (ble_uuid_normalize(*i, u) >= 0 && strv_extendf(&r->uuids, "%s", u) < 0)
                        return -ENOMEM;
        if (mfr_list_dup(&p->manufacturer_data, &r->manufacturer_data) < 0)
                return -ENOMEM;
        if (p->service_data.n) {
                r->service_data.items = calloc(p->service_data.n, sizeof(BleSvcDataEntry));
                if (!r->service_data.items)
                        return -ENOMEM;
                for (size_t i = 0; i < p->service_data.n; i++) {
                        BleSvcDataEntry *e = &r->service_data.items[i];
                        if (ble_uuid_normalize(p->service_data.items[i].uuid, u) < 0)
                                (void) snprintf(u, sizeof u, "%.32s", p->service_data.items[i].uuid);
                        e->uuid = strdup(u);
                        if (!e->uuid || bytes_dup(&p->service_data.items[i].data, &e->data) < 0) {
                                r->service_data.n = i + 1;
                                return -ENOMEM;
                        }
                        r->service_data.n++;
                }
        }
        return 0;
}

static void scan_record(BleManager *m, BleObject *o) {
        char addr[BLE_ADDR_STR_MAX];
        uintptr_t idx;
        int r;

        if (m->scan_state != BLE_SCAN_STARTING && m->scan_state != BLE_SCAN_RUNNING)
                return;
        if (m->n_scan_waiters == 0)
                return; /* a session held open for beacons: nobody collects results */
        if (o->device.adapter && m->adapter_path && !streq(o->device.adapter, m->adapter_path))
                return;
        if (ble_address_normalize(o->device.address, addr) < 0)
                return;
        idx = (uintptr_t) ble_map_get(&m->scan_index, addr);
        if (idx == 0) {
                BleScanResult *n;
                if (m->n_scan_results >= m->config->max_scan_results)
                        return; /* MaxScanResults: the first ones seen win */
                n = realloc(m->scan_results, (m->n_scan_results + 1) * sizeof *n);
                if (!n)
                        return (void) log_error_errno(-ENOMEM, "Failed to record scan result: %m");
                m->scan_results = n;
                n[m->n_scan_results] = (BleScanResult){ 0 };
                r = ble_scan_result_fill(&n[m->n_scan_results], &o->device);
                if (r < 0) {
                        ble_scan_result_clear(&n[m->n_scan_results]);
                        return;
                }
                r = ble_map_put(&m->scan_index, n[m->n_scan_results].address, (void *) (uintptr_t) (m->n_scan_results + 1));
                if (r < 0) {
                        ble_scan_result_clear(&n[m->n_scan_results]);
                        return;
                }
                m->n_scan_results++;
                /* realloc moved the keys: rebuild the index over the new array. */
                ble_map_done(&m->scan_index);
                ble_map_init(&m->scan_index);
                for (size_t i = 0; i < m->n_scan_results; i++)
                        (void) ble_map_put(&m->scan_index, m->scan_results[i].address, (void *) (uintptr_t) (i + 1));
                log_debug("Scan: found %s", addr);
        } else {
                /* Refresh with the newest properties; the map key is cur->address, which stays equal. */
                BleScanResult tmp = { 0 }, *cur = &m->scan_results[idx - 1];
                if (ble_scan_result_fill(&tmp, &o->device) < 0) {
                        ble_scan_result_clear(&tmp);
                        return;
                }
                ble_scan_result_update(cur, &tmp);
        }
}

static void scan_results_drop(BleManager *m) {
        for (size_t i = 0; i < m->n_scan_results; i++)
                ble_scan_result_clear(&m->scan_results[i]);
        free(m->scan_results);
        m->scan_results = NULL;
        m->n_scan_results = 0;
        ble_map_done(&m->scan_index);
        ble_map_init(&m->scan_index);
}

/*
 * A session held open for beacons that ended (bluetoothd or the adapter went
 * away, a stop raced with a new hold, StartDiscovery failed) is opened again
 * from the dispatcher, which runs when the adapter is back and powered; after
 * a failure only once HOLD_RETRY_USEC have passed.
 */
#define HOLD_RETRY_USEC (5 * UINT64_C(1000000))

static int hold_timer_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        BleManager *m = userdata;

        (void) s;
        (void) usec;
        m->hold_timer = sd_event_source_disable_unref(m->hold_timer);
        ble_manager_schedule_dispatch(m);
        return 0;
}

static void scan_hold_retry(BleManager *m, uint64_t delay_usec) {
        if (delay_usec == 0) {
                ble_manager_schedule_dispatch(m);
                return;
        }
        if (m->hold_timer)
                return;
        if (sd_event_add_time_relative(m->event, &m->hold_timer, CLOCK_MONOTONIC, delay_usec, 100000,
                                       hold_timer_handler, m) < 0)
                log_warning("Failed to schedule a new discovery session for the watched beacons");
}

static void scan_finish(BleManager *m, int error) {
        BleScanWaiter waiters[BLE_SCAN_WAITERS_MAX];
        size_t n_waiters = m->n_scan_waiters;
        BleScanResult *results = TAKE_PTR(m->scan_results);
        size_t n_results = m->n_scan_results;

        memcpy(waiters, m->scan_waiters, sizeof waiters);
        m->n_scan_waiters = 0;
        m->n_scan_results = 0;
        ble_map_done(&m->scan_index);
        ble_map_init(&m->scan_index);
        m->scan_slot = sd_bus_slot_unref(m->scan_slot);
        m->scan_timer = sd_event_source_disable_unref(m->scan_timer);
        log_debug("Scan %s → idle", scan_state_to_string(m->scan_state));
        m->scan_state = BLE_SCAN_IDLE;
        if (error == -ECANCELED) /* the manager is being freed: the daemon stops */
                log_info("Scan stopped before its end, %zu device(s) found", n_results);
        else if (error < 0)
                log_warning_errno(error, "Scan failed: %m");
        else
                log_info("Scan done, %zu device(s) found", n_results);
        for (size_t i = 0; i < n_waiters; i++)
                waiters[i].cb(m, error, results, n_results, waiters[i].userdata);
        for (size_t i = 0; i < n_results; i++)
                ble_scan_result_clear(&results[i]);
        free(results);
        /* bluetoothd or the adapter went away: the dispatcher opens the session again when they are back. */
        if (m->scan_hold && error != -ECANCELED)
                scan_hold_retry(m, error < 0 && error != -ECONNRESET && error != -ENODEV ? HOLD_RETRY_USEC : 0);
}

static int stop_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        BleManager *m = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        (void) ret_error;
        if (e)
                log_debug("StopDiscovery: %s: %s, ignoring", e->name, strna(e->message));
        scan_finish(m, 0);
        return 0;
}

static int scan_arm_timer(BleManager *m);
static void scan_stop(BleManager *m);

/*
 * A request's time is up: it gets the results so far.  The discovery session
 * goes on while other requests that joined it still run, else it stops.
 */
static int scan_timer_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        BleManager *m = userdata;
        BleScanWaiter due[BLE_SCAN_WAITERS_MAX];
        size_t n_due = 0, k = 0;
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        int r;

        (void) s;
        (void) usec;
        m->scan_timer = sd_event_source_disable_unref(m->scan_timer);
        for (size_t i = 0; i < m->n_scan_waiters; i++) {
                if (m->scan_waiters[i].end_usec <= now)
                        due[n_due++] = m->scan_waiters[i];
                else
                        m->scan_waiters[k++] = m->scan_waiters[i];
        }
        if (k > 0 || m->scan_hold) {
                m->n_scan_waiters = k;
                for (size_t i = 0; i < n_due; i++)
                        due[i].cb(m, 0, m->scan_results, m->n_scan_results, due[i].userdata);
                /* Held open for beacons with nobody waiting: what was seen belonged to the requests. */
                if (m->n_scan_waiters == 0)
                        scan_results_drop(m);
                /* A callback may have joined again: arm for whoever is left. */
                if (m->scan_state == BLE_SCAN_RUNNING && m->n_scan_waiters > 0 && (r = scan_arm_timer(m)) < 0)
                        scan_finish(m, r);
                return 0;
        }
        /* Everybody is done: the last ones get their results when the stop completes. */
        scan_stop(m);
        return 0;
}

static void scan_stop(BleManager *m) {
        int r;

        m->scan_state = BLE_SCAN_STOPPING;
        m->scan_slot = sd_bus_slot_unref(m->scan_slot);
        r = sd_bus_call_method_async(m->bus, &m->scan_slot, BLUEZ_SERVICE, m->adapter_path, "org.bluez.Adapter1",
                                     "StopDiscovery", stop_reply, m, "");
        if (r < 0)
                scan_finish(m, 0);
}

static int scan_arm_timer(BleManager *m) {
        uint64_t end = UINT64_MAX;
        int r;

        for (size_t i = 0; i < m->n_scan_waiters; i++)
                end = MIN(end, m->scan_waiters[i].end_usec);
        if (end == UINT64_MAX)
                end = now_usec(CLOCK_MONOTONIC);
        if (m->scan_timer) {
                r = sd_event_source_set_time(m->scan_timer, end);
                if (r >= 0)
                        r = sd_event_source_set_enabled(m->scan_timer, SD_EVENT_ONESHOT);
                return r;
        }
        r = sd_event_add_time(m->event, &m->scan_timer, CLOCK_MONOTONIC, end, 10000, scan_timer_handler, m);
        if (r >= 0)
                (void) sd_event_source_set_description(m->scan_timer, "ble-scan");
        return r;
}

static int start_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        BleManager *m = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int r;

        (void) ret_error;
        m->scan_slot = sd_bus_slot_unref(m->scan_slot);
        /* InProgress: this connection already has a discovery session; use it (spec §1.1). */
        if (e && !sd_bus_error_has_name(e, "org.bluez.Error.InProgress")) {
                scan_finish(m, ble_error_from_dbus(e, NULL));
                return 0;
        }
        m->scan_state = BLE_SCAN_RUNNING;
        if (m->n_scan_waiters == 0 && !m->scan_hold) {
                scan_stop(m); /* the hold was released while the session started */
                return 0;
        }
        r = m->n_scan_waiters > 0 ? scan_arm_timer(m) : 0;
        if (r < 0)
                scan_finish(m, r);
        return 0;
}

static int filter_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        BleManager *m = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int r;

        (void) ret_error;
        m->scan_slot = sd_bus_slot_unref(m->scan_slot);
        if (e) {
                scan_finish(m, ble_error_from_dbus(e, NULL));
                return 0;
        }
        r = sd_bus_call_method_async(m->bus, &m->scan_slot, BLUEZ_SERVICE, m->adapter_path, "org.bluez.Adapter1",
                                     "StartDiscovery", start_reply, m, "");
        if (r < 0)
                scan_finish(m, r);
        return 0;
}

/* SetDiscoveryFilter, then StartDiscovery (filter_reply, start_reply): idle → starting. */
static int scan_start_session(BleManager *m) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        int r;

        r = sd_bus_message_new_method_call(m->bus, &msg, BLUEZ_SERVICE, m->adapter_path, "org.bluez.Adapter1",
                                           "SetDiscoveryFilter");
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(msg, 'a', "{sv}");
        if (r < 0)
                return r;
        /*
         * Spec §1.5.1: the documented DuplicateData default is not what bluetoothd does; say it.  true: every
         * advertisement updates the device's properties, which watched beacons with a constant payload need.
         * BlueZ's Adapter1 discovery has no passive mode: it scans actively (SCAN_REQ), and Transport=le
         * keeps it off BR/EDR inquiry.
         */
        r = sd_bus_message_append(msg, "{sv}{sv}", "Transport", "s", "le", "DuplicateData", "b", 1);
        if (r < 0)
                return r;
        if (m->config->scan_rssi_set) {
                r = sd_bus_message_append(msg, "{sv}", "RSSI", "n", (int16_t) m->config->scan_rssi);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(msg);
        if (r < 0)
                return r;
        r = sd_bus_call_async(m->bus, &m->scan_slot, msg, filter_reply, m, 0);
        if (r < 0)
                return r;
        m->scan_state = BLE_SCAN_STARTING;
        return 0;
}

int ble_manager_scan(BleManager *m, uint64_t duration_usec, BleScanCallback cb, void *userdata) {
        uint64_t end = now_usec(CLOCK_MONOTONIC) + duration_usec;
        int r;

        if (!cb || duration_usec == 0)
                return -EINVAL;
        if (!m->bluez_present)
                return -EHOSTDOWN;
        if (!m->adapter_path)
                return -ENODEV;
        if (m->n_scan_waiters >= BLE_SCAN_WAITERS_MAX)
                return -EBUSY;

        switch (m->scan_state) {
        case BLE_SCAN_STARTING:
        case BLE_SCAN_RUNNING:
                /* Join the running discovery session; the request gets its results at its own end. */
                if (m->n_scan_waiters == 0)
                        scan_results_drop(m); /* held for beacons: start counting from now */
                m->scan_waiters[m->n_scan_waiters++] = (BleScanWaiter){ cb, userdata, end };
                if (m->scan_state == BLE_SCAN_RUNNING)
                        (void) scan_arm_timer(m);
                log_debug("Scan request joins the running scan");
                return 0;
        case BLE_SCAN_STOPPING:
                /* Too late to join the one stopping; the caller may retry when it ends. */
                return -EBUSY;
        case BLE_SCAN_IDLE:
        case _BLE_SCAN_STATE_MAX:
                break;
        }

        r = scan_start_session(m);
        if (r < 0)
                return r;
        m->scan_waiters[m->n_scan_waiters++] = (BleScanWaiter){ cb, userdata, end };
        log_info("Scanning for %" PRIu64 " ms", duration_usec / 1000);
        return 0;
}

bool ble_manager_is_scanning(BleManager *m) {
        return m->scan_state != BLE_SCAN_IDLE;
}

/* From the dispatcher: opens the held session when BlueZ and a powered adapter are there. */
static void scan_hold_check(BleManager *m) {
        BleObject *a = adapter_object(m);
        int r;

        if (!m->scan_hold || m->hold_timer || m->scan_state != BLE_SCAN_IDLE || !m->bluez_present || !a ||
            !a->adapter.powered)
                return;
        r = scan_start_session(m);
        if (r < 0) {
                log_warning_errno(r, "Failed to start discovery for the watched beacons, retrying: %m");
                scan_hold_retry(m, HOLD_RETRY_USEC);
                return;
        }
        log_info("Discovery held open for %zu watched beacon(s)", ble_manager_beacon_count(m));
}

void ble_manager_scan_hold(BleManager *m, bool hold) {
        if (m->scan_hold == hold)
                return;
        m->scan_hold = hold;
        if (hold) {
                ble_manager_schedule_dispatch(m);
                return;
        }
        m->hold_timer = sd_event_source_disable_unref(m->hold_timer);
        /* Nobody else waits: the session ends (while starting, start_reply stops it). */
        if (m->scan_state == BLE_SCAN_RUNNING && m->n_scan_waiters == 0) {
                log_info("No beacons watched any more, stopping discovery");
                scan_stop(m);
        }
}

int ble_manager_set_beacons(BleManager *m, char *const *addresses) {
        int r;

        if (!m->beacons) {
                if (!addresses || !*addresses)
                        return 0;
                r = ble_beacon_watcher_new(m, &m->beacons);
                if (r < 0)
                        return r;
        }
        return ble_beacon_watcher_set(m->beacons, addresses);
}

size_t ble_manager_beacon_count(BleManager *m) {
        return m->beacons ? ble_beacon_watcher_count(m->beacons) : 0;
}

/* ---- mirror callbacks ---- */

static BleDevice *desired_for_object(BleManager *m, BleObject *o) {
        char addr[BLE_ADDR_STR_MAX];
        if (ble_address_normalize(o->device.address, addr) < 0)
                return NULL;
        return ble_map_get(&m->devices_by_address, addr);
}

#define SCAN_PROPS                                                                                            \
        ((UINT64_C(1) << BLE_DEVICE_RSSI) | (UINT64_C(1) << BLE_DEVICE_TX_POWER) |                              \
         (UINT64_C(1) << BLE_DEVICE_MANUFACTURER_DATA) | (UINT64_C(1) << BLE_DEVICE_SERVICE_DATA) |             \
         (UINT64_C(1) << BLE_DEVICE_NAME) | (UINT64_C(1) << BLE_DEVICE_UUIDS) |                                  \
         (UINT64_C(1) << BLE_DEVICE_ADVERTISING_FLAGS) | (UINT64_C(1) << BLE_DEVICE_ADVERTISING_DATA))

static void mirror_added(BleMirror *mirror, BleObject *o, void *userdata) {
        BleManager *m = userdata;
        BleDevice *d;

        (void) mirror;
        switch (o->kind) {
        case BLE_OBJ_ADAPTER:
                if (m->bluez_present)
                        adapter_select(m, false);
                break;
        case BLE_OBJ_DEVICE:
                d = desired_for_object(m, o);
                if (d)
                        ble_device_object_added(d, o);
                scan_record(m, o);
                if (m->beacons)
                        ble_beacon_watcher_seen(m->beacons, o);
                break;
        case BLE_OBJ_SERVICE:
        case BLE_OBJ_CHRC:
        case BLE_OBJ_DESC:
                d = ble_manager_device_for_object(m, o);
                if (d)
                        ble_device_gatt_changed(d);
                break;
        case _BLE_OBJ_KIND_MAX:
                break;
        }
}

static void mirror_changed(BleMirror *mirror, BleObject *o, uint64_t changed, uint64_t invalidated, void *userdata) {
        BleManager *m = userdata;
        BleDevice *d;

        (void) mirror;
        switch (o->kind) {
        case BLE_OBJ_ADAPTER:
                if (m->adapter_path && streq(o->path, m->adapter_path) &&
                    (changed & (UINT64_C(1) << BLE_ADAPTER_POWERED))) {
                        log_info("Bluetooth adapter %s %s", o->path, o->adapter.powered ? "powered on" : "powered off");
                        adapter_report(m);
                        ble_manager_schedule_dispatch(m);
                }
                break;
        case BLE_OBJ_DEVICE:
                if (o->userdata)
                        ble_device_object_changed(o->userdata, o, changed, invalidated);
                if (changed & SCAN_PROPS) {
                        scan_record(m, o);
                        if (m->beacons)
                                ble_beacon_watcher_seen(m->beacons, o);
                }
                break;
        case BLE_OBJ_CHRC:
                if (changed & (UINT64_C(1) << BLE_CHRC_VALUE)) {
                        BleObject *svc = ble_mirror_get(m->mirror, o->chrc.service);
                        char su[BLE_UUID_STR_MAX], cu[BLE_UUID_STR_MAX];
                        d = ble_manager_device_for_object(m, o);
                        if (d && svc && svc->kind == BLE_OBJ_SERVICE && ble_uuid_normalize(svc->service.uuid, su) >= 0 &&
                            ble_uuid_normalize(o->chrc.uuid, cu) >= 0)
                                ble_device_chrc_value(d, o, su, cu);
                }
                break;
        case BLE_OBJ_SERVICE:
        case BLE_OBJ_DESC:
        case _BLE_OBJ_KIND_MAX:
                break;
        }
}

static void mirror_removed(BleMirror *mirror, BleObject *o, void *userdata) {
        BleManager *m = userdata;
        BleDevice *d;

        (void) mirror;
        switch (o->kind) {
        case BLE_OBJ_ADAPTER:
                if (m->adapter_path && streq(o->path, m->adapter_path))
                        adapter_lost(m);
                break;
        case BLE_OBJ_DEVICE:
                if (o->userdata)
                        ble_device_object_removed(o->userdata);
                o->userdata = NULL;
                break;
        case BLE_OBJ_SERVICE:
        case BLE_OBJ_CHRC:
        case BLE_OBJ_DESC:
                d = ble_manager_device_for_object(m, o);
                if (d)
                        ble_device_gatt_changed(d);
                break;
        case _BLE_OBJ_KIND_MAX:
                break;
        }
}

static const BleMirrorCallbacks mirror_callbacks = {
        .added = mirror_added,
        .changed = mirror_changed,
        .removed = mirror_removed,
};

/* ---- bus ---- */

/* Hands a signal to the mirror; a malformed one is logged and ignored. */
static int mirror_signal(BleManager *m, sd_bus_message *msg, int (*apply)(BleMirror *, sd_bus_message *)) {
        int r = apply(m->mirror, msg);
        if (r < 0)
                log_debug_errno(r, "Malformed %s on %s, ignoring: %m", strna(sd_bus_message_get_member(msg)),
                                strna(sd_bus_message_get_path(msg)));
        return 0;
}

static int on_interfaces_added(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        (void) ret_error;
        return mirror_signal(userdata, msg, ble_mirror_interfaces_added);
}

static int on_interfaces_removed(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        (void) ret_error;
        return mirror_signal(userdata, msg, ble_mirror_interfaces_removed);
}

static int on_properties_changed(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        (void) ret_error;
        return mirror_signal(userdata, msg, ble_mirror_properties_changed);
}

static void bluez_lost(BleManager *m) {
        if (m->bluez_present)
                log_warning("bluetoothd left the bus; dropping its objects");
        m->bluez_present = false;
        m->load_slot = sd_bus_slot_unref(m->load_slot);
        m->power_slot = sd_bus_slot_unref(m->power_slot);
        if (m->scan_state != BLE_SCAN_IDLE)
                scan_finish(m, -ECONNRESET);
        for (BleDevice *d = m->devices_head; d; d = d->next)
                ble_device_bluez_lost(d);
        /* Forget the adapter first: its removal below is not an adapter going away on its own. */
        free(m->adapter_path);
        m->adapter_path = NULL;
        adapter_report(m);
        ble_mirror_clear(m->mirror);
        if (m->cb.bluez_presence)
                m->cb.bluez_presence(m, false, m->userdata);
}

static int on_name_owner_changed(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        BleManager *m = userdata;
        const char *name, *old_owner, *new_owner;
        int r;

        (void) ret_error;
        r = sd_bus_message_read(msg, "sss", &name, &old_owner, &new_owner);
        if (r < 0 || !streq(name, BLUEZ_SERVICE))
                return 0;
        if (old_owner && *old_owner)
                bluez_lost(m);
        if (new_owner && *new_owner) {
                log_info("bluetoothd is on the bus as %s; loading its objects", new_owner);
                load_objects(m);
        }
        return 0;
}

static int load_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        BleManager *m = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int r;

        (void) ret_error;
        m->load_slot = sd_bus_slot_unref(m->load_slot);
        if (e) {
                r = ble_error_from_dbus(e, NULL);
                if (r == -EHOSTDOWN)
                        log_warning("bluetoothd is not running; waiting for it to appear on the bus");
                else
                        log_error("Failed to load BlueZ objects: %s: %s", e->name, strna(e->message));
                return 0;
        }
        r = ble_mirror_load(m->mirror, reply);
        if (r < 0)
                log_error_errno(r, "BlueZ object list was %s, using what could be read: %m",
                                r == -E2BIG ? "over the cap" : "malformed");
        m->bluez_present = true;
        log_info("Loaded %zu BlueZ objects", ble_mirror_size(m->mirror));
        if (m->cb.bluez_presence)
                m->cb.bluez_presence(m, true, m->userdata);
        adapter_select(m, true);
        ble_manager_schedule_dispatch(m);
        return 0;
}

static void load_objects(BleManager *m) {
        int r;

        m->load_slot = sd_bus_slot_unref(m->load_slot);
        r = sd_bus_call_method_async(m->bus, &m->load_slot, BLUEZ_SERVICE, "/", "org.freedesktop.DBus.ObjectManager",
                                     "GetManagedObjects", load_reply, m, "");
        if (r < 0)
                log_error_errno(r, "Failed to call GetManagedObjects: %m");
}

static int match_installed(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        BleManager *m = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        (void) ret_error;
        if (e) {
                log_error("Failed to install BlueZ signal match: %s: %s", e->name, strna(e->message));
                return 0;
        }
        /* The last match is in place (AddMatch replies come in order): now the snapshot. */
        load_objects(m);
        return 0;
}

int ble_manager_start(BleManager *m) {
        int r;

        if (m->started)
                return 0;
        r = sd_bus_add_match_async(m->bus, &m->match_owner, MATCH_NAME_OWNER, on_name_owner_changed, NULL, m);
        if (r >= 0)
                r = sd_bus_add_match_async(m->bus, &m->match_added, MATCH_INTERFACES_ADDED, on_interfaces_added, NULL, m);
        if (r >= 0)
                r = sd_bus_add_match_async(m->bus, &m->match_removed, MATCH_INTERFACES_REMOVED, on_interfaces_removed,
                                           NULL, m);
        if (r >= 0)
                r = sd_bus_add_match_async(m->bus, &m->match_changed, MATCH_PROPERTIES_CHANGED, on_properties_changed,
                                           match_installed, m);
        if (r < 0)
                return log_error_errno(r, "Failed to install BlueZ signal matches: %m");
        m->started = true;
        return 0;
}

/* ---- lifetime ---- */

int ble_manager_new(sd_event *event, sd_bus *bus, const Config *config, const BleCallbacks *callbacks,
                    void *userdata, BleManager **ret) {
        _cleanup_(ble_manager_freep) BleManager *m = NULL;
        int r;

        if (!event || !config || !ret)
                return -EINVAL;
        m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        m->event = sd_event_ref(event);
        m->config = config;
        if (callbacks)
                m->cb = *callbacks;
        m->userdata = userdata;
        m->backoff_base_usec = 1 * UINT64_C(1000000);
        m->backoff_cap_usec = 60 * UINT64_C(1000000);
        m->op_timeout_usec = BLE_OP_TIMEOUT_USEC_DEFAULT;
        ble_map_init(&m->devices_by_address);
        ble_map_init(&m->scan_index);

        if (bus)
                m->bus = sd_bus_ref(bus);
        else {
                r = sd_bus_open_system(&m->bus);
                if (r < 0)
                        return log_error_errno(r, "Failed to connect to the system bus: %m");
                (void) sd_bus_set_description(m->bus, "ble");
        }
        if (!sd_bus_get_event(m->bus)) {
                r = sd_bus_attach_event(m->bus, event, SD_EVENT_PRIORITY_NORMAL);
                if (r < 0)
                        return log_error_errno(r, "Failed to attach the bus to the event loop: %m");
        }
        r = ble_mirror_new(&mirror_callbacks, m, &m->mirror);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

BleManager *ble_manager_free(BleManager *m) {
        if (!m)
                return NULL;
        while (m->devices_head)
                ble_device_free(m->devices_head);
        m->beacons = ble_beacon_watcher_free(m->beacons);
        m->scan_hold = false;
        m->hold_timer = sd_event_source_disable_unref(m->hold_timer);
        if (m->scan_state != BLE_SCAN_IDLE)
                scan_finish(m, -ECANCELED);
        m->match_added = sd_bus_slot_unref(m->match_added);
        m->match_removed = sd_bus_slot_unref(m->match_removed);
        m->match_changed = sd_bus_slot_unref(m->match_changed);
        m->match_owner = sd_bus_slot_unref(m->match_owner);
        m->load_slot = sd_bus_slot_unref(m->load_slot);
        m->power_slot = sd_bus_slot_unref(m->power_slot);
        m->scan_slot = sd_bus_slot_unref(m->scan_slot);
        m->scan_timer = sd_event_source_disable_unref(m->scan_timer);
        m->dispatch_source = sd_event_source_disable_unref(m->dispatch_source);
        m->no_adapter_timer = sd_event_source_disable_unref(m->no_adapter_timer);
        m->missing_timer = sd_event_source_disable_unref(m->missing_timer);
        m->mirror = ble_mirror_free(m->mirror);
        ble_map_done(&m->devices_by_address);
        ble_map_done(&m->scan_index);
        free(m->adapter_path);
        if (m->bus) {
                /* Let the Disconnect/RemoveDevice calls of freed devices leave before we go. */
                (void) sd_bus_flush(m->bus);
                sd_bus_unref(m->bus);
        }
        sd_event_unref(m->event);
        free(m);
        return NULL;
}

void ble_manager_config_changed(BleManager *m) {
        unsigned used = ble_manager_connected_count(m);

        /* The last desired give way first, so the order of the desired list keeps its meaning. */
        for (BleDevice *d = m->devices_tail, *prev; d && used > m->config->max_connections; d = prev) {
                prev = d->prev;
                if (!d->own && ble_device_holds_slot(d)) {
                        ble_device_yield_slot(d);
                        used--;
                }
        }
        ble_manager_schedule_dispatch(m);
}

void ble_manager_set_backoff(BleManager *m, uint64_t base_usec, uint64_t cap_usec) {
        m->backoff_base_usec = MAX(base_usec, UINT64_C(1000));
        m->backoff_cap_usec = MAX(cap_usec, m->backoff_base_usec);
}

void ble_manager_set_op_timeout(BleManager *m, uint64_t usec) {
        m->op_timeout_usec = MAX(usec, UINT64_C(1000));
}

const char *ble_manager_adapter(BleManager *m) {
        return m->adapter_path;
}

BleMirror *ble_manager_mirror(BleManager *m) {
        return m->mirror;
}

BleDevice *ble_manager_get_device(BleManager *m, const char *address) {
        char addr[BLE_ADDR_STR_MAX];
        BleDevice *d;
        if (ble_address_normalize(address, addr) < 0)
                return NULL;
        d = ble_map_get(&m->devices_by_address, addr);
        return d && !d->own ? d : NULL;
}

int ble_manager_connect_own(BleManager *m, const char *address, const BleOwnCallbacks *cb, void *userdata,
                            BleDevice **ret) {
        char addr[BLE_ADDR_STR_MAX];
        BleDevice *d;
        int r;

        if (!m || !cb || !ret || ble_address_normalize(address, addr) < 0)
                return -EINVAL;
        if (ble_map_get(&m->devices_by_address, addr))
                return -EEXIST;
        r = ble_device_new(m, addr, &d);
        if (r < 0)
                return r;
        d->own = true;
        d->own_cb = *cb;
        d->own_userdata = userdata;
        log_fields(LOG_INFO, LOG_FIELDS({ "BT_ADDR", d->address }),
                   "%s: connecting for the gateway itself (not a desired device, not reported to the cloud)",
                   d->address);
        /* Unknown to BlueZ: scan for it now rather than after the pause between background scans. */
        if (!d->path)
                m->missing_timer = sd_event_source_disable_unref(m->missing_timer);
        ble_manager_schedule_dispatch(m);
        *ret = d;
        return 0;
}

void ble_manager_release_own(BleManager *m, BleDevice *d) {
        if (!m || !d || !d->own || d->removing)
                return;
        /* Freed from the loop (dispatch_handler()): this may run inside one of the device's callbacks. */
        d->own_cb = (BleOwnCallbacks) {};
        ble_device_disconnect_and_forget(d);
        ble_manager_schedule_dispatch(m);
}

int ble_manager_set_desired(BleManager *m, char *const *addresses) {
        char addr[BLE_ADDR_STR_MAX];
        size_t n = 0;
        int r;

        for (char *const *a = addresses; a && *a; a++, n++)
                if (ble_address_normalize(*a, addr) < 0)
                        return -EINVAL;
        if (n > BLE_DESIRED_MAX)
                return -E2BIG;

        /* Drop devices no longer wanted. */
        for (BleDevice *d = m->devices_head, *next; d; d = next) {
                bool keep = d->own; /* not the cloud's */
                next = d->next;
                for (char *const *a = addresses; a && *a; a++)
                        if (ble_address_normalize(*a, addr) >= 0 && streq(addr, d->address)) {
                                keep = true;
                                break;
                        }
                if (!keep) {
                        ble_device_disconnect_and_forget(d);
                        ble_device_free(d);
                }
        }
        /* Add the new ones, in the given order. */
        for (char *const *a = addresses; a && *a; a++) {
                BleDevice *d;
                (void) ble_address_normalize(*a, addr);
                if (ble_map_get(&m->devices_by_address, addr))
                        continue;
                r = ble_device_new(m, addr, &d);
                if (r < 0)
                        return log_error_errno(r, "Failed to add desired device %s: %m", addr);
        }
        ble_manager_schedule_dispatch(m);
        return 0;
}
