/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "log.h"
#include "modem-download.h"
#include "util.h"

#define DOWNLOAD_ID_MAX 2147483647

typedef enum DownloadState {
        DOWNLOAD_IDLE,
        DOWNLOAD_STARTING, /* AT#XDOWNLOAD sent, no id yet */
        DOWNLOAD_RUNNING,  /* id known, chunks come as URCs */
} DownloadState;

struct ModemDownload {
        ModemDownloader *dl;
        ModemDownload *next;
        char *url, *path, *part_path;
        uint64_t max_size;
        ModemDownloadCallbacks cb;
        void *userdata;

        DownloadState state;
        int64_t command_id;
        int32_t id;            /* the firmware's download id, 0: none */
        int fd;                /* <path>.part while running */
        uint64_t offset;       /* where this request started */
        uint64_t received;     /* bytes of the whole file */
        EVP_MD_CTX *sha;       /* over the bytes of this request */
        unsigned abort_gen;    /* the modem_downloader_abort_all() that took it down last */
};

struct ModemDownloader {
        AtEngine *engine;
        unsigned sec_tag;
        ModemDownload *downloads;
        ModemDownload *starting; /* the one whose AT#XDOWNLOAD is in flight (its "<id>,0" line is next) */
        int32_t last_cancelled;  /* an unknown id already cancelled */
        unsigned abort_gen;
};

static void download_close(ModemDownload *d) {
        d->fd = safe_close(d->fd);
        if (d->sha) {
                EVP_MD_CTX_free(d->sha);
                d->sha = NULL;
        }
        if (d->dl && d->dl->starting == d)
                d->dl->starting = NULL;
        if (d->command_id > 0 && d->dl)
                at_engine_cancel(d->dl->engine, d->command_id);
        d->command_id = 0;
        d->id = 0;
        d->state = DOWNLOAD_IDLE;
}

int modem_download_hash_file(int fd, uint64_t size, uint8_t ret[32]) {
        uint8_t buf[4096];
        EVP_MD_CTX *ctx;
        uint64_t off = 0;
        int r = 0;

        ctx = EVP_MD_CTX_new();
        if (!ctx)
                return -ENOMEM;
        if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
                r = -EIO;
        while (r >= 0 && off < size) {
                ssize_t n = pread(fd, buf, (size_t) MIN((uint64_t) sizeof buf, size - off), (off_t) off);
                if (n < 0)
                        r = -errno;
                else if (n == 0)
                        r = -EIO; /* shorter than announced */
                else if (EVP_DigestUpdate(ctx, buf, (size_t) n) != 1)
                        r = -EIO;
                else
                        off += (uint64_t) n;
        }
        if (r >= 0 && EVP_DigestFinal_ex(ctx, ret, NULL) != 1)
                r = -EIO;
        EVP_MD_CTX_free(ctx);
        return r;
}

/* Takes the download out of its run and reports; the file keeps what it has. */
static void download_finish(ModemDownload *d, int error, const ModemDownloadResult *res) {
        download_close(d);
        if (d->cb.done)
                d->cb.done(d, error, res, d->userdata);
}

/* "<path>" complete: hash it and report. */
static void download_report_complete(ModemDownload *d) {
        _cleanup_close_ int fd = -EBADF;
        ModemDownloadResult res = {};
        struct stat st;
        int r;

        fd = open(d->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return download_finish(d, -errno, NULL);
        if (fstat(fd, &st) < 0)
                return download_finish(d, -errno, NULL);
        res.size = (uint64_t) st.st_size;
        if (d->max_size > 0 && res.size > d->max_size)
                return download_finish(d, -EFBIG, NULL);
        r = modem_download_hash_file(fd, res.size, res.sha256);
        if (r < 0)
                return download_finish(d, r, NULL);
        download_finish(d, 0, &res);
}

static void download_on_complete(ModemDownload *d, uint64_t total, const char *hex, size_t hex_len) {
        uint8_t mine[32], theirs[32];

        if (hex_len != 64)
                return download_finish(d, -EBADMSG, NULL);
        for (size_t i = 0; i < 32; i++) {
                int hi = unhexchar(hex[2 * i]), lo = unhexchar(hex[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return download_finish(d, -EBADMSG, NULL);
                theirs[i] = (uint8_t) (hi << 4 | lo);
        }
        if (EVP_DigestFinal_ex(d->sha, mine, NULL) != 1)
                return download_finish(d, -EIO, NULL);
        if (total != d->received - d->offset || CRYPTO_memcmp(mine, theirs, sizeof mine) != 0) {
                log_warning("Download %s: %" PRIu64 " bytes from offset %" PRIu64
                            " do not match the firmware's count %" PRIu64 " or digest; starting over",
                            d->url, d->received - d->offset, d->offset, total);
                /* What was written cannot be trusted, the prefix included. */
                (void) unlink(d->part_path);
                return download_finish(d, -EBADMSG, NULL);
        }
        if (fsync(d->fd) < 0 || rename(d->part_path, d->path) < 0)
                return download_finish(d, -errno, NULL);
        download_close(d);
        download_report_complete(d);
}

static void download_on_chunk(ModemDownload *d, const uint8_t *payload, size_t len) {
        size_t done = 0;

        if (d->max_size > 0 && d->received + len > d->max_size) {
                ModemDownloader *dl = d->dl;
                int64_t id = d->id;
                char cmd[40];

                snprintf(cmd, sizeof cmd, "AT#XDOWNLOAD=0,%" PRId64, id);
                (void) at_engine_send(dl->engine, cmd, MODEM_DOWNLOAD_TIMEOUT_USEC, NULL, NULL);
                return download_finish(d, -EFBIG, NULL);
        }
        while (done < len) {
                ssize_t n = write(d->fd, payload + done, len - done);
                if (n < 0) {
                        int k = -errno;
                        modem_download_stop(d);
                        return download_finish(d, k, NULL);
                }
                done += (size_t) n;
        }
        if (EVP_DigestUpdate(d->sha, payload, len) != 1) {
                modem_download_stop(d);
                return download_finish(d, -EIO, NULL);
        }
        d->received += len;
        if (d->cb.progress)
                d->cb.progress(d, d->received, d->userdata);
}

static ModemDownload *downloader_find(ModemDownloader *dl, int64_t id) {
        for (ModemDownload *d = dl->downloads; d; d = d->next)
                if (d->state == DOWNLOAD_RUNNING && d->id == id)
                        return d;
        return NULL;
}

static void on_xdownload(AtEngine *e, const char *line, const uint8_t *payload, size_t len, void *userdata) {
        ModemDownloader *dl = userdata;
        ModemDownload *d;
        uint64_t what;
        int64_t id, value;
        AtCursor c;
        (void) e;

        if (at_cursor_init(&c, line, strlen(line), "#XDOWNLOAD") < 0 ||
            at_cursor_int(&c, 1, DOWNLOAD_ID_MAX, &id) < 0 || at_cursor_uint(&c, 3, &what) < 0) {
                log_debug("Ignoring a garbled download line: %s", line);
                return;
        }
        if (what == 0) {
                /* The information line of AT#XDOWNLOAD, before its OK. */
                d = dl->starting;
                if (!d) {
                        log_debug("Download %" PRId64 " started by someone else", id);
                        return;
                }
                d->id = (int32_t) id;
                d->state = DOWNLOAD_RUNNING;
                dl->starting = NULL;
                return;
        }
        d = downloader_find(dl, id);
        if (!d) {
                /* A download left by an earlier run of the daemon: stop it once. */
                if (what == 1 && dl->last_cancelled != id) {
                        char cmd[40];
                        dl->last_cancelled = (int32_t) id;
                        snprintf(cmd, sizeof cmd, "AT#XDOWNLOAD=0,%" PRId64, id);
                        (void) at_engine_send(dl->engine, cmd, MODEM_DOWNLOAD_TIMEOUT_USEC, NULL, NULL);
                }
                return;
        }
        switch (what) {
        case 1:
                if (at_cursor_int(&c, 1, AT_BINARY_MAX, &value) < 0 || !payload || (size_t) value != len) {
                        /* A chunk whose bytes did not arrive whole: the file is no longer in step. */
                        modem_download_stop(d);
                        return download_finish(d, -EBADMSG, NULL);
                }
                return download_on_chunk(d, payload, len);
        case 2: {
                const char *hex;
                size_t hex_len;
                uint64_t total;
                if (at_cursor_uint(&c, UINT64_MAX, &total) < 0 || at_cursor_string(&c, &hex, &hex_len) < 0)
                        return download_finish(d, -EBADMSG, NULL);
                return download_on_complete(d, total, hex, hex_len);
        }
        case 3:
                if (at_cursor_int(&c, -4095, -1, &value) < 0)
                        value = -EIO;
                log_info("Download %s failed after %" PRIu64 " bytes: %s", d->url, d->received,
                         strerror((int) -value));
                return download_finish(d, (int) value, NULL);
        default:
                return;
        }
}

static void on_start_done(AtEngine *e, const AtResponse *r, void *userdata) {
        ModemDownload *d = userdata;
        int k = at_response_firmware_errno(r);
        (void) e;

        d->command_id = 0;
        if (d->dl->starting == d)
                d->dl->starting = NULL;
        if (k >= 0 && d->state != DOWNLOAD_RUNNING) {
                /* OK without "#XDOWNLOAD: <id>,0" (a URC handler did not see it): look in the lines. */
                for (size_t i = 0; i < r->n_lines; i++) {
                        AtCursor c;
                        int64_t id;
                        uint64_t what;
                        if (at_cursor_init(&c, r->lines[i], strlen(r->lines[i]), "#XDOWNLOAD") >= 0 &&
                            at_cursor_int(&c, 1, DOWNLOAD_ID_MAX, &id) >= 0 && at_cursor_uint(&c, 0, &what) >= 0) {
                                d->id = (int32_t) id;
                                d->state = DOWNLOAD_RUNNING;
                        }
                }
                if (d->state != DOWNLOAD_RUNNING)
                        k = -EBADMSG;
        }
        if (k < 0) {
                if (r->result < 0 && k == 0)
                        k = r->result;
                download_finish(d, k, NULL);
        }
}

int modem_downloader_new(AtEngine *engine, unsigned sec_tag, ModemDownloader **ret) {
        _cleanup_free_ ModemDownloader *dl = NULL;
        int r;

        if (!engine || !ret)
                return -EINVAL;
        dl = calloc(1, sizeof *dl);
        if (!dl)
                return -ENOMEM;
        dl->engine = engine;
        dl->sec_tag = sec_tag;
        r = at_engine_add_urc(engine, "#XDOWNLOAD:", on_xdownload, dl);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(dl);
        return 0;
}

ModemDownloader *modem_downloader_free(ModemDownloader *dl) {
        if (!dl)
                return NULL;
        while (dl->downloads) {
                ModemDownload *d = dl->downloads;
                modem_download_stop(d);
                dl->downloads = d->next;
                d->dl = NULL;
                d->next = NULL;
        }
        at_engine_remove_urc(dl->engine, "#XDOWNLOAD:", on_xdownload, dl);
        free(dl);
        return NULL;
}

void modem_downloader_abort_all(ModemDownloader *dl, int error) {
        unsigned gen = ++dl->abort_gen;
        bool again = true;

        /* A callback may free or start downloads: rescan after each report, and take each
         * download down once (one started again from its callback stays up). */
        while (again) {
                again = false;
                for (ModemDownload *d = dl->downloads; d; d = d->next)
                        if (d->state != DOWNLOAD_IDLE && d->abort_gen != gen) {
                                d->abort_gen = gen;
                                download_finish(d, error, NULL);
                                again = true;
                                break;
                        }
        }
}

int modem_download_new(ModemDownloader *dl, const char *url, const char *path, uint64_t max_size,
                       const ModemDownloadCallbacks *cb, void *userdata, ModemDownload **ret) {
        ModemDownload *d;

        if (!dl || !url || !path || !cb || !ret)
                return -EINVAL;
        /* The URL travels inside quotes, and this link has no escapes. */
        if (strncmp(url, "https://", 8) != 0 || strpbrk(url, "\"\r\n") || strlen(url) + 32 > AT_COMMAND_MAX)
                return -EINVAL;
        d = calloc(1, sizeof *d);
        if (!d)
                return -ENOMEM;
        d->fd = -EBADF;
        d->url = strdup(url);
        d->path = strdup(path);
        if (!d->url || !d->path || asprintf(&d->part_path, "%s.part", path) < 0) {
                free(d->url);
                free(d->path);
                free(d);
                return -ENOMEM;
        }
        d->dl = dl;
        d->max_size = max_size;
        d->cb = *cb;
        d->userdata = userdata;
        d->next = dl->downloads;
        dl->downloads = d;
        *ret = d;
        return 0;
}

ModemDownload *modem_download_free(ModemDownload *d) {
        if (!d)
                return NULL;
        modem_download_stop(d);
        if (d->dl)
                for (ModemDownload **p = &d->dl->downloads; *p; p = &(*p)->next)
                        if (*p == d) {
                                *p = d->next;
                                break;
                        }
        free(d->url);
        free(d->path);
        free(d->part_path);
        free(d);
        return NULL;
}

bool modem_download_running(const ModemDownload *d) {
        return d && d->state != DOWNLOAD_IDLE;
}

void modem_download_stop(ModemDownload *d) {
        if (!d)
                return;
        if (d->state == DOWNLOAD_RUNNING && d->id > 0 && d->dl) {
                char cmd[40];
                snprintf(cmd, sizeof cmd, "AT#XDOWNLOAD=0,%" PRId32, d->id);
                (void) at_engine_send(d->dl->engine, cmd, MODEM_DOWNLOAD_TIMEOUT_USEC, NULL, NULL);
        }
        download_close(d);
}

int modem_download_start(ModemDownload *d) {
        _cleanup_free_ char *cmd = NULL;
        struct stat st;
        int64_t id;

        if (!d || !d->dl)
                return -EINVAL;
        if (d->state != DOWNLOAD_IDLE)
                return -EBUSY;
        if (d->dl->starting)
                return -EAGAIN; /* another start is in flight; its id line must not be mistaken */

        if (access(d->path, F_OK) >= 0) {
                download_report_complete(d);
                return 0;
        }

        d->fd = open(d->part_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (d->fd < 0)
                return -errno;
        if (fstat(d->fd, &st) < 0) {
                int k = -errno;
                download_close(d);
                return k;
        }
        d->offset = (uint64_t) st.st_size;
        if (d->max_size > 0 && d->offset > d->max_size) {
                if (ftruncate(d->fd, 0) < 0) {
                        int k = -errno;
                        download_close(d);
                        return k;
                }
                d->offset = 0;
        }
        if (lseek(d->fd, (off_t) d->offset, SEEK_SET) < 0) {
                int k = -errno;
                download_close(d);
                return k;
        }
        d->received = d->offset;
        d->sha = EVP_MD_CTX_new();
        if (!d->sha || EVP_DigestInit_ex(d->sha, EVP_sha256(), NULL) != 1) {
                download_close(d);
                return -ENOMEM;
        }
        if (d->offset > 0) {
                if (asprintf(&cmd, "AT#XDOWNLOAD=\"%s\",%u,%" PRIu64, d->url, d->dl->sec_tag, d->offset) < 0)
                        cmd = NULL;
        } else if (asprintf(&cmd, "AT#XDOWNLOAD=\"%s\",%u", d->url, d->dl->sec_tag) < 0)
                cmd = NULL;
        if (!cmd) {
                download_close(d);
                return -ENOMEM;
        }
        id = at_engine_send(d->dl->engine, cmd, MODEM_DOWNLOAD_TIMEOUT_USEC, on_start_done, d);
        if (id < 0) {
                download_close(d);
                return (int) id;
        }
        log_debug("Download %s into %s from offset %" PRIu64, d->url, d->part_path, d->offset);
        d->command_id = id;
        d->state = DOWNLOAD_STARTING;
        d->dl->starting = d;
        return 0;
}
