/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backoff.h"
#include "http-response.h"
#include "log.h"
#include "rest-client.h"
#include "util.h"
#include "version.h"

static void *mfree(void *p) {
        free(p);
        return NULL;
}

#define RESOLVE_POLL_USEC (20u * 1000u)
#define REQUEST_HEAD_MAX 4096u

/* A getaddrinfo_a() request; glibc's thread writes into it until it is done. */
typedef struct Resolve {
        struct gaicb cb;
        struct addrinfo hints;
        char host[256];
        char service[8];
} Resolve;

struct RestClient {
        sd_event *event;
        char *host;
        unsigned port;
        bool host_is_ip;
        RestOptions opt;
        SSL_CTX *ctx;
        RestState state;

        /* The request. */
        char *request;          /* head and body, as written */
        size_t request_len, written;
        rest_done_cb cb;
        void *userdata;
        unsigned attempts;
        uint64_t deadline;      /* CLOCK_MONOTONIC end of the attempt */
        Backoff backoff;
        int last_error;
        uint64_t bytes_sent, bytes_received;

        /* The attempt. */
        Resolve *resolve;       /* in flight */
        Resolve *orphan;        /* timed out and not cancellable: freed once glibc is done with it */
        struct addrinfo *addrs; /* from the resolver */
        const struct addrinfo *next_addr;
        int fd;
        SSL *ssl;
        HttpResponse response;

        sd_event_source *io;
        sd_event_source *timer;       /* connect/total timeout of the attempt, or the backoff */
        sd_event_source *poll_timer;  /* the resolver's progress */
};

static const char *const state_table[_REST_STATE_MAX] = {
        [REST_IDLE] = "idle",           [REST_RESOLVING] = "resolving", [REST_CONNECTING] = "connecting",
        [REST_HANDSHAKE] = "handshake", [REST_SENDING] = "sending",     [REST_RECEIVING] = "receiving",
        [REST_WAITING] = "waiting",
};

const char *rest_state_to_string(RestState s) {
        return s >= 0 && s < _REST_STATE_MAX ? state_table[s] : NULL;
}

RestState rest_client_get_state(const RestClient *c) {
        return c->state;
}

const char *rest_client_host(const RestClient *c) {
        return c->host;
}

static void enter_state(RestClient *c, RestState s) {
        if (c->state == s)
                return;
        log_debug("REST %s: %s → %s", c->host, rest_state_to_string(c->state), rest_state_to_string(s));
        c->state = s;
}

static uint64_t now(void) {
        return now_usec(CLOCK_MONOTONIC);
}

static void orphan_reap(RestClient *c) {
        if (c->orphan && gai_error(&c->orphan->cb) != EAI_INPROGRESS) {
                if (c->orphan->cb.ar_result)
                        freeaddrinfo(c->orphan->cb.ar_result);
                c->orphan = mfree(c->orphan);
        }
}

static void resolve_drop(RestClient *c) {
        if (!c->resolve)
                return;
        if (gai_cancel(&c->resolve->cb) == EAI_NOTCANCELED && gai_error(&c->resolve->cb) == EAI_INPROGRESS) {
                /*
                 * Still running in glibc's thread: keep its memory until it
                 * ends.  There is at most one: attempt_start() does not
                 * start a lookup while an orphan lives.
                 */
                c->orphan = TAKE_PTR(c->resolve);
                return;
        }
        if (c->resolve->cb.ar_result)
                freeaddrinfo(c->resolve->cb.ar_result);
        c->resolve = mfree(c->resolve);
}

/* Ends the attempt's connection and sources; the request itself stays. */
static void attempt_close(RestClient *c) {
        c->io = sd_event_source_disable_unref(c->io);
        c->timer = sd_event_source_disable_unref(c->timer);
        c->poll_timer = sd_event_source_disable_unref(c->poll_timer);
        resolve_drop(c);
        if (c->addrs) {
                freeaddrinfo(c->addrs);
                c->addrs = NULL;
        }
        c->next_addr = NULL;
        if (c->ssl) {
                c->bytes_sent += BIO_number_written(SSL_get_wbio(c->ssl));
                c->bytes_received += BIO_number_read(SSL_get_rbio(c->ssl));
                SSL_free(c->ssl);
                c->ssl = NULL;
        }
        c->fd = safe_close(c->fd);
        http_response_clear(&c->response);
}

static void request_clear(RestClient *c) {
        attempt_close(c);
        c->request = mfree(c->request);
        c->request_len = c->written = 0;
        c->cb = NULL;
        c->userdata = NULL;
        enter_state(c, REST_IDLE);
}

static void finish(RestClient *c, int error) {
        RestResult r = {
                .error = error,
                .attempts = c->attempts,
        };
        rest_done_cb cb = c->cb;
        void *userdata = c->userdata;
        json_t *body = NULL;

        if (error == 0) {
                r.status = c->response.status;
                if (c->response.body) {
                        body = json_loadb(c->response.body, c->response.body_len, JSON_REJECT_DUPLICATES, NULL);
                        if (body && !json_is_object(body) && !json_is_array(body))
                                body = (json_decref(body), NULL);
                }
                r.body = body;
                /* nRF Cloud's error bodies: {"message": "...", "code": 40100, ...} */
                if (body && r.status >= 400) {
                        json_t *code = json_object_get(body, "code"), *msg = json_object_get(body, "message");
                        if (json_is_integer(code))
                                r.cloud_code = json_integer_value(code);
                        if (json_is_string(msg))
                                r.cloud_message = json_string_value(msg);
                }
        }
        /* Counted after the connection is closed, so the last attempt is in. */
        attempt_close(c);
        r.bytes_sent = c->bytes_sent;
        r.bytes_received = c->bytes_received;
        c->cb = NULL;
        request_clear(c);
        if (cb)
                cb(c, &r, userdata);
        json_decref(body);
}

static int attempt_start(RestClient *c);

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        RestClient *c = userdata;
        int r;
        (void) s, (void) usec;

        c->timer = sd_event_source_disable_unref(c->timer);
        r = attempt_start(c);
        if (r < 0)
                finish(c, r);
        return 0;
}

/* The attempt failed with error (negative errno) or, error 0, with a 5xx answer. */
static void attempt_failed(RestClient *c, int error) {
        int status = error == 0 ? c->response.status : 0;
        uint64_t delay;
        int r;

        c->last_error = error;
        if (c->attempts >= c->opt.max_attempts) {
                finish(c, error);
                return;
        }
        attempt_close(c);
        delay = backoff_next(&c->backoff);
        log_debug("REST %s: attempt %u failed (%s%d), again in %llu ms", c->host, c->attempts,
                  status ? "HTTP " : "errno ", status ? status : -error, (unsigned long long) (delay / 1000));
        r = sd_event_add_time_relative(c->event, &c->timer, CLOCK_MONOTONIC, delay, 0, on_retry, c);
        if (r < 0) {
                finish(c, error ? error : r);
                return;
        }
        enter_state(c, REST_WAITING);
}

static int update_io(RestClient *c, uint32_t events) {
        return sd_event_source_set_io_events(c->io, events);
}

static void response_complete(RestClient *c) {
        if (c->response.status >= 500)
                attempt_failed(c, 0);
        else
                finish(c, 0);
}

/* Runs the TLS state machine as far as the socket lets it. */
static void drive(RestClient *c) {
        int n = 0, e;

        for (;;) {
                switch (c->state) {
                case REST_HANDSHAKE:
                        n = SSL_connect(c->ssl);
                        if (n == 1) {
                                enter_state(c, REST_SENDING);
                                continue;
                        }
                        break;
                case REST_SENDING:
                        n = SSL_write(c->ssl, c->request + c->written, (int) (c->request_len - c->written));
                        if (n > 0) {
                                c->written += (size_t) n;
                                if (c->written == c->request_len)
                                        enter_state(c, REST_RECEIVING);
                                continue;
                        }
                        break;
                case REST_RECEIVING: {
                        char buf[4096];
                        n = SSL_read(c->ssl, buf, sizeof buf);
                        if (n > 0) {
                                int k = http_response_feed(&c->response, buf, (size_t) n);
                                if (k == 1) {
                                        response_complete(c);
                                        return;
                                }
                                if (k == -EFBIG || k == -ENOMEM) {
                                        finish(c, k); /* the same answer would come again */
                                        return;
                                }
                                if (k < 0) {
                                        attempt_failed(c, -EBADMSG);
                                        return;
                                }
                                continue;
                        }
                        e = SSL_get_error(c->ssl, n);
                        if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
                                /* The server closed: complete if the body runs to the end of the connection. */
                                if (http_response_eof(&c->response) == 1)
                                        response_complete(c);
                                else
                                        attempt_failed(c, -ECONNRESET);
                                return;
                        }
                        break;
                }
                case REST_IDLE:
                case REST_RESOLVING:
                case REST_CONNECTING:
                case REST_WAITING:
                case _REST_STATE_MAX:
                        return;
                }
                /* n <= 0 from SSL_connect/SSL_write/SSL_read */
                e = SSL_get_error(c->ssl, n);
                if (e == SSL_ERROR_WANT_READ) {
                        (void) update_io(c, EPOLLIN);
                        return;
                }
                if (e == SSL_ERROR_WANT_WRITE) {
                        (void) update_io(c, EPOLLOUT);
                        return;
                }
                {
                        unsigned long err = ERR_peek_error();
                        bool verify = c->state == REST_HANDSHAKE && SSL_get_verify_result(c->ssl) != X509_V_OK;
                        log_debug("REST %s: TLS failed in %s: %s%s", c->host, rest_state_to_string(c->state),
                                  err ? ERR_reason_error_string(err) : "connection closed",
                                  verify ? X509_verify_cert_error_string(SSL_get_verify_result(c->ssl)) : "");
                        ERR_clear_error();
                        /* A server we do not trust will not become trusted by asking again. */
                        if (verify) {
                                finish(c, -EACCES);
                                return;
                        }
                        attempt_failed(c, c->state == REST_HANDSHAKE ? -EPROTO : -ECONNRESET);
                        return;
                }
        }
}

static int connect_next(RestClient *c);

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        RestClient *c = userdata;
        (void) s, (void) revents;

        if (c->state == REST_CONNECTING) {
                int err = 0;
                socklen_t len = sizeof err;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                        err = errno;
                if (err != 0) {
                        c->last_error = -err;
                        c->io = sd_event_source_disable_unref(c->io);
                        c->fd = safe_close(c->fd);
                        if (connect_next(c) < 0)
                                attempt_failed(c, -err);
                        return 0;
                }
                c->ssl = SSL_new(c->ctx);
                if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) {
                        finish(c, -ENOMEM);
                        return 0;
                }
                if (c->host_is_ip) {
                        X509_VERIFY_PARAM *p = SSL_get0_param(c->ssl);
                        if (X509_VERIFY_PARAM_set1_ip_asc(p, c->host) != 1) {
                                finish(c, -EINVAL);
                                return 0;
                        }
                } else if (SSL_set1_host(c->ssl, c->host) != 1 || SSL_set_tlsext_host_name(c->ssl, c->host) != 1) {
                        finish(c, -ENOMEM);
                        return 0;
                }
                SSL_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
                /* Connected: from now on only the attempt's total time counts. */
                if (sd_event_source_set_time(c->timer, c->deadline) < 0) {
                        finish(c, -ENOMEM);
                        return 0;
                }
                enter_state(c, REST_HANDSHAKE);
        }
        drive(c);
        return 0;
}

/* Connects to the next resolved address; -ENOENT when none is left. */
static int connect_next(RestClient *c) {
        for (; c->next_addr; c->next_addr = c->next_addr->ai_next) {
                const struct addrinfo *a = c->next_addr;
                int fd, r;

                fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
                if (fd < 0) {
                        c->last_error = -errno;
                        continue;
                }
                if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
                        c->last_error = -errno;
                        close(fd);
                        continue;
                }
                c->fd = fd;
                r = sd_event_add_io(c->event, &c->io, fd, EPOLLOUT, on_io, c);
                if (r < 0)
                        return r;
                c->next_addr = a->ai_next;
                enter_state(c, REST_CONNECTING);
                return 0;
        }
        return c->last_error < 0 ? c->last_error : -ENOENT;
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        RestClient *c = userdata;
        (void) s, (void) usec;

        c->timer = sd_event_source_disable_unref(c->timer);
        log_debug("REST %s: timed out in %s", c->host, rest_state_to_string(c->state));
        attempt_failed(c, -ETIMEDOUT);
        return 0;
}

static void resolved(RestClient *c) {
        int e = gai_error(&c->resolve->cb), r;

        c->poll_timer = sd_event_source_disable_unref(c->poll_timer);
        if (e != 0) {
                log_debug("REST %s: cannot resolve: %s", c->host, gai_strerror(e));
                resolve_drop(c);
                attempt_failed(c, e == EAI_NONAME ? -EHOSTUNREACH : -EAGAIN);
                return;
        }
        c->addrs = TAKE_PTR(c->resolve->cb.ar_result);
        resolve_drop(c);
        c->next_addr = c->addrs;
        r = connect_next(c);
        if (r < 0)
                attempt_failed(c, r);
}

static int on_resolve_poll(sd_event_source *s, uint64_t usec, void *userdata) {
        RestClient *c = userdata;
        (void) usec;

        if (gai_error(&c->resolve->cb) == EAI_INPROGRESS)
                return sd_event_source_set_time_relative(s, RESOLVE_POLL_USEC);
        resolved(c);
        return 0;
}

static int attempt_start(RestClient *c) {
        struct gaicb *list[1];
        int r;

        c->attempts++;
        c->written = 0;
        http_response_init(&c->response, c->opt.max_response);

        /* The connect timeout first (name lookup included); once connected, the rest of the total time. */
        c->deadline = now() + c->opt.total_timeout_usec;
        r = sd_event_add_time(c->event, &c->timer, CLOCK_MONOTONIC,
                              MIN(now() + c->opt.connect_timeout_usec, c->deadline), 0, on_timeout, c);
        if (r < 0)
                return r;

        orphan_reap(c);
        if (c->orphan)
                return -EBUSY; /* the last lookup still hangs in glibc */
        c->resolve = calloc(1, sizeof *c->resolve);
        if (!c->resolve)
                return -ENOMEM;
        snprintf(c->resolve->host, sizeof c->resolve->host, "%s", c->host);
        snprintf(c->resolve->service, sizeof c->resolve->service, "%u", c->port);
        c->resolve->hints = (struct addrinfo){
                .ai_socktype = SOCK_STREAM,
                .ai_flags = AI_NUMERICSERV | (c->host_is_ip ? AI_NUMERICHOST : AI_ADDRCONFIG),
        };
        c->resolve->cb = (struct gaicb){
                .ar_name = c->resolve->host,
                .ar_service = c->resolve->service,
                .ar_request = &c->resolve->hints,
        };
        list[0] = &c->resolve->cb;
        r = getaddrinfo_a(GAI_NOWAIT, list, 1, &(struct sigevent){ .sigev_notify = SIGEV_NONE });
        if (r != 0) {
                c->resolve = mfree(c->resolve);
                return -EAGAIN;
        }
        enter_state(c, REST_RESOLVING);
        if (gai_error(&c->resolve->cb) != EAI_INPROGRESS) {
                resolved(c);
                return 0;
        }
        return sd_event_add_time_relative(c->event, &c->poll_timer, CLOCK_MONOTONIC, RESOLVE_POLL_USEC, 0,
                                          on_resolve_poll, c);
}

int rest_client_request(RestClient *c, const char *method, const char *path, const char *bearer, const json_t *body,
                        rest_done_cb cb, void *userdata) {
        _cleanup_free_ char *json = NULL;
        size_t body_len = 0;
        char head[REQUEST_HEAD_MAX];
        int n, r;

        if (!method || !path || path[0] != '/' || !cb || strpbrk(path, " \r\n") || (bearer && strpbrk(bearer, " \r\n")))
                return -EINVAL;
        if (c->state != REST_IDLE)
                return -EBUSY;
        if (body) {
                json = json_dumps(body, JSON_COMPACT);
                if (!json)
                        return -ENOMEM;
                body_len = strlen(json);
        }
        n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "User-Agent: nrfcloud-gateway/" NRFGW_VERSION "\r\n"
                     "Accept: application/json\r\n"
                     "%s%s%s"
                     "%s"
                     "Content-Length: %zu\r\n"
                     "Connection: close\r\n"
                     "\r\n",
                     method, path, c->host, bearer ? "Authorization: Bearer " : "", strempty(bearer),
                     bearer ? "\r\n" : "", body ? "Content-Type: application/json\r\n" : "", body_len);
        if (n < 0 || (size_t) n >= sizeof head)
                return -E2BIG;
        c->request = malloc((size_t) n + body_len + 1);
        if (!c->request)
                return -ENOMEM;
        memcpy(c->request, head, (size_t) n);
        if (body_len > 0)
                memcpy(c->request + n, json, body_len);
        c->request_len = (size_t) n + body_len;
        c->cb = cb;
        c->userdata = userdata;
        c->attempts = 0;
        c->last_error = 0;
        c->bytes_sent = c->bytes_received = 0;
        backoff_init(&c->backoff, c->opt.retry_min_usec, c->opt.retry_max_usec);

        r = attempt_start(c);
        if (r < 0) {
                request_clear(c);
                return r;
        }
        return 0;
}

void rest_client_cancel(RestClient *c) {
        if (c && c->state != REST_IDLE)
                request_clear(c);
}

int rest_client_new(sd_event *event, const RestOptions *o, RestClient **ret) {
        _cleanup_(rest_client_freep) RestClient *c = NULL;
        struct in6_addr a6;

        if (!event || !o || !o->host || !*o->host || !ret)
                return -EINVAL;
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->fd = -EBADF;
        c->event = sd_event_ref(event);
        c->opt = *o;
        c->opt.host = c->opt.ca_file = NULL;
        c->port = o->port ? o->port : 443;
        c->opt.connect_timeout_usec = o->connect_timeout_usec ? o->connect_timeout_usec : REST_CONNECT_TIMEOUT_USEC;
        c->opt.total_timeout_usec = o->total_timeout_usec ? o->total_timeout_usec : REST_TOTAL_TIMEOUT_USEC;
        c->opt.max_response = o->max_response ? o->max_response : REST_MAX_RESPONSE;
        c->opt.max_attempts = o->max_attempts ? o->max_attempts : REST_MAX_ATTEMPTS;
        c->opt.retry_min_usec = o->retry_min_usec ? o->retry_min_usec : REST_RETRY_MIN_USEC;
        c->opt.retry_max_usec = o->retry_max_usec ? o->retry_max_usec : REST_RETRY_MAX_USEC;
        c->host = strdup(o->host);
        if (!c->host)
                return -ENOMEM;
        c->host_is_ip = inet_pton(AF_INET, o->host, &a6) == 1 || inet_pton(AF_INET6, o->host, &a6) == 1;

        c->ctx = SSL_CTX_new(TLS_client_method());
        if (!c->ctx)
                return -ENOMEM;
        if (SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION) != 1)
                return -EIO;
        if (o->ca_file) {
                if (SSL_CTX_load_verify_locations(c->ctx, o->ca_file, NULL) != 1) {
                        ERR_clear_error();
                        return log_error_errno(EINVAL, "Cannot load the REST CA file %s", o->ca_file);
                }
        } else if (SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
                ERR_clear_error();
                return log_error_errno(EIO, "Cannot load the system's trusted CAs");
        }
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
        c->state = REST_IDLE;
        *ret = TAKE_PTR(c);
        return 0;
}

RestClient *rest_client_free(RestClient *c) {
        if (!c)
                return NULL;
        request_clear(c);
        if (c->orphan) {
                const struct gaicb *list[] = { &c->orphan->cb };
                /* glibc's thread still writes into it: wait for it at exit rather than leave it a freed block. */
                while (gai_error(&c->orphan->cb) == EAI_INPROGRESS)
                        (void) gai_suspend(list, 1, NULL);
                orphan_reap(c);
        }
        SSL_CTX_free(c->ctx);
        free(c->host);
        sd_event_unref(c->event);
        free(c);
        return NULL;
}
