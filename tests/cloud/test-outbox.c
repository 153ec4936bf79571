/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <time.h>
#include <cmocka.h>

#include "log.h"
#include "outbox.h"
#include "test-fs.h"

static const OutboxLimits big = { .max_messages = 100000, .max_bytes = 64u << 20 };

/* A fresh temporary folder; the outbox lives in <tmp>/outbox. */
static char *make_tmp(void) {
        char *t = strdup("/tmp/test-outbox-XXXXXX");
        assert_non_null(t);
        assert_non_null(mkdtemp(t));
        return t;
}

static char *outbox_dir(const char *tmp) {
        char *p = NULL;
        assert_true(asprintf(&p, "%s/outbox", tmp) > 0);
        return p;
}

/* Counts files in dir whose name contains sub. */
static unsigned count_files(const char *dir, const char *sub) {
        DIR *d = opendir(dir);
        struct dirent *de;
        unsigned n = 0;
        assert_non_null(d);
        while ((de = readdir(d)))
                if (strstr(de->d_name, sub))
                        n++;
        closedir(d);
        return n;
}

/* The only segment file holding data (the others are empty, header only). */
static char *data_segment(const char *dir, uint8_t **ret_buf, size_t *ret_len) {
        DIR *d = opendir(dir);
        struct dirent *de;
        char *found = NULL;
        assert_non_null(d);
        while ((de = readdir(d))) {
                char p[512];
                struct stat st;
                if (!strstr(de->d_name, ".seg") || strstr(de->d_name, "corrupt"))
                        continue;
                snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
                assert_int_equal(stat(p, &st), 0);
                if (st.st_size > (off_t) OUTBOX_FILE_HEADER_SIZE) {
                        assert_null(found);
                        found = strdup(p);
                }
        }
        closedir(d);
        assert_non_null(found);
        if (ret_buf) {
                FILE *f = fopen(found, "rb");
                struct stat st;
                assert_non_null(f);
                assert_int_equal(stat(found, &st), 0);
                *ret_buf = malloc((size_t) st.st_size);
                assert_int_equal(fread(*ret_buf, 1, (size_t) st.st_size, f), (size_t) st.st_size);
                *ret_len = (size_t) st.st_size;
                fclose(f);
        }
        return found;
}

static void write_file(const char *path, const uint8_t *buf, size_t len) {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(buf, 1, len, f), len);
        fclose(f);
}

static void push_n(Outbox *o, OutboxClass c, unsigned from, unsigned n) {
        for (unsigned i = from; i < from + n; i++) {
                char payload[64];
                int len = snprintf(payload, sizeof payload, "{\"n\":%u}", i);
                assert_int_equal(outbox_push(o, c, "prod/team/gateways/gw1/g2c", payload, (size_t) len, NULL), 0);
        }
}

/* Takes every entry out in order (peek, mark sent, ack), checking payload numbers. */
static void drain_expect(Outbox *o, const unsigned *expect, size_t n) {
        OutboxEntry e;
        for (size_t i = 0; i < n; i++) {
                char want[64];
                assert_true(outbox_peek_unsent(o, &e));
                snprintf(want, sizeof want, "{\"n\":%u}", expect[i]);
                assert_int_equal(e.payload_len, strlen(want));
                assert_memory_equal(e.payload, want, e.payload_len);
                outbox_mark_sent(o, e.seq);
                assert_int_equal(outbox_ack(o, e.seq), 0);
        }
        assert_false(outbox_peek_unsent(o, &e));
        assert_int_equal(outbox_count(o), 0);
}

static int count_cb(OutboxRecordType type, OutboxClass class, uint64_t seq, const char *topic, size_t topic_len,
                    const uint8_t *payload, size_t payload_len, void *userdata) {
        (void) type, (void) class, (void) seq, (void) topic, (void) topic_len, (void) payload, (void) payload_len;
        (*(unsigned *) userdata)++;
        return 0;
}

static void test_crc32c(void **state) {
        (void) state;
        /* The check value of CRC-32C (RFC 3720, B.4). */
        assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
}

static void test_parse_every_prefix(void **state) {
        uint8_t buf[512];
        size_t off = OUTBOX_FILE_HEADER_SIZE, ends[3];
        (void) state;

        memcpy(buf, outbox_file_header, OUTBOX_FILE_HEADER_SIZE);
        off += outbox_encode_record(buf + off, OUTBOX_RECORD_ENTRY, OUTBOX_STATUS, 1, "a/b", 3, "xyz", 3);
        ends[0] = off;
        off += outbox_encode_record(buf + off, OUTBOX_RECORD_REMOVE, OUTBOX_NOTIFICATION, 1, NULL, 0, NULL, 0);
        ends[1] = off;
        off += outbox_encode_record(buf + off, OUTBOX_RECORD_ENTRY, OUTBOX_SHADOW, 2, "c", 1, "", 0);
        ends[2] = off;

        for (size_t cut = 0; cut <= off; cut++) {
                unsigned n = 0;
                size_t good = 12345, want_good = cut < OUTBOX_FILE_HEADER_SIZE ? 0 : OUTBOX_FILE_HEADER_SIZE;
                unsigned want_n = 0;
                int r = outbox_parse_segment(buf, cut, count_cb, NULL, &n, &good);
                for (int k = 0; k < 3; k++)
                        if (ends[k] <= cut) {
                                want_good = ends[k];
                                want_n = (unsigned) k + 1;
                        }
                assert_int_equal(good, want_good);
                assert_int_equal(n, want_n);
                assert_int_equal(r, cut == want_good && cut >= OUTBOX_FILE_HEADER_SIZE ? 0 : -EBADMSG);
        }

        /* Every single-bit flip in a record is caught by the magic, the bounds or the CRC, and
         * only that record is skipped: the reader finds the next one. */
        for (size_t i = OUTBOX_FILE_HEADER_SIZE; i < ends[0]; i++)
                for (int bit = 0; bit < 8; bit++) {
                        unsigned n = 0;
                        size_t good;
                        buf[i] ^= (uint8_t) (1u << bit);
                        assert_int_equal(outbox_parse_segment(buf, off, count_cb, NULL, &n, &good), -EBADMSG);
                        assert_int_equal(good, OUTBOX_FILE_HEADER_SIZE);
                        assert_int_equal(n, 2);
                        buf[i] ^= (uint8_t) (1u << bit);
                }
}

static void test_order_ack_rewind(void **state) {
        _cleanup_(outbox_freep) Outbox *o = NULL;
        OutboxEntry e;
        uint64_t s1, s2, s3;
        (void) state;

        assert_int_equal(outbox_new(NULL, &big, &o), 0);
        assert_false(outbox_peek_unsent(o, &e));
        assert_int_equal(outbox_push(o, OUTBOX_NOTIFICATION, "t/1", "a", 1, &s1), 0);
        assert_int_equal(outbox_push(o, OUTBOX_STATUS, "t/2", "bb", 2, &s2), 0);
        assert_int_equal(outbox_push(o, OUTBOX_SHADOW, "t/3", NULL, 0, &s3), 0);
        assert_true(s1 < s2 && s2 < s3);
        assert_int_equal(outbox_count(o), 3);
        assert_int_equal(outbox_bytes(o), 3 + 1 + 3 + 2 + 3);

        assert_true(outbox_peek_unsent(o, &e));
        assert_int_equal(e.seq, s1);
        assert_string_equal(e.topic, "t/1");
        outbox_mark_sent(o, s1);
        assert_true(outbox_peek_unsent(o, &e));
        assert_int_equal(e.seq, s2);
        assert_int_equal(e.class, OUTBOX_STATUS);
        outbox_mark_sent(o, s2);
        assert_int_equal(outbox_unsent(o), 1);

        /* Connection lost: both come back, in order. */
        outbox_rewind(o);
        assert_int_equal(outbox_unsent(o), 3);
        assert_true(outbox_peek_unsent(o, &e));
        assert_int_equal(e.seq, s1);
        outbox_mark_sent(o, s1);
        outbox_mark_sent(o, s2);
        /* Acknowledged out of order. */
        assert_int_equal(outbox_ack(o, s2), 0);
        assert_int_equal(outbox_ack(o, s2), -ENOENT);
        assert_int_equal(outbox_ack(o, s1), 0);
        assert_int_equal(outbox_count(o), 1);
        assert_true(outbox_peek_unsent(o, &e));
        assert_int_equal(e.seq, s3);
        assert_int_equal(e.payload_len, 0);
        assert_int_equal(outbox_ack(o, 999), -ENOENT);
}

/* The send order: STATUS, SHADOW, ANSWER, NOTIFICATION; by seq within a class, also after a
 * rewind and when entries are acknowledged or dropped meanwhile. */
static void test_send_priority(void **state) {
        _cleanup_(outbox_freep) Outbox *o = NULL;
        static const OutboxClass classes[] = { OUTBOX_NOTIFICATION, OUTBOX_ANSWER, OUTBOX_SHADOW,
                                               OUTBOX_STATUS, OUTBOX_NOTIFICATION, OUTBOX_STATUS,
                                               OUTBOX_ANSWER, OUTBOX_SHADOW, OUTBOX_NOTIFICATION };
        /* seq - first seq, in the order they must go */
        static const unsigned expect[] = { 3, 5, 2, 7, 1, 6, 0, 4, 8 };
        uint64_t seq[ELEMENTSOF(classes)];
        OutboxEntry e;
        (void) state;

        assert_int_equal(outbox_new(NULL, &big, &o), 0);
        assert_false(outbox_peek_next(o, &e));
        for (size_t i = 0; i < ELEMENTSOF(classes); i++)
                assert_int_equal(outbox_push(o, classes[i], "t", "x", 1, &seq[i]), 0);

        for (int round = 0; round < 2; round++) {
                for (size_t i = 0; i < ELEMENTSOF(expect); i++) {
                        assert_true(outbox_peek_next(o, &e));
                        assert_int_equal(e.seq, seq[expect[i]]);
                        assert_int_equal(e.class, classes[expect[i]]);
                        outbox_mark_sent(o, e.seq);
                }
                assert_false(outbox_peek_next(o, &e));
                assert_int_equal(outbox_unsent(o), 0);
                outbox_rewind(o); /* all of it again, in the same order */
                assert_int_equal(outbox_unsent(o), ELEMENTSOF(classes));
        }

        /* Half sent, then a new status message comes first, and the rest follows in order. */
        for (size_t i = 0; i < 4; i++) {
                assert_true(outbox_peek_next(o, &e));
                outbox_mark_sent(o, e.seq);
        }
        assert_int_equal(outbox_ack(o, seq[3]), 0);
        uint64_t late;
        assert_int_equal(outbox_push(o, OUTBOX_STATUS, "t", "y", 1, &late), 0);
        assert_true(outbox_peek_next(o, &e));
        assert_int_equal(e.seq, late);
        outbox_mark_sent(o, e.seq);
        for (size_t i = 4; i < ELEMENTSOF(expect); i++) {
                assert_true(outbox_peek_next(o, &e));
                assert_int_equal(e.seq, seq[expect[i]]);
                outbox_mark_sent(o, e.seq);
        }
        assert_false(outbox_peek_next(o, &e));
        /* The oldest-first view still gives seq order. */
        outbox_rewind(o);
        assert_true(outbox_peek_unsent(o, &e));
        assert_int_equal(e.seq, seq[0]);
}

/* The key of the tests: the topic's first letter is the device, the payload's first byte the
 * characteristic ('-': none). */
static uint64_t test_key(const char *topic, const uint8_t *payload, size_t len, uint64_t *ret_sub) {
        *ret_sub = len > 0 && payload[0] != '-' ? ((uint64_t) (uint8_t) topic[0] << 8 | payload[0]) : 0;
        return (uint8_t) topic[0];
}

/* Takes the next n entries (peek_next, mark sent) and returns their payloads joined by ','. */
static char *take_next(Outbox *o, unsigned n) {
        static char buf[512];
        size_t off = 0;
        OutboxEntry e;

        buf[0] = 0;
        for (unsigned i = 0; i < n && outbox_peek_next(o, &e); i++) {
                off += (size_t) snprintf(buf + off, sizeof buf - off, "%s%s:%.*s", i ? "," : "", e.topic,
                                         (int) e.payload_len, (const char *) e.payload);
                outbox_mark_sent(o, e.seq);
        }
        return buf;
}

/* Notifications round-robin per device: one chatty device cannot starve the others; each
 * device's own in order; a device that starts sending joins the end of the round. */
static void test_round_robin(void **state) {
        _cleanup_(outbox_freep) Outbox *o = NULL;
        static const char *const pushes[][2] = {
                { "a", "-1" }, { "a", "-2" }, { "a", "-3" }, { "a", "-4" }, { "a", "-5" },
                { "b", "-1" }, { "b", "-2" }, { "c", "-1" },
        };
        (void) state;

        assert_int_equal(outbox_new(NULL, &big, &o), 0);
        outbox_set_key_function(o, test_key, false);
        for (size_t i = 0; i < ELEMENTSOF(pushes); i++)
                assert_int_equal(outbox_push(o, OUTBOX_NOTIFICATION, pushes[i][0], pushes[i][1], 2, NULL), 0);
        assert_int_equal(outbox_push(o, OUTBOX_STATUS, "s", "-0", 2, NULL), 0);

        assert_string_equal(take_next(o, 4), "s:-0,a:-1,b:-1,c:-1");
        assert_int_equal(outbox_push(o, OUTBOX_NOTIFICATION, "d", "-1", 2, NULL), 0);
        assert_string_equal(take_next(o, 100), "a:-2,b:-2,d:-1,a:-3,a:-4,a:-5");

        /* After a connection loss, the same again from the start. */
        outbox_rewind(o);
        assert_string_equal(take_next(o, 100), "s:-0,a:-1,b:-1,c:-1,d:-1,a:-2,b:-2,a:-3,a:-4,a:-5");

        /* Acknowledged out of order, then lost: what is left comes back per device in order. */
        outbox_rewind(o);
        assert_string_equal(take_next(o, 3), "s:-0,a:-1,b:-1");
        OutboxEntry e;
        assert_true(outbox_peek_unsent(o, &e));
        assert_string_equal(e.topic, "a"); /* the oldest unsent: a:-2 */
        assert_int_equal(outbox_ack(o, e.seq - 1), 0); /* a:-1 */
        outbox_rewind(o);
        assert_string_equal(take_next(o, 100), "s:-0,a:-2,b:-1,c:-1,d:-1,a:-3,b:-2,a:-4,a:-5");

        /* Without a key function, notifications go by seq. */
        outbox_set_key_function(o, NULL, false);
        outbox_rewind(o);
        assert_string_equal(take_next(o, 100), "s:-0,a:-2,a:-3,a:-4,a:-5,b:-1,b:-2,c:-1,d:-1");
}

/* NotifyOverflow=latest: a new value of a characteristic replaces its unsent predecessor, never
 * one in flight; the replaced one does not come back from disk. */
static void test_coalesce_latest(void **state) {
        _cleanup_free_ char *tmp = make_tmp(), *dir = outbox_dir(tmp);
        _cleanup_(outbox_freep) Outbox *o = NULL;
        (void) state;

        assert_int_equal(outbox_new(dir, &big, &o), 0);
        outbox_set_key_function(o, test_key, true);
        assert_int_equal(outbox_push(o, OUTBOX_NOTIFICATION, "a", "x1", 2, NULL), 0);
        assert_int_equal(outbox_push(o, OUTBOX_NOTIFICATION, "a", "y1", 2, NULL), 0);
        assert_int_equal(outbox_push(o, OUTBOX_NOTIFICATION, "b", "x1", 2, NULL), 0);
        assert_int_equal(outbox_push(o, OUTBOX_NOTIFICATION, "a", "x2", 2, NULL), 0);
        assert_int_equal(outbox_push(o, OUTBOX_NOTIFICATION, "a", "-1", 2, NULL), 0);
        assert_int_equal(outbox_push(o, OUTBOX_NOTIFICATION, "a", "-2", 2, NULL), 0);
        assert_int_equal(outbox_push(o, OUTBOX_ANSWER, "a", "x9", 2, NULL), 0); /* answers: never */
        assert_int_equal(outbox_coalesced(o), 1);
        assert_int_equal(outbox_count(o), 6);
        assert_int_equal(outbox_dropped(o), 0);

        assert_string_equal(take_next(o, 2), "a:x9,a:y1");
        assert_int_equal(outbox_push(o, OUTBOX_NOTIFICATION, "a", "y2", 2, NULL), 0); /* y1 in flight */
        assert_int_equal(outbox_push(o, OUTBOX_NOTIFICATION, "a", "x3", 2, NULL), 0); /* x2 unsent */
        assert_int_equal(outbox_coalesced(o), 2);
        assert_string_equal(take_next(o, 100), "b:x1,a:-1,a:-2,a:y2,a:x3");
        assert_int_equal(outbox_flush(o), 0);
        o = outbox_free(o);

        /* From disk: what was replaced stays removed. */
        assert_int_equal(outbox_new(dir, &big, &o), 0);
        outbox_set_key_function(o, test_key, true);
        assert_string_equal(take_next(o, 100), "a:x9,a:y1,b:x1,a:-1,a:-2,a:y2,a:x3");
        test_rm_rf(tmp);
}

static void test_refusals(void **state) {
        _cleanup_(outbox_freep) Outbox *o = NULL;
        _cleanup_free_ uint8_t *p = calloc(1, OUTBOX_PAYLOAD_MAX + 1);
        char topic[OUTBOX_TOPIC_MAX + 2];
        (void) state;

        assert_int_equal(outbox_new(NULL, &big, &o), 0);
        assert_int_equal(outbox_push(o, OUTBOX_NOTIFICATION, "t", p, OUTBOX_PAYLOAD_MAX + 1, NULL), -EMSGSIZE);
        assert_int_equal(outbox_push(o, OUTBOX_NOTIFICATION, "t", p, OUTBOX_PAYLOAD_MAX, NULL), 0);
        memset(topic, 'a', sizeof topic - 1);
        topic[sizeof topic - 1] = 0;
        assert_int_equal(outbox_push(o, OUTBOX_NOTIFICATION, topic, "x", 1, NULL), -EMSGSIZE);
        assert_int_equal(outbox_push(o, OUTBOX_NOTIFICATION, "", "x", 1, NULL), -EINVAL);
        assert_int_equal(outbox_push(o, _OUTBOX_CLASS_MAX, "t", "x", 1, NULL), -EINVAL);
        assert_int_equal(outbox_count(o), 1);
}

static void test_drop_policy(void **state) {
        const OutboxLimits lim = { .max_messages = 8, .max_bytes = 1 << 20 };
        _cleanup_(outbox_freep) Outbox *o = NULL;
        OutboxEntry e;
        (void) state;

        assert_int_equal(outbox_new(NULL, &lim, &o), 0);
        push_n(o, OUTBOX_NOTIFICATION, 0, 2);   /* 0 1 */
        push_n(o, OUTBOX_STATUS, 100, 2);       /* 100 101 */
        push_n(o, OUTBOX_SHADOW, 200, 2);       /* 200 201 */
        push_n(o, OUTBOX_NOTIFICATION, 2, 2);   /* 2 3 */
        assert_int_equal(outbox_count(o), 8);
        assert_int_equal(outbox_dropped(o), 0);

        /* Full: the oldest notifications go first, whatever the class of the newcomer. */
        push_n(o, OUTBOX_STATUS, 102, 1);
        push_n(o, OUTBOX_NOTIFICATION, 4, 1);
        assert_int_equal(outbox_dropped(o), 2);
        /* Now 2 3 are the only notifications; three more drop 2, 3, then the newest one is kept. */
        push_n(o, OUTBOX_NOTIFICATION, 5, 2);
        assert_int_equal(outbox_dropped(o), 4);
        /* Status pushes drop notifications (4 5 6), then the oldest shadow update (200). */
        push_n(o, OUTBOX_STATUS, 103, 4);
        assert_int_equal(outbox_dropped(o), 8);
        assert_int_equal(outbox_count(o), 8);
        push_n(o, OUTBOX_STATUS, 107, 1); /* drops 201 */
        assert_int_equal(outbox_dropped(o), 9);
        /* Only status is left: nothing may be dropped, the newcomer is refused. */
        assert_int_equal(outbox_push(o, OUTBOX_STATUS, "t", "x", 1, NULL), -ENOBUFS);
        assert_int_equal(outbox_push(o, OUTBOX_NOTIFICATION, "t", "x", 1, NULL), -ENOBUFS);
        assert_int_equal(outbox_dropped(o), 9);
        {
                static const unsigned expect[] = { 100, 101, 102, 103, 104, 105, 106, 107 };
                drain_expect(o, expect, ELEMENTSOF(expect));
        }
        assert_false(outbox_peek_unsent(o, &e));
}

/* Answers to c2g operations hold at most their share, drop only each other, and are dropped last
 * by the other classes. */
static void test_answer_share(void **state) {
        const OutboxLimits lim = { .max_messages = 20, .max_bytes = 1 << 20, .answer_share_percent = 20 };
        _cleanup_(outbox_freep) Outbox *o = NULL;
        (void) state;

        assert_int_equal(outbox_new(NULL, &lim, &o), 0);
        push_n(o, OUTBOX_NOTIFICATION, 0, 10); /* 0..9 */
        /* A flood of answers: only the newest 4 (20% of 20) stay, no notification goes. */
        push_n(o, OUTBOX_ANSWER, 100, 50);
        assert_int_equal(outbox_count(o), 14);
        assert_int_equal(outbox_dropped(o), 46);
        /* Full of notifications, status and answers: an answer still drops only answers. */
        push_n(o, OUTBOX_NOTIFICATION, 10, 4); /* 0..13 */
        push_n(o, OUTBOX_STATUS, 200, 2);
        assert_int_equal(outbox_count(o), 20);
        push_n(o, OUTBOX_ANSWER, 150, 3);       /* drops 146 147 148 */
        assert_int_equal(outbox_dropped(o), 49);
        /* Notifications drop notifications before answers. */
        push_n(o, OUTBOX_NOTIFICATION, 14, 1); /* drops 0 */
        assert_int_equal(outbox_dropped(o), 50);
        {
                static const unsigned expect[] = { 1,  2,  3,   4,   5,   6,   7,   8,   9,   149,
                                                   10, 11, 12,  13,  200, 201, 150, 151, 152, 14 };
                drain_expect(o, expect, ELEMENTSOF(expect));
        }
        /* No notification, no shadow: a status push drops answers. */
        push_n(o, OUTBOX_ANSWER, 300, 4);
        push_n(o, OUTBOX_STATUS, 400, 16);
        push_n(o, OUTBOX_STATUS, 416, 1);
        assert_int_equal(outbox_count(o), 20);
        assert_int_equal(outbox_dropped(o), 51);
        /* The share is also a byte share, applied when the limits change.  Each of these
         * messages is 35 bytes: 10% of 700 bytes keeps 2 of the 3 answers. */
        {
                const OutboxLimits bytes = { .max_messages = 1000, .max_bytes = 35 * 20, .answer_share_percent = 10 };
                assert_int_equal(outbox_set_limits(o, &bytes), 0);
                assert_int_equal(outbox_count(o), 19);
                assert_int_equal(outbox_dropped(o), 52);
        }
}

/* Entries already handed to the broker are dropped only when nothing else can go. */
static void test_drop_prefers_unsent(void **state) {
        const OutboxLimits lim = { .max_messages = 4, .max_bytes = 1 << 20 };
        _cleanup_(outbox_freep) Outbox *o = NULL;
        static const unsigned expect[] = { 0, 1, 4, 5 };
        OutboxEntry e;
        (void) state;

        assert_int_equal(outbox_new(NULL, &lim, &o), 0);
        push_n(o, OUTBOX_NOTIFICATION, 0, 4);
        for (int i = 0; i < 2; i++) {
                assert_true(outbox_peek_unsent(o, &e));
                outbox_mark_sent(o, e.seq);
        }
        push_n(o, OUTBOX_NOTIFICATION, 4, 2); /* drops 2 and 3, not 0 and 1 in flight */
        assert_int_equal(outbox_dropped(o), 2);
        outbox_rewind(o);
        drain_expect(o, expect, ELEMENTSOF(expect));
        /* All in flight: then the oldest in flight goes. */
        push_n(o, OUTBOX_NOTIFICATION, 10, 4);
        while (outbox_peek_unsent(o, &e))
                outbox_mark_sent(o, e.seq);
        push_n(o, OUTBOX_NOTIFICATION, 14, 1);
        assert_int_equal(outbox_dropped(o), 3);
        assert_int_equal(outbox_count(o), 4);
        assert_true(outbox_peek_unsent(o, &e));
        assert_memory_equal(e.payload, "{\"n\":14}", e.payload_len);
}

/* Byte limit, and the exact survivors, checked one by one. */
static void test_drop_policy_bytes(void **state) {
        /* Each message "{"n":N}" with N < 10 is 7 bytes plus a 26-byte topic: 33 bytes. */
        const OutboxLimits lim = { .max_messages = 1000, .max_bytes = 33 * 5 };
        _cleanup_(outbox_freep) Outbox *o = NULL;
        static const unsigned expect[] = { 1, 2, 3, 7, 8 };
        (void) state;

        assert_int_equal(outbox_new(NULL, &lim, &o), 0);
        push_n(o, OUTBOX_NOTIFICATION, 0, 1);
        push_n(o, OUTBOX_STATUS, 1, 1);
        push_n(o, OUTBOX_SHADOW, 2, 1);
        push_n(o, OUTBOX_STATUS, 3, 1);
        push_n(o, OUTBOX_NOTIFICATION, 4, 1);
        assert_int_equal(outbox_bytes(o), 33 * 5);
        push_n(o, OUTBOX_NOTIFICATION, 5, 1); /* drops 0 */
        push_n(o, OUTBOX_NOTIFICATION, 6, 1); /* drops 4 */
        push_n(o, OUTBOX_NOTIFICATION, 7, 1); /* drops 5 */
        push_n(o, OUTBOX_STATUS, 8, 1);       /* drops 6 */
        assert_int_equal(outbox_dropped(o), 4);
        assert_int_equal(outbox_bytes(o), 33 * 5);
        drain_expect(o, expect, ELEMENTSOF(expect));
}

static void test_persist_reopen(void **state) {
        _cleanup_free_ char *tmp = make_tmp(), *dir = outbox_dir(tmp);
        static const unsigned expect[] = { 0, 2, 4, 5, 6, 7, 8, 9, 10, 11 };
        OutboxEntry e;
        (void) state;

        {
                _cleanup_(outbox_freep) Outbox *o = NULL;
                assert_int_equal(outbox_new(dir, &big, &o), 0);
                push_n(o, OUTBOX_NOTIFICATION, 0, 10);
                /* 1 and 3 acknowledged out of order while in flight. */
                for (int i = 0; i < 4; i++) {
                        assert_true(outbox_peek_unsent(o, &e));
                        outbox_mark_sent(o, e.seq);
                }
                assert_int_equal(outbox_ack(o, 2), 0);
                assert_int_equal(outbox_ack(o, 4), 0);
                assert_int_equal(outbox_sync(o), 0);
        }
        {
                _cleanup_(outbox_freep) Outbox *o = NULL;
                assert_int_equal(outbox_new(dir, &big, &o), 0);
                assert_int_equal(outbox_loaded(o), 8);
                assert_int_equal(outbox_corrupt_files(o), 0);
                push_n(o, OUTBOX_STATUS, 10, 2);
        }
        {
                _cleanup_(outbox_freep) Outbox *o = NULL;
                uint64_t seq;
                assert_int_equal(outbox_new(dir, &big, &o), 0);
                assert_int_equal(outbox_loaded(o), 10);
                assert_true(outbox_peek_unsent(o, &e));
                assert_int_equal(e.class, OUTBOX_NOTIFICATION);
                drain_expect(o, expect, ELEMENTSOF(expect));
                /* Sequence numbers keep growing across restarts. */
                assert_int_equal(outbox_push(o, OUTBOX_NOTIFICATION, "t", "x", 1, &seq), 0);
                assert_int_equal(seq, 13);
        }
        {
                _cleanup_(outbox_freep) Outbox *o = NULL;
                assert_int_equal(outbox_new(dir, &big, &o), 0);
                assert_int_equal(outbox_count(o), 1);
                assert_true(outbox_peek_unsent(o, &e));
                assert_int_equal(e.seq, 13);
        }
        test_rm_rf(tmp);
}

/*
 * A crash (or power cut after a sync) while the last record was being
 * written, simulated at every byte offset of that record: the records before
 * it are all kept, the torn one is set aside, and the outbox goes on working.
 */
static void test_crash_every_offset(void **state) {
        _cleanup_free_ char *tmp = make_tmp(), *dir = outbox_dir(tmp);
        _cleanup_free_ char *seg = NULL;
        _cleanup_free_ uint8_t *image = NULL;
        size_t len = 0, last_start;
        (void) state;

        {
                _cleanup_(outbox_freep) Outbox *o = NULL;
                assert_int_equal(outbox_new(dir, &big, &o), 0);
                push_n(o, OUTBOX_NOTIFICATION, 0, 3);
                push_n(o, OUTBOX_STATUS, 3, 1);
        }
        seg = data_segment(dir, &image, &len);
        /* The last record: {"n":3} on the 26-byte topic. */
        last_start = len - (OUTBOX_RECORD_HEADER_SIZE + 26 + 7);

        for (size_t cut = last_start; cut <= len; cut++) {
                _cleanup_free_ char *t2 = make_tmp(), *d2 = outbox_dir(t2);
                _cleanup_free_ char *p = NULL;
                bool torn = cut < len && cut > last_start;
                unsigned want = cut == len ? 4 : 3;

                assert_int_equal(mkdir(d2, 0700), 0);
                assert_true(asprintf(&p, "%s/%s", d2, strrchr(seg, '/') + 1) > 0);
                write_file(p, image, cut);
                {
                        _cleanup_(outbox_freep) Outbox *o = NULL;
                        assert_int_equal(outbox_new(d2, &big, &o), 0);
                        assert_int_equal(outbox_loaded(o), want);
                        assert_int_equal(outbox_corrupt_files(o), torn ? 1 : 0);
                        assert_int_equal(count_files(d2, "corrupt"), torn ? 1 : 0);
                        push_n(o, OUTBOX_STATUS, 9, 1);
                }
                {
                        _cleanup_(outbox_freep) Outbox *o = NULL;
                        static const unsigned e3[] = { 0, 1, 2, 9 }, e4[] = { 0, 1, 2, 3, 9 };
                        assert_int_equal(outbox_new(d2, &big, &o), 0);
                        /* The truncated file is clean now: no second warning. */
                        assert_int_equal(outbox_corrupt_files(o), 0);
                        assert_int_equal(count_files(d2, "corrupt"), torn ? 1 : 0);
                        if (want == 4)
                                drain_expect(o, e4, ELEMENTSOF(e4));
                        else
                                drain_expect(o, e3, ELEMENTSOF(e3));
                }
                test_rm_rf(t2);
        }
        test_rm_rf(tmp);
}

/* Damage in the middle: only the damaged record is lost, the file is repaired, later records still read. */
static void test_corrupt_middle(void **state) {
        _cleanup_free_ char *tmp = make_tmp(), *dir = outbox_dir(tmp);
        _cleanup_free_ char *seg = NULL;
        _cleanup_free_ uint8_t *image = NULL;
        size_t len = 0, rec = OUTBOX_RECORD_HEADER_SIZE + 26 + 7;
        (void) state;

        {
                _cleanup_(outbox_freep) Outbox *o = NULL;
                assert_int_equal(outbox_new(dir, &big, &o), 0);
                push_n(o, OUTBOX_NOTIFICATION, 0, 5);
        }
        seg = data_segment(dir, &image, &len);
        assert_int_equal(len, OUTBOX_FILE_HEADER_SIZE + 5 * rec);
        /* One payload byte of the third record. */
        image[OUTBOX_FILE_HEADER_SIZE + 2 * rec + OUTBOX_RECORD_HEADER_SIZE + 30] ^= 0x20;
        write_file(seg, image, len);
        {
                _cleanup_(outbox_freep) Outbox *o = NULL;
                struct stat st;
                assert_int_equal(outbox_new(dir, &big, &o), 0);
                assert_int_equal(outbox_corrupt_files(o), 1);
                assert_int_equal(outbox_damaged_records(o), 1);
                assert_int_equal(outbox_loaded(o), 4);
                assert_int_equal(stat(seg, &st), 0);
                assert_int_equal(st.st_size, OUTBOX_FILE_HEADER_SIZE + 4 * rec);
                assert_int_equal(count_files(dir, "corrupt"), 1);
                push_n(o, OUTBOX_NOTIFICATION, 10, 1);
        }
        {
                _cleanup_(outbox_freep) Outbox *o = NULL;
                static const unsigned expect[] = { 0, 1, 3, 4, 10 };
                assert_int_equal(outbox_new(dir, &big, &o), 0);
                assert_int_equal(outbox_corrupt_files(o), 0);
                drain_expect(o, expect, ELEMENTSOF(expect));
        }
        test_rm_rf(tmp);

        /* A file that is not ours at all is moved aside whole. */
        {
                _cleanup_free_ char *t2 = make_tmp(), *d2 = outbox_dir(t2), *p = NULL;
                _cleanup_(outbox_freep) Outbox *o = NULL;
                assert_int_equal(mkdir(d2, 0700), 0);
                assert_true(asprintf(&p, "%s/0000000000000001.seg", d2) > 0);
                write_file(p, (const uint8_t *) "garbage!garbage!", 16);
                assert_int_equal(outbox_new(d2, &big, &o), 0);
                assert_int_equal(outbox_corrupt_files(o), 1);
                assert_int_equal(outbox_count(o), 0);
                assert_int_equal(count_files(d2, "corrupt"), 1);
                assert_int_equal(access(p, F_OK), -1);
                o = outbox_free(o);
                test_rm_rf(t2);
        }
}

/*
 * Issue 13: one damaged record used to lose the rest of its segment.  Every
 * byte of a small outbox (file header, five entries, the REMOVE of the
 * second, a sixth entry) is damaged in turn, with a one-bit and an all-bits
 * flip: exactly the record holding that byte is lost (a lost REMOVE brings
 * its entry back, at-least-once), every other record is kept, the file is
 * repaired once, and what was set aside is one bounded file.
 */
static void test_flip_every_byte(void **state) {
        _cleanup_free_ char *tmp = make_tmp(), *dir = outbox_dir(tmp);
        _cleanup_free_ char *seg = NULL;
        _cleanup_free_ uint8_t *image = NULL;
        size_t len = 0, rec = OUTBOX_RECORD_HEADER_SIZE + 26 + 7, starts[8];
        (void) state;

        {
                _cleanup_(outbox_freep) Outbox *o = NULL;
                OutboxEntry e;
                assert_int_equal(outbox_new(dir, &big, &o), 0);
                push_n(o, OUTBOX_NOTIFICATION, 1, 3);
                push_n(o, OUTBOX_STATUS, 4, 2);
                /* The REMOVE record of seq 2 ({"n":2}). */
                assert_true(outbox_peek_unsent(o, &e));
                outbox_mark_sent(o, e.seq);
                assert_true(outbox_peek_unsent(o, &e));
                assert_int_equal(outbox_ack(o, e.seq), 0);
                push_n(o, OUTBOX_NOTIFICATION, 6, 1);
        }
        seg = data_segment(dir, &image, &len);
        assert_int_equal(len, OUTBOX_FILE_HEADER_SIZE + 6 * rec + OUTBOX_RECORD_HEADER_SIZE);
        /* Record k (0: the file header) spans [starts[k], starts[k + 1]). */
        starts[0] = 0;
        starts[1] = OUTBOX_FILE_HEADER_SIZE;
        for (int k = 2; k <= 7; k++)
                starts[k] = starts[k - 1] + (k == 7 ? OUTBOX_RECORD_HEADER_SIZE : rec);
        assert_int_equal(starts[7] + rec, len);

        for (size_t i = 0; i < len; i++)
                for (unsigned flip = 0x01; flip <= 0xff; flip = flip == 0x01 ? 0xff : 0x100) {
                        _cleanup_free_ char *t2 = make_tmp(), *d2 = outbox_dir(t2), *p = NULL;
                        /* Which record holds byte i: 0 header, 1..5 entries n=1..5, 6 the REMOVE of n=2, 7 n=6. */
                        int k = 7;
                        unsigned expect[6], n = 0;

                        while (i < starts[k])
                                k--;
                        for (unsigned m = 1; m <= 6; m++) {
                                unsigned rk = m == 6 ? 7 : m; /* the record of entry m */
                                if ((int) rk == k)
                                        continue; /* the damaged one */
                                if (m == 2 && k != 6)
                                        continue; /* removed, unless its REMOVE is the damaged record */
                                expect[n++] = m;
                        }

                        assert_int_equal(mkdir(d2, 0700), 0);
                        assert_true(asprintf(&p, "%s/%s", d2, strrchr(seg, '/') + 1) > 0);
                        image[i] ^= (uint8_t) flip;
                        write_file(p, image, len);
                        image[i] ^= (uint8_t) flip;
                        {
                                _cleanup_(outbox_freep) Outbox *o = NULL;
                                assert_int_equal(outbox_new(d2, &big, &o), 0);
                                if (outbox_loaded(o) != n)
                                        fail_msg("byte %zu ^ 0x%02x (record %d): %" PRIu64 " loaded, %u expected", i,
                                                 flip, k, outbox_loaded(o), n);
                                assert_int_equal(outbox_corrupt_files(o), 1);
                                assert_int_equal(outbox_damaged_records(o), k == 0 ? 0 : 1);
                                assert_int_equal(count_files(d2, "corrupt"), 1);
                        }
                        {
                                /* Repaired: the second load finds nothing wrong, and the same entries. */
                                _cleanup_(outbox_freep) Outbox *o = NULL;
                                assert_int_equal(outbox_new(d2, &big, &o), 0);
                                assert_int_equal(outbox_corrupt_files(o), 0);
                                assert_int_equal(count_files(d2, "corrupt"), 1);
                                drain_expect(o, expect, n);
                        }
                        test_rm_rf(t2);
                }
        test_rm_rf(tmp);
}

/* What is set aside is bounded in size and removed after OUTBOX_ASIDE_MAX_AGE_SEC. */
static void test_aside_bounded(void **state) {
        _cleanup_free_ char *tmp = make_tmp(), *dir = outbox_dir(tmp);
        _cleanup_free_ uint8_t *junk = malloc(3 * OUTBOX_ASIDE_MAX_BYTES);
        _cleanup_free_ char *old = NULL, *stale = NULL, *p = NULL;
        struct timespec ts[2] = {};
        struct stat st;
        (void) state;

        assert_non_null(junk);
        memset(junk, 'j', 3 * OUTBOX_ASIDE_MAX_BYTES);
        assert_int_equal(mkdir(dir, 0700), 0);
        /* An old aside file, and a repair copy left by a crash. */
        assert_true(asprintf(&old, "%s/0000000000000001.seg.corrupt-1", dir) > 0);
        write_file(old, junk, 10);
        ts[0].tv_sec = ts[1].tv_sec = time(NULL) - OUTBOX_ASIDE_MAX_AGE_SEC - 60;
        assert_int_equal(utimensat(AT_FDCWD, old, ts, 0), 0);
        assert_true(asprintf(&stale, "%s/0000000000000002.seg.tmp", dir) > 0);
        write_file(stale, junk, 10);
        /* A segment of 3 MiB of garbage after a valid header. */
        memcpy(junk, outbox_file_header, OUTBOX_FILE_HEADER_SIZE);
        assert_true(asprintf(&p, "%s/0000000000000003.seg", dir) > 0);
        write_file(p, junk, 3 * OUTBOX_ASIDE_MAX_BYTES);
        {
                _cleanup_(outbox_freep) Outbox *o = NULL;
                assert_int_equal(outbox_new(dir, &big, &o), 0);
                assert_int_equal(outbox_corrupt_files(o), 1);
        }
        assert_int_equal(access(old, F_OK), -1);
        assert_int_equal(access(stale, F_OK), -1);
        assert_int_equal(count_files(dir, "corrupt"), 1);
        {
                DIR *d = opendir(dir);
                struct dirent *de;
                assert_non_null(d);
                while ((de = readdir(d)))
                        if (strstr(de->d_name, "corrupt")) {
                                assert_int_equal(fstatat(dirfd(d), de->d_name, &st, 0), 0);
                                assert_true(st.st_size <= (off_t) OUTBOX_ASIDE_MAX_BYTES);
                        }
                closedir(d);
        }
        test_rm_rf(tmp);
}

/* A crash between creating a file and syncing its header leaves a prefix of the header: not damage. */
static void test_torn_creation(void **state) {
        (void) state;
        for (size_t len = 0; len < OUTBOX_FILE_HEADER_SIZE; len++) {
                _cleanup_free_ char *t = make_tmp(), *d = outbox_dir(t), *p = NULL;
                _cleanup_(outbox_freep) Outbox *o = NULL;
                assert_int_equal(mkdir(d, 0700), 0);
                assert_true(asprintf(&p, "%s/0000000000000005.seg", d) > 0);
                write_file(p, outbox_file_header, len);
                assert_int_equal(outbox_new(d, &big, &o), 0);
                assert_int_equal(outbox_corrupt_files(o), 0);
                assert_int_equal(count_files(d, "corrupt"), 0);
                assert_int_equal(access(p, F_OK), -1);
                push_n(o, OUTBOX_NOTIFICATION, 0, 1);
                o = outbox_free(o);
                assert_int_equal(outbox_new(d, &big, &o), 0);
                assert_int_equal(outbox_count(o), 1);
                o = outbox_free(o);
                test_rm_rf(t);
        }
}

/* Old files are deleted once acknowledged; a stuck status entry is carried forward. */
static void test_segments_collected(void **state) {
        _cleanup_free_ char *tmp = make_tmp(), *dir = outbox_dir(tmp);
        const OutboxLimits lim = { .max_messages = 100000, .max_bytes = 64u << 20, .segment_size = 4096 };
        OutboxEntry e;
        uint64_t stuck;
        (void) state;

        {
                _cleanup_(outbox_freep) Outbox *o = NULL;
                assert_int_equal(outbox_new(dir, &lim, &o), 0);
                assert_int_equal(outbox_push(o, OUTBOX_STATUS, "fota/status", "stuck", 5, &stuck), 0);
                push_n(o, OUTBOX_NOTIFICATION, 0, 2000);
                assert_true(outbox_segments(o) > 20);
                /* Send everything, acknowledge all but the first. */
                while (outbox_peek_unsent(o, &e))
                        outbox_mark_sent(o, e.seq);
                for (uint64_t s = stuck + 1; s <= stuck + 2000; s++)
                        assert_int_equal(outbox_ack(o, s), 0);
                assert_int_equal(outbox_count(o), 1);
                assert_true(outbox_segments(o) <= 3);
                assert_true(count_files(dir, ".seg") <= 3);
        }
        {
                _cleanup_(outbox_freep) Outbox *o = NULL;
                assert_int_equal(outbox_new(dir, &lim, &o), 0);
                assert_int_equal(outbox_count(o), 1);
                assert_true(outbox_peek_unsent(o, &e));
                assert_int_equal(e.seq, stuck);
                assert_int_equal(e.payload_len, 5);
                assert_memory_equal(e.payload, "stuck", 5);
                outbox_mark_sent(o, e.seq);
                assert_int_equal(outbox_ack(o, stuck), 0);
        }
        {
                _cleanup_(outbox_freep) Outbox *o = NULL;
                assert_int_equal(outbox_new(dir, &lim, &o), 0);
                assert_int_equal(outbox_count(o), 0);
                assert_true(count_files(dir, ".seg") <= 2);
        }
        test_rm_rf(tmp);
}

/* Two copies of one entry (a crash between carrying it forward and deleting the old file). */
static void test_duplicate_copy(void **state) {
        _cleanup_free_ char *tmp = make_tmp(), *dir = outbox_dir(tmp);
        uint8_t buf[256];
        size_t n = OUTBOX_FILE_HEADER_SIZE;
        char p[512];
        (void) state;

        assert_int_equal(mkdir(dir, 0700), 0);
        memcpy(buf, outbox_file_header, OUTBOX_FILE_HEADER_SIZE);
        n += outbox_encode_record(buf + n, OUTBOX_RECORD_ENTRY, OUTBOX_STATUS, 7, "a", 1, "seven", 5);
        snprintf(p, sizeof p, "%s/0000000000000003.seg", dir);
        write_file(p, buf, n);
        n += outbox_encode_record(buf + n, OUTBOX_RECORD_ENTRY, OUTBOX_STATUS, 8, "a", 1, "eight", 5);
        snprintf(p, sizeof p, "%s/0000000000000009.seg", dir);
        write_file(p, buf, n);
        {
                _cleanup_(outbox_freep) Outbox *o = NULL;
                OutboxEntry e;
                uint64_t seq;
                assert_int_equal(outbox_new(dir, &big, &o), 0);
                assert_int_equal(outbox_count(o), 2);
                assert_true(outbox_peek_unsent(o, &e));
                assert_int_equal(e.seq, 7);
                outbox_mark_sent(o, 7);
                assert_true(outbox_peek_unsent(o, &e));
                assert_int_equal(e.seq, 8);
                assert_int_equal(outbox_ack(o, 7), 0);
                assert_int_equal(outbox_push(o, OUTBOX_STATUS, "a", "x", 1, &seq), 0);
                assert_int_equal(seq, 9);
        }
        {
                _cleanup_(outbox_freep) Outbox *o = NULL;
                OutboxEntry e;
                assert_int_equal(outbox_new(dir, &big, &o), 0);
                assert_int_equal(outbox_count(o), 2);
                assert_true(outbox_peek_unsent(o, &e));
                assert_int_equal(e.seq, 8);
        }
        test_rm_rf(tmp);
}

/* Lower limits on reopen (a reload of MaxMessages=) apply the drop policy to what was loaded. */
static void test_reopen_smaller(void **state) {
        _cleanup_free_ char *tmp = make_tmp(), *dir = outbox_dir(tmp);
        const OutboxLimits small = { .max_messages = 3, .max_bytes = 1 << 20 };
        static const unsigned expect[] = { 0, 4, 5 };
        (void) state;
        {
                _cleanup_(outbox_freep) Outbox *o = NULL;
                assert_int_equal(outbox_new(dir, &big, &o), 0);
                push_n(o, OUTBOX_STATUS, 0, 1);
                push_n(o, OUTBOX_NOTIFICATION, 1, 5);
        }
        {
                _cleanup_(outbox_freep) Outbox *o = NULL;
                assert_int_equal(outbox_new(dir, &small, &o), 0);
                assert_int_equal(outbox_dropped(o), 3);
                drain_expect(o, expect, ELEMENTSOF(expect));
        }
        test_rm_rf(tmp);
}

static int collect_seq(const OutboxEntry *e, void *userdata) {
        uint64_t *seqs = userdata;
        seqs[++seqs[0]] = e->seq;
        return seqs[0] == 8 ? -E2BIG : 0;
}

/*
 * The read-only view (nrfcloud-gatewayctl outbox): refused while a writer
 * holds the folder, one writer at a time, the same entries as a load, nothing
 * written, and damage reported but left in place.
 */
static void test_read_only(void **state) {
        _cleanup_free_ char *tmp = make_tmp(), *dir = outbox_dir(tmp), *seg = NULL;
        _cleanup_free_ uint8_t *image = NULL;
        uint64_t seqs[16] = { 0 };
        size_t len = 0;
        struct stat st;
        (void) state;

        {
                _cleanup_(outbox_freep) Outbox *o = NULL, *o2 = NULL, *ro = NULL;
                OutboxEntry e;
                assert_int_equal(outbox_open_read_only(dir, &ro), -ENOENT);
                assert_int_equal(outbox_new(dir, &big, &o), 0);
                push_n(o, OUTBOX_NOTIFICATION, 0, 5);
                assert_true(outbox_peek_unsent(o, &e));
                outbox_mark_sent(o, e.seq);
                assert_int_equal(outbox_ack(o, e.seq), 0);
                /* The writer holds the folder: neither a reader nor a second writer gets it. */
                assert_int_equal(outbox_open_read_only(dir, &ro), -EBUSY);
                assert_int_equal(outbox_new(dir, &big, &o2), -EBUSY);
        }
        seg = data_segment(dir, &image, &len);
        {
                _cleanup_(outbox_freep) Outbox *ro = NULL, *o2 = NULL;
                assert_int_equal(outbox_open_read_only(dir, &ro), 0);
                assert_int_equal(outbox_count(ro), 4);
                assert_int_equal(outbox_corrupt_files(ro), 0);
                assert_int_equal(outbox_foreach(ro, collect_seq, seqs), 0);
                assert_int_equal(seqs[0], 4);
                for (unsigned i = 0; i < 4; i++)
                        assert_int_equal(seqs[1 + i], 2 + i);
                assert_int_equal(outbox_push(ro, OUTBOX_NOTIFICATION, "t", "x", 1, NULL), -EROFS);
                assert_int_equal(outbox_ack(ro, 2), -EROFS);
                assert_int_equal(outbox_set_limits(ro, &big), -EROFS);
                /* Readers share the folder; a writer waits for them to go. */
                assert_int_equal(outbox_new(dir, &big, &o2), -EBUSY);
        }
        /* Nothing was written: still the writer's one segment file. */
        assert_int_equal(count_files(dir, ".seg"), 1);
        /* A torn last record (the REMOVE of seq 1): listed up to it, counted, and the file left as it was.
         * Seq 1 is live again, as it would be for the daemon (at-least-once). */
        write_file(seg, image, len - 3);
        {
                _cleanup_(outbox_freep) Outbox *ro = NULL;
                assert_int_equal(outbox_open_read_only(dir, &ro), 0);
                assert_int_equal(outbox_corrupt_files(ro), 1);
                assert_int_equal(outbox_count(ro), 5);
        }
        assert_int_equal(stat(seg, &st), 0);
        assert_int_equal((size_t) st.st_size, len - 3);
        assert_int_equal(count_files(dir, "corrupt"), 0);
        /* A callback's error stops the walk and is returned. */
        seqs[0] = 5;
        {
                _cleanup_(outbox_freep) Outbox *ro = NULL;
                assert_int_equal(outbox_open_read_only(dir, &ro), 0);
                assert_int_equal(outbox_foreach(ro, collect_seq, seqs), -E2BIG);
                assert_int_equal(seqs[0], 8);
        }
        test_rm_rf(tmp);
}


/* ---- SyncIntervalSec: the runtime folder, its spill, and what a crash or a power cut keeps ---- */

#define SEC UINT64_C(1000000)

typedef struct FakeLoop {
        uint64_t now, timer;
        unsigned set_calls;
        Outbox *o;
} FakeLoop;

static uint64_t fake_now(void *userdata) {
        return ((FakeLoop *) userdata)->now;
}

static int fake_set_timer(void *userdata, uint64_t usec) {
        FakeLoop *l = userdata;
        l->timer = usec;
        l->set_calls++;
        return 0;
}

static const OutboxLoopOps fake_ops = { .now = fake_now, .set_timer = fake_set_timer };

/* Runs fake time up to `to`, firing the timer on the way. */
static void advance(FakeLoop *l, uint64_t to) {
        while (l->timer != UINT64_MAX && l->timer <= to) {
                l->now = MAX(l->now, l->timer);
                l->timer = UINT64_MAX;
                assert_int_equal(outbox_on_timer(l->o), 0);
        }
        l->now = to;
}

typedef struct Dirs {
        char *tmp, *cold, *hot;
} Dirs;

static Dirs make_dirs(void) {
        Dirs d = { .tmp = make_tmp() };
        assert_true(asprintf(&d.cold, "%s/state-outbox", d.tmp) > 0);
        assert_true(asprintf(&d.hot, "%s/runtime-outbox", d.tmp) > 0);
        return d;
}

static void free_dirs(Dirs *d) {
        test_rm_rf(d->tmp);
        free(d->tmp);
        free(d->cold);
        free(d->hot);
}

/* Bytes of the segment files of dir beyond their file headers: records. */
static uint64_t record_bytes(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *de;
        uint64_t n = 0;
        if (!d)
                return 0;
        while ((de = readdir(d))) {
                char p[512];
                struct stat st;
                if (!strstr(de->d_name, ".seg"))
                        continue;
                snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
                assert_int_equal(stat(p, &st), 0);
                if (st.st_size > (off_t) OUTBOX_FILE_HEADER_SIZE)
                        n += (uint64_t) st.st_size - OUTBOX_FILE_HEADER_SIZE;
        }
        closedir(d);
        return n;
}

static Outbox *open_timed(const Dirs *d, bool runtime, uint64_t interval, FakeLoop *l) {
        OutboxLimits lim = big;
        Outbox *o = NULL;
        lim.sync_interval_usec = interval;
        assert_int_equal(outbox_new_full(d->cold, runtime ? d->hot : NULL, &lim, &o), 0);
        if (l) {
                l->o = o;
                l->timer = UINT64_MAX;
                outbox_set_loop(o, &fake_ops, l, NULL);
        }
        return o;
}

static void push_named(Outbox *o, OutboxClass c, const char *name, uint64_t *ret_seq) {
        assert_int_equal(outbox_push(o, c, "t/x", name, strlen(name), ret_seq), 0);
}

/* The payloads of o's entries, in order, joined by ','. */
static int join_payload(const OutboxEntry *e, void *userdata) {
        char *buf = userdata;
        if (*buf)
                strcat(buf, ",");
        strncat(buf, (const char *) e->payload, e->payload_len);
        return 0;
}

static void assert_payloads(Outbox *o, const char *want) {
        char buf[1024] = "";
        assert_int_equal(outbox_foreach(o, join_payload, buf), 0);
        assert_string_equal(buf, want);
}

/* Acknowledged within the interval: the state directory gets nothing, and nothing is synced. */
static void test_interval_prompt_acks_stay_in_runtime(void **state) {
        FakeLoop l = { .now = 1000 * SEC };
        Dirs d = make_dirs();
        Outbox *o;
        (void) state;

        o = open_timed(&d, true, SEC, &l);
        for (unsigned i = 0; i < 1000; i++) { /* 10 s at 100 messages/s */
                uint64_t seq;
                push_named(o, OUTBOX_NOTIFICATION, "n", &seq);
                advance(&l, l.now + 3000);
                assert_int_equal(outbox_ack(o, seq), 0);
                advance(&l, l.now + 7000);
        }
        assert_int_equal(outbox_syncs(o), 0);
        assert_int_equal(outbox_spilled(o), 0);
        assert_int_equal(record_bytes(d.cold), 0);
        assert_true(record_bytes(d.hot) > 0);
        /* The timer is armed about once per interval, not per message. */
        assert_true(l.set_calls <= 25);
        o = outbox_free(o);
        /* A clean stop leaves nothing in the runtime folder. */
        assert_int_equal(count_files(d.hot, ".seg"), 0);
        free_dirs(&d);
}

/* Not acknowledged: moved to the state directory one interval after the push, one sync for all. */
static void test_interval_spill(void **state) {
        FakeLoop l = { .now = 50 * SEC };
        Dirs d = make_dirs();
        uint64_t t0 = l.now;
        Outbox *o;
        (void) state;

        o = open_timed(&d, true, SEC, &l);
        push_named(o, OUTBOX_NOTIFICATION, "a", NULL);
        assert_int_equal(l.timer, t0 + SEC);
        advance(&l, t0 + SEC / 2);
        push_named(o, OUTBOX_NOTIFICATION, "b", NULL);
        /* Called by the MQTT session's group commit: nothing is due yet. */
        assert_int_equal(outbox_sync(o), 0);
        assert_int_equal(outbox_spilled(o), 0);
        assert_int_equal(record_bytes(d.cold), 0);
        advance(&l, t0 + SEC - 1);
        assert_int_equal(outbox_spilled(o), 0);
        advance(&l, t0 + SEC);
        assert_int_equal(outbox_spilled(o), 2);
        assert_int_equal(outbox_syncs(o), 1);
        assert_int_equal(outbox_runtime_count(o), 0);
        assert_true(record_bytes(d.cold) > 0);
        assert_int_equal(l.timer, UINT64_MAX);
        assert_payloads(o, "a,b");
        /* An urgent record is synced at once, wherever the others are. */
        push_named(o, OUTBOX_STATUS, "s", NULL);
        assert_int_equal(outbox_syncs(o), 2);
        assert_int_equal(outbox_runtime_count(o), 0);
        push_named(o, OUTBOX_NOTIFICATION, "c", NULL);
        assert_int_equal(outbox_runtime_count(o), 1);
        assert_int_equal(l.timer, l.now + SEC);
        o = outbox_free(o);
        free_dirs(&d);
}

/*
 * A process that pushes, then dies without outbox_free(): its state directory
 * alone is what a power cut leaves; with the runtime folder, what a crash
 * leaves.  Runs in a child so that nothing is flushed at exit.
 */
static void crash_child(const Dirs *d) {
        FakeLoop l = { .now = 10 * SEC };
        uint64_t t0 = l.now, seq;
        Outbox *o;
        pid_t pid;
        int status;

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                o = open_timed(d, true, SEC, &l);
                push_named(o, OUTBOX_NOTIFICATION, "a", NULL);
                advance(&l, t0 + SEC / 5);
                push_named(o, OUTBOX_NOTIFICATION, "b", NULL);
                advance(&l, t0 + SEC);              /* a and b spilled */
                push_named(o, OUTBOX_NOTIFICATION, "x", &seq);
                (void) outbox_ack(o, seq);          /* acknowledged at once: never in the state directory */
                advance(&l, t0 + SEC + SEC / 2);
                push_named(o, OUTBOX_NOTIFICATION, "c", NULL);
                push_named(o, OUTBOX_STATUS, "s", NULL);
                push_named(o, OUTBOX_NOTIFICATION, "d", NULL);
                advance(&l, t0 + 2 * SEC + SEC / 4); /* c, d pushed less than 1 s ago */
                _exit(outbox_spilled(o) == 2 && outbox_runtime_count(o) == 2 ? 0 : 1);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_interval_power_cut_and_crash(void **state) {
        Dirs d = make_dirs();
        Outbox *o;
        (void) state;

        crash_child(&d);
        /* Power cut: the runtime folder is gone; what was pushed more than 1 s before is kept, in order. */
        assert_int_equal(outbox_new(d.cold, &big, &o), 0);
        assert_payloads(o, "a,b,s");
        o = outbox_free(o);
        test_rm_rf(d.tmp);
        assert_int_equal(mkdir(d.tmp, 0700), 0);

        crash_child(&d);
        /* Crash (or SIGKILL) and restart with the runtime folder kept: everything, in push order. */
        o = open_timed(&d, true, SEC, NULL);
        assert_payloads(o, "a,b,c,s,d");
        assert_int_equal(outbox_runtime_count(o), 0);
        /* Moved to the state directory at once: a power cut now loses nothing of it. */
        assert_int_equal(count_files(d.hot, ".seg"), 1);
        o = outbox_free(o);
        assert_int_equal(outbox_new(d.cold, &big, &o), 0);
        assert_payloads(o, "a,b,c,s,d");
        o = outbox_free(o);
        free_dirs(&d);
}

/* An acknowledgement after the spill is recorded in the state directory; the runtime copy does not come back. */
static void test_interval_ack_after_spill(void **state) {
        FakeLoop l = { .now = 5 * SEC };
        Dirs d = make_dirs();
        uint64_t a, b;
        Outbox *o;
        pid_t pid;
        int status;
        (void) state;

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                o = open_timed(&d, true, SEC, &l);
                push_named(o, OUTBOX_NOTIFICATION, "a", &a);
                push_named(o, OUTBOX_NOTIFICATION, "b", &b);
                advance(&l, l.now + 2 * SEC);
                _exit(outbox_ack(o, a) == 0 && outbox_spilled(o) == 2 ? 0 : 1);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_int_equal(WEXITSTATUS(status), 0);
        o = open_timed(&d, true, SEC, NULL);
        assert_payloads(o, "b");
        o = outbox_free(o);
        free_dirs(&d);
}

/* SyncIntervalSec=0: every push goes to the state directory and outbox_sync() syncs it, as before. */
static void test_interval_zero(void **state) {
        FakeLoop l = { .now = SEC };
        Dirs d = make_dirs();
        Outbox *o;
        (void) state;

        o = open_timed(&d, true, 0, &l);
        push_named(o, OUTBOX_NOTIFICATION, "a", NULL);
        assert_true(outbox_needs_sync(o));
        assert_int_equal(outbox_runtime_count(o), 0);
        assert_int_equal(l.timer, UINT64_MAX);
        assert_int_equal(outbox_sync(o), 0);
        assert_false(outbox_needs_sync(o));
        assert_int_equal(outbox_syncs(o), 1);
        assert_int_equal(record_bytes(d.hot), 0);
        o = outbox_free(o);
        free_dirs(&d);
}

/* No runtime folder: pushes go to the state directory, synced one interval after the first. */
static void test_interval_without_runtime(void **state) {
        FakeLoop l = { .now = SEC };
        Dirs d = make_dirs();
        Outbox *o;
        (void) state;

        o = open_timed(&d, false, 2 * SEC, &l);
        for (unsigned i = 0; i < 10; i++) {
                push_named(o, OUTBOX_NOTIFICATION, "a", NULL);
                advance(&l, l.now + SEC / 10);
        }
        assert_int_equal(outbox_syncs(o), 0);
        advance(&l, 3 * SEC);
        assert_int_equal(outbox_syncs(o), 1);
        assert_false(outbox_needs_sync(o));
        o = outbox_free(o);
        free_dirs(&d);
}

/* A reload to SyncIntervalSec=0 moves what waits in the runtime folder at once. */
static void test_interval_reload(void **state) {
        FakeLoop l = { .now = SEC };
        OutboxLimits lim = big;
        Dirs d = make_dirs();
        Outbox *o;
        (void) state;

        o = open_timed(&d, true, 10 * SEC, &l);
        push_named(o, OUTBOX_NOTIFICATION, "a", NULL);
        assert_int_equal(l.timer, 11 * SEC);
        lim.sync_interval_usec = SEC;
        assert_int_equal(outbox_set_limits(o, &lim), 0);
        assert_int_equal(l.timer, 2 * SEC);
        lim.sync_interval_usec = 0;
        assert_int_equal(outbox_set_limits(o, &lim), 0);
        assert_int_equal(outbox_runtime_count(o), 0);
        assert_int_equal(outbox_spilled(o), 1);
        o = outbox_free(o);
        free_dirs(&d);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_crc32c),
                cmocka_unit_test(test_parse_every_prefix),
                cmocka_unit_test(test_order_ack_rewind),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_drop_policy),
                cmocka_unit_test(test_drop_policy_bytes),
                cmocka_unit_test(test_drop_prefers_unsent),
                cmocka_unit_test(test_answer_share),
                cmocka_unit_test(test_persist_reopen),
                cmocka_unit_test(test_crash_every_offset),
                cmocka_unit_test(test_corrupt_middle),
                cmocka_unit_test(test_torn_creation),
                cmocka_unit_test(test_flip_every_byte),
                cmocka_unit_test(test_aside_bounded),
                cmocka_unit_test(test_segments_collected),
                cmocka_unit_test(test_duplicate_copy),
                cmocka_unit_test(test_reopen_smaller),
                cmocka_unit_test(test_read_only),
                cmocka_unit_test(test_interval_prompt_acks_stay_in_runtime),
                cmocka_unit_test(test_interval_spill),
                cmocka_unit_test(test_interval_power_cut_and_crash),
                cmocka_unit_test(test_interval_ack_after_spill),
                cmocka_unit_test(test_send_priority),
                cmocka_unit_test(test_round_robin),
                cmocka_unit_test(test_coalesce_latest),
                cmocka_unit_test(test_interval_zero),
                cmocka_unit_test(test_interval_without_runtime),
                cmocka_unit_test(test_interval_reload),
        };
        log_set_max_level(LOG_ERR);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
