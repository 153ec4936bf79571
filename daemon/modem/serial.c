/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>

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

SerialLock *serial_lock_release(SerialLock *l) {
        if (!l)
                return NULL;
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

static pid_t read_holder(int fd) {
        char buf[32] = {};
        uint64_t pid;
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);

        if (n <= 0)
                return 0;
        buf[strcspn(buf, "\n ")] = 0;
        if (parse_uint64(buf, &pid) < 0 || pid == 0 || pid > INT_MAX)
                return 0;
        return (pid_t) pid;
}

int serial_lock_acquire(const char *device, SerialLock **ret, pid_t *ret_holder) {
        _cleanup_free_ char *path = NULL, *canon = NULL;
        _cleanup_close_ int fd = -EBADF;
        const char *dir = serial_runtime_dir(), *name;
        SerialLock *l;
        struct stat a, b;
        char pid[32];

        /* Lock the device, not the name: a symlink and its target share one lock. */
        canon = realpath(device, NULL);
        name = strrchr(canon ? canon : device, '/');
        name = name ? name + 1 : (canon ? canon : device);
        if (!*name)
                return -EINVAL;

        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return -errno;
        if (asprintf(&path, "%s/modem-%s.lock", dir, name) < 0)
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
        *ret = l;
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
