/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-event.h>

#include "outbox.h"

/*
 * StateDirectory= and the outbox in it hold what the gateway still has to
 * send; they are not trusted as found (outside systemd nobody else checks
 * them).  Before use, as systemd does for its own StateDirectory=:
 *
 *   - the directory is created 0700 if missing;
 *   - the directory, <dir>/outbox and every entry in it must be owned by the
 *     daemon's user, and no entry may be a symbolic link or a special file:
 *     anything else is refused (-EPERM) with an error naming it;
 *   - what the daemon owns but others could write (a directory writable by
 *     group or other, an outbox file accessible by them) is fixed (0700,
 *     0600) with a notice.
 */

int state_directory_prepare(const char *path);

/* The same checks for the runtime directory, where the outbox keeps its runtime folder. */
int runtime_directory_prepare(const char *path);

/*
 * The daemon's runtime directory: $NRFCLOUD_GATEWAY_RUNTIME_DIR, else
 * systemd's $RUNTIME_DIRECTORY (RuntimeDirectory=).  NULL when neither is
 * set: the outbox then keeps everything in the state directory.
 */
const char *runtime_directory(void);

/*
 * Opens the outbox in dir (<StateDirectory>/outbox) with its runtime folder
 * <runtime_directory()>/outbox, after runtime_directory_prepare(), and drives
 * its sync timer on event.
 */
int state_directory_open_outbox(sd_event *event, const char *dir, const OutboxLimits *limits, Outbox **ret);
