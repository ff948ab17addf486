/*
 * Disk log benchmark (closed loop): every appender submits one entry, waits for its durability
 * callback, and submits the next. Reported per phase: appends/s, p50/p99 latency and entries
 * per fdatasync. The baseline is a plain 4 KiB pwrite + fdatasync loop on the same disk in the
 * same run (the machine is shared; never compare with numbers from another run).
 *
 * Last line: TARGET raftlog_batching measured=<entries per fdatasync at 32> goal=8 MET|MISSED
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "raft/io/disklog.h"

#define BENCH_MAX_THREADS 256
#define BENCH_MAX_SAMPLES (1u << 20) /* latency samples kept per phase */
#define BENCH_GOAL_BATCH 8.0

static double g_seconds = 3.0;
static int g_sync_threads = -1; /* -1: rlog_disk default */
static uint32_t g_entry_bytes = 4096;

typedef struct lat {
    uint64_t *v;
    size_t n;
    pthread_mutex_t mu;
} lat;

static void lat_add(lat *l, uint64_t ns)
{
    pthread_mutex_lock(&l->mu);
    if (l->n < BENCH_MAX_SAMPLES)
        l->v[l->n++] = ns;
    pthread_mutex_unlock(&l->mu);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double lat_pct(lat *l, double p)
{
    if (l->n == 0)
        return 0;
    qsort(l->v, l->n, sizeof(uint64_t), cmp_u64);
    size_t i = (size_t)(p * (double)(l->n - 1));
    return (double)l->v[i] / 1000.0;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* ---- baseline ------------------------------------------------------------------------------ */

/* `prewritten`: the file is zero-filled and fsynced first (like the log's segments now), else
 * only fallocate()d, which on ext4 leaves unwritten extents that every fdatasync converts
 * (a journal commit). */
static void baseline(const char *dir, lat *l, double *ops_s, bool prewritten)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/baseline", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror("open baseline");
        exit(1);
    }
    if (fallocate(fd, 0, 0, 64 << 20) != 0)
        (void)ftruncate(fd, 64 << 20);
    void *buf = NULL;
    if (posix_memalign(&buf, 4096, 1 << 20) != 0)
        exit(1);
    memset(buf, 0, 1 << 20);
    for (off_t off = 0; prewritten && off < (64 << 20); off += 1 << 20) {
        if (pwrite(fd, buf, 1 << 20, off) != 1 << 20) {
            perror("baseline zero-fill");
            exit(1);
        }
    }
    if (prewritten && fsync(fd) != 0) {
        perror("baseline fsync");
        exit(1);
    }
    memset(buf, 0xab, 4096);
    uint64_t start = curve_now_mono_ns(), end = start + (uint64_t)(g_seconds * 1e9), n = 0;
    uint64_t now = start;
    while (now < end) {
        uint64_t t0 = now;
        if (pwrite(fd, buf, 4096, (off_t)((n % 16384) * 4096)) != 4096 || fdatasync(fd) != 0) {
            perror("baseline write");
            exit(1);
        }
        now = curve_now_mono_ns();
        lat_add(l, now - t0);
        n++;
    }
    *ops_s = (double)n / ((double)(now - start) / 1e9);
    free(buf);
    close(fd);
    unlink(path);
}

/* ---- log phase ----------------------------------------------------------------------------- */

typedef struct phase {
    rlog *log;
    pthread_mutex_t idx_mu; /* index assignment + rlog_append, so indexes are in order */
    uint64_t next;
    uint64_t end_ns;
    lat *l;
    uint64_t done;
    pthread_mutex_t done_mu;
} phase;

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool fired;
    int status;
} waiter;

static void bench_cb(void *arg, int status)
{
    waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->fired = true;
    w->status = status;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void *appender(void *arg)
{
    phase *p = arg;
    uint8_t *data = malloc(g_entry_bytes ? g_entry_bytes : 1);
    memset(data, 0x5a, g_entry_bytes);
    waiter w = {.fired = false};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    uint64_t n = 0;
    for (;;) {
        uint64_t t0 = curve_now_mono_ns();
        if (t0 >= p->end_ns)
            break;
        w.fired = false;
        pthread_mutex_lock(&p->idx_mu);
        rlog_entry e = {.index = p->next, .term = 1, .data = data, .len = g_entry_bytes};
        int rc = rlog_append(p->log, &e, 1, bench_cb, &w);
        if (rc == 0)
            p->next++;
        pthread_mutex_unlock(&p->idx_mu);
        if (rc != 0) {
            fprintf(stderr, "append: %d\n", rc);
            exit(1);
        }
        pthread_mutex_lock(&w.mu);
        while (!w.fired) /* the log's contract: the callback runs exactly once */
            pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        if (w.status != 0) {
            fprintf(stderr, "append completion: %d\n", w.status);
            exit(1);
        }
        lat_add(p->l, curve_now_mono_ns() - t0);
        n++;
    }
    pthread_mutex_lock(&p->done_mu);
    p->done += n;
    pthread_mutex_unlock(&p->done_mu);
    free(data);
    return NULL;
}

/* Many logs on one disk, one closed-loop appender per log: a thread per log (disk NULL) or a
 * shared disk writer. Prints appends/s, latency and fdatasyncs; returns appends/s. */
static double run_many(const char *dir, int nlogs, bool shared, lat *l)
{
    rlog_disk *disk = NULL;
    rlog_disk_opts dopts;
    rlog_disk_opts_default(&dopts);
    if (g_sync_threads >= 0)
        dopts.sync_threads = (uint32_t)g_sync_threads;
    if (shared && rlog_disk_create(dir, &dopts, &disk) != 0) {
        fprintf(stderr, "rlog_disk_create failed\n");
        exit(1);
    }
    phase *ps = calloc((size_t)nlogs, sizeof(*ps));
    pthread_t *th = calloc((size_t)nlogs, sizeof(*th));
    if (!ps || !th)
        exit(1);
    rlog_opts o;
    rlog_opts_default(&o);
    o.disk = disk;
    uint64_t start = curve_now_mono_ns();
    uint64_t end = start + (uint64_t)(g_seconds * 1e9);
    for (int i = 0; i < nlogs; i++) {
        char sub[4096];
        snprintf(sub, sizeof(sub), "%s/many-%s-%d", dir, shared ? "shared" : "own", i);
        if (rlog_open(sub, &o, &ps[i].log, NULL) != 0) {
            fprintf(stderr, "rlog_open %s failed\n", sub);
            exit(1);
        }
        ps[i].next = 1;
        ps[i].l = l;
        pthread_mutex_init(&ps[i].idx_mu, NULL);
        pthread_mutex_init(&ps[i].done_mu, NULL);
    }
    start = curve_now_mono_ns();
    end = start + (uint64_t)(g_seconds * 1e9);
    for (int i = 0; i < nlogs; i++) {
        ps[i].end_ns = end;
        pthread_create(&th[i], NULL, appender, &ps[i]);
    }
    uint64_t done = 0, syncs = 0, entries = 0;
    for (int i = 0; i < nlogs; i++)
        pthread_join(th[i], NULL);
    double secs = (double)(curve_now_mono_ns() - start) / 1e9;
    for (int i = 0; i < nlogs; i++) {
        rlog_stats st;
        rlog_get_stats(ps[i].log, &st);
        syncs += st.syncs;
        entries += st.entries;
        done += ps[i].done;
        rlog_close(ps[i].log);
    }
    double ops = (double)done / secs;
    printf("raftlog %3d logs, %-16s %9.0f appends/s  p50 %7.1f us  p99 %8.1f us  "
           "%" PRIu64 " fdatasyncs (%.2f entries each)",
           nlogs, shared ? "shared writer:" : "thread per log:", ops, lat_pct(l, 0.5),
           lat_pct(l, 0.99), syncs, syncs ? (double)entries / (double)syncs : 0);
    if (disk) {
        rlog_disk_stats ds;
        rlog_disk_get_stats(disk, &ds);
        printf("  rounds=%" PRIu64 " (%.1f logs each)", ds.rounds,
               ds.rounds ? (double)ds.syncs / (double)ds.rounds : 0);
        rlog_disk_destroy(disk);
    }
    printf("\n");
    free(ps);
    free(th);
    return ops;
}

static void run_phase(const char *dir, int threads, lat *l, double *ops_s, double *per_sync)
{
    char sub[4096];
    snprintf(sub, sizeof(sub), "%s/log-%d", dir, threads);
    rlog *log = NULL;
    if (rlog_open(sub, NULL, &log, NULL) != 0) {
        fprintf(stderr, "rlog_open %s failed\n", sub);
        exit(1);
    }
    phase p = {.log = log, .next = 1, .l = l};
    pthread_mutex_init(&p.idx_mu, NULL);
    pthread_mutex_init(&p.done_mu, NULL);
    uint64_t start = curve_now_mono_ns();
    p.end_ns = start + (uint64_t)(g_seconds * 1e9);
    pthread_t th[BENCH_MAX_THREADS];
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, appender, &p);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    double secs = (double)(curve_now_mono_ns() - start) / 1e9;
    rlog_stats st;
    rlog_get_stats(log, &st);
    rlog_close(log);
    *ops_s = (double)p.done / secs;
    *per_sync = st.syncs ? (double)st.entries / (double)st.syncs : 0;
    printf("  syncs=%" PRIu64 " entries=%" PRIu64 " max_batch=%" PRIu64 " writes=%" PRIu64
           " bytes=%" PRIu64 "\n",
           st.syncs, st.entries, st.max_batch, st.writes, st.bytes);
}

int main(int argc, char **argv)
{
    const char *dir_arg = NULL;
    int nlogs = 32;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--seconds=", 10) == 0)
            g_seconds = atof(argv[i] + 10);
        else if (strncmp(argv[i], "--entry-bytes=", 14) == 0)
            g_entry_bytes = (uint32_t)strtoul(argv[i] + 14, NULL, 0);
        else if (strncmp(argv[i], "--dir=", 6) == 0)
            dir_arg = argv[i] + 6;
        else if (strncmp(argv[i], "--logs=", 7) == 0)
            nlogs = atoi(argv[i] + 7);
        else if (strncmp(argv[i], "--sync-threads=", 15) == 0)
            g_sync_threads = atoi(argv[i] + 15);
        else {
            fprintf(stderr, "usage: %s [--seconds=N] [--entry-bytes=N] [--dir=PATH] [--logs=N] "
                    "[--sync-threads=N]\n",
                    argv[0]);
            return 2;
        }
    }
    if (g_seconds <= 0 || g_seconds > 600 || g_entry_bytes > RLOG_DEFAULT_MAX_ENTRY_BYTES ||
        nlogs < 0 || nlogs > BENCH_MAX_THREADS) {
        fprintf(stderr, "bad --seconds, --entry-bytes or --logs (0..%d)\n", BENCH_MAX_THREADS);
        return 2;
    }
    char tmpl[4096];
    const char *base = dir_arg ? dir_arg : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    snprintf(tmpl, sizeof(tmpl), "%s/raftlog-bench-XXXXXX", base);
    char *dir = mkdtemp(tmpl);
    if (!dir) {
        perror("mkdtemp");
        return 1;
    }
    lat l = {.v = malloc(BENCH_MAX_SAMPLES * sizeof(uint64_t))};
    pthread_mutex_init(&l.mu, NULL);

    double base_ops, pre_ops;
    baseline(dir, &l, &base_ops, false);
    printf("baseline  4KiB pwrite+fdatasync: %9.0f ops/s  p50 %7.1f us  p99 %8.1f us  "
           "(fallocated file)\n",
           base_ops, lat_pct(&l, 0.5), lat_pct(&l, 0.99));
    l.n = 0;
    baseline(dir, &l, &pre_ops, true);
    printf("baseline  4KiB pwrite+fdatasync: %9.0f ops/s  p50 %7.1f us  p99 %8.1f us  "
           "(pre-written file)\n",
           pre_ops, lat_pct(&l, 0.5), lat_pct(&l, 0.99));
    double ops1, ps1, ops32, ps32;
    l.n = 0;
    run_phase(dir, 1, &l, &ops1, &ps1);
    printf("raftlog  1 appender  (%u B):    %9.0f appends/s  p50 %7.1f us  p99 %8.1f us  "
           "%.2f entries/fdatasync\n",
           g_entry_bytes, ops1, lat_pct(&l, 0.5), lat_pct(&l, 0.99), ps1);
    l.n = 0;
    run_phase(dir, 32, &l, &ops32, &ps32);
    printf("raftlog 32 appenders (%u B):    %9.0f appends/s  p50 %7.1f us  p99 %8.1f us  "
           "%.2f entries/fdatasync  (%.1fx baseline)\n",
           g_entry_bytes, ops32, lat_pct(&l, 0.5), lat_pct(&l, 0.99), ps32,
           base_ops > 0 ? ops32 / base_ops : 0);
    if (nlogs > 0) { /* same run, same disk: a thread per log, then one shared writer */
        l.n = 0;
        double own = run_many(dir, nlogs, false, &l);
        l.n = 0;
        double shared = run_many(dir, nlogs, true, &l);
        printf("raftlog %3d logs: shared writer / thread per log = %.2fx appends/s\n", nlogs,
               own > 0 ? shared / own : 0);
    }
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(l.v);
    printf("TARGET raftlog_batching measured=%.2f goal=%.0f %s\n", ps32, BENCH_GOAL_BATCH,
           ps32 >= BENCH_GOAL_BATCH ? "MET" : "MISSED");
    return 0;
}
