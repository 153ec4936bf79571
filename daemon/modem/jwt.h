/* SPDX-License-Identifier: MIT */
#pragma once

/* Decoding of modem-signed JWTs (nrf91-at.md §5.2): pure, for the cache and for "gatewayctl jwt --decode". */

#include <stddef.h>
#include <stdint.h>

/* Splits "<header>.<claims>.<signature>" and base64url-decodes the JSON parts (NUL-terminated copies). */
int jwt_decode(const char *jwt, char **ret_header, char **ret_claims, uint8_t **ret_sig, size_t *ret_sig_len);
/* The "exp" claim of a token; -ENOENT if absent. */
int jwt_get_exp(const char *jwt, int64_t *ret);
