/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The Zephyr / nRF Connect SDK port of the AT server core.
 *
 * Threads: the core runs on one thread (main.c, "at_core") and is only ever
 * called from there.  UART interrupts, the AT monitor, the socket threads
 * and the downloader threads hand their results over as events on one
 * message queue; bulk data waits in per-object buffers until the core has
 * taken it, which holds the producer back (flow control up to the network).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zephyr/kernel.h>

#include "nrf91.h"

enum zevent_type {
	ZEV_UART_RX,        /* bytes in the UART receive ring */
	ZEV_URC,            /* a modem URC in the URC queue */
	ZEV_SOCK_CONNECTED, /* a = handle, b = result */
	ZEV_SOCK_SENT,      /* a = handle, b = sent or -errno */
	ZEV_SOCK_DATA,      /* a = handle: data in sockets[a].rx */
	ZEV_SOCK_CLOSED,    /* a = handle, b = 0 or -errno */
	ZEV_DL_DATA,        /* a = slot: a fragment waits */
	ZEV_DL_DONE,        /* a = slot, b = 0 or -errno */
	ZEV_REBOOT,         /* the response to #XRESET is out: reboot */
};

struct zevent {
	uint8_t type;
	int8_t a;
	int32_t b;
};

/* main.c */
extern struct nrf91_core core;
void zport_post(enum zevent_type type, int a, int32_t b);
/* Linux errno numbering of the link (port.h) from Zephyr's errno. */
int zport_link_errno(int err);

/* uart.c */
int uart_link_init(void);
void uart_link_write(const uint8_t *data, size_t len);
/* Feeds what the ring holds to the core; keeps what it does not take. */
void uart_link_feed_core(void);
/* Waits until every byte written has left the UART (bounded). */
void uart_link_drain(k_timeout_t timeout);

/* modem.c */
/* nrf_modem_lib_init(), keeping the DFU result of a modem update it applied. */
int modem_port_lib_init(void);
int modem_port_init(void);
int modem_port_at(const char *cmd, size_t len, char *out, size_t out_size);
void modem_port_take_urcs(void);
int modem_port_uuid(char out[NRF91_UUID_STR_LEN + 1]);
/* nrf_modem_lib shutdown + init; the DFU result of a scheduled modem image, if any. */
int modem_port_restart(struct nrf91_fota_result *fota);
/* Result of a modem image the modem applied while the library started. */
void modem_port_dfu_result(struct nrf91_fota_result *ret);

/* sockets.c */
int sockets_init(void);
int zsock_port_open(int handle, uint32_t sec_tag, int peer_verify);
int zsock_port_set_hostname(int handle, const char *hostname);
int zsock_port_connect(int handle, const char *host, uint16_t port);
int zsock_port_send(int handle, const uint8_t *data, size_t len);
void zsock_port_recv_enable(int handle, bool enable);
void zsock_port_close(int handle);
void zsock_port_close_all(void);
void sockets_deliver(int handle);
/* After a refused TLS connect: does plain TCP get through (then TLS refused us)? */
bool tls_refused_by_peer_check(const char *host, uint16_t port);

/* download.c */
int download_port_start(int id, const char *url, uint32_t sec_tag, uint32_t offset);
void download_port_cancel(int id);
void download_port_cancel_all(void);
void download_port_deliver(int slot);
void download_port_done(int slot, int err);

/* fota.c */
int fota_port_init(void);
int fota_port_begin(enum nrf91_image_type type, const char *url, uint32_t total);
int fota_port_write(const uint8_t *data, size_t len);
int fota_port_finish(void);
void fota_port_abort(void);
int fota_port_resume(enum nrf91_image_type type, const char *url, uint32_t *offset);
unsigned int fota_port_ops(void);
void fota_port_store_info(struct nrf91_fota_store *ret);
int fota_port_confirm(void);
void fota_port_boot_result(struct nrf91_fota_result *ret);
/* Before a reboot: nothing to do but note that the scheduled image is expected. */
void fota_port_modem_applied(const struct nrf91_fota_result *res);
bool fota_port_modem_scheduled(void);
int fota_port_app_version(char *out, size_t size);
