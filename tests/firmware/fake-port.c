/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "fake-port.h"

#define P(ctx) ((struct fake_port *) (ctx))

static void serial_write(void *ctx, const uint8_t *data, size_t len, unsigned flags) {
        struct fake_port *p = P(ctx);

        if (len > FAKE_OUT_MAX - 1 - p->out_len)
                len = FAKE_OUT_MAX - 1 - p->out_len;
        memcpy(p->out + p->out_len, data, len);
        p->out_len += len;
        p->out[p->out_len] = 0;
        if (flags & NRF91_OUT_FINAL)
                p->finals++;
}

static uint64_t uptime_ms(void *ctx) {
        return P(ctx)->now_ms;
}

static int random_bytes(void *ctx, void *buf, size_t len) {
        (void) ctx;
        memset(buf, 0, len);
        return 0;
}

static int modem_at(void *ctx, const char *cmd, size_t len, char *out, size_t out_size) {
        struct fake_port *p = P(ctx);
        const char *resp = "\r\nOK\r\n";

        p->modem_calls++;
        p->modem_cmd_len = len < sizeof p->modem_cmd ? len : sizeof p->modem_cmd - 1;
        memcpy(p->modem_cmd, cmd, p->modem_cmd_len);
        p->modem_cmd[p->modem_cmd_len] = '\0';
        if (p->modem_urc_during)
                nrf91_core_urc(&p->core, p->modem_urc_during);

        if (len == 7 && memcmp(cmd, "AT+CGMR", 7) == 0)
                resp = "\r\nmfw_nrf9160_1.3.5\r\n\r\nOK\r\n";
        else if (len == 8 && memcmp(cmd, "AT+MULTI", 8) == 0)
                resp = "\r\n+MULTI: 1\r\n\r\n+MULTI: 2\r\n\r\nOK\r\n";
        else if (len >= 5 && memcmp(cmd, "ATBAD", 5) == 0)
                resp = "\r\nERROR\r\n";
        else if (len >= 7 && memcmp(cmd, "ATENOSP", 7) == 0)
                return -NRF91_ENOBUFS;
        if (strlen(resp) > out_size)
                return -NRF91_ENOBUFS;
        memcpy(out, resp, strlen(resp));
        return (int) strlen(resp);
}

static int device_uuid(void *ctx, char out[NRF91_UUID_STR_LEN + 1]) {
        (void) ctx;
        memcpy(out, "50503642-3239-4f86-80c4-06122e299623", NRF91_UUID_STR_LEN + 1);
        return 0;
}

static int versions(void *ctx, char app[NRF91_VERSION_MAX], char sdk[NRF91_VERSION_MAX]) {
        (void) ctx;
        strcpy(app, "1.0.0");
        strcpy(sdk, "test-sdk");
        return 0;
}

static int sock_open(void *ctx, int h, uint32_t sec_tag, int peer_verify) {
        (void) sec_tag, (void) peer_verify;
        P(ctx)->sock_open[h] = true;
        P(ctx)->hostname[h][0] = '\0';
        return 0;
}

static int sock_set_hostname(void *ctx, int h, const char *hostname) {
        snprintf(P(ctx)->hostname[h], sizeof P(ctx)->hostname[h], "%s", hostname ? hostname : "");
        return 0;
}

static int sock_connect(void *ctx, int h, const char *host, uint16_t port) {
        (void) h, (void) host, (void) port;
        return P(ctx)->connect_result;
}

static int sock_send(void *ctx, int h, const uint8_t *data, size_t len) {
        struct fake_port *p = P(ctx);

        (void) h;
        if (p->send_result != 0)
                return p->send_result;
        if (len > sizeof p->sent - p->sent_len)
                len = sizeof p->sent - p->sent_len;
        memcpy(p->sent + p->sent_len, data, len);
        p->sent_len += len;
        return (int) len;
}

static void sock_recv_enable(void *ctx, int h, bool enable) {
        P(ctx)->recv_enabled[h] = enable;
}

static void sock_close(void *ctx, int h) {
        P(ctx)->sock_open[h] = false;
}

static int download_start(void *ctx, int id, const char *url, uint32_t sec_tag, uint32_t offset) {
        struct fake_port *p = P(ctx);

        (void) sec_tag;
        if (p->download_result < 0)
                return p->download_result;
        p->last_download_id = id;
        snprintf(p->last_url, sizeof p->last_url, "%s", url);
        p->last_offset = offset;
        return 0;
}

static void download_cancel(void *ctx, int id) {
        P(ctx)->cancels++;
        P(ctx)->last_cancel_id = id;
}

static int fota_begin(void *ctx, enum nrf91_image_type type, const char *url, uint32_t total) {
        struct fake_port *p = P(ctx);

        p->fota_type = type;
        snprintf(p->fota_url, sizeof p->fota_url, "%s", url);
        p->fota_total = total;
        p->fota_len = 0;
        p->fota_writing = true;
        p->fota_finished = p->fota_aborted = false;
        p->store = (struct nrf91_fota_store){ .stored = NRF91_FOTA_STORED_NONE };
        return 0;
}

static int fota_write(void *ctx, const uint8_t *data, size_t len) {
        struct fake_port *p = P(ctx);

        if (len > sizeof p->fota_image - p->fota_len)
                return -NRF91_EFBIG;
        memcpy(p->fota_image + p->fota_len, data, len);
        p->fota_len += len;
        return 0;
}

static int fota_finish(void *ctx) {
        struct fake_port *p = P(ctx);

        p->fota_writing = false;
        p->fota_finished = true;
        p->store.stored = NRF91_FOTA_STORED_SCHEDULED;
        p->store.type = p->fota_type;
        p->store.received = p->store.total = (uint32_t) p->fota_len;
        return 0;
}

static void fota_abort(void *ctx) {
        struct fake_port *p = P(ctx);

        p->fota_aborted = true;
        p->fota_writing = false;
        if (p->store.stored == NRF91_FOTA_STORED_PARTIAL)
                p->store.stored = NRF91_FOTA_STORED_NONE;
}

static int fota_resume(void *ctx, enum nrf91_image_type type, const char *url, uint32_t *offset) {
        struct fake_port *p = P(ctx);

        if (p->store.stored != NRF91_FOTA_STORED_PARTIAL || p->store.type != type || strcmp(url, p->fota_url) != 0) {
                fota_abort(ctx);
                return -NRF91_ENOENT;
        }
        p->fota_writing = true;
        *offset = (uint32_t) p->fota_len;
        return 0;
}

static unsigned fota_ops(void *ctx) {
        return P(ctx)->fota_ops;
}

static void fota_store_info(void *ctx, struct nrf91_fota_store *ret) {
        *ret = P(ctx)->store;
}

static int fota_confirm(void *ctx) {
        struct fake_port *p = P(ctx);

        if (p->store.stored != NRF91_FOTA_STORED_TESTING)
                return -NRF91_ENOENT;
        p->store.stored = NRF91_FOTA_STORED_NONE;
        return 0;
}

static void fota_boot_result(void *ctx, struct nrf91_fota_result *ret) {
        *ret = P(ctx)->boot_result;
        P(ctx)->boot_result.valid = false;
}

/* What the bootloader and the modem do with the store at a reset. */
static void fota_apply(struct fake_port *p, bool modem_only, struct nrf91_fota_result *ret) {
        struct nrf91_fota_store *st = &p->store;
        bool app = st->type == NRF91_IMAGE_MCUBOOT;

        *ret = (struct nrf91_fota_result){ .valid = false };
        if (p->fota_writing && !modem_only) {
                p->fota_writing = false;
                *st = (struct nrf91_fota_store){ .stored = NRF91_FOTA_STORED_PARTIAL, .type = p->fota_type,
                                                 .received = (uint32_t) p->fota_len, .total = p->fota_total,
                                                 .last = st->last };
        } else if (st->stored == NRF91_FOTA_STORED_TESTING && !modem_only) {
                *ret = (struct nrf91_fota_result){ .valid = true, .status = 3 };
                st->stored = NRF91_FOTA_STORED_NONE;
        } else if (st->stored == NRF91_FOTA_STORED_SCHEDULED && !(modem_only && app)) {
                *ret = (struct nrf91_fota_result){ .valid = true, .status = 0 };
                st->stored = app ? NRF91_FOTA_STORED_TESTING : NRF91_FOTA_STORED_NONE;
                p->fota_finished = false;
        }
        if (ret->valid)
                st->last = *ret;
}

static void reset(void *ctx) {
        struct fake_port *p = P(ctx);

        p->resets++;
        memset(p->sock_open, 0, sizeof p->sock_open);
        fota_apply(p, false, &p->boot_result);
        nrf91_core_boot(&p->core);
}

static int modem_reset(void *ctx, struct nrf91_fota_result *fota) {
        struct fake_port *p = P(ctx);

        p->modem_resets++;
        fota_apply(p, true, fota);
        return 0;
}

const struct nrf91_port fake_port_ops = {
        .serial_write = serial_write,
        .uptime_ms = uptime_ms,
        .random = random_bytes,
        .modem_at = modem_at,
        .device_uuid = device_uuid,
        .versions = versions,
        .sock_open = sock_open,
        .sock_set_hostname = sock_set_hostname,
        .sock_connect = sock_connect,
        .sock_send = sock_send,
        .sock_recv_enable = sock_recv_enable,
        .sock_close = sock_close,
        .download_start = download_start,
        .download_cancel = download_cancel,
        .fota_begin = fota_begin,
        .fota_write = fota_write,
        .fota_finish = fota_finish,
        .fota_abort = fota_abort,
        .fota_resume = fota_resume,
        .fota_ops = fota_ops,
        .fota_store_info = fota_store_info,
        .fota_confirm = fota_confirm,
        .fota_boot_result = fota_boot_result,
        .reset = reset,
        .modem_reset = modem_reset,
};

void fake_port_clear(struct fake_port *p) {
        p->out_len = 0;
        p->out[0] = 0;
        p->finals = 0;
}

void fake_port_start(struct fake_port *p) {
        memset(p, 0, sizeof *p);
        p->now_ms = 1000;
        p->fota_ops = NRF91_FOTA_OP_APP | NRF91_FOTA_OP_MODEM_DELTA;
        nrf91_core_init(&p->core, &fake_port_ops, p);
        nrf91_core_boot(&p->core);
        fake_port_clear(p);
}

void fake_port_input(struct fake_port *p, const void *data, size_t len) {
        const uint8_t *d = data;

        while (len > 0) {
                size_t n = nrf91_core_input(&p->core, d, len);
                d += n, len -= n;
                if (n == 0)
                        break; /* BUSY: the test completes the command */
        }
}

void fake_port_input_str(struct fake_port *p, const char *s) {
        fake_port_input(p, s, strlen(s));
}

const char *fake_port_output(struct fake_port *p) {
        return (const char *) p->out;
}
