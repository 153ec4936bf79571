/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blefota-manager.h"
#include "fota-job.h"
#include "log.h"
#include "message-ids.h"
#include "nrf-dfu.h"
#include "smp.h"
#include "util.h"

#define E_DOWNLOAD "Error during download"
#define E_APPLY "Error applying update"
#define E_INVALID "Job info is invalid"
#define E_UNSUPPORTED "FOTA type not supported"
#define E_MISMATCH "FW file does not match specified FOTA type"
#define JOB_FILE_MAX (FOTA_JOB_INPUT_MAX + 256)
/* Upload requests in flight.  Zephyr's SMP transport takes a request into one of
 * CONFIG_MCUMGR_TRANSPORT_NETBUF_COUNT buffers (4 by default) until it is handled; its one work
 * queue handles one request at a time and takes a buffer for the answer meanwhile, freed once the
 * answer is sent.  Three requests and the answer being built fill the four; a fourth request can
 * only follow an answer, after the request answered has given its buffer back.  A request the
 * device had no buffer for is lost, and the offset in the next answer says where to go on. */
#define SMP_UPLOAD_WINDOW 3u

typedef enum JobStage {
        STAGE_WAITING,     /* known, not started (device not ready, or no slot) */
        STAGE_DOWNLOADING, /* the files come in through the nRF91 */
        STAGE_TRANSFER,    /* SMP upload and test */
        STAGE_TESTING,     /* reset sent: the device must come back with the new image */
        STAGE_BOOTLOADER,  /* nRF5: the device went into its DFU bootloader, at its address + 1 */
        _STAGE_MAX,
} JobStage;

typedef enum SmpStep {
        SMP_STEP_NONE,
        SMP_STEP_NOTIFY,
        SMP_STEP_LIST_BEFORE,
        SMP_STEP_UPLOAD,
        SMP_STEP_LIST_AFTER,
        SMP_STEP_TEST,
        SMP_STEP_RESET,
        SMP_STEP_LIST_VERIFY,
        SMP_STEP_CONFIRM,
} SmpStep;

/* nRF5 Secure DFU (nrf-dfu.h): buttonless entry on the application, then the bootloader. */
typedef enum DfuStep {
        DFU_STEP_NONE,
        DFU_STEP_BUTTONLESS_NOTIFY, /* indications of the buttonless characteristic */
        DFU_STEP_ENTER,             /* Enter Bootloader written, its response awaited */
        DFU_STEP_BOOT_CONNECT,      /* the bootloader is looked for and connected */
        DFU_STEP_CP_NOTIFY,         /* notifications of its control point */
        DFU_STEP_RUN,               /* the control point protocol (the planner) */
        DFU_STEP_WAIT_APP,          /* the image is executed: the application must come back */
} DfuStep;

#define DFU_PRN 12            /* a receipt every 12 packets, as Nordic's Android DFU library does by default */
#define DFU_PACKETS_QUEUED 16 /* packet writes handed to the BLE layer at once */
#define DFU_RETRIES 3         /* an object whose CRC does not match is sent again */

typedef struct Job Job;
typedef struct Report Report;

/* A final report until the broker acknowledged it. */
struct Report {
        BleFotaManager *m;
        Report *next;
        char address[BLE_ADDR_STR_MAX];
        char id[FOTA_JOB_ID_MAX + 1];
        FotaStatus status;
        char message[FOTA_STATUS_MESSAGE_MAX + 1];
        bool in_flight;
};

struct Job {
        BleFotaManager *m;
        Job *next;
        FotaJob job;
        char *raw;           /* the job as received, persisted */
        JobStage stage;
        bool running;        /* started in this run (a slot is taken) */
        bool finished;       /* final report sent; freed once no operation refers to it */
        unsigned pending_ops;

        /* Download. */
        ModemDownload *download;
        size_t file;                 /* the file downloading */
        uint64_t done_bytes;         /* of the files before it */
        int last_pct;
        unsigned retries;
        sd_event_source *timer;

        /* SMP. */
        SmpStep step;
        uint8_t seq;
        SmpReassembler ra;
        int fd;
        uint64_t image_size;
        uint8_t image_sha[32];
        uint64_t off;         /* acknowledged by the device */
        uint64_t sent_off;    /* where the next upload request starts */
        struct {
                uint8_t seq;
                uint64_t off;
                size_t len;
        } inflight[SMP_UPLOAD_WINDOW]; /* upload requests not answered yet, oldest first */
        unsigned n_inflight;
        unsigned logged_pct;  /* of the upload, logged in steps of 10 */
        uint8_t new_hash[SMP_HASH_MAX];
        size_t new_hash_len;
        bool reset_answered;
        bool reset_again;     /* the reset was sent once more after a restart found it pending */
        uint64_t downloaded;  /* bytes of the files received (blefota_manager_job_progress()) */
        sd_event_source *reboot_timer; /* FotaRebootTimeoutSec=: the device must be back by then */

        /* nRF5 Secure DFU: fd is the firmware (.bin), init_fd the init packet (.dat). */
        bool nrf5;
        DfuStep dstep;
        BleDevice *boot;      /* the bootloader's connection (ble_manager_connect_own()) */
        int init_fd;
        uint32_t init_len;
        NrfDfuPlan plan;
        bool cp_wait;         /* a control point response is awaited */
        bool receipt_wait;    /* a packet receipt notification is awaited */
        bool enter_written;   /* Enter Bootloader reached the device */
        unsigned packets_queued;
        char old_revision[64]; /* Device Information firmware revision before the update, "" if none */
};

struct BleFotaManager {
        sd_event *event;
        char *dir;
        BleManager *ble;
        ModemDownloader *downloader;
        unsigned max_parallel;
        BleFotaOps ops;
        void *userdata;
        Job *jobs;
        Report *reports;
        char **ready; /* addresses of the devices READY now */
        bool offered; /* the modem was ready once: downloads can run */
        bool cloud_up; /* jobs/ble/rcv subscribed on this connection */
        char smp_svc[BLE_UUID_STR_MAX], smp_chr[BLE_UUID_STR_MAX];
        BleFotaChangedFn changed; /* blefota_manager_set_changed_callback() */
        void *changed_userdata;
        char dfu_svc[BLE_UUID_STR_MAX], dfu_cp[BLE_UUID_STR_MAX], dfu_pkt[BLE_UUID_STR_MAX], dfu_btn[BLE_UUID_STR_MAX];
        uint64_t reboot_timeout_usec;
};

static const char *const stage_table[_STAGE_MAX] = {
        [STAGE_WAITING] = "waiting",
        [STAGE_DOWNLOADING] = "downloading",
        [STAGE_TRANSFER] = "transfer",
        [STAGE_TESTING] = "testing",
        [STAGE_BOOTLOADER] = "bootloader",
};

static void job_start_smp(Job *j);
static void job_start_dfu(Job *j);
static void job_release_boot(Job *j);
static void job_reboot_wait(Job *j);
static void report_send(Report *r);
static void job_maybe_free(Job *j);
static void manager_start_waiting(BleFotaManager *m);
static void manager_set_ready(BleFotaManager *m, const char *address, bool ready);
static void job_changed(Job *j);

/* ---- persistence: "<stage> <hash hex or ->\n<job JSON>" ---- */

static int job_path(Job *j, const char *suffix, char **ret) {
        return asprintf(ret, "%s/%s%s", j->m->dir, j->job.ble_address, suffix) < 0 ? -ENOMEM : 0;
}

static int job_save(Job *j) {
        _cleanup_free_ char *path = NULL, *tmp = NULL;
        char hex[2 * SMP_HASH_MAX + 1] = "-";
        FILE *f;
        int fd, r;

        job_changed(j); /* each stage is saved: each change of stage is shown */
        if (job_path(j, "", &path) < 0 || job_path(j, ".tmp", &tmp) < 0)
                return -ENOMEM;
        if (j->nrf5)
                snprintf(hex, sizeof hex, "nrf5");
        else if (j->new_hash_len > 0)
                ble_hex(j->new_hash, j->new_hash_len, hex);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        f = fdopen(fd, "w");
        if (!f) {
                r = -errno;
                close(fd);
                return r;
        }
        fprintf(f, "%s %s\n%s", stage_table[j->stage], hex, j->raw);
        r = fflush(f) == 0 && fsync(fd) == 0 ? 0 : -errno;
        if (fclose(f) != 0 && r >= 0)
                r = -errno;
        if (r >= 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlink(tmp);
                return log_warning_errno(r, "Failed to save the BLE FOTA job of %s: %m", j->job.ble_address);
        }
        return 0;
}

static void job_remove_files(Job *j) {
        for (size_t i = 0; i < FOTA_FILES_MAX; i++) {
                char suffix[16];
                _cleanup_free_ char *p = NULL, *part = NULL;
                snprintf(suffix, sizeof suffix, ".%zu", i);
                if (job_path(j, suffix, &p) < 0)
                        continue;
                (void) unlink(p);
                if (asprintf(&part, "%s.part", p) >= 0)
                        (void) unlink(part);
        }
}

static void job_forget(Job *j) {
        _cleanup_free_ char *path = NULL, *last = NULL;
        int fd;

        job_remove_files(j);
        /* The id of the finished job: the cloud may hand it out again until it has our report. */
        if (job_path(j, ".last", &last) >= 0) {
                fd = open(last, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (fd >= 0) {
                        (void) !write(fd, j->job.id, strlen(j->job.id));
                        close(fd);
                }
        }
        if (job_path(j, "", &path) >= 0)
                (void) unlink(path);
}

static bool job_finished_before(BleFotaManager *m, const FotaJob *fj) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        size_t size;

        if (asprintf(&path, "%s/%s.last", m->dir, fj->ble_address) < 0 ||
            read_full_file(path, FOTA_JOB_ID_MAX + 1, &text, &size) < 0)
                return false;
        return size == strlen(fj->id) && memcmp(text, fj->id, size) == 0;
}

/* ---- reports ---- */

static void job_publish(Job *j, FotaStatus status, unsigned pct, const char *message) {
        _cleanup_free_ char *payload = NULL;
        int r;

        r = fota_ble_job_build_update(j->job.ble_address, j->job.id, status, pct, message, &payload);
        if (r >= 0)
                r = j->m->ops.publish_update ? j->m->ops.publish_update(j->m->userdata, payload, NULL, NULL)
                                             : -ENOTCONN;
        if (r < 0)
                log_warning_errno(r, "Failed to report BLE FOTA job %s of %s: %m", j->job.id, j->job.ble_address);
}

static int report_path(BleFotaManager *m, const char *address, char **ret) {
        return asprintf(ret, "%s/%s.report", m->dir, address) < 0 ? -ENOMEM : 0;
}

static void report_free(Report *r) {
        for (Report **p = &r->m->reports; *p; p = &(*p)->next)
                if (*p == r) {
                        *p = r->next;
                        break;
                }
        free(r);
}

static void on_report_done(int error, void *userdata) {
        Report *r = userdata;
        _cleanup_free_ char *path = NULL;

        r->in_flight = false;
        if (error < 0)
                return (void) log_info("The final report of BLE FOTA job %s was not acknowledged (%s), "
                                       "sending it again at the next connection", r->id, strerror(-error));
        if (report_path(r->m, r->address, &path) >= 0)
                (void) unlink(path);
        report_free(r);
}

static void report_send(Report *r) {
        _cleanup_free_ char *payload = NULL;
        int k;

        if (r->in_flight)
                return;
        k = fota_ble_job_build_update(r->address, r->id, r->status, 0, r->message, &payload);
        if (k >= 0)
                k = r->m->ops.publish_update ? r->m->ops.publish_update(r->m->userdata, payload, on_report_done, r)
                                             : -ENOTCONN;
        if (k < 0)
                log_info("Cannot send the final report of BLE FOTA job %s now (%s), at the next connection", r->id,
                         strerror(-k));
        else
                r->in_flight = true;
}

/* Keeps a final report (in <dir>/<ADDR>.report when save) and sends it. */
static void report_new(BleFotaManager *m, const char *address, const char *id, FotaStatus status, const char *message,
                       bool save) {
        Report *r = calloc(1, sizeof *r);

        if (!r)
                return (void) log_error("Out of memory for the report of BLE FOTA job %s", id);
        r->m = m;
        snprintf(r->address, sizeof r->address, "%s", address);
        snprintf(r->id, sizeof r->id, "%s", id);
        r->status = status;
        snprintf(r->message, sizeof r->message, "%s", strempty(message));
        r->next = m->reports;
        m->reports = r;
        if (save) {
                _cleanup_free_ char *path = NULL;
                FILE *f;
                if (report_path(m, address, &path) >= 0 && (f = fopen(path, "we"))) {
                        fprintf(f, "%d %s\n%s", (int) status, id, r->message);
                        (void) fflush(f);
                        (void) fsync(fileno(f));
                        fclose(f);
                }
        }
        report_send(r);
}

static void job_close(Job *j) {
        j->download = modem_download_free(j->download);
        j->timer = sd_event_source_disable_unref(j->timer);
        j->reboot_timer = sd_event_source_disable_unref(j->reboot_timer);
        j->fd = safe_close(j->fd);
        j->init_fd = safe_close(j->init_fd);
        j->step = SMP_STEP_NONE;
        j->dstep = DFU_STEP_NONE;
}

static void job_finish(Job *j, FotaStatus status, const char *message) {
        BleFotaManager *m = j->m;

        if (j->finished)
                return;
        log_fields(status == FOTA_STATUS_SUCCEEDED ? LOG_NOTICE : LOG_WARNING,
                   LOG_FIELDS({ "MESSAGE_ID", status == FOTA_STATUS_SUCCEEDED ? MESSAGE_ID_BLE_FOTA_SUCCEEDED
                                                                             : MESSAGE_ID_BLE_FOTA_FAILED },
                              { "BT_ADDR", j->job.ble_address }, { "FOTA_JOB_ID", j->job.id },
                              { "FOTA_STATUS", fota_status_to_string(status) }),
                   "BLE FOTA job %s of %s: %s%s%s", j->job.id, j->job.ble_address, fota_status_to_string(status),
                   message && message[0] ? ", " : "", strempty(message));
        report_new(m, j->job.ble_address, j->job.id, status, message, true);
        if (j->nrf5) /* the application is not kept away any longer (no-op unless it was) */
                ble_device_hold(ble_manager_get_device(m->ble, j->job.ble_address), false);
        job_release_boot(j);
        job_close(j);
        job_forget(j);
        j->finished = true;
        j->running = false;
        job_changed(j);
        if (m->ops.job_ended)
                m->ops.job_ended(m->userdata, j->job.ble_address);
        job_maybe_free(j);
        manager_start_waiting(m);
}

static void job_unlink(Job *j) {
        for (Job **p = &j->m->jobs; *p; p = &(*p)->next)
                if (*p == j) {
                        *p = j->next;
                        return;
                }
}

static Job *job_free(Job *j) {
        if (!j)
                return NULL;
        /* The BLE manager is gone already (gateway_blefota_free()) and freed the bootloader's connection. */
        j->boot = NULL;
        job_close(j);
        free(j->raw);
        free(j);
        return NULL;
}

static void job_maybe_free(Job *j) {
        if (j->finished && j->pending_ops == 0) {
                job_unlink(j);
                job_free(j);
        }
}

static Job *manager_find(BleFotaManager *m, const char *address) {
        for (Job *j = m->jobs; j; j = j->next)
                if (!j->finished && strcasecmp(j->job.ble_address, address) == 0)
                        return j;
        return NULL;
}

static unsigned manager_running(BleFotaManager *m) {
        unsigned n = 0;
        for (Job *j = m->jobs; j; j = j->next)
                if (!j->finished && j->running)
                        n++;
        return n;
}

unsigned blefota_manager_active(BleFotaManager *m) {
        unsigned n = 0;
        for (Job *j = m ? m->jobs : NULL; j; j = j->next)
                if (!j->finished)
                        n++;
        return n;
}

static BleDevice *job_device(Job *j) {
        BleDevice *d = ble_manager_get_device(j->m->ble, j->job.ble_address);
        return d && ble_device_state(d) == BLE_DEVICE_READY ? d : NULL;
}

/* ---- download ---- */

static void job_download_next(Job *j);

static void job_progress(Job *j, uint64_t bytes) {
        uint64_t total = j->job.file_size ? j->job.file_size : 1;
        int pct = (int) MIN((uint64_t) 100, bytes * 100 / total);

        j->downloaded = bytes;
        job_changed(j);
        pct -= pct % 10;
        if (pct > j->last_pct) {
                j->last_pct = pct;
                job_publish(j, FOTA_STATUS_DOWNLOADING, (unsigned) pct, NULL);
        }
}

static void on_download_progress(ModemDownload *d, uint64_t received, void *userdata) {
        Job *j = userdata;
        (void) d;
        job_progress(j, j->done_bytes + received);
}

static int on_retry_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Job *j = userdata;
        (void) s, (void) usec;
        j->timer = sd_event_source_disable_unref(j->timer);
        if (j->stage == STAGE_DOWNLOADING)
                job_download_next(j);
        return 0;
}

static void job_retry_later(Job *j) {
        j->timer = sd_event_source_disable_unref(j->timer);
        (void) sd_event_add_time_relative(j->m->event, &j->timer, CLOCK_MONOTONIC, BLEFOTA_RETRY_USEC, 0,
                                          on_retry_timer, j);
}

static void on_download_done(ModemDownload *d, int error, const ModemDownloadResult *res, void *userdata) {
        Job *j = userdata;
        (void) d;

        if (error < 0) {
                bool transient = error == -ECONNRESET || error == -ETIMEDOUT || error == -ENETDOWN ||
                                 error == -EBUSY || error == -ENOTCONN || error == -EAGAIN || error == -EBADMSG ||
                                 error == -ECONNABORTED || error == -ENOBUFS;
                if (transient && j->retries++ < BLEFOTA_DOWNLOAD_RETRIES) {
                        log_info("BLE FOTA job %s: download of %s interrupted (%s), resuming in a moment", j->job.id,
                                 j->job.files[j->file], strerror(-error));
                        return job_retry_later(j);
                }
                log_warning_errno(error, "BLE FOTA job %s: download of %s failed: %m", j->job.id, j->job.files[j->file]);
                return job_finish(j, FOTA_STATUS_FAILED, E_DOWNLOAD);
        }
        j->done_bytes += res->size;
        if (j->file + 1 == j->job.n_files)
                memcpy(j->image_sha, res->sha256, sizeof j->image_sha);
        j->download = modem_download_free(j->download);
        j->file++;
        j->retries = 0;
        job_download_next(j);
}

static void job_download_next(Job *j) {
        char url[FOTA_URL_MAX + 1], suffix[16];
        _cleanup_free_ char *path = NULL;
        static const ModemDownloadCallbacks cb = { .progress = on_download_progress, .done = on_download_done };
        int r;

        if (j->file >= j->job.n_files) {
                if (j->done_bytes != j->job.file_size) {
                        log_warning("BLE FOTA job %s: the files hold %" PRIu64 " bytes, the job says %" PRIu64,
                                    j->job.id, j->done_bytes, j->job.file_size);
                        return job_finish(j, FOTA_STATUS_FAILED, E_DOWNLOAD);
                }
                if (j->last_pct < 100) {
                        j->last_pct = 100;
                        job_publish(j, FOTA_STATUS_DOWNLOADING, 100, NULL);
                }
                job_publish(j, FOTA_STATUS_IN_PROGRESS, 0, "");
                j->stage = STAGE_TRANSFER;
                (void) job_save(j);
                return job_start_smp(j);
        }
        if (!j->m->downloader)
                return job_finish(j, FOTA_STATUS_FAILED, E_DOWNLOAD);
        r = fota_job_url(&j->job, j->file, url, sizeof url);
        snprintf(suffix, sizeof suffix, ".%zu", j->file);
        if (r >= 0)
                r = job_path(j, suffix, &path);
        if (r >= 0 && !j->download)
                r = modem_download_new(j->m->downloader, url, path, j->job.file_size - MIN(j->done_bytes, j->job.file_size),
                                       &cb, j, &j->download);
        if (r < 0) {
                log_warning_errno(r, "BLE FOTA job %s: cannot download %s: %m", j->job.id, j->job.files[j->file]);
                return job_finish(j, FOTA_STATUS_FAILED, E_DOWNLOAD);
        }
        r = modem_download_start(j->download);
        if (r == -EAGAIN || r == -EBUSY)
                return job_retry_later(j);
        if (r < 0) {
                log_warning_errno(r, "BLE FOTA job %s: cannot start downloading %s: %m", j->job.id, url);
                return job_finish(j, FOTA_STATUS_FAILED, E_DOWNLOAD);
        }
}

/* ---- SMP ---- */

static void job_smp_fail(Job *j, const char *what) {
        log_fields(LOG_WARNING, LOG_FIELDS({ "BT_ADDR", j->job.ble_address }), "BLE FOTA job %s of %s: %s",
                   j->job.id, j->job.ble_address, what);
        job_finish(j, FOTA_STATUS_FAILED, E_APPLY);
}

/* Bytes one write can carry: the link's ATT MTU - 3 (23 if BlueZ does not say), at most cap. */
static size_t chrc_write_max(BleDevice *d, const char *svc, const char *chr, size_t cap) {
        const BleGattChrc *c = ble_gatt_find_chrc(ble_device_gatt(d), svc, chr);
        unsigned mtu = c && c->mtu >= 23 ? c->mtu : 23;
        return MIN((size_t) mtu - 3, cap);
}

static size_t job_frame_max(Job *j, BleDevice *d) {
        return chrc_write_max(d, j->m->smp_svc, j->m->smp_chr, 512);
}

static void on_smp_written(BleDevice *d, const BleOpResult *res, void *userdata) {
        Job *j = userdata;
        (void) d;

        j->pending_ops--;
        if (j->finished)
                return job_maybe_free(j);
        if (res->error < 0 && j->step != SMP_STEP_NONE && j->step != SMP_STEP_RESET) {
                /* A dropped link: the device's next READY resumes. */
                log_debug("BLE FOTA job %s: SMP write failed: %s", j->job.id, strerror(-res->error));
        }
}

static int on_smp_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Job *j = userdata;
        (void) s, (void) usec;

        j->timer = sd_event_source_disable_unref(j->timer);
        if (j->step == SMP_STEP_RESET) {
                /* The device reset before its answer got out: wait for it to come back. */
                return 0;
        }
        log_info("BLE FOTA job %s: no SMP answer from %s, starting the transfer again", j->job.id, j->job.ble_address);
        if (job_device(j))
                job_start_smp(j);
        return 0;
}

static int job_smp_arm_timeout(Job *j) {
        j->timer = sd_event_source_disable_unref(j->timer);
        return sd_event_add_time_relative(j->m->event, &j->timer, CLOCK_MONOTONIC, BLEFOTA_SMP_TIMEOUT_USEC, 0,
                                          on_smp_timeout, j);
}

/* Writes one SMP frame, cut into writes of the MTU if needed (devices reassemble by the header's length). */
static int job_smp_send(Job *j, const uint8_t *frame, size_t len) {
        BleDevice *d = job_device(j);
        size_t piece;
        int r;

        if (!d)
                return -ENOTCONN;
        piece = job_frame_max(j, d);
        if (j->n_inflight == 0)
                smp_reassembler_reset(&j->ra); /* not while answers of upload requests may be on their way */
        for (size_t off = 0; off < len; off += piece) {
                size_t n = MIN(piece, len - off);
                r = ble_device_write(d, j->m->smp_svc, j->m->smp_chr, frame + off, n, BLE_WRITE_COMMAND,
                                     on_smp_written, j);
                if (r < 0)
                        return r;
                j->pending_ops++;
        }
        return job_smp_arm_timeout(j);
}

/* < 0: not sent, and the job may be gone (failed) or waits for the device's next connection. */
static int job_smp_send_or_fail(Job *j, int r, const uint8_t *frame, size_t len) {
        if (r >= 0)
                r = job_smp_send(j, frame, len);
        if (r == -ENOTCONN)
                return r; /* resumed at the next connection */
        if (r < 0) {
                log_warning_errno(r, "BLE FOTA job %s: SMP request failed: %m", j->job.id);
                job_smp_fail(j, "the SMP request could not be sent");
        }
        return r;
}

static void job_smp_list(Job *j, SmpStep step) {
        uint8_t buf[64];
        size_t len = 0;
        int r;

        j->step = step;
        j->n_inflight = 0;
        r = smp_encode_image_state_read(buf, sizeof buf, SMP_VERSION_1, ++j->seq, &len);
        job_smp_send_or_fail(j, r, buf, len);
}

/* Sends upload requests from sent_off until SMP_UPLOAD_WINDOW are in flight or the image is sent. */
static void job_smp_upload(Job *j) {
        BleDevice *d = job_device(j);
        uint8_t data[SMP_FRAME_MAX], frame[SMP_FRAME_MAX];
        size_t frame_max, n, len;
        ssize_t k;
        int r;

        if (!d)
                return;
        j->step = SMP_STEP_UPLOAD;
        while (j->n_inflight < SMP_UPLOAD_WINDOW && j->sent_off < j->image_size) {
                SmpUpload u = { .total_len = j->image_size, .off = j->sent_off };

                if (u.off == 0) {
                        u.sha = j->image_sha;
                        u.sha_len = sizeof j->image_sha;
                }
                frame_max = job_frame_max(j, d);
                n = smp_upload_chunk_max(frame_max, &u);
                if (u.off == 0 && n < SMP_UPLOAD_FIRST_CHUNK_MIN) {
                        /* Too small an MTU for the first request in one write: send it in several. */
                        frame_max = 256;
                        n = smp_upload_chunk_max(frame_max, &u);
                }
                n = MIN(n, sizeof data);
                if (n == 0)
                        return job_smp_fail(j, "the SMP MTU is too small");
                k = pread(j->fd, data, n, (off_t) u.off);
                if (k <= 0)
                        return job_smp_fail(j, "the image file cannot be read");
                u.data = data;
                u.data_len = (size_t) k;
                len = 0;
                r = smp_encode_upload(frame, sizeof frame, SMP_VERSION_1, ++j->seq, &u, &len);
                if (job_smp_send_or_fail(j, r, frame, len) < 0)
                        return;
                j->inflight[j->n_inflight].seq = j->seq;
                j->inflight[j->n_inflight].off = u.off;
                j->inflight[j->n_inflight].len = (size_t) k;
                j->n_inflight++;
                j->sent_off += (uint64_t) k;
                if (u.off == 0)
                        break; /* its answer may move the offset (an upload resumed): wait for it */
        }
}

/* The answer to an upload request in flight, or -1; answers to earlier ones will not come. */
static int job_smp_inflight(Job *j, uint8_t seq) {
        for (unsigned i = 0; i < j->n_inflight; i++)
                if (j->inflight[i].seq == seq)
                        return (int) i;
        return -1;
}

static void job_smp_state_set(Job *j, bool confirm) {
        uint8_t buf[128];
        size_t len = 0;
        int r;

        j->step = confirm ? SMP_STEP_CONFIRM : SMP_STEP_TEST;
        r = smp_encode_image_state_set(buf, sizeof buf, SMP_VERSION_1, ++j->seq, j->new_hash, j->new_hash_len,
                                       confirm, &len);
        job_smp_send_or_fail(j, r, buf, len);
}

static void job_smp_reset(Job *j) {
        uint8_t buf[32];
        size_t len = 0;
        int r;

        j->step = SMP_STEP_RESET;
        j->stage = STAGE_TESTING;
        (void) job_save(j);
        job_reboot_wait(j);
        r = smp_encode_os_reset(buf, sizeof buf, SMP_VERSION_1, ++j->seq, false, &len);
        job_smp_send_or_fail(j, r, buf, len);
}

static const SmpImage *find_active(const SmpResponse *r) {
        for (size_t i = 0; i < r->n_images; i++)
                if (r->images[i].image == 0 && r->images[i].active)
                        return &r->images[i];
        return NULL;
}

static void job_on_response(Job *j, const SmpResponse *r) {
        uint16_t group = 0;
        int status = smp_response_status(r, &group);
        const SmpImage *img;

        j->timer = sd_event_source_disable_unref(j->timer);
        switch (j->step) {
        case SMP_STEP_LIST_BEFORE:
                if (status != 0 || !r->has_images)
                        return job_smp_fail(j, "the device did not list its images");
                img = find_active(r);
                log_info("BLE FOTA job %s: %s runs version %s, uploading %" PRIu64 " bytes", j->job.id,
                         j->job.ble_address, img ? img->version : "?", j->image_size);
                j->off = j->sent_off = 0;
                j->n_inflight = 0;
                j->logged_pct = 0;
                return job_smp_upload(j);
        case SMP_STEP_UPLOAD: {
                int i = job_smp_inflight(j, r->hdr.seq);
                uint64_t expected;

                if (i < 0)
                        return; /* not one in flight (the notification filter lets only those through) */
                expected = j->inflight[i].off + j->inflight[i].len;
                /* Those sent before it went unanswered: lost (the offset tells). */
                j->n_inflight -= (unsigned) i + 1;
                memmove(j->inflight, j->inflight + i + 1, j->n_inflight * sizeof j->inflight[0]);
                if (status != 0) {
                        log_warning("BLE FOTA job %s: the device refused the upload at %" PRIu64 ": %s", j->job.id,
                                    j->off, group == SMP_GROUP_IMAGE ? smp_img_err_to_string(status)
                                                                     : smp_mgmt_err_to_string(status));
                        return job_smp_fail(j, "the device refused the image");
                }
                j->off = r->has_off ? r->off : expected;
                if (j->off > j->image_size)
                        return job_smp_fail(j, "the device reports an offset beyond the image");
                if (j->off != expected) {
                        /* The device wants another offset (an upload resumed, a request lost): the
                         * requests in flight are answered with it too, and ignored. */
                        j->n_inflight = 0;
                        j->sent_off = j->off;
                }
                job_changed(j);
                if (j->image_size > 0 && j->off * 100 / j->image_size >= j->logged_pct + 10) {
                        j->logged_pct = (unsigned) (j->off * 100 / j->image_size) / 10 * 10;
                        log_fields(LOG_INFO, LOG_FIELDS({ "BT_ADDR", j->job.ble_address }, { "FOTA_JOB_ID", j->job.id }),
                                   "BLE FOTA job %s: %u%% transferred to %s (%" PRIu64 " of %" PRIu64 " bytes)",
                                   j->job.id, j->logged_pct, j->job.ble_address, j->off, j->image_size);
                }
                if (j->off < j->image_size) {
                        job_smp_upload(j);
                        if (j->step == SMP_STEP_UPLOAD && j->n_inflight > 0 && !j->timer)
                                job_smp_arm_timeout(j);
                        return;
                }
                if (r->has_match && !r->match)
                        return job_smp_fail(j, "the device's SHA-256 of the upload does not match");
                log_info("BLE FOTA job %s: image uploaded to %s", j->job.id, j->job.ble_address);
                return job_smp_list(j, SMP_STEP_LIST_AFTER);
        }
        case SMP_STEP_LIST_AFTER:
                if (status != 0 || !r->has_images)
                        return job_smp_fail(j, "the device did not list its images");
                j->new_hash_len = 0;
                for (size_t i = 0; i < r->n_images; i++)
                        if (r->images[i].image == 0 && !r->images[i].active && r->images[i].hash_len > 0) {
                                memcpy(j->new_hash, r->images[i].hash, r->images[i].hash_len);
                                j->new_hash_len = r->images[i].hash_len;
                                log_info("BLE FOTA job %s: new image version %s in slot %" PRIu32, j->job.id,
                                         r->images[i].version, r->images[i].slot);
                        }
                if (j->new_hash_len == 0)
                        return job_smp_fail(j, "the uploaded image is not in the device's list");
                return job_smp_state_set(j, false);
        case SMP_STEP_TEST:
                if (status != 0)
                        return job_smp_fail(j, "the device refused to test the new image");
                return job_smp_reset(j);
        case SMP_STEP_RESET:
                /* Answered; the link drops and the device boots. */
                j->reset_answered = true;
                return;
        case SMP_STEP_LIST_VERIFY:
                if (status != 0 || !r->has_images)
                        return job_smp_fail(j, "the device did not list its images after the reset");
                img = find_active(r);
                if ((!img || img->hash_len != j->new_hash_len || memcmp(img->hash, j->new_hash, j->new_hash_len) != 0) &&
                    !j->reset_again)
                        for (size_t i = 0; i < r->n_images; i++)
                                if (!r->images[i].active && r->images[i].pending &&
                                    r->images[i].hash_len == j->new_hash_len &&
                                    memcmp(r->images[i].hash, j->new_hash, j->new_hash_len) == 0) {
                                        /* Stopped between marking the test and the reset: reset now. */
                                        log_info("BLE FOTA job %s: the new image still waits for its reset", j->job.id);
                                        j->reset_again = true;
                                        return job_smp_reset(j);
                                }
                if (!img || img->hash_len != j->new_hash_len || memcmp(img->hash, j->new_hash, j->new_hash_len) != 0) {
                        log_warning("BLE FOTA job %s: %s came back with version %s, not the new image", j->job.id,
                                    j->job.ble_address, img ? img->version : "?");
                        return job_finish(j, FOTA_STATUS_FAILED, E_APPLY);
                }
                log_info("BLE FOTA job %s: %s runs the new image, version %s", j->job.id, j->job.ble_address,
                         img->version);
                if (img->confirmed)
                        return job_finish(j, FOTA_STATUS_SUCCEEDED, "");
                return job_smp_state_set(j, true);
        case SMP_STEP_CONFIRM:
                if (status != 0 || !r->has_images)
                        return job_smp_fail(j, "the device refused to confirm the new image");
                img = find_active(r);
                if (!img || !img->confirmed)
                        return job_smp_fail(j, "the new image is not confirmed");
                return job_finish(j, FOTA_STATUS_SUCCEEDED, "");
        case SMP_STEP_NONE:
        case SMP_STEP_NOTIFY:
                return;
        }
}

static void on_smp_notify_enabled(BleDevice *d, const BleOpResult *res, void *userdata) {
        Job *j = userdata;
        (void) d;

        j->pending_ops--;
        if (j->finished)
                return job_maybe_free(j);
        if (j->step != SMP_STEP_NOTIFY)
                return;
        if (res->error < 0) {
                if (!job_device(j))
                        return; /* resumed at the next connection */
                log_warning_errno(res->error, "BLE FOTA job %s: notifications of the SMP characteristic: %m", j->job.id);
                return job_smp_fail(j, "the SMP characteristic cannot notify");
        }
        if (j->stage == STAGE_TESTING)
                return job_smp_list(j, SMP_STEP_LIST_VERIFY);
        job_smp_list(j, SMP_STEP_LIST_BEFORE);
}

/* Starts (or restarts after a reconnection) the transfer or the verification. */
static void job_start_smp(Job *j) {
        BleDevice *d = job_device(j);
        _cleanup_free_ char *path = NULL;
        char suffix[16];
        struct stat st;
        int r;

        if (j->nrf5)
                return job_start_dfu(j);
        j->timer = sd_event_source_disable_unref(j->timer);
        if (!d) {
                j->step = SMP_STEP_NONE;
                return; /* at the next connection */
        }
        if (!ble_gatt_find_chrc(ble_device_gatt(d), j->m->smp_svc, j->m->smp_chr))
                return job_smp_fail(j, "the device has no SMP characteristic any more");
        if (j->stage == STAGE_TRANSFER && j->fd < 0) {
                snprintf(suffix, sizeof suffix, ".%zu", j->job.n_files - 1);
                if (job_path(j, suffix, &path) < 0)
                        return job_smp_fail(j, "out of memory");
                j->fd = open(path, O_RDONLY | O_CLOEXEC);
                if (j->fd < 0 || fstat(j->fd, &st) < 0)
                        return job_smp_fail(j, "the downloaded image is gone");
                j->image_size = (uint64_t) st.st_size;
                r = modem_download_hash_file(j->fd, j->image_size, j->image_sha);
                if (r < 0)
                        return job_smp_fail(j, "the downloaded image cannot be read");
        }
        j->step = SMP_STEP_NOTIFY;
        r = ble_device_set_notify(d, j->m->smp_svc, j->m->smp_chr, true, on_smp_notify_enabled, j);
        if (r == 0) {
                j->pending_ops++;
                return;
        }
        if (r < 0)
                return job_smp_fail(j, "notifications of the SMP characteristic cannot be enabled");
}

/* ---- the device's return after the reset that applies the update ---- */

static int on_reboot_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Job *j = userdata;
        (void) s, (void) usec;

        j->reboot_timer = sd_event_source_disable_unref(j->reboot_timer);
        log_fields(LOG_WARNING, LOG_FIELDS({ "BT_ADDR", j->job.ble_address }, { "FOTA_JOB_ID", j->job.id }),
                   "BLE FOTA job %s: %s did not come back within %" PRIu64 " s after its reset%s", j->job.id,
                   j->job.ble_address, j->m->reboot_timeout_usec / UINT64_C(1000000),
                   j->nrf5 && j->stage == STAGE_BOOTLOADER ? " into the DFU bootloader" : "");
        job_finish(j, FOTA_STATUS_FAILED, E_APPLY);
        return 0;
}

/* Arms [Bluetooth] FotaRebootTimeoutSec= unless it runs already. */
static void job_reboot_wait(Job *j) {
        if (j->reboot_timer)
                return;
        if (sd_event_add_time_relative(j->m->event, &j->reboot_timer, CLOCK_MONOTONIC, j->m->reboot_timeout_usec, 0,
                                       on_reboot_timeout, j) < 0)
                log_warning("BLE FOTA job %s: cannot time the device's return", j->job.id);
}

static void job_reboot_done(Job *j) {
        j->reboot_timer = sd_event_source_disable_unref(j->reboot_timer);
}

void blefota_manager_set_reboot_timeout(BleFotaManager *m, uint64_t usec) {
        if (m && usec > 0)
                m->reboot_timeout_usec = usec;
}

/* ---- nRF5 Secure DFU ---- */

static void job_release_boot(Job *j) {
        BleDevice *boot = j->boot;

        if (!boot)
                return;
        /* Its cancelled operations call back later, from the loop: they only count down. */
        j->boot = NULL;
        ble_manager_release_own(j->m->ble, boot);
        j->cp_wait = j->receipt_wait = false;
}

static void job_dfu_fail(Job *j, const char *what) {
        job_smp_fail(j, what);
}

/* The init packet is the file named *.dat (nRF Cloud lists it first; Nordic's LTE gateway
 * moves it first), the firmware the other one. */
static size_t job_dfu_init_index(Job *j) {
        for (size_t i = 0; i < j->job.n_files; i++) {
                size_t n = strlen(j->job.files[i]);
                if (n >= 4 && strcasecmp(j->job.files[i] + n - 4, ".dat") == 0)
                        return i;
        }
        return 0;
}

static int job_dfu_open(Job *j) {
        size_t init = job_dfu_init_index(j);
        struct stat st;

        if (j->job.n_files != 2)
                return -EINVAL;
        for (size_t i = 0; i < 2; i++) {
                _cleanup_free_ char *path = NULL;
                char suffix[16];
                int *fd = i == init ? &j->init_fd : &j->fd;

                if (*fd >= 0)
                        continue;
                snprintf(suffix, sizeof suffix, ".%zu", i);
                if (job_path(j, suffix, &path) < 0)
                        return -ENOMEM;
                *fd = open(path, O_RDONLY | O_CLOEXEC);
                if (*fd < 0 || fstat(*fd, &st) < 0)
                        return -errno;
                if (st.st_size <= 0 || st.st_size > UINT32_MAX)
                        return -EFBIG;
                if (i == init)
                        j->init_len = (uint32_t) st.st_size;
                else
                        j->image_size = (uint64_t) st.st_size;
        }
        return 0;
}

static int dfu_read(void *userdata, NrfDfuObject which, uint32_t off, uint8_t *buf, size_t len) {
        Job *j = userdata;
        ssize_t k = pread(which == NRF_DFU_OBJ_COMMAND ? j->init_fd : j->fd, buf, len, (off_t) off);

        if (k < 0)
                return -errno;
        return (size_t) k == len ? 0 : -EIO;
}

static int on_dfu_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Job *j = userdata;
        (void) s, (void) usec;

        j->timer = sd_event_source_disable_unref(j->timer);
        job_dfu_fail(j, j->dstep == DFU_STEP_ENTER ? "the device did not answer Enter Bootloader"
                                                   : "the DFU bootloader did not answer");
        return 0;
}

static void job_dfu_arm(Job *j) {
        j->timer = sd_event_source_disable_unref(j->timer);
        if (sd_event_add_time_relative(j->m->event, &j->timer, CLOCK_MONOTONIC, BLEFOTA_SMP_TIMEOUT_USEC, 0,
                                       on_dfu_timeout, j) < 0)
                log_warning("BLE FOTA job %s: cannot time the device's answers", j->job.id);
}

static void job_dfu_run(Job *j);

static void on_dfu_op_done(BleDevice *d, const BleOpResult *res, void *userdata) {
        Job *j = userdata;

        j->pending_ops--;
        if (j->finished)
                return job_maybe_free(j);
        if (res->error == -ECANCELED || res->error == -ENOTCONN)
                return; /* a lost link: its state callback resumes */
        if (res->error < 0) {
                log_warning("BLE FOTA job %s: a write to %s failed: %s%s%s", j->job.id, ble_device_address(d),
                            strerror(-res->error), res->error_message ? ": " : "", strempty(res->error_message));
                return job_dfu_fail(j, "a DFU write failed");
        }
}

static void on_dfu_packet_written(BleDevice *d, const BleOpResult *res, void *userdata) {
        Job *j = userdata;
        bool more;

        if (j->packets_queued > 0)
                j->packets_queued--;
        more = !j->finished && res->error >= 0 && j->dstep == DFU_STEP_RUN && !j->cp_wait && !j->receipt_wait &&
               d == j->boot;
        on_dfu_op_done(d, res, userdata); /* frees j only if it is finished, and then there is no more */
        if (more)
                job_dfu_run(j);
}

static void job_dfu_log_progress(Job *j) {
        uint32_t done = nrf_dfu_plan_progress(&j->plan);

        job_changed(j);
        if (j->image_size == 0 || done * UINT64_C(100) / j->image_size < j->logged_pct + 10)
                return;
        j->logged_pct = (unsigned) (done * UINT64_C(100) / j->image_size) / 10 * 10;
        log_fields(LOG_INFO, LOG_FIELDS({ "BT_ADDR", j->job.ble_address }, { "FOTA_JOB_ID", j->job.id }),
                   "BLE FOTA job %s: %u%% transferred to %s (%" PRIu32 " of %" PRIu64 " bytes)", j->job.id,
                   j->logged_pct, j->job.ble_address, done, j->image_size);
}

/* The Device Information firmware revision (2A26) read when the device connected, "" if none. */
static void device_revision(BleDevice *d, char *ret, size_t size) {
        const BleGattChrc *c = ble_gatt_find_chrc(ble_device_gatt(d), "180A", "2A26");

        ret[0] = 0;
        if (c && c->value)
                snprintf(ret, size, "%.*s", (int) MIN(c->value_size, size - 1), (const char *) c->value);
}

static void job_dfu_app_back(Job *j, BleDevice *d) {
        char revision[sizeof j->old_revision];

        job_reboot_done(j);
        device_revision(d, revision, sizeof revision);
        log_info("BLE FOTA job %s: %s is back at its own address after the DFU, firmware revision %s (was %s)",
                 j->job.id, j->job.ble_address, revision[0] ? revision : "not readable",
                 j->old_revision[0] ? j->old_revision : "not readable");
        job_finish(j, FOTA_STATUS_SUCCEEDED, "");
}

static void job_dfu_done(Job *j) {
        BleDevice *app;

        log_info("BLE FOTA job %s: the bootloader of %s took the image (%" PRIu64 " bytes), waiting for the "
                 "application", j->job.id, j->job.ble_address, j->image_size);
        job_release_boot(j);
        j->timer = sd_event_source_disable_unref(j->timer);
        j->dstep = DFU_STEP_WAIT_APP;
        j->stage = STAGE_TESTING;
        (void) job_save(j);
        job_reboot_wait(j);
        app = ble_manager_get_device(j->m->ble, j->job.ble_address);
        if (app && ble_device_state(app) == BLE_DEVICE_READY)
                return job_dfu_app_back(j, app);
        /* Held while it was in the bootloader: connect now, not after a backoff. */
        ble_device_hold(app, false);
}

/* Runs the planner's actions until one has to wait for the bootloader. */
static void job_dfu_run(Job *j) {
        NrfDfuAction a;
        uint8_t buf[512];
        int r;

        if (!j->boot || ble_device_state(j->boot) != BLE_DEVICE_READY)
                return;
        for (;;) {
                nrf_dfu_plan_next(&j->plan, &a);
                switch (a.kind) {
                case NRF_DFU_ACTION_CONTROL:
                        r = ble_device_write(j->boot, j->m->dfu_svc, j->m->dfu_cp, a.cp, a.cp_len, BLE_WRITE_REQUEST,
                                             on_dfu_op_done, j);
                        if (r < 0)
                                return job_dfu_fail(j, "the DFU control point cannot be written");
                        j->pending_ops++;
                        j->cp_wait = true;
                        return job_dfu_arm(j);
                case NRF_DFU_ACTION_PACKETS:
                        while (a.len > 0) {
                                size_t n = MIN(MIN(a.packet_size, (size_t) a.len), sizeof buf);
                                if (j->packets_queued >= DFU_PACKETS_QUEUED)
                                        return; /* more as the writes complete */
                                r = dfu_read(j, a.object, a.off, buf, n);
                                if (r < 0)
                                        return job_dfu_fail(j, "the downloaded files cannot be read");
                                r = ble_device_write(j->boot, j->m->dfu_svc, j->m->dfu_pkt, buf, n, BLE_WRITE_COMMAND,
                                                     on_dfu_packet_written, j);
                                if (r < 0)
                                        return job_dfu_fail(j, "the DFU packet characteristic cannot be written");
                                j->pending_ops++;
                                j->packets_queued++;
                                r = nrf_dfu_plan_packet_sent(&j->plan, buf, n);
                                if (r < 0)
                                        return job_dfu_fail(j, "the DFU transfer went wrong");
                                a.off += (uint32_t) n;
                                a.len -= (uint32_t) n;
                                if (r > 0) {
                                        /* Flow control: the bootloader's receipt before the next packet. */
                                        j->receipt_wait = true;
                                        return job_dfu_arm(j);
                                }
                        }
                        continue;
                case NRF_DFU_ACTION_DONE:
                        return job_dfu_done(j);
                case NRF_DFU_ACTION_FAILED:
                        log_warning("BLE FOTA job %s: the DFU of %s failed in %s: %s, device result %s%s%s", j->job.id,
                                    j->job.ble_address, nrf_dfu_plan_state_to_string(j->plan.state),
                                    strerror(-j->plan.error), nrf_dfu_result_to_string(j->plan.result),
                                    j->plan.result == NRF_DFU_RES_EXT_ERROR ? " " : "",
                                    j->plan.result == NRF_DFU_RES_EXT_ERROR ? nrf_dfu_ext_error_to_string(j->plan.ext_error)
                                                                            : "");
                        return job_dfu_fail(j, "the DFU bootloader refused the update");
                }
        }
}

static void job_dfu_cp_notification(Job *j, const uint8_t *value, size_t size) {
        NrfDfuResponse resp;
        int r;

        r = nrf_dfu_decode_response(value, size, &resp);
        if (r < 0)
                return (void) log_debug("BLE FOTA job %s: undecodable DFU control point notification: %s",
                                        j->job.id, strerror(-r));
        if (j->cp_wait) {
                NrfDfuPlanState was = j->plan.state;
                j->cp_wait = false;
                j->timer = sd_event_source_disable_unref(j->timer);
                (void) nrf_dfu_plan_response(&j->plan, &resp);
                if (was == NRF_DFU_PLAN_EXECUTE_DATA && resp.result == NRF_DFU_RES_OPERATION_NOT_PERMITTED &&
                    j->plan.state != NRF_DFU_PLAN_FAILED)
                        log_info("BLE FOTA job %s: the bootloader of %s had executed the first %" PRIu32
                                 " bytes already, going on from there", j->job.id, j->job.ble_address, j->plan.obj_start);
                if (was == NRF_DFU_PLAN_SELECT_DATA && j->plan.state != NRF_DFU_PLAN_FAILED && j->plan.sent > 0)
                        log_info("BLE FOTA job %s: the bootloader of %s has %" PRIu32 " bytes of the image "
                                 "already, going on from there", j->job.id, j->job.ble_address, j->plan.sent);
        } else if (j->receipt_wait) {
                j->receipt_wait = false;
                j->timer = sd_event_source_disable_unref(j->timer);
                (void) nrf_dfu_plan_receipt(&j->plan, &resp);
        } else
                return (void) log_debug("BLE FOTA job %s: DFU notification %02x %02x not awaited", j->job.id,
                                        resp.request, resp.result);
        job_dfu_log_progress(j);
        job_dfu_run(j);
}

static void on_boot_notification(BleDevice *d, const char *service_uuid, const char *chrc_uuid, const uint8_t *value,
                                 size_t size, void *userdata) {
        Job *j = userdata;

        if (d != j->boot || j->dstep != DFU_STEP_RUN || strcasecmp(service_uuid, j->m->dfu_svc) != 0 ||
            strcasecmp(chrc_uuid, j->m->dfu_cp) != 0)
                return;
        job_dfu_cp_notification(j, value, size);
}

static void on_boot_cp_notify_enabled(BleDevice *d, const BleOpResult *res, void *userdata) {
        Job *j = userdata;
        NrfDfuPlanConfig cfg;
        int r;

        j->pending_ops--;
        if (j->finished)
                return job_maybe_free(j);
        if (res->error == -ECANCELED || d != j->boot || j->dstep != DFU_STEP_CP_NOTIFY)
                return;
        if (res->error < 0) {
                if (ble_device_state(d) != BLE_DEVICE_READY)
                        return; /* the link dropped: resumed at the next connection */
                log_warning_errno(res->error, "BLE FOTA job %s: notifications of the DFU control point: %m", j->job.id);
                return job_dfu_fail(j, "the DFU control point cannot notify");
        }
        cfg = (NrfDfuPlanConfig) {
                .init_len = j->init_len,
                .fw_len = (uint32_t) j->image_size,
                .prn = DFU_PRN,
                .packet_size = chrc_write_max(d, j->m->dfu_svc, j->m->dfu_pkt, 244),
                .retries = DFU_RETRIES,
                .read = dfu_read,
                .userdata = j,
        };
        r = nrf_dfu_plan_init(&j->plan, &cfg);
        if (r < 0)
                return job_dfu_fail(j, "the DFU cannot be planned");
        log_info("BLE FOTA job %s: DFU bootloader of %s connected, sending the %" PRIu32 "-byte init packet and the "
                 "%" PRIu64 "-byte image in packets of %zu bytes",
                 j->job.id, j->job.ble_address, j->init_len, j->image_size, cfg.packet_size);
        j->dstep = DFU_STEP_RUN;
        j->cp_wait = j->receipt_wait = false;
        job_dfu_run(j);
}

static void on_boot_state(BleDevice *d, BleDeviceState new_state, void *userdata) {
        Job *j = userdata;
        int r;

        if (d != j->boot || j->finished)
                return;
        if (new_state != BLE_DEVICE_READY) {
                if (j->dstep == DFU_STEP_CP_NOTIFY || j->dstep == DFU_STEP_RUN) {
                        log_info("BLE FOTA job %s: the DFU bootloader of %s disconnected, resuming when it is back",
                                 j->job.id, j->job.ble_address);
                        j->dstep = DFU_STEP_BOOT_CONNECT;
                        j->cp_wait = j->receipt_wait = false;
                        j->timer = sd_event_source_disable_unref(j->timer);
                        job_reboot_wait(j);
                }
                return;
        }
        if (j->dstep != DFU_STEP_BOOT_CONNECT)
                return;
        job_reboot_done(j);
        if (!ble_gatt_find_chrc(ble_device_gatt(d), j->m->dfu_svc, j->m->dfu_cp) ||
            !ble_gatt_find_chrc(ble_device_gatt(d), j->m->dfu_svc, j->m->dfu_pkt))
                return job_dfu_fail(j, "the device at the bootloader's address has no DFU control point");
        j->dstep = DFU_STEP_CP_NOTIFY;
        r = ble_device_set_notify(d, j->m->dfu_svc, j->m->dfu_cp, true, on_boot_cp_notify_enabled, j);
        if (r < 0)
                return job_dfu_fail(j, "notifications of the DFU control point cannot be enabled");
        if (r == 0)
                j->pending_ops++;
}

/* The device is in its bootloader (or on its way): connect to it at the address + 1. */
static void job_dfu_boot_connect(Job *j) {
        static const BleOwnCallbacks cb = { .state = on_boot_state, .notification = on_boot_notification };
        char boot[NRF_DFU_ADDR_STR_MAX];
        int r;

        if (j->boot)
                return;
        r = nrf_dfu_shift_address(j->job.ble_address, +1, boot);
        if (r >= 0)
                r = ble_manager_connect_own(j->m->ble, boot, &cb, j, &j->boot);
        if (r < 0) {
                log_warning_errno(r, "BLE FOTA job %s: cannot connect to the DFU bootloader of %s: %m", j->job.id,
                                  j->job.ble_address);
                return job_dfu_fail(j, "the DFU bootloader cannot be connected");
        }
        log_info("BLE FOTA job %s: %s is in its DFU bootloader, looking for it at %s", j->job.id, j->job.ble_address,
                 boot);
        /* Attempts at the application's address would only hold up the radio meanwhile. */
        ble_device_hold(ble_manager_get_device(j->m->ble, j->job.ble_address), true);
        j->dstep = DFU_STEP_BOOT_CONNECT;
        job_reboot_wait(j);
}

static void job_dfu_entered(Job *j) {
        j->timer = sd_event_source_disable_unref(j->timer);
        j->stage = STAGE_BOOTLOADER;
        (void) job_save(j);
        job_dfu_boot_connect(j);
}

static void job_dfu_buttonless_notification(Job *j, const uint8_t *value, size_t size) {
        uint8_t op, result;

        if (nrf_dfu_decode_buttonless(value, size, &op, &result) < 0 || op != NRF_DFU_BUTTONLESS_OP_ENTER_BOOTLOADER)
                return (void) log_debug("BLE FOTA job %s: buttonless DFU notification not awaited", j->job.id);
        if (result != NRF_DFU_BUTTONLESS_SUCCESS) {
                log_warning("BLE FOTA job %s: %s refused to enter its DFU bootloader (buttonless result 0x%02x%s)",
                            j->job.id, j->job.ble_address, result,
                            result == NRF_DFU_BUTTONLESS_NOT_BONDED ? ", not bonded" : "");
                return job_dfu_fail(j, "the device refused to enter its DFU bootloader");
        }
        job_dfu_entered(j);
}

static void on_enter_written(BleDevice *d, const BleOpResult *res, void *userdata) {
        Job *j = userdata;
        (void) d;

        j->pending_ops--;
        if (j->finished)
                return job_maybe_free(j);
        if (j->dstep != DFU_STEP_ENTER || res->error == -ECANCELED)
                return;
        if (res->error >= 0) {
                j->enter_written = true;
                return;
        }
        if (!job_device(j))
                return; /* the link dropped: the state callback decides */
        log_warning("BLE FOTA job %s: Enter Bootloader refused by %s: %s%s%s", j->job.id, j->job.ble_address,
                    strerror(-res->error), res->error_message ? ": " : "", strempty(res->error_message));
        job_dfu_fail(j, "the device refused to enter its DFU bootloader");
}

static void on_buttonless_notify_enabled(BleDevice *d, const BleOpResult *res, void *userdata) {
        Job *j = userdata;
        uint8_t cmd[NRF_DFU_REQUEST_MAX];
        size_t len;
        int r;

        j->pending_ops--;
        if (j->finished)
                return job_maybe_free(j);
        if (j->dstep != DFU_STEP_BUTTONLESS_NOTIFY || res->error == -ECANCELED)
                return;
        if (res->error < 0) {
                if (!job_device(j))
                        return; /* resumed at the next connection */
                log_warning_errno(res->error, "BLE FOTA job %s: indications of the buttonless DFU characteristic: %m",
                                  j->job.id);
                return job_dfu_fail(j, "the buttonless DFU characteristic cannot indicate");
        }
        len = nrf_dfu_encode_enter_bootloader(cmd);
        j->dstep = DFU_STEP_ENTER;
        j->enter_written = false;
        r = ble_device_write(d, j->m->dfu_svc, j->m->dfu_btn, cmd, len, BLE_WRITE_REQUEST, on_enter_written, j);
        if (r < 0)
                return job_dfu_fail(j, "Enter Bootloader cannot be written");
        j->pending_ops++;
        job_dfu_arm(j);
}

/* Starts (or resumes after a reconnection or a restart) an nRF5 DFU, from its stage. */
static void job_start_dfu(Job *j) {
        BleDevice *d;
        int r;

        j->timer = sd_event_source_disable_unref(j->timer);
        r = job_dfu_open(j);
        if (r < 0) {
                log_warning_errno(r, "BLE FOTA job %s: the downloaded init packet and image: %m", j->job.id);
                return job_dfu_fail(j, "the downloaded files are not an init packet and an image");
        }
        switch (j->stage) {
        case STAGE_BOOTLOADER:
                return job_dfu_boot_connect(j);
        case STAGE_TESTING:
                j->dstep = DFU_STEP_WAIT_APP;
                job_reboot_wait(j);
                d = job_device(j);
                if (d)
                        return job_dfu_app_back(j, d);
                return ble_device_hold(ble_manager_get_device(j->m->ble, j->job.ble_address), false);
        case STAGE_WAITING:
        case STAGE_DOWNLOADING:
        case STAGE_TRANSFER:
        case _STAGE_MAX:
                break;
        }
        d = job_device(j);
        if (!d) {
                j->dstep = DFU_STEP_NONE;
                return; /* at the next connection */
        }
        if (!ble_gatt_find_chrc(ble_device_gatt(d), j->m->dfu_svc, j->m->dfu_btn))
                return job_dfu_fail(j, "the device has no buttonless DFU characteristic any more");
        device_revision(d, j->old_revision, sizeof j->old_revision);
        j->logged_pct = 0;
        j->dstep = DFU_STEP_BUTTONLESS_NOTIFY;
        r = ble_device_set_notify(d, j->m->dfu_svc, j->m->dfu_btn, true, on_buttonless_notify_enabled, j);
        if (r < 0)
                return job_dfu_fail(j, "indications of the buttonless DFU characteristic cannot be enabled");
        if (r == 0)
                j->pending_ops++;
}

/* ---- jobs ---- */

static bool device_has_smp(BleFotaManager *m, BleDevice *d) {
        return ble_gatt_find_chrc(ble_device_gatt(d), m->smp_svc, m->smp_chr) != NULL;
}

/* The nRF5 SDK's buttonless DFU without bonds (the bootloader at the address + 1). */
static bool device_has_nrf5_dfu(BleFotaManager *m, BleDevice *d) {
        return ble_gatt_find_chrc(ble_device_gatt(d), m->dfu_svc, m->dfu_btn) != NULL;
}

static void job_start(Job *j) {
        j->running = true;
        j->fd = safe_close(j->fd);
        switch (j->stage) {
        case STAGE_WAITING:
        case STAGE_DOWNLOADING:
                if (j->stage == STAGE_WAITING) {
                        j->stage = STAGE_DOWNLOADING;
                        (void) job_save(j);
                }
                log_fields(LOG_NOTICE,
                           LOG_FIELDS({ "MESSAGE_ID", MESSAGE_ID_BLE_FOTA_STARTED }, { "BT_ADDR", j->job.ble_address },
                                      { "FOTA_JOB_ID", j->job.id }),
                           "BLE FOTA job %s for %s: downloading %zu file(s), %" PRIu64 " bytes", j->job.id,
                           j->job.ble_address, j->job.n_files, j->job.file_size);
                j->last_pct = 0;
                job_publish(j, FOTA_STATUS_DOWNLOADING, 0, NULL);
                j->file = 0;
                j->done_bytes = 0;
                j->retries = 0;
                return job_download_next(j);
        case STAGE_TRANSFER:
        case STAGE_TESTING:
        case STAGE_BOOTLOADER:
                return job_start_smp(j);
        case _STAGE_MAX:
                break;
        }
}

static void manager_start_waiting(BleFotaManager *m) {
        for (Job *j = m->jobs; j; j = j->next) {
                if (manager_running(m) >= m->max_parallel)
                        return;
                /* An nRF5 device past the buttonless entry is not at its address: start without it. */
                if (!j->finished && !j->running &&
                    (job_device(j) || (j->nrf5 && (j->stage == STAGE_BOOTLOADER || j->stage == STAGE_TESTING))))
                        job_start(j);
        }
}

static Job *job_new(BleFotaManager *m, const FotaJob *fj, const char *raw, size_t raw_len) {
        Job *j = calloc(1, sizeof *j);

        if (!j)
                return NULL;
        j->raw = strndup(raw, raw_len);
        if (!j->raw) {
                free(j);
                return NULL;
        }
        j->m = m;
        j->job = *fj;
        j->fd = -EBADF;
        j->init_fd = -EBADF;
        j->last_pct = -1;
        j->next = m->jobs;
        m->jobs = j;
        return j;
}

static void answer(BleFotaManager *m, const char *address, const char *id, FotaStatus status, const char *message) {
        _cleanup_free_ char *payload = NULL;
        int r;

        r = fota_ble_job_build_update(address, id, status, 0, message, &payload);
        if (r >= 0)
                r = m->ops.publish_update ? m->ops.publish_update(m->userdata, payload, NULL, NULL) : -ENOTCONN;
        if (r < 0)
                log_warning_errno(r, "Failed to answer BLE FOTA job %s of %s: %m", id, address);
}

void blefota_manager_job_received(BleFotaManager *m, const uint8_t *payload, size_t len) {
        FotaJobError e = {};
        BleDevice *d;
        FotaJob fj;
        Job *j;
        int r;

        r = fota_job_parse(payload, len, true, &fj, &e);
        if (r == -ENOENT)
                return (void) log_debug("No BLE FOTA job pending");
        if (r < 0) {
                if (!e.ble_address[0] || !e.id[0])
                        return (void) log_warning("Ignoring a BLE FOTA job that cannot be answered (%s)",
                                                  e.error.description);
                log_warning("BLE FOTA job %s for %s is invalid (%s), rejecting it", e.id, e.ble_address,
                            e.error.description);
                return answer(m, e.ble_address, e.id, FOTA_STATUS_REJECTED, E_INVALID);
        }
        j = manager_find(m, fj.ble_address);
        if (j) {
                if (!streq(j->job.id, fj.id))
                        log_info("BLE FOTA job %s for %s waits: job %s runs", fj.id, fj.ble_address, j->job.id);
                else if (!j->running)
                        manager_start_waiting(m);
                return;
        }
        if (job_finished_before(m, &fj))
                return (void) log_debug("BLE FOTA job %s of %s is finished already, ignoring it", fj.id,
                                        fj.ble_address);
        d = ble_manager_get_device(m->ble, fj.ble_address);
        if (!d || ble_device_state(d) != BLE_DEVICE_READY)
                return (void) log_fields(LOG_INFO, LOG_FIELDS({ "BT_ADDR", fj.ble_address }),
                                         "BLE FOTA job %s: device %s not connected; ignoring the job until it is",
                                         fj.id, fj.ble_address);
        if (!device_has_smp(m, d) && !device_has_nrf5_dfu(m, d)) {
                log_fields(LOG_NOTICE, LOG_FIELDS({ "BT_ADDR", fj.ble_address }),
                           "BLE FOTA job %s: device %s offers no DFU service the gateway can use", fj.id,
                           fj.ble_address);
                return answer(m, fj.ble_address, fj.id, FOTA_STATUS_REJECTED, E_UNSUPPORTED);
        }
        if (!device_has_smp(m, d) && fj.n_files != 2) {
                /* nRF5 Secure DFU needs the init packet and the image as two files (.dat .bin); a
                 * DFU package (.zip) or a lone image cannot be sent. */
                log_fields(LOG_NOTICE, LOG_FIELDS({ "BT_ADDR", fj.ble_address }),
                           "BLE FOTA job %s: %s takes nRF5 Secure DFU, which needs an init packet (.dat) and an "
                           "image (.bin); the job has %zu file(s)", fj.id, fj.ble_address, fj.n_files);
                return answer(m, fj.ble_address, fj.id, FOTA_STATUS_FAILED, E_MISMATCH);
        }
        j = job_new(m, &fj, (const char *) payload, MIN(len, (size_t) FOTA_JOB_INPUT_MAX));
        if (!j)
                return (void) log_error("Out of memory for BLE FOTA job %s", fj.id);
        j->nrf5 = !device_has_smp(m, d);
        (void) job_save(j);
        manager_start_waiting(m);
}

static void request_job(BleFotaManager *m, const char *address) {
        _cleanup_free_ char *payload = NULL;
        int r;

        r = fota_ble_job_build_request(address, &payload);
        if (r >= 0)
                r = m->ops.request_job ? m->ops.request_job(m->userdata, payload) : -ENOTCONN;
        if (r < 0)
                log_debug("Cannot ask for the BLE FOTA job of %s: %s", address, strerror(-r));
}

void blefota_manager_device_state(BleFotaManager *m, BleDevice *d, BleDeviceState new_state) {
        const char *address = ble_device_address(d);
        Job *j;

        if (!m)
                return;
        manager_set_ready(m, address, new_state == BLE_DEVICE_READY);
        j = manager_find(m, address);
        if (j && j->nrf5 && j->running) {
                if (new_state != BLE_DEVICE_READY) {
                        if (j->dstep == DFU_STEP_ENTER && j->enter_written)
                                /* Reset into the bootloader before its answer got out. */
                                job_dfu_entered(j);
                        else if (j->dstep == DFU_STEP_BUTTONLESS_NOTIFY || j->dstep == DFU_STEP_ENTER)
                                j->dstep = DFU_STEP_NONE; /* again at the next connection */
                        return;
                }
                if (j->stage == STAGE_TESTING && j->dstep == DFU_STEP_WAIT_APP)
                        job_dfu_app_back(j, d);
                else if (j->stage == STAGE_TRANSFER && j->dstep == DFU_STEP_NONE)
                        job_start_dfu(j);
                return;
        }
        if (j && new_state == BLE_DEVICE_READY)
                job_reboot_done(j);
        if (new_state != BLE_DEVICE_READY) {
                if (j && j->running && j->stage >= STAGE_TRANSFER && j->step != SMP_STEP_NONE) {
                        if (j->step != SMP_STEP_RESET)
                                log_info("BLE FOTA job %s: %s disconnected during the transfer, resuming when it is back",
                                         j->job.id, address);
                        j->timer = sd_event_source_disable_unref(j->timer);
                        j->step = SMP_STEP_NONE;
                }
                return;
        }
        if (j && j->running && j->stage >= STAGE_TRANSFER && j->step == SMP_STEP_NONE)
                job_start_smp(j);
        else if (j && !j->running)
                manager_start_waiting(m);
        /* Before the subscription, blefota_manager_cloud_ready() asks: each device asks once. */
        if (!j && m->offered && m->cloud_up)
                request_job(m, address);
}

bool blefota_manager_notification(BleFotaManager *m, BleDevice *d, const char *service_uuid, const char *chrc_uuid,
                                  const uint8_t *value, size_t size) {
        const uint8_t *frame;
        SmpResponse resp;
        size_t len;
        Job *j;
        int r;

        if (m && strcasecmp(service_uuid, m->dfu_svc) == 0 && strcasecmp(chrc_uuid, m->dfu_btn) == 0) {
                j = manager_find(m, ble_device_address(d));
                if (!j || !j->running || !j->nrf5 || j->dstep != DFU_STEP_ENTER)
                        return false;
                job_dfu_buttonless_notification(j, value, size);
                return true;
        }
        if (!m || strcasecmp(service_uuid, m->smp_svc) != 0 || strcasecmp(chrc_uuid, m->smp_chr) != 0)
                return false;
        j = manager_find(m, ble_device_address(d));
        if (!j || !j->running || j->step == SMP_STEP_NONE || j->step == SMP_STEP_NOTIFY)
                return false;
        /* From here on the notification is the job's: an SMP response is no sensor value for the cloud. */
        r = smp_reassembler_feed(&j->ra, value, size, &frame, &len);
        if (r <= 0) {
                if (r < 0)
                        log_debug("BLE FOTA job %s: garbled SMP notification: %s", j->job.id, strerror(-r));
                return true;
        }
        r = smp_decode_response(frame, len, &resp);
        if (r < 0) {
                log_debug("BLE FOTA job %s: undecodable SMP response: %s", j->job.id, strerror(-r));
                return true;
        }
        if (j->step == SMP_STEP_UPLOAD ? job_smp_inflight(j, resp.hdr.seq) < 0 : resp.hdr.seq != j->seq) {
                log_debug("BLE FOTA job %s: SMP response %u for request %u ignored", j->job.id, resp.hdr.seq, j->seq);
                return true;
        }
        job_on_response(j, &resp);
        return true;
}

void blefota_manager_cloud_down(BleFotaManager *m) {
        if (!m)
                return;
        m->cloud_up = false;
        /* A publish of the ended connection is dropped without a call (mqtt.h): send it again. */
        for (Report *r = m->reports; r; r = r->next)
                r->in_flight = false;
}

void blefota_manager_cloud_ready(BleFotaManager *m) {
        if (!m || !m->offered)
                return;
        m->cloud_up = true;
        for (Report *r = m->reports; r; r = r->next)
                report_send(r);
        /* Devices connected before the session was up: ask for their jobs now. */
        for (size_t i = 0; m->ready && m->ready[i]; i++)
                if (!manager_find(m, m->ready[i]))
                        request_job(m, m->ready[i]);
        /* An nRF5 job a restart found in the bootloader stage does not wait for its device. */
        manager_start_waiting(m);
        /* An SMP device a restart found resetting has the same time to come back as before. */
        for (Job *j = m->jobs; j; j = j->next)
                if (!j->finished && !j->running && !j->nrf5 && j->stage == STAGE_TESTING)
                        job_reboot_wait(j);
}

static void manager_set_ready(BleFotaManager *m, const char *address, bool ready) {
        size_t n = strv_length(m->ready);

        for (size_t i = 0; i < n; i++)
                if (strcasecmp(m->ready[i], address) == 0) {
                        if (!ready) {
                                free(m->ready[i]);
                                memmove(m->ready + i, m->ready + i + 1, (n - i) * sizeof *m->ready);
                        }
                        return;
                }
        if (ready)
                (void) strv_extendf(&m->ready, "%s", address);
}

void blefota_manager_modem_lost(BleFotaManager *m) {
        if (m && m->downloader)
                modem_downloader_abort_all(m->downloader, -ECONNRESET);
}

bool blefota_manager_offered(BleFotaManager *m) {
        return m && m->offered;
}

void blefota_manager_modem_ready(BleFotaManager *m) {
        if (!m)
                return;
        /* BLE FOTA is offered from now on; the devices connected so far ask for their jobs once
         * jobs/ble/rcv is subscribed (blefota_manager_cloud_ready()). */
        m->offered = true;
        for (Job *j = m->jobs; j; j = j->next)
                if (!j->finished && j->running && j->stage == STAGE_DOWNLOADING && !modem_download_running(j->download) &&
                    !j->timer)
                        job_download_next(j);
}

/* ---- setup ---- */

static void manager_load(BleFotaManager *m) {
        struct dirent *de;
        DIR *dir;

        dir = opendir(m->dir);
        if (!dir)
                return;
        while ((de = readdir(dir))) {
                char address[BLE_ADDR_STR_MAX], stage[16], hex[2 * SMP_HASH_MAX + 2];
                _cleanup_free_ char *path = NULL, *text = NULL;
                FotaJob fj;
                size_t size;
                char *nl;
                Job *j;
                int s = -1;

                if (strlen(de->d_name) == 17 + strlen(".report") && streq(de->d_name + 17, ".report")) {
                        char id[FOTA_JOB_ID_MAX + 2], message[FOTA_STATUS_MESSAGE_MAX + 1] = "";
                        int status;
                        memcpy(address, de->d_name, 17);
                        address[17] = 0;
                        if (ble_address_normalize(address, address) < 0 ||
                            asprintf(&path, "%s/%s", m->dir, de->d_name) < 0 ||
                            read_full_file(path, 512, &text, &size) < 0)
                                continue;
                        nl = memchr(text, '\n', size);
                        if (nl && sscanf(text, "%d %37s", &status, id) == 2 && strlen(id) <= FOTA_JOB_ID_MAX &&
                            status >= 0 && status < _FOTA_STATUS_MAX) {
                                snprintf(message, sizeof message, "%s", nl + 1);
                                log_info("BLE FOTA job %s of %s ended; its final report is sent again", id, address);
                                report_new(m, address, id, (FotaStatus) status, message, false);
                        } else
                                (void) unlink(path);
                        continue;
                }
                if (ble_address_normalize(de->d_name, address) < 0 || strlen(de->d_name) != 17)
                        continue;
                if (report_path(m, de->d_name, &path) >= 0 && access(path, F_OK) >= 0) {
                        /* Stopped between its final report and forgetting it: it is over. */
                        free(path);
                        path = NULL;
                        if (asprintf(&path, "%s/%s", m->dir, de->d_name) >= 0)
                                (void) unlink(path);
                        continue;
                }
                free(path);
                path = NULL;
                if (asprintf(&path, "%s/%s", m->dir, de->d_name) < 0 ||
                    read_full_file(path, JOB_FILE_MAX, &text, &size) < 0)
                        continue;
                nl = memchr(text, '\n', size);
                if (!nl || sscanf(text, "%15s %129s", stage, hex) != 2)
                        goto bad;
                for (int i = 0; i < _STAGE_MAX; i++)
                        if (streq(stage, stage_table[i]))
                                s = i;
                if (s < 0 || fota_job_parse(nl + 1, size - (size_t) (nl + 1 - text), true, &fj, NULL) < 0)
                        goto bad;
                j = job_new(m, &fj, nl + 1, size - (size_t) (nl + 1 - text));
                if (!j)
                        break;
                j->stage = (JobStage) s;
                if (streq(hex, "nrf5"))
                        j->nrf5 = true;
                else if (!streq(hex, "-"))
                        for (size_t i = 0; i + 1 < strlen(hex) && i / 2 < SMP_HASH_MAX; i += 2) {
                                int hi = unhexchar(hex[i]), lo = unhexchar(hex[i + 1]);
                                if (hi < 0 || lo < 0)
                                        break;
                                j->new_hash[j->new_hash_len++] = (uint8_t) (hi << 4 | lo);
                        }
                log_info("BLE FOTA job %s of %s resumes in stage %s", j->job.id, j->job.ble_address, stage);
                continue;
        bad:
                log_warning("Ignoring the unreadable BLE FOTA job file %s", path);
                (void) unlink(path);
        }
        closedir(dir);
}

int blefota_manager_new(sd_event *event, const char *dir, BleManager *ble, ModemDownloader *downloader,
                        unsigned max_parallel, const BleFotaOps *ops, void *userdata, BleFotaManager **ret) {
        BleFotaManager *m;

        if (!event || !dir || !ble || !ops || !ret)
                return -EINVAL;
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return -errno;
        m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        m->dir = strdup(dir);
        if (!m->dir) {
                free(m);
                return -ENOMEM;
        }
        m->event = sd_event_ref(event);
        m->ble = ble;
        m->downloader = downloader;
        m->max_parallel = max_parallel ? max_parallel : 1;
        m->ops = *ops;
        m->userdata = userdata;
        (void) ble_uuid_normalize(SMP_SERVICE_UUID, m->smp_svc);
        (void) ble_uuid_normalize(SMP_CHARACTERISTIC_UUID, m->smp_chr);
        (void) ble_uuid_normalize(NRF_DFU_SERVICE_UUID, m->dfu_svc);
        (void) ble_uuid_normalize(NRF_DFU_CONTROL_POINT_UUID, m->dfu_cp);
        (void) ble_uuid_normalize(NRF_DFU_PACKET_UUID, m->dfu_pkt);
        (void) ble_uuid_normalize(NRF_DFU_BUTTONLESS_UUID, m->dfu_btn);
        m->reboot_timeout_usec = BLEFOTA_REBOOT_TIMEOUT_USEC;
        manager_load(m);
        *ret = m;
        return 0;
}

BleFotaManager *blefota_manager_free(BleFotaManager *m) {
        if (!m)
                return NULL;
        while (m->jobs) {
                Job *j = m->jobs;
                m->jobs = j->next;
                job_free(j);
        }
        while (m->reports)
                report_free(m->reports);
        strv_free(m->ready);
        sd_event_unref(m->event);
        free(m->dir);
        free(m);
        return NULL;
}

/* ---- progress, for the D-Bus API (blefota-bus.c) ---- */

static void job_changed(Job *j) {
        if (j->m->changed)
                j->m->changed(j->m, j->job.ble_address, j->m->changed_userdata);
}

void blefota_manager_set_changed_callback(BleFotaManager *m, BleFotaChangedFn cb, void *userdata) {
        m->changed = cb;
        m->changed_userdata = userdata;
}

int blefota_manager_job_progress(BleFotaManager *m, const char *address, BleFotaProgress *ret) {
        static const char *const shown[_STAGE_MAX] = {
                [STAGE_WAITING] = "waiting",
                [STAGE_DOWNLOADING] = "downloading",
                [STAGE_TRANSFER] = "transferring",
                [STAGE_TESTING] = "testing",
                [STAGE_BOOTLOADER] = "transferring", /* nRF5: the transfer runs in the bootloader */
        };
        Job *j = m && address ? manager_find(m, address) : NULL;
        BleFotaProgress p = {};

        if (!j)
                return -ENOENT;
        p.job_id = j->job.id;
        p.stage = shown[j->stage];
        switch (j->stage) {
        case STAGE_WAITING:
                break;
        case STAGE_DOWNLOADING:
                p.done = MIN(j->downloaded, j->job.file_size);
                p.total = j->job.file_size;
                break;
        case STAGE_TRANSFER:
                /* What the device acknowledged, of the image (0 until the image is opened). */
                p.done = MIN(j->off, j->image_size);
                p.total = j->image_size;
                break;
        case STAGE_BOOTLOADER:
                /* What the bootloader has of the firmware (the init packet goes first, uncounted). */
                p.done = MIN((uint64_t) nrf_dfu_plan_progress(&j->plan), j->image_size);
                p.total = j->image_size;
                break;
        case STAGE_TESTING:
                p.done = p.total = j->image_size;
                break;
        case _STAGE_MAX:
                return -EINVAL;
        }
        p.percent = j->stage == STAGE_TESTING ? 100 : p.total > 0 ? (unsigned) (p.done * 100 / p.total) : 0;
        *ret = p;
        return 0;
}

/* ---- the device's other traffic during a job ---- */

bool blefota_manager_device_busy(BleFotaManager *m, const char *address) {
        Job *j = m && address ? manager_find(m, address) : NULL;
        return j && j->running && j->stage >= STAGE_TRANSFER;
}

void blefota_manager_device_removed(BleFotaManager *m, const char *address) {
        Job *j = m && address ? manager_find(m, address) : NULL;

        if (!j)
                return;
        log_fields(LOG_WARNING, LOG_FIELDS({ "BT_ADDR", j->job.ble_address }, { "FOTA_JOB_ID", j->job.id }),
                   "BLE FOTA job %s: %s was removed from desiredConnections, ending the job", j->job.id,
                   j->job.ble_address);
        job_finish(j, FOTA_STATUS_FAILED, E_APPLY);
}
