/* SPDX-License-Identifier: MIT */
/*
 * The progress of BLE FOTA jobs on the Device1 objects of the D-Bus API.  As
 * systemd adds its cgroup and exec properties to a unit's interface from
 * their own vtables, this file adds the Fota* properties to Device1 with a
 * second fallback vtable for the same interface: sd-bus merges the two in
 * Get/GetAll, introspection and InterfacesAdded, and gateway-bus.c keeps
 * knowing nothing of FOTA.  The objects are gateway-bus.c's: a path is
 * served here only while it has its Device1 object.
 */
#include <stdlib.h>
#include <strings.h>

#include "blefota-bus.h"
#include "bus-props.h"
#include "log.h"
#include "util.h"

/* A device whose job was shown: the values last signalled, until the job is gone and that is shown. */
typedef struct Shown Shown;
struct Shown {
        Shown *next;
        char address[BLE_ADDR_STR_MAX];
        BusValue last[5];
        bool dirty;
};

struct BleFotaBus {
        sd_event *event;
        GatewayBus *gateway_bus;
        BleFotaManager *manager;
        sd_bus_slot *slot;
        sd_event_source *timer;
        Shown *shown;
};

/* What the fill function is given: the device, by its address. */
typedef struct FotaObject {
        BleFotaBus *bus;
        const char *address;
} FotaObject;

static const BusProperty fota_props[] = {
        { .name = "FotaJobId" },     { .name = "FotaStage" },      { .name = "FotaProgress" },
        { .name = "FotaBytesDone" }, { .name = "FotaBytesTotal" },
};

static void fota_fill(void *object, BusValue *v) {
        const FotaObject *o = object;
        BleFotaProgress p = {};
        bool job = blefota_manager_job_progress(o->bus->manager, o->address, &p) >= 0;

        bus_value_s(&v[0], job ? p.job_id : NULL);
        bus_value_s(&v[1], job ? p.stage : NULL);
        bus_value_y(&v[2], job ? (uint8_t) MIN(p.percent, 100u) : 0);
        bus_value_t(&v[3], job ? p.done : 0);
        bus_value_t(&v[4], job ? p.total : 0);
}

static const BusInterface fota_iface = { GATEWAY_BUS_PREFIX "Device1", fota_props, ELEMENTSOF(fota_props),
                                         fota_fill };

static int fota_property_get(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        BleFotaBus *b = userdata;
        FotaObject o = { b, gateway_bus_device_address(b->gateway_bus, path) };
        (void) bus, (void) interface;

        if (!o.address)
                return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_OBJECT, "No device at %s", path);
        return bus_property_get(&fota_iface, &o, property, reply, error);
}

/* The paths of gateway-bus.c's Device1 objects, and only those. */
static int fota_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                            sd_bus_error *error) {
        BleFotaBus *b = userdata;
        (void) bus, (void) interface, (void) error;

        if (!gateway_bus_device_address(b->gateway_bus, path))
                return 0;
        *found = b;
        return 1;
}

static const sd_bus_vtable fota_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("FotaJobId", "s", fota_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("FotaStage", "s", fota_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("FotaProgress", "y", fota_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("FotaBytesDone", "t", fota_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("FotaBytesTotal", "t", fota_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END,
};

static Shown *shown_free(Shown *s) {
        if (!s)
                return NULL;
        bus_values_clear(s->last, ELEMENTSOF(s->last));
        free(s);
        return NULL;
}

static Shown *shown_find(BleFotaBus *b, const char *address) {
        for (Shown *s = b->shown; s; s = s->next)
                if (strcasecmp(s->address, address) == 0)
                        return s;
        return NULL;
}

/* Signals what changed since the last signal; forgets the device once it shows no job. */
static void shown_flush(BleFotaBus *b, Shown *s) {
        FotaObject o = { b, s->address };
        const char *path = gateway_bus_device_path(b->gateway_bus, s->address);
        int r;

        s->dirty = false;
        /* No object (not desired now): only remembered; the object shows the values when it comes. */
        r = bus_properties_update(path ? gateway_bus_get_bus(b->gateway_bus) : NULL, path ? path : "/", &fota_iface,
                                  &o, s->last, true);
        if (r < 0)
                log_debug_errno(r, "Failed to signal the FOTA progress of %s, ignoring: %m", s->address);
        if (!s->last[0].s || !s->last[0].s[0])
                for (Shown **p = &b->shown; *p; p = &(*p)->next)
                        if (*p == s) {
                                *p = s->next;
                                shown_free(s);
                                return;
                        }
}

static int on_timer(sd_event_source *es, uint64_t usec, void *userdata) {
        BleFotaBus *b = userdata;
        (void) es, (void) usec;

        for (Shown *s = b->shown, *next; s; s = next) {
                next = s->next;
                if (s->dirty)
                        shown_flush(b, s);
        }
        return 0;
}

static void on_changed(BleFotaManager *m, const char *address, void *userdata) {
        BleFotaBus *b = userdata;
        BleFotaProgress p = {};
        bool job = blefota_manager_job_progress(m, address, &p) >= 0;
        int enabled = SD_EVENT_OFF, r;
        Shown *s;

        s = shown_find(b, address);
        if (!s) {
                if (!job)
                        return;
                s = calloc(1, sizeof *s);
                if (!s)
                        return (void) log_error_errno(ENOMEM, "Out of memory");
                snprintf(s->address, sizeof s->address, "%s", address);
                s->next = b->shown;
                b->shown = s;
        }
        s->dirty = true;
        /* A new job, a new stage, the end: at once (a watcher sees every stage). */
        if (!job || !streq_ptr(s->last[0].s, p.job_id) || !streq_ptr(s->last[1].s, p.stage))
                return shown_flush(b, s);
        /* Progress: with the next tick. */
        if (b->timer && sd_event_source_get_enabled(b->timer, &enabled) >= 0 && enabled != SD_EVENT_OFF)
                return;
        if (b->timer) {
                r = sd_event_source_set_time_relative(b->timer, BLEFOTA_BUS_INTERVAL_USEC);
                if (r >= 0)
                        r = sd_event_source_set_enabled(b->timer, SD_EVENT_ONESHOT);
        } else
                r = sd_event_add_time_relative(b->event, &b->timer, CLOCK_MONOTONIC, BLEFOTA_BUS_INTERVAL_USEC, 0,
                                               on_timer, b);
        if (r < 0)
                log_debug_errno(r, "Failed to schedule the FOTA progress signal, ignoring: %m");
}

int blefota_bus_new(sd_event *event, GatewayBus *gb, BleFotaManager *m, BleFotaBus **ret) {
        sd_bus *bus = gateway_bus_get_bus(gb);
        BleFotaBus *b;
        int r;

        if (!event || !ret)
                return -EINVAL;
        b = calloc(1, sizeof *b);
        if (!b)
                return -ENOMEM;
        b->event = sd_event_ref(event);
        b->gateway_bus = gb;
        b->manager = m;
        if (bus) {
                r = sd_bus_add_fallback_vtable(bus, &b->slot, GATEWAY_BUS_ROOT, fota_iface.name, fota_vtable,
                                               fota_object_find, b);
                if (r < 0) {
                        blefota_bus_free(b);
                        return r;
                }
        }
        if (m)
                blefota_manager_set_changed_callback(m, on_changed, b);
        *ret = b;
        return 0;
}

BleFotaBus *blefota_bus_free(BleFotaBus *b) {
        if (!b)
                return NULL;
        if (b->manager)
                blefota_manager_set_changed_callback(b->manager, NULL, NULL);
        while (b->shown) {
                Shown *s = b->shown;
                b->shown = s->next;
                shown_free(s);
        }
        sd_event_source_disable_unref(b->timer);
        sd_bus_slot_unref(b->slot);
        sd_event_unref(b->event);
        free(b);
        return NULL;
}
