/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The outbox: messages for the cloud (topic, payload, class) kept until the
 * broker acknowledges them (PUBACK), bounded by a message count and a byte
 * count, and persisted in the state directory so that a daemon restart or a
 * power cut loses nothing that was acknowledged into it.
 *
 * On disk: a folder of append-only segment files "<16 hex digits>.seg", each
 * an 8-byte file header followed by records.  A record is a fixed 24-byte
 * header (magic, type, class, topic length, payload length, sequence number,
 * CRC-32C over header and body) followed by topic and payload.  Two record
 * types: ENTRY (a message, with its sequence number) and REMOVE (the message
 * with that sequence number was acknowledged or dropped).  Loading reads every
 * segment, keeps entries without a REMOVE, and orders them by sequence number.
 *
 * Crash safety and fsync policy:
 *   - every push is written with write(2) before outbox_push() returns, so a
 *     crash of the process (SIGKILL, abort) loses nothing pushed;
 *   - outbox_sync() fdatasync()s the head segment; only then is an entry safe
 *     against a power cut.  The MQTT session calls it once its loop has
 *     nothing else pending, at most 5 ms after a push (group commit: one sync
 *     for the pushes made meanwhile), and callers that need durability before
 *     they report success call it themselves.  With
 *     OutboxLimits.sync_every_push every push is synced (slow on SD cards).
 *   - REMOVE records are not synced: a power cut may bring back entries that
 *     were already acknowledged, which are then sent again (at-least-once).
 *   - a record torn by a crash, or damaged in any way, is skipped on its own:
 *     the reader resynchronises on the next valid record (its magic, bounds
 *     and CRC-32C) and keeps every intact record after it.  The damaged bytes
 *     of a segment go to one file "<name>.corrupt-<time>" (at most
 *     OUTBOX_ASIDE_MAX_BYTES of them), the segment is rewritten without them
 *     (a copy renamed over it), and one warning per load gives the count of
 *     records lost.  A lost REMOVE record brings its entry back (sent again,
 *     at-least-once).  Files set aside are deleted after
 *     OUTBOX_ASIDE_MAX_AGE_SEC, and the oldest go first while all of them
 *     together exceed OUTBOX_ASIDE_MAX_BYTES.
 *   - new segments and removed segments are made durable by an fsync of the
 *     folder.  The oldest segment is deleted once none of its entries is live;
 *     when only a few are, they are copied to the head segment first (same
 *     sequence numbers, so the order survives), which bounds the disk use.
 *
 * Drop policy when full: the oldest NOTIFICATION entries go first, then the
 * oldest SHADOW updates (each is superseded by the next), then the oldest
 * ANSWERs, those not in flight before those already handed to the broker;
 * STATUS entries (connection and FOTA status) are never dropped: a push that
 * would need to drop one is refused with -ENOBUFS.
 *
 * ANSWERs (the answers to c2g operations, which the cloud can ask for at any
 * rate) have a bounded share of the outbox, answer_share_percent of both
 * limits, and a push of one may only drop older ANSWERs: a flood of c2g
 * operations on a slow uplink loses its own oldest answers, never sensor data
 * nor status.
 *
 * Every live entry is also held in memory: MaxBytes bounds both.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define OUTBOX_PAYLOAD_MAX (128u * 1024u) /* AWS IoT's payload limit */
#define OUTBOX_TOPIC_MAX 1024u
#define OUTBOX_RECORD_HEADER_SIZE 24u
#define OUTBOX_FILE_HEADER_SIZE 8u
#define OUTBOX_SEGMENT_SIZE_DEFAULT (4u * 1024u * 1024u)
/* Damaged bytes kept for a post-mortem: 1 MiB in all, for 30 days. */
#define OUTBOX_ASIDE_MAX_BYTES (1024u * 1024u)
#define OUTBOX_ASIDE_MAX_AGE_SEC (30u * 24u * 3600u)
/* The share of the outbox answers to c2g operations may hold. */
#define OUTBOX_ANSWER_SHARE_DEFAULT 10u

typedef enum OutboxClass {
        OUTBOX_NOTIFICATION, /* g2c events: droppable, oldest first */
        OUTBOX_STATUS,       /* connection and FOTA status: never dropped */
        OUTBOX_SHADOW,       /* shadow updates: dropped after notifications */
        OUTBOX_ANSWER,       /* answers to c2g operations: a bounded share, drop only each other */
        _OUTBOX_CLASS_MAX,
} OutboxClass;

typedef enum OutboxRecordType {
        OUTBOX_RECORD_ENTRY = 1,
        OUTBOX_RECORD_REMOVE = 2,
} OutboxRecordType;

typedef struct OutboxLimits {
        uint64_t max_messages;
        uint64_t max_bytes;    /* topic + payload bytes of live entries */
        uint64_t segment_size; /* 0: OUTBOX_SEGMENT_SIZE_DEFAULT */
        bool sync_every_push;
        unsigned answer_share_percent; /* of both limits, for OUTBOX_ANSWER; 0: OUTBOX_ANSWER_SHARE_DEFAULT */
} OutboxLimits;

typedef struct OutboxEntry {
        uint64_t seq;
        OutboxClass class;
        const char *topic;
        const uint8_t *payload;
        size_t payload_len;
} OutboxEntry;

typedef struct Outbox Outbox;

/* dir NULL: memory only (nothing persisted).  The folder is created if missing, and locked
 * (flock(LOCK_EX)) until outbox_free(): -EBUSY when another process holds it. */
int outbox_new(const char *dir, const OutboxLimits *limits, Outbox **ret);
Outbox *outbox_free(Outbox *o);
DEFINE_TRIVIAL_CLEANUP_FUNC(Outbox *, outbox_free);

/*
 * Appends a message.  -EMSGSIZE: payload over OUTBOX_PAYLOAD_MAX or topic too
 * long; -ENOBUFS: full and nothing droppable; -EINVAL: bad class or topic.
 */
int outbox_push(Outbox *o, OutboxClass class, const char *topic, const void *payload, size_t len,
                uint64_t *ret_seq);
/* Makes every push so far durable (fdatasync of the head segment). */
int outbox_sync(Outbox *o);
bool outbox_needs_sync(const Outbox *o);

/* The oldest entry not yet handed out since the last rewind, or false. */
bool outbox_peek_unsent(Outbox *o, OutboxEntry *ret);
/* Marks that entry as handed out (in flight). */
void outbox_mark_sent(Outbox *o, uint64_t seq);
/* Every in-flight entry becomes unsent again (after a connection loss). */
void outbox_rewind(Outbox *o);
/* The broker acknowledged seq: removes it.  -ENOENT if it is not (or no longer) there. */
int outbox_ack(Outbox *o, uint64_t seq);

uint64_t outbox_count(const Outbox *o);
uint64_t outbox_bytes(const Outbox *o);
uint64_t outbox_dropped(const Outbox *o);
uint64_t outbox_unsent(const Outbox *o);
/* CLOCK_REALTIME µs when the oldest entry was pushed (or loaded by this process), 0 when empty. */
uint64_t outbox_oldest_usec(const Outbox *o);
/* An observer called after every change of the entries (push, ack, drop); NULL to stop. */
typedef void (*outbox_changed_cb)(Outbox *o, void *userdata);
void outbox_set_changed_callback(Outbox *o, outbox_changed_cb cb, void *userdata);
/* Entries kept from disk, damaged files repaired by outbox_new(), and the
 * records lost in them (a damaged file header alone loses none). */
uint64_t outbox_loaded(const Outbox *o);
unsigned outbox_corrupt_files(const Outbox *o);
uint64_t outbox_damaged_records(const Outbox *o);
unsigned outbox_segments(const Outbox *o);
/* Changes the limits; drops what is over the new ones, by the drop policy. */
int outbox_set_limits(Outbox *o, const OutboxLimits *limits);

const char *outbox_class_to_string(OutboxClass c);

/*
 * The outbox of a folder as outbox_new() would load it, for reading only
 * (nrfcloud-gatewayctl outbox): nothing in the folder is created, repaired or
 * removed, no limit is applied, and outbox_push(), outbox_ack() and
 * outbox_set_limits() return -EROFS.  Damaged files are counted in
 * outbox_corrupt_files() (their valid prefix is read), not set aside.
 * outbox_new() holds an exclusive flock() on the folder for its whole life;
 * this takes a shared one: -EBUSY while a daemon has the folder open, -ENOENT
 * or -ENOTDIR when there is no such folder.
 */
int outbox_open_read_only(const char *dir, Outbox **ret);

/* Calls cb for every live entry, oldest first; a negative return of cb stops and is returned. */
typedef int (*outbox_entry_cb)(const OutboxEntry *e, void *userdata);
int outbox_foreach(const Outbox *o, outbox_entry_cb cb, void *userdata);

/*
 * The file reader, pure (used by outbox_new() and the fuzzer).  Calls cb for
 * every valid record of a segment file image, in file order; topic is NOT
 * NUL-terminated.  A damaged stretch (a bad file header, a record failing
 * its magic, bounds or CRC, a torn tail) is skipped up to the next valid
 * record and reported to damaged (may be NULL) with its offset, its length
 * and how many records it held (record magics found in it; at least one
 * when it goes past the file header).  Returns 0 when the whole image is
 * valid, -EBADMSG when it is not, with *ret_good set to the length of the
 * valid prefix in both cases (0 when the file header itself is bad).  A
 * negative return of a callback stops the reading and is returned.
 */
typedef int (*outbox_record_cb)(OutboxRecordType type, OutboxClass class, uint64_t seq, const char *topic,
                                size_t topic_len, const uint8_t *payload, size_t payload_len, void *userdata);
typedef int (*outbox_damage_cb)(size_t offset, size_t len, unsigned records, void *userdata);
int outbox_parse_segment(const uint8_t *buf, size_t len, outbox_record_cb cb, outbox_damage_cb damaged,
                         void *userdata, size_t *ret_good);

/* A file shorter than its header and equal to the header's start: a crash at creation, not damage. */
bool outbox_torn_creation(const uint8_t *buf, size_t len);

/* Encodes one record into buf (at least OUTBOX_RECORD_HEADER_SIZE + topic_len + payload_len bytes). */
size_t outbox_encode_record(uint8_t *buf, OutboxRecordType type, OutboxClass class, uint64_t seq, const char *topic,
                            size_t topic_len, const void *payload, size_t payload_len);
extern const uint8_t outbox_file_header[OUTBOX_FILE_HEADER_SIZE];

uint32_t crc32c(uint32_t crc, const void *data, size_t len);
