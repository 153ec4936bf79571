/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cose.h"
#include "identity.h"
#include "jwt.h"
#include "macro.h"

static int decode_text(const char *s, size_t n, char **ret) {
        uint8_t *p = NULL;
        size_t len;
        char *t;
        int r;

        r = base64url_decode(s, n, &p, &len);
        if (r < 0)
                return r;
        if (memchr(p, 0, len)) {
                free(p);
                return -EBADMSG;
        }
        t = realloc(p, len + 1);
        if (!t) {
                free(p);
                return -ENOMEM;
        }
        t[len] = 0;
        *ret = t;
        return 0;
}

int jwt_decode(const char *jwt, char **ret_header, char **ret_claims, uint8_t **ret_sig, size_t *ret_sig_len) {
        _cleanup_free_ char *header = NULL, *claims = NULL;
        _cleanup_free_ uint8_t *sig = NULL;
        const char *d1, *d2;
        size_t len = strlen(jwt), sig_len;
        int r;

        if (len == 0 || len > MODEM_JWT_MAX)
                return -EBADMSG;
        d1 = strchr(jwt, '.');
        if (!d1)
                return -EBADMSG;
        d2 = strchr(d1 + 1, '.');
        if (!d2 || strchr(d2 + 1, '.'))
                return -EBADMSG;
        r = decode_text(jwt, (size_t) (d1 - jwt), &header);
        if (r < 0)
                return r;
        r = decode_text(d1 + 1, (size_t) (d2 - d1 - 1), &claims);
        if (r < 0)
                return r;
        r = base64url_decode(d2 + 1, strlen(d2 + 1), &sig, &sig_len);
        if (r < 0)
                return r;
        if (ret_header)
                *ret_header = TAKE_PTR(header);
        if (ret_claims)
                *ret_claims = TAKE_PTR(claims);
        if (ret_sig) {
                *ret_sig = TAKE_PTR(sig);
                *ret_sig_len = sig_len;
        }
        return 0;
}

int jwt_get_exp(const char *jwt, int64_t *ret) {
        _cleanup_free_ char *claims = NULL;
        json_t *root, *exp;
        json_error_t err;
        int r;

        r = jwt_decode(jwt, NULL, &claims, NULL, NULL);
        if (r < 0)
                return r;
        root = json_loads(claims, JSON_REJECT_DUPLICATES, &err);
        if (!root || !json_is_object(root)) {
                json_decref(root);
                return -EBADMSG;
        }
        exp = json_object_get(root, "exp");
        if (!exp) {
                json_decref(root);
                return -ENOENT;
        }
        if (!json_is_integer(exp)) {
                json_decref(root);
                return -EBADMSG;
        }
        *ret = (int64_t) json_integer_value(exp);
        json_decref(root);
        return 0;
}
