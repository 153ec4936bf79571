/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The gateway's device shadow (spec nrfcloud-mqtt.md §3): parsing of the
 * accepted document (full AWS form {"state":{"desired":...}} and nRF Cloud's
 * trimmed form {"desired":...,"reported":...}), of deltas and of the
 * shadow/get/tf transform result, and the update documents the gateway
 * reports.  Pure: no I/O, no globals, no logging.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec-util.h"
#include "fota-job.h"
#include "topics.h"

/* A shadow document or delta, at most: AWS IoT's limit for one MQTT message
 * (128 KiB).  Shadows are the cloud's control channel; they are not cut by
 * the c2g limit ([Cloud] MaxIncomingBytes=). */
#define SHADOW_DOC_MAX (128 * 1024)
#define SHADOW_DEPTH_MAX 32
/* The most child devices a gateway is asked to hold (lte-gateway: 8 or 16): as
 * many as [Bluetooth] MaxConnections= allows at most. */
#define SHADOW_CONNECTIONS_MAX 100
/* What the gateway asks the transform for (lte-gateway uses 1024; the
 * cloud's default and maximum for Nordic devices is 1792). */
#define SHADOW_TRANSFORM_MAX_LEN 1024
/* Beacons watched at once (desired.beacons). */
#define SHADOW_BEACONS_MAX 100
#define SHADOW_TOPIC_PREFIX_MAX (TOPIC_STAGE_MAX + 1 + TOPIC_TEAM_MAX + 1)

typedef enum ShadowDocKind {
        SHADOW_DOC_FULL,      /* $aws/things/<id>/shadow/get/accepted */
        SHADOW_DOC_TRIMMED,   /* <id>/shadow/get/accepted[/trim] */
        SHADOW_DOC_DELTA,     /* .../shadow/update/delta[/full] */
        SHADOW_DOC_TRANSFORM, /* <id>/shadow/get/accepted/tf */
        _SHADOW_DOC_KIND_MAX,
        _SHADOW_DOC_KIND_INVALID = -EINVAL,
} ShadowDocKind;

typedef enum PairingState {
        PAIRING_STATE_NOT_ASSOCIATED,
        PAIRING_STATE_PAIRED,
        /* Button-pattern pairing of NCS <= 1.1: deprecated, the device has
         * to be deleted from nRF Cloud and added again. */
        PAIRING_STATE_INITIATE,
        PAIRING_STATE_PATTERN_WAIT,
        PAIRING_STATE_PATTERN_MISMATCH,
        PAIRING_STATE_TIMEOUT,
        /* A string we do not know. */
        PAIRING_STATE_UNKNOWN,
        _PAIRING_STATE_MAX,
        _PAIRING_STATE_INVALID = -EINVAL,
} PairingState;

/* The three array formats of desiredConnections (spec §3.1). */
typedef enum DesiredConnectionFormat {
        DESIRED_CONNECTION_STRING,         /* "AA:BB:..." (current) */
        DESIRED_CONNECTION_ID_OBJECT,      /* {"id":"AA:BB:..."} */
        DESIRED_CONNECTION_ADDRESS_OBJECT, /* {"address":{"address":"AA:BB:...","type":...}} */
        _DESIRED_CONNECTION_FORMAT_MAX,
        _DESIRED_CONNECTION_FORMAT_INVALID = -EINVAL,
} DesiredConnectionFormat;

typedef struct DesiredConnection {
        char address[BT_ADDR_STR_LEN + 1];  /* upper case */
        DesiredConnectionFormat format;
        BtAddrType address_type;            /* from "address":{"type":...}; UNSPECIFIED otherwise */
} DesiredConnection;

typedef struct ShadowState {
        ShadowDocKind kind;
        bool has_version;
        int64_t version;

        /* desired.pairing.state; has_pairing_state false when absent. */
        bool has_pairing_state;
        PairingState pairing_state;
        /* desired.pairing.topics.{c2g,g2c}, NULL when absent. */
        char *pairing_topic_c2g;
        char *pairing_topic_g2c;

        /* desired.nrfcloud_mqtt_topic_prefix, checked and split. */
        bool has_topic_prefix;
        char topic_prefix[SHADOW_TOPIC_PREFIX_MAX + 1];
        char stage[TOPIC_STAGE_MAX + 1];
        char team[TOPIC_TEAM_MAX + 1];

        /* desired.desiredConnections: has_desired_connections is false when
         * the document does not mention it (keep the current set); null or
         * [] give an empty set.  Addresses are normalised and de-duplicated;
         * entries that are not an address in one of the three formats are
         * skipped and counted in n_connections_ignored (so that one bad entry
         * does not disconnect every device).  At most SHADOW_CONNECTIONS_MAX
         * are kept, the first ones in the document's order;
         * n_connections_desired counts every distinct address it names. */
        bool has_desired_connections;
        DesiredConnection *connections;
        size_t n_connections;
        size_t n_connections_desired;
        size_t n_connections_ignored;

        /* desired.beacons (gateway-common's "list of beacons we should watch"):
         * advertisers to watch without connecting.  has_beacons is false
         * when the document does not mention it; null or [] give an empty
         * set.  Entries are taken in any of desiredConnections' three
         * formats, normalised and de-duplicated, at most SHADOW_BEACONS_MAX
         * (the first ones); entries that are not addresses are skipped and
         * counted.  A beacons member that is not an array is ignored
         * (beacons_malformed): it must not stop pairing. */
        bool has_beacons;
        bool beacons_malformed;
        char (*beacons)[BT_ADDR_STR_LEN + 1];
        size_t n_beacons;
        size_t n_beacons_ignored;

        /* Accepted documents only: the addresses under
         * reported.statusConnections that are not null, so that the gateway
         * can clear (CONNECTION_STATUS_REMOVED) entries of devices no
         * longer desired.  Keys that are not addresses are skipped, and so
         * is a malformed reported section (it must not stop pairing); at
         * most SHADOW_CONNECTIONS_MAX. */
        char (*reported_addresses)[BT_ADDR_STR_LEN + 1];
        size_t n_reported_addresses;

        /* Deltas only: the changed desired state, to echo into reported. */
        json_t *delta_state;
} ShadowState;

const char *shadow_doc_kind_to_string(ShadowDocKind k);
const char *pairing_state_to_string(PairingState s);
PairingState pairing_state_from_string(const char *s); /* PAIRING_STATE_UNKNOWN for others, _INVALID for NULL */
const char *desired_connection_format_to_string(DesiredConnectionFormat f);

ShadowState *shadow_state_free(ShadowState *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(ShadowState *, shadow_state_free);

/* The accepted document, full or trimmed (told apart by a top-level
 * "state").  -EBADMSG names the field for a document that cannot be used
 * (not JSON, a member of the wrong type, a malformed topic prefix). */
int shadow_parse_accepted(const void *data, size_t size, ShadowState **ret, CodecError *e);
/* A delta {"version":N,"timestamp":T,"state":{...changed desired keys...}}. */
int shadow_parse_delta(const void *data, size_t size, ShadowState **ret, CodecError *e);
/* The transform result {"tf":[...desiredConnections...]}; the error form
 * {"err":code,"position":n,"message":"..."} gives -EREMOTEIO with the
 * cloud's message in e->description. */
int shadow_parse_transform(const void *data, size_t size, ShadowState **ret, CodecError *e);

/* Whether the set of desired addresses contains address (any case). */
bool shadow_state_wants(const ShadowState *s, const char *address);

/* The shadow/get/tf request for desiredConnections:
 * {"t":"state.desired.desiredConnections","l":<max_len>}. */
int shadow_build_transform_request(unsigned max_len, char **ret);

/* The pairing report once paired (spec §3.2):
 * {"state":{"reported":{"pairing":{"state":"paired","config":null,
 *   "topics":{"g2c":...,"c2g":...}},"connection":{"keepalive":N},
 *   "nrfcloud_mqtt_topic_prefix":"<stage>/<team>/","pairingStatus":null}}} */
int shadow_build_pairing_paired(const char *topic_prefix, const char *g2c, const char *c2g, unsigned keepalive_sec,
                                char **ret);
/* ... and while not associated with an account. */
int shadow_build_pairing_not_associated(char **ret);

typedef enum ConnectionStatus {
        CONNECTION_STATUS_DISCONNECTED, /* {"connected":false,"connecting":false} */
        CONNECTION_STATUS_CONNECTING,   /* {"connected":false,"connecting":true} */
        CONNECTION_STATUS_CONNECTED,    /* {"connected":true,"connecting":false} */
        CONNECTION_STATUS_REMOVED,      /* the entry is deleted: null */
        _CONNECTION_STATUS_MAX,
        _CONNECTION_STATUS_INVALID = -EINVAL,
} ConnectionStatus;

const char *connection_status_to_string(ConnectionStatus s);

typedef struct ShadowConnectionStatus {
        const char *address;
        ConnectionStatus status;
} ShadowConnectionStatus;

/* {"state":{"reported":{"statusConnections":{"<A>":{"id":"<A>","status":{...}},...}}}} */
int shadow_build_status_connections(const ShadowConnectionStatus *v, size_t n, char **ret);

typedef struct ShadowDeviceInfo {
        const char *modem_firmware; /* NULL: not sent */
        const char *imei;
        const char *board;
        const char *app_version;
        const char *app_name;
} ShadowDeviceInfo;

typedef struct ShadowServiceInfo {
        unsigned fota_types;        /* bit (1 << FotaType) for each type the gateway updates */
        bool fota_ble;              /* fota_v2_ble */
} ShadowServiceInfo;

/* {"state":{"reported":{"device":{"deviceInfo":{...},"serviceInfo":{"fota_v2":[...],"fota_v2_ble":b}}}}};
 * either part may be NULL (not both). */
int shadow_build_device_report(const ShadowDeviceInfo *info, const ShadowServiceInfo *svc, char **ret);

/* A local change of the connection list, written to desired as nRF Cloud
 * does for its own shell (spec §3.2), in the format the shadow used last:
 * {"state":{"desired":{"desiredConnections":[...]}}}, null when n is 0. */
int shadow_build_desired_connections(const char *const *addresses, size_t n, DesiredConnectionFormat format,
                                     char **ret);

/* Accepts a delta by echoing it: {"state":{"reported":<delta state>}}. */
int shadow_build_delta_accept(const ShadowState *delta, char **ret);
