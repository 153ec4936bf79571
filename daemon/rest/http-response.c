/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http-response.h"
#include "util.h"

void http_response_init(HttpResponse *r, size_t max_body) {
        memset(r, 0, sizeof *r);
        r->state = HTTP_PARSE_HEAD;
        r->max_body = max_body;
        r->content_length = -1;
}

void http_response_clear(HttpResponse *r) {
        free(r->body);
        r->body = NULL;
        r->body_len = r->body_cap = 0;
}

/* The value of header name in the head, which ends with an empty line. */
static const char *find_header(const char *head, const char *name, size_t *ret_len) {
        size_t n = strlen(name);

        for (const char *l = strstr(head, "\r\n"); l && l[2] != '\r' && l[2] != '\0'; l = strstr(l + 2, "\r\n")) {
                const char *p = l + 2, *e;
                if (strncasecmp(p, name, n) != 0 || p[n] != ':')
                        continue;
                p += n + 1;
                while (*p == ' ' || *p == '\t')
                        p++;
                e = strstr(p, "\r\n");
                if (!e)
                        return NULL;
                while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
                        e--;
                *ret_len = (size_t) (e - p);
                return p;
        }
        return NULL;
}

int http_response_header(const HttpResponse *r, const char *name, char *buf, size_t size) {
        size_t len;
        const char *v;

        if (r->state == HTTP_PARSE_HEAD || size == 0)
                return -ENOENT;
        v = find_header(r->head, name, &len);
        if (!v)
                return -ENOENT;
        if (len >= size)
                len = size - 1;
        memcpy(buf, v, len);
        buf[len] = '\0';
        return 0;
}

static int parse_decimal(const char *p, size_t len, uint64_t max, uint64_t *ret) {
        uint64_t v = 0;

        if (len == 0 || len > 19)
                return -EBADMSG;
        for (size_t i = 0; i < len; i++) {
                if (p[i] < '0' || p[i] > '9')
                        return -EBADMSG;
                v = v * 10 + (uint64_t) (p[i] - '0');
        }
        if (v > max)
                return -EBADMSG;
        *ret = v;
        return 0;
}

static int parse_head(HttpResponse *r) {
        const char *h = r->head, *v;
        uint64_t status, cl;
        size_t len;

        /* "HTTP/1.x SSS <reason>" */
        if (strncmp(h, "HTTP/1.", 7) != 0 || (h[7] != '0' && h[7] != '1') || h[8] != ' ' ||
            parse_decimal(h + 9, 3, 999, &status) < 0 || status < 100 || (h[12] != ' ' && h[12] != '\r'))
                return -EBADMSG;
        r->status = (int) status;

        v = find_header(h, "Transfer-Encoding", &len);
        if (v) {
                if (len != 7 || strncasecmp(v, "chunked", 7) != 0)
                        return -EBADMSG; /* no other coding is asked for */
                r->chunked = true;
        }
        v = find_header(h, "Content-Length", &len);
        if (v && !r->chunked) {
                if (parse_decimal(v, len, INT64_MAX, &cl) < 0)
                        return -EBADMSG;
                if (cl > r->max_body)
                        return -EFBIG;
                r->content_length = (int64_t) cl;
        }
        /* No body at all (RFC 9112 §6.3): 1xx, 204, 304. */
        if (status < 200 || status == 204 || status == 304) {
                r->state = HTTP_PARSE_DONE;
                return 1;
        }
        if (r->chunked)
                r->state = HTTP_PARSE_CHUNK_SIZE;
        else if (r->content_length == 0)
                r->state = HTTP_PARSE_DONE;
        else
                r->state = HTTP_PARSE_BODY;
        return r->state == HTTP_PARSE_DONE;
}

static int body_append(HttpResponse *r, const char *p, size_t n) {
        if (n > r->max_body - r->body_len)
                return -EFBIG;
        if (r->body_len + n + 1 > r->body_cap) {
                size_t cap = r->body_cap ? r->body_cap : 1024;
                char *b;
                while (cap < r->body_len + n + 1)
                        cap *= 2;
                if (cap > r->max_body + 1)
                        cap = r->max_body + 1;
                b = realloc(r->body, cap);
                if (!b)
                        return -ENOMEM;
                r->body = b;
                r->body_cap = cap;
        }
        memcpy(r->body + r->body_len, p, n);
        r->body_len += n;
        r->body[r->body_len] = '\0';
        return 0;
}

/* Collects one CRLF-terminated line of a chunked body into r->line; true when it is complete. */
static bool line_feed(HttpResponse *r, char c) {
        if (c == '\n') {
                if (r->line_len > 0 && r->line[r->line_len - 1] == '\r')
                        r->line_len--;
                r->line[r->line_len] = '\0';
                return true;
        }
        if (r->line_len < sizeof r->line - 1)
                r->line[r->line_len++] = c;
        else
                r->line_long = true;
        return false;
}

static int chunk_size(HttpResponse *r) {
        uint64_t v = 0;
        size_t i = 0;

        /* Extensions after ';' are allowed and ignored; a too long line is not a size we take. */
        if (r->line_long)
                return -EBADMSG;
        for (; i < r->line_len && r->line[i] != ';' && r->line[i] != ' '; i++) {
                int d = unhexchar(r->line[i]);
                if (d < 0 || i >= 15)
                        return -EBADMSG;
                v = v * 16 + (uint64_t) d;
        }
        if (i == 0)
                return -EBADMSG;
        if (v > r->max_body - r->body_len)
                return -EFBIG;
        r->chunk_left = v;
        return 0;
}

int http_response_feed(HttpResponse *r, const void *data, size_t len) {
        const char *p = data;
        int k;

        while (len > 0) {
                switch (r->state) {
                case HTTP_PARSE_HEAD: {
                        char c = *p++;
                        len--;
                        if (c == '\0')
                                return -EBADMSG;
                        if (r->head_len >= HTTP_HEAD_MAX)
                                return -EFBIG;
                        r->head[r->head_len++] = c;
                        r->head[r->head_len] = '\0';
                        if (r->head_len >= 4 && memcmp(r->head + r->head_len - 4, "\r\n\r\n", 4) == 0) {
                                k = parse_head(r);
                                if (k != 0)
                                        return k;
                        }
                        break;
                }
                case HTTP_PARSE_BODY: {
                        size_t n = len;
                        if (r->content_length >= 0 && (uint64_t) n > (uint64_t) r->content_length - r->body_len)
                                n = (size_t) ((uint64_t) r->content_length - r->body_len);
                        k = body_append(r, p, n);
                        if (k < 0)
                                return k;
                        p += n, len -= n;
                        if (r->content_length >= 0 && r->body_len == (uint64_t) r->content_length) {
                                r->state = HTTP_PARSE_DONE;
                                return 1;
                        }
                        break;
                }
                case HTTP_PARSE_CHUNK_SIZE:
                case HTTP_PARSE_CHUNK_DATA_END:
                case HTTP_PARSE_TRAILER: {
                        char c = *p++;
                        len--;
                        if (!line_feed(r, c))
                                break;
                        if (r->state == HTTP_PARSE_CHUNK_DATA_END) {
                                if (r->line_len != 0 || r->line_long)
                                        return -EBADMSG;
                                r->state = HTTP_PARSE_CHUNK_SIZE;
                        } else if (r->state == HTTP_PARSE_TRAILER) {
                                if (r->line_len == 0 && !r->line_long) {
                                        r->state = HTTP_PARSE_DONE;
                                        return 1;
                                }
                        } else {
                                k = chunk_size(r);
                                if (k < 0)
                                        return k;
                                r->state = r->chunk_left == 0 ? HTTP_PARSE_TRAILER : HTTP_PARSE_CHUNK_DATA;
                        }
                        r->line_len = 0;
                        r->line_long = false;
                        break;
                }
                case HTTP_PARSE_CHUNK_DATA: {
                        size_t n = len < r->chunk_left ? len : (size_t) r->chunk_left;
                        k = body_append(r, p, n);
                        if (k < 0)
                                return k;
                        p += n, len -= n;
                        r->chunk_left -= n;
                        if (r->chunk_left == 0)
                                r->state = HTTP_PARSE_CHUNK_DATA_END;
                        break;
                }
                case HTTP_PARSE_DONE:
                        return 1;
                case _HTTP_PARSE_STATE_MAX:
                        return -EBADMSG;
                }
        }
        return r->state == HTTP_PARSE_DONE;
}

int http_response_eof(HttpResponse *r) {
        switch (r->state) {
        case HTTP_PARSE_DONE:
                return 1;
        case HTTP_PARSE_BODY:
                if (r->content_length < 0) {
                        r->state = HTTP_PARSE_DONE;
                        return 1;
                }
                return -EBADMSG;
        case HTTP_PARSE_HEAD:
        case HTTP_PARSE_CHUNK_SIZE:
        case HTTP_PARSE_CHUNK_DATA:
        case HTTP_PARSE_CHUNK_DATA_END:
        case HTTP_PARSE_TRAILER:
        case _HTTP_PARSE_STATE_MAX:
                return -EBADMSG;
        }
        return -EBADMSG;
}
