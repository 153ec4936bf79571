/* SPDX-License-Identifier: MIT */
/*
 * nrfcloud-gatewayctl provision: Nordic's "securely generating credentials"
 * flow (nrf91-at.md §3, §8, §9), with every step printed and checked, and
 * the modem put back in its previous CFUN mode whatever happens.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cose.h"
#include "ctl.h"
#include "identity.h"
#include "pki.h"
#include "util.h"

#define PROVISION_STEPS 9
#define PROVISION_RECOVER_SEC 30u

static const char *const fw_types_known[] = { "APP", "MODEM", "MDM_FULL", "BOOT", "SOFTDEVICE", "BOOTLOADER" };

typedef struct Provision {
        CtlOptions *o;
        CtlSession s;
        unsigned sec_tag;
        unsigned step;
        unsigned prev_cfun;
        bool cfun_changed;
        char uuid[MODEM_UUID_STRING_MAX];
        const char *device_id;
        X509 *ca;
        EVP_PKEY *ca_key;
        char *root_pem;
        KeygenResult *keygen;
        X509_REQ *csr;
        X509 *cert;
        char *cert_pem;
        char *cert_crlf, *root_crlf;
        bool key_generated;
} Provision;

static void provision_done(Provision *p) {
        X509_free(p->ca);
        EVP_PKEY_free(p->ca_key);
        free(p->root_pem);
        keygen_result_free(p->keygen);
        X509_REQ_free(p->csr);
        X509_free(p->cert);
        free(p->cert_pem);
        free(p->cert_crlf);
        free(p->root_crlf);
        ctl_session_close(&p->s);
}

static void step_begin(Provision *p, unsigned n, const char *format, ...) __attribute__((format(printf, 3, 4)));
static void step_begin(Provision *p, unsigned n, const char *format, ...) {
        va_list ap;

        p->step = n;
        printf("[%u/%u] ", n, PROVISION_STEPS);
        va_start(ap, format);
        vprintf(format, ap);
        va_end(ap);
        printf(" ... ");
        fflush(stdout);
}

static void step_ok(const char *format, ...) __attribute__((format(printf, 1, 2)));
static void step_ok(const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vprintf(format, ap);
        va_end(ap);
        printf("\n");
        fflush(stdout);
}

/* Prints the failure of the current step; returns code. */
static int step_fail(Provision *p, int code, const char *format, ...) __attribute__((format(printf, 3, 4)));
static int step_fail(Provision *p, int code, const char *format, ...) {
        char why[512];
        va_list ap;

        va_start(ap, format);
        vsnprintf(why, sizeof why, format, ap);
        va_end(ap);
        printf("failed\n");
        fflush(stdout);
        if (p->s.rebooted)
                fprintf(stderr, "Step %u failed: the modem restarted during this step (%s)\n", p->step, why);
        else if (p->s.lost)
                fprintf(stderr, "Step %u failed: the modem port went away during this step (%s)\n", p->step, why);
        else
                fprintf(stderr, "Step %u failed: %s\n", p->step, why);
        return code;
}

/* Sends a command; a modem that restarted mid-command counts as a failure even if it said OK. */
static int provision_command(Provision *p, uint64_t timeout, AtReply *r, const char *format, ...)
        __attribute__((format(printf, 4, 5)));
static int provision_command(Provision *p, uint64_t timeout, AtReply *r, const char *format, ...) {
        _cleanup_free_ char *cmd = NULL;
        va_list ap;
        int k;

        va_start(ap, format);
        k = vasprintf(&cmd, format, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        if (p->s.rebooted) {
                *r = (AtReply){ .result = -ECONNRESET };
                snprintf(r->description, sizeof r->description, "the modem restarted");
                return -ECONNRESET;
        }
        k = ctl_command(&p->s, timeout, r, "%s", cmd);
        if (k >= 0 && p->s.rebooted) {
                snprintf(r->description, sizeof r->description, "the modem restarted");
                r->result = -ECONNRESET;
                return -ECONNRESET;
        }
        return k;
}

/* Restores the CFUN mode found at the start, waiting for a modem that went away. */
static void provision_restore_cfun(Provision *p) {
        AtReply r;
        int k;

        if (!p->cfun_changed)
                return;
        if (p->s.lost || p->s.rebooted) {
                fprintf(stderr, "Waiting up to %us for the modem to come back, to restore CFUN=%u ...\n",
                        PROVISION_RECOVER_SEC, p->prev_cfun);
                k = ctl_session_recover(&p->s, PROVISION_RECOVER_SEC);
                if (k != CTL_EXIT_OK) {
                        fprintf(stderr, "The modem did not come back; set AT+CFUN=%u yourself when it does.\n",
                                p->prev_cfun);
                        return;
                }
        }
        k = ctl_command(&p->s, CTL_COMMAND_TIMEOUT_USEC, &r, "AT+CFUN=%u", p->prev_cfun);
        if (k < 0)
                fprintf(stderr, "Could not restore CFUN=%u: %s\n", p->prev_cfun, r.description);
        else {
                fprintf(stderr, "The modem is back in CFUN=%u.\n", p->prev_cfun);
                p->cfun_changed = false;
        }
        at_reply_done(&r);
}

static bool fw_types_valid(const char *s) {
        const char *p = s;

        if (!*s)
                return true;
        for (;;) {
                size_t n = strcspn(p, "|");
                bool ok = false;
                for (size_t i = 0; i < ELEMENTSOF(fw_types_known); i++)
                        if (strlen(fw_types_known[i]) == n && strncmp(p, fw_types_known[i], n) == 0)
                                ok = true;
                if (!ok)
                        return false;
                if (!p[n])
                        return true;
                p += n + 1;
        }
}

/* RFC 4180 / Python csv QUOTE_MINIMAL: quote when the field holds a separator, quote or line break. */
static int csv_field(FILE *f, const char *s, bool force_quote) {
        bool quote = force_quote || strpbrk(s, ",\"\r\n");

        if (quote)
                fputc('"', f);
        for (; *s; s++) {
                if (*s == '"')
                        fputc('"', f);
                fputc(*s, f);
        }
        if (quote)
                fputc('"', f);
        return ferror(f) ? -EIO : 0;
}

static int csv_append(const char *path, const char *device_id, const char *subtype, const char *tags,
                      const char *fw_types, const char *cert_pem) {
        _cleanup_free_ char *row = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t len = 0;
        FILE *f;
        ssize_t n;

        f = open_memstream(&row, &len);
        if (!f)
                return -ENOMEM;
        csv_field(f, device_id, false);
        fputc(',', f);
        csv_field(f, subtype, false);
        fputc(',', f);
        csv_field(f, tags, false);
        fputc(',', f);
        csv_field(f, fw_types, false);
        fputc(',', f);
        csv_field(f, cert_pem, true);
        fputc('\n', f);
        if (fclose(f) != 0)
                return -ENOMEM;

        /* One write with O_APPEND: rows from several runs never interleave. */
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        n = write(fd, row, len);
        if (n < 0)
                return -errno;
        if ((size_t) n != len)
                return -EIO;
        return 0;
}

static int list_tag(Provision *p, CmngEntry entries[3], bool present[3], AtReply *r) {
        int k = provision_command(p, CTL_COMMAND_TIMEOUT_USEC, r, "AT%%CMNG=1,%u", p->sec_tag);
        if (k < 0)
                return k;
        for (char **l = r->lines; *l; l++) {
                CmngEntry e;
                if (at_parse_cmng_list(*l, &e) >= 0 && e.sec_tag == p->sec_tag && e.type <= CRED_CLIENT_KEY) {
                        entries[e.type] = e;
                        present[e.type] = true;
                }
        }
        return 0;
}

/* Deletes one credential; a missing one (513) is fine. */
static int delete_cred(Provision *p, CredType t, AtReply *r) {
        int k = provision_command(p, CTL_COMMAND_TIMEOUT_USEC, r, "AT%%CMNG=3,%u,%d", p->sec_tag, (int) t);
        if (k >= 0 || k == -ENOENT) {
                at_reply_done(r);
                return 0;
        }
        return k;
}

/* Fails the current step; the reply's lines go, its description stays for the message. */
#define FAIL(...)                                   \
        ({                                          \
                at_reply_done(&r);                  \
                step_fail(p, __VA_ARGS__);          \
        })

static int run_steps(Provision *p) {
        CmngEntry entries[3] = {};
        bool present[3] = {};
        _cleanup_free_ char *keygen_text = NULL, *cn = NULL;
        char sha_cert[65], sha_root[65];
        const char *line;
        AtReply r = {};
        KeygenCheck check;
        int k;

        /* 1 */
        step_begin(p, 1, "Putting the modem offline (AT+CFUN=4, was %u)", p->prev_cfun);
        k = provision_command(p, CTL_COMMAND_TIMEOUT_USEC, &r, "AT+CFUN=4");
        p->cfun_changed = true; /* even a failed attempt may have changed it */
        if (k < 0)
                return FAIL(CTL_EXIT_FAILED, "AT+CFUN=4: %s", r.description);
        at_reply_done(&r);
        step_ok("ok");

        /* 2 */
        step_begin(p, 2, "Checking security tag %u for an existing key", p->sec_tag);
        k = list_tag(p, entries, present, &r);
        if (k < 0)
                return FAIL(CTL_EXIT_FAILED, "AT%%CMNG=1,%u: %s", p->sec_tag, r.description);
        at_reply_done(&r);
        if (present[CRED_CLIENT_KEY] && !ctl_args.force)
                return FAIL(CTL_EXIT_EXISTS,
                                 "security tag %u already holds a private key; run again with --force to replace "
                                 "the key and the certificate (the gateway then needs onboarding again)",
                                 p->sec_tag);
        k = delete_cred(p, CRED_CLIENT_CERT, &r);
        if (k >= 0)
                k = delete_cred(p, CRED_CLIENT_KEY, &r);
        if (k < 0)
                return FAIL(CTL_EXIT_FAILED, "deleting the old credentials: %s", r.description);
        at_reply_done(&r);
        step_ok(present[CRED_CLIENT_KEY] ? "old key and certificate deleted (--force)" : "no key, ok");

        /* 3 */
        /* With a configured device id the CSR must carry it as CN (nrf91-at.md §1.5), not the UUID. */
        if (streq(p->device_id, p->uuid))
                step_begin(p, 3, "Generating the key in the modem (AT%%KEYGEN=%u,2,0)", p->sec_tag);
        else
                step_begin(p, 3, "Generating the key in the modem (AT%%KEYGEN=%u,2,0,\"CN=%s\")", p->sec_tag,
                           p->device_id);
        if (streq(p->device_id, p->uuid))
                k = provision_command(p, CTL_KEYGEN_TIMEOUT_USEC, &r, "AT%%KEYGEN=%u,2,0", p->sec_tag);
        else
                k = provision_command(p, CTL_KEYGEN_TIMEOUT_USEC, &r, "AT%%KEYGEN=%u,2,0,\"CN=%s\"", p->sec_tag,
                                      p->device_id);
        if (k < 0)
                return FAIL(CTL_EXIT_FAILED, "%s", r.description);
        p->key_generated = true;
        line = ctl_reply_find(&r, "%KEYGEN:");
        k = line ? at_parse_quoted(line, "%KEYGEN", COSE_INPUT_MAX, &keygen_text) : -EBADMSG;
        at_reply_done(&r);
        if (k < 0)
                return FAIL(CTL_EXIT_FAILED, "the modem's answer holds no %%KEYGEN result");
        step_ok("ok");

        /* 4 */
        step_begin(p, 4, "Checking the COSE signature payload (CSR SHA-256, UUID, security tag)");
        k = keygen_decode(keygen_text, strlen(keygen_text), &p->keygen);
        if (k < 0)
                return FAIL(CTL_EXIT_VERIFY, "the %%KEYGEN result cannot be decoded");
        check = keygen_verify(p->keygen, p->uuid, p->sec_tag);
        if (check != KEYGEN_CHECK_OK)
                return FAIL(CTL_EXIT_VERIFY, "%s (signed UUID %s, security tag %u)",
                                 keygen_check_to_string(check), p->keygen->uuid, p->keygen->sec_tag);
        step_ok("ok");

        /* 5 */
        step_begin(p, 5, "Checking the CSR and signing it with the CA (%u days)", ctl_args.days);
        k = pki_csr_parse(p->keygen->body, p->keygen->body_len, &p->csr);
        if (k < 0)
                return FAIL(CTL_EXIT_VERIFY, "the CSR is not a valid, self-signed EC request");
        k = pki_csr_common_name(p->csr, &cn);
        if (k < 0)
                return FAIL(CTL_EXIT_VERIFY, "the CSR has no single common name");
        if (!streq(cn, p->device_id))
                return FAIL(CTL_EXIT_VERIFY, "the CSR's CN '%s' is not the device id '%s'", cn, p->device_id);
        k = pki_sign_csr(p->csr, p->ca, p->ca_key, ctl_args.days, &p->cert);
        if (k >= 0)
                k = pki_cert_to_pem(p->cert, &p->cert_pem);
        if (k < 0)
                return FAIL(CTL_EXIT_FAILED, "signing the CSR: %s", strerror(-k));
        p->cert_crlf = pki_crlf_normalize(p->cert_pem);
        p->root_crlf = pki_crlf_normalize(p->root_pem);
        if (!p->cert_crlf || !p->root_crlf)
                return FAIL(CTL_EXIT_FAILED, "out of memory");
        step_ok("CN=%s", cn);

        /* 6 */
        step_begin(p, 6, "Writing the device certificate (type 1) and the root CA (type 0)");
        if (strlen(p->root_crlf) + 64 > AT_COMMAND_MAX || strlen(p->cert_crlf) + 64 > AT_COMMAND_MAX)
                return FAIL(CTL_EXIT_FAILED, "a credential is longer than a %u-byte AT command",
                                 AT_COMMAND_MAX);
        k = delete_cred(p, CRED_ROOT_CA, &r);
        if (k < 0)
                return FAIL(CTL_EXIT_FAILED, "deleting the old root CA: %s", r.description);
        k = provision_command(p, CTL_COMMAND_TIMEOUT_USEC, &r, "AT%%CMNG=0,%u,1,\"%s\"", p->sec_tag, p->cert_crlf);
        if (k < 0)
                return FAIL(CTL_EXIT_FAILED, "writing the device certificate: %s", r.description);
        at_reply_done(&r);
        k = provision_command(p, CTL_COMMAND_TIMEOUT_USEC, &r, "AT%%CMNG=0,%u,0,\"%s\"", p->sec_tag, p->root_crlf);
        if (k < 0)
                return FAIL(CTL_EXIT_FAILED, "writing the root CA: %s", r.description);
        at_reply_done(&r);
        step_ok("ok");

        /* 7 */
        step_begin(p, 7, "Reading back the SHA-256 of each credential");
        memset(present, 0, sizeof(bool) * 3);
        k = list_tag(p, entries, present, &r);
        if (k < 0)
                return FAIL(CTL_EXIT_FAILED, "AT%%CMNG=1,%u: %s", p->sec_tag, r.description);
        at_reply_done(&r);
        pki_sha256_hex(p->cert_crlf, strlen(p->cert_crlf), sha_cert);
        pki_sha256_hex(p->root_crlf, strlen(p->root_crlf), sha_root);
        if (!present[CRED_CLIENT_KEY])
                return FAIL(CTL_EXIT_VERIFY, "the private key is not in security tag %u", p->sec_tag);
        if (!present[CRED_CLIENT_CERT] || !entries[CRED_CLIENT_CERT].has_sha ||
            !streq(entries[CRED_CLIENT_CERT].sha256, sha_cert))
                return FAIL(CTL_EXIT_VERIFY, "the device certificate reads back as %s, expected %s",
                                 present[CRED_CLIENT_CERT] ? entries[CRED_CLIENT_CERT].sha256 : "(absent)", sha_cert);
        if (!present[CRED_ROOT_CA] || !entries[CRED_ROOT_CA].has_sha || !streq(entries[CRED_ROOT_CA].sha256, sha_root))
                return FAIL(CTL_EXIT_VERIFY, "the root CA reads back as %s, expected %s",
                                 present[CRED_ROOT_CA] ? entries[CRED_ROOT_CA].sha256 : "(absent)", sha_root);
        step_ok("certificate %.16s..., root CA %.16s..., key present", sha_cert, sha_root);

        /* 8 */
        step_begin(p, 8, "Restoring CFUN=%u", p->prev_cfun);
        k = provision_command(p, CTL_COMMAND_TIMEOUT_USEC, &r, "AT+CFUN=%u", p->prev_cfun);
        if (k < 0)
                return FAIL(CTL_EXIT_FAILED, "AT+CFUN=%u: %s", p->prev_cfun, r.description);
        at_reply_done(&r);
        p->cfun_changed = false;
        step_ok("ok");

        /* 9 */
        if (ctl_args.csv) {
                step_begin(p, 9, "Appending the onboarding row to %s", ctl_args.csv);
                k = csv_append(ctl_args.csv, p->device_id, strempty(ctl_args.subtype), strempty(ctl_args.tags),
                               ctl_args.fw_types, p->cert_pem);
                if (k < 0)
                        return FAIL(CTL_EXIT_FAILED, "cannot write %s: %s", ctl_args.csv, strerror(-k));
                step_ok("ok");
        } else {
                step_begin(p, 9, "Onboarding row (no --csv given, printed below)");
                step_ok("ok");
                (void) csv_field(stdout, p->device_id, false);
                printf(",");
                (void) csv_field(stdout, strempty(ctl_args.subtype), false);
                printf(",");
                (void) csv_field(stdout, strempty(ctl_args.tags), false);
                printf(",");
                (void) csv_field(stdout, ctl_args.fw_types, false);
                printf(",");
                (void) csv_field(stdout, p->cert_pem, true);
                printf("\n");
        }
        return CTL_EXIT_OK;
}
#undef FAIL

int verb_provision(int argc, char *argv[], CtlOptions *o) {
        Provision p = { .o = o };
        char err[512] = "";
        const char *line;
        AtReply r;
        int k;
        (void) argc;
        (void) argv;

        if (!ctl_args.ca_cert || !ctl_args.ca_key) {
                fprintf(stderr, "provision needs --ca-cert FILE and --ca-key FILE (make them with 'ca create')\n");
                return CTL_EXIT_USAGE;
        }
        if (!fw_types_valid(ctl_args.fw_types)) {
                fprintf(stderr, "Invalid --fw-types=%s: '|'-separated from APP, MODEM, MDM_FULL, BOOT, SOFTDEVICE, "
                                "BOOTLOADER\n", ctl_args.fw_types);
                return CTL_EXIT_USAGE;
        }
        if ((ctl_args.tags && strpbrk(ctl_args.tags, "\r\n")) || (ctl_args.subtype && strpbrk(ctl_args.subtype, "\r\n"))) {
                fprintf(stderr, "--tags and --subtype must be single lines\n");
                return CTL_EXIT_USAGE;
        }
        p.sec_tag = o->config->sec_tag;

        k = pki_ca_load(ctl_args.ca_cert, ctl_args.ca_key, &p.ca, &p.ca_key, err, sizeof err);
        if (k < 0) {
                fprintf(stderr, "Cannot use the CA: %s\n", err);
                provision_done(&p);
                return CTL_EXIT_FAILED;
        }
        if (ctl_args.root_ca) {
                k = pki_read_text_file(ctl_args.root_ca, &p.root_pem);
                if (k < 0) {
                        fprintf(stderr, "Cannot read %s: %s\n", ctl_args.root_ca, strerror(-k));
                        provision_done(&p);
                        return CTL_EXIT_FAILED;
                }
        } else {
                p.root_pem = strdup(ctl_amazon_root_ca_1);
                if (!p.root_pem) {
                        provision_done(&p);
                        return CTL_EXIT_FAILED;
                }
        }
        if (pki_check_certificates(p.root_pem) < 0 || strchr(p.root_pem, '"')) {
                fprintf(stderr, "The root CA file holds no PEM certificate\n");
                provision_done(&p);
                return CTL_EXIT_FAILED;
        }

        k = ctl_session_open(&p.s, o->config);
        if (k != CTL_EXIT_OK) {
                provision_done(&p);
                return k;
        }
        k = ctl_read_uuid(&p.s, p.uuid);
        if (k < 0) {
                fprintf(stderr, "Cannot read the device UUID (AT#XUUID): %s\n", strerror(-k));
                provision_done(&p);
                return CTL_EXIT_FAILED;
        }
        p.device_id = o->config->device_id ? o->config->device_id : p.uuid;
        k = ctl_command(&p.s, CTL_COMMAND_TIMEOUT_USEC, &r, "AT+CFUN?");
        line = k >= 0 ? ctl_reply_find(&r, "+CFUN:") : NULL;
        if (!line || at_parse_cfun(line, &p.prev_cfun) < 0) {
                fprintf(stderr, "Cannot read the modem's CFUN mode: %s\n", k < 0 ? r.description : "unexpected answer");
                at_reply_done(&r);
                provision_done(&p);
                return CTL_EXIT_FAILED;
        }
        at_reply_done(&r);
        printf("Provisioning device %s on %s, security tag %u\n", p.device_id, o->config->modem_port, p.sec_tag);

        k = run_steps(&p);
        if (k != CTL_EXIT_OK) {
                provision_restore_cfun(&p);
                if (p.key_generated && k != CTL_EXIT_EXISTS)
                        fprintf(stderr, "The key made in step 3 stays in the modem; run again with --force.\n");
        } else
                printf("Done. Upload the onboarding CSV to nRF Cloud (bulk onboarding) to register device %s.\n",
                       p.device_id);
        provision_done(&p);
        return k;
}
