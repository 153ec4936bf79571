/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The FOTA job manager: nRF Cloud's jobs for the gateway itself, run by the
 * nRF91 firmware (spec nrfcloud-fota.md; the firmware's #XFOTA).
 *
 *   idle ──job──▶ starting ──OK──▶ downloading ──#XFOTA: 4,0──▶ stored
 *                                                                 │ IN_PROGRESS acknowledged
 *   reporting ◀── validating ◀── firmware back ◀── applying ◀─────┘ (job persisted, then reset)
 *       │ final report acknowledged
 *       ▼
 *     idle (the job id is "last job"; [""] asks for the next one)
 *
 * recovering: a job was found in the state file at start, or the firmware
 * went away during the download; the firmware's #XFOTAINFO decides where
 * to go on.  Every failure goes to reporting with NCS's status and string.
 *
 * The manager talks to the cloud session and the modem only through
 * FotaManagerOps, which the gateway wires; the gateway feeds it the
 * session's and the modem's events.
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "fota-job.h"
#include "fota-store.h"
#include "macro.h"

#define FOTA_APPLY_TIMEOUT_USEC_DEFAULT (300ull * 1000000ull)

typedef enum FotaState {
        FOTA_STATE_IDLE,
        FOTA_STATE_RECOVERING,  /* waiting for the firmware's FOTA state to go on */
        FOTA_STATE_STARTING,    /* AT#XFOTA sent */
        FOTA_STATE_DOWNLOADING,
        FOTA_STATE_STORED,      /* IN_PROGRESS reported, waiting for its acknowledgement */
        FOTA_STATE_APPLYING,    /* reset sent, waiting for the new firmware */
        FOTA_STATE_VALIDATING,  /* the new application answered: confirming it */
        FOTA_STATE_REPORTING,   /* the final report waits for its acknowledgement */
        _FOTA_STATE_MAX,
} FotaState;

/* What the firmware says about itself (#XFOTAINFO, #XSMVER, +CGMR). */
typedef struct FotaFirmware {
        unsigned ops;        /* bit n: #XFOTA op n can be applied (2 APP, 4 MODEM, 8 MDM_FULL) */
        bool has_state;      /* #XFOTAINFO answered */
        int state;           /* ModemFotaState */
        int op;
        int result;          /* -1 none, 0 applied, 1 failed, 3 reverted */
        int result_info;
        const char *app_version;   /* #XSMVER, NULL if unknown */
        const char *modem_version; /* +CGMR */
} FotaFirmware;

/* A firmware #XFOTA: <stage>,<status>[,<info>[,<cause>]] line. */
typedef struct FotaFirmwareEvent {
        unsigned stage, status;
        bool has_info, has_cause;
        int64_t info, cause;
} FotaFirmwareEvent;

typedef void (*FotaDoneFn)(int error, void *userdata);

typedef struct FotaManagerOps {
        /* PUBLISH (QoS 1) on <prefix><id>/jobs/update, outside the outbox; done on PUBACK.
         * done is never called when the connection ends first. */
        int (*publish_update)(void *userdata, const char *payload, FotaDoneFn done, void *done_userdata);
        /* [""] on jobs/req. */
        int (*request_jobs)(void *userdata);
        /* Modem commands; each completes with fota_manager_modem_done(). */
        int (*modem_start)(void *userdata, int op, const char *url);
        int (*modem_apply)(void *userdata, int op);
        int (*modem_confirm)(void *userdata);
        void (*modem_cancel)(void *userdata);
        /* For STATUS= and the shadow (the versions after an update). */
        void (*state_changed)(void *userdata, FotaState old_state, FotaState new_state);
        void (*updated)(void *userdata);
} FotaManagerOps;

typedef struct FotaManager FotaManager;

/* dir: <StateDirectory>/fota.  event may be NULL (no apply timeout: tests
 * call fota_manager_apply_timeout()). */
int fota_manager_new(sd_event *event, const char *dir, uint64_t apply_timeout_usec, const FotaManagerOps *ops,
                     void *userdata, FotaManager **ret);
FotaManager *fota_manager_free(FotaManager *fm);
DEFINE_TRIVIAL_CLEANUP_FUNC(FotaManager *, fota_manager_free);

/* From the cloud session: the FOTA subscription is ready / the connection is gone. */
void fota_manager_cloud_ready(FotaManager *fm);
void fota_manager_cloud_down(FotaManager *fm);
void fota_manager_job_received(FotaManager *fm, const void *payload, size_t len);

/* From the modem manager: ready after a probe (fw copied), gone, a URC, a command done. */
void fota_manager_firmware_ready(FotaManager *fm, const FotaFirmware *fw);
void fota_manager_firmware_lost(FotaManager *fm);
void fota_manager_firmware_event(FotaManager *fm, const FotaFirmwareEvent *ev);
void fota_manager_modem_done(FotaManager *fm, int error);
/* The firmware did not come back in time after the reset. */
void fota_manager_apply_timeout(FotaManager *fm);

FotaState fota_manager_get_state(const FotaManager *fm);
const FotaRecord *fota_manager_get_record(const FotaManager *fm);
/* bit (1 << FotaType) of the types the firmware can apply (serviceInfo.fota_v2). */
unsigned fota_manager_supported_types(const FotaManager *fm);
/* For STATUS=: NULL when there is nothing to say. */
const char *fota_manager_status_text(const FotaManager *fm);
const char *fota_state_to_string(FotaState s);
/* bit (1 << FotaType) from #XFOTAINFO's <ops>. */
unsigned fota_types_from_ops(unsigned ops);
