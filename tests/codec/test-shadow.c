/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "shadow.h"

#define TEAM "bc2732ea-4e39-0eb0-9241-6cf49f793247"

/* A real LTE gateway shadow, trimmed form (AP lteGatewayShadowExample.json). */
static const char lte_gateway_shadow[] =
        "{\n  \"desired\": {\n    \"pairing\": {\n      \"state\": \"paired\",\n      \"topics\": {\n"
        "        \"d2c\": \"prod/" TEAM "/m/d/nrd-327848/d2c\",\n"
        "        \"c2d\": \"prod/" TEAM "/m/d/nrd-327848/c2d\"\n      }\n    },\n"
        "    \"nrfcloud_mqtt_topic_prefix\": \"prod/" TEAM "/\",\n"
        "    \"desiredConnections\": [\n      \"C2:6B:AC:6D:05:A2\"\n    ]\n  },\n"
        "  \"reported\": {\n    \"connection\": {\n      \"status\": \"connected\",\n      \"keepalive\": 120\n    },\n"
        "    \"device\": {\n      \"deviceInfo\": {\n        \"modemFirmware\": \"mfw_nrf9160_1.3.0\",\n"
        "        \"imei\": \"352656101076543\",\n        \"board\": \"apricity_gateway_nrf9160\",\n"
        "        \"appVersion\": \"v1.6.0-rc3-222-g7ec0e7762445\",\n        \"appName\": \"lte-ble-gateway\"\n      },\n"
        "      \"serviceInfo\": {\n        \"fota_v2\": [\n          \"APP\",\n          \"MODEM\",\n          \"BOOT\"\n        ],\n"
        "        \"fota_v2_ble\": true\n      }\n    },\n"
        "    \"statusConnections\": {\n      \"C2:6B:AC:6D:05:A2\": {\n        \"id\": \"C2:6B:AC:6D:05:A2\",\n"
        "        \"status\": {\n          \"connected\": false,\n          \"connecting\": true\n        }\n      }\n    }\n  }\n}\n";

/* The desktop gateway shadow with {"id":...} entries (AP gatewayShadow-example.json). */
static const char gateway_shadow[] =
        "{\"desired\":{\"nrfcloud_mqtt_topic_prefix\":\"prod/0d114c02-9699-4721-85f2-66baa38070d9/\","
        "\"desiredConnections\":[{\"id\":\"EA:78:EA:96:28:22\"}]},\"reported\":{\"connection\":{\"status\":\"disconnected\","
        "\"disconnectReason\":\"CONNECTION_LOST\",\"clientInitiatedDisconnect\":false},\"statusConnections\":{"
        "\"EA:78:EA:96:28:22\":{\"id\":\"EA:78:EA:96:28:22\",\"status\":{\"connected\":true}}}}}";

static ShadowState *accepted(const char *s) {
        ShadowState *st = NULL;
        CodecError e = {};
        int r = shadow_parse_accepted(s, strlen(s), &st, &e);
        if (r < 0)
                fail_msg("r=%d field=%s: %s", r, e.field, e.description);
        return st;
}

static void test_trimmed_real(void **state) {
        _cleanup_(shadow_state_freep) ShadowState *s = accepted(lte_gateway_shadow);
        (void) state;
        assert_int_equal(s->kind, SHADOW_DOC_TRIMMED);
        assert_true(s->has_pairing_state);
        assert_int_equal(s->pairing_state, PAIRING_STATE_PAIRED);
        assert_true(s->has_topic_prefix);
        assert_string_equal(s->topic_prefix, "prod/" TEAM "/");
        assert_string_equal(s->stage, "prod");
        assert_string_equal(s->team, TEAM);
        /* That firmware's shadow had d2c/c2d only: no g2c/c2g given. */
        assert_null(s->pairing_topic_c2g);
        assert_null(s->pairing_topic_g2c);
        assert_true(s->has_desired_connections);
        assert_int_equal(s->n_connections, 1);
        assert_string_equal(s->connections[0].address, "C2:6B:AC:6D:05:A2");
        assert_int_equal(s->connections[0].format, DESIRED_CONNECTION_STRING);
        assert_int_equal(s->n_connections_ignored, 0);
        assert_false(s->has_version);
        assert_true(shadow_state_wants(s, "c2:6b:ac:6d:05:a2"));
        assert_false(shadow_state_wants(s, "C2:6B:AC:6D:05:A3"));
        assert_int_equal(s->n_reported_addresses, 1);
        assert_string_equal(s->reported_addresses[0], "C2:6B:AC:6D:05:A2");
}

static void test_reported_status(void **state) {
        (void) state;
        _cleanup_(shadow_state_freep) ShadowState *s = accepted(
                "{\"state\":{\"reported\":{\"statusConnections\":{\"aa:bb:cc:dd:ee:01\":{\"id\":\"aa:bb:cc:dd:ee:01\"},"
                "\"AA:BB:CC:DD:EE:02\":null,\"garbage\":{},\"AA:BB:CC:DD:EE:03\":{\"status\":{\"connected\":true}}}}}}");
        assert_int_equal(s->n_reported_addresses, 2);
        assert_string_equal(s->reported_addresses[0], "AA:BB:CC:DD:EE:01");
        assert_string_equal(s->reported_addresses[1], "AA:BB:CC:DD:EE:03");
        assert_false(s->has_desired_connections);

        ShadowState *t = NULL;
        CodecError e;
        static const char r1[] = "{\"reported\":[]}", r2[] = "{\"state\":{\"reported\":{\"statusConnections\":[]}}}";
        /* A malformed reported section does not stop pairing. */
        static const char r3[] = "{\"desired\":{\"pairing\":{\"state\":\"paired\"}},\"reported\":7}";
        assert_int_equal(shadow_parse_accepted(r1, strlen(r1), &t, &e), 0);
        assert_int_equal(t->n_reported_addresses, 0);
        t = shadow_state_free(t);
        assert_int_equal(shadow_parse_accepted(r2, strlen(r2), &t, &e), 0);
        assert_int_equal(t->n_reported_addresses, 0);
        t = shadow_state_free(t);
        assert_int_equal(shadow_parse_accepted(r3, strlen(r3), &t, &e), 0);
        assert_int_equal(t->pairing_state, PAIRING_STATE_PAIRED);
        t = shadow_state_free(t);
}

static void test_id_objects(void **state) {
        _cleanup_(shadow_state_freep) ShadowState *s = accepted(gateway_shadow);
        (void) state;
        assert_false(s->has_pairing_state);
        assert_string_equal(s->team, "0d114c02-9699-4721-85f2-66baa38070d9");
        assert_int_equal(s->n_connections, 1);
        assert_string_equal(s->connections[0].address, "EA:78:EA:96:28:22");
        assert_int_equal(s->connections[0].format, DESIRED_CONNECTION_ID_OBJECT);
}

static void test_full_form(void **state) {
        _cleanup_(shadow_state_freep) ShadowState *s = accepted(
                "{\"state\":{\"desired\":{\"pairing\":{\"state\":\"paired\",\"topics\":{\"c2g\":\"prod/" TEAM "/m/d/gw/+/r\","
                "\"g2c\":\"prod/" TEAM "/m/d/gw/g2c\"}},\"nrfcloud_mqtt_topic_prefix\":\"prod/" TEAM "/\","
                "\"desiredConnections\":[{\"address\":{\"address\":\"d6:57:7d:cc:50:17\",\"type\":\"randomStatic\"}},"
                "{\"address\":{\"address\":\"C2:6B:AC:6D:05:A2\"}},{\"address\":{\"address\":\"C2:6B:AC:6D:05:A3\",\"type\":\"weird\"}}]},"
                "\"reported\":{\"desiredConnections\":[\"00:00:00:00:00:01\"]}},"
                "\"metadata\":{\"desired\":{\"pairing\":{\"state\":{\"timestamp\":1600000000}}}},\"version\":812,\"timestamp\":1600000001}");
        (void) state;
        assert_int_equal(s->kind, SHADOW_DOC_FULL);
        assert_true(s->has_version);
        assert_int_equal(s->version, 812);
        assert_int_equal(s->pairing_state, PAIRING_STATE_PAIRED);
        assert_string_equal(s->pairing_topic_c2g, "prod/" TEAM "/m/d/gw/+/r");
        assert_string_equal(s->pairing_topic_g2c, "prod/" TEAM "/m/d/gw/g2c");
        assert_int_equal(s->n_connections, 3);
        assert_string_equal(s->connections[0].address, "D6:57:7D:CC:50:17");
        assert_int_equal(s->connections[0].format, DESIRED_CONNECTION_ADDRESS_OBJECT);
        assert_int_equal(s->connections[0].address_type, BT_ADDR_TYPE_RANDOM_STATIC);
        assert_int_equal(s->connections[1].address_type, BT_ADDR_TYPE_UNSPECIFIED);
        assert_int_equal(s->connections[2].address_type, BT_ADDR_TYPE_UNSPECIFIED);
        /* reported.desiredConnections is not what the gateway should connect. */
        assert_false(shadow_state_wants(s, "00:00:00:00:00:01"));
}

static void test_pairing_states(void **state) {
        static const struct {
                const char *json;
                bool has;
                PairingState st;
        } t[] = {
                { "{\"desired\":{\"pairing\":{\"state\":\"not_associated\",\"topics\":null,\"config\":null},\"nrfcloud_mqtt_topic_prefix\":null}}",
                  true, PAIRING_STATE_NOT_ASSOCIATED },
                { "{\"desired\":{\"pairing\":{\"state\":\"paired\"}}}", true, PAIRING_STATE_PAIRED },
                { "{\"desired\":{\"pairing\":{\"state\":\"pattern_wait\"}}}", true, PAIRING_STATE_PATTERN_WAIT },
                { "{\"desired\":{\"pairing\":{\"state\":\"initiate\"}}}", true, PAIRING_STATE_INITIATE },
                { "{\"desired\":{\"pairing\":{\"state\":\"pattern_mismatch\"}}}", true, PAIRING_STATE_PATTERN_MISMATCH },
                { "{\"desired\":{\"pairing\":{\"state\":\"timeout\"}}}", true, PAIRING_STATE_TIMEOUT },
                { "{\"desired\":{\"pairing\":{\"state\":\"Paired\"}}}", true, PAIRING_STATE_UNKNOWN },
                { "{\"desired\":{\"pairing\":{\"state\":null}}}", false, 0 },
                { "{\"desired\":{\"pairing\":null}}", false, 0 },
                { "{\"desired\":{}}", false, 0 },
                { "{\"reported\":{\"pairing\":{\"state\":\"paired\"}}}", false, 0 },
                { "{}", false, 0 },
                { "{\"state\":{\"desired\":{\"pairing\":{\"state\":\"not_associated\"}}}}", true, PAIRING_STATE_NOT_ASSOCIATED },
                { "{\"state\":{\"reported\":{}}}", false, 0 },
        };
        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                _cleanup_(shadow_state_freep) ShadowState *s = accepted(t[i].json);
                if (s->has_pairing_state != t[i].has || (t[i].has && s->pairing_state != t[i].st))
                        fail_msg("case %zu %s: has=%d state=%d", i, t[i].json, s->has_pairing_state, s->pairing_state);
                assert_false(s->has_topic_prefix);
                assert_false(s->has_desired_connections);
        }
}

static void test_connections_formats(void **state) {
        (void) state;
        /* All three formats mixed, duplicates in other spellings, bad entries ignored and counted. */
        _cleanup_(shadow_state_freep) ShadowState *s = accepted(
                "{\"desired\":{\"desiredConnections\":[\"aa:bb:cc:dd:ee:01\",{\"id\":\"AA:BB:CC:DD:EE:02\"},"
                "{\"address\":{\"address\":\"AA:BB:CC:DD:EE:03\",\"type\":\"public\"}},\"AA:BB:CC:DD:EE:01\","
                "{\"id\":\"aa:bb:cc:dd:ee:02\"},\"not an address\",17,null,{\"id\":5},{\"address\":\"AA:BB:CC:DD:EE:04\"},"
                "{},[\"AA:BB:CC:DD:EE:05\"],\"AA:BB:CC:DD:EE:06 (random)\"]}}");
        assert_int_equal(s->n_connections, 3);
        assert_string_equal(s->connections[0].address, "AA:BB:CC:DD:EE:01");
        assert_int_equal(s->connections[0].format, DESIRED_CONNECTION_STRING);
        assert_string_equal(s->connections[1].address, "AA:BB:CC:DD:EE:02");
        assert_int_equal(s->connections[1].format, DESIRED_CONNECTION_ID_OBJECT);
        assert_string_equal(s->connections[2].address, "AA:BB:CC:DD:EE:03");
        assert_int_equal(s->connections[2].address_type, BT_ADDR_TYPE_PUBLIC);
        assert_int_equal(s->n_connections_ignored, 8);

        /* Empty and null: an empty set, as opposed to absent. */
        _cleanup_(shadow_state_freep) ShadowState *e1 = accepted("{\"desired\":{\"desiredConnections\":[]}}");
        assert_true(e1->has_desired_connections);
        assert_int_equal(e1->n_connections, 0);
        _cleanup_(shadow_state_freep) ShadowState *e2 = accepted("{\"desired\":{\"desiredConnections\":null}}");
        assert_true(e2->has_desired_connections);
        assert_int_equal(e2->n_connections, 0);
}

static void test_connections_cap(void **state) {
        char buf[8192], *p = buf;
        (void) state;
        p += sprintf(p, "{\"desired\":{\"desiredConnections\":[");
        for (int i = 0; i < SHADOW_CONNECTIONS_MAX + 5; i++)
                p += sprintf(p, "%s\"AA:BB:CC:DD:%02X:%02X\"", i ? "," : "", i >> 8, i & 0xff);
        strcpy(p, "]}}");
        _cleanup_(shadow_state_freep) ShadowState *s = accepted(buf);
        assert_int_equal(s->n_connections, SHADOW_CONNECTIONS_MAX);
        /* Addresses over the cap are not malformed entries: counted as desired. */
        assert_int_equal(s->n_connections_ignored, 0);
        assert_int_equal(s->n_connections_desired, SHADOW_CONNECTIONS_MAX + 5);
}

/* A delta of n distinct addresses (each named twice), as a JSON text of about 40 * n bytes. */
static char *big_delta(unsigned n) {
        size_t size = 64 + (size_t) n * 2 * 21;
        char *buf = malloc(size), *p = buf;
        assert_non_null(buf);
        p += sprintf(p, "{\"version\":9,\"timestamp\":1,\"state\":{\"desiredConnections\":[");
        for (unsigned k = 0; k < 2; k++)
                for (unsigned i = 0; i < n; i++)
                        p += sprintf(p, "%s\"AA:BB:CC:%02X:%02X:%02X\"", k + i ? "," : "", i >> 16, (i >> 8) & 0xff,
                                     i & 0xff);
        strcpy(p, "]}}");
        assert_true(strlen(buf) < size);
        return buf;
}

/* 2 500 addresses named twice (100 KB): parsed under the shadow bound, the
 * first SHADOW_CONNECTIONS_MAX kept in order, every distinct one counted. */
static void test_connections_5000_entries(void **state) {
        _cleanup_free_ char *d = big_delta(2500);
        _cleanup_(shadow_state_freep) ShadowState *s = NULL;
        CodecError e = {};
        (void) state;

        assert_true(strlen(d) > 64 * 1024);
        assert_int_equal(shadow_parse_delta(d, strlen(d), &s, &e), 0);
        assert_int_equal(s->n_connections, SHADOW_CONNECTIONS_MAX);
        assert_int_equal(s->n_connections_desired, 2500);
        assert_int_equal(s->n_connections_ignored, 0);
        assert_string_equal(s->connections[0].address, "AA:BB:CC:00:00:00");
        assert_string_equal(s->connections[SHADOW_CONNECTIONS_MAX - 1].address, "AA:BB:CC:00:00:63");
}

/* 10 000 entries (200 KB): over the shadow bound, refused by size. */
static void test_connections_10000_entries(void **state) {
        _cleanup_free_ char *d = big_delta(5000);
        _cleanup_(shadow_state_freep) ShadowState *s = NULL;
        CodecError e = {};
        (void) state;

        assert_true(strlen(d) > SHADOW_DOC_MAX);
        assert_int_equal(shadow_parse_delta(d, strlen(d), &s, &e), -EMSGSIZE);
}

static void test_delta(void **state) {
        static const char d1[] = "{\"version\":813,\"timestamp\":1600000100,\"state\":{\"desiredConnections\":"
                                 "[\"C2:6B:AC:6D:05:A2\",\"D6:57:7D:CC:50:17\"]},\"metadata\":{\"desiredConnections\":[{\"timestamp\":1},"
                                 "{\"timestamp\":1}]}}";
        ShadowState *s = NULL;
        CodecError e;
        char *out = NULL;
        (void) state;

        assert_int_equal(shadow_parse_delta(d1, strlen(d1), &s, &e), 0);
        assert_int_equal(s->kind, SHADOW_DOC_DELTA);
        assert_int_equal(s->version, 813);
        assert_int_equal(s->n_connections, 2);
        assert_string_equal(s->connections[1].address, "D6:57:7D:CC:50:17");
        assert_false(s->has_pairing_state);
        assert_int_equal(shadow_build_delta_accept(s, &out), 0);
        assert_string_equal(out, "{\"state\":{\"reported\":{\"desiredConnections\":[\"C2:6B:AC:6D:05:A2\",\"D6:57:7D:CC:50:17\"]}}}");
        free(out);
        s = shadow_state_free(s);

        /* The initial pairing delta carries the association under "state". */
        static const char d2[] = "{\"version\":2,\"timestamp\":1,\"state\":{\"pairing\":{\"state\":\"paired\",\"topics\":"
                                 "{\"c2g\":\"prod/" TEAM "/gateways/gw/c2g\"}},\"nrfcloud_mqtt_topic_prefix\":\"prod/" TEAM "/\"}}";
        assert_int_equal(shadow_parse_delta(d2, strlen(d2), &s, &e), 0);
        assert_int_equal(s->pairing_state, PAIRING_STATE_PAIRED);
        assert_string_equal(s->pairing_topic_c2g, "prod/" TEAM "/gateways/gw/c2g");
        assert_string_equal(s->team, TEAM);
        assert_false(s->has_desired_connections);
        s = shadow_state_free(s);

        /* A delta must have a state object; the accepted parser's output cannot be echoed. */
        assert_int_equal(shadow_parse_delta("{\"version\":1}", 13, &s, &e), -EBADMSG);
        assert_string_equal(e.field, "state");
        assert_int_equal(shadow_parse_delta("{\"state\":[]}", 12, &s, &e), -EBADMSG);
        assert_string_equal(e.field, "state");
        assert_null(s);
        s = accepted(gateway_shadow);
        assert_int_equal(shadow_build_delta_accept(s, &out), -EINVAL);
        shadow_state_free(s);
}

static void test_beacons(void **state) {
        /* gateway-common reads desired.beacons as a flat list of addresses; the other two formats of
         * desiredConnections are taken too, duplicates and what is not an address are dropped. */
        static const char doc[] = "{\"desired\":{\"desiredConnections\":[\"C2:6B:AC:6D:05:A2\"],\"beacons\":"
                                  "[\"c0:ff:ee:00:00:b1\",{\"id\":\"C0:FF:EE:00:00:B2\"},"
                                  "{\"address\":{\"address\":\"C0:FF:EE:00:00:B3\",\"type\":\"random\"}},"
                                  "\"C0:FF:EE:00:00:B1\",\"not an address\",42,null]},\"reported\":{}}";
        static const char delta_empty[] = "{\"version\":9,\"timestamp\":1,\"state\":{\"beacons\":[]}}";
        static const char delta_null[] = "{\"version\":9,\"timestamp\":1,\"state\":{\"beacons\":null}}";
        static const char delta_other[] = "{\"version\":9,\"timestamp\":1,\"state\":{\"desiredConnections\":[]}}";
        static const char bad[] = "{\"desired\":{\"pairing\":{\"state\":\"paired\"},\"beacons\":\"C0:FF:EE:00:00:B1\"}}";
        ShadowState *s = accepted(doc);
        CodecError e;
        char *out = NULL;
        (void) state;

        assert_true(s->has_beacons);
        assert_false(s->beacons_malformed);
        assert_int_equal(s->n_beacons, 3);
        assert_string_equal(s->beacons[0], "C0:FF:EE:00:00:B1");
        assert_string_equal(s->beacons[1], "C0:FF:EE:00:00:B2");
        assert_string_equal(s->beacons[2], "C0:FF:EE:00:00:B3");
        assert_int_equal(s->n_beacons_ignored, 3);
        /* Beacons are not connections. */
        assert_int_equal(s->n_connections, 1);
        assert_false(shadow_state_wants(s, "C0:FF:EE:00:00:B1"));
        s = shadow_state_free(s);

        /* The list emptied by a delta ([] or null), echoed as received; a delta without it keeps the set. */
        assert_int_equal(shadow_parse_delta(delta_empty, strlen(delta_empty), &s, &e), 0);
        assert_true(s->has_beacons);
        assert_int_equal(s->n_beacons, 0);
        assert_int_equal(shadow_build_delta_accept(s, &out), 0);
        assert_string_equal(out, "{\"state\":{\"reported\":{\"beacons\":[]}}}");
        free(out);
        s = shadow_state_free(s);
        assert_int_equal(shadow_parse_delta(delta_null, strlen(delta_null), &s, &e), 0);
        assert_true(s->has_beacons);
        assert_int_equal(s->n_beacons, 0);
        s = shadow_state_free(s);
        assert_int_equal(shadow_parse_delta(delta_other, strlen(delta_other), &s, &e), 0);
        assert_false(s->has_beacons);
        s = shadow_state_free(s);

        /* Not an array: ignored and flagged, the rest of the document still counts. */
        s = accepted(bad);
        assert_false(s->has_beacons);
        assert_true(s->beacons_malformed);
        assert_int_equal(s->pairing_state, PAIRING_STATE_PAIRED);
        s = shadow_state_free(s);
}

static void test_beacons_cap(void **state) {
        size_t size = 64 + 2 * SHADOW_BEACONS_MAX * 24;
        char *doc = malloc(size), *p = doc;
        ShadowState *s;
        (void) state;

        assert_non_null(doc);
        p += sprintf(p, "{\"desired\":{\"beacons\":[");
        for (unsigned i = 0; i < 2 * SHADOW_BEACONS_MAX; i++)
                p += sprintf(p, "%s\"C0:FF:EE:00:%02X:%02X\"", i ? "," : "", i >> 8, i & 0xff);
        sprintf(p, "]}}");
        s = accepted(doc);
        assert_int_equal(s->n_beacons, SHADOW_BEACONS_MAX);
        assert_string_equal(s->beacons[0], "C0:FF:EE:00:00:00");
        assert_string_equal(s->beacons[SHADOW_BEACONS_MAX - 1], "C0:FF:EE:00:00:63");
        shadow_state_free(s);
        free(doc);
}

static void test_transform(void **state) {
        ShadowState *s = NULL;
        CodecError e;
        char *out = NULL;
        (void) state;

        static const char ok[] = "{\"tf\":[\"C2:6B:AC:6D:05:A2\",{\"id\":\"EA:78:EA:96:28:22\"}]}";
        assert_int_equal(shadow_parse_transform(ok, strlen(ok), &s, &e), 0);
        assert_int_equal(s->kind, SHADOW_DOC_TRANSFORM);
        assert_int_equal(s->n_connections, 2);
        assert_true(s->has_desired_connections);
        s = shadow_state_free(s);

        assert_int_equal(shadow_parse_transform("{\"tf\":null}", 11, &s, &e), 0);
        assert_int_equal(s->n_connections, 0);
        assert_true(s->has_desired_connections);
        s = shadow_state_free(s);

        static const char err[] = "{\"err\":400,\"position\":12,\"message\":\"path not found\"}";
        assert_int_equal(shadow_parse_transform(err, strlen(err), &s, &e), -EREMOTEIO);
        assert_string_equal(e.field, "err");
        assert_non_null(strstr(e.description, "400"));
        assert_non_null(strstr(e.description, "path not found"));
        assert_int_equal(shadow_parse_transform("{\"tf\":{}}", 9, &s, &e), -EBADMSG);
        assert_string_equal(e.field, "tf");
        assert_int_equal(shadow_parse_transform("{}", 2, &s, &e), -EBADMSG);
        assert_null(s);

        assert_int_equal(shadow_build_transform_request(SHADOW_TRANSFORM_MAX_LEN, &out), 0);
        assert_string_equal(out, "{\"t\":\"state.desired.desiredConnections\",\"l\":1024}");
        free(out);
        assert_int_equal(shadow_build_transform_request(0, &out), -EINVAL);
        assert_int_equal(shadow_build_transform_request(1793, &out), -EINVAL);
}

static void test_malformed(void **state) {
        static const struct {
                const char *in;
                int r;
                const char *field;
        } t[] = {
                { "", -EBADMSG, "" },
                { "[]", -EBADMSG, "" },
                { "{\"desired\":", -EBADMSG, "" },
                { "{\"desired\":{},\"desired\":{}}", -EBADMSG, "" },
                { "{\"desired\":[]}", -EBADMSG, "desired" },
                { "{\"state\":1}", -EBADMSG, "state" },
                { "{\"state\":{\"desired\":\"x\"}}", -EBADMSG, "state.desired" },
                { "{\"desired\":{\"pairing\":[]}}", -EBADMSG, "desired.pairing" },
                { "{\"desired\":{\"pairing\":{\"state\":1}}}", -EBADMSG, "desired.pairing.state" },
                { "{\"desired\":{\"pairing\":{\"topics\":\"x\"}}}", -EBADMSG, "desired.pairing.topics" },
                { "{\"desired\":{\"pairing\":{\"topics\":{\"c2g\":7}}}}", -EBADMSG, "desired.pairing.topics.c2g" },
                { "{\"desired\":{\"pairing\":{\"topics\":{\"g2c\":\"\"}}}}", -EBADMSG, "desired.pairing.topics.g2c" },
                { "{\"desired\":{\"nrfcloud_mqtt_topic_prefix\":\"prod\"}}", -EBADMSG, "desired.nrfcloud_mqtt_topic_prefix" },
                { "{\"desired\":{\"nrfcloud_mqtt_topic_prefix\":\"prod/a/b/\"}}", -EBADMSG, "desired.nrfcloud_mqtt_topic_prefix" },
                { "{\"desired\":{\"nrfcloud_mqtt_topic_prefix\":\"prod/#/\"}}", -EBADMSG, "desired.nrfcloud_mqtt_topic_prefix" },
                { "{\"desired\":{\"nrfcloud_mqtt_topic_prefix\":5}}", -EBADMSG, "desired.nrfcloud_mqtt_topic_prefix" },
                { "{\"state\":{\"desired\":{\"nrfcloud_mqtt_topic_prefix\":\"x/\"}}}", -EBADMSG, "state.desired.nrfcloud_mqtt_topic_prefix" },
                { "{\"desired\":{\"desiredConnections\":\"AA:BB:CC:DD:EE:FF\"}}", -EBADMSG, "desired.desiredConnections" },
                { "{\"desired\":{\"desiredConnections\":{}}}", -EBADMSG, "desired.desiredConnections" },
                { "{\"version\":-1}", -ERANGE, "version" },
                { "{\"version\":\"1\"}", -EBADMSG, "version" },
        };
        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                ShadowState *s = NULL;
                CodecError e = {};
                int r = shadow_parse_accepted(t[i].in, strlen(t[i].in), &s, &e);
                if (r != t[i].r || !streq(e.field, t[i].field))
                        fail_msg("case %zu %s: r=%d field='%s' (%s)", i, t[i].in, r, e.field, e.description);
                assert_null(s);
        }

        /* Depth and size caps. */
        char deep[200];
        size_t n = 0;
        for (int i = 0; i < SHADOW_DEPTH_MAX + 1; i++)
                deep[n++] = '[';
        deep[n] = 0;
        ShadowState *s = NULL;
        CodecError e;
        char *doc = malloc(SHADOW_DOC_MAX + 1);
        assert_non_null(doc);
        int k = snprintf(doc, SHADOW_DOC_MAX + 1, "{\"desired\":{\"x\":%s", deep);
        assert_int_equal(shadow_parse_accepted(doc, (size_t) k, &s, &e), -ELOOP);
        memset(doc, ' ', SHADOW_DOC_MAX + 1);
        memcpy(doc, "{}", 2);
        assert_int_equal(shadow_parse_accepted(doc, SHADOW_DOC_MAX + 1, &s, &e), -EMSGSIZE);
        assert_int_equal(shadow_parse_accepted(doc, SHADOW_DOC_MAX, &s, &e), 0);
        s = shadow_state_free(s);
        free(doc);
}

static void test_build_pairing(void **state) {
        char *out = NULL;
        (void) state;
        assert_int_equal(shadow_build_pairing_paired("prod/" TEAM "/", "prod/" TEAM "/gateways/gw/g2c",
                                                     "prod/" TEAM "/gateways/gw/c2g", 1200, &out), 0);
        assert_string_equal(out, "{\"state\":{\"reported\":{\"pairing\":{\"state\":\"paired\",\"config\":null,\"topics\":"
                                 "{\"g2c\":\"prod/" TEAM "/gateways/gw/g2c\",\"c2g\":\"prod/" TEAM "/gateways/gw/c2g\"}},"
                                 "\"connection\":{\"keepalive\":1200},\"nrfcloud_mqtt_topic_prefix\":\"prod/" TEAM "/\","
                                 "\"pairingStatus\":null}}}");
        free(out);
        out = NULL;
        assert_int_equal(shadow_build_pairing_paired("prod", "a", "b", 1200, &out), -EINVAL);
        assert_int_equal(shadow_build_pairing_paired("prod/t/", "a/+/r", "b", 1200, &out), -EINVAL);
        assert_int_equal(shadow_build_pairing_paired("prod/t/", "a", "b", 0, &out), -EINVAL);
        assert_null(out);

        assert_int_equal(shadow_build_pairing_not_associated(&out), 0);
        assert_string_equal(out, "{\"state\":{\"reported\":{\"pairing\":{\"state\":\"not_associated\",\"topics\":null,"
                                 "\"config\":null},\"nrfcloud_mqtt_topic_prefix\":null,\"connection\":{\"keepalive\":null},"
                                 "\"pairingStatus\":null,\"stage\":null}}}");
        free(out);
}

static void test_build_status_connections(void **state) {
        char *out = NULL;
        (void) state;
        ShadowConnectionStatus v[] = {
                { "c2:6b:ac:6d:05:a2", CONNECTION_STATUS_CONNECTING },
                { "D6:57:7D:CC:50:17", CONNECTION_STATUS_CONNECTED },
                { "EA:78:EA:96:28:22", CONNECTION_STATUS_DISCONNECTED },
                { "00:11:22:33:44:55", CONNECTION_STATUS_REMOVED },
        };
        assert_int_equal(shadow_build_status_connections(v, 1, &out), 0);
        /* The layout lte-gateway reports (spec §3.2). */
        assert_string_equal(out, "{\"state\":{\"reported\":{\"statusConnections\":{\"C2:6B:AC:6D:05:A2\":{\"id\":"
                                 "\"C2:6B:AC:6D:05:A2\",\"status\":{\"connected\":false,\"connecting\":true}}}}}}");
        free(out);
        assert_int_equal(shadow_build_status_connections(v, ELEMENTSOF(v), &out), 0);
        assert_string_equal(out, "{\"state\":{\"reported\":{\"statusConnections\":{"
                                 "\"C2:6B:AC:6D:05:A2\":{\"id\":\"C2:6B:AC:6D:05:A2\",\"status\":{\"connected\":false,\"connecting\":true}},"
                                 "\"D6:57:7D:CC:50:17\":{\"id\":\"D6:57:7D:CC:50:17\",\"status\":{\"connected\":true,\"connecting\":false}},"
                                 "\"EA:78:EA:96:28:22\":{\"id\":\"EA:78:EA:96:28:22\",\"status\":{\"connected\":false,\"connecting\":false}},"
                                 "\"00:11:22:33:44:55\":null}}}}");
        free(out);
        out = NULL;
        ShadowConnectionStatus bad[] = { { "nope", CONNECTION_STATUS_CONNECTED } };
        assert_int_equal(shadow_build_status_connections(bad, 1, &out), -EINVAL);
        ShadowConnectionStatus bad2[] = { { "00:11:22:33:44:55", _CONNECTION_STATUS_MAX } };
        assert_int_equal(shadow_build_status_connections(bad2, 1, &out), -EINVAL);
        assert_int_equal(shadow_build_status_connections(v, 0, &out), -EINVAL);
        assert_null(out);
}

static void test_build_device_report(void **state) {
        char *out = NULL;
        ShadowDeviceInfo info = { .modem_firmware = "mfw_nrf9160_1.3.0", .imei = "352656101076543",
                                  .app_version = "0.1.0", .app_name = "nrfcloud-gateway" };
        ShadowServiceInfo svc = { .fota_types = 1u << FOTA_TYPE_APP | 1u << FOTA_TYPE_MODEM | 1u << FOTA_TYPE_BOOT,
                                  .fota_ble = true };
        (void) state;

        assert_int_equal(shadow_build_device_report(&info, &svc, &out), 0);
        assert_string_equal(out, "{\"state\":{\"reported\":{\"device\":{\"deviceInfo\":{\"modemFirmware\":\"mfw_nrf9160_1.3.0\","
                                 "\"imei\":\"352656101076543\",\"appVersion\":\"0.1.0\",\"appName\":\"nrfcloud-gateway\"},"
                                 "\"serviceInfo\":{\"fota_v2\":[\"APP\",\"MODEM\",\"BOOT\"],\"fota_v2_ble\":true}}}}}");
        free(out);
        svc = (ShadowServiceInfo) { .fota_types = 1u << FOTA_TYPE_MDM_FULL | 1u << FOTA_TYPE_BLE_BOOT };
        assert_int_equal(shadow_build_device_report(NULL, &svc, &out), 0);
        assert_string_equal(out, "{\"state\":{\"reported\":{\"device\":{\"serviceInfo\":{\"fota_v2\":[\"MDM_FULL\"],\"fota_v2_ble\":false}}}}}");
        free(out);
        out = NULL;
        assert_int_equal(shadow_build_device_report(NULL, NULL, &out), -EINVAL);
        svc.fota_types = 1u << 9;
        assert_int_equal(shadow_build_device_report(NULL, &svc, &out), -EINVAL);
        info.board = "\xff";
        assert_int_equal(shadow_build_device_report(&info, NULL, &out), -EINVAL);
        assert_null(out);
}

static void test_build_desired_connections(void **state) {
        const char *a[] = { "c2:6b:ac:6d:05:a2", "D6:57:7D:CC:50:17" };
        char *out = NULL;
        (void) state;

        assert_int_equal(shadow_build_desired_connections(a, 2, DESIRED_CONNECTION_STRING, &out), 0);
        assert_string_equal(out, "{\"state\":{\"desired\":{\"desiredConnections\":[\"C2:6B:AC:6D:05:A2\",\"D6:57:7D:CC:50:17\"]}}}");
        free(out);
        assert_int_equal(shadow_build_desired_connections(a, 1, DESIRED_CONNECTION_ID_OBJECT, &out), 0);
        assert_string_equal(out, "{\"state\":{\"desired\":{\"desiredConnections\":[{\"id\":\"C2:6B:AC:6D:05:A2\"}]}}}");
        free(out);
        assert_int_equal(shadow_build_desired_connections(a, 1, DESIRED_CONNECTION_ADDRESS_OBJECT, &out), 0);
        assert_string_equal(out, "{\"state\":{\"desired\":{\"desiredConnections\":[{\"address\":{\"address\":\"C2:6B:AC:6D:05:A2\"}}]}}}");
        /* What we write, we read back (it is a full-form document). */
        ShadowState *s = NULL;
        CodecError e;
        assert_int_equal(shadow_parse_accepted(out, strlen(out), &s, &e), 0);
        assert_int_equal(s->n_connections, 1);
        assert_string_equal(s->connections[0].address, "C2:6B:AC:6D:05:A2");
        assert_int_equal(s->connections[0].format, DESIRED_CONNECTION_ADDRESS_OBJECT);
        free(out);
        s = shadow_state_free(s);
        assert_int_equal(shadow_build_desired_connections(NULL, 0, DESIRED_CONNECTION_STRING, &out), 0);
        assert_string_equal(out, "{\"state\":{\"desired\":{\"desiredConnections\":null}}}");
        free(out);
        out = NULL;
        const char *bad[] = { "nope" };
        assert_int_equal(shadow_build_desired_connections(bad, 1, DESIRED_CONNECTION_STRING, &out), -EINVAL);
        assert_int_equal(shadow_build_desired_connections(a, 1, _DESIRED_CONNECTION_FORMAT_MAX, &out), -EINVAL);
        assert_null(out);
}

static void test_tables(void **state) {
        (void) state;
        for (int i = 0; i < _PAIRING_STATE_MAX; i++)
                if (i != PAIRING_STATE_UNKNOWN)
                        assert_int_equal(pairing_state_from_string(pairing_state_to_string(i)), i);
        assert_int_equal(pairing_state_from_string("unknown"), PAIRING_STATE_UNKNOWN);
        assert_int_equal(pairing_state_from_string(NULL), _PAIRING_STATE_INVALID);
        assert_string_equal(shadow_doc_kind_to_string(SHADOW_DOC_TRANSFORM), "transform");
        assert_string_equal(desired_connection_format_to_string(DESIRED_CONNECTION_ID_OBJECT), "id-object");
        assert_string_equal(connection_status_to_string(CONNECTION_STATUS_CONNECTING), "connecting");
        assert_null(connection_status_to_string(_CONNECTION_STATUS_MAX));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_trimmed_real),
                cmocka_unit_test(test_id_objects),
                cmocka_unit_test(test_reported_status),
                cmocka_unit_test(test_full_form),
                cmocka_unit_test(test_pairing_states),
                cmocka_unit_test(test_connections_formats),
                cmocka_unit_test(test_connections_cap),
                cmocka_unit_test(test_connections_5000_entries),
                cmocka_unit_test(test_connections_10000_entries),
                cmocka_unit_test(test_delta),
                cmocka_unit_test(test_transform),
                cmocka_unit_test(test_beacons),
                cmocka_unit_test(test_beacons_cap),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_build_pairing),
                cmocka_unit_test(test_build_status_connections),
                cmocka_unit_test(test_build_device_report),
                cmocka_unit_test(test_build_desired_connections),
                cmocka_unit_test(test_tables),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
