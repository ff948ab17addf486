/*
 * raft_bench: commit latency and throughput of a 3-replica Raft group of the runtime
 * (src/raft/rt) on loopback TCP, against one 4 KiB pwrite + fdatasync on the same disk measured
 * in the same run (the machine is shared and noisy).
 *
 *   raft_bench [--seconds=N] [--entry-bytes=N] [--dir=PATH] [--groups=G]
 *              [--log-thread-per-group]
 *
 * --groups=G (G > 1) adds a phase with G groups (copysets) on the same three hosts, each with 4
 * proposals in flight at its own leader: aggregate commits/s, latency, fdatasyncs and the
 * process's thread count. --log-thread-per-group gives every group's disk log its own IO
 * thread instead of the shared writer of each host's data dir (raftrt_host_opts); bench/raft/
 * run.sh runs both in the same run.
 *
 * Three hosts (server ids 1..3) run in this process, each with its own RPC port, loop, worker
 * pool and disk log in <dir>/n<i>. The leader gets `inflight` proposals of entry-bytes at a time
 * (1 and 32): each completion (commit + apply on the leader) records its latency and submits the
 * next one. Entries per fdatasync are the disk logs' (entries made durable / fdatasync calls)
 * over the phase, averaged over the three replicas.
 *
 * Ends with one line per target:
 *   TARGET raft_p50_commit_1_inflight measured=<p50 / baseline p50> goal=2.0 MET|MISSED
 *   TARGET raft_batching_32_inflight measured=<entries per fdatasync> goal=8 MET|MISSED
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "curve/errors.h"
#include "raft/rt/raft_node.h"

#define NREPLICAS         3
#define GROUP_ID          1
#define LAT_MAX           (4u << 20) /* latencies recorded per phase */
#define LEADER_TIMEOUT_NS (20ull * 1000000000ull)
#define DRAIN_TIMEOUT_MS  30000u

static double g_seconds = 3;
static uint32_t g_entry = 4096;
static unsigned g_groups = 1;
static bool g_per_group;
#define MAX_GROUPS      256u
#define MULTI_INFLIGHT  4u /* proposals in flight per group in the multi-group phase */

/* ---- latency samples ------------------------------------------------------------------------ */
typedef struct lat {
    uint64_t *v;
    size_t n;
} lat;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_us(lat *l, double q)
{
    if (l->n == 0)
        return 0;
    qsort(l->v, l->n, sizeof(*l->v), cmp_u64);
    size_t i = (size_t)(q * (double)(l->n - 1));
    return (double)l->v[i] / 1000.0;
}

/* ---- baseline ------------------------------------------------------------------------------- */
#define BASE_FILE_BYTES (64u << 20)

/* The baseline file is written with zeros and synced first, so that the measured writes are
 * plain overwrites (no unwritten-extent conversion in the journal): the best case of one 4 KiB
 * write + fdatasync on this disk, i.e. the strictest baseline. */
static int baseline_open(const char *dir, char *path, size_t len)
{
    snprintf(path, len, "%s/baseline", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror("raft_bench: open baseline");
        exit(1);
    }
    uint8_t *z = calloc(1, 1u << 20);
    if (z == NULL)
        exit(1);
    for (uint32_t off = 0; off < BASE_FILE_BYTES; off += 1u << 20)
        if (pwrite(fd, z, 1u << 20, off) != 1 << 20) {
            perror("raft_bench: fill baseline");
            exit(1);
        }
    free(z);
    if (fsync(fd) != 0) {
        perror("raft_bench: fsync baseline");
        exit(1);
    }
    return fd;
}

static void baseline(int fd, lat *l, double seconds)
{
    void *buf = NULL;
    if (posix_memalign(&buf, 4096, 4096) != 0)
        exit(1);
    memset(buf, 0xab, 4096);
    uint64_t start = curve_now_mono_ns(), end = start + (uint64_t)(seconds * 1e9), n = 0;
    uint64_t now = start;
    while (now < end && l->n < LAT_MAX) {
        uint64_t t0 = now;
        off_t off = (off_t)((n % (BASE_FILE_BYTES / 4096)) * 4096);
        if (pwrite(fd, buf, 4096, off) != 4096 || fdatasync(fd) != 0) {
            perror("raft_bench: baseline write");
            exit(1);
        }
        now = curve_now_mono_ns();
        l->v[l->n++] = now - t0;
        n++;
    }
    free(buf);
}

/* ---- a do-nothing state machine ---------------------------------------------------------------*/
static int fsm_apply(void *ctx, uint64_t index, const struct raft_entry *e)
{
    return 0;
}
static int fsm_read(void *ctx, const char *name, uint64_t off, void *buf, uint32_t len)
{
    return -ENOENT;
}
static int fsm_begin(void *ctx, const struct raft_snapshot_meta *m, const struct raft_manifest *f)
{
    return -ENOTSUP;
}
static int fsm_write(void *ctx, const char *name, uint64_t off, const void *buf, uint32_t len)
{
    return -ENOTSUP;
}
static int fsm_finish(void *ctx, const struct raft_snapshot_meta *m, const struct raft_manifest *f)
{
    return -ENOTSUP;
}
static void fsm_abort(void *ctx) {}

/* ---- load phase ------------------------------------------------------------------------------*/
typedef struct phase {
    raftrt_group *g;
    uint8_t *payload;
    uint64_t end_ns;
    pthread_mutex_t mu; /* protects lat, outstanding, errors */
    pthread_cond_t cond;
    lat l;
    unsigned outstanding;
    uint64_t errors;
} phase;

typedef struct slot {
    phase *ph;
    uint64_t t0;
} slot;

static void propose_cb(void *arg, int status, uint64_t index, uint64_t leader);

static int submit(slot *s)
{
    s->t0 = curve_now_mono_ns();
    return raftrt_propose(s->ph->g, s->ph->payload, g_entry, propose_cb, s);
}

/* On the group's loop: record, then keep the pipeline full until the phase ends. */
static void propose_cb(void *arg, int status, uint64_t index, uint64_t leader)
{
    slot *s = arg;
    phase *ph = s->ph;
    uint64_t now = curve_now_mono_ns();
    pthread_mutex_lock(&ph->mu);
    if (status == 0 && ph->l.n < LAT_MAX)
        ph->l.v[ph->l.n++] = now - s->t0;
    if (status != 0)
        ph->errors++;
    pthread_mutex_unlock(&ph->mu);
    if (now < ph->end_ns && submit(s) == 0)
        return;
    pthread_mutex_lock(&ph->mu);
    ph->outstanding--;
    pthread_cond_signal(&ph->cond);
    pthread_mutex_unlock(&ph->mu);
}

struct result {
    double p50, p99, commits_s, batch;
    uint64_t errors;
};

static void run_phase(raftrt_group **groups, unsigned leader, unsigned inflight, uint8_t *payload,
                      struct result *res)
{
    phase ph = {.g = groups[leader], .payload = payload};
    pthread_mutex_init(&ph.mu, NULL);
    pthread_cond_init(&ph.cond, NULL);
    ph.l.v = malloc(LAT_MAX * sizeof(uint64_t));
    slot *slots = calloc(inflight, sizeof(*slots));
    if (ph.l.v == NULL || slots == NULL)
        exit(1);
    raftrt_group_stats before[NREPLICAS], after[NREPLICAS];
    for (unsigned i = 0; i < NREPLICAS; i++)
        raftrt_group_get_stats(groups[i], &before[i]);
    uint64_t start = curve_now_mono_ns();
    ph.end_ns = start + (uint64_t)(g_seconds * 1e9);
    for (unsigned i = 0; i < inflight; i++) {
        slots[i].ph = &ph;
        pthread_mutex_lock(&ph.mu);
        ph.outstanding++;
        pthread_mutex_unlock(&ph.mu);
        if (submit(&slots[i]) != 0) {
            pthread_mutex_lock(&ph.mu);
            ph.outstanding--;
            pthread_mutex_unlock(&ph.mu);
        }
    }
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += (time_t)g_seconds + DRAIN_TIMEOUT_MS / 1000;
    pthread_mutex_lock(&ph.mu);
    while (ph.outstanding > 0)
        if (pthread_cond_timedwait(&ph.cond, &ph.mu, &dl) == ETIMEDOUT) {
            fprintf(stderr, "raft_bench: %u proposals did not complete\n", ph.outstanding);
            exit(1);
        }
    pthread_mutex_unlock(&ph.mu);
    double secs = (double)(curve_now_mono_ns() - start) / 1e9;
    uint64_t entries = 0, syncs = 0;
    for (unsigned i = 0; i < NREPLICAS; i++) {
        raftrt_group_get_stats(groups[i], &after[i]);
        entries += after[i].log.entries - before[i].log.entries;
        syncs += after[i].log.syncs - before[i].log.syncs;
    }
    res->commits_s = (double)ph.l.n / secs;
    res->p50 = pct_us(&ph.l, 0.50);
    res->p99 = pct_us(&ph.l, 0.99);
    res->batch = syncs ? (double)entries / (double)syncs : 0;
    res->errors = ph.errors;
    free(slots);
    free(ph.l.v);
    pthread_cond_destroy(&ph.cond);
    pthread_mutex_destroy(&ph.mu);
}

static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* G groups at once, MULTI_INFLIGHT proposals each at the group's leader. */
static void run_multi(raftrt_group *(*mg)[NREPLICAS], const int *leaders, unsigned ng,
                      uint8_t *payload, struct result *res)
{
    phase *ph = calloc(ng, sizeof(*ph));
    slot *slots = calloc((size_t)ng * MULTI_INFLIGHT, sizeof(*slots));
    if (ph == NULL || slots == NULL)
        exit(1);
    raftrt_group_stats *before = calloc((size_t)ng * NREPLICAS, sizeof(*before));
    if (before == NULL)
        exit(1);
    for (unsigned k = 0; k < ng; k++)
        for (unsigned i = 0; i < NREPLICAS; i++)
            raftrt_group_get_stats(mg[k][i], &before[k * NREPLICAS + i]);
    uint64_t start = curve_now_mono_ns();
    for (unsigned k = 0; k < ng; k++) {
        ph[k].g = mg[k][leaders[k]];
        ph[k].payload = payload;
        ph[k].end_ns = start + (uint64_t)(g_seconds * 1e9);
        pthread_mutex_init(&ph[k].mu, NULL);
        pthread_cond_init(&ph[k].cond, NULL);
        ph[k].l.v = malloc((LAT_MAX / ng) * sizeof(uint64_t));
        if (ph[k].l.v == NULL)
            exit(1);
    }
    for (unsigned k = 0; k < ng; k++)
        for (unsigned j = 0; j < MULTI_INFLIGHT; j++) {
            slot *sl = &slots[k * MULTI_INFLIGHT + j];
            sl->ph = &ph[k];
            pthread_mutex_lock(&ph[k].mu);
            ph[k].outstanding++;
            pthread_mutex_unlock(&ph[k].mu);
            if (submit(sl) != 0) {
                pthread_mutex_lock(&ph[k].mu);
                ph[k].outstanding--;
                pthread_mutex_unlock(&ph[k].mu);
            }
        }
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += (time_t)g_seconds + DRAIN_TIMEOUT_MS / 1000;
    lat all = {.v = malloc(LAT_MAX * sizeof(uint64_t))};
    if (all.v == NULL)
        exit(1);
    uint64_t errors = 0;
    for (unsigned k = 0; k < ng; k++) {
        pthread_mutex_lock(&ph[k].mu);
        while (ph[k].outstanding > 0)
            if (pthread_cond_timedwait(&ph[k].cond, &ph[k].mu, &dl) == ETIMEDOUT) {
                fprintf(stderr, "raft_bench: group %u: %u proposals did not complete\n", k,
                        ph[k].outstanding);
                exit(1);
            }
        pthread_mutex_unlock(&ph[k].mu);
    }
    double secs = (double)(curve_now_mono_ns() - start) / 1e9;
    uint64_t entries = 0, syncs = 0;
    for (unsigned k = 0; k < ng; k++) {
        for (size_t j = 0; j < ph[k].l.n && all.n < LAT_MAX; j++)
            all.v[all.n++] = ph[k].l.v[j];
        errors += ph[k].errors;
        for (unsigned i = 0; i < NREPLICAS; i++) {
            raftrt_group_stats a;
            raftrt_group_get_stats(mg[k][i], &a);
            entries += a.log.entries - before[k * NREPLICAS + i].log.entries;
            syncs += a.log.syncs - before[k * NREPLICAS + i].log.syncs;
        }
        free(ph[k].l.v);
        pthread_cond_destroy(&ph[k].cond);
        pthread_mutex_destroy(&ph[k].mu);
    }
    res->commits_s = (double)all.n / secs;
    res->p50 = pct_us(&all, 0.50);
    res->p99 = pct_us(&all, 0.99);
    res->batch = syncs ? (double)entries / (double)syncs : 0;
    res->errors = errors;
    free(all.v);
    free(before);
    free(slots);
    free(ph);
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

int main(int argc, char **argv)
{
    const char *dir_opt = NULL;
    static const struct option lo[] = {{"seconds", required_argument, NULL, 's'},
                                       {"entry-bytes", required_argument, NULL, 'e'},
                                       {"dir", required_argument, NULL, 'd'},
                                       {"groups", required_argument, NULL, 'g'},
                                       {"log-thread-per-group", no_argument, NULL, 't'},
                                       {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 's':
            g_seconds = atof(optarg);
            break;
        case 'e':
            g_entry = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'd':
            dir_opt = optarg;
            break;
        case 'g':
            g_groups = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 't':
            g_per_group = true;
            break;
        default:
            fprintf(stderr, "usage: raft_bench [--seconds=N] [--entry-bytes=N] [--dir=PATH] "
                            "[--groups=G] [--log-thread-per-group]\n");
            return 2;
        }
    }
    if (g_seconds <= 0 || g_seconds > 600 || g_entry == 0 || g_entry > (1u << 20) ||
        g_groups == 0 || g_groups > MAX_GROUPS) {
        fprintf(stderr, "raft_bench: --seconds in (0, 600], --entry-bytes in [1, 1 MiB], "
                        "--groups in [1, %u]\n", MAX_GROUPS);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (getenv("CURVE_LOG_LEVEL") == NULL)
        curve_log_set_level(CURVE_LOG_WARN);
    char dir[4096];
    if (dir_opt) {
        snprintf(dir, sizeof(dir), "%s/raft_bench.XXXXXX", dir_opt);
    } else {
        snprintf(dir, sizeof(dir), "/tmp/curve-raft-bench.XXXXXX");
    }
    if (mkdtemp(dir) == NULL) {
        perror("raft_bench: mkdtemp");
        return 1;
    }

    /* the baseline runs before and after the Raft phases (half the time each): the machine is
     * shared, and the TARGET uses the lower (stricter) of the two p50s */
    lat base[2] = {{.v = malloc(LAT_MAX * sizeof(uint64_t))},
                   {.v = malloc(LAT_MAX * sizeof(uint64_t))}};
    if (base[0].v == NULL || base[1].v == NULL)
        return 1;
    char bpath[4200];
    int bfd = baseline_open(dir, bpath, sizeof(bpath));
    baseline(bfd, &base[0], g_seconds / 2);

    raftrt_host *hosts[NREPLICAS];
    raftrt_group *groups[NREPLICAS];
    raftrt_fsm fsm = {.apply = fsm_apply,
                      .snapshot_read = fsm_read,
                      .install_begin = fsm_begin,
                      .install_write = fsm_write,
                      .install_finish = fsm_finish,
                      .install_abort = fsm_abort};
    struct raft_config conf = {.n = NREPLICAS};
    for (unsigned i = 0; i < NREPLICAS; i++) {
        raftrt_host_opts ho = {.self_id = i + 1,
                               .listen_addr = "127.0.0.1:0",
                               .nloops = 1,
                               .nworkers = 1,
                               .log_thread_per_group = g_per_group};
        if (raftrt_host_new(&ho, &hosts[i]) != 0 || raftrt_host_start(hosts[i]) != 0) {
            fprintf(stderr, "raft_bench: cannot start host %u\n", i + 1);
            return 1;
        }
        conf.s[i] = (struct raft_server){.id = i + 1, .role = RAFT_VOTER};
    }
    for (unsigned i = 0; i < NREPLICAS; i++)
        for (unsigned j = 0; j < NREPLICAS; j++) {
            char addr[64];
            snprintf(addr, sizeof(addr), "127.0.0.1:%d", raftrt_host_port(hosts[j]));
            raftrt_host_set_peer(hosts[i], j + 1, addr);
        }
    for (unsigned i = 0; i < NREPLICAS; i++) {
        char ddir[4200];
        snprintf(ddir, sizeof(ddir), "%s/n%u", dir, i + 1);
        raftrt_group_opts go;
        raftrt_group_opts_default(&go);
        go.group_id = GROUP_ID;
        go.data_dir = ddir;
        go.bootstrap = &conf;
        go.fsm = &fsm;
        go.raft.snapshot_threshold = 0;
        go.raft.max_inflight_msgs = 32;
        go.raft.election_timeout_ms = 500;
        go.raft.heartbeat_ms = 50;
        if (raftrt_group_open(hosts[i], &go, &groups[i]) != 0) {
            fprintf(stderr, "raft_bench: cannot open group on host %u\n", i + 1);
            return 1;
        }
    }
    int leader = -1;
    uint64_t deadline = curve_now_mono_ns() + LEADER_TIMEOUT_NS;
    while (leader < 0 && curve_now_mono_ns() < deadline) {
        for (unsigned i = 0; i < NREPLICAS && leader < 0; i++) {
            struct raft_status st;
            raftrt_group_status(groups[i], &st);
            if (st.role == RAFT_LEADER && st.commit >= st.last_index)
                leader = (int)i;
        }
        if (leader < 0)
            usleep(10000); /* polling interval of a bounded wait for the election */
    }
    if (leader < 0) {
        fprintf(stderr, "raft_bench: no leader within %llu s\n",
                (unsigned long long)(LEADER_TIMEOUT_NS / 1000000000ull));
        return 1;
    }
    uint8_t *payload = malloc(g_entry);
    if (payload == NULL)
        return 1;
    memset(payload, 0x5a, g_entry);

    struct result r1, r32, rm = {0};
    run_phase(groups, (unsigned)leader, 1, payload, &r1);
    run_phase(groups, (unsigned)leader, 32, payload, &r32);
    /* the multi-group phase: groups GROUP_ID + 1 .. GROUP_ID + G - 1 plus the first one */
    unsigned ng = g_groups;
    raftrt_group *(*mg)[NREPLICAS] = calloc(ng, sizeof(*mg));
    int *leaders = calloc(ng, sizeof(int));
    if (mg == NULL || leaders == NULL)
        return 1;
    int threads_multi = 0;
    if (ng > 1) {
        for (unsigned i = 0; i < NREPLICAS; i++)
            mg[0][i] = groups[i];
        leaders[0] = leader;
        for (unsigned k = 1; k < ng; k++)
            for (unsigned i = 0; i < NREPLICAS; i++) {
                char ddir[4200];
                snprintf(ddir, sizeof(ddir), "%s/n%u", dir, i + 1);
                raftrt_group_opts go;
                raftrt_group_opts_default(&go);
                go.group_id = GROUP_ID + k;
                go.data_dir = ddir;
                go.bootstrap = &conf;
                go.fsm = &fsm;
                go.raft.snapshot_threshold = 0;
                go.raft.max_inflight_msgs = 32;
                go.raft.election_timeout_ms = 500;
                go.raft.heartbeat_ms = 50;
                if (raftrt_group_open(hosts[i], &go, &mg[k][i]) != 0) {
                    fprintf(stderr, "raft_bench: cannot open group %u on host %u\n", k + 1, i + 1);
                    return 1;
                }
            }
        for (unsigned k = 1; k < ng; k++) {
            leaders[k] = -1;
            deadline = curve_now_mono_ns() + LEADER_TIMEOUT_NS;
            while (leaders[k] < 0 && curve_now_mono_ns() < deadline) {
                for (unsigned i = 0; i < NREPLICAS && leaders[k] < 0; i++) {
                    struct raft_status st;
                    raftrt_group_status(mg[k][i], &st);
                    if (st.role == RAFT_LEADER && st.commit >= st.last_index)
                        leaders[k] = (int)i;
                }
                if (leaders[k] < 0)
                    usleep(10000); /* polling interval of a bounded wait for the election */
            }
            if (leaders[k] < 0) {
                fprintf(stderr, "raft_bench: group %u has no leader\n", k + 1);
                return 1;
            }
        }
        threads_multi = count_threads();
        run_multi(mg, leaders, ng, payload, &rm);
    }
    baseline(bfd, &base[1], g_seconds / 2);
    close(bfd);
    unlink(bpath);
    double bp50[2], bp99[2], bops[2];
    for (int i = 0; i < 2; i++) {
        bops[i] = (double)base[i].n / (g_seconds / 2);
        bp50[i] = pct_us(&base[i], 0.5);
        bp99[i] = pct_us(&base[i], 0.99);
    }
    double base_p50 = bp50[0] < bp50[1] ? bp50[0] : bp50[1];

    printf("%-38s %10s %10s %12s %14s\n", "measurement", "p50_us", "p99_us", "ops/s",
           "entries/fsync");
    printf("%-38s %10.1f %10.1f %12.0f %14s\n", "baseline 4KiB pwrite+fdatasync (pre)", bp50[0],
           bp99[0], bops[0], "1.00");
    printf("%-38s %10.1f %10.1f %12.0f %14s\n", "baseline 4KiB pwrite+fdatasync (post)", bp50[1],
           bp99[1], bops[1], "1.00");
    printf("%-38s %10.1f %10.1f %12.0f %14.2f\n", "raft commit, 1 in flight", r1.p50, r1.p99,
           r1.commits_s, r1.batch);
    printf("%-38s %10.1f %10.1f %12.0f %14.2f\n", "raft commit, 32 in flight", r32.p50, r32.p99,
           r32.commits_s, r32.batch);
    if (ng > 1) {
        char name[64];
        snprintf(name, sizeof(name), "raft commit, %u groups x %u in flight", ng,
                 MULTI_INFLIGHT);
        printf("%-38s %10.1f %10.1f %12.0f %14.2f\n", name, rm.p50, rm.p99, rm.commits_s,
               rm.batch);
        printf("log writers: %s; process threads with %u groups on 3 hosts: %d\n",
               g_per_group ? "an IO thread per group" : "one shared writer per host data dir",
               ng, threads_multi);
        if (rm.errors)
            printf("proposal errors: %" PRIu64 " (%u groups)\n", rm.errors, ng);
    }
    if (r1.errors || r32.errors)
        printf("proposal errors: %" PRIu64 " (1 in flight), %" PRIu64 " (32 in flight)\n",
               r1.errors, r32.errors);

    for (unsigned k = 1; k < ng; k++)
        for (unsigned i = 0; i < NREPLICAS; i++)
            raftrt_group_stop(mg[k][i]);
    free(mg);
    free(leaders);
    for (unsigned i = 0; i < NREPLICAS; i++)
        raftrt_group_stop(groups[i]);
    for (unsigned i = 0; i < NREPLICAS; i++)
        raftrt_host_free(hosts[i]);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(payload);
    free(base[0].v);
    free(base[1].v);

    double ratio = base_p50 > 0 ? r1.p50 / base_p50 : 0;
    printf("TARGET raft_p50_commit_1_inflight measured=%.2f goal=2.0 %s\n", ratio,
           ratio > 0 && ratio <= 2.0 ? "MET" : "MISSED");
    printf("TARGET raft_batching_32_inflight measured=%.2f goal=8 %s\n", r32.batch,
           r32.batch >= 8 ? "MET" : "MISSED");
    return 0;
}
