/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the emulated modem's command handling: the input is split at LF
 * into commands, each executed by one long-lived modem (state in a temporary
 * directory, no fsync), whose responses must always be well framed.  The
 * parser it splits commands with has its own fuzzer (fuzz-at-args).
 */
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modem-emu.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void modem_emu_set_sync(ModemEmu *m, bool sync);

static ModemEmu *modem;
static char state_dir[64];
static uint64_t now;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st;
        (void) flag;
        (void) ftw;
        return remove(path);
}

static void cleanup(void) {
        modem = modem_emu_free(modem);
        if (state_dir[0])
                nftw(state_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void on_urc(const char *line, void *userdata) {
        (void) userdata;
        if (!line || strchr(line, '\r') || strchr(line, '\n'))
                abort();
}

static bool ends_with(const char *out, size_t n, const char *suffix) {
        size_t k = strlen(suffix);
        return n >= k && memcmp(out + n - k, suffix, k) == 0;
}

/* Framed "\r\n...\r\n" and ending in exactly one final result. */
static void check_response(const char *out, size_t n) {
        if (n < 6 || out[0] != '\r' || out[1] != '\n')
                abort();
        if (ends_with(out, n, "\r\nOK\r\n") || ends_with(out, n, "\r\nERROR\r\n"))
                return;
        /* "\r\n+CME ERROR: <n>\r\n" is only ever the whole response */
        static const char cme[] = "\r\n+CME ERROR: ";
        size_t k = sizeof cme - 1;
        if (n > k + 2 && memcmp(out, cme, k) == 0 && ends_with(out, n, "\r\n")) {
                for (size_t i = k; i < n - 2; i++)
                        if (out[i] < '0' || out[i] > '9')
                                abort();
                return;
        }
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static char out[65536];
        const char *p = (const char *) data, *end = p + size;

        if (size > 8192)
                return 0;
        if (!modem) {
                snprintf(state_dir, sizeof state_dir, "/tmp/fuzz-modem-emu-XXXXXX");
                if (!mkdtemp(state_dir) || modem_emu_new(state_dir, NULL, NULL, &modem) < 0)
                        abort();
                modem_emu_set_sync(modem, false);
                modem_emu_set_urc_callback(modem, on_urc, NULL);
                atexit(cleanup);
        }

        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t len = (size_t) ((nl ? nl : end) - p);
                ssize_t n;

                n = modem_emu_execute(modem, p, len, out, sizeof out);
                if (n < 0 && n != -ENOBUFS)
                        abort();
                if (n > 0)
                        check_response(out, (size_t) n);
                now += 700;
                modem_emu_tick(modem, now);
                p += len + (nl ? 1 : 0);
        }
        return 0;
}
