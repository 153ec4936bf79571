/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The progress of BLE FOTA jobs on the D-Bus API: FotaJobId, FotaStage,
 * FotaProgress, FotaBytesDone, FotaBytesTotal on each Device1 object
 * (docs/dbus-api.md).  The manager says "changed" for every chunk; a change
 * of job or stage is signalled at once, the rest at most every
 * BLEFOTA_BUS_INTERVAL_USEC.
 */

#include <systemd/sd-event.h>

#include "blefota-manager.h"
#include "gateway-bus.h"

#define BLEFOTA_BUS_INTERVAL_USEC (250 * UINT64_C(1000)) /* at most 4 PropertiesChanged a second */

typedef struct BleFotaBus BleFotaBus;

/* Serves the properties on gb's connection (nothing to serve without it) and follows m; without m
 * (no BLE FOTA) they are "" and 0. */
int blefota_bus_new(sd_event *event, GatewayBus *gb, BleFotaManager *m, BleFotaBus **ret);
BleFotaBus *blefota_bus_free(BleFotaBus *b);
