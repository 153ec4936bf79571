/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * FOTA of the BLE devices behind the gateway (spec nrfcloud-fota.md §1.6):
 * jobs from jobs/ble/rcv, the image downloaded by the nRF91 firmware
 * (modem-download.h) into the state directory, then transferred to the
 * device, by the protocol its GATT services offer:
 *  - MCUmgr SMP: upload, image list, test, reset, reconnect, list again,
 *    confirm;
 *  - nRF5 SDK Secure DFU (buttonless FE59 without bonds, two files: the
 *    .dat init packet and the .bin): Enter Bootloader, the bootloader
 *    connected at the address + 1 as a connection of the gateway's own
 *    (ble_manager_connect_own()), the control point protocol of nrf-dfu.h,
 *    then the application back at its own address.
 * A device that does not come back within the reboot timeout after its
 * reset is FAILED "Error applying update".  One job per device, at most
 * max_parallel running.
 *
 * Reports on jobs/ble/update: DOWNLOADING 0, 10, ... 100 while the files
 * come in, IN_PROGRESS "" when the transfer to the device starts, SUCCEEDED
 * "" once the device runs the new image (its hash read back from the image
 * list) and it is confirmed, FAILED "Error during download" / "Error
 * applying update", REJECTED "Job info is invalid" / "FOTA type not
 * supported".  A job for a device that is not connected is ignored: the
 * gateway asks for it again (["ADDR"] on jobs/ble/req) every time the
 * device is connected and discovered.
 *
 * Each job is kept in <dir>/<ADDR> (its stage and the job as received), the
 * files next to it, so that a restart resumes where it was (download
 * resumed, SMP upload resumed at the offset the device reports, a reset
 * already sent verified at the next connection) and ends in one final
 * report.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "ble.h"
#include "macro.h"
#include "modem-download.h"

typedef struct BleFotaManager BleFotaManager;

typedef struct BleFotaOps {
        /* A JSON array for jobs/ble/update, and ["ADDR"] for jobs/ble/req.  done (may be NULL) is
         * called once with the broker's acknowledgement (0) or why there is none; final reports
         * are kept in <dir>/<ADDR>.report and sent again at the next blefota_manager_cloud_ready()
         * until acknowledged. */
        int (*publish_update)(void *userdata, const char *payload, void (*done)(int error, void *userdata),
                              void *done_userdata);
        int (*request_job)(void *userdata, const char *payload);
        /* The job of the device ended (final report made): its held traffic may go (may be NULL). */
        void (*job_ended)(void *userdata, const char *address);
} BleFotaOps;

#define BLEFOTA_SMP_TIMEOUT_USEC (15 * UINT64_C(1000000)) /* one SMP request's answer */
#define BLEFOTA_DOWNLOAD_RETRIES 5
#define BLEFOTA_RETRY_USEC (3 * UINT64_C(1000000))
#define BLEFOTA_REBOOT_TIMEOUT_USEC (120 * UINT64_C(1000000)) /* default of [Bluetooth] FotaRebootTimeoutSec= */

int blefota_manager_new(sd_event *event, const char *dir, BleManager *ble, ModemDownloader *downloader,
                        unsigned max_parallel, const BleFotaOps *ops, void *userdata, BleFotaManager **ret);
BleFotaManager *blefota_manager_free(BleFotaManager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(BleFotaManager *, blefota_manager_free);

/* How long a device may stay away after the reset that applies its update ([Bluetooth]
 * FotaRebootTimeoutSec=): past it the job is FAILED "Error applying update". */
void blefota_manager_set_reboot_timeout(BleFotaManager *m, uint64_t usec);

/* A message of jobs/ble/rcv. */
void blefota_manager_job_received(BleFotaManager *m, const uint8_t *payload, size_t len);
/* From the BLE manager's callbacks. */
void blefota_manager_device_state(BleFotaManager *m, BleDevice *d, BleDeviceState new_state);
/* true: the notification was an SMP response of a job, not to be forwarded to the cloud. */
bool blefota_manager_notification(BleFotaManager *m, BleDevice *d, const char *service_uuid, const char *chrc_uuid,
                                  const uint8_t *value, size_t size);
/* The cloud connection is up with jobs/ble/rcv subscribed: ask for the jobs of the connected devices. */
void blefota_manager_cloud_ready(BleFotaManager *m);
void blefota_manager_cloud_down(BleFotaManager *m);
/* The firmware restarted or the modem went away: downloads are resumed later. */
void blefota_manager_modem_lost(BleFotaManager *m);
void blefota_manager_modem_ready(BleFotaManager *m);
/* True once the modem was ready: fota_v2_ble is reported and jobs are asked for from then on. */
bool blefota_manager_offered(BleFotaManager *m);
/* Jobs not finished (for the status line). */
unsigned blefota_manager_active(BleFotaManager *m);

/* What a device's job is doing, for the D-Bus API (docs/dbus-api.md, Device1.Fota*). */
typedef struct BleFotaProgress {
        const char *job_id; /* valid until the manager runs again */
        const char *stage;  /* "waiting", "downloading", "transferring", "testing" */
        unsigned percent;   /* of the stage: done * 100 / total; 100 while testing */
        uint64_t done;      /* bytes received (downloading) or acknowledged by the device (transferring) */
        uint64_t total;     /* of the stage: the job's size, or the image's */
} BleFotaProgress;

/* -ENOENT: no unfinished job for address. */
int blefota_manager_job_progress(BleFotaManager *m, const char *address, BleFotaProgress *ret);
/* Called (from the loop, inside the manager) whenever blefota_manager_job_progress() of address may
 * have changed: often, for every chunk; the caller rate-limits what it shows. */
typedef void (*BleFotaChangedFn)(BleFotaManager *m, const char *address, void *userdata);
void blefota_manager_set_changed_callback(BleFotaManager *m, BleFotaChangedFn cb, void *userdata);

/* The device's firmware is being transferred or tested: the cloud's other operations on it wait
 * (protocol.h) until job_ended.  Notifications of its other characteristics still go to the cloud;
 * those of the SMP characteristic during a transfer are the job's. */
bool blefota_manager_device_busy(BleFotaManager *m, const char *address);
/* The device left desiredConnections: its job cannot end well, it ends FAILED ("Error applying
 * update") at once instead of waiting for a device that will not be connected again. */
void blefota_manager_device_removed(BleFotaManager *m, const char *address);
