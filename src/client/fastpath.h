/*
 * The blocking fast path of libcurve's synchronous IO (docs/client.md "Fast path").
 *
 * curve_pread/curve_pwrite used to post every request to the volume's IO loop and wait for the
 * loop to complete it: two thread hand-offs per IO (the caller wakes the loop through its
 * eventfd, the loop wakes the caller through a condvar) on top of the network round trip, and a
 * copy of the written data. A synchronous caller is blocked anyway, so for the common case —
 * one piece (inside one chunk, at most max_rpc_size), segment and leader cached — the caller's
 * own thread sends the chunk RPC on a blocking TCP connection it borrows from a per-client pool,
 * with the user buffer as the attachment (no copy) and the read reply received straight into
 * the user buffer, and waits for the reply in recv(). Only the first attempt is made here; any
 * answer but success (and CHUNK_NOTEXIST for reads) is handed to the IO engine as the outcome
 * of that first attempt, so the retry policy (DESIGN §4) decides what follows exactly as for an
 * engine-sent RPC.
 *
 * The wire format is the RPC layer's (src/rpc/rpc_frame.h): the chunkserver cannot tell these
 * connections from the event-loop channels.
 *
 * Threads: every function is thread-safe. A connection is used by one thread at a time (taken
 * from the pool for the call, returned after a complete reply); the pool's lock is held only for
 * list surgery.
 */
#ifndef CURVE_CLIENT_FASTPATH_H
#define CURVE_CLIENT_FASTPATH_H

#include <stdbool.h>
#include <stdint.h>

#include "client/metacache.h"
#include "client/retry.h"

/* Idle connections kept per client (all chunkservers together); beyond, a returned connection
 * is closed. The number in use is bounded by the calling threads (and max_inflight_rpcs). */
#define CURVE_FASTPATH_IDLE_MAX 512u
/* Largest response body accepted (a ChunkResponse is a few dozen bytes). */
#define CURVE_FASTPATH_BODY_MAX 4096u

typedef struct curve_fastpath curve_fastpath;

/* Returns 0 or -ENOMEM. */
int curve_fastpath_new(curve_fastpath **out);
/* Closes every idle connection and frees the pool. No call may be in progress. NULL ignored. */
void curve_fastpath_free(curve_fastpath *fp);

/* One chunk RPC, made on the calling thread. */
typedef struct curve_fastpath_call {
    /* in */
    curve_retry_op op; /* CURVE_RETRY_OP_READ or CURVE_RETRY_OP_WRITE */
    const char *addr;  /* "ip:port" of the chunkserver */
    uint32_t pool_id, copyset_id;
    uint64_t chunk_id;
    uint32_t chunk_off, len;
    void *buf;          /* read: receives len bytes (only on success); write: len bytes to send */
    uint64_t file_id;   /* for the chunkserver's epoch fence */
    bool has_epoch;     /* writers send their epoch, readers none */
    uint64_t epoch;
    uint32_t timeout_ms; /* bound of the whole call (connect, send, reply) */
    /* out */
    int status;     /* 0, a chunk status as CURVE_ERR_* (curve_chunk_status_to_err), an RPC
                       status from the server (e.g. CURVE_ERR_RPC_OVERLOAD), CURVE_ERR_TIMEOUT,
                       CURVE_ERR_RPC_CONN or CURVE_ERR_RPC_PROTO */
    bool timed_out; /* status is CURVE_ERR_TIMEOUT */
    char hint[CURVE_ADDR_MAX]; /* REDIRECTED: the leader hint as sent ("" if none) */
} curve_fastpath_call;

/* Makes the call; fills the out fields. A connection that failed or timed out is closed (a
 * reply arriving later must not be taken for the next call's); a reused idle connection that
 * turns out to be dead (the chunkserver restarted) is replaced once by a fresh one. Blocks at
 * most about timeout_ms (twice at worst, with that one replacement). */
void curve_fastpath_do(curve_fastpath *fp, curve_fastpath_call *c);

/* Maps a ChunkResponse status to 0 / CURVE_ERR_* (the same mapping as the event-loop path). */
int curve_chunk_status_to_err(int s);

#endif
