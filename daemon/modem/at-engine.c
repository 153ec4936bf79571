/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "at-engine.h"
#include "log.h"
#include "util.h"

typedef struct AtCommand AtCommand;
struct AtCommand {
        AtCommand *next;
        int64_t id;
        char *text;          /* without terminator */
        uint64_t timeout_usec;
        at_done_cb cb;
        void *userdata;
        /* at_engine_send_with_payload(): raw bytes written after OK, and the line that ends the exchange. */
        uint8_t *payload;
        size_t payload_len;
        char *end_prefix;
        bool payload_phase; /* OK came, the payload is (being) written, waiting for end_prefix */
};

typedef struct AtUrc {
        char *prefix;
        size_t prefix_len;
        at_urc_cb cb;
        void *userdata;
} AtUrc;

struct AtEngine {
        const AtLoopOps *ops;
        void *loop_userdata;
        char *name;
        AtEngineState state;

        at_event_cb event_cb;
        void *event_userdata;

        /* Commands: the one in flight and a bounded FIFO behind it. */
        AtCommand *current;
        AtCommand *queue_head, *queue_tail;
        size_t queue_len;
        int64_t next_id;

        /* Output of the command being written. */
        char *out;
        size_t out_len, out_off;
        bool want_write;

        /* Response of the command in flight. */
        char **lines;
        size_t n_lines;
        int response_error;  /* a problem seen before the final result (-ENOBUFS) */
        uint8_t *payload;
        size_t payload_len;

        /* Input: the bounded line buffer, or a counted payload. */
        char line[AT_LINE_MAX + 1];
        size_t line_len;
        bool discarding;     /* refusing the rest of an overlong line */
        bool skip_lf;        /* the last line ended with CR: an LF right after it is not data */
        bool binary;
        size_t binary_need;
        char *binary_header;
        uint8_t binary_buf[AT_BINARY_MAX];
        size_t binary_len;
        uint64_t binary_deadline; /* the next payload byte is due by then */
        unsigned overflows;
        unsigned stalls;
        AtStall last_stall;

        /* Deadline of the command or resync step, UINT64_MAX: none.  The
         * timer runs to the earlier of it and binary_deadline. */
        uint64_t deadline;

        /* Resync bookkeeping: "AT"s sent and final results seen since the loss. */
        unsigned resync_sent, resync_finals, resync_unanswered;
        bool resync_settling;
        uint64_t resync_settle_usec; /* quiet after the last probe's answer before in sync */
        bool sync_open;              /* the synchronisation of at_engine_sync(), not after a loss */
        bool resync_quiet;   /* keeping silent before the next probe (see at_engine_on_timer()) */

        AtUrc urcs[AT_URC_MAX];
        size_t n_urcs;
};

static const char *const at_engine_state_table[_AT_ENGINE_STATE_MAX] = {
        [AT_ENGINE_IDLE] = "idle",
        [AT_ENGINE_WRITING] = "writing",
        [AT_ENGINE_WAITING] = "waiting",
        [AT_ENGINE_RESYNC] = "resync",
};

const char *at_engine_state_to_string(AtEngineState s) {
        return s >= 0 && s < _AT_ENGINE_STATE_MAX ? at_engine_state_table[s] : NULL;
}

static const char *const at_engine_event_table[_AT_ENGINE_EVENT_MAX] = {
        [AT_ENGINE_EVENT_SYNC_LOST] = "sync-lost",
        [AT_ENGINE_EVENT_SYNCED] = "synced",
        [AT_ENGINE_EVENT_UNRESPONSIVE] = "unresponsive",
        [AT_ENGINE_EVENT_WRITE_FAILED] = "write-failed",
        [AT_ENGINE_EVENT_PAYLOAD_STALLED] = "payload-stalled",
};

const char *at_engine_event_to_string(AtEngineEvent ev) {
        return ev >= 0 && ev < _AT_ENGINE_EVENT_MAX ? at_engine_event_table[ev] : NULL;
}

static char *mfree_str(char *s) {
        free(s);
        return NULL;
}

static AtCommand *at_command_free(AtCommand *c) {
        if (!c)
                return NULL;
        free(c->text);
        free(c->payload);
        free(c->end_prefix);
        free(c);
        return NULL;
}

static void engine_arm_timer(AtEngine *e) {
        uint64_t t = e->binary ? MIN(e->deadline, e->binary_deadline) : e->deadline;
        if (e->ops->set_timer)
                (void) e->ops->set_timer(e->loop_userdata, t);
}

static void engine_set_deadline(AtEngine *e, uint64_t deadline) {
        e->deadline = deadline;
        engine_arm_timer(e);
}

/* In counted-payload mode (on) or back in line mode. */
static void engine_set_binary(AtEngine *e, bool on) {
        e->binary = on;
        e->binary_deadline = on ? e->ops->now(e->loop_userdata) + AT_BINARY_GAP_USEC : UINT64_MAX;
        engine_arm_timer(e);
}

static void engine_set_want_write(AtEngine *e, bool on) {
        if (e->want_write == on)
                return;
        e->want_write = on;
        if (e->ops->want_write)
                (void) e->ops->want_write(e->loop_userdata, on);
}

static void engine_enter_state(AtEngine *e, AtEngineState s) {
        if (e->state == s)
                return;
        log_debug("AT %s: engine %s -> %s", strna(e->name), at_engine_state_to_string(e->state),
                  at_engine_state_to_string(s));
        e->state = s;
}

static void engine_emit(AtEngine *e, AtEngineEvent ev, int error) {
        if (e->event_cb)
                e->event_cb(e, ev, error, e->event_userdata);
}

static void engine_clear_response(AtEngine *e) {
        e->lines = strv_free(e->lines);
        e->n_lines = 0;
        e->response_error = 0;
        free(e->payload);
        e->payload = NULL;
        e->payload_len = 0;
}

static void engine_clear_output(AtEngine *e) {
        free(e->out);
        e->out = NULL;
        e->out_len = e->out_off = 0;
        engine_set_want_write(e, false);
}

/* Completes the command in flight; the engine is consistent before the callback runs. */
static void engine_complete(AtEngine *e, int result, AtLineKind final, unsigned code) {
        AtCommand *c = TAKE_PTR(e->current);
        char *empty[1] = { NULL };
        AtResponse r = {
                .result = result,
                .final = final,
                .code = code,
                .lines = e->lines ? e->lines : empty,
                .n_lines = e->n_lines,
                .payload = e->payload,
                .payload_len = e->payload_len,
        };
        char **lines = TAKE_PTR(e->lines);
        uint8_t *payload = TAKE_PTR(e->payload);

        e->n_lines = 0;
        e->payload_len = 0;
        e->response_error = 0;
        engine_clear_output(e);
        engine_set_deadline(e, UINT64_MAX);
        if (e->state != AT_ENGINE_RESYNC)
                engine_enter_state(e, AT_ENGINE_IDLE);

        if (c && c->cb)
                c->cb(e, &r, c->userdata);
        strv_free(lines);
        free(payload);
        at_command_free(c);
}

static void engine_write_some(AtEngine *e);
static void engine_start_next(AtEngine *e);

static int engine_start_output(AtEngine *e, const char *text) {
        size_t n = strlen(text);
        char buf[96];

        engine_clear_output(e);
        e->out = malloc(n + 3);
        if (!e->out)
                return -ENOMEM;
        memcpy(e->out, text, n);
        memcpy(e->out + n, "\r\n", 3);
        e->out_len = n + 2;
        e->out_off = 0;
        log_debug("AT %s --> %s", strna(e->name), at_escape(e->out, e->out_len, buf, sizeof buf));
        return 0;
}

static uint64_t engine_resync_timeout(const AtEngine *e) {
        return e->sync_open ? AT_SYNC_OPEN_TIMEOUT_USEC : AT_RESYNC_TIMEOUT_USEC;
}

static void engine_send_resync_probe(AtEngine *e) {
        int r;

        r = engine_start_output(e, "AT");
        if (r < 0) {
                engine_set_deadline(e, e->ops->now(e->loop_userdata) + engine_resync_timeout(e));
                return;
        }
        e->resync_sent++;
        e->resync_settling = false;
        engine_set_deadline(e, e->ops->now(e->loop_userdata) + engine_resync_timeout(e));
        engine_write_some(e);
}

static void engine_begin_resync(AtEngine *e, int error, uint64_t settle_usec, bool open) {
        engine_enter_state(e, AT_ENGINE_RESYNC);
        e->resync_settle_usec = settle_usec;
        e->sync_open = open;
        e->resync_sent = e->resync_finals = e->resync_unanswered = 0;
        e->resync_settling = e->resync_quiet = false;
        e->line_len = 0;
        engine_set_binary(e, false);
        e->binary_header = mfree_str(e->binary_header);
        if (e->current)
                engine_complete(e, error, AT_LINE_INFO, 0);
        engine_emit(e, AT_ENGINE_EVENT_SYNC_LOST, error);
        if (e->state == AT_ENGINE_RESYNC && !e->out)
                engine_send_resync_probe(e);
}

/* Gives up on the command in flight and starts resynchronising. */
static void engine_lose_sync(AtEngine *e, int error) {
        log_debug("AT %s: lost sync (%s), resynchronising", strna(e->name), strerror(-error));
        engine_begin_resync(e, error, AT_RESYNC_SETTLE_USEC, false);
}

void at_engine_sync(AtEngine *e, uint64_t settle_usec) {
        if (e->state == AT_ENGINE_RESYNC)
                return;
        log_debug("AT %s: synchronising before the first command", strna(e->name));
        engine_begin_resync(e, -ECANCELED, settle_usec, true);
}

static void engine_synced(AtEngine *e) {
        log_debug("AT %s: in sync again", strna(e->name));
        e->sync_open = false;
        engine_clear_output(e);
        engine_set_deadline(e, UINT64_MAX);
        engine_enter_state(e, AT_ENGINE_IDLE);
        engine_emit(e, AT_ENGINE_EVENT_SYNCED, 0);
        engine_start_next(e);
}

static void engine_output_done(AtEngine *e) {
        engine_set_want_write(e, false);
        switch (e->state) {
        case AT_ENGINE_WRITING:
                /* The timeout runs from the last byte written. */
                engine_enter_state(e, AT_ENGINE_WAITING);
                engine_set_deadline(e, e->ops->now(e->loop_userdata) + e->current->timeout_usec);
                break;
        case AT_ENGINE_RESYNC:
                engine_set_deadline(e, e->ops->now(e->loop_userdata) + engine_resync_timeout(e));
                break;
        case AT_ENGINE_IDLE:
        case AT_ENGINE_WAITING:
        case _AT_ENGINE_STATE_MAX:
                break;
        }
}

static void engine_write_some(AtEngine *e) {
        while (e->out && e->out_off < e->out_len) {
                ssize_t n = e->ops->write(e->loop_userdata, e->out + e->out_off, e->out_len - e->out_off);
                if (!e->out)
                        return; /* the writer found the port gone and reset the engine */
                if (n == -EAGAIN || n == 0) {
                        engine_set_want_write(e, true);
                        return;
                }
                if (n < 0) {
                        int error = (int) n;
                        log_debug("AT %s: write failed: %s", strna(e->name), strerror((int) -n));
                        engine_clear_output(e);
                        if (e->state == AT_ENGINE_WRITING)
                                engine_complete(e, error, AT_LINE_INFO, 0);
                        engine_emit(e, AT_ENGINE_EVENT_WRITE_FAILED, error);
                        return;
                }
                e->out_off += (size_t) n;
        }
        if (e->out && e->out_off >= e->out_len) {
                free(e->out);
                e->out = NULL;
                e->out_len = e->out_off = 0;
                engine_output_done(e);
        }
}

/* The OK of a command with a payload: write the raw bytes, then wait for the end line. */
static void engine_begin_payload(AtEngine *e) {
        AtCommand *c = e->current;

        engine_clear_output(e);
        c->payload_phase = true;
        e->out = (char *) TAKE_PTR(c->payload);
        e->out_len = c->payload_len;
        e->out_off = 0;
        log_debug("AT %s --> [%zu bytes of payload]", strna(e->name), e->out_len);
        engine_enter_state(e, AT_ENGINE_WRITING);
        engine_set_deadline(e, e->ops->now(e->loop_userdata) + c->timeout_usec);
        engine_write_some(e);
}

static void engine_start_next(AtEngine *e) {
        AtCommand *c;
        int r;

        while (e->state == AT_ENGINE_IDLE && !e->current && e->queue_head) {
                c = e->queue_head;
                e->queue_head = c->next;
                if (!e->queue_head)
                        e->queue_tail = NULL;
                e->queue_len--;
                c->next = NULL;

                e->current = c;
                engine_clear_response(e);
                r = engine_start_output(e, c->text);
                if (r < 0) {
                        engine_complete(e, r, AT_LINE_INFO, 0);
                        continue;
                }
                engine_enter_state(e, AT_ENGINE_WRITING);
                /* Also bounds a write that flow control holds back forever. */
                engine_set_deadline(e, e->ops->now(e->loop_userdata) + c->timeout_usec);
                engine_write_some(e);
        }
}

int at_engine_new(const AtLoopOps *ops, void *loop_userdata, AtEngine **ret) {
        AtEngine *e;

        if (!ops || !ops->now || !ops->write)
                return -EINVAL;
        e = calloc(1, sizeof *e);
        if (!e)
                return -ENOMEM;
        e->ops = ops;
        e->loop_userdata = loop_userdata;
        e->next_id = 1;
        e->deadline = e->binary_deadline = UINT64_MAX;
        e->state = AT_ENGINE_IDLE;
        *ret = e;
        return 0;
}

static void engine_drop_queue(AtEngine *e, int error) {
        while (e->queue_head) {
                AtCommand *c = e->queue_head;
                char *empty[1] = { NULL };
                AtResponse r = { .result = error, .final = AT_LINE_INFO, .lines = empty };

                e->queue_head = c->next;
                if (!e->queue_head)
                        e->queue_tail = NULL;
                e->queue_len--;
                if (c->cb)
                        c->cb(e, &r, c->userdata);
                at_command_free(c);
        }
}

AtEngine *at_engine_free(AtEngine *e) {
        if (!e)
                return NULL;
        /* No callbacks from a dying engine: the owners are going away too. */
        while (e->queue_head) {
                AtCommand *c = e->queue_head;
                e->queue_head = c->next;
                at_command_free(c);
        }
        at_command_free(e->current);
        engine_clear_response(e);
        free(e->out);
        free(e->binary_header);
        for (size_t i = 0; i < e->n_urcs; i++)
                free(e->urcs[i].prefix);
        free(e->name);
        free(e);
        return NULL;
}

void at_engine_set_event_handler(AtEngine *e, at_event_cb cb, void *userdata) {
        e->event_cb = cb;
        e->event_userdata = userdata;
}

int at_engine_set_name(AtEngine *e, const char *name) {
        char *n = strdup(name);
        if (!n)
                return -ENOMEM;
        free(e->name);
        e->name = n;
        return 0;
}

int at_engine_add_urc(AtEngine *e, const char *prefix, at_urc_cb cb, void *userdata) {
        char *p;

        if (!prefix || !*prefix || !cb)
                return -EINVAL;
        if (e->n_urcs >= AT_URC_MAX)
                return -ENOBUFS;
        p = strdup(prefix);
        if (!p)
                return -ENOMEM;
        e->urcs[e->n_urcs++] = (AtUrc){ .prefix = p, .prefix_len = strlen(p), .cb = cb, .userdata = userdata };
        return 0;
}

void at_engine_remove_urc(AtEngine *e, const char *prefix, at_urc_cb cb, void *userdata) {
        for (size_t i = 0; i < e->n_urcs; i++)
                if (streq(e->urcs[i].prefix, prefix) && e->urcs[i].cb == cb && e->urcs[i].userdata == userdata) {
                        free(e->urcs[i].prefix);
                        memmove(e->urcs + i, e->urcs + i + 1, (e->n_urcs - i - 1) * sizeof e->urcs[0]);
                        e->n_urcs--;
                        return;
                }
}

static int64_t engine_queue(AtEngine *e, const char *cmd, const void *payload, size_t payload_len,
                            const char *end_prefix, uint64_t timeout_usec, at_done_cb cb, void *userdata) {
        AtCommand *c;
        int64_t id;
        size_t n;

        if (!cmd || timeout_usec == 0)
                return -EINVAL;
        n = strlen(cmd);
        if (n == 0 || n > AT_COMMAND_MAX)
                return -E2BIG;
        if (e->queue_len >= AT_QUEUE_MAX)
                return -ENOBUFS;
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->text = strdup(cmd);
        if (!c->text) {
                free(c);
                return -ENOMEM;
        }
        if (end_prefix) {
                c->payload = malloc(payload_len);
                c->end_prefix = strdup(end_prefix);
                if (!c->payload || !c->end_prefix) {
                        at_command_free(c);
                        return -ENOMEM;
                }
                memcpy(c->payload, payload, payload_len);
                c->payload_len = payload_len;
        }
        c->id = e->next_id++;
        c->timeout_usec = timeout_usec;
        c->cb = cb;
        c->userdata = userdata;
        if (e->queue_tail)
                e->queue_tail->next = c;
        else
                e->queue_head = c;
        e->queue_tail = c;
        e->queue_len++;

        /* Starting may complete (and free) the command at once, e.g. when the port is gone. */
        id = c->id;
        engine_start_next(e);
        return id;
}

int64_t at_engine_send(AtEngine *e, const char *cmd, uint64_t timeout_usec, at_done_cb cb, void *userdata) {
        return engine_queue(e, cmd, NULL, 0, NULL, timeout_usec, cb, userdata);
}

int64_t at_engine_send_with_payload(AtEngine *e, const char *cmd, const void *payload, size_t len,
                                    const char *end_prefix, uint64_t timeout_usec, at_done_cb cb, void *userdata) {
        if (!payload || len == 0 || len > AT_BINARY_MAX || !end_prefix || !*end_prefix)
                return -EINVAL;
        return engine_queue(e, cmd, payload, len, end_prefix, timeout_usec, cb, userdata);
}

void at_engine_cancel(AtEngine *e, int64_t id) {
        AtCommand **p;

        if (e->current && e->current->id == id) {
                e->current->cb = NULL;
                return;
        }
        for (p = &e->queue_head; *p; p = &(*p)->next)
                if ((*p)->id == id) {
                        AtCommand *c = *p;
                        *p = c->next;
                        if (e->queue_tail == c) {
                                e->queue_tail = NULL;
                                for (AtCommand *q = e->queue_head; q; q = q->next)
                                        e->queue_tail = q;
                        }
                        e->queue_len--;
                        at_command_free(c);
                        return;
                }
}

void at_engine_reset(AtEngine *e, int error) {
        e->line_len = 0;
        e->discarding = false;
        e->skip_lf = false;
        engine_set_binary(e, false);
        e->binary_header = mfree_str(e->binary_header);
        engine_clear_output(e);
        engine_set_deadline(e, UINT64_MAX);
        engine_enter_state(e, AT_ENGINE_IDLE);
        if (e->current)
                engine_complete(e, error, AT_LINE_INFO, 0);
        engine_clear_response(e);
        engine_drop_queue(e, error);
}

AtEngineState at_engine_get_state(const AtEngine *e) {
        return e->state;
}

size_t at_engine_queue_length(const AtEngine *e) {
        return e->queue_len + (e->current ? 1 : 0);
}

unsigned at_engine_overflows(const AtEngine *e) {
        return e->overflows;
}

unsigned at_engine_payload_stalls(const AtEngine *e, AtStall *ret_last) {
        if (ret_last)
                *ret_last = e->last_stall;
        return e->stalls;
}

static const AtUrc *engine_find_urc(AtEngine *e, const char *line, size_t len) {
        for (size_t i = 0; i < e->n_urcs; i++)
                if (len >= e->urcs[i].prefix_len && memcmp(line, e->urcs[i].prefix, e->urcs[i].prefix_len) == 0)
                        return &e->urcs[i];
        return NULL;
}

/* A complete information line or a binary header with its payload, not claimed by a URC. */
static void engine_response_line(AtEngine *e, const char *line, const uint8_t *payload, size_t payload_len) {
        char *copy;
        int r;

        if (e->state != AT_ENGINE_WAITING || !e->current) {
                log_debug("AT %s: line outside any command, ignoring", strna(e->name));
                return;
        }
        /* An echo of our own command (before ATE0 took effect) is not part of the answer. */
        if (streq(line, e->current->text))
                return;
        if (payload) {
                uint8_t *p = malloc(payload_len);
                if (!p) {
                        e->response_error = -ENOMEM;
                        return;
                }
                memcpy(p, payload, payload_len);
                free(e->payload);
                e->payload = p;
                e->payload_len = payload_len;
        }
        if (e->n_lines >= AT_RESPONSE_LINES_MAX) {
                e->response_error = -ENOBUFS;
                return;
        }
        copy = strdup(line);
        if (!copy) {
                e->response_error = -ENOMEM;
                return;
        }
        r = strv_push(&e->lines, copy);
        if (r < 0) {
                e->response_error = r;
                return;
        }
        e->n_lines++;
}

static void engine_final(AtEngine *e, const AtLineClass *cls) {
        int result = 0;

        switch (e->state) {
        case AT_ENGINE_RESYNC:
                /*
                 * Finals arrive in order: first the abandoned command's (if it
                 * ever answers), then one per "AT" sent.  One more final than
                 * "AT"s proves the last probe was answered; as many may be the
                 * abandoned command's late answer, so wait for a quiet moment.
                 */
                e->resync_finals++;
                if (e->resync_finals > e->resync_sent && !e->out)
                        engine_synced(e);
                else if (e->resync_finals == e->resync_sent && !e->out) {
                        e->resync_settling = true;
                        engine_set_deadline(e, e->ops->now(e->loop_userdata) + e->resync_settle_usec);
                }
                return;
        case AT_ENGINE_WAITING:
                break;
        case AT_ENGINE_IDLE:
        case AT_ENGINE_WRITING:
        case _AT_ENGINE_STATE_MAX:
                /* A final result nobody asked for: a late answer. Never give it to the next command. */
                log_debug("AT %s: unexpected final result %s, ignoring", strna(e->name),
                          at_line_kind_to_string(cls->kind));
                return;
        }

        switch (cls->kind) {
        case AT_LINE_OK:
                if (e->current && e->current->end_prefix && !e->current->payload_phase) {
                        engine_begin_payload(e);
                        return;
                }
                result = 0;
                break;
        case AT_LINE_ERROR:
                result = -EREMOTEIO;
                break;
        case AT_LINE_CME_ERROR:
                result = at_cme_to_errno(cls->code);
                break;
        case AT_LINE_CMS_ERROR:
                result = -EREMOTEIO;
                break;
        case AT_LINE_INFO:
        case AT_LINE_BINARY_HEADER:
        case _AT_LINE_KIND_MAX:
                return;
        }
        if (result == 0 && e->response_error < 0)
                result = e->response_error;
        engine_complete(e, result, cls->kind, cls->code);
        engine_start_next(e);
}

static void engine_dispatch(AtEngine *e, const char *line, size_t len, const uint8_t *payload, size_t payload_len) {
        const AtUrc *u = engine_find_urc(e, line, len);

        if (u) {
                u->cb(e, line, payload, payload_len, u->userdata);
                return;
        }
        if (e->state == AT_ENGINE_RESYNC)
                return; /* the tail of an abandoned answer */
        engine_response_line(e, line, payload, payload_len);
        /* The end line of a command with a payload is its final result. */
        if (e->state == AT_ENGINE_WAITING && e->current && e->current->payload_phase &&
            strncmp(line, e->current->end_prefix, strlen(e->current->end_prefix)) == 0) {
                engine_complete(e, e->response_error, AT_LINE_OK, 0);
                engine_start_next(e);
        }
}

static void engine_process_line(AtEngine *e) {
        AtLineClass cls;
        char buf[160];
        size_t len = e->line_len;
        int r;

        e->line[len] = 0;
        e->line_len = 0;
        log_debug("AT %s <-- %s<CR><LF>", strna(e->name), at_escape(e->line, len, buf, sizeof buf));

        r = at_line_classify(e->line, len, &cls);
        if (r < 0) {
                /* A final result or a length we cannot read: we no longer know where we are. */
                log_debug("AT %s: garbled line, resynchronising", strna(e->name));
                engine_lose_sync(e, -EBADMSG);
                return;
        }
        switch (cls.kind) {
        case AT_LINE_BINARY_HEADER:
                e->binary_header = strdup(e->line);
                if (!e->binary_header) {
                        engine_lose_sync(e, -ENOMEM);
                        return;
                }
                e->binary_need = cls.binary_length;
                e->binary_len = 0;
                engine_set_binary(e, true);
                return;
        case AT_LINE_OK:
        case AT_LINE_ERROR:
        case AT_LINE_CME_ERROR:
        case AT_LINE_CMS_ERROR:
                engine_final(e, &cls);
                return;
        case AT_LINE_INFO:
                engine_dispatch(e, e->line, len, NULL, 0);
                return;
        case _AT_LINE_KIND_MAX:
                return;
        }
}

static void engine_binary_done(AtEngine *e) {
        _cleanup_free_ char *header = TAKE_PTR(e->binary_header);

        engine_set_binary(e, false);
        log_debug("AT %s <-- [%zu bytes of payload]", strna(e->name), e->binary_len);
        engine_dispatch(e, header, strlen(header), e->binary_buf, e->binary_len);
}

void at_engine_feed(AtEngine *e, const void *data, size_t len) {
        const uint8_t *p = data;
        size_t i = 0;

        while (i < len) {
                uint8_t ch = p[i];

                if (e->skip_lf) {
                        e->skip_lf = false;
                        if (ch == '\n') {
                                i++;
                                continue;
                        }
                }
                if (e->binary) {
                        size_t n = MIN(len - i, e->binary_need - e->binary_len);
                        memcpy(e->binary_buf + e->binary_len, p + i, n);
                        e->binary_len += n;
                        i += n;
                        if (e->binary_len == e->binary_need)
                                engine_binary_done(e);
                        else if (n > 0)
                                engine_set_binary(e, true); /* the gap counts from this byte */
                        continue;
                }
                i++;
                if (ch == '\r' || ch == '\n') {
                        if (ch == '\r')
                                e->skip_lf = true;
                        if (e->discarding) {
                                e->discarding = false;
                                continue;
                        }
                        if (e->line_len > 0)
                                engine_process_line(e);
                        continue;
                }
                if (e->discarding)
                        continue;
                if (e->line_len >= AT_LINE_MAX) {
                        /* Refused: the command in flight fails with -ENOBUFS when its final result comes. */
                        e->overflows++;
                        e->discarding = true;
                        e->line_len = 0;
                        if (e->current)
                                e->response_error = -ENOBUFS;
                        log_debug("AT %s: line longer than %u bytes, refusing it", strna(e->name), AT_LINE_MAX);
                        continue;
                }
                e->line[e->line_len++] = (char) ch;
        }
}

/* The bytes of a counted payload stopped coming: what is left of the input cannot be trusted. */
static void engine_payload_stalled(AtEngine *e) {
        e->stalls++;
        e->last_stall = (AtStall){ .received = e->binary_len, .announced = e->binary_need };
        snprintf(e->last_stall.header, sizeof e->last_stall.header, "%s", strempty(e->binary_header));
        log_debug("AT %s: '%s' stopped after %zu of %zu bytes, resynchronising", strna(e->name),
                  e->last_stall.header, e->binary_len, e->binary_need);
        engine_lose_sync(e, -ETIMEDOUT);
        engine_emit(e, AT_ENGINE_EVENT_PAYLOAD_STALLED, -ETIMEDOUT);
}

void at_engine_on_timer(AtEngine *e) {
        uint64_t now = e->ops->now(e->loop_userdata);

        if (e->binary && now >= e->binary_deadline) {
                engine_payload_stalled(e);
                return;
        }
        if (e->deadline == UINT64_MAX || now < e->deadline) {
                engine_arm_timer(e); /* woken for an earlier payload deadline that has moved */
                return;
        }
        e->deadline = UINT64_MAX;
        engine_arm_timer(e);

        switch (e->state) {
        case AT_ENGINE_WRITING:
        case AT_ENGINE_WAITING:
                log_debug("AT %s: '%s' timed out", strna(e->name), e->current ? e->current->text : "?");
                engine_lose_sync(e, -ETIMEDOUT);
                return;
        case AT_ENGINE_RESYNC:
                if (e->resync_settling) {
                        /* Quiet after the last probe's answer: in sync. */
                        engine_synced(e);
                        return;
                }
                if (e->resync_quiet) {
                        /*
                         * After that silence the probes before it were answered or swallowed
                         * for good: count afresh, or swallowed ones would keep us waiting forever.
                         */
                        e->resync_quiet = false;
                        e->resync_sent = e->resync_finals = 0;
                        engine_send_resync_probe(e);
                        return;
                }
                if (e->sync_open) {
                        /* Nothing answers at open: the first command goes out, and its own timeout
                         * tells the owner of a silent modem. */
                        log_debug("AT %s: no answer to the synchronisation at open, going on", strna(e->name));
                        engine_synced(e);
                        return;
                }
                e->resync_unanswered++;
                if (e->resync_unanswered == AT_RESYNC_REPORT_AFTER)
                        engine_emit(e, AT_ENGINE_EVENT_UNRESPONSIVE, -ETIMEDOUT);
                if (e->state != AT_ENGINE_RESYNC)
                        return;
                if (e->resync_unanswered % AT_RESYNC_REPORT_AFTER == 0) {
                        /*
                         * A firmware left in counted-payload mode (an #XSEND whose bytes were
                         * cut off by a lost link) takes every "AT" as payload and gives up only
                         * once input has stopped for 10 s (modem-link.md): keep quiet longer.
                         */
                        e->resync_quiet = true;
                        engine_set_deadline(e, e->ops->now(e->loop_userdata) + AT_RESYNC_QUIET_USEC);
                        return;
                }
                engine_send_resync_probe(e);
                return;
        case AT_ENGINE_IDLE:
        case _AT_ENGINE_STATE_MAX:
                return;
        }
}

void at_engine_on_writable(AtEngine *e) {
        engine_write_some(e);
}

int at_response_firmware_errno(const AtResponse *r) {
        if (r->final == AT_LINE_CME_ERROR && r->code > 0 && r->code < 4096)
                return -(int) r->code;
        return r->result < 0 ? r->result : 0;
}

const char *at_response_describe(const AtResponse *r, char *buf, size_t len) {
        const char *t;

        switch (r->final) {
        case AT_LINE_OK:
                snprintf(buf, len, "%s", r->result == 0 ? "OK" : strerror(-r->result));
                break;
        case AT_LINE_ERROR:
                snprintf(buf, len, "ERROR");
                break;
        case AT_LINE_CME_ERROR:
                t = at_cme_to_string(r->code);
                snprintf(buf, len, "+CME ERROR: %u (%s)", r->code, t ? t : "unknown code");
                break;
        case AT_LINE_CMS_ERROR:
                snprintf(buf, len, "+CMS ERROR: %u", r->code);
                break;
        case AT_LINE_INFO:
        case AT_LINE_BINARY_HEADER:
        case _AT_LINE_KIND_MAX:
                snprintf(buf, len, "%s", r->result == -ETIMEDOUT ? "no answer (timed out)" : strerror(-r->result));
                break;
        }
        return buf;
}
