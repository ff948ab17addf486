/*
 * Chunk file pool ("cfp"): pre-written chunk files, one pool per chunkserver disk.
 *
 * Every chunk file is CURVE_CHUNK_HEADER_SIZE (4 KiB) of header page followed by chunk_size
 * bytes of data. Files are written in full (zeros) ahead of time so that chunk writes never
 * allocate blocks or change file-system metadata, and so that creating a chunk is an atomic
 * rename(2) out of the pool instead of a slow allocation on the write path (DESIGN §5).
 *
 * Directory `dir` (e.g. <data>/chunkfilepool) holds:
 *     <n>          ready files: zeroed data, a valid FREE header, fdatasync'ed
 *     <n>.tmp      a file being formatted (a crash leaves it half-written: removed and redone)
 *     <n>.dirty    a file given back by a deleted chunk, waiting to be zeroed
 * where <n> is a decimal index. The pool and every copyset data dir must be on the same file
 * system (rename); -EXDEV otherwise. Each rename is followed by an fsync of both directories.
 *
 * One background thread (curve_cfp_start) formats the missing files and zeroes returned ones
 * (zeroing first, so returned space becomes usable quickly). The pool also carries the disk's
 * health: a failed write/fsync anywhere on the disk (here or in a chunk store using the pool)
 * marks it failed with curve_cfp_mark_failed(); from then on gets fail with
 * CURVE_ERR_DISK_FAIL and the formatter stops.
 *
 * Thread-safety: all functions are thread-safe (one mutex protects the pool's lists and
 * counters; no file IO happens under it except in curve_cfp_open). get/put/replace do blocking
 * file IO (a 4 KiB pwrite, fdatasync, rename, two directory fsyncs): call them from a worker
 * thread, not from an event loop.
 */
#ifndef CURVE_CHUNKSERVER_CHUNKFILEPOOL_H
#define CURVE_CHUNKSERVER_CHUNKFILEPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/metrics.h"

/* ---- chunk file header page ---------------------------------------------------------------- */

#define CURVE_CHUNK_HEADER_SIZE 4096u      /* header page in front of the data */
#define CURVE_CHUNK_HEADER_LEN 64u         /* encoded header bytes; the rest of the page is 0 */
#define CURVE_CHUNK_MAGIC 0x4b48434556525543ull /* bytes "CURVECHK" */
#define CURVE_CHUNK_VERSION 1u
#define CURVE_CHUNK_FLAG_FREE 0x1u         /* file belongs to the pool, holds no chunk */
#define CURVE_CHUNK_FLAGS_KNOWN CURVE_CHUNK_FLAG_FREE
#define CURVE_CHUNK_SIZE_MIN 4096u
#define CURVE_CHUNK_SIZE_MAX (1u << 30)    /* 1 GiB */

/* Decoded header. On disk (little-endian, offsets in bytes):
 *    0  u64 magic           CURVE_CHUNK_MAGIC
 *    8  u32 version         CURVE_CHUNK_VERSION
 *   12  u32 flags           CURVE_CHUNK_FLAG_*
 *   16  u64 chunk_id        0 for FREE files
 *   24  u64 sn              sequence number of the last write (snapshot epoch of the chunk)
 *   32  u64 corrected_sn    reserved for clone/snapshot correction (0)
 *   40  u32 chunk_size      data bytes following the header page
 *   44  u32 header_size     CURVE_CHUNK_HEADER_SIZE
 *   48  u8[12] reserved     0
 *   60  u32 crc             crc32c of bytes [0, 60)
 * and bytes [64, 4096) of the page are zero. */
typedef struct curve_chunk_header {
    uint32_t version;
    uint32_t flags;
    uint64_t chunk_id;
    uint64_t sn;
    uint64_t corrected_sn;
    uint32_t chunk_size;
} curve_chunk_header;

/* Encodes `h` into `page` (CURVE_CHUNK_HEADER_SIZE bytes, fully written, crc computed). */
void curve_chunk_header_encode(const curve_chunk_header *h, uint8_t *page);

/* Decodes and validates a header from `buf` (`len` bytes, at least CURVE_CHUNK_HEADER_LEN;
 * when len >= CURVE_CHUNK_HEADER_SIZE the padding must be zero too). Checks magic, version, crc,
 * reserved bytes, known flags, header_size and chunk_size range/alignment.
 * Returns 0 or CURVE_ERR_CORRUPT (h untouched). Never reads beyond len. */
int curve_chunk_header_decode(const uint8_t *buf, size_t len, curve_chunk_header *h);

/* ---- pool ---------------------------------------------------------------------------------- */

typedef struct curve_cfp curve_cfp;

typedef struct curve_cfp_opts {
    const char *dir;         /* pool directory, created (0755) if missing; copied */
    uint32_t chunk_size;     /* data bytes per chunk: multiple of 4096 in [4 KiB, 1 GiB] */
    /* How many files the pool should hold once formatted. If 0, computed from target_pct. */
    uint64_t target_files;
    /* Share of the file system's total size to fill with chunk files (1..100), used when
     * target_files == 0. Files already found in the pool and in_use_files count towards it. */
    uint32_t target_pct;
    uint64_t in_use_files;   /* chunk files already taken by copysets (counted in the target) */
    /* Formatting stops (without error) when the file system's free space would drop below
     * this many bytes; creating a chunk file on demand (empty pool) needs as much. */
    uint64_t reserve_bytes;
    /* Optional registry (borrowed; must outlive the pool) receiving callback gauges labelled
     * disk="<dir>": curve_chunkfilepool_{ready,dirty,format_target,formatted}_files,
     * curve_chunkfilepool_written_bytes, curve_chunkfilepool_disk_failed (0/1) and the counter
     * curve_chunkfilepool_empty_creates_total. They are
     * unregistered by curve_cfp_close. NULL: no metrics. */
    curve_metrics *metrics;
} curve_cfp_opts;

typedef enum {
    CURVE_CFP_IDLE = 0,     /* opened, background thread not started */
    CURVE_CFP_FORMATTING,   /* creating files */
    CURVE_CFP_DONE,         /* all target files exist (or the disk is full: see stats) */
    CURVE_CFP_FAILED,       /* the disk failed: see failed_err */
} curve_cfp_state;

typedef struct curve_cfp_stats {
    curve_cfp_state state;
    uint64_t ready;          /* files that can be taken now */
    uint64_t dirty;          /* files waiting to be zeroed (incl. the one being zeroed) */
    uint64_t format_target;  /* files the formatter creates in this run */
    uint64_t formatted;      /* files created so far in this run */
    uint64_t bytes_written;  /* bytes written by format + zeroing in this run */
    uint64_t zeroed;         /* returned files zeroed in this run */
    uint64_t gets, puts;     /* successful get / put+replace calls */
    uint64_t empty_creates;  /* gets served by creating the file on demand (pool was empty) */
    bool disk_full;          /* formatting stopped early at reserve_bytes */
    int failed_err;          /* 0, or the negative errno that marked the disk failed */
} curve_cfp_stats;

/* Opens (creating if needed) the pool in opts->dir and recovers it: removes half-written
 * "*.tmp" files, queues "*.dirty" files and "<n>" files with a wrong size or header for
 * zeroing, and drops pool names that are still hard-linked elsewhere (an interrupted
 * curve_cfp_replace). Computes the format target. Does not start the background thread.
 * Returns 0, -EINVAL (bad opts), CURVE_ERR_CONFIG (target_pct/target_files both 0), -ENOMEM,
 * or a negative errno from the file system (message logged with the path). */
int curve_cfp_open(const curve_cfp_opts *opts, curve_cfp **out);

/* Starts the background format/zero thread. Returns 0, -EALREADY, or -errno. */
int curve_cfp_start(curve_cfp *pool);

/* Stops the background thread (it finishes at most one CURVE_CFP_IO_BLOCK write; a file being
 * formatted is left as "<n>.tmp" and redone next time) and frees the pool. NULL is ignored. */
void curve_cfp_close(curve_cfp *pool);

/* Blocks until at least `min_ready` files are ready, or formatting has finished and no dirty
 * files remain, or `timeout_ms` passes. Returns 0 (condition met), CURVE_ERR_TIMEOUT, or
 * CURVE_ERR_DISK_FAIL. Used by the daemon ("serve once enough files exist") and by tests. */
int curve_cfp_wait(curve_cfp *pool, uint64_t min_ready, uint64_t timeout_ms);

/* Takes a ready file: writes `header_page` (CURVE_CHUNK_HEADER_SIZE bytes, borrowed) at offset
 * 0, fdatasyncs, renames it to `dst_path` (which must not exist) and fsyncs the pool dir and
 * dst's directory. When no file is ready the file is created on demand instead (same layout,
 * blocks allocated with posix_fallocate, header written, fdatasync, rename, both directories
 * fsync'ed), counted in stats.empty_creates / curve_chunkfilepool_empty_creates_total, with a
 * rate-limited warning. Returns 0, CURVE_ERR_NOSPACE (no ready file and the file system has less
 * than one chunk file + reserve_bytes free, or ENOSPC while allocating; failpoint
 * "chunkfilepool.create" injects before the allocation), CURVE_ERR_DISK_FAIL (the disk failed
 * now or before; failpoint "chunkfilepool.get" injects here), -EEXIST, -EXDEV or another -errno
 * (the file stays in the pool). */
int curve_cfp_get(curve_cfp *pool, const char *dst_path, const uint8_t *header_page);

/* Gives the chunk file at `src_path` back: renames it into the pool as "<n>.dirty", fsyncs
 * both directories and queues it for zeroing. Returns 0, CURVE_ERR_DISK_FAIL, or -errno. */
int curve_cfp_put(curve_cfp *pool, const char *src_path);

/* Atomically replaces `live_path` by `new_path` (used by snapshot install) and recycles the old
 * file: link(live -> pool "<n>.dirty"), rename(new -> live), fsync dirs, queue for zeroing.
 * If live_path does not exist this is a plain rename. A crash in between leaves live_path
 * intact; the pool drops the extra link when it reopens. Returns 0 or -errno /
 * CURVE_ERR_DISK_FAIL. */
int curve_cfp_replace(curve_cfp *pool, const char *new_path, const char *live_path);

/* Marks the disk failed with `err` (negative errno; the first error is kept). Idempotent. */
void curve_cfp_mark_failed(curve_cfp *pool, int err);

/* Optional hook, called once with the error when the disk is first marked failed, by the thread
 * that marks it (the formatter thread, or a get/put/chunk store caller: possibly an event
 * loop), under the pool's lock: it must not block nor call the pool (e.g. wake a thread).
 * cb NULL removes it; when this returns no call of the previous hook is in flight. If the disk
 * has already failed, cb runs now. */
void curve_cfp_set_fail_cb(curve_cfp *pool, void (*cb)(void *ctx, int err), void *ctx);

/* 0 while healthy, else the negative errno that failed the disk. One atomic load. */
int curve_cfp_failed(const curve_cfp *pool);

/* Capacity of the pool's file system for the heartbeat (statvfs): total and available bytes.
 * Returns 0 or -errno. */
int curve_cfp_disk_usage(const curve_cfp *pool, uint64_t *total_bytes, uint64_t *avail_bytes);

uint32_t curve_cfp_chunk_size(const curve_cfp *pool);
const char *curve_cfp_dir(const curve_cfp *pool);
void curve_cfp_get_stats(curve_cfp *pool, curve_cfp_stats *out);
const char *curve_cfp_state_name(curve_cfp_state s);

/* Size of each write the formatter/zeroer issues (bounds the stop latency). */
#define CURVE_CFP_IO_BLOCK (1u << 20)

#endif
