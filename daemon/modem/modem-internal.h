/* SPDX-License-Identifier: MIT */
#pragma once

/* The modem manager's object, shared by modem.c and modem-fota.c only. */

#include "backoff.h"
#include "modem.h"

typedef int (*modem_step_parse)(Modem *m, const AtResponse *r);

typedef struct ModemStep {
        const char *command;   /* a format when with_sec_tag */
        bool with_sec_tag;
        bool optional;         /* a failure is logged and the probe goes on */
        modem_step_parse parse;
} ModemStep;

typedef struct JwtWaiter {
        modem_jwt_cb cb;
        void *userdata;
} JwtWaiter;

struct Modem {
        sd_event *event;
        AtLink *link;
        char *port;
        unsigned sec_tag;
        uint64_t command_timeout_usec;
        char *configured_device_id;
        ModemState state;

        const ModemCallbacks *cb;
        void *userdata;

        /* Probe. */
        size_t step;
        int64_t step_id;        /* the command in flight for the probe, 0: none */
        sd_event_source *reprobe_timer;
        Backoff backoff;
        ModemIdentity identity;
        bool credentials_reported;

        /* The link check while ready (modem.h). */
        uint64_t link_check_usec;
        sd_event_source *link_check_timer;
        int64_t link_check_id;  /* the "AT" in flight, 0: none */

        /* JWT service. */
        char *jwt;
        int64_t jwt_valid_until; /* CLOCK_REALTIME seconds */
        int64_t jwt_id;          /* the %JWT command in flight, 0: none */
        JwtWaiter waiters[MODEM_JWT_WAITERS_MAX];
        size_t n_waiters;
        unsigned jwt_calls;

        /* FOTA (modem-fota.c): the one FOTA command in flight. */
        int64_t fota_id;
        ModemFotaRequestKind fota_kind;
        modem_fota_cb fota_cb;
        modem_fota_info_cb fota_info_cb;
        void *fota_userdata;
};

/* Runs the probe table again (identity, versions, FOTA state), as after "Ready". */
void modem_reprobe(Modem *m);
/* modem-fota.c: the #XFOTA URC, registered by modem_new(). */
void modem_fota_on_urc(AtEngine *e, const char *line, const uint8_t *payload, size_t len, void *userdata);
/* Fails the FOTA command in flight (the firmware or the port went away). */
void modem_fota_fail(Modem *m, int error);
