/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The one interface between the portable AT server core and the world.
 *
 * The core (src/) is plain C11 with no OS headers and no dynamic memory; it
 * runs on one thread of control.  A port (port/host for nrf91-sim,
 * port/zephyr for the nRF91 application) supplies the operations below and
 * reports what happens by calling the nrf91_core_*() event functions of
 * nrf91.h, always from that same thread.
 *
 * Asynchronous operations: a port operation that cannot finish at once
 * returns -NRF91_EINPROGRESS and later reports the result through the event
 * function named in its comment.  Any other return value is the final result
 * and no event follows.  Events never come from inside the operation that
 * started them; a port that learns the result at once returns it.
 *
 * Error numbers: the AT link carries errno values (#XCLOSE: <h>,<err>,
 * #XDOWNLOAD: <id>,3,<err>, +CME ERROR: <n>), so their numbering is part of
 * the protocol.  It is fixed to the Linux values below whatever the C
 * library of the target says; ports translate their own errno (newlib's
 * ETIMEDOUT is 116, Linux's is 110) with these constants.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NRF91_ENOENT 2
#define NRF91_EIO 5
#define NRF91_EBADF 9
#define NRF91_EAGAIN 11
#define NRF91_E2BIG 7
#define NRF91_ENOMEM 12
#define NRF91_EACCES 13
#define NRF91_EBUSY 16
#define NRF91_EINVAL 22
#define NRF91_EMFILE 24
#define NRF91_EFBIG 27
#define NRF91_ENOSPC 28
#define NRF91_ERANGE 34
#define NRF91_EOPNOTSUPP 95
#define NRF91_EPROTO 71
#define NRF91_EBADMSG 74
#define NRF91_EMSGSIZE 90
#define NRF91_ENETDOWN 100
#define NRF91_ENETUNREACH 101
#define NRF91_ECONNABORTED 103
#define NRF91_ECONNRESET 104
#define NRF91_ENOBUFS 105
#define NRF91_EISCONN 106
#define NRF91_ENOTCONN 107
#define NRF91_ETIMEDOUT 110
#define NRF91_ECONNREFUSED 111
#define NRF91_EHOSTUNREACH 113
#define NRF91_EALREADY 114
#define NRF91_EINPROGRESS 115
#define NRF91_ECANCELED 125

/* Limits fixed by the link protocol (spec modem-link.md). */
#define NRF91_AT_MAX_CMD_LEN 4096  /* bytes of one command, terminator excluded */
#define NRF91_MAX_SOCKETS 8        /* NRF_MODEM_MAX_SOCKET_COUNT */
#define NRF91_SEND_MAX 4096        /* #XSEND payload */
#define NRF91_RECV_MAX 2048        /* #XRECV URC payload (NRF_SOCKET_TLS_MAX_MESSAGE_SIZE) */
#define NRF91_DOWNLOAD_CHUNK_MAX 2048
#define NRF91_HOSTNAME_MAX 253
#define NRF91_URL_MAX 1024
#define NRF91_UUID_STR_LEN 36
#define NRF91_VERSION_MAX 64

/* Flags of serial_write(). */
enum {
        /* These bytes complete the response of a command (its final result). */
        NRF91_OUT_FINAL = 1 << 0,
        /* These bytes are (part of) an unsolicited result code. */
        NRF91_OUT_URC = 1 << 1,
};

/* FOTA image types, as detected from the first bytes (spec nrf91-at.md §6.2). */
enum nrf91_image_type {
        NRF91_IMAGE_NONE = 0,
        NRF91_IMAGE_MCUBOOT = 1,      /* application, op 1 */
        NRF91_IMAGE_MODEM_DELTA = 2,  /* op 2 */
        NRF91_IMAGE_MODEM_FULL = 3,   /* op 3 */
};

/* What a reset found and applied (reported as #XFOTA: 5,<status>[,<info>]). */
struct nrf91_fota_result {
        bool valid;   /* false: no FOTA result to report */
        int status;   /* 0 ok, 1 error, 3 reverted */
        int info;     /* error code for status 1 */
};

/* #XFOTA ops a port may be able to apply: bit n for op n (fota_ops()). */
#define NRF91_FOTA_OP_APP (1u << 1)
#define NRF91_FOTA_OP_MODEM_DELTA (1u << 2)
#define NRF91_FOTA_OP_MODEM_FULL (1u << 3)

/* What the FOTA image store holds across resets (#XFOTAINFO). */
enum nrf91_fota_stored {
        NRF91_FOTA_STORED_NONE,
        NRF91_FOTA_STORED_PARTIAL,   /* an interrupted download: received bytes of it */
        NRF91_FOTA_STORED_SCHEDULED, /* a complete image waits for the reset that applies it */
        NRF91_FOTA_STORED_TESTING,   /* a new application runs as an MCUboot test image */
};

struct nrf91_fota_store {
        enum nrf91_fota_stored stored;
        enum nrf91_image_type type;     /* of the stored image */
        uint32_t received, total;       /* bytes; total 0 when unknown */
        /* Outcome of the last reset that applied an image; kept until a download starts from zero. */
        struct nrf91_fota_result last;
};

struct nrf91_port {
        /*
         * Serial link.  Must take every byte (a port buffers or blocks);
         * flags tell what the bytes are, for ports that inject faults.
         */
        void (*serial_write)(void *ctx, const uint8_t *data, size_t len, unsigned flags);

        /* Monotonic milliseconds. */
        uint64_t (*uptime_ms)(void *ctx);
        /* Fills buf with random bytes; negative on failure. */
        int (*random)(void *ctx, void *buf, size_t len);

        /*
         * Modem pass-through: executes one AT command exactly as received
         * (without its terminator; CR/LF inside quotes are content), writes
         * the modem's complete framed response ("\r\n<line>\r\n"..., one
         * final result) to out and returns its length, or a negative errno.
         * Synchronous.  Modem URCs are reported with nrf91_core_urc(), also
         * from inside this call.
         */
        int (*modem_at)(void *ctx, const char *cmd, size_t len, char *out, size_t out_size);

        /* Identity: the device UUID, 8-4-4-4-12 lower case, NUL-terminated. */
        int (*device_uuid)(void *ctx, char out[NRF91_UUID_STR_LEN + 1]);
        /* The running application version and the SDK version strings. */
        int (*versions)(void *ctx, char app[NRF91_VERSION_MAX], char sdk[NRF91_VERSION_MAX]);

        /*
         * TLS 1.2 client sockets, handle 0..NRF91_MAX_SOCKETS-1 chosen by the
         * core.  sock_open takes the credentials of sec_tag; peer_verify 0
         * none, 1 optional, 2 required.
         */
        int (*sock_open)(void *ctx, int handle, uint32_t sec_tag, int peer_verify);
        /* hostname NULL: no SNI and no name check. */
        int (*sock_set_hostname)(void *ctx, int handle, const char *hostname);
        /* 0, -NRF91_EINPROGRESS (then nrf91_core_sock_connected) or -errno. */
        int (*sock_connect)(void *ctx, int handle, const char *host, uint16_t port);
        /* Bytes sent, -NRF91_EINPROGRESS (then nrf91_core_sock_sent) or -errno. */
        int (*sock_send)(void *ctx, int handle, const uint8_t *data, size_t len);
        /*
         * From now on deliver received data with nrf91_core_sock_data() and
         * the peer's close with nrf91_core_sock_closed().
         */
        void (*sock_recv_enable)(void *ctx, int handle, bool enable);
        /* Releases the handle; no event follows. */
        void (*sock_close)(void *ctx, int handle);

        /*
         * HTTPS download of url (https only), verified with the CA of
         * sec_tag, starting at byte offset.  Data goes to
         * nrf91_core_download_data() and the end to
         * nrf91_core_download_done(); the total size, when the server tells
         * it, to nrf91_core_download_length().  A TLS verification failure
         * ends it with -NRF91_EACCES.  Returns 0 or -errno.
         */
        int (*download_start)(void *ctx, int id, const char *url, uint32_t sec_tag, uint32_t offset);
        /*
         * Stops it; no event follows.  May be called from inside
         * nrf91_core_download_data() (a FOTA image of the wrong type).
         */
        void (*download_cancel)(void *ctx, int id);

        /*
         * FOTA image store.  fota_begin before the first byte (type already
         * detected; total the image size, 0 if unknown), fota_write for
         * every byte in order, fota_finish after the last: the image is then
         * scheduled and applied at the next reset (reset() for every type,
         * modem_reset() for modem types).  fota_begin drops a scheduled
         * image and forgets the last result.  fota_abort drops a partial
         * image, also one kept from before a reset.
         */
        int (*fota_begin)(void *ctx, enum nrf91_image_type type, const char *url, uint32_t total);
        int (*fota_write)(void *ctx, const uint8_t *data, size_t len);
        int (*fota_finish)(void *ctx);
        void (*fota_abort)(void *ctx);
        /*
         * A partial image kept across a reset, of this type and downloaded
         * from this url: 0 and *offset (the bytes stored; writing goes on
         * from there), or -NRF91_ENOENT after dropping any partial image.
         */
        int (*fota_resume)(void *ctx, enum nrf91_image_type type, const char *url, uint32_t *offset);
        /* Bit mask of the ops this device can apply (NRF91_FOTA_OP_*). */
        unsigned (*fota_ops)(void *ctx);
        /* What the store holds now (a running download's own progress is the core's). */
        void (*fota_store_info)(void *ctx, struct nrf91_fota_store *ret);
        /*
         * Makes the running MCUboot test image permanent: 0, or
         * -NRF91_ENOENT when no test image runs.  A reset before it reverts
         * to the old application (#XFOTA: 5,3).
         */
        int (*fota_confirm)(void *ctx);
        /* After boot: the result of the update applied by the last reset, reported once. */
        void (*fota_boot_result)(void *ctx, struct nrf91_fota_result *ret);

        /*
         * Application reset (#XRESET).  The port drops every socket and
         * download, applies a scheduled image, restarts the modem and calls
         * nrf91_core_boot() (at once or later).
         */
        void (*reset)(void *ctx);
        /*
         * Modem reset (#XMODEMRESET): applies a scheduled modem image and
         * restarts the modem; sockets and downloads are gone afterwards.
         * Synchronous: returns 0 or -errno and fills *fota with the result
         * of an applied modem image.
         */
        int (*modem_reset)(void *ctx, struct nrf91_fota_result *fota);
};
