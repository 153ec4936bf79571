/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "topics.h"

static const struct {
        const char *name;
        TopicBase base;
        const char *suffix;
        TopicAction action;
} topic_table[_TOPIC_KIND_MAX] = {
        [TOPIC_AWS_SHADOW_GET] = { "aws-shadow-get", TOPIC_BASE_AWS_THING, "/shadow/get", TOPIC_ACTION_PUBLISH },
        [TOPIC_AWS_SHADOW_GET_ACCEPTED] = { "aws-shadow-get-accepted", TOPIC_BASE_AWS_THING, "/shadow/get/accepted", TOPIC_ACTION_SUBSCRIBE },
        [TOPIC_AWS_SHADOW_GET_REJECTED] = { "aws-shadow-get-rejected", TOPIC_BASE_AWS_THING, "/shadow/get/rejected", TOPIC_ACTION_SUBSCRIBE },
        [TOPIC_AWS_SHADOW_UPDATE] = { "aws-shadow-update", TOPIC_BASE_AWS_THING, "/shadow/update", TOPIC_ACTION_PUBLISH },
        [TOPIC_AWS_SHADOW_UPDATE_ACCEPTED] = { "aws-shadow-update-accepted", TOPIC_BASE_AWS_THING, "/shadow/update/accepted", TOPIC_ACTION_SUBSCRIBE },
        [TOPIC_AWS_SHADOW_UPDATE_REJECTED] = { "aws-shadow-update-rejected", TOPIC_BASE_AWS_THING, "/shadow/update/rejected", TOPIC_ACTION_SUBSCRIBE },
        [TOPIC_AWS_SHADOW_UPDATE_DELTA] = { "aws-shadow-update-delta", TOPIC_BASE_AWS_THING, "/shadow/update/delta", TOPIC_ACTION_SUBSCRIBE },
        [TOPIC_SHADOW_GET_ACCEPTED] = { "shadow-get-accepted", TOPIC_BASE_DEVICE, "/shadow/get/accepted", TOPIC_ACTION_SUBSCRIBE },
        [TOPIC_SHADOW_GET_TRIM] = { "shadow-get-trim", TOPIC_BASE_DEVICE, "/shadow/get/trim", TOPIC_ACTION_PUBLISH },
        [TOPIC_SHADOW_GET_ACCEPTED_TRIM] = { "shadow-get-accepted-trim", TOPIC_BASE_DEVICE, "/shadow/get/accepted/trim", TOPIC_ACTION_SUBSCRIBE },
        [TOPIC_SHADOW_GET_REJECTED] = { "shadow-get-rejected", TOPIC_BASE_DEVICE, "/shadow/get/rejected", TOPIC_ACTION_SUBSCRIBE },
        [TOPIC_SHADOW_UPDATE] = { "shadow-update", TOPIC_BASE_DEVICE, "/shadow/update", TOPIC_ACTION_PUBLISH },
        [TOPIC_SHADOW_UPDATE_DELTA_FULL] = { "shadow-update-delta-full", TOPIC_BASE_DEVICE, "/shadow/update/delta/full", TOPIC_ACTION_SUBSCRIBE },
        [TOPIC_SHADOW_UPDATE_DELTA_FULL_ERR] = { "shadow-update-delta-full-err", TOPIC_BASE_DEVICE, "/shadow/update/delta/full/err", TOPIC_ACTION_SUBSCRIBE },
        [TOPIC_SHADOW_GET_TF] = { "shadow-get-tf", TOPIC_BASE_DEVICE, "/shadow/get/tf", TOPIC_ACTION_PUBLISH },
        [TOPIC_SHADOW_GET_ACCEPTED_TF] = { "shadow-get-accepted-tf", TOPIC_BASE_DEVICE, "/shadow/get/accepted/tf", TOPIC_ACTION_SUBSCRIBE },
        [TOPIC_C2G] = { "c2g", TOPIC_BASE_GATEWAY, "/c2g", TOPIC_ACTION_SUBSCRIBE },
        [TOPIC_G2C] = { "g2c", TOPIC_BASE_GATEWAY, "/g2c", TOPIC_ACTION_PUBLISH },
        [TOPIC_JOBS_REQ] = { "jobs-req", TOPIC_BASE_JOBS, "/jobs/req", TOPIC_ACTION_PUBLISH },
        [TOPIC_JOBS_RCV] = { "jobs-rcv", TOPIC_BASE_JOBS, "/jobs/rcv", TOPIC_ACTION_SUBSCRIBE },
        [TOPIC_JOBS_UPDATE] = { "jobs-update", TOPIC_BASE_JOBS, "/jobs/update", TOPIC_ACTION_PUBLISH },
        [TOPIC_JOBS_BLE_REQ] = { "jobs-ble-req", TOPIC_BASE_JOBS, "/jobs/ble/req", TOPIC_ACTION_PUBLISH },
        [TOPIC_JOBS_BLE_RCV] = { "jobs-ble-rcv", TOPIC_BASE_JOBS, "/jobs/ble/rcv", TOPIC_ACTION_SUBSCRIBE },
        [TOPIC_JOBS_BLE_UPDATE] = { "jobs-ble-update", TOPIC_BASE_JOBS, "/jobs/ble/update", TOPIC_ACTION_PUBLISH },
        [TOPIC_MSG_D2C] = { "msg-d2c", TOPIC_BASE_MESSAGES, "/d2c", TOPIC_ACTION_PUBLISH },
        [TOPIC_MSG_D2C_BULK] = { "msg-d2c-bulk", TOPIC_BASE_MESSAGES, "/d2c/bulk", TOPIC_ACTION_PUBLISH },
        [TOPIC_MSG_C2D] = { "msg-c2d", TOPIC_BASE_MESSAGES, "/c2d", TOPIC_ACTION_SUBSCRIBE },
};

static const char *const topic_action_table[_TOPIC_ACTION_MAX] = {
        [TOPIC_ACTION_PUBLISH] = "publish",
        [TOPIC_ACTION_SUBSCRIBE] = "subscribe",
};

const char *topic_kind_to_string(TopicKind k) {
        if (k < 0 || k >= _TOPIC_KIND_MAX)
                return NULL;
        return topic_table[k].name;
}

TopicKind topic_kind_from_string(const char *s) {
        if (!s)
                return _TOPIC_KIND_INVALID;
        for (int k = 0; k < _TOPIC_KIND_MAX; k++)
                if (streq(topic_table[k].name, s))
                        return (TopicKind) k;
        return _TOPIC_KIND_INVALID;
}

const char *topic_action_to_string(TopicAction a) {
        if (a < 0 || a >= _TOPIC_ACTION_MAX)
                return NULL;
        return topic_action_table[a];
}

TopicAction topic_kind_action(TopicKind k) {
        if (k < 0 || k >= _TOPIC_KIND_MAX)
                return _TOPIC_ACTION_INVALID;
        return topic_table[k].action;
}

/* One topic level of ours: no separators, wildcards or control characters. */
/* One topic level of ours: non-empty, bounded, no wildcard, separator or
 * control character, and not starting with '$' ("$aws" and friends are
 * reserved by AWS IoT). */
static bool level_valid(const char *s, size_t max) {
        size_t n = strlen(s);

        if (n == 0 || n > max || s[0] == '$')
                return false;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];
                if (c < 0x20 || c == 0x7f || c == '/' || c == '+' || c == '#')
                        return false;
        }
        return true;
}

static int topic_base(const TopicContext *c, TopicBase base, char *buf, size_t size) {
        int n = -1;

        switch (base) {
        case TOPIC_BASE_AWS_THING:
                n = snprintf(buf, size, "$aws/things/%s", c->device_id);
                break;
        case TOPIC_BASE_DEVICE:
                n = snprintf(buf, size, "%s", c->device_id);
                break;
        case TOPIC_BASE_GATEWAY:
                n = snprintf(buf, size, "%s/%s/gateways/%s", c->stage, c->team, c->device_id);
                break;
        case TOPIC_BASE_JOBS:
                n = snprintf(buf, size, "%s/%s/%s", c->stage, c->team, c->device_id);
                break;
        case TOPIC_BASE_MESSAGES:
                n = snprintf(buf, size, "%s/%s/m/d/%s", c->stage, c->team, c->device_id);
                break;
        case _TOPIC_BASE_MAX:
                break;
        }
        if (n < 0 || (size_t) n >= size)
                return -ENOBUFS;
        return n;
}

/* Formats the bases once; the guard and topic_build() only copy and compare. */
static void topic_context_fill(TopicContext *c) {
        for (int b = 0; b < _TOPIC_BASE_MAX; b++) {
                int n = topic_base(c, (TopicBase) b, c->base[b], sizeof c->base[b]);
                /* Too long to be built (cannot happen within the level limits): matches nothing. */
                c->base_len[b] = n < 0 ? SIZE_MAX : (size_t) n;
                if (n < 0)
                        c->base[b][0] = 0;
        }
}

int topic_context_init(TopicContext *ret, const char *stage, const char *team, const char *device_id) {
        if (!stage || !team || !device_id)
                return -EINVAL;
        if (!level_valid(stage, TOPIC_STAGE_MAX) || !level_valid(team, TOPIC_TEAM_MAX) ||
            !level_valid(device_id, TOPIC_DEVICE_ID_MAX))
                return -EINVAL;
        *ret = (TopicContext) {};
        strcpy(ret->stage, stage);
        strcpy(ret->team, team);
        strcpy(ret->device_id, device_id);
        topic_context_fill(ret);
        return 0;
}

int topic_context_init_device(TopicContext *ret, const char *device_id) {
        if (!device_id || !level_valid(device_id, TOPIC_DEVICE_ID_MAX))
                return -EINVAL;
        *ret = (TopicContext) {};
        strcpy(ret->device_id, device_id);
        topic_context_fill(ret);
        return 0;
}

int topic_prefix_parse(const char *prefix, char ret_stage[static TOPIC_STAGE_MAX + 1],
                       char ret_team[static TOPIC_TEAM_MAX + 1]) {
        char stage[TOPIC_STAGE_MAX + 1], team[TOPIC_TEAM_MAX + 1];
        const char *slash1, *slash2;
        size_t ls, lt;

        if (!prefix)
                return -EINVAL;
        slash1 = strchr(prefix, '/');
        if (!slash1)
                return -EINVAL;
        slash2 = strchr(slash1 + 1, '/');
        if (!slash2 || slash2[1] != 0)
                return -EINVAL;
        ls = (size_t) (slash1 - prefix);
        lt = (size_t) (slash2 - slash1 - 1);
        if (ls == 0 || ls > TOPIC_STAGE_MAX || lt == 0 || lt > TOPIC_TEAM_MAX)
                return -EINVAL;
        memcpy(stage, prefix, ls);
        stage[ls] = 0;
        memcpy(team, slash1 + 1, lt);
        team[lt] = 0;
        if (!level_valid(stage, TOPIC_STAGE_MAX) || !level_valid(team, TOPIC_TEAM_MAX))
                return -EINVAL;
        memcpy(ret_stage, stage, ls + 1);
        memcpy(ret_team, team, lt + 1);
        return 0;
}

int topic_build(const TopicContext *c, TopicKind kind, char *buf, size_t size) {
        const char *suffix;
        size_t n, m;

        if (!c || kind < 0 || kind >= _TOPIC_KIND_MAX || !buf)
                return -EINVAL;
        n = c->base_len[topic_table[kind].base];
        suffix = topic_table[kind].suffix;
        m = strlen(suffix);
        if (n > TOPIC_MAX || n + m > TOPIC_MAX || n + m >= size)
                return -ENOBUFS;
        memcpy(buf, c->base[topic_table[kind].base], n);
        memcpy(buf + n, suffix, m + 1);
        return 0;
}

static int topic_derive(const TopicContext *c, const char *from_shadow, TopicKind kind,
                        char *buf, size_t size) {
        char t[TOPIC_MAX + 1];
        size_t n;

        if (!c || !buf)
                return -EINVAL;
        if (!from_shadow)
                return topic_build(c, kind, buf, size);

        n = strlen(from_shadow);
        if (n == 0 || n > TOPIC_MAX)
                return -EINVAL;
        memcpy(t, from_shadow, n + 1);
        /* NCS 2.2..2.7 rewrote ".../c2g" into ".../+/r"; the broker
         * disconnects a gateway that subscribes that (nRF Cloud library,
         * nct_dc_connect()), so undo it. */
        if (kind == TOPIC_C2G && n >= 4 && streq(t + n - 4, "/+/r"))
                strcpy(t + n - 3, "c2g");

        /* The pairing report echoes the topic, and a filter is not a
         * topic the gateway can be reached on: no wildcard left. */
        if (strpbrk(t, "+#") || !topic_allowed(c, topic_kind_action(kind), t))
                return -EPERM;
        if (strlen(t) >= size)
                return -ENOBUFS;
        strcpy(buf, t);
        return 0;
}

int topic_c2g_derive(const TopicContext *c, const char *shadow_c2g, char *buf, size_t size) {
        return topic_derive(c, shadow_c2g, TOPIC_C2G, buf, size);
}

int topic_g2c_derive(const TopicContext *c, const char *shadow_g2c, char *buf, size_t size) {
        return topic_derive(c, shadow_g2c, TOPIC_G2C, buf, size);
}

/* Whether the levels of s are well formed: non-empty, no control
 * characters, no '#', and '+' only as a whole level where allowed. */
static bool levels_valid(const char *s, bool allow_plus) {
        const char *level = s;

        for (const char *p = s;; p++) {
                unsigned char ch = (unsigned char) *p;

                if (ch == '/' || ch == 0) {
                        size_t len = (size_t) (p - level);
                        if (len == 0)
                                return false;
                        if (memchr(level, '+', len) && !(allow_plus && len == 1))
                                return false;
                        if (ch == 0)
                                return true;
                        level = p + 1;
                        continue;
                }
                if (ch < 0x20 || ch == 0x7f || ch == '#')
                        return false;
        }
}

/* The direction of a topic under <stage>/<team>/m/d/<id>/ (spec §1.5):
 * what the cloud sends to the device ("c2d", "c2g", "<x>/r" and the
 * "+/r" filter nRF Cloud itself subscribes) is received, everything else
 * ("d2c", "d2c/bulk", "g2c", ...) is sent.  One direction per topic, so
 * that the gateway can never subscribe what it publishes. */
static TopicAction message_action(const char *rest) {
        const char *slash = strchr(rest, '/');

        if (!slash)
                return streq(rest, "c2d") || streq(rest, "c2g") ? TOPIC_ACTION_SUBSCRIBE : TOPIC_ACTION_PUBLISH;
        return streq(slash, "/r") ? TOPIC_ACTION_SUBSCRIBE : TOPIC_ACTION_PUBLISH;
}

bool topic_allowed(const TopicContext *c, TopicAction action, const char *topic) {
        const char *rest;
        size_t n, nb;

        if (!c || !topic)
                return false;
        if (action != TOPIC_ACTION_PUBLISH && action != TOPIC_ACTION_SUBSCRIBE)
                return false;
        n = strlen(topic);
        if (n == 0 || n > TOPIC_MAX)
                return false;
        /* Never a wildcard in a topic we publish on; in a subscription only
         * as a whole level (and below, only where nRF Cloud puts one). */
        if (!levels_valid(topic, action == TOPIC_ACTION_SUBSCRIBE))
                return false;

        /* The fixed topics of this device, each in the one direction the
         * gateway uses it: nothing but an exact match, against the bases
         * formatted when the context was set. */
        for (int k = 0; k < _TOPIC_KIND_MAX; k++) {
                nb = c->base_len[topic_table[k].base];
                if (nb < n && memcmp(topic, c->base[topic_table[k].base], nb) == 0 &&
                    streq(topic + nb, topic_table[k].suffix))
                        return topic_table[k].action == action;
        }

        /* <stage>/<team>/m/d/<id>/...: this device's messages, where nRF
         * Cloud's policy puts ${iot:ClientId}.  The one wildcard is nRF
         * Cloud's own c2d filter ".../+/r". */
        nb = c->base_len[TOPIC_BASE_MESSAGES];
        if (nb >= n || memcmp(topic, c->base[TOPIC_BASE_MESSAGES], nb) != 0 || topic[nb] != '/')
                return false;
        rest = topic + nb + 1;
        if (strchr(rest, '+') && !streq(rest, "+/r"))
                return false;
        return message_action(rest) == action;
}
