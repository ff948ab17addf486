/* ChunkService, CliService and CopysetService handlers (see chunkserver.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunk.pb-c.h"
#include "chunkserver/cs_internal.h"
#include "cli.pb-c.h"
#include "common/assert.h"
#include "common/clock.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "copyset.pb-c.h"
#include "curve/errors.h"

/* ---- status mapping ----------------------------------------------------------------------- */

static Curve__Chunk__ChunkStatus chunk_status(int rc)
{
    switch (rc) {
    case 0: return CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_SUCCESS;
    case CURVE_ERR_REDIRECTED:
    case CURVE_ERR_NOT_LEADER: return CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_REDIRECTED;
    case CURVE_ERR_DISK_FAIL:
    case -EIO: return CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_DISK_FAIL;
    case CURVE_ERR_CRC_FAIL:
    case CURVE_ERR_CORRUPT: return CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_CRC_FAIL;
    case CURVE_ERR_INVALID_REQUEST:
    case -EINVAL: return CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_INVALID_REQUEST;
    case CURVE_ERR_NOSPACE:
    case -ENOSPC: return CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_NOSPACE;
    case CURVE_ERR_COPYSET_NOTEXIST:
        return CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_COPYSET_NOTEXIST;
    case CURVE_ERR_CHUNK_NOTEXIST:
        return CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_CHUNK_NOTEXIST;
    case CURVE_ERR_OVERLOAD:
    case CURVE_ERR_BUSY: return CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_OVERLOAD;
    case CURVE_ERR_BACKWARD: return CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_BACKWARD;
    case CURVE_ERR_CHUNK_EXIST: return CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_CHUNK_EXIST;
    case CURVE_ERR_EPOCH_TOO_OLD:
        return CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_EPOCH_TOO_OLD;
    default: return CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_FAILURE_UNKNOWN;
    }
}

/* ---- ChunkService --------------------------------------------------------------------------- */

typedef struct chunk_req {
    cs_mgr *m;
    rpc_call_ctx *ctx;
    cs_copyset *cs;
    uint64_t term; /* the leader term seen when the request was checked (DESIGN §3 step 3) */
    int op;
    uint64_t t0_ns;
    const Curve__Chunk__ChunkRequest *req;
} chunk_req;

/* Replies, accounts and frees r. */
static void chunk_reply(chunk_req *r, int rc, uint64_t leader, uint64_t applied,
                        Curve__Chunk__ChunkResponse *resp_in, curve_iobuf *attach)
{
    cs_mgr *m = r->m;
    Curve__Chunk__ChunkResponse resp = CURVE__CHUNK__CHUNK_RESPONSE__INIT;
    if (resp_in != NULL)
        resp = *resp_in;
    resp.status = chunk_status(rc);
    char hint[CS_PEER_STR_MAX];
    if (resp.status == CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_REDIRECTED && leader != 0) {
        cs_peer_format(leader, false, hint, sizeof(hint));
        resp.leader_hint = hint;
    }
    if (applied != 0) {
        resp.has_applied_index = 1;
        resp.applied_index = applied;
    }
    if (rc != 0 && resp.error == NULL)
        resp.error = (char *)curve_strerror(rc);
    if (r->op >= 0 && r->op < CS_OP_MAX && m->m_lat[r->op] != NULL) {
        curve_latency_record(m->m_lat[r->op], (curve_now_mono_ns() - r->t0_ns) / 1000);
        curve_rate_add(m->m_iops[r->op], 1);
        if (rc == 0 && (r->op == CS_OP_WRITE || r->op == CS_OP_READ))
            curve_counter_add(m->m_bytes[r->op], r->req->size);
        if (rc != 0 && rc != CURVE_ERR_CHUNK_NOTEXIST)
            curve_counter_inc(m->m_errors[r->op]);
    }
    (void)rpc_call_reply(r->ctx, 0, &resp.base, attach);
    atomic_fetch_sub(&m->inflight, 1);
    free(r);
}

static void write_done(void *arg, int status, uint64_t index, uint64_t leader_hint)
{
    chunk_req *r = arg;
    if (r->m->m_commit_lat != NULL && status == 0)
        curve_latency_record(r->m->m_commit_lat, (curve_now_mono_ns() - r->t0_ns) / 1000);
    if (status == CURVE_ERR_SHUTDOWN)
        status = CURVE_ERR_COPYSET_NOTEXIST; /* removed or stopping: ask the MDS again */
    /* This node stopped leading before the outcome was known (the entry may still commit
     * through the new leader): the client retries there, with the hint when we know it. A
     * write or delete applied twice leaves the same chunk state. */
    if (status == CURVE_ERR_FAILURE_UNKNOWN)
        status = CURVE_ERR_NOT_LEADER;
    chunk_reply(r, status, leader_hint, status == 0 ? index : 0, NULL, NULL);
}

static void read_done(void *arg, int status, uint64_t index, uint64_t leader_hint)
{
    chunk_req *r = arg;
    if (status != 0) {
        if (status == CURVE_ERR_SHUTDOWN)
            status = CURVE_ERR_COPYSET_NOTEXIST;
        chunk_reply(r, status, leader_hint, 0, NULL, NULL);
        return;
    }
    int rc = curve_chunkstore_disk_failed(r->cs->store) ? CURVE_ERR_DISK_FAIL : 0;
    uint64_t applied = raft_applied_index(raftrt_group_raft(r->cs->group));
    if (rc == 0 && r->op == CS_OP_INFO) {
        curve_chunk_info info;
        rc = curve_chunkstore_get_info(r->cs->store, r->req->chunk_id, &info);
        Curve__Chunk__ChunkResponse resp = CURVE__CHUNK__CHUNK_RESPONSE__INIT;
        if (rc == 0) {
            resp.has_chunk_sn = resp.has_chunk_size = 1;
            resp.chunk_sn = info.sn;
            resp.chunk_size = info.size;
        }
        chunk_reply(r, rc, 0, applied, &resp, NULL);
        return;
    }
    curve_iobuf att;
    curve_iobuf_init(&att);
    curve_buf *b = NULL;
    if (rc == 0) {
        b = curve_buf_new(r->req->size);
        rc = b == NULL ? -ENOMEM : 0;
    }
    if (rc == 0)
        rc = curve_chunkstore_read(r->cs->store, r->req->chunk_id, r->req->offset,
                                   curve_buf_data(b), r->req->size);
    if (rc == 0) {
        curve_buf_set_len(b, r->req->size);
        rc = curve_iobuf_append(&att, b, 0, r->req->size);
    }
    curve_buf_unref(b);
    chunk_reply(r, rc, 0, applied, NULL, rc == 0 ? &att : NULL);
    curve_iobuf_reset(&att);
}

static cs_epoch_slot *epoch_slot(cs_mgr *m, uint64_t file_id)
{
    uint32_t s = (uint32_t)((file_id * 0x9e3779b97f4a7c15ull) >> 48) % CS_EPOCH_TABLE_SLOTS;
    return &m->epochs[s];
}

/* Epoch fence (DESIGN §7): remembers the highest epoch per volume; older ones are refused.
 * A request that carries an epoch is compared even at epoch 0 (new volumes start at 0, so an
 * old writer at 0 must be refused once an exclusive open elsewhere raised the epoch); a
 * request without one (readers) is not fenced. Epoch 0 is never recorded (nothing to fence). */
static int epoch_check(cs_mgr *m, bool has_epoch, uint64_t file_id, uint64_t epoch,
                       uint64_t *seen)
{
    if (!has_epoch)
        return 0;
    int rc = 0;
    pthread_mutex_lock(&m->epoch_lock);
    cs_epoch_slot *e = epoch_slot(m, file_id);
    if (e->file_id == file_id && e->epoch > epoch) {
        rc = CURVE_ERR_EPOCH_TOO_OLD;
        *seen = e->epoch;
    } else if (epoch > 0 && (e->file_id != file_id || e->epoch < epoch)) {
        e->file_id = file_id;
        e->epoch = epoch;
    }
    pthread_mutex_unlock(&m->epoch_lock);
    return rc;
}

void cs__epoch_note(void *arg, uint64_t file_id, uint64_t epoch)
{
    cs_mgr *m = arg;
    pthread_mutex_lock(&m->epoch_lock);
    cs_epoch_slot *e = epoch_slot(m, file_id);
    if (e->file_id != file_id || e->epoch < epoch) {
        e->file_id = file_id;
        e->epoch = epoch;
    }
    pthread_mutex_unlock(&m->epoch_lock);
}

/* Field checks common to read and write: alignment and bounds (DESIGN §3). */
static int io_check(cs_copyset *cs, const Curve__Chunk__ChunkRequest *q, uint32_t align)
{
    uint64_t csize = curve_chunkstore_chunk_size(cs->store);
    if (!q->has_offset || !q->has_size || q->size == 0 || q->size > CS_MAX_IO_BYTES ||
        q->offset % align != 0 || q->size % align != 0 || q->offset > csize ||
        q->size > csize - q->offset)
        return CURVE_ERR_INVALID_REQUEST;
    return 0;
}

/* Builds the write command (header + data copied from the attachment) and proposes it. */
static int propose_write(chunk_req *r, curve_iobuf *attach)
{
    const Curve__Chunk__ChunkRequest *q = r->req;
    size_t len = CS_CMD_HDR_SIZE + q->size;
    /* one copy of the data (out of the attachment's slices, next to the header); from here the
     * Raft runtime, log and AppendEntries reference this buffer */
    curve_buf *b = curve_buf_new(len);
    if (b == NULL)
        return -ENOMEM;
    uint8_t *buf = curve_buf_data(b);
    curve_iobuf_copyout(attach, 0, buf + CS_CMD_HDR_SIZE, q->size);
    if (q->has_data_crc && curve_crc32c(0, buf + CS_CMD_HDR_SIZE, q->size) != q->data_crc) {
        curve_buf_unref(b);
        return CURVE_ERR_CRC_FAIL;
    }
    cs_cmd c = {.type = CS_CMD_WRITE, .chunk_id = q->chunk_id, .offset = q->offset,
                .sn = q->has_sn ? q->sn : 0, .epoch = q->has_epoch ? q->epoch : 0,
                .file_id = q->has_file_id ? q->file_id : 0, .len = q->size,
                .data = buf + CS_CMD_HDR_SIZE};
    cs_cmd_encode_hdr(&c, NULL, 0, buf);
    curve_buf_set_len(b, len);
    int rc = raftrt_propose_buf(r->cs->group, b, (uint32_t)len, r->term, write_done, r);
    curve_buf_unref(b);
    return rc;
}

static int propose_delete(chunk_req *r)
{
    uint8_t buf[CS_CMD_HDR_SIZE];
    cs_cmd c = {.type = CS_CMD_DELETE, .chunk_id = r->req->chunk_id};
    CURVE_ASSERT(cs_cmd_encode(&c, buf, sizeof(buf)) == (int)CS_CMD_HDR_SIZE);
    return raftrt_propose_term(r->cs->group, buf, sizeof(buf), r->term, write_done, r);
}

static void chunk_handle(rpc_call_ctx *ctx, const ProtobufCMessage *msg, curve_iobuf *attach,
                         cs_mgr *m, int op)
{
    const Curve__Chunk__ChunkRequest *q = (const Curve__Chunk__ChunkRequest *)msg;
    chunk_req *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        (void)rpc_call_reply_error(ctx, -ENOMEM, "out of memory");
        return;
    }
    *r = (chunk_req){.m = m, .ctx = ctx, .op = op, .t0_ns = curve_now_mono_ns(), .req = q};
    unsigned prev = atomic_fetch_add(&m->inflight, 1);
    if (prev >= m->max_inflight) {
        if (m->m_overload != NULL)
            curve_counter_inc(m->m_overload);
        chunk_reply(r, CURVE_ERR_OVERLOAD, 0, 0, NULL, NULL);
        return;
    }
    uint64_t gid = ((uint64_t)q->logical_pool_id << 32) | q->copyset_id;
    pthread_rwlock_rdlock(&m->lock);
    cs_copyset *cs = cs__find_locked(m, gid);
    int rc = 0;
    uint64_t seen = 0, leader = 0;
    if (cs == NULL) {
        rc = CURVE_ERR_COPYSET_NOTEXIST;
        goto fail;
    }
    r->cs = cs;
    rc = epoch_check(m, q->has_epoch, q->has_file_id ? q->file_id : 0, q->epoch, &seen);
    if (rc != 0)
        goto fail;
    if (op == CS_OP_WRITE || op == CS_OP_READ) {
        rc = io_check(cs, q, m->io_align);
        if (rc == 0 && op == CS_OP_WRITE && attach->len != q->size)
            rc = CURVE_ERR_INVALID_REQUEST;
        if (rc != 0)
            goto fail;
    } else if (attach->len != 0) {
        rc = CURVE_ERR_INVALID_REQUEST;
        goto fail;
    }
    if (curve_chunkstore_disk_failed(cs->store) != 0) {
        rc = CURVE_ERR_DISK_FAIL;
        goto fail;
    }
    int role = atomic_load(&cs->role); /* role before term (see glue_state_changed) */
    r->term = atomic_load(&cs->term);
    if (role != RAFT_LEADER) {
        rc = CURVE_ERR_REDIRECTED;
        leader = atomic_load(&cs->leader);
        goto fail;
    }
    if (op == CS_OP_WRITE)
        rc = propose_write(r, attach);
    else if (op == CS_OP_DELETE)
        rc = propose_delete(r);
    else
        rc = raftrt_read(cs->group, read_done, r);
    if (rc != 0)
        goto fail;
    pthread_rwlock_unlock(&m->lock);
    return;
fail:
    pthread_rwlock_unlock(&m->lock);
    Curve__Chunk__ChunkResponse resp = CURVE__CHUNK__CHUNK_RESPONSE__INIT;
    if (rc == CURVE_ERR_EPOCH_TOO_OLD) {
        resp.has_epoch = 1;
        resp.epoch = seen;
    }
    chunk_reply(r, rc, leader, 0, &resp, NULL);
}

static void h_write(rpc_call_ctx *c, const ProtobufCMessage *q, curve_iobuf *a, void *arg)
{
    chunk_handle(c, q, a, arg, CS_OP_WRITE);
}
static void h_read(rpc_call_ctx *c, const ProtobufCMessage *q, curve_iobuf *a, void *arg)
{
    chunk_handle(c, q, a, arg, CS_OP_READ);
}
static void h_delete(rpc_call_ctx *c, const ProtobufCMessage *q, curve_iobuf *a, void *arg)
{
    chunk_handle(c, q, a, arg, CS_OP_DELETE);
}
static void h_info(rpc_call_ctx *c, const ProtobufCMessage *q, curve_iobuf *a, void *arg)
{
    chunk_handle(c, q, a, arg, CS_OP_INFO);
}

/* ---- membership (CliService and heartbeat operators) ------------------------------------- */

typedef int (*group_op_fn)(raftrt_group *g, uint64_t id);

/* Runs op on copyset (pool, id), retrying CURVE_ERR_BUSY until the deadline. */
static int member_op(cs_mgr *m, uint32_t pool, uint32_t id, group_op_fn fn, uint64_t peer,
                     uint64_t deadline_ns)
{
    cs_copyset *cs = cs__get(m, ((uint64_t)pool << 32) | id);
    if (cs == NULL)
        return CURVE_ERR_COPYSET_NOTEXIST;
    cs__learn_peer(m, peer);
    int rc;
    for (;;) {
        rc = fn(cs->group, peer);
        if (rc != CURVE_ERR_BUSY)
            break;
        if (curve_now_mono_ns() >= deadline_ns) {
            rc = CURVE_ERR_TIMEOUT;
            break;
        }
        usleep(20000); /* BUSY clears when the previous entry commits: poll, bounded */
    }
    cs__put(cs);
    return rc;
}

static uint64_t deadline(void)
{
    return curve_now_mono_ns() + (uint64_t)CS_CLI_CHANGE_DEADLINE_MS * 1000000u;
}

int cs_mgr_add_peer(cs_mgr *m, uint32_t pool, uint32_t id, uint64_t peer)
{
    uint64_t dl = deadline();
    int rc = member_op(m, pool, id, raftrt_add_learner, peer, dl);
    if (rc != 0 && rc != -EEXIST)
        return rc;
    rc = member_op(m, pool, id, raftrt_promote, peer, dl);
    return rc == -EEXIST ? 0 : rc;
}

int cs_mgr_remove_peer(cs_mgr *m, uint32_t pool, uint32_t id, uint64_t peer)
{
    int rc = member_op(m, pool, id, raftrt_remove_peer, peer, deadline());
    return rc == -ENOENT ? 0 : rc;
}

int cs_mgr_change_peer(cs_mgr *m, uint32_t pool, uint32_t id, uint64_t old_peer,
                       uint64_t new_peer)
{
    int rc = cs_mgr_add_peer(m, pool, id, new_peer);
    return rc != 0 ? rc : cs_mgr_remove_peer(m, pool, id, old_peer);
}

/* Starts the transfer, then waits for its outcome: the Raft core aborts a transfer after one
 * election timeout (the target did not take over: cut off, hung, lagging). Reporting that as
 * a failure lets the MDS fail the operator and back off instead of re-sending it in every
 * heartbeat reply — each re-run would block the copyset's writes for another election timeout
 * (Raft refuses proposals while a transfer is pending). 0 when the target leads (or another
 * node does: the MDS judges), CURVE_ERR_TIMEOUT when this node still leads after two election
 * timeouts. */
int cs_mgr_transfer_leader(cs_mgr *m, uint32_t pool, uint32_t id, uint64_t peer)
{
    int rc = member_op(m, pool, id, raftrt_transfer_leader, peer, deadline());
    if (rc != 0)
        return rc;
    cs_copyset *cs = cs__get(m, ((uint64_t)pool << 32) | id);
    if (cs == NULL)
        return 0; /* removed meanwhile: nothing left to lead */
    uint64_t et = m->o.election_timeout_ms ? m->o.election_timeout_ms : 1000;
    uint64_t until = curve_now_mono_ns() + 2 * et * 1000000u;
    struct raft_status st;
    for (;;) {
        raftrt_group_status(cs->group, &st);
        if (st.leader == peer || st.role != RAFT_LEADER || st.failed != 0) {
            rc = 0;
            break;
        }
        if (curve_now_mono_ns() >= until) {
            rc = CURVE_ERR_TIMEOUT;
            break;
        }
        usleep(20000); /* the worker pool's thread, not a loop: poll, bounded */
    }
    cs__put(cs);
    if (rc != 0)
        CLOG_WARN("copyset %u.%u: leader transfer to %" PRIu64 " did not happen within %" PRIu64
                  " ms: reported as failed", pool, id, peer, 2 * et);
    return rc;
}

typedef struct reset_arg {
    raftrt_group *g;
    int rc;
} reset_arg;

static void reset_on_loop(void *arg)
{
    reset_arg *a = arg;
    a->rc = raft_reset_peers(raftrt_group_raft(a->g));
}

static int reset_fn(raftrt_group *g, uint64_t unused)
{
    (void)unused;
    reset_arg a = {.g = g, .rc = 0};
    int rc = curve_loop_call_sync(raftrt_group_loop(g), reset_on_loop, &a);
    return rc != 0 ? rc : a.rc;
}

/* ---- jobs on the worker pool (CLI and copyset service) ------------------------------------ */

typedef struct job {
    cs_mgr *m;
    rpc_call_ctx *ctx;
    uint32_t svc, method;
    const ProtobufCMessage *req;
} job;

static Curve__Cli__CliStatus cli_status(int rc)
{
    switch (rc) {
    case 0: return CURVE__CLI__CLI_STATUS__CLI_OK;
    case CURVE_ERR_NOT_LEADER: return CURVE__CLI__CLI_STATUS__CLI_REDIRECTED;
    case CURVE_ERR_COPYSET_NOTEXIST: return CURVE__CLI__CLI_STATUS__CLI_COPYSET_NOTEXIST;
    case -EINVAL:
    case -EEXIST:
    case -ENOENT: return CURVE__CLI__CLI_STATUS__CLI_INVALID_REQUEST;
    case CURVE_ERR_BUSY:
    case CURVE_ERR_TIMEOUT: return CURVE__CLI__CLI_STATUS__CLI_BUSY;
    default: return CURVE__CLI__CLI_STATUS__CLI_FAILED;
    }
}

/* Copies the copyset's leader (as "ip:port:0") into buf; returns buf or NULL when unknown. */
static char *leader_of(cs_mgr *m, uint32_t pool, uint32_t id, char *buf, size_t len,
                       uint64_t *term)
{
    uint64_t gid = ((uint64_t)pool << 32) | id, leader = 0;
    pthread_rwlock_rdlock(&m->lock);
    cs_copyset *cs = cs__find_locked(m, gid);
    if (cs != NULL) {
        leader = atomic_load(&cs->leader);
        if (term != NULL)
            *term = atomic_load(&cs->term);
    }
    pthread_rwlock_unlock(&m->lock);
    if (leader == 0)
        return NULL;
    cs_peer_format(leader, true, buf, len);
    return buf;
}

static void cli_job(job *j)
{
    cs_mgr *m = j->m;
    Curve__Cli__CliResponse resp = CURVE__CLI__CLI_RESPONSE__INIT;
    int rc;
    uint32_t pool, id;
    if (j->method == CS_CLI_CHANGE_PEER) {
        const Curve__Cli__ChangePeerRequest *q = (const void *)j->req;
        uint64_t o, n;
        pool = q->logical_pool_id;
        id = q->copyset_id;
        rc = cs_peer_parse(q->old_peer, &o);
        if (rc == 0)
            rc = cs_peer_parse(q->new_peer, &n);
        if (rc == 0)
            rc = cs_mgr_change_peer(m, pool, id, o, n);
    } else {
        const Curve__Cli__PeerRequest *q = (const void *)j->req;
        uint64_t p;
        pool = q->logical_pool_id;
        id = q->copyset_id;
        rc = cs_peer_parse(q->peer, &p);
        if (rc == 0) {
            switch (j->method) {
            case CS_CLI_ADD_PEER: rc = cs_mgr_add_peer(m, pool, id, p); break;
            case CS_CLI_REMOVE_PEER: rc = cs_mgr_remove_peer(m, pool, id, p); break;
            case CS_CLI_TRANSFER_LEADER: rc = cs_mgr_transfer_leader(m, pool, id, p); break;
            default:
                rc = p == m->self_id ? member_op(m, pool, id, reset_fn, 0, deadline())
                                     : -EINVAL;
                break;
            }
        }
    }
    char leader[CS_PEER_STR_MAX];
    resp.status = cli_status(rc);
    resp.leader = leader_of(m, pool, id, leader, sizeof(leader), NULL);
    if (rc != 0)
        resp.error = (char *)curve_strerror(rc);
    (void)rpc_call_reply(j->ctx, 0, &resp.base, NULL);
}

static void copyset_status_job(job *j)
{
    cs_mgr *m = j->m;
    const Curve__Copyset__CopysetRequest *q = (const void *)j->req;
    Curve__Copyset__CopysetStatusResponse resp = CURVE__COPYSET__COPYSET_STATUS_RESPONSE__INIT;
    uint64_t gid = ((uint64_t)q->logical_pool_id << 32) | q->copyset_id;
    char leader[CS_PEER_STR_MAX];
    char peerbuf[RAFT_MAX_SERVERS][CS_PEER_STR_MAX];
    char *voters[RAFT_MAX_SERVERS], *learners[RAFT_MAX_SERVERS];
    cs_copyset *cs = cs__get(m, gid);
    if (cs == NULL) {
        resp.status = CURVE__COPYSET__COPYSET_STATUS__COPYSET_NOTEXIST;
        goto out;
    }
    struct raft_status st;
    raftrt_group_status(cs->group, &st);
    curve_chunkstore_status ss;
    curve_chunkstore_get_status(cs->store, &ss);
    resp.has_role = resp.has_term = resp.has_commit_index = resp.has_applied_index = 1;
    resp.has_last_index = resp.has_first_index = resp.has_snapshot_index = resp.has_epoch = 1;
    resp.has_chunks = 1;
    resp.role = (Curve__Copyset__RaftRole)st.role;
    resp.term = st.term;
    resp.commit_index = st.commit;
    resp.applied_index = st.applied;
    resp.last_index = st.last_index;
    resp.first_index = st.first_index;
    resp.snapshot_index = st.snapshot_index;
    resp.epoch = cs_fsm_epoch(cs->fsm);
    resp.chunks = ss.chunks;
    if (st.leader != 0) {
        cs_peer_format(st.leader, true, leader, sizeof(leader));
        resp.leader = leader;
    }
    for (uint32_t i = 0; i < st.npeers && i < RAFT_MAX_SERVERS; i++) {
        cs_peer_format(st.peers[i].id, true, peerbuf[i], sizeof(peerbuf[i]));
        if (st.peers[i].role == RAFT_LEARNER)
            learners[resp.n_learners++] = peerbuf[i];
        else
            voters[resp.n_peers++] = peerbuf[i];
    }
    resp.peers = voters;
    resp.learners = learners;
    /* a failed disk also stops the Raft node: name the cause */
    resp.state = ss.disk_err ? "disk_failed" : (st.failed ? "failed" : "ok");
    cs__put(cs);
out:
    (void)rpc_call_reply(j->ctx, 0, &resp.base, NULL);
}

static Curve__Copyset__CopysetStatus copyset_status(int rc)
{
    switch (rc) {
    case 0: return CURVE__COPYSET__COPYSET_STATUS__COPYSET_OK;
    case CURVE_ERR_COPYSET_NOTEXIST: return CURVE__COPYSET__COPYSET_STATUS__COPYSET_NOTEXIST;
    case -EINVAL: return CURVE__COPYSET__COPYSET_STATUS__COPYSET_INVALID_REQUEST;
    case CURVE_ERR_DISK_FAIL: return CURVE__COPYSET__COPYSET_STATUS__COPYSET_DISK_FAIL;
    default: return CURVE__COPYSET__COPYSET_STATUS__COPYSET_FAILED;
    }
}

static void copyset_job(job *j)
{
    cs_mgr *m = j->m;
    if (j->method == CS_COPYSET_STATUS) {
        copyset_status_job(j);
        return;
    }
    if (j->method == CS_COPYSET_LIST) {
        Curve__Copyset__ListCopysetsResponse resp = CURVE__COPYSET__LIST_COPYSETS_RESPONSE__INIT;
        Curve__Copyset__CopysetId *ids = calloc(CS_MGR_MAX_COPYSETS, sizeof(*ids));
        Curve__Copyset__CopysetId **ptrs = calloc(CS_MGR_MAX_COPYSETS, sizeof(*ptrs));
        if (ids != NULL && ptrs != NULL) {
            pthread_rwlock_rdlock(&m->lock);
            for (uint32_t i = 0; i < CS_MGR_MAX_COPYSETS; i++) {
                cs_copyset *cs = m->table[i];
                if (cs == NULL || cs == CS_TOMBSTONE)
                    continue;
                Curve__Copyset__CopysetId *e = &ids[resp.n_copysets];
                curve__copyset__copyset_id__init(e);
                e->logical_pool_id = cs->pool;
                e->copyset_id = cs->id;
                ptrs[resp.n_copysets++] = e;
            }
            pthread_rwlock_unlock(&m->lock);
            resp.copysets = ptrs;
            (void)rpc_call_reply(j->ctx, 0, &resp.base, NULL);
        } else {
            (void)rpc_call_reply_error(j->ctx, -ENOMEM, "out of memory");
        }
        free(ids);
        free(ptrs);
        return;
    }
    Curve__Copyset__CopysetResponse resp = CURVE__COPYSET__COPYSET_RESPONSE__INIT;
    int rc;
    if (j->method == CS_COPYSET_CREATE) {
        const Curve__Copyset__CreateCopysetRequest *q = (const void *)j->req;
        uint64_t peers[RAFT_MAX_SERVERS];
        rc = q->n_peers > RAFT_MAX_SERVERS ? -EINVAL : 0;
        for (size_t i = 0; rc == 0 && i < q->n_peers; i++)
            rc = cs_peer_parse(q->peers[i], &peers[i]);
        if (rc == 0)
            rc = cs_mgr_create(m, q->logical_pool_id, q->copyset_id, peers,
                               (uint32_t)q->n_peers);
    } else {
        const Curve__Copyset__CopysetRequest *q = (const void *)j->req;
        rc = cs_mgr_remove(m, q->logical_pool_id, q->copyset_id);
    }
    resp.status = copyset_status(rc);
    if (rc != 0)
        resp.error = (char *)curve_strerror(rc);
    (void)rpc_call_reply(j->ctx, 0, &resp.base, NULL);
}

static int job_work(void *arg)
{
    job *j = arg;
    if (j->svc == CS_CLI_SERVICE_ID)
        cli_job(j);
    else
        copyset_job(j);
    return 0;
}

static void job_done(void *arg, int result)
{
    job *j = arg;
    if (result == -ECANCELED)
        (void)rpc_call_reply_error(j->ctx, CURVE_ERR_SHUTDOWN, "chunkserver stopping");
    free(j);
}

static void submit_job(rpc_call_ctx *ctx, const ProtobufCMessage *req, cs_mgr *m, uint32_t svc,
                       uint32_t method)
{
    job *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        (void)rpc_call_reply_error(ctx, -ENOMEM, "out of memory");
        return;
    }
    *j = (job){.m = m, .ctx = ctx, .svc = svc, .method = method, .req = req};
    int rc = curve_workpool_submit(m->wp, rpc_call_loop(ctx), job_work, job_done, j);
    if (rc != 0) {
        free(j);
        (void)rpc_call_reply_error(ctx, rc == -EAGAIN ? CURVE_ERR_RPC_OVERLOAD : rc,
                                   "chunkserver work queue: %s", curve_strerror(rc));
    }
}

static void h_get_leader(rpc_call_ctx *ctx, const ProtobufCMessage *msg, curve_iobuf *a,
                         void *arg)
{
    (void)a;
    cs_mgr *m = arg;
    const Curve__Cli__GetLeaderRequest *q = (const void *)msg;
    Curve__Cli__GetLeaderResponse resp = CURVE__CLI__GET_LEADER_RESPONSE__INIT;
    uint64_t gid = ((uint64_t)q->logical_pool_id << 32) | q->copyset_id;
    pthread_rwlock_rdlock(&m->lock);
    bool exists = cs__find_locked(m, gid) != NULL;
    pthread_rwlock_unlock(&m->lock);
    char leader[CS_PEER_STR_MAX];
    uint64_t term = 0;
    if (!exists) {
        resp.status = CURVE__CLI__CLI_STATUS__CLI_COPYSET_NOTEXIST;
    } else {
        resp.leader = leader_of(m, q->logical_pool_id, q->copyset_id, leader, sizeof(leader),
                                &term);
        resp.has_term = 1;
        resp.term = term;
    }
    (void)rpc_call_reply(ctx, 0, &resp.base, NULL);
}

#define JOB_HANDLER(name, svc, method)                                                            \
    static void name(rpc_call_ctx *c, const ProtobufCMessage *q, curve_iobuf *a, void *arg)     \
    {                                                                                            \
        (void)a;                                                                                 \
        submit_job(c, q, arg, svc, method);                                                      \
    }
JOB_HANDLER(h_add_peer, CS_CLI_SERVICE_ID, CS_CLI_ADD_PEER)
JOB_HANDLER(h_remove_peer, CS_CLI_SERVICE_ID, CS_CLI_REMOVE_PEER)
JOB_HANDLER(h_change_peer, CS_CLI_SERVICE_ID, CS_CLI_CHANGE_PEER)
JOB_HANDLER(h_transfer_leader, CS_CLI_SERVICE_ID, CS_CLI_TRANSFER_LEADER)
JOB_HANDLER(h_reset_peer, CS_CLI_SERVICE_ID, CS_CLI_RESET_PEER)
JOB_HANDLER(h_cs_create, CS_COPYSET_SERVICE_ID, CS_COPYSET_CREATE)
JOB_HANDLER(h_cs_delete, CS_COPYSET_SERVICE_ID, CS_COPYSET_DELETE)
JOB_HANDLER(h_cs_status, CS_COPYSET_SERVICE_ID, CS_COPYSET_STATUS)
JOB_HANDLER(h_cs_list, CS_COPYSET_SERVICE_ID, CS_COPYSET_LIST)

int cs_mgr_register_services(cs_mgr *m)
{
    const ProtobufCMessageDescriptor *creq = &curve__chunk__chunk_request__descriptor;
    const ProtobufCMessageDescriptor *cresp = &curve__chunk__chunk_response__descriptor;
    m->chunk_methods[0] = (rpc_method_def){CS_CHUNK_WRITE, "WriteChunk", creq, cresp, h_write};
    m->chunk_methods[1] = (rpc_method_def){CS_CHUNK_READ, "ReadChunk", creq, cresp, h_read};
    m->chunk_methods[2] = (rpc_method_def){CS_CHUNK_DELETE, "DeleteChunk", creq, cresp,
                                           h_delete};
    m->chunk_methods[3] = (rpc_method_def){CS_CHUNK_GET_INFO, "GetChunkInfo", creq, cresp,
                                           h_info};
    const ProtobufCMessageDescriptor *preq = &curve__cli__peer_request__descriptor;
    const ProtobufCMessageDescriptor *presp = &curve__cli__cli_response__descriptor;
    m->cli_methods[0] = (rpc_method_def){CS_CLI_GET_LEADER, "GetLeader",
                                         &curve__cli__get_leader_request__descriptor,
                                         &curve__cli__get_leader_response__descriptor,
                                         h_get_leader};
    m->cli_methods[1] = (rpc_method_def){CS_CLI_ADD_PEER, "AddPeer", preq, presp, h_add_peer};
    m->cli_methods[2] = (rpc_method_def){CS_CLI_REMOVE_PEER, "RemovePeer", preq, presp,
                                         h_remove_peer};
    m->cli_methods[3] = (rpc_method_def){CS_CLI_CHANGE_PEER, "ChangePeer",
                                         &curve__cli__change_peer_request__descriptor, presp,
                                         h_change_peer};
    m->cli_methods[4] = (rpc_method_def){CS_CLI_TRANSFER_LEADER, "TransferLeader", preq, presp,
                                         h_transfer_leader};
    m->cli_methods[5] = (rpc_method_def){CS_CLI_RESET_PEER, "ResetPeer", preq, presp,
                                         h_reset_peer};
    const ProtobufCMessageDescriptor *csreq = &curve__copyset__copyset_request__descriptor;
    const ProtobufCMessageDescriptor *csresp = &curve__copyset__copyset_response__descriptor;
    m->copyset_methods[0] = (rpc_method_def){CS_COPYSET_CREATE, "CreateCopyset",
                                             &curve__copyset__create_copyset_request__descriptor,
                                             csresp, h_cs_create};
    m->copyset_methods[1] = (rpc_method_def){CS_COPYSET_DELETE, "DeleteCopyset", csreq, csresp,
                                             h_cs_delete};
    m->copyset_methods[2] = (rpc_method_def){
        CS_COPYSET_STATUS, "GetCopysetStatus", csreq,
        &curve__copyset__copyset_status_response__descriptor, h_cs_status};
    m->copyset_methods[3] = (rpc_method_def){
        CS_COPYSET_LIST, "ListCopysets", &curve__copyset__list_copysets_request__descriptor,
        &curve__copyset__list_copysets_response__descriptor, h_cs_list};
    m->svc[0] = (rpc_service_def){CS_CHUNK_SERVICE_ID, "ChunkService", m->chunk_methods, 4, m};
    m->svc[1] = (rpc_service_def){CS_CLI_SERVICE_ID, "CliService", m->cli_methods, 6, m};
    m->svc[2] = (rpc_service_def){CS_COPYSET_SERVICE_ID, "CopysetService", m->copyset_methods,
                                  4, m};
    for (int i = 0; i < 3; i++) {
        int rc = raftrt_host_add_service(m->host, &m->svc[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}
