/* SPDX-License-Identifier: MIT */
/*
 * #XFOTA: download an update over HTTPS, check its type from the first
 * bytes against the requested op, hand it to the port's image store and
 * report the stages as #XFOTA: <stage>,<status>[,<info>[,<err>]] URCs
 * (spec modem-link.md; codes as in Nordic's SLM, spec nrf91-at.md §6.4).
 * A partial image that a reset interrupted is resumed from its offset; a
 * new application runs as an MCUboot test image until #XFOTA=9 confirms it.
 * #XFOTAINFO tells where all of this stands.
 */
#include <string.h>

#include "core-internal.h"

#define SEC_TAG_MAX 2147483647

enum {
        STAGE_DOWNLOAD = 1,
        STAGE_DOWNLOADED = 2,
        STAGE_APPLY = 3,
        STAGE_READY = 4,
        STAGE_APPLY_RESULT = 5,
};

enum {
        STATUS_OK = 0,
        STATUS_ERROR = 1,
        STATUS_CANCELLED = 2,
};

enum {
        OP_CANCEL = 0,
        OP_FULL_MODEM = 3,
        OP_CONFIRM = 9,
};

/* <state> of #XFOTAINFO. */
enum {
        INFO_IDLE = 0,
        INFO_DOWNLOADING = 1,
        INFO_INTERRUPTED = 2,
        INFO_SCHEDULED = 3,
        INFO_TESTING = 4,
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

/* "#XFOTA: <stage>,<status>[,<info>[,<err>]]"; info < 0 none, err 0 none. */
static void fota_line(struct nrf91_core *c, int stage, int status, int info, int err, bool urc) {
        char buf[48];
        struct fmt f;

        fmt_init(&f, buf, sizeof buf);
        fmt_str(&f, "#XFOTA: ");
        fmt_int(&f, stage);
        fmt_str(&f, ",");
        fmt_int(&f, status);
        if (info >= 0) {
                fmt_str(&f, ",");
                fmt_int(&f, info);
        }
        if (err != 0) {
                fmt_str(&f, ",");
                fmt_int(&f, err);
        }
        if (urc)
                core_urc(c, buf, f.len);
        else
                core_line(c, buf, f.len);
}

static void fota_urc(struct nrf91_core *c, int stage, int status, int info) {
        fota_line(c, stage, status, info, 0, true);
}

void fota_result_line(struct nrf91_core *c, const struct nrf91_fota_result *res, bool urc) {
        fota_line(c, STAGE_APPLY_RESULT, res->status, res->status == STATUS_ERROR ? res->info : -1, 0, urc);
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

/* #XFOTA: 1,1,<code>[,<err>]: the cause (negative errno) comes with a failed download. */
static void fota_fail(struct nrf91_core *c, bool cancel_download, int code, int err) {
        fota_stop(c, cancel_download);
        fota_line(c, STAGE_DOWNLOAD, STATUS_ERROR, code, code == FOTA_ERR_DOWNLOAD ? err : 0, true);
}

void fota_drop(struct nrf91_core *c) {
        if (c->fota.state == NRF91_FOTA_DOWNLOADING)
                fota_fail(c, true, FOTA_ERR_DOWNLOAD, -NRF91_ENETDOWN);
}

static int percent(uint64_t part, uint64_t total) {
        if (total == 0)
                return 0;
        return part >= total ? 100 : (int) (part * 100 / total);
}

/* Starts the download, from the stored offset when a reset interrupted the same one. */
static int fota_start(struct nrf91_core *c, int op, uint32_t sec_tag) {
        struct nrf91_fota *f = &c->fota;
        struct nrf91_fota_store st = { .stored = NRF91_FOTA_STORED_NONE };
        uint32_t offset = 0;
        int r;

        c->port->fota_store_info(c->ctx, &st);
        if (st.stored == NRF91_FOTA_STORED_TESTING)
                return -NRF91_EBUSY; /* confirmed or reverted first */
        if (st.stored == NRF91_FOTA_STORED_PARTIAL &&
            c->port->fota_resume(c->ctx, (enum nrf91_image_type) op, f->url, &offset) < 0)
                offset = 0;

        r = c->port->download_start(c->ctx, NRF91_FOTA_DOWNLOAD_ID, f->url, sec_tag, offset);
        if (r < 0)
                return r; /* a partial image stays for the next try */
        f->state = NRF91_FOTA_DOWNLOADING;
        f->op = op;
        f->offset = offset;
        f->dl = (struct nrf91_download){ .used = true, .id = NRF91_FOTA_DOWNLOAD_ID, .received = offset };
        /* A resumed image was checked and begun before the reset. */
        f->type = offset > 0 ? (enum nrf91_image_type) op : NRF91_IMAGE_NONE;
        f->begun = offset > 0;
        f->head_len = offset > 0 ? sizeof f->head : 0;
        f->last_percent = 0;
        if (offset > 0) {
                f->dl.length = st.total;
                f->last_percent = percent(offset, st.total);
        }
        fota_urc(c, STAGE_DOWNLOAD, STATUS_OK, f->last_percent);
        return 0;
}

/*
 * AT#XFOTA=<op>,"<https url>",<sec_tag>  |  AT#XFOTA=0 (cancel the download)
 * |  AT#XFOTA=9 (confirm the running test image)
 */
int cmd_xfota(struct nrf91_core *c, const struct at_cmd *cmd, const struct at_args *args) {
        struct nrf91_fota *f = &c->fota;
        int64_t op, sec_tag;
        int r;

        (void) cmd;
        if (at_param_int(args, 0, 0, OP_CONFIRM, &op) < 0 || (op > OP_FULL_MODEM && op != OP_CONFIRM))
                return -NRF91_EINVAL;
        if (op == OP_CANCEL || op == OP_CONFIRM) {
                if (args->count != 1)
                        return -NRF91_EINVAL;
                if (op == OP_CONFIRM)
                        return c->port->fota_confirm(c->ctx);
                if (f->state != NRF91_FOTA_DOWNLOADING)
                        return -NRF91_ENOENT;
                fota_stop(c, true);
                fota_urc(c, STAGE_DOWNLOAD, STATUS_CANCELLED, 0);
                return 0;
        }
        /* The response buffer is free while a firmware command runs; f->url belongs to a running download. */
        if (args->count != 3 || at_param_str(args, 1, c->response, NRF91_URL_MAX + 1) < 0 ||
            !url_is_https(c->response) || at_param_int(args, 2, 0, SEC_TAG_MAX, &sec_tag) < 0)
                return -NRF91_EINVAL;
        if (!(c->port->fota_ops(c->ctx) & (1u << op)))
                return -NRF91_EOPNOTSUPP;
        if (f->state == NRF91_FOTA_DOWNLOADING)
                return -NRF91_EBUSY;
        memcpy(f->url, c->response, sizeof f->url);
        r = fota_start(c, (int) op, (uint32_t) sec_tag);
        if (r < 0)
                f->url[0] = '\0';
        return r;
}

/* AT#XFOTAINFO → #XFOTAINFO: <ops>,<state>,<op>,<received>,<total>,<result>,<result_info> */
int cmd_xfotainfo(struct nrf91_core *c, const struct at_cmd *cmd, const struct at_args *args) {
        static const int states[] = {
                [NRF91_FOTA_STORED_NONE] = INFO_IDLE,
                [NRF91_FOTA_STORED_PARTIAL] = INFO_INTERRUPTED,
                [NRF91_FOTA_STORED_SCHEDULED] = INFO_SCHEDULED,
                [NRF91_FOTA_STORED_TESTING] = INFO_TESTING,
        };
        const struct nrf91_fota *f = &c->fota;
        struct nrf91_fota_store st = { .stored = NRF91_FOTA_STORED_NONE };
        int state, op = 0;
        uint64_t received, total;
        char buf[96];
        struct fmt fm;

        (void) cmd, (void) args;
        c->port->fota_store_info(c->ctx, &st);
        if (f->state == NRF91_FOTA_DOWNLOADING) {
                state = INFO_DOWNLOADING;
                op = f->op;
                received = f->dl.received;
                total = f->dl.length;
        } else {
                state = (size_t) st.stored < ELEMENTS(states) ? states[st.stored] : INFO_IDLE;
                if (state != INFO_IDLE)
                        op = (int) st.type; /* the image types are numbered as the ops */
                received = state == INFO_IDLE ? 0 : st.received;
                total = state == INFO_IDLE ? 0 : st.total;
        }
        fmt_init(&fm, buf, sizeof buf);
        fmt_str(&fm, "#XFOTAINFO: ");
        fmt_int(&fm, c->port->fota_ops(c->ctx));
        fmt_str(&fm, ",");
        fmt_int(&fm, state);
        fmt_str(&fm, ",");
        fmt_int(&fm, op);
        fmt_str(&fm, ",");
        fmt_int(&fm, (int64_t) received);
        fmt_str(&fm, ",");
        fmt_int(&fm, (int64_t) total);
        fmt_str(&fm, ",");
        fmt_int(&fm, st.last.valid ? st.last.status : -1);
        fmt_str(&fm, ",");
        fmt_int(&fm, st.last.valid && st.last.status == STATUS_ERROR ? st.last.info : 0);
        core_line(c, buf, fm.len);
        return 0;
}

static int begin_image(struct nrf91_core *c) {
        struct nrf91_fota *f = &c->fota;
        static const enum nrf91_image_type expected[] = {
                [1] = NRF91_IMAGE_MCUBOOT,
                [2] = NRF91_IMAGE_MODEM_DELTA,
                [3] = NRF91_IMAGE_MODEM_FULL,
        };
        uint64_t total = f->dl.length;

        f->type = nrf91_image_type_detect(f->head, f->head_len);
        if (f->type == NRF91_IMAGE_NONE)
                return FOTA_ERR_REJECTED;
        if (f->type != expected[f->op])
                return FOTA_ERR_MISMATCH;
        if (c->port->fota_begin(c->ctx, f->type, f->url, total > UINT32_MAX ? 0 : (uint32_t) total) < 0)
                return FOTA_ERR_REJECTED;
        f->begun = true;
        return 0;
}

void fota_length(struct nrf91_core *c, uint64_t length) {
        /* The server tells what is left after the offset. */
        c->fota.dl.length = c->fota.offset + length;
}

void fota_data(struct nrf91_core *c, const uint8_t *data, size_t len) {
        struct nrf91_fota *f = &c->fota;
        size_t used = 0;
        int code, r;

        f->dl.received += len;
        if (!f->begun) {
                used = sizeof f->head - f->head_len < len ? sizeof f->head - f->head_len : len;
                memcpy(f->head + f->head_len, data, used);
                f->head_len += used;
                if (f->head_len == sizeof f->head && (code = begin_image(c)) != 0) {
                        fota_fail(c, true, code, 0);
                        return;
                }
                if (f->begun && (r = c->port->fota_write(c->ctx, f->head, f->head_len)) < 0) {
                        fota_fail(c, true, FOTA_ERR_DOWNLOAD, r);
                        return;
                }
        }
        if (f->begun && used < len && (r = c->port->fota_write(c->ctx, data + used, len - used)) < 0) {
                fota_fail(c, true, FOTA_ERR_DOWNLOAD, r);
                return;
        }
        if (f->dl.length > 0) {
                int pct = percent(f->dl.received, f->dl.length);
                if (pct != f->last_percent) {
                        f->last_percent = pct;
                        fota_urc(c, STAGE_DOWNLOAD, STATUS_OK, pct);
                }
        }
}

void fota_done(struct nrf91_core *c, int err) {
        struct nrf91_fota *f = &c->fota;

        if (err < 0) {
                fota_fail(c, false, FOTA_ERR_DOWNLOAD, err);
                return;
        }
        if (!f->begun) {
                /* Shorter than the 32 bytes any image type needs. */
                fota_fail(c, false, FOTA_ERR_REJECTED, 0);
                return;
        }
        if (f->last_percent != 100)
                fota_urc(c, STAGE_DOWNLOAD, STATUS_OK, 100);
        fota_urc(c, STAGE_DOWNLOADED, STATUS_OK, -1);
        f->begun = false;
        f->state = NRF91_FOTA_IDLE;
        if (c->port->fota_finish(c->ctx) < 0) {
                fota_urc(c, STAGE_APPLY, STATUS_ERROR, FOTA_ERR_REJECTED);
                return;
        }
        fota_urc(c, STAGE_APPLY, STATUS_OK, -1);
        fota_urc(c, STAGE_READY, STATUS_OK, -1);
}
