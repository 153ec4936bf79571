/* SPDX-License-Identifier: MIT */
#include <MQTTAsync.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "backoff.h"
#include "ratelimit.h"
#include "log.h"
#include "mqtt.h"
#include "publish-budget.h"
#include "util.h"

/* Incoming messages waiting for the loop, at most (a slow loop must not grow memory without bound). */
#define QUEUE_INCOMING_BYTES_MAX (2u * 1024u * 1024u)
#define SUBSCRIPTIONS_MAX 50u  /* AWS IoT: subscriptions per connection */
#define TOPICS_PER_SUBSCRIBE 8 /* AWS IoT: topic filters per SUBSCRIBE */
#define TLS_ERROR_MAX 200u
#define DISCONNECT_TIMEOUT_MS 2000
#define STOP_TIMEOUT_USEC (3u * 1000000u)
#define DROP_LOG_INTERVAL_USEC (60u * 1000000u)
#define SYNC_DELAY_MAX_USEC (5u * 1000u) /* a push is synced at the latest this long after it was made */
/* Acknowledgements of the outbox's publishes are collected without a wake-up of their own: by the
 * next publish, by a wake-up for anything else, or by a timer at most this long (plus as much
 * again of accuracy) after a publish. */
#define ACK_COLLECT_USEC (50u * 1000u)

static const char *const mqtt_state_table[_MQTT_STATE_MAX] = {
        [MQTT_IDLE] = "idle",
        [MQTT_PREPARING] = "preparing",
        [MQTT_CONNECTING] = "connecting",
        [MQTT_SUBSCRIBING] = "subscribing",
        [MQTT_READY] = "ready",
        [MQTT_BACKOFF] = "backoff",
        [MQTT_STOPPING] = "stopping",
};

const char *mqtt_state_to_string(MqttState s) {
        return s >= 0 && s < _MQTT_STATE_MAX ? mqtt_state_table[s] : NULL;
}

typedef enum EventType {
        EVENT_CONNECTED,
        EVENT_CONNECT_FAILED,
        EVENT_LOST,
        EVENT_SUBSCRIBED,
        EVENT_SUBSCRIBE_FAILED,
        EVENT_PUBLISHED,
        EVENT_PUBLISH_FAILED,
        EVENT_MESSAGE,
        EVENT_MESSAGE_TOO_BIG,
        EVENT_DISCONNECTED,
        EVENT_TLS_ERROR,
        _EVENT_TYPE_MAX,
} EventType;

typedef struct Event Event;
struct Event {
        EventType type;
        unsigned gen; /* connection attempt the event belongs to (low bits) */
        int token;
        int code;
        bool lazy;   /* an acknowledgement of the outbox's: needs no wake-up of its own */
        char *text;  /* failure text, TLS error, message topic */
        uint8_t *payload;
        size_t len;  /* payload length (or announced length when too big) */
        Event *next;
};

/* A SUBSCRIBE or PUBLISH of the current connection only, outside the outbox.  A
 * subscription to several topics is one SUBSCRIBE per topic (see subscribe_one()),
 * whose operations share a group: done() is called when the last of them ends. */
typedef struct DirectOp {
        int token;
        bool used;
        bool failed;   /* the group: one of its SUBSCRIBEs was refused */
        unsigned group; /* 0: a PUBLISH */
        char *topic;   /* subscriptions: for the log */
        MqttDoneFn done;
        void *userdata;
} DirectOp;

typedef struct InFlight {
        int token;
        uint64_t seq;
        bool used;
} InFlight;

struct MqttSession {
        sd_event *event;
        Outbox *outbox;
        MqttCallbacks cb;
        void *userdata;

        char *server_uri;
        char *broker_name; /* for log lines, or NULL */
        char *uri; /* the URI of the attempt (prepare() may change it) */
        char *client_id;
        char *ca_file, *cert_file;
        char *key_file; /* /proc/self/fd/<key_fd> (see open_key_file()) */
        int key_fd;
        unsigned keepalive_sec;
        unsigned connect_timeout_sec;
        uint64_t stable_usec;
        unsigned window;
        uint64_t max_incoming_bytes; /* read by Paho's thread: atomic accesses */
        /* "<client id>/shadow/" and "$aws/things/<client id>/shadow/": set at creation, read by Paho's thread. */
        char *shadow_prefix, *aws_shadow_prefix;

        MqttState state;
        MQTTAsync client;
        unsigned gen;
        Backoff backoff;
        sd_event_source *queue_source;
        sd_event_source *retry_timer;
        sd_event_source *stable_timer;
        sd_event_source *stop_timer;
        sd_event_source *sync_source; /* idle priority: once the loop has nothing else to do */
        sd_event_source *sync_timer;  /* the bound, while it always has something */
        bool sync_armed;
        int queue_fd;

        char **subscriptions;
        int subscription_token[SUBSCRIPTIONS_MAX]; /* the SUBSCRIBE of each, this connection */
        unsigned subscribes_pending;
        unsigned subscribed; /* how many of subscriptions are subscribed on this connection */

        InFlight *in_flight;
        unsigned n_in_flight;

        char *tls_error;  /* first TLS error text of the current attempt */
        char *transport_reason; /* why the transport of the current connection closed (prepare() mode) */
        bool quiet_failure; /* the transport has logged why the attempt failed */
        uint64_t heard_usec; /* when the broker last answered on this connection (CLOCK_BOOTTIME) */
        char *last_error; /* reason of the last loss or failure */
        bool was_connected;
        bool stop_requested;
        uint64_t incoming_dropped;
        uint64_t dropped_logged; /* outbox drops already reported */
        uint64_t drop_log_usec;

        /* The queue Paho's threads append to. */
        pthread_mutex_t lock;
        Event *queue_head, *queue_tail;
        size_t queue_incoming_bytes;
        uint64_t queue_dropped;
        bool queue_woken;     /* the eventfd was written since the loop last took the queue */
        uint64_t queue_wakeups; /* eventfd writes since the start */
        unsigned queue_lazy;  /* lazy events queued without a wake-up */
        unsigned lazy_max;    /* wake up at this many lazy events; 0: at every event (atomic accesses) */
        sd_event_source *collect_timer; /* takes lazy events nobody else took */

        /* Connection-scoped operations (see the end of this file). */
        bool outbox_held;
        DirectOp direct[MQTT_DIRECT_MAX];
        unsigned direct_group;
        MqttTopicFilter topic_filter;
        void *topic_filter_userdata;

        /* Publishes per second on this connection (all classes), and the timer that pumps
         * again when the budget has room. */
        PublishBudget budget;
        sd_event_source *budget_timer;
        RateLimit budget_log_limit;
        bool budget_saturation_logged; /* the journal heard the budget is saturated, not yet that it ended */
        uint64_t coalesced_logged;
        RateLimit coalesce_log_limit;
};

/*
 * Paho's callbacks get one void* of context.  Publish and connect results
 * must be told apart from those of an earlier connection (Paho reuses tokens
 * as MQTT packet ids), so the context carries the session pointer with the
 * attempt number in its three low bits, which are free because the session
 * is allocated with malloc() (aligned to at least 8).  A stale result would
 * have to come 8 connection attempts late to be mistaken for a current one,
 * and Paho finishes or fails every command of a connection when it is lost.
 */
#define GEN_MASK 7u
static void *ctx_make(MqttSession *s) {
        return (void *) ((uintptr_t) s | (s->gen & GEN_MASK));
}
static MqttSession *ctx_session(void *ctx) {
        return (MqttSession *) ((uintptr_t) ctx & ~(uintptr_t) GEN_MASK);
}
static unsigned ctx_gen(void *ctx) {
        return (unsigned) ((uintptr_t) ctx & GEN_MASK);
}

/*
 * Paho's command queue, kept here instead of in Paho's heap.
 *
 * Paho 1.3.12 copies the topic and payload of every publish handed to it into a
 * command of its queue; the command's send thread writes it once the connection
 * has no pending write.  When a connection drops, the publishes still queued
 * stay there (they fail only with the client).  MQTTAsync_destroy() then clears
 * the topic and payload pointers of every queued publish before freeing the
 * commands (MQTTAsync_NULLPublishCommands(), meant for publishes already written
 * and owned by the session state) and so leaks both copies, with the records of
 * Paho's heap tracking: 200 to 600 bytes per publish, 3.3 KB per reconnection
 * of a gateway publishing 200 messages/s.  The session needs a new client per
 * connection: a reused one would write those publishes first on the next
 * connection, ahead of the outbox's resend of older ones.
 *
 * With a persistence of its own, Paho serializes a queued command into it and
 * frees the topic and payload at once, reading them back when the command is
 * written.  This store keeps those commands in memory for the client's life and
 * frees what is left when Paho closes it (at MQTTAsync_destroy()).  Nothing
 * else is kept: the session is clean and the outbox resends what is not
 * acknowledged, so the copies Paho makes of publishes in flight are dropped,
 * and Paho finds nothing to restore when a client is created.
 */
typedef struct PahoRecord PahoRecord;
struct PahoRecord {
        PahoRecord *next;
        char *key;
        char *data;
        int len;
};

typedef struct PahoStore {
        pthread_mutex_t lock;
        PahoRecord *records;
} PahoStore;

/* Keys of queued commands: PERSISTENCE_COMMAND_KEY and PERSISTENCE_V5_COMMAND_KEY of Paho's MQTTPersistence.h. */
static bool paho_command_key(const char *key) {
        return strncmp(key, "c-", 2) == 0 || strncmp(key, "c5-", 3) == 0;
}

static void paho_record_free(PahoRecord *r) {
        free(r->key);
        free(r->data);
        free(r);
}

/* The record of key and the link to it, or NULL; the store locked. */
static PahoRecord **paho_store_find(PahoStore *st, const char *key) {
        for (PahoRecord **r = &st->records; *r; r = &(*r)->next)
                if (streq((*r)->key, key))
                        return r;
        return NULL;
}

static int paho_store_open(void **handle, const char *client_id, const char *server_uri, void *context) {
        PahoStore *st = calloc(1, sizeof *st);
        (void) client_id, (void) server_uri, (void) context;

        if (!st)
                return MQTTCLIENT_PERSISTENCE_ERROR;
        pthread_mutex_init(&st->lock, NULL);
        *handle = st;
        return 0;
}

static int paho_store_clear(void *handle) {
        PahoStore *st = handle;
        PahoRecord *r;

        pthread_mutex_lock(&st->lock);
        r = TAKE_PTR(st->records);
        pthread_mutex_unlock(&st->lock);
        while (r) {
                PahoRecord *next = r->next;
                paho_record_free(r);
                r = next;
        }
        return 0;
}

static int paho_store_close(void *handle) {
        PahoStore *st = handle;

        (void) paho_store_clear(st);
        pthread_mutex_destroy(&st->lock);
        free(st);
        return 0;
}

static int paho_store_put(void *handle, char *key, int bufcount, char *buffers[], int buflens[]) {
        PahoStore *st = handle;
        PahoRecord *r, **old;
        size_t len = 0;

        if (!paho_command_key(key))
                return 0; /* a copy of a message in flight: not needed (see above) */
        for (int i = 0; i < bufcount; i++)
                len += (size_t) buflens[i];
        if (len > INT_MAX)
                return MQTTCLIENT_PERSISTENCE_ERROR;
        r = calloc(1, sizeof *r);
        if (!r)
                return MQTTCLIENT_PERSISTENCE_ERROR;
        r->key = strdup(key);
        r->data = malloc(MAX(len, (size_t) 1));
        if (!r->key || !r->data) {
                paho_record_free(r);
                return MQTTCLIENT_PERSISTENCE_ERROR;
        }
        for (int i = 0; i < bufcount; i++) {
                memcpy(r->data + r->len, buffers[i], (size_t) buflens[i]);
                r->len += buflens[i];
        }
        pthread_mutex_lock(&st->lock);
        old = paho_store_find(st, key);
        if (old) {
                PahoRecord *o = *old;
                *old = o->next;
                paho_record_free(o);
        }
        r->next = st->records;
        st->records = r;
        pthread_mutex_unlock(&st->lock);
        return 0;
}

/* Paho frees the buffer with its own allocator: made with MQTTAsync_malloc(). */
static int paho_store_get(void *handle, char *key, char **buffer, int *buflen) {
        PahoStore *st = handle;
        PahoRecord **r;
        int ret = MQTTCLIENT_PERSISTENCE_ERROR;

        pthread_mutex_lock(&st->lock);
        r = paho_store_find(st, key);
        if (r) {
                *buffer = MQTTAsync_malloc(MAX((size_t) (*r)->len, (size_t) 1));
                if (*buffer) {
                        memcpy(*buffer, (*r)->data, (size_t) (*r)->len);
                        *buflen = (*r)->len;
                        ret = 0;
                }
        }
        pthread_mutex_unlock(&st->lock);
        return ret;
}

static int paho_store_remove(void *handle, char *key) {
        PahoStore *st = handle;
        PahoRecord **r, *o = NULL;

        pthread_mutex_lock(&st->lock);
        r = paho_store_find(st, key);
        if (r) {
                o = *r;
                *r = o->next;
        }
        pthread_mutex_unlock(&st->lock);
        if (o)
                paho_record_free(o);
        return 0;
}

/* Paho asks for the keys to restore a client's state when it is created, and to
 * drop copies of messages in flight: there is never anything of either kind. */
static int paho_store_keys(void *handle, char ***keys, int *nkeys) {
        (void) handle;
        *keys = NULL;
        *nkeys = 0;
        return 0;
}

static int paho_store_contains(void *handle, char *key) {
        PahoStore *st = handle;
        bool found;

        pthread_mutex_lock(&st->lock);
        found = paho_store_find(st, key);
        pthread_mutex_unlock(&st->lock);
        return found ? 0 : MQTTCLIENT_PERSISTENCE_ERROR;
}

static MQTTClient_persistence paho_store = {
        .context = &paho_store, /* Paho requires one; unused */
        .popen = paho_store_open,
        .pclose = paho_store_close,
        .pput = paho_store_put,
        .pget = paho_store_get,
        .premove = paho_store_remove,
        .pkeys = paho_store_keys,
        .pclear = paho_store_clear,
        .pcontainskey = paho_store_contains,
};

/* ---- Paho's threads: only these functions run there. ---- */

static void queue_push(MqttSession *s, Event *e) {
        bool wake;
        uint64_t one = 1;

        pthread_mutex_lock(&s->lock);
        if (e->type == EVENT_MESSAGE) {
                if (s->queue_incoming_bytes + e->len > QUEUE_INCOMING_BYTES_MAX) {
                        s->queue_dropped++;
                        pthread_mutex_unlock(&s->lock);
                        free(e->text);
                        free(e->payload);
                        free(e);
                        return;
                }
                s->queue_incoming_bytes += e->len;
        }
        /* One wake-up per batch: none while the loop has not taken the queue since the last, and
         * none for an acknowledgement of the outbox's until lazy_max of them wait. */
        wake = !s->queue_woken &&
               (!e->lazy || ++s->queue_lazy >= __atomic_load_n(&s->lazy_max, __ATOMIC_RELAXED));
        s->queue_woken = s->queue_woken || wake;
        s->queue_wakeups += wake;
        if (s->queue_tail)
                s->queue_tail->next = e;
        else
                s->queue_head = e;
        s->queue_tail = e;
        pthread_mutex_unlock(&s->lock);
        if (wake)
                (void) write(s->queue_fd, &one, sizeof one);
}

/* Allocation failures on Paho's thread cannot be reported; the event is lost and, for
 * results, the connection's keepalive or the next loss brings everything back. */
static void push_event_full(void *ctx, EventType type, int token, int code, const char *text, size_t text_max,
                            bool lazy) {
        MqttSession *s = ctx_session(ctx);
        Event *e = calloc(1, sizeof *e);
        if (!e)
                return;
        e->type = type;
        e->lazy = lazy;
        e->gen = ctx_gen(ctx);
        e->token = token;
        e->code = code;
        if (text)
                e->text = strndup(text, text_max);
        queue_push(s, e);
}

static void push_event(void *ctx, EventType type, int token, int code, const char *text, size_t text_max) {
        push_event_full(ctx, type, token, code, text, text_max, false);
}

static void on_connect_success(void *ctx, MQTTAsync_successData *r) {
        (void) r;
        push_event(ctx, EVENT_CONNECTED, 0, 0, NULL, 0);
}

static void on_connect_failure(void *ctx, MQTTAsync_failureData *r) {
        push_event(ctx, EVENT_CONNECT_FAILED, r ? r->token : 0, r ? r->code : MQTTASYNC_FAILURE,
                   r ? r->message : NULL, 256);
}

/* Every SUBSCRIBE carries one topic, so that its SUBACK code can be read: for
 * several topics Paho passes the codes without their count (and a single code,
 * in another member, when the broker returns fewer).  With one topic, Paho
 * calls on_subscribe_failure() for 0x80 and gives the granted QoS here. */
static void on_subscribe_success(void *ctx, MQTTAsync_successData *r) {
        push_event(ctx, EVENT_SUBSCRIBED, r ? r->token : 0, r ? r->alt.qos : 1, NULL, 0);
}

static void on_subscribe_failure(void *ctx, MQTTAsync_failureData *r) {
        push_event(ctx, EVENT_SUBSCRIBE_FAILED, r ? r->token : 0, r ? r->code : MQTTASYNC_FAILURE,
                   r ? r->message : NULL, 256);
}

static void on_publish_success(void *ctx, MQTTAsync_successData *r) {
        push_event(ctx, EVENT_PUBLISHED, r ? r->token : 0, 0, NULL, 0);
}

/* The PUBACK of a message of the outbox: the loop takes it when it next runs (see queue_push()). */
static void on_outbox_published(void *ctx, MQTTAsync_successData *r) {
        push_event_full(ctx, EVENT_PUBLISHED, r ? r->token : 0, 0, NULL, 0, true);
}

static void on_publish_failure(void *ctx, MQTTAsync_failureData *r) {
        push_event(ctx, EVENT_PUBLISH_FAILED, r ? r->token : 0, r ? r->code : MQTTASYNC_FAILURE,
                   r ? r->message : NULL, 256);
}

static void on_disconnect_done(void *ctx, MQTTAsync_successData *r) {
        (void) r;
        push_event(ctx, EVENT_DISCONNECTED, 0, 0, NULL, 0);
}

static void on_disconnect_failed(void *ctx, MQTTAsync_failureData *r) {
        push_event(ctx, EVENT_DISCONNECTED, 0, r ? r->code : MQTTASYNC_FAILURE, NULL, 0);
}

static void on_connection_lost(void *ctx, char *cause) {
        /* Paho 1.3 passes NULL here; a text, if ever given, is copied and left to Paho. */
        push_event(ctx, EVENT_LOST, 0, 0, cause, 256);
}

static bool has_prefix(const char *topic, size_t tlen, const char *prefix) {
        size_t n = strlen(prefix);
        return tlen >= n && memcmp(topic, prefix, n) == 0;
}

/* The bound of a message on topic: the shadow's own, or [Cloud] MaxIncomingBytes=. */
static uint64_t incoming_limit(MqttSession *s, const char *topic, size_t tlen) {
        if (has_prefix(topic, tlen, s->shadow_prefix) || has_prefix(topic, tlen, s->aws_shadow_prefix))
                return MQTT_SHADOW_BYTES_MAX;
        return __atomic_load_n(&s->max_incoming_bytes, __ATOMIC_RELAXED);
}

static int on_message_arrived(void *ctx, char *topic, int topic_len, MQTTAsync_message *m) {
        MqttSession *s = ctx_session(ctx);
        size_t len = m->payloadlen > 0 ? (size_t) m->payloadlen : 0;
        size_t tlen = topic_len > 0 ? (size_t) topic_len : strlen(topic);
        Event *e = calloc(1, sizeof *e);

        if (e) {
                e->text = strndup(topic, MIN(tlen, (size_t) OUTBOX_TOPIC_MAX));
                e->len = len;
                if (len > incoming_limit(s, topic, tlen))
                        e->type = EVENT_MESSAGE_TOO_BIG;
                else {
                        e->type = EVENT_MESSAGE;
                        e->payload = malloc(len + 1);
                        if (e->payload) {
                                memcpy(e->payload, m->payload, len);
                                e->payload[len] = 0;
                        }
                }
                e->gen = ctx_gen(ctx);
                if (!e->text || (e->type == EVENT_MESSAGE && !e->payload)) {
                        free(e->text);
                        free(e->payload);
                        free(e);
                } else
                        queue_push(s, e);
        }
        MQTTAsync_freeMessage(&m);
        MQTTAsync_free(topic);
        return 1; /* consumed */
}

static int on_ssl_error(const char *str, size_t len, void *ctx) {
        push_event(ctx, EVENT_TLS_ERROR, 0, 0, str, MIN(len, (size_t) TLS_ERROR_MAX));
        return 0;
}

/* ---- The loop thread from here on. ---- */

static void event_free(Event *e) {
        if (!e)
                return;
        free(e->text);
        free(e->payload);
        free(e);
}

static void mqtt_session_enter_state(MqttSession *s, MqttState n);
static void mqtt_session_pump(MqttSession *s);
static bool mqtt_session_direct_complete(MqttSession *s, const Event *e);
static void mqtt_session_direct_forget(MqttSession *s);

static void set_string(char **p, const char *v) {
        free(*p);
        *p = v ? strdup(v) : NULL;
}

static const char *connack_reason(int code) {
        /* MQTT 3.1.1 §3.2.2.3 */
        switch (code) {
        case 1:
                return "unacceptable protocol version";
        case 2:
                return "client identifier rejected";
        case 3:
                return "server unavailable";
        case 4:
                return "bad user name or password";
        case 5:
                return "not authorized";
        default:
                return NULL;
        }
}

static void in_flight_clear(MqttSession *s) {
        for (unsigned i = 0; i < s->window; i++)
                s->in_flight[i].used = false;
        s->n_in_flight = 0;
}

static void mqtt_session_disarm(MqttSession *s) {
        s->retry_timer = sd_event_source_disable_unref(s->retry_timer);
        s->stable_timer = sd_event_source_disable_unref(s->stable_timer);
}

static int on_retry_timer(sd_event_source *es, uint64_t usec, void *userdata);
static int on_stable_timer(sd_event_source *es, uint64_t usec, void *userdata);

static void mqtt_session_release_transport(MqttSession *s) {
        if (s->cb.prepare && s->cb.release)
                s->cb.release(s, s->userdata);
}

/* One journal record for every loss of an established connection. */
static void log_lost(MqttSession *s, const char *reason) {
        set_string(&s->last_error, reason);
        log_fields(LOG_WARNING,
                   LOG_FIELDS({ "MESSAGE_ID", MESSAGE_ID_CLOUD_LOST }, { "MQTT_STATE", mqtt_state_to_string(s->state) },
                              { "CLOUD_REASON", reason }),
                   "Cloud connection lost: %s", reason);
}

/* Reasons are "<kind>: <detail>"; the details of one kind vary from attempt to attempt. */
static bool same_reason_kind(const char *a, const char *b) {
        size_t n;
        if (!a || !b)
                return false;
        n = strcspn(a, ":");
        return n == strcspn(b, ":") && strncmp(a, b, n) == 0;
}

/* A failed attempt: said once at warning level per kind of reason, the repeats at debug level. */
static void log_attempt_failed(MqttSession *s, const char *reason, uint64_t delay) {
        bool repeat = same_reason_kind(s->last_error, reason) || s->quiet_failure;
        /* Before prepare() has made the transport there is no address to name (the URI is
         * the previous attempt's, or a placeholder). */
        bool preparing = s->state == MQTT_PREPARING;

        log_fields(repeat ? LOG_DEBUG : LOG_WARNING,
                   LOG_FIELDS({ "MQTT_STATE", mqtt_state_to_string(s->state) }, { "CLOUD_REASON", reason }),
                   "Cannot connect%s%s: %s; retrying in %" PRIu64 ".%01" PRIu64 " s", preparing ? "" : " to ",
                   preparing ? "" : (s->broker_name ?: strna(s->uri)), reason, delay / 1000000, delay / 100000 % 10);
        set_string(&s->last_error, reason);
        s->quiet_failure = false;
}

static void mqtt_session_schedule_retry(MqttSession *s, const char *reason, bool lost) {
        uint64_t delay = backoff_next(&s->backoff);
        int r;

        if (lost)
                log_lost(s, reason);
        else
                log_attempt_failed(s, reason, delay);
        mqtt_session_enter_state(s, MQTT_BACKOFF);
        r = sd_event_add_time_relative(s->event, &s->retry_timer, CLOCK_BOOTTIME, delay, 100 * 1000, on_retry_timer,
                                       s);
        if (r < 0)
                log_error_errno(r, "Failed to arm the reconnect timer, the cloud stays disconnected: %m");
}

/* The established connection is gone (or never came): back to backoff. */
static void mqtt_session_connection_over(MqttSession *s, const char *reason) {
        bool lost = s->state == MQTT_SUBSCRIBING || s->state == MQTT_READY;

        s->stable_timer = sd_event_source_disable_unref(s->stable_timer);
        outbox_rewind(s->outbox);
        in_flight_clear(s);
        s->subscribes_pending = 0;
        s->subscribed = 0;
        mqtt_session_release_transport(s);
        if (s->stop_requested) {
                mqtt_session_enter_state(s, MQTT_IDLE);
                return;
        }
        mqtt_session_schedule_retry(s, reason, lost);
}

/* Paho's own OpenSSL initialisation (asked for by default) loads every algorithm
 * at the first client, TLS or not: in modem TLS mode, where Paho speaks plain
 * TCP, it maps 1.3 MiB of library pages for nothing.  OpenSSL 3 initialises
 * itself when Paho first makes a TLS context, so Paho is told not to. */
static int threads_before_paho = -1;

/* The threads of this process, or -errno. */
static int count_threads(void) {
        DIR *d = opendir("/proc/self/task");
        int n = 0;

        if (!d)
                return -errno;
        for (struct dirent *de; (de = readdir(d));)
                n += de->d_name[0] != '.';
        closedir(d);
        return n;
}

static void mqtt_global_init(void) {
        static bool done = false;
        MQTTAsync_init_options o = MQTTAsync_init_options_initializer;

        if (done)
                return;
        o.do_openssl_init = 0;
        MQTTAsync_global_init(&o);
        threads_before_paho = count_threads();
        done = true;
}

/* MQTTAsync_destroy() of the last client tells Paho's two threads to stop but does
 * not wait for them.  One still running when the process exits races the exit
 * handlers of OpenSSL (a crash in libcrypto's per-thread cleanup was seen under
 * ASan).  Waits, at most 2 s, until the process has no more threads than before
 * Paho started. */
static void wait_for_paho_threads(void) {
        uint64_t start = now_usec(CLOCK_MONOTONIC);
        int n = 0;

        if (threads_before_paho < 0)
                return;
        while (now_usec(CLOCK_MONOTONIC) - start < UINT64_C(2000000)) {
                n = count_threads();
                if (n < 0 || n <= threads_before_paho)
                        break;
                (void) usleep(10 * 1000);
        }
        log_debug("Paho's threads %s after %" PRIu64 " ms", n <= threads_before_paho ? "ended" : "still run",
                  (now_usec(CLOCK_MONOTONIC) - start) / 1000);
}

/*
 * A new Paho client for every attempt.  Paho keeps publishes that were queued
 * but not yet written when a connection drops, and writes them first on the
 * next connection, ahead of the outbox's resend of older messages: that would
 * reorder.  Destroying the client drops them (they are kept in paho_store,
 * which Paho empties then, so nothing of them is left behind) and stops Paho's
 * threads when it is the only client, so none of its callbacks runs afterwards.
 *
 * Paho tears its global state down when its last client is destroyed and
 * builds it again for the next, stopping and starting its threads; OpenSSL
 * then gives it a new ex_data index that is never given back (48 bytes per
 * reconnection, freed at exit).  A second client that never connects would
 * keep that state, but Paho's receive thread, already running, then sees a new
 * connection's socket only after its 1 s poll timeout: 1 s more per
 * reconnection, against 48 bytes.
 */
static int mqtt_session_new_client(MqttSession *s) {
        MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
        int r;

        if (s->client)
                MQTTAsync_destroy(&s->client);
        mqtt_global_init();
        co.sendWhileDisconnected = 0; /* the outbox buffers, not Paho */
        co.MQTTVersion = MQTTVERSION_3_1_1;
        r = MQTTAsync_createWithOptions(&s->client, s->uri, s->client_id, MQTTCLIENT_PERSISTENCE_USER, &paho_store,
                                        &co);
        if (r != MQTTASYNC_SUCCESS) {
                s->client = NULL;
                return -EINVAL;
        }
        r = MQTTAsync_setCallbacks(s->client, ctx_make(s), on_connection_lost, on_message_arrived, NULL);
        if (r != MQTTASYNC_SUCCESS)
                return -EINVAL;
        return 0;
}

static int mqtt_session_connect(MqttSession *s) {
        MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer;
        MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
        char *const uris[1] = { s->uri };
        int r;

        s->gen++;
        set_string(&s->tls_error, NULL);
        set_string(&s->transport_reason, NULL);

        o.keepAliveInterval = (int) s->keepalive_sec;
        o.cleansession = 1;
        /* Always 3.1.1: with the default, Paho falls back to 3.1 after a loss, which AWS IoT refuses. */
        o.MQTTVersion = MQTTVERSION_3_1_1;
        o.automaticReconnect = 0;
        o.connectTimeout = (int) s->connect_timeout_sec;
        o.maxInflight = (int) s->window + SUBSCRIPTIONS_MAX;
        o.retryInterval = 0;
        o.onSuccess = on_connect_success;
        o.onFailure = on_connect_failure;
        o.context = ctx_make(s);
        o.serverURIs = uris;
        o.serverURIcount = 1;
        if (s->ca_file) {
                ssl.trustStore = s->ca_file;
                ssl.keyStore = s->cert_file;
                ssl.privateKey = s->key_file;
                ssl.enableServerCertAuth = 1;
                ssl.verify = 1; /* host name check against the certificate */
                /* Paho 1.3 with OpenSSL >= 1.1 builds its context with TLS_client_method() and
                 * ignores this.  TLS 1.0 and 1.1 are refused all the same: OpenSSL 3 does not
                 * accept their signature algorithms (MD5-SHA1) even when its configuration
                 * lowers the security level, as test_refused_tls_1_1 checks; AWS IoT offers
                 * TLS 1.2 and 1.3 only. */
                ssl.sslVersion = MQTT_SSL_VERSION_TLS_1_2;
                ssl.ssl_error_cb = on_ssl_error;
                ssl.ssl_error_context = ctx_make(s);
                o.ssl = &ssl;
        }

        mqtt_session_enter_state(s, MQTT_CONNECTING);
        r = mqtt_session_new_client(s);
        if (r >= 0)
                r = MQTTAsync_connect(s->client, &o);
        if (r != MQTTASYNC_SUCCESS) {
                char reason[64];
                snprintf(reason, sizeof reason, "connect refused by the MQTT library (%d)", r);
                mqtt_session_connection_over(s, reason);
                return -EIO;
        }
        return 0;
}

static void mqtt_session_attempt(MqttSession *s) {
        int r;

        if (!s->cb.prepare) {
                (void) mqtt_session_connect(s);
                return;
        }
        mqtt_session_enter_state(s, MQTT_PREPARING);
        r = s->cb.prepare(s, s->userdata);
        if (r < 0)
                mqtt_session_prepare_failed(s, r, "transport setup failed", false);
}

static int on_retry_timer(sd_event_source *es, uint64_t usec, void *userdata) {
        MqttSession *s = userdata;
        (void) es, (void) usec;
        s->retry_timer = sd_event_source_disable_unref(s->retry_timer);
        mqtt_session_attempt(s);
        return 0;
}

static int on_stable_timer(sd_event_source *es, uint64_t usec, void *userdata) {
        MqttSession *s = userdata;
        (void) es, (void) usec;
        s->stable_timer = sd_event_source_disable_unref(s->stable_timer);
        log_debug("Cloud connection stable, reconnect backoff starts over");
        backoff_reset(&s->backoff);
        return 0;
}

int mqtt_session_prepared(MqttSession *s, const char *uri) {
        if (s->state != MQTT_PREPARING)
                return -ESTALE;
        set_string(&s->uri, uri);
        if (!s->uri)
                return -ENOMEM;
        return mqtt_session_connect(s);
}

void mqtt_session_prepare_failed(MqttSession *s, int error, const char *reason, bool logged) {
        char buf[256];
        if (s->state != MQTT_PREPARING)
                return;
        if (logged) {
                /* The transport has logged the cause; this is the backoff's line (its error
                 * may be the transport's own code, not a host errno: not shown). */
                snprintf(buf, sizeof buf, "%s", reason ?: "the transport failed");
                s->quiet_failure = true;
        } else
                snprintf(buf, sizeof buf, "%s (%s)", strna(reason), strerror(-negative_errno(error)));
        mqtt_session_connection_over(s, buf);
}

void mqtt_session_transport_closed(MqttSession *s, const char *reason) {
        if (s->state == MQTT_SUBSCRIBING || s->state == MQTT_READY)
                set_string(&s->transport_reason, reason);
}

/* One SUBSCRIBE for one topic at QoS 1; its token in *token.  0 or a Paho error. */
static int subscribe_one(MqttSession *s, const char *topic, int *token) {
        MQTTAsync_responseOptions o = MQTTAsync_responseOptions_initializer;
        int r;

        o.onSuccess = on_subscribe_success;
        o.onFailure = on_subscribe_failure;
        o.context = ctx_make(s);
        r = MQTTAsync_subscribe(s->client, topic, 1, &o);
        if (r != MQTTASYNC_SUCCESS) {
                log_debug("MQTTAsync_subscribe(%s) failed: %d", topic, r);
                return r;
        }
        *token = o.token;
        return 0;
}

/* Subscribes what is not yet subscribed on this connection. */
static void mqtt_session_subscribe_missing(MqttSession *s) {
        unsigned total = (unsigned) strv_length(s->subscriptions);
        for (; s->subscribed < total; s->subscribed++) {
                int *token = &s->subscription_token[s->subscribed];
                if (subscribe_one(s, s->subscriptions[s->subscribed], token) < 0) {
                        *token = 0;
                        continue; /* the loss that follows brings us back */
                }
                s->subscribes_pending++;
        }
}

/* Logs what a SUBACK says of a subscription: refused, or granted below QoS 1.  True if granted. */
static bool log_suback(const Event *e, const char *topic) {
        if (e->type == EVENT_SUBSCRIBE_FAILED) {
                if (e->code == MQTT_BAD_SUBSCRIBE)
                        log_warning("The broker refused the subscription to %s (SUBACK 0x80)", strna(topic));
                else
                        log_warning("Failed to subscribe to %s (%d%s%s)", strna(topic), e->code, e->text ? ": " : "",
                                    strempty(e->text));
                return false;
        }
        if (e->code != 1)
                log_warning("The broker granted QoS %d, not 1, to the subscription to %s", e->code, strna(topic));
        return true;
}

/*
 * Paho (1.3.x) leaves Nagle's algorithm on for its socket and offers no way to reach the socket:
 * after its PUBACK of a message, its next small write (a PUBLISH, a SUBSCRIBE) waits for the
 * broker's delayed ACK, 40 ms on Linux, which is a third of the time from CONNACK to a ready
 * session.  Its socket is ours, though (one process): the TCP sockets whose peer is the broker's
 * port (or the modem bridge's loopback port) get TCP_NODELAY once connected.
 */
static void paho_socket_nodelay(const char *uri) {
        const char *colon = uri ? strrchr(uri, ':') : NULL;
        _cleanup_close_ int dfd = -EBADF;
        /* getdents64 into the stack, not opendir(): its 32 KiB buffer, taken at every connection,
         * shows as heap growth in the reconnect soak. */
        union {
                struct dirent64 de;
                char bytes[1024];
        } buf;
        unsigned long port;
        char *end;
        ssize_t n;

        if (!colon)
                return;
        port = strtoul(colon + 1, &end, 10);
        if (*end != '\0' || port == 0 || port > 65535)
                return;
        dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return;
        while ((n = getdents64(dfd, &buf, sizeof buf)) > 0) {
                for (ssize_t off = 0; off < n;) {
                        const struct dirent64 *de = (const struct dirent64 *) (buf.bytes + off);
                        struct sockaddr_storage sa;
                        socklen_t len = sizeof sa;
                        int fd, type, one = 1;
                        socklen_t tl = sizeof type;
                        uint16_t p;

                        off += de->d_reclen;
                        if (de->d_name[0] == '.')
                                continue;
                        fd = atoi(de->d_name);
                        if (fd == dfd || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM ||
                            getpeername(fd, (struct sockaddr *) &sa, &len) < 0)
                                continue;
                        if (sa.ss_family == AF_INET)
                                p = ntohs(((struct sockaddr_in *) &sa)->sin_port);
                        else if (sa.ss_family == AF_INET6)
                                p = ntohs(((struct sockaddr_in6 *) &sa)->sin6_port);
                        else
                                continue;
                        if (p == port)
                                (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                }
        }
}

static void handle_connected(MqttSession *s) {
        int r;

        if (s->state != MQTT_CONNECTING)
                return;
        log_fields(LOG_INFO,
                   LOG_FIELDS({ "MESSAGE_ID", MESSAGE_ID_CLOUD_CONNECTED }, { "MQTT_STATE", "subscribing" }),
                   "Cloud connected to %s as %s%s%s", s->broker_name ?: s->uri, s->client_id, s->last_error ? " after: " : "",
                   strempty(s->last_error));
        set_string(&s->last_error, NULL);
        paho_socket_nodelay(s->uri);
        s->was_connected = true;
        s->heard_usec = now_usec(CLOCK_BOOTTIME);
        r = sd_event_add_time_relative(s->event, &s->stable_timer, CLOCK_BOOTTIME, s->stable_usec, 1000 * 1000,
                                       on_stable_timer, s);
        if (r < 0)
                log_debug_errno(r, "Failed to arm the stable-connection timer, ignoring: %m");

        /* Subscribe first; the outbox is drained after the SUBACKs (Paho may send a queued
         * re-subscribe late behind a backlog, and c2g messages would be lost meanwhile). */
        outbox_rewind(s->outbox);
        in_flight_clear(s);
        s->subscribed = 0;
        s->subscribes_pending = 0;
        mqtt_session_enter_state(s, MQTT_SUBSCRIBING);
        mqtt_session_subscribe_missing(s);
        if (s->subscribes_pending == 0)
                mqtt_session_enter_state(s, MQTT_READY);
}

static void handle_connect_failed(MqttSession *s, const Event *e) {
        char reason[512];
        const char *c;

        if (s->state != MQTT_CONNECTING)
                return;
        c = connack_reason(e->code);
        if (s->tls_error)
                snprintf(reason, sizeof reason, "TLS error: %s", s->tls_error);
        else if (c)
                snprintf(reason, sizeof reason, "refused by the broker: %s", c);
        else
                snprintf(reason, sizeof reason, "network: %s (%d)", e->text ?: "connect failed", e->code);
        /* Trim the trailing newline OpenSSL puts in its error strings. */
        reason[strcspn(reason, "\n")] = 0;
        mqtt_session_connection_over(s, reason);
}

static void handle_publish_result(MqttSession *s, const Event *e) {
        unsigned i;

        if (mqtt_session_direct_complete(s, e))
                return;

        for (i = 0; i < s->window; i++)
                if (s->in_flight[i].used && s->in_flight[i].token == e->token)
                        break;
        if (i == s->window)
                return; /* a result of an earlier connection */

        if (e->type == EVENT_PUBLISHED) {
                uint64_t seq = s->in_flight[i].seq;
                int r;

                s->in_flight[i].used = false;
                s->n_in_flight--;
                r = outbox_ack(s->outbox, seq);
                if (r < 0 && r != -ENOENT)
                        log_debug_errno(r, "Failed to record the acknowledgement of %" PRIu64 ", ignoring: %m", seq);
                if (s->cb.acked && r != -ENOENT)
                        s->cb.acked(s, seq, s->userdata);
                mqtt_session_pump(s);
                return;
        }

        /* A QoS 1 publish fails only with its connection (Paho reports the one in flight at a
         * cut as failed although the broker may have it): resend everything unacknowledged, in
         * order, on a new connection. */
        {
                char reason[300];
                snprintf(reason, sizeof reason, "network: connection dropped with messages in flight (%d%s%s)",
                         e->code, e->text ? ": " : "", strempty(e->text));
                if (s->state == MQTT_READY || s->state == MQTT_SUBSCRIBING) {
                        MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
                        d.timeout = 0;
                        (void) MQTTAsync_disconnect(s->client, &d);
                        mqtt_session_connection_over(s, reason);
                }
        }
}

/*
 * Why an established connection was lost.  Paho 1.3 does not say (its cause is
 * NULL for MQTT 3.1.1).  The transport of prepare() tells what its far end did
 * (the broker closed the connection, a TLS error).  Otherwise: Paho drops the
 * connection for want of an answer to its keepalive only when nothing came from
 * the broker for the keepalive interval, so a loss sooner after the broker's
 * last answer is the broker or the network closing it.  Later, the two cannot
 * be told apart (the answers to Paho's pings are not seen here).
 */
static const char *lost_reason(MqttSession *s, const Event *e) {
        if (e->text)
                return e->text;
        if (s->transport_reason)
                return s->transport_reason;
        if (now_usec(CLOCK_BOOTTIME) - s->heard_usec < (uint64_t) s->keepalive_sec * 1000000u)
                return "connection closed by the broker or the network";
        return "connection closed by the broker or the network, or keepalive timeout";
}

static void handle_event(MqttSession *s, Event *e) {
        bool current = e->gen == (s->gen & GEN_MASK);

        if (current && (e->type == EVENT_PUBLISHED || e->type == EVENT_SUBSCRIBED ||
                        e->type == EVENT_SUBSCRIBE_FAILED || e->type == EVENT_MESSAGE))
                s->heard_usec = now_usec(CLOCK_BOOTTIME);

        switch (e->type) {
        case EVENT_CONNECTED:
                if (current)
                        handle_connected(s);
                break;
        case EVENT_CONNECT_FAILED:
                if (current)
                        handle_connect_failed(s, e);
                break;
        case EVENT_TLS_ERROR:
                if (current && !s->tls_error && e->text)
                        set_string(&s->tls_error, e->text);
                break;
        case EVENT_LOST:
                if (current && (s->state == MQTT_SUBSCRIBING || s->state == MQTT_READY))
                        mqtt_session_connection_over(s, lost_reason(s, e));
                break;
        case EVENT_SUBSCRIBED:
        case EVENT_SUBSCRIBE_FAILED:
                if (!current || (s->state != MQTT_SUBSCRIBING && s->state != MQTT_READY))
                        break;
                if (mqtt_session_direct_complete(s, e))
                        break;
                for (unsigned i = 0; i < s->subscribed; i++)
                        if (s->subscription_token[i] == e->token) {
                                (void) log_suback(e, s->subscriptions[i]);
                                s->subscription_token[i] = 0;
                                break;
                        }
                if (s->subscribes_pending > 0)
                        s->subscribes_pending--;
                if (s->subscribes_pending == 0 && s->state == MQTT_SUBSCRIBING)
                        mqtt_session_enter_state(s, MQTT_READY);
                break;
        case EVENT_PUBLISHED:
        case EVENT_PUBLISH_FAILED:
                if (current && (s->state == MQTT_SUBSCRIBING || s->state == MQTT_READY))
                        handle_publish_result(s, e);
                break;
        case EVENT_MESSAGE:
                if (s->cb.message)
                        s->cb.message(s, e->text, e->payload, e->len, s->userdata);
                break;
        case EVENT_MESSAGE_TOO_BIG:
                s->incoming_dropped++;
                if (incoming_limit(s, e->text, strlen(e->text)) == MQTT_SHADOW_BYTES_MAX)
                        log_warning("Dropped a %zu-byte message on %s: over the shadow limit of %u bytes", e->len,
                                    e->text, MQTT_SHADOW_BYTES_MAX);
                else
                        log_warning("Dropped a %zu-byte message on %s: over MaxIncomingBytes=%" PRIu64, e->len,
                                    e->text, s->max_incoming_bytes);
                if (s->cb.message_too_big)
                        s->cb.message_too_big(s, e->text, e->len, s->userdata);
                break;
        case EVENT_DISCONNECTED:
                if (s->state == MQTT_STOPPING) {
                        s->stop_timer = sd_event_source_disable_unref(s->stop_timer);
                        mqtt_session_release_transport(s);
                        mqtt_session_enter_state(s, MQTT_IDLE);
                        if (s->cb.stopped)
                                s->cb.stopped(s, s->userdata);
                }
                break;
        case _EVENT_TYPE_MAX:
                break;
        }
}

/* Takes every event of the queue and handles it.  lazy_only: only when all of them are lazy
 * acknowledgements (no wake-up pending), which are safe to handle from within a publish. */
static void mqtt_session_take_queue(MqttSession *s, bool lazy_only) {
        uint64_t v, dropped;
        Event *list;

        /* Read before the queue is taken: a wake-up written after this is for an event pushed
         * after it, either taken below (the next pass finds the queue empty) or left for it. */
        if (!lazy_only)
                (void) read(s->queue_fd, &v, sizeof v);
        pthread_mutex_lock(&s->lock);
        if (lazy_only && (s->queue_woken || !s->queue_head)) {
                pthread_mutex_unlock(&s->lock);
                return;
        }
        list = s->queue_head;
        s->queue_head = s->queue_tail = NULL;
        s->queue_incoming_bytes = 0;
        s->queue_woken = false;
        s->queue_lazy = 0;
        dropped = s->queue_dropped;
        s->queue_dropped = 0;
        pthread_mutex_unlock(&s->lock);

        if (dropped > 0) {
                s->incoming_dropped += dropped;
                log_warning("Dropped %" PRIu64 " incoming message(s): more than %u bytes waiting", dropped,
                            QUEUE_INCOMING_BYTES_MAX);
        }
        while (list) {
                Event *e = list;
                list = e->next;
                handle_event(s, e);
                event_free(e);
        }
}

static int on_queue(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        (void) es, (void) fd, (void) revents;
        mqtt_session_take_queue(userdata, false);
        return 0;
}

static void mqtt_session_arm_collect(MqttSession *s);

static int on_collect_timer(sd_event_source *es, uint64_t usec, void *userdata) {
        MqttSession *s = userdata;
        (void) es, (void) usec;

        mqtt_session_take_queue(s, false);
        /* Acknowledgements still to come would otherwise wait for a publish that may never come. */
        if (s->n_in_flight > 0)
                mqtt_session_arm_collect(s);
        return 0;
}

/* While publishes of the outbox's are in flight, their acknowledgements are taken at the latest by
 * this timer: armed by the publish that finds it off, and by itself while any is left. */
static void mqtt_session_arm_collect(MqttSession *s) {
        int enabled = SD_EVENT_OFF;

        if (__atomic_load_n(&s->lazy_max, __ATOMIC_RELAXED) == 0)
                return;
        if (s->collect_timer && sd_event_source_get_enabled(s->collect_timer, &enabled) >= 0 &&
            enabled != SD_EVENT_OFF)
                return; /* already due: not moved per message */
        if (!s->collect_timer) {
                if (sd_event_add_time_relative(s->event, &s->collect_timer, CLOCK_MONOTONIC, ACK_COLLECT_USEC,
                                               ACK_COLLECT_USEC, on_collect_timer, s) < 0)
                        __atomic_store_n(&s->lazy_max, 0, __ATOMIC_RELAXED); /* then wake at every one */
                return;
        }
        (void) sd_event_source_set_time_relative(s->collect_timer, ACK_COLLECT_USEC);
        (void) sd_event_source_set_enabled(s->collect_timer, SD_EVENT_ONESHOT);
}

static void mqtt_session_enter_state(MqttSession *s, MqttState n) {
        MqttState old = s->state;

        if (old == n)
                return;
        log_fields(LOG_DEBUG, LOG_FIELDS({ "MQTT_STATE", mqtt_state_to_string(n) }), "MQTT state %s -> %s",
                   mqtt_state_to_string(old), mqtt_state_to_string(n));
        s->state = n;
        /* Acknowledgements wait for the loop only while it publishes; half the window keeps a
         * backlog flowing with one wake-up per half window. */
        __atomic_store_n(&s->lazy_max, n == MQTT_READY ? MAX(s->window / 2, 1u) : 0u, __ATOMIC_RELAXED);
        if (n != MQTT_SUBSCRIBING && n != MQTT_READY)
                mqtt_session_direct_forget(s);
        switch (n) {
        case MQTT_IDLE:
                mqtt_session_disarm(s);
                break;
        case MQTT_PREPARING:
        case MQTT_CONNECTING:
        case MQTT_SUBSCRIBING:
        case MQTT_BACKOFF:
        case MQTT_STOPPING:
                break;
        case MQTT_READY:
                mqtt_session_pump(s);
                break;
        case _MQTT_STATE_MAX:
                break;
        }
        if (s->cb.state_changed)
                s->cb.state_changed(s, old, n, s->userdata);
}

static void mqtt_session_pump(MqttSession *s);

static int on_budget_timer(sd_event_source *es, uint64_t usec, void *userdata) {
        (void) es, (void) usec;
        mqtt_session_pump(userdata);
        return 0;
}

/* Out of budget: pumps again when one more publish fits.  The journal hears of it (at most once
 * a minute) only when more than a second's worth waits: the pacing of the burst that follows
 * every connection is no news; and then of its end, once the backlog is sent. */
static void mqtt_session_wait_for_budget(MqttSession *s, uint64_t now) {
        uint64_t at = publish_budget_next(&s->budget, now);
        int r;

        if (!s->budget_timer) {
                r = sd_event_add_time(s->event, &s->budget_timer, CLOCK_MONOTONIC, at, 1000, on_budget_timer, s);
                if (r < 0) {
                        log_error_errno(r, "Failed to arm the publish budget timer: %m");
                        return;
                }
        } else {
                (void) sd_event_source_set_time(s->budget_timer, at);
                (void) sd_event_source_set_enabled(s->budget_timer, SD_EVENT_ONESHOT);
        }
        if (outbox_unsent(s->outbox) > s->budget.rate && !s->budget_saturation_logged &&
            ratelimit_below(&s->budget_log_limit, now, NULL)) {
                char rate[16];
                snprintf(rate, sizeof rate, "%u", s->budget.rate);
                log_fields(LOG_NOTICE,
                           LOG_FIELDS({ "MESSAGE_ID", MESSAGE_ID_PUBLISH_BUDGET_SATURATED }, { "PUBLISH_RATE", rate }),
                           "Publish budget of %u/s saturated, %" PRIu64 " message(s) waiting in the outbox",
                           s->budget.rate, outbox_unsent(s->outbox));
                s->budget_saturation_logged = true;
        }
}

/* The end of a saturation the journal heard of: the outbox has nothing left waiting. */
static void mqtt_session_log_budget_end(MqttSession *s) {
        char rate[16];

        if (!s->budget_saturation_logged || outbox_unsent(s->outbox) > 0)
                return;
        snprintf(rate, sizeof rate, "%u", s->budget.rate);
        log_fields(LOG_NOTICE,
                   LOG_FIELDS({ "MESSAGE_ID", MESSAGE_ID_PUBLISH_BUDGET_CLEARED }, { "PUBLISH_RATE", rate }),
                   "Publish budget of %u/s no longer saturated, the backlog is sent (since start: %" PRIu64
                   " publish(es) deferred, %" PRIu64 " notification(s) coalesced, %" PRIu64 " message(s) dropped)",
                   s->budget.rate, s->budget.deferred, outbox_coalesced(s->outbox), outbox_dropped(s->outbox));
        s->budget_saturation_logged = false;
}

/*
 * Feeds Paho at most `window` messages; the next goes from the acknowledgement of one.  Every
 * publish of the connection (notifications, status, shadow updates, answers) takes one from the
 * publish budget; the outbox gives them by class priority (see outbox_peek_unsent()).
 */
static void mqtt_session_pump(MqttSession *s) {
        OutboxEntry e;

        if (s->state != MQTT_READY || s->outbox_held)
                return;
        while (s->n_in_flight < s->window && outbox_peek_next(s->outbox, &e)) {
                MQTTAsync_message m = MQTTAsync_message_initializer;
                MQTTAsync_responseOptions o = MQTTAsync_responseOptions_initializer;
                unsigned slot;
                int r;

                if (s->topic_filter && !s->topic_filter(e.topic, s->topic_filter_userdata)) {
                        outbox_mark_sent(s->outbox, e.seq);
                        (void) outbox_ack(s->outbox, e.seq); /* removed, never sent */
                        continue;
                }

                if (s->budget.rate > 0) {
                        uint64_t now = now_usec(CLOCK_MONOTONIC);
                        if (!publish_budget_take(&s->budget, now)) {
                                mqtt_session_wait_for_budget(s, now);
                                return;
                        }
                }

                m.payload = (void *) e.payload;
                m.payloadlen = (int) e.payload_len;
                m.qos = 1;
                m.retained = 0;
                o.onSuccess = on_outbox_published;
                o.onFailure = on_publish_failure;
                o.context = ctx_make(s);
                r = MQTTAsync_sendMessage(s->client, e.topic, &m, &o);
                if (r != MQTTASYNC_SUCCESS) {
                        /* Never busy-retry: the next acknowledgement or connection pumps again. */
                        log_debug("MQTTAsync_sendMessage() of %" PRIu64 " failed: %d, waiting", e.seq, r);
                        return;
                }
                for (slot = 0; slot < s->window && s->in_flight[slot].used; slot++)
                        ;
                s->in_flight[slot] = (InFlight){ .token = o.token, .seq = e.seq, .used = true };
                s->n_in_flight++;
                outbox_mark_sent(s->outbox, e.seq);
                mqtt_session_arm_collect(s);
        }
        mqtt_session_log_budget_end(s);
}

void mqtt_session_kick(MqttSession *s) {
        mqtt_session_pump(s);
}

static void mqtt_session_sync(MqttSession *s) {
        int r;

        s->sync_armed = false;
        (void) sd_event_source_set_enabled(s->sync_source, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(s->sync_timer, SD_EVENT_OFF);
        r = outbox_sync(s->outbox);
        if (r < 0)
                log_error_errno(r, "Failed to sync the outbox, messages may not survive a power cut: %m");
}

static int on_sync(sd_event_source *es, void *userdata) {
        (void) es;
        mqtt_session_sync(userdata);
        return 0;
}

static int on_sync_timer(sd_event_source *es, uint64_t usec, void *userdata) {
        (void) es, (void) usec;
        mqtt_session_sync(userdata);
        return 0;
}

/*
 * Group commit: one fdatasync for the pushes made while the loop is busy.  A
 * deferred source at idle priority runs it as soon as nothing else is pending
 * (at once when traffic is light); under a flood of notifications something
 * always is (sd-event dispatches one source per iteration, and every D-Bus
 * signal is one), and the timer bounds the wait to SYNC_DELAY_MAX_USEC.  At
 * normal priority the sync ran between every two notifications: one
 * fdatasync per message, the first cost of the loop thread at high rates.
 */
static void mqtt_session_arm_sync(MqttSession *s) {
        if (s->sync_armed)
                return;
        s->sync_armed = true;
        (void) sd_event_source_set_enabled(s->sync_source, SD_EVENT_ONESHOT);
        /* From now, not from the loop's cached time of the iteration. */
        (void) sd_event_source_set_time(s->sync_timer, now_usec(CLOCK_MONOTONIC) + SYNC_DELAY_MAX_USEC);
        (void) sd_event_source_set_enabled(s->sync_timer, SD_EVENT_ONESHOT);
}

/* Drops are counted by the outbox; said at most once a minute, with the running total. */
static void mqtt_session_log_drops(MqttSession *s) {
        uint64_t dropped = outbox_dropped(s->outbox), now;
        char n[32];

        if (dropped == s->dropped_logged)
                return;
        now = now_usec(CLOCK_BOOTTIME);
        if (s->drop_log_usec != 0 && now - s->drop_log_usec < DROP_LOG_INTERVAL_USEC)
                return;
        snprintf(n, sizeof n, "%" PRIu64, dropped);
        log_fields(LOG_WARNING, LOG_FIELDS({ "OUTBOX_DROPPED", n }),
                   "Outbox full: dropped %" PRIu64 " message(s) since the last report, %" PRIu64
                   " since start (oldest notifications first)",
                   dropped - s->dropped_logged, dropped);
        s->dropped_logged = dropped;
        s->drop_log_usec = now;
}

int mqtt_session_publish(MqttSession *s, OutboxClass class, const char *topic, const void *payload, size_t len,
                         uint64_t *ret_seq) {
        int r;

        /* The acknowledgements that came since the last publish, without a wake-up of their own. */
        mqtt_session_take_queue(s, true);
        r = outbox_push(s->outbox, class, topic, payload, len, ret_seq);
        mqtt_session_log_drops(s);
        if (outbox_coalesced(s->outbox) != s->coalesced_logged &&
            ratelimit_below(&s->coalesce_log_limit, now_usec(CLOCK_MONOTONIC), NULL)) {
                log_notice("NotifyOverflow=latest: %" PRIu64 " unsent notification(s) replaced by a newer value of "
                           "the same characteristic since the last report, %" PRIu64 " since start",
                           outbox_coalesced(s->outbox) - s->coalesced_logged, outbox_coalesced(s->outbox));
                s->coalesced_logged = outbox_coalesced(s->outbox);
        }
        if (r < 0)
                return r;
        /* With SyncIntervalSec= the outbox keeps its deadlines with its own timer: arming the group
         * commit per push cost two timer changes and a pass of the loop per message, for nothing. */
        if (!outbox_syncs_itself(s->outbox))
                mqtt_session_arm_sync(s);
        mqtt_session_pump(s);
        return 0;
}

int mqtt_session_subscribe(MqttSession *s, const char *topic) {
        int r;

        if (!topic || !*topic)
                return -EINVAL;
        for (char **t = s->subscriptions; t && *t; t++)
                if (streq(*t, topic))
                        return 0;
        if (strv_length(s->subscriptions) >= SUBSCRIPTIONS_MAX)
                return -E2BIG;
        r = strv_extendf(&s->subscriptions, "%s", topic);
        if (r < 0)
                return r;
        if (s->state == MQTT_SUBSCRIBING || s->state == MQTT_READY)
                mqtt_session_subscribe_missing(s);
        return 0;
}

int mqtt_session_start(MqttSession *s) {
        if (s->state != MQTT_IDLE)
                return 0;
        s->stop_requested = false;
        backoff_reset(&s->backoff);
        mqtt_session_attempt(s);
        return 0;
}

static int on_stop_timeout(sd_event_source *es, uint64_t usec, void *userdata) {
        MqttSession *s = userdata;
        (void) es, (void) usec;
        s->stop_timer = sd_event_source_disable_unref(s->stop_timer);
        log_warning("The broker did not confirm the disconnect in time, closing anyway");
        mqtt_session_release_transport(s);
        mqtt_session_enter_state(s, MQTT_IDLE);
        if (s->cb.stopped)
                s->cb.stopped(s, s->userdata);
        return 0;
}

void mqtt_session_stop(MqttSession *s) {
        MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;

        s->stop_requested = true;
        switch (s->state) {
        case MQTT_IDLE:
        case MQTT_STOPPING:
                return;
        case MQTT_PREPARING:
        case MQTT_BACKOFF:
                mqtt_session_release_transport(s);
                mqtt_session_enter_state(s, MQTT_IDLE);
                if (s->cb.stopped)
                        s->cb.stopped(s, s->userdata);
                return;
        case MQTT_CONNECTING:
        case MQTT_SUBSCRIBING:
        case MQTT_READY:
                break;
        case _MQTT_STATE_MAX:
                return;
        }
        mqtt_session_disarm(s);
        d.timeout = DISCONNECT_TIMEOUT_MS;
        d.onSuccess = on_disconnect_done;
        d.onFailure = on_disconnect_failed;
        d.context = ctx_make(s);
        mqtt_session_enter_state(s, MQTT_STOPPING);
        if (MQTTAsync_disconnect(s->client, &d) != MQTTASYNC_SUCCESS ||
            sd_event_add_time_relative(s->event, &s->stop_timer, CLOCK_BOOTTIME, STOP_TIMEOUT_USEC, 0,
                                       on_stop_timeout, s) < 0) {
                mqtt_session_release_transport(s);
                mqtt_session_enter_state(s, MQTT_IDLE);
                if (s->cb.stopped)
                        s->cb.stopped(s, s->userdata);
        }
}

/*
 * The private key is opened once, here, and checked on that open file: it must
 * be a regular file owned by the daemon's user and not accessible by group or
 * other.  Paho takes only a path and reads it at every connection, so it is
 * given /proc/self/fd/<fd> of this open file: a later rename, symlink swap or
 * replacement of KeyFile= cannot change what Paho reads, and there is no
 * window between the check and the use.  The descriptor lives as long as
 * the session.
 */
static int open_key_file(const char *path, int *ret_fd, char **ret_path) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 || fstat(fd, &st) < 0)
                return log_error_errno(errno, "Cannot use KeyFile=%s: %m", path);
        if (!S_ISREG(st.st_mode))
                return log_error_errno(EPERM, "Refusing KeyFile=%s: not a regular file", path);
        if (st.st_uid != geteuid())
                return log_error_errno(EPERM,
                                       "Refusing KeyFile=%s: it is owned by UID %u, not by the daemon's user (UID %u); "
                                       "run chown on it",
                                       path, (unsigned) st.st_uid, (unsigned) geteuid());
        if (st.st_mode & (S_IRWXG | S_IRWXO))
                return log_error_errno(EPERM,
                                       "Refusing KeyFile=%s: it is accessible by group or other (mode %04o); "
                                       "run chmod 600 on it",
                                       path, (unsigned) (st.st_mode & 07777));
        if (asprintf(ret_path, "/proc/self/fd/%d", fd) < 0)
                return -ENOMEM;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int mqtt_session_new(sd_event *event, const MqttOptions *options, Outbox *outbox, const MqttCallbacks *callbacks,
                     void *userdata, MqttSession **ret) {
        _cleanup_(mqtt_session_freep) MqttSession *s = NULL;
        int r;

        if (!options->client_id || !*options->client_id)
                return -EINVAL;
        if (!!options->ca_file != !!options->cert_file || !!options->ca_file != !!options->key_file)
                return -EINVAL;

        _Static_assert(alignof(max_align_t) > GEN_MASK, "context tagging needs 8-byte alignment");
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->queue_fd = -EBADF;
        s->key_fd = -EBADF;
        pthread_mutex_init(&s->lock, NULL);
        s->event = sd_event_ref(event);
        s->outbox = outbox;
        if (callbacks)
                s->cb = *callbacks;
        s->userdata = userdata;
        s->keepalive_sec = options->keepalive_sec ?: 1200;
        s->connect_timeout_sec = options->connect_timeout_sec ?: 30;
        s->stable_usec = options->stable_usec ?: MQTT_STABLE_USEC_DEFAULT;
        s->window = CLAMP(options->window ?: MQTT_WINDOW_DEFAULT, 1u, MQTT_WINDOW_MAX);
        publish_budget_init(&s->budget, options->max_publish_rate);
        s->budget_log_limit = (RateLimit){ .interval_usec = UINT64_C(60000000), .burst = 1 };
        s->coalesce_log_limit = s->budget_log_limit;
        s->max_incoming_bytes = options->max_incoming_bytes ?: 16384;
        backoff_init(&s->backoff, options->reconnect_min_usec ?: 1000000, options->reconnect_max_usec ?: 300000000);

        s->client_id = strdup(options->client_id);
        if (asprintf(&s->shadow_prefix, "%s/shadow/", options->client_id) < 0)
                s->shadow_prefix = NULL;
        if (asprintf(&s->aws_shadow_prefix, "$aws/things/%s/shadow/", options->client_id) < 0)
                s->aws_shadow_prefix = NULL;
        if (!s->shadow_prefix || !s->aws_shadow_prefix)
                return -ENOMEM;
        s->server_uri = options->server_uri ? strdup(options->server_uri) : strdup("tcp://127.0.0.1:1");
        s->uri = strdup(s->server_uri ?: "");
        if (options->broker_name && !(s->broker_name = strdup(options->broker_name)))
                return -ENOMEM;
        s->in_flight = calloc(s->window, sizeof *s->in_flight);
        if (!s->client_id || !s->server_uri || !s->uri || !s->in_flight)
                return -ENOMEM;
        if (options->ca_file) {
                r = open_key_file(options->key_file, &s->key_fd, &s->key_file);
                if (r < 0)
                        return r;
                s->ca_file = strdup(options->ca_file);
                s->cert_file = strdup(options->cert_file);
                if (!s->ca_file || !s->cert_file)
                        return -ENOMEM;
        }

        s->queue_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (s->queue_fd < 0)
                return -errno;
        r = sd_event_add_io(event, &s->queue_source, s->queue_fd, EPOLLIN, on_queue, s);
        if (r < 0)
                return r;
        r = sd_event_add_defer(event, &s->sync_source, on_sync, s);
        if (r < 0)
                return r;
        r = sd_event_source_set_priority(s->sync_source, SD_EVENT_PRIORITY_IDLE);
        if (r < 0)
                return r;
        r = sd_event_source_set_enabled(s->sync_source, SD_EVENT_OFF);
        if (r < 0)
                return r;
        /* An idle source alone would starve while acknowledgements keep coming: the timer bounds it. */
        r = sd_event_add_time_relative(event, &s->sync_timer, CLOCK_MONOTONIC, SYNC_DELAY_MAX_USEC, 1000,
                                       on_sync_timer, s);
        if (r < 0)
                return r;
        r = sd_event_source_set_enabled(s->sync_timer, SD_EVENT_OFF);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(s);
        return 0;
}

MqttSession *mqtt_session_free(MqttSession *s) {
        if (!s)
                return NULL;
        if (s->client) {
                /* Stops Paho's threads when it is the last client: no callback runs after this. */
                MQTTAsync_destroy(&s->client);
                wait_for_paho_threads();
        }
        mqtt_session_disarm(s);
        mqtt_session_direct_forget(s);
        s->stop_timer = sd_event_source_disable_unref(s->stop_timer);
        s->queue_source = sd_event_source_disable_unref(s->queue_source);
        s->sync_source = sd_event_source_disable_unref(s->sync_source);
        s->sync_timer = sd_event_source_disable_unref(s->sync_timer);
        s->budget_timer = sd_event_source_disable_unref(s->budget_timer);
        s->collect_timer = sd_event_source_disable_unref(s->collect_timer);
        if (s->outbox)
                (void) outbox_sync(s->outbox);
        while (s->queue_head) {
                Event *e = s->queue_head;
                s->queue_head = e->next;
                event_free(e);
        }
        pthread_mutex_destroy(&s->lock);
        safe_close(s->queue_fd);
        strv_free(s->subscriptions);
        free(s->in_flight);
        free(s->client_id);
        free(s->shadow_prefix);
        free(s->aws_shadow_prefix);
        free(s->server_uri);
        free(s->broker_name);
        free(s->uri);
        free(s->ca_file);
        free(s->cert_file);
        free(s->key_file);
        safe_close(s->key_fd);
        free(s->tls_error);
        free(s->transport_reason);
        free(s->last_error);
        sd_event_unref(s->event);
        free(s);
        return NULL;
}

MqttState mqtt_session_get_state(const MqttSession *s) {
        return s->state;
}
bool mqtt_session_budget_saturated(const MqttSession *s) {
        return s->budget.saturated;
}
uint64_t mqtt_session_budget_deferred(const MqttSession *s) {
        return s->budget.deferred;
}
unsigned mqtt_session_in_flight(const MqttSession *s) {
        return s->n_in_flight;
}
uint64_t mqtt_session_wakeups(MqttSession *s) {
        uint64_t n;

        pthread_mutex_lock(&s->lock);
        n = s->queue_wakeups;
        pthread_mutex_unlock(&s->lock);
        return n;
}

uint64_t mqtt_session_incoming_dropped(const MqttSession *s) {
        return s->incoming_dropped;
}
const char *mqtt_session_last_error(const MqttSession *s) {
        return s->last_error;
}

uint64_t mqtt_session_next_retry_usec(const MqttSession *s) {
        uint64_t t;
        return s->retry_timer && sd_event_source_get_time(s->retry_timer, &t) >= 0 ? t : 0;
}

void mqtt_session_set_limits(MqttSession *s, uint64_t reconnect_min_usec, uint64_t reconnect_max_usec,
                             uint64_t max_incoming_bytes) {
        unsigned attempt = s->backoff.attempt;
        backoff_init(&s->backoff, reconnect_min_usec, reconnect_max_usec);
        s->backoff.attempt = attempt;
        __atomic_store_n(&s->max_incoming_bytes, max_incoming_bytes, __ATOMIC_RELAXED);
}

/* ---- Connection-scoped operations (see mqtt.h). ---- */

#define RECONNECT_DELAY_USEC (100u * 1000u) /* lets Paho write the DISCONNECT before the client is replaced */

static DirectOp *mqtt_session_direct_slot(MqttSession *s) {
        for (unsigned i = 0; i < MQTT_DIRECT_MAX; i++)
                if (!s->direct[i].used)
                        return &s->direct[i];
        return NULL;
}

/* A result for a connection-scoped operation: calls its done() and says true. */
static unsigned mqtt_session_direct_free_slots(const MqttSession *s) {
        unsigned n = 0;
        for (unsigned i = 0; i < MQTT_DIRECT_MAX; i++)
                n += !s->direct[i].used;
        return n;
}

static void direct_op_clear(DirectOp *d) {
        free(d->topic);
        *d = (DirectOp){};
}

/* The result of a connection-scoped operation: calls its done() when it was the
 * last of its group, and says true. */
static bool mqtt_session_direct_complete(MqttSession *s, const Event *e) {
        for (unsigned i = 0; i < MQTT_DIRECT_MAX; i++) {
                DirectOp *d = &s->direct[i];
                MqttDoneFn done = d->done;
                void *userdata = d->userdata;
                unsigned group = d->group;
                bool failed = d->failed, last = true;

                if (!d->used || d->token != e->token)
                        continue;
                if (e->type == EVENT_SUBSCRIBED || e->type == EVENT_SUBSCRIBE_FAILED)
                        failed = !log_suback(e, d->topic) || failed;
                else
                        failed = e->type != EVENT_PUBLISHED;
                direct_op_clear(d);
                for (unsigned j = 0; group != 0 && j < MQTT_DIRECT_MAX; j++)
                        if (s->direct[j].used && s->direct[j].group == group) {
                                s->direct[j].failed = s->direct[j].failed || failed;
                                last = false;
                        }
                if (last && done)
                        done(failed ? -EIO : 0, userdata);
                return true;
        }
        return false;
}

static void mqtt_session_direct_forget(MqttSession *s) {
        for (unsigned i = 0; i < MQTT_DIRECT_MAX; i++)
                direct_op_clear(&s->direct[i]);
}

int mqtt_session_subscribe_now(MqttSession *s, char *const *topics, size_t n, MqttDoneFn done, void *userdata) {
        unsigned group;
        size_t queued = 0;

        if (!topics || n == 0 || n > TOPICS_PER_SUBSCRIBE)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!topics[i] || !*topics[i])
                        return -EINVAL;
        if (s->state != MQTT_SUBSCRIBING && s->state != MQTT_READY)
                return -ENOTCONN;
        if (mqtt_session_direct_free_slots(s) < n)
                return -EBUSY;

        group = ++s->direct_group ?: ++s->direct_group;
        for (size_t i = 0; i < n; i++) {
                DirectOp *d = mqtt_session_direct_slot(s);
                int token;

                if (subscribe_one(s, topics[i], &token) < 0) {
                        if (queued == 0)
                                return -EIO;
                        /* done() reports the failure when those already queued end. */
                        for (unsigned j = 0; j < MQTT_DIRECT_MAX; j++)
                                if (s->direct[j].used && s->direct[j].group == group)
                                        s->direct[j].failed = true;
                        break;
                }
                *d = (DirectOp){ .token = token, .used = true, .group = group, .topic = strdup(topics[i]),
                                 .done = done, .userdata = userdata };
                queued++;
        }
        return 0;
}

int mqtt_session_publish_now(MqttSession *s, const char *topic, const void *payload, size_t len, MqttDoneFn done,
                             void *userdata) {
        MQTTAsync_message m = MQTTAsync_message_initializer;
        MQTTAsync_responseOptions o = MQTTAsync_responseOptions_initializer;
        DirectOp *d;
        int r;

        if (!topic || !*topic || strlen(topic) > OUTBOX_TOPIC_MAX || (len > 0 && !payload))
                return -EINVAL;
        if (len > OUTBOX_PAYLOAD_MAX)
                return -EMSGSIZE;
        if (s->state != MQTT_SUBSCRIBING && s->state != MQTT_READY)
                return -ENOTCONN;
        d = mqtt_session_direct_slot(s);
        if (!d)
                return -EBUSY;
        m.payload = (void *) payload;
        m.payloadlen = (int) len;
        m.qos = 1;
        m.retained = 0;
        o.onSuccess = on_publish_success;
        o.onFailure = on_publish_failure;
        o.context = ctx_make(s);
        r = MQTTAsync_sendMessage(s->client, topic, &m, &o);
        if (r != MQTTASYNC_SUCCESS) {
                log_debug("MQTTAsync_sendMessage() on %s failed: %d", topic, r);
                return -EIO;
        }
        *d = (DirectOp){ .token = o.token, .used = true, .done = done, .userdata = userdata };
        return 0;
}

void mqtt_session_hold_outbox(MqttSession *s, bool hold) {
        if (s->outbox_held == hold)
                return;
        s->outbox_held = hold;
        if (!hold)
                mqtt_session_pump(s);
}

int mqtt_session_reconnect(MqttSession *s, const char *reason) {
        MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
        int r;

        if (s->state != MQTT_SUBSCRIBING && s->state != MQTT_READY)
                return -ENOTCONN;
        log_fields(LOG_INFO, LOG_FIELDS({ "MQTT_STATE", mqtt_state_to_string(s->state) }, { "CLOUD_REASON", reason }),
                   "Reconnecting to the cloud: %s", strna(reason));
        d.timeout = 0;
        (void) MQTTAsync_disconnect(s->client, &d);
        s->stable_timer = sd_event_source_disable_unref(s->stable_timer);
        outbox_rewind(s->outbox);
        in_flight_clear(s);
        s->subscribes_pending = 0;
        s->subscribed = 0;
        mqtt_session_release_transport(s);
        mqtt_session_enter_state(s, MQTT_BACKOFF);
        r = sd_event_add_time_relative(s->event, &s->retry_timer, CLOCK_BOOTTIME, RECONNECT_DELAY_USEC, 10 * 1000,
                                       on_retry_timer, s);
        if (r < 0)
                return log_error_errno(r, "Failed to arm the reconnect timer, the cloud stays disconnected: %m");
        return 0;
}

void mqtt_session_set_topic_filter(MqttSession *s, MqttTopicFilter filter, void *userdata) {
        s->topic_filter = filter;
        s->topic_filter_userdata = userdata;
}
