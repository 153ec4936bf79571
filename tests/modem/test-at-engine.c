/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "at-engine.h"
#include "fake-loop.h"
#include "util.h"

#define SEC (UINT64_C(1000000))

typedef struct Result {
        unsigned calls;
        int result;
        AtLineKind final;
        unsigned code;
        char *lines[8];
        size_t n_lines;
        uint8_t payload[64];
        size_t payload_len;
} Result;

static void result_clear(Result *r) {
        for (size_t i = 0; i < r->n_lines; i++)
                free(r->lines[i]);
        *r = (Result){};
}

static void on_done(AtEngine *e, const AtResponse *resp, void *userdata) {
        Result *r = userdata;
        (void) e;
        r->calls++;
        r->result = resp->result;
        r->final = resp->final;
        r->code = resp->code;
        assert_non_null(resp->lines);
        assert_null(resp->lines[resp->n_lines]);
        for (size_t i = 0; i < resp->n_lines && i < 8; i++)
                r->lines[i] = strdup(resp->lines[i]);
        r->n_lines = resp->n_lines;
        if (resp->payload) {
                assert_true(resp->payload_len <= sizeof r->payload);
                memcpy(r->payload, resp->payload, resp->payload_len);
                r->payload_len = resp->payload_len;
        }
}

typedef struct Urcs {
        unsigned calls;
        char lines[8][128];
        uint8_t payload[8][64];
        size_t payload_len[8];
} Urcs;

static void on_urc(AtEngine *e, const char *line, const uint8_t *payload, size_t payload_len, void *userdata) {
        Urcs *u = userdata;
        (void) e;
        assert_true(u->calls < 8);
        snprintf(u->lines[u->calls], sizeof u->lines[0], "%s", line);
        if (payload) {
                assert_true(payload_len <= sizeof u->payload[0]);
                memcpy(u->payload[u->calls], payload, payload_len);
        }
        u->payload_len[u->calls] = payload ? payload_len : 0;
        u->calls++;
}

static AtEngine *new_engine(FakeLoop *l) {
        AtEngine *e = NULL;
        *l = (FakeLoop){ .deadline = UINT64_MAX, .now = 1000 };
        assert_int_equal(at_engine_new(&fake_ops, l, &e), 0);
        return e;
}

static void feed_str(AtEngine *e, const char *s) {
        at_engine_feed(e, s, strlen(s));
}

static void test_simple_ok(void **state) {
        FakeLoop l;
        AtEngine *e = new_engine(&l);
        Result r = {};
        char buf[256];
        (void) state;

        assert_true(at_engine_send(e, "AT+CGMR", 5 * SEC, on_done, &r) > 0);
        assert_string_equal(fake_take_written(&l, buf, sizeof buf), "AT+CGMR\r\n");
        assert_int_equal(at_engine_get_state(e), AT_ENGINE_WAITING);
        /* The timeout runs from the last byte written. */
        assert_int_equal(l.deadline, l.now + 5 * SEC);
        feed_str(e, "\r\nmfw_nrf9160_1.3.5\r\nOK\r\n");
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.result, 0);
        assert_int_equal(r.final, AT_LINE_OK);
        assert_int_equal(r.n_lines, 1);
        assert_string_equal(r.lines[0], "mfw_nrf9160_1.3.5");
        assert_int_equal(at_engine_get_state(e), AT_ENGINE_IDLE);
        assert_int_equal(l.deadline, UINT64_MAX);
        result_clear(&r);
        at_engine_free(e);
}

/* A %CMNG list answer with a URC among its lines, split in two at every byte and fed byte by byte. */
static const char split_input[] = "\r\n%CMNG: 16842753,0,\"2C43952EE9E000FF2ACC4E2ED0897C0A72AD5FA72C3D934E81741CBD54F05BD1\"\r\n"
                                  "\r\n+CEREG: 5\r\n"
                                  "\r\n%CMNG: 16842753, 1, \"C5B83285533307747ECB170B96C5B47F809D24CFE2BE553B4ED9B5D12551C08E\"\r\n"
                                  "OK\r\n";

static void check_split_result(const Result *r, const Urcs *u) {
        assert_int_equal(r->calls, 1);
        assert_int_equal(r->result, 0);
        assert_int_equal(r->n_lines, 2);
        assert_string_equal(r->lines[0],
                            "%CMNG: 16842753,0,\"2C43952EE9E000FF2ACC4E2ED0897C0A72AD5FA72C3D934E81741CBD54F05BD1\"");
        assert_string_equal(r->lines[1],
                            "%CMNG: 16842753, 1, \"C5B83285533307747ECB170B96C5B47F809D24CFE2BE553B4ED9B5D12551C08E\"");
        assert_int_equal(u->calls, 1);
        assert_string_equal(u->lines[0], "+CEREG: 5");
}

static void test_split_every_byte(void **state) {
        size_t n = strlen(split_input);
        (void) state;

        for (size_t cut = 0; cut <= n; cut++) {
                FakeLoop l;
                AtEngine *e = new_engine(&l);
                Result r = {};
                Urcs u = {};

                assert_int_equal(at_engine_add_urc(e, "+CEREG:", on_urc, &u), 0);
                assert_true(at_engine_send(e, "AT%CMNG=1,16842753", 5 * SEC, on_done, &r) > 0);
                at_engine_feed(e, split_input, cut);
                /* "OK<CR>" already ends the answer; the last LF is not needed. */
                if (cut < n - 1)
                        assert_int_equal(r.calls, 0);
                at_engine_feed(e, split_input + cut, n - cut);
                check_split_result(&r, &u);
                result_clear(&r);
                at_engine_free(e);
        }

        /* One byte per read. */
        {
                FakeLoop l;
                AtEngine *e = new_engine(&l);
                Result r = {};
                Urcs u = {};

                assert_int_equal(at_engine_add_urc(e, "+CEREG:", on_urc, &u), 0);
                assert_true(at_engine_send(e, "AT%CMNG=1,16842753", 5 * SEC, on_done, &r) > 0);
                for (size_t i = 0; i < n; i++)
                        at_engine_feed(e, split_input + i, 1);
                check_split_result(&r, &u);
                result_clear(&r);
                at_engine_free(e);
        }
}

static void test_lone_cr_and_lone_lf(void **state) {
        FakeLoop l;
        AtEngine *e = new_engine(&l);
        Result r = {};
        (void) state;

        assert_true(at_engine_send(e, "AT+CFUN?", SEC, on_done, &r) > 0);
        feed_str(e, "\n+CFUN: 4\rOK\n");
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.result, 0);
        assert_int_equal(r.n_lines, 1);
        assert_string_equal(r.lines[0], "+CFUN: 4");
        result_clear(&r);
        at_engine_free(e);
}

static void test_urc_outside_command(void **state) {
        FakeLoop l;
        AtEngine *e = new_engine(&l);
        Urcs u = {};
        (void) state;

        assert_int_equal(at_engine_add_urc(e, "Ready", on_urc, &u), 0);
        feed_str(e, "\r\nReady\r\n\r\nsomething else\r\n");
        assert_int_equal(u.calls, 1);
        assert_string_equal(u.lines[0], "Ready");
        at_engine_remove_urc(e, "Ready", on_urc, &u);
        feed_str(e, "\r\nReady\r\n");
        assert_int_equal(u.calls, 1);
        at_engine_free(e);
}

static void test_late_response_after_timeout(void **state) {
        FakeLoop l;
        AtEngine *e = new_engine(&l);
        Result r1 = {}, r2 = {};
        char buf[256];
        unsigned events_before;
        (void) state;

        assert_true(at_engine_send(e, "AT+CGSN=1", 2 * SEC, on_done, &r1) > 0);
        assert_string_equal(fake_take_written(&l, buf, sizeof buf), "AT+CGSN=1\r\n");
        fake_advance(&l, e, 2 * SEC - 1);
        assert_int_equal(r1.calls, 0);
        fake_advance(&l, e, 1);
        assert_int_equal(r1.calls, 1);
        assert_int_equal(r1.result, -ETIMEDOUT);
        assert_int_equal(at_engine_get_state(e), AT_ENGINE_RESYNC);
        assert_string_equal(fake_take_written(&l, buf, sizeof buf), "AT\r\n");

        /* The next command waits until the link is in sync again. */
        assert_true(at_engine_send(e, "AT+CGMR", 2 * SEC, on_done, &r2) > 0);
        assert_int_equal(l.written_len, 0);

        /* The late answer of AT+CGSN=1 arrives; it must complete nothing. */
        feed_str(e, "\r\n+CGSN: \"352656100367872\"\r\nOK\r\n");
        assert_int_equal(r1.calls, 1);
        assert_int_equal(r2.calls, 0);
        assert_int_equal(l.written_len, 0);
        events_before = r2.calls;

        /* The answer to the resync "AT". */
        feed_str(e, "\r\nOK\r\n");
        assert_int_equal(r2.calls, events_before);
        assert_int_equal(at_engine_get_state(e), AT_ENGINE_WAITING);
        assert_string_equal(fake_take_written(&l, buf, sizeof buf), "AT+CGMR\r\n");
        feed_str(e, "\r\nmfw_nrf9160_1.3.5\r\nOK\r\n");
        assert_int_equal(r2.calls, 1);
        assert_int_equal(r2.result, 0);
        assert_int_equal(r2.n_lines, 1);
        assert_string_equal(r2.lines[0], "mfw_nrf9160_1.3.5");
        result_clear(&r1);
        result_clear(&r2);
        at_engine_free(e);
}

/* The timed-out command never answers: the probe's OK and a quiet moment restore sync. */
static void test_timeout_without_late_answer(void **state) {
        FakeLoop l;
        AtEngine *e = new_engine(&l);
        Result r1 = {}, r2 = {};
        char buf[256];
        (void) state;

        assert_true(at_engine_send(e, "AT%KEYGEN=16842753,2,0", 3 * SEC, on_done, &r1) > 0);
        assert_true(at_engine_send(e, "AT+CFUN?", 3 * SEC, on_done, &r2) > 0);
        fake_take_written(&l, buf, sizeof buf);
        fake_advance(&l, e, 3 * SEC);
        assert_int_equal(r1.result, -ETIMEDOUT);
        assert_string_equal(fake_take_written(&l, buf, sizeof buf), "AT\r\n");

        /* No answer at all: the probe is repeated. */
        fake_advance(&l, e, AT_RESYNC_TIMEOUT_USEC);
        assert_string_equal(fake_take_written(&l, buf, sizeof buf), "AT\r\n");

        /* Two OKs: one per probe; equal counts may still hide a late answer, so a quiet moment decides. */
        feed_str(e, "\r\nOK\r\n");
        assert_int_equal(at_engine_get_state(e), AT_ENGINE_RESYNC);
        feed_str(e, "\r\nOK\r\n");
        assert_int_equal(at_engine_get_state(e), AT_ENGINE_RESYNC);
        assert_int_equal(l.written_len, 0);
        fake_advance(&l, e, AT_RESYNC_SETTLE_USEC);
        assert_int_equal(at_engine_get_state(e), AT_ENGINE_WAITING);
        assert_string_equal(fake_take_written(&l, buf, sizeof buf), "AT+CFUN?\r\n");
        feed_str(e, "\r\n+CFUN: 4\r\nOK\r\n");
        assert_int_equal(r2.calls, 1);
        assert_int_equal(r2.result, 0);
        result_clear(&r1);
        result_clear(&r2);
        at_engine_free(e);
}

static void on_event_count(AtEngine *e, AtEngineEvent ev, int error, void *userdata) {
        unsigned *counts = userdata;
        (void) e;
        (void) error;
        counts[ev]++;
}

static void test_unresponsive_reported_once(void **state) {
        FakeLoop l;
        AtEngine *e = new_engine(&l);
        unsigned counts[_AT_ENGINE_EVENT_MAX] = {};
        Result r = {};
        (void) state;

        at_engine_set_event_handler(e, on_event_count, counts);
        assert_true(at_engine_send(e, "AT", SEC, on_done, &r) > 0);
        fake_advance(&l, e, SEC);
        assert_int_equal(counts[AT_ENGINE_EVENT_SYNC_LOST], 1);
        for (unsigned i = 0; i < 3 * AT_RESYNC_REPORT_AFTER; i++)
                fake_advance(&l, e, AT_RESYNC_TIMEOUT_USEC);
        assert_int_equal(counts[AT_ENGINE_EVENT_UNRESPONSIVE], 1);
        assert_int_equal(counts[AT_ENGINE_EVENT_SYNCED], 0);
        result_clear(&r);
        at_engine_free(e);
}

/* A #XRECV payload that contains "OK\r\n" must not complete the command in flight. */
static const char binary_input[] = "\r\n#XRECV: 0,12\r\nOK\r\nERROR\r\n\xff\r\n+CFUN: 1\r\nOK\r\n";

static void test_binary_payload_with_ok(void **state) {
        size_t n = sizeof binary_input - 1;
        (void) state;

        for (size_t cut = 0; cut <= n; cut++) {
                FakeLoop l;
                AtEngine *e = new_engine(&l);
                Result r = {};
                Urcs u = {};

                assert_int_equal(at_engine_add_urc(e, "#XRECV:", on_urc, &u), 0);
                assert_true(at_engine_send(e, "AT+CFUN?", 5 * SEC, on_done, &r) > 0);
                at_engine_feed(e, binary_input, cut);
                at_engine_feed(e, binary_input + cut, n - cut);
                assert_int_equal(u.calls, 1);
                assert_string_equal(u.lines[0], "#XRECV: 0,12");
                assert_int_equal(u.payload_len[0], 12);
                assert_memory_equal(u.payload[0], "OK\r\nERROR\r\n\xff", 12);
                assert_int_equal(r.calls, 1);
                assert_int_equal(r.result, 0);
                assert_int_equal(r.n_lines, 1);
                assert_string_equal(r.lines[0], "+CFUN: 1");
                result_clear(&r);
                at_engine_free(e);
        }
}

/*
 * A #XRECV header promising 4096 bytes followed by 100 (a UART that dropped
 * the rest): after AT_BINARY_GAP_USEC without a byte the engine gives the
 * payload up, fails the command in flight, resynchronises, and later lines
 * are lines again.  Without the gap the engine took every later line as
 * payload and the link stayed dead.
 */
static void test_short_payload_resyncs(void **state) {
        FakeLoop l;
        AtEngine *e = new_engine(&l);
        unsigned counts[_AT_ENGINE_EVENT_MAX] = {};
        char payload[100], buf[64];
        Result r = {};
        Urcs u = {};
        AtStall st;
        (void) state;

        memset(payload, 'x', sizeof payload);
        at_engine_set_event_handler(e, on_event_count, counts);
        assert_int_equal(at_engine_add_urc(e, "#XRECV:", on_urc, &u), 0);
        assert_int_equal(at_engine_add_urc(e, "+CEREG:", on_urc, &u), 0);
        feed_str(e, "\r\n#XRECV: 0,4096\r\n");
        at_engine_feed(e, payload, 60);
        assert_true(at_engine_send(e, "AT+CFUN?", 30 * SEC, on_done, &r) > 0);
        fake_take_written(&l, buf, sizeof buf);
        /* The gap counts from the last byte, not from the header. */
        fake_advance(&l, e, AT_BINARY_GAP_USEC - 1);
        at_engine_feed(e, payload, 40);
        fake_advance(&l, e, AT_BINARY_GAP_USEC - 1);
        assert_int_equal(at_engine_payload_stalls(e, NULL), 0);
        assert_int_equal(r.calls, 0);

        fake_advance(&l, e, 1);
        assert_int_equal(at_engine_payload_stalls(e, &st), 1);
        assert_string_equal(st.header, "#XRECV: 0,4096");
        assert_int_equal(st.received, 100);
        assert_int_equal(st.announced, 4096);
        assert_int_equal(counts[AT_ENGINE_EVENT_PAYLOAD_STALLED], 1);
        assert_int_equal(u.calls, 0); /* the partial payload is not delivered */
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.result, -ETIMEDOUT);
        assert_int_equal(at_engine_get_state(e), AT_ENGINE_RESYNC);
        assert_string_equal(fake_take_written(&l, buf, sizeof buf), "AT\r\n");

        feed_str(e, "\r\nOK\r\n");
        fake_advance(&l, e, AT_RESYNC_TIMEOUT_USEC);
        assert_int_equal(at_engine_get_state(e), AT_ENGINE_IDLE);
        feed_str(e, "\r\n+CEREG: 1\r\n\r\n#XRECV: 0,3\r\nabc");
        assert_int_equal(u.calls, 2);
        assert_string_equal(u.lines[0], "+CEREG: 1");
        assert_int_equal(u.payload_len[1], 3);
        assert_memory_equal(u.payload[1], "abc", 3);
        /* Nothing more is pending: no second report. */
        fake_advance(&l, e, 10 * AT_BINARY_GAP_USEC);
        assert_int_equal(counts[AT_ENGINE_EVENT_PAYLOAD_STALLED], 1);
        result_clear(&r);
        at_engine_free(e);
}

/* Without a URC handler, a download chunk stays with the command in flight. */
static void test_binary_payload_to_command(void **state) {
        FakeLoop l;
        AtEngine *e = new_engine(&l);
        Result r = {};
        static const char in[] = "\r\n#XDOWNLOAD: 3,1,5\r\nOK\r\n\n\r\nOK\r\n";
        (void) state;

        assert_true(at_engine_send(e, "AT#XTEST", 5 * SEC, on_done, &r) > 0);
        at_engine_feed(e, in, sizeof in - 1);
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.result, 0);
        assert_int_equal(r.payload_len, 5);
        assert_memory_equal(r.payload, "OK\r\n\n", 5);
        assert_string_equal(r.lines[0], "#XDOWNLOAD: 3,1,5");
        result_clear(&r);
        at_engine_free(e);
}

static void test_buffer_overflow_refused(void **state) {
        FakeLoop l;
        AtEngine *e = new_engine(&l);
        Result r = {}, r2 = {};
        char *big;
        (void) state;

        assert_true(at_engine_send(e, "AT%ATTESTTOKEN", 5 * SEC, on_done, &r) > 0);
        big = malloc(AT_LINE_MAX * 2);
        assert_non_null(big);
        memset(big, 'A', AT_LINE_MAX * 2);
        feed_str(e, "\r\n%ATTESTTOKEN: \"");
        at_engine_feed(e, big, AT_LINE_MAX * 2);
        free(big);
        assert_int_equal(at_engine_overflows(e), 1);
        feed_str(e, "\"\r\nOK\r\n");
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.result, -ENOBUFS);
        assert_int_equal(r.n_lines, 0);

        /* The engine goes on with the next command. */
        assert_true(at_engine_send(e, "AT", 5 * SEC, on_done, &r2) > 0);
        feed_str(e, "\r\nOK\r\n");
        assert_int_equal(r2.calls, 1);
        assert_int_equal(r2.result, 0);
        result_clear(&r);
        result_clear(&r2);
        at_engine_free(e);
}

static void test_cme_codes(void **state) {
        static const struct {
                unsigned code;
                int error;
        } table[] = {
                { 513, -ENOENT }, { 514, -EACCES }, { 515, -ENOMEM }, { 518, -EPERM },
                { 519, -EALREADY }, { 523, -EKEYREJECTED }, { 525, -EBADE }, { 528, -ECANCELED },
                { 50, -EINVAL }, { 999, -EREMOTEIO },
        };
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                FakeLoop l;
                AtEngine *e = new_engine(&l);
                Result r = {};
                char line[64], desc[128];
                AtResponse resp;

                assert_true(at_engine_send(e, "AT%CMNG=3,16842753,2", 5 * SEC, on_done, &r) > 0);
                snprintf(line, sizeof line, "\r\n+CME ERROR: %u\r\n", table[i].code);
                feed_str(e, line);
                assert_int_equal(r.calls, 1);
                assert_int_equal(r.final, AT_LINE_CME_ERROR);
                assert_int_equal(r.code, table[i].code);
                assert_int_equal(r.result, table[i].error);
                if (table[i].code != 999)
                        assert_non_null(at_cme_to_string(table[i].code));
                else
                        assert_null(at_cme_to_string(table[i].code));
                resp = (AtResponse){ .result = r.result, .final = r.final, .code = r.code };
                at_response_describe(&resp, desc, sizeof desc);
                snprintf(line, sizeof line, "+CME ERROR: %u (", table[i].code);
                assert_non_null(strstr(desc, line));
                result_clear(&r);
                at_engine_free(e);
        }

        assert_string_equal(at_cme_to_string(513), "not found");
        assert_string_equal(at_cme_to_string(514), "no access");
        assert_string_equal(at_cme_to_string(515), "memory full");
        assert_non_null(strstr(at_cme_to_string(518), "not allowed while the modem is active"));
        assert_string_equal(at_cme_to_string(519), "already exists");
        assert_string_equal(at_cme_to_string(523), "key generation failed");
        assert_string_equal(at_cme_to_string(525), "JWT creation failed");
        assert_non_null(strstr(at_cme_to_string(528), "power-off warning"));
}

static void test_plain_error_and_garbled_final(void **state) {
        FakeLoop l;
        AtEngine *e = new_engine(&l);
        Result r = {}, r2 = {};
        char buf[128];
        (void) state;

        assert_true(at_engine_send(e, "AT#XBAD", 5 * SEC, on_done, &r) > 0);
        feed_str(e, "\r\nERROR\r\n");
        assert_int_equal(r.result, -EREMOTEIO);
        assert_int_equal(r.final, AT_LINE_ERROR);
        result_clear(&r);

        /* A truncated +CME ERROR is not a final result we can trust: resync. */
        fake_take_written(&l, buf, sizeof buf);
        assert_true(at_engine_send(e, "AT%CMNG=1", 5 * SEC, on_done, &r2) > 0);
        fake_take_written(&l, buf, sizeof buf);
        feed_str(e, "\r\n+CME ERROR:\r\n");
        assert_int_equal(r2.calls, 1);
        assert_int_equal(r2.result, -EBADMSG);
        assert_int_equal(at_engine_get_state(e), AT_ENGINE_RESYNC);
        assert_string_equal(fake_take_written(&l, buf, sizeof buf), "AT\r\n");
        result_clear(&r2);
        at_engine_free(e);
}

static void test_partial_writes(void **state) {
        FakeLoop l;
        AtEngine *e = new_engine(&l);
        Result r = {};
        char buf[128];
        (void) state;

        l.write_chunk = 3;
        l.blocked = false;
        assert_true(at_engine_send(e, "AT%XICCID", 2 * SEC, on_done, &r) > 0);
        /* The fake accepts 3 bytes per call; the engine loops until done. */
        assert_string_equal(fake_take_written(&l, buf, sizeof buf), "AT%XICCID\r\n");

        /* Now a blocked port: the timeout must start after the last byte. */
        l.blocked = true;
        assert_true(at_engine_send(e, "AT+CGMR", 2 * SEC, on_done, &r) > 0);
        feed_str(e, "\r\n%XICCID: 8901234567012345678F\r\nOK\r\n");
        assert_int_equal(r.calls, 1);
        assert_true(l.want_write);
        assert_int_equal(at_engine_get_state(e), AT_ENGINE_WRITING);
        l.now += SEC;
        l.blocked = false;
        at_engine_on_writable(e);
        assert_false(l.want_write);
        assert_string_equal(fake_take_written(&l, buf, sizeof buf), "AT+CGMR\r\n");
        assert_int_equal(l.deadline, l.now + 2 * SEC);
        result_clear(&r);
        at_engine_free(e);
}

static void test_write_error(void **state) {
        FakeLoop l;
        AtEngine *e = new_engine(&l);
        unsigned counts[_AT_ENGINE_EVENT_MAX] = {};
        Result r = {};
        (void) state;

        at_engine_set_event_handler(e, on_event_count, counts);
        l.write_error = -EIO;
        assert_true(at_engine_send(e, "AT", SEC, on_done, &r) > 0);
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.result, -EIO);
        assert_int_equal(counts[AT_ENGINE_EVENT_WRITE_FAILED], 1);
        result_clear(&r);
        at_engine_free(e);
}

static void test_queue_and_reset(void **state) {
        FakeLoop l;
        AtEngine *e = new_engine(&l);
        Result r[3] = {};
        char buf[128];
        int64_t id;
        (void) state;

        assert_true(at_engine_send(e, "AT+CGMR", SEC, on_done, &r[0]) > 0);
        id = at_engine_send(e, "AT#XUUID", SEC, on_done, &r[1]);
        assert_true(id > 0);
        assert_true(at_engine_send(e, "AT#XSMVER", SEC, on_done, &r[2]) > 0);
        assert_string_equal(fake_take_written(&l, buf, sizeof buf), "AT+CGMR\r\n");
        assert_int_equal(at_engine_queue_length(e), 3);
        at_engine_cancel(e, id);
        assert_int_equal(at_engine_queue_length(e), 2);
        feed_str(e, "\r\nmfw\r\nOK\r\n");
        assert_int_equal(r[0].calls, 1);
        assert_string_equal(fake_take_written(&l, buf, sizeof buf), "AT#XSMVER\r\n");
        at_engine_reset(e, -ECONNRESET);
        assert_int_equal(r[1].calls, 0);
        assert_int_equal(r[2].calls, 1);
        assert_int_equal(r[2].result, -ECONNRESET);
        assert_int_equal(at_engine_get_state(e), AT_ENGINE_IDLE);
        assert_int_equal(at_engine_queue_length(e), 0);
        for (int i = 0; i < 3; i++)
                result_clear(&r[i]);

        /* A full queue is refused. */
        for (unsigned i = 0; i < AT_QUEUE_MAX + 1; i++)
                assert_true(at_engine_send(e, "AT", SEC, NULL, NULL) > 0);
        assert_int_equal(at_engine_send(e, "AT", SEC, NULL, NULL), -ENOBUFS);
        at_engine_free(e);
}

static void test_echo_ignored(void **state) {
        FakeLoop l;
        AtEngine *e = new_engine(&l);
        Result r = {};
        (void) state;

        assert_true(at_engine_send(e, "ATE0", SEC, on_done, &r) > 0);
        feed_str(e, "ATE0\r\r\nOK\r\n");
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.result, 0);
        assert_int_equal(r.n_lines, 0);
        result_clear(&r);
        at_engine_free(e);
}

static void test_escape(void **state) {
        char buf[64];
        (void) state;
        assert_string_equal(at_escape("AT\r\n", 4, buf, sizeof buf), "AT<CR><LF>");
        assert_string_equal(at_escape("\x01", 1, buf, sizeof buf), "<01>");
        at_escape("0123456789012345678901234567890123456789", 40, buf, 16);
        assert_true(strlen(buf) < 16);
        assert_non_null(strstr(buf, "..."));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_simple_ok),
                cmocka_unit_test(test_split_every_byte),
                cmocka_unit_test(test_lone_cr_and_lone_lf),
                cmocka_unit_test(test_urc_outside_command),
                cmocka_unit_test(test_late_response_after_timeout),
                cmocka_unit_test(test_timeout_without_late_answer),
                cmocka_unit_test(test_unresponsive_reported_once),
                cmocka_unit_test(test_binary_payload_with_ok),
                cmocka_unit_test(test_binary_payload_to_command),
                cmocka_unit_test(test_short_payload_resyncs),
                cmocka_unit_test(test_buffer_overflow_refused),
                cmocka_unit_test(test_cme_codes),
                cmocka_unit_test(test_plain_error_and_garbled_final),
                cmocka_unit_test(test_partial_writes),
                cmocka_unit_test(test_write_error),
                cmocka_unit_test(test_queue_and_reset),
                cmocka_unit_test(test_echo_ignored),
                cmocka_unit_test(test_escape),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
