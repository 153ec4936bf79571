/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "shadow.h"

static const char *const shadow_doc_kind_table[_SHADOW_DOC_KIND_MAX] = {
        [SHADOW_DOC_FULL] = "full",
        [SHADOW_DOC_TRIMMED] = "trimmed",
        [SHADOW_DOC_DELTA] = "delta",
        [SHADOW_DOC_TRANSFORM] = "transform",
};

static const char *const pairing_state_table[_PAIRING_STATE_MAX] = {
        [PAIRING_STATE_NOT_ASSOCIATED] = "not_associated",
        [PAIRING_STATE_PAIRED] = "paired",
        [PAIRING_STATE_INITIATE] = "initiate",
        [PAIRING_STATE_PATTERN_WAIT] = "pattern_wait",
        [PAIRING_STATE_PATTERN_MISMATCH] = "pattern_mismatch",
        [PAIRING_STATE_TIMEOUT] = "timeout",
        [PAIRING_STATE_UNKNOWN] = "unknown",
};

static const char *const desired_connection_format_table[_DESIRED_CONNECTION_FORMAT_MAX] = {
        [DESIRED_CONNECTION_STRING] = "string",
        [DESIRED_CONNECTION_ID_OBJECT] = "id-object",
        [DESIRED_CONNECTION_ADDRESS_OBJECT] = "address-object",
};

static const char *const connection_status_table[_CONNECTION_STATUS_MAX] = {
        [CONNECTION_STATUS_DISCONNECTED] = "disconnected",
        [CONNECTION_STATUS_CONNECTING] = "connecting",
        [CONNECTION_STATUS_CONNECTED] = "connected",
        [CONNECTION_STATUS_REMOVED] = "removed",
};

const char *shadow_doc_kind_to_string(ShadowDocKind k) {
        return k >= 0 && k < _SHADOW_DOC_KIND_MAX ? shadow_doc_kind_table[k] : NULL;
}

const char *pairing_state_to_string(PairingState s) {
        return s >= 0 && s < _PAIRING_STATE_MAX ? pairing_state_table[s] : NULL;
}

PairingState pairing_state_from_string(const char *s) {
        if (!s)
                return _PAIRING_STATE_INVALID;
        for (int i = 0; i < _PAIRING_STATE_MAX; i++)
                if (i != PAIRING_STATE_UNKNOWN && streq(pairing_state_table[i], s))
                        return (PairingState) i;
        return PAIRING_STATE_UNKNOWN;
}

const char *desired_connection_format_to_string(DesiredConnectionFormat f) {
        return f >= 0 && f < _DESIRED_CONNECTION_FORMAT_MAX ? desired_connection_format_table[f] : NULL;
}

const char *connection_status_to_string(ConnectionStatus s) {
        return s >= 0 && s < _CONNECTION_STATUS_MAX ? connection_status_table[s] : NULL;
}

ShadowState *shadow_state_free(ShadowState *s) {
        if (!s)
                return NULL;
        free(s->pairing_topic_c2g);
        free(s->pairing_topic_g2c);
        free(s->connections);
        free(s->beacons);
        free(s->reported_addresses);
        json_decref(s->delta_state);
        free(s);
        return NULL;
}

static int shadow_state_new(ShadowDocKind kind, ShadowState **ret) {
        ShadowState *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->kind = kind;
        *ret = s;
        return 0;
}

/* Field names are short; a truncated one is still a useful hint. */
static void field_join(char *buf, size_t size, const char *prefix, const char *key) {
        int n;

        if (prefix && prefix[0])
                n = snprintf(buf, size, "%s.%s", prefix, key);
        else
                n = snprintf(buf, size, "%s", key);
        if (n < 0 && size > 0)
                buf[0] = 0;
}

/* One element of desiredConnections in any of its three formats. */
static bool connection_parse(const json_t *v, DesiredConnection *ret) {
        DesiredConnection c = { .address_type = BT_ADDR_TYPE_UNSPECIFIED };
        const char *addr = NULL;

        if (json_is_string(v)) {
                c.format = DESIRED_CONNECTION_STRING;
                addr = json_string_value(v);
        } else if (json_is_object(v) && json_object_get(v, "id")) {
                c.format = DESIRED_CONNECTION_ID_OBJECT;
                addr = json_string_value(json_object_get(v, "id"));
        } else if (json_is_object(v) && json_is_object(json_object_get(v, "address"))) {
                const json_t *a = json_object_get(v, "address");
                const json_t *t = json_object_get(a, "type");

                c.format = DESIRED_CONNECTION_ADDRESS_OBJECT;
                addr = json_string_value(json_object_get(a, "address"));
                if (json_is_string(t)) {
                        /* A type we do not know is no reason to drop the device. */
                        BtAddrType bt = bt_addr_type_from_string(json_string_value(t));
                        c.address_type = bt < 0 ? BT_ADDR_TYPE_UNSPECIFIED : bt;
                }
        } else
                return false;

        if (bt_addr_normalize(addr, c.address) < 0)
                return false;
        *ret = c;
        return true;
}

typedef struct IndexedConnection {
        DesiredConnection c;
        size_t index; /* position among the valid entries */
} IndexedConnection;

static int indexed_connection_compare(const void *a, const void *b) {
        const IndexedConnection *x = a, *y = b;
        int r = strcmp(x->c.address, y->c.address);
        return r != 0 ? r : (x->index > y->index) - (x->index < y->index);
}

/*
 * Duplicates are found by sorting (a delta may name thousands of addresses):
 * the first occurrence of each address is kept, in the document's order, up
 * to SHADOW_CONNECTIONS_MAX; the distinct addresses are all counted.
 */
static int connections_parse(const json_t *list, const char *field, ShadowState *s, CodecError *e) {
        _cleanup_free_ IndexedConnection *sorted = NULL;
        _cleanup_free_ DesiredConnection *valid = NULL;
        _cleanup_free_ bool *dup = NULL;
        DesiredConnection *v;
        size_t n_valid = 0, n = 0, distinct = 0, ignored = 0, size;

        if (json_is_null(list)) {
                free(s->connections);
                s->connections = NULL;
                s->n_connections = s->n_connections_ignored = s->n_connections_desired = 0;
                s->has_desired_connections = true;
                return 0;
        }
        if (!json_is_array(list))
                return codec_error(e, -EBADMSG, field, "not an array");

        size = MAX(json_array_size(list), (size_t) 1);
        valid = calloc(size, sizeof *valid);
        sorted = calloc(size, sizeof *sorted);
        dup = calloc(size, sizeof *dup);
        if (!valid || !sorted || !dup)
                return -ENOMEM;
        for (size_t i = 0; i < json_array_size(list); i++) {
                if (!connection_parse(json_array_get(list, i), &valid[n_valid])) {
                        ignored++;
                        continue;
                }
                sorted[n_valid] = (IndexedConnection){ .c = valid[n_valid], .index = n_valid };
                n_valid++;
        }
        qsort(sorted, n_valid, sizeof *sorted, indexed_connection_compare);
        for (size_t i = 0; i < n_valid; i++) {
                dup[sorted[i].index] = i > 0 && streq(sorted[i].c.address, sorted[i - 1].c.address);
                distinct += !dup[sorted[i].index];
        }

        v = calloc(MIN(size, (size_t) SHADOW_CONNECTIONS_MAX), sizeof *v);
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n_valid && n < SHADOW_CONNECTIONS_MAX; i++)
                if (!dup[i])
                        v[n++] = valid[i];
        free(s->connections);
        s->connections = v;
        s->n_connections = n;
        s->n_connections_desired = distinct;
        s->n_connections_ignored = ignored;
        s->has_desired_connections = true;
        return 0;
}

/* desired.beacons: addresses in any of desiredConnections' formats (connection_parse()). */
static int beacons_parse(const json_t *list, ShadowState *s) {
        char(*v)[BT_ADDR_STR_LEN + 1] = NULL;
        size_t n = 0, ignored = 0;

        if (!json_is_null(list) && !json_is_array(list)) {
                s->beacons_malformed = true;
                return 0;
        }
        if (json_is_array(list) && json_array_size(list) > 0) {
                v = calloc(MIN(json_array_size(list), (size_t) SHADOW_BEACONS_MAX), sizeof *v);
                if (!v)
                        return -ENOMEM;
        }
        for (size_t i = 0; json_is_array(list) && i < json_array_size(list); i++) {
                DesiredConnection c;
                bool dup = false;

                if (!connection_parse(json_array_get(list, i), &c)) {
                        ignored++;
                        continue;
                }
                for (size_t k = 0; k < n && !dup; k++)
                        dup = streq(v[k], c.address);
                if (!dup && n < SHADOW_BEACONS_MAX)
                        strcpy(v[n++], c.address);
        }
        free(s->beacons);
        s->beacons = v;
        s->n_beacons = n;
        s->n_beacons_ignored = ignored;
        s->has_beacons = true;
        s->beacons_malformed = false;
        return 0;
}

static int topic_string(const json_t *topics, const char *key, const char *prefix, char **ret, CodecError *e) {
        char field[CODEC_FIELD_MAX];
        const char *str;
        char *d;
        int r;

        if (json_is_null(json_object_get(topics, key)))
                return 0;
        r = codec_json_get_string(topics, key, prefix, TOPIC_MAX, &str, e);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        if (str[0] == 0) {
                field_join(field, sizeof field, prefix, key);
                return codec_error(e, -EBADMSG, field, "empty topic");
        }
        d = strdup(str);
        if (!d)
                return -ENOMEM;
        free(*ret);
        *ret = d;
        return 0;
}

/* The members of a desired object (or of a delta's state) that concern us. */
static int desired_parse(const json_t *desired, const char *prefix, ShadowState *s, CodecError *e) {
        char field[CODEC_FIELD_MAX], sub[CODEC_FIELD_MAX];
        const json_t *pairing, *v;
        int r;

        if (!desired || json_is_null(desired))
                return 0;
        if (!json_is_object(desired))
                return codec_error(e, -EBADMSG, prefix, "not an object");

        pairing = json_object_get(desired, "pairing");
        field_join(field, sizeof field, prefix, "pairing");
        if (pairing && !json_is_null(pairing)) {
                const json_t *topics;
                const char *str;

                if (!json_is_object(pairing))
                        return codec_error(e, -EBADMSG, field, "not an object");
                r = json_is_null(json_object_get(pairing, "state")) ? -ENOENT :
                        codec_json_get_string(pairing, "state", field, 64, &str, e);
                if (r >= 0) {
                        s->has_pairing_state = true;
                        s->pairing_state = pairing_state_from_string(str);
                } else if (r != -ENOENT)
                        return r;

                topics = json_object_get(pairing, "topics");
                field_join(sub, sizeof sub, field, "topics");
                if (topics && !json_is_null(topics)) {
                        if (!json_is_object(topics))
                                return codec_error(e, -EBADMSG, sub, "not an object");
                        r = topic_string(topics, "c2g", sub, &s->pairing_topic_c2g, e);
                        if (r < 0)
                                return r;
                        r = topic_string(topics, "g2c", sub, &s->pairing_topic_g2c, e);
                        if (r < 0)
                                return r;
                }
        }

        v = json_object_get(desired, "nrfcloud_mqtt_topic_prefix");
        field_join(field, sizeof field, prefix, "nrfcloud_mqtt_topic_prefix");
        if (v && !json_is_null(v)) {
                const char *p = json_string_value(v);

                if (!p || json_string_length(v) > SHADOW_TOPIC_PREFIX_MAX ||
                    topic_prefix_parse(p, s->stage, s->team) < 0)
                        return codec_error(e, -EBADMSG, field, "not a topic prefix \"<stage>/<team>/\"");
                strcpy(s->topic_prefix, p);
                s->has_topic_prefix = true;
        }

        v = json_object_get(desired, "desiredConnections");
        field_join(field, sizeof field, prefix, "desiredConnections");
        if (v) {
                r = connections_parse(v, field, s, e);
                if (r < 0)
                        return r;
        }

        v = json_object_get(desired, "beacons");
        if (v) {
                r = beacons_parse(v, s);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The reported section only informs clean-up, so a malformed one is
 * skipped rather than allowed to stop the pairing procedure. */
static int reported_parse(const json_t *reported, ShadowState *s) {
        const json_t *map, *v;
        const char *key;

        map = json_object_get(reported, "statusConnections");
        if (!json_is_object(map))
                return 0;

        s->reported_addresses = calloc(SHADOW_CONNECTIONS_MAX, sizeof *s->reported_addresses);
        if (!s->reported_addresses)
                return -ENOMEM;
        json_object_foreach((json_t *) map, key, v) {
                char a[BT_ADDR_STR_LEN + 1];
                bool dup = false;

                if (json_is_null(v) || bt_addr_normalize(key, a) < 0)
                        continue;
                for (size_t k = 0; k < s->n_reported_addresses && !dup; k++)
                        dup = streq(s->reported_addresses[k], a);
                if (dup || s->n_reported_addresses >= SHADOW_CONNECTIONS_MAX)
                        continue;
                strcpy(s->reported_addresses[s->n_reported_addresses++], a);
        }
        return 0;
}

static int parse_object(const void *data, size_t size, json_t **ret, CodecError *e) {
        json_t *j = NULL;
        int r;

        r = codec_json_parse(data, size, SHADOW_DOC_MAX, SHADOW_DEPTH_MAX, &j, e);
        if (r < 0)
                return r;
        if (!json_is_object(j)) {
                json_decref(j);
                return codec_error(e, -EBADMSG, "", "not a JSON object");
        }
        *ret = j;
        return 0;
}

static int version_parse(const json_t *doc, ShadowState *s, CodecError *e) {
        int64_t v;
        int r;

        r = codec_json_get_int(doc, "version", "", 0, INT64_MAX, &v, e);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        s->has_version = true;
        s->version = v;
        return 0;
}

int shadow_parse_accepted(const void *data, size_t size, ShadowState **ret, CodecError *e) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        _cleanup_(shadow_state_freep) ShadowState *s = NULL;
        const json_t *state;
        int r;

        r = parse_object(data, size, &j, e);
        if (r < 0)
                return r;

        state = json_object_get(j, "state");
        r = shadow_state_new(state ? SHADOW_DOC_FULL : SHADOW_DOC_TRIMMED, &s);
        if (r < 0)
                return r;
        r = version_parse(j, s, e);
        if (r < 0)
                return r;
        if (state) {
                if (!json_is_object(state))
                        return codec_error(e, -EBADMSG, "state", "not an object");
                r = desired_parse(json_object_get(state, "desired"), "state.desired", s, e);
                if (r >= 0)
                        r = reported_parse(json_object_get(state, "reported"), s);
        } else {
                r = desired_parse(json_object_get(j, "desired"), "desired", s, e);
                if (r >= 0)
                        r = reported_parse(json_object_get(j, "reported"), s);
        }
        if (r < 0)
                return r;

        *ret = TAKE_PTR(s);
        return 0;
}

int shadow_parse_delta(const void *data, size_t size, ShadowState **ret, CodecError *e) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        _cleanup_(shadow_state_freep) ShadowState *s = NULL;
        json_t *state;
        int r;

        r = parse_object(data, size, &j, e);
        if (r < 0)
                return r;
        state = json_object_get(j, "state");
        if (!state)
                return codec_error(e, -EBADMSG, "state", "missing");
        if (!json_is_object(state))
                return codec_error(e, -EBADMSG, "state", "not an object");

        r = shadow_state_new(SHADOW_DOC_DELTA, &s);
        if (r < 0)
                return r;
        r = version_parse(j, s, e);
        if (r < 0)
                return r;
        r = desired_parse(state, "state", s, e);
        if (r < 0)
                return r;
        s->delta_state = json_incref(state);

        *ret = TAKE_PTR(s);
        return 0;
}

int shadow_parse_transform(const void *data, size_t size, ShadowState **ret, CodecError *e) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        _cleanup_(shadow_state_freep) ShadowState *s = NULL;
        const json_t *tf, *err;
        int r;

        r = parse_object(data, size, &j, e);
        if (r < 0)
                return r;

        err = json_object_get(j, "err");
        if (err) {
                const char *m = json_string_value(json_object_get(j, "message"));
                return codec_error(e, -EREMOTEIO, "err", "transform failed with code %" JSON_INTEGER_FORMAT ": %.100s",
                                   json_is_integer(err) ? json_integer_value(err) : (json_int_t) -1, strna(m));
        }
        tf = json_object_get(j, "tf");
        if (!tf)
                return codec_error(e, -EBADMSG, "tf", "missing");

        r = shadow_state_new(SHADOW_DOC_TRANSFORM, &s);
        if (r < 0)
                return r;
        r = connections_parse(tf, "tf", s, e);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(s);
        return 0;
}

bool shadow_state_wants(const ShadowState *s, const char *address) {
        char a[BT_ADDR_STR_LEN + 1];

        if (!s || bt_addr_normalize(address, a) < 0)
                return false;
        for (size_t i = 0; i < s->n_connections; i++)
                if (streq(s->connections[i].address, a))
                        return true;
        return false;
}

static int dump_new(json_t *j, char **ret) {
        _cleanup_(json_decrefp) json_t *d = j;

        if (!d)
                return -ENOMEM;
        return codec_json_dump(d, ret);
}

int shadow_build_transform_request(unsigned max_len, char **ret) {
        if (max_len == 0 || max_len > 1792)
                return -EINVAL;
        return dump_new(json_pack("{s:s,s:i}", "t", "state.desired.desiredConnections", "l", (int) max_len), ret);
}

static bool topic_string_ok(const char *t) {
        return t && t[0] && strlen(t) <= TOPIC_MAX && !strpbrk(t, "+#");
}

int shadow_build_pairing_paired(const char *topic_prefix, const char *g2c, const char *c2g, unsigned keepalive_sec,
                                char **ret) {
        char stage[TOPIC_STAGE_MAX + 1], team[TOPIC_TEAM_MAX + 1];

        if (topic_prefix_parse(topic_prefix, stage, team) < 0 || !topic_string_ok(g2c) || !topic_string_ok(c2g) ||
            keepalive_sec == 0 || keepalive_sec > 65535)
                return -EINVAL;
        /* Key order as nRF Cloud's library writes it (spec §3.2). */
        return dump_new(json_pack("{s:{s:{s:{s:s,s:n,s:{s:s,s:s}},s:{s:i},s:s,s:n}}}", "state", "reported", "pairing",
                                  "state", "paired", "config", "topics", "g2c", g2c, "c2g", c2g, "connection",
                                  "keepalive", (int) keepalive_sec, "nrfcloud_mqtt_topic_prefix", topic_prefix,
                                  "pairingStatus"),
                        ret);
}

int shadow_build_pairing_not_associated(char **ret) {
        return dump_new(json_pack("{s:{s:{s:{s:s,s:n,s:n},s:n,s:{s:n},s:n,s:n}}}", "state", "reported", "pairing",
                                  "state", "not_associated", "topics", "config", "nrfcloud_mqtt_topic_prefix",
                                  "connection", "keepalive", "pairingStatus", "stage"),
                        ret);
}

int shadow_build_status_connections(const ShadowConnectionStatus *v, size_t n, char **ret) {
        _cleanup_(json_decrefp) json_t *map = json_object(), *doc = NULL;

        if (!map)
                return -ENOMEM;
        if (n == 0 || !v || n > SHADOW_CONNECTIONS_MAX)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                char a[BT_ADDR_STR_LEN + 1];
                json_t *o = NULL;

                if (bt_addr_normalize(v[i].address, a) < 0)
                        return -EINVAL;
                switch (v[i].status) {
                case CONNECTION_STATUS_DISCONNECTED:
                case CONNECTION_STATUS_CONNECTING:
                case CONNECTION_STATUS_CONNECTED:
                        o = json_pack("{s:s,s:{s:b,s:b}}", "id", a, "status", "connected",
                                      v[i].status == CONNECTION_STATUS_CONNECTED, "connecting",
                                      v[i].status == CONNECTION_STATUS_CONNECTING);
                        break;
                case CONNECTION_STATUS_REMOVED:
                        o = json_null();
                        break;
                case _CONNECTION_STATUS_MAX:
                case _CONNECTION_STATUS_INVALID:
                        return -EINVAL;
                }
                if (!o || json_object_set_new(map, a, o) < 0)
                        return -ENOMEM;
        }
        doc = json_pack("{s:{s:{s:O}}}", "state", "reported", "statusConnections", map);
        if (!doc)
                return -ENOMEM;
        return codec_json_dump(doc, ret);
}

static int set_optional_string(json_t *o, const char *key, const char *value) {
        json_t *s;

        if (!value)
                return 0;
        if (strlen(value) > 128)
                return -EINVAL;
        s = json_string(value);
        if (!s)
                return -EINVAL;
        return json_object_set_new(o, key, s) < 0 ? -ENOMEM : 0;
}

int shadow_build_device_report(const ShadowDeviceInfo *info, const ShadowServiceInfo *svc, char **ret) {
        _cleanup_(json_decrefp) json_t *device = json_object(), *doc = NULL;
        int r;

        if (!device)
                return -ENOMEM;
        if (!info && !svc)
                return -EINVAL;
        if (info) {
                json_t *di = json_object();
                if (!di || json_object_set_new(device, "deviceInfo", di) < 0)
                        return -ENOMEM;
                if ((r = set_optional_string(di, "modemFirmware", info->modem_firmware)) < 0 ||
                    (r = set_optional_string(di, "imei", info->imei)) < 0 ||
                    (r = set_optional_string(di, "board", info->board)) < 0 ||
                    (r = set_optional_string(di, "appVersion", info->app_version)) < 0 ||
                    (r = set_optional_string(di, "appName", info->app_name)) < 0)
                        return r;
        }
        if (svc) {
                json_t *types = json_array(), *si;

                if (svc->fota_types >> _FOTA_TYPE_MAX) {
                        json_decref(types);
                        return -EINVAL;
                }
                if (!types)
                        return -ENOMEM;
                /* Only the types that have a fota_v2 name the cloud knows. */
                static const FotaType order[] = { FOTA_TYPE_APP, FOTA_TYPE_MODEM, FOTA_TYPE_BOOT, FOTA_TYPE_MDM_FULL };
                for (size_t i = 0; i < ELEMENTSOF(order); i++)
                        if ((svc->fota_types & (1u << order[i])) &&
                            json_array_append_new(types, json_string(fota_type_to_string(order[i]))) < 0) {
                                json_decref(types);
                                return -ENOMEM;
                        }
                si = json_pack("{s:o,s:b}", "fota_v2", types, "fota_v2_ble", svc->fota_ble);
                if (!si || json_object_set_new(device, "serviceInfo", si) < 0)
                        return -ENOMEM;
        }
        doc = json_pack("{s:{s:{s:O}}}", "state", "reported", "device", device);
        if (!doc)
                return -ENOMEM;
        return codec_json_dump(doc, ret);
}

int shadow_build_desired_connections(const char *const *addresses, size_t n, DesiredConnectionFormat format,
                                     char **ret) {
        _cleanup_(json_decrefp) json_t *list = NULL, *doc = NULL;

        if (n > SHADOW_CONNECTIONS_MAX || (n > 0 && !addresses))
                return -EINVAL;
        list = n > 0 ? json_array() : json_null();
        if (!list)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                char a[BT_ADDR_STR_LEN + 1];
                json_t *v = NULL;

                if (bt_addr_normalize(addresses[i], a) < 0)
                        return -EINVAL;
                switch (format) {
                case DESIRED_CONNECTION_STRING:
                        v = json_string(a);
                        break;
                case DESIRED_CONNECTION_ID_OBJECT:
                        v = json_pack("{s:s}", "id", a);
                        break;
                case DESIRED_CONNECTION_ADDRESS_OBJECT:
                        v = json_pack("{s:{s:s}}", "address", "address", a);
                        break;
                case _DESIRED_CONNECTION_FORMAT_MAX:
                case _DESIRED_CONNECTION_FORMAT_INVALID:
                        return -EINVAL;
                }
                if (json_array_append_new(list, v) < 0)
                        return -ENOMEM;
        }
        doc = json_pack("{s:{s:{s:O}}}", "state", "desired", "desiredConnections", list);
        if (!doc)
                return -ENOMEM;
        return codec_json_dump(doc, ret);
}

int shadow_build_delta_accept(const ShadowState *delta, char **ret) {
        if (!delta || delta->kind != SHADOW_DOC_DELTA || !delta->delta_state)
                return -EINVAL;
        return dump_new(json_pack("{s:{s:O}}", "state", "reported", delta->delta_state), ret);
}
