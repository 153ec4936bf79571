/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "at-link.h"
#include "backoff.h"
#include "log.h"
#include "serial.h"
#include "util.h"

struct AtLink {
        sd_event *event;
        char *path;
        unsigned baud;
        bool flow_control;
        AtLinkState state;

        int fd;
        SerialLock *lock;
        sd_event_source *io_source;
        sd_event_source *engine_timer;
        sd_event_source *reopen_timer;
        sd_event_source *watch_source; /* inotify on the directory where the absent port will appear */
        char *watch_name;              /* the entry of that directory on the way to the port */
        AtEngine *engine;
        bool want_write;

        bool reopen;        /* daemon mode: keep trying */
        bool was_open;      /* the port has been open before: a failure is a loss */
        bool loss_logged;   /* the current outage has been logged */
        unsigned attempts;  /* failed attempts in the current outage */
        Backoff backoff;

        const AtLinkCallbacks *cb;
        void *userdata;
};

static const char *const at_link_state_table[_AT_LINK_STATE_MAX] = {
        [AT_LINK_CLOSED] = "closed",
        [AT_LINK_OPEN] = "open",
        [AT_LINK_WAITING] = "waiting",
};

const char *at_link_state_to_string(AtLinkState s) {
        return s >= 0 && s < _AT_LINK_STATE_MAX ? at_link_state_table[s] : NULL;
}

#define LINK_FIELDS(l) LOG_FIELDS({ "MODEM_PORT", (l)->path })

static void link_enter_state(AtLink *l, AtLinkState s) {
        if (l->state == s)
                return;
        log_fields(LOG_DEBUG, LINK_FIELDS(l), "Modem port %s: %s -> %s", l->path, at_link_state_to_string(l->state),
                   at_link_state_to_string(s));
        l->state = s;
}

static void link_lost(AtLink *l, int error);

static void link_unwatch(AtLink *l) {
        l->watch_source = sd_event_source_disable_unref(l->watch_source);
        free(l->watch_name);
        l->watch_name = NULL;
}

/* Errors of a tty whose device is gone (USB unplugged, pty master closed). */
#define IN_SET_PORT_GONE(e) ((e) == EIO || (e) == ENXIO || (e) == ENODEV || (e) == EPIPE)

/* AtLoopOps on sd-event. */
static uint64_t link_now(void *userdata) {
        (void) userdata;
        return now_usec(CLOCK_MONOTONIC);
}

static int on_engine_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        AtLink *l = userdata;
        (void) s;
        (void) usec;
        at_engine_on_timer(l->engine);
        return 0;
}

static int link_set_timer(void *userdata, uint64_t usec) {
        AtLink *l = userdata;
        int r;

        if (usec == UINT64_MAX)
                return l->engine_timer ? sd_event_source_set_enabled(l->engine_timer, SD_EVENT_OFF) : 0;
        if (!l->engine_timer)
                return sd_event_add_time(l->event, &l->engine_timer, CLOCK_MONOTONIC, usec, 1000, on_engine_timer, l);
        r = sd_event_source_set_time(l->engine_timer, usec);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(l->engine_timer, SD_EVENT_ONESHOT);
}

static ssize_t link_write(void *userdata, const void *data, size_t len) {
        AtLink *l = userdata;
        ssize_t n;

        if (l->fd < 0)
                return -ENOTCONN;
        n = write(l->fd, data, len);
        if (n >= 0)
                return n;
        if (errno == EWOULDBLOCK || errno == EINTR)
                return -EAGAIN;
        if (IN_SET_PORT_GONE(errno)) {
                /* The device went away under us; a write may notice before the read side does. */
                link_lost(l, -errno);
                return -ECONNRESET;
        }
        return -errno;
}

static int link_update_io(AtLink *l) {
        if (!l->io_source)
                return 0;
        return sd_event_source_set_io_events(l->io_source, EPOLLIN | (l->want_write ? EPOLLOUT : 0));
}

static int link_want_write(void *userdata, bool on) {
        AtLink *l = userdata;
        l->want_write = on;
        return link_update_io(l);
}

static const AtLoopOps link_ops = {
        .now = link_now,
        .set_timer = link_set_timer,
        .write = link_write,
        .want_write = link_want_write,
};

static void link_close_port(AtLink *l) {
        l->io_source = sd_event_source_disable_unref(l->io_source);
        l->fd = safe_close(l->fd);
        l->lock = serial_lock_release(l->lock);
        l->want_write = false;
}

static int link_schedule_reopen(AtLink *l);

static void link_lost(AtLink *l, int error) {
        link_close_port(l);
        if (!l->loss_logged) {
                errno = -error;
                log_fields_errno(LOG_WARNING, error,
                                 LOG_FIELDS({ "MODEM_PORT", l->path }, { "MESSAGE_ID", MESSAGE_ID_MODEM_LOST }),
                                 "Modem port %s lost: %m%s", l->path, l->reopen ? ", reopening" : "");
                l->loss_logged = true;
        }
        if (l->reopen)
                (void) link_schedule_reopen(l);
        else
                link_enter_state(l, AT_LINK_CLOSED);
        /* The owner hears first, so that it can tell the failures below from ordinary ones. */
        if (l->cb && l->cb->lost)
                l->cb->lost(l, error, l->userdata);
        /* Nothing in flight survives: the answers went away with the port. */
        at_engine_reset(l->engine, -ECONNRESET);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        AtLink *l = userdata;
        uint8_t buf[AT_LINK_READ_MAX];
        (void) s;
        (void) fd;

        if (revents & EPOLLIN) {
                ssize_t n = read(l->fd, buf, sizeof buf);
                if (n > 0) {
                        at_engine_feed(l->engine, buf, (size_t) n);
                        return 0;
                }
                if (n == 0) {
                        link_lost(l, -EPIPE);
                        return 0;
                }
                if (errno != EAGAIN && errno != EINTR) {
                        link_lost(l, -errno);
                        return 0;
                }
        }
        if (revents & (EPOLLHUP | EPOLLERR)) {
                link_lost(l, revents & EPOLLERR ? -EIO : -EPIPE);
                return 0;
        }
        if (revents & EPOLLOUT)
                at_engine_on_writable(l->engine);
        return 0;
}

int at_link_open(AtLink *l, pid_t *ret_holder) {
        _cleanup_(serial_lock_releasep) SerialLock *lock = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (l->state == AT_LINK_OPEN)
                return 0;
        r = serial_lock_acquire(l->path, &lock, ret_holder);
        if (r < 0)
                return r;
        r = serial_open(l->path, l->baud, l->flow_control, &fd);
        if (r < 0)
                return r;
        r = sd_event_add_io(l->event, &l->io_source, fd, EPOLLIN, on_io, l);
        if (r < 0)
                return r;
        l->fd = TAKE_FD(fd);
        l->lock = TAKE_PTR(lock);
        l->reopen_timer = sd_event_source_disable_unref(l->reopen_timer);
        link_unwatch(l);
        link_enter_state(l, AT_LINK_OPEN);

        if (l->loss_logged || l->attempts > 0)
                log_fields(LOG_NOTICE, LINK_FIELDS(l), "Modem port %s is back after %u attempt(s)", l->path,
                           l->attempts + 1);
        l->was_open = true;
        l->loss_logged = false;
        l->attempts = 0;
        backoff_reset(&l->backoff);
        /* What the modem still owes a previous user of the port goes before our first command (daemon only:
         * nrfcloud-gatewayctl sends one command and checks its answer itself). */
        if (l->reopen)
                at_engine_sync(l->engine, AT_SYNC_OPEN_SETTLE_USEC);
        if (l->cb && l->cb->opened)
                l->cb->opened(l, l->userdata);
        return 0;
}

static int on_reopen_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        AtLink *l = userdata;
        pid_t holder = 0;
        int r;
        (void) s;
        (void) usec;

        r = at_link_open(l, &holder);
        if (r >= 0)
                return 0;
        l->attempts++;
        if (!l->loss_logged) {
                if (r == -EBUSY)
                        log_fields_errno(LOG_WARNING, r, LINK_FIELDS(l),
                                         "Modem port %s is held by another process (PID %d), retrying", l->path,
                                         (int) holder);
                else
                        log_fields_errno(LOG_WARNING, r, LINK_FIELDS(l), "Cannot open modem port %s: %m, retrying",
                                         l->path);
                l->loss_logged = true;
        } else
                log_fields_errno(LOG_DEBUG, r, LINK_FIELDS(l), "Modem port %s: attempt %u failed: %m", l->path,
                                 l->attempts);
        return link_schedule_reopen(l);
}

static int on_port_watch(sd_event_source *s, const struct inotify_event *ev, void *userdata) {
        AtLink *l = userdata;
        (void) s;

        /* IN_IGNORED: the directory itself went away; look again from further up. */
        if (!(ev->mask & IN_IGNORED) && (ev->len == 0 || !l->watch_name || !streq(ev->name, l->watch_name)))
                return 0;
        if (ev->mask & IN_IGNORED)
                log_fields(LOG_DEBUG, LINK_FIELDS(l), "Modem port %s: the watched directory went away", l->path);
        else
                log_fields(LOG_DEBUG, LINK_FIELDS(l), "Modem port %s: %s appeared, trying it", l->path, ev->name);
        link_unwatch(l);
        l->reopen_timer = sd_event_source_disable_unref(l->reopen_timer);
        return on_reopen_timer(NULL, 0, l);
}

/*
 * The port is absent (no USB device, /dev/nrf91 not created yet): wait for
 * it to appear instead of polling.  An inotify watch on the deepest existing
 * directory of its path (/dev, or /dev/serial/by-id before that exists) for
 * the next component of the path; the slow timer is only a fallback.
 */
static int link_watch_port(AtLink *l) {
        size_t end = strlen(l->path);

        link_unwatch(l);
        /* From the port's own directory upwards: the first that exists is watched for the next component. */
        while (end > 0) {
                _cleanup_free_ char *dir = NULL;
                size_t cut = end;
                int r;

                while (cut > 0 && l->path[cut - 1] != '/')
                        cut--;
                if (cut == 0)
                        return -ENOENT; /* a relative name without a directory part: poll */
                dir = strndup(l->path, cut > 1 ? cut - 1 : 1);
                if (!dir)
                        return -ENOMEM;
                r = sd_event_add_inotify(l->event, &l->watch_source, dir,
                                         IN_CREATE | IN_MOVED_TO | IN_ATTRIB | IN_ONLYDIR, on_port_watch, l);
                if (r >= 0) {
                        l->watch_name = strndup(l->path + cut, end - cut);
                        if (!l->watch_name) {
                                link_unwatch(l);
                                return -ENOMEM;
                        }
                        log_fields(LOG_DEBUG, LINK_FIELDS(l), "Modem port %s is absent: waiting for %s to appear in %s",
                                   l->path, l->watch_name, dir);
                        return 0;
                }
                if (r != -ENOENT && r != -ENOTDIR)
                        return r;
                end = cut - 1;
                while (end > 0 && l->path[end - 1] == '/')
                        end--;
        }
        return -ENOENT;
}

static int link_schedule_reopen(AtLink *l) {
        uint64_t delay = backoff_next(&l->backoff);
        uint64_t accuracy = 10000;
        struct stat st;
        int r;

        link_enter_state(l, AT_LINK_WAITING);
        l->reopen_timer = sd_event_source_disable_unref(l->reopen_timer);
        link_unwatch(l);
        if (stat(l->path, &st) < 0 && errno == ENOENT && link_watch_port(l) >= 0) {
                /* Only a fallback now (a directory inotify does not cover, a missed event): slow and coalescable. */
                delay = AT_LINK_WATCH_FALLBACK_USEC;
                accuracy = AT_LINK_WATCH_FALLBACK_USEC / 4;
                /* It may have appeared between the stat() and the watch. */
                if (access(l->path, F_OK) >= 0)
                        delay = 0;
        }
        r = sd_event_add_time_relative(l->event, &l->reopen_timer, CLOCK_MONOTONIC, delay, accuracy, on_reopen_timer, l);
        if (r < 0)
                return log_fields_errno(LOG_ERR, r, LINK_FIELDS(l), "Failed to arm the reopen timer: %m");
        return 0;
}

int at_link_start(AtLink *l) {
        l->reopen = true;
        if (l->state != AT_LINK_CLOSED)
                return 0;
        /* The first attempt runs from the loop too, so that callbacks never run inside the caller. */
        link_enter_state(l, AT_LINK_WAITING);
        l->reopen_timer = sd_event_source_disable_unref(l->reopen_timer);
        /* Accuracy 1 µs: 0 would mean sd-event's default of 250 ms, all of it on the way to cloud ready. */
        return sd_event_add_time_relative(l->event, &l->reopen_timer, CLOCK_MONOTONIC, 0, 1, on_reopen_timer, l);
}

void at_link_close(AtLink *l) {
        l->reopen = false;
        l->reopen_timer = sd_event_source_disable_unref(l->reopen_timer);
        link_unwatch(l);
        link_close_port(l);
        if (l->engine)
                at_engine_reset(l->engine, -ECANCELED);
        link_enter_state(l, AT_LINK_CLOSED);
}

int at_link_new(sd_event *event, const char *path, unsigned baud, bool flow_control, AtLink **ret) {
        _cleanup_(at_link_freep) AtLink *l = NULL;
        int r;

        if (!serial_baud_is_valid(baud))
                return -EINVAL;
        l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->fd = -EBADF;
        l->event = sd_event_ref(event);
        l->baud = baud;
        l->flow_control = flow_control;
        l->state = AT_LINK_CLOSED;
        backoff_init(&l->backoff, AT_LINK_REOPEN_MIN_USEC, AT_LINK_REOPEN_MAX_USEC);
        l->path = strdup(path);
        if (!l->path)
                return -ENOMEM;
        r = at_engine_new(&link_ops, l, &l->engine);
        if (r < 0)
                return r;
        r = at_engine_set_name(l->engine, path);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}

AtLink *at_link_free(AtLink *l) {
        if (!l)
                return NULL;
        l->reopen_timer = sd_event_source_disable_unref(l->reopen_timer);
        link_unwatch(l);
        link_close_port(l);
        l->engine = at_engine_free(l->engine);
        l->engine_timer = sd_event_source_disable_unref(l->engine_timer);
        sd_event_unref(l->event);
        free(l->path);
        free(l);
        return NULL;
}

void at_link_set_callbacks(AtLink *l, const AtLinkCallbacks *cb, void *userdata) {
        l->cb = cb;
        l->userdata = userdata;
}

AtEngine *at_link_engine(AtLink *l) {
        return l->engine;
}

AtLinkState at_link_get_state(const AtLink *l) {
        return l->state;
}

const char *at_link_path(const AtLink *l) {
        return l->path;
}

typedef struct SyncWait {
        bool done;
        AtReply *reply;
} SyncWait;

static void on_sync_done(AtEngine *e, const AtResponse *r, void *userdata) {
        SyncWait *w = userdata;
        (void) e;

        w->done = true;
        w->reply->result = r->result;
        w->reply->final = r->final;
        w->reply->code = r->code;
        at_response_describe(r, w->reply->description, sizeof w->reply->description);
        for (size_t i = 0; i < r->n_lines; i++) {
                char *c = strdup(r->lines[i]);
                if (!c || strv_push(&w->reply->lines, c) < 0) {
                        w->reply->result = -ENOMEM;
                        return;
                }
        }
}

static int on_sync_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        bool *expired = userdata;
        (void) s;
        (void) usec;
        *expired = true;
        return 0;
}

int at_link_command(AtLink *l, const char *cmd, uint64_t timeout_usec, AtReply *ret) {
        _cleanup_(sd_event_source_disable_unrefp) sd_event_source *deadline = NULL;
        SyncWait w = { .reply = ret };
        bool expired = false;
        int64_t id;
        int r;

        *ret = (AtReply){};
        id = at_engine_send(l->engine, cmd, timeout_usec, on_sync_done, &w);
        if (id < 0)
                return (int) id;
        /*
         * The engine's timeout runs from the last byte written.  A command queued
         * behind a resynchronisation waits for it, and on a port where nothing
         * answers that never ends: bound the whole wait by the command's timeout
         * plus one resync probe and its settling time.
         */
        r = sd_event_add_time_relative(l->event, &deadline, CLOCK_MONOTONIC,
                                       timeout_usec + AT_RESYNC_TIMEOUT_USEC + AT_RESYNC_SETTLE_USEC, 10000,
                                       on_sync_deadline, &expired);
        if (r < 0) {
                at_engine_cancel(l->engine, id);
                return r;
        }
        while (!w.done) {
                if (expired) {
                        at_engine_cancel(l->engine, id);
                        ret->result = -ETIMEDOUT;
                        snprintf(ret->description, sizeof ret->description, "no answer (timed out)");
                        break;
                }
                r = sd_event_run(l->event, UINT64_MAX);
                if (r < 0) {
                        at_engine_cancel(l->engine, id);
                        return r;
                }
        }
        if (!ret->lines) {
                ret->lines = calloc(1, sizeof(char *));
                if (!ret->lines)
                        return -ENOMEM;
        }
        return ret->result;
}

void at_reply_done(AtReply *r) {
        r->lines = strv_free(r->lines);
}
