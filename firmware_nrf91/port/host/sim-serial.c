/* SPDX-License-Identifier: MIT */
/*
 * The serial link of nrf91-sim: a pseudo-terminal whose slave side is what
 * the host opens (--pty-link makes a symlink to it), or stdin/stdout.
 *
 * Output goes through a queue so that faults can be injected: every response
 * can be held back for a while (delay) or thrown away (drop); URCs are never
 * dropped and never overtake what was written before them.  The pty can
 * vanish, like a USB CDC-ACM device that re-enumerates, and come back at the
 * same link path.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "sim.h"

struct TxSegment {
        TxSegment *next;
        uint64_t release_ms;
        size_t len, off;
        uint8_t data[];
};

static void tx_clear(Sim *s) {
        while (s->tx_head) {
                TxSegment *t = s->tx_head;
                s->tx_head = t->next;
                free(t);
        }
        s->tx_tail = NULL;
        s->tx_bytes = 0;
        s->dropping = false;
}

/* Points link at target, replacing an older symlink atomically. */
static int link_replace(const char *link, const char *target) {
        _cleanup_free_ char *tmp = NULL;
        struct stat st;

        if (lstat(link, &st) == 0 && !S_ISLNK(st.st_mode))
                return log_error_errno(EEXIST, "%s exists and is not a symlink, refusing to replace it", link);
        if (asprintf(&tmp, "%s.%d.tmp", link, (int) getpid()) < 0)
                return -ENOMEM;
        (void) unlink(tmp);
        if (symlink(target, tmp) < 0)
                return log_error_errno(errno, "Cannot create symlink %s: %m", tmp);
        if (rename(tmp, link) < 0) {
                int r = -errno;
                (void) unlink(tmp);
                return log_error_errno(r, "Cannot create %s: %m", link);
        }
        return 0;
}

static int open_pty(Sim *s) {
        _cleanup_close_ int master = -EBADF, slave = -EBADF;
        struct termios t;
        const char *name;

        master = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0)
                return log_error_errno(errno, "Cannot allocate a pseudo-terminal: %m");
        name = ptsname(master);
        if (!name)
                return log_error_errno(errno, "ptsname: %m");
        snprintf(s->pty_name, sizeof s->pty_name, "%s", name);

        /*
         * Hold the slave open ourselves: the master then never reads EOF
         * between two openings by the host, and the line discipline is set
         * raw (no echo, no CR/LF mapping) before anyone looks.
         */
        slave = open(s->pty_name, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (slave < 0)
                return log_error_errno(errno, "Cannot open %s: %m", s->pty_name);
        if (tcgetattr(slave, &t) == 0) {
                cfmakeraw(&t);
                cfsetispeed(&t, B115200);
                cfsetospeed(&t, B115200);
                (void) tcsetattr(slave, TCSANOW, &t);
        }
        if (s->opt.pty_link) {
                int r = link_replace(s->opt.pty_link, s->pty_name);
                if (r < 0)
                        return r;
        }
        s->in_fd = s->out_fd = TAKE_FD(master);
        s->pty_slave_fd = TAKE_FD(slave);
        log_info("Serial link on %s%s%s", s->pty_name, s->opt.pty_link ? " via " : "", strempty(s->opt.pty_link));
        return 0;
}

int serial_open(Sim *s) {
        s->vanished = false;
        s->reappear_ms = 0;
        if (s->opt.stdio) {
                s->in_fd = STDIN_FILENO;
                s->out_fd = STDOUT_FILENO;
                (void) fcntl(s->in_fd, F_SETFL, fcntl(s->in_fd, F_GETFL) | O_NONBLOCK);
                (void) fcntl(s->out_fd, F_SETFL, fcntl(s->out_fd, F_GETFL) | O_NONBLOCK);
                return 0;
        }
        return open_pty(s);
}

void serial_close(Sim *s, bool remove_link) {
        if (!s->opt.stdio) {
                if (s->in_fd >= 0)
                        safe_close(s->in_fd);
                s->pty_slave_fd = safe_close(s->pty_slave_fd);
                if (remove_link && s->opt.pty_link) {
                        struct stat st;
                        if (lstat(s->opt.pty_link, &st) == 0 && S_ISLNK(st.st_mode))
                                (void) unlink(s->opt.pty_link);
                }
        }
        s->in_fd = s->out_fd = -EBADF;
        s->rx_len = 0;
        tx_clear(s);
}

void serial_vanish(Sim *s, unsigned reappear_after_ms) {
        log_notice("Serial link vanishes%s", reappear_after_ms ? "" : " until told to come back");
        serial_close(s, true);
        s->vanished = true;
        s->reappear_ms = reappear_after_ms ? sim_now_ms() + reappear_after_ms : 0;
}

int serial_reappear(Sim *s) {
        if (!s->vanished)
                return 0;
        log_notice("Serial link comes back");
        return serial_open(s);
}

void serial_write(Sim *s, const uint8_t *data, size_t len, unsigned flags) {
        TxSegment *t;

        if (s->out_fd < 0 || len == 0)
                return; /* the device is gone: what it writes is lost */

        /* Drop whole responses (never URCs): from their first byte to their final result. */
        if (!(flags & NRF91_OUT_URC) && (s->dropping || s->drop > 0)) {
                s->dropping = true;
                if (flags & NRF91_OUT_FINAL) {
                        s->dropping = false;
                        s->drop--;
                        log_notice("Fault: response dropped (%u more to drop)", s->drop);
                }
                return;
        }
        if (s->tx_bytes + len > SIM_TX_MAX) {
                if (!s->tx_overflow_logged)
                        log_warning("Nobody reads the serial link: output beyond %u bytes is lost", SIM_TX_MAX);
                s->tx_overflow_logged = true;
                return;
        }
        s->tx_overflow_logged = false;

        t = malloc(sizeof *t + len);
        if (!t) {
                log_error("Out of memory, %zu bytes of output lost", len);
                return;
        }
        *t = (TxSegment){ .release_ms = sim_now_ms() + ((flags & NRF91_OUT_URC) ? 0 : s->delay_ms), .len = len };
        memcpy(t->data, data, len);
        if (s->tx_tail)
                s->tx_tail->next = t;
        else
                s->tx_head = t;
        s->tx_tail = t;
        s->tx_bytes += len;
        serial_flush(s, sim_now_ms());
}

void serial_flush(Sim *s, uint64_t now_ms) {
        while (s->tx_head && s->tx_head->release_ms <= now_ms && s->out_fd >= 0) {
                TxSegment *t = s->tx_head;
                ssize_t n = write(s->out_fd, t->data + t->off, t->len - t->off);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return;
                        log_warning_errno(errno, "Serial write failed, output dropped: %m");
                        tx_clear(s);
                        return;
                }
                t->off += (size_t) n;
                s->tx_bytes -= (size_t) n;
                if (t->off < t->len)
                        return;
                s->tx_head = t->next;
                if (!s->tx_head)
                        s->tx_tail = NULL;
                free(t);
        }
}

uint64_t serial_deadline(const Sim *s) {
        uint64_t t = UINT64_MAX;

        if (s->vanished && s->reappear_ms)
                t = s->reappear_ms;
        if (s->tx_head && s->tx_head->release_ms > sim_now_ms())
                t = MIN(t, s->tx_head->release_ms);
        return t;
}

void serial_collect(Sim *s, struct pollfd *p, size_t *n, void **tags, void *tag_in, void *tag_out) {
        if (s->in_fd >= 0 && s->rx_len == 0) {
                p[*n] = (struct pollfd){ .fd = s->in_fd, .events = POLLIN };
                tags[(*n)++] = tag_in;
        }
        if (s->out_fd >= 0 && s->tx_head && s->tx_head->release_ms <= sim_now_ms()) {
                p[*n] = (struct pollfd){ .fd = s->out_fd, .events = POLLOUT };
                tags[(*n)++] = tag_out;
        }
}

void serial_feed_core(Sim *s) {
        size_t n;

        if (s->rx_len == 0 || !nrf91_core_wants_input(&s->core))
                return;
        if (s->mute_until_ms) {
                s->rx_len = 0; /* a mute test image hears nothing either */
                return;
        }
        n = nrf91_core_input(&s->core, s->rx, s->rx_len);
        memmove(s->rx, s->rx + n, s->rx_len - n);
        s->rx_len -= n;
}

void serial_readable(Sim *s) {
        ssize_t n;

        if (s->in_fd < 0 || s->rx_len > 0)
                return;
        n = read(s->in_fd, s->rx, sizeof s->rx);
        if (n < 0) {
                if (errno != EAGAIN && errno != EINTR && errno != EIO)
                        log_warning_errno(errno, "Serial read failed: %m");
                return;
        }
        if (n == 0) {
                if (s->opt.stdio) {
                        log_info("End of input, stopping");
                        s->quit = true;
                }
                return;
        }
        s->rx_len = (size_t) n;
        sim_trace("AT <-", s->rx, s->rx_len);
        serial_feed_core(s);
}
