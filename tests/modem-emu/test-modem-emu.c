/* SPDX-License-Identifier: MIT */
/*
 * modem_emu_execute() against exact response bytes, command by command, with
 * every error code where the real modem gives it (nrf91-at.md).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "amazon-ca.h"
#include "modem-emu.h"

void modem_emu_set_sync(ModemEmu *m, bool sync);

#define UUID "50503642-3239-4f86-80c4-06122e299623"
#define IMEI "352656100367872"
#define TAG "16842753"

typedef struct Fixture {
        char dir[64];
        ModemEmu *m;
        char urcs[16][256];
        size_t n_urcs;
} Fixture;

static void on_urc(const char *line, void *userdata) {
        Fixture *f = userdata;
        if (f->n_urcs < 16)
                snprintf(f->urcs[f->n_urcs++], sizeof f->urcs[0], "%s", line);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st;
        (void) flag;
        (void) ftw;
        return remove(path);
}

static void open_modem(Fixture *f, const char *uuid, const char *imei) {
        assert_int_equal(modem_emu_new(f->dir, uuid, imei, &f->m), 0);
        modem_emu_set_sync(f->m, false);
        modem_emu_set_urc_callback(f->m, on_urc, f);
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof *f);
        snprintf(f->dir, sizeof f->dir, "/tmp/test-modem-emu-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        open_modem(f, UUID, IMEI);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        modem_emu_free(f->m);
        nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
        free(f);
        return 0;
}

static char *run(ModemEmu *m, const char *cmd) {
        static char out[65536];
        ssize_t n = modem_emu_execute(m, cmd, strlen(cmd), out, sizeof out - 1);
        assert_true(n >= 0);
        out[n] = 0;
        return out;
}

#define EXPECT(m, cmd, resp) assert_string_equal(run((m), (cmd)), (resp))
#define OK "\r\nOK\r\n"
#define ERR "\r\nERROR\r\n"
#define CME(n) "\r\n+CME ERROR: " #n "\r\n"

static void test_basic(void **state) {
        Fixture *f = *state;
        EXPECT(f->m, "AT", OK);
        EXPECT(f->m, "at", OK);
        EXPECT(f->m, "ATE0", OK);
        EXPECT(f->m, "ATE1", ERR);
        EXPECT(f->m, "AT+FOO", ERR);
        EXPECT(f->m, "AT%FOO=1", ERR);
        EXPECT(f->m, "", ERR);
        EXPECT(f->m, "A", ERR);
        EXPECT(f->m, "HELLO", ERR);
        EXPECT(f->m, "AT?", ERR);
        EXPECT(f->m, "AT+CGMI", "\r\nNordic Semiconductor ASA\r\n" OK);
        EXPECT(f->m, "AT+CGMM", "\r\nnRF9160-SICA\r\n" OK);
        /* Syntax: names, spaces around values, parameter counts, text after a closing quote. */
        EXPECT(f->m, "AT+CF UN", ERR);
        EXPECT(f->m, "AT+CFUN 4", ERR);
        EXPECT(f->m, "at+cfun = 4", ERR);
        EXPECT(f->m, "AT+CFUN= 4 ", OK);
        EXPECT(f->m, "AT+CFUN?", "\r\n+CFUN: 4\r\n" OK);
        EXPECT(f->m, "AT+CFUN=4x", ERR);
        EXPECT(f->m, "AT%KEYGEN=1,2,0,\"a\",\"b\",1,2,3,4,5,6,7", ERR); /* 12 parameters: too many for %KEYGEN */
        EXPECT(f->m, "AT%KEYGEN=1,2,0,\"a\",\"b\",1,2,3,4,5,6,7,8", ERR); /* 13: too many for any command */
        EXPECT(f->m, "AT%CCLK=\"24/01/02,03:04:05+00\"x", ERR);
        EXPECT(f->m, "AT%CCLK=\"24/01/02,03:04:05+00\",\x7f", ERR);
}

static void test_identity(void **state) {
        Fixture *f = *state;
        char expect[256];

        EXPECT(f->m, "AT+CGSN=1", "\r\n+CGSN: \"" IMEI "\"\r\n" OK);
        EXPECT(f->m, "AT+CGSN", "\r\n" IMEI "\r\n" OK);
        EXPECT(f->m, "AT+CGSN=0", "\r\n" IMEI "\r\n" OK);
        EXPECT(f->m, "AT+CGSN=2", "\r\n+CGSN: \"35265610036787" "12\"\r\n" OK);
        EXPECT(f->m, "AT+CGSN=4", ERR);
        EXPECT(f->m, "AT+CGSN=\"1\"", ERR);
        EXPECT(f->m, "AT+CGMR", "\r\nmfw_nrf9160_1.3.5\r\n" OK);
        EXPECT(f->m, "AT%SHORTSWVER", "\r\n%SHORTSWVER: nrf9160_1.3.5\r\n" OK);
        assert_string_equal(modem_emu_device_uuid(f->m), UUID);

        /* %XMODEMUUID is the modem build's UUID: not the device UUID, and it follows the firmware. */
        char *r = run(f->m, "AT%XMODEMUUID");
        char fw1[40];
        assert_int_equal(strlen(r), strlen("\r\n%XMODEMUUID: \r\n" OK) + 36);
        assert_memory_equal(r, "\r\n%XMODEMUUID: ", 15);
        memcpy(fw1, r + 15, 36);
        fw1[36] = 0;
        assert_string_not_equal(fw1, UUID);
        assert_true(fw1[8] == '-' && fw1[13] == '-' && fw1[18] == '-' && fw1[23] == '-');

        assert_int_equal(modem_emu_set_firmware_version(f->m, "mfw_nrf9160_1.3.6"), 0);
        EXPECT(f->m, "AT+CGMR", "\r\nmfw_nrf9160_1.3.6\r\n" OK);
        r = run(f->m, "AT%XMODEMUUID");
        assert_memory_not_equal(r + 15, fw1, 36);
        assert_int_equal(modem_emu_set_firmware_version(f->m, ""), -EINVAL);
        assert_int_equal(modem_emu_set_firmware_version(f->m, "bad\nversion"), -EINVAL);

        /* Persisted: a new instance without arguments has the same identity and version. */
        modem_emu_free(f->m);
        open_modem(f, NULL, NULL);
        assert_string_equal(modem_emu_device_uuid(f->m), UUID);
        EXPECT(f->m, "AT+CGSN=1", "\r\n+CGSN: \"" IMEI "\"\r\n" OK);
        EXPECT(f->m, "AT+CGMR", "\r\nmfw_nrf9160_1.3.6\r\n" OK);

        /* Arguments win (and upper-case UUIDs are normalised). */
        modem_emu_free(f->m);
        open_modem(f, "AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE", "490154203237518");
        assert_string_equal(modem_emu_device_uuid(f->m), "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee");
        snprintf(expect, sizeof expect, "\r\n+CGSN: \"%s\"\r\n" OK, "490154203237518");
        EXPECT(f->m, "AT+CGSN=1", expect);

        ModemEmu *bad = NULL;
        assert_int_equal(modem_emu_new(f->dir, "not-a-uuid", NULL, &bad), -EINVAL);
        assert_int_equal(modem_emu_new(f->dir, NULL, "12345", &bad), -EINVAL);
        assert_null(bad);
}

static bool luhn_ok(const char *d, size_t n) {
        unsigned sum = 0;
        for (size_t i = 0; i < n; i++) {
                unsigned v = (unsigned) (d[n - 1 - i] - '0');
                if (i % 2 == 1) {
                        v *= 2;
                        if (v > 9)
                                v -= 9;
                }
                sum += v;
        }
        return sum % 10 == 0;
}

static void test_generated_identity(void **state) {
        Fixture *f = *state;
        char dir[64], imei[16], uuid[37];
        ModemEmu *m;
        (void) f;

        snprintf(dir, sizeof dir, "/tmp/test-modem-emu-gen-XXXXXX");
        assert_non_null(mkdtemp(dir));
        assert_int_equal(modem_emu_new(dir, NULL, NULL, &m), 0);
        snprintf(uuid, sizeof uuid, "%s", modem_emu_device_uuid(m));
        assert_int_equal(strlen(uuid), 36);
        assert_true(uuid[14] == '4'); /* version 4 */
        assert_true(strchr("89ab", uuid[19]) != NULL);
        char *r = run(m, "AT+CGSN");
        assert_int_equal(strlen(r), 2 + 15 + 2 + 6);
        memcpy(imei, r + 2, 15);
        imei[15] = 0;
        assert_true(luhn_ok(imei, 15));
        modem_emu_free(m);

        /* Generated once: the next start has the same. */
        assert_int_equal(modem_emu_new(dir, NULL, NULL, &m), 0);
        assert_string_equal(modem_emu_device_uuid(m), uuid);
        r = run(m, "AT+CGSN");
        assert_memory_equal(r + 2, imei, 15);
        modem_emu_free(m);
        nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void test_cfun(void **state) {
        Fixture *f = *state;
        EXPECT(f->m, "AT+CFUN?", "\r\n+CFUN: 0\r\n" OK);
        assert_int_equal(modem_emu_cfun(f->m), 0);
        EXPECT(f->m, "AT+CFUN=4", OK);
        EXPECT(f->m, "AT+CFUN?", "\r\n+CFUN: 4\r\n" OK);
        EXPECT(f->m, "AT+CFUN=1", OK);
        EXPECT(f->m, "AT+CFUN?", "\r\n+CFUN: 1\r\n" OK);
        assert_int_equal(modem_emu_cfun(f->m), 1);
        EXPECT(f->m, "AT+CFUN=0", OK);
        EXPECT(f->m, "AT+CFUN?", "\r\n+CFUN: 0\r\n" OK);
        EXPECT(f->m, "AT+CFUN=2", ERR);
        EXPECT(f->m, "AT+CFUN=", ERR);
        EXPECT(f->m, "AT+CFUN", ERR);
        EXPECT(f->m, "AT+CFUN=1,0", ERR);
        EXPECT(f->m, "AT+CFUN=x", ERR);
        EXPECT(f->m, "AT+CFUN=?", "\r\n+CFUN: (0,1,4)\r\n" OK);
        EXPECT(f->m, "at+cfun?", "\r\n+CFUN: 0\r\n" OK);
}

static void test_cmee(void **state) {
        Fixture *f = *state;
        EXPECT(f->m, "AT+CMEE?", "\r\n+CMEE: 0\r\n" OK);
        EXPECT(f->m, "AT%CMNG=2," TAG ",0", ERR); /* CME errors read ERROR until +CMEE=1 */
        EXPECT(f->m, "AT+CMEE=1", OK);
        EXPECT(f->m, "AT+CMEE?", "\r\n+CMEE: 1\r\n" OK);
        EXPECT(f->m, "AT%CMNG=2," TAG ",0", CME(513));
        EXPECT(f->m, "AT+CMEE=2", ERR); /* no verbose errors on the nRF91 */
        EXPECT(f->m, "AT+CMEE=0", OK);
        EXPECT(f->m, "AT%CMNG=2," TAG ",0", ERR);
        EXPECT(f->m, "AT+CMEE=1", OK);
        modem_emu_reboot(f->m);
        EXPECT(f->m, "AT+CMEE?", "\r\n+CMEE: 0\r\n" OK);
}

static void test_cmng(void **state) {
        Fixture *f = *state;
        const char *ca = AMAZON_ROOT_CA_1;
        char cmd[4096], expect[4096];

        EXPECT(f->m, "AT+CMEE=1", OK);
        EXPECT(f->m, "AT%CMNG=1", OK); /* empty store: just OK */

        EXPECT(f->m, "AT+CFUN=4", OK);
        /* The transcript of nrf91-at.md §2.3 */
        EXPECT(f->m, "AT%CMNG=3," TAG ",0", CME(513));
        snprintf(cmd, sizeof cmd, "AT%%CMNG=0," TAG ",0,\"%s\"", ca);
        EXPECT(f->m, cmd, OK);
        EXPECT(f->m, "AT%CMNG=1," TAG ",0", "\r\n%CMNG: " TAG ",0,\"" AMAZON_ROOT_CA_1_SHA "\"\r\n" OK);
        snprintf(expect, sizeof expect, "\r\n%%CMNG: " TAG ",0,\"" AMAZON_ROOT_CA_1_SHA "\",\"%s\"\r\n" OK, ca);
        EXPECT(f->m, "AT%CMNG=2," TAG ",0", expect);
        assert_string_equal(modem_emu_credential(f->m, 16842753, 0), ca);

        /* Client cert and key with CRLF line ends: the hash is over the exact bytes. */
        EXPECT(f->m, "AT%CMNG=0," TAG ",1,\"-----BEGIN CERTIFICATE-----\r\nAAAA\r\n-----END CERTIFICATE-----\r\n\"",
               OK);
        EXPECT(f->m, "AT%CMNG=0," TAG ",2,\"-----BEGIN PRIVATE KEY-----\r\nBBBB\r\n-----END PRIVATE KEY-----\r\n\"",
               OK);
        /* sha256 of the texts above, computed independently */
#define CERT_SHA "CFE3B58B7D2C193EB0DE5584D60C4BC960858E48EA504BD343586ED07B18EEAD"
#define KEY_SHA "BC56CE89D5319EB0C1351BB7A0A16EB3CA2FDF83797AA863AD37E15956B23E7C"
        EXPECT(f->m, "AT%CMNG=1",
               "\r\n%CMNG: " TAG ",0,\"" AMAZON_ROOT_CA_1_SHA "\"\r\n"
               "\r\n%CMNG: " TAG ",1,\"" CERT_SHA "\"\r\n"
               "\r\n%CMNG: " TAG ",2,\"" KEY_SHA "\"\r\n" OK);
        EXPECT(f->m, "AT%CMNG=1," TAG ",1", "\r\n%CMNG: " TAG ",1,\"" CERT_SHA "\"\r\n" OK);
        EXPECT(f->m, "AT%CMNG=2," TAG ",1",
               "\r\n%CMNG: " TAG ",1,\"" CERT_SHA "\",\"-----BEGIN CERTIFICATE-----\r\nAAAA\r\n-----END CERTIFICATE-----\r\n\"\r\n" OK);
        /* The key never leaves the modem through AT, but the host port's TLS gets it. */
        EXPECT(f->m, "AT%CMNG=2," TAG ",2", CME(514));
        assert_string_equal(modem_emu_credential(f->m, 16842753, 2),
                            "-----BEGIN PRIVATE KEY-----\r\nBBBB\r\n-----END PRIVATE KEY-----\r\n");
        assert_null(modem_emu_credential(f->m, 16842753, 3));
        assert_null(modem_emu_credential(f->m, 42, 0));

        /* Other tags, ordering, list by tag. */
        EXPECT(f->m, "AT%CMNG=0,42,0,\"x\"", OK);
        EXPECT(f->m, "AT%CMNG=0,7,4,my-psk-id", OK); /* unquoted content is accepted */
        EXPECT(f->m, "AT%CMNG=0,7,3,00112233445566778899", OK); /* digits beyond any integer: still content */
        EXPECT(f->m, "AT%CMNG=2,7,3", "\r\n%CMNG: 7,3,\"A124E1693F0AAE2BB93F37B2E9B42009DFD89F0B69C65D4F2DE13ED22EF9D4E9\",\"00112233445566778899\"\r\n" OK);
        EXPECT(f->m, "AT%CMNG=0,7,3,\"0102\"", OK);
        EXPECT(f->m, "AT%CMNG=1,42", "\r\n%CMNG: 42,0,\"2D711642B726B04401627CA9FBAC32F5C8530FB1903CC4DB02258717921A4881\"\r\n" OK);
        EXPECT(f->m, "AT%CMNG=1,7",
               "\r\n%CMNG: 7,3,\"F19CCF1EB395A4D74606C59B491ECD0A37B5F26EAE0EC55C33BBD2743C658B26\"\r\n"
               "\r\n%CMNG: 7,4,\"F3446CFE2511E193754E16451F31016B766F36DF9B7A8129661D2764D9CAC541\"\r\n" OK);
        EXPECT(f->m, "AT%CMNG=1,8", OK);
        EXPECT(f->m, "AT%CMNG=1,7,2", OK);

        /* A write replaces an existing entry. */
        EXPECT(f->m, "AT%CMNG=0,42,0,\"0102\"", OK);
        EXPECT(f->m, "AT%CMNG=1,42", "\r\n%CMNG: 42,0,\"F19CCF1EB395A4D74606C59B491ECD0A37B5F26EAE0EC55C33BBD2743C658B26\"\r\n" OK);

        /* Parameter errors are plain ERROR even with +CMEE=1. */
        EXPECT(f->m, "AT%CMNG", ERR);
        EXPECT(f->m, "AT%CMNG?", ERR);
        EXPECT(f->m, "AT%CMNG=4", ERR);
        EXPECT(f->m, "AT%CMNG=0,42,0", ERR);
        EXPECT(f->m, "AT%CMNG=0,42,0,\"\"", ERR);      /* empty content */
        EXPECT(f->m, "AT%CMNG=0,42,7,\"x\"", ERR);     /* reserved type */
        EXPECT(f->m, "AT%CMNG=0,42,0,\"x\",\"pw\"", ERR); /* password only for type 2 */
        EXPECT(f->m, "AT%CMNG=0,-1,0,\"x\"", ERR);
        EXPECT(f->m, "AT%CMNG=0,4294967296,0,\"x\"", ERR);
        EXPECT(f->m, "AT%CMNG=0,42,0,\"x\"junk", ERR);
        EXPECT(f->m, "AT%CMNG=0,42,0,x\"y\"", ERR);   /* a quote inside an unquoted value */
        EXPECT(f->m, "AT%CMNG=0,42,0,\"unterminated", ERR);
        EXPECT(f->m, "AT%CMNG=2,42", ERR);
        EXPECT(f->m, "AT%CMNG=2,42,0,\"x\"", ERR);
        EXPECT(f->m, "AT%CMNG=3,42", ERR);
        EXPECT(f->m, "AT%CMNG=1,,0", ERR);
        EXPECT(f->m, "AT%CMNG=1,42,0,1", ERR);

        /* Modem-reserved tags */
        EXPECT(f->m, "AT%CMNG=0,2147483648,0,\"x\"", CME(514));
        EXPECT(f->m, "AT%CMNG=3,4294967292,0", CME(514));
        EXPECT(f->m, "AT%CMNG=2,4294967292,0", CME(513));

        /* Missing entries */
        EXPECT(f->m, "AT%CMNG=2,42,1", CME(513));
        EXPECT(f->m, "AT%CMNG=3,42,1", CME(513));
        EXPECT(f->m, "AT%CMNG=2,42,2", CME(513)); /* not found comes before no access */

        /* CFUN=1: list and read work; writes and deletes are refused before anything else is looked at. */
        EXPECT(f->m, "AT+CFUN=1", OK);
        EXPECT(f->m, "AT%CMNG=1,42", "\r\n%CMNG: 42,0,\"F19CCF1EB395A4D74606C59B491ECD0A37B5F26EAE0EC55C33BBD2743C658B26\"\r\n" OK);
        EXPECT(f->m, "AT%CMNG=2,42,0", "\r\n%CMNG: 42,0,\"F19CCF1EB395A4D74606C59B491ECD0A37B5F26EAE0EC55C33BBD2743C658B26\",\"0102\"\r\n" OK);
        EXPECT(f->m, "AT%CMNG=0,42,0,\"y\"", CME(518));
        EXPECT(f->m, "AT%CMNG=3,42,0", CME(518));
        EXPECT(f->m, "AT%CMNG=3,42,1", CME(518));
        EXPECT(f->m, "AT%CMNG=0,2147483648,0,\"x\"", CME(518));
        EXPECT(f->m, "AT+CMEE=0", OK);
        EXPECT(f->m, "AT%CMNG=3,42,0", ERR);
        EXPECT(f->m, "AT+CMEE=1", OK);
        EXPECT(f->m, "AT+CFUN=0", OK);

        EXPECT(f->m, "AT%CMNG=3,42,0", OK);
        EXPECT(f->m, "AT%CMNG=1,42", OK);
        EXPECT(f->m, "AT%CMNG=3,42,0", CME(513));

        /* Everything persists: a restarted modem lists the same. */
        char *before = strdup(run(f->m, "AT%CMNG=1"));
        modem_emu_free(f->m);
        open_modem(f, NULL, NULL);
        EXPECT(f->m, "AT%CMNG=1", before);
        free(before);
        snprintf(expect, sizeof expect, "\r\n%%CMNG: " TAG ",0,\"" AMAZON_ROOT_CA_1_SHA "\",\"%s\"\r\n" OK, ca);
        EXPECT(f->m, "AT%CMNG=2," TAG ",0", expect);
}

static void test_cmng_password(void **state) {
        Fixture *f = *state;
        EXPECT(f->m, "AT%CMNG=0,5,2,\"-----BEGIN ENCRYPTED PRIVATE KEY-----\nx\n-----END ENCRYPTED PRIVATE KEY-----\n\",\"secret\"", OK);
        EXPECT(f->m, "AT%CMNG=0,5,2,\"k\",\"123456789012345678901234567890123\"", ERR); /* > 32 chars */
        EXPECT(f->m, "AT%CMNG=0,5,2,\"k\",secret", ERR); /* the password is a string */
        /* A password that does not decrypt leaves the text as it is. */
        assert_non_null(modem_emu_credential(f->m, 5, 2));
}

static void test_buffer(void **state) {
        Fixture *f = *state;
        char out[16];
        assert_int_equal(modem_emu_execute(f->m, "AT+CGMR", 7, out, 8), -ENOBUFS);
        assert_int_equal(modem_emu_execute(f->m, "AT", 2, out, 6), 6);
        assert_memory_equal(out, OK, 6);
        /* NUL bytes outside quotes are not a command */
        assert_int_equal(modem_emu_execute(f->m, "AT\0", 3, out, sizeof out), 9);
        assert_memory_equal(out, ERR, 9);
        assert_int_equal(modem_emu_execute(f->m, "AT+CFUN=4\0", 10, out, sizeof out), 9);
        assert_memory_equal(out, ERR, 9);
        assert_int_equal(modem_emu_execute(f->m, "AT+CFUN\0=4", 10, out, sizeof out), 9);
        assert_memory_equal(out, ERR, 9);
}

static void expect_urcs(Fixture *f, size_t n, ...) {
        va_list ap;
        assert_int_equal(f->n_urcs, n);
        va_start(ap, n);
        for (size_t i = 0; i < n; i++)
                assert_string_equal(f->urcs[i], va_arg(ap, const char *));
        va_end(ap);
        f->n_urcs = 0;
}

/* Checks '\r\n<prefix>: "<a>.<b>"\r\n\r\nOK\r\n' with two base64url parts. */
static void assert_two_part(const char *resp, const char *prefix) {
        size_t plen = strlen(prefix), len = strlen(resp), dots = 0;
        assert_true(len > plen + 4 + 2 + 8);
        assert_memory_equal(resp, "\r\n", 2);
        assert_memory_equal(resp + 2, prefix, plen);
        assert_memory_equal(resp + 2 + plen, ": \"", 3);
        assert_string_equal(resp + len - 9, "\"\r\n" OK);
        for (const char *p = resp + 2 + plen + 3; p < resp + len - 9; p++) {
                if (*p == '.')
                        dots++;
                else
                        assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p));
        }
        assert_int_equal(dots, strcmp(prefix, "%JWT") == 0 ? 2 : 1);
}

static void test_keygen(void **state) {
        Fixture *f = *state;

        EXPECT(f->m, "AT+CMEE=1", OK);
        EXPECT(f->m, "AT+CFUN=1", OK);
        EXPECT(f->m, "AT%KEYGEN=" TAG ",2,0", CME(518));
        EXPECT(f->m, "AT+CFUN=4", OK);

        /* parameter errors */
        EXPECT(f->m, "AT%KEYGEN", ERR);
        EXPECT(f->m, "AT%KEYGEN?", ERR);
        EXPECT(f->m, "AT%KEYGEN=" TAG, ERR);
        EXPECT(f->m, "AT%KEYGEN=" TAG ",3,0", ERR);
        EXPECT(f->m, "AT%KEYGEN=" TAG ",8,0", ERR);
        EXPECT(f->m, "AT%KEYGEN=" TAG ",2,2", ERR);
        EXPECT(f->m, "AT%KEYGEN=" TAG ",2,0,CN=x", ERR);
        EXPECT(f->m, "AT%KEYGEN=" TAG ",2,0,\"CN\"", ERR);
        EXPECT(f->m, "AT%KEYGEN=" TAG ",2,0,\"CN=\"", ERR);
        EXPECT(f->m, "AT%KEYGEN=" TAG ",2,0,\"XX=1\"", ERR);
        EXPECT(f->m, "AT%KEYGEN=" TAG ",2,0,\"CN=a,\"", ERR);
        EXPECT(f->m, "AT%KEYGEN=" TAG ",2,0,\"CN=a\",\"10101\"", ERR);
        EXPECT(f->m, "AT%KEYGEN=" TAG ",2,0,\"CN=a\",\"10101000x\"", ERR);
        EXPECT(f->m, "AT%KEYGEN=" TAG ",2,0,\"CN=a\",\"101010000\",1", ERR);
        EXPECT(f->m, "AT%KEYGEN=2147483648,2,0", CME(514));
        EXPECT(f->m, "AT%CMNG=1", OK); /* none of that left a key behind */

        assert_two_part(run(f->m, "AT%KEYGEN=" TAG ",2,0"), "%KEYGEN");
        EXPECT(f->m, "AT%KEYGEN=" TAG ",2,0", CME(519));
        EXPECT(f->m, "AT%KEYGEN=" TAG ",2,1", CME(519));
        EXPECT(f->m, "AT+CMEE=0", OK);
        EXPECT(f->m, "AT%KEYGEN=" TAG ",2,0", ERR);
        EXPECT(f->m, "AT+CMEE=1", OK);

        /* The key is a PEM the host port can load; listed, never readable. */
        const char *pem = modem_emu_credential(f->m, 16842753, 2);
        assert_non_null(pem);
        assert_memory_equal(pem, "-----BEGIN PRIVATE KEY-----\n", 28);
        EXPECT(f->m, "AT%CMNG=2," TAG ",2", CME(514));

        assert_two_part(run(f->m, "AT%KEYGEN=1,2,1"), "%KEYGEN");
        assert_two_part(run(f->m, "AT%KEYGEN=2,2,0,\"O=Nordic Semiconductor,L=PDX,C=no\",\"101010000\""), "%KEYGEN");
        assert_two_part(run(f->m, "AT%KEYGEN=3,2,,\"CN=x\""), "%KEYGEN");
        assert_two_part(run(f->m, "AT%KEYGEN=4,2,0,\"\""), "%KEYGEN"); /* empty attributes: the default subject */

        /* A key written with %CMNG counts as existing, too. */
        EXPECT(f->m, "AT%CMNG=0,5,2,\"k\"", OK);
        EXPECT(f->m, "AT%KEYGEN=5,2,0", CME(519));
        /* A tag with only a certificate takes a key. */
        EXPECT(f->m, "AT%CMNG=0,6,1,\"c\"", OK);
        assert_two_part(run(f->m, "AT%KEYGEN=6,2,0"), "%KEYGEN");

        /* persisted */
        modem_emu_free(f->m);
        open_modem(f, NULL, NULL);
        assert_string_equal(modem_emu_credential(f->m, 16842753, 2), pem = modem_emu_credential(f->m, 16842753, 2));
        EXPECT(f->m, "AT+CMEE=1", OK);
        EXPECT(f->m, "AT%KEYGEN=" TAG ",2,0", CME(519));
}

static void test_attesttoken(void **state) {
        Fixture *f = *state;
        assert_two_part(run(f->m, "AT%ATTESTTOKEN"), "%ATTESTTOKEN");
        assert_two_part(run(f->m, "AT%ATTESTTOKEN="), "%ATTESTTOKEN");
        assert_two_part(run(f->m, "AT%ATTESTTOKEN=\"90115c20ac3f381b520b43c76bd5d99c\""), "%ATTESTTOKEN");
        assert_two_part(run(f->m, "AT%ATTESTTOKEN=\"90115C20AC3F381B520B43C76BD5D99C\""), "%ATTESTTOKEN");
        EXPECT(f->m, "AT%ATTESTTOKEN=\"90115c20ac3f381b520b43c76bd5d99\"", ERR);
        EXPECT(f->m, "AT%ATTESTTOKEN=\"90115c20ac3f381b520b43c76bd5d99cc0\"", ERR);
        EXPECT(f->m, "AT%ATTESTTOKEN=\"90115c20ac3f381b520b43c76bd5d99g\"", ERR);
        EXPECT(f->m, "AT%ATTESTTOKEN=90115c20ac3f381b520b43c76bd5d99c", ERR);
        EXPECT(f->m, "AT%ATTESTTOKEN=\"90115c20ac3f381b520b43c76bd5d99c\",1", ERR);
        EXPECT(f->m, "AT%ATTESTTOKEN?", ERR);
}

static void test_jwt(void **state) {
        Fixture *f = *state;

        EXPECT(f->m, "AT+CMEE=1", OK);
        assert_two_part(run(f->m, "AT%JWT"), "%JWT");
        assert_two_part(run(f->m, "AT%JWT="), "%JWT");
        assert_two_part(run(f->m, "AT%JWT=0"), "%JWT");
        assert_two_part(run(f->m, "AT%JWT=0,0"), "%JWT");
        assert_two_part(run(f->m, "AT%JWT=,"), "%JWT");
        assert_two_part(run(f->m, "AT%JWT=0,0,\"\""), "%JWT");
        assert_two_part(run(f->m, "AT%JWT=0,0,\"\",\"\""), "%JWT");
        assert_two_part(run(f->m, "AT%JWT=0,3600,\"ClientAuth\",\"urn:server\""), "%JWT");
        assert_two_part(run(f->m, "AT%JWT=0,3600,\"a\\\\b\",\"\""), "%JWT");

        EXPECT(f->m, "AT%JWT=0,600,\"a\",\"b\",99,2", CME(513));
        EXPECT(f->m, "AT%JWT=0,600,\"a\",\"b\",99,8", CME(513)); /* no endorsement key */
        EXPECT(f->m, "AT%JWT=0,600,\"a\",\"b\",99,3", CME(50));
        EXPECT(f->m, "AT%JWT=1,600,\"a\",\"b\"", CME(50));
        EXPECT(f->m, "AT%JWT=0,-1", CME(50));
        EXPECT(f->m, "AT%JWT=0,600,\"a\",\"b\",99", ERR);
        EXPECT(f->m, "AT%JWT=0,600,\"a\",\"b\",99,2,1", ERR);
        EXPECT(f->m, "AT%JWT=0,600,a", ERR);
        EXPECT(f->m, "AT%JWT=x", ERR);
        EXPECT(f->m, "AT%JWT?", ERR);
        EXPECT(f->m, "AT+CMEE=0", OK);
        EXPECT(f->m, "AT%JWT=0,600,\"a\",\"b\",99,2", ERR);
        EXPECT(f->m, "AT+CMEE=1", OK);

        /* with the tag's client key */
        EXPECT(f->m, "AT+CFUN=4", OK);
        EXPECT(f->m, "AT%CMNG=0,99,2,\"garbage\"", OK);
        EXPECT(f->m, "AT%JWT=0,600,\"a\",\"b\",99,2", CME(514));
        EXPECT(f->m, "AT%CMNG=3,99,2", OK);
        assert_two_part(run(f->m, "AT%KEYGEN=99,2,0"), "%KEYGEN");
        assert_two_part(run(f->m, "AT%JWT=0,600,\"a\",\"b\",99,2"), "%JWT");
        /* works in CFUN=1 too */
        EXPECT(f->m, "AT+CFUN=1", OK);
        assert_two_part(run(f->m, "AT%JWT=0,600,\"a\",\"\",99,2"), "%JWT");
}

static void test_cereg(void **state) {
        Fixture *f = *state;

        assert_false(modem_emu_network_ready(f->m));
        EXPECT(f->m, "AT+CEREG?", "\r\n+CEREG: 0,0\r\n" OK);
        EXPECT(f->m, "AT+CEREG=?", "\r\n+CEREG: (0-5)\r\n" OK);
        EXPECT(f->m, "AT+CEREG=6", ERR);
        EXPECT(f->m, "AT+CEREG", ERR);
        EXPECT(f->m, "AT+CEREG=1", OK);
        EXPECT(f->m, "AT+CESQ", "\r\n+CESQ: 99,99,255,255,255,255\r\n" OK);

        /* No URC inside execute(): only from tick(). */
        EXPECT(f->m, "AT+CFUN=1", OK);
        expect_urcs(f, 0);
        EXPECT(f->m, "AT+CEREG?", "\r\n+CEREG: 1,2\r\n" OK);
        modem_emu_tick(f->m, 10000);
        expect_urcs(f, 1, "+CEREG: 2");
        assert_false(modem_emu_network_ready(f->m));
        modem_emu_tick(f->m, 10999);
        expect_urcs(f, 0);
        modem_emu_tick(f->m, 11000);
        expect_urcs(f, 1, "+CEREG: 1");
        assert_true(modem_emu_network_ready(f->m));
        modem_emu_tick(f->m, 20000);
        expect_urcs(f, 0);

        EXPECT(f->m, "AT+CEREG?", "\r\n+CEREG: 1,1\r\n" OK);
        EXPECT(f->m, "AT+CEREG=2", OK);
        EXPECT(f->m, "AT+CEREG?", "\r\n+CEREG: 2,1,\"0140\",\"0A0B0C0D\",7\r\n" OK);
        EXPECT(f->m, "AT+CEREG=5", OK);
        EXPECT(f->m, "AT+CEREG?", "\r\n+CEREG: 5,1,\"0140\",\"0A0B0C0D\",7,,,\"11100000\",\"11100000\"\r\n" OK);
        EXPECT(f->m, "AT+CESQ", "\r\n+CESQ: 99,99,255,255,31,62\r\n" OK);
        EXPECT(f->m, "AT+CFUN=1", OK); /* no change, no URC */
        modem_emu_tick(f->m, 20001);
        expect_urcs(f, 0);

        EXPECT(f->m, "AT+CFUN=4", OK);
        assert_false(modem_emu_network_ready(f->m));
        modem_emu_tick(f->m, 20002);
        expect_urcs(f, 1, "+CEREG: 0");
        EXPECT(f->m, "AT+CEREG?", "\r\n+CEREG: 5,0\r\n" OK);

        /* back on with +CEREG=5: the registered URC carries the location and PSM timers */
        EXPECT(f->m, "AT+CFUN=1", OK);
        modem_emu_tick(f->m, 30000);
        modem_emu_tick(f->m, 31000);
        expect_urcs(f, 2, "+CEREG: 2", "+CEREG: 1,\"0140\",\"0A0B0C0D\",7,,,\"11100000\",\"11100000\"");

        /* CFUN=4 before the network answered: the search stops, no registration later */
        EXPECT(f->m, "AT+CFUN=4", OK);
        EXPECT(f->m, "AT+CFUN=1", OK);
        EXPECT(f->m, "AT+CFUN=4", OK);
        modem_emu_tick(f->m, 40000);
        modem_emu_tick(f->m, 50000);
        expect_urcs(f, 3, "+CEREG: 0", "+CEREG: 2", "+CEREG: 0");
        assert_false(modem_emu_network_ready(f->m));

        /* +CEREG=0: no URCs, registration all the same */
        EXPECT(f->m, "AT+CEREG=0", OK);
        EXPECT(f->m, "AT+CFUN=1", OK);
        modem_emu_tick(f->m, 60000);
        modem_emu_tick(f->m, 61000);
        expect_urcs(f, 0);
        assert_true(modem_emu_network_ready(f->m));
        EXPECT(f->m, "AT+CEREG?", "\r\n+CEREG: 0,1\r\n" OK);

        /* reboot: CFUN=0, not registered, settings back to defaults, pending URCs gone */
        EXPECT(f->m, "AT+CEREG=1", OK);
        EXPECT(f->m, "AT+CFUN=4", OK);
        modem_emu_reboot(f->m);
        modem_emu_tick(f->m, 70000);
        expect_urcs(f, 0);
        assert_int_equal(modem_emu_cfun(f->m), 0);
        assert_false(modem_emu_network_ready(f->m));
        EXPECT(f->m, "AT+CEREG?", "\r\n+CEREG: 0,0\r\n" OK);
        EXPECT(f->m, "AT+CFUN?", "\r\n+CFUN: 0\r\n" OK);
}

static void test_xiccid(void **state) {
        Fixture *f = *state;
        char *r;

        EXPECT(f->m, "AT%XICCID", ERR); /* CFUN=0: the SIM is off */
        EXPECT(f->m, "AT+CFUN=4", OK);
        r = run(f->m, "AT%XICCID");
        assert_int_equal(strlen(r), 2 + 9 + 20 + 2 + 6);
        assert_memory_equal(r, "\r\n%XICCID: 89", 13);
        assert_int_equal(r[2 + 9 + 19], 'F');
        assert_true(luhn_ok(r + 11, 19));
        char first[64];
        snprintf(first, sizeof first, "%s", r);
        modem_emu_free(f->m);
        open_modem(f, NULL, NULL);
        EXPECT(f->m, "AT+CFUN=1", OK);
        EXPECT(f->m, "AT%XICCID", first);
        EXPECT(f->m, "AT%XICCID?", ERR);
}

static void test_cclk(void **state) {
        Fixture *f = *state;
        char *r;

        EXPECT(f->m, "AT%CCLK?", ERR); /* no time before the network gives one */
        EXPECT(f->m, "AT+CCLK?", ERR);
        EXPECT(f->m, "AT+CFUN=1", OK);
        modem_emu_tick(f->m, 1);
        EXPECT(f->m, "AT%CCLK?", ERR);
        modem_emu_tick(f->m, 5000);
        r = run(f->m, "AT%CCLK?");
        /* \r\n%CCLK: "yy/MM/dd,hh:mm:ss+00",0\r\n */
        assert_int_equal(strlen(r), 2 + 7 + 22 + 2 + 2 + 6);
        assert_memory_equal(r + 27, "+00\",0\r\n", 8);
        r = run(f->m, "AT+CCLK?");
        assert_memory_equal(r, "\r\n+CCLK: \"", 10);

        /* set by hand: local time with its zone in quarter hours */
        modem_emu_reboot(f->m);
        EXPECT(f->m, "AT%CCLK?", ERR);
        EXPECT(f->m, "AT%CCLK=\"24/02/15,10:12:34+04\",0", OK);
        r = run(f->m, "AT%CCLK?");
        assert_memory_equal(r, "\r\n%CCLK: \"24/02/15,10:12:3", 26);
        assert_memory_equal(r + 27, "+04\",0\r\n", 8);
        EXPECT(f->m, "AT+CCLK=\"99/12/31,23:59:59-08\"", OK);
        r = run(f->m, "AT+CCLK?");
        assert_memory_equal(r, "\r\n+CCLK: \"99/12/31,23:59:5", 26);
        EXPECT(f->m, "AT+CCLK=\"24/13/15,10:12:34+04\"", ERR);
        EXPECT(f->m, "AT+CCLK=\"24/02/15,10:12:34\"", ERR);
        EXPECT(f->m, "AT+CCLK=\"24/02/15,10:12:34+04\",0", ERR);
        EXPECT(f->m, "AT%CCLK", ERR);
}

static void test_urc_callback_reentry(void **state) {
        Fixture *f = *state;
        /* no callback: URCs are dropped, nothing breaks */
        modem_emu_set_urc_callback(f->m, NULL, NULL);
        EXPECT(f->m, "AT+CEREG=1", OK);
        EXPECT(f->m, "AT+CFUN=1", OK);
        modem_emu_tick(f->m, 1);
        modem_emu_tick(f->m, 2000);
        assert_true(modem_emu_network_ready(f->m));
        /* a full queue drops further URCs */
        modem_emu_set_urc_callback(f->m, on_urc, f);
        for (int i = 0; i < 20; i++) {
                EXPECT(f->m, "AT+CFUN=4", OK);
                EXPECT(f->m, "AT+CFUN=1", OK);
        }
        modem_emu_tick(f->m, 3000);
        assert_int_equal(f->n_urcs, 16);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_basic, setup, teardown),
                cmocka_unit_test_setup_teardown(test_identity, setup, teardown),
                cmocka_unit_test_setup_teardown(test_generated_identity, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cfun, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cmee, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cmng, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cmng_password, setup, teardown),
                cmocka_unit_test_setup_teardown(test_buffer, setup, teardown),
                cmocka_unit_test_setup_teardown(test_keygen, setup, teardown),
                cmocka_unit_test_setup_teardown(test_attesttoken, setup, teardown),
                cmocka_unit_test_setup_teardown(test_jwt, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cereg, setup, teardown),
                cmocka_unit_test_setup_teardown(test_xiccid, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cclk, setup, teardown),
                cmocka_unit_test_setup_teardown(test_urc_callback_reentry, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
