/* SPDX-License-Identifier: MIT */
/*
 * One request through the REST client on a real sd-event loop, for
 * test_rest_client.py: prints the result as one JSON line.  A 10 ms timer
 * runs beside it and the longest gap between its ticks is printed too, so
 * the test sees whether the loop ever stalled.
 *
 *   rest-harness HOST PORT CAFILE METHOD PATH [BODY] [key=value ...]
 *   keys: bearer= timeout_ms= connect_ms= attempts= retry_ms= max_response=
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rest-client.h"
#include "util.h"

static uint64_t last_tick, max_gap;

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        uint64_t t = now_usec(CLOCK_MONOTONIC);
        (void) usec, (void) userdata;
        if (last_tick && t - last_tick > max_gap)
                max_gap = t - last_tick;
        last_tick = t;
        return sd_event_source_set_time_relative(s, 10000);
}

static void on_done(RestClient *c, const RestResult *r, void *userdata) {
        sd_event *e = userdata;
        json_t *o = json_pack("{s:i, s:i, s:I, s:s?, s:i, s:I, s:I, s:I, s:O?}", "error", r->error, "status", r->status,
                              "code", (json_int_t) r->cloud_code, "message", r->cloud_message, "attempts",
                              (int) r->attempts, "sent", (json_int_t) r->bytes_sent, "received",
                              (json_int_t) r->bytes_received, "max_gap_ms", (json_int_t) (max_gap / 1000), "body",
                              r->body);
        char *s = json_dumps(o, JSON_COMPACT);
        (void) c;
        printf("%s\n", s);
        fflush(stdout);
        free(s);
        json_decref(o);
        sd_event_exit(e, 0);
}

int main(int argc, char **argv) {
        RestOptions o = {};
        const char *bearer = NULL;
        json_t *body = NULL;
        sd_event *e = NULL;
        RestClient *c = NULL;
        int r, i = 6;

        if (argc < 6) {
                fprintf(stderr, "usage: %s HOST PORT CAFILE METHOD PATH [BODY] [key=value...]\n", argv[0]);
                return 2;
        }
        log_setup(LOG_TARGET_CONSOLE);
        if (getenv("REST_HARNESS_DEBUG"))
                log_set_max_level(LOG_DEBUG);
        o.host = argv[1];
        o.port = (unsigned) atoi(argv[2]);
        o.ca_file = *argv[3] ? argv[3] : NULL;
        if (argc > 6 && strchr(argv[6], '=') == NULL) {
                body = json_loads(argv[6], 0, NULL);
                if (!body)
                        return 2;
                i = 7;
        }
        for (; i < argc; i++) {
                const char *v = strchr(argv[i], '=');
                if (!v)
                        return 2;
                v++;
                if (strncmp(argv[i], "bearer=", 7) == 0)
                        bearer = v;
                else if (strncmp(argv[i], "timeout_ms=", 11) == 0)
                        o.total_timeout_usec = strtoull(v, NULL, 10) * 1000;
                else if (strncmp(argv[i], "connect_ms=", 11) == 0)
                        o.connect_timeout_usec = strtoull(v, NULL, 10) * 1000;
                else if (strncmp(argv[i], "attempts=", 9) == 0)
                        o.max_attempts = (unsigned) atoi(v);
                else if (strncmp(argv[i], "retry_ms=", 9) == 0)
                        o.retry_min_usec = o.retry_max_usec = strtoull(v, NULL, 10) * 1000;
                else if (strncmp(argv[i], "max_response=", 13) == 0)
                        o.max_response = strtoull(v, NULL, 10);
                else
                        return 2;
        }

        if (sd_event_default(&e) < 0)
                return 1;
        r = rest_client_new(e, &o, &c);
        if (r < 0) {
                fprintf(stderr, "rest_client_new: %s\n", strerror(-r));
                return 1;
        }
        r = rest_client_request(c, argv[4], argv[5], bearer, body, on_done, e);
        if (r < 0) {
                fprintf(stderr, "request: %s\n", strerror(-r));
                return 1;
        }
        r = sd_event_add_time_relative(e, NULL, CLOCK_MONOTONIC, 10000, 0, on_tick, NULL);
        if (r < 0)
                return 1;
        r = sd_event_loop(e);
        rest_client_free(c);
        json_decref(body);
        sd_event_unref(e);
        return r < 0 ? 1 : 0;
}
