/* SPDX-License-Identifier: MIT */
/*
 * nrfcloud-gatewayctl outbox: what the daemon's outbox holds, read with the
 * outbox's own loader in read-only mode.  Nothing in the folder is changed,
 * and a folder that a running daemon holds (its flock()) is refused: the
 * listing would be a moving target, and a torn last record would look like
 * damage.  The part a crash left in the runtime directory (the same one as
 * for the port locks) is merged in.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "outbox.h"
#include "serial.h"
#include "util.h"

/* Payloads are shown as text when they are printable UTF-8 (g2c JSON is); else only their size. */
static bool payload_is_text(const OutboxEntry *e) {
        json_t *s;

        for (size_t i = 0; i < e->payload_len; i++)
                if (e->payload[i] < 0x20 || e->payload[i] == 0x7f)
                        return false;
        /* jansson validates UTF-8. */
        s = json_stringn((const char *) e->payload, e->payload_len);
        if (!s)
                return false;
        json_decref(s);
        return true;
}

static int print_entry(const OutboxEntry *e, void *userdata) {
        (void) userdata;
        printf("%10llu  %-12s  %7zu  %s", (unsigned long long) e->seq, outbox_class_to_string(e->class),
               e->payload_len, e->topic);
        if (payload_is_text(e))
                printf("  %.*s\n", (int) e->payload_len, (const char *) e->payload);
        else
                printf("  (%zu bytes, not text)\n", e->payload_len);
        return 0;
}

static int add_entry(const OutboxEntry *e, void *userdata) {
        json_t *entries = userdata, *j;

        j = json_pack("{s:I,s:s,s:s,s:I}", "seq", (json_int_t) e->seq, "class", outbox_class_to_string(e->class),
                      "topic", e->topic, "size", (json_int_t) e->payload_len);
        if (!j)
                return -ENOMEM;
        if (json_object_set_new(j, "payload",
                                payload_is_text(e) ? json_stringn((const char *) e->payload, e->payload_len)
                                                   : json_null()) < 0 ||
            json_array_append_new(entries, j) < 0)
                return -ENOMEM;
        return 0;
}

int verb_outbox(int argc, char *argv[], CtlOptions *o) {
        _cleanup_(outbox_freep) Outbox *box = NULL;
        _cleanup_free_ char *dir = NULL, *runtime = NULL;
        const char *state = ctl_args.state_dir ?: o->config->state_directory;
        unsigned damaged;
        int r;
        (void) argc;
        (void) argv;

        if (ctl_args.positional[0]) {
                fprintf(stderr, "Usage: %s outbox [--state-dir DIR] [--json]\n", program_invocation_short_name);
                return CTL_EXIT_USAGE;
        }
        /* The daemon holds its folder: it answers for it. */
        if (!ctl_args.state_dir && ctl_daemon_running())
                return ctl_bus_outbox();
        if (asprintf(&dir, "%s/outbox", state) < 0)
                return CTL_EXIT_FAILED;

        /* What a crash left in the daemon's runtime directory is part of the outbox. */
        if (asprintf(&runtime, "%s/outbox", serial_runtime_dir()) < 0)
                return CTL_EXIT_FAILED;
        r = outbox_open_read_only_full(dir, runtime, &box);
        if (r == -EBUSY) {
                fprintf(stderr, "The outbox %s is in use by a running nrfcloud-gatewayd; stop it first.\n", dir);
                return CTL_EXIT_BUSY;
        }
        if (r == -ENOENT || r == -ENOTDIR) {
                fprintf(stderr, "No outbox in %s: %s is %s.\n", state, dir,
                        r == -ENOENT ? "missing" : "not a directory");
                return CTL_EXIT_FAILED;
        }
        if (r < 0) {
                fprintf(stderr, "Cannot read the outbox %s: %s\n", dir, strerror(-r));
                return CTL_EXIT_FAILED;
        }
        damaged = outbox_corrupt_files(box);

        if (ctl_args.json) {
                _cleanup_free_ char *text = NULL;
                json_t *root, *entries = json_array();

                if (!entries)
                        return CTL_EXIT_FAILED;
                r = outbox_foreach(box, add_entry, entries);
                root = json_pack("{s:s,s:I,s:I,s:i,s:i,s:o}", "directory", dir, "count", (json_int_t) outbox_count(box),
                                 "bytes", (json_int_t) outbox_bytes(box), "segments", (int) outbox_segments(box),
                                 "damaged_files", (int) damaged, "entries", entries);
                text = root && r >= 0 ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
                json_decref(root);
                if (!text) {
                        fprintf(stderr, "Out of memory\n");
                        return CTL_EXIT_FAILED;
                }
                printf("%s\n", text);
        } else {
                printf("Outbox:    %s\n", dir);
                printf("Messages:  %llu (%llu bytes of topics and payloads)\n",
                       (unsigned long long) outbox_count(box), (unsigned long long) outbox_bytes(box));
                printf("Segments:  %u\n", outbox_segments(box));
                if (outbox_count(box) > 0) {
                        printf("\n%10s  %-12s  %7s  %s\n", "SEQ", "CLASS", "SIZE", "TOPIC  PAYLOAD");
                        (void) outbox_foreach(box, print_entry, NULL);
                }
        }
        if (damaged > 0) {
                fprintf(stderr,
                        "%u file(s) of %s are damaged: their intact records are listed, the damaged ones "
                        "skipped. The daemon moves the damaged bytes aside when it starts.\n",
                        damaged, dir);
                return CTL_EXIT_VERIFY;
        }
        return CTL_EXIT_OK;
}
