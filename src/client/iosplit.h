/*
 * IO splitting (DESIGN §3.1): a volume IO (offset, length) is cut at chunk boundaries and then
 * into RPC-sized pieces, each knowing its chunk, its offset inside the chunk and its offset in
 * the user buffer. Plus the completion tracker that completes the user IO exactly once when all
 * its pieces have finished.
 *
 * Pure logic: no allocation in the splitter (an iterator), no I/O. Thread model: a geometry is
 * read-only after validation and may be shared; an iterator belongs to one thread; a tracker is
 * thread-safe (lock-free atomics) as documented below.
 */
#ifndef CURVE_CLIENT_IOSPLIT_H
#define CURVE_CLIENT_IOSPLIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds of the tunable RPC size (DESIGN §3: 64 KiB ... 1 MiB). */
#define CURVE_RPC_SIZE_MIN (64u * 1024u)
#define CURVE_RPC_SIZE_MAX (1024u * 1024u)
/* Longest single user IO accepted (reads, writes and discards alike). */
#define CURVE_IO_MAX_LEN (256ull * 1024 * 1024)
/* Smallest and largest chunk size accepted (production 16 MiB; tests use smaller). */
#define CURVE_CHUNK_SIZE_MIN (64u * 1024u)
#define CURVE_CHUNK_SIZE_MAX (1u << 30)

/* Geometry of one open volume (from the MDS file info and the client configuration). */
typedef struct curve_io_geom {
    uint64_t volume_size;  /* bytes; multiple of segment_size */
    uint64_t segment_size; /* bytes; multiple of chunk_size (1 GiB in production) */
    uint32_t chunk_size;   /* bytes; power of two in [CURVE_CHUNK_SIZE_MIN, _MAX] (16 MiB) */
    uint32_t align;        /* IO alignment: 4096, or 512 when allowed */
    uint32_t max_rpc_size; /* bytes per data RPC: multiple of align, in [CURVE_RPC_SIZE_MIN,
                              CURVE_RPC_SIZE_MAX], at most chunk_size */
} curve_io_geom;

/* Checks the rules above. Returns 0 or -EINVAL. */
int curve_io_geom_validate(const curve_io_geom *g);

/* Checks one IO against a validated geometry: off and len multiples of g->align (-EINVAL),
 * len <= CURVE_IO_MAX_LEN (-EINVAL), off + len <= volume_size without overflow (-ERANGE).
 * len == 0 is valid (an IO with no pieces). Returns 0 or the negative error. */
int curve_io_check(const curve_io_geom *g, uint64_t off, uint64_t len);

/* One piece: a contiguous range inside one chunk, at most the iterator's piece size. */
typedef struct curve_io_piece {
    uint64_t vol_off;      /* offset in the volume */
    uint64_t chunk_index;  /* vol_off / chunk_size: the chunk in the volume */
    uint64_t seg_index;    /* vol_off / segment_size */
    uint32_t chunk_in_seg; /* chunk index inside its segment */
    uint32_t chunk_off;    /* offset inside the chunk */
    uint32_t len;          /* bytes; > 0 */
    uint64_t buf_off;      /* offset in the user buffer (vol_off - IO offset) */
} curve_io_piece;

typedef struct curve_io_iter {
    const curve_io_geom *g; /* borrowed */
    uint64_t off;           /* IO start */
    uint64_t len;           /* IO length */
    uint64_t pos;           /* bytes already returned */
    uint32_t piece_max;     /* largest piece */
} curve_io_iter;

/* Starts iterating over the pieces of (off, len), each at most `piece_max` bytes and never
 * crossing a chunk boundary. piece_max 0 means one piece per chunk (discard); otherwise it must
 * be a multiple of g->align (normally g->max_rpc_size). Checks the IO with curve_io_check.
 * Returns 0, -EINVAL or -ERANGE. */
int curve_io_iter_init(curve_io_iter *it, const curve_io_geom *g, uint64_t off, uint64_t len,
                       uint32_t piece_max);

/* Fills `p` with the next piece and returns true, or returns false when done. */
bool curve_io_iter_next(curve_io_iter *it, curve_io_piece *p);

/* Number of pieces curve_io_iter_next will return for this (checked) IO, in O(1). */
uint64_t curve_io_piece_count(const curve_io_geom *g, uint64_t off, uint64_t len,
                              uint32_t piece_max);

/*
 * Completion tracker: the user IO completes exactly once, after every piece has reported, with
 * the first error reported by any piece (or 0).
 *
 *     curve_io_tracker_init(&t, done_cb, ctx);  // holds one "submitter" reference
 *     for each piece: curve_io_tracker_add(&t, 1); submit (its completion calls
 *                     curve_io_tracker_piece_done(&t, result), from any thread);
 *     curve_io_tracker_arm(&t);                 // drops the submitter reference
 *
 * done_cb runs exactly once, on the thread that drops the last reference (a piece's completion
 * thread, or the submitter inside arm() when every piece was already done or there were none).
 * After done_cb has started the tracker must not be touched again (done_cb may free it).
 * Pieces may complete while others are still being added: the submitter reference keeps the
 * count from reaching zero early. At most CURVE_IO_TRACKER_MAX_PIECES pieces may be pending.
 */
#define CURVE_IO_TRACKER_MAX_PIECES (1u << 30)

typedef struct curve_io_tracker curve_io_tracker;
typedef void (*curve_io_done_cb)(curve_io_tracker *t, int result, void *ctx);

struct curve_io_tracker {
    atomic_uint pending; /* pieces not done + 1 while not armed */
    atomic_int result;   /* 0 until the first error, which then stays */
    atomic_bool armed;
    curve_io_done_cb cb;
    void *ctx;
};

void curve_io_tracker_init(curve_io_tracker *t, curve_io_done_cb cb, void *ctx);
/* Adds n pieces (before submitting them). Only the submitter calls it, before arm(). */
void curve_io_tracker_add(curve_io_tracker *t, unsigned n);
/* Reports one piece finished with `result` (0 or negative). Any thread. */
void curve_io_tracker_piece_done(curve_io_tracker *t, int result);
/* Records an error without finishing a piece (e.g. submission failed for the rest); any
 * thread. The first error wins. */
void curve_io_tracker_fail(curve_io_tracker *t, int result);
/* Drops the submitter reference; called once by the submitter after the last add. */
void curve_io_tracker_arm(curve_io_tracker *t);

#endif
