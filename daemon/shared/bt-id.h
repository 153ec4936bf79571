/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

/* Bluetooth device addresses and attribute UUIDs in the one spelling the
 * gateway uses everywhere: in the cloud's messages, in the BLE layer and in
 * the D-Bus API.
 *
 *   address  "AA:BB:CC:DD:EE:FF", upper case;
 *   UUID     4 hex digits for a 16-bit SIG UUID, else 32 hex digits without
 *            dashes, upper case.
 *
 * Accepted input: an address in either case; a UUID as 4 hex digits (16-bit),
 * 8 hex digits (32-bit, Core Vol 3 Part B §2.5.1), or 128 bits with or without
 * the 8-4-4-4-12 dashes, in either case.  A UUID built on the Bluetooth base
 * UUID collapses to its 16-bit form when its top 16 bits are zero; a 32-bit
 * UUID with non-zero top bits is expanded onto the base UUID. */

#define BT_ADDR_STR_MAX 18 /* "AA:BB:CC:DD:EE:FF" + NUL */
#define BT_UUID_STR_MAX 33 /* 32 hex digits + NUL */

bool bt_address_is_valid(const char *s);

/* On error (-EINVAL) ret is left untouched. */
int bt_address_normalize(const char *s, char ret[static BT_ADDR_STR_MAX]);
int bt_uuid_normalize(const char *s, char ret[static BT_UUID_STR_MAX]);
