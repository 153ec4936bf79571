/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * FOTA through the nRF91 firmware (firmware_nrf91/doc/at-commands.md,
 * "FOTA"): the firmware downloads the image over HTTPS itself, verifying the
 * server with the CA of the security tag, stores it, and applies it at the
 * next reset.  This is the modem manager's small API for it:
 *
 *   AT#XFOTAINFO                       what the firmware can apply, and where it is
 *   AT#XFOTA=<op>,"<url>",<sec_tag>     start (or resume) a download
 *   AT#XFOTA=9                          confirm the application image under test
 *   AT#XRESET / AT#XMODEMRESET          apply a stored application / modem image
 *   #XFOTA: <stage>,<status>[,<info>[,<cause>]]   progress, as ModemCallbacks.fota_event
 *
 * One FOTA command is in flight at a time (-EBUSY otherwise).  The probe
 * reads #XFOTAINFO along with the versions after every firmware restart
 * (ModemIdentity.fota).
 */

#include <stdbool.h>
#include <stdint.h>

typedef struct Modem Modem;

/* <op> of AT#XFOTA and bit n of <ops> in #XFOTAINFO. */
typedef enum ModemFotaOp {
        MODEM_FOTA_OP_NONE = 0,
        MODEM_FOTA_OP_APP = 1,         /* MCUboot application image */
        MODEM_FOTA_OP_MODEM_DELTA = 2,
        MODEM_FOTA_OP_MODEM_FULL = 3,  /* needs external flash */
        MODEM_FOTA_OP_CONFIRM = 9,
} ModemFotaOp;

/* <state> of #XFOTAINFO. */
typedef enum ModemFotaState {
        MODEM_FOTA_STATE_IDLE = 0,
        MODEM_FOTA_STATE_DOWNLOADING = 1,
        MODEM_FOTA_STATE_INTERRUPTED = 2, /* a partial image is kept; the same AT#XFOTA resumes it */
        MODEM_FOTA_STATE_SCHEDULED = 3,   /* complete, waiting for the reset that applies it */
        MODEM_FOTA_STATE_TESTING = 4,     /* a new application runs as a test image: confirm or it reverts */
        _MODEM_FOTA_STATE_MAX,
} ModemFotaState;

/* <result> of #XFOTAINFO and the status of "#XFOTA: 5,<status>". */
#define MODEM_FOTA_RESULT_NONE (-1)
#define MODEM_FOTA_RESULT_APPLIED 0
#define MODEM_FOTA_RESULT_FAILED 1
#define MODEM_FOTA_RESULT_REVERTED 3

typedef struct ModemFotaInfo {
        unsigned ops;      /* bit n: op n can be applied */
        ModemFotaState state;
        unsigned op;       /* the op of the download or image in states 1..4 */
        uint64_t received, total;
        int result, result_info;
} ModemFotaInfo;

/* "#XFOTA: <stage>,<status>[,<info>[,<cause>]]". */
typedef struct ModemFotaEvent {
        unsigned stage;    /* 1 download, 2 downloaded, 3 stored, 4 ready to apply, 5 applied */
        unsigned status;   /* 0 ok, 1 failed, 2 cancelled (stage 1), 3 reverted (stage 5) */
        bool has_info;
        int64_t info;      /* percent (1,0), error kind (1,1) or error (5,1) */
        bool has_cause;
        int64_t cause;     /* negative errno of a failed download (1,1,1,<cause>) */
} ModemFotaEvent;

/* Pure parsers of one line without its terminator; -EBADMSG, -ENOMSG for another prefix. */
int modem_fota_info_parse(const char *line, ModemFotaInfo *ret);
int modem_fota_event_parse(const char *line, ModemFotaEvent *ret);

typedef void (*modem_fota_cb)(Modem *m, int error, void *userdata);
typedef void (*modem_fota_info_cb)(Modem *m, int error, const ModemFotaInfo *info, void *userdata);

typedef enum ModemFotaRequestKind {
        MODEM_FOTA_REQUEST_NONE,
        MODEM_FOTA_REQUEST_START,
        MODEM_FOTA_REQUEST_CONFIRM,
        MODEM_FOTA_REQUEST_RESET_APP,
        MODEM_FOTA_REQUEST_RESET_MODEM,
        MODEM_FOTA_REQUEST_INFO,
        _MODEM_FOTA_REQUEST_KIND_MAX,
} ModemFotaRequestKind;

/* Each returns 0 and calls cb exactly once later (unless cancelled), or a
 * negative errno: -ENOTCONN when the modem is not ready, -EBUSY while
 * another FOTA command runs, -EINVAL for a URL that cannot be sent. */
int modem_fota_start(Modem *m, ModemFotaOp op, const char *url, modem_fota_cb cb, void *userdata);
int modem_fota_confirm(Modem *m, modem_fota_cb cb, void *userdata);
/* AT#XRESET for the application, AT#XMODEMRESET for a modem image.  After a
 * modem reset (no "Ready" follows it) the manager probes again, so the new
 * +CGMR and #XFOTAINFO are read; after AT#XRESET the "Ready" does that. */
int modem_fota_apply(Modem *m, ModemFotaOp op, modem_fota_cb cb, void *userdata);
int modem_fota_query(Modem *m, modem_fota_info_cb cb, void *userdata);
/* Forgets the callback of the FOTA command in flight, if any. */
void modem_fota_cancel(Modem *m);

const char *modem_fota_state_to_string(ModemFotaState s);
