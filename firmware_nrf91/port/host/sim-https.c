/* SPDX-License-Identifier: MIT */
/*
 * HTTPS downloads for #XDOWNLOAD and #XFOTA, as NCS's downloader makes them:
 * TLS 1.2 verified with the CA of the security tag (peer verify required),
 * the URL's host as TLS hostname unless it is an IP address, a GET with a
 * Range header from the offset on.  Body bytes go to the core as they come;
 * Content-Length, chunked encoding and close-delimited bodies are read.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "macro.h"
#include "sim.h"

static Sim *SIM(void *ctx) {
        return ctx;
}

static SimDownload *find(Sim *s, int id) {
        for (size_t i = 0; i < SIM_MAX_DOWNLOADS; i++)
                if (s->downloads[i].active && s->downloads[i].id == id)
                        return &s->downloads[i];
        return NULL;
}

static void download_reset(SimDownload *d) {
        tls_conn_done(&d->conn);
        free(d->request);
        d->request = NULL;
        d->active = false;
}

/* https://host[:port]/path, host may be [v6]. */
static int parse_url(const char *url, char *host, size_t host_size, uint16_t *port, const char **path) {
        const char *p = url + strlen("https://"), *end, *colon = NULL;
        size_t n;

        if (strncasecmp(url, "https://", 8) != 0)
                return -EINVAL;
        end = p + strcspn(p, "/?#");
        if (*p == '[') {
                const char *close = memchr(p, ']', (size_t) (end - p));
                if (!close)
                        return -EINVAL;
                n = (size_t) (close - p - 1);
                if (n == 0 || n >= host_size)
                        return -EINVAL;
                memcpy(host, p + 1, n);
                if (close + 1 < end && close[1] == ':')
                        colon = close + 1;
                else if (close + 1 != end)
                        return -EINVAL;
        } else {
                colon = memchr(p, ':', (size_t) (end - p));
                n = (size_t) ((colon ? colon : end) - p);
                if (n == 0 || n >= host_size)
                        return -EINVAL;
                memcpy(host, p, n);
        }
        host[n] = '\0';
        *port = 443;
        if (colon) {
                char *e;
                unsigned long v = strtoul(colon + 1, &e, 10);
                if (e != end || v == 0 || v > 65535)
                        return -EINVAL;
                *port = (uint16_t) v;
        }
        *path = *end == '/' ? end : "/";
        return 0;
}

int sim_download_start(void *ctx, int id, const char *url, uint32_t sec_tag, uint32_t offset) {
        Sim *s = SIM(ctx);
        SimDownload *d = NULL;
        char host[256];
        const char *path;
        uint16_t port;
        int r;

        if (parse_url(url, host, sizeof host, &port, &path) < 0)
                return -NRF91_EINVAL;
        if (!modem_emu_network_ready(s->modem))
                return -NRF91_ENETDOWN;
        for (size_t i = 0; i < SIM_MAX_DOWNLOADS; i++)
                if (!s->downloads[i].active) {
                        d = &s->downloads[i];
                        break;
                }
        if (!d)
                return -NRF91_EBUSY;

        *d = (SimDownload){ .active = true, .id = id, .offset = offset, .body.content_length = -1,
                            .conn = { .fd = -EBADF } };
        /* Peer verification required; the host name checked unless the URL has an IP address. */
        r = tls_conn_init(&d->conn, s->modem, sec_tag, 2, host);
        if (r >= 0) {
                bool v6 = strchr(host, ':') != NULL;
                if (offset > 0)
                        r = asprintf(&d->request,
                                     "GET %s HTTP/1.1\r\nHost: %s%s%s:%u\r\nRange: bytes=%u-\r\n"
                                     "User-Agent: nrf91-sim\r\nConnection: close\r\n\r\n",
                                     path, v6 ? "[" : "", host, v6 ? "]" : "", port, offset);
                else
                        r = asprintf(&d->request,
                                     "GET %s HTTP/1.1\r\nHost: %s%s%s:%u\r\n"
                                     "User-Agent: nrf91-sim\r\nConnection: close\r\n\r\n",
                                     path, v6 ? "[" : "", host, v6 ? "]" : "", port);
                if (r < 0)
                        d->request = NULL, r = -ENOMEM;
                else
                        d->request_len = (size_t) r;
        }
        if (r >= 0)
                r = tls_conn_start(&d->conn, host, port, sim_now_ms());
        if (r < 0) {
                download_reset(d);
                return r == -EHOSTUNREACH ? -NRF91_EHOSTUNREACH : -NRF91_ENOMEM;
        }
        d->state = DL_CONNECTING;
        log_info("Download %d: %s (sec_tag %u, offset %u)", id, url, sec_tag, offset);
        return 0;
}

void sim_download_cancel(void *ctx, int id) {
        SimDownload *d = find(SIM(ctx), id);

        if (d) {
                log_info("Download %d: cancelled", id);
                download_reset(d);
        }
}

void sim_downloads_cancel_all(Sim *s) {
        for (size_t i = 0; i < SIM_MAX_DOWNLOADS; i++)
                download_reset(&s->downloads[i]);
}

/* Ends it and tells the core (which may start another download from inside). */
static void finish(Sim *s, SimDownload *d, int err) {
        int id = d->id;

        log_info("Download %d: %s (%llu bytes)", id, err == 0 ? "complete" : "failed",
                 (unsigned long long) d->body.got);
        download_reset(d);
        nrf91_core_download_done(&s->core, id, err);
}

/* 0 ok, or negative errno. */
static int parse_headers(Sim *s, SimDownload *d) {
        SimHttpHead h;

        if (sim_http_parse_head(d->headers, &h) < 0)
                return -EBADMSG;
        if (h.status == 404)
                return -ENOENT;
        if (h.status != 200 && h.status != 206) {
                log_info("Download %d: HTTP status %d", d->id, h.status);
                return -EBADMSG;
        }
        /* A server that ignored the range sends everything: skip to the offset ourselves. */
        d->skip = h.status == 200 ? d->offset : 0;
        if (h.content_length >= (int64_t) d->skip)
                nrf91_core_download_length(&s->core, d->id, (uint64_t) (h.content_length - d->skip));
        sim_http_body_init(&d->body, &h);
        d->state = DL_BODY;
        return 0;
}

/* Hands body bytes to the core (or keeps them when it cannot take them now). */
static void deliver(const uint8_t *data, size_t len, void *userdata) {
        SimDownload *d = userdata;

        if (d->skip > 0) {
                size_t n = MIN((size_t) d->skip, len);
                d->skip -= (uint32_t) n;
                data += n, len -= n;
        }
        if (len == 0)
                return;
        memcpy(d->pending + d->pending_len, data, len);
        d->pending_len += len;
}

static void service(Sim *s, SimDownload *d, uint64_t now_ms) {
        uint8_t buf[8192];
        ssize_t n;
        int id = d->id, r;

        if (!modem_emu_network_ready(s->modem)) {
                finish(s, d, -NRF91_ENETDOWN);
                return;
        }

        if (d->state == DL_CONNECTING) {
                tls_conn_step(&d->conn, now_ms);
                if (d->conn.state == TLS_FAILED) {
                        finish(s, d, sim_link_errno(d->conn.err));
                        return;
                }
                if (d->conn.state != TLS_OPEN)
                        return;
                d->state = DL_REQUEST;
        }
        if (d->state == DL_REQUEST) {
                n = tls_conn_write(&d->conn, d->request + d->request_sent, d->request_len - d->request_sent);
                if (n == -EAGAIN)
                        return;
                if (n < 0) {
                        finish(s, d, sim_link_errno((int) n));
                        return;
                }
                d->request_sent += (size_t) n;
                if (d->request_sent < d->request_len)
                        return;
                d->state = DL_HEADERS;
        }

        /* Give the core what it has not taken yet, before reading more. */
        if (d->pending_len > 0) {
                if (nrf91_core_download_data(&s->core, id, d->pending, d->pending_len) == -NRF91_EAGAIN)
                        return;
                /* The core may have cancelled it (a FOTA image of the wrong type). */
                if (!d->active || d->id != id)
                        return;
                d->pending_len = 0;
        }
        if (d->eof) {
                finish(s, d, 0);
                return;
        }

        for (int round = 0; round < 8 && s->tx_bytes < SIM_TX_THROTTLE; round++) {
                size_t room = d->state == DL_HEADERS ? sizeof d->headers - 1 - d->headers_len : sizeof buf;
                if (room == 0) {
                        finish(s, d, -NRF91_EMSGSIZE);
                        return;
                }
                n = tls_conn_read(&d->conn, d->state == DL_HEADERS ? (uint8_t *) d->headers + d->headers_len : buf,
                                  MIN(room, (size_t) 4096));
                if (n == -EAGAIN)
                        return;
                if (n < 0) {
                        finish(s, d, sim_link_errno((int) n));
                        return;
                }
                if (n == 0) {
                        /* Closed: complete only if the body had no announced length. */
                        bool complete = d->state == DL_BODY && !d->body.chunked && d->body.content_length < 0;
                        finish(s, d, complete ? 0 : -NRF91_ECONNRESET);
                        return;
                }

                const uint8_t *body = buf;
                size_t body_len = (size_t) n;
                if (d->state == DL_HEADERS) {
                        char *end;
                        d->headers_len += (size_t) n;
                        d->headers[d->headers_len] = '\0';
                        end = strstr(d->headers, "\r\n\r\n");
                        if (!end)
                                continue;
                        size_t head = (size_t) (end + 4 - d->headers);
                        /* Bytes after the blank line are body: move them out before the headers are parsed. */
                        body_len = d->headers_len - head;
                        memcpy(buf, d->headers + head, body_len);
                        d->headers[head] = '\0';
                        r = parse_headers(s, d);
                        if (r < 0) {
                                finish(s, d, sim_link_errno(r));
                                return;
                        }
                        body = buf;
                }
                if (sim_http_body_feed(&d->body, body, body_len, deliver, d))
                        d->eof = true;
                if (d->pending_len > 0) {
                        if (nrf91_core_download_data(&s->core, id, d->pending, d->pending_len) == -NRF91_EAGAIN)
                                return;
                        if (!d->active || d->id != id)
                                return;
                        d->pending_len = 0;
                }
                if (d->eof) {
                        finish(s, d, 0);
                        return;
                }
        }
}

void sim_downloads_service(Sim *s, uint64_t now_ms) {
        for (size_t i = 0; i < SIM_MAX_DOWNLOADS; i++)
                if (s->downloads[i].active)
                        service(s, &s->downloads[i], now_ms);
}

short sim_download_events(const Sim *s, int i) {
        const SimDownload *d = &s->downloads[i];
        short ev;

        if (!d->active || d->conn.fd < 0)
                return 0;
        ev = tls_conn_events(&d->conn);
        if (d->state == DL_REQUEST)
                ev |= POLLOUT;
        if ((d->state == DL_HEADERS || d->state == DL_BODY) && d->pending_len == 0 && s->tx_bytes < SIM_TX_THROTTLE)
                ev |= POLLIN;
        return ev;
}

uint64_t sim_downloads_deadline(const Sim *s) {
        uint64_t t = UINT64_MAX;

        for (size_t i = 0; i < SIM_MAX_DOWNLOADS; i++) {
                const SimDownload *d = &s->downloads[i];
                if (!d->active)
                        continue;
                if (d->state == DL_CONNECTING)
                        t = MIN(t, tls_conn_deadline(&d->conn));
                else if ((d->pending_len > 0 || d->eof || tls_conn_pending(&d->conn)) &&
                         s->tx_bytes < SIM_TX_THROTTLE)
                        t = 0;
        }
        return t;
}
