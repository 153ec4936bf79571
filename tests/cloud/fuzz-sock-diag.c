/* SPDX-License-Identifier: MIT */
/* The sock_diag reply parser the bridge uses to tell who connected to it. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>

#include "bridge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint64_t inode = UINT64_MAX;
        uint32_t uid = UINT32_MAX, lo = htonl(0x7F000001);
        int r = sock_diag_parse_tcp4(data, size, 7, lo, 50000, lo, 8080, &inode, &uid);
        if (r > 0 || r < -4095)
                abort();
        if (r != 0 && (inode != UINT64_MAX || uid != UINT32_MAX))
                abort(); /* written only on success */
        return 0;
}
