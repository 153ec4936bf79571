/* SPDX-License-Identifier: MIT */
/*
 * nrfcloud-gatewayctl status, devices, and outbox while the daemon runs:
 * read from the daemon's D-Bus API (docs/dbus-api.md) on the system bus, as
 * a member of the nrfcloud-gateway group or root.  Properties are turned into
 * JSON values generically (--json prints them as they are on the bus), and
 * the readable views are made from the same values.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include "ctl.h"
#include "identity.h"
#include "util.h"

#define API_NAME "io.github.nrfcloud_gateway.Gateway1"
#define API_ROOT "/io/github/nrfcloud_gateway"
#define API_PATH API_ROOT "/gateway"
#define API_PREFIX "io.github.nrfcloud_gateway."

/* One variant's value (basic types and arrays of strings) as JSON. */
static int read_variant(sd_bus_message *m, json_t **ret) {
        const char *contents;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(m, 'v', contents);
        if (r < 0)
                return r;
        switch (contents[0]) {
        case 's':
        case 'o': {
                const char *s;
                r = sd_bus_message_read_basic(m, contents[0], &s);
                *ret = json_string(s);
                break;
        }
        case 'b': {
                int b;
                r = sd_bus_message_read_basic(m, 'b', &b);
                *ret = json_boolean(b);
                break;
        }
        case 't': {
                uint64_t t;
                r = sd_bus_message_read_basic(m, 't', &t);
                *ret = json_integer((json_int_t) t);
                break;
        }
        case 'u': {
                uint32_t u;
                r = sd_bus_message_read_basic(m, 'u', &u);
                *ret = json_integer(u);
                break;
        }
        case 'i': {
                int32_t i;
                r = sd_bus_message_read_basic(m, 'i', &i);
                *ret = json_integer(i);
                break;
        }
        case 'n': {
                int16_t n;
                r = sd_bus_message_read_basic(m, 'n', &n);
                *ret = json_integer(n);
                break;
        }
        case 'y': {
                uint8_t y;
                r = sd_bus_message_read_basic(m, 'y', &y);
                *ret = json_integer(y);
                break;
        }
        case 'd': {
                double d;
                r = sd_bus_message_read_basic(m, 'd', &d);
                *ret = json_real(d);
                break;
        }
        case 'a': {
                char **l = NULL;
                r = sd_bus_message_read_strv(m, &l);
                *ret = json_array();
                for (char **s = l; r >= 0 && s && *s; s++)
                        json_array_append_new(*ret, json_string(*s));
                strv_free(l);
                break;
        }
        default:
                r = sd_bus_message_skip(m, contents);
                *ret = json_null();
                break;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

/* a{sv} into an object. */
static int read_dict(sd_bus_message *m, json_t **ret) {
        json_t *o = json_object();
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *name;
                json_t *v = NULL;
                r = sd_bus_message_read_basic(m, 's', &name);
                if (r >= 0)
                        r = read_variant(m, &v);
                if (r >= 0)
                        json_object_set_new(o, name, v);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r < 0) {
                json_decref(o);
                return r;
        }
        *ret = o;
        return 0;
}

static int api_open(sd_bus **ret) {
        sd_bus *bus = NULL;
        int r;

        r = sd_bus_open_system(&bus);
        if (r >= 0) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                int has = 0;
                r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                       "NameHasOwner", NULL, &reply, "s", API_NAME);
                if (r >= 0)
                        r = sd_bus_message_read(reply, "b", &has);
                if (r >= 0 && !has)
                        r = -ESRCH;
        }
        if (r < 0) {
                sd_bus_flush_close_unref(bus);
                return r;
        }
        *ret = bus;
        return 0;
}

bool ctl_daemon_running(void) {
        sd_bus *bus = NULL;
        if (api_open(&bus) < 0)
                return false;
        sd_bus_flush_close_unref(bus);
        return true;
}

static int get_all(sd_bus *bus, const char *path, const char *iface, json_t **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call_method(bus, API_NAME, path, "org.freedesktop.DBus.Properties", "GetAll", &error, &reply, "s",
                               iface);
        if (r < 0) {
                fprintf(stderr, "Cannot read %s from the daemon: %s\n", iface, error.message ? error.message : strerror(-r));
                sd_bus_error_free(&error);
                return r;
        }
        return read_dict(reply, ret);
}

/* The Device1 properties of every device, sorted by address. */
static int get_devices(sd_bus *bus, json_t **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        json_t *list = json_array();
        int r;

        r = sd_bus_call_method(bus, API_NAME, API_ROOT, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects",
                               &error, &reply, NULL);
        if (r < 0) {
                fprintf(stderr, "Cannot list the daemon's devices: %s\n", error.message ? error.message : strerror(-r));
                sd_bus_error_free(&error);
                json_decref(list);
                return r;
        }
        r = sd_bus_message_enter_container(reply, 'a', "{oa{sa{sv}}}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "oa{sa{sv}}")) > 0) {
                const char *path;
                r = sd_bus_message_read_basic(reply, 'o', &path);
                if (r >= 0)
                        r = sd_bus_message_enter_container(reply, 'a', "{sa{sv}}");
                while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sa{sv}")) > 0) {
                        const char *iface;
                        r = sd_bus_message_read_basic(reply, 's', &iface);
                        if (r >= 0 && streq(iface, API_PREFIX "Device1")) {
                                json_t *d = NULL;
                                r = read_dict(reply, &d);
                                if (r >= 0) {
                                        /* Kept sorted by address. */
                                        const char *a = json_string_value(json_object_get(d, "Address"));
                                        size_t at = json_array_size(list);
                                        for (size_t k = 0; a && k < json_array_size(list); k++) {
                                                const char *b = json_string_value(
                                                        json_object_get(json_array_get(list, k), "Address"));
                                                if (b && strcmp(a, b) < 0) {
                                                        at = k;
                                                        break;
                                                }
                                        }
                                        json_array_insert_new(list, at, d);
                                }
                        } else if (r >= 0)
                                r = sd_bus_message_skip(reply, "a{sv}");
                        if (r >= 0)
                                r = sd_bus_message_exit_container(reply);
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        if (r < 0) {
                json_decref(list);
                return r;
        }
        *ret = list;
        return 0;
}

static const char *jstr(json_t *o, const char *key) {
        const char *s = json_string_value(json_object_get(o, key));
        return s ? s : "";
}
static json_int_t jint(json_t *o, const char *key) {
        return json_integer_value(json_object_get(o, key));
}

/* "2026-12-07 21:09:52 (3 min ago)", or "-" for 0. */
static const char *format_time(uint64_t usec, char *buf, size_t len) {
        time_t t = (time_t) (usec / 1000000u), now = time(NULL);
        struct tm tm;
        char date[32];
        long ago;

        if (usec == 0)
                return "-";
        strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
        ago = (long) (now - t);
        if (ago < 0)
                snprintf(buf, len, "%s (in %ld s)", date, -ago);
        else if (ago < 120)
                snprintf(buf, len, "%s (%ld s ago)", date, ago);
        else if (ago < 7200)
                snprintf(buf, len, "%s (%ld min ago)", date, ago / 60);
        else
                snprintf(buf, len, "%s (%ld h ago)", date, ago / 3600);
        return buf;
}

/* Location1 in one line: "63.4215 N, 10.4385 E ±1200 m (MCELL, 5 min ago)", "off", "none yet (measuring)". */
static const char *format_location(json_t *loc, char *buf, size_t len) {
        double lat = json_number_value(json_object_get(loc, "Latitude")),
               lon = json_number_value(json_object_get(loc, "Longitude")),
               unc = json_number_value(json_object_get(loc, "Uncertainty"));
        uint64_t usec = (uint64_t) jint(loc, "Time");
        const char *state = jstr(loc, "State"), *ago;
        char t[64], u[32] = "";

        if (streq(state, "off") && usec == 0)
                return "off";
        if (usec == 0) {
                snprintf(buf, len, "none yet (%s)", state);
                return buf;
        }
        if (unc >= 0)
                snprintf(u, sizeof u, " ±%.0f m", unc);
        /* format_time()'s "(5 min ago)" without its date. */
        ago = strchr(format_time(usec, t, sizeof t), '(');
        snprintf(buf, len, "%.4f %c, %.4f %c%s (%s%s%.*s)", fabs(lat), lat < 0 ? 'S' : 'N', fabs(lon),
                 lon < 0 ? 'W' : 'E', u, *jstr(loc, "Method") ? jstr(loc, "Method") : "-", ago ? ", " : "",
                 ago ? (int) strcspn(ago + 1, ")") : 0, ago ? ago + 1 : "");
        return buf;
}

int ctl_print_json(json_t *j) {
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
        if (!s)
                return CTL_EXIT_FAILED;
        puts(s);
        free(s);
        return CTL_EXIT_OK;
}

static int not_running(void) {
        fprintf(stderr, "The daemon is not running (no %s on the system bus), or you may not read it "
                        "(members of the nrfcloud-gateway group and root may).\n", API_NAME);
        return CTL_EXIT_NOT_RUNNING;
}

static void print_outbox_line(json_t *ob) {
        char t[64];
        printf("  Outbox:        %" JSON_INTEGER_FORMAT " message(s), %" JSON_INTEGER_FORMAT " bytes, oldest %s, "
               "%" JSON_INTEGER_FORMAT " dropped since start\n",
               jint(ob, "Messages"), jint(ob, "Bytes"), format_time((uint64_t) jint(ob, "OldestQueued"), t, sizeof t),
               jint(ob, "Dropped"));
}

/* The publish budget ([Cloud] MaxPublishRate=) and what waited for it, in one line: whether the
 * last publish had to wait, how often one did, and what NotifyOverflow=latest replaced or the
 * outbox's bounds dropped. */
static void print_budget_line(json_t *ob) {
        char rate[32];

        if (jint(ob, "MaxPublishRate") > 0)
                snprintf(rate, sizeof rate, "%" JSON_INTEGER_FORMAT "/s", jint(ob, "MaxPublishRate"));
        else
                snprintf(rate, sizeof rate, "no limit");
        printf("  Budget:        %s, %s, %" JSON_INTEGER_FORMAT " deferred, %" JSON_INTEGER_FORMAT " coalesced, "
               "%" JSON_INTEGER_FORMAT " dropped\n",
               rate, json_is_true(json_object_get(ob, "BudgetSaturated")) ? "saturated" : "within",
               jint(ob, "BudgetDeferred"), jint(ob, "Coalesced"), jint(ob, "Dropped"));
}

int verb_status(int argc, char *argv[], CtlOptions *o) {
        sd_bus *bus = NULL;
        json_t *gw = NULL, *modem = NULL, *ob = NULL, *fota = NULL, *loc = NULL, *devices = NULL, *all;
        char t[64], where[160];
        int r;
        (void) argc, (void) argv, (void) o;

        if (api_open(&bus) < 0)
                return not_running();
        r = get_all(bus, API_PATH, API_PREFIX "Gateway1", &gw);
        if (r >= 0)
                r = get_all(bus, API_PATH, API_PREFIX "Modem1", &modem);
        if (r >= 0)
                r = get_all(bus, API_PATH, API_PREFIX "Outbox1", &ob);
        if (r >= 0)
                r = get_all(bus, API_PATH, API_PREFIX "Fota1", &fota);
        if (r >= 0)
                r = get_all(bus, API_PATH, API_PREFIX "Location1", &loc);
        if (r >= 0)
                r = get_devices(bus, &devices);
        sd_bus_flush_close_unref(bus);
        if (r < 0)
                return r == -EACCES || r == -EPERM ? CTL_EXIT_NOT_RUNNING : CTL_EXIT_FAILED;
        all = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o}", "gateway", gw, "modem", modem, "outbox", ob, "fota", fota,
                        "location", loc, "devices", devices);
        if (ctl_args.json) {
                r = ctl_print_json(all);
                json_decref(all);
                return r;
        }

        printf("  Gateway:       %s, id %s, team %s (nrfcloud-gatewayd %s)\n", jstr(gw, "State"),
               *jstr(gw, "GatewayId") ? jstr(gw, "GatewayId") : "-", *jstr(gw, "TeamId") ? jstr(gw, "TeamId") : "-",
               jstr(gw, "Version"));
        printf("  Cloud:         %s since %s\n", jstr(gw, "CloudState"),
               format_time((uint64_t) jint(gw, "CloudStateSince"), t, sizeof t));
        printf("  Broker:        %s, TLS in the %s\n", jstr(gw, "MqttEndpoint"),
               streq(jstr(gw, "Tls"), "modem") ? "nRF91" : "host");
        if (*jstr(gw, "CloudLastError"))
                printf("  Last error:    %s\n", jstr(gw, "CloudLastError"));
        if (jint(gw, "CloudNextRetry"))
                printf("  Next attempt:  %s\n", format_time((uint64_t) jint(gw, "CloudNextRetry"), t, sizeof t));
        if (!json_is_true(json_object_get(modem, "Present")))
                printf("  Modem:         none ([Modem] Port=none)\n");
        else {
                printf("  Modem:         %s on %s, %s\n", jstr(modem, "State"), jstr(modem, "Port"),
                       jstr(modem, "Registration"));
                printf("  Firmware:      %s, application %s\n", *jstr(modem, "ModemFirmware") ? jstr(modem, "ModemFirmware") : "-",
                       *jstr(modem, "FirmwareVersion") ? jstr(modem, "FirmwareVersion") : "-");
                if (jint(modem, "Rsrp") != INT32_MIN)
                        printf("  Signal:        RSRP %" JSON_INTEGER_FORMAT " dBm, RSRQ %.1f dB\n", jint(modem, "Rsrp"),
                               jint(modem, "Rsrq") == INT32_MIN ? 0.0 : (double) jint(modem, "Rsrq") / 10.0);
        }
        printf("  Location:      %s%s%s\n", format_location(loc, where, sizeof where),
               *jstr(loc, "LastError") ? "; last request failed: " : "", jstr(loc, "LastError"));
        printf("  Devices:       %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT " connected\n",
               jint(gw, "DevicesConnected"), jint(gw, "DevicesDesired"));
        print_outbox_line(ob);
        print_budget_line(ob);
        printf("  FOTA:          %s%s%s\n", jstr(fota, "State"), *jstr(fota, "JobId") ? ", job " : "",
               jstr(fota, "JobId"));
        json_decref(all);
        return CTL_EXIT_OK;
}

int verb_devices(int argc, char *argv[], CtlOptions *o) {
        sd_bus *bus = NULL;
        json_t *devices = NULL, *d;
        size_t i;
        int r;
        (void) argc, (void) argv, (void) o;

        if (api_open(&bus) < 0)
                return not_running();
        r = get_devices(bus, &devices);
        sd_bus_flush_close_unref(bus);
        if (r < 0)
                return CTL_EXIT_FAILED;
        if (ctl_args.json) {
                r = ctl_print_json(devices);
                json_decref(devices);
                return r;
        }
        printf("%-17s  %-10s  %-9s  %5s  %13s  %s\n", "ADDRESS", "STATE", "DESIRED", "RSSI", "NOTIFICATIONS",
               "NAME / LAST ERROR");
        json_array_foreach(devices, i, d) {
                printf("%-17s  %-10s  %-9s  %5" JSON_INTEGER_FORMAT "  %13" JSON_INTEGER_FORMAT "  %s%s%s\n",
                       jstr(d, "Address"), jstr(d, "State"), json_is_true(json_object_get(d, "Desired")) ? "yes" : "no",
                       jint(d, "RSSI"), jint(d, "Notifications"), *jstr(d, "Name") ? jstr(d, "Name") : "-",
                       *jstr(d, "LastError") ? ", " : "", jstr(d, "LastError"));
                /* A BLE FOTA job (Device1.Fota*): a second line. */
                if (*jstr(d, "FotaJobId"))
                        printf("  FOTA job %s: %s %" JSON_INTEGER_FORMAT "%% (%" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT
                               " bytes)\n",
                               jstr(d, "FotaJobId"), jstr(d, "FotaStage"), jint(d, "FotaProgress"),
                               jint(d, "FotaBytesDone"), jint(d, "FotaBytesTotal"));
        }
        if (json_array_size(devices) == 0)
                printf("(no desired devices)\n");
        json_decref(devices);
        return CTL_EXIT_OK;
}

/* outbox while the daemon runs: its own counters (the folder is the daemon's). */
int ctl_bus_outbox(void) {
        sd_bus *bus = NULL;
        json_t *ob = NULL;
        int r;

        if (api_open(&bus) < 0)
                return not_running();
        r = get_all(bus, API_PATH, API_PREFIX "Outbox1", &ob);
        sd_bus_flush_close_unref(bus);
        if (r < 0)
                return CTL_EXIT_FAILED;
        if (ctl_args.json)
                r = ctl_print_json(ob);
        else {
                print_outbox_line(ob);
                print_budget_line(ob);
                r = CTL_EXIT_OK;
        }
        json_decref(ob);
        return r;
}

/* monitor: one readable line per change, until interrupted. */
static void print_change_prefix(const char *path) {
        char now[16];
        time_t t = time(NULL);
        struct tm tm;
        const char *object = strncmp(path, API_ROOT "/", strlen(API_ROOT "/")) == 0 ? path + strlen(API_ROOT "/") : path;

        strftime(now, sizeof now, "%H:%M:%S", localtime_r(&t, &tm));
        printf("%s %s", now, object);
}

static bool location_fix_key(const char *key) {
        static const char *const keys[] = { "Latitude", "Longitude", "Uncertainty", "Method", "Time" };
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (streq(keys[i], key))
                        return true;
        return false;
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *iface;
        json_t *changed = NULL, *v;
        const char *key;
        (void) userdata, (void) ret_error;

        if (sd_bus_message_read_basic(m, 's', &iface) < 0 || read_dict(m, &changed) < 0)
                return 0;
        if (strncmp(iface, API_PREFIX, strlen(API_PREFIX)) == 0)
                iface += strlen(API_PREFIX);
        if (ctl_args.json) {
                json_t *j = json_pack("{s:s,s:s,s:o}", "path", sd_bus_message_get_path(m), "interface", iface,
                                      "changed", changed);
                char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
                if (s)
                        puts(s);
                free(s);
                json_decref(j);
        } else {
                /* A new fix (Time changed): its values in one line, as status shows them. */
                bool fix = streq(iface, "Location1") && json_object_get(changed, "Time");
                json_t *loc = NULL;
                char where[160];

                if (fix && get_all(sd_bus_message_get_bus(m), sd_bus_message_get_path(m), API_PREFIX "Location1",
                                   &loc) >= 0) {
                        print_change_prefix(sd_bus_message_get_path(m));
                        printf(" Location1: %s\n", format_location(loc, where, sizeof where));
                        json_decref(loc);
                }
                json_object_foreach(changed, key, v) {
                        char *s;
                        if (fix && location_fix_key(key))
                                continue;
                        s = json_dumps(v, JSON_ENCODE_ANY);
                        print_change_prefix(sd_bus_message_get_path(m));
                        printf(" %s.%s = %s\n", iface, key, s ? s : "?");
                        free(s);
                }
                json_decref(changed);
        }
        fflush(stdout);
        return 0;
}

static int on_interfaces(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *path;
        (void) userdata, (void) ret_error;

        if (sd_bus_message_read_basic(m, 'o', &path) < 0)
                return 0;
        if (ctl_args.json)
                printf("{\"path\": \"%s\", \"event\": \"%s\"}\n", path,
                       streq(sd_bus_message_get_member(m), "InterfacesAdded") ? "added" : "removed");
        else {
                print_change_prefix(path);
                printf(" %s\n", streq(sd_bus_message_get_member(m), "InterfacesAdded") ? "appeared" : "went away");
        }
        fflush(stdout);
        return 0;
}

int verb_monitor(int argc, char *argv[], CtlOptions *o) {
        sd_bus *bus = NULL;
        int r;
        (void) argc, (void) argv, (void) o;

        if (api_open(&bus) < 0)
                return not_running();
        r = sd_bus_match_signal(bus, NULL, API_NAME, NULL, "org.freedesktop.DBus.Properties", "PropertiesChanged",
                                on_properties_changed, NULL);
        if (r >= 0)
                r = sd_bus_match_signal(bus, NULL, API_NAME, API_ROOT, "org.freedesktop.DBus.ObjectManager",
                                        "InterfacesAdded", on_interfaces, NULL);
        if (r >= 0)
                r = sd_bus_match_signal(bus, NULL, API_NAME, API_ROOT, "org.freedesktop.DBus.ObjectManager",
                                        "InterfacesRemoved", on_interfaces, NULL);
        if (r < 0) {
                fprintf(stderr, "Cannot follow the daemon: %s\n", strerror(-r));
                sd_bus_flush_close_unref(bus);
                return CTL_EXIT_FAILED;
        }
        if (!ctl_args.json)
                printf("Following %s; Ctrl-C to stop.\n", API_NAME);
        fflush(stdout);
        for (;;) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        break;
                if (r > 0)
                        continue;
                r = sd_bus_wait(bus, UINT64_MAX);
                if (r < 0 && r != -EINTR)
                        break;
        }
        sd_bus_flush_close_unref(bus);
        fprintf(stderr, "The daemon's bus connection ended: %s\n", strerror(-r));
        return CTL_EXIT_NOT_RUNNING;
}

/* Method calls are root's: a refusal gets its own exit code. */
static int method_failed(const char *what, sd_bus_error *error, int r) {
        fprintf(stderr, "%s: %s\n", what, error->message ? error->message : strerror(-r));
        r = sd_bus_error_has_name(error, SD_BUS_ERROR_ACCESS_DENIED) ? CTL_EXIT_DENIED : CTL_EXIT_FAILED;
        sd_bus_error_free(error);
        return r;
}

int verb_scan(int argc, char *argv[], CtlOptions *o) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus *bus = NULL;
        json_t *list = json_array();
        unsigned seconds = 5;
        const char *address, *name;
        int16_t rssi;
        int r;
        (void) argc, (void) argv, (void) o;

        if (ctl_args.positional[0]) {
                char *end;
                unsigned long v = strtoul(ctl_args.positional[0], &end, 10);
                if (*end || v < 1 || v > 60 || ctl_args.positional[1]) {
                        fprintf(stderr, "Usage: %s scan [SECONDS] [--json]   (SECONDS: 1-60, default 5)\n",
                                program_invocation_short_name);
                        json_decref(list);
                        return CTL_EXIT_USAGE;
                }
                seconds = (unsigned) v;
        }
        if (api_open(&bus) < 0) {
                json_decref(list);
                return not_running();
        }
        r = sd_bus_call_method(bus, API_NAME, API_PATH, API_PREFIX "Gateway1", "Scan", &error, &reply, "u",
                               (uint32_t) seconds);
        if (r < 0) {
                sd_bus_flush_close_unref(bus);
                json_decref(list);
                return method_failed("The daemon could not scan", &error, r);
        }
        r = sd_bus_message_enter_container(reply, 'a', "(ssn)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(ssn)", &address, &name, &rssi)) > 0)
                json_array_append_new(list, json_pack("{s:s,s:s,s:i}", "address", address, "name", name, "rssi", rssi));
        sd_bus_flush_close_unref(bus);
        if (r < 0) {
                json_decref(list);
                fprintf(stderr, "Cannot read the scan results: %s\n", strerror(-r));
                return CTL_EXIT_FAILED;
        }
        if (ctl_args.json)
                r = ctl_print_json(list);
        else {
                size_t i;
                json_t *d;
                printf("%-17s  %5s  %s\n", "ADDRESS", "RSSI", "NAME");
                json_array_foreach(list, i, d)
                        printf("%-17s  %5" JSON_INTEGER_FORMAT "  %s\n", jstr(d, "address"), jint(d, "rssi"),
                               *jstr(d, "name") ? jstr(d, "name") : "-");
                printf("%zu device(s) seen in %u s\n", json_array_size(list), seconds);
                r = CTL_EXIT_OK;
        }
        json_decref(list);
        return r;
}

/* identity while the daemon holds the port: what it read when it probed the modem. */
int ctl_bus_identity(const CtlOptions *o) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus *bus = NULL;
        json_t *gw = NULL, *modem = NULL, *j, *creds, *c;
        const char *imei = NULL;
        char red[MODEM_IMEI_STRING_MAX];
        size_t i;
        int r;

        if (api_open(&bus) < 0)
                return not_running();
        r = get_all(bus, API_PATH, API_PREFIX "Gateway1", &gw);
        if (r >= 0)
                r = get_all(bus, API_PATH, API_PREFIX "Modem1", &modem);
        if (r >= 0 && sd_bus_call_method(bus, API_NAME, API_PATH, API_PREFIX "Modem1", "GetImei", &error, &reply,
                                         NULL) >= 0)
                (void) sd_bus_message_read(reply, "s", &imei);
        sd_bus_flush_close_unref(bus);
        if (r < 0) {
                json_decref(gw);
                json_decref(modem);
                sd_bus_error_free(&error);
                return CTL_EXIT_FAILED;
        }
        if (!json_is_true(json_object_get(modem, "Present"))) {
                fprintf(stderr, "The daemon runs without a modem ([Modem] Port=none).\n");
                json_decref(gw);
                json_decref(modem);
                sd_bus_error_free(&error);
                return CTL_EXIT_NO_MODEM;
        }
        if (imei && !ctl_args.show_personal)
                imei = imei_redact(imei, red);
        j = json_pack("{s:s,s:s,s:s?,s:s,s:s,s:I,s:O,s:s}", "device_id", jstr(gw, "GatewayId"), "uuid",
                      jstr(modem, "DeviceUuid"), "imei", imei, "modem_firmware", jstr(modem, "ModemFirmware"),
                      "firmware", jstr(modem, "FirmwareVersion"), "sec_tag", jint(modem, "SecTag"), "credentials",
                      json_object_get(modem, "Credentials"), "source", "daemon");
        if (ctl_args.json)
                r = ctl_print_json(j);
        else {
                printf("Device ID:        %s%s\n", *jstr(gw, "GatewayId") ? jstr(gw, "GatewayId") : "(unknown)",
                       o->config->device_id ? " (from the configuration)" : "");
                printf("Device UUID:      %s\n", *jstr(modem, "DeviceUuid") ? jstr(modem, "DeviceUuid") : "(unknown)");
                if (!imei)
                        printf("IMEI:             (%s)\n", sd_bus_error_has_name(&error, SD_BUS_ERROR_ACCESS_DENIED)
                                                               ? "root only"
                                                               : "unknown");
                else
                        printf("IMEI:             %s%s\n", imei,
                               ctl_args.show_personal ? "" : " (--show-personal shows it in full)");
                printf("Modem firmware:   %s\n", *jstr(modem, "ModemFirmware") ? jstr(modem, "ModemFirmware") : "n/a");
                printf("Firmware:         %s\n", *jstr(modem, "FirmwareVersion") ? jstr(modem, "FirmwareVersion") : "n/a");
                printf("Security tag:     %" JSON_INTEGER_FORMAT "\n", jint(modem, "SecTag"));
                creds = json_object_get(modem, "Credentials");
                json_array_foreach(creds, i, c) {
                        const char *text = json_string_value(c), *sp = text ? strchr(text, ' ') : NULL;
                        if (sp)
                                printf("  %-22s present, SHA-256 %.*s\n", sp + 1, (int) (sp - text), text);
                }
                printf("(answered by the running daemon, as read when it probed the modem on %s)\n",
                       jstr(modem, "Port"));
                r = CTL_EXIT_OK;
        }
        json_decref(j);
        json_decref(gw);
        json_decref(modem);
        sd_bus_error_free(&error);
        return r;
}

/* fota while the daemon runs: the manager's own view. */
int ctl_bus_fota(void) {
        sd_bus *bus = NULL;
        json_t *f = NULL, *types, *t;
        size_t i;
        int r;

        if (api_open(&bus) < 0)
                return not_running();
        r = get_all(bus, API_PATH, API_PREFIX "Fota1", &f);
        sd_bus_flush_close_unref(bus);
        if (r < 0)
                return CTL_EXIT_FAILED;
        if (ctl_args.json)
                r = ctl_print_json(f);
        else {
                printf("FOTA:             %s\n", jstr(f, "State"));
                if (*jstr(f, "JobId"))
                        printf("Job:              %s\n", jstr(f, "JobId"));
                if (jint(f, "Progress") >= 0)
                        printf("Progress:         %" JSON_INTEGER_FORMAT " %%\n", jint(f, "Progress"));
                if (*jstr(f, "LastJobId"))
                        printf("Last job:         %s\n", jstr(f, "LastJobId"));
                printf("Firmware types:  ");
                types = json_object_get(f, "SupportedTypes");
                json_array_foreach(types, i, t)
                        printf(" %s", json_string_value(t));
                printf("%s\n", json_array_size(types) ? "" : " none");
                r = CTL_EXIT_OK;
        }
        json_decref(f);
        return r;
}
