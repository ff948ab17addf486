/*
 * Chunk store: the chunk files of one copyset, in copysets/<groupid>/data/chunk_<id>.
 *
 * Each chunk file is a 4 KiB header page (see chunkfilepool.h) followed by chunk_size data
 * bytes; chunk data offset `off` lives at file offset 4096 + off. Chunks are created by taking
 * a pre-written file from the disk's chunk file pool and deleted by giving it back.
 *
 * Durability (DESIGN §5): writes are plain pwrite(2) into the page cache, because the Raft log
 * entry behind them is already durable. Every written chunk joins the "dirty set";
 * curve_chunkstore_sync_dirty() fdatasyncs all of them and must be called before the Raft log
 * is truncated behind a snapshot.
 *
 * Disk errors: any failed pwrite/pread/fdatasync (or an error injected by the failpoints
 * "chunkstore.write", "chunkstore.read", "chunkstore.sync") marks the disk failed through the
 * pool (curve_cfp_mark_failed), so every store on the disk then answers CURVE_ERR_DISK_FAIL.
 * A failed operation is never reported as a success. A chunk whose header does not validate
 * is reported (log + status counter) and answers CURVE_ERR_CORRUPT; it is never served.
 *
 * Thread-safety: every function may be called concurrently from worker threads (the calls
 * block on file IO). Locks: a store mutex protects the chunk table, the fd LRU, the dirty list
 * and the counters; each chunk has a rwlock: reads and writes of data take it shared, while
 * create, delete, install-finish, header (sn) updates and fd (re)opening take it exclusive.
 * Lock order: chunk rwlock before store mutex. Writes to overlapping ranges of one chunk from
 * different threads are not ordered by the store (Raft applies them in order), and a write
 * racing with a delete of the same chunk may answer CURVE_ERR_CHUNK_NOTEXIST.
 */
#ifndef CURVE_CHUNKSERVER_CHUNKSTORE_H
#define CURVE_CHUNKSERVER_CHUNKSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "chunkserver/chunkfilepool.h"

typedef struct curve_chunkstore curve_chunkstore;

/* Default bound on open chunk file descriptors per store. */
#define CURVE_CHUNKSTORE_FD_CACHE_DEFAULT 64u
/* Longest iovec array accepted by curve_chunkstore_writev. */
#define CURVE_CHUNKSTORE_IOV_MAX 64

typedef struct curve_chunkstore_opts {
    const char *data_dir;      /* copysets/<groupid>/data; created if missing; copied */
    curve_cfp *pool;           /* the disk's pool (borrowed; must outlive the store) */
    uint32_t io_align;         /* 4096 (default when 0) or 512 */
    /* Open fds kept in the LRU cache (default CURVE_CHUNKSTORE_FD_CACHE_DEFAULT when 0). The
     * bound may be exceeded by chunks pinned by in-flight calls, at most by their number. */
    unsigned fd_cache_max;
    /* Optional: called after every chunk write of the apply path (data and header; not the
     * snapshot-install writes) with its duration — failpoint delays included — and whether it
     * succeeded, on the writing thread. Must be cheap and must not block or call into the
     * store. */
    void (*on_write)(void *arg, uint64_t dur_us, bool ok);
    void *on_write_arg;
} curve_chunkstore_opts;

typedef struct curve_chunk_info {
    uint64_t chunk_id;
    uint64_t sn;           /* sequence number stored in the header */
    uint64_t size;         /* chunk data size (chunk_size) */
    uint64_t file_size;    /* size of the chunk file on disk (header page + data) */
} curve_chunk_info;

typedef struct curve_chunkstore_status {
    int disk_err;          /* 0, or the negative errno that failed the disk */
    uint64_t chunks;       /* chunks present */
    uint64_t dirty;        /* chunks written since the last sync */
    uint64_t open_fds;     /* fds in the LRU cache */
    uint64_t corrupt;      /* chunks found with a bad header */
    uint64_t reads, writes, read_bytes, write_bytes, syncs;
} curve_chunkstore_status;

/* Opens the store over opts->data_dir: lists chunk_<id> files (headers are validated lazily,
 * when a chunk is first used) and gives leftover install files back to the pool.
 * Returns 0, -EINVAL (bad opts), -ENOMEM or -errno (message logged with the path). */
int curve_chunkstore_open(const curve_chunkstore_opts *opts, curve_chunkstore **out);

/* Closes every fd and frees the store. Dirty chunks are NOT synced (call sync_dirty first if
 * needed). No call may be in flight. NULL is ignored. */
void curve_chunkstore_close(curve_chunkstore *cs);

/* Writes `len` bytes at chunk offset `off`, creating the chunk from the pool (with sequence
 * number `sn`) if it does not exist. off and len must be multiples of io_align, len > 0 and
 * off + len <= chunk_size. If sn is larger than the chunk's, the header is updated first.
 * Returns 0, CURVE_ERR_INVALID_REQUEST (alignment/bounds/NULL buffer), CURVE_ERR_BACKWARD
 * (sn older than the chunk's), CURVE_ERR_NOSPACE (pool empty), CURVE_ERR_CORRUPT,
 * CURVE_ERR_DISK_FAIL, or -errno. */
int curve_chunkstore_write(curve_chunkstore *cs, uint64_t chunk_id, uint64_t sn, uint64_t off,
                           const void *buf, size_t len);

/* Same as curve_chunkstore_write with the data in `iov[0..iovcnt)` (borrowed), iovcnt in
 * [1, CURVE_CHUNKSTORE_IOV_MAX]; len is the sum of the iov lengths. */
int curve_chunkstore_writev(curve_chunkstore *cs, uint64_t chunk_id, uint64_t sn, uint64_t off,
                            const struct iovec *iov, int iovcnt);

/* Reads `len` bytes at chunk offset `off` into buf (same alignment rules as write).
 * Returns 0, CURVE_ERR_CHUNK_NOTEXIST (never written: the caller answers zeros),
 * CURVE_ERR_INVALID_REQUEST, CURVE_ERR_CORRUPT, CURVE_ERR_DISK_FAIL. */
int curve_chunkstore_read(curve_chunkstore *cs, uint64_t chunk_id, uint64_t off, void *buf,
                          size_t len);

/* Creates chunk `chunk_id` (zeros) with sequence number `sn`. Returns 0, CURVE_ERR_CHUNK_EXIST,
 * CURVE_ERR_NOSPACE, CURVE_ERR_DISK_FAIL or -errno. */
int curve_chunkstore_create(curve_chunkstore *cs, uint64_t chunk_id, uint64_t sn);

/* Deletes a chunk: its file goes back to the pool (zeroed there in the background).
 * Returns 0, CURVE_ERR_CHUNK_NOTEXIST (Raft apply may treat this as success: idempotent),
 * CURVE_ERR_DISK_FAIL or -errno. Corrupt chunks may be deleted. */
int curve_chunkstore_delete(curve_chunkstore *cs, uint64_t chunk_id);

/* Fills *info. Returns 0, CURVE_ERR_CHUNK_NOTEXIST, CURVE_ERR_CORRUPT, CURVE_ERR_DISK_FAIL. */
int curve_chunkstore_get_info(curve_chunkstore *cs, uint64_t chunk_id, curve_chunk_info *info);

/* Lists the ids of all chunks, sorted ascending, in a malloc'ed array the caller frees
 * (*ids is NULL when *n is 0). Returns 0 or -ENOMEM. */
int curve_chunkstore_list(curve_chunkstore *cs, uint64_t **ids, size_t *n);

/* fdatasyncs every chunk written since its last sync (failpoint "chunkstore.sync").
 * Returns 0 or CURVE_ERR_DISK_FAIL (the disk is then marked failed). */
int curve_chunkstore_sync_dirty(curve_chunkstore *cs);

/* ---- Raft snapshot support ---------------------------------------------------------------- */

typedef struct curve_chunk_manifest_entry {
    uint64_t chunk_id;
    char name[32];         /* file name relative to data_dir, e.g. "chunk_42" */
    uint64_t file_size;    /* bytes to transfer (header page + data) */
} curve_chunk_manifest_entry;

/* The snapshot manifest: every chunk file with its size, sorted by id, in a malloc'ed array
 * the caller frees. Returns 0 or -ENOMEM. */
int curve_chunkstore_manifest(curve_chunkstore *cs, curve_chunk_manifest_entry **entries,
                              size_t *n);

/* Reads raw bytes of a chunk file (header page included) for a snapshot transfer: `off` and
 * `len` are file offsets, any alignment, off + len <= file size. The header is validated
 * first. Returns bytes read (>= 0, short only at end of file) or CURVE_ERR_CHUNK_NOTEXIST,
 * CURVE_ERR_INVALID_REQUEST, CURVE_ERR_CORRUPT, CURVE_ERR_DISK_FAIL. */
int64_t curve_chunkstore_read_raw(curve_chunkstore *cs, uint64_t chunk_id, uint64_t off,
                                  void *buf, size_t len);

typedef struct curve_chunk_install curve_chunk_install;

/* Starts installing chunk `chunk_id` received from a leader: takes a file from the pool as
 * "data/chunk_<id>.install". Only one install per chunk at a time (-EBUSY otherwise).
 * Returns 0 and *out, CURVE_ERR_NOSPACE, CURVE_ERR_DISK_FAIL, -EBUSY or -errno. */
int curve_chunkstore_install_begin(curve_chunkstore *cs, uint64_t chunk_id,
                                   curve_chunk_install **out);

/* Writes one received piece at raw file offset `off` (header page included). Pieces may come
 * in any order and size; off + len <= 4096 + chunk_size. Returns 0,
 * CURVE_ERR_INVALID_REQUEST or CURVE_ERR_DISK_FAIL. */
int curve_chunkstore_install_write(curve_chunk_install *inst, uint64_t off, const void *buf,
                                   size_t len);

/* Validates the received header (chunk id and chunk size must match), fdatasyncs the file and
 * atomically replaces data/chunk_<id> with it (the old file goes back to the pool). Frees
 * `inst` in every case (on failure the partial file goes back to the pool). Returns 0,
 * CURVE_ERR_CORRUPT (bad header), CURVE_ERR_DISK_FAIL or -errno. */
int curve_chunkstore_install_finish(curve_chunk_install *inst);

/* Abandons an install: the partial file goes back to the pool; frees `inst`. */
void curve_chunkstore_install_abort(curve_chunk_install *inst);

/* ---- status ------------------------------------------------------------------------------- */

/* 0 while the disk is healthy, else the negative errno that failed it. */
int curve_chunkstore_disk_failed(const curve_chunkstore *cs);
void curve_chunkstore_get_status(curve_chunkstore *cs, curve_chunkstore_status *out);
uint32_t curve_chunkstore_chunk_size(const curve_chunkstore *cs);

#endif
