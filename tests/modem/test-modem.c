/* SPDX-License-Identifier: MIT */
/*
 * The modem manager on a real pseudo-terminal, with the test playing the
 * firmware from a table of answers.  This checks the manager's own logic
 * (probe table, missing credentials, reboot, JWT sharing and caching, the
 * port vanishing and coming back); the end-to-end tests against nrf91-sim
 * live in tests/tools.
 */
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cose.h"
#include "log.h"
#include "modem.h"
#include "serial.h"
#include "util.h"

typedef struct Peer {
        int master;
        sd_event_source *source;
        char buf[8192];
        size_t len;
        char *commands[64];
        size_t n_commands;
        bool silent;             /* answer nothing */
        bool has_cert_and_key;
        char jwt[512];
        const char *fota_info;   /* the #XFOTAINFO line, NULL: ERROR (older firmware) */
        const char *cgmr;        /* NULL: mfw_nrf9160_1.3.5 */
} Peer;

typedef struct Fixture {
        char dir[64];
        char link[128];
        sd_event *event;
        Config *config;
        Modem *modem;
        Peer peer;
} Fixture;

static void peer_write(Peer *p, const char *s) {
        size_t n = strlen(s);
        while (n > 0) {
                ssize_t k = write(p->master, s, n);
                if (k < 0)
                        return;
                s += k;
                n -= (size_t) k;
        }
}

static void peer_answer(Peer *p, const char *cmd) {
        char out[1024];

        if (p->n_commands < 64)
                p->commands[p->n_commands++] = strdup(cmd);
        if (p->silent)
                return;
        if (streq(cmd, "AT") || streq(cmd, "ATE0") || streq(cmd, "AT+CMEE=1"))
                peer_write(p, "\r\nOK\r\n");
        else if (streq(cmd, "AT#XUUID"))
                peer_write(p, "\r\n#XUUID: 50503041-3633-4261-803d-1e2b8f70111a\r\nOK\r\n");
        else if (streq(cmd, "AT+CGSN=1"))
                peer_write(p, "\r\n+CGSN: \"352656100367872\"\r\nOK\r\n");
        else if (streq(cmd, "AT+CGMR")) {
                snprintf(out, sizeof out, "\r\n%s\r\n\r\n+CEREG: 2\r\nOK\r\n", p->cgmr ? p->cgmr : "mfw_nrf9160_1.3.5");
                peer_write(p, out);
        } else if (streq(cmd, "AT#XFOTAINFO") && p->fota_info) {
                snprintf(out, sizeof out, "\r\n%s\r\nOK\r\n", p->fota_info);
                peer_write(p, out);
        } else if (streq(cmd, "AT#XFOTA=2,\"https://files.example.com/d%20x.bin\",16842753"))
                /* URCs before and after the final result, a failure with its cause */
                peer_write(p, "\r\n#XFOTA: 1,0,0\r\nOK\r\n#XFOTA: 1,0,50\r\n#XFOTA: 1,1,1,-13\r\n");
        else if (streq(cmd, "AT#XFOTA=9"))
                peer_write(p, "\r\n+CME ERROR: 2\r\n");
        else if (streq(cmd, "AT#XMODEMRESET")) {
                p->cgmr = "mfw_nrf9160_1.3.6";
                peer_write(p, "\r\n#XFOTA: 5,0\r\n#XMODEMRESET: 0\r\nOK\r\n");
        }
        else if (streq(cmd, "AT#XSMVER"))
                peer_write(p, "\r\n#XSMVER: \"1.2.3\",\"2.6.0\"\r\nOK\r\n");
        else if (strncmp(cmd, "AT%CMNG=1,", 10) == 0 && !streq(cmd, "AT%CMNG=1,16842753"))
                peer_write(p, "\r\nOK\r\n"); /* an empty tag */
        else if (streq(cmd, "AT%CMNG=1,16842753")) {
                peer_write(p, "\r\n%CMNG: 16842753,0,\"2C43952EE9E000FF2ACC4E2ED0897C0A72AD5FA72C3D934E81741CBD54F05BD1\"\r\n");
                if (p->has_cert_and_key)
                        peer_write(p, "%CMNG: 16842753,1,\"C5B83285533307747ECB170B96C5B47F809D24CFE2BE553B4ED9B5D12551C08E\"\r\n"
                                      "%CMNG: 16842753,2,\"372A8D78BFF2AB42DA1AA559A1AE2B7AA6A4694CDA1427D18609311D525F370C\"\r\n");
                peer_write(p, "OK\r\n");
        } else if (strncmp(cmd, "AT%JWT=0,3600,\"50503041-3633-4261-803d-1e2b8f70111a\",\"\",16842753,2", 200) == 0) {
                snprintf(out, sizeof out, "\r\n%%JWT: \"%s\"\r\nOK\r\n", p->jwt);
                peer_write(p, out);
        } else
                peer_write(p, "\r\nERROR\r\n");
}

static int on_peer_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Peer *p = userdata;
        ssize_t n;
        (void) s;
        (void) revents;

        n = read(fd, p->buf + p->len, sizeof p->buf - p->len - 1);
        if (n <= 0)
                return 0;
        p->len += (size_t) n;
        for (;;) {
                char *end = memchr(p->buf, '\r', p->len);
                size_t k;
                if (!end)
                        break;
                *end = 0;
                k = (size_t) (end - p->buf) + 1;
                if (k < p->len && p->buf[k] == '\n')
                        k++;
                if (end != p->buf)
                        peer_answer(p, p->buf);
                memmove(p->buf, p->buf + k, p->len - k);
                p->len -= k;
        }
        return 0;
}

static void peer_open(Fixture *f) {
        int master, slave;
        char name[64];

        assert_int_equal(openpty(&master, &slave, name, NULL, NULL), 0);
        /* Keep the slave open until the modem has it, or a closed slave gives the master HUPs. */
        (void) fcntl(master, F_SETFL, O_NONBLOCK);
        (void) unlink(f->link);
        assert_int_equal(symlink(name, f->link), 0);
        f->peer.master = master;
        f->peer.len = 0;
        assert_int_equal(sd_event_add_io(f->event, &f->peer.source, master, EPOLLIN, on_peer_io, &f->peer), 0);
        close(slave);
}

static void peer_close(Fixture *f) {
        f->peer.source = sd_event_source_disable_unref(f->peer.source);
        close(f->peer.master);
        f->peer.master = -1;
        (void) unlink(f->link);
}

static void peer_clear_commands(Peer *p) {
        for (size_t i = 0; i < p->n_commands; i++)
                free(p->commands[i]);
        p->n_commands = 0;
}

static size_t peer_count(Peer *p, const char *prefix) {
        size_t n = 0;
        for (size_t i = 0; i < p->n_commands; i++)
                if (strncmp(p->commands[i], prefix, strlen(prefix)) == 0)
                        n++;
        return n;
}

static void make_jwt(char *out, size_t len, long exp_in) {
        /* {"alg":"ES256"} . {"exp":<now+exp_in>} . sig; base64url by hand for ASCII JSON. */
        static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        char claims[64], enc[128];
        size_t n, o = 0;

        snprintf(claims, sizeof claims, "{\"exp\":%lld}", (long long) time(NULL) + exp_in);
        n = strlen(claims);
        for (size_t i = 0; i < n; i += 3) {
                uint32_t v = (uint32_t) (unsigned char) claims[i] << 16;
                if (i + 1 < n)
                        v |= (uint32_t) (unsigned char) claims[i + 1] << 8;
                if (i + 2 < n)
                        v |= (unsigned char) claims[i + 2];
                enc[o++] = tbl[(v >> 18) & 63];
                enc[o++] = tbl[(v >> 12) & 63];
                if (i + 1 < n)
                        enc[o++] = tbl[(v >> 6) & 63];
                if (i + 2 < n)
                        enc[o++] = tbl[v & 63];
        }
        enc[o] = 0;
        snprintf(out, len, "eyJhbGciOiJFUzI1NiJ9.%s.AAAA", enc);
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof *f);

        assert_non_null(f);
        snprintf(f->dir, sizeof f->dir, "/tmp/test-modem-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->link, sizeof f->link, "%s/ttyNRF", f->dir);
        setenv("NRFCLOUD_GATEWAY_RUNTIME_DIR", f->dir, 1);
        assert_int_equal(sd_event_new(&f->event), 0);
        assert_int_equal(config_new(&f->config), 0);
        free(f->config->modem_port);
        f->config->modem_port = strdup(f->link);
        f->config->modem_command_timeout_sec = 2;
        make_jwt(f->peer.jwt, sizeof f->peer.jwt, 3600);
        peer_open(f);
        assert_int_equal(modem_new(f->event, f->config, &f->modem), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        char path[160];

        modem_free(f->modem);
        if (f->peer.master >= 0)
                peer_close(f);
        peer_clear_commands(&f->peer);
        config_free(f->config);
        sd_event_unref(f->event);
        snprintf(path, sizeof path, "%s/ttyNRF", f->dir);
        (void) unlink(path);
        (void) rmdir(f->dir);
        free(f);
        return 0;
}

/* Runs the loop until the modem reaches state s, at most timeout_ms. */
static bool run_until_state(Fixture *f, ModemState s, unsigned timeout_ms) {
        uint64_t end = now_usec(CLOCK_MONOTONIC) + (uint64_t) timeout_ms * 1000;
        while (modem_get_state(f->modem) != s) {
                if (now_usec(CLOCK_MONOTONIC) >= end)
                        return false;
                (void) sd_event_run(f->event, 50 * 1000);
        }
        return true;
}

static void run_for(Fixture *f, unsigned ms) {
        uint64_t end = now_usec(CLOCK_MONOTONIC) + (uint64_t) ms * 1000;
        while (now_usec(CLOCK_MONOTONIC) < end)
                (void) sd_event_run(f->event, 20 * 1000);
}

static void test_probe_reaches_ready_missing_credentials(void **state) {
        Fixture *f = *state;
        const ModemIdentity *id;

        assert_int_equal(modem_start(f->modem), 0);
        assert_true(run_until_state(f, MODEM_READY, 5000));
        id = modem_get_identity(f->modem);
        assert_string_equal(id->uuid, "50503041-3633-4261-803d-1e2b8f70111a");
        assert_string_equal(id->device_id, "50503041-3633-4261-803d-1e2b8f70111a");
        assert_string_equal(id->imei, "352656100367872");
        assert_string_equal(id->modem_firmware, "mfw_nrf9160_1.3.5");
        assert_string_equal(id->firmware_version, "1.2.3");
        assert_true(id->has_credential[CRED_ROOT_CA]);
        assert_false(id->has_credential[CRED_CLIENT_CERT]);
        assert_false(id->has_credential[CRED_CLIENT_KEY]);
        assert_false(modem_credentials_complete(f->modem));
        /* The link's synchronisation at open, then the probe table in order. */
        assert_true(f->peer.n_commands >= 10);
        assert_string_equal(f->peer.commands[0], "AT");
        assert_string_equal(f->peer.commands[1], "AT");
        assert_string_equal(f->peer.commands[2], "ATE0");
        assert_string_equal(f->peer.commands[3], "AT+CMEE=1");
        assert_string_equal(f->peer.commands[8], "AT#XFOTAINFO");
        assert_string_equal(f->peer.commands[9], "AT%CMNG=1,16842753");
        /* Firmware without #XFOTAINFO: no FOTA, and still ready. */
        assert_false(id->has_fota);
}

static void test_device_id_override(void **state) {
        Fixture *f = *state;

        modem_free(f->modem);
        f->config->device_id = strdup("my-gateway-1");
        f->peer.has_cert_and_key = true;
        assert_int_equal(modem_new(f->event, f->config, &f->modem), 0);
        assert_int_equal(modem_start(f->modem), 0);
        assert_true(run_until_state(f, MODEM_READY, 5000));
        assert_string_equal(modem_get_identity(f->modem)->device_id, "my-gateway-1");
        assert_true(modem_credentials_complete(f->modem));
        assert_string_equal(modem_get_identity(f->modem)->sha256[CRED_CLIENT_KEY],
                            "372A8D78BFF2AB42DA1AA559A1AE2B7AA6A4694CDA1427D18609311D525F370C");
}

static void test_ready_urc_is_a_reboot(void **state) {
        Fixture *f = *state;

        assert_int_equal(modem_start(f->modem), 0);
        assert_true(run_until_state(f, MODEM_READY, 5000));
        peer_clear_commands(&f->peer);
        peer_write(&f->peer, "\r\nReady\r\n");
        assert_true(run_until_state(f, MODEM_PROBING, 2000));
        assert_true(run_until_state(f, MODEM_READY, 5000));
        assert_true(peer_count(&f->peer, "AT#XUUID") == 1);
}

typedef struct FotaLog {
        ModemFotaEvent events[16];
        size_t n_events;
        unsigned calls;
        int error;
} FotaLog;

static void on_fota_event(Modem *m, const ModemFotaEvent *ev, void *userdata) {
        FotaLog *l = userdata;
        (void) m;
        if (l->n_events < ELEMENTSOF(l->events))
                l->events[l->n_events++] = *ev;
}

static void on_fota_done_cb(Modem *m, int error, void *userdata) {
        FotaLog *l = userdata;
        (void) m;
        l->calls++;
        l->error = error;
}

static void test_fota_parsers(void **state) {
        ModemFotaInfo i;
        ModemFotaEvent ev;
        (void) state;

        assert_int_equal(modem_fota_info_parse("#XFOTAINFO: 14,2,2,4096,200000,-1,0", &i), 0);
        assert_int_equal(i.ops, 14);
        assert_int_equal(i.state, MODEM_FOTA_STATE_INTERRUPTED);
        assert_int_equal(i.op, 2);
        assert_int_equal(i.received, 4096);
        assert_int_equal(i.total, 200000);
        assert_int_equal(i.result, MODEM_FOTA_RESULT_NONE);
        assert_int_equal(modem_fota_info_parse("#XFOTAINFO: 6,4,1,0,0,0,0,99", &i), 0); /* a later field is ignored */
        assert_int_equal(i.state, MODEM_FOTA_STATE_TESTING);
        assert_int_equal(modem_fota_info_parse("#XFOTAINFO: 6,5,1,0,0,0,0", &i), -EBADMSG);
        assert_int_equal(modem_fota_info_parse("#XFOTAINFO: 6,1", &i), -EBADMSG);
        assert_int_equal(modem_fota_info_parse("#XFOTA: 1,0,0", &i), -ENOMSG);

        assert_int_equal(modem_fota_event_parse("#XFOTA: 1,0,37", &ev), 0);
        assert_true(ev.stage == 1 && ev.status == 0 && ev.has_info && ev.info == 37 && !ev.has_cause);
        assert_int_equal(modem_fota_event_parse("#XFOTA: 1,1,1,-104", &ev), 0);
        assert_true(ev.info == 1 && ev.has_cause && ev.cause == -104);
        assert_int_equal(modem_fota_event_parse("#XFOTA: 5,1,71303172", &ev), 0);
        assert_true(ev.stage == 5 && ev.status == 1 && ev.info == 71303172);
        assert_int_equal(modem_fota_event_parse("#XFOTA: 5,3", &ev), 0);
        assert_false(ev.has_info);
        assert_int_equal(modem_fota_event_parse("#XFOTA: x", &ev), -EBADMSG);
        assert_int_equal(modem_fota_event_parse("#XFOTAINFO: 6,0,0,0,0,-1,0", &ev), -ENOMSG);
}

static void test_fota_commands(void **state) {
        static const ModemCallbacks cb = { .fota_event = on_fota_event };
        Fixture *f = *state;
        FotaLog l = {};
        const ModemIdentity *id;

        f->peer.fota_info = "#XFOTAINFO: 6,0,0,0,0,-1,0";
        modem_set_callbacks(f->modem, &cb, &l);
        /* Not before the modem is ready. */
        assert_int_equal(modem_fota_confirm(f->modem, on_fota_done_cb, &l), -ENOTCONN);
        assert_int_equal(modem_start(f->modem), 0);
        assert_true(run_until_state(f, MODEM_READY, 5000));
        id = modem_get_identity(f->modem);
        assert_true(id->has_fota);
        assert_int_equal(id->fota.ops, 6);
        assert_int_equal(id->fota.result, MODEM_FOTA_RESULT_NONE);

        /* Start: OK, and the URCs around it in order, the cause of the failure included. */
        assert_int_equal(modem_fota_start(f->modem, MODEM_FOTA_OP_MODEM_DELTA, "https://files.example.com/d\"x.bin",
                                          on_fota_done_cb, &l), -EINVAL);
        assert_int_equal(modem_fota_start(f->modem, MODEM_FOTA_OP_MODEM_DELTA, "http://files.example.com/x.bin",
                                          on_fota_done_cb, &l), -EINVAL);
        assert_int_equal(modem_fota_start(f->modem, MODEM_FOTA_OP_MODEM_DELTA, "https://files.example.com/d%20x.bin",
                                          on_fota_done_cb, &l), 0);
        assert_int_equal(modem_fota_confirm(f->modem, on_fota_done_cb, &l), -EBUSY);
        run_for(f, 300);
        assert_int_equal(l.calls, 1);
        assert_int_equal(l.error, 0);
        assert_int_equal(l.n_events, 3);
        assert_true(l.events[0].stage == 1 && l.events[0].info == 0);
        assert_true(l.events[1].stage == 1 && l.events[1].info == 50);
        assert_true(l.events[2].status == 1 && l.events[2].info == 1 && l.events[2].cause == -13);

        /* Confirm without a test image: the firmware's error. */
        assert_int_equal(modem_fota_confirm(f->modem, on_fota_done_cb, &l), 0);
        run_for(f, 200);
        assert_int_equal(l.calls, 2);
        assert_true(l.error < 0);

        /* A modem reset applies the image; no "Ready" follows, so the manager reads the versions again. */
        peer_clear_commands(&f->peer);
        f->peer.fota_info = "#XFOTAINFO: 6,0,0,0,0,0,0";
        assert_int_equal(modem_fota_apply(f->modem, MODEM_FOTA_OP_MODEM_DELTA, on_fota_done_cb, &l), 0);
        run_for(f, 200);
        assert_true(run_until_state(f, MODEM_READY, 5000));
        assert_int_equal(l.calls, 3);
        assert_int_equal(l.error, 0);
        assert_true(l.events[3].stage == 5 && l.events[3].status == 0);
        assert_int_equal(peer_count(&f->peer, "AT#XUUID"), 1);
        assert_string_equal(modem_get_identity(f->modem)->modem_firmware, "mfw_nrf9160_1.3.6");
        assert_int_equal(modem_get_identity(f->modem)->fota.result, MODEM_FOTA_RESULT_APPLIED);

        /* The firmware restarting fails the command in flight. */
        assert_int_equal(modem_fota_apply(f->modem, MODEM_FOTA_OP_APP, on_fota_done_cb, &l), 0);
        peer_write(&f->peer, "\r\nReady\r\n");
        run_for(f, 200);
        assert_int_equal(l.calls, 4);
        assert_true(l.error < 0);
        assert_true(run_until_state(f, MODEM_READY, 5000));
}

typedef struct JwtResult {
        unsigned calls;
        int error;
        char jwt[512];
} JwtResult;

static void on_jwt(Modem *m, int error, const char *jwt, void *userdata) {
        JwtResult *r = userdata;
        (void) m;
        r->calls++;
        r->error = error;
        if (jwt)
                snprintf(r->jwt, sizeof r->jwt, "%s", jwt);
}

static void test_jwt_shared_and_cached(void **state) {
        Fixture *f = *state;
        JwtResult a = {}, b = {}, c = {};

        assert_int_equal(modem_jwt_request(f->modem, on_jwt, &a), -ENOTCONN);
        f->peer.has_cert_and_key = true;
        assert_int_equal(modem_start(f->modem), 0);
        assert_true(run_until_state(f, MODEM_READY, 5000));

        assert_int_equal(modem_jwt_request(f->modem, on_jwt, &a), 0);
        assert_int_equal(modem_jwt_request(f->modem, on_jwt, &b), 0);
        assert_int_equal(modem_jwt_modem_calls(f->modem), 1);
        while (a.calls == 0 || b.calls == 0)
                (void) sd_event_run(f->event, 100 * 1000);
        assert_int_equal(a.error, 0);
        assert_string_equal(a.jwt, f->peer.jwt);
        assert_string_equal(b.jwt, f->peer.jwt);
        assert_int_equal(peer_count(&f->peer, "AT%JWT="), 1);

        /* Cached: answered at once, no modem call. */
        assert_int_equal(modem_jwt_request(f->modem, on_jwt, &c), 0);
        assert_int_equal(c.calls, 1);
        assert_string_equal(c.jwt, f->peer.jwt);
        assert_int_equal(modem_jwt_modem_calls(f->modem), 1);
}

static void test_jwt_near_expiry_not_cached(void **state) {
        Fixture *f = *state;
        JwtResult a = {}, b = {};

        /* The modem's token expires in 30 s: inside the 60 s margin, so the next request asks again. */
        make_jwt(f->peer.jwt, sizeof f->peer.jwt, 30);
        f->peer.has_cert_and_key = true;
        assert_int_equal(modem_start(f->modem), 0);
        assert_true(run_until_state(f, MODEM_READY, 5000));
        assert_int_equal(modem_jwt_request(f->modem, on_jwt, &a), 0);
        while (a.calls == 0)
                (void) sd_event_run(f->event, 100 * 1000);
        assert_int_equal(modem_jwt_request(f->modem, on_jwt, &b), 0);
        while (b.calls == 0)
                (void) sd_event_run(f->event, 100 * 1000);
        assert_int_equal(modem_jwt_modem_calls(f->modem), 2);
}

static void test_jwt_without_time_not_cached(void **state) {
        Fixture *f = *state;
        JwtResult a = {}, b = {};

        /* A modem without time signs a token without "exp" ({"alg":"ES256"} . {"iss":"x"}): handed out, not kept. */
        snprintf(f->peer.jwt, sizeof f->peer.jwt, "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0.AAAA");
        f->peer.has_cert_and_key = true;
        assert_int_equal(modem_start(f->modem), 0);
        assert_true(run_until_state(f, MODEM_READY, 5000));
        assert_int_equal(modem_jwt_request(f->modem, on_jwt, &a), 0);
        while (a.calls == 0)
                (void) sd_event_run(f->event, 100 * 1000);
        assert_int_equal(a.error, 0);
        assert_string_equal(a.jwt, f->peer.jwt);
        /* Once the modem has a time, the next request gets a token with "exp". */
        make_jwt(f->peer.jwt, sizeof f->peer.jwt, 3600);
        assert_int_equal(modem_jwt_request(f->modem, on_jwt, &b), 0);
        while (b.calls == 0)
                (void) sd_event_run(f->event, 100 * 1000);
        assert_string_equal(b.jwt, f->peer.jwt);
        assert_int_equal(modem_jwt_modem_calls(f->modem), 2);
}

static void test_jwt_failure_reaches_every_waiter(void **state) {
        Fixture *f = *state;
        JwtResult a = {}, b = {};

        /* The peer answers ERROR to a %JWT for another tag: both waiters hear it, nothing is cached. */
        modem_free(f->modem);
        f->config->sec_tag = 42;
        assert_int_equal(modem_new(f->event, f->config, &f->modem), 0);
        assert_int_equal(modem_start(f->modem), 0);
        assert_true(run_until_state(f, MODEM_READY, 5000));
        assert_int_equal(modem_jwt_request(f->modem, on_jwt, &a), 0);
        assert_int_equal(modem_jwt_request(f->modem, on_jwt, &b), 0);
        while (a.calls == 0 || b.calls == 0)
                (void) sd_event_run(f->event, 100 * 1000);
        assert_int_equal(a.error, -EREMOTEIO);
        assert_int_equal(b.error, -EREMOTEIO);
        assert_int_equal(modem_jwt_modem_calls(f->modem), 1);
        a = (JwtResult){};
        assert_int_equal(modem_jwt_request(f->modem, on_jwt, &a), 0);
        assert_int_equal(a.calls, 0);
        assert_int_equal(modem_jwt_modem_calls(f->modem), 2);
        while (a.calls == 0)
                (void) sd_event_run(f->event, 100 * 1000);
}

static void test_port_vanishes_and_returns(void **state) {
        Fixture *f = *state;

        assert_int_equal(modem_start(f->modem), 0);
        assert_true(run_until_state(f, MODEM_READY, 5000));
        peer_close(f);
        assert_true(run_until_state(f, MODEM_CLOSED, 3000));
        run_for(f, 500);
        assert_int_equal(modem_get_state(f->modem), MODEM_CLOSED);
        peer_clear_commands(&f->peer);
        peer_open(f);
        assert_true(run_until_state(f, MODEM_READY, 15000));
        assert_int_equal(peer_count(&f->peer, "AT#XUUID"), 1);
}

static void test_silent_modem_fails_then_recovers(void **state) {
        Fixture *f = *state;

        f->peer.silent = true;
        assert_int_equal(modem_start(f->modem), 0);
        /* The synchronisation at open gives up after 2 s, the first probe after 2 s more. */
        assert_true(run_until_state(f, MODEM_FAILED, 8000));
        f->peer.silent = false;
        assert_true(run_until_state(f, MODEM_READY, 10000));
}

/* The fixture's modem again, with [Modem] LinkCheckSec=1. */
static void modem_with_link_check(Fixture *f) {
        f->modem = modem_free(f->modem);
        f->config->modem_link_check_sec = 1;
        assert_int_equal(modem_new(f->event, f->config, &f->modem), 0);
}

/* A firmware that stops answering while the link is idle is found by the
 * link check, not after the MQTT keepalive (up to 20 minutes). */
static void test_link_check_finds_silent_modem(void **state) {
        Fixture *f = *state;
        uint64_t start;

        modem_with_link_check(f);
        assert_int_equal(modem_start(f->modem), 0);
        assert_true(run_until_state(f, MODEM_READY, 5000));
        peer_clear_commands(&f->peer);
        run_for(f, 2500);
        /* Idle and answering: checked with "AT" only, and still ready. */
        assert_true(peer_count(&f->peer, "AT") >= 2);
        assert_int_equal(peer_count(&f->peer, "AT"), f->peer.n_commands);
        assert_int_equal(modem_get_state(f->modem), MODEM_READY);

        f->peer.silent = true;
        start = now_usec(CLOCK_MONOTONIC);
        assert_true(run_until_state(f, MODEM_PROBING, 6000));
        /* LinkCheckSec + the check's timeout (CommandTimeoutSec=2 here). */
        assert_true(now_usec(CLOCK_MONOTONIC) - start < 4 * 1000 * 1000);
        f->peer.silent = false;
        assert_true(run_until_state(f, MODEM_READY, 20000));
}

/* A #XRECV that promises 4096 bytes and brings 100: the manager hears of it
 * from the engine, drops the modem's sockets and probes again. */
static void test_short_payload_starts_over(void **state) {
        Fixture *f = *state;
        char payload[101];

        assert_int_equal(modem_start(f->modem), 0);
        assert_true(run_until_state(f, MODEM_READY, 5000));
        peer_clear_commands(&f->peer);
        memset(payload, 'x', sizeof payload - 1);
        payload[sizeof payload - 1] = 0;
        peer_write(&f->peer, "\r\n#XRECV: 0,4096\r\n");
        peer_write(&f->peer, payload);
        assert_true(run_until_state(f, MODEM_PROBING, 3000));
        assert_true(run_until_state(f, MODEM_READY, 10000));
        assert_int_equal(peer_count(&f->peer, "AT#XUUID"), 1);
}

static void test_serial_lock_and_termios(void **state) {
        Fixture *f = *state;
        SerialLock *a = NULL, *b = NULL;
        char target[64];
        pid_t holder = 0;
        struct termios t;
        ssize_t n;
        int fd = -1;

        /* The link and the device it points at share one lock; the holder's PID is told. */
        assert_int_equal(serial_lock_acquire(f->link, &a, NULL), 0);
        n = readlink(f->link, target, sizeof target - 1);
        assert_true(n > 0);
        target[n] = 0;
        assert_int_equal(serial_lock_acquire(target, &b, &holder), -EBUSY);
        assert_int_equal(holder, getpid());
        a = serial_lock_release(a);
        assert_int_equal(serial_lock_acquire(target, &b, NULL), 0);
        b = serial_lock_release(b);

        /* Raw 8N1 at the rate asked for, with RTS/CTS. */
        assert_int_equal(serial_open(f->link, 230400, true, &fd), 0);
        assert_int_equal(tcgetattr(fd, &t), 0);
        assert_int_equal(cfgetospeed(&t), B230400);
        assert_true(t.c_cflag & CRTSCTS);
        assert_int_equal(t.c_cflag & CSIZE, CS8);
        assert_false(t.c_cflag & PARENB);
        assert_false(t.c_lflag & (ICANON | ECHO));
        close(fd);
        assert_int_equal(serial_open(f->link, 12345, true, &fd), -EINVAL);
        assert_int_equal(serial_open(f->dir, 115200, true, &fd), -EISDIR);
        {
                char plain[160];
                int pf;
                snprintf(plain, sizeof plain, "%s/plain", f->dir);
                pf = open(plain, O_CREAT | O_WRONLY, 0600);
                assert_true(pf >= 0);
                close(pf);
                assert_int_equal(serial_open(plain, 115200, true, &fd), -ENOTTY);
                unlink(plain);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_probe_reaches_ready_missing_credentials, setup, teardown),
                cmocka_unit_test_setup_teardown(test_device_id_override, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ready_urc_is_a_reboot, setup, teardown),
                cmocka_unit_test(test_fota_parsers),
                cmocka_unit_test_setup_teardown(test_fota_commands, setup, teardown),
                cmocka_unit_test_setup_teardown(test_jwt_shared_and_cached, setup, teardown),
                cmocka_unit_test_setup_teardown(test_jwt_without_time_not_cached, setup, teardown),
                cmocka_unit_test_setup_teardown(test_jwt_near_expiry_not_cached, setup, teardown),
                cmocka_unit_test_setup_teardown(test_jwt_failure_reaches_every_waiter, setup, teardown),
                cmocka_unit_test_setup_teardown(test_port_vanishes_and_returns, setup, teardown),
                cmocka_unit_test_setup_teardown(test_silent_modem_fails_then_recovers, setup, teardown),
                cmocka_unit_test_setup_teardown(test_link_check_finds_silent_modem, setup, teardown),
                cmocka_unit_test_setup_teardown(test_short_payload_starts_over, setup, teardown),
                cmocka_unit_test_setup_teardown(test_serial_lock_and_termios, setup, teardown),
        };
        log_set_max_level(getenv("TEST_DEBUG") ? LOG_DEBUG : LOG_ERR);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
