/* SPDX-License-Identifier: MIT */
/*
 * One desired BLE device: its connection state machine
 * (idle → connecting → resolving → ready → backoff), its GATT model and its
 * queue of GATT operations.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "message-ids.h"
#include "ble-internal.h"
#include "log.h"
#include "util.h"

/* journalctl MESSAGE_ID=…: explained in the journal catalog. */

static const char *const device_state_table[_BLE_DEVICE_STATE_MAX] = {
        [BLE_DEVICE_IDLE] = "idle",
        [BLE_DEVICE_CONNECTING] = "connecting",
        [BLE_DEVICE_RESOLVING] = "resolving",
        [BLE_DEVICE_READY] = "ready",
        [BLE_DEVICE_BACKOFF] = "backoff",
};

const char *ble_device_state_to_string(BleDeviceState s) {
        return s < _BLE_DEVICE_STATE_MAX ? device_state_table[s] : NULL;
}

static const char *const write_mode_table[_BLE_WRITE_MODE_MAX] = {
        [BLE_WRITE_AUTO] = "auto",
        [BLE_WRITE_REQUEST] = "request",
        [BLE_WRITE_COMMAND] = "command",
};

const char *ble_write_mode_to_string(BleWriteMode m) {
        return m < _BLE_WRITE_MODE_MAX ? write_mode_table[m] : NULL;
}

static const char *const op_kind_table[_BLE_OP_KIND_MAX] = {
        [BLE_OP_READ_CHRC] = "read",
        [BLE_OP_WRITE_CHRC] = "write",
        [BLE_OP_READ_DESC] = "read-descriptor",
        [BLE_OP_WRITE_DESC] = "write-descriptor",
        [BLE_OP_START_NOTIFY] = "start-notify",
        [BLE_OP_STOP_NOTIFY] = "stop-notify",
};

static const char *op_kind_to_string(BleOpKind k) {
        return k < _BLE_OP_KIND_MAX ? op_kind_table[k] : NULL;
}

static const struct {
        const char *flag;
        unsigned bit;
} flag_table[] = {
        { "broadcast", BLE_CHRC_BROADCAST },
        { "read", BLE_CHRC_READ },
        { "write-without-response", BLE_CHRC_WRITE_WITHOUT_RESPONSE },
        { "write", BLE_CHRC_WRITE },
        { "notify", BLE_CHRC_NOTIFY },
        { "indicate", BLE_CHRC_INDICATE },
        { "authenticated-signed-writes", BLE_CHRC_AUTHENTICATED_SIGNED_WRITES },
        { "extended-properties", BLE_CHRC_EXTENDED_PROPERTIES },
        /* Extended properties imply the bit (Core spec Vol 3 Part G §3.3.3.1). */
        { "reliable-write", BLE_CHRC_EXTENDED_PROPERTIES },
        { "writable-auxiliaries", BLE_CHRC_EXTENDED_PROPERTIES },
};

unsigned ble_chrc_flags_to_properties(char *const *flags) {
        unsigned p = 0;
        for (; flags && *flags; flags++)
                for (size_t i = 0; i < ELEMENTSOF(flag_table); i++)
                        if (streq(*flags, flag_table[i].flag))
                                p |= flag_table[i].bit;
        return p;
}

/* ---- GATT model ---- */

static void gatt_values_clear(BleGattModel *g) {
        for (size_t i = 0; i < g->n_services; i++) {
                BleGattService *s = &g->services[i];
                for (size_t j = 0; j < s->n_chrcs; j++) {
                        BleGattChrc *c = &s->chrcs[j];
                        free(c->value);
                        c->value = NULL;
                        c->value_size = 0;
                        for (size_t k = 0; k < c->n_descs; k++) {
                                free(c->descs[k].value);
                                c->descs[k].value = NULL;
                                c->descs[k].value_size = 0;
                        }
                }
        }
}

static void gatt_clear(BleGattModel *g) {
        gatt_values_clear(g);
        for (size_t i = 0; i < g->n_services; i++) {
                BleGattService *s = &g->services[i];
                for (size_t j = 0; j < s->n_chrcs; j++) {
                        BleGattChrc *c = &s->chrcs[j];
                        for (size_t k = 0; k < c->n_descs; k++) {
                                free(c->descs[k].path);
                                free(c->descs[k].object_path);
                        }
                        free(c->descs);
                        free(c->path);
                        free(c->object_path);
                }
                free(s->chrcs);
                free(s->object_path);
        }
        free(g->services);
        *g = (BleGattModel){ 0 };
}

typedef struct GattCollect {
        BleManager *m;
        BleDevice *d;
        BleObject **objs;
        size_t n, cap;
        int error;
} GattCollect;

static void collect_gatt(BleObject *o, void *userdata) {
        GattCollect *c = userdata;
        if (c->error < 0 || o->kind == BLE_OBJ_ADAPTER || o->kind == BLE_OBJ_DEVICE)
                return;
        if (ble_manager_device_for_object(c->m, o) != c->d)
                return;
        if (c->n == c->cap) {
                size_t cap = c->cap ? c->cap * 2 : 32;
                BleObject **n = realloc(c->objs, cap * sizeof *n);
                if (!n) {
                        c->error = -ENOMEM;
                        return;
                }
                c->objs = n;
                c->cap = cap;
        }
        c->objs[c->n++] = o;
}

static int cmp_service(const void *a, const void *b) {
        const BleGattService *x = a, *y = b;
        int r = strcmp(x->uuid, y->uuid);
        return r ? r : strcmp(x->object_path, y->object_path);
}
static int cmp_chrc(const void *a, const void *b) {
        const BleGattChrc *x = a, *y = b;
        int r = strcmp(x->uuid, y->uuid);
        return r ? r : strcmp(x->object_path, y->object_path);
}
static int cmp_desc(const void *a, const void *b) {
        const BleGattDesc *x = a, *y = b;
        int r = strcmp(x->uuid, y->uuid);
        return r ? r : strcmp(x->object_path, y->object_path);
}

/*
 * BlueZ's descriptor Flags ("read", "encrypt-read", "secure-read", ...).  A
 * descriptor without Flags is tried: a refused read costs one round trip.
 */
static bool desc_flags_readable(char *const *flags) {
        if (!flags || !*flags)
                return true;
        for (; *flags; flags++) {
                size_t n = strlen(*flags);
                if (n >= 4 && streq(*flags + n - 4, "read"))
                        return true;
        }
        return false;
}

/* Builds the model from the mirror: objects tied together by their Device/Service/Characteristic properties. */
static int gatt_build(BleDevice *d, BleGattModel *ret) {
        GattCollect c = { .m = d->manager, .d = d };
        BleGattModel g = { 0 };
        int r = 0;

        ble_mirror_foreach(d->manager->mirror, collect_gatt, &c);
        if (c.error < 0) {
                free(c.objs);
                return c.error;
        }
        for (size_t i = 0; i < c.n; i++) {
                BleObject *o = c.objs[i];
                BleGattService *s;
                if (o->kind != BLE_OBJ_SERVICE)
                        continue;
                if (g.n_services >= BLE_GATT_SERVICES_MAX) {
                        r = -E2BIG;
                        goto fail;
                }
                s = realloc(g.services, (g.n_services + 1) * sizeof *s);
                if (!s) {
                        r = -ENOMEM;
                        goto fail;
                }
                g.services = s;
                s = &g.services[g.n_services];
                *s = (BleGattService){ .primary = o->service.primary };
                if (ble_uuid_normalize(o->service.uuid, s->uuid) < 0)
                        continue; /* a service without a usable UUID cannot be addressed */
                s->object_path = strdup(o->path);
                if (!s->object_path) {
                        r = -ENOMEM;
                        goto fail;
                }
                g.n_services++;
        }
        for (size_t i = 0; i < c.n; i++) {
                BleObject *o = c.objs[i];
                BleGattService *s = NULL;
                BleGattChrc *ch;
                if (o->kind != BLE_OBJ_CHRC)
                        continue;
                for (size_t j = 0; j < g.n_services; j++)
                        if (streq_ptr(g.services[j].object_path, o->chrc.service))
                                s = &g.services[j];
                if (!s)
                        continue;
                if (s->n_chrcs >= BLE_GATT_CHRCS_MAX) {
                        r = -E2BIG;
                        goto fail;
                }
                ch = realloc(s->chrcs, (s->n_chrcs + 1) * sizeof *ch);
                if (!ch) {
                        r = -ENOMEM;
                        goto fail;
                }
                s->chrcs = ch;
                ch = &s->chrcs[s->n_chrcs];
                *ch = (BleGattChrc){ .properties = ble_chrc_flags_to_properties(o->chrc.flags), .mtu = o->chrc.mtu };
                if (ble_uuid_normalize(o->chrc.uuid, ch->uuid) < 0)
                        continue;
                ch->object_path = strdup(o->path);
                if (!ch->object_path || asprintf(&ch->path, "%s/%s", s->uuid, ch->uuid) < 0) {
                        free(ch->object_path);
                        r = -ENOMEM;
                        goto fail;
                }
                s->n_chrcs++;
        }
        for (size_t i = 0; i < c.n; i++) {
                BleObject *o = c.objs[i];
                BleGattChrc *ch = NULL;
                BleGattDesc *ds;
                if (o->kind != BLE_OBJ_DESC)
                        continue;
                for (size_t j = 0; j < g.n_services && !ch; j++)
                        for (size_t k = 0; k < g.services[j].n_chrcs; k++)
                                if (streq_ptr(g.services[j].chrcs[k].object_path, o->desc.characteristic)) {
                                        ch = &g.services[j].chrcs[k];
                                        break;
                                }
                if (!ch)
                        continue;
                if (ch->n_descs >= BLE_GATT_DESCS_MAX) {
                        r = -E2BIG;
                        goto fail;
                }
                ds = realloc(ch->descs, (ch->n_descs + 1) * sizeof *ds);
                if (!ds) {
                        r = -ENOMEM;
                        goto fail;
                }
                ch->descs = ds;
                ds = &ch->descs[ch->n_descs];
                *ds = (BleGattDesc){ 0 };
                if (ble_uuid_normalize(o->desc.uuid, ds->uuid) < 0)
                        continue;
                /* The CCC's value is the gateway's own subscription, never read. */
                ds->readable = !streq(ds->uuid, "2902") && desc_flags_readable(o->desc.flags);
                ds->object_path = strdup(o->path);
                if (!ds->object_path || asprintf(&ds->path, "%s/%s", ch->path, ds->uuid) < 0) {
                        free(ds->object_path);
                        r = -ENOMEM;
                        goto fail;
                }
                ch->n_descs++;
        }
        free(c.objs);
        c.objs = NULL;
        /* Deterministic order, independent of handles and hash order. */
        if (g.n_services > 1)
                qsort(g.services, g.n_services, sizeof *g.services, cmp_service);
        for (size_t i = 0; i < g.n_services; i++) {
                BleGattService *sv = &g.services[i];
                if (sv->n_chrcs > 1)
                        qsort(sv->chrcs, sv->n_chrcs, sizeof(BleGattChrc), cmp_chrc);
                for (size_t j = 0; j < sv->n_chrcs; j++)
                        if (sv->chrcs[j].n_descs > 1)
                                qsort(sv->chrcs[j].descs, sv->chrcs[j].n_descs, sizeof(BleGattDesc), cmp_desc);
        }
        *ret = g;
        return 0;
fail:
        free(c.objs);
        gatt_clear(&g);
        return r;
}

static int gatt_refresh(BleDevice *d) {
        BleGattModel g;
        int r;

        if (!d->gatt_dirty)
                return 0;
        r = gatt_build(d, &g);
        if (r < 0)
                return log_fields_errno(LOG_ERR, r, LOG_FIELDS({ "BT_ADDR", d->address }),
                                        "%s: failed to build the GATT model: %m", d->address);
        gatt_clear(&d->gatt);
        d->gatt = g;
        d->gatt_dirty = false;
        return 0;
}

const BleGattChrc *ble_gatt_find_chrc(const BleGattModel *g, const char *service_uuid, const char *chrc_uuid) {
        char su[BLE_UUID_STR_MAX], cu[BLE_UUID_STR_MAX];

        if (!g || ble_uuid_normalize(service_uuid, su) < 0 || ble_uuid_normalize(chrc_uuid, cu) < 0)
                return NULL;
        for (size_t i = 0; i < g->n_services; i++) {
                if (!streq(g->services[i].uuid, su))
                        continue;
                for (size_t j = 0; j < g->services[i].n_chrcs; j++)
                        if (streq(g->services[i].chrcs[j].uuid, cu))
                                return &g->services[i].chrcs[j];
        }
        return NULL;
}

static const BleGattDesc *gatt_find_desc(const BleGattChrc *c, const char *desc_uuid) {
        for (size_t i = 0; c && i < c->n_descs; i++)
                if (streq(c->descs[i].uuid, desc_uuid))
                        return &c->descs[i];
        return NULL;
}

const BleGattModel *ble_device_gatt(BleDevice *d) {
        if (d->state != BLE_DEVICE_READY)
                return NULL;
        if (gatt_refresh(d) < 0)
                return NULL;
        return &d->gatt;
}

void ble_device_gatt_changed(BleDevice *d) {
        d->gatt_dirty = true;
}

/* ---- operations ---- */

static void echo_clear(BleDevice *d) {
        for (size_t i = 0; i < d->n_echo; i++)
                free(d->echo[i].data);
        free(d->echo);
        d->echo = NULL;
        d->n_echo = d->n_echo_allocated = 0;
}

static BleOp *op_free(BleOp *op) {
        if (!op)
                return NULL;
        sd_bus_slot_unref(op->slot);
        sd_bus_message_unref(op->reply);
        free(op->data);
        free(op->object_path);
        free(op);
        return NULL;
}

static void op_complete(BleDevice *d, BleOp *op, const BleOpResult *res) {
        if (res->error < 0)
                log_fields(LOG_DEBUG, LOG_FIELDS({ "BT_ADDR", d->address }), "%s: %s %s/%s failed: %s", d->address,
                           op_kind_to_string(op->kind), op->service, op->chrc, strerror(-res->error));
        if (op->cb)
                op->cb(d, res, op->userdata);
        else if (res->error < 0)
                log_fields(LOG_WARNING, LOG_FIELDS({ "BT_ADDR", d->address }), "%s: %s on %s/%s failed: %s%s%s",
                           d->address, op_kind_to_string(op->kind), op->service, op->chrc, strerror(-res->error),
                           res->error_message ? ": " : "", strempty(res->error_message));
}

static void op_fail(BleDevice *d, BleOp *op, int error) {
        BleOpResult res = { .error = error, .att_error = -1 };
        op_complete(d, op, &res);
}

/* Fails the queued and in-flight operations: the link went down or the device is being dropped. */
static void ops_fail_all(BleDevice *d, int error) {
        BleOp *inflight = TAKE_PTR(d->inflight);

        d->inflight_tail = NULL;
        d->n_inflight = 0;
        /* Cancel every call before the first callback runs, so that no reply comes in between. */
        for (BleOp *op = inflight; op; op = op->next)
                op->slot = sd_bus_slot_unref(op->slot);
        echo_clear(d);
        while (inflight) {
                BleOp *op = inflight;
                inflight = op->next;
                op_fail(d, op, error);
                op_free(op);
        }
        while (d->ops_head) {
                BleOp *op = d->ops_head;
                d->ops_head = op->next;
                d->n_ops--;
                op_fail(d, op, error);
                op_free(op);
        }
        d->ops_tail = NULL;
}

static bool wish_matches(const BleDevice *d, const char *service, const char *chrc) {
        for (size_t i = 0; i < d->n_wishes; i++)
                if (streq(d->wishes[i].service, service) && streq(d->wishes[i].chrc, chrc))
                        return true;
        return false;
}

static void deliver_notification(BleDevice *d, const char *su, const char *cu, const uint8_t *v, size_t n) {
        BleManager *m = d->manager;
        if (d->own) {
                if (d->own_cb.notification)
                        d->own_cb.notification(d, su, cu, v, n, d->own_userdata);
        } else if (m->cb.notification)
                m->cb.notification(m, d, su, cu, v, n, m->userdata);
}

static BleNotifyWish *wish_find(BleDevice *d, const char *service, const char *chrc) {
        for (size_t i = 0; i < d->n_wishes; i++)
                if (streq(d->wishes[i].service, service) && streq(d->wishes[i].chrc, chrc))
                        return &d->wishes[i];
        return NULL;
}

static void wish_release(BleNotifyWish *w) {
        w->io = sd_event_source_disable_unref(w->io);
        w->fd = safe_close(w->fd);
}

static void wishes_release(BleDevice *d) {
        for (size_t i = 0; i < d->n_wishes; i++)
                wish_release(&d->wishes[i]);
}

static int op_queue(BleDevice *d, BleOpKind kind, const char *service, const char *chrc, const char *desc,
                    const uint8_t *data, size_t size, BleWriteMode mode, BleOpCallback cb, void *userdata,
                    bool require_ready);

/*
 * AcquireNotify socket (spec §1.3, §1.5.6): SOCK_SEQPACKET, one notification
 * per packet.  bluetoothd closes it on disconnect or MTU change; while the
 * device stays ready the subscription is acquired again.
 */
static int acquired_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        BleDevice *d = userdata;
        BleNotifyWish *w = NULL;
        uint8_t buf[BLE_VALUE_MAX + 1];
        bool dropped = false;

        (void) s;
        for (size_t i = 0; i < d->n_wishes; i++)
                if (d->wishes[i].fd == fd)
                        w = &d->wishes[i];
        if (!w)
                return 0;
        for (unsigned i = 0; i < 256; i++) {
                ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                break;
                        dropped = true;
                        break;
                }
                if (n == 0) {
                        dropped = true;
                        break;
                }
                if ((size_t) n > BLE_VALUE_MAX) {
                        log_fields(LOG_WARNING, LOG_FIELDS({ "BT_ADDR", d->address }),
                                   "%s: notification of %zd bytes over the 512-byte cap, dropped", d->address, n);
                        continue;
                }
                deliver_notification(d, w->service, w->chrc, buf, (size_t) n);
                /* The callback may have disabled this very subscription. */
                if (w->fd != fd)
                        return 0;
        }
        if (!dropped && (revents & (EPOLLHUP | EPOLLERR)))
                dropped = true;
        if (dropped) {
                char service[BLE_UUID_STR_MAX], chrc[BLE_UUID_STR_MAX];
                memcpy(service, w->service, sizeof service);
                memcpy(chrc, w->chrc, sizeof chrc);
                wish_release(w);
                if (d->state == BLE_DEVICE_READY) {
                        log_fields(LOG_INFO, LOG_FIELDS({ "BT_ADDR", d->address }),
                                   "%s: notification socket of %s/%s dropped, acquiring it again", d->address, service,
                                   chrc);
                        (void) op_queue(d, BLE_OP_START_NOTIFY, service, chrc, NULL, NULL, 0, BLE_WRITE_AUTO, NULL,
                                        NULL, true);
                }
        }
        return 0;
}

static int acquired_setup(BleDevice *d, BleOp *op, sd_bus_message *reply) {
        BleNotifyWish *w = wish_find(d, op->service, op->chrc);
        uint16_t mtu;
        int fd, r;

        r = sd_bus_message_read(reply, "hq", &fd, &mtu);
        if (r < 0)
                return -EBADMSG;
        if (!w)
                return 0; /* disabled meanwhile: the reply's fd is closed with the message */
        wish_release(w);
        w->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (w->fd < 0) {
                w->fd = -EBADF;
                return -errno;
        }
        r = sd_event_add_io(d->manager->event, &w->io, w->fd, EPOLLIN, acquired_io, d);
        if (r < 0) {
                wish_release(w);
                return r;
        }
        (void) sd_event_source_set_description(w->io, "ble-acquired-notify");
        return 0;
}

static void ops_kick(BleDevice *d);

/* Completes an operation taken off the in-flight list: with its reply, or the error it failed with. */
static void op_finish(BleDevice *d, BleOp *op) {
        sd_bus_message *reply = op->reply;
        const sd_bus_error *e;
        BleOpResult res = { .att_error = -1 };
        const void *p = NULL;
        size_t n = 0;
        int r;

        if (!reply) {
                op_fail(d, op, op->error < 0 ? op->error : -EIO);
                op_free(op);
                return;
        }
        e = sd_bus_message_get_error(reply);
        if (e) {
                res.error = ble_error_from_dbus(e, &res.att_error);
                res.error_name = e->name;
                res.error_message = e->message;
        } else if (op->kind == BLE_OP_READ_CHRC || op->kind == BLE_OP_READ_DESC) {
                r = sd_bus_message_read_array(reply, 'y', &p, &n);
                if (r < 0)
                        res.error = -EBADMSG;
                else if (n > BLE_VALUE_MAX)
                        res.error = -EMSGSIZE;
                else {
                        res.value = p;
                        res.size = n;
                }
        }

        if (!e && op->kind == BLE_OP_START_NOTIFY && op->acquire) {
                r = acquired_setup(d, op, reply);
                if (r < 0)
                        res.error = r;
        }
        if (op->kind == BLE_OP_READ_CHRC) {
                /*
                 * bluetoothd emits PropertiesChanged(Value) for a read and flushes it before the
                 * reply (spec §1.3): the last Value signal equal to the result is the read's echo.
                 * The ones before it were notifications that happened to arrive meanwhile.
                 */
                size_t keep = d->n_echo;
                if (res.error == 0 && keep > 0 && d->echo[keep - 1].size == n &&
                    (n == 0 || memcmp(d->echo[keep - 1].data, p, n) == 0))
                        keep--;
                if (wish_matches(d, op->service, op->chrc))
                        for (size_t i = 0; i < keep; i++)
                                deliver_notification(d, op->service, op->chrc, d->echo[i].data, d->echo[i].size);
                echo_clear(d);
        }
        if (res.error == 0)
                switch (op->kind) {
                case BLE_OP_START_NOTIFY:
                case BLE_OP_STOP_NOTIFY:
                        log_fields(LOG_INFO, LOG_FIELDS({ "BT_ADDR", d->address }), "%s: notifications %s on %s/%s",
                                   d->address, op->kind == BLE_OP_START_NOTIFY ? "enabled" : "disabled", op->service,
                                   op->chrc);
                        break;
                case BLE_OP_READ_CHRC:
                case BLE_OP_WRITE_CHRC:
                case BLE_OP_READ_DESC:
                case BLE_OP_WRITE_DESC:
                case _BLE_OP_KIND_MAX:
                        break;
                }
        op_complete(d, op, &res);
        op_free(op);
}

/* Takes the oldest operation in flight off the list. */
static BleOp *inflight_pop(BleDevice *d) {
        BleOp *op = d->inflight;

        if (!op)
                return NULL;
        d->inflight = op->next;
        if (!d->inflight)
                d->inflight_tail = NULL;
        d->n_inflight--;
        op->next = NULL;
        return op;
}

/* Completes the answered operations at the head of the in-flight list, in the order they were sent. */
static void inflight_complete(BleDevice *d) {
        /* A callback may fail everything (disconnect): the list is read again after each. */
        while (d->inflight && d->inflight->done)
                op_finish(d, inflight_pop(d));
}

static int op_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        BleOp *op = userdata;
        BleDevice *d = op->device;

        (void) ret_error;
        op->slot = sd_bus_slot_unref(op->slot);
        op->reply = sd_bus_message_ref(reply);
        op->done = true;
        inflight_complete(d);
        ops_kick(d);
        return 0;
}

/* WriteValue's "type" option for a characteristic write in this mode. */
static int write_type(const BleGattChrc *c, BleWriteMode mode, const char **ret) {
        switch (mode) {
        case BLE_WRITE_AUTO:
                if (c->properties & BLE_CHRC_WRITE)
                        *ret = "request";
                else if (c->properties & BLE_CHRC_WRITE_WITHOUT_RESPONSE)
                        *ret = "command";
                else
                        return -EPERM;
                return 0;
        case BLE_WRITE_REQUEST:
                if (!(c->properties & BLE_CHRC_WRITE))
                        return -EOPNOTSUPP;
                *ret = "request";
                return 0;
        case BLE_WRITE_COMMAND:
                if (!(c->properties & BLE_CHRC_WRITE_WITHOUT_RESPONSE))
                        return -EOPNOTSUPP;
                *ret = "command";
                return 0;
        case _BLE_WRITE_MODE_MAX:
                break;
        }
        return -EINVAL;
}

/* Whether the operation is a write command (write without response), which may be in flight
 * together with other write commands of the device. */
static bool op_is_command(BleDevice *d, const BleOp *op) {
        const BleGattChrc *c;
        const char *type = NULL;

        if (op->kind != BLE_OP_WRITE_CHRC || op->local || gatt_refresh(d) < 0)
                return false;
        c = ble_gatt_find_chrc(&d->gatt, op->service, op->chrc);
        return c && write_type(c, op->mode, &type) >= 0 && streq(type, "command");
}

/* Resolves the operation's object by UUID against the current model and sends the call. */
static int op_send(BleDevice *d, BleOp *op) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        BleManager *m = d->manager;
        const BleGattChrc *c;
        const BleGattDesc *ds = NULL;
        const char *member = NULL, *iface = "org.bluez.GattCharacteristic1";
        const char *type = NULL;
        int r;

        r = gatt_refresh(d);
        if (r < 0)
                return r;
        c = ble_gatt_find_chrc(&d->gatt, op->service, op->chrc);
        if (!c)
                return -ENOENT;
        switch (op->kind) {
        case BLE_OP_READ_CHRC:
                member = "ReadValue";
                break;
        case BLE_OP_WRITE_CHRC:
                member = "WriteValue";
                r = write_type(c, op->mode, &type);
                if (r < 0)
                        return r;
                break;
        case BLE_OP_READ_DESC:
        case BLE_OP_WRITE_DESC:
                ds = gatt_find_desc(c, op->desc);
                if (!ds)
                        return -ENOENT;
                iface = "org.bluez.GattDescriptor1";
                member = op->kind == BLE_OP_READ_DESC ? "ReadValue" : "WriteValue";
                break;
        case BLE_OP_START_NOTIFY:
        case BLE_OP_STOP_NOTIFY:
                if (!(c->properties & (BLE_CHRC_NOTIFY | BLE_CHRC_INDICATE)))
                        return -EOPNOTSUPP;
                member = op->kind == BLE_OP_START_NOTIFY ? "StartNotify" : "StopNotify";
                /* AcquireNotify serves notifications only, not indications (spec §1.3). */
                if (op->kind == BLE_OP_START_NOTIFY && m->config->acquire_notify && (c->properties & BLE_CHRC_NOTIFY)) {
                        member = "AcquireNotify";
                        op->acquire = true;
                }
                break;
        case _BLE_OP_KIND_MAX:
                return -EINVAL;
        }
        free(op->object_path);
        op->object_path = strdup(ds ? ds->object_path : c->object_path);
        if (!op->object_path)
                return -ENOMEM;
        r = sd_bus_message_new_method_call(m->bus, &msg, BLUEZ_SERVICE, op->object_path, iface, member);
        if (r < 0)
                return r;
        if (op->kind == BLE_OP_WRITE_CHRC || op->kind == BLE_OP_WRITE_DESC) {
                r = sd_bus_message_append_array(msg, 'y', op->data, op->size);
                if (r < 0)
                        return r;
        }
        if (op->acquire || (op->kind != BLE_OP_START_NOTIFY && op->kind != BLE_OP_STOP_NOTIFY)) {
                r = sd_bus_message_open_container(msg, 'a', "{sv}");
                if (r >= 0 && type)
                        r = sd_bus_message_append(msg, "{sv}", "type", "s", type);
                if (r >= 0)
                        r = sd_bus_message_close_container(msg);
                if (r < 0)
                        return r;
        }
        return sd_bus_call_async(m->bus, &op->slot, msg, op_reply, op, m->op_timeout_usec);
}

/* Whether the operation at the head of the queue may be sent now: when nothing is in flight, or when
 * it and the ones in flight are write commands and there is room. */
static bool ops_may_start(BleDevice *d) {
        if (!d->ops_head || d->state != BLE_DEVICE_READY)
                return false;
        if (d->n_inflight == 0)
                return true;
        return d->inflight->command && d->n_inflight < BLE_COMMANDS_INFLIGHT_MAX && op_is_command(d, d->ops_head);
}

static void ops_start_next(BleDevice *d) {
        while (ops_may_start(d)) {
                BleOp *op = d->ops_head;
                int r;

                d->ops_head = op->next;
                if (!d->ops_head)
                        d->ops_tail = NULL;
                d->n_ops--;
                op->next = NULL;
                if (op->local) {
                        BleOpResult res = { .att_error = -1 };
                        op_complete(d, op, &res);
                        op_free(op);
                        continue;
                }
                op->command = op_is_command(d, op);
                if (d->n_inflight == 0)
                        echo_clear(d);
                r = op_send(d, op);
                if (r < 0 && d->n_inflight == 0) {
                        op_fail(d, op, r);
                        op_free(op);
                        continue;
                }
                if (r < 0) {
                        /* Write commands before it are in flight: it fails in its turn. */
                        op->slot = sd_bus_slot_unref(op->slot);
                        op->error = r;
                        op->done = true;
                }
                if (d->inflight_tail)
                        d->inflight_tail->next = op;
                else
                        d->inflight = op;
                d->inflight_tail = op;
                d->n_inflight++;
        }
}

static int ops_defer_handler(sd_event_source *s, void *userdata) {
        (void) s;
        ops_start_next(userdata);
        return 0;
}

/* Starts the next operation from the loop, so that callbacks never run inside the API call. */
static void ops_kick(BleDevice *d) {
        int r;

        if (!ops_may_start(d))
                return;
        if (!d->ops_defer) {
                r = sd_event_add_defer(d->manager->event, &d->ops_defer, ops_defer_handler, d);
                if (r < 0) {
                        log_error_errno(r, "Failed to schedule a GATT operation: %m");
                        return;
                }
                (void) sd_event_source_set_description(d->ops_defer, "ble-ops");
        }
        (void) sd_event_source_set_enabled(d->ops_defer, SD_EVENT_ONESHOT);
}

static int op_queue(BleDevice *d, BleOpKind kind, const char *service, const char *chrc, const char *desc,
                    const uint8_t *data, size_t size, BleWriteMode mode, BleOpCallback cb, void *userdata,
                    bool require_ready) {
        BleOp *op;

        if (require_ready && d->state != BLE_DEVICE_READY)
                return -ENOTCONN;
        if (size > BLE_VALUE_MAX || mode >= _BLE_WRITE_MODE_MAX)
                return -EINVAL;
        if (d->n_ops >= BLE_OPS_QUEUED_MAX)
                return -ENOBUFS;
        op = calloc(1, sizeof *op);
        if (!op)
                return -ENOMEM;
        *op = (BleOp){ .kind = kind, .mode = mode, .cb = cb, .userdata = userdata, .device = d };
        if (ble_uuid_normalize(service, op->service) < 0 || ble_uuid_normalize(chrc, op->chrc) < 0 ||
            (desc && ble_uuid_normalize(desc, op->desc) < 0)) {
                free(op);
                return -EINVAL;
        }
        if (size) {
                op->data = malloc(size);
                if (!op->data) {
                        free(op);
                        return -ENOMEM;
                }
                memcpy(op->data, data, size);
                op->size = size;
        }
        if (d->ops_tail)
                d->ops_tail->next = op;
        else
                d->ops_head = op;
        d->ops_tail = op;
        d->n_ops++;
        ops_kick(d);
        return 0;
}

int ble_device_read(BleDevice *d, const char *service_uuid, const char *chrc_uuid, BleOpCallback cb,
                    void *userdata) {
        return op_queue(d, BLE_OP_READ_CHRC, service_uuid, chrc_uuid, NULL, NULL, 0, BLE_WRITE_AUTO, cb, userdata,
                        true);
}

int ble_device_write(BleDevice *d, const char *service_uuid, const char *chrc_uuid, const uint8_t *value,
                     size_t size, BleWriteMode mode, BleOpCallback cb, void *userdata) {
        return op_queue(d, BLE_OP_WRITE_CHRC, service_uuid, chrc_uuid, NULL, value, size, mode, cb, userdata, true);
}

int ble_device_read_descriptor(BleDevice *d, const char *service_uuid, const char *chrc_uuid,
                               const char *desc_uuid, BleOpCallback cb, void *userdata) {
        if (!desc_uuid)
                return -EINVAL;
        return op_queue(d, BLE_OP_READ_DESC, service_uuid, chrc_uuid, desc_uuid, NULL, 0, BLE_WRITE_AUTO, cb,
                        userdata, true);
}

int ble_device_write_descriptor(BleDevice *d, const char *service_uuid, const char *chrc_uuid,
                                const char *desc_uuid, const uint8_t *value, size_t size, BleOpCallback cb,
                                void *userdata) {
        char du[BLE_UUID_STR_MAX];

        if (ble_uuid_normalize(desc_uuid, du) < 0)
                return -EINVAL;
        /* Spec §1.3: bluetoothd refuses CCCD writes; notifications go through StartNotify. */
        if (streq(du, "2902"))
                return -EPERM;
        return op_queue(d, BLE_OP_WRITE_DESC, service_uuid, chrc_uuid, du, value, size, BLE_WRITE_AUTO, cb,
                        userdata, true);
}

int ble_device_set_notify(BleDevice *d, const char *service_uuid, const char *chrc_uuid, bool enable,
                          BleOpCallback cb, void *userdata) {
        char su[BLE_UUID_STR_MAX], cu[BLE_UUID_STR_MAX];
        size_t i;
        int r;

        if (ble_uuid_normalize(service_uuid, su) < 0 || ble_uuid_normalize(chrc_uuid, cu) < 0)
                return -EINVAL;
        for (i = 0; i < d->n_wishes; i++)
                if (streq(d->wishes[i].service, su) && streq(d->wishes[i].chrc, cu))
                        break;
        bool was_acquired = false;
        if (enable && i == d->n_wishes) {
                if (d->n_wishes >= BLE_NOTIFY_WISHES_MAX)
                        return -ENOBUFS;
                BleNotifyWish *nw = reallocarray(d->wishes, d->n_wishes + 1, sizeof *nw);
                if (!nw)
                        return -ENOMEM;
                d->wishes = nw;
                d->wishes[d->n_wishes] = (BleNotifyWish){ .fd = -EBADF };
                memcpy(d->wishes[d->n_wishes].service, su, sizeof su);
                memcpy(d->wishes[d->n_wishes].chrc, cu, sizeof cu);
                d->n_wishes++;
        } else if (!enable && i < d->n_wishes) {
                /* Closing an acquired socket is what releases it. */
                was_acquired = d->wishes[i].fd >= 0;
                wish_release(&d->wishes[i]);
                memmove(&d->wishes[i], &d->wishes[i + 1], (d->n_wishes - i - 1) * sizeof d->wishes[0]);
                d->n_wishes--;
        }
        if (d->state != BLE_DEVICE_READY)
                return 1;
        r = op_queue(d, enable ? BLE_OP_START_NOTIFY : BLE_OP_STOP_NOTIFY, su, cu, NULL, NULL, 0, BLE_WRITE_AUTO, cb,
                     userdata, true);
        if (r >= 0 && was_acquired)
                d->ops_tail->local = true;
        return r;
}

void ble_device_chrc_value(BleDevice *d, BleObject *chrc, const char *service_uuid, const char *chrc_uuid) {
        const BleBytes *v = &chrc->chrc.value;

        if (d->state != BLE_DEVICE_READY && d->state != BLE_DEVICE_RESOLVING)
                return;
        if (d->state == BLE_DEVICE_RESOLVING && streq_ptr(d->discovery_path, chrc->path))
                return; /* the echo of a read for discovery (spec §1.3), not a notification */
        if (d->inflight && d->inflight->kind == BLE_OP_READ_CHRC && streq_ptr(d->inflight->object_path, chrc->path)) {
                /* Hold it until the read's reply tells whether it was the read's echo. */
                if (d->n_echo == BLE_ECHO_MAX) {
                        if (wish_matches(d, service_uuid, chrc_uuid))
                                deliver_notification(d, service_uuid, chrc_uuid, d->echo[0].data, d->echo[0].size);
                        free(d->echo[0].data);
                        memmove(&d->echo[0], &d->echo[1], (BLE_ECHO_MAX - 1) * sizeof d->echo[0]);
                        d->n_echo--;
                }
                if (d->n_echo == d->n_echo_allocated) {
                        size_t k = MIN(MAX(d->n_echo_allocated * 2, (size_t) 4), (size_t) BLE_ECHO_MAX);
                        BleBytes *ne = reallocarray(d->echo, k, sizeof *ne);
                        if (!ne)
                                return (void) log_error_errno(-ENOMEM, "Failed to hold a notification: %m");
                        d->echo = ne;
                        d->n_echo_allocated = k;
                }
                d->echo[d->n_echo].data = malloc(v->size ? v->size : 1);
                if (!d->echo[d->n_echo].data)
                        return (void) log_error_errno(-ENOMEM, "Failed to hold a notification: %m");
                if (v->size)
                        memcpy(d->echo[d->n_echo].data, v->data, v->size);
                d->echo[d->n_echo].size = v->size;
                d->n_echo++;
                return;
        }
        /* Only subscribed characteristics: Value also changes on reads, ours or another client's. */
        if (wish_matches(d, service_uuid, chrc_uuid))
                deliver_notification(d, service_uuid, chrc_uuid, v->data, v->size);
}

/* ---- values for the discovery result ---- */

/*
 * nRF Cloud's gateway-common reads every readable characteristic and
 * descriptor before it reports device_discover_result, and again after each
 * connection (the peer's values may have changed while it was away).  The
 * reads run one at a time while the device is RESOLVING, so the device only
 * becomes READY, and the result is only sent, with all of them done: a link
 * lost meanwhile leaves no half result.
 */

/* The n-th attribute to read, in model order. */
static bool discovery_item(BleDevice *d, size_t n, BleGattChrc **ret_chrc, BleGattDesc **ret_desc) {
        size_t i = 0;

        for (size_t a = 0; a < d->gatt.n_services; a++)
                for (size_t b = 0; b < d->gatt.services[a].n_chrcs; b++) {
                        BleGattChrc *c = &d->gatt.services[a].chrcs[b];
                        if ((c->properties & BLE_CHRC_READ) && i++ == n) {
                                *ret_chrc = c;
                                *ret_desc = NULL;
                                return true;
                        }
                        for (size_t k = 0; k < c->n_descs; k++)
                                if (c->descs[k].readable && i++ == n) {
                                        *ret_chrc = c;
                                        *ret_desc = &c->descs[k];
                                        return true;
                                }
                }
        return false;
}

/* Whether a failed read of attribute was logged already for this device; remembers it otherwise. */
static bool discovery_logged_before(BleDevice *d, const char *attribute) {
        char *copy;

        for (size_t i = 0; i < d->n_read_logged; i++)
                if (streq(d->read_logged[i], attribute))
                        return true;
        if (d->n_read_logged >= BLE_DISCOVERY_LOGGED_MAX)
                return true; /* a device with this many failing attributes has said enough */
        char **n = reallocarray(d->read_logged, d->n_read_logged + 1, sizeof *n);
        if (!n)
                return false;
        d->read_logged = n;
        copy = strdup(attribute);
        if (copy)
                d->read_logged[d->n_read_logged++] = copy;
        return false;
}

static bool discovery_error_is_refusal(int error, int att) {
        /* BlueZ maps ATT insufficient authentication/encryption and read-not-permitted to
         * NotPermitted, insufficient authorisation to NotAuthorized (spec §1.4); other ATT
         * security codes come as Failed with the code: 0x05, 0x08, 0x0c, 0x0f. */
        return error == -EPERM || error == -EACCES || att == 0x02 || att == 0x05 || att == 0x08 || att == 0x0c ||
               att == 0x0f;
}

static void discovery_log_failure(BleDevice *d, const char *attribute, int error, int att, const sd_bus_error *e) {
        bool refusal = discovery_error_is_refusal(error, att);
        int level = discovery_logged_before(d, attribute) ? LOG_DEBUG : LOG_WARNING;

        d->discovery_failed++;
        log_fields(level, LOG_FIELDS({ "BT_ADDR", d->address }), "%s: read of %s %s (%s%s%s), reported without value",
                   d->address, attribute, refusal ? "refused" : "failed", e ? e->name : strerror(-error),
                   e && e->message ? ": " : "", e && e->message ? e->message : "");
}

static void discovery_finish(BleDevice *d, const char *why) {
        log_fields(d->discovery_reads > 0 ? LOG_INFO : LOG_DEBUG, LOG_FIELDS({ "BT_ADDR", d->address }),
                   "%s: values read for discovery: %u reads, %u without value, %zu bytes%s%s", d->address,
                   d->discovery_reads, d->discovery_failed, d->discovery_bytes, why ? "; " : "", strempty(why));
        ble_device_enter_state(d, BLE_DEVICE_READY);
}

static int discovery_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error);

static int discovery_send(BleDevice *d, const BleGattChrc *c, const BleGattDesc *ds) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        BleManager *m = d->manager;
        const char *path = ds ? ds->object_path : c->object_path;
        int r;

        free(d->discovery_path);
        d->discovery_path = strdup(path);
        if (!d->discovery_path)
                return -ENOMEM;
        r = sd_bus_message_new_method_call(m->bus, &msg, BLUEZ_SERVICE, path,
                                           ds ? "org.bluez.GattDescriptor1" : "org.bluez.GattCharacteristic1",
                                           "ReadValue");
        if (r >= 0)
                r = sd_bus_message_append(msg, "a{sv}", 0);
        if (r >= 0)
                r = sd_bus_call_async(m->bus, &d->discovery_slot, msg, discovery_reply, d,
                                      BLE_DISCOVERY_READ_TIMEOUT_USEC);
        return r;
}

/* Sends the next read, or enters READY when there is none left or a cap is reached. */
static void discovery_step(BleDevice *d) {
        for (;;) {
                BleGattChrc *c;
                BleGattDesc *ds;
                int r;

                if (!discovery_item(d, d->discovery_next, &c, &ds))
                        return discovery_finish(d, NULL);
                if (d->discovery_reads >= BLE_DISCOVERY_READS_MAX || d->discovery_bytes >= BLE_DISCOVERY_BYTES_MAX)
                        return discovery_finish(d, "the per-device cap is reached, the rest has no value");
                d->discovery_reads++;
                r = discovery_send(d, c, ds);
                if (r >= 0)
                        return;
                discovery_log_failure(d, ds ? ds->path : c->path, r, -1, NULL);
                d->discovery_next++;
        }
}

static int discovery_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        BleDevice *d = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        BleGattChrc *c;
        BleGattDesc *ds;
        const void *p = NULL;
        size_t n = 0;
        int r;

        (void) ret_error;
        d->discovery_slot = sd_bus_slot_unref(d->discovery_slot);
        free(d->discovery_path);
        d->discovery_path = NULL;
        if (d->state != BLE_DEVICE_RESOLVING || !discovery_item(d, d->discovery_next, &c, &ds))
                return 0;
        d->discovery_next++;
        if (e) {
                int att = -1;
                r = ble_error_from_dbus(e, &att);
                discovery_log_failure(d, ds ? ds->path : c->path, r, att, e);
        } else if (sd_bus_message_read_array(reply, 'y', &p, &n) < 0 || n > BLE_VALUE_MAX)
                discovery_log_failure(d, ds ? ds->path : c->path, -EBADMSG, -1, NULL);
        else if (d->discovery_bytes + n > BLE_DISCOVERY_BYTES_MAX) {
                d->discovery_bytes = BLE_DISCOVERY_BYTES_MAX;
                d->discovery_failed++;
        } else {
                uint8_t *v = malloc(n ? n : 1);
                if (!v) {
                        log_error_errno(-ENOMEM, "Failed to keep a value read for discovery: %m");
                        discovery_step(d);
                        return 0;
                }
                if (n)
                        memcpy(v, p, n);
                if (ds) {
                        free(ds->value);
                        ds->value = v;
                        ds->value_size = n;
                } else {
                        free(c->value);
                        c->value = v;
                        c->value_size = n;
                }
                d->discovery_bytes += n;
        }
        discovery_step(d);
        return 0;
}

static void discovery_stop(BleDevice *d) {
        d->discovery_slot = sd_bus_slot_unref(d->discovery_slot);
        free(d->discovery_path);
        d->discovery_path = NULL;
}

/* ServicesResolved: build (or keep) the model, then read the values before READY. */
static void discovery_start(BleDevice *d) {
        if (d->state != BLE_DEVICE_RESOLVING || d->discovery_slot)
                return;
        if (!d->gatt_dirty)
                /* BlueZ kept its GATT objects (its cache): the model held is still the device's. */
                log_fields(LOG_DEBUG, LOG_FIELDS({ "BT_ADDR", d->address }),
                           "%s: GATT objects unchanged since the last connection, keeping the model", d->address);
        if (gatt_refresh(d) < 0)
                return ble_device_enter_state(d, BLE_DEVICE_READY); /* logged; operations will fail */
        gatt_values_clear(&d->gatt);
        d->discovery_next = 0;
        d->discovery_reads = 0;
        d->discovery_bytes = 0;
        d->discovery_failed = 0;
        /* Each read has its own timeout: the resolve timer no longer applies. */
        if (d->timer)
                (void) sd_event_source_set_enabled(d->timer, SD_EVENT_OFF);
        discovery_step(d);
}

/* ---- connection state machine ---- */

bool ble_device_holds_slot(const BleDevice *d) {
        switch (d->state) {
        case BLE_DEVICE_CONNECTING:
        case BLE_DEVICE_RESOLVING:
        case BLE_DEVICE_READY:
                return true;
        case BLE_DEVICE_IDLE:
        case BLE_DEVICE_BACKOFF:
        case _BLE_DEVICE_STATE_MAX:
                break;
        }
        return false;
}

static BleObject *device_object(BleDevice *d) {
        BleObject *o = ble_mirror_get(d->manager->mirror, d->path);
        return o && o->kind == BLE_OBJ_DEVICE ? o : NULL;
}

/* Fire-and-forget call: its reply does not matter, and it must go out even if d is freed next. */
static void call_and_forget(BleDevice *d, const char *path, const char *iface, const char *member, const char *sig,
                            const char *arg) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        int r;

        r = sd_bus_message_new_method_call(d->manager->bus, &msg, BLUEZ_SERVICE, path, iface, member);
        if (r >= 0 && sig)
                r = sd_bus_message_append(msg, sig, arg);
        if (r >= 0)
                r = sd_bus_message_set_expect_reply(msg, 0);
        if (r >= 0)
                r = sd_bus_send(d->manager->bus, msg, NULL);
        if (r < 0)
                log_fields_errno(LOG_WARNING, r, LOG_FIELDS({ "BT_ADDR", d->address }),
                                 "%s: failed to call %s on %s, ignoring: %m", d->address, member, path);
}

static int timer_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        BleDevice *d = userdata;

        (void) s;
        (void) usec;
        switch (d->state) {
        case BLE_DEVICE_RESOLVING:
                log_fields(LOG_WARNING, LOG_FIELDS({ "BT_ADDR", d->address }),
                           "%s: services not resolved within %us, disconnecting", d->address,
                           d->manager->config->connect_timeout_sec);
                if (d->path)
                        call_and_forget(d, d->path, "org.bluez.Device1", "Disconnect", NULL, NULL);
                ble_device_enter_state(d, BLE_DEVICE_BACKOFF);
                break;
        case BLE_DEVICE_BACKOFF:
                ble_device_enter_state(d, BLE_DEVICE_IDLE);
                break;
        case BLE_DEVICE_IDLE:
        case BLE_DEVICE_CONNECTING:
        case BLE_DEVICE_READY:
        case _BLE_DEVICE_STATE_MAX:
                break;
        }
        return 0;
}

static int arm_timer(BleDevice *d, uint64_t usec) {
        BleManager *m = d->manager;
        uint64_t when = now_usec(CLOCK_MONOTONIC) + usec;
        int r;

        if (d->timer) {
                r = sd_event_source_set_time(d->timer, when);
                if (r >= 0)
                        r = sd_event_source_set_enabled(d->timer, SD_EVENT_ONESHOT);
                return r;
        }
        r = sd_event_add_time(m->event, &d->timer, CLOCK_MONOTONIC, when, 1000, timer_handler, d);
        if (r >= 0)
                (void) sd_event_source_set_description(d->timer, "ble-device");
        return r;
}

static bool resolved_now(BleDevice *d) {
        BleObject *o = device_object(d);
        return o && o->device.connected && o->device.services_resolved;
}

static int connect_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        BleDevice *d = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int r;

        (void) ret_error;
        d->connect_slot = sd_bus_slot_unref(d->connect_slot);
        if (d->state != BLE_DEVICE_CONNECTING)
                return 0;
        if (!e) {
                /* LE Connect returns when ATT is up, not when GATT is resolved (spec §1.5.4). */
                ble_device_enter_state(d, BLE_DEVICE_RESOLVING);
                return 0;
        }
        if (ble_error_is_connect_in_progress(e)) {
                /* Ours or a crashed client's attempt is pending: wait for its outcome. */
                log_fields(LOG_INFO, LOG_FIELDS({ "BT_ADDR", d->address }),
                           "%s: a connection attempt is already in progress (%s), waiting for it", d->address, e->name);
                ble_device_enter_state(d, BLE_DEVICE_RESOLVING);
                return 0;
        }
        r = ble_error_from_dbus(e, NULL);
        log_fields_errno(LOG_WARNING, r, LOG_FIELDS({ "BT_ADDR", d->address }), "%s: connect failed: %s: %s",
                         d->address, e->name, strna(e->message));
        if (r == -ETIMEDOUT && d->path)
                /* Disconnect also cancels the pending connection attempt (spec §1.2). */
                call_and_forget(d, d->path, "org.bluez.Device1", "Disconnect", NULL, NULL);
        ble_device_enter_state(d, BLE_DEVICE_BACKOFF);
        return 0;
}

static int send_connect(BleDevice *d) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        BleManager *m = d->manager;
        int r;

        r = sd_bus_message_new_method_call(m->bus, &msg, BLUEZ_SERVICE, d->path, "org.bluez.Device1", "Connect");
        if (r < 0)
                return r;
        /* Our own timeout: LE connects can outlast the 25 s D-Bus default, or hang. */
        return sd_bus_call_async(m->bus, &d->connect_slot, msg, connect_reply, d,
                                 (uint64_t) m->config->connect_timeout_sec * UINT64_C(1000000));
}

void ble_device_start_connect(BleDevice *d) {
        if (d->state == BLE_DEVICE_IDLE && d->path)
                ble_device_enter_state(d, BLE_DEVICE_CONNECTING);
}

void ble_device_enter_state(BleDevice *d, BleDeviceState s) {
        BleManager *m = d->manager;
        BleDeviceState old = d->state;
        const char *message_id = NULL;
        int r;

        if (old == s)
                return;

        /* Drop what the old state had armed. */
        d->connect_slot = sd_bus_slot_unref(d->connect_slot);
        discovery_stop(d);
        if (d->timer)
                (void) sd_event_source_set_enabled(d->timer, SD_EVENT_OFF);
        if (old == BLE_DEVICE_READY) {
                ops_fail_all(d, -ENOTCONN);
                wishes_release(d);
                /* The model stays: if BlueZ keeps its GATT objects, the next connection reuses it. */
                gatt_values_clear(&d->gatt);
                message_id = MESSAGE_ID_DEVICE_DISCONNECTED;
        }
        if (s == BLE_DEVICE_READY)
                message_id = MESSAGE_ID_DEVICE_CONNECTED;
        if (d->own)
                message_id = NULL; /* not one of the cloud's devices */

        d->state = s;
        log_fields(message_id ? LOG_NOTICE : LOG_INFO,
                   LOG_FIELDS({ "BT_ADDR", d->address }, { "BLE_STATE", ble_device_state_to_string(s) },
                              { "MESSAGE_ID", message_id }),
                   "%s: %s → %s%s", d->address, ble_device_state_to_string(old), ble_device_state_to_string(s),
                   s == BLE_DEVICE_READY ? " (connected)" : old == BLE_DEVICE_READY ? " (disconnected)" : "");

        /* Start what the new state needs. */
        switch (s) {
        case BLE_DEVICE_IDLE:
                break;
        case BLE_DEVICE_CONNECTING:
                r = send_connect(d);
                if (r < 0) {
                        log_fields_errno(LOG_ERR, r, LOG_FIELDS({ "BT_ADDR", d->address }),
                                         "%s: failed to send Connect: %m", d->address);
                        ble_device_enter_state(d, BLE_DEVICE_BACKOFF);
                        return;
                }
                break;
        case BLE_DEVICE_RESOLVING:
                r = arm_timer(d, (uint64_t) m->config->connect_timeout_sec * UINT64_C(1000000));
                if (r < 0)
                        log_error_errno(r, "Failed to arm the resolve timer: %m");
                break;
        case BLE_DEVICE_READY:
                backoff_reset(&d->backoff);
                (void) gatt_refresh(d);
                break;
        case BLE_DEVICE_BACKOFF: {
                uint64_t delay;
                d->backoff.base_usec = m->backoff_base_usec;
                d->backoff.cap_usec = m->backoff_cap_usec;
                delay = backoff_next(&d->backoff);
                log_fields(LOG_INFO, LOG_FIELDS({ "BT_ADDR", d->address }), "%s: retrying in %llu ms", d->address,
                           (unsigned long long) (delay / 1000));
                r = arm_timer(d, delay);
                if (r < 0)
                        log_error_errno(r, "Failed to arm the backoff timer: %m");
                break;
        }
        case _BLE_DEVICE_STATE_MAX:
                break;
        }

        /*
         * Re-make the wanted subscriptions before the report: a subscription the callback adds
         * is then queued once, by the callback's own ble_device_set_notify().  The operations
         * run from the loop, after the report.
         */
        if (s == BLE_DEVICE_READY) {
                for (size_t i = 0; i < d->n_wishes; i++) {
                        r = op_queue(d, BLE_OP_START_NOTIFY, d->wishes[i].service, d->wishes[i].chrc, NULL, NULL, 0,
                                     BLE_WRITE_AUTO, NULL, NULL, true);
                        if (r < 0)
                                log_fields_errno(LOG_WARNING, r, LOG_FIELDS({ "BT_ADDR", d->address }),
                                                 "%s: failed to re-enable notifications on %s/%s: %m", d->address,
                                                 d->wishes[i].service, d->wishes[i].chrc);
                }
                ops_kick(d);
        }

        if (d->own) {
                if (d->own_cb.state)
                        d->own_cb.state(d, s, d->own_userdata);
        } else if (m->cb.device_state)
                m->cb.device_state(m, d, old, s, m->userdata);

        if (s == BLE_DEVICE_RESOLVING && d->state == BLE_DEVICE_RESOLVING && resolved_now(d))
                /* GATT cache: ServicesResolved may be true already, no signal will come (spec §1.5.4). */
                discovery_start(d);
        if (ble_device_holds_slot(d) != (old == BLE_DEVICE_CONNECTING || old == BLE_DEVICE_RESOLVING ||
                                         old == BLE_DEVICE_READY) ||
            s == BLE_DEVICE_IDLE)
                ble_manager_schedule_dispatch(m);
}

void ble_device_object_added(BleDevice *d, BleObject *o) {
        char *p = strdup(o->path);

        if (!p)
                return (void) log_error_errno(-ENOMEM, "Failed to track %s: %m", d->address);
        free(d->path);
        d->path = p;
        o->userdata = d;
        if (d->was_absent)
                d->created = true;
        log_fields(LOG_DEBUG, LOG_FIELDS({ "BT_ADDR", d->address }), "%s: known to BlueZ as %s", d->address, d->path);
        ble_manager_schedule_dispatch(d->manager);
}

void ble_device_object_changed(BleDevice *d, BleObject *o, uint64_t changed, uint64_t invalidated) {
        bool connected_changed = (changed | invalidated) & (UINT64_C(1) << BLE_DEVICE_CONNECTED);
        bool resolved_changed = changed & (UINT64_C(1) << BLE_DEVICE_SERVICES_RESOLVED);

        if (connected_changed && !o->device.connected) {
                switch (d->state) {
                case BLE_DEVICE_RESOLVING:
                case BLE_DEVICE_READY:
                        log_fields(LOG_WARNING, LOG_FIELDS({ "BT_ADDR", d->address }), "%s: link lost", d->address);
                        ble_device_enter_state(d, BLE_DEVICE_BACKOFF);
                        return;
                case BLE_DEVICE_CONNECTING: /* the Connect reply decides */
                case BLE_DEVICE_IDLE:
                case BLE_DEVICE_BACKOFF:
                case _BLE_DEVICE_STATE_MAX:
                        break;
                }
        }
        if (resolved_changed && d->state == BLE_DEVICE_RESOLVING && resolved_now(d))
                discovery_start(d);
}

void ble_device_object_removed(BleDevice *d) {
        free(d->path);
        d->path = NULL;
        d->gatt_dirty = true;
        if (ble_device_holds_slot(d)) {
                log_fields(LOG_WARNING, LOG_FIELDS({ "BT_ADDR", d->address }), "%s: BlueZ dropped the device",
                           d->address);
                ble_device_enter_state(d, BLE_DEVICE_BACKOFF);
        }
}

void ble_device_bluez_lost(BleDevice *d) {
        BleObject *o = device_object(d);

        if (o)
                o->userdata = NULL;
        free(d->path);
        d->path = NULL;
        d->gatt_dirty = true;
        /* Straight back to idle: the device connects again as soon as bluetoothd is back. */
        ble_device_enter_state(d, BLE_DEVICE_IDLE);
}

void ble_device_disconnect_and_forget(BleDevice *d) {
        BleObject *o = device_object(d);

        d->removing = true;
        if (!o)
                return;
        if (ble_device_holds_slot(d) || o->device.connected) {
                log_fields(LOG_INFO, LOG_FIELDS({ "BT_ADDR", d->address }), "%s: %s, disconnecting", d->address,
                           d->own ? "released by the gateway" : "no longer desired");
                call_and_forget(d, o->path, "org.bluez.Device1", "Disconnect", NULL, NULL);
        }
        if (d->created && o->device.adapter) {
                log_fields(LOG_INFO, LOG_FIELDS({ "BT_ADDR", d->address }), "%s: removing it from BlueZ", d->address);
                call_and_forget(d, o->device.adapter, "org.bluez.Adapter1", "RemoveDevice", "o", o->path);
        }
}

/* MaxConnections went down: give the slot back and wait in the queue again. */
void ble_device_yield_slot(BleDevice *d) {
        if (!ble_device_holds_slot(d))
                return;
        log_fields(LOG_INFO, LOG_FIELDS({ "BT_ADDR", d->address }),
                   "%s: over MaxConnections=%u, disconnecting and queueing", d->address,
                   d->manager->config->max_connections);
        if (d->path)
                call_and_forget(d, d->path, "org.bluez.Device1", "Disconnect", NULL, NULL);
        ble_device_enter_state(d, BLE_DEVICE_IDLE);
}

void ble_device_hold(BleDevice *d, bool hold) {
        if (!d || d->held == hold)
                return;
        d->held = hold;
        log_fields(LOG_INFO, LOG_FIELDS({ "BT_ADDR", d->address }), "%s: %s", d->address,
                   hold ? "not reconnected for now (held by the gateway)" : "expected back, connecting again now");
        if (hold)
                return;
        backoff_reset(&d->backoff);
        if (d->state == BLE_DEVICE_BACKOFF)
                ble_device_enter_state(d, BLE_DEVICE_IDLE);
        else
                ble_manager_schedule_dispatch(d->manager);
}

typedef struct FindDevice {
        const char *address;
        BleObject *found;
} FindDevice;

static void find_device(BleObject *o, void *userdata) {
        FindDevice *f = userdata;
        char a[BLE_ADDR_STR_MAX];
        if (!f->found && o->kind == BLE_OBJ_DEVICE && ble_address_normalize(o->device.address, a) >= 0 &&
            streq(a, f->address))
                f->found = o;
}

int ble_device_new(BleManager *m, const char *address, BleDevice **ret) {
        BleDevice *d;
        FindDevice f = { .address = address };
        int r;

        d = calloc(1, sizeof *d);
        if (!d)
                return -ENOMEM;
        d->manager = m;
        memcpy(d->address, address, sizeof d->address);
        d->state = BLE_DEVICE_IDLE;
        d->gatt_dirty = true;
        backoff_init(&d->backoff, m->backoff_base_usec, m->backoff_cap_usec);
        r = ble_map_put(&m->devices_by_address, d->address, d);
        if (r < 0) {
                free(d);
                return r;
        }
        d->prev = m->devices_tail;
        if (m->devices_tail)
                m->devices_tail->next = d;
        else
                m->devices_head = d;
        m->devices_tail = d;
        m->n_devices++;

        ble_mirror_foreach(m->mirror, find_device, &f);
        if (f.found)
                ble_device_object_added(d, f.found);
        else
                d->was_absent = true;
        /* The transition idle → connecting says it at info level; what is unusual is worth a line of its own. */
        log_fields(f.found ? LOG_DEBUG : LOG_INFO, LOG_FIELDS({ "BT_ADDR", d->address }), "%s: desired%s", d->address,
                   f.found ? "" : ", not yet known to BlueZ");
        *ret = d;
        return 0;
}

BleDevice *ble_device_free(BleDevice *d) {
        BleManager *m;
        BleObject *o;

        if (!d)
                return NULL;
        m = d->manager;
        ops_fail_all(d, -ECANCELED);
        wishes_release(d);
        o = device_object(d);
        if (o && o->userdata == d)
                o->userdata = NULL;
        d->connect_slot = sd_bus_slot_unref(d->connect_slot);
        discovery_stop(d);
        for (size_t i = 0; i < d->n_read_logged; i++)
                free(d->read_logged[i]);
        free(d->read_logged);
        d->timer = sd_event_source_disable_unref(d->timer);
        d->ops_defer = sd_event_source_disable_unref(d->ops_defer);
        gatt_clear(&d->gatt);
        if (d->prev)
                d->prev->next = d->next;
        else
                m->devices_head = d->next;
        if (d->next)
                d->next->prev = d->prev;
        else
                m->devices_tail = d->prev;
        m->n_devices--;
        (void) ble_map_remove(&m->devices_by_address, d->address);
        if (ble_device_holds_slot(d))
                ble_manager_schedule_dispatch(m);
        echo_clear(d);
        free(d->wishes);
        free(d->path);
        free(d);
        return NULL;
}

const char *ble_device_address(BleDevice *d) {
        return d->address;
}

const char *ble_device_address_type(BleDevice *d) {
        BleObject *o = d->path ? device_object(d) : NULL;
        return o ? o->device.address_type : NULL;
}

BleDeviceState ble_device_state(BleDevice *d) {
        return d->state;
}

size_t ble_device_n_subscriptions(BleDevice *d) {
        return d->n_wishes;
}

int ble_device_subscription(BleDevice *d, size_t i, const char **ret_service, const char **ret_chrc) {
        if (i >= d->n_wishes)
                return -ENOENT;
        *ret_service = d->wishes[i].service;
        *ret_chrc = d->wishes[i].chrc;
        return 0;
}
