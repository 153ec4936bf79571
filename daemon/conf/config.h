/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The daemon's configuration: gateway.conf plus gateway.conf.d/ drop-ins,
 * INI syntax read with libinih.  The schema is a table (config.c): each key
 * has a type, a default, a range or a set of allowed values, and says whether
 * a SIGHUP reload can apply it.  Pure: no logging, no loop; problems are
 * returned as human-readable lines "file:line: [Section] Key=value: reason".
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "log.h"

#include "version.h"

/* /etc/nrfcloud-gateway/gateway.conf when installed with prefix /usr */
#define CONFIG_DEFAULT_PATH NRFGW_SYSCONFDIR "/nrfcloud-gateway/gateway.conf"
#define CONFIG_FILE_MAX (1024 * 1024)
#define CONFIG_KEYS_MAX 64
#define NRF_CLOUD_SEC_TAG_DEFAULT 16842753u

typedef enum CloudTls {
        CLOUD_TLS_MODEM,
        CLOUD_TLS_HOST,
        _CLOUD_TLS_MAX,
} CloudTls;

/* [Bluetooth] NotifyOverflow=: what the outbox does with a notification whose predecessor from the
 * same characteristic is still unsent. */
typedef enum NotifyOverflow {
        NOTIFY_OVERFLOW_QUEUE,  /* keeps both */
        NOTIFY_OVERFLOW_LATEST, /* the new value replaces the old one */
        _NOTIFY_OVERFLOW_MAX,
} NotifyOverflow;

typedef struct ConfigOrigin {
        char *file; /* NULL: built-in default */
        unsigned line;
} ConfigOrigin;

typedef struct Config {
        /* [Gateway] */
        char *device_id; /* NULL: the modem's device UUID */
        char *state_directory;
        unsigned stop_timeout_sec;

        /* [Modem] */
        char *modem_port;
        unsigned modem_baud_rate;
        bool modem_flow_control;
        unsigned sec_tag;
        unsigned modem_command_timeout_sec;
        unsigned modem_link_check_sec;

        /* [Cloud] */
        CloudTls cloud_tls;
        char *cloud_host;
        unsigned cloud_port;
        unsigned keepalive_sec;
        char *team_id; /* NULL: learnt from the shadow */
        char *ca_file;
        char *cert_file;
        char *key_file;
        unsigned reconnect_min_sec;
        unsigned reconnect_max_sec;
        uint64_t max_incoming_bytes;
        unsigned max_publish_rate; /* publishes per second, all classes (the cloud allows 100); 0: no limit */
        unsigned c2g_rate_max; /* c2g operations run per second */
        char *rest_host;       /* nRF Cloud's REST API (docs/location.md) */
        unsigned rest_port;
        char *rest_ca_file;    /* NULL: the system's trusted CAs */
        unsigned location_interval_sec; /* 0: no location requests */

        /* [Bluetooth] */
        char *adapter; /* NULL: the first adapter */
        bool auto_power_on;
        unsigned max_connections;
        unsigned max_scan_results;
        int scan_rssi;
        bool scan_rssi_set;
        bool acquire_notify;
        unsigned notify_min_interval_ms;
        NotifyOverflow notify_overflow;
        unsigned connect_timeout_sec;
        unsigned beacon_report_interval_sec; /* one scan_result per watched beacon per interval at most */
        bool ble_fota;                /* FOTA of BLE devices through the nRF91's downloads */
        unsigned max_parallel_fota;   /* BLE devices updated at once */
        unsigned fota_reboot_timeout_sec; /* a BLE device back after the reset of its update, else FAILED */

        /* [Fota] */
        unsigned fota_apply_timeout_sec; /* reset to the new firmware's answer, else "not validated" */

        /* [Buffer] */
        unsigned buffer_max_messages;
        uint64_t buffer_max_bytes;
        unsigned buffer_sync_interval_sec; /* what a power cut may lose; 0: every message synced */

        /* [Log] */
        int log_level;
        LogTarget log_target;

        ConfigOrigin origin[CONFIG_KEYS_MAX];
} Config;

/* A configuration holding every default. */
int config_new(Config **ret);
Config *config_free(Config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Config *, config_free);

/*
 * Loads path and then path.d/ *.conf (lexical order).  A missing main file is
 * an error only if must_exist.  On failure returns -EINVAL (or another
 * negative errno for I/O) and, if ret_errors is given, one line per problem.
 */
int config_load(const char *path, bool must_exist, Config **ret, char ***ret_errors);

/* Applies one file's text on top of c.  Used by config_load() and the fuzzer. */
int config_parse_string(Config *c, const char *file, const char *text, size_t len, char ***errors);

/* Checks rules that span keys (TLS=host needs the three files, ...). */
/* [Modem] Port=none: the gateway has no nRF91 and opens no serial port. */
#define CONFIG_MODEM_NONE "none"
bool config_has_modem(const Config *c);
int config_verify(const Config *c, char ***errors);

/* Writes the effective configuration in the file's own syntax. */
void config_dump(const Config *c, FILE *f, bool with_origin);

typedef enum ConfigReload {
        CONFIG_RELOAD_LIVE,    /* SIGHUP applies it */
        CONFIG_RELOAD_RESTART, /* needs a restart of the daemon */
        _CONFIG_RELOAD_MAX,
} ConfigReload;

/* Calls cb for each key whose value differs between a and b. */
typedef void (*config_diff_cb)(const char *section, const char *key, const char *old_value,
                               const char *new_value, ConfigReload reload, void *userdata);
unsigned config_diff(const Config *a, const Config *b, config_diff_cb cb, void *userdata);

/* Copies the keys that a reload may change from src into dst. */
int config_copy_live(Config *dst, const Config *src);
/* Takes StateDirectory from $STATE_DIRECTORY (systemd) unless a file set it. */
int config_apply_environment(Config *c);

const char *cloud_tls_to_string(CloudTls t);
const char *log_target_to_string(LogTarget t);
