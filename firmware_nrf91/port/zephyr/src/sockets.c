/* SPDX-License-Identifier: MIT */
/*
 * #XSSOCKET sockets as Zephyr sockets offloaded to the modem:
 * IPPROTO_TLS_1_2 with TLS_SEC_TAG_LIST (the credentials of the tag),
 * TLS_PEER_VERIFY and TLS_HOSTNAME.
 *
 * Blocking calls (resolve + connect + handshake, send) run on a work queue
 * of their own; a receive thread polls the sockets whose data the host
 * wants.  Both report to the core thread through events, so the AT link
 * stays responsive while a socket connects or receives.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zephyr/kernel.h>
#include <zephyr/logging/log.h>
#include <zephyr/net/socket.h>
#include <zephyr/net/tls_credentials.h>

#include "zport.h"

LOG_MODULE_REGISTER(at_sock, LOG_LEVEL_INF);

struct zsocket {
	/* Set by the core thread; read by the worker while it runs a job. */
	bool open;
	uint32_t generation;
	sec_tag_t sec_tag;
	int peer_verify;
	char hostname[NRF91_HOSTNAME_MAX + 1];
	char host[NRF91_HOSTNAME_MAX + 1];
	uint16_t port;
	/* The modem socket; -1 while none.  Guarded by lock. */
	int fd;
	bool connected;
	bool recv_enabled;
	/* Receive handover: rx_len > 0 until the core took the data. */
	uint8_t rx[NRF91_RECV_MAX];
	size_t rx_len;
	/* Send job. */
	const uint8_t *send_data;
	size_t send_len;
	struct k_work connect_work;
	struct k_work send_work;
};

static struct zsocket sockets[NRF91_MAX_SOCKETS];
static K_MUTEX_DEFINE(lock);

static K_THREAD_STACK_DEFINE(worker_stack, CONFIG_NRF91_AT_SOCKET_STACK_SIZE);
static struct k_work_q worker;

static bool is_ip_address(const char *host)
{
	struct sockaddr sa;

	return zsock_inet_pton(AF_INET, host, &sa) == 1 || zsock_inet_pton(AF_INET6, host, &sa) == 1;
}

/* A TCP connection without TLS to the same peer: if it gets through, the TLS handshake was refused. */
bool tls_refused_by_peer_check(const char *host, uint16_t port)
{
	struct zsock_addrinfo hints = { .ai_socktype = SOCK_STREAM };
	struct zsock_addrinfo *res = NULL;
	char service[8];
	bool reached = false;

	snprintf(service, sizeof(service), "%u", port);
	if (zsock_getaddrinfo(host, service, &hints, &res) != 0) {
		return false;
	}
	for (struct zsock_addrinfo *a = res; a && !reached; a = a->ai_next) {
		int fd = zsock_socket(a->ai_family, SOCK_STREAM, IPPROTO_TCP);

		if (fd < 0) {
			continue;
		}
		reached = zsock_connect(fd, a->ai_addr, a->ai_addrlen) == 0;
		zsock_close(fd);
	}
	zsock_freeaddrinfo(res);
	return reached;
}

static int tls_setup(int fd, struct zsocket *k)
{
	sec_tag_t tags[1] = { k->sec_tag };

	if (zsock_setsockopt(fd, SOL_TLS, TLS_SEC_TAG_LIST, tags, sizeof(tags)) ||
	    zsock_setsockopt(fd, SOL_TLS, TLS_PEER_VERIFY, &k->peer_verify, sizeof(k->peer_verify))) {
		return -errno;
	}
	/* SNI and the certificate name check, for names only (an address is no name). */
	if (k->hostname[0] && !is_ip_address(k->hostname) &&
	    zsock_setsockopt(fd, SOL_TLS, TLS_HOSTNAME, k->hostname, strlen(k->hostname))) {
		return -errno;
	}
	return 0;
}

static void connect_job(struct k_work *work)
{
	struct zsocket *k = CONTAINER_OF(work, struct zsocket, connect_work);
	int h = k - sockets;
	struct zsock_addrinfo hints = { .ai_socktype = SOCK_STREAM };
	struct zsock_addrinfo *res = NULL;
	struct zsock_timeval tv = { .tv_sec = CONFIG_NRF91_AT_CONNECT_TIMEOUT_S };
	char service[8];
	int err = -EHOSTUNREACH, fd = -1;

	snprintf(service, sizeof(service), "%u", k->port);
	if (zsock_getaddrinfo(k->host, service, &hints, &res) != 0) {
		zport_post(ZEV_SOCK_CONNECTED, h, -NRF91_EHOSTUNREACH);
		return;
	}
	for (struct zsock_addrinfo *a = res; a; a = a->ai_next) {
		fd = zsock_socket(a->ai_family, SOCK_STREAM, IPPROTO_TLS_1_2);
		if (fd < 0) {
			err = -errno;
			continue;
		}
		(void)zsock_setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		err = tls_setup(fd, k);
		if (!err && zsock_connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
			err = -errno;
		}
		if (!err) {
			break;
		}
		zsock_close(fd);
		fd = -1;
	}
	zsock_freeaddrinfo(res);

	if (err == -ECONNREFUSED && k->peer_verify > 0 && tls_refused_by_peer_check(k->host, k->port)) {
		/* TCP gets through, TLS does not: the modem refused the peer's certificate. */
		err = -EACCES;
	}

	k_mutex_lock(&lock, K_FOREVER);
	if (!k->open) {
		/* Closed meanwhile (#XMODEMRESET): nobody waits for it. */
		if (fd >= 0) {
			zsock_close(fd);
		}
		k_mutex_unlock(&lock);
		return;
	}
	k->fd = fd;
	k->connected = fd >= 0;
	k_mutex_unlock(&lock);
	LOG_INF("socket %d: connect to %s:%u: %d", h, k->host, k->port, err);
	zport_post(ZEV_SOCK_CONNECTED, h, err ? zport_link_errno(err) : 0);
}

static void send_job(struct k_work *work)
{
	struct zsocket *k = CONTAINER_OF(work, struct zsocket, send_work);
	int h = k - sockets;
	size_t off = 0;
	int r = 0;

	while (off < k->send_len) {
		ssize_t n = zsock_send(k->fd, k->send_data + off, k->send_len - off, 0);

		if (n < 0) {
			r = zport_link_errno(-errno);
			break;
		}
		off += (size_t)n;
	}
	zport_post(ZEV_SOCK_SENT, h, r < 0 ? r : (int32_t)off);
}

/* ---- receive thread --------------------------------------------------------- */

static void recv_thread(void *p1, void *p2, void *p3)
{
	ARG_UNUSED(p1);
	ARG_UNUSED(p2);
	ARG_UNUSED(p3);

	for (;;) {
		struct zsock_pollfd fds[NRF91_MAX_SOCKETS];
		uint32_t gen[NRF91_MAX_SOCKETS];
		int idx[NRF91_MAX_SOCKETS], n = 0;

		k_mutex_lock(&lock, K_FOREVER);
		for (int h = 0; h < NRF91_MAX_SOCKETS; h++) {
			struct zsocket *k = &sockets[h];

			if (k->open && k->connected && k->recv_enabled && k->rx_len == 0) {
				fds[n] = (struct zsock_pollfd){ .fd = k->fd, .events = ZSOCK_POLLIN };
				gen[n] = k->generation;
				idx[n++] = h;
			}
		}
		k_mutex_unlock(&lock);

		if (n == 0) {
			k_sleep(K_MSEC(50));
			continue;
		}
		/* A short timeout picks up sockets opened or enabled meanwhile. */
		if (zsock_poll(fds, n, 100) <= 0) {
			continue;
		}
		for (int i = 0; i < n; i++) {
			struct zsocket *k = &sockets[idx[i]];
			ssize_t got;

			if (!fds[i].revents) {
				continue;
			}
			k_mutex_lock(&lock, K_FOREVER);
			if (!k->open || k->generation != gen[i] || k->rx_len > 0) {
				k_mutex_unlock(&lock);
				continue;
			}
			got = zsock_recv(k->fd, k->rx, sizeof(k->rx), ZSOCK_MSG_DONTWAIT);
			if (got > 0) {
				k->rx_len = (size_t)got;
				k_mutex_unlock(&lock);
				zport_post(ZEV_SOCK_DATA, idx[i], 0);
			} else if (got == 0 || errno != EAGAIN) {
				int err = got == 0 ? 0 : zport_link_errno(-errno);

				k->connected = false;
				k_mutex_unlock(&lock);
				zport_post(ZEV_SOCK_CLOSED, idx[i], err);
			} else {
				k_mutex_unlock(&lock);
			}
		}
	}
}

K_THREAD_DEFINE(at_sock_rx, CONFIG_NRF91_AT_SOCKET_STACK_SIZE, recv_thread, NULL, NULL, NULL,
		CONFIG_NRF91_AT_CORE_PRIORITY + 1, 0, 0);

/* Core thread: hands received data to the core, or retries later. */
void sockets_deliver(int h)
{
	struct zsocket *k = &sockets[h];

	if (k->rx_len == 0) {
		return;
	}
	if (nrf91_core_sock_data(&core, h, k->rx, k->rx_len) == -NRF91_EAGAIN) {
		zport_post(ZEV_SOCK_DATA, h, 0);
		return;
	}
	k_mutex_lock(&lock, K_FOREVER);
	k->rx_len = 0;
	k_mutex_unlock(&lock);
}

/* ---- port operations (core thread) -------------------------------------------- */

int sockets_init(void)
{
	for (int h = 0; h < NRF91_MAX_SOCKETS; h++) {
		sockets[h].fd = -1;
		k_work_init(&sockets[h].connect_work, connect_job);
		k_work_init(&sockets[h].send_work, send_job);
	}
	k_work_queue_start(&worker, worker_stack, K_THREAD_STACK_SIZEOF(worker_stack),
			   CONFIG_NRF91_AT_CORE_PRIORITY + 1, NULL);
	return 0;
}

int zsock_port_open(int h, uint32_t sec_tag, int peer_verify)
{
	struct zsocket *k = &sockets[h];

	k_mutex_lock(&lock, K_FOREVER);
	k->open = true;
	k->generation++;
	k->sec_tag = (sec_tag_t)sec_tag;
	k->peer_verify = peer_verify;
	k->hostname[0] = '\0';
	k->fd = -1;
	k->connected = false;
	k->recv_enabled = false;
	k->rx_len = 0;
	k_mutex_unlock(&lock);
	return 0;
}

int zsock_port_set_hostname(int h, const char *hostname)
{
	strncpy(sockets[h].hostname, hostname ? hostname : "", NRF91_HOSTNAME_MAX);
	sockets[h].hostname[NRF91_HOSTNAME_MAX] = '\0';
	return 0;
}

int zsock_port_connect(int h, const char *host, uint16_t port)
{
	struct zsocket *k = &sockets[h];

	strncpy(k->host, host, NRF91_HOSTNAME_MAX);
	k->host[NRF91_HOSTNAME_MAX] = '\0';
	k->port = port;
	k_work_submit_to_queue(&worker, &k->connect_work);
	return -NRF91_EINPROGRESS;
}

int zsock_port_send(int h, const uint8_t *data, size_t len)
{
	struct zsocket *k = &sockets[h];

	if (!k->connected) {
		return -NRF91_ENOTCONN;
	}
	/* data is the core's #XSEND buffer: untouched until ZEV_SOCK_SENT is handled. */
	k->send_data = data;
	k->send_len = len;
	k_work_submit_to_queue(&worker, &k->send_work);
	return -NRF91_EINPROGRESS;
}

void zsock_port_recv_enable(int h, bool enable)
{
	k_mutex_lock(&lock, K_FOREVER);
	sockets[h].recv_enabled = enable;
	k_mutex_unlock(&lock);
}

void zsock_port_close(int h)
{
	struct zsocket *k = &sockets[h];

	k_mutex_lock(&lock, K_FOREVER);
	if (k->fd >= 0) {
		zsock_close(k->fd);
	}
	k->fd = -1;
	k->open = false;
	k->connected = false;
	k->rx_len = 0;
	k->generation++;
	k_mutex_unlock(&lock);
}

void zsock_port_close_all(void)
{
	for (int h = 0; h < NRF91_MAX_SOCKETS; h++) {
		zsock_port_close(h);
	}
}
