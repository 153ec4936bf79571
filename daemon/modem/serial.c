/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>

#include "log.h"
#include "serial.h"
#include "util.h"

static const struct {
        unsigned baud;
        speed_t speed;
} baud_table[] = {
        { 9600, B9600 },       { 19200, B19200 },     { 38400, B38400 },     { 57600, B57600 },
        { 115200, B115200 },   { 230400, B230400 },   { 460800, B460800 },   { 921600, B921600 },
        { 1000000, B1000000 }, { 2000000, B2000000 },
};

static int baud_to_speed(unsigned baud, speed_t *ret) {
        for (size_t i = 0; i < ELEMENTSOF(baud_table); i++)
                if (baud_table[i].baud == baud) {
                        *ret = baud_table[i].speed;
                        return 0;
                }
        return -EINVAL;
}

/* Errors that say the UUCP lock directory is not there or not writable for us. */
#define IN_SET_LOCK_DIR_UNUSABLE(e) ((e) == ENOENT || (e) == ENOTDIR || (e) == EACCES || (e) == EPERM || (e) == EROFS)

bool serial_baud_is_valid(unsigned baud) {
        speed_t s;
        return baud_to_speed(baud, &s) >= 0;
}

const char *serial_runtime_dir(void) {
        const char *e = getenv(SERIAL_RUNTIME_DIR_ENV);
        if (e && *e == '/')
                return e;
        e = getenv("RUNTIME_DIRECTORY");
        if (e && *e == '/') {
                /* systemd may list several, separated by ':'; the first is ours. */
                static char first[PATH_MAX];
                size_t n = strcspn(e, ":");
                if (n < sizeof first) {
                        memcpy(first, e, n);
                        first[n] = 0;
                        return first;
                }
        }
        return SERIAL_RUNTIME_DIR_DEFAULT;
}

const char *serial_uucp_lock_dir(void) {
        const char *e = getenv(SERIAL_UUCP_LOCK_DIR_ENV);
        return e && *e == '/' ? e : SERIAL_UUCP_LOCK_DIR_DEFAULT;
}

/* Removes a UUCP lock file only while it still names us: a stale-lock breaker may have replaced it. */
static void uucp_unlock(const char *path) {
        char buf[32] = {};
        uint64_t pid;
        ssize_t n;
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

        if (fd < 0)
                return;
        n = read(fd, buf, sizeof buf - 1);
        if (n <= 0)
                return;
        buf[strcspn(buf, "\n")] = 0;
        if (parse_uint64(buf + strspn(buf, " "), &pid) >= 0 && pid == (uint64_t) getpid())
                (void) unlink(path);
}

SerialLock *serial_lock_release(SerialLock *l) {
        if (!l)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(l->uucp_path); i++)
                if (l->uucp_path[i]) {
                        uucp_unlock(l->uucp_path[i]);
                        free(l->uucp_path[i]);
                }
        if (l->fd >= 0) {
                /* Unlink while still holding the lock, so nobody locks a file that is going away. */
                if (l->path)
                        (void) unlink(l->path);
                (void) safe_close(l->fd);
        }
        free(l->path);
        free(l);
        return NULL;
}

/* The PID in a lock file: ours "%d\n", HDB UUCP's "%10d\n" (leading blanks). 0 if none. */
static pid_t read_holder(int fd) {
        char buf[32] = {};
        uint64_t pid;
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        const char *p;

        if (n <= 0)
                return 0;
        p = buf + strspn(buf, " ");
        buf[(p - buf) + strcspn(p, "\n ")] = 0;
        if (parse_uint64(p, &pid) < 0 || pid == 0 || pid > INT_MAX)
                return 0;
        return (pid_t) pid;
}

/*
 * The lock file convention of UUCP, cu, minicom, picocom and lockdev (FHS 3.0
 * §5.9): <lock dir>/LCK..<device name> created exclusively, holding the
 * owner's PID as ten ASCII digits right-aligned and a newline (the HDB
 * format).  A file whose process is gone is stale and may be removed.
 * -EBUSY (and the holder) if a live process holds it; 0 with *ret_path NULL
 * if the lock directory is missing or not ours to write (the flock() lock
 * and TIOCEXCL still apply).
 */
static int uucp_lock(const char *name, char **ret_path, pid_t *ret_holder) {
        _cleanup_free_ char *path = NULL;
        char pid[16];

        if (asprintf(&path, "%s/LCK..%s", serial_uucp_lock_dir(), name) < 0)
                return -ENOMEM;
        snprintf(pid, sizeof pid, "%10d\n", (int) getpid());

        for (unsigned attempt = 0; attempt < 3; attempt++) {
                _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
                pid_t holder;

                if (fd >= 0) {
                        if (write(fd, pid, strlen(pid)) != (ssize_t) strlen(pid)) {
                                int e = errno ? errno : EIO;
                                (void) unlink(path);
                                return -e;
                        }
                        *ret_path = TAKE_PTR(path);
                        return 0;
                }
                if (IN_SET_LOCK_DIR_UNUSABLE(errno)) {
                        log_debug("Cannot create %s (%m), relying on the other port locks", path);
                        *ret_path = NULL;
                        return 0;
                }
                if (errno != EEXIST)
                        return -errno;

                fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (fd < 0) {
                        if (errno == ENOENT)
                                continue; /* released meanwhile */
                        return -errno;
                }
                holder = read_holder(fd);
                if (holder > 0 && holder != getpid() && (kill(holder, 0) >= 0 || errno == EPERM)) {
                        if (ret_holder)
                                *ret_holder = holder;
                        return -EBUSY;
                }
                /* Stale (its process is gone, or it names no process): break it. */
                log_debug("Removing stale lock file %s (PID %d)", path, (int) holder);
                if (unlink(path) < 0 && errno != ENOENT) {
                        /*
                         * Another user's file in the sticky lock directory (a root
                         * nrfcloud-gatewayctl that was killed): not ours to remove.
                         * A stale lock must not keep the port closed; the other locks apply.
                         */
                        if (IN_SET_LOCK_DIR_UNUSABLE(errno)) {
                                log_debug("Cannot remove stale %s (%m), relying on the other port locks", path);
                                *ret_path = NULL;
                                return 0;
                        }
                        return -errno;
                }
        }
        return -EBUSY;
}

/* The name of a device in lock file names: the last component of its path. */
static const char *device_name(const char *path) {
        const char *n = strrchr(path, '/');
        return n ? n + 1 : path;
}

int serial_lock_acquire(const char *device, SerialLock **ret, pid_t *ret_holder) {
        _cleanup_(serial_lock_releasep) SerialLock *l = NULL;
        _cleanup_free_ char *path = NULL, *canon = NULL;
        _cleanup_close_ int fd = -EBADF;
        const char *dir = serial_runtime_dir(), *name, *names[2];
        struct stat a, b, st;
        char pid[32];
        int r;

        /*
         * Lock the device, not the name: a symlink (/dev/nrf91, /dev/serial/by-id/...),
         * a relative path and the node itself share one lock.  A character device is
         * named by its number, so even two nodes of one device do.
         */
        canon = realpath(device, NULL);
        if (!canon) {
                canon = strdup(device);
                if (!canon)
                        return -ENOMEM;
        }
        name = device_name(canon);
        if (!*name)
                return -EINVAL;

        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return -errno;
        if (stat(canon, &st) >= 0 && S_ISCHR(st.st_mode))
                r = asprintf(&path, "%s/modem-c%u:%u.lock", dir, major(st.st_rdev), minor(st.st_rdev));
        else
                r = asprintf(&path, "%s/modem-%s.lock", dir, name);
        if (r < 0)
                return -ENOMEM;

        for (;;) {
                fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
                if (fd < 0)
                        return -errno;
                if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                        int e = errno;
                        if (ret_holder)
                                *ret_holder = e == EWOULDBLOCK ? read_holder(fd) : 0;
                        return e == EWOULDBLOCK ? -EBUSY : -e;
                }
                /* The holder may have unlinked the file between our open and our lock: retry then. */
                if (fstat(fd, &a) < 0)
                        return -errno;
                if (stat(path, &b) >= 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
                        break;
                fd = safe_close(fd);
        }

        snprintf(pid, sizeof pid, "%d\n", (int) getpid());
        if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, strlen(pid), 0) != (ssize_t) strlen(pid))
                return -errno;

        l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->fd = TAKE_FD(fd);
        l->path = TAKE_PTR(path);

        /*
         * Then the UUCP lock files that picocom, minicom and cu look for: under the
         * device's own name, and under the name we were given if that differs
         * (picocom /dev/nrf91 looks for LCK..nrf91, not LCK..ttyACM0).
         */
        names[0] = name;
        names[1] = device_name(device);
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                if (i > 0 && (!*names[i] || streq(names[i], names[0])))
                        continue;
                r = uucp_lock(names[i], &l->uucp_path[i], ret_holder);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(l);
        return 0;
}

int serial_open(const char *path, unsigned baud, bool flow_control, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;
        struct termios t;
        speed_t speed;

        if (baud_to_speed(baud, &speed) < 0)
                return -EINVAL;
        fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (!isatty(fd))
                return -ENOTTY;
        /* No other open() of this tty while we hold it (root excepted, hence the lock file). */
        if (ioctl(fd, TIOCEXCL) < 0)
                return -errno;
        if (tcgetattr(fd, &t) < 0)
                return -errno;
        cfmakeraw(&t);
        t.c_cflag |= CLOCAL | CREAD;
        t.c_cflag &= ~(CSTOPB | PARENB | CSIZE);
        t.c_cflag |= CS8;
        if (flow_control)
                t.c_cflag |= CRTSCTS;
        else
                t.c_cflag &= ~CRTSCTS;
        t.c_cc[VMIN] = 1;
        t.c_cc[VTIME] = 0;
        if (cfsetispeed(&t, speed) < 0 || cfsetospeed(&t, speed) < 0)
                return -errno;
        if (tcsetattr(fd, TCSANOW, &t) < 0)
                return -errno;
        /* Stale bytes from before we opened belong to nobody. */
        (void) tcflush(fd, TCIOFLUSH);
        *ret_fd = TAKE_FD(fd);
        return 0;
}
