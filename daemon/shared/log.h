/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Logging.  Under journald (JOURNAL_STREAM matches our stderr) every record is
 * a native journal entry with MESSAGE, PRIORITY, CODE_FILE/LINE/FUNC, ERRNO
 * and the object fields given; otherwise a plain "<level>: message" line goes
 * to stderr.  Fields that describe the whole process (GATEWAY_ID=) are set
 * once with log_set_global_field() and ride along on every record.
 */

#include <stdbool.h>
#include <syslog.h>

#include "macro.h"

typedef struct LogField {
        const char *key;   /* e.g. "BT_ADDR" */
        const char *value; /* NULL: the field is skipped */
} LogField;

/* A NULL-terminated compound literal of fields: LOG_FIELDS({"BT_ADDR", a}) */
#define LOG_FIELDS(...) ((const LogField[]){ __VA_ARGS__, { NULL, NULL } })

typedef enum LogTarget {
        LOG_TARGET_AUTO,
        LOG_TARGET_JOURNAL,
        LOG_TARGET_CONSOLE,
        _LOG_TARGET_MAX,
} LogTarget;

void log_setup(LogTarget target);
LogTarget log_get_target(void);
bool log_is_journal(void);
void log_set_max_level(int level);
int log_get_max_level(void);
/* Sets or (value NULL) removes a field sent with every record. */
int log_set_global_field(const char *key, const char *value);
void log_reset_global_fields(void);

int log_level_from_string(const char *s);
const char *log_level_to_string(int level);

/* Returns negative_errno(error) when error != 0, else 0. */
int log_internal(int level, int error, const char *file, int line, const char *func,
                 const LogField *fields, const char *format, ...) _printf_(7, 8);

#define log_full_fields_errno(level, error, fields, ...)                                        \
        ({                                                                                        \
                int _l_ = (level), _e_ = (error);                                                 \
                (log_get_max_level() >= _l_)                                                      \
                        ? log_internal(_l_, _e_, __FILE__, __LINE__, __func__, (fields), __VA_ARGS__) \
                        : (_e_ != 0 ? negative_errno(_e_) : 0);                                   \
        })

#define log_full_errno(level, error, ...) log_full_fields_errno(level, error, NULL, __VA_ARGS__)
#define log_full(level, ...) (void) log_full_errno(level, 0, __VA_ARGS__)

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(e, ...) log_full_errno(LOG_DEBUG, e, __VA_ARGS__)
#define log_info_errno(e, ...) log_full_errno(LOG_INFO, e, __VA_ARGS__)
#define log_notice_errno(e, ...) log_full_errno(LOG_NOTICE, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_ERR, e, __VA_ARGS__)

/* With object fields: log_fields(LOG_INFO, LOG_FIELDS({"BT_ADDR", a}), "Connected") */
#define log_fields(level, fields, ...) (void) log_full_fields_errno(level, 0, fields, __VA_ARGS__)
#define log_fields_errno(level, error, fields, ...) log_full_fields_errno(level, error, fields, __VA_ARGS__)
