/* SPDX-License-Identifier: MIT */
/*
 * The modem side: AT pass-through with nrf_modem_at_cmd(), modem URCs from
 * the AT monitor, the device UUID, and modem restarts that apply a
 * scheduled modem firmware image.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zephyr/kernel.h>
#include <zephyr/logging/log.h>
#include <modem/at_monitor.h>
#include <modem/modem_jwt.h>
#include <modem/nrf_modem_lib.h>
#include <nrf_modem.h>
#include <nrf_modem_at.h>

#include "zport.h"

LOG_MODULE_REGISTER(at_modem, LOG_LEVEL_INF);

/*
 * The longest URC passed through is %NCELLMEAS with 17 neighbours: about 90
 * bytes for the serving cell, up to 26 per neighbour and the closing
 * timing-advance time, some 560 bytes.
 */
#define URC_MAX 640

/* URCs wait here until the core thread takes them. */
K_MSGQ_DEFINE(urcs, URC_MAX, 8, 1);

static char uuid[NRF91_UUID_STR_LEN + 1];
static char raw[NRF91_RESPONSE_MAX];
static int lib_init_result;

static bool dfu_result_valid;
static int dfu_result;

static void on_urc(const char *notif);
AT_MONITOR(at_server_urcs, ANY, on_urc);

static void on_urc(const char *notif)
{
	/* Static: the AT monitor's work item runs one at a time, on a small stack. */
	static char line[URC_MAX];
	size_t n = strcspn(notif, "\r\n");

	/* The monitor hands over "<urc>\r\n": keep the line, frame it in the core. */
	if (n >= sizeof(line)) {
		n = sizeof(line) - 1;
	}
	memcpy(line, notif, n);
	line[n] = '\0';
	if (k_msgq_put(&urcs, line, K_NO_WAIT) != 0) {
		LOG_WRN("URC dropped: %s", line);
		return;
	}
	zport_post(ZEV_URC, 0, 0);
}

void modem_port_take_urcs(void)
{
	static char line[URC_MAX]; /* the core thread only */

	while (k_msgq_get(&urcs, line, K_NO_WAIT) == 0) {
		nrf91_core_urc(&core, line);
	}
}

#if defined(NRF_MODEM_LIB_ON_DFU_RES)
/* NCS >= 2.8 reports the result of a modem update through this hook. */
static void on_dfu_res(int res, void *ctx);
NRF_MODEM_LIB_ON_DFU_RES(at_server_dfu, on_dfu_res, NULL);

static void on_dfu_res(int res, void *ctx)
{
	ARG_UNUSED(ctx);
	dfu_result = res;
	dfu_result_valid = true;
}
#endif

static void note_init_result(int r)
{
	lib_init_result = r;
	/* Older NCS: nrf_modem_lib_init() returns the NRF_MODEM_DFU_RESULT_* itself. */
	if (r > 0) {
		dfu_result = r;
		dfu_result_valid = true;
	}
}

int modem_port_lib_init(void)
{
	int r = nrf_modem_lib_init();

	note_init_result(r);
	return r < 0 ? r : 0;
}

static void fill_dfu_result(struct nrf91_fota_result *ret)
{
	*ret = (struct nrf91_fota_result){ .valid = false };
	if (!dfu_result_valid) {
		return;
	}
	dfu_result_valid = false;
	if (dfu_result == NRF_MODEM_DFU_RESULT_OK) {
		*ret = (struct nrf91_fota_result){ .valid = true, .status = 0 };
	} else {
		/* 71303169.. (0x4400001..): internal, hardware, auth, UUID error, voltage low */
		*ret = (struct nrf91_fota_result){ .valid = true, .status = 1, .info = dfu_result };
	}
}

void modem_port_dfu_result(struct nrf91_fota_result *ret)
{
	fill_dfu_result(ret);
}

int modem_port_init(void)
{
	struct nrf_device_uuid dev;
	int err = modem_jwt_get_uuids(&dev, NULL);

	/* %JWT needs mfw >= 1.3.0; #XUUID answers ERROR without it. */
	if (err) {
		LOG_WRN("Device UUID unavailable: %d", err);
		return 0;
	}
	strncpy(uuid, dev.str, sizeof(uuid) - 1);
	return 0;
}

int modem_port_uuid(char out[NRF91_UUID_STR_LEN + 1])
{
	if (strlen(uuid) != NRF91_UUID_STR_LEN) {
		return -NRF91_EIO;
	}
	memcpy(out, uuid, sizeof(uuid));
	return 0;
}

/* Appends "\r\n<line>\r\n" to out; false when it does not fit. */
static bool frame_line(char *out, size_t out_size, size_t *len, const char *line, size_t n)
{
	if (*len + n + 4 > out_size) {
		return false;
	}
	memcpy(out + *len, "\r\n", 2);
	memcpy(out + *len + 2, line, n);
	memcpy(out + *len + 2 + n, "\r\n", 2);
	*len += n + 4;
	return true;
}

/*
 * nrf_modem_at_cmd() gives the modem's raw response, "<line>\r\n...OK\r\n".
 * The link frames every line "\r\n<line>\r\n"; a CR or LF inside double
 * quotes (a %CMNG read of a PEM) is content, not a line end.
 */
static int reframe(const char *in, char *out, size_t out_size)
{
	size_t len = 0, start = 0, i;
	bool quoted = false;

	for (i = 0; in[i]; i++) {
		if (in[i] == '"') {
			quoted = !quoted;
		} else if (!quoted && (in[i] == '\r' || in[i] == '\n')) {
			if (i > start && !frame_line(out, out_size, &len, in + start, i - start)) {
				return -NRF91_ENOBUFS;
			}
			start = i + 1;
		}
	}
	if (i > start && !frame_line(out, out_size, &len, in + start, i - start)) {
		return -NRF91_ENOBUFS;
	}
	return (int)len;
}

int modem_port_at(const char *cmd, size_t len, char *out, size_t out_size)
{
	static char command[NRF91_AT_MAX_CMD_LEN + 1];
	int r, n;

	/* nrf_modem_at_cmd() takes a format: pass the command as a "%s" argument. */
	memcpy(command, cmd, len);
	command[len] = '\0';
	raw[0] = '\0';
	r = nrf_modem_at_cmd(raw, sizeof(raw), "%s", command);
	if (r < 0) {
		return zport_link_errno(r);
	}
	if (r == 0) {
		return reframe(raw, out, out_size);
	}

	/* ERROR / +CME ERROR / +CMS ERROR: the final result from the code. */
	char final[32];

	switch (nrf_modem_at_err_type(r)) {
	case NRF_MODEM_AT_CME_ERROR:
		n = snprintf(final, sizeof(final), "+CME ERROR: %d", nrf_modem_at_err(r));
		break;
	case NRF_MODEM_AT_CMS_ERROR:
		n = snprintf(final, sizeof(final), "+CMS ERROR: %d", nrf_modem_at_err(r));
		break;
	default:
		n = snprintf(final, sizeof(final), "ERROR");
		break;
	}
	size_t out_len = 0;

	if (!frame_line(out, out_size, &out_len, final, (size_t)n)) {
		return -NRF91_ENOBUFS;
	}
	return (int)out_len;
}

int modem_port_restart(struct nrf91_fota_result *fota)
{
	int r;

	LOG_INF("#XMODEMRESET: restarting the modem");
	r = nrf_modem_lib_shutdown();
	if (r) {
		return zport_link_errno(r);
	}
	r = nrf_modem_lib_init();
	note_init_result(r);
	fill_dfu_result(fota);
	fota_port_modem_applied(fota);
	return r < 0 ? zport_link_errno(r) : 0;
}
