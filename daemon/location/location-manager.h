/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The gateway's own location from nRF Cloud's ground fix (docs/location.md).
 *
 *   off                        ([Cloud] LocationIntervalSec=0)
 *   idle ──registered, cell read with %XMONITOR, a request due──▶ measuring
 *     ▲                                                              │ %NCELLMEAS and its URC
 *     │                                                              ▼
 *     ├──── no modem time (JWT without exp): again after backoff ── token
 *     │                                                              │ %JWT (cached by the modem manager)
 *     └──────────── answer, or failure (logged once) ◀──────── requesting (REST client)
 *
 * A request is due at start (unless the state directory holds one made
 * within the interval for the same cell) and when the serving cell
 * changes, and never more often than once per LocationIntervalSec: a
 * change within the interval is looked at again when it ends.  A request
 * that failed is tried again at the end of the interval.  The result is
 * logged with LOCATION_* fields and MESSAGE_ID_LOCATION, kept in
 * <StateDirectory>/location and readable with location_manager_get_fix().
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "cell-info.h"
#include "config.h"
#include "macro.h"

#define LOCATION_COMMAND_TIMEOUT_USEC (10u * 1000u * 1000u)
#define LOCATION_NCELLMEAS_TIMEOUT_USEC (15u * 1000u * 1000u)
#define LOCATION_TIME_RETRY_MIN_USEC (5u * 1000u * 1000u)
#define LOCATION_TIME_RETRY_MAX_USEC (300u * 1000u * 1000u)
#define LOCATION_STATE_FILE "location"

typedef struct LocationManager LocationManager;
typedef struct Modem Modem;

typedef enum LocationState {
        LOCATION_OFF,
        LOCATION_IDLE,
        LOCATION_MONITOR,   /* %XMONITOR in flight */
        LOCATION_MEASURING, /* %NCELLMEAS and its URC */
        LOCATION_TOKEN,     /* a JWT from the modem */
        LOCATION_REQUESTING,
        _LOCATION_STATE_MAX,
} LocationState;

typedef struct LocationFix {
        double latitude;    /* degrees */
        double longitude;
        double uncertainty; /* metres */
        char method[16];    /* nRF Cloud's "fulfilledWith": "MCELL", "SCELL" */
        int64_t time;       /* CLOCK_REALTIME seconds when it was received */
        CellId cell;        /* the serving cell it was asked for */
} LocationFix;

int location_manager_new(sd_event *event, const Config *config, Modem *modem, LocationManager **ret);
LocationManager *location_manager_free(LocationManager *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(LocationManager *, location_manager_free);

/* The modem is (or is no longer) registered to a network; +CEREG, also on a cell change. */
void location_manager_set_registered(LocationManager *l, bool registered);

/* Accessors for status displays (D-Bus, gatewayctl). */
const LocationFix *location_manager_get_fix(const LocationManager *l); /* NULL: none yet */
LocationState location_manager_get_state(const LocationManager *l);
/* Requests sent since start (for tests and statistics). */
unsigned location_manager_get_requests(const LocationManager *l);
/* Why the last request failed ("HTTP 400, nRF Cloud error 40499: …"); "" after an answer. */
const char *location_manager_get_last_error(const LocationManager *l);
/* An observer called after the state, the fix, the request count or the last error changed; NULL to stop. */
typedef void (*location_changed_cb)(LocationManager *l, void *userdata);
void location_manager_set_changed_callback(LocationManager *l, location_changed_cb cb, void *userdata);
const char *location_state_to_string(LocationState s);
