/*
 * TopologyService (service 31) and StatusService (service 33) of proto/mds.proto.
 * Topology reads are served from the in-memory model (d->topo under d->lock); changes are
 * applied in memory (all or nothing) and then written to etcd under persist_lock.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "curve/errors.h"
#include "mds.pb-c.h"
#include "mds/mds_daemon.h"

/* Places the copysets of every logical pool that has none yet (needs >= 3 failure domains
 * with online chunkservers). Called with d->lock held. Returns the number of pools placed. */
/* Placement waits until every server of the physical pool has a registered chunkserver, or
 * until the topology has been quiet (no apply, no registration) for placement_wait: placing
 * while chunkservers are still registering would leave the late ones empty. */
static bool pool_ready(mds_daemon *d, const mds_lpool *l, uint64_t now)
{
    if (now - atomic_load(&d->last_topo_change_ms) >= d->placement_wait_ms)
        return true;
    const mds_topology *t = &d->topo;
    for (size_t i = 0; i < t->servers.n; i++) {
        const mds_server *s = &t->servers.v[i];
        const mds_zone *z = mds_topo_zone(t, s->zone_id);
        if (!z || z->ppool_id != l->ppool_id)
            continue;
        bool has = false;
        for (size_t k = 0; k < t->css.n && !has; k++)
            has = t->css.v[k].server_id == s->id && t->css.v[k].state != MDS_CS_RETIRED;
        if (!has)
            return false;
    }
    return true;
}

static size_t place_pending_pools(mds_daemon *d, uint32_t *placed, size_t max)
{
    size_t n = 0;
    uint64_t now = curve_now_mono_ms();
    for (size_t i = 0; i < d->topo.lpools.n; i++) {
        mds_lpool *l = &d->topo.lpools.v[i];
        if (l->copysets_created || !pool_ready(d, l, now))
            continue;
        char err[256];
        mds_place_stats st;
        uint32_t id = l->id;
        int rc = mds_place_create_pool_copysets(&d->topo, id, &d->rng, NULL, &st, err,
                                                sizeof(err));
        if (rc < 0) {
            CLOG_DEBUG("mds: logical pool %u: copysets not placed yet: %s", id, err);
            continue;
        }
        CLOG_INFO("mds: logical pool %u: placed %u copysets on %u chunkservers (scatter width "
                  "%u..%u, %u attempts)", id, mds_topo_lpool(&d->topo, id)->copyset_count,
                  st.ncandidates, st.sw_min, st.sw_max, st.attempts);
        if (n < max)
            placed[n] = id;
        n++;
    }
    return n;
}

int mds_place_pending(mds_daemon *d, uint32_t *placed, size_t max)
{
    pthread_mutex_lock(&d->lock);
    size_t n = place_pending_pools(d, placed, max);
    pthread_mutex_unlock(&d->lock);
    if (n == 0)
        return 0;
    int rc = mds_topo_persist_all(d, true);
    return rc < 0 ? rc : (int)n;
}

static void h_apply(mds_daemon *d, rpc_call_ctx *ctx, const ProtobufCMessage *m)
{
    const Curve__Mds__ApplyTopologyRequest *req = (const void *)m;
    char err[512] = "";
    size_t added = 0;
    pthread_mutex_lock(&d->lock);
    int rc = mds_topo_apply_json(&d->topo, req->json, strlen(req->json), &added, err,
                                 sizeof(err));
    pthread_mutex_unlock(&d->lock);
    if (rc < 0)
        return mds_reply_err(d, ctx, rc, "apply topology: %s", err);
    if (added)
        atomic_store(&d->last_topo_change_ms, curve_now_mono_ms());
    rc = mds_topo_persist_all(d, false);
    uint32_t placed[64];
    int np = rc < 0 ? rc : mds_place_pending(d, placed, 64);
    if (np < 0)
        return mds_reply_err(d, ctx, np, "apply topology: storing in etcd failed: %s",
                             curve_strerror(np));
    Curve__Mds__ApplyTopologyResponse resp = CURVE__MDS__APPLY_TOPOLOGY_RESPONSE__INIT;
    resp.added = (uint32_t)added;
    resp.n_created_pools = (size_t)np < 64 ? (size_t)np : 64;
    resp.created_pools = placed;
    mds_reply_ok(d, ctx, &resp.base);
}

static void cs_counts(const mds_topology *t, uint32_t cs_id, uint32_t *copysets,
                      uint32_t *leaders)
{
    *copysets = *leaders = 0;
    for (size_t i = 0; i < t->copysets.n; i++) {
        const mds_copyset *c = &t->copysets.v[i];
        if (mds_copyset_has_peer(c, cs_id))
            (*copysets)++;
        if (c->leader == cs_id)
            (*leaders)++;
    }
}

static void h_list_topo(mds_daemon *d, rpc_call_ctx *ctx, const ProtobufCMessage *m)
{
    pthread_mutex_lock(&d->lock);
    const mds_topology *t = &d->topo;
    Curve__Mds__ListTopologyResponse resp = CURVE__MDS__LIST_TOPOLOGY_RESPONSE__INIT;
    Curve__Mds__PhysicalPoolInfo *pp = calloc(t->ppools.n + 1, sizeof(*pp));
    Curve__Mds__ZoneInfo *zs = calloc(t->zones.n + 1, sizeof(*zs));
    Curve__Mds__ServerInfo *ss = calloc(t->servers.n + 1, sizeof(*ss));
    Curve__Mds__ChunkServerInfo *cs = calloc(t->css.n + 1, sizeof(*cs));
    Curve__Mds__LogicalPoolInfo *lp = calloc(t->lpools.n + 1, sizeof(*lp));
    void **ptrs = calloc(t->ppools.n + t->zones.n + t->servers.n + t->css.n + t->lpools.n + 1,
                         sizeof(void *));
    if (!pp || !zs || !ss || !cs || !lp || !ptrs) {
        pthread_mutex_unlock(&d->lock);
        mds_reply_err(d, ctx, -ENOMEM, "list topology: out of memory");
        goto out;
    }
    void **p = ptrs;
    resp.physical_pools = (void *)p;
    for (size_t i = 0; i < t->ppools.n; i++, p++) {
        curve__mds__physical_pool_info__init(&pp[i]);
        pp[i].id = t->ppools.v[i].id;
        pp[i].name = t->ppools.v[i].name;
        *p = &pp[i];
    }
    resp.n_physical_pools = t->ppools.n;
    resp.zones = (void *)p;
    for (size_t i = 0; i < t->zones.n; i++, p++) {
        curve__mds__zone_info__init(&zs[i]);
        zs[i].id = t->zones.v[i].id;
        zs[i].physical_pool = t->zones.v[i].ppool_id;
        zs[i].name = t->zones.v[i].name;
        *p = &zs[i];
    }
    resp.n_zones = t->zones.n;
    resp.servers = (void *)p;
    for (size_t i = 0; i < t->servers.n; i++, p++) {
        curve__mds__server_info__init(&ss[i]);
        ss[i].id = t->servers.v[i].id;
        ss[i].zone = t->servers.v[i].zone_id;
        ss[i].name = t->servers.v[i].name;
        ss[i].host = t->servers.v[i].host;
        *p = &ss[i];
    }
    resp.n_servers = t->servers.n;
    resp.chunkservers = (void *)p;
    for (size_t i = 0; i < t->css.n; i++, p++) {
        const mds_chunkserver *c = &t->css.v[i];
        curve__mds__chunk_server_info__init(&cs[i]);
        cs[i].id = c->id;
        cs[i].server = c->server_id;
        cs[i].zone = c->zone_id;
        cs[i].host = (char *)c->host;
        cs[i].port = c->port;
        cs[i].state = (char *)mds_cs_state_name(c->state);
        cs[i].capacity = c->capacity;
        cs[i].used = c->used;
        cs_counts(t, c->id, &cs[i].copysets, &cs[i].leaders);
        cs[i].has_slow = 1;
        cs[i].slow = d->slow_init && mds_slow_is_marked(&d->slow, c->id);
        *p = &cs[i];
    }
    resp.n_chunkservers = t->css.n;
    resp.logical_pools = (void *)p;
    for (size_t i = 0; i < t->lpools.n; i++, p++) {
        const mds_lpool *l = &t->lpools.v[i];
        curve__mds__logical_pool_info__init(&lp[i]);
        lp[i].id = l->id;
        lp[i].physical_pool = l->ppool_id;
        lp[i].name = (char *)l->name;
        lp[i].replicas = l->replicas;
        lp[i].copysets = l->copyset_count;
        lp[i].created = l->copysets_created;
        *p = &lp[i];
    }
    resp.n_logical_pools = t->lpools.n;
    /* Packed before returning: the strings may point into the topology. */
    mds_reply_ok(d, ctx, &resp.base);
    pthread_mutex_unlock(&d->lock);
out:
    free(pp);
    free(zs);
    free(ss);
    free(cs);
    free(lp);
    free(ptrs);
}

/* Fills a CopysetInfo; strings are allocated into `strs` (n_strs counts them). */
typedef struct cs_info_buf {
    Curve__Mds__CopysetInfo info;
    uint32_t peers[MDS_MAX_PEERS];
    char addr[MDS_MAX_PEERS][MDS_ADDR_MAX];
    char *paddr[MDS_MAX_PEERS];
    char leader[MDS_ADDR_MAX];
    char op[96];
} cs_info_buf;

static bool copyset_healthy(const mds_topology *t, const mds_copyset *c, uint32_t *alive)
{
    uint32_t n = 0;
    bool all_online = true;
    for (uint32_t i = 0; i < c->npeers; i++) {
        const mds_chunkserver *cs = mds_topo_cs(t, c->peers[i]);
        if (cs && (cs->state == MDS_CS_ONLINE || cs->state == MDS_CS_UNSTABLE))
            n++;
        if (!cs || cs->state != MDS_CS_ONLINE)
            all_online = false;
    }
    if (alive)
        *alive = n;
    const mds_lpool *l = mds_topo_lpool(t, c->pool_id);
    return all_online && l && c->npeers == l->replicas && c->leader != 0;
}

static void fill_copyset(mds_daemon *d, const mds_copyset *c, cs_info_buf *b)
{
    const mds_topology *t = &d->topo;
    curve__mds__copyset_info__init(&b->info);
    b->info.logical_pool_id = c->pool_id;
    b->info.copyset_id = c->id;
    b->info.n_peers = c->npeers;
    b->info.peers = b->peers;
    b->info.n_peer_addrs = c->npeers;
    b->info.peer_addrs = b->paddr;
    for (uint32_t i = 0; i < c->npeers; i++) {
        b->peers[i] = c->peers[i];
        const mds_chunkserver *cs = mds_topo_cs(t, c->peers[i]);
        if (cs)
            mds_cs_peer(cs, b->addr[i], MDS_ADDR_MAX);
        else
            snprintf(b->addr[i], MDS_ADDR_MAX, "unknown-%u", c->peers[i]);
        b->paddr[i] = b->addr[i];
    }
    b->info.has_leader = true;
    b->info.leader = c->leader;
    const mds_chunkserver *l = c->leader ? mds_topo_cs(t, c->leader) : NULL;
    if (l) {
        mds_cs_peer(l, b->leader, sizeof(b->leader));
        b->info.leader_addr = b->leader;
    }
    b->info.epoch = c->epoch;
    b->info.term = c->term;
    const mds_operator *op = mds_optable_find(&d->ops, c->pool_id, c->id);
    if (op) {
        snprintf(b->op, sizeof(b->op), "%s %u->%u", mds_op_type_name(op->type), op->old_peer,
                 op->new_peer);
        b->info.operator_ = b->op;
    }
    b->info.healthy = copyset_healthy(t, c, NULL);
}

static void h_list_copysets(mds_daemon *d, rpc_call_ctx *ctx, const ProtobufCMessage *m)
{
    const Curve__Mds__ListCopysetsRequest *req = (const void *)m;
    uint32_t pool = req->has_logical_pool_id ? req->logical_pool_id : 0;
    uint32_t csid = req->has_chunkserver_id ? req->chunkserver_id : 0;
    pthread_mutex_lock(&d->lock);
    const mds_topology *t = &d->topo;
    cs_info_buf *bufs = calloc(t->copysets.n + 1, sizeof(*bufs));
    Curve__Mds__CopysetInfo **ptrs = calloc(t->copysets.n + 1, sizeof(*ptrs));
    if (!bufs || !ptrs) {
        pthread_mutex_unlock(&d->lock);
        mds_reply_err(d, ctx, -ENOMEM, "list copysets: out of memory");
        goto out;
    }
    size_t n = 0;
    for (size_t i = 0; i < t->copysets.n; i++) {
        const mds_copyset *c = &t->copysets.v[i];
        if ((pool && c->pool_id != pool) || (csid && !mds_copyset_has_peer(c, csid)))
            continue;
        fill_copyset(d, c, &bufs[n]);
        ptrs[n] = &bufs[n].info;
        n++;
    }
    pthread_mutex_unlock(&d->lock);
    Curve__Mds__ListCopysetsResponse resp = CURVE__MDS__LIST_COPYSETS_RESPONSE__INIT;
    resp.n_copysets = n;
    resp.copysets = ptrs;
    mds_reply_ok(d, ctx, &resp.base);
out:
    free(bufs);
    free(ptrs);
}

static void h_get_copyset(mds_daemon *d, rpc_call_ctx *ctx, const ProtobufCMessage *m)
{
    const Curve__Mds__GetCopysetRequest *req = (const void *)m;
    cs_info_buf b;
    pthread_mutex_lock(&d->lock);
    const mds_copyset *c = mds_topo_copyset(&d->topo, req->logical_pool_id, req->copyset_id);
    if (c)
        fill_copyset(d, c, &b);
    pthread_mutex_unlock(&d->lock);
    if (!c)
        return mds_reply_err(d, ctx, CURVE_ERR_NOT_FOUND, "copyset (%u, %u) does not exist",
                             req->logical_pool_id, req->copyset_id);
    mds_reply_ok(d, ctx, &b.info.base);
}

static void h_retire(mds_daemon *d, rpc_call_ctx *ctx, const ProtobufCMessage *m)
{
    const Curve__Mds__RetireChunkServerRequest *req = (const void *)m;
    char *key = NULL, *val = NULL;
    pthread_mutex_lock(&d->lock);
    int rc = mds_topo_retire_cs(&d->topo, req->chunkserver_id);
    if (rc == 0)
        rc = mds_store_record(MDS_TOPO_CS, mds_topo_cs(&d->topo, req->chunkserver_id), &key,
                              &val);
    if (rc < 0) {
        pthread_mutex_unlock(&d->lock);
        return mds_reply_err(d, ctx, rc, "retire chunkserver %u: %s", req->chunkserver_id,
                             curve_strerror(rc));
    }
    rc = mds_persist_unlock(d, &key, &val, 1);
    if (rc < 0)
        return mds_reply_err(d, ctx, rc, "retire chunkserver %u: etcd: %s",
                             req->chunkserver_id, curve_strerror(rc));
    Curve__Mds__Empty e = CURVE__MDS__EMPTY__INIT;
    mds_reply_ok(d, ctx, &e.base);
}

static void h_status(mds_daemon *d, rpc_call_ctx *ctx, const ProtobufCMessage *m)
{
    Curve__Mds__ClusterStatusResponse r = CURVE__MDS__CLUSTER_STATUS_RESPONSE__INIT;
    r.leader = d->rpc_addr;
    r.etcd_ok = atomic_load(&d->etcd_ok);
    pthread_mutex_lock(&d->lock);
    const mds_topology *t = &d->topo;
    r.chunkservers = (uint32_t)t->css.n;
    for (size_t i = 0; i < t->css.n; i++) {
        switch (t->css.v[i].state) {
        case MDS_CS_ONLINE: r.online++; break;
        case MDS_CS_UNSTABLE: r.unstable++; break;
        case MDS_CS_OFFLINE: r.offline++; break;
        case MDS_CS_RETIRED: r.retired++; break;
        }
    }
    r.logical_pools = (uint32_t)t->lpools.n;
    r.copysets = (uint32_t)t->copysets.n;
    for (size_t i = 0; i < t->copysets.n; i++) {
        uint32_t alive;
        const mds_copyset *c = &t->copysets.v[i];
        if (copyset_healthy(t, c, &alive))
            r.healthy_copysets++;
        else if (alive * 2 > c->npeers)
            r.degraded_copysets++;
        else
            r.majority_lost++;
    }
    r.operators = (uint32_t)d->ops.n;
    r.pending_purge = d->pending_purge;
    r.has_slow_chunkservers = 1;
    r.slow_chunkservers = d->slow_init ? (uint32_t)mds_slow_count(&d->slow) : 0;
    pthread_mutex_unlock(&d->lock);
    mds_reply_ok(d, ctx, &r.base);
}

#define H(name, fn)                                                                                \
    static void name(rpc_call_ctx *ctx, const ProtobufCMessage *req, curve_iobuf *a, void *arg)    \
    {                                                                                              \
        mds_submit(arg, ctx, req, fn);                                                             \
    }
H(r_apply, h_apply)
H(r_list_topo, h_list_topo)
H(r_list_copysets, h_list_copysets)
H(r_get_copyset, h_get_copyset)
H(r_retire, h_retire)
H(r_status, h_status)
#undef H

#define D(x) &curve__mds__##x##__descriptor
const rpc_method_def mds_topology_methods[] = {
    {1, "ApplyTopology", D(apply_topology_request), D(apply_topology_response), r_apply},
    {2, "ListTopology", D(list_topology_request), D(list_topology_response), r_list_topo},
    {3, "ListCopysets", D(list_copysets_request), D(list_copysets_response), r_list_copysets},
    {4, "GetCopyset", D(get_copyset_request), D(copyset_info), r_get_copyset},
    {5, "RetireChunkServer", D(retire_chunk_server_request), D(empty), r_retire},
};
const size_t mds_topology_nmethods = sizeof(mds_topology_methods) / sizeof(mds_topology_methods[0]);
const rpc_method_def mds_status_methods[] = {
    {1, "ClusterStatus", D(cluster_status_request), D(cluster_status_response), r_status},
};
const size_t mds_status_nmethods = 1;
#undef D
