/*
 * Copyset placement (DESIGN §2, docs/mds.md "Placement").
 *
 * mds_place_copysets(): shuffle the chunkservers of each failure domain (zone, or server when
 * the physical pool has fewer than 3 zones) with the caller's PRNG, read them round-robin
 * across domains, cut the sequence into groups of 3 with distinct domains (preferring, within
 * a domain, members not yet paired with the group), and repeat until the
 * logical pool has its copyset count. The plan is accepted only when every chunkserver's
 * scatter width is within `sw_tolerance_pct` of the mean (or MDS_PLACE_SW_MIN_SLACK, whichever
 * is larger); otherwise it is retried with new shuffles, at most `max_attempts` times.
 *
 * mds_place_choose_replacement(): picks the chunkserver that takes over one replica of a
 * copyset (recovery, replica count, balance).
 *
 * Pure functions over a topology; same seed + same topology = same result. Single-threaded.
 */
#ifndef CURVE_MDS_PLACEMENT_H
#define CURVE_MDS_PLACEMENT_H

#include <stdbool.h>
#include <stdint.h>

#include "mds/topology.h"

#define MDS_PLACE_MAX_ATTEMPTS     32 /* default bound on re-shuffles for a balanced plan */
#define MDS_PLACE_SW_TOLERANCE_PCT 20 /* default scatter-width tolerance around the mean */
#define MDS_PLACE_SW_MIN_SLACK     2  /* absolute tolerance for tiny pools (mean of 2-3) */
#define MDS_PLACE_FULL_PCT         95 /* a disk used at >= this % never receives a replica */
#define MDS_PLACE_LOOKAHEAD        16 /* members examined to avoid a repeated pair */
#define MDS_PLACE_PAIR_TRACK_MAX   4096 /* pools up to this many disks track pairs (2 MiB) */

typedef struct mds_place_opts {
    uint32_t sw_tolerance_pct; /* 0 = MDS_PLACE_SW_TOLERANCE_PCT */
    uint32_t max_attempts;     /* 0 = MDS_PLACE_MAX_ATTEMPTS */
} mds_place_opts;

/* Statistics of the last accepted (or last tried) plan, for logs and tests. */
typedef struct mds_place_stats {
    uint32_t attempts;
    uint32_t ncandidates;
    bool by_zone;    /* domains were zones (else servers) */
    double sw_mean;
    uint32_t sw_min, sw_max;
} mds_place_stats;

/*
 * Plans `count` copysets for logical pool `lpool_id`: on success *out_peers is a malloc'd
 * array of count * MDS_REPLICAS chunkserver ids (copyset i has peers [3i, 3i+3)); the caller
 * frees it. Candidates are the online chunkservers of the pool's physical pool. `opts` and
 * `stats` may be NULL.
 * Returns 0; -EINVAL (bad count); CURVE_ERR_NOT_FOUND (no such pool); -ENOSPC (fewer than 3
 * zones and fewer than 3 servers with online chunkservers: impossible); -EAGAIN (no balanced
 * plan within max_attempts); -ENOMEM. `err` names the pool and the numbers involved.
 */
int mds_place_copysets(const mds_topology *t, uint32_t lpool_id, uint32_t count, mds_rng *rng,
                       const mds_place_opts *opts, uint32_t **out_peers, mds_place_stats *stats,
                       char *err, size_t errlen);

/*
 * Plans the pool's copyset_count copysets and inserts them as copysets 1..N (epoch 0, no
 * leader) and sets copysets_created. Fails with -EEXIST if the pool already has copysets.
 * On error the topology is unchanged. Errors as mds_place_copysets.
 */
int mds_place_create_pool_copysets(mds_topology *t, uint32_t lpool_id, mds_rng *rng,
                                   const mds_place_opts *opts, mds_place_stats *stats, char *err,
                                   size_t errlen);

/* Returns true when chunkserver `cs_id` must not receive a new operator (e.g. already busy). */
typedef bool (*mds_cs_busy_fn)(void *ctx, uint32_t cs_id);

typedef struct mds_replace_req {
    const mds_copyset *copyset; /* borrowed */
    uint32_t old_peer;          /* peer being replaced, 0 when adding a replica */
    uint32_t max_copysets;      /* candidate must have fewer copysets than this; 0 = no limit */
    mds_cs_busy_fn busy;        /* may be NULL */
    void *busy_ctx;
    /* Optional per-run caches indexed like t->css.v (see mds_place_copyset_counts and
     * mds_place_scatter_widths); NULL = computed by the call, O(copysets log copysets). */
    const uint32_t *counts;
    const uint32_t *scatter;
} mds_replace_req;

/*
 * Chooses a chunkserver for `req->copyset` in place of `req->old_peer`: same physical pool,
 * online, not a peer already, not busy, not full (MDS_PLACE_FULL_PCT), and in a zone different
 * from every remaining peer (a different server when the pool has fewer than 3 zones). Among
 * those: the lowest copyset count, then the lowest scatter width, then the lowest id.
 * Returns 0 with *out set, CURVE_ERR_NOT_FOUND (unknown pool) or -ENOSPC (no candidate).
 */
int mds_place_choose_replacement(const mds_topology *t, const mds_replace_req *req,
                                 uint32_t *out, char *err, size_t errlen);

/* Copyset count of every chunkserver: counts[i] is for t->css.v[i]. `counts` has t->css.n
 * entries. Peers not in the topology are ignored. */
void mds_place_copyset_counts(const mds_topology *t, uint32_t *counts);

/* Scatter width of every chunkserver at once: sw[i] is for t->css.v[i]. Returns 0 or -ENOMEM
 * (sw then zeroed). */
int mds_place_scatter_widths(const mds_topology *t, uint32_t *sw);

/* Index of chunkserver `id` in t->css.v, or -1. */
long mds_place_cs_index(const mds_topology *t, uint32_t id);

/* True when physical pool `ppool_id` has at least 3 zones holding non-retired chunkservers
 * (replicas then go to distinct zones; otherwise to distinct servers). */
bool mds_place_zone_mode(const mds_topology *t, uint32_t ppool_id);

#endif
