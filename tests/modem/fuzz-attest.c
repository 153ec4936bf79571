/* SPDX-License-Identifier: MIT */
/* The %ATTESTTOKEN decoder over arbitrary text. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "cose.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        AttestToken t;

        if (attest_decode((const char *) data, size, &t) >= 0) {
                if (!uuid_string_is_valid(t.uuid) || !uuid_string_is_valid(t.fw_uuid))
                        abort();
                (void) attest_msg_type_to_string(t.msg_type);
                (void) attest_device_type_to_string(t.device_type);
        }
        return 0;
}
