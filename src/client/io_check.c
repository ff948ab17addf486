/*
 * curve-io-check: exercises a cluster through libcurve.so (only the public curve.h API).
 *
 *   curve-io-check -m ADDRS [-o key=value]... create PATH SIZE
 *   curve-io-check -m ADDRS [-o key=value]... verify PATH SEED
 *       writes seeded patterns (sync and async, across chunk and segment boundaries), reads
 *       them back, checks never-written ranges read as zeros, discards a range, flushes.
 *   curve-io-check -m ADDRS [-o key=value]... stress PATH SEED SECONDS
 *       writes and verifies 64 KiB blocks for SECONDS, printing "ops N" as it goes.
 *   curve-io-check -m ADDRS [-o key=value]... fence PATH
 *       opens the volume twice in this process (a writer, then an exclusive writer) and checks
 *       that the first writer's writes fail with CURVE_ERR_EPOCH_TOO_OLD / CURVE_ERR_FENCED
 *       once the exclusive opener wrote, while the exclusive opener's data stays intact.
 * Exit status 0 when every check passed, 1 on a failed check, 2 on usage errors.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "curve/curve.h"

#define MAX_OVERRIDES 32
#define AIO_DEPTH     16 /* concurrent AIOs in the verify run */
#define FENCE_WAIT_S  20 /* bound on the fencing delay of an old writer */

static int fails;
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            fails++;                                                                               \
        }                                                                                          \
    } while (0)

static void fill(uint8_t *buf, size_t len, uint64_t seed, uint64_t off)
{
    for (size_t i = 0; i < len; i += 8) {
        uint64_t x = (off + i) * 0x9e3779b97f4a7c15ull ^ seed;
        x ^= x >> 29;
        memcpy(buf + i, &x, len - i < 8 ? len - i : 8);
    }
}

static bool all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

/* ---- async helpers ---- */

typedef struct aio_batch {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int pending;
    int errors;
} aio_batch;

typedef struct my_aio {
    struct curve_aio aio;
    aio_batch *b;
} my_aio;

static void aio_cb(struct curve_aio *a)
{
    my_aio *m = (my_aio *)a;
    pthread_mutex_lock(&m->b->lock);
    if (a->result < 0 || (a->op <= CURVE_OP_WRITE && (uint64_t)a->result != a->len)) {
        fprintf(stderr, "aio op %d at %" PRIu64 ": %s\n", (int)a->op, a->offset,
                curve_strerror((int)a->result));
        m->b->errors++;
    }
    m->b->pending--;
    pthread_cond_broadcast(&m->b->cond);
    pthread_mutex_unlock(&m->b->lock);
}

static int do_verify(curve_client *c, const char *path, uint64_t seed)
{
    curve_volume *v;
    int rc = curve_open(c, path, CURVE_OPEN_RDWR, &v);
    if (rc != 0) {
        fprintf(stderr, "open %s: %s\n", path, curve_strerror(rc));
        return 1;
    }
    struct curve_stat st;
    rc = curve_fstat(v, &st);
    CHECK(rc == 0, "fstat: %s", curve_strerror(rc));
    uint64_t chunk = st.chunk_size, size = st.size;
    printf("volume %s: %" PRIu64 " bytes, chunk %" PRIu64 ", segment %" PRIu64 "\n", path, size,
           chunk, st.segment_size);
    /* 1. sync write straddling the first chunk boundary, read back */
    size_t len = 3 * 4096 + (size_t)chunk / 2;
    uint64_t off = chunk - 8192;
    if (off + len > size)
        off = 0;
    uint8_t *w = malloc(len), *r = malloc(len);
    fill(w, len, seed, off);
    ssize_t n = curve_pwrite(v, w, len, off);
    CHECK(n == (ssize_t)len, "pwrite: %s", curve_strerror((int)n));
    n = curve_pread(v, r, len, off);
    CHECK(n == (ssize_t)len && memcmp(w, r, len) == 0, "read back after pwrite differs (%zd)", n);
    /* 2. never-written range reads as zeros (the last 64 KiB of the volume) */
    memset(r, 0xab, 65536);
    n = curve_pread(v, r, 65536, size - 65536);
    CHECK(n == 65536 && all_zero(r, 65536), "unwritten range is not zero (%zd)", n);
    /* 3. AIO writes of 64 KiB at AIO_DEPTH spread over the volume, then AIO reads */
    aio_batch b = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    my_aio ios[AIO_DEPTH];
    uint8_t *bufs = malloc((size_t)AIO_DEPTH * 65536);
    uint64_t stride = (size / AIO_DEPTH) & ~(uint64_t)65535;
    if (stride < 262144 || size < chunk + len) {
        fprintf(stderr, "volume too small for the checks (want >= %d x 256 KiB)\n", AIO_DEPTH);
        return 1;
    }
    for (int pass = 0; pass < 2; pass++) {
        b.pending = AIO_DEPTH;
        for (int i = 0; i < AIO_DEPTH; i++) {
            /* near the end of each stride: clear of the first write and of the tail */
            uint64_t o = (uint64_t)i * stride + stride - 131072;
            memset(&ios[i], 0, sizeof(ios[i]));
            ios[i].b = &b;
            ios[i].aio.buf = bufs + (size_t)i * 65536;
            ios[i].aio.offset = o;
            ios[i].aio.len = 65536;
            ios[i].aio.cb = aio_cb;
            if (pass == 0)
                fill(ios[i].aio.buf, 65536, seed + 1, o);
            rc = pass == 0 ? curve_aio_write(v, &ios[i].aio) : curve_aio_read(v, &ios[i].aio);
            if (rc != 0) {
                CHECK(0, "aio submit: %s", curve_strerror(rc));
                pthread_mutex_lock(&b.lock);
                b.pending--;
                pthread_mutex_unlock(&b.lock);
            }
        }
        pthread_mutex_lock(&b.lock);
        while (b.pending > 0)
            pthread_cond_wait(&b.cond, &b.lock);
        pthread_mutex_unlock(&b.lock);
        CHECK(b.errors == 0, "%d AIOs failed in pass %d", b.errors, pass);
        if (pass == 1) {
            uint8_t *exp = malloc(65536);
            for (int i = 0; i < AIO_DEPTH; i++) {
                fill(exp, 65536, seed + 1, ios[i].aio.offset);
                CHECK(memcmp(exp, ios[i].aio.buf, 65536) == 0, "AIO read %d differs", i);
            }
            free(exp);
        }
    }
    rc = curve_flush(v);
    CHECK(rc == 0, "flush: %s", curve_strerror(rc));
    /* 4. discard part of the first write: reads as zeros, the rest stays */
    rc = curve_discard(v, off, 8192);
    CHECK(rc == 0, "discard: %s", curve_strerror(rc));
    n = curve_pread(v, r, len, off);
    CHECK(n == (ssize_t)len && all_zero(r, 8192) && memcmp(w + 8192, r + 8192, len - 8192) == 0,
          "read after discard wrong");
    /* 4b. a partial-chunk discard larger than one RPC (zero writes in several RPCs) */
    uint64_t c2 = 2 * chunk;
    fill(w, 65536, seed + 2, c2);
    n = curve_pwrite(v, w, 65536, c2);
    CHECK(n == 65536, "pwrite before big discard: %s", curve_strerror((int)n));
    rc = curve_discard(v, c2 + 4096, chunk - 4096);
    CHECK(rc == 0, "big partial discard: %s", curve_strerror(rc));
    n = curve_pread(v, r, 65536, c2);
    CHECK(n == 65536 && memcmp(r, w, 4096) == 0 && all_zero(r + 4096, 65536 - 4096),
          "read after big partial discard wrong");
    n = curve_pread(v, r, 65536, c2 + chunk - 131072);
    CHECK(n == 65536 && all_zero(r, 65536), "AIO block not discarded");
    /* 5. refused requests */
    CHECK(curve_pread(v, r, 100, 0) == -EINVAL, "unaligned read accepted");
    CHECK(curve_pread(v, r, 4096, size) == -ERANGE, "read beyond the end accepted");
    rc = curve_close(v);
    CHECK(rc == 0, "close: %s", curve_strerror(rc));
    free(w);
    free(r);
    free(bufs);
    return fails ? 1 : 0;
}

static int do_fence(curve_client *c, const char *path)
{
    curve_volume *a, *b;
    int rc = curve_open(c, path, CURVE_OPEN_RDWR, &a);
    if (rc != 0) {
        fprintf(stderr, "open %s: %s\n", path, curve_strerror(rc));
        return 1;
    }
    uint8_t wa[4096], wb[4096], r[4096];
    memset(wa, 0xaa, sizeof(wa));
    memset(wb, 0xbb, sizeof(wb));
    ssize_t n = curve_pwrite(a, wa, 4096, 0);
    CHECK(n == 4096, "first writer: %s", curve_strerror((int)n));
    rc = curve_open(c, path, CURVE_OPEN_EXCLUSIVE, &b);
    CHECK(rc == 0, "exclusive open: %s", curve_strerror(rc));
    if (rc == 0) {
        n = curve_pwrite(b, wb, 4096, 0);
        CHECK(n == 4096, "exclusive writer: %s", curve_strerror((int)n));
        /* The old writer is fenced by the chunkservers (older epoch) or, at the latest, by its
         * next session refresh (the MDS reports the newer epoch): within FENCE_WAIT_S. */
        time_t end = time(NULL) + FENCE_WAIT_S;
        int tries = 0;
        while ((n = curve_pwrite(a, wa, 4096, 8192)) == 4096 && time(NULL) < end)
            tries++;
        CHECK(n == CURVE_ERR_EPOCH_TOO_OLD || n == CURVE_ERR_FENCED,
              "old writer not fenced after %d writes: %zd (%s)", tries, n,
              n < 0 ? curve_strerror((int)n) : "ok");
        printf("old writer fenced after %d more writes: %s\n", tries, curve_strerror((int)n));
        n = curve_pwrite(a, wa, 4096, 0);
        CHECK(n == CURVE_ERR_FENCED, "old writer still writes: %zd", n);
        n = curve_pread(b, r, 4096, 0);
        CHECK(n == 4096 && memcmp(r, wb, 4096) == 0, "exclusive writer's data lost");
        rc = curve_close(b);
        CHECK(rc == 0, "close exclusive: %s", curve_strerror(rc));
    }
    rc = curve_close(a);
    CHECK(rc == CURVE_ERR_FENCED || rc == CURVE_ERR_EPOCH_TOO_OLD || rc == 0, "close fenced: %s",
          curve_strerror(rc));
    if (fails == 0)
        printf("fencing ok\n");
    return fails ? 1 : 0;
}

/* Writes and immediately verifies 64 KiB blocks at pseudo-random places of the first
 * STRESS_SPAN bytes for `seconds`, printing "ops N" every STRESS_REPORT operations (tests kill
 * chunkservers meanwhile). Any failed or wrong IO fails the run. */
#define STRESS_SPAN   (32ull << 20)
#define STRESS_REPORT 50
static int do_stress(curve_client *c, const char *path, uint64_t seed, unsigned seconds)
{
    curve_volume *v;
    int rc = curve_open(c, path, CURVE_OPEN_RDWR, &v);
    if (rc != 0) {
        fprintf(stderr, "open %s: %s\n", path, curve_strerror(rc));
        return 1;
    }
    struct curve_stat st;
    rc = curve_fstat(v, &st);
    uint64_t span = rc == 0 && st.size < STRESS_SPAN ? st.size : STRESS_SPAN;
    uint8_t *w = malloc(65536), *r = malloc(65536);
    time_t end = time(NULL) + seconds;
    uint64_t ops = 0, x = seed | 1;
    printf("stress running\n");
    fflush(stdout);
    while (fails == 0 && time(NULL) < end) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t off = (x % (span / 65536)) * 65536;
        fill(w, 65536, seed ^ ops, off);
        ssize_t n = curve_pwrite(v, w, 65536, off);
        CHECK(n == 65536, "stress write at %" PRIu64 ": %s", off, curve_strerror((int)n));
        n = curve_pread(v, r, 65536, off);
        CHECK(n == 65536 && memcmp(w, r, 65536) == 0, "stress read at %" PRIu64 " wrong (%zd)", off,
              n);
        if (++ops % STRESS_REPORT == 0) {
            printf("ops %" PRIu64 "\n", ops);
            fflush(stdout);
        }
    }
    rc = curve_close(v);
    CHECK(rc == 0, "close: %s", curve_strerror(rc));
    printf("stress done: %" PRIu64 " write+read pairs\n", ops);
    free(w);
    free(r);
    return fails ? 1 : 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: curve-io-check -m MDS_ADDRS [-o key=value]... "
            "{create PATH SIZE | verify PATH SEED | fence PATH | stress PATH SEED SECONDS}\n");
}

int main(int argc, char **argv)
{
    const char *ov[MAX_OVERRIDES + 2] = {0};
    int nov = 0;
    static char mds[512];
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (i + 1 >= argc || nov >= MAX_OVERRIDES) {
            usage();
            return 2;
        }
        if (strcmp(argv[i], "-m") == 0) {
            snprintf(mds, sizeof(mds), "mds.addrs=%s", argv[++i]);
            ov[nov++] = mds;
        } else if (strcmp(argv[i], "-o") == 0) {
            ov[nov++] = argv[++i];
        } else {
            usage();
            return 2;
        }
    }
    if (i + 2 > argc) {
        usage();
        return 2;
    }
    const char *cmd = argv[i], *path = argv[i + 1];
    curve_client *c;
    int rc = curve_client_init(NULL, ov, &c);
    if (rc != 0) {
        fprintf(stderr, "init: %s\n", curve_strerror(rc));
        return 2;
    }
    int ret;
    if (strcmp(cmd, "create") == 0 && i + 3 == argc) {
        rc = curve_create(c, path, strtoull(argv[i + 2], NULL, 0));
        if (rc != 0)
            fprintf(stderr, "create %s: %s\n", path, curve_strerror(rc));
        ret = rc == 0 ? 0 : 1;
    } else if (strcmp(cmd, "verify") == 0 && i + 3 == argc) {
        ret = do_verify(c, path, strtoull(argv[i + 2], NULL, 0));
    } else if (strcmp(cmd, "stress") == 0 && i + 4 == argc) {
        ret = do_stress(c, path, strtoull(argv[i + 2], NULL, 0),
                        (unsigned)strtoul(argv[i + 3], NULL, 0));
    } else if (strcmp(cmd, "fence") == 0 && i + 2 == argc) {
        ret = do_fence(c, path);
    } else {
        usage();
        ret = 2;
    }
    rc = curve_client_destroy(c);
    if (rc != 0) {
        fprintf(stderr, "destroy: %s\n", curve_strerror(rc));
        ret = 1;
    }
    if (ret == 0)
        printf("ok\n");
    return ret;
}
