/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "at-line.h"
#include "log.h"
#include "modem-internal.h"
#include "util.h"

/* A reset answers at once; a download start waits for the firmware to open the connection. */
#define MODEM_FOTA_COMMAND_TIMEOUT_USEC (30u * 1000u * 1000u)

static const char *const modem_fota_state_table[_MODEM_FOTA_STATE_MAX] = {
        [MODEM_FOTA_STATE_IDLE] = "idle",
        [MODEM_FOTA_STATE_DOWNLOADING] = "downloading",
        [MODEM_FOTA_STATE_INTERRUPTED] = "interrupted",
        [MODEM_FOTA_STATE_SCHEDULED] = "scheduled",
        [MODEM_FOTA_STATE_TESTING] = "testing",
};

const char *modem_fota_state_to_string(ModemFotaState s) {
        return s >= 0 && s < _MODEM_FOTA_STATE_MAX ? modem_fota_state_table[s] : NULL;
}

/* #XFOTAINFO: <ops>,<state>,<op>,<received>,<total>,<result>,<result_info> */
int modem_fota_info_parse(const char *line, ModemFotaInfo *ret) {
        uint64_t ops, state, op, received, total;
        int64_t result, info;
        AtCursor c;
        int r;

        r = at_cursor_init(&c, line, strlen(line), "#XFOTAINFO");
        if (r < 0)
                return r;
        if (at_cursor_uint(&c, 0xffff, &ops) < 0 || at_cursor_uint(&c, _MODEM_FOTA_STATE_MAX - 1, &state) < 0 ||
            at_cursor_uint(&c, 15, &op) < 0 || at_cursor_uint(&c, UINT32_MAX, &received) < 0 ||
            at_cursor_uint(&c, UINT32_MAX, &total) < 0 || at_cursor_int(&c, -1, 255, &result) < 0 ||
            at_cursor_int(&c, INT32_MIN, INT32_MAX, &info) < 0 || state >= _MODEM_FOTA_STATE_MAX)
                return -EBADMSG;
        /* Later firmware may add fields: they are ignored. */
        *ret = (ModemFotaInfo){
                .ops = (unsigned) ops,
                .state = (ModemFotaState) state,
                .op = (unsigned) op,
                .received = received,
                .total = total,
                .result = (int) result,
                .result_info = (int) info,
        };
        return 0;
}

/* #XFOTA: <stage>,<status>[,<info>[,<cause>]] */
int modem_fota_event_parse(const char *line, ModemFotaEvent *ret) {
        ModemFotaEvent ev = {};
        uint64_t stage, status;
        AtCursor c;
        int r;

        r = at_cursor_init(&c, line, strlen(line), "#XFOTA");
        if (r < 0)
                return r;
        if (at_cursor_uint(&c, 9, &stage) < 0 || at_cursor_uint(&c, 9, &status) < 0)
                return -EBADMSG;
        ev.stage = (unsigned) stage;
        ev.status = (unsigned) status;
        if (!at_cursor_at_end(&c)) {
                if (at_cursor_int(&c, INT32_MIN, INT32_MAX, &ev.info) < 0)
                        return -EBADMSG;
                ev.has_info = true;
        }
        if (!at_cursor_at_end(&c)) {
                if (at_cursor_int(&c, INT32_MIN, INT32_MAX, &ev.cause) < 0)
                        return -EBADMSG;
                ev.has_cause = true;
        }
        *ret = ev;
        return 0;
}

void modem_fota_on_urc(AtEngine *e, const char *line, const uint8_t *payload, size_t len, void *userdata) {
        Modem *m = userdata;
        ModemFotaEvent ev;
        (void) e, (void) payload, (void) len;

        if (modem_fota_event_parse(line, &ev) < 0) {
                log_fields(LOG_DEBUG, LOG_FIELDS({ "MODEM_PORT", m->port }), "Ignoring a garbled FOTA line: %s", line);
                return;
        }
        if (m->cb && m->cb->fota_event)
                m->cb->fota_event(m, &ev, m->userdata);
}

static void modem_fota_take(Modem *m, ModemFotaRequestKind *ret_kind, modem_fota_cb *ret_cb,
                            modem_fota_info_cb *ret_info_cb, void **ret_userdata) {
        *ret_kind = m->fota_kind;
        *ret_cb = m->fota_cb;
        *ret_info_cb = m->fota_info_cb;
        *ret_userdata = m->fota_userdata;
        m->fota_id = 0;
        m->fota_kind = MODEM_FOTA_REQUEST_NONE;
        m->fota_cb = NULL;
        m->fota_info_cb = NULL;
        m->fota_userdata = NULL;
}

void modem_fota_fail(Modem *m, int error) {
        ModemFotaRequestKind kind;
        modem_fota_info_cb info_cb;
        modem_fota_cb cb;
        void *userdata;

        if (m->fota_id <= 0)
                return;
        at_engine_cancel(at_link_engine(m->link), m->fota_id);
        modem_fota_take(m, &kind, &cb, &info_cb, &userdata);
        if (cb)
                cb(m, error, userdata);
        else if (info_cb)
                info_cb(m, error, NULL, userdata);
}

static void on_fota_done(AtEngine *e, const AtResponse *r, void *userdata) {
        Modem *m = userdata;
        ModemFotaRequestKind kind;
        modem_fota_info_cb info_cb;
        modem_fota_cb cb;
        ModemFotaInfo info;
        void *cb_userdata;
        char desc[160];
        int k = at_response_firmware_errno(r);
        (void) e;

        modem_fota_take(m, &kind, &cb, &info_cb, &cb_userdata);
        if (k < 0)
                log_fields(LOG_DEBUG, LOG_FIELDS({ "MODEM_PORT", m->port }), "FOTA command failed: %s",
                           at_response_describe(r, desc, sizeof desc));

        switch (kind) {
        case MODEM_FOTA_REQUEST_INFO:
                if (k >= 0) {
                        k = -EBADMSG;
                        for (size_t i = 0; i < r->n_lines; i++)
                                if (modem_fota_info_parse(r->lines[i], &info) >= 0) {
                                        m->identity.fota = info;
                                        m->identity.has_fota = true;
                                        k = 0;
                                        break;
                                }
                }
                if (info_cb)
                        info_cb(m, k, k >= 0 ? &info : NULL, cb_userdata);
                return;
        case MODEM_FOTA_REQUEST_RESET_MODEM:
                /* "#XMODEMRESET: <result>[,<err>]": 0 ok, else failed. */
                for (size_t i = 0; k >= 0 && i < r->n_lines; i++) {
                        AtCursor c;
                        uint64_t result;
                        if (at_cursor_init(&c, r->lines[i], strlen(r->lines[i]), "#XMODEMRESET") >= 0 &&
                            at_cursor_uint(&c, 255, &result) >= 0 && result != 0)
                                k = -EIO;
                }
                /* No "Ready" follows a modem reset: read the versions and the FOTA state again. */
                if (r->result >= 0)
                        modem_reprobe(m);
                break;
        case MODEM_FOTA_REQUEST_START:
        case MODEM_FOTA_REQUEST_CONFIRM:
        case MODEM_FOTA_REQUEST_RESET_APP:
        case MODEM_FOTA_REQUEST_NONE:
        case _MODEM_FOTA_REQUEST_KIND_MAX:
                break;
        }
        if (cb)
                cb(m, k, cb_userdata);
}

static int modem_fota_send(Modem *m, ModemFotaRequestKind kind, const char *cmd, modem_fota_cb cb,
                           modem_fota_info_cb info_cb, void *userdata) {
        int64_t id;

        if ((!cb && !info_cb) || !cmd)
                return -EINVAL;
        if (m->state != MODEM_READY)
                return -ENOTCONN;
        if (m->fota_id > 0)
                return -EBUSY;
        id = at_engine_send(at_link_engine(m->link), cmd, MAX(m->command_timeout_usec, MODEM_FOTA_COMMAND_TIMEOUT_USEC),
                            on_fota_done, m);
        if (id < 0)
                return (int) id;
        m->fota_id = id;
        m->fota_kind = kind;
        m->fota_cb = cb;
        m->fota_info_cb = info_cb;
        m->fota_userdata = userdata;
        return 0;
}

int modem_fota_start(Modem *m, ModemFotaOp op, const char *url, modem_fota_cb cb, void *userdata) {
        _cleanup_free_ char *cmd = NULL;

        if (op != MODEM_FOTA_OP_APP && op != MODEM_FOTA_OP_MODEM_DELTA && op != MODEM_FOTA_OP_MODEM_FULL)
                return -EINVAL;
        /* The URL travels inside quotes, and this link has no escapes. */
        if (!url || strncmp(url, "https://", 8) != 0 || strpbrk(url, "\"\r\n"))
                return -EINVAL;
        if (asprintf(&cmd, "AT#XFOTA=%d,\"%s\",%u", (int) op, url, m->sec_tag) < 0)
                return -ENOMEM;
        if (strlen(cmd) > AT_COMMAND_MAX)
                return -EINVAL;
        log_fields(LOG_DEBUG, LOG_FIELDS({ "MODEM_PORT", m->port }), "Starting FOTA op %d from %s with tag %u",
                   (int) op, url, m->sec_tag);
        return modem_fota_send(m, MODEM_FOTA_REQUEST_START, cmd, cb, NULL, userdata);
}

int modem_fota_confirm(Modem *m, modem_fota_cb cb, void *userdata) {
        return modem_fota_send(m, MODEM_FOTA_REQUEST_CONFIRM, "AT#XFOTA=9", cb, NULL, userdata);
}

int modem_fota_apply(Modem *m, ModemFotaOp op, modem_fota_cb cb, void *userdata) {
        switch (op) {
        case MODEM_FOTA_OP_APP:
                return modem_fota_send(m, MODEM_FOTA_REQUEST_RESET_APP, "AT#XRESET", cb, NULL, userdata);
        case MODEM_FOTA_OP_MODEM_DELTA:
        case MODEM_FOTA_OP_MODEM_FULL:
                return modem_fota_send(m, MODEM_FOTA_REQUEST_RESET_MODEM, "AT#XMODEMRESET", cb, NULL, userdata);
        case MODEM_FOTA_OP_NONE:
        case MODEM_FOTA_OP_CONFIRM:
                break;
        }
        return -EINVAL;
}

int modem_fota_query(Modem *m, modem_fota_info_cb cb, void *userdata) {
        return modem_fota_send(m, MODEM_FOTA_REQUEST_INFO, "AT#XFOTAINFO", NULL, cb, userdata);
}

void modem_fota_cancel(Modem *m) {
        if (m->fota_id > 0)
                at_engine_cancel(at_link_engine(m->link), m->fota_id);
        m->fota_id = 0;
        m->fota_kind = MODEM_FOTA_REQUEST_NONE;
        m->fota_cb = NULL;
        m->fota_info_cb = NULL;
        m->fota_userdata = NULL;
}
