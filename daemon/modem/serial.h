/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Opening the modem's serial device: raw termios, the configured baud rate,
 * optional RTS/CTS, TIOCEXCL, a lock file in the runtime directory so
 * that the daemon and nrfcloud-gatewayctl never share a port (TIOCEXCL alone
 * does not stop root), and the UUCP lock file that terminal programs honour.  Synchronous and short: these are open()/ioctl()
 * calls, never reads.
 */

#include <stdbool.h>
#include <sys/types.h>

#include "macro.h"

#define SERIAL_RUNTIME_DIR_DEFAULT "/run/nrfcloud-gateway"
/* Overrides the runtime directory of both the daemon and the tool (tests, unusual setups). */
#define SERIAL_RUNTIME_DIR_ENV "NRFCLOUD_GATEWAY_RUNTIME_DIR"

/* Where the UUCP-style LCK..<device> files go (FHS: /var/lock, a link to /run/lock). */
#define SERIAL_UUCP_LOCK_DIR_DEFAULT "/run/lock"
#define SERIAL_UUCP_LOCK_DIR_ENV "NRFCLOUD_GATEWAY_LOCK_DIR"

typedef struct SerialLock {
        int fd;
        char *path;
        char *uucp_path[2]; /* LCK..<device>, LCK..<name given>; NULL: not taken */
} SerialLock;

/* $NRFCLOUD_GATEWAY_RUNTIME_DIR, else $RUNTIME_DIRECTORY (systemd), else /run/nrfcloud-gateway. */
const char *serial_runtime_dir(void);

/* $NRFCLOUD_GATEWAY_LOCK_DIR, else /run/lock. */
const char *serial_uucp_lock_dir(void);

/*
 * Takes the locks for the device at path, whatever path names it (symlinks and
 * relative paths are resolved): <runtime dir>/modem-c<major>:<minor>.lock,
 * flock()ed and holding the owner's PID, and the UUCP lock files
 * <lock dir>/LCK..<device name> (and LCK..<name of path> for a symlink) in the
 * HDB format that picocom, minicom and cu honour.  -EBUSY if another process
 * holds one of them; then *ret_holder (if given) is that process's PID, or 0
 * if unknown.
 */
int serial_lock_acquire(const char *device, SerialLock **ret, pid_t *ret_holder);
SerialLock *serial_lock_release(SerialLock *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(SerialLock *, serial_lock_release);

/* Opens path O_RDWR|O_NOCTTY|O_NONBLOCK|O_CLOEXEC, TIOCEXCL, raw 8N1 at baud, RTS/CTS if flow. */
int serial_open(const char *path, unsigned baud, bool flow_control, int *ret_fd);

/* Whether baud is a rate termios can set. */
bool serial_baud_is_valid(unsigned baud);
