/*
 * Client metadata cache (DESIGN §3.1): segment -> chunk ids and copyset ids, copyset -> peers
 * and leader. Filled by the IO path from the MDS (GetOrAllocateSegment, copyset members) and
 * from chunkservers (REDIRECTED hints, GetLeader); invalidated on errors.
 *
 * Bounds: at most `max_segments` segments and `max_copysets` copysets; when full, the least
 * recently used entry is evicted (lookups and updates count as use).
 *
 * Versions: copyset membership carries the configuration epoch; an update with a smaller epoch
 * than the cached one is ignored (-ESTALE). A leader update with a Raft term smaller than the
 * cached leader's term is ignored too; a term of 0 means "unknown" (a REDIRECTED hint) and is
 * accepted without changing the cached term. Segments are immutable once allocated (a deleted
 * and re-created volume has a new file id), so they carry no version.
 *
 * Thread model: every function is thread-safe. Two mutexes: `seg_lock` protects the segment
 * table and its LRU list, `cs_lock` protects the copyset table and its LRU list; no function
 * holds both. Lookups copy the data out; no pointer into the cache is ever returned.
 */
#ifndef CURVE_CLIENT_METACACHE_H
#define CURVE_CLIENT_METACACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/retry.h" /* CURVE_ADDR_MAX */

/* Peers in one copyset: 3 replicas, plus room for a membership change in progress. */
#define CURVE_COPYSET_MAX_PEERS 7
/* Chunks in one segment (1 GiB / 16 MiB = 64 in production). */
#define CURVE_SEGMENT_MAX_CHUNKS 4096
/* Default bounds (1 KiB per 64-chunk segment: 4 MiB; ~0.5 KiB per copyset: 32 MiB). */
#define CURVE_METACACHE_SEGMENTS_DEFAULT 4096
#define CURVE_METACACHE_COPYSETS_DEFAULT 65536
/* Largest bounds accepted. */
#define CURVE_METACACHE_LIMIT_MAX (1u << 24)

typedef struct curve_chunk_loc {
    uint64_t chunk_id;   /* != 0 */
    uint32_t pool_id;    /* logical pool */
    uint32_t copyset_id; /* copyset inside the pool */
} curve_chunk_loc;

typedef struct curve_peer {
    uint32_t cs_id;            /* chunkserver id, != 0 */
    char addr[CURVE_ADDR_MAX]; /* "host:port" */
} curve_peer;

typedef struct curve_copyset_info {
    uint32_t pool_id;
    uint32_t copyset_id;
    uint64_t epoch;  /* configuration epoch of `peers` */
    uint32_t npeers; /* 1..CURVE_COPYSET_MAX_PEERS */
    curve_peer peers[CURVE_COPYSET_MAX_PEERS];
    int32_t leader;         /* index in peers, or -1 when unknown */
    uint64_t leader_term;   /* term the leader was learned with; 0 = unknown */
    bool leader_may_change; /* the leader's chunkserver was marked unstable */
} curve_copyset_info;

typedef struct curve_metacache curve_metacache;

typedef struct curve_metacache_stats {
    uint32_t segments, copysets; /* entries now */
    uint64_t seg_hits, seg_misses, seg_evictions;
    uint64_t cs_hits, cs_misses, cs_evictions;
} curve_metacache_stats;

/* Creates a cache holding at most max_segments segments and max_copysets copysets (each
 * 1..CURVE_METACACHE_LIMIT_MAX). Returns 0, -EINVAL or -ENOMEM. */
int curve_metacache_new(uint32_t max_segments, uint32_t max_copysets, curve_metacache **out);
/* Frees the cache and every entry. No other thread may use it any more. NULL is ignored. */
void curve_metacache_free(curve_metacache *mc);

/* ---- segments ---- */

/* Stores segment `seg_index` of volume `file_id`: `n` chunk locations (copied), index i being
 * the i-th chunk of the segment. Replaces a cached copy. Returns 0, -EINVAL (n == 0 or above
 * CURVE_SEGMENT_MAX_CHUNKS, a chunk id 0) or -ENOMEM. */
int curve_metacache_put_segment(curve_metacache *mc, uint64_t file_id, uint64_t seg_index,
                                const curve_chunk_loc *chunks, uint32_t n);
/* Looks up chunk `chunk_in_seg` of a cached segment. Returns 0 with *out filled, -ENOENT on a
 * miss (segment not cached) or -EINVAL (chunk_in_seg beyond the cached segment). */
int curve_metacache_get_chunk(curve_metacache *mc, uint64_t file_id, uint64_t seg_index,
                              uint32_t chunk_in_seg, curve_chunk_loc *out);
void curve_metacache_invalidate_segment(curve_metacache *mc, uint64_t file_id, uint64_t seg_index);
/* Drops every cached segment of `file_id` (volume closed, deleted or renamed over). */
void curve_metacache_invalidate_file(curve_metacache *mc, uint64_t file_id);

/* ---- copysets ---- */

/* Stores the membership of copyset (pool_id, copyset_id) at configuration `epoch`.
 * `leader_addr` (may be NULL) names the leader among the peers, learned at `term`.
 * - epoch < cached epoch: ignored, returns -ESTALE;
 * - epoch >= cached epoch: peers replaced; the leader is `leader_addr` if given (subject to the
 *   term rule of curve_metacache_set_leader), else the cached leader if it is still a peer,
 *   else unknown; leader_may_change survives only while the leader stays the same.
 * Returns 0, -ESTALE, -EINVAL (npeers 0 or above the max, cs_id 0, empty or too long address,
 * leader_addr not among the peers) or -ENOMEM. */
int curve_metacache_put_copyset(curve_metacache *mc, uint32_t pool_id, uint32_t copyset_id,
                                uint64_t epoch, const curve_peer *peers, uint32_t npeers,
                                const char *leader_addr, uint64_t term);
/* Sets the leader of a cached copyset to the peer with address `leader_addr`, learned at
 * `term` (0 = unknown). Clears leader_may_change when the leader changes (the same leader
 * confirmed again keeps it). Returns 0; -ENOENT when the copyset is not
 * cached; -ESRCH when no peer has that address (membership is stale: refresh from the MDS);
 * -ESTALE when term != 0 and term < the cached leader term (ignored). */
int curve_metacache_set_leader(curve_metacache *mc, uint32_t pool_id, uint32_t copyset_id,
                               const char *leader_addr, uint64_t term);
/* Copies the leader out. Returns 0, -ENOENT (copyset not cached) or -EAGAIN (leader unknown).
 * `may_change` (may be NULL) receives leader_may_change. */
int curve_metacache_get_leader(curve_metacache *mc, uint32_t pool_id, uint32_t copyset_id,
                               curve_peer *leader, bool *may_change);
/* Copies the whole entry out. Returns 0 or -ENOENT. */
int curve_metacache_get_copyset(curve_metacache *mc, uint32_t pool_id, uint32_t copyset_id,
                                curve_copyset_info *out);
/* Forgets the leader only (next IO resolves it through the peers). */
void curve_metacache_invalidate_leader(curve_metacache *mc, uint32_t pool_id, uint32_t copyset_id);
/* Forgets the copyset (next IO asks the MDS). */
void curve_metacache_invalidate_copyset(curve_metacache *mc, uint32_t pool_id, uint32_t copyset_id);
/* Chunkserver `cs_id` became unstable: every cached copyset it leads gets leader_may_change.
 * Returns how many copysets were marked. */
uint32_t curve_metacache_mark_cs_unstable(curve_metacache *mc, uint32_t cs_id);

void curve_metacache_get_stats(curve_metacache *mc, curve_metacache_stats *out);

#endif
