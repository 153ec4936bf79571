/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/uio.h>
/* We send CODE_FILE/LINE/FUNC of the caller ourselves. */
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-journal.h>

#include "log.h"

#define GLOBAL_FIELDS_MAX 8
#define FIELD_MAX 256

static int max_level = LOG_INFO;
static LogTarget target = LOG_TARGET_CONSOLE;
static char *global_keys[GLOBAL_FIELDS_MAX];
static char *global_values[GLOBAL_FIELDS_MAX];

static const char *const level_names[] = {
        [LOG_EMERG] = "emerg",   [LOG_ALERT] = "alert",   [LOG_CRIT] = "crit",
        [LOG_ERR] = "err",       [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
        [LOG_INFO] = "info",     [LOG_DEBUG] = "debug",
};

int log_level_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
                if (streq(s, level_names[i]))
                        return (int) i;
        if (streq(s, "error"))
                return LOG_ERR;
        return -EINVAL;
}

const char *log_level_to_string(int level) {
        if (level < 0 || (size_t) level >= ELEMENTSOF(level_names))
                return NULL;
        return level_names[level];
}

/* True when stderr is the stream journald handed us (systemd.exec(5), JOURNAL_STREAM). */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

void log_setup(LogTarget t) {
        switch (t) {
        case LOG_TARGET_AUTO:
                target = stderr_is_journal() ? LOG_TARGET_JOURNAL : LOG_TARGET_CONSOLE;
                break;
        case LOG_TARGET_JOURNAL:
        case LOG_TARGET_CONSOLE:
                target = t;
                break;
        case _LOG_TARGET_MAX:
                target = LOG_TARGET_CONSOLE;
                break;
        }
}

LogTarget log_get_target(void) {
        return target;
}

bool log_is_journal(void) {
        return target == LOG_TARGET_JOURNAL;
}

void log_set_max_level(int level) {
        max_level = CLAMP(level, LOG_EMERG, LOG_DEBUG);
}

int log_get_max_level(void) {
        return max_level;
}

int log_set_global_field(const char *key, const char *value) {
        int free_slot = -1;

        for (int i = 0; i < GLOBAL_FIELDS_MAX; i++) {
                if (!global_keys[i]) {
                        if (free_slot < 0)
                                free_slot = i;
                        continue;
                }
                if (!streq(global_keys[i], key))
                        continue;
                if (!value) {
                        global_keys[i] = (free(global_keys[i]), NULL);
                        global_values[i] = (free(global_values[i]), NULL);
                        return 0;
                }
                char *v = strdup(value);
                if (!v)
                        return -ENOMEM;
                free(global_values[i]);
                global_values[i] = v;
                return 0;
        }
        if (!value)
                return 0;
        if (free_slot < 0)
                return -E2BIG;
        char *k = strdup(key), *v = strdup(value);
        if (!k || !v) {
                free(k);
                free(v);
                return -ENOMEM;
        }
        global_keys[free_slot] = k;
        global_values[free_slot] = v;
        return 0;
}

void log_reset_global_fields(void) {
        for (int i = 0; i < GLOBAL_FIELDS_MAX; i++) {
                global_keys[i] = (free(global_keys[i]), NULL);
                global_values[i] = (free(global_values[i]), NULL);
        }
}

static void write_journal(int level, int error, const char *file, int line, const char *func,
                          const LogField *fields, const char *msg) {
        enum { FIXED = 7, MAX_FIELDS = 16 };
        char buf[FIXED + GLOBAL_FIELDS_MAX + MAX_FIELDS][FIELD_MAX];
        struct iovec iov[FIXED + 1 + GLOBAL_FIELDS_MAX + MAX_FIELDS];
        size_t n = 0, b = 0;
        _cleanup_free_ char *m = NULL;

        /* The message may be longer than a field buffer. */
        if (asprintf(&m, "MESSAGE=%s", msg) < 0)
                return;
        iov[n++] = (struct iovec){ .iov_base = m, .iov_len = strlen(m) };

#define ADD(...)                                                                   \
        do {                                                                       \
                int _k = snprintf(buf[b], FIELD_MAX, __VA_ARGS__);                 \
                iov[n++] = (struct iovec){ .iov_base = buf[b],                      \
                                           .iov_len = (size_t) MIN(_k, FIELD_MAX - 1) }; \
                b++;                                                               \
        } while (0)

        ADD("PRIORITY=%d", level);
        ADD("CODE_FILE=%s", file);
        ADD("CODE_LINE=%d", line);
        ADD("CODE_FUNC=%s", func);
        ADD("SYSLOG_IDENTIFIER=%s", program_invocation_short_name);
        if (error != 0)
                ADD("ERRNO=%d", error < 0 ? -error : error);
        for (int i = 0; i < GLOBAL_FIELDS_MAX; i++)
                if (global_keys[i])
                        ADD("%s=%s", global_keys[i], global_values[i]);
        for (size_t i = 0; fields && fields[i].key && i < MAX_FIELDS; i++)
                if (fields[i].value)
                        ADD("%s=%s", fields[i].key, fields[i].value);
#undef ADD

        if (sd_journal_sendv(iov, (int) n) < 0)
                fprintf(stderr, "<%d>%s\n", level, msg);
}

int log_internal(int level, int error, const char *file, int line, const char *func,
                 const LogField *fields, const char *format, ...) {
        char msg[2048];
        va_list ap;
        int saved = errno;

        if (level > max_level)
                return error != 0 ? negative_errno(error) : 0;

        /* Make %m print the error we were given. */
        errno = error < 0 ? -error : error;
        va_start(ap, format);
        (void) vsnprintf(msg, sizeof msg, format, ap);
        va_end(ap);

        if (target == LOG_TARGET_JOURNAL)
                write_journal(level, error, file, line, func, fields, msg);
        else {
                /* Lines on a console keep stderr's own order; fields are for the journal. */
                fprintf(stderr, "%s: %s\n", level <= LOG_ERR ? "error" : strna(log_level_to_string(level)), msg);
                fflush(stderr);
        }

        errno = saved;
        return error != 0 ? negative_errno(error) : 0;
}
