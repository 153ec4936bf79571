/* SPDX-License-Identifier: MIT */
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "blefota-manager.h"
#include "gateway.h"
#include "gateway-bus.h"
#include "log.h"
#include "memory-trim.h"
#include "state-dir.h"
#include "modem.h"
#include "publish-budget.h"
#include "util.h"
#include "version.h"

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

static void gateway_enter_state(Gateway *g, GatewayState s) {
        if (g->state == s)
                return;
        log_debug("Gateway state %s -> %s", gateway_state_to_string(g->state), gateway_state_to_string(s));
        g->state = s;
        gateway_notify_status(g);
}

/* ---- The cloud connection: outbox, MQTT session and nRF Cloud session ---- */

static bool mqtt_state_connected(MqttState s) {
        return s == MQTT_SUBSCRIBING || s == MQTT_READY;
}

static void on_mqtt_state_changed(MqttSession *s, MqttState old_state, MqttState new_state, void *userdata) {
        Gateway *g = userdata;
        (void) s;

        gateway_notify_status(g); /* the last error and the retry time changed */
        if (!g->cloud)
                return;
        /* The MQTT session subscribes nothing by itself: READY follows CONNACK at once. */
        if (new_state == MQTT_READY)
                cloud_session_link_up(g->cloud);
        else if (mqtt_state_connected(old_state) && !mqtt_state_connected(new_state))
                cloud_session_link_down(g->cloud);
}

static void on_mqtt_message(MqttSession *s, const char *topic, const uint8_t *payload, size_t len, void *userdata) {
        Gateway *g = userdata;
        (void) s;
        if (g->cloud)
                cloud_session_handle_message(g->cloud, topic, payload, len);
}

static void on_mqtt_message_too_big(MqttSession *s, const char *topic, size_t len, void *userdata) {
        Gateway *g = userdata;
        (void) s;
        if (g->cloud)
                cloud_session_handle_oversized(g->cloud, topic, len);
}

static unsigned on_cloud_max_connections(CloudSession *cs, void *userdata) {
        Gateway *g = userdata;
        (void) cs;
        return g->config->max_connections;
}

static void on_mqtt_stopped(MqttSession *s, void *userdata) {
        Gateway *g = userdata;
        (void) s;
        if (g->state == GATEWAY_STOPPING)
                gateway_modem_stop(g);
        gateway_component_stopped(g);
}

/* Outbox entries pass the topic guard again as they are sent: they may come from an earlier run. */
static bool on_mqtt_topic_filter(const char *topic, void *userdata) {
        Gateway *g = userdata;
        return g->cloud && cloud_session_may_publish(g->cloud, topic);
}

static void on_cloud_state_changed(CloudSession *cs, CloudSessionState old_state, CloudSessionState new_state,
                                   void *userdata) {
        Gateway *g = userdata;
        (void) cs, (void) old_state;
        gateway_bus_cloud_state_changed(g->bus);
        gateway_fota_cloud_state(g, new_state);
        gateway_notify_status(g);
}

static void on_cloud_message(CloudSession *cs, CloudMessageKind kind, const uint8_t *payload, size_t len,
                             void *userdata) {
        Gateway *g = userdata;
        (void) cs;

        switch (kind) {
        case CLOUD_MESSAGE_C2G:
                if (g->protocol)
                        protocol_handle_c2g(g->protocol, payload, len);
                return;
        case CLOUD_MESSAGE_JOBS_RCV:
                gateway_fota_job_received(g, payload, len);
                return;
        case CLOUD_MESSAGE_JOBS_BLE_RCV:
                gateway_fota_ble_job_received(g, payload, len);
                return;
        case _CLOUD_MESSAGE_KIND_MAX:
        case _CLOUD_MESSAGE_KIND_INVALID:
                break;
        }
}

static int on_desired_defer(sd_event_source *s, void *userdata) {
        Gateway *g = userdata;
        const DesiredConnection *v = NULL;
        const char(*reported)[BT_ADDR_STR_LEN + 1] = NULL;
        size_t n = 0, n_reported = 0;
        int r;
        (void) s;

        r = cloud_session_get_desired_connections(g->cloud, &v, &n);
        if (!g->protocol)
                return 0;
        (void) protocol_set_desired(g->protocol, v, n, r >= 0);
        gateway_notify_status(g);
        if (r >= 0 && cloud_session_get_reported_connections(g->cloud, &reported, &n_reported) >= 0)
                protocol_clear_stale_status(g->protocol, reported, n_reported);
        return 0;
}

static void on_cloud_desired_connections_changed(CloudSession *cs, void *userdata) {
        Gateway *g = userdata;
        int r;
        (void) cs;

        /* Applied from the loop once the session has finished with the shadow
         * document (its echo of a delta goes out before the status reports). */
        r = g->desired_defer ? sd_event_source_set_enabled(g->desired_defer, SD_EVENT_ONESHOT)
                             : sd_event_add_defer(g->event, &g->desired_defer, on_desired_defer, g); /* one-shot */
        if (r < 0)
                log_error_errno(r, "Failed to schedule the new desired connections, ignoring: %m");
}

static void on_cloud_beacons_changed(CloudSession *cs, const char (*addresses)[BT_ADDR_STR_LEN + 1], size_t n,
                                     void *userdata) {
        Gateway *g = userdata;
        (void) cs;
        if (g->protocol)
                (void) protocol_set_beacons(g->protocol, addresses, n);
}

/* ---- The gateway protocol: BLE layer and nRF Cloud protocol ---- */

static void on_ble_device_state(BleManager *m, BleDevice *d, BleDeviceState old_state, BleDeviceState new_state,
                                void *userdata) {
        Gateway *g = userdata;
        (void) m;
        gateway_bus_device_state(g->bus, ble_device_address(d), old_state, new_state);
        gateway_notify_status(g);
        if (g->protocol)
                protocol_device_state(g->protocol, ble_device_address(d), ble_device_address_type(d), old_state,
                                      new_state,
                                      new_state == BLE_DEVICE_READY ? ble_device_gatt(d) : NULL);
        /* After the discovery went out: a connected device asks for its FOTA job. */
        blefota_manager_device_state(g->blefota, d, new_state);
}

static void on_ble_notification(BleManager *m, BleDevice *d, const char *service_uuid, const char *chrc_uuid,
                                const uint8_t *value, size_t size, void *userdata) {
        Gateway *g = userdata;
        (void) m;
        /* The SMP responses of a device being updated are the FOTA job's, not values for the cloud. */
        if (blefota_manager_notification(g->blefota, d, service_uuid, chrc_uuid, value, size))
                return;
        gateway_bus_device_notification(g->bus, ble_device_address(d));
        if (g->protocol)
                protocol_notification(g->protocol, ble_device_address(d), service_uuid, chrc_uuid, value, size);
}

static void on_ble_beacon(BleManager *m, const BleScanResult *r, void *userdata) {
        Gateway *g = userdata;
        (void) m;
        if (g->protocol)
                protocol_beacon(g->protocol, r);
}

static int sink_publish_g2c(void *impl, OutboxClass class, const char *payload, size_t len) {
        return cloud_session_publish_g2c(impl, class, payload, len);
}

static int sink_report_connections(void *impl, const ShadowConnectionStatus *v, size_t n) {
        return cloud_session_report_connections(impl, v, n);
}

static void sink_unpair(void *impl, const char *why) {
        cloud_session_forget(impl, why);
}

static int gateway_protocol_start(Gateway *g, const char *device_id) {
        static const BleCallbacks ble_callbacks = {
                .device_state = on_ble_device_state,
                .notification = on_ble_notification,
                .beacon = on_ble_beacon,
        };
        static const ProtocolSink sink = {
                .publish_g2c = sink_publish_g2c,
                .report_connections = sink_report_connections,
                .unpair = sink_unpair,
        };
        int r;

        r = ble_manager_new(g->event, NULL, g->config, &ble_callbacks, g, &g->ble);
        if (r >= 0) {
                r = ble_manager_start(g->ble);
                if (r < 0)
                        g->ble = ble_manager_free(g->ble);
        }
        if (r < 0)
                log_error_errno(r, "Failed to reach BlueZ on the system bus, running without Bluetooth: %m");
        else
                (void) gateway_blefota_start(g);

        r = protocol_new(g->event, g->config, device_id, g->ble, &sink, g->cloud, &g->protocol);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the gateway protocol: %m");
        gateway_blefota_attach(g);
        return 0;
}

static void on_outbox_changed(Outbox *o, void *userdata) {
        Gateway *g = userdata;
        gateway_bus_counters_changed(g->bus);
        if (outbox_count(o) == 0)
                memory_trim_schedule(g->event); /* the end of a burst */
}

static OutboxLimits gateway_outbox_limits(const Config *c) {
        return (OutboxLimits){ .max_messages = c->buffer_max_messages,
                               .max_bytes = c->buffer_max_bytes,
                               .sync_interval_usec = (uint64_t) c->buffer_sync_interval_sec * UINT64_C(1000000) };
}

int gateway_cloud_start(Gateway *g, const char *device_id, const char *server_uri) {
        static const MqttCallbacks mqtt_callbacks = {
                .state_changed = on_mqtt_state_changed,
                .message = on_mqtt_message,
                .message_too_big = on_mqtt_message_too_big,
                .stopped = on_mqtt_stopped,
        };
        static const MqttCallbacks mqtt_callbacks_modem = {
                .state_changed = on_mqtt_state_changed,
                .message = on_mqtt_message,
                .message_too_big = on_mqtt_message_too_big,
                .stopped = on_mqtt_stopped,
                /* TLS=modem: each connection attempt first opens a TLS socket in the nRF91. */
                .prepare = gateway_modem_prepare,
                .release = gateway_modem_release,
        };
        static const CloudSessionCallbacks cloud_callbacks = {
                .state_changed = on_cloud_state_changed,
                .message = on_cloud_message,
                .desired_connections_changed = on_cloud_desired_connections_changed,
                .jobs_ready = gateway_fota_jobs_ready,
                .jobs_ble_ready = gateway_blefota_jobs_ready,
                .max_connections = on_cloud_max_connections,
                .beacons_changed = on_cloud_beacons_changed,
        };
        const Config *c = g->config;
        _cleanup_free_ char *dir = NULL, *broker = NULL;
        OutboxLimits limits = gateway_outbox_limits(c);
        MqttOptions o;
        CloudSessionOptions co;
        int r;

        if (g->cloud)
                return -EALREADY;

        r = state_directory_prepare(c->state_directory);
        if (r < 0)
                return r;
        if (asprintf(&dir, "%s/outbox", c->state_directory) < 0)
                return log_error_errno(ENOMEM, "Out of memory");
        /* Kept from an earlier attempt that failed further on: it holds the folder's lock. */
        r = g->outbox ? 0 : state_directory_open_outbox(g->event, dir, &limits, &g->outbox);
        if (r == -EBUSY)
                return log_error_errno(r, "The outbox in %s is held by another process (another daemon with this "
                                       "StateDirectory=, or nrfcloud-gatewayctl outbox)", dir);
        if (r < 0)
                return log_error_errno(r, "Failed to open the outbox in %s: %m", dir);
        outbox_set_changed_callback(g->outbox, on_outbox_changed, g);
        outbox_set_key_function(g->outbox, publish_budget_g2c_key, c->notify_overflow == NOTIFY_OVERFLOW_LATEST);

        if (asprintf(&broker, "%s:%u", c->cloud_host, c->cloud_port) < 0)
                return log_error_errno(ENOMEM, "Out of memory");
        o = (MqttOptions){
                .server_uri = server_uri,
                .client_id = device_id,
                .broker_name = broker,
                .keepalive_sec = c->keepalive_sec,
                .ca_file = c->cloud_tls == CLOUD_TLS_HOST ? c->ca_file : NULL,
                .cert_file = c->cloud_tls == CLOUD_TLS_HOST ? c->cert_file : NULL,
                .key_file = c->cloud_tls == CLOUD_TLS_HOST ? c->key_file : NULL,
                .reconnect_min_usec = (uint64_t) c->reconnect_min_sec * UINT64_C(1000000),
                .reconnect_max_usec = (uint64_t) c->reconnect_max_sec * UINT64_C(1000000),
                .max_incoming_bytes = c->max_incoming_bytes,
                .max_publish_rate = c->max_publish_rate,
        };
        r = mqtt_session_new(g->event, &o, g->outbox, server_uri ? &mqtt_callbacks : &mqtt_callbacks_modem, g,
                             &g->mqtt);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the MQTT session for %s: %m", device_id);

        co = (CloudSessionOptions){
                .device_id = device_id,
                .team_id = c->team_id,
                .keepalive_sec = c->keepalive_sec,
                .event = g->event,
        };
        r = cloud_session_new(&co, &cloud_transport_mqtt, g->mqtt, &cloud_callbacks, g, &g->cloud);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the nRF Cloud session for device id %s: %m", device_id);
        mqtt_session_set_topic_filter(g->mqtt, on_mqtt_topic_filter, g);

        /* The modem's fields when it is known (host mode may have none). */
        gateway_update_device_info(g);

        r = gateway_protocol_start(g, device_id);
        if (r < 0)
                return r;

        (void) log_set_global_field("GATEWAY_ID", device_id);
        r = cloud_session_start(g->cloud);
        if (r >= 0)
                r = mqtt_session_start(g->mqtt);
        if (r < 0)
                return log_error_errno(r, "Failed to start the cloud connection: %m");
        log_info("Connecting to nRF Cloud at %s:%u as %s%s", c->cloud_host, c->cloud_port, device_id,
                 server_uri ? "" : ", TLS in the nRF91");
        return 0;
}

static int gateway_cloud_start_configured(Gateway *g) {
        const Config *c = g->config;
        _cleanup_free_ char *uri = NULL;

        switch (c->cloud_tls) {
        case CLOUD_TLS_MODEM:
                /* gateway-modem.c starts it once the modem is ready and registered. */
                return 0;
        case CLOUD_TLS_HOST:
                if (!c->device_id)
                        return log_error_errno(EINVAL, "[Cloud] TLS=host needs [Gateway] DeviceId=, the device id "
                                                       "of the client certificate");
                if (asprintf(&uri, "ssl://%s:%u", c->cloud_host, c->cloud_port) < 0)
                        return log_error_errno(ENOMEM, "Out of memory");
                return gateway_cloud_start(g, c->device_id, uri);
        case _CLOUD_TLS_MAX:
                break;
        }
        return -EINVAL;
}

static void gateway_cloud_stop(Gateway *g) {
        if (g->cloud)
                cloud_session_stop(g->cloud);
        if (!g->mqtt || mqtt_session_get_state(g->mqtt) == MQTT_IDLE)
                return;
        gateway_component_stopping(g);
        mqtt_session_stop(g->mqtt); /* on_mqtt_stopped() ends it */
}

static void gateway_cloud_apply_live(Gateway *g) {
        const Config *c = g->config;
        OutboxLimits limits = gateway_outbox_limits(c);
        int r;

        if (g->mqtt)
                mqtt_session_set_limits(g->mqtt, (uint64_t) c->reconnect_min_sec * UINT64_C(1000000),
                                        (uint64_t) c->reconnect_max_sec * UINT64_C(1000000), c->max_incoming_bytes);
        if (g->outbox) {
                r = outbox_set_limits(g->outbox, &limits);
                if (r < 0)
                        log_error_errno(r, "Failed to apply the new [Buffer] limits: %m");
        }
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
        gateway_cloud_stop(g);
        /* The modem goes last: in TLS=modem mode the cloud session's DISCONNECT travels through it. */
        if (!g->mqtt || mqtt_session_get_state(g->mqtt) == MQTT_IDLE)
                gateway_modem_stop(g);

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
                        gateway_cloud_apply_live(g);
                        if (g->ble) /* [Bluetooth] keys apply in place; MaxConnections may have gone down */
                                ble_manager_config_changed(g->ble);
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
        g->freeing = true;
        sd_event_source_disable_unref(g->sigterm_source);
        sd_event_source_disable_unref(g->sigint_source);
        sd_event_source_disable_unref(g->sighup_source);
        sd_event_source_disable_unref(g->stop_timer);
        /* The protocol first (it orphans its pending BLE operations), then the
         * BLE layer (which completes them), before the cloud they publish to. */
        g->desired_defer = sd_event_source_disable_unref(g->desired_defer);
        g->protocol = protocol_free(g->protocol);
        g->ble = ble_manager_free(g->ble);
        /* Then the MQTT session: no callback runs after it, and it syncs the outbox. */
        g->mqtt = mqtt_session_free(g->mqtt);
        gateway_blefota_free(g);
        /* Before the modem: it cancels its command in flight. */
        gateway_fota_free(g);
        g->cloud = cloud_session_free(g->cloud);
        g->outbox = outbox_free(g->outbox);
        gateway_modem_free(g);
        /* Last: what the others complete while they go (a scan, AT+CESQ) is answered through it. */
        g->bus = gateway_bus_free(g->bus);
        free(g->status_text);
        sd_event_unref(g->event);
        config_free(g->config);
        free(g->config_path);
        free(g);
        return NULL;
}

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

        /* The API first, so that it shows the start; running without it is allowed. */
        (void) gateway_bus_new(g, &g->bus);

        /* Before the modem: its first probe tells the manager where a FOTA stands. */
        r = gateway_fota_start(g);
        if (r < 0)
                return r;

        r = gateway_modem_start(g);
        if (r < 0)
                return r;

        r = gateway_cloud_start_configured(g);
        if (r < 0)
                return r;

        gateway_enter_state(g, GATEWAY_RUNNING);
        (void) sd_notify(false, "READY=1");
        log_info("Started, configuration from %s", g->config_path);
        return 0;
}
