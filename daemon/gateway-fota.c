/* SPDX-License-Identifier: MIT */
/*
 * The FOTA manager (daemon/fota/) wired to the cloud session and the modem
 * manager.  It sees them only through these callbacks: the reports go out
 * on the connection with a PUBACK callback, the firmware's answers come back
 * through fota_manager_modem_done(), its URCs and probes as events.
 */
#include <stdio.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include "blefota-manager.h"
#include "fota-job.h"
#include "fota-manager.h"
#include "gateway.h"
#include "log.h"
#include "modem.h"
#include "version.h"

static int fota_publish_update(void *userdata, const char *payload, FotaDoneFn done, void *done_userdata) {
        Gateway *g = userdata;
        return g->cloud ? cloud_session_publish_jobs_update(g->cloud, payload, done, done_userdata) : -ENOTCONN;
}

static int fota_request_jobs(void *userdata) {
        Gateway *g = userdata;
        return g->cloud ? cloud_session_request_jobs(g->cloud) : -ENOTCONN;
}

static void on_modem_fota_done(Modem *m, int error, void *userdata) {
        Gateway *g = userdata;
        (void) m;
        if (g->fota)
                fota_manager_modem_done(g->fota, error);
}

static int fota_modem_start(void *userdata, int op, const char *url) {
        Gateway *g = userdata;
        return g->modem ? modem_fota_start(g->modem, (ModemFotaOp) op, url, on_modem_fota_done, g) : -ENOTCONN;
}

static int fota_modem_apply(void *userdata, int op) {
        Gateway *g = userdata;
        return g->modem ? modem_fota_apply(g->modem, (ModemFotaOp) op, on_modem_fota_done, g) : -ENOTCONN;
}

static int fota_modem_confirm(void *userdata) {
        Gateway *g = userdata;
        return g->modem ? modem_fota_confirm(g->modem, on_modem_fota_done, g) : -ENOTCONN;
}

static void fota_modem_cancel(void *userdata) {
        Gateway *g = userdata;
        if (g->modem)
                modem_fota_cancel(g->modem);
}

static void fota_state_changed(void *userdata, FotaState old_state, FotaState new_state) {
        (void) old_state, (void) new_state;
        gateway_notify_status(userdata);
}

static void fota_updated(void *userdata) {
        gateway_update_device_info(userdata);
}

static void on_ble_job_answered(int error, void *userdata) {
        (void) userdata;
        if (error < 0)
                log_warning_errno(error, "The answer to a BLE FOTA job was not acknowledged: %m");
}

/* FOTA of BLE devices does not exist yet: jobs/ble/rcv is not subscribed and no job is
 * requested (serviceInfo.fota_v2_ble is false), but a job may still arrive (a session the
 * broker kept from an earlier subscription).  It is answered REJECTED, as nRF Cloud's
 * library answers a type it cannot run, so that it does not stay queued forever. */
void gateway_fota_ble_job_received(Gateway *g, const uint8_t *payload, size_t len) {
        _cleanup_free_ char *answer = NULL;
        const char *address, *id;
        FotaJobError e = {};
        FotaJob job;
        int r;

        if (g->blefota)
                return blefota_manager_job_received(g->blefota, payload, len);
        r = fota_job_parse(payload, len, true, &job, &e);
        if (r == -ENOENT)
                return (void) log_debug("No BLE FOTA job pending");
        address = r >= 0 ? job.ble_address : e.ble_address;
        id = r >= 0 ? job.id : e.id;
        if (!address[0] || !id[0])
                return (void) log_warning("Ignoring a BLE FOTA job that cannot be answered (%s)",
                                          e.error.description);
        log_fields(LOG_NOTICE, LOG_FIELDS({ "BT_ADDR", address }),
                   "FOTA job %s for BLE device %s: FOTA of BLE devices is not supported, rejecting it", id, address);
        r = fota_ble_job_build_update(address, id, FOTA_STATUS_REJECTED, 0, "FOTA type not supported", &answer);
        if (r < 0)
                return (void) log_error_errno(r, "Failed to build the answer to BLE FOTA job %s: %m", id);
        r = g->cloud ? cloud_session_publish_jobs_ble_update(g->cloud, answer, on_ble_job_answered, g) : -ENOTCONN;
        if (r < 0)
                log_warning_errno(r, "Failed to answer BLE FOTA job %s, ignoring: %m", id);
}

int gateway_fota_start(Gateway *g) {
        static const FotaManagerOps ops = {
                .publish_update = fota_publish_update,
                .request_jobs = fota_request_jobs,
                .modem_start = fota_modem_start,
                .modem_apply = fota_modem_apply,
                .modem_confirm = fota_modem_confirm,
                .modem_cancel = fota_modem_cancel,
                .state_changed = fota_state_changed,
                .updated = fota_updated,
        };
        _cleanup_free_ char *dir = NULL;
        int r;

        if (mkdir(g->config->state_directory, 0700) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Failed to create StateDirectory=%s: %m", g->config->state_directory);
        if (asprintf(&dir, "%s/fota", g->config->state_directory) < 0)
                return log_error_errno(ENOMEM, "Out of memory");
        r = fota_manager_new(g->event, dir, (uint64_t) g->config->fota_apply_timeout_sec * UINT64_C(1000000), &ops, g,
                             &g->fota);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the FOTA manager in %s: %m", dir);
        return 0;
}

void gateway_fota_free(Gateway *g) {
        g->fota = fota_manager_free(g->fota);
}

void gateway_fota_cloud_state(Gateway *g, CloudSessionState new_state) {
        if (new_state == CLOUD_SESSION_CONNECTING || new_state == CLOUD_SESSION_DISCONNECTED)
                blefota_manager_cloud_down(g->blefota);
        if (!g->fota)
                return;
        if (new_state == CLOUD_SESSION_CONNECTING || new_state == CLOUD_SESSION_DISCONNECTED)
                fota_manager_cloud_down(g->fota);
}

void gateway_fota_jobs_ready(CloudSession *cs, void *userdata) {
        Gateway *g = userdata;
        if (g->fota)
                fota_manager_cloud_ready(g->fota);
        else
                (void) cloud_session_request_jobs(cs);
        blefota_manager_cloud_ready(g->blefota);
}

void gateway_fota_job_received(Gateway *g, const uint8_t *payload, size_t len) {
        if (g->fota)
                fota_manager_job_received(g->fota, payload, len);
}

void gateway_fota_modem_state(Gateway *g, bool ready) {
        const ModemIdentity *id;
        FotaFirmware fw;

        if (ready && !blefota_manager_offered(g->blefota) && g->blefota) {
                /* The first ready modem: BLE FOTA is offered from now on (fota_v2_ble). */
                blefota_manager_modem_ready(g->blefota);
                gateway_update_device_info(g);
        } else if (ready)
                blefota_manager_modem_ready(g->blefota);
        else
                blefota_manager_modem_lost(g->blefota);
        if (!g->fota)
                return;
        if (!ready) {
                fota_manager_firmware_lost(g->fota);
                return;
        }
        id = modem_get_identity(g->modem);
        fw = (FotaFirmware){
                .ops = id->has_fota ? id->fota.ops : 0,
                .has_state = id->has_fota,
                .state = id->fota.state,
                .op = (int) id->fota.op,
                .result = id->has_fota ? id->fota.result : MODEM_FOTA_RESULT_NONE,
                .result_info = id->fota.result_info,
                .app_version = id->firmware_version,
                .modem_version = id->modem_firmware,
        };
        fota_manager_firmware_ready(g->fota, &fw);
}

void gateway_fota_modem_event(Modem *m, const ModemFotaEvent *ev, void *userdata) {
        Gateway *g = userdata;
        FotaFirmwareEvent e;
        (void) m;

        if (!g->fota)
                return;
        e = (FotaFirmwareEvent){ .stage = ev->stage, .status = ev->status, .has_info = ev->has_info,
                                 .info = ev->info, .has_cause = ev->has_cause, .cause = ev->cause };
        fota_manager_firmware_event(g->fota, &e);
}

const char *gateway_fota_status(Gateway *g) {
        static char buf[160];
        const char *s = g->fota ? fota_manager_status_text(g->fota) : NULL;

        if (!s)
                return "";
        snprintf(buf, sizeof buf, "; %s", s);
        return buf;
}

/*
 * reported.device.  appVersion is the version of the image an nRF Cloud APP
 * job replaces: the nRF91 application (#XSMVER, spec nrfcloud-fota.md
 * §1.11), once the modem is known; the daemon's own version before that
 * (host TLS without a modem).  fota_v2 lists what the firmware can apply.
 */
void gateway_update_device_info(Gateway *g) {
        CloudDeviceInfo info = { .app_version = NRFGW_VERSION, .app_name = "nrfcloud-gatewayd" };
        int r;

        if (!g->cloud)
                return;
        if (g->modem && modem_get_state(g->modem) == MODEM_READY) {
                const ModemIdentity *id = modem_get_identity(g->modem);
                info.modem_firmware = id->modem_firmware;
                info.imei = id->imei[0] ? id->imei : NULL;
                if (id->firmware_version)
                        info.app_version = id->firmware_version;
        }
        info.fota_types = g->fota ? fota_manager_supported_types(g->fota) : 0;
        info.fota_ble = blefota_manager_offered(g->blefota);
        r = cloud_session_set_device_info(g->cloud, &info);
        if (r < 0)
                log_error_errno(r, "Failed to set the device info, ignoring: %m");
}
