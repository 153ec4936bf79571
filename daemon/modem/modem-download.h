/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * HTTPS downloads done by the nRF91 firmware and streamed to the host
 * (firmware_nrf91/doc/at-commands.md, "#XDOWNLOAD"):
 *
 *   AT#XDOWNLOAD="<https url>",<sec_tag>[,<offset>]  ->  #XDOWNLOAD: <id>,0  OK
 *   #XDOWNLOAD: <id>,1,<len> + <len> bytes            a chunk (1..2048 bytes)
 *   #XDOWNLOAD: <id>,2,<total>,"<sha256>"             done: <total> bytes from <offset>
 *   #XDOWNLOAD: <id>,3,<err>                          failed (negative errno)
 *   AT#XDOWNLOAD=0,<id>                               cancel
 *
 * Each chunk is appended to "<path>.part" as it arrives; nothing is held in
 * memory beyond the chunk, and the verified file is renamed to <path>.  The firmware's digest covers the bytes of this request
 * (from <offset>), and the host computes the same over what it wrote and
 * compares.  A file that already holds a prefix (an earlier attempt cut by a
 * link drop or a firmware restart) is resumed from its size with the
 * <offset> parameter (an HTTP range request in the firmware).
 *
 * The downloader owns the "#XDOWNLOAD:" URC of one AT engine and routes the
 * lines by id; the firmware runs at most two downloads at once (-EBUSY).
 */

#include <stdbool.h>
#include <stdint.h>

#include "at-engine.h"
#include "macro.h"

#define MODEM_DOWNLOAD_TIMEOUT_USEC (30u * 1000u * 1000u) /* the start command; data comes as URCs */

typedef struct ModemDownloader ModemDownloader;
typedef struct ModemDownload ModemDownload;

typedef struct ModemDownloadResult {
        uint64_t size;       /* bytes in the file */
        uint8_t sha256[32];  /* of the whole file, computed on the host */
} ModemDownloadResult;

typedef struct ModemDownloadCallbacks {
        /* After every chunk; received counts the whole file (a resumed prefix too). */
        void (*progress)(ModemDownload *d, uint64_t received, void *userdata);
        /*
         * Exactly once per modem_download_start() unless freed first: 0 and the
         * result, or a negative errno: -EFBIG (more than max_size), -EBADMSG
         * (digest or byte count differ from the firmware's: the file is
         * truncated), -ECONNRESET (modem_downloader_abort_all()), or the
         * firmware's error (-EACCES TLS, -ENOENT HTTP 404, -EBADMSG(74) other
         * HTTP error, -EBUSY two downloads already running, ...).  The file
         * keeps what was verified so far; start again to resume.
         */
        void (*done)(ModemDownload *d, int error, const ModemDownloadResult *result, void *userdata);
} ModemDownloadCallbacks;

int modem_downloader_new(AtEngine *engine, unsigned sec_tag, ModemDownloader **ret);
/* Frees the downloads still attached too, without callbacks. */
ModemDownloader *modem_downloader_free(ModemDownloader *dl);
DEFINE_TRIVIAL_CLEANUP_FUNC(ModemDownloader *, modem_downloader_free);
/* The firmware restarted or the port went away: every download fails with error. */
void modem_downloader_abort_all(ModemDownloader *dl, int error);

/*
 * A download of url into path (files created 0600).  max_size 0: no
 * limit.  Nothing is sent before modem_download_start().
 */
int modem_download_new(ModemDownloader *dl, const char *url, const char *path, uint64_t max_size,
                       const ModemDownloadCallbacks *cb, void *userdata, ModemDownload **ret);
ModemDownload *modem_download_free(ModemDownload *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(ModemDownload *, modem_download_free);
/*
 * Starts, or resumes from the size of "<path>.part".  When <path> exists
 * already (completed before a restart) it is hashed and reported done
 * without a request.  -EBUSY while this download runs.
 */
int modem_download_start(ModemDownload *d);
/* Stops a running download (AT#XDOWNLOAD=0,<id>) without calling done. */
void modem_download_stop(ModemDownload *d);
bool modem_download_running(const ModemDownload *d);
/* SHA-256 of the first size bytes of the file at fd, read in small blocks. */
int modem_download_hash_file(int fd, uint64_t size, uint8_t ret[32]);
