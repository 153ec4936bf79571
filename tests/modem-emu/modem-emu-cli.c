/* SPDX-License-Identifier: MIT */
/*
 * modem-emu-cli: drives the emulated modem from stdin, for tests and for
 * trying it by hand.
 *
 *   modem-emu-cli --state-dir DIR [--uuid UUID] [--imei IMEI]
 *
 * Input is assembled the way the firmware does it: a command ends at CR or
 * LF outside double quotes, so "%CMNG" writes can carry multi-line PEM.
 * Each command's response is written to stdout exactly as the modem made
 * it; URCs (modem_emu_tick() runs before every command) appear as
 * "\r\n<urc>\r\n".  Lines starting with '!' are driver commands:
 *   !sleep <ms>        tick for that long (URCs appear)
 *   !reboot            modem_emu_reboot()
 *   !fwver <version>   modem_emu_set_firmware_version()
 *   !cred <tag> <type> print modem_emu_credential() between "<<<" and ">>>" lines
 *   !state             print "uuid=... cfun=... ready=..."
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "modem-emu.h"

#define CMD_MAX 8192

static uint64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static void on_urc(const char *line, void *userdata) {
        (void) userdata;
        printf("\r\n%s\r\n", line);
        fflush(stdout);
}

static void driver_command(ModemEmu *m, const char *line) {
        if (strncmp(line, "!sleep ", 7) == 0) {
                uint64_t end = now_ms() + strtoull(line + 7, NULL, 10);
                while (now_ms() < end) {
                        modem_emu_tick(m, now_ms());
                        usleep(10000);
                }
                modem_emu_tick(m, now_ms());
        } else if (strcmp(line, "!reboot") == 0)
                modem_emu_reboot(m);
        else if (strncmp(line, "!fwver ", 7) == 0) {
                int r = modem_emu_set_firmware_version(m, line + 7);
                printf("!fwver %d\n", r);
        } else if (strncmp(line, "!cred ", 6) == 0) {
                unsigned long tag = 0;
                int type = 0;
                const char *c;
                if (sscanf(line + 6, "%lu %d", &tag, &type) != 2)
                        return;
                c = modem_emu_credential(m, (uint32_t) tag, type);
                printf("<<<\n%s>>>\n", c ? c : "");
        } else if (strcmp(line, "!state") == 0)
                printf("uuid=%s cfun=%d ready=%d\n", modem_emu_device_uuid(m), modem_emu_cfun(m),
                       modem_emu_network_ready(m));
        else
                printf("!unknown\n");
        fflush(stdout);
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "state-dir", required_argument, NULL, 's' },
                { "uuid", required_argument, NULL, 'u' },
                { "imei", required_argument, NULL, 'i' },
                {},
        };
        const char *state_dir = NULL, *uuid = NULL, *imei = NULL;
        ModemEmu *m = NULL;
        static char cmd[CMD_MAX], out[65536];
        size_t len = 0;
        bool quoted = false, overflow = false;
        int ch, r;

        while ((ch = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                switch (ch) {
                case 's':
                        state_dir = optarg;
                        break;
                case 'u':
                        uuid = optarg;
                        break;
                case 'i':
                        imei = optarg;
                        break;
                default:
                        return 2;
                }
        }
        if (!state_dir) {
                fprintf(stderr, "usage: %s --state-dir DIR [--uuid UUID] [--imei IMEI]\n", argv[0]);
                return 2;
        }
        r = modem_emu_new(state_dir, uuid, imei, &m);
        if (r < 0) {
                fprintf(stderr, "modem_emu_new: %s\n", strerror(-r));
                return 1;
        }
        modem_emu_set_urc_callback(m, on_urc, NULL);

        while ((ch = getchar()) != EOF) {
                if ((ch == '\r' || ch == '\n') && !quoted) {
                        if (len == 0)
                                continue;
                        modem_emu_tick(m, now_ms());
                        if (overflow)
                                printf("\r\nERROR\r\n");
                        else if (cmd[0] == '!') {
                                cmd[len] = 0;
                                driver_command(m, cmd);
                        } else {
                                ssize_t n = modem_emu_execute(m, cmd, len, out, sizeof out);
                                if (n < 0)
                                        printf("\r\n!execute %zd\r\n", n);
                                else
                                        fwrite(out, 1, (size_t) n, stdout);
                        }
                        fflush(stdout);
                        modem_emu_tick(m, now_ms());
                        len = 0;
                        quoted = overflow = false;
                        continue;
                }
                if (ch == '"')
                        quoted = !quoted;
                if (len + 1 >= sizeof cmd)
                        overflow = true;
                else
                        cmd[len++] = (char) ch;
        }
        modem_emu_free(m);
        return 0;
}
