/* SPDX-License-Identifier: MIT */
/*
 * The cloud session's handling of incoming messages: the shadow (accepted,
 * rejected, delta, the `tf` transform and its error), c2g and job topics and
 * topics outside the guard, in any order and in any state, through a fake
 * transport that completes, fails or forgets operations as the input says.
 *
 * Input: records of one selector byte, a 16-bit little-endian length and that
 * many payload bytes.  Selector % 16 picks a topic, or an event (link up or
 * down, complete the oldest operation, fail it, ask for the desired list).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cloud-session.h"

#define DEV "gw-fuzz"
#define PREFIX "prod/team-f/"
#define PENDING_MAX 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct Pending {
        CloudDoneFn done;
        void *userdata;
} Pending;

typedef struct Fake {
        Pending pending[PENDING_MAX];
        size_t n;
} Fake;

static int fake_track(Fake *f, CloudDoneFn done, void *userdata) {
        if (f->n == PENDING_MAX)
                return -ENOBUFS;
        f->pending[f->n++] = (Pending){ done, userdata };
        return 0;
}

static int fake_subscribe(void *impl, char *const *topics, size_t n, CloudDoneFn done, void *userdata) {
        (void) topics, (void) n;
        return fake_track(impl, done, userdata);
}

static int fake_publish(void *impl, const char *topic, const void *payload, size_t len, CloudDoneFn done,
                        void *userdata) {
        (void) topic, (void) payload, (void) len;
        return fake_track(impl, done, userdata);
}

static int fake_enqueue(void *impl, OutboxClass class, const char *topic, const void *payload, size_t len) {
        (void) impl, (void) class, (void) topic, (void) payload, (void) len;
        return 0;
}

static void fake_hold(void *impl, bool hold) {
        (void) impl, (void) hold;
}

static int fake_reconnect(void *impl, const char *reason) {
        (void) reason;
        ((Fake *) impl)->n = 0; /* the operations of the old connection never complete */
        return 0;
}

static const CloudTransport fake_transport = {
        .subscribe = fake_subscribe,
        .publish = fake_publish,
        .enqueue = fake_enqueue,
        .hold_outbox = fake_hold,
        .reconnect = fake_reconnect,
};

static void on_message(CloudSession *cs, CloudMessageKind kind, const uint8_t *payload, size_t len, void *userdata) {
        (void) cs, (void) userdata;
        /* The payload is NUL-terminated, as the callback promises. */
        if (kind < 0 || kind >= _CLOUD_MESSAGE_KIND_MAX || payload[len] != '\0')
                abort();
}

static void on_desired(CloudSession *cs, void *userdata) {
        const DesiredConnection *d;
        size_t n;
        (void) userdata;
        if (cloud_session_get_desired_connections(cs, &d, &n) >= 0 && n > 0 && !d)
                abort();
}

static const CloudSessionCallbacks callbacks = {
        .message = on_message,
        .desired_connections_changed = on_desired,
};

static const char *const topics[] = {
        DEV "/shadow/get/accepted/trim",
        DEV "/shadow/get/rejected",
        DEV "/shadow/update/delta/full",
        DEV "/shadow/get/accepted/tf",
        DEV "/shadow/update/delta/full/err",
        PREFIX "gateways/" DEV "/c2g",
        PREFIX DEV "/jobs/rcv",
        PREFIX DEV "/jobs/ble/rcv",
        PREFIX "gateways/other-gw/c2g",
        PREFIX "m/#",
        "other-gw/shadow/get/accepted/trim",
};
#define N_TOPICS (sizeof topics / sizeof topics[0])

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        CloudSessionOptions o = { .device_id = DEV, .keepalive_sec = 600 };
        CloudSession *cs = NULL;
        Fake f = {};

        if (cloud_session_new(&o, &fake_transport, &f, &callbacks, NULL, &cs) < 0)
                return 0;
        (void) cloud_session_start(cs);
        cloud_session_link_up(cs);
        while (size >= 3) {
                unsigned sel = data[0] % 16;
                size_t len = (size_t) data[1] | (size_t) data[2] << 8;
                Pending p;

                data += 3, size -= 3;
                if (len > size)
                        len = size;
                if (sel < N_TOPICS) {
                        /* A copy of its own, NUL-terminated as the MQTT transport hands it over. */
                        uint8_t *copy = malloc(len + 1);
                        if (!copy)
                                break;
                        memcpy(copy, data, len);
                        copy[len] = '\0';
                        cloud_session_handle_message(cs, topics[sel], copy, len);
                        free(copy);
                } else if (sel == 11 || sel == 12) {
                        if (f.n == 0)
                                continue;
                        p = f.pending[0];
                        memmove(f.pending, f.pending + 1, --f.n * sizeof f.pending[0]);
                        p.done(sel == 11 ? 0 : -EIO, p.userdata);
                } else if (sel == 13) {
                        f.n = 0;
                        cloud_session_link_down(cs);
                        cloud_session_link_up(cs);
                } else if (sel == 14)
                        cloud_session_handle_oversized(cs, topics[len % N_TOPICS], len * 64);
                else
                        on_desired(cs, NULL);
                data += len, size -= len;
        }
        cloud_session_free(cs);
        return 0;
}
