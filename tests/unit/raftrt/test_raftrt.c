/* Unit tests of the Raft runtime (src/raft/rt): the snapshot-meta codec, the wire decoder, and
 * an in-process 3-host cluster over loopback TCP (election, proposals, reads, NOT_LEADER hints,
 * leader transfer, stop + recovery from disk, group removal). Every wait is bounded. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/log.h"
#include "curve/errors.h"
#include "raft.pb-c.h"
#include "raft/rt/raft_node.h"

#define N       3
#define WAIT_MS 20000u

/* RAFTRT_LOG_THREAD_PER_GROUP=1 (the raftrt_runtime_thread_per_group CTest variant) runs every
 * test with a log IO thread per group instead of the shared writer per data dir (default). */
static bool g_per_group;
static uint64_t g_mem_budget; /* raftrt_host_opts.log_mem_budget of the next cluster */

static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* ---- snapshot meta codec ---- */
static void test_snapmeta_codec(void **state)
{
    struct raft_snapshot_meta m = {.index = 77, .term = 5, .conf_index = 3};
    m.conf.n = 3;
    for (unsigned i = 0; i < 3; i++)
        m.conf.s[i] = (struct raft_server){.id = i + 1, .role = RAFT_VOTER};
    m.conf.s[2].role = RAFT_LEARNER;
    uint8_t buf[RAFTRT__SNAPMETA_MAX];
    size_t n = raftrt__snapmeta_encode(&m, buf, sizeof(buf));
    struct raft_snapshot_meta d;
    assert_int_equal(raftrt__snapmeta_decode(buf, n, &d), 0);
    assert_int_equal(d.index, 77);
    assert_int_equal(d.term, 5);
    assert_int_equal(d.conf_index, 3);
    assert_int_equal(d.conf.n, 3);
    assert_int_equal(d.conf.s[2].role, RAFT_LEARNER);
    /* every single-bit flip and every truncation is detected */
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit++) {
            buf[i] ^= (uint8_t)(1u << bit);
            assert_int_equal(raftrt__snapmeta_decode(buf, n, &d), CURVE_ERR_CORRUPT);
            buf[i] ^= (uint8_t)(1u << bit);
        }
    }
    for (size_t len = 0; len < n; len++)
        assert_int_equal(raftrt__snapmeta_decode(buf, len, &d), CURVE_ERR_CORRUPT);
}

/* ---- wire decoder ---- */
static size_t pack_ae(uint8_t *out, uint32_t len0, uint32_t len1)
{
    Curve__Raft__Message pm = CURVE__RAFT__MESSAGE__INIT;
    Curve__Raft__Entry e[2] = {CURVE__RAFT__ENTRY__INIT, CURVE__RAFT__ENTRY__INIT};
    Curve__Raft__Entry *ep[2] = {&e[0], &e[1]};
    e[0].term = e[1].term = 1;
    e[0].type = e[1].type = RAFT_ENTRY_COMMAND;
    e[0].len = len0;
    e[1].len = len1;
    pm.type = RAFT_MSG_APPEND_ENTRIES;
    pm.group_id = 1;
    pm.from = 1;
    pm.to = 2;
    pm.term = 1;
    pm.n_entries = 2;
    pm.entries = ep;
    return curve__raft__message__pack(&pm, out);
}

static void test_wire_decode(void **state)
{
    uint8_t body[256], att[64] = {0};
    size_t n = pack_ae(body, 10, 20);
    assert_int_equal(raftrt__decode_wire(body, n, att, 30), 0);
    /* attachment shorter or longer than the entries say */
    assert_int_equal(raftrt__decode_wire(body, n, att, 29), CURVE_ERR_RPC_BADREQ);
    assert_int_equal(raftrt__decode_wire(body, n, att, 31), CURVE_ERR_RPC_BADREQ);
    /* an entry length that overflows the attachment */
    n = pack_ae(body, 0xffffffffu, 1);
    assert_int_equal(raftrt__decode_wire(body, n, att, 64), CURVE_ERR_RPC_BADREQ);
    /* unknown type, garbage body */
    Curve__Raft__Message pm = CURVE__RAFT__MESSAGE__INIT;
    pm.type = 99;
    n = curve__raft__message__pack(&pm, body);
    assert_int_equal(raftrt__decode_wire(body, n, NULL, 0), CURVE_ERR_RPC_BADREQ);
    memset(body, 0xff, sizeof(body));
    assert_int_equal(raftrt__decode_wire(body, sizeof(body), NULL, 0), CURVE_ERR_RPC_BADREQ);
    /* install snapshot without its meta */
    pm.type = RAFT_MSG_INSTALL_SNAPSHOT;
    n = curve__raft__message__pack(&pm, body);
    assert_int_equal(raftrt__decode_wire(body, n, NULL, 0), CURVE_ERR_RPC_BADREQ);
}

/* ---- in-process cluster ---- */
struct counter_fsm {
    pthread_mutex_t mu; /* protects applied, sum (read by the test thread) */
    uint64_t applied, sum;
};

static int c_apply(void *ctx, uint64_t index, const struct raft_entry *e)
{
    struct counter_fsm *f = ctx;
    pthread_mutex_lock(&f->mu);
    f->applied = index;
    if (e->type == RAFT_ENTRY_COMMAND && e->len == 8) {
        uint64_t v;
        memcpy(&v, e->data, 8);
        f->sum += v;
    }
    pthread_mutex_unlock(&f->mu);
    return e->type == RAFT_ENTRY_COMMAND && e->len != 8 ? -EINVAL : 0;
}
static int c_read(void *ctx, const char *name, uint64_t off, void *buf, uint32_t len)
{
    return -ENOENT;
}
static int c_begin(void *ctx, const struct raft_snapshot_meta *m, const struct raft_manifest *f)
{
    return -ENOTSUP;
}
static int c_write(void *ctx, const char *name, uint64_t off, const void *buf, uint32_t len)
{
    return -ENOTSUP;
}
static int c_finish(void *ctx, const struct raft_snapshot_meta *m, const struct raft_manifest *f)
{
    return -ENOTSUP;
}
static void c_abort(void *ctx) {}

struct cluster {
    char dir[256];
    raftrt_host *h[N];
    raftrt_group *g[N];
    struct counter_fsm f[N];
    raftrt_fsm fsm[N];
    struct raft_config conf;
};

static void open_group(struct cluster *c, unsigned i)
{
    char d[300];
    snprintf(d, sizeof(d), "%s/n%u", c->dir, i + 1);
    raftrt_group_opts go;
    raftrt_group_opts_default(&go);
    go.group_id = 7;
    go.data_dir = d;
    go.bootstrap = &c->conf;
    go.fsm = &c->fsm[i];
    go.raft.election_timeout_ms = 300;
    go.raft.heartbeat_ms = 30;
    go.raft.snapshot_threshold = 0;
    assert_int_equal(raftrt_group_open(c->h[i], &go, &c->g[i]), 0);
    /* the same group twice on one host is refused */
    raftrt_group *dup;
    assert_int_equal(raftrt_group_open(c->h[i], &go, &dup), -EEXIST);
}

static void cluster_start(struct cluster *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->dir, sizeof(c->dir), "/tmp/curve-raftrt-test.XXXXXX");
    assert_non_null(mkdtemp(c->dir));
    c->conf.n = N;
    for (unsigned i = 0; i < N; i++) {
        raftrt_host_opts ho = {
            .self_id = i + 1, .listen_addr = "127.0.0.1:0", .nloops = 1, .nworkers = 1,
            .log_thread_per_group = g_per_group, .log_mem_budget = g_mem_budget};
        assert_int_equal(raftrt_host_new(&ho, &c->h[i]), 0);
        assert_int_equal(raftrt_host_start(c->h[i]), 0);
        c->conf.s[i] = (struct raft_server){.id = i + 1, .role = RAFT_VOTER};
        pthread_mutex_init(&c->f[i].mu, NULL);
        c->fsm[i] = (raftrt_fsm){.ctx = &c->f[i],
                                 .apply = c_apply,
                                 .snapshot_read = c_read,
                                 .install_begin = c_begin,
                                 .install_write = c_write,
                                 .install_finish = c_finish,
                                 .install_abort = c_abort};
    }
    for (unsigned i = 0; i < N; i++)
        for (unsigned j = 0; j < N; j++) {
            char a[64];
            snprintf(a, sizeof(a), "127.0.0.1:%d", raftrt_host_port(c->h[j]));
            assert_int_equal(raftrt_host_set_peer(c->h[i], j + 1, a), 0);
        }
    assert_int_equal(raftrt_host_set_peer(c->h[0], 0, "127.0.0.1:1"), -EINVAL);
    assert_int_equal(raftrt_host_set_peer(c->h[0], 9, "nocolon"), -EINVAL);
    for (unsigned i = 0; i < N; i++)
        open_group(c, i);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(p);
}

static void cluster_stop(struct cluster *c)
{
    for (unsigned i = 0; i < N; i++)
        if (c->g[i])
            raftrt_group_stop(c->g[i]);
    for (unsigned i = 0; i < N; i++)
        raftrt_host_free(c->h[i]);
    nftw(c->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Bounded poll for the group state (the runtime exposes no wait primitive for it). */
static int wait_leader(struct cluster *c, int exclude)
{
    uint64_t end = curve_now_mono_ms() + WAIT_MS;
    while (curve_now_mono_ms() < end) {
        for (int i = 0; i < N; i++) {
            if (i == exclude || c->g[i] == NULL)
                continue;
            struct raft_status st;
            raftrt_group_status(c->g[i], &st);
            if (st.role == RAFT_LEADER && st.commit == st.last_index)
                return i;
        }
        usleep(5000);
    }
    fail_msg("no leader within %u ms", WAIT_MS);
    return -1;
}

static void wait_applied(struct cluster *c, unsigned i, uint64_t index, uint64_t sum)
{
    uint64_t end = curve_now_mono_ms() + WAIT_MS;
    for (;;) {
        pthread_mutex_lock(&c->f[i].mu);
        bool ok = c->f[i].applied >= index && c->f[i].sum == sum;
        uint64_t a = c->f[i].applied, s = c->f[i].sum;
        pthread_mutex_unlock(&c->f[i].mu);
        if (ok)
            return;
        if (curve_now_mono_ms() >= end)
            fail_msg("node %u: applied %llu sum %llu, want %llu / %llu", i + 1,
                     (unsigned long long)a, (unsigned long long)s, (unsigned long long)index,
                     (unsigned long long)sum);
        usleep(2000);
    }
}

struct waiter {
    pthread_mutex_t mu; /* protects the fields below */
    pthread_cond_t cv;
    unsigned done;
    int last_status;
    uint64_t last_index, hint;
    unsigned errors;
};

static void waiter_cb(void *arg, int status, uint64_t index, uint64_t hint)
{
    struct waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->done++;
    w->last_status = status;
    w->last_index = index > w->last_index ? index : w->last_index;
    w->hint = hint;
    if (status != 0)
        w->errors++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void waiter_wait(struct waiter *w, unsigned n)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&w->mu);
    while (w->done < n)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &dl) != 0)
            break;
    unsigned got = w->done;
    pthread_mutex_unlock(&w->mu);
    assert_int_equal(got, n);
}

static void waiter_init(struct waiter *w)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
}

static void post_fn(void *arg, raftrt_group *g, bool alive)
{
    /* status: 1 when it ran on the group's loop with the group alive */
    waiter_cb(arg, alive && curve_loop_is_current(raftrt_group_loop(g)) ? 1 : -1, 0, 0);
}

static void test_cluster(void **state)
{
    struct cluster c;
    cluster_start(&c);
    int l = wait_leader(&c, -1);

    /* 100 proposals in flight at once, all applied everywhere */
    struct waiter w;
    waiter_init(&w);
    uint64_t sum = 0;
    for (uint64_t v = 1; v <= 100; v++) {
        sum += v;
        assert_int_equal(raftrt_propose(c.g[l], &v, 8, waiter_cb, &w), 0);
    }
    waiter_wait(&w, 100);
    assert_int_equal(w.errors, 0);
    uint64_t last = w.last_index;
    for (unsigned i = 0; i < N; i++)
        wait_applied(&c, i, last, sum);

    /* proposals fenced by the leader's term */
    struct raft_status lst;
    raftrt_group_status(c.g[l], &lst);
    waiter_init(&w);
    uint64_t zero = 0;
    assert_int_equal(raftrt_propose_term(c.g[l], &zero, 8, lst.term + 1, waiter_cb, &w), 0);
    waiter_wait(&w, 1);
    assert_int_equal(w.last_status, CURVE_ERR_NOT_LEADER);
    waiter_init(&w);
    assert_int_equal(raftrt_propose_term(c.g[l], &zero, 8, lst.term, waiter_cb, &w), 0);
    waiter_wait(&w, 1);
    assert_int_equal(w.last_status, 0);
    assert_ptr_equal(raftrt_host_group(c.h[l], 7), c.g[l]);
    assert_null(raftrt_host_group(c.h[l], 8));

    /* work posted to a group runs on its loop */
    waiter_init(&w);
    assert_int_equal(raftrt_group_post(c.g[l], post_fn, &w), 0);
    waiter_wait(&w, 1);
    assert_int_equal(w.last_status, 1);

    /* the fsm's apply result reaches the proposer */
    waiter_init(&w);
    assert_int_equal(raftrt_propose(c.g[l], "bad", 3, waiter_cb, &w), 0);
    waiter_wait(&w, 1);
    assert_int_equal(w.last_status, -EINVAL);

    /* a follower refuses with the leader as hint; reads: leader yes, follower NOT_LEADER */
    int f = (l + 1) % N;
    waiter_init(&w);
    uint64_t one = 1;
    assert_int_equal(raftrt_propose(c.g[f], &one, 8, waiter_cb, &w), 0);
    waiter_wait(&w, 1);
    assert_int_equal(w.last_status, CURVE_ERR_NOT_LEADER);
    assert_int_equal(w.hint, (uint64_t)l + 1);
    waiter_init(&w);
    assert_int_equal(raftrt_read(c.g[l], waiter_cb, &w), 0);
    waiter_wait(&w, 1);
    assert_int_equal(w.last_status, 0);
    waiter_init(&w);
    assert_int_equal(raftrt_read(c.g[f], waiter_cb, &w), 0);
    waiter_wait(&w, 1);
    assert_int_equal(w.last_status, CURVE_ERR_NOT_LEADER);

    /* leader transfer to f */
    assert_int_equal(raftrt_transfer_leader(c.g[l], (uint64_t)f + 1), 0);
    uint64_t end = curve_now_mono_ms() + WAIT_MS;
    struct raft_status st;
    do {
        usleep(5000);
        raftrt_group_status(c.g[f], &st);
    } while (st.role != RAFT_LEADER && curve_now_mono_ms() < end);
    assert_int_equal(st.role, RAFT_LEADER);
    l = f;

    /* a replica stops, misses entries, and recovers its log from disk on reopen */
    int down = (l + 1) % N;
    raftrt_group_stop(c.g[down]);
    c.g[down] = NULL;
    waiter_init(&w);
    for (uint64_t v = 1000; v < 1050; v++) {
        sum += v;
        assert_int_equal(raftrt_propose(c.g[l], &v, 8, waiter_cb, &w), 0);
    }
    waiter_wait(&w, 50);
    assert_int_equal(w.errors, 0);
    pthread_mutex_lock(&c.f[down].mu);
    c.f[down].applied = 0; /* the state machine restarts empty: the log replays into it */
    c.f[down].sum = 0;
    pthread_mutex_unlock(&c.f[down].mu);
    open_group(&c, (unsigned)down);
    for (unsigned i = 0; i < N; i++)
        wait_applied(&c, i, w.last_index, sum);
    raftrt_group_stats gs;
    raftrt_group_get_stats(c.g[l], &gs);
    assert_true(gs.log.entries > 0 && gs.log.syncs > 0 && gs.msgs_sent > 0);

    /* membership calls reach the core (leader only) */
    assert_int_equal(raftrt_add_learner(c.g[down], 9), CURVE_ERR_NOT_LEADER);
    assert_int_equal(raftrt_remove_peer(c.g[l], 42), -ENOENT);

    /* removal deletes the group directory */
    char gdir[400];
    snprintf(gdir, sizeof(gdir), "%s/n%d/7", c.dir, down + 1);
    struct stat sb;
    assert_int_equal(stat(gdir, &sb), 0);
    assert_int_equal(raftrt_group_remove(c.g[down]), 0);
    c.g[down] = NULL;
    assert_int_not_equal(stat(gdir, &sb), 0);
    cluster_stop(&c);
}

/* Many groups share each host's port, loops, worker pool and peer channels; every group's
 * state machine sees only its own entries. */
#define MANY_GROUPS 16
#define PER_GROUP   20

static void test_many_groups(void **state)
{
    struct cluster c;
    cluster_start(&c); /* group 7, plus MANY_GROUPS more below */
    static struct counter_fsm mf[MANY_GROUPS][N];
    raftrt_fsm mfsm[MANY_GROUPS][N];
    raftrt_group *mg[MANY_GROUPS][N];
    int threads_before = count_threads();
    assert_true(threads_before > 0);
    for (unsigned k = 0; k < MANY_GROUPS; k++) {
        for (unsigned i = 0; i < N; i++) {
            memset(&mf[k][i], 0, sizeof(mf[k][i]));
            pthread_mutex_init(&mf[k][i].mu, NULL);
            mfsm[k][i] = c.fsm[i];
            mfsm[k][i].ctx = &mf[k][i];
            char d[300];
            snprintf(d, sizeof(d), "%s/n%u", c.dir, i + 1);
            raftrt_group_opts go;
            raftrt_group_opts_default(&go);
            go.group_id = 1000 + k;
            go.data_dir = d;
            go.bootstrap = &c.conf;
            go.fsm = &mfsm[k][i];
            go.raft.election_timeout_ms = 300;
            go.raft.heartbeat_ms = 30;
            go.raft.snapshot_threshold = 0;
            assert_int_equal(raftrt_group_open(c.h[i], &go, &mg[k][i]), 0);
        }
    }
    /* Shared writer: one log thread per data dir whatever the number of groups; otherwise one
     * per group (which shows that the count sees them). */
    assert_int_equal(count_threads(), threads_before + (g_per_group ? MANY_GROUPS * N : 0));
    struct waiter w;
    waiter_init(&w);
    uint64_t end = curve_now_mono_ms() + WAIT_MS;
    for (unsigned k = 0; k < MANY_GROUPS; k++) {
        int l = -1;
        while (l < 0) {
            for (unsigned i = 0; i < N && l < 0; i++) {
                struct raft_status st;
                raftrt_group_status(mg[k][i], &st);
                if (st.role == RAFT_LEADER && st.commit == st.last_index)
                    l = (int)i;
            }
            if (l < 0) {
                assert_true(curve_now_mono_ms() < end);
                usleep(5000);
            }
        }
        for (uint64_t n = 0; n < PER_GROUP; n++) {
            uint64_t v = 1000 + k;
            assert_int_equal(raftrt_propose(mg[k][l], &v, 8, waiter_cb, &w), 0);
        }
    }
    waiter_wait(&w, MANY_GROUPS * PER_GROUP);
    assert_int_equal(w.errors, 0);
    for (unsigned k = 0; k < MANY_GROUPS; k++) {
        for (unsigned i = 0; i < N; i++) {
            uint64_t want = PER_GROUP * (1000 + k), got = 0;
            uint64_t stop = curve_now_mono_ms() + WAIT_MS;
            do {
                pthread_mutex_lock(&mf[k][i].mu);
                got = mf[k][i].sum;
                pthread_mutex_unlock(&mf[k][i].mu);
                if (got != want)
                    usleep(2000);
            } while (got != want && curve_now_mono_ms() < stop);
            assert_int_equal(got, want);
        }
    }
    /* group 7 saw none of them */
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(c.f[i].sum, 0);
    for (unsigned i = 0; i < N; i++) {
        char d[300];
        snprintf(d, sizeof(d), "%s/n%u", c.dir, i + 1);
        rlog_disk_stats ds;
        int rc = raftrt_host_log_disk_stats(c.h[i], d, &ds);
        if (g_per_group) {
            assert_int_equal(rc, -ENOENT);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(ds.logs, MANY_GROUPS + 1);
        assert_true(ds.entries >= MANY_GROUPS * PER_GROUP && ds.syncs > 0);
        print_message("host %u: shared log writer %" PRIu64 " entries, %" PRIu64
                      " fdatasyncs, %" PRIu64 " rounds, up to %" PRIu64 " groups per round\n",
                      i + 1, ds.entries, ds.syncs, ds.rounds, ds.max_round_logs);
    }
    for (unsigned k = 0; k < MANY_GROUPS; k++)
        for (unsigned i = 0; i < N; i++)
            raftrt_group_stop(mg[k][i]);
    cluster_stop(&c);
}

/* ---- memory bound of the in-memory Raft log ---- */
#define MEM_ENTRY 4096u
#define MEM_INFLIGHT 16u

static int m_apply(void *ctx, uint64_t index, const struct raft_entry *e)
{
    return 0;
}
static int m_save(void *ctx, raftrt_group *g, const struct raft_snapshot_meta *meta)
{
    struct raft_manifest mf = {0}; /* nothing to keep: the fsm has no state */
    raftrt_snapshot_saved(g, meta->index, 0, &mf);
    return 0;
}

/* Opens group `gid` on the cluster's hosts with the given snapshot settings, writes `n`
 * entries of MEM_ENTRY bytes (MEM_INFLIGHT in flight) through its leader and returns the
 * highest in-memory log size any replica had (raftrt_group_stats.log_mem_max). */
struct mem_waiter {
    struct waiter w;
    unsigned busy; /* under w.mu */
};

static void mem_cb(void *arg, int status, uint64_t index, uint64_t hint)
{
    struct mem_waiter *mw = arg;
    if (status == CURVE_ERR_BUSY) {
        pthread_mutex_lock(&mw->w.mu);
        mw->busy++;
        pthread_mutex_unlock(&mw->w.mu);
    }
    waiter_cb(&mw->w, status, index, hint);
}

static uint64_t mem_run(struct cluster *c, uint64_t gid, uint64_t thr_bytes, uint64_t trail,
                        uint64_t trail_bytes, uint64_t max_bytes, unsigned n, uint64_t *mem_snaps,
                        unsigned *busy_out)
{
    raftrt_fsm mfsm[N];
    raftrt_group *g[N];
    for (unsigned i = 0; i < N; i++) {
        mfsm[i] = c->fsm[i];
        mfsm[i].apply = m_apply;
        mfsm[i].snapshot_save = m_save;
        char d[300];
        snprintf(d, sizeof(d), "%s/n%u", c->dir, i + 1);
        raftrt_group_opts go;
        raftrt_group_opts_default(&go);
        go.group_id = gid;
        go.data_dir = d;
        go.bootstrap = &c->conf;
        go.fsm = &mfsm[i];
        go.raft.election_timeout_ms = 300;
        go.raft.heartbeat_ms = 30;
        go.raft.snapshot_threshold = 0; /* no entry-count trigger */
        go.raft.snapshot_threshold_bytes = thr_bytes;
        go.raft.snapshot_trailing = trail;
        go.raft.snapshot_trailing_bytes = trail_bytes;
        go.raft.max_log_bytes = max_bytes;
        assert_int_equal(raftrt_group_open(c->h[i], &go, &g[i]), 0);
    }
    int l = -1;
    uint64_t end = curve_now_mono_ms() + WAIT_MS;
    while (l < 0) {
        for (unsigned i = 0; i < N && l < 0; i++) {
            struct raft_status st;
            raftrt_group_status(g[i], &st);
            if (st.role == RAFT_LEADER && st.commit == st.last_index)
                l = (int)i;
        }
        if (l < 0) {
            assert_true(curve_now_mono_ms() < end);
            usleep(5000);
        }
    }
    /* rounds of MEM_INFLIGHT proposals; CURVE_ERR_BUSY (max_log_bytes back-pressure) is
     * retried in the next round, any other error fails */
    static uint8_t buf[MEM_ENTRY];
    unsigned ok = 0, busy = 0, rounds = 0;
    while (ok < n) {
        assert_true(++rounds <= 64 * n); /* bounded (a wait follows every refused round) */
        struct mem_waiter mw = {0};
        waiter_init(&mw.w);
        for (unsigned k = 0; k < MEM_INFLIGHT; k++) {
            memset(buf, (int)(ok + k), sizeof(buf));
            assert_int_equal(raftrt_propose(g[l], buf, sizeof(buf), mem_cb, &mw), 0);
        }
        waiter_wait(&mw.w, MEM_INFLIGHT);
        assert_int_equal(mw.w.errors, mw.busy);
        ok += MEM_INFLIGHT - mw.busy;
        busy += mw.busy;
        if (mw.busy == MEM_INFLIGHT) {
            /* all refused: the leader is at max_log_bytes until its snapshot compacts the
             * log; wait (bounded) for the snapshot instead of spinning */
            raftrt_group_stats st0, st;
            raftrt_group_get_stats(g[l], &st0);
            uint64_t stop = curve_now_mono_ms() + WAIT_MS;
            do {
                usleep(1000);
                raftrt_group_get_stats(g[l], &st);
            } while (st.snapshots_saved == st0.snapshots_saved &&
                     st.log_mem_bytes + MEM_ENTRY > max_bytes && curve_now_mono_ms() < stop);
        }
    }
    if (busy_out)
        *busy_out = busy;
    uint64_t mx = 0;
    *mem_snaps = 0;
    for (unsigned i = 0; i < N; i++) {
        raftrt_group_stats st;
        raftrt_group_get_stats(g[i], &st);
        print_message("group %" PRIu64 " node %u: in-memory log max %" PRIu64 " now %" PRIu64
                      " bytes, %" PRIu64 " snapshots (%" PRIu64 " for the host budget)\n",
                      gid, i + 1, st.log_mem_max, st.log_mem_bytes, st.snapshots_saved,
                      st.mem_snapshots);
        assert_true(st.log_mem_max >= st.log_mem_bytes);
        mx = st.log_mem_max > mx ? st.log_mem_max : mx;
        *mem_snaps += st.mem_snapshots;
    }
    for (unsigned i = 0; i < N; i++)
        raftrt_group_stop(g[i]);
    return mx;
}

/* The core keeps every entry since its last compaction in memory. Byte thresholds (snapshot
 * every snapshot_threshold_bytes, keep at most snapshot_trailing_bytes after it) bound one
 * group; the host's log_mem_budget bounds all groups together. 2 MiB (4 MiB) are written;
 * without the bounds the logs would hold all of it (checked: the unbounded run). */
static void test_log_memory_bound(void **state)
{
    (void)state;
    struct cluster c;
    uint64_t snaps;
    unsigned busy;

    g_mem_budget = 0;
    cluster_start(&c);
    uint64_t unbounded = mem_run(&c, 3000, 0, 1000000, 0, 0, 256, &snaps, NULL);
    assert_true(unbounded >= 256 * MEM_ENTRY); /* nothing compacts: the run can detect it */
    /* per group: snapshot every 256 KiB, keep <= 64 KiB behind it, refuse proposals beyond
     * 512 KiB in memory (the hard bound; followers hold what the leader sent them, behind
     * their own snapshots) */
    const uint64_t cap = 512u << 10;
    uint64_t per_group = mem_run(&c, 3001, 256u << 10, 16, 64u << 10, cap, 1024, &snaps, &busy);
    print_message("per-group bound: max %" PRIu64 " bytes, %u proposals refused (BUSY)\n",
                  per_group, busy);
    assert_true(per_group <= 2 * cap); /* 4 MiB written */
    cluster_stop(&c);

    g_mem_budget = 1u << 20;
    cluster_start(&c);
    /* no per-group byte trigger: only the host budget compacts (share = budget / 2 groups,
     * once RAFTRT_MEM_MIN_SNAPSHOT_BYTES were applied since the last snapshot) */
    uint64_t budgeted = mem_run(&c, 3002, 0, 16, 0, 2 * g_mem_budget, 1024, &snaps, &busy);
    print_message("host budget: max %" PRIu64 " bytes, %u proposals refused (BUSY)\n",
                  budgeted, busy);
    assert_true(snaps > 0);
    assert_true(budgeted <= 4 * g_mem_budget); /* 4 MiB written */
    assert_true(raftrt_host_log_mem(c.h[0]) <= 2 * g_mem_budget + MEM_ENTRY);
    cluster_stop(&c);
    g_mem_budget = 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *pg = getenv("RAFTRT_LOG_THREAD_PER_GROUP");
    g_per_group = pg && *pg && strcmp(pg, "0") != 0;
    if (getenv("CURVE_LOG_LEVEL") == NULL)
        curve_log_set_level(CURVE_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapmeta_codec),
        cmocka_unit_test(test_wire_decode),
        cmocka_unit_test(test_cluster),
        cmocka_unit_test(test_many_groups),
        cmocka_unit_test(test_log_memory_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
