/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The daemon's API on the system bus (docs/dbus-api.md): the gateway object
 * (Gateway1, Modem1, Outbox1, Fota1) and one Device1 object per desired BLE
 * device, with PropertiesChanged when values change.  The gateway tells it
 * that something may have changed; it compares and signals what did.  Every
 * hook accepts NULL (no API).
 */

#include "ble.h"

#define GATEWAY_BUS_NAME "io.github.nrfcloud_gateway.Gateway1"
#define GATEWAY_BUS_ROOT "/io/github/nrfcloud_gateway"
#define GATEWAY_BUS_PATH GATEWAY_BUS_ROOT "/gateway"
#define GATEWAY_BUS_PREFIX "io.github.nrfcloud_gateway."

typedef struct Gateway Gateway;
typedef struct GatewayBus GatewayBus;

/* Connects to the system bus and serves the API; failures are logged and the gateway runs without it. */
int gateway_bus_new(Gateway *g, GatewayBus **ret);
GatewayBus *gateway_bus_free(GatewayBus *b);

/* Something shown may have changed: signalled from the loop, soon. */
void gateway_bus_changed(GatewayBus *b);
/* A counter moved (outbox, notifications): signalled at most once a second. */
void gateway_bus_counters_changed(GatewayBus *b);
void gateway_bus_cloud_state_changed(GatewayBus *b);
void gateway_bus_device_state(GatewayBus *b, const char *address, BleDeviceState old_state, BleDeviceState new_state);
void gateway_bus_device_notification(GatewayBus *b, const char *address);

/* For the files that add properties to these objects (as blefota-bus.c does on Device1):
 * the connection (NULL without the API), and a Device1 object's address from its path and back
 * (NULL: there is no such object now). */
sd_bus *gateway_bus_get_bus(GatewayBus *b);
const char *gateway_bus_device_address(GatewayBus *b, const char *path);
const char *gateway_bus_device_path(GatewayBus *b, const char *address);
