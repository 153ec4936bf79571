/* SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include "bus-props.h"
#include "macro.h"
#include "util.h"

static void bus_value_reset(BusValue *v) {
        free(v->s);
        strv_free(v->strv);
        *v = (BusValue){};
}

void bus_value_s(BusValue *v, const char *s) {
        bus_value_reset(v);
        v->type = 's';
        v->s = strdup(s ? s : "");
}

static void bus_value_num(BusValue *v, char type, uint64_t t, int64_t i) {
        bus_value_reset(v);
        v->type = type;
        v->t = t;
        v->i = i;
}

void bus_value_t(BusValue *v, uint64_t x) {
        bus_value_num(v, 't', x, 0);
}
void bus_value_u(BusValue *v, uint32_t x) {
        bus_value_num(v, 'u', x, 0);
}
void bus_value_b(BusValue *v, bool x) {
        bus_value_num(v, 'b', x, 0);
}
void bus_value_i(BusValue *v, int32_t x) {
        bus_value_num(v, 'i', 0, x);
}
void bus_value_n(BusValue *v, int16_t x) {
        bus_value_num(v, 'n', 0, x);
}
void bus_value_y(BusValue *v, uint8_t x) {
        bus_value_num(v, 'y', x, 0);
}

/* Compared by its bits: a NaN that stays NaN is no change. */
void bus_value_d(BusValue *v, double x) {
        uint64_t bits;
        memcpy(&bits, &x, sizeof bits);
        bus_value_num(v, 'd', bits, 0);
}

void bus_value_strv(BusValue *v, char **l) {
        bus_value_reset(v);
        v->type = 'a';
        v->strv = l;
}

void bus_values_clear(BusValue *v, size_t n) {
        for (size_t i = 0; i < n; i++)
                bus_value_reset(&v[i]);
}

static bool bus_value_equal(const BusValue *a, const BusValue *b) {
        size_t n;

        if (a->type != b->type || a->t != b->t || a->i != b->i || !streq_ptr(a->s, b->s))
                return false;
        n = strv_length(a->strv);
        if (n != strv_length(b->strv))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!streq(a->strv[i], b->strv[i]))
                        return false;
        return true;
}

static int bus_value_append(sd_bus_message *m, const BusValue *v) {
        switch (v->type) {
        case 's':
                return sd_bus_message_append_basic(m, 's', v->s ? v->s : "");
        case 't':
                return sd_bus_message_append_basic(m, 't', &v->t);
        case 'u': {
                uint32_t x = (uint32_t) v->t;
                return sd_bus_message_append_basic(m, 'u', &x);
        }
        case 'b': {
                int x = v->t != 0;
                return sd_bus_message_append_basic(m, 'b', &x);
        }
        case 'i': {
                int32_t x = (int32_t) v->i;
                return sd_bus_message_append_basic(m, 'i', &x);
        }
        case 'n': {
                int16_t x = (int16_t) v->i;
                return sd_bus_message_append_basic(m, 'n', &x);
        }
        case 'y': {
                uint8_t x = (uint8_t) v->t;
                return sd_bus_message_append_basic(m, 'y', &x);
        }
        case 'd': {
                double x;
                memcpy(&x, &v->t, sizeof x);
                return sd_bus_message_append_basic(m, 'd', &x);
        }
        case 'a':
                return sd_bus_message_append_strv(m, v->strv);
        default:
                return -EINVAL;
        }
}

int bus_property_get(const BusInterface *iface, void *object, const char *property, sd_bus_message *reply,
                     sd_bus_error *error) {
        BusValue v[iface->n_props];
        int r = -ENOENT;

        memset(v, 0, sizeof v);
        iface->fill(object, v);
        for (size_t i = 0; i < iface->n_props; i++)
                if (streq(iface->props[i].name, property)) {
                        r = bus_value_append(reply, &v[i]);
                        break;
                }
        bus_values_clear(v, iface->n_props);
        if (r == -ENOENT)
                return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_PROPERTY, "Unknown property %s", property);
        return r;
}

int bus_properties_update(sd_bus *bus, const char *path, const BusInterface *iface, void *object, BusValue *last,
                          bool announce) {
        const char *changed[iface->n_props + 1];
        BusValue v[iface->n_props];
        size_t n = 0;

        memset(v, 0, sizeof v);
        iface->fill(object, v);
        for (size_t i = 0; i < iface->n_props; i++) {
                if (!iface->props[i].quiet && !bus_value_equal(&v[i], &last[i]))
                        changed[n++] = iface->props[i].name;
                bus_value_reset(&last[i]);
                last[i] = v[i];
        }
        changed[n] = NULL;
        if (!bus || !announce || n == 0)
                return 0;
        return sd_bus_emit_properties_changed_strv(bus, path, iface->name, (char **) changed);
}
