/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-bus.h>

/*
 * Maps a D-Bus error from BlueZ (spec §1.4, src/error.c) to a negative errno:
 *   InvalidArguments → -EINVAL, NotReady → -EAGAIN, InProgress → -EINPROGRESS,
 *   AlreadyExists → -EEXIST, NotSupported → -EOPNOTSUPP, NotConnected → -ENOTCONN,
 *   AlreadyConnected → -EISCONN, NotAvailable → -ENODATA, DoesNotExist → -ENOENT,
 *   NotAuthorized → -EACCES, NotPermitted → -EPERM, NoSuchAdapter → -ENODEV,
 *   AgentNotAvailable → -ENOKEY, Failed → -EIO (-EALREADY for "Operation
 *   already in progress", -ECONNREFUSED/-ETIMEDOUT/-ECONNABORTED for the
 *   le-/br-connection-* strings);
 *   D-Bus NoReply/Timeout → -ETIMEDOUT, ServiceUnknown/NameHasNoOwner →
 *   -EHOSTDOWN, UnknownObject/UnknownMethod/UnknownInterface → -ENOENT.
 * Anything else: sd_bus_error_get_errno(), or -EIO.
 * *ret_att gets the ATT error code of "Operation failed with ATT error: 0xNN", else -1.
 */
int ble_error_from_dbus(const sd_bus_error *e, int *ret_att);

/* True for both forms of "a connect is already pending" (spec §1.2, §1.5.5). */
int ble_error_is_connect_in_progress(const sd_bus_error *e);
