/* SPDX-License-Identifier: MIT */
#pragma once

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
