/* SPDX-License-Identifier: MIT */
/*
 * #XDOWNLOAD: HTTPS downloads streamed to the host as counted URCs, with a
 * SHA-256 over every byte as the firmware received it.  The download events
 * of the port land here and are handed to FOTA for its own transfer.
 */
#include <string.h>

#include "core-internal.h"

#define SEC_TAG_MAX 2147483647
#define DOWNLOAD_ID_MAX 2147483647

bool url_is_https(const char *url) {
        static const char scheme[] = "https://";

        for (size_t i = 0; i < sizeof scheme - 1; i++) {
                char ch = url[i];
                if (ch >= 'A' && ch <= 'Z')
                        ch = (char) (ch - 'A' + 'a');
                if (ch != scheme[i])
                        return false;
        }
        return url[sizeof scheme - 1] != '\0' && url[sizeof scheme - 1] != '/';
}

static struct nrf91_download *download_find(struct nrf91_core *c, int id) {
        if (id == NRF91_FOTA_DOWNLOAD_ID)
                return c->fota.state == NRF91_FOTA_DOWNLOADING ? &c->fota.dl : NULL;
        for (size_t i = 0; i < NRF91_MAX_DOWNLOADS; i++)
                if (c->downloads[i].used && c->downloads[i].id == id)
                        return &c->downloads[i];
        return NULL;
}

static void download_urc(struct nrf91_core *c, int32_t id, int what, int64_t value, const char *sha_hex) {
        char buf[128];
        struct fmt f;

        fmt_init(&f, buf, sizeof buf);
        fmt_str(&f, "#XDOWNLOAD: ");
        fmt_int(&f, id);
        fmt_str(&f, ",");
        fmt_int(&f, what);
        if (what != 0) {
                fmt_str(&f, ",");
                fmt_int(&f, value);
        }
        if (sha_hex) {
                fmt_str(&f, ",\"");
                fmt_str(&f, sha_hex);
                fmt_str(&f, "\"");
        }
        if (what == 0)
                core_line(c, buf, f.len);
        else
                core_urc(c, buf, f.len);
}

static int download_cancel(struct nrf91_core *c, const struct at_args *args) {
        struct nrf91_download *d;
        int64_t id;

        if (args->count != 2 || at_param_int(args, 1, 1, DOWNLOAD_ID_MAX, &id) < 0)
                return -NRF91_EINVAL;
        d = download_find(c, (int) id);
        if (!d)
                return -NRF91_ENOENT;
        c->port->download_cancel(c->ctx, (int) id);
        d->used = false;
        return 0;
}

/* AT#XDOWNLOAD="<https url>",<sec_tag>[,<offset>]  |  AT#XDOWNLOAD=0,<id> */
int cmd_xdownload(struct nrf91_core *c, const struct at_cmd *cmd, const struct at_args *args) {
        /* The response buffer is free while a firmware command runs: no 1 KiB URL on the stack. */
        char *url = c->response;
        struct nrf91_download *d = NULL;
        int64_t sec_tag, offset, zero;
        int32_t id;
        int r;

        (void) cmd;
        if (args->v[0].type == AT_ARG_INT) {
                if (at_param_int(args, 0, 0, 0, &zero) < 0)
                        return -NRF91_EINVAL;
                return download_cancel(c, args);
        }
        if (at_param_str(args, 0, url, NRF91_URL_MAX + 1) < 0 || !url_is_https(url) ||
            at_param_int(args, 1, 0, SEC_TAG_MAX, &sec_tag) < 0 ||
            at_param_int_opt(args, 2, 0, UINT32_MAX, 0, &offset) < 0)
                return -NRF91_EINVAL;

        for (size_t i = 0; i < NRF91_MAX_DOWNLOADS; i++)
                if (!c->downloads[i].used) {
                        d = &c->downloads[i];
                        break;
                }
        if (!d)
                return -NRF91_EBUSY;

        id = c->next_download_id;
        c->next_download_id = id >= DOWNLOAD_ID_MAX ? 1 : id + 1;
        r = c->port->download_start(c->ctx, id, url, (uint32_t) sec_tag, (uint32_t) offset);
        if (r < 0)
                return r;
        *d = (struct nrf91_download){ .used = true, .id = id };
        sha256_init(&d->sha);
        download_urc(c, id, 0, 0, NULL);
        return 0;
}

void nrf91_core_download_length(struct nrf91_core *c, int id, uint64_t length) {
        struct nrf91_download *d = download_find(c, id);

        if (d && id == NRF91_FOTA_DOWNLOAD_ID)
                fota_length(c, length);
        else if (d)
                d->length = length;
}

int nrf91_core_download_data(struct nrf91_core *c, int id, const uint8_t *data, size_t len) {
        struct nrf91_download *d = download_find(c, id);
        char buf[48];
        struct fmt f;

        if (!d || len == 0)
                return 0;
        if (id == NRF91_FOTA_DOWNLOAD_ID) {
                fota_data(c, data, len);
                return 0;
        }

        /* All of it or nothing, so the digest stays in step with what the host got. */
        if (c->atomic > 0) {
                size_t need = 0;
                for (size_t off = 0; off < len; off += NRF91_DOWNLOAD_CHUNK_MAX) {
                        size_t n = len - off < NRF91_DOWNLOAD_CHUNK_MAX ? len - off : NRF91_DOWNLOAD_CHUNK_MAX;
                        need += core_urc_payload_size(40, n);
                }
                if (!core_urc_fits(c, need))
                        return -NRF91_EAGAIN;
        }
        for (size_t off = 0; off < len; off += NRF91_DOWNLOAD_CHUNK_MAX) {
                size_t n = len - off < NRF91_DOWNLOAD_CHUNK_MAX ? len - off : NRF91_DOWNLOAD_CHUNK_MAX;
                fmt_init(&f, buf, sizeof buf);
                fmt_str(&f, "#XDOWNLOAD: ");
                fmt_int(&f, id);
                fmt_str(&f, ",1,");
                fmt_int(&f, (int64_t) n);
                (void) core_urc_payload(c, buf, f.len, data + off, n);
        }
        sha256_update(&d->sha, data, len);
        d->received += len;
        return 0;
}

void nrf91_core_download_done(struct nrf91_core *c, int id, int err) {
        struct nrf91_download *d = download_find(c, id);
        uint8_t digest[SHA256_DIGEST_SIZE];
        char hex[2 * SHA256_DIGEST_SIZE + 1];
        struct fmt f;

        if (!d)
                return;
        if (err > 0)
                err = -err;
        if (id == NRF91_FOTA_DOWNLOAD_ID) {
                fota_done(c, err);
                return;
        }
        d->used = false;
        if (err < 0) {
                download_urc(c, id, 3, err, NULL);
                return;
        }
        sha256_final(&d->sha, digest);
        fmt_init(&f, hex, sizeof hex);
        fmt_hex(&f, digest, sizeof digest);
        download_urc(c, id, 2, (int64_t) d->received, hex);
}

void downloads_drop_all(struct nrf91_core *c, int err) {
        for (size_t i = 0; i < NRF91_MAX_DOWNLOADS; i++) {
                struct nrf91_download *d = &c->downloads[i];
                if (!d->used)
                        continue;
                c->port->download_cancel(c->ctx, d->id);
                d->used = false;
                download_urc(c, d->id, 3, err, NULL);
        }
        fota_drop(c);
}
