/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared between the emulated modem's source files; not for the host port. */

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "modem-emu.h"

#define MODEM_EMU_UUID_LEN 36
#define MODEM_EMU_IMEI_LEN 15
#define MODEM_EMU_ICCID_LEN 20
#define MODEM_EMU_FW_VERSION_MAX 64
#define MODEM_EMU_CRED_MAX 256     /* entries; more is "memory full" (515) */
#define MODEM_EMU_URC_QUEUE_MAX 16
#define MODEM_EMU_DEFAULT_FW_VERSION "mfw_nrf9160_1.3.5"
#define MODEM_EMU_DEFAULT_REG_DELAY_MS 1000

typedef struct Credential {
        uint32_t tag;
        int type;
        char *content; /* NUL-terminated, exactly as written */
        size_t len;
        char *passwd; /* PKCS#8 password given with a type-2 write, or NULL */
        char *tls_pem; /* with a password: the decrypted key, for modem_emu_credential() */
        uint8_t sha256[32];
} Credential;

#define MODEM_EMU_NCELL_MAX 17 /* neighbours one %NCELLMEAS reports at most */
#define MODEM_EMU_NCELLMEAS_DELAY_MS 300

typedef enum RegStat {
        REG_NOT_SEARCHING = 0,
        REG_HOME = 1,
        REG_SEARCHING = 2,
} RegStat;

struct ModemEmu {
        char *state_dir;
        bool sync; /* fsync on save (tests and fuzzers may turn it off) */

        char uuid[MODEM_EMU_UUID_LEN + 1]; /* device UUID, lower case 8-4-4-4-12 */
        uint8_t uuid_bin[16];
        char imei[MODEM_EMU_IMEI_LEN + 1];
        char iccid[MODEM_EMU_ICCID_LEN + 1];
        char fw_version[MODEM_EMU_FW_VERSION_MAX + 1];
        char fw_uuid[MODEM_EMU_UUID_LEN + 1]; /* %XMODEMUUID: derived from fw_version */
        uint8_t fw_uuid_bin[16];
        EVP_PKEY *identity_key; /* the simulated device identity key (P-256) */

        Credential *creds; /* sorted by (tag, type) */
        size_t n_creds;

        int cfun;
        int cmee;
        int cereg_n;
        RegStat reg;
        bool reg_start_pending; /* CFUN=1 seen, the next tick starts the timer */
        bool reg_timer;
        uint64_t reg_at_ms;
        unsigned reg_delay_ms;
        uint64_t now_ms;

        ModemEmuCell cell; /* the serving cell once registered */
        ModemEmuCell ncells[MODEM_EMU_NCELL_MAX];
        size_t n_ncells;
        bool ncellmeas_pending; /* %NCELLMEAS started; its URC comes from a later tick */
        uint64_t ncellmeas_at_ms;

        bool no_network_time; /* the network gives no time at registration */
        bool time_valid; /* network time received (or set with +CCLK/%CCLK) */
        int64_t time_offset_s; /* added to the host's clock */
        int tz_quarters;

        modem_emu_urc_cb urc_cb;
        void *urc_userdata;
        char *urcs[MODEM_EMU_URC_QUEUE_MAX];
        size_t n_urcs;
};

/* state.c */
int modem_emu_state_load(ModemEmu *m, const char *uuid, const char *imei);
int modem_emu_state_save_identity(ModemEmu *m);
int modem_emu_state_save_credentials(ModemEmu *m);
void modem_emu_derive_fw_uuid(ModemEmu *m);
bool modem_emu_uuid_valid(const char *s);
bool modem_emu_imei_valid(const char *s);

Credential *modem_emu_cred_find(const ModemEmu *m, uint32_t tag, int type);
/* Takes ownership of content and passwd (also on failure). */
int modem_emu_cred_put(ModemEmu *m, uint32_t tag, int type, char *content, size_t len, char *passwd);
int modem_emu_cred_delete(ModemEmu *m, uint32_t tag, int type);

/* Internal knob for tests and fuzzers: skip fsync() when saving. */
void modem_emu_set_sync(ModemEmu *m, bool sync);
