/* SPDX-License-Identifier: MIT */
/*
 * The one line systemd shows in "systemctl status" (sd_notify STATUS=): what
 * an operator asks first.  Examples:
 *
 *   Cloud ready (mqtt.nrfcloud.com), 3/4 devices connected, outbox empty
 *   Cloud connecting: TLS handshake refused by broker (retry in 32 s), outbox 1 204 messages
 *   Waiting for the nRF91 on /dev/nrf91 (probing)
 */
#include <inttypes.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>

#include "gateway-bus.h"
#include "gateway.h"
#include "log.h"
#include "modem.h"
#include "util.h"

/* 1234567 -> "1 234 567", as the examples of the issue and ISO 80000-1 group digits. */
static void format_grouped(uint64_t n, char *buf, size_t len) {
        char digits[24];
        size_t nd, o = 0;

        nd = (size_t) snprintf(digits, sizeof digits, "%" PRIu64, n);
        for (size_t i = 0; i < nd && o + 2 < len; i++) {
                if (i > 0 && (nd - i) % 3 == 0)
                        buf[o++] = ' ';
                buf[o++] = digits[i];
        }
        buf[o] = 0;
}

unsigned gateway_devices_desired(Gateway *g) {
        const DesiredConnection *v;
        size_t n;
        return g->cloud && cloud_session_get_desired_connections(g->cloud, &v, &n) >= 0 ? (unsigned) n : 0;
}

unsigned gateway_devices_ready(Gateway *g) {
        unsigned n = 0;
        if (!g->ble)
                return 0;
        for (BleDevice *d = ble_manager_next_device(g->ble, NULL); d; d = ble_manager_next_device(g->ble, d))
                if (ble_device_state(d) == BLE_DEVICE_READY)
                        n++;
        return n;
}

static int status_cloud(Gateway *g, FILE *f) {
        const Config *c = g->config;
        const char *error = g->mqtt ? mqtt_session_last_error(g->mqtt) : NULL;
        CloudSessionState s = cloud_session_get_state(g->cloud);
        uint64_t retry = g->mqtt ? mqtt_session_next_retry_usec(g->mqtt) : 0, now = now_usec(CLOCK_BOOTTIME);
        unsigned desired = gateway_devices_desired(g);

        fprintf(f, "Cloud %s", cloud_session_state_to_string(s));
        if (s != CLOUD_SESSION_READY && error) {
                fprintf(f, ": %s", error);
                if (retry > now)
                        fprintf(f, " (retry in %" PRIu64 " s)", (retry - now + 999999) / 1000000);
        } else
                fprintf(f, " (%s)", c->cloud_host);
        if (desired > 0)
                fprintf(f, ", %u/%u device%s connected", gateway_devices_ready(g), desired, desired == 1 ? "" : "s");
        if (g->outbox) {
                uint64_t n = outbox_count(g->outbox);
                char num[32];
                format_grouped(n, num, sizeof num);
                if (n == 0)
                        fputs(", outbox empty", f);
                else
                        fprintf(f, ", outbox %s message%s", num, n == 1 ? "" : "s");
        }
        return 0;
}

static void status_modem(Gateway *g, FILE *f) {
        const Config *c = g->config;

        if (!g->modem)
                fputs("Running without a modem ([Modem] Port=none)", f);
        else if (modem_get_state(g->modem) != MODEM_READY)
                fprintf(f, "Waiting for the nRF91 on %s (%s)", c->modem_port,
                        modem_state_to_string(modem_get_state(g->modem)));
        else if (!g->modem_registered)
                fprintf(f, "nRF91 ready on %s, waiting for network registration", c->modem_port);
        else
                fputs("nRF91 registered, starting the cloud connection", f);
}

int gateway_status_text(Gateway *g, char **ret) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&text, &size);
        if (!f)
                return -ENOMEM;
        switch (g->state) {
        case GATEWAY_STARTING:
                fputs("Starting", f);
                break;
        case GATEWAY_RELOADING:
                fputs("Reloading configuration", f);
                break;
        case GATEWAY_STOPPING:
                fputs("Stopping", f);
                break;
        case GATEWAY_RUNNING:
                if (g->cloud)
                        status_cloud(g, f);
                else
                        status_modem(g, f);
                break;
        case _GATEWAY_STATE_MAX:
                break;
        }
        fputs(gateway_fota_status(g), f);
        if (fclose(f) != 0 || !text)
                return -ENOMEM;
        *ret = TAKE_PTR(text);
        return 0;
}

void gateway_status_send(Gateway *g) {
        _cleanup_free_ char *text = NULL;

        if (g->freeing || gateway_status_text(g, &text) < 0)
                return;
        if (!streq_ptr(text, g->status_text)) {
                (void) sd_notifyf(false, "STATUS=%s", text);
                free(g->status_text);
                g->status_text = TAKE_PTR(text);
        }
}

void gateway_notify_status(Gateway *g) {
        gateway_status_send(g);
        gateway_bus_changed(g->bus);
}
