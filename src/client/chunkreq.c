/* One chunk RPC piece: retry policy + metadata cache + unstable tracker (chunkreq.h). */
#include "client/chunkreq.h"

#include <errno.h>
#include <string.h>

#include "common/assert.h"
#include "curve/errors.h"

static void step_mds(curve_chunkreq *r, uint64_t sleep_ms, curve_step *s)
{
    s->kind = CURVE_STEP_REFRESH_MDS;
    s->sleep_ms = sleep_ms;
    s->pool_id = r->pool_id;
    s->copyset_id = r->copyset_id;
    r->waiting = CURVE_STEP_REFRESH_MDS;
}

/* Whether the suspect's window is open: it failed less than rpc_timeout_ms ago. */
static bool suspect_active(const curve_chunkreq *r)
{
    if (r->suspect.addr[0] == '\0')
        return false;
    uint64_t now = curve_clock_mono_ns(r->env->clock);
    uint64_t win_ns = r->env->opts->rpc_timeout_ms * 1000000u;
    return now < r->suspect_ns + win_ns;
}

static void step_peers(curve_chunkreq *r, uint64_t sleep_ms, curve_step *s)
{
    curve_copyset_info ci;
    if (curve_metacache_get_copyset(r->env->mc, r->pool_id, r->copyset_id, &ci) != 0) {
        step_mds(r, sleep_ms, s); /* no peers known: only the MDS can tell */
        return;
    }
    s->kind = CURVE_STEP_GET_LEADER;
    s->sleep_ms = sleep_ms;
    s->pool_id = r->pool_id;
    s->copyset_id = r->copyset_id;
    /* The chunkserver the last attempt went to is asked last: after it failed it is the one
     * least likely to answer (a stopped leader would cost a whole GetLeader timeout first). */
    s->npeers = 0;
    int last = -1;
    for (uint32_t i = 0; i < ci.npeers; i++) {
        if (last < 0 && r->target.addr[0] && strcmp(ci.peers[i].addr, r->target.addr) == 0)
            last = (int)i;
        else
            s->peers[s->npeers++] = ci.peers[i];
    }
    /* Within the suspect's window it is not asked at all while others can be: a hung or cut
     * off chunkserver costs a whole GetLeader timeout and, if alive, names itself. */
    bool skip = last >= 0 && s->npeers > 0 && suspect_active(r) &&
                strcmp(r->suspect.addr, ci.peers[last].addr) == 0;
    if (last >= 0 && !skip)
        s->peers[s->npeers++] = ci.peers[last];
    CURVE_ASSERT(s->npeers == ci.npeers || (skip && s->npeers + 1 == ci.npeers));
    r->waiting = CURVE_STEP_GET_LEADER;
}

/* Sends to the cached leader, or finds it first when the cache has none. */
static void step_send(curve_chunkreq *r, uint64_t sleep_ms, uint64_t timeout_ms, curve_step *s)
{
    curve_peer p;
    int rc = curve_metacache_get_leader(r->env->mc, r->pool_id, r->copyset_id, &p, NULL);
    if (rc == -EAGAIN) {
        step_peers(r, sleep_ms, s);
        return;
    }
    if (rc != 0) {
        step_mds(r, sleep_ms, s);
        return;
    }
    s->kind = CURVE_STEP_SEND;
    s->sleep_ms = sleep_ms;
    s->timeout_ms = timeout_ms;
    s->peer = p;
    r->target = p;
    r->waiting = CURVE_STEP_SEND;
}

/* After a successful resolve: when the cached leader is not where the failed attempt went, the
 * leader has changed; when the peers still name a leader that just timed out, it is about to be
 * replaced (Raft followers name only a leader they heard from within an election timeout) or
 * merely slow. Either way the next attempt starts with a short timeout again (DESIGN §4: "back
 * to 1 s while the leader may have changed", bounded by min_retries_force_timeout_backoff). */
static void note_leader_change(curve_chunkreq *r, bool peers)
{
    curve_peer p;
    if (curve_metacache_get_leader(r->env->mc, r->pool_id, r->copyset_id, &p, NULL) != 0)
        return;
    if (strcmp(p.addr, r->target.addr) != 0 || (peers && r->rs.last_status == CURVE_ERR_TIMEOUT))
        curve_retry_leader_changed(&r->rs);
}

static void from_action(curve_chunkreq *r, const curve_retry_action *a, curve_step *s)
{
    memset(s, 0, sizeof(*s));
    s->became_slow = a->became_slow;
    switch (a->verdict) {
    case CURVE_RETRY_DONE:
    case CURVE_RETRY_ZEROS:
    case CURVE_RETRY_FAIL:
        s->kind = CURVE_STEP_DONE;
        s->result = a->verdict == CURVE_RETRY_FAIL ? a->err : 0;
        s->zero_fill = a->verdict == CURVE_RETRY_ZEROS;
        r->waiting = CURVE_STEP_DONE;
        return;
    case CURVE_RETRY_AGAIN:
        break;
    }
    switch (a->resolve) {
    case CURVE_RESOLVE_PEERS:
        step_peers(r, a->sleep_ms, s);
        return;
    case CURVE_RESOLVE_MDS:
        step_mds(r, a->sleep_ms, s);
        return;
    case CURVE_RESOLVE_HINT:
        /* a hint outside the cached membership means the membership is stale */
        if (curve_metacache_set_leader(r->env->mc, r->pool_id, r->copyset_id, a->target, 0) != 0) {
            step_mds(r, a->sleep_ms, s);
            return;
        }
        step_send(r, a->sleep_ms, a->timeout_ms, s);
        return;
    case CURVE_RESOLVE_NONE:
        step_send(r, a->sleep_ms, a->timeout_ms, s);
        return;
    }
    CURVE_UNREACHABLE();
}

void curve_chunkreq_start(curve_chunkreq *r, const curve_chunkreq_env *env, curve_retry_op op,
                          uint32_t pool_id, uint32_t copyset_id, curve_step *step)
{
    CURVE_ASSERT(r != NULL && env != NULL && env->mc != NULL && step != NULL);
    memset(r, 0, sizeof(*r));
    r->env = env;
    r->pool_id = pool_id;
    r->copyset_id = copyset_id;
    curve_retry_init(&r->rs, env->opts, env->clock, env->rand, env->rand_ctx, op);
    memset(step, 0, sizeof(*step));
    step_send(r, 0, curve_retry_timeout_ms(&r->rs), step);
}

/* A reply in the chunk-status band (or success) proves the chunkserver is reachable. */
static bool is_reply(int status)
{
    return status == 0 || (status <= CURVE_ERR_REDIRECTED && status >= CURVE_ERR_EPOCH_TOO_OLD);
}

void curve_chunkreq_on_reply(curve_chunkreq *r, int status, bool timed_out, const char *leader_hint,
                             curve_step *step)
{
    CURVE_ASSERT(r != NULL && step != NULL && r->waiting == CURVE_STEP_SEND);
    const curve_chunkreq_env *env = r->env;
    bool to = timed_out || status == CURVE_ERR_TIMEOUT || status == -ETIMEDOUT;
    if (env->unstable && r->target.cs_id != 0) {
        if (to) {
            if (curve_unstable_on_timeout(env->unstable, r->target.cs_id))
                curve_metacache_mark_cs_unstable(env->mc, r->target.cs_id);
        } else if (is_reply(status)) {
            curve_unstable_on_success(env->unstable, r->target.cs_id);
        }
    }
    curve_peer p;
    bool may_change = false;
    if (curve_metacache_get_leader(env->mc, r->pool_id, r->copyset_id, &p, &may_change) != 0)
        may_change = false;
    curve_rpc_outcome o = {.status = status,
                           .timed_out = to,
                           .leader_hint = leader_hint,
                           .leader_may_change = may_change};
    uint32_t conn_before = r->rs.conn_fails;
    curve_retry_action a;
    curve_retry_on_outcome(&r->rs, &o, &a);
    if (to || r->rs.conn_fails != conn_before) {
        /* timed out or unreachable: the leader may be gone (hung, killed, cut off) */
        r->suspect = r->target;
        r->suspect_ns = curve_clock_mono_ns(env->clock);
    } else {
        memset(&r->suspect, 0, sizeof(r->suspect));
    }
    from_action(r, &a, step);
}

void curve_chunkreq_on_leader(curve_chunkreq *r, const char *leader_addr, uint64_t term,
                              curve_step *step)
{
    CURVE_ASSERT(r != NULL && step != NULL && r->waiting == CURVE_STEP_GET_LEADER);
    bool ok = false;
    if (leader_addr && leader_addr[0]) {
        int rc =
            curve_metacache_set_leader(r->env->mc, r->pool_id, r->copyset_id, leader_addr, term);
        ok = rc == 0 || rc == -ESTALE; /* -ESTALE: a newer leader is cached already */
    }
    curve_retry_action a;
    bool same = leader_addr && leader_addr[0] && strcmp(leader_addr, r->suspect.addr) == 0;
    if ((!ok || same) && suspect_active(r)) {
        /* The others name nobody (pre-vote / election under way) or still the suspect (their
         * election timeout has not passed yet): a new leader is probably moments away. Ask
         * them again shortly rather than wait on the suspect or believe the MDS's older view;
         * after the window the suspect gets its turn again with the base timeout. */
        r->peers_failed = false;
        curve_retry_poll_peers(&r->rs, r->env->opts->op_retry_interval_ms, &a);
        from_action(r, &a, step);
        return;
    }
    r->peers_failed = !ok;
    if (ok)
        note_leader_change(r, true);
    curve_retry_on_resolved(&r->rs, CURVE_RESOLVE_PEERS, ok, &a);
    from_action(r, &a, step);
}

void curve_chunkreq_on_mds(curve_chunkreq *r, int rc, curve_step *step)
{
    CURVE_ASSERT(r != NULL && step != NULL && r->waiting == CURVE_STEP_REFRESH_MDS);
    bool ok = rc == 0 || rc == -ESTALE;
    if (ok) {
        curve_peer p;
        int lr = curve_metacache_get_leader(r->env->mc, r->pool_id, r->copyset_id, &p, NULL);
        if (lr == -EAGAIN && !r->peers_failed) {
            /* membership without a leader: the peers know who leads */
            memset(step, 0, sizeof(*step));
            step_peers(r, 0, step);
            return;
        }
        /* no leader anywhere (election in progress), or the MDS did not know the copyset */
        ok = lr == 0;
        if (ok)
            note_leader_change(r, false);
    }
    curve_retry_action a;
    curve_retry_on_resolved(&r->rs, CURVE_RESOLVE_MDS, ok, &a);
    if (ok)
        r->peers_failed = false;
    from_action(r, &a, step);
}
