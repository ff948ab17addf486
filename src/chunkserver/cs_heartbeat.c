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
#include "common/clock.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "curve/errors.h"
#include "heartbeat.pb-c.h"
#include "rpc/rpc_channel.h"

#define CS_HB_SERVICE_ID 30u
#define CS_HB_METHOD_REGISTER 1u
#define CS_HB_METHOD_HEARTBEAT 2u
#define CS_DAT_MAGIC 0x54445343u /* "CSDT" */

/* An operator from the MDS being run (or just finished, until a heartbeat reported it). */
typedef struct hb_op {
    struct cs_hb *hb;
    bool used;
    uint32_t pool, id;
    int type;                  /* Curve__Heartbeat__ConfigChangeType */
    uint64_t a, b;             /* peer ids (b: CHANGE's new peer) */
    char peer[CS_PEER_STR_MAX + 2];
    int state;                 /* Curve__Heartbeat__ConfigChangeState */
    int rc;
    bool reported;             /* a heartbeat carried the final state: slot may be reused */
} hb_op;

struct cs_hb {
    cs_hb_opts o;
    hb_op ops[CS_HB_MAX_OPS];  /* protected by lock */
    curve_workpool *wp;        /* runs operators (blocking membership steps) */
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
    int rc = n < 0 ? -errno : cs_dat_decode(buf, (size_t)n, &hb->id, hb->token,
                                              sizeof(hb->token));
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
    *slot = (hb_op){.hb = hb, .used = true, .pool = o->logical_pool_id, .id = o->copyset_id,
                    .type = o->type, .a = a, .b = b,
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
    uint64_t mine = 0;
    if (cs_mgr_copyset_epoch(hb->o.mgr, c->logical_pool_id, c->copyset_id, &mine) != 0)
        return; /* already gone */
    if (c->epoch == 0 || c->epoch <= mine) {
        CLOG_WARN("MDS lists copyset %u.%u as stale (its epoch %" PRIu64 ", ours %" PRIu64
                  "): kept", c->logical_pool_id, c->copyset_id, c->epoch, mine);
        return;
    }
    int rc = cs_mgr_remove(hb->o.mgr, c->logical_pool_id, c->copyset_id);
    CLOG_INFO("copyset %u.%u removed from this chunkserver by the MDS (epoch %" PRIu64
              " > %" PRIu64 "): %s", c->logical_pool_id, c->copyset_id, c->epoch, mine,
              curve_strerror(rc));
}

/* Builds the per-copyset part of a heartbeat; the strings live in `peers` (caller frees). */
static int do_heartbeat(cs_hb *hb)
{
    cs_copyset_info *infos = calloc(CS_MGR_MAX_COPYSETS, sizeof(*infos));
    Curve__Heartbeat__CopysetInfo *cis = calloc(CS_MGR_MAX_COPYSETS, sizeof(*cis));
    Curve__Heartbeat__CopysetInfo **cip = calloc(CS_MGR_MAX_COPYSETS, sizeof(*cip));
    char(*strs)[CS_PEER_STR_MAX] = calloc((size_t)CS_MGR_MAX_COPYSETS * (RAFT_MAX_SERVERS + 1),
                                          CS_PEER_STR_MAX);
    char **ptrs = calloc((size_t)CS_MGR_MAX_COPYSETS * RAFT_MAX_SERVERS, sizeof(char *));
    int rc = -ENOMEM;
    if (infos == NULL || cis == NULL || cip == NULL || strs == NULL || ptrs == NULL)
        goto out;
    uint32_t n = cs_mgr_snapshot_infos(hb->o.mgr, infos, CS_MGR_MAX_COPYSETS);
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
    /* operator progress; hb->lock stays held until the request is packed (peer strings) */
    pthread_mutex_lock(&hb->lock);
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

static void *hb_main(void *arg)
{
    cs_hb *hb = arg;
    for (;;) {
        int rc = hb->id == 0 ? do_register(hb) : do_heartbeat(hb);
        pthread_mutex_lock(&hb->lock);
        hb->sent++;
        if (rc != 0)
            hb->failed++;
        hb->last_err = rc;
        /* registration retries sooner than the heartbeat period */
        uint64_t wait_ms = (hb->id == 0 && hb->o.interval_ms > 1000) ? 1000 : hb->o.interval_ms;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (wait_ms % 1000) * 1000000u;
        ts.tv_sec += (time_t)(wait_ms / 1000 + ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
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
    pthread_condattr_destroy(&ca);
    rc = -pthread_create(&hb->thread, NULL, hb_main, hb);
    if (rc != 0)
        goto err_after_sync;
    *out = hb;
    return 0;
err_after_sync:
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
    pthread_mutex_unlock(&hb->lock);
    pthread_join(hb->thread, NULL);
    curve_workpool_free(hb->wp); /* running operators finish (bounded), done on hb->loop */
    for (unsigned i = 0; i < hb->naddrs; i++)
        rpc_channel_close_sync(hb->ch[i]);
    curve_loop_stop(hb->loop);
    curve_loop_join(hb->loop);
    curve_loop_free(hb->loop);
    pthread_cond_destroy(&hb->cond);
    pthread_mutex_destroy(&hb->lock);
    free(hb);
}

void cs_hb_status_json(cs_hb *hb, json_t *obj)
{
    pthread_mutex_lock(&hb->lock);
    json_t *o = json_pack("{s:i, s:s, s:I, s:I, s:I, s:I, s:s}", "chunkserver_id", (int)hb->id,
                          "mds", hb->addrs[hb->cur], "sent", (json_int_t)hb->sent, "failed",
                          (json_int_t)hb->failed, "operators", (json_int_t)hb->ops_run,
                          "operators_failed", (json_int_t)hb->ops_failed, "last_error",
                          hb->last_err ? curve_strerror(hb->last_err) : "");
    pthread_mutex_unlock(&hb->lock);
    json_object_set_new(obj, "heartbeat", o);
}
