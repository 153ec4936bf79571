/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A small HTTPS client for nRF Cloud's device REST endpoints, on the
 * daemon's sd-event loop (docs/location.md explains why not libcurl).
 *
 *   idle ──request──▶ resolving ──▶ connecting ──▶ handshake ──▶ sending ──▶ receiving ──▶ idle
 *                          │             │             │            │            │
 *                          └─────────────┴──── network error / 5xx ─┴────────────┘
 *                                              ▼
 *                                     waiting (backoff) ──▶ resolving (next attempt)
 *
 * One request at a time, one connection per attempt ("Connection: close").
 * Nothing blocks: names are resolved with getaddrinfo_a() (glibc runs it on
 * its own thread; the loop polls its state), the socket and TLS run
 * non-blocking.  TLS is OpenSSL, TLS 1.2 or newer, the server verified with
 * the configured CA file or the system's trusted CAs, and its name (or IP
 * address) checked against the certificate.  Bounded: a connect timeout,
 * a total timeout per attempt, a response size limit, a number of attempts.
 * Attempts are repeated with capped, jittered exponential backoff after a
 * network error, a timeout or a 5xx answer; never after a 4xx or another
 * final answer.  The client itself logs only at debug level: its owner
 * gets one result per request and logs it.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "macro.h"

#define REST_CONNECT_TIMEOUT_USEC (10u * 1000u * 1000u)
#define REST_TOTAL_TIMEOUT_USEC (30u * 1000u * 1000u)
#define REST_MAX_RESPONSE (64u * 1024u)
#define REST_MAX_ATTEMPTS 3u
#define REST_RETRY_MIN_USEC (2u * 1000u * 1000u)
#define REST_RETRY_MAX_USEC (60u * 1000u * 1000u)

typedef struct RestClient RestClient;

typedef struct RestOptions {
        const char *host;             /* a DNS name or an IP address */
        unsigned port;                /* 0: 443 */
        const char *ca_file;          /* NULL: the system's trusted CAs */
        uint64_t connect_timeout_usec; /* 0: the defaults above */
        uint64_t total_timeout_usec;
        size_t max_response;
        unsigned max_attempts;
        uint64_t retry_min_usec;
        uint64_t retry_max_usec;
} RestOptions;

typedef struct RestResult {
        int error;              /* 0 when an HTTP answer arrived, else the last attempt's negative errno */
        int status;             /* HTTP status of the last answer, 0 if none */
        json_t *body;           /* its body when it is JSON, else NULL; borrowed for the callback */
        long long cloud_code;   /* nRF Cloud's "code" in an error body, 0 if none */
        const char *cloud_message; /* its "message", NULL if none */
        unsigned attempts;
        uint64_t bytes_sent;    /* on the TCP connection(s), TLS included, all attempts */
        uint64_t bytes_received;
} RestResult;

typedef void (*rest_done_cb)(RestClient *c, const RestResult *r, void *userdata);

typedef enum RestState {
        REST_IDLE,
        REST_RESOLVING,
        REST_CONNECTING,
        REST_HANDSHAKE,
        REST_SENDING,
        REST_RECEIVING,
        REST_WAITING, /* backoff before the next attempt */
        _REST_STATE_MAX,
} RestState;

int rest_client_new(sd_event *event, const RestOptions *o, RestClient **ret);
RestClient *rest_client_free(RestClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(RestClient *, rest_client_free);

/*
 * Starts method path with "Authorization: Bearer <bearer>" and body (NULL:
 * none) as JSON.  cb is called exactly once, from the loop, unless the
 * request is cancelled.  -EBUSY while another request runs.
 */
int rest_client_request(RestClient *c, const char *method, const char *path, const char *bearer, const json_t *body,
                        rest_done_cb cb, void *userdata);
/* Drops the request in flight without calling its callback. */
void rest_client_cancel(RestClient *c);

RestState rest_client_get_state(const RestClient *c);
const char *rest_state_to_string(RestState s);
const char *rest_client_host(const RestClient *c);
