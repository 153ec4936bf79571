/* SPDX-License-Identifier: MIT */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fota-job.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok) {
        if (!ok)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        for (int ble = 0; ble <= 1; ble++) {
                FotaJob j;
                FotaJobError e;
                char *out = NULL;
                int r = fota_job_parse(data, size, ble, &j, &e);

                if (r < 0)
                        continue;
                check(j.ble == (bool) ble);
                check(j.n_files >= 1 && j.n_files <= FOTA_FILES_MAX);
                for (size_t i = 0; i < j.n_files; i++)
                        check(j.files[i][0] && (!ble || !strchr(j.files[i], ' ')));
                check(j.file_size <= FOTA_FILE_SIZE_MAX);
                /* A parsed job can always be answered. */
                if (ble)
                        r = fota_ble_job_build_update(j.ble_address, j.id, FOTA_STATUS_REJECTED, 0, "Job info is invalid", &out);
                else
                        r = fota_job_build_update(j.id, FOTA_STATUS_DOWNLOADING, 50, NULL, &out);
                check(r == 0);
                free(out);
                check(fota_job_build_request(j.id, &out) == 0);
                free(out);
        }
        return 0;
}
