/* SPDX-License-Identifier: MIT */
/*
 * The serial link on the UART async API with hardware flow control.
 *
 * Receive: the driver fills a pair of DMA buffers; their bytes go into a
 * ring that the core thread drains.  When the ring cannot take another
 * buffer the driver is given none, reception stops and RTS tells the host
 * to wait; the core thread restarts it once there is room again.
 * Transmit: the core thread copies into a ring and the driver sends from it;
 * a writer waits while the ring is full (the core must not lose output).
 */
#include <errno.h>
#include <string.h>
#include <zephyr/device.h>
#include <zephyr/drivers/uart.h>
#include <zephyr/kernel.h>
#include <zephyr/logging/log.h>
#include <zephyr/sys/ring_buffer.h>

#include "zport.h"

LOG_MODULE_REGISTER(at_uart, LOG_LEVEL_INF);

#define AT_UART DT_CHOSEN(nrf91_at_uart)
#define RX_BUF_SIZE 256
#define RX_TIMEOUT_US 1000

static const struct device *const uart = DEVICE_DT_GET(AT_UART);

RING_BUF_DECLARE(rx_ring, CONFIG_NRF91_AT_UART_RX_RING_SIZE);
RING_BUF_DECLARE(tx_ring, CONFIG_NRF91_AT_UART_TX_RING_SIZE);

static uint8_t rx_bufs[2][RX_BUF_SIZE];
static uint8_t rx_next;         /* which of rx_bufs the driver gets next */
static atomic_t rx_stopped;     /* no buffer given: reception is off */
static atomic_t tx_busy;
static size_t tx_len;           /* bytes of the transfer in flight */
static K_SEM_DEFINE(tx_space, 0, 1);
static K_SEM_DEFINE(tx_idle, 0, 1);

static void tx_start(void)
{
	uint8_t *p;

	if (!atomic_cas(&tx_busy, 0, 1)) {
		return;
	}
	tx_len = ring_buf_get_claim(&tx_ring, &p, CONFIG_NRF91_AT_UART_TX_RING_SIZE);
	if (tx_len == 0) {
		atomic_set(&tx_busy, 0);
		k_sem_give(&tx_idle);
		return;
	}
	if (uart_tx(uart, p, tx_len, SYS_FOREVER_US) != 0) {
		ring_buf_get_finish(&tx_ring, 0);
		atomic_set(&tx_busy, 0);
	}
}

static void uart_cb(const struct device *dev, struct uart_event *evt, void *user_data)
{
	ARG_UNUSED(dev);
	ARG_UNUSED(user_data);

	switch (evt->type) {
	case UART_TX_DONE:
	case UART_TX_ABORTED:
		ring_buf_get_finish(&tx_ring, evt->type == UART_TX_DONE ? tx_len : evt->data.tx.len);
		atomic_set(&tx_busy, 0);
		k_sem_give(&tx_space);
		tx_start();
		break;
	case UART_RX_RDY:
		if (ring_buf_put(&rx_ring, evt->data.rx.buf + evt->data.rx.offset, evt->data.rx.len) !=
		    evt->data.rx.len) {
			/* Cannot happen: a buffer is handed out only when the ring has room for it. */
			LOG_ERR("receive ring overrun");
		}
		zport_post(ZEV_UART_RX, 0, 0);
		break;
	case UART_RX_BUF_REQUEST:
		/* Room for this buffer and the one in flight: else let RTS stop the host. */
		if (ring_buf_space_get(&rx_ring) >= 2 * RX_BUF_SIZE) {
			uart_rx_buf_rsp(uart, rx_bufs[rx_next], RX_BUF_SIZE);
			rx_next ^= 1;
		}
		break;
	case UART_RX_DISABLED:
		atomic_set(&rx_stopped, 1);
		zport_post(ZEV_UART_RX, 0, 0);
		break;
	case UART_RX_BUF_RELEASED:
	case UART_RX_STOPPED:
		break;
	}
}

static int rx_start(void)
{
	int err;

	atomic_set(&rx_stopped, 0);
	rx_next = 1;
	err = uart_rx_enable(uart, rx_bufs[0], RX_BUF_SIZE, RX_TIMEOUT_US);
	if (err && err != -EBUSY) {
		atomic_set(&rx_stopped, 1);
		return err;
	}
	return 0;
}

int uart_link_init(void)
{
	int err;

	if (!device_is_ready(uart)) {
		LOG_ERR("AT UART not ready");
		return -ENODEV;
	}
	err = uart_callback_set(uart, uart_cb, NULL);
	if (err) {
		return err;
	}
	return rx_start();
}

void uart_link_write(const uint8_t *data, size_t len)
{
	while (len > 0) {
		uint32_t n = ring_buf_put(&tx_ring, data, len);

		data += n;
		len -= n;
		tx_start();
		if (len > 0) {
			/* Full: the host is slow or holds CTS.  Wait for the driver. */
			k_sem_take(&tx_space, K_MSEC(100));
		}
	}
}

void uart_link_drain(k_timeout_t timeout)
{
	k_sem_reset(&tx_idle);
	tx_start();
	if (!ring_buf_is_empty(&tx_ring) || atomic_get(&tx_busy)) {
		k_sem_take(&tx_idle, timeout);
	}
}

void uart_link_feed_core(void)
{
	uint8_t *p;
	uint32_t n;

	while (nrf91_core_wants_input(&core) && (n = ring_buf_get_claim(&rx_ring, &p, RX_BUF_SIZE)) > 0) {
		size_t taken = nrf91_core_input(&core, p, n);

		ring_buf_get_finish(&rx_ring, taken);
		if (taken < n) {
			break;
		}
	}
	if (atomic_get(&rx_stopped) && ring_buf_space_get(&rx_ring) >= 2 * RX_BUF_SIZE) {
		(void)rx_start();
	}
}
