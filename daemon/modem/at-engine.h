/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The AT engine: one command in flight per port, as ModemManager's AT port
 * layer does it (STYLE.md, "I/O").  Bytes are appended to a bounded buffer
 * and split into lines; every line is first offered to the URC registry;
 * what is left belongs to the command in flight, whose final result
 * completes it.  Counted binary payloads (#XRECV, #XDOWNLOAD) bypass line
 * parsing.  After a timeout the engine resynchronises with "AT" before it
 * sends anything else.
 *
 * The engine knows no file descriptors and no event loop: it is given the
 * time, a single timer and a writer through AtLoopOps, so the daemon runs it
 * on sd-event and the tests on a fake loop with fake time.
 *
 * Callbacks may queue commands, cancel commands and call at_engine_reset(),
 * but must not free the engine; defer that to the loop.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "at-line.h"
#include "macro.h"

#define AT_LINE_MAX 4096u          /* longest line accepted; longer lines are refused */
#define AT_COMMAND_MAX 4096u       /* longest command, as the firmware accepts (modem-link.md) */
#define AT_RESPONSE_LINES_MAX 64u  /* information lines kept per command */
#define AT_QUEUE_MAX 32u           /* commands waiting behind the one in flight */
#define AT_URC_MAX 32u             /* URC registry size */
#define AT_RESYNC_TIMEOUT_USEC (1000u * 1000u)
#define AT_RESYNC_SETTLE_USEC (250u * 1000u)
/* The settling time of the synchronisation at open: answers owed from before come at once. */
#define AT_SYNC_OPEN_SETTLE_USEC (30u * 1000u)
/* How long that synchronisation waits for an answer before the first command goes out regardless. */
#define AT_SYNC_OPEN_TIMEOUT_USEC (2u * 1000u * 1000u)
#define AT_RESYNC_REPORT_AFTER 5u  /* unanswered resync attempts before the owner hears of it */
#define AT_RESYNC_QUIET_USEC (12u * 1000u * 1000u) /* silence after every AT_RESYNC_REPORT_AFTER unanswered probes */
/*
 * Inter-byte timeout of a counted payload (#XRECV, #XDOWNLOAD).  The firmware
 * writes a header and its bytes in one go (2048 bytes take 0.18 s at 115200
 * baud), so a pause this long means bytes were lost (a UART without flow
 * control drops them) and the engine would otherwise take every later line as
 * payload: it abandons the payload and resynchronises.
 */
#define AT_BINARY_GAP_USEC (1000u * 1000u)

typedef struct AtEngine AtEngine;

typedef struct AtLoopOps {
        /* CLOCK_MONOTONIC (or fake) time in µs. */
        uint64_t (*now)(void *userdata);
        /* Arms the engine's only timer at an absolute time; UINT64_MAX disarms it. */
        int (*set_timer)(void *userdata, uint64_t usec);
        /*
         * Writes without blocking: bytes written, -EAGAIN, or another negative
         * errno.  It may call at_engine_reset() (a port found gone); the
         * engine then stops writing.
         */
        ssize_t (*write)(void *userdata, const void *data, size_t len);
        /* Asks for at_engine_on_writable() calls while on is true. */
        int (*want_write)(void *userdata, bool on);
} AtLoopOps;

typedef enum AtEngineState {
        AT_ENGINE_IDLE,    /* nothing in flight */
        AT_ENGINE_WRITING, /* a command is being written */
        AT_ENGINE_WAITING, /* written, waiting for its final result */
        AT_ENGINE_RESYNC,  /* after a timeout or garbled input: "AT" until "OK" */
        _AT_ENGINE_STATE_MAX,
} AtEngineState;

typedef enum AtEngineEvent {
        AT_ENGINE_EVENT_SYNC_LOST,    /* a command timed out or the input was garbled */
        AT_ENGINE_EVENT_SYNCED,       /* resynchronised */
        AT_ENGINE_EVENT_UNRESPONSIVE, /* AT_RESYNC_REPORT_AFTER resync attempts went unanswered */
        AT_ENGINE_EVENT_WRITE_FAILED, /* the writer returned an error other than -EAGAIN */
        AT_ENGINE_EVENT_PAYLOAD_STALLED, /* a counted payload stopped short (see at_engine_last_stall()) */
        _AT_ENGINE_EVENT_MAX,
} AtEngineEvent;

typedef struct AtResponse {
        int result;            /* 0 on OK, else negative errno (CME mapped, -ETIMEDOUT, -ENOBUFS, ...) */
        AtLineKind final;      /* which final result; AT_LINE_INFO when none arrived */
        unsigned code;         /* the +CME/+CMS ERROR code */
        char **lines;          /* information lines, NULL-terminated, never NULL */
        size_t n_lines;
        const uint8_t *payload; /* the last counted payload not claimed by a URC, or NULL */
        size_t payload_len;
} AtResponse;

typedef void (*at_done_cb)(AtEngine *e, const AtResponse *r, void *userdata);
/* A URC line (without terminator, NUL-terminated) and its counted payload, if it is a binary header. */
typedef void (*at_urc_cb)(AtEngine *e, const char *line, const uint8_t *payload, size_t payload_len,
                          void *userdata);
typedef void (*at_event_cb)(AtEngine *e, AtEngineEvent ev, int error, void *userdata);

int at_engine_new(const AtLoopOps *ops, void *loop_userdata, AtEngine **ret);
AtEngine *at_engine_free(AtEngine *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(AtEngine *, at_engine_free);

void at_engine_set_event_handler(AtEngine *e, at_event_cb cb, void *userdata);
/* A label for debug logs, e.g. the port path. */
int at_engine_set_name(AtEngine *e, const char *name);

/* Input from the port and loop notifications. */
void at_engine_feed(AtEngine *e, const void *data, size_t len);
void at_engine_on_timer(AtEngine *e);
void at_engine_on_writable(AtEngine *e);

/* Lines starting with prefix go to cb before anything else; the first registered match wins. */
int at_engine_add_urc(AtEngine *e, const char *prefix, at_urc_cb cb, void *userdata);
void at_engine_remove_urc(AtEngine *e, const char *prefix, at_urc_cb cb, void *userdata);

/*
 * Queues cmd (without terminator; "\r\n" is added).  timeout_usec counts
 * from the last byte written.  On success returns a positive id for
 * at_engine_cancel().  cb is called exactly once unless cancelled.
 */
int64_t at_engine_send(AtEngine *e, const char *cmd, uint64_t timeout_usec, at_done_cb cb, void *userdata);
/*
 * For commands followed by raw bytes from the host (#XSEND, modem-link.md):
 * cmd is written; when its OK arrives, the len bytes of payload (copied,
 * 1..AT_BINARY_MAX) are written as they are; the command then completes on
 * the first information line that starts with end_prefix ("#XSEND: "), with
 * result 0 and that line in lines[].  An ERROR before the payload completes
 * it as usual.  Nothing else is written between cmd and the end line; the
 * timeout runs again from the last byte of the payload.
 */
int64_t at_engine_send_with_payload(AtEngine *e, const char *cmd, const void *payload, size_t len,
                                    const char *end_prefix, uint64_t timeout_usec, at_done_cb cb, void *userdata);
/* Forgets the callback of a command; one already written still owns its response. */
void at_engine_cancel(AtEngine *e, int64_t id);
/* Fails every command with error (e.g. -ECONNRESET), clears the input and returns to idle. */
void at_engine_reset(AtEngine *e, int error);
/*
 * Synchronises as after a timeout, before any queued command goes out: "AT"
 * until the modem has answered it and then stayed quiet for settle_usec.
 * For a port just opened, so that answers the modem still owed to a previous
 * user (a daemon killed in the middle of a command) never reach our first
 * command.  Unanswered within AT_SYNC_OPEN_TIMEOUT_USEC, the queued commands
 * go out anyway (their own timeouts tell of a silent modem).  Nothing if
 * already resynchronising.
 */
void at_engine_sync(AtEngine *e, uint64_t settle_usec);

AtEngineState at_engine_get_state(const AtEngine *e);
size_t at_engine_queue_length(const AtEngine *e);
/* Lines refused because they exceeded AT_LINE_MAX, since creation. */
unsigned at_engine_overflows(const AtEngine *e);

/* A counted payload abandoned after AT_BINARY_GAP_USEC without a byte. */
typedef struct AtStall {
        char header[64]; /* its header line, cut to fit */
        size_t received, announced;
} AtStall;
/* Payloads abandoned since creation; *ret_last (may be NULL) the last of them. */
unsigned at_engine_payload_stalls(const AtEngine *e, AtStall *ret_last);

const char *at_engine_state_to_string(AtEngineState s);
const char *at_engine_event_to_string(AtEngineEvent ev);
/* "OK", "+CME ERROR: 518 (not allowed while ...)", "timed out", ... for messages to operators. */
const char *at_response_describe(const AtResponse *r, char *buf, size_t len);
/* The negative errno of a failed firmware command (#X...): on this link its
 * +CME ERROR code is a Linux errno number (firmware_nrf91/doc/at-commands.md),
 * not one of the modem's codes.  0 when the command succeeded. */
int at_response_firmware_errno(const AtResponse *r);
