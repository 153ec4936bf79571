/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * MQTT topics of an nRF Cloud gateway (spec nrfcloud-mqtt.md §1), and the
 * topic guard: nRF Cloud's broker disconnects a device that publishes or
 * subscribes outside its IoT policy, so every topic goes through
 * topic_allowed() before it reaches the MQTT client.  Pure.
 */

#include <stdbool.h>

#include "macro.h"

/* Limits from nrf_cloud_defs.h (NRF_CLOUD_STAGE_ID_MAX_LEN, ...). */
#define TOPIC_STAGE_MAX 8
#define TOPIC_TEAM_MAX 64
#define TOPIC_DEVICE_ID_MAX 64
/* Longest topic we build or accept (AWS IoT allows 256 bytes). */
#define TOPIC_MAX 256

/* How each kind of topic is spelt (spec §1.3, §1.4, §1.6). */
typedef enum TopicBase {
        TOPIC_BASE_AWS_THING, /* $aws/things/<id> */
        TOPIC_BASE_DEVICE,    /* <id> */
        TOPIC_BASE_GATEWAY,   /* <stage>/<team>/gateways/<id> */
        TOPIC_BASE_JOBS,      /* <stage>/<team>/<id> */
        TOPIC_BASE_MESSAGES,  /* <stage>/<team>/m/d/<id> */
        _TOPIC_BASE_MAX,
} TopicBase;

/* Who the gateway is: "<stage>/<team>/" plus the MQTT client id. */
typedef struct TopicContext {
        char stage[TOPIC_STAGE_MAX + 1];
        char team[TOPIC_TEAM_MAX + 1];
        char device_id[TOPIC_DEVICE_ID_MAX + 1];
        /* The bases of this device's topics ("$aws/things/<id>",
         * "<stage>/<team>/gateways/<id>", ...), formatted once by
         * topic_context_init() so that the guard, which runs for every
         * message, only compares strings. */
        char base[_TOPIC_BASE_MAX][TOPIC_MAX + 1];
        size_t base_len[_TOPIC_BASE_MAX];
} TopicContext;

typedef enum TopicKind {
        /* AWS generic shadow topics: $aws/things/<id>/shadow/... */
        TOPIC_AWS_SHADOW_GET,
        TOPIC_AWS_SHADOW_GET_ACCEPTED,
        TOPIC_AWS_SHADOW_GET_REJECTED,
        TOPIC_AWS_SHADOW_UPDATE,
        TOPIC_AWS_SHADOW_UPDATE_ACCEPTED,
        TOPIC_AWS_SHADOW_UPDATE_REJECTED,
        TOPIC_AWS_SHADOW_UPDATE_DELTA,
        /* nRF Cloud shadow topics: <id>/shadow/... (trimmed documents) */
        TOPIC_SHADOW_GET_ACCEPTED,        /* NCS <= 2.7 trimmed accepted */
        TOPIC_SHADOW_GET_TRIM,
        TOPIC_SHADOW_GET_ACCEPTED_TRIM,
        TOPIC_SHADOW_GET_REJECTED,
        TOPIC_SHADOW_UPDATE,
        TOPIC_SHADOW_UPDATE_DELTA_FULL,
        TOPIC_SHADOW_UPDATE_DELTA_FULL_ERR, /* deltas over AWS's 1792-byte cap */
        TOPIC_SHADOW_GET_TF,
        TOPIC_SHADOW_GET_ACCEPTED_TF,
        /* <stage>/<team>/gateways/<id>/... */
        TOPIC_C2G,
        TOPIC_G2C,
        /* <stage>/<team>/<id>/jobs/... */
        TOPIC_JOBS_REQ,
        TOPIC_JOBS_RCV,
        TOPIC_JOBS_UPDATE,
        TOPIC_JOBS_BLE_REQ,
        TOPIC_JOBS_BLE_RCV,
        TOPIC_JOBS_BLE_UPDATE,
        /* <stage>/<team>/m/d/<id>/...: device messages (spec §1.5) */
        TOPIC_MSG_D2C,
        TOPIC_MSG_D2C_BULK,
        TOPIC_MSG_C2D,
        _TOPIC_KIND_MAX,
        _TOPIC_KIND_INVALID = -EINVAL,
} TopicKind;

typedef enum TopicAction {
        TOPIC_ACTION_PUBLISH,
        TOPIC_ACTION_SUBSCRIBE,
        _TOPIC_ACTION_MAX,
        _TOPIC_ACTION_INVALID = -EINVAL,
} TopicAction;

const char *topic_kind_to_string(TopicKind k);
TopicKind topic_kind_from_string(const char *s);
const char *topic_action_to_string(TopicAction a);
/* The action the gateway performs on a topic of this kind. */
TopicAction topic_kind_action(TopicKind k);

/* Fills a context after checking each part: non-empty, within its limit,
 * and free of '/', '+', '#', NUL and control characters.  -EINVAL else. */
int topic_context_init(TopicContext *ret, const char *stage, const char *team, const char *device_id);
/* A context that knows only the device id (stage and team not learnt yet):
 * only the topics that do not need them can match.  -EINVAL if the id is
 * not a valid level. */
int topic_context_init_device(TopicContext *ret, const char *device_id);

/* Splits desired.nrfcloud_mqtt_topic_prefix, "<stage>/<team>/", into its
 * parts.  -EINVAL unless it is exactly two valid levels and a final '/'. */
int topic_prefix_parse(const char *prefix, char ret_stage[static TOPIC_STAGE_MAX + 1],
                       char ret_team[static TOPIC_TEAM_MAX + 1]);

/* Builds the topic of the given kind into buf. -ENOBUFS if it does not fit. */
int topic_build(const TopicContext *c, TopicKind kind, char *buf, size_t size);

/* The c2g topic to subscribe.  From desired.pairing.topics.c2g when given
 * (NULL: not in the shadow), with a trailing "+/r" replaced by "c2g" as
 * nRF Cloud's own library does (the wildcard form gets the gateway
 * disconnected); otherwise <stage>/<team>/gateways/<id>/c2g.  The result
 * must pass the topic guard for a subscribe and hold no wildcard (it is
 * echoed in the pairing report): -EPERM if it does not. */
int topic_c2g_derive(const TopicContext *c, const char *shadow_c2g, char *buf, size_t size);
/* The g2c topic likewise, from desired.pairing.topics.g2c or the default. */
int topic_g2c_derive(const TopicContext *c, const char *shadow_g2c, char *buf, size_t size);

/* The topic guard: true only for a topic of this device, where nRF
 * Cloud's policies for provisioned, associated and gateway devices put
 * ${iot:ClientId} (spec §1.3-§1.6), in the one direction the gateway uses
 * it: its shadow topics (both families), <stage>/<team>/gateways/<id>/c2g
 * (subscribe) and g2c (publish), the six <stage>/<team>/<id>/jobs/...
 * topics (rcv subscribe, req and update publish), and
 * <stage>/<team>/m/d/<id>/... (c2d, c2g and ".../r" subscribe, the rest
 * publish).  No topic is allowed for both publish and subscribe.  No
 * wildcard in a publish topic; in a subscription only nRF Cloud's own
 * ".../m/d/<id>/+/r".  Refused besides: other ids, teams and stages, empty
 * levels, control characters, and topics longer than TOPIC_MAX. */
bool topic_allowed(const TopicContext *c, TopicAction action, const char *topic);
