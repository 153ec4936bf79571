/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Encoding of gateway-to-cloud (g2c) events (spec nrfcloud-mqtt.md §2.4):
 *   {"type":"event","gatewayId":"<gw>","requestId":<c2g id or null>,
 *    "event":{"type":"<event>","timestamp":"YYYY-MM-DDTHH:MM:SS.mmmZ",...},
 *    "messageId":<counter>}
 * Compact JSON, keys in the order shown in the golden tests, upper-case
 * addresses, UUIDs upper case without dashes, values as byte arrays.
 * Deliberately not copied from lte-gateway (spec §6): the CCCD is "2902",
 * notification paths are SVC/CHRC, read results carry one "value", and the
 * error event has its timestamp inside "event".
 *
 * Each encoder returns a malloc'ed NUL-terminated string in *ret.  Inputs
 * are validated (-EINVAL for a bad address, UUID or id), and an encoding
 * over G2C_MESSAGE_MAX is refused with -EMSGSIZE.  Pure.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "c2g.h"
#include "codec-util.h"
#include "gatt-model.h"

/* AWS IoT's payload limit. */
#define G2C_MESSAGE_MAX (128 * 1024)
/* "2025-02-27T18:38:50.123Z" */
#define G2C_TIMESTAMP_LEN 24
#define G2C_DESCRIPTION_MAX 256
#define G2C_SCAN_NAME_MAX 248

typedef enum G2cEventType {
        G2C_EVENT_SCAN_RESULT,
        G2C_EVENT_DEVICE_CONNECT_RESULT,
        G2C_EVENT_DEVICE_DISCONNECT,
        G2C_EVENT_DEVICE_DISCOVER_RESULT,
        G2C_EVENT_CHARACTERISTIC_VALUE_CHANGED,
        G2C_EVENT_CHARACTERISTIC_VALUE_READ_RESULT,
        G2C_EVENT_CHARACTERISTIC_VALUE_WRITE_RESULT,
        G2C_EVENT_DESCRIPTOR_VALUE_CHANGED,
        G2C_EVENT_DESCRIPTOR_VALUE_READ_RESULT,
        G2C_EVENT_DESCRIPTOR_VALUE_WRITE_RESULT,
        G2C_EVENT_ERROR,
        _G2C_EVENT_TYPE_MAX,
        _G2C_EVENT_TYPE_INVALID = -EINVAL,
} G2cEventType;

const char *g2c_event_type_to_string(G2cEventType t);
G2cEventType g2c_event_type_from_string(const char *s);

/* The requestId of an unsolicited event: the captured nRF Cloud messages carry
 * this string there, and the schema types requestId as a string. */
#define G2C_REQUEST_ID_NONE "N/A"

/* What every event carries. */
typedef struct G2cHeader {
        const char *gateway_id;
        const char *request_id;  /* the c2g id this answers; NULL: "N/A" (unsolicited) */
        uint64_t message_id;     /* the sender's counter, at most INT64_MAX */
        uint64_t timestamp_usec; /* CLOCK_REALTIME, microseconds since the epoch */
} G2cHeader;

/* The device an event is about. */
typedef struct G2cDevice {
        const char *address;     /* any case; sent upper case */
        BtAddrType address_type; /* UNSPECIFIED: no "type" key */
} G2cDevice;

/* One AD structure's payload, keyed: a manufacturer's data (key: company
 * identifier), service data (key: the service UUID) or an AD structure BlueZ
 * does not decode (key: AD type). */
typedef struct G2cAdEntry {
        uint16_t key;        /* company identifier or AD type */
        const char *uuid;    /* service data: any of the UUID forms uuid_normalize() takes */
        const uint8_t *data;
        size_t size;
} G2cAdEntry;

#define G2C_AD_ENTRIES_MAX 32 /* of each kind */

/*
 * A device's advertisement, sent as "advertisementData" in the shape of
 * nRF Cloud's beacon-utilities AdvertisementPacket, which gateway-common's
 * scanResult carries and the portal decodes (iBeacon, AltBeacon, Eddystone):
 *   {"advertiseFlag":F|-1,"serviceUuids":["0000feaa-0000-1000-8000-00805f9b34fb",...]|null,
 *    "localName":N|null,"txPower":T|null,"manufacturerData":{"<company, decimal>":[bytes]},
 *    "serviceData":{"<16-bit UUID, lower-case hex, or the dashed 128-bit form>":[bytes]}}
 * and, when there are AD structures whose meaning is not known here,
 * "rawData":[len,type,data...,len,type,data...] (the raw AD format, which the
 * same library parses).
 */
typedef struct G2cAdvertisement {
        int flags;                        /* the Flags AD's first byte, -1: none */
        const char *const *service_uuids; /* any UUID form */
        size_t n_service_uuids;
        const char *local_name;           /* NULL: null */
        bool has_tx_power;
        int tx_power;
        const G2cAdEntry *manufacturer_data;
        size_t n_manufacturer_data;
        const G2cAdEntry *service_data;
        size_t n_service_data;
        const G2cAdEntry *raw;            /* AD type in key; data at most 254 bytes */
        size_t n_raw;
} G2cAdvertisement;

typedef struct G2cScanDevice {
        G2cDevice device;
        bool has_rssi;
        int rssi;
        const char *name;        /* NULL: unknown, no "name" key */
        const G2cAdvertisement *advertisement; /* NULL: no "advertisementData" key */
} G2cScanDevice;

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" in UTC.  -ERANGE past year 9999. */
int g2c_format_timestamp(uint64_t usec, char buf[static G2C_TIMESTAMP_LEN + 1]);

/* scan_result: subType from the scan's reporting mode; timeout false for
 * each partial report, true for the final one. */
int g2c_encode_scan_result(const G2cHeader *h, C2gScanReporting sub_type, bool timeout,
                           const G2cScanDevice *devices, size_t n_devices, char **ret);

/* The "advertisementData" object alone (see G2cAdvertisement); -EINVAL for a
 * bad UUID, an oversize entry or a local name that is not UTF-8. */
int g2c_advertisement_object(const G2cAdvertisement *a, json_t **ret);

/* device_connect_result with status.connected. */
int g2c_encode_device_connect_result(const G2cHeader *h, const G2cDevice *d, bool connected, char **ret);
/* device_disconnect, status.connected false. */
int g2c_encode_device_disconnect(const G2cHeader *h, const G2cDevice *d, char **ret);

/* device_discover_result: services, characteristics and descriptors as
 * objects keyed by UUID.  Where the model has several instances of a
 * service UUID (or a characteristic UUID twice in one service), the keyed
 * format can hold only one: their members are merged and the first of
 * equal keys is kept, which is also what the lookups of gatt-model.h find. */
int g2c_encode_device_discover_result(const G2cHeader *h, const G2cDevice *d, const GattModel *m, char **ret);

/* device_characteristic_value_{changed,read_result,write_result}:
 * "characteristic":{"uuid":C,"path":"S/C","value":[...]}. -EINVAL for
 * other event types. */
int g2c_encode_characteristic_value(const G2cHeader *h, G2cEventType type, const G2cDevice *d,
                                    const char *service_uuid, const char *characteristic_uuid,
                                    const uint8_t *value, size_t value_len, char **ret);

/* device_descriptor_value_{changed,read_result,write_result}:
 * "descriptor":{"uuid":D,"path":"S/C/D","value":[...]}. */
int g2c_encode_descriptor_value(const G2cHeader *h, G2cEventType type, const G2cDevice *d,
                                const char *service_uuid, const char *characteristic_uuid,
                                const char *descriptor_uuid, const uint8_t *value, size_t value_len,
                                char **ret);

/* error: "device":{"deviceAddress":A} when address is not NULL, then
 * "error":{"description":...,"code":code}. */
int g2c_encode_error(const G2cHeader *h, const char *address, const char *description, int code, char **ret);

/* The error event answering a c2g message that c2g_decode() refused:
 * requestId is the message's id when it could be read (h->request_id is
 * ignored), the description "<field>: <what>" (just "<what>" when the whole
 * document is at fault), and code the decoder's negative errno. */
int g2c_encode_c2g_error(const G2cHeader *h, const C2gError *e, int code, char **ret);
