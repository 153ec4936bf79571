/* SPDX-License-Identifier: MIT */
/*
 * nrf91-sim: the port operations of the host port and its poll() loop.
 */
#include <errno.h>
#include <openssl/rand.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "sim.h"

#ifndef NRF91_SIM_VERSION
#define NRF91_SIM_VERSION "0"
#endif

static Sim *SIM(void *ctx) {
        return ctx;
}

uint64_t sim_now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* ---- port operations --------------------------------------------------- */

void sim_trace(const char *dir, const uint8_t *data, size_t len) {
        char text[1024];
        size_t k = 0;

        if (log_get_max_level() < LOG_DEBUG || (len == 2 && data[0] == '\r' && data[1] == '\n'))
                return;
        for (size_t i = 0; i < len && k + 8 < sizeof text; i++) {
                uint8_t c = data[i];
                if (c == '\r')
                        k += (size_t) snprintf(text + k, sizeof text - k, "<CR>");
                else if (c == '\n')
                        k += (size_t) snprintf(text + k, sizeof text - k, "<LF>");
                else if (c >= 32 && c < 127)
                        text[k++] = (char) c;
                else
                        k += (size_t) snprintf(text + k, sizeof text - k, "\\x%02x", c);
        }
        text[k] = '\0';
        log_debug("%s %s%s", dir, text, k + 8 >= sizeof text ? "..." : "");
}

static void port_serial_write(void *ctx, const uint8_t *data, size_t len, unsigned flags) {
        if (SIM(ctx)->mute_until_ms)
                return; /* a test image that cannot talk (fota-mute) */
        sim_trace("AT ->", data, len);
        serial_write(SIM(ctx), data, len, flags);
}

static uint64_t port_uptime_ms(void *ctx) {
        (void) ctx;
        return sim_now_ms();
}

static int port_random(void *ctx, void *buf, size_t len) {
        (void) ctx;
        return RAND_bytes(buf, (int) len) == 1 ? 0 : -NRF91_EIO;
}

static int port_modem_at(void *ctx, const char *cmd, size_t len, char *out, size_t out_size) {
        ssize_t n = modem_emu_execute(SIM(ctx)->modem, cmd, len, out, out_size);

        if (n < 0)
                return n == -ENOBUFS ? -NRF91_ENOBUFS : -NRF91_EIO;
        return (int) n;
}

static int port_device_uuid(void *ctx, char out[NRF91_UUID_STR_LEN + 1]) {
        const char *uuid = modem_emu_device_uuid(SIM(ctx)->modem);

        if (!uuid || strlen(uuid) != NRF91_UUID_STR_LEN)
                return -NRF91_EIO;
        memcpy(out, uuid, NRF91_UUID_STR_LEN + 1);
        return 0;
}

static int port_versions(void *ctx, char app[NRF91_VERSION_MAX], char sdk[NRF91_VERSION_MAX]) {
        snprintf(app, NRF91_VERSION_MAX, "%s", SIM(ctx)->app_version);
        snprintf(sdk, NRF91_VERSION_MAX, "nrf91-sim-%s", NRF91_SIM_VERSION);
        return 0;
}

static void port_reset(void *ctx) {
        sim_reboot(SIM(ctx), "#XRESET");
}

static int port_modem_reset(void *ctx, struct nrf91_fota_result *fota) {
        Sim *s = SIM(ctx);

        log_info("Modem reset (#XMODEMRESET)");
        sim_sockets_close_all(s);
        sim_downloads_cancel_all(s);
        sim_fota_reset(s, true, fota);
        modem_emu_reboot(s->modem);
        return 0;
}

const struct nrf91_port sim_port_ops = {
        .serial_write = port_serial_write,
        .uptime_ms = port_uptime_ms,
        .random = port_random,
        .modem_at = port_modem_at,
        .device_uuid = port_device_uuid,
        .versions = port_versions,
        .sock_open = sim_sock_open,
        .sock_set_hostname = sim_sock_set_hostname,
        .sock_connect = sim_sock_connect,
        .sock_send = sim_sock_send,
        .sock_recv_enable = sim_sock_recv_enable,
        .sock_close = sim_sock_close,
        .download_start = sim_download_start,
        .download_cancel = sim_download_cancel,
        .fota_begin = sim_fota_begin,
        .fota_write = sim_fota_write,
        .fota_finish = sim_fota_finish,
        .fota_abort = sim_fota_abort,
        .fota_resume = sim_fota_resume,
        .fota_ops = sim_fota_ops,
        .fota_store_info = sim_fota_store_info,
        .fota_confirm = sim_fota_confirm,
        .fota_boot_result = sim_fota_boot_result,
        .reset = port_reset,
        .modem_reset = port_modem_reset,
};

/* ---- lifecycle ------------------------------------------------------------ */

void sim_reboot(Sim *s, const char *why) {
        log_notice("Application reboot (%s)", why);
        /* The core stops at once: input is lost until Ready, as on the device. */
        nrf91_core_init(&s->core, &sim_port_ops, s);
        sim_sockets_close_all(s);
        sim_downloads_cancel_all(s);
        s->mute_until_ms = 0;
        sim_power_on(s);
        modem_emu_reboot(s->modem);
        s->boot_at_ms = sim_now_ms() + SIM_BOOT_MS;
}

void sim_power_on(Sim *s) {
        struct nrf91_fota_result res;

        /* MCUboot swaps, reverts or confirms at boot; the modem takes its own image. */
        sim_fota_reset(s, false, &res);
        if (res.valid)
                (void) sim_fota_record_result(s, &res);
}

static void modem_urc(const char *line, void *userdata) {
        Sim *s = userdata;

        log_debug("Modem URC: %s", line);
        nrf91_core_urc(&s->core, line);
}

static int mkdir_p(const char *path) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *c = p + 1; *c; c++) {
                if (*c != '/')
                        continue;
                *c = '\0';
                if (mkdir(p, 0700) < 0 && errno != EEXIST)
                        return -errno;
                *c = '/';
        }
        if (mkdir(p, 0700) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

int sim_new(const SimOptions *opt, Sim **ret) {
        _cleanup_(sim_freep) Sim *s = NULL;
        sigset_t mask;
        int r;

        s = calloc(1, sizeof *s);
        if (!s)
                return log_error_errno(ENOMEM, "Out of memory");
        s->opt = *opt;
        s->in_fd = s->out_fd = s->pty_slave_fd = s->control_fd = s->signal_fd = s->fota_fd = -EBADF;
        s->delay_ms = opt->delay_ms;
        s->drop = opt->drop;
        for (int h = 0; h < NRF91_MAX_SOCKETS; h++)
                s->sockets[h].conn.fd = -EBADF;
        for (size_t i = 0; i < SIM_MAX_DOWNLOADS; i++)
                s->downloads[i].conn.fd = -EBADF;

        s->state_dir = strdup(opt->state_dir);
        if (!s->state_dir)
                return log_error_errno(ENOMEM, "Out of memory");
        r = mkdir_p(s->state_dir);
        if (r < 0)
                return log_error_errno(r, "Cannot create state directory %s: %m", s->state_dir);
        if (opt->control)
                s->control_path = strdup(opt->control);
        else if (asprintf(&s->control_path, "%s/control", s->state_dir) < 0)
                s->control_path = NULL;
        if (!s->control_path)
                return log_error_errno(ENOMEM, "Out of memory");

        r = modem_emu_new(s->state_dir, opt->uuid, opt->imei, &s->modem);
        if (r < 0)
                return log_error_errno(r, "Cannot start the emulated modem in %s: %m", s->state_dir);
        modem_emu_set_urc_callback(s->modem, modem_urc, s);
        sim_app_version_load(s);
        /* Starting the process is a power cycle: what a reset does to FOTA happens now. */
        sim_power_on(s);

        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "sigprocmask: %m");
        s->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        if (s->signal_fd < 0)
                return log_error_errno(errno, "signalfd: %m");
        signal(SIGPIPE, SIG_IGN);

        r = serial_open(s);
        if (r < 0)
                return r;
        r = control_open(s);
        if (r < 0)
                return r;

        nrf91_core_init(&s->core, &sim_port_ops, s);
        *ret = TAKE_PTR(s);
        return 0;
}

Sim *sim_free(Sim *s) {
        if (!s)
                return NULL;
        sim_sockets_close_all(s);
        sim_downloads_cancel_all(s);
        s->fota_fd = safe_close(s->fota_fd); /* a partial image stays, as in flash */
        tls_resolver_gc(true);
        control_close(s);
        serial_close(s, true);
        safe_close(s->signal_fd);
        modem_emu_free(s->modem);
        free(s->fota_url);
        free(s->control_path);
        free(s->state_dir);
        free(s);
        return NULL;
}

/* ---- the loop ----------------------------------------------------------- */

enum {
        TAG_SIGNAL = 1,
        TAG_SERIAL_IN,
        TAG_SERIAL_OUT,
        TAG_NET, /* sockets and downloads: serviced every round anyway */
};

#define TAG(x) ((void *) (uintptr_t) (x))
#define POLL_MAX (8 + SIM_CONTROL_CLIENTS + NRF91_MAX_SOCKETS + SIM_MAX_DOWNLOADS)

int sim_run(Sim *s) {
        struct pollfd p[POLL_MAX];
        void *tags[POLL_MAX];

        log_info("nrf91-sim %s: device %s, application %s", NRF91_SIM_VERSION, modem_emu_device_uuid(s->modem),
                 s->app_version);
        nrf91_core_boot(&s->core);

        while (!s->quit) {
                uint64_t now = sim_now_ms(), deadline;
                size_t n = 0;
                int timeout, r;

                if (s->mute_until_ms && now >= s->mute_until_ms)
                        sim_reboot(s, "watchdog: the test image did not answer");
                if (s->boot_at_ms && now >= s->boot_at_ms) {
                        s->boot_at_ms = 0;
                        nrf91_core_boot(&s->core);
                }
                if (s->vanished && s->reappear_ms && now >= s->reappear_ms && serial_reappear(s) < 0)
                        s->reappear_ms = now + 1000; /* try again */
                if (now >= s->next_modem_tick_ms) {
                        modem_emu_tick(s->modem, now);
                        s->next_modem_tick_ms = now + SIM_MODEM_TICK_MS;
                }
                nrf91_core_tick(&s->core);
                sim_sockets_service(s, now);
                sim_downloads_service(s, now);
                serial_feed_core(s);
                serial_flush(s, now);
                tls_resolver_gc(false);

                p[n] = (struct pollfd){ .fd = s->signal_fd, .events = POLLIN };
                tags[n++] = TAG(TAG_SIGNAL);
                serial_collect(s, p, &n, tags, TAG(TAG_SERIAL_IN), TAG(TAG_SERIAL_OUT));
                control_collect(s, p, &n, tags);
                for (int h = 0; h < NRF91_MAX_SOCKETS; h++) {
                        short ev = sim_socket_events(s, h);
                        if (ev) {
                                p[n] = (struct pollfd){ .fd = s->sockets[h].conn.fd, .events = ev };
                                tags[n++] = TAG(TAG_NET);
                        }
                }
                for (size_t i = 0; i < SIM_MAX_DOWNLOADS; i++) {
                        short ev = sim_download_events(s, (int) i);
                        if (ev) {
                                p[n] = (struct pollfd){ .fd = s->downloads[i].conn.fd, .events = ev };
                                tags[n++] = TAG(TAG_NET);
                        }
                }

                deadline = s->next_modem_tick_ms;
                if (s->boot_at_ms)
                        deadline = MIN(deadline, s->boot_at_ms);
                if (s->mute_until_ms)
                        deadline = MIN(deadline, s->mute_until_ms);
                deadline = MIN(deadline, nrf91_core_next_timeout(&s->core));
                deadline = MIN(deadline, sim_sockets_deadline(s));
                deadline = MIN(deadline, sim_downloads_deadline(s));
                deadline = MIN(deadline, serial_deadline(s));
                now = sim_now_ms();
                timeout = deadline <= now ? 0 : (int) MIN(deadline - now, (uint64_t) 1000);

                r = poll(p, n, timeout);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return log_error_errno(errno, "poll: %m");
                }
                for (size_t i = 0; i < n && r > 0; i++) {
                        if (!p[i].revents)
                                continue;
                        if (tags[i] == TAG(TAG_SIGNAL)) {
                                struct signalfd_siginfo si;
                                if (read(s->signal_fd, &si, sizeof si) == sizeof si) {
                                        log_info("Signal %u, stopping", si.ssi_signo);
                                        s->quit = true;
                                }
                        } else if (tags[i] == TAG(TAG_SERIAL_IN)) {
                                serial_readable(s);
                        } else if (tags[i] == TAG(TAG_SERIAL_OUT)) {
                                serial_flush(s, sim_now_ms());
                        } else if (control_is_tag(s, tags[i])) {
                                control_dispatch(s, tags[i], p[i].revents);
                        }
                }
        }
        /* What is still queued for the host goes out before we leave. */
        serial_flush(s, UINT64_MAX);
        return 0;
}
