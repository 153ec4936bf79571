/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

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

/* A DNS name (letters, digits, '-', '.'), optionally with ":port". */
static bool host_valid(const char *s) {
        size_t n = strlen(s);
        const char *colon = strchr(s, ':');

        if (n == 0 || n > FOTA_HOST_MAX || s[0] == '.' || s[0] == '-')
                return false;
        for (const char *p = s; *p && p != colon; p++)
                if (!isalnum((unsigned char) *p) && *p != '-' && *p != '.')
                        return false;
        if (colon) {
                size_t digits = strlen(colon + 1);
                if (digits == 0 || digits > 5)
                        return false;
                for (const char *p = colon + 1; *p; p++)
                        if (!isdigit((unsigned char) *p))
                                return false;
        }
        return true;
}

/* One file path: visible ASCII, no "..", no leading '/', no '?'/'#' that
 * would turn into URL syntax, no '\'. */
static bool file_valid(const char *s, size_t n) {
        if (n == 0 || n > FOTA_PATH_MAX || s[0] == '/')
                return false;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];
                if (c <= 0x20 || c >= 0x7f || c == '\\' || c == '?' || c == '#' || c == '%')
                        return false;
                if (c == '.' && i + 1 < n && s[i + 1] == '.' && (i == 0 || s[i - 1] == '/'))
                        return false;
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

int fota_job_parse(const void *data, size_t size, bool ble, FotaJob *ret, FotaJobError *error) {
        _cleanup_(json_decrefp) json_t *a = NULL;
        FotaJobError err = {};
        FotaJob *j = NULL;
        size_t base = ble ? 1 : 0, want = base + 5;
        const json_t *v;
        const char *s;
        json_int_t x;
        int r;

        if (size == 0)
                return -ENOENT;
        r = codec_json_parse(data, size, FOTA_JOB_MESSAGE_MAX, FOTA_JOB_DEPTH_MAX, &a, &err.error);
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

        if (json_array_size(a) != want) {
                r = codec_error(&err.error, -EBADMSG, "", "%zu elements instead of %zu", json_array_size(a), want);
                goto fail;
        }

        v = json_array_get(a, base + 1);
        if (!json_is_integer(v) || (x = json_integer_value(v)) < 0 || x > 255) {
                r = codec_error(&err.error, -EBADMSG, ble ? "[2]" : "[1]", "firmware type is not a small integer");
                goto fail;
        }
        j->type = (int) x;

        v = json_array_get(a, base + 2);
        if (!json_is_integer(v) || (x = json_integer_value(v)) < 0 || (uint64_t) x > FOTA_FILE_SIZE_MAX) {
                r = codec_error(&err.error, -EBADMSG, ble ? "[3]" : "[2]", "file size is not an integer 0..4 GiB");
                goto fail;
        }
        j->file_size = (uint64_t) x;

        s = json_string_value(json_array_get(a, base + 3));
        if (!s || !host_valid(s)) {
                r = codec_error(&err.error, -EBADMSG, ble ? "[4]" : "[3]", "not a host name");
                goto fail;
        }
        strcpy(j->host, s);

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
