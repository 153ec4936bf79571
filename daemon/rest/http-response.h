/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * An incremental HTTP/1.1 response parser (RFC 9112): status line, headers,
 * then a body delimited by Content-Length, chunked transfer coding or the
 * connection's end.  Pure: no I/O, no logging; bounded by HTTP_HEAD_MAX and
 * the caller's body limit.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_HEAD_MAX 8192u

typedef enum HttpParseState {
        HTTP_PARSE_HEAD,
        HTTP_PARSE_BODY,          /* Content-Length or until the connection ends */
        HTTP_PARSE_CHUNK_SIZE,
        HTTP_PARSE_CHUNK_DATA,
        HTTP_PARSE_CHUNK_DATA_END,
        HTTP_PARSE_TRAILER,
        HTTP_PARSE_DONE,
        _HTTP_PARSE_STATE_MAX,
} HttpParseState;

typedef struct HttpResponse {
        HttpParseState state;
        size_t max_body;
        char head[HTTP_HEAD_MAX + 1];
        size_t head_len;

        int status;
        int64_t content_length; /* -1: not given */
        bool chunked;

        char *body;             /* NUL-terminated, NULL until the first byte */
        size_t body_len;
        size_t body_cap;

        uint64_t chunk_left;
        char line[32];          /* chunk size or trailer line being read */
        size_t line_len;
        bool line_long;
} HttpResponse;

void http_response_init(HttpResponse *r, size_t max_body);
/* Frees the body; the response may be initialised again. */
void http_response_clear(HttpResponse *r);

/*
 * Feeds bytes from the connection.  Returns 0 (more wanted), 1 (the response
 * is complete; bytes after it are ignored), -EBADMSG (malformed), -EFBIG
 * (head over HTTP_HEAD_MAX or body over max_body) or -ENOMEM.
 */
int http_response_feed(HttpResponse *r, const void *data, size_t len);
/* The connection ended: 1 if that completes the response, else -EBADMSG (cut short). */
int http_response_eof(HttpResponse *r);

/* The value of a response header (case-insensitive name) as a NUL-terminated copy into buf; -ENOENT. */
int http_response_header(const HttpResponse *r, const char *name, char *buf, size_t size);
