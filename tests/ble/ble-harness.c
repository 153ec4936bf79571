/* SPDX-License-Identifier: MIT */
/*
 * ble-harness: runs the BLE layer on sd-event against the system bus
 * (DBUS_SYSTEM_BUS_ADDRESS) and lets a test drive it: one JSON command per
 * line on stdin, one JSON event per line on stdout.
 *
 *   {"cmd":"desire","addresses":["AA:..",...]}
 *   {"cmd":"scan","id":1,"ms":1000}
 *   {"cmd":"read","id":2,"address":"..","service":"180F","chrc":"2A19"}
 *   {"cmd":"write","id":3,"address":"..","service":"..","chrc":"..","value":"0102","mode":"auto|request|command"}
 *   {"cmd":"read_desc"|"write_desc", ... ,"desc":"2901"}
 *   {"cmd":"notify","id":4,"address":"..","service":"..","chrc":"..","enable":true}
 *   {"cmd":"gatt","id":5,"address":".."}    {"cmd":"status","id":6}    {"cmd":"quit"}
 *
 * Events: bluez, adapter, state, notification, result, scan, gatt, status.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "ble.h"
#include "config.h"
#include "log.h"
#include "util.h"

#define LINE_MAX_BYTES 65536

typedef struct Harness {
        sd_event *event;
        BleManager *ble;
        Config *config;
        char buf[LINE_MAX_BYTES];
        size_t len;
        bool count_only; /* notifications: counted, printed every 1000 and at "status" */
        uint64_t notifications;
} Harness;

static void emit(json_t *j) {
        char *s = json_dumps(j, JSON_COMPACT);
        if (s) {
                fputs(s, stdout);
                fputc('\n', stdout);
                fflush(stdout);
                free(s);
        }
        json_decref(j);
}

static json_t *hex_json(const uint8_t *v, size_t n) {
        char *h = malloc(2 * n + 1);
        json_t *j;
        if (!h)
                return json_null();
        ble_hex(v, n, h);
        j = json_string(h);
        free(h);
        return j;
}

static int unhex(const char *s, uint8_t *out, size_t max, size_t *ret) {
        size_t n = strlen(s);
        if (n % 2 || n / 2 > max)
                return -EINVAL;
        for (size_t i = 0; i < n / 2; i++) {
                unsigned v;
                if (sscanf(s + 2 * i, "%2x", &v) != 1)
                        return -EINVAL;
                out[i] = (uint8_t) v;
        }
        *ret = n / 2;
        return 0;
}

static const char *errno_name(int e) {
        static char buf[32];
        switch (-e) {
        case 0: return "0";
        case EINVAL: return "EINVAL";
        case ENOENT: return "ENOENT";
        case ENOTCONN: return "ENOTCONN";
        case ETIMEDOUT: return "ETIMEDOUT";
        case EIO: return "EIO";
        case EPERM: return "EPERM";
        case EOPNOTSUPP: return "EOPNOTSUPP";
        case EINPROGRESS: return "EINPROGRESS";
        case ECANCELED: return "ECANCELED";
        case ENOBUFS: return "ENOBUFS";
        case EHOSTDOWN: return "EHOSTDOWN";
        case ENODEV: return "ENODEV";
        case EBUSY: return "EBUSY";
        default:
                (void) snprintf(buf, sizeof buf, "%d", e);
                return buf;
        }
}

static void on_presence(BleManager *m, bool present, void *userdata) {
        (void) m;
        (void) userdata;
        emit(json_pack("{s:s,s:b}", "event", "bluez", "present", present));
}

static void on_adapter(BleManager *m, const char *path, bool powered, void *userdata) {
        (void) m;
        (void) userdata;
        emit(json_pack("{s:s,s:s?,s:b}", "event", "adapter", "path", path, "powered", powered));
}

static void on_state(BleManager *m, BleDevice *d, BleDeviceState old, BleDeviceState new, void *userdata) {
        (void) userdata;
        emit(json_pack("{s:s,s:s,s:s,s:s,s:i}", "event", "state", "address", ble_device_address(d), "old",
                       ble_device_state_to_string(old), "new", ble_device_state_to_string(new), "slots",
                       (int) ble_manager_connected_count(m)));
}

static void on_notification(BleManager *m, BleDevice *d, const char *su, const char *cu, const uint8_t *v, size_t n,
                            void *userdata) {
        Harness *h = userdata;
        (void) m;
        h->notifications++;
        if (h->count_only) {
                if (h->notifications % 1000 == 0)
                        emit(json_pack("{s:s,s:I}", "event", "notification_count", "count", (json_int_t) h->notifications));
                return;
        }
        emit(json_pack("{s:s,s:s,s:s,s:s,s:o}", "event", "notification", "address", ble_device_address(d), "service",
                       su, "chrc", cu, "value", hex_json(v, n)));
}

static void on_op(BleDevice *d, const BleOpResult *r, void *userdata) {
        json_int_t id = (json_int_t) (intptr_t) userdata;
        json_t *j = json_pack("{s:s,s:I,s:s,s:s}", "event", "result", "id", id, "address", ble_device_address(d),
                              "error", errno_name(r->error));
        if (r->error_name)
                json_object_set_new(j, "error_name", json_string(r->error_name));
        if (r->att_error >= 0)
                json_object_set_new(j, "att_error", json_integer(r->att_error));
        if (r->value)
                json_object_set_new(j, "value", hex_json(r->value, r->size));
        emit(j);
}

static void on_scan(BleManager *m, int error, const BleScanResult *res, size_t n, void *userdata) {
        json_t *a = json_array();
        (void) m;
        for (size_t i = 0; i < n; i++) {
                json_t *u = json_array(), *mfr = json_array(), *sd = json_array();
                for (char **p = res[i].uuids; p && *p; p++)
                        json_array_append_new(u, json_string(*p));
                for (size_t k = 0; k < res[i].manufacturer_data.n; k++)
                        json_array_append_new(mfr, json_pack("{s:i,s:o}", "company", res[i].manufacturer_data.items[k].company,
                                                             "data", hex_json(res[i].manufacturer_data.items[k].data.data,
                                                                              res[i].manufacturer_data.items[k].data.size)));
                for (size_t k = 0; k < res[i].service_data.n; k++)
                        json_array_append_new(sd, json_pack("{s:s,s:o}", "uuid", res[i].service_data.items[k].uuid, "data",
                                                            hex_json(res[i].service_data.items[k].data.data,
                                                                     res[i].service_data.items[k].data.size)));
                json_t *r = json_pack("{s:s,s:s?,s:s?,s:o,s:o,s:o}", "address", res[i].address, "address_type",
                                      res[i].address_type, "name", res[i].name, "uuids", u, "manufacturer_data", mfr,
                                      "service_data", sd);
                if (res[i].has_rssi)
                        json_object_set_new(r, "rssi", json_integer(res[i].rssi));
                json_array_append_new(a, r);
        }
        emit(json_pack("{s:s,s:I,s:s,s:o}", "event", "scan", "id", (json_int_t) (intptr_t) userdata, "error",
                       errno_name(error), "results", a));
}

static json_t *gatt_json(const BleGattModel *g) {
        json_t *svcs = json_array();
        for (size_t i = 0; g && i < g->n_services; i++) {
                json_t *chrcs = json_array();
                for (size_t j = 0; j < g->services[i].n_chrcs; j++) {
                        const BleGattChrc *c = &g->services[i].chrcs[j];
                        json_t *descs = json_array();
                        /* "value": what was read for discovery, absent if nothing was. */
                        for (size_t k = 0; k < c->n_descs; k++)
                                json_array_append_new(descs, json_pack("{s:s,s:s,s:o*}", "uuid", c->descs[k].uuid, "path",
                                                                       c->descs[k].path, "value",
                                                                       c->descs[k].value ? hex_json(c->descs[k].value,
                                                                                                    c->descs[k].value_size)
                                                                                         : NULL));
                        json_array_append_new(chrcs, json_pack("{s:s,s:s,s:i,s:o,s:o*}", "uuid", c->uuid, "path", c->path,
                                                               "properties", (int) c->properties, "descriptors", descs,
                                                               "value",
                                                               c->value ? hex_json(c->value, c->value_size) : NULL));
                }
                json_array_append_new(svcs, json_pack("{s:s,s:b,s:o}", "uuid", g->services[i].uuid, "primary",
                                                      g->services[i].primary, "characteristics", chrcs));
        }
        return svcs;
}

static void reply_error(json_int_t id, int r) {
        emit(json_pack("{s:s,s:I,s:s}", "event", "result", "id", id, "error", errno_name(r)));
}

static void handle_command(Harness *h, const char *line) {
        json_error_t jerr;
        json_t *j = json_loads(line, 0, &jerr);
        const char *cmd, *addr = NULL, *svc = NULL, *chrc = NULL, *desc = NULL, *value = NULL, *mode = NULL;
        json_int_t id = 0;
        BleDevice *d = NULL;
        int r = 0;

        if (!j || !(cmd = json_string_value(json_object_get(j, "cmd")))) {
                emit(json_pack("{s:s,s:s}", "event", "error", "message", "bad command"));
                json_decref(j);
                return;
        }
        id = json_integer_value(json_object_get(j, "id"));
        addr = json_string_value(json_object_get(j, "address"));
        svc = json_string_value(json_object_get(j, "service"));
        chrc = json_string_value(json_object_get(j, "chrc"));
        desc = json_string_value(json_object_get(j, "desc"));
        value = json_string_value(json_object_get(j, "value"));
        mode = json_string_value(json_object_get(j, "mode"));
        if (addr)
                d = ble_manager_get_device(h->ble, addr);
        void *ud = (void *) (intptr_t) id;

        if (streq(cmd, "quit")) {
                sd_event_exit(h->event, 0);
        } else if (streq(cmd, "desire")) {
                json_t *a = json_object_get(j, "addresses");
                char **l = calloc(json_array_size(a) + 1, sizeof(char *));
                size_t i;
                json_t *v;
                json_array_foreach(a, i, v) l[i] = (char *) json_string_value(v);
                r = ble_manager_set_desired(h->ble, l);
                free(l);
                reply_error(id, r);
        } else if (streq(cmd, "scan")) {
                r = ble_manager_scan(h->ble, (uint64_t) json_integer_value(json_object_get(j, "ms")) * 1000, on_scan, ud);
                if (r < 0)
                        emit(json_pack("{s:s,s:I,s:s,s:[]}", "event", "scan", "id", id, "error", errno_name(r), "results"));
        } else if (streq(cmd, "status")) {
                emit(json_pack("{s:s,s:I,s:i,s:I,s:s?,s:b}", "event", "status", "id", id, "slots",
                               (int) ble_manager_connected_count(h->ble), "notifications", (json_int_t) h->notifications,
                               "adapter", ble_manager_adapter(h->ble), "scanning", ble_manager_is_scanning(h->ble)));
        } else if (streq(cmd, "set_max_connections")) {
                /* What a configuration reload does: change the Config in place, then tell the layer. */
                h->config->max_connections = (unsigned) json_integer_value(json_object_get(j, "value"));
                ble_manager_config_changed(h->ble);
                reply_error(id, 0);
        } else if (streq(cmd, "count_only")) {
                h->count_only = json_is_true(json_object_get(j, "enable"));
                h->notifications = 0;
                reply_error(id, 0);
        } else if (!d) {
                reply_error(id, -ENOENT);
        } else if (streq(cmd, "gatt")) {
                const BleGattModel *g = ble_device_gatt(d);
                emit(json_pack("{s:s,s:I,s:s,s:s,s:o}", "event", "gatt", "id", id, "address", ble_device_address(d), "state",
                               ble_device_state_to_string(ble_device_state(d)), "services", gatt_json(g)));
        } else if (streq(cmd, "read")) {
                r = ble_device_read(d, svc, chrc, on_op, ud);
        } else if (streq(cmd, "read_desc")) {
                r = ble_device_read_descriptor(d, svc, chrc, desc, on_op, ud);
        } else if (streq(cmd, "write") || streq(cmd, "write_desc")) {
                uint8_t buf[BLE_VALUE_MAX + 1];
                size_t n = 0;
                BleWriteMode wm = !mode || streq(mode, "auto") ? BLE_WRITE_AUTO
                                : streq(mode, "request")       ? BLE_WRITE_REQUEST
                                                               : BLE_WRITE_COMMAND;
                r = unhex(value ? value : "", buf, sizeof buf, &n);
                if (r >= 0)
                        r = streq(cmd, "write") ? ble_device_write(d, svc, chrc, buf, n, wm, on_op, ud)
                                                : ble_device_write_descriptor(d, svc, chrc, desc, buf, n, on_op, ud);
        } else if (streq(cmd, "notify")) {
                r = ble_device_set_notify(d, svc, chrc, json_is_true(json_object_get(j, "enable")), on_op, ud);
                if (r == 1)
                        emit(json_pack("{s:s,s:I,s:s,s:b}", "event", "result", "id", id, "error", "0", "deferred", 1));
        } else
                emit(json_pack("{s:s,s:s}", "event", "error", "message", "unknown command"));
        if (r < 0 && !streq(cmd, "desire") && !streq(cmd, "scan"))
                reply_error(id, r);
        json_decref(j);
}

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Harness *h = userdata;
        ssize_t n;

        (void) s;
        (void) revents;
        n = read(fd, h->buf + h->len, sizeof h->buf - h->len - 1);
        if (n <= 0) {
                if (n < 0 && errno == EINTR)
                        return 0;
                sd_event_exit(h->event, 0);
                return 0;
        }
        h->len += (size_t) n;
        for (;;) {
                char *nl = memchr(h->buf, '\n', h->len);
                if (!nl)
                        break;
                *nl = '\0';
                handle_command(h, h->buf);
                h->len -= (size_t) (nl + 1 - h->buf);
                memmove(h->buf, nl + 1, h->len);
        }
        if (h->len == sizeof h->buf - 1)
                h->len = 0; /* an over-long line is dropped */
        return 0;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "max-connections", required_argument, NULL, 'c' },
                { "max-scan-results", required_argument, NULL, 's' },
                { "connect-timeout", required_argument, NULL, 't' },
                { "backoff-ms", required_argument, NULL, 'b' },
                { "adapter", required_argument, NULL, 'a' },
                { "scan-rssi", required_argument, NULL, 'r' },
                { "no-power-on", no_argument, NULL, 'n' },
                { "acquire-notify", no_argument, NULL, 'q' },
                { "op-timeout-ms", required_argument, NULL, 'o' },
                { "debug", no_argument, NULL, 'd' },
                {},
        };
        Harness h = { 0 };
        unsigned long backoff_base = 200, backoff_cap = 2000, op_timeout_ms = 0;
        BleCallbacks cb = {
                .bluez_presence = on_presence,
                .adapter = on_adapter,
                .device_state = on_state,
                .notification = on_notification,
        };
        sd_event_source *in = NULL;
        int c, r;

        log_setup(LOG_TARGET_CONSOLE);
        r = config_new(&h.config);
        if (r < 0)
                return 1;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        h.config->max_connections = (unsigned) atoi(optarg);
                        break;
                case 's':
                        h.config->max_scan_results = (unsigned) atoi(optarg);
                        break;
                case 't':
                        h.config->connect_timeout_sec = (unsigned) atoi(optarg);
                        break;
                case 'b':
                        if (sscanf(optarg, "%lu,%lu", &backoff_base, &backoff_cap) != 2)
                                return 2;
                        break;
                case 'a':
                        free(h.config->adapter);
                        h.config->adapter = strdup(optarg);
                        break;
                case 'r':
                        h.config->scan_rssi = atoi(optarg);
                        h.config->scan_rssi_set = true;
                        break;
                case 'n':
                        h.config->auto_power_on = false;
                        break;
                case 'd':
                        log_set_max_level(LOG_DEBUG);
                        break;
                case 'q':
                        h.config->acquire_notify = true;
                        break;
                case 'o':
                        op_timeout_ms = strtoul(optarg, NULL, 10);
                        break;
                default:
                        return 2;
                }

        r = sd_event_default(&h.event);
        if (r >= 0)
                r = ble_manager_new(h.event, NULL, h.config, &cb, &h, &h.ble);
        if (r < 0) {
                fprintf(stderr, "setup failed: %s\n", strerror(-r));
                return 1;
        }
        ble_manager_set_backoff(h.ble, backoff_base * 1000, backoff_cap * 1000);
        if (op_timeout_ms > 0)
                ble_manager_set_op_timeout(h.ble, op_timeout_ms * 1000);
        r = sd_event_add_io(h.event, &in, STDIN_FILENO, EPOLLIN, on_stdin, &h);
        if (r >= 0)
                r = ble_manager_start(h.ble);
        if (r < 0)
                return 1;
        emit(json_pack("{s:s}", "event", "started"));
        r = sd_event_loop(h.event);
        sd_event_source_disable_unref(in);
        h.ble = ble_manager_free(h.ble);
        config_free(h.config);
        sd_event_unref(h.event);
        return r < 0 ? 1 : 0;
}
