/* SPDX-License-Identifier: MIT */
/*
 * nrfcloud-gatewayctl: works directly on the nRF91's port, for an operator
 * at the gateway: show the identity, make an operator CA, provision the
 * modem's credentials, get a modem-signed JWT or an attestation token; and
 * list what the daemon's outbox holds, and show its FOTA job.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cose.h"
#include "ctl.h"
#include "identity.h"
#include "jwt.h"
#include "log.h"
#include "pki.h"
#include "serial.h"
#include "util.h"
#include "version.h"

/* Options, and which verbs take them. */
enum {
        OPT_PORT = 0x100,
        OPT_BAUD,
        OPT_CONFIG,
        OPT_HELP,
        OPT_VERSION,
        OPT_SHOW_PERSONAL,
        OPT_OUT_DIR,
        OPT_CN,
        OPT_DAYS,
        OPT_CA_CERT,
        OPT_CA_KEY,
        OPT_ROOT_CA,
        OPT_SEC_TAG,
        OPT_CSV,
        OPT_SUBTYPE,
        OPT_TAGS,
        OPT_FW_TYPES,
        OPT_FORCE,
        OPT_EXP,
        OPT_AUD,
        OPT_DECODE,
        OPT_CHALLENGE,
        OPT_DEBUG,
        OPT_STATE_DIR,
        OPT_JSON,
};

static const struct option options[] = {
        { "port", required_argument, NULL, OPT_PORT },
        { "baud", required_argument, NULL, OPT_BAUD },
        { "config", required_argument, NULL, OPT_CONFIG },
        { "help", no_argument, NULL, OPT_HELP },
        { "version", no_argument, NULL, OPT_VERSION },
        { "show-personal", no_argument, NULL, OPT_SHOW_PERSONAL },
        { "out-dir", required_argument, NULL, OPT_OUT_DIR },
        { "cn", required_argument, NULL, OPT_CN },
        { "days", required_argument, NULL, OPT_DAYS },
        { "ca-cert", required_argument, NULL, OPT_CA_CERT },
        { "ca-key", required_argument, NULL, OPT_CA_KEY },
        { "root-ca", required_argument, NULL, OPT_ROOT_CA },
        { "sec-tag", required_argument, NULL, OPT_SEC_TAG },
        { "csv", required_argument, NULL, OPT_CSV },
        { "subtype", required_argument, NULL, OPT_SUBTYPE },
        { "tags", required_argument, NULL, OPT_TAGS },
        { "fw-types", required_argument, NULL, OPT_FW_TYPES },
        { "force", no_argument, NULL, OPT_FORCE },
        { "exp", required_argument, NULL, OPT_EXP },
        { "aud", required_argument, NULL, OPT_AUD },
        { "decode", no_argument, NULL, OPT_DECODE },
        { "challenge", required_argument, NULL, OPT_CHALLENGE },
        { "debug", no_argument, NULL, OPT_DEBUG },
        { "state-dir", required_argument, NULL, OPT_STATE_DIR },
        { "json", no_argument, NULL, OPT_JSON },
        {}
};

Args ctl_args;

typedef struct Verb {
        const char *name;
        int (*run)(int argc, char *argv[], CtlOptions *o);
        const int *allowed; /* 0-terminated, beyond the common options */
        const char *usage;
} Verb;

static const int identity_opts[] = { OPT_SHOW_PERSONAL, OPT_SEC_TAG, OPT_JSON, 0 };
static const int ca_opts[] = { OPT_OUT_DIR, OPT_CN, OPT_DAYS, 0 };
static const int provision_opts[] = { OPT_CA_CERT, OPT_CA_KEY, OPT_ROOT_CA, OPT_SEC_TAG, OPT_DAYS, OPT_CSV,
                                      OPT_SUBTYPE, OPT_TAGS, OPT_FW_TYPES, OPT_FORCE, 0 };
static const int jwt_opts[] = { OPT_EXP, OPT_AUD, OPT_DECODE, OPT_SEC_TAG, 0 };
static const int attest_opts[] = { OPT_CHALLENGE, 0 };
static const int outbox_opts[] = { OPT_STATE_DIR, OPT_JSON, 0 };
static const int fota_opts[] = { OPT_STATE_DIR, OPT_JSON, 0 };
static const int json_opts[] = { OPT_JSON, 0 };

static const Verb verbs[] = {
        { "status", verb_status, json_opts,
          "status [--json]\n"
          "  What the running daemon says about itself: cloud, broker, modem, devices, outbox, FOTA." },
        { "devices", verb_devices, json_opts,
          "devices [--json]\n"
          "  The BLE devices the running daemon manages: state, RSSI, notifications, last error." },
        { "scan", verb_scan, json_opts,
          "scan [SECONDS] [--json]\n"
          "  Asks the running daemon to scan for BLE devices (1-60 s, default 5; root only)." },
        { "monitor", verb_monitor, json_opts,
          "monitor [--json]\n"
          "  Follows the running daemon's changes live, one line each, until Ctrl-C." },
        { "identity", verb_identity, identity_opts,
          "identity [--show-personal] [--sec-tag N] [--json]\n"
          "  Device id, IMEI, modem firmware, firmware version, and the credentials of the tag.\n"
          "  While the daemon runs it answers; otherwise the modem is asked directly." },
        { "ca", verb_ca, ca_opts,
          "ca create --out-dir DIR [--cn NAME] [--days N]\n"
          "  Makes an operator CA (EC P-256): DIR/ca.pem and DIR/ca-key.pem (mode 0600)." },
        { "provision", verb_provision, provision_opts,
          "provision --ca-cert F --ca-key F [--root-ca F] [--sec-tag N] [--days N] [--csv F]\n"
          "          [--subtype S] [--tags a|b] [--fw-types APP|MODEM] [--force]\n"
          "  Key generation in the modem, a device certificate from your CA, the credentials\n"
          "  written and checked, and a row of nRF Cloud's onboarding CSV." },
        { "jwt", verb_jwt, jwt_opts,
          "jwt [--exp SECONDS] [--aud S] [--decode] [--sec-tag N]\n"
          "  Prints a JWT signed by the modem with the client key of the tag." },
        { "attest", verb_attest, attest_opts,
          "attest [--challenge HEX32]\n"
          "  Prints the modem's attestation token and its decoded fields." },
        { "outbox", verb_outbox, outbox_opts,
          "outbox [--state-dir DIR] [--json]\n"
          "  Lists the messages waiting in the daemon's outbox (DIR/outbox, default: [Gateway]\n"
          "  StateDirectory=): count, bytes, and each message's topic and payload. Read only;\n"
          "  refused while nrfcloud-gatewayd holds the outbox." },
        { "fota", verb_fota, fota_opts,
          "fota [--state-dir DIR] [--json]\n"
          "  The current or last FOTA job of the gateway (DIR/fota/job): id, type, stage,\n"
          "  versions before, the report not yet acknowledged. Read only; works while the\n"
          "  daemon runs." },
};

static void help(FILE *f) {
        fprintf(f,
                "%s [OPTIONS] COMMAND [COMMAND OPTIONS]\n\n"
                "Works directly on the nRF91 modem port, or on the daemon's state directory;\n"
                "stop nrfcloud-gatewayd first.\n\n"
                "Commands:\n",
                program_invocation_short_name);
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                fprintf(f, "  %s\n", verbs[i].usage);
        fprintf(f,
                "\nOptions of every command:\n"
                "  -p --port=DEVICE      Modem port (default: [Modem] Port=)\n"
                "  -b --baud=RATE        Baud rate (default: [Modem] BaudRate=)\n"
                "  -c --config=PATH      Configuration file (default: %s)\n"
                "     --debug            Show the AT traffic\n"
                "  -h --help             Show this help\n"
                "     --version          Show the version\n\n"
                "See nrfcloud-gatewayctl(1) for details and exit codes.\n",
                CONFIG_DEFAULT_PATH);
}

static bool allowed(const Verb *v, int opt) {
        switch (opt) {
        case OPT_PORT:
        case OPT_BAUD:
        case OPT_CONFIG:
        case OPT_HELP:
        case OPT_VERSION:
        case OPT_DEBUG:
                return true;
        default:
                break;
        }
        for (const int *a = v->allowed; *a; a++)
                if (*a == opt)
                        return true;
        return false;
}

static int parse_unsigned(const char *name, const char *s, uint64_t max, unsigned *ret) {
        uint64_t v;
        if (parse_uint64(s, &v) < 0 || v > max) {
                fprintf(stderr, "Invalid --%s=%s: expected a number up to %llu\n", name, s, (unsigned long long) max);
                return -EINVAL;
        }
        *ret = (unsigned) v;
        return 0;
}

/*
 * identity and fota while the daemon runs (it holds the port and the state
 * directory): answered by the daemon over D-Bus.  -1: run the verb itself.
 */
static int ctl_dispatch_to_daemon(const char *verb, bool port_given, const CtlOptions *o) {
        if (streq(verb, "identity")) {
                if (!port_given && !ctl_args.sec_tag_set && ctl_daemon_running())
                        return ctl_bus_identity(o);
        }
        if (streq(verb, "fota") && !ctl_args.state_dir && !ctl_args.positional[0] && ctl_daemon_running())
                return ctl_bus_fota();
        return -1;
}

int main(int argc, char *argv[]) {
        CtlOptions o = { .config_path = CONFIG_DEFAULT_PATH };
        const Verb *verb = NULL;
        char **errors = NULL;
        const char *port = NULL;
        unsigned baud = 0;
        int c, r;

        log_setup(LOG_TARGET_CONSOLE);
        log_set_max_level(LOG_WARNING);

        if (argc < 2) {
                help(stderr);
                return CTL_EXIT_USAGE;
        }
        if (streq(argv[1], "-h") || streq(argv[1], "--help") || streq(argv[1], "help")) {
                help(stdout);
                return CTL_EXIT_OK;
        }
        if (streq(argv[1], "--version")) {
                printf("%s %s\n", program_invocation_short_name, NRFGW_VERSION);
                return CTL_EXIT_OK;
        }
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(argv[1], verbs[i].name))
                        verb = &verbs[i];
        if (!verb) {
                fprintf(stderr, "Unknown command '%s'. See --help.\n", argv[1]);
                return CTL_EXIT_USAGE;
        }

        ctl_args = (Args){ .days = PKI_DAYS_DEFAULT, .cn = PKI_CA_CN_DEFAULT, .fw_types = "APP|MODEM", .exp = 600 };
        optind = 1;
        while ((c = getopt_long(argc - 1, argv + 1, "p:b:c:h", options, NULL)) >= 0) {
                switch (c) {
                case 'p':
                        c = OPT_PORT;
                        break;
                case 'b':
                        c = OPT_BAUD;
                        break;
                case 'c':
                        c = OPT_CONFIG;
                        break;
                case 'h':
                        c = OPT_HELP;
                        break;
                case '?':
                        return CTL_EXIT_USAGE;
                default:
                        break;
                }
                if (!allowed(verb, c)) {
                        fprintf(stderr, "'%s' does not take %s. Usage:\n  %s\n", verb->name, argv[optind],
                                verb->usage);
                        return CTL_EXIT_USAGE;
                }
                switch (c) {
                case OPT_HELP:
                        printf("%s %s\n\n%s\n\n-p/--port, -b/--baud, -c/--config, --debug as for every command.\n",
                               program_invocation_short_name, verb->usage, "See nrfcloud-gatewayctl(1).");
                        return CTL_EXIT_OK;
                case OPT_VERSION:
                        printf("%s %s\n", program_invocation_short_name, NRFGW_VERSION);
                        return CTL_EXIT_OK;
                case OPT_PORT:
                        port = optarg;
                        break;
                case OPT_BAUD:
                        if (parse_unsigned("baud", optarg, 4000000, &baud) < 0)
                                return CTL_EXIT_USAGE;
                        if (!serial_baud_is_valid(baud)) {
                                fprintf(stderr, "Unsupported --baud=%s\n", optarg);
                                return CTL_EXIT_USAGE;
                        }
                        break;
                case OPT_CONFIG:
                        o.config_path = optarg;
                        o.config_given = true;
                        break;
                case OPT_DEBUG:
                        log_set_max_level(LOG_DEBUG);
                        break;
                case OPT_SHOW_PERSONAL:
                        ctl_args.show_personal = true;
                        break;
                case OPT_OUT_DIR:
                        ctl_args.out_dir = optarg;
                        break;
                case OPT_CN:
                        ctl_args.cn = optarg;
                        break;
                case OPT_DAYS:
                        if (parse_unsigned("days", optarg, 36500, &ctl_args.days) < 0 || ctl_args.days == 0)
                                return CTL_EXIT_USAGE;
                        break;
                case OPT_CA_CERT:
                        ctl_args.ca_cert = optarg;
                        break;
                case OPT_CA_KEY:
                        ctl_args.ca_key = optarg;
                        break;
                case OPT_ROOT_CA:
                        ctl_args.root_ca = optarg;
                        break;
                case OPT_SEC_TAG:
                        if (parse_unsigned("sec-tag", optarg, MODEM_SEC_TAG_MAX, &ctl_args.sec_tag) < 0)
                                return CTL_EXIT_USAGE;
                        ctl_args.sec_tag_set = true;
                        break;
                case OPT_CSV:
                        ctl_args.csv = optarg;
                        break;
                case OPT_SUBTYPE:
                        ctl_args.subtype = optarg;
                        break;
                case OPT_TAGS:
                        ctl_args.tags = optarg;
                        break;
                case OPT_FW_TYPES:
                        ctl_args.fw_types = optarg;
                        break;
                case OPT_FORCE:
                        ctl_args.force = true;
                        break;
                case OPT_EXP:
                        /* nrf_cloud caps modem JWTs at 7 days (nrf91-at.md §5.3). */
                        if (parse_unsigned("exp", optarg, 7 * 24 * 3600, &ctl_args.exp) < 0 || ctl_args.exp == 0)
                                return CTL_EXIT_USAGE;
                        break;
                case OPT_AUD:
                        ctl_args.aud = optarg;
                        break;
                case OPT_DECODE:
                        ctl_args.decode = true;
                        break;
                case OPT_CHALLENGE:
                        ctl_args.challenge = optarg;
                        break;
                case OPT_STATE_DIR:
                        ctl_args.state_dir = optarg;
                        break;
                case OPT_JSON:
                        ctl_args.json = true;
                        break;
                default:
                        return CTL_EXIT_USAGE;
                }
        }
        ctl_args.positional = argv + 1 + optind;

        r = config_load(o.config_path, o.config_given, &o.config, &errors);
        if (r < 0) {
                for (char **e = errors; e && *e; e++)
                        fprintf(stderr, "%s\n", *e);
                if (r != -EINVAL)
                        fprintf(stderr, "Cannot load %s: %s\n", o.config_path, strerror(-r));
                strv_free(errors);
                return CTL_EXIT_CONFIG;
        }
        strv_free(errors);
        if (port) {
                free(o.config->modem_port);
                o.config->modem_port = strdup(port);
                if (!o.config->modem_port)
                        return CTL_EXIT_FAILED;
        }
        if (baud)
                o.config->modem_baud_rate = baud;
        if (ctl_args.sec_tag_set)
                o.config->sec_tag = ctl_args.sec_tag;

        r = ctl_dispatch_to_daemon(verb->name, port != NULL, &o);
        if (r < 0)
                r = verb->run(argc, argv, &o);
        config_free(o.config);
        return r;
}

/* identity */

int verb_identity(int argc, char *argv[], CtlOptions *o) {
        static const CredType shown[] = { CRED_ROOT_CA, CRED_CLIENT_CERT, CRED_CLIENT_KEY };
        CtlSession s;
        AtReply r;
        char uuid[MODEM_UUID_STRING_MAX] = "", imei[MODEM_IMEI_STRING_MAX] = "", red[MODEM_IMEI_STRING_MAX];
        _cleanup_free_ char *mfw = NULL, *fw = NULL;
        CmngEntry entries[_CRED_TYPE_MAX] = {};
        bool present[_CRED_TYPE_MAX] = {};
        const char *line;
        int k;
        (void) argc;
        (void) argv;

        k = ctl_session_open(&s, o->config);
        if (k != CTL_EXIT_OK) {
                ctl_session_close(&s);
                return k;
        }
        k = ctl_read_uuid(&s, uuid);
        if (k < 0)
                fprintf(stderr, "Cannot read the device UUID (AT#XUUID): %s\n", strerror(-k));

        if (ctl_command(&s, CTL_COMMAND_TIMEOUT_USEC, &r, "AT+CGSN=1") >= 0 && (line = ctl_reply_find(&r, "+CGSN:")))
                (void) at_parse_cgsn(line, imei);
        at_reply_done(&r);
        if (ctl_command(&s, CTL_COMMAND_TIMEOUT_USEC, &r, "AT+CGMR") >= 0 && r.lines[0])
                (void) at_parse_cgmr(r.lines[0], &mfw);
        at_reply_done(&r);
        if (ctl_command(&s, CTL_COMMAND_TIMEOUT_USEC, &r, "AT#XSMVER") >= 0 && (line = ctl_reply_find(&r, "#XSMVER:")))
                (void) at_parse_smver(line, &fw, NULL);
        at_reply_done(&r);
        k = ctl_command(&s, CTL_COMMAND_TIMEOUT_USEC, &r, "AT%%CMNG=1,%u", o->config->sec_tag);
        if (k < 0)
                fprintf(stderr, "Cannot list security tag %u: %s\n", o->config->sec_tag, r.description);
        for (char **l = r.lines; l && *l; l++) {
                CmngEntry e;
                if (at_parse_cmng_list(*l, &e) >= 0 && e.sec_tag == o->config->sec_tag) {
                        entries[e.type] = e;
                        present[e.type] = true;
                }
        }
        at_reply_done(&r);
        ctl_session_close(&s);

        if (ctl_args.json) {
                json_t *j, *c = json_array();
                for (CredType t = 0; c && t < _CRED_TYPE_MAX; t++)
                        if (present[t])
                                json_array_append_new(
                                        c, json_sprintf("%s %s", entries[t].has_sha ? entries[t].sha256 : "-",
                                                        cred_type_to_string(t)));
                j = json_pack("{s:s,s:s,s:s?,s:s?,s:s?,s:I,s:o?,s:s}", "device_id",
                              o->config->device_id ?: uuid, "uuid", uuid,
                              "imei", imei[0] ? (ctl_args.show_personal ? imei : imei_redact(imei, red)) : NULL,
                              "modem_firmware", mfw, "firmware", fw, "sec_tag", (json_int_t) o->config->sec_tag,
                              "credentials", c, "source", "modem");
                if (!j || ctl_print_json(j) != CTL_EXIT_OK)
                        k = -ENOMEM;
                json_decref(j);
                return uuid[0] && k >= 0 ? CTL_EXIT_OK : CTL_EXIT_FAILED;
        }

        printf("Device ID:        %s%s\n", o->config->device_id ? o->config->device_id : (uuid[0] ? uuid : "(unknown)"),
               o->config->device_id ? " (from the configuration)" : "");
        printf("Device UUID:      %s\n", uuid[0] ? uuid : "(unknown)");
        if (!imei[0])
                printf("IMEI:             (unknown)\n");
        else if (ctl_args.show_personal)
                printf("IMEI:             %s\n", imei);
        else
                printf("IMEI:             %s (--show-personal shows it in full)\n", imei_redact(imei, red));
        printf("Modem firmware:   %s\n", strna(mfw));
        printf("Firmware:         %s\n", strna(fw));
        printf("Security tag:     %u\n", o->config->sec_tag);
        for (size_t i = 0; i < ELEMENTSOF(shown); i++) {
                CredType t = shown[i];
                if (present[t])
                        printf("  %-22s present, SHA-256 %s\n", cred_type_to_string(t),
                               entries[t].has_sha ? entries[t].sha256 : "(not listed)");
                else
                        printf("  %-22s absent\n", cred_type_to_string(t));
        }
        /* Whatever else the tag holds (PSK, public keys, ...). */
        for (CredType t = CRED_CLIENT_KEY + 1; t < _CRED_TYPE_MAX; t++)
                if (present[t])
                        printf("  %-22s present, SHA-256 %s\n", cred_type_to_string(t),
                               entries[t].has_sha ? entries[t].sha256 : "(not listed)");
        return uuid[0] && k >= 0 ? CTL_EXIT_OK : CTL_EXIT_FAILED;
}

/* ca create */

int verb_ca(int argc, char *argv[], CtlOptions *o) {
        _cleanup_free_ char *cert = NULL, *key = NULL;
        char err[512] = "";
        int r;
        (void) argc;
        (void) argv;
        (void) o;

        if (!ctl_args.positional[0] || !streq(ctl_args.positional[0], "create") || ctl_args.positional[1]) {
                fprintf(stderr, "Usage: %s ca create --out-dir DIR [--cn NAME] [--days N]\n",
                        program_invocation_short_name);
                return CTL_EXIT_USAGE;
        }
        if (!ctl_args.out_dir) {
                fprintf(stderr, "ca create needs --out-dir DIR\n");
                return CTL_EXIT_USAGE;
        }
        r = pki_ca_create(ctl_args.out_dir, ctl_args.cn, ctl_args.days, &cert, &key, err, sizeof err);
        if (r < 0) {
                fprintf(stderr, "Cannot create the CA: %s\n", err);
                return CTL_EXIT_FAILED;
        }
        printf("CA certificate: %s\nCA private key: %s (mode 0600; keep it offline)\n", cert, key);
        return CTL_EXIT_OK;
}

/* jwt */

static void print_json(const char *label, const char *text) {
        json_error_t e;
        json_t *j = json_loads(text, 0, &e);
        char *pretty = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;

        printf("%s:\n%s\n", label, pretty ? pretty : text);
        free(pretty);
        json_decref(j);
}

static bool string_is_safe(const char *s) {
        /* The string goes inside quotes of an AT command. */
        for (; *s; s++)
                if (*s == '"' || (unsigned char) *s < 0x20 || (unsigned char) *s >= 0x7f)
                        return false;
        return true;
}

int verb_jwt(int argc, char *argv[], CtlOptions *o) {
        char uuid[MODEM_UUID_STRING_MAX];
        _cleanup_free_ char *jwt = NULL, *header = NULL, *claims = NULL;
        const char *device_id, *line;
        CtlSession s;
        AtReply r;
        int k;
        (void) argc;
        (void) argv;

        if (ctl_args.aud && (!string_is_safe(ctl_args.aud) || strlen(ctl_args.aud) > 128)) {
                fprintf(stderr, "Invalid --aud: printable ASCII without '\"', at most 128 characters\n");
                return CTL_EXIT_USAGE;
        }
        k = ctl_session_open(&s, o->config);
        if (k != CTL_EXIT_OK) {
                ctl_session_close(&s);
                return k;
        }
        device_id = o->config->device_id;
        if (!device_id) {
                k = ctl_read_uuid(&s, uuid);
                if (k < 0) {
                        fprintf(stderr, "Cannot read the device UUID (AT#XUUID): %s\n", strerror(-k));
                        ctl_session_close(&s);
                        return CTL_EXIT_FAILED;
                }
                device_id = uuid;
        }
        k = ctl_command(&s, CTL_COMMAND_TIMEOUT_USEC, &r, "AT%%JWT=0,%u,\"%s\",\"%s\",%u,2", ctl_args.exp, device_id,
                        strempty(ctl_args.aud), o->config->sec_tag);
        if (k < 0) {
                fprintf(stderr, "The modem did not sign a JWT: %s\n", r.description);
                if (k == -ENOENT)
                        fprintf(stderr, "Security tag %u holds no client key; run '%s provision' first.\n",
                                o->config->sec_tag, program_invocation_short_name);
                at_reply_done(&r);
                ctl_session_close(&s);
                return CTL_EXIT_FAILED;
        }
        line = ctl_reply_find(&r, "%JWT:");
        k = line ? at_parse_quoted(line, "%JWT", MODEM_JWT_MAX, &jwt) : -EBADMSG;
        at_reply_done(&r);
        ctl_session_close(&s);
        if (k < 0) {
                fprintf(stderr, "The modem's answer holds no JWT\n");
                return CTL_EXIT_FAILED;
        }
        printf("%s\n", jwt);
        if (ctl_args.decode) {
                if (jwt_decode(jwt, &header, &claims, NULL, NULL) < 0) {
                        fprintf(stderr, "The JWT cannot be decoded\n");
                        return CTL_EXIT_FAILED;
                }
                print_json("Header", header);
                print_json("Claims", claims);
        }
        return CTL_EXIT_OK;
}

/* attest */

int verb_attest(int argc, char *argv[], CtlOptions *o) {
        _cleanup_free_ char *token = NULL;
        const char *line;
        AttestToken t;
        CtlSession s;
        AtReply r;
        int k;
        (void) argc;
        (void) argv;

        if (ctl_args.challenge) {
                size_t n = strlen(ctl_args.challenge);
                bool ok = n == 32;
                for (size_t i = 0; ok && i < n; i++)
                        ok = strchr("0123456789abcdefABCDEF", ctl_args.challenge[i]) != NULL;
                if (!ok) {
                        fprintf(stderr, "Invalid --challenge: 32 hexadecimal characters (16 bytes)\n");
                        return CTL_EXIT_USAGE;
                }
        }
        k = ctl_session_open(&s, o->config);
        if (k != CTL_EXIT_OK) {
                ctl_session_close(&s);
                return k;
        }
        if (ctl_args.challenge)
                k = ctl_command(&s, CTL_COMMAND_TIMEOUT_USEC, &r, "AT%%ATTESTTOKEN=\"%s\"", ctl_args.challenge);
        else
                k = ctl_command(&s, CTL_COMMAND_TIMEOUT_USEC, &r, "AT%%ATTESTTOKEN");
        if (k < 0) {
                fprintf(stderr, "The modem gave no attestation token: %s\n", r.description);
                at_reply_done(&r);
                ctl_session_close(&s);
                return CTL_EXIT_FAILED;
        }
        line = ctl_reply_find(&r, "%ATTESTTOKEN:");
        k = line ? at_parse_quoted(line, "%ATTESTTOKEN", COSE_INPUT_MAX, &token) : -EBADMSG;
        at_reply_done(&r);
        ctl_session_close(&s);
        if (k < 0) {
                fprintf(stderr, "The modem's answer holds no attestation token\n");
                return CTL_EXIT_FAILED;
        }
        printf("%s\n", token);
        k = attest_decode(token, strlen(token), &t);
        if (k < 0) {
                fprintf(stderr, "The attestation token cannot be decoded\n");
                return CTL_EXIT_VERIFY;
        }
        printf("Message type:     %lld (%s)\n", (long long) t.msg_type, attest_msg_type_to_string(t.msg_type));
        printf("Device UUID:      %s\n", t.uuid);
        printf("Device type:      %lld (%s)\n", (long long) t.device_type, attest_device_type_to_string(t.device_type));
        printf("Firmware UUID:    %s\n", t.fw_uuid);
        printf("Nonce:            ");
        for (size_t i = 0; i < sizeof t.nonce; i++)
                printf("%02x", t.nonce[i]);
        printf("\n");
        if (ctl_args.challenge) {
                char hex[33];
                for (size_t i = 0; i < sizeof t.nonce; i++)
                        snprintf(hex + 2 * i, 3, "%02x", t.nonce[i]);
                if (strcasecmp(hex, ctl_args.challenge) != 0) {
                        fprintf(stderr, "The token's nonce is not the challenge given\n");
                        return CTL_EXIT_VERIFY;
                }
        }
        return CTL_EXIT_OK;
}
