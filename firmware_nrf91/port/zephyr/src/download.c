/* SPDX-License-Identifier: MIT */
/*
 * #XDOWNLOAD and #XFOTA transfers with the SDK's downloader library: HTTPS
 * with the security tag's CA, peer verification required and the URL's
 * host name checked (the downloader sets TLS_PEER_VERIFY_REQUIRED,
 * TLS_SEC_TAG_LIST and TLS_HOSTNAME).
 *
 * One downloader instance per transfer slot.  Each fragment is handed to
 * the core thread and the downloader thread waits until the core has
 * written it to the host, so a slow serial link slows the download down
 * instead of filling memory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zephyr/kernel.h>
#include <zephyr/logging/log.h>
#include <net/downloader.h>

#include "zport.h"

LOG_MODULE_REGISTER(at_dl, LOG_LEVEL_INF);

#define SLOTS (NRF91_MAX_DOWNLOADS + 1)
#define DL_BUF_SIZE 2304 /* one 2 KiB TLS record of the modem plus HTTP headers */
#define RECONNECTS_MAX 3

struct slot {
	struct downloader dl;
	char buf[DL_BUF_SIZE];
	int sec_tag;
	struct downloader_host_cfg host_cfg;
	char host[NRF91_HOSTNAME_MAX + 1];
	uint16_t port;
	/* core thread */
	bool active;
	int id;
	uint32_t offset;
	bool length_told;
	/* shared */
	atomic_t busy;      /* the downloader instance runs a transfer */
	atomic_t cancelled;
	const uint8_t *frag;
	size_t frag_len;
	struct k_sem consumed;
	int reconnects;
};

static struct slot slots[SLOTS];

static void check_tls_refusal(struct slot *s, int *err)
{
	/* The modem gives ECONNREFUSED for a refused handshake as for a closed port. */
	if (*err == -ECONNREFUSED && tls_refused_by_peer_check(s->host, s->port)) {
		*err = -EACCES;
	}
}

static int on_event(struct slot *s, const struct downloader_evt *evt)
{
	int err;

	switch (evt->id) {
	case DOWNLOADER_EVT_FRAGMENT:
		if (atomic_get(&s->cancelled)) {
			return 1;
		}
		s->frag = evt->fragment.buf;
		s->frag_len = evt->fragment.len;
		zport_post(ZEV_DL_DATA, s - slots, 0);
		k_sem_take(&s->consumed, K_FOREVER);
		return atomic_get(&s->cancelled) ? 1 : 0;
	case DOWNLOADER_EVT_ERROR:
		err = evt->error;
		if (err == -ECONNRESET && s->reconnects++ < RECONNECTS_MAX && !atomic_get(&s->cancelled)) {
			return 0; /* the downloader reconnects and resumes */
		}
		check_tls_refusal(s, &err);
		atomic_set(&s->busy, 0);
		zport_post(ZEV_DL_DONE, s - slots, zport_link_errno(err));
		return 1;
	case DOWNLOADER_EVT_DONE:
		atomic_set(&s->busy, 0);
		zport_post(ZEV_DL_DONE, s - slots, 0);
		return 0;
	case DOWNLOADER_EVT_STOPPED:
	case DOWNLOADER_EVT_DEINITIALIZED:
		atomic_set(&s->busy, 0);
		return 0;
	}
	return 0;
}

/* The downloader callback carries no context: one trampoline per slot. */
static int cb0(const struct downloader_evt *evt) { return on_event(&slots[0], evt); }
static int cb1(const struct downloader_evt *evt) { return on_event(&slots[1], evt); }
static int cb2(const struct downloader_evt *evt) { return on_event(&slots[2], evt); }
static downloader_callback_t const callbacks[SLOTS] = { cb0, cb1, cb2 };

static int slots_init(void)
{
	static bool done;

	if (done) {
		return 0;
	}
	for (int i = 0; i < SLOTS; i++) {
		struct downloader_cfg cfg = {
			.callback = callbacks[i],
			.buf = slots[i].buf,
			.buf_size = sizeof(slots[i].buf),
		};
		int err;

		k_sem_init(&slots[i].consumed, 0, 1);
		err = downloader_init(&slots[i].dl, &cfg);
		if (err) {
			return err;
		}
	}
	done = true;
	return 0;
}

static struct slot *find(int id)
{
	for (int i = 0; i < SLOTS; i++) {
		if (slots[i].active && slots[i].id == id) {
			return &slots[i];
		}
	}
	return NULL;
}

/* host[:port] of an https URL, for the TLS refusal check. */
static void url_host(const char *url, char *host, size_t size, uint16_t *port)
{
	const char *p = url + strlen("https://");
	size_t n = strcspn(p, ":/?#");

	if (n >= size) {
		n = size - 1;
	}
	memcpy(host, p, n);
	host[n] = '\0';
	*port = p[n] == ':' ? (uint16_t)strtoul(p + n + 1, NULL, 10) : 443;
}

int download_port_start(int id, const char *url, uint32_t sec_tag, uint32_t offset)
{
	struct slot *s = NULL;
	int err = slots_init();

	if (err) {
		return zport_link_errno(err);
	}
	for (int i = 0; i < SLOTS; i++) {
		if (!slots[i].active && !atomic_get(&slots[i].busy)) {
			s = &slots[i];
			break;
		}
	}
	if (!s) {
		return -NRF91_EBUSY;
	}
	s->sec_tag = (int)sec_tag;
	s->host_cfg = (struct downloader_host_cfg){
		.sec_tag_list = &s->sec_tag,
		.sec_tag_count = 1,
		.family = 0, /* IPv6 first, then IPv4 */
	};
	url_host(url, s->host, sizeof(s->host), &s->port);
	atomic_set(&s->cancelled, 0);
	atomic_set(&s->busy, 1);
	k_sem_reset(&s->consumed);
	s->frag = NULL;
	s->reconnects = 0;
	s->length_told = false;
	s->offset = offset;
	err = downloader_get(&s->dl, &s->host_cfg, url, offset);
	if (err) {
		atomic_set(&s->busy, 0);
		return zport_link_errno(err);
	}
	s->active = true;
	s->id = id;
	LOG_INF("download %d: %s from %u", id, url, offset);
	return 0;
}

void download_port_cancel(int id)
{
	struct slot *s = find(id);

	if (!s) {
		return;
	}
	s->active = false;
	atomic_set(&s->cancelled, 1);
	(void)downloader_cancel(&s->dl);
	/* A fragment may be waiting for the core: let its thread go. */
	k_sem_give(&s->consumed);
}

void download_port_cancel_all(void)
{
	for (int i = 0; i < SLOTS; i++) {
		if (slots[i].active) {
			download_port_cancel(slots[i].id);
		}
	}
}

void download_port_deliver(int i)
{
	struct slot *s = &slots[i];
	int id = s->id;

	if (!s->active || atomic_get(&s->cancelled) || !s->frag) {
		k_sem_give(&s->consumed);
		return;
	}
	if (!s->length_told) {
		size_t size;

		s->length_told = true;
		if (downloader_file_size_get(&s->dl, &size) == 0 && size >= s->offset) {
			nrf91_core_download_length(&core, id, size - s->offset);
		}
	}
	if (nrf91_core_download_data(&core, id, s->frag, s->frag_len) == -NRF91_EAGAIN) {
		zport_post(ZEV_DL_DATA, i, 0);
		return;
	}
	s->frag = NULL;
	k_sem_give(&s->consumed);
}

void download_port_done(int i, int err)
{
	struct slot *s = &slots[i];

	if (!s->active) {
		return; /* cancelled: the core does not expect an end */
	}
	s->active = false;
	nrf91_core_download_done(&core, s->id, err);
}
