/* SPDX-License-Identifier: MIT */
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <sysexits.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "gateway.h"
#include "log.h"
#include "memory-trim.h"
#include "util.h"
#include "version.h"

static const char *arg_config = CONFIG_DEFAULT_PATH;
static bool arg_config_given = false;
static bool arg_check_config = false;
static int arg_log_level = -1;

/*
 * One malloc arena for every thread.  glibc gives each thread that allocates
 * while another holds the main arena an arena of its own (up to 8 per core):
 * Paho's threads, which build the TLS context, and so on.  Each keeps its own
 * free memory and fragments on its own; the threads allocate little and
 * rarely, so sharing the main arena costs no measurable time and saves
 * 50 KiB of private memory connected with one device, 140 KiB with 100
 * (docs/performance.md, "Memory of the daemon").  GLIBC_TUNABLES=
 * glibc.malloc.arena_max=N still decides when given.
 */
static void malloc_setup(void) {
        const char *t = getenv("GLIBC_TUNABLES");

        if (!t || !strstr(t, "glibc.malloc.arena_max"))
                (void) mallopt(M_ARENA_MAX, 1);
}

static void help(void) {
        printf("%s [OPTIONS...] [CONFIG-FILE]\n\n"
               "Bridges Bluetooth LE devices to nRF Cloud, with the gateway's identity in an nRF91.\n\n"
               "  -h --help               Show this help\n"
               "  -V --version            Show the version\n"
               "  -c --config=PATH        Configuration file, followed by its PATH.d/*.conf\n"
               "                          drop-ins (default: %s)\n"
               "     --check-config       Validate the configuration, print the effective\n"
               "                          settings and exit (0 valid, 78 invalid)\n"
               "  -l --log-level=LEVEL    err, warning, notice, info or debug;\n"
               "                          overrides [Log] Level=\n\n"
               "See nrfcloud-gatewayd(8) and nrfcloud-gateway.conf(5).\n",
               program_invocation_short_name, CONFIG_DEFAULT_PATH);
}

/* Returns 1 to go on, 0 to exit successfully, negative EX_* code to fail. */
static int parse_argv(int argc, char *argv[]) {
        enum { ARG_CHECK_CONFIG = 0x100 };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                { "config", required_argument, NULL, 'c' },
                { "check-config", no_argument, NULL, ARG_CHECK_CONFIG },
                { "log-level", required_argument, NULL, 'l' },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "hVc:l:", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case 'V':
                        printf("%s %s\n", program_invocation_short_name, NRFGW_VERSION);
                        return 0;
                case 'c':
                        arg_config = optarg;
                        arg_config_given = true;
                        break;
                case ARG_CHECK_CONFIG:
                        arg_check_config = true;
                        break;
                case 'l':
                        arg_log_level = log_level_from_string(optarg);
                        if (arg_log_level < 0) {
                                log_error("Invalid --log-level=%s: must be err, warning, notice, info or debug", optarg);
                                return -EX_USAGE;
                        }
                        break;
                case '?':
                        return -EX_USAGE;
                default:
                        return -EX_SOFTWARE;
                }

        if (optind < argc) {
                if (arg_config_given || argc - optind > 1) {
                        log_error("Too many arguments; give the configuration file once. See --help.");
                        return -EX_USAGE;
                }
                arg_config = argv[optind];
                arg_config_given = true;
        }
        return 1;
}

int main(int argc, char *argv[]) {
        _cleanup_(gateway_freep) Gateway *g = NULL;
        _cleanup_(config_freep) Config *config = NULL;
        sd_event *event = NULL;
        char **errors = NULL;
        int r;

        malloc_setup();
        log_setup(LOG_TARGET_AUTO);
        r = parse_argv(argc, argv);
        if (r <= 0)
                return -r;
        if (arg_log_level >= 0)
                log_set_max_level(arg_log_level);

        r = config_load(arg_config, arg_config_given, &config, &errors);
        if (r >= 0)
                r = config_apply_environment(config);
        if (r < 0) {
                for (char **e = errors; e && *e; e++)
                        log_error("%s", *e);
                strv_free(errors);
                if (r != -EINVAL)
                        log_error_errno(r, "Failed to load the configuration: %m");
                return EX_CONFIG;
        }
        strv_free(errors);

        if (arg_check_config) {
                printf("# Effective configuration: %s%s\n", arg_config,
                       access(arg_config, F_OK) < 0 ? " (absent, built-in defaults)" : "");
                config_dump(config, stdout, true);
                return EXIT_SUCCESS;
        }

        gateway_apply_log_settings(config, arg_log_level);

        r = sd_event_default(&event);
        if (r < 0) {
                log_error_errno(r, "Failed to allocate the event loop: %m");
                return EXIT_FAILURE;
        }

        r = gateway_new(event, TAKE_PTR(config), arg_config, arg_config_given, arg_log_level, &g);
        if (r < 0) {
                log_error_errno(r, "Failed to set up the gateway: %m");
                sd_event_unref(event);
                return EXIT_FAILURE;
        }

        r = gateway_start(g);
        if (r >= 0)
                r = sd_event_loop(event);
        if (r < 0)
                log_error_errno(r, "Event loop failed: %m");

        g = gateway_free(g);
        memory_trim_release();
        sd_event_unref(event);
        log_reset_global_fields();
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
