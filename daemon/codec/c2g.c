/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "c2g.h"

static const char *const c2g_op_type_table[_C2G_OP_MAX] = {
        [C2G_OP_SCAN] = "scan",
        [C2G_OP_DEVICE_DISCOVER] = "device_discover",
        [C2G_OP_CHARACTERISTIC_READ] = "device_characteristic_value_read",
        [C2G_OP_CHARACTERISTIC_WRITE] = "device_characteristic_value_write",
        [C2G_OP_DESCRIPTOR_READ] = "device_descriptor_value_read",
        [C2G_OP_DESCRIPTOR_WRITE] = "device_descriptor_value_write",
        [C2G_OP_GET_GATEWAY_STATUS] = "get_gateway_status",
        [C2G_OP_DELETE_YOURSELF] = "delete_yourself",
};

static const char *const c2g_scan_mode_table[_C2G_SCAN_MODE_MAX] = {
        [C2G_SCAN_MODE_ACTIVE] = "active",
        [C2G_SCAN_MODE_PASSIVE] = "passive",
};

static const char *const c2g_scan_reporting_table[_C2G_SCAN_REPORTING_MAX] = {
        [C2G_SCAN_REPORTING_INSTANT] = "instant",
        [C2G_SCAN_REPORTING_BATCH] = "batch",
};

static const char *const c2g_scan_type_table[_C2G_SCAN_TYPE_MAX] = {
        [C2G_SCAN_TYPE_REGULAR] = "regular",
        [C2G_SCAN_TYPE_BEACON] = "beacon",
};

static const char *const c2g_message_kind_table[_C2G_MESSAGE_KIND_MAX] = {
        [C2G_MESSAGE_OPERATION] = "operation",
        [C2G_MESSAGE_DISCON] = "discon",
};

static const char *const c2g_ccc_mode_table[_C2G_CCC_MODE_MAX] = {
        [C2G_CCC_OFF] = "off",
        [C2G_CCC_NOTIFY] = "notify",
        [C2G_CCC_INDICATE] = "indicate",
};

static const char *table_lookup(const char *const *table, size_t n, int i) {
        if (i < 0 || (size_t) i >= n)
                return NULL;
        return table[i];
}

static int table_find(const char *const *table, size_t n, const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (table[i] && streq(table[i], s))
                        return (int) i;
        return -EINVAL;
}

const char *c2g_op_type_to_string(C2gOpType t) {
        return table_lookup(c2g_op_type_table, _C2G_OP_MAX, t);
}
C2gOpType c2g_op_type_from_string(const char *s) {
        return (C2gOpType) table_find(c2g_op_type_table, _C2G_OP_MAX, s);
}
const char *c2g_scan_mode_to_string(C2gScanMode m) {
        return table_lookup(c2g_scan_mode_table, _C2G_SCAN_MODE_MAX, m);
}
C2gScanMode c2g_scan_mode_from_string(const char *s) {
        return (C2gScanMode) table_find(c2g_scan_mode_table, _C2G_SCAN_MODE_MAX, s);
}
const char *c2g_scan_reporting_to_string(C2gScanReporting r) {
        return table_lookup(c2g_scan_reporting_table, _C2G_SCAN_REPORTING_MAX, r);
}
C2gScanReporting c2g_scan_reporting_from_string(const char *s) {
        return (C2gScanReporting) table_find(c2g_scan_reporting_table, _C2G_SCAN_REPORTING_MAX, s);
}
const char *c2g_scan_type_to_string(C2gScanType t) {
        return table_lookup(c2g_scan_type_table, _C2G_SCAN_TYPE_MAX, t);
}
const char *c2g_message_kind_to_string(C2gMessageKind k) {
        return table_lookup(c2g_message_kind_table, _C2G_MESSAGE_KIND_MAX, k);
}

const char *c2g_ccc_mode_to_string(C2gCccMode m) {
        return table_lookup(c2g_ccc_mode_table, _C2G_CCC_MODE_MAX, m);
}

bool c2g_is_ccc_write(const C2gOperation *o) {
        /* Descriptor UUIDs are normalised, so the long spelling is "2902" too. */
        return o && o->type == C2G_OP_DESCRIPTOR_WRITE && streq(o->target.descriptor_uuid, "2902");
}

int c2g_ccc_mode(const uint8_t *value, size_t len, C2gCccMode *ret) {
        if (!value || len < 1 || len > 2 || (len == 2 && value[1] != 0))
                return -EINVAL;
        switch (value[0]) {
        case 0:
                *ret = C2G_CCC_OFF;
                return 0;
        case 1:
                *ret = C2G_CCC_NOTIFY;
                return 0;
        case 2:
                *ret = C2G_CCC_INDICATE;
                return 0;
        case 3:
                return -EOPNOTSUPP;
        default:
                return -EINVAL;
        }
}

bool c2g_json_is_discon(const json_t *j) {
        return json_is_object(j) &&
               streq_ptr(json_string_value(json_object_get(j, "appId")), "DEVICE") &&
               streq_ptr(json_string_value(json_object_get(j, "messageType")), "DISCON");
}

/* The request id is echoed into JSON and into logs: keep it to printable ASCII. */
static bool id_valid(const char *s, size_t n) {
        if (n == 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (s[i] < 0x20 || s[i] > 0x7e)
                        return false;
        return true;
}

static int decode_scan(const json_t *op, C2gScan *ret, CodecError *e) {
        C2gScan s = {
                .type = C2G_SCAN_TYPE_REGULAR,
                .timeout_sec = C2G_SCAN_TIMEOUT_DEFAULT,
                .mode = C2G_SCAN_MODE_ACTIVE,
                .reporting = C2G_SCAN_REPORTING_INSTANT,
        };
        const json_t *filter;
        const char *str;
        int64_t v;
        int r;

        r = codec_json_get_int(op, "scanType", "operation", 0, _C2G_SCAN_TYPE_MAX - 1, &v, e);
        if (r >= 0)
                s.type = (C2gScanType) v;
        else if (r != -ENOENT)
                return r;

        /* Lenient from here to the filter: what cannot be used falls back to its default. */
        r = codec_json_get_int(op, "scanTimeout", "operation", 1, C2G_SCAN_TIMEOUT_MAX, &v, NULL);
        if (r >= 0)
                s.timeout_sec = (unsigned) v;
        else if (r != -ENOENT)
                s.defaulted |= C2G_SCAN_DEFAULTED_TIMEOUT;

        r = codec_json_get_int(op, "scanInterval", "operation", 0, C2G_SCAN_INTERVAL_MAX, &v, NULL);
        if (r >= 0)
                s.interval = (unsigned) v;
        else if (r != -ENOENT)
                s.defaulted |= C2G_SCAN_DEFAULTED_INTERVAL;

        r = codec_json_get_string(op, "scanMode", "operation", 16, &str, NULL);
        if (r >= 0 && c2g_scan_mode_from_string(str) >= 0)
                s.mode = c2g_scan_mode_from_string(str);
        else if (r != -ENOENT)
                s.defaulted |= C2G_SCAN_DEFAULTED_MODE;

        r = codec_json_get_string(op, "scanReporting", "operation", 16, &str, NULL);
        if (r >= 0 && c2g_scan_reporting_from_string(str) >= 0)
                s.reporting = c2g_scan_reporting_from_string(str);
        else if (r != -ENOENT)
                s.defaulted |= C2G_SCAN_DEFAULTED_REPORTING;

        filter = json_object_get(op, "filter");
        if (filter && !json_is_null(filter)) {
                if (!json_is_object(filter))
                        return codec_error(e, -EBADMSG, "operation.filter", "not an object");
                r = codec_json_get_int(filter, "rssi", "operation.filter", -127, 20, &v, e);
                if (r >= 0) {
                        s.has_filter_rssi = true;
                        s.filter_rssi = (int) v;
                } else if (r != -ENOENT)
                        return r;
                r = codec_json_get_string(filter, "name", "operation.filter", C2G_SCAN_NAME_MAX, &str, e);
                if (r >= 0)
                        strcpy(s.filter_name, str);
                else if (r != -ENOENT)
                        return r;
        }

        *ret = s;
        return 0;
}

static int get_address(const json_t *op, char ret[static BT_ADDR_STR_LEN + 1], CodecError *e) {
        const char *s;
        int r;

        r = codec_json_get_string(op, "deviceAddress", "operation", 64, &s, e);
        if (r == -ENOENT)
                return codec_error(e, -EBADMSG, "operation.deviceAddress", "missing");
        if (r < 0)
                return r;
        if (bt_addr_normalize(s, ret) < 0)
                return codec_error(e, -EBADMSG, "operation.deviceAddress", "not a Bluetooth address AA:BB:CC:DD:EE:FF");
        return 0;
}

static int get_uuid(const json_t *op, const char *key, char ret[static UUID_STR_MAX + 1], CodecError *e) {
        char field[CODEC_FIELD_MAX];
        const char *s;
        int r;

        snprintf(field, sizeof field, "operation.%s", key);
        r = codec_json_get_string(op, key, "operation", 64, &s, e);
        if (r == -ENOENT)
                return codec_error(e, -EBADMSG, field, "missing");
        if (r < 0)
                return r;
        if (uuid_normalize(s, ret) < 0)
                return codec_error(e, -EBADMSG, field, "not a UUID of 4 or 32 hex digits");
        return 0;
}

static int get_value(const json_t *op, const char *key, uint8_t *buf, size_t *ret_len, CodecError *e) {
        char field[CODEC_FIELD_MAX];
        const json_t *v = json_object_get(op, key);

        snprintf(field, sizeof field, "operation.%s", key);
        if (!v)
                return codec_error(e, -EBADMSG, field, "missing");
        return codec_json_get_bytes(v, field, buf, GATT_VALUE_MAX, ret_len, e);
}

static int decode_operation(C2gOpType type, const json_t *op, C2gOperation *o, CodecError *e) {
        int r;

        switch (type) {
        case C2G_OP_SCAN:
                return decode_scan(op, &o->scan, e);

        case C2G_OP_GET_GATEWAY_STATUS:
        case C2G_OP_DELETE_YOURSELF:
                return 0;

        case C2G_OP_DEVICE_DISCOVER:
                return get_address(op, o->target.address, e);

        case C2G_OP_CHARACTERISTIC_READ:
        case C2G_OP_CHARACTERISTIC_WRITE:
        case C2G_OP_DESCRIPTOR_READ:
        case C2G_OP_DESCRIPTOR_WRITE:
                r = get_address(op, o->target.address, e);
                if (r < 0)
                        return r;
                r = get_uuid(op, "serviceUUID", o->target.service_uuid, e);
                if (r < 0)
                        return r;
                r = get_uuid(op, "characteristicUUID", o->target.characteristic_uuid, e);
                if (r < 0)
                        return r;
                if (type == C2G_OP_CHARACTERISTIC_WRITE)
                        return get_value(op, "characteristicValue", o->value, &o->value_len, e);
                if (type == C2G_OP_CHARACTERISTIC_READ)
                        return 0;
                r = get_uuid(op, "descriptorUUID", o->target.descriptor_uuid, e);
                if (r < 0)
                        return r;
                if (type == C2G_OP_DESCRIPTOR_WRITE)
                        return get_value(op, "descriptorValue", o->value, &o->value_len, e);
                return 0;

        case _C2G_OP_MAX:
        case _C2G_OP_INVALID:
                break;
        }
        return codec_error(e, -EOPNOTSUPP, "operation.type", "unknown operation");
}

int c2g_decode(const void *data, size_t size, C2gOperation *ret, C2gError *error) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        C2gError err = { .type = _C2G_OP_INVALID };
        C2gOperation o = {};
        CodecError id_error = {};
        const json_t *op;
        const char *s;
        int r, id_r;

        r = codec_json_parse(data, size, C2G_MESSAGE_MAX, C2G_DEPTH_MAX, &j, &err.error);
        if (r < 0)
                goto fail;
        if (!json_is_object(j)) {
                r = codec_error(&err.error, -EPROTO, "", "not a JSON object");
                goto fail;
        }
        if (c2g_json_is_discon(j))
                return C2G_MESSAGE_DISCON;

        /* The id first, so that every later error can be answered with it;
         * a missing or bad id is reported once the envelope type is known. */
        r = codec_json_get_string(j, "id", "", C2G_ID_MAX, &s, &id_error);
        if (r == -ENOENT)
                r = codec_error(&id_error, -EBADMSG, "id", "missing");
        else if (r >= 0 && !id_valid(s, strlen(s)))
                r = codec_error(&id_error, -EBADMSG, "id", "empty or not printable ASCII");
        if (r >= 0) {
                strcpy(o.id, s);
                strcpy(err.id, s);
                err.has_id = true;
        }
        id_r = r;

        r = codec_json_get_string(j, "type", "", 32, &s, &err.error);
        if (r == -ENOENT)
                r = codec_error(&err.error, -EPROTO, "type", "missing");
        else if (r >= 0 && !streq(s, "operation"))
                r = codec_error(&err.error, -EPROTO, "type", "not \"operation\"");
        if (r < 0)
                goto fail;
        if (id_r < 0) {
                err.error = id_error;
                r = id_r;
                goto fail;
        }

        op = json_object_get(j, "operation");
        if (!json_is_object(op)) {
                r = codec_error(&err.error, -EBADMSG, "operation", op ? "not an object" : "missing");
                goto fail;
        }
        r = codec_json_get_string(op, "type", "operation", 64, &s, &err.error);
        if (r == -ENOENT)
                r = codec_error(&err.error, -EBADMSG, "operation.type", "missing");
        if (r < 0)
                goto fail;
        o.type = c2g_op_type_from_string(s);
        if (o.type < 0) {
                r = codec_error(&err.error, -EOPNOTSUPP, "operation.type", "unknown operation");
                goto fail;
        }
        err.type = o.type;

        r = decode_operation(o.type, op, &o, &err.error);
        if (r < 0)
                goto fail;

        *ret = o;
        return C2G_MESSAGE_OPERATION;

fail:
        if (error)
                *error = err;
        return r;
}
