/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fota-store.h"
#include "macro.h"
#include "util.h"

static const char *const fota_stage_table[_FOTA_STAGE_MAX] = {
        [FOTA_STAGE_NONE] = "none",
        [FOTA_STAGE_DOWNLOADING] = "downloading",
        [FOTA_STAGE_STORED] = "stored",
        [FOTA_STAGE_APPLYING] = "applying",
        [FOTA_STAGE_REPORTING] = "reporting",
};

const char *fota_stage_to_string(FotaStage s) {
        return s >= 0 && s < _FOTA_STAGE_MAX ? fota_stage_table[s] : NULL;
}

FotaStage fota_stage_from_string(const char *s) {
        for (int i = 0; s && i < _FOTA_STAGE_MAX; i++)
                if (streq(fota_stage_table[i], s))
                        return (FotaStage) i;
        return _FOTA_STAGE_INVALID;
}

void fota_record_init(FotaRecord *r) {
        *r = (FotaRecord){ .stage = FOTA_STAGE_NONE, .type = -1, .progress = -1 };
}

static bool value_ok(const char *s) {
        return !strpbrk(s, "\r\n");
}

int fota_record_format(const FotaRecord *r, char **ret) {
        _cleanup_free_ char *type = NULL;
        char *s = NULL;
        const char *name = fota_type_to_string(r->type);
        int n;

        if (!fota_stage_to_string(r->stage) || !value_ok(r->id) || !value_ok(r->url) || !value_ok(r->app_before) ||
            !value_ok(r->modem_before) || !value_ok(r->modem_expected) || !value_ok(r->report_message) ||
            !value_ok(r->last_job))
                return -EINVAL;
        if (name)
                type = strdup(name);
        else if (asprintf(&type, "%d", r->type) < 0)
                type = NULL;
        if (!type)
                return -ENOMEM;
        n = asprintf(&s,
                     "# nrfcloud-gatewayd FOTA job; written by the daemon, do not edit\n"
                     "stage=%s\nid=%s\ntype=%s\nurl=%s\napp_before=%s\nmodem_before=%s\nmodem_expected=%s\n"
                     "progress=%d\nreport=%d\nreport_message=%s\nlast_job=%s\nupdated=%llu\n",
                     fota_stage_to_string(r->stage), r->id, type, r->url, r->app_before, r->modem_before,
                     r->modem_expected, r->progress, r->has_report ? (int) r->report_status : -1, r->report_message,
                     r->last_job, (unsigned long long) r->updated_sec);
        if (n < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int copy_value(char *dst, size_t size, const char *v, size_t n) {
        if (n >= size)
                return -EBADMSG;
        memcpy(dst, v, n);
        dst[n] = 0;
        return 0;
}

static int parse_int(const char *v, size_t n, long min, long max, long *ret) {
        char buf[24], *end;
        long x;

        if (n == 0 || n >= sizeof buf)
                return -EBADMSG;
        memcpy(buf, v, n);
        buf[n] = 0;
        errno = 0;
        x = strtol(buf, &end, 10);
        if (errno || *end || x < min || x > max)
                return -EBADMSG;
        *ret = x;
        return 0;
}

int fota_record_parse(const char *text, size_t len, FotaRecord *ret) {
        FotaRecord r;
        const char *p = text, *end = text + len;
        bool have_stage = false;

        fota_record_init(&r);
        if (len > FOTA_STORE_FILE_MAX)
                return -EBADMSG;
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p)), *eq;
                size_t line = nl ? (size_t) (nl - p) : (size_t) (end - p), klen, vlen;
                const char *v;
                char key[24], stage[24], type[24];
                long x;
                int k = 0;

                if (line == 0 || p[0] == '#')
                        goto next;
                eq = memchr(p, '=', line);
                if (!eq || memchr(p, 0, line))
                        return -EBADMSG;
                klen = (size_t) (eq - p);
                v = eq + 1;
                vlen = line - klen - 1;
                if (copy_value(key, sizeof key, p, klen) < 0)
                        goto next; /* a key from a later version */
                if (streq(key, "stage")) {
                        if (copy_value(stage, sizeof stage, v, vlen) < 0 ||
                            (r.stage = fota_stage_from_string(stage)) < 0)
                                return -EBADMSG;
                        have_stage = true;
                } else if (streq(key, "id"))
                        k = copy_value(r.id, sizeof r.id, v, vlen);
                else if (streq(key, "type")) {
                        if (copy_value(type, sizeof type, v, vlen) < 0)
                                return -EBADMSG;
                        r.type = fota_type_from_string(type);
                        if (r.type < 0) {
                                k = parse_int(v, vlen, 0, 255, &x);
                                r.type = (int) x;
                        }
                } else if (streq(key, "url"))
                        k = copy_value(r.url, sizeof r.url, v, vlen);
                else if (streq(key, "app_before"))
                        k = copy_value(r.app_before, sizeof r.app_before, v, vlen);
                else if (streq(key, "modem_before"))
                        k = copy_value(r.modem_before, sizeof r.modem_before, v, vlen);
                else if (streq(key, "modem_expected"))
                        k = copy_value(r.modem_expected, sizeof r.modem_expected, v, vlen);
                else if (streq(key, "progress")) {
                        k = parse_int(v, vlen, -1, 100, &x);
                        r.progress = (int) x;
                } else if (streq(key, "report")) {
                        k = parse_int(v, vlen, -1, _FOTA_STATUS_MAX - 1, &x);
                        r.has_report = x >= 0;
                        r.report_status = x >= 0 ? (FotaStatus) x : FOTA_STATUS_QUEUED;
                } else if (streq(key, "report_message"))
                        k = copy_value(r.report_message, sizeof r.report_message, v, vlen);
                else if (streq(key, "last_job"))
                        k = copy_value(r.last_job, sizeof r.last_job, v, vlen);
                else if (streq(key, "updated")) {
                        k = parse_int(v, vlen, 0, LONG_MAX, &x);
                        r.updated_sec = (uint64_t) x;
                }
                if (k < 0)
                        return -EBADMSG;
        next:
                p += line + 1;
        }
        /* A job needs its id; a stage without one is not a record we wrote. */
        if (!have_stage || (r.stage != FOTA_STAGE_NONE && !r.id[0]))
                return -EBADMSG;
        *ret = r;
        return 0;
}

int fota_store_load(const char *dir, FotaRecord *ret) {
        _cleanup_free_ char *path = NULL, *buf = NULL;
        size_t n;
        int r;

        if (asprintf(&path, "%s/job", dir) < 0)
                return -ENOMEM;
        r = read_full_file(path, FOTA_STORE_FILE_MAX, &buf, &n);
        if (r == -EFBIG)
                return -EBADMSG;
        if (r < 0)
                return r;
        return fota_record_parse(buf, n, ret);
}

static int write_all(int fd, const char *s, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, s, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                s += k;
                n -= (size_t) k;
        }
        return 0;
}

int fota_store_save(const char *dir, const FotaRecord *rec) {
        _cleanup_free_ char *text = NULL, *path = NULL, *tmp = NULL;
        FotaRecord copy = *rec;
        int fd, dfd, r;

        copy.updated_sec = (uint64_t) time(NULL);
        r = fota_record_format(&copy, &text);
        if (r < 0)
                return r;
        if (asprintf(&path, "%s/job", dir) < 0 || asprintf(&tmp, "%s/.job.tmp", dir) < 0)
                return -ENOMEM;
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return -errno;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        r = write_all(fd, text, strlen(text));
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r >= 0)
                r = -errno;
        if (r >= 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlink(tmp);
                return r;
        }
        /* The rename itself must reach the disk before the step it protects. */
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        r = fsync(dfd) < 0 ? -errno : 0;
        close(dfd);
        return r;
}
