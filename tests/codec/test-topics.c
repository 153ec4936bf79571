/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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
                /* Every topic we build passes the guard in its direction
                 * (the m/ subtree allows both: the policy does). */
                assert_true(topic_allowed(&c, t[i].action, buf));
                assert_int_equal(topic_allowed(&c, other, buf), strstr(buf, "/m/d/") != NULL);
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

static void test_guard_table(void **state) {
        static const struct {
                TopicAction action;
                const char *topic;
                bool allowed;
        } t[] = {
                /* messages subtree */
                { TOPIC_ACTION_PUBLISH, "prod/" TEAM "/m/d/" GW "/d2c", true },
                { TOPIC_ACTION_SUBSCRIBE, "prod/" TEAM "/m/d/" GW "/c2d", true },
                { TOPIC_ACTION_SUBSCRIBE, "prod/" TEAM "/m/d/" GW "/+/r", true },
                { TOPIC_ACTION_PUBLISH, "prod/" TEAM "/m/d/" GW "/+/r", false },
                { TOPIC_ACTION_SUBSCRIBE, "prod/" TEAM "/m/#", false },
                { TOPIC_ACTION_SUBSCRIBE, "prod/" TEAM "/m/d/a+/r", false },
                { TOPIC_ACTION_PUBLISH, "prod/" TEAM "/m/", false },
                { TOPIC_ACTION_PUBLISH, "prod/" TEAM "/m//x", false },
                /* jobs subtree */
                { TOPIC_ACTION_PUBLISH, "prod/" TEAM "/" GW "/jobs/ble/req", true },
                { TOPIC_ACTION_SUBSCRIBE, "prod/" TEAM "/" GW "/jobs/+", false },
                { TOPIC_ACTION_SUBSCRIBE, "prod/" TEAM "/" GW "/jobs/#", false },
                { TOPIC_ACTION_PUBLISH, "prod/" TEAM "/" GW "/jobs/rcv", false },
                { TOPIC_ACTION_PUBLISH, "prod/" TEAM "/other-gw/jobs/req", false },
                /* other devices, other teams, other stages */
                { TOPIC_ACTION_SUBSCRIBE, "prod/" TEAM "/gateways/other-gw/c2g", false },
                { TOPIC_ACTION_PUBLISH, "prod/" TEAM "/gateways/other-gw/g2c", false },
                { TOPIC_ACTION_PUBLISH, "prod/other-team/gateways/" GW "/g2c", false },
                { TOPIC_ACTION_PUBLISH, "beta/" TEAM "/gateways/" GW "/g2c", false },
                { TOPIC_ACTION_SUBSCRIBE, "$aws/things/other-gw/shadow/get/accepted", false },
                { TOPIC_ACTION_SUBSCRIBE, "other-gw/shadow/get/accepted", false },
                /* wildcards over our own topics */
                { TOPIC_ACTION_SUBSCRIBE, "prod/" TEAM "/gateways/+/c2g", false },
                { TOPIC_ACTION_SUBSCRIBE, "prod/" TEAM "/gateways/" GW "/#", false },
                { TOPIC_ACTION_SUBSCRIBE, "$aws/things/" GW "/shadow/#", false },
                { TOPIC_ACTION_SUBSCRIBE, "#", false },
                { TOPIC_ACTION_SUBSCRIBE, "+/shadow/get/accepted", false },
                /* near misses */
                { TOPIC_ACTION_SUBSCRIBE, "prod/" TEAM "/gateways/" GW "/c2g/", false },
                { TOPIC_ACTION_SUBSCRIBE, "prod/" TEAM "/gateways/" GW "/c2gx", false },
                { TOPIC_ACTION_PUBLISH, "$aws/things/" GW "/shadow/delete", false },
                { TOPIC_ACTION_PUBLISH, "", false },
                { TOPIC_ACTION_PUBLISH, "prod/" TEAM "/gateways/" GW "/g2c\n", false },
                { _TOPIC_ACTION_INVALID, "prod/" TEAM "/gateways/" GW "/g2c", false },
        };
        TopicContext c = ctx();
        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                bool a = topic_allowed(&c, t[i].action, t[i].topic);
                if (a != t[i].allowed)
                        fail_msg("%s %s: expected %s", topic_action_to_string(t[i].action), t[i].topic,
                                 t[i].allowed ? "allowed" : "refused");
        }
        assert_false(topic_allowed(NULL, TOPIC_ACTION_PUBLISH, "x"));
        assert_false(topic_allowed(&c, TOPIC_ACTION_PUBLISH, NULL));
}

static void test_guard_long_topic(void **state) {
        TopicContext c = ctx();
        char t[TOPIC_MAX + 64];
        (void) state;
        int n = snprintf(t, sizeof t, "prod/%s/m/", TEAM);
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
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_build_all),        cmocka_unit_test(test_build_small_buffer),
                cmocka_unit_test(test_context),          cmocka_unit_test(test_prefix_parse),
                cmocka_unit_test(test_guard_table),      cmocka_unit_test(test_guard_long_topic),
                cmocka_unit_test(test_c2g_derive),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
