/* SPDX-License-Identifier: MIT */
/*
 * The AT server core on nRF Connect SDK: port operations (port.h) and the
 * thread that owns the core.
 */
#include <errno.h>
#include <string.h>
#include <zephyr/kernel.h>
#include <zephyr/logging/log.h>
#include <zephyr/random/random.h>
#include <zephyr/sys/reboot.h>
#include <modem/nrf_modem_lib.h>
#include <ncs_version.h>

#include "zport.h"

LOG_MODULE_REGISTER(at_server, LOG_LEVEL_INF);

struct nrf91_core core;

K_MSGQ_DEFINE(zevents, sizeof(struct zevent), 64, 4);

void zport_post(enum zevent_type type, int a, int32_t b)
{
	struct zevent ev = { .type = (uint8_t)type, .a = (int8_t)a, .b = b };

	/* From ISRs too: never wait.  A full queue loses only wake-ups of kinds
	 * that are re-checked (UART data, URCs); data events wait in their
	 * producers' buffers and are posted again by them.
	 */
	if (k_msgq_put(&zevents, &ev, K_NO_WAIT) != 0) {
		LOG_WRN("event queue full, event %d dropped", type);
	}
}

int zport_link_errno(int err)
{
	int e = err < 0 ? -err : err;

	switch (e) {
	case 0:
		return 0;
	case ENOENT: return -NRF91_ENOENT;
	case EIO: return -NRF91_EIO;
	case EBADF: return -NRF91_EBADF;
	case EAGAIN: return -NRF91_EAGAIN;
	case ENOMEM: return -NRF91_ENOMEM;
	case EACCES: return -NRF91_EACCES;
	case EBUSY: return -NRF91_EBUSY;
	case EINVAL: return -NRF91_EINVAL;
	case EMFILE: return -NRF91_EMFILE;
	case EFBIG: return -NRF91_EFBIG;
	case ENOSPC: return -NRF91_ENOSPC;
	case ERANGE: return -NRF91_ERANGE;
	case EBADMSG: return -NRF91_EBADMSG;
	case EMSGSIZE: return -NRF91_EMSGSIZE;
	case ENETDOWN: return -NRF91_ENETDOWN;
	case ENETUNREACH: return -NRF91_ENETUNREACH;
	case ECONNABORTED: return -NRF91_ECONNABORTED;
	case ECONNRESET: return -NRF91_ECONNRESET;
	case ENOBUFS: return -NRF91_ENOBUFS;
	case EISCONN: return -NRF91_EISCONN;
	case ENOTCONN: return -NRF91_ENOTCONN;
	case ETIMEDOUT: return -NRF91_ETIMEDOUT;
	case ECONNREFUSED: return -NRF91_ECONNREFUSED;
	case EHOSTUNREACH: return -NRF91_EHOSTUNREACH;
	case EHOSTDOWN: return -NRF91_EHOSTUNREACH;
	case EALREADY: return -NRF91_EALREADY;
	case EINPROGRESS: return -NRF91_EINPROGRESS;
	case ECANCELED: return -NRF91_ECANCELED;
#ifdef EKEYEXPIRED
	case EKEYEXPIRED: return -NRF91_EACCES; /* the peer certificate expired */
#endif
#ifdef EKEYREJECTED
	case EKEYREJECTED: return -NRF91_EACCES;
#endif
#ifdef EKEYREVOKED
	case EKEYREVOKED: return -NRF91_EACCES;
#endif
#ifdef ENOKEY
	case ENOKEY: return -NRF91_EACCES; /* no credential in the security tag */
#endif
	default:
		return -NRF91_EIO;
	}
}

/* ---- port operations ----------------------------------------------------- */

static void p_serial_write(void *ctx, const uint8_t *data, size_t len, unsigned int flags)
{
	ARG_UNUSED(ctx);
	ARG_UNUSED(flags);
	uart_link_write(data, len);
}

static uint64_t p_uptime_ms(void *ctx)
{
	ARG_UNUSED(ctx);
	return (uint64_t)k_uptime_get();
}

static int p_random(void *ctx, void *buf, size_t len)
{
	ARG_UNUSED(ctx);
	sys_rand_get(buf, len);
	return 0;
}

static int p_modem_at(void *ctx, const char *cmd, size_t len, char *out, size_t out_size)
{
	ARG_UNUSED(ctx);
	return modem_port_at(cmd, len, out, out_size);
}

static int p_device_uuid(void *ctx, char out[NRF91_UUID_STR_LEN + 1])
{
	ARG_UNUSED(ctx);
	return modem_port_uuid(out);
}

static int p_versions(void *ctx, char app[NRF91_VERSION_MAX], char sdk[NRF91_VERSION_MAX])
{
	ARG_UNUSED(ctx);
	if (fota_port_app_version(app, NRF91_VERSION_MAX) < 0) {
		strncpy(app, CONFIG_NRF91_AT_APP_VERSION, NRF91_VERSION_MAX - 1);
		app[NRF91_VERSION_MAX - 1] = '\0';
	}
	strncpy(sdk, NCS_VERSION_STRING, NRF91_VERSION_MAX - 1);
	sdk[NRF91_VERSION_MAX - 1] = '\0';
	return 0;
}

static int p_sock_open(void *ctx, int h, uint32_t sec_tag, int peer_verify)
{
	ARG_UNUSED(ctx);
	return zsock_port_open(h, sec_tag, peer_verify);
}

static int p_sock_set_hostname(void *ctx, int h, const char *hostname)
{
	ARG_UNUSED(ctx);
	return zsock_port_set_hostname(h, hostname);
}

static int p_sock_connect(void *ctx, int h, const char *host, uint16_t port)
{
	ARG_UNUSED(ctx);
	return zsock_port_connect(h, host, port);
}

static int p_sock_send(void *ctx, int h, const uint8_t *data, size_t len)
{
	ARG_UNUSED(ctx);
	return zsock_port_send(h, data, len);
}

static void p_sock_recv_enable(void *ctx, int h, bool enable)
{
	ARG_UNUSED(ctx);
	zsock_port_recv_enable(h, enable);
}

static void p_sock_close(void *ctx, int h)
{
	ARG_UNUSED(ctx);
	zsock_port_close(h);
}

static int p_download_start(void *ctx, int id, const char *url, uint32_t sec_tag, uint32_t offset)
{
	ARG_UNUSED(ctx);
	return download_port_start(id, url, sec_tag, offset);
}

static void p_download_cancel(void *ctx, int id)
{
	ARG_UNUSED(ctx);
	download_port_cancel(id);
}

static int p_fota_begin(void *ctx, enum nrf91_image_type type, const char *url, uint32_t total)
{
	ARG_UNUSED(ctx);
	return fota_port_begin(type, url, total);
}

static int p_fota_write(void *ctx, const uint8_t *data, size_t len)
{
	ARG_UNUSED(ctx);
	return fota_port_write(data, len);
}

static int p_fota_finish(void *ctx)
{
	ARG_UNUSED(ctx);
	return fota_port_finish();
}

static void p_fota_abort(void *ctx)
{
	ARG_UNUSED(ctx);
	fota_port_abort();
}

static int p_fota_resume(void *ctx, enum nrf91_image_type type, const char *url, uint32_t *offset)
{
	ARG_UNUSED(ctx);
	return fota_port_resume(type, url, offset);
}

static unsigned int p_fota_ops(void *ctx)
{
	ARG_UNUSED(ctx);
	return fota_port_ops();
}

static void p_fota_store_info(void *ctx, struct nrf91_fota_store *ret)
{
	ARG_UNUSED(ctx);
	fota_port_store_info(ret);
}

static int p_fota_confirm(void *ctx)
{
	ARG_UNUSED(ctx);
	return fota_port_confirm();
}

static void p_fota_boot_result(void *ctx, struct nrf91_fota_result *ret)
{
	ARG_UNUSED(ctx);
	fota_port_boot_result(ret);
}

static void p_reset(void *ctx)
{
	ARG_UNUSED(ctx);
	/* "OK" is in the transmit ring: reboot once it has left, from the loop. */
	zport_post(ZEV_REBOOT, 0, 0);
}

static int p_modem_reset(void *ctx, struct nrf91_fota_result *fota)
{
	ARG_UNUSED(ctx);
	zsock_port_close_all();
	download_port_cancel_all();
	return modem_port_restart(fota);
}

static const struct nrf91_port zephyr_port = {
	.serial_write = p_serial_write,
	.uptime_ms = p_uptime_ms,
	.random = p_random,
	.modem_at = p_modem_at,
	.device_uuid = p_device_uuid,
	.versions = p_versions,
	.sock_open = p_sock_open,
	.sock_set_hostname = p_sock_set_hostname,
	.sock_connect = p_sock_connect,
	.sock_send = p_sock_send,
	.sock_recv_enable = p_sock_recv_enable,
	.sock_close = p_sock_close,
	.download_start = p_download_start,
	.download_cancel = p_download_cancel,
	.fota_begin = p_fota_begin,
	.fota_write = p_fota_write,
	.fota_finish = p_fota_finish,
	.fota_abort = p_fota_abort,
	.fota_resume = p_fota_resume,
	.fota_ops = p_fota_ops,
	.fota_store_info = p_fota_store_info,
	.fota_confirm = p_fota_confirm,
	.fota_boot_result = p_fota_boot_result,
	.reset = p_reset,
	.modem_reset = p_modem_reset,
};

/* ---- the core thread ------------------------------------------------------- */

static void handle(const struct zevent *ev)
{
	switch ((enum zevent_type)ev->type) {
	case ZEV_UART_RX:
		uart_link_feed_core();
		break;
	case ZEV_URC:
		modem_port_take_urcs();
		break;
	case ZEV_SOCK_CONNECTED:
		nrf91_core_sock_connected(&core, ev->a, ev->b);
		break;
	case ZEV_SOCK_SENT:
		nrf91_core_sock_sent(&core, ev->a, ev->b);
		break;
	case ZEV_SOCK_DATA:
		sockets_deliver(ev->a);
		break;
	case ZEV_SOCK_CLOSED:
		nrf91_core_sock_closed(&core, ev->a, ev->b);
		break;
	case ZEV_DL_DATA:
		download_port_deliver(ev->a);
		break;
	case ZEV_DL_DONE:
		download_port_done(ev->a, ev->b);
		break;
	case ZEV_REBOOT:
		LOG_INF("#XRESET: rebooting");
		zsock_port_close_all();
		download_port_cancel_all();
		uart_link_drain(K_MSEC(500));
		/* MCUboot swaps a scheduled image; the modem applies its own at init. */
		sys_reboot(SYS_REBOOT_COLD);
		break;
	}
}

static void core_thread(void *p1, void *p2, void *p3)
{
	ARG_UNUSED(p1);
	ARG_UNUSED(p2);
	ARG_UNUSED(p3);

	nrf91_core_init(&core, &zephyr_port, NULL);
	nrf91_core_boot(&core);

	for (;;) {
		uint64_t due = nrf91_core_next_timeout(&core);
		int64_t now = k_uptime_get();
		k_timeout_t wait = due == UINT64_MAX ? K_FOREVER
			: K_MSEC(due > (uint64_t)now ? due - (uint64_t)now : 0);
		struct zevent ev;

		if (k_msgq_get(&zevents, &ev, wait) == 0) {
			handle(&ev);
		}
		nrf91_core_tick(&core);
		/* Input held back while a command waited may go on now. */
		uart_link_feed_core();
	}
}

K_THREAD_STACK_DEFINE(core_stack, CONFIG_NRF91_AT_CORE_STACK_SIZE);
static struct k_thread core_thread_data;

int main(void)
{
	int err;

	/* Also records the result of a modem firmware update applied now. */
	err = modem_port_lib_init();
	if (err < 0) {
		LOG_ERR("Modem library init failed: %d", err);
		return err;
	}
	err = fota_port_init();
	if (err) {
		LOG_WRN("FOTA state unavailable: %d", err);
	}
	err = modem_port_init();
	if (!err) {
		err = sockets_init();
	}
	if (!err) {
		err = uart_link_init();
	}
	if (err) {
		LOG_ERR("Init failed: %d", err);
		return err;
	}
	k_thread_create(&core_thread_data, core_stack, K_THREAD_STACK_SIZEOF(core_stack), core_thread,
			NULL, NULL, NULL, CONFIG_NRF91_AT_CORE_PRIORITY, 0, K_NO_WAIT);
	k_thread_name_set(&core_thread_data, "at_core");
	return 0;
}
