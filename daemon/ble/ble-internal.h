/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared between ble-manager.c and ble-device.c; not part of the API. */

#include "backoff.h"
#include "ble.h"

#define BLUEZ_SERVICE "org.bluez"
#define BLE_OP_TIMEOUT_USEC_DEFAULT (10 * UINT64_C(1000000))
#define BLE_ECHO_MAX 64 /* Value signals held while a read of the same characteristic is in flight */
/* Write commands (write without response) of one device on the bus at once; any other operation
 * waits until nothing is in flight and runs alone. */
#define BLE_COMMANDS_INFLIGHT_MAX 4

typedef enum BleOpKind {
        BLE_OP_READ_CHRC,
        BLE_OP_WRITE_CHRC,
        BLE_OP_READ_DESC,
        BLE_OP_WRITE_DESC,
        BLE_OP_START_NOTIFY,
        BLE_OP_STOP_NOTIFY,
        _BLE_OP_KIND_MAX,
} BleOpKind;

typedef struct BleOp BleOp;
struct BleOp {
        BleOpKind kind;
        char service[BLE_UUID_STR_MAX];
        char chrc[BLE_UUID_STR_MAX];
        char desc[BLE_UUID_STR_MAX];
        uint8_t *data;
        size_t size;
        BleWriteMode mode;
        BleOpCallback cb;
        void *userdata;
        char *object_path; /* resolved when the operation starts */
        bool acquire;      /* START_NOTIFY done with AcquireNotify */
        bool local;        /* completes without a D-Bus call (releasing an acquired socket) */
        bool command;      /* a write command: may be in flight with other write commands */
        bool done;         /* answered (reply, or error), completes when the ones before it have */
        int error;         /* done without a reply: why */
        BleDevice *device;
        sd_bus_slot *slot;     /* the call in flight */
        sd_bus_message *reply; /* held until the operations sent before it complete */
        BleOp *next;
};

typedef struct BleNotifyWish {
        char service[BLE_UUID_STR_MAX];
        char chrc[BLE_UUID_STR_MAX];
        int fd; /* AcquireNotify socket, or -EBADF */
        sd_event_source *io;
} BleNotifyWish;

struct BleDevice {
        BleManager *manager;
        BleDevice *prev, *next; /* in the manager's list, desired order */
        char address[BLE_ADDR_STR_MAX];
        char *path; /* BlueZ object path while the mirror holds the device */
        bool created; /* BlueZ created the object after we asked for the device */
        bool removing;

        BleDeviceState state;
        sd_bus_slot *connect_slot;
        sd_event_source *timer; /* connect/resolve timeout, or backoff */
        Backoff backoff;

        BleGattModel gatt;
        bool gatt_dirty; /* BlueZ's GATT objects changed since the model was built */

        /* Reading the values for the discovery result, while RESOLVING. */
        sd_bus_slot *discovery_slot;
        char *discovery_path;       /* object being read */
        size_t discovery_next;      /* index of the next readable attribute, model order */
        unsigned discovery_reads;   /* ReadValue calls made */
        size_t discovery_bytes;     /* bytes kept */
        unsigned discovery_failed;  /* reads refused, failed or timed out */
        /* The per-device lists below grow as needed (up to their *_MAX), so that an idle device
         * costs a few hundred bytes rather than the 7 KiB of fixed arrays. */
        char **read_logged; /* "SVC/CHRC[/DESC]" whose failed read was logged */
        size_t n_read_logged;

        BleNotifyWish *wishes; /* at most BLE_NOTIFY_WISHES_MAX */
        size_t n_wishes;

        BleOp *ops_head, *ops_tail;
        size_t n_ops;
        BleOp *inflight, *inflight_tail; /* sent, oldest first: one operation, or write commands */
        size_t n_inflight;
        sd_event_source *ops_defer;
        bool was_absent; /* BlueZ did not know the device when it became desired */
        BleBytes *echo; /* Value signals seen during an in-flight read, at most BLE_ECHO_MAX */
        size_t n_echo, n_echo_allocated;
        bool own; /* ble_manager_connect_own(): reported to own_cb only, no slot counted */
        bool held; /* ble_device_hold(): not connected again until released */
        BleOwnCallbacks own_cb;
        void *own_userdata;
};

typedef enum BleScanState {
        BLE_SCAN_IDLE,
        BLE_SCAN_STARTING, /* SetDiscoveryFilter + StartDiscovery in flight */
        BLE_SCAN_RUNNING,
        BLE_SCAN_STOPPING,
        _BLE_SCAN_STATE_MAX,
} BleScanState;

typedef struct BleBeaconWatcher BleBeaconWatcher;

typedef struct BleScanWaiter {
        BleScanCallback cb;
        void *userdata;
        uint64_t end_usec; /* CLOCK_MONOTONIC: when this request gets its results */
} BleScanWaiter;

struct BleManager {
        sd_event *event;
        sd_bus *bus;
        const Config *config;
        BleCallbacks cb;
        void *userdata;

        BleMirror *mirror;
        bool started;
        bool bluez_present;
        sd_bus_slot *match_added, *match_removed, *match_changed, *match_owner;
        sd_bus_slot *load_slot;
        char *adapter_path;
        sd_bus_slot *power_slot;
        sd_event_source *no_adapter_timer; /* reports a missing adapter unless one shows up soon */
        sd_event_source *missing_timer;    /* next background scan for desired devices BlueZ does not know */
        bool missing_scan;                 /* a background scan is running */

        BleDevice *devices_head, *devices_tail;
        size_t n_devices;
        BleMap devices_by_address;
        bool dispatching;
        sd_event_source *dispatch_source;

        uint64_t backoff_base_usec, backoff_cap_usec;
        uint64_t op_timeout_usec;

        BleScanState scan_state;
        sd_bus_slot *scan_slot;
        sd_event_source *scan_timer;
        BleScanWaiter scan_waiters[BLE_SCAN_WAITERS_MAX];
        size_t n_scan_waiters;
        BleScanResult *scan_results;
        size_t n_scan_results;
        BleMap scan_index; /* address → index+1 into scan_results */
        bool scan_hold;                /* keep a discovery session open without waiters (beacons) */
        sd_event_source *hold_timer;   /* retry of a held session that failed to start */

        BleBeaconWatcher *beacons;     /* ble-beacon.c, NULL until beacons are first set */
};

/* ble-device.c */
int ble_device_new(BleManager *m, const char *address, BleDevice **ret);
BleDevice *ble_device_free(BleDevice *d);
void ble_device_enter_state(BleDevice *d, BleDeviceState s);
void ble_device_start_connect(BleDevice *d);
bool ble_device_holds_slot(const BleDevice *d);
void ble_device_object_added(BleDevice *d, BleObject *o);
void ble_device_object_changed(BleDevice *d, BleObject *o, uint64_t changed, uint64_t invalidated);
void ble_device_object_removed(BleDevice *d);
void ble_device_bluez_lost(BleDevice *d);
void ble_device_chrc_value(BleDevice *d, BleObject *chrc, const char *service_uuid, const char *chrc_uuid);
void ble_device_gatt_changed(BleDevice *d);
void ble_device_disconnect_and_forget(BleDevice *d);
void ble_device_yield_slot(BleDevice *d);

/* ble-beacon.c */
int ble_beacon_watcher_new(BleManager *m, BleBeaconWatcher **ret);
BleBeaconWatcher *ble_beacon_watcher_free(BleBeaconWatcher *w);
int ble_beacon_watcher_set(BleBeaconWatcher *w, char *const *addresses);
size_t ble_beacon_watcher_count(BleBeaconWatcher *w);
/* A device's advertising properties changed (or it appeared). */
void ble_beacon_watcher_seen(BleBeaconWatcher *w, BleObject *o);

/* ble-manager.c */
void ble_manager_schedule_dispatch(BleManager *m);
/* Holds a discovery session open while hold is true (scans join it), or lets it end. */
void ble_manager_scan_hold(BleManager *m, bool hold);
/* A result from the mirror's device properties, UUIDs normalised; clear it also after a failure. */
int ble_scan_result_fill(BleScanResult *r, const BleDeviceProps *p);
void ble_scan_result_clear(BleScanResult *r);
/* Replaces *cur by *newer (taken), keeping cur's name and RSSI where newer has none. */
void ble_scan_result_update(BleScanResult *cur, BleScanResult *newer);
BleDevice *ble_manager_device_for_object(BleManager *m, BleObject *o);
