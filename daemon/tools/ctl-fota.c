/* SPDX-License-Identifier: MIT */
/*
 * nrfcloud-gatewayctl fota: the current or last FOTA job, from the state
 * file the daemon keeps (<StateDirectory>/fota/job).  Read only, so it works
 * while the daemon runs; the daemon replaces the file atomically.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "fota-store.h"

int verb_fota(int argc, char *argv[], CtlOptions *o) {
        _cleanup_free_ char *dir = NULL;
        const char *state = ctl_args.state_dir ?: o->config->state_directory;
        const char *type;
        char typebuf[16];
        FotaRecord r;
        int k;
        (void) argc;
        (void) argv;

        if (ctl_args.positional[0]) {
                fprintf(stderr, "Usage: %s fota [--state-dir DIR] [--json]\n", program_invocation_short_name);
                return CTL_EXIT_USAGE;
        }
        if (asprintf(&dir, "%s/fota", state) < 0)
                return CTL_EXIT_FAILED;
        k = fota_store_load(dir, &r);
        if (k == -ENOENT) {
                if (ctl_args.json)
                        printf("{\"job\": null}\n");
                else
                        printf("No FOTA job has run on this gateway (%s/job is missing).\n", dir);
                return 0;
        }
        if (k < 0) {
                fprintf(stderr, "Cannot read %s/job: %s\n", dir, strerror(-k));
                return CTL_EXIT_FAILED;
        }
        type = fota_type_to_string(r.type);
        if (!type) {
                snprintf(typebuf, sizeof typebuf, "%d", r.type);
                type = typebuf;
        }
        if (ctl_args.json) {
                json_t *j = json_pack("{s:s,s:s?,s:s?,s:s?,s:s?,s:s?,s:s?,s:i,s:s?,s:s?,s:s?,s:I}", "stage",
                                      fota_stage_to_string(r.stage), "id", r.id[0] ? r.id : NULL, "type",
                                      r.id[0] ? type : NULL, "url", r.url[0] ? r.url : NULL, "app_before",
                                      r.app_before[0] ? r.app_before : NULL, "modem_before",
                                      r.modem_before[0] ? r.modem_before : NULL, "modem_expected",
                                      r.modem_expected[0] ? r.modem_expected : NULL, "progress", r.progress,
                                      "report", r.has_report ? fota_status_to_string(r.report_status) : NULL,
                                      "report_message", r.has_report ? r.report_message : NULL, "last_job",
                                      r.last_job[0] ? r.last_job : NULL, "updated", (json_int_t) r.updated_sec);
                char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
                json_decref(j);
                if (!text)
                        return CTL_EXIT_FAILED;
                printf("%s\n", text);
                free(text);
                return 0;
        }
        if (r.stage == FOTA_STAGE_NONE)
                printf("No FOTA job in progress.\n");
        else {
                printf("Job:       %s (%s)\nStage:     %s\n", r.id, type, fota_stage_to_string(r.stage));
                if (r.url[0])
                        printf("File:      %s\n", r.url);
                if (r.progress >= 0)
                        printf("Download:  %d %%\n", r.progress);
                if (r.app_before[0] || r.modem_before[0])
                        printf("Before:    application %s, modem %s\n", r.app_before[0] ? r.app_before : "?",
                               r.modem_before[0] ? r.modem_before : "?");
                if (r.modem_expected[0])
                        printf("Expected:  modem %s\n", r.modem_expected);
                if (r.has_report)
                        printf("Report:    %s \"%s\" (not acknowledged by nRF Cloud yet)\n",
                               fota_status_to_string(r.report_status), r.report_message);
        }
        if (r.last_job[0])
                printf("Last job:  %s\n", r.last_job);
        if (r.updated_sec) {
                time_t t = (time_t) r.updated_sec;
                char when[64];
                if (strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %Z", localtime(&t)) > 0)
                        printf("Updated:   %s\n", when);
        }
        return 0;
}
