/* Schedulers and operators: see scheduler.h and docs/mds.md. */
#include "mds/scheduler.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/assert.h"
#include "curve/errors.h"
#include "mds/placement.h"

/* Bound on (source, copyset) attempts of one balance run, so a run that cannot find a move
 * still ends quickly on a large cluster. */
#define MDS_SCHED_BALANCE_MAX_TRIES 10000

const char *mds_op_type_name(mds_op_type t)
{
    switch (t) {
    case MDS_OP_ADD_PEER:
        return "add_peer";
    case MDS_OP_REMOVE_PEER:
        return "remove_peer";
    case MDS_OP_CHANGE_PEER:
        return "change_peer";
    case MDS_OP_TRANSFER_LEADER:
        return "transfer_leader";
    }
    return "?";
}

const char *mds_sched_kind_name(mds_sched_kind k)
{
    static const char *const names[] = {"recovery",       "replica", "copyset_balance",
                                        "leader_balance", "manual",  "slow_node"};
    return (unsigned)k < CURVE_ARRAY_SIZE(names) ? names[k] : "?";
}

const char *mds_alert_kind_name(mds_alert_kind k)
{
    switch (k) {
    case MDS_ALERT_MAJORITY_LOST:
        return "majority_lost";
    case MDS_ALERT_NO_CANDIDATE:
        return "no_candidate";
    }
    return "?";
}

void mds_sched_cfg_default(mds_sched_cfg *cfg)
{
    cfg->max_ops_per_run = 16;
    cfg->change_timeout_ms = 10 * 60 * 1000;
    cfg->transfer_timeout_ms = 10 * 1000;
    cfg->balance_range_pct = 5;
    cfg->leader_range_pct = 10;
    cfg->leader_target_fresh_ms = 0;
}

const curve_cfg_def mds_sched_cfg_defs[] = {
    {"mds.schedule.max_ops_per_run", CURVE_CFG_INT, "16", 1, 100000,
     "operators one scheduler run may create (rate limit)"},
    {"mds.schedule.change_timeout_ms", CURVE_CFG_DURATION_MS, "10m", 1000, 24ll * 3600 * 1000,
     "deadline of add/remove/change peer operators"},
    {"mds.schedule.transfer_timeout_ms", CURVE_CFG_DURATION_MS, "10s", 100, 3600 * 1000,
     "deadline of leader transfers"},
    {"mds.schedule.copyset_range_pct", CURVE_CFG_INT, "5", 1, 100,
     "copyset counts may differ from the mean by this percentage"},
    {"mds.schedule.leader_range_pct", CURVE_CFG_INT, "10", 1, 100,
     "leader counts may differ from the mean by this percentage"},
};
const size_t mds_sched_cfg_ndefs = CURVE_ARRAY_SIZE(mds_sched_cfg_defs);

int mds_sched_cfg_from_config(const curve_config *c, mds_sched_cfg *out)
{
    /* The schema's ranges were checked by the config loader. */
    out->max_ops_per_run = (uint32_t)curve_config_int(c, "mds.schedule.max_ops_per_run");
    out->change_timeout_ms =
        (uint64_t)curve_config_duration_ms(c, "mds.schedule.change_timeout_ms");
    out->transfer_timeout_ms =
        (uint64_t)curve_config_duration_ms(c, "mds.schedule.transfer_timeout_ms");
    out->balance_range_pct = (uint32_t)curve_config_int(c, "mds.schedule.copyset_range_pct");
    out->leader_range_pct = (uint32_t)curve_config_int(c, "mds.schedule.leader_range_pct");
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* operator table */

void mds_optable_init(mds_optable *o, size_t max)
{
    memset(o, 0, sizeof(*o));
    o->max = max ? max : MDS_OPTABLE_MAX_DEFAULT;
    o->next_id = 1;
}

void mds_optable_destroy(mds_optable *o)
{
    free(o->backoff);
    free(o->v);
    memset(o, 0, sizeof(*o));
}

uint32_t mds_op_disk(const mds_operator *op)
{
    return op->type == MDS_OP_REMOVE_PEER ? op->old_peer : op->new_peer;
}

/* The table is sorted by Raft group id: heartbeats look operators up per copyset entry. */
static size_t op_lower_bound(const mds_optable *o, uint64_t gid)
{
    size_t lo = 0, hi = o->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (mds_group_id(o->v[mid].pool_id, o->v[mid].copyset_id) < gid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static long op_index(const mds_optable *o, uint32_t pool_id, uint32_t copyset_id)
{
    uint64_t gid = mds_group_id(pool_id, copyset_id);
    size_t i = op_lower_bound(o, gid);
    if (i < o->n && mds_group_id(o->v[i].pool_id, o->v[i].copyset_id) == gid)
        return (long)i;
    return -1;
}

const mds_operator *mds_optable_find(const mds_optable *o, uint32_t pool_id, uint32_t copyset_id)
{
    long i = op_index(o, pool_id, copyset_id);
    return i >= 0 ? &o->v[i] : NULL;
}

bool mds_optable_cs_busy(const mds_optable *o, uint32_t cs_id)
{
    for (size_t i = 0; i < o->n; i++)
        if (mds_op_disk(&o->v[i]) == cs_id)
            return true;
    return false;
}

bool mds_optable_busy_cb(void *ctx, uint32_t cs_id)
{
    return mds_optable_cs_busy(ctx, cs_id);
}

static bool op_valid(const mds_operator *op)
{
    switch (op->type) {
    case MDS_OP_ADD_PEER:
    case MDS_OP_TRANSFER_LEADER:
        return op->new_peer != 0;
    case MDS_OP_REMOVE_PEER:
        return op->old_peer != 0;
    case MDS_OP_CHANGE_PEER:
        return op->old_peer != 0 && op->new_peer != 0 && op->old_peer != op->new_peer;
    }
    return false;
}

int mds_optable_add(mds_optable *o, const mds_operator *op, uint64_t *id_out)
{
    if (!op_valid(op) || op->copyset_id == 0)
        return -EINVAL;
    bool shares_disk = op->type == MDS_OP_TRANSFER_LEADER && op->origin == MDS_SCHED_SLOW_NODE;
    if (op_index(o, op->pool_id, op->copyset_id) >= 0 ||
        (!shares_disk && mds_optable_cs_busy(o, mds_op_disk(op))))
        return CURVE_ERR_BUSY;
    if (o->n >= o->max)
        return -ENOSPC;
    if (o->n == o->cap) {
        size_t ncap = o->cap ? o->cap * 2 : 16;
        mds_operator *nv = realloc(o->v, ncap * sizeof(*nv));
        if (nv == NULL)
            return -ENOMEM;
        o->v = nv;
        o->cap = ncap;
    }
    size_t i = op_lower_bound(o, mds_group_id(op->pool_id, op->copyset_id));
    memmove(&o->v[i + 1], &o->v[i], (o->n - i) * sizeof(*o->v));
    o->v[i] = *op;
    o->v[i].id = o->next_id++;
    if (id_out != NULL)
        *id_out = o->v[i].id;
    o->n++;
    CURVE_ASSERT(o->n <= o->max);
    return 0;
}

static void remove_at(mds_optable *o, size_t i)
{
    CURVE_ASSERT(i < o->n);
    memmove(&o->v[i], &o->v[i + 1], (o->n - i - 1) * sizeof(*o->v));
    o->n--;
}

int mds_optable_remove(mds_optable *o, uint32_t pool_id, uint32_t copyset_id)
{
    long i = op_index(o, pool_id, copyset_id);
    if (i < 0)
        return CURVE_ERR_NOT_FOUND;
    remove_at(o, (size_t)i);
    return 0;
}

/* -1: still running; else the outcome. */
static int op_check(const mds_operator *op, const mds_copyset *c)
{
    bool has_new = op->new_peer && mds_copyset_has_peer(c, op->new_peer);
    bool has_old = op->old_peer && mds_copyset_has_peer(c, op->old_peer);
    if (op->type == MDS_OP_TRANSFER_LEADER) {
        if (c->leader == op->new_peer)
            return MDS_OP_DONE;
        return c->epoch > op->start_epoch || !has_new ? MDS_OP_FAILED : -1;
    }
    if (c->epoch <= op->start_epoch)
        return -1;
    switch (op->type) {
    case MDS_OP_ADD_PEER:
        return has_new ? MDS_OP_DONE : MDS_OP_FAILED;
    case MDS_OP_REMOVE_PEER:
        return has_old ? MDS_OP_FAILED : MDS_OP_DONE;
    case MDS_OP_CHANGE_PEER:
        /* A single-server change is add then remove: "new and old both in" is the midpoint. */
        if (has_new && !has_old)
            return MDS_OP_DONE;
        return has_new ? -1 : MDS_OP_FAILED;
    default:
        break;
    }
    CURVE_UNREACHABLE();
}

int mds_optable_observe(mds_optable *o, const mds_copyset *c, mds_op_event *ev)
{
    long i = op_index(o, c->pool_id, c->id);
    if (i < 0)
        return 0;
    int outcome = op_check(&o->v[i], c);
    if (outcome < 0)
        return 0;
    ev->op = o->v[i];
    ev->outcome = (mds_op_outcome)outcome;
    remove_at(o, (size_t)i);
    return 1;
}

int mds_optable_backoff(mds_optable *o, uint32_t pool_id, uint32_t copyset_id, uint64_t now_ms,
                        uint64_t until_ms)
{
    for (size_t i = 0; i < o->nbackoff; i++) {
        if (o->backoff[i].pool_id == pool_id && o->backoff[i].copyset_id == copyset_id) {
            if (o->backoff[i].until_ms < until_ms)
                o->backoff[i].until_ms = until_ms;
            o->backoff[i].since_ms = now_ms;
            return 0;
        }
    }
    if (o->nbackoff >= o->max)
        return 0;
    if (o->nbackoff == o->backoff_cap) {
        size_t ncap = o->backoff_cap ? o->backoff_cap * 2 : 16;
        mds_op_backoff *nb = realloc(o->backoff, ncap * sizeof(*nb));
        if (nb == NULL)
            return -ENOMEM;
        o->backoff = nb;
        o->backoff_cap = ncap;
    }
    o->backoff[o->nbackoff++] = (mds_op_backoff){pool_id, copyset_id, until_ms, now_ms};
    return 0;
}

bool mds_optable_in_backoff(const mds_optable *o, uint32_t pool_id, uint32_t copyset_id,
                            uint64_t now_ms)
{
    for (size_t i = 0; i < o->nbackoff; i++)
        if (o->backoff[i].pool_id == pool_id && o->backoff[i].copyset_id == copyset_id)
            return o->backoff[i].until_ms > now_ms;
    return false;
}

bool mds_optable_in_urgent_backoff(const mds_optable *o, uint32_t pool_id, uint32_t copyset_id,
                                   uint64_t now_ms)
{
    for (size_t i = 0; i < o->nbackoff; i++)
        if (o->backoff[i].pool_id == pool_id && o->backoff[i].copyset_id == copyset_id)
            return o->backoff[i].until_ms > now_ms &&
                   now_ms < o->backoff[i].since_ms + MDS_URGENT_BACKOFF_MS;
    return false;
}

size_t mds_optable_expire(mds_optable *o, uint64_t now_ms, mds_op_event *evs, size_t max)
{
    size_t removed = 0, i = 0;
    for (size_t k = 0; k < o->nbackoff;) { /* forget finished back-offs */
        if (o->backoff[k].until_ms <= now_ms)
            o->backoff[k] = o->backoff[--o->nbackoff];
        else
            k++;
    }
    while (i < o->n) {
        if (o->v[i].deadline_ms > now_ms) {
            i++;
            continue;
        }
        /* best effort: without memory the copyset is simply retried at once */
        (void)mds_optable_backoff(o, o->v[i].pool_id, o->v[i].copyset_id, now_ms,
                                  now_ms + (o->v[i].deadline_ms - o->v[i].created_ms));
        if (removed < max) {
            evs[removed].op = o->v[i];
            evs[removed].outcome = MDS_OP_EXPIRED;
        }
        removed++;
        remove_at(o, i); /* the next element moved into i: look at i again */
    }
    return removed;
}

size_t mds_optable_for_leader(const mds_optable *o, const mds_topology *t, uint32_t cs_id,
                              mds_operator *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < o->n && n < max; i++) {
        const mds_copyset *c = mds_topo_copyset(t, o->v[i].pool_id, o->v[i].copyset_id);
        if (c != NULL && c->leader == cs_id)
            out[n++] = o->v[i];
    }
    return n;
}

/* ---------------------------------------------------------------------------------------- */
/* scheduler helpers */

static bool cs_alive(const mds_topology *t, uint32_t id)
{
    const mds_chunkserver *c = mds_topo_cs(t, id);
    return c != NULL && (c->state == MDS_CS_ONLINE || c->state == MDS_CS_UNSTABLE);
}

static bool cs_online(const mds_topology *t, uint32_t id)
{
    const mds_chunkserver *c = mds_topo_cs(t, id);
    return c != NULL && c->state == MDS_CS_ONLINE;
}

/* Heard from within fresh_ms (0: always true). */
static bool cs_fresh(const mds_topology *t, uint32_t id, uint64_t now_ms, uint64_t fresh_ms)
{
    const mds_chunkserver *c = mds_topo_cs(t, id);
    return c != NULL &&
           (fresh_ms == 0 || (c->last_hb_ms <= now_ms && now_ms - c->last_hb_ms <= fresh_ms));
}

static void add_alert(mds_sched_result *res, mds_alert_kind kind, const mds_copyset *c,
                      uint32_t alive, uint32_t cs_id)
{
    if (res->nalerts == MDS_SCHED_MAX_ALERTS) {
        res->alerts_dropped++;
        return;
    }
    mds_alert *a = &res->alerts[res->nalerts++];
    a->kind = kind;
    a->pool_id = c->pool_id;
    a->copyset_id = c->id;
    a->alive = alive;
    a->npeers = c->npeers;
    a->cs_id = cs_id;
}

/* Alive peers of `c`; *first_dead gets the first peer that is not alive (0 if none). */
static uint32_t count_alive(const mds_topology *t, const mds_copyset *c, uint32_t *first_dead)
{
    uint32_t alive = 0;
    *first_dead = 0;
    for (uint32_t i = 0; i < c->npeers; i++) {
        if (cs_alive(t, c->peers[i]))
            alive++;
        else if (*first_dead == 0)
            *first_dead = c->peers[i];
    }
    return alive;
}

static bool leader_alive(const mds_topology *t, const mds_copyset *c)
{
    return c->leader != 0 && mds_copyset_has_peer(c, c->leader) && cs_alive(t, c->leader);
}

static int new_op(mds_optable *ops, const mds_copyset *c, mds_op_type type, mds_sched_kind origin,
                  uint32_t old_peer, uint32_t new_peer, uint64_t now_ms, const mds_sched_cfg *cfg,
                  mds_sched_result *res)
{
    mds_operator op;
    memset(&op, 0, sizeof(op));
    op.type = type;
    op.origin = origin;
    op.pool_id = c->pool_id;
    op.copyset_id = c->id;
    op.old_peer = old_peer;
    op.new_peer = new_peer;
    op.start_epoch = c->epoch;
    op.created_ms = now_ms;
    op.deadline_ms = now_ms + (type == MDS_OP_TRANSFER_LEADER ? cfg->transfer_timeout_ms
                                                              : cfg->change_timeout_ms);
    int rc = mds_optable_add(ops, &op, NULL);
    if (rc == 0) {
        res->ops_created++;
        return 0;
    }
    if (rc == CURVE_ERR_BUSY || rc == -ENOSPC) {
        res->skipped_busy++;
        return rc;
    }
    return rc;
}

/* Common gate for recovery and replica: returns true when the copyset may get an operator now;
 * counts the reason otherwise. */
/* Index of the first copyset after `cursor` (wrapping): where a round-robin scan starts. */
static size_t scan_start(const mds_topology *t, uint64_t cursor)
{
    size_t lo = 0, hi = t->copysets.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (mds_group_id(t->copysets.v[mid].pool_id, t->copysets.v[mid].id) <= cursor)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < t->copysets.n ? lo : 0;
}

/* urgent: recovery and replica count (a shorter back-off, MDS_URGENT_BACKOFF_MS). */
static bool may_schedule(const mds_topology *t, const mds_optable *ops, const mds_copyset *c,
                         uint64_t now_ms, const mds_sched_cfg *cfg, mds_sched_result *res,
                         bool urgent)
{
    if (mds_optable_find(ops, c->pool_id, c->id) != NULL) {
        res->skipped_busy++;
        return false;
    }
    if (urgent ? mds_optable_in_urgent_backoff(ops, c->pool_id, c->id, now_ms)
               : mds_optable_in_backoff(ops, c->pool_id, c->id, now_ms)) {
        res->skipped_backoff++;
        return false;
    }
    if (!leader_alive(t, c)) {
        res->skipped_no_leader++;
        return false;
    }
    if (res->ops_created >= cfg->max_ops_per_run) {
        res->rate_limited++;
        return false;
    }
    return true;
}

/* Per-run copyset counts and scatter widths (indexed like t->css.v), so that choosing a
 * replacement is O(chunkservers) rather than O(copysets) per copyset. Counts are updated as
 * operators are planned; scatter widths are a snapshot (a tie-breaker only). */
typedef struct run_cache {
    uint32_t *counts;
    uint32_t *sw;
} run_cache;

static int cache_init(const mds_topology *t, run_cache *rc)
{
    size_t n = t->css.n ? t->css.n : 1;
    rc->counts = malloc(n * sizeof(uint32_t));
    rc->sw = malloc(n * sizeof(uint32_t));
    if (rc->counts == NULL || rc->sw == NULL || mds_place_scatter_widths(t, rc->sw) != 0) {
        free(rc->counts);
        free(rc->sw);
        return -ENOMEM;
    }
    mds_place_copyset_counts(t, rc->counts);
    return 0;
}

static void cache_free(run_cache *rc)
{
    free(rc->counts);
    free(rc->sw);
}

static void cache_planned(const mds_topology *t, run_cache *rc, uint32_t from, uint32_t to)
{
    long f = from ? mds_place_cs_index(t, from) : -1, d = to ? mds_place_cs_index(t, to) : -1;
    if (f >= 0 && rc->counts[f] > 0)
        rc->counts[f]--;
    if (d >= 0)
        rc->counts[d]++;
}

/* Replacement for recovery / replica count. When every candidate is busy with another
 * operator the copyset just waits (skipped_busy); when there is no candidate at all, alert.
 * Returns 0, -ENOSPC (nothing now) or -ENOMEM. */
static int choose_target(const mds_topology *t, mds_replace_req *req, uint32_t *target,
                         const mds_copyset *c, uint32_t alive, uint32_t dead, mds_sched_result *res)
{
    int rc = mds_place_choose_replacement(t, req, target, NULL, 0);
    if (rc != -ENOSPC)
        return rc;
    mds_replace_req idle = *req;
    idle.busy = NULL;
    rc = mds_place_choose_replacement(t, &idle, target, NULL, 0);
    if (rc == -ENOMEM)
        return rc;
    if (rc == 0)
        res->skipped_busy++;
    else
        add_alert(res, MDS_ALERT_NO_CANDIDATE, c, alive, dead);
    return -ENOSPC;
}

/* ---------------------------------------------------------------------------------------- */
/* recovery */

int mds_sched_recovery(const mds_topology *t, mds_optable *ops, uint64_t now_ms,
                       const mds_sched_cfg *cfg, mds_sched_result *res)
{
    run_cache cache = {0};
    int rc = 0;
    memset(res, 0, sizeof(*res));
    size_t start = scan_start(t, ops->cursor[MDS_SCHED_RECOVERY]);
    for (size_t k = 0; k < t->copysets.n; k++) {
        const mds_copyset *c = &t->copysets.v[(start + k) % t->copysets.n];
        uint32_t dead;
        uint32_t alive = count_alive(t, c, &dead);
        if (dead == 0)
            continue;
        if (alive < c->npeers / 2 + 1) {
            add_alert(res, MDS_ALERT_MAJORITY_LOST, c, alive, dead);
            continue;
        }
        if (!may_schedule(t, ops, c, now_ms, cfg, res, true))
            continue;
        if (cache.counts == NULL && (rc = cache_init(t, &cache)) != 0)
            break;
        mds_replace_req req = {.copyset = c,
                               .old_peer = dead,
                               .busy = mds_optable_busy_cb,
                               .busy_ctx = ops,
                               .counts = cache.counts,
                               .scatter = cache.sw};
        uint32_t target = 0;
        rc = choose_target(t, &req, &target, c, alive, dead, res);
        if (rc == -ENOMEM)
            break;
        if (rc != 0) {
            rc = 0;
            continue;
        }
        rc = new_op(ops, c, MDS_OP_CHANGE_PEER, MDS_SCHED_RECOVERY, dead, target, now_ms, cfg, res);
        if (rc == -ENOMEM)
            break;
        if (rc == 0) {
            cache_planned(t, &cache, dead, target);
            ops->cursor[MDS_SCHED_RECOVERY] = mds_group_id(c->pool_id, c->id);
        }
        rc = 0;
    }
    cache_free(&cache);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* replica count */

/* The peer to drop from an over-full copyset: a dead one first, else the one with the most
 * copysets (lowest id on ties); never the leader, never a busy disk. 0 if none. */
static uint32_t removal_victim(const mds_topology *t, const mds_optable *ops, const mds_copyset *c,
                               const uint32_t *counts)
{
    uint32_t best = 0, best_count = 0;
    for (uint32_t i = 0; i < c->npeers; i++) {
        uint32_t p = c->peers[i];
        if (p == c->leader || mds_optable_cs_busy(ops, p))
            continue;
        if (!cs_alive(t, p))
            return p;
        long idx = mds_place_cs_index(t, p);
        uint32_t cnt = idx >= 0 ? counts[idx] : 0;
        if (best == 0 || cnt > best_count || (cnt == best_count && p < best)) {
            best = p;
            best_count = cnt;
        }
    }
    return best;
}

int mds_sched_replica(const mds_topology *t, mds_optable *ops, uint64_t now_ms,
                      const mds_sched_cfg *cfg, mds_sched_result *res)
{
    memset(res, 0, sizeof(*res));
    run_cache cache;
    int rc = cache_init(t, &cache);
    if (rc != 0)
        return rc;
    size_t start = scan_start(t, ops->cursor[MDS_SCHED_REPLICA]);
    for (size_t k = 0; k < t->copysets.n; k++) {
        const mds_copyset *c = &t->copysets.v[(start + k) % t->copysets.n];
        const mds_lpool *lp = mds_topo_lpool(t, c->pool_id);
        if (lp == NULL || c->npeers == lp->replicas)
            continue;
        uint32_t dead;
        uint32_t alive = count_alive(t, c, &dead);
        if (alive < c->npeers / 2 + 1) {
            add_alert(res, MDS_ALERT_MAJORITY_LOST, c, alive, dead);
            continue;
        }
        if (!may_schedule(t, ops, c, now_ms, cfg, res, true))
            continue;
        if (c->npeers < lp->replicas) {
            mds_replace_req req = {.copyset = c,
                                   .busy = mds_optable_busy_cb,
                                   .busy_ctx = ops,
                                   .counts = cache.counts,
                                   .scatter = cache.sw};
            uint32_t target = 0;
            rc = choose_target(t, &req, &target, c, alive, dead, res);
            if (rc == -ENOMEM)
                break;
            if (rc != 0) {
                rc = 0;
                continue;
            }
            rc = new_op(ops, c, MDS_OP_ADD_PEER, MDS_SCHED_REPLICA, 0, target, now_ms, cfg, res);
            if (rc == 0)
                cache_planned(t, &cache, 0, target);
        } else {
            uint32_t victim = removal_victim(t, ops, c, cache.counts);
            if (victim == 0) {
                res->skipped_busy++;
                continue;
            }
            rc = new_op(ops, c, MDS_OP_REMOVE_PEER, MDS_SCHED_REPLICA, victim, 0, now_ms, cfg, res);
            if (rc == 0)
                cache_planned(t, &cache, victim, 0);
        }
        if (rc == -ENOMEM)
            break;
        if (rc == 0)
            ops->cursor[MDS_SCHED_REPLICA] = mds_group_id(c->pool_id, c->id);
        rc = 0;
    }
    cache_free(&cache);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* copyset balance */

typedef struct pool_view {
    size_t *members; /* indexes into t->css.v of the online chunkservers of one physical pool */
    size_t n;
    double mean, range;
} pool_view;

/* Members of physical pool `pp` that are online; mean and range of `vals` over them. */
static void pool_members(const mds_topology *t, uint32_t pp, const uint32_t *vals, double pct,
                         pool_view *v)
{
    uint64_t sum = 0;
    v->n = 0;
    for (size_t i = 0; i < t->css.n; i++) {
        if (t->css.v[i].ppool_id == pp && t->css.v[i].state == MDS_CS_ONLINE) {
            v->members[v->n++] = i;
            sum += vals[i];
        }
    }
    v->mean = v->n ? (double)sum / (double)v->n : 0;
    v->range = v->mean * pct / 100.0;
    if (v->range < 1)
        v->range = 1;
}

/* True when moving one unit from a member with `src` to one with `dst` improves balance. */
static bool worth_moving(const pool_view *v, uint32_t src, uint32_t dst)
{
    return src >= dst + 2 && ((double)src > v->mean + v->range || (double)dst < v->mean - v->range);
}

/* Healthy copyset whose replica on `src` may move: no operator, every peer online, a live
 * leader that is not `src`. */
static bool movable(const mds_topology *t, const mds_optable *ops, const mds_copyset *c,
                    uint32_t src, uint64_t now_ms)
{
    if (!mds_copyset_has_peer(c, src) || c->leader == src || !leader_alive(t, c) ||
        mds_optable_find(ops, c->pool_id, c->id) != NULL ||
        mds_optable_in_backoff(ops, c->pool_id, c->id, now_ms))
        return false;
    for (uint32_t k = 0; k < c->npeers; k++)
        if (!cs_online(t, c->peers[k]))
            return false;
    return true;
}

/* Member index with the highest value not yet `done`, or -1. */
static long pick_max(const pool_view *v, const uint32_t *vals, const uint8_t *done)
{
    long best = -1;
    for (size_t k = 0; k < v->n; k++) {
        size_t i = v->members[k];
        if (!done[i] && (best < 0 || vals[i] > vals[best]))
            best = (long)i;
    }
    return best;
}

static int balance_pool(const mds_topology *t, mds_optable *ops, uint64_t now_ms,
                        const mds_sched_cfg *cfg, pool_view *v, uint32_t *counts,
                        const uint32_t *sw, uint8_t *done, mds_sched_result *res)
{
    size_t tries = 0;
    for (;;) {
        long s = pick_max(v, counts, done);
        if (s < 0)
            return 0;
        uint32_t lo = UINT32_MAX;
        for (size_t k = 0; k < v->n; k++)
            if (counts[v->members[k]] < lo)
                lo = counts[v->members[k]];
        if (!worth_moving(v, counts[s], lo))
            return 0; /* balanced: no pair of members is worth a move */
        done[s] = 1;
        uint32_t src = t->css.v[s].id;
        for (size_t i = 0; i < t->copysets.n && tries < MDS_SCHED_BALANCE_MAX_TRIES; i++) {
            const mds_copyset *c = &t->copysets.v[i];
            if (!movable(t, ops, c, src, now_ms))
                continue;
            tries++;
            if (res->ops_created >= cfg->max_ops_per_run) {
                res->rate_limited++;
                return 0;
            }
            mds_replace_req req = {.copyset = c,
                                   .old_peer = src,
                                   .busy = mds_optable_busy_cb,
                                   .busy_ctx = ops,
                                   .counts = counts,
                                   .scatter = sw};
            uint32_t target;
            int rc = mds_place_choose_replacement(t, &req, &target, NULL, 0);
            if (rc == -ENOMEM)
                return rc;
            if (rc != 0)
                continue;
            long d = mds_place_cs_index(t, target);
            CURVE_ASSERT(d >= 0);
            if (!worth_moving(v, counts[s], counts[d]))
                continue;
            rc = new_op(ops, c, MDS_OP_CHANGE_PEER, MDS_SCHED_COPYSET_BALANCE, src, target, now_ms,
                        cfg, res);
            if (rc == -ENOMEM)
                return rc;
            if (rc == 0) {
                /* Plan as if done so the rest of this run sees the new counts. */
                counts[s]--;
                counts[d]++;
                if (!((double)counts[s] > v->mean + v->range))
                    break;
            }
        }
        if (tries >= MDS_SCHED_BALANCE_MAX_TRIES)
            return 0;
    }
}

int mds_sched_copyset_balance(const mds_topology *t, mds_optable *ops, uint64_t now_ms,
                              const mds_sched_cfg *cfg, mds_sched_result *res)
{
    memset(res, 0, sizeof(*res));
    size_t n = t->css.n ? t->css.n : 1;
    run_cache cache;
    int rc = cache_init(t, &cache);
    if (rc != 0)
        return rc;
    uint8_t *done = calloc(n, 1);
    pool_view v = {.members = malloc(n * sizeof(size_t))};
    if (done == NULL || v.members == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t p = 0; p < t->ppools.n && rc == 0; p++) {
        pool_members(t, t->ppools.v[p].id, cache.counts, cfg->balance_range_pct, &v);
        if (v.n > MDS_REPLICAS)
            rc = balance_pool(t, ops, now_ms, cfg, &v, cache.counts, cache.sw, done, res);
    }
out:
    cache_free(&cache);
    free(done);
    free(v.members);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* leader balance */

typedef struct avoid_set {
    mds_cs_busy_fn fn; /* NULL: nobody avoided */
    void *ctx;
} avoid_set;

static bool avoided(const avoid_set *a, uint32_t cs_id)
{
    return a->fn != NULL && a->fn(a->ctx, cs_id);
}

static int leader_pool(const mds_topology *t, mds_optable *ops, uint64_t now_ms,
                       const mds_sched_cfg *cfg, pool_view *v, uint32_t *leaders, uint8_t *done,
                       const avoid_set *avoid, mds_sched_result *res)
{
    for (;;) {
        long s = pick_max(v, leaders, done);
        if (s < 0 || !((double)leaders[s] > v->mean + v->range))
            return 0;
        done[s] = 1;
        uint32_t src = t->css.v[s].id;
        for (size_t i = 0; i < t->copysets.n; i++) {
            const mds_copyset *c = &t->copysets.v[i];
            if (c->leader != src || mds_optable_find(ops, c->pool_id, c->id) != NULL ||
                mds_optable_in_backoff(ops, c->pool_id, c->id, now_ms))
                continue;
            long best = -1;
            for (uint32_t k = 0; k < c->npeers; k++) {
                uint32_t p = c->peers[k];
                long d = mds_place_cs_index(t, p);
                if (p == src || d < 0 || !cs_online(t, p) || mds_optable_cs_busy(ops, p) ||
                    avoided(avoid, p) || !cs_fresh(t, p, now_ms, cfg->leader_target_fresh_ms))
                    continue;
                if (best < 0 || leaders[d] < leaders[best])
                    best = d;
            }
            if (best < 0 || leaders[s] < leaders[best] + 2)
                continue;
            if (res->ops_created >= cfg->max_ops_per_run) {
                res->rate_limited++;
                return 0;
            }
            int rc = new_op(ops, c, MDS_OP_TRANSFER_LEADER, MDS_SCHED_LEADER_BALANCE, src,
                            t->css.v[best].id, now_ms, cfg, res);
            if (rc == -ENOMEM)
                return rc;
            if (rc == 0) {
                leaders[s]--;
                leaders[best]++;
                if (!((double)leaders[s] > v->mean + v->range))
                    break;
            }
        }
    }
}

int mds_sched_leader_balance(const mds_topology *t, mds_optable *ops, uint64_t now_ms,
                             const mds_sched_cfg *cfg, mds_sched_result *res)
{
    return mds_sched_leader_balance_ex(t, ops, now_ms, cfg, NULL, NULL, res);
}

int mds_sched_leader_balance_ex(const mds_topology *t, mds_optable *ops, uint64_t now_ms,
                                const mds_sched_cfg *cfg, mds_cs_busy_fn avoid_fn, void *avoid_ctx,
                                mds_sched_result *res)
{
    avoid_set avoid = {avoid_fn, avoid_ctx};
    memset(res, 0, sizeof(*res));
    size_t n = t->css.n ? t->css.n : 1;
    uint32_t *leaders = calloc(n, sizeof(*leaders));
    uint8_t *done = calloc(n, 1);
    pool_view v = {.members = malloc(n * sizeof(size_t))};
    int rc = 0;
    if (leaders == NULL || done == NULL || v.members == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < t->copysets.n; i++) {
        const mds_copyset *c = &t->copysets.v[i];
        long idx =
            c->leader && mds_copyset_has_peer(c, c->leader) ? mds_place_cs_index(t, c->leader) : -1;
        if (idx >= 0)
            leaders[idx]++;
    }
    for (size_t p = 0; p < t->ppools.n && rc == 0; p++) {
        pool_members(t, t->ppools.v[p].id, leaders, cfg->leader_range_pct, &v);
        if (avoid.fn != NULL) { /* avoided members: out of the mean, never a source/target */
            size_t kept = 0;
            uint64_t sum = 0;
            for (size_t k = 0; k < v.n; k++) {
                if (avoided(&avoid, t->css.v[v.members[k]].id))
                    continue;
                v.members[kept++] = v.members[k];
                sum += leaders[v.members[k]];
            }
            if (kept != v.n) {
                v.n = kept;
                v.mean = kept ? (double)sum / (double)kept : 0;
                v.range = v.mean * cfg->leader_range_pct / 100.0;
                if (v.range < 1)
                    v.range = 1;
            }
        }
        if (v.n >= 2)
            rc = leader_pool(t, ops, now_ms, cfg, &v, leaders, done, &avoid, res);
    }
out:
    free(leaders);
    free(done);
    free(v.members);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* leaders off slow chunkservers */

/* The follower of c to lead instead of its slow leader: online, not slow, fewest leaders
 * (planned counts), lowest id on ties. 0 if none. */
static uint32_t slow_target(const mds_topology *t, const mds_copyset *c, const uint32_t *leaders,
                            const avoid_set *slow, uint64_t now_ms, uint64_t fresh_ms)
{
    uint32_t best = 0;
    long best_idx = -1;
    for (uint32_t k = 0; k < c->npeers; k++) {
        uint32_t p = c->peers[k];
        long d = mds_place_cs_index(t, p);
        if (p == c->leader || d < 0 || !cs_online(t, p) || avoided(slow, p) ||
            !cs_fresh(t, p, now_ms, fresh_ms))
            continue;
        if (best == 0 || leaders[d] < leaders[best_idx] ||
            (leaders[d] == leaders[best_idx] && p < best)) {
            best = p;
            best_idx = d;
        }
    }
    return best;
}

int mds_sched_slow_leaders(const mds_topology *t, mds_optable *ops, uint64_t now_ms,
                           const mds_sched_cfg *cfg, mds_cs_busy_fn is_slow,
                           mds_cs_busy_fn avoid_fn, void *slow_ctx, mds_sched_result *res)
{
    memset(res, 0, sizeof(*res));
    avoid_set slow = {is_slow, slow_ctx};
    avoid_set avoid = {avoid_fn ? avoid_fn : is_slow, slow_ctx};
    if (is_slow == NULL)
        return 0;
    size_t n = t->css.n ? t->css.n : 1;
    uint32_t *leaders = calloc(n, sizeof(*leaders));
    if (leaders == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < t->copysets.n; i++) {
        const mds_copyset *c = &t->copysets.v[i];
        long idx =
            c->leader && mds_copyset_has_peer(c, c->leader) ? mds_place_cs_index(t, c->leader) : -1;
        if (idx >= 0)
            leaders[idx]++;
    }
    int rc = 0;
    for (size_t i = 0; i < t->copysets.n; i++) {
        const mds_copyset *c = &t->copysets.v[i];
        if (c->leader == 0 || !avoided(&slow, c->leader))
            continue;
        const mds_operator *op = mds_optable_find(ops, c->pool_id, c->id);
        if (op != NULL) {
            if (op->type != MDS_OP_TRANSFER_LEADER || !avoided(&avoid, op->new_peer)) {
                res->skipped_busy++; /* already moving (or changing membership): wait */
                continue;
            }
            (void)mds_optable_remove(ops, c->pool_id, c->id); /* moving leadership *to* slow */
        }
        if (mds_optable_in_backoff(ops, c->pool_id, c->id, now_ms)) {
            res->skipped_backoff++;
            continue;
        }
        if (!leader_alive(t, c)) {
            res->skipped_no_leader++;
            continue;
        }
        uint32_t target = slow_target(t, c, leaders, &avoid, now_ms, cfg->leader_target_fresh_ms);
        if (target == 0) {
            res->skipped_busy++; /* no healthy follower: it stays (nothing better) */
            continue;
        }
        if (res->ops_created >= cfg->max_ops_per_run) {
            res->rate_limited++;
            break;
        }
        rc = new_op(ops, c, MDS_OP_TRANSFER_LEADER, MDS_SCHED_SLOW_NODE, c->leader, target, now_ms,
                    cfg, res);
        if (rc == -ENOMEM)
            break;
        if (rc == 0) {
            long s_idx = mds_place_cs_index(t, c->leader), d_idx = mds_place_cs_index(t, target);
            if (s_idx >= 0 && leaders[s_idx] > 0)
                leaders[s_idx]--;
            if (d_idx >= 0)
                leaders[d_idx]++;
        }
        rc = 0;
    }
    free(leaders);
    return rc;
}
