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
 * Two folders (outbox_new_full()): the state directory's, durable, and
 * optionally one in the runtime directory (tmpfs: it survives a crash or a
 * SIGKILL of the process, not a reboot or a power cut), so that messages the
 * cloud acknowledges promptly never reach the SD card.  Both hold segments of
 * the same format; sequence numbers are shared, so the live entries of both,
 * merged by sequence number, are the outbox in push order.  A REMOVE record
 * cancels an ENTRY of its own folder only.
 *
 * Crash safety and fsync policy (I = OutboxLimits.sync_interval_usec):
 *   - every push is written with write(2) before outbox_push() returns, so a
 *     crash of the process (SIGKILL, abort) loses nothing pushed;
 *   - urgent pushes (OUTBOX_STATUS: connection and FOTA status; every push
 *     with sync_every_push) are written to the state directory and
 *     fdatasync()ed before outbox_push() returns;
 *   - I > 0 with a runtime folder: the other pushes are written there.  An
 *     entry still there I after its push is moved ("spilled") to the state
 *     directory: every entry of the runtime folder is written there, one
 *     fdatasync, then REMOVE records in the runtime folder.  An entry
 *     acknowledged sooner never touches the state directory.  A power cut
 *     loses at most the entries pushed in the last I (plus the timer's slack);
 *   - I > 0 without a runtime folder: pushes go to the state directory and
 *     are synced at the latest I after the first unsynced one;
 *   - I = 0: pushes go to the state directory, outbox_sync() syncs them (the
 *     MQTT session calls it at most 5 ms after a push: group commit);
 *   - the deadlines are kept by outbox_sync(), called by the loop's timer
 *     (OutboxLoopOps, outbox_on_timer()); outbox_flush() makes everything
 *     durable at once, and outbox_free() does that, then deletes the runtime
 *     folder's files (a clean stop loses nothing, even at a reboot);
 *   - at load, what the runtime folder holds (left by a crash) is merged in
 *     and moved to the state directory before anything else happens;
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
/* Segments in the runtime folder are smaller: it is memory, and they are rarely kept long. */
#define OUTBOX_RUNTIME_SEGMENT_SIZE (256u * 1024u)
/* Damaged bytes kept for a post-mortem: 1 MiB in all, for 30 days. */
#define OUTBOX_ASIDE_MAX_BYTES (1024u * 1024u)
#define OUTBOX_ASIDE_MAX_AGE_SEC (30u * 24u * 3600u)
/* The share of the outbox answers to c2g operations may hold. */
#define OUTBOX_ANSWER_SHARE_DEFAULT 10u

typedef enum OutboxClass {
        OUTBOX_NOTIFICATION, /* g2c events: droppable, oldest first */
        OUTBOX_STATUS,       /* connection and FOTA status: never dropped, synced at once (urgent) */
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
        uint64_t sync_interval_usec;   /* what a power cut may lose, see above; 0: outbox_sync() syncs all */
} OutboxLimits;

/* The outbox's view of the event loop (the daemon's sd-event, or a fake loop in tests). */
typedef struct OutboxLoopOps {
        /* CLOCK_BOOTTIME (or fake) time in µs. */
        uint64_t (*now)(void *userdata);
        /* Arms the outbox's only timer at an absolute time (UINT64_MAX: disarm); when it
         * expires, the loop calls outbox_on_timer(). */
        int (*set_timer)(void *userdata, uint64_t usec);
} OutboxLoopOps;

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
/* With a second folder in the runtime directory (NULL: none), locked too. */
int outbox_new_full(const char *dir, const char *runtime_dir, const OutboxLimits *limits, Outbox **ret);
/* Moves what the runtime folder holds to the state directory, syncs, deletes the runtime files. */
Outbox *outbox_free(Outbox *o);
DEFINE_TRIVIAL_CLEANUP_FUNC(Outbox *, outbox_free);

/*
 * Appends a message.  -EMSGSIZE: payload over OUTBOX_PAYLOAD_MAX or topic too
 * long; -ENOBUFS: full and nothing droppable; -EINVAL: bad class or topic.
 */
int outbox_push(Outbox *o, OutboxClass class, const char *topic, const void *payload, size_t len,
                uint64_t *ret_seq);
/* Does what the sync policy says is due by now (with no interval: syncs every push so far). */
int outbox_sync(Outbox *o);
/* Makes every push so far durable now (spill and fdatasync). */
int outbox_flush(Outbox *o);
bool outbox_needs_sync(const Outbox *o);
/* Whether the outbox keeps its sync deadlines with the loop's timer (an interval and a loop):
 * then outbox_sync() has nothing to do between them, and the caller need not call it per push. */
bool outbox_syncs_itself(const Outbox *o);
/* Gives the outbox its clock and timer (ops NULL: CLOCK_BOOTTIME, no timer); destroy(userdata) is
 * called by outbox_free() or the next outbox_set_loop(). */
void outbox_set_loop(Outbox *o, const OutboxLoopOps *ops, void *userdata, void (*destroy)(void *userdata));
/* The loop's timer expired: outbox_sync(), and the timer armed again if anything is left. */
int outbox_on_timer(Outbox *o);

/* The oldest entry not yet handed out since the last rewind, or false. */
bool outbox_peek_unsent(Outbox *o, OutboxEntry *ret);
/* The next entry to send, or false: of the first class in the send order (STATUS, SHADOW,
 * ANSWER, NOTIFICATION) that has one, its oldest entry not yet handed out since the last rewind
 * (for notifications: of the key whose turn it is, see outbox_set_key_function()).
 * Order holds within a class; a message of an earlier class may overtake older ones of a later
 * class.  Either peek's entry may be marked sent. */
bool outbox_peek_next(Outbox *o, OutboxEntry *ret);
/* Marks that entry as handed out (in flight). */
void outbox_mark_sent(Outbox *o, uint64_t seq);
/*
 * Notifications are served round-robin by a key (the device), so that one chatty device cannot
 * starve the others: outbox_peek_next() gives the oldest unsent notification of the key whose turn
 * it is, and marking it sent passes the turn on.  Each key's notifications go in order; across
 * keys they interleave.  fn gives an entry's key, and a sub-key (0: none) naming what may be
 * coalesced: with coalesce, pushing a notification removes the unsent one of the same key and
 * sub-key (counted by outbox_coalesced()).  Without fn, all notifications share one key.
 */
typedef uint64_t (*outbox_key_fn)(const char *topic, const uint8_t *payload, size_t len, uint64_t *ret_sub_key);
void outbox_set_key_function(Outbox *o, outbox_key_fn fn, bool coalesce);
uint64_t outbox_coalesced(const Outbox *o);
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
/* fdatasync() calls made, entries moved from the runtime folder to the state directory, and
 * entries whose record is in the runtime folder now. */
uint64_t outbox_syncs(const Outbox *o);
uint64_t outbox_spilled(const Outbox *o);
uint64_t outbox_runtime_count(const Outbox *o);
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
/* With the runtime folder (its entries merged in) when there is one. */
int outbox_open_read_only_full(const char *dir, const char *runtime_dir, Outbox **ret);

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
