/* SPDX-License-Identifier: MIT */
/*
 * The lenient gateway job parser and what the gateway builds from a job: the
 * URL handed to the firmware inside a quoted AT parameter, the answer to a
 * job that has an id, the target version of a modem delta.  Whatever the
 * cloud sends, the URL must be HTTPS, printable, unquoted-safe, and must not
 * climb out of the job's folder.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fota-job.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok) {
        if (!ok)
                abort();
}

static int unhex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        c = (char) tolower((unsigned char) c);
        return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* No segment of the path is ".." once decoded. */
static void check_segments(const char *path) {
        size_t len = 0, dots = 0;

        for (const char *p = path;; p++) {
                char c = *p;
                if (c == '/' || c == 0 || c == '?') {
                        check(!(len == 2 && dots == 2));
                        if (c != '/')
                                return;
                        len = dots = 0;
                        continue;
                }
                if (c == '%') {
                        check(unhex(p[1]) >= 0 && unhex(p[2]) >= 0);
                        c = (char) (unhex(p[1]) * 16 + unhex(p[2]));
                        check((unsigned char) c >= 0x20 && c != 0x7f);
                        p += 2;
                }
                len++;
                if (c == '.')
                        dots++;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        FotaJob j;
        FotaJobError e;
        char url[FOTA_URL_MAX + 1], version[64];
        char *out = NULL;
        const char *path;
        int r = fota_job_parse(data, size, false, &j, &e);

        if (r < 0) {
                check(r == -ENOENT || r == -EBADMSG || r == -EMSGSIZE || r == -ELOOP || r == -ENOMEM);
                /* An id that could be read can always be answered REJECTED. */
                if (r != -ENOENT && e.id[0]) {
                        check(fota_job_build_update(e.id, FOTA_STATUS_REJECTED, 0, "Job info is invalid", &out) == 0);
                        free(out);
                }
                return 0;
        }
        check(j.n_files == 1);
        check(fota_job_url(&j, 0, url, sizeof url) == 0);
        check(strncmp(url, "https://", 8) == 0);
        for (const char *p = url; *p; p++)
                check(*p > 0x20 && *p < 0x7f && *p != '"' && *p != '\\');
        path = strchr(url + 8, '/');
        check(path != NULL);
        check_segments(path + 1);
        (void) fota_delta_target_version(j.files[0], version, sizeof version);
        check(fota_job_build_update(j.id, FOTA_STATUS_DOWNLOADING, 100, NULL, &out) == 0);
        free(out);
        return 0;
}
