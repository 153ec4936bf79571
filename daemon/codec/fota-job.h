/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * FOTA job arrays over MQTT (spec nrfcloud-mqtt.md §4):
 *   jobs/rcv        ["jobExecutionId", firmwareType, fileSize, "host", "path"]
 *   jobs/ble/rcv    ["AA:BB:CC:DD:EE:FF", "jobExecutionId", firmwareType, fileSize, "host", "path"]
 *   jobs/update     ["jobId", status, progress% | "message"]
 *   jobs/ble/update ["AA:BB:CC:DD:EE:FF", "jobId", status, progress% | "message"]
 *   jobs/req        [""] (latest job) or ["jobId"];  jobs/ble/req ["AA:BB:CC:DD:EE:FF"]
 * Pure: no I/O, no globals, no logging.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec-util.h"

#define FOTA_JOB_MESSAGE_MAX 2048
/* What is read at most to find the id of a job that is too long (the MQTT
 * session's default bound on incoming messages). */
#define FOTA_JOB_INPUT_MAX 16384
#define FOTA_JOB_DEPTH_MAX 2
/* A v4 UUID is 36 characters (NRF_CLOUD_FOTA_JOB_ID_SIZE - 1). */
#define FOTA_JOB_ID_MAX 36
#define FOTA_HOST_MAX 253
#define FOTA_PATH_MAX 1024
/* nRF5 DFU: the init packet (.dat) and the image (.bin), maybe a few more. */
#define FOTA_FILES_MAX 4
#define FOTA_FILE_SIZE_MAX (UINT64_C(1) << 32)
#define FOTA_STATUS_MESSAGE_MAX 128

/* enum nrf_cloud_fota_type */
typedef enum FotaType {
        FOTA_TYPE_APP = 0,
        FOTA_TYPE_MODEM = 1, /* delta */
        FOTA_TYPE_BOOT = 2,
        FOTA_TYPE_BLE_BOOT = 3,
        FOTA_TYPE_BLE_SOFTDEVICE = 4,
        FOTA_TYPE_MDM_FULL = 5,
        _FOTA_TYPE_MAX,
        _FOTA_TYPE_INVALID = -EINVAL,
} FotaType;

/* enum nrf_cloud_fota_status */
typedef enum FotaStatus {
        FOTA_STATUS_QUEUED = 0,
        FOTA_STATUS_IN_PROGRESS = 1,
        FOTA_STATUS_FAILED = 2,
        FOTA_STATUS_SUCCEEDED = 3,
        FOTA_STATUS_TIMED_OUT = 4,
        FOTA_STATUS_CANCELED = 5,
        FOTA_STATUS_REJECTED = 6,
        FOTA_STATUS_DOWNLOADING = 7,
        _FOTA_STATUS_MAX,
        _FOTA_STATUS_INVALID = -EINVAL,
} FotaStatus;

/* "APP", "MODEM", "BOOT", "BLE_BOOT", "BLE_SOFTDEVICE", "MDM_FULL" (the
 * names of serviceInfo.fota_v2 for those that have one). */
const char *fota_type_to_string(FotaType t);
FotaType fota_type_from_string(const char *s);
const char *fota_status_to_string(FotaStatus s);

typedef struct FotaJob {
        bool ble;                                /* came from jobs/ble/rcv */
        char ble_address[BT_ADDR_STR_LEN + 1];   /* upper case; "" unless ble */
        char id[FOTA_JOB_ID_MAX + 1];
        int type;          /* the number sent; a FotaType when 0.._FOTA_TYPE_MAX-1 */
        uint64_t file_size;                      /* total of all files */
        char host[FOTA_HOST_MAX + 1];
        /* The files to download in order (https://<host>/<file>); a BLE
         * job's path may list several, space-separated. */
        char files[FOTA_FILES_MAX][FOTA_PATH_MAX + 1];
        size_t n_files;
} FotaJob;

/* What was wrong with a job, and the job (and device) it was for when
 * those could be read, so that it can be answered REJECTED "Job info is
 * invalid" (as nRF Cloud's library does). */
typedef struct FotaJobError {
        CodecError error;
        char id[FOTA_JOB_ID_MAX + 1];            /* "" if not readable */
        char ble_address[BT_ADDR_STR_LEN + 1];   /* "" if not readable */
} FotaJobError;

/* Parses a job from jobs/rcv (ble false) or jobs/ble/rcv (ble true),
 * leniently as nRF Cloud's library does (spec nrfcloud-fota.md §1.3):
 * elements by index, extra elements ignored, the host with or without
 * "https://", a path with or without a leading '/', percent-encoded or not.
 * Refused: control characters, ".." segments, over-long fields.
 * -ENOENT for an empty payload, blanks, null or [] (no job pending),
 * -EBADMSG for anything else that is not a job (error->id says whether the
 * job can still be answered); *ret is written only on success, *error (if
 * not NULL) only on failure.  A firmware type outside enum FotaType makes
 * the job invalid (as NCS decodes it); check a valid type against what the
 * gateway supports.  Up to FOTA_JOB_INPUT_MAX bytes are read so that a job
 * longer than FOTA_JOB_MESSAGE_MAX can still be answered by its id. */
int fota_job_parse(const void *data, size_t size, bool ble, FotaJob *ret, FotaJobError *error);

/* "https://<host>/<file>" with what a URL (or a quoted AT parameter) cannot
 * carry percent-encoded (spaces, quotes, backslashes, bytes >= 0x80). */
#define FOTA_URL_MAX (8 + FOTA_HOST_MAX + 1 + 3 * FOTA_PATH_MAX)
int fota_job_url(const FotaJob *j, size_t file, char *buf, size_t size);

/* The version a modem delta leads to, from its file name
 * ("mfw_nrf9160_update_from_1.3.5_to_1.3.6.bin" gives "1.3.6"); -ENOENT
 * when the name does not say. */
int fota_delta_target_version(const char *path, char *buf, size_t size);

/* [""] for the latest job, or ["<id>"]. */
int fota_job_build_request(const char *job_id, char **ret);
/* ["AA:BB:CC:DD:EE:FF"] on jobs/ble/req. */
int fota_ble_job_build_request(const char *address, char **ret);
/* ["<id>",status,progress] when status is DOWNLOADING (progress 0..100),
 * ["<id>",status,"<message>"] otherwise (message NULL: ""). */
int fota_job_build_update(const char *job_id, FotaStatus status, unsigned progress, const char *message, char **ret);
/* The same, prefixed with the device address, for jobs/ble/update. */
int fota_ble_job_build_update(const char *address, const char *job_id, FotaStatus status, unsigned progress,
                              const char *message, char **ret);
