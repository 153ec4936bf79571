/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "fota-job.h"

static const char *const fota_type_table[_FOTA_TYPE_MAX] = {
        [FOTA_TYPE_APP] = "APP",
        [FOTA_TYPE_MODEM] = "MODEM",
        [FOTA_TYPE_BOOT] = "BOOT",
        [FOTA_TYPE_BLE_BOOT] = "BLE_BOOT",
        [FOTA_TYPE_BLE_SOFTDEVICE] = "BLE_SOFTDEVICE",
        [FOTA_TYPE_MDM_FULL] = "MDM_FULL",
};

static const char *const fota_status_table[_FOTA_STATUS_MAX] = {
        [FOTA_STATUS_QUEUED] = "QUEUED",
        [FOTA_STATUS_IN_PROGRESS] = "IN_PROGRESS",
        [FOTA_STATUS_FAILED] = "FAILED",
        [FOTA_STATUS_SUCCEEDED] = "SUCCEEDED",
        [FOTA_STATUS_TIMED_OUT] = "TIMED_OUT",
        [FOTA_STATUS_CANCELED] = "CANCELED",
        [FOTA_STATUS_REJECTED] = "REJECTED",
        [FOTA_STATUS_DOWNLOADING] = "DOWNLOADING",
};

const char *fota_type_to_string(FotaType t) {
        if (t < 0 || t >= _FOTA_TYPE_MAX)
                return NULL;
        return fota_type_table[t];
}

FotaType fota_type_from_string(const char *s) {
        if (!s)
                return _FOTA_TYPE_INVALID;
        for (int i = 0; i < _FOTA_TYPE_MAX; i++)
                if (streq(fota_type_table[i], s))
                        return (FotaType) i;
        return _FOTA_TYPE_INVALID;
}

const char *fota_status_to_string(FotaStatus s) {
        if (s < 0 || s >= _FOTA_STATUS_MAX)
                return NULL;
        return fota_status_table[s];
}

/* Job ids are UUIDs in practice; allow the characters of ids seen in the
 * wild ("abcd1234") and nothing that could escape a log line or a path. */
static bool job_id_valid(const char *s) {
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > FOTA_JOB_ID_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char) s[i]) && s[i] != '-' && s[i] != '_')
                        return false;
        return true;
}

static bool port_valid(const char *s) {
        size_t digits = strlen(s);

        if (digits == 0 || digits > 5)
                return false;
        for (const char *p = s; *p; p++)
                if (!isdigit((unsigned char) *p))
                        return false;
        return true;
}

/* A DNS name or IPv4 literal (letters, digits, '-', '.'), or an IPv6 literal
 * in brackets, optionally with ":port". */
static bool host_valid(const char *s) {
        size_t n = strlen(s);
        const char *end;

        if (n == 0 || n > FOTA_HOST_MAX || s[0] == '.' || s[0] == '-')
                return false;
        if (s[0] == '[') {
                end = strchr(s, ']');
                if (!end || end == s + 1)
                        return false;
                for (const char *p = s + 1; p < end; p++)
                        if (!isxdigit((unsigned char) *p) && *p != ':' && *p != '.')
                                return false;
                end++;
        } else {
                end = s;
                while (isalnum((unsigned char) *end) || *end == '-' || *end == '.')
                        end++;
                if (end == s)
                        return false;
        }
        if (*end == 0)
                return true;
        return *end == ':' && port_valid(end + 1);
}

static int unhex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        c = (char) tolower((unsigned char) c);
        return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*
 * One file path, as nRF Cloud's library takes it: relative, percent-encoded
 * or not.  Refused: control characters (raw or percent-encoded), a '%' not
 * followed by two hex digits, and ".." segments (raw or encoded, also
 * before a '?' or '#'), which could leave the folder the job names.  Everything else is kept;
 * fota_job_url() encodes what a URL or an AT command line cannot carry.
 */
static bool file_valid(const char *s, size_t n) {
        size_t seg_len = 0, seg_dots = 0;

        if (n == 0 || n > FOTA_PATH_MAX)
                return false;
        for (size_t i = 0; i <= n; i++) {
                int c;

                /* A URL's path also ends at '?' and '#': "a/%2e%2e?x" climbs as "a/../" does. */
                if (i == n || s[i] == '/' || s[i] == '?' || s[i] == '#') {
                        if (seg_len == 2 && seg_dots == 2)
                                return false;
                        seg_len = seg_dots = 0;
                        continue;
                }
                c = (unsigned char) s[i];
                if (c == '%') {
                        int hi, lo;

                        if (n - i < 3)
                                return false;
                        hi = unhex(s[i + 1]);
                        lo = unhex(s[i + 2]);
                        if (hi < 0 || lo < 0)
                                return false;
                        c = hi * 16 + lo;
                        if (c == '/' || c == '\\') /* encoded: a character of the segment, not a separator */
                                c = 'x';
                        i += 2;
                }
                if (c < 0x20 || c == 0x7f)
                        return false;
                seg_len++;
                if (c == '.')
                        seg_dots++;
        }
        return true;
}

static int split_files(const char *path, bool many, FotaJob *j) {
        const char *p = path;

        j->n_files = 0;
        for (;;) {
                size_t n;

                while (*p == ' ' && many)
                        p++;
                /* "v1/x.bin" and "/v1/x.bin" name the same file on the host. */
                while (*p == '/')
                        p++;
                if (!*p)
                        break;
                n = many ? strcspn(p, " ") : strlen(p);
                if (j->n_files >= FOTA_FILES_MAX || !file_valid(p, n))
                        return -EBADMSG;
                memcpy(j->files[j->n_files], p, n);
                j->files[j->n_files][n] = 0;
                j->n_files++;
                p += n;
        }
        return j->n_files > 0 ? 0 : -EBADMSG;
}

/* A whole non-negative number up to max: an integer, or a real without a fraction. */
static int json_get_count(const json_t *v, uint64_t max, uint64_t *ret) {
        double d;

        if (json_is_integer(v)) {
                json_int_t x = json_integer_value(v);
                if (x < 0 || (uint64_t) x > max)
                        return -ERANGE;
                *ret = (uint64_t) x;
                return 0;
        }
        if (!json_is_real(v))
                return -EBADMSG;
        d = json_real_value(v);
        if (!(d >= 0 && d <= (double) max) || d != (double) (uint64_t) d)
                return -ERANGE;
        *ret = (uint64_t) d;
        return 0;
}

static bool has_prefix_nocase(const char *s, const char *prefix) {
        return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

static bool blank(const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!isspace(p[i]))
                        return false;
        return true;
}

/*
 * Lenient, as nRF Cloud's own decoder (nrf_cloud_fota_job_decode): the
 * elements are read by index and extra elements are ignored; the id is read
 * first so that a job that is otherwise unusable can still be answered.
 */
int fota_job_parse(const void *data, size_t size, bool ble, FotaJob *ret, FotaJobError *error) {
        _cleanup_(json_decrefp) json_t *a = NULL;
        FotaJobError err = {};
        FotaJob *j = NULL;
        size_t base = ble ? 1 : 0;
        const json_t *v;
        const char *s;
        uint64_t x;
        int r;

        if (size == 0 || blank(data, size) || (size == 4 && memcmp(data, "null", 4) == 0))
                return -ENOENT;
        /* Read up to FOTA_JOB_INPUT_MAX so that the id of an over-long job can still be answered. */
        r = codec_json_parse(data, size, FOTA_JOB_INPUT_MAX, FOTA_JOB_DEPTH_MAX, &a, &err.error);
        if (r < 0)
                goto fail;
        if (!json_is_array(a)) {
                r = codec_error(&err.error, -EBADMSG, "", "not a JSON array");
                goto fail;
        }
        if (json_array_size(a) == 0)
                return -ENOENT;

        j = calloc(1, sizeof *j);
        if (!j)
                return -ENOMEM;
        j->ble = ble;

        /* Pick up the address and id first so that a broken job can still be answered. */
        if (ble) {
                s = json_string_value(json_array_get(a, 0));
                if (bt_addr_normalize(s, j->ble_address) < 0) {
                        r = codec_error(&err.error, -EBADMSG, "[0]", "not a Bluetooth address");
                        goto fail;
                }
                strcpy(err.ble_address, j->ble_address);
        }
        s = json_string_value(json_array_get(a, base));
        if (!job_id_valid(s)) {
                r = codec_error(&err.error, -EBADMSG, ble ? "[1]" : "[0]", "not a job id");
                goto fail;
        }
        strcpy(j->id, s);
        strcpy(err.id, s);
        if (size > FOTA_JOB_MESSAGE_MAX) {
                r = codec_error(&err.error, -EBADMSG, "", "longer than %u bytes", (unsigned) FOTA_JOB_MESSAGE_MAX);
                goto fail;
        }

        if (json_get_count(json_array_get(a, base + 1), 255, &x) < 0) {
                r = codec_error(&err.error, -EBADMSG, ble ? "[2]" : "[1]", "firmware type is not a small integer");
                goto fail;
        }
        /* NCS's decoder takes only the types of enum nrf_cloud_fota_type; another number makes the job invalid. */
        if (x >= _FOTA_TYPE_MAX) {
                r = codec_error(&err.error, -EBADMSG, ble ? "[2]" : "[1]", "unknown firmware type %u", (unsigned) x);
                goto fail;
        }
        j->type = (int) x;

        if (json_get_count(json_array_get(a, base + 2), FOTA_FILE_SIZE_MAX, &x) < 0) {
                r = codec_error(&err.error, -EBADMSG, ble ? "[3]" : "[2]", "file size is not an integer 0..4 GiB");
                goto fail;
        }
        j->file_size = x;

        /* The host with or without its scheme: the download is always HTTPS. */
        v = json_array_get(a, base + 3);
        s = json_string_value(v);
        if (s && has_prefix_nocase(s, "https://"))
                s += strlen("https://");
        if (!s || strlen(s) != json_string_length(v) - (size_t) (s - json_string_value(v)) ||
            strlen(s) > FOTA_HOST_MAX) {
                r = codec_error(&err.error, -EBADMSG, ble ? "[4]" : "[3]", "not a host name");
                goto fail;
        }
        strcpy(j->host, s);
        /* "host/" as some tools write it */
        if (strlen(j->host) > 1 && j->host[strlen(j->host) - 1] == '/')
                j->host[strlen(j->host) - 1] = 0;
        if (!host_valid(j->host)) {
                r = codec_error(&err.error, -EBADMSG, ble ? "[4]" : "[3]", "not a host name");
                goto fail;
        }

        v = json_array_get(a, base + 4);
        s = json_string_value(v);
        if (!s || json_string_length(v) > FOTA_PATH_MAX || strlen(s) != json_string_length(v) ||
            split_files(s, ble, j) < 0) {
                r = codec_error(&err.error, -EBADMSG, ble ? "[5]" : "[4]", "not a valid file path%s",
                                ble ? " list" : "");
                goto fail;
        }

        *ret = *j;
        free(j);
        return 0;

fail:
        free(j);
        if (error)
                *error = err;
        return r;
}

/* Bytes a URL path keeps as they are (RFC 3986 pchar and '/', '%' of an escape, '?'). */
static bool url_keeps(unsigned char c) {
        return isalnum(c) || strchr("-._~!$&'()*+,;=:@/%?", c);
}

int fota_job_url(const FotaJob *j, size_t file, char *buf, size_t size) {
        static const char hex[] = "0123456789ABCDEF";
        size_t o;
        int n;

        if (!j || file >= j->n_files || !buf)
                return -EINVAL;
        n = snprintf(buf, size, "https://%s/", j->host);
        if (n < 0 || (size_t) n >= size)
                return -ENOBUFS;
        o = (size_t) n;
        for (const char *p = j->files[file]; *p; p++) {
                unsigned char c = (unsigned char) *p;
                if (o + 4 > size)
                        return -ENOBUFS;
                if (url_keeps(c))
                        buf[o++] = (char) c;
                else {
                        buf[o++] = '%';
                        buf[o++] = hex[c >> 4];
                        buf[o++] = hex[c & 15];
                }
        }
        buf[o] = 0;
        return 0;
}

int fota_delta_target_version(const char *path, char *buf, size_t size) {
        const char *name, *from, *to, *end;
        size_t n;

        if (!path || !buf || size == 0)
                return -EINVAL;
        name = strrchr(path, '/');
        name = name ? name + 1 : path;
        from = strstr(name, "_from_");
        to = from ? strstr(from + 6, "_to_") : NULL;
        if (!to)
                return -ENOENT;
        to += 4;
        end = to;
        while (*end && (isalnum((unsigned char) *end) || *end == '.' || *end == '-' || *end == '_'))
                end++;
        n = (size_t) (end - to);
        /* "..._to_1.3.6.bin": the extension is not part of the version. */
        if (n >= 4 && strncmp(end - 4, ".bin", 4) == 0)
                n -= 4;
        if (n == 0)
                return -ENOENT;
        if (n >= size)
                return -ENOBUFS;
        memcpy(buf, to, n);
        buf[n] = 0;
        return 0;
}

int fota_job_build_request(const char *job_id, char **ret) {
        _cleanup_(json_decrefp) json_t *a = NULL;

        if (!job_id)
                job_id = "";
        if (job_id[0] && !job_id_valid(job_id))
                return -EINVAL;
        a = json_pack("[s]", job_id);
        if (!a)
                return -ENOMEM;
        return codec_json_dump(a, ret);
}

int fota_ble_job_build_request(const char *address, char **ret) {
        _cleanup_(json_decrefp) json_t *a = NULL;
        char addr[BT_ADDR_STR_LEN + 1];

        if (bt_addr_normalize(address, addr) < 0)
                return -EINVAL;
        a = json_pack("[s]", addr);
        if (!a)
                return -ENOMEM;
        return codec_json_dump(a, ret);
}

static int build_update(const char *address, const char *job_id, FotaStatus status, unsigned progress,
                        const char *message, char **ret) {
        _cleanup_(json_decrefp) json_t *a = json_array();
        char addr[BT_ADDR_STR_LEN + 1];
        json_t *last;

        if (!a)
                return -ENOMEM;
        if (!job_id_valid(job_id) || status < 0 || status >= _FOTA_STATUS_MAX)
                return -EINVAL;
        if (status == FOTA_STATUS_DOWNLOADING) {
                if (progress > 100)
                        return -EINVAL;
                last = json_integer(progress);
        } else {
                if (message && strlen(message) > FOTA_STATUS_MESSAGE_MAX)
                        return -EINVAL;
                last = json_string(strempty(message));
                if (!last)
                        return -EINVAL; /* not UTF-8 */
        }
        if (address) {
                if (bt_addr_normalize(address, addr) < 0) {
                        json_decref(last);
                        return -EINVAL;
                }
                if (json_array_append_new(a, json_string(addr)) < 0) {
                        json_decref(last);
                        return -ENOMEM;
                }
        }
        if (json_array_append_new(a, json_string(job_id)) < 0 || json_array_append_new(a, json_integer(status)) < 0 ||
            json_array_append_new(a, last) < 0)
                return -ENOMEM;
        return codec_json_dump(a, ret);
}

int fota_job_build_update(const char *job_id, FotaStatus status, unsigned progress, const char *message, char **ret) {
        return build_update(NULL, job_id, status, progress, message, ret);
}

int fota_ble_job_build_update(const char *address, const char *job_id, FotaStatus status, unsigned progress,
                              const char *message, char **ret) {
        if (!address)
                return -EINVAL;
        return build_update(address, job_id, status, progress, message, ret);
}
