/*
 * libcurve — the Curve-C client library for block volumes (DESIGN §1–§4).
 *
 * This header is the contract that the nbdkit plugin, the `curve` CLI and applications code
 * against. docs/client.md has the overview, the IO path and the retry policy.
 *
 * Conventions for every function below
 * - Return values: 0 (or a byte count where stated) on success, otherwise a negative errno or a
 *   negative CURVE_ERR_* code from curve/errors.h; curve_strerror() describes either. Errors
 *   listed per call are the expected ones, not an exhaustive list (e.g. -ENOMEM is always
 *   possible). Failures are also logged with what failed and on what (path, id, address).
 * - Strings: every `const char *` argument is borrowed for the duration of the call only.
 *   Paths are absolute ("/dir/vol"), at most CURVE_PATH_MAX bytes; each component is 1 ..
 *   CURVE_NAME_MAX bytes, not "." or "..", without '/' or NUL.
 * - Threads: all functions are thread-safe unless stated otherwise. A curve_client and its
 *   volumes may be used from any number of application threads at once. Blocking calls
 *   (everything except the curve_aio_* submit functions) must not be called from an AIO
 *   callback: they return -EDEADLK there.
 * - Transient cluster failures (leader changes, overload, chunkserver restarts) are retried
 *   inside the library as DESIGN §4 describes; with the default configuration IO never fails
 *   for them (client.retry.total_deadline_ms = 0: unbounded), it just takes longer.
 */
#ifndef CURVE_CURVE_H
#define CURVE_CURVE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "curve/errors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CURVE_API_VERSION 1

#define CURVE_PATH_MAX  4096 /* bytes in a path, NUL excluded */
#define CURVE_NAME_MAX  255  /* bytes in one path component */
#define CURVE_OWNER_MAX 64   /* bytes in an owner name */

/* Returns the library version, e.g. "0.1.0". Static string. */
const char *curve_version(void);

/* ---- client ------------------------------------------------------------------------------ */

typedef struct curve_client curve_client;

/*
 * Creates a client: reads the configuration file `conf_path` (may be NULL: defaults only), then
 * applies `overrides`, a NULL-terminated array of "key=value" strings (may be NULL), e.g.
 *     const char *kv[] = {"mds.addrs=127.0.0.1:6700,127.0.0.1:6701", NULL};
 *     curve_client_init(NULL, kv, &c);
 * Keys (full list with defaults in docs/client.md):
 *   mds.addrs                       required; "host:port[,host:port...]" (up to 16)
 *   client.owner                    owner name used for create/open ("curve")
 *   client.mds.rpc_timeout_ms       timeout of one MDS RPC (500ms)
 *   client.session.expire_ms        opt-in: IO fails after this long without a successful
 *                                   session refresh (0: never, the default; the chunkservers'
 *                                   volume epoch fences a writer whose session was taken over)
 *   client.max_rpc_size             largest data RPC, 64k..1m (1m)
 *   client.max_inflight_rpcs        data RPCs in flight per volume (128)
 *   client.io_threads               IO event-loop threads (1)
 *   client.fast_path_inflight       a blocking one-piece read/write is sent from the caller's
 *                                   thread while fewer IOs are in flight on the volume (2;
 *                                   0: never)
 *   client.allow_512                accept 512-byte aligned IO (false: 4 KiB)
 *   client.metacache.max_segments   cached segments (4096)
 *   client.metacache.max_copysets   cached copysets (65536)
 *   client.retry.*                  the retry policy of DESIGN §4 (docs/client.md)
 *   client.log_path, client.log_level
 * Does not contact the MDS (the first open or management call does).
 * Ownership: *out belongs to the caller until curve_client_destroy().
 * Errors: CURVE_ERR_CONFIG (unknown key, bad value, mds.addrs missing; logged with the key and
 * "<path>:<line>"), -ENOENT / -EACCES (conf_path unreadable), -ENOMEM.
 */
int curve_client_init(const char *conf_path, const char *const *overrides, curve_client **out);

/*
 * Destroys a client. Every volume must be closed first.
 * Errors: -EBUSY (volumes still open; nothing is destroyed), -EDEADLK (called from an AIO
 * callback). NULL returns 0.
 */
int curve_client_destroy(curve_client *c);

/* ---- volumes: open and close ------------------------------------------------------------- */

typedef struct curve_volume curve_volume;

#define CURVE_OPEN_RDWR   0u
#define CURVE_OPEN_RDONLY (1u << 0) /* writes and discards fail with -EBADF */
/* Exclusive writer: the MDS bumps the volume's epoch; chunkservers then refuse writes that
 * carry an older epoch (CURVE_ERR_EPOCH_TOO_OLD), so any earlier opener is fenced off. Without
 * this flag a second read-write open of a volume already open read-write elsewhere fails with
 * -EBUSY. */
#define CURVE_OPEN_EXCLUSIVE (1u << 1)

/*
 * Opens the volume at `path` and starts its session (a 5 s lease refreshed in the background;
 * DESIGN §7). Ownership: *out belongs to the caller until curve_close().
 * Errors: CURVE_ERR_NOT_FOUND, -EISDIR (a directory), -EINVAL (bad flags or path),
 * CURVE_ERR_BAD_NAME, CURVE_ERR_PERMISSION (owner mismatch), -EBUSY (open read-write elsewhere
 * and CURVE_OPEN_EXCLUSIVE not given), CURVE_ERR_TIMEOUT / CURVE_ERR_RPC_CONN (no MDS answered
 * within the retry budget), -EDEADLK.
 */
int curve_open(curve_client *c, const char *path, unsigned flags, curve_volume **out);

/*
 * Closes a volume: waits until every AIO submitted on it has completed (its callback has
 * returned), then ends the session and frees `v`. Further use of `v` is undefined.
 * Errors (the volume is freed in every case except -EDEADLK): CURVE_ERR_SESSION_EXPIRED /
 * CURVE_ERR_FENCED (the session was lost; earlier writes that succeeded are durable),
 * -EDEADLK (called from an AIO callback; nothing done).
 */
int curve_close(curve_volume *v);

/*
 * Gives up on every IO of `v`, for an application that is shutting down while the cluster does
 * not answer (by default IO retries without bound, like a disk that hangs; the NBD export calls
 * this when nbdkit is told to stop). No IO of `v` makes a new call afterwards: an IO waiting in
 * a retry back-off (cut short) completes with CURVE_ERR_CANCELED at once; one waiting for an
 * in-flight slot, as soon as a slot frees; a call already sent (chunk RPC, leader lookup on the
 * peer it is asking, MDS segment lookup) ends at its current timeout (chunk RPCs at most
 * client.retry.max_rpc_timeout_ms, MDS calls client.mds.call_deadline_ms) and is not retried —
 * an answer of success still completes its IO with success. Every IO submitted afterwards fails
 * with CURVE_ERR_CANCELED. A write that fails this way may or may not have reached the volume,
 * as on a disk that is pulled. curve_block_status() is not affected. Cannot be undone:
 * curve_close() is still required; it then skips the Close call to the MDS (the session ends
 * with its lease) and returns the volume's own state, not CURVE_ERR_CANCELED.
 * Any thread, also an AIO callback; never during or after curve_close(). Returns 0, or -EINVAL
 * (v NULL).
 */
int curve_abort_io(curve_volume *v);

/* ---- synchronous IO ---------------------------------------------------------------------- */

/*
 * Reads `len` bytes at `offset` into `buf` (borrowed). offset and len must be multiples of the
 * IO alignment (4096, or 512 with client.allow_512) and the range inside the volume; len at
 * most 256 MiB. Ranges never written read as zeros. Returns len, or:
 * -EINVAL (alignment, len too large), -ERANGE (beyond the volume size), CURVE_ERR_TIMEOUT
 * (client.retry.total_deadline_ms passed), CURVE_ERR_EPOCH_TOO_OLD / CURVE_ERR_FENCED (fenced
 * by an exclusive open elsewhere), CURVE_ERR_INVALID_REQUEST, -EDEADLK.
 * Blocks the calling thread until done.
 */
ssize_t curve_pread(curve_volume *v, void *buf, size_t len, uint64_t offset);

/* Writes `len` bytes from `buf` (borrowed) at `offset`; returns len once the data is durable on
 * a quorum of replicas. Errors as curve_pread, plus -EBADF (volume opened read-only). */
ssize_t curve_pwrite(curve_volume *v, const void *buf, size_t len, uint64_t offset);

/* Discards [offset, offset + len): afterwards the range reads as zeros and its chunks may be
 * released. Same alignment and errors as curve_pwrite. Returns 0. */
int curve_discard(curve_volume *v, uint64_t offset, uint64_t len);

/* Returns once every write and discard that completed before the call is durable (they are
 * durable when acknowledged, so this is a barrier against writes still in flight). Returns 0,
 * or the errors of curve_pwrite. */
int curve_flush(curve_volume *v);

/* ---- asynchronous IO --------------------------------------------------------------------- */

typedef enum curve_op {
    CURVE_OP_READ = 0,
    CURVE_OP_WRITE = 1,
    CURVE_OP_DISCARD = 2,
    CURVE_OP_FLUSH = 3,
} curve_op;

struct curve_aio;
/* Completion callback. Runs exactly once per accepted request (see below), on the libcurve IO
 * thread serving the volume, never inside the submitting call. All callbacks of one volume run
 * on that same thread, one at a time. The callback must not block (no sync IO, no
 * curve_close/curve_client_destroy: they fail with -EDEADLK); it may submit new AIOs and may
 * free or reuse `aio` and its buffer. */
typedef void (*curve_aio_cb)(struct curve_aio *aio);

/*
 * One asynchronous request. The caller allocates it (usually embedded in its own request
 * struct: recover the outer struct with a container_of), fills the input fields and submits.
 * From a successful submit until its callback starts, the library owns `aio`: the caller must
 * not modify or free it, and must keep `buf` valid (and, for writes, unchanged).
 */
struct curve_aio {
    /* in: filled by the caller */
    void *buf;       /* read: destination; write: source; NULL for discard and flush */
    uint64_t offset; /* volume offset (aligned); ignored by flush */
    uint64_t len;    /* bytes (aligned, <= 256 MiB); ignored by flush */
    curve_aio_cb cb; /* required */
    void *ctx;       /* for the caller; never touched by the library */
    /* out: set before the callback runs */
    int64_t result; /* read/write: len on success; discard/flush: 0; or a negative error as
                       listed for the synchronous calls */
    curve_op op;    /* the operation submitted */
    /* private to libcurve */
    uint64_t internal_[8];
};

/*
 * Submit functions. Return 0 when the request was accepted: its callback then runs exactly
 * once, later. Return a negative error when it was refused: the callback never runs. They do
 * not block on the network; when client.max_inflight_rpcs RPCs are already in flight the
 * request is queued inside the library (the queue is bounded by memory only: callers bound
 * their own queue depth, as nbdkit does). Requests are not ordered with respect to each other
 * (as on a disk): a read submitted after an overlapping write that has not completed may see
 * old or new data; use the write's completion (or a flush) to order them.
 * Refusal errors: -EINVAL (NULL cb, alignment, len too large, buf NULL for read/write),
 * -ERANGE (beyond the volume), -EBADF (write/discard on a read-only volume), CURVE_ERR_SHUTDOWN
 * (curve_close has started).
 */
int curve_aio_read(curve_volume *v, struct curve_aio *aio);
int curve_aio_write(curve_volume *v, struct curve_aio *aio);
int curve_aio_discard(curve_volume *v, struct curve_aio *aio);
/* Completes after every write and discard submitted before it has completed. */
int curve_aio_flush(curve_volume *v, struct curve_aio *aio);

/* ---- metadata ---------------------------------------------------------------------------- */

typedef enum curve_file_type {
    CURVE_FILE_VOLUME = 1,
    CURVE_FILE_DIRECTORY = 2,
} curve_file_type;

struct curve_stat {
    uint64_t id;        /* file id (unique, never reused) */
    uint64_t parent_id; /* id of the parent directory (the root is 1) */
    curve_file_type type;
    uint64_t size;         /* bytes; 0 for directories */
    uint32_t chunk_size;   /* bytes (volumes) */
    uint64_t segment_size; /* bytes (volumes) */
    uint64_t ctime_ns;     /* creation time, ns since the Unix epoch */
    uint64_t epoch;        /* volume epoch (bumped by exclusive opens) */
    uint32_t open_count;   /* sessions open on the volume (MDS count; 0 for a directory) */
    char owner[CURVE_OWNER_MAX + 1];
    char name[CURVE_NAME_MAX + 1]; /* last path component ("/" for the root) */
};

/* Fills *st for `path`. Errors: CURVE_ERR_NOT_FOUND, CURVE_ERR_BAD_NAME, -EDEADLK, MDS
 * unreachable (CURVE_ERR_TIMEOUT / CURVE_ERR_RPC_CONN). */
int curve_stat(curve_client *c, const char *path, struct curve_stat *st);
/* Fills *st for an open volume (asks the MDS: size reflects extends done elsewhere). */
int curve_fstat(curve_volume *v, struct curve_stat *st);

/*
 * Allocation status of the segment holding `offset` (the unit the MDS allocates on a volume's
 * first write into it, DESIGN §2): sets *start and *len to that segment's range (clipped to
 * the volume) and returns 1 when the segment is allocated (it may hold data) or 0 when it is
 * not (it holds nothing and reads as zeros: a hole, e.g. for NBD block status). Blocking: asks
 * the MDS unless the segment is in the metadata cache; never allocates. Errors: -EINVAL (NULL
 * argument), -ERANGE (offset at or beyond the volume size), -EDEADLK (from an AIO callback),
 * CURVE_ERR_FENCED (the path names another volume now), MDS unreachable (CURVE_ERR_TIMEOUT /
 * CURVE_ERR_RPC_CONN).
 */
int curve_block_status(curve_volume *v, uint64_t offset, uint64_t *start, uint64_t *len);

/* ---- management -------------------------------------------------------------------------- */

/* Creates a volume of `size` bytes (a multiple of the segment size, within the cluster's
 * minimum and maximum volume size), owned by client.owner. The parent directory must exist.
 * Errors: CURVE_ERR_EXISTS, CURVE_ERR_NOT_FOUND (parent), -ENOTDIR, CURVE_ERR_BAD_NAME,
 * CURVE_ERR_BAD_SIZE, CURVE_ERR_PERMISSION, -EDEADLK, MDS unreachable. */
int curve_create(curve_client *c, const char *path, uint64_t size);

#define CURVE_DELETE_FORCE (1u << 0) /* skip the recycle bin: purge at once (unrecoverable) */
/* Deletes a volume: by default it moves to /RecycleBin and can be recovered; its chunks are
 * purged in the background later. Errors: CURVE_ERR_NOT_FOUND, -EISDIR (use curve_rmdir),
 * -EBUSY (open somewhere), CURVE_ERR_PERMISSION, -EINVAL (bad flags), -EDEADLK. */
int curve_delete(curve_client *c, const char *path, unsigned flags);

/* Restores the volume deleted from `path` (its original path) out of the recycle bin. `id`
 * selects among several deleted volumes of that path (0 = the most recently deleted).
 * Errors: CURVE_ERR_NOT_FOUND (nothing recoverable), CURVE_ERR_EXISTS (path in use again),
 * CURVE_ERR_PERMISSION, -EDEADLK. */
int curve_recover(curve_client *c, const char *path, uint64_t id);

/* Renames a volume or directory atomically. Errors: CURVE_ERR_NOT_FOUND, CURVE_ERR_EXISTS
 * (target exists), -EINVAL (target inside source), -EBUSY (volume open), CURVE_ERR_BAD_NAME,
 * CURVE_ERR_PERMISSION, -EDEADLK. */
int curve_rename(curve_client *c, const char *oldpath, const char *newpath);

/* Grows a volume to `new_size` (larger, a multiple of the segment size). Open volumes see the
 * new size after curve_fstat. Errors: CURVE_ERR_NOT_FOUND, CURVE_ERR_BAD_SIZE (smaller, not
 * aligned, above the maximum), -EISDIR, CURVE_ERR_PERMISSION, -EDEADLK. */
int curve_extend(curve_client *c, const char *path, uint64_t new_size);

/* Creates a directory. Errors: CURVE_ERR_EXISTS, CURVE_ERR_NOT_FOUND (parent), -ENOTDIR,
 * CURVE_ERR_BAD_NAME, CURVE_ERR_PERMISSION, -EDEADLK. */
int curve_mkdir(curve_client *c, const char *path);

/* Removes an empty directory. Errors: CURVE_ERR_NOT_FOUND, CURVE_ERR_NOT_EMPTY, -ENOTDIR,
 * -EBUSY (the root or /RecycleBin), CURVE_ERR_PERMISSION, -EDEADLK. */
int curve_rmdir(curve_client *c, const char *path);

/* Called once per entry by curve_list, on the calling thread; `st` is valid during the call
 * only. Return 0 to continue, non-zero to stop (curve_list then returns that value). */
typedef int (*curve_list_cb)(const struct curve_stat *st, void *ctx);

/* Lists the directory `dir` (entries in name order; "/RecycleBin" lists deleted volumes).
 * The MDS is read in pages of client.list_page_size entries (default 1000), so a directory
 * modified during the listing may show a renamed entry twice or not at all. Errors:
 * CURVE_ERR_NOT_FOUND, -ENOTDIR, -EDEADLK, -EPROTO (the MDS answered a page it gave no way to
 * continue from), the callback's non-zero value. */
int curve_list(curve_client *c, const char *dir, curve_list_cb cb, void *ctx);

#ifdef __cplusplus
}
#endif
#endif
