/* SPDX-License-Identifier: MIT */
#pragma once

/* A fake loop for the AT engine: fake time, one timer, a capture of written bytes. */

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "at-engine.h"

typedef struct FakeLoop {
        uint64_t now;
        uint64_t deadline;
        char written[16384];
        size_t written_len;
        size_t write_chunk; /* bytes accepted per write() call; 0: all */
        bool blocked;       /* write() returns -EAGAIN */
        int write_error;    /* write() returns this when negative */
        bool want_write;
} FakeLoop;

static inline uint64_t fake_now(void *u) {
        return ((FakeLoop *) u)->now;
}

static inline int fake_set_timer(void *u, uint64_t usec) {
        ((FakeLoop *) u)->deadline = usec;
        return 0;
}

static inline ssize_t fake_write(void *u, const void *data, size_t len) {
        FakeLoop *l = u;
        size_t n = len;

        if (l->write_error < 0)
                return l->write_error;
        if (l->blocked)
                return -EAGAIN;
        if (l->write_chunk && n > l->write_chunk)
                n = l->write_chunk;
        if (l->written_len + n > sizeof l->written)
                return -ENOSPC;
        memcpy(l->written + l->written_len, data, n);
        l->written_len += n;
        return (ssize_t) n;
}

static inline int fake_want_write(void *u, bool on) {
        ((FakeLoop *) u)->want_write = on;
        return 0;
}

static const AtLoopOps fake_ops = {
        .now = fake_now,
        .set_timer = fake_set_timer,
        .write = fake_write,
        .want_write = fake_want_write,
};

/* Advances fake time and fires the timer if it is due. */
static inline void fake_advance(FakeLoop *l, AtEngine *e, uint64_t usec) {
        l->now += usec;
        if (l->deadline != UINT64_MAX && l->now >= l->deadline)
                at_engine_on_timer(e);
}

/* Takes what was written so far as a NUL-terminated string. */
static inline const char *fake_take_written(FakeLoop *l, char *buf, size_t len) {
        size_t n = l->written_len < len - 1 ? l->written_len : len - 1;
        memcpy(buf, l->written, n);
        buf[n] = 0;
        l->written_len = 0;
        return buf;
}
