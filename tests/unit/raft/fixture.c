#include "fixture.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/assert.h"

/* ---- io ---- */
static uint64_t io_now(struct raft_io *io)
{
    struct fx_node *n = io->data;
    return n->fx->now;
}

static uint64_t io_random(struct raft_io *io)
{
    struct fx_node *n = io->data;
    uint64_t x = n->fx->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    n->fx->rng = x;
    return x;
}

static int io_persist_meta(struct raft_io *io, uint64_t term, uint64_t vote)
{
    struct fx_node *n = io->data;
    CURVE_ASSERT(n->npend_meta < 64);
    n->pend_meta_term[n->npend_meta] = term;
    n->pend_meta_vote[n->npend_meta++] = vote;
    return 0;
}

static void log_push(struct fx_node *n, const struct raft_entry *e)
{
    if (n->n == n->cap) {
        n->cap = n->cap ? n->cap * 2 : 64;
        n->log = realloc(n->log, n->cap * sizeof(*n->log));
        CURVE_ASSERT(n->log);
    }
    struct fx_entry *d = &n->log[n->n++];
    d->term = e->term;
    d->type = e->type;
    d->len = e->len;
    d->data = NULL;
    if (e->len) {
        d->data = malloc(e->len);
        memcpy(d->data, e->data, e->len);
    }
}

/* Writes are applied to the durable image at once (in order); only completions are delayed. */
static int io_append(struct raft_io *io, uint64_t seq, uint64_t first, const struct raft_entry *e,
                     uint32_t cnt)
{
    struct fx_node *n = io->data;
    if (n->n == 0)
        n->first = first;
    CURVE_ASSERT(first == n->first + n->n);
    for (uint32_t i = 0; i < cnt; i++)
        log_push(n, &e[i]);
    CURVE_ASSERT(n->npend_append < 256);
    n->pend_append[n->npend_append++] = seq;
    return 0;
}

static int io_truncate(struct raft_io *io, uint64_t from)
{
    struct fx_node *n = io->data;
    while (n->n > 0 && n->first + n->n - 1 >= from)
        free(n->log[--n->n].data);
    return 0;
}

static int io_compact(struct raft_io *io, uint64_t upto)
{
    struct fx_node *n = io->data;
    uint64_t k = 0;
    while (k < n->n && n->first + k <= upto)
        free(n->log[k++].data);
    memmove(n->log, n->log + k, (n->n - k) * sizeof(*n->log));
    n->n -= k;
    n->first = n->n ? n->first + k : upto + 1;
    return 0;
}

static int io_reset_log(struct raft_io *io, uint64_t index, uint64_t term)
{
    struct fx_node *n = io->data;
    for (uint64_t i = 0; i < n->n; i++)
        free(n->log[i].data);
    n->n = 0;
    n->first = index + 1;
    return 0;
}

static int io_send(struct raft_io *io, const struct raft_msg *m)
{
    struct fx_node *n = io->data;
    struct fx *fx = n->fx;
    if (fx->nq == fx->capq) {
        fx->capq = fx->capq ? fx->capq * 2 : 64;
        fx->q = realloc(fx->q, fx->capq * sizeof(*fx->q));
        CURVE_ASSERT(fx->q);
    }
    struct fx_msg *c = &fx->q[fx->nq++];
    memset(c, 0, sizeof(*c));
    c->m = *m;
    if (m->type == RAFT_MSG_APPEND_ENTRIES && m->ae.n) {
        c->ents = calloc(m->ae.n, sizeof(*c->ents));
        for (uint32_t i = 0; i < m->ae.n; i++) {
            c->ents[i] = m->ae.entries[i];
            c->ents[i].buf = NULL; /* the data is copied below: not the core's buffer */
            if (c->ents[i].len) {
                void *d = malloc(c->ents[i].len);
                memcpy(d, m->ae.entries[i].data, c->ents[i].len);
                c->ents[i].data = d;
            }
        }
        c->m.ae.entries = c->ents;
    }
    if (m->type == RAFT_MSG_INSTALL_SNAPSHOT && m->snap.len) {
        c->blob = malloc(m->snap.len);
        memcpy(c->blob, m->snap.data, m->snap.len);
        c->m.snap.data = c->blob;
        if (m->snap.kind == RAFT_SNAP_PIECE)
            n->sent_snapshot_pieces++;
    }
    return 0;
}

static void msg_free(struct fx_msg *c)
{
    if (c->ents) {
        for (uint32_t i = 0; i < c->m.ae.n; i++)
            free((void *)c->ents[i].data);
        free(c->ents);
    }
    free(c->blob);
}

/* ---- fsm ---- */
static int fsm_apply(struct raft_fsm *f, uint64_t index, const struct raft_entry *e)
{
    struct fx_node *n = f->data;
    CURVE_ASSERT(index == n->applied + 1);
    n->applied = index;
    if (n->call_gen != n->fx->call_gen) { /* first entry of this call into the node */
        n->call_gen = n->fx->call_gen;
        n->applied_this_call = 0;
    }
    if (++n->applied_this_call > n->max_applied_per_call)
        n->max_applied_per_call = n->applied_this_call;
    if (n->apply_delay_us) {
        /* a slow disk, simulated: the apply itself takes this long */
        struct timespec ts = {0, (long)n->apply_delay_us * 1000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    if (e->type == RAFT_ENTRY_COMMAND && e->len == 8) {
        uint64_t v;
        memcpy(&v, e->data, 8);
        if (n->ncmds < 1024)
            n->cmds[n->ncmds++] = v;
        memcpy(&n->files[0][0] + (v % (FX_NFILES * FX_FILE_BYTES / 8)) * 8, &v, 8);
    }
    return 0;
}

static int fsm_snapshot_save(struct raft_fsm *f, const struct raft_snapshot_meta *meta)
{
    struct fx_node *n = f->data;
    n->saving = true;
    n->save_index = meta->index;
    n->has_snap = true;
    n->snap = *meta;
    return 0;
}

/* Slot of snapshot file `name` (0 or 1), or -1. With versioned files, `current` also requires
 * the name to belong to the node's current snapshot (the older ones were deleted). */
static int file_slot(struct fx_node *n, const char *name, bool current)
{
    if (!n->fx->versioned_files)
        return strcmp(name, "a") == 0 ? 0 : strcmp(name, "b") == 0 ? 1 : -1;
    char f = 0;
    unsigned long long idx = 0;
    int used = 0;
    if (sscanf(name, "%c.%llu%n", &f, &idx, &used) != 2 || name[used] != '\0')
        return -1;
    if (current && idx != n->snap_files)
        return -1;
    return f == 'a' ? 0 : f == 'b' ? 1 : -1;
}

static int fsm_snapshot_read(struct raft_fsm *f, const char *name, uint64_t off, void *buf,
                             uint32_t len)
{
    struct fx_node *n = f->data;
    if (n->read_errors > 0) {
        n->read_errors--;
        n->failed_reads++;
        return -EIO;
    }
    int i = file_slot(n, name, true);
    if (i < 0 || off > FX_FILE_BYTES) {
        n->failed_reads++;
        return -ENOENT;
    }
    if (off + len > FX_FILE_BYTES)
        len = (uint32_t)(FX_FILE_BYTES - off);
    memcpy(buf, n->files[i] + off, len);
    return (int)len;
}

static int fsm_install_begin(struct raft_fsm *f, const struct raft_snapshot_meta *meta,
                             const struct raft_manifest *m)
{
    struct fx_node *n = f->data;
    memset(n->stage, 0, sizeof(n->stage));
    return m->nfiles == FX_NFILES ? 0 : -EINVAL;
}

static int fsm_install_write(struct raft_fsm *f, const char *name, uint64_t off, const void *buf,
                             uint32_t len)
{
    struct fx_node *n = f->data;
    int i = file_slot(n, name, false);
    if (i < 0 || off + len > FX_FILE_BYTES)
        return -EINVAL;
    memcpy(n->stage[i] + off, buf, len);
    return 0;
}

static int fsm_install_finish(struct raft_fsm *f, const struct raft_snapshot_meta *meta,
                              const struct raft_manifest *m)
{
    struct fx_node *n = f->data;
    memcpy(n->files, n->stage, sizeof(n->files));
    n->applied = meta->index;
    n->ncmds = 0;
    n->installs++;
    n->has_snap = true;
    n->snap = *meta;
    n->snap_files = meta->index;
    return 0;
}

static void fsm_install_abort(struct raft_fsm *f) {}

/* ---- callbacks ---- */
static void cb_prop(struct raft *r, void *cookie, uint64_t index, int status)
{
    struct fx *fx = cookie;
    if (status == 0)
        fx->props_ok++;
    else
        fx->props_failed++;
    fx->last_prop_status = status;
}

static void cb_read(struct raft *r, void *cookie, uint64_t index, int status)
{
    struct fx *fx = cookie;
    if (status == 0)
        fx->reads_ok++;
    else
        fx->reads_failed++;
    fx->last_read_status = status;
    fx->last_read_index = index;
}

/* Finds its node through raft_cbs_data (the accessor under test), not through a global. */
static void cb_state(struct raft *r, int role, uint64_t term, uint64_t leader)
{
    struct fx_node *n = raft_cbs_data(r);
    CURVE_ASSERT(n != NULL && n->r == r);
    n->state_changes++;
}

static void cb_apply_pending(struct raft *r)
{
    struct fx_node *n = raft_cbs_data(r);
    CURVE_ASSERT(n != NULL && n->r == r && !n->want_apply);
    n->want_apply = true;
    n->apply_pending_calls++;
}

static const struct raft_cbs fx_cbs = {
    .propose_done = cb_prop, .read_done = cb_read, .state_changed = cb_state};

/* ---- cluster ---- */
void fx_init(struct fx *fx, uint32_t n, uint32_t voters, const struct raft_options *opts)
{
    memset(fx, 0, sizeof(*fx));
    CURVE_ASSERT(n <= FX_MAX && voters <= n);
    fx->n = n;
    fx->voters = voters;
    fx->now = 1000;
    fx->rng = 88172645463325252ULL;
    if (opts) {
        fx->opts = *opts;
    } else {
        raft_options_default(&fx->opts);
        fx->opts.election_timeout_ms = 100;
        fx->opts.heartbeat_ms = 10;
        fx->opts.snapshot_threshold = 0;
    }
    fx->opts.group_id = 1;
    for (uint32_t i = 0; i < n; i++) {
        struct fx_node *nd = &fx->nodes[i];
        nd->fx = fx;
        nd->id = i + 1;
    }
    for (uint32_t i = 0; i < n; i++)
        fx_start(fx, i + 1);
}

void fx_start(struct fx *fx, uint64_t id)
{
    struct fx_node *n = fx_node(fx, id);
    CURVE_ASSERT(!n->up);
    n->io = (struct raft_io){.version = RAFT_IO_VERSION,
                             .data = n,
                             .now_ms = io_now,
                             .random = io_random,
                             .persist_meta = io_persist_meta,
                             .append = io_append,
                             .truncate = io_truncate,
                             .compact = io_compact,
                             .reset_log = io_reset_log,
                             .send = io_send};
    n->fsm = (struct raft_fsm){.version = RAFT_FSM_VERSION,
                               .data = n,
                               .apply = fsm_apply,
                               .snapshot_save = fsm_snapshot_save,
                               .snapshot_read = fsm_snapshot_read,
                               .install_begin = fsm_install_begin,
                               .install_write = fsm_install_write,
                               .install_finish = fsm_install_finish,
                               .install_abort = fsm_install_abort};
    struct raft_options o = fx->opts;
    o.id = id;
    struct raft_cbs cbs = fx_cbs;
    cbs.data = n; /* raft_cbs_data(r) finds the node (tests check it) */
    if (fx->opts.apply_budget_us)
        cbs.apply_pending = cb_apply_pending;
    n->want_apply = false;
    int rc = raft_new(&o, &n->io, &n->fsm, &cbs, &n->r);
    CURVE_ASSERT(rc == 0);
    n->npend_meta = n->npend_append = 0;
    n->applied = n->has_snap ? n->snap.index : 0;
    struct raft_entry *ents = calloc(n->n + 1, sizeof(*ents));
    for (uint64_t i = 0; i < n->n; i++)
        ents[i] =
            (struct raft_entry){n->log[i].term, n->log[i].type, n->log[i].len, n->log[i].data, NULL};
    struct raft_config c = {0};
    for (uint32_t i = 0; i < fx->voters; i++) {
        c.s[c.n].id = i + 1;
        c.s[c.n++].role = RAFT_VOTER;
    }
    struct raft_boot b = {.term = n->term,
                          .vote = n->vote,
                          .snap = n->has_snap ? &n->snap : NULL,
                          .first_index = n->n ? n->first : 0,
                          .entries = ents,
                          .n = (uint32_t)n->n,
                          .bootstrap = id <= fx->voters ? &c : NULL};
    rc = raft_start(n->r, &b);
    CURVE_ASSERT(rc == 0);
    free(ents);
    n->up = true;
}

void fx_stop(struct fx *fx, uint64_t id)
{
    struct fx_node *n = fx_node(fx, id);
    if (!n->up)
        return;
    raft_free(n->r);
    n->r = NULL;
    n->up = false;
    n->npend_meta = n->npend_append = 0;
    n->saving = false;
}

void fx_free(struct fx *fx)
{
    for (uint32_t i = 0; i < fx->n; i++) {
        fx_stop(fx, i + 1);
        struct fx_node *n = &fx->nodes[i];
        for (uint64_t k = 0; k < n->n; k++)
            free(n->log[k].data);
        free(n->log);
    }
    for (uint32_t i = 0; i < fx->nq; i++)
        msg_free(&fx->q[i]);
    free(fx->q);
}

struct fx_node *fx_node(struct fx *fx, uint64_t id)
{
    CURVE_ASSERT(id >= 1 && id <= fx->n);
    return &fx->nodes[id - 1];
}

void fx_step(struct fx *fx)
{
    fx->now++;
    for (uint32_t i = 0; i < fx->n; i++) {
        struct fx_node *n = &fx->nodes[i];
        if (!n->up)
            continue;
        uint32_t nm = n->npend_meta, na = n->npend_append;
        uint64_t mt[64], mv[64], as[256];
        memcpy(mt, n->pend_meta_term, sizeof(mt));
        memcpy(mv, n->pend_meta_vote, sizeof(mv));
        memcpy(as, n->pend_append, sizeof(as));
        n->npend_meta = n->npend_append = 0;
        if (n->want_apply) {
            n->want_apply = false;
            fx->call_gen++;
            raft_apply(n->r);
        }
        for (uint32_t k = 0; k < nm; k++) {
            n->term = mt[k];
            n->vote = mv[k];
            fx->call_gen++;
            raft_io_meta_done(n->r, mt[k], mv[k], 0);
        }
        for (uint32_t k = 0; k < na; k++) {
            fx->call_gen++;
            raft_io_append_done(n->r, as[k], 0);
        }
        if (n->saving) {
            n->saving = false;
            char fa[32] = "a", fb[32] = "b";
            if (fx->versioned_files) {
                snprintf(fa, sizeof(fa), "a.%llu", (unsigned long long)n->save_index);
                snprintf(fb, sizeof(fb), "b.%llu", (unsigned long long)n->save_index);
            }
            n->snap_files = n->save_index; /* the previous snapshot's files are gone */
            struct raft_snapshot_file files[FX_NFILES] = {{fa, FX_FILE_BYTES}, {fb, FX_FILE_BYTES}};
            struct raft_manifest m = {
                .meta = "m", .meta_len = 1, .nfiles = FX_NFILES, .files = files};
            fx->call_gen++;
            raft_snapshot_saved(n->r, n->save_index, 0, &m);
        }
    }
    uint32_t nq = fx->nq;
    struct fx_msg *q = fx->q;
    fx->q = NULL;
    fx->nq = fx->capq = 0;
    for (uint32_t i = 0; i < nq; i++) {
        struct fx_msg *c = &q[i];
        uint64_t to = c->m.to;
        if (to >= 1 && to <= fx->n && !fx->cut[c->m.from][to] && fx->nodes[to - 1].up) {
            fx->call_gen++;
            (void)raft_recv(fx->nodes[to - 1].r, &c->m);
        }
        msg_free(c);
    }
    free(q);
    for (uint32_t i = 0; i < fx->n; i++)
        if (fx->nodes[i].up) {
            fx->call_gen++;
            raft_tick(fx->nodes[i].r);
        }
}

bool fx_run_until(struct fx *fx, bool (*pred)(struct fx *fx, void *arg), void *arg, uint32_t max_ms)
{
    for (uint32_t i = 0; i < max_ms; i++) {
        if (pred(fx, arg))
            return true;
        fx_step(fx);
    }
    return pred(fx, arg);
}

void fx_run(struct fx *fx, uint32_t ms)
{
    for (uint32_t i = 0; i < ms; i++)
        fx_step(fx);
}

void fx_isolate(struct fx *fx, uint64_t id, bool cut)
{
    for (uint32_t j = 1; j <= FX_MAX; j++) {
        fx->cut[id][j] = cut;
        fx->cut[j][id] = cut;
    }
}

struct fx_node *fx_leader(struct fx *fx)
{
    struct fx_node *best = NULL;
    for (uint32_t i = 0; i < fx->n; i++) {
        struct fx_node *n = &fx->nodes[i];
        if (n->up && raft_role(n->r) == RAFT_LEADER &&
            (best == NULL || raft_term(n->r) > raft_term(best->r)))
            best = n;
    }
    return best;
}

int fx_propose(struct fx *fx, uint64_t id, uint64_t v)
{
    struct fx_node *n = fx_node(fx, id);
    fx->call_gen++;
    return raft_propose(n->r, &v, 8, fx, NULL, NULL);
}

bool fx_has_leader(struct fx *fx, void *arg)
{
    struct fx_node *l = fx_leader(fx);
    /* a leader whose no-op has committed */
    return l != NULL && raft_commit_index(l->r) == raft_last_index(l->r);
}

bool fx_all_applied(struct fx *fx, void *arg)
{
    uint64_t want = *(uint64_t *)arg;
    for (uint32_t i = 0; i < fx->n; i++) {
        struct fx_node *n = &fx->nodes[i];
        if (n->up && n->applied < want)
            return false;
    }
    return true;
}
