/* SPDX-License-Identifier: MIT */
#include <stdint.h>
#include <stdlib.h>

#include "config.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(config_freep) Config *c = NULL;
        char **errors = NULL;

        if (size > CONFIG_FILE_MAX || config_new(&c) < 0)
                return 0;
        (void) config_parse_string(c, "fuzz.conf", (const char *) data, size, &errors);
        (void) config_verify(c, &errors);
        /* Whatever was accepted must print and compare without trouble. */
        FILE *f = fopen("/dev/null", "w");
        if (f) {
                config_dump(c, f, true);
                fclose(f);
        }
        strv_free(errors);
        return 0;
}
