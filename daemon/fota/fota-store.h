/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The FOTA job as it is kept in <StateDirectory>/fota/job, so that a daemon
 * restart, a SIGKILL or a power cut at any moment ends in exactly one
 * correct final report.  A small text file, one "key=value" per line:
 *
 *   stage=downloading|stored|applying|reporting|none
 *   id=<job id>              type=APP|MODEM|MDM_FULL|<number>
 *   url=https://<host>/<path>
 *   app_before=<#XSMVER>     modem_before=<+CGMR>    modem_expected=<version the delta leads to>
 *   progress=<last DOWNLOADING percentage reported, -1: none>
 *   report=<status number>   report_message=<string>   (the report not yet acknowledged)
 *   last_job=<id of the last job that ended>
 *   updated=<CLOCK_REALTIME seconds>
 *
 * Written crash-safely: a temporary file, fsync, rename, fsync of the folder.
 * nrfcloud-gatewayctl reads the same file (read-only) while the daemon runs.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fota-job.h"

#define FOTA_VERSION_MAX 64
#define FOTA_STORE_FILE_MAX 8192

typedef enum FotaStage {
        FOTA_STAGE_NONE,        /* no job; only last_job is meaningful */
        FOTA_STAGE_DOWNLOADING, /* the firmware downloads (or was asked to) */
        FOTA_STAGE_STORED,      /* image stored, IN_PROGRESS reported or to report */
        FOTA_STAGE_APPLYING,    /* the reset that applies it was (or is about to be) sent */
        FOTA_STAGE_REPORTING,   /* the final report is decided and not yet acknowledged */
        _FOTA_STAGE_MAX,
        _FOTA_STAGE_INVALID = -EINVAL,
} FotaStage;

typedef struct FotaRecord {
        FotaStage stage;
        char id[FOTA_JOB_ID_MAX + 1];
        int type;
        char url[FOTA_URL_MAX + 1];
        char app_before[FOTA_VERSION_MAX];
        char modem_before[FOTA_VERSION_MAX];
        char modem_expected[FOTA_VERSION_MAX];
        int progress;
        bool has_report;
        FotaStatus report_status;
        char report_message[FOTA_STATUS_MESSAGE_MAX + 1];
        char last_job[FOTA_JOB_ID_MAX + 1];
        uint64_t updated_sec;
} FotaRecord;

const char *fota_stage_to_string(FotaStage s);
FotaStage fota_stage_from_string(const char *s);

void fota_record_init(FotaRecord *r);
/* Pure: the text of a record, and back.  -EBADMSG for a file that is not one. */
int fota_record_format(const FotaRecord *r, char **ret);
int fota_record_parse(const char *text, size_t len, FotaRecord *ret);

/* <dir>/job.  load: -ENOENT when there is none. */
int fota_store_load(const char *dir, FotaRecord *ret);
int fota_store_save(const char *dir, const FotaRecord *r);
