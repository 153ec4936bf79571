/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "util.h"

/* Debian's libinih is built with INI_MAX_LINE=200 (the line plus "\n\0"). */
#define LINE_MAX_CHARS (INI_MAX_LINE - 2)
#define ERRORS_MAX 50
#define VALUE_SHOWN_MAX 64

typedef enum ConfigType {
        CONFIG_STRING,     /* free text, validated by a StringKind */
        CONFIG_PATH,       /* absolute path, need not exist */
        CONFIG_FILE,       /* readable regular file */
        CONFIG_SECRET_FILE, /* readable regular file, not readable by group/other */
        CONFIG_UINT,
        CONFIG_INT_OPT,    /* int + "is set" flag right after it */
        CONFIG_BOOL,
        CONFIG_ENUM,       /* stored as int */
        CONFIG_SIZE,       /* bytes, K/M/G suffixes */
        CONFIG_LOG_LEVEL,
        CONFIG_BAUD,
        _CONFIG_TYPE_MAX,
} ConfigType;

typedef enum StringKind {
        STRING_ANY,
        STRING_IDENTIFIER, /* MQTT client id / topic level: no '/', '+', '#', spaces */
        STRING_HOSTNAME,
        STRING_ADAPTER,    /* hciN */
        _STRING_KIND_MAX,
} StringKind;

typedef struct ConfigKey {
        const char *section;
        const char *name;
        ConfigType type;
        size_t offset;
        int64_t min, max;           /* CONFIG_UINT, CONFIG_INT_OPT, CONFIG_SIZE, string lengths */
        const char *const *choices; /* CONFIG_ENUM */
        StringKind kind;            /* CONFIG_STRING */
        const char *def;            /* NULL: unset */
        ConfigReload reload;
} ConfigKey;

static const char *const cloud_tls_table[_CLOUD_TLS_MAX + 1] = {
        [CLOUD_TLS_MODEM] = "modem",
        [CLOUD_TLS_HOST] = "host",
};
static const char *const notify_overflow_table[_NOTIFY_OVERFLOW_MAX + 1] = {
        [NOTIFY_OVERFLOW_QUEUE] = "queue",
        [NOTIFY_OVERFLOW_LATEST] = "latest",
};
static const char *const log_target_table[_LOG_TARGET_MAX + 1] = {
        [LOG_TARGET_AUTO] = "auto",
        [LOG_TARGET_JOURNAL] = "journal",
        [LOG_TARGET_CONSOLE] = "console",
};
/* Rates the nRF91 UARTs support (nRF9160 PS, UARTE BAUDRATE register). */
static const unsigned baud_rates[] = { 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1000000 };

const char *cloud_tls_to_string(CloudTls t) {
        return t >= 0 && t < _CLOUD_TLS_MAX ? cloud_tls_table[t] : NULL;
}
const char *log_target_to_string(LogTarget t) {
        return t >= 0 && t < _LOG_TARGET_MAX ? log_target_table[t] : NULL;
}

#define K(sec, key, typ, field, ...) \
        { .section = sec, .name = key, .type = typ, .offset = offsetof(Config, field), __VA_ARGS__ }
#define LIVE .reload = CONFIG_RELOAD_LIVE
#define RESTART .reload = CONFIG_RELOAD_RESTART

static const ConfigKey keys[] = {
        K("Gateway", "DeviceId", CONFIG_STRING, device_id, .kind = STRING_IDENTIFIER, .min = 1, .max = 128, RESTART),
        K("Gateway", "StateDirectory", CONFIG_PATH, state_directory, .def = "/var/lib/nrfcloud-gateway", RESTART),
        K("Gateway", "StopTimeoutSec", CONFIG_UINT, stop_timeout_sec, .min = 1, .max = 60, .def = "5", LIVE),

        K("Modem", "Port", CONFIG_PATH, modem_port, .def = "/dev/nrf91", RESTART),
        K("Modem", "BaudRate", CONFIG_BAUD, modem_baud_rate, .def = "115200", RESTART),
        K("Modem", "FlowControl", CONFIG_BOOL, modem_flow_control, .def = "yes", RESTART),
        K("Modem", "SecTag", CONFIG_UINT, sec_tag, .min = 0, .max = 2147483647, .def = "16842753", RESTART),
        K("Modem", "CommandTimeoutSec", CONFIG_UINT, modem_command_timeout_sec, .min = 1, .max = 300, .def = "10", LIVE),
        K("Modem", "LinkCheckSec", CONFIG_UINT, modem_link_check_sec, .min = 1, .max = 50, .def = "20", RESTART),

        K("Cloud", "TLS", CONFIG_ENUM, cloud_tls, .choices = cloud_tls_table, .def = "modem", RESTART),
        K("Cloud", "Host", CONFIG_STRING, cloud_host, .kind = STRING_HOSTNAME, .min = 1, .max = 253,
          .def = "mqtt.nrfcloud.com", RESTART),
        K("Cloud", "Port", CONFIG_UINT, cloud_port, .min = 1, .max = 65535, .def = "8883", RESTART),
        K("Cloud", "KeepAliveSec", CONFIG_UINT, keepalive_sec, .min = 30, .max = 1200, .def = "1200", RESTART),
        K("Cloud", "TeamId", CONFIG_STRING, team_id, .kind = STRING_IDENTIFIER, .min = 1, .max = 64, RESTART),
        K("Cloud", "CAFile", CONFIG_FILE, ca_file, RESTART),
        K("Cloud", "CertFile", CONFIG_FILE, cert_file, RESTART),
        K("Cloud", "KeyFile", CONFIG_SECRET_FILE, key_file, RESTART),
        K("Cloud", "ReconnectMinSec", CONFIG_UINT, reconnect_min_sec, .min = 1, .max = 3600, .def = "1", LIVE),
        K("Cloud", "ReconnectMaxSec", CONFIG_UINT, reconnect_max_sec, .min = 1, .max = 86400, .def = "300", LIVE),
        K("Cloud", "MaxIncomingBytes", CONFIG_SIZE, max_incoming_bytes, .min = 1024, .max = 131072, .def = "16K", LIVE),
        K("Cloud", "MaxPublishRate", CONFIG_UINT, max_publish_rate, .min = 0, .max = 100, .def = "90", RESTART),
        K("Cloud", "C2gRateMax", CONFIG_UINT, c2g_rate_max, .min = 1, .max = 10000, .def = "20", LIVE),
        K("Cloud", "RestHost", CONFIG_STRING, rest_host, .kind = STRING_HOSTNAME, .min = 1, .max = 253,
          .def = "api.nrfcloud.com", RESTART),
        K("Cloud", "RestPort", CONFIG_UINT, rest_port, .min = 1, .max = 65535, .def = "443", RESTART),
        K("Cloud", "RestCAFile", CONFIG_FILE, rest_ca_file, RESTART),
        K("Cloud", "LocationIntervalSec", CONFIG_UINT, location_interval_sec, .min = 0, .max = 604800, .def = "3600",
          RESTART),

        K("Bluetooth", "Adapter", CONFIG_STRING, adapter, .kind = STRING_ADAPTER, .min = 4, .max = 16, RESTART),
        K("Bluetooth", "AutoPowerOn", CONFIG_BOOL, auto_power_on, .def = "yes", LIVE),
        K("Bluetooth", "MaxConnections", CONFIG_UINT, max_connections, .min = 1, .max = 100, .def = "8", LIVE),
        K("Bluetooth", "MaxScanResults", CONFIG_UINT, max_scan_results, .min = 1, .max = 1000, .def = "100", LIVE),
        K("Bluetooth", "ScanRSSI", CONFIG_INT_OPT, scan_rssi, .min = -127, .max = 20, LIVE),
        K("Bluetooth", "AcquireNotify", CONFIG_BOOL, acquire_notify, .def = "no", RESTART),
        K("Bluetooth", "NotifyMinIntervalMs", CONFIG_UINT, notify_min_interval_ms, .min = 0, .max = 3600000, .def = "0", LIVE),
        K("Bluetooth", "NotifyOverflow", CONFIG_ENUM, notify_overflow, .choices = notify_overflow_table, .def = "queue",
          RESTART),
        K("Bluetooth", "BeaconReportIntervalSec", CONFIG_UINT, beacon_report_interval_sec, .min = 1, .max = 3600, .def = "10", LIVE),
        K("Bluetooth", "ConnectTimeoutSec", CONFIG_UINT, connect_timeout_sec, .min = 1, .max = 120, .def = "20", LIVE),
        K("Bluetooth", "Fota", CONFIG_BOOL, ble_fota, .def = "yes", RESTART),
        K("Bluetooth", "MaxParallelFota", CONFIG_UINT, max_parallel_fota, .min = 1, .max = 8, .def = "2", RESTART),
        K("Bluetooth", "FotaRebootTimeoutSec", CONFIG_UINT, fota_reboot_timeout_sec, .min = 5, .max = 3600, .def = "120",
          RESTART),

        K("Fota", "ApplyTimeoutSec", CONFIG_UINT, fota_apply_timeout_sec, .min = 30, .max = 86400, .def = "300", LIVE),

        K("Buffer", "MaxMessages", CONFIG_UINT, buffer_max_messages, .min = 16, .max = 10000000, .def = "100000", LIVE),
        K("Buffer", "MaxBytes", CONFIG_SIZE, buffer_max_bytes, .min = 65536, .max = INT64_C(4) << 30, .def = "64M", LIVE),
        K("Buffer", "SyncIntervalSec", CONFIG_UINT, buffer_sync_interval_sec, .min = 0, .max = 3600, .def = "1", LIVE),

        K("Log", "Level", CONFIG_LOG_LEVEL, log_level, .def = "info", LIVE),
        K("Log", "Target", CONFIG_ENUM, log_target, .choices = log_target_table, .def = "auto", LIVE),
};
#undef K
_Static_assert(ELEMENTSOF(keys) <= CONFIG_KEYS_MAX, "raise CONFIG_KEYS_MAX");

static const char *const sections[] = { "Gateway", "Modem", "Cloud", "Bluetooth", "Fota", "Buffer", "Log" };

static void *field_of(Config *c, const ConfigKey *k) {
        return (uint8_t *) c + k->offset;
}
static const void *cfield_of(const Config *c, const ConfigKey *k) {
        return (const uint8_t *) c + k->offset;
}

static bool string_kind_ok(StringKind kind, const char *v) {
        switch (kind) {
        case STRING_ANY:
                return true;
        case STRING_IDENTIFIER:
                for (const char *p = v; *p; p++)
                        if (!isalnum((unsigned char) *p) && !strchr("-_.:@", *p))
                                return false;
                return true;
        case STRING_HOSTNAME:
                for (const char *p = v; *p; p++)
                        if (!isalnum((unsigned char) *p) && *p != '-' && *p != '.')
                                return false;
                return v[0] != '-' && v[0] != '.';
        case STRING_ADAPTER: {
                if (strncmp(v, "hci", 3) != 0 || v[3] == '\0')
                        return false;
                for (const char *p = v + 3; *p; p++)
                        if (!isdigit((unsigned char) *p))
                                return false;
                return true;
        }
        case _STRING_KIND_MAX:
                break;
        }
        return false;
}

static const char *string_kind_reason(StringKind kind) {
        switch (kind) {
        case STRING_ANY:
                return "invalid text";
        case STRING_IDENTIFIER:
                return "may contain only letters, digits and - _ . : @";
        case STRING_HOSTNAME:
                return "not a valid host name";
        case STRING_ADAPTER:
                return "must be an adapter name such as hci0";
        case _STRING_KIND_MAX:
                break;
        }
        return "invalid";
}

static int check_readable_file(const char *v, bool secret, char **reason) {
        struct stat st;

        if (v[0] != '/')
                return asprintf(reason, "must be an absolute path"), -EINVAL;
        if (stat(v, &st) < 0)
                return asprintf(reason, "cannot access file: %s", strerror(errno)), -EINVAL;
        if (!S_ISREG(st.st_mode))
                return asprintf(reason, "not a regular file"), -EINVAL;
        if (access(v, R_OK) < 0)
                return asprintf(reason, "file is not readable: %s", strerror(errno)), -EINVAL;
        if (secret && (st.st_mode & 0077))
                return asprintf(reason, "private key is accessible by group or others (mode %04o); "
                                        "run chmod 600 on it",
                                (unsigned) (st.st_mode & 07777)),
                       -EPERM;
        return 0;
}

/* Parses v into the key's field.  On error, *reason says why in words. */
static int parse_value(Config *c, const ConfigKey *k, const char *v, char **reason) {
        void *f = field_of(c, k);
        uint64_t u;
        int64_t i;
        int r;

        switch (k->type) {
        case CONFIG_STRING:
        case CONFIG_PATH:
        case CONFIG_FILE:
        case CONFIG_SECRET_FILE: {
                char **s = f;
                if (v[0] == '\0') {
                        *s = (free(*s), NULL);
                        return 0;
                }
                if (k->type == CONFIG_STRING) {
                        size_t n = strlen(v);
                        if ((int64_t) n < k->min || (int64_t) n > k->max)
                                return asprintf(reason, "must be %" PRId64 " to %" PRId64 " characters long", k->min, k->max), -EINVAL;
                        if (!string_kind_ok(k->kind, v))
                                return asprintf(reason, "%s", string_kind_reason(k->kind)), -EINVAL;
                } else if (k->type == CONFIG_PATH) {
                        /* [Modem] Port=none: a gateway without an nRF91, on purpose. */
                        if (v[0] != '/' && !(k->offset == offsetof(Config, modem_port) && streq(v, CONFIG_MODEM_NONE)))
                                return asprintf(reason, "must be an absolute path"), -EINVAL;
                } else {
                        r = check_readable_file(v, k->type == CONFIG_SECRET_FILE, reason);
                        if (r < 0)
                                return r;
                }
                char *copy = strdup(v);
                if (!copy)
                        return -ENOMEM;
                free(*s);
                *s = copy;
                return 0;
        }
        case CONFIG_UINT:
                r = parse_uint64(v, &u);
                if (r < 0 || (int64_t) u < k->min || (int64_t) u > k->max || u > UINT_MAX)
                        return asprintf(reason, "must be between %" PRId64 " and %" PRId64, k->min, k->max), -ERANGE;
                *(unsigned *) f = (unsigned) u;
                return 0;
        case CONFIG_INT_OPT: {
                bool *set = (bool *) ((int *) f + 1);
                if (v[0] == '\0') {
                        *set = false;
                        return 0;
                }
                r = parse_int64(v, &i);
                if (r < 0 || i < k->min || i > k->max)
                        return asprintf(reason, "must be between %" PRId64 " and %" PRId64, k->min, k->max), -ERANGE;
                *(int *) f = (int) i;
                *set = true;
                return 0;
        }
        case CONFIG_BOOL:
                r = parse_boolean(v);
                if (r < 0)
                        return asprintf(reason, "must be a boolean (yes/no)"), -EINVAL;
                *(bool *) f = r;
                return 0;
        case CONFIG_ENUM:
                for (size_t j = 0; k->choices[j]; j++)
                        if (streq(v, k->choices[j])) {
                                *(int *) f = (int) j;
                                return 0;
                        }
                {
                        char list[128] = "";
                        for (size_t j = 0; k->choices[j]; j++)
                                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", j ? ", " : "", k->choices[j]);
                        return asprintf(reason, "must be one of: %s", list), -EINVAL;
                }
        case CONFIG_SIZE:
                r = parse_size(v, &u);
                if (r < 0 || (int64_t) u < k->min || (int64_t) u > k->max) {
                        char a[32], b[32];
                        return asprintf(reason, "must be a size between %s and %s (suffixes K, M, G)",
                                        format_size((uint64_t) k->min, a, sizeof a), format_size((uint64_t) k->max, b, sizeof b)),
                               -ERANGE;
                }
                *(uint64_t *) f = u;
                return 0;
        case CONFIG_LOG_LEVEL:
                r = log_level_from_string(v);
                if (r < 0)
                        return asprintf(reason, "must be one of: emerg, alert, crit, err, warning, notice, info, debug"), -EINVAL;
                *(int *) f = r;
                return 0;
        case CONFIG_BAUD:
                if (parse_uint64(v, &u) >= 0)
                        for (size_t j = 0; j < ELEMENTSOF(baud_rates); j++)
                                if (u == baud_rates[j]) {
                                        *(unsigned *) f = (unsigned) u;
                                        return 0;
                                }
                return asprintf(reason, "must be one of: 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1000000"), -EINVAL;
        case _CONFIG_TYPE_MAX:
                break;
        }
        return -EINVAL;
}

static void format_value(const Config *c, const ConfigKey *k, char *buf, size_t len) {
        const void *f = cfield_of(c, k);

        switch (k->type) {
        case CONFIG_STRING:
        case CONFIG_PATH:
        case CONFIG_FILE:
        case CONFIG_SECRET_FILE:
                snprintf(buf, len, "%s", strempty(*(char *const *) f));
                return;
        case CONFIG_UINT:
        case CONFIG_BAUD:
                snprintf(buf, len, "%u", *(const unsigned *) f);
                return;
        case CONFIG_INT_OPT:
                if (*(const bool *) ((const int *) f + 1))
                        snprintf(buf, len, "%d", *(const int *) f);
                else
                        snprintf(buf, len, "%s", "");
                return;
        case CONFIG_BOOL:
                snprintf(buf, len, "%s", *(const bool *) f ? "yes" : "no");
                return;
        case CONFIG_ENUM:
                snprintf(buf, len, "%s", k->choices[*(const int *) f]);
                return;
        case CONFIG_SIZE:
                format_size(*(const uint64_t *) f, buf, len);
                return;
        case CONFIG_LOG_LEVEL:
                snprintf(buf, len, "%s", strna(log_level_to_string(*(const int *) f)));
                return;
        case _CONFIG_TYPE_MAX:
                break;
        }
        snprintf(buf, len, "?");
}

static const ConfigKey *find_key(const char *section, const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (streq(keys[i].section, section) && streq(keys[i].name, name))
                        return &keys[i];
        return NULL;
}

static const char *suggest_key(const char *section, const char *name) {
        const char *best = NULL;
        size_t best_d = SIZE_MAX;

        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                if (!streq(keys[i].section, section))
                        continue;
                size_t d = string_distance(name, keys[i].name);
                if (d < best_d) {
                        best_d = d;
                        best = keys[i].name;
                }
        }
        /* A suggestion only when it is plausibly a typo, or a prefix. */
        if (best && (best_d <= MAX(2u, strlen(name) / 3) || strncasecmp(best, name, strlen(name)) == 0))
                return best;
        return NULL;
}

static const char *suggest_section(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(sections); i++)
                if (string_distance(name, sections[i]) <= 2)
                        return sections[i];
        return NULL;
}

static bool section_known(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(sections); i++)
                if (streq(name, sections[i]))
                        return true;
        return false;
}

typedef struct ParseContext {
        Config *config;
        const char *file;
        const char *p, *end;
        unsigned line;
        bool section_ok;
        char ***errors;
        unsigned n_errors;
        int error;
} ParseContext;

_printf_(2, 3) static void add_error(ParseContext *ctx, const char *format, ...) {
        va_list ap;
        char *s;

        if (ctx->error == 0)
                ctx->error = -EINVAL;
        if (++ctx->n_errors > ERRORS_MAX || !ctx->errors)
                return;
        va_start(ap, format);
        if (vasprintf(&s, format, ap) < 0)
                s = NULL;
        va_end(ap);
        if (!s) {
                ctx->error = -ENOMEM;
                return;
        }
        if (ctx->n_errors == ERRORS_MAX) {
                free(s);
                if (asprintf(&s, "%s: too many errors, the rest are not shown", ctx->file) < 0)
                        return;
        }
        if (strv_push(ctx->errors, s) < 0)
                ctx->error = -ENOMEM;
}

/* Shows a value in an error message: truncated, with control characters escaped. */
static const char *shown(const char *v, char *buf, size_t len) {
        size_t o = 0;
        for (const char *p = v; *p && o + 5 < len; p++) {
                if (p - v >= VALUE_SHOWN_MAX) {
                        memcpy(buf + o, "...", 3);
                        o += 3;
                        break;
                }
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        o += (size_t) snprintf(buf + o, len - o, "\\x%02x", (unsigned char) *p);
                else
                        buf[o++] = *p;
        }
        buf[o] = '\0';
        return buf;
}

static int handler(void *userdata, const char *section, const char *name, const char *value) {
        ParseContext *ctx = userdata;
        char vb[VALUE_SHOWN_MAX * 4 + 8];
        _cleanup_free_ char *reason = NULL;
        const ConfigKey *k;
        int r;

        if (section[0] == '\0') {
                add_error(ctx, "%s:%u: %s=%s: assignment outside of any section", ctx->file, ctx->line, name,
                          shown(value, vb, sizeof vb));
                return 1;
        }
        if (!ctx->section_ok) /* already reported on the section line */
                return 1;

        k = find_key(section, name);
        if (!k) {
                const char *s = suggest_key(section, name);
                if (s)
                        add_error(ctx, "%s:%u: [%s] %s=%s: unknown key; did you mean %s=?", ctx->file, ctx->line,
                                  section, name, shown(value, vb, sizeof vb), s);
                else
                        add_error(ctx, "%s:%u: [%s] %s=%s: unknown key", ctx->file, ctx->line, section, name,
                                  shown(value, vb, sizeof vb));
                return 1;
        }

        /* An empty assignment resets the key to its default, as in systemd. */
        r = parse_value(ctx->config, k, value[0] == '\0' ? strempty(k->def) : value, &reason);
        if (r == -ENOMEM) {
                ctx->error = -ENOMEM;
                return 0;
        }
        if (r < 0) {
                add_error(ctx, "%s:%u: [%s] %s=%s: %s", ctx->file, ctx->line, section, name,
                          shown(value, vb, sizeof vb), reason ? reason : "invalid value");
                return 1;
        }

        ConfigOrigin *o = &ctx->config->origin[k - keys];
        char *f = strdup(ctx->file);
        if (!f) {
                ctx->error = -ENOMEM;
                return 0;
        }
        free(o->file);
        o->file = f;
        o->line = ctx->line;
        return 1;
}

/*
 * libinih reads through this function, one line per call.  We count lines
 * here (Debian's libinih does not pass line numbers to the handler), reject
 * what libinih would silently mangle (over-long lines, which it truncates,
 * and indented lines, which it would take as continuations), and check
 * section headers and the presence of '='.  Rejected lines reach libinih as
 * empty lines, so that it never reports errors of its own.
 */
static char *reader(char *str, int num, void *stream) {
        ParseContext *ctx = stream;
        const char *line, *nl;
        size_t len;

        if (ctx->p >= ctx->end)
                return NULL;

        line = ctx->p;
        nl = memchr(line, '\n', (size_t) (ctx->end - line));
        len = nl ? (size_t) (nl - line) : (size_t) (ctx->end - line);
        ctx->p = nl ? nl + 1 : ctx->end;
        ctx->line++;

        if (len > 0 && line[len - 1] == '\r')
                len--;
        if (ctx->line == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
                line += 3;
                len -= 3;
        }
        /* Leading blanks are allowed and dropped, as systemd does. */
        while (len > 0 && (*line == ' ' || *line == '\t')) {
                line++;
                len--;
        }
        while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
                len--;

        if (memchr(line, '\0', len)) {
                add_error(ctx, "%s:%u: line contains a NUL byte", ctx->file, ctx->line);
                len = 0;
        } else if (len > (size_t) LINE_MAX_CHARS || len + 2 > (size_t) num) {
                add_error(ctx, "%s:%u: line is longer than %d characters", ctx->file, ctx->line, LINE_MAX_CHARS);
                len = 0;
        } else if (len == 0 || line[0] == '#' || line[0] == ';') {
                /* blank or comment */
        } else if (line[0] == '[') {
                const char *close = memchr(line, ']', len);
                if (!close || close == line + 1 || (size_t) (close - line) != len - 1) {
                        add_error(ctx, "%s:%u: %.*s: malformed section header, expected [Name]", ctx->file, ctx->line,
                                  (int) MIN(len, (size_t) VALUE_SHOWN_MAX), line);
                        ctx->section_ok = false;
                        len = 0;
                } else {
                        char name[LINE_MAX_CHARS + 1];
                        memcpy(name, line + 1, (size_t) (close - line - 1));
                        name[close - line - 1] = '\0';
                        ctx->section_ok = section_known(name);
                        if (!ctx->section_ok) {
                                const char *s = suggest_section(name);
                                add_error(ctx, "%s:%u: [%s]: unknown section%s%s%s", ctx->file, ctx->line, name,
                                          s ? "; did you mean [" : "", s ? s : "", s ? "]?" : "");
                        }
                }
        } else if (!memchr(line, '=', len)) {
                add_error(ctx, "%s:%u: %.*s: expected Key=Value", ctx->file, ctx->line,
                          (int) MIN(len, (size_t) VALUE_SHOWN_MAX), line);
                len = 0;
        } else if (memchr(line, ':', len) && (const char *) memchr(line, ':', len) < (const char *) memchr(line, '=', len)) {
                add_error(ctx, "%s:%u: %.*s: expected Key=Value", ctx->file, ctx->line,
                          (int) MIN(len, (size_t) VALUE_SHOWN_MAX), line);
                len = 0;
        } else if (line[0] == '=') {
                add_error(ctx, "%s:%u: assignment without a key name", ctx->file, ctx->line);
                len = 0;
        }

        memcpy(str, line, len);
        str[len] = '\n';
        str[len + 1] = '\0';
        return str;
}

int config_parse_string(Config *c, const char *file, const char *text, size_t len, char ***errors) {
        ParseContext ctx = {
                .config = c,
                .file = file,
                .p = text,
                .end = text + len,
                /* Keys before any section header are reported by the handler. */
                .section_ok = true,
                .errors = errors,
        };
        int r;

        r = ini_parse_stream(reader, &ctx, handler, &ctx);
        if (r == -2 || ctx.error == -ENOMEM)
                return -ENOMEM;
        if (r > 0 && ctx.error == 0) /* cannot happen with the reader's checks, but do not hide it */
                add_error(&ctx, "%s:%d: syntax error", file, r);
        return ctx.error;
}

int config_new(Config **ret) {
        _cleanup_(config_freep) Config *c = NULL;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                _cleanup_free_ char *reason = NULL;
                if (!keys[i].def)
                        continue;
                int r = parse_value(c, &keys[i], keys[i].def, &reason);
                if (r < 0) /* a broken built-in default is a programming error */
                        return r;
        }
        *ret = TAKE_PTR(c);
        return 0;
}

Config *config_free(Config *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                switch (keys[i].type) {
                case CONFIG_STRING:
                case CONFIG_PATH:
                case CONFIG_FILE:
                case CONFIG_SECRET_FILE:
                        free(*(char **) field_of(c, &keys[i]));
                        break;
                case CONFIG_UINT:
                case CONFIG_INT_OPT:
                case CONFIG_BOOL:
                case CONFIG_ENUM:
                case CONFIG_SIZE:
                case CONFIG_LOG_LEVEL:
                case CONFIG_BAUD:
                case _CONFIG_TYPE_MAX:
                        break;
                }
                free(c->origin[i].file);
        }
        free(c);
        return NULL;
}

static int where(const Config *c, const char *name, char *buf, size_t len) {
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (streq(keys[i].name, name) && c->origin[i].file)
                        return snprintf(buf, len, "%s:%u: ", c->origin[i].file, c->origin[i].line);
        return snprintf(buf, len, "%s", "");
}

bool config_has_modem(const Config *c) {
        return c->modem_port && !streq(c->modem_port, CONFIG_MODEM_NONE);
}

int config_verify(const Config *c, char ***errors) {
        char w[PATH_MAX + 32];
        int r = 0;

        if (c->cloud_tls == CLOUD_TLS_HOST) {
                static const struct {
                        const char *name;
                        size_t offset;
                } files[] = {
                        { "CAFile", offsetof(Config, ca_file) },
                        { "CertFile", offsetof(Config, cert_file) },
                        { "KeyFile", offsetof(Config, key_file) },
                };
                for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                        if (*(char *const *) ((const uint8_t *) c + files[i].offset))
                                continue;
                        where(c, "TLS", w, sizeof w);
                        if (errors && strv_extendf(errors, "%s[Cloud] TLS=host: requires [Cloud] %s=", w, files[i].name) < 0)
                                return -ENOMEM;
                        r = -EINVAL;
                }
        }
        if (c->cloud_tls == CLOUD_TLS_MODEM && !config_has_modem(c)) {
                where(c, "Port", w, sizeof w);
                if (errors && strv_extendf(errors, "%s[Modem] Port=none: [Cloud] TLS=modem needs the nRF91; use TLS=host",
                                           w) < 0)
                        return -ENOMEM;
                r = -EINVAL;
        }
        if (c->reconnect_min_sec > c->reconnect_max_sec) {
                where(c, "ReconnectMinSec", w, sizeof w);
                if (errors && strv_extendf(errors, "%s[Cloud] ReconnectMinSec=%u: must not exceed ReconnectMaxSec=%u", w,
                                           c->reconnect_min_sec, c->reconnect_max_sec) < 0)
                        return -ENOMEM;
                r = -EINVAL;
        }
        return r;
}

static int cmp_strings(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static int load_file(Config *c, const char *path, bool must_exist, char ***errors) {
        _cleanup_free_ char *text = NULL;
        size_t size;
        int r;

        r = read_full_file(path, CONFIG_FILE_MAX, &text, &size);
        if (r == -ENOENT && !must_exist)
                return 0;
        if (r < 0) {
                if (errors && strv_extendf(errors, "%s: %s", path,
                                           r == -EFBIG ? "file is larger than 1 MiB" : r == -EBADFD ? "not a regular file" : strerror(-r)) < 0)
                        return -ENOMEM;
                return r == -ENOMEM ? r : -EINVAL;
        }
        return config_parse_string(c, path, text, size, errors);
}

int config_load(const char *path, bool must_exist, Config **ret, char ***ret_errors) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ char *dir = NULL;
        char **names = NULL;
        size_t n_names = 0;
        DIR *d;
        int r, result = 0;

        r = config_new(&c);
        if (r < 0)
                return r;

        r = load_file(c, path, must_exist, ret_errors);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                result = r;

        /* Drop-ins: <path>.d/ *.conf in lexical order, later ones win. */
        if (asprintf(&dir, "%s.d", path) < 0)
                return -ENOMEM;
        d = opendir(dir);
        if (d) {
                struct dirent *de;
                while ((de = readdir(d))) {
                        size_t l = strlen(de->d_name);
                        if (de->d_name[0] == '.' || l < 6 || !streq(de->d_name + l - 5, ".conf"))
                                continue;
                        char **nn = realloc(names, sizeof(char *) * (n_names + 1));
                        if (!nn || !(nn[n_names] = strdup(de->d_name))) {
                                free(nn ? nn : names);
                                names = NULL;
                                n_names = 0;
                                closedir(d);
                                return -ENOMEM;
                        }
                        names = nn;
                        n_names++;
                }
                closedir(d);
                qsort(names, n_names, sizeof(char *), cmp_strings);
                for (size_t i = 0; i < n_names; i++) {
                        _cleanup_free_ char *p = NULL;
                        if (asprintf(&p, "%s/%s", dir, names[i]) < 0)
                                r = -ENOMEM;
                        else
                                r = load_file(c, p, true, ret_errors);
                        if (r == -ENOMEM)
                                result = r;
                        else if (r < 0 && result == 0)
                                result = r;
                }
                for (size_t i = 0; i < n_names; i++)
                        free(names[i]);
                free(names);
        } else if (errno != ENOENT && errno != ENOTDIR) {
                if (ret_errors && strv_extendf(ret_errors, "%s: %s", dir, strerror(errno)) < 0)
                        return -ENOMEM;
                result = -EINVAL;
        }
        if (result < 0)
                return result;

        r = config_verify(c, ret_errors);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(c);
        return 0;
}

void config_dump(const Config *c, FILE *f, bool with_origin) {
        const char *section = NULL;

        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                char v[PATH_MAX + 1];

                if (!section || !streq(section, keys[i].section)) {
                        fprintf(f, "%s[%s]\n", section ? "\n" : "", keys[i].section);
                        section = keys[i].section;
                }
                format_value(c, &keys[i], v, sizeof v);
                fprintf(f, "%s=%s", keys[i].name, v);
                if (with_origin) {
                        if (c->origin[i].file)
                                fprintf(f, " ; %s:%u", c->origin[i].file, c->origin[i].line);
                        else
                                fprintf(f, " ; default%s", v[0] ? "" : " (unset)");
                }
                fputc('\n', f);
        }
}

int config_copy_live(Config *dst, const Config *src) {
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                _cleanup_free_ char *reason = NULL;
                char v[PATH_MAX + 1];
                int r;

                if (keys[i].reload != CONFIG_RELOAD_LIVE)
                        continue;
                format_value(src, &keys[i], v, sizeof v);
                r = parse_value(dst, &keys[i], v, &reason);
                if (r < 0)
                        return r;
                free(dst->origin[i].file);
                dst->origin[i].file = src->origin[i].file ? strdup(src->origin[i].file) : NULL;
                if (src->origin[i].file && !dst->origin[i].file)
                        return -ENOMEM;
                dst->origin[i].line = src->origin[i].line;
        }
        return 0;
}

int config_apply_environment(Config *c) {
        const char *e = getenv("STATE_DIRECTORY");
        size_t i;

        /* systemd's StateDirectory= tells us where our state lives, unless the file said otherwise. */
        for (i = 0; i < ELEMENTSOF(keys); i++)
                if (keys[i].offset == offsetof(Config, state_directory))
                        break;
        if (!e || e[0] != '/' || c->origin[i].file)
                return 0;
        char *copy = strndup(e, strcspn(e, ":"));
        if (!copy)
                return -ENOMEM;
        free(c->state_directory);
        c->state_directory = copy;
        return 0;
}

unsigned config_diff(const Config *a, const Config *b, config_diff_cb cb, void *userdata) {
        unsigned n = 0;

        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                char va[PATH_MAX + 1], vb[PATH_MAX + 1];
                format_value(a, &keys[i], va, sizeof va);
                format_value(b, &keys[i], vb, sizeof vb);
                if (streq(va, vb))
                        continue;
                n++;
                if (cb)
                        cb(keys[i].section, keys[i].name, va, vb, keys[i].reload, userdata);
        }
        return n;
}
