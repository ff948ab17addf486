/* curve_volio_ops over RPC (chunk_transport.h). */
#include "client/chunk_transport.h"
#include "client/fastpath.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.pb-c.h"
#include "cli.pb-c.h"
#include "common/assert.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "curve/errors.h"
#include "mds.pb-c.h"
#include "rpc/rpc_channel.h"

/* ---- channel map ------------------------------------------------------------------------- */

typedef struct chan_ent {
    char addr[CURVE_ADDR_MAX];
    rpc_channel *ch;
    uint64_t last_use;
} chan_ent;

struct curve_chanmap {
    curve_loop *loop;
    chan_ent ents[CURVE_CHANMAP_MAX];
    uint32_t n;
    uint64_t tick;
};

int curve_chanmap_new(curve_loop *loop, curve_chanmap **out)
{
    CURVE_ASSERT(loop != NULL && out != NULL);
    curve_chanmap *cm = calloc(1, sizeof(*cm));
    if (!cm)
        return -ENOMEM;
    cm->loop = loop;
    *out = cm;
    return 0;
}

void curve_chanmap_free(curve_chanmap *cm)
{
    if (!cm)
        return;
    CURVE_ASSERT(!curve_loop_is_current(cm->loop));
    for (uint32_t i = 0; i < cm->n; i++)
        rpc_channel_close_sync(cm->ents[i].ch);
    free(cm);
}

/* Loop thread only. Returns 0, CURVE_ERR_BUSY (map full of busy channels) or an error. */
static int chanmap_get(curve_chanmap *cm, const char *addr, rpc_channel **out)
{
    cm->tick++;
    for (uint32_t i = 0; i < cm->n; i++)
        if (strcmp(cm->ents[i].addr, addr) == 0) {
            cm->ents[i].last_use = cm->tick;
            *out = cm->ents[i].ch;
            return 0;
        }
    uint32_t slot = cm->n;
    if (cm->n == CURVE_CHANMAP_MAX) {
        /* evict the least recently used idle channel (a busy one would fail its calls) */
        uint64_t best = UINT64_MAX;
        for (uint32_t i = 0; i < cm->n; i++)
            if (rpc_channel_inflight(cm->ents[i].ch) == 0 && cm->ents[i].last_use < best) {
                best = cm->ents[i].last_use;
                slot = i;
            }
        if (slot == cm->n)
            return CURVE_ERR_BUSY;
        rpc_channel_close(cm->ents[slot].ch, NULL, NULL);
        cm->ents[slot].ch = NULL;
    }
    rpc_channel_opts o = {.connect_timeout_ms = 1000, .backoff_max_ms = 200};
    int rc = rpc_channel_new(cm->loop, addr, &o, &cm->ents[slot].ch);
    if (rc != 0) {
        if (slot < cm->n) { /* the evicted slot: compact */
            cm->ents[slot] = cm->ents[cm->n - 1];
            cm->n--;
        }
        return rc;
    }
    snprintf(cm->ents[slot].addr, sizeof(cm->ents[slot].addr), "%s", addr);
    cm->ents[slot].last_use = cm->tick;
    if (slot == cm->n)
        cm->n++;
    *out = cm->ents[slot].ch;
    return 0;
}

const char *curve_retry_cause_name(curve_retry_cause c)
{
    static const char *names[] = {"overload",         "timeout",    "redirected",
                                  "copyset_notexist", "connection", "other"};
    return (unsigned)c < CURVE_CAUSE_COUNT_ ? names[c] : "other";
}

curve_retry_cause curve_retry_cause_of(int st, bool timed_out)
{
    if (timed_out || st == CURVE_ERR_TIMEOUT)
        return CURVE_CAUSE_TIMEOUT;
    switch (st) {
    case CURVE_ERR_OVERLOAD:
    case CURVE_ERR_RPC_OVERLOAD:
        return CURVE_CAUSE_OVERLOAD;
    case CURVE_ERR_REDIRECTED:
    case CURVE_ERR_NOT_LEADER:
        return CURVE_CAUSE_REDIRECTED;
    case CURVE_ERR_COPYSET_NOTEXIST:
        return CURVE_CAUSE_COPYSET_NOTEXIST;
    case CURVE_ERR_RPC_CONN:
    case -ECONNREFUSED:
    case -ECONNRESET:
        return CURVE_CAUSE_CONNECTION;
    default:
        return CURVE_CAUSE_OTHER;
    }
}

/* ---- one backend call -------------------------------------------------------------------- */

typedef struct tcall {
    curve_loop_msg msg; /* posts the completion back to the volume's loop */
    curve_chunk_transport *t;
    curve_volio_call *c;
    int status;
    bool timed_out;
    char hint[CURVE_ADDR_MAX];
    uint64_t term;
    /* GET_LEADER: next peer to ask */
    uint32_t next_peer;
    /* partial discard: bytes zeroed so far */
    uint32_t done_len;
    curve_timer timer;
    /* SLEEP: on the transport's list of armed back-off timers */
    struct tcall *snext, *sprev;
} tcall;

static void fail_later_cb(void *arg);

/* Completes `tc` with `status` from the loop (never inside the ops call). */
static void complete_later(tcall *tc, int status)
{
    tc->status = status;
    tc->msg.fn = fail_later_cb;
    tc->msg.arg = tc;
    int rc = curve_loop_post_msg(tc->t->loop, &tc->msg);
    CURVE_ASSERT(rc == 0); /* the IO loops outlive every open volume */
}

/* ---- SEND -------------------------------------------------------------------------------- */

static void send_complete(tcall *tc, int st, bool timed_out, const char *hint)
{
    curve_chunk_transport *t = tc->t;
    curve_volio_call *c = tc->c;
    CURVE_ASSERT(t->outstanding > 0);
    t->outstanding--;
    if (st != 0 && st != CURVE_ERR_CHUNK_NOTEXIST && !curve_retry_status_is_fatal(st) &&
        t->on_retry)
        t->on_retry(t->cb_ctx, curve_retry_cause_of(st, timed_out));
    if (st == CURVE_ERR_EPOCH_TOO_OLD && !atomic_exchange(&t->fenced, true))
        CLOG_ERROR("libcurve: volume '%s' (id %llu) fenced: a newer exclusive opener bumped the "
                   "epoch",
                   t->path, (unsigned long long)t->file_id);
    char h[CURVE_ADDR_MAX] = "";
    if (hint && *hint && curve_peer_addr_normalize(hint, h, sizeof(h)) != 0)
        h[0] = '\0';
    free(tc);
    curve_volio_send_done(c, st, timed_out, h[0] ? h : NULL);
}

static int send_chunk_rpc(tcall *tc);

static void chunk_reply_cb(rpc_result *r, void *arg)
{
    tcall *tc = arg;
    curve_volio_call *c = tc->c;
    if (r->status != 0) {
        send_complete(tc, r->status, r->status == CURVE_ERR_TIMEOUT, NULL);
        return;
    }
    const Curve__Chunk__ChunkResponse *resp = (const void *)r->resp;
    if (!resp) {
        send_complete(tc, CURVE_ERR_RPC_PROTO, false, NULL);
        return;
    }
    int st = curve_chunk_status_to_err((int)resp->status);
    if (st == 0 && c->op == CURVE_RETRY_OP_READ) {
        if (r->attach.len != c->len) {
            CLOG_WARN("libcurve: read of chunk %llu from %s: %zu bytes instead of %u",
                      (unsigned long long)c->chunk_id, c->peer.addr, r->attach.len, c->len);
            st = CURVE_ERR_RPC_PROTO;
        } else {
            curve_iobuf_copyout(&r->attach, 0, c->buf, c->len);
        }
    }
    if (st == 0 && c->op == CURVE_RETRY_OP_DISCARD && tc->done_len < c->len) {
        /* partial discard: next zero write */
        int rc = send_chunk_rpc(tc);
        if (rc == 0)
            return;
        st = rc;
    }
    if (st != 0 && st != CURVE_ERR_REDIRECTED && st != CURVE_ERR_CHUNK_NOTEXIST && resp->error)
        CLOG_DEBUG("libcurve: chunk %llu at %s: %s", (unsigned long long)c->chunk_id, c->peer.addr,
                   resp->error);
    send_complete(tc, st, false, st == CURVE_ERR_REDIRECTED ? resp->leader_hint : NULL);
}

/* Source of the zero writes of partial discards (at most CURVE_RPC_SIZE_MAX per RPC). */
static const uint8_t zeros[CURVE_RPC_SIZE_MAX];

/* Issues the chunk RPC for tc (or the next zero write of a partial discard). */
static int send_chunk_rpc(tcall *tc)
{
    curve_chunk_transport *t = tc->t;
    curve_volio_call *c = tc->c;
    rpc_channel *ch;
    int rc = chanmap_get(t->chans, c->peer.addr, &ch);
    if (rc != 0)
        return rc;
    Curve__Chunk__ChunkRequest req = CURVE__CHUNK__CHUNK_REQUEST__INIT;
    req.logical_pool_id = c->pool_id;
    req.copyset_id = c->copyset_id;
    req.chunk_id = c->chunk_id;
    req.has_file_id = 1;
    req.file_id = t->file_id;
    /* readers are not fenced by an exclusive writer: they send no epoch at all */
    req.has_epoch = t->writer;
    req.epoch = t->writer ? c->epoch : 0;
    curve_iobuf att;
    curve_iobuf_init(&att);
    uint32_t method;
    bool whole = c->chunk_off == 0 && c->len == t->geom.chunk_size;
    switch (c->op) {
    case CURVE_RETRY_OP_READ:
        req.op_type = CURVE__CHUNK__CHUNK_OP_TYPE__CHUNK_OP_READ;
        method = 2;
        req.has_offset = req.has_size = 1;
        req.offset = c->chunk_off;
        req.size = c->len;
        break;
    case CURVE_RETRY_OP_WRITE:
        req.op_type = CURVE__CHUNK__CHUNK_OP_TYPE__CHUNK_OP_WRITE;
        method = 1;
        req.has_offset = req.has_size = req.has_data_crc = 1;
        req.offset = c->chunk_off;
        req.size = c->len;
        req.data_crc = curve_crc32c(0, c->buf, c->len);
        /* Copied: the RPC layer may hold the attachment after the call completed (timeout
         * while queued), but the user may free its buffer once the IO completed. */
        rc = curve_iobuf_append_copy(&att, c->buf, c->len);
        break;
    case CURVE_RETRY_OP_DISCARD:
        if (whole) {
            req.op_type = CURVE__CHUNK__CHUNK_OP_TYPE__CHUNK_OP_DELETE;
            method = 3;
            tc->done_len = c->len;
            break;
        }
        /* a partial chunk cannot be deleted: write zeros, at most max_rpc_size per RPC */
        req.op_type = CURVE__CHUNK__CHUNK_OP_TYPE__CHUNK_OP_WRITE;
        method = 1;
        uint32_t n = c->len - tc->done_len;
        if (n > t->geom.max_rpc_size)
            n = t->geom.max_rpc_size;
        req.has_offset = req.has_size = 1;
        req.offset = c->chunk_off + tc->done_len;
        req.size = n;
        /* one slice of a static zero area (read-only, never freed): no copy, no memset */
        curve_buf *zb = curve_buf_wrap((void *)zeros, n, NULL, NULL);
        if (!zb) {
            rc = -ENOMEM;
        } else {
            rc = curve_iobuf_append(&att, zb, 0, n);
            curve_buf_unref(zb);
        }
        tc->done_len += n;
        break;
    default:
        CURVE_UNREACHABLE();
    }
    if (rc != 0) {
        curve_iobuf_reset(&att);
        return rc;
    }
    rc = rpc_channel_call(ch, CURVE_CHUNK_SVC, method, &req.base, &att,
                          &curve__chunk__chunk_response__descriptor, (uint32_t)c->timeout_ms,
                          chunk_reply_cb, tc, NULL);
    curve_iobuf_reset(&att);
    return rc;
}

/* ---- GET_LEADER -------------------------------------------------------------------------- */

static void ask_next_peer(tcall *tc);

static void leader_complete(tcall *tc, const char *leader, uint64_t term)
{
    curve_chunk_transport *t = tc->t;
    curve_volio_call *c = tc->c;
    CURVE_ASSERT(t->outstanding > 0);
    t->outstanding--;
    char a[CURVE_ADDR_MAX] = "";
    if (leader && curve_peer_addr_normalize(leader, a, sizeof(a)) != 0)
        a[0] = '\0';
    free(tc);
    curve_volio_leader_done(c, a[0] ? a : NULL, a[0] ? term : 0);
}

static void leader_reply_cb(rpc_result *r, void *arg)
{
    tcall *tc = arg;
    const Curve__Cli__GetLeaderResponse *resp = (const void *)r->resp;
    if (r->status == 0 && resp && resp->leader && *resp->leader &&
        (resp->status == CURVE__CLI__CLI_STATUS__CLI_OK ||
         resp->status == CURVE__CLI__CLI_STATUS__CLI_REDIRECTED)) {
        leader_complete(tc, resp->leader, resp->has_term ? resp->term : 0);
        return;
    }
    ask_next_peer(tc);
}

static void ask_next_peer(tcall *tc)
{
    curve_chunk_transport *t = tc->t;
    curve_volio_call *c = tc->c;
    while (tc->next_peer < c->npeers && !t->canceled) { /* canceled: ask nobody else */
        const curve_peer *p = &c->peers[tc->next_peer++];
        rpc_channel *ch;
        if (chanmap_get(t->chans, p->addr, &ch) != 0)
            continue;
        Curve__Cli__GetLeaderRequest req = CURVE__CLI__GET_LEADER_REQUEST__INIT;
        req.logical_pool_id = c->pool_id;
        req.copyset_id = c->copyset_id;
        if (rpc_channel_call(ch, CURVE_CLI_SVC, 1, &req.base, NULL,
                             &curve__cli__get_leader_response__descriptor,
                             (uint32_t)t->leader_timeout_ms, leader_reply_cb, tc, NULL) == 0)
            return;
    }
    /* nobody to ask (any more): report "unknown" from the loop, never inside the ops call */
    complete_later(tc, 0);
}

/* ---- MDS calls --------------------------------------------------------------------------- */

static void mds_post_back(tcall *tc, int status);

static void copyset_answer(int status, const ProtobufCMessage *m, const char *errmsg, void *arg)
{
    tcall *tc = arg;
    curve_volio_call *c = tc->c;
    const Curve__Mds__CopysetInfo *ci = (const void *)m;
    if (status == 0) {
        curve_peer peers[CURVE_COPYSET_MAX_PEERS];
        char leader[CURVE_ADDR_MAX] = "";
        if (ci->logical_pool_id != c->pool_id || ci->copyset_id != c->copyset_id ||
            ci->n_peers != ci->n_peer_addrs || ci->n_peers == 0 ||
            ci->n_peers > CURVE_COPYSET_MAX_PEERS) {
            CLOG_WARN("libcurve: MDS answer for copyset %u.%u is inconsistent", c->pool_id,
                      c->copyset_id);
            status = CURVE_ERR_RPC_PROTO;
        }
        for (size_t i = 0; status == 0 && i < ci->n_peers; i++) {
            peers[i].cs_id = ci->peers[i];
            if (curve_peer_addr_normalize(ci->peer_addrs[i], peers[i].addr,
                                          sizeof(peers[i].addr)) != 0)
                status = CURVE_ERR_RPC_PROTO;
        }
        if (status == 0 && ci->leader_addr && *ci->leader_addr &&
            curve_peer_addr_normalize(ci->leader_addr, leader, sizeof(leader)) != 0)
            leader[0] = '\0';
        if (status == 0) {
            status = curve_metacache_put_copyset(tc->t->mc, c->pool_id, c->copyset_id, ci->epoch,
                                                 peers, (uint32_t)ci->n_peers,
                                                 leader[0] ? leader : NULL, ci->term);
            if (status == -ESTALE || (status == -EINVAL && leader[0]))
                /* an older view than ours, or a leader outside the peers: keep what we have,
                 * but store the membership without the odd leader */
                status = status == -ESTALE
                             ? 0
                             : curve_metacache_put_copyset(tc->t->mc, c->pool_id, c->copyset_id,
                                                           ci->epoch, peers, (uint32_t)ci->n_peers,
                                                           NULL, 0);
        }
    } else {
        CLOG_DEBUG("libcurve: copyset %u.%u from MDS: %s", c->pool_id, c->copyset_id,
                   errmsg && *errmsg ? errmsg : curve_strerror(status));
    }
    mds_post_back(tc, status);
}

static void segment_answer(int status, const ProtobufCMessage *m, const char *errmsg, void *arg)
{
    tcall *tc = arg;
    curve_chunk_transport *t = tc->t;
    curve_volio_call *c = tc->c;
    const Curve__Mds__SegmentResponse *sr = (const void *)m;
    if (status == 0) {
        uint64_t nchunks = t->geom.segment_size / t->geom.chunk_size;
        if (sr->file_id != t->file_id) {
            CLOG_ERROR("libcurve: '%s' is now file %llu, not %llu (deleted and re-created?)",
                       t->path, (unsigned long long)sr->file_id, (unsigned long long)t->file_id);
            status = CURVE_ERR_FENCED;
        } else if (t->writer && sr->epoch > t->epoch) {
            if (!atomic_exchange(&t->fenced, true))
                CLOG_ERROR("libcurve: volume '%s' fenced: epoch %llu > ours %llu (exclusive open "
                           "elsewhere)",
                           t->path, (unsigned long long)sr->epoch, (unsigned long long)t->epoch);
            status = CURVE_ERR_FENCED;
        } else if (sr->chunk_size != t->geom.chunk_size ||
                   sr->segment_size != t->geom.segment_size || sr->n_chunks != nchunks ||
                   sr->offset != c->seg_index * t->geom.segment_size) {
            CLOG_ERROR("libcurve: MDS segment %llu of '%s' does not match the volume geometry",
                       (unsigned long long)c->seg_index, t->path);
            status = CURVE_ERR_RPC_PROTO;
        } else {
            curve_chunk_loc *locs = calloc(nchunks, sizeof(*locs));
            if (!locs) {
                status = -ENOMEM;
            } else {
                for (size_t i = 0; i < nchunks; i++)
                    locs[i] = (curve_chunk_loc){.chunk_id = sr->chunks[i]->chunk_id,
                                                .pool_id = sr->logical_pool_id,
                                                .copyset_id = sr->chunks[i]->copyset_id};
                status = curve_metacache_put_segment(t->mc, t->file_id, c->seg_index, locs,
                                                     (uint32_t)nchunks);
                if (status == -EINVAL)
                    status = CURVE_ERR_RPC_PROTO; /* a chunk id 0 */
                free(locs);
            }
        }
    } else if (status != CURVE_ERR_NOT_FOUND) {
        CLOG_DEBUG("libcurve: segment %llu of '%s': %s", (unsigned long long)c->seg_index, t->path,
                   errmsg && *errmsg ? errmsg : curve_strerror(status));
    }
    mds_post_back(tc, status);
}

static void mds_back_cb(void *arg)
{
    tcall *tc = arg;
    curve_chunk_transport *t = tc->t;
    curve_volio_call *c = tc->c;
    int st = tc->status;
    CURVE_ASSERT(t->outstanding > 0);
    t->outstanding--;
    free(tc);
    if (c->kind == CURVE_VOLIO_CALL_REFRESH_MDS)
        curve_volio_mds_done(c, st);
    else
        curve_volio_segment_done(c, st);
}

/* MDS answers come on the MDS loop: hand the result to the volume's loop. */
static void mds_post_back(tcall *tc, int status)
{
    tc->status = status;
    tc->msg.fn = mds_back_cb;
    tc->msg.arg = tc;
    int rc = curve_loop_post_msg(tc->t->loop, &tc->msg);
    CURVE_ASSERT(rc == 0);
}

static int start_mds_call(tcall *tc)
{
    curve_chunk_transport *t = tc->t;
    curve_volio_call *c = tc->c;
    if (c->kind == CURVE_VOLIO_CALL_REFRESH_MDS) {
        Curve__Mds__GetCopysetRequest req = CURVE__MDS__GET_COPYSET_REQUEST__INIT;
        req.logical_pool_id = c->pool_id;
        req.copyset_id = c->copyset_id;
        return curve_mds_call_async(t->mds, CURVE_MDS_SVC_TOPOLOGY, CURVE_MDS_TOPO_GET_COPYSET,
                                    &req.base, &curve__mds__copyset_info__descriptor,
                                    copyset_answer, tc);
    }
    Curve__Mds__SegmentRequest req = CURVE__MDS__SEGMENT_REQUEST__INIT;
    req.path = (char *)t->path;
    req.offset = c->seg_index * t->geom.segment_size;
    req.has_allocate = 1;
    req.allocate = c->allocate;
    return curve_mds_call_async(
        t->mds, CURVE_MDS_SVC_NAMESPACE,
        c->allocate ? CURVE_MDS_NS_GET_OR_ALLOC_SEGMENT : CURVE_MDS_NS_GET_SEGMENT, &req.base,
        &curve__mds__segment_response__descriptor, segment_answer, tc);
}

/* ---- ops --------------------------------------------------------------------------------- */

static void fail_later_cb(void *arg)
{
    tcall *tc = arg;
    switch (tc->c->kind) {
    case CURVE_VOLIO_CALL_SEND:
        send_complete(tc, tc->status, false, NULL);
        return;
    case CURVE_VOLIO_CALL_GET_LEADER:
        leader_complete(tc, NULL, 0);
        return;
    default:
        mds_back_cb(tc);
        return;
    }
}

static void ops_call(void *ctx, curve_volio_call *c)
{
    curve_chunk_transport *t = ctx;
    CURVE_ASSERT(curve_loop_is_current(t->loop));
    tcall *tc = calloc(1, sizeof(*tc));
    CURVE_ASSERT(tc != NULL); /* the ops table has no error path; 100-byte allocations */
    tc->t = t;
    tc->c = c;
    t->outstanding++;
    int rc;
    switch (c->kind) {
    case CURVE_VOLIO_CALL_SEND:
        rc = send_chunk_rpc(tc);
        break;
    case CURVE_VOLIO_CALL_GET_LEADER:
        ask_next_peer(tc); /* completes later in every case */
        return;
    case CURVE_VOLIO_CALL_REFRESH_MDS:
    case CURVE_VOLIO_CALL_GET_SEGMENT:
        rc = start_mds_call(tc);
        break;
    default:
        CURVE_UNREACHABLE();
    }
    if (rc != 0)
        complete_later(tc, rc);
}

static void sleep_closed(curve_timer *tm)
{
    free(CURVE_CONTAINER_OF(tm, tcall, timer));
}

static void sleep_fired(curve_timer *tm, void *arg)
{
    tcall *tc = arg;
    curve_chunk_transport *t = tc->t;
    curve_volio_call *c = tc->c;
    CURVE_ASSERT(t->outstanding > 0);
    t->outstanding--;
    if (tc->sprev)
        tc->sprev->snext = tc->snext;
    else
        t->sleepers = tc->snext;
    if (tc->snext)
        tc->snext->sprev = tc->sprev;
    curve_timer_close(tm, sleep_closed);
    curve_volio_wakeup(c);
}

static void ops_sleep(void *ctx, curve_volio_call *c)
{
    curve_chunk_transport *t = ctx;
    tcall *tc = calloc(1, sizeof(*tc));
    CURVE_ASSERT(tc != NULL);
    tc->t = t;
    tc->c = c;
    int rc = curve_timer_init(t->loop, &tc->timer, sleep_fired, tc);
    CURVE_ASSERT(rc == 0);
    t->outstanding++;
    tc->snext = t->sleepers;
    if (tc->snext)
        tc->snext->sprev = tc;
    t->sleepers = tc;
    curve_timer_start(&tc->timer, c->sleep_ms, 0);
}

void curve_chunk_transport_wake_sleepers(curve_chunk_transport *t)
{
    t->canceled = true;
    for (tcall *tc = t->sleepers; tc; tc = tc->snext)
        curve_timer_start(&tc->timer, 0, 0); /* re-armed: fires on the next loop turn */
}

const curve_volio_ops curve_chunk_transport_ops = {.call = ops_call, .sleep = ops_sleep};
