/* SPDX-License-Identifier: MIT */
/*
 * ble-emitter: a minimal org.bluez for benchmarks.  Exports one adapter and
 * N LE devices, each with one service and one notifying characteristic, and
 * once every characteristic has a StartNotify session, sends M notifications
 * (PropertiesChanged(Value) carrying a 32-bit little-endian sequence number
 * per characteristic) round-robin over the devices, as fast as the bus
 * takes them.  The Python mock cannot emit fast enough for this.
 *
 *   ble-emitter DEVICES NOTIFICATIONS [VALUE_SIZE]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

typedef struct Dev {
        unsigned index;
        char address[18];
        char path[64], svc_path[80], chrc_path[96];
        int connected;
        int notifying;
        int acq_fd; /* our end of the AcquireNotify socket, or -1 */
        uint32_t seq;
} Dev;

static sd_bus *bus;
static sd_event *event;
static Dev *devs;
static unsigned n_devs, n_notifying;
static unsigned long total;
static size_t value_size = 20;
static sd_event_source *flood_source;

static const char *const chrc_flags[] = { "read", "notify", NULL };

static int get_string(sd_bus *b, const char *path, const char *iface, const char *prop, sd_bus_message *reply,
                      void *userdata, sd_bus_error *error) {
        Dev *d = userdata;
        (void) b;
        (void) path;
        (void) iface;
        (void) error;
        if (!strcmp(prop, "Address"))
                return sd_bus_message_append(reply, "s", d ? d->address : "00:01:02:03:04:05");
        if (!strcmp(prop, "AddressType"))
                return sd_bus_message_append(reply, "s", "public");
        if (!strcmp(prop, "Name"))
                return sd_bus_message_append(reply, "s", d ? "bench" : "emitter");
        if (!strcmp(prop, "UUID"))
                return sd_bus_message_append(reply, "s", strstr(path, "char") ? "6e400003-b5a3-f393-e0a9-e50e24dcca9e"
                                                                              : "6e400001-b5a3-f393-e0a9-e50e24dcca9e");
        return -EINVAL;
}

static int get_path(sd_bus *b, const char *path, const char *iface, const char *prop, sd_bus_message *reply,
                    void *userdata, sd_bus_error *error) {
        Dev *d = userdata;
        (void) b;
        (void) path;
        (void) iface;
        (void) error;
        if (!strcmp(prop, "Adapter"))
                return sd_bus_message_append(reply, "o", "/org/bluez/hci0");
        if (!strcmp(prop, "Device"))
                return sd_bus_message_append(reply, "o", d->path);
        return sd_bus_message_append(reply, "o", d->svc_path); /* Service */
}

static int get_bool(sd_bus *b, const char *path, const char *iface, const char *prop, sd_bus_message *reply,
                    void *userdata, sd_bus_error *error) {
        Dev *d = userdata;
        int v = 1;
        (void) b;
        (void) path;
        (void) iface;
        (void) error;
        if (!strcmp(prop, "Connected") || !strcmp(prop, "ServicesResolved"))
                v = d->connected;
        else if (!strcmp(prop, "Notifying"))
                v = d->notifying;
        else if (!strcmp(prop, "Discovering"))
                v = 0;
        return sd_bus_message_append(reply, "b", v);
}

static int get_flags(sd_bus *b, const char *path, const char *iface, const char *prop, sd_bus_message *reply,
                     void *userdata, sd_bus_error *error) {
        (void) b;
        (void) path;
        (void) iface;
        (void) prop;
        (void) userdata;
        (void) error;
        return sd_bus_message_append_strv(reply, (char **) chrc_flags);
}

static int get_value(sd_bus *b, const char *path, const char *iface, const char *prop, sd_bus_message *reply,
                     void *userdata, sd_bus_error *error) {
        Dev *d = userdata;
        uint8_t v[4] = { (uint8_t) d->seq, (uint8_t) (d->seq >> 8), (uint8_t) (d->seq >> 16), (uint8_t) (d->seq >> 24) };
        (void) b;
        (void) path;
        (void) iface;
        (void) prop;
        (void) error;
        return sd_bus_message_append_array(reply, 'y', v, sizeof v);
}

static int method_ok(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        (void) userdata;
        (void) error;
        return sd_bus_reply_method_return(m, NULL);
}

static int method_connect(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Dev *d = userdata;
        (void) error;
        if (!d->connected) {
                d->connected = 1;
                /* GATT is cached: services are resolved as soon as the link is up. */
                (void) sd_bus_emit_properties_changed(bus, d->path, "org.bluez.Device1", "Connected", "ServicesResolved",
                                                      NULL);
        }
        return sd_bus_reply_method_return(m, NULL);
}

static int method_disconnect(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Dev *d = userdata;
        (void) error;
        if (d->connected) {
                d->connected = 0;
                (void) sd_bus_emit_properties_changed(bus, d->path, "org.bluez.Device1", "Connected", "ServicesResolved",
                                                      NULL);
        }
        return sd_bus_reply_method_return(m, NULL);
}

static int flood(sd_event_source *s, uint64_t usec, void *userdata);
static void subscribed(Dev *d);

static int method_start_notify(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Dev *d = userdata;
        (void) error;
        if (!d->notifying) {
                d->notifying = 1;
                (void) sd_bus_emit_properties_changed(bus, d->chrc_path, "org.bluez.GattCharacteristic1", "Notifying",
                                                      NULL);
                subscribed(d);
        }
        return sd_bus_reply_method_return(m, NULL);
}

static void subscribed(Dev *d) {
        (void) d;
        if (++n_notifying == n_devs) {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                (void) sd_event_add_time(event, &flood_source, CLOCK_MONOTONIC,
                                         (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000 + 300000, 0,
                                         flood, NULL);
        }
}

/* AcquireNotify as bluetoothd does it: a SOCK_SEQPACKET pair, one notification per packet. */
static int method_acquire_notify(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Dev *d = userdata;
        int sv[2], r;

        if (d->notifying || d->acq_fd >= 0)
                return sd_bus_error_set(error, "org.bluez.Error.InProgress", "Operation already in progress");
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        d->acq_fd = sv[0];
        r = sd_bus_reply_method_return(m, "hq", sv[1], (uint16_t) 23);
        close(sv[1]);
        if (r >= 0)
                subscribed(d);
        return r;
}

static int method_read(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Dev *d = userdata;
        sd_bus_message *reply = NULL;
        uint8_t v[4] = { (uint8_t) d->seq, (uint8_t) (d->seq >> 8), (uint8_t) (d->seq >> 16), (uint8_t) (d->seq >> 24) };
        int r;
        (void) error;
        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_append_array(reply, 'y', v, sizeof v);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        sd_bus_message_unref(reply);
        return r;
}

static const sd_bus_vtable adapter_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Address", "s", get_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Powered", "b", get_bool, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Discovering", "b", get_bool, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD("StartDiscovery", "", "", method_ok, 0),
        SD_BUS_METHOD("StopDiscovery", "", "", method_ok, 0),
        SD_BUS_METHOD("SetDiscoveryFilter", "a{sv}", "", method_ok, 0),
        SD_BUS_METHOD("RemoveDevice", "o", "", method_ok, 0),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable device_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Address", "s", get_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("AddressType", "s", get_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Name", "s", get_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Adapter", "o", get_path, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Connected", "b", get_bool, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ServicesResolved", "b", get_bool, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD("Connect", "", "", method_connect, 0),
        SD_BUS_METHOD("Disconnect", "", "", method_disconnect, 0),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable service_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("UUID", "s", get_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Device", "o", get_path, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Primary", "b", get_bool, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable chrc_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("UUID", "s", get_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Service", "o", get_path, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Flags", "as", get_flags, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Value", "ay", get_value, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Notifying", "b", get_bool, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD("StartNotify", "", "", method_start_notify, 0),
        SD_BUS_METHOD("StopNotify", "", "", method_ok, 0),
        SD_BUS_METHOD("AcquireNotify", "a{sv}", "hq", method_acquire_notify, 0),
        SD_BUS_METHOD("ReadValue", "a{sv}", "ay", method_read, 0),
        SD_BUS_METHOD("WriteValue", "aya{sv}", "", method_ok, 0),
        SD_BUS_VTABLE_END,
};

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int flood(sd_event_source *s, uint64_t usec, void *userdata) {
        uint8_t *value = calloc(1, value_size);
        double t0 = now_s(), t1;
        int r = 0;

        (void) s;
        (void) usec;
        (void) userdata;
        if (!value)
                return -ENOMEM;
        for (unsigned long i = 0; i < total; i++) {
                Dev *d = &devs[i % n_devs];
                sd_bus_message *m = NULL;
                uint32_t seq = d->seq++;

                value[0] = (uint8_t) seq;
                value[1] = (uint8_t) (seq >> 8);
                value[2] = (uint8_t) (seq >> 16);
                value[3] = (uint8_t) (seq >> 24);
                if (d->acq_fd >= 0) {
                        /* Blocking send: unlike bluetoothd, which drops on a full socket, wait. */
                        if (send(d->acq_fd, value, value_size, 0) < 0) {
                                fprintf(stderr, "emitter: send: %m\n");
                                break;
                        }
                        continue;
                }
                r = sd_bus_message_new_signal(bus, &m, d->chrc_path, "org.freedesktop.DBus.Properties",
                                              "PropertiesChanged");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", "org.bluez.GattCharacteristic1");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'a', "{sv}");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", "Value");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'v', "ay");
                if (r >= 0)
                        r = sd_bus_message_append_array(m, 'y', value, value_size);
                for (int k = 0; k < 3 && r >= 0; k++)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_message_append(m, "as", 0);
                while (r >= 0) {
                        r = sd_bus_send(bus, m, NULL);
                        if (r != -ENOBUFS)
                                break;
                        r = sd_bus_flush(bus);
                }
                sd_bus_message_unref(m);
                if (r < 0) {
                        fprintf(stderr, "emitter: send failed: %s\n", strerror(-r));
                        break;
                }
        }
        (void) sd_bus_flush(bus);
        t1 = now_s();
        free(value);
        printf("emitter: sent %lu notifications over %u characteristics in %.3f s (%.0f/s)\n", total, n_devs, t1 - t0,
               (double) total / (t1 - t0));
        fflush(stdout);
        return 0;
}

int main(int argc, char **argv) {
        int r;

        if (argc < 3) {
                fprintf(stderr, "usage: %s DEVICES NOTIFICATIONS [VALUE_SIZE]\n", argv[0]);
                return 2;
        }
        n_devs = (unsigned) strtoul(argv[1], NULL, 10);
        total = strtoul(argv[2], NULL, 10);
        if (argc > 3)
                value_size = (size_t) strtoul(argv[3], NULL, 10);
        if (n_devs == 0 || n_devs > 65535 || value_size < 4 || value_size > 512)
                return 2;
        devs = calloc(n_devs, sizeof *devs);
        if (!devs)
                return 1;
        r = sd_bus_open_system(&bus);
        if (r < 0) {
                fprintf(stderr, "emitter: bus: %s\n", strerror(-r));
                return 1;
        }
        r = sd_event_default(&event);
        if (r >= 0)
                r = sd_bus_attach_event(bus, event, 0);
        if (r >= 0)
                r = sd_bus_add_object_manager(bus, NULL, "/");
        if (r >= 0)
                r = sd_bus_add_object_vtable(bus, NULL, "/org/bluez/hci0", "org.bluez.Adapter1", adapter_vtable, NULL);
        for (unsigned i = 0; i < n_devs && r >= 0; i++) {
                Dev *d = &devs[i];
                d->index = i;
                d->acq_fd = -1;
                snprintf(d->address, sizeof d->address, "10:00:00:00:%02X:%02X", (i >> 8) & 0xff, i & 0xff);
                snprintf(d->path, sizeof d->path, "/org/bluez/hci0/dev_10_00_00_00_%02X_%02X", (i >> 8) & 0xff, i & 0xff);
                snprintf(d->svc_path, sizeof d->svc_path, "%s/service0010", d->path);
                snprintf(d->chrc_path, sizeof d->chrc_path, "%s/char0011", d->svc_path);
                r = sd_bus_add_object_vtable(bus, NULL, d->path, "org.bluez.Device1", device_vtable, d);
                if (r >= 0)
                        r = sd_bus_add_object_vtable(bus, NULL, d->svc_path, "org.bluez.GattService1", service_vtable, d);
                if (r >= 0)
                        r = sd_bus_add_object_vtable(bus, NULL, d->chrc_path, "org.bluez.GattCharacteristic1",
                                                     chrc_vtable, d);
        }
        if (r >= 0)
                r = sd_bus_request_name(bus, "org.bluez", 0);
        if (r < 0) {
                fprintf(stderr, "emitter: setup: %s\n", strerror(-r));
                return 1;
        }
        printf("emitter: ready with %u devices\n", n_devs);
        fflush(stdout);
        r = sd_event_loop(event);
        return r < 0 ? 1 : 0;
}
