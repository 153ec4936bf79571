/* SPDX-License-Identifier: MIT */
/*
 * paho-bare: the floor to measure the gateway's cost per message against.
 *
 * A bare Paho MQTTAsync client, configured as the daemon configures its own
 * (MQTT 3.1.1, clean session, mutual TLS with host name check), connects to
 * the broker, then publishes the payload of a file at QoS 1 on one topic at a
 * steady rate for a number of seconds, and waits for every PUBACK.  Nothing
 * else: no outbox, no event loop, no D-Bus; one paced thread calling
 * MQTTAsync_sendMessage() and Paho's own two threads.
 *
 * It prints one line per phase on stdout, so that a benchmark can read its
 * CPU (/proc/PID/stat, /proc/PID/task/ and context switches) around the run:
 *   "connected"            after CONNACK, then 1 s of quiet before publishing
 *   "start"                just before the first publish
 *   "done SENT ACKED SECS" once every publish is acknowledged (or timed out)
 * and then waits for its standard input to close before it disconnects.
 *
 * Usage: paho-bare --uri ssl://127.0.0.1:PORT --ca FILE --cert FILE --key FILE --topic T
 *                  --payload FILE [--client-id ID] [--rate N] [--seconds S]
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int connected = 0; /* 1 connected, -1 failed */
static uint64_t acked = 0, failed = 0;

static void signal_locked(void) {
        pthread_cond_broadcast(&cond);
        pthread_mutex_unlock(&lock);
}

static void on_connect(void *ctx, MQTTAsync_successData *r) {
        (void) ctx, (void) r;
        pthread_mutex_lock(&lock);
        connected = 1;
        signal_locked();
}

static void on_connect_failure(void *ctx, MQTTAsync_failureData *r) {
        (void) ctx;
        fprintf(stderr, "paho-bare: connect failed: %d %s\n", r ? r->code : 0, r && r->message ? r->message : "");
        pthread_mutex_lock(&lock);
        connected = -1;
        signal_locked();
}

static void on_published(void *ctx, MQTTAsync_successData *r) {
        (void) ctx, (void) r;
        pthread_mutex_lock(&lock);
        acked++;
        signal_locked();
}

static void on_publish_failure(void *ctx, MQTTAsync_failureData *r) {
        (void) ctx, (void) r;
        pthread_mutex_lock(&lock);
        failed++;
        signal_locked();
}

static void on_lost(void *ctx, char *cause) {
        (void) ctx;
        fprintf(stderr, "paho-bare: connection lost: %s\n", cause ? cause : "");
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m) {
        (void) ctx, (void) topic_len;
        MQTTAsync_freeMessage(&m);
        MQTTAsync_free(topic);
        return 1;
}

static double now_sec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static char *read_file(const char *path, size_t *len) {
        FILE *f = fopen(path, "rb");
        char *buf;
        long n;

        if (!f)
                return NULL;
        if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0) {
                fclose(f);
                return NULL;
        }
        buf = malloc((size_t) n + 1);
        if (buf && fread(buf, 1, (size_t) n, f) != (size_t) n) {
                free(buf);
                buf = NULL;
        }
        fclose(f);
        *len = (size_t) n;
        return buf;
}

/* Waits until pred() holds or the deadline (CLOCK_REALTIME, as the condition variable's). */
static bool wait_for(bool (*pred)(void *), void *arg, double seconds) {
        struct timespec dl;
        bool ok;

        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += (time_t) seconds;
        pthread_mutex_lock(&lock);
        while (!(ok = pred(arg)))
                if (pthread_cond_timedwait(&cond, &lock, &dl) == ETIMEDOUT) {
                        ok = pred(arg);
                        break;
                }
        pthread_mutex_unlock(&lock);
        return ok;
}

static bool is_connected(void *arg) {
        (void) arg;
        return connected != 0;
}

static bool all_acked(void *arg) {
        return acked + failed >= *(uint64_t *) arg;
}

int main(int argc, char *argv[]) {
        static const struct option opts[] = {
                { "uri", required_argument, NULL, 'u' },     { "ca", required_argument, NULL, 'a' },
                { "cert", required_argument, NULL, 'c' },    { "key", required_argument, NULL, 'k' },
                { "topic", required_argument, NULL, 't' },   { "payload", required_argument, NULL, 'p' },
                { "client-id", required_argument, NULL, 'i' }, { "rate", required_argument, NULL, 'r' },
                { "seconds", required_argument, NULL, 's' }, {}
        };
        const char *uri = NULL, *ca = NULL, *cert = NULL, *key = NULL, *topic = NULL, *payload_file = NULL;
        const char *client_id = "paho-bare";
        double rate = 100, seconds = 10, t0, t1;
        MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
        MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer;
        MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
        MQTTAsync client;
        struct timespec next;
        char *payload, line[16];
        size_t payload_len = 0;
        uint64_t n, sent = 0;
        int c, r;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0)
                switch (c) {
                case 'u': uri = optarg; break;
                case 'a': ca = optarg; break;
                case 'c': cert = optarg; break;
                case 'k': key = optarg; break;
                case 't': topic = optarg; break;
                case 'p': payload_file = optarg; break;
                case 'i': client_id = optarg; break;
                case 'r': rate = atof(optarg); break;
                case 's': seconds = atof(optarg); break;
                default: return 2;
                }
        if (!uri || !ca || !cert || !key || !topic || !payload_file || rate <= 0 || seconds <= 0) {
                fprintf(stderr, "usage: %s --uri URI --ca F --cert F --key F --topic T --payload F "
                                "[--client-id ID] [--rate N] [--seconds S]\n", argv[0]);
                return 2;
        }
        payload = read_file(payload_file, &payload_len);
        if (!payload) {
                fprintf(stderr, "paho-bare: cannot read %s\n", payload_file);
                return 1;
        }

        co.sendWhileDisconnected = 0;
        co.MQTTVersion = MQTTVERSION_3_1_1;
        if (MQTTAsync_createWithOptions(&client, uri, client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL, &co) !=
            MQTTASYNC_SUCCESS)
                return 1;
        MQTTAsync_setCallbacks(client, NULL, on_lost, on_message, NULL);
        o.keepAliveInterval = 60;
        o.cleansession = 1;
        o.MQTTVersion = MQTTVERSION_3_1_1;
        o.maxInflight = 64;
        o.onSuccess = on_connect;
        o.onFailure = on_connect_failure;
        ssl.trustStore = ca;
        ssl.keyStore = cert;
        ssl.privateKey = key;
        ssl.enableServerCertAuth = 1;
        ssl.verify = 1;
        ssl.sslVersion = MQTT_SSL_VERSION_TLS_1_2;
        o.ssl = &ssl;
        r = MQTTAsync_connect(client, &o);
        if (r != MQTTASYNC_SUCCESS || !wait_for(is_connected, NULL, 20) || connected < 0) {
                fprintf(stderr, "paho-bare: not connected (%d)\n", r);
                return 1;
        }
        printf("connected\n");
        fflush(stdout);
        sleep(1);

        n = (uint64_t) (rate * seconds + 0.5);
        printf("start\n");
        fflush(stdout);
        t0 = now_sec();
        clock_gettime(CLOCK_MONOTONIC, &next);
        for (uint64_t i = 0; i < n; i++) {
                MQTTAsync_message m = MQTTAsync_message_initializer;
                MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
                uint64_t ns = (uint64_t) next.tv_nsec + (uint64_t) (1e9 / rate);

                m.payload = payload;
                m.payloadlen = (int) payload_len;
                m.qos = 1;
                ro.onSuccess = on_published;
                ro.onFailure = on_publish_failure;
                if (MQTTAsync_sendMessage(client, topic, &m, &ro) == MQTTASYNC_SUCCESS)
                        sent++;
                next.tv_sec += (time_t) (ns / 1000000000u);
                next.tv_nsec = (long) (ns % 1000000000u);
                while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
                        ;
        }
        (void) wait_for(all_acked, &sent, 30);
        t1 = now_sec();
        pthread_mutex_lock(&lock);
        printf("done %" PRIu64 " %" PRIu64 " %.3f\n", sent, acked, t1 - t0);
        pthread_mutex_unlock(&lock);
        fflush(stdout);

        while (fgets(line, sizeof line, stdin))
                ;
        MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
        d.timeout = 1000;
        (void) MQTTAsync_disconnect(client, &d);
        usleep(200 * 1000);
        MQTTAsync_destroy(&client);
        free(payload);
        return acked == sent ? 0 : 1;
}
