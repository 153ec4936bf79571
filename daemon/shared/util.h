/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Edit distance between two short strings (case-insensitive), for "did you mean". */
size_t string_distance(const char *a, const char *b);

/* Strict number parsing: the whole string, no sign surprises, ranges checked by callers. */
int parse_uint64(const char *s, uint64_t *ret);
int parse_int64(const char *s, int64_t *ret);
/* yes/no, true/false, on/off, 1/0 */
int parse_boolean(const char *s);
/* The value of one hex digit (either case), or -EINVAL. */
int unhexchar(char c);
/* "512", "64K", "8M", "1G" (binary multiples). */
int parse_size(const char *s, uint64_t *ret);
const char *format_size(uint64_t bytes, char *buf, size_t len);

/* Reads a whole regular file (also /proc files) of at most max bytes, NUL-terminated. */
int read_full_file(const char *path, size_t max, char **ret, size_t *ret_size);

/* A NULL-terminated string vector. */
char **strv_free(char **l);
size_t strv_length(char *const *l);
int strv_push(char ***l, char *value); /* takes ownership, frees it on failure */
int strv_extendf(char ***l, const char *format, ...) __attribute__((format(printf, 2, 3)));

/* Monotonic/boottime clock in microseconds. */
uint64_t now_usec(int clock_id);
