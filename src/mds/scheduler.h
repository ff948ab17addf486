/*
 * MDS schedulers and the operator table (DESIGN §7, docs/mds.md "Schedulers and operators").
 *
 * An operator is one configuration change of one copyset, sent to the copyset's leader inside
 * heartbeat replies: add / remove / change a peer, or transfer the leadership. The table
 * allows one operator per copyset and one per disk (chunkserver receiving data or leadership)
 * at a time. An operator completes when a heartbeat shows the expected configuration (the
 * epoch advanced with the expected peers; for a leader transfer, the new leader), fails when
 * the configuration moved elsewhere, and expires at its deadline.
 *
 * Schedulers are pure functions over (topology, operator table, now): each adds at most
 * cfg->max_ops_per_run operators per call and reports alerts (e.g. a copyset that lost its
 * majority: no operator can help, a human must). The daemon calls them periodically.
 *
 * Single-threaded: the table and the topology belong to the MDS loop.
 */
#ifndef CURVE_MDS_SCHEDULER_H
#define CURVE_MDS_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "mds/placement.h"
#include "mds/topology.h"

#define MDS_OPTABLE_MAX_DEFAULT 65536 /* default bound on operators in flight */
#define MDS_SCHED_MAX_ALERTS    64    /* alerts kept per scheduler run (more are counted) */

typedef enum mds_op_type {
    MDS_OP_ADD_PEER = 1,
    MDS_OP_REMOVE_PEER = 2,
    MDS_OP_CHANGE_PEER = 3,     /* old_peer -> new_peer */
    MDS_OP_TRANSFER_LEADER = 4, /* to new_peer */
} mds_op_type;

typedef enum mds_sched_kind {
    MDS_SCHED_RECOVERY = 0,
    MDS_SCHED_REPLICA = 1,
    MDS_SCHED_COPYSET_BALANCE = 2,
    MDS_SCHED_LEADER_BALANCE = 3,
    MDS_SCHED_MANUAL = 4,
    MDS_SCHED_SLOW_NODE = 5, /* leaders moved off a slow chunkserver (slownode.h) */
} mds_sched_kind;

const char *mds_op_type_name(mds_op_type t);
const char *mds_sched_kind_name(mds_sched_kind k);

typedef struct mds_operator {
    uint64_t id; /* assigned by mds_optable_add, from 1 */
    mds_op_type type;
    mds_sched_kind origin;
    uint32_t pool_id, copyset_id;
    uint32_t old_peer;    /* CHANGE/REMOVE: peer leaving; TRANSFER: leader at creation */
    uint32_t new_peer;    /* CHANGE/ADD: peer joining; TRANSFER: new leader */
    uint64_t start_epoch; /* copyset epoch when created */
    uint64_t created_ms, deadline_ms;
} mds_operator;

typedef enum mds_op_outcome {
    MDS_OP_DONE = 0,
    MDS_OP_FAILED = 1,  /* the configuration changed, but not as expected */
    MDS_OP_EXPIRED = 2, /* deadline passed */
} mds_op_outcome;

typedef struct mds_op_event {
    mds_operator op;
    mds_op_outcome outcome;
} mds_op_event;

/* A copyset whose operator expired or failed is left alone until `until_ms`, so that a copyset
 * that cannot make progress does not hold the idle disks forever (others get them first). */
typedef struct mds_op_backoff {
    uint32_t pool_id, copyset_id;
    uint64_t until_ms;
    uint64_t since_ms; /* when it (last) started */
} mds_op_backoff;

/* Recovery and the replica count restore redundancy: they wait out only this much of a
 * copyset's back-off. (A balance move that failed half way — its leader died after adding the
 * new peer, before removing the old one — left a copyset with 4 peers that the replica
 * scheduler ignored for the 10 min back-off of the failed move: chaos random round 19 of
 * 2026-11-26.) */
#define MDS_URGENT_BACKOFF_MS 5000u

typedef struct mds_optable {
    mds_operator *v; /* sorted by (pool_id, copyset_id) */
    size_t n, cap;
    size_t max; /* bound on n, and on nbackoff */
    uint64_t next_id;
    mds_op_backoff *backoff; /* unsorted */
    size_t nbackoff, backoff_cap;
    /* Per scheduler: group id of the last copyset that got an operator. The next run starts
     * after it, so copysets that keep failing cannot starve the others (round robin). */
    uint64_t cursor[MDS_SCHED_SLOW_NODE + 1];
} mds_optable;

/* `max` 0 = MDS_OPTABLE_MAX_DEFAULT. */
void mds_optable_init(mds_optable *o, size_t max);
void mds_optable_destroy(mds_optable *o);

/* The chunkserver whose disk the operator occupies (new peer, or the leaving peer of a remove).*/
uint32_t mds_op_disk(const mds_operator *op);

/* Adds a copy of `op` (id assigned, returned in *id_out if not NULL). Returns 0,
 * CURVE_ERR_BUSY (the copyset or the disk already has an operator), -EINVAL (bad op),
 * -ENOSPC (table full) or -ENOMEM. Exception to the one-per-disk rule: a TRANSFER_LEADER of
 * origin MDS_SCHED_SLOW_NODE moves no data, so several may target one chunkserver at once
 * (a slow node's leaders must all leave within seconds). */
int mds_optable_add(mds_optable *o, const mds_operator *op, uint64_t *id_out);
/* The operator of a copyset, or NULL. Valid until the table changes. */
const mds_operator *mds_optable_find(const mds_optable *o, uint32_t pool_id, uint32_t copyset_id);
/* True when some operator occupies chunkserver `cs_id`'s disk. */
bool mds_optable_cs_busy(const mds_optable *o, uint32_t cs_id);
/* mds_cs_busy_fn adapter: ctx is a `const mds_optable *`. */
bool mds_optable_busy_cb(void *ctx, uint32_t cs_id);
/* Removes the copyset's operator. 0 or CURVE_ERR_NOT_FOUND. */
int mds_optable_remove(mds_optable *o, uint32_t pool_id, uint32_t copyset_id);
/* Checks the copyset's operator against the copyset's current view `c`. When it finished
 * (done or failed) it is removed, *ev filled and 1 returned; otherwise 0. */
int mds_optable_observe(mds_optable *o, const mds_copyset *c, mds_op_event *ev);
/* Removes operators whose deadline is <= now_ms; fills up to `max` events; returns the
 * number removed. */
size_t mds_optable_expire(mds_optable *o, uint64_t now_ms, mds_op_event *evs, size_t max);
/* Keeps schedulers away from a copyset until until_ms (mds_optable_expire does this by itself
 * for expired operators, for as long as their timeout was). Silently ignored when the backoff
 * list is full (bounded by `max`). Returns 0 or -ENOMEM. */
int mds_optable_backoff(mds_optable *o, uint32_t pool_id, uint32_t copyset_id, uint64_t now_ms,
                        uint64_t until_ms);
/* True while the copyset is backed off at now_ms. */
/* The same for recovery and replica-count repairs: at most MDS_URGENT_BACKOFF_MS of it. */
bool mds_optable_in_urgent_backoff(const mds_optable *o, uint32_t pool_id, uint32_t copyset_id,
                                   uint64_t now_ms);
bool mds_optable_in_backoff(const mds_optable *o, uint32_t pool_id, uint32_t copyset_id,
                            uint64_t now_ms);
/* Copies into out (up to max) the operators of copysets whose current leader is `cs_id`:
 * what a heartbeat reply to that chunkserver carries. Returns the number copied. */
size_t mds_optable_for_leader(const mds_optable *o, const mds_topology *t, uint32_t cs_id,
                              mds_operator *out, size_t max);

/* ---- schedulers ---- */

typedef struct mds_sched_cfg {
    uint32_t max_ops_per_run;     /* rate limit: operators added per scheduler call */
    uint64_t change_timeout_ms;   /* deadline of add/remove/change peer operators */
    uint64_t transfer_timeout_ms; /* deadline of leader transfers */
    uint32_t balance_range_pct;   /* copyset counts may differ from the mean by this % */
    uint32_t leader_range_pct;    /* leader counts may differ from the mean by this % */
    /* leader balance moves a leader only to a chunkserver heard from within this long (a
     * chunkserver cut off from the cluster is still ONLINE until its unstable time; handing it
     * leaderships then blocks their writes for the transfer's duration). 0: no check. The
     * daemon sets half the heartbeat unstable time. */
    uint64_t leader_target_fresh_ms;
} mds_sched_cfg;

/* Defaults: 16 ops per run, 10 min change timeout, 10 s transfer timeout, 5% / 10%. */
void mds_sched_cfg_default(mds_sched_cfg *cfg);

/* Configuration keys: mds.schedule.max_ops_per_run (16), mds.schedule.change_timeout_ms (10m),
 * mds.schedule.transfer_timeout_ms (10s), mds.schedule.copyset_range_pct (5),
 * mds.schedule.leader_range_pct (10). */
extern const curve_cfg_def mds_sched_cfg_defs[];
extern const size_t mds_sched_cfg_ndefs;
/* Reads them from a loaded config whose schema includes mds_sched_cfg_defs. Returns 0. */
int mds_sched_cfg_from_config(const curve_config *c, mds_sched_cfg *out);

typedef enum mds_alert_kind {
    MDS_ALERT_MAJORITY_LOST = 1, /* fewer than a majority of peers alive: no automatic repair */
    MDS_ALERT_NO_CANDIDATE = 2,  /* nowhere to put a replacement replica */
} mds_alert_kind;

typedef struct mds_alert {
    mds_alert_kind kind;
    uint32_t pool_id, copyset_id;
    uint32_t alive, npeers;
    uint32_t cs_id; /* the offline peer concerned (first one) */
} mds_alert;

const char *mds_alert_kind_name(mds_alert_kind k);

typedef struct mds_sched_result {
    size_t ops_created;
    size_t skipped_busy;      /* copysets or disks skipped because of an operator in flight */
    size_t skipped_no_leader; /* copysets skipped because no live leader is known */
    size_t skipped_backoff;   /* copysets skipped after a recent expired/failed operator */
    size_t rate_limited;      /* work left for the next run because of max_ops_per_run */
    size_t nalerts;
    size_t alerts_dropped;
    mds_alert alerts[MDS_SCHED_MAX_ALERTS];
} mds_sched_result;

/* Each scheduler adds operators to `ops` and fills `res` (zeroed by the call).
 * Returns 0 or -ENOMEM. */

/* Recovery: every copyset with an offline (or retired / unknown) peer, a majority alive and a
 * live leader gets CHANGE_PEER offline -> replacement, sent to its leader. A copyset whose
 * majority is gone gets no operator and a MDS_ALERT_MAJORITY_LOST alert. */
int mds_sched_recovery(const mds_topology *t, mds_optable *ops, uint64_t now_ms,
                       const mds_sched_cfg *cfg, mds_sched_result *res);

/* Replica count: copysets with fewer peers than the pool's replicas get ADD_PEER; with more,
 * REMOVE_PEER of an offline peer, else of the busiest non-leader peer. */
int mds_sched_replica(const mds_topology *t, mds_optable *ops, uint64_t now_ms,
                      const mds_sched_cfg *cfg, mds_sched_result *res);

/* Copyset balance, per physical pool: moves replicas (CHANGE_PEER) from the chunkservers with
 * the most copysets to those with the fewest while a count is outside mean +- range and the
 * pair differs by >= 2. Only healthy copysets (all peers online, live leader, the source not
 * the leader) are moved. */
int mds_sched_copyset_balance(const mds_topology *t, mds_optable *ops, uint64_t now_ms,
                              const mds_sched_cfg *cfg, mds_sched_result *res);

/* Leader balance, per physical pool: TRANSFER_LEADER from chunkservers leading more than
 * mean + range copysets to the online peer of that copyset leading the fewest, when the pair
 * differs by >= 2. */
int mds_sched_leader_balance(const mds_topology *t, mds_optable *ops, uint64_t now_ms,
                             const mds_sched_cfg *cfg, mds_sched_result *res);
/* The same, leaving out the chunkservers for which avoid(ctx, id) is true (slow ones,
 * slownode.h): they are neither counted in the pool's mean nor chosen as a new leader.
 * avoid may be NULL. */
int mds_sched_leader_balance_ex(const mds_topology *t, mds_optable *ops, uint64_t now_ms,
                                const mds_sched_cfg *cfg, mds_cs_busy_fn avoid, void *avoid_ctx,
                                mds_sched_result *res);

/* Slow chunkservers (slownode.h): every copyset led by a chunkserver for which
 * is_slow(ctx, id) is true gets TRANSFER_LEADER (origin MDS_SCHED_SLOW_NODE) to a follower
 * that is online and not avoided (avoid(ctx, id): slow or suspected slow; NULL = is_slow),
 * the one leading the fewest copysets (lowest id on ties).
 * An operator already in flight that moves leadership *to* a slow chunkserver is dropped and
 * replaced. Copysets in backoff, without a live leader or without such a follower are skipped
 * (counted). Rate-limited by cfg->max_ops_per_run. */
int mds_sched_slow_leaders(const mds_topology *t, mds_optable *ops, uint64_t now_ms,
                           const mds_sched_cfg *cfg, mds_cs_busy_fn is_slow, mds_cs_busy_fn avoid,
                           void *slow_ctx, mds_sched_result *res);

#endif
