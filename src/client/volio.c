/* Volume IO engine (volio.h): split, resolve, bound, retry, complete. */
#include "client/volio.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/assert.h"
#include "common/log.h"
#include "curve/errors.h"

enum { OWNER_PIECE = 1, OWNER_DEFER = 2 };

typedef enum { PHASE_SEGMENT, PHASE_SLOT, PHASE_CHUNK } piece_phase;

/* One piece of a user IO. Heap-allocated at submit, freed when it completes. */
typedef struct piece {
    curve_volio *v;
    curve_volio_io *io;
    curve_io_piece p;
    piece_phase phase;
    curve_volio_call call;   /* the one backend call or timer outstanding */
    curve_inflight_waiter w; /* queued for an in-flight slot */
    bool holds_slot;
    curve_chunk_loc loc;
    curve_retry_state seg_rs; /* retries of the segment lookup */
    curve_chunkreq cr;        /* the chunk request once the chunk is known */
    curve_step pending;       /* step to run after a SLEEP */
    bool fail_later;          /* the SLEEP only defers completing with pending.result */
} piece;

/* A completion that must not run inside the submitting call: run it from a 0 ms timer. */
typedef struct deferred {
    curve_volio_call call;
    curve_volio_io *io;
} deferred;

struct curve_volio {
    curve_volio_env env;
    curve_chunkreq_env crenv;
    curve_inflight inflight;
    uint64_t write_seq;          /* last sequence number given to a write/discard */
    curve_volio_io *writes_head; /* outstanding writes/discards, ascending seq */
    curve_volio_io *writes_tail;
    curve_volio_io *flush_head; /* waiting flushes, ascending mark (seq_) */
    curve_volio_io *flush_tail;
    curve_volio_stats st;
    int cancel_err; /* curve_volio_cancel: pieces finish with it instead of a new call */
};

/* ---- lists ------------------------------------------------------------------------------ */

static void list_append(curve_volio_io **head, curve_volio_io **tail, curve_volio_io *io)
{
    io->next_ = NULL;
    io->prev_ = *tail;
    if (*tail)
        (*tail)->next_ = io;
    else
        *head = io;
    *tail = io;
}

static void list_remove(curve_volio_io **head, curve_volio_io **tail, curve_volio_io *io)
{
    if (io->prev_)
        io->prev_->next_ = io->next_;
    else
        *head = io->next_;
    if (io->next_)
        io->next_->prev_ = io->prev_;
    else
        *tail = io->prev_;
    io->next_ = io->prev_ = NULL;
}

/* ---- engine ----------------------------------------------------------------------------- */

int curve_volio_new(const curve_volio_env *env, curve_volio **out)
{
    CURVE_ASSERT(env != NULL && out != NULL);
    *out = NULL;
    if (!env->mc || !env->opts || !env->clock || !env->ops || !env->ops->call || !env->ops->sleep ||
        env->max_inflight == 0 || curve_io_geom_validate(&env->geom) != 0 ||
        curve_retry_opts_validate(env->opts, NULL, 0) != 0)
        return -EINVAL;
    curve_volio *v = calloc(1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    v->env = *env;
    v->crenv = (curve_chunkreq_env){.mc = env->mc,
                                    .unstable = env->unstable,
                                    .opts = env->opts,
                                    .clock = env->clock,
                                    .rand = env->rand,
                                    .rand_ctx = env->rand_ctx};
    int rc = curve_inflight_init(&v->inflight, env->max_inflight);
    if (rc != 0) {
        free(v);
        return rc;
    }
    *out = v;
    return 0;
}

void curve_volio_free(curve_volio *v)
{
    if (!v)
        return;
    CURVE_ASSERT(v->st.ios_inflight == 0 && v->st.pieces_inflight == 0);
    curve_inflight_destroy(&v->inflight);
    free(v);
}

void curve_volio_cancel(curve_volio *v, int err)
{
    CURVE_ASSERT(v != NULL && err < 0);
    if (v->cancel_err == 0)
        v->cancel_err = err;
}

int curve_volio_set_size(curve_volio *v, uint64_t size)
{
    CURVE_ASSERT(v != NULL);
    curve_io_geom g = v->env.geom;
    g.volume_size = size;
    if (size < v->env.geom.volume_size || curve_io_geom_validate(&g) != 0)
        return -EINVAL;
    v->env.geom.volume_size = size;
    return 0;
}

void curve_volio_get_stats(curve_volio *v, curve_volio_stats *out)
{
    CURVE_ASSERT(v != NULL && out != NULL);
    *out = v->st;
}

/* ---- completion ------------------------------------------------------------------------- */

static void complete_user(curve_volio *v, curve_volio_io *io, int result)
{
    io->result = result;
    CURVE_ASSERT(v->st.ios_inflight > 0);
    v->st.ios_inflight--;
    io->cb(io);
}

/* Completes every flush whose writes are all done. */
static void check_flushes(curve_volio *v)
{
    while (v->flush_head) {
        curve_volio_io *f = v->flush_head;
        if (v->writes_head && v->writes_head->seq_ <= f->seq_)
            return;
        list_remove(&v->flush_head, &v->flush_tail, f);
        complete_user(v, f, f->result);
    }
}

static void io_done_cb(curve_io_tracker *t, int result, void *ctx)
{
    curve_volio_io *io = ctx;
    curve_volio *v = io->vol_;
    if (io->seq_ != 0) {
        list_remove(&v->writes_head, &v->writes_tail, io);
        if (result != 0) /* flushes covering this write report its error */
            for (curve_volio_io *f = v->flush_head; f; f = f->next_)
                if (f->seq_ >= io->seq_ && f->result == 0)
                    f->result = result;
    }
    complete_user(v, io, result);
    check_flushes(v);
}

static void defer_complete(curve_volio *v, curve_volio_io *io, int *rc)
{
    deferred *d = calloc(1, sizeof(*d));
    if (!d) {
        *rc = -ENOMEM;
        return;
    }
    d->io = io;
    d->call.kind = CURVE_VOLIO_CALL_SLEEP;
    d->call.sleep_ms = 0;
    d->call.owner_ = d;
    d->call.owner_kind_ = OWNER_DEFER;
    *rc = 0;
    v->env.ops->sleep(v->env.ops_ctx, &d->call);
}

static void piece_done(piece *pc, int result)
{
    curve_volio *v = pc->v;
    curve_volio_io *io = pc->io;
    bool slot = pc->holds_slot;
    CURVE_ASSERT(v->st.pieces_inflight > 0);
    v->st.pieces_inflight--;
    free(pc);
    if (slot)
        curve_inflight_release(&v->inflight); /* may start a queued piece */
    curve_io_tracker_piece_done(&io->tracker_, result);
}

/* ---- pieces ----------------------------------------------------------------------------- */

static void piece_call(piece *pc, curve_volio_call_kind kind)
{
    pc->call.kind = kind;
    pc->call.owner_ = pc;
    pc->call.owner_kind_ = OWNER_PIECE;
    curve_volio *v = pc->v;
    if (kind == CURVE_VOLIO_CALL_SLEEP)
        v->env.ops->sleep(v->env.ops_ctx, &pc->call);
    else
        v->env.ops->call(v->env.ops_ctx, &pc->call);
}

static void issue_step(piece *pc, const curve_step *s)
{
    curve_volio *v = pc->v;
    curve_volio_call *c = &pc->call;
    memset(c, 0, sizeof(*c));
    c->pool_id = pc->loc.pool_id;
    c->copyset_id = pc->loc.copyset_id;
    switch (s->kind) {
    case CURVE_STEP_SEND:
        c->op = pc->io->op;
        c->peer = s->peer;
        c->timeout_ms = s->timeout_ms;
        c->chunk_id = pc->loc.chunk_id;
        c->chunk_off = pc->p.chunk_off;
        c->len = pc->p.len;
        c->buf = pc->io->buf ? (char *)pc->io->buf + pc->p.buf_off : NULL;
        c->epoch = v->env.epoch;
        piece_call(pc, CURVE_VOLIO_CALL_SEND);
        return;
    case CURVE_STEP_GET_LEADER:
        c->npeers = s->npeers;
        memcpy(c->peers, s->peers, s->npeers * sizeof(s->peers[0]));
        piece_call(pc, CURVE_VOLIO_CALL_GET_LEADER);
        return;
    case CURVE_STEP_REFRESH_MDS:
        piece_call(pc, CURVE_VOLIO_CALL_REFRESH_MDS);
        return;
    case CURVE_STEP_DONE:
        break;
    }
    CURVE_UNREACHABLE();
}

static void run_step(piece *pc, const curve_step *s)
{
    curve_volio *v = pc->v;
    if (s->became_slow) {
        v->st.slow++;
        if (v->env.on_slow)
            v->env.on_slow(v->env.slow_ctx);
        /* name the cause, so an operator sees why (NOSPACE, a timeout, no leader, ...) */
        const curve_chunkreq *cr = &pc->cr;
        CLOG_WARN("IO on file %llu chunk %llu (copyset %u/%u) slow (retrying for %llu ms, %u "
                  "failed attempts): last %s from chunkserver %u (%s)",
                  (unsigned long long)v->env.file_id, (unsigned long long)pc->loc.chunk_id,
                  cr->pool_id, cr->copyset_id, (unsigned long long)v->env.opts->slow_threshold_ms,
                  cr->rs.retries, cr->rs.retries ? curve_errname(cr->rs.last_status) : "none",
                  cr->target.cs_id, cr->target.addr[0] ? cr->target.addr : "-");
    }
    if (s->kind != CURVE_STEP_DONE && v->cancel_err != 0) {
        piece_done(pc, v->cancel_err); /* canceled: no further call, no sleep */
        return;
    }
    if (s->kind == CURVE_STEP_DONE) {
        if (s->zero_fill && pc->io->buf && s->result == 0) {
            memset((char *)pc->io->buf + pc->p.buf_off, 0, pc->p.len);
            v->st.zero_filled++;
        }
        piece_done(pc, s->result);
        return;
    }
    if (s->sleep_ms > 0) {
        pc->pending = *s;
        memset(&pc->call, 0, sizeof(pc->call));
        pc->call.sleep_ms = s->sleep_ms;
        piece_call(pc, CURVE_VOLIO_CALL_SLEEP);
        return;
    }
    issue_step(pc, s);
}

static void piece_fail_later(piece *pc, int err);

static void start_chunk(piece *pc)
{
    pc->phase = PHASE_CHUNK;
    pc->holds_slot = true;
    if (pc->v->cancel_err != 0) {
        /* deferred: a grant runs inside another piece's completion, and the pieces queued for
         * slots would otherwise complete recursively, one inside the other */
        piece_fail_later(pc, pc->v->cancel_err);
        return;
    }
    curve_step s;
    curve_chunkreq_start(&pc->cr, &pc->v->crenv, pc->io->op, pc->loc.pool_id, pc->loc.copyset_id,
                         &s);
    curve_volio_io *io = pc->io;
    if (io->seed_status != 0 && s.kind == CURVE_STEP_SEND && s.sleep_ms == 0 && io->seed_peer &&
        strcmp(s.peer.addr, io->seed_peer) == 0) {
        /* that first attempt was made already (fast path): continue from its outcome */
        int st = io->seed_status;
        io->seed_status = 0;
        if (io->seed_start_ns != 0 && io->seed_start_ns < pc->cr.rs.start_ns)
            pc->cr.rs.start_ns = io->seed_start_ns; /* total_deadline_ms covers that attempt */
        curve_chunkreq_on_reply(&pc->cr, st, io->seed_timed_out, io->seed_hint, &s);
    }
    run_step(pc, &s);
}

static void slot_granted(curve_inflight_waiter *w)
{
    start_chunk(CURVE_CONTAINER_OF(w, piece, w));
}

static void want_slot(piece *pc)
{
    pc->phase = PHASE_SLOT;
    if (curve_inflight_acquire(&pc->v->inflight, &pc->w, slot_granted))
        start_chunk(pc);
}

static void issue_segment(piece *pc, uint64_t sleep_ms)
{
    curve_volio *v = pc->v;
    memset(&pc->call, 0, sizeof(pc->call));
    if (sleep_ms > 0) {
        pc->call.sleep_ms = sleep_ms;
        piece_call(pc, CURVE_VOLIO_CALL_SLEEP);
        return;
    }
    pc->call.file_id = v->env.file_id;
    pc->call.seg_index = pc->p.seg_index;
    pc->call.allocate = pc->io->op == CURVE_RETRY_OP_WRITE;
    piece_call(pc, CURVE_VOLIO_CALL_GET_SEGMENT);
}

/* Finds the piece's chunk in the cache; returns false when the MDS must be asked. */
static bool lookup_chunk(piece *pc, int *err)
{
    curve_volio *v = pc->v;
    *err = 0;
    int rc = curve_metacache_get_chunk(v->env.mc, v->env.file_id, pc->p.seg_index,
                                       pc->p.chunk_in_seg, &pc->loc);
    if (rc == -ENOENT)
        return false;
    if (rc != 0) {
        /* the cached segment has fewer chunks than the geometry says */
        CLOG_ERROR("file %llu segment %llu: no chunk %u in the MDS answer",
                   (unsigned long long)v->env.file_id, (unsigned long long)pc->p.seg_index,
                   pc->p.chunk_in_seg);
        *err = CURVE_ERR_CORRUPT;
    }
    return true;
}

/* Completes the piece with `err` from a 0 ms timer, so that a user IO never completes inside
 * curve_volio_submit. */
static void piece_fail_later(piece *pc, int err)
{
    pc->fail_later = true;
    pc->pending = (curve_step){.kind = CURVE_STEP_DONE, .result = err};
    memset(&pc->call, 0, sizeof(pc->call));
    piece_call(pc, CURVE_VOLIO_CALL_SLEEP);
}

static void start_piece(piece *pc)
{
    pc->phase = PHASE_SEGMENT;
    int err;
    if (pc->v->cancel_err != 0) {
        piece_fail_later(pc, pc->v->cancel_err); /* submitted after curve_volio_cancel */
        return;
    }
    if (lookup_chunk(pc, &err)) {
        if (err)
            piece_fail_later(pc, err);
        else
            want_slot(pc);
        return;
    }
    curve_volio *v = pc->v;
    curve_retry_init(&pc->seg_rs, v->env.opts, v->env.clock, v->env.rand, v->env.rand_ctx,
                     pc->io->op);
    issue_segment(pc, 0);
}

int curve_volio_submit(curve_volio *v, curve_volio_io *io)
{
    CURVE_ASSERT(v != NULL && io != NULL);
    if (!io->cb || (io->op != CURVE_RETRY_OP_READ && io->op != CURVE_RETRY_OP_WRITE &&
                    io->op != CURVE_RETRY_OP_DISCARD))
        return -EINVAL;
    if (io->op != CURVE_RETRY_OP_DISCARD && !io->buf && io->len > 0)
        return -EINVAL;
    curve_io_iter it;
    uint32_t pmax = io->op == CURVE_RETRY_OP_DISCARD ? 0 : v->env.geom.max_rpc_size;
    int rc = curve_io_iter_init(&it, &v->env.geom, io->offset, io->len, pmax);
    if (rc != 0)
        return rc;
    io->vol_ = v;
    io->result = 0;
    io->seq_ = 0;
    io->next_ = io->prev_ = NULL;
    curve_io_tracker_init(&io->tracker_, io_done_cb, io);
    if (io->len == 0) {
        v->st.ios_inflight++;
        defer_complete(v, io, &rc);
        if (rc != 0)
            v->st.ios_inflight--;
        return rc;
    }
    /* allocate every piece first: a failure then refuses the IO cleanly */
    uint64_t n = curve_io_piece_count(&v->env.geom, io->offset, io->len, pmax);
    piece **pcs = calloc(n, sizeof(*pcs));
    if (!pcs)
        return -ENOMEM;
    for (uint64_t i = 0; i < n; i++) {
        pcs[i] = calloc(1, sizeof(*pcs[i]));
        if (!pcs[i]) {
            for (uint64_t k = 0; k < i; k++)
                free(pcs[k]);
            free(pcs);
            return -ENOMEM;
        }
        pcs[i]->v = v;
        pcs[i]->io = io;
        bool more = curve_io_iter_next(&it, &pcs[i]->p);
        CURVE_ASSERT(more);
    }
    v->st.ios_inflight++;
    if (io->op != CURVE_RETRY_OP_READ) {
        io->seq_ = ++v->write_seq;
        list_append(&v->writes_head, &v->writes_tail, io);
    }
    curve_io_tracker_add(&io->tracker_, (unsigned)n);
    v->st.pieces_inflight += n;
    for (uint64_t i = 0; i < n; i++)
        start_piece(pcs[i]); /* never completes synchronously: every path waits on a call */
    free(pcs);
    curve_io_tracker_arm(&io->tracker_);
    return 0;
}

int curve_volio_flush(curve_volio *v, curve_volio_io *io)
{
    CURVE_ASSERT(v != NULL && io != NULL);
    if (!io->cb)
        return -EINVAL;
    io->vol_ = v;
    io->result = 0;
    io->seq_ = v->write_seq; /* the mark: writes up to here */
    io->next_ = io->prev_ = NULL;
    v->st.ios_inflight++;
    if (!v->writes_head || v->writes_head->seq_ > io->seq_) {
        int rc;
        defer_complete(v, io, &rc);
        if (rc != 0)
            v->st.ios_inflight--;
        return rc;
    }
    list_append(&v->flush_head, &v->flush_tail, io);
    return 0;
}

/* ---- backend completions ---------------------------------------------------------------- */

static piece *call_piece(curve_volio_call *c, curve_volio_call_kind kind)
{
    CURVE_ASSERT(c != NULL && c->owner_kind_ == OWNER_PIECE && c->kind == kind);
    return c->owner_;
}

void curve_volio_send_done(curve_volio_call *c, int status, bool timed_out, const char *leader_hint)
{
    piece *pc = call_piece(c, CURVE_VOLIO_CALL_SEND);
    curve_step s;
    curve_chunkreq_on_reply(&pc->cr, status, timed_out, leader_hint, &s);
    run_step(pc, &s);
}

void curve_volio_leader_done(curve_volio_call *c, const char *leader_addr, uint64_t term)
{
    piece *pc = call_piece(c, CURVE_VOLIO_CALL_GET_LEADER);
    curve_step s;
    curve_chunkreq_on_leader(&pc->cr, leader_addr, term, &s);
    run_step(pc, &s);
}

void curve_volio_mds_done(curve_volio_call *c, int rc)
{
    piece *pc = call_piece(c, CURVE_VOLIO_CALL_REFRESH_MDS);
    curve_step s;
    curve_chunkreq_on_mds(&pc->cr, rc, &s);
    run_step(pc, &s);
}

void curve_volio_segment_done(curve_volio_call *c, int rc)
{
    piece *pc = call_piece(c, CURVE_VOLIO_CALL_GET_SEGMENT);
    bool allocate = c->allocate;
    if (rc == 0) {
        int err;
        if (lookup_chunk(pc, &err)) {
            if (err)
                piece_done(pc, err);
            else
                want_slot(pc);
            return;
        }
        rc = CURVE_ERR_FAILURE_UNKNOWN; /* evicted at once (tiny cache): ask again, later */
    } else if (rc == CURVE_ERR_NOT_FOUND && !allocate) {
        /* never allocated: reads see zeros, discards have nothing to do */
        if (pc->io->op == CURVE_RETRY_OP_READ) {
            memset((char *)pc->io->buf + pc->p.buf_off, 0, pc->p.len);
            pc->v->st.zero_filled++;
        }
        piece_done(pc, 0);
        return;
    }
    if (pc->v->cancel_err != 0) {
        piece_done(pc, pc->v->cancel_err); /* canceled: the MDS is not asked again */
        return;
    }
    curve_rpc_outcome o = {.status = rc};
    curve_retry_action a;
    curve_retry_on_outcome(&pc->seg_rs, &o, &a);
    /* the MDS client rotates addresses itself: leader re-resolution does not apply here */
    while (a.verdict == CURVE_RETRY_AGAIN &&
           (a.resolve == CURVE_RESOLVE_PEERS || a.resolve == CURVE_RESOLVE_MDS))
        curve_retry_on_resolved(&pc->seg_rs, a.resolve, false, &a);
    if (a.became_slow) {
        pc->v->st.slow++;
        if (pc->v->env.on_slow)
            pc->v->env.on_slow(pc->v->env.slow_ctx);
        CLOG_WARN("IO on file %llu segment %llu slow (retrying for %llu ms, %u failed "
                  "attempts): last %s from the MDS",
                  (unsigned long long)pc->v->env.file_id, (unsigned long long)pc->p.seg_index,
                  (unsigned long long)pc->v->env.opts->slow_threshold_ms, pc->seg_rs.retries,
                  curve_errname(pc->seg_rs.last_status));
    }
    if (a.verdict == CURVE_RETRY_AGAIN) {
        issue_segment(pc, a.sleep_ms);
        return;
    }
    CLOG_ERROR("file %llu segment %llu: %s", (unsigned long long)pc->v->env.file_id,
               (unsigned long long)pc->p.seg_index, curve_strerror(a.err));
    piece_done(pc, a.verdict == CURVE_RETRY_FAIL ? a.err : CURVE_ERR_UNKNOWN);
}

void curve_volio_wakeup(curve_volio_call *c)
{
    CURVE_ASSERT(c != NULL && c->kind == CURVE_VOLIO_CALL_SLEEP);
    if (c->owner_kind_ == OWNER_DEFER) {
        deferred *d = c->owner_;
        curve_volio_io *io = d->io;
        curve_volio *v = io->vol_;
        free(d);
        complete_user(v, io, io->result);
        return;
    }
    piece *pc = call_piece(c, CURVE_VOLIO_CALL_SLEEP);
    if (pc->fail_later)
        run_step(pc, &pc->pending);
    else if (pc->v->cancel_err != 0)
        piece_done(pc, pc->v->cancel_err); /* canceled during its back-off */
    else if (pc->phase == PHASE_SEGMENT)
        issue_segment(pc, 0);
    else
        issue_step(pc, &pc->pending);
}
