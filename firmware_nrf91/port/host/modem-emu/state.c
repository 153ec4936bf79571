/* SPDX-License-Identifier: MIT */
/*
 * The emulated modem's non-volatile memory, in the state directory:
 *
 *   identity           "key=value" lines: uuid, imei, iccid, fw_version
 *   identity-key.pem   the simulated device identity key (P-256, PKCS#8)
 *   credentials        the %CMNG store: a header line, then per entry
 *                      "<tag> <type> <content length> <password length>\n",
 *                      the content bytes, the password bytes and "\n"
 *
 * Every file is replaced as a whole: written to "<name>.tmp", fsync()ed,
 * renamed over the old one, then the directory is fsync()ed, so a crash
 * leaves either the old or the new version.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto.h"
#include "modem-emu-internal.h"

#define CRED_HEADER "nrf91-modem-emu credentials 1\n"
#define STATE_FILE_MAX (16u << 20)

void modem_emu_set_sync(ModemEmu *m, bool sync) {
        m->sync = sync;
}

static int write_all(int fd, const void *data, size_t len) {
        const char *p = data;
        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

static int write_file_atomic(ModemEmu *m, const char *name, const void *data, size_t len, mode_t mode) {
        char path[4096], tmp[4096 + 8];
        int fd, r;

        if ((size_t) snprintf(path, sizeof path, "%s/%s", m->state_dir, name) >= sizeof path)
                return -ENAMETOOLONG;
        snprintf(tmp, sizeof tmp, "%s.tmp", path);

        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        if (fd < 0)
                return -errno;
        r = write_all(fd, data, len);
        if (r == 0 && m->sync && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlink(tmp);
                return r;
        }
        if (m->sync) {
                int dfd = open(m->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd >= 0) {
                        (void) fsync(dfd);
                        close(dfd);
                }
        }
        return 0;
}

/* Reads a whole file; -ENOENT if missing. */
static int read_file(ModemEmu *m, const char *name, char **ret, size_t *ret_len) {
        char path[4096];
        struct stat st;
        char *buf;
        size_t got = 0;
        int fd;

        if ((size_t) snprintf(path, sizeof path, "%s/%s", m->state_dir, name) >= sizeof path)
                return -ENAMETOOLONG;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t) st.st_size > STATE_FILE_MAX) {
                close(fd);
                return -EBADMSG;
        }
        buf = malloc((size_t) st.st_size + 1);
        if (!buf) {
                close(fd);
                return -ENOMEM;
        }
        while (got < (size_t) st.st_size) {
                ssize_t n = read(fd, buf + got, (size_t) st.st_size - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        int e = n < 0 ? -errno : -EBADMSG;
                        free(buf);
                        close(fd);
                        return e;
                }
                got += (size_t) n;
        }
        close(fd);
        buf[got] = 0;
        *ret = buf;
        *ret_len = got;
        return 0;
}

static int mkdir_p(const char *path) {
        char buf[4096];
        size_t len = strlen(path);

        if (len == 0 || len >= sizeof buf)
                return -EINVAL;
        memcpy(buf, path, len + 1);
        for (size_t i = 1; i <= len; i++) {
                if (buf[i] != '/' && buf[i] != 0)
                        continue;
                char saved = buf[i];
                buf[i] = 0;
                if (mkdir(buf, 0700) < 0 && errno != EEXIST)
                        return -errno;
                buf[i] = saved;
        }
        return 0;
}

bool modem_emu_uuid_valid(const char *s) {
        if (!s || strlen(s) != MODEM_EMU_UUID_LEN)
                return false;
        for (size_t i = 0; i < MODEM_EMU_UUID_LEN; i++) {
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;
                if (dash ? s[i] != '-' : !isxdigit((unsigned char) s[i]))
                        return false;
        }
        return true;
}

bool modem_emu_imei_valid(const char *s) {
        if (!s || strlen(s) != MODEM_EMU_IMEI_LEN)
                return false;
        for (size_t i = 0; i < MODEM_EMU_IMEI_LEN; i++)
                if (!isdigit((unsigned char) s[i]))
                        return false;
        return true;
}

static void uuid_format(const uint8_t b[16], char out[MODEM_EMU_UUID_LEN + 1]) {
        char hex[33];
        emu_hex(b, 16, false, hex);
        snprintf(out, MODEM_EMU_UUID_LEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
                 hex + 20);
}

static int uuid_parse(const char *s, uint8_t out[16]) {
        char hex[33];
        size_t n = 0;
        for (const char *p = s; *p; p++)
                if (*p != '-' && n < 32)
                        hex[n++] = *p;
        return n == 32 ? emu_unhex(hex, 32, out) : -EINVAL;
}

/* Luhn check digit over the digits given. */
static char luhn_digit(const char *digits, size_t n) {
        unsigned sum = 0;
        for (size_t i = 0; i < n; i++) {
                unsigned d = (unsigned) (digits[n - 1 - i] - '0');
                if (i % 2 == 0) {
                        d *= 2;
                        if (d > 9)
                                d -= 9;
                }
                sum += d;
        }
        return (char) ('0' + (10 - sum % 10) % 10);
}

static int random_digits(char *out, size_t n) {
        uint8_t r[32];
        if (n > sizeof r || emu_random(r, n) < 0)
                return -EIO;
        for (size_t i = 0; i < n; i++)
                out[i] = (char) ('0' + r[i] % 10);
        return 0;
}

static int generate_uuid(char out[MODEM_EMU_UUID_LEN + 1]) {
        uint8_t b[16];
        if (emu_random(b, sizeof b) < 0)
                return -EIO;
        b[6] = (uint8_t) ((b[6] & 0x0f) | 0x40); /* version 4 */
        b[8] = (uint8_t) ((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
        uuid_format(b, out);
        return 0;
}

static int generate_imei(char out[MODEM_EMU_IMEI_LEN + 1]) {
        /* TAC of the nRF9160 (as in Nordic's examples), a random serial, the Luhn digit. */
        memcpy(out, "35265610", 8);
        if (random_digits(out + 8, 6) < 0)
                return -EIO;
        out[14] = luhn_digit(out, 14);
        out[15] = 0;
        return 0;
}

static int generate_iccid(char out[MODEM_EMU_ICCID_LEN + 1]) {
        /* 89 (telecom) 882 (international), 13 random digits, Luhn: 19 digits, padded with F. */
        memcpy(out, "89882", 5);
        if (random_digits(out + 5, 13) < 0)
                return -EIO;
        out[18] = luhn_digit(out, 18);
        out[19] = 'F';
        out[20] = 0;
        return 0;
}

void modem_emu_derive_fw_uuid(ModemEmu *m) {
        /* A modem build has its own UUID: derive it from the version string, so it changes with FOTA. */
        uint8_t h[32];
        char seed[MODEM_EMU_FW_VERSION_MAX + 32];
        int n = snprintf(seed, sizeof seed, "nrf91-modem-emu firmware %s", m->fw_version);

        emu_sha256(seed, (size_t) n, h);
        h[6] = (uint8_t) ((h[6] & 0x0f) | 0x40);
        h[8] = (uint8_t) ((h[8] & 0x3f) | 0x80);
        memcpy(m->fw_uuid_bin, h, 16);
        uuid_format(h, m->fw_uuid);
}

int modem_emu_state_save_identity(ModemEmu *m) {
        char buf[512];
        int n = snprintf(buf, sizeof buf, "uuid=%s\nimei=%s\niccid=%s\nfw_version=%s\n", m->uuid, m->imei, m->iccid,
                         m->fw_version);
        if (n < 0 || (size_t) n >= sizeof buf)
                return -ENOBUFS;
        return write_file_atomic(m, "identity", buf, (size_t) n, 0644);
}

static int parse_identity(ModemEmu *m, char *text) {
        char *line, *save = NULL;

        for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *eq = strchr(line, '=');
                if (!eq)
                        continue;
                *eq = 0;
                const char *v = eq + 1;
                if (strcmp(line, "uuid") == 0 && modem_emu_uuid_valid(v))
                        snprintf(m->uuid, sizeof m->uuid, "%s", v);
                else if (strcmp(line, "imei") == 0 && modem_emu_imei_valid(v))
                        snprintf(m->imei, sizeof m->imei, "%s", v);
                else if (strcmp(line, "iccid") == 0 && strlen(v) <= MODEM_EMU_ICCID_LEN && *v)
                        snprintf(m->iccid, sizeof m->iccid, "%s", v);
                else if (strcmp(line, "fw_version") == 0 && strlen(v) <= MODEM_EMU_FW_VERSION_MAX && *v)
                        snprintf(m->fw_version, sizeof m->fw_version, "%s", v);
        }
        return 0;
}

static int load_identity_key(ModemEmu *m) {
        char *pem = NULL;
        size_t len = 0;
        int r = read_file(m, "identity-key.pem", &pem, &len);

        if (r == 0) {
                m->identity_key = emu_pkey_from_pem(pem, len, NULL);
                free(pem);
                if (!m->identity_key || !emu_pkey_is_p256(m->identity_key))
                        return -EBADMSG;
                return 0;
        }
        if (r != -ENOENT)
                return r;

        m->identity_key = emu_p256_generate();
        if (!m->identity_key)
                return -EIO;
        pem = emu_pkey_to_pem(m->identity_key);
        if (!pem)
                return -ENOMEM;
        r = write_file_atomic(m, "identity-key.pem", pem, strlen(pem), 0600);
        free(pem);
        return r;
}

static int load_credentials(ModemEmu *m) {
        char *buf = NULL;
        size_t len = 0, i;
        int r = read_file(m, "credentials", &buf, &len);

        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        if (len < strlen(CRED_HEADER) || memcmp(buf, CRED_HEADER, strlen(CRED_HEADER)) != 0) {
                free(buf);
                return -EBADMSG;
        }
        i = strlen(CRED_HEADER);
        while (i < len) {
                unsigned long long tag, clen, plen;
                int type, consumed = 0;
                char *content, *passwd = NULL;
                char *nl = memchr(buf + i, '\n', len - i);

                if (!nl)
                        goto bad;
                *nl = 0;
                if (sscanf(buf + i, "%llu %d %llu %llu%n", &tag, &type, &clen, &plen, &consumed) != 4 ||
                    buf + i + consumed != nl || tag > UINT32_MAX || type < 0 || type > 255)
                        goto bad;
                i = (size_t) (nl - buf) + 1;
                if (clen > len - i || plen > len - i - clen || len - i - clen - plen < 1 || buf[i + clen + plen] != '\n')
                        goto bad;
                content = strndup(buf + i, clen);
                if (plen > 0)
                        passwd = strndup(buf + i + clen, plen);
                if (!content || (plen > 0 && !passwd)) {
                        free(content);
                        free(passwd);
                        free(buf);
                        return -ENOMEM;
                }
                r = modem_emu_cred_put(m, (uint32_t) tag, type, content, clen, passwd);
                if (r < 0) {
                        free(buf);
                        return r;
                }
                i += clen + plen + 1;
        }
        free(buf);
        return 0;
bad:
        free(buf);
        return -EBADMSG;
}

int modem_emu_state_save_credentials(ModemEmu *m) {
        size_t cap = strlen(CRED_HEADER) + 1, len = 0;
        char *buf;
        int r;

        for (size_t i = 0; i < m->n_creds; i++)
                cap += 64 + m->creds[i].len + (m->creds[i].passwd ? strlen(m->creds[i].passwd) : 0) + 1;
        buf = malloc(cap);
        if (!buf)
                return -ENOMEM;
        len = (size_t) snprintf(buf, cap, "%s", CRED_HEADER);
        for (size_t i = 0; i < m->n_creds; i++) {
                const Credential *c = &m->creds[i];
                size_t plen = c->passwd ? strlen(c->passwd) : 0;
                len += (size_t) snprintf(buf + len, cap - len, "%" PRIu32 " %d %zu %zu\n", c->tag, c->type, c->len,
                                         plen);
                memcpy(buf + len, c->content, c->len);
                len += c->len;
                if (plen) {
                        memcpy(buf + len, c->passwd, plen);
                        len += plen;
                }
                buf[len++] = '\n';
        }
        r = write_file_atomic(m, "credentials", buf, len, 0600);
        free(buf);
        return r;
}

int modem_emu_state_load(ModemEmu *m, const char *uuid, const char *imei) {
        char *text = NULL;
        size_t len;
        bool dirty = false;
        int r;

        r = mkdir_p(m->state_dir);
        if (r < 0)
                return r;

        r = read_file(m, "identity", &text, &len);
        if (r == 0) {
                parse_identity(m, text);
                free(text);
        } else if (r != -ENOENT)
                return r;

        if (uuid) {
                if (!modem_emu_uuid_valid(uuid))
                        return -EINVAL;
                char lower[MODEM_EMU_UUID_LEN + 1];
                for (size_t i = 0; i <= MODEM_EMU_UUID_LEN; i++)
                        lower[i] = (char) tolower((unsigned char) uuid[i]);
                if (strcmp(lower, m->uuid) != 0) {
                        memcpy(m->uuid, lower, sizeof lower);
                        dirty = true;
                }
        }
        if (imei) {
                if (!modem_emu_imei_valid(imei))
                        return -EINVAL;
                if (strcmp(imei, m->imei) != 0) {
                        snprintf(m->imei, sizeof m->imei, "%s", imei);
                        dirty = true;
                }
        }
        if (!m->uuid[0]) {
                if ((r = generate_uuid(m->uuid)) < 0)
                        return r;
                dirty = true;
        }
        if (!m->imei[0]) {
                if ((r = generate_imei(m->imei)) < 0)
                        return r;
                dirty = true;
        }
        if (!m->iccid[0]) {
                if ((r = generate_iccid(m->iccid)) < 0)
                        return r;
                dirty = true;
        }
        if (!m->fw_version[0]) {
                snprintf(m->fw_version, sizeof m->fw_version, "%s", MODEM_EMU_DEFAULT_FW_VERSION);
                dirty = true;
        }
        if (uuid_parse(m->uuid, m->uuid_bin) < 0)
                return -EINVAL;
        modem_emu_derive_fw_uuid(m);

        if (dirty && (r = modem_emu_state_save_identity(m)) < 0)
                return r;
        if ((r = load_identity_key(m)) < 0)
                return r;
        return load_credentials(m);
}

/* --- the credential table --- */

static int cred_cmp(uint32_t tag, int type, const Credential *c) {
        if (tag != c->tag)
                return tag < c->tag ? -1 : 1;
        return type < c->type ? -1 : type > c->type;
}

Credential *modem_emu_cred_find(const ModemEmu *m, uint32_t tag, int type) {
        for (size_t i = 0; i < m->n_creds; i++)
                if (cred_cmp(tag, type, &m->creds[i]) == 0)
                        return &m->creds[i];
        return NULL;
}

int modem_emu_cred_put(ModemEmu *m, uint32_t tag, int type, char *content, size_t len, char *passwd) {
        Credential *c = modem_emu_cred_find(m, tag, type);
        size_t pos;

        if (c) {
                free(c->content);
                free(c->passwd);
                free(c->tls_pem);
        } else {
                if (m->n_creds >= MODEM_EMU_CRED_MAX) {
                        free(content);
                        free(passwd);
                        return -ENOSPC;
                }
                Credential *n = realloc(m->creds, sizeof(Credential) * (m->n_creds + 1));
                if (!n) {
                        free(content);
                        free(passwd);
                        return -ENOMEM;
                }
                m->creds = n;
                for (pos = 0; pos < m->n_creds && cred_cmp(tag, type, &m->creds[pos]) > 0; pos++)
                        ;
                memmove(&m->creds[pos + 1], &m->creds[pos], sizeof(Credential) * (m->n_creds - pos));
                m->n_creds++;
                c = &m->creds[pos];
                c->tag = tag;
                c->type = type;
        }
        c->content = content;
        c->len = len;
        c->passwd = passwd;
        c->tls_pem = NULL;
        emu_sha256(content, len, c->sha256);
        if (passwd && type == 2) {
                /* The modem decrypts a PKCS#8 key with its password; the TLS side gets the plain key. */
                EVP_PKEY *k = emu_pkey_from_pem(content, len, passwd);
                if (k) {
                        c->tls_pem = emu_pkey_to_pem(k);
                        EVP_PKEY_free(k);
                }
        }
        return 0;
}

int modem_emu_cred_delete(ModemEmu *m, uint32_t tag, int type) {
        Credential *c = modem_emu_cred_find(m, tag, type);
        size_t pos;

        if (!c)
                return -ENOENT;
        pos = (size_t) (c - m->creds);
        free(c->content);
        free(c->passwd);
        free(c->tls_pem);
        memmove(&m->creds[pos], &m->creds[pos + 1], sizeof(Credential) * (m->n_creds - pos - 1));
        m->n_creds--;
        return 0;
}
