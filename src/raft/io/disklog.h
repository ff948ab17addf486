/*
 * Raft disk log: segmented, preallocated, crc32c-checked, with group commit.
 *
 * A standalone storage module (no dependency on the Raft core's types). An adapter connects it
 * to src/raft. Format, recovery rules and the group-commit design: docs/raft-log.md.
 *
 * Model
 *   The log holds entries [first_index, last_index] (empty when last_index == first_index - 1).
 *   Each entry has an index, a term, a one-byte type (opaque to this module) and a data blob.
 *   Entries live in segment files "log_<first index, 20 digits>" inside one directory. The
 *   newest segment is the open one; older ones are closed and immutable.
 *
 *   rlog_append() is asynchronous: the entries are queued and become visible to rlog_read(),
 *   rlog_term_at() and rlog_last_index() at once; a dedicated IO thread writes everything queued
 *   with one write per segment and one fdatasync for the whole batch (group commit), then runs
 *   the callbacks of every request in that batch, in submission order.
 *   rlog_truncate_suffix(), rlog_compact_prefix() and rlog_reset() go through the same queue, so
 *   they are ordered with appends. With rlog_opts.disk set, the IO thread is the one shared
 *   by every log of that disk (see "Shared disk writer" below); the contract is the same.
 *
 * Threads
 *   Every function may be called from any thread (an internal mutex serialises them), except
 *   rlog_close(), which must not race with other calls on the same log and must not be called
 *   from a callback. Callbacks run on the log's IO thread ("rlog-io", or one of the threads of
 *   its shared disk writer, "rlog-disk" / "rlog-sync"), never inside the caller's
 *   call; they must not block for long (an adapter posts a message to its loop) and may call
 *   rlog_append()/rlog_read() etc. but not rlog_close().
 *
 * Async contract (CONVENTIONS §5): when a function taking a callback returns 0, the callback
 *   runs exactly once, later; when it returns an error, the callback never runs.
 *
 * Errors
 *   0 or a negative errno / CURVE_ERR_* code. After a write or sync failure the log is failed:
 *   pending requests complete with that error and later calls return it at once. Close the log
 *   and reopen it (recovery truncates whatever was not made durable).
 */
#ifndef CURVE_RAFT_IO_DISKLOG_H
#define CURVE_RAFT_IO_DISKLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- bounds (TigerBeetle style: every queue, cache and batch has a named limit) ---------- */

#define RLOG_PAGE_SIZE 4096u                      /* alignment of every write */
#define RLOG_DEFAULT_SEGMENT_BYTES (8u << 20)     /* preallocated size of a segment */
#define RLOG_MIN_SEGMENT_BYTES (64u << 10)
#define RLOG_MAX_SEGMENT_BYTES (1u << 30)         /* also the largest file accepted on open */
#define RLOG_DEFAULT_MAX_ENTRY_BYTES (4u << 20)   /* largest data blob of one entry */
#define RLOG_DEFAULT_MAX_BATCH_BYTES (1u << 20)   /* bytes the IO thread gathers per write */
#define RLOG_DEFAULT_MAX_BATCH_ENTRIES 4096u      /* entries the IO thread gathers per batch */
#define RLOG_DEFAULT_MAX_PENDING_ENTRIES 65536u   /* queued, not yet durable; then CURVE_ERR_BUSY */
#define RLOG_DEFAULT_CACHE_BYTES (16u << 20)      /* durable tail entries kept in memory */
#define RLOG_MAX_APPEND_ENTRIES 65536u            /* entries in one rlog_append() call */
#define RLOG_DISK_DEFAULT_MAX_PENDING_ENTRIES (1u << 20) /* queued on all logs of one disk */
#define RLOG_DISK_DEFAULT_MAX_ROUND_BYTES (16u << 20)    /* gathered per disk round (one sync pass) */
#define RLOG_DISK_DEFAULT_SYNC_THREADS 7u  /* helpers running a round's fdatasyncs in parallel */
#define RLOG_DISK_MAX_SYNC_THREADS 64u

/* A shared disk writer (see "Shared disk writer" below). */
typedef struct rlog_disk rlog_disk;

typedef struct rlog_opts {
    uint32_t segment_bytes;       /* multiple of RLOG_PAGE_SIZE, in [MIN, MAX]_SEGMENT_BYTES */
    uint32_t max_entry_bytes;     /* must leave room for one record + a page in a segment */
    uint32_t max_batch_bytes;     /* > 0 */
    uint32_t max_batch_entries;   /* > 0 */
    uint32_t max_pending_entries; /* > 0 */
    uint64_t cache_bytes;         /* 0 = cache only entries that are not yet durable */
    rlog_disk *disk;              /* NULL (default): the log has its own IO thread; else the
                                   * shared writer of its disk (borrowed; must outlive the log) */
} rlog_opts;

/* Fills `o` with the RLOG_DEFAULT_* values (disk = NULL). */
void rlog_opts_default(rlog_opts *o);

/* One log entry.
 * As input of rlog_append(): index, term, type, data/len are read. If `buf` is NULL the data is
 *   copied; otherwise `data` must point inside `buf` and the log takes its own reference (the
 *   contents must not change afterwards). The caller keeps its own reference either way.
 * As output of rlog_read*(): `buf` holds a new reference owned by the caller (NULL when len is
 *   0) and `data` points into it; release it with rlog_entry_release(). */
typedef struct rlog_entry {
    uint64_t index;
    uint64_t term;
    uint8_t type;
    const void *data;
    uint32_t len;
    curve_buf *buf;
} rlog_entry;

/* Drops the buffer reference of an entry returned by rlog_read*(); NULL-safe, idempotent. */
void rlog_entry_release(rlog_entry *e);

/* What rlog_open() found. */
typedef struct rlog_info {
    uint64_t first_index;     /* first entry kept (== last_index + 1 when empty) */
    uint64_t last_index;      /* 0 for a brand-new log */
    uint64_t last_term;       /* term of last_index, 0 when empty */
    uint32_t segments;        /* segment files in use */
    bool tail_truncated;      /* a torn/corrupt tail (or garbage after it) was removed */
    uint64_t truncated_bytes; /* non-zero bytes found after the last valid record */
} rlog_info;

/* Counters since rlog_open(); read with rlog_get_stats(). */
typedef struct rlog_stats {
    uint64_t append_calls;   /* successful rlog_append() calls */
    uint64_t entries;        /* entries made durable */
    uint64_t bytes;          /* bytes written (records + padding) */
    uint64_t writes;         /* pwrite calls */
    uint64_t syncs;          /* fdatasync calls after appends; entries / syncs is the group
                              * commit factor (truncation/creation fsyncs not counted) */
    uint64_t batches;        /* IO-thread batches that wrote at least one entry */
    uint64_t max_batch;      /* most entries in one batch (one fdatasync unless it rolled) */
    uint64_t segments_created;
    uint64_t segments_removed;
    uint64_t segments_from_spare; /* created by renaming the pre-written spare into place */
    uint64_t spares_prepared;     /* spare segments fully zero-filled and fsynced */
    uint64_t spare_failures;      /* spare preparations abandoned (the roll preallocates) */
} rlog_stats;

typedef struct rlog rlog;

/* Completion callback: `status` is 0 (done and durable) or a negative error. */
typedef void (*rlog_cb)(void *arg, int status);

/* Opens (creating `dir` if needed) the log in `dir`, recovers it and starts its IO thread.
 * `opts` may be NULL for defaults (copied). `info` may be NULL.
 * Recovery reads every segment and checks every record (magic, version, header crc, data crc,
 * contiguous indexes, non-decreasing terms). A torn or corrupt tail of the newest segment with
 * no durable write after it is logged (path, offset, reason) and truncated. Damage followed by
 * a later durable write, or any damage in a closed segment, is corruption: the open fails with
 * CURVE_ERR_CORRUPT and the files are left untouched.
 * Returns 0, -EINVAL (bad options), CURVE_ERR_CORRUPT, CURVE_ERR_CONFIG (unexpected file such
 * as an oversized segment), -ENOMEM or another negative errno (path in the log line). */
int rlog_open(const char *dir, const rlog_opts *opts, rlog **out, rlog_info *info);

/* Stops the IO thread after it has completed every queued request (their callbacks run), closes
 * the files and frees the log. NULL is ignored. */
void rlog_close(rlog *log);

/* Queues `n` (1..RLOG_MAX_APPEND_ENTRIES) entries. entries[0].index must be last_index + 1,
 * indexes consecutive, terms non-decreasing and >= the last term, len <= max_entry_bytes.
 * The entries array is borrowed for the call only. `cb(arg, status)` runs on the IO thread once
 * all n entries are durable (status 0) or have failed.
 * Returns 0, -EINVAL (bad arguments, nothing queued), CURVE_ERR_BUSY (max_pending_entries
 * reached; retry after some callbacks), -ENOMEM, or the error that failed the log. */
int rlog_append(rlog *log, const rlog_entry *entries, size_t n, rlog_cb cb, void *arg);

/* Removes entries [from_index, last_index] (Raft §5.3, a conflicting suffix). The in-memory view
 * changes at once (next append must use from_index); on disk the removal is ordered after every
 * earlier request and is durable before later ones are written. `cb` may be NULL.
 * from_index == last_index + 1 is a no-op (cb still runs).
 * Returns 0, -EINVAL (from_index < first_index or > last_index + 1) or the failure error. */
int rlog_truncate_suffix(rlog *log, uint64_t from_index, rlog_cb cb, void *arg);

/* Deletes whole closed segments whose entries are all <= upto_index (behind a snapshot). The
 * open segment is never deleted, so first_index advances by whole segments only, and only when
 * the request is processed (before `cb` runs). `cb` may be NULL.
 * Returns 0 or the failure error. */
int rlog_compact_prefix(rlog *log, uint64_t upto_index, rlog_cb cb, void *arg);

/* Discards every entry and makes the log empty with next index `next_index` (>= 1), e.g. after
 * installing a snapshot beyond the log's end. Durable when `cb` runs (NULL allowed).
 * Returns 0, -EINVAL or the failure error. */
int rlog_reset(rlog *log, uint64_t next_index, rlog_cb cb, void *arg);

/* Reads entry `index` into `out` (see rlog_entry for ownership). Entries not yet durable are
 * served from memory. Returns 0, -ENOENT (outside [first, last]), CURVE_ERR_CORRUPT (the
 * on-disk record failed its checks; logged), -ENOMEM or -EIO. */
int rlog_read(rlog *log, uint64_t index, rlog_entry *out);

/* Reads up to `max_n` consecutive entries starting at `index`, stopping early once `max_bytes`
 * of data are gathered (at least one entry is always returned when index is in range).
 * `*n_out` receives the count. On error nothing is returned (no references leak).
 * Errors as rlog_read(). */
int rlog_read_range(rlog *log, uint64_t index, size_t max_n, size_t max_bytes, rlog_entry *out,
                    size_t *n_out);

/* Term of entry `index`: 0 with *term set, or -ENOENT outside [first, last]. */
int rlog_term_at(rlog *log, uint64_t index, uint64_t *term);
uint64_t rlog_first_index(rlog *log);
uint64_t rlog_last_index(rlog *log);   /* includes queued, not yet durable entries */
uint64_t rlog_durable_index(rlog *log); /* last index known durable in the current log */

void rlog_get_stats(rlog *log, rlog_stats *out);

/* ---- Shared disk writer --------------------------------------------------------------------
 * One rlog_disk per data disk serves every log opened with rlog_opts.disk pointing to it, with
 * a fixed set of threads whatever the number of logs: one writer thread ("rlog-disk") and
 * `sync_threads` sync helpers ("rlog-sync"), instead of one IO thread per log. The writer takes
 * the queued batch of every log with work (each bounded by that log's max_batch_*; one pass by
 * max_round_bytes) and writes each log's batch to that log's open segment; the log then goes to
 * the helpers, which fdatasync its segment (one per log: different files; concurrent
 * fdatasyncs share journal commits and cache flushes in the kernel) and run its callbacks,
 * while the writer goes on with the next logs. A log is taken by one thread at a time, from its
 * batch's write until its callbacks have run, so per log, ordering and durability are exactly
 * those of a log with its own thread (truncate / compact / reset stay ordered with appends; a
 * failure fails only that log). With sync_threads = 0 the writer itself syncs the logs of a
 * pass, one after the other, after writing all of them, and runs their callbacks.
 * Callbacks run on one of the disk's threads, never on two at once for one log: they must not
 * block (they hold a thread the other logs share) and must not call rlog_close().
 * Bounds: each log keeps its max_pending_entries; in addition rlog_append() returns
 * CURVE_ERR_BUSY when the disk already has max_pending_entries entries queued (unless it has
 * none: one request of any size up to RLOG_MAX_APPEND_ENTRIES is always accepted). */

typedef struct rlog_disk_opts {
    uint32_t max_pending_entries; /* > 0: entries queued, not yet durable, on all its logs */
    uint32_t max_round_bytes;     /* > 0: batches taken per round until this many bytes */
    uint32_t sync_threads;        /* <= RLOG_DISK_MAX_SYNC_THREADS helper threads that run the
                                   * fdatasyncs of a round in parallel with the disk thread
                                   * (0: the disk thread syncs the logs one after the other) */
    bool sync_lone_inline;        /* when a round has a single log and nothing else waits, the
                                   * disk thread syncs it and runs its callbacks itself instead
                                   * of waking a helper (one thread hand-off less per lone
                                   * append). Only for callbacks that never block: one that
                                   * blocks then stalls every log of the disk. Default false */
} rlog_disk_opts;

/* Counters since rlog_disk_create(); read with rlog_disk_get_stats(). */
typedef struct rlog_disk_stats {
    uint64_t rounds;         /* writer passes that took at least one batch */
    uint64_t syncs;          /* fdatasyncs after a log's batch (one per log and batch; the
                              * syncs before a segment roll are only in rlog_stats) */
    uint64_t entries;        /* entries made durable */
    uint64_t max_round_logs; /* most logs with a batch in one writer pass */
    uint64_t inline_syncs;   /* batches synced by the writer thread itself (a round's only
                              * log, nothing else waiting) instead of by a sync helper */
    uint64_t logs;           /* logs open on the disk now */
    uint64_t pending;        /* entries queued now */
} rlog_disk_stats;

/* Fills `o` with the RLOG_DISK_DEFAULT_* values. */
void rlog_disk_opts_default(rlog_disk_opts *o);

/* Creates a shared writer and starts its thread. `name` (may be NULL; copied, e.g. the data
 * directory) only appears in log lines. `opts` may be NULL for defaults (copied).
 * Returns 0, -EINVAL (bad options), -ENOMEM or a negative errno (thread creation). */
int rlog_disk_create(const char *name, const rlog_disk_opts *opts, rlog_disk **out);

/* Stops the thread and frees the writer. Every log opened on it must be closed first (asserted).
 * NULL is ignored. Not from a callback. */
void rlog_disk_destroy(rlog_disk *disk);

/* Any thread. */
void rlog_disk_get_stats(rlog_disk *disk, rlog_disk_stats *out);

/* ---- internal, exposed for tests and the fuzz target ---------------------------------------
 * On-disk record header, little-endian (docs/raft-log.md):
 *   0 u32 magic   4 u8 version   5 u8 type   6 u16 flags   8 u64 term   16 u64 index
 *   24 u32 data_len   28 u32 data_crc (crc32c of data)   32 u32 reserved (0)
 *   36 u32 header_crc (crc32c of bytes 0..35)             then data_len bytes of data.
 */
#define RLOG__MAGIC 0x474f4c52u /* "RLOG" */
#define RLOG__VERSION 1u
#define RLOG__HDR_SIZE 40u
#define RLOG__FLAG_WRITE_START 0x1u /* first record of one write; sits on a page boundary */

typedef struct rlog__hdr {
    uint8_t version;
    uint8_t type;
    uint16_t flags;
    uint64_t term;
    uint64_t index;
    uint32_t data_len;
    uint32_t data_crc;
} rlog__hdr;

/* Encodes a header (computes the header crc; data_crc must be set) into 40 bytes. */
void rlog__encode_hdr(const rlog__hdr *h, uint8_t out[RLOG__HDR_SIZE]);

/* Decodes and checks one header: magic, version, reserved == 0, header crc.
 * Returns 0 or CURVE_ERR_CORRUPT; `*why` (may be NULL) gets a static reason. */
int rlog__decode_hdr(const uint8_t in[RLOG__HDR_SIZE], rlog__hdr *h, const char **why);

/* Decodes a whole record at the start of `buf` (header + data, data crc checked).
 * Returns 0 or CURVE_ERR_CORRUPT. */
int rlog__decode_record(const uint8_t *buf, size_t len, rlog__hdr *h, const char **why);

typedef enum {
    RLOG__SCAN_CLEAN = 0, /* valid records, then only zeros */
    RLOG__SCAN_TORN = 1,  /* damage / garbage after the valid records, no later durable write */
    RLOG__SCAN_CORRUPT = 2 /* damage followed by a later durable write */
} rlog__scan_status;

typedef struct rlog__scan_result {
    rlog__scan_status status;
    uint64_t count;     /* valid records */
    uint64_t last_term; /* term of the last valid record (prev_term when none) */
    size_t end_off;     /* end of the last valid record (0 when none) */
    size_t bad_off;     /* where damage / garbage starts (TORN, CORRUPT) */
    size_t nonzero_bytes; /* non-zero bytes at or after end_off */
    const char *why;    /* static reason (TORN, CORRUPT) */
} rlog__scan_result;

/* Called for each valid record in order; a non-zero return stops the scan with that value. */
typedef int (*rlog__scan_cb)(void *arg, const rlog__hdr *h, size_t off);

/* Scans a segment image `img[0..len)` whose first record must have index `first_index` and a
 * term >= `prev_term`. Pure function (no IO). Returns 0 (result in `res`) or the value of a
 * failing callback. */
int rlog__scan_segment(const uint8_t *img, size_t len, uint64_t first_index, uint64_t prev_term,
                       rlog__scan_cb cb, void *arg, rlog__scan_result *res);

/* Write-path fault hook: returns 0 or a negative errno injected through the failpoint
 * `raftlog.<site>` (sites: "write", "sync", "create"). */
int rlog__inject_write_fault(const char *site);

#ifdef __cplusplus
}
#endif
#endif
