/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "at-engine.h"
#include "backoff.h"
#include "jwt.h"
#include "location-manager.h"
#include "log.h"
#include "message-ids.h"
#include "modem.h"
#include "rest-client.h"
#include "util.h"

#define GROUND_FIX_PATH "/v1/location/ground-fix"
#define STATE_FILE_MAX 4096u
#define GROUND_FIX_ADV_MAX 20512u /* the largest timing advance the API takes, as nrf_cloud_codec clamps it */

struct LocationManager {
        sd_event *event;
        Modem *modem;
        AtEngine *engine;
        RestClient *rest;
        char *state_path;
        unsigned interval_sec;
        LocationState state;

        bool registered;
        bool first_check_done; /* the start request was considered */
        bool retry_due;        /* the last request failed: ask again once the interval allows */
        int64_t at_id;         /* the AT command in flight, 0: none */
        sd_event_source *timer; /* the interval, the %NCELLMEAS timeout, or the no-time retry */
        Backoff time_backoff;
        bool no_time_logged;

        CellMonitor monitor;   /* the serving cell of the current round */
        CellMeasurement meas;
        bool have_meas;

        uint64_t last_request; /* CLOCK_REALTIME µs, 0: never (the state file keeps seconds) */
        CellId last_cell;      /* the serving cell of that request */
        bool have_last_cell;
        LocationFix fix;
        bool have_fix;
        unsigned requests;

        /* The failure last logged at warning level; the same again is logged at debug. */
        bool failure_logged;
        int failure_error, failure_status;
        long long failure_code;
        char last_error[160];

        location_changed_cb changed_cb;
        void *changed_userdata;
};

static const char *const state_table[_LOCATION_STATE_MAX] = {
        [LOCATION_OFF] = "off",
        [LOCATION_IDLE] = "idle",
        [LOCATION_MONITOR] = "monitor",
        [LOCATION_MEASURING] = "measuring",
        [LOCATION_TOKEN] = "token",
        [LOCATION_REQUESTING] = "requesting",
};

const char *location_state_to_string(LocationState s) {
        return s >= 0 && s < _LOCATION_STATE_MAX ? state_table[s] : NULL;
}

static int64_t realtime_sec(void) {
        return (int64_t) (now_usec(CLOCK_REALTIME) / UINT64_C(1000000));
}

static void check(LocationManager *l);
static void on_jwt(Modem *m, int error, const char *jwt, void *userdata);

static void changed(LocationManager *l) {
        if (l->changed_cb)
                l->changed_cb(l, l->changed_userdata);
}

static void enter_state(LocationManager *l, LocationState s) {
        if (l->state == s)
                return;
        log_debug("Location: %s → %s", location_state_to_string(l->state), location_state_to_string(s));
        /* What the old state had armed. */
        switch (l->state) {
        case LOCATION_MONITOR:
        case LOCATION_MEASURING:
                if (l->at_id > 0)
                        at_engine_cancel(l->engine, l->at_id);
                l->at_id = 0;
                break;
        case LOCATION_TOKEN:
                modem_jwt_cancel(l->modem, on_jwt, l);
                break;
        case LOCATION_REQUESTING:
                if (s != LOCATION_IDLE)
                        rest_client_cancel(l->rest);
                break;
        case LOCATION_OFF:
        case LOCATION_IDLE:
        case _LOCATION_STATE_MAX:
                break;
        }
        l->timer = sd_event_source_disable_unref(l->timer);
        l->state = s;
        changed(l);
}

/* --- the state file --- */

static int state_load(LocationManager *l) {
        _cleanup_free_ char *text = NULL;
        json_t *root, *cell;
        size_t size;
        int r;

        r = read_full_file(l->state_path, STATE_FILE_MAX, &text, &size);
        if (r < 0)
                return r;
        root = json_loadb(text, size, JSON_REJECT_DUPLICATES, NULL);
        if (!root || !json_is_object(root)) {
                json_decref(root);
                return -EBADMSG;
        }
        json_int_t requested = json_integer_value(json_object_get(root, "requested"));
        l->last_request = requested > 0 ? (uint64_t) requested * UINT64_C(1000000) : 0;
        cell = json_object_get(root, "cell");
        if (json_is_object(cell)) {
                l->last_cell = (CellId){
                        .mcc = (uint16_t) json_integer_value(json_object_get(cell, "mcc")),
                        .mnc = (uint16_t) json_integer_value(json_object_get(cell, "mnc")),
                        .tac = (uint32_t) json_integer_value(json_object_get(cell, "tac")),
                        .eci = (uint32_t) json_integer_value(json_object_get(cell, "eci")),
                };
                l->have_last_cell = true;
        }
        if (json_is_number(json_object_get(root, "lat")) && json_is_number(json_object_get(root, "lon"))) {
                const char *m = json_string_value(json_object_get(root, "method"));
                l->fix = (LocationFix){
                        .latitude = json_number_value(json_object_get(root, "lat")),
                        .longitude = json_number_value(json_object_get(root, "lon")),
                        .uncertainty = json_number_value(json_object_get(root, "uncertainty")),
                        .time = json_integer_value(json_object_get(root, "time")),
                        .cell = l->last_cell,
                };
                snprintf(l->fix.method, sizeof l->fix.method, "%s", m ? m : "");
                l->have_fix = true;
        }
        json_decref(root);
        return 0;
}

static void state_save(LocationManager *l) {
        _cleanup_free_ char *tmp = NULL, *text = NULL;
        json_t *root;
        int fd;

        root = json_pack("{s:I}", "requested", (json_int_t) (l->last_request / UINT64_C(1000000)));
        if (!root)
                return;
        if (l->have_last_cell)
                (void) json_object_set_new(root, "cell",
                                           json_pack("{s:i, s:i, s:I, s:I}", "mcc", l->last_cell.mcc, "mnc",
                                                     l->last_cell.mnc, "tac", (json_int_t) l->last_cell.tac, "eci",
                                                     (json_int_t) l->last_cell.eci));
        if (l->have_fix) {
                (void) json_object_set_new(root, "lat", json_real(l->fix.latitude));
                (void) json_object_set_new(root, "lon", json_real(l->fix.longitude));
                (void) json_object_set_new(root, "uncertainty", json_real(l->fix.uncertainty));
                (void) json_object_set_new(root, "method", json_string(l->fix.method));
                (void) json_object_set_new(root, "time", json_integer(l->fix.time));
        }
        text = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        if (!text || asprintf(&tmp, "%s.tmp", l->state_path) < 0)
                return;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
                log_warning_errno(errno, "Cannot write %s, ignoring: %m", tmp);
                return;
        }
        if (write(fd, text, strlen(text)) != (ssize_t) strlen(text) || fsync(fd) < 0 || close(fd) < 0 ||
            rename(tmp, l->state_path) < 0) {
                log_warning_errno(errno, "Cannot save %s, ignoring: %m", l->state_path);
                (void) unlink(tmp);
        }
}

/* --- the request --- */

static json_t *cell_json(const LocationManager *l) {
        const CellMonitor *mon = &l->monitor;
        const CellMeasurement *m = &l->meas;
        bool use_meas = l->have_meas && m->status == 0 && m->has_serving && cell_id_equal(&m->id, &mon->id);
        json_t *cell, *nmr;
        int rsrp = use_meas ? m->rsrp : mon->rsrp;

        cell = json_pack("{s:i, s:i, s:I, s:I, s:I}", "mcc", mon->id.mcc, "mnc", mon->id.mnc, "eci",
                         (json_int_t) mon->id.eci, "tac", (json_int_t) mon->id.tac, "earfcn",
                         (json_int_t) (use_meas ? m->earfcn : mon->earfcn));
        if (!cell)
                return NULL;
        /* nrf_cloud_codec: RSRP_IDX_TO_DBM, RSRQ_IDX_TO_DB; unknown values are left out. */
        if (rsrp <= 97)
                (void) json_object_set_new(cell, "rsrp", json_integer(cell_rsrp_to_dbm(rsrp)));
        if (!use_meas)
                return cell;
        /* nrf_cloud_codec clamps the timing advance to what the API takes (NRF_CLOUD_CELL_POS_TIME_ADV_MAX). */
        if (m->timing_advance != CELL_TA_UNKNOWN)
                (void) json_object_set_new(cell, "adv", json_integer(MIN(m->timing_advance, GROUND_FIX_ADV_MAX)));
        if (m->rsrq <= 34)
                (void) json_object_set_new(cell, "rsrq", json_real(cell_rsrq_to_db(m->rsrq)));
        nmr = json_array();
        for (size_t i = 0; nmr && i < m->n_neighbours; i++) {
                const CellNeighbour *n = &m->neighbours[i];
                /* earfcn and pci are required, the levels optional (left out when unknown). */
                json_t *o = json_pack("{s:I, s:I}", "earfcn", (json_int_t) n->earfcn, "pci", (json_int_t) n->pci);
                if (!o)
                        continue;
                if (n->rsrp <= 97)
                        (void) json_object_set_new(o, "rsrp", json_integer(cell_rsrp_to_dbm(n->rsrp)));
                if (n->rsrq <= 34)
                        (void) json_object_set_new(o, "rsrq", json_real(cell_rsrq_to_db(n->rsrq)));
                (void) json_array_append_new(nmr, o);
        }
        if (nmr && json_array_size(nmr) > 0)
                (void) json_object_set_new(cell, "nmr", nmr);
        else
                json_decref(nmr);
        return cell;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata);

/* CLOCK_REALTIME µs from which the next request may go out. */
static uint64_t request_due(const LocationManager *l) {
        return l->last_request + (uint64_t) l->interval_sec * UINT64_C(1000000);
}

static void arm(LocationManager *l, clockid_t clock, uint64_t usec) {
        l->timer = sd_event_source_disable_unref(l->timer);
        if (sd_event_add_time(l->event, &l->timer, clock, usec, 0, on_timer, l) < 0)
                log_warning("Location: cannot arm a timer, the next request waits for a cell change");
}

static void log_failure(LocationManager *l, int error, int status, long long code, const char *message) {
        bool same = l->failure_logged && l->failure_error == error && l->failure_status == status &&
                    l->failure_code == code;
        int level = same ? LOG_DEBUG : LOG_WARNING;
        char st[16], cd[24];

        snprintf(st, sizeof st, "%d", status);
        snprintf(cd, sizeof cd, "%lld", code);
        if (error < 0)
                snprintf(l->last_error, sizeof l->last_error, "%s", strerror(-error));
        else
                snprintf(l->last_error, sizeof l->last_error, "HTTP %d, nRF Cloud error %lld%s%s", status, code,
                         message ? ": " : "", strempty(message));
        changed(l);
        if (error < 0)
                log_fields_errno(level, error, LOG_FIELDS({ "REST_HOST", rest_client_host(l->rest) }),
                                 "Location request to %s failed: %m; again in %us", rest_client_host(l->rest),
                                 l->interval_sec);
        else
                log_fields(level,
                           LOG_FIELDS({ "REST_HOST", rest_client_host(l->rest) }, { "HTTP_STATUS", st },
                                      { "NRFCLOUD_ERROR_CODE", code ? cd : NULL }),
                           "Location request to %s failed: HTTP %d, nRF Cloud error %lld%s%s; again in %us",
                           rest_client_host(l->rest), status, code, message ? ": " : "", strempty(message),
                           l->interval_sec);
        l->failure_logged = true;
        l->failure_error = error;
        l->failure_status = status;
        l->failure_code = code;
}

static void on_rest(RestClient *c, const RestResult *r, void *userdata) {
        LocationManager *l = userdata;
        json_t *lat, *lon, *unc, *how;
        char la[32], lo[32], un[32], tm[32];
        (void) c;

        enter_state(l, LOCATION_IDLE);
        lat = json_object_get(r->body, "lat");
        lon = json_object_get(r->body, "lon");
        unc = json_object_get(r->body, "uncertainty");
        how = json_object_get(r->body, "fulfilledWith");
        if (r->error < 0 || r->status != 200 || !json_is_number(lat) || !json_is_number(lon) ||
            fabs(json_number_value(lat)) > 90 || fabs(json_number_value(lon)) > 180) {
                log_failure(l, r->error, r->status, r->cloud_code,
                            r->status == 200 ? "answer without lat/lon" : r->cloud_message);
                l->retry_due = true;
                arm(l, CLOCK_REALTIME, request_due(l));
                return;
        }
        l->failure_logged = false;
        l->last_error[0] = 0;
        l->retry_due = false;
        l->fix = (LocationFix){
                .latitude = json_number_value(lat),
                .longitude = json_number_value(lon),
                .uncertainty = json_is_number(unc) ? json_number_value(unc) : NAN,
                .time = realtime_sec(),
                .cell = l->last_cell,
        };
        snprintf(l->fix.method, sizeof l->fix.method, "%s", json_is_string(how) ? json_string_value(how) : "");
        l->have_fix = true;
        state_save(l);
        changed(l);

        snprintf(la, sizeof la, "%.6f", l->fix.latitude);
        snprintf(lo, sizeof lo, "%.6f", l->fix.longitude);
        snprintf(un, sizeof un, "%.0f", l->fix.uncertainty);
        snprintf(tm, sizeof tm, "%" PRId64, l->fix.time);
        log_fields(LOG_INFO,
                   LOG_FIELDS({ "MESSAGE_ID", MESSAGE_ID_LOCATION }, { "LOCATION_LATITUDE", la },
                              { "LOCATION_LONGITUDE", lo }, { "LOCATION_UNCERTAINTY", un },
                              { "LOCATION_METHOD", l->fix.method }, { "LOCATION_TIME", tm }),
                   "Gateway location: %s, %s ±%s m (%s, %" PRIu64 " bytes over LTE)", la, lo, un, l->fix.method,
                   r->bytes_sent + r->bytes_received);
        /* A cell change while the request ran waits for the interval like any other. */
        arm(l, CLOCK_REALTIME, request_due(l));
}

static void on_jwt(Modem *m, int error, const char *jwt, void *userdata) {
        LocationManager *l = userdata;
        _cleanup_(json_decrefp) json_t *body = NULL, *cell = NULL;
        int64_t exp;
        uint64_t delay;
        int r;
        (void) m;

        if (l->state != LOCATION_TOKEN)
                return;
        if (error < 0) {
                enter_state(l, LOCATION_IDLE);
                l->retry_due = true;
                delay = backoff_next(&l->time_backoff);
                log_debug_errno(error, "Location: no JWT from the modem (%m), again in %llus",
                                (unsigned long long) (delay / 1000000));
                arm(l, CLOCK_MONOTONIC, now_usec(CLOCK_MONOTONIC) + delay);
                return;
        }
        /* A token without "exp": the modem has no time yet, and nRF Cloud would refuse it. */
        if (jwt_get_exp(jwt, &exp) < 0 || exp <= realtime_sec()) {
                enter_state(l, LOCATION_IDLE);
                l->retry_due = true;
                delay = backoff_next(&l->time_backoff);
                log_full(l->no_time_logged ? LOG_DEBUG : LOG_INFO,
                         "Location request waits for the modem's time (its JWT has no expiry); again in %llus",
                         (unsigned long long) (delay / 1000000));
                l->no_time_logged = true;
                arm(l, CLOCK_MONOTONIC, now_usec(CLOCK_MONOTONIC) + delay);
                return;
        }
        backoff_reset(&l->time_backoff);
        l->no_time_logged = false;

        cell = cell_json(l);
        body = json_pack("{s:[O]}", "lte", cell);
        if (!body) {
                enter_state(l, LOCATION_IDLE);
                return;
        }
        enter_state(l, LOCATION_REQUESTING);
        r = rest_client_request(l->rest, "POST", GROUND_FIX_PATH, jwt, body, on_rest, l);
        if (r < 0) {
                enter_state(l, LOCATION_IDLE);
                log_failure(l, r, 0, 0, NULL);
                return;
        }
        /* Counted when sent: a restart within the interval does not ask again, answer or not. */
        l->requests++;
        l->last_request = now_usec(CLOCK_REALTIME);
        l->last_cell = l->monitor.id;
        l->have_last_cell = true;
        state_save(l);
        changed(l);
}

static void request_token(LocationManager *l) {
        int r;

        enter_state(l, LOCATION_TOKEN);
        r = modem_jwt_request(l->modem, on_jwt, l);
        if (r < 0 && l->state == LOCATION_TOKEN)
                on_jwt(l->modem, r, NULL, l);
}

static void on_ncellmeas(AtEngine *e, const char *line, const uint8_t *payload, size_t len, void *userdata) {
        LocationManager *l = userdata;
        (void) e, (void) payload, (void) len;

        if (l->state != LOCATION_MEASURING)
                return;
        l->have_meas = cell_parse_ncellmeas(line, strlen(line), &l->meas) >= 0;
        if (!l->have_meas)
                log_debug("Location: cannot parse '%s', asking with the serving cell only", line);
        request_token(l);
}

static void on_ncellmeas_started(AtEngine *e, const AtResponse *r, void *userdata) {
        LocationManager *l = userdata;
        (void) e;

        l->at_id = 0;
        if (l->state == LOCATION_MEASURING && r->result < 0) {
                log_debug_errno(r->result, "Location: %%NCELLMEAS failed (%m), asking with the serving cell only");
                request_token(l);
        }
}

static void on_ignore(AtEngine *e, const AtResponse *r, void *userdata) {
        (void) e, (void) r, (void) userdata;
}

static void measure(LocationManager *l) {
        int64_t id;

        enter_state(l, LOCATION_MEASURING);
        l->have_meas = false;
        id = at_engine_send(l->engine, "AT%NCELLMEAS", LOCATION_COMMAND_TIMEOUT_USEC, on_ncellmeas_started, l);
        if (id < 0) {
                request_token(l);
                return;
        }
        l->at_id = id;
        arm(l, CLOCK_MONOTONIC, now_usec(CLOCK_MONOTONIC) + LOCATION_NCELLMEAS_TIMEOUT_USEC);
}

static void on_xmonitor(AtEngine *e, const AtResponse *r, void *userdata) {
        LocationManager *l = userdata;
        uint64_t now = now_usec(CLOCK_REALTIME), due;
        bool got = false, want;
        (void) e;

        l->at_id = 0;
        if (l->state != LOCATION_MONITOR)
                return;
        for (size_t i = 0; r->result >= 0 && i < r->n_lines && !got; i++)
                got = cell_parse_xmonitor(r->lines[i], strlen(r->lines[i]), &l->monitor) >= 0 && l->monitor.registered;
        enter_state(l, LOCATION_IDLE);
        if (!got)
                return; /* not registered after all: the next +CEREG brings us back */

        want = !l->have_last_cell || !cell_id_equal(&l->monitor.id, &l->last_cell) || l->retry_due;
        if (!l->first_check_done) {
                /* At start: unless a request for this cell was made within the interval. */
                l->first_check_done = true;
                if (now >= request_due(l))
                        want = true;
        }
        if (!want)
                return;
        due = request_due(l);
        if (l->last_request > 0 && now < due) {
                log_debug("Location: serving cell %" PRIu32 "/%" PRIu32 " asks for a request, due in %llus",
                          l->monitor.id.tac, l->monitor.id.eci, (unsigned long long) ((due - now) / 1000000));
                arm(l, CLOCK_REALTIME, due);
                return;
        }
        measure(l);
}

static void check(LocationManager *l) {
        int64_t id;

        if (l->state != LOCATION_IDLE || !l->registered)
                return;
        enter_state(l, LOCATION_MONITOR);
        id = at_engine_send(l->engine, "AT%XMONITOR", LOCATION_COMMAND_TIMEOUT_USEC, on_xmonitor, l);
        if (id < 0) {
                enter_state(l, LOCATION_IDLE);
                return;
        }
        l->at_id = id;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        LocationManager *l = userdata;
        (void) s, (void) usec;

        l->timer = sd_event_source_disable_unref(l->timer);
        if (l->state == LOCATION_MEASURING) {
                /* The URC did not come: stop the measurement and ask with the serving cell. */
                (void) at_engine_send(l->engine, "AT%NCELLMEASSTOP", LOCATION_COMMAND_TIMEOUT_USEC, on_ignore, NULL);
                request_token(l);
                return 0;
        }
        check(l);
        return 0;
}

void location_manager_set_registered(LocationManager *l, bool registered) {
        if (!l || l->state == LOCATION_OFF)
                return;
        l->registered = registered;
        if (!registered) {
                /* What runs needs the network: drop it.  An armed interval timer (idle) stays. */
                if (l->state == LOCATION_REQUESTING) {
                        /* Sent, never answered: ask again once registered and the interval allows. */
                        rest_client_cancel(l->rest);
                        l->retry_due = true;
                }
                if (l->state != LOCATION_IDLE)
                        enter_state(l, LOCATION_IDLE);
                return;
        }
        check(l);
}

const LocationFix *location_manager_get_fix(const LocationManager *l) {
        return l && l->have_fix ? &l->fix : NULL;
}

LocationState location_manager_get_state(const LocationManager *l) {
        return l ? l->state : LOCATION_OFF;
}

unsigned location_manager_get_requests(const LocationManager *l) {
        return l ? l->requests : 0;
}

const char *location_manager_get_last_error(const LocationManager *l) {
        return l ? l->last_error : "";
}

void location_manager_set_changed_callback(LocationManager *l, location_changed_cb cb, void *userdata) {
        if (!l)
                return;
        l->changed_cb = cb;
        l->changed_userdata = userdata;
}

int location_manager_new(sd_event *event, const Config *config, Modem *modem, LocationManager **ret) {
        _cleanup_(location_manager_freep) LocationManager *l = NULL;
        RestOptions o = {
                .host = config->rest_host,
                .port = config->rest_port,
                .ca_file = config->rest_ca_file,
        };
        int r;

        if (!event || !config || !modem || !ret)
                return -EINVAL;
        l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->event = sd_event_ref(event);
        l->modem = modem;
        l->engine = modem_get_engine(modem);
        l->interval_sec = config->location_interval_sec;
        l->state = LOCATION_OFF;
        backoff_init(&l->time_backoff, LOCATION_TIME_RETRY_MIN_USEC, LOCATION_TIME_RETRY_MAX_USEC);
        if (l->interval_sec == 0) {
                *ret = TAKE_PTR(l);
                return 0;
        }
        if (asprintf(&l->state_path, "%s/" LOCATION_STATE_FILE, config->state_directory) < 0)
                return -ENOMEM;
        r = state_load(l);
        if (r < 0 && r != -ENOENT)
                log_warning_errno(r, "Ignoring %s: %m", l->state_path);
        r = rest_client_new(event, &o, &l->rest);
        if (r < 0)
                return r;
        r = at_engine_add_urc(l->engine, "%NCELLMEAS:", on_ncellmeas, l);
        if (r < 0)
                return r;
        l->state = LOCATION_IDLE;
        *ret = TAKE_PTR(l);
        return 0;
}

LocationManager *location_manager_free(LocationManager *l) {
        if (!l)
                return NULL;
        l->changed_cb = NULL;
        if (l->state != LOCATION_OFF)
                enter_state(l, LOCATION_IDLE);
        if (l->engine)
                at_engine_remove_urc(l->engine, "%NCELLMEAS:", on_ncellmeas, l);
        modem_jwt_cancel(l->modem, on_jwt, l);
        l->timer = sd_event_source_disable_unref(l->timer);
        l->rest = rest_client_free(l->rest);
        free(l->state_path);
        sd_event_unref(l->event);
        free(l);
        return NULL;
}
