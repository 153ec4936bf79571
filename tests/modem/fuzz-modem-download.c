/* SPDX-License-Identifier: MIT */
/*
 * Feeds arbitrary modem output to the AT engine with the #XDOWNLOAD
 * downloader attached and two downloads started (one resumed from a
 * prefix), as the firmware's answers and URCs would come: ids, counts,
 * digests and payloads are the input's.  The first byte chooses how the
 * input is cut into reads.  The files live in one temporary folder that is
 * emptied after every input.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fake-loop.h"
#include "log.h"
#include "modem-download.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_progress(ModemDownload *d, uint64_t received, void *userdata) {
        (void) d, (void) userdata;
        if (received > (UINT64_C(1) << 32))
                abort();
}

static void on_done(ModemDownload *d, int error, const ModemDownloadResult *res, void *userdata) {
        (void) userdata;
        if (error >= 0 && !res)
                abort();
        if (error < 0 && res)
                abort();
        /* Start again at once, as the BLE FOTA manager does after a transient error. */
        if (error < 0 && (error == -ECONNRESET || error == -EBADMSG))
                (void) modem_download_start(d);
}

static const ModemDownloadCallbacks callbacks = { .progress = on_progress, .done = on_done };

static char dir[64];

static void remove_dir(void) {
        (void) rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static FakeLoop l;
        char path[2][96], part[96 + 8];
        ModemDownloader *dl = NULL;
        ModemDownload *d[2] = {};
        AtEngine *e = NULL;
        size_t chunk, i = 0;
        int fd;

        if (size < 1)
                return 0;
        log_set_max_level(LOG_ERR);
        if (!dir[0]) {
                snprintf(dir, sizeof dir, "/tmp/fuzz-modem-download-%d", (int) getpid());
                (void) mkdir(dir, 0700);
                atexit(remove_dir);
        }
        l = (FakeLoop){ .deadline = UINT64_MAX };
        chunk = (size_t) (data[0] % 17) + 1;
        data++;
        size--;

        if (at_engine_new(&fake_ops, &l, &e) < 0 || modem_downloader_new(e, 42, &dl) < 0)
                abort();
        for (size_t k = 0; k < 2; k++) {
                snprintf(path[k], sizeof path[k], "%.60s/f%zu", dir, k);
                if (modem_download_new(dl, "https://h/f", path[k], k ? 4096 : 0, &callbacks, NULL, &d[k]) < 0)
                        abort();
        }
        snprintf(part, sizeof part, "%.95s.part", path[1]);
        fd = open(part, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
                (void) !write(fd, "prefix", 6);
                close(fd);
        }
        (void) modem_download_start(d[0]);

        while (i < size) {
                size_t n = size - i < chunk ? size - i : chunk;
                at_engine_feed(e, data + i, n);
                i += n;
                /* The second download starts once the first start is answered. */
                if (!modem_download_running(d[1]))
                        (void) modem_download_start(d[1]);
                l.written_len = 0;
                if (i % 97 < chunk)
                        fake_advance(&l, e, 2 * AT_RESYNC_TIMEOUT_USEC);
        }
        if (i % 3 == 0)
                modem_downloader_abort_all(dl, -ECONNRESET);

        for (size_t k = 0; k < 2; k++) {
                modem_download_free(d[k]);
                snprintf(part, sizeof part, "%.95s.part", path[k]);
                (void) unlink(path[k]);
                (void) unlink(part);
        }
        modem_downloader_free(dl);
        at_engine_free(e);
        return 0;
}
