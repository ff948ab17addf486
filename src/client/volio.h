/*
 * Volume IO engine: the whole DESIGN §3 client IO path for one open volume, independent of
 * the transport. A user IO is checked and split (iosplit.h); each piece finds its chunk
 * (metacache, else the MDS: GetOrAllocateSegment), waits for an in-flight slot (inflight.h),
 * runs its chunk request (chunkreq.h: leader, retries) and reports to the IO's completion
 * tracker. Reads of unallocated segments or chunks complete with zeros; a flush completes once
 * every write and discard submitted before it has completed.
 *
 * Everything that leaves the process goes through `curve_volio_ops`, implemented by the RPC
 * glue (and by a fake cluster in the unit tests): each backend call gets a curve_volio_call
 * that the implementation completes later with the matching curve_volio_*_done() function.
 *
 * Thread model: a curve_volio belongs to one event loop. Every function here, every ops
 * callback and every user completion callback runs on that loop's thread. The ops must never
 * complete a call from inside the ops function itself (complete it later, from the loop).
 * The metacache and the unstable tracker in the env may be shared with other volumes/loops.
 */
#ifndef CURVE_CLIENT_VOLIO_H
#define CURVE_CLIENT_VOLIO_H

#include <stdbool.h>
#include <stdint.h>

#include "client/chunkreq.h"
#include "client/inflight.h"
#include "client/iosplit.h"
#include "client/metacache.h"
#include "client/retry.h"

typedef enum {
    CURVE_VOLIO_CALL_SEND = 0,        /* chunk RPC to a chunkserver */
    CURVE_VOLIO_CALL_GET_LEADER = 1,  /* GetLeader from the copyset's peers */
    CURVE_VOLIO_CALL_REFRESH_MDS = 2, /* copyset membership + leader from the MDS */
    CURVE_VOLIO_CALL_GET_SEGMENT = 3, /* GetOrAllocateSegment from the MDS */
    CURVE_VOLIO_CALL_SLEEP = 4,       /* a timer: call curve_volio_wakeup after sleep_ms */
} curve_volio_call_kind;

/* One backend call. Owned by the engine; borrowed by the ops from the ops call until the
 * matching *_done (or wakeup) call, after which it must not be touched. */
typedef struct curve_volio_call {
    curve_volio_call_kind kind;
    /* SEND */
    curve_retry_op op;   /* read, write or discard */
    curve_peer peer;     /* destination */
    uint64_t timeout_ms; /* RPC timeout */
    uint64_t chunk_id;
    uint32_t chunk_off; /* offset inside the chunk */
    uint32_t len;       /* bytes */
    void *buf;          /* read: fill len bytes; write: len bytes to send; discard: NULL */
    uint64_t epoch;     /* volume epoch for the chunkserver's fence */
    /* SEND, GET_LEADER, REFRESH_MDS */
    uint32_t pool_id;
    uint32_t copyset_id;
    /* GET_LEADER */
    uint32_t npeers;
    curve_peer peers[CURVE_COPYSET_MAX_PEERS];
    /* GET_SEGMENT */
    uint64_t file_id;
    uint64_t seg_index;
    bool allocate; /* writes allocate; reads and discards do not */
    /* SLEEP */
    uint64_t sleep_ms;
    /* private to the engine */
    void *owner_;
    int owner_kind_;
} curve_volio_call;

typedef struct curve_volio_ops {
    /* Starts `c` (any kind but SLEEP); completes it later with curve_volio_send_done /
     * _leader_done / _mds_done / _segment_done. */
    void (*call)(void *ctx, curve_volio_call *c);
    /* Arms a timer of c->sleep_ms; calls curve_volio_wakeup(c) when it fires. */
    void (*sleep)(void *ctx, curve_volio_call *c);
} curve_volio_ops;

typedef struct curve_volio_env {
    curve_metacache *mc;              /* borrowed, required */
    curve_unstable_tracker *unstable; /* borrowed, may be NULL */
    const curve_retry_opts *opts;     /* borrowed, validated */
    const curve_clock *clock;         /* borrowed */
    curve_rand_fn rand;               /* NULL: default PRNG */
    void *rand_ctx;
    curve_io_geom geom; /* copied; must pass curve_io_geom_validate */
    uint64_t file_id;
    uint64_t epoch;
    uint32_t max_inflight;      /* data RPCs in flight, >= 1 */
    const curve_volio_ops *ops; /* borrowed */
    void *ops_ctx;
    /* Called (may be NULL) when a piece crosses the slow threshold, for the metrics. */
    void (*on_slow)(void *ctx);
    void *slow_ctx;
} curve_volio_env;

typedef struct curve_volio curve_volio;
typedef struct curve_volio_io curve_volio_io;
typedef void (*curve_volio_cb)(curve_volio_io *io);

/* A user IO. Caller-owned; borrowed by the engine from a successful submit until its callback
 * starts (the callback may free it). */
struct curve_volio_io {
    curve_retry_op op; /* read, write, discard; flush uses curve_volio_flush */
    uint64_t offset;
    uint64_t len;
    void *buf; /* read/write: len bytes; discard: NULL */
    curve_volio_cb cb;
    void *ctx;
    /* Optional (zero: none): the outcome of a first attempt already made elsewhere (the
     * synchronous fast path, fastpath.h) for an IO of one piece. When the piece's first step is
     * a SEND to `seed_peer`, the engine takes that attempt as made and answered with
     * seed_status / seed_timed_out / seed_hint, and the retry policy continues from there
     * (its attempt count already 1). Strings borrowed until the callback. */
    int seed_status;
    bool seed_timed_out;
    const char *seed_peer;
    const char *seed_hint;
    uint64_t seed_start_ns; /* when that attempt started (the env clock's mono_ns; 0: now):
                               the request's retry deadline counts from there */
    int result; /* out: 0 or the first error of any piece */
    /* private */
    curve_io_tracker tracker_;
    curve_volio *vol_;
    uint64_t seq_; /* write/discard sequence number; 0 for reads and flushes */
    curve_volio_io *next_, *prev_;
};

/* Creates an engine. Returns 0, -EINVAL (bad geometry or env) or -ENOMEM. */
int curve_volio_new(const curve_volio_env *env, curve_volio **out);
/* Frees an idle engine (asserts nothing is in flight). NULL is ignored. */
void curve_volio_free(curve_volio *v);

/* Submits a read, write or discard. Returns 0 (cb runs exactly once, later — never inside this
 * call) or -EINVAL / -ERANGE (alignment, bounds, NULL cb or buf; cb never runs). A zero-length
 * IO is accepted and completes with 0. */
int curve_volio_submit(curve_volio *v, curve_volio_io *io);
/* Submits a flush: io->cb runs once every write and discard submitted before it has
 * completed (result 0, or the first error among them). Returns 0 or -EINVAL (NULL cb). */
int curve_volio_flush(curve_volio *v, curve_volio_io *io);

/* Completions of backend calls (on the loop thread). */
void curve_volio_send_done(curve_volio_call *c, int status, bool timed_out,
                           const char *leader_hint);
void curve_volio_leader_done(curve_volio_call *c, const char *leader_addr, uint64_t term);
/* rc: 0 when the answer was stored with curve_metacache_put_copyset, else the error. */
void curve_volio_mds_done(curve_volio_call *c, int rc);
/* rc: 0 when the segment was stored with curve_metacache_put_segment; CURVE_ERR_NOT_FOUND when
 * it is not allocated (only for allocate == false); else the error (retried). */
void curve_volio_segment_done(curve_volio_call *c, int rc);
void curve_volio_wakeup(curve_volio_call *c);

/* Gives up on every IO (curve_abort_io): from now on a piece whose next step would be a call
 * or a back-off sleep completes with `err` (< 0) instead, a piece waiting for a slot or
 * submitted later completes with it from a 0 ms timer (never inside the submit), and a piece
 * waking from a back-off completes with it. An answer already on its way is still taken: a
 * success completes the piece with success. Calls in flight are not interrupted here (their
 * timeouts bound them); cutting the back-off sleeps short is the ops' business (the transport's
 * curve_chunk_transport_wake_sleepers). Cannot be undone; a second call keeps the first err. */
void curve_volio_cancel(curve_volio *v, int err);

/* The volume grew (curve_extend elsewhere): later IOs may use [0, size). size must be a
 * multiple of the segment size and not smaller than before. Returns 0 or -EINVAL. */
int curve_volio_set_size(curve_volio *v, uint64_t size);

typedef struct curve_volio_stats {
    uint64_t ios_inflight;    /* user IOs (incl. flushes) not completed */
    uint64_t pieces_inflight; /* pieces not completed */
    uint64_t slow;            /* pieces that crossed the slow threshold */
    uint64_t zero_filled;     /* read pieces completed with zeros */
} curve_volio_stats;
void curve_volio_get_stats(curve_volio *v, curve_volio_stats *out);

#endif
