/* SPDX-License-Identifier: MIT */
/*
 * The beacon watcher: advertisers the shadow lists in desired.beacons are
 * watched without connecting.  While the list is not empty the manager holds
 * a discovery session open (ble_manager_scan_hold()); every advertisement of
 * a watched address updates that beacon's latest sighting, which is reported
 * upwards at most once per [Bluetooth] BeaconReportIntervalSec=: at once when
 * the interval since the last report is over, else when it ends.
 *
 * States of the watcher (one enum, one enter function):
 *   idle      nothing watched, no discovery held;
 *   watching  at least one beacon, discovery held (the manager opens the
 *             session again whenever bluetoothd or the adapter come back).
 * Each beacon has no state of its own beyond "a sighting is pending".
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ble-internal.h"
#include "log.h"
#include "util.h"

typedef enum BleBeaconState {
        BLE_BEACON_IDLE,
        BLE_BEACON_WATCHING,
        _BLE_BEACON_STATE_MAX,
} BleBeaconState;

static const char *const beacon_state_table[_BLE_BEACON_STATE_MAX] = {
        [BLE_BEACON_IDLE] = "idle",
        [BLE_BEACON_WATCHING] = "watching",
};

static const char *beacon_state_to_string(BleBeaconState s) {
        return s < _BLE_BEACON_STATE_MAX ? beacon_state_table[s] : NULL;
}

typedef struct BleBeacon {
        BleBeaconWatcher *watcher;
        char address[BLE_ADDR_STR_MAX];
        uint64_t last_sent;  /* CLOCK_MONOTONIC, 0: never reported */
        bool pending;        /* latest holds a sighting not reported yet */
        BleScanResult latest;
        sd_event_source *timer; /* the end of the interval, while pending */
} BleBeacon;

struct BleBeaconWatcher {
        BleManager *manager;
        BleBeaconState state;
        BleBeacon *beacons;
        size_t n_beacons;
        uint64_t reported; /* sightings reported, for the log */
};

static uint64_t beacon_interval_usec(const BleBeaconWatcher *w) {
        return (uint64_t) MAX(w->manager->config->beacon_report_interval_sec, 1u) * UINT64_C(1000000);
}

static void beacon_clear(BleBeacon *b) {
        b->timer = sd_event_source_disable_unref(b->timer);
        ble_scan_result_clear(&b->latest);
}

static void watcher_enter_state(BleBeaconWatcher *w, BleBeaconState s) {
        BleBeaconState old = w->state;

        if (old == s)
                return;
        w->state = s;
        log_debug("Beacon watcher %s → %s", beacon_state_to_string(old), beacon_state_to_string(s));
        switch (s) {
        case BLE_BEACON_IDLE:
                ble_manager_scan_hold(w->manager, false);
                break;
        case BLE_BEACON_WATCHING:
                ble_manager_scan_hold(w->manager, true);
                break;
        case _BLE_BEACON_STATE_MAX:
                break;
        }
}

static void beacon_report(BleBeacon *b, uint64_t now) {
        BleManager *m = b->watcher->manager;

        b->pending = false;
        b->last_sent = now;
        b->watcher->reported++;
        log_debug("Beacon %s seen, RSSI %d", b->address, b->latest.has_rssi ? b->latest.rssi : 0);
        if (m->cb.beacon)
                m->cb.beacon(m, &b->latest, m->userdata);
}

static int beacon_timer_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        BleBeacon *b = userdata;

        (void) s;
        (void) usec;
        b->timer = sd_event_source_disable_unref(b->timer);
        if (b->pending)
                beacon_report(b, now_usec(CLOCK_MONOTONIC));
        return 0;
}

static BleBeacon *watcher_find(BleBeaconWatcher *w, const char *address) {
        for (size_t i = 0; i < w->n_beacons; i++)
                if (streq(w->beacons[i].address, address))
                        return &w->beacons[i];
        return NULL;
}

void ble_beacon_watcher_seen(BleBeaconWatcher *w, BleObject *o) {
        BleManager *m = w->manager;
        BleScanResult tmp = { 0 };
        char addr[BLE_ADDR_STR_MAX];
        uint64_t now, due;
        BleBeacon *b;
        int r;

        if (w->state != BLE_BEACON_WATCHING || o->kind != BLE_OBJ_DEVICE)
                return;
        if (o->device.adapter && m->adapter_path && !streq(o->device.adapter, m->adapter_path))
                return;
        if (ble_address_normalize(o->device.address, addr) < 0 || !(b = watcher_find(w, addr)))
                return;
        r = ble_scan_result_fill(&tmp, &o->device);
        if (r < 0) {
                ble_scan_result_clear(&tmp);
                log_debug_errno(r, "Failed to record a sighting of beacon %s, ignoring: %m", addr);
                return;
        }
        ble_scan_result_update(&b->latest, &tmp);

        now = now_usec(CLOCK_MONOTONIC);
        due = b->last_sent + beacon_interval_usec(w);
        if (b->last_sent == 0 || now >= due) {
                b->timer = sd_event_source_disable_unref(b->timer);
                beacon_report(b, now);
                return;
        }
        b->pending = true;
        if (b->timer)
                return;
        r = sd_event_add_time(m->event, &b->timer, CLOCK_MONOTONIC, due, 0, beacon_timer_handler, b);
        if (r < 0) {
                log_warning_errno(r, "Failed to arm the report timer of beacon %s, the sighting waits for the next "
                                  "advertisement: %m", addr);
                return;
        }
        (void) sd_event_source_set_description(b->timer, "ble-beacon");
}

int ble_beacon_watcher_set(BleBeaconWatcher *w, char *const *addresses) {
        _cleanup_free_ BleBeacon *v = NULL;
        char addr[BLE_ADDR_STR_MAX];
        size_t n = 0, k = 0;

        for (char *const *a = addresses; a && *a; a++, n++)
                if (ble_address_normalize(*a, addr) < 0)
                        return -EINVAL;
        if (n > BLE_BEACONS_MAX)
                return -E2BIG;
        v = calloc(MAX(n, (size_t) 1), sizeof *v);
        if (!v)
                return -ENOMEM;

        /* Beacons still listed keep their last report time, so a shadow update does not send them early. */
        for (char *const *a = addresses; a && *a; a++) {
                BleBeacon *old;
                bool dup = false;

                (void) ble_address_normalize(*a, addr);
                for (size_t i = 0; i < k && !dup; i++)
                        dup = streq(v[i].address, addr);
                if (dup)
                        continue;
                old = watcher_find(w, addr);
                if (old) {
                        v[k] = *old;
                        old->timer = NULL;
                        old->latest = (BleScanResult){ 0 };
                } else
                        strcpy(v[k].address, addr);
                v[k].watcher = w;
                k++;
        }
        for (size_t i = 0; i < w->n_beacons; i++)
                beacon_clear(&w->beacons[i]);
        free(w->beacons);
        w->beacons = TAKE_PTR(v);
        w->n_beacons = k;
        /* The timers point at their beacon: the array moved. */
        for (size_t i = 0; i < k; i++)
                if (w->beacons[i].timer)
                        (void) sd_event_source_set_userdata(w->beacons[i].timer, &w->beacons[i]);

        if (k > 0)
                log_info("Watching %zu beacon(s), reporting each at most every %us", k,
                         w->manager->config->beacon_report_interval_sec);
        else if (w->state == BLE_BEACON_WATCHING)
                log_info("Stopped watching beacons, %" PRIu64 " sighting(s) reported", w->reported);
        watcher_enter_state(w, k > 0 ? BLE_BEACON_WATCHING : BLE_BEACON_IDLE);
        return 0;
}

size_t ble_beacon_watcher_count(BleBeaconWatcher *w) {
        return w->n_beacons;
}

int ble_beacon_watcher_new(BleManager *m, BleBeaconWatcher **ret) {
        BleBeaconWatcher *w = calloc(1, sizeof *w);

        if (!w)
                return -ENOMEM;
        w->manager = m;
        w->state = BLE_BEACON_IDLE;
        *ret = w;
        return 0;
}

BleBeaconWatcher *ble_beacon_watcher_free(BleBeaconWatcher *w) {
        if (!w)
                return NULL;
        for (size_t i = 0; i < w->n_beacons; i++)
                beacon_clear(&w->beacons[i]);
        free(w->beacons);
        /* The manager releases its hold itself when it goes away. */
        if (w->state == BLE_BEACON_WATCHING && w->manager->beacons == w)
                w->manager->scan_hold = false;
        free(w);
        return NULL;
}
