/*
 * Deterministic Raft simulator (TigerBeetle / canonical-raft fixture style).
 *
 * One process, a virtual clock, a seeded xorshift PRNG and the SAME core code (curve_raft).
 * Faults: message drop, delay, reorder, duplication; partitions (symmetric, isolated node,
 * asymmetric one-way); crash and restart losing writes not yet fsynced (with torn and corrupted
 * log tails); slow disks; membership changes and leader transfers during faults; per-node clock
 * rates within the drift bound.
 *
 * Checked after every event: election safety (<= 1 leader per term), log matching (every
 * (index, term) ever written has one content and one predecessor term), leader completeness
 * (a new leader holds every entry applied anywhere), state-machine safety (every node applies the
 * same entry, and the same running hash, at each index; installed snapshots carry the hash of the
 * history), no acknowledged command lost, lease reads (a node with a valid lease has applied every
 * acknowledged command; at most one valid lease), ReadIndex (a completed read covers every command
 * acknowledged before it was requested). Liveness: once faults stop, a leader is elected and a new
 * command commits within a bounded simulated time; then all members converge to the same state.
 *
 * Usage: raft_sim --seeds N [--start S]   |   raft_sim --seed S [--verbose]
 *        [--unsafe commit-old-terms|vote-any-log|no-stickiness|stuck-transfer]
 *        [--expect-violation]
 * A failing seed prints the command that replays it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/assert.h"
#include "common/log.h"
#include "curve/errors.h"
#include "raft/raft.h"
#include "raft/raft_internal.h" /* transfer counters (coverage only) */

/* ---- bounds of the simulation ---- */
#define SIM_MAX_NODES    8   /* ids 1..8 */
#define SIM_NFILES       4   /* state-machine "chunk files" */
#define SIM_FILE_BYTES   256 /* bytes per file */
#define SIM_SLOTS        (SIM_NFILES * SIM_FILE_BYTES / 8)
#define SIM_MAX_DISK_OPS 8192 /* pending disk operations per node */
#define SIM_TICK_MS      5
#define SIM_LIVENESS_MS  6000 /* after healing: leader + commit within this */
#define SIM_CONVERGE_MS  8000 /* after that: every member applied the same state */

/* ============================================================================================
 * PRNG
 * ========================================================================================== */
static uint64_t g_rng;

static uint64_t rnd(void)
{
    uint64_t x = g_rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    g_rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t rnd_range(uint64_t lo, uint64_t hi) /* inclusive */
{
    return lo + rnd() % (hi - lo + 1);
}

static bool chance(uint32_t permille)
{
    return rnd() % 1000 < permille;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ULL;
    return h ^ (h >> 29);
}

static uint64_t hash_bytes(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

/* ============================================================================================
 * Global simulation state
 * ========================================================================================== */
static bool g_verbose;
static uint64_t g_seed;
static uint64_t g_now; /* global virtual time, ms */
static char g_violation[512];
static uint32_t g_unsafe;

static void vlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void vlog(const char *fmt, ...)
{
    if (!g_verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    printf("[%6" PRIu64 "] ", g_now);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

static void violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void violation(const char *fmt, ...)
{
    if (g_violation[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(g_violation, sizeof(g_violation), "t=%" PRIu64 "ms: ", g_now);
    vsnprintf(g_violation + n, sizeof(g_violation) - (size_t)n, fmt, ap);
    va_end(ap);
    vlog("VIOLATION %s", g_violation);
}

/* ---- growable u64 array ---- */
struct vec {
    uint64_t *v;
    uint64_t n, cap;
};

static void vec_set(struct vec *a, uint64_t i, uint64_t val)
{
    if (i >= a->cap) {
        uint64_t cap = a->cap ? a->cap : 256;
        while (cap <= i)
            cap *= 2;
        a->v = realloc(a->v, cap * sizeof(uint64_t));
        CURVE_ASSERT(a->v);
        memset(a->v + a->cap, 0, (cap - a->cap) * sizeof(uint64_t));
        a->cap = cap;
    }
    a->v[i] = val;
    if (i >= a->n)
        a->n = i + 1;
}

static uint64_t vec_get(const struct vec *a, uint64_t i)
{
    return i < a->n ? a->v[i] : 0;
}

static void vec_free(struct vec *a)
{
    free(a->v);
    memset(a, 0, sizeof(*a));
}

/* ---- checker state ---- */
struct hist {
    struct vec term;  /* index -> term of the applied entry (0: none yet) */
    struct vec hash;  /* index -> running hash after applying it */
    struct vec slot;  /* index -> slot+1 written by the command (0: none) */
    struct vec value; /* index -> value */
    struct vec leader_of_term;
    struct vec acked_term; /* index -> term of an acknowledged command at that index */
    uint64_t max_applied, max_acked;
    uint64_t nacked;
} g_hist;

/* log matching: (index, term) -> (content hash, previous term) */
struct lm_slot {
    uint64_t index, term, hash, prev_term;
};
static struct lm_slot *g_lm;
static uint64_t g_lm_cap, g_lm_n;

static void lm_insert_raw(uint64_t index, uint64_t term, uint64_t h, uint64_t prev_term);

static void lm_grow(void)
{
    struct lm_slot *old = g_lm;
    uint64_t oldcap = g_lm_cap;
    g_lm_cap = oldcap ? oldcap * 2 : 4096;
    g_lm = calloc(g_lm_cap, sizeof(*g_lm));
    CURVE_ASSERT(g_lm);
    g_lm_n = 0;
    for (uint64_t i = 0; i < oldcap; i++)
        if (old[i].index)
            lm_insert_raw(old[i].index, old[i].term, old[i].hash, old[i].prev_term);
    free(old);
}

static void lm_insert_raw(uint64_t index, uint64_t term, uint64_t h, uint64_t prev_term)
{
    uint64_t k = mix(index, term) & (g_lm_cap - 1);
    while (g_lm[k].index) {
        if (g_lm[k].index == index && g_lm[k].term == term) {
            if (g_lm[k].hash != h || g_lm[k].prev_term != prev_term)
                violation("log matching: entry (index %" PRIu64 ", term %" PRIu64
                          ") written with different content or predecessor term",
                          index, term);
            return;
        }
        k = (k + 1) & (g_lm_cap - 1);
    }
    g_lm[k] = (struct lm_slot){index, term, h, prev_term};
    g_lm_n++;
}

static void lm_check(uint64_t index, uint64_t term, uint64_t h, uint64_t prev_term)
{
    if (g_lm_n * 2 >= g_lm_cap)
        lm_grow();
    lm_insert_raw(index, term, h, prev_term);
}

static uint64_t entry_hash(const struct raft_entry *e)
{
    return mix(mix(e->type, e->len), e->len ? hash_bytes(e->data, e->len) : 0);
}

/* ============================================================================================
 * Nodes: in-memory disk, state machine, network endpoint
 * ========================================================================================== */
struct sim_entry {
    uint64_t term;
    uint8_t type;
    uint32_t len;
    uint8_t *data;
    bool corrupt; /* torn write: the disk log's crc check rejects it on load */
};

enum op_kind { OP_META = 1, OP_APPEND, OP_TRUNCATE, OP_COMPACT, OP_RESET };

struct disk_op {
    uint8_t kind;
    uint64_t done_at;
    uint64_t seq, a, b; /* META: term, vote (a, b); APPEND: seq, first (a); TRUNCATE: from (a);
                           COMPACT: upto (a); RESET: index, term (a, b) */
    struct sim_entry *ents;
    uint32_t n;
};

struct durable {
    uint64_t term, vote;
    struct sim_entry *log; /* log[0] has index first */
    uint64_t first, n, cap;
    bool has_snap;
    struct raft_snapshot_meta snap;
    uint64_t snap_hash;
    uint8_t files[SIM_NFILES][SIM_FILE_BYTES];
};

struct node;

struct sim_fsm {
    struct raft_fsm base;
    struct node *n;
    uint64_t applied, hash;
    uint8_t files[SIM_NFILES][SIM_FILE_BYTES];
    bool installing;
    uint8_t stage[SIM_NFILES][SIM_FILE_BYTES];
    /* versioned snapshots: the files of snapshot `snap_files` exist, older ones were deleted
     * when it was saved or installed (snapshot_read of an older snapshot fails) */
    uint64_t snap_files;
    /* pending snapshot save */
    bool saving;
    uint64_t save_at, save_hash;
    struct raft_snapshot_meta save_meta;
};

struct node {
    uint64_t id;
    bool exists; /* part of the simulation (initial member or added) */
    bool up;
    bool removed; /* decommissioned after its removal committed */
    bool wiped;   /* lost in the forced-reset scenario: never comes back, its messages vanish */
    uint64_t add_term, add_index; /* where the leader appended its add-learner entry */
    uint64_t incarnation;
    struct raft *r;
    struct raft_io io;
    struct sim_fsm fsm;
    struct durable disk;
    uint32_t ops_head, nops;
    uint64_t disk_last_done;
    bool slow_disk;
    uint64_t next_tick;
    uint64_t restart_at;
    uint32_t rate; /* clock rate in 1/1000 */
    uint64_t clock_off;
    int last_role;
    /* last: a seed's reset clears only what precedes it (op_push initializes each op) */
    struct disk_op ops[SIM_MAX_DISK_OPS];
};

static struct node g_nodes[SIM_MAX_NODES];
static uint32_t g_initial; /* initial voters 1..g_initial */

/* network */
struct sim_msg {
    uint64_t at, seq;
    uint32_t to; /* node index */
    struct raft_msg m;
    struct raft_entry *ents;
    uint8_t *blob;
};
static struct sim_msg **g_heap;
static uint64_t g_heap_n, g_heap_cap, g_msg_seq;
static bool g_block[SIM_MAX_NODES][SIM_MAX_NODES]; /* [from][to] */

/* per-seed fault parameters */
static struct {
    bool faults;
    uint32_t drop_pm, dup_pm;
    uint32_t delay_max;
    uint32_t crash_pm; /* per 100 ms */
    uint32_t leader_crash_pm;
    uint32_t partition_pm; /* per 100 ms */
    uint32_t member_pm;    /* per 100 ms */
    uint32_t transfer_pm;  /* per 100 ms */
    uint32_t propose_every;
    uint32_t idle_pm; /* per 100 ms: client traffic pauses for a while */
    uint64_t idle_until;
    uint64_t heal_at;
    bool versioned_snaps;   /* snapshot files named per snapshot; a new one deletes the old */
    uint64_t reset_at;      /* forced-reset scenario (0: none): the majority is lost then */
    uint64_t reset_node;    /* its survivor, once chosen */
    uint64_t reset_applied; /* the survivor's applied index then */
    /* slots written by entries the reset lost: a snapshot's live files may already hold their
     * data, so until a later entry overwrites such a slot its content is not checked */
    bool lost_slot[SIM_SLOTS];
    uint32_t read_err_pm; /* snapshot_read fails with -EIO (per read) */
} g_f;

static struct raft_options g_opts;

/* coverage counters over all seeds (printed at the end: proves the faults happen) */
static struct {
    uint64_t acked, reads, lease_checks, installs, crashes, torn, elections, conf_changes,
        transfers, partitions, dropped, duplicated;
    uint64_t stale_reads, read_errors, xfer_switches, xfer_abandons, resets;
} g_stats;

/* ---- helpers ---- */
static struct node *node_of(uint64_t id)
{
    return id >= 1 && id <= SIM_MAX_NODES ? &g_nodes[id - 1] : NULL;
}

static uint64_t node_now(struct node *n)
{
    return g_now * n->rate / 1000 + n->clock_off;
}

static void free_sim_entries(struct sim_entry *e, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        free(e[i].data);
}

/* ============================================================================================
 * raft_io implementation
 * ========================================================================================== */
static uint64_t io_now(struct raft_io *io)
{
    return node_now(io->data);
}

static uint64_t io_random(struct raft_io *io)
{
    return rnd();
}

static struct disk_op *op_push(struct node *n, uint8_t kind)
{
    CURVE_ASSERT(n->nops < SIM_MAX_DISK_OPS);
    struct disk_op *op = &n->ops[(n->ops_head + n->nops++) % SIM_MAX_DISK_OPS];
    memset(op, 0, sizeof(*op));
    op->kind = kind;
    uint64_t lat = n->slow_disk ? rnd_range(5, 60) : rnd_range(0, 4);
    uint64_t t = g_now + lat;
    if (t < n->disk_last_done)
        t = n->disk_last_done;
    n->disk_last_done = t;
    op->done_at = t;
    return op;
}

static int io_persist_meta(struct raft_io *io, uint64_t term, uint64_t vote)
{
    struct node *n = io->data;
    struct disk_op *op = op_push(n, OP_META);
    op->a = term;
    op->b = vote;
    return 0;
}

static int io_append(struct raft_io *io, uint64_t seq, uint64_t first, const struct raft_entry *e,
                     uint32_t cnt)
{
    struct node *n = io->data;
    struct disk_op *op = op_push(n, OP_APPEND);
    op->seq = seq;
    op->a = first;
    op->n = cnt;
    op->ents = calloc(cnt, sizeof(*op->ents));
    CURVE_ASSERT(op->ents);
    for (uint32_t i = 0; i < cnt; i++) {
        op->ents[i].term = e[i].term;
        op->ents[i].type = e[i].type;
        op->ents[i].len = e[i].len;
        if (e[i].len) {
            op->ents[i].data = malloc(e[i].len);
            memcpy(op->ents[i].data, e[i].data, e[i].len);
        }
        uint64_t prev_term = i ? e[i - 1].term : raft_term_at(n->r, first - 1);
        lm_check(first + i, e[i].term, entry_hash(&e[i]), prev_term);
    }
    return 0;
}

static int io_truncate(struct raft_io *io, uint64_t from)
{
    struct disk_op *op = op_push(io->data, OP_TRUNCATE);
    op->a = from;
    return 0;
}

static int io_compact(struct raft_io *io, uint64_t upto)
{
    struct disk_op *op = op_push(io->data, OP_COMPACT);
    op->a = upto;
    return 0;
}

static int io_reset_log(struct raft_io *io, uint64_t index, uint64_t term)
{
    struct disk_op *op = op_push(io->data, OP_RESET);
    op->a = index;
    op->b = term;
    return 0;
}

static void heap_push(struct sim_msg *m)
{
    if (g_heap_n == g_heap_cap) {
        g_heap_cap = g_heap_cap ? g_heap_cap * 2 : 256;
        g_heap = realloc(g_heap, g_heap_cap * sizeof(*g_heap));
        CURVE_ASSERT(g_heap);
    }
    uint64_t i = g_heap_n++;
    g_heap[i] = m;
    while (i > 0) {
        uint64_t p = (i - 1) / 2;
        struct sim_msg *a = g_heap[p], *b = g_heap[i];
        if (a->at < b->at || (a->at == b->at && a->seq < b->seq))
            break;
        g_heap[p] = b;
        g_heap[i] = a;
        i = p;
    }
}

static struct sim_msg *heap_pop(void)
{
    struct sim_msg *top = g_heap[0];
    g_heap[0] = g_heap[--g_heap_n];
    uint64_t i = 0;
    for (;;) {
        uint64_t l = 2 * i + 1, r = l + 1, s = i;
        if (l < g_heap_n && (g_heap[l]->at < g_heap[s]->at ||
                             (g_heap[l]->at == g_heap[s]->at && g_heap[l]->seq < g_heap[s]->seq)))
            s = l;
        if (r < g_heap_n && (g_heap[r]->at < g_heap[s]->at ||
                             (g_heap[r]->at == g_heap[s]->at && g_heap[r]->seq < g_heap[s]->seq)))
            s = r;
        if (s == i)
            break;
        struct sim_msg *t = g_heap[s];
        g_heap[s] = g_heap[i];
        g_heap[i] = t;
        i = s;
    }
    return top;
}

static void msg_free(struct sim_msg *sm)
{
    if (sm->ents) {
        for (uint32_t i = 0; i < sm->m.ae.n; i++)
            free((void *)sm->ents[i].data);
        free(sm->ents);
    }
    free(sm->blob);
    free(sm);
}

static struct sim_msg *msg_copy(const struct raft_msg *m)
{
    struct sim_msg *sm = calloc(1, sizeof(*sm));
    CURVE_ASSERT(sm);
    sm->m = *m;
    if (m->type == RAFT_MSG_APPEND_ENTRIES && m->ae.n) {
        sm->ents = calloc(m->ae.n, sizeof(*sm->ents));
        for (uint32_t i = 0; i < m->ae.n; i++) {
            sm->ents[i] = m->ae.entries[i];
            sm->ents[i].buf = NULL; /* the data is copied below: not the core's buffer */
            if (m->ae.entries[i].len) {
                void *d = malloc(m->ae.entries[i].len);
                memcpy(d, m->ae.entries[i].data, m->ae.entries[i].len);
                sm->ents[i].data = d;
            }
        }
        sm->m.ae.entries = sm->ents;
    }
    if (m->type == RAFT_MSG_INSTALL_SNAPSHOT && m->snap.len) {
        sm->blob = malloc(m->snap.len);
        memcpy(sm->blob, m->snap.data, m->snap.len);
        sm->m.snap.data = sm->blob;
    }
    return sm;
}

static int io_send(struct raft_io *io, const struct raft_msg *m)
{
    struct node *from = io->data;
    struct node *to = node_of(m->to);
    if (to == NULL || !to->exists)
        return -EHOSTUNREACH;
    if (g_f.faults && chance(g_f.drop_pm)) {
        g_stats.dropped++;
        return 0;
    }
    int copies = g_f.faults && chance(g_f.dup_pm) ? 2 : 1;
    if (copies == 2)
        g_stats.duplicated++;
    for (int c = 0; c < copies; c++) {
        struct sim_msg *sm = msg_copy(m);
        sm->to = (uint32_t)(to - g_nodes);
        sm->at = g_now + rnd_range(1, g_f.faults ? g_f.delay_max : 5);
        sm->seq = ++g_msg_seq;
        (void)from;
        heap_push(sm);
    }
    return 0;
}

/* ============================================================================================
 * State machine: SIM_SLOTS 8-byte slots spread over SIM_NFILES files, commands overwrite one
 * slot (idempotent, like chunk writes), plus a running hash of the applied sequence.
 * ========================================================================================== */
static void cb_propose_done(struct raft *r, void *cookie, uint64_t index, int status);

static int fsm_apply(struct raft_fsm *f, uint64_t index, const struct raft_entry *e)
{
    struct sim_fsm *s = (struct sim_fsm *)f;
    if (index != s->applied + 1)
        violation("node %" PRIu64 ": applied %" PRIu64 " after %" PRIu64, s->n->id, index,
                  s->applied);
    s->hash = mix(mix(s->hash, index), mix(e->term, entry_hash(e)));
    s->applied = index;
    uint64_t slot = 0, value = 0;
    if (e->type == RAFT_ENTRY_COMMAND && e->len == 16) {
        memcpy(&slot, e->data, 8);
        memcpy(&value, (const uint8_t *)e->data + 8, 8);
        slot %= SIM_SLOTS;
        memcpy(&s->files[0][0] + slot * 8, &value, 8);
    }
    uint64_t t = vec_get(&g_hist.term, index);
    if (t == 0) {
        vec_set(&g_hist.term, index, e->term);
        vec_set(&g_hist.hash, index, s->hash);
        if (e->type == RAFT_ENTRY_COMMAND && e->len == 16) {
            vec_set(&g_hist.slot, index, slot + 1);
            vec_set(&g_hist.value, index, value);
        }
        if (index > g_hist.max_applied)
            g_hist.max_applied = index;
    } else if (t != e->term || vec_get(&g_hist.hash, index) != s->hash) {
        violation("state machine safety: node %" PRIu64 " applied (index %" PRIu64 ", term %" PRIu64
                  ") but history has term %" PRIu64 " / different hash",
                  s->n->id, index, e->term, t);
    }
    uint64_t at = vec_get(&g_hist.acked_term, index);
    if (at && at != e->term)
        violation("acknowledged command lost: index %" PRIu64 " acked in term %" PRIu64
                  ", node %" PRIu64 " applied term %" PRIu64,
                  index, at, s->n->id, e->term);
    return 0;
}

static int fsm_snapshot_save(struct raft_fsm *f, const struct raft_snapshot_meta *meta)
{
    struct sim_fsm *s = (struct sim_fsm *)f;
    if (meta->index != s->applied)
        violation("snapshot_save at %" PRIu64 " but applied %" PRIu64, meta->index, s->applied);
    s->saving = true;
    s->save_meta = *meta;
    s->save_hash = s->hash;
    s->save_at = g_now + (s->n->slow_disk ? rnd_range(10, 80) : rnd_range(1, 5));
    return 0;
}

static const char *g_file_names[SIM_NFILES] = {"data/chunk_0", "data/chunk_1", "data/chunk_2",
                                               "data/chunk_3"};

#define SIM_NAME_MAX 48

/* Name of file i of snapshot `index`: versioned "snap_<index>/chunk_<i>" or a fixed name. */
static const char *file_name(char buf[SIM_NAME_MAX], uint64_t index, int i)
{
    if (!g_f.versioned_snaps)
        return g_file_names[i];
    snprintf(buf, SIM_NAME_MAX, "snap_%" PRIu64 "/chunk_%d", index, i);
    return buf;
}

/* File number of `name` (-1 if invalid); *index receives its snapshot (versioned names). */
static int file_idx(const char *name, uint64_t *index)
{
    *index = 0;
    if (!g_f.versioned_snaps) {
        for (int i = 0; i < SIM_NFILES; i++)
            if (strcmp(name, g_file_names[i]) == 0)
                return i;
        return -1;
    }
    int i = -1, used = 0;
    if (sscanf(name, "snap_%" SCNu64 "/chunk_%d%n", index, &i, &used) != 2 || name[used] != '\0' ||
        i < 0 || i >= SIM_NFILES)
        return -1;
    return i;
}

static int fsm_snapshot_read(struct raft_fsm *f, const char *name, uint64_t off, void *buf,
                             uint32_t len)
{
    struct sim_fsm *s = (struct sim_fsm *)f;
    uint64_t idx;
    int i = file_idx(name, &idx);
    if (i < 0)
        return -ENOENT;
    if (g_f.versioned_snaps && idx != s->snap_files) {
        g_stats.stale_reads++; /* replaced by a newer snapshot: its files are gone */
        return -ENOENT;
    }
    if (g_f.faults && g_f.read_err_pm && chance(g_f.read_err_pm)) { /* until healing */
        g_stats.read_errors++;
        return -EIO;
    }
    if (off >= SIM_FILE_BYTES)
        return 0;
    if (off + len > SIM_FILE_BYTES)
        len = (uint32_t)(SIM_FILE_BYTES - off);
    memcpy(buf, s->files[i] + off, len); /* live content: newer than the snapshot is fine */
    return (int)len;
}

static int fsm_install_begin(struct raft_fsm *f, const struct raft_snapshot_meta *meta,
                             const struct raft_manifest *m)
{
    struct sim_fsm *s = (struct sim_fsm *)f;
    if (m->meta_len != 16 || m->nfiles != SIM_NFILES)
        return -EINVAL;
    s->installing = true;
    memset(s->stage, 0, sizeof(s->stage));
    return 0;
}

static int fsm_install_write(struct raft_fsm *f, const char *name, uint64_t off, const void *buf,
                             uint32_t len)
{
    struct sim_fsm *s = (struct sim_fsm *)f;
    uint64_t idx;
    int i = file_idx(name, &idx);
    if (!s->installing || i < 0 || off + len > SIM_FILE_BYTES)
        return -EINVAL;
    memcpy(s->stage[i] + off, buf, len);
    return 0;
}

static int fsm_install_finish(struct raft_fsm *f, const struct raft_snapshot_meta *meta,
                              const struct raft_manifest *m)
{
    struct sim_fsm *s = (struct sim_fsm *)f;
    if (!s->installing || m->meta_len != 16)
        return -EINVAL;
    uint64_t idx, h;
    memcpy(&idx, m->meta, 8);
    memcpy(&h, (const uint8_t *)m->meta + 8, 8);
    if (idx != meta->index)
        violation("install: manifest index %" PRIu64 " != meta %" PRIu64, idx, meta->index);
    uint64_t ht = vec_get(&g_hist.hash, idx);
    if (vec_get(&g_hist.term, idx) && ht != h)
        violation("state machine safety: snapshot %" PRIu64 " installed on node %" PRIu64
                  " has a hash different from the history",
                  idx, s->n->id);
    s->installing = false;
    memcpy(s->files, s->stage, sizeof(s->files));
    s->applied = idx;
    s->hash = h;
    s->snap_files = idx; /* our older snapshot's files are deleted */
    /* durable at once (the real store renames a staged directory) */
    struct durable *d = &s->n->disk;
    memcpy(d->files, s->files, sizeof(d->files));
    d->has_snap = true;
    d->snap = *meta;
    d->snap_hash = h;
    vlog("node %" PRIu64 " installed snapshot %" PRIu64, s->n->id, idx);
    g_stats.installs++;
    return 0;
}

static void fsm_install_abort(struct raft_fsm *f)
{
    ((struct sim_fsm *)f)->installing = false;
}

/* ============================================================================================
 * Client callbacks
 * ========================================================================================== */
struct proposal_ck {
    uint64_t value, slot, term;
};

static void cb_propose_done(struct raft *r, void *cookie, uint64_t index, int status)
{
    struct proposal_ck *ck = cookie;
    if (status == 0) {
        uint64_t t = vec_get(&g_hist.term, index);
        if (t != ck->term)
            violation("ack of index %" PRIu64 " term %" PRIu64 " but history has term %" PRIu64,
                      index, ck->term, t);
        if (vec_get(&g_hist.value, index) != ck->value)
            violation("ack of index %" PRIu64 " but history holds another value", index);
        vec_set(&g_hist.acked_term, index, ck->term);
        if (index > g_hist.max_acked)
            g_hist.max_acked = index;
        g_hist.nacked++;
        g_stats.acked++;
    }
    free(ck);
}

struct read_ck {
    uint64_t node, acked_at_request;
};

static void cb_read_done(struct raft *r, void *cookie, uint64_t index, int status)
{
    struct read_ck *ck = cookie;
    if (status == 0)
        g_stats.reads++;
    if (status == 0 && raft_applied_index(r) < ck->acked_at_request)
        violation("ReadIndex on node %" PRIu64 " completed at applied %" PRIu64 " < %" PRIu64
                  " acknowledged before the read",
                  ck->node, raft_applied_index(r), ck->acked_at_request);
    free(ck);
}

static struct raft_cbs g_cbs = {.propose_done = cb_propose_done, .read_done = cb_read_done};

/* ============================================================================================
 * Node lifecycle
 * ========================================================================================== */
static void disk_apply(struct node *n, struct disk_op *op, bool partial, uint32_t keep,
                       bool corrupt_last)
{
    struct durable *d = &n->disk;
    switch (op->kind) {
    case OP_META:
        d->term = op->a;
        d->vote = op->b;
        break;
    case OP_APPEND: {
        uint64_t first = op->a;
        uint32_t cnt = partial ? keep : op->n;
        if (d->n == 0)
            d->first = first;
        /* the log writer appends right after the current tail */
        CURVE_ASSERT(first == d->first + d->n);
        if (d->n + cnt > d->cap) {
            d->cap = (d->n + cnt) * 2;
            d->log = realloc(d->log, d->cap * sizeof(*d->log));
            CURVE_ASSERT(d->log);
        }
        for (uint32_t i = 0; i < cnt; i++) {
            d->log[d->n + i] = op->ents[i];
            op->ents[i].data = NULL;
            d->log[d->n + i].corrupt = partial && corrupt_last && i + 1 == cnt;
        }
        d->n += cnt;
        break;
    }
    case OP_TRUNCATE:
        while (d->n > 0 && d->first + d->n - 1 >= op->a) {
            free(d->log[d->n - 1].data);
            d->n--;
        }
        break;
    case OP_COMPACT: {
        uint64_t k = 0;
        while (k < d->n && d->first + k <= op->a)
            free(d->log[k++].data);
        memmove(d->log, d->log + k, (d->n - k) * sizeof(*d->log));
        d->n -= k;
        d->first += k;
        if (d->n == 0)
            d->first = op->a + 1;
        break;
    }
    case OP_RESET:
        free_sim_entries(d->log, d->n);
        d->n = 0;
        d->first = op->a + 1;
        break;
    }
}

static void op_release(struct disk_op *op)
{
    if (op->ents) {
        free_sim_entries(op->ents, op->n);
        free(op->ents);
    }
    op->ents = NULL;
}

static void disk_run(struct node *n)
{
    while (n->up && n->nops > 0) {
        struct disk_op *op = &n->ops[n->ops_head];
        if (op->done_at > g_now)
            return;
        n->ops_head = (n->ops_head + 1) % SIM_MAX_DISK_OPS;
        n->nops--;
        disk_apply(n, op, false, 0, false);
        uint8_t kind = op->kind;
        uint64_t seq = op->seq, a = op->a, b = op->b;
        op_release(op);
        if (kind == OP_META)
            raft_io_meta_done(n->r, a, b, 0);
        else if (kind == OP_APPEND)
            raft_io_append_done(n->r, seq, 0);
    }
}

static void fsm_save_run(struct node *n)
{
    struct sim_fsm *s = &n->fsm;
    if (!n->up || !s->saving || s->save_at > g_now)
        return;
    s->saving = false;
    struct durable *d = &n->disk;
    d->has_snap = true;
    d->snap = s->save_meta;
    d->snap_hash = s->save_hash;
    memcpy(d->files, s->files, sizeof(d->files)); /* fsync of the chunk files */
    uint8_t meta[16];
    memcpy(meta, &s->save_meta.index, 8);
    memcpy(meta + 8, &s->save_hash, 8);
    s->snap_files = s->save_meta.index; /* the previous snapshot's files are deleted */
    struct raft_snapshot_file files[SIM_NFILES];
    char names[SIM_NFILES][SIM_NAME_MAX];
    for (int i = 0; i < SIM_NFILES; i++) {
        files[i].name = file_name(names[i], s->save_meta.index, i);
        files[i].size = SIM_FILE_BYTES;
    }
    struct raft_manifest m = {.meta = meta, .meta_len = 16, .nfiles = SIM_NFILES, .files = files};
    raft_snapshot_saved(n->r, s->save_meta.index, 0, &m);
}

static void node_start(struct node *n, bool bootstrap)
{
    struct durable *d = &n->disk;
    n->incarnation++;
    n->up = true;
    n->nops = 0;
    n->ops_head = 0;
    n->disk_last_done = g_now;
    n->next_tick = g_now + rnd_range(0, SIM_TICK_MS);
    n->last_role = RAFT_FOLLOWER;
    /* the disk log's load: entries after the first one failing its crc are dropped */
    uint64_t valid = 0;
    while (valid < d->n && !d->log[valid].corrupt)
        valid++;
    if (valid < d->n) {
        vlog("node %" PRIu64 ": torn log tail at index %" PRIu64 " dropped", n->id,
             d->first + valid);
        free_sim_entries(d->log + valid, d->n - valid);
        d->n = valid;
    }
    struct raft_entry *ents = calloc(d->n + 1, sizeof(*ents));
    for (uint64_t i = 0; i < d->n; i++) {
        ents[i].term = d->log[i].term;
        ents[i].type = d->log[i].type;
        ents[i].len = d->log[i].len;
        ents[i].data = d->log[i].data;
    }
    /* the state machine restarts from its durable files and snapshot */
    struct sim_fsm *s = &n->fsm;
    memset(s, 0, sizeof(*s));
    s->base.version = RAFT_FSM_VERSION;
    s->base.data = n;
    s->base.apply = fsm_apply;
    s->base.snapshot_save = fsm_snapshot_save;
    s->base.snapshot_read = fsm_snapshot_read;
    s->base.install_begin = fsm_install_begin;
    s->base.install_write = fsm_install_write;
    s->base.install_finish = fsm_install_finish;
    s->base.install_abort = fsm_install_abort;
    s->n = n;
    memcpy(s->files, d->files, sizeof(s->files));
    if (d->has_snap) {
        s->applied = d->snap.index;
        s->hash = d->snap_hash;
        s->snap_files = d->snap.index;
    }
    n->io = (struct raft_io){
        .version = RAFT_IO_VERSION,
        .data = n,
        .now_ms = io_now,
        .random = io_random,
        .persist_meta = io_persist_meta,
        .append = io_append,
        .truncate = io_truncate,
        .compact = io_compact,
        .reset_log = io_reset_log,
        .send = io_send,
    };
    struct raft_options o = g_opts;
    o.id = n->id;
    int rc = raft_new(&o, &n->io, &s->base, &g_cbs, &n->r);
    CURVE_ASSERT(rc == 0);
    struct raft_config boot_conf = {0};
    for (uint32_t i = 0; i < g_initial; i++) {
        boot_conf.s[i].id = i + 1;
        boot_conf.s[i].role = RAFT_VOTER;
    }
    boot_conf.n = g_initial;
    struct raft_boot b = {
        .term = d->term,
        .vote = d->vote,
        .snap = d->has_snap ? &d->snap : NULL,
        .first_index = d->n ? d->first : 0,
        .entries = ents,
        .n = (uint32_t)d->n,
        .bootstrap = bootstrap ? &boot_conf : NULL,
    };
    rc = raft_start(n->r, &b);
    free(ents);
    if (rc != 0)
        violation("node %" PRIu64 ": raft_start failed: %s", n->id, curve_strerror(rc));
    vlog("node %" PRIu64 " started (term %" PRIu64 ", log %" PRIu64 " entries from %" PRIu64
         ", snapshot %" PRIu64 ")",
         n->id, d->term, d->n, d->first, d->has_snap ? d->snap.index : 0);
}

static void node_crash(struct node *n, bool torn)
{
    if (!n->up)
        return;
    vlog("node %" PRIu64 " crashes", n->id);
    g_stats.crashes += torn;
    g_stats.xfer_switches += n->r->xfer_switches;
    g_stats.xfer_abandons += n->r->xfer_abandons;
    raft_free(n->r);
    n->r = NULL;
    n->up = false;
    /* writes issued but not completed: a prefix may have reached the disk, the next one torn */
    bool landing = true;
    while (n->nops > 0) {
        struct disk_op *op = &n->ops[n->ops_head];
        n->ops_head = (n->ops_head + 1) % SIM_MAX_DISK_OPS;
        n->nops--;
        if (landing && torn && chance(500)) {
            disk_apply(n, op, false, 0, false);
        } else if (landing && torn && op->kind == OP_APPEND && op->n > 0 && chance(500)) {
            uint32_t keep = (uint32_t)rnd_range(1, op->n);
            disk_apply(n, op, true, keep, chance(500));
            g_stats.torn++;
            landing = false;
        } else {
            landing = false;
        }
        op_release(op);
    }
    /* chunk-file writes since the last fsync: any subset survives */
    for (int i = 0; i < SIM_NFILES; i++)
        for (int k = 0; k < SIM_FILE_BYTES; k += 8)
            if (chance(500))
                memcpy(n->disk.files[i] + k, n->fsm.files[i] + k, 8);
    n->fsm.saving = false;
}

/* ============================================================================================
 * Driver
 * ========================================================================================== */
static uint64_t g_value;

static struct node *find_leader(void)
{
    struct node *best = NULL;
    for (int i = 0; i < SIM_MAX_NODES; i++) {
        struct node *n = &g_nodes[i];
        if (n->up && raft_role(n->r) == RAFT_LEADER &&
            (best == NULL || raft_term(n->r) > raft_term(best->r)))
            best = n;
    }
    return best;
}

/* In a quarter of the seeds (chosen from the seed itself, so the other seeds draw the same
 * random numbers as before) clients propose bursts of 1..8 commands through
 * raft_propose_batch: one io->append and one AppendEntries round for the burst. */
static bool batch_seed(void)
{
    return ((g_seed * 0x9E3779B97F4A7C15ull) >> 62) == 3;
}

static uint64_t g_batches; /* raft_propose_batch calls with more than one proposal (coverage) */

static void propose_batch_on(struct node *n)
{
    uint32_t k = (uint32_t)rnd_range(1, 8);
    struct raft_prop p[8];
    uint8_t buf[8][16];
    struct proposal_ck *ck[8];
    for (uint32_t i = 0; i < k; i++) {
        ck[i] = calloc(1, sizeof(*ck[i]));
        ck[i]->value = ++g_value;
        ck[i]->slot = rnd() % SIM_SLOTS;
        memcpy(buf[i], &ck[i]->slot, 8);
        memcpy(buf[i] + 8, &ck[i]->value, 8);
        p[i] = (struct raft_prop){.data = buf[i], .len = 16, .cookie = ck[i]};
    }
    uint32_t acc = raft_propose_batch(n->r, p, k);
    uint32_t seen = 0;
    for (uint32_t i = 0; i < k; i++) {
        if (p[i].status != 0) {
            free(ck[i]);
            continue;
        }
        seen++;
        ck[i]->term = p[i].term;
        if (i > 0 && p[i - 1].status == 0 && p[i].index != p[i - 1].index + 1)
            violation("raft_propose_batch: proposals %u and %u got indexes %" PRIu64
                      " and %" PRIu64, i - 1, i, p[i - 1].index, p[i].index);
    }
    if (seen != acc)
        violation("raft_propose_batch returned %u but %u proposals have status 0", acc, seen);
    if (k > 1)
        g_batches++;
}

static int propose_on(struct node *n)
{
    if (batch_seed()) {
        propose_batch_on(n);
        return 0;
    }
    struct proposal_ck *ck = calloc(1, sizeof(*ck));
    ck->value = ++g_value;
    ck->slot = rnd() % SIM_SLOTS;
    uint8_t buf[16];
    memcpy(buf, &ck->slot, 8);
    memcpy(buf + 8, &ck->value, 8);
    uint64_t index;
    int rc = raft_propose(n->r, buf, 16, ck, &index, &ck->term);
    if (rc != 0)
        free(ck);
    return rc;
}

static void check_invariants(void)
{
    uint32_t leases = 0;
    bool lease[SIM_MAX_NODES] = {false};
    for (int i = 0; i < SIM_MAX_NODES; i++) {
        struct node *n = &g_nodes[i];
        if (!n->up)
            continue;
        int role = raft_role(n->r);
        if (role == RAFT_LEADER) {
            uint64_t t = raft_term(n->r);
            uint64_t l = vec_get(&g_hist.leader_of_term, t);
            if (l == 0) {
                vec_set(&g_hist.leader_of_term, t, n->id);
            } else if (l != n->id) {
                violation("election safety: nodes %" PRIu64 " and %" PRIu64
                          " are both leaders of term %" PRIu64,
                          l, n->id, t);
            }
            if (n->last_role != RAFT_LEADER) {
                /* leader completeness: every entry applied anywhere is in the new leader's log */
                struct raft_status st;
                raft_status(n->r, &st);
                uint64_t from = st.first_index > 1 ? st.first_index - 1 : 1;
                for (uint64_t k = from; k <= g_hist.max_applied; k++) {
                    uint64_t ht = vec_get(&g_hist.term, k);
                    if (ht && raft_term_at(n->r, k) != ht) {
                        violation("leader completeness: leader %" PRIu64 " of term %" PRIu64
                                  " has term %" PRIu64 " at committed index %" PRIu64
                                  " (history: %" PRIu64 ")",
                                  n->id, t, raft_term_at(n->r, k), k, ht);
                        break;
                    }
                }
                vlog("node %" PRIu64 " is leader of term %" PRIu64, n->id, t);
                g_stats.elections++;
            }
        }
        n->last_role = role;
        if (raft_lease_valid(n->r)) {
            lease[i] = true;
            leases++;
            g_stats.lease_checks++;
            if (raft_applied_index(n->r) < g_hist.max_acked)
                violation("lease read: node %" PRIu64 " holds a lease at applied %" PRIu64
                          " but %" PRIu64 " was acknowledged",
                          n->id, raft_applied_index(n->r), g_hist.max_acked);
        }
        int f = raft_failed(n->r);
        if (f)
            violation("node %" PRIu64 " failed: %s", n->id, curve_strerror(f));
    }
    if (leases > 1)
        violation("lease: %u nodes hold a valid lease at once", leases);
    /* stronger: while a node holds a lease in term t, nobody can have won a later election */
    for (int i = 0; leases && i < SIM_MAX_NODES; i++) {
        struct node *a = &g_nodes[i];
        if (!lease[i])
            continue;
        for (int j = 0; j < SIM_MAX_NODES; j++) {
            struct node *b = &g_nodes[j];
            if (b->up && raft_role(b->r) == RAFT_LEADER && raft_term(b->r) > raft_term(a->r))
                violation("lease: node %" PRIu64 " holds a lease in term %" PRIu64
                          " while node %" PRIu64 " leads term %" PRIu64,
                          a->id, raft_term(a->r), b->id, raft_term(b->r));
        }
    }
}

static void set_partition(void)
{
    memset(g_block, 0, sizeof(g_block));
    uint32_t mode = (uint32_t)rnd_range(0, 5);
    uint32_t a = (uint32_t)rnd_range(0, SIM_MAX_NODES - 1);
    for (int k = 0; k < SIM_MAX_NODES && !(g_nodes[a].exists && !g_nodes[a].removed); k++)
        a = (a + 1) % SIM_MAX_NODES; /* an existing node */
    if (mode == 0) {
        vlog("partition: node %u isolated", a + 1);
        for (int j = 0; j < SIM_MAX_NODES; j++)
            g_block[a][j] = g_block[j][a] = true;
    } else if (mode == 1) {
        vlog("partition: random split");
        bool side[SIM_MAX_NODES];
        for (int j = 0; j < SIM_MAX_NODES; j++)
            side[j] = chance(500);
        for (int x = 0; x < SIM_MAX_NODES; x++)
            for (int y = 0; y < SIM_MAX_NODES; y++)
                g_block[x][y] = side[x] != side[y];
    } else if (mode == 2) {
        vlog("partition: node %u cannot send (asymmetric)", a + 1);
        for (int j = 0; j < SIM_MAX_NODES; j++)
            g_block[a][j] = true;
    } else if (mode == 3) {
        vlog("partition: node %u cannot receive (asymmetric)", a + 1);
        for (int j = 0; j < SIM_MAX_NODES; j++)
            g_block[j][a] = true;
    } else { /* modes 4 and 5: one link (a node hears some peers but not the leader) */
        uint32_t b = (uint32_t)rnd_range(0, SIM_MAX_NODES - 1);
        for (int k = 0; k < SIM_MAX_NODES && (b == a || !g_nodes[b].exists); k++)
            b = (b + 1) % SIM_MAX_NODES;
        vlog("partition: link %u <-> %u cut", a + 1, b + 1);
        g_block[a][b] = g_block[b][a] = true;
    }
}

static void membership_action(struct node *l)
{
    const struct raft_config *c = raft_config(l->r);
    uint32_t voters = 0, learners = 0;
    uint64_t learner = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        if (c->s[i].role == RAFT_VOTER)
            voters++;
        else {
            learners++;
            learner = c->s[i].id;
        }
    }
    if (learner) {
        int rc = raft_promote(l->r, learner);
        g_stats.conf_changes += rc == 0;
        vlog("promote %" PRIu64 " on leader %" PRIu64 ": %d", learner, l->id, rc);
        return;
    }
    if (voters > 3 && chance(500)) {
        uint64_t victim = c->s[rnd() % c->n].id;
        int rc = raft_remove(l->r, victim);
        g_stats.conf_changes += rc == 0;
        vlog("remove %" PRIu64 " on leader %" PRIu64 ": %d", victim, l->id, rc);
        return;
    }
    if (voters < 5) {
        for (int i = 0; i < SIM_MAX_NODES; i++) {
            struct node *n = &g_nodes[i];
            if (n->exists)
                continue;
            int rc = raft_add_learner(l->r, n->id);
            vlog("add learner %" PRIu64 " on leader %" PRIu64 ": %d", n->id, l->id, rc);
            if (rc == 0) {
                g_stats.conf_changes++;
                n->exists = true;
                n->add_term = raft_term(l->r);
                n->add_index = raft_last_index(l->r);
                node_start(n, false);
            }
            return;
        }
    }
}

/* Decommission nodes absent from a committed configuration that is at least as recent as their
 * addition (a stale leader's committed configuration may predate it). */
static void reap_removed(void)
{
    struct node *l = find_leader();
    if (l == NULL || raft_commit_index(l->r) < raft_last_index(l->r))
        return;
    const struct raft_config *c = raft_config(l->r);
    for (int i = 0; i < SIM_MAX_NODES; i++) {
        struct node *n = &g_nodes[i];
        if (n->exists && !n->removed && raft_config_get(c, n->id) == NULL &&
            raft_term(l->r) >= n->add_term && raft_commit_index(l->r) >= n->add_index) {
            vlog("node %" PRIu64 " decommissioned (leader %" PRIu64 " term %" PRIu64
                 " commit %" PRIu64 " config of %u)",
                 n->id, l->id, raft_term(l->r), raft_commit_index(l->r), c->n);
            node_crash(n, false);
            n->removed = true;
        }
    }
}

static void deliver(struct sim_msg *sm)
{
    struct node *to = &g_nodes[sm->to];
    struct node *from = node_of(sm->m.from);
    bool blocked = from && ((g_f.faults && g_block[from - g_nodes][sm->to]) || from->wiped);
    if (to->up && !blocked) {
        int rc = raft_recv(to->r, &sm->m);
        if (rc != 0)
            violation("node %" PRIu64 " rejected a message of type %u: %s", to->id, sm->m.type,
                      curve_strerror(rc));
    }
    msg_free(sm);
}

static void fault_actions(void)
{
    for (int i = 0; i < SIM_MAX_NODES; i++) {
        struct node *n = &g_nodes[i];
        if (!n->exists || n->removed)
            continue;
        if (n->up && chance(g_f.crash_pm)) {
            node_crash(n, true);
            n->restart_at = g_now + rnd_range(20, 600);
        }
        if (chance(100))
            n->slow_disk = !n->slow_disk && chance(300);
    }
    struct node *cl = find_leader();
    if (cl && chance(g_f.leader_crash_pm)) {
        node_crash(cl, true);
        cl->restart_at = g_now + rnd_range(20, 400);
    }
    if (chance(g_f.idle_pm))
        g_f.idle_until = g_now + rnd_range(200, 1500);
    if (chance(g_f.partition_pm)) {
        set_partition();
        g_stats.partitions++;
    } else if (chance(120))
        memset(g_block, 0, sizeof(g_block));
    struct node *l = find_leader();
    if (l && chance(g_f.member_pm))
        membership_action(l);
    if (l && chance(g_f.transfer_pm)) {
        int rc = raft_transfer_leader(l->r, 0);
        g_stats.transfers += rc == 0;
        vlog("transfer leadership from %" PRIu64 ": %d", l->id, rc);
    }
}

/* ============================================================================================
 * Forced reset scenario (raft_reset_peers). The operator tool is unsafe by nature: entries held
 * only by the lost majority may be lost, and the lost servers must never come back. So the
 * scenario decommissions every member but one (for good: wiped), rebases the checker on what the
 * survivor has applied (history above it, terms above its term and their leaders are forgotten),
 * and calls raft_reset_peers on it. Every property is checked from then on, as usual: election
 * safety, log matching and state-machine safety in the new terms, no command acknowledged after
 * the reset lost, leases, and liveness: the survivor leads, new (empty) members join it, all
 * converge. If a crash loses the reset's configuration entry before it is durable, the operator
 * runs the reset again.
 * ========================================================================================== */
static void hist_truncate_after(uint64_t applied)
{
    struct vec *vs[] = {&g_hist.term, &g_hist.hash, &g_hist.slot, &g_hist.value,
                        &g_hist.acked_term};
    for (uint64_t i = applied + 1; i < g_hist.slot.n; i++)
        if (vec_get(&g_hist.slot, i))
            g_f.lost_slot[vec_get(&g_hist.slot, i) - 1] = true;
    for (size_t k = 0; k < sizeof(vs) / sizeof(vs[0]); k++)
        for (uint64_t i = applied + 1; i < vs[k]->n; i++)
            vec_set(vs[k], i, 0);
    g_hist.max_applied = applied < g_hist.max_applied ? applied : g_hist.max_applied;
    g_hist.max_acked = 0;
    for (uint64_t i = 1; i <= applied && i < g_hist.acked_term.n; i++)
        if (vec_get(&g_hist.acked_term, i))
            g_hist.max_acked = i;
}

static void lm_forget_terms_above(uint64_t term)
{
    struct lm_slot *old = g_lm;
    uint64_t cap = g_lm_cap;
    g_lm = calloc(cap, sizeof(*g_lm));
    CURVE_ASSERT(g_lm);
    g_lm_n = 0;
    for (uint64_t i = 0; i < cap; i++)
        if (old[i].index && old[i].term <= term)
            lm_insert_raw(old[i].index, old[i].term, old[i].hash, old[i].prev_term);
    free(old);
}

static void reset_scenario(void)
{
    struct node *sv = NULL;
    if (g_f.reset_node == 0) {
        uint32_t start = (uint32_t)(rnd() % SIM_MAX_NODES);
        for (uint32_t k = 0; k < SIM_MAX_NODES && sv == NULL; k++) {
            struct node *n = &g_nodes[(start + k) % SIM_MAX_NODES];
            const struct raft_server *me = n->up ? raft_config_get(raft_config(n->r), n->id) : NULL;
            if (n->exists && !n->removed && me && me->role == RAFT_VOTER)
                sv = n;
        }
        if (sv == NULL)
            return; /* no live voter now: try again later */
        g_f.reset_node = sv->id;
        uint64_t applied = raft_applied_index(sv->r), term = raft_term(sv->r);
        vlog("=== forced reset: node %" PRIu64 " survives (term %" PRIu64 ", applied %" PRIu64
             "), every other member is lost ===",
             sv->id, term, applied);
        for (int i = 0; i < SIM_MAX_NODES; i++) {
            struct node *n = &g_nodes[i];
            if (n == sv || !n->exists || n->removed)
                continue;
            node_crash(n, false);
            n->removed = n->wiped = true;
        }
        g_f.reset_applied = applied;
        hist_truncate_after(applied);
        for (uint64_t t = term + 1; t < g_hist.leader_of_term.n; t++)
            vec_set(&g_hist.leader_of_term, t, 0);
        lm_forget_terms_above(term);
    } else {
        sv = node_of(g_f.reset_node);
        if (!sv->up)
            return;
        /* re-run only if the reset's configuration entry was lost (a wiped voter is back in it) */
        const struct raft_config *c = raft_config(sv->r);
        bool lost = false;
        for (uint32_t i = 0; i < c->n; i++)
            lost |= node_of(c->s[i].id)->wiped;
        if (!lost)
            return;
        vlog("forced reset of node %" PRIu64 " lost in a crash: run again", sv->id);
    }
    int rc = raft_reset_peers(sv->r);
    vlog("raft_reset_peers(%" PRIu64 "): %d", sv->id, rc);
    if (rc == 0)
        g_stats.resets++;
    else if (rc != CURVE_ERR_BUSY)
        violation("raft_reset_peers on node %" PRIu64 ": %s", sv->id, curve_strerror(rc));
}

static void heal(void)
{
    vlog("=== faults stop: healing ===");
    g_f.faults = false;
    memset(g_block, 0, sizeof(g_block));
    for (int i = 0; i < SIM_MAX_NODES; i++) {
        g_nodes[i].slow_disk = false;
        if (g_nodes[i].exists && !g_nodes[i].removed && !g_nodes[i].up)
            g_nodes[i].restart_at = g_now;
    }
}

/* Advances the simulation by one event (or to `until`). */
static void step(uint64_t until)
{
    uint64_t next = until;
    if (g_heap_n && g_heap[0]->at < next)
        next = g_heap[0]->at;
    for (int i = 0; i < SIM_MAX_NODES; i++) {
        struct node *n = &g_nodes[i];
        if (!n->exists || n->removed)
            continue;
        if (n->up) {
            if (n->next_tick < next)
                next = n->next_tick;
            if (n->nops && n->ops[n->ops_head].done_at < next)
                next = n->ops[n->ops_head].done_at;
            if (n->fsm.saving && n->fsm.save_at < next)
                next = n->fsm.save_at;
        } else if (n->restart_at && n->restart_at < next) {
            next = n->restart_at;
        }
    }
    if (next > g_now)
        g_now = next;
    while (g_heap_n && g_heap[0]->at <= g_now && !g_violation[0]) {
        deliver(heap_pop());
        check_invariants();
    }
    for (int i = 0; i < SIM_MAX_NODES && !g_violation[0]; i++) {
        struct node *n = &g_nodes[i];
        if (!n->exists || n->removed)
            continue;
        if (!n->up) {
            if (n->restart_at && n->restart_at <= g_now) {
                n->restart_at = 0;
                node_start(n, n->id <= g_initial);
            }
            continue;
        }
        disk_run(n);
        fsm_save_run(n);
        if (n->up && n->next_tick <= g_now) {
            raft_tick(n->r);
            n->next_tick = g_now + SIM_TICK_MS;
        }
        check_invariants();
    }
}

static void sim_reset(void)
{
    for (int i = 0; i < SIM_MAX_NODES; i++) {
        struct node *n = &g_nodes[i];
        if (n->up)
            node_crash(n, false);
        free_sim_entries(n->disk.log, n->disk.n);
        free(n->disk.log);
        memset(n, 0, offsetof(struct node, ops)); /* ops[] is 450 KiB per node: not cleared */
    }
    while (g_heap_n)
        msg_free(heap_pop());
    free(g_heap);
    g_heap = NULL;
    g_heap_cap = 0;
    vec_free(&g_hist.term);
    vec_free(&g_hist.hash);
    vec_free(&g_hist.slot);
    vec_free(&g_hist.value);
    vec_free(&g_hist.leader_of_term);
    vec_free(&g_hist.acked_term);
    memset(&g_hist, 0, sizeof(g_hist));
    free(g_lm);
    g_lm = NULL;
    g_lm_cap = g_lm_n = 0;
    memset(g_block, 0, sizeof(g_block));
}

/* Every member applied the same index; files equal the history's state at that index. */
static bool converged(uint64_t *at)
{
    struct node *l = find_leader();
    if (l == NULL)
        return false;
    uint64_t c = raft_commit_index(l->r);
    if (c < g_hist.max_applied || c != raft_last_index(l->r))
        return false; /* the new leader has not caught up with what was applied before */
    const struct raft_config *conf = raft_config(l->r);
    for (uint32_t i = 0; i < conf->n; i++) {
        struct node *n = node_of(conf->s[i].id);
        if (!n->up || raft_applied_index(n->r) != c)
            return false;
    }
    *at = c;
    return true;
}

static void check_files(uint64_t at)
{
    uint8_t ref[SIM_NFILES][SIM_FILE_BYTES];
    memset(ref, 0, sizeof(ref));
    bool lax[SIM_SLOTS]; /* forced reset: slots of lost entries not overwritten since */
    memcpy(lax, g_f.lost_slot, sizeof(lax));
    for (uint64_t k = 1; k <= at; k++) {
        uint64_t s = vec_get(&g_hist.slot, k);
        if (s) {
            uint64_t v = vec_get(&g_hist.value, k);
            memcpy(&ref[0][0] + (s - 1) * 8, &v, 8);
            if (g_f.reset_node && k > g_f.reset_applied)
                lax[s - 1] = false;
        }
    }
    struct node *l = find_leader();
    const struct raft_config *conf = raft_config(l->r);
    for (uint32_t i = 0; i < conf->n; i++) {
        struct node *n = node_of(conf->s[i].id);
        bool differs = false;
        for (uint64_t sl = 0; sl < SIM_SLOTS; sl++)
            differs |= !lax[sl] && memcmp(&n->fsm.files[0][0] + sl * 8, &ref[0][0] + sl * 8, 8);
        if (differs) {
            for (uint64_t sl = 0; g_verbose && sl < SIM_SLOTS; sl++) {
                uint64_t have, want;
                memcpy(&have, &n->fsm.files[0][0] + sl * 8, 8);
                memcpy(&want, &ref[0][0] + sl * 8, 8);
                if (have == want || lax[sl])
                    continue;
                uint64_t wi = 0, hi = 0;
                for (uint64_t k = 1; k <= g_hist.max_applied; k++) {
                    if (vec_get(&g_hist.slot, k) == sl + 1 && vec_get(&g_hist.value, k) == want)
                        wi = k;
                    if (vec_get(&g_hist.slot, k) == sl + 1 && vec_get(&g_hist.value, k) == have)
                        hi = k;
                }
                vlog("slot %" PRIu64 ": node has value %" PRIu64 " (index %" PRIu64
                     "), history %" PRIu64 " (index %" PRIu64 ")",
                     sl, have, hi, want, wi);
            }
            violation("convergence: node %" PRIu64 " state differs from the history at %" PRIu64,
                      n->id, at);
            return;
        }
    }
}

static int run_seed(uint64_t seed)
{
    g_seed = seed;
    g_rng = seed * 0x9E3779B97F4A7C15ULL + 0x1234567ULL;
    if (g_rng == 0)
        g_rng = 1;
    g_now = 0;
    g_violation[0] = 0;
    g_value = 0;
    g_msg_seq = 0;

    raft_options_default(&g_opts);
    g_opts.group_id = 7;
    g_opts.election_timeout_ms = (uint32_t)rnd_range(80, 150);
    g_opts.heartbeat_ms = g_opts.election_timeout_ms / 5;
    g_opts.max_entries_per_msg = chance(250) ? 1 : (uint32_t)rnd_range(1, 16);
    g_opts.max_bytes_per_msg = (uint32_t)rnd_range(16, 512);
    g_opts.max_inflight_msgs = (uint32_t)rnd_range(1, 8);
    g_opts.max_pending_proposals = 256;
    g_opts.snapshot_threshold = rnd_range(8, 64);
    g_opts.snapshot_trailing = rnd_range(0, 16);
    g_opts.snapshot_threshold_bytes = chance(500) ? 0 : rnd_range(200, 1000);
    g_opts.snapshot_trailing_bytes = chance(500) ? 0 : rnd_range(0, 200);
    g_opts.snapshot_piece_bytes = (uint32_t)rnd_range(16, 256);
    g_opts.snapshot_max_inflight = (uint32_t)rnd_range(1, 4);
    g_opts.snapshot_bytes_per_sec = chance(500) ? 0 : rnd_range(20000, 200000);
    g_opts.promote_max_lag = 8;
    g_opts.pre_vote = !chance(100);     /* safety must not depend on the optimisations */
    g_opts.check_quorum = !chance(100); /* (without check-quorum there is no lease) */
    g_opts.debug_unsafe = g_unsafe;

    g_f.faults = true;
    g_f.drop_pm = (uint32_t)rnd_range(0, 100);
    g_f.dup_pm = (uint32_t)rnd_range(0, 50);
    g_f.delay_max = (uint32_t)rnd_range(2, 40);
    g_f.crash_pm = (uint32_t)rnd_range(0, 40);
    g_f.leader_crash_pm = chance(200) ? (uint32_t)rnd_range(100, 400) : (uint32_t)rnd_range(0, 100);
    g_f.partition_pm = (uint32_t)rnd_range(0, 150);
    g_f.member_pm = (uint32_t)rnd_range(0, 150);
    g_f.transfer_pm = (uint32_t)rnd_range(0, 80);
    g_f.propose_every = (uint32_t)rnd_range(2, 20);
    g_f.idle_pm = (uint32_t)rnd_range(0, 300);
    g_f.idle_until = 0;
    uint64_t fault_ms = rnd_range(2000, 6000);
    /* drawn from a second stream so the schedules above stay what they were per seed */
    uint64_t r2 = g_rng;
    g_rng = seed * 0xD1B54A32D192ED03ULL + 0x9E37ULL;
    g_f.versioned_snaps = chance(500);
    g_f.read_err_pm = chance(250) ? (uint32_t)rnd_range(10, 300) : 0;
    if (g_f.read_err_pm && chance(300))
        g_f.read_err_pm = (uint32_t)rnd_range(600, 950); /* transfers get abandoned */
    g_f.reset_at = chance(100) ? rnd_range(300, fault_ms - 500) : 0;
    g_f.reset_node = 0;
    g_f.reset_applied = 0;
    memset(g_f.lost_slot, 0, sizeof(g_f.lost_slot));
    g_rng = r2;

    g_initial = chance(250) ? 5 : 3;
    for (uint32_t i = 0; i < SIM_MAX_NODES; i++) {
        struct node *n = &g_nodes[i];
        n->id = i + 1;
        n->rate = 1000 + (uint32_t)rnd_range(0, 25); /* pairwise drift < 2.5% < the 5% bound */
        n->clock_off = rnd_range(0, 1000000);
        n->exists = i < g_initial;
    }
    vlog("seed %" PRIu64 ": %u voters, election %u ms, drop %u‰ dup %u‰ delay <= %u ms, "
         "crash %u‰ partition %u‰ member %u‰ transfer %u‰",
         seed, g_initial, g_opts.election_timeout_ms, g_f.drop_pm, g_f.dup_pm, g_f.delay_max,
         g_f.crash_pm, g_f.partition_pm, g_f.member_pm, g_f.transfer_pm);
    for (uint32_t i = 0; i < g_initial; i++)
        node_start(&g_nodes[i], true);

    uint64_t next_action = 0, next_fault = 100;
    while (g_now < fault_ms && !g_violation[0]) {
        step(next_action < next_fault ? next_action : next_fault);
        if (g_now >= next_action) {
            next_action = g_now + rnd_range(1, g_f.propose_every);
            struct node *l = find_leader();
            if (l && g_now >= g_f.idle_until) {
                propose_on(l);
                if (chance(100)) {
                    struct read_ck *ck = calloc(1, sizeof(*ck));
                    ck->node = l->id;
                    ck->acked_at_request = g_hist.max_acked;
                    if (raft_read_index(l->r, ck) != 0)
                        free(ck);
                }
            }
        }
        if (g_now >= next_fault) {
            next_fault = g_now + 100;
            fault_actions();
            if (g_f.reset_at && g_now >= g_f.reset_at)
                reset_scenario();
            reap_removed();
        }
    }
    /* liveness: heal, then a leader must commit a new command within SIM_LIVENESS_MS */
    heal();
    uint64_t deadline = g_now + SIM_LIVENESS_MS;
    uint64_t acked_before = g_hist.nacked;
    while (!g_violation[0] && g_hist.nacked == acked_before) {
        if (g_now >= deadline) {
            struct node *l = find_leader();
            violation("liveness: no command committed within %d ms after healing (leader %" PRIu64
                      ")",
                      SIM_LIVENESS_MS, l ? l->id : 0);
            break;
        }
        step(g_now + 10);
        struct node *l = find_leader();
        if (l)
            propose_on(l);
        reap_removed();
    }
    deadline = g_now + SIM_CONVERGE_MS;
    uint64_t at = 0;
    while (!g_violation[0] && !converged(&at)) {
        if (g_now >= deadline) {
            violation("liveness: members did not converge within %d ms", SIM_CONVERGE_MS);
            break;
        }
        step(g_now + 10);
        reap_removed();
    }
    if (!g_violation[0])
        check_files(at);
    if (!g_violation[0]) {
        /* no acknowledged command lost */
        for (uint64_t k = 1; k < g_hist.acked_term.n; k++) {
            uint64_t t = vec_get(&g_hist.acked_term, k);
            if (t && vec_get(&g_hist.term, k) != t) {
                violation("acknowledged command at %" PRIu64 " lost", k);
                break;
            }
        }
    }
    vlog("seed %" PRIu64 " done: %" PRIu64 " commands acknowledged, commit %" PRIu64, seed,
         g_hist.nacked, at);
    sim_reset();
    return g_violation[0] ? 1 : 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: raft_sim --seeds N [--start S] | --seed S [--verbose]\n"
                    "       [--unsafe commit-old-terms|vote-any-log|no-stickiness|stuck-transfer]"
                    " [--expect-violation]\n");
}

int main(int argc, char **argv)
{
    uint64_t seeds = 100, start = 1;
    bool expect_violation = false;
    const char *unsafe_name = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--seeds") == 0 && v) {
            seeds = strtoull(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--start") == 0 && v) {
            start = strtoull(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--seed") == 0 && v) {
            start = strtoull(v, NULL, 10);
            seeds = 1;
            i++;
        } else if (strcmp(a, "--verbose") == 0) {
            g_verbose = true;
        } else if (strcmp(a, "--expect-violation") == 0) {
            expect_violation = true;
        } else if (strcmp(a, "--unsafe") == 0 && v) {
            unsafe_name = v;
            if (strcmp(v, "commit-old-terms") == 0)
                g_unsafe = RAFT_UNSAFE_COMMIT_OLD_TERMS;
            else if (strcmp(v, "vote-any-log") == 0)
                g_unsafe = RAFT_UNSAFE_VOTE_ANY_LOG;
            else if (strcmp(v, "no-stickiness") == 0)
                g_unsafe = RAFT_UNSAFE_NO_STICKINESS;
            else if (strcmp(v, "stuck-transfer") == 0)
                g_unsafe = RAFT_UNSAFE_STUCK_TRANSFER;
            else {
                usage();
                return 2;
            }
            i++;
        } else {
            usage();
            return 2;
        }
    }
    if (seeds == 0) {
        usage();
        return 2;
    }
    curve_log_set_level(g_verbose ? CURVE_LOG_INFO : CURVE_LOG_FATAL);
    uint64_t failed = 0;
    for (uint64_t s = start; s < start + seeds; s++) {
        if (run_seed(s) == 0)
            continue;
        failed++;
        printf("seed %" PRIu64 " FAILED: %s\n", s, g_violation);
        printf("replay: %s --seed %" PRIu64 " --verbose%s%s\n", argv[0], s,
               unsafe_name ? " --unsafe " : "", unsafe_name ? unsafe_name : "");
        if (expect_violation)
            break;
        if (failed >= 10)
            break;
    }
    if (expect_violation) {
        if (failed) {
            printf("expected violation found: the checker works\n");
            return 0;
        }
        printf("no violation found in %" PRIu64 " seeds although the core was made unsafe\n",
               seeds);
        return 1;
    }
    if (failed) {
        printf("%" PRIu64 " seed(s) failed\n", failed);
        return 1;
    }
    printf("%" PRIu64 " seeds passed (from %" PRIu64 ")\n", seeds, start);
    printf("exercised: %" PRIu64 " commands acknowledged, %" PRIu64 " ReadIndex reads, %" PRIu64
           " lease-valid checks, %" PRIu64 " elections, %" PRIu64 " leader transfers, %" PRIu64
           " membership changes, %" PRIu64 " snapshot installs, %" PRIu64 " crashes (%" PRIu64
           " torn log tails), %" PRIu64 " partitions, %" PRIu64 " messages dropped, %" PRIu64
           " duplicated, %" PRIu64 " reads of replaced snapshots, %" PRIu64
           " injected read errors, %" PRIu64 " transfers moved to a newer snapshot, %" PRIu64
           " abandoned, %" PRIu64 " forced resets, %" PRIu64 " proposal batches\n",
           g_stats.acked, g_stats.reads, g_stats.lease_checks, g_stats.elections, g_stats.transfers,
           g_stats.conf_changes, g_stats.installs, g_stats.crashes, g_stats.torn,
           g_stats.partitions, g_stats.dropped, g_stats.duplicated, g_stats.stale_reads,
           g_stats.read_errors, g_stats.xfer_switches, g_stats.xfer_abandons, g_stats.resets,
           g_batches);
    return 0;
}
