/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared by the core's files only. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "at-params.h"
#include "nrf91.h"

#define ELEMENTS(x) (sizeof(x) / sizeof((x)[0]))

/* Handler results besides 0 (write OK) and negative errno. */
#define NRF91_HANDLER_ASYNC 1 /* the port finishes it; the core is BUSY until then */
#define NRF91_HANDLER_DONE 2  /* the handler wrote its final result itself */

/*
 * Handlers return 0 (the core writes OK), NRF91_HANDLER_*, -NRF91_EINVAL
 * for a parameter error (ERROR) or another negative errno for a failure
 * (+CME ERROR: <errno>).
 */
typedef int (*nrf91_handler)(struct nrf91_core *c, const struct at_cmd *cmd, const struct at_args *args);

struct nrf91_command {
        const char *name;
        nrf91_handler handler;
        unsigned types;    /* bit (1 << AT_CMD_*) for every accepted form */
        uint8_t min_args;  /* for AT_CMD_SET */
        uint8_t max_args;
        const char *test;  /* information line for AT<name>=?, or NULL */
};

/* Tiny formatter over a caller's buffer; output is cut (never overrun) when full. */
struct fmt {
        char *buf;
        size_t size;
        size_t len;
};

void fmt_init(struct fmt *f, char *buf, size_t size);
void fmt_str(struct fmt *f, const char *s);
void fmt_mem(struct fmt *f, const char *s, size_t n);
void fmt_int(struct fmt *f, int64_t v);
void fmt_hex(struct fmt *f, const uint8_t *data, size_t n);

/* Output (core.c). */
void core_write(struct nrf91_core *c, const void *data, size_t len, unsigned flags);
/* "\r\n<line>\r\n" as an information line of the running command. */
void core_line(struct nrf91_core *c, const char *line, size_t len);
void core_final(struct nrf91_core *c, int r); /* 0 OK, -NRF91_EINVAL ERROR, else +CME ERROR */
/* An unsolicited line; queued while a response is being written. */
void core_urc(struct nrf91_core *c, const char *line, size_t len);
/* A URC header line followed by exactly len raw bytes; 0 or -NRF91_EAGAIN. */
int core_urc_payload(struct nrf91_core *c, const char *line, size_t line_len, const uint8_t *data, size_t len);
/* How many bytes core_urc_payload() needs in the URC queue. */
size_t core_urc_payload_size(size_t line_len, size_t len);
bool core_urc_fits(const struct nrf91_core *c, size_t n);
/* Opens and closes a window in which URCs are queued. */
void core_begin(struct nrf91_core *c);
void core_end(struct nrf91_core *c);

/* Modem settings the link relies on (+CMEE=1), after every modem start. */
void core_modem_setup(struct nrf91_core *c);

/* "#XFOTA: 5,<status>[,<info>]" of an applied image, as a URC or an information line. */
void fota_result_line(struct nrf91_core *c, const struct nrf91_fota_result *res, bool urc);

/* Command handlers. */
int cmd_xuuid(struct nrf91_core *c, const struct at_cmd *cmd, const struct at_args *args);
int cmd_xsmver(struct nrf91_core *c, const struct at_cmd *cmd, const struct at_args *args);
int cmd_xreset(struct nrf91_core *c, const struct at_cmd *cmd, const struct at_args *args);
int cmd_xmodemreset(struct nrf91_core *c, const struct at_cmd *cmd, const struct at_args *args);
int cmd_xssocket(struct nrf91_core *c, const struct at_cmd *cmd, const struct at_args *args);
int cmd_xssocketopt(struct nrf91_core *c, const struct at_cmd *cmd, const struct at_args *args);
int cmd_xconnect(struct nrf91_core *c, const struct at_cmd *cmd, const struct at_args *args);
int cmd_xsend(struct nrf91_core *c, const struct at_cmd *cmd, const struct at_args *args);
int cmd_xrecvcfg(struct nrf91_core *c, const struct at_cmd *cmd, const struct at_args *args);
int cmd_xclose(struct nrf91_core *c, const struct at_cmd *cmd, const struct at_args *args);
int cmd_xdownload(struct nrf91_core *c, const struct at_cmd *cmd, const struct at_args *args);
int cmd_xfota(struct nrf91_core *c, const struct at_cmd *cmd, const struct at_args *args);
int cmd_xfotainfo(struct nrf91_core *c, const struct at_cmd *cmd, const struct at_args *args);

/* Socket side (cmd-socket.c). */
void socket_payload_complete(struct nrf91_core *c);
void socket_payload_timeout(struct nrf91_core *c);
/* Drops every socket with #XCLOSE: <h>,<err> URCs (modem reset). */
void sockets_drop_all(struct nrf91_core *c, int err);

/* Download side (cmd-download.c, cmd-fota.c). */
/* "https://<host>...", scheme case-insensitive. */
bool url_is_https(const char *url);
void downloads_drop_all(struct nrf91_core *c, int err);
void fota_length(struct nrf91_core *c, uint64_t length);
void fota_data(struct nrf91_core *c, const uint8_t *data, size_t len);
void fota_done(struct nrf91_core *c, int err);
void fota_drop(struct nrf91_core *c);
