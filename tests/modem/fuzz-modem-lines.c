/* SPDX-License-Identifier: MIT */
/* Every information-line parser (%CMNG list, #XUUID, +CGSN, +CGMR, #XSMVER, +CFUN, quoted answers, JWTs) over one line. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "identity.h"
#include "jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char uuid[MODEM_UUID_STRING_MAX], imei[MODEM_IMEI_STRING_MAX], red[MODEM_IMEI_STRING_MAX];
        char *line, *s = NULL, *s2 = NULL;
        unsigned v[3], cfun;
        CmngEntry e;

        if (size > 8192)
                return 0;
        line = strndup((const char *) data, size); /* the engine hands out NUL-terminated lines */
        if (!line)
                return 0;
        if (at_parse_cmng_list(line, &e) >= 0 && e.has_sha && strlen(e.sha256) != 64)
                abort();
        if (at_parse_xuuid(line, uuid) >= 0 && !uuid_string_is_valid(uuid))
                abort();
        if (at_parse_cgsn(line, imei) >= 0)
                (void) imei_redact(imei, red);
        if (at_parse_cgmr(line, &s) >= 0) {
                (void) mfw_version_parse(s, v);
                free(s);
        }
        s = NULL;
        if (at_parse_smver(line, &s, &s2) >= 0) {
                free(s);
                free(s2);
        }
        (void) at_parse_cfun(line, &cfun);
        {
                int32_t rsrp, rsrq;
                if (at_parse_cesq(line, &rsrp, &rsrq) >= 0 &&
                    ((rsrp != AT_CESQ_UNKNOWN && (rsrp < -141 || rsrp > -44)) ||
                     (rsrq != AT_CESQ_UNKNOWN && (rsrq < -200 || rsrq > -30))))
                        abort();
        }
        s = NULL;
        if (at_parse_quoted(line, "%JWT", MODEM_JWT_MAX, &s) >= 0)
                free(s);
        (void) mfw_version_parse(line, v);
        {
                char *h = NULL, *c = NULL;
                uint8_t *sig = NULL;
                size_t sig_len;
                int64_t exp;
                if (jwt_decode(line, &h, &c, &sig, &sig_len) >= 0) {
                        free(h);
                        free(c);
                        free(sig);
                }
                (void) jwt_get_exp(line, &exp);
        }
        free(line);
        return 0;
}
