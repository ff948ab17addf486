/*
 * HeartbeatService (proto/heartbeat.proto, service 30) on the MDS: chunkserver registration
 * and heartbeats. The reported copyset views are applied by mds_hb_process (heartbeat.h);
 * what changed is written to etcd; the reply carries the operators of copysets the
 * chunkserver leads.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "curve/errors.h"
#include "heartbeat.pb-c.h"
#include "mds/mds_daemon.h"
#include "mds/slownode.h"

/* ---- slow chunkservers (slownode.h, docs/mds.md "Slow chunkservers") ---- */

#define MDS_SLOW_GAUGES_MAX 4096 /* per-chunkserver mds_chunkserver_slow gauges */

static struct {
    bool init;
    curve_gauge *count;
    curve_counter *marks, *unmarks, *transfers;
    size_t ngauges;
    struct {
        uint32_t cs_id;
        curve_gauge *g;
    } gauges[MDS_SLOW_GAUGES_MAX];
} g_slowm; /* under d->lock */

void mds_slow_glue_reset(mds_daemon *d)
{
    if (!d->slow_init) {
        mds_slow_init(&d->slow, &d->slowcfg);
        d->slow_init = true;
        CLOG_INFO("mds: slow chunkserver detection %s (mds.slow.enabled)",
                  d->slowcfg.enabled ? "on" : "off");
    }
    if (!g_slowm.init) {
        curve_metrics *r = curve_metrics_default();
        (void)curve_metrics_gauge(r, "mds_slow_chunkservers",
                                  "chunkservers marked slow (leaders are moved off them)", NULL,
                                  &g_slowm.count);
        (void)curve_metrics_counter(r, "mds_slow_marks_total", "chunkservers marked slow", NULL,
                                    &g_slowm.marks);
        (void)curve_metrics_counter(r, "mds_slow_unmarks_total",
                                    "slow chunkservers unmarked after the hold time", NULL,
                                    &g_slowm.unmarks);
        (void)curve_metrics_counter(r, "mds_slow_leader_transfers_total",
                                    "leader transfers created to move leaders off slow "
                                    "chunkservers", NULL, &g_slowm.transfers);
        g_slowm.init = true;
    }
    for (size_t i = 0; i < d->slow.n; i++) {
        if (!d->slow.v[i].marked)
            continue;
        for (size_t k = 0; k < g_slowm.ngauges; k++)
            if (g_slowm.gauges[k].cs_id == d->slow.v[i].cs_id)
                curve_gauge_set(g_slowm.gauges[k].g, 0);
    }
    mds_slow_reset(&d->slow);
    if (g_slowm.count)
        curve_gauge_set(g_slowm.count, 0);
}

static void slow_gauge_set(uint32_t cs_id, bool marked)
{
    for (size_t k = 0; k < g_slowm.ngauges; k++) {
        if (g_slowm.gauges[k].cs_id == cs_id) {
            curve_gauge_set(g_slowm.gauges[k].g, marked);
            return;
        }
    }
    if (g_slowm.ngauges == MDS_SLOW_GAUGES_MAX)
        return;
    char id[16];
    snprintf(id, sizeof(id), "%u", cs_id);
    curve_gauge *g = NULL;
    if (curve_metrics_gauge(curve_metrics_default(), "mds_chunkserver_slow",
                            "1 while the chunkserver is marked slow",
                            (const char *[]){"chunkserver", id, NULL}, &g) != 0)
        return;
    curve_gauge_set(g, marked);
    g_slowm.gauges[g_slowm.ngauges].cs_id = cs_id;
    g_slowm.gauges[g_slowm.ngauges].g = g;
    g_slowm.ngauges++;
}

void mds_slow_glue_schedule(mds_daemon *d, uint64_t now_ms)
{
    if (mds_slow_count(&d->slow) == 0)
        return;
    mds_sched_result res;
    if (mds_sched_slow_leaders(&d->topo, &d->ops, now_ms, &d->schedcfg, mds_slow_marked_cb,
                               mds_slow_suspect_cb, &d->slow, &res) != 0)
        return;
    curve_counter_add(d->m.ops_created, res.ops_created);
    if (g_slowm.transfers)
        curve_counter_add(g_slowm.transfers, res.ops_created);
    if (res.ops_created)
        CLOG_INFO("mds: scheduler slow_node: %zu leader transfers (busy %zu, no leader %zu, "
                  "backoff %zu, rate limited %zu)", res.ops_created, res.skipped_busy,
                  res.skipped_no_leader, res.skipped_backoff, res.rate_limited);
}

/* Feeds the health part of a heartbeat to the tracker. */
static void slow_report(mds_daemon *d, const Curve__Heartbeat__HeartbeatRequest *req,
                        uint64_t now_ms);

static void h_register(mds_daemon *d, rpc_call_ctx *ctx, const ProtobufCMessage *m)
{
    const Curve__Heartbeat__RegisterChunkServerRequest *req = (const void *)m;
    Curve__Heartbeat__RegisterChunkServerResponse resp =
        CURVE__HEARTBEAT__REGISTER_CHUNK_SERVER_RESPONSE__INIT;
    char err[256] = "", token[MDS_TOKEN_LEN + 1] = "";
    char *key = NULL, *val = NULL;
    mds_chunkserver *cs = NULL;
    pthread_mutex_lock(&d->lock);
    int rc = mds_topo_register_cs(&d->topo, req->ip, req->port, req->disk_path,
                                  req->disk_capacity, &d->rng,
                                  curve_now_mono_ms(), &cs, err, sizeof(err));
    if (rc == 0) {
        snprintf(token, sizeof(token), "%s", cs->token);
        resp.has_chunkserver_id = true;
        resp.chunkserver_id = cs->id;
        rc = mds_store_record(MDS_TOPO_CS, cs, &key, &val);
    }
    if (rc < 0) {
        pthread_mutex_unlock(&d->lock);
        resp.status = rc == -EINVAL   ? CURVE__HEARTBEAT__HEARTBEAT_STATUS__HB_INVALID_REQUEST
                      : rc == -EEXIST ? CURVE__HEARTBEAT__HEARTBEAT_STATUS__HB_EXISTS
                                      : CURVE__HEARTBEAT__HEARTBEAT_STATUS__HB_FAILED;
        resp.error = err;
        CLOG_WARN("mds: register %s:%u refused: %s", req->ip, req->port, err);
        mds_reply_ok(d, ctx, &resp.base);
        return;
    }
    rc = mds_persist_unlock(d, &key, &val, 1);
    if (rc < 0) {
        resp.status = CURVE__HEARTBEAT__HEARTBEAT_STATUS__HB_FAILED;
        snprintf(err, sizeof(err), "storing the registration in etcd failed: %s",
                 curve_strerror(rc));
        resp.error = err;
    } else {
        atomic_store(&d->last_topo_change_ms, curve_now_mono_ms());
        CLOG_INFO("mds: chunkserver %u registered at %s:%u (%s)", resp.chunkserver_id, req->ip,
                  req->port, req->disk_path);
        resp.token = token;
    }
    mds_reply_ok(d, ctx, &resp.base);
}

/* "ip:port[:idx]" -> chunkserver id (0 when unknown). Called with d->lock held. */
static uint32_t peer_id(mds_daemon *d, const char *peer)
{
    char host[MDS_HOST_MAX];
    const char *c1 = strchr(peer, ':');
    if (!c1 || (size_t)(c1 - peer) >= sizeof(host))
        return 0;
    snprintf(host, sizeof(host), "%.*s", (int)(c1 - peer), peer);
    char *end;
    unsigned long port = strtoul(c1 + 1, &end, 10);
    if (end == c1 + 1 || (*end && *end != ':') || port == 0 || port > 65535)
        return 0;
    const mds_chunkserver *cs = mds_topo_cs_by_addr(&d->topo, host, (uint32_t)port);
    return cs ? cs->id : 0;
}

static void slow_report(mds_daemon *d, const Curve__Heartbeat__HeartbeatRequest *req,
                        uint64_t now_ms)
{
    if (!d->slow_init)
        mds_slow_glue_reset(d);
    const Curve__Heartbeat__ServiceHealth *h = req->health;
    if (h == NULL)
        return;
    mds_slow_report rep;
    memset(&rep, 0, sizeof(rep));
    rep.cs_id = req->chunkserver_id;
    if (h->has_writes && h->has_write_mean_us) {
        rep.writes = h->writes;
        rep.write_mean_us = h->write_mean_us;
    }
    if (h->has_applies && h->has_apply_mean_us) {
        rep.applies = h->applies;
        rep.apply_mean_us = h->apply_mean_us;
    }
    rep.disk_slow = h->has_disk_slow && h->disk_slow;
    for (size_t i = 0; i < h->n_probes && rep.nprobes < MDS_SLOW_MAX_PROBES; i++) {
        const Curve__Heartbeat__PeerProbe *p = h->probes[i];
        if (p->peer == NULL || !p->has_mean_us)
            continue;
        mds_slow_probe *x = &rep.probes[rep.nprobes];
        x->target = peer_id(d, p->peer);
        if (x->target == 0 || x->target == rep.cs_id)
            continue;
        x->samples = p->samples;
        x->lost = p->has_lost ? p->lost : 0;
        x->mean_us = p->mean_us;
        x->p50_us = p->has_p50_us ? p->p50_us : p->mean_us;
        x->p90_us = p->has_p90_us ? p->p90_us : 0;
        x->segs = p->has_data_segs ? p->data_segs : 0;
        x->retrans = p->has_retrans ? p->retrans : 0;
        rep.nprobes++;
    }
    (void)mds_slow_report_add(&d->slow, &rep, now_ms);
}

static const char *slow_unit(int sig)
{
    return sig == MDS_SLOW_SIG_LOSS ? "per mille retransmitted" : "us";
}

void mds_slow_glue_evaluate(mds_daemon *d, uint64_t now_ms)
{
    if (!d->slow_init)
        mds_slow_glue_reset(d);
    mds_slow_change chs[16];
    size_t n = mds_slow_evaluate(&d->slow, &d->topo, now_ms, chs, 16);
    for (size_t i = 0; i < d->slow.n; i++) { /* first slow evaluation: say why */
        const mds_slow_cs *e = &d->slow.v[i];
        if (e->streak == 1 && !e->marked && e->slow_sig >= 0)
            CLOG_INFO("mds: chunkserver %u looks slow: %s %u %s vs cluster median %u %s "
                      "(first slow evaluation)", e->cs_id,
                      mds_slow_sig_name((mds_slow_sig)e->slow_sig), e->value_us[e->slow_sig],
                      slow_unit(e->slow_sig), e->median_us[e->slow_sig], slow_unit(e->slow_sig));
    }
    for (size_t i = 0; i < n && i < 16; i++) {
        const mds_slow_change *ch = &chs[i];
        if (ch->marked) {
            curve_counter_inc(g_slowm.marks);
            CLOG_WARN("mds: chunkserver %u marked SLOW: %s %u %s vs cluster median %u %s; "
                      "moving its copyset leaders away", ch->cs_id, mds_slow_sig_name(ch->sig),
                      ch->value_us, slow_unit((int)ch->sig), ch->median_us,
                      slow_unit((int)ch->sig));
        } else {
            curve_counter_inc(g_slowm.unmarks);
            CLOG_INFO("mds: chunkserver %u no longer slow (healthy for %llu ms)", ch->cs_id,
                      (unsigned long long)d->slow.cfg.hold_ms);
        }
        slow_gauge_set(ch->cs_id, ch->marked);
    }
    if (n > 0)
        curve_gauge_set(g_slowm.count, (int64_t)mds_slow_count(&d->slow));
}

typedef struct hb_op_buf {
    Curve__Heartbeat__Operator op;
    char a[MDS_ADDR_MAX], b[MDS_ADDR_MAX];
} hb_op_buf;

static void addr_of(mds_daemon *d, uint32_t id, char *buf)
{
    const mds_chunkserver *cs = mds_topo_cs(&d->topo, id);
    if (cs)
        mds_cs_peer(cs, buf, MDS_ADDR_MAX);
    else
        snprintf(buf, MDS_ADDR_MAX, "unknown-%u", id);
}

static void op_pb(mds_daemon *d, const mds_operator *o, hb_op_buf *b)
{
    curve__heartbeat__operator__init(&b->op);
    b->op.logical_pool_id = o->pool_id;
    b->op.copyset_id = o->copyset_id;
    b->op.epoch = o->start_epoch;
    switch (o->type) {
    case MDS_OP_ADD_PEER:
        b->op.type = CURVE__HEARTBEAT__CONFIG_CHANGE_TYPE__CONFIG_ADD_PEER;
        addr_of(d, o->new_peer, b->a);
        b->op.peer = b->a;
        break;
    case MDS_OP_REMOVE_PEER:
        b->op.type = CURVE__HEARTBEAT__CONFIG_CHANGE_TYPE__CONFIG_REMOVE_PEER;
        addr_of(d, o->old_peer, b->a);
        b->op.peer = b->a;
        break;
    case MDS_OP_CHANGE_PEER:
        b->op.type = CURVE__HEARTBEAT__CONFIG_CHANGE_TYPE__CONFIG_CHANGE_PEER;
        addr_of(d, o->old_peer, b->a);
        addr_of(d, o->new_peer, b->b);
        b->op.old_peer = b->a;
        b->op.new_peer = b->b;
        break;
    case MDS_OP_TRANSFER_LEADER:
        b->op.type = CURVE__HEARTBEAT__CONFIG_CHANGE_TYPE__CONFIG_TRANSFER_LEADER;
        addr_of(d, o->new_peer, b->a);
        b->op.peer = b->a;
        break;
    }
}

static void log_events(mds_daemon *d, const mds_op_event *ev, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const mds_operator *o = &ev[i].op;
        curve_counter_inc(ev[i].outcome == MDS_OP_DONE     ? d->m.ops_done
                          : ev[i].outcome == MDS_OP_FAILED ? d->m.ops_failed
                                                           : d->m.ops_expired);
        CLOG_INFO("mds: operator %" PRIu64 " %s copyset (%u, %u) %u->%u (%s): %s", o->id,
                  mds_op_type_name(o->type), o->pool_id, o->copyset_id, o->old_peer,
                  o->new_peer, mds_sched_kind_name(o->origin),
                  ev[i].outcome == MDS_OP_DONE     ? "done"
                  : ev[i].outcome == MDS_OP_FAILED ? "failed"
                                                   : "expired");
    }
}

void mds_log_op_events(mds_daemon *d, const mds_op_event *ev, size_t n)
{
    log_events(d, ev, n);
}

static void h_heartbeat(mds_daemon *d, rpc_call_ctx *ctx, const ProtobufCMessage *m)
{
    const Curve__Heartbeat__HeartbeatRequest *req = (const void *)m;
    Curve__Heartbeat__HeartbeatResponse resp = CURVE__HEARTBEAT__HEARTBEAT_RESPONSE__INIT;
    uint64_t t0 = curve_now_mono_ns();
    char err[256] = "";
    if (req->n_copysets > MDS_HB_MAX_COPYSETS) {
        resp.status = CURVE__HEARTBEAT__HEARTBEAT_STATUS__HB_INVALID_REQUEST;
        snprintf(err, sizeof(err), "%zu copysets in one heartbeat (max %d)", req->n_copysets,
                 MDS_HB_MAX_COPYSETS);
        resp.error = err;
        curve_counter_inc(d->m.hb_err);
        return mds_reply_ok(d, ctx, &resp.base);
    }
    mds_hb_copyset *cps = calloc(req->n_copysets + 1, sizeof(*cps));
    hb_op_buf *obufs = calloc(MDS_HB_MAX_REPLY_OPS, sizeof(*obufs));
    Curve__Heartbeat__Operator **pops = calloc(MDS_HB_MAX_REPLY_OPS, sizeof(*pops));
    Curve__Heartbeat__CopysetInfo *gcs = calloc(MDS_HB_MAX_GC, sizeof(*gcs));
    Curve__Heartbeat__CopysetInfo **pgcs = calloc(MDS_HB_MAX_GC, sizeof(*pgcs));
    size_t nkeys = 0, keycap = MDS_HB_MAX_CHANGED + 1;
    char **keys = NULL, **vals = NULL;
    if (!cps || !obufs || !pops || !gcs || !pgcs) {
        mds_reply_err(d, ctx, -ENOMEM, "heartbeat: out of memory");
        goto out;
    }
    pthread_mutex_lock(&d->lock);
    /* Peers travel as addresses; the model uses chunkserver ids. An unknown address makes
     * the entry invalid (id 0), which mds_hb_process counts and skips. */
    for (size_t i = 0; i < req->n_copysets; i++) {
        const Curve__Heartbeat__CopysetInfo *ci = req->copysets[i];
        mds_hb_copyset *h = &cps[i];
        h->pool_id = ci->logical_pool_id;
        h->copyset_id = ci->copyset_id;
        h->npeers = ci->n_peers > MDS_MAX_PEERS ? MDS_MAX_PEERS + 1 : (uint32_t)ci->n_peers;
        for (size_t k = 0; k < ci->n_peers && k < MDS_MAX_PEERS; k++)
            h->peers[k] = peer_id(d, ci->peers[k]);
        if (h->npeers > MDS_MAX_PEERS)
            h->npeers = 0; /* malformed: counted invalid */
        h->leader = ci->leader && *ci->leader ? peer_id(d, ci->leader) : 0;
        if (ci->has_is_leader && ci->is_leader)
            h->leader = req->chunkserver_id;
        h->term = ci->term;
        h->epoch = ci->epoch;
        if (ci->has_change_type &&
            ci->change_type != CURVE__HEARTBEAT__CONFIG_CHANGE_TYPE__CONFIG_NONE) {
            /* The wire enum and mds_op_type share their values (1..4). */
            h->change_type = (uint32_t)ci->change_type;
            h->change_peer = ci->change_peer ? peer_id(d, ci->change_peer) : 0;
            h->change_failed =
                ci->has_change_state &&
                ci->change_state == CURVE__HEARTBEAT__CONFIG_CHANGE_STATE__CHANGE_FAILED;
        }
    }
    mds_chunkserver *me = mds_topo_cs(&d->topo, req->chunkserver_id);
    mds_cs_state before = me ? me->state : MDS_CS_OFFLINE;
    mds_hb_report rep = {.cs_id = req->chunkserver_id, .token = req->token,
                         .host = req->ip, .port = req->port,
                         .disk_failed = req->disk_state && req->disk_state->failed,
                         .capacity = req->disk_capacity, .used = req->disk_used,
                         .copysets = cps, .ncopysets = req->n_copysets};
    mds_hb_result *res = d->hbres;
    int rc = mds_hb_process(&d->topo, &d->ops, &d->hbcfg, &rep, curve_now_mono_ms(), res, err,
                            sizeof(err));
    if (rc < 0) {
        pthread_mutex_unlock(&d->lock);
        curve_counter_inc(d->m.hb_err);
        if (rc == CURVE_ERR_NOT_FOUND)
            resp.status = CURVE__HEARTBEAT__HEARTBEAT_STATUS__HB_UNKNOWN_CHUNKSERVER;
        else if (rc == CURVE_ERR_PERMISSION || rc == CURVE_ERR_FENCED)
            resp.status = CURVE__HEARTBEAT__HEARTBEAT_STATUS__HB_BAD_TOKEN;
        else if (rc == -EINVAL)
            resp.status = CURVE__HEARTBEAT__HEARTBEAT_STATUS__HB_INVALID_REQUEST;
        else
            resp.status = CURVE__HEARTBEAT__HEARTBEAT_STATUS__HB_FAILED;
        resp.error = err;
        mds_reply_ok(d, ctx, &resp.base);
        goto out;
    }
    curve_counter_inc(d->m.hb);
    log_events(d, res->events, res->nevents);
    /* Service health (judged in the scheduler tick); a chunkserver marked slow gets its
     * leader transfers in this very reply. */
    uint64_t hb_now = curve_now_mono_ms();
    slow_report(d, req, hb_now);
    if (mds_slow_is_marked(&d->slow, req->chunkserver_id)) {
        mds_slow_glue_schedule(d, hb_now);
        res->nops = mds_optable_for_leader(&d->ops, &d->topo, req->chunkserver_id, res->ops,
                                           MDS_HB_MAX_REPLY_OPS);
    }
    size_t nops = 0;
    for (size_t i = 0; i < res->nops; i++) {
        /* A new peer must have the copyset before the leader adds it (else the group would
         * count a member that cannot vote): held back until the background thread made it. */
        if (!mds_op_prepared(d, &res->ops[i]))
            continue;
        op_pb(d, &res->ops[i], &obufs[nops]);
        pops[nops] = &obufs[nops].op;
        nops++;
    }
    resp.n_operators = nops;
    resp.operators = pops;
    for (size_t i = 0; i < res->ngc; i++) {
        curve__heartbeat__copyset_info__init(&gcs[i]);
        gcs[i].logical_pool_id = res->gc[i].pool_id;
        gcs[i].copyset_id = res->gc[i].copyset_id;
        gcs[i].epoch = res->gc[i].epoch; /* newer than the chunkserver's: it recycles; 0: keeps */
        pgcs[i] = &gcs[i];
        if (res->gc[i].epoch != 0)
            CLOG_INFO("mds: chunkserver %u is no longer a member of copyset (%u, %u) (epoch %" PRIu64
                      "): told to recycle its replica",
                      req->chunkserver_id, res->gc[i].pool_id, res->gc[i].copyset_id,
                      res->gc[i].epoch);
    }
    resp.n_stale_copysets = res->ngc;
    resp.stale_copysets = pgcs;
    resp.status = CURVE__HEARTBEAT__HEARTBEAT_STATUS__HB_OK;
    /* Reply first (packed now), then store what changed. The reply releases the request:
     * keep what is still needed. */
    const uint32_t cs_id = req->chunkserver_id;
    const size_t ncps = req->n_copysets;
    mds_reply_ok(d, ctx, &resp.base);
    req = NULL;

    if (res->changed_overflow)
        keycap = ncps + 2;
    keys = calloc(keycap, sizeof(char *));
    vals = calloc(keycap, sizeof(char *));
    if (!keys || !vals) {
        pthread_mutex_unlock(&d->lock);
        goto out;
    }
    me = mds_topo_cs(&d->topo, cs_id);
    if (me && me->state != before)
        mds_store_record(MDS_TOPO_CS, me, &keys[nkeys], &vals[nkeys]) == 0 ? nkeys++ : 0;
    if (res->changed_overflow) {
        for (size_t i = 0; i < ncps; i++) {
            const mds_copyset *c = mds_topo_copyset(&d->topo, cps[i].pool_id, cps[i].copyset_id);
            if (c && mds_store_record(MDS_TOPO_COPYSET, c, &keys[nkeys], &vals[nkeys]) == 0)
                nkeys++;
        }
    } else {
        for (size_t i = 0; i < res->nchanged; i++) {
            const mds_copyset *c = mds_topo_copyset(&d->topo, res->changed[i].pool_id,
                                                    res->changed[i].copyset_id);
            if (c && mds_store_record(MDS_TOPO_COPYSET, c, &keys[nkeys], &vals[nkeys]) == 0)
                nkeys++;
        }
    }
    rc = mds_persist_unlock(d, keys, vals, nkeys);
    if (rc < 0)
        CLOG_WARN("mds: storing heartbeat changes of chunkserver %u failed: %s",
                  cs_id, curve_strerror(rc));
    curve_latency_record(d->m.hb_lat, (curve_now_mono_ns() - t0) / 1000);
out:
    free(keys);
    free(vals);
    free(cps);
    free(obufs);
    free(pops);
    free(gcs);
    free(pgcs);
}

#define H(name, fn)                                                                                \
    static void name(rpc_call_ctx *ctx, const ProtobufCMessage *req, curve_iobuf *a, void *arg)    \
    {                                                                                              \
        mds_submit(arg, ctx, req, fn);                                                             \
    }
H(r_register, h_register)
H(r_heartbeat, h_heartbeat)
#undef H

#define D(x) &curve__heartbeat__##x##__descriptor
const rpc_method_def mds_heartbeat_methods[] = {
    {1, "RegisterChunkServer", D(register_chunk_server_request),
     D(register_chunk_server_response), r_register},
    {2, "Heartbeat", D(heartbeat_request), D(heartbeat_response), r_heartbeat},
};
#undef D
const size_t mds_heartbeat_nmethods = 2;
