/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "outbox.h"
#include "util.h"

/* "NGWOBX01": nrfcloud-gateway outbox, format 1. */
const uint8_t outbox_file_header[OUTBOX_FILE_HEADER_SIZE] = { 'N', 'G', 'W', 'O', 'B', 'X', '0', '1' };
#define RECORD_MAGIC UINT32_C(0x52424F58) /* "XOBR" little endian */
/* Never read more than this of one segment file: ours are segment_size plus one record. */
#define SEGMENT_READ_MAX (UINT64_C(1) << 30)

static const char *const outbox_class_table[_OUTBOX_CLASS_MAX] = {
        [OUTBOX_NOTIFICATION] = "notification",
        [OUTBOX_STATUS] = "status",
        [OUTBOX_SHADOW] = "shadow",
        [OUTBOX_ANSWER] = "answer",
};

const char *outbox_class_to_string(OutboxClass c) {
        return c >= 0 && c < _OUTBOX_CLASS_MAX ? outbox_class_table[c] : NULL;
}

/* CRC-32C (Castagnoli), reflected, table driven. */
static uint32_t crc32c_table[256];
static bool crc32c_ready;

static void crc32c_init(void) {
        for (uint32_t i = 0; i < 256; i++) {
                uint32_t c = i;
                for (int k = 0; k < 8; k++)
                        c = c & 1 ? (c >> 1) ^ UINT32_C(0x82F63B78) : c >> 1;
                crc32c_table[i] = c;
        }
        crc32c_ready = true;
}

uint32_t crc32c(uint32_t crc, const void *data, size_t len) {
        const uint8_t *p = data;

        if (!crc32c_ready)
                crc32c_init();
        crc = ~crc;
        while (len--)
                crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
        return ~crc;
}

static void put_le16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
}
static void put_le32(uint8_t *p, uint32_t v) {
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}
static void put_le64(uint8_t *p, uint64_t v) {
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}
static uint16_t get_le16(const uint8_t *p) {
        return (uint16_t) (p[0] | p[1] << 8);
}
static uint32_t get_le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}
static uint64_t get_le64(const uint8_t *p) {
        return (uint64_t) get_le32(p) | (uint64_t) get_le32(p + 4) << 32;
}

/*
 * Record header, little endian:
 *   0 u32 magic   4 u8 type   5 u8 class   6 u16 topic length   8 u32 payload length
 *  12 u64 seq    20 u32 CRC-32C of bytes 0..19, then of topic and payload
 */
static uint32_t record_crc(const uint8_t *hdr, const void *topic, size_t topic_len, const void *payload,
                           size_t payload_len) {
        uint32_t c = crc32c(0, hdr, 20);
        c = crc32c(c, topic, topic_len);
        return crc32c(c, payload, payload_len);
}

size_t outbox_encode_record(uint8_t *buf, OutboxRecordType type, OutboxClass class, uint64_t seq, const char *topic,
                            size_t topic_len, const void *payload, size_t payload_len) {
        put_le32(buf, RECORD_MAGIC);
        buf[4] = (uint8_t) type;
        buf[5] = (uint8_t) class;
        put_le16(buf + 6, (uint16_t) topic_len);
        put_le32(buf + 8, (uint32_t) payload_len);
        put_le64(buf + 12, seq);
        if (topic_len > 0)
                memcpy(buf + OUTBOX_RECORD_HEADER_SIZE, topic, topic_len);
        if (payload_len > 0)
                memcpy(buf + OUTBOX_RECORD_HEADER_SIZE + topic_len, payload, payload_len);
        put_le32(buf + 20, record_crc(buf, buf + OUTBOX_RECORD_HEADER_SIZE, topic_len,
                                      buf + OUTBOX_RECORD_HEADER_SIZE + topic_len, payload_len));
        return OUTBOX_RECORD_HEADER_SIZE + topic_len + payload_len;
}

bool outbox_torn_creation(const uint8_t *buf, size_t len) {
        return len < OUTBOX_FILE_HEADER_SIZE && (len == 0 || memcmp(buf, outbox_file_header, len) == 0);
}

/* The size of the valid record at off, or 0. */
static size_t record_check(const uint8_t *buf, size_t len, size_t off) {
        const uint8_t *h = buf + off;
        size_t topic_len, payload_len;
        unsigned type;

        if (len - off < OUTBOX_RECORD_HEADER_SIZE || get_le32(h) != RECORD_MAGIC)
                return 0;
        type = h[4];
        topic_len = get_le16(h + 6);
        payload_len = get_le32(h + 8);
        if (h[5] >= _OUTBOX_CLASS_MAX || topic_len > OUTBOX_TOPIC_MAX || payload_len > OUTBOX_PAYLOAD_MAX)
                return 0;
        if (type == OUTBOX_RECORD_ENTRY) {
                if (topic_len == 0)
                        return 0;
        } else if (type == OUTBOX_RECORD_REMOVE) {
                if (topic_len != 0 || payload_len != 0)
                        return 0;
        } else
                return 0;
        if (len - off - OUTBOX_RECORD_HEADER_SIZE < topic_len + payload_len)
                return 0;
        if (get_le32(h + 20) != record_crc(h, h + OUTBOX_RECORD_HEADER_SIZE, topic_len,
                                           h + OUTBOX_RECORD_HEADER_SIZE + topic_len, payload_len))
                return 0;
        if (type == OUTBOX_RECORD_ENTRY && memchr(h + OUTBOX_RECORD_HEADER_SIZE, 0, topic_len))
                return 0;
        return OUTBOX_RECORD_HEADER_SIZE + topic_len + payload_len;
}

/* The offset of the next record magic at or after off, or len. */
static size_t next_magic(const uint8_t *buf, size_t len, size_t off) {
        static const uint8_t magic[4] = { 0x58, 0x4F, 0x42, 0x52 }; /* RECORD_MAGIC, little endian */
        const uint8_t *p = off < len ? memmem(buf + off, len - off, magic, sizeof magic) : NULL;
        return p ? (size_t) (p - buf) : len;
}

/* Reports the damaged stretch [from, to): the records it held are the magics in it. */
static int report_damage(const uint8_t *buf, size_t from, size_t to, outbox_damage_cb damaged, void *userdata) {
        unsigned records = 0;

        if (!damaged || to == from)
                return 0;
        for (size_t m = next_magic(buf, to, MAX(from, (size_t) OUTBOX_FILE_HEADER_SIZE)); m < to;
             m = next_magic(buf, to, m + 1))
                records++;
        if (records == 0 && to > OUTBOX_FILE_HEADER_SIZE)
                records = 1;
        return damaged(from, to - from, records, userdata);
}

int outbox_parse_segment(const uint8_t *buf, size_t len, outbox_record_cb cb, outbox_damage_cb damaged,
                         void *userdata, size_t *ret_good) {
        size_t off = OUTBOX_FILE_HEADER_SIZE, bad = SIZE_MAX; /* start of the damage being skipped */
        bool clean = true;
        int r;

        *ret_good = 0;
        if (len < OUTBOX_FILE_HEADER_SIZE || memcmp(buf, outbox_file_header, OUTBOX_FILE_HEADER_SIZE) != 0) {
                /* Records may follow a damaged header: look for them. */
                clean = false;
                bad = 0;
        } else
                *ret_good = off;

        while (off < len) {
                const uint8_t *h = buf + off;
                size_t n = record_check(buf, len, off);

                if (n == 0) {
                        /* Resynchronise: the next record starts with the magic. */
                        if (bad == SIZE_MAX)
                                bad = off;
                        clean = false;
                        off = next_magic(buf, len, off + 1);
                        continue;
                }
                if (bad != SIZE_MAX) {
                        r = report_damage(buf, bad, off, damaged, userdata);
                        if (r < 0)
                                return r;
                        bad = SIZE_MAX;
                }
                r = cb((OutboxRecordType) h[4], (OutboxClass) h[5], get_le64(h + 12),
                       (const char *) h + OUTBOX_RECORD_HEADER_SIZE, get_le16(h + 6),
                       h + OUTBOX_RECORD_HEADER_SIZE + get_le16(h + 6), get_le32(h + 8), userdata);
                if (r < 0)
                        return r;
                off += n;
                if (clean)
                        *ret_good = off;
        }
        if (bad != SIZE_MAX) {
                r = report_damage(buf, bad, MAX(len, bad), damaged, userdata);
                if (r < 0)
                        return r;
        }
        return clean ? 0 : -EBADMSG;
}

typedef struct Tier Tier;
typedef struct Segment Segment;
struct Segment {
        Tier *tier;
        uint64_t id;
        uint64_t size;       /* bytes in the file */
        uint64_t live_count; /* live entries whose record is in this file */
        uint64_t live_bytes; /* their record sizes */
        Segment *next;       /* oldest to newest */
};

typedef struct Entry Entry;
typedef struct KeyQueue KeyQueue;

/* The unsent notifications of one key (one device), and its place in the round of keys. */
struct KeyQueue {
        uint64_t key;
        Entry *first, *last;       /* by seq */
        KeyQueue *rprev, *rnext;   /* the ring of keys with unsent notifications */
        bool in_ring;
};

struct Entry {
        uint64_t seq;
        uint64_t pushed_usec; /* on the outbox's clock, for the spill of the runtime part */
        OutboxClass class;
        bool in_flight;
        uint64_t queued_usec; /* CLOCK_REALTIME: pushed, or loaded from disk */
        Segment *segment; /* the file holding its live record (in one of the two folders), or NULL */
        size_t topic_len, payload_len;
        Entry *prev, *next;   /* every entry, by seq */
        Entry *cprev, *cnext; /* entries of the same class, by seq */
        uint64_t key, sub_key; /* notifications: the device, and the device's characteristic (0: none) */
        KeyQueue *kq;          /* unsent notifications: the queue of key */
        Entry *kprev, *knext;
        char data[];          /* topic, NUL, payload */
};

/*
 * One folder of segments: the state directory's (durable) or the runtime
 * directory's (volatile: tmpfs, never synced).
 */
struct Tier {
        char *dir;
        int dir_fd;  /* -EBADF: no such folder */
        int head_fd; /* the segment appended to; -EBADF when memory only */
        Segment *oldest, *head;
        uint64_t next_segment_id;
        bool needs_sync;
        bool is_volatile;
};

struct Outbox {
        Tier cold; /* <StateDirectory>/outbox */
        Tier hot;  /* <RuntimeDirectory>/outbox, or none */
        OutboxLimits limits;
        OutboxLoopOps loop;
        void *loop_userdata;
        void (*loop_destroy)(void *userdata);
        uint64_t timer_usec;   /* where the loop's timer is armed, UINT64_MAX: not armed */
        uint64_t hot_count;    /* live entries whose record is in the runtime folder */
        uint64_t cold_pending; /* clock time of the oldest ENTRY record in the state folder not yet synced, or 0 */
        uint64_t retry_usec;   /* after a failed spill or sync (a full disk): not again before this */
        uint64_t syncs, spilled;

        Entry *first, *last;
        Entry *cfirst[_OUTBOX_CLASS_MAX], *clast[_OUTBOX_CLASS_MAX];
        uint64_t ccount[_OUTBOX_CLASS_MAX], cbytes[_OUTBOX_CLASS_MAX];
        Entry *cursor[_OUTBOX_CLASS_MAX]; /* per class: the first entry not handed out */
        uint64_t count, bytes, in_flight, dropped, loaded;
        unsigned corrupt_files;
        uint64_t damaged_records, damaged_bytes;
        uint64_t next_seq;
        bool read_only; /* outbox_open_read_only(): the folder is never written */

        uint8_t *scratch;
        size_t scratch_size;

        /* Notifications: unsent ones queued by key, served round-robin (see outbox_peek_next()). */
        outbox_key_fn key_fn;
        KeyQueue **keys;
        size_t n_keys;
        KeyQueue *ring; /* the key served next */
        bool coalesce;
        uint64_t coalesced;

        outbox_changed_cb changed; /* an observer of count and bytes (status reporting) */
        void *changed_userdata;
};

static size_t entry_bytes(const Entry *e) {
        return e->topic_len + e->payload_len;
}
static size_t entry_record_size(const Entry *e) {
        return OUTBOX_RECORD_HEADER_SIZE + entry_bytes(e);
}
static const uint8_t *entry_payload(const Entry *e) {
        return (const uint8_t *) e->data + e->topic_len + 1;
}

static int entry_new(OutboxClass class, uint64_t seq, const char *topic, size_t topic_len, const void *payload,
                     size_t payload_len, Entry **ret) {
        Entry *e = malloc(sizeof(Entry) + topic_len + 1 + payload_len);
        if (!e)
                return -ENOMEM;
        *e = (Entry){ .seq = seq,
                      .class = class,
                      .topic_len = topic_len,
                      .payload_len = payload_len,
                      .queued_usec = now_usec(CLOCK_REALTIME) };
        memcpy(e->data, topic, topic_len);
        e->data[topic_len] = 0;
        if (payload_len > 0)
                memcpy(e->data + topic_len + 1, payload, payload_len);
        *ret = e;
        return 0;
}

static KeyQueue *key_queue(Outbox *o, uint64_t key) {
        KeyQueue **k, *q;

        for (size_t i = 0; i < o->n_keys; i++)
                if (o->keys[i]->key == key)
                        return o->keys[i];
        k = reallocarray(o->keys, o->n_keys + 1, sizeof *k);
        if (!k)
                return NULL;
        o->keys = k;
        q = calloc(1, sizeof *q);
        if (!q)
                return NULL;
        q->key = key;
        return (o->keys[o->n_keys++] = q);
}

static void ring_remove(Outbox *o, KeyQueue *q) {
        if (!q->in_ring)
                return;
        if (q->rnext == q)
                o->ring = NULL;
        else {
                q->rprev->rnext = q->rnext;
                q->rnext->rprev = q->rprev;
                if (o->ring == q)
                        o->ring = q->rnext;
        }
        q->rprev = q->rnext = NULL;
        q->in_ring = false;
}

/* Joins the round as the key served last. */
static void ring_append(Outbox *o, KeyQueue *q) {
        if (q->in_ring)
                return;
        if (!o->ring) {
                q->rprev = q->rnext = q;
                o->ring = q;
        } else {
                q->rnext = o->ring;
                q->rprev = o->ring->rprev;
                o->ring->rprev->rnext = q;
                o->ring->rprev = q;
        }
        q->in_ring = true;
}

/* Queues an unsent notification under its key (at the end: it has the highest seq of its key
 * queued, see key_queue_rebuild()).  Without memory for a queue, the key 0's, which was made
 * first. */
static void key_enqueue(Outbox *o, Entry *e) {
        KeyQueue *q;

        if (e->class != OUTBOX_NOTIFICATION || e->kq || e->in_flight)
                return;
        q = key_queue(o, e->key) ?: key_queue(o, 0);
        if (!q)
                return; /* served by seq only: outbox_peek_next() falls back to the cursor */
        e->kq = q;
        e->knext = NULL;
        e->kprev = q->last;
        if (q->last)
                q->last->knext = e;
        else
                q->first = e;
        q->last = e;
        ring_append(o, q);
}

static void key_dequeue(Outbox *o, Entry *e) {
        KeyQueue *q = e->kq;

        if (!q)
                return;
        if (e->kprev)
                e->kprev->knext = e->knext;
        else
                q->first = e->knext;
        if (e->knext)
                e->knext->kprev = e->kprev;
        else
                q->last = e->kprev;
        e->kq = NULL;
        e->kprev = e->knext = NULL;
        if (!q->first)
                ring_remove(o, q);
}

/* Every unsent notification queued again, by seq; the round starts with the oldest's key. */
static void key_queue_rebuild(Outbox *o) {
        for (size_t i = 0; i < o->n_keys; i++) {
                o->keys[i]->first = o->keys[i]->last = NULL;
                o->keys[i]->in_ring = false;
        }
        o->ring = NULL;
        for (Entry *e = o->cfirst[OUTBOX_NOTIFICATION]; e; e = e->cnext) {
                e->kq = NULL;
                key_enqueue(o, e);
        }
}

static void entry_set_key(Outbox *o, Entry *e) {
        e->key = e->sub_key = 0;
        if (o->key_fn && e->class == OUTBOX_NOTIFICATION)
                e->key = o->key_fn(e->data, entry_payload(e), e->payload_len, &e->sub_key);
}

/* Links e at the end of both lists; e must have the highest seq so far. */
static void outbox_link_tail(Outbox *o, Entry *e) {
        e->prev = o->last;
        e->next = NULL;
        if (o->last)
                o->last->next = e;
        else
                o->first = e;
        o->last = e;

        e->cprev = o->clast[e->class];
        e->cnext = NULL;
        if (o->clast[e->class])
                o->clast[e->class]->cnext = e;
        else
                o->cfirst[e->class] = e;
        o->clast[e->class] = e;

        o->count++;
        o->bytes += entry_bytes(e);
        o->ccount[e->class]++;
        o->cbytes[e->class] += entry_bytes(e);
        if (!o->cursor[e->class])
                o->cursor[e->class] = e;
        entry_set_key(o, e);
        key_enqueue(o, e);
        if (e->segment) {
                e->segment->live_count++;
                e->segment->live_bytes += entry_record_size(e);
                if (e->segment->tier == &o->hot)
                        o->hot_count++;
        }
        if (o->changed)
                o->changed(o, o->changed_userdata);
}

static void outbox_unlink(Outbox *o, Entry *e) {
        if (o->cursor[e->class] == e)
                o->cursor[e->class] = e->cnext;
        key_dequeue(o, e);
        if (e->in_flight)
                o->in_flight--;
        if (e->prev)
                e->prev->next = e->next;
        else
                o->first = e->next;
        if (e->next)
                e->next->prev = e->prev;
        else
                o->last = e->prev;
        if (e->cprev)
                e->cprev->cnext = e->cnext;
        else
                o->cfirst[e->class] = e->cnext;
        if (e->cnext)
                e->cnext->cprev = e->cprev;
        else
                o->clast[e->class] = e->cprev;
        o->count--;
        o->bytes -= entry_bytes(e);
        o->ccount[e->class]--;
        o->cbytes[e->class] -= entry_bytes(e);
        if (e->segment) {
                e->segment->live_count--;
                e->segment->live_bytes -= entry_record_size(e);
                if (e->segment->tier == &o->hot)
                        o->hot_count--;
        }
}

static int ensure_scratch(Outbox *o, size_t size) {
        uint8_t *p;

        if (o->scratch_size >= size)
                return 0;
        p = realloc(o->scratch, size);
        if (!p)
                return -ENOMEM;
        o->scratch = p;
        o->scratch_size = size;
        return 0;
}

static void segment_path(uint64_t id, char *buf, size_t len) {
        (void) snprintf(buf, len, "%016" PRIx64 ".seg", id);
}

static int fsync_dir(Tier *t) {
        if (t->is_volatile)
                return 0;
        return fsync(t->dir_fd) < 0 ? -errno : 0;
}

static uint64_t outbox_now(const Outbox *o) {
        return o->loop.now ? o->loop.now(o->loop_userdata) : now_usec(CLOCK_BOOTTIME);
}

/* fdatasync() of a tier's head segment, counted; the runtime folder is never synced. */
static int tier_sync(Outbox *o, Tier *t) {
        if (!t->needs_sync || t->head_fd < 0)
                return 0;
        if (!t->is_volatile) {
                if (fdatasync(t->head_fd) < 0)
                        return -errno;
                o->syncs++;
        }
        t->needs_sync = false;
        if (t == &o->cold)
                o->cold_pending = 0;
        return 0;
}

/* Starts a new head segment file in tier t. */
static int outbox_new_segment(Outbox *o, Tier *t) {
        _cleanup_close_ int fd = -EBADF;
        char name[32];
        Segment *s;
        int r;

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->tier = t;
        s->id = t->next_segment_id;
        segment_path(s->id, name, sizeof name);
        fd = openat(t->dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_APPEND, 0600);
        if (fd < 0) {
                free(s);
                return -errno;
        }
        if (write(fd, outbox_file_header, OUTBOX_FILE_HEADER_SIZE) != (ssize_t) OUTBOX_FILE_HEADER_SIZE ||
            (!t->is_volatile && fdatasync(fd) < 0)) {
                r = errno ? -errno : -EIO;
                (void) unlinkat(t->dir_fd, name, 0);
                free(s);
                return r;
        }
        /* The new name must survive a power cut before anything relies on the file. */
        (void) fsync_dir(t);

        /* What the old head holds unsynced is made durable as the policy would have. */
        (void) tier_sync(o, t);
        t->head_fd = safe_close(t->head_fd);
        t->head_fd = TAKE_FD(fd);
        s->size = OUTBOX_FILE_HEADER_SIZE;
        if (t->head)
                t->head->next = s;
        else
                t->oldest = s;
        t->head = s;
        t->next_segment_id++;
        return 0;
}

/* Appends one record to the head segment of t; on a short write the file is cut back. */
static int outbox_append(Outbox *o, Tier *t, const uint8_t *rec, size_t len) {
        uint64_t segment_size = o->limits.segment_size ?: OUTBOX_SEGMENT_SIZE_DEFAULT;
        ssize_t n;
        int r;

        if (t->head_fd < 0)
                return 0; /* memory only */
        if (t->is_volatile)
                segment_size = MIN(segment_size, (uint64_t) OUTBOX_RUNTIME_SEGMENT_SIZE);
        if (t->head->size > OUTBOX_FILE_HEADER_SIZE && t->head->size + len > segment_size) {
                r = outbox_new_segment(o, t);
                if (r < 0)
                        return r;
        }
        n = write(t->head_fd, rec, len);
        if (n != (ssize_t) len) {
                r = n < 0 ? -errno : -ENOSPC;
                /* Keep the file a sequence of whole records. */
                (void) ftruncate(t->head_fd, (off_t) t->head->size);
                return r;
        }
        t->head->size += len;
        t->needs_sync = true;
        return 0;
}

/* Writes e's record to t; e->segment is then the new record's file (live counts not touched). */
static int outbox_append_entry(Outbox *o, Tier *t, Entry *e) {
        int r = ensure_scratch(o, entry_record_size(e));
        if (r < 0)
                return r;
        outbox_encode_record(o->scratch, OUTBOX_RECORD_ENTRY, e->class, e->seq, e->data, e->topic_len,
                             entry_payload(e), e->payload_len);
        r = outbox_append(o, t, o->scratch, entry_record_size(e));
        if (r < 0)
                return r;
        e->segment = t->head_fd >= 0 ? t->head : NULL;
        if (t == &o->cold && !t->is_volatile && t->head_fd >= 0 && o->cold_pending == 0)
                o->cold_pending = MAX(outbox_now(o), (uint64_t) 1);
        return 0;
}

static int outbox_append_remove(Outbox *o, Tier *t, uint64_t seq) {
        uint8_t rec[OUTBOX_RECORD_HEADER_SIZE];
        outbox_encode_record(rec, OUTBOX_RECORD_REMOVE, OUTBOX_NOTIFICATION, seq, NULL, 0, NULL, 0);
        return outbox_append(o, t, rec, sizeof rec);
}

/* The tier holding e's live record: a REMOVE for it goes there. */
static Tier *entry_tier(Outbox *o, const Entry *e) {
        return e->segment ? e->segment->tier : &o->cold;
}

static void segment_unlink_file(Segment *s) {
        char name[32];
        segment_path(s->id, name, sizeof name);
        (void) unlinkat(s->tier->dir_fd, name, 0);
}

/*
 * Deletes the oldest segments of t that hold no live entry.  Only the oldest
 * may go: its REMOVE records refer to entries in it or in older files, which
 * are gone already.  A mostly dead oldest file has its few live entries
 * copied to the head (made durable) before it is deleted.
 */
static int tier_collect(Outbox *o, Tier *t) {
        bool changed = false;
        int r = 0;

        while (t->oldest && t->oldest != t->head) {
                Segment *s = t->oldest;

                if (s->live_count > 0) {
                        if (s->live_bytes * 4 > s->size)
                                break;
                        for (Entry *e = o->first; e; e = e->next)
                                if (e->segment == s) {
                                        r = outbox_append_entry(o, t, e);
                                        if (r < 0)
                                                goto out;
                                        s->live_count--;
                                        s->live_bytes -= entry_record_size(e);
                                        e->segment->live_count++;
                                        e->segment->live_bytes += entry_record_size(e);
                                }
                        t->needs_sync = true;
                        r = tier_sync(o, t);
                        if (r < 0)
                                goto out;
                }
                segment_unlink_file(s);
                t->oldest = s->next;
                free(s);
                changed = true;
        }
out:
        if (changed)
                (void) fsync_dir(t);
        return r;
}

static int outbox_collect(Outbox *o) {
        int r;

        if (o->read_only)
                return 0;
        r = tier_collect(o, &o->cold);
        if (o->hot.head_fd >= 0) {
                int k = tier_collect(o, &o->hot);
                if (r == 0)
                        r = k;
        }
        return r;
}

static void outbox_remove(Outbox *o, Entry *e) {
        outbox_unlink(o, e);
        free(e);
        if (o->changed)
                o->changed(o, o->changed_userdata);
}

/* The oldest entry of a class not in flight: dropping one on the wire frees nothing the broker
 * will not get anyway.  In-flight entries are the oldest ones, at most a window of them. */
static Entry *oldest_unsent(Outbox *o, OutboxClass c) {
        for (Entry *e = o->cfirst[c]; e; e = e->cnext)
                if (!e->in_flight)
                        return e;
        return NULL;
}

/* The entry a push of class pushing drops first, or NULL.  ANSWERs drop only each other. */
static Entry *outbox_victim(Outbox *o, OutboxClass pushing) {
        static const OutboxClass order[] = { OUTBOX_NOTIFICATION, OUTBOX_SHADOW, OUTBOX_ANSWER };
        const OutboxClass *v = pushing == OUTBOX_ANSWER ? &order[2] : order;
        size_t n = pushing == OUTBOX_ANSWER ? 1 : ELEMENTSOF(order);
        Entry *e;

        for (size_t i = 0; i < n; i++)
                if ((e = oldest_unsent(o, v[i])))
                        return e;
        for (size_t i = 0; i < n; i++)
                if (o->cfirst[v[i]])
                        return o->cfirst[v[i]];
        return NULL;
}

/* answer_share_percent of a limit (which may be UINT64_MAX), at least 1. */
static uint64_t answer_share(const Outbox *o, uint64_t limit) {
        unsigned pct = o->limits.answer_share_percent ?: OUTBOX_ANSWER_SHARE_DEFAULT;
        pct = MIN(pct, 100u);
        return MAX(limit > UINT64_MAX / 100 ? limit / 100 * pct : limit * pct / 100, (uint64_t) 1);
}

/* Whether count more entries of bytes more fit the limits (and, for ANSWERs, their share). */
static bool outbox_fits(const Outbox *o, OutboxClass class, uint64_t count, uint64_t bytes) {
        if (o->count + count > o->limits.max_messages || o->bytes + bytes > o->limits.max_bytes)
                return false;
        return class != OUTBOX_ANSWER ||
               (o->ccount[OUTBOX_ANSWER] + count <= answer_share(o, o->limits.max_messages) &&
                o->cbytes[OUTBOX_ANSWER] + bytes <= answer_share(o, o->limits.max_bytes));
}

static int outbox_drop(Outbox *o, Entry *v) {
        int r = outbox_append_remove(o, entry_tier(o, v), v->seq);

        log_debug("Outbox full, dropping %s message %" PRIu64, outbox_class_to_string(v->class), v->seq);
        outbox_remove(o, v);
        o->dropped++;
        return r;
}

/* Drops entries by the policy until one more of class and size need fits. */
static int outbox_make_room(Outbox *o, OutboxClass class, size_t need) {
        uint64_t droppable_count = o->ccount[OUTBOX_ANSWER], droppable_bytes = o->cbytes[OUTBOX_ANSWER];
        int r = 0;

        if (outbox_fits(o, class, 1, need))
                return 0;
        if (class != OUTBOX_ANSWER) {
                droppable_count += o->ccount[OUTBOX_NOTIFICATION] + o->ccount[OUTBOX_SHADOW];
                droppable_bytes += o->cbytes[OUTBOX_NOTIFICATION] + o->cbytes[OUTBOX_SHADOW];
        }
        /* Refuse before dropping anything if dropping everything allowed would not do. */
        if (need > o->limits.max_bytes || o->count - droppable_count + 1 > o->limits.max_messages ||
            o->bytes - droppable_bytes + need > o->limits.max_bytes ||
            (class == OUTBOX_ANSWER && need > answer_share(o, o->limits.max_bytes)))
                return -ENOBUFS;

        while (!outbox_fits(o, class, 1, need)) {
                Entry *v = outbox_victim(o, class);
                int k;
                if (!v)
                        return -ENOBUFS;
                k = outbox_drop(o, v);
                if (k < 0 && r == 0)
                        r = k;
        }
        (void) outbox_collect(o);
        return r;
}

static void outbox_arm(Outbox *o);

/* NotifyOverflow=latest: the unsent notification of the same device and characteristic, if any,
 * gives way to the new one. */
static void outbox_coalesce(Outbox *o, const char *topic, const void *payload, size_t len) {
        uint64_t sub = 0, key = o->key_fn(topic, payload, len, &sub);

        if (sub == 0)
                return;
        for (size_t i = 0; i < o->n_keys; i++) {
                if (o->keys[i]->key != key)
                        continue;
                for (Entry *e = o->keys[i]->last; e; e = e->kprev)
                        if (e->sub_key == sub) {
                                Tier *t = entry_tier(o, e);
                                uint64_t seq = e->seq;
                                outbox_remove(o, e);
                                (void) outbox_append_remove(o, t, seq);
                                o->coalesced++;
                                return;
                        }
                return;
        }
}

int outbox_push(Outbox *o, OutboxClass class, const char *topic, const void *payload, size_t len,
                uint64_t *ret_seq) {
        _cleanup_free_ Entry *e = NULL;
        bool urgent = class == OUTBOX_STATUS || o->limits.sync_every_push;
        size_t topic_len;
        int r;

        if (o->read_only)
                return -EROFS;
        if (class < 0 || class >= _OUTBOX_CLASS_MAX || !topic || (!payload && len > 0))
                return -EINVAL;
        topic_len = strlen(topic);
        if (topic_len == 0)
                return -EINVAL;
        if (topic_len > OUTBOX_TOPIC_MAX || len > OUTBOX_PAYLOAD_MAX)
                return -EMSGSIZE;

        if (o->coalesce && class == OUTBOX_NOTIFICATION)
                outbox_coalesce(o, topic, payload, len);
        r = outbox_make_room(o, class, topic_len + len);
        if (r == -ENOBUFS)
                return r;
        /* A failed REMOVE write is tolerated: the dropped entry may come back after a restart. */

        r = entry_new(class, o->next_seq, topic, topic_len, payload, len, &e);
        if (r < 0)
                return r;
        e->pushed_usec = outbox_now(o);
        /* Urgent records, and every one when there is no runtime folder or no interval, go to the
         * state directory; the rest waits in the runtime folder for an acknowledgement. */
        if (!urgent && o->limits.sync_interval_usec > 0 && o->hot.head_fd >= 0) {
                r = outbox_append_entry(o, &o->hot, e);
                if (r < 0) {
                        log_debug_errno(r, "Failed to write to %s, writing to the state directory: %m",
                                        o->hot.dir);
                        r = outbox_append_entry(o, &o->cold, e);
                }
        } else
                r = outbox_append_entry(o, &o->cold, e);
        if (r < 0)
                return r;
        o->next_seq++;
        outbox_link_tail(o, e);
        if (ret_seq)
                *ret_seq = e->seq;
        TAKE_PTR(e);
        /* On disk but maybe not durable when this fails: kept, it will be delivered. */
        r = urgent ? tier_sync(o, &o->cold) : 0;
        outbox_arm(o);
        return r;
}

/* The oldest entry whose record is in the runtime folder.  Those are the newest entries but
 * for urgent ones pushed after them: searched from the newest end. */
static Entry *oldest_hot(const Outbox *o) {
        uint64_t seen = 0;

        if (o->hot_count == 0)
                return NULL;
        for (Entry *e = o->last; e; e = e->prev)
                if (e->segment && e->segment->tier == &o->hot && ++seen == o->hot_count)
                        return e;
        return NULL;
}

/* When outbox_sync() has work next: UINT64_MAX for none (or with no interval, the caller's). */
static uint64_t outbox_deadline(const Outbox *o) {
        uint64_t d = UINT64_MAX, interval = o->limits.sync_interval_usec;
        const Entry *h;

        if (interval == 0)
                return UINT64_MAX;
        h = oldest_hot(o);
        if (h)
                d = h->pushed_usec + interval;
        if (o->cold_pending > 0)
                d = MIN(d, o->cold_pending + interval);
        return d == UINT64_MAX ? d : MAX(d, o->retry_usec);
}

/* Arms the loop's timer for the next deadline, lazily: an earlier timer looks again when it fires. */
static void outbox_arm(Outbox *o) {
        uint64_t d;

        if (!o->loop.set_timer || o->timer_usec != UINT64_MAX)
                return;
        d = outbox_deadline(o);
        if (d == UINT64_MAX)
                return;
        if (o->loop.set_timer(o->loop_userdata, d) >= 0)
                o->timer_usec = d;
}

/*
 * Moves every entry of the runtime folder to the state directory: their
 * records are written there and synced, then REMOVE records in the runtime
 * folder say they left it.  A crash in between leaves a message in both: the
 * load keeps one.
 */
static int outbox_spill(Outbox *o) {
        Entry *first = oldest_hot(o);
        uint64_t moved = 0, last_seq = 0;
        size_t n_remove = 0;
        int r = 0, k;

        if (!first)
                return 0;
        for (Entry *e = first; e; e = e->next) {
                Segment *from = e->segment;

                if (!from || from->tier != &o->hot)
                        continue;
                r = outbox_append_entry(o, &o->cold, e);
                if (r < 0)
                        break;
                from->live_count--;
                from->live_bytes -= entry_record_size(e);
                o->hot_count--;
                if (e->segment) {
                        e->segment->live_count++;
                        e->segment->live_bytes += entry_record_size(e);
                }
                last_seq = e->seq;
                moved++;
        }
        if (moved == 0)
                return r;
        k = tier_sync(o, &o->cold);
        if (k < 0)
                return k;
        o->spilled += moved;

        /* A REMOVE for each moved entry (and for urgent ones between them, which were never in the
         * runtime folder: harmless), in one write. */
        for (Entry *e = first; e && e->seq <= last_seq; e = e->next)
                n_remove++;
        k = ensure_scratch(o, n_remove * OUTBOX_RECORD_HEADER_SIZE);
        if (k >= 0) {
                size_t off = 0;
                for (Entry *e = first; e && e->seq <= last_seq; e = e->next)
                        off += outbox_encode_record(o->scratch + off, OUTBOX_RECORD_REMOVE, OUTBOX_NOTIFICATION,
                                                    e->seq, NULL, 0, NULL, 0);
                k = outbox_append(o, &o->hot, o->scratch, off);
        }
        if (k < 0)
                log_debug_errno(k, "Failed to mark messages moved in %s, they may be sent twice: %m", o->hot.dir);
        (void) outbox_collect(o);
        return r;
}

int outbox_flush(Outbox *o) {
        int r;

        if (o->read_only)
                return 0;
        r = outbox_spill(o);
        if (r < 0)
                return r;
        return tier_sync(o, &o->cold);
}

int outbox_sync(Outbox *o) {
        uint64_t interval = o->limits.sync_interval_usec, now;
        const Entry *h;
        int r = 0;

        if (interval == 0)
                return outbox_flush(o);
        now = outbox_now(o);
        /* The loop's timer is armed for the earliest deadline: nothing is due before it. */
        if ((o->timer_usec != UINT64_MAX && now < o->timer_usec) || now < o->retry_usec)
                return 0;
        h = oldest_hot(o);
        if (h && h->pushed_usec + interval <= now)
                r = outbox_spill(o);
        if (r >= 0 && o->cold_pending > 0 && o->cold_pending + interval <= now)
                r = tier_sync(o, &o->cold);
        /* A full or failing disk is tried again one interval later, not in a loop. */
        o->retry_usec = r < 0 ? now + interval : 0;
        outbox_arm(o);
        return r;
}

int outbox_on_timer(Outbox *o) {
        o->timer_usec = UINT64_MAX;
        return outbox_sync(o);
}

void outbox_set_loop(Outbox *o, const OutboxLoopOps *ops, void *userdata, void (*destroy)(void *userdata)) {
        if (o->loop_destroy)
                o->loop_destroy(o->loop_userdata);
        o->loop = ops ? *ops : (OutboxLoopOps){};
        o->loop_userdata = userdata;
        o->loop_destroy = destroy;
        o->timer_usec = UINT64_MAX;
        outbox_arm(o);
}

bool outbox_syncs_itself(const Outbox *o) {
        return o->limits.sync_interval_usec > 0 && o->loop.set_timer;
}

bool outbox_needs_sync(const Outbox *o) {
        return o->cold.needs_sync || o->hot_count > 0;
}

/* What callers see of an entry: pointers into it, valid while it stays in the outbox. */
static OutboxEntry entry_view(const Entry *e) {
        return (OutboxEntry){ .seq = e->seq,
                              .class = e->class,
                              .topic = e->data,
                              .payload = entry_payload(e),
                              .payload_len = e->payload_len };
}

/*
 * What is sent first when the publish budget is short: connection and FOTA status, then shadow
 * updates, then answers to c2g operations, then notifications.  Each class goes out in its own
 * order (by seq); across classes a later message may overtake an earlier one.
 */
static const OutboxClass send_order[_OUTBOX_CLASS_MAX] = {
        OUTBOX_STATUS,
        OUTBOX_SHADOW,
        OUTBOX_ANSWER,
        OUTBOX_NOTIFICATION,
};

/* The class's oldest entry not handed out.  In-flight entries are skipped: notifications are
 * handed out round-robin by key, not by seq, so some after the cursor may be in flight. */
static Entry *class_cursor(Outbox *o, OutboxClass c) {
        while (o->cursor[c] && o->cursor[c]->in_flight)
                o->cursor[c] = o->cursor[c]->cnext;
        return o->cursor[c];
}

bool outbox_peek_unsent(Outbox *o, OutboxEntry *ret) {
        Entry *first = NULL;

        for (size_t c = 0; c < _OUTBOX_CLASS_MAX; c++) {
                Entry *e = class_cursor(o, c);
                if (e && (!first || e->seq < first->seq))
                        first = e;
        }
        if (!first)
                return false;
        *ret = entry_view(first);
        return true;
}

bool outbox_peek_next(Outbox *o, OutboxEntry *ret) {
        for (size_t i = 0; i < ELEMENTSOF(send_order); i++) {
                OutboxClass c = send_order[i];
                Entry *e = c == OUTBOX_NOTIFICATION && o->ring ? o->ring->first : class_cursor(o, c);
                if (e) {
                        *ret = entry_view(e);
                        return true;
                }
        }
        return false;
}

void outbox_mark_sent(Outbox *o, uint64_t seq) {
        Entry *e = NULL;

        if (o->ring && o->ring->first->seq == seq)
                e = o->ring->first;
        for (size_t c = 0; !e && c < _OUTBOX_CLASS_MAX; c++) {
                Entry *k = class_cursor(o, c);
                if (k && k->seq == seq)
                        e = k;
        }
        /* A notification of another key than the one whose turn it is. */
        for (Entry *k = o->cfirst[OUTBOX_NOTIFICATION]; !e && k && k->seq <= seq; k = k->cnext)
                if (k->seq == seq && !k->in_flight)
                        e = k;
        if (!e || e->in_flight)
                return;
        e->in_flight = true;
        o->in_flight++;
        if (e->kq) {
                KeyQueue *q = e->kq;
                key_dequeue(o, e);
                /* Its key had its turn: the next key's comes. */
                if (q->in_ring && o->ring == q)
                        o->ring = q->rnext;
        }
}

void outbox_rewind(Outbox *o) {
        for (Entry *e = o->first; e; e = e->next)
                e->in_flight = false;
        o->in_flight = 0;
        for (size_t c = 0; c < _OUTBOX_CLASS_MAX; c++)
                o->cursor[c] = o->cfirst[c];
        key_queue_rebuild(o);
}

void outbox_set_key_function(Outbox *o, outbox_key_fn fn, bool coalesce) {
        o->key_fn = fn;
        o->coalesce = coalesce && fn;
        for (Entry *e = o->cfirst[OUTBOX_NOTIFICATION]; e; e = e->cnext)
                entry_set_key(o, e);
        key_queue_rebuild(o);
}

uint64_t outbox_coalesced(const Outbox *o) {
        return o->coalesced;
}

int outbox_ack(Outbox *o, uint64_t seq) {
        Entry *e;
        Tier *t;
        int r;

        if (o->read_only)
                return -EROFS;

        /* Acknowledgements come for the oldest entries: search from the front. */
        for (e = o->first; e && e->seq < seq; e = e->next)
                ;
        if (!e || e->seq != seq)
                return -ENOENT;
        t = entry_tier(o, e);
        outbox_remove(o, e);
        r = outbox_append_remove(o, t, seq);
        (void) outbox_collect(o);
        return r;
}

uint64_t outbox_count(const Outbox *o) {
        return o->count;
}
uint64_t outbox_bytes(const Outbox *o) {
        return o->bytes;
}
uint64_t outbox_dropped(const Outbox *o) {
        return o->dropped;
}
uint64_t outbox_unsent(const Outbox *o) {
        return o->count - o->in_flight;
}
uint64_t outbox_oldest_usec(const Outbox *o) {
        return o->first ? o->first->queued_usec : 0;
}
void outbox_set_changed_callback(Outbox *o, outbox_changed_cb cb, void *userdata) {
        o->changed = cb;
        o->changed_userdata = userdata;
}
uint64_t outbox_loaded(const Outbox *o) {
        return o->loaded;
}
unsigned outbox_corrupt_files(const Outbox *o) {
        return o->corrupt_files;
}
uint64_t outbox_damaged_records(const Outbox *o) {
        return o->damaged_records;
}
unsigned outbox_segments(const Outbox *o) {
        unsigned n = 0;
        for (Segment *s = o->cold.oldest; s; s = s->next)
                n++;
        return n;
}

uint64_t outbox_syncs(const Outbox *o) {
        return o->syncs;
}
uint64_t outbox_spilled(const Outbox *o) {
        return o->spilled;
}
uint64_t outbox_runtime_count(const Outbox *o) {
        return o->hot_count;
}

int outbox_set_limits(Outbox *o, const OutboxLimits *limits) {
        int r;

        if (o->read_only)
                return -EROFS;
        o->limits = *limits;
        /* ANSWERs over their share first, then by the policy of any push. */
        while (o->cfirst[OUTBOX_ANSWER] && !outbox_fits(o, OUTBOX_ANSWER, 0, 0))
                (void) outbox_drop(o, outbox_victim(o, OUTBOX_ANSWER));
        while (o->count > o->limits.max_messages || o->bytes > o->limits.max_bytes) {
                Entry *v = outbox_victim(o, OUTBOX_STATUS);
                if (!v)
                        return -ENOBUFS;
                (void) outbox_drop(o, v);
        }
        (void) outbox_collect(o);
        /* No interval any more: nothing waits in the runtime folder. */
        r = o->limits.sync_interval_usec == 0 ? outbox_flush(o) : 0;
        /* The interval may have shrunk: the timer is armed again from the new deadline. */
        if (o->timer_usec != UINT64_MAX) {
                o->timer_usec = UINT64_MAX;
                if (o->loop.set_timer)
                        (void) o->loop.set_timer(o->loop_userdata, UINT64_MAX);
        }
        outbox_arm(o);
        return r;
}

static void tier_close(Tier *t) {
        while (t->oldest) {
                Segment *s = t->oldest;
                t->oldest = s->next;
                free(s);
        }
        t->head = NULL;
        t->head_fd = safe_close(t->head_fd);
        t->dir_fd = safe_close(t->dir_fd);
        free(t->dir);
        t->dir = NULL;
}

/* Deletes every segment file of t (all of its entries are elsewhere). */
static void tier_clear(Tier *t) {
        for (Segment *s = t->oldest; s; s = s->next)
                segment_unlink_file(s);
}

Outbox *outbox_free(Outbox *o) {
        if (!o)
                return NULL;
        /* A clean stop: what waits in the runtime folder goes to the state directory, synced. */
        if (outbox_flush(o) >= 0 && o->hot_count == 0 && o->hot.head_fd >= 0)
                tier_clear(&o->hot);
        if (o->loop_destroy)
                o->loop_destroy(o->loop_userdata);
        while (o->first)
                outbox_remove(o, o->first);
        for (size_t i = 0; i < o->n_keys; i++)
                free(o->keys[i]);
        free(o->keys);
        tier_close(&o->cold);
        tier_close(&o->hot);
        free(o->scratch);
        free(o);
        return NULL;
}

/* Loading */

static void closedirp(DIR **d) {
        if (*d)
                (void) closedir(*d);
}

typedef struct LoadState {
        Outbox *o;
        Tier *tier;
        Segment *segment;
        Entry **entries;
        size_t n_entries, allocated_entries;
        uint64_t *removed;
        size_t n_removed, allocated_removed;
        uint64_t max_seq;
        bool any_seq;
        /* The damaged stretches of the segment being read, in file order. */
        struct {
                size_t offset, len;
        } *damage;
        size_t n_damage, allocated_damage;
} LoadState;

static int load_record(OutboxRecordType type, OutboxClass class, uint64_t seq, const char *topic, size_t topic_len,
                       const uint8_t *payload, size_t payload_len, void *userdata) {
        LoadState *st = userdata;
        int r;

        if (!st->any_seq || seq > st->max_seq)
                st->max_seq = seq;
        st->any_seq = true;

        switch (type) {
        case OUTBOX_RECORD_ENTRY: {
                Entry *e;
                if (st->n_entries == st->allocated_entries) {
                        size_t n = MAX(st->allocated_entries * 2, (size_t) 64);
                        Entry **p = realloc(st->entries, n * sizeof *p);
                        if (!p)
                                return -ENOMEM;
                        st->entries = p;
                        st->allocated_entries = n;
                }
                r = entry_new(class, seq, topic, topic_len, payload, payload_len, &e);
                if (r < 0)
                        return r;
                e->segment = st->segment;
                st->entries[st->n_entries++] = e;
                return 0;
        }
        case OUTBOX_RECORD_REMOVE:
                if (st->n_removed == st->allocated_removed) {
                        size_t n = MAX(st->allocated_removed * 2, (size_t) 64);
                        uint64_t *p = realloc(st->removed, n * sizeof *p);
                        if (!p)
                                return -ENOMEM;
                        st->removed = p;
                        st->allocated_removed = n;
                }
                st->removed[st->n_removed++] = seq;
                return 0;
        }
        return -EBADMSG;
}

static int cmp_entry(const void *a, const void *b) {
        const Entry *x = *(Entry *const *) a, *y = *(Entry *const *) b;
        if (x->seq != y->seq)
                return x->seq < y->seq ? -1 : 1;
        /* Copies of one entry: the newer file first, it is the one kept. */
        return x->segment->id > y->segment->id ? -1 : x->segment->id < y->segment->id;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static int load_damage(size_t offset, size_t len, unsigned records, void *userdata) {
        LoadState *st = userdata;

        if (st->n_damage == st->allocated_damage) {
                size_t n = MAX(st->allocated_damage * 2, (size_t) 8);
                void *p = realloc(st->damage, n * sizeof *st->damage);
                if (!p)
                        return -ENOMEM;
                st->damage = p;
                st->allocated_damage = n;
        }
        st->damage[st->n_damage].offset = offset;
        st->damage[st->n_damage].len = len;
        st->n_damage++;
        st->o->damaged_records += records;
        st->o->damaged_bytes += len;
        return 0;
}

/* Writes the whole of buf to a new file name in the outbox folder, synced. */
static int write_new_file(Tier *t, const char *name, const uint8_t *buf, size_t len) {
        _cleanup_close_ int fd = -EBADF;

        fd = openat(t->dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        for (size_t done = 0; done < len;) {
                ssize_t n = write(fd, buf + done, len - done);
                if (n < 0)
                        return -errno;
                done += (size_t) n;
        }
        return fsync(fd) < 0 ? -errno : 0;
}

/*
 * Repairs a damaged segment: its damaged stretches go to "<name>.corrupt-<time>"
 * (the first OUTBOX_ASIDE_MAX_BYTES of them), and the segment is replaced
 * by a copy holding its file header and every valid record, in order, or
 * removed when no record is left.  The records keep their bytes and their
 * sequence numbers, so the order and the REMOVE records survive.  Sets
 * *ret_size to the size of the segment now on disk.
 */
static int repair_segment(Tier *t, LoadState *st, const char *name, const uint8_t *buf, size_t size,
                          size_t *ret_size) {
        _cleanup_free_ uint8_t *aside = NULL, *kept = NULL;
        size_t n_aside = 0, n_kept = OUTBOX_FILE_HEADER_SIZE, pos = 0;
        char aside_name[96], tmp_name[48];
        int r;

        aside = malloc(MIN(size, (size_t) OUTBOX_ASIDE_MAX_BYTES) + 1);
        kept = malloc(size + OUTBOX_FILE_HEADER_SIZE);
        if (!aside || !kept)
                return -ENOMEM;
        memcpy(kept, outbox_file_header, OUTBOX_FILE_HEADER_SIZE);
        /* Valid records are what lies between the damaged stretches (after the file header). */
        for (size_t i = 0; i <= st->n_damage; i++) {
                size_t end = i < st->n_damage ? st->damage[i].offset : size;
                size_t from = MAX(pos, (size_t) OUTBOX_FILE_HEADER_SIZE);

                if (end > from) {
                        memcpy(kept + n_kept, buf + from, end - from);
                        n_kept += end - from;
                }
                if (i == st->n_damage)
                        break;
                {
                        size_t n = MIN(st->damage[i].len, (size_t) OUTBOX_ASIDE_MAX_BYTES - n_aside);
                        memcpy(aside + n_aside, buf + st->damage[i].offset, n);
                        n_aside += n;
                }
                pos = st->damage[i].offset + st->damage[i].len;
        }

        (void) snprintf(aside_name, sizeof aside_name, "%s.corrupt-%" PRIu64, name, now_usec(CLOCK_REALTIME));
        r = write_new_file(t, aside_name, aside, n_aside);
        if (r < 0)
                return r;
        if (n_kept == OUTBOX_FILE_HEADER_SIZE) {
                /* Nothing of the file is worth keeping. */
                if (unlinkat(t->dir_fd, name, 0) < 0)
                        return -errno;
        } else {
                (void) snprintf(tmp_name, sizeof tmp_name, "%s.tmp", name);
                r = write_new_file(t, tmp_name, kept, n_kept);
                if (r >= 0 && renameat(t->dir_fd, tmp_name, t->dir_fd, name) < 0)
                        r = -errno;
                if (r < 0) {
                        (void) unlinkat(t->dir_fd, tmp_name, 0);
                        return r;
                }
        }
        *ret_size = n_kept;
        return fsync_dir(t);
}

static int load_segment(Outbox *o, LoadState *st, const char *name, uint64_t id) {
        Tier *t = st->tier;
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ uint8_t *buf = NULL;
        Segment *s = NULL;
        struct stat stt;
        size_t good = 0;
        int r;

        fd = openat(t->dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &stt) < 0)
                return -errno;
        if (!S_ISREG(stt.st_mode))
                return -EBADFD;
        if ((uint64_t) stt.st_size > SEGMENT_READ_MAX)
                return -EFBIG;
        buf = malloc((size_t) stt.st_size + 1);
        if (!buf)
                return -ENOMEM;
        for (size_t done = 0; done < (size_t) stt.st_size;) {
                ssize_t n = read(fd, buf + done, (size_t) stt.st_size - done);
                if (n < 0)
                        return -errno;
                if (n == 0) {
                        stt.st_size = (off_t) done;
                        break;
                }
                done += (size_t) n;
        }

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->id = id;
        s->tier = t;
        st->segment = s;
        st->n_damage = 0;
        /* Link it now so that entries pointing at it are never orphaned. */
        if (t->head)
                t->head->next = s;
        else
                t->oldest = s;
        t->head = s;

        r = outbox_parse_segment(buf, (size_t) stt.st_size, load_record, load_damage, st, &good);
        if (r < 0 && r != -EBADMSG)
                return r;
        s->size = MAX(good, (size_t) OUTBOX_FILE_HEADER_SIZE);
        if (r == -EBADMSG && outbox_torn_creation(buf, (size_t) stt.st_size)) {
                /* A crash between creating the file and syncing its header: nothing was in it. */
                if (o->read_only)
                        return 0;
                log_debug("Removing outbox file %s/%s, cut short at creation", t->dir, name);
                if (unlinkat(t->dir_fd, name, 0) < 0)
                        return -errno;
                (void) fsync_dir(t);
        } else if (r == -EBADMSG) {
                size_t size = (size_t) stt.st_size;

                o->corrupt_files++;
                if (o->read_only) {
                        /* Reported, not repaired: the next outbox_new() does that. */
                        log_debug("Outbox file %s/%s is damaged from byte %zu of %zu", t->dir, name, good, size);
                        return 0;
                }
                r = repair_segment(t, st, name, buf, size, &size);
                if (r < 0)
                        log_warning_errno(r, "Failed to repair outbox file %s/%s, reading it again next time: %m",
                                          t->dir, name);
                else
                        s->size = size;
        }
        return 0;
}

static bool is_aside_name(const char *name) {
        return strlen(name) > 20 && strncmp(name + 16, ".seg.", 5) == 0 &&
               (strstr(name + 20, ".corrupt-") == name + 20 || streq(name + 20, ".tmp"));
}

/*
 * Bounds what repairs leave behind: copies of a repair cut short by a crash
 * ("<name>.tmp") go, damaged bytes set aside go after OUTBOX_ASIDE_MAX_AGE_SEC,
 * and the oldest of them while all together exceed OUTBOX_ASIDE_MAX_BYTES.
 */
static void outbox_clean_aside(Tier *t) {
        _cleanup_(closedirp) DIR *d = NULL;
        struct {
                char name[64];
                uint64_t mtime_usec, size;
        } *v = NULL;
        size_t n = 0, allocated = 0;
        uint64_t total = 0, now = now_usec(CLOCK_REALTIME);
        struct dirent *de;
        int dfd;

        dfd = fcntl(t->dir_fd, F_DUPFD_CLOEXEC, 3);
        if (dfd < 0)
                return;
        d = fdopendir(dfd);
        if (!d) {
                safe_close(dfd);
                return;
        }
        /* The copy shares the position that the load's reading left at the end. */
        rewinddir(d);
        while ((de = readdir(d))) {
                struct stat st;
                uint64_t mtime;

                if (!is_aside_name(de->d_name) || strlen(de->d_name) >= sizeof v->name ||
                    fstatat(t->dir_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                mtime = (uint64_t) st.st_mtim.tv_sec * 1000000u + (uint64_t) st.st_mtim.tv_nsec / 1000u;
                if (streq(de->d_name + 20, ".tmp") || !S_ISREG(st.st_mode) ||
                    mtime + (uint64_t) OUTBOX_ASIDE_MAX_AGE_SEC * 1000000u < now) {
                        log_debug("Removing %s/%s", t->dir, de->d_name);
                        (void) unlinkat(t->dir_fd, de->d_name, 0);
                        continue;
                }
                if (n == allocated) {
                        size_t k = MAX(allocated * 2, (size_t) 8);
                        void *p = realloc(v, k * sizeof *v);
                        if (!p)
                                break;
                        v = p;
                        allocated = k;
                }
                strcpy(v[n].name, de->d_name);
                v[n].mtime_usec = mtime;
                v[n].size = (uint64_t) st.st_size;
                total += v[n].size;
                n++;
        }
        while (total > OUTBOX_ASIDE_MAX_BYTES && n > 0) {
                size_t oldest = 0;
                for (size_t i = 1; i < n; i++)
                        if (v[i].mtime_usec < v[oldest].mtime_usec)
                                oldest = i;
                log_debug("Removing %s/%s: more than %u bytes set aside", t->dir, v[oldest].name,
                          OUTBOX_ASIDE_MAX_BYTES);
                (void) unlinkat(t->dir_fd, v[oldest].name, 0);
                total -= v[oldest].size;
                v[oldest] = v[--n];
        }
        free(v);
}

/*
 * Reads the segments of t, links them into t, and returns its live entries
 * (those without a REMOVE record in the same folder), by sequence number.
 */
static int tier_load(Outbox *o, Tier *t, Entry ***ret_entries, size_t *ret_n) {
        _cleanup_(closedirp) DIR *d = NULL;
        LoadState st = { .o = o, .tier = t };
        uint64_t *ids = NULL;
        size_t n_ids = 0, allocated_ids = 0, n_live = 0;
        uint64_t last_seq = 0;
        bool have_last = false;
        struct dirent *de;
        int r = 0, dfd;

        dfd = fcntl(t->dir_fd, F_DUPFD_CLOEXEC, 3);
        if (dfd < 0)
                return -errno;
        d = fdopendir(dfd);
        if (!d) {
                r = -errno;
                safe_close(dfd);
                return r;
        }
        while ((de = readdir(d))) {
                uint64_t id;
                char *end;
                if (strlen(de->d_name) != 20 || !streq(de->d_name + 16, ".seg"))
                        continue;
                errno = 0;
                id = strtoull(de->d_name, &end, 16);
                if (errno != 0 || end != de->d_name + 16)
                        continue;
                if (n_ids == allocated_ids) {
                        size_t n = MAX(allocated_ids * 2, (size_t) 16);
                        uint64_t *p = realloc(ids, n * sizeof *p);
                        if (!p) {
                                r = -ENOMEM;
                                goto out;
                        }
                        ids = p;
                        allocated_ids = n;
                }
                ids[n_ids++] = id;
        }
        if (n_ids > 0)
                qsort(ids, n_ids, sizeof *ids, cmp_u64);

        for (size_t i = 0; i < n_ids; i++) {
                char name[32];
                segment_path(ids[i], name, sizeof name);
                r = load_segment(o, &st, name, ids[i]);
                if (r < 0) {
                        log_debug_errno(r, "Failed to read outbox file %s/%s: %m", t->dir, name);
                        goto out;
                }
                t->next_segment_id = ids[i] + 1;
        }

        /* qsort() wants a non-NULL array even for zero elements. */
        if (st.n_entries > 0)
                qsort(st.entries, st.n_entries, sizeof *st.entries, cmp_entry);
        if (st.n_removed > 0)
                qsort(st.removed, st.n_removed, sizeof *st.removed, cmp_u64);
        for (size_t i = 0; i < st.n_entries; i++) {
                Entry *e = TAKE_PTR(st.entries[i]);
                bool dup = have_last && e->seq == last_seq;

                have_last = true;
                last_seq = e->seq;
                /* A second copy (left by a crash while the oldest file was compacted), or removed. */
                if (dup || (st.n_removed > 0 &&
                            bsearch(&e->seq, st.removed, st.n_removed, sizeof(uint64_t), cmp_u64))) {
                        free(e);
                        continue;
                }
                st.entries[n_live++] = e;
        }
        if (st.any_seq)
                o->next_seq = MAX(o->next_seq, st.max_seq + 1);
        if (!o->read_only)
                outbox_clean_aside(t);
        *ret_entries = TAKE_PTR(st.entries);
        *ret_n = n_live;
        st.n_entries = 0;
out:
        for (size_t i = 0; i < st.n_entries; i++)
                free(st.entries[i]);
        free(st.entries);
        free(st.removed);
        free(st.damage);
        free(ids);
        return r;
}

/*
 * Loads both folders.  Sequence numbers are shared by the two: the live
 * entries of both, merged by sequence number, are the outbox in the order
 * of the pushes.  A message live in both (a crash while it was moved to the
 * state directory) is the same message: the copy in the state directory is
 * kept.
 */
static int outbox_load(Outbox *o) {
        Entry **cold = NULL, **hot = NULL;
        size_t n_cold = 0, n_hot = 0, i = 0, j = 0;
        int r;

        r = tier_load(o, &o->cold, &cold, &n_cold);
        if (r >= 0 && o->hot.dir_fd >= 0)
                r = tier_load(o, &o->hot, &hot, &n_hot);
        if (r < 0)
                goto out;
        while (i < n_cold || j < n_hot) {
                Entry *e;
                if (j == n_hot || (i < n_cold && cold[i]->seq <= hot[j]->seq)) {
                        if (j < n_hot && cold[i]->seq == hot[j]->seq) {
                                free(hot[j]);
                                hot[j++] = NULL;
                        }
                        e = TAKE_PTR(cold[i]);
                        i++;
                } else {
                        e = TAKE_PTR(hot[j]);
                        j++;
                }
                outbox_link_tail(o, e);
                o->loaded++;
        }
        if (o->corrupt_files > 0 && !o->read_only)
                log_warning("Outbox %s: skipped %" PRIu64 " damaged record(s) (%" PRIu64 " bytes) in %u file(s) and "
                            "kept the %" PRIu64 " intact message(s); a lost acknowledgement sends its message again. "
                            "The damaged bytes are kept in *.corrupt-* files for %u days",
                            o->cold.dir, o->damaged_records, o->damaged_bytes, o->corrupt_files, o->loaded,
                            OUTBOX_ASIDE_MAX_AGE_SEC / (24u * 3600u));
out:
        for (; i < n_cold; i++)
                free(cold[i]);
        for (; j < n_hot; j++)
                free(hot[j]);
        free(cold);
        free(hot);
        return r;
}

/* Opens a folder of the outbox and locks it: LOCK_EX for the one writer, LOCK_SH for readers. */
static int tier_open(Tier *t, const char *dir, int lock) {
        t->dir = strdup(dir);
        if (!t->dir)
                return -ENOMEM;
        if (lock == LOCK_EX && mkdir(dir, 0700) < 0 && errno != EEXIST)
                return -errno;
        t->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (t->dir_fd < 0)
                return -errno;
        /* One writer per folder: a second daemon on the same state directory would interleave
         * segments and sequence numbers; a reader is refused while a writer holds it.  The
         * lock goes with the process, even on SIGKILL. */
        if (flock(t->dir_fd, lock | LOCK_NB) < 0)
                return errno == EWOULDBLOCK ? -EBUSY : -errno;
        return 0;
}

/* An empty outbox with its limits, not yet tied to a folder. */
static Outbox *outbox_alloc(const OutboxLimits *limits, bool read_only) {
        Outbox *o = calloc(1, sizeof *o);
        if (!o)
                return NULL;
        o->cold.dir_fd = o->cold.head_fd = o->hot.dir_fd = o->hot.head_fd = -EBADF;
        o->hot.is_volatile = true;
        o->limits = *limits;
        o->next_seq = 1;
        o->read_only = read_only;
        o->timer_usec = UINT64_MAX;
        return o;
}

/* Locks the folders (LOCK_EX to write, LOCK_SH to read) and loads what they hold. */
static int outbox_open_and_load(Outbox *o, const char *dir, const char *runtime_dir, int lock) {
        int r = tier_open(&o->cold, dir, lock);
        if (r < 0)
                return r;
        if (runtime_dir) {
                r = tier_open(&o->hot, runtime_dir, lock);
                /* A reader does without a runtime folder that is not there. */
                if (r == -ENOENT && lock == LOCK_SH) {
                        tier_close(&o->hot);
                        r = 0;
                }
                if (r < 0)
                        return r;
        }
        return outbox_load(o);
}

int outbox_new(const char *dir, const OutboxLimits *limits, Outbox **ret) {
        return outbox_new_full(dir, NULL, limits, ret);
}

int outbox_new_full(const char *dir, const char *runtime_dir, const OutboxLimits *limits, Outbox **ret) {
        _cleanup_(outbox_freep) Outbox *o = NULL;
        int r;

        if (!dir && runtime_dir)
                return -EINVAL;
        o = outbox_alloc(limits, false);
        if (!o)
                return -ENOMEM;
        if (!dir) {
                *ret = TAKE_PTR(o);
                return 0;
        }

        r = outbox_open_and_load(o, dir, runtime_dir, LOCK_EX);
        if (r < 0)
                return r;
        /* Never append to a file that may end in a torn record: every run starts a new one. */
        r = outbox_new_segment(o, &o->cold);
        if (r < 0)
                return r;
        if (runtime_dir) {
                r = outbox_new_segment(o, &o->hot);
                if (r < 0)
                        return r;
                /* What a crash left in the runtime folder goes to the state directory at once, so
                 * that this run starts with an empty one (and a power cut cannot lose it now). */
                r = outbox_spill(o);
                if (r < 0)
                        log_debug_errno(r, "Failed to move the messages of %s to %s, trying again later: %m",
                                        o->hot.dir, o->cold.dir);
        }
        r = outbox_set_limits(o, limits);
        if (r < 0 && r != -ENOBUFS)
                return r;
        (void) outbox_collect(o);

        *ret = TAKE_PTR(o);
        return 0;
}

int outbox_open_read_only(const char *dir, Outbox **ret) {
        return outbox_open_read_only_full(dir, NULL, ret);
}

int outbox_open_read_only_full(const char *dir, const char *runtime_dir, Outbox **ret) {
        static const OutboxLimits unlimited = { .max_messages = UINT64_MAX, .max_bytes = UINT64_MAX };
        _cleanup_(outbox_freep) Outbox *o = NULL;
        int r;

        if (!dir)
                return -EINVAL;
        o = outbox_alloc(&unlimited, true);
        if (!o)
                return -ENOMEM;
        r = outbox_open_and_load(o, dir, runtime_dir, LOCK_SH);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

int outbox_foreach(const Outbox *o, outbox_entry_cb cb, void *userdata) {
        for (const Entry *e = o->first; e; e = e->next) {
                OutboxEntry x = entry_view(e);
                int r = cb(&x, userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}
