/* SPDX-License-Identifier: MIT */
/* The /proc/net/tcp parser the bridge uses to tell who connected to it. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>

#include "bridge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint64_t inode = UINT64_MAX;
        uint32_t lo = htonl(0x7F000001);
        int r = proc_net_tcp_find_inode((const char *) data, size, lo, 0xC350, lo, 0x1F90, &inode);
        if (r != 0 && r != -ENOENT && r != -EBADMSG)
                abort();
        if (r != 0 && inode != UINT64_MAX)
                abort(); /* written only on success */
        return 0;
}
