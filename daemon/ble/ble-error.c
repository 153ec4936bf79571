/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "ble-error.h"
#include "macro.h"

static const struct {
        const char *name;
        int error;
} error_table[] = {
        { "org.bluez.Error.InvalidArguments", -EINVAL },
        { "org.bluez.Error.NotReady", -EAGAIN },
        { "org.bluez.Error.InProgress", -EINPROGRESS },
        { "org.bluez.Error.AlreadyExists", -EEXIST },
        { "org.bluez.Error.NotSupported", -EOPNOTSUPP },
        { "org.bluez.Error.NotConnected", -ENOTCONN },
        { "org.bluez.Error.AlreadyConnected", -EISCONN },
        { "org.bluez.Error.NotAvailable", -ENODATA },
        { "org.bluez.Error.DoesNotExist", -ENOENT },
        { "org.bluez.Error.NotAuthorized", -EACCES },
        { "org.bluez.Error.NotPermitted", -EPERM },
        { "org.bluez.Error.NoSuchAdapter", -ENODEV },
        { "org.bluez.Error.AgentNotAvailable", -ENOKEY },
        { "org.freedesktop.DBus.Error.NoReply", -ETIMEDOUT },
        { "org.freedesktop.DBus.Error.Timeout", -ETIMEDOUT },
        { "org.freedesktop.DBus.Error.TimedOut", -ETIMEDOUT },
        { "org.freedesktop.DBus.Error.ServiceUnknown", -EHOSTDOWN },
        { "org.freedesktop.DBus.Error.NameHasNoOwner", -EHOSTDOWN },
        { "org.freedesktop.DBus.Error.UnknownObject", -ENOENT },
        { "org.freedesktop.DBus.Error.UnknownMethod", -ENOENT },
        { "org.freedesktop.DBus.Error.UnknownInterface", -ENOENT },
};

/* src/error.h ERR_LE_CONN_* / ERR_BREDR_CONN_* strings that carry a better errno than -EIO. */
static const struct {
        const char *prefix;
        int error;
} failed_table[] = {
        { "Operation already in progress", -EALREADY },
        { "le-connection-timeout", -ETIMEDOUT },
        { "br-connection-timeout", -ETIMEDOUT },
        { "le-connection-refused", -ECONNREFUSED },
        { "br-connection-refused", -ECONNREFUSED },
        { "le-connection-abort-by-local", -ECONNABORTED },
        { "le-connection-abort-by-remote", -ECONNABORTED },
        { "br-connection-aborted-by-local", -ECONNABORTED },
        { "br-connection-aborted-by-remote", -ECONNABORTED },
        { "Not connected", -ENOTCONN },
};

static int parse_att(const char *msg) {
        static const char prefix[] = "Operation failed with ATT error: 0x";
        int v = 0;

        if (!msg || strncmp(msg, prefix, strlen(prefix)) != 0)
                return -1;
        msg += strlen(prefix);
        for (int i = 0; i < 2; i++) {
                char c = msg[i];
                int d = c >= '0' && c <= '9' ? c - '0'
                      : c >= 'a' && c <= 'f' ? c - 'a' + 10
                      : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                             : -1;
                if (d < 0)
                        return -1;
                v = v * 16 + d;
        }
        return msg[2] == '\0' ? v : -1;
}

int ble_error_from_dbus(const sd_bus_error *e, int *ret_att) {
        int att = -1, r = -EIO;

        if (!e || !e->name) {
                if (ret_att)
                        *ret_att = -1;
                return -EIO;
        }
        if (streq(e->name, "org.bluez.Error.Failed")) {
                att = parse_att(e->message);
                for (size_t i = 0; i < ELEMENTSOF(failed_table); i++)
                        if (e->message && strncmp(e->message, failed_table[i].prefix, strlen(failed_table[i].prefix)) == 0) {
                                r = failed_table[i].error;
                                break;
                        }
        } else {
                size_t i;
                for (i = 0; i < ELEMENTSOF(error_table); i++)
                        if (streq(e->name, error_table[i].name)) {
                                r = error_table[i].error;
                                break;
                        }
                if (i == ELEMENTSOF(error_table)) {
                        int q = sd_bus_error_get_errno(e);
                        r = q > 0 ? -q : -EIO;
                }
        }
        if (ret_att)
                *ret_att = att;
        return r;
}

int ble_error_is_connect_in_progress(const sd_bus_error *e) {
        if (!e || !e->name)
                return 0;
        if (streq(e->name, "org.bluez.Error.InProgress"))
                return 1;
        return streq(e->name, "org.bluez.Error.Failed") && e->message &&
               strncmp(e->message, "Operation already in progress", 29) == 0;
}
