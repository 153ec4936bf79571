/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-event.h>

#include "config.h"

typedef struct Modem Modem;

typedef enum GatewayState {
        GATEWAY_STARTING,
        GATEWAY_RUNNING,
        GATEWAY_RELOADING,
        GATEWAY_STOPPING,
        _GATEWAY_STATE_MAX,
} GatewayState;

typedef struct Gateway {
        sd_event *event;
        Config *config;           /* the configuration in effect */
        char *config_path;
        bool config_must_exist;
        int log_level_override;   /* from the command line; -1: none */

        GatewayState state;
        sd_event_source *sigterm_source;
        sd_event_source *sigint_source;
        sd_event_source *sighup_source;
        sd_event_source *stop_timer;
        unsigned stopping_components; /* components still shutting down */

        Modem *modem;             /* the nRF91 that holds the gateway's identity */
} Gateway;

/* Takes ownership of config. */
int gateway_new(sd_event *event, Config *config, const char *config_path, bool config_must_exist,
                int log_level_override, Gateway **ret);
Gateway *gateway_free(Gateway *g);
DEFINE_TRIVIAL_CLEANUP_FUNC(Gateway *, gateway_free);

/* Installs signal handlers and the watchdog, starts the components, sends READY=1. */
int gateway_start(Gateway *g);
/* Starts a graceful stop; the loop exits when every component is down or the timeout hits. */
void gateway_stop(Gateway *g);
/* Reloads the configuration file, keeping the old one if the new one is invalid. */
int gateway_reload(Gateway *g);

/* Components call these around their own asynchronous shutdown. */
void gateway_component_stopping(Gateway *g);
void gateway_component_stopped(Gateway *g);

const char *gateway_state_to_string(GatewayState s);
void gateway_apply_log_settings(const Config *c, int log_level_override);
