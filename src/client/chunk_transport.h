/*
 * The real transport of the volume IO engine: curve_volio_ops implemented with RPCs.
 *   SEND        ChunkService (proto/chunk.proto) Write/Read/DeleteChunk to the peer, data in the
 *               RPC attachment (never in protobuf); a discard of a whole chunk is DeleteChunk, a
 *               partial one writes zeros (in pieces of at most max_rpc_size).
 *   GET_LEADER  CliService GetLeader, asking the peers one after the other.
 *   REFRESH_MDS TopologyService GetCopyset on the MDS; the answer goes into the metacache.
 *   GET_SEGMENT NamespaceService GetSegment / GetOrAllocateSegment; into the metacache.
 *   SLEEP       a libuv timer.
 *
 * Threads: a curve_chanmap and every transport using it belong to one IO loop; the ops run and
 * complete on that loop. MDS answers arrive on the MDS loop and are posted back.
 */
#ifndef CURVE_CLIENT_CHUNK_TRANSPORT_H
#define CURVE_CLIENT_CHUNK_TRANSPORT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "client/mds_client.h"
#include "client/volio.h"
#include "loop/loop.h"

/* Service ids (proto/chunk.proto, proto/cli.proto). */
#define CURVE_CHUNK_SVC 10u
#define CURVE_CLI_SVC   11u

/* Chunkserver channels kept per IO loop; beyond it the least recently used idle one closes. */
#define CURVE_CHANMAP_MAX 1024u

/* Channels to chunkservers, keyed by "ip:port", owned by one loop. */
typedef struct curve_chanmap curve_chanmap;

/* Returns 0, -ENOMEM. Any thread. */
int curve_chanmap_new(curve_loop *loop, curve_chanmap **out);
/* Closes every channel (waiting for their close) and frees the map. Not from `loop`; no
 * transport may use it any more. NULL is ignored. */
void curve_chanmap_free(curve_chanmap *cm);

/* Retry causes counted by the transport (for the per-volume metrics). */
typedef enum {
    CURVE_CAUSE_OVERLOAD = 0,
    CURVE_CAUSE_TIMEOUT,
    CURVE_CAUSE_REDIRECTED,
    CURVE_CAUSE_COPYSET_NOTEXIST,
    CURVE_CAUSE_CONNECTION,
    CURVE_CAUSE_OTHER,
    CURVE_CAUSE_COUNT_,
} curve_retry_cause;
const char *curve_retry_cause_name(curve_retry_cause c);
/* The cause a failed chunk RPC (status, timed out) is counted under. */
curve_retry_cause curve_retry_cause_of(int status, bool timed_out);

typedef struct curve_chunk_transport {
    /* set by the owner before use; borrowed */
    curve_loop *loop;
    curve_chanmap *chans;
    curve_mds_client *mds;
    curve_metacache *mc;
    const char *path;           /* volume path, for segment requests */
    uint64_t file_id;           /* volume id, for the epoch fence */
    uint64_t epoch;             /* volume epoch of this open */
    bool writer;                /* opened read-write: a newer epoch in an MDS answer fences it */
    curve_io_geom geom;         /* chunk and segment sizes to check MDS answers against */
    uint64_t leader_timeout_ms; /* GetLeader timeout per peer */
    /* called on the loop for every failed chunk RPC that will be retried (may be NULL) */
    void (*on_retry)(void *ctx, curve_retry_cause cause);
    void *cb_ctx;
    /* out: set when a newer exclusive opener fenced this volume (any thread may read) */
    atomic_bool fenced;
    /* loop-only */
    uint64_t outstanding;    /* calls not completed yet */
    struct tcall *sleepers;  /* armed SLEEP timers (private) */
    bool canceled;           /* wake_sleepers was called: GET_LEADER asks no further peer */
} curve_chunk_transport;

extern const curve_volio_ops curve_chunk_transport_ops;

/* The engine was canceled (curve_volio_cancel): makes every armed SLEEP timer fire on the next
 * loop turn instead of at its time, and a GET_LEADER in progress asks no further peer once its
 * current one answers or times out. On the transport's loop. */
void curve_chunk_transport_wake_sleepers(curve_chunk_transport *t);

#endif
