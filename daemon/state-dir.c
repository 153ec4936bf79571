/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "state-dir.h"
#include "util.h"

/* Checks the open file fd (what, for messages) and tightens its mode to at most `mode` when others can reach it. */
static int check_owned(int fd, const char *what, bool dir) {
        mode_t loose = dir ? (S_IWGRP | S_IWOTH) : (S_IRWXG | S_IRWXO);
        struct stat st;

        if (fstat(fd, &st) < 0)
                return log_error_errno(errno, "Cannot check %s: %m", what);
        if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
                return log_error_errno(EPERM, "Refusing %s: not a %s", what, dir ? "directory" : "regular file");
        if (st.st_uid != geteuid())
                return log_error_errno(EPERM,
                                       "Refusing %s: it is owned by UID %u, not by the daemon's user (UID %u); "
                                       "fix its owner or choose another StateDirectory=",
                                       what, (unsigned) st.st_uid, (unsigned) geteuid());
        if (st.st_mode & loose) {
                mode_t m = dir ? 0700 : 0600;
                if (fchmod(fd, m) < 0)
                        return log_error_errno(errno, "Cannot restrict the mode of %s: %m", what);
                log_notice("%s had mode %04o, accessible by other users: set to %04o", what,
                           (unsigned) (st.st_mode & 07777), (unsigned) m);
        }
        return 0;
}

static int check_outbox(int dfd, const char *path) {
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
        r = check_owned(ofd, what, true);
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
                r = check_owned(fd, what, false);
                if (r < 0)
                        break;
        }
        closedir(d);
        return r;
}

int state_directory_prepare(const char *path) {
        _cleanup_close_ int dfd = -EBADF;
        char what[4096];
        int r;

        if (mkdir(path, 0700) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Failed to create StateDirectory=%s: %m", path);
        dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0 && (errno == ELOOP || errno == ENOTDIR))
                return log_error_errno(EPERM, "Refusing StateDirectory=%s: a symbolic link or not a directory", path);
        if (dfd < 0)
                return log_error_errno(errno, "Cannot open StateDirectory=%s: %m", path);
        snprintf(what, sizeof what, "StateDirectory=%s", path);
        r = check_owned(dfd, what, true);
        if (r < 0)
                return r;
        return check_outbox(dfd, path);
}
