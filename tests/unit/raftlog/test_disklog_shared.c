/*
 * Shared disk writer (rlog_disk): many logs served by one IO thread.
 *
 * - the thread count stays constant as logs are added (read from /proc/self/task), while a
 *   thread per log adds one thread per log (proves the counter sees them);
 * - logs whose requests queue up while the writer is busy are written in one round and synced
 *   one fdatasync per log (a callback holds the writer deterministically, no sleeps);
 * - interleaved appends from several threads to many logs, then every entry read back;
 * - truncate / compact / reset per log interleaved across logs, checked against a per-log
 *   model, then a restart (reopen on a new writer, then with a thread per log) recovers every log;
 * - the per-disk pending bound (CURVE_ERR_BUSY), close with queued requests, a sync failure
 *   that fails only the log it hit.
 *
 * Seed: printed; RAFTLOG_SEED=<n> replays.
 */
#include <dirent.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>

#include <cmocka.h>

#include "common/assert.h"
#include "common/failpoint.h"
#include "curve/errors.h"
#include "raft/io/disklog.h"
#include "raftlog_test_util.h"

#define SH_MAX_LOGS 32u
#define SH_MAX_LEN 1500u
#define SH_MAX_INDEX 4096u /* per-log model bound */

static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static void seed_from_env(const char *what)
{
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
    const char *s = getenv("RAFTLOG_SEED");
    if (s && *s)
        seed = strtoull(s, NULL, 0);
    print_message("%s: RAFTLOG_SEED=%" PRIu64 "\n", what, seed);
    rng_state = seed ? seed : 1;
}

static uint32_t sh_len(uint64_t index, uint64_t term)
{
    return rt_len(index * 7 + term, SH_MAX_LEN);
}

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

/* Threads of this process whose name starts with `prefix` (/proc/self/task/<tid>/comm). */
static int count_named(const char *prefix)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[300], name[64] = "";
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", de->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(name, sizeof(name), f) && strncmp(name, prefix, strlen(prefix)) == 0)
            n++;
        fclose(f);
    }
    closedir(d);
    return n;
}

/* Waits (bounded) until /proc/self/task lists `n` threads: a joined thread may still be listed
 * for a moment while the kernel finishes its exit. Returns the last count seen. */
static int wait_threads(int n)
{
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int c = count_threads();
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (c == n || now.tv_sec - t0.tv_sec > 5)
            return c;
        struct timespec d = {0, 1000000};
        nanosleep(&d, NULL);
    }
}

static void small_opts(rlog_opts *o, rlog_disk *disk)
{
    rlog_opts_default(o);
    o->segment_bytes = 64u << 10;
    o->max_entry_bytes = 8u << 10;
    o->cache_bytes = 4u << 10;
    o->disk = disk;
}

/* Appends n entries of `term` at last+1 (payload derived from index and term). */
static int append_n(rlog *log, uint64_t first, size_t n, uint64_t term, rlog_cb cb, void *arg)
{
    static _Thread_local uint8_t bufs[8][SH_MAX_LEN];
    rlog_entry ents[8];
    CURVE_ASSERT(n >= 1 && n <= 8);
    for (size_t k = 0; k < n; k++) {
        uint64_t i = first + k;
        uint32_t len = sh_len(i, term);
        rt_fill(bufs[k], len, i, term);
        ents[k] = (rlog_entry){.index = i, .term = term, .type = 2, .data = bufs[k], .len = len};
    }
    return rlog_append(log, ents, n, cb, arg);
}

static void check_entry(rlog *log, uint64_t i, uint64_t term)
{
    rlog_entry e;
    int rc = rlog_read(log, i, &e);
    if (rc != 0)
        fail_msg("read %" PRIu64 ": %d", i, rc);
    uint8_t exp[SH_MAX_LEN];
    uint32_t len = sh_len(i, term);
    rt_fill(exp, len, i, term);
    if (e.term != term || e.len != len || (len && memcmp(e.data, exp, len) != 0))
        fail_msg("entry %" PRIu64 ": term %" PRIu64 " (expected %" PRIu64 "), len %u", i, e.term,
                 term, e.len);
    rlog_entry_release(&e);
}

/* ---- thread count ------------------------------------------------------------------------- */

static void open_many(char **dirs, rlog **logs, unsigned n, rlog_disk *disk, int *threads_after)
{
    for (unsigned i = 0; i < n; i++) {
        rlog_opts o;
        small_opts(&o, disk);
        assert_int_equal(rlog_open(dirs[i], &o, &logs[i], NULL), 0);
        threads_after[i] = count_threads();
    }
}

static void test_thread_count(void **state)
{
    (void)state;
    enum { N = 24 };
    char *root = rt_mkdtemp();
    assert_non_null(root);
    char *dirs[N];
    for (unsigned i = 0; i < N; i++) {
        assert_true(asprintf(&dirs[i], "%s/g%u", root, i) > 0);
    }
    rlog *logs[N];
    int after[N];
    rt_waiter w;
    rt_waiter_init(&w);

    /* Shared: one writer thread, no thread per log. */
    rlog_disk *disk = NULL;
    assert_int_equal(count_named("rlog-"), 0);
    assert_int_equal(rlog_disk_create(root, NULL, &disk), 0);
    int base = count_threads();
    /* by name: a sanitizer may start a thread of its own meanwhile */
    assert_int_equal(count_named("rlog-"), 1 + RLOG_DISK_DEFAULT_SYNC_THREADS);
    assert_true(base > 0);
    open_many(dirs, logs, N, disk, after);
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(after[i], base);
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(append_n(logs[i], 1, 4, 1, rt_cb, &w), 0);
    assert_int_equal(rt_wait(&w, N), 0);
    assert_int_equal(count_threads(), base);
    assert_int_equal(count_named("rlog-"), 1 + RLOG_DISK_DEFAULT_SYNC_THREADS);
    rlog_disk_stats ds;
    rlog_disk_get_stats(disk, &ds);
    assert_int_equal(ds.logs, N);
    assert_int_equal(ds.entries, 4 * N);
    for (unsigned i = 0; i < N; i++)
        rlog_close(logs[i]);
    rlog_disk_get_stats(disk, &ds);
    assert_int_equal(ds.logs, 0);
    assert_int_equal(ds.pending, 0);
    rlog_disk_destroy(disk);
    base = wait_threads(base - 1 - (int)RLOG_DISK_DEFAULT_SYNC_THREADS);
    assert_int_equal(count_named("rlog-"), 0);

    /* Without a disk: one thread per log (the counter does see them). */
    base = count_threads();
    open_many(dirs, logs, N, NULL, after);
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(after[i], base + (int)i + 1);
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(rlog_last_index(logs[i]), 4); /* written by the shared writer */
        check_entry(logs[i], 4, 1);
        rlog_close(logs[i]);
    }
    assert_int_equal(wait_threads(base), base);
    rt_waiter_destroy(&w);
    for (unsigned i = 0; i < N; i++)
        free(dirs[i]);
    rt_rmtree(root);
}

/* ---- one round, one fdatasync per log ----------------------------------------------------- */

typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool entered, open;
} gate;

/* A callback that holds the disk thread until the test opens the gate (bounded wait). */
static void gate_cb(void *arg, int status)
{
    gate *g = arg;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += RT_WAIT_DEADLINE_S;
    pthread_mutex_lock(&g->mu);
    g->entered = true;
    pthread_cond_broadcast(&g->cv);
    while (!g->open && pthread_cond_timedwait(&g->cv, &g->mu, &dl) == 0)
        ;
    pthread_mutex_unlock(&g->mu);
    (void)status;
}

static void gate_init(gate *g)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->entered = g->open = false;
}

static void gate_wait_entered(gate *g)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += RT_WAIT_DEADLINE_S;
    pthread_mutex_lock(&g->mu);
    while (!g->entered && pthread_cond_timedwait(&g->cv, &g->mu, &dl) == 0)
        ;
    bool ok = g->entered;
    pthread_mutex_unlock(&g->mu);
    assert_true(ok);
}

static void gate_open(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void test_one_round_many_logs(void **state)
{
    (void)state;
    enum { N = 8 };
    char *root = rt_mkdtemp();
    assert_non_null(root);
    rlog_disk *disk = NULL;
    rlog_disk_opts dopts;
    rlog_disk_opts_default(&dopts);
    dopts.sync_threads = 0; /* callbacks run on the disk thread: the gate holds the writer */
    assert_int_equal(rlog_disk_create(root, &dopts, &disk), 0);
    rlog *logs[N];
    char *dirs[N];
    for (unsigned i = 0; i < N; i++) {
        assert_true(asprintf(&dirs[i], "%s/g%u", root, i) > 0);
        rlog_opts o;
        small_opts(&o, disk);
        assert_int_equal(rlog_open(dirs[i], &o, &logs[i], NULL), 0);
    }
    gate g;
    gate_init(&g);
    rt_waiter w;
    rt_waiter_init(&w);
    /* Log 0's completion holds the writer; meanwhile every other log queues 3 requests. */
    assert_int_equal(append_n(logs[0], 1, 1, 1, gate_cb, &g), 0);
    gate_wait_entered(&g);
    rlog_disk_stats before;
    rlog_disk_get_stats(disk, &before);
    for (unsigned r = 0; r < 3; r++)
        for (unsigned i = 1; i < N; i++)
            assert_int_equal(append_n(logs[i], 1 + r * 2, 2, 1, rt_cb, &w), 0);
    rlog_disk_stats mid;
    rlog_disk_get_stats(disk, &mid);
    assert_int_equal(mid.pending, 3 * 2 * (N - 1));
    gate_open(&g);
    assert_int_equal(rt_wait(&w, 3 * (N - 1)), 0);
    assert_int_equal(w.errors, 0);
    rlog_disk_stats after;
    rlog_disk_get_stats(disk, &after);
    /* All N-1 logs in one round: one write and one fdatasync each, for 3 requests each. */
    assert_int_equal(after.rounds - before.rounds, 1);
    assert_int_equal(after.syncs - before.syncs, N - 1);
    assert_true(after.max_round_logs >= N - 1);
    assert_int_equal(after.pending, 0);
    for (unsigned i = 1; i < N; i++) {
        rlog_stats st;
        rlog_get_stats(logs[i], &st);
        assert_int_equal(st.syncs, 1);
        assert_int_equal(st.writes, 1);
        assert_int_equal(st.entries, 6);
        assert_int_equal(rlog_durable_index(logs[i]), 6);
    }
    for (unsigned i = 0; i < N; i++) {
        rlog_close(logs[i]);
        free(dirs[i]);
    }
    rlog_disk_destroy(disk);
    rt_waiter_destroy(&w);
    rt_rmtree(root);
}

/* sync_lone_inline: lone appends (one log, nothing else waiting) are synced and completed by
 * the disk thread itself — counted in inline_syncs, durable as before; without the option
 * every batch goes through a helper (inline_syncs stays 0). */
static void test_lone_inline(void **state)
{
    (void)state;
    for (int on = 0; on <= 1; on++) {
        char *root = rt_mkdtemp();
        assert_non_null(root);
        rlog_disk_opts dopts;
        rlog_disk_opts_default(&dopts);
        assert_false(dopts.sync_lone_inline);
        dopts.sync_lone_inline = on;
        rlog_disk *disk = NULL;
        assert_int_equal(rlog_disk_create(root, &dopts, &disk), 0);
        char *da;
        assert_true(asprintf(&da, "%s/a", root) > 0);
        rlog *a;
        rlog_opts o;
        small_opts(&o, disk);
        assert_int_equal(rlog_open(da, &o, &a, NULL), 0);
        rt_waiter w;
        rt_waiter_init(&w);
        for (uint64_t i = 1; i <= 10; i++) { /* one at a time: every round has one log */
            assert_int_equal(append_n(a, i, 1, 1, rt_cb, &w), 0);
            assert_int_equal(rt_wait(&w, (int)i), 0);
            assert_int_equal(rlog_durable_index(a), i);
        }
        assert_int_equal(w.errors, 0);
        rlog_disk_stats st;
        rlog_disk_get_stats(disk, &st);
        assert_int_equal(st.syncs, 10);
        assert_int_equal(st.inline_syncs, on ? 10 : 0);
        rlog_close(a);
        rlog_disk_destroy(disk);
        rt_waiter_destroy(&w);
        free(da);
        rt_rmtree(root);
    }
}

/* With sync helpers, a log whose callback blocks holds one helper only: other logs of the
 * disk keep completing meanwhile. */
static void test_helpers_pipeline(void **state)
{
    (void)state;
    char *root = rt_mkdtemp();
    assert_non_null(root);
    rlog_disk_opts dopts;
    rlog_disk_opts_default(&dopts);
    dopts.sync_threads = 2;
    rlog_disk *disk = NULL;
    int before = count_named("rlog-");
    assert_int_equal(rlog_disk_create(root, &dopts, &disk), 0);
    assert_int_equal(count_named("rlog-"), before + 3); /* the disk thread and 2 helpers */
    char *da, *db;
    assert_true(asprintf(&da, "%s/a", root) > 0);
    assert_true(asprintf(&db, "%s/b", root) > 0);
    rlog *a, *b;
    rlog_opts o;
    small_opts(&o, disk);
    assert_int_equal(rlog_open(da, &o, &a, NULL), 0);
    assert_int_equal(rlog_open(db, &o, &b, NULL), 0);
    gate g;
    gate_init(&g);
    rt_waiter w;
    rt_waiter_init(&w);
    assert_int_equal(append_n(a, 1, 1, 1, gate_cb, &g), 0);
    gate_wait_entered(&g);
    assert_int_equal(append_n(a, 2, 2, 1, rt_cb, &w), 0); /* queued behind the blocked batch */
    for (uint64_t i = 1; i <= 20; i += 4)
        assert_int_equal(append_n(b, i, 4, 1, rt_cb, &w), 0);
    assert_int_equal(rt_wait(&w, 5), 0); /* b completes while a's callback still blocks */
    assert_int_equal(rlog_durable_index(b), 20);
    assert_int_equal(rlog_durable_index(a), 1);
    gate_open(&g);
    assert_int_equal(rt_wait(&w, 6), 0);
    assert_int_equal(w.errors, 0);
    assert_int_equal(rlog_durable_index(a), 3);
    rlog_close(a);
    rlog_close(b);
    rlog_disk_destroy(disk);
    struct timespec t0, now; /* joined threads may linger in /proc for a moment */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (count_named("rlog-") != before && now.tv_sec - t0.tv_sec <= 5);
    assert_int_equal(count_named("rlog-"), before);
    rt_waiter_destroy(&w);
    free(da);
    free(db);
    rt_rmtree(root);
}

/* ---- interleaved appends from several threads --------------------------------------------- */

typedef struct mt_log {
    pthread_mutex_t mu; /* orders index assignment + rlog_append of this log */
    rlog *log;
    uint64_t next;
} mt_log;

typedef struct mt_ctx {
    mt_log *logs;
    unsigned nlogs;
    unsigned appends; /* per thread */
    uint64_t seed;
    rt_waiter *w;
    atomic_uint busy;
    atomic_uint failures;
} mt_ctx;

static void *mt_main(void *arg)
{
    mt_ctx *c = arg;
    uint64_t x = c->seed | 1;
    for (unsigned k = 0; k < c->appends; k++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        mt_log *l = &c->logs[x % c->nlogs];
        size_t n = 1 + (x >> 20) % 4;
        pthread_mutex_lock(&l->mu);
        int rc = append_n(l->log, l->next, n, 1, rt_cb, c->w);
        if (rc == 0)
            l->next += n;
        pthread_mutex_unlock(&l->mu);
        if (rc == CURVE_ERR_BUSY) {
            atomic_fetch_add(&c->busy, 1);
            k--; /* retry; bounded because completions keep arriving */
            continue;
        }
        if (rc != 0)
            atomic_fetch_add(&c->failures, 1);
    }
    return NULL;
}

static void test_interleaved_threads(void **state)
{
    (void)state;
    enum { N = 16, THREADS = 4, APPENDS = 400 };
    seed_from_env("raftlog shared threads");
    char *root = rt_mkdtemp();
    assert_non_null(root);
    rlog_disk *disk = NULL;
    assert_int_equal(rlog_disk_create(root, NULL, &disk), 0);
    mt_log logs[N];
    char *dirs[N];
    for (unsigned i = 0; i < N; i++) {
        assert_true(asprintf(&dirs[i], "%s/g%u", root, i) > 0);
        rlog_opts o;
        small_opts(&o, disk);
        pthread_mutex_init(&logs[i].mu, NULL);
        assert_int_equal(rlog_open(dirs[i], &o, &logs[i].log, NULL), 0);
        logs[i].next = 1;
    }
    rt_waiter w;
    rt_waiter_init(&w);
    mt_ctx c[THREADS];
    pthread_t t[THREADS];
    for (unsigned i = 0; i < THREADS; i++) {
        c[i] = (mt_ctx){.logs = logs, .nlogs = N, .appends = APPENDS, .seed = rnd(), .w = &w};
        assert_int_equal(pthread_create(&t[i], NULL, mt_main, &c[i]), 0);
    }
    for (unsigned i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(atomic_load(&c[i].failures), 0);
    }
    assert_int_equal(rt_wait(&w, THREADS * APPENDS), 0);
    assert_int_equal(w.errors, 0);
    uint64_t total = 0, syncs = 0;
    for (unsigned i = 0; i < N; i++) {
        rlog *log = logs[i].log;
        assert_int_equal(rlog_durable_index(log), logs[i].next - 1);
        rlog_stats st;
        rlog_get_stats(log, &st);
        total += st.entries;
        syncs += st.syncs;
        for (uint64_t k = 1; k < logs[i].next; k++)
            check_entry(log, k, 1);
    }
    rlog_disk_stats ds;
    rlog_disk_get_stats(disk, &ds);
    assert_int_equal(ds.entries, total);
    /* The logs' own counts also include the syncs before a segment roll (mid-batch). */
    assert_true(ds.syncs <= syncs && ds.syncs >= ds.rounds);
    print_message("shared threads: %" PRIu64 " entries, %" PRIu64 " fdatasyncs, %" PRIu64
                  " rounds, up to %" PRIu64 " logs per round\n",
                  total, ds.syncs, ds.rounds, ds.max_round_logs);
    /* Restart: every log recovers exactly what it acknowledged. */
    for (unsigned i = 0; i < N; i++)
        rlog_close(logs[i].log);
    rlog_disk_destroy(disk);
    assert_int_equal(rlog_disk_create(root, NULL, &disk), 0);
    for (unsigned i = 0; i < N; i++) {
        rlog_opts o;
        small_opts(&o, disk);
        rlog_info info;
        assert_int_equal(rlog_open(dirs[i], &o, &logs[i].log, &info), 0);
        assert_false(info.tail_truncated);
        assert_int_equal(info.last_index, logs[i].next - 1);
        for (uint64_t k = 1; k < logs[i].next; k++)
            check_entry(logs[i].log, k, 1);
        rlog_close(logs[i].log);
        pthread_mutex_destroy(&logs[i].mu);
        free(dirs[i]);
    }
    rlog_disk_destroy(disk);
    rt_waiter_destroy(&w);
    rt_rmtree(root);
}

/* ---- truncate / compact / reset per log, then restart ------------------------------------ */

typedef struct model {
    uint64_t first, last, term;
    uint64_t terms[SH_MAX_INDEX + 64];
} model;

static void model_check(rlog *log, const model *m)
{
    assert_int_equal(rlog_first_index(log), m->first);
    assert_int_equal(rlog_last_index(log), m->last);
    for (uint64_t i = m->first; i <= m->last; i++)
        check_entry(log, i, m->terms[i]);
}

static void test_ops_and_restart(void **state)
{
    (void)state;
    enum { N = 6, STEPS = 600 };
    seed_from_env("raftlog shared ops");
    char *root = rt_mkdtemp();
    assert_non_null(root);
    rlog_disk *disk = NULL;
    assert_int_equal(rlog_disk_create(root, NULL, &disk), 0);
    rlog *logs[N];
    char *dirs[N];
    model *m = calloc(N, sizeof(model));
    assert_non_null(m);
    for (unsigned i = 0; i < N; i++) {
        assert_true(asprintf(&dirs[i], "%s/g%u", root, i) > 0);
        rlog_opts o;
        small_opts(&o, disk);
        assert_int_equal(rlog_open(dirs[i], &o, &logs[i], NULL), 0);
        m[i] = (model){.first = 1, .last = 0, .term = 1};
    }
    rt_waiter w;
    rt_waiter_init(&w);
    unsigned issued = 0;
    for (unsigned step = 0; step < STEPS; step++) {
        unsigned i = (unsigned)(rnd() % N);
        model *mm = &m[i];
        unsigned r = (unsigned)(rnd() % 100);
        if (r < 70 && mm->last + 8 < SH_MAX_INDEX) {
            size_t n = 1 + rnd() % 8;
            int rc = append_n(logs[i], mm->last + 1, n, mm->term, rt_cb, &w);
            if (rc == CURVE_ERR_BUSY)
                continue;
            assert_int_equal(rc, 0);
            issued++;
            for (size_t k = 1; k <= n; k++)
                mm->terms[mm->last + k] = mm->term;
            mm->last += n;
        } else if (r < 82 && mm->last >= mm->first) {
            uint64_t span = mm->last - mm->first + 1;
            uint64_t from = mm->last + 1 - rnd() % (span < 40 ? span : 40);
            assert_int_equal(rlog_truncate_suffix(logs[i], from, rt_cb, &w), 0);
            issued++;
            mm->last = from - 1;
            mm->term++;
        } else if (r < 92 && mm->last >= mm->first) {
            uint64_t upto = mm->first + rnd() % (mm->last - mm->first + 1);
            assert_int_equal(rlog_compact_prefix(logs[i], upto, rt_cb, &w), 0);
            issued++;
            assert_int_equal(rt_wait(&w, issued), 0);
            uint64_t f = rlog_first_index(logs[i]);
            assert_true(f >= mm->first && f <= upto + 1);
            mm->first = f;
        } else if (r < 94 && mm->last + 40 < SH_MAX_INDEX) {
            uint64_t next = mm->last + 1 + rnd() % 30;
            assert_int_equal(rlog_reset(logs[i], next, rt_cb, &w), 0);
            issued++;
            mm->first = next;
            mm->last = next - 1;
            mm->term++;
        } else {
            mm->term++;
        }
    }
    assert_int_equal(rt_wait(&w, issued), 0);
    assert_int_equal(w.errors, 0);
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(rlog_durable_index(logs[i]), m[i].last);
        model_check(logs[i], &m[i]);
        rlog_close(logs[i]);
    }
    rlog_disk_destroy(disk);

    /* Restart on a new shared writer, then once more with a thread per log. */
    for (int pass = 0; pass < 2; pass++) {
        disk = NULL;
        if (pass == 0)
            assert_int_equal(rlog_disk_create(root, NULL, &disk), 0);
        for (unsigned i = 0; i < N; i++) {
            rlog_opts o;
            small_opts(&o, disk);
            rlog_info info;
            assert_int_equal(rlog_open(dirs[i], &o, &logs[i], &info), 0);
            assert_false(info.tail_truncated);
            assert_int_equal(info.first_index, m[i].first);
            assert_int_equal(info.last_index, m[i].last);
            model_check(logs[i], &m[i]);
        }
        /* The reopened logs accept appends. */
        for (unsigned i = 0; i < N; i++) {
            m[i].term++;
            assert_int_equal(append_n(logs[i], m[i].last + 1, 3, m[i].term, rt_cb, &w), 0);
            issued++;
            for (size_t k = 1; k <= 3; k++)
                m[i].terms[m[i].last + k] = m[i].term;
            m[i].last += 3;
        }
        assert_int_equal(rt_wait(&w, issued), 0);
        assert_int_equal(w.errors, 0);
        for (unsigned i = 0; i < N; i++) {
            model_check(logs[i], &m[i]);
            rlog_close(logs[i]);
        }
        rlog_disk_destroy(disk);
    }
    for (unsigned i = 0; i < N; i++)
        free(dirs[i]);
    free(m);
    rt_waiter_destroy(&w);
    rt_rmtree(root);
}

/* ---- bounds, close with queued requests, failure isolation -------------------------------- */

static void test_disk_bound_and_close(void **state)
{
    (void)state;
    char *root = rt_mkdtemp();
    assert_non_null(root);
    rlog_disk_opts dopts;
    rlog_disk_opts_default(&dopts);
    assert_int_equal(rlog_disk_create(root, NULL, NULL), -EINVAL);
    rlog_disk_opts bad = dopts;
    bad.max_pending_entries = 0;
    rlog_disk *disk = NULL;
    assert_int_equal(rlog_disk_create(root, &bad, &disk), -EINVAL);
    dopts.max_pending_entries = 10;
    dopts.sync_threads = 0; /* callbacks run on the disk thread: the gate holds the writer */
    assert_int_equal(rlog_disk_create(root, &dopts, &disk), 0);
    char *da, *db;
    assert_true(asprintf(&da, "%s/a", root) > 0);
    assert_true(asprintf(&db, "%s/b", root) > 0);
    rlog *a, *b;
    rlog_opts o;
    small_opts(&o, disk);
    assert_int_equal(rlog_open(da, &o, &a, NULL), 0);
    assert_int_equal(rlog_open(db, &o, &b, NULL), 0);

    gate g;
    gate_init(&g);
    rt_waiter w;
    rt_waiter_init(&w);
    assert_int_equal(append_n(a, 1, 1, 1, gate_cb, &g), 0);
    gate_wait_entered(&g); /* the writer is held; the gate's entry no longer counts as pending */
    assert_int_equal(append_n(a, 2, 6, 1, rt_cb, &w), 0);
    assert_int_equal(append_n(b, 1, 4, 1, rt_cb, &w), 0);
    /* 10 queued on the disk: one more entry on either log is refused. */
    assert_int_equal(append_n(b, 5, 1, 1, rt_cb, &w), CURVE_ERR_BUSY);
    assert_int_equal(append_n(a, 8, 1, 1, rt_cb, &w), CURVE_ERR_BUSY);
    assert_int_equal(rlog_last_index(b), 4);
    /* Close b with its request still queued: its callback runs before close returns. */
    gate_open(&g);
    rlog_close(b);
    assert_true(w.done >= 1);
    assert_int_equal(rt_wait(&w, 2), 0);
    assert_int_equal(w.errors, 0);
    assert_int_equal(append_n(a, 8, 1, 1, rt_cb, &w), 0);
    assert_int_equal(rt_wait(&w, 3), 0);

    /* A sync failure fails only the log it hit. */
    assert_int_equal(rlog_open(db, &o, &b, NULL), 0);
    assert_int_equal(rlog_last_index(b), 4);
    assert_int_equal(curve_failpoint_set("raftlog.sync", "1*return(EIO)"), 0);
    assert_int_equal(append_n(b, 5, 2, 1, rt_cb, &w), 0);
    assert_int_equal(rt_wait(&w, 4), 0);
    assert_int_equal(w.errors, 1);
    assert_int_equal(w.last_status, -EIO);
    curve_failpoint_clear_all();
    assert_int_equal(append_n(b, 7, 1, 1, rt_cb, &w), -EIO);
    assert_int_equal(append_n(a, 9, 2, 1, rt_cb, &w), 0);
    assert_int_equal(rt_wait(&w, 5), 0);
    assert_int_equal(w.errors, 1);
    assert_int_equal(rlog_durable_index(a), 10);
    rlog_close(b);
    rlog_close(a);
    /* The failed log recovers what was durable (4, or 6 if the write landed). */
    o.disk = NULL;
    rlog_info info;
    assert_int_equal(rlog_open(db, &o, &b, &info), 0);
    assert_true(info.last_index == 4 || info.last_index == 6);
    rlog_close(b);
    rlog_disk_destroy(disk);
    rt_waiter_destroy(&w);
    free(da);
    free(db);
    rt_rmtree(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thread_count),
        cmocka_unit_test(test_one_round_many_logs),
        cmocka_unit_test(test_helpers_pipeline),
        cmocka_unit_test(test_lone_inline),
        cmocka_unit_test(test_interleaved_threads),
        cmocka_unit_test(test_ops_and_restart),
        cmocka_unit_test(test_disk_bound_and_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
