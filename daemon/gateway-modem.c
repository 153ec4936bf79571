/* SPDX-License-Identifier: MIT */
/*
 * The gateway's nRF91: the modem manager (identity, credentials, JWTs) and,
 * with [Cloud] TLS=modem, the cloud connection's transport.  In that mode the
 * TLS session ends inside the nRF91 with the credentials of the configured
 * security tag (ModemTls, #XSSOCKET...), and Paho speaks plain MQTT to a
 * loopback bridge that accepts one connection from our own process and
 * copies its bytes to and from the modem socket.  The private key never
 * exists on this host.
 *
 * The modem manager stops at "ready" (identity read, credentials checked);
 * a TLS socket also needs the modem online and registered to a network, so
 * this file brings it online (AT+CFUN=1) and starts the cloud connection
 * once +CEREG reports home or roaming registration (3GPP TS 27.007 §10.1.22,
 * stat 1 and 5).  A firmware restart or a lost port drops the modem socket;
 * the MQTT session then reconnects through a new one once the modem is back.
 */

#include <inttypes.h>

#include "at-line.h"
#include "gateway-bus.h"
#include "gateway.h"
#include "location-manager.h"
#include "log.h"
#include "modem-tls.h"
#include "modem.h"

#define ONLINE_COMMAND_TIMEOUT_USEC (10u * 1000u * 1000u)

static void on_online_command(AtEngine *e, const AtResponse *r, void *userdata) {
        char desc[160];
        (void) e, (void) userdata;
        if (r->result < 0)
                log_warning("Bringing the modem online failed: %s", at_response_describe(r, desc, sizeof desc));
}

/* Commands as data: registration URCs on, radio on, then ask in case it is registered already. */
static void modem_bring_online(AtEngine *e) {
        static const char *const commands[] = { "AT+CEREG=5", "AT+CFUN=1", "AT+CEREG?" };
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                (void) at_engine_send(e, commands[i], ONLINE_COMMAND_TIMEOUT_USEC, on_online_command, NULL);
}

static void gateway_modem_cloud_start(Gateway *g) {
        const ModemIdentity *id = modem_get_identity(g->modem);
        int r;

        if (g->cloud || g->state == GATEWAY_STOPPING)
                return;
        if (!id->device_id) {
                log_error("The modem did not give a device id; the cloud connection cannot start");
                return;
        }
        r = gateway_cloud_start(g, id->device_id, NULL);
        if (r < 0)
                log_error_errno(r, "Failed to start the cloud connection through the modem: %m");
}

/*
 * The URC is "+CEREG: <stat>[,...]"; the answer to AT+CEREG? is
 * "+CEREG: <n>,<stat>[,...]".
 */
static void on_cereg(AtEngine *e, const char *line, const uint8_t *payload, size_t len, void *userdata) {
        Gateway *g = userdata;
        uint64_t stat, second;
        AtCursor c;
        (void) e, (void) payload, (void) len;

        if (at_cursor_init(&c, line, strlen(line), "+CEREG") < 0 || at_cursor_uint(&c, 255, &stat) < 0)
                return;
        if (!at_cursor_at_end(&c) && at_cursor_uint(&c, 255, &second) >= 0)
                stat = second;

        bool registered = stat == 1 || stat == 5;
        if (registered != g->modem_registered)
                log_fields(registered ? LOG_INFO : LOG_NOTICE, LOG_FIELDS({ "MODEM_PORT", g->config->modem_port }),
                           "nRF91 network registration: %s (+CEREG stat %" PRIu64 ")",
                           registered ? (stat == 1 ? "home" : "roaming") : "not registered", stat);
        g->modem_registered = registered;
        /* Also on a cell change: the location manager reads the new cell. */
        location_manager_set_registered(g->location, registered);
        gateway_notify_status(g);
        if (registered)
                gateway_modem_cloud_start(g);
}

static void on_bridge_ready(Bridge *b, const char *uri, void *userdata) {
        Gateway *g = userdata;
        if (!g->mqtt || mqtt_session_prepared(g->mqtt, uri) < 0)
                bridge_stop(b);
}

/*
 * The modem's TLS socket has logged how it ended (a failed handshake with the
 * modem's reason, a socket error, the peer closing): the session is told what
 * that means for it, without a second line for the same cause.  A close from
 * Paho's side (its keepalive) is Paho's to report.
 */
static void on_bridge_closed(Bridge *b, int error, const char *reason, void *userdata) {
        Gateway *g = userdata;
        bool preparing = g->mqtt && mqtt_session_get_state(g->mqtt) == MQTT_PREPARING;
        const char *what;
        char buf[200];

        if (!g->mqtt || !bridge_closed_by_remote(b)) {
                if (preparing)
                        mqtt_session_prepare_failed(g->mqtt, error ? error : -ECONNRESET, reason, !reason);
                else
                        log_debug("Modem TLS bridge closed: %s", reason);
                return;
        }
        if (modem_get_state(g->modem) != MODEM_READY)
                what = "the link to the modem was lost";
        else if (error == 0 || error == -ECONNRESET)
                /* #XCLOSE with 0: the peer closed (a FIN or TLS close_notify, after its DISCONNECT or not). */
                what = "the broker closed the connection";
        else {
                const char *m = modem_tls_error_to_string(error);
                snprintf(buf, sizeof buf, "TLS connection in the modem failed: %s", m ? m : strerror(-error));
                what = buf;
        }
        if (preparing)
                /* The modem TLS layer has logged it: what the last error reads (status, D-Bus). */
                mqtt_session_prepare_failed(g->mqtt, error ? error : -ECONNRESET, what, true);
        else
                mqtt_session_transport_closed(g->mqtt, what);
}

int gateway_modem_prepare(MqttSession *s, void *userdata) {
        Gateway *g = userdata;
        const Config *c = g->config;
        (void) s;

        if (!g->bridge)
                return -ENOTCONN;
        if (modem_get_state(g->modem) != MODEM_READY || !g->modem_registered)
                return -ENETDOWN;
        return bridge_start(g->bridge, c->cloud_host, (uint16_t) c->cloud_port);
}

void gateway_modem_release(MqttSession *s, void *userdata) {
        Gateway *g = userdata;
        (void) s;
        if (g->bridge)
                bridge_stop(g->bridge);
}

static int gateway_modem_tls_setup(Gateway *g) {
        static const BridgeCallbacks bridge_callbacks = { .ready = on_bridge_ready, .closed = on_bridge_closed };
        AtEngine *e = modem_get_engine(g->modem);
        int r;

        if (g->modem_tls)
                return 0;
        r = modem_tls_new(e, g->config->sec_tag, &g->modem_tls);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the modem's TLS socket: %m");
        r = bridge_new(g->event, &modem_tls_ops, g->modem_tls, &bridge_callbacks, g, &g->bridge);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the loopback bridge: %m");
        r = at_engine_add_urc(e, "+CEREG:", on_cereg, g);
        if (r < 0)
                return log_error_errno(r, "Failed to watch network registration: %m");
        return 0;
}

static void on_modem_state(Modem *m, ModemState old_state, ModemState new_state, void *userdata) {
        Gateway *g = userdata;
        const ModemIdentity *id = modem_get_identity(m);

        gateway_notify_status(g);
        if (new_state == MODEM_READY) {
                /* Every record from now on names the gateway, once the modem has told us who we are. */
                if (id->device_id)
                        (void) log_set_global_field("GATEWAY_ID", id->device_id);
                if (g->config->cloud_tls == CLOUD_TLS_MODEM && g->state != GATEWAY_STOPPING &&
                    gateway_modem_tls_setup(g) >= 0) {
                        modem_bring_online(modem_get_engine(m));
                        /* Stale sockets are closed while the radio registers, not on the way to the cloud. */
                        modem_tls_sweep(g->modem_tls);
                }
                else if (g->config->cloud_tls == CLOUD_TLS_HOST && g->state != GATEWAY_STOPPING &&
                         id->has_fota && id->fota.ops != 0)
                        /* TLS=host: the cloud connection does not need the modem, but a FOTA
                         * download runs over the nRF91's own link (the firmware downloads it). */
                        modem_bring_online(modem_get_engine(m));
                /* The versions and FOTA state were read again: the shadow and a job in progress hear of them. */
                gateway_update_device_info(g);
                gateway_fota_modem_state(g, true);
        } else if (old_state == MODEM_READY) {
                /* The firmware restarted or the port went away: the modem's sockets are gone. */
                g->modem_registered = false;
                location_manager_set_registered(g->location, false);
                if (g->modem_tls)
                        modem_tls_link_lost(g->modem_tls, -ECONNRESET);
                gateway_fota_modem_state(g, false);
        }
}

static void on_location_changed(LocationManager *l, void *userdata) {
        Gateway *g = userdata;
        (void) l;
        gateway_bus_changed(g->bus);
}

int gateway_modem_start(Gateway *g) {
        static const ModemCallbacks modem_callbacks = {
                .state_changed = on_modem_state,
                .fota_event = gateway_fota_modem_event,
        };
        int r;

        if (!config_has_modem(g->config)) {
                log_info("[Modem] Port=none: no nRF91, no serial port is opened, FOTA is not offered");
                return 0;
        }
        r = modem_new(g->event, g->config, &g->modem);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the modem on %s: %m", strna(g->config->modem_port));
        modem_set_callbacks(g->modem, &modem_callbacks, g);
        r = modem_start(g->modem);
        if (r < 0)
                return log_error_errno(r, "Failed to start the modem: %m");
        if (g->config->cloud_tls == CLOUD_TLS_MODEM)
                log_info("[Cloud] TLS=modem: the cloud connection starts once the nRF91 on %s is ready and registered",
                         g->config->modem_port);
        /* The location needs the modem on the network, which only TLS=modem brings it to. */
        if (g->config->cloud_tls == CLOUD_TLS_MODEM && g->config->location_interval_sec > 0) {
                r = location_manager_new(g->event, g->config, g->modem, &g->location);
                if (r < 0)
                        log_warning_errno(r, "Failed to set up the location requests, continuing without: %m");
                location_manager_set_changed_callback(g->location, on_location_changed, g);
        }
        return 0;
}

void gateway_modem_stop(Gateway *g) {
        if (g->bridge)
                bridge_stop(g->bridge);
        if (g->modem)
                modem_stop(g->modem);
}

void gateway_modem_free(Gateway *g) {
        g->location = location_manager_free(g->location);
        g->bridge = bridge_free(g->bridge);
        g->modem_tls = modem_tls_free(g->modem_tls);
        g->modem = modem_free(g->modem);
}
