/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The portable AT server core of firmware_nrf91.
 *
 * A port allocates one struct nrf91_core (statically on the device), calls
 * nrf91_core_init() with its operations (port.h), nrf91_core_boot() when the
 * application starts, and then feeds serial input and events.  All calls are
 * made from one thread; the core never blocks and never allocates.
 *
 * The dialect is fixed by spec modem-link.md and documented for users in
 * doc/at-commands.md.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "at-line.h"
#include "port.h"
#include "sha256.h"

#define NRF91_MAX_DOWNLOADS 2      /* concurrent #XDOWNLOAD transfers */
#define NRF91_FOTA_DOWNLOAD_ID 0   /* the download behind #XFOTA */
#define NRF91_RESPONSE_MAX 8192    /* one pass-through response (a %CMNG read is ~4.2 KiB) */
_Static_assert(NRF91_RESPONSE_MAX > NRF91_URL_MAX, "#XDOWNLOAD parses its URL into the response buffer");
#define NRF91_URC_QUEUE_SIZE 4608  /* URCs held while a response is written */
#define NRF91_SEND_TIMEOUT_MS 10000 /* #XSEND payload: max pause between bytes */
#define NRF91_QUOTED_IDLE_MS 5000   /* a multi-line quoted string stalled this long is dropped */

enum nrf91_core_state {
        NRF91_CORE_OFF,     /* before nrf91_core_boot(), and during a reset */
        NRF91_CORE_IDLE,    /* reading commands */
        NRF91_CORE_PAYLOAD, /* reading the raw bytes of #XSEND */
        NRF91_CORE_BUSY,    /* a command waits for the port; input is not taken */
};

struct nrf91_socket {
        bool used;
        bool connected;
        bool recv_auto;
        uint8_t peer_verify;
        uint32_t sec_tag;
};

struct nrf91_download {
        bool used;
        int32_t id;
        uint64_t received;
        uint64_t length; /* from the server, 0 if unknown */
        struct sha256_ctx sha;
};

/* The core's side of FOTA; what outlives a reset is the port's store (port.h). */
enum nrf91_fota_state {
        NRF91_FOTA_IDLE,
        NRF91_FOTA_DOWNLOADING,
};

struct nrf91_fota {
        enum nrf91_fota_state state;
        int op;
        enum nrf91_image_type type;
        bool begun; /* fota_begin() was called */
        uint8_t head[32];
        size_t head_len;
        int last_percent;
        uint32_t offset; /* a resumed download started here */
        char url[NRF91_URL_MAX + 1];
        struct nrf91_download dl;
};

enum nrf91_pending {
        NRF91_PENDING_NONE,
        NRF91_PENDING_CONNECT,
        NRF91_PENDING_SEND,
};

struct nrf91_core {
        const struct nrf91_port *port;
        void *ctx;
        enum nrf91_core_state state;

        struct at_line line;
        uint64_t last_input_ms;

        enum nrf91_pending pending;
        int pending_handle;

        /* #XSEND */
        int payload_handle;
        size_t payload_len, payload_got;
        uint64_t payload_deadline_ms;
        uint8_t payload[NRF91_SEND_MAX];

        struct nrf91_socket sockets[NRF91_MAX_SOCKETS];
        struct nrf91_download downloads[NRF91_MAX_DOWNLOADS];
        int32_t next_download_id;
        struct nrf91_fota fota;

        /* > 0 while a response (or a counted URC) is being written. */
        unsigned atomic;
        /* A reset was asked for; done once the response is out. */
        bool reset_requested;
        size_t urc_len;
        uint8_t urc_queue[NRF91_URC_QUEUE_SIZE];
        unsigned urcs_dropped;

        char response[NRF91_RESPONSE_MAX];
};

void nrf91_core_init(struct nrf91_core *c, const struct nrf91_port *port, void *ctx);

/*
 * The application (re)started: forget every socket, download and partial
 * command, print "Ready", then the result of an update applied by the reset.
 */
void nrf91_core_boot(struct nrf91_core *c);

/*
 * Serial input.  Returns how many bytes were taken: fewer than len while a
 * command waits for the port (nrf91_core_wants_input() is then false); the
 * port keeps the rest and offers it again after the next event.  Input
 * before boot is discarded.
 */
size_t nrf91_core_input(struct nrf91_core *c, const uint8_t *data, size_t len);
bool nrf91_core_wants_input(const struct nrf91_core *c);

/* Timers: call nrf91_core_tick() when nrf91_core_next_timeout() (absolute ms, UINT64_MAX none) is due. */
void nrf91_core_tick(struct nrf91_core *c);
uint64_t nrf91_core_next_timeout(const struct nrf91_core *c);

/* A modem URC line without CR/LF (from inside modem_at() too). */
void nrf91_core_urc(struct nrf91_core *c, const char *line);

/* Socket events (see port.h). */
void nrf91_core_sock_connected(struct nrf91_core *c, int handle, int err);
void nrf91_core_sock_sent(struct nrf91_core *c, int handle, int sent_or_err);
/*
 * Received data (1..NRF91_RECV_MAX bytes).  0 when taken, -NRF91_EAGAIN
 * when it cannot be written now: offer the same bytes again later.
 */
int nrf91_core_sock_data(struct nrf91_core *c, int handle, const uint8_t *data, size_t len);
/* The peer closed (err 0) or the socket failed (negative errno); the handle is free afterwards. */
void nrf91_core_sock_closed(struct nrf91_core *c, int handle, int err);

/* Download events (see port.h); data as for nrf91_core_sock_data(), any length. */
void nrf91_core_download_length(struct nrf91_core *c, int id, uint64_t length);
int nrf91_core_download_data(struct nrf91_core *c, int id, const uint8_t *data, size_t len);
void nrf91_core_download_done(struct nrf91_core *c, int id, int err);

/* Image type of the first bytes of a FOTA image (NONE below 32 bytes). */
enum nrf91_image_type nrf91_image_type_detect(const uint8_t *buf, size_t len);
