/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "bt-id.h"

/* The Bluetooth base UUID after its leading 32-bit field. */
static const char base_uuid_tail[] = "00001000800000805F9B34FB";

static bool hex_run(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!isxdigit((unsigned char) s[i]))
                        return false;
        return true;
}

bool bt_address_is_valid(const char *s) {
        if (!s || strnlen(s, BT_ADDR_STR_MAX) != BT_ADDR_STR_MAX - 1)
                return false;
        for (size_t i = 0; i < BT_ADDR_STR_MAX - 1; i++) {
                if (i % 3 == 2) {
                        if (s[i] != ':')
                                return false;
                } else if (!isxdigit((unsigned char) s[i]))
                        return false;
        }
        return true;
}

int bt_address_normalize(const char *s, char ret[static BT_ADDR_STR_MAX]) {
        if (!bt_address_is_valid(s))
                return -EINVAL;
        for (size_t i = 0; i < BT_ADDR_STR_MAX - 1; i++)
                ret[i] = (char) toupper((unsigned char) s[i]);
        ret[BT_ADDR_STR_MAX - 1] = '\0';
        return 0;
}

int bt_uuid_normalize(const char *s, char ret[static BT_UUID_STR_MAX]) {
        char hex[BT_UUID_STR_MAX];
        size_t len, n = 0;

        if (!s)
                return -EINVAL;
        len = strnlen(s, 40);
        if (len == 36) {
                for (size_t i = 0; i < len; i++) {
                        if (i == 8 || i == 13 || i == 18 || i == 23) {
                                if (s[i] != '-')
                                        return -EINVAL;
                                continue;
                        }
                        hex[n++] = s[i];
                }
        } else if (len == 4 || len == 8 || len == 32) {
                memcpy(hex, s, len);
                n = len;
        } else
                return -EINVAL;
        if (!hex_run(hex, n))
                return -EINVAL;
        hex[n] = '\0';
        for (size_t i = 0; i < n; i++)
                hex[i] = (char) toupper((unsigned char) hex[i]);

        if (n == 8) {
                /* A 32-bit UUID is the base UUID's first field. */
                memcpy(hex + 8, base_uuid_tail, sizeof base_uuid_tail);
                n = 32;
        }
        if (n == 32 && memcmp(hex, "0000", 4) == 0 && strcmp(hex + 8, base_uuid_tail) == 0) {
                memmove(hex, hex + 4, 4);
                hex[4] = '\0';
                n = 4;
        }
        memcpy(ret, hex, n + 1);
        return 0;
}
