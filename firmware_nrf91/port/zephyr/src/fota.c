/* SPDX-License-Identifier: MIT */
/*
 * The FOTA image store of the device: dfu_target (MCUboot secondary slot,
 * modem delta area, or external flash for a full modem image), and the
 * state that must survive the reboot to report #XFOTA: 5,<status>.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zephyr/kernel.h>
#include <zephyr/logging/log.h>
#include <zephyr/settings/settings.h>
#include <zephyr/dfu/mcuboot.h>
#include <dfu/dfu_target.h>
#include <dfu/dfu_target_mcuboot.h>
#include <pm_config.h>

#include "zport.h"

LOG_MODULE_REGISTER(at_fota, LOG_LEVEL_INF);

#define SETTINGS_KEY "nrf91at/fota"

/* Scheduled image type, persisted until the boot that applies it. */
static uint8_t pending_type;
static uint8_t mcuboot_buf[1024] __aligned(4);
static bool target_open;
static int target_type;

static int settings_set(const char *name, size_t len, settings_read_cb read_cb, void *cb_arg)
{
	if (strcmp(name, "fota") == 0 && len == sizeof(pending_type)) {
		return read_cb(cb_arg, &pending_type, sizeof(pending_type)) == sizeof(pending_type) ? 0 : -EIO;
	}
	return -ENOENT;
}

SETTINGS_STATIC_HANDLER_DEFINE(nrf91at, "nrf91at", NULL, settings_set, NULL, NULL);

static void save_pending(uint8_t type)
{
	pending_type = type;
	if (settings_save_one(SETTINGS_KEY, &pending_type, sizeof(pending_type))) {
		LOG_WRN("FOTA state not saved");
	}
}

int fota_port_init(void)
{
	int err = settings_subsys_init();

	if (!err) {
		err = settings_load_subtree("nrf91at");
	}
	return err;
}

static void dfu_cb(enum dfu_target_evt_id evt)
{
	LOG_INF("dfu_target event %d", evt);
}

static int dfu_type(enum nrf91_image_type type)
{
	switch (type) {
	case NRF91_IMAGE_MCUBOOT:
		return DFU_TARGET_IMAGE_TYPE_MCUBOOT;
	case NRF91_IMAGE_MODEM_DELTA:
		return DFU_TARGET_IMAGE_TYPE_MODEM_DELTA;
	case NRF91_IMAGE_MODEM_FULL:
		/* Needs CONFIG_DFU_TARGET_FULL_MODEM and external flash (overlay). */
		return IS_ENABLED(CONFIG_DFU_TARGET_FULL_MODEM) ? DFU_TARGET_IMAGE_TYPE_FULL_MODEM : -ENOTSUP;
	case NRF91_IMAGE_NONE:
		break;
	}
	return -EINVAL;
}

int fota_port_begin(enum nrf91_image_type type, const char *url)
{
	size_t size = 0;
	int t = dfu_type(type), err;

	ARG_UNUSED(url);
	if (t < 0) {
		return zport_link_errno(t);
	}
	if (target_open) {
		(void)dfu_target_reset();
		target_open = false;
	}
	(void)download_port_file_size(NRF91_FOTA_DOWNLOAD_ID, &size);
	if (t == DFU_TARGET_IMAGE_TYPE_MCUBOOT) {
		err = dfu_target_mcuboot_set_buf(mcuboot_buf, sizeof(mcuboot_buf));
		if (err) {
			return zport_link_errno(err);
		}
	}
	/* -EFBIG: larger than the secondary slot or the modem DFU area. */
	err = dfu_target_init(t, 0, size, dfu_cb);
	if (err) {
		LOG_ERR("dfu_target_init(%d, %u): %d", t, (unsigned int)size, err);
		return zport_link_errno(err);
	}
	target_open = true;
	target_type = t;
	return 0;
}

int fota_port_write(const uint8_t *data, size_t len)
{
	int err = dfu_target_write(data, len);

	return err < 0 ? zport_link_errno(err) : 0;
}

int fota_port_finish(void)
{
	int err = dfu_target_done(true);

	target_open = false;
	if (!err) {
		err = dfu_target_schedule_update(0);
	}
	if (err) {
		LOG_ERR("FOTA image not scheduled: %d", err);
		return zport_link_errno(err);
	}
	save_pending((uint8_t)target_type);
	return 0;
}

void fota_port_abort(void)
{
	if (target_open) {
		(void)dfu_target_done(false);
		(void)dfu_target_reset();
		target_open = false;
	}
}

bool fota_port_modem_scheduled(void)
{
	return pending_type == DFU_TARGET_IMAGE_TYPE_MODEM_DELTA || pending_type == DFU_TARGET_IMAGE_TYPE_FULL_MODEM;
}

void fota_port_modem_applied(const struct nrf91_fota_result *res)
{
	if (res->valid && fota_port_modem_scheduled()) {
		save_pending(0);
	}
}

void fota_port_boot_result(struct nrf91_fota_result *ret)
{
	*ret = (struct nrf91_fota_result){ .valid = false };

	switch (pending_type) {
	case DFU_TARGET_IMAGE_TYPE_MCUBOOT:
		if (!boot_is_img_confirmed()) {
			/* Running the new image in test mode: keep it. */
			boot_write_img_confirmed();
			*ret = (struct nrf91_fota_result){ .valid = true, .status = 0 };
		} else {
			/* MCUboot did not take it, or went back to the old image. */
			*ret = (struct nrf91_fota_result){ .valid = true, .status = 3 };
		}
		break;
	case DFU_TARGET_IMAGE_TYPE_MODEM_DELTA:
	case DFU_TARGET_IMAGE_TYPE_FULL_MODEM:
		modem_port_dfu_result(ret);
		break;
	default:
		return;
	}
	save_pending(0);
}

int fota_port_app_version(char *out, size_t size)
{
	struct mcuboot_img_header h;
	int err = boot_read_bank_header(PM_MCUBOOT_PRIMARY_ID, &h, sizeof(h));

	if (err || h.mcuboot_version != 1) {
		return -ENOENT;
	}
	if (h.h.v1.sem_ver.build_num) {
		snprintf(out, size, "%u.%u.%u+%u", h.h.v1.sem_ver.major, h.h.v1.sem_ver.minor,
			 h.h.v1.sem_ver.revision, h.h.v1.sem_ver.build_num);
	} else {
		snprintf(out, size, "%u.%u.%u", h.h.v1.sem_ver.major, h.h.v1.sem_ver.minor,
			 h.h.v1.sem_ver.revision);
	}
	return 0;
}
