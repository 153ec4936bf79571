/* SPDX-License-Identifier: MIT */
/*
 * Configuration loading from files and reload, as gateway_reload() does it:
 * the input is a main file, an optional drop-in (after a line "%%drop-in")
 * and the file of the reload (after a line "%%reload").  Both are written to
 * a temporary directory and loaded with config_load(); then the two are
 * compared and the live keys copied, and the result must verify and print.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/fuzz-config-reload-XXXXXX";
static char main_path[sizeof dir + 32], dropin_dir[sizeof dir + 32], dropin_path[sizeof dir + 48];

static void cleanup(void) {
        (void) unlink(dropin_path);
        (void) rmdir(dropin_dir);
        (void) unlink(main_path);
        (void) rmdir(dir);
}

static int write_file(const char *path, const uint8_t *data, size_t len) {
        FILE *f = fopen(path, "wb");
        int r = 0;

        if (!f)
                return -errno;
        if (len > 0 && fwrite(data, 1, len, f) != len)
                r = -EIO;
        if (fclose(f) != 0 && r == 0)
                r = -EIO;
        return r;
}

/* The part of [*data, end) up to the line "marker", which is skipped. */
static size_t take_part(const uint8_t **data, const uint8_t *end, const char *marker, const uint8_t **ret_part) {
        size_t m = strlen(marker), n = (size_t) (end - *data);
        const uint8_t *p = *data;

        *ret_part = p;
        for (size_t i = 0; i + m <= n; i++)
                if ((i == 0 || p[i - 1] == '\n') && memcmp(p + i, marker, m) == 0) {
                        *data = p + i + m;
                        return i;
                }
        *data = end;
        return n;
}

static void on_change(const char *section, const char *key, const char *old_value, const char *new_value,
                      ConfigReload reload, void *userdata) {
        (void) old_value, (void) new_value, (void) userdata;
        if (!section || !key || reload < 0 || reload >= _CONFIG_RELOAD_MAX)
                abort();
}

static void on_change_after_copy(const char *section, const char *key, const char *old_value,
                                 const char *new_value, ConfigReload reload, void *userdata) {
        on_change(section, key, old_value, new_value, reload, userdata);
        if (reload == CONFIG_RELOAD_LIVE)
                abort();
}

static Config *load(void) {
        Config *c = NULL;
        char **errors = NULL;

        if (config_load(main_path, true, &c, &errors) >= 0)
                (void) config_verify(c, &errors);
        strv_free(errors);
        return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static bool ready = false;
        const uint8_t *end = data + size, *part;
        _cleanup_(config_freep) Config *running = NULL, *loaded = NULL;
        size_t n;
        FILE *f;

        if (size > 2 * CONFIG_FILE_MAX)
                return 0;
        if (!ready) {
                if (!mkdtemp(dir))
                        abort();
                snprintf(main_path, sizeof main_path, "%s/gw.conf", dir);
                snprintf(dropin_dir, sizeof dropin_dir, "%s/gw.conf.d", dir);
                snprintf(dropin_path, sizeof dropin_path, "%s/10-fuzz.conf", dropin_dir);
                atexit(cleanup);
                ready = true;
        }
        (void) unlink(dropin_path);
        (void) rmdir(dropin_dir);

        n = take_part(&data, end, "%%drop-in\n", &part);
        if (write_file(main_path, part, n) < 0)
                return 0;
        running = load();
        if (data < end) {
                const uint8_t *next = data;
                n = take_part(&next, end, "%%reload\n", &part);
                if (mkdir(dropin_dir, 0700) < 0 || write_file(dropin_path, part, n) < 0)
                        return 0;
                /* The main file replaced as well: the drop-in stays. */
                if (next < end && write_file(main_path, next, (size_t) (end - next)) < 0)
                        return 0;
        }
        /* The reload reads everything again, changed or not. */
        loaded = load();
        if (!running || !loaded)
                return 0;
        (void) config_diff(running, loaded, on_change, NULL);
        if (config_copy_live(running, loaded) < 0)
                return 0;
        /* Keys a reload may change were copied: no live key differs any more. */
        (void) config_diff(running, loaded, on_change_after_copy, NULL);
        f = fopen("/dev/null", "w");
        if (f) {
                config_dump(running, f, true);
                fclose(f);
        }
        return 0;
}
