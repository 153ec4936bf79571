/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-event.h>

#include "ble.h"
#include "cloud-session.h"
#include "config.h"
#include "mqtt.h"
#include "outbox.h"
#include "protocol.h"

typedef struct Modem Modem;
typedef struct ModemTls ModemTls;
typedef struct LocationManager LocationManager;
typedef struct Bridge Bridge;
typedef struct FotaManager FotaManager;
typedef struct GatewayBus GatewayBus;

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
        /* [Cloud] TLS=modem (gateway-modem.c): the TLS socket in the nRF91 and the loopback bridge to it. */
        ModemTls *modem_tls;
        Bridge *bridge;
        bool modem_registered;
        /* The gateway's own location (daemon/location/), TLS=modem only; NULL otherwise. */
        LocationManager *location;

        /* The nRF Cloud connection (gateway-cloud part of gateway.c). */
        Outbox *outbox;         /* <StateDirectory>/outbox */
        MqttSession *mqtt;
        CloudSession *cloud;

        /* The BLE layer and the gateway protocol joining it to the cloud
         * (gateway-protocol part of gateway.c).  ble is NULL when the
         * system bus cannot be reached: operations then answer errors. */
        BleManager *ble;
        Protocol *protocol;
        sd_event_source *desired_defer; /* applies a change of desiredConnections */

        /* FOTA jobs for the gateway, run by the nRF91 firmware (gateway-fota.c). */
        FotaManager *fota;

        /* The D-Bus API (gateway-bus.c) and the last STATUS= sent (gateway-status.c). */
        GatewayBus *bus;
        char *status_text;
        bool freeing; /* gateway_free() runs: the components' last callbacks report nothing */
        /* FOTA of BLE devices, images downloaded by the nRF91 (gateway-blefota.c); NULL when off. */
        struct BleFotaManager *blefota;
        struct ModemDownloader *downloader;
        struct BleFotaBus *blefota_bus; /* their progress on Device1 (blefota/blefota-bus.c) */
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

/*
 * Sets up and starts the cloud connection for device_id: the outbox, the MQTT
 * session to server_uri and the nRF Cloud session.  gateway_start() calls it
 * for [Cloud] TLS=host; for TLS=modem gateway-modem.c calls it with
 * server_uri NULL once the modem is ready and registered, and each
 * connection attempt then goes through gateway_modem_prepare()/release().
 */
int gateway_cloud_start(Gateway *g, const char *device_id, const char *server_uri);

/* gateway-modem.c: the modem manager and the modem TLS transport. */
int gateway_modem_start(Gateway *g);
void gateway_modem_stop(Gateway *g);
void gateway_modem_free(Gateway *g);
typedef struct MqttSession MqttSession;
int gateway_modem_prepare(MqttSession *s, void *userdata);
void gateway_modem_release(MqttSession *s, void *userdata);

/* gateway-blefota.c: FOTA of BLE devices ([Bluetooth] Fota=). */
int gateway_blefota_start(Gateway *g);
void gateway_blefota_free(Gateway *g);
void gateway_blefota_jobs_ready(CloudSession *cs, void *userdata);
void gateway_blefota_attach(Gateway *g);

/* gateway-fota.c: the FOTA manager wired to the cloud session and the modem. */
int gateway_fota_start(Gateway *g);
void gateway_fota_free(Gateway *g);
/* reported.device: the versions, the modem's identity, the FOTA types the firmware can apply. */
void gateway_update_device_info(Gateway *g);
void gateway_fota_cloud_state(Gateway *g, CloudSessionState new_state);
void gateway_fota_jobs_ready(CloudSession *cs, void *userdata);
void gateway_fota_job_received(Gateway *g, const uint8_t *payload, size_t len);
void gateway_fota_ble_job_received(Gateway *g, const uint8_t *payload, size_t len);
void gateway_fota_modem_state(Gateway *g, bool ready);
typedef struct ModemFotaEvent ModemFotaEvent;
void gateway_fota_modem_event(Modem *m, const ModemFotaEvent *ev, void *userdata);
/* gateway-status.c: sends STATUS= if the line changed, and tells the D-Bus API. */
void gateway_notify_status(Gateway *g);
int gateway_status_text(Gateway *g, char **ret);
/* Only STATUS= (for the D-Bus layer's own flushes). */
void gateway_status_send(Gateway *g);
unsigned gateway_devices_desired(Gateway *g);
unsigned gateway_devices_ready(Gateway *g);
/* "; FOTA: ..." for STATUS=, or "". */
const char *gateway_fota_status(Gateway *g);

/* Components call these around their own asynchronous shutdown. */
void gateway_component_stopping(Gateway *g);
void gateway_component_stopped(Gateway *g);

const char *gateway_state_to_string(GatewayState s);
void gateway_apply_log_settings(const Config *c, int log_level_override);
