/* SPDX-License-Identifier: MIT */
/*
 * FOTA of BLE devices (daemon/blefota/) wired to the cloud session, the BLE
 * manager and the modem's downloads.  Offered only with [Bluetooth] Fota=yes,
 * a modem (the images come through the nRF91) and Bluetooth.
 */
#include <stdio.h>
#include <sys/stat.h>

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

int gateway_blefota_start(Gateway *g) {
        static const BleFotaOps ops = {
                .publish_update = blefota_publish_update,
                .request_job = blefota_request_job,
        };
        _cleanup_free_ char *dir = NULL;
        int r;

        if (!g->config->ble_fota || !g->modem || !g->ble)
                return 0;
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
        g->blefota = blefota_manager_free(g->blefota);
        g->downloader = modem_downloader_free(g->downloader);
}

void gateway_blefota_jobs_ready(CloudSession *cs, void *userdata) {
        Gateway *g = userdata;
        (void) cs;
        blefota_manager_cloud_ready(g->blefota);
}
