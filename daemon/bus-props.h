/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Properties of the daemon's D-Bus objects as values computed by one fill
 * function per interface.  The same values answer Get/GetAll and, compared
 * with the ones last announced, decide which names a PropertiesChanged
 * carries: a property is signalled exactly when its value changed.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

typedef struct BusValue {
        char type; /* 's', 't', 'u', 'b', 'i', 'n', 'y', 'd' (its bits in t), or 'a' for "as"; 0 unset */
        uint64_t t;
        int64_t i;
        char *s;
        char **strv;
} BusValue;

typedef struct BusProperty {
        const char *name;
        bool quiet; /* not signalled (EmitsChangedSignal false or const) */
} BusProperty;

typedef struct BusInterface {
        const char *name;
        const BusProperty *props;
        size_t n_props;
        /* Fills v[0..n_props-1]; object is the vtable's userdata. */
        void (*fill)(void *object, BusValue *v);
} BusInterface;

void bus_value_s(BusValue *v, const char *s); /* NULL: "" */
void bus_value_t(BusValue *v, uint64_t x);
void bus_value_u(BusValue *v, uint32_t x);
void bus_value_b(BusValue *v, bool x);
void bus_value_i(BusValue *v, int32_t x);
void bus_value_n(BusValue *v, int16_t x);
void bus_value_y(BusValue *v, uint8_t x);
void bus_value_d(BusValue *v, double x);
void bus_value_strv(BusValue *v, char **l); /* takes l */
void bus_values_clear(BusValue *v, size_t n);

/* The property getter of every vtable whose userdata is the object of iface. */
int bus_property_get(const BusInterface *iface, void *object, const char *property, sd_bus_message *reply,
                     sd_bus_error *error);

/*
 * Fills the values again and emits PropertiesChanged on path for those that
 * differ from last (n_props values, zeroed the first time: nothing is then
 * emitted but last is filled).  bus may be NULL (only last is updated).
 */
int bus_properties_update(sd_bus *bus, const char *path, const BusInterface *iface, void *object, BusValue *last,
                          bool announce);
