/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * nrf91-sim: the firmware's portable core on a Linux host port, over the
 * emulated modem.  One thread, one poll() loop; nothing blocks it (DNS with
 * getaddrinfo_a, non-blocking TCP and OpenSSL).
 */

#include <netdb.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "modem-emu.h"
#include "nrf91.h"
#include "sim-parse.h"

#define SIM_CONNECT_TIMEOUT_MS 30000
#define SIM_TX_THROTTLE (64u * 1024)   /* stop reading the network above this serial backlog */
#define SIM_TX_MAX (16u * 1024 * 1024) /* serial backlog cap while nobody reads the pty */
#define SIM_RX_MAX 4096
#define SIM_BOOT_MS 100                /* from reset to "Ready" */
#define SIM_MODEM_TICK_MS 50
#define SIM_FOTA_MUTE_MS 5000          /* fota-mute: the emulated watchdog's default */

typedef struct Sim Sim;

/* ---- options ---------------------------------------------------------- */

typedef struct SimOptions {
        const char *pty_link;   /* --pty-link */
        bool stdio;             /* --stdio */
        const char *state_dir;  /* --state-dir */
        const char *uuid;       /* --uuid */
        const char *imei;       /* --imei */
        const char *control;    /* --control, default <state-dir>/control */
        unsigned delay_ms;      /* --fault-delay */
        unsigned drop;          /* --fault-drop */
        const char *app_version; /* --app-version: version before any application FOTA */
        bool external_flash;    /* --external-flash: full modem images can be applied */
} SimOptions;

/* ---- a TLS client connection (sockets and downloads) ------------------ */

typedef enum TlsState {
        TLS_IDLE,
        TLS_RESOLVING,
        TLS_CONNECTING,
        TLS_HANDSHAKE,
        TLS_OPEN,
        TLS_FAILED,
} TlsState;

typedef struct TlsConn {
        TlsState state;
        int fd;
        SSL_CTX *ctx;
        SSL *ssl;
        struct gaicb *gai; /* while resolving */
        struct addrinfo *addrs, *next_addr;
        char port[8];
        uint64_t deadline_ms;
        short want; /* poll events OpenSSL asked for */
        int err;    /* TLS_FAILED: negative errno */
} TlsConn;

/*
 * Credentials of sec_tag from the modem's store: CA (type 0) for peer
 * verification, client certificate (1) and key (2) when present.
 * verify_host NULL: no SNI and no name check (IP literal, or no
 * #XSSOCKETOPT hostname).
 */
int tls_conn_init(TlsConn *c, const ModemEmu *m, uint32_t sec_tag, int peer_verify, const char *verify_host);
int tls_conn_start(TlsConn *c, const char *host, uint16_t port, uint64_t now_ms);
/* Advances resolve/connect/handshake; TLS_OPEN or TLS_FAILED when done. */
void tls_conn_step(TlsConn *c, uint64_t now_ms);
short tls_conn_events(const TlsConn *c);
uint64_t tls_conn_deadline(const TlsConn *c);
/* > 0 bytes, 0 peer closed, -EAGAIN, or negative errno. */
ssize_t tls_conn_read(TlsConn *c, void *buf, size_t len);
ssize_t tls_conn_write(TlsConn *c, const void *buf, size_t len);
bool tls_conn_pending(const TlsConn *c);
void tls_conn_done(TlsConn *c);
/* Reaps name resolutions that outlived their connection. */
void tls_resolver_gc(bool wait);

/* Linux errno (negative) to the numbering of the link (port.h). */
int sim_link_errno(int e);
/* Debug log of serial traffic with CR/LF and control bytes visible. */
void sim_trace(const char *dir, const uint8_t *data, size_t len);

/* ---- sockets (sim-tls.c) --------------------------------------------- */

typedef struct SimSocket {
        bool open;
        uint32_t sec_tag;
        int peer_verify;
        char hostname[NRF91_HOSTNAME_MAX + 1];
        bool recv_enabled;
        bool connecting, connected;
        TlsConn conn;
        uint8_t *send_buf; /* a send OpenSSL could not finish at once */
        size_t send_len;
        uint8_t rx[NRF91_RECV_MAX]; /* received, not yet taken by the core */
        size_t rx_len;
} SimSocket;

/* ---- downloads (sim-https.c) ----------------------------------------- */

typedef enum DownloadState {
        DL_CONNECTING,
        DL_REQUEST,
        DL_HEADERS,
        DL_BODY,
} DownloadState;

typedef struct SimDownload {
        bool active;
        int id;
        DownloadState state;
        TlsConn conn;
        char *request;
        size_t request_len, request_sent;
        char headers[8192];
        size_t headers_len;
        uint32_t offset, skip; /* skip: a 200 answer to a range request */
        SimHttpBody body;
        uint8_t pending[16384]; /* body bytes the core did not take yet */
        size_t pending_len;
        bool eof;
} SimDownload;

#define SIM_MAX_DOWNLOADS (NRF91_MAX_DOWNLOADS + 1)

/* ---- the simulator ---------------------------------------------------- */

typedef struct TxSegment TxSegment;

typedef struct ControlClient {
        int fd;
        char buf[512];
        size_t len;
} ControlClient;

#define SIM_CONTROL_CLIENTS 4

struct Sim {
        SimOptions opt;
        char *state_dir;
        char *control_path;
        ModemEmu *modem;
        struct nrf91_core core;
        bool quit;

        /* Serial link (sim-serial.c). */
        int in_fd, out_fd;
        int pty_slave_fd;
        char pty_name[128];
        bool vanished;
        uint64_t reappear_ms; /* 0: none scheduled */
        uint8_t rx[SIM_RX_MAX];
        size_t rx_len;
        TxSegment *tx_head, *tx_tail;
        size_t tx_bytes;
        unsigned delay_ms;
        unsigned drop;       /* responses still to drop */
        bool dropping;       /* inside a response being dropped */
        bool tx_overflow_logged;

        /* Application state. */
        uint64_t boot_at_ms; /* 0: running */
        char app_version[NRF91_VERSION_MAX];

        SimSocket sockets[NRF91_MAX_SOCKETS];
        SimDownload downloads[SIM_MAX_DOWNLOADS];

        /* FOTA image store (sim-fota.c). */
        int fota_fd;
        enum nrf91_image_type fota_type;
        char *fota_url;
        size_t fota_size;
        /* Fault injection: the next test image is mute for this long (0: off). */
        unsigned fota_mute_ms;
        uint64_t mute_until_ms;        /* a mute test image runs: no serial I/O, watchdog then */
        uint64_t fault_fota_write_at;  /* the flash write reaching this byte fails (0: off) */

        /* Control socket (sim-control.c). */
        int control_fd;
        ControlClient clients[SIM_CONTROL_CLIENTS];

        int signal_fd;
        uint64_t next_modem_tick_ms;
};

extern const struct nrf91_port sim_port_ops;

uint64_t sim_now_ms(void);
int sim_new(const SimOptions *opt, Sim **ret);
Sim *sim_free(Sim *s);
static inline void sim_freep(Sim **s) {
        sim_free(*s);
}
int sim_run(Sim *s);

/* Application reboot: drops sockets and downloads, applies a scheduled image, restarts the modem; Ready follows. */
void sim_reboot(Sim *s, const char *why);
/* What a power cycle does to the FOTA store (also at the process's start). */
void sim_power_on(Sim *s);

/* sim-serial.c */
int serial_open(Sim *s);
void serial_close(Sim *s, bool remove_link);
void serial_write(Sim *s, const uint8_t *data, size_t len, unsigned flags);
void serial_vanish(Sim *s, unsigned reappear_after_ms);
int serial_reappear(Sim *s);
void serial_collect(Sim *s, struct pollfd *p, size_t *n, void **tags, void *tag_in, void *tag_out);
void serial_readable(Sim *s);
void serial_flush(Sim *s, uint64_t now_ms);
uint64_t serial_deadline(const Sim *s);
void serial_feed_core(Sim *s);

/* sim-tls.c (socket port operations) */
int sim_sock_open(void *ctx, int handle, uint32_t sec_tag, int peer_verify);
int sim_sock_set_hostname(void *ctx, int handle, const char *hostname);
int sim_sock_connect(void *ctx, int handle, const char *host, uint16_t port);
int sim_sock_send(void *ctx, int handle, const uint8_t *data, size_t len);
void sim_sock_recv_enable(void *ctx, int handle, bool enable);
void sim_sock_close(void *ctx, int handle);
void sim_sockets_close_all(Sim *s);
void sim_sockets_service(Sim *s, uint64_t now_ms);
short sim_socket_events(const Sim *s, int h);
uint64_t sim_sockets_deadline(const Sim *s);

/* sim-https.c */
int sim_download_start(void *ctx, int id, const char *url, uint32_t sec_tag, uint32_t offset);
void sim_download_cancel(void *ctx, int id);
void sim_downloads_cancel_all(Sim *s);
void sim_downloads_service(Sim *s, uint64_t now_ms);
short sim_download_events(const Sim *s, int i);
uint64_t sim_downloads_deadline(const Sim *s);

/* sim-fota.c */
int sim_fota_begin(void *ctx, enum nrf91_image_type type, const char *url, uint32_t total);
int sim_fota_write(void *ctx, const uint8_t *data, size_t len);
int sim_fota_finish(void *ctx);
void sim_fota_abort(void *ctx);
int sim_fota_resume(void *ctx, enum nrf91_image_type type, const char *url, uint32_t *offset);
unsigned sim_fota_ops(void *ctx);
void sim_fota_store_info(void *ctx, struct nrf91_fota_store *ret);
int sim_fota_confirm(void *ctx);
void sim_fota_boot_result(void *ctx, struct nrf91_fota_result *ret);
/*
 * What a reset does to the store: writing stops (a partial image stays),
 * MCUboot reverts a test image that was not confirmed or boots a scheduled
 * application as a test image, the modem applies a scheduled modem image
 * (modem_only: only that).  The outcome goes to *ret.
 */
void sim_fota_reset(Sim *s, bool modem_only, struct nrf91_fota_result *ret);
int sim_app_version_load(Sim *s);
/* The result waits in the state directory for the core's next boot. */
int sim_fota_record_result(Sim *s, const struct nrf91_fota_result *res);

/* sim-control.c */
int control_open(Sim *s);
void control_close(Sim *s);
void control_collect(Sim *s, struct pollfd *p, size_t *n, void **tags);
void control_dispatch(Sim *s, void *tag, short revents);
bool control_is_tag(const Sim *s, void *tag);
/* One command of the control protocol; the reply (one line, with \n) into reply. */
void control_execute(Sim *s, const char *line, char *reply, size_t size);
