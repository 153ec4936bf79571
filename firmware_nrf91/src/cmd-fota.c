/* SPDX-License-Identifier: MIT */
/*
 * #XFOTA: download an update over HTTPS, check its type from the first
 * bytes against the requested op, hand it to the port's image store and
 * report the stages as #XFOTA: <stage>,<status>[,<info>] URCs
 * (spec modem-link.md; codes as in Nordic's SLM, spec nrf91-at.md §6.4).
 */
#include <string.h>

#include "core-internal.h"

#define SEC_TAG_MAX 2147483647

enum {
        STAGE_DOWNLOAD = 1,
        STAGE_DOWNLOADED = 2,
        STAGE_APPLY = 3,
        STAGE_READY = 4,
};

enum {
        STATUS_OK = 0,
        STATUS_ERROR = 1,
        STATUS_CANCELLED = 2,
};

/* <fota_info> error codes of stage 1/status 1. */
enum {
        FOTA_ERR_DOWNLOAD = 1, /* download failed */
        FOTA_ERR_REJECTED = 2, /* update image rejected */
        FOTA_ERR_MISMATCH = 3, /* image type does not match the op */
};

static uint32_t le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

/* The order and the magic numbers are those of NCS dfu_target_img_type() (spec nrf91-at.md §6.2). */
enum nrf91_image_type nrf91_image_type_detect(const uint8_t *buf, size_t len) {
        if (len < 32)
                return NRF91_IMAGE_NONE;
        if (le32(buf) == 0x96f3b83du)
                return NRF91_IMAGE_MCUBOOT;
        if (le32(buf + 4) == 0x7544656du)
                return NRF91_IMAGE_MODEM_DELTA;
        if (buf[0] == 0xd2 && buf[1] == 0x84) /* COSE_Sign1 manifest */
                return NRF91_IMAGE_MODEM_FULL;
        return NRF91_IMAGE_NONE;
}

static void fota_urc(struct nrf91_core *c, int stage, int status, bool with_info, int info) {
        char buf[48];
        struct fmt f;

        fmt_init(&f, buf, sizeof buf);
        fmt_str(&f, "#XFOTA: ");
        fmt_int(&f, stage);
        fmt_str(&f, ",");
        fmt_int(&f, status);
        if (with_info) {
                fmt_str(&f, ",");
                fmt_int(&f, info);
        }
        core_urc(c, buf, f.len);
}

/* Ends a running FOTA download: stops the transfer and drops the partial image. */
static void fota_stop(struct nrf91_core *c, bool cancel_download) {
        struct nrf91_fota *f = &c->fota;

        if (cancel_download)
                c->port->download_cancel(c->ctx, NRF91_FOTA_DOWNLOAD_ID);
        if (f->begun)
                c->port->fota_abort(c->ctx);
        f->begun = false;
        f->state = NRF91_FOTA_IDLE;
}

static void fota_fail(struct nrf91_core *c, bool cancel_download, int code) {
        fota_stop(c, cancel_download);
        fota_urc(c, STAGE_DOWNLOAD, STATUS_ERROR, true, code);
}

void fota_drop(struct nrf91_core *c) {
        if (c->fota.state == NRF91_FOTA_DOWNLOADING)
                fota_fail(c, true, FOTA_ERR_DOWNLOAD);
}

/* AT#XFOTA=<op>,"<https url>",<sec_tag>  |  AT#XFOTA=0 (cancel the download) */
int cmd_xfota(struct nrf91_core *c, const struct at_cmd *cmd, const struct at_args *args) {
        struct nrf91_fota *f = &c->fota;
        int64_t op, sec_tag;
        int r;

        (void) cmd;
        if (at_param_int(args, 0, 0, 3, &op) < 0)
                return -NRF91_EINVAL;
        if (op == 0) {
                if (args->count != 1)
                        return -NRF91_EINVAL;
                if (f->state != NRF91_FOTA_DOWNLOADING)
                        return -NRF91_ENOENT;
                fota_stop(c, true);
                fota_urc(c, STAGE_DOWNLOAD, STATUS_CANCELLED, true, 0);
                return 0;
        }
        if (args->count != 3 || args->v[1].type != AT_ARG_STRING ||
            at_param_int(args, 2, 0, SEC_TAG_MAX, &sec_tag) < 0)
                return -NRF91_EINVAL;
        /* f->url belongs to a running download until it ends. */
        if (f->state == NRF91_FOTA_DOWNLOADING)
                return -NRF91_EBUSY;
        if (at_param_str(args, 1, f->url, sizeof f->url) < 0 || !url_is_https(f->url)) {
                f->url[0] = '\0';
                return -NRF91_EINVAL;
        }

        r = c->port->download_start(c->ctx, NRF91_FOTA_DOWNLOAD_ID, f->url, (uint32_t) sec_tag, 0);
        if (r < 0)
                return r;
        f->state = NRF91_FOTA_DOWNLOADING;
        f->op = (int) op;
        f->type = NRF91_IMAGE_NONE;
        f->begun = false;
        f->head_len = 0;
        f->last_percent = 0;
        f->dl = (struct nrf91_download){ .used = true, .id = NRF91_FOTA_DOWNLOAD_ID };
        fota_urc(c, STAGE_DOWNLOAD, STATUS_OK, true, 0);
        return 0;
}

static int begin_image(struct nrf91_core *c) {
        struct nrf91_fota *f = &c->fota;
        static const enum nrf91_image_type expected[] = {
                [1] = NRF91_IMAGE_MCUBOOT,
                [2] = NRF91_IMAGE_MODEM_DELTA,
                [3] = NRF91_IMAGE_MODEM_FULL,
        };

        f->type = nrf91_image_type_detect(f->head, f->head_len);
        if (f->type == NRF91_IMAGE_NONE)
                return FOTA_ERR_REJECTED;
        if (f->type != expected[f->op])
                return FOTA_ERR_MISMATCH;
        if (c->port->fota_begin(c->ctx, f->type, f->url) < 0)
                return FOTA_ERR_REJECTED;
        f->begun = true;
        if (c->port->fota_write(c->ctx, f->head, f->head_len) < 0)
                return FOTA_ERR_DOWNLOAD;
        return 0;
}

void fota_data(struct nrf91_core *c, const uint8_t *data, size_t len) {
        struct nrf91_fota *f = &c->fota;
        size_t used = 0;
        int code;

        f->dl.received += len;
        if (!f->begun) {
                used = sizeof f->head - f->head_len < len ? sizeof f->head - f->head_len : len;
                memcpy(f->head + f->head_len, data, used);
                f->head_len += used;
                if (f->head_len == sizeof f->head && (code = begin_image(c)) != 0) {
                        fota_fail(c, true, code);
                        return;
                }
        }
        if (f->begun && used < len && c->port->fota_write(c->ctx, data + used, len - used) < 0) {
                fota_fail(c, true, FOTA_ERR_DOWNLOAD);
                return;
        }
        if (f->dl.length > 0) {
                uint64_t pct = f->dl.received * 100 / f->dl.length;
                if (pct > 100)
                        pct = 100;
                if ((int) pct != f->last_percent) {
                        f->last_percent = (int) pct;
                        fota_urc(c, STAGE_DOWNLOAD, STATUS_OK, true, (int) pct);
                }
        }
}

void fota_done(struct nrf91_core *c, int err) {
        struct nrf91_fota *f = &c->fota;

        if (err < 0) {
                fota_fail(c, false, FOTA_ERR_DOWNLOAD);
                return;
        }
        if (!f->begun) {
                /* Shorter than the 32 bytes any image type needs. */
                fota_fail(c, false, FOTA_ERR_REJECTED);
                return;
        }
        if (f->last_percent != 100)
                fota_urc(c, STAGE_DOWNLOAD, STATUS_OK, true, 100);
        fota_urc(c, STAGE_DOWNLOADED, STATUS_OK, false, 0);
        if (c->port->fota_finish(c->ctx) < 0) {
                f->begun = false;
                f->state = NRF91_FOTA_IDLE;
                fota_urc(c, STAGE_APPLY, STATUS_ERROR, true, FOTA_ERR_REJECTED);
                return;
        }
        f->begun = false;
        f->state = NRF91_FOTA_SCHEDULED;
        fota_urc(c, STAGE_APPLY, STATUS_OK, false, 0);
        fota_urc(c, STAGE_READY, STATUS_OK, false, 0);
}
