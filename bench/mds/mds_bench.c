/*
 * mds_bench: MDS metadata operations against the same number of raw etcd requests, in the
 * same run, with the same concurrency (bench/mds/run.sh starts etcd and curve-mds).
 *
 *   mds_bench --mds=IP:PORT --etcd=http://IP:PORT [--n=10000] [--concurrency=16]
 *             [--size=BYTES] [--round=R]
 *
 * Phases (each N operations over `concurrency` threads):
 *   etcd_put     raw etcd puts of a 100-byte value under /bench/raw/   (the baseline)
 *   etcd_get     raw etcd gets of those keys                           (information)
 *   etcd_txn     raw etcd txns shaped like an MDS create (2 compares on an existing key, key
 *                absent, put)                                           (information)
 *   create       CreateVolume /bench/v<i>
 *   stat         Stat /bench/v<i>
 *   segment      GetOrAllocateSegment /bench/v<i> offset 0 (allocates: one etcd txn each)
 *   delete       Delete /bench/v<i> (moved to /RecycleBin)
 * Prints "RESULT phase=<p> ops=<n> seconds=<s> ops_per_s=<r> errors=<e>" per phase.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "curve/errors.h"
#include "etcd/etcd.h"
#include "loop/loop.h"
#include "mds.pb-c.h"
#include "rpc/rpc_channel.h"

#define BENCH_THREADS_MAX 256

typedef enum { P_PUT, P_GET, P_TXN, P_CREATE, P_STAT, P_SEGMENT, P_DELETE, P_N } phase;
static const char *const phase_names[P_N] = {"etcd_put", "etcd_get", "etcd_txn", "create",
                                             "stat", "segment", "delete"};

static struct {
    etcd_client *etcd;
    rpc_channel *ch;
    uint64_t n, size;
    unsigned round; /* names are unique per round */
    phase ph;
    int64_t fence_rev; /* create revision of the key the etcd_txn phase compares */
    atomic_uint_fast64_t next, errors;
    char first_err[256];
    pthread_mutex_t mu;
} B;

static void note_err(int rc, const char *what)
{
    atomic_fetch_add(&B.errors, 1);
    pthread_mutex_lock(&B.mu);
    if (!B.first_err[0])
        snprintf(B.first_err, sizeof(B.first_err), "%s: %s", what, curve_strerror(rc));
    pthread_mutex_unlock(&B.mu);
}

static int one(uint64_t i)
{
    char key[128], path[64], errmsg[256];
    snprintf(key, sizeof(key), "/bench/raw/r%u/%08" PRIu64, B.round, i);
    snprintf(path, sizeof(path), "/bench/r%u-v%08" PRIu64, B.round, i);
    ProtobufCMessage *resp = NULL;
    int rc = 0;
    switch (B.ph) {
    case P_PUT: {
        char val[100];
        memset(val, 'x', sizeof(val));
        rc = etcd_put(B.etcd, key, val, sizeof(val), 0, false, NULL);
        break;
    }
    case P_GET: {
        etcd_range_result r;
        rc = etcd_get(B.etcd, key, &r);
        if (rc == 0) {
            rc = r.n_kvs == 1 ? 0 : CURVE_ERR_NOT_FOUND;
            etcd_range_result_free(&r);
        }
        break;
    }
    case P_TXN: {
        /* The shape of an MDS create: fence + parent compares, key absent, put. */
        char val[100], tkey[140];
        memset(val, 'y', sizeof(val));
        snprintf(tkey, sizeof(tkey), "%s/txn", key);
        etcd_compare c[3] = {
            {.key = "/bench/fence", .target = ETCD_CMP_CREATE, .result = ETCD_CMP_EQUAL,
             .number = B.fence_rev},
            {.key = "/bench/fence", .target = ETCD_CMP_CREATE, .result = ETCD_CMP_EQUAL,
             .number = B.fence_rev},
            {.key = tkey, .target = ETCD_CMP_CREATE, .result = ETCD_CMP_EQUAL, .number = 0},
        };
        etcd_op put = {.type = ETCD_OP_PUT, .key = tkey, .value = val, .value_len = sizeof(val)};
        etcd_txn_result r;
        rc = etcd_txn(B.etcd, c, 3, &put, 1, NULL, 0, &r);
        if (rc == 0) {
            rc = r.succeeded ? 0 : CURVE_ERR_EXISTS;
            etcd_txn_result_free(&r);
        }
        break;
    }
    case P_CREATE: {
        Curve__Mds__CreateVolumeRequest q = CURVE__MDS__CREATE_VOLUME_REQUEST__INIT;
        q.path = path;
        q.size = B.size;
        q.owner = "bench";
        rc = rpc_call_sync(B.ch, 32, 2, &q.base, NULL, &curve__mds__file_info__descriptor, 10000,
                           &resp, NULL, errmsg, sizeof(errmsg));
        break;
    }
    case P_STAT: {
        Curve__Mds__PathRequest q = CURVE__MDS__PATH_REQUEST__INIT;
        q.path = path;
        rc = rpc_call_sync(B.ch, 32, 3, &q.base, NULL, &curve__mds__file_info__descriptor, 10000,
                           &resp, NULL, errmsg, sizeof(errmsg));
        break;
    }
    case P_SEGMENT: {
        Curve__Mds__SegmentRequest q = CURVE__MDS__SEGMENT_REQUEST__INIT;
        q.path = path;
        q.offset = 0;
        q.has_allocate = q.allocate = true;
        rc = rpc_call_sync(B.ch, 32, 13, &q.base, NULL, &curve__mds__segment_response__descriptor,
                           10000, &resp, NULL, errmsg, sizeof(errmsg));
        break;
    }
    case P_DELETE: {
        Curve__Mds__PathRequest q = CURVE__MDS__PATH_REQUEST__INIT;
        q.path = path;
        rc = rpc_call_sync(B.ch, 32, 7, &q.base, NULL, &curve__mds__empty__descriptor, 10000,
                           &resp, NULL, errmsg, sizeof(errmsg));
        break;
    }
    default: break;
    }
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    if (rc < 0)
        note_err(rc, phase_names[B.ph]);
    return rc;
}

static void *worker(void *arg)
{
    for (;;) {
        uint64_t i = atomic_fetch_add(&B.next, 1);
        if (i >= B.n)
            return NULL;
        one(i);
    }
}

static double run_phase(phase ph, unsigned conc)
{
    pthread_t th[BENCH_THREADS_MAX];
    B.ph = ph;
    atomic_store(&B.next, 0);
    atomic_store(&B.errors, 0);
    B.first_err[0] = 0;
    uint64_t t0 = curve_now_mono_ns();
    unsigned started = 0;
    for (; started < conc; started++)
        if (pthread_create(&th[started], NULL, worker, NULL) != 0)
            break;
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    double secs = (double)(curve_now_mono_ns() - t0) / 1e9;
    uint64_t errs = atomic_load(&B.errors);
    printf("RESULT phase=%s ops=%" PRIu64 " seconds=%.3f ops_per_s=%.1f errors=%" PRIu64 "%s%s\n",
           phase_names[ph], B.n, secs, (double)B.n / secs, errs, errs ? " first_error=" : "",
           errs ? B.first_err : "");
    fflush(stdout);
    return errs ? -1.0 : (double)B.n / secs;
}

int main(int argc, char **argv)
{
    const char *mds = NULL, *etcd = NULL;
    unsigned conc = 16;
    B.n = 10000;
    B.size = 64ull << 20;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--mds=", 6) == 0)
            mds = argv[i] + 6;
        else if (strncmp(argv[i], "--etcd=", 7) == 0)
            etcd = argv[i] + 7;
        else if (strncmp(argv[i], "--n=", 4) == 0)
            B.n = strtoull(argv[i] + 4, NULL, 10);
        else if (strncmp(argv[i], "--concurrency=", 14) == 0)
            conc = (unsigned)strtoul(argv[i] + 14, NULL, 10);
        else if (strncmp(argv[i], "--round=", 8) == 0)
            B.round = (unsigned)strtoul(argv[i] + 8, NULL, 10);
        else if (strncmp(argv[i], "--size=", 7) == 0)
            B.size = strtoull(argv[i] + 7, NULL, 0);
        else {
            fprintf(stderr, "mds_bench: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (!mds || !etcd || B.n == 0 || conc == 0 || conc > BENCH_THREADS_MAX) {
        fprintf(stderr, "usage: mds_bench --mds=IP:PORT --etcd=URL [--n=N] "
                        "[--concurrency=1..%d] [--size=BYTES]\n", BENCH_THREADS_MAX);
        return 2;
    }
    pthread_mutex_init(&B.mu, NULL);
    etcd_client_opts o;
    etcd_client_opts_init(&o);
    curve_loop *loop;
    if (etcd_client_new(&etcd, 1, &o, &B.etcd) < 0 || curve_loop_new("bench", &loop) < 0 ||
        curve_loop_start(loop) < 0 || rpc_channel_new(loop, mds, NULL, &B.ch) < 0) {
        fprintf(stderr, "mds_bench: setup failed\n");
        return 1;
    }
    printf("# mds_bench: n=%" PRIu64 " concurrency=%u volume size=%" PRIu64 "\n", B.n, conc,
           B.size);
    etcd_put_result pr;
    etcd_delete(B.etcd, "/bench/fence", NULL, false, false, NULL); /* new create revision */
    if (etcd_put(B.etcd, "/bench/fence", "f", 1, 0, false, &pr) < 0) {
        fprintf(stderr, "mds_bench: etcd put failed: %s\n", etcd_last_error());
        return 1;
    }
    B.fence_rev = pr.revision;
    etcd_put_result_free(&pr);
    int rc = 0;
    for (int p = 0; p < P_N; p++)
        if (run_phase((phase)p, conc) < 0)
            rc = 1;
    etcd_delete(B.etcd, "/bench/raw/", NULL, true, false, NULL);
    rpc_channel_close_sync(B.ch);
    curve_loop_stop(loop);
    curve_loop_join(loop);
    curve_loop_free(loop);
    etcd_client_free(B.etcd);
    return rc;
}
