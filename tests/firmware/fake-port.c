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

static int fota_begin(void *ctx, enum nrf91_image_type type, const char *url) {
        (void) url;
        P(ctx)->fota_type = type;
        P(ctx)->fota_len = 0;
        P(ctx)->fota_finished = P(ctx)->fota_aborted = false;
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
        P(ctx)->fota_finished = true;
        return 0;
}

static void fota_abort(void *ctx) {
        P(ctx)->fota_aborted = true;
}

static void fota_boot_result(void *ctx, struct nrf91_fota_result *ret) {
        *ret = P(ctx)->boot_result;
        P(ctx)->boot_result.valid = false;
}

static void reset(void *ctx) {
        struct fake_port *p = P(ctx);

        p->resets++;
        memset(p->sock_open, 0, sizeof p->sock_open);
        if (p->fota_finished && p->fota_type == NRF91_IMAGE_MCUBOOT)
                p->boot_result = (struct nrf91_fota_result){ .valid = true, .status = 0 };
        p->fota_finished = false;
        nrf91_core_boot(&p->core);
}

static int modem_reset(void *ctx, struct nrf91_fota_result *fota) {
        struct fake_port *p = P(ctx);

        p->modem_resets++;
        if (p->fota_finished && p->fota_type != NRF91_IMAGE_MCUBOOT) {
                *fota = (struct nrf91_fota_result){ .valid = true, .status = 0 };
                p->fota_finished = false;
        }
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
