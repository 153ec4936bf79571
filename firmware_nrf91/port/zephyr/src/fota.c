/* SPDX-License-Identifier: MIT */
/*
 * The FOTA image store of the device: dfu_target (MCUboot secondary slot,
 * modem delta area, or external flash for a full modem image), and the
 * state that must survive a reset (settings, key "nrf91at/fota"):
 *
 *   - a partial image: its type, size and the SHA-256 of its URL; the bytes
 *     already stored are dfu_target's offset (the MCUboot stream saves its
 *     progress, CONFIG_DFU_TARGET_STREAM_SAVE_PROGRESS; the modem keeps
 *     the delta's offset itself), so a download of the same URL resumes;
 *   - the scheduled image's type, until the boot that applies it;
 *   - "testing": the new application booted as an MCUboot test image and
 *     waits for #XFOTA=9 (boot_write_img_confirmed()); if the device resets
 *     before that, MCUboot swaps the old application back and the next
 *     boot reports #XFOTA: 5,3;
 *   - the last result, for #XFOTAINFO.
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

#include "sha256.h"
#include "zport.h"

LOG_MODULE_REGISTER(at_fota, LOG_LEVEL_INF);

#define SETTINGS_KEY "nrf91at/fota"

struct fota_saved {
	uint8_t pending_type;   /* DFU_TARGET_IMAGE_TYPE_* scheduled, 0 none */
	uint8_t partial_type;   /* nrf91_image_type of a partial image, 0 none */
	uint8_t testing;        /* a test image runs, not confirmed */
	uint8_t last_valid;
	int32_t last_status, last_info;
	uint32_t partial_total;
	uint8_t partial_url[SHA256_DIGEST_SIZE];
};

static struct fota_saved saved;
static uint8_t mcuboot_buf[1024] __aligned(4);
static bool target_open;
static int target_type;
static uint32_t applied_size; /* of the image scheduled or under test, this boot */

static int settings_set(const char *name, size_t len, settings_read_cb read_cb, void *cb_arg)
{
	if (strcmp(name, "fota") == 0 && len == sizeof(saved)) {
		return read_cb(cb_arg, &saved, sizeof(saved)) == sizeof(saved) ? 0 : -EIO;
	}
	return -ENOENT;
}

SETTINGS_STATIC_HANDLER_DEFINE(nrf91at, "nrf91at", NULL, settings_set, NULL, NULL);

static void save(void)
{
	if (settings_save_one(SETTINGS_KEY, &saved, sizeof(saved))) {
		LOG_WRN("FOTA state not saved");
	}
}

static void url_digest(const char *url, uint8_t out[SHA256_DIGEST_SIZE])
{
	struct sha256_ctx h;

	sha256_init(&h);
	sha256_update(&h, (const uint8_t *)url, strlen(url));
	sha256_final(&h, out);
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

unsigned int fota_port_ops(void)
{
	return NRF91_FOTA_OP_APP | NRF91_FOTA_OP_MODEM_DELTA |
	       (IS_ENABLED(CONFIG_DFU_TARGET_FULL_MODEM) ? NRF91_FOTA_OP_MODEM_FULL : 0);
}

/* Opens dfu_target for type; *offset: what it already holds (a resumable image). */
static int target_open_type(enum nrf91_image_type type, uint32_t total, size_t *offset)
{
	int t = dfu_type(type), err;

	if (t < 0) {
		return t;
	}
	if (target_open) {
		(void)dfu_target_done(false);
		target_open = false;
	}
	if (t == DFU_TARGET_IMAGE_TYPE_MCUBOOT) {
		err = dfu_target_mcuboot_set_buf(mcuboot_buf, sizeof(mcuboot_buf));
		if (err) {
			return err;
		}
	}
	/* -EFBIG: larger than the secondary slot or the modem DFU area. */
	err = dfu_target_init(t, 0, total, dfu_cb);
	if (err) {
		LOG_ERR("dfu_target_init(%d, %u): %d", t, (unsigned int)total, err);
		return err;
	}
	target_open = true;
	target_type = t;
	*offset = 0;
	return dfu_target_offset_get(offset);
}

/* Erases a partial image, with its saved progress, and forgets it. */
static void drop_partial(void)
{
	size_t off;

	if (saved.partial_type && !target_open) {
		(void)target_open_type(saved.partial_type, saved.partial_total, &off);
	}
	if (target_open) {
		(void)dfu_target_reset();
		target_open = false;
	}
	if (saved.partial_type) {
		saved.partial_type = 0;
		save();
	}
}

int fota_port_begin(enum nrf91_image_type type, const char *url, uint32_t total)
{
	size_t offset;
	int err;

	drop_partial();
	err = target_open_type(type, total, &offset);
	if (!err && offset > 0) {
		/* Progress of an image nobody asked for any more: start clean. */
		(void)dfu_target_reset();
		target_open = false;
		err = target_open_type(type, total, &offset);
	}
	if (err) {
		return zport_link_errno(err);
	}
	saved.pending_type = 0;
	saved.last_valid = 0;
	saved.partial_type = (uint8_t)type;
	saved.partial_total = total;
	url_digest(url, saved.partial_url);
	save();
	return 0;
}

int fota_port_resume(enum nrf91_image_type type, const char *url, uint32_t *offset)
{
	uint8_t digest[SHA256_DIGEST_SIZE];
	size_t off = 0;

	url_digest(url, digest);
	if (saved.partial_type != type || memcmp(digest, saved.partial_url, sizeof(digest)) != 0 ||
	    target_open_type(type, saved.partial_total, &off) != 0 || off < 32) {
		drop_partial();
		return -NRF91_ENOENT;
	}
	*offset = (uint32_t)off;
	LOG_INF("FOTA: resuming at %u of %u", (unsigned int)off, (unsigned int)saved.partial_total);
	return 0;
}

int fota_port_write(const uint8_t *data, size_t len)
{
	int err = dfu_target_write(data, len);

	return err < 0 ? zport_link_errno(err) : 0;
}

int fota_port_finish(void)
{
	size_t size = 0;
	int err;

	(void)dfu_target_offset_get(&size);
	err = dfu_target_done(true);
	target_open = false;
	if (!err) {
		err = dfu_target_schedule_update(0);
	}
	saved.partial_type = 0;
	if (err) {
		LOG_ERR("FOTA image not scheduled: %d", err);
		save();
		return zport_link_errno(err);
	}
	applied_size = (uint32_t)size;
	saved.pending_type = (uint8_t)target_type;
	save();
	return 0;
}

void fota_port_abort(void)
{
	drop_partial();
}

void fota_port_store_info(struct nrf91_fota_store *ret)
{
	static const uint8_t types[] = {
		[DFU_TARGET_IMAGE_TYPE_MCUBOOT] = NRF91_IMAGE_MCUBOOT,
		[DFU_TARGET_IMAGE_TYPE_MODEM_DELTA] = NRF91_IMAGE_MODEM_DELTA,
		[DFU_TARGET_IMAGE_TYPE_FULL_MODEM] = NRF91_IMAGE_MODEM_FULL,
	};
	size_t off = 0;

	*ret = (struct nrf91_fota_store){
		.stored = NRF91_FOTA_STORED_NONE,
		.last = { .valid = saved.last_valid, .status = saved.last_status, .info = saved.last_info },
	};
	if (saved.testing) {
		ret->stored = NRF91_FOTA_STORED_TESTING;
		ret->type = NRF91_IMAGE_MCUBOOT;
		ret->received = ret->total = applied_size;
	} else if (saved.pending_type && saved.pending_type < ARRAY_SIZE(types)) {
		ret->stored = NRF91_FOTA_STORED_SCHEDULED;
		ret->type = types[saved.pending_type];
		ret->received = ret->total = applied_size;
	} else if (saved.partial_type) {
		/* The offset is dfu_target's: open it (the resume does the same). */
		if (target_open || target_open_type(saved.partial_type, saved.partial_total, &off) == 0) {
			(void)dfu_target_offset_get(&off);
		}
		ret->stored = NRF91_FOTA_STORED_PARTIAL;
		ret->type = saved.partial_type;
		ret->received = (uint32_t)off;
		ret->total = saved.partial_total;
	}
}

int fota_port_confirm(void)
{
	int err;

	if (!saved.testing) {
		return -NRF91_ENOENT;
	}
	err = boot_write_img_confirmed();
	if (err) {
		LOG_ERR("boot_write_img_confirmed: %d", err);
		return zport_link_errno(err);
	}
	saved.testing = 0;
	save();
	LOG_INF("FOTA: test image confirmed");
	return 0;
}

bool fota_port_modem_scheduled(void)
{
	return saved.pending_type == DFU_TARGET_IMAGE_TYPE_MODEM_DELTA ||
	       saved.pending_type == DFU_TARGET_IMAGE_TYPE_FULL_MODEM;
}

static void set_last(const struct nrf91_fota_result *res)
{
	saved.last_valid = res->valid;
	saved.last_status = res->status;
	saved.last_info = res->info;
}

void fota_port_modem_applied(const struct nrf91_fota_result *res)
{
	if (res->valid && fota_port_modem_scheduled()) {
		saved.pending_type = 0;
		set_last(res);
		save();
	}
}

void fota_port_boot_result(struct nrf91_fota_result *ret)
{
	*ret = (struct nrf91_fota_result){ .valid = false };

	if (saved.testing) {
		/*
		 * The test image was not confirmed before this reset: MCUboot
		 * has swapped the old application back, which runs now.
		 */
		saved.testing = 0;
		*ret = (struct nrf91_fota_result){ .valid = true, .status = 3 };
	} else {
		switch (saved.pending_type) {
		case DFU_TARGET_IMAGE_TYPE_MCUBOOT:
			if (!boot_is_img_confirmed()) {
				/* The new image runs as a test image: #XFOTA=9 confirms it. */
				saved.testing = 1;
				*ret = (struct nrf91_fota_result){ .valid = true, .status = 0 };
			} else {
				/* MCUboot did not take it: the old application runs. */
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
	}
	saved.pending_type = 0;
	set_last(ret);
	save();
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
