/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * nrfcloud-gatewayctl: shared pieces of the subcommands.  The tool works
 * directly on the modem port, with the same AT engine as the daemon, run
 * synchronously on a private sd-event loop.
 */

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include <systemd/sd-event.h>

#include "at-link.h"
#include "config.h"

/* Exit codes, as listed in nrfcloud-gatewayctl(1). */
enum {
        CTL_EXIT_OK = 0,
        CTL_EXIT_FAILED = 1,   /* the operation failed: modem error, I/O error, OpenSSL error */
        CTL_EXIT_USAGE = 2,    /* invalid command line */
        CTL_EXIT_BUSY = 3,     /* the port is held by another process, usually the daemon */
        CTL_EXIT_NO_MODEM = 4, /* the port cannot be opened or the modem does not answer */
        CTL_EXIT_EXISTS = 5,   /* the security tag already holds a key; --force replaces it */
        CTL_EXIT_CONFIG = 6,   /* the configuration file is invalid */
        CTL_EXIT_VERIFY = 7,   /* a check failed: COSE payload, CSR, or SHA-256 read back */
        CTL_EXIT_NOT_RUNNING = 8, /* status, devices: the daemon does not answer on the system bus */
        CTL_EXIT_DENIED = 9,      /* the daemon refused a method call: only root may call them */
};

#define CTL_COMMAND_TIMEOUT_USEC (10u * 1000u * 1000u)
#define CTL_KEYGEN_TIMEOUT_USEC (60u * 1000u * 1000u)
/* How long opening a session probes with "AT" before it says the modem does not answer. */
#define CTL_PROBE_TIMEOUT_USEC (5u * 1000u * 1000u)

typedef struct CtlOptions {
        const char *config_path;
        bool config_given;
        const char *port;
        unsigned baud;          /* 0: from the configuration */
        Config *config;         /* loaded configuration with the overrides applied */
} CtlOptions;

typedef struct CtlSession {
        sd_event *event;
        AtLink *link;
        char *port;
        unsigned baud;
        bool flow_control;
        bool rebooted; /* "Ready" seen: the firmware restarted */
        bool lost;     /* the port went away */
} CtlSession;

/* The parsed command line of every verb. */
typedef struct Args {
        bool show_personal;
        const char *out_dir;
        const char *cn;
        unsigned days;
        const char *ca_cert, *ca_key, *root_ca;
        bool sec_tag_set;
        unsigned sec_tag;
        const char *csv, *subtype, *tags, *fw_types;
        bool force;
        unsigned exp;
        const char *aud;
        bool decode;
        const char *challenge;
        const char *state_dir;
        bool json;
        char **positional;
} Args;


extern Args ctl_args;

/* Opens, locks and initialises (AT, ATE0, AT+CMEE=1); prints what went wrong. Returns a CTL_EXIT_ code. */
int ctl_session_open(CtlSession *s, const Config *c);
void ctl_session_close(CtlSession *s);
/* After a loss or a reboot: waits up to timeout_sec for the modem to answer again. 0 or a CTL_EXIT_ code. */
int ctl_session_recover(CtlSession *s, unsigned timeout_sec);

/* Sends a formatted command and waits for the answer; returns the AtReply result. */
int ctl_command(CtlSession *s, uint64_t timeout_usec, AtReply *reply, const char *format, ...)
        __attribute__((format(printf, 4, 5)));
/* The first line of the reply that parse() accepts. */
const char *ctl_reply_find(const AtReply *r, const char *prefix);

/* The device id: [Gateway] DeviceId= or the modem's UUID (#XUUID). */
int ctl_read_uuid(CtlSession *s, char uuid[37]);

/* The embedded Amazon Root CA 1 PEM. */
extern const char ctl_amazon_root_ca_1[];

int verb_identity(int argc, char *argv[], CtlOptions *o);
int verb_ca(int argc, char *argv[], CtlOptions *o);
int verb_provision(int argc, char *argv[], CtlOptions *o);
int verb_jwt(int argc, char *argv[], CtlOptions *o);
int verb_attest(int argc, char *argv[], CtlOptions *o);
int verb_outbox(int argc, char *argv[], CtlOptions *o);
int verb_fota(int argc, char *argv[], CtlOptions *o);

/* ctl-bus.c: views of a running daemon, over its D-Bus API. */
int verb_status(int argc, char *argv[], CtlOptions *o);
int verb_devices(int argc, char *argv[], CtlOptions *o);
int verb_monitor(int argc, char *argv[], CtlOptions *o);
bool ctl_daemon_running(void);
int ctl_bus_outbox(void);
int verb_scan(int argc, char *argv[], CtlOptions *o);
int ctl_bus_identity(const CtlOptions *o);
/* j pretty-printed on stdout, keys sorted (every --json output). */
int ctl_print_json(json_t *j);
int ctl_bus_fota(void);
