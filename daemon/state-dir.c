/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "serial.h"
#include "state-dir.h"
#include "util.h"

/* The loss bound of a power cut is SyncIntervalSec= plus this much slack of the timer. */
#define OUTBOX_TIMER_ACCURACY_USEC (20u * 1000u)

/* Checks the open file fd (what, for messages; key: the setting that chose it) and tightens its
 * mode to at most `mode` when others can reach it. */
static int check_owned(int fd, const char *what, const char *key, bool dir) {
        mode_t loose = dir ? (S_IWGRP | S_IWOTH) : (S_IRWXG | S_IRWXO);
        struct stat st;

        if (fstat(fd, &st) < 0)
                return log_error_errno(errno, "Cannot check %s: %m", what);
        if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
                return log_error_errno(EPERM, "Refusing %s: not a %s", what, dir ? "directory" : "regular file");
        if (st.st_uid != geteuid())
                return log_error_errno(EPERM,
                                       "Refusing %s: it is owned by UID %u, not by the daemon's user (UID %u); "
                                       "fix its owner or choose another %s",
                                       what, (unsigned) st.st_uid, (unsigned) geteuid(), key);
        if (st.st_mode & loose) {
                mode_t m = dir ? 0700 : 0600;
                if (fchmod(fd, m) < 0)
                        return log_error_errno(errno, "Cannot restrict the mode of %s: %m", what);
                log_notice("%s had mode %04o, accessible by other users: set to %04o", what,
                           (unsigned) (st.st_mode & 07777), (unsigned) m);
        }
        return 0;
}

static int check_outbox(int dfd, const char *path, const char *key) {
        _cleanup_close_ int ofd = -EBADF;
        char what[4096];
        DIR *d;
        int r = 0;

        ofd = openat(dfd, "outbox", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (ofd < 0 && errno == ENOENT)
                return 0;
        if (ofd < 0 && (errno == ELOOP || errno == ENOTDIR))
                return log_error_errno(EPERM, "Refusing %s/outbox: a symbolic link or not a directory", path);
        if (ofd < 0)
                return log_error_errno(errno, "Cannot open %s/outbox: %m", path);
        snprintf(what, sizeof what, "%s/outbox", path);
        r = check_owned(ofd, what, key, true);
        if (r < 0)
                return r;
        d = fdopendir(ofd);
        if (!d)
                return log_error_errno(errno, "Cannot read %s/outbox: %m", path);
        ofd = -EBADF; /* owned by d */
        for (struct dirent *de; (de = readdir(d));) {
                _cleanup_close_ int fd = -EBADF;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                snprintf(what, sizeof what, "%s/outbox/%s", path, de->d_name);
                /* O_NONBLOCK: a FIFO planted here must not hang the start. */
                fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
                if (fd < 0) {
                        r = log_error_errno(errno == ELOOP ? EPERM : errno, "Refusing %s: %s", what,
                                            errno == ELOOP ? "a symbolic link" : strerror(errno));
                        break;
                }
                r = check_owned(fd, what, key, false);
                if (r < 0)
                        break;
        }
        closedir(d);
        return r;
}

/* key: "StateDirectory=" or "RuntimeDirectory=", for messages. */
static int directory_prepare(const char *path, const char *key) {
        _cleanup_close_ int dfd = -EBADF;
        char what[4096];
        int r;

        if (mkdir(path, 0700) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Failed to create %s%s: %m", key, path);
        dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0 && (errno == ELOOP || errno == ENOTDIR))
                return log_error_errno(EPERM, "Refusing %s%s: a symbolic link or not a directory", key, path);
        if (dfd < 0)
                return log_error_errno(errno, "Cannot open %s%s: %m", key, path);
        snprintf(what, sizeof what, "%s%s", key, path);
        r = check_owned(dfd, what, key, true);
        if (r < 0)
                return r;
        return check_outbox(dfd, path, key);
}

int state_directory_prepare(const char *path) {
        return directory_prepare(path, "StateDirectory=");
}

int runtime_directory_prepare(const char *path) {
        return directory_prepare(path, "RuntimeDirectory=");
}

const char *runtime_directory(void) {
        const char *e = getenv(SERIAL_RUNTIME_DIR_ENV), *s = getenv("RUNTIME_DIRECTORY");

        /* serial_runtime_dir() reads them the same way, but falls back to a default folder that
         * daemons not started by systemd would share. */
        if ((e && *e == '/') || (s && *s == '/'))
                return serial_runtime_dir();
        return NULL;
}

/* The outbox's clock and timer on sd-event. */
typedef struct OutboxTimer {
        sd_event *event;
        sd_event_source *source;
        Outbox *outbox;
} OutboxTimer;

static uint64_t outbox_timer_now(void *userdata) {
        (void) userdata;
        return now_usec(CLOCK_BOOTTIME);
}

static int on_outbox_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        OutboxTimer *t = userdata;
        int r;
        (void) s, (void) usec;

        r = outbox_on_timer(t->outbox);
        if (r < 0)
                log_error_errno(r, "Failed to write the outbox to the state directory, messages may not survive "
                                   "a power cut: %m");
        return 0;
}

static int outbox_timer_set(void *userdata, uint64_t usec) {
        OutboxTimer *t = userdata;

        if (usec == UINT64_MAX)
                return t->source ? sd_event_source_set_enabled(t->source, SD_EVENT_OFF) : 0;
        if (!t->source)
                return sd_event_add_time(t->event, &t->source, CLOCK_BOOTTIME, usec, OUTBOX_TIMER_ACCURACY_USEC,
                                         on_outbox_timer, t);
        (void) sd_event_source_set_time(t->source, usec);
        return sd_event_source_set_enabled(t->source, SD_EVENT_ONESHOT);
}

static void outbox_timer_free(void *userdata) {
        OutboxTimer *t = userdata;

        sd_event_source_disable_unref(t->source);
        sd_event_unref(t->event);
        free(t);
}

int state_directory_open_outbox(sd_event *event, const char *dir, const OutboxLimits *limits, Outbox **ret) {
        static const OutboxLoopOps ops = { .now = outbox_timer_now, .set_timer = outbox_timer_set };
        _cleanup_(outbox_freep) Outbox *o = NULL;
        _cleanup_free_ char *hot = NULL;
        const char *runtime = runtime_directory();
        OutboxTimer *t;
        int r;

        if (runtime) {
                r = runtime_directory_prepare(runtime);
                if (r < 0)
                        return r;
                if (asprintf(&hot, "%s/outbox", runtime) < 0)
                        return -ENOMEM;
        }
        r = outbox_new_full(dir, hot, limits, &o);
        if (r < 0)
                return r;
        t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        *t = (OutboxTimer){ .event = sd_event_ref(event), .outbox = o };
        outbox_set_loop(o, &ops, t, outbox_timer_free);
        if (hot)
                log_debug("Outbox in %s, messages not acknowledged within %" PRIu64 " ms moved to %s", hot,
                          limits->sync_interval_usec / 1000, dir);
        *ret = TAKE_PTR(o);
        return 0;
}
