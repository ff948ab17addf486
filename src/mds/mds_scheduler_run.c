/*
 * The leader's background thread (docs/mds.md "Daemon"): every sched_interval it
 *   1. applies time-based chunkserver transitions (mds_hb_tick) and stores changed states,
 *   2. expires operators past their deadline,
 *   3. runs recovery and replica-count (every run), moves leaders off slow chunkservers
 *      (slownode.h) and runs the balance schedulers (every balance_interval; leader balance
 *      leaves slow chunkservers out), each rate-limited by max_ops_per_run,
 *   4. places the copysets of logical pools still waiting for enough chunkservers,
 *   5. creates placed copysets on their chunkservers (CreateCopyset, proto/copyset.proto)
 *      until a heartbeat reports them (leader known),
 *   6. purges deleted volumes (mds_purge_run).
 * Locks are never held across an RPC or an etcd call.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "copyset.pb-c.h"
#include "curve/errors.h"
#include "mds/mds_daemon.h"
#include "mds/slownode.h"


#define MDS_TICK_TRANSITIONS 256 /* state transitions logged per tick */

static void log_sched(mds_daemon *d, const char *name, const mds_sched_result *r)
{
    curve_counter_add(d->m.ops_created, r->ops_created);
    for (size_t i = 0; i < r->nalerts; i++) {
        const mds_alert *a = &r->alerts[i];
        curve_counter_inc(a->kind == MDS_ALERT_MAJORITY_LOST ? d->m.alerts_majority
                                                             : d->m.alerts_nocand);
        CLOG_WARN("mds: ALERT %s: copyset (%u, %u) has %u of %u peers alive (chunkserver %u)",
                  mds_alert_kind_name(a->kind), a->pool_id, a->copyset_id, a->alive, a->npeers,
                  a->cs_id);
    }
    if (r->ops_created)
        CLOG_INFO("mds: scheduler %s: %zu operators (busy %zu, no leader %zu, rate limited %zu)",
                  name, r->ops_created, r->skipped_busy, r->skipped_no_leader, r->rate_limited);
}

static void tick(mds_daemon *d, bool balance)
{
    static mds_hb_transition tr[MDS_TICK_TRANSITIONS];
    static mds_op_event evs[MDS_HB_MAX_EVENTS];
    mds_sched_result res;
    char *keys[MDS_TICK_TRANSITIONS], *vals[MDS_TICK_TRANSITIONS];
    size_t nk = 0;
    uint64_t now = curve_now_mono_ms();
    pthread_mutex_lock(&d->lock);
    size_t n = mds_hb_tick(&d->topo, &d->hbcfg, now, tr, MDS_TICK_TRANSITIONS);
    for (size_t i = 0; i < n && i < MDS_TICK_TRANSITIONS; i++) {
        CLOG_INFO("mds: chunkserver %u: %s -> %s", tr[i].cs_id, mds_cs_state_name(tr[i].from),
                  mds_cs_state_name(tr[i].to));
        const mds_chunkserver *cs = mds_topo_cs(&d->topo, tr[i].cs_id);
        if (cs && mds_store_record(MDS_TOPO_CS, cs, &keys[nk], &vals[nk]) == 0)
            nk++;
    }
    /* An operator whose target went offline (or was retired) cannot finish: drop it now
     * instead of at its deadline, so that the copyset and the disk are free for recovery. */
    for (size_t i = 0; i < d->ops.n;) {
        const mds_operator *op = &d->ops.v[i];
        const mds_chunkserver *t = mds_topo_cs(&d->topo, op->new_peer);
        if (op->type != MDS_OP_REMOVE_PEER &&
            (!t || t->state == MDS_CS_OFFLINE || t->state == MDS_CS_RETIRED)) {
            CLOG_INFO("mds: operator %" PRIu64 " %s copyset (%u, %u) %u->%u: canceled, target "
                      "%s", op->id, mds_op_type_name(op->type), op->pool_id, op->copyset_id,
                      op->old_peer, op->new_peer, t ? mds_cs_state_name(t->state) : "unknown");
            curve_counter_inc(d->m.ops_failed);
            mds_optable_remove(&d->ops, op->pool_id, op->copyset_id);
            continue; /* the table shifted: same index again */
        }
        i++;
    }
    size_t ne = mds_optable_expire(&d->ops, now, evs, MDS_HB_MAX_EVENTS);
    mds_log_op_events(d, evs, ne < MDS_HB_MAX_EVENTS ? ne : MDS_HB_MAX_EVENTS);
    if (mds_sched_recovery(&d->topo, &d->ops, now, &d->schedcfg, &res) == 0)
        log_sched(d, "recovery", &res);
    if (mds_sched_replica(&d->topo, &d->ops, now, &d->schedcfg, &res) == 0)
        log_sched(d, "replica", &res);
    if (balance && curve_config_bool(d->cfg, "copyset_balance") &&
        mds_sched_copyset_balance(&d->topo, &d->ops, now, &d->schedcfg, &res) == 0)
        log_sched(d, "copyset_balance", &res);
    /* Leaders off slow chunkservers (also done on their heartbeats), before leader balance,
     * which leaves slow chunkservers out (slownode.h). */
    mds_slow_glue_evaluate(d, now);
    mds_slow_glue_schedule(d, now);
    if (balance && curve_config_bool(d->cfg, "leader_balance") &&
        mds_sched_leader_balance_ex(&d->topo, &d->ops, now, &d->schedcfg, mds_slow_suspect_cb,
                                    &d->slow, &res) == 0)
        log_sched(d, "leader_balance", &res);
    int rc = mds_persist_unlock(d, keys, vals, nk);
    if (rc < 0)
        CLOG_WARN("mds: storing chunkserver states failed: %s", curve_strerror(rc));
}

/* ---- copyset creation on chunkservers ---- */

typedef struct create_call {
    curve_completion done;
    int status;
    int cst;
} create_call;

static void create_cb(rpc_result *r, void *arg)
{
    create_call *cc = arg;
    cc->status = r->status;
    if (r->status == 0 && r->resp)
        cc->cst = ((Curve__Copyset__CopysetResponse *)r->resp)->status;
    curve_completion_signal(&cc->done, 0);
}

typedef struct create_job {
    uint32_t pool, id;
    uint64_t epoch;
    uint32_t npeers;
    char addr[MDS_MAX_PEERS][MDS_ADDR_MAX]; /* "ip:port:0" */
} create_job;

static void create_copysets(mds_daemon *d)
{
    create_job *jobs = calloc(MDS_CREATE_PER_RUN, sizeof(*jobs));
    if (!jobs)
        return;
    size_t nj = 0;
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->topo.copysets.n && nj < MDS_CREATE_PER_RUN; i++) {
        const mds_copyset *c = &d->topo.copysets.v[i];
        /* A copyset nobody reported yet (no leader, initial epoch) is (re)created: the RPC
         * is idempotent on the chunkserver (COPYSET_EXIST). */
        if (c->leader != 0 || c->term != 0 || c->epoch != 0)
            continue;
        create_job *j = &jobs[nj];
        j->pool = c->pool_id;
        j->id = c->id;
        j->epoch = c->epoch;
        j->npeers = 0;
        bool ok = true;
        for (uint32_t k = 0; k < c->npeers; k++) {
            const mds_chunkserver *cs = mds_topo_cs(&d->topo, c->peers[k]);
            if (!cs) {
                ok = false;
                break;
            }
            mds_cs_peer(cs, j->addr[j->npeers++], MDS_ADDR_MAX);
        }
        if (ok)
            nj++;
    }
    pthread_mutex_unlock(&d->lock);
    for (size_t i = 0; i < nj && atomic_load(&d->serving) && !atomic_load(&d->stop_bg); i++) {
        create_job *j = &jobs[i];
        char *peers[MDS_MAX_PEERS];
        for (uint32_t k = 0; k < j->npeers; k++)
            peers[k] = j->addr[k];
        Curve__Copyset__CreateCopysetRequest req = CURVE__COPYSET__CREATE_COPYSET_REQUEST__INIT;
        req.logical_pool_id = j->pool;
        req.copyset_id = j->id;
        req.n_peers = j->npeers;
        req.peers = peers;
        req.has_epoch = true;
        req.epoch = j->epoch;
        for (uint32_t k = 0; k < j->npeers; k++) {
            char addr[MDS_ADDR_MAX];
            snprintf(addr, sizeof(addr), "%s", j->addr[k]);
            char *last = strrchr(addr, ':');
            if (last)
                *last = 0; /* "ip:port:0" -> "ip:port" */
            rpc_channel *ch = mds_channel(d, addr);
            if (!ch)
                continue;
            create_call cc = {.status = -1, .cst = -1};
            curve_completion_init(&cc.done);
            int rc = rpc_channel_call(ch, MDS_COPYSET_SERVICE_ID, 1, &req.base, NULL,
                                      &curve__copyset__copyset_response__descriptor, 2000,
                                      create_cb, &cc, NULL);
            if (rc == 0)
                curve_completion_wait(&cc.done, 0);
            curve_completion_destroy(&cc.done);
            if (rc == 0 && cc.status == 0 &&
                (cc.cst == CURVE__COPYSET__COPYSET_STATUS__COPYSET_OK ||
                 cc.cst == CURVE__COPYSET__COPYSET_STATUS__COPYSET_EXIST))
                curve_counter_inc(d->m.copysets_created);
            else
                CLOG_DEBUG("mds: CreateCopyset (%u, %u) on %s: rpc %s, status %d", j->pool,
                           j->id, addr, curve_strerror(rc ? rc : cc.status), cc.cst);
        }
    }
    free(jobs);
}

bool mds_op_prepared(const mds_daemon *d, const mds_operator *op)
{
    if (!d->prepare_peers || (op->type != MDS_OP_ADD_PEER && op->type != MDS_OP_CHANGE_PEER))
        return true;
    size_t n = d->nprepared < MDS_PREPARED_MAX ? d->nprepared : MDS_PREPARED_MAX;
    for (size_t i = 0; i < n; i++)
        if (d->prepared[i] == op->id)
            return true;
    return false;
}

/* CreateCopyset with no peers on the new peer of every add/change operator not prepared yet. */
static void prepare_new_peers(mds_daemon *d)
{
    typedef struct prep {
        uint64_t op_id;
        uint32_t pool, id;
        char addr[MDS_ADDR_MAX];
    } prep;
    prep *jobs = calloc(MDS_PREPARE_PER_RUN, sizeof(*jobs));
    if (!jobs)
        return;
    size_t nj = 0;
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->ops.n && nj < MDS_PREPARE_PER_RUN; i++) {
        const mds_operator *op = &d->ops.v[i];
        if (mds_op_prepared(d, op))
            continue;
        const mds_chunkserver *cs = mds_topo_cs(&d->topo, op->new_peer);
        if (!cs)
            continue;
        jobs[nj] = (prep){.op_id = op->id, .pool = op->pool_id, .id = op->copyset_id};
        snprintf(jobs[nj].addr, MDS_ADDR_MAX, "%s:%u", cs->host, cs->port);
        nj++;
    }
    pthread_mutex_unlock(&d->lock);
    for (size_t i = 0; i < nj && !atomic_load(&d->stop_bg); i++) {
        rpc_channel *ch = mds_channel(d, jobs[i].addr);
        if (!ch)
            continue;
        Curve__Copyset__CreateCopysetRequest req = CURVE__COPYSET__CREATE_COPYSET_REQUEST__INIT;
        req.logical_pool_id = jobs[i].pool;
        req.copyset_id = jobs[i].id;
        create_call cc = {.status = -1, .cst = -1};
        curve_completion_init(&cc.done);
        int rc = rpc_channel_call(ch, MDS_COPYSET_SERVICE_ID, 1, &req.base, NULL,
                                  &curve__copyset__copyset_response__descriptor, 2000, create_cb,
                                  &cc, NULL);
        if (rc == 0)
            curve_completion_wait(&cc.done, 0);
        curve_completion_destroy(&cc.done);
        bool ok = rc == 0 && cc.status == 0 &&
                  (cc.cst == CURVE__COPYSET__COPYSET_STATUS__COPYSET_OK ||
                   cc.cst == CURVE__COPYSET__COPYSET_STATUS__COPYSET_EXIST);
        if (!ok) {
            CLOG_DEBUG("mds: preparing copyset (%u, %u) on %s for operator %" PRIu64
                       ": rpc %s, status %d", jobs[i].pool, jobs[i].id, jobs[i].addr,
                       jobs[i].op_id, curve_strerror(rc ? rc : cc.status), cc.cst);
            continue;
        }
        pthread_mutex_lock(&d->lock);
        d->prepared[d->nprepared++ % MDS_PREPARED_MAX] = jobs[i].op_id;
        pthread_mutex_unlock(&d->lock);
    }
    free(jobs);
}

static void *bg_main(void *arg)
{
    mds_daemon *d = arg;
    uint64_t interval = (uint64_t)curve_config_duration_ms(d->cfg, "sched_interval");
    uint64_t bal_interval = (uint64_t)curve_config_duration_ms(d->cfg, "balance_interval");
    uint64_t last_balance = curve_now_mono_ms(), last_create = 0;
    while (!atomic_load(&d->stop_bg)) {
        uint64_t now = curve_now_mono_ms();
        bool bal = now - last_balance >= bal_interval;
        if (bal)
            last_balance = now;
        tick(d, bal);
        uint32_t placed[16];
        mds_place_pending(d, placed, 16);
        prepare_new_peers(d);
        /* Creation RPCs at most every 2 s: chunkservers need a heartbeat to report them. */
        if (now - last_create >= 2000) {
            create_copysets(d);
            last_create = now;
        }
        uint64_t pending = mds_purge_run(d);
        pthread_mutex_lock(&d->lock);
        d->pending_purge = pending;
        pthread_mutex_unlock(&d->lock);

        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + interval * 1000000ull;
        ts.tv_sec += (time_t)(ns / 1000000000ull);
        ts.tv_nsec = (long)(ns % 1000000000ull);
        pthread_mutex_lock(&d->bg_mu);
        if (!atomic_load(&d->stop_bg))
            pthread_cond_timedwait(&d->bg_cv, &d->bg_mu, &ts);
        pthread_mutex_unlock(&d->bg_mu);
    }
    return NULL;
}

int mds_bg_start(mds_daemon *d)
{
    pthread_mutex_lock(&d->lock);
    mds_slow_glue_reset(d); /* a new leader judges from fresh reports */
    pthread_mutex_unlock(&d->lock);
    atomic_store(&d->stop_bg, false);
    int rc = pthread_create(&d->bg, NULL, bg_main, d);
    if (rc != 0)
        return -rc;
    d->bg_started = true;
    return 0;
}

void mds_bg_stop(mds_daemon *d)
{
    if (!d->bg_started)
        return;
    pthread_mutex_lock(&d->bg_mu);
    atomic_store(&d->stop_bg, true);
    pthread_cond_signal(&d->bg_cv);
    pthread_mutex_unlock(&d->bg_mu);
    pthread_join(d->bg, NULL);
    d->bg_started = false;
}
