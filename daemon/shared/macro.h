/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The few lifetime macros the whole tree uses, in the manner of systemd's
 * macro.h: cleanup attributes for locals and explicit ownership transfer.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _warn_unused_result_ __attribute__((warn_unused_result))

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define CLAMP(x, lo, hi) MIN(MAX((x), (lo)), (hi))

/* Takes the pointer out of a variable, leaving NULL behind. */
#define TAKE_PTR(p)                         \
        ({                                  \
                __typeof__(p) _ptr_ = (p);  \
                (p) = NULL;                 \
                _ptr_;                      \
        })

/* Takes a file descriptor out of a variable, leaving -EBADF behind. */
#define TAKE_FD(fd)                         \
        ({                                  \
                int _fd_ = (fd);            \
                (fd) = -EBADF;              \
                _fd_;                       \
        })

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                (void) close(fd);
                errno = saved;
        }
        return -EBADF;
}
static inline void closep(int *fd) {
        (void) safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

/* DEFINE_TRIVIAL_CLEANUP_FUNC(Type*, type_free) defines type_freep(). */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)            \
        static inline void func##p(type *p) {              \
                if (*p)                                    \
                        (void) func(*p);                   \
        }

static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}
#define streq(a, b) (strcmp((a), (b)) == 0)

static inline const char *strempty(const char *s) {
        return s ? s : "";
}
static inline const char *strna(const char *s) {
        return s ? s : "n/a";
}

/* Negative errno from a positive or negative value, never 0. */
static inline int negative_errno(int e) {
        if (e == 0)
                return -EIO;
        return e < 0 ? e : -e;
}
