/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The emulated nRF91 modem behind nrf91-sim: everything the firmware passes
 * through to the modem (nrf_modem_at_cmd on real hardware) lands here.  It
 * emulates the modem's AT behaviour as documented in spec nrf91-at.md:
 * %CMNG credential store per security tag (persisted), +CFUN, +CEREG,
 * %KEYGEN with CSR and COSE attestation, %ATTESTTOKEN, %JWT, +CGSN, +CGMR,
 * %XMODEMUUID, +CESQ, %XICCID, %CCLK, +CMEE, ATE0.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct ModemEmu ModemEmu;

/* One URC line, without CR/LF (e.g. "+CEREG: 1"). */
typedef void (*modem_emu_urc_cb)(const char *line, void *userdata);

/* uuid/imei NULL: generated once and persisted in state_dir. */
int modem_emu_new(const char *state_dir, const char *uuid, const char *imei, ModemEmu **ret);
ModemEmu *modem_emu_free(ModemEmu *m);

void modem_emu_set_urc_callback(ModemEmu *m, modem_emu_urc_cb cb, void *userdata);

/*
 * Executes one complete AT command as received, without its terminating
 * CR/LF (it may contain CR/LF inside double quotes, as %CMNG writes do).
 * Writes the complete response, information lines and exactly one final
 * result (OK, ERROR or +CME ERROR: <n>), each framed "\r\n<line>\r\n", to
 * out and returns its length, or a negative errno (-ENOBUFS if out is too
 * small).
 */
ssize_t modem_emu_execute(ModemEmu *m, const char *cmd, size_t len, char *out, size_t out_size);

/* Called periodically with a monotonic clock; emits delayed URCs (+CEREG). */
void modem_emu_tick(ModemEmu *m, uint64_t now_ms);

/* The modem restarts (application reset): CFUN back to 0, not registered. */
void modem_emu_reboot(ModemEmu *m);

const char *modem_emu_device_uuid(const ModemEmu *m); /* for #XUUID */
int modem_emu_cfun(const ModemEmu *m);
bool modem_emu_network_ready(const ModemEmu *m); /* CFUN=1 and registered */

/*
 * The stored PEM text of (sec_tag, type), type 0 CA, 1 client certificate,
 * 2 private key; NULL if absent.  For the host port's TLS sockets and
 * downloads only: this is the modem's secure storage, the key is never
 * readable through AT.
 */
const char *modem_emu_credential(const ModemEmu *m, uint32_t sec_tag, int type);

/*
 * The radio cells the emulated modem sees (%XMONITOR, %NCELLMEAS, +CEREG).
 * rsrp and rsrq are the modem's indices (rsrp 0..97: dBm = index - 141;
 * rsrq 0..34: dB = (index - 39) / 2), as the AT responses print them.
 */
typedef struct ModemEmuCell {
        char plmn[7];    /* serving cell: MCC and MNC digits, e.g. "26295" */
        uint32_t tac;    /* serving cell: tracking area code */
        uint32_t ci;     /* serving cell: 28-bit E-UTRAN cell id */
        uint32_t earfcn;
        uint32_t pci;    /* physical cell id 0..503 */
        int rsrp;
        int rsrq;
} ModemEmuCell;

/* A new serving cell; while registered the modem reports it with +CEREG as after a cell reselection. */
int modem_emu_set_cell(ModemEmu *m, const ModemEmuCell *cell);
/* Neighbours for %NCELLMEAS (up to 17); -ENOSPC when full. */
int modem_emu_add_ncell(ModemEmu *m, const ModemEmuCell *cell);
void modem_emu_clear_ncells(ModemEmu *m);

/*
 * Whether the network hands out the time at registration (default on).  Off
 * also forgets the current time, as a modem on a network without NITZ has
 * none; on gives the time at once when registered.
 */
void modem_emu_set_network_time(ModemEmu *m, bool on);

/* Records a new modem firmware version (applied modem FOTA), as +CGMR shows it. */
int modem_emu_set_firmware_version(ModemEmu *m, const char *version);
