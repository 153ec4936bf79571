/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The modem manager: one nRF91 on one serial port.
 *
 *   closed ──start──▶ probing ──identity and credentials read──▶ ready
 *      ▲                 │  ▲                                     │
 *      │           failed│  └──────── "Ready" (firmware reboot) ──┘
 *      └──port lost──────┴──▶ failed ──backoff──▶ probing
 *
 * Probing is a static table of commands: AT, ATE0, AT+CMEE=1, #XUUID,
 * +CGSN=1, +CGMR, #XSMVER, #XFOTAINFO, then %CMNG=1,<tag> to check that the security
 * tag holds the CA, the client certificate and the private key.  Missing
 * credentials are reported clearly but do not keep the manager from ready:
 * the identity is still useful, and the operator needs to see it.
 *
 * While ready, the manager checks the link itself: when no command is in
 * flight for [Modem] LinkCheckSec= it sends "AT" (answered by the
 * application, no radio traffic), and a counted payload whose bytes stop
 * (at-engine.h, AT_BINARY_GAP_USEC) means bytes were lost.  Either failure
 * is logged once and the manager starts over as after "Ready": the modem's
 * sockets are dropped (their streams cannot be trusted) and the probe runs
 * once the engine is in sync again.  A dead or desynchronised link is so
 * found within LinkCheckSec + MODEM_LINK_CHECK_TIMEOUT_USEC, whatever the
 * MQTT keepalive.
 *
 * The JWT service asks the modem for %JWT signed with the client key of the
 * tag, caches the token until 60 s before it expires, and lets concurrent
 * requests share one modem call.
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "at-link.h"
#include "config.h"
#include "identity.h"
#include "message-ids.h"
#include "modem-fota.h"

#define MODEM_PROBE_TIMEOUT_USEC (2u * 1000u * 1000u)
#define MODEM_REPROBE_MIN_USEC (1u * 1000u * 1000u)
#define MODEM_REPROBE_MAX_USEC (60u * 1000u * 1000u)
#define MODEM_LINK_CHECK_TIMEOUT_USEC (5u * 1000u * 1000u)
#define MODEM_JWT_EXP_DELTA_SEC 3600u
#define MODEM_JWT_REFRESH_MARGIN_SEC 60u
#define MODEM_JWT_WAITERS_MAX 64u
#define MODEM_JWT_TIMEOUT_USEC (10u * 1000u * 1000u)

typedef struct Modem Modem;

typedef enum ModemState {
        MODEM_CLOSED,  /* not started, or the port is gone */
        MODEM_PROBING, /* running the probe table */
        MODEM_READY,   /* identity known, credentials checked */
        MODEM_FAILED,  /* the probe failed; retrying after a backoff */
        _MODEM_STATE_MAX,
} ModemState;

typedef struct ModemIdentity {
        char uuid[MODEM_UUID_STRING_MAX]; /* "" if unknown */
        char imei[MODEM_IMEI_STRING_MAX];
        char *modem_firmware;             /* +CGMR */
        char *firmware_version;           /* #XSMVER */
        char *device_id;                  /* [Gateway] DeviceId= or the UUID */
        bool has_credential[3];           /* CA, client certificate, private key in the tag */
        char sha256[3][65];
        bool has_fota;                    /* the firmware answered #XFOTAINFO */
        ModemFotaInfo fota;
} ModemIdentity;

typedef struct ModemCallbacks {
        void (*state_changed)(Modem *m, ModemState old_state, ModemState new_state, void *userdata);
        /* A "#XFOTA:" URC (modem-fota.h). */
        void (*fota_event)(Modem *m, const ModemFotaEvent *ev, void *userdata);
} ModemCallbacks;

int modem_new(sd_event *event, const Config *config, Modem **ret);
Modem *modem_free(Modem *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Modem *, modem_free);

void modem_set_callbacks(Modem *m, const ModemCallbacks *cb, void *userdata);
int modem_start(Modem *m);
void modem_stop(Modem *m);

ModemState modem_get_state(const Modem *m);
const ModemIdentity *modem_get_identity(const Modem *m);
bool modem_credentials_complete(const Modem *m);
AtEngine *modem_get_engine(Modem *m);
const char *modem_state_to_string(ModemState s);

/* JWT service.  cb gets 0 and the token, or a negative errno and NULL. */
typedef void (*modem_jwt_cb)(Modem *m, int error, const char *jwt, void *userdata);
int modem_jwt_request(Modem *m, modem_jwt_cb cb, void *userdata);
/* Forgets the pending requests of (cb, userdata). */
void modem_jwt_cancel(Modem *m, modem_jwt_cb cb, void *userdata);
/* Modem calls made for JWTs since start (for tests and statistics). */
unsigned modem_jwt_modem_calls(const Modem *m);
