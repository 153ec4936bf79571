/* SPDX-License-Identifier: MIT */
/*
 * The topic guard against arbitrary topics: the first byte picks publish or
 * subscribe, the rest is the topic.  Whatever it allows must lie inside the
 * gateway policy, whatever the bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "topics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok) {
        if (!ok)
                abort();
}

static bool starts(const char *s, const char *p) {
        return strncmp(s, p, strlen(p)) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        TopicContext c;
        TopicAction a;
        char topic[TOPIC_MAX + 64];

        if (size < 1 || size - 1 >= sizeof topic)
                return 0;
        a = data[0] & 1 ? TOPIC_ACTION_SUBSCRIBE : TOPIC_ACTION_PUBLISH;
        memcpy(topic, data + 1, size - 1);
        topic[size - 1] = 0;
        check(topic_context_init(&c, "prod", "team", "gw") == 0);

        if (!topic_allowed(&c, a, topic))
                return 0;
        check(strlen(topic) <= TOPIC_MAX);
        check(!strchr(topic, '#'));
        check(a == TOPIC_ACTION_SUBSCRIBE || !strchr(topic, '+'));
        check(!strstr(topic, "//"));
        for (const char *p = topic; *p; p++)
                check((unsigned char) *p >= 0x20 && *p != 0x7f);
        check(starts(topic, "$aws/things/gw/shadow/") || starts(topic, "gw/shadow/") ||
              starts(topic, "prod/team/gateways/gw/") || starts(topic, "prod/team/gw/jobs/") ||
              starts(topic, "prod/team/m/d/gw/"));
        /* The one wildcard: nRF Cloud's own c2d filter. */
        if (strchr(topic, '+'))
                check(strcmp(topic, "prod/team/m/d/gw/+/r") == 0);
        /* Never allowed in both directions. */
        check(!topic_allowed(&c, a == TOPIC_ACTION_PUBLISH ? TOPIC_ACTION_SUBSCRIBE : TOPIC_ACTION_PUBLISH, topic));
        return 0;
}
