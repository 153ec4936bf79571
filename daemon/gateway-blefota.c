/* SPDX-License-Identifier: MIT */
/*
 * FOTA of BLE devices (daemon/blefota/) wired to the cloud session, the BLE
 * manager and the modem's downloads.  Offered only with [Bluetooth] Fota=yes,
 * a modem (the images come through the nRF91) and Bluetooth.
 */
#include <stdio.h>
#include <sys/stat.h>

#include "blefota-bus.h"
#include "blefota-manager.h"
#include "gateway.h"
#include "log.h"
#include "modem-download.h"
#include "modem.h"

static int blefota_publish_update(void *userdata, const char *payload, void (*done)(int error, void *userdata),
                                  void *done_userdata) {
        Gateway *g = userdata;
        return g->cloud ? cloud_session_publish_jobs_ble_update(g->cloud, payload, done, done_userdata) : -ENOTCONN;
}

static int blefota_request_job(void *userdata, const char *payload) {
        Gateway *g = userdata;
        return g->cloud ? cloud_session_publish_jobs_ble_req(g->cloud, payload, strlen(payload)) : -ENOTCONN;
}

/* Device1.Fota*: served with or without BLE FOTA (then "" and 0), so that the API does not change with it. */
static void gateway_blefota_bus_start(Gateway *g) {
        int r;

        if (g->blefota_bus)
                return;
        r = blefota_bus_new(g->event, g->bus, g->blefota, &g->blefota_bus);
        if (r < 0)
                log_warning_errno(r, "The progress of BLE FOTA jobs is not shown on D-Bus: %m");
}

/* A job ended: the operations the cloud sent to the device meanwhile run now. */
static void blefota_job_ended(void *userdata, const char *address) {
        Gateway *g = userdata;
        if (g->protocol)
                protocol_device_resume(g->protocol, address);
}

int gateway_blefota_start(Gateway *g) {
        static const BleFotaOps ops = {
                .publish_update = blefota_publish_update,
                .request_job = blefota_request_job,
                .job_ended = blefota_job_ended,
        };
        _cleanup_free_ char *dir = NULL;
        int r;

        if (!g->config->ble_fota || !g->modem || !g->ble) {
                gateway_blefota_bus_start(g);
                return 0;
        }
        if (mkdir(g->config->state_directory, 0700) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Failed to create StateDirectory=%s: %m", g->config->state_directory);
        if (asprintf(&dir, "%s/blefota", g->config->state_directory) < 0)
                return log_error_errno(ENOMEM, "Out of memory");
        r = modem_downloader_new(modem_get_engine(g->modem), g->config->sec_tag, &g->downloader);
        if (r < 0)
                return log_error_errno(r, "Failed to set up downloads through the modem: %m");
        r = blefota_manager_new(g->event, dir, g->ble, g->downloader, g->config->max_parallel_fota, &ops, g,
                                &g->blefota);
        if (r < 0) {
                g->downloader = modem_downloader_free(g->downloader);
                return log_error_errno(r, "Failed to set up FOTA of BLE devices in %s: %m", dir);
        }
        blefota_manager_set_reboot_timeout(g->blefota, g->config->fota_reboot_timeout_sec * UINT64_C(1000000));
        gateway_blefota_bus_start(g);
        log_info("FOTA of BLE devices enabled, at most %u at once", g->config->max_parallel_fota);
        /* [Cloud] TLS=modem: the modem is ready before the cloud and the BLE layer start. */
        if (modem_get_state(g->modem) == MODEM_READY)
                blefota_manager_modem_ready(g->blefota);
        gateway_update_device_info(g);
        return 0;
}

/* After the BLE manager (its cancelled operations call back into jobs) and the MQTT session
 * (acknowledgements of reports), before the modem. */
void gateway_blefota_free(Gateway *g) {
        g->blefota_bus = blefota_bus_free(g->blefota_bus);
        g->blefota = blefota_manager_free(g->blefota);
        g->downloader = modem_downloader_free(g->downloader);
}

void gateway_blefota_jobs_ready(CloudSession *cs, void *userdata) {
        Gateway *g = userdata;
        (void) cs;
        blefota_manager_cloud_ready(g->blefota);
}

static bool protocol_device_busy(void *userdata, const char *address) {
        Gateway *g = userdata;
        return blefota_manager_device_busy(g->blefota, address);
}

static void protocol_device_removed(void *userdata, const char *address) {
        Gateway *g = userdata;
        blefota_manager_device_removed(g->blefota, address);
}

/* Once the protocol exists: a device being updated keeps its place in desiredConnections, the
 * cloud's operations on it wait for the end of its job, and its removal ends the job. */
void gateway_blefota_attach(Gateway *g) {
        static const ProtocolDeviceHooks hooks = {
                .busy = protocol_device_busy,
                .removed = protocol_device_removed,
        };
        if (g->protocol && g->blefota)
                protocol_set_device_hooks(g->protocol, &hooks, g);
}
