/* SPDX-License-Identifier: MIT */
/* The %KEYGEN decoder (base64url CSR + COSE_Sign1) over arbitrary text. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "cose.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        KeygenResult *k = NULL;

        if (keygen_decode((const char *) data, size, &k) >= 0) {
                if (k->body_len == 0 || !uuid_string_is_valid(k->uuid))
                        abort();
                (void) keygen_verify(k, k->uuid, k->sec_tag);
                keygen_result_free(k);
        }
        return 0;
}
