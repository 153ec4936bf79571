/* SPDX-License-Identifier: MIT */
/*
 * What the manager reports, and why (nRF Connect SDK, nrf_cloud_fota.c:
 * start_job, http_fota_handler, publish_validated_job_status,
 * handle_mqtt_evt_publish; strings from get_error_string):
 *
 *   download started (AT#XFOTA OK)          [id,7,0]
 *   progress, each multiple of 10 reached   [id,7,10] ... [id,7,100] (100 always, each once)
 *   image stored (#XFOTA: 4,0)              [id,1,""]; apply only once acknowledged
 *   AT#XFOTA refused                        [id,2,"Failed to start download"]    (DOWNLOAD_START)
 *   #XFOTA: 1,1,1[,<cause>], 1,2 (cancel)   [id,2,"Error during download"]       (ERROR_DOWNLOAD)
 *   #XFOTA: 1,1,3 (type mismatch)           [id,2,"FW file does not match specified FOTA type"]
 *   #XFOTA: 1,1,2 or 3,1,2 (image refused)  [id,6,""]                            (INVALID_UPDATE: REJECTED)
 *   new firmware checks out                 [id,3,""]                            (VALIDATE_PASS)
 *   5,1 / 5,3 / version unchanged or wrong  [id,2,""]                            (VALIDATE_FAIL: no error string)
 *   outcome cannot be known                 [id,3,"FOTA update not validated"]  (VALIDATE_UNKNOWN)
 *   job with an id but unusable             [id,6,"Job info is invalid"]
 *   type the firmware cannot apply          [id,6,"FOTA type not supported"]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fota-manager.h"
#include "log.h"
#include "message-ids.h"

#define FOTA_ERROR_START "Failed to start download"
#define FOTA_ERROR_DOWNLOAD "Error during download"
#define FOTA_ERROR_MISMATCH "FW file does not match specified FOTA type"
#define FOTA_ERROR_NOT_VALIDATED "FOTA update not validated"
#define FOTA_ERROR_BAD_JOB "Job info is invalid"
#define FOTA_ERROR_BAD_TYPE "FOTA type not supported"

/* #XFOTA ops and #XFOTAINFO states and results (firmware_nrf91/doc/at-commands.md). */
enum { OP_NONE = 0, OP_APP = 1, OP_MODEM_DELTA = 2, OP_MODEM_FULL = 3 };
enum { FW_IDLE = 0, FW_DOWNLOADING = 1, FW_INTERRUPTED = 2, FW_SCHEDULED = 3, FW_TESTING = 4 };
enum { RESULT_NONE = -1, RESULT_APPLIED = 0, RESULT_FAILED = 1, RESULT_REVERTED = 3 };

/* A download that vanished while nobody watched is tried once more. */
#define FOTA_DOWNLOAD_RETRIES 1
/* A start refused with ENETDOWN (the modem is not registered yet, e.g. right
 * after the reset that interrupted a download) is tried again every
 * FOTA_START_RETRY_USEC for up to FOTA_START_WAIT_USEC, as the cloud
 * connection waits for registration, before the job fails. */
#define FOTA_START_RETRY_USEC (2u * 1000u * 1000u)
#define FOTA_START_WAIT_USEC (300u * 1000u * 1000u)

struct FotaManager {
        sd_event *event;
        char *dir;
        uint64_t apply_timeout_usec;
        FotaManagerOps ops;
        void *userdata;
        FotaState state;
        FotaRecord rec;
        sd_event_source *timer;

        bool cloud_ready;
        unsigned published, acked; /* reports of this connection; PUBACKs come in order */
        bool report_acked;         /* rec's report (if any) was acknowledged */

        bool fw_ready;
        FotaFirmware fw;
        char fw_app[FOTA_VERSION_MAX], fw_modem[FOTA_VERSION_MAX];
        int urc_result, urc_result_info; /* the last "#XFOTA: 5,..." */
        unsigned retries;
        unsigned start_waits;      /* starts refused with ENETDOWN in a row */
        /* [id,7,100] goes out before [id,1,""] even when the connection was
         * down as the download ended (the report slot holds only the newest
         * report): whether it was handed to the connection once. */
        bool hundred_sent;
};

static const char *const fota_state_table[_FOTA_STATE_MAX] = {
        [FOTA_STATE_IDLE] = "idle",
        [FOTA_STATE_RECOVERING] = "recovering",
        [FOTA_STATE_STARTING] = "starting",
        [FOTA_STATE_DOWNLOADING] = "downloading",
        [FOTA_STATE_STORED] = "stored",
        [FOTA_STATE_APPLYING] = "applying",
        [FOTA_STATE_VALIDATING] = "validating",
        [FOTA_STATE_REPORTING] = "reporting",
};

const char *fota_state_to_string(FotaState s) {
        return s >= 0 && s < _FOTA_STATE_MAX ? fota_state_table[s] : NULL;
}

unsigned fota_types_from_ops(unsigned ops) {
        unsigned t = 0;
        if (ops & (1u << OP_APP))
                t |= 1u << FOTA_TYPE_APP;
        if (ops & (1u << OP_MODEM_DELTA))
                t |= 1u << FOTA_TYPE_MODEM;
        if (ops & (1u << OP_MODEM_FULL))
                t |= 1u << FOTA_TYPE_MDM_FULL;
        return t;
}

static int type_to_op(int type) {
        switch (type) {
        case FOTA_TYPE_APP:
                return OP_APP;
        case FOTA_TYPE_MODEM:
                return OP_MODEM_DELTA;
        case FOTA_TYPE_MDM_FULL:
                return OP_MODEM_FULL;
        default: /* BOOT, the BLE types and numbers the firmware has no op for */
                return OP_NONE;
        }
}

static const char *type_name(int type) {
        return fota_type_to_string(type) ?: "?";
}

#define JOB_FIELDS(fm, ...)                                                                                     \
        LOG_FIELDS({ "FOTA_JOB_ID", (fm)->rec.id[0] ? (fm)->rec.id : NULL },                                   \
                   { "FOTA_TYPE", (fm)->rec.id[0] ? type_name((fm)->rec.type) : NULL },                         \
                   { "FOTA_STATE", fota_state_to_string((fm)->state) }, __VA_ARGS__)

static void fota_manager_request_jobs(FotaManager *fm);
static void fota_manager_publish_report(FotaManager *fm);

static int on_apply_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) s, (void) usec;
        fota_manager_apply_timeout(userdata);
        return 0;
}

static void fota_manager_enter_state(FotaManager *fm, FotaState s) {
        FotaState old = fm->state;
        int r;

        if (old == s)
                return;
        fm->state = s;
        log_fields(LOG_INFO, JOB_FIELDS(fm, { NULL, NULL }), "FOTA job %s (%s): %s -> %s", fm->rec.id[0] ? fm->rec.id : "-",
                   fm->rec.id[0] ? type_name(fm->rec.type) : "-", fota_state_to_string(old), fota_state_to_string(s));

        /* What the old state had armed. */
        switch (old) {
        case FOTA_STATE_APPLYING:
                if (s != FOTA_STATE_VALIDATING)
                        fm->timer = sd_event_source_disable_unref(fm->timer);
                break;
        case FOTA_STATE_VALIDATING:
        case FOTA_STATE_STARTING: /* the retry of a start that found no network */
                fm->timer = sd_event_source_disable_unref(fm->timer);
                break;
        case FOTA_STATE_IDLE:
        case FOTA_STATE_RECOVERING:
        case FOTA_STATE_DOWNLOADING:
        case FOTA_STATE_STORED:
        case FOTA_STATE_REPORTING:
        case _FOTA_STATE_MAX:
                break;
        }

        switch (s) {
        case FOTA_STATE_APPLYING:
                if (fm->event && !fm->timer) {
                        r = sd_event_add_time_relative(fm->event, &fm->timer, CLOCK_BOOTTIME, fm->apply_timeout_usec,
                                                       1000000, on_apply_timeout, fm);
                        if (r < 0)
                                log_warning_errno(r, "Failed to arm the FOTA apply timer, ignoring: %m");
                }
                break;
        case FOTA_STATE_IDLE:
        case FOTA_STATE_RECOVERING:
        case FOTA_STATE_STARTING:
        case FOTA_STATE_DOWNLOADING:
        case FOTA_STATE_STORED:
        case FOTA_STATE_VALIDATING:
        case FOTA_STATE_REPORTING:
        case _FOTA_STATE_MAX:
                break;
        }
        if (fm->ops.state_changed)
                fm->ops.state_changed(fm->userdata, old, s);
}

/* The state file first, then the step it protects; a failure is logged and the job goes on. */
static void fota_manager_save(FotaManager *fm) {
        int r = fota_store_save(fm->dir, &fm->rec);
        if (r < 0)
                log_fields_errno(LOG_ERR, r, JOB_FIELDS(fm, { NULL, NULL }),
                                 "Failed to save the FOTA job in %s/job, a restart now may lose it: %m", fm->dir);
}

static void record_set_report(FotaRecord *r, FotaStatus status, const char *message) {
        r->has_report = true;
        r->report_status = status;
        snprintf(r->report_message, sizeof r->report_message, "%s", strempty(message));
}

/* A new report replaces the one not acknowledged yet: it says more. */
static void fota_manager_report(FotaManager *fm, FotaStatus status, const char *message) {
        record_set_report(&fm->rec, status, message);
        fm->report_acked = false;
        fota_manager_publish_report(fm);
}

static void fota_manager_report_acked(FotaManager *fm);

static void on_report_done(int error, void *userdata) {
        FotaManager *fm = userdata;

        if (error < 0) {
                log_fields_errno(LOG_WARNING, error, JOB_FIELDS(fm, { NULL, NULL }),
                                 "A FOTA status report was not acknowledged, sending it again on the next connection: %m");
                return;
        }
        fm->acked++;
        if (fm->acked < fm->published || !fm->rec.has_report || fm->report_acked)
                return;
        fm->report_acked = true;
        fota_manager_report_acked(fm);
}

static void fota_manager_publish_report(FotaManager *fm) {
        _cleanup_free_ char *payload = NULL;
        unsigned progress = fm->rec.progress < 0 ? 0 : (unsigned) fm->rec.progress;
        int r;

        if (!fm->cloud_ready || !fm->rec.has_report || fm->report_acked)
                return;
        if (fm->rec.report_status == FOTA_STATUS_IN_PROGRESS && fm->rec.progress == 100 && !fm->hundred_sent) {
                /* The download ended while the connection was down: 100 % first, as NCS always sends it. */
                r = fota_job_build_update(fm->rec.id, FOTA_STATUS_DOWNLOADING, 100, NULL, &payload);
                if (r >= 0 && fm->ops.publish_update(fm->userdata, payload, on_report_done, fm) >= 0) {
                        fm->published++;
                        fm->hundred_sent = true;
                }
                free(payload);
                payload = NULL;
        }
        r = fota_job_build_update(fm->rec.id, fm->rec.report_status, progress, fm->rec.report_message, &payload);
        if (r < 0) {
                log_fields_errno(LOG_ERR, r, JOB_FIELDS(fm, { NULL, NULL }), "Failed to build the FOTA status report: %m");
                return;
        }
        r = fm->ops.publish_update(fm->userdata, payload, on_report_done, fm);
        if (r < 0) {
                log_fields_errno(LOG_WARNING, r, JOB_FIELDS(fm, { NULL, NULL }),
                                 "Failed to send the FOTA status report %s, sending it on the next connection: %m", payload);
                return;
        }
        fm->published++;
        if (fm->rec.report_status == FOTA_STATUS_DOWNLOADING && progress == 100)
                fm->hundred_sent = true;
        log_fields(LOG_DEBUG, JOB_FIELDS(fm, { NULL, NULL }), "FOTA status report %s", payload);
}

static bool status_terminal(FotaStatus s) {
        switch (s) {
        case FOTA_STATUS_FAILED:
        case FOTA_STATUS_SUCCEEDED:
        case FOTA_STATUS_TIMED_OUT:
        case FOTA_STATUS_CANCELED:
        case FOTA_STATUS_REJECTED:
                return true;
        case FOTA_STATUS_QUEUED:
        case FOTA_STATUS_IN_PROGRESS:
        case FOTA_STATUS_DOWNLOADING:
        case _FOTA_STATUS_MAX:
        case _FOTA_STATUS_INVALID:
                break;
        }
        return false;
}

/* The job's outcome is decided: persisted, logged for operators, reported. */
static void fota_manager_finish(FotaManager *fm, FotaStatus status, const char *message) {
        bool ok = status == FOTA_STATUS_SUCCEEDED;

        if (fm->ops.modem_cancel)
                fm->ops.modem_cancel(fm->userdata);
        fm->rec.stage = FOTA_STAGE_REPORTING;
        record_set_report(&fm->rec, status, message);
        fota_manager_save(fm);
        log_fields(ok ? LOG_NOTICE : LOG_WARNING,
                   JOB_FIELDS(fm, { "MESSAGE_ID", ok ? MESSAGE_ID_FOTA_SUCCEEDED : MESSAGE_ID_FOTA_FAILED },
                              { "FOTA_STATUS", fota_status_to_string(status) }),
                   "FOTA job %s (%s) %s%s%s%s", fm->rec.id, type_name(fm->rec.type),
                   ok && !message ? "succeeded" : fota_status_to_string(status), message && *message ? ": \"" : "",
                   strempty(message), message && *message ? "\"" : "");
        fota_manager_enter_state(fm, FOTA_STATE_REPORTING);
        fota_manager_report(fm, status, message);
}

/* A fresh record for a new job; only the last job's id carries over. */
static void fota_manager_new_record(FotaManager *fm, const char *id, int type) {
        char last[sizeof fm->rec.last_job];

        memcpy(last, fm->rec.last_job, sizeof last);
        fota_record_init(&fm->rec);
        memcpy(fm->rec.last_job, last, sizeof last);
        snprintf(fm->rec.id, sizeof fm->rec.id, "%s", id);
        fm->rec.type = type;
        fm->hundred_sent = false;
        fm->start_waits = 0;
}

/* A job that is not run (invalid, unsupported): reported at once. */
static void fota_manager_reject(FotaManager *fm, const char *id, int type, const char *message) {
        fota_manager_new_record(fm, id, type);
        fota_manager_finish(fm, FOTA_STATUS_REJECTED, message);
}

static void fota_manager_report_acked(FotaManager *fm) {
        switch (fm->state) {
        case FOTA_STATE_STORED:
                if (fm->rec.report_status != FOTA_STATUS_IN_PROGRESS)
                        return;
                /* Persisted before the reset: whatever happens next, a restart knows a reset may have run. */
                fm->rec.stage = FOTA_STAGE_APPLYING;
                fm->rec.has_report = false; /* acknowledged */
                fota_manager_save(fm);
                fota_manager_enter_state(fm, FOTA_STATE_APPLYING);
                log_fields(LOG_NOTICE, JOB_FIELDS(fm, { NULL, NULL }),
                           "FOTA job %s: applying the %s image; the nRF91 restarts and the link to it goes away meanwhile",
                           fm->rec.id, type_name(fm->rec.type));
                if (fm->ops.modem_apply(fm->userdata, type_to_op(fm->rec.type)) < 0)
                        log_fields(LOG_NOTICE, JOB_FIELDS(fm, { NULL, NULL }),
                                   "The modem cannot take the reset now; applying once it is back");
                return;
        case FOTA_STATE_REPORTING:
                if (!status_terminal(fm->rec.report_status))
                        return;
                log_fields(LOG_INFO, JOB_FIELDS(fm, { NULL, NULL }), "FOTA job %s: final report acknowledged", fm->rec.id);
                snprintf(fm->rec.last_job, sizeof fm->rec.last_job, "%s", fm->rec.id);
                fm->rec.stage = FOTA_STAGE_NONE;
                fm->rec.has_report = false;
                fota_manager_save(fm);
                fota_manager_enter_state(fm, FOTA_STATE_IDLE);
                /* Jobs skipped meanwhile, or queued behind this one. */
                fota_manager_request_jobs(fm);
                return;
        case FOTA_STATE_IDLE:
        case FOTA_STATE_RECOVERING:
        case FOTA_STATE_STARTING:
        case FOTA_STATE_DOWNLOADING:
        case FOTA_STATE_APPLYING:
        case FOTA_STATE_VALIDATING:
        case _FOTA_STATE_MAX:
                return;
        }
}

static void fota_manager_request_jobs(FotaManager *fm) {
        int r;

        if (!fm->cloud_ready)
                return;
        r = fm->ops.request_jobs(fm->userdata);
        if (r < 0)
                log_warning_errno(r, "Failed to ask nRF Cloud for FOTA jobs, asking on the next connection: %m");
}

/* DOWNLOADING reports at each multiple of 10 reached, each once (100 always). */
static void fota_manager_progress(FotaManager *fm, int64_t pct) {
        int step;

        if (pct < 0 || pct > 100)
                return;
        step = (int) (pct / 10 * 10);
        if (step <= fm->rec.progress)
                return;
        fm->rec.progress = step;
        /* Saved first: after a restart a percentage is never reported twice. */
        fota_manager_save(fm);
        fota_manager_report(fm, FOTA_STATUS_DOWNLOADING, NULL);
}

static void fota_manager_start_download(FotaManager *fm) {
        int r = fm->ops.modem_start(fm->userdata, type_to_op(fm->rec.type), fm->rec.url);
        if (r < 0) {
                log_fields_errno(LOG_WARNING, r, JOB_FIELDS(fm, { NULL, NULL }), "The firmware cannot start the download: %m");
                fota_manager_finish(fm, FOTA_STATUS_FAILED, FOTA_ERROR_START);
                return;
        }
        fota_manager_enter_state(fm, FOTA_STATE_STARTING);
}

static void fota_manager_stored(FotaManager *fm) {
        fota_manager_progress(fm, 100);
        fm->rec.stage = FOTA_STAGE_STORED;
        fota_manager_save(fm);
        fota_manager_enter_state(fm, FOTA_STATE_STORED);
        log_fields(LOG_INFO, JOB_FIELDS(fm, { NULL, NULL }), "FOTA job %s: image stored in the nRF91", fm->rec.id);
        fota_manager_report(fm, FOTA_STATUS_IN_PROGRESS, NULL);
}

static bool ends_with(const char *s, const char *suffix) {
        size_t a = strlen(s), b = strlen(suffix);
        return a >= b && streq(s + a - b, suffix);
}

static void fota_manager_validate(FotaManager *fm) {
        const FotaFirmware *fw = &fm->fw;
        int result = fw->has_state ? fw->result : fm->urc_result;
        bool app = type_to_op(fm->rec.type) == OP_APP, changed;
        const char *now = app ? fw->app_version : fw->modem_version;
        const char *before = app ? fm->rec.app_before : fm->rec.modem_before;

        if (fw->has_state && fw->state == FW_SCHEDULED) {
                /* Stopped between the state file and the reset: apply now. */
                if (fm->ops.modem_apply(fm->userdata, type_to_op(fm->rec.type)) < 0)
                        log_fields(LOG_WARNING, JOB_FIELDS(fm, { NULL, NULL }), "Failed to apply the stored image, waiting");
                return;
        }
        changed = before[0] && now && !streq(before, now);
        log_fields(LOG_INFO, JOB_FIELDS(fm, { NULL, NULL }), "FOTA job %s: firmware back, result %d, version %s -> %s",
                   fm->rec.id, result, before[0] ? before : "?", strna(now));

        if (result == RESULT_FAILED || result == RESULT_REVERTED) {
                fota_manager_finish(fm, FOTA_STATUS_FAILED, NULL);
                return;
        }
        if (app && fw->has_state && fw->state == FW_TESTING) {
                if (!changed) {
                        /* Never confirmed: the bootloader takes the old image back at the next reset. */
                        fota_manager_finish(fm, FOTA_STATUS_FAILED, NULL);
                        return;
                }
                if (fm->ops.modem_confirm(fm->userdata) < 0) {
                        fota_manager_finish(fm, FOTA_STATUS_FAILED, NULL);
                        return;
                }
                fota_manager_enter_state(fm, FOTA_STATE_VALIDATING);
                return;
        }
        if (changed) {
                if (!app && fm->rec.modem_expected[0] && !ends_with(now, fm->rec.modem_expected)) {
                        log_fields(LOG_WARNING, JOB_FIELDS(fm, { NULL, NULL }), "The modem runs %s, the job leads to %s",
                                   now, fm->rec.modem_expected);
                        fota_manager_finish(fm, FOTA_STATUS_FAILED, NULL);
                        return;
                }
                fota_manager_finish(fm, FOTA_STATUS_SUCCEEDED, NULL);
                if (fm->ops.updated)
                        fm->ops.updated(fm->userdata);
                return;
        }
        if (result == RESULT_APPLIED)
                fota_manager_finish(fm, FOTA_STATUS_FAILED, NULL); /* applied, yet the same version */
        else
                fota_manager_finish(fm, FOTA_STATUS_SUCCEEDED, FOTA_ERROR_NOT_VALIDATED);
}

/* Where a download stands after the firmware or the daemon went away. */
static void fota_manager_recover_download(FotaManager *fm) {
        const FotaFirmware *fw = &fm->fw;
        int state = fw->has_state ? fw->state : FW_IDLE;

        if (fw->has_state && fw->op != OP_NONE && fw->op != type_to_op(fm->rec.type) && state != FW_IDLE)
                state = FW_IDLE; /* another image: ours is gone */
        switch (state) {
        case FW_DOWNLOADING:
                fota_manager_enter_state(fm, FOTA_STATE_DOWNLOADING);
                return;
        case FW_INTERRUPTED:
                /* The same op and URL resume from the stored offset (HTTP range). */
                fota_manager_start_download(fm);
                return;
        case FW_SCHEDULED:
                fota_manager_stored(fm);
                return;
        case FW_TESTING:
                fm->rec.stage = FOTA_STAGE_APPLYING;
                fota_manager_save(fm);
                fota_manager_enter_state(fm, FOTA_STATE_APPLYING);
                fota_manager_validate(fm);
                return;
        default:
                if (fm->retries++ < FOTA_DOWNLOAD_RETRIES) {
                        fota_manager_start_download(fm);
                        return;
                }
                fota_manager_finish(fm, FOTA_STATUS_FAILED, FOTA_ERROR_DOWNLOAD);
                return;
        }
}

void fota_manager_firmware_ready(FotaManager *fm, const FotaFirmware *fw) {
        fm->fw = *fw;
        snprintf(fm->fw_app, sizeof fm->fw_app, "%s", strempty(fw->app_version));
        snprintf(fm->fw_modem, sizeof fm->fw_modem, "%s", strempty(fw->modem_version));
        fm->fw.app_version = fw->app_version ? fm->fw_app : NULL;
        fm->fw.modem_version = fw->modem_version ? fm->fw_modem : NULL;
        fm->fw_ready = true;

        switch (fm->state) {
        case FOTA_STATE_IDLE:
        case FOTA_STATE_REPORTING:
                return;
        case FOTA_STATE_RECOVERING:
        case FOTA_STATE_STARTING:
        case FOTA_STATE_DOWNLOADING:
                fota_manager_recover_download(fm);
                return;
        case FOTA_STATE_STORED:
                if (fw->has_state && fw->state != FW_SCHEDULED)
                        fota_manager_recover_download(fm);
                return;
        case FOTA_STATE_APPLYING:
        case FOTA_STATE_VALIDATING:
                fota_manager_validate(fm);
                return;
        case _FOTA_STATE_MAX:
                return;
        }
}

void fota_manager_firmware_lost(FotaManager *fm) {
        fm->fw_ready = false;
        switch (fm->state) {
        case FOTA_STATE_STARTING:
        case FOTA_STATE_DOWNLOADING:
                /* The download may go on in the firmware; #XFOTAINFO says so when it is back. */
                fota_manager_enter_state(fm, FOTA_STATE_RECOVERING);
                return;
        case FOTA_STATE_VALIDATING:
                fota_manager_enter_state(fm, FOTA_STATE_APPLYING);
                return;
        case FOTA_STATE_IDLE:
        case FOTA_STATE_RECOVERING:
        case FOTA_STATE_STORED:
        case FOTA_STATE_APPLYING:
        case FOTA_STATE_REPORTING:
        case _FOTA_STATE_MAX:
                return;
        }
}

static bool downloading(const FotaManager *fm) {
        return fm->state == FOTA_STATE_STARTING || fm->state == FOTA_STATE_DOWNLOADING ||
               fm->state == FOTA_STATE_RECOVERING;
}

void fota_manager_firmware_event(FotaManager *fm, const FotaFirmwareEvent *ev) {
        if (ev->stage == 5) {
                fm->urc_result = (int) ev->status;
                fm->urc_result_info = ev->has_info ? (int) ev->info : 0;
                log_fields(LOG_INFO, JOB_FIELDS(fm, { NULL, NULL }), "The firmware applied an image: #XFOTA: 5,%u,%d",
                           ev->status, fm->urc_result_info);
                return;
        }
        if (!downloading(fm))
                return;
        switch (ev->stage * 10 + ev->status) {
        case 10: /* 1,0,<percent> */
                if (fm->state != FOTA_STATE_DOWNLOADING)
                        fota_manager_enter_state(fm, FOTA_STATE_DOWNLOADING);
                if (ev->has_info)
                        fota_manager_progress(fm, ev->info);
                return;
        case 11: /* 1,1,<kind>[,<cause>] */
                log_fields(LOG_WARNING, JOB_FIELDS(fm, { NULL, NULL }), "FOTA download failed: kind %lld, cause %lld",
                           (long long) ev->info, (long long) (ev->has_cause ? ev->cause : 0));
                if (ev->info == 2)
                        fota_manager_finish(fm, FOTA_STATUS_REJECTED, NULL);
                else if (ev->info == 3)
                        fota_manager_finish(fm, FOTA_STATUS_FAILED, FOTA_ERROR_MISMATCH);
                else
                        fota_manager_finish(fm, FOTA_STATUS_FAILED, FOTA_ERROR_DOWNLOAD);
                return;
        case 12: /* cancelled: not by us */
                fota_manager_finish(fm, FOTA_STATUS_FAILED, FOTA_ERROR_DOWNLOAD);
                return;
        case 31: /* the store refused the image */
                fota_manager_finish(fm, FOTA_STATUS_REJECTED, NULL);
                return;
        case 40: /* ready: reset to apply */
                fota_manager_stored(fm);
                return;
        default: /* 2,0 and 3,0: steps on the way to 4,0 */
                return;
        }
}

static int on_start_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        FotaManager *fm = userdata;
        (void) s, (void) usec;

        fm->timer = sd_event_source_disable_unref(fm->timer);
        if (fm->state == FOTA_STATE_STARTING)
                fota_manager_start_download(fm);
        return 0;
}

/* true: the start is tried again later, once the modem may be registered. */
static bool fota_manager_wait_for_network(FotaManager *fm) {
        int r;

        if (!fm->event || fm->start_waits >= FOTA_START_WAIT_USEC / FOTA_START_RETRY_USEC)
                return false;
        if (fm->start_waits++ == 0)
                log_fields(LOG_INFO, JOB_FIELDS(fm, { NULL, NULL }),
                           "FOTA job %s: the nRF91 is not registered to a network yet, waiting up to %us to start the "
                           "download", fm->rec.id, (unsigned) (FOTA_START_WAIT_USEC / 1000000));
        fm->timer = sd_event_source_disable_unref(fm->timer);
        r = sd_event_add_time_relative(fm->event, &fm->timer, CLOCK_BOOTTIME, FOTA_START_RETRY_USEC, 100000,
                                       on_start_retry, fm);
        if (r < 0) {
                log_warning_errno(r, "Failed to arm the FOTA start retry: %m");
                return false;
        }
        return true;
}

void fota_manager_modem_done(FotaManager *fm, int error) {
        switch (fm->state) {
        case FOTA_STATE_STARTING:
                if (error == -ECONNRESET || error == -ENOTCONN) {
                        fota_manager_enter_state(fm, FOTA_STATE_RECOVERING);
                        return;
                }
                if (error == -ENETDOWN && fota_manager_wait_for_network(fm))
                        return;
                if (error < 0) {
                        log_fields_errno(LOG_WARNING, error, JOB_FIELDS(fm, { NULL, NULL }),
                                         "The firmware refused the download: %m");
                        fota_manager_finish(fm, FOTA_STATUS_FAILED, FOTA_ERROR_START);
                        return;
                }
                fm->start_waits = 0;
                fota_manager_enter_state(fm, FOTA_STATE_DOWNLOADING);
                if (fm->rec.progress < 0)
                        fota_manager_progress(fm, 0);
                return;
        case FOTA_STATE_VALIDATING:
                if (error == -ECONNRESET || error == -ENOTCONN || error == -ETIMEDOUT) {
                        /* Decided when the firmware is back. */
                        fota_manager_enter_state(fm, FOTA_STATE_APPLYING);
                        return;
                }
                if (error < 0) {
                        fota_manager_finish(fm, FOTA_STATUS_FAILED, NULL);
                        return;
                }
                log_fields(LOG_INFO, JOB_FIELDS(fm, { NULL, NULL }), "FOTA job %s: new application confirmed", fm->rec.id);
                fota_manager_finish(fm, FOTA_STATUS_SUCCEEDED, NULL);
                if (fm->ops.updated)
                        fm->ops.updated(fm->userdata);
                return;
        case FOTA_STATE_APPLYING:
                if (error < 0 && error != -ECONNRESET)
                        log_fields_errno(LOG_WARNING, error, JOB_FIELDS(fm, { NULL, NULL }),
                                         "The reset that applies the image failed, waiting for the firmware: %m");
                return;
        case FOTA_STATE_IDLE:
        case FOTA_STATE_RECOVERING:
        case FOTA_STATE_DOWNLOADING:
        case FOTA_STATE_STORED:
        case FOTA_STATE_REPORTING:
        case _FOTA_STATE_MAX:
                return;
        }
}

void fota_manager_apply_timeout(FotaManager *fm) {
        fm->timer = sd_event_source_disable_unref(fm->timer);
        if (fm->state != FOTA_STATE_APPLYING && fm->state != FOTA_STATE_VALIDATING)
                return;
        log_fields(LOG_WARNING, JOB_FIELDS(fm, { NULL, NULL }),
                   "FOTA job %s: the firmware did not come back within %llus of the reset; the outcome is unknown",
                   fm->rec.id, (unsigned long long) (fm->apply_timeout_usec / 1000000));
        fota_manager_finish(fm, FOTA_STATUS_SUCCEEDED, FOTA_ERROR_NOT_VALIDATED);
}

void fota_manager_job_received(FotaManager *fm, const void *payload, size_t len) {
        FotaJob job;
        FotaJobError e;
        const char *id;
        unsigned types;
        int r, op;

        r = fota_job_parse(payload, len, false, &job, &e);
        if (r == -ENOENT || (r < 0 && !e.id[0])) {
                log_debug("No FOTA job on jobs/rcv (%zu bytes)", len);
                return;
        }
        id = r < 0 ? e.id : job.id;
        if (fm->state != FOTA_STATE_IDLE) {
                if (streq(id, fm->rec.id))
                        log_debug("FOTA job %s is the one in progress, ignoring", id);
                else
                        log_fields(LOG_INFO, LOG_FIELDS({ "FOTA_JOB_ID", id }),
                                   "A FOTA job is already in progress, skipping %s; asking again when it ends", id);
                return;
        }
        if (streq(id, fm->rec.last_job)) {
                log_fields(LOG_INFO, LOG_FIELDS({ "FOTA_JOB_ID", id }), "FOTA job %s already completed, skipping", id);
                return;
        }
        if (r < 0) {
                log_fields(LOG_WARNING, LOG_FIELDS({ "FOTA_JOB_ID", id }), "FOTA job %s is invalid (%s%s%s), rejecting",
                           id, e.error.field, e.error.field[0] ? ": " : "", e.error.description);
                fota_manager_reject(fm, id, -1, FOTA_ERROR_BAD_JOB);
                return;
        }
        op = type_to_op(job.type);
        types = fm->fw_ready ? fm->fw.ops : 0;
        if (op == OP_NONE || !(types & (1u << op))) {
                log_fields(LOG_WARNING, LOG_FIELDS({ "FOTA_JOB_ID", id }, { "FOTA_TYPE", type_name(job.type) }),
                           "FOTA job %s: type %d (%s) cannot be applied by the attached firmware, rejecting", id,
                           job.type, type_name(job.type));
                fota_manager_reject(fm, id, job.type, FOTA_ERROR_BAD_TYPE);
                return;
        }

        fota_manager_new_record(fm, job.id, job.type);
        if (fota_job_url(&job, 0, fm->rec.url, sizeof fm->rec.url) < 0) {
                fota_manager_reject(fm, id, job.type, FOTA_ERROR_BAD_JOB);
                return;
        }
        snprintf(fm->rec.app_before, sizeof fm->rec.app_before, "%s", strempty(fm->fw.app_version));
        snprintf(fm->rec.modem_before, sizeof fm->rec.modem_before, "%s", strempty(fm->fw.modem_version));
        if (op == OP_MODEM_DELTA)
                (void) fota_delta_target_version(job.files[0], fm->rec.modem_expected, sizeof fm->rec.modem_expected);
        fm->rec.stage = FOTA_STAGE_DOWNLOADING;
        fm->retries = 0;
        fm->urc_result = RESULT_NONE;
        fota_manager_save(fm);
        log_fields(LOG_NOTICE, JOB_FIELDS(fm, { "MESSAGE_ID", MESSAGE_ID_FOTA_STARTED }, { "FOTA_URL", fm->rec.url }),
                   "FOTA job %s: updating the nRF91 %s image from %s (%llu bytes)", job.id, type_name(job.type),
                   fm->rec.url, (unsigned long long) job.file_size);
        fota_manager_start_download(fm);
}

void fota_manager_cloud_ready(FotaManager *fm) {
        fm->cloud_ready = true;
        fm->published = fm->acked = 0;
        /* First what the cloud has not acknowledged (this includes a validation outcome decided meanwhile). */
        fota_manager_publish_report(fm);
        switch (fm->state) {
        case FOTA_STATE_IDLE:
        case FOTA_STATE_STARTING:
        case FOTA_STATE_DOWNLOADING:
        case FOTA_STATE_STORED:
                fota_manager_request_jobs(fm);
                return;
        case FOTA_STATE_RECOVERING:
        case FOTA_STATE_APPLYING:
        case FOTA_STATE_VALIDATING:
        case FOTA_STATE_REPORTING:
                /* [""] once the outcome is reported and acknowledged. */
                return;
        case _FOTA_STATE_MAX:
                return;
        }
}

void fota_manager_cloud_down(FotaManager *fm) {
        fm->cloud_ready = false;
        fm->published = fm->acked = 0;
}

int fota_manager_new(sd_event *event, const char *dir, uint64_t apply_timeout_usec, const FotaManagerOps *ops,
                     void *userdata, FotaManager **ret) {
        _cleanup_(fota_manager_freep) FotaManager *fm = NULL;
        int r;

        if (!dir || !ops || !ops->publish_update || !ops->request_jobs || !ops->modem_start || !ops->modem_apply ||
            !ops->modem_confirm)
                return -EINVAL;
        fm = calloc(1, sizeof *fm);
        if (!fm)
                return -ENOMEM;
        fm->event = event ? sd_event_ref(event) : NULL;
        fm->apply_timeout_usec = apply_timeout_usec ?: FOTA_APPLY_TIMEOUT_USEC_DEFAULT;
        fm->ops = *ops;
        fm->userdata = userdata;
        fm->urc_result = RESULT_NONE;
        fm->dir = strdup(dir);
        if (!fm->dir)
                return -ENOMEM;
        fota_record_init(&fm->rec);
        r = fota_store_load(dir, &fm->rec);
        if (r == -ENOENT)
                fota_record_init(&fm->rec);
        else if (r < 0) {
                log_error_errno(r, "Failed to read the FOTA job from %s/job, starting without it: %m", dir);
                fota_record_init(&fm->rec);
        }
        fm->state = FOTA_STATE_IDLE;
        /* A percentage is saved just before it is reported: not sent twice across a restart. */
        fm->hundred_sent = fm->rec.progress == 100;
        if (fm->rec.stage != FOTA_STAGE_NONE)
                log_fields(LOG_NOTICE, JOB_FIELDS(fm, { NULL, NULL }), "FOTA job %s (%s) found at stage %s, going on",
                           fm->rec.id, type_name(fm->rec.type), fota_stage_to_string(fm->rec.stage));
        switch (fm->rec.stage) {
        case FOTA_STAGE_NONE:
                break;
        case FOTA_STAGE_DOWNLOADING:
                /* A progress report is not worth a duplicate: the next percentage says more. */
                fm->rec.has_report = false;
                fota_manager_enter_state(fm, FOTA_STATE_RECOVERING);
                break;
        case FOTA_STAGE_STORED:
                /* IN_PROGRESS again; the reset follows its acknowledgement. */
                record_set_report(&fm->rec, FOTA_STATUS_IN_PROGRESS, NULL);
                fota_manager_enter_state(fm, FOTA_STATE_STORED);
                break;
        case FOTA_STAGE_APPLYING:
                fm->rec.has_report = false;
                fota_manager_enter_state(fm, FOTA_STATE_APPLYING);
                break;
        case FOTA_STAGE_REPORTING:
                if (!fm->rec.has_report || !status_terminal(fm->rec.report_status))
                        record_set_report(&fm->rec, FOTA_STATUS_SUCCEEDED, FOTA_ERROR_NOT_VALIDATED);
                fota_manager_enter_state(fm, FOTA_STATE_REPORTING);
                break;
        case _FOTA_STAGE_MAX:
        case _FOTA_STAGE_INVALID:
                break;
        }
        *ret = TAKE_PTR(fm);
        return 0;
}

FotaManager *fota_manager_free(FotaManager *fm) {
        if (!fm)
                return NULL;
        if (fm->ops.modem_cancel)
                fm->ops.modem_cancel(fm->userdata);
        fm->timer = sd_event_source_disable_unref(fm->timer);
        sd_event_unref(fm->event);
        free(fm->dir);
        free(fm);
        return NULL;
}

FotaState fota_manager_get_state(const FotaManager *fm) {
        return fm->state;
}

const FotaRecord *fota_manager_get_record(const FotaManager *fm) {
        return &fm->rec;
}

unsigned fota_manager_supported_types(const FotaManager *fm) {
        return fm->fw_ready || fm->fw.ops ? fota_types_from_ops(fm->fw.ops) : 0;
}

const char *fota_manager_status_text(const FotaManager *fm) {
        switch (fm->state) {
        case FOTA_STATE_IDLE:
                return NULL;
        case FOTA_STATE_RECOVERING:
                return "FOTA: waiting for the nRF91";
        case FOTA_STATE_STARTING:
        case FOTA_STATE_DOWNLOADING:
                return "FOTA: the nRF91 downloads an update";
        case FOTA_STATE_STORED:
                return "FOTA: update stored";
        case FOTA_STATE_APPLYING:
                return "FOTA: the nRF91 applies an update, its link is down until it restarts";
        case FOTA_STATE_VALIDATING:
                return "FOTA: checking the new firmware";
        case FOTA_STATE_REPORTING:
                return "FOTA: reporting the result";
        case _FOTA_STATE_MAX:
                break;
        }
        return NULL;
}
