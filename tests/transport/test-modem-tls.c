/* SPDX-License-Identifier: MIT */
/*
 * The modem TLS socket against scripted modem bytes (firmware_nrf91/doc/
 * at-commands.md, "Sockets") on the AT engine's fake loop.  The test plays the
 * bridge: it defines the four upcalls and records them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fake-loop.h"
#include "modem-tls.h"

#define TAG 16842753u

/* What the "bridge" heard. */
static struct {
        unsigned connected, writable, closed;
        int closed_error;
        uint8_t recv[8192];
        size_t recv_len;
        int recv_result;
} up;

static Bridge *const BRIDGE = (Bridge *) &up; /* never dereferenced by the socket */

void bridge_remote_connected(Bridge *b) {
        assert_ptr_equal(b, BRIDGE);
        up.connected++;
}

int bridge_remote_recv(Bridge *b, const uint8_t *data, size_t len) {
        assert_ptr_equal(b, BRIDGE);
        assert_true(up.recv_len + len <= sizeof up.recv);
        memcpy(up.recv + up.recv_len, data, len);
        up.recv_len += len;
        return up.recv_result;
}

void bridge_remote_writable(Bridge *b) {
        assert_ptr_equal(b, BRIDGE);
        up.writable++;
}

void bridge_remote_closed(Bridge *b, int error) {
        assert_ptr_equal(b, BRIDGE);
        up.closed++;
        up.closed_error = error;
}

typedef struct Fixture {
        FakeLoop loop;
        AtEngine *engine;
        ModemTls *tls;
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof *f);
        assert_non_null(f);
        memset(&up, 0, sizeof up);
        f->loop.deadline = UINT64_MAX;
        assert_int_equal(at_engine_new(&fake_ops, &f->loop, &f->engine), 0);
        assert_int_equal(modem_tls_new(f->engine, TAG, &f->tls), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        modem_tls_free(f->tls);
        at_engine_free(f->engine);
        free(f);
        return 0;
}

static void feed(Fixture *f, const char *s) {
        at_engine_feed(f->engine, s, strlen(s));
}

static void feed_bytes(Fixture *f, const void *p, size_t n) {
        at_engine_feed(f->engine, p, n);
}

static void expect_written(Fixture *f, const char *want) {
        char buf[16384];
        assert_string_equal(fake_take_written(&f->loop, buf, sizeof buf), want);
}

/* The first open closes what an earlier run may have left: AT#XCLOSE=0..7, answered here. */
static void expect_sweep(Fixture *f) {
        char buf[32];

        for (int h = 0; h < MODEM_TLS_SOCKETS_MAX; h++) {
                snprintf(buf, sizeof buf, "AT#XCLOSE=%d\r\n", h);
                expect_written(f, buf);
                feed(f, h == 2 ? "\r\n#XCLOSE: 2,0\r\n\r\nOK\r\n" : "\r\n+CME ERROR: 9\r\n");
        }
}

static int open_socket(Fixture *f) {
        static bool first;
        int r;

        first = modem_tls_get_state(f->tls) == MODEM_TLS_IDLE;
        r = modem_tls_ops.open(f->tls, BRIDGE, "localhost", 8883);
        if (r == 0 && first)
                expect_sweep(f);
        return r;
}

/* Runs the open table up to a connected socket with handle h. */
static void connect_socket(Fixture *f, int h) {
        char buf[128];

        assert_int_equal(open_socket(f), 0);
        assert_int_equal(modem_tls_get_state(f->tls), MODEM_TLS_OPENING);
        expect_written(f, "AT#XSSOCKET=1,1,0,16842753,2\r\n");
        snprintf(buf, sizeof buf, "\r\n#XSSOCKET: %d,1,258\r\n\r\nOK\r\n", h);
        feed(f, buf);
        snprintf(buf, sizeof buf, "AT#XSSOCKETOPT=%d,1,2,\"localhost\"\r\n", h);
        expect_written(f, buf);
        feed(f, "\r\nOK\r\n");
        snprintf(buf, sizeof buf, "AT#XRECVCFG=%d,1\r\n", h);
        expect_written(f, buf);
        feed(f, "\r\nOK\r\n");
        snprintf(buf, sizeof buf, "AT#XCONNECT=%d,\"localhost\",8883\r\n", h);
        expect_written(f, buf);
        assert_int_equal(up.connected, 0);
        snprintf(buf, sizeof buf, "\r\n#XCONNECT: %d,1\r\n\r\nOK\r\n", h);
        feed(f, buf);
        assert_int_equal(up.connected, 1);
        assert_int_equal(modem_tls_get_state(f->tls), MODEM_TLS_CONNECTED);
        assert_int_equal(modem_tls_handle(f->tls), h);
}

static void test_open_sequence(void **state) {
        Fixture *f = *state;
        connect_socket(f, 3);
        assert_int_equal(up.closed, 0);
}

static void test_send_payload_is_raw(void **state) {
        Fixture *f = *state;
        static const uint8_t data[] = { 'a', '\r', '\n', 'O', 'K', '\r', '\n', 0, 0x30 };

        connect_socket(f, 0);
        assert_int_equal(modem_tls_ops.send(f->tls, data, sizeof data), (ssize_t) sizeof data);
        expect_written(f, "AT#XSEND=0,9\r\n");
        /* One #XSEND at a time. */
        assert_int_equal(modem_tls_ops.send(f->tls, data, sizeof data), 0);
        feed(f, "\r\nOK\r\n");
        assert_int_equal(f->loop.written_len, sizeof data);
        assert_memory_equal(f->loop.written, data, sizeof data);
        f->loop.written_len = 0;
        assert_int_equal(up.writable, 0);
        /* A URC of another kind before the end line changes nothing. */
        feed(f, "\r\n+CEREG: 1\r\n");
        assert_int_equal(up.writable, 0);
        feed(f, "\r\n#XSEND: 0,9\r\n");
        assert_int_equal(up.writable, 1);
        assert_int_equal(modem_tls_bytes_sent(f->tls), 9);
        assert_int_equal(modem_tls_sends(f->tls), 1);
        /* The next one goes now. */
        assert_int_equal(modem_tls_ops.send(f->tls, data, 2), 2);
        expect_written(f, "AT#XSEND=0,2\r\n");
}

static void test_send_partial_and_cap(void **state) {
        Fixture *f = *state;
        static uint8_t big[6000];
        char buf[64];

        for (size_t i = 0; i < sizeof big; i++)
                big[i] = (uint8_t) i;
        connect_socket(f, 1);
        assert_int_equal(modem_tls_ops.send(f->tls, big, sizeof big), MODEM_TLS_SEND_MAX);
        expect_written(f, "AT#XSEND=1,4096\r\n");
        feed(f, "\r\nOK\r\n");
        assert_int_equal(f->loop.written_len, 4096);
        f->loop.written_len = 0;
        /* The TLS layer took 1000: the other 3096 go again before anything else. */
        feed(f, "\r\n#XSEND: 1,1000\r\n");
        assert_int_equal(up.writable, 0);
        snprintf(buf, sizeof buf, "AT#XSEND=1,%d\r\n", 4096 - 1000);
        expect_written(f, buf);
        feed(f, "\r\nOK\r\n");
        assert_int_equal(f->loop.written_len, 3096);
        assert_memory_equal(f->loop.written, big + 1000, 3096);
        f->loop.written_len = 0;
        feed(f, "\r\n#XSEND: 1,3096\r\n");
        assert_int_equal(up.writable, 1);
        assert_int_equal(modem_tls_bytes_sent(f->tls), 4096);
}

static void test_recv_interleaved_with_send(void **state) {
        Fixture *f = *state;
        static const uint8_t in[] = "\r\nOK\r\n#XSEND: 0,1\r\n";
        char hdr[48];

        connect_socket(f, 0);
        assert_int_equal(modem_tls_ops.send(f->tls, (const uint8_t *) "x", 1), 1);
        expect_written(f, "AT#XSEND=0,1\r\n");
        /* Received data (which looks like AT text) arrives before the OK of the #XSEND. */
        snprintf(hdr, sizeof hdr, "\r\n#XRECV: 0,%zu\r\n", sizeof in - 1);
        feed(f, hdr);
        feed_bytes(f, in, sizeof in - 1);
        assert_int_equal(up.recv_len, sizeof in - 1);
        assert_memory_equal(up.recv, in, sizeof in - 1);
        assert_int_equal(up.writable, 0);
        feed(f, "\r\nOK\r\n");
        expect_written(f, "x");
        feed(f, "\r\n#XRECV: 0,2\r\nhi\r\n#XSEND: 0,1\r\n");
        assert_int_equal(up.writable, 1);
        assert_int_equal(up.recv_len, sizeof in - 1 + 2);
        assert_int_equal(modem_tls_bytes_received(f->tls), sizeof in - 1 + 2);
        /* Data for another handle is not ours. */
        feed(f, "\r\n#XRECV: 5,3\r\nabc");
        assert_int_equal(up.recv_len, sizeof in - 1 + 2);
}

static void test_pause_one_at_a_time(void **state) {
        Fixture *f = *state;

        connect_socket(f, 2);
        modem_tls_ops.pause_recv(f->tls, true);
        expect_written(f, "AT#XRECVCFG=2,0\r\n");
        /* Changes while one is in flight: only the last wish counts, sent after the answer. */
        modem_tls_ops.pause_recv(f->tls, false);
        modem_tls_ops.pause_recv(f->tls, true);
        modem_tls_ops.pause_recv(f->tls, false);
        assert_int_equal(f->loop.written_len, 0);
        feed(f, "\r\nOK\r\n");
        expect_written(f, "AT#XRECVCFG=2,1\r\n");
        feed(f, "\r\nOK\r\n");
        assert_int_equal(f->loop.written_len, 0);
        /* Asking for what is already in force sends nothing. */
        modem_tls_ops.pause_recv(f->tls, false);
        assert_int_equal(f->loop.written_len, 0);
        assert_int_equal(up.closed, 0);
}

static void test_pause_while_connecting(void **state) {
        Fixture *f = *state;

        assert_int_equal(open_socket(f), 0);
        modem_tls_ops.pause_recv(f->tls, true);
        feed(f, "\r\n#XSSOCKET: 0,1,258\r\n\r\nOK\r\n\r\nOK\r\n\r\nOK\r\n");
        f->loop.written_len = 0;
        feed(f, "\r\n#XCONNECT: 0,1\r\n\r\nOK\r\n");
        assert_int_equal(up.connected, 1);
        /* The open table turned receiving on; the pause asked for meanwhile follows. */
        expect_written(f, "AT#XRECVCFG=0,0\r\n");
}

static void test_connect_refused_certificate(void **state) {
        Fixture *f = *state;

        assert_int_equal(open_socket(f), 0);
        feed(f, "\r\n#XSSOCKET: 0,1,258\r\n\r\nOK\r\n\r\nOK\r\n\r\nOK\r\n");
        f->loop.written_len = 0;
        /* The server certificate is not trusted by the tag's CA. */
        feed(f, "\r\n+CME ERROR: 13\r\n");
        assert_int_equal(up.closed, 1);
        assert_int_equal(up.closed_error, -EACCES);
        assert_int_equal(up.connected, 0);
        assert_int_equal(modem_tls_get_state(f->tls), MODEM_TLS_CLOSED);
        /* The handle stays open in the modem after a failed #XCONNECT: closed. */
        expect_written(f, "AT#XCLOSE=0\r\n");
        feed(f, "\r\n#XCLOSE: 0,0\r\n\r\nOK\r\n");
        assert_int_equal(up.closed, 1);
        assert_non_null(modem_tls_error_to_string(-EACCES));
        /* And it can be opened again. */
        memset(&up, 0, sizeof up);
        connect_socket(f, 0);
}

static void test_socket_refused_no_close(void **state) {
        Fixture *f = *state;

        assert_int_equal(open_socket(f), 0);
        f->loop.written_len = 0;
        feed(f, "\r\n+CME ERROR: 24\r\n");
        assert_int_equal(up.closed, 1);
        assert_int_equal(up.closed_error, -EMFILE);
        /* No handle was given: nothing to close. */
        assert_int_equal(f->loop.written_len, 0);
}

static void test_peer_close_urc(void **state) {
        Fixture *f = *state;

        connect_socket(f, 4);
        feed(f, "\r\n#XCLOSE: 3,0\r\n"); /* another socket's */
        assert_int_equal(up.closed, 0);
        feed(f, "\r\n#XCLOSE: 4,0\r\n");
        assert_int_equal(up.closed, 1);
        assert_int_equal(up.closed_error, -ECONNRESET);
        assert_int_equal(modem_tls_handle(f->tls), -1);
        /* The modem freed the handle itself: no #XCLOSE from us. */
        assert_int_equal(f->loop.written_len, 0);
}

static void test_send_error_closes(void **state) {
        Fixture *f = *state;

        connect_socket(f, 0);
        assert_int_equal(modem_tls_ops.send(f->tls, (const uint8_t *) "abc", 3), 3);
        feed(f, "\r\nOK\r\n");
        f->loop.written_len = 0;
        feed(f, "\r\n#XSEND: 0,-104\r\n");
        assert_int_equal(up.closed, 1);
        assert_int_equal(up.closed_error, -ECONNRESET);
        expect_written(f, "AT#XCLOSE=0\r\n");
}

static void test_local_close_ignores_answer(void **state) {
        Fixture *f = *state;

        connect_socket(f, 0);
        modem_tls_ops.close(f->tls);
        expect_written(f, "AT#XCLOSE=0\r\n");
        feed(f, "\r\n#XCLOSE: 0,0\r\n\r\nOK\r\n");
        /* No upcall after close(). */
        assert_int_equal(up.closed, 0);
        assert_int_equal(modem_tls_get_state(f->tls), MODEM_TLS_CLOSED);
        modem_tls_ops.close(f->tls); /* idempotent */
        assert_int_equal(f->loop.written_len, 0);
}

/* The sweep made before the first open (when the modem is ready): the open then starts with
 * #XSSOCKET at once; a second sweep does nothing, nor does one while a socket is open. */
static void test_sweep_before_open(void **state) {
        Fixture *f = *state;

        modem_tls_sweep(f->tls);
        expect_sweep(f);
        modem_tls_sweep(f->tls);
        assert_int_equal(f->loop.written_len, 0);
        assert_int_equal(modem_tls_ops.open(f->tls, BRIDGE, "localhost", 8883), 0);
        expect_written(f, "AT#XSSOCKET=1,1,0,16842753,2\r\n");
        feed(f, "\r\n#XSSOCKET: 0,1,258\r\n\r\nOK\r\n");
        expect_written(f, "AT#XSSOCKETOPT=0,1,2,\"localhost\"\r\n");
        modem_tls_sweep(f->tls);
        feed(f, "\r\nOK\r\n");
        expect_written(f, "AT#XRECVCFG=0,1\r\n");
}

static void test_send_timeout(void **state) {
        Fixture *f = *state;

        connect_socket(f, 0);
        assert_int_equal(modem_tls_ops.send(f->tls, (const uint8_t *) "abc", 3), 3);
        feed(f, "\r\nOK\r\n");
        f->loop.written_len = 0;
        /* No #XSEND: line ever comes. */
        fake_advance(&f->loop, f->engine, MODEM_TLS_SEND_TIMEOUT_USEC + 1);
        assert_int_equal(up.closed, 1);
        assert_int_equal(up.closed_error, -ETIMEDOUT);
}

/*
 * The link dropped in the middle of an #XSEND payload: the firmware waits for
 * the rest and takes every resync "AT" as payload until input stops for 10 s.
 * The engine keeps quiet for longer than that after a few unanswered probes.
 */
static void test_resync_outlasts_cut_payload(void **state) {
        Fixture *f = *state;
        size_t probes = 0;
        char buf[16384];

        connect_socket(f, 0);
        assert_int_equal(modem_tls_ops.send(f->tls, (const uint8_t *) "abc", 3), 3);
        feed(f, "\r\nOK\r\n");
        f->loop.written_len = 0;
        fake_advance(&f->loop, f->engine, MODEM_TLS_SEND_TIMEOUT_USEC + 1);
        assert_int_equal(up.closed, 1);
        /* Count the probes over 10 s of fake time in 100 ms steps. */
        for (int i = 0; i < 100; i++)
                fake_advance(&f->loop, f->engine, 100000);
        probes = strlen(fake_take_written(&f->loop, buf, sizeof buf)) / 4;
        assert_int_equal(probes, AT_RESYNC_REPORT_AFTER);
        /* The last probe went out 4 s after the loss: silent until more than 10 s after it. */
        for (int i = 0; i < 65; i++)
                fake_advance(&f->loop, f->engine, 100000);
        assert_int_equal(f->loop.written_len, 0);
        /* The firmware gave up on the payload; the next probe is answered. */
        feed(f, "\r\n#XSEND: 0,-110\r\n");
        for (int i = 0; i < 20 && f->loop.written_len == 0; i++)
                fake_advance(&f->loop, f->engine, 100000);
        expect_written(f, "AT\r\n");
        feed(f, "\r\nOK\r\n");
        fake_advance(&f->loop, f->engine, AT_RESYNC_SETTLE_USEC);
        /* In sync: the #XCLOSE queued at the failure goes out now. */
        assert_int_not_equal(at_engine_get_state(f->engine), AT_ENGINE_RESYNC);
        expect_written(f, "AT#XCLOSE=0\r\n");
}

static void test_link_lost(void **state) {
        Fixture *f = *state;

        connect_socket(f, 0);
        modem_tls_link_lost(f->tls, -ECONNRESET);
        assert_int_equal(up.closed, 1);
        assert_int_equal(up.closed_error, -ECONNRESET);
        assert_int_equal(f->loop.written_len, 0);
        assert_int_equal(modem_tls_ops.send(f->tls, (const uint8_t *) "a", 1), -ENOTCONN);
        modem_tls_link_lost(f->tls, -ECONNRESET); /* once */
        assert_int_equal(up.closed, 1);
        /* The socket may have outlived the port: closed before the next one is opened. */
        assert_int_equal(modem_tls_ops.open(f->tls, BRIDGE, "localhost", 8883), 0);
        expect_written(f, "AT#XCLOSE=0\r\n");
        feed(f, "\r\n+CME ERROR: 9\r\n");
        expect_written(f, "AT#XSSOCKET=1,1,0,16842753,2\r\n");
        assert_int_equal(up.closed, 1);
}

static void test_write_failure_returned_not_upcalled(void **state) {
        Fixture *f = *state;

        f->loop.write_error = -EIO;
        assert_int_equal(modem_tls_ops.open(f->tls, BRIDGE, "localhost", 8883), -EIO);
        assert_int_equal(up.closed, 0);
        assert_int_equal(modem_tls_get_state(f->tls), MODEM_TLS_CLOSED);
}

static void test_bad_arguments(void **state) {
        Fixture *f = *state;

        assert_int_equal(modem_tls_ops.open(f->tls, BRIDGE, "evil\",1,2", 8883), -EINVAL);
        assert_int_equal(modem_tls_ops.open(f->tls, BRIDGE, "", 8883), -EINVAL);
        assert_int_equal(modem_tls_ops.open(f->tls, BRIDGE, "localhost", 0), -EINVAL);
        assert_int_equal(f->loop.written_len, 0);
        assert_int_equal(modem_tls_ops.send(f->tls, (const uint8_t *) "a", 1), -ENOTCONN);
        assert_int_equal(open_socket(f), 0);
        assert_int_equal(modem_tls_ops.open(f->tls, BRIDGE, "localhost", 8883), -EBUSY);
        /* Garbage answers are protocol errors, not crashes. */
        f->loop.written_len = 0;
        feed(f, "\r\n#XSSOCKET: 9,1,258\r\n\r\nOK\r\n");
        assert_int_equal(up.closed, 1);
        assert_int_equal(up.closed_error, -EBADMSG);
}

/* at_engine_send_with_payload() on its own. */
typedef struct Done {
        unsigned calls;
        int result;
        char last[64];
} Done;

static void on_done(AtEngine *e, const AtResponse *r, void *userdata) {
        Done *d = userdata;
        (void) e;
        d->calls++;
        d->result = r->result;
        snprintf(d->last, sizeof d->last, "%s", r->n_lines ? r->lines[r->n_lines - 1] : "");
}

static void test_engine_payload_refused_before_bytes(void **state) {
        Fixture *f = *state;
        Done d = {};

        assert_true(at_engine_send_with_payload(f->engine, "AT#XSEND=0,3", "abc", 3, "#XSEND: ", 1000000, on_done, &d) > 0);
        expect_written(f, "AT#XSEND=0,3\r\n");
        feed(f, "\r\n+CME ERROR: 107\r\n");
        assert_int_equal(d.calls, 1);
        assert_int_not_equal(d.result, 0);
        /* The payload is never written; the next command goes. */
        assert_true(at_engine_send(f->engine, "AT", 1000000, NULL, NULL) > 0);
        expect_written(f, "AT\r\n");
}

static void test_engine_payload_slow_port(void **state) {
        Fixture *f = *state;
        Done d = {};

        f->loop.write_chunk = 3;
        assert_true(at_engine_send_with_payload(f->engine, "AT#XSEND=1,7", "a\r\nOK\r\n", 7, "#XSEND: ", 1000000,
                                                on_done, &d) > 0);
        /* A command queued meanwhile waits until the end line. */
        assert_true(at_engine_send(f->engine, "AT+CFUN?", 1000000, NULL, NULL) > 0);
        expect_written(f, "AT#XSEND=1,7\r\n");
        f->loop.blocked = true;
        feed(f, "\r\nOK\r\n");
        assert_int_equal(f->loop.written_len, 0);
        assert_true(f->loop.want_write);
        f->loop.blocked = false;
        while (f->loop.want_write)
                at_engine_on_writable(f->engine);
        expect_written(f, "a\r\nOK\r\n");
        assert_int_equal(d.calls, 0);
        /* OK and other lines do not end it: only the end line does. */
        feed(f, "\r\n+CEREG: 1\r\n\r\n#XSEND: 1,7\r\n");
        assert_int_equal(d.calls, 1);
        assert_int_equal(d.result, 0);
        assert_string_equal(d.last, "#XSEND: 1,7");
        expect_written(f, "AT+CFUN?\r\n");
}

static void test_engine_payload_bad_arguments(void **state) {
        Fixture *f = *state;
        static const uint8_t big[AT_BINARY_MAX + 1];

        assert_int_equal(at_engine_send_with_payload(f->engine, "AT#XSEND=0,0", "", 0, "#XSEND: ", 1000000, NULL, NULL),
                         -EINVAL);
        assert_int_equal(at_engine_send_with_payload(f->engine, "AT#XSEND=0,1", big, sizeof big, "#XSEND: ", 1000000,
                                                     NULL, NULL),
                         -EINVAL);
        assert_int_equal(at_engine_send_with_payload(f->engine, "AT#XSEND=0,1", "a", 1, NULL, 1000000, NULL, NULL),
                         -EINVAL);
        assert_int_equal(f->loop.written_len, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_open_sequence, setup, teardown),
                cmocka_unit_test_setup_teardown(test_send_payload_is_raw, setup, teardown),
                cmocka_unit_test_setup_teardown(test_send_partial_and_cap, setup, teardown),
                cmocka_unit_test_setup_teardown(test_recv_interleaved_with_send, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pause_one_at_a_time, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pause_while_connecting, setup, teardown),
                cmocka_unit_test_setup_teardown(test_connect_refused_certificate, setup, teardown),
                cmocka_unit_test_setup_teardown(test_socket_refused_no_close, setup, teardown),
                cmocka_unit_test_setup_teardown(test_peer_close_urc, setup, teardown),
                cmocka_unit_test_setup_teardown(test_send_error_closes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_local_close_ignores_answer, setup, teardown),
                cmocka_unit_test_setup_teardown(test_send_timeout, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sweep_before_open, setup, teardown),
                cmocka_unit_test_setup_teardown(test_resync_outlasts_cut_payload, setup, teardown),
                cmocka_unit_test_setup_teardown(test_link_lost, setup, teardown),
                cmocka_unit_test_setup_teardown(test_write_failure_returned_not_upcalled, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
                cmocka_unit_test_setup_teardown(test_engine_payload_refused_before_bytes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_engine_payload_slow_port, setup, teardown),
                cmocka_unit_test_setup_teardown(test_engine_payload_bad_arguments, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
