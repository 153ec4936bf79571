/* SPDX-License-Identifier: MIT */
/*
 * The outbox file reader: the pure segment parser over any bytes, then the
 * whole load path (outbox_new() on a folder holding those bytes as a segment),
 * which must keep only entries of valid records, never fail, and leave a
 * folder that loads without damage the next time.
 */
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "log.h"
#include "outbox.h"

typedef struct Count {
        uint64_t entries;
        uint64_t removes;
} Count;

static int count_cb(OutboxRecordType type, OutboxClass class, uint64_t seq, const char *topic, size_t topic_len,
                    const uint8_t *payload, size_t payload_len, void *userdata) {
        Count *c = userdata;
        (void) seq, (void) payload;
        if (class >= _OUTBOX_CLASS_MAX || topic_len > OUTBOX_TOPIC_MAX || payload_len > OUTBOX_PAYLOAD_MAX)
                abort();
        if (type == OUTBOX_RECORD_ENTRY) {
                if (topic_len == 0 || memchr(topic, 0, topic_len))
                        abort();
                c->entries++;
        } else
                c->removes++;
        return 0;
}

/* Removes our own mkdtemp() folder: <tmp>/o/<files> and <tmp>/o and <tmp>. */
static void rm_dir(const char *tmp) {
        char sub[96];
        DIR *d;

        snprintf(sub, sizeof sub, "%s/o", tmp);
        d = opendir(sub);
        if (d) {
                struct dirent *de;
                while ((de = readdir(d)))
                        if (de->d_name[0] != '.')
                                (void) unlinkat(dirfd(d), de->d_name, 0);
                closedir(d);
        }
        (void) rmdir(sub);
        if (rmdir(tmp) < 0)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const OutboxLimits lim = { .max_messages = UINT64_MAX, .max_bytes = UINT64_MAX };
        /* tmpfs when there is one: the load path fsyncs, which a disk makes slow. */
        char tmp[64], dir[80], path[112];
        Count c = { 0 };
        size_t good = 0;
        Outbox *o = NULL;
        FILE *f;
        int r;

        log_set_max_level(LOG_CRIT);
        r = outbox_parse_segment(data, size, count_cb, NULL, &c, &good);
        if (good > size || (r == 0 && good != size) || (r != 0 && r != -EBADMSG))
                abort();

        snprintf(tmp, sizeof tmp, "%s/fuzz-outbox-XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (!mkdtemp(tmp))
                return 0;
        snprintf(dir, sizeof dir, "%s/o", tmp);
        snprintf(path, sizeof path, "%s/0000000000000001.seg", dir);
        if (mkdir(dir, 0700) < 0 || !(f = fopen(path, "wb"))) {
                rm_dir(tmp);
                return 0;
        }
        if (size > 0 && fwrite(data, 1, size, f) != size)
                abort();
        fclose(f);

        r = outbox_new(dir, &lim, &o);
        if (r < 0)
                abort();
        /* Only entries of the valid prefix can be live, and each at most once. */
        if (outbox_count(o) > c.entries || outbox_corrupt_files(o) != (good != size && !outbox_torn_creation(data, size) ? 1u : 0u))
                abort();
        {
                OutboxEntry e;
                uint64_t last = 0;
                while (outbox_peek_unsent(o, &e)) {
                        if (e.seq <= last && last != 0)
                                abort();
                        last = e.seq;
                        outbox_mark_sent(o, e.seq);
                }
        }
        o = outbox_free(o);
        /* The first load repaired the folder: the second finds nothing damaged, and the same entries. */
        {
                uint64_t n;
                if (outbox_new(dir, &lim, &o) < 0)
                        abort();
                n = outbox_count(o);
                if (outbox_corrupt_files(o) != 0 || n > c.entries)
                        abort();
                o = outbox_free(o);
        }
        rm_dir(tmp);
        return 0;
}
