/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "identity.h"
#include "log.h"
#include "serial.h"
#include "util.h"

static void on_ready(AtEngine *e, const char *line, const uint8_t *payload, size_t len, void *userdata) {
        CtlSession *s = userdata;
        (void) e;
        (void) payload;
        (void) len;
        if (streq(line, "Ready"))
                s->rebooted = true;
}

static void on_lost(AtLink *l, int error, void *userdata) {
        CtlSession *s = userdata;
        (void) l;
        (void) error;
        s->lost = true;
}

static const AtLinkCallbacks session_callbacks = {
        .lost = on_lost,
};

static int session_init(CtlSession *s) {
        AtReply r;
        int k = -ETIMEDOUT;

        uint64_t end = now_usec(CLOCK_MONOTONIC) + CTL_PROBE_TIMEOUT_USEC;

        /*
         * A modem that just booted may need a moment: short probes, for at most
         * CTL_PROBE_TIMEOUT_USEC in all, so that a port where nothing answers (the
         * wrong UART, a board without the firmware) fails soon instead of hanging.
         */
        for (;;) {
                k = ctl_command(s, 1000 * 1000, &r, "AT");
                at_reply_done(&r);
                if (k >= 0 || s->lost || now_usec(CLOCK_MONOTONIC) >= end)
                        break;
        }
        if (k < 0)
                return k;
        k = ctl_command(s, CTL_COMMAND_TIMEOUT_USEC, &r, "ATE0");
        at_reply_done(&r);
        if (k < 0)
                return k;
        k = ctl_command(s, CTL_COMMAND_TIMEOUT_USEC, &r, "AT+CMEE=1");
        at_reply_done(&r);
        return k;
}

static int session_try_open(CtlSession *s, bool quiet) {
        pid_t holder = 0;
        int r;

        if (!s->link) {
                r = at_link_new(s->event, s->port, s->baud, s->flow_control, &s->link);
                if (r < 0) {
                        fprintf(stderr, "Cannot use %s at %u baud: %s\n", s->port, s->baud, strerror(-r));
                        return CTL_EXIT_FAILED;
                }
                at_link_set_callbacks(s->link, &session_callbacks, s);
                r = at_engine_add_urc(at_link_engine(s->link), "Ready", on_ready, s);
                if (r < 0)
                        return CTL_EXIT_FAILED;
        }
        r = at_link_open(s->link, &holder);
        if (r == -EBUSY) {
                if (!quiet) {
                        if (holder > 0)
                                fprintf(stderr,
                                        "The modem port %s is in use by process %d (probably nrfcloud-gatewayd).\n"
                                        "Stop the service first: systemctl stop nrfcloud-gatewayd\n",
                                        s->port, (int) holder);
                        else
                                fprintf(stderr,
                                        "The modem port %s is in use by another process (probably nrfcloud-gatewayd).\n"
                                        "Stop the service first: systemctl stop nrfcloud-gatewayd\n",
                                        s->port);
                }
                return CTL_EXIT_BUSY;
        }
        if (r < 0) {
                if (!quiet)
                        fprintf(stderr, "Cannot open the modem port %s: %s\n", s->port, strerror(-r));
                return CTL_EXIT_NO_MODEM;
        }
        s->lost = false;
        r = session_init(s);
        if (r < 0) {
                if (!quiet)
                        fprintf(stderr, "The modem on %s does not answer: %s\n", s->port, strerror(-r));
                at_link_close(s->link);
                return CTL_EXIT_NO_MODEM;
        }
        return CTL_EXIT_OK;
}

int ctl_session_open(CtlSession *s, const Config *c) {
        int r;

        *s = (CtlSession){ .baud = c->modem_baud_rate, .flow_control = c->modem_flow_control };
        if (!config_has_modem(c)) {
                fprintf(stderr, "[Modem] Port=none: this gateway has no nRF91 (give --port to use one anyway).\n");
                return CTL_EXIT_NO_MODEM;
        }
        s->port = strdup(c->modem_port);
        if (!s->port)
                return CTL_EXIT_FAILED;
        r = sd_event_new(&s->event);
        if (r < 0) {
                fprintf(stderr, "Cannot create an event loop: %s\n", strerror(-r));
                return CTL_EXIT_FAILED;
        }
        return session_try_open(s, false);
}

void ctl_session_close(CtlSession *s) {
        s->link = at_link_free(s->link);
        s->event = sd_event_unref(s->event);
        free(s->port);
        s->port = NULL;
}

int ctl_session_recover(CtlSession *s, unsigned timeout_sec) {
        uint64_t end = now_usec(CLOCK_MONOTONIC) + (uint64_t) timeout_sec * 1000000;
        int r = CTL_EXIT_NO_MODEM;

        /* The port may come back under the same name (USB re-enumeration, a restarted emulator). */
        at_link_close(s->link);
        s->rebooted = false;
        while (now_usec(CLOCK_MONOTONIC) < end) {
                r = session_try_open(s, true);
                if (r == CTL_EXIT_OK)
                        return r;
                (void) usleep(200 * 1000);
        }
        return r;
}

int ctl_command(CtlSession *s, uint64_t timeout_usec, AtReply *reply, const char *format, ...) {
        _cleanup_free_ char *cmd = NULL;
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(&cmd, format, ap);
        va_end(ap);
        if (r < 0) {
                *reply = (AtReply){ .result = -ENOMEM };
                snprintf(reply->description, sizeof reply->description, "out of memory");
                return -ENOMEM;
        }
        if (s->lost || at_link_get_state(s->link) != AT_LINK_OPEN) {
                *reply = (AtReply){ .result = -ENOTCONN };
                snprintf(reply->description, sizeof reply->description, "the modem port is gone");
                return -ENOTCONN;
        }
        r = at_link_command(s->link, cmd, timeout_usec, reply);
        if (r == -ECONNRESET && s->lost)
                snprintf(reply->description, sizeof reply->description, "the modem port went away");
        return r;
}

const char *ctl_reply_find(const AtReply *r, const char *prefix) {
        for (char **l = r->lines; l && *l; l++)
                if (strncmp(*l, prefix, strlen(prefix)) == 0)
                        return *l;
        return NULL;
}

int ctl_read_uuid(CtlSession *s, char uuid[37]) {
        AtReply r;
        const char *line;
        int k;

        k = ctl_command(s, CTL_COMMAND_TIMEOUT_USEC, &r, "AT#XUUID");
        if (k >= 0) {
                line = ctl_reply_find(&r, "#XUUID:");
                k = line ? at_parse_xuuid(line, uuid) : -EBADMSG;
        }
        at_reply_done(&r);
        return k;
}
