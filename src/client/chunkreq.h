/*
 * One chunk RPC piece driven to completion, as a pure state machine: it glues the retry policy
 * (retry.h), the metadata cache (metacache.h) and the unstable-chunkserver tracker together and
 * says what to do next in concrete terms — send to this address with this timeout, ask these
 * peers who leads, ask the MDS about this copyset, or complete. The IO engine executes the
 * steps with real RPCs and timers; unit tests execute them against a fake cluster.
 *
 *     curve_chunkreq_start(&r, &env, op, pool, copyset, &step);
 *     while (step.kind != CURVE_STEP_DONE) {
 *         wait step.sleep_ms;
 *         SEND:        rpc to step.peer, timeout step.timeout_ms
 *                      -> curve_chunkreq_on_reply(&r, status, timed_out, leader_hint, &step)
 *         GET_LEADER:  ask step.peers[0..npeers) in turn until one names the leader
 *                      -> curve_chunkreq_on_leader(&r, addr or NULL, term, &step)
 *         REFRESH_MDS: ask the MDS for the copyset; store the answer with
 *                      curve_metacache_put_copyset -> curve_chunkreq_on_mds(&r, rc, &step)
 *     }
 *     complete the piece with step.result (zero-filling the read buffer if step.zero_fill).
 *
 * Side effects on the environment: leader hints and GetLeader answers go into the metacache;
 * timeouts and replies feed the unstable tracker, and a chunkserver that becomes unstable
 * marks the copysets it leads "leader may change" (which keeps the next timeouts short).
 *
 * Thread model: a curve_chunkreq is used by one thread at a time; the environment's objects are
 * thread-safe and shared by all requests.
 */
#ifndef CURVE_CLIENT_CHUNKREQ_H
#define CURVE_CLIENT_CHUNKREQ_H

#include <stdbool.h>
#include <stdint.h>

#include "client/metacache.h"
#include "client/retry.h"

typedef struct curve_chunkreq_env {
    curve_metacache *mc;              /* borrowed, required */
    curve_unstable_tracker *unstable; /* borrowed; NULL disables unstable tracking */
    const curve_retry_opts *opts;     /* borrowed, validated */
    const curve_clock *clock;         /* borrowed */
    curve_rand_fn rand;               /* NULL: curve_retry_default_rand */
    void *rand_ctx;
} curve_chunkreq_env;

typedef enum {
    CURVE_STEP_SEND = 0,        /* send the chunk RPC to `peer` with `timeout_ms` */
    CURVE_STEP_GET_LEADER = 1,  /* ask `peers` who leads the copyset */
    CURVE_STEP_REFRESH_MDS = 2, /* ask the MDS for the copyset's membership and leader */
    CURVE_STEP_DONE = 3,        /* complete the piece with `result` */
} curve_step_kind;

typedef struct curve_step {
    curve_step_kind kind;
    uint64_t sleep_ms;   /* wait this long before doing it (0 for DONE) */
    uint64_t timeout_ms; /* SEND: RPC timeout */
    curve_peer peer;     /* SEND: destination */
    uint32_t pool_id;    /* GET_LEADER / REFRESH_MDS: the copyset */
    uint32_t copyset_id;
    uint32_t npeers; /* GET_LEADER: whom to ask, in order */
    curve_peer peers[CURVE_COPYSET_MAX_PEERS];
    int result;       /* DONE: 0 or a negative error */
    bool zero_fill;   /* DONE: a read of a chunk never written: the data is zeros */
    bool became_slow; /* count the request as slow (set on exactly one step) */
} curve_step;

typedef struct curve_chunkreq {
    const curve_chunkreq_env *env;
    curve_retry_state rs;
    uint32_t pool_id;
    uint32_t copyset_id;
    curve_peer target;       /* destination of the last SEND */
    curve_step_kind waiting; /* the step whose result is expected next */
    bool peers_failed;       /* the last GET_LEADER found no leader */
    /* The peer whose last SEND timed out or could not connect (cs_id 0 = none) and when: for
     * rpc_timeout_ms after that, re-resolution asks only the other peers and polls them every
     * op_retry_interval_ms while they name nobody or the suspect (election under way) instead
     * of going back to it or to the MDS (whose view comes from heartbeats: the old leader). */
    curve_peer suspect;
    uint64_t suspect_ns;
} curve_chunkreq;

/* Starts a piece for copyset (pool_id, copyset_id); fills the first step. */
void curve_chunkreq_start(curve_chunkreq *r, const curve_chunkreq_env *env, curve_retry_op op,
                          uint32_t pool_id, uint32_t copyset_id, curve_step *step);

/* Result of a SEND: the reply status (0 or a chunk status / RPC code), whether the RPC timed
 * out, and the leader hint of a REDIRECTED reply (NULL or "" for none; borrowed). */
void curve_chunkreq_on_reply(curve_chunkreq *r, int status, bool timed_out, const char *leader_hint,
                             curve_step *step);

/* Result of a GET_LEADER: the leader's address (NULL when no peer knew one) and its term
 * (0 if unknown). */
void curve_chunkreq_on_leader(curve_chunkreq *r, const char *leader_addr, uint64_t term,
                              curve_step *step);

/* Result of a REFRESH_MDS: 0 when the caller stored the MDS answer in the metacache (or
 * -ESTALE, a newer one was cached already), otherwise the error (MDS unreachable, copyset
 * unknown to the MDS, ...). */
void curve_chunkreq_on_mds(curve_chunkreq *r, int rc, curve_step *step);

#endif
