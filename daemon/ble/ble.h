/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The BLE layer: a BlueZ client on sd-bus, attached to the daemon's sd-event
 * loop.  It mirrors org.bluez's objects, scans, keeps the desired devices
 * connected (at most [Bluetooth] MaxConnections at a time, the rest queued),
 * builds each device's GATT model and runs GATT operations.  It reports
 * upwards through the BleCallbacks it was given and never calls the layers
 * above otherwise.
 *
 * Everything is asynchronous; no call blocks the loop.  Callbacks run from
 * the loop, never from inside the API call that caused them, except where
 * noted.  Addresses are "AA:BB:CC:DD:EE:FF" (any case on input).  UUIDs are
 * accepted in any of BlueZ's or nRF Cloud's forms and reported in nRF
 * Cloud's: upper-case hex without dashes, SIG 16-bit UUIDs as 4 digits.
 *
 * Errors are negative errno values; those from BlueZ are mapped by
 * ble_error_from_dbus() (ble-error.h), the original D-Bus error name and
 * message ride along in BleOpResult.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "ble-error.h"
#include "ble-mirror.h"
#include "ble-util.h"
#include "config.h"

typedef struct BleManager BleManager;
typedef struct BleDevice BleDevice;

/* Per-device connection state (ARCHITECTURE.md: idle → connecting → resolving → ready → backoff). */
typedef enum BleDeviceState {
        BLE_DEVICE_IDLE,       /* desired, waiting for a connection slot or for BlueZ to know the device */
        BLE_DEVICE_CONNECTING, /* Device1.Connect() in flight */
        BLE_DEVICE_RESOLVING,  /* linked, waiting for ServicesResolved=true */
        BLE_DEVICE_READY,      /* GATT model built, operations allowed */
        BLE_DEVICE_BACKOFF,    /* failed or lost, retrying after a capped, jittered delay */
        _BLE_DEVICE_STATE_MAX,
} BleDeviceState;

typedef enum BleWriteMode {
        BLE_WRITE_AUTO,    /* request if the characteristic has "write", else command */
        BLE_WRITE_REQUEST, /* ATT Write Request: acknowledged by the peer */
        BLE_WRITE_COMMAND, /* ATT Write Command: write without response */
        _BLE_WRITE_MODE_MAX,
} BleWriteMode;

/* GATT characteristic properties, from BlueZ's Flags (Core spec Vol 3 Part G §3.3.1.1). */
enum {
        BLE_CHRC_BROADCAST = 1u << 0,
        BLE_CHRC_READ = 1u << 1,
        BLE_CHRC_WRITE_WITHOUT_RESPONSE = 1u << 2,
        BLE_CHRC_WRITE = 1u << 3,
        BLE_CHRC_NOTIFY = 1u << 4,
        BLE_CHRC_INDICATE = 1u << 5,
        BLE_CHRC_AUTHENTICATED_SIGNED_WRITES = 1u << 6,
        BLE_CHRC_EXTENDED_PROPERTIES = 1u << 7,
};

#define BLE_GATT_SERVICES_MAX 64
#define BLE_GATT_CHRCS_MAX 64  /* per service */
#define BLE_GATT_DESCS_MAX 16  /* per characteristic */
#define BLE_OPS_QUEUED_MAX 64  /* per device */
#define BLE_NOTIFY_WISHES_MAX 64
#define BLE_DESIRED_MAX 1000
#define BLE_SCAN_WAITERS_MAX 16
/*
 * Values read while a device resolves, before it becomes READY (as nRF
 * Cloud's gateway-common does for device_discover_result): at most this many
 * ReadValue calls and this many bytes per connection, each call cut after
 * BLE_DISCOVERY_READ_TIMEOUT_USEC.  What is over a cap, refused or too slow
 * stays without a value.
 */
#define BLE_DISCOVERY_READS_MAX 64
#define BLE_DISCOVERY_BYTES_MAX 8192
#define BLE_DISCOVERY_READ_TIMEOUT_USEC (2 * UINT64_C(1000000))
#define BLE_DISCOVERY_LOGGED_MAX 64 /* attributes whose failed read is remembered, per device */
#define BLE_BEACONS_MAX 100    /* advertisers watched at once (ble_manager_set_beacons()) */

typedef struct BleGattDesc {
        char uuid[BLE_UUID_STR_MAX];
        char *path;        /* "SVC/CHRC/DESC" with normalised UUIDs */
        char *object_path; /* BlueZ's, valid only until the next reconnect */
        bool readable;     /* BlueZ's Flags say "read" (or say nothing) */
        uint8_t *value;    /* read during the last resolution, NULL if not */
        size_t value_size;
} BleGattDesc;

typedef struct BleGattChrc {
        char uuid[BLE_UUID_STR_MAX];
        char *path; /* "SVC/CHRC" */
        char *object_path;
        unsigned properties; /* BLE_CHRC_* */
        uint16_t mtu;        /* BlueZ's MTU of the link (GattCharacteristic1.MTU), 0 if unknown */
        uint8_t *value;      /* read during the last resolution, NULL if not */
        size_t value_size;
        BleGattDesc *descs;
        size_t n_descs;
} BleGattChrc;

typedef struct BleGattService {
        char uuid[BLE_UUID_STR_MAX];
        char *object_path;
        bool primary;
        BleGattChrc *chrcs;
        size_t n_chrcs;
} BleGattService;

typedef struct BleGattModel {
        BleGattService *services; /* sorted by UUID, then characteristics and descriptors by UUID */
        size_t n_services;
} BleGattModel;

typedef struct BleScanResult {
        char address[BLE_ADDR_STR_MAX];
        char *address_type; /* "public"/"random", NULL if BlueZ did not say */
        char *name;         /* NULL if the device has none */
        int16_t rssi;
        bool has_rssi;
        char **uuids; /* normalised service UUIDs, never NULL */
        BleMfrList manufacturer_data;
        BleSvcDataList service_data; /* UUIDs normalised */
        int16_t tx_power;
        bool has_tx_power;
        int advertising_flags; /* the first byte of AdvertisingFlags, -1 if BlueZ did not say */
        BleMfrList advertising_data; /* AD structures BlueZ does not decode: company is the AD type */
} BleScanResult;

typedef struct BleOpResult {
        int error;                 /* 0 or negative errno */
        const char *error_name;    /* D-Bus error name, NULL if none */
        const char *error_message; /* D-Bus error message, NULL if none */
        int att_error;             /* ATT error code from "Operation failed with ATT error: 0x..", or -1 */
        const uint8_t *value;      /* read results */
        size_t size;
} BleOpResult;

typedef void (*BleOpCallback)(BleDevice *d, const BleOpResult *result, void *userdata);
/* error: 0, or why the scan could not run (-ENODEV: no adapter, ...). Results belong to the manager. */
typedef void (*BleScanCallback)(BleManager *m, int error, const BleScanResult *results, size_t n, void *userdata);

typedef struct BleCallbacks {
        /* bluetoothd appeared (present=true, objects loaded) or went away. */
        void (*bluez_presence)(BleManager *m, bool present, void *userdata);
        /* The adapter in use changed: path NULL when there is none. */
        void (*adapter)(BleManager *m, const char *path, bool powered, void *userdata);
        /*
         * Every transition of a desired device. In READY, ble_device_gatt() is valid, with the
         * values of readable characteristics and descriptors read just before (see
         * BLE_DISCOVERY_READS_MAX).
         */
        void (*device_state)(BleManager *m, BleDevice *d, BleDeviceState old_state, BleDeviceState new_state,
                             void *userdata);
        /* A notification/indication of a subscribed characteristic. */
        void (*notification)(BleManager *m, BleDevice *d, const char *service_uuid, const char *chrc_uuid,
                             const uint8_t *value, size_t size, void *userdata);
        /* A watched beacon (ble_manager_set_beacons()) was seen: its latest advertisement, at most once per
         * [Bluetooth] BeaconReportIntervalSec= per beacon.  r is valid during the call only. */
        void (*beacon)(BleManager *m, const BleScanResult *r, void *userdata);
} BleCallbacks;

/*
 * Creates the manager.  bus: an sd-bus connection to use, or NULL to open
 * the system bus (sd_bus_open_system(), which honours
 * DBUS_SYSTEM_BUS_ADDRESS) and attach it to event.  config must outlive the
 * manager; its [Bluetooth] keys are read when needed, so a reload that
 * replaces the values in place applies MaxConnections/MaxScanResults/ScanRSSI
 * to the next decision.
 */
int ble_manager_new(sd_event *event, sd_bus *bus, const Config *config, const BleCallbacks *callbacks,
                    void *userdata, BleManager **ret);
/* Cancels everything (pending operation callbacks get -ECANCELED) and frees. */
BleManager *ble_manager_free(BleManager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(BleManager *, ble_manager_free);

/* Installs the signal matches, then loads BlueZ's objects. Idempotent. */
int ble_manager_start(BleManager *m);

/*
 * To be called after a configuration reload changed [Bluetooth] keys in the
 * Config given to ble_manager_new().  If MaxConnections went down, the
 * devices desired last are disconnected and queued until slots free up.
 */
void ble_manager_config_changed(BleManager *m);

/* Retry delays of devices (default 1 s doubling up to 60 s, with full jitter). */
void ble_manager_set_backoff(BleManager *m, uint64_t base_usec, uint64_t cap_usec);
/* Timeout of each GATT operation (default 10 s). */
void ble_manager_set_op_timeout(BleManager *m, uint64_t usec);

/*
 * Replaces the set of devices to keep connected (NULL-terminated list, at
 * most BLE_DESIRED_MAX).  New addresses are queued for a connection slot;
 * while some are unknown to BlueZ, the manager scans in the background (10 s
 * scans, 20 s apart) so that BlueZ sees them advertising and creates them;
 * addresses no longer listed are disconnected, removed from BlueZ if the
 * gateway caused BlueZ to create them (BlueZ did not know the address when
 * it became desired), and their BleDevice is freed; their pending operations
 * complete with -ECANCELED from inside this call.  -EINVAL for a malformed
 * address (nothing is changed).  Callbacks must not call this for a device
 * whose callback is running.  An empty list (or NULL) disconnects everything,
 * e.g. before a graceful stop.
 */
int ble_manager_set_desired(BleManager *m, char *const *addresses);

/*
 * Scans for duration_usec: SetDiscoveryFilter(Transport=le, DuplicateData=true,
 * RSSI=ScanRSSI if set), StartDiscovery, StopDiscovery.  When the scan ends,
 * cb gets the devices seen during it (objects BlueZ added, and devices it
 * already knew whose advertising properties changed), once per address with
 * their newest properties, at most MaxScanResults (the first ones seen).  A
 * scan requested while one runs joins its discovery session, which goes on
 * until the last request's time is up; each request gets, at its own end,
 * what the session has seen so far.  Results are valid during the callback
 * only.  Returns -EHOSTDOWN
 * without bluetoothd, -ENODEV without an adapter, -EBUSY while one stops.
 */
int ble_manager_scan(BleManager *m, uint64_t duration_usec, BleScanCallback cb, void *userdata);
bool ble_manager_is_scanning(BleManager *m);

/*
 * Replaces the set of advertisers to watch without connecting (NULL-terminated
 * list of addresses, at most BLE_BEACONS_MAX; the shadow's desired.beacons).
 * While the set is not empty the manager keeps a discovery session open
 * (Transport=le, DuplicateData=true, so that every advertisement reaches the
 * gateway even when its bytes do not change), which scans join, and each
 * advertisement of a watched address is reported through the beacon
 * callback, at most once per [Bluetooth] BeaconReportIntervalSec= per
 * address, with the latest data.  An empty list (or NULL) stops watching and
 * lets the discovery session end.  -EINVAL for a malformed address, -E2BIG
 * over the cap (nothing is changed).
 */
int ble_manager_set_beacons(BleManager *m, char *const *addresses);
size_t ble_manager_beacon_count(BleManager *m);

/*
 * A connection the gateway makes for itself, not for the cloud: a DFU
 * bootloader that advertises at an address of its own.  The device is
 * connected as a desired one is (scanning while BlueZ does not know it,
 * backoff after a failure), but it takes no MaxConnections slot, is not in
 * desiredConnections (ble_manager_set_desired() leaves it alone), is not
 * returned by ble_manager_get_device()/ble_manager_next_device(), and its
 * transitions and notifications go to cb only, never to the BleCallbacks.
 * The GATT operations of ble_device_*() work on it as on any device.
 * -EEXIST if the address is desired or already connected this way.
 */
typedef struct BleOwnCallbacks {
        void (*state)(BleDevice *d, BleDeviceState new_state, void *userdata);
        void (*notification)(BleDevice *d, const char *service_uuid, const char *chrc_uuid, const uint8_t *value,
                             size_t size, void *userdata);
} BleOwnCallbacks;
int ble_manager_connect_own(BleManager *m, const char *address, const BleOwnCallbacks *cb, void *userdata,
                            BleDevice **ret);
/* Disconnects such a device and removes it from BlueZ if BlueZ learnt of it
 * for this connection.  Its callbacks end here; the device is freed from the
 * loop, where its pending operations complete with -ECANCELED, so this may be
 * called from inside its callbacks.  d must not be used afterwards. */
void ble_manager_release_own(BleManager *m, BleDevice *d);
/*
 * hold: the device is not connected again after its link is gone (it went
 * into a DFU bootloader at another address, and attempts at its own address
 * would only hold up the radio); a connection attempt already running goes
 * on.  Released (hold false): it is expected back, and tries at once, its
 * backoff reset.  NULL is ignored.
 */
void ble_device_hold(BleDevice *d, bool hold);

BleDevice *ble_manager_get_device(BleManager *m, const char *address);
/* The desired devices in order: NULL gives the first, the last gives NULL. */
BleDevice *ble_manager_next_device(BleManager *m, BleDevice *d);
/* Devices in slots (connecting, resolving, ready). */
unsigned ble_manager_connected_count(BleManager *m);
const char *ble_manager_adapter(BleManager *m);
BleMirror *ble_manager_mirror(BleManager *m);

const char *ble_device_address(BleDevice *d);
/* BlueZ's AddressType ("public" or "random"), NULL while BlueZ has no object for the device. */
const char *ble_device_address_type(BleDevice *d);
BleDeviceState ble_device_state(BleDevice *d);
/* The characteristics whose notifications are wanted (normalised service and characteristic UUIDs). */
size_t ble_device_n_subscriptions(BleDevice *d);
int ble_device_subscription(BleDevice *d, size_t i, const char **ret_service, const char **ret_chrc);
/* The GATT model, or NULL unless READY.  Valid until the next callback. */
const BleGattModel *ble_device_gatt(BleDevice *d);
const BleGattChrc *ble_gatt_find_chrc(const BleGattModel *g, const char *service_uuid, const char *chrc_uuid);

/*
 * GATT operations.  Queued per device and run one at a time (BlueZ answers
 * InProgress to concurrent writes), each with the operation timeout.  They
 * return 0 when queued, -ENOTCONN unless READY, -ENOBUFS when the queue is
 * full, -EINVAL for a bad UUID or a value over 512 bytes.  The callback runs
 * exactly once, later.  Characteristics and descriptors are looked up by
 * UUID (the service UUID is honoured) when the operation starts.
 */
int ble_device_read(BleDevice *d, const char *service_uuid, const char *chrc_uuid, BleOpCallback cb,
                    void *userdata);
int ble_device_write(BleDevice *d, const char *service_uuid, const char *chrc_uuid, const uint8_t *value,
                     size_t size, BleWriteMode mode, BleOpCallback cb, void *userdata);
int ble_device_read_descriptor(BleDevice *d, const char *service_uuid, const char *chrc_uuid,
                               const char *desc_uuid, BleOpCallback cb, void *userdata);
/* Writing the CCCD (2902) is refused with -EPERM: use ble_device_set_notify(). */
int ble_device_write_descriptor(BleDevice *d, const char *service_uuid, const char *chrc_uuid,
                                const char *desc_uuid, const uint8_t *value, size_t size, BleOpCallback cb,
                                void *userdata);
/*
 * Enables or disables notifications/indications (StartNotify/StopNotify; with
 * [Bluetooth] AcquireNotify=yes, characteristics that can notify use
 * AcquireNotify and a socket, acquired again when bluetoothd drops it, and
 * disabling closes the socket).
 * The wish is remembered and re-applied every time the device becomes READY
 * (reconnects, bluetoothd restarts).  Returns 0 if an operation was queued
 * (cb runs later), 1 if the device is not READY and only the wish was
 * recorded (cb is not called).
 */
int ble_device_set_notify(BleDevice *d, const char *service_uuid, const char *chrc_uuid, bool enable,
                          BleOpCallback cb, void *userdata);

const char *ble_device_state_to_string(BleDeviceState s);
const char *ble_write_mode_to_string(BleWriteMode m);
unsigned ble_chrc_flags_to_properties(char *const *flags);
