/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Building sd_bus_message objects without a bus daemon, for unit tests and
 * fuzzers of the mirror: sd-bus creates messages only on a started bus, so
 * one is started on one end of a socketpair nobody answers.
 */
#include <errno.h>
#include <sys/socket.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

static inline int test_bus_new(sd_bus **ret) {
        sd_bus *bus = NULL;
        int fds[2], r;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) < 0)
                return -errno;
        r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_fd(bus, fds[0], fds[0]);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0) {
                sd_bus_unref(bus);
                close(fds[0]);
                close(fds[1]);
                return r;
        }
        close(fds[1]);
        *ret = bus;
        return 0;
}

/* Seals the message so that it can be read from the start, like a received one. */
static inline int test_msg_seal(sd_bus_message *m) {
        static uint64_t cookie = 1;
        int r = sd_bus_message_seal(m, cookie++, 0);
        if (r < 0)
                return r;
        r = sd_bus_message_rewind(m, 1);
        return r < 0 ? r : 0;
}
