/* SPDX-License-Identifier: MIT */
/*
 * ble-bench: the receiving side of the BLE notification benchmark.  Runs the
 * BLE layer against ble-emitter (on DBUS_SYSTEM_BUS_ADDRESS), keeps DEVICES
 * devices connected, subscribes one characteristic on each, and measures
 * from the first to the last of NOTIFICATIONS notifications: rate, CPU
 * time per notification (user+system of this process), and loss or
 * reordering by per-characteristic sequence numbers.  Also prints the RSS
 * with every device connected and subscribed.
 *
 *   ble-bench DEVICES NOTIFICATIONS [acquire]
 *
 * "acquire" sets [Bluetooth] AcquireNotify=yes: notifications then come
 * over the AcquireNotify socket instead of dbus-daemon.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <systemd/sd-event.h>
#include <time.h>

#include "ble.h"
#include "config.h"
#include "log.h"
#include "util.h"

#define SVC "6E400001B5A3F393E0A9E50E24DCCA9E"
#define CHRC "6E400003B5A3F393E0A9E50E24DCCA9E"

static sd_event *event;
static BleManager *ble;
static unsigned n_devs, n_subscribed;
static unsigned long total, received, gaps, reordered;
static uint32_t *next_seq;
static double t_start, t_first, t_last, t_subscribed;
static struct rusage ru_first, ru_last;
static long rss_connected_kb;
static sd_event_source *idle_timer;

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static long status_kb(const char *key) {
        FILE *f = fopen("/proc/self/status", "re");
        char line[256];
        long v = -1;
        size_t n = strlen(key);

        if (!f)
                return -1;
        while (fgets(line, sizeof line, f))
                if (strncmp(line, key, n) == 0 && line[n] == ':') {
                        v = strtol(line + n + 1, NULL, 10);
                        break;
                }
        fclose(f);
        return v;
}

static unsigned index_of(BleDevice *d) {
        const char *a = ble_device_address(d);
        return (unsigned) strtoul(a + 12, NULL, 16) << 8 | (unsigned) strtoul(a + 15, NULL, 16);
}

static int idle_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) s;
        (void) usec;
        (void) userdata;
        fprintf(stderr, "bench: no notification for 30 s, stopping\n");
        sd_event_exit(event, 0);
        return 0;
}

static void arm_idle(void) {
        /* Long enough for the runner's --prefill, which holds this process stopped meanwhile. */
        uint64_t when = now_usec(CLOCK_MONOTONIC) + 30 * UINT64_C(1000000);
        if (idle_timer)
                (void) sd_event_source_set_time(idle_timer, when);
        else
                (void) sd_event_add_time(event, &idle_timer, CLOCK_MONOTONIC, when, 0, idle_handler, NULL);
}

static void on_notify_enabled(BleDevice *d, const BleOpResult *r, void *userdata) {
        (void) d;
        (void) userdata;
        if (r->error < 0) {
                fprintf(stderr, "bench: StartNotify failed: %s\n", strerror(-r->error));
                sd_event_exit(event, 1);
                return;
        }
        if (++n_subscribed == n_devs) {
                t_subscribed = now_s();
                rss_connected_kb = status_kb("VmRSS");
                printf("bench: %u devices connected and subscribed in %.3f s, RSS %ld kB\n", n_devs,
                       t_subscribed - t_start, rss_connected_kb);
                fflush(stdout);
                arm_idle();
        }
}

static void on_presence(BleManager *m, bool present, void *userdata) {
        char **l = calloc(n_devs + 1, sizeof(char *));
        (void) userdata;
        if (!present || !l)
                return free(l);
        for (unsigned i = 0; i < n_devs; i++)
                if (asprintf(&l[i], "10:00:00:00:%02X:%02X", i >> 8, i & 0xff) < 0)
                        return;
        if (ble_manager_set_desired(m, l) < 0)
                sd_event_exit(event, 1);
        strv_free(l);
}

static void on_state(BleManager *m, BleDevice *d, BleDeviceState old, BleDeviceState new, void *userdata) {
        (void) m;
        (void) old;
        (void) userdata;
        if (new == BLE_DEVICE_READY && ble_device_set_notify(d, SVC, CHRC, true, on_notify_enabled, NULL) < 0)
                sd_event_exit(event, 1);
}

static void on_notification(BleManager *m, BleDevice *d, const char *su, const char *cu, const uint8_t *v, size_t n,
                            void *userdata) {
        unsigned i = index_of(d);
        uint32_t seq;

        (void) m;
        (void) su;
        (void) cu;
        (void) userdata;
        if (n < 4 || i >= n_devs)
                return;
        seq = (uint32_t) v[0] | (uint32_t) v[1] << 8 | (uint32_t) v[2] << 16 | (uint32_t) v[3] << 24;
        if (received == 0) {
                t_first = now_s();
                getrusage(RUSAGE_SELF, &ru_first);
        }
        if (seq > next_seq[i])
                gaps += seq - next_seq[i];
        else if (seq < next_seq[i])
                reordered++;
        next_seq[i] = seq + 1;
        received++;
        if (received % 1024 == 0)
                arm_idle();
        if (received == total) {
                t_last = now_s();
                getrusage(RUSAGE_SELF, &ru_last);
                sd_event_exit(event, 0);
        }
}

static double tv(const struct timeval *t) {
        return (double) t->tv_sec + (double) t->tv_usec / 1e6;
}

int main(int argc, char **argv) {
        BleCallbacks cb = { .bluez_presence = on_presence, .device_state = on_state, .notification = on_notification };
        Config *config = NULL;
        int r;

        if (argc < 3)
                return 2;
        n_devs = (unsigned) strtoul(argv[1], NULL, 10);
        total = strtoul(argv[2], NULL, 10);
        if (n_devs == 0 || n_devs > 100)
                return 2;
        next_seq = calloc(n_devs, sizeof *next_seq);
        log_setup(LOG_TARGET_CONSOLE);
        log_set_max_level(LOG_WARNING);
        r = config_new(&config);
        if (r < 0 || !next_seq)
                return 1;
        config->max_connections = n_devs;
        config->acquire_notify = argc > 3 && streq(argv[3], "acquire");
        t_start = now_s();
        r = sd_event_default(&event);
        if (r >= 0)
                r = ble_manager_new(event, NULL, config, &cb, NULL, &ble);
        if (r >= 0)
                r = ble_manager_start(ble);
        if (r < 0) {
                fprintf(stderr, "bench: setup: %s\n", strerror(-r));
                return 1;
        }
        r = sd_event_loop(event);
        if (received > 0 && t_last == 0) {
                t_last = now_s();
                getrusage(RUSAGE_SELF, &ru_last);
        }
        {
                double wall = t_last - t_first;
                double cpu = tv(&ru_last.ru_utime) - tv(&ru_first.ru_utime) + tv(&ru_last.ru_stime) - tv(&ru_first.ru_stime);
                unsigned long lost = total - received + 0 * gaps;
                printf("bench: devices=%u expected=%lu received=%lu lost=%lu gaps=%lu reordered=%lu\n", n_devs, total,
                       received, lost, gaps, reordered);
                if (received > 1)
                        printf("bench: wall=%.3f s rate=%.0f notifications/s cpu=%.3f s cpu_per_notification=%.2f us\n",
                               wall, (double) (received - 1) / wall, cpu, cpu * 1e6 / (double) (received - 1));
                printf("bench: rss_connected=%ld kB hwm=%ld kB\n", rss_connected_kb, status_kb("VmHWM"));
        }
        idle_timer = sd_event_source_disable_unref(idle_timer);
        ble = ble_manager_free(ble);
        config_free(config);
        free(next_seq);
        sd_event_unref(event);
        return r < 0 || received != total || gaps || reordered ? 1 : 0;
}
