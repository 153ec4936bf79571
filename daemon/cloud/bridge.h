/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Modem TLS mode: a loopback bridge between Paho (plain TCP) and a TLS socket
 * that lives elsewhere (in the nRF91, driven over AT commands).
 *
 * The bridge opens a listener on 127.0.0.1 (a kernel-chosen port) for exactly
 * one connection, accepts only a connection whose other end is a socket held
 * by this very process (the kernel's sock_diag gives the inode and owner of
 * the socket with exactly that 4-tuple, which must be one of /proc/self/fd),
 * closes the listener as soon as it has it, and copies bytes both ways.
 * Backpressure both ways: it reads from Paho at most BRIDGE_UP_BUFFER bytes
 * ahead of what the remote socket accepted, and pauses the remote's receive
 * side while the bytes for Paho are above a high-water mark.  When either
 * side closes, both are closed.
 *
 * Batching, for a remote with a high cost per call (one AT#XSEND round trip
 * each, one #XRECV per TLS record): while the remote is busy the bridge keeps
 * reading from Paho, and once it is writable again hands it everything
 * buffered in one send(); bytes from the remote are written to Paho once per
 * loop iteration (a deferred event source), so the packets of several
 * bridge_remote_recv() calls in a row leave in one write.
 *
 * The remote TLS socket is an interface (RemoteSocketOps): the AT-backed one
 * (#XSSOCKET/#XCONNECT/#XSEND/#XRECV) belongs to the modem layer; tests use a
 * real OpenSSL client socket.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "macro.h"

#define BRIDGE_UP_BUFFER 16384u        /* Paho -> remote, bytes read but not yet accepted */
#define BRIDGE_DOWN_BUFFER_MAX 65536u  /* remote -> Paho: hard cap */
#define BRIDGE_DOWN_HIGH_WATER 32768u  /* pause the remote above this */
#define BRIDGE_DOWN_LOW_WATER 8192u    /* resume it below this */
#define BRIDGE_ACCEPT_TIMEOUT_USEC (30u * 1000000u)

typedef struct Bridge Bridge;

/* What the bridge needs from a remote TLS socket.  All calls on the loop thread. */
typedef struct RemoteSocketOps {
        /* Starts connecting; reports with bridge_remote_connected() or bridge_remote_closed(). */
        int (*open)(void *impl, Bridge *b, const char *host, uint16_t port);
        /* Takes up to len bytes: returns how many (0: none now, bridge_remote_writable() follows), or -errno. */
        ssize_t (*send)(void *impl, const uint8_t *buf, size_t len);
        /* true: deliver nothing until called with false. */
        void (*pause_recv)(void *impl, bool pause);
        /* Closes; no upcall follows.  Idempotent. */
        void (*close)(void *impl);
} RemoteSocketOps;

typedef enum BridgeState {
        BRIDGE_IDLE,
        BRIDGE_OPENING,   /* listener open, remote socket connecting */
        BRIDGE_LISTENING, /* remote connected; waiting for our own process to connect */
        BRIDGE_RUNNING,   /* copying bytes */
        BRIDGE_CLOSED,    /* one side closed; both are closed */
        _BRIDGE_STATE_MAX,
} BridgeState;

typedef struct BridgeCallbacks {
        /* The remote is up: point the MQTT client at uri ("tcp://127.0.0.1:<port>"). */
        void (*ready)(Bridge *b, const char *uri, void *userdata);
        /* Closed, by either side or an error; error is 0 for an orderly close. */
        void (*closed)(Bridge *b, int error, const char *reason, void *userdata);
} BridgeCallbacks;

int bridge_new(sd_event *event, const RemoteSocketOps *ops, void *impl, const BridgeCallbacks *cb, void *userdata,
               Bridge **ret);
Bridge *bridge_free(Bridge *b);
DEFINE_TRIVIAL_CLEANUP_FUNC(Bridge *, bridge_free);

int bridge_start(Bridge *b, const char *host, uint16_t port);
/* Closes everything without calling closed().  Idempotent. */
void bridge_stop(Bridge *b);

/* Upcalls of the remote socket. */
void bridge_remote_connected(Bridge *b);
/* Bytes from the remote; -ENOBUFS (and the bridge closes) if it ignored the pause and overran the cap. */
int bridge_remote_recv(Bridge *b, const uint8_t *data, size_t len);
void bridge_remote_writable(Bridge *b);
void bridge_remote_closed(Bridge *b, int error);

BridgeState bridge_get_state(const Bridge *b);
/* Whether the last close came from the remote socket (bridge_remote_closed()): its far
 * end or the remote's own failure, not the MQTT client or the bridge itself. */
bool bridge_closed_by_remote(const Bridge *b);
uint16_t bridge_listen_port(const Bridge *b);
uint64_t bridge_refused_connections(const Bridge *b);
const char *bridge_state_to_string(BridgeState s);

/*
 * sock_diag (NETLINK_SOCK_DIAG) lookup of the one TCP/IPv4 socket whose local
 * address is src and remote address dst (network byte order addresses, host
 * byte order ports): its inode and owner's uid.  -ENOENT if there is none.
 * Why not /proc/net/tcp: it lists every socket of the network namespace (any
 * user can make it tens of megabytes) and ProcSubset=pid hides it.  Paho's
 * own transports (Debian 12: 1.3.12) offer no Unix socket to avoid the check.
 */
int sock_diag_lookup_tcp4(uint32_t src_addr, uint16_t src_port, uint32_t dst_addr, uint16_t dst_port,
                          uint64_t *ret_inode, uint32_t *ret_uid);
/* Its pure reply parser: the answer to the request with sequence number seq. */
int sock_diag_parse_tcp4(const uint8_t *buf, size_t len, uint32_t seq, uint32_t src_addr, uint16_t src_port,
                         uint32_t dst_addr, uint16_t dst_port, uint64_t *ret_inode, uint32_t *ret_uid);
/* Whether this process holds a socket with that inode (scans /proc/self/fd). */
int process_has_socket_inode(uint64_t inode);
