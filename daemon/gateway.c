/* SPDX-License-Identifier: MIT */
#include <signal.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "gateway.h"
#include "log.h"
#include "modem.h"
#include "util.h"

static const char *const gateway_state_table[_GATEWAY_STATE_MAX] = {
        [GATEWAY_STARTING] = "starting",
        [GATEWAY_RUNNING] = "running",
        [GATEWAY_RELOADING] = "reloading",
        [GATEWAY_STOPPING] = "stopping",
};

const char *gateway_state_to_string(GatewayState s) {
        return s >= 0 && s < _GATEWAY_STATE_MAX ? gateway_state_table[s] : NULL;
}

void gateway_apply_log_settings(const Config *c, int log_level_override) {
        log_setup(c->log_target);
        log_set_max_level(log_level_override >= 0 ? log_level_override : c->log_level);
}

static void gateway_notify_status(Gateway *g) {
        const char *s = "?";

        switch (g->state) {
        case GATEWAY_STARTING:
                s = "Starting";
                break;
        case GATEWAY_RUNNING:
                s = "Running";
                break;
        case GATEWAY_RELOADING:
                s = "Reloading configuration";
                break;
        case GATEWAY_STOPPING:
                s = "Stopping";
                break;
        case _GATEWAY_STATE_MAX:
                s = "?";
                break;
        }
        (void) sd_notifyf(false, "STATUS=%s", s);
}

static void gateway_enter_state(Gateway *g, GatewayState s) {
        if (g->state == s)
                return;
        log_debug("Gateway state %s -> %s", gateway_state_to_string(g->state), gateway_state_to_string(s));
        g->state = s;
        gateway_notify_status(g);
}

static int on_stop_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Gateway *g = userdata;
        (void) s;
        (void) usec;
        log_warning("%u component(s) did not stop within %us, exiting anyway", g->stopping_components,
                    g->config->stop_timeout_sec);
        return sd_event_exit(g->event, 0);
}

static void gateway_maybe_exit(Gateway *g) {
        if (g->state == GATEWAY_STOPPING && g->stopping_components == 0)
                (void) sd_event_exit(g->event, 0);
}

void gateway_component_stopping(Gateway *g) {
        g->stopping_components++;
}

void gateway_component_stopped(Gateway *g) {
        if (g->stopping_components > 0)
                g->stopping_components--;
        gateway_maybe_exit(g);
}

void gateway_stop(Gateway *g) {
        int r;

        if (g->state == GATEWAY_STOPPING)
                return;
        log_info("Stopping");
        (void) sd_notify(false, "STOPPING=1");
        gateway_enter_state(g, GATEWAY_STOPPING);

        /* Components register with gateway_component_stopping() as they begin to shut down. */
        if (g->modem)
                modem_stop(g->modem);

        r = sd_event_add_time_relative(g->event, &g->stop_timer, CLOCK_MONOTONIC,
                                       (uint64_t) g->config->stop_timeout_sec * UINT64_C(1000000), 0,
                                       on_stop_timeout, g);
        if (r < 0) {
                log_error_errno(r, "Failed to arm the stop timer, exiting now: %m");
                (void) sd_event_exit(g->event, 0);
                return;
        }
        gateway_maybe_exit(g);
}

static void on_config_change(const char *section, const char *key, const char *old_value, const char *new_value,
                             ConfigReload reload, void *userdata) {
        (void) userdata;
        switch (reload) {
        case CONFIG_RELOAD_LIVE:
                log_info("[%s] %s changed from '%s' to '%s', applied", section, key, old_value, new_value);
                break;
        case CONFIG_RELOAD_RESTART:
                log_notice("[%s] %s changed from '%s' to '%s', which takes effect only after a restart", section, key,
                           old_value, new_value);
                break;
        case _CONFIG_RELOAD_MAX:
                break;
        }
}

int gateway_reload(Gateway *g) {
        _cleanup_(config_freep) Config *c = NULL;
        char **errors = NULL;
        unsigned n;
        int r;

        log_info("Reloading configuration from %s", g->config_path);
        (void) sd_notifyf(false, "RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long) now_usec(CLOCK_MONOTONIC));
        gateway_enter_state(g, GATEWAY_RELOADING);

        r = config_load(g->config_path, g->config_must_exist, &c, &errors);
        if (r >= 0)
                r = config_apply_environment(c);
        if (r < 0) {
                for (char **e = errors; e && *e; e++)
                        log_error("%s", *e);
                log_error_errno(r, "Failed to reload the configuration, keeping the current one: %m");
        } else {
                n = config_diff(g->config, c, on_config_change, g);
                r = config_copy_live(g->config, c);
                if (r < 0)
                        log_error_errno(r, "Failed to apply the new configuration: %m");
                else {
                        gateway_apply_log_settings(g->config, g->log_level_override);
                        log_info("Configuration reloaded, %u key(s) changed", n);
                }
        }
        strv_free(errors);

        gateway_enter_state(g, GATEWAY_RUNNING);
        (void) sd_notify(false, "READY=1");
        return r;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Gateway *g = userdata;
        (void) s;

        switch (si->ssi_signo) {
        case SIGHUP:
                if (g->state != GATEWAY_STOPPING)
                        (void) gateway_reload(g);
                break;
        case SIGTERM:
        case SIGINT:
                gateway_stop(g);
                break;
        default:
                break;
        }
        return 0;
}

int gateway_new(sd_event *event, Config *config, const char *config_path, bool config_must_exist,
                int log_level_override, Gateway **ret) {
        _cleanup_(gateway_freep) Gateway *g = NULL;

        g = calloc(1, sizeof *g);
        if (!g)
                return -ENOMEM;
        g->event = sd_event_ref(event);
        g->config = config;
        g->config_path = strdup(config_path);
        if (!g->config_path)
                return -ENOMEM;
        g->config_must_exist = config_must_exist;
        g->log_level_override = log_level_override;
        g->state = GATEWAY_STARTING;
        *ret = TAKE_PTR(g);
        return 0;
}

Gateway *gateway_free(Gateway *g) {
        if (!g)
                return NULL;
        sd_event_source_disable_unref(g->sigterm_source);
        sd_event_source_disable_unref(g->sigint_source);
        sd_event_source_disable_unref(g->sighup_source);
        sd_event_source_disable_unref(g->stop_timer);
        modem_free(g->modem);
        sd_event_unref(g->event);
        config_free(g->config);
        free(g->config_path);
        free(g);
        return NULL;
}

static void on_modem_state(Modem *m, ModemState old_state, ModemState new_state, void *userdata) {
        const ModemIdentity *id = modem_get_identity(m);
        (void) old_state;
        (void) userdata;

        /* Every record from now on names the gateway, once the modem has told us who we are. */
        if (new_state == MODEM_READY && id->device_id)
                (void) log_set_global_field("GATEWAY_ID", id->device_id);
}

static const ModemCallbacks modem_callbacks = {
        .state_changed = on_modem_state,
};

int gateway_start(Gateway *g) {
        sigset_t mask;
        int r;

        /* sd-event's signal sources need the signals blocked (systemd 252 has no SD_EVENT_SIGNAL_PROCMASK). */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Failed to block signals: %m");

        r = sd_event_add_signal(g->event, &g->sigterm_source, SIGTERM, on_signal, g);
        if (r >= 0)
                r = sd_event_add_signal(g->event, &g->sigint_source, SIGINT, on_signal, g);
        if (r >= 0)
                r = sd_event_add_signal(g->event, &g->sighup_source, SIGHUP, on_signal, g);
        if (r < 0)
                return log_error_errno(r, "Failed to install signal handlers: %m");

        r = sd_event_set_watchdog(g->event, true);
        if (r < 0)
                return log_error_errno(r, "Failed to enable the watchdog: %m");
        if (r > 0)
                log_debug("systemd watchdog enabled");

        r = modem_new(g->event, g->config, &g->modem);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the modem on %s: %m", strna(g->config->modem_port));
        modem_set_callbacks(g->modem, &modem_callbacks, g);
        r = modem_start(g->modem);
        if (r < 0)
                return log_error_errno(r, "Failed to start the modem: %m");

        gateway_enter_state(g, GATEWAY_RUNNING);
        (void) sd_notify(false, "READY=1");
        log_info("Started, configuration from %s", g->config_path);
        return 0;
}
