/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "config.h"
#include "util.h"

static char tmpdir[] = "/tmp/test-config-XXXXXX";

static void write_file(const char *path, const char *text, size_t len) {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(text, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
}

static void write_text(const char *path, const char *text) {
        write_file(path, text, strlen(text));
}

static char *dump(const Config *c) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        assert_non_null(f);
        config_dump(c, f, false);
        fclose(f);
        return buf;
}

/* Parses text as file "t.conf"; returns the errors joined by '\n' (or NULL) and the dump. */
static int parse(const char *text, size_t len, char **ret_errors, char **ret_dump) {
        _cleanup_(config_freep) Config *c = NULL;
        char **errors = NULL;
        int r;

        assert_int_equal(config_new(&c), 0);
        r = config_parse_string(c, "t.conf", text, len, &errors);
        if (r >= 0)
                r = config_verify(c, &errors);
        size_t total = 1;
        for (char **e = errors; e && *e; e++)
                total += strlen(*e) + 1;
        char *joined = calloc(1, total);
        for (char **e = errors; e && *e; e++) {
                strcat(joined, *e);
                strcat(joined, "\n");
        }
        strv_free(errors);
        *ret_errors = joined;
        *ret_dump = dump(c);
        return r;
}

typedef struct ValidCase {
        const char *text;
        const char *expect[4]; /* lines that must appear in the dump */
} ValidCase;

static const ValidCase valid_cases[] = {
        { "", { "KeepAliveSec=1200\n", "TLS=modem\n", "SecTag=16842753\n", "Level=info\n" } },
        { "# only a comment\n; another\n\n", { "Port=8883\n", "BaudRate=115200\n" } },
        { "[Cloud]\nKeepAliveSec=30\n", { "KeepAliveSec=30\n" } },
        { "[Cloud]\nKeepAliveSec=1200\n", { "KeepAliveSec=1200\n" } },
        { "[Cloud]\r\nHost = broker.example.com \r\nPort=1883\r\n", { "Host=broker.example.com\n", "Port=1883\n" } },
        { "  [Gateway]\n\tDeviceId=nrf-352656100123456\n", { "DeviceId=nrf-352656100123456\n" } },
        { "[Gateway]\nDeviceId=50503041-3633-4261-803d-1e2b8f70111a\n",
          { "DeviceId=50503041-3633-4261-803d-1e2b8f70111a\n" } },
        { "[Modem]\nBaudRate=1000000\nFlowControl=off\nSecTag=42\n",
          { "BaudRate=1000000\n", "FlowControl=no\n", "SecTag=42\n" } },
        { "[Bluetooth]\nAdapter=hci1\nScanRSSI=-80\nMaxConnections=100\nAcquireNotify=true\n",
          { "Adapter=hci1\n", "ScanRSSI=-80\n", "MaxConnections=100\n", "AcquireNotify=yes\n" } },
        { "[Buffer]\nMaxBytes=1G\nMaxMessages=16\n", { "MaxBytes=1G\n", "MaxMessages=16\n" } },
        { "[Buffer]\nMaxBytes=65536\n", { "MaxBytes=64K\n" } },
        { "[Log]\nLevel=debug\nTarget=console\n", { "Level=debug\n", "Target=console\n" } },
        /* later assignments win; an empty one restores the default */
        { "[Cloud]\nKeepAliveSec=60\nKeepAliveSec=90\n", { "KeepAliveSec=90\n" } },
        { "[Cloud]\nKeepAliveSec=60\nKeepAliveSec=\n", { "KeepAliveSec=1200\n" } },
        { "[Gateway]\nDeviceId=abc\nDeviceId=\n", { "DeviceId=\n" } },
        { "[Cloud]\nKeepAliveSec=60 ; inline comment\n", { "KeepAliveSec=60\n" } },
        { "\xEF\xBB\xBF[Log]\nLevel=err\n", { "Level=err\n" } },
        { "[Cloud]\nTLS=modem\n[Cloud]\nPort=443\n", { "Port=443\n" } },
        { "[Cloud]\nKeepAliveSec=100", { "KeepAliveSec=100\n" } }, /* no final newline */
};

static void test_valid(void **state) {
        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(valid_cases); i++) {
                _cleanup_free_ char *errors = NULL, *d = NULL;
                int r = parse(valid_cases[i].text, strlen(valid_cases[i].text), &errors, &d);
                if (r != 0)
                        fail_msg("case %zu: unexpected errors:\n%s", i, errors);
                for (size_t j = 0; j < ELEMENTSOF(valid_cases[i].expect) && valid_cases[i].expect[j]; j++)
                        if (!strstr(d, valid_cases[i].expect[j]))
                                fail_msg("case %zu: %s not in dump:\n%s", i, valid_cases[i].expect[j], d);
        }
}

typedef struct InvalidCase {
        const char *text;
        const char *expect; /* substring of the error output */
} InvalidCase;

static const InvalidCase invalid_cases[] = {
        /* ranges, named exactly as the issue shows */
        { "[Cloud]\n\n\n\n\n\n\n\n\n\n\nKeepAliveSec=5\n", "t.conf:12: [Cloud] KeepAliveSec=5: must be between 30 and 1200" },
        { "[Cloud]\nKeepAliveSec=1201\n", "t.conf:2: [Cloud] KeepAliveSec=1201: must be between 30 and 1200" },
        { "[Cloud]\nKeepAliveSec=-1\n", "KeepAliveSec=-1: must be between 30 and 1200" },
        { "[Cloud]\nKeepAliveSec=60s\n", "KeepAliveSec=60s: must be between" },
        { "[Cloud]\nKeepAliveSec=99999999999999999999999\n", "must be between 30 and 1200" },
        { "[Cloud]\nPort=0\n", "[Cloud] Port=0: must be between 1 and 65535" },
        { "[Cloud]\nPort=65536\n", "[Cloud] Port=65536: must be between 1 and 65535" },
        { "[Bluetooth]\nScanRSSI=-128\n", "[Bluetooth] ScanRSSI=-128: must be between -127 and 20" },
        { "[Bluetooth]\nMaxConnections=0\n", "MaxConnections=0: must be between 1 and 100" },
        { "[Buffer]\nMaxBytes=1K\n", "[Buffer] MaxBytes=1K: must be a size between 64K and 4G" },
        { "[Buffer]\nMaxBytes=lots\n", "MaxBytes=lots: must be a size" },
        /* enums and booleans */
        { "[Cloud]\nTLS=none\n", "t.conf:2: [Cloud] TLS=none: must be one of: modem, host" },
        { "[Modem]\nFlowControl=maybe\n", "[Modem] FlowControl=maybe: must be a boolean" },
        { "[Modem]\nBaudRate=12345\n", "[Modem] BaudRate=12345: must be one of: 9600" },
        { "[Log]\nLevel=loud\n", "[Log] Level=loud: must be one of: emerg" },
        { "[Log]\nTarget=syslog\n", "[Log] Target=syslog: must be one of: auto, journal, console" },
        /* strings and paths */
        { "[Gateway]\nDeviceId=a/b\n", "[Gateway] DeviceId=a/b: may contain only letters" },
        { "[Gateway]\nDeviceId=a+#\n", "DeviceId=a+#: may contain only" },
        { "[Cloud]\nHost=-bad\n", "[Cloud] Host=-bad: not a valid host name" },
        { "[Cloud]\nHost=has space\n", "Host=has space: not a valid host name" },
        { "[Bluetooth]\nAdapter=wlan0\n", "[Bluetooth] Adapter=wlan0: must be an adapter name such as hci0" },
        { "[Modem]\nPort=ttyACM0\n", "[Modem] Port=ttyACM0: must be an absolute path" },
        { "[Gateway]\nStateDirectory=var/lib\n", "StateDirectory=var/lib: must be an absolute path" },
        { "[Cloud]\nCAFile=/nonexistent/ca.pem\n", "[Cloud] CAFile=/nonexistent/ca.pem: cannot access file: No such file" },
        { "[Cloud]\nCAFile=/\n", "[Cloud] CAFile=/: not a regular file" },
        /* unknown keys and sections, with suggestions */
        { "[Cloud]\nKeepAlive=60\n", "t.conf:2: [Cloud] KeepAlive=60: unknown key; did you mean KeepAliveSec=?" },
        { "[Cloud]\nkeepalivesec=60\n", "unknown key; did you mean KeepAliveSec=?" },
        { "[Cloud]\nHots=x\n", "[Cloud] Hots=x: unknown key; did you mean Host=?" },
        { "[Cloud]\nCompletelyDifferent=1\n", "[Cloud] CompletelyDifferent=1: unknown key\n" },
        { "[Clod]\nHost=x\n", "t.conf:1: [Clod]: unknown section; did you mean [Cloud]?" },
        { "[Whatever]\n", "t.conf:1: [Whatever]: unknown section\n" },
        { "Host=x\n", "t.conf:1: Host=x: assignment outside of any section" },
        /* syntax */
        { "[Cloud]\nnoequals\n", "t.conf:2: noequals: expected Key=Value" },
        { "[Cloud]\nHost: x\n", "t.conf:2: Host: x: expected Key=Value" },
        { "[Cloud]\n=value\n", "t.conf:2: assignment without a key name" },
        { "[Cloud\nHost=x\n", "t.conf:1: [Cloud: malformed section header" },
        { "[]\n", "t.conf:1: []: malformed section header" },
        { "[Cloud] junk\n", "malformed section header" },
        /* cross-key rules */
        { "[Cloud]\nTLS=host\n", "t.conf:2: [Cloud] TLS=host: requires [Cloud] CAFile=" },
        { "[Cloud]\nReconnectMinSec=600\nReconnectMaxSec=60\n", "t.conf:2: [Cloud] ReconnectMinSec=600: must not exceed ReconnectMaxSec=60" },
};

static void test_invalid(void **state) {
        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(invalid_cases); i++) {
                _cleanup_free_ char *errors = NULL, *d = NULL;
                int r = parse(invalid_cases[i].text, strlen(invalid_cases[i].text), &errors, &d);
                if (r != -EINVAL)
                        fail_msg("case %zu (%s): expected -EINVAL, got %d", i, invalid_cases[i].text, r);
                if (!strstr(errors, invalid_cases[i].expect))
                        fail_msg("case %zu: expected '%s' in:\n%s", i, invalid_cases[i].expect, errors);
        }
}

static void test_every_error_reported(void **state) {
        const char *text = "[Cloud]\nKeepAliveSec=5\nPort=0\n[Nope]\nX=1\n[Log]\nLevel=x\n";
        _cleanup_free_ char *errors = NULL, *d = NULL;
        (void) state;
        assert_int_equal(parse(text, strlen(text), &errors, &d), -EINVAL);
        assert_non_null(strstr(errors, "t.conf:2:"));
        assert_non_null(strstr(errors, "t.conf:3:"));
        assert_non_null(strstr(errors, "t.conf:4:"));
        assert_null(strstr(errors, "t.conf:5:")); /* keys of an unknown section are not reported again */
        assert_non_null(strstr(errors, "t.conf:7:"));
}

static void test_nul_and_long_lines(void **state) {
        _cleanup_free_ char *errors = NULL, *d = NULL, *errors2 = NULL, *d2 = NULL, *errors3 = NULL, *d3 = NULL;
        char longline[400];
        (void) state;

        static const char with_nul[] = "[Cloud]\nHost=a\0b\nPort=1\n";
        assert_int_equal(parse(with_nul, sizeof with_nul - 1, &errors, &d), -EINVAL);
        assert_non_null(strstr(errors, "t.conf:2: line contains a NUL byte"));
        assert_non_null(strstr(d, "Port=1\n")); /* the next line was still read */

        /* libinih would truncate this silently; we refuse it with its line number */
        snprintf(longline, sizeof longline, "[Gateway]\nStateDirectory=/%0300d\nStopTimeoutSec=7\n", 0);
        assert_int_equal(parse(longline, strlen(longline), &errors2, &d2), -EINVAL);
        assert_non_null(strstr(errors2, "t.conf:2: line is longer than 198 characters"));
        assert_non_null(strstr(d2, "StopTimeoutSec=7\n"));

        /* exactly at the limit is fine */
        char ok[300];
        int n = snprintf(ok, sizeof ok, "[Gateway]\nStateDirectory=/");
        memset(ok + n, 'a', 198 - strlen("StateDirectory=/"));
        ok[n + 198 - strlen("StateDirectory=/")] = '\n';
        ok[n + 199 - strlen("StateDirectory=/")] = '\0';
        assert_int_equal(parse(ok, strlen(ok), &errors3, &d3), 0);
}

static void test_error_cap(void **state) {
        /* A huge file full of junk yields a bounded list of errors. */
        size_t len = 20000 * 6;
        char *text = malloc(len + 1);
        _cleanup_free_ char *errors = NULL, *d = NULL;
        (void) state;
        for (size_t i = 0; i < 20000; i++)
                memcpy(text + i * 6, "junk!\n", 6);
        text[len] = '\0';
        assert_int_equal(parse(text, len, &errors, &d), -EINVAL);
        size_t lines = 0;
        for (char *p = errors; *p; p++)
                lines += *p == '\n';
        assert_int_equal(lines, 50);
        assert_non_null(strstr(errors, "too many errors"));
        free(text);
}

static void test_huge_valid_file(void **state) {
        /* 900 KiB of comments and a key at the very end: accepted, line counted right. */
        size_t n = 900 * 1024 / 10, len = 0;
        char *text = malloc(n * 10 + 64);
        _cleanup_free_ char *errors = NULL, *d = NULL;
        (void) state;
        for (size_t i = 0; i < n; i++, len += 10)
                memcpy(text + len, "# comment\n", 10);
        len += (size_t) sprintf(text + len, "[Cloud]\nKeepAliveSec=3\n");
        assert_int_equal(parse(text, len, &errors, &d), -EINVAL);
        char expect[64];
        snprintf(expect, sizeof expect, "t.conf:%zu: [Cloud] KeepAliveSec=3", n + 2);
        assert_non_null(strstr(errors, expect));
        free(text);
}

static void test_load_dropins(void **state) {
        char path[128], dir[160], p[512];
        _cleanup_(config_freep) Config *c = NULL;
        char **errors = NULL;
        (void) state;

        snprintf(path, sizeof path, "%s/gateway.conf", tmpdir);
        snprintf(dir, sizeof dir, "%s.d", path);
        write_text(path, "[Cloud]\nKeepAliveSec=60\nPort=1000\n[Log]\nLevel=notice\n");
        assert_int_equal(mkdir(dir, 0755), 0);
        snprintf(p, sizeof p, "%s/20-b.conf", dir);
        write_text(p, "[Cloud]\nKeepAliveSec=90\n");
        snprintf(p, sizeof p, "%s/10-a.conf", dir);
        write_text(p, "[Cloud]\nKeepAliveSec=70\nPort=2000\n");
        snprintf(p, sizeof p, "%s/30-c.conf.disabled", dir);
        write_text(p, "[Cloud]\nKeepAliveSec=5\n");
        snprintf(p, sizeof p, "%s/README", dir);
        write_text(p, "not a config\n");

        assert_int_equal(config_load(path, true, &c, &errors), 0);
        assert_null(errors);
        assert_int_equal(c->keepalive_sec, 90); /* 20-b after 10-a after the main file */
        assert_int_equal(c->cloud_port, 2000);
        assert_int_equal(c->log_level, LOG_NOTICE);

        /* --check-config shows where each value came from */
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        config_dump(c, f, true);
        fclose(f);
        snprintf(p, sizeof p, "KeepAliveSec=90 ; %s/20-b.conf:2\n", dir);
        assert_non_null(strstr(buf, p));
        snprintf(p, sizeof p, "Level=notice ; %s:5\n", path);
        assert_non_null(strstr(buf, p));
        assert_non_null(strstr(buf, "TLS=modem ; default\n"));
        free(buf);

        /* A broken drop-in names itself. */
        snprintf(p, sizeof p, "%s/15-bad.conf", dir);
        write_text(p, "[Log]\nLevel=chatty\n");
        config_free(c);
        c = NULL;
        assert_int_equal(config_load(path, true, &c, &errors), -EINVAL);
        assert_null(c);
        snprintf(p, sizeof p, "%s/15-bad.conf:2: [Log] Level=chatty", dir);
        assert_non_null(errors);
        assert_non_null(strstr(errors[0], p));
        errors = strv_free(errors);
}

static void test_load_missing_and_big(void **state) {
        _cleanup_(config_freep) Config *c = NULL;
        char **errors = NULL;
        char path[256];
        (void) state;

        /* The default path may be absent: built-in defaults apply. */
        assert_int_equal(config_load("/nonexistent/gateway.conf", false, &c, &errors), 0);
        assert_int_equal(c->keepalive_sec, 1200);
        c = config_free(c);
        /* An explicit path must exist. */
        assert_int_equal(config_load("/nonexistent/gateway.conf", true, &c, &errors), -EINVAL);
        assert_string_equal(errors[0], "/nonexistent/gateway.conf: No such file or directory");
        errors = strv_free(errors);

        snprintf(path, sizeof path, "%s/big.conf", tmpdir);
        size_t len = CONFIG_FILE_MAX + 1;
        char *text = malloc(len);
        memset(text, '#', len);
        write_file(path, text, len);
        free(text);
        assert_int_equal(config_load(path, true, &c, &errors), -EINVAL);
        assert_non_null(strstr(errors[0], "file is larger than 1 MiB"));
        errors = strv_free(errors);

        /* A directory is not a configuration file. */
        assert_int_equal(config_load(tmpdir, true, &c, &errors), -EINVAL);
        errors = strv_free(errors);
}

static void test_key_file_permissions(void **state) {
        char key[128], text[700];
        _cleanup_free_ char *errors = NULL, *d = NULL, *errors2 = NULL, *d2 = NULL;
        (void) state;

        snprintf(key, sizeof key, "%s/key.pem", tmpdir);
        write_text(key, "secret\n");
        assert_int_equal(chmod(key, 0644), 0);
        snprintf(text, sizeof text, "[Cloud]\nTLS=host\nCAFile=%s\nCertFile=%s\nKeyFile=%s\n", key, key, key);
        assert_int_equal(parse(text, strlen(text), &errors, &d), -EINVAL);
        assert_non_null(strstr(errors, "t.conf:5: [Cloud] KeyFile="));
        assert_non_null(strstr(errors, "private key is accessible by group or others (mode 0644)"));

        assert_int_equal(chmod(key, 0600), 0);
        assert_int_equal(parse(text, strlen(text), &errors2, &d2), 0);
}

typedef struct DiffSeen {
        unsigned live, restart;
        char keys[256];
} DiffSeen;

static void on_diff(const char *section, const char *key, const char *old_value, const char *new_value,
                    ConfigReload reload, void *userdata) {
        DiffSeen *s = userdata;
        (void) old_value;
        (void) new_value;
        if (reload == CONFIG_RELOAD_LIVE)
                s->live++;
        else
                s->restart++;
        snprintf(s->keys + strlen(s->keys), sizeof s->keys - strlen(s->keys), "%s.%s ", section, key);
}

static void test_diff_and_live_copy(void **state) {
        _cleanup_(config_freep) Config *a = NULL, *b = NULL;
        DiffSeen seen = {};
        char **errors = NULL;
        const char *text = "[Log]\nLevel=debug\n[Cloud]\nHost=other.example\n[Buffer]\nMaxMessages=500\n";
        (void) state;

        assert_int_equal(config_new(&a), 0);
        assert_int_equal(config_new(&b), 0);
        assert_int_equal(config_parse_string(b, "new.conf", text, strlen(text), &errors), 0);
        assert_int_equal(config_diff(a, b, on_diff, &seen), 3);
        assert_int_equal(seen.live, 2);
        assert_int_equal(seen.restart, 1);
        assert_string_equal(seen.keys, "Cloud.Host Buffer.MaxMessages Log.Level ");

        assert_int_equal(config_copy_live(a, b), 0);
        assert_int_equal(a->log_level, LOG_DEBUG);
        assert_int_equal(a->buffer_max_messages, 500);
        assert_string_equal(a->cloud_host, "mqtt.nrfcloud.com"); /* needs a restart */
        assert_int_equal(config_diff(a, b, NULL, NULL), 1);
}

static int setup(void **state) {
        (void) state;
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
        char cmd[300];
        (void) state;
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_valid),
                cmocka_unit_test(test_invalid),
                cmocka_unit_test(test_every_error_reported),
                cmocka_unit_test(test_nul_and_long_lines),
                cmocka_unit_test(test_error_cap),
                cmocka_unit_test(test_huge_valid_file),
                cmocka_unit_test(test_load_dropins),
                cmocka_unit_test(test_load_missing_and_big),
                cmocka_unit_test(test_key_file_permissions),
                cmocka_unit_test(test_diff_and_live_copy),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
