/* SPDX-License-Identifier: MIT */
/*
 * Test and benchmark harness: runs the MQTT session with a durable outbox on
 * sd-event and publishes N numbered messages through the outbox, so that
 * tests can count them at the receiving end.
 *
 * Messages are {"n":<number>,"pad":"..."} on --topic.  With --progress,
 * numbers already taken into the outbox are remembered in <state-dir>/next
 * (written after the outbox was synced), so a harness killed and started
 * again goes on where it stopped; the outbox itself brings back what was not
 * acknowledged.
 *
 * stdout gets one line per event tests wait for ("state ready", "done ...",
 * "stats {...}"); the log goes to stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <systemd/sd-event.h>

#include "at-link.h"
#include "bridge.h"
#include "log.h"
#include "modem-tls.h"
#include "mqtt.h"
#include "tls-remote.h"
#include "outbox.h"
#include "util.h"

typedef struct Harness {
        sd_event *event;
        Outbox *outbox;
        MqttSession *session;
        sd_event_source *push_timer;
        char *state_dir;
        const char *topic;
        uint64_t count;     /* messages to publish in total, over all runs */
        uint64_t next;      /* next number to publish */
        double rate;        /* messages per second; 0: as fast as the outbox takes them */
        size_t payload_size;
        bool exit_when_done;
        bool progress;
        bool wait_ready; /* start publishing on the first READY (steady-state latency) */
        bool started;
        bool done;
        uint64_t start_usec, first_ack_usec, last_ack_usec;
        uint64_t start_next;
        uint64_t acked;
        /* Push time of each message of this run, by seq - first_seq. */
        uint64_t first_seq;
        uint64_t *push_usec;
        double *latency_ms;
        size_t n_latency;
        /* --bridge: TLS in a separate socket (the modem's, here OpenSSL), Paho in plain TCP. */
        TlsRemote *remote;
        /* --modem: the remote socket is a TLS socket in the nRF91 (or nrf91-sim) on that port. */
        AtLink *link;
        ModemTls *modem_tls;
        bool session_started;
        Bridge *bridge;
        char *remote_host;
        uint16_t remote_port;
} Harness;

static void on_bridge_ready(Bridge *b, const char *uri, void *userdata) {
        Harness *h = userdata;
        (void) b;
        if (mqtt_session_prepared(h->session, uri) < 0)
                bridge_stop(h->bridge);
}

static void on_bridge_closed(Bridge *b, int error, const char *reason, void *userdata) {
        Harness *h = userdata;
        (void) b;
        /* Before READY the session waits for us; afterwards Paho sees its TCP connection close. */
        if (mqtt_session_get_state(h->session) == MQTT_PREPARING)
                mqtt_session_prepare_failed(h->session, error ? error : -ECONNRESET, reason, !reason);
        else
                log_info("Bridge closed: %s", reason);
}

static int on_prepare(MqttSession *s, void *userdata) {
        Harness *h = userdata;
        (void) s;
        return bridge_start(h->bridge, h->remote_host, h->remote_port);
}

static void on_release(MqttSession *s, void *userdata) {
        Harness *h = userdata;
        (void) s;
        bridge_stop(h->bridge);
}

/* The firmware restarted or the port went away: the modem's sockets are gone. */

static void on_link_lost(AtLink *l, int error, void *userdata) {
        Harness *h = userdata;
        (void) l;
        modem_tls_link_lost(h->modem_tls, error);
}

static void on_online_command(AtEngine *e, const AtResponse *r, void *userdata) {
        char desc[160];
        (void) e, (void) userdata;
        if (r->result < 0)
                log_warning("Bringing the modem online failed: %s", at_response_describe(r, desc, sizeof desc));
}

/*
 * The modem manager has no "online" state yet: the harness brings the modem
 * online itself ("AT" first, to absorb what an earlier run left half-done).
 * Registration is learnt from the +CEREG URC or, if the modem was registered
 * already, from the answer to AT+CEREG?.
 */
static void bring_online(AtEngine *e) {
        static const char *const cmds[] = { "AT", "AT+CEREG=5", "AT+CFUN=1", "AT+CEREG?" };
        for (size_t i = 0; i < ELEMENTSOF(cmds); i++)
                (void) at_engine_send(e, cmds[i], 5000000, on_online_command, NULL);
}

static void on_link_opened(AtLink *l, void *userdata) {
        (void) userdata;
        bring_online(at_link_engine(l));
}

static void on_modem_ready_urc(AtEngine *e, const char *line, const uint8_t *payload, size_t len, void *userdata) {
        Harness *h = userdata;
        (void) line, (void) payload, (void) len;
        modem_tls_link_lost(h->modem_tls, -ECONNRESET);
        /* It restarted offline. */
        bring_online(e);
}

/*
 * Start the session once registered (stat 1 home, 5 roaming): the URC is
 * "+CEREG: <stat>[,"<tac>",...]", the answer to AT+CEREG? "+CEREG: <n>,<stat>[,...]".
 */
static void on_cereg(AtEngine *e, const char *line, const uint8_t *payload, size_t len, void *userdata) {
        Harness *h = userdata;
        AtCursor c;
        uint64_t stat;
        (void) e, (void) payload, (void) len;

        uint64_t second;

        if (at_cursor_init(&c, line, strlen(line), "+CEREG") < 0 || at_cursor_uint(&c, 5, &stat) < 0)
                return;
        if (!at_cursor_at_end(&c) && at_cursor_uint(&c, 5, &second) >= 0)
                stat = second;
        printf("cereg %" PRIu64 "\n", stat);
        fflush(stdout);
        if ((stat == 1 || stat == 5) && !h->session_started) {
                h->session_started = true;
                if (mqtt_session_start(h->session) < 0)
                        (void) sd_event_exit(h->event, 1);
        }
}

static int setup_modem(Harness *h, const char *port, unsigned sec_tag) {
        static const AtLinkCallbacks lcb = { .opened = on_link_opened, .lost = on_link_lost };
        int r;

        r = at_link_new(h->event, port, 115200, false, &h->link);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the modem port %s: %m", port);
        at_link_set_callbacks(h->link, &lcb, h);
        r = modem_tls_new(at_link_engine(h->link), sec_tag, &h->modem_tls);
        if (r >= 0)
                r = at_engine_add_urc(at_link_engine(h->link), "Ready", on_modem_ready_urc, h);
        if (r >= 0)
                r = at_engine_add_urc(at_link_engine(h->link), "+CEREG:", on_cereg, h);
        if (r >= 0)
                r = at_link_start(h->link);
        if (r < 0)
                return log_error_errno(r, "Failed to open the modem port %s: %m", port);
        return 0;
}

static int write_progress(Harness *h) {
        char path[4096], tmp[4100];
        FILE *f;

        snprintf(path, sizeof path, "%s/next", h->state_dir);
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        f = fopen(tmp, "we");
        if (!f)
                return -errno;
        fprintf(f, "%" PRIu64 "\n", h->next);
        if (fflush(f) != 0 || fsync(fileno(f)) < 0) {
                fclose(f);
                return -errno;
        }
        fclose(f);
        return rename(tmp, path) < 0 ? -errno : 0;
}

static uint64_t read_progress(const char *dir) {
        char path[4096];
        unsigned long long v = 0;
        FILE *f;

        snprintf(path, sizeof path, "%s/next", dir);
        f = fopen(path, "re");
        if (!f)
                return 0;
        if (fscanf(f, "%llu", &v) != 1)
                v = 0;
        fclose(f);
        return v;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

static double percentile(double *v, size_t n, double p) {
        size_t i;
        if (n == 0)
                return NAN;
        i = (size_t) ceil(p / 100.0 * (double) n);
        return v[i == 0 ? 0 : i - 1];
}

static void print_stats(Harness *h) {
        struct rusage ru;
        double cpu, wall, p50, p99;
        uint64_t n = h->next - h->start_next;

        (void) getrusage(RUSAGE_SELF, &ru);
        cpu = (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6 + (double) ru.ru_stime.tv_sec +
              (double) ru.ru_stime.tv_usec / 1e6;
        wall = (double) (h->last_ack_usec - h->start_usec) / 1e6;
        qsort(h->latency_ms, h->n_latency, sizeof(double), cmp_double);
        p50 = percentile(h->latency_ms, h->n_latency, 50);
        p99 = percentile(h->latency_ms, h->n_latency, 99);
        printf("stats {\"published\": %" PRIu64 ", \"acked\": %" PRIu64 ", \"seconds\": %.3f, \"msg_per_s\": %.1f, "
               "\"p50_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f, \"cpu_s\": %.3f, \"cpu_us_per_msg\": %.1f, "
               "\"cpu_percent\": %.2f, \"dropped\": %" PRIu64 ", \"wakeups\": %" PRIu64 "}\n",
               n, h->acked, wall, wall > 0 ? (double) h->acked / wall : 0.0, p50, p99,
               h->n_latency ? h->latency_ms[h->n_latency - 1] : NAN, cpu,
               h->acked ? cpu * 1e6 / (double) h->acked : 0.0, wall > 0 ? 100.0 * cpu / wall : 0.0,
               outbox_dropped(h->outbox), mqtt_session_wakeups(h->session));
        fflush(stdout);
}

static void check_done(Harness *h) {
        if (h->done || h->next < h->count || outbox_count(h->outbox) > 0)
                return;
        h->done = true;
        printf("done %" PRIu64 "\n", h->next);
        print_stats(h);
        if (h->exit_when_done)
                mqtt_session_stop(h->session);
}

static int push_some(Harness *h, uint64_t upto) {
        char *buf = malloc(h->payload_size + 64);
        uint64_t pushed = 0;
        int r = 0;

        if (!buf)
                return -ENOMEM;
        while (h->next < upto) {
                uint64_t seq;
                int len = snprintf(buf, h->payload_size + 64, "{\"n\":%" PRIu64 ",\"pad\":\"", h->next);
                while ((size_t) len + 2 < h->payload_size)
                        buf[len++] = 'x';
                buf[len++] = '"';
                buf[len++] = '}';
                r = mqtt_session_publish(h->session, OUTBOX_NOTIFICATION, h->topic, buf, (size_t) len, &seq);
                if (r == -ENOBUFS)
                        break; /* full of undroppable entries: try later */
                if (r < 0)
                        break;
                if (h->first_seq == 0)
                        h->first_seq = seq;
                if (seq - h->first_seq < h->count)
                        h->push_usec[seq - h->first_seq] = now_usec(CLOCK_MONOTONIC);
                h->next++;
                pushed++;
        }
        free(buf);
        if (pushed > 0 && h->progress) {
                /* Durable before the progress file says so.  Without --progress the session's
                 * own group commit (once per loop iteration) is all, as in the daemon. */
                int k = outbox_sync(h->outbox);
                if (k < 0)
                        return log_error_errno(k, "Failed to sync the outbox: %m");
                k = write_progress(h);
                if (k < 0)
                        return log_error_errno(k, "Failed to write the progress file: %m");
        }
        return r == -ENOBUFS ? 0 : r;
}

static int on_push_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Harness *h = userdata;
        uint64_t now = now_usec(CLOCK_MONOTONIC), due;
        int r;
        (void) usec;

        if (h->rate > 0)
                due = h->start_next + (uint64_t) ((double) (now - h->start_usec) / 1e6 * h->rate) + 1;
        else
                due = h->next + 1000; /* a batch per iteration keeps the loop responsive */
        r = push_some(h, MIN(due, h->count));
        if (r < 0)
                return sd_event_exit(h->event, 1);
        if (h->next >= h->count) {
                h->push_timer = sd_event_source_disable_unref(h->push_timer);
                check_done(h);
                return 0;
        }
        /* Every millisecond at a given rate, at once when flooding. */
        return sd_event_source_set_time_relative(s, h->rate > 0 ? 1000 : 1) < 0 ? sd_event_exit(h->event, 1)
                                                                               : sd_event_source_set_enabled(s, SD_EVENT_ON);
}

static int start_publishing(Harness *h) {
        h->started = true;
        h->start_usec = now_usec(CLOCK_MONOTONIC);
        if (h->next >= h->count)
                return 0;
        return sd_event_add_time_relative(h->event, &h->push_timer, CLOCK_MONOTONIC, 0, 0, on_push_timer, h);
}

static void on_state(MqttSession *s, MqttState old, MqttState n, void *userdata) {
        Harness *h = userdata;
        (void) s, (void) old;
        printf("state %s\n", mqtt_state_to_string(n));
        fflush(stdout);
        if (n == MQTT_READY && !h->started && start_publishing(h) < 0)
                (void) sd_event_exit(h->event, 1);
        if (n == MQTT_READY)
                check_done(h);
}

static void on_acked(MqttSession *s, uint64_t seq, void *userdata) {
        Harness *h = userdata;
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        (void) s;

        h->acked++;
        if (!h->first_ack_usec)
                h->first_ack_usec = now;
        h->last_ack_usec = now;
        if (h->first_seq && seq >= h->first_seq && seq - h->first_seq < h->count &&
            h->push_usec[seq - h->first_seq]) {
                h->latency_ms[h->n_latency++] = (double) (now - h->push_usec[seq - h->first_seq]) / 1000.0;
                h->push_usec[seq - h->first_seq] = 0;
        }
        check_done(h);
}

static void on_message(MqttSession *s, const char *topic, const uint8_t *payload, size_t len, void *userdata) {
        (void) s, (void) userdata;
        printf("message %s %zu %.*s\n", topic, len, (int) MIN(len, (size_t) 200), (const char *) payload);
        fflush(stdout);
}

static void on_stopped(MqttSession *s, void *userdata) {
        Harness *h = userdata;
        (void) s;
        (void) sd_event_exit(h->event, 0);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Harness *h = userdata;
        (void) s, (void) si;
        if (mqtt_session_get_state(h->session) == MQTT_IDLE)
                return sd_event_exit(h->event, 0);
        mqtt_session_stop(h->session);
        return 0;
}

static void usage(void) {
        fprintf(stderr,
                "cloud-harness --uri URI --client-id ID --state-dir DIR --topic T [--count N] [--rate R]\n"
                "  [--payload-size B] [--ca F --cert F --key F] [--window W] [--keepalive S]\n"
                "  [--max-messages N] [--max-bytes B] [--reconnect-min-ms MS] [--reconnect-max-ms MS]\n"
                "  [--subscribe T]... [--exit-when-done] [--progress] [--wait-ready] [--bridge] [--debug]\n"
                "  [--modem TTY [--sec-tag N]]   (modem TLS mode: implies --bridge, TLS in the nRF91)\n");
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "uri", required_argument, NULL, 'u' },
                { "client-id", required_argument, NULL, 'i' },
                { "state-dir", required_argument, NULL, 'd' },
                { "topic", required_argument, NULL, 't' },
                { "count", required_argument, NULL, 'n' },
                { "rate", required_argument, NULL, 'r' },
                { "payload-size", required_argument, NULL, 'p' },
                { "ca", required_argument, NULL, 'C' },
                { "cert", required_argument, NULL, 'E' },
                { "key", required_argument, NULL, 'K' },
                { "window", required_argument, NULL, 'w' },
                { "keepalive", required_argument, NULL, 'k' },
                { "max-messages", required_argument, NULL, 'm' },
                { "max-bytes", required_argument, NULL, 'b' },
                { "reconnect-min-ms", required_argument, NULL, 'a' },
                { "reconnect-max-ms", required_argument, NULL, 'z' },
                { "max-incoming", required_argument, NULL, 'I' },
                { "subscribe", required_argument, NULL, 's' },
                { "exit-when-done", no_argument, NULL, 'x' },
                { "progress", no_argument, NULL, 'P' },
                { "wait-ready", no_argument, NULL, 'W' },
                { "bridge", no_argument, NULL, 'B' },
                { "debug", no_argument, NULL, 'D' },
                { "modem", required_argument, NULL, 'M' },
                { "sec-tag", required_argument, NULL, 'S' },
                {},
        };
        Harness h = { .payload_size = 200, .count = 0 };
        MqttOptions o = { .keepalive_sec = 60, .reconnect_min_usec = 1000000, .reconnect_max_usec = 30000000 };
        OutboxLimits lim = { .max_messages = 100000, .max_bytes = 64u << 20 };
        MqttCallbacks cb = {
                .state_changed = on_state, .message = on_message, .acked = on_acked, .stopped = on_stopped,
        };
        bool use_bridge = false;
        const char *modem_port = NULL;
        unsigned sec_tag = 16842753;
        char **subs = NULL;
        char outbox_dir[4200];
        sigset_t ss;
        int c, r, ret = 0;

        log_setup(LOG_TARGET_CONSOLE);
        log_set_max_level(LOG_INFO);
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                switch (c) {
                case 'u': o.server_uri = optarg; break;
                case 'i': o.client_id = optarg; break;
                case 'd': h.state_dir = optarg; break;
                case 't': h.topic = optarg; break;
                case 'n': h.count = strtoull(optarg, NULL, 10); break;
                case 'r': h.rate = strtod(optarg, NULL); break;
                case 'p': h.payload_size = strtoul(optarg, NULL, 10); break;
                case 'C': o.ca_file = optarg; break;
                case 'E': o.cert_file = optarg; break;
                case 'K': o.key_file = optarg; break;
                case 'w': o.window = (unsigned) strtoul(optarg, NULL, 10); break;
                case 'k': o.keepalive_sec = (unsigned) strtoul(optarg, NULL, 10); break;
                case 'm': lim.max_messages = strtoull(optarg, NULL, 10); break;
                case 'b': lim.max_bytes = strtoull(optarg, NULL, 10); break;
                case 'a': o.reconnect_min_usec = strtoull(optarg, NULL, 10) * 1000; break;
                case 'z': o.reconnect_max_usec = strtoull(optarg, NULL, 10) * 1000; break;
                case 'I': o.max_incoming_bytes = strtoull(optarg, NULL, 10); break;
                case 's':
                        if (strv_extendf(&subs, "%s", optarg) < 0)
                                return 1;
                        break;
                case 'x': h.exit_when_done = true; break;
                case 'P': h.progress = true; break;
                case 'W': h.wait_ready = true; break;
                case 'B': use_bridge = true; break;
                case 'D': log_set_max_level(LOG_DEBUG); break;
                case 'M': modem_port = optarg; use_bridge = true; break;
                case 'S': sec_tag = (unsigned) strtoul(optarg, NULL, 10); break;
                default: usage(); return 2;
                }
        }
        if (!o.server_uri || !o.client_id || !h.state_dir || !h.topic) {
                usage();
                return 2;
        }
        h.state_dir = strdup(h.state_dir);
        h.push_usec = calloc(h.count + 1, sizeof(uint64_t));
        h.latency_ms = calloc(h.count + 1, sizeof(double));
        if (!h.state_dir || !h.push_usec || !h.latency_ms) {
                ret = 1;
                goto finish;
        }

        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        sigprocmask(SIG_BLOCK, &ss, NULL);
        r = sd_event_default(&h.event);
        if (r < 0)
                { ret = 1; goto finish; }
        (void) sd_event_add_signal(h.event, NULL, SIGTERM, on_signal, &h);
        (void) sd_event_add_signal(h.event, NULL, SIGINT, on_signal, &h);

        (void) mkdir(h.state_dir, 0700);
        snprintf(outbox_dir, sizeof outbox_dir, "%s/outbox", h.state_dir);
        r = outbox_new(outbox_dir, &lim, &h.outbox);
        if (r < 0) {
                log_error_errno(r, "Failed to open the outbox in %s: %m", outbox_dir);
                { ret = 1; goto finish; }
        }
        h.next = h.start_next = h.progress ? read_progress(h.state_dir) : 0;
        log_info("Outbox holds %" PRIu64 " message(s), publishing from %" PRIu64 " to %" PRIu64,
                 outbox_count(h.outbox), h.next, h.count);

        if (use_bridge) {
                static const BridgeCallbacks bcb = { .ready = on_bridge_ready, .closed = on_bridge_closed };
                unsigned port;
                char host[256];

                if (sscanf(o.server_uri, "ssl://%255[^:]:%u", host, &port) != 2 || port == 0 || port > 65535) {
                        log_error("--bridge needs --uri ssl://HOST:PORT");
                        { ret = 2; goto finish; }
                }
                h.remote_host = strdup(host);
                h.remote_port = (uint16_t) port;
                if (!h.remote_host)
                        { ret = 1; goto finish; }
                if (modem_port) {
                        /* The credentials are the modem's, in sec_tag: no files on this side. */
                        if (setup_modem(&h, modem_port, sec_tag) < 0)
                                { ret = 1; goto finish; }
                        r = bridge_new(h.event, &modem_tls_ops, h.modem_tls, &bcb, &h, &h.bridge);
                } else {
                        r = tls_remote_new(h.event, o.ca_file, o.cert_file, o.key_file, &h.remote);
                        if (r < 0)
                                { ret = 1; goto finish; }
                        r = bridge_new(h.event, &tls_remote_ops, h.remote, &bcb, &h, &h.bridge);
                }
                if (r < 0)
                        { ret = 1; goto finish; }
                /* Paho speaks plain MQTT to the bridge; TLS is the remote socket's. */
                o.server_uri = NULL;
                o.ca_file = o.cert_file = o.key_file = NULL;
                cb.prepare = on_prepare;
                cb.release = on_release;
        }

        r = mqtt_session_new(h.event, &o, h.outbox, &cb, &h, &h.session);
        if (r < 0) {
                log_error_errno(r, "Failed to set up the MQTT session: %m");
                { ret = 1; goto finish; }
        }
        for (char **t = subs; t && *t; t++)
                if (mqtt_session_subscribe(h.session, *t) < 0)
                        { ret = 1; goto finish; }
        subs = strv_free(subs);

        if (!h.wait_ready && start_publishing(&h) < 0)
                { ret = 1; goto finish; }
        if (!modem_port) { /* with a modem: once it is registered */
                r = mqtt_session_start(h.session);
                if (r < 0)
                        { ret = 1; goto finish; }
        }
        r = sd_event_loop(h.event);
        ret = r < 0 ? 1 : r;

finish:
        /* Every path frees everything: the sanitizer build checks for leaks. */
        subs = strv_free(subs);
        h.push_timer = sd_event_source_disable_unref(h.push_timer);
        h.session = mqtt_session_free(h.session);
        h.bridge = bridge_free(h.bridge);
        h.remote = tls_remote_free(h.remote);
        h.modem_tls = modem_tls_free(h.modem_tls);
        h.link = at_link_free(h.link);
        free(h.remote_host);
        h.outbox = outbox_free(h.outbox);
        h.event = sd_event_unref(h.event);
        free(h.push_usec);
        free(h.latency_ms);
        free(h.state_dir);
        return ret;
}
