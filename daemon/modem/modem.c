/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backoff.h"
#include "jwt.h"
#include "log.h"
#include "modem-internal.h"
#include "util.h"

static char *mfree(char *p) {
        free(p);
        return NULL;
}

static const char *const modem_state_table[_MODEM_STATE_MAX] = {
        [MODEM_CLOSED] = "closed",
        [MODEM_PROBING] = "probing",
        [MODEM_READY] = "ready",
        [MODEM_FAILED] = "failed",
};

const char *modem_state_to_string(ModemState s) {
        return s >= 0 && s < _MODEM_STATE_MAX ? modem_state_table[s] : NULL;
}

#define MODEM_FIELDS(m) LOG_FIELDS({ "MODEM_PORT", (m)->port }, { "MODEM_STATE", modem_state_to_string((m)->state) })

static int step_uuid(Modem *m, const AtResponse *r);
static int step_imei(Modem *m, const AtResponse *r);
static int step_cgmr(Modem *m, const AtResponse *r);
static int step_smver(Modem *m, const AtResponse *r);
static int step_cmng(Modem *m, const AtResponse *r);
static int step_fotainfo(Modem *m, const AtResponse *r);

/* modem-link.md "Host rules" and nrf91-at.md §9: probe, quiet the echo, numeric errors, identity, credentials. */
static const ModemStep probe_steps[] = {
        { "AT", false, false, NULL },
        { "ATE0", false, false, NULL },
        { "AT+CMEE=1", false, false, NULL },
        { "AT#XUUID", false, false, step_uuid },
        { "AT+CGSN=1", false, true, step_imei },
        { "AT+CGMR", false, true, step_cgmr },
        { "AT#XSMVER", false, true, step_smver },
        /* What the firmware can apply and where a FOTA stands (modem-fota.h); older firmware has none. */
        { "AT#XFOTAINFO", false, true, step_fotainfo },
        { "AT%%CMNG=1,%u", true, false, step_cmng },
};

static void identity_clear(ModemIdentity *id) {
        free(id->modem_firmware);
        free(id->firmware_version);
        free(id->device_id);
        *id = (ModemIdentity){};
}

static void modem_jwt_fail_all(Modem *m, int error);
static void modem_start_probe(Modem *m);
static void modem_link_check_stop(Modem *m);
static void modem_link_check_arm(Modem *m);

static void modem_enter_state(Modem *m, ModemState s) {
        ModemState old = m->state;

        if (old == s)
                return;
        log_fields(LOG_DEBUG, MODEM_FIELDS(m), "Modem %s: %s -> %s", m->port, modem_state_to_string(old),
                   modem_state_to_string(s));
        m->state = s;

        /* Drop what the old state had armed. */
        switch (old) {
        case MODEM_PROBING:
                if (m->step_id > 0)
                        at_engine_cancel(at_link_engine(m->link), m->step_id);
                m->step_id = 0;
                break;
        case MODEM_READY:
                modem_link_check_stop(m);
                if (m->jwt_id > 0)
                        at_engine_cancel(at_link_engine(m->link), m->jwt_id);
                m->jwt_id = 0;
                m->jwt = mfree(m->jwt);
                modem_jwt_fail_all(m, -ECONNRESET);
                modem_fota_fail(m, -ECONNRESET);
                break;
        case MODEM_FAILED:
                m->reprobe_timer = sd_event_source_disable_unref(m->reprobe_timer);
                break;
        case MODEM_CLOSED:
        case _MODEM_STATE_MAX:
                break;
        }

        if (s == MODEM_READY)
                modem_link_check_arm(m);
        if (m->cb && m->cb->state_changed)
                m->cb->state_changed(m, old, s, m->userdata);
}

static int on_reprobe(sd_event_source *s, uint64_t usec, void *userdata) {
        Modem *m = userdata;
        (void) s;
        (void) usec;
        m->reprobe_timer = sd_event_source_disable_unref(m->reprobe_timer);
        modem_start_probe(m);
        return 0;
}

static void modem_probe_failed(Modem *m, const char *what, const AtResponse *r) {
        char desc[160];
        uint64_t delay;
        int k;

        modem_enter_state(m, MODEM_FAILED);
        delay = backoff_next(&m->backoff);
        log_fields_errno(LOG_WARNING, r->result, MODEM_FIELDS(m), "Modem on %s did not answer '%s' (%s), retrying in %.1fs",
                         m->port, what, at_response_describe(r, desc, sizeof desc), (double) delay / 1e6);
        k = sd_event_add_time_relative(m->event, &m->reprobe_timer, CLOCK_MONOTONIC, delay, 10000, on_reprobe, m);
        if (k < 0)
                log_fields_errno(LOG_ERR, k, MODEM_FIELDS(m), "Failed to arm the probe timer: %m");
}

static void modem_report_ready(Modem *m) {
        const ModemIdentity *id = &m->identity;
        char red[MODEM_IMEI_STRING_MAX];
        const char *imei = id->imei[0] ? imei_redact(id->imei, red) : NULL;

        /* Identity as journal fields for fleet filtering; the IMEI is personal data, so redacted. */
        log_fields(LOG_INFO,
                   LOG_FIELDS({ "MESSAGE_ID", MESSAGE_ID_MODEM_READY }, { "MODEM_PORT", m->port },
                              { "DEVICE_ID", id->device_id }, { "MODEM_UUID", id->uuid[0] ? id->uuid : NULL },
                              { "MODEM_IMEI", imei },
                              { "MODEM_FIRMWARE", id->modem_firmware }, { "FIRMWARE_VERSION", id->firmware_version }),
                   "Modem ready on %s: device id %s, modem firmware %s, firmware %s, IMEI %s", m->port,
                   id->device_id, strna(id->modem_firmware), strna(id->firmware_version), strna(imei));

        if (!modem_credentials_complete(m)) {
                char missing[128] = "";
                for (CredType t = CRED_ROOT_CA; t <= CRED_CLIENT_KEY; t++)
                        if (!id->has_credential[t]) {
                                if (missing[0])
                                        strncat(missing, ", ", sizeof missing - strlen(missing) - 1);
                                strncat(missing, cred_type_to_string(t), sizeof missing - strlen(missing) - 1);
                        }
                log_fields(LOG_WARNING,
                           LOG_FIELDS({ "MESSAGE_ID", MESSAGE_ID_MODEM_CREDENTIALS_MISSING },
                                      { "MODEM_PORT", m->port }, { "DEVICE_ID", id->device_id },
                                      { "MODEM_MISSING_CREDENTIALS", missing }),
                           "Security tag %u on the modem lacks: %s. The gateway cannot connect to nRF Cloud; "
                           "stop the service and run 'nrfcloud-gatewayctl provision'.",
                           m->sec_tag, missing);
        }
}

static void on_step_done(AtEngine *e, const AtResponse *r, void *userdata);

static void modem_run_step(Modem *m) {
        const ModemStep *s;
        char cmd[64];
        int64_t id;

        if (m->step >= ELEMENTSOF(probe_steps)) {
                backoff_reset(&m->backoff);
                if (!m->identity.device_id) {
                        m->identity.device_id = strdup(m->configured_device_id ? m->configured_device_id : m->identity.uuid);
                        if (!m->identity.device_id) {
                                AtResponse oom = { .result = -ENOMEM };
                                modem_probe_failed(m, "device id", &oom);
                                return;
                        }
                }
                modem_enter_state(m, MODEM_READY);
                modem_report_ready(m);
                return;
        }
        s = &probe_steps[m->step];
        if (s->with_sec_tag)
                snprintf(cmd, sizeof cmd, s->command, m->sec_tag);
        else
                snprintf(cmd, sizeof cmd, "%s", s->command);
        /* The first probe is short; a silent modem is resynchronised by the engine. */
        id = at_engine_send(at_link_engine(m->link), cmd,
                            m->step == 0 ? MODEM_PROBE_TIMEOUT_USEC : m->command_timeout_usec, on_step_done, m);
        if (id < 0) {
                AtResponse r = { .result = (int) id };
                modem_probe_failed(m, cmd, &r);
                return;
        }
        m->step_id = id;
}

static void on_step_done(AtEngine *e, const AtResponse *r, void *userdata) {
        Modem *m = userdata;
        const ModemStep *s = &probe_steps[m->step];
        char desc[160];
        int k;
        (void) e;

        m->step_id = 0;
        if (m->state != MODEM_PROBING)
                return;
        k = r->result;
        if (k >= 0 && s->parse)
                k = s->parse(m, r);
        if (k < 0) {
                if (!s->optional) {
                        AtResponse copy = *r;
                        copy.result = k;
                        modem_probe_failed(m, s->command, &copy);
                        return;
                }
                log_fields(LOG_NOTICE, MODEM_FIELDS(m), "Modem on %s: '%s' failed (%s), going on without it", m->port,
                           s->command, at_response_describe(r, desc, sizeof desc));
        }
        m->step++;
        modem_run_step(m);
}

static void modem_start_probe(Modem *m) {
        identity_clear(&m->identity);
        m->step = 0;
        modem_enter_state(m, MODEM_PROBING);
        modem_run_step(m);
}

static int step_uuid(Modem *m, const AtResponse *r) {
        for (size_t i = 0; i < r->n_lines; i++)
                if (at_parse_xuuid(r->lines[i], m->identity.uuid) >= 0)
                        return 0;
        return -EBADMSG;
}

static int step_imei(Modem *m, const AtResponse *r) {
        for (size_t i = 0; i < r->n_lines; i++)
                if (at_parse_cgsn(r->lines[i], m->identity.imei) >= 0)
                        return 0;
        return -EBADMSG;
}

static int step_cgmr(Modem *m, const AtResponse *r) {
        for (size_t i = 0; i < r->n_lines; i++)
                if (at_parse_cgmr(r->lines[i], &m->identity.modem_firmware) >= 0)
                        return 0;
        return -EBADMSG;
}

static int step_smver(Modem *m, const AtResponse *r) {
        for (size_t i = 0; i < r->n_lines; i++)
                if (at_parse_smver(r->lines[i], &m->identity.firmware_version, NULL) >= 0)
                        return 0;
        return -EBADMSG;
}

static int step_cmng(Modem *m, const AtResponse *r) {
        for (size_t i = 0; i < r->n_lines; i++) {
                CmngEntry e;
                if (at_parse_cmng_list(r->lines[i], &e) < 0) {
                        log_fields(LOG_DEBUG, MODEM_FIELDS(m), "Unexpected line in the credential list, ignoring");
                        continue;
                }
                if (e.sec_tag != m->sec_tag || e.type > CRED_CLIENT_KEY)
                        continue;
                m->identity.has_credential[e.type] = true;
                if (e.has_sha)
                        memcpy(m->identity.sha256[e.type], e.sha256, sizeof e.sha256);
        }
        return 0;
}

static int step_fotainfo(Modem *m, const AtResponse *r) {
        for (size_t i = 0; i < r->n_lines; i++)
                if (modem_fota_info_parse(r->lines[i], &m->identity.fota) >= 0) {
                        m->identity.has_fota = true;
                        return 0;
                }
        return -EBADMSG;
}

void modem_reprobe(Modem *m) {
        if (m->state == MODEM_CLOSED)
                return;
        backoff_reset(&m->backoff);
        modem_start_probe(m);
}

static void on_ready_urc(AtEngine *e, const char *line, const uint8_t *payload, size_t len, void *userdata) {
        Modem *m = userdata;
        (void) e;
        (void) payload;
        (void) len;

        if (!streq(line, "Ready"))
                return;
        switch (m->state) {
        case MODEM_READY:
                log_fields(LOG_WARNING, MODEM_FIELDS(m), "Modem firmware on %s restarted, starting over", m->port);
                break;
        case MODEM_PROBING:
        case MODEM_FAILED:
                log_fields(LOG_INFO, MODEM_FIELDS(m), "Modem firmware on %s started, probing again", m->port);
                break;
        case MODEM_CLOSED:
        case _MODEM_STATE_MAX:
                return;
        }
        /* Everything in flight belonged to the firmware that is gone. */
        modem_enter_state(m, MODEM_CLOSED);
        at_engine_reset(at_link_engine(m->link), -ECONNRESET);
        backoff_reset(&m->backoff);
        modem_start_probe(m);
}

/* ---- The link check ---- */

static void modem_link_check_stop(Modem *m) {
        m->link_check_timer = sd_event_source_disable_unref(m->link_check_timer);
        if (m->link_check_id > 0)
                at_engine_cancel(at_link_engine(m->link), m->link_check_id);
        m->link_check_id = 0;
}

/* The link lost bytes or went silent while ready: whatever the modem's sockets
 * carried can no longer be trusted.  Start over as after "Ready"; the engine
 * resynchronises first, so the probe runs once the firmware answers again. */
static void modem_link_failed(Modem *m) {
        if (m->state != MODEM_READY)
                return;
        modem_enter_state(m, MODEM_CLOSED);
        backoff_reset(&m->backoff);
        modem_start_probe(m);
}

static void on_link_check_done(AtEngine *e, const AtResponse *r, void *userdata) {
        Modem *m = userdata;
        (void) e;

        m->link_check_id = 0;
        if (m->state != MODEM_READY)
                return;
        /* ERROR or +CME ERROR is an answer too: the link works. */
        if (r->result < 0 && r->final == AT_LINE_INFO) {
                char desc[160];
                log_fields(LOG_WARNING, MODEM_FIELDS(m),
                           "Modem link %s failed its check: 'AT' got %s; dropping the modem's sockets and probing again",
                           m->port, at_response_describe(r, desc, sizeof desc));
                modem_link_failed(m);
                return;
        }
        modem_link_check_arm(m);
}

static int on_link_check_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Modem *m = userdata;
        AtEngine *e = at_link_engine(m->link);
        int64_t id;
        (void) s, (void) usec;

        m->link_check_timer = sd_event_source_disable_unref(m->link_check_timer);
        if (m->state != MODEM_READY)
                return 0;
        /* Commands in flight have timeouts of their own: only an idle link is checked. */
        if (at_engine_queue_length(e) > 0 || at_engine_get_state(e) != AT_ENGINE_IDLE) {
                modem_link_check_arm(m);
                return 0;
        }
        id = at_engine_send(e, "AT", MIN(m->command_timeout_usec, (uint64_t) MODEM_LINK_CHECK_TIMEOUT_USEC),
                            on_link_check_done, m);
        if (id < 0) {
                log_fields_errno(LOG_DEBUG, (int) id, MODEM_FIELDS(m), "Cannot queue the link check, ignoring: %m");
                modem_link_check_arm(m);
                return 0;
        }
        m->link_check_id = id;
        return 0;
}

static void modem_link_check_arm(Modem *m) {
        int r;

        if (m->link_check_usec == 0 || m->link_check_timer || m->link_check_id > 0)
                return;
        r = sd_event_add_time_relative(m->event, &m->link_check_timer, CLOCK_MONOTONIC, m->link_check_usec,
                                       100 * 1000, on_link_check_timer, m);
        if (r < 0)
                log_fields_errno(LOG_WARNING, r, MODEM_FIELDS(m), "Failed to arm the link check, ignoring: %m");
}

static void on_engine_event(AtEngine *e, AtEngineEvent ev, int error, void *userdata) {
        Modem *m = userdata;
        AtStall st;
        (void) error;

        switch (ev) {
        case AT_ENGINE_EVENT_PAYLOAD_STALLED:
                (void) at_engine_payload_stalls(e, &st);
                log_fields(LOG_WARNING, MODEM_FIELDS(m),
                           "Modem link %s lost bytes: '%s' announced %zu bytes, %zu came before the link went quiet; "
                           "resynchronising%s",
                           m->port, st.header, st.announced, st.received,
                           m->state == MODEM_READY ? ", dropping the modem's sockets and probing again" : "");
                modem_link_failed(m);
                return;
        case AT_ENGINE_EVENT_SYNC_LOST:
        case AT_ENGINE_EVENT_SYNCED:
        case AT_ENGINE_EVENT_UNRESPONSIVE:
        case AT_ENGINE_EVENT_WRITE_FAILED:
        case _AT_ENGINE_EVENT_MAX:
                return;
        }
}

static void on_link_opened(AtLink *l, void *userdata) {
        Modem *m = userdata;
        (void) l;
        backoff_reset(&m->backoff);
        modem_start_probe(m);
}

static void on_link_lost(AtLink *l, int error, void *userdata) {
        Modem *m = userdata;
        (void) l;
        (void) error;
        modem_enter_state(m, MODEM_CLOSED);
}

static const AtLinkCallbacks link_callbacks = {
        .opened = on_link_opened,
        .lost = on_link_lost,
};

int modem_new(sd_event *event, const Config *config, Modem **ret) {
        _cleanup_(modem_freep) Modem *m = NULL;
        int r;

        if (!config->modem_port)
                return -EINVAL;
        m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        m->event = sd_event_ref(event);
        m->state = MODEM_CLOSED;
        m->sec_tag = config->sec_tag;
        m->command_timeout_usec = (uint64_t) MAX(config->modem_command_timeout_sec, 1u) * UINT64_C(1000000);
        m->link_check_usec = (uint64_t) config->modem_link_check_sec * UINT64_C(1000000);
        backoff_init(&m->backoff, MODEM_REPROBE_MIN_USEC, MODEM_REPROBE_MAX_USEC);
        m->port = strdup(config->modem_port);
        if (!m->port)
                return -ENOMEM;
        if (config->device_id) {
                m->configured_device_id = strdup(config->device_id);
                if (!m->configured_device_id)
                        return -ENOMEM;
        }
        r = at_link_new(event, config->modem_port, config->modem_baud_rate, config->modem_flow_control, &m->link);
        if (r < 0)
                return r;
        at_link_set_callbacks(m->link, &link_callbacks, m);
        at_engine_set_event_handler(at_link_engine(m->link), on_engine_event, m);
        r = at_engine_add_urc(at_link_engine(m->link), "Ready", on_ready_urc, m);
        if (r < 0)
                return r;
        r = at_engine_add_urc(at_link_engine(m->link), "#XFOTA:", modem_fota_on_urc, m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

Modem *modem_free(Modem *m) {
        if (!m)
                return NULL;
        m->reprobe_timer = sd_event_source_disable_unref(m->reprobe_timer);
        m->link_check_timer = sd_event_source_disable_unref(m->link_check_timer);
        m->n_waiters = 0; /* no callbacks into owners that are going away */
        m->fota_cb = NULL;
        m->fota_info_cb = NULL;
        m->link = at_link_free(m->link);
        identity_clear(&m->identity);
        free(m->jwt);
        free(m->port);
        free(m->configured_device_id);
        sd_event_unref(m->event);
        free(m);
        return NULL;
}

void modem_set_callbacks(Modem *m, const ModemCallbacks *cb, void *userdata) {
        m->cb = cb;
        m->userdata = userdata;
}

int modem_start(Modem *m) {
        log_fields(LOG_INFO, MODEM_FIELDS(m), "Opening modem port %s", m->port);
        return at_link_start(m->link);
}

void modem_stop(Modem *m) {
        modem_enter_state(m, MODEM_CLOSED);
        m->reprobe_timer = sd_event_source_disable_unref(m->reprobe_timer);
        at_link_close(m->link);
}

ModemState modem_get_state(const Modem *m) {
        return m->state;
}

const ModemIdentity *modem_get_identity(const Modem *m) {
        return &m->identity;
}

bool modem_credentials_complete(const Modem *m) {
        return m->identity.has_credential[CRED_ROOT_CA] && m->identity.has_credential[CRED_CLIENT_CERT] &&
               m->identity.has_credential[CRED_CLIENT_KEY];
}

AtEngine *modem_get_engine(Modem *m) {
        return at_link_engine(m->link);
}

/* JWT service. */

static int64_t realtime_sec(void) {
        return (int64_t) (now_usec(CLOCK_REALTIME) / UINT64_C(1000000));
}

static void modem_jwt_fail_all(Modem *m, int error) {
        /* Callbacks may add new waiters; hand out the current list only. */
        JwtWaiter w[MODEM_JWT_WAITERS_MAX];
        size_t n = m->n_waiters;

        memcpy(w, m->waiters, n * sizeof w[0]);
        m->n_waiters = 0;
        for (size_t i = 0; i < n; i++)
                w[i].cb(m, error, NULL, w[i].userdata);
}

static void modem_jwt_deliver(Modem *m, const char *jwt) {
        JwtWaiter w[MODEM_JWT_WAITERS_MAX];
        size_t n = m->n_waiters;

        memcpy(w, m->waiters, n * sizeof w[0]);
        m->n_waiters = 0;
        for (size_t i = 0; i < n; i++)
                w[i].cb(m, 0, jwt, w[i].userdata);
}

static void on_jwt_done(AtEngine *e, const AtResponse *r, void *userdata) {
        Modem *m = userdata;
        _cleanup_free_ char *jwt = NULL;
        char desc[160];
        int64_t now = realtime_sec(), exp, until;
        int k = r->result;
        (void) e;

        m->jwt_id = 0;
        for (size_t i = 0; k >= 0 && i < r->n_lines; i++)
                if (at_parse_quoted(r->lines[i], "%JWT", MODEM_JWT_MAX, &jwt) >= 0)
                        break;
        if (k >= 0 && !jwt)
                k = -EBADMSG;
        if (k < 0) {
                log_fields_errno(LOG_WARNING, k, MODEM_FIELDS(m), "Modem could not sign a JWT: %s",
                                 r->result < 0 ? at_response_describe(r, desc, sizeof desc) : "unexpected answer");
                modem_jwt_fail_all(m, k);
                return;
        }

        /*
         * Cache until 60 s before "exp" (the modem's clock), never past what
         * we asked for.  A token without "exp" means the modem had no time
         * yet (nrf91-at.md §5.2): it is handed out but not kept, so the next
         * request asks again once the network has given the modem a time.
         */
        until = now + MODEM_JWT_EXP_DELTA_SEC;
        if (jwt_get_exp(jwt, &exp) >= 0) {
                if (exp < until)
                        until = exp;
        } else
                until = now;
        until -= MODEM_JWT_REFRESH_MARGIN_SEC;
        free(m->jwt);
        m->jwt = NULL;
        if (until > now) {
                m->jwt = strdup(jwt);
                m->jwt_valid_until = until;
        }
        log_fields(LOG_DEBUG, MODEM_FIELDS(m), "Modem signed a JWT (%zu bytes), cached for %llds", strlen(jwt),
                   (long long) (m->jwt ? until - now : 0));
        modem_jwt_deliver(m, jwt);
}

int modem_jwt_request(Modem *m, modem_jwt_cb cb, void *userdata) {
        char cmd[256];
        int64_t id;

        if (!cb)
                return -EINVAL;
        if (m->state != MODEM_READY)
                return -ENOTCONN;
        if (m->jwt && realtime_sec() < m->jwt_valid_until) {
                cb(m, 0, m->jwt, userdata);
                return 0;
        }
        m->jwt = mfree(m->jwt);
        if (m->n_waiters >= MODEM_JWT_WAITERS_MAX)
                return -ENOBUFS;
        m->waiters[m->n_waiters++] = (JwtWaiter){ .cb = cb, .userdata = userdata };
        if (m->jwt_id > 0)
                return 0; /* shares the call in flight */

        /* nrf91-at.md §5.4: ES256, exp, sub = device id, no aud, the client key (type 2) of the tag. */
        snprintf(cmd, sizeof cmd, "AT%%JWT=0,%u,\"%s\",\"\",%u,2", MODEM_JWT_EXP_DELTA_SEC, m->identity.device_id,
                 m->sec_tag);
        id = at_engine_send(at_link_engine(m->link), cmd, MODEM_JWT_TIMEOUT_USEC, on_jwt_done, m);
        if (id < 0) {
                m->n_waiters--;
                return (int) id;
        }
        m->jwt_id = id;
        m->jwt_calls++;
        return 0;
}

void modem_jwt_cancel(Modem *m, modem_jwt_cb cb, void *userdata) {
        size_t o = 0;
        for (size_t i = 0; i < m->n_waiters; i++)
                if (!(m->waiters[i].cb == cb && m->waiters[i].userdata == userdata))
                        m->waiters[o++] = m->waiters[i];
        m->n_waiters = o;
}

unsigned modem_jwt_modem_calls(const Modem *m) {
        return m->jwt_calls;
}
