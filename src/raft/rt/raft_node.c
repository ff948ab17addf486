/* Raft runtime: multi-Raft host, disk/RPC adapters of struct raft_io (see raft_node.h and
 * docs/raft-runtime.md). */
#include "raft/rt/raft_node.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/assert.h"
#include "common/clock.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "curve/errors.h"
#include "raft.pb-c.h"
#include "raft/io/metastore.h"
#include "rpc/rpc_channel.h"

#define RAFTRT_PATH_MAX          1024u       /* bytes of a group directory path */
#define RAFTRT_LAT_RING          1024u       /* proposals whose commit latency is tracked at once */
#define RAFTRT__SNAPMETA_MAGIC   0x4d4e5352u /* "RSNM" */
#define RAFTRT__SNAPMETA_VERSION 1u
#define RAFTRT_BOOT_READ_BATCH   1024u /* entries read per rlog_read_range at boot */
#define RAFTRT_PROPOSE_BATCH     256u  /* proposals gathered per loop turn into one raft append */
#define RAFTRT_ATT_SLACK         4096u /* received attachment bytes beyond 2x its entries that
                                          still let the entries reference it (else: copied) */

/* Channels per peer: one per sending loop (up to this many loops; beyond, loops share), so a
 * group's message is written by its own loop instead of being posted to another loop's
 * channel (one thread hand-off less per message). */
#define RAFTRT_PEER_CHANNELS 8u

struct peer {
    uint64_t id;
    char addr[RAFTRT_ADDR_MAX];
    /* ch[i] lives on loop i % nloops; created lazily; never closed before the host is freed */
    rpc_channel *ch[RAFTRT_PEER_CHANNELS];
};

struct log_disk {
    char data_dir[RAFTRT_PATH_MAX];
    rlog_disk *disk;
};

struct raftrt_host {
    raftrt_host_opts o;
    char listen[RAFTRT_ADDR_MAX];
    curve_loop_group *loops;
    curve_workpool *wp;
    rpc_server *srv;
    rpc_service_def svc;
    rpc_method_def methods[1];
    pthread_mutex_t lock; /* protects peers, retired, groups, ngroups */
    struct peer peers[RAFTRT_MAX_PEERS];
    unsigned npeers;
    rpc_channel **retired; /* channels replaced by an address change (closed at free) */
    unsigned nretired;
    raftrt_group **groups;
    unsigned ngroups;
    atomic_uint_fast64_t log_mem; /* payload bytes held by all groups' cores (mem_account) */
    atomic_uint ngroups_hint;     /* ngroups, readable without `lock` */
    /* shared log writers, one per data_dir (created on first use, freed with the host);
     * protected by `lock` */
    struct log_disk disks[RAFTRT_MAX_LOG_DISKS];
    unsigned ndisks;
    /* per loop: the groups with committed entries to apply, served one budget per loop turn
     * for the whole loop (apply_sched_cb); loop-only state */
    struct apply_sched *asched;
    unsigned nasched;
};

struct apply_sched {
    uv_idle_t idle;
    bool open;
    raftrt_group *head, *tail; /* FIFO (raftrt_group.anext); each holds a group reference */
};

struct lat_slot {
    uint64_t index, t0_us;
};

struct meta_req {
    uint64_t term, vote;
};

struct raftrt_group {
    raftrt_host *h;
    uint64_t id;
    atomic_uint refs; /* the owner + every posted message / job that points here */
    curve_loop *loop;
    char dir[RAFTRT_PATH_MAX], meta_dir[RAFTRT_PATH_MAX], snap_dir[RAFTRT_PATH_MAX];
    raftrt_fsm ufsm;
    struct raft_fsm fsm;
    struct raft_io io;
    struct raft_cbs cbs;
    struct raft *r; /* NULL once stopped (loop only) */
    bool failed_notified; /* ufsm.failed ran (loop only) */
    rlog *log;
    curve_timer timer;
    bool timer_open;
    uint32_t tick_ms;
    uint64_t rng;
    /* term/vote stores (loop only): FIFO of requests, one worker job at a time */
    struct meta_req metaq[RAFTRT_META_QUEUE_MAX];
    unsigned meta_head, meta_n;
    bool meta_inflight;
    struct raft_snapshot_meta saving_meta; /* meta of the snapshot_save in progress */
    /* proposals of the current loop turn, proposed together by batch_check_cb (loop only) */
    struct prop *pend[RAFTRT_PROPOSE_BATCH];
    unsigned npend;
    uv_check_t batch_check;
    bool batch_open;
    /* queued in its loop's apply scheduler (cbs.apply_pending; loop only) */
    struct apply_sched *asched;
    raftrt_group *anext;
    bool aqueued;
    /* memory accounting of the core's in-memory log (loop only; mem_max also read by stats) */
    uint64_t mem_bytes;
    atomic_uint_fast64_t mem_max, mem_snaps;
    /* commit latency bookkeeping (loop only) */
    struct lat_slot lat[RAFTRT_LAT_RING];
    unsigned lat_head, lat_n;
    /* counters (relaxed atomics: read from any thread) */
    atomic_uint_fast64_t proposals, msgs_sent, msgs_recv, send_errors, snaps_saved, snaps_installed;
    atomic_int role;
    atomic_uint_fast64_t term, applied;
    /* metrics (NULL without a registry) */
    curve_latency *m_commit, *m_apply, *m_append;
    curve_gauge *m_batch, *m_role, *m_term, *m_applied_idx;
};

/* ============================================================================================
 * Small helpers
 * ========================================================================================== */

/* The group whose loop callback is inside the core on this thread (state_changed only gets
 * `r`; see the request in docs/raft-runtime.md for a raft_cbs data accessor). */
static _Thread_local raftrt_group *tl_cur;

static inline void enter(raftrt_group *g)
{
    tl_cur = g;
}

static uint64_t now_us(void)
{
    return curve_now_mono_ns() / 1000u;
}

static void group_ref(raftrt_group *g)
{
    atomic_fetch_add(&g->refs, 1);
}

static void group_unref(raftrt_group *g)
{
    if (atomic_fetch_sub(&g->refs, 1) == 1) {
        CURVE_ASSERT(g->r == NULL);
        free(g);
    }
}

int raftrt_group_path(const char *data_dir, uint64_t group_id, const char *sub, char *buf,
                      size_t len)
{
    int n = (sub && *sub) ? snprintf(buf, len, "%s/%" PRIu64 "/%s", data_dir, group_id, sub)
                          : snprintf(buf, len, "%s/%" PRIu64, data_dir, group_id);
    return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

static int mkdir_p(const char *path)
{
    char tmp[RAFTRT_PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(tmp))
        return -ENAMETOOLONG;
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == 0) {
            char c = tmp[i];
            tmp[i] = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return -errno;
            tmp[i] = c;
        }
    }
    return 0;
}

static int fsync_dir(const char *dir)
{
    return curve_fsync_dir(dir);
}

/* ============================================================================================
 * Snapshot meta file
 * ========================================================================================== */

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

size_t raftrt__snapmeta_encode(const struct raft_snapshot_meta *m, uint8_t *buf, size_t len)
{
    uint8_t conf[RAFT_CONFIG_ENCODED_MAX];
    size_t clen = raft_config_encode(&m->conf, conf);
    size_t need = 36 + clen + 4;
    CURVE_ASSERT(len >= need);
    put_u32(buf, RAFTRT__SNAPMETA_MAGIC);
    put_u32(buf + 4, RAFTRT__SNAPMETA_VERSION);
    put_u64(buf + 8, m->index);
    put_u64(buf + 16, m->term);
    put_u64(buf + 24, m->conf_index);
    put_u32(buf + 32, (uint32_t)clen);
    memcpy(buf + 36, conf, clen);
    put_u32(buf + 36 + clen, curve_crc32c(0, buf, 36 + clen));
    return need;
}

int raftrt__snapmeta_decode(const uint8_t *buf, size_t len, struct raft_snapshot_meta *m)
{
    if (len < 40 || get_u32(buf) != RAFTRT__SNAPMETA_MAGIC ||
        get_u32(buf + 4) != RAFTRT__SNAPMETA_VERSION)
        return CURVE_ERR_CORRUPT;
    uint32_t clen = get_u32(buf + 32);
    if (clen > RAFT_CONFIG_ENCODED_MAX || len != 36 + (size_t)clen + 4)
        return CURVE_ERR_CORRUPT;
    if (get_u32(buf + 36 + clen) != curve_crc32c(0, buf, 36 + clen))
        return CURVE_ERR_CORRUPT;
    memset(m, 0, sizeof(*m));
    m->index = get_u64(buf + 8);
    m->term = get_u64(buf + 16);
    m->conf_index = get_u64(buf + 24);
    if (m->index == 0 || m->term == 0 || m->conf_index > m->index)
        return CURVE_ERR_CORRUPT;
    return raft_config_decode(buf + 36, clen, &m->conf);
}

/* Atomically replaces <snap_dir>/raft_snapshot_meta (tmp + fsync + rename + dir fsync). */
static int snapmeta_store(const char *snap_dir, const struct raft_snapshot_meta *m)
{
    char path[RAFTRT_PATH_MAX + 32], tmp[RAFTRT_PATH_MAX + 40];
    snprintf(path, sizeof(path), "%s/%s", snap_dir, RAFTRT_SNAP_META_FILE);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    uint8_t buf[RAFTRT__SNAPMETA_MAX];
    size_t n = raftrt__snapmeta_encode(m, buf, sizeof(buf));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        goto err;
    if (write(fd, buf, n) != (ssize_t)n || fsync(fd) != 0) {
        int e = errno ? errno : EIO;
        close(fd);
        errno = e;
        goto err;
    }
    close(fd);
    if (rename(tmp, path) != 0)
        goto err;
    return fsync_dir(snap_dir);
err:;
    int rc = -errno;
    CLOG_ERROR("raftrt: cannot store %s: %s", path, strerror(errno));
    return rc;
}

/* Loads the snapshot meta; -ENOENT when there is none. */
static int snapmeta_load(const char *snap_dir, struct raft_snapshot_meta *m)
{
    char path[RAFTRT_PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/%s", snap_dir, RAFTRT_SNAP_META_FILE);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    uint8_t buf[RAFTRT__SNAPMETA_MAX + 1];
    ssize_t n = read(fd, buf, sizeof(buf));
    int e = errno;
    close(fd);
    if (n < 0)
        return -e;
    int rc = raftrt__snapmeta_decode(buf, (size_t)n, m);
    if (rc != 0)
        CLOG_ERROR("raftrt: %s is corrupt (%zd bytes)", path, n);
    return rc;
}

/* ============================================================================================
 * struct raft_io: time, randomness, term/vote, log
 * ========================================================================================== */

/* The real monotonic clock rather than the loop's cached time: a cached (older) "now" would
 * make the leader lease look valid for up to one loop iteration too long. */
static uint64_t io_now_ms(struct raft_io *io)
{
    return curve_now_mono_ms();
}

static uint64_t io_random(struct raft_io *io)
{
    raftrt_group *g = io->data;
    uint64_t z = (g->rng += 0x9e3779b97f4a7c15ull); /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

struct meta_job {
    raftrt_group *g;
    struct meta_req req;
    unsigned count; /* queued requests this store completes */
};

static int meta_work(void *arg)
{
    struct meta_job *j = arg;
    rmeta_state st = {.term = j->req.term, .voted_for = j->req.vote};
    return rmeta_store(j->g->meta_dir, &st);
}

static int meta_submit(raftrt_group *g);

/* Completes every queued request with `status` (loop callback only, never inside a core call). */
static void meta_fail_all(raftrt_group *g, int status)
{
    CLOG_ERROR("raftrt %" PRIu64 ": cannot queue a term/vote store", g->id);
    while (g->meta_n > 0) {
        struct meta_req q = g->metaq[g->meta_head];
        g->meta_head = (g->meta_head + 1) % RAFTRT_META_QUEUE_MAX;
        g->meta_n--;
        if (g->r)
            raft_io_meta_done(g->r, q.term, q.vote, status);
    }
}

static void meta_done(void *arg, int result)
{
    struct meta_job *j = arg;
    raftrt_group *g = j->g;
    enter(g);
    g->meta_inflight = false;
    for (unsigned i = 0; i < j->count; i++) {
        struct meta_req q = g->metaq[g->meta_head];
        g->meta_head = (g->meta_head + 1) % RAFTRT_META_QUEUE_MAX;
        g->meta_n--;
        if (g->r)
            raft_io_meta_done(g->r, q.term, q.vote, result);
    }
    free(j);
    if (g->r && g->meta_n > 0) {
        int rc = meta_submit(g);
        if (rc != 0)
            meta_fail_all(g, rc);
    }
    group_unref(g);
}

/* Stores the newest queued (term, vote) on a worker; its completion covers every request
 * queued now. Returns 0 or -ENOMEM / -EAGAIN / -ESHUTDOWN (nothing submitted). */
static int meta_submit(raftrt_group *g)
{
    CURVE_ASSERT(!g->meta_inflight && g->meta_n > 0);
    struct meta_job *j = malloc(sizeof(*j));
    if (j == NULL)
        return -ENOMEM;
    j->g = g;
    j->count = g->meta_n;
    j->req = g->metaq[(g->meta_head + g->meta_n - 1) % RAFTRT_META_QUEUE_MAX];
    group_ref(g);
    int rc = curve_workpool_submit(g->h->wp, g->loop, meta_work, meta_done, j);
    if (rc != 0) {
        group_unref(g);
        free(j);
        return rc;
    }
    g->meta_inflight = true;
    return 0;
}

static int io_persist_meta(struct raft_io *io, uint64_t term, uint64_t vote)
{
    raftrt_group *g = io->data;
    if (g->meta_n == RAFTRT_META_QUEUE_MAX)
        return CURVE_ERR_BUSY;
    g->metaq[(g->meta_head + g->meta_n) % RAFTRT_META_QUEUE_MAX] =
        (struct meta_req){.term = term, .vote = vote};
    g->meta_n++;
    if (!g->meta_inflight) {
        /* the completion runs later on this loop (workpool contract), never inside this call */
        int rc = meta_submit(g);
        if (rc != 0) {
            g->meta_n--; /* not queued: the core treats the error as fatal for this node */
            return rc;
        }
    }
    return 0;
}

struct append_ctx {
    curve_loop_msg msg;
    raftrt_group *g;
    uint64_t seq, t0_us;
    int status;
};

static void append_done_loop(void *arg)
{
    struct append_ctx *a = arg;
    raftrt_group *g = a->g;
    enter(g);
    if (g->m_append)
        curve_latency_record(g->m_append, now_us() - a->t0_us);
    if (g->r)
        raft_io_append_done(g->r, a->seq, a->status);
    free(a);
    group_unref(g);
}

/* On the log's IO thread: hand the completion to the group's loop (no allocation). */
static void append_done_io(void *arg, int status)
{
    struct append_ctx *a = arg;
    a->status = status;
    a->msg.fn = append_done_loop;
    a->msg.arg = a;
    if (curve_loop_post_msg(a->g->loop, &a->msg) != 0) {
        /* the loop is gone (host teardown): nobody waits for this completion any more */
        raftrt_group *g = a->g;
        free(a);
        group_unref(g);
    }
}

static int io_append(struct raft_io *io, uint64_t seq, uint64_t first_index,
                     const struct raft_entry *entries, uint32_t n)
{
    raftrt_group *g = io->data;
    if (first_index != rlog_last_index(g->log) + 1) {
        CLOG_ERROR("raftrt %" PRIu64 ": append at %" PRIu64 " but the log ends at %" PRIu64, g->id,
                   first_index, rlog_last_index(g->log));
        return -EIO;
    }
    rlog_entry stack[64];
    rlog_entry *ents = n <= CURVE_ARRAY_SIZE(stack) ? stack : malloc(n * sizeof(*ents));
    struct append_ctx *a = malloc(sizeof(*a));
    if (ents == NULL || a == NULL) {
        if (ents != stack)
            free(ents);
        free(a);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++)
        ents[i] = (rlog_entry){.index = first_index + i,
                               .term = entries[i].term,
                               .type = entries[i].type,
                               .data = entries[i].data,
                               .len = entries[i].len,
                               .buf = entries[i].buf}; /* referenced, not copied */
    a->g = g;
    a->seq = seq;
    a->t0_us = now_us();
    group_ref(g);
    int rc = rlog_append(g->log, ents, n, append_done_io, a);
    if (ents != stack)
        free(ents);
    if (rc != 0) {
        CLOG_ERROR("raftrt %" PRIu64 ": log append at %" PRIu64 " failed: %s", g->id, first_index,
                   curve_strerror(rc));
        free(a);
        group_unref(g);
    }
    return rc;
}

static int io_truncate(struct raft_io *io, uint64_t from_index)
{
    raftrt_group *g = io->data;
    return rlog_truncate_suffix(g->log, from_index, NULL, NULL);
}

static int io_compact(struct raft_io *io, uint64_t upto_index)
{
    raftrt_group *g = io->data;
    return rlog_compact_prefix(g->log, upto_index, NULL, NULL);
}

static int io_reset_log(struct raft_io *io, uint64_t index, uint64_t term)
{
    raftrt_group *g = io->data;
    return rlog_reset(g->log, index + 1, NULL, NULL);
}

/* ============================================================================================
 * Transport
 * ========================================================================================== */

/* The index of the calling thread's loop in the host's group (a channel slot), or the slot
 * picked by `id` when the caller is not one of the host's loops. */
static unsigned channel_slot(raftrt_host *h, uint64_t id)
{
    unsigned n = curve_loop_group_size(h->loops);
    curve_loop *cur = curve_loop_current();
    for (unsigned i = 0; cur != NULL && i < n && i < RAFTRT_PEER_CHANNELS; i++)
        if (curve_loop_group_get(h->loops, i) == cur)
            return i;
    return (unsigned)(id % (n < RAFTRT_PEER_CHANNELS ? n : RAFTRT_PEER_CHANNELS));
}

/* The channel to server `id` for the calling loop (created on first use). NULL when the
 * address is unknown. */
static rpc_channel *peer_channel(raftrt_host *h, uint64_t id)
{
    rpc_channel *ch = NULL;
    unsigned slot = channel_slot(h, id);
    pthread_mutex_lock(&h->lock);
    for (unsigned i = 0; i < h->npeers; i++) {
        struct peer *p = &h->peers[i];
        if (p->id != id)
            continue;
        if (p->ch[slot] == NULL) {
            rpc_channel_opts co = {.timeout_ms = RAFTRT_SEND_TIMEOUT_MS,
                                   .max_inflight = RAFTRT_CHANNEL_INFLIGHT,
                                   .backoff_max_ms = 500};
            int rc =
                rpc_channel_new(curve_loop_group_get(h->loops, slot), p->addr, &co, &p->ch[slot]);
            if (rc != 0) {
                CLOG_WARN("raftrt: cannot create a channel to server %" PRIu64 " at %s: %s", id,
                          p->addr, curve_strerror(rc));
                p->ch[slot] = NULL;
            }
        }
        ch = p->ch[slot];
        break;
    }
    pthread_mutex_unlock(&h->lock);
    return ch;
}

static void send_cb(rpc_result *res, void *arg)
{
    (void)res; /* one-way: the reply (or its failure) carries no information */
}

static int io_send(struct raft_io *io, const struct raft_msg *m)
{
    raftrt_group *g = io->data;
    rpc_channel *ch = peer_channel(g->h, m->to);
    if (ch == NULL) {
        atomic_fetch_add_explicit(&g->send_errors, 1, memory_order_relaxed);
        return -ENOENT;
    }
    Curve__Raft__Message pm = CURVE__RAFT__MESSAGE__INIT;
    Curve__Raft__Entry ent_stack[64], *ent_pp_stack[64];
    Curve__Raft__Entry *ents = ent_stack, **entp = ent_pp_stack;
    Curve__Raft__SnapshotMeta sm = CURVE__RAFT__SNAPSHOT_META__INIT;
    uint8_t conf[RAFT_CONFIG_ENCODED_MAX];
    curve_iobuf att;
    curve_iobuf_init(&att);
    int rc = 0;
    pm.type = m->type;
    pm.group_id = m->group_id;
    pm.from = m->from;
    pm.to = m->to;
    pm.term = m->term;
    switch (m->type) {
    case RAFT_MSG_REQUEST_VOTE:
    case RAFT_MSG_TIMEOUT_NOW:
        pm.has_last_index = pm.has_last_term = pm.has_pre_vote = pm.has_transfer = 1;
        pm.last_index = m->rv.last_index;
        pm.last_term = m->rv.last_term;
        pm.pre_vote = m->rv.pre_vote;
        pm.transfer = m->rv.transfer;
        break;
    case RAFT_MSG_REQUEST_VOTE_RESULT:
        pm.has_granted = pm.has_pre_vote = 1;
        pm.granted = m->rvr.granted;
        pm.pre_vote = m->rvr.pre_vote;
        break;
    case RAFT_MSG_APPEND_ENTRIES: {
        pm.has_prev_index = pm.has_prev_term = pm.has_commit = pm.has_seq = pm.has_ts = 1;
        pm.prev_index = m->ae.prev_index;
        pm.prev_term = m->ae.prev_term;
        pm.commit = m->ae.commit;
        pm.seq = m->ae.seq;
        pm.ts = m->ae.ts;
        if (m->ae.n > CURVE_ARRAY_SIZE(ent_stack)) {
            ents = malloc(m->ae.n * sizeof(*ents));
            entp = malloc(m->ae.n * sizeof(*entp));
            if (ents == NULL || entp == NULL) {
                rc = -ENOMEM;
                goto out;
            }
        }
        for (uint32_t i = 0; i < m->ae.n; i++) {
            curve__raft__entry__init(&ents[i]);
            ents[i].term = m->ae.entries[i].term;
            ents[i].type = m->ae.entries[i].type;
            ents[i].len = m->ae.entries[i].len;
            entp[i] = &ents[i];
        }
        pm.n_entries = m->ae.n;
        pm.entries = entp;
        /* The core's entries carry their refcounted buffer: the attachment references each
         * entry's bytes (no copy, no allocation per message beyond the slice array); entries
         * without one (not from the core) are copied. None go into protobuf. */
        for (uint32_t i = 0; i < m->ae.n && rc == 0; i++) {
            const struct raft_entry *e = &m->ae.entries[i];
            if (e->len == 0)
                continue;
            if (e->buf != NULL)
                rc = curve_iobuf_append(&att, e->buf,
                                        (size_t)((const uint8_t *)e->data - curve_buf_data(e->buf)),
                                        e->len);
            else
                rc = curve_iobuf_append_copy(&att, e->data, e->len);
        }
        if (rc != 0)
            goto out;
        break;
    }
    case RAFT_MSG_APPEND_ENTRIES_RESULT:
        pm.has_success = pm.has_last_index = pm.has_hint = pm.has_seq = pm.has_ts = 1;
        pm.success = m->aer.success;
        pm.last_index = m->aer.last_index;
        pm.hint = m->aer.hint;
        pm.seq = m->aer.seq;
        pm.ts = m->aer.ts;
        break;
    case RAFT_MSG_INSTALL_SNAPSHOT:
        pm.has_snap_kind = pm.has_file = pm.has_offset = pm.has_len = 1;
        pm.snap_kind = m->snap.kind;
        pm.file = m->snap.file;
        pm.offset = m->snap.offset;
        pm.len = m->snap.len;
        sm.index = m->snap.meta.index;
        sm.term = m->snap.meta.term;
        sm.conf_index = m->snap.meta.conf_index;
        sm.conf.len = raft_config_encode(&m->snap.meta.conf, conf);
        sm.conf.data = conf;
        pm.snap = &sm;
        if (m->snap.len > 0 && (rc = curve_iobuf_append_copy(&att, m->snap.data, m->snap.len)))
            goto out;
        break;
    case RAFT_MSG_INSTALL_SNAPSHOT_RESULT:
        pm.has_snap_kind = pm.has_status = pm.has_snap_index = pm.has_file = pm.has_offset =
            pm.has_len = 1;
        pm.snap_kind = m->snapr.kind;
        pm.status = m->snapr.status;
        pm.snap_index = m->snapr.index;
        pm.file = m->snapr.file;
        pm.offset = m->snapr.offset;
        pm.len = m->snapr.len;
        break;
    default:
        rc = -EINVAL;
        goto out;
    }
    rc = rpc_channel_call(ch, RAFTRT_SERVICE_ID, RAFTRT_METHOD_MESSAGE, &pm.base, &att, NULL,
                          RAFTRT_SEND_TIMEOUT_MS, send_cb, NULL, NULL);
out:
    curve_iobuf_reset(&att);
    if (ents != ent_stack)
        free(ents);
    if (entp != ent_pp_stack)
        free(entp);
    if (rc != 0)
        atomic_fetch_add_explicit(&g->send_errors, 1, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&g->msgs_sent, 1, memory_order_relaxed);
    return rc;
}

/* A received message on its way to the group's loop. */
struct recv_msg {
    curve_loop_msg lm;
    raftrt_group *g;
    rpc_call_ctx *ctx;
    const Curve__Raft__Message *pm;
    curve_buf *data; /* flattened attachment (NULL when empty) */
};

/* Converts and validates; entries (n slots) point into data. Returns 0 or RPC_BADREQ. */
static int msg_decode(const Curve__Raft__Message *pm, const curve_buf *data, size_t dlen,
                      struct raft_entry *ents, struct raft_msg *m)
{
    memset(m, 0, sizeof(*m));
    if (pm->type < 1 || pm->type > RAFT_MSG_TYPE_MAX)
        return CURVE_ERR_RPC_BADREQ;
    m->type = (uint8_t)pm->type;
    m->group_id = pm->group_id;
    m->from = pm->from;
    m->to = pm->to;
    m->term = pm->term;
    const uint8_t *p = data ? curve_buf_data(data) : NULL;
    switch (m->type) {
    case RAFT_MSG_REQUEST_VOTE:
    case RAFT_MSG_TIMEOUT_NOW:
        m->rv.last_index = pm->last_index;
        m->rv.last_term = pm->last_term;
        m->rv.pre_vote = pm->pre_vote;
        m->rv.transfer = pm->transfer;
        break;
    case RAFT_MSG_REQUEST_VOTE_RESULT:
        m->rvr.granted = pm->granted;
        m->rvr.pre_vote = pm->pre_vote;
        break;
    case RAFT_MSG_APPEND_ENTRIES: {
        if (pm->n_entries > RAFT_MAX_ENTRIES_PER_MSG)
            return CURVE_ERR_RPC_BADREQ;
        size_t off = 0;
        for (size_t i = 0; i < pm->n_entries; i++) {
            const Curve__Raft__Entry *e = pm->entries[i];
            if (e->len > RAFT_MAX_ENTRY_BYTES || e->len > dlen - off || e->type > 255)
                return CURVE_ERR_RPC_BADREQ;
            ents[i] = (struct raft_entry){.term = e->term,
                                          .type = (uint8_t)e->type,
                                          .len = e->len,
                                          .data = e->len ? p + off : NULL};
            off += e->len;
        }
        if (off != dlen)
            return CURVE_ERR_RPC_BADREQ;
        m->ae.prev_index = pm->prev_index;
        m->ae.prev_term = pm->prev_term;
        m->ae.commit = pm->commit;
        m->ae.seq = pm->seq;
        m->ae.ts = pm->ts;
        m->ae.n = (uint32_t)pm->n_entries;
        m->ae.entries = ents;
        break;
    }
    case RAFT_MSG_APPEND_ENTRIES_RESULT:
        m->aer.success = pm->success;
        m->aer.last_index = pm->last_index;
        m->aer.hint = pm->hint;
        m->aer.seq = pm->seq;
        m->aer.ts = pm->ts;
        break;
    case RAFT_MSG_INSTALL_SNAPSHOT:
        if (pm->snap == NULL || pm->len != dlen || pm->snap_kind > 255)
            return CURVE_ERR_RPC_BADREQ;
        m->snap.kind = (uint8_t)pm->snap_kind;
        m->snap.meta.index = pm->snap->index;
        m->snap.meta.term = pm->snap->term;
        m->snap.meta.conf_index = pm->snap->conf_index;
        if (raft_config_decode(pm->snap->conf.data, pm->snap->conf.len, &m->snap.meta.conf) != 0)
            return CURVE_ERR_RPC_BADREQ;
        m->snap.file = pm->file;
        m->snap.offset = pm->offset;
        m->snap.len = pm->len;
        m->snap.data = dlen ? p : NULL;
        break;
    case RAFT_MSG_INSTALL_SNAPSHOT_RESULT:
        if (pm->snap_kind > 255)
            return CURVE_ERR_RPC_BADREQ;
        m->snapr.kind = (uint8_t)pm->snap_kind;
        m->snapr.status = pm->status;
        m->snapr.index = pm->snap_index;
        m->snapr.file = pm->file;
        m->snapr.offset = pm->offset;
        m->snapr.len = pm->len;
        break;
    }
    return 0;
}

int raftrt__decode_wire(const uint8_t *body, size_t blen, const uint8_t *att, size_t alen)
{
    Curve__Raft__Message *pm = curve__raft__message__unpack(NULL, blen, body);
    if (pm == NULL)
        return CURVE_ERR_RPC_BADREQ;
    curve_buf *b = alen ? curve_buf_new(alen) : NULL;
    size_t ne = pm->type == RAFT_MSG_APPEND_ENTRIES ? pm->n_entries : 0;
    struct raft_entry *ents = calloc(ne ? ne : 1, sizeof(*ents));
    int rc = -ENOMEM;
    if ((alen == 0 || b != NULL) && ents != NULL) {
        if (b) {
            memcpy(curve_buf_data(b), att, alen);
            curve_buf_set_len(b, alen);
        }
        struct raft_msg m;
        rc = msg_decode(pm, b, alen, ents, &m);
        if (rc == 0 && m.type == RAFT_MSG_APPEND_ENTRIES) {
            uint64_t sum = 0; /* touch every entry: the fuzzer checks the bounds */
            for (uint32_t i = 0; i < m.ae.n; i++)
                for (uint32_t k = 0; k < m.ae.entries[i].len; k++)
                    sum += ((const uint8_t *)m.ae.entries[i].data)[k];
            (void)sum;
        }
    }
    free(ents);
    curve_buf_unref(b);
    curve__raft__message__free_unpacked(pm, NULL);
    return rc;
}

static void mem_account(raftrt_group *g);

static void recv_on_loop(void *arg)
{
    struct recv_msg *rm = arg;
    raftrt_group *g = rm->g;
    enter(g);
    if (g->r) {
        size_t dlen = rm->data ? curve_buf_len(rm->data) : 0;
        size_t ne = rm->pm->type == RAFT_MSG_APPEND_ENTRIES ? rm->pm->n_entries : 0;
        struct raft_entry stack[64];
        struct raft_entry *ents =
            ne <= CURVE_ARRAY_SIZE(stack) ? stack : malloc(ne * sizeof(*ents));
        struct raft_msg m;
        int rc = ents ? msg_decode(rm->pm, rm->data, dlen, ents, &m) : -ENOMEM;
        /* Entries reference the attachment instead of being copied by the core when it holds
         * little more than them (a buffer much larger than the entries — e.g. a whole read
         * buffer — would be pinned by the entries kept in memory: copy then). */
        if (rc == 0 && ne > 0 && rm->data != NULL &&
            curve_buf_cap(rm->data) <= 2 * dlen + RAFTRT_ATT_SLACK)
            m.ae.buf = rm->data;
        if (rc == 0)
            rc = raft_recv(g->r, &m);
        mem_account(g);
        if (rc != 0)
            CLOG_DEBUG("raftrt %" PRIu64 ": message type %u from %" PRIu64 " dropped: %s", g->id,
                       rm->pm->type, rm->pm->from, curve_strerror(rc));
        atomic_fetch_add_explicit(&g->msgs_recv, 1, memory_order_relaxed);
        if (ents != stack)
            free(ents);
    }
    curve_buf_unref(rm->data);
    Curve__Raft__Ack ack = CURVE__RAFT__ACK__INIT;
    (void)rpc_call_reply(rm->ctx, 0, &ack.base, NULL);
    free(rm);
    group_unref(g);
}

static raftrt_group *host_find_ref(raftrt_host *h, uint64_t gid)
{
    raftrt_group *g = NULL;
    pthread_mutex_lock(&h->lock);
    for (unsigned i = 0; i < h->ngroups; i++) {
        if (h->groups[i]->id == gid) {
            g = h->groups[i];
            group_ref(g);
            break;
        }
    }
    pthread_mutex_unlock(&h->lock);
    return g;
}

static void raft_msg_handler(rpc_call_ctx *ctx, const ProtobufCMessage *req, curve_iobuf *attach,
                             void *svc_arg)
{
    raftrt_host *h = svc_arg;
    const Curve__Raft__Message *pm = (const Curve__Raft__Message *)req;
    Curve__Raft__Ack ack = CURVE__RAFT__ACK__INIT;
    raftrt_group *g = host_find_ref(h, pm->group_id);
    if (g == NULL) { /* unknown (not yet created or removed) group: drop */
        (void)rpc_call_reply(ctx, 0, &ack.base, NULL);
        return;
    }
    struct recv_msg *rm = calloc(1, sizeof(*rm));
    if (rm == NULL)
        goto drop;
    if (attach->len > 0 && (rm->data = curve_iobuf_flatten(attach)) == NULL)
        goto drop;
    rm->g = g;
    rm->ctx = ctx;
    rm->pm = pm;
    rm->lm.fn = recv_on_loop;
    rm->lm.arg = rm;
    if (curve_loop_is_current(g->loop)) {
        recv_on_loop(rm);
        return;
    }
    if (curve_loop_post_msg(g->loop, &rm->lm) == 0)
        return;
drop:
    if (rm)
        curve_buf_unref(rm->data);
    free(rm);
    group_unref(g);
    (void)rpc_call_reply(ctx, 0, &ack.base, NULL);
}

/* ============================================================================================
 * State machine and callbacks
 * ========================================================================================== */

static int fsm_apply(struct raft_fsm *f, uint64_t index, const struct raft_entry *e)
{
    raftrt_group *g = f->data;
    while (g->lat_n > 0 && g->lat[g->lat_head].index <= index) {
        struct lat_slot s = g->lat[g->lat_head];
        g->lat_head = (g->lat_head + 1) % RAFTRT_LAT_RING;
        g->lat_n--;
        if (s.index == index && g->m_commit)
            curve_latency_record(g->m_commit, now_us() - s.t0_us);
    }
    int rc = g->ufsm.apply ? g->ufsm.apply(g->ufsm.ctx, index, e) : 0;
    if (rc == CURVE_ERR_DISK_FAIL && g->r != NULL) {
        /* The state machine's disk failed: this node must not lead (nor vote) any more; it
         * steps down at its next tick (raft_fail). */
        CLOG_ERROR("raftrt %" PRIu64 ": apply of entry %" PRIu64 " failed on disk: stopping the "
                   "node", g->id, index);
        (void)raft_fail(g->r, rc);
    }
    atomic_store_explicit(&g->applied, index, memory_order_relaxed);
    if (g->m_applied_idx)
        curve_gauge_set(g->m_applied_idx, (int64_t)index);
    return rc;
}

static int fsm_snapshot_save(struct raft_fsm *f, const struct raft_snapshot_meta *meta)
{
    raftrt_group *g = f->data;
    g->saving_meta = *meta;
    /* the fsm owes one raftrt_snapshot_saved(g), possibly after raftrt_group_stop: this
     * reference keeps g valid until then (it is handed to the completion job) */
    group_ref(g);
    int rc = g->ufsm.snapshot_save(g->ufsm.ctx, g, meta);
    if (rc != 0)
        group_unref(g);
    return rc;
}

static int fsm_snapshot_read(struct raft_fsm *f, const char *name, uint64_t offset, void *buf,
                             uint32_t len)
{
    raftrt_group *g = f->data;
    return g->ufsm.snapshot_read(g->ufsm.ctx, name, offset, buf, len);
}

static int fsm_install_begin(struct raft_fsm *f, const struct raft_snapshot_meta *meta,
                             const struct raft_manifest *mf)
{
    raftrt_group *g = f->data;
    return g->ufsm.install_begin(g->ufsm.ctx, meta, mf);
}

static int fsm_install_write(struct raft_fsm *f, const char *name, uint64_t offset, const void *buf,
                             uint32_t len)
{
    raftrt_group *g = f->data;
    return g->ufsm.install_write(g->ufsm.ctx, name, offset, buf, len);
}

static int fsm_install_finish(struct raft_fsm *f, const struct raft_snapshot_meta *meta,
                              const struct raft_manifest *mf)
{
    raftrt_group *g = f->data;
    int rc = g->ufsm.install_finish(g->ufsm.ctx, meta, mf);
    if (rc != 0)
        return rc;
    /* blocking fsync on the loop: installs are rare and the core's contract is synchronous */
    rc = snapmeta_store(g->snap_dir, meta);
    if (rc == 0) {
        atomic_fetch_add_explicit(&g->snaps_installed, 1, memory_order_relaxed);
        atomic_store_explicit(&g->applied, meta->index, memory_order_relaxed);
        CLOG_INFO("raftrt %" PRIu64 ": installed snapshot %" PRIu64 " (term %" PRIu64 ")", g->id,
                  meta->index, meta->term);
    }
    return rc;
}

static void fsm_install_abort(struct raft_fsm *f)
{
    raftrt_group *g = f->data;
    g->ufsm.install_abort(g->ufsm.ctx);
}

struct prop {
    curve_loop_msg lm;
    raftrt_group *g;
    raftrt_propose_cb cb;
    void *arg;
    uint64_t t0_us;
    uint64_t expected_term; /* 0: any */
    bool read;
    uint32_t len;
    curve_buf *buf;     /* raftrt_propose_buf: the command's buffer (referenced), else NULL */
    const uint8_t *cmd; /* the command: data[] (copied) or the start of buf */
    uint8_t data[];
};

static void prop_free(struct prop *p)
{
    curve_buf_unref(p->buf);
    free(p);
}

static void cb_propose_done(struct raft *r, void *cookie, uint64_t index, int status)
{
    struct prop *p = cookie;
    raftrt_group *g = p->g;
    if (g->m_apply && status == 0)
        curve_latency_record(g->m_apply, now_us() - p->t0_us);
    p->cb(p->arg, status, index, raft_leader(r));
    prop_free(p);
    group_unref(g);
}

static void cb_read_done(struct raft *r, void *cookie, uint64_t index, int status)
{
    cb_propose_done(r, cookie, index, status);
}

static void cb_state_changed(struct raft *r, int role, uint64_t term, uint64_t leader)
{
    /* the core passes only `r`: the group is the one whose loop callback entered the core */
    raftrt_group *g = tl_cur;
    CURVE_ASSERT(g != NULL && g->r == r);
    atomic_store(&g->role, role);
    atomic_store(&g->term, term);
    if (g->m_role)
        curve_gauge_set(g->m_role, role);
    if (g->m_term)
        curve_gauge_set(g->m_term, (int64_t)term);
    CLOG_INFO("raftrt %" PRIu64 ": %s in term %" PRIu64 " (leader %" PRIu64 ")", g->id,
              raft_role_name(role), term, leader);
    if (g->ufsm.state_changed)
        g->ufsm.state_changed(g->ufsm.ctx, role, term, leader);
    int err = raft_failed(r);
    if (err != 0 && !g->failed_notified) {
        g->failed_notified = true;
        CLOG_ERROR("raftrt %" PRIu64 ": node failed (%s): stepped down, no votes until reopened",
                   g->id, curve_strerror(err));
        if (g->ufsm.failed)
            g->ufsm.failed(g->ufsm.ctx, err);
    }
}

/* After a call into the core that may have grown or compacted its log: updates the host's
 * total and, over the host's log_mem_budget, asks this group for a snapshot when it holds at
 * least its share (the snapshot compacts the log; a follower far behind then gets a snapshot
 * instead of old entries). Loop only. */
static void mem_account(raftrt_group *g)
{
    if (g->r == NULL)
        return;
    raftrt_host *h = g->h;
    uint64_t b = raft_log_bytes(g->r);
    if (b != g->mem_bytes) {
        if (b > g->mem_bytes)
            atomic_fetch_add(&h->log_mem, b - g->mem_bytes);
        else
            atomic_fetch_sub(&h->log_mem, g->mem_bytes - b);
        g->mem_bytes = b;
        if (b > atomic_load_explicit(&g->mem_max, memory_order_relaxed))
            atomic_store_explicit(&g->mem_max, b, memory_order_relaxed);
    }
    uint64_t budget = h->o.log_mem_budget;
    if (budget == 0 || atomic_load(&h->log_mem) <= budget)
        return;
    unsigned n = atomic_load_explicit(&h->ngroups_hint, memory_order_relaxed);
    uint64_t share = budget / (n ? n : 1);
    if (b >= share && raft_unsnapshotted_bytes(g->r) >= RAFTRT_MEM_MIN_SNAPSHOT_BYTES) {
        atomic_fetch_add_explicit(&g->mem_snaps, 1, memory_order_relaxed);
        raft_request_snapshot(g->r);
    }
}

static void prop_fail(raftrt_group *g, struct prop *p, int rc)
{
    p->cb(p->arg, rc, 0, g->r ? raft_leader(g->r) : 0);
    prop_free(p);
    group_unref(g);
}

/* Proposes every proposal gathered in this loop turn as one batch: one log append (one write +
 * fdatasync) and one AppendEntries per follower for all of them (raft_propose_batch). */
static void batch_flush(raftrt_group *g)
{
    unsigned n = g->npend;
    g->npend = 0;
    if (n == 0)
        return;
    struct raft_prop rp[RAFTRT_PROPOSE_BATCH];
    struct prop *ps[RAFTRT_PROPOSE_BATCH];
    unsigned m = 0;
    for (unsigned i = 0; i < n; i++) {
        struct prop *p = g->pend[i];
        if (g->r == NULL) {
            prop_fail(g, p, CURVE_ERR_SHUTDOWN);
            continue;
        }
        if (p->expected_term &&
            (raft_role(g->r) != RAFT_LEADER || raft_term(g->r) != p->expected_term)) {
            prop_fail(g, p, CURVE_ERR_NOT_LEADER); /* leadership changed since the check */
            continue;
        }
        rp[m] = (struct raft_prop){.data = p->cmd, .len = p->len, .buf = p->buf, .cookie = p};
        ps[m++] = p;
    }
    if (m == 0)
        return;
    uint64_t t0 = now_us();
    uint32_t k = raft_propose_batch(g->r, rp, m);
    mem_account(g);
    if (k)
        atomic_fetch_add_explicit(&g->proposals, k, memory_order_relaxed);
    for (unsigned i = 0; i < m; i++) {
        struct prop *p = ps[i];
        if (rp[i].status != 0) {
            prop_fail(g, p, rp[i].status);
            continue;
        }
        p->t0_us = t0;
        if (g->lat_n < RAFTRT_LAT_RING) {
            g->lat[(g->lat_head + g->lat_n) % RAFTRT_LAT_RING] =
                (struct lat_slot){.index = rp[i].index, .t0_us = t0};
            g->lat_n++;
        }
    }
}

/* libuv check phase: runs once per loop iteration after the IO and message callbacks. */
static void batch_check_cb(uv_check_t *c)
{
    raftrt_group *g = c->data;
    uv_check_stop(c);
    enter(g);
    batch_flush(g);
}

static void batch_closed(uv_handle_t *hd)
{
    group_unref(CURVE_CONTAINER_OF((uv_check_t *)hd, raftrt_group, batch_check));
}

/* libuv idle phase of a loop with groups to apply: while it is active the loop polls without
 * blocking, so every loop turn first handles the messages, timers and IO completions that
 * arrived, then applies for one budget (RAFTRT_APPLY_BUDGET_US) in total for all the loop's
 * groups, round robin (at least one entry of one group per turn). A budget per group would let
 * a slow disk (50 ms per apply) cost 50 ms per group per turn: with a dozen groups on a loop,
 * messages waited most of a second and leader transfers off the slow node timed out. */
static void apply_sched_cb(uv_idle_t *h)
{
    struct apply_sched *as = h->data;
    uint64_t t0 = now_us();
    do {
        raftrt_group *g = as->head;
        as->head = g->anext;
        if (as->head == NULL)
            as->tail = NULL;
        g->anext = NULL;
        g->aqueued = false;
        if (g->r != NULL) {
            enter(g);
            raft_apply(g->r); /* re-queues g (cb_apply_pending) if entries are left */
            mem_account(g);
        }
        group_unref(g);
    } while (as->head != NULL && now_us() - t0 < RAFTRT_APPLY_BUDGET_US);
    if (as->head == NULL)
        uv_idle_stop(h);
}

static void cb_apply_pending(struct raft *r)
{
    raftrt_group *g = tl_cur;
    CURVE_ASSERT(g != NULL && g->r == r);
    struct apply_sched *as = g->asched;
    if (as == NULL || !as->open) {
        CLOG_ERROR("raftrt %" PRIu64 ": no apply scheduler on its loop", g->id);
        return; /* cannot happen: the scheduler is opened with the host */
    }
    if (g->aqueued)
        return;
    g->aqueued = true;
    group_ref(g); /* released by apply_sched_cb */
    if (as->tail)
        as->tail->anext = g;
    else
        as->head = g;
    as->tail = g;
    (void)uv_idle_start(&as->idle, apply_sched_cb);
}

static void prop_on_loop(void *arg)
{
    struct prop *p = arg;
    raftrt_group *g = p->g;
    enter(g);
    int rc;
    if (g->r == NULL) {
        rc = CURVE_ERR_SHUTDOWN;
    } else if (p->read) {
        if (raft_lease_valid(g->r)) {
            p->cb(p->arg, 0, raft_applied_index(g->r), raft_leader(g->r));
            prop_free(p);
            group_unref(g);
            return;
        }
        rc = raft_read_index(g->r, p);
    } else if (p->expected_term &&
               (raft_role(g->r) != RAFT_LEADER || raft_term(g->r) != p->expected_term)) {
        rc = CURVE_ERR_NOT_LEADER; /* leadership changed since the caller checked it */
    } else if (!g->batch_open) {
        uint64_t index = 0;
        p->t0_us = now_us();
        rc = raft_propose(g->r, p->cmd, p->len, p, &index, NULL);
        mem_account(g);
        if (rc == 0) {
            atomic_fetch_add_explicit(&g->proposals, 1, memory_order_relaxed);
            if (g->lat_n < RAFTRT_LAT_RING) {
                g->lat[(g->lat_head + g->lat_n) % RAFTRT_LAT_RING] =
                    (struct lat_slot){.index = index, .t0_us = p->t0_us};
                g->lat_n++;
            }
        }
    } else {
        /* gathered until the end of this loop turn (batch_check_cb), or a full batch */
        if (g->npend == RAFTRT_PROPOSE_BATCH)
            batch_flush(g);
        if (g->npend == 0)
            uv_check_start(&g->batch_check, batch_check_cb);
        g->pend[g->npend++] = p;
        return;
    }
    if (rc == 0)
        return; /* completes through cbs */
    prop_fail(g, p, rc);
}

static int submit_prop(raftrt_group *g, const void *cmd, curve_buf *buf, uint32_t len, bool read,
                       uint64_t expected_term, raftrt_propose_cb cb, void *arg)
{
    if (len > RAFT_MAX_ENTRY_BYTES || (buf != NULL && len > curve_buf_cap(buf)))
        return -EINVAL;
    struct prop *p = malloc(sizeof(*p) + (buf ? 0 : len));
    if (p == NULL)
        return -ENOMEM;
    p->buf = buf ? curve_buf_ref(buf) : NULL;
    p->cmd = buf ? curve_buf_data(buf) : p->data;
    p->g = g;
    p->cb = cb;
    p->arg = arg;
    p->read = read;
    p->expected_term = expected_term;
    p->len = len;
    p->t0_us = now_us();
    if (len && buf == NULL)
        memcpy(p->data, cmd, len);
    p->lm.fn = prop_on_loop;
    p->lm.arg = p;
    group_ref(g);
    if (!read && curve_loop_is_current(g->loop) && g->batch_open &&
        g->npend < RAFTRT_PROPOSE_BATCH) {
        /* Already on the group's loop (the RPC connection shares it): join this turn's batch
         * directly instead of posting to ourselves. The callback still runs later (from
         * batch_flush at the end of the turn), never inside this call. */
        if (g->npend == 0)
            uv_check_start(&g->batch_check, batch_check_cb);
        g->pend[g->npend++] = p;
        return 0;
    }
    if (curve_loop_post_msg(g->loop, &p->lm) != 0) {
        prop_free(p);
        group_unref(g);
        return CURVE_ERR_SHUTDOWN;
    }
    return 0;
}

int raftrt_propose(raftrt_group *g, const void *cmd, uint32_t len, raftrt_propose_cb cb, void *arg)
{
    return submit_prop(g, cmd, NULL, len, false, 0, cb, arg);
}

int raftrt_propose_term(raftrt_group *g, const void *cmd, uint32_t len, uint64_t expected_term,
                        raftrt_propose_cb cb, void *arg)
{
    return submit_prop(g, cmd, NULL, len, false, expected_term, cb, arg);
}

int raftrt_propose_buf(raftrt_group *g, curve_buf *b, uint32_t len, uint64_t expected_term,
                       raftrt_propose_cb cb, void *arg)
{
    if (b == NULL)
        return -EINVAL;
    return submit_prop(g, NULL, b, len, false, expected_term, cb, arg);
}

int raftrt_read(raftrt_group *g, raftrt_propose_cb cb, void *arg)
{
    return submit_prop(g, NULL, NULL, 0, true, 0, cb, arg);
}

struct group_post {
    curve_loop_msg lm;
    raftrt_group *g;
    void (*fn)(void *arg, raftrt_group *g, bool alive);
    void *arg;
};

static void group_post_run(void *arg)
{
    struct group_post *p = arg;
    raftrt_group *g = p->g;
    enter(g);
    p->fn(p->arg, g, g->r != NULL);
    free(p);
    group_unref(g);
}

int raftrt_group_post(raftrt_group *g, void (*fn)(void *arg, raftrt_group *g, bool alive),
                      void *arg)
{
    struct group_post *p = malloc(sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    *p = (struct group_post){.g = g, .fn = fn, .arg = arg};
    p->lm.fn = group_post_run;
    p->lm.arg = p;
    group_ref(g);
    if (curve_loop_post_msg(g->loop, &p->lm) != 0) {
        free(p);
        group_unref(g);
        return CURVE_ERR_SHUTDOWN;
    }
    return 0;
}

/* Snapshot saved by the fsm: persist the meta on a worker, then tell the core. */
struct snap_job {
    curve_loop_msg lm;
    raftrt_group *g;
    uint64_t index;
    int status;
    struct raft_snapshot_meta meta;
    struct raft_manifest mf;
    struct raft_snapshot_file *files;
    void *mblob;
};

static void snap_job_free(struct snap_job *j)
{
    if (j->files)
        for (uint32_t i = 0; i < j->mf.nfiles; i++)
            free((void *)j->files[i].name);
    free(j->files);
    free(j->mblob);
    free(j);
}

static int snap_work(void *arg)
{
    struct snap_job *j = arg;
    return snapmeta_store(j->g->snap_dir, &j->meta);
}

static void snap_done(void *arg, int result)
{
    struct snap_job *j = arg;
    raftrt_group *g = j->g;
    enter(g);
    if (g->r) {
        if (result == 0)
            atomic_fetch_add_explicit(&g->snaps_saved, 1, memory_order_relaxed);
        raft_snapshot_saved(g->r, j->index, result, &j->mf);
        mem_account(g); /* the log was compacted */
    }
    snap_job_free(j);
    group_unref(g);
}

static void snap_on_loop(void *arg)
{
    struct snap_job *j = arg;
    raftrt_group *g = j->g;
    enter(g);
    j->meta = g->saving_meta;
    if (g->r && j->status == 0 && j->meta.index == j->index &&
        curve_workpool_submit(g->h->wp, g->loop, snap_work, snap_done, j) == 0)
        return;
    if (g->r)
        raft_snapshot_saved(g->r, j->index, j->status ? j->status : -EIO, &j->mf);
    snap_job_free(j);
    group_unref(g);
}

void raftrt_snapshot_saved(raftrt_group *g, uint64_t index, int status,
                           const struct raft_manifest *mf)
{
    struct snap_job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        goto oom;
    j->g = g;
    j->index = index;
    j->status = status;
    if (mf) {
        j->mf.meta_len = mf->meta_len;
        j->mf.nfiles = mf->nfiles;
        if (mf->meta_len && (j->mblob = malloc(mf->meta_len)) == NULL)
            goto oom;
        if (mf->meta_len)
            memcpy(j->mblob, mf->meta, mf->meta_len);
        j->mf.meta = j->mblob;
        if (mf->nfiles && (j->files = calloc(mf->nfiles, sizeof(*j->files))) == NULL)
            goto oom;
        for (uint32_t i = 0; i < mf->nfiles; i++) {
            j->files[i].size = mf->files[i].size;
            if ((j->files[i].name = strdup(mf->files[i].name)) == NULL)
                goto oom;
        }
        j->mf.files = j->files;
    }
    j->lm.fn = snap_on_loop;
    j->lm.arg = j;
    if (curve_loop_post_msg(g->loop, &j->lm) == 0)
        return; /* the job carries the reference taken in fsm_snapshot_save */
    goto undeliverable;
oom:
    /* the core keeps "saving" set forever if nobody completes it: complete with an error */
    CLOG_ERROR("raftrt %" PRIu64 ": cannot complete snapshot %" PRIu64, g->id, index);
    if (j) {
        for (uint32_t i = 0; j->files && i < j->mf.nfiles; i++)
            free((void *)j->files[i].name);
        free(j->files);
        j->files = NULL;
        j->mf.files = NULL;
        j->status = -ENOMEM;
        j->mf.nfiles = 0;
        j->lm.fn = snap_on_loop;
        j->lm.arg = j;
        if (curve_loop_post_msg(g->loop, &j->lm) == 0)
            return;
    }
undeliverable: /* the loop is gone (host teardown): nobody waits for the completion */
    if (j)
        snap_job_free(j);
    group_unref(g);
}

/* ============================================================================================
 * Host
 * ========================================================================================== */

static void asched_open_on_loop(void *arg)
{
    struct apply_sched *as = arg;
    if (uv_idle_init(curve_loop_uv(curve_loop_current()), &as->idle) == 0) {
        as->idle.data = as;
        as->open = true;
    }
}

static void asched_close_on_loop(void *arg)
{
    struct apply_sched *as = arg;
    while (as->head != NULL) { /* groups stopped meanwhile: drop their queue references */
        raftrt_group *g = as->head;
        as->head = g->anext;
        g->anext = NULL;
        g->aqueued = false;
        group_unref(g);
    }
    as->tail = NULL;
    if (as->open) {
        as->open = false;
        uv_close((uv_handle_t *)&as->idle, NULL);
    }
}

static void nothing_on_loop(void *arg)
{
    (void)arg; /* a later loop turn: the closes of the previous turn are done */
}

/* Opens one apply scheduler per loop (on that loop). 0 or -ENOMEM / the loop's error. */
static int asched_open(raftrt_host *h)
{
    unsigned n = curve_loop_group_size(h->loops);
    h->asched = calloc(n, sizeof(*h->asched));
    if (h->asched == NULL)
        return -ENOMEM;
    h->nasched = n;
    for (unsigned i = 0; i < n; i++) {
        int rc = curve_loop_call_sync(curve_loop_group_get(h->loops, i), asched_open_on_loop,
                                      &h->asched[i]);
        if (rc == 0 && !h->asched[i].open)
            rc = -ENOMEM;
        if (rc != 0)
            return rc; /* asched_close frees what was opened */
    }
    return 0;
}

static void asched_close(raftrt_host *h)
{
    for (unsigned i = 0; i < h->nasched; i++) {
        curve_loop *l = curve_loop_group_get(h->loops, i);
        (void)curve_loop_call_sync(l, asched_close_on_loop, &h->asched[i]);
        (void)curve_loop_call_sync(l, nothing_on_loop, NULL);
    }
    free(h->asched);
    h->asched = NULL;
    h->nasched = 0;
}

static struct apply_sched *asched_of(raftrt_host *h, curve_loop *loop)
{
    for (unsigned i = 0; i < h->nasched; i++)
        if (curve_loop_group_get(h->loops, i) == loop)
            return &h->asched[i];
    return NULL;
}

int raftrt_host_new(const raftrt_host_opts *opts, raftrt_host **out)
{
    if (opts == NULL || opts->self_id == 0 || opts->listen_addr == NULL ||
        strlen(opts->listen_addr) >= RAFTRT_ADDR_MAX || opts->nloops > RAFTRT_LOOPS_MAX)
        return -EINVAL;
    raftrt_host *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return -ENOMEM;
    h->o = *opts;
    snprintf(h->listen, sizeof(h->listen), "%s", opts->listen_addr);
    h->o.listen_addr = h->listen;
    pthread_mutex_init(&h->lock, NULL);
    int rc = curve_loop_group_new("raft", opts->nloops ? opts->nloops : 2, &h->loops);
    if (rc != 0)
        goto err_after_alloc;
    rc = asched_open(h);
    if (rc != 0)
        goto err_after_asched;
    rc = curve_workpool_new("raft-work", opts->nworkers ? opts->nworkers : 2, 65536, &h->wp);
    if (rc != 0)
        goto err_after_asched;
    rc = rpc_server_new(h->loops, NULL, &h->srv);
    if (rc != 0)
        goto err_after_wp;
    h->methods[0] = (rpc_method_def){.id = RAFTRT_METHOD_MESSAGE,
                                     .name = "Message",
                                     .req_desc = &curve__raft__message__descriptor,
                                     .resp_desc = &curve__raft__ack__descriptor,
                                     .handler = raft_msg_handler};
    h->svc = (rpc_service_def){.id = RAFTRT_SERVICE_ID,
                               .name = "curve.raft",
                               .methods = h->methods,
                               .nmethods = 1,
                               .arg = h};
    rc = rpc_server_add_service(h->srv, &h->svc);
    if (rc != 0)
        goto err_after_srv;
    *out = h;
    return 0;
err_after_srv:
    rpc_server_free(h->srv);
err_after_wp:
    curve_workpool_free(h->wp);
err_after_asched:
    asched_close(h);
    curve_loop_group_free(h->loops);
err_after_alloc:
    pthread_mutex_destroy(&h->lock);
    free(h);
    return rc;
}

int raftrt_host_add_service(raftrt_host *h, const rpc_service_def *svc)
{
    return rpc_server_add_service(h->srv, svc);
}

int raftrt_host_start(raftrt_host *h)
{
    int rc = rpc_server_start(h->srv, h->listen);
    if (rc != 0)
        CLOG_ERROR("raftrt: cannot listen on %s: %s", h->listen, curve_strerror(rc));
    return rc;
}

int raftrt_host_port(const raftrt_host *h)
{
    return rpc_server_port(h->srv);
}

curve_loop *raftrt_host_loop(raftrt_host *h, uint64_t group_id)
{
    return curve_loop_group_pick(h->loops, group_id);
}

curve_workpool *raftrt_host_workpool(raftrt_host *h)
{
    return h->wp;
}

int raftrt_host_set_peer(raftrt_host *h, uint64_t id, const char *addr)
{
    if (id == 0 || addr == NULL || strlen(addr) == 0 || strlen(addr) >= RAFTRT_ADDR_MAX ||
        strchr(addr, ':') == NULL)
        return -EINVAL;
    int rc = 0;
    pthread_mutex_lock(&h->lock);
    unsigned i;
    for (i = 0; i < h->npeers && h->peers[i].id != id; i++)
        ;
    if (i == h->npeers) {
        if (h->npeers == RAFTRT_MAX_PEERS) {
            rc = -ENOSPC;
            goto out;
        }
        h->peers[h->npeers++] = (struct peer){.id = id};
    } else if (strcmp(h->peers[i].addr, addr) != 0) {
        rpc_channel **nr = realloc(h->retired, (h->nretired + RAFTRT_PEER_CHANNELS) * sizeof(*nr));
        if (nr == NULL) {
            rc = -ENOMEM;
            goto out;
        }
        h->retired = nr;
        for (unsigned k = 0; k < RAFTRT_PEER_CHANNELS; k++) {
            if (h->peers[i].ch[k])
                h->retired[h->nretired++] = h->peers[i].ch[k];
            h->peers[i].ch[k] = NULL;
        }
    }
    snprintf(h->peers[i].addr, sizeof(h->peers[i].addr), "%s", addr);
out:
    pthread_mutex_unlock(&h->lock);
    return rc;
}

int raftrt_host_peer_addr(raftrt_host *h, uint64_t id, char *buf, size_t len)
{
    int rc = -ENOENT;
    pthread_mutex_lock(&h->lock);
    for (unsigned i = 0; i < h->npeers; i++) {
        if (h->peers[i].id == id) {
            snprintf(buf, len, "%s", h->peers[i].addr);
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&h->lock);
    return rc;
}

void raftrt_host_free(raftrt_host *h)
{
    if (h == NULL)
        return;
    rpc_server_stop(h->srv, 0);
    for (;;) {
        pthread_mutex_lock(&h->lock);
        raftrt_group *g = h->ngroups ? h->groups[h->ngroups - 1] : NULL;
        pthread_mutex_unlock(&h->lock);
        if (g == NULL)
            break;
        raftrt_group_stop(g);
    }
    rpc_server_free(h->srv);
    for (unsigned i = 0; i < h->npeers; i++)
        for (unsigned k = 0; k < RAFTRT_PEER_CHANNELS; k++)
            if (h->peers[i].ch[k])
                rpc_channel_close_sync(h->peers[i].ch[k]);
    for (unsigned i = 0; i < h->nretired; i++)
        rpc_channel_close_sync(h->retired[i]);
    free(h->retired);
    free(h->groups);
    for (unsigned i = 0; i < h->ndisks; i++) /* every log closed: every group stopped above */
        rlog_disk_destroy(h->disks[i].disk);
    curve_workpool_free(h->wp);
    asched_close(h);
    curve_loop_group_free(h->loops);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* ============================================================================================
 * Groups
 * ========================================================================================== */

/* The shared log writer of `data_dir`, created on first use; NULL: a thread per group (the
 * option, too many data dirs, or a creation failure — logged; the group still opens). */
static rlog_disk *host_log_disk(raftrt_host *h, const char *data_dir)
{
    if (h->o.log_thread_per_group || strlen(data_dir) >= RAFTRT_PATH_MAX)
        return NULL;
    rlog_disk *d = NULL;
    pthread_mutex_lock(&h->lock);
    for (unsigned i = 0; i < h->ndisks && !d; i++)
        if (strcmp(h->disks[i].data_dir, data_dir) == 0)
            d = h->disks[i].disk;
    if (!d && h->ndisks < RAFTRT_MAX_LOG_DISKS) {
        rlog_disk_opts dopts;
        rlog_disk_opts_default(&dopts);
        dopts.sync_lone_inline = true; /* our callbacks only post to a loop (append_done_io) */
        int rc = rlog_disk_create(data_dir, &dopts, &d);
        if (rc == 0) {
            struct log_disk *ld = &h->disks[h->ndisks++];
            snprintf(ld->data_dir, sizeof(ld->data_dir), "%s", data_dir);
            ld->disk = d;
        } else {
            CLOG_WARN("raftrt: no shared log writer for %s (%s): a log thread per group",
                      data_dir, curve_strerror(rc));
        }
    } else if (!d) {
        CLOG_WARN("raftrt: more than %u data dirs: groups in %s get a log thread each",
                  RAFTRT_MAX_LOG_DISKS, data_dir);
    }
    pthread_mutex_unlock(&h->lock);
    return d;
}

int raftrt_host_log_disk_stats(raftrt_host *h, const char *data_dir, rlog_disk_stats *st)
{
    int rc = -ENOENT;
    pthread_mutex_lock(&h->lock);
    for (unsigned i = 0; i < h->ndisks && rc != 0; i++) {
        if (strcmp(h->disks[i].data_dir, data_dir) == 0) {
            rlog_disk_get_stats(h->disks[i].disk, st);
            rc = 0;
        }
    }
    pthread_mutex_unlock(&h->lock);
    return rc;
}

void raftrt_group_opts_default(raftrt_group_opts *o)
{
    memset(o, 0, sizeof(*o));
    raft_options_default(&o->raft);
    o->raft.apply_budget_us = RAFTRT_APPLY_BUDGET_US;
}

raftrt_group *raftrt_host_group(raftrt_host *h, uint64_t group_id)
{
    raftrt_group *g = host_find_ref(h, group_id);
    if (g)
        group_unref(g); /* the caller's own open/stop discipline keeps it alive */
    return g;
}

uint64_t raftrt_group_id(const raftrt_group *g)
{
    return g->id;
}

curve_loop *raftrt_group_loop(raftrt_group *g)
{
    return g->loop;
}

struct raft *raftrt_group_raft(raftrt_group *g)
{
    return g->r;
}

static double gauge_batch(void *ctx)
{
    raftrt_group *g = ctx;
    rlog_stats st;
    rlog_get_stats(g->log, &st);
    return st.syncs ? (double)st.entries / (double)st.syncs : 0.0;
}

static void metrics_register(raftrt_group *g)
{
    curve_metrics *reg = g->h->o.metrics;
    if (reg == NULL)
        return;
    char gid[32];
    snprintf(gid, sizeof(gid), "%" PRIu64, g->id);
    const char *labels[] = {"copyset", gid, NULL};
    int rc = 0;
    rc |= curve_metrics_latency(reg, "raft_commit_latency_seconds",
                                "Time from propose to commit (apply start) on the leader", labels,
                                NULL, 0, &g->m_commit);
    rc |= curve_metrics_latency(reg, "raft_apply_latency_seconds",
                                "Time from propose to the applied result on the leader", labels,
                                NULL, 0, &g->m_apply);
    rc |= curve_metrics_latency(reg, "raft_append_latency_seconds",
                                "Disk log append until durable (group commit)", labels, NULL, 0,
                                &g->m_append);
    rc |= curve_metrics_gauge_fn(reg, "raft_log_entries_per_fdatasync",
                                 "Average entries made durable per fdatasync", labels, gauge_batch,
                                 g, &g->m_batch);
    rc |= curve_metrics_gauge(
        reg, "raft_role", "1 follower, 2 pre-candidate, 3 candidate, 4 leader", labels, &g->m_role);
    rc |= curve_metrics_gauge(reg, "raft_term", "Current term", labels, &g->m_term);
    rc |= curve_metrics_gauge(reg, "raft_applied_index", "Last applied log index", labels,
                              &g->m_applied_idx);
    if (rc != 0)
        CLOG_WARN("raftrt %" PRIu64 ": some metrics could not be registered", g->id);
}

static void metrics_unregister(raftrt_group *g)
{
    curve_latency_unregister(g->m_commit);
    curve_latency_unregister(g->m_apply);
    curve_latency_unregister(g->m_append);
    curve_gauge_unregister(g->m_batch);
    curve_gauge_unregister(g->m_role);
    curve_gauge_unregister(g->m_term);
    curve_gauge_unregister(g->m_applied_idx);
    g->m_commit = g->m_apply = g->m_append = NULL;
    g->m_batch = g->m_role = g->m_term = g->m_applied_idx = NULL;
}

static void tick_cb(curve_timer *t, void *arg)
{
    raftrt_group *g = arg;
    enter(g);
    if (g->r) {
        raft_tick(g->r);
        mem_account(g); /* a new leader's no-op, a forced snapshot's compaction */
    }
}

static void timer_closed(curve_timer *t)
{
    group_unref(CURVE_CONTAINER_OF(t, raftrt_group, timer));
}

/* Boot state loaded from disk (entries reference rlog buffers until released). */
struct boot_state {
    struct raft_boot b;
    struct raft_snapshot_meta snap;
    rlog_entry *rents;
    struct raft_entry *ents;
    size_t n;
    struct raft_options ro;
    int rc;
    raftrt_group *g;
};

static void boot_release(struct boot_state *bs)
{
    for (size_t i = 0; i < bs->n; i++)
        rlog_entry_release(&bs->rents[i]);
    free(bs->rents);
    free(bs->ents);
}

static int boot_load(raftrt_group *g, struct boot_state *bs)
{
    rmeta_state ms = {0};
    int rc = rmeta_load(g->meta_dir, &ms);
    if (rc == -ENOENT) {
        ms.term = ms.voted_for = 0;
    } else if (rc != 0) {
        CLOG_ERROR("raftrt %" PRIu64 ": cannot load term/vote from %s: %s", g->id, g->meta_dir,
                   curve_strerror(rc));
        return rc;
    }
    bs->b.term = ms.term;
    bs->b.vote = ms.voted_for;
    rmeta_state_free(&ms);
    rc = snapmeta_load(g->snap_dir, &bs->snap);
    if (rc == 0)
        bs->b.snap = &bs->snap;
    else if (rc != -ENOENT)
        return rc;
    uint64_t first = rlog_first_index(g->log), last = rlog_last_index(g->log);
    if (last >= first) {
        size_t n = (size_t)(last - first + 1);
        bs->rents = calloc(n, sizeof(*bs->rents));
        bs->ents = calloc(n, sizeof(*bs->ents));
        if (bs->rents == NULL || bs->ents == NULL)
            return -ENOMEM;
        while (bs->n < n) {
            size_t got = 0;
            size_t want = n - bs->n < RAFTRT_BOOT_READ_BATCH ? n - bs->n : RAFTRT_BOOT_READ_BATCH;
            rc = rlog_read_range(g->log, first + bs->n, want, SIZE_MAX, bs->rents + bs->n, &got);
            if (rc != 0) {
                CLOG_ERROR("raftrt %" PRIu64 ": cannot read log entry %" PRIu64 ": %s", g->id,
                           first + bs->n, curve_strerror(rc));
                return rc;
            }
            if (got == 0 || got > want)
                return -EIO;
            for (size_t i = bs->n; i < bs->n + got; i++)
                bs->ents[i] = (struct raft_entry){.term = bs->rents[i].term,
                                                  .type = bs->rents[i].type,
                                                  .len = bs->rents[i].len,
                                                  .data = bs->rents[i].data};
            bs->n += got;
        }
        bs->b.first_index = first;
        bs->b.entries = bs->ents;
        bs->b.n = (uint32_t)n;
    }
    return 0;
}

static void start_on_loop(void *arg)
{
    struct boot_state *bs = arg;
    raftrt_group *g = bs->g;
    enter(g);
    int rc = raft_new(&bs->ro, &g->io, &g->fsm, &g->cbs, &g->r);
    if (rc != 0)
        goto out;
    rc = raft_start(g->r, &bs->b);
    if (rc != 0) {
        raft_free(g->r);
        g->r = NULL;
        goto out;
    }
    rc = curve_timer_init(g->loop, &g->timer, tick_cb, g);
    if (rc != 0) {
        raft_free(g->r);
        g->r = NULL;
        goto out;
    }
    g->timer_open = true;
    group_ref(g); /* released by timer_closed */
    if (uv_check_init(curve_loop_uv(g->loop), &g->batch_check) == 0) {
        g->batch_check.data = g;
        g->batch_open = true;
        group_ref(g); /* released by batch_closed */
    } /* else: no batching, every proposal is proposed on arrival */
    curve_timer_start(&g->timer, g->tick_ms, g->tick_ms);
out:
    bs->rc = rc;
}

int raftrt_group_open(raftrt_host *h, const raftrt_group_opts *o, raftrt_group **out)
{
    if (o == NULL || o->group_id == 0 || o->data_dir == NULL || o->fsm == NULL ||
        o->fsm->snapshot_read == NULL || o->fsm->install_begin == NULL ||
        o->fsm->install_write == NULL || o->fsm->install_finish == NULL ||
        o->fsm->install_abort == NULL)
        return -EINVAL;
    raftrt_group *existing = host_find_ref(h, o->group_id);
    if (existing) {
        group_unref(existing);
        return -EEXIST;
    }
    raftrt_group *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return -ENOMEM;
    atomic_init(&g->refs, 1);
    g->h = h;
    g->id = o->group_id;
    g->loop = raftrt_host_loop(h, o->group_id);
    g->asched = asched_of(h, g->loop);
    g->ufsm = *o->fsm;
    g->rng = curve_now_mono_ns() ^ (o->group_id * 0x9e3779b97f4a7c15ull) ^ h->o.self_id;
    char logdir[RAFTRT_PATH_MAX];
    int rc = raftrt_group_path(o->data_dir, o->group_id, NULL, g->dir, sizeof(g->dir));
    rc = rc ? rc
            : raftrt_group_path(o->data_dir, o->group_id, "meta", g->meta_dir, sizeof(g->meta_dir));
    rc = rc ? rc
            : raftrt_group_path(o->data_dir, o->group_id, "snapshot", g->snap_dir,
                                sizeof(g->snap_dir));
    rc = rc ? rc : raftrt_group_path(o->data_dir, o->group_id, "log", logdir, sizeof(logdir));
    rc = rc ? rc : mkdir_p(g->meta_dir);
    rc = rc ? rc : mkdir_p(g->snap_dir);
    if (rc != 0) {
        CLOG_ERROR("raftrt %" PRIu64 ": cannot create %s: %s", g->id, g->dir, curve_strerror(rc));
        goto err_after_alloc;
    }
    rlog_opts lo;
    rlog_opts_default(&lo);
    if (o->log_segment_bytes)
        lo.segment_bytes = o->log_segment_bytes;
    /* the core keeps the entries since the last snapshot in memory and the runtime reads the
     * log only at boot: the disk log's read cache would be a second copy */
    lo.cache_bytes = 0;
    lo.disk = host_log_disk(h, o->data_dir);
    rlog_info info;
    rc = rlog_open(logdir, &lo, &g->log, &info);
    if (rc != 0) {
        CLOG_ERROR("raftrt %" PRIu64 ": cannot open the log in %s: %s", g->id, logdir,
                   curve_strerror(rc));
        goto err_after_alloc;
    }
    g->io = (struct raft_io){.version = RAFT_IO_VERSION,
                             .data = g,
                             .now_ms = io_now_ms,
                             .random = io_random,
                             .persist_meta = io_persist_meta,
                             .append = io_append,
                             .truncate = io_truncate,
                             .compact = io_compact,
                             .reset_log = io_reset_log,
                             .send = io_send};
    g->fsm = (struct raft_fsm){.version = RAFT_FSM_VERSION,
                               .data = g,
                               .apply = fsm_apply,
                               .snapshot_save = o->fsm->snapshot_save ? fsm_snapshot_save : NULL,
                               .snapshot_read = fsm_snapshot_read,
                               .install_begin = fsm_install_begin,
                               .install_write = fsm_install_write,
                               .install_finish = fsm_install_finish,
                               .install_abort = fsm_install_abort};
    g->cbs = (struct raft_cbs){.data = g,
                               .propose_done = cb_propose_done,
                               .read_done = cb_read_done,
                               .state_changed = cb_state_changed,
                               .apply_pending = cb_apply_pending};
    struct boot_state *bs = calloc(1, sizeof(*bs));
    if (bs == NULL) {
        rc = -ENOMEM;
        goto err_after_log;
    }
    bs->g = g;
    bs->ro = o->raft;
    bs->ro.group_id = o->group_id;
    bs->ro.id = h->o.self_id;
    g->tick_ms = o->tick_ms ? o->tick_ms : bs->ro.heartbeat_ms / 2;
    if (g->tick_ms == 0)
        g->tick_ms = 1;
    rc = boot_load(g, bs);
    if (rc != 0)
        goto err_after_boot;
    bs->b.bootstrap = o->bootstrap;
    metrics_register(g);
    atomic_store(&g->role, RAFT_FOLLOWER);
    rc = curve_loop_call_sync(g->loop, start_on_loop, bs);
    if (rc == 0)
        rc = bs->rc;
    if (rc != 0) {
        CLOG_ERROR("raftrt %" PRIu64 ": cannot start: %s", g->id, curve_strerror(rc));
        goto err_after_metrics;
    }
    boot_release(bs);
    free(bs);
    pthread_mutex_lock(&h->lock);
    rc = h->ngroups < RAFTRT_MAX_GROUPS ? 0 : -ENOSPC;
    raftrt_group **ng = rc ? NULL : realloc(h->groups, (h->ngroups + 1) * sizeof(*ng));
    if (ng) {
        h->groups = ng;
        h->groups[h->ngroups++] = g;
        atomic_store(&h->ngroups_hint, h->ngroups);
    } else if (rc == 0) {
        rc = -ENOMEM;
    }
    pthread_mutex_unlock(&h->lock);
    if (rc != 0) {
        raftrt_group_stop(g);
        return rc;
    }
    CLOG_INFO("raftrt %" PRIu64 ": opened in %s (log [%" PRIu64 ", %" PRIu64 "])", g->id, g->dir,
              info.first_index, info.last_index);
    *out = g;
    return 0;
err_after_metrics:
    metrics_unregister(g);
err_after_boot:
    boot_release(bs);
    free(bs);
err_after_log:
    rlog_close(g->log);
err_after_alloc:
    group_unref(g);
    return rc;
}

static void stop_on_loop(void *arg)
{
    raftrt_group *g = arg;
    enter(g);
    if (g->r) {
        raft_free(g->r); /* pending proposals and reads complete with CURVE_ERR_SHUTDOWN */
        g->r = NULL;
        atomic_fetch_sub(&g->h->log_mem, g->mem_bytes);
        g->mem_bytes = 0;
    }
    batch_flush(g); /* gathered, not yet proposed: CURVE_ERR_SHUTDOWN */
    if (g->batch_open) {
        g->batch_open = false;
        uv_close((uv_handle_t *)&g->batch_check, batch_closed);
    }
    if (g->timer_open) {
        g->timer_open = false;
        curve_timer_close(&g->timer, timer_closed);
    }
    tl_cur = NULL;
}

void raftrt_group_stop(raftrt_group *g)
{
    if (g == NULL)
        return;
    raftrt_host *h = g->h;
    pthread_mutex_lock(&h->lock);
    for (unsigned i = 0; i < h->ngroups; i++) {
        if (h->groups[i] == g) {
            h->groups[i] = h->groups[--h->ngroups];
            atomic_store(&h->ngroups_hint, h->ngroups);
            break;
        }
    }
    pthread_mutex_unlock(&h->lock);
    (void)curve_loop_call_sync(g->loop, stop_on_loop, g);
    metrics_unregister(g);
    /* completes every queued log request; their completions find g->r == NULL */
    rlog_close(g->log);
    g->log = NULL;
    CLOG_INFO("raftrt %" PRIu64 ": stopped", g->id);
    group_unref(g);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path) == 0 ? 0 : -errno;
}

int raftrt_group_remove(raftrt_group *g)
{
    char dir[RAFTRT_PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", g->dir);
    raftrt_group_stop(g);
    int rc = nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (rc != 0) {
        rc = rc < 0 ? rc : -EIO;
        CLOG_ERROR("raftrt: cannot remove %s: %s", dir, curve_strerror(rc));
    }
    return rc;
}

int raftrt_scan_groups(const char *data_dir, int (*cb)(void *arg, uint64_t group_id), void *arg)
{
    DIR *d = opendir(data_dir);
    if (d == NULL)
        return -errno;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        char *end;
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        errno = 0;
        unsigned long long v = strtoull(de->d_name, &end, 10);
        if (errno || *end != 0 || v == 0)
            continue;
        rc = cb(arg, (uint64_t)v);
    }
    closedir(d);
    return rc;
}

struct call_args {
    raftrt_group *g;
    int op;
    uint64_t id;
    int rc;
    struct raft_status *st;
};

enum { OP_STATUS, OP_ADD_LEARNER, OP_PROMOTE, OP_REMOVE, OP_TRANSFER };

static void call_on_loop(void *arg)
{
    struct call_args *a = arg;
    raftrt_group *g = a->g;
    enter(g);
    if (g->r == NULL) {
        a->rc = CURVE_ERR_SHUTDOWN;
        if (a->st)
            memset(a->st, 0, sizeof(*a->st));
        return;
    }
    switch (a->op) {
    case OP_STATUS:
        raft_status(g->r, a->st);
        a->rc = 0;
        break;
    case OP_ADD_LEARNER:
        a->rc = raft_add_learner(g->r, a->id);
        break;
    case OP_PROMOTE:
        a->rc = raft_promote(g->r, a->id);
        break;
    case OP_REMOVE:
        a->rc = raft_remove(g->r, a->id);
        break;
    case OP_TRANSFER:
        a->rc = raft_transfer_leader(g->r, a->id);
        break;
    default:
        CURVE_UNREACHABLE();
    }
}

static int call_group(raftrt_group *g, int op, uint64_t id, struct raft_status *st)
{
    struct call_args a = {.g = g, .op = op, .id = id, .st = st};
    int rc = curve_loop_call_sync(g->loop, call_on_loop, &a);
    return rc ? rc : a.rc;
}

void raftrt_group_status(raftrt_group *g, struct raft_status *st)
{
    if (call_group(g, OP_STATUS, 0, st) != 0)
        memset(st, 0, sizeof(*st));
}

int raftrt_add_learner(raftrt_group *g, uint64_t id)
{
    return call_group(g, OP_ADD_LEARNER, id, NULL);
}

int raftrt_promote(raftrt_group *g, uint64_t id)
{
    return call_group(g, OP_PROMOTE, id, NULL);
}

int raftrt_remove_peer(raftrt_group *g, uint64_t id)
{
    return call_group(g, OP_REMOVE, id, NULL);
}

int raftrt_transfer_leader(raftrt_group *g, uint64_t target)
{
    return call_group(g, OP_TRANSFER, target, NULL);
}

void raftrt_group_get_stats(raftrt_group *g, raftrt_group_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (g->log)
        rlog_get_stats(g->log, &st->log);
    st->proposals = atomic_load_explicit(&g->proposals, memory_order_relaxed);
    st->msgs_sent = atomic_load_explicit(&g->msgs_sent, memory_order_relaxed);
    st->msgs_recv = atomic_load_explicit(&g->msgs_recv, memory_order_relaxed);
    st->send_errors = atomic_load_explicit(&g->send_errors, memory_order_relaxed);
    st->snapshots_saved = atomic_load_explicit(&g->snaps_saved, memory_order_relaxed);
    st->snapshots_installed = atomic_load_explicit(&g->snaps_installed, memory_order_relaxed);
    /* the status first: it runs on the loop between handlers, and every handler that changes
     * the log samples mem_max before returning, so mem_max read after it covers log_bytes */
    struct raft_status rs;
    raftrt_group_status(g, &rs);
    st->log_mem_bytes = rs.log_bytes;
    st->log_mem_max = atomic_load_explicit(&g->mem_max, memory_order_relaxed);
    st->mem_snapshots = atomic_load_explicit(&g->mem_snaps, memory_order_relaxed);
}

uint64_t raftrt_host_log_mem(raftrt_host *h)
{
    return atomic_load(&h->log_mem);
}
