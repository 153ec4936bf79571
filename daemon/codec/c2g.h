/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Decoding of cloud-to-gateway (c2g) messages (spec nrfcloud-mqtt.md §2.1-
 * §2.3): the operation envelope
 *   {"type":"operation","id":"<id>","operation":{"type":"<op>",...}}
 * and the account removal notice {"appId":"DEVICE","messageType":"DISCON"}.
 *
 * Validation is strict and all-or-nothing: an operation is either returned
 * whole and valid, or refused with a C2gError that names the offending field
 * (and carries the request id when it could be read), from which the caller
 * builds the g2c "error" event.  Unknown members are ignored so that the
 * cloud may add fields.  Pure: no I/O, no globals, no logging.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec-util.h"

/* A c2g message larger than the modem's 2 KB receive limit cannot arrive
 * in modem TLS mode; in host mode we still refuse anything unreasonable. */
#define C2G_MESSAGE_MAX (16 * 1024)
#define C2G_DEPTH_MAX 8
#define C2G_ID_MAX 128
#define C2G_SCAN_NAME_MAX 248 /* Complete Local Name, Core Vol 3 Part C 12.1 */
#define C2G_SCAN_TIMEOUT_DEFAULT 10
#define C2G_SCAN_TIMEOUT_MAX 300
#define C2G_SCAN_INTERVAL_MAX 10240 /* ms; the largest LE scan interval */

typedef enum C2gOpType {
        C2G_OP_SCAN,
        C2G_OP_DEVICE_DISCOVER,
        C2G_OP_CHARACTERISTIC_READ,
        C2G_OP_CHARACTERISTIC_WRITE,
        C2G_OP_DESCRIPTOR_READ,
        C2G_OP_DESCRIPTOR_WRITE,
        C2G_OP_GET_GATEWAY_STATUS,
        C2G_OP_DELETE_YOURSELF,
        _C2G_OP_MAX,
        _C2G_OP_INVALID = -EINVAL,
} C2gOpType;

typedef enum C2gScanType {
        C2G_SCAN_TYPE_REGULAR = 0,
        C2G_SCAN_TYPE_BEACON = 1,
        _C2G_SCAN_TYPE_MAX,
        _C2G_SCAN_TYPE_INVALID = -EINVAL,
} C2gScanType;

typedef enum C2gScanMode {
        C2G_SCAN_MODE_ACTIVE,
        C2G_SCAN_MODE_PASSIVE,
        _C2G_SCAN_MODE_MAX,
        _C2G_SCAN_MODE_INVALID = -EINVAL,
} C2gScanMode;

typedef enum C2gScanReporting {
        C2G_SCAN_REPORTING_INSTANT,
        C2G_SCAN_REPORTING_BATCH,
        _C2G_SCAN_REPORTING_MAX,
        _C2G_SCAN_REPORTING_INVALID = -EINVAL,
} C2gScanReporting;

/* Scan parameters that were out of range, of the wrong type or unknown, and
 * were replaced by their defaults (C2gScan.defaulted): nRF Cloud's own
 * gateways accept whatever the portal sends. */
enum {
        C2G_SCAN_DEFAULTED_TIMEOUT = 1u << 0,
        C2G_SCAN_DEFAULTED_INTERVAL = 1u << 1,
        C2G_SCAN_DEFAULTED_MODE = 1u << 2,
        C2G_SCAN_DEFAULTED_REPORTING = 1u << 3,
};

typedef struct C2gScan {
        C2gScanType type;           /* scanType, default regular */
        unsigned timeout_sec;       /* scanTimeout, default 10, 1..300 */
        C2gScanMode mode;           /* scanMode, default active */
        C2gScanReporting reporting; /* scanReporting, default instant */
        unsigned interval;          /* scanInterval, default 0 (the stack's choice) */
        bool has_filter_rssi;
        int filter_rssi;            /* filter.rssi, -127..20 dBm */
        char filter_name[C2G_SCAN_NAME_MAX + 1]; /* filter.name, "" if none */
        unsigned defaulted;         /* C2G_SCAN_DEFAULTED_* */
} C2gScan;

/* The attribute an operation addresses.  Strings are normalised: address
 * upper case, UUIDs upper case without dashes, "" when not used by the op. */
typedef struct C2gTarget {
        char address[BT_ADDR_STR_LEN + 1];
        char service_uuid[UUID_STR_MAX + 1];
        char characteristic_uuid[UUID_STR_MAX + 1];
        char descriptor_uuid[UUID_STR_MAX + 1];
} C2gTarget;

typedef struct C2gOperation {
        C2gOpType type;
        char id[C2G_ID_MAX + 1]; /* the envelope's id, echoed as requestId */
        union {
                C2gScan scan;     /* C2G_OP_SCAN */
                C2gTarget target; /* device, characteristic and descriptor ops */
        };
        /* characteristicValue / descriptorValue of the write operations. */
        uint8_t value[GATT_VALUE_MAX];
        size_t value_len;
} C2gOperation;

typedef struct C2gError {
        CodecError error;
        bool has_id;               /* the request id could be read */
        char id[C2G_ID_MAX + 1];
        C2gOpType type;            /* _C2G_OP_INVALID if not known */
} C2gError;

typedef enum C2gMessageKind {
        C2G_MESSAGE_OPERATION,
        C2G_MESSAGE_DISCON,
        _C2G_MESSAGE_KIND_MAX,
        _C2G_MESSAGE_KIND_INVALID = -EINVAL,
} C2gMessageKind;

const char *c2g_op_type_to_string(C2gOpType t);
C2gOpType c2g_op_type_from_string(const char *s);
const char *c2g_scan_mode_to_string(C2gScanMode m);
C2gScanMode c2g_scan_mode_from_string(const char *s);
const char *c2g_scan_reporting_to_string(C2gScanReporting r);
C2gScanReporting c2g_scan_reporting_from_string(const char *s);
const char *c2g_scan_type_to_string(C2gScanType t);
const char *c2g_message_kind_to_string(C2gMessageKind k);

/* Decodes one c2g payload.  On success returns the kind of message (>= 0):
 * for C2G_MESSAGE_OPERATION *ret is filled; for C2G_MESSAGE_DISCON *ret is
 * left alone.  On failure returns a negative errno (-EBADMSG garbled or
 * invalid, -EMSGSIZE/-ELOOP over a cap, -EPROTO valid JSON that is not a
 * c2g message, -EOPNOTSUPP unknown operation type) and fills *error (when
 * not NULL); *ret is left alone. */
int c2g_decode(const void *data, size_t size, C2gOperation *ret, C2gError *error);

/* Whether a parsed c2g/c2d message is {"appId":"DEVICE","messageType":"DISCON"}. */
bool c2g_json_is_discon(const json_t *j);

/* Client Characteristic Configuration (descriptor 2902) writes, which
 * nRF Cloud uses to subscribe: [1,0] notify, [2,0] indicate, [0,0] off
 * (Bluetooth Core Vol 3 Part G 3.3.3.3). */
typedef enum C2gCccMode {
        C2G_CCC_OFF,
        C2G_CCC_NOTIFY,
        C2G_CCC_INDICATE,
        _C2G_CCC_MODE_MAX,
        _C2G_CCC_MODE_INVALID = -EINVAL,
} C2gCccMode;

const char *c2g_ccc_mode_to_string(C2gCccMode m);
/* Whether o is a descriptor write to the CCC descriptor. */
bool c2g_is_ccc_write(const C2gOperation *o);
/* The mode a CCC value asks for: one or two bytes, the second 0.  -EINVAL
 * for other lengths or bits, -EOPNOTSUPP for notify and indicate at once. */
int c2g_ccc_mode(const uint8_t *value, size_t len, C2gCccMode *ret);
