/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The pure parsers of nrf91-sim: control socket commands, HTTP response
 * heads and bodies of downloads.  No Sim, no I/O: the fuzzers call them.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* short-recv: a header may promise more than NRF91_RECV_MAX (a corrupted length is part of the fault). */
#define SIM_SHORT_RECV_MAX 4096u

typedef enum SimControlKind {
        SIM_CONTROL_DELAY,
        SIM_CONTROL_DROP,
        SIM_CONTROL_REBOOT,
        SIM_CONTROL_VANISH,
        SIM_CONTROL_APPEAR,
        SIM_CONTROL_FOTA_MUTE,
        SIM_CONTROL_FOTA_WRITE_ERROR,
        SIM_CONTROL_SHORT_RECV,
        SIM_CONTROL_STATUS,
        SIM_CONTROL_CELL,
        SIM_CONTROL_NCELL,
        SIM_CONTROL_NCELL_CLEAR,
        SIM_CONTROL_NETWORK_TIME,
        _SIM_CONTROL_KIND_MAX,
} SimControlKind;

/* The radio cells of "cell" and "ncell" (values as %XMONITOR / %NCELLMEAS print them). */
typedef struct SimControlCell {
        char plmn[7];    /* cell: MCC and MNC, 5 or 6 digits */
        uint32_t tac;    /* cell: 16 bits */
        uint32_t ci;     /* cell: 28-bit E-UTRAN cell id */
        uint32_t earfcn; /* 0..262143 */
        uint32_t pci;    /* 0..503 */
        int rsrp;        /* index 0..97 (3GPP TS 36.133 §9.1.4) */
        int rsrq;        /* index 0..34 (3GPP TS 36.133 §9.1.7) */
} SimControlCell;

typedef struct SimControlCommand {
        SimControlKind kind;
        SimControlCell cell; /* cell, ncell */
        uint64_t value;  /* delay, drop, vanish, fota-mute: ms or count; fota-write-error: byte; short-recv: announced;
                            network-time: 1 on, 0 off */
        uint64_t value2; /* short-recv: bytes sent */
} SimControlCommand;

/* One control line (without its newline).  0, or -EINVAL with the reply
 * ("ERROR ...\n") written to error. */
int sim_control_parse(const char *line, SimControlCommand *ret, char *error, size_t error_size);

typedef struct SimHttpHead {
        int status;
        bool chunked;
        int64_t content_length; /* -1: not given (or chunked) */
} SimHttpHead;

/* A response head, NUL-terminated, up to and including its blank line.
 * 0, or -EBADMSG. */
int sim_http_parse_head(const char *head, SimHttpHead *ret);

/* A response body as it comes off the wire: fixed length, close-delimited
 * or chunked. */
typedef struct SimHttpBody {
        int64_t content_length; /* -1 unknown */
        uint64_t got;
        bool chunked;
        int chunk_state;
        uint64_t chunk_left;
        char chunk_line[32];
        size_t chunk_line_len;
} SimHttpBody;

void sim_http_body_init(SimHttpBody *b, const SimHttpHead *head);

/* Hands the body's bytes among p[0..len) to deliver, in order; true when the
 * body is complete.  Never delivers more than len bytes in all. */
bool sim_http_body_feed(SimHttpBody *b, const uint8_t *p, size_t len,
                        void (*deliver)(const uint8_t *data, size_t len, void *userdata), void *userdata);
