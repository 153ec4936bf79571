/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c2g.h"
#include "cloud-session.h"
#include "log.h"
#include "message-ids.h"
#include "mqtt.h"
#include "topics.h"
#include "util.h"

/* Used with [Cloud] TeamId= when the shadow does not name a stage. */
#define STAGE_DEFAULT "prod"
/* jobs/req: "the latest queued job" (spec §4.1). */
#define JOBS_REQUEST_LATEST "[\"\"]"

static const char *const cloud_session_state_table[_CLOUD_SESSION_STATE_MAX] = {
        [CLOUD_SESSION_DISCONNECTED] = "disconnected",
        [CLOUD_SESSION_CONNECTING] = "connecting",
        [CLOUD_SESSION_SHADOW] = "shadow",
        [CLOUD_SESSION_NOT_ASSOCIATED] = "not-associated",
        [CLOUD_SESSION_PAIRED] = "paired",
        [CLOUD_SESSION_READY] = "ready",
};

const char *cloud_session_state_to_string(CloudSessionState s) {
        return s >= 0 && s < _CLOUD_SESSION_STATE_MAX ? cloud_session_state_table[s] : NULL;
}

static const char *const cloud_message_kind_table[_CLOUD_MESSAGE_KIND_MAX] = {
        [CLOUD_MESSAGE_C2G] = "c2g",
        [CLOUD_MESSAGE_JOBS_RCV] = "jobs/rcv",
        [CLOUD_MESSAGE_JOBS_BLE_RCV] = "jobs/ble/rcv",
};

const char *cloud_message_kind_to_string(CloudMessageKind k) {
        return k >= 0 && k < _CLOUD_MESSAGE_KIND_MAX ? cloud_message_kind_table[k] : NULL;
}

/* What a shadow document says about the association with an account. */
typedef enum Association {
        ASSOCIATION_UNCHANGED, /* a delta that does not mention it */
        ASSOCIATION_PAIRED,
        ASSOCIATION_NOT_ASSOCIATED,
        ASSOCIATION_DEPRECATED, /* button-pattern pairing of NCS <= 1.1, or a state we do not know */
        _ASSOCIATION_MAX,
} Association;

typedef char Topic[TOPIC_MAX + 1];

struct CloudSession {
        CloudSessionState state;
        CloudTransport t;
        void *impl;
        CloudSessionCallbacks cb;
        void *userdata;

        char *device_id;
        char *team_config; /* [Cloud] TeamId=, or NULL */
        unsigned keepalive_sec;

        sd_event *event;
        uint64_t procedure_timeout_usec;
        sd_event_source *procedure_timer; /* armed in shadow and paired */

        /* Device id only (stage and team empty): enough for the shadow topics. */
        TopicContext shadow_ctx;
        /* Complete once stage and team are known. */
        bool have_ctx;
        TopicContext ctx;
        char prefix[SHADOW_TOPIC_PREFIX_MAX + 1];

        Topic shadow_get, shadow_get_tf, shadow_update;
        Topic shadow_accepted, shadow_accepted_tf, shadow_rejected, shadow_delta, shadow_delta_err;
        Topic jobs_req, jobs_rcv, jobs_ble_rcv;
        /* Derived when paired; "" before. */
        Topic c2g, g2c;
        /* desired.pairing.topics from the last document, NULL when absent. */
        char *pairing_c2g, *pairing_g2c;
        /* The last of each that the guard refused: reported once, not at every connection. */
        Topic refused_c2g, refused_g2c;
        bool warned_topics_derived; /* the shadow named no topics: said once */

        bool have_desired;
        DesiredConnection *desired;
        size_t n_desired;
        bool desired_this_link;       /* the document of this connection carried desiredConnections */
        bool reconnect_after_echo;    /* associated by a delta: reconnect once its echo is acknowledged */

        /* reported.statusConnections of the last accepted document. */
        bool have_reported;
        char (*reported)[BT_ADDR_STR_LEN + 1];
        size_t n_reported;

        bool have_info;
        CloudDeviceInfo info;
};

/* ---- Topics and the guard ---- */

static const char *action_verb(TopicAction a) {
        return a == TOPIC_ACTION_SUBSCRIBE ? "subscribe" : "publish on";
}

/* The one gate every topic passes before it reaches the transport. */
static int cloud_session_guard(CloudSession *cs, TopicAction action, const char *topic) {
        const TopicContext *c = cs->have_ctx ? &cs->ctx : &cs->shadow_ctx;

        /* Without stage and team only this device's shadow topics can match;
         * anything built from the empty parts starts with '/'. */
        if (topic_allowed(c, action, topic) && !(!cs->have_ctx && topic[0] == '/'))
                return 0;
        return log_fields_errno(LOG_ERR, EPERM, LOG_FIELDS({ "MQTT_TOPIC", topic }),
                                "Refusing to %s %s: not allowed by the nRF Cloud gateway policy, not sent",
                                action_verb(action), topic);
}

static int cloud_session_subscribe(CloudSession *cs, char *const *topics, size_t n, CloudDoneFn done) {
        int r;

        for (size_t i = 0; i < n; i++) {
                r = cloud_session_guard(cs, TOPIC_ACTION_SUBSCRIBE, topics[i]);
                if (r < 0)
                        return r;
        }
        r = cs->t.subscribe(cs->impl, topics, n, done, cs);
        if (r < 0)
                return log_warning_errno(r, "Failed to subscribe %s%s, waiting for the next connection: %m", topics[0],
                                         n > 1 ? " and others" : "");
        for (size_t i = 0; i < n; i++)
                log_debug("Subscribing %s", topics[i]);
        return 0;
}

static int cloud_session_publish(CloudSession *cs, const char *topic, const char *payload, CloudDoneFn done) {
        size_t len = payload ? strlen(payload) : 0;
        int r;

        r = cloud_session_guard(cs, TOPIC_ACTION_PUBLISH, topic);
        if (r < 0)
                return r;
        r = cs->t.publish(cs->impl, topic, payload, len, done, cs);
        if (r < 0)
                return log_warning_errno(r, "Failed to publish on %s, waiting for the next connection: %m", topic);
        log_debug("Published %zu bytes on %s", len, topic);
        return 0;
}

static int cloud_session_build_shadow_topics(CloudSession *cs) {
        static const struct {
                TopicKind kind;
                size_t offset;
        } table[] = {
                { TOPIC_SHADOW_GET_TRIM, offsetof(CloudSession, shadow_get) },
                { TOPIC_SHADOW_GET_TF, offsetof(CloudSession, shadow_get_tf) },
                { TOPIC_SHADOW_UPDATE, offsetof(CloudSession, shadow_update) },
                { TOPIC_SHADOW_GET_ACCEPTED_TRIM, offsetof(CloudSession, shadow_accepted) },
                { TOPIC_SHADOW_GET_ACCEPTED_TF, offsetof(CloudSession, shadow_accepted_tf) },
                { TOPIC_SHADOW_GET_REJECTED, offsetof(CloudSession, shadow_rejected) },
                { TOPIC_SHADOW_UPDATE_DELTA_FULL, offsetof(CloudSession, shadow_delta) },
                { TOPIC_SHADOW_UPDATE_DELTA_FULL_ERR, offsetof(CloudSession, shadow_delta_err) },
        };
        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                int r = topic_build(&cs->shadow_ctx, table[i].kind, (char *) cs + table[i].offset, sizeof(Topic));
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Stage and team are known: the topics that need them. */
static int cloud_session_set_context(CloudSession *cs, const char *stage, const char *team) {
        TopicContext c;
        int r;

        r = topic_context_init(&c, stage, team, cs->device_id);
        if (r < 0)
                return r;
        if (snprintf(cs->prefix, sizeof cs->prefix, "%s/%s/", stage, team) >= (int) sizeof cs->prefix)
                return -ENOBUFS;
        if ((r = topic_build(&c, TOPIC_JOBS_REQ, cs->jobs_req, sizeof cs->jobs_req)) < 0 ||
            (r = topic_build(&c, TOPIC_JOBS_RCV, cs->jobs_rcv, sizeof cs->jobs_rcv)) < 0 ||
            (r = topic_build(&c, TOPIC_JOBS_BLE_RCV, cs->jobs_ble_rcv, sizeof cs->jobs_ble_rcv)) < 0)
                return r;
        if (!cs->have_ctx || !streq(cs->ctx.stage, stage) || !streq(cs->ctx.team, team))
                log_info("nRF Cloud topic prefix %s", cs->prefix);
        cs->ctx = c;
        cs->have_ctx = true;
        return 0;
}

/* From desired.nrfcloud_mqtt_topic_prefix, unless the team is configured. */
static void cloud_session_learn_prefix(CloudSession *cs, const ShadowState *st) {
        const char *stage = NULL, *team = NULL;
        int r;

        if (st->has_topic_prefix) {
                stage = st->stage;
                team = st->team;
                if (cs->team_config && !streq(cs->team_config, st->team))
                        log_notice("The shadow names team %s, using [Cloud] TeamId=%s", st->team, cs->team_config);
        }
        if (cs->team_config) {
                team = cs->team_config;
                stage = stage ?: STAGE_DEFAULT;
        }
        if (!team)
                return;
        r = cloud_session_set_context(cs, stage, team);
        if (r < 0)
                log_warning_errno(r, "Ignoring topic prefix %s/%s/ that cannot be used: %m", stage, team);
}

/* ---- Desired connections ---- */

static void cloud_session_clear_desired(CloudSession *cs) {
        bool had = cs->have_desired;

        free(cs->desired);
        cs->desired = NULL;
        cs->n_desired = 0;
        cs->have_desired = false;
        if (had && cs->cb.desired_connections_changed)
                cs->cb.desired_connections_changed(cs, cs->userdata);
}

static bool desired_equal(const CloudSession *cs, const ShadowState *st) {
        if (!cs->have_desired || cs->n_desired != st->n_connections)
                return false;
        for (size_t i = 0; i < st->n_connections; i++)
                if (!streq(cs->desired[i].address, st->connections[i].address))
                        return false;
        return true;
}

static void cloud_session_update_desired(CloudSession *cs, ShadowState *st) {
        unsigned max;

        if (!st->has_desired_connections)
                return;
        cs->desired_this_link = true;
        if (st->n_connections_ignored > 0)
                log_warning("Ignored %zu entr%s of desiredConnections that are not Bluetooth addresses",
                            st->n_connections_ignored, st->n_connections_ignored == 1 ? "y" : "ies");
        max = cs->cb.max_connections ? cs->cb.max_connections(cs, cs->userdata) : SHADOW_CONNECTIONS_MAX;
        if (st->n_connections_desired > max)
                log_warning("desiredConnections names %zu desired devices, %u allowed ([Bluetooth] MaxConnections=): "
                            "connecting the first %u",
                            st->n_connections_desired, max, max);
        if (desired_equal(cs, st))
                return;
        /* Taken over from the parsed document, not copied. */
        free(cs->desired);
        cs->desired = TAKE_PTR(st->connections);
        cs->n_desired = st->n_connections;
        st->n_connections = 0;
        cs->have_desired = true;
        log_info("Desired connections: %zu device(s)", cs->n_desired);
        if (cs->cb.desired_connections_changed)
                cs->cb.desired_connections_changed(cs, cs->userdata);
}

/* desired.beacons: handed on as they are; the BLE layer keeps its state when the list is the same. */
static void cloud_session_update_beacons(CloudSession *cs, const ShadowState *st) {
        if (st->beacons_malformed)
                log_warning("Ignoring desired.beacons of the shadow: not an array of addresses");
        if (!st->has_beacons)
                return;
        if (st->n_beacons_ignored > 0)
                log_warning("Ignored %zu entr%s of desired.beacons that are not Bluetooth addresses",
                            st->n_beacons_ignored, st->n_beacons_ignored == 1 ? "y" : "ies");
        if (cs->cb.beacons_changed)
                cs->cb.beacons_changed(cs, (const char(*)[BT_ADDR_STR_LEN + 1]) st->beacons, st->n_beacons,
                                       cs->userdata);
}

int cloud_session_get_desired_connections(CloudSession *cs, const DesiredConnection **ret, size_t *ret_n) {
        if (!cs->have_desired)
                return -ENODATA;
        *ret = cs->desired;
        *ret_n = cs->n_desired;
        return 0;
}

/* ---- The procedure ---- */

static void cloud_session_enter_state(CloudSession *cs, CloudSessionState n);

static void cloud_session_reconnect(CloudSession *cs, const char *reason) {
        int r = cs->t.reconnect(cs->impl, reason);
        if (r < 0)
                log_warning_errno(r, "Failed to reconnect (%s), waiting for the next connection: %m", reason);
}

static void on_device_reported(int error, void *userdata) {
        (void) userdata;
        if (error < 0)
                log_warning_errno(error, "The device info report was not acknowledged, ignoring: %m");
}

static void cloud_session_report_device(CloudSession *cs) {
        _cleanup_free_ char *doc = NULL;
        ShadowDeviceInfo di;
        ShadowServiceInfo si;
        int r;

        if (!cs->have_info)
                return;
        di = (ShadowDeviceInfo){
                .modem_firmware = cs->info.modem_firmware,
                .imei = cs->info.imei,
                .board = cs->info.board,
                .app_version = cs->info.app_version,
                .app_name = cs->info.app_name,
        };
        si = (ShadowServiceInfo){ .fota_types = cs->info.fota_types, .fota_ble = cs->info.fota_ble };
        r = shadow_build_device_report(&di, &si, &doc);
        if (r < 0) {
                log_error_errno(r, "Failed to build the device info report: %m");
                return;
        }
        (void) cloud_session_publish(cs, cs->shadow_update, doc, on_device_reported);
}

static void on_transform_requested(int error, void *userdata) {
        (void) userdata;
        if (error < 0)
                log_warning_errno(error, "The desiredConnections transform request was not acknowledged: %m");
}

static void cloud_session_request_transform(CloudSession *cs) {
        _cleanup_free_ char *req = NULL;
        int r = shadow_build_transform_request(SHADOW_TRANSFORM_MAX_LEN, &req);
        if (r < 0) {
                log_error_errno(r, "Failed to build the shadow transform request: %m");
                return;
        }
        (void) cloud_session_publish(cs, cs->shadow_get_tf, req, on_transform_requested);
}

static void on_jobs_requested(int error, void *userdata) {
        (void) userdata;
        if (error < 0)
                log_warning_errno(error, "The FOTA job request was not acknowledged: %m");
}

static void on_jobs_subscribed(int error, void *userdata) {
        CloudSession *cs = userdata;

        if (cs->state != CLOUD_SESSION_PAIRED)
                return;
        if (error < 0) {
                log_error_errno(error, "The broker refused the FOTA job topics, waiting for the next connection: %m");
                return;
        }
        /* §5.2 step 7: ask for the latest queued job, or let the FOTA
         * manager re-send its reports first and ask itself. */
        if (cs->cb.jobs_ready)
                cs->cb.jobs_ready(cs, cs->userdata);
        else
                (void) cloud_session_request_jobs(cs);
        cloud_session_enter_state(cs, CLOUD_SESSION_READY);
}

static void on_c2g_subscribed(int error, void *userdata) {
        CloudSession *cs = userdata;
        char *topics[] = { cs->jobs_rcv, cs->jobs_ble_rcv };

        if (cs->state != CLOUD_SESSION_PAIRED)
                return;
        if (error < 0) {
                log_error_errno(error, "The broker refused %s, waiting for the next connection: %m", cs->c2g);
                return;
        }
        /* jobs/ble/rcv only when FOTA of BLE devices can run (serviceInfo.fota_v2_ble):
         * a job received and dropped would sit queued in nRF Cloud forever. */
        (void) cloud_session_subscribe(cs, topics, cs->info.fota_ble ? 2 : 1, on_jobs_subscribed);
}

static void on_pairing_reported(int error, void *userdata) {
        CloudSession *cs = userdata;
        char *topics[] = { cs->c2g };

        if (cs->state != CLOUD_SESSION_PAIRED)
                return;
        if (error < 0) {
                log_error_errno(error, "The pairing report was not acknowledged, waiting for the next connection: %m");
                return;
        }
        (void) cloud_session_subscribe(cs, topics, 1, on_c2g_subscribed);
}

/* c2g/g2c from desired.pairing.topics when the guard allows them, else the defaults. */
static int cloud_session_derive(CloudSession *cs, TopicKind kind, const char *from_shadow, char *buf, size_t size) {
        char *refused = kind == TOPIC_C2G ? cs->refused_c2g : cs->refused_g2c;
        int r = kind == TOPIC_C2G ? topic_c2g_derive(&cs->ctx, from_shadow, buf, size)
                                  : topic_g2c_derive(&cs->ctx, from_shadow, buf, size);
        if (r < 0 && from_shadow) {
                r = kind == TOPIC_C2G ? topic_c2g_derive(&cs->ctx, NULL, buf, size)
                                      : topic_g2c_derive(&cs->ctx, NULL, buf, size);
                if (streq(refused, from_shadow))
                        log_debug("Still refusing the %s topic %s of the shadow", topic_kind_to_string(kind),
                                  from_shadow);
                else
                        log_fields(LOG_ERR,
                                   LOG_FIELDS({ "MESSAGE_ID", MESSAGE_ID_SHADOW_TOPIC_REFUSED },
                                              { "MQTT_TOPIC", from_shadow }),
                                   "Refusing the %s topic %s of the shadow: not this gateway's own under the nRF Cloud "
                                   "policy (another id, team or stage, both directions, or a wildcard); never used, "
                                   "using %s instead",
                                   topic_kind_to_string(kind), from_shadow, r >= 0 ? buf : "nothing");
                snprintf(refused, sizeof(Topic), "%s", from_shadow);
        } else
                refused[0] = 0;
        return r;
}

/* §5.2 step 4, paired: the pairing report; the rest follows its PUBACK. */
static void cloud_session_start_pairing(CloudSession *cs) {
        _cleanup_free_ char *doc = NULL;
        int r;

        if ((r = cloud_session_derive(cs, TOPIC_C2G, cs->pairing_c2g, cs->c2g, sizeof cs->c2g)) < 0 ||
            (r = cloud_session_derive(cs, TOPIC_G2C, cs->pairing_g2c, cs->g2c, sizeof cs->g2c)) < 0) {
                log_error_errno(r, "Cannot build the c2g/g2c topics for prefix %s, waiting: %m", cs->prefix);
                cs->c2g[0] = cs->g2c[0] = 0;
                return;
        }
        /* nRF Cloud's library takes c2g/g2c only from desired.pairing.topics; the
         * gateways/<id>/... form is what the old JavaScript gateways built. */
        if ((!cs->pairing_c2g || !cs->pairing_g2c) && !cs->warned_topics_derived) {
                cs->warned_topics_derived = true;
                log_warning("The shadow names no %s topic under desired.pairing.topics, using the derived c2g %s "
                            "and g2c %s",
                            !cs->pairing_c2g && !cs->pairing_g2c ? "c2g or g2c" : !cs->pairing_c2g ? "c2g" : "g2c",
                            cs->c2g, cs->g2c);
        }
        r = shadow_build_pairing_paired(cs->prefix, cs->g2c, cs->c2g, cs->keepalive_sec, &doc);
        if (r < 0) {
                log_error_errno(r, "Failed to build the pairing report: %m");
                return;
        }
        (void) cloud_session_publish(cs, cs->shadow_update, doc, on_pairing_reported);
}

static void on_not_associated_reported(int error, void *userdata) {
        (void) userdata;
        if (error < 0)
                log_warning_errno(error, "The not_associated report was not acknowledged: %m");
}

static void cloud_session_report_not_associated(CloudSession *cs) {
        _cleanup_free_ char *doc = NULL;
        int r = shadow_build_pairing_not_associated(&doc);
        if (r < 0) {
                log_error_errno(r, "Failed to build the not_associated report: %m");
                return;
        }
        (void) cloud_session_publish(cs, cs->shadow_update, doc, on_not_associated_reported);
}

static void on_shadow_get_sent(int error, void *userdata) {
        (void) userdata;
        if (error < 0)
                log_warning_errno(error, "The shadow get was not acknowledged: %m");
}

static void on_shadow_subscribed(int error, void *userdata) {
        CloudSession *cs = userdata;

        if (cs->state != CLOUD_SESSION_SHADOW)
                return;
        if (error < 0) {
                log_error_errno(error, "The broker refused the shadow topics, waiting for the next connection: %m");
                return;
        }
        /* §5.2 step 3: an empty message asks for the (trimmed) document. */
        (void) cloud_session_publish(cs, cs->shadow_get, "", on_shadow_get_sent);
}

static void cloud_session_request_shadow(CloudSession *cs) {
        char *topics[] = { cs->shadow_accepted, cs->shadow_rejected, cs->shadow_delta, cs->shadow_accepted_tf,
                           cs->shadow_delta_err };
        (void) cloud_session_subscribe(cs, topics, ELEMENTSOF(topics), on_shadow_subscribed);
}

static int on_procedure_timeout(sd_event_source *es, uint64_t usec, void *userdata) {
        CloudSession *cs = userdata;
        (void) es, (void) usec;

        cs->procedure_timer = sd_event_source_disable_unref(cs->procedure_timer);
        log_warning("The nRF Cloud procedure did not complete within %" PRIu64 " s (stuck in %s), reconnecting",
                    cs->procedure_timeout_usec / 1000000, cloud_session_state_to_string(cs->state));
        cloud_session_reconnect(cs, "the nRF Cloud procedure timed out");
        return 0;
}

static void cloud_session_arm_procedure_timer(CloudSession *cs) {
        int r;

        if (!cs->event || cs->procedure_timer)
                return;
        r = sd_event_add_time_relative(cs->event, &cs->procedure_timer, CLOCK_BOOTTIME, cs->procedure_timeout_usec,
                                       100 * 1000, on_procedure_timeout, cs);
        if (r < 0)
                log_warning_errno(r, "Failed to arm the procedure timer, ignoring: %m");
}

static const char *cloud_session_status_text(CloudSessionState s) {
        switch (s) {
        case CLOUD_SESSION_DISCONNECTED:
                return "nRF Cloud: disconnected";
        case CLOUD_SESSION_CONNECTING:
                return "nRF Cloud: connecting";
        case CLOUD_SESSION_SHADOW:
                return "nRF Cloud: reading the shadow";
        case CLOUD_SESSION_NOT_ASSOCIATED:
                return "nRF Cloud: not associated with an account, waiting";
        case CLOUD_SESSION_PAIRED:
                return "nRF Cloud: subscribing";
        case CLOUD_SESSION_READY:
                return "nRF Cloud: connected";
        case _CLOUD_SESSION_STATE_MAX:
        case _CLOUD_SESSION_STATE_INVALID:
                break;
        }
        return "nRF Cloud: ?";
}

static void cloud_session_enter_state(CloudSession *cs, CloudSessionState n) {
        CloudSessionState old = cs->state;

        if (old == n)
                return;
        log_fields(LOG_INFO,
                   LOG_FIELDS({ "MQTT_STATE", cloud_session_state_to_string(n) },
                              { "CLOUD_TEAM", cs->have_ctx ? cs->ctx.team : NULL }),
                   "Cloud session %s -> %s (%s)", cloud_session_state_to_string(old), cloud_session_state_to_string(n),
                   cloud_session_status_text(n));
        cs->state = n;
        /* g2c messages and shadow reports of the outbox wait for the whole procedure. */
        cs->t.hold_outbox(cs->impl, n != CLOUD_SESSION_READY);

        /* The procedure timer runs through shadow and paired, and stops in any other state. */
        if (n != CLOUD_SESSION_SHADOW && n != CLOUD_SESSION_PAIRED)
                cs->procedure_timer = sd_event_source_disable_unref(cs->procedure_timer);

        switch (n) {
        case CLOUD_SESSION_DISCONNECTED:
        case CLOUD_SESSION_CONNECTING:
                cs->desired_this_link = false;
                cs->reconnect_after_echo = false;
                break;
        case CLOUD_SESSION_SHADOW:
                cloud_session_arm_procedure_timer(cs);
                cloud_session_request_shadow(cs);
                break;
        case CLOUD_SESSION_NOT_ASSOCIATED:
                break;
        case CLOUD_SESSION_PAIRED:
                cloud_session_arm_procedure_timer(cs);
                cloud_session_start_pairing(cs);
                break;
        case CLOUD_SESSION_READY:
                log_info("nRF Cloud session ready: c2g %s, g2c %s", cs->c2g, cs->g2c);
                cloud_session_report_device(cs);
                if (!cs->desired_this_link)
                        cloud_session_request_transform(cs);
                break;
        case _CLOUD_SESSION_STATE_MAX:
        case _CLOUD_SESSION_STATE_INVALID:
                break;
        }
        if (cs->cb.state_changed)
                cs->cb.state_changed(cs, old, n, cs->userdata);
}

static bool cloud_session_connected(const CloudSession *cs) {
        switch (cs->state) {
        case CLOUD_SESSION_DISCONNECTED:
        case CLOUD_SESSION_CONNECTING:
                return false;
        case CLOUD_SESSION_SHADOW:
        case CLOUD_SESSION_NOT_ASSOCIATED:
        case CLOUD_SESSION_PAIRED:
        case CLOUD_SESSION_READY:
                return true;
        case _CLOUD_SESSION_STATE_MAX:
        case _CLOUD_SESSION_STATE_INVALID:
                break;
        }
        return false;
}

/* The gateway was removed from its account (DISCON, or a document saying
 * not_associated while paired): forget what the account wanted and start over. */
static void cloud_session_unpair(CloudSession *cs, const char *why) {
        log_fields(LOG_WARNING,
                   LOG_FIELDS({ "MESSAGE_ID", MESSAGE_ID_GATEWAY_UNPAIRED }, { "MQTT_STATE", "not-associated" }),
                   "nRF Cloud removed gateway %s from its account (%s): stopping; it must be added to an nRF Cloud "
                   "account again",
                   cs->device_id, why);
        cloud_session_clear_desired(cs);
        if (cs->cb.beacons_changed)
                cs->cb.beacons_changed(cs, NULL, 0, cs->userdata);
        cs->c2g[0] = cs->g2c[0] = 0;
        cloud_session_enter_state(cs, CLOUD_SESSION_NOT_ASSOCIATED);
        /* A new connection drops the c2g and job subscriptions and reads the shadow again. */
        cloud_session_reconnect(cs, "the gateway was removed from its nRF Cloud account");
}

static void cloud_session_log_not_associated(CloudSession *cs) {
        log_fields(LOG_WARNING,
                   LOG_FIELDS({ "MESSAGE_ID", MESSAGE_ID_GATEWAY_UNPAIRED }, { "MQTT_STATE", "not-associated" }),
                   "Gateway %s is not associated with an nRF Cloud account: it must be added to an account "
                   "(nRF Cloud portal or REST API); waiting",
                   cs->device_id);
}

static Association shadow_association(const ShadowState *st, bool is_delta) {
        if (st->has_pairing_state)
                switch (st->pairing_state) {
                case PAIRING_STATE_PAIRED:
                        return ASSOCIATION_PAIRED;
                case PAIRING_STATE_NOT_ASSOCIATED:
                        return ASSOCIATION_NOT_ASSOCIATED;
                case PAIRING_STATE_INITIATE:
                case PAIRING_STATE_PATTERN_WAIT:
                case PAIRING_STATE_PATTERN_MISMATCH:
                case PAIRING_STATE_TIMEOUT:
                case PAIRING_STATE_UNKNOWN:
                        return ASSOCIATION_DEPRECATED;
                case _PAIRING_STATE_MAX:
                case _PAIRING_STATE_INVALID:
                        return ASSOCIATION_DEPRECATED;
                }
        /* nRF Cloud's library takes the presence of the topic prefix as
         * "association complete" (spec §1.2). */
        if (st->has_topic_prefix)
                return ASSOCIATION_PAIRED;
        return is_delta ? ASSOCIATION_UNCHANGED : ASSOCIATION_NOT_ASSOCIATED;
}

static void cloud_session_keep_pairing_topics(CloudSession *cs, const ShadowState *st) {
        char *c2g = NULL, *g2c = NULL;

        if ((st->pairing_topic_c2g && !(c2g = strdup(st->pairing_topic_c2g))) ||
            (st->pairing_topic_g2c && !(g2c = strdup(st->pairing_topic_g2c)))) {
                free(c2g);
                log_error_errno(ENOMEM, "Failed to keep the pairing topics, using the defaults: %m");
        }
        free(cs->pairing_c2g);
        free(cs->pairing_g2c);
        cs->pairing_c2g = c2g;
        cs->pairing_g2c = g2c;
}

/* What an association state means in the current state. */
static void cloud_session_apply_association(CloudSession *cs, Association a, const ShadowState *st) {
        switch (a) {
        case ASSOCIATION_UNCHANGED:
                return;
        case ASSOCIATION_PAIRED:
                switch (cs->state) {
                case CLOUD_SESSION_SHADOW:
                        if (!cs->have_ctx) {
                                log_error("The shadow says paired but has no usable nrfcloud_mqtt_topic_prefix and "
                                          "[Cloud] TeamId= is not set: cannot build the topics, waiting");
                                return;
                        }
                        cloud_session_keep_pairing_topics(cs, st);
                        cloud_session_enter_state(cs, CLOUD_SESSION_PAIRED);
                        return;
                case CLOUD_SESSION_NOT_ASSOCIATED:
                        /* §5.3: the new IoT policy applies to a new connection only. */
                        log_info("Gateway %s was added to an nRF Cloud account, reconnecting for the new policy",
                                 cs->device_id);
                        if (st->kind == SHADOW_DOC_DELTA)
                                cs->reconnect_after_echo = true;
                        else
                                cloud_session_reconnect(cs, "the gateway was added to an nRF Cloud account");
                        return;
                case CLOUD_SESSION_DISCONNECTED:
                case CLOUD_SESSION_CONNECTING:
                case CLOUD_SESSION_PAIRED:
                case CLOUD_SESSION_READY:
                case _CLOUD_SESSION_STATE_MAX:
                case _CLOUD_SESSION_STATE_INVALID:
                        return;
                }
                return;
        case ASSOCIATION_NOT_ASSOCIATED:
                switch (cs->state) {
                case CLOUD_SESSION_SHADOW:
                        cloud_session_report_not_associated(cs);
                        cloud_session_log_not_associated(cs);
                        cloud_session_enter_state(cs, CLOUD_SESSION_NOT_ASSOCIATED);
                        return;
                case CLOUD_SESSION_PAIRED:
                case CLOUD_SESSION_READY:
                        cloud_session_unpair(cs, "the shadow says not_associated");
                        return;
                case CLOUD_SESSION_DISCONNECTED:
                case CLOUD_SESSION_CONNECTING:
                case CLOUD_SESSION_NOT_ASSOCIATED:
                case _CLOUD_SESSION_STATE_MAX:
                case _CLOUD_SESSION_STATE_INVALID:
                        return;
                }
                return;
        case ASSOCIATION_DEPRECATED:
                if (cs->state != CLOUD_SESSION_SHADOW)
                        return;
                log_fields(LOG_ERR, LOG_FIELDS({ "MESSAGE_ID", MESSAGE_ID_GATEWAY_UNPAIRED }),
                           "The shadow has the deprecated pairing state \"%s\": delete gateway %s from nRF Cloud and "
                           "add it again; waiting",
                           st->has_pairing_state ? strna(pairing_state_to_string(st->pairing_state)) : "?",
                           cs->device_id);
                cloud_session_enter_state(cs, CLOUD_SESSION_NOT_ASSOCIATED);
                return;
        case _ASSOCIATION_MAX:
                return;
        }
}

static void cloud_session_keep_reported(CloudSession *cs, ShadowState *st) {
        free(cs->reported);
        cs->reported = st->reported_addresses; /* taken over */
        cs->n_reported = st->n_reported_addresses;
        st->reported_addresses = NULL;
        st->n_reported_addresses = 0;
        cs->have_reported = true;
}

int cloud_session_get_reported_connections(CloudSession *cs, const char (**ret)[BT_ADDR_STR_LEN + 1], size_t *ret_n) {
        if (!cs->have_reported)
                return -ENODATA;
        *ret = cs->reported;
        *ret_n = cs->n_reported;
        return 0;
}

static void cloud_session_handle_accepted(CloudSession *cs, const uint8_t *payload, size_t len) {
        _cleanup_(shadow_state_freep) ShadowState *st = NULL;
        CodecError e = {};
        int r;

        r = shadow_parse_accepted(payload, len, &st, &e);
        if (r < 0) {
                log_warning_errno(r, "Ignoring a shadow document that cannot be used (%s%s%s): %m", e.field,
                                  e.field[0] ? ": " : "", e.description);
                return;
        }
        log_debug("Shadow document, %s form%s%s", shadow_doc_kind_to_string(st->kind),
                  st->has_pairing_state ? ", pairing " : "",
                  st->has_pairing_state ? strna(pairing_state_to_string(st->pairing_state)) : "");
        if (cs->state == CLOUD_SESSION_SHADOW || cs->state == CLOUD_SESSION_NOT_ASSOCIATED)
                cloud_session_learn_prefix(cs, st);
        cloud_session_keep_reported(cs, st);
        cloud_session_update_desired(cs, st);
        cloud_session_update_beacons(cs, st);
        cloud_session_apply_association(cs, shadow_association(st, false), st);
}

static void on_delta_echoed(int error, void *userdata) {
        CloudSession *cs = userdata;

        if (error < 0)
                log_warning_errno(error, "The shadow delta echo was not acknowledged: %m");
        if (cs->reconnect_after_echo && cs->state == CLOUD_SESSION_NOT_ASSOCIATED) {
                cs->reconnect_after_echo = false;
                cloud_session_reconnect(cs, "the gateway was added to an nRF Cloud account");
        }
}

static void cloud_session_handle_delta(CloudSession *cs, const uint8_t *payload, size_t len) {
        _cleanup_(shadow_state_freep) ShadowState *st = NULL;
        _cleanup_free_ char *echo = NULL;
        CodecError e = {};
        int r;

        r = shadow_parse_delta(payload, len, &st, &e);
        if (r < 0) {
                log_warning_errno(r, "Ignoring a shadow delta that cannot be used (%s%s%s): %m", e.field,
                                  e.field[0] ? ": " : "", e.description);
                return;
        }
        if (cs->state == CLOUD_SESSION_NOT_ASSOCIATED)
                cloud_session_learn_prefix(cs, st);
        cloud_session_update_desired(cs, st);
        cloud_session_update_beacons(cs, st);
        /* Before the accepted document the association is not known yet:
         * the document decides, not a delta that overtook it. */
        if (cs->state != CLOUD_SESSION_SHADOW)
                cloud_session_apply_association(cs, shadow_association(st, true), st);

        /* Accept the delta: its state goes into reported (spec §3.3). */
        r = shadow_build_delta_accept(st, &echo);
        if (r < 0)
                log_error_errno(r, "Failed to build the delta acknowledgement: %m");
        else
                r = cloud_session_publish(cs, cs->shadow_update, echo, on_delta_echoed);
        if (r < 0 && cs->reconnect_after_echo) {
                cs->reconnect_after_echo = false;
                cloud_session_reconnect(cs, "the gateway was added to an nRF Cloud account");
        }
}

/* AWS sends a delta over 1792 bytes (a long desiredConnections) to .../delta/full/err
 * instead of .../delta/full: read the whole document again. */
static void cloud_session_handle_delta_err(CloudSession *cs, size_t len) {
        log_notice("A shadow delta was too large for nRF Cloud to send (%zu bytes of notice), reading the shadow again",
                   len);
        (void) cloud_session_publish(cs, cs->shadow_get, "", on_shadow_get_sent);
}

static void cloud_session_handle_transform(CloudSession *cs, const uint8_t *payload, size_t len) {
        _cleanup_(shadow_state_freep) ShadowState *st = NULL;
        CodecError e = {};
        int r;

        r = shadow_parse_transform(payload, len, &st, &e);
        if (r == -EREMOTEIO) {
                log_warning("nRF Cloud could not transform the shadow: %s", e.description);
                return;
        }
        if (r < 0) {
                log_warning_errno(r, "Ignoring a shadow transform result that cannot be used (%s%s%s): %m", e.field,
                                  e.field[0] ? ": " : "", e.description);
                return;
        }
        cloud_session_update_desired(cs, st);
}

static void cloud_session_handle_c2g(CloudSession *cs, const uint8_t *payload, size_t len) {
        _cleanup_json_ json_t *j = NULL;

        if (codec_json_parse(payload, len, C2G_MESSAGE_MAX, C2G_DEPTH_MAX, &j, NULL) >= 0 && c2g_json_is_discon(j)) {
                if (cs->state == CLOUD_SESSION_PAIRED || cs->state == CLOUD_SESSION_READY)
                        cloud_session_unpair(cs, "DISCON");
                return;
        }
        if (cs->state != CLOUD_SESSION_READY) {
                log_debug("Dropping a c2g message that arrived while %s", cloud_session_state_to_string(cs->state));
                return;
        }
        if (cs->cb.message)
                cs->cb.message(cs, CLOUD_MESSAGE_C2G, payload, len, cs->userdata);
}

void cloud_session_handle_oversized(CloudSession *cs, const char *topic, size_t len) {
        if (!cloud_session_connected(cs) || (!streq(topic, cs->shadow_accepted) && !streq(topic, cs->shadow_delta)))
                return;
        log_warning("The shadow %s of %zu bytes is too large to be read: asking for desiredConnections through the "
                    "shadow transform (%s) instead",
                    streq(topic, cs->shadow_delta) ? "delta" : "document", len, cs->shadow_get_tf);
        cloud_session_request_transform(cs);
}

void cloud_session_handle_message(CloudSession *cs, const char *topic, const uint8_t *payload, size_t len) {
        if (!cloud_session_connected(cs)) {
                log_debug("Dropping a message on %s: not connected", topic);
                return;
        }
        if (streq(topic, cs->shadow_accepted))
                cloud_session_handle_accepted(cs, payload, len);
        else if (streq(topic, cs->shadow_delta))
                cloud_session_handle_delta(cs, payload, len);
        else if (streq(topic, cs->shadow_delta_err))
                cloud_session_handle_delta_err(cs, len);
        else if (streq(topic, cs->shadow_accepted_tf))
                cloud_session_handle_transform(cs, payload, len);
        else if (streq(topic, cs->shadow_rejected))
                log_warning("nRF Cloud rejected a shadow request: %.*s", (int) MIN(len, (size_t) 200),
                            (const char *) payload);
        else if (cs->c2g[0] && streq(topic, cs->c2g))
                cloud_session_handle_c2g(cs, payload, len);
        else if (cs->have_ctx && cs->state == CLOUD_SESSION_READY &&
                 (streq(topic, cs->jobs_rcv) || streq(topic, cs->jobs_ble_rcv))) {
                if (cs->cb.message)
                        cs->cb.message(cs, streq(topic, cs->jobs_rcv) ? CLOUD_MESSAGE_JOBS_RCV : CLOUD_MESSAGE_JOBS_BLE_RCV,
                                       payload, len, cs->userdata);
        } else
                log_debug("Ignoring a message on %s", topic);
}

/* ---- Lifetime and the transport's events ---- */

int cloud_session_start(CloudSession *cs) {
        if (cs->state == CLOUD_SESSION_DISCONNECTED)
                cloud_session_enter_state(cs, CLOUD_SESSION_CONNECTING);
        return 0;
}

void cloud_session_stop(CloudSession *cs) {
        cloud_session_enter_state(cs, CLOUD_SESSION_DISCONNECTED);
}

void cloud_session_link_up(CloudSession *cs) {
        if (cs->state != CLOUD_SESSION_CONNECTING)
                return;
        cloud_session_enter_state(cs, CLOUD_SESSION_SHADOW);
}

void cloud_session_link_down(CloudSession *cs) {
        if (!cloud_session_connected(cs))
                return;
        cloud_session_enter_state(cs, CLOUD_SESSION_CONNECTING);
}

static void cloud_device_info_clear(CloudDeviceInfo *i) {
        free((char *) i->modem_firmware);
        free((char *) i->imei);
        free((char *) i->board);
        free((char *) i->app_version);
        free((char *) i->app_name);
        *i = (CloudDeviceInfo){};
}

static void on_jobs_ble_subscribed(int error, void *userdata) {
        CloudSession *cs = userdata;

        if (error < 0)
                log_warning_errno(error, "The broker refused %s, waiting for the next connection: %m", cs->jobs_ble_rcv);
        else if (cs->state == CLOUD_SESSION_READY && cs->cb.jobs_ble_ready)
                cs->cb.jobs_ble_ready(cs, cs->userdata);
}

int cloud_session_set_device_info(CloudSession *cs, const CloudDeviceInfo *info) {
        CloudDeviceInfo c = { .fota_types = info->fota_types, .fota_ble = info->fota_ble };
        bool ble_before = cs->have_info && cs->info.fota_ble;

        if (info->fota_types >> _FOTA_TYPE_MAX)
                return -EINVAL;
        if ((info->modem_firmware && !(c.modem_firmware = strdup(info->modem_firmware))) ||
            (info->imei && !(c.imei = strdup(info->imei))) || (info->board && !(c.board = strdup(info->board))) ||
            (info->app_version && !(c.app_version = strdup(info->app_version))) ||
            (info->app_name && !(c.app_name = strdup(info->app_name)))) {
                cloud_device_info_clear(&c);
                return -ENOMEM;
        }
        cloud_device_info_clear(&cs->info);
        cs->info = c;
        cs->have_info = true;
        if (cs->state == CLOUD_SESSION_READY)
                cloud_session_report_device(cs);
        /* FOTA of BLE devices became possible during the session (the modem came after the
         * cloud, [Cloud] TLS=host): jobs/ble/rcv now, not at the next connection. */
        if (cs->state == CLOUD_SESSION_READY && c.fota_ble && !ble_before) {
                char *topics[] = { cs->jobs_ble_rcv };
                (void) cloud_session_subscribe(cs, topics, 1, on_jobs_ble_subscribed);
        }
        return 0;
}

int cloud_session_publish_g2c(CloudSession *cs, OutboxClass class, const char *payload, size_t len) {
        int r;

        if (!cs->g2c[0])
                return -EAGAIN;
        r = cloud_session_guard(cs, TOPIC_ACTION_PUBLISH, cs->g2c);
        if (r < 0)
                return r;
        return cs->t.enqueue(cs->impl, class, cs->g2c, payload, len);
}

bool cloud_session_may_publish(CloudSession *cs, const char *topic) {
        return topic && cloud_session_guard(cs, TOPIC_ACTION_PUBLISH, topic) >= 0;
}

int cloud_session_report_connections(CloudSession *cs, const ShadowConnectionStatus *v, size_t n) {
        _cleanup_free_ char *doc = NULL;
        int r;

        r = shadow_build_status_connections(v, n, &doc);
        if (r < 0)
                return r;
        r = cloud_session_guard(cs, TOPIC_ACTION_PUBLISH, cs->shadow_update);
        if (r < 0)
                return r;
        return cs->t.enqueue(cs->impl, OUTBOX_SHADOW, cs->shadow_update, doc, strlen(doc));
}

int cloud_session_publish_jobs_ble_req(CloudSession *cs, const char *payload, size_t len) {
        Topic topic;
        int r;

        if (!cs->have_ctx)
                return -EAGAIN;
        r = topic_build(&cs->ctx, TOPIC_JOBS_BLE_REQ, topic, sizeof topic);
        if (r < 0)
                return r;
        r = cloud_session_guard(cs, TOPIC_ACTION_PUBLISH, topic);
        if (r < 0)
                return r;
        return cs->t.enqueue(cs->impl, OUTBOX_STATUS, topic, payload, len);
}

int cloud_session_request_jobs(CloudSession *cs) {
        if (!cloud_session_connected(cs) || !cs->have_ctx)
                return -ENOTCONN;
        return cloud_session_publish(cs, cs->jobs_req, JOBS_REQUEST_LATEST, on_jobs_requested);
}

static int cloud_session_publish_job_topic(CloudSession *cs, TopicKind kind, const char *payload, CloudDoneFn done,
                                           void *userdata) {
        Topic topic;
        size_t len = strlen(payload);
        int r;

        if (!cloud_session_connected(cs) || !cs->have_ctx)
                return -ENOTCONN;
        r = topic_build(&cs->ctx, kind, topic, sizeof topic);
        if (r < 0)
                return r;
        r = cloud_session_guard(cs, TOPIC_ACTION_PUBLISH, topic);
        if (r < 0)
                return r;
        r = cs->t.publish(cs->impl, topic, payload, len, done, userdata);
        if (r < 0)
                return r;
        log_debug("Published %s on %s", payload, topic);
        return 0;
}

int cloud_session_publish_jobs_update(CloudSession *cs, const char *payload, CloudDoneFn done, void *userdata) {
        return cloud_session_publish_job_topic(cs, TOPIC_JOBS_UPDATE, payload, done, userdata);
}

int cloud_session_publish_jobs_ble_update(CloudSession *cs, const char *payload, CloudDoneFn done, void *userdata) {
        return cloud_session_publish_job_topic(cs, TOPIC_JOBS_BLE_UPDATE, payload, done, userdata);
}

void cloud_session_forget(CloudSession *cs, const char *why) {
        if (cs->state == CLOUD_SESSION_DISCONNECTED)
                return;
        cloud_session_unpair(cs, why);
}

int cloud_session_new(const CloudSessionOptions *options, const CloudTransport *transport, void *transport_impl,
                      const CloudSessionCallbacks *callbacks, void *userdata, CloudSession **ret) {
        _cleanup_(cloud_session_freep) CloudSession *cs = NULL;
        TopicContext check;
        int r;

        if (!options || !options->device_id || !transport)
                return -EINVAL;
        /* The device id must be a valid topic level (the stage and team here are placeholders). */
        r = topic_context_init(&check, STAGE_DEFAULT, "team", options->device_id);
        if (r < 0)
                return r;
        if (options->team_id && topic_context_init(&check, STAGE_DEFAULT, options->team_id, options->device_id) < 0)
                return -EINVAL;

        cs = calloc(1, sizeof *cs);
        if (!cs)
                return -ENOMEM;
        cs->t = *transport;
        cs->impl = transport_impl;
        if (callbacks)
                cs->cb = *callbacks;
        cs->userdata = userdata;
        cs->keepalive_sec = options->keepalive_sec ?: 1200;
        cs->event = options->event ? sd_event_ref(options->event) : NULL;
        cs->procedure_timeout_usec = options->procedure_timeout_usec ?: CLOUD_SESSION_PROCEDURE_TIMEOUT_USEC;
        cs->device_id = strdup(options->device_id);
        if (!cs->device_id)
                return -ENOMEM;
        if (options->team_id) {
                cs->team_config = strdup(options->team_id);
                if (!cs->team_config)
                        return -ENOMEM;
        }
        r = topic_context_init_device(&cs->shadow_ctx, options->device_id);
        if (r < 0)
                return r;
        r = cloud_session_build_shadow_topics(cs);
        if (r < 0)
                return r;
        if (cs->team_config) {
                r = cloud_session_set_context(cs, STAGE_DEFAULT, cs->team_config);
                if (r < 0)
                        return r;
                /* g2c events can go into the outbox before the first connection. */
                r = topic_g2c_derive(&cs->ctx, NULL, cs->g2c, sizeof cs->g2c);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(cs);
        return 0;
}

CloudSession *cloud_session_free(CloudSession *cs) {
        if (!cs)
                return NULL;
        cs->procedure_timer = sd_event_source_disable_unref(cs->procedure_timer);
        sd_event_unref(cs->event);
        free(cs->reported);
        free(cs->desired);
        free(cs->pairing_c2g);
        free(cs->pairing_g2c);
        cloud_device_info_clear(&cs->info);
        free(cs->device_id);
        free(cs->team_config);
        free(cs);
        return NULL;
}

CloudSessionState cloud_session_get_state(const CloudSession *cs) {
        return cs->state;
}

const char *cloud_session_topic_prefix(const CloudSession *cs) {
        return cs->have_ctx ? cs->prefix : NULL;
}

const char *cloud_session_c2g_topic(const CloudSession *cs) {
        return cs->c2g[0] ? cs->c2g : NULL;
}

const char *cloud_session_g2c_topic(const CloudSession *cs) {
        return cs->g2c[0] ? cs->g2c : NULL;
}

/* ---- The MQTT session as the transport ---- */

static int mqtt_transport_subscribe(void *impl, char *const *topics, size_t n, CloudDoneFn done, void *userdata) {
        return mqtt_session_subscribe_now(impl, topics, n, done, userdata);
}

static int mqtt_transport_publish(void *impl, const char *topic, const void *payload, size_t len, CloudDoneFn done,
                                  void *userdata) {
        return mqtt_session_publish_now(impl, topic, payload, len, done, userdata);
}

static int mqtt_transport_enqueue(void *impl, OutboxClass class, const char *topic, const void *payload, size_t len) {
        return mqtt_session_publish(impl, class, topic, payload, len, NULL);
}

static void mqtt_transport_hold_outbox(void *impl, bool hold) {
        mqtt_session_hold_outbox(impl, hold);
}

static int mqtt_transport_reconnect(void *impl, const char *reason) {
        return mqtt_session_reconnect(impl, reason);
}

const CloudTransport cloud_transport_mqtt = {
        .subscribe = mqtt_transport_subscribe,
        .publish = mqtt_transport_publish,
        .enqueue = mqtt_transport_enqueue,
        .hold_outbox = mqtt_transport_hold_outbox,
        .reconnect = mqtt_transport_reconnect,
};
