/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The nRF Cloud connection procedure (spec nrfcloud-mqtt.md §5.2, §5.3, §7)
 * on top of an MQTT connection:
 *
 *   on each connection: SUBSCRIBE <id>/shadow/get/accepted/trim,
 *     <id>/shadow/get/rejected, <id>/shadow/update/delta/full and
 *     <id>/shadow/get/accepted/tf; on SUBACK PUBLISH "" on <id>/shadow/get/trim;
 *   on the accepted document (trimmed or full form): learn the topic prefix
 *     (stage and team) unless the team is configured, then
 *     - not_associated: report it and wait until the gateway is added to an
 *       account (a delta or a new document says "paired"), then reconnect
 *       for the new policy (§5.3);
 *     - paired: PUBLISH the pairing report; on PUBACK SUBSCRIBE c2g; on SUBACK
 *       SUBSCRIBE <prefix><id>/jobs/rcv and .../jobs/ble/rcv; on SUBACK
 *       PUBLISH [""] on .../jobs/req: ready.  Then report device and service
 *       info and, when the document did not carry desiredConnections, ask
 *       for it with a shadow transform.
 *
 * These control messages go out on the connection itself, not through the
 * outbox, so that they never wait behind a backlog of g2c messages; the
 * outbox is held until the procedure is done.  Deltas are accepted by
 * echoing them into "reported".  A DISCON notice on c2g (the gateway was
 * removed from its account) stops the session: the desired connections are
 * forgotten and the procedure starts over on a new connection.
 *
 * Every topic goes through the topic guard (topic_allowed()) before it is
 * used; a refused topic is logged as an error and never sent.
 *
 * The session is written against a small transport interface so that the
 * state machine can be driven without a broker; cloud_transport_mqtt adapts
 * an MqttSession to it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "macro.h"
#include "outbox.h"
#include "shadow.h"

typedef enum CloudSessionState {
        CLOUD_SESSION_DISCONNECTED,   /* stopped */
        CLOUD_SESSION_CONNECTING,     /* waiting for an MQTT connection */
        CLOUD_SESSION_SHADOW,         /* connected: shadow topics, shadow get, waiting for the document */
        CLOUD_SESSION_NOT_ASSOCIATED, /* in no nRF Cloud account: reported, waiting */
        CLOUD_SESSION_PAIRED,         /* pairing report, c2g and FOTA subscriptions in progress */
        CLOUD_SESSION_READY,          /* procedure done: c2g delivered, outbox drained */
        _CLOUD_SESSION_STATE_MAX,
        _CLOUD_SESSION_STATE_INVALID = -EINVAL,
} CloudSessionState;

/* What arrives for the layers above, besides the shadow. */
typedef enum CloudMessageKind {
        CLOUD_MESSAGE_C2G,          /* <prefix>gateways/<id>/c2g: an operation (DISCON is handled here) */
        CLOUD_MESSAGE_JOBS_RCV,     /* <prefix><id>/jobs/rcv */
        CLOUD_MESSAGE_JOBS_BLE_RCV, /* <prefix><id>/jobs/ble/rcv */
        _CLOUD_MESSAGE_KIND_MAX,
        _CLOUD_MESSAGE_KIND_INVALID = -EINVAL,
} CloudMessageKind;

/* done(0) on SUBACK/PUBACK, done(<0) on failure; never called for an
 * operation of a connection that has ended (link_down() says that). */
typedef void (*CloudDoneFn)(int error, void *userdata);

typedef struct CloudTransport {
        /* Connection-scoped SUBSCRIBE (QoS 1) of up to 8 topics. */
        int (*subscribe)(void *impl, char *const *topics, size_t n, CloudDoneFn done, void *userdata);
        /* Connection-scoped PUBLISH (QoS 1), outside the outbox. */
        int (*publish)(void *impl, const char *topic, const void *payload, size_t len, CloudDoneFn done,
                       void *userdata);
        /* Into the durable outbox, sent in order once released. */
        int (*enqueue)(void *impl, OutboxClass class, const char *topic, const void *payload, size_t len);
        void (*hold_outbox)(void *impl, bool hold);
        /* Drop the connection and connect again at once. */
        int (*reconnect)(void *impl, const char *reason);
} CloudTransport;

/* impl is an MqttSession. */
extern const CloudTransport cloud_transport_mqtt;

typedef struct CloudSession CloudSession;

typedef struct CloudSessionCallbacks {
        void (*state_changed)(CloudSession *cs, CloudSessionState old_state, CloudSessionState new_state,
                              void *userdata);
        /* A c2g operation or a FOTA job array, NUL-terminated payload. */
        void (*message)(CloudSession *cs, CloudMessageKind kind, const uint8_t *payload, size_t len, void *userdata);
        /* The set of desired BLE connections changed (read it with
         * cloud_session_get_desired_connections()). */
        void (*desired_connections_changed)(CloudSession *cs, void *userdata);
        /* The FOTA job topics are subscribed on this connection.  When set,
         * the owner asks for jobs itself (cloud_session_request_jobs()),
         * after re-sending what it must (spec nrfcloud-fota.md §1.2); when
         * NULL the session publishes [""] on jobs/req. */
        void (*jobs_ready)(CloudSession *cs, void *userdata);
        /* Optional: jobs/ble/rcv was subscribed later in the session (fota_ble became true). */
        void (*jobs_ble_ready)(CloudSession *cs, void *userdata);
        /* Optional: how many BLE devices may be connected ([Bluetooth]
         * MaxConnections=), for the message when the shadow wants more. */
        unsigned (*max_connections)(CloudSession *cs, void *userdata);
        /* Optional: a shadow document or delta named desired.beacons (n 0: watch none), or the
         * gateway left its account. */
        void (*beacons_changed)(CloudSession *cs, const char (*addresses)[BT_ADDR_STR_LEN + 1], size_t n,
                                void *userdata);
} CloudSessionCallbacks;

typedef struct CloudSessionOptions {
        const char *device_id;  /* MQTT client id */
        const char *team_id;    /* [Cloud] TeamId=; NULL: learnt from the shadow */
        unsigned keepalive_sec; /* reported in the pairing report */
        /* The procedure (shadow and paired states) must reach ready or
         * not-associated within this time, else the session reconnects: a
         * lost shadow answer must not leave the gateway half connected until
         * the keepalive notices.  Needs event; 0: CLOUD_SESSION_PROCEDURE_TIMEOUT_USEC. */
        sd_event *event; /* NULL: no timeout (tests of the state machine) */
        uint64_t procedure_timeout_usec;
} CloudSessionOptions;

#define CLOUD_SESSION_PROCEDURE_TIMEOUT_USEC (60u * 1000000u)

/* What the gateway knows about itself, for reported.device.  Strings are
 * copied; NULL leaves a field out (no modem in host mode). */
typedef struct CloudDeviceInfo {
        const char *modem_firmware;
        const char *imei;
        const char *board;
        const char *app_version;
        const char *app_name;
        unsigned fota_types; /* serviceInfo.fota_v2: bit (1 << FotaType) per type */
        bool fota_ble;       /* serviceInfo.fota_v2_ble */
} CloudDeviceInfo;

int cloud_session_new(const CloudSessionOptions *options, const CloudTransport *transport, void *transport_impl,
                      const CloudSessionCallbacks *callbacks, void *userdata, CloudSession **ret);
CloudSession *cloud_session_free(CloudSession *cs);
DEFINE_TRIVIAL_CLEANUP_FUNC(CloudSession *, cloud_session_free);

/* disconnected -> connecting (the outbox is held until ready).  Idempotent. */
int cloud_session_start(CloudSession *cs);
/* -> disconnected.  Idempotent; the transport is stopped by its owner. */
void cloud_session_stop(CloudSession *cs);

/* From the transport: a connection is up (subscribed, ready) / is gone. */
void cloud_session_link_up(CloudSession *cs);
void cloud_session_link_down(CloudSession *cs);
/* From the transport: an incoming PUBLISH. */
void cloud_session_handle_message(CloudSession *cs, const char *topic, const uint8_t *payload, size_t len);
/* A message on topic was dropped by the transport as too large: for a shadow
 * document or delta, desiredConnections is fetched through the shadow/get/tf
 * transform instead. */
void cloud_session_handle_oversized(CloudSession *cs, const char *topic, size_t len);

/* Sets what reported.device says; sent again on each connection. */
int cloud_session_set_device_info(CloudSession *cs, const CloudDeviceInfo *info);

/* A g2c event through the outbox.  -EAGAIN while the g2c topic is not known
 * yet (the team is learnt from the shadow), -EPERM if the guard refuses it. */
int cloud_session_publish_g2c(CloudSession *cs, OutboxClass class, const char *payload, size_t len);

/* The topic guard for a publish (logs a refusal as an error): for the
 * transport to check outbox entries queued earlier, before it sends them. */
bool cloud_session_may_publish(CloudSession *cs, const char *topic);

/* reported.statusConnections, through the outbox (a SHADOW entry). */
int cloud_session_report_connections(CloudSession *cs, const ShadowConnectionStatus *v, size_t n);
/* A job request for BLE devices (["<addr>"]) on <prefix><id>/jobs/ble/req,
 * through the outbox.  -EAGAIN while the topic prefix is not known. */
int cloud_session_publish_jobs_ble_req(CloudSession *cs, const char *payload, size_t len);
/* [""] on <prefix><id>/jobs/req: the latest queued job.  -ENOTCONN when not connected. */
int cloud_session_request_jobs(CloudSession *cs);
/* A status report on <prefix><id>/jobs/update, on the connection (outside
 * the outbox, like the procedure's messages); done(0) on PUBACK, never
 * called when the connection ends first.  -ENOTCONN when not connected. */
int cloud_session_publish_jobs_update(CloudSession *cs, const char *payload, CloudDoneFn done, void *userdata);
/* The same on <prefix><id>/jobs/ble/update (a BLE device's job). */
int cloud_session_publish_jobs_ble_update(CloudSession *cs, const char *payload, CloudDoneFn done, void *userdata);
/* As a DISCON notice: forget the desired connections and the c2g/g2c
 * topics, and start over on a new connection (delete_yourself). */
void cloud_session_forget(CloudSession *cs, const char *why);

/* The desired BLE connections.  -ENODATA while not known (before the first
 * document, and after DISCON).  The array stays valid until the next
 * callback of the session. */
int cloud_session_get_desired_connections(CloudSession *cs, const DesiredConnection **ret, size_t *ret_n);

/* The addresses under reported.statusConnections in the last accepted
 * document (not null), so that the BLE layer can clear the entries of
 * devices that are no longer desired (CONNECTION_STATUS_REMOVED).  -ENODATA
 * before the first document.  Valid until the next callback of the session. */
int cloud_session_get_reported_connections(CloudSession *cs, const char (**ret)[BT_ADDR_STR_LEN + 1], size_t *ret_n);

CloudSessionState cloud_session_get_state(const CloudSession *cs);
/* "<stage>/<team>/" once known, else NULL. */
const char *cloud_session_topic_prefix(const CloudSession *cs);
/* The c2g and g2c topics once known, else NULL. */
const char *cloud_session_c2g_topic(const CloudSession *cs);
const char *cloud_session_g2c_topic(const CloudSession *cs);

const char *cloud_session_state_to_string(CloudSessionState s);
const char *cloud_message_kind_to_string(CloudMessageKind k);
