/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The MQTT session engine: one Paho asynchronous client (MQTT 3.1.1, QoS 1,
 * clean session), driven from the sd-event loop.
 *
 * Paho calls back on its own threads.  Those callbacks only copy what they
 * were given into an event, append it to a locked queue and wake the loop
 * through an eventfd; everything else happens on the loop thread.  mqtt.c is
 * the only file of the daemon that knows about threads.
 *
 * Generic over topics and payloads: the caller names the topics to subscribe
 * (re-subscribed on every connection, before anything is published) and
 * publishes through the outbox.  The outbox is drained in order, at most
 * `window` messages handed to Paho at a time, the next one sent when a PUBACK
 * comes back; an outbox entry is removed only on its PUBACK.
 *
 * Why clean sessions (cleansession=1): the outbox is the only durable record
 * of what is unacknowledged, and it survives a daemon restart, which Paho's
 * in-memory session state does not.  A persistent session would add a second,
 * volatile copy (Paho re-sends its in-flight messages on reconnect while the
 * outbox re-sends them too) and would make the broker queue c2g operations
 * for up to an hour while the gateway is away, to be replayed on BLE devices
 * whose state has moved on.  With clean sessions every connection starts from
 * nothing: subscribe, wait for SUBACK, then drain the outbox from its oldest
 * unacknowledged entry.  Delivery is at-least-once and in order: a message in
 * flight when the link drops may reach the broker twice.
 *
 * Every attempt uses a new Paho client: Paho would otherwise write publishes
 * that were queued but unsent at the loss first on the next connection,
 * ahead of the outbox's resend of older ones.
 *
 * Modem TLS mode: give callbacks.prepare/release and no server_uri; prepare()
 * sets up the bridge (bridge.h) and answers with mqtt_session_prepared() and
 * the loopback URI, and Paho connects there in plain TCP.
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "macro.h"
#include "message-ids.h"
#include "outbox.h"

typedef enum MqttState {
        MQTT_IDLE,        /* not started, or stopped */
        MQTT_PREPARING,   /* waiting for the transport (modem TLS socket) */
        MQTT_CONNECTING,  /* CONNECT sent, waiting for CONNACK */
        MQTT_SUBSCRIBING, /* connected; SUBSCRIBEs in flight, nothing published yet */
        MQTT_READY,       /* subscribed; the outbox is drained */
        MQTT_BACKOFF,     /* waiting before the next attempt */
        MQTT_STOPPING,    /* DISCONNECT in flight */
        _MQTT_STATE_MAX,
} MqttState;

#define MQTT_WINDOW_DEFAULT 32u
#define MQTT_WINDOW_MAX 100u /* AWS IoT: at most 100 unacknowledged messages per connection */
#define MQTT_STABLE_USEC_DEFAULT (60u * 1000000u)

typedef struct MqttOptions {
        const char *server_uri; /* "ssl://host:port" or "tcp://127.0.0.1:port"; NULL when prepare() gives it */
        const char *client_id;  /* the device id */
        const char *broker_name; /* "host:port" for log lines; NULL: the URI (which is the loopback bridge's in modem mode) */
        unsigned keepalive_sec;
        const char *ca_file;   /* all three set: TLS with mutual authentication; all NULL: plain TCP */
        const char *cert_file;
        const char *key_file;
        uint64_t reconnect_min_usec;
        uint64_t reconnect_max_usec;
        uint64_t stable_usec; /* connected this long: the backoff starts over (0: default) */
        unsigned connect_timeout_sec;
        /* Incoming messages at most, except those on the client's own shadow
         * topics ("<client id>/shadow/..." and "$aws/things/<client id>/shadow/..."),
         * which may have up to MQTT_SHADOW_BYTES_MAX: the shadow is the cloud's
         * control channel and must not be cut by the c2g limit. */
        uint64_t max_incoming_bytes;
        unsigned window; /* 0: default */
        unsigned max_publish_rate; /* publishes in any second, all classes; 0: no limit */
} MqttOptions;

#define MQTT_SHADOW_BYTES_MAX (128u * 1024u) /* AWS IoT's limit for one MQTT message */

typedef struct MqttSession MqttSession;

typedef struct MqttCallbacks {
        void (*state_changed)(MqttSession *s, MqttState old_state, MqttState new_state, void *userdata);
        /* An incoming PUBLISH within the size cap; topic NUL-terminated. */
        void (*message)(MqttSession *s, const char *topic, const uint8_t *payload, size_t len, void *userdata);
        /* Optional: an incoming PUBLISH over its cap was dropped (after one warning). */
        void (*message_too_big)(MqttSession *s, const char *topic, size_t len, void *userdata);
        /* An outbox entry was acknowledged by the broker. */
        void (*acked)(MqttSession *s, uint64_t seq, void *userdata);
        /* mqtt_session_stop() has completed. */
        void (*stopped)(MqttSession *s, void *userdata);
        /*
         * Optional: sets up the transport before each attempt (modem TLS).  Return
         * 0 and later call mqtt_session_prepared() or mqtt_session_prepare_failed();
         * release() is called when that connection is over.
         */
        int (*prepare)(MqttSession *s, void *userdata);
        void (*release)(MqttSession *s, void *userdata);
} MqttCallbacks;

/* The outbox stays owned by the caller and must outlive the session. */
int mqtt_session_new(sd_event *event, const MqttOptions *options, Outbox *outbox, const MqttCallbacks *callbacks,
                     void *userdata, MqttSession **ret);
MqttSession *mqtt_session_free(MqttSession *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(MqttSession *, mqtt_session_free);

int mqtt_session_start(MqttSession *s);
/* Disconnects cleanly (bounded by a timeout); calls stopped() when done. Idempotent. */
void mqtt_session_stop(MqttSession *s);

/* Adds a topic (QoS 1) subscribed on this and every later connection.  Max 50 (AWS IoT). */
int mqtt_session_subscribe(MqttSession *s, const char *topic);

/*
 * Puts a message into the outbox and sends it when its turn comes.  The
 * outbox is synced once the loop has nothing else pending, and at the latest
 * 5 ms after the push (one fdatasync for all pushes made meanwhile), which is
 * the point from which the message survives a power cut; a crash of the
 * process loses nothing pushed.
 */
int mqtt_session_publish(MqttSession *s, OutboxClass class, const char *topic, const void *payload, size_t len,
                         uint64_t *ret_seq);
/* Sends what the outbox holds, if connected (after outbox_push() by the caller). */
void mqtt_session_kick(MqttSession *s);

/* For prepare(): the transport is ready at uri / could not be set up.
 * logged: the transport has logged why itself, the session says it only at
 * debug level (one line per cause, not two); reason is still what the last
 * error reads (status, D-Bus), and may be NULL only when logged. */
int mqtt_session_prepared(MqttSession *s, const char *uri);
void mqtt_session_prepare_failed(MqttSession *s, int error, const char *reason, bool logged);
/* For prepare(): the far end of the ready transport went away (reason: what
 * happened, e.g. "the broker closed the connection"); the loss of the MQTT
 * connection that follows is reported with that reason. */
void mqtt_session_transport_closed(MqttSession *s, const char *reason);

MqttState mqtt_session_get_state(const MqttSession *s);
unsigned mqtt_session_in_flight(const MqttSession *s);
/* The last publish had to wait for the publish budget; how many times one had to. */
bool mqtt_session_budget_saturated(const MqttSession *s);
uint64_t mqtt_session_budget_deferred(const MqttSession *s);
uint64_t mqtt_session_incoming_dropped(const MqttSession *s);
/* How often Paho's threads have woken the loop (results and messages are handed over in batches;
 * acknowledgements of the outbox's publishes wait for the loop's next pass). */
uint64_t mqtt_session_wakeups(MqttSession *s);
/* The reason of the last failure or loss, for status reporting; NULL if none. */
const char *mqtt_session_last_error(const MqttSession *s);
/* CLOCK_BOOTTIME µs of the next connection attempt while waiting for it, else 0. */
uint64_t mqtt_session_next_retry_usec(const MqttSession *s);
/* Changes the live parts: keepalive (next connection), backoff limits, incoming cap. */
void mqtt_session_set_limits(MqttSession *s, uint64_t reconnect_min_usec, uint64_t reconnect_max_usec,
                             uint64_t max_incoming_bytes);

const char *mqtt_state_to_string(MqttState s);

/*
 * Connection-scoped operations, for the control messages of the nRF Cloud
 * connection procedure (shadow get, pairing report, jobs/req): they must
 * not wait behind a backlog of offline g2c messages in the outbox, and they
 * make no sense on a later connection.
 *
 * Each is sent at QoS 1 on the current connection only (a subscription is
 * not remembered for later connections), and done() is called once, on the
 * loop thread, with 0 on SUBACK/PUBACK or a negative errno if the broker or
 * Paho failed it.  When the connection ends first, the operation is dropped
 * without a call: state_changed() reports the end.  Never called from
 * within the function that queued the operation.
 */
#define MQTT_DIRECT_MAX 16u /* operations in flight at once */

typedef void (*MqttDoneFn)(int error, void *userdata);

/* Subscribes topics (at most 8, one SUBSCRIBE each, so that every SUBACK code is
 * seen) on this connection; done() once, with -EIO if the broker refused any of
 * them.  -ENOTCONN unless subscribing or ready, -EBUSY without a free slot of
 * MQTT_DIRECT_MAX per topic. */
int mqtt_session_subscribe_now(MqttSession *s, char *const *topics, size_t n, MqttDoneFn done, void *userdata);
/* Publishes outside the outbox on this connection (payload up to OUTBOX_PAYLOAD_MAX). */
int mqtt_session_publish_now(MqttSession *s, const char *topic, const void *payload, size_t len, MqttDoneFn done,
                             void *userdata);
/* While held, the outbox is not drained even when ready (messages are still
 * accepted into it); releasing it sends what it holds.  Not held by default. */
void mqtt_session_hold_outbox(MqttSession *s, bool hold);
/* Ends the current connection (DISCONNECT) and connects again right away,
 * without the backoff and without a "connection lost" record: for a change
 * of the cloud's policy (association, removal from an account).  -ENOTCONN
 * unless subscribing or ready. */
int mqtt_session_reconnect(MqttSession *s, const char *reason);

/*
 * Optional: asked for the topic of each outbox entry just before it is
 * handed to Paho.  An entry it refuses is removed from the outbox without
 * being sent (and without an acked() call): the broker of nRF Cloud
 * disconnects a client that publishes outside its policy, so an entry that
 * was queued under another policy (a restored outbox after the gateway
 * moved to another team) would otherwise end every connection.  The filter
 * logs what it refuses.
 */
typedef bool (*MqttTopicFilter)(const char *topic, void *userdata);
void mqtt_session_set_topic_filter(MqttSession *s, MqttTopicFilter filter, void *userdata);
