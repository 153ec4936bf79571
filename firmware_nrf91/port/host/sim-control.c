/* SPDX-License-Identifier: MIT */
/*
 * The fault-injection control socket: a Unix stream socket (default
 * <state-dir>/control) taking one command per line and answering one line,
 * "OK[ <text>]" or "ERROR <reason>".  For example
 *
 *     printf 'delay 500\n' | socat - UNIX-CONNECT:state/control
 *
 * Commands (README.md / doc/at-commands.md describe them for users):
 *   delay <ms>     hold every response <ms> before it goes out (0: off)
 *   drop <n>       the next <n> commands run but their responses are lost
 *   reboot         the application restarts now: Ready, sockets and downloads gone
 *   vanish [<ms>]  the pty disappears (link removed); back after <ms>, or on "appear"
 *   appear         the pty comes back now, at the same link path
 *   status         one line of state
 *   fota-mute [<ms>]  the next application booted as a test image answers
 *                  nothing; the emulated watchdog resets it after <ms>
 *                  (default 5000) and MCUboot reverts it
 *   fota-write-error <n>  the FOTA image store fails the write reaching byte <n>
 *   short-recv <announced> [<sent>]  a #XRECV URC whose header promises <announced>
 *                  bytes but only <sent> (default 100) follow, as from a UART
 *                  that dropped the rest
 *   cell <plmn> <tac> <ci> <earfcn> <pci> <rsrp> <rsrq>  the serving cell (TAC and
 *                  cell id in hex, RSRP/RSRQ as modem indices); a new TAC or cell id
 *                  is reported with +CEREG while registered, as a reselection is
 *   ncell <earfcn> <pci> <rsrp> <rsrq>  adds a neighbour for %NCELLMEAS
 *   ncell-clear    no neighbours
 *   network-time on|off  whether the network gives the modem its time at
 *                  registration (off: the modem's time is gone, as on a network
 *                  without NITZ; on: the time arrives now if registered)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "sim.h"
#include "util.h"

int control_open(Sim *s) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;

        if (strlen(s->control_path) >= sizeof sa.sun_path)
                return log_error_errno(ENAMETOOLONG, "Control socket path too long: %s", s->control_path);
        strcpy(sa.sun_path, s->control_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return log_error_errno(errno, "socket(AF_UNIX): %m");
        (void) unlink(s->control_path);
        if (bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(fd, 4) < 0)
                return log_error_errno(errno, "Cannot listen on %s: %m", s->control_path);
        s->control_fd = TAKE_FD(fd);
        for (size_t i = 0; i < SIM_CONTROL_CLIENTS; i++)
                s->clients[i].fd = -EBADF;
        log_info("Fault injection control socket: %s", s->control_path);
        return 0;
}

void control_close(Sim *s) {
        for (size_t i = 0; i < SIM_CONTROL_CLIENTS; i++)
                s->clients[i].fd = safe_close(s->clients[i].fd);
        if (s->control_fd >= 0) {
                s->control_fd = safe_close(s->control_fd);
                (void) unlink(s->control_path);
        }
}

/* "<state>,<received>/<total>", the state numbered as #XFOTAINFO numbers it. */
static void control_fota_status(Sim *s, char *out, size_t size) {
        static const int states[] = {
                [NRF91_FOTA_STORED_NONE] = 0,
                [NRF91_FOTA_STORED_PARTIAL] = 2,
                [NRF91_FOTA_STORED_SCHEDULED] = 3,
                [NRF91_FOTA_STORED_TESTING] = 4,
        };
        const struct nrf91_fota *f = &s->core.fota;
        struct nrf91_fota_store st;

        if (f->state == NRF91_FOTA_DOWNLOADING) {
                snprintf(out, size, "1,%llu/%llu", (unsigned long long) f->dl.received,
                         (unsigned long long) f->dl.length);
                return;
        }
        sim_fota_store_info(s, &st);
        snprintf(out, size, "%d,%u/%u", states[st.stored], st.received, st.total);
}

void control_execute(Sim *s, const char *line, char *reply, size_t size) {
        SimControlCommand c;

        log_info("Control: %s", line);
        if (sim_control_parse(line, &c, reply, size) < 0)
                return;
        switch (c.kind) {
        case SIM_CONTROL_DELAY:
                s->delay_ms = (unsigned) c.value;
                break;
        case SIM_CONTROL_DROP:
                s->drop = (unsigned) c.value;
                break;
        case SIM_CONTROL_REBOOT:
                sim_reboot(s, "control socket");
                break;
        case SIM_CONTROL_VANISH:
                if (s->opt.stdio) {
                        snprintf(reply, size, "ERROR no pty with --stdio\n");
                        return;
                }
                serial_vanish(s, (unsigned) c.value);
                break;
        case SIM_CONTROL_APPEAR:
                if (serial_reappear(s) < 0) {
                        snprintf(reply, size, "ERROR cannot create the pty\n");
                        return;
                }
                break;
        case SIM_CONTROL_FOTA_MUTE:
                s->fota_mute_ms = c.value == UINT64_MAX ? SIM_FOTA_MUTE_MS : (unsigned) c.value;
                break;
        case SIM_CONTROL_FOTA_WRITE_ERROR:
                s->fault_fota_write_at = c.value;
                break;
        case SIM_CONTROL_SHORT_RECV: {
                int h = 0;
                char head[48];
                uint8_t junk[SIM_SHORT_RECV_MAX];
                for (int i = 0; i < NRF91_MAX_SOCKETS; i++)
                        if (s->sockets[i].open) {
                                h = i;
                                break;
                        }
                snprintf(head, sizeof head, "\r\n#XRECV: %d,%u\r\n", h, (unsigned) c.value);
                memset(junk, 0x17, (size_t) c.value2);
                serial_write(s, (const uint8_t *) head, strlen(head), NRF91_OUT_URC);
                serial_write(s, junk, (size_t) c.value2, NRF91_OUT_URC);
                break;
        }
        case SIM_CONTROL_STATUS: {
                unsigned sockets = 0;
                char fota[64];
                for (int h = 0; h < NRF91_MAX_SOCKETS; h++)
                        sockets += s->sockets[h].open;
                control_fota_status(s, fota, sizeof fota);
                snprintf(reply, size, "OK pty=%s link=%s cfun=%d sockets=%u delay=%u drop=%u app=%s fota=%s\n",
                         s->vanished ? "-" : (s->opt.stdio ? "stdio" : s->pty_name), strempty(s->opt.pty_link),
                         modem_emu_cfun(s->modem), sockets, s->delay_ms, s->drop, s->app_version, fota);
                return;
        }
        case SIM_CONTROL_CELL:
        case SIM_CONTROL_NCELL: {
                ModemEmuCell cell = {
                        .tac = c.cell.tac, .ci = c.cell.ci, .earfcn = c.cell.earfcn, .pci = c.cell.pci,
                        .rsrp = c.cell.rsrp, .rsrq = c.cell.rsrq,
                };
                int r;
                memcpy(cell.plmn, c.cell.plmn, sizeof cell.plmn);
                r = c.kind == SIM_CONTROL_CELL ? modem_emu_set_cell(s->modem, &cell) : modem_emu_add_ncell(s->modem, &cell);
                if (r < 0) {
                        snprintf(reply, size, "ERROR %s\n", r == -ENOSPC ? "too many neighbours" : "invalid cell");
                        return;
                }
                break;
        }
        case SIM_CONTROL_NCELL_CLEAR:
                modem_emu_clear_ncells(s->modem);
                break;
        case SIM_CONTROL_NETWORK_TIME:
                modem_emu_set_network_time(s->modem, c.value != 0);
                break;
        case _SIM_CONTROL_KIND_MAX:
                return;
        }
        snprintf(reply, size, "OK\n");
}

void control_collect(Sim *s, struct pollfd *p, size_t *n, void **tags) {
        if (s->control_fd < 0)
                return;
        p[*n] = (struct pollfd){ .fd = s->control_fd, .events = POLLIN };
        tags[(*n)++] = &s->control_fd;
        for (size_t i = 0; i < SIM_CONTROL_CLIENTS; i++)
                if (s->clients[i].fd >= 0) {
                        p[*n] = (struct pollfd){ .fd = s->clients[i].fd, .events = POLLIN };
                        tags[(*n)++] = &s->clients[i];
                }
}

bool control_is_tag(const Sim *s, void *tag) {
        const char *t = tag;
        return tag == &s->control_fd ||
               (t >= (const char *) s->clients && t < (const char *) (s->clients + SIM_CONTROL_CLIENTS));
}

static void client_drop(ControlClient *c) {
        c->fd = safe_close(c->fd);
        c->len = 0;
}

void control_dispatch(Sim *s, void *tag, short revents) {
        if (tag == &s->control_fd) {
                int fd = accept4(s->control_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0)
                        return;
                for (size_t i = 0; i < SIM_CONTROL_CLIENTS; i++)
                        if (s->clients[i].fd < 0) {
                                s->clients[i] = (ControlClient){ .fd = fd };
                                return;
                        }
                (void) !write(fd, "ERROR busy\n", 11);
                close(fd);
                return;
        }

        ControlClient *c = tag;
        ssize_t n;
        (void) revents;
        n = read(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
        if (n <= 0) {
                if (n == 0 || (errno != EAGAIN && errno != EINTR))
                        client_drop(c);
                return;
        }
        c->len += (size_t) n;
        c->buf[c->len] = '\0';
        for (char *nl; c->fd >= 0 && (nl = strchr(c->buf, '\n'));) {
                char reply[512];
                *nl = '\0';
                if (nl > c->buf && nl[-1] == '\r')
                        nl[-1] = '\0';
                control_execute(s, c->buf, reply, sizeof reply);
                /* Replies are tiny; a client that does not read them loses them. */
                (void) !write(c->fd, reply, strlen(reply));
                memmove(c->buf, nl + 1, c->len - (size_t) (nl + 1 - c->buf) + 1);
                c->len = strlen(c->buf);
        }
        if (c->len == sizeof c->buf - 1) {
                (void) !write(c->fd, "ERROR line too long\n", 20);
                client_drop(c);
        }
}
