/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "codec-util.h"

int codec_error(CodecError *e, int r, const char *field, const char *format, ...) {
        va_list ap;

        if (!e)
                return r;
        snprintf(e->field, sizeof e->field, "%s", strempty(field));
        va_start(ap, format);
        vsnprintf(e->description, sizeof e->description, format, ap);
        va_end(ap);
        /* Descriptions may quote the peer's bytes (jansson's error texts
         * do); keep them printable ASCII so they can go into an error event
         * and a log line as they are. */
        for (char *p = e->description; *p; p++)
                if (*p < 0x20 || *p > 0x7e)
                        *p = '?';
        return r;
}

/* Nesting depth of the JSON text, counting only brackets outside strings.
 * Stops as soon as max_depth is exceeded. */
static bool json_depth_ok(const char *p, size_t size, unsigned max_depth) {
        unsigned depth = 0;
        bool in_string = false, escaped = false;

        for (size_t i = 0; i < size; i++) {
                char c = p[i];

                if (in_string) {
                        if (escaped)
                                escaped = false;
                        else if (c == '\\')
                                escaped = true;
                        else if (c == '"')
                                in_string = false;
                        continue;
                }
                switch (c) {
                case '"':
                        in_string = true;
                        break;
                case '[':
                case '{':
                        if (++depth > max_depth)
                                return false;
                        break;
                case ']':
                case '}':
                        if (depth > 0)
                                depth--;
                        break;
                default:
                        break;
                }
        }
        return true;
}

int codec_json_parse(const void *data, size_t size, size_t max_size, unsigned max_depth,
                     json_t **ret, CodecError *e) {
        json_error_t err;
        json_t *j;

        if (!data && size > 0)
                return codec_error(e, -EINVAL, "", "no data");
        if (size > max_size)
                return codec_error(e, -EMSGSIZE, "", "document of %zu bytes exceeds the limit of %zu",
                                   size, max_size);
        if (!json_depth_ok(data, size, max_depth))
                return codec_error(e, -ELOOP, "", "document nested deeper than %u levels", max_depth);

        j = json_loadb(data, size, JSON_REJECT_DUPLICATES, &err);
        if (!j)
                return codec_error(e, -EBADMSG, "", "invalid JSON at offset %d: %s", err.position, err.text);
        *ret = j;
        return 0;
}

int codec_json_dump(const json_t *j, char **ret) {
        char *s;

        /* Objects keep insertion order in jansson >= 2.8, and no key sorting
         * is asked for, so the layout is the order in which it was built. */
        s = json_dumps(j, JSON_COMPACT);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static const char *const bt_addr_type_table[_BT_ADDR_TYPE_MAX] = {
        [BT_ADDR_TYPE_UNSPECIFIED] = NULL,
        [BT_ADDR_TYPE_PUBLIC] = "public",
        [BT_ADDR_TYPE_RANDOM] = "random",
        [BT_ADDR_TYPE_RANDOM_STATIC] = "randomStatic",
};

const char *bt_addr_type_to_string(BtAddrType t) {
        if (t < 0 || t >= _BT_ADDR_TYPE_MAX)
                return NULL;
        return bt_addr_type_table[t];
}

BtAddrType bt_addr_type_from_string(const char *s) {
        if (!s)
                return _BT_ADDR_TYPE_INVALID;
        for (int i = 0; i < _BT_ADDR_TYPE_MAX; i++)
                if (bt_addr_type_table[i] && streq(bt_addr_type_table[i], s))
                        return (BtAddrType) i;
        return _BT_ADDR_TYPE_INVALID;
}

int codec_json_get_bytes(const json_t *v, const char *field, uint8_t *buf, size_t max,
                         size_t *ret_len, CodecError *e) {
        size_t n;

        if (json_is_string(v)) {
                /* lte-gateway sends the bytes of a string as the value. */
                n = json_string_length(v);
                if (n > max)
                        return codec_error(e, -EMSGSIZE, field, "value of %zu bytes exceeds the limit of %zu",
                                           n, max);
                memcpy(buf, json_string_value(v), n);
                *ret_len = n;
                return 0;
        }
        if (!json_is_array(v))
                return codec_error(e, -EBADMSG, field, "not a byte array or string");

        n = json_array_size(v);
        if (n > max)
                return codec_error(e, -EMSGSIZE, field, "value of %zu bytes exceeds the limit of %zu", n, max);
        for (size_t i = 0; i < n; i++) {
                const json_t *b = json_array_get(v, i);
                json_int_t x;

                if (!json_is_integer(b))
                        return codec_error(e, -EBADMSG, field, "element %zu is not an integer", i);
                x = json_integer_value(b);
                if (x < 0 || x > 255)
                        return codec_error(e, -EBADMSG, field, "element %zu is out of range 0..255", i);
        }
        /* Only now that all is checked, so buf is untouched on failure. */
        for (size_t i = 0; i < n; i++)
                buf[i] = (uint8_t) json_integer_value(json_array_get(v, i));
        *ret_len = n;
        return 0;
}

json_t *codec_json_bytes(const uint8_t *data, size_t len) {
        json_t *a = json_array();

        if (!a)
                return NULL;
        for (size_t i = 0; i < len; i++)
                if (json_array_append_new(a, json_integer(data[i])) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

static void field_name(char *buf, size_t size, const char *prefix, const char *key) {
        if (prefix && prefix[0])
                snprintf(buf, size, "%s.%s", prefix, key);
        else
                snprintf(buf, size, "%s", key);
}

int codec_json_get_string(const json_t *obj, const char *key, const char *field_prefix,
                          size_t max_len, const char **ret, CodecError *e) {
        char field[CODEC_FIELD_MAX];
        const json_t *v = json_object_get(obj, key);
        const char *s;
        size_t n;

        if (!v)
                return -ENOENT;
        field_name(field, sizeof field, field_prefix, key);
        if (!json_is_string(v))
                return codec_error(e, -EBADMSG, field, "not a string");
        s = json_string_value(v);
        n = json_string_length(v);
        if (n > max_len)
                return codec_error(e, -EMSGSIZE, field, "string of %zu bytes exceeds the limit of %zu", n, max_len);
        if (strlen(s) != n)
                return codec_error(e, -EBADMSG, field, "string contains a NUL character");
        *ret = s;
        return 0;
}

int codec_json_get_int(const json_t *obj, const char *key, const char *field_prefix,
                       int64_t min, int64_t max, int64_t *ret, CodecError *e) {
        char field[CODEC_FIELD_MAX];
        const json_t *v = json_object_get(obj, key);
        json_int_t x;

        if (!v)
                return -ENOENT;
        field_name(field, sizeof field, field_prefix, key);
        if (!json_is_integer(v))
                return codec_error(e, -EBADMSG, field, "not an integer");
        x = json_integer_value(v);
        if (x < min || x > max)
                return codec_error(e, -ERANGE, field, "%" JSON_INTEGER_FORMAT " is out of range %" PRId64 "..%" PRId64,
                                   x, min, max);
        *ret = x;
        return 0;
}
