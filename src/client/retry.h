/*
 * Client retry policy (DESIGN §4) as a pure state machine, plus the two helpers that go with it:
 * the unstable-chunkserver tracker and the MDS address rotor.
 *
 * Nothing here sends RPCs, sleeps or reads the system clock: time comes from a curve_clock and
 * randomness from a curve_rand_fn, both injected, so unit tests replay exact sequences. The IO
 * path drives one curve_retry_state per chunk RPC piece:
 *
 *     curve_retry_init(&st, ...);
 *     timeout = curve_retry_timeout_ms(&st);
 *     loop: send the RPC with `timeout`, then curve_retry_on_outcome(&st, &outcome, &act):
 *       DONE / ZEROS / FAIL  -> complete the piece;
 *       AGAIN                -> perform act.resolve (HINT: set leader to act.target;
 *                               PEERS: GetLeader from the copyset's peers; MDS: refresh the
 *                               copyset from the MDS). For PEERS and MDS report the result with
 *                               curve_retry_on_resolved(), which returns the next action
 *                               (possibly another resolve step). When the action's resolve is
 *                               NONE or HINT: sleep act.sleep_ms, resend with act.timeout_ms.
 *
 * Table implemented (all numbers are fields of curve_retry_opts; defaults in brackets; n is the
 * number of failed attempts of this request so far, counting the current one, so n = 1 at the
 * first retry — Curve's `retriedTimes`):
 *   OVERLOAD (or RPC-layer overload)  sleep op_retry_interval [100 ms] * 2^min(n, overload_max_pow
 *                                     [6]) +- overload_jitter_pct [10] %, capped at
 *                                     max_retry_sleep [8 s], never below op_retry_interval.
 *   RPC timeout (any attempt)         next timeout rpc_timeout [1 s] * 2^min(n, timeout_max_pow
 *                                     [3]) capped at max_rpc_timeout [8 s]; but rpc_timeout
 *                                     while the leader may have changed and
 *                                     n < min_retries_force_timeout_backoff [5]. The leader is
 *                                     re-resolved (PEERS, then MDS); no sleep (redirect_sleep
 *                                     when both fail).
 *   REDIRECTED (or NOT_LEADER)        leader hint -> HINT, no sleep (redirect_sleep if the
 *                                     previous attempt was redirected too: two peers naming each
 *                                     other must not spin); no hint -> PEERS, then MDS, else
 *                                     sleep redirect_sleep [10 ms].
 *   COPYSET_NOTEXIST                  MDS refresh, then resend without sleep the first time;
 *                                     op_retry_interval when the refresh failed or the previous
 *                                     attempt also got COPYSET_NOTEXIST (copyset being created
 *                                     or moved: do not hammer the MDS).
 *   connection-level failure          PEERS, then MDS, then sleep op_retry_interval. The
 *   (refused, reset, unreachable, ...) leader may have changed: the next timeout is rpc_timeout,
 *                                     and these failures do not count in the timeout backoff
 *                                     (n above counts only the other failures), so a request
 *                                     that spun on a dead leader during an election reaches the
 *                                     new one with a short timeout.
 *   CHUNK_NOTEXIST                    read: ZEROS; discard: DONE (already gone); write: FAIL —
 *                                     chunkservers create chunks on first write, so this reply
 *                                     to a write is a protocol violation, not a transient error
 *                                     (Curve fails it too).
 *   INVALID_REQUEST, EPOCH_TOO_OLD,   FAIL with that code.
 *   FENCED, CANCELED, SHUTDOWN, RPC
 *   BADREQ/NOSERVICE/NOMETHOD
 *   any other status                  sleep op_retry_interval [100 ms], retry.
 * Every AGAIN first checks the bounds: total_deadline [0 = unbounded] and max_attempts
 * [0 = unbounded]; past either the action is FAIL with CURVE_ERR_TIMEOUT. The sleep and the
 * next timeout are clamped to the remaining deadline. Once a request has been retrying for
 * slow_threshold [45 s], exactly one action carries became_slow = true (for the metrics).
 *
 * Thread model: a curve_retry_state belongs to one request and is used by one thread at a time.
 * curve_retry_opts is read-only after setup and may be shared. The tracker and the rotor are
 * thread-safe (each has one mutex, documented at its declaration).
 */
#ifndef CURVE_CLIENT_RETRY_H
#define CURVE_CLIENT_RETRY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/clock.h"
#include "common/config.h"

/* Longest "host:port" address handled (including the NUL). */
#define CURVE_ADDR_MAX 64

/* Returns a uniformly distributed 64-bit random number. Must be safe to call from the thread
 * that drives the retry state it was given to. */
typedef uint64_t (*curve_rand_fn)(void *ctx);

/* A default PRNG (xorshift64* seeded per thread from the clock and thread id); ctx unused. */
uint64_t curve_retry_default_rand(void *ctx);

typedef struct curve_retry_opts {
    uint64_t op_retry_interval_ms;              /* base sleep of OVERLOAD and "other" [100] */
    uint32_t overload_max_pow;                  /* cap of the OVERLOAD exponent [6] */
    uint32_t overload_jitter_pct;               /* +- jitter of the OVERLOAD sleep, 0..100 [10] */
    uint64_t max_retry_sleep_ms;                /* cap of any backoff sleep [8000] */
    uint64_t rpc_timeout_ms;                    /* first RPC timeout [1000] */
    uint32_t timeout_max_pow;                   /* cap of the timeout exponent [3] */
    uint64_t max_rpc_timeout_ms;                /* cap of the RPC timeout [8000] */
    uint32_t min_retries_force_timeout_backoff; /* n from which backoff applies anyway [5] */
    uint64_t redirect_sleep_ms;                 /* sleep when no leader could be found [10] */
    uint64_t total_deadline_ms;                 /* per request; 0 = unbounded [0] */
    uint32_t max_attempts;                      /* per request; 0 = unbounded [0] */
    uint64_t slow_threshold_ms;          /* request counted slow after this; 0 = never [45000] */
    uint32_t unstable_timeout_threshold; /* consecutive timeouts -> chunkserver unstable [10] */
    uint32_t mds_failures_before_switch; /* failures on one MDS before trying the next [2] */
    uint64_t mds_retry_interval_ms;      /* sleep after every MDS address failed in turn [100] */
} curve_retry_opts;

/* Fills `o` with the DESIGN §4 defaults listed above. */
void curve_retry_opts_default(curve_retry_opts *o);

/* Checks internal consistency (non-zero bases, caps >= bases, pct <= 100, exponents <= 20).
 * Returns 0 or CURVE_ERR_CONFIG with a message naming the field in `err`. */
int curve_retry_opts_validate(const curve_retry_opts *o, char *err, size_t errlen);

/* The configuration keys ("client.retry.*") with the defaults above, for curve_config_new().
 * The table is static; `*n` receives its length. */
const curve_cfg_def *curve_retry_cfg_defs(size_t *n);

/* Reads every key of curve_retry_cfg_defs() from `cfg` (whose schema must include them) into
 * `o` and validates. Returns 0 or CURVE_ERR_CONFIG with `err` filled. */
int curve_retry_opts_from_config(const curve_config *cfg, curve_retry_opts *o, char *err,
                                 size_t errlen);

typedef enum {
    CURVE_RETRY_OP_READ = 0,
    CURVE_RETRY_OP_WRITE = 1,
    CURVE_RETRY_OP_DISCARD = 2,
} curve_retry_op;

/* What happened to one attempt. */
typedef struct curve_rpc_outcome {
    int status;              /* 0, a chunk status (CURVE_ERR_*), an RPC-layer code or -errno;
                                CURVE_ERR_TIMEOUT / -ETIMEDOUT count as timed_out */
    bool timed_out;          /* the attempt ran into its RPC timeout */
    const char *leader_hint; /* REDIRECTED: the leader "host:port" from the reply; NULL or ""
                                when none. Borrowed; copied into the action. */
    bool leader_may_change;  /* the copyset's leader is on an unstable chunkserver (metacache) */
} curve_rpc_outcome;

typedef enum {
    CURVE_RETRY_DONE = 0,  /* success: complete the piece */
    CURVE_RETRY_ZEROS = 1, /* complete the piece; a read fills its buffer with zeros */
    CURVE_RETRY_FAIL = 2,  /* complete the piece with action.err */
    CURVE_RETRY_AGAIN = 3, /* resolve, sleep, send again */
} curve_retry_verdict;

typedef enum {
    CURVE_RESOLVE_NONE = 0,  /* send to the cached leader */
    CURVE_RESOLVE_HINT = 1,  /* make action.target the cached leader, send there */
    CURVE_RESOLVE_PEERS = 2, /* ask the copyset's peers who leads (GetLeader); report back */
    CURVE_RESOLVE_MDS = 3,   /* refresh membership and leader from the MDS; report back */
} curve_retry_resolve;

typedef struct curve_retry_action {
    curve_retry_verdict verdict;
    int err;                     /* FAIL: the error to complete with */
    curve_retry_resolve resolve; /* AGAIN: what to do before sending */
    uint64_t sleep_ms;           /* AGAIN: wait this long before sending (after resolving) */
    uint64_t timeout_ms;         /* AGAIN: RPC timeout of the next attempt */
    char target[CURVE_ADDR_MAX]; /* AGAIN + HINT: the leader address to use */
    bool became_slow;            /* this request just crossed slow_threshold (reported once) */
} curve_retry_action;

typedef struct curve_retry_state {
    const curve_retry_opts *opts; /* borrowed */
    const curve_clock *clock;     /* borrowed */
    curve_rand_fn rand;
    void *rand_ctx;
    curve_retry_op op;
    uint64_t start_ns;   /* when the request started */
    uint32_t retries;    /* n: failed attempts so far */
    uint32_t conn_fails; /* of them, connection-level failures (not in the timeout backoff) */
    uint64_t timeout_ms; /* RPC timeout of the next attempt */
    int last_status;     /* status of the last failed attempt (for error messages) */
    int cause;           /* status that started the current resolve chain */
    uint32_t same_cause; /* consecutive earlier failures with the same status as `cause` */
    bool slow;           /* became_slow already reported */
} curve_retry_state;

/* Starts the retry state of one request at the current time of `clock`. All pointers are
 * borrowed and must outlive the state; `rand` NULL selects curve_retry_default_rand. `opts`
 * must pass curve_retry_opts_validate (asserted). */
void curve_retry_init(curve_retry_state *st, const curve_retry_opts *opts, const curve_clock *clock,
                      curve_rand_fn rand, void *rand_ctx, curve_retry_op op);

/* The RPC timeout to use for the next attempt (rpc_timeout_ms for the first one). */
uint64_t curve_retry_timeout_ms(const curve_retry_state *st);

/* Feeds the outcome of one attempt; fills `act` with what to do next. */
void curve_retry_on_outcome(curve_retry_state *st, const curve_rpc_outcome *o,
                            curve_retry_action *act);

/* Reports the result of a PEERS or MDS resolve step asked for by the previous action (or, before
 * the first attempt, one the caller needed because the cache had no leader); fills
 * `act` with the next action: on success, send again (resolve NONE, sleep 0); when PEERS failed,
 * try the MDS; when the MDS failed, sleep (redirect_sleep_ms after REDIRECTED or a timeout,
 * op_retry_interval_ms otherwise) and send to whatever is cached. */
void curve_retry_on_resolved(curve_retry_state *st, curve_retry_resolve step, bool ok,
                             curve_retry_action *act);

/* The leader re-resolution after a failure says the leader has changed (it named another one)
 * or may be changing: the next attempt uses rpc_timeout_ms again, while fewer than
 * min_retries_force_timeout_backoff failures count in the backoff. Call it before
 * curve_retry_on_resolved() for that resolve step. Same thread rules as the state. */
void curve_retry_leader_changed(curve_retry_state *st);

/* The peers asked after a timeout or a refused connection named no leader, or the very
 * chunkserver that failed (Raft followers name their leader until an election timeout passes
 * without hearing from it, then nobody until a new one wins): ask them again after `sleep_ms`
 * instead of going back to the suspect. Does not count as a failed attempt; the next RPC uses
 * rpc_timeout_ms (same rule as curve_retry_leader_changed); the deadline applies. `act` is
 * AGAIN with resolve PEERS (or FAIL past the bounds). */
void curve_retry_poll_peers(curve_retry_state *st, uint64_t sleep_ms, curve_retry_action *act);

/* Whether `status` ends a request at once (never retried): INVALID_REQUEST, EPOCH_TOO_OLD, ... */
bool curve_retry_status_is_fatal(int status);

/*
 * Unstable-chunkserver tracker: counts consecutive timed-out RPCs per chunkserver. The
 * threshold-th consecutive timeout marks the chunkserver unstable (the caller then tells the
 * metacache that the leaders it hosts may have changed); a success resets the count and clears
 * the mark. Holds at most CURVE_UNSTABLE_MAX_CS chunkservers; timeouts of others are not
 * tracked (logged once).
 */
#define CURVE_UNSTABLE_MAX_CS 4096

typedef struct curve_unstable_slot {
    uint32_t cs_id; /* 0 = free */
    uint32_t consecutive_timeouts;
    bool unstable;
} curve_unstable_slot;

typedef struct curve_unstable_tracker {
    pthread_mutex_t lock;                             /* protects slots[], used, full_logged */
    curve_unstable_slot slots[CURVE_UNSTABLE_MAX_CS]; /* open addressing, never deleted */
    uint32_t used;
    uint32_t threshold;
    bool full_logged;
} curve_unstable_tracker;

/* threshold >= 1. The tracker is caller-owned memory (about 48 KiB). Returns 0 or -EINVAL. */
int curve_unstable_init(curve_unstable_tracker *t, uint32_t threshold);
void curve_unstable_destroy(curve_unstable_tracker *t);
/* Records a timeout to `cs_id` (!= 0). Returns true exactly when this timeout makes the
 * chunkserver unstable (the threshold-th consecutive one). Thread-safe. */
bool curve_unstable_on_timeout(curve_unstable_tracker *t, uint32_t cs_id);
/* Records a reply (any status: the chunkserver answered). Thread-safe. */
void curve_unstable_on_success(curve_unstable_tracker *t, uint32_t cs_id);
bool curve_unstable_is_unstable(curve_unstable_tracker *t, uint32_t cs_id);
uint32_t curve_unstable_timeouts(curve_unstable_tracker *t, uint32_t cs_id);

/*
 * MDS address rotor: the MDS client sends to the current address; after
 * mds_failures_before_switch consecutive failures on it (or at once when it answered "not
 * leader") it moves to the next address in configured order, wrapping around. When every
 * address has been left once without any success in between, the failure also asks for a sleep
 * of mds_retry_interval_ms before the next try.
 */
#define CURVE_MDS_ADDRS_MAX 16

typedef struct curve_mds_rotor {
    pthread_mutex_t lock;                            /* protects cur, fails, switches */
    char addrs[CURVE_MDS_ADDRS_MAX][CURVE_ADDR_MAX]; /* immutable after init */
    uint32_t n;
    uint32_t cur;      /* index in use */
    uint32_t fails;    /* consecutive failures on addrs[cur] */
    uint32_t switches; /* switches since the last success */
    uint32_t switch_after;
    uint64_t retry_interval_ms;
} curve_mds_rotor;

/* Parses `list` ("host:port,host:port", spaces ignored, 1..CURVE_MDS_ADDRS_MAX entries, ports
 * 1..65535). Returns 0, or -EINVAL with a message naming the bad entry in `err` (then `r` holds
 * nothing; curve_mds_rotor_destroy on it is a no-op). */
int curve_mds_rotor_init(curve_mds_rotor *r, const char *list, uint32_t switch_after,
                         uint64_t retry_interval_ms, char *err, size_t errlen);
void curve_mds_rotor_destroy(curve_mds_rotor *r);
/* Copies the current address into `out` (>= CURVE_ADDR_MAX bytes); returns its index. */
uint32_t curve_mds_rotor_current(curve_mds_rotor *r, char *out, size_t outlen);
/* A call to addrs[idx] succeeded. */
void curve_mds_rotor_on_success(curve_mds_rotor *r, uint32_t idx);
/* A call to addrs[idx] failed (`not_leader`: it answered that it is not the leader). Failures
 * reported for an index that is no longer current are ignored (another thread already moved
 * on). Returns the index to try next and sets *sleep_ms (0 or retry_interval_ms). */
uint32_t curve_mds_rotor_on_failure(curve_mds_rotor *r, uint32_t idx, bool not_leader,
                                    uint64_t *sleep_ms);

#endif
