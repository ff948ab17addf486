/* Registration and heartbeat to the MDS (see cs_heartbeat.h). */
#include "chunkserver/cs_heartbeat.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chunkserver/cs_internal.h"
#include "cli.pb-c.h"
#include "common/clock.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "curve/errors.h"
#include "heartbeat.pb-c.h"
#include "rpc/rpc_channel.h"
#include "rpc/rpc_transport.h"

#define CS_HB_SERVICE_ID         30u
#define CS_HB_METHOD_REGISTER    1u
#define CS_HB_METHOD_HEARTBEAT   2u
#define CS_DAT_MAGIC             0x54445343u /* "CSDT" */
#define CS_CLI_SERVICE_ID        11u
#define CS_CLI_METHOD_GET_LEADER 1u

/* A peer probed with small RPCs (see cs_heartbeat.h "Service health"). */
typedef struct probe_sample {
    uint64_t at_ms; /* monotonic ms of the completion */
    uint32_t us;    /* round trip (the timeout for a lost probe) */
    bool lost;
    uint32_t segs, retrans; /* TCP data segments sent / retransmitted since the previous one */
} probe_sample;

typedef struct probe_peer {
    uint64_t id;      /* raft peer id ("ip:port" packed); 0 = free slot */
    uint32_t gen;     /* bumped when the slot changes peer: late callbacks are dropped */
    rpc_channel *ch;  /* on hb->loop */
    bool inflight;    /* at most one probe per peer in flight */
    uint64_t seen_ms; /* last heartbeat that found it in a copyset configuration */
    uint32_t head, n; /* ring of the latest results */
    probe_sample ring[CS_HB_PROBE_RING];
    rpc_net_stats net; /* the channel's socket counters at the previous sample */
    bool has_net;
} probe_peer;

typedef struct probe_call {
    struct cs_hb *hb;
    unsigned slot;
    uint32_t gen;
    uint64_t t0_ns;
} probe_call;

/* Cumulative count/sum of a latency recorder at the previous heartbeat. */
typedef struct lat_mark {
    uint64_t count, sum_us;
} lat_mark;

/* An operator from the MDS being run (or just finished, until a heartbeat reported it). */
typedef struct hb_op {
    struct cs_hb *hb;
    bool used;
    uint32_t pool, id;
    int type;      /* Curve__Heartbeat__ConfigChangeType */
    uint64_t a, b; /* peer ids (b: CHANGE's new peer) */
    char peer[CS_PEER_STR_MAX + 2];
    int state; /* Curve__Heartbeat__ConfigChangeState */
    int rc;
    bool reported; /* a heartbeat carried the final state: slot may be reused */
} hb_op;

struct cs_hb {
    cs_hb_opts o;
    /* disk_slow of the last heartbeat the MDS answered, of the one being built, and when an
     * urgent one may be retried after a failure (heartbeat thread; lock) */
    bool sent_disk_slow, built_disk_slow;
    uint64_t urgent_retry_ms;
    hb_op ops[CS_HB_MAX_OPS]; /* protected by lock */
    curve_workpool *wp;       /* runs operators (blocking membership steps) */
    char addrs[CS_HB_MAX_MDS][64];
    unsigned naddrs, cur;
    char dat_path[PATH_MAX];
    char ip[64];
    uint32_t id;
    char token[CS_HB_TOKEN_MAX + 1];
    curve_loop *loop;
    rpc_channel *ch[CS_HB_MAX_MDS];
    pthread_t thread;
    pthread_mutex_t lock; /* protects stop, and the status fields below */
    pthread_cond_t cond;
    bool stop;
    uint64_t sent, failed, ops_run, ops_failed;
    int last_err;
    /* service health (protected by lock; the marks only by the heartbeat thread) */
    probe_peer probes[CS_HB_PROBE_PEERS];
    uint64_t probes_sent, probes_lost;
    /* copysets the MDS listed as stale that we kept (heartbeat thread; count under lock):
     * the warning is logged once per copyset per CS_HB_STALE_WARN_MS, not every heartbeat */
    struct {
        uint64_t gid, at_ms;
    } stale_warned[CS_HB_STALE_WARN_SLOTS];
    uint64_t stale_kept;
    lat_mark write_mark, apply_mark;
    uint64_t mark_ms;
    /* copyset view collector (see info_collect): the latest complete snapshot, under lock */
    pthread_t col_thread;
    bool col_started, col_req;
    pthread_cond_t col_cond, col_done;
    cs_copyset_info *col_buf, *cache; /* collector's buffer, latest snapshot (swapped) */
    uint32_t cache_n;
    uint64_t cache_seq, cache_ms, stale_sent;
};

int cs_dat_encode(uint32_t id, const char *token, uint8_t *buf, size_t len)
{
    size_t tl = strlen(token);
    if (tl > CS_HB_TOKEN_MAX || len < 20 + tl)
        return -EINVAL;
    cs__put32(buf, CS_DAT_MAGIC);
    cs__put32(buf + 4, 1);
    cs__put32(buf + 8, id);
    cs__put32(buf + 12, (uint32_t)tl);
    memcpy(buf + 16, token, tl);
    cs__put32(buf + 16 + tl, curve_crc32c(0, buf, 16 + tl));
    return (int)(20 + tl);
}

int cs_dat_decode(const uint8_t *buf, size_t len, uint32_t *id, char *token, size_t token_len)
{
    if (buf == NULL || len < 20)
        return CURVE_ERR_CORRUPT;
    uint32_t tl = cs__get32(buf + 12);
    if (cs__get32(buf) != CS_DAT_MAGIC || cs__get32(buf + 4) != 1 || tl > CS_HB_TOKEN_MAX ||
        len != 20u + tl || tl + 1 > token_len ||
        cs__get32(buf + 16 + tl) != curve_crc32c(0, buf, 16 + tl))
        return CURVE_ERR_CORRUPT;
    *id = cs__get32(buf + 8);
    memcpy(token, buf + 16, tl);
    token[tl] = '\0';
    return 0;
}

static int dat_load(cs_hb *hb)
{
    int fd = open(hb->dat_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    uint8_t buf[CS_DAT_MAX + 1];
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    int rc = n < 0 ? -errno : cs_dat_decode(buf, (size_t)n, &hb->id, hb->token, sizeof(hb->token));
    if (rc != 0)
        CLOG_ERROR("cannot load %s: %s", hb->dat_path, curve_strerror(rc));
    return rc;
}

static int dat_store(cs_hb *hb)
{
    uint8_t buf[CS_DAT_MAX];
    int len = cs_dat_encode(hb->id, hb->token, buf, sizeof(buf));
    if (len < 0)
        return len;
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", hb->dat_path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (write(fd, buf, (size_t)len) != len || fsync(fd) != 0)
        rc = errno ? -errno : -EIO;
    close(fd);
    if (rc == 0 && rename(tmp, hb->dat_path) != 0)
        rc = -errno;
    if (rc == 0)
        rc = cs__fsync_dir(hb->o.data_dir);
    return rc;
}

/* One call to the current MDS; rotates to the next address on failure. */
static int hb_call(cs_hb *hb, uint32_t method, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *rd, ProtobufCMessage **resp)
{
    char err[256] = "";
    unsigned i = hb->cur;
    int rc = rpc_call_sync(hb->ch[i], CS_HB_SERVICE_ID, method, req, NULL, rd, hb->o.timeout_ms,
                           resp, NULL, err, sizeof(err));
    if (rc != 0) {
        CLOG_WARN("MDS %s: %s %s", hb->addrs[i], curve_strerror(rc), err);
        hb->cur = (i + 1) % hb->naddrs;
    }
    return rc;
}

static int do_register(cs_hb *hb)
{
    uint64_t total = 0, avail = 0;
    (void)curve_cfp_disk_usage(hb->o.pool, &total, &avail);
    Curve__Heartbeat__RegisterChunkServerRequest req =
        CURVE__HEARTBEAT__REGISTER_CHUNK_SERVER_REQUEST__INIT;
    req.ip = hb->ip;
    req.port = hb->o.port;
    req.disk_path = (char *)hb->o.data_dir;
    req.disk_capacity = total;
    req.has_admin_port = 1;
    req.admin_port = hb->o.admin_port;
    ProtobufCMessage *r = NULL;
    int rc = hb_call(hb, CS_HB_METHOD_REGISTER, &req.base,
                     &curve__heartbeat__register_chunk_server_response__descriptor, &r);
    if (rc != 0)
        return rc;
    Curve__Heartbeat__RegisterChunkServerResponse *resp = (void *)r;
    if (resp->status != CURVE__HEARTBEAT__HEARTBEAT_STATUS__HB_OK || !resp->has_chunkserver_id ||
        resp->token == NULL || strlen(resp->token) > CS_HB_TOKEN_MAX) {
        CLOG_WARN("registration refused by %s: status %d %s", hb->addrs[hb->cur], resp->status,
                  resp->error ? resp->error : "");
        if (resp->status == CURVE__HEARTBEAT__HEARTBEAT_STATUS__HB_NOT_LEADER)
            hb->cur = (hb->cur + 1) % hb->naddrs;
        rc = CURVE_ERR_UNKNOWN;
    } else {
        hb->id = resp->chunkserver_id;
        snprintf(hb->token, sizeof(hb->token), "%s", resp->token);
        rc = dat_store(hb);
        CLOG_INFO("registered as chunkserver %u (%s)", hb->id, rc == 0 ? "saved" : "NOT saved");
    }
    protobuf_c_message_free_unpacked(r, NULL);
    return rc;
}

static int op_work(void *arg)
{
    hb_op *op = arg;
    cs_mgr *m = op->hb->o.mgr;
    switch (op->type) {
    case CURVE__HEARTBEAT__CONFIG_CHANGE_TYPE__CONFIG_ADD_PEER:
        return cs_mgr_add_peer(m, op->pool, op->id, op->a);
    case CURVE__HEARTBEAT__CONFIG_CHANGE_TYPE__CONFIG_REMOVE_PEER:
        return cs_mgr_remove_peer(m, op->pool, op->id, op->a);
    case CURVE__HEARTBEAT__CONFIG_CHANGE_TYPE__CONFIG_CHANGE_PEER:
        return cs_mgr_change_peer(m, op->pool, op->id, op->a, op->b);
    case CURVE__HEARTBEAT__CONFIG_CHANGE_TYPE__CONFIG_TRANSFER_LEADER:
        return cs_mgr_transfer_leader(m, op->pool, op->id, op->a);
    default:
        return -EINVAL;
    }
}

static void op_done(void *arg, int result)
{
    hb_op *op = arg;
    cs_hb *hb = op->hb;
    pthread_mutex_lock(&hb->lock);
    op->rc = result;
    op->state = result == 0 ? CURVE__HEARTBEAT__CONFIG_CHANGE_STATE__CHANGE_DONE
                            : CURVE__HEARTBEAT__CONFIG_CHANGE_STATE__CHANGE_FAILED;
    hb->ops_run++;
    if (result != 0)
        hb->ops_failed++;
    pthread_mutex_unlock(&hb->lock);
    CLOG_INFO("operator %d on copyset %u.%u (%s): %s", op->type, op->pool, op->id, op->peer,
              curve_strerror(result));
}

/* Starts an operator on the worker pool unless one is already running for that copyset (the
 * MDS repeats an operator in every reply until it sees it done). */
static void run_operator(cs_hb *hb, const Curve__Heartbeat__Operator *o)
{
    uint64_t a = 0, b = 0;
    int rc = -EINVAL;
    const char *shown = o->peer;
    if (o->type == CURVE__HEARTBEAT__CONFIG_CHANGE_TYPE__CONFIG_CHANGE_PEER) {
        if (cs_peer_parse(o->old_peer, &a) == 0 && cs_peer_parse(o->new_peer, &b) == 0)
            rc = 0;
        shown = o->new_peer;
    } else if (cs_peer_parse(o->peer, &a) == 0) {
        rc = 0;
    }
    if (rc != 0) {
        CLOG_WARN("ignoring a malformed operator for copyset %u.%u", o->logical_pool_id,
                  o->copyset_id);
        return;
    }
    pthread_mutex_lock(&hb->lock);
    hb_op *slot = NULL;
    for (unsigned i = 0; i < CS_HB_MAX_OPS; i++) {
        hb_op *x = &hb->ops[i];
        if (x->used && x->pool == o->logical_pool_id && x->id == o->copyset_id &&
            x->state == CURVE__HEARTBEAT__CONFIG_CHANGE_STATE__CHANGE_IN_PROGRESS) {
            pthread_mutex_unlock(&hb->lock);
            return; /* already running */
        }
        if (slot == NULL && (!x->used || x->reported))
            slot = x;
    }
    if (slot == NULL) {
        pthread_mutex_unlock(&hb->lock);
        CLOG_WARN("too many operators in progress (%u): copyset %u.%u waits", CS_HB_MAX_OPS,
                  o->logical_pool_id, o->copyset_id);
        return;
    }
    *slot = (hb_op){.hb = hb,
                    .used = true,
                    .pool = o->logical_pool_id,
                    .id = o->copyset_id,
                    .type = o->type,
                    .a = a,
                    .b = b,
                    .state = CURVE__HEARTBEAT__CONFIG_CHANGE_STATE__CHANGE_IN_PROGRESS};
    snprintf(slot->peer, sizeof(slot->peer), "%s", shown ? shown : "");
    pthread_mutex_unlock(&hb->lock);
    rc = curve_workpool_submit(hb->wp, hb->loop, op_work, op_done, slot);
    if (rc != 0) {
        pthread_mutex_lock(&hb->lock);
        slot->used = false;
        pthread_mutex_unlock(&hb->lock);
    }
}

/* Fills the change fields of c from the operator of that copyset, if any (hb->lock held).
 * A final state is reported once; the slot is then free. */
static void op_report_locked(cs_hb *hb, Curve__Heartbeat__CopysetInfo *c)
{
    for (unsigned i = 0; i < CS_HB_MAX_OPS; i++) {
        hb_op *x = &hb->ops[i];
        if (!x->used || x->reported || x->pool != c->logical_pool_id || x->id != c->copyset_id)
            continue;
        c->has_change_type = c->has_change_state = 1;
        c->change_type = x->type;
        c->change_state = x->state;
        c->change_peer = x->peer;
        if (x->state != CURVE__HEARTBEAT__CONFIG_CHANGE_STATE__CHANGE_IN_PROGRESS) {
            if (x->rc != 0)
                c->change_error = (char *)curve_strerror(x->rc);
            x->reported = true;
        }
        return;
    }
}

/* A copyset the MDS says this chunkserver no longer belongs to: recycled only when the MDS's
 * epoch is newer than ours (proto/heartbeat.proto stale_copysets). */
static void remove_stale(cs_hb *hb, const Curve__Heartbeat__CopysetInfo *c)
{
    uint64_t mine = 0, leader = 0;
    if (cs_mgr_copyset_epoch(hb->o.mgr, c->logical_pool_id, c->copyset_id, &mine, &leader) != 0)
        return; /* already gone */
    /* Second guard, local: a leader replicates only to the members of its configuration, so a
     * replica that leads or follows a known leader is a member, whatever the MDS's view says
     * (its view can be ahead of the committed configuration, e.g. a removal proposed but then
     * truncated). A removed replica hears from no leader and campaigns in vain (leader 0). */
    bool hears_leader = leader != 0;
    if (c->epoch == 0 || c->epoch <= mine || hears_leader) {
        pthread_mutex_lock(&hb->lock);
        hb->stale_kept++;
        pthread_mutex_unlock(&hb->lock);
        uint64_t gid = ((uint64_t)c->logical_pool_id << 32) | c->copyset_id,
                 now = curve_now_mono_ms();
        unsigned slot = 0; /* its slot, else the one warned longest ago */
        for (unsigned i = 0; i < CS_HB_STALE_WARN_SLOTS; i++) {
            if (hb->stale_warned[i].gid == gid) {
                slot = i;
                break;
            }
            if (hb->stale_warned[i].at_ms < hb->stale_warned[slot].at_ms)
                slot = i;
        }
        if (hb->stale_warned[slot].gid == gid &&
            now - hb->stale_warned[slot].at_ms < CS_HB_STALE_WARN_MS) {
            CLOG_DEBUG("MDS lists copyset %u.%u as stale: kept", c->logical_pool_id, c->copyset_id);
            return;
        }
        hb->stale_warned[slot].gid = gid;
        hb->stale_warned[slot].at_ms = now;
        CLOG_WARN("MDS lists copyset %u.%u as stale (its epoch %" PRIu64 ", ours %" PRIu64
                  "%s): kept (said again in %u s if it stays so)",
                  c->logical_pool_id, c->copyset_id, c->epoch, mine,
                  hears_leader ? ", but this replica hears a leader" : "",
                  CS_HB_STALE_WARN_MS / 1000);
        return;
    }
    int rc = cs_mgr_remove(hb->o.mgr, c->logical_pool_id, c->copyset_id);
    CLOG_INFO("copyset %u.%u removed from this chunkserver by the MDS (epoch %" PRIu64 " > %" PRIu64
              "): %s",
              c->logical_pool_id, c->copyset_id, c->epoch, mine, curve_strerror(rc));
}

/* ---- service health: peer probes and latency summaries (cs_heartbeat.h) ---------------- */

static void probe_cb(rpc_result *r, void *arg)
{
    probe_call *pc = arg;
    cs_hb *hb = pc->hb;
    uint64_t us = (curve_now_mono_ns() - pc->t0_ns) / 1000;
    bool lost = r->status != 0;
    if (lost && us < (uint64_t)CS_HB_PROBE_TIMEOUT_MS * 1000)
        us = (uint64_t)CS_HB_PROBE_TIMEOUT_MS * 1000; /* a failed probe counts as a timeout */
    pthread_mutex_lock(&hb->lock);
    probe_peer *p = &hb->probes[pc->slot];
    if (p->gen == pc->gen && r->status != CURVE_ERR_SHUTDOWN && r->status != CURVE_ERR_CANCELED) {
        p->inflight = false;
        probe_sample *x = &p->ring[p->head];
        p->head = (p->head + 1) % CS_HB_PROBE_RING;
        if (p->n < CS_HB_PROBE_RING)
            p->n++;
        x->at_ms = curve_now_mono_ms();
        x->us = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
        x->lost = lost;
        x->segs = x->retrans = 0;
        /* on the channel's loop (this callback), with p->ch alive while gen matches */
        rpc_net_stats ns;
        if (p->ch != NULL && rpc_channel_net_stats(p->ch, &ns) == 0) {
            if (p->has_net && ns.conn_gen == p->net.conn_gen &&
                ns.data_segs_out >= p->net.data_segs_out && ns.retrans >= p->net.retrans) {
                x->segs = (uint32_t)(ns.data_segs_out - p->net.data_segs_out);
                x->retrans = (uint32_t)(ns.retrans - p->net.retrans);
            }
            p->net = ns;
            p->has_net = true;
        }
        if (lost)
            hb->probes_lost++;
    } else if (p->gen == pc->gen) {
        p->inflight = false;
    }
    pthread_mutex_unlock(&hb->lock);
    free(pc);
}

/* Sends one probe to every known peer that has none in flight. Heartbeat thread. */
static void probe_send_all(cs_hb *hb)
{
    Curve__Cli__GetLeaderRequest req = CURVE__CLI__GET_LEADER_REQUEST__INIT;
    req.logical_pool_id = 0; /* copyset 0.0 never exists: answered at once, no disk */
    req.copyset_id = 0;
    for (unsigned i = 0; i < CS_HB_PROBE_PEERS; i++) {
        pthread_mutex_lock(&hb->lock);
        probe_peer *p = &hb->probes[i];
        if (p->id == 0 || p->ch == NULL || p->inflight || hb->stop) {
            pthread_mutex_unlock(&hb->lock);
            continue;
        }
        probe_call *pc = malloc(sizeof(*pc));
        if (pc == NULL) {
            pthread_mutex_unlock(&hb->lock);
            return;
        }
        *pc = (probe_call){.hb = hb, .slot = i, .gen = p->gen, .t0_ns = curve_now_mono_ns()};
        p->inflight = true;
        rpc_channel *ch = p->ch;
        hb->probes_sent++;
        pthread_mutex_unlock(&hb->lock);
        /* The channel is only closed by this thread (probe_set_peers, cs_hb_stop). */
        int rc = rpc_channel_call(ch, CS_CLI_SERVICE_ID, CS_CLI_METHOD_GET_LEADER, &req.base, NULL,
                                  &curve__cli__get_leader_response__descriptor,
                                  CS_HB_PROBE_TIMEOUT_MS, probe_cb, pc, NULL);
        if (rc != 0) {
            pthread_mutex_lock(&hb->lock);
            if (hb->probes[i].gen == pc->gen)
                hb->probes[i].inflight = false;
            pthread_mutex_unlock(&hb->lock);
            free(pc);
        }
    }
}

/* Makes the probed set follow the peers of this chunkserver's copysets (ids[0..n), distinct,
 * self excluded). A peer missing from the configurations for CS_HB_PROBE_FORGET_MS is dropped;
 * beyond CS_HB_PROBE_PEERS peers the rest is not probed. Heartbeat thread. */
static void probe_set_peers(cs_hb *hb, const uint64_t *ids, uint32_t n, uint64_t now_ms)
{
    rpc_channel *closing[CS_HB_PROBE_PEERS];
    unsigned nclosing = 0;
    pthread_mutex_lock(&hb->lock);
    for (uint32_t k = 0; k < n; k++) {
        probe_peer *p = NULL, *free_slot = NULL;
        for (unsigned i = 0; i < CS_HB_PROBE_PEERS; i++) {
            if (hb->probes[i].id == ids[k])
                p = &hb->probes[i];
            else if (hb->probes[i].id == 0 && free_slot == NULL)
                free_slot = &hb->probes[i];
        }
        if (p == NULL && free_slot != NULL) {
            char addr[CS_PEER_STR_MAX];
            cs_peer_format(ids[k], false, addr, sizeof(addr));
            rpc_channel_opts co = {.timeout_ms = CS_HB_PROBE_TIMEOUT_MS};
            rpc_channel *ch = NULL;
            if (rpc_channel_new(hb->loop, addr, &co, &ch) == 0) {
                p = free_slot;
                uint32_t gen = p->gen + 1;
                memset(p, 0, sizeof(*p));
                p->gen = gen;
                p->id = ids[k];
                p->ch = ch;
            }
        }
        if (p != NULL)
            p->seen_ms = now_ms;
    }
    for (unsigned i = 0; i < CS_HB_PROBE_PEERS; i++) {
        probe_peer *p = &hb->probes[i];
        if (p->id != 0 && now_ms - p->seen_ms > CS_HB_PROBE_FORGET_MS) {
            closing[nclosing++] = p->ch;
            p->gen++;
            p->id = 0;
            p->ch = NULL;
            p->inflight = false;
            p->n = p->head = 0;
        }
    }
    pthread_mutex_unlock(&hb->lock);
    /* without the lock: pending probe callbacks (SHUTDOWN) take it on the loop */
    for (unsigned i = 0; i < nclosing; i++)
        rpc_channel_close_sync(closing[i]);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t clamp32(uint64_t v)
{
    return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

/* Summary of peer slot p's samples younger than the window (hb->lock held). False when
 * there is none. */
static bool probe_summary_locked(const probe_peer *p, uint64_t now_ms,
                                 Curve__Heartbeat__PeerProbe *out)
{
    uint32_t v[CS_HB_PROBE_RING], n = 0, lost = 0;
    uint64_t sum = 0, segs = 0, retrans = 0;
    for (uint32_t i = 0; i < p->n; i++) {
        const probe_sample *x = &p->ring[i];
        if (x->at_ms + CS_HB_PROBE_WINDOW_MS < now_ms)
            continue;
        v[n++] = x->us;
        sum += x->us;
        lost += x->lost;
        segs += x->segs;
        retrans += x->retrans;
    }
    if (n == 0)
        return false;
    qsort(v, n, sizeof(v[0]), cmp_u32);
    out->samples = n;
    out->has_lost = out->has_mean_us = out->has_p50_us = out->has_p90_us = out->has_max_us = 1;
    out->lost = lost;
    out->mean_us = (uint32_t)(sum / n);
    out->p50_us = v[(n - 1) / 2];
    out->p90_us = v[(n * 9 + 9) / 10 - 1];
    out->max_us = v[n - 1];
    out->has_data_segs = out->has_retrans = 1;
    out->data_segs = clamp32(segs);
    out->retrans = clamp32(retrans);
    return true;
}

/* Mean over the interval since *mark of a cumulative recorder; updates *mark. */
static uint32_t interval_mean(const curve_latency_stats *st, lat_mark *mark, uint64_t *count)
{
    uint64_t dc = st->count >= mark->count ? st->count - mark->count : st->count;
    uint64_t ds = st->sum_us >= mark->sum_us ? st->sum_us - mark->sum_us : st->sum_us;
    mark->count = st->count;
    mark->sum_us = st->sum_us;
    *count = dc;
    uint64_t mean = dc ? ds / dc : 0;
    return mean > UINT32_MAX ? UINT32_MAX : (uint32_t)mean;
}

/* Storage of the health part of one heartbeat request. */
typedef struct health_buf {
    Curve__Heartbeat__ServiceHealth h;
    Curve__Heartbeat__PeerProbe pr[CS_HB_PROBE_PEERS];
    Curve__Heartbeat__PeerProbe *ppr[CS_HB_PROBE_PEERS];
    char addr[CS_HB_PROBE_PEERS][CS_PEER_STR_MAX];
} health_buf;

/* Fills b (hb->lock held). The interval marks move only when the request is built. */
static void health_fill_locked(cs_hb *hb, health_buf *b, uint64_t now_ms, bool urgent)
{
    Curve__Heartbeat__ServiceHealth *h = &b->h;
    curve__heartbeat__service_health__init(h);
    cs_mgr *m = hb->o.mgr;
    h->has_interval_ms = 1;
    h->interval_ms = clamp32(hb->mark_ms ? now_ms - hb->mark_ms : 0);
    /* an urgent heartbeat (disk_slow changed) reports the interval so far without ending it,
     * so the next regular one still covers a whole interval */
    lat_mark wmark = hb->write_mark, amark = hb->apply_mark;
    if (!urgent)
        hb->mark_ms = now_ms;
    curve_latency_stats st;
    if (m != NULL && m->m_lat[CS_OP_WRITE] != NULL) {
        curve_latency_get_stats(m->m_lat[CS_OP_WRITE], &st);
        h->has_writes = h->has_write_mean_us = h->has_write_p50_us = h->has_write_p99_us = 1;
        h->write_mean_us = interval_mean(&st, urgent ? &wmark : &hb->write_mark, &h->writes);
        h->write_p50_us = clamp32(st.p50_us);
        h->write_p99_us = clamp32(st.p99_us);
    }
    if (m != NULL && m->m_apply_lat != NULL) {
        curve_latency_get_stats(m->m_apply_lat, &st);
        h->has_applies = h->has_apply_mean_us = h->has_apply_p50_us = h->has_apply_p99_us = 1;
        h->apply_mean_us = interval_mean(&st, urgent ? &amark : &hb->apply_mark, &h->applies);
        h->apply_p50_us = clamp32(st.p50_us);
        h->apply_p99_us = clamp32(st.p99_us);
    }
    if (m != NULL) {
        h->has_disk_slow = 1;
        h->disk_slow = atomic_load(&m->slow_active);
        hb->built_disk_slow = h->disk_slow;
    }
    h->has_probe_window_ms = 1;
    h->probe_window_ms = CS_HB_PROBE_WINDOW_MS;
    size_t np = 0;
    for (unsigned i = 0; i < CS_HB_PROBE_PEERS; i++) {
        const probe_peer *p = &hb->probes[i];
        if (p->id == 0)
            continue;
        Curve__Heartbeat__PeerProbe *x = &b->pr[np];
        curve__heartbeat__peer_probe__init(x);
        if (!probe_summary_locked(p, now_ms, x))
            continue;
        cs_peer_format(p->id, true, b->addr[np], CS_PEER_STR_MAX);
        x->peer = b->addr[np];
        b->ppr[np] = x;
        np++;
    }
    h->probes = b->ppr;
    h->n_probes = np;
}

/* ---- copyset view collector -------------------------------------------------------------
 * cs_mgr_snapshot_infos asks every group's loop for its status. A slow disk blocks those loops
 * (apply runs on them), and a heartbeat waiting for them would stall for seconds: the MDS would
 * think the chunkserver dead, and could not hand it the leader transfers that move leadership
 * off it. So a collector thread takes the snapshots; a heartbeat asks for a fresh one, waits
 * at most CS_HB_INFO_WAIT_MS and otherwise reports the latest complete one (older views are
 * harmless at the MDS: lower epochs and terms are ignored there). */

static void *collector_main(void *arg)
{
    cs_hb *hb = arg;
    pthread_mutex_lock(&hb->lock);
    while (!hb->stop) {
        if (!hb->col_req) {
            pthread_cond_wait(&hb->col_cond, &hb->lock);
            continue;
        }
        hb->col_req = false;
        cs_copyset_info *buf = hb->col_buf;
        pthread_mutex_unlock(&hb->lock);
        uint32_t n = cs_mgr_snapshot_infos(hb->o.mgr, buf, CS_MGR_MAX_COPYSETS);
        pthread_mutex_lock(&hb->lock);
        hb->col_buf = hb->cache;
        hb->cache = buf;
        hb->cache_n = n;
        hb->cache_seq++;
        hb->cache_ms = curve_now_mono_ms();
        pthread_cond_broadcast(&hb->col_done);
    }
    pthread_mutex_unlock(&hb->lock);
    return NULL;
}

/* Copies the copyset view into out (fresh if the collector answers within
 * CS_HB_INFO_WAIT_MS, else the latest one); returns the count. `urgent`: do not wait for a
 * fresh view when a complete one exists (a heartbeat sent at once to report disk_slow).
 * Heartbeat thread. */
static uint32_t info_collect(cs_hb *hb, cs_copyset_info *out, bool urgent)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    pthread_mutex_lock(&hb->lock);
    uint64_t wait_ms = urgent && hb->cache_seq > 0 ? 0 : CS_HB_INFO_WAIT_MS;
    uint64_t ns = (uint64_t)ts.tv_nsec + wait_ms * 1000000u;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    uint64_t seq0 = hb->cache_seq;
    hb->col_req = true;
    pthread_cond_signal(&hb->col_cond);
    while (!hb->stop && hb->cache_seq == seq0) {
        if (pthread_cond_timedwait(&hb->col_done, &hb->lock, &ts) == ETIMEDOUT)
            break;
    }
    if (hb->cache_seq == seq0 && !urgent)
        hb->stale_sent++;
    uint32_t n = hb->cache_n;
    if (n > 0)
        memcpy(out, hb->cache, (size_t)n * sizeof(*out));
    pthread_mutex_unlock(&hb->lock);
    return n;
}

/* Builds the per-copyset part of a heartbeat; the strings live in `peers` (caller frees). */
static int do_heartbeat(cs_hb *hb, bool urgent)
{
    cs_copyset_info *infos = calloc(CS_MGR_MAX_COPYSETS, sizeof(*infos));
    Curve__Heartbeat__CopysetInfo *cis = calloc(CS_MGR_MAX_COPYSETS, sizeof(*cis));
    Curve__Heartbeat__CopysetInfo **cip = calloc(CS_MGR_MAX_COPYSETS, sizeof(*cip));
    char(*strs)[CS_PEER_STR_MAX] =
        calloc((size_t)CS_MGR_MAX_COPYSETS * (RAFT_MAX_SERVERS + 1), CS_PEER_STR_MAX);
    char **ptrs = calloc((size_t)CS_MGR_MAX_COPYSETS * RAFT_MAX_SERVERS, sizeof(char *));
    int rc = -ENOMEM;
    if (infos == NULL || cis == NULL || cip == NULL || strs == NULL || ptrs == NULL)
        goto out;
    uint32_t n = info_collect(hb, infos, urgent);
    uint32_t leaders = 0;
    for (uint32_t i = 0; i < n; i++) {
        cs_copyset_info *in = &infos[i];
        Curve__Heartbeat__CopysetInfo *c = &cis[i];
        curve__heartbeat__copyset_info__init(c);
        c->logical_pool_id = in->pool;
        c->copyset_id = in->id;
        c->term = in->st.term;
        c->epoch = in->epoch;
        c->has_is_leader = c->has_applied_index = c->has_chunks = 1;
        c->is_leader = in->st.role == RAFT_LEADER;
        leaders += c->is_leader;
        c->applied_index = in->st.applied;
        c->chunks = in->chunks;
        char(*s)[CS_PEER_STR_MAX] = &strs[(size_t)i * (RAFT_MAX_SERVERS + 1)];
        char **p = &ptrs[(size_t)i * RAFT_MAX_SERVERS];
        uint32_t nv = 0, nl = 0;
        for (uint32_t k = 0; k < in->conf.n; k++)
            cs_peer_format(in->conf.s[k].id, true, s[k], CS_PEER_STR_MAX);
        for (uint32_t k = 0; k < in->conf.n; k++) {
            if (in->conf.s[k].role != RAFT_LEARNER)
                p[nv++] = s[k];
        }
        c->peers = p;
        c->n_peers = nv;
        for (uint32_t k = 0; k < in->conf.n; k++) {
            if (in->conf.s[k].role == RAFT_LEARNER)
                p[nv + nl++] = s[k];
        }
        c->learners = p + nv;
        c->n_learners = nl;
        if (in->st.leader != 0) {
            cs_peer_format(in->st.leader, true, s[RAFT_MAX_SERVERS], CS_PEER_STR_MAX);
            c->leader = s[RAFT_MAX_SERVERS];
        }
        cip[i] = c;
    }
    /* the peers to probe: every other member of our copysets */
    uint64_t now_ms = curve_now_mono_ms();
    uint64_t pids[CS_HB_PROBE_PEERS];
    uint32_t npids = 0;
    for (uint32_t i = 0; i < n && npids < CS_HB_PROBE_PEERS; i++) {
        for (uint32_t k = 0; k < infos[i].conf.n && npids < CS_HB_PROBE_PEERS; k++) {
            uint64_t id = infos[i].conf.s[k].id;
            bool dup = id == hb->o.mgr->self_id;
            for (uint32_t j = 0; j < npids && !dup; j++)
                dup = pids[j] == id;
            if (!dup)
                pids[npids++] = id;
        }
    }
    probe_set_peers(hb, pids, npids, now_ms);
    /* operator progress; hb->lock stays held until the request is packed (peer strings) */
    health_buf hbuf;
    pthread_mutex_lock(&hb->lock);
    health_fill_locked(hb, &hbuf, now_ms, urgent);
    for (uint32_t i = 0; i < n; i++)
        op_report_locked(hb, &cis[i]);
    uint64_t total = 0, avail = 0;
    (void)curve_cfp_disk_usage(hb->o.pool, &total, &avail);
    curve_cfp_stats ps;
    curve_cfp_get_stats(hb->o.pool, &ps);
    Curve__Heartbeat__DiskState ds = CURVE__HEARTBEAT__DISK_STATE__INIT;
    int derr = curve_cfp_failed(hb->o.pool);
    ds.failed = derr != 0;
    if (derr != 0) {
        ds.has_error = 1;
        ds.error = derr;
        ds.message = (char *)curve_strerror(derr);
    }
    Curve__Heartbeat__HeartbeatRequest req = CURVE__HEARTBEAT__HEARTBEAT_REQUEST__INIT;
    req.chunkserver_id = hb->id;
    req.token = hb->token;
    req.ip = hb->ip;
    req.port = hb->o.port;
    req.disk_capacity = total;
    req.disk_used = total - avail;
    req.disk_state = &ds;
    req.has_pool_free_chunks = 1;
    req.pool_free_chunks = ps.ready;
    req.copysets = cip;
    req.n_copysets = n;
    req.has_leader_count = req.has_copyset_count = 1;
    req.leader_count = leaders;
    req.copyset_count = n;
    req.health = &hbuf.h;
    ProtobufCMessage *r = NULL;
    /* pack under the lock, send without it */
    size_t plen = protobuf_c_message_get_packed_size(&req.base);
    uint8_t *packed = malloc(plen + 1);
    if (packed != NULL)
        protobuf_c_message_pack(&req.base, packed);
    pthread_mutex_unlock(&hb->lock);
    if (packed == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    Curve__Heartbeat__HeartbeatRequest *copy =
        curve__heartbeat__heartbeat_request__unpack(NULL, plen, packed);
    free(packed);
    if (copy == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    rc = hb_call(hb, CS_HB_METHOD_HEARTBEAT, &copy->base,
                 &curve__heartbeat__heartbeat_response__descriptor, &r);
    curve__heartbeat__heartbeat_request__free_unpacked(copy, NULL);
    if (rc != 0)
        goto out;
    Curve__Heartbeat__HeartbeatResponse *resp = (void *)r;
    if (resp->status == CURVE__HEARTBEAT__HEARTBEAT_STATUS__HB_UNKNOWN_CHUNKSERVER ||
        resp->status == CURVE__HEARTBEAT__HEARTBEAT_STATUS__HB_BAD_TOKEN) {
        CLOG_WARN("MDS does not know chunkserver %u: registering again", hb->id);
        hb->id = 0;
        rc = CURVE_ERR_UNKNOWN;
    } else if (resp->status != CURVE__HEARTBEAT__HEARTBEAT_STATUS__HB_OK) {
        if (resp->status == CURVE__HEARTBEAT__HEARTBEAT_STATUS__HB_NOT_LEADER)
            hb->cur = (hb->cur + 1) % hb->naddrs;
        rc = CURVE_ERR_UNKNOWN;
    } else {
        for (size_t i = 0; i < resp->n_operators && i < CS_HB_MAX_OPS; i++)
            run_operator(hb, resp->operators[i]);
        for (size_t i = 0; i < resp->n_stale_copysets && i < CS_HB_MAX_STALE; i++)
            remove_stale(hb, resp->stale_copysets[i]);
    }
    protobuf_c_message_free_unpacked(r, NULL);
out:
    free(infos);
    free(cis);
    free(cip);
    free(strs);
    free(ptrs);
    return rc;
}

/* Heartbeats every interval (registration retries sooner); between them, a probe to every
 * peer each CS_HB_PROBE_PERIOD_MS. */
static void *hb_main(void *arg)
{
    cs_hb *hb = arg;
    uint64_t next_hb = 0;
    bool urgent = false;
    for (;;) {
        uint64_t now = curve_now_mono_ms();
        if (now >= next_hb) {
            int rc = hb->id == 0 ? do_register(hb) : do_heartbeat(hb, urgent);
            pthread_mutex_lock(&hb->lock);
            if (rc == 0 && hb->id != 0)
                hb->sent_disk_slow = hb->built_disk_slow; /* the MDS has it */
            else if (urgent)
                hb->urgent_retry_ms = curve_now_mono_ms() + CS_HB_URGENT_RETRY_MS;
            pthread_mutex_unlock(&hb->lock);
            urgent = false;
            pthread_mutex_lock(&hb->lock);
            hb->sent++;
            if (rc != 0)
                hb->failed++;
            hb->last_err = rc;
            pthread_mutex_unlock(&hb->lock);
            /* registration retries sooner than the heartbeat period */
            uint64_t wait_ms = (hb->id == 0 && hb->o.interval_ms > 1000) ? 1000 : hb->o.interval_ms;
            next_hb = curve_now_mono_ms() + wait_ms;
        }
        if (hb->id != 0)
            probe_send_all(hb);
        /* a slow-disk handoff (or its end) is reported at once: the MDS must stop moving
         * leaders onto this chunkserver before its leader balance undoes the handoff */
        if (hb->id != 0 && hb->o.mgr != NULL) {
            pthread_mutex_lock(&hb->lock);
            bool changed = atomic_load(&hb->o.mgr->slow_active) != hb->sent_disk_slow &&
                           curve_now_mono_ms() >= hb->urgent_retry_ms;
            pthread_mutex_unlock(&hb->lock);
            if (changed)
                next_hb = 0, urgent = true;
        }
        now = curve_now_mono_ms();
        uint64_t until =
            now + CS_HB_PROBE_PERIOD_MS < next_hb ? now + CS_HB_PROBE_PERIOD_MS : next_hb;
        uint64_t wait_ms = until > now ? until - now : 0;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (wait_ms % 1000) * 1000000u;
        ts.tv_sec += (time_t)(wait_ms / 1000 + ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_mutex_lock(&hb->lock);
        while (!hb->stop) {
            if (pthread_cond_timedwait(&hb->cond, &hb->lock, &ts) == ETIMEDOUT)
                break;
        }
        bool stop = hb->stop;
        pthread_mutex_unlock(&hb->lock);
        if (stop)
            break;
    }
    return NULL;
}

int cs_hb_start(const cs_hb_opts *o, cs_hb **out)
{
    cs_hb *hb = calloc(1, sizeof(*hb));
    if (hb == NULL)
        return -ENOMEM;
    hb->o = *o;
    snprintf(hb->ip, sizeof(hb->ip), "%s", o->ip);
    snprintf(hb->dat_path, sizeof(hb->dat_path), "%s/%s", o->data_dir, CS_DAT_FILE);
    int rc = 0;
    const char *p = o->mds_addrs;
    while (*p != '\0' && rc == 0) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0 || len >= sizeof(hb->addrs[0]) || hb->naddrs >= CS_HB_MAX_MDS)
            rc = -EINVAL;
        else
            snprintf(hb->addrs[hb->naddrs++], sizeof(hb->addrs[0]), "%.*s", (int)len, p);
        p = e ? e + 1 : p + len;
    }
    if (hb->naddrs == 0)
        rc = -EINVAL;
    if (rc == 0)
        rc = dat_load(hb);
    if (rc != 0)
        goto err_after_alloc;
    rc = curve_loop_new("cs-hb", &hb->loop);
    if (rc != 0)
        goto err_after_alloc;
    rc = curve_loop_start(hb->loop);
    if (rc != 0)
        goto err_after_loop;
    rc = curve_workpool_new("cs-hbop", 1, CS_HB_MAX_OPS, &hb->wp);
    if (rc != 0)
        goto err_after_start;
    rpc_channel_opts co = {.timeout_ms = o->timeout_ms};
    for (unsigned i = 0; i < hb->naddrs && rc == 0; i++)
        rc = rpc_channel_new(hb->loop, hb->addrs[i], &co, &hb->ch[i]);
    if (rc != 0)
        goto err_after_channels;
    pthread_mutex_init(&hb->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&hb->cond, &ca);
    pthread_cond_init(&hb->col_done, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&hb->col_cond, NULL);
    hb->col_buf = calloc(CS_MGR_MAX_COPYSETS, sizeof(*hb->col_buf));
    hb->cache = calloc(CS_MGR_MAX_COPYSETS, sizeof(*hb->cache));
    rc = hb->col_buf && hb->cache ? 0 : -ENOMEM;
    if (rc == 0)
        rc = -pthread_create(&hb->col_thread, NULL, collector_main, hb);
    if (rc != 0)
        goto err_after_sync;
    hb->col_started = true;
    rc = -pthread_create(&hb->thread, NULL, hb_main, hb);
    if (rc != 0)
        goto err_after_sync;
    *out = hb;
    return 0;
err_after_sync:
    if (hb->col_started) {
        pthread_mutex_lock(&hb->lock);
        hb->stop = true;
        pthread_cond_broadcast(&hb->col_cond);
        pthread_mutex_unlock(&hb->lock);
        pthread_join(hb->col_thread, NULL);
    }
    free(hb->col_buf);
    free(hb->cache);
    pthread_cond_destroy(&hb->col_cond);
    pthread_cond_destroy(&hb->col_done);
    pthread_cond_destroy(&hb->cond);
    pthread_mutex_destroy(&hb->lock);
err_after_channels:
    for (unsigned i = 0; i < hb->naddrs; i++) {
        if (hb->ch[i] != NULL)
            rpc_channel_close_sync(hb->ch[i]);
    }
    curve_workpool_free(hb->wp);
err_after_start:
    curve_loop_stop(hb->loop);
    curve_loop_join(hb->loop);
err_after_loop:
    curve_loop_free(hb->loop);
err_after_alloc:
    free(hb);
    return rc;
}

void cs_hb_stop(cs_hb *hb)
{
    if (hb == NULL)
        return;
    pthread_mutex_lock(&hb->lock);
    hb->stop = true;
    pthread_cond_broadcast(&hb->cond);
    pthread_cond_broadcast(&hb->col_cond);
    pthread_cond_broadcast(&hb->col_done);
    pthread_mutex_unlock(&hb->lock);
    pthread_join(hb->thread, NULL);
    pthread_join(hb->col_thread, NULL); /* bounded: a snapshot in progress completes */
    for (unsigned i = 0; i < CS_HB_PROBE_PEERS; i++) {
        if (hb->probes[i].ch != NULL)
            rpc_channel_close_sync(hb->probes[i].ch); /* pending probes end (SHUTDOWN) */
        hb->probes[i].ch = NULL;
    }
    curve_workpool_free(hb->wp); /* running operators finish (bounded), done on hb->loop */
    for (unsigned i = 0; i < hb->naddrs; i++)
        rpc_channel_close_sync(hb->ch[i]);
    curve_loop_stop(hb->loop);
    curve_loop_join(hb->loop);
    curve_loop_free(hb->loop);
    pthread_cond_destroy(&hb->cond);
    pthread_cond_destroy(&hb->col_cond);
    pthread_cond_destroy(&hb->col_done);
    pthread_mutex_destroy(&hb->lock);
    free(hb->col_buf);
    free(hb->cache);
    free(hb);
}

void cs_hb_status_json(cs_hb *hb, json_t *obj)
{
    pthread_mutex_lock(&hb->lock);
    json_t *o = json_pack("{s:i, s:s, s:I, s:I, s:I, s:I, s:s, s:I, s:I}", "chunkserver_id",
                          (int)hb->id, "mds", hb->addrs[hb->cur], "sent", (json_int_t)hb->sent,
                          "failed", (json_int_t)hb->failed, "operators", (json_int_t)hb->ops_run,
                          "operators_failed", (json_int_t)hb->ops_failed, "last_error",
                          hb->last_err ? curve_strerror(hb->last_err) : "", "probes_sent",
                          (json_int_t)hb->probes_sent, "probes_lost", (json_int_t)hb->probes_lost);
    if (o != NULL)
        json_object_set_new(o, "stale_views_sent", json_integer((json_int_t)hb->stale_sent));
    if (o != NULL)
        json_object_set_new(o, "stale_copysets_kept", json_integer((json_int_t)hb->stale_kept));
    json_t *peers = json_array();
    uint64_t now_ms = curve_now_mono_ms();
    for (unsigned i = 0; o != NULL && peers != NULL && i < CS_HB_PROBE_PEERS; i++) {
        Curve__Heartbeat__PeerProbe x = CURVE__HEARTBEAT__PEER_PROBE__INIT;
        if (hb->probes[i].id == 0 || !probe_summary_locked(&hb->probes[i], now_ms, &x))
            continue;
        char addr[CS_PEER_STR_MAX];
        cs_peer_format(hb->probes[i].id, true, addr, sizeof(addr));
        json_array_append_new(peers, json_pack("{s:s, s:i, s:i, s:i, s:i, s:i}", "peer", addr,
                                               "samples", (int)x.samples, "lost", (int)x.lost,
                                               "mean_us", (int)x.mean_us, "p90_us", (int)x.p90_us,
                                               "max_us", (int)x.max_us));
    }
    pthread_mutex_unlock(&hb->lock);
    if (o != NULL && peers != NULL)
        json_object_set_new(o, "probes", peers);
    else
        json_decref(peers);
    json_object_set_new(obj, "heartbeat", o);
}
