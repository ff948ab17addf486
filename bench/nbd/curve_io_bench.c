/*
 * curve-io-bench: the libcurve IO path alone (no NBD, no nbdkit), to separate the client's cost
 * from the NBD export's in bench/nbd/run.sh.
 *
 *   curve-io-bench -m ADDRS [-o key=value]... [-r randread|randwrite|read|write] [-b BYTES]
 *                  [-q QD] [-t SECONDS] [-s SIZE_BYTES] [-S] PATH
 *
 * -q QD asynchronous requests in flight (curve_aio_*; the completion callback resubmits), or
 * with -S, QD threads each doing blocking curve_pread/curve_pwrite (what the nbdkit plugin's
 * worker threads do). The volume must exist and be at least -s bytes (default: its size, at
 * most 128 MiB); offsets are uniformly random (rand*) or sequential, aligned to -b.
 * Prints one line: "curve-io-bench <rw> bs=<b> qd=<q> mode=<aio|sync> iops=<n> mib_s=<x>
 * avg_us=<x> p50_us=<x> p99_us=<x> errors=<n>". Exit 0 when no IO failed.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "curve/curve.h"

#define MAX_OVERRIDES 32
#define MAX_QD        1024
#define LAT_MAX       (1u << 22) /* latency samples kept (the rest only count) */

static struct {
    curve_volume *vol;
    bool rnd, wr;
    uint64_t bs, span;
    atomic_uint_fast64_t seq_off;
    atomic_bool stop;
    atomic_uint_fast64_t ios, errors, nlat;
    uint32_t *lat_us; /* LAT_MAX samples */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned active; /* aio mode: requests still circulating */
} B;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t next_off(unsigned *seed)
{
    uint64_t nblk = B.span / B.bs;
    if (B.rnd) {
        uint64_t r = ((uint64_t)rand_r(seed) << 31) ^ (uint64_t)rand_r(seed);
        return (r % nblk) * B.bs;
    }
    return (atomic_fetch_add(&B.seq_off, 1) % nblk) * B.bs;
}

static void record(uint64_t t0, int64_t res)
{
    uint64_t us = (now_ns() - t0) / 1000;
    atomic_fetch_add(&B.ios, 1);
    if (res < 0 || (uint64_t)res != B.bs)
        atomic_fetch_add(&B.errors, 1);
    uint64_t i = atomic_fetch_add(&B.nlat, 1);
    if (i < LAT_MAX)
        B.lat_us[i] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* ---- aio mode ---- */

typedef struct req {
    struct curve_aio aio;
    uint64_t t0;
    unsigned seed;
} req;

static int submit(req *r)
{
    r->aio.offset = next_off(&r->seed);
    r->aio.len = B.bs;
    r->t0 = now_ns();
    return B.wr ? curve_aio_write(B.vol, &r->aio) : curve_aio_read(B.vol, &r->aio);
}

static void retire(void)
{
    pthread_mutex_lock(&B.lock);
    if (--B.active == 0)
        pthread_cond_signal(&B.cond);
    pthread_mutex_unlock(&B.lock);
}

static void aio_cb(struct curve_aio *a)
{
    req *r = (req *)a;
    record(r->t0, a->result);
    if (atomic_load(&B.stop) || submit(r) != 0)
        retire();
}

/* ---- sync mode ---- */

static void *sync_worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    void *buf = aligned_alloc(4096, B.bs);
    if (!buf)
        return NULL;
    memset(buf, 0x5a, B.bs);
    while (!atomic_load(&B.stop)) {
        uint64_t off = next_off(&seed);
        uint64_t t0 = now_ns();
        ssize_t r = B.wr ? curve_pwrite(B.vol, buf, B.bs, off) : curve_pread(B.vol, buf, B.bs, off);
        record(t0, r);
    }
    free(buf);
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void usage(void)
{
    fprintf(stderr, "usage: curve-io-bench -m ADDRS [-o key=value]... [-r randread|randwrite|read|"
                    "write] [-b BYTES] [-q QD] [-t SECONDS] [-s SIZE] [-S] PATH\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *ov[MAX_OVERRIDES + 2] = {0};
    char mds[4200];
    unsigned nov = 0, qd = 1, secs = 5;
    const char *rw = "randread";
    uint64_t size = 0;
    bool sync_mode = false;
    B.bs = 4096;
    int opt;
    while ((opt = getopt(argc, argv, "m:o:r:b:q:t:s:S")) != -1) {
        switch (opt) {
        case 'm':
            snprintf(mds, sizeof(mds), "mds.addrs=%s", optarg);
            ov[nov++] = mds;
            break;
        case 'o':
            if (nov == MAX_OVERRIDES)
                usage();
            ov[nov++] = optarg;
            break;
        case 'r':
            rw = optarg;
            break;
        case 'b':
            B.bs = strtoull(optarg, NULL, 0);
            break;
        case 'q':
            qd = (unsigned)atoi(optarg);
            break;
        case 't':
            secs = (unsigned)atoi(optarg);
            break;
        case 's':
            size = strtoull(optarg, NULL, 0);
            break;
        case 'S':
            sync_mode = true;
            break;
        default:
            usage();
        }
    }
    if (optind != argc - 1 || nov == 0 || qd < 1 || qd > MAX_QD || secs < 1 || B.bs < 4096 ||
        B.bs % 4096)
        usage();
    B.rnd = strncmp(rw, "rand", 4) == 0;
    B.wr = strstr(rw, "write") != NULL;
    if (!strstr(rw, "write") && !strstr(rw, "read"))
        usage();
    const char *path = argv[optind];
    curve_client *c;
    int rc = curve_client_init(NULL, ov, &c);
    if (rc < 0) {
        fprintf(stderr, "client init: %s\n", curve_strerror(rc));
        return 1;
    }
    rc = curve_open(c, path, B.wr ? 0 : CURVE_OPEN_RDONLY, &B.vol);
    if (rc < 0) {
        fprintf(stderr, "open %s: %s\n", path, curve_strerror(rc));
        return 1;
    }
    struct curve_stat st;
    rc = curve_fstat(B.vol, &st);
    if (rc < 0) {
        fprintf(stderr, "stat %s: %s\n", path, curve_strerror(rc));
        return 1;
    }
    B.span = size ? size : (st.size < (128ull << 20) ? st.size : (128ull << 20));
    if (B.span > st.size || B.span < B.bs) {
        fprintf(stderr, "size %" PRIu64 ": the volume has %" PRIu64 " bytes\n", B.span, st.size);
        return 2;
    }
    B.lat_us = calloc(LAT_MAX, sizeof(uint32_t));
    pthread_mutex_init(&B.lock, NULL);
    pthread_cond_init(&B.cond, NULL);
    uint64_t t0 = now_ns();
    pthread_t th[MAX_QD];
    req *reqs = NULL;
    if (sync_mode) {
        for (unsigned i = 0; i < qd; i++)
            pthread_create(&th[i], NULL, sync_worker, (void *)(uintptr_t)(i * 7919 + 1));
    } else {
        reqs = calloc(qd, sizeof(*reqs));
        B.active = qd;
        for (unsigned i = 0; i < qd; i++) {
            reqs[i].aio.buf = aligned_alloc(4096, B.bs);
            memset(reqs[i].aio.buf, 0x5a, B.bs);
            reqs[i].aio.cb = aio_cb;
            reqs[i].seed = i * 7919 + 1;
        }
        for (unsigned i = 0; i < qd; i++)
            if (submit(&reqs[i]) != 0)
                retire();
    }
    sleep(secs);
    atomic_store(&B.stop, true);
    uint64_t ios_at_stop = atomic_load(&B.ios);
    uint64_t t1 = now_ns();
    if (sync_mode) {
        for (unsigned i = 0; i < qd; i++)
            pthread_join(th[i], NULL);
    } else {
        pthread_mutex_lock(&B.lock);
        while (B.active > 0)
            pthread_cond_wait(&B.cond, &B.lock);
        pthread_mutex_unlock(&B.lock);
        for (unsigned i = 0; i < qd; i++)
            free(reqs[i].aio.buf);
        free(reqs);
    }
    uint64_t n = atomic_load(&B.nlat);
    if (n > LAT_MAX)
        n = LAT_MAX;
    qsort(B.lat_us, n, sizeof(uint32_t), cmp_u32);
    double sum = 0;
    for (uint64_t i = 0; i < n; i++)
        sum += B.lat_us[i];
    double el = (double)(t1 - t0) / 1e9;
    printf("curve-io-bench %s bs=%" PRIu64 " qd=%u mode=%s iops=%.0f mib_s=%.1f avg_us=%.1f "
           "p50_us=%u p99_us=%u errors=%" PRIu64 "\n",
           rw, B.bs, qd, sync_mode ? "sync" : "aio", (double)ios_at_stop / el,
           (double)ios_at_stop * (double)B.bs / el / 1048576.0, n ? sum / (double)n : 0.0,
           n ? B.lat_us[n / 2] : 0, n ? B.lat_us[n * 99 / 100] : 0, atomic_load(&B.errors));
    curve_close(B.vol);
    curve_client_destroy(c);
    free(B.lat_us);
    return atomic_load(&B.errors) ? 1 : 0;
}
