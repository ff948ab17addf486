/* Client retry policy, unstable-chunkserver tracker, MDS address rotor (retry.h, DESIGN §4). */
#include "client/retry.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/assert.h"
#include "common/log.h"
#include "curve/errors.h"

/* Largest exponent accepted for the backoffs (keeps base << pow far from overflow). */
#define RETRY_MAX_POW 20
/* Largest base interval / timeout accepted in the options: one hour. */
#define RETRY_MAX_MS (3600u * 1000u)

CURVE_STATIC_ASSERT((CURVE_UNSTABLE_MAX_CS & (CURVE_UNSTABLE_MAX_CS - 1)) == 0,
                    "unstable table size must be a power of two");

/* ---- options ---------------------------------------------------------------------------- */

void curve_retry_opts_default(curve_retry_opts *o)
{
    CURVE_ASSERT(o != NULL);
    *o = (curve_retry_opts){
        .op_retry_interval_ms = 100,
        .overload_max_pow = 6,
        .overload_jitter_pct = 10,
        .max_retry_sleep_ms = 8000,
        .rpc_timeout_ms = 1000,
        .timeout_max_pow = 3,
        .max_rpc_timeout_ms = 8000,
        .min_retries_force_timeout_backoff = 5,
        .redirect_sleep_ms = 10,
        .total_deadline_ms = 0,
        .max_attempts = 0,
        .slow_threshold_ms = 45000,
        .unstable_timeout_threshold = 10,
        .mds_failures_before_switch = 2,
        .mds_retry_interval_ms = 100,
    };
}

#define OPT_ERR(...)                                                                               \
    do {                                                                                           \
        if (err && errlen)                                                                         \
            snprintf(err, errlen, __VA_ARGS__);                                                    \
        return CURVE_ERR_CONFIG;                                                                   \
    } while (0)

int curve_retry_opts_validate(const curve_retry_opts *o, char *err, size_t errlen)
{
    CURVE_ASSERT(o != NULL);
    if (o->op_retry_interval_ms == 0 || o->op_retry_interval_ms > RETRY_MAX_MS)
        OPT_ERR("client.retry.op_interval_ms must be 1..%u ms", RETRY_MAX_MS);
    if (o->rpc_timeout_ms == 0 || o->rpc_timeout_ms > RETRY_MAX_MS)
        OPT_ERR("client.retry.rpc_timeout_ms must be 1..%u ms", RETRY_MAX_MS);
    if (o->max_retry_sleep_ms < o->op_retry_interval_ms)
        OPT_ERR("client.retry.max_sleep_ms (%llu) must be >= client.retry.op_interval_ms (%llu)",
                (unsigned long long)o->max_retry_sleep_ms,
                (unsigned long long)o->op_retry_interval_ms);
    if (o->max_rpc_timeout_ms < o->rpc_timeout_ms)
        OPT_ERR("client.retry.max_rpc_timeout_ms (%llu) must be >= client.retry.rpc_timeout_ms "
                "(%llu)",
                (unsigned long long)o->max_rpc_timeout_ms, (unsigned long long)o->rpc_timeout_ms);
    if (o->overload_max_pow > RETRY_MAX_POW || o->timeout_max_pow > RETRY_MAX_POW)
        OPT_ERR("client.retry.*_max_pow must be <= %d", RETRY_MAX_POW);
    if (o->overload_jitter_pct > 100)
        OPT_ERR("client.retry.overload_jitter_pct must be 0..100");
    if (o->redirect_sleep_ms > RETRY_MAX_MS)
        OPT_ERR("client.retry.redirect_sleep_ms must be <= %u ms", RETRY_MAX_MS);
    if (o->unstable_timeout_threshold == 0)
        OPT_ERR("client.retry.unstable_timeouts must be >= 1");
    if (o->mds_failures_before_switch == 0)
        OPT_ERR("client.mds.failures_before_switch must be >= 1");
    return 0;
}

static const curve_cfg_def retry_defs[] = {
    {"client.retry.op_interval_ms", CURVE_CFG_DURATION_MS, "100ms", 1, RETRY_MAX_MS,
     "sleep before retrying after OVERLOAD (base) and unclassified chunk errors"},
    {"client.retry.overload_max_pow", CURVE_CFG_INT, "6", 0, RETRY_MAX_POW,
     "OVERLOAD sleep = op_interval * 2^min(n, this)"},
    {"client.retry.overload_jitter_pct", CURVE_CFG_INT, "10", 0, 100,
     "random +- jitter of the OVERLOAD sleep, percent"},
    {"client.retry.max_sleep_ms", CURVE_CFG_DURATION_MS, "8s", 1, RETRY_MAX_MS,
     "cap of every retry sleep"},
    {"client.retry.rpc_timeout_ms", CURVE_CFG_DURATION_MS, "1s", 1, RETRY_MAX_MS,
     "RPC timeout of the first attempt to a chunkserver"},
    {"client.retry.timeout_max_pow", CURVE_CFG_INT, "3", 0, RETRY_MAX_POW,
     "RPC timeout = rpc_timeout * 2^min(n, this)"},
    {"client.retry.max_rpc_timeout_ms", CURVE_CFG_DURATION_MS, "8s", 1, RETRY_MAX_MS,
     "cap of the RPC timeout"},
    {"client.retry.force_timeout_backoff_after", CURVE_CFG_INT, "5", 0, 1000000,
     "retries after which the timeout grows even while the leader may have changed"},
    {"client.retry.redirect_sleep_ms", CURVE_CFG_DURATION_MS, "10ms", 0, RETRY_MAX_MS,
     "sleep after REDIRECTED when no leader could be found"},
    {"client.retry.total_deadline_ms", CURVE_CFG_DURATION_MS, "0", 0, INT64_MAX,
     "give up an IO after retrying this long (0 = never)"},
    {"client.retry.max_attempts", CURVE_CFG_INT, "0", 0, UINT32_MAX,
     "give up an IO after this many attempts (0 = never)"},
    {"client.retry.slow_threshold_ms", CURVE_CFG_DURATION_MS, "45s", 0, INT64_MAX,
     "count an IO as slow after retrying this long (0 = never)"},
    {"client.retry.unstable_timeouts", CURVE_CFG_INT, "10", 1, 1000000,
     "consecutive RPC timeouts that mark a chunkserver unstable"},
    {"client.mds.failures_before_switch", CURVE_CFG_INT, "2", 1, 1000000,
     "consecutive failures on one MDS address before trying the next"},
    {"client.mds.retry_interval_ms", CURVE_CFG_DURATION_MS, "100ms", 0, RETRY_MAX_MS,
     "sleep after every MDS address failed in turn"},
};

const curve_cfg_def *curve_retry_cfg_defs(size_t *n)
{
    CURVE_ASSERT(n != NULL);
    *n = CURVE_ARRAY_SIZE(retry_defs);
    return retry_defs;
}

int curve_retry_opts_from_config(const curve_config *cfg, curve_retry_opts *o, char *err,
                                 size_t errlen)
{
    CURVE_ASSERT(cfg != NULL && o != NULL);
    *o = (curve_retry_opts){
        .op_retry_interval_ms = (uint64_t)curve_config_duration_ms(cfg, retry_defs[0].key),
        .overload_max_pow = (uint32_t)curve_config_int(cfg, retry_defs[1].key),
        .overload_jitter_pct = (uint32_t)curve_config_int(cfg, retry_defs[2].key),
        .max_retry_sleep_ms = (uint64_t)curve_config_duration_ms(cfg, retry_defs[3].key),
        .rpc_timeout_ms = (uint64_t)curve_config_duration_ms(cfg, retry_defs[4].key),
        .timeout_max_pow = (uint32_t)curve_config_int(cfg, retry_defs[5].key),
        .max_rpc_timeout_ms = (uint64_t)curve_config_duration_ms(cfg, retry_defs[6].key),
        .min_retries_force_timeout_backoff = (uint32_t)curve_config_int(cfg, retry_defs[7].key),
        .redirect_sleep_ms = (uint64_t)curve_config_duration_ms(cfg, retry_defs[8].key),
        .total_deadline_ms = (uint64_t)curve_config_duration_ms(cfg, retry_defs[9].key),
        .max_attempts = (uint32_t)curve_config_int(cfg, retry_defs[10].key),
        .slow_threshold_ms = (uint64_t)curve_config_duration_ms(cfg, retry_defs[11].key),
        .unstable_timeout_threshold = (uint32_t)curve_config_int(cfg, retry_defs[12].key),
        .mds_failures_before_switch = (uint32_t)curve_config_int(cfg, retry_defs[13].key),
        .mds_retry_interval_ms = (uint64_t)curve_config_duration_ms(cfg, retry_defs[14].key),
    };
    return curve_retry_opts_validate(o, err, errlen);
}

/* ---- randomness ------------------------------------------------------------------------- */

uint64_t curve_retry_default_rand(void *ctx)
{
    static _Thread_local uint64_t s;
    if (s == 0) {
        s = curve_now_mono_ns() ^ ((uint64_t)(uintptr_t)&s << 17) ^ (uint64_t)pthread_self();
        if (s == 0)
            s = 0x9E3779B97F4A7C15ull;
    }
    /* xorshift64* (Vigna) */
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
}

/* ---- the state machine ------------------------------------------------------------------ */

static inline uint32_t min_u32(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static bool is_timeout_status(int s)
{
    return s == CURVE_ERR_TIMEOUT || s == -ETIMEDOUT;
}

static bool is_overload_status(int s)
{
    return s == CURVE_ERR_OVERLOAD || s == CURVE_ERR_RPC_OVERLOAD;
}

/* Failures that say nothing about the request but that the chunkserver could not be reached
 * or is not the leader any more: the leader must be looked up again. */
static bool is_conn_status(int s)
{
    switch (s) {
    case CURVE_ERR_RPC_CONN:
    case -ECONNREFUSED:
    case -ECONNRESET:
    case -ECONNABORTED:
    case -EHOSTUNREACH:
    case -ENETUNREACH:
    case -EHOSTDOWN:
    case -EPIPE:
    case -ENOTCONN:
        return true;
    default:
        return false;
    }
}

bool curve_retry_status_is_fatal(int s)
{
    switch (s) {
    case CURVE_ERR_INVALID_REQUEST:
    case CURVE_ERR_EPOCH_TOO_OLD:
    case CURVE_ERR_FENCED:
    case CURVE_ERR_CANCELED:
    case CURVE_ERR_SHUTDOWN:
    case CURVE_ERR_PERMISSION:
    case CURVE_ERR_RPC_BADREQ:
    case CURVE_ERR_RPC_NOSERVICE:
    case CURVE_ERR_RPC_NOMETHOD:
    case CURVE_ERR_RPC_TOOBIG:
    case -EINVAL:
        return true;
    default:
        return false;
    }
}

static uint64_t next_timeout(const curve_retry_state *st, bool leader_may_change)
{
    const curve_retry_opts *o = st->opts;
    /* Curve: while the leader may have changed, the next try probably reaches the new leader
     * quickly; a long timeout would only delay finding out. After a few retries the backoff
     * applies anyway, so a merely slow chunkserver still gets enough time. */
    /* connection-level failures waited for nothing: they do not lengthen the timeout */
    uint32_t n = st->retries - st->conn_fails;
    if (leader_may_change && n < o->min_retries_force_timeout_backoff)
        return o->rpc_timeout_ms;
    uint32_t pow = min_u32(n, o->timeout_max_pow);
    return min_u64(o->rpc_timeout_ms << pow, o->max_rpc_timeout_ms);
}

static uint64_t overload_sleep(curve_retry_state *st)
{
    const curve_retry_opts *o = st->opts;
    uint32_t pow = min_u32(st->retries, o->overload_max_pow);
    uint64_t base = o->op_retry_interval_ms << pow;
    uint64_t delta = base * o->overload_jitter_pct / 100;
    uint64_t r = st->rand(st->rand_ctx) % (2 * delta + 1);
    uint64_t s = base - delta + r;
    s = min_u64(s, o->max_retry_sleep_ms);
    /* as Curve: never below the base interval, so jitter cannot make the first sleep shorter */
    return s < o->op_retry_interval_ms ? o->op_retry_interval_ms : s;
}

void curve_retry_init(curve_retry_state *st, const curve_retry_opts *opts, const curve_clock *clock,
                      curve_rand_fn rand, void *rand_ctx, curve_retry_op op)
{
    CURVE_ASSERT(st != NULL && opts != NULL && clock != NULL);
    CURVE_ASSERT(op == CURVE_RETRY_OP_READ || op == CURVE_RETRY_OP_WRITE ||
                 op == CURVE_RETRY_OP_DISCARD);
    CURVE_ASSERT(curve_retry_opts_validate(opts, NULL, 0) == 0);
    *st = (curve_retry_state){
        .opts = opts,
        .clock = clock,
        .rand = rand ? rand : curve_retry_default_rand,
        .rand_ctx = rand_ctx,
        .op = op,
        .start_ns = curve_clock_mono_ns(clock),
        .retries = 0,
        .timeout_ms = opts->rpc_timeout_ms,
    };
}

uint64_t curve_retry_timeout_ms(const curve_retry_state *st)
{
    CURVE_ASSERT(st != NULL);
    return st->timeout_ms;
}

static uint64_t elapsed_ms(const curve_retry_state *st)
{
    uint64_t now = curve_clock_mono_ns(st->clock);
    return now > st->start_ns ? (now - st->start_ns) / 1000000u : 0;
}

static void check_slow(curve_retry_state *st, uint64_t elapsed, curve_retry_action *act)
{
    if (!st->slow && st->opts->slow_threshold_ms != 0 && elapsed >= st->opts->slow_threshold_ms) {
        st->slow = true;
        act->became_slow = true;
    }
}

static void set_fail(curve_retry_action *act, int err)
{
    act->verdict = CURVE_RETRY_FAIL;
    act->err = err;
    act->resolve = CURVE_RESOLVE_NONE;
    act->sleep_ms = 0;
    act->timeout_ms = 0;
    act->target[0] = '\0';
}

/* Applies the request bounds to an AGAIN action whose resolve and sleep are set. */
static void finish_again(curve_retry_state *st, curve_retry_action *act)
{
    const curve_retry_opts *o = st->opts;
    uint64_t el = elapsed_ms(st);
    check_slow(st, el, act);
    act->verdict = CURVE_RETRY_AGAIN;
    act->timeout_ms = st->timeout_ms;
    if (o->max_attempts != 0 && st->retries >= o->max_attempts) {
        CLOG_WARN("giving up after %u attempts, last error %s", st->retries,
                  curve_errname(st->last_status));
        set_fail(act, CURVE_ERR_TIMEOUT);
        return;
    }
    if (o->total_deadline_ms != 0) {
        uint64_t remaining = el < o->total_deadline_ms ? o->total_deadline_ms - el : 0;
        if (remaining == 0 || act->sleep_ms >= remaining) {
            CLOG_WARN("giving up after %llu ms (deadline %llu ms), last error %s",
                      (unsigned long long)el, (unsigned long long)o->total_deadline_ms,
                      curve_errname(st->last_status));
            set_fail(act, CURVE_ERR_TIMEOUT);
            return;
        }
        act->timeout_ms = min_u64(act->timeout_ms, remaining - act->sleep_ms);
    }
    CURVE_ASSERT(act->timeout_ms >= 1);
}

void curve_retry_on_outcome(curve_retry_state *st, const curve_rpc_outcome *o,
                            curve_retry_action *act)
{
    CURVE_ASSERT(st != NULL && o != NULL && act != NULL);
    memset(act, 0, sizeof(*act));
    int s = o->status;
    bool timed_out = o->timed_out || is_timeout_status(s);

    if (!timed_out) {
        if (s == 0) {
            check_slow(st, elapsed_ms(st), act);
            act->verdict = CURVE_RETRY_DONE;
            return;
        }
        if (s == CURVE_ERR_CHUNK_NOTEXIST) {
            check_slow(st, elapsed_ms(st), act);
            if (st->op == CURVE_RETRY_OP_READ)
                act->verdict = CURVE_RETRY_ZEROS;
            else if (st->op == CURVE_RETRY_OP_DISCARD)
                act->verdict = CURVE_RETRY_DONE;
            else
                set_fail(act, s);
            return;
        }
        if (curve_retry_status_is_fatal(s)) {
            check_slow(st, elapsed_ms(st), act);
            set_fail(act, s);
            return;
        }
    }

    int prev = st->retries > 0 ? st->last_status : 0;
    st->retries++;
    st->last_status = timed_out ? CURVE_ERR_TIMEOUT : s;
    st->same_cause = st->last_status == st->cause ? st->same_cause + 1 : 0;
    st->cause = st->last_status;
    /* A refused or reset connection says the leader's chunkserver is gone or restarting: the
     * leader may have changed, and the next attempt (after re-resolving through the peers)
     * probably goes elsewhere. Counting it as a timeout would leave a request that bounced off
     * a dead leader during an election with a multi-second timeout at the new one. */
    /* DISK_FAIL: the replica's disk failed and its Raft node gave up leadership (it never
     * leads again until repaired): like an unreachable leader, the next attempt goes to the
     * leader the other peers elect. */
    bool conn = !timed_out && (is_conn_status(s) || s == CURVE_ERR_DISK_FAIL);
    if (conn)
        st->conn_fails++;
    st->timeout_ms = next_timeout(st, o->leader_may_change || conn);

    if (timed_out) {
        act->resolve = CURVE_RESOLVE_PEERS;
    } else if (is_overload_status(s)) {
        act->sleep_ms = overload_sleep(st);
    } else if (s == CURVE_ERR_REDIRECTED || s == CURVE_ERR_NOT_LEADER) {
        size_t hl = o->leader_hint ? strnlen(o->leader_hint, CURVE_ADDR_MAX) : 0;
        if (hl > 0 && hl < CURVE_ADDR_MAX) {
            act->resolve = CURVE_RESOLVE_HINT;
            memcpy(act->target, o->leader_hint, hl + 1);
            /* Two peers naming each other during an election would otherwise bounce the
             * request at full speed. */
            if (prev == CURVE_ERR_REDIRECTED || prev == CURVE_ERR_NOT_LEADER)
                act->sleep_ms = st->opts->redirect_sleep_ms;
        } else {
            act->resolve = CURVE_RESOLVE_PEERS;
        }
    } else if (s == CURVE_ERR_COPYSET_NOTEXIST) {
        act->resolve = CURVE_RESOLVE_MDS;
    } else if (conn) {
        act->resolve = CURVE_RESOLVE_PEERS;
    } else {
        act->sleep_ms = st->opts->op_retry_interval_ms;
    }
    finish_again(st, act);
}

void curve_retry_leader_changed(curve_retry_state *st)
{
    CURVE_ASSERT(st != NULL);
    if (st->retries - st->conn_fails < st->opts->min_retries_force_timeout_backoff)
        st->timeout_ms = st->opts->rpc_timeout_ms;
}

void curve_retry_poll_peers(curve_retry_state *st, uint64_t sleep_ms, curve_retry_action *act)
{
    CURVE_ASSERT(st != NULL && act != NULL);
    memset(act, 0, sizeof(*act));
    /* not a failed attempt: the chain that started with the timeout goes on, n unchanged */
    if (st->retries - st->conn_fails < st->opts->min_retries_force_timeout_backoff)
        st->timeout_ms = st->opts->rpc_timeout_ms;
    act->resolve = CURVE_RESOLVE_PEERS;
    act->sleep_ms = sleep_ms;
    finish_again(st, act);
}

void curve_retry_on_resolved(curve_retry_state *st, curve_retry_resolve step, bool ok,
                             curve_retry_action *act)
{
    CURVE_ASSERT(st != NULL && act != NULL);
    CURVE_ASSERT(step == CURVE_RESOLVE_PEERS || step == CURVE_RESOLVE_MDS);
    memset(act, 0, sizeof(*act));
    const curve_retry_opts *o = st->opts;
    int c = st->cause;
    if (!ok && step == CURVE_RESOLVE_PEERS) {
        act->resolve = CURVE_RESOLVE_MDS;
    } else if (ok) {
        /* Membership came back from the MDS but the copyset was still missing the time
         * before: the copyset is being created or moved, wait instead of loading the MDS. */
        bool repeated = c == CURVE_ERR_COPYSET_NOTEXIST && st->same_cause > 0;
        act->sleep_ms = repeated ? o->op_retry_interval_ms : 0;
    } else if (c == CURVE_ERR_COPYSET_NOTEXIST) {
        act->sleep_ms = o->op_retry_interval_ms;
    } else if (c == CURVE_ERR_REDIRECTED || c == CURVE_ERR_NOT_LEADER) {
        act->sleep_ms = o->redirect_sleep_ms;
    } else if (c == CURVE_ERR_TIMEOUT) {
        /* the timeout already waited; a short pause keeps a client that cannot find any
         * leader (election in progress, MDS down) from spinning through resolve RPCs */
        act->sleep_ms = o->redirect_sleep_ms;
    } else {
        act->sleep_ms = o->op_retry_interval_ms;
    }
    finish_again(st, act);
}

/* ---- unstable chunkservers -------------------------------------------------------------- */

int curve_unstable_init(curve_unstable_tracker *t, uint32_t threshold)
{
    CURVE_ASSERT(t != NULL);
    if (threshold == 0)
        return -EINVAL;
    memset(t, 0, sizeof(*t));
    int rc = pthread_mutex_init(&t->lock, NULL);
    if (rc != 0)
        return -rc;
    t->threshold = threshold;
    return 0;
}

void curve_unstable_destroy(curve_unstable_tracker *t)
{
    if (t)
        pthread_mutex_destroy(&t->lock);
}

/* Finds the slot of `cs_id`, or claims a free one when `create`. Returns NULL if absent (or
 * the table is full). Called with t->lock held. */
static curve_unstable_slot *unstable_slot(curve_unstable_tracker *t, uint32_t cs_id, bool create)
{
    uint32_t mask = CURVE_UNSTABLE_MAX_CS - 1;
    uint32_t i = (uint32_t)(cs_id * 2654435761u) & mask;
    for (uint32_t probe = 0; probe < CURVE_UNSTABLE_MAX_CS; probe++, i = (i + 1) & mask) {
        curve_unstable_slot *s = &t->slots[i];
        if (s->cs_id == cs_id)
            return s;
        if (s->cs_id == 0) {
            if (!create)
                return NULL;
            s->cs_id = cs_id;
            t->used++;
            return s;
        }
    }
    if (create && !t->full_logged) {
        t->full_logged = true;
        CLOG_WARN("unstable tracker full (%u chunkservers): chunkserver %u not tracked",
                  CURVE_UNSTABLE_MAX_CS, cs_id);
    }
    return NULL;
}

bool curve_unstable_on_timeout(curve_unstable_tracker *t, uint32_t cs_id)
{
    CURVE_ASSERT(t != NULL && cs_id != 0);
    bool became = false;
    pthread_mutex_lock(&t->lock);
    curve_unstable_slot *s = unstable_slot(t, cs_id, true);
    if (s) {
        if (s->consecutive_timeouts < UINT32_MAX)
            s->consecutive_timeouts++;
        if (!s->unstable && s->consecutive_timeouts >= t->threshold) {
            s->unstable = true;
            became = true;
        }
    }
    pthread_mutex_unlock(&t->lock);
    if (became)
        CLOG_WARN("chunkserver %u unstable after %u consecutive RPC timeouts", cs_id, t->threshold);
    return became;
}

void curve_unstable_on_success(curve_unstable_tracker *t, uint32_t cs_id)
{
    CURVE_ASSERT(t != NULL && cs_id != 0);
    bool was = false;
    pthread_mutex_lock(&t->lock);
    curve_unstable_slot *s = unstable_slot(t, cs_id, false);
    if (s) {
        was = s->unstable;
        s->consecutive_timeouts = 0;
        s->unstable = false;
    }
    pthread_mutex_unlock(&t->lock);
    if (was)
        CLOG_INFO("chunkserver %u stable again", cs_id);
}

bool curve_unstable_is_unstable(curve_unstable_tracker *t, uint32_t cs_id)
{
    CURVE_ASSERT(t != NULL && cs_id != 0);
    pthread_mutex_lock(&t->lock);
    curve_unstable_slot *s = unstable_slot(t, cs_id, false);
    bool r = s && s->unstable;
    pthread_mutex_unlock(&t->lock);
    return r;
}

uint32_t curve_unstable_timeouts(curve_unstable_tracker *t, uint32_t cs_id)
{
    CURVE_ASSERT(t != NULL && cs_id != 0);
    pthread_mutex_lock(&t->lock);
    curve_unstable_slot *s = unstable_slot(t, cs_id, false);
    uint32_t r = s ? s->consecutive_timeouts : 0;
    pthread_mutex_unlock(&t->lock);
    return r;
}

/* ---- MDS address rotation --------------------------------------------------------------- */

/* Validates "host:port" of length len; copies it NUL-terminated into out. */
static bool parse_addr(const char *p, size_t len, char out[CURVE_ADDR_MAX])
{
    if (len == 0 || len >= CURVE_ADDR_MAX)
        return false;
    const char *colon = memrchr(p, ':', len);
    if (!colon || colon == p)
        return false;
    size_t plen = len - (size_t)(colon + 1 - p);
    if (plen == 0 || plen > 5)
        return false;
    unsigned port = 0;
    for (size_t i = 0; i < plen; i++) {
        char c = colon[1 + i];
        if (c < '0' || c > '9')
            return false;
        port = port * 10 + (unsigned)(c - '0');
    }
    if (port == 0 || port > 65535)
        return false;
    for (const char *q = p; q < colon; q++)
        if (*q == ',' || *q == ' ' || *q == '\t' || (unsigned char)*q < 0x20)
            return false;
    memcpy(out, p, len);
    out[len] = '\0';
    return true;
}

int curve_mds_rotor_init(curve_mds_rotor *r, const char *list, uint32_t switch_after,
                         uint64_t retry_interval_ms, char *err, size_t errlen)
{
    CURVE_ASSERT(r != NULL);
    memset(r, 0, sizeof(*r));
    if (!list || switch_after == 0) {
        if (err && errlen)
            snprintf(err, errlen, "MDS address list missing or failures_before_switch 0");
        return -EINVAL;
    }
    const char *p = list;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if (r->n == CURVE_MDS_ADDRS_MAX) {
            if (err && errlen)
                snprintf(err, errlen, "more than %d MDS addresses in '%.64s'", CURVE_MDS_ADDRS_MAX,
                         list);
            r->n = 0; /* a failed init leaves nothing to destroy */
            return -EINVAL;
        }
        if (!parse_addr(p, (size_t)(t - p), r->addrs[r->n])) {
            if (err && errlen)
                snprintf(err, errlen, "bad MDS address '%.*s' (want host:port)",
                         (int)((t - p) > 64 ? 64 : (t - p)), p);
            r->n = 0;
            return -EINVAL;
        }
        r->n++;
        if (*e == '\0')
            break;
        p = e + 1;
    }
    int rc = pthread_mutex_init(&r->lock, NULL);
    if (rc != 0) {
        r->n = 0;
        return -rc;
    }
    r->switch_after = switch_after;
    r->retry_interval_ms = retry_interval_ms;
    return 0;
}

void curve_mds_rotor_destroy(curve_mds_rotor *r)
{
    if (r && r->n > 0)
        pthread_mutex_destroy(&r->lock);
}

uint32_t curve_mds_rotor_current(curve_mds_rotor *r, char *out, size_t outlen)
{
    CURVE_ASSERT(r != NULL && r->n > 0);
    pthread_mutex_lock(&r->lock);
    uint32_t i = r->cur;
    pthread_mutex_unlock(&r->lock);
    if (out && outlen)
        snprintf(out, outlen, "%s", r->addrs[i]);
    return i;
}

void curve_mds_rotor_on_success(curve_mds_rotor *r, uint32_t idx)
{
    CURVE_ASSERT(r != NULL && idx < r->n);
    pthread_mutex_lock(&r->lock);
    if (idx == r->cur) {
        r->fails = 0;
        r->switches = 0;
    }
    pthread_mutex_unlock(&r->lock);
}

uint32_t curve_mds_rotor_on_failure(curve_mds_rotor *r, uint32_t idx, bool not_leader,
                                    uint64_t *sleep_ms)
{
    CURVE_ASSERT(r != NULL && idx < r->n && sleep_ms != NULL);
    *sleep_ms = 0;
    pthread_mutex_lock(&r->lock);
    if (idx == r->cur) {
        r->fails++;
        if (not_leader || r->fails >= r->switch_after) {
            r->cur = (r->cur + 1) % r->n;
            r->fails = 0;
            r->switches++;
            if (r->switches >= r->n) {
                r->switches = 0;
                *sleep_ms = r->retry_interval_ms;
            }
        }
    }
    uint32_t next = r->cur;
    pthread_mutex_unlock(&r->lock);
    return next;
}
