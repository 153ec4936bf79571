/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * An AT engine on a serial port, on sd-event: the port's fd as an I/O source,
 * the engine's timer as a CLOCK_MONOTONIC source, and the engine's writer as
 * non-blocking write().  With reopen enabled (the daemon), a port that goes
 * away (EIO, HUP, read of 0) is reopened with capped exponential backoff and
 * full jitter, or, while the port does not exist, as soon as inotify sees it
 * appear (with a slow fallback timer); the loss and the recovery are logged
 * once each.  Without it
 * (nrfcloud-gatewayctl) a loss is reported and the link stays closed.
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "at-engine.h"
#include "macro.h"
#include "message-ids.h"

#define AT_LINK_REOPEN_MIN_USEC (200u * 1000u)
#define AT_LINK_REOPEN_MAX_USEC (10u * 1000u * 1000u)
#define AT_LINK_READ_MAX 4096u
/* An absent port is watched for (inotify); this timer only backs the watch up. */
#define AT_LINK_WATCH_FALLBACK_USEC (60ull * 1000u * 1000u)

typedef struct AtLink AtLink;

typedef enum AtLinkState {
        AT_LINK_CLOSED,  /* not started, or stopped */
        AT_LINK_OPEN,    /* the port is open */
        AT_LINK_WAITING, /* waiting to (re)open */
        _AT_LINK_STATE_MAX,
} AtLinkState;

typedef struct AtLinkCallbacks {
        void (*opened)(AtLink *l, void *userdata);
        void (*lost)(AtLink *l, int error, void *userdata);
} AtLinkCallbacks;

int at_link_new(sd_event *event, const char *path, unsigned baud, bool flow_control, AtLink **ret);
AtLink *at_link_free(AtLink *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(AtLink *, at_link_free);

void at_link_set_callbacks(AtLink *l, const AtLinkCallbacks *cb, void *userdata);

/* One attempt to lock and open the port; -EBUSY (with *ret_holder) when another process holds it. */
int at_link_open(AtLink *l, pid_t *ret_holder);
/* Opens now or keeps retrying with backoff until it can; reopens after losses. */
int at_link_start(AtLink *l);
/* Closes the port and the lock, fails pending commands with -ECANCELED.  Idempotent. */
void at_link_close(AtLink *l);

AtEngine *at_link_engine(AtLink *l);
AtLinkState at_link_get_state(const AtLink *l);
const char *at_link_path(const AtLink *l);
const char *at_link_state_to_string(AtLinkState s);

/*
 * For the command-line tool: sends cmd and runs the loop until its answer.
 * The reply holds copies; free with at_reply_done().
 */
typedef struct AtReply {
        int result;
        AtLineKind final;
        unsigned code;
        char **lines;
        char description[160];
} AtReply;

int at_link_command(AtLink *l, const char *cmd, uint64_t timeout_usec, AtReply *ret);
void at_reply_done(AtReply *r);
