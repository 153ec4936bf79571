/* SPDX-License-Identifier: MIT */
/*
 * The CloudSession state machine driven through a fake transport that
 * records every subscribe, publish and outbox push, and completes them when
 * the test says so: no broker.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cloud-session.h"

#define DEV "gw-1"
#define PREFIX "prod/team-a/"
#define OPS_MAX 64

typedef enum OpType {
        OP_SUBSCRIBE,
        OP_PUBLISH,
        OP_ENQUEUE,
} OpType;

typedef struct Op {
        OpType type;
        char topics[8][300];
        size_t n_topics;
        char payload[4096];
        OutboxClass class;
        CloudDoneFn done;
        void *userdata;
} Op;

typedef struct Fake {
        Op ops[OPS_MAX];
        size_t n_ops;
        bool held;
        unsigned reconnects;
        unsigned desired_changes;
        unsigned messages;
        CloudMessageKind last_kind;
        char last_message[256];
} Fake;

static int fake_subscribe(void *impl, char *const *topics, size_t n, CloudDoneFn done, void *userdata) {
        Fake *f = impl;
        Op *o;
        assert_true(f->n_ops < OPS_MAX);
        assert_true(n <= 8);
        o = &f->ops[f->n_ops++];
        *o = (Op){ .type = OP_SUBSCRIBE, .n_topics = n, .done = done, .userdata = userdata };
        for (size_t i = 0; i < n; i++)
                snprintf(o->topics[i], sizeof o->topics[i], "%s", topics[i]);
        return 0;
}

static int fake_publish(void *impl, const char *topic, const void *payload, size_t len, CloudDoneFn done,
                        void *userdata) {
        Fake *f = impl;
        Op *o;
        assert_true(f->n_ops < OPS_MAX);
        assert_true(len < sizeof o->payload);
        o = &f->ops[f->n_ops++];
        *o = (Op){ .type = OP_PUBLISH, .n_topics = 1, .done = done, .userdata = userdata };
        snprintf(o->topics[0], sizeof o->topics[0], "%s", topic);
        memcpy(o->payload, payload, len);
        return 0;
}

static int fake_enqueue(void *impl, OutboxClass class, const char *topic, const void *payload, size_t len) {
        Fake *f = impl;
        Op *o;
        assert_true(f->n_ops < OPS_MAX);
        o = &f->ops[f->n_ops++];
        *o = (Op){ .type = OP_ENQUEUE, .n_topics = 1, .class = class };
        snprintf(o->topics[0], sizeof o->topics[0], "%s", topic);
        memcpy(o->payload, payload, len);
        return 0;
}

static void fake_hold(void *impl, bool hold) {
        ((Fake *) impl)->held = hold;
}

static int fake_reconnect(void *impl, const char *reason) {
        (void) reason;
        ((Fake *) impl)->reconnects++;
        return 0;
}

static const CloudTransport fake_transport = {
        .subscribe = fake_subscribe,
        .publish = fake_publish,
        .enqueue = fake_enqueue,
        .hold_outbox = fake_hold,
        .reconnect = fake_reconnect,
};

static void on_desired(CloudSession *cs, void *userdata) {
        (void) cs;
        ((Fake *) userdata)->desired_changes++;
}

static void on_message(CloudSession *cs, CloudMessageKind kind, const uint8_t *payload, size_t len, void *userdata) {
        Fake *f = userdata;
        (void) cs;
        f->messages++;
        f->last_kind = kind;
        snprintf(f->last_message, sizeof f->last_message, "%.*s", (int) len, (const char *) payload);
}

static const CloudSessionCallbacks callbacks = {
        .message = on_message,
        .desired_connections_changed = on_desired,
};

static CloudSession *new_session(Fake *f, const char *team) {
        CloudSession *cs = NULL;
        CloudSessionOptions o = { .device_id = DEV, .team_id = team, .keepalive_sec = 600 };
        *f = (Fake){};
        assert_int_equal(cloud_session_new(&o, &fake_transport, f, &callbacks, f, &cs), 0);
        return cs;
}

static void complete(Fake *f, size_t i, int error) {
        assert_true(i < f->n_ops);
        assert_non_null(f->ops[i].done);
        f->ops[i].done(error, f->ops[i].userdata);
}

static void deliver(CloudSession *cs, const char *topic, const char *payload) {
        cloud_session_handle_message(cs, topic, (const uint8_t *) payload, strlen(payload));
}

static void assert_op(const Fake *f, size_t i, OpType type, const char *topic) {
        assert_true(i < f->n_ops);
        assert_int_equal(f->ops[i].type, type);
        assert_string_equal(f->ops[i].topics[0], topic);
}

static const char accepted_paired[] =
        "{\"desired\":{\"pairing\":{\"state\":\"paired\"},\"nrfcloud_mqtt_topic_prefix\":\"" PREFIX "\"},"
        "\"reported\":{},\"config\":{}}";
static const char accepted_not_associated[] = "{\"desired\":{\"pairing\":{\"state\":\"not_associated\"}}}";

/* Runs the procedure up to ready; returns the number of ops so far. */
static size_t run_to_ready(CloudSession *cs, Fake *f, const char *accepted) {
        assert_int_equal(cloud_session_start(cs), 0);
        cloud_session_link_up(cs);
        assert_int_equal(cloud_session_get_state(cs), CLOUD_SESSION_SHADOW);
        complete(f, 0, 0);
        deliver(cs, DEV "/shadow/get/accepted/trim", accepted);
        assert_int_equal(cloud_session_get_state(cs), CLOUD_SESSION_PAIRED);
        complete(f, 2, 0);
        complete(f, 3, 0);
        complete(f, 4, 0);
        assert_int_equal(cloud_session_get_state(cs), CLOUD_SESSION_READY);
        return f->n_ops;
}

static void test_paired_sequence(void **state) {
        Fake f;
        CloudSession *cs = new_session(&f, NULL);
        (void) state;

        assert_int_equal(cloud_session_get_state(cs), CLOUD_SESSION_DISCONNECTED);
        assert_int_equal(cloud_session_start(cs), 0);
        assert_int_equal(cloud_session_get_state(cs), CLOUD_SESSION_CONNECTING);
        assert_true(f.held);
        assert_int_equal(f.n_ops, 0);

        cloud_session_link_up(cs);
        assert_int_equal(cloud_session_get_state(cs), CLOUD_SESSION_SHADOW);
        assert_int_equal(f.n_ops, 1);
        assert_int_equal(f.ops[0].type, OP_SUBSCRIBE);
        assert_int_equal(f.ops[0].n_topics, 5);
        assert_string_equal(f.ops[0].topics[0], DEV "/shadow/get/accepted/trim");
        assert_string_equal(f.ops[0].topics[1], DEV "/shadow/get/rejected");
        assert_string_equal(f.ops[0].topics[2], DEV "/shadow/update/delta/full");
        assert_string_equal(f.ops[0].topics[3], DEV "/shadow/get/accepted/tf");
        assert_string_equal(f.ops[0].topics[4], DEV "/shadow/update/delta/full/err");

        /* Nothing more until the SUBACK. */
        assert_int_equal(f.n_ops, 1);
        complete(&f, 0, 0);
        assert_op(&f, 1, OP_PUBLISH, DEV "/shadow/get/trim");
        assert_string_equal(f.ops[1].payload, "");

        deliver(cs, DEV "/shadow/get/accepted/trim", accepted_paired);
        assert_int_equal(cloud_session_get_state(cs), CLOUD_SESSION_PAIRED);
        assert_string_equal(cloud_session_topic_prefix(cs), PREFIX);
        assert_op(&f, 2, OP_PUBLISH, DEV "/shadow/update");
        assert_non_null(strstr(f.ops[2].payload, "\"state\":\"paired\""));
        assert_non_null(strstr(f.ops[2].payload, "\"c2g\":\"" PREFIX "gateways/" DEV "/c2g\""));
        assert_non_null(strstr(f.ops[2].payload, "\"keepalive\":600"));
        assert_int_equal(f.n_ops, 3);

        complete(&f, 2, 0);
        assert_op(&f, 3, OP_SUBSCRIBE, PREFIX "gateways/" DEV "/c2g");
        assert_int_equal(f.ops[3].n_topics, 1);
        assert_true(f.held);

        complete(&f, 3, 0);
        /* No BLE FOTA (fota_v2_ble false): jobs/ble/rcv is not subscribed. */
        assert_op(&f, 4, OP_SUBSCRIBE, PREFIX DEV "/jobs/rcv");
        assert_int_equal(f.ops[4].n_topics, 1);
        assert_int_equal(cloud_session_get_state(cs), CLOUD_SESSION_PAIRED);

        complete(&f, 4, 0);
        assert_int_equal(cloud_session_get_state(cs), CLOUD_SESSION_READY);
        assert_false(f.held);
        assert_op(&f, 5, OP_PUBLISH, PREFIX DEV "/jobs/req");
        assert_string_equal(f.ops[5].payload, "[\"\"]");
        /* No device info set: no device report; no desiredConnections: the transform. */
        assert_op(&f, 6, OP_PUBLISH, DEV "/shadow/get/tf");
        assert_string_equal(f.ops[6].payload, "{\"t\":\"state.desired.desiredConnections\",\"l\":1024}");
        assert_int_equal(f.n_ops, 7);

        /* The transform's answer gives the desired set. */
        deliver(cs, DEV "/shadow/get/accepted/tf", "{\"tf\":[\"c2:6b:ac:6d:05:a2\"]}");
        assert_int_equal(f.desired_changes, 1);
        {
                const DesiredConnection *v;
                size_t n;
                assert_int_equal(cloud_session_get_desired_connections(cs, &v, &n), 0);
                assert_int_equal(n, 1);
                assert_string_equal(v[0].address, "C2:6B:AC:6D:05:A2");
        }

        /* g2c through the outbox. */
        assert_int_equal(cloud_session_publish_g2c(cs, OUTBOX_NOTIFICATION, "{}", 2), 0);
        assert_op(&f, 7, OP_ENQUEUE, PREFIX "gateways/" DEV "/g2c");
        assert_int_equal(f.ops[7].class, OUTBOX_NOTIFICATION);

        /* The connection ends: back to connecting, the outbox held, late completions ignored. */
        cloud_session_link_down(cs);
        assert_int_equal(cloud_session_get_state(cs), CLOUD_SESSION_CONNECTING);
        assert_true(f.held);
        complete(&f, 3, 0);
        assert_int_equal(f.n_ops, 8);

        /* The next connection starts over, and keeps the desired set. */
        cloud_session_link_up(cs);
        assert_op(&f, 8, OP_SUBSCRIBE, DEV "/shadow/get/accepted/trim");
        assert_int_equal(f.desired_changes, 1);

        cloud_session_stop(cs);
        assert_int_equal(cloud_session_get_state(cs), CLOUD_SESSION_DISCONNECTED);
        cloud_session_free(cs);
}

static void test_device_report(void **state) {
        Fake f;
        CloudSession *cs = new_session(&f, NULL);
        CloudDeviceInfo info = { .app_version = "1.2.3", .app_name = "gw", .fota_types = 1u << FOTA_TYPE_APP,
                                 .fota_ble = true };
        size_t n;
        (void) state;

        assert_int_equal(cloud_session_set_device_info(cs, &info), 0);
        assert_int_equal(f.n_ops, 0); /* not connected: sent when ready */
        n = run_to_ready(cs, &f, accepted_paired);
        assert_int_equal(n, 8);
        /* fota_v2_ble: BLE jobs can run, so jobs/ble/rcv is subscribed. */
        assert_int_equal(f.ops[4].n_topics, 2);
        assert_string_equal(f.ops[4].topics[1], PREFIX DEV "/jobs/ble/rcv");
        assert_op(&f, 6, OP_PUBLISH, DEV "/shadow/update");
        assert_string_equal(f.ops[6].payload,
                            "{\"state\":{\"reported\":{\"device\":{\"deviceInfo\":{\"appVersion\":\"1.2.3\",\"appName\":"
                            "\"gw\"},\"serviceInfo\":{\"fota_v2\":[\"APP\"],\"fota_v2_ble\":true}}}}}");
        /* A change while ready is reported at once. */
        info.app_version = "1.2.4";
        assert_int_equal(cloud_session_set_device_info(cs, &info), 0);
        assert_op(&f, 8, OP_PUBLISH, DEV "/shadow/update");
        assert_non_null(strstr(f.ops[8].payload, "1.2.4"));
        cloud_session_free(cs);
}

/* A delta over AWS's cap arrives on delta/full/err: the shadow is read again and its
 * desiredConnections applied. */
static void test_delta_too_large(void **state) {
        Fake f;
        CloudSession *cs = new_session(&f, NULL);
        size_t n;
        (void) state;

        n = run_to_ready(cs, &f, accepted_paired);
        deliver(cs, DEV "/shadow/update/delta/full/err",
                "{\"code\":413,\"message\":\"The payload exceeds the maximum size allowed\"}");
        assert_int_equal(f.n_ops, n + 1);
        assert_op(&f, n, OP_PUBLISH, DEV "/shadow/get/trim");
        assert_string_equal(f.ops[n].payload, "");
        assert_int_equal(cloud_session_get_state(cs), CLOUD_SESSION_READY);
        deliver(cs, DEV "/shadow/get/accepted/trim",
                "{\"desired\":{\"pairing\":{\"state\":\"paired\"},\"nrfcloud_mqtt_topic_prefix\":\"" PREFIX "\","
                "\"desiredConnections\":[\"C0:FF:EE:00:00:01\",\"C0:FF:EE:00:00:02\"]},\"reported\":{}}");
        assert_int_equal(cloud_session_get_state(cs), CLOUD_SESSION_READY);
        assert_int_equal(f.desired_changes, 1);
        cloud_session_free(cs);
}

/* A BLE job still arriving without the subscription (a session kept by the broker) is handed
 * over, so that it can be answered. */
static void test_ble_job_unsubscribed(void **state) {
        Fake f;
        CloudSession *cs = new_session(&f, NULL);
        (void) state;

        (void) run_to_ready(cs, &f, accepted_paired);
        assert_int_equal(f.ops[4].n_topics, 1);
        deliver(cs, PREFIX DEV "/jobs/ble/rcv", "[\"C0:FF:EE:00:00:01\",\"job-1\",3,100,\"h\",\"f.bin\"]");
        assert_int_equal(f.messages, 1);
        assert_int_equal(f.last_kind, CLOUD_MESSAGE_JOBS_BLE_RCV);
        cloud_session_free(cs);
}

static void test_full_form_with_connections(void **state) {
        Fake f;
        CloudSession *cs = new_session(&f, NULL);
        (void) state;

        run_to_ready(cs, &f,
                     "{\"state\":{\"desired\":{\"pairing\":{\"state\":\"paired\"},\"nrfcloud_mqtt_topic_prefix\":\"" PREFIX
                     "\",\"desiredConnections\":[{\"id\":\"C2:6B:AC:6D:05:A2\"},{\"address\":{\"address\":"
                     "\"D6:57:7D:CC:50:17\"}}]}},\"version\":3}");
        assert_int_equal(f.desired_changes, 1);
        /* The document had desiredConnections: no transform request. */
        for (size_t i = 0; i < f.n_ops; i++)
                assert_string_not_equal(f.ops[i].topics[0], DEV "/shadow/get/tf");
        cloud_session_free(cs);
}

static void test_not_associated_then_paired(void **state) {
        Fake f;
        CloudSession *cs = new_session(&f, NULL);
        (void) state;

        assert_int_equal(cloud_session_start(cs), 0);
        cloud_session_link_up(cs);
        complete(&f, 0, 0);
        deliver(cs, DEV "/shadow/get/accepted/trim", accepted_not_associated);
        assert_int_equal(cloud_session_get_state(cs), CLOUD_SESSION_NOT_ASSOCIATED);
        assert_op(&f, 2, OP_PUBLISH, DEV "/shadow/update");
        assert_non_null(strstr(f.ops[2].payload, "\"not_associated\""));
        assert_int_equal(f.n_ops, 3);
        assert_true(f.held);
        /* g2c has no topic yet. */
        assert_int_equal(cloud_session_publish_g2c(cs, OUTBOX_NOTIFICATION, "{}", 2), -EAGAIN);

        /* Association arrives as a delta: echoed, then a reconnect once the echo is acknowledged. */
        deliver(cs, DEV "/shadow/update/delta/full",
                "{\"version\":5,\"timestamp\":1,\"state\":{\"pairing\":{\"state\":\"paired\"},"
                "\"nrfcloud_mqtt_topic_prefix\":\"" PREFIX "\"}}");
        assert_op(&f, 3, OP_PUBLISH, DEV "/shadow/update");
        assert_non_null(strstr(f.ops[3].payload, "{\"state\":{\"reported\":{\"pairing\":{\"state\":\"paired\"}"));
        assert_int_equal(f.reconnects, 0);
        complete(&f, 3, 0);
        assert_int_equal(f.reconnects, 1);
        assert_int_equal(cloud_session_get_state(cs), CLOUD_SESSION_NOT_ASSOCIATED);

        /* The new connection runs the whole procedure. */
        cloud_session_link_down(cs);
        assert_int_equal(cloud_session_get_state(cs), CLOUD_SESSION_CONNECTING);
        cloud_session_link_up(cs);
        complete(&f, 4, 0);
        deliver(cs, DEV "/shadow/get/accepted/trim", accepted_paired);
        assert_int_equal(cloud_session_get_state(cs), CLOUD_SESSION_PAIRED);
        cloud_session_free(cs);
}

static void test_not_associated_new_document(void **state) {
        Fake f;
        CloudSession *cs = new_session(&f, NULL);
        (void) state;

        assert_int_equal(cloud_session_start(cs), 0);
        cloud_session_link_up(cs);
        complete(&f, 0, 0);
        deliver(cs, DEV "/shadow/get/accepted/trim", accepted_not_associated);
        /* A new accepted document that says paired: reconnect at once. */
        deliver(cs, DEV "/shadow/get/accepted/trim", accepted_paired);
        assert_int_equal(f.reconnects, 1);
        cloud_session_free(cs);
}

static void test_discon(void **state) {
        Fake f;
        CloudSession *cs = new_session(&f, NULL);
        const DesiredConnection *v;
        size_t n;
        (void) state;

        run_to_ready(cs, &f,
                     "{\"desired\":{\"pairing\":{\"state\":\"paired\"},\"nrfcloud_mqtt_topic_prefix\":\"" PREFIX
                     "\",\"desiredConnections\":[\"C2:6B:AC:6D:05:A2\"]}}");
        assert_int_equal(cloud_session_get_desired_connections(cs, &v, &n), 0);
        assert_int_equal(f.desired_changes, 1);

        /* An operation goes up. */
        deliver(cs, PREFIX "gateways/" DEV "/c2g", "{\"type\":\"operation\",\"id\":\"1\",\"operation\":{\"type\":\"scan\"}}");
        assert_int_equal(f.messages, 1);
        assert_int_equal(f.last_kind, CLOUD_MESSAGE_C2G);
        /* A job array goes up too. */
        deliver(cs, PREFIX DEV "/jobs/rcv", "[\"abcd\",0,1,\"h\",\"p\"]");
        assert_int_equal(f.messages, 2);
        assert_int_equal(f.last_kind, CLOUD_MESSAGE_JOBS_RCV);

        deliver(cs, PREFIX "gateways/" DEV "/c2g", "{\"appId\":\"DEVICE\",\"messageType\":\"DISCON\"}");
        assert_int_equal(f.messages, 2); /* handled here, not passed up */
        assert_int_equal(cloud_session_get_state(cs), CLOUD_SESSION_NOT_ASSOCIATED);
        assert_true(f.held);
        assert_int_equal(f.reconnects, 1);
        assert_int_equal(f.desired_changes, 2);
        assert_int_equal(cloud_session_get_desired_connections(cs, &v, &n), -ENODATA);
        assert_null(cloud_session_g2c_topic(cs));
        assert_int_equal(cloud_session_publish_g2c(cs, OUTBOX_NOTIFICATION, "{}", 2), -EAGAIN);

        /* c2g after that is dropped. */
        deliver(cs, PREFIX "gateways/" DEV "/c2g", "{\"type\":\"operation\",\"id\":\"2\",\"operation\":{\"type\":\"scan\"}}");
        assert_int_equal(f.messages, 2);
        cloud_session_free(cs);
}

static void test_guard_refuses_shadow_topics(void **state) {
        Fake f;
        CloudSession *cs = new_session(&f, NULL);
        size_t before;
        (void) state;

        run_to_ready(cs, &f,
                     "{\"desired\":{\"pairing\":{\"state\":\"paired\",\"topics\":{\"c2g\":\"prod/other/gateways/" DEV
                     "/c2g\",\"g2c\":\"#\"}},\"nrfcloud_mqtt_topic_prefix\":\"" PREFIX "\"}}");
        /* Neither forbidden topic reached the transport; the defaults did. */
        for (size_t i = 0; i < f.n_ops; i++)
                for (size_t j = 0; j < f.ops[i].n_topics; j++) {
                        assert_null(strstr(f.ops[i].topics[j], "other"));
                        assert_string_not_equal(f.ops[i].topics[j], "#");
                }
        assert_string_equal(cloud_session_c2g_topic(cs), PREFIX "gateways/" DEV "/c2g");
        assert_string_equal(cloud_session_g2c_topic(cs), PREFIX "gateways/" DEV "/g2c");
        /* The same guard for entries the transport finds in the outbox. */
        assert_true(cloud_session_may_publish(cs, PREFIX "gateways/" DEV "/g2c"));
        assert_false(cloud_session_may_publish(cs, "prod/other/gateways/" DEV "/g2c"));
        assert_false(cloud_session_may_publish(cs, PREFIX "gateways/" DEV "/c2g"));

        /* The "+/r" wildcard of NCS 2.2..2.7 is not a c2g we subscribe. */
        before = f.n_ops;
        cloud_session_link_down(cs);
        cloud_session_link_up(cs);
        complete(&f, before, 0);
        deliver(cs, DEV "/shadow/get/accepted/trim",
                "{\"desired\":{\"pairing\":{\"state\":\"paired\",\"topics\":{\"c2g\":\"" PREFIX "m/d/" DEV
                "/+/r\"}},\"nrfcloud_mqtt_topic_prefix\":\"" PREFIX "\"}}");
        complete(&f, before + 2, 0);
        assert_op(&f, before + 3, OP_SUBSCRIBE, PREFIX "m/d/" DEV "/c2g");
        cloud_session_free(cs);
}

/* The three shadows of issue 13: each pairs on the default topics of this
 * gateway, without a reconnection and without any other topic reaching the
 * transport. */
static void test_guard_issue13_shadows(void **state) {
        static const struct {
                const char *topics;
                const char *forbidden;
        } t[] = {
                /* c2g == g2c: a loop through the cloud. */
                { "{\"c2g\":\"" PREFIX "m/loop\",\"g2c\":\"" PREFIX "m/loop\"}", "loop" },
                /* g2c as another device. */
                { "{\"g2c\":\"" PREFIX "m/d/other-device/d2c\"}", "other-device" },
                /* A wildcard c2g: passed the guard, then failed the pairing report, every minute. */
                { "{\"c2g\":\"" PREFIX "m/d/+/c2g\"}", "+" },
                { "{\"c2g\":\"" PREFIX "m/+/c2g\"}", "+" },
        };
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                char doc[512];
                Fake f;
                CloudSession *cs = new_session(&f, NULL);

                snprintf(doc, sizeof doc,
                         "{\"desired\":{\"pairing\":{\"state\":\"paired\",\"topics\":%s},"
                         "\"nrfcloud_mqtt_topic_prefix\":\"" PREFIX "\"}}",
                         t[i].topics);
                run_to_ready(cs, &f, doc);
                assert_int_equal(f.reconnects, 0);
                assert_string_equal(cloud_session_c2g_topic(cs), PREFIX "gateways/" DEV "/c2g");
                assert_string_equal(cloud_session_g2c_topic(cs), PREFIX "gateways/" DEV "/g2c");
                assert_non_null(strstr(f.ops[2].payload, "\"g2c\":\"" PREFIX "gateways/" DEV "/g2c\""));
                assert_int_equal(cloud_session_publish_g2c(cs, OUTBOX_STATUS, "{}", 2), 0);
                for (size_t j = 0; j < f.n_ops; j++)
                        for (size_t k = 0; k < f.ops[j].n_topics; k++)
                                assert_null(strstr(f.ops[j].topics[k], t[i].forbidden));
                assert_false(cloud_session_may_publish(cs, PREFIX "m/loop"));
                assert_false(cloud_session_may_publish(cs, PREFIX "m/d/other-device/d2c"));
                cloud_session_free(cs);
        }
}

static void test_configured_team(void **state) {
        Fake f;
        CloudSession *cs = new_session(&f, "my-team");
        (void) state;

        /* Known from the start: g2c can be queued before the first connection. */
        assert_string_equal(cloud_session_topic_prefix(cs), "prod/my-team/");
        assert_int_equal(cloud_session_publish_g2c(cs, OUTBOX_STATUS, "{}", 2), 0);
        assert_op(&f, 0, OP_ENQUEUE, "prod/my-team/gateways/" DEV "/g2c");
        assert_int_equal(f.ops[0].class, OUTBOX_STATUS);
        f.n_ops = 0;
        run_to_ready(cs, &f, accepted_paired);
        assert_string_equal(cloud_session_c2g_topic(cs), "prod/my-team/gateways/" DEV "/c2g");
        assert_op(&f, 4, OP_SUBSCRIBE, "prod/my-team/" DEV "/jobs/rcv");
        cloud_session_free(cs);
}

static void test_delta_before_document(void **state) {
        Fake f;
        CloudSession *cs = new_session(&f, "my-team");
        (void) state;

        assert_int_equal(cloud_session_start(cs), 0);
        cloud_session_link_up(cs);
        complete(&f, 0, 0);
        /* A delta that overtakes the document does not decide the association; it is echoed. */
        deliver(cs, DEV "/shadow/update/delta/full",
                "{\"version\":2,\"timestamp\":1,\"state\":{\"pairing\":{\"state\":\"paired\"}}}");
        assert_int_equal(cloud_session_get_state(cs), CLOUD_SESSION_SHADOW);
        assert_op(&f, 2, OP_PUBLISH, DEV "/shadow/update");
        assert_string_equal(f.ops[2].payload, "{\"state\":{\"reported\":{\"pairing\":{\"state\":\"paired\"}}}}");
        assert_int_equal(f.n_ops, 3);
        /* The document does. */
        deliver(cs, DEV "/shadow/get/accepted/trim", accepted_paired);
        assert_int_equal(cloud_session_get_state(cs), CLOUD_SESSION_PAIRED);
        cloud_session_free(cs);
}

static void run_loop(sd_event *e, uint64_t usec) {
        uint64_t end;
        assert_true(sd_event_now(e, CLOCK_MONOTONIC, &end) >= 0);
        end += usec;
        for (;;) {
                uint64_t now;
                assert_true(sd_event_run(e, 10 * 1000) >= 0);
                assert_true(sd_event_now(e, CLOCK_MONOTONIC, &now) >= 0);
                if (now >= end)
                        return;
        }
}

static void test_procedure_timeout(void **state) {
        Fake f = {};
        CloudSession *cs = NULL;
        sd_event *e = NULL;
        CloudSessionOptions o = { .device_id = DEV, .procedure_timeout_usec = 50 * 1000 };
        (void) state;

        assert_int_equal(sd_event_new(&e), 0);
        o.event = e;
        assert_int_equal(cloud_session_new(&o, &fake_transport, &f, &callbacks, &f, &cs), 0);
        assert_int_equal(cloud_session_start(cs), 0);

        /* The shadow never answers: one reconnect after the timeout, none before. */
        cloud_session_link_up(cs);
        complete(&f, 0, 0);
        run_loop(e, 20 * 1000);
        assert_int_equal(f.reconnects, 0);
        run_loop(e, 300 * 1000);
        assert_int_equal(f.reconnects, 1);

        /* Not associated is a state to wait in: no timeout there. */
        cloud_session_link_down(cs);
        cloud_session_link_up(cs);
        complete(&f, f.n_ops - 1, 0);
        deliver(cs, DEV "/shadow/get/accepted/trim", accepted_not_associated);
        assert_int_equal(cloud_session_get_state(cs), CLOUD_SESSION_NOT_ASSOCIATED);
        run_loop(e, 300 * 1000);
        assert_int_equal(f.reconnects, 1);

        /* Stuck in paired (no PUBACK for the pairing report): reconnect. */
        cloud_session_link_down(cs);
        cloud_session_link_up(cs);
        complete(&f, f.n_ops - 1, 0);
        deliver(cs, DEV "/shadow/get/accepted/trim", accepted_paired);
        assert_int_equal(cloud_session_get_state(cs), CLOUD_SESSION_PAIRED);
        run_loop(e, 300 * 1000);
        assert_int_equal(f.reconnects, 2);

        cloud_session_free(cs);
        sd_event_unref(e);
}

static void test_bad_input_ignored(void **state) {
        Fake f;
        CloudSession *cs = new_session(&f, NULL);
        (void) state;

        assert_int_equal(cloud_session_start(cs), 0);
        cloud_session_link_up(cs);
        complete(&f, 0, 0);
        deliver(cs, DEV "/shadow/get/accepted/trim", "{not json");
        deliver(cs, DEV "/shadow/get/accepted/trim", "{\"desired\":{\"nrfcloud_mqtt_topic_prefix\":\"bad\"}}");
        assert_int_equal(cloud_session_get_state(cs), CLOUD_SESSION_SHADOW);
        /* Paired without a prefix and without a configured team: cannot go on. */
        deliver(cs, DEV "/shadow/get/accepted/trim", "{\"desired\":{\"pairing\":{\"state\":\"paired\"}}}");
        assert_int_equal(cloud_session_get_state(cs), CLOUD_SESSION_SHADOW);
        assert_int_equal(f.n_ops, 2);
        /* A deprecated state: waiting, nothing reported. */
        deliver(cs, DEV "/shadow/get/accepted/trim", "{\"desired\":{\"pairing\":{\"state\":\"pattern_wait\"}}}");
        assert_int_equal(cloud_session_get_state(cs), CLOUD_SESSION_NOT_ASSOCIATED);
        assert_int_equal(f.n_ops, 2);
        cloud_session_free(cs);
}

static void test_invalid_options(void **state) {
        Fake f = {};
        CloudSession *cs = NULL;
        CloudSessionOptions o = { .device_id = "a/b" };
        (void) state;

        assert_int_equal(cloud_session_new(&o, &fake_transport, &f, NULL, NULL, &cs), -EINVAL);
        o.device_id = "$aws";
        assert_int_equal(cloud_session_new(&o, &fake_transport, &f, NULL, NULL, &cs), -EINVAL);
        o.device_id = "ok";
        o.team_id = "a+b";
        assert_int_equal(cloud_session_new(&o, &fake_transport, &f, NULL, NULL, &cs), -EINVAL);
        assert_null(cs);
}

static void test_reported_connections(void **state) {
        Fake f;
        CloudSession *cs = new_session(&f, NULL);
        const char(*v)[BT_ADDR_STR_LEN + 1];
        size_t n;
        (void) state;

        assert_int_equal(cloud_session_get_reported_connections(cs, &v, &n), -ENODATA);
        run_to_ready(cs, &f,
                     "{\"desired\":{\"pairing\":{\"state\":\"paired\"},\"nrfcloud_mqtt_topic_prefix\":\"" PREFIX
                     "\",\"desiredConnections\":[\"C2:6B:AC:6D:05:A2\"]},\"reported\":{\"statusConnections\":{"
                     "\"C2:6B:AC:6D:05:A2\":{\"id\":\"C2:6B:AC:6D:05:A2\",\"status\":{\"connected\":true}},"
                     "\"D6:57:7D:CC:50:17\":{\"id\":\"D6:57:7D:CC:50:17\",\"status\":{\"connected\":false}},"
                     "\"11:22:33:44:55:66\":null}}}");
        assert_int_equal(cloud_session_get_reported_connections(cs, &v, &n), 0);
        assert_int_equal(n, 2);
        assert_true((streq(v[0], "C2:6B:AC:6D:05:A2") && streq(v[1], "D6:57:7D:CC:50:17")) ||
                    (streq(v[1], "C2:6B:AC:6D:05:A2") && streq(v[0], "D6:57:7D:CC:50:17")));
        cloud_session_free(cs);
}

static void test_status_connections(void **state) {
        Fake f;
        CloudSession *cs = new_session(&f, NULL);
        ShadowConnectionStatus v[] = { { "C2:6B:AC:6D:05:A2", CONNECTION_STATUS_CONNECTED } };
        (void) state;

        assert_int_equal(cloud_session_report_connections(cs, v, 1), 0);
        assert_op(&f, 0, OP_ENQUEUE, DEV "/shadow/update");
        assert_int_equal(f.ops[0].class, OUTBOX_SHADOW);
        assert_non_null(strstr(f.ops[0].payload, "\"statusConnections\":{\"C2:6B:AC:6D:05:A2\""));
        cloud_session_free(cs);
}

static void test_strings(void **state) {
        (void) state;
        for (int s = 0; s < _CLOUD_SESSION_STATE_MAX; s++)
                assert_non_null(cloud_session_state_to_string(s));
        assert_null(cloud_session_state_to_string(_CLOUD_SESSION_STATE_MAX));
        for (int k = 0; k < _CLOUD_MESSAGE_KIND_MAX; k++)
                assert_non_null(cloud_message_kind_to_string(k));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_paired_sequence),
                cmocka_unit_test(test_device_report),
                cmocka_unit_test(test_delta_too_large),
                cmocka_unit_test(test_ble_job_unsubscribed),
                cmocka_unit_test(test_full_form_with_connections),
                cmocka_unit_test(test_not_associated_then_paired),
                cmocka_unit_test(test_not_associated_new_document),
                cmocka_unit_test(test_discon),
                cmocka_unit_test(test_guard_refuses_shadow_topics),
                cmocka_unit_test(test_guard_issue13_shadows),
                cmocka_unit_test(test_configured_team),
                cmocka_unit_test(test_delta_before_document),
                cmocka_unit_test(test_procedure_timeout),
                cmocka_unit_test(test_bad_input_ignored),
                cmocka_unit_test(test_invalid_options),
                cmocka_unit_test(test_reported_connections),
                cmocka_unit_test(test_status_connections),
                cmocka_unit_test(test_strings),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
