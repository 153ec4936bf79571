/* SPDX-License-Identifier: MIT */
/*
 * The FOTA image store of nrf91-sim, in the state directory:
 *
 *   fota/image      the image being downloaded, then the scheduled one
 *   fota/partial    "<type> <total> <url>" while the image is incomplete: a
 *                   reset (or a killed process) keeps it, and a download of
 *                   the same type and URL resumes from the image's size
 *   fota/pending    "<type> <version> <from>" of the scheduled image
 *   fota/testing    "<old version> <size>" while a new application runs as an
 *                   MCUboot test image; a reset before #XFOTA=9 reverts
 *   fota/result     "<status> <info>" of the image the last reset applied,
 *                   reported once after boot as #XFOTA: 5,<status>[,<info>]
 *   fota/last       the same, kept for #XFOTAINFO until a download starts from zero
 *   app-version     the application version (#XSMVER) after an application update
 *
 * A reset is a reset whatever caused it (#XRESET, the control socket, the
 * emulated watchdog, or the process starting again, i.e. a power cycle).
 * Applying records the new version, as the device's bootloader or modem
 * would after checking the image:
 *   - MCUboot application: the version in the image header (ih_ver at
 *     offset 20: major, minor, revision, build), "major.minor.revision" (+build);
 *     a header whose image size exceeds the file is rejected at finish.
 *   - modem delta / full: the first "mfw_nrf91..." string in the image, or
 *     else in the URL's file name ("..._to_1.3.6.bin" gives
 *     mfw_nrf9160_1.3.6); a delta naming "from_<version>" that is not the
 *     running modem firmware fails after the reset with 71303172
 *     (NRF_MODEM_DELTA_DFU UUID error), like a delta built for another
 *     modem firmware.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "sim.h"
#include "util.h"

#define FOTA_APP_MAX (1024u * 1024)       /* MCUboot secondary slot */
#define FOTA_MODEM_MAX (4u * 1024 * 1024) /* modem DFU area / external flash */
#define MODEM_DELTA_UUID_ERROR 71303172

static Sim *SIM(void *ctx) {
        return ctx;
}

static char *path_in_state(const Sim *s, const char *name) {
        char *p;
        return asprintf(&p, "%s/%s", s->state_dir, name) < 0 ? NULL : p;
}

static int write_text(const Sim *s, const char *name, const char *text) {
        _cleanup_free_ char *path = path_in_state(s, name), *tmp = NULL;
        FILE *f;

        if (!path || asprintf(&tmp, "%s.tmp", path) < 0)
                return -ENOMEM;
        f = fopen(tmp, "we");
        if (!f)
                return -errno;
        fputs(text, f);
        if (fflush(f) != 0 || fsync(fileno(f)) < 0) {
                fclose(f);
                unlink(tmp);
                return -EIO;
        }
        fclose(f);
        return rename(tmp, path) < 0 ? -errno : 0;
}

static int read_text(const Sim *s, const char *name, char **ret) {
        _cleanup_free_ char *path = path_in_state(s, name);
        size_t size;

        if (!path)
                return -ENOMEM;
        return read_full_file(path, 4096, ret, &size);
}

static void remove_file(const Sim *s, const char *name) {
        _cleanup_free_ char *path = path_in_state(s, name);
        if (path)
                (void) unlink(path);
}

static size_t file_size_in_state(const Sim *s, const char *name) {
        _cleanup_free_ char *path = path_in_state(s, name);
        struct stat st;
        return path && stat(path, &st) == 0 ? (size_t) st.st_size : 0;
}

static bool access_in_state(const Sim *s, const char *name) {
        _cleanup_free_ char *path = path_in_state(s, name);
        return path && access(path, F_OK) == 0;
}

static int write_result(const Sim *s, const char *name, const struct nrf91_fota_result *res) {
        char text[64];

        snprintf(text, sizeof text, "%d %d\n", res->status, res->info);
        return write_text(s, name, text);
}

static bool read_result(const Sim *s, const char *name, struct nrf91_fota_result *ret) {
        _cleanup_free_ char *text = NULL;
        int status, info;

        if (read_text(s, name, &text) < 0 || sscanf(text, "%d %d", &status, &info) != 2)
                return false;
        *ret = (struct nrf91_fota_result){ .valid = true, .status = status, .info = info };
        return true;
}

int sim_app_version_load(Sim *s) {
        _cleanup_free_ char *v = NULL;

        if (read_text(s, "app-version", &v) < 0) {
                snprintf(s->app_version, sizeof s->app_version, "%s", s->opt.app_version);
                return 0;
        }
        v[strcspn(v, "\r\n")] = '\0';
        snprintf(s->app_version, sizeof s->app_version, "%s", v[0] ? v : s->opt.app_version);
        return 0;
}

/* Closes the image being written; a partial one stays for a resume. */
static void fota_close(Sim *s) {
        s->fota_fd = safe_close(s->fota_fd);
}

int sim_fota_begin(void *ctx, enum nrf91_image_type type, const char *url, uint32_t total) {
        Sim *s = SIM(ctx);
        _cleanup_free_ char *dir = path_in_state(s, "fota"), *path = path_in_state(s, "fota/image");
        _cleanup_free_ char *record = NULL;

        sim_fota_abort(s);
        /* A new download replaces a scheduled image and starts a new story. */
        remove_file(s, "fota/pending");
        remove_file(s, "fota/last");
        if (!dir || !path || asprintf(&record, "%d %u %s\n", (int) type, total, url) < 0)
                return -NRF91_ENOMEM;
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return -NRF91_EIO;
        if (write_text(s, "fota/partial", record) < 0)
                return -NRF91_EIO;
        s->fota_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (s->fota_fd < 0)
                return -NRF91_EIO;
        s->fota_type = type;
        s->fota_size = 0;
        free(s->fota_url);
        s->fota_url = strdup(url);
        log_info("FOTA: receiving a %s image",
                 type == NRF91_IMAGE_MCUBOOT ? "MCUboot application" : type == NRF91_IMAGE_MODEM_DELTA ? "modem delta" : "full modem");
        return 0;
}

/* "<type> <total> <url>" of an incomplete image, and its size so far. */
static int partial_read(Sim *s, int *type, uint32_t *total, char **url, uint32_t *size) {
        _cleanup_free_ char *text = NULL, *path = path_in_state(s, "fota/image");
        unsigned t;
        int n = 0;
        struct stat st;

        if (!path || read_text(s, "fota/partial", &text) < 0)
                return -ENOENT;
        if (sscanf(text, "%d %u %n", type, &t, &n) < 2 || n == 0 || stat(path, &st) < 0)
                return -ENOENT;
        text[strcspn(text, "\r\n")] = '\0';
        *total = t;
        *size = (uint32_t) MIN((uint64_t) st.st_size, (uint64_t) UINT32_MAX);
        if (url) {
                *url = strdup(text + n);
                if (!*url)
                        return -ENOMEM;
        }
        return 0;
}

int sim_fota_resume(void *ctx, enum nrf91_image_type type, const char *url, uint32_t *offset) {
        Sim *s = SIM(ctx);
        _cleanup_free_ char *stored_url = NULL, *path = path_in_state(s, "fota/image");
        uint32_t total, size;
        int t;

        fota_close(s);
        /* Fewer than 32 bytes cannot be: the type was known before anything was stored. */
        if (!path || partial_read(s, &t, &total, &stored_url, &size) < 0 || t != (int) type ||
            !streq(stored_url, url) || size < 32) {
                sim_fota_abort(s);
                return -NRF91_ENOENT;
        }
        s->fota_fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (s->fota_fd < 0) {
                sim_fota_abort(s);
                return -NRF91_ENOENT;
        }
        s->fota_type = type;
        s->fota_size = size;
        free(s->fota_url);
        s->fota_url = strdup(url);
        *offset = size;
        log_info("FOTA: resuming at byte %u of %u", size, total);
        return 0;
}

int sim_fota_write(void *ctx, const uint8_t *data, size_t len) {
        Sim *s = SIM(ctx);
        size_t max = s->fota_type == NRF91_IMAGE_MCUBOOT ? FOTA_APP_MAX : FOTA_MODEM_MAX;

        if (s->fota_fd < 0)
                return -NRF91_EBADF;
        if (s->fota_size + len > max) {
                log_warning("FOTA: image larger than the %zu bytes of its slot", max);
                return -NRF91_EFBIG;
        }
        if (s->fault_fota_write_at > 0 && s->fota_size + len >= s->fault_fota_write_at) {
                s->fault_fota_write_at = 0;
                log_info("FOTA: injected flash write error");
                return -NRF91_EIO;
        }
        while (len > 0) {
                ssize_t n = write(s->fota_fd, data, len);
                if (n < 0)
                        return -NRF91_EIO;
                data += n, len -= (size_t) n, s->fota_size += (size_t) n;
        }
        return 0;
}

void sim_fota_abort(void *ctx) {
        Sim *s = SIM(ctx);

        fota_close(s);
        if (access_in_state(s, "fota/partial")) {
                remove_file(s, "fota/image");
                remove_file(s, "fota/partial");
        }
}

unsigned sim_fota_ops(void *ctx) {
        return NRF91_FOTA_OP_APP | NRF91_FOTA_OP_MODEM_DELTA | (SIM(ctx)->opt.external_flash ? NRF91_FOTA_OP_MODEM_FULL : 0);
}

/* "mfw_nrf91..." version tag inside buf (printable run), or NULL. */
static bool find_mfw(const char *buf, size_t len, char *out, size_t size) {
        for (size_t i = 0; i + 9 <= len; i++) {
                size_t n = 0;
                if (memcmp(buf + i, "mfw_nrf91", 9) != 0)
                        continue;
                while (i + n < len && (isalnum((unsigned char) buf[i + n]) || strchr("._-", buf[i + n])) && n + 1 < size)
                        n++;
                memcpy(out, buf + i, n);
                out[n] = '\0';
                return true;
        }
        return false;
}

/* "X.Y.Z" right after key in s, or false. */
static bool version_after(const char *s, const char *key, char *out, size_t size) {
        const char *p = strstr(s, key);
        size_t n = 0;

        if (!p)
                return false;
        p += strlen(key);
        while ((isdigit((unsigned char) p[n]) || p[n] == '.') && n + 1 < size)
                n++;
        if (n == 0)
                return false;
        memcpy(out, p, n);
        out[n] = '\0';
        if (out[n - 1] == '.')
                out[n - 1] = '\0';
        return out[0] != '\0';
}

/* Version of a modem image: from a tag inside it, else from its URL. */
static int modem_image_version(Sim *s, char *version, size_t size, char *from, size_t from_size) {
        _cleanup_free_ char *path = path_in_state(s, "fota/image");
        char head[65536], tagged[80];
        const char *file;
        ssize_t n = -1;
        int fd;

        from[0] = '\0';
        fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
        if (fd >= 0) {
                n = read(fd, head, sizeof head - 1);
                close(fd);
        }
        if (n > 0) {
                head[n] = '\0';
                if (find_mfw(head, (size_t) n, tagged, sizeof tagged)) {
                        (void) version_after(tagged, "from_", from, from_size);
                        if (version_after(tagged, "_to_", version, size))
                                return 0;
                        snprintf(version, size, "%s", tagged);
                        return 0;
                }
        }
        file = s->fota_url ? strrchr(s->fota_url, '/') : NULL;
        file = file ? file + 1 : "";
        (void) version_after(file, "from_", from, from_size);
        if (version_after(file, "_to_", version, size))
                return 0;
        if (find_mfw(file, strlen(file), tagged, sizeof tagged)) {
                char *dot = strstr(tagged, ".bin");
                if (!dot)
                        dot = strstr(tagged, ".zip");
                if (dot)
                        *dot = '\0';
                snprintf(version, size, "%s", tagged);
                return 0;
        }
        return -EINVAL;
}

int sim_fota_finish(void *ctx) {
        Sim *s = SIM(ctx);
        char version[128], from[64], record[256];

        if (s->fota_fd < 0)
                return -NRF91_EBADF;
        if (fsync(s->fota_fd) < 0) {
                sim_fota_abort(s);
                return -NRF91_EIO;
        }
        fota_close(s);
        from[0] = '\0';

        if (s->fota_type == NRF91_IMAGE_MCUBOOT) {
                _cleanup_free_ char *path = path_in_state(s, "fota/image");
                uint8_t h[32];
                int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
                ssize_t n = fd >= 0 ? read(fd, h, sizeof h) : -1;
                if (fd >= 0)
                        close(fd);
                if (n != (ssize_t) sizeof h)
                        goto reject;
                /* struct image_header: magic, load_addr, hdr_size(16), protect_tlv_size(16), img_size(32), flags, ver */
                uint32_t hdr_size = h[8] | h[9] << 8, img_size = h[12] | h[13] << 8 | h[14] << 16 | (uint32_t) h[15] << 24;
                uint32_t build = h[24] | h[25] << 8 | h[26] << 16 | (uint32_t) h[27] << 24;
                if ((uint64_t) hdr_size + img_size > s->fota_size) {
                        log_warning("FOTA: MCUboot header announces %u bytes, the image has %zu",
                                    hdr_size + img_size, s->fota_size);
                        goto reject;
                }
                if (build)
                        snprintf(version, sizeof version, "%u.%u.%u+%u", h[20], h[21], h[22] | h[23] << 8, build);
                else
                        snprintf(version, sizeof version, "%u.%u.%u", h[20], h[21], h[22] | h[23] << 8);
        } else {
                char v[96];
                if (modem_image_version(s, v, sizeof v, from, sizeof from) < 0) {
                        log_warning("FOTA: no modem firmware version in the image or its URL");
                        goto reject;
                }
                if (strncmp(v, "mfw_", 4) == 0)
                        snprintf(version, sizeof version, "%s", v);
                else
                        snprintf(version, sizeof version, "mfw_nrf9160_%s", v);
        }
        snprintf(record, sizeof record, "%d %s %s\n", (int) s->fota_type, version, from[0] ? from : "-");
        if (write_text(s, "fota/pending", record) < 0)
                goto reject;
        remove_file(s, "fota/partial");
        log_info("FOTA: %s scheduled for the next reset", version);
        return 0;

reject:
        remove_file(s, "fota/image");
        remove_file(s, "fota/partial");
        return -NRF91_EINVAL;
}

/* The running modem firmware version, as +CGMR answers. */
static void modem_version(Sim *s, char *out, size_t size) {
        char resp[256];
        ssize_t n = modem_emu_execute(s->modem, "AT+CGMR", 7, resp, sizeof resp - 1);

        out[0] = '\0';
        if (n <= 0)
                return;
        resp[n] = '\0';
        sscanf(resp, "\r\n%63[^\r\n]", out);
        (void) size;
}

/* Is the running modem firmware ("mfw_nrf9160_1.3.5") the base a delta names ("1.3.5" or the whole tag)? */
static bool delta_base_matches(const char *running, const char *from) {
        size_t r = strlen(running), f = strlen(from);

        if (streq(running, from))
                return true;
        return r > f && streq(running + r - f, from) && running[r - f - 1] == '_';
}

/* MCUboot at boot: a test image not confirmed goes, the old application comes back. */
static void revert_test_image(Sim *s, struct nrf91_fota_result *res) {
        _cleanup_free_ char *record = NULL;
        char old[NRF91_VERSION_MAX] = "";

        if (read_text(s, "fota/testing", &record) == 0)
                sscanf(record, "%63s", old);
        if (!old[0] || write_text(s, "app-version", old) < 0) {
                log_warning("FOTA: test image without a version to go back to");
                snprintf(old, sizeof old, "%s", s->opt.app_version);
                remove_file(s, "app-version");
        }
        snprintf(s->app_version, sizeof s->app_version, "%s", old);
        remove_file(s, "fota/testing");
        log_notice("FOTA: test image not confirmed, reverted to %s", old);
        *res = (struct nrf91_fota_result){ .valid = true, .status = 3 };
}

static void boot_test_image(Sim *s, const char *version, struct nrf91_fota_result *res) {
        char record[160];

        snprintf(record, sizeof record, "%s %zu\n", s->app_version, file_size_in_state(s, "fota/image"));
        if (write_text(s, "fota/testing", record) < 0 || write_text(s, "app-version", version) < 0) {
                remove_file(s, "fota/testing");
                *res = (struct nrf91_fota_result){ .valid = true, .status = 1, .info = 2 };
                return;
        }
        snprintf(s->app_version, sizeof s->app_version, "%s", version);
        log_info("FOTA: application %s booted as a test image", version);
        if (s->fota_mute_ms > 0) {
                s->mute_until_ms = sim_now_ms() + s->fota_mute_ms;
                s->fota_mute_ms = 0;
                log_notice("FOTA: the test image answers nothing; the watchdog resets it in %u ms",
                           (unsigned) (s->mute_until_ms - sim_now_ms()));
        }
        *res = (struct nrf91_fota_result){ .valid = true, .status = 0 };
}

void sim_fota_reset(Sim *s, bool modem_only, struct nrf91_fota_result *ret) {
        _cleanup_free_ char *record = NULL;
        char version[128] = "", from[64] = "", running[64];
        struct nrf91_fota_result res = { .valid = true, .status = 0 };
        int type = 0;

        *ret = (struct nrf91_fota_result){ .valid = false };
        if (!modem_only) {
                /* Writing stops; a partial image stays in flash. */
                fota_close(s);
                if (access_in_state(s, "fota/testing")) {
                        revert_test_image(s, ret);
                        (void) write_result(s, "fota/last", ret);
                        return;
                }
        }
        if (read_text(s, "fota/pending", &record) < 0)
                return;
        if (sscanf(record, "%d %127s %63s", &type, version, from) < 2)
                type = 0;
        if (modem_only && type == NRF91_IMAGE_MCUBOOT)
                return; /* the application image waits for #XRESET */

        switch (type) {
        case NRF91_IMAGE_MCUBOOT:
                boot_test_image(s, version, &res);
                break;
        case NRF91_IMAGE_MODEM_DELTA:
                modem_version(s, running, sizeof running);
                if (strcmp(from, "-") != 0 && from[0] && !delta_base_matches(running, from)) {
                        log_warning("FOTA: delta from %s does not apply to %s", from, running);
                        res.status = 1, res.info = MODEM_DELTA_UUID_ERROR;
                        break;
                }
                __attribute__((fallthrough));
        case NRF91_IMAGE_MODEM_FULL:
                if (modem_emu_set_firmware_version(s->modem, version) < 0) {
                        res.status = 1, res.info = 2;
                        break;
                }
                log_info("FOTA: modem firmware updated to %s", version);
                break;
        default:
                res.status = 1, res.info = 2;
                break;
        }
        remove_file(s, "fota/pending");
        remove_file(s, "fota/image");
        (void) write_result(s, "fota/last", &res);
        *ret = res;
}

int sim_fota_confirm(void *ctx) {
        Sim *s = SIM(ctx);

        if (!access_in_state(s, "fota/testing"))
                return -NRF91_ENOENT;
        remove_file(s, "fota/testing");
        log_info("FOTA: application %s confirmed", s->app_version);
        return 0;
}

void sim_fota_store_info(void *ctx, struct nrf91_fota_store *ret) {
        Sim *s = SIM(ctx);
        _cleanup_free_ char *record = NULL;
        uint32_t total, size;
        int type = 0;
        unsigned long n = 0;
        char old[NRF91_VERSION_MAX];

        *ret = (struct nrf91_fota_store){ .stored = NRF91_FOTA_STORED_NONE };
        if (!read_result(s, "fota/last", &ret->last))
                ret->last.valid = false;
        if (read_text(s, "fota/testing", &record) == 0) {
                (void) sscanf(record, "%63s %lu", old, &n);
                ret->stored = NRF91_FOTA_STORED_TESTING;
                ret->type = NRF91_IMAGE_MCUBOOT;
                ret->received = ret->total = (uint32_t) n;
        } else if (read_text(s, "fota/pending", &record) == 0 && sscanf(record, "%d", &type) == 1) {
                ret->stored = NRF91_FOTA_STORED_SCHEDULED;
                ret->type = (enum nrf91_image_type) type;
                ret->received = ret->total = (uint32_t) file_size_in_state(s, "fota/image");
        } else if (partial_read(s, &type, &total, NULL, &size) == 0) {
                ret->stored = NRF91_FOTA_STORED_PARTIAL;
                ret->type = (enum nrf91_image_type) type;
                ret->received = size;
                ret->total = total;
        }
}

void sim_fota_boot_result(void *ctx, struct nrf91_fota_result *ret) {
        Sim *s = SIM(ctx);

        *ret = (struct nrf91_fota_result){ .valid = false };
        if (read_result(s, "fota/result", ret))
                remove_file(s, "fota/result");
}

int sim_fota_record_result(Sim *s, const struct nrf91_fota_result *res) {
        return write_result(s, "fota/result", res);
}
