/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The nRF Cloud gateway protocol (spec nrfcloud-mqtt.md §2, §3, §7) on top
 * of the BLE layer and the cloud session:
 *
 *   - the shadow's desiredConnections drive ble_manager_set_desired();
 *   - each BLE state change of a desired device becomes device_connect_result
 *     / device_disconnect and an update of reported.statusConnections;
 *   - the first GATT model of a device becomes device_discover_result
 *     (no BLE FOTA job is requested: FOTA of BLE devices does not exist yet);
 *   - c2g operations run against the BLE layer and are answered with the
 *     g2c events of §2.4 carrying the operation's id as requestId; every
 *     operation that cannot run is answered with an "error" event, never
 *     with silence;
 *   - notifications become device_characteristic_value_changed, optionally
 *     coalesced per characteristic ([Bluetooth] NotifyMinIntervalMs=).
 *
 * The protocol talks to the cloud only through a ProtocolSink so that tests
 * can capture what it sends.  The BLE events reach it through the
 * protocol_device_state() / protocol_notification() entry points (the
 * gateway forwards BleCallbacks there), which take plain addresses and
 * models so that the protocol can be driven without bluetoothd.
 *
 * Deliberate choices:
 *   - scan results: the BLE layer reports a scan's devices when the scan
 *     ends.  With scanReporting "instant" each device is then sent in its
 *     own scan_result (timeout:false), followed by a final scan_result with
 *     no devices and timeout:true (as nRF Cloud's own gateways do); with
 *     "batch" all devices go in one scan_result with timeout:true.  The
 *     name and RSSI filters are applied here.  scanMode "passive" cannot be
 *     asked of BlueZ's discovery and is run as an active scan (logged).
 *   - beacon scans (scanType 1) run the same LE discovery and report the
 *     advertisers that broadcast data (manufacturer data, service data or AD
 *     structures BlueZ does not decode), each with its advertisementData;
 *     gateway-common keeps only the beacon formats it recognises (iBeacon,
 *     AltBeacon, Eddystone), which would drop sensors that broadcast their
 *     readings.
 *   - watched beacons (desired.beacons) are reported as unsolicited
 *     scan_result messages (requestId "N/A", subType "instant", timeout
 *     false, one device with its advertisementData), as gateway-common's
 *     performWatches() does, at most once per BeaconReportIntervalSec=.
 *   - get_gateway_status is not answered (logged at debug): no Nordic
 *     gateway answers it and §2.4 has no event type for it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "ble.h"
#include "config.h"
#include "gatt-model.h"
#include "macro.h"
#include "outbox.h"
#include "shadow.h"

/* Caps on what the cloud can make the protocol hold. */
#define PROTOCOL_DEVICES_MAX SHADOW_CONNECTIONS_MAX
#define PROTOCOL_OPS_MAX 256            /* c2g operations waiting for the BLE layer */
#define PROTOCOL_SCANS_MAX 4            /* scan operations waiting for their results */
#define PROTOCOL_DISCOVER_WAITERS_MAX 8 /* device_discover requests per device waiting for READY */
#define PROTOCOL_CCC_MAX 64             /* remembered subscriptions per device */
#define PROTOCOL_COALESCE_MAX 1024      /* characteristics being coalesced */

/* What the protocol reports to nRF Cloud, and how it learns the cloud's state. */
typedef struct ProtocolSink {
        /* A g2c event (compact JSON) through the outbox. */
        int (*publish_g2c)(void *impl, OutboxClass class, const char *payload, size_t len);
        /* reported.statusConnections entries. */
        int (*report_connections)(void *impl, const ShadowConnectionStatus *v, size_t n);
        /* delete_yourself: forget the account's wishes, wait to be paired again. */
        void (*unpair)(void *impl, const char *why);
} ProtocolSink;

/* Reported connection state of one desired device (statusConnections). */
typedef enum ProtocolDeviceState {
        PROTOCOL_DEVICE_CONNECTING, /* desired, not (yet) usable */
        PROTOCOL_DEVICE_CONNECTED,  /* READY: GATT model built */
        _PROTOCOL_DEVICE_STATE_MAX,
        _PROTOCOL_DEVICE_STATE_INVALID = -EINVAL,
} ProtocolDeviceState;

typedef struct Protocol Protocol;

/*
 * gateway_id: the g2c "gatewayId".  ble may be NULL (no Bluetooth): every
 * device operation is then answered with an error event.  config must
 * outlive the protocol; NotifyMinIntervalMs is read on each notification,
 * so a reload applies at once.
 */
int protocol_new(sd_event *event, const Config *config, const char *gateway_id, BleManager *ble,
                 const ProtocolSink *sink, void *sink_impl, Protocol **ret);
/* Operations still waiting for the BLE layer are orphaned (their callbacks
 * then only free them), coalesced values not yet sent are dropped. */
Protocol *protocol_free(Protocol *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(Protocol *, protocol_free);

/* The desired connections from the shadow; known=false after DISCON or
 * before the first document (every device is disconnected then). */
int protocol_set_desired(Protocol *p, const DesiredConnection *v, size_t n, bool known);

/* desired.beacons from the shadow: the advertisers to watch (empty: none). */
int protocol_set_beacons(Protocol *p, const char (*addresses)[BT_ADDR_STR_LEN + 1], size_t n);
/* From the BLE layer's beacon callback: a watched beacon's latest advertisement. */
void protocol_beacon(Protocol *p, const BleScanResult *r);

/* The addresses under reported.statusConnections of the accepted shadow
 * document: the entries of those that are not desired are removed (a
 * previous run, or another gateway software, left them behind). */
void protocol_clear_stale_status(Protocol *p, const char (*addresses)[BT_ADDR_STR_LEN + 1], size_t n);

/* A c2g payload (CLOUD_MESSAGE_C2G). */
void protocol_handle_c2g(Protocol *p, const uint8_t *payload, size_t len);

/* From the BLE layer's callbacks.  address_type: BlueZ's AddressType, NULL if not known;
 * gatt: the model when new_state is READY. */
void protocol_device_state(Protocol *p, const char *address, const char *address_type, BleDeviceState old_state,
                           BleDeviceState new_state, const BleGattModel *gatt);
void protocol_notification(Protocol *p, const char *address, const char *service_uuid, const char *chrc_uuid,
                           const uint8_t *value, size_t size);

/* Converts the BLE layer's model into the codec's (CCC values from the
 * subscriptions given by ccc_value, may be NULL). */
typedef int (*ProtocolCccValueFn)(const char *service_uuid, const char *chrc_uuid, uint8_t ret[2], void *userdata);
int protocol_convert_gatt(const BleGattModel *in, ProtocolCccValueFn ccc_value, void *userdata, GattModel **ret);

/* BlueZ's AddressType ("public"/"random") as nRF Cloud's address.type: "public",
 * "randomStatic" (a random address whose two top bits are set) or "random";
 * unspecified (no type sent) when BlueZ did not say. */
BtAddrType protocol_address_type(const char *bluez_type, const char *address);

/* Messages sent (for status and tests). */
uint64_t protocol_messages_sent(const Protocol *p);

const char *protocol_device_state_to_string(ProtocolDeviceState s);

/*
 * A device being updated (BLE FOTA, daemon/blefota/): while busy() says so, the c2g
 * operations addressed to it (reads, writes, descriptor operations, discover) are not sent
 * to it, where they would interleave with the DFU's writes, but held in order, at most
 * PROTOCOL_HELD_MAX per device (those over it are answered with an error event, -EBUSY).
 * protocol_device_resume() runs them, in order, from the event loop once the update ended;
 * they are then answered as usual with their request ids (a device that did not come back
 * answers "not connected").  A device removed from desiredConnections answers its held
 * operations with an error event (-ECANCELED) and removed() is called.  Notifications are
 * not held.
 */
#define PROTOCOL_HELD_MAX 32
typedef struct ProtocolDeviceHooks {
        bool (*busy)(void *userdata, const char *address);
        void (*removed)(void *userdata, const char *address);
} ProtocolDeviceHooks;
void protocol_set_device_hooks(Protocol *p, const ProtocolDeviceHooks *hooks, void *userdata);
void protocol_device_resume(Protocol *p, const char *address);
