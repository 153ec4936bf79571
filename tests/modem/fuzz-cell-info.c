/* SPDX-License-Identifier: MIT */
/* The %XMONITOR and %NCELLMEAS parsers over one line. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cell-info.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *line = (const char *) data;
        CellMonitor mon;
        CellMeasurement meas;

        if (size > 8192)
                return 0;
        if (cell_parse_xmonitor(line, size, &mon) == 0 && mon.registered &&
            (mon.id.eci > CELL_ECI_MAX || mon.id.tac > 0xffff || mon.pci > 503 || mon.id.mcc > 999))
                abort();
        if (cell_parse_ncellmeas(line, size, &meas) == 0) {
                if (meas.n_neighbours > CELL_NEIGHBOURS_MAX || meas.status > 2)
                        abort();
                if (meas.has_serving && (meas.id.eci > CELL_ECI_MAX || meas.pci > 503))
                        abort();
                for (size_t i = 0; i < meas.n_neighbours; i++)
                        if (meas.neighbours[i].pci > 503 || meas.neighbours[i].earfcn > 262143)
                                abort();
        }
        return 0;
}
