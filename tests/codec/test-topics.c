/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "topics.h"

#define TEAM "bc2732ea-4e39-0eb0-9241-6cf49f793247"
#define GW "50363731-3934-4a2f-80ba-1d1fa47a7b21"

static TopicContext ctx(void) {
        TopicContext c;
        assert_int_equal(topic_context_init(&c, "prod", TEAM, GW), 0);
        return c;
}

static void test_build_all(void **state) {
        static const struct {
                TopicKind kind;
                const char *topic;
                TopicAction action;
        } t[] = {
                { TOPIC_AWS_SHADOW_GET, "$aws/things/" GW "/shadow/get", TOPIC_ACTION_PUBLISH },
                { TOPIC_AWS_SHADOW_GET_ACCEPTED, "$aws/things/" GW "/shadow/get/accepted", TOPIC_ACTION_SUBSCRIBE },
                { TOPIC_AWS_SHADOW_GET_REJECTED, "$aws/things/" GW "/shadow/get/rejected", TOPIC_ACTION_SUBSCRIBE },
                { TOPIC_AWS_SHADOW_UPDATE, "$aws/things/" GW "/shadow/update", TOPIC_ACTION_PUBLISH },
                { TOPIC_AWS_SHADOW_UPDATE_ACCEPTED, "$aws/things/" GW "/shadow/update/accepted", TOPIC_ACTION_SUBSCRIBE },
                { TOPIC_AWS_SHADOW_UPDATE_REJECTED, "$aws/things/" GW "/shadow/update/rejected", TOPIC_ACTION_SUBSCRIBE },
                { TOPIC_AWS_SHADOW_UPDATE_DELTA, "$aws/things/" GW "/shadow/update/delta", TOPIC_ACTION_SUBSCRIBE },
                { TOPIC_SHADOW_GET_ACCEPTED, GW "/shadow/get/accepted", TOPIC_ACTION_SUBSCRIBE },
                { TOPIC_SHADOW_GET_TRIM, GW "/shadow/get/trim", TOPIC_ACTION_PUBLISH },
                { TOPIC_SHADOW_GET_ACCEPTED_TRIM, GW "/shadow/get/accepted/trim", TOPIC_ACTION_SUBSCRIBE },
                { TOPIC_SHADOW_GET_REJECTED, GW "/shadow/get/rejected", TOPIC_ACTION_SUBSCRIBE },
                { TOPIC_SHADOW_UPDATE, GW "/shadow/update", TOPIC_ACTION_PUBLISH },
                { TOPIC_SHADOW_UPDATE_DELTA_FULL, GW "/shadow/update/delta/full", TOPIC_ACTION_SUBSCRIBE },
                { TOPIC_SHADOW_UPDATE_DELTA_FULL_ERR, GW "/shadow/update/delta/full/err", TOPIC_ACTION_SUBSCRIBE },
                { TOPIC_SHADOW_GET_TF, GW "/shadow/get/tf", TOPIC_ACTION_PUBLISH },
                { TOPIC_SHADOW_GET_ACCEPTED_TF, GW "/shadow/get/accepted/tf", TOPIC_ACTION_SUBSCRIBE },
                { TOPIC_C2G, "prod/" TEAM "/gateways/" GW "/c2g", TOPIC_ACTION_SUBSCRIBE },
                { TOPIC_G2C, "prod/" TEAM "/gateways/" GW "/g2c", TOPIC_ACTION_PUBLISH },
                { TOPIC_JOBS_REQ, "prod/" TEAM "/" GW "/jobs/req", TOPIC_ACTION_PUBLISH },
                { TOPIC_JOBS_RCV, "prod/" TEAM "/" GW "/jobs/rcv", TOPIC_ACTION_SUBSCRIBE },
                { TOPIC_JOBS_UPDATE, "prod/" TEAM "/" GW "/jobs/update", TOPIC_ACTION_PUBLISH },
                { TOPIC_JOBS_BLE_REQ, "prod/" TEAM "/" GW "/jobs/ble/req", TOPIC_ACTION_PUBLISH },
                { TOPIC_JOBS_BLE_RCV, "prod/" TEAM "/" GW "/jobs/ble/rcv", TOPIC_ACTION_SUBSCRIBE },
                { TOPIC_JOBS_BLE_UPDATE, "prod/" TEAM "/" GW "/jobs/ble/update", TOPIC_ACTION_PUBLISH },
                { TOPIC_MSG_D2C, "prod/" TEAM "/m/d/" GW "/d2c", TOPIC_ACTION_PUBLISH },
                { TOPIC_MSG_D2C_BULK, "prod/" TEAM "/m/d/" GW "/d2c/bulk", TOPIC_ACTION_PUBLISH },
                { TOPIC_MSG_C2D, "prod/" TEAM "/m/d/" GW "/c2d", TOPIC_ACTION_SUBSCRIBE },
        };
        TopicContext c = ctx();
        (void) state;

        assert_int_equal(ELEMENTSOF(t), _TOPIC_KIND_MAX);
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                char buf[TOPIC_MAX + 1];
                TopicAction other = t[i].action == TOPIC_ACTION_PUBLISH ? TOPIC_ACTION_SUBSCRIBE : TOPIC_ACTION_PUBLISH;

                assert_int_equal(topic_build(&c, t[i].kind, buf, sizeof buf), 0);
                assert_string_equal(buf, t[i].topic);
                assert_int_equal(topic_kind_action(t[i].kind), t[i].action);
                /* Every topic we build passes the guard in its direction, and only in it. */
                assert_true(topic_allowed(&c, t[i].action, buf));
                assert_false(topic_allowed(&c, other, buf));
                /* Names round-trip. */
                assert_int_equal(topic_kind_from_string(topic_kind_to_string(t[i].kind)), t[i].kind);
        }
        assert_int_equal(topic_kind_from_string("nope"), _TOPIC_KIND_INVALID);
        assert_null(topic_kind_to_string(_TOPIC_KIND_MAX));
        assert_string_equal(topic_action_to_string(TOPIC_ACTION_SUBSCRIBE), "subscribe");
}

static void test_build_small_buffer(void **state) {
        TopicContext c = ctx();
        char buf[16];
        (void) state;
        assert_int_equal(topic_build(&c, TOPIC_C2G, buf, sizeof buf), -ENOBUFS);
        assert_int_equal(topic_build(&c, _TOPIC_KIND_MAX, buf, sizeof buf), -EINVAL);
}

static void test_context(void **state) {
        TopicContext c;
        (void) state;
        assert_int_equal(topic_context_init(&c, "prod", "team", "gw-1"), 0);
        assert_string_equal(c.stage, "prod");
        assert_int_equal(topic_context_init(&c, "", "team", "gw"), -EINVAL);
        assert_int_equal(topic_context_init(&c, "prod", "te/am", "gw"), -EINVAL);
        assert_int_equal(topic_context_init(&c, "prod", "team", "g+w"), -EINVAL);
        assert_int_equal(topic_context_init(&c, "prod", "team", "#"), -EINVAL);
        assert_int_equal(topic_context_init(&c, "prodprod1", "team", "gw"), -EINVAL); /* stage > 8 */
        assert_int_equal(topic_context_init(&c, "prod", "team", "$aws"), -EINVAL);
        assert_int_equal(topic_context_init(&c, "prod", "team", "gw\n"), -EINVAL);
        assert_int_equal(topic_context_init(&c, "prod", NULL, "gw"), -EINVAL);
}

static void test_prefix_parse(void **state) {
        static const struct {
                const char *in;
                int r;
                const char *stage, *team;
        } t[] = {
                { "prod/" TEAM "/", 0, "prod", TEAM },
                { "beta/abc/", 0, "beta", "abc" },
                { "prod/" TEAM, -EINVAL, NULL, NULL },        /* no final slash */
                { "prod//", -EINVAL, NULL, NULL },            /* empty team */
                { "/team/", -EINVAL, NULL, NULL },            /* empty stage */
                { "prod/team/x/", -EINVAL, NULL, NULL },      /* three levels */
                { "prod/te+am/", -EINVAL, NULL, NULL },       /* wildcard */
                { "$aws/team/", -EINVAL, NULL, NULL },        /* reserved by AWS IoT */
                { "prod/$team/", -EINVAL, NULL, NULL },       /* the same for the team (found by fuzz-shadow) */
                { "prod", -EINVAL, NULL, NULL },
                { "", -EINVAL, NULL, NULL },
                { "verylongstage/t/", -EINVAL, NULL, NULL },
                { "prod/0123456789012345678901234567890123456789012345678901234567890123456789/", -EINVAL, NULL, NULL },
        };
        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                char stage[TOPIC_STAGE_MAX + 1] = "unset", team[TOPIC_TEAM_MAX + 1] = "unset";
                assert_int_equal(topic_prefix_parse(t[i].in, stage, team), t[i].r);
                if (t[i].r == 0) {
                        assert_string_equal(stage, t[i].stage);
                        assert_string_equal(team, t[i].team);
                } else {
                        /* Out-parameters untouched on failure. */
                        assert_string_equal(stage, "unset");
                        assert_string_equal(team, "unset");
                }
        }
}

#define OTHER "0b7e8a52-2f39-4d6e-9c1a-5e3f7d2b9a40"
#define P TOPIC_ACTION_PUBLISH
#define S TOPIC_ACTION_SUBSCRIBE

/* What nRF Cloud's IoT policies let this gateway do (spec nrfcloud-mqtt.md
 * §1.3-§1.6): every resource carries ${iot:ClientId} = GW at a fixed
 * position, so the same topic with any other id, team or stage is
 * forbidden, as is every topic outside the lists. */
static const struct {
        TopicAction action;
        const char *topic;
        bool allowed;
} policy[] = {
        /* Provisioned device: its own shadow, both topic families. */
        { P, "$aws/things/" GW "/shadow/get", true },
        { P, "$aws/things/" GW "/shadow/update", true },
        { S, "$aws/things/" GW "/shadow/get/accepted", true },
        { S, "$aws/things/" GW "/shadow/get/rejected", true },
        { S, "$aws/things/" GW "/shadow/update/delta", true },
        { P, GW "/shadow/get/trim", true },
        { P, GW "/shadow/get/tf", true },
        { P, GW "/shadow/update", true },
        { S, GW "/shadow/get/accepted", true },
        { S, GW "/shadow/get/accepted/trim", true },
        { S, GW "/shadow/get/accepted/tf", true },
        { S, GW "/shadow/get/rejected", true },
        { S, GW "/shadow/update/delta/full", true },
        { P, "$aws/things/" OTHER "/shadow/update", false },
        { S, "$aws/things/" OTHER "/shadow/get/accepted", false },
        { P, OTHER "/shadow/update", false },
        { S, OTHER "/shadow/get/accepted/trim", false },
        { S, "+/shadow/get/accepted", false },
        { S, "$aws/things/+/shadow/update/delta", false },
        { S, "$aws/things/" GW "/shadow/#", false },
        { S, GW "/shadow/get/+", false },
        { P, "$aws/things/" GW "/shadow/delete", false },
        { P, "$aws/things/" GW "/shadow/name/x/update", false },
        { S, "$aws/things/" GW "/jobs/notify", false },
        { P, GW "/shadow/get/accepted", false },
        { S, GW "/shadow/update", false },
        /* Associated device: its messages under m/d/<id>/ and its jobs. */
        { P, "prod/" TEAM "/m/d/" GW "/d2c", true },
        { P, "prod/" TEAM "/m/d/" GW "/d2c/bulk", true },
        { P, "prod/" TEAM "/m/d/" GW "/d2c/bin", true },
        { P, "prod/" TEAM "/m/d/" GW "/g2c", true },
        { S, "prod/" TEAM "/m/d/" GW "/c2d", true },
        { S, "prod/" TEAM "/m/d/" GW "/c2g", true },
        { S, "prod/" TEAM "/m/d/" GW "/+/r", true },
        { S, "prod/" TEAM "/m/d/" GW "/x/r", true },
        { S, "prod/" TEAM "/m/d/" GW "/d2c", false },   /* its own publish topic */
        { P, "prod/" TEAM "/m/d/" GW "/c2d", false },   /* its own subscription */
        { P, "prod/" TEAM "/m/d/" GW "/c2g", false },
        { P, "prod/" TEAM "/m/d/" GW "/x/r", false },
        { P, "prod/" TEAM "/m/d/" GW "/+/r", false },
        { P, "prod/" TEAM "/m/d/" OTHER "/d2c", false }, /* another device's events */
        { S, "prod/" TEAM "/m/d/" OTHER "/c2d", false },
        { S, "prod/" TEAM "/m/d/" OTHER "/+/r", false },
        { S, "prod/" TEAM "/m/d/+/+/r", false },
        { S, "prod/" TEAM "/m/d/+/c2g", false },
        { S, "prod/" TEAM "/m/d/" GW "/+", false },
        { S, "prod/" TEAM "/m/d/" GW "/c2g/+", false },
        { S, "prod/" TEAM "/m/d/" GW "/+/+", false },
        { S, "prod/" TEAM "/m/d/" GW "/#", false },
        { S, "prod/" TEAM "/m/#", false },
        { S, "prod/" TEAM "/m/+/c2g", false },
        { P, "prod/" TEAM "/m/loop", false },           /* outside m/d/<id>/ */
        { S, "prod/" TEAM "/m/loop", false },
        { P, "prod/" TEAM "/m/d/" GW, false },
        { P, "prod/" TEAM "/m/d/" GW "/", false },
        { P, "prod/" TEAM "/m/d/" GW "//d2c", false },
        { P, "prod/" TEAM "/m/", false },
        { P, "prod/other-team/m/d/" GW "/d2c", false },
        { P, "beta/" TEAM "/m/d/" GW "/d2c", false },
        { P, "prod/" TEAM "/" GW "/jobs/req", true },
        { S, "prod/" TEAM "/" GW "/jobs/rcv", true },
        { P, "prod/" TEAM "/" GW "/jobs/update", true },
        { P, "prod/" TEAM "/" GW "/jobs/ble/req", true },
        { S, "prod/" TEAM "/" GW "/jobs/ble/rcv", true },
        { P, "prod/" TEAM "/" GW "/jobs/ble/update", true },
        { P, "prod/" TEAM "/" GW "/jobs/rcv", false },
        { S, "prod/" TEAM "/" GW "/jobs/req", false },
        { P, "prod/" TEAM "/" GW "/jobs/other", false },
        { S, "prod/" TEAM "/" GW "/jobs/ble/x/rcv", false },
        { S, "prod/" TEAM "/" GW "/jobs/+", false },
        { S, "prod/" TEAM "/" GW "/jobs/#", false },
        { P, "prod/" TEAM "/" OTHER "/jobs/req", false },
        { S, "prod/" TEAM "/" OTHER "/jobs/rcv", false },
        { S, "prod/" TEAM "/+/jobs/rcv", false },
        /* Gateway: gateways/<id>/c2g and g2c. */
        { S, "prod/" TEAM "/gateways/" GW "/c2g", true },
        { P, "prod/" TEAM "/gateways/" GW "/g2c", true },
        { P, "prod/" TEAM "/gateways/" GW "/c2g", false },
        { S, "prod/" TEAM "/gateways/" GW "/g2c", false },
        { S, "prod/" TEAM "/gateways/" OTHER "/c2g", false },
        { P, "prod/" TEAM "/gateways/" OTHER "/g2c", false },
        { P, "prod/other-team/gateways/" GW "/g2c", false },
        { P, "beta/" TEAM "/gateways/" GW "/g2c", false },
        { S, "prod/" TEAM "/gateways/+/c2g", false },
        { S, "prod/" TEAM "/gateways/" GW "/#", false },
        { S, "prod/" TEAM "/gateways/" GW "/+", false },
        { P, "prod/" TEAM "/gateways/" GW "/g2c/x", false },
        /* Anything else. */
        { S, "#", false },
        { S, "+", false },
        { P, "prod/" TEAM "/gateways/" GW "/c2g/", false },
        { S, "prod/" TEAM "/gateways/" GW "/c2gx", false },
        { P, "", false },
        { P, "/", false },
        { P, "prod/" TEAM "/gateways/" GW "/g2c\n", false },
        { P, "prod/" TEAM "/gateways/" GW "/g2c\x7f", false },
        { _TOPIC_ACTION_INVALID, "prod/" TEAM "/gateways/" GW "/g2c", false },
};

static void test_guard_policy(void **state) {
        TopicContext c = ctx();
        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(policy); i++) {
                bool a = topic_allowed(&c, policy[i].action, policy[i].topic);
                if (a != policy[i].allowed)
                        fail_msg("%s %s: expected %s", topic_action_to_string(policy[i].action), policy[i].topic,
                                 policy[i].allowed ? "allowed" : "refused");
        }
        assert_false(topic_allowed(NULL, TOPIC_ACTION_PUBLISH, "x"));
        assert_false(topic_allowed(&c, TOPIC_ACTION_PUBLISH, NULL));
}

/* No topic of the table, nor any built topic, passes in both directions:
 * a gateway never receives what it sends (the loop of issue 13). */
static void test_guard_one_direction(void **state) {
        TopicContext c = ctx();
        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(policy); i++)
                assert_false(topic_allowed(&c, P, policy[i].topic) && topic_allowed(&c, S, policy[i].topic));
        for (int k = 0; k < _TOPIC_KIND_MAX; k++) {
                char buf[TOPIC_MAX + 1];
                assert_int_equal(topic_build(&c, (TopicKind) k, buf, sizeof buf), 0);
                assert_false(topic_allowed(&c, P, buf) && topic_allowed(&c, S, buf));
        }
}

static void test_guard_long_topic(void **state) {
        TopicContext c = ctx();
        char t[TOPIC_MAX + 64];
        (void) state;
        int n = snprintf(t, sizeof t, "prod/%s/m/d/%s/", TEAM, GW);
        memset(t + n, 'a', sizeof t - (size_t) n - 1);
        t[sizeof t - 1] = 0;
        assert_false(topic_allowed(&c, TOPIC_ACTION_PUBLISH, t));
        t[TOPIC_MAX] = 0;
        assert_true(topic_allowed(&c, TOPIC_ACTION_PUBLISH, t));
}

static void test_c2g_derive(void **state) {
        TopicContext c = ctx();
        char buf[TOPIC_MAX + 1];
        (void) state;

        /* Not in the shadow: the gateways/ default. */
        assert_int_equal(topic_c2g_derive(&c, NULL, buf, sizeof buf), 0);
        assert_string_equal(buf, "prod/" TEAM "/gateways/" GW "/c2g");
        assert_int_equal(topic_g2c_derive(&c, NULL, buf, sizeof buf), 0);
        assert_string_equal(buf, "prod/" TEAM "/gateways/" GW "/g2c");

        /* The wildcard the NCS 2.2..2.7 cloud code leaves behind. */
        assert_int_equal(topic_c2g_derive(&c, "prod/" TEAM "/m/d/" GW "/+/r", buf, sizeof buf), 0);
        assert_string_equal(buf, "prod/" TEAM "/m/d/" GW "/c2g");
        assert_int_equal(topic_c2g_derive(&c, "prod/" TEAM "/gateways/" GW "/c2g", buf, sizeof buf), 0);
        assert_string_equal(buf, "prod/" TEAM "/gateways/" GW "/c2g");

        /* A shadow that points elsewhere is refused. */
        strcpy(buf, "unchanged");
        assert_int_equal(topic_c2g_derive(&c, "prod/other/gateways/" GW "/c2g", buf, sizeof buf), -EPERM);
        assert_int_equal(topic_c2g_derive(&c, "prod/" TEAM "/gateways/#", buf, sizeof buf), -EPERM);
        assert_int_equal(topic_c2g_derive(&c, "", buf, sizeof buf), -EINVAL);
        /* g2c must be publishable. */
        assert_int_equal(topic_g2c_derive(&c, "prod/" TEAM "/gateways/" GW "/c2g", buf, sizeof buf), -EPERM);
        assert_string_equal(buf, "unchanged");
        assert_int_equal(topic_g2c_derive(&c, "prod/" TEAM "/m/d/" GW "/g2c", buf, sizeof buf), 0);
        assert_string_equal(buf, "prod/" TEAM "/m/d/" GW "/g2c");
        assert_int_equal(topic_c2g_derive(&c, NULL, buf, 10), -ENOBUFS);

        /* Issue 13: c2g == g2c outside m/d/<id>/ (a loop through the cloud). */
        assert_int_equal(topic_c2g_derive(&c, "prod/" TEAM "/m/loop", buf, sizeof buf), -EPERM);
        assert_int_equal(topic_g2c_derive(&c, "prod/" TEAM "/m/loop", buf, sizeof buf), -EPERM);
        /* ... g2c as another device ... */
        assert_int_equal(topic_g2c_derive(&c, "prod/" TEAM "/m/d/" OTHER "/d2c", buf, sizeof buf), -EPERM);
        assert_int_equal(topic_c2g_derive(&c, "prod/" TEAM "/m/d/" OTHER "/c2g", buf, sizeof buf), -EPERM);
        /* ... and wildcard c2g filters, which the pairing report cannot carry. */
        assert_int_equal(topic_c2g_derive(&c, "prod/" TEAM "/m/+/c2g", buf, sizeof buf), -EPERM);
        assert_int_equal(topic_c2g_derive(&c, "prod/" TEAM "/m/d/+/c2g", buf, sizeof buf), -EPERM);
        assert_int_equal(topic_c2g_derive(&c, "prod/" TEAM "/m/d/" GW "/+", buf, sizeof buf), -EPERM);
        assert_int_equal(topic_c2g_derive(&c, "prod/" TEAM "/m/d/" GW "/+/+/r", buf, sizeof buf), -EPERM);
        assert_string_equal(buf, "prod/" TEAM "/m/d/" GW "/g2c");
}

/* Before stage and team are known: the device's shadow topics only, and a
 * context copied by value (as the session keeps it) guards alike. */
static void test_context_device_only(void **state) {
        TopicContext d, copy, full = ctx();
        char buf[TOPIC_MAX + 1];
        (void) state;

        assert_int_equal(topic_context_init_device(&d, "a/b"), -EINVAL);
        assert_int_equal(topic_context_init_device(&d, ""), -EINVAL);
        assert_int_equal(topic_context_init_device(&d, GW), 0);
        copy = d;
        assert_true(topic_allowed(&copy, TOPIC_ACTION_PUBLISH, "$aws/things/" GW "/shadow/get"));
        assert_true(topic_allowed(&copy, TOPIC_ACTION_SUBSCRIBE, GW "/shadow/get/accepted/trim"));
        assert_false(topic_allowed(&copy, TOPIC_ACTION_PUBLISH, "prod/" TEAM "/gateways/" GW "/g2c"));
        assert_int_equal(topic_build(&copy, TOPIC_SHADOW_UPDATE, buf, sizeof buf), 0);
        assert_string_equal(buf, GW "/shadow/update");

        /* Every topic the full context builds passes its guard in its one direction
         * only, and a topic one byte longer or shorter does not. */
        for (int k = 0; k < _TOPIC_KIND_MAX; k++) {
                TopicAction a = topic_kind_action((TopicKind) k);
                TopicAction other = a == TOPIC_ACTION_PUBLISH ? TOPIC_ACTION_SUBSCRIBE : TOPIC_ACTION_PUBLISH;
                size_t n;

                assert_int_equal(topic_build(&full, (TopicKind) k, buf, sizeof buf), 0);
                assert_true(topic_allowed(&full, a, buf));
                assert_false(topic_allowed(&full, other, buf));
                n = strlen(buf);
                buf[n - 1] = 0;
                if (!strstr(buf, "/m/d/"))
                        assert_false(topic_allowed(&full, a, buf));
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_build_all),        cmocka_unit_test(test_build_small_buffer),
                cmocka_unit_test(test_context),          cmocka_unit_test(test_prefix_parse),
                cmocka_unit_test(test_guard_policy),     cmocka_unit_test(test_guard_one_direction),
                cmocka_unit_test(test_guard_long_topic),
                cmocka_unit_test(test_c2g_derive),
                cmocka_unit_test(test_context_device_only),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
