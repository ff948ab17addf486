/* Heartbeat processing and chunkserver state transitions: see heartbeat.h, docs/mds.md. */
#include "mds/heartbeat.h"

#include <errno.h>
#include <string.h>

#include "common/assert.h"
#include "curve/errors.h"

void mds_hb_cfg_default(mds_hb_cfg *cfg)
{
    cfg->unstable_ms = 30 * 1000;
    cfg->offline_ms = 30 * 60 * 1000;
    cfg->recycle_grace_ms = 60 * 1000;
}

int mds_hb_cfg_check(const mds_hb_cfg *cfg)
{
    return cfg->unstable_ms > 0 && cfg->unstable_ms < cfg->offline_ms ? 0 : -EINVAL;
}

#define DAY_MS (24ll * 3600 * 1000)

const curve_cfg_def mds_hb_cfg_defs[] = {
    {"mds.heartbeat.unstable_ms", CURVE_CFG_DURATION_MS, "30s", 1, DAY_MS,
     "a chunkserver without heartbeat for this long is unstable"},
    {"mds.heartbeat.offline_ms", CURVE_CFG_DURATION_MS, "30m", 1, 30 * DAY_MS,
     "a chunkserver without heartbeat for this long is offline (recovery starts)"},
    {"mds.heartbeat.recycle_grace_ms", CURVE_CFG_DURATION_MS, "60s", 1, DAY_MS,
     "a removed replica is recycled once its copyset's membership is settled this long"},
};
const size_t mds_hb_cfg_ndefs = CURVE_ARRAY_SIZE(mds_hb_cfg_defs);

int mds_hb_cfg_from_config(const curve_config *c, mds_hb_cfg *out, char *err, size_t errlen)
{
    out->unstable_ms = (uint64_t)curve_config_duration_ms(c, "mds.heartbeat.unstable_ms");
    out->offline_ms = (uint64_t)curve_config_duration_ms(c, "mds.heartbeat.offline_ms");
    out->recycle_grace_ms =
        (uint64_t)curve_config_duration_ms(c, "mds.heartbeat.recycle_grace_ms");
    if (mds_hb_cfg_check(out) != 0) {
        mds__errf(err, errlen, "mds.heartbeat.unstable_ms must be below mds.heartbeat.offline_ms");
        return CURVE_ERR_CONFIG;
    }
    return 0;
}

/* Peers well-formed: 1..MAX, distinct, known chunkservers; leader 0 or a peer. */
static bool entry_valid(const mds_topology *t, const mds_hb_copyset *e)
{
    if (e->npeers == 0 || e->npeers > MDS_MAX_PEERS)
        return false;
    bool leader_ok = e->leader == 0;
    for (uint32_t i = 0; i < e->npeers; i++) {
        if (e->peers[i] == 0 || mds_topo_cs(t, e->peers[i]) == NULL)
            return false;
        for (uint32_t k = 0; k < i; k++)
            if (e->peers[k] == e->peers[i])
                return false;
        if (e->peers[i] == e->leader)
            leader_ok = true;
    }
    return leader_ok;
}

static bool same_peers(const mds_copyset *c, const mds_hb_copyset *e)
{
    if (c->npeers != e->npeers)
        return false;
    for (uint32_t i = 0; i < e->npeers; i++)
        if (!mds_copyset_has_peer(c, e->peers[i]))
            return false;
    return true;
}

static void note_gc(mds_hb_result *res, uint32_t pool_id, uint32_t copyset_id, uint64_t epoch)
{
    if (res->ngc == MDS_HB_MAX_GC)
        return; /* the rest is listed by a later heartbeat */
    res->gc[res->ngc].pool_id = pool_id;
    res->gc[res->ngc].copyset_id = copyset_id;
    res->gc[res->ngc].epoch = epoch;
    res->ngc++;
}

static void note_changed(mds_hb_result *res, const mds_copyset *c)
{
    if (res->nchanged > 0 && res->changed[res->nchanged - 1].pool_id == c->pool_id &&
        res->changed[res->nchanged - 1].copyset_id == c->id)
        return;
    if (res->nchanged == MDS_HB_MAX_CHANGED) {
        res->changed_overflow = true;
        return;
    }
    res->changed[res->nchanged].pool_id = c->pool_id;
    res->changed[res->nchanged].copyset_id = c->id;
    res->nchanged++;
}

/* Applies one copyset entry from chunkserver `reporter`; returns true if the stored view
 * changed. */
static bool apply_entry(mds_topology *t, const mds_hb_cfg *cfg, uint32_t reporter,
                        const mds_hb_copyset *e, uint64_t now_ms, mds_hb_result *res)
{
    mds_copyset *c = mds_topo_copyset(t, e->pool_id, e->copyset_id);
    if (c == NULL) {
        res->unknown++;
        note_gc(res, e->pool_id, e->copyset_id, 0); /* listed, never recycled: ask an operator */
        return false;
    }
    if (!entry_valid(t, e)) {
        res->invalid++;
        return false;
    }
    if (c->settled_ms == 0)
        c->settled_ms = now_ms; /* first sight since load: the grace starts now */
    if (e->epoch < c->epoch) {
        res->stale++;
        if (!mds_copyset_has_peer(c, reporter)) {
            /* removed from the group meanwhile: recyclable once the membership settled */
            if (now_ms - c->settled_ms >= cfg->recycle_grace_ms)
                note_gc(res, e->pool_id, e->copyset_id, c->epoch);
            else
                res->gc_waiting++;
        }
        return false;
    }
    bool changed = false;
    if (e->epoch > c->epoch) {
        c->settled_ms = now_ms;
        c->epoch = e->epoch;
        c->npeers = e->npeers;
        memset(c->peers, 0, sizeof(c->peers));
        memcpy(c->peers, e->peers, e->npeers * sizeof(uint32_t));
        if (c->leader != 0 && !mds_copyset_has_peer(c, c->leader))
            c->leader = 0; /* the old leader left the group */
        changed = true;
    } else if (!same_peers(c, e)) {
        res->conflicts++;
        return false;
    }
    res->accepted++;
    c->last_update_ms = now_ms;
    if (e->leader != 0) {
        if (e->term > c->term || (e->term == c->term && c->leader == 0)) {
            if (c->leader != e->leader || c->term != e->term)
                res->leader_updates++;
            c->leader = e->leader;
            c->term = e->term;
            changed = true;
        } else if (e->term == c->term && e->leader != c->leader) {
            res->conflicts++; /* two leaders in one term: Raft forbids it; keep ours */
        }
    }
    CURVE_ASSERT(c->leader == 0 || mds_copyset_has_peer(c, c->leader));
    return changed;
}

/* The leader reports that the change it ran failed: fail the matching operator now rather than
 * at its deadline, so the scheduler can try another target. */
static int change_failed(mds_optable *ops, const mds_copyset *c, const mds_hb_copyset *e,
                         uint64_t now_ms, mds_op_event *ev)
{
    const mds_operator *op = mds_optable_find(ops, c->pool_id, c->id);
    if (op == NULL || (uint32_t)op->type != e->change_type ||
        (op->type == MDS_OP_REMOVE_PEER ? op->old_peer : op->new_peer) != e->change_peer)
        return 0;
    ev->op = *op;
    ev->outcome = MDS_OP_FAILED;
    (void)mds_optable_backoff(ops, c->pool_id, c->id, now_ms,
                              now_ms + (op->deadline_ms - op->created_ms));
    int rc = mds_optable_remove(ops, c->pool_id, c->id);
    CURVE_ASSERT(rc == 0);
    return 1;
}

int mds_hb_process(mds_topology *t, mds_optable *ops, const mds_hb_cfg *cfg,
                   const mds_hb_report *r, uint64_t now_ms, mds_hb_result *res, char *err,
                   size_t errlen)
{
    mds_hb_cfg defaults;
    if (cfg == NULL) {
        mds_hb_cfg_default(&defaults);
        cfg = &defaults;
    }
    memset(res, 0, sizeof(*res));
    mds_chunkserver *cs = mds_topo_cs(t, r->cs_id);
    if (cs == NULL) {
        mds__errf(err, errlen, "heartbeat: unknown chunkserver %u", r->cs_id);
        return CURVE_ERR_NOT_FOUND;
    }
    if (r->token == NULL || strcmp(r->token, cs->token) != 0) {
        mds__errf(err, errlen, "heartbeat: bad token for chunkserver %u", r->cs_id);
        return CURVE_ERR_PERMISSION;
    }
    if (cs->state == MDS_CS_RETIRED) {
        mds__errf(err, errlen, "heartbeat: chunkserver %u is retired", r->cs_id);
        return CURVE_ERR_FENCED;
    }
    if (r->used > r->capacity) {
        mds__errf(err, errlen, "heartbeat: chunkserver %u reports used %llu > capacity %llu",
                  r->cs_id, (unsigned long long)r->used, (unsigned long long)r->capacity);
        return -EINVAL;
    }
    if (r->host != NULL && (strcmp(r->host, cs->host) != 0 || r->port != cs->port)) {
        mds__errf(err, errlen, "heartbeat: chunkserver %u registered as %s:%u, not %.64s:%u",
                  r->cs_id, cs->host, cs->port, r->host, r->port);
        return -EINVAL;
    }
    if (r->ncopysets > MDS_HB_MAX_COPYSETS || (r->ncopysets > 0 && r->copysets == NULL)) {
        mds__errf(err, errlen, "heartbeat: chunkserver %u reports %zu copysets (max %d)",
                  r->cs_id, r->ncopysets, MDS_HB_MAX_COPYSETS);
        return -EINVAL;
    }
    /* A failed disk serves nothing: offline at once so that recovery starts. */
    cs->state = r->disk_failed ? MDS_CS_OFFLINE : MDS_CS_ONLINE;
    cs->last_hb_ms = now_ms;
    cs->capacity = r->capacity;
    cs->used = r->used;
    uint32_t cs_id = r->cs_id;
    cs = NULL; /* no inserts below, but do not keep the pointer around */

    for (size_t i = 0; i < r->ncopysets; i++) {
        const mds_hb_copyset *e = &r->copysets[i];
        mds_copyset *c = mds_topo_copyset(t, e->pool_id, e->copyset_id);
        /* A membership change in flight (an operator, or one a leader reports running or just
         * failed) restarts the grace before removed replicas are recycled. */
        if (c != NULL &&
            (mds_optable_find(ops, c->pool_id, c->id) != NULL || e->change_type != 0))
            c->settled_ms = now_ms;
        if (apply_entry(t, cfg, cs_id, e, now_ms, res))
            note_changed(res, c);
        if (c == NULL)
            continue;
        mds_op_event ev;
        int done = mds_optable_observe(ops, c, &ev);
        if (done == 0 && e->change_failed && c->leader == cs_id)
            done = change_failed(ops, c, e, now_ms, &ev);
        if (done == 1 && res->nevents < MDS_HB_MAX_EVENTS)
            res->events[res->nevents++] = ev;
    }
    res->nops = mds_optable_for_leader(ops, t, cs_id, res->ops, MDS_HB_MAX_REPLY_OPS);
    return 0;
}

void mds_hb_reset_all(mds_topology *t, uint64_t now_ms)
{
    for (size_t i = 0; i < t->css.n; i++)
        t->css.v[i].last_hb_ms = now_ms;
}

size_t mds_hb_tick(mds_topology *t, const mds_hb_cfg *cfg, uint64_t now_ms,
                   mds_hb_transition *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < t->css.n; i++) {
        mds_chunkserver *c = &t->css.v[i];
        if (c->state == MDS_CS_RETIRED)
            continue;
        uint64_t idle = now_ms > c->last_hb_ms ? now_ms - c->last_hb_ms : 0;
        mds_cs_state want = idle >= cfg->offline_ms    ? MDS_CS_OFFLINE
                            : idle >= cfg->unstable_ms ? MDS_CS_UNSTABLE
                                                       : MDS_CS_ONLINE;
        /* Only a heartbeat brings a chunkserver back (mds_hb_process); time only degrades. */
        if (want <= c->state)
            continue;
        if (n < max) {
            out[n].cs_id = c->id;
            out[n].from = c->state;
            out[n].to = want;
        }
        n++;
        c->state = want;
    }
    return n;
}
