/* SPDX-License-Identifier: MIT */
/*
 * nrf91-sim: the nRF91 firmware (firmware_nrf91/src) on a Linux host port,
 * with an emulated modem behind it.  See firmware_nrf91/README.md and
 * doc/at-commands.md.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "sim.h"
#include "util.h"

static void help(void) {
        printf("Usage: nrf91-sim [OPTIONS]\n"
               "\n"
               "The nRF91 firmware's AT command server (spec modem-link.md) on a pseudo-terminal,\n"
               "over an emulated nRF91 modem.\n"
               "\n"
               "  --pty-link PATH      make PATH a symlink to the pty's slave side (open it with\n"
               "                       picocom, socat or the daemon)\n"
               "  --stdio              serve the AT link on stdin/stdout instead of a pty\n"
               "  --state-dir DIR      credentials, identity and FOTA state (default ./nrf91-sim.state)\n"
               "  --uuid UUID          device UUID (default: generated once, kept in DIR)\n"
               "  --imei IMEI          15-digit IMEI (default: generated once, kept in DIR)\n"
               "  --control PATH       fault-injection control socket (default DIR/control)\n"
               "  --fault-delay MS     hold every response MS milliseconds\n"
               "  --fault-drop N       lose the responses of the first N commands\n"
               "  --app-version VER    application version before any FOTA (default 1.0.0)\n"
               "  --external-flash     the device has external flash: full modem images can be\n"
               "                       applied (#XFOTA op 3)\n"
               "  -v, --verbose        log the AT traffic\n"
               "  -h, --help           this text\n"
               "      --version        the version\n"
               "\n"
               "Control socket: one command a line, answered OK or ERROR:\n"
               "  delay <ms> | drop <n> | reboot | vanish [<ms>] | appear | status\n"
               "  fota-mute [<ms>] | fota-write-error <byte>\n");
}

int main(int argc, char *argv[]) {
        enum {
                ARG_PTY_LINK = 0x100,
                ARG_STDIO,
                ARG_STATE_DIR,
                ARG_UUID,
                ARG_IMEI,
                ARG_CONTROL,
                ARG_FAULT_DELAY,
                ARG_FAULT_DROP,
                ARG_APP_VERSION,
                ARG_EXTERNAL_FLASH,
                ARG_VERSION,
        };
        static const struct option options[] = {
                { "pty-link", required_argument, NULL, ARG_PTY_LINK },
                { "stdio", no_argument, NULL, ARG_STDIO },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "uuid", required_argument, NULL, ARG_UUID },
                { "imei", required_argument, NULL, ARG_IMEI },
                { "control", required_argument, NULL, ARG_CONTROL },
                { "fault-delay", required_argument, NULL, ARG_FAULT_DELAY },
                { "fault-drop", required_argument, NULL, ARG_FAULT_DROP },
                { "app-version", required_argument, NULL, ARG_APP_VERSION },
                { "external-flash", no_argument, NULL, ARG_EXTERNAL_FLASH },
                { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        SimOptions opt = { .state_dir = "nrf91-sim.state", .app_version = "1.0.0" };
        _cleanup_(sim_freep) Sim *s = NULL;
        uint64_t v;
        int c, r;

        log_setup(LOG_TARGET_AUTO);
        log_set_max_level(LOG_INFO);
        while ((c = getopt_long(argc, argv, "vh", options, NULL)) >= 0) {
                switch (c) {
                case ARG_PTY_LINK:
                        opt.pty_link = optarg;
                        break;
                case ARG_STDIO:
                        opt.stdio = true;
                        break;
                case ARG_STATE_DIR:
                        opt.state_dir = optarg;
                        break;
                case ARG_UUID:
                        opt.uuid = optarg;
                        break;
                case ARG_IMEI:
                        opt.imei = optarg;
                        break;
                case ARG_CONTROL:
                        opt.control = optarg;
                        break;
                case ARG_FAULT_DELAY:
                case ARG_FAULT_DROP:
                        if (parse_uint64(optarg, &v) < 0 || v > 3600000) {
                                log_error("Invalid number for --%s: %s",
                                          c == ARG_FAULT_DELAY ? "fault-delay" : "fault-drop", optarg);
                                return 2;
                        }
                        if (c == ARG_FAULT_DELAY)
                                opt.delay_ms = (unsigned) v;
                        else
                                opt.drop = (unsigned) v;
                        break;
                case ARG_APP_VERSION:
                        if (strlen(optarg) == 0 || strlen(optarg) >= NRF91_VERSION_MAX) {
                                log_error("Invalid --app-version: %s", optarg);
                                return 2;
                        }
                        opt.app_version = optarg;
                        break;
                case ARG_EXTERNAL_FLASH:
                        opt.external_flash = true;
                        break;
                case 'v':
                        log_set_max_level(LOG_DEBUG);
                        break;
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("nrf91-sim %s\n", NRF91_SIM_VERSION);
                        return 0;
                default:
                        return 2;
                }
        }
        if (optind < argc) {
                log_error("Unexpected argument: %s (see --help)", argv[optind]);
                return 2;
        }
        if (opt.stdio && opt.pty_link) {
                log_error("--stdio and --pty-link exclude each other");
                return 2;
        }

        r = sim_new(&opt, &s);
        if (r < 0)
                return 1;
        r = sim_run(s);
        return r < 0 ? 1 : 0;
}
