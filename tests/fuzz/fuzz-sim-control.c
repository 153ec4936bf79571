/* SPDX-License-Identifier: MIT */
/*
 * nrf91-sim's control socket: the input is what a client writes, split into
 * lines as control_dispatch() splits it, each line parsed as a command.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sim-parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char line[256];

        while (size > 0) {
                const uint8_t *nl = memchr(data, '\n', size);
                size_t n = nl ? (size_t) (nl - data) : size;
                SimControlCommand c;
                char reply[512];

                /* The socket's buffer holds 255 bytes and a line is a C string. */
                if (n < sizeof line && !memchr(data, '\0', n)) {
                        memcpy(line, data, n);
                        line[n] = '\0';
                        if (n > 0 && line[n - 1] == '\r')
                                line[n - 1] = '\0';
                        reply[0] = '\0';
                        if (sim_control_parse(line, &c, reply, sizeof reply) == 0) {
                                if (c.kind < 0 || c.kind >= _SIM_CONTROL_KIND_MAX)
                                        abort();
                                if (c.kind == SIM_CONTROL_SHORT_RECV &&
                                    (c.value == 0 || c.value > SIM_SHORT_RECV_MAX || c.value2 >= c.value))
                                        abort();
                                if ((c.kind == SIM_CONTROL_CELL || c.kind == SIM_CONTROL_NCELL) &&
                                    (c.cell.earfcn > 262143 || c.cell.pci > 503 || c.cell.rsrp < 0 ||
                                     c.cell.rsrp > 97 || c.cell.rsrq < 0 || c.cell.rsrq > 34))
                                        abort();
                                if (c.kind == SIM_CONTROL_CELL &&
                                    (strlen(c.cell.plmn) < 5 || c.cell.tac > 0xffff || c.cell.ci > 0xfffffff))
                                        abort();
                        } else if (strncmp(reply, "ERROR ", 6) != 0 || !strchr(reply, '\n'))
                                abort();
                }
                n += nl != NULL;
                data += n, size -= n;
        }
        return 0;
}
