/* SPDX-License-Identifier: MIT */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shadow.h"
#include "topics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok) {
        if (!ok)
                abort();
}

static void exercise(const ShadowState *s) {
        ShadowConnectionStatus st[SHADOW_CONNECTIONS_MAX];
        char *out = NULL;

        check(s->n_connections <= SHADOW_CONNECTIONS_MAX);
        for (size_t i = 0; i < s->n_connections; i++) {
                check(bt_addr_is_valid(s->connections[i].address));
                check(shadow_state_wants(s, s->connections[i].address));
                /* No duplicates. */
                for (size_t k = 0; k < i; k++)
                        check(!streq(s->connections[i].address, s->connections[k].address));
                st[i] = (ShadowConnectionStatus) { s->connections[i].address, (ConnectionStatus) (i % _CONNECTION_STATUS_MAX) };
        }
        check(s->n_beacons <= SHADOW_BEACONS_MAX && (s->has_beacons || s->n_beacons == 0));
        for (size_t i = 0; i < s->n_beacons; i++) {
                check(bt_addr_is_valid(s->beacons[i]));
                for (size_t k = 0; k < i; k++)
                        check(!streq(s->beacons[i], s->beacons[k]));
        }
        check(s->n_reported_addresses <= SHADOW_CONNECTIONS_MAX);
        for (size_t i = 0; i < s->n_reported_addresses; i++)
                check(bt_addr_is_valid(s->reported_addresses[i]));
        if (s->n_connections > 0) {
                check(shadow_build_status_connections(st, s->n_connections, &out) == 0);
                free(out);
        }
        if (s->has_topic_prefix) {
                TopicContext c;
                char t[TOPIC_MAX + 1];
                int r;

                check(topic_context_init(&c, s->stage, s->team, "fuzz-gw") == 0);
                /* Whatever the shadow says, the derived topics pass the guard or are refused. */
                r = topic_c2g_derive(&c, s->pairing_topic_c2g, t, sizeof t);
                check(r < 0 || topic_allowed(&c, TOPIC_ACTION_SUBSCRIBE, t));
                r = topic_g2c_derive(&c, s->pairing_topic_g2c, t, sizeof t);
                check(r < 0 || topic_allowed(&c, TOPIC_ACTION_PUBLISH, t));
                r = shadow_build_pairing_paired(s->topic_prefix, "a/g2c", "a/c2g", 1200, &out);
                check(r == 0);
                free(out);
        }
        if (s->kind == SHADOW_DOC_DELTA) {
                check(shadow_build_delta_accept(s, &out) == 0);
                free(out);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        ShadowState *s = NULL;
        CodecError e;

        if (shadow_parse_accepted(data, size, &s, &e) >= 0) {
                exercise(s);
                s = shadow_state_free(s);
        } else
                check(s == NULL);
        if (shadow_parse_delta(data, size, &s, &e) >= 0) {
                exercise(s);
                s = shadow_state_free(s);
        }
        if (shadow_parse_transform(data, size, &s, &e) >= 0) {
                exercise(s);
                s = shadow_state_free(s);
        }
        return 0;
}
