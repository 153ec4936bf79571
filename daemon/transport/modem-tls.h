/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Modem TLS mode's remote socket: a TLS 1.2 client socket inside the nRF91,
 * driven over the AT engine (modem-link.md, "Firmware commands"), behind the
 * RemoteSocketOps of the loopback bridge (bridge.h).
 *
 *   idle ──open──▶ opening ──#XCONNECT: h,1──▶ connected
 *                    │                             │
 *                    └──── error, #XCLOSE URC, ────┴──▶ closed
 *                          link lost, close()
 *
 * Opening is a static table of commands: #XSSOCKET on the security tag with
 * peer verification required, #XSSOCKETOPT with the TLS hostname (SNI and
 * name check), #XRECVCFG=<h>,1 so that data arrives as #XRECV URCs, then
 * #XCONNECT, which returns once the handshake is done.
 *
 * Sending: one #XSEND of at most MODEM_TLS_SEND_MAX bytes in flight; send()
 * takes nothing (returns 0) while one is, and bridge_remote_writable() follows
 * its #XSEND: line.  Bytes the modem did not take are sent again first.
 * Receiving: #XRECV URCs go to bridge_remote_recv(); pause_recv() switches
 * #XRECVCFG off (data then waits in the modem, and TCP's window pushes back on
 * the broker) and on again.
 *
 * The URC prefixes "#XRECV:" and "#XCLOSE:" are registered on the engine for
 * the lifetime of the object: the engine gives a prefix to its first
 * registrant only, so there is one ModemTls per engine (the MQTT connection).
 *
 * Before its first socket it closes every handle of the modem (0..7): the
 * daemon holds the port alone, so what is open then was left by an earlier
 * run that was killed before its #XCLOSE.
 *
 * The engine does not tell of a firmware reboot ("Ready") or a lost port while
 * no command is in flight; the owner, who sees those through the modem
 * manager, calls modem_tls_link_lost().
 */

#include <stdbool.h>
#include <stdint.h>

#include "at-engine.h"
#include "bridge.h"
#include "macro.h"

#define MODEM_TLS_SOCKETS_MAX 8                            /* handles 0..7 */
#define MODEM_TLS_SEND_MAX 4096u                            /* #XSEND: 1..4096 bytes */
#define MODEM_TLS_HOSTNAME_MAX 253u                         /* a DNS name */
#define MODEM_TLS_COMMAND_TIMEOUT_USEC (5u * 1000u * 1000u)
#define MODEM_TLS_CONNECT_TIMEOUT_USEC (75u * 1000u * 1000u) /* the device gives up after 60 s */
#define MODEM_TLS_SEND_TIMEOUT_USEC (15u * 1000u * 1000u)    /* the firmware gives up after 10 s */

typedef struct ModemTls ModemTls;

typedef enum ModemTlsState {
        MODEM_TLS_IDLE,       /* no socket */
        MODEM_TLS_OPENING,    /* running the open table, up to the handshake */
        MODEM_TLS_CONNECTED,  /* bytes flow */
        MODEM_TLS_CLOSED,     /* closed by either side or failed; open() starts over */
        _MODEM_TLS_STATE_MAX,
} ModemTlsState;

int modem_tls_new(AtEngine *engine, unsigned sec_tag, ModemTls **ret);
ModemTls *modem_tls_free(ModemTls *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(ModemTls *, modem_tls_free);

/* The ops to give bridge_new() with this object as impl. */
extern const RemoteSocketOps modem_tls_ops;

/*
 * The modem rebooted or its port went away: the bridge hears of a close.  The
 * handle is closed in the modem before the next open, in case the modem kept
 * it (a lost port); after a reboot that answers +CME ERROR: 9, which is fine.
 */
void modem_tls_link_lost(ModemTls *t, int error);

/*
 * Closes what an earlier run of the daemon (every handle, once) or a lost link
 * (its handle) may have left open in the modem; nothing while a socket of ours
 * is open.  The first open does it if nobody did before; the gateway does it
 * when the modem is ready, so that these round trips are made while the modem
 * registers rather than between its registration and the cloud connection.
 */
void modem_tls_sweep(ModemTls *t);

ModemTlsState modem_tls_get_state(const ModemTls *t);
/* The modem's handle of the socket, -1 if none. */
int modem_tls_handle(const ModemTls *t);
/* Statistics: #XSEND commands and bytes the modem took, #XRECV URCs and bytes. */
uint64_t modem_tls_sends(const ModemTls *t);
uint64_t modem_tls_bytes_sent(const ModemTls *t);
uint64_t modem_tls_bytes_received(const ModemTls *t);
const char *modem_tls_state_to_string(ModemTlsState s);
/* What a firmware socket errno means for an operator (at-commands.md's table); NULL if unknown. */
const char *modem_tls_error_to_string(int error);
