/* SPDX-License-Identifier: MIT */
/*
 * The portable AT server core against a scripted port: framing, input split
 * at every byte boundary, URC placement, counted payloads both ways, limits
 * and every command's argument errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "at-params.h"
#include "at-line.h"
#include "fake-port.h"
#include "sha256.h"

#define OK "\r\nOK\r\n"
#define ERR "\r\nERROR\r\n"

static struct fake_port *new_port(void) {
        struct fake_port *p = malloc(sizeof *p);
        assert_non_null(p);
        fake_port_start(p);
        return p;
}

static void assert_output(struct fake_port *p, const char *expected) {
        if (p->out_len != strlen(expected) || memcmp(p->out, expected, p->out_len) != 0) {
                fprintf(stderr, "expected: ");
                for (const char *s = expected; *s; s++)
                        fprintf(stderr, *s == '\r' ? "<CR>" : *s == '\n' ? "<LF>\n" : "%c", *s);
                fprintf(stderr, "\nactual:   ");
                for (size_t i = 0; i < p->out_len; i++)
                        fprintf(stderr, p->out[i] == '\r' ? "<CR>" : p->out[i] == '\n' ? "<LF>\n" : "%c", p->out[i]);
                fprintf(stderr, "\n");
                fail();
        }
}

/* Feeds input on a fresh output. */
static void run(struct fake_port *p, const char *in) {
        fake_port_clear(p);
        fake_port_input_str(p, in);
}

/* Runs one command on a fresh output and checks the whole output. */
static void check(struct fake_port *p, const char *in, const char *expected) {
        fake_port_clear(p);
        fake_port_input_str(p, in);
        assert_output(p, expected);
}

static void open_connected_socket(struct fake_port *p, int expect_handle) {
        char expected[64];

        snprintf(expected, sizeof expected, "\r\n#XSSOCKET: %d,1,258\r\n" OK, expect_handle);
        check(p, "AT#XSSOCKET=1,1,0,16842753\r\n", expected);
        snprintf(expected, sizeof expected, "AT#XCONNECT=%d,\"example.com\",443\r\n", expect_handle);
        p->connect_result = 0;
        fake_port_clear(p);
        fake_port_input_str(p, expected);
        snprintf(expected, sizeof expected, "\r\n#XCONNECT: %d,1\r\n" OK, expect_handle);
        assert_output(p, expected);
}

/* ---- framing ----------------------------------------------------------- */

static void test_ready_banner(void **state) {
        struct fake_port *p = malloc(sizeof *p);

        (void) state;
        memset(p, 0, sizeof *p);
        nrf91_core_init(&p->core, &fake_port_ops, p);
        /* Nothing is answered before boot. */
        fake_port_input_str(p, "AT\r\n");
        assert_int_equal(p->out_len, 0);
        nrf91_core_boot(&p->core);
        assert_output(p, "\r\nReady\r\n");
        free(p);
}

static void test_terminators(void **state) {
        struct fake_port *p = new_port();

        (void) state;
        check(p, "AT\r\n", OK);
        check(p, "AT\r", OK);
        check(p, "AT\n", OK);
        /* CR LF is one terminator; empty lines are ignored. */
        check(p, "AT\r\n\r\n\n\rAT\n", OK OK);
        /* Not an AT command at all. */
        check(p, "hello\r\n", ERR);
        check(p, "A\r\n", ERR);
        /* Lower case works for firmware commands. */
        check(p, "at#xuuid\r\n", "\r\n#XUUID: 50503642-3239-4f86-80c4-06122e299623\r\n" OK);
        free(p);
}

static void test_passthrough_unchanged(void **state) {
        struct fake_port *p = new_port();
        const char *pem = "AT%CMNG=0,16842753,0,\"-----BEGIN CERTIFICATE-----\r\nMIIB\r\n"
                          "-----END CERTIFICATE-----\r\n\"";

        (void) state;
        check(p, "AT+CGMR\r\n", "\r\nmfw_nrf9160_1.3.5\r\n" OK);
        assert_string_equal(p->modem_cmd, "AT+CGMR");

        /* CR/LF inside quotes are content, passed to the modem as received. */
        fake_port_clear(p);
        fake_port_input_str(p, pem);
        fake_port_input_str(p, "\r\n");
        assert_output(p, OK);
        assert_string_equal(p->modem_cmd, pem);

        /* Lone LF line endings inside quotes stay LF. */
        check(p, "AT%CMNG=0,1,0,\"a\nb\n\"\n", OK);
        assert_string_equal(p->modem_cmd, "AT%CMNG=0,1,0,\"a\nb\n\"");

        /* Unknown #X commands go to the modem too; its ERROR is passed on. */
        check(p, "AT#XPING=\"x\"\r\n", OK);
        assert_string_equal(p->modem_cmd, "AT#XPING=\"x\"");
        check(p, "ATBAD\r\n", ERR);
        /* Numeric errors stay on whatever the host does with +CMEE (and from boot on). */
        check(p, "AT+CMEE=0\r\n", OK);
        assert_string_equal(p->modem_cmd, "AT+CMEE=1");
        assert_int_equal(p->modem_calls, 2 + 6);
        /* A modem response that does not fit gives ERROR. */
        check(p, "ATENOSPACE\r\n", ERR);
        free(p);
}

/*
 * The same input, cut into two reads at every byte boundary and fed byte
 * by byte, gives the same output and the same modem commands.
 */
static void test_split_every_boundary(void **state) {
        static const char script[] =
                "AT\r\n"
                "AT#XUUID\r\n"
                "AT%CMNG=0,16842753,0,\"-----BEGIN CERTIFICATE-----\r\nAAAA\r\n-----END CERTIFICATE-----\r\n\"\r\n"
                "AT+MULTI\n"
                "AT#XSSOCKET=1,1,0,42\r"
                "\nAT#XSSOCKETOPT=0,1,2,\"host.example, with a comma\"\r\n"
                "AT#XSMVER\r\n"
                "AT#XBOGUS=1,\r\n";
        struct fake_port *p = new_port();
        uint8_t *reference;
        size_t reference_len, n = strlen(script);
        char reference_cmd[sizeof p->modem_cmd];

        (void) state;
        fake_port_input(p, script, n);
        reference_len = p->out_len;
        reference = malloc(reference_len);
        memcpy(reference, p->out, reference_len);
        memcpy(reference_cmd, p->modem_cmd, sizeof reference_cmd);
        assert_true(p->finals == 8);

        for (size_t cut = 0; cut <= n; cut++) {
                fake_port_start(p);
                fake_port_input(p, script, cut);
                fake_port_input(p, script + cut, n - cut);
                assert_int_equal(p->out_len, reference_len);
                assert_memory_equal(p->out, reference, reference_len);
                assert_string_equal(p->modem_cmd, reference_cmd);
        }
        fake_port_start(p);
        for (size_t i = 0; i < n; i++)
                fake_port_input(p, script + i, 1);
        assert_int_equal(p->out_len, reference_len);
        assert_memory_equal(p->out, reference, reference_len);
        free(reference);
        free(p);
}

static void test_overlong_lines(void **state) {
        struct fake_port *p = new_port();
        char *line = malloc(NRF91_AT_MAX_CMD_LEN + 64);

        (void) state;
        /* Exactly the maximum is accepted and passed through whole. */
        memcpy(line, "AT+X", 4);
        memset(line + 4, 'a', NRF91_AT_MAX_CMD_LEN - 4);
        memcpy(line + NRF91_AT_MAX_CMD_LEN, "\r\n", 3);
        check(p, line, OK);
        assert_int_equal(p->modem_cmd_len, NRF91_AT_MAX_CMD_LEN);

        /* One more byte: refused with exactly one ERROR, modem not asked. */
        p->modem_calls = 0;
        memset(line + 4, 'b', NRF91_AT_MAX_CMD_LEN - 3);
        memcpy(line + NRF91_AT_MAX_CMD_LEN + 1, "\r\nAT\r\n", 7);
        check(p, line, ERR "\r\nOK\r\n");
        assert_int_equal(p->modem_calls, 1); /* only the AT after it */
        assert_int_equal(p->finals, 2);

        /* Over-long inside a quoted string: the whole command up to its real end is refused. */
        p->modem_calls = 0;
        memcpy(line, "AT%CMNG=0,1,0,\"", 15);
        memset(line + 15, 'c', NRF91_AT_MAX_CMD_LEN);
        line[100] = '\n'; /* a newline inside the quotes does not end it */
        memcpy(line + 15 + NRF91_AT_MAX_CMD_LEN, "\"\r\nAT\r\n", 8);
        check(p, line, ERR OK);
        assert_int_equal(p->modem_calls, 1);
        free(line);
        free(p);
}

static void test_stalled_quote_dropped(void **state) {
        struct fake_port *p = new_port();

        (void) state;
        /* A %CMNG write that stops in the middle of its multi-line string. */
        fake_port_input_str(p, "AT%CMNG=0,1,0,\"-----BEGIN\r\nAAAA");
        assert_int_equal(nrf91_core_next_timeout(&p->core), p->now_ms + NRF91_QUOTED_IDLE_MS);
        p->now_ms += NRF91_QUOTED_IDLE_MS - 1;
        nrf91_core_tick(&p->core);
        assert_int_equal(p->out_len, 0);
        p->now_ms += 1;
        nrf91_core_tick(&p->core);
        assert_output(p, ERR);
        /* The link works again: the quote is closed. */
        check(p, "AT\r\n", OK);
        /* A single-line partial command is never timed out (a person typing). */
        fake_port_input_str(p, "AT+CG");
        assert_int_equal(nrf91_core_next_timeout(&p->core), UINT64_MAX);
        free(p);
}

/* ---- URCs ------------------------------------------------------------- */

static void test_urc_not_inside_response(void **state) {
        struct fake_port *p = new_port();

        (void) state;
        /* A URC raised while the modem answers waits until the final result. */
        p->modem_urc_during = "+CEREG: 2";
        check(p, "AT+MULTI\r\n", "\r\n+MULTI: 1\r\n\r\n+MULTI: 2\r\n" OK "\r\n+CEREG: 2\r\n");
        p->modem_urc_during = NULL;
        /* Outside a response it goes out at once. */
        fake_port_clear(p);
        nrf91_core_urc(&p->core, "+CEREG: 5");
        assert_output(p, "\r\n+CEREG: 5\r\n");
        free(p);
}

static void test_urcs_between_info_and_final(void **state) {
        struct fake_port *p = new_port();

        (void) state;
        open_connected_socket(p, 0);
        check(p, "AT#XRECVCFG=0,1\r\n", OK);
        check(p, "AT#XSSOCKET=1,1,0,7\r\n", "\r\n#XSSOCKET: 1,1,258\r\n" OK);
        /* #XCONNECT on socket 1 waits for the handshake ... */
        p->connect_result = -NRF91_EINPROGRESS;
        check(p, "AT#XCONNECT=1,\"example.com\",443\r\nAT\r\n", "");
        assert_false(nrf91_core_wants_input(&p->core));
        /* ... while data of socket 0 and a modem URC arrive: they go out whole, before the result. */
        assert_int_equal(nrf91_core_sock_data(&p->core, 0, (const uint8_t *) "\r\nOK\r\n", 6), 0);
        nrf91_core_urc(&p->core, "+CEREG: 1");
        nrf91_core_sock_connected(&p->core, 1, 0);
        assert_output(p, "\r\n#XRECV: 0,6\r\n\r\nOK\r\n"
                         "\r\n+CEREG: 1\r\n"
                         "\r\n#XCONNECT: 1,1\r\n" OK);
        /* The held-back "AT" runs once the port offers it again. */
        assert_true(nrf91_core_wants_input(&p->core));
        check(p, "AT\r\n", OK);
        /* A failed handshake ends the command with +CME ERROR: <errno>. */
        check(p, "AT#XSSOCKET=1,1,0,7\r\n", "\r\n#XSSOCKET: 2,1,258\r\n" OK);
        check(p, "AT#XCONNECT=2,\"example.com\",443\r\n", "");
        nrf91_core_sock_connected(&p->core, 2, -NRF91_EACCES);
        assert_output(p, "\r\n+CME ERROR: 13\r\n");
        free(p);
}

/* ---- counted payloads ----------------------------------------------- */

static const uint8_t nasty[] = { '\r', '\n', 'O', 'K', '\r', '\n', 0, 'A', 'T', '#', 'X', 'R',
                                 'E', 'S', 'E', 'T', '\r', '\n', '"', 0, 0, '\n', 'E', 'R', 'R', 'O', 'R' };

static void test_xsend_payload(void **state) {
        struct fake_port *p = new_port();
        char cmd[64];

        (void) state;
        open_connected_socket(p, 0);
        /* The payload holds CR LF, "OK", NUL and a whole command: all of it is data. */
        snprintf(cmd, sizeof cmd, "AT#XSEND=0,%zu\r\n", sizeof nasty);
        fake_port_clear(p);
        fake_port_input_str(p, cmd);
        assert_output(p, OK);
        fake_port_input(p, nasty, sizeof nasty);
        assert_output(p, OK "\r\n#XSEND: 0,27\r\n");
        assert_int_equal(p->sent_len, sizeof nasty);
        assert_memory_equal(p->sent, nasty, sizeof nasty);
        assert_int_equal(p->resets, 0);
        check(p, "AT\r\n", OK);

        /* Command and payload in one read, split everywhere. */
        for (size_t cut = 0; cut < strlen(cmd) + sizeof nasty; cut++) {
                uint8_t all[128];
                size_t n = strlen(cmd);
                memcpy(all, cmd, n);
                memcpy(all + n, nasty, sizeof nasty);
                p->sent_len = 0;
                fake_port_clear(p);
                fake_port_input(p, all, cut);
                fake_port_input(p, all + cut, n + sizeof nasty - cut);
                assert_output(p, OK "\r\n#XSEND: 0,27\r\n");
                assert_memory_equal(p->sent, nasty, sizeof nasty);
        }

        /* A payload that starts with LF after a lone-LF terminated command keeps it. */
        p->sent_len = 0;
        check(p, "AT#XSEND=0,2\n\nX", OK "\r\n#XSEND: 0,2\r\n");
        assert_memory_equal(p->sent, "\nX", 2);

        /* The host stops in the middle: after the timeout the link reads commands again. */
        check(p, "AT#XSEND=0,100\r\nabc", OK);
        p->now_ms += NRF91_SEND_TIMEOUT_MS;
        nrf91_core_tick(&p->core);
        assert_output(p, OK "\r\n#XSEND: 0,-110\r\n");
        check(p, "AT\r\n", OK);

        /* Asynchronous send. */
        p->send_result = -NRF91_EINPROGRESS;
        check(p, "AT#XSEND=0,3\r\nxyzAT\r\n", OK);
        assert_false(nrf91_core_wants_input(&p->core));
        nrf91_core_sock_sent(&p->core, 0, 3);
        assert_output(p, OK "\r\n#XSEND: 0,3\r\n");
        /* Send failure is reported in the #XSEND line. */
        p->send_result = -NRF91_ECONNRESET;
        check(p, "AT#XSEND=0,1\r\nz", OK "\r\n#XSEND: 0,-104\r\n");
        free(p);
}

static void test_xrecv_payload(void **state) {
        struct fake_port *p = new_port();
        uint8_t big[NRF91_RECV_MAX + 1];
        char expected[256];
        size_t n;

        (void) state;
        open_connected_socket(p, 0);
        check(p, "AT#XRECVCFG=0,1\r\n", OK);
        assert_true(p->recv_enabled[0]);
        fake_port_clear(p);
        assert_int_equal(nrf91_core_sock_data(&p->core, 0, nasty, sizeof nasty), 0);
        n = (size_t) snprintf(expected, sizeof expected, "\r\n#XRECV: 0,%zu\r\n", sizeof nasty);
        memcpy(expected + n, nasty, sizeof nasty);
        assert_int_equal(p->out_len, n + sizeof nasty);
        assert_memory_equal(p->out, expected, n + sizeof nasty);

        /* Over the URC limit: refused, the port splits. */
        memset(big, 'x', sizeof big);
        assert_int_equal(nrf91_core_sock_data(&p->core, 0, big, sizeof big), -NRF91_EMSGSIZE);
        /* The peer closes. */
        check(p, "", "");
        nrf91_core_sock_closed(&p->core, 0, 0);
        assert_output(p, "\r\n#XCLOSE: 0,0\r\n");
        check(p, "AT#XCLOSE=0\r\n", "\r\n+CME ERROR: 9\r\n");
        free(p);
}

static void test_xdownload(void **state) {
        struct fake_port *p = new_port();
        static const char expected_hex[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        char expected[512];
        size_t n;
        int id;

        (void) state;
        run(p, "AT#XDOWNLOAD=\"https://example.com/fw.bin\",42\r\n");
        id = p->last_download_id;
        snprintf(expected, sizeof expected, "\r\n#XDOWNLOAD: %d,0\r\n" OK, id);
        assert_output(p, expected);
        assert_string_equal(p->last_url, "https://example.com/fw.bin");
        assert_int_equal(p->last_offset, 0);

        fake_port_clear(p);
        nrf91_core_download_length(&p->core, id, 3);
        assert_int_equal(nrf91_core_download_data(&p->core, id, (const uint8_t *) "a", 1), 0);
        assert_int_equal(nrf91_core_download_data(&p->core, id, (const uint8_t *) "bc", 2), 0);
        nrf91_core_download_done(&p->core, id, 0);
        snprintf(expected, sizeof expected,
                 "\r\n#XDOWNLOAD: %d,1,1\r\na\r\n#XDOWNLOAD: %d,1,2\r\nbc"
                 "\r\n#XDOWNLOAD: %d,2,3,\"%s\"\r\n",
                 id, id, id, expected_hex);
        assert_output(p, expected);

        /* A chunk larger than 2048 bytes is split, with raw CR LF/NUL bytes intact. */
        run(p, "AT#XDOWNLOAD=\"https://example.com/x\",42,100\r\n");
        id = p->last_download_id;
        assert_int_equal(p->last_offset, 100);
        {
                uint8_t *data = malloc(5000);
                for (size_t i = 0; i < 5000; i++)
                        data[i] = nasty[i % sizeof nasty];
                fake_port_clear(p);
                assert_int_equal(nrf91_core_download_data(&p->core, id, data, 5000), 0);
                n = (size_t) snprintf(expected, sizeof expected, "\r\n#XDOWNLOAD: %d,1,2048\r\n", id);
                assert_memory_equal(p->out, expected, n);
                assert_memory_equal(p->out + n, data, 2048);
                assert_int_equal(p->out_len, 2 * n + (n - 1) + 5000);
                free(data);
        }
        /* Failure: negative errno; the id is gone afterwards. */
        fake_port_clear(p);
        nrf91_core_download_done(&p->core, id, -NRF91_EACCES);
        snprintf(expected, sizeof expected, "\r\n#XDOWNLOAD: %d,3,-13\r\n", id);
        assert_output(p, expected);
        snprintf(expected, sizeof expected, "AT#XDOWNLOAD=0,%d\r\n", id);
        check(p, expected, "\r\n+CME ERROR: 2\r\n");

        /* Cancel. */
        run(p, "AT#XDOWNLOAD=\"https://example.com/y\",42\r\n");
        id = p->last_download_id;
        snprintf(expected, sizeof expected, "AT#XDOWNLOAD=0,%d\r\n", id);
        check(p, expected, OK);
        assert_int_equal(p->last_cancel_id, id);
        /* Two at a time. */
        run(p, "AT#XDOWNLOAD=\"https://a/1\",1\r\n");
        run(p, "AT#XDOWNLOAD=\"https://a/2\",1\r\n");
        check(p, "AT#XDOWNLOAD=\"https://a/3\",1\r\n", "\r\n+CME ERROR: 16\r\n");
        /* The port refuses (e.g. no network). */
        fake_port_start(p);
        p->download_result = -NRF91_ENETDOWN;
        check(p, "AT#XDOWNLOAD=\"https://a/1\",1\r\n", "\r\n+CME ERROR: 100\r\n");
        free(p);
}

/* ---- commands and their argument errors ------------------------------ */

static void test_identity(void **state) {
        struct fake_port *p = new_port();

        (void) state;
        check(p, "AT#XUUID\r\n", "\r\n#XUUID: 50503642-3239-4f86-80c4-06122e299623\r\n" OK);
        check(p, "AT#XSMVER\r\n", "\r\n#XSMVER: \"1.0.0\",\"test-sdk\"\r\n" OK);
        check(p, "AT#XUUID=?\r\n", OK);
        check(p, "AT#XSSOCKET=?\r\n", "\r\n#XSSOCKET: (1,2),(1),(0),<sec_tag>,<peer_verify>\r\n" OK);
        free(p);
}

static void test_argument_errors(void **state) {
        static const struct {
                const char *in, *out;
        } t[] = {
                /* forms a command does not have */
                { "AT#XUUID=1", ERR },
                { "AT#XUUID?", ERR },
                { "AT#XSMVER=\"x\"", ERR },
                { "AT#XRESET=1", ERR },
                { "AT#XMODEMRESET=0", ERR },
                { "AT#XSSOCKET", ERR },
                { "AT#XSSOCKET?", ERR },
                { "AT#XSEND", ERR },
                { "AT#XCLOSE", ERR },
                { "AT#XFOTA?", ERR },
                /* #XSSOCKET=<family 1|2>,<type 1>,<role 0>,<sec_tag>[,<peer_verify 0..2>] */
                { "AT#XSSOCKET=1,1,0", ERR },
                { "AT#XSSOCKET=1,1,0,1,2,3", ERR },
                { "AT#XSSOCKET=3,1,0,1", ERR },
                { "AT#XSSOCKET=1,2,0,1", ERR },
                { "AT#XSSOCKET=1,1,1,1", ERR },
                { "AT#XSSOCKET=1,1,0,-1", ERR },
                { "AT#XSSOCKET=1,1,0,2147483648", ERR },
                { "AT#XSSOCKET=1,1,0,\"1\"", ERR },
                { "AT#XSSOCKET=1,1,0,1,3", ERR },
                { "AT#XSSOCKET=1,1,0,1,-1", ERR },
                { "AT#XSSOCKET=1,1,0,1x", ERR },
                { "AT#XSSOCKET=1,1,0,99999999999999999999", ERR },
                { "AT#XSSOCKET=1,1,,1", ERR },
                /* #XSSOCKETOPT=<handle>,1,2,"<hostname>" */
                { "AT#XSSOCKETOPT=0,1,2", ERR },
                { "AT#XSSOCKETOPT=0,0,2,\"h\"", ERR },
                { "AT#XSSOCKETOPT=0,1,5,\"h\"", ERR },
                { "AT#XSSOCKETOPT=0,1,2,h", ERR },
                { "AT#XSSOCKETOPT=8,1,2,\"h\"", ERR },
                { "AT#XSSOCKETOPT=1,1,2,\"h\"", "\r\n+CME ERROR: 9\r\n" },
                /* #XCONNECT=<handle>,"<host>",<port> */
                { "AT#XCONNECT=0,\"h\"", ERR },
                { "AT#XCONNECT=0,\"\",443", ERR },
                { "AT#XCONNECT=0,h,443", ERR },
                { "AT#XCONNECT=0,\"h\",0", ERR },
                { "AT#XCONNECT=0,\"h\",65536", ERR },
                { "AT#XCONNECT=-1,\"h\",443", ERR },
                { "AT#XCONNECT=1,\"h\",443", "\r\n+CME ERROR: 9\r\n" },
                /* #XSEND=<handle>,<len 1..4096> */
                { "AT#XSEND=0", ERR },
                { "AT#XSEND=0,0", ERR },
                { "AT#XSEND=0,4097", ERR },
                { "AT#XSEND=0,\"abc\"", ERR },
                { "AT#XSEND=9,1", ERR },
                { "AT#XSEND=0,1", "\r\n+CME ERROR: 107\r\n" }, /* not connected */
                { "AT#XSEND=1,1", "\r\n+CME ERROR: 9\r\n" },
                /* #XRECVCFG=<handle>,<0|1> */
                { "AT#XRECVCFG=0", ERR },
                { "AT#XRECVCFG=0,2", ERR },
                { "AT#XRECVCFG=1,1", "\r\n+CME ERROR: 9\r\n" },
                /* #XCLOSE=<handle> */
                { "AT#XCLOSE=", ERR },
                { "AT#XCLOSE=0,0", ERR },
                { "AT#XCLOSE=8", ERR },
                { "AT#XCLOSE=\"0\"", ERR },
                { "AT#XCLOSE=3", "\r\n+CME ERROR: 9\r\n" },
                /* #XDOWNLOAD="<https url>",<sec_tag>[,<offset>] | 0,<id> */
                { "AT#XDOWNLOAD=\"https://h/f\"", ERR },
                { "AT#XDOWNLOAD=\"http://h/f\",1", ERR },
                { "AT#XDOWNLOAD=\"https://\",1", ERR },
                { "AT#XDOWNLOAD=\"ftp://h/f\",1", ERR },
                { "AT#XDOWNLOAD=\"https://h/f\",-1", ERR },
                { "AT#XDOWNLOAD=\"https://h/f\",1,-1", ERR },
                { "AT#XDOWNLOAD=\"https://h/f\",1,4294967296", ERR },
                { "AT#XDOWNLOAD=\"https://h/f\",1,0,0", ERR },
                { "AT#XDOWNLOAD=1,5", ERR },
                { "AT#XDOWNLOAD=0", ERR },
                { "AT#XDOWNLOAD=0,0", ERR },
                { "AT#XDOWNLOAD=0,\"5\"", ERR },
                { "AT#XDOWNLOAD=0,5", "\r\n+CME ERROR: 2\r\n" },
                /* #XFOTA=<op 1..3>,"<https url>",<sec_tag> | 0 */
                { "AT#XFOTA=4,\"https://h/f\",1", ERR },
                { "AT#XFOTA=1,\"https://h/f\"", ERR },
                { "AT#XFOTA=1,\"http://h/f\",1", ERR },
                { "AT#XFOTA=1,https://h/f,1", ERR },
                { "AT#XFOTA=1,\"https://h/f\",\"1\"", ERR },
                { "AT#XFOTA=0,\"https://h/f\",1", ERR },
                { "AT#XFOTA=0", "\r\n+CME ERROR: 2\r\n" },
                /* | 9 (confirm) */
                { "AT#XFOTA=5", ERR },
                { "AT#XFOTA=8,\"https://h/f\",1", ERR },
                { "AT#XFOTA=10", ERR },
                { "AT#XFOTA=9,\"https://h/f\",1", ERR },
                { "AT#XFOTA=9,1", ERR },
                { "AT#XFOTA=9", "\r\n+CME ERROR: 2\r\n" },
                /* op 3 without external flash */
                { "AT#XFOTA=3,\"https://h/f\",1", "\r\n+CME ERROR: 95\r\n" },
                { "AT#XFOTA=3,\"http://h/f\",1", ERR },
                /* #XFOTAINFO */
                { "AT#XFOTAINFO=1", ERR },
                { "AT#XFOTAINFO?", ERR },
                { "AT#XFOTAINFO=?", OK },
                /* parser edge cases */
                { "AT#XCLOSE=1,,,,,,,,", ERR },
                { "AT#XCLOSE= 5 ", "\r\n+CME ERROR: 9\r\n" },
                { "AT#XUUID=?x", ERR },
        };
        struct fake_port *p = new_port();

        (void) state;
        check(p, "AT#XSSOCKET=1,1,0,16842753\r\n", "\r\n#XSSOCKET: 0,1,258\r\n" OK);
        p->modem_calls = 0;
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
                char in[256];
                snprintf(in, sizeof in, "%s\r\n", t[i].in);
                fake_port_clear(p);
                fake_port_input_str(p, in);
                if (p->out_len != strlen(t[i].out) || memcmp(p->out, t[i].out, p->out_len) != 0)
                        fail_msg("%s: got \"%s\"", t[i].in, fake_port_output(p));
                assert_true(nrf91_core_wants_input(&p->core));
        }
        assert_int_equal(p->modem_calls, 0);
        free(p);
}

static void test_socket_limits(void **state) {
        struct fake_port *p = new_port();
        char expected[64];

        (void) state;
        for (int h = 0; h < NRF91_MAX_SOCKETS; h++) {
                snprintf(expected, sizeof expected, "\r\n#XSSOCKET: %d,1,258\r\n" OK, h);
                check(p, "AT#XSSOCKET=2,1,0,1,0\r\n", expected);
        }
        check(p, "AT#XSSOCKET=1,1,0,1\r\n", "\r\n+CME ERROR: 24\r\n");
        check(p, "AT#XCLOSE=3\r\n", "\r\n#XCLOSE: 3,0\r\n" OK);
        assert_false(p->sock_open[3]);
        check(p, "AT#XSSOCKET=1,1,0,1\r\n", "\r\n#XSSOCKET: 3,1,258\r\n" OK);
        check(p, "AT#XSSOCKETOPT=3,1,2,\"example.com\"\r\n", OK);
        assert_string_equal(p->hostname[3], "example.com");
        check(p, "AT#XSSOCKETOPT=3,1,2,\"\"\r\n", OK);
        assert_string_equal(p->hostname[3], "");
        p->connect_result = -NRF91_ECONNREFUSED;
        check(p, "AT#XCONNECT=3,\"h\",1\r\n", "\r\n+CME ERROR: 111\r\n");
        p->connect_result = 0;
        check(p, "AT#XCONNECT=3,\"h\",1\r\n", "\r\n#XCONNECT: 3,1\r\n" OK);
        check(p, "AT#XCONNECT=3,\"h\",1\r\n", "\r\n+CME ERROR: 106\r\n");
        check(p, "AT#XSSOCKETOPT=3,1,2,\"x\"\r\n", "\r\n+CME ERROR: 106\r\n");
        /* A modem reset drops every socket with a URC after the response. */
        check(p, "AT#XMODEMRESET\r\n",
              "\r\n#XMODEMRESET: 0\r\n" OK "\r\n#XCLOSE: 0,-100\r\n\r\n#XCLOSE: 1,-100\r\n"
              "\r\n#XCLOSE: 2,-100\r\n\r\n#XCLOSE: 3,-100\r\n\r\n#XCLOSE: 4,-100\r\n"
              "\r\n#XCLOSE: 5,-100\r\n\r\n#XCLOSE: 6,-100\r\n\r\n#XCLOSE: 7,-100\r\n");
        for (int h = 0; h < NRF91_MAX_SOCKETS; h++)
                assert_false(p->sock_open[h]);
        free(p);
}

static void test_reset(void **state) {
        struct fake_port *p = new_port();

        (void) state;
        check(p, "AT#XSSOCKET=1,1,0,1\r\n", "\r\n#XSSOCKET: 0,1,258\r\n" OK);
        /* OK first, then Ready; what follows in the same read is taken by the new boot. */
        check(p, "AT#XRESET\r\nAT#XCLOSE=0\r\n", OK "\r\nReady\r\n\r\n+CME ERROR: 9\r\n");
        assert_int_equal(p->resets, 1);
        /* A partial command does not survive a restart. */
        check(p, "AT+CG", "");
        nrf91_core_boot(&p->core);
        check(p, "MR\r\n", ERR);
        free(p);
}

/* ---- FOTA ------------------------------------------------------------ */

static void make_image(uint8_t *img, size_t len, enum nrf91_image_type type) {
        for (size_t i = 0; i < len; i++)
                img[i] = (uint8_t) (i * 7);
        switch (type) {
        case NRF91_IMAGE_MCUBOOT:
                memcpy(img, "\x3d\xb8\xf3\x96", 4);
                break;
        case NRF91_IMAGE_MODEM_DELTA:
                memcpy(img + 4, "\x6d\x65\x44\x75", 4);
                img[0] = 0;
                break;
        case NRF91_IMAGE_MODEM_FULL:
                memcpy(img, "\xd2\x84", 2);
                break;
        case NRF91_IMAGE_NONE:
                img[0] = 0, img[4] = 0;
                break;
        }
}

static void test_image_detect(void **state) {
        uint8_t img[64];

        (void) state;
        make_image(img, sizeof img, NRF91_IMAGE_MCUBOOT);
        assert_int_equal(nrf91_image_type_detect(img, 32), NRF91_IMAGE_MCUBOOT);
        assert_int_equal(nrf91_image_type_detect(img, 31), NRF91_IMAGE_NONE);
        make_image(img, sizeof img, NRF91_IMAGE_MODEM_DELTA);
        assert_int_equal(nrf91_image_type_detect(img, 64), NRF91_IMAGE_MODEM_DELTA);
        make_image(img, sizeof img, NRF91_IMAGE_MODEM_FULL);
        assert_int_equal(nrf91_image_type_detect(img, 32), NRF91_IMAGE_MODEM_FULL);
        make_image(img, sizeof img, NRF91_IMAGE_NONE);
        assert_int_equal(nrf91_image_type_detect(img, 64), NRF91_IMAGE_NONE);
}

static void test_fota_app(void **state) {
        struct fake_port *p = new_port();
        uint8_t img[1000];

        (void) state;
        make_image(img, sizeof img, NRF91_IMAGE_MCUBOOT);
        check(p, "AT#XFOTA=1,\"https://example.com/app.bin\",42\r\n", OK "\r\n#XFOTA: 1,0,0\r\n");
        assert_int_equal(p->last_download_id, NRF91_FOTA_DOWNLOAD_ID);
        check(p, "AT#XFOTA=1,\"https://example.com/app.bin\",42\r\n", "\r\n+CME ERROR: 16\r\n");
        fake_port_clear(p);
        nrf91_core_download_length(&p->core, 0, sizeof img);
        /* The type is known only after 32 bytes, fed in small pieces here. */
        nrf91_core_download_data(&p->core, 0, img, 10);
        assert_int_equal(p->fota_type, NRF91_IMAGE_NONE);
        nrf91_core_download_data(&p->core, 0, img + 10, 490);
        assert_int_equal(p->fota_type, NRF91_IMAGE_MCUBOOT);
        nrf91_core_download_data(&p->core, 0, img + 500, 500);
        nrf91_core_download_done(&p->core, 0, 0);
        assert_output(p, "\r\n#XFOTA: 1,0,1\r\n\r\n#XFOTA: 1,0,50\r\n\r\n#XFOTA: 1,0,100\r\n"
                         "\r\n#XFOTA: 2,0\r\n\r\n#XFOTA: 3,0\r\n\r\n#XFOTA: 4,0\r\n");
        assert_int_equal(p->fota_len, sizeof img);
        assert_memory_equal(p->fota_image, img, sizeof img);
        assert_true(p->fota_finished);
        /* A modem reset does not apply an application image ... */
        check(p, "AT#XMODEMRESET\r\n", "\r\n#XMODEMRESET: 0\r\n" OK);
        /* ... a reset does, and says so after Ready. */
        check(p, "AT#XRESET\r\n", OK "\r\nReady\r\n\r\n#XFOTA: 5,0\r\n");
        free(p);
}

static void test_fota_modem_and_errors(void **state) {
        struct fake_port *p = new_port();
        uint8_t img[100];

        (void) state;
        /* A modem delta image behind op 1: mismatch, download stopped. */
        make_image(img, sizeof img, NRF91_IMAGE_MODEM_DELTA);
        check(p, "AT#XFOTA=1,\"https://example.com/x.bin\",42\r\n", OK "\r\n#XFOTA: 1,0,0\r\n");
        fake_port_clear(p);
        nrf91_core_download_data(&p->core, 0, img, sizeof img);
        assert_output(p, "\r\n#XFOTA: 1,1,3\r\n");
        assert_int_equal(p->last_cancel_id, 0);
        assert_int_equal(p->cancels, 1);
        /* Unknown bytes: rejected. */
        make_image(img, sizeof img, NRF91_IMAGE_NONE);
        check(p, "AT#XFOTA=2,\"https://example.com/x.bin\",42\r\n", OK "\r\n#XFOTA: 1,0,0\r\n");
        fake_port_clear(p);
        nrf91_core_download_data(&p->core, 0, img, sizeof img);
        assert_output(p, "\r\n#XFOTA: 1,1,2\r\n");
        /* Too short to be any image. */
        check(p, "AT#XFOTA=2,\"https://example.com/x.bin\",42\r\n", OK "\r\n#XFOTA: 1,0,0\r\n");
        fake_port_clear(p);
        nrf91_core_download_data(&p->core, 0, img, 10);
        nrf91_core_download_done(&p->core, 0, 0);
        assert_output(p, "\r\n#XFOTA: 1,1,2\r\n");
        /* Download failure (e.g. TLS verification). */
        check(p, "AT#XFOTA=2,\"https://example.com/x.bin\",42\r\n", OK "\r\n#XFOTA: 1,0,0\r\n");
        fake_port_clear(p);
        nrf91_core_download_done(&p->core, 0, -NRF91_EACCES);
        assert_output(p, "\r\n#XFOTA: 1,1,1,-13\r\n");
        /* Cancel (a full modem image needs external flash). */
        check(p, "AT#XFOTA=3,\"https://example.com/x.bin\",42\r\n", "\r\n+CME ERROR: 95\r\n");
        p->fota_ops |= NRF91_FOTA_OP_MODEM_FULL;
        check(p, "AT#XFOTAINFO\r\n", "\r\n#XFOTAINFO: 14,0,0,0,0,-1,0\r\n" OK);
        check(p, "AT#XFOTA=3,\"https://example.com/x.bin\",42\r\n", OK "\r\n#XFOTA: 1,0,0\r\n");
        check(p, "AT#XFOTA=0\r\n", OK "\r\n#XFOTA: 1,2,0\r\n");
        /* A modem delta, applied by #XMODEMRESET (unknown length: no percentages). */
        make_image(img, sizeof img, NRF91_IMAGE_MODEM_DELTA);
        check(p, "AT#XFOTA=2,\"https://example.com/x.bin\",42\r\n", OK "\r\n#XFOTA: 1,0,0\r\n");
        fake_port_clear(p);
        nrf91_core_download_data(&p->core, 0, img, sizeof img);
        nrf91_core_download_done(&p->core, 0, 0);
        assert_output(p, "\r\n#XFOTA: 1,0,100\r\n\r\n#XFOTA: 2,0\r\n\r\n#XFOTA: 3,0\r\n\r\n#XFOTA: 4,0\r\n");
        check(p, "AT#XMODEMRESET\r\n", "\r\n#XFOTA: 5,0\r\n\r\n#XMODEMRESET: 0\r\n" OK);
        free(p);
}

static void feed_image(struct fake_port *p, const uint8_t *img, size_t from, size_t to) {
        nrf91_core_download_data(&p->core, NRF91_FOTA_DOWNLOAD_ID, img + from, to - from);
}

/*
 * #XFOTAINFO in every state, the resume of a download a reset interrupted
 * (from the stored offset), the test image and its confirmation.
 */
static void test_fota_info_resume_confirm(void **state) {
        struct fake_port *p = new_port();
        static uint8_t img[1000];

        (void) state;
        make_image(img, sizeof img, NRF91_IMAGE_MCUBOOT);
        check(p, "AT#XFOTAINFO\r\n", "\r\n#XFOTAINFO: 6,0,0,0,0,-1,0\r\n" OK);
        check(p, "AT#XFOTA=1,\"https://example.com/app.bin\",42\r\n", OK "\r\n#XFOTA: 1,0,0\r\n");
        check(p, "AT#XFOTAINFO\r\n", "\r\n#XFOTAINFO: 6,1,1,0,0,-1,0\r\n" OK);
        nrf91_core_download_length(&p->core, NRF91_FOTA_DOWNLOAD_ID, sizeof img);
        feed_image(p, img, 0, 400);
        assert_int_equal(p->fota_total, sizeof img);
        check(p, "AT#XFOTAINFO\r\n", "\r\n#XFOTAINFO: 6,1,1,400,1000,-1,0\r\n" OK);

        /* A reset keeps the partial image: state 2. */
        check(p, "AT#XRESET\r\n", OK "\r\nReady\r\n");
        check(p, "AT#XFOTAINFO\r\n", "\r\n#XFOTAINFO: 6,2,1,400,1000,-1,0\r\n" OK);
        /* Another op does not resume (and is no download of an application). */
        check(p, "AT#XFOTA=2,\"https://example.com/app.bin\",42\r\n", OK "\r\n#XFOTA: 1,0,0\r\n");
        assert_int_equal(p->last_offset, 0);
        assert_true(p->fota_aborted);
        check(p, "AT#XFOTA=0\r\n", OK "\r\n#XFOTA: 1,2,0\r\n");
        check(p, "AT#XFOTAINFO\r\n", "\r\n#XFOTAINFO: 6,0,0,0,0,-1,0\r\n" OK);

        /* Again, interrupted at 400, resumed with the same op and URL. */
        check(p, "AT#XFOTA=1,\"https://example.com/app.bin\",42\r\n", OK "\r\n#XFOTA: 1,0,0\r\n");
        nrf91_core_download_length(&p->core, NRF91_FOTA_DOWNLOAD_ID, sizeof img);
        feed_image(p, img, 0, 400);
        check(p, "AT#XRESET\r\n", OK "\r\nReady\r\n");
        check(p, "AT#XFOTA=1,\"https://example.com/app.bin\",42\r\n", OK "\r\n#XFOTA: 1,0,40\r\n");
        assert_int_equal(p->last_offset, 400);
        check(p, "AT#XFOTAINFO\r\n", "\r\n#XFOTAINFO: 6,1,1,400,1000,-1,0\r\n" OK);
        /* The server tells what is left after the offset. */
        nrf91_core_download_length(&p->core, NRF91_FOTA_DOWNLOAD_ID, sizeof img - 400);
        run(p, "");
        feed_image(p, img, 400, 500);
        feed_image(p, img, 500, sizeof img);
        nrf91_core_download_done(&p->core, NRF91_FOTA_DOWNLOAD_ID, 0);
        assert_output(p, "\r\n#XFOTA: 1,0,50\r\n\r\n#XFOTA: 1,0,100\r\n"
                         "\r\n#XFOTA: 2,0\r\n\r\n#XFOTA: 3,0\r\n\r\n#XFOTA: 4,0\r\n");
        assert_int_equal(p->fota_len, sizeof img);
        assert_memory_equal(p->fota_image, img, sizeof img);
        check(p, "AT#XFOTAINFO\r\n", "\r\n#XFOTAINFO: 6,3,1,1000,1000,-1,0\r\n" OK);

        /* Applied: a test image, no new download until it is confirmed. */
        check(p, "AT#XRESET\r\n", OK "\r\nReady\r\n\r\n#XFOTA: 5,0\r\n");
        check(p, "AT#XFOTAINFO\r\n", "\r\n#XFOTAINFO: 6,4,1,1000,1000,0,0\r\n" OK);
        check(p, "AT#XFOTA=1,\"https://example.com/app.bin\",42\r\n", "\r\n+CME ERROR: 16\r\n");
        check(p, "AT#XFOTA=2,\"https://example.com/app.bin\",42\r\n", "\r\n+CME ERROR: 16\r\n");
        check(p, "AT#XFOTA=9\r\n", OK);
        check(p, "AT#XFOTA=9\r\n", "\r\n+CME ERROR: 2\r\n");
        check(p, "AT#XFOTAINFO\r\n", "\r\n#XFOTAINFO: 6,0,0,0,0,0,0\r\n" OK);
        /* Confirmed: a reset keeps it. */
        check(p, "AT#XRESET\r\n", OK "\r\nReady\r\n");
        check(p, "AT#XFOTAINFO\r\n", "\r\n#XFOTAINFO: 6,0,0,0,0,0,0\r\n" OK);
        free(p);
}

/* A test image not confirmed before the next reset is reverted: 5,3. */
static void test_fota_revert(void **state) {
        struct fake_port *p = new_port();
        uint8_t img[100];

        (void) state;
        make_image(img, sizeof img, NRF91_IMAGE_MCUBOOT);
        check(p, "AT#XFOTA=1,\"https://example.com/app.bin\",42\r\n", OK "\r\n#XFOTA: 1,0,0\r\n");
        feed_image(p, img, 0, sizeof img);
        nrf91_core_download_done(&p->core, NRF91_FOTA_DOWNLOAD_ID, 0);
        check(p, "AT#XRESET\r\n", OK "\r\nReady\r\n\r\n#XFOTA: 5,0\r\n");
        /* A modem reset is no reset of the application. */
        check(p, "AT#XMODEMRESET\r\n", "\r\n#XMODEMRESET: 0\r\n" OK);
        check(p, "AT#XRESET\r\n", OK "\r\nReady\r\n\r\n#XFOTA: 5,3\r\n");
        check(p, "AT#XFOTAINFO\r\n", "\r\n#XFOTAINFO: 6,0,0,0,0,3,0\r\n" OK);
        check(p, "AT#XFOTA=9\r\n", "\r\n+CME ERROR: 2\r\n");
        /* A download that starts from zero forgets the result. */
        check(p, "AT#XFOTA=1,\"https://example.com/app.bin\",42\r\n", OK "\r\n#XFOTA: 1,0,0\r\n");
        feed_image(p, img, 0, 50);
        check(p, "AT#XFOTAINFO\r\n", "\r\n#XFOTAINFO: 6,1,1,50,0,-1,0\r\n" OK);
        /* A failed store write carries its errno; a modem reset stops a download with -100. */
        p->fota_len = sizeof p->fota_image;
        run(p, "");
        feed_image(p, img, 50, 60);
        assert_output(p, "\r\n#XFOTA: 1,1,1,-27\r\n");
        check(p, "AT#XFOTA=1,\"https://example.com/app.bin\",42\r\n", OK "\r\n#XFOTA: 1,0,0\r\n");
        check(p, "AT#XMODEMRESET\r\n", "\r\n#XMODEMRESET: 0\r\n" OK "\r\n#XFOTA: 1,1,1,-100\r\n");
        free(p);
}

/* ---- pure parts ------------------------------------------------------ */

static void test_args_parser(void **state) {
        struct at_args a;
        struct at_cmd cmd;
        char buf[8];
        int64_t v;

        (void) state;
        assert_int_equal(at_args_parse("1,\"a,b\", -3 ,,\"\"", 16, 0, &a), 0);
        assert_int_equal(a.count, 5);
        assert_int_equal(a.v[0].type, AT_ARG_INT);
        assert_int_equal(a.v[0].num, 1);
        assert_int_equal(a.v[1].type, AT_ARG_STRING);
        assert_int_equal(a.v[1].len, 3);
        assert_memory_equal(a.v[1].str, "a,b", 3);
        assert_int_equal(a.v[2].num, -3);
        assert_int_equal(a.v[3].type, AT_ARG_EMPTY);
        assert_int_equal(a.v[4].type, AT_ARG_STRING);
        assert_int_equal(a.v[4].len, 0);
        assert_int_equal(at_param_int_opt(&a, 3, 0, 9, 7, &v), 0);
        assert_int_equal(v, 7);
        assert_int_equal(at_param_int_opt(&a, 9, 0, 9, 8, &v), 0);
        assert_int_equal(v, 8);
        assert_int_equal(at_param_int(&a, 2, 0, 9, &v), -NRF91_EINVAL);
        assert_int_equal(at_param_str(&a, 1, buf, 4), 0);
        assert_string_equal(buf, "a,b");
        assert_int_equal(at_param_str(&a, 1, buf, 3), -NRF91_EINVAL);
        assert_int_equal(at_param_str(&a, 0, buf, sizeof buf), -NRF91_EINVAL);

        assert_int_equal(at_args_parse("", 0, 0, &a), 0);
        assert_int_equal(a.count, 1);
        assert_int_equal(at_args_parse("1,2,3,4,5,6,7,8,9,10,11,12", 26, 0, &a), 0);
        assert_int_equal(a.count, 12);
        assert_int_equal(at_args_parse("1,2,3,4,5,6,7,8,9,10,11,12,13", 29, 0, &a), -NRF91_E2BIG);
        /* Without AT_ARGS_TOKENS unquoted text must be an integer (the core's own commands). */
        assert_int_equal(at_args_parse("1,abc", 5, 0, &a), -NRF91_EINVAL);
        assert_int_equal(at_args_parse("5x", 2, 0, &a), -NRF91_EINVAL);
        assert_int_equal(at_args_parse("\"abc", 4, 0, &a), -NRF91_EINVAL);
        assert_int_equal(at_args_parse("1 2", 3, 0, &a), -NRF91_EINVAL);
        assert_int_equal(at_args_parse("-", 1, 0, &a), -NRF91_EINVAL);
        assert_int_equal(at_args_parse("9223372036854775807", 19, 0, &a), 0);
        assert_int_equal(at_args_parse("9223372036854775808", 19, 0, &a), -NRF91_ERANGE);
        assert_int_equal(at_args_parse("\"a\"b", 4, 0, &a), -NRF91_EINVAL);
        /* NUL inside a string: counted, but not copied out as a C string. */
        assert_int_equal(at_args_parse("\"a\0b\"", 5, 0, &a), 0);
        assert_int_equal(at_param_str(&a, 0, buf, sizeof buf), -NRF91_EINVAL);

        assert_int_equal(at_cmd_parse("AT#XSEND=1,2", 12, &cmd), 0);
        assert_int_equal(cmd.type, AT_CMD_SET);
        assert_true(at_cmd_is(&cmd, "#xsend"));
        assert_int_equal(cmd.params_len, 3);
        assert_int_equal(at_cmd_parse("at+cfun?", 8, &cmd), 0);
        assert_int_equal(cmd.type, AT_CMD_READ);
        assert_int_equal(at_cmd_parse("AT+CFUN=?", 9, &cmd), 0);
        assert_int_equal(cmd.type, AT_CMD_TEST);
        assert_int_equal(at_cmd_parse("AT", 2, &cmd), 0);
        assert_int_equal(cmd.type, AT_CMD_EXEC);
        assert_int_equal(cmd.name_len, 0);
        assert_int_equal(at_cmd_parse("AT+CFUN?1", 9, &cmd), -NRF91_EINVAL);
        assert_int_equal(at_cmd_parse("BT", 2, &cmd), -NRF91_EINVAL);
}

static int parse_tokens(const char *s, struct at_cmd *cmd, struct at_args *a) {
        int r = at_cmd_parse(s, strlen(s), cmd);

        a->count = 0;
        if (r == 0 && cmd->type == AT_CMD_SET)
                r = at_args_parse(cmd->params, cmd->params_len, AT_ARGS_TOKENS, a);
        return r;
}

/* The dialect as the emulated modem reads it: unquoted tokens, more parameters, strings with CR/LF and commas. */
static void test_args_tokens(void **state) {
        struct at_cmd cmd;
        struct at_args a;
        const char *s;
        size_t len;
        int64_t v;

        (void) state;
        assert_int_equal(parse_tokens("at%cmng=1", &cmd, &a), 0);
        assert_true(at_cmd_is(&cmd, "%CMNG"));
        assert_int_equal(cmd.type, AT_CMD_SET);
        assert_int_equal(parse_tokens("ATE0", &cmd, &a), 0);
        assert_true(at_cmd_is(&cmd, "E0"));
        assert_int_equal(cmd.type, AT_CMD_EXEC);
        assert_int_equal(a.count, 0);
        assert_int_equal(parse_tokens("A", &cmd, &a), -NRF91_EINVAL);
        assert_int_equal(parse_tokens("", &cmd, &a), -NRF91_EINVAL);

        /* Text after a closing quote is an error; inside quotes CR, LF and commas are content. */
        assert_int_equal(parse_tokens("AT%CMNG=0,16842753,0,\"a,b\r\n\"\"\",", &cmd, &a), -NRF91_EINVAL);
        assert_int_equal(parse_tokens("AT%CMNG=0,16842753,0,\"a,b\r\nc\",\"pw\"", &cmd, &a), 0);
        assert_int_equal(a.count, 5);
        assert_int_equal(at_param_int(&a, 1, 0, 4294967295LL, &v), 0);
        assert_int_equal(v, 16842753);
        assert_int_equal(at_param_text(&a, 3, false, &s, &len), 0);
        assert_int_equal(len, 6);
        assert_memory_equal(s, "a,b\r\nc", 6);
        assert_int_equal(at_param_text(&a, 1, false, &s, &len), -NRF91_EINVAL);
        assert_int_equal(at_param_text(&a, 1, true, &s, &len), 0); /* an unquoted value as written */
        assert_memory_equal(s, "16842753", len);
        assert_int_equal(at_param_int(&a, 3, 0, 10, &v), -NRF91_EINVAL);
        assert_int_equal(at_param_int(&a, 7, 0, 10, &v), -NRF91_EINVAL);

        assert_int_equal(parse_tokens("AT%JWT=,,\"\",", &cmd, &a), 0);
        assert_int_equal(a.count, 4);
        assert_false(at_param_present(&a, 0));
        assert_true(at_param_present(&a, 2)); /* "" is a present, empty string */
        assert_int_equal(at_param_text(&a, 2, false, &s, &len), 0);
        assert_int_equal(len, 0);
        assert_false(at_param_present(&a, 3));
        assert_int_equal(at_param_text(&a, 3, true, &s, &len), -NRF91_EINVAL);

        assert_int_equal(parse_tokens("AT+X=", &cmd, &a), 0);
        assert_int_equal(a.count, 1);
        assert_int_equal(parse_tokens("AT+X=-5,5x,99999999999999999999, my id ,007", &cmd, &a), 0);
        assert_int_equal(at_param_int(&a, 0, -10, 10, &v), 0);
        assert_int_equal(v, -5);
        assert_int_equal(at_param_int(&a, 0, 0, 10, &v), -NRF91_EINVAL);
        assert_int_equal(a.v[1].type, AT_ARG_TOKEN);
        assert_int_equal(at_param_int(&a, 1, 0, 10, &v), -NRF91_EINVAL);
        assert_int_equal(a.v[2].type, AT_ARG_TOKEN); /* too large for an integer: a PSK, say */
        assert_int_equal(at_param_int(&a, 2, 0, INT64_MAX, &v), -NRF91_EINVAL);
        assert_int_equal(at_param_text(&a, 2, true, &s, &len), 0);
        assert_int_equal(len, 20);
        assert_int_equal(at_param_text(&a, 3, true, &s, &len), 0); /* spaces around a token are not part of it */
        assert_int_equal(len, 5);
        assert_memory_equal(s, "my id", 5);
        assert_int_equal(at_param_text(&a, 3, false, &s, &len), -NRF91_EINVAL);
        assert_int_equal(at_param_int(&a, 4, 0, 10, &v), 0);
        assert_int_equal(v, 7);
        assert_int_equal(at_param_text(&a, 4, true, &s, &len), 0); /* leading zeros kept */
        assert_memory_equal(s, "007", len);

        assert_int_equal(parse_tokens("AT+X=1,2,3,4,5,6,7,8,9,10,11,12", &cmd, &a), 0);
        assert_int_equal(parse_tokens("AT+X=1,2,3,4,5,6,7,8,9,10,11,12,13", &cmd, &a), -NRF91_E2BIG);
        assert_int_equal(parse_tokens("AT+X=a\"b", &cmd, &a), -NRF91_EINVAL);
        assert_int_equal(parse_tokens("AT+X=a\rb", &cmd, &a), -NRF91_EINVAL);
        assert_int_equal(parse_tokens("AT+X=\xc3\xa9", &cmd, &a), -NRF91_EINVAL);
        /* NUL inside quotes is data, outside it is an error. */
        assert_int_equal(at_args_parse("\"a\0b\"", 5, AT_ARGS_TOKENS, &a), 0);
        assert_int_equal(at_args_parse("a\0b", 3, AT_ARGS_TOKENS, &a), -NRF91_EINVAL);
        assert_int_equal(at_args_parse("1\0", 2, AT_ARGS_TOKENS, &a), -NRF91_EINVAL);
}

static void test_line_assembler(void **state) {
        struct at_line l;
        const char *in = "AT\"x\ry\"\r\n";
        enum at_line_result r = AT_LINE_NONE;

        (void) state;
        at_line_init(&l);
        for (const char *s = in; *s; s++) {
                r = at_line_feed(&l, (uint8_t) *s);
                if (r == AT_LINE_READY)
                        break;
        }
        assert_int_equal(r, AT_LINE_READY);
        assert_string_equal(l.buf, "AT\"x\ry\"");
        assert_true(l.quoted_newline);
        at_line_discard(&l);
        /* The LF of CR LF is swallowed, so no empty command follows. */
        assert_int_equal(at_line_feed(&l, '\n'), AT_LINE_NONE);
        assert_false(at_line_pending(&l));
}

static void test_sha256_vectors(void **state) {
        static const struct {
                const char *msg;
                const char *hex;
        } t[] = {
                { "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
                { "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
                { "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
        };
        uint8_t d[32];
        char hex[65];
        struct sha256_ctx ctx;

        (void) state;
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
                /* Fed in uneven pieces to cross block boundaries. */
                size_t n = strlen(t[i].msg);
                sha256_init(&ctx);
                for (size_t off = 0; off < n; off += 5)
                        sha256_update(&ctx, t[i].msg + off, n - off < 5 ? n - off : 5);
                sha256_final(&ctx, d);
                for (int j = 0; j < 32; j++)
                        sprintf(hex + 2 * j, "%02x", d[j]);
                assert_string_equal(hex, t[i].hex);
        }
        /* One million 'a'. */
        {
                char block[1000];
                memset(block, 'a', sizeof block);
                sha256_init(&ctx);
                for (int i = 0; i < 1000; i++)
                        sha256_update(&ctx, block, sizeof block);
                sha256_final(&ctx, d);
                for (int j = 0; j < 32; j++)
                        sprintf(hex + 2 * j, "%02x", d[j]);
                assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ready_banner),
                cmocka_unit_test(test_terminators),
                cmocka_unit_test(test_passthrough_unchanged),
                cmocka_unit_test(test_split_every_boundary),
                cmocka_unit_test(test_overlong_lines),
                cmocka_unit_test(test_stalled_quote_dropped),
                cmocka_unit_test(test_urc_not_inside_response),
                cmocka_unit_test(test_urcs_between_info_and_final),
                cmocka_unit_test(test_xsend_payload),
                cmocka_unit_test(test_xrecv_payload),
                cmocka_unit_test(test_xdownload),
                cmocka_unit_test(test_identity),
                cmocka_unit_test(test_argument_errors),
                cmocka_unit_test(test_socket_limits),
                cmocka_unit_test(test_reset),
                cmocka_unit_test(test_image_detect),
                cmocka_unit_test(test_fota_app),
                cmocka_unit_test(test_fota_modem_and_errors),
                cmocka_unit_test(test_fota_info_resume_confirm),
                cmocka_unit_test(test_fota_revert),
                cmocka_unit_test(test_args_parser),
                cmocka_unit_test(test_args_tokens),
                cmocka_unit_test(test_line_assembler),
                cmocka_unit_test(test_sha256_vectors),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
