/*
 * libcurve: the implementation of include/curve/curve.h (docs/client.md "Wiring").
 *
 * Threads
 * - "curve-mds": one loop per client owning the MDS channels and session timers.
 * - "curve-io<i>": client.io_threads loops; each open volume belongs to one of them. Its IO
 *   engine (volio), its transport and every AIO callback of the volume run there.
 * - Application threads submit AIOs (posted to the volume's loop) and make blocking calls
 *   (MDS calls go through rpc_call_sync; sync IO waits on a completion).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "client/chunk_transport.h"
#include "client/client_conf.h"
#include "client/fastpath.h"
#include "client/mds_client.h"
#include "client/metacache.h"
#include "client/volio.h"
#include "common/assert.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/metrics.h"
#include "curve/curve.h"
#include "curve/errors.h"
#include "mds.pb-c.h"

#define CURVE_EXPORT __attribute__((visibility("default")))

/* Labels longer than this are cut (Prometheus label values are bounded). */
#define VOL_LABEL_MAX 200

/* Set while an AIO callback runs on this thread: blocking calls then return -EDEADLK. */
static _Thread_local bool tls_in_cb;

struct curve_client {
    curve_client_conf conf;
    curve_mds_client *mds;
    curve_loop_group *loops;
    curve_chanmap *chans[CURVE_CLIENT_IO_THREADS_MAX]; /* one per IO loop */
    curve_metacache *mc;
    curve_unstable_tracker *unstable;
    curve_fastpath *fp; /* blocking fast path of sync IO (NULL: client.fast_path_inflight=0) */
    atomic_uint next_loop;
    atomic_uint next_vol_id;
    pthread_mutex_t lock; /* protects nvols */
    uint32_t nvols;
};

enum { OPS_READ, OPS_WRITE, OPS_DISCARD, OPS_FLUSH, OPS_N_ };
static const char *const op_names[OPS_N_] = {"read", "write", "discard", "flush"};

typedef struct vol_metrics {
    curve_latency *lat[OPS_N_];
    curve_rate *iops[OPS_N_];
    curve_rate *bw[2];       /* read, write */
    curve_counter *bytes[2]; /* read, write */
    curve_counter *retries[CURVE_CAUSE_COUNT_];
    curve_counter *slow;
    curve_counter *errors;
    curve_counter *fast; /* IOs completed by the fast path (fastpath.h) */
} vol_metrics;

struct curve_volume {
    curve_client *c;
    char path[CURVE_PATH_MAX + 1];
    unsigned flags;
    uint32_t id; /* per-client instance, for metric labels */
    curve_loop *loop;
    curve_chunk_transport tr;
    curve_volio *vio;
    curve_io_geom geom;        /* submit-side checks; volume_size below */
    atomic_uint_fast64_t size; /* bytes (grows with curve_fstat after an extend) */
    uint64_t file_id, epoch;
    curve_mds_session *sess;
    vol_metrics m;
    pthread_mutex_t lock; /* protects inflight, closing, fp_seq, fp_head/tail, parked */
    pthread_cond_t idle;  /* inflight reached 0 while closing */
    uint64_t inflight;    /* accepted AIOs whose callback has not returned, and fast-path IOs */
    bool closing;
    /* Fast-path writes in progress (ascending seq) and flushes waiting for them: a flush
     * covers every write submitted before it, also those a caller's thread is sending. */
    uint64_t fp_seq;
    struct fp_write *fp_head, *fp_tail;
    struct aio_req *parked; /* flushes not yet posted to the engine, FIFO */
    atomic_bool aborted;    /* curve_abort_io: every IO fails with CURVE_ERR_CANCELED */
    curve_loop_msg abort_msg;
};

/* A fast-path write in progress (on its caller's stack). */
typedef struct fp_write {
    struct fp_write *next, *prev;
    uint64_t seq;
} fp_write;

/* One accepted AIO inside the library. */
typedef struct aio_req {
    curve_loop_msg msg;
    curve_volio_io io;
    struct curve_aio *aio;
    curve_volume *v;
    uint64_t t0_ns;
    /* a flush: the last fast-path write it covers, and the first error among those */
    uint64_t fp_mark;
    int fp_err;
    struct aio_req *next_parked;
    /* the failed first attempt of a fast-path IO handed to the engine (io.seed_*) */
    char seed_peer[CURVE_ADDR_MAX];
    char seed_hint[CURVE_ADDR_MAX];
} aio_req;

/* The first attempt a fast-path IO made, for the engine to continue from. */
typedef struct fp_seed {
    int status; /* 0: none */
    bool timed_out;
    const char *peer, *hint;
    uint64_t start_ns; /* when the attempt started (curve_now_mono_ns) */
} fp_seed;

CURVE_EXPORT const char *curve_version(void)
{
    return "0.1.0";
}

/* ---- helpers ----------------------------------------------------------------------------- */

static int check_path(const char *path)
{
    if (!path || path[0] != '/' || strlen(path) > CURVE_PATH_MAX)
        return -EINVAL;
    return 0;
}

static void fill_stat(const Curve__Mds__FileInfo *fi, struct curve_stat *st)
{
    memset(st, 0, sizeof(*st));
    st->id = fi->id;
    st->parent_id = fi->parent_id;
    st->type =
        fi->type == CURVE__MDS__FILE_TYPE__FILE_DIR ? CURVE_FILE_DIRECTORY : CURVE_FILE_VOLUME;
    st->size = st->type == CURVE_FILE_VOLUME ? fi->size : 0;
    st->chunk_size = fi->chunk_size;
    st->segment_size = fi->segment_size;
    st->ctime_ns = fi->ctime_ns;
    st->epoch = fi->epoch;
    st->open_count = fi->has_open_count ? fi->open_count : 0; /* Stat and ListDir only */
    snprintf(st->owner, sizeof(st->owner), "%s", fi->owner ? fi->owner : "");
    snprintf(st->name, sizeof(st->name), "%s", fi->name && *fi->name ? fi->name : "/");
}

static int mds_call(curve_client *c, uint32_t svc, uint32_t method, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *desc, ProtobufCMessage **resp,
                    const char *what, const char *path)
{
    char err[CURVE_MDS_ERR_MAX];
    int rc = curve_mds_call(c->mds, svc, method, req, desc, resp, err, sizeof(err));
    if (rc != 0)
        CLOG_DEBUG("libcurve: %s '%s': %s", what, path ? path : "", err);
    return rc;
}

static int stat_path_ex(curve_client *c, const char *path, bool open_count,
                        Curve__Mds__FileInfo **out)
{
    Curve__Mds__PathRequest req = CURVE__MDS__PATH_REQUEST__INIT;
    req.path = (char *)path;
    req.has_open_count = open_count;
    req.open_count = open_count;
    return mds_call(c, CURVE_MDS_SVC_NAMESPACE, CURVE_MDS_NS_STAT, &req.base,
                    &curve__mds__file_info__descriptor, (ProtobufCMessage **)out, "stat", path);
}

static int stat_path(curve_client *c, const char *path, Curve__Mds__FileInfo **out)
{
    return stat_path_ex(c, path, false, out);
}

static void free_msg(void *m)
{
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
}

/* ---- client ------------------------------------------------------------------------------ */

CURVE_EXPORT int curve_client_init(const char *conf_path, const char *const *overrides,
                                   curve_client **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    curve_client *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    char err[512] = "";
    int rc = curve_client_conf_load(conf_path, overrides, &c->conf, err, sizeof(err));
    if (rc != 0) {
        CLOG_ERROR("libcurve: configuration: %s", err[0] ? err : curve_strerror(rc));
        goto err_after_alloc;
    }
    if (c->conf.log_path[0] && curve_log_open(c->conf.log_path) != 0)
        CLOG_WARN("libcurve: cannot open log file %s; logging to stderr", c->conf.log_path);
    curve_log_set_level(c->conf.log_level);
    rc =
        curve_metacache_new(c->conf.metacache_max_segments, c->conf.metacache_max_copysets, &c->mc);
    if (rc != 0)
        goto err_after_alloc;
    c->unstable = malloc(sizeof(*c->unstable));
    if (!c->unstable) {
        rc = -ENOMEM;
        goto err_after_mc;
    }
    rc = curve_unstable_init(c->unstable, c->conf.retry.unstable_timeout_threshold);
    if (rc != 0)
        goto err_after_unstable_alloc;
    if (c->conf.fast_path_inflight > 0) {
        rc = curve_fastpath_new(&c->fp);
        if (rc != 0)
            goto err_after_unstable;
    }
    rc = curve_mds_client_new(&c->conf, &c->mds);
    if (rc != 0)
        goto err_after_fp;
    rc = curve_loop_group_new("curve-io", c->conf.io_threads, &c->loops);
    if (rc != 0)
        goto err_after_mds;
    for (uint32_t i = 0; i < c->conf.io_threads; i++) {
        rc = curve_chanmap_new(curve_loop_group_get(c->loops, i), &c->chans[i]);
        if (rc != 0)
            goto err_after_chans;
    }
    pthread_mutex_init(&c->lock, NULL);
    *out = c;
    return 0;
err_after_chans:
    for (uint32_t i = 0; i < c->conf.io_threads; i++)
        curve_chanmap_free(c->chans[i]);
    curve_loop_group_free(c->loops);
err_after_mds:
    curve_mds_client_free(c->mds);
err_after_fp:
    curve_fastpath_free(c->fp);
err_after_unstable:
    curve_unstable_destroy(c->unstable);
err_after_unstable_alloc:
    free(c->unstable);
err_after_mc:
    curve_metacache_free(c->mc);
err_after_alloc:
    free(c);
    return rc;
}

CURVE_EXPORT int curve_client_destroy(curve_client *c)
{
    if (!c)
        return 0;
    if (tls_in_cb)
        return -EDEADLK;
    pthread_mutex_lock(&c->lock);
    uint32_t n = c->nvols;
    pthread_mutex_unlock(&c->lock);
    if (n > 0) {
        CLOG_ERROR("libcurve: client destroy refused: %u volumes still open", n);
        return -EBUSY;
    }
    for (uint32_t i = 0; i < c->conf.io_threads; i++)
        curve_chanmap_free(c->chans[i]);
    curve_loop_group_free(c->loops);
    curve_mds_client_free(c->mds);
    curve_fastpath_free(c->fp);
    curve_unstable_destroy(c->unstable);
    free(c->unstable);
    curve_metacache_free(c->mc);
    pthread_mutex_destroy(&c->lock);
    free(c);
    return 0;
}

/* ---- metrics ----------------------------------------------------------------------------- */

static void on_retry(void *ctx, curve_retry_cause cause)
{
    curve_volume *v = ctx;
    if (v->m.retries[cause])
        curve_counter_add(v->m.retries[cause], 1);
}

static void on_slow(void *ctx)
{
    curve_volume *v = ctx;
    if (v->m.slow)
        curve_counter_add(v->m.slow, 1);
}

static void metrics_register(curve_volume *v)
{
    curve_metrics *reg = curve_metrics_default();
    char vol[VOL_LABEL_MAX + 1], inst[32];
    snprintf(vol, sizeof(vol), "%.*s", VOL_LABEL_MAX, v->path);
    snprintf(inst, sizeof(inst), "%d-%u", (int)getpid(), v->id);
    int rc = 0;
    for (int i = 0; i < OPS_N_ && rc == 0; i++) {
        const char *l[] = {"volume", vol, "instance", inst, "op", op_names[i], NULL};
        rc = curve_metrics_latency(reg, "curve_client_io_latency_seconds",
                                   "latency of user IOs per volume and operation", l, NULL, 0,
                                   &v->m.lat[i]);
        if (rc == 0)
            rc = curve_metrics_rate(reg, "curve_client_iops",
                                    "user IOs per second per volume and operation", l, NULL, 0,
                                    &v->m.iops[i]);
        if (rc == 0 && i < 2)
            rc = curve_metrics_rate(reg, "curve_client_bandwidth_bytes_per_second",
                                    "bytes per second read or written per volume", l, NULL, 0,
                                    &v->m.bw[i]);
        if (rc == 0 && i < 2)
            rc = curve_metrics_counter(reg, "curve_client_io_bytes_total",
                                       "bytes read or written per volume", l, &v->m.bytes[i]);
    }
    for (int i = 0; i < CURVE_CAUSE_COUNT_ && rc == 0; i++) {
        const char *l[] = {"volume", vol,     "instance",
                           inst,     "cause", curve_retry_cause_name((curve_retry_cause)i),
                           NULL};
        rc = curve_metrics_counter(reg, "curve_client_retries_total",
                                   "chunk RPCs retried, by cause", l, &v->m.retries[i]);
    }
    const char *l[] = {"volume", vol, "instance", inst, NULL};
    if (rc == 0)
        rc = curve_metrics_counter(reg, "curve_client_slow_requests_total",
                                   "chunk requests retrying longer than the slow threshold", l,
                                   &v->m.slow);
    if (rc == 0)
        rc = curve_metrics_counter(reg, "curve_client_io_errors_total",
                                   "user IOs completed with an error", l, &v->m.errors);
    if (rc == 0)
        rc = curve_metrics_counter(reg, "curve_client_fast_path_ios_total",
                                   "sync IOs completed by one RPC from the caller's thread", l,
                                   &v->m.fast);
    if (rc != 0)
        CLOG_WARN("libcurve: metrics of '%s': %s (IO continues without some metrics)", v->path,
                  curve_strerror(rc));
}

static void metrics_unregister(curve_volume *v)
{
    for (int i = 0; i < OPS_N_; i++) {
        curve_latency_unregister(v->m.lat[i]);
        curve_rate_unregister(v->m.iops[i]);
    }
    for (int i = 0; i < 2; i++) {
        curve_rate_unregister(v->m.bw[i]);
        curve_counter_unregister(v->m.bytes[i]);
    }
    for (int i = 0; i < CURVE_CAUSE_COUNT_; i++)
        curve_counter_unregister(v->m.retries[i]);
    curve_counter_unregister(v->m.slow);
    curve_counter_unregister(v->m.errors);
    curve_counter_unregister(v->m.fast);
    memset(&v->m, 0, sizeof(v->m));
}

/* ---- AIO --------------------------------------------------------------------------------- */

/* The fence or session error of `v`, or 0. */
static int vol_fence_error(curve_volume *v)
{
    if (atomic_load(&v->tr.fenced))
        return CURVE_ERR_FENCED;
    return curve_mds_session_check(v->sess);
}

/* The error every new IO of `v` fails with, or 0. */
static int vol_io_error(curve_volume *v)
{
    if (atomic_load(&v->aborted))
        return CURVE_ERR_CANCELED;
    return vol_fence_error(v);
}

/* Records one finished user IO in the volume's metrics. Any thread. */
static void record_io(curve_volume *v, int op, uint64_t t0_ns, int err, uint64_t len)
{
    uint64_t us = (curve_now_mono_ns() - t0_ns) / 1000;
    if (v->m.lat[op])
        curve_latency_record(v->m.lat[op], us);
    if (v->m.iops[op])
        curve_rate_add(v->m.iops[op], 1);
    if (err == 0 && op < 2 && v->m.bw[op])
        curve_rate_add(v->m.bw[op], len);
    if (err == 0 && op < 2 && v->m.bytes[op])
        curve_counter_add(v->m.bytes[op], len);
    if (err != 0 && v->m.errors)
        curve_counter_add(v->m.errors, 1);
}

/* Completes an accepted AIO on the volume's loop. */
static void aio_complete(aio_req *r, int err)
{
    curve_volume *v = r->v;
    struct curve_aio *aio = r->aio;
    int op = (int)aio->op;
    aio->result =
        err != 0 ? err
                 : (aio->op == CURVE_OP_READ || aio->op == CURVE_OP_WRITE ? (int64_t)aio->len : 0);
    record_io(v, op, r->t0_ns, err, aio->len);
    free(r);
    tls_in_cb = true;
    aio->cb(aio); /* may free or reuse aio */
    tls_in_cb = false;
    pthread_mutex_lock(&v->lock);
    CURVE_ASSERT(v->inflight > 0);
    if (--v->inflight == 0 && v->closing)
        pthread_cond_broadcast(&v->idle);
    pthread_mutex_unlock(&v->lock);
}

static void volio_done_cb(curve_volio_io *io)
{
    aio_req *r = CURVE_CONTAINER_OF(io, aio_req, io);
    int err = io->result;
    if (err == 0 && r->aio->op == CURVE_OP_FLUSH)
        err = r->fp_err; /* a fast-path write it covered failed */
    if (err == CURVE_ERR_EPOCH_TOO_OLD || err == CURVE_ERR_FENCED)
        atomic_store(&r->v->tr.fenced, true);
    aio_complete(r, err);
}

static void aio_start(void *arg)
{
    aio_req *r = arg;
    curve_volume *v = r->v;
    struct curve_aio *aio = r->aio;
    int err = vol_io_error(v);
    if (err != 0) {
        aio_complete(r, err);
        return;
    }
    r->io.offset = aio->offset;
    r->io.len = aio->len;
    r->io.buf = aio->buf;
    r->io.cb = volio_done_cb;
    switch (aio->op) {
    case CURVE_OP_READ:
        r->io.op = CURVE_RETRY_OP_READ;
        break;
    case CURVE_OP_WRITE:
        r->io.op = CURVE_RETRY_OP_WRITE;
        break;
    default:
        r->io.op = CURVE_RETRY_OP_DISCARD;
        r->io.buf = NULL;
        break;
    }
    err = aio->op == CURVE_OP_FLUSH ? curve_volio_flush(v->vio, &r->io)
                                    : curve_volio_submit(v->vio, &r->io);
    if (err != 0)
        aio_complete(r, err); /* e.g. -ERANGE against a size that shrank: cannot happen */
}

static int aio_submit_seeded(curve_volume *v, struct curve_aio *aio, curve_op op,
                             const fp_seed *seed)
{
    if (!v || !aio || !aio->cb)
        return -EINVAL;
    if ((op == CURVE_OP_WRITE || op == CURVE_OP_DISCARD) && (v->flags & CURVE_OPEN_RDONLY))
        return -EBADF;
    if ((op == CURVE_OP_READ || op == CURVE_OP_WRITE) && !aio->buf)
        return -EINVAL;
    if (op != CURVE_OP_FLUSH) {
        curve_io_geom g = v->geom;
        g.volume_size = atomic_load(&v->size);
        int rc = curve_io_check(&g, aio->offset, aio->len);
        if (rc != 0)
            return rc;
    }
    aio_req *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->aio = aio;
    r->v = v;
    r->t0_ns = curve_now_mono_ns();
    r->msg.fn = aio_start;
    r->msg.arg = r;
    aio->op = op;
    aio->result = 0;
    aio->internal_[0] = (uint64_t)(uintptr_t)r;
    if (seed && seed->status != 0) {
        snprintf(r->seed_peer, sizeof(r->seed_peer), "%s", seed->peer);
        snprintf(r->seed_hint, sizeof(r->seed_hint), "%s", seed->hint ? seed->hint : "");
        r->io.seed_status = seed->status;
        r->io.seed_timed_out = seed->timed_out;
        r->io.seed_peer = r->seed_peer;
        r->io.seed_hint = r->seed_hint;
        r->io.seed_start_ns = seed->start_ns;
    }
    pthread_mutex_lock(&v->lock);
    if (v->closing) {
        pthread_mutex_unlock(&v->lock);
        free(r);
        return CURVE_ERR_SHUTDOWN;
    }
    v->inflight++;
    if (op == CURVE_OP_FLUSH) {
        r->fp_mark = v->fp_seq;
        if (v->fp_head && v->fp_head->seq <= r->fp_mark) {
            /* fast-path writes it covers are still being sent: posted when they finished */
            aio_req **pp = &v->parked;
            while (*pp)
                pp = &(*pp)->next_parked;
            *pp = r;
            pthread_mutex_unlock(&v->lock);
            return 0;
        }
    }
    pthread_mutex_unlock(&v->lock);
    if (curve_loop_post_msg(v->loop, &r->msg) != 0) {
        pthread_mutex_lock(&v->lock);
        v->inflight--;
        pthread_mutex_unlock(&v->lock);
        free(r);
        return CURVE_ERR_SHUTDOWN;
    }
    return 0;
}

static int aio_submit(curve_volume *v, struct curve_aio *aio, curve_op op)
{
    return aio_submit_seeded(v, aio, op, NULL);
}

CURVE_EXPORT int curve_aio_read(curve_volume *v, struct curve_aio *aio)
{
    return aio_submit(v, aio, CURVE_OP_READ);
}

CURVE_EXPORT int curve_aio_write(curve_volume *v, struct curve_aio *aio)
{
    return aio_submit(v, aio, CURVE_OP_WRITE);
}

CURVE_EXPORT int curve_aio_discard(curve_volume *v, struct curve_aio *aio)
{
    if (aio)
        aio->buf = NULL;
    return aio_submit(v, aio, CURVE_OP_DISCARD);
}

CURVE_EXPORT int curve_aio_flush(curve_volume *v, struct curve_aio *aio)
{
    if (aio)
        aio->buf = NULL;
    return aio_submit(v, aio, CURVE_OP_FLUSH);
}

/* ---- sync IO ----------------------------------------------------------------------------- */

/* A one-shot wake-up of the thread blocked in sync IO, on a bare futex: the IO loop makes one
 * FUTEX_WAKE (none if the caller has not gone to sleep yet). A mutex + condvar here cost a
 * second hand-off per IO: the woken caller immediately blocked on the mutex the loop still held
 * (seen in perf as lock waits of the nbdkit threads at QD32). */
enum { SYNC_PENDING = 0, SYNC_DONE = 1, SYNC_SLEEPING = 2 };

static void sync_wake(atomic_uint *st)
{
    if (atomic_exchange_explicit(st, SYNC_DONE, memory_order_release) == SYNC_SLEEPING)
        /* (the waiter may already have returned: a wake on its dead stack slot is harmless,
         * futex waiters always re-check their condition) */
        syscall(SYS_futex, st, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void sync_wait(atomic_uint *st)
{
    unsigned cur = SYNC_PENDING;
    if (!atomic_compare_exchange_strong_explicit(st, &cur, SYNC_SLEEPING, memory_order_acquire,
                                                 memory_order_acquire) &&
        cur == SYNC_DONE)
        return;
    while (atomic_load_explicit(st, memory_order_acquire) != SYNC_DONE)
        syscall(SYS_futex, st, FUTEX_WAIT_PRIVATE, SYNC_SLEEPING, NULL, NULL, 0);
}

typedef struct sync_req {
    struct curve_aio aio;
    atomic_uint state; /* SYNC_* */
} sync_req;

static void sync_cb(struct curve_aio *aio)
{
    sync_req *s = CURVE_CONTAINER_OF(aio, sync_req, aio);
    sync_wake(&s->state);
}

/* The engine path: an AIO and a wait for its callback. */
static int64_t slow_io(curve_volume *v, curve_op op, void *buf, uint64_t len, uint64_t off,
                       const fp_seed *seed)
{
    sync_req s;
    memset(&s, 0, sizeof(s));
    s.aio.buf = buf;
    s.aio.len = len;
    s.aio.offset = off;
    s.aio.cb = sync_cb;
    atomic_init(&s.state, SYNC_PENDING);
    int rc = aio_submit_seeded(v, &s.aio, op, seed);
    if (rc == 0)
        sync_wait(&s.state); /* the engine completes every accepted IO */
    return rc != 0 ? rc : s.aio.result;
}

/* ---- fast path (fastpath.h): one-piece sync reads and writes sent by the caller's thread --- */

/* Whether [off, off+len) can take the fast path; fills its chunk and leader. */
static bool fast_eligible(curve_volume *v, curve_op op, uint64_t len, uint64_t off,
                          curve_chunk_loc *loc, curve_peer *leader)
{
    const curve_io_geom *g = &v->geom;
    if (!v->c->fp || len == 0 || len > g->max_rpc_size ||
        off / g->chunk_size != (off + len - 1) / g->chunk_size)
        return false;
    if (op == CURVE_OP_WRITE && (v->flags & CURVE_OPEN_RDONLY))
        return false;
    curve_io_geom cg = *g;
    cg.volume_size = atomic_load(&v->size);
    if (curve_io_check(&cg, off, len) != 0 || vol_io_error(v) != 0)
        return false; /* the engine path reports it */
    uint64_t seg = off / g->segment_size;
    uint32_t cis = (uint32_t)((off % g->segment_size) / g->chunk_size);
    bool may_change = true;
    return curve_metacache_get_chunk(v->c->mc, v->file_id, seg, cis, loc) == 0 &&
           curve_metacache_get_leader(v->c->mc, loc->pool_id, loc->copyset_id, leader,
                                      &may_change) == 0 &&
           !may_change; /* an unstable leader: the engine's short timeouts and re-resolution */
}

/* A fast-path IO is finished: unlink its write, post the flushes that no longer wait for it. */
static void fast_end(curve_volume *v, fp_write *w, int err)
{
    aio_req *ready = NULL, **rt = &ready;
    pthread_mutex_lock(&v->lock);
    if (w) {
        if (err != 0) /* flushes covering this write report its error */
            for (aio_req *p = v->parked; p; p = p->next_parked)
                if (p->fp_mark >= w->seq && p->fp_err == 0)
                    p->fp_err = err;
        if (w->prev)
            w->prev->next = w->next;
        else
            v->fp_head = w->next;
        if (w->next)
            w->next->prev = w->prev;
        else
            v->fp_tail = w->prev;
        uint64_t oldest = v->fp_head ? v->fp_head->seq : UINT64_MAX;
        while (v->parked && v->parked->fp_mark < oldest) { /* parked in mark order */
            aio_req *p = v->parked;
            v->parked = p->next_parked;
            p->next_parked = NULL;
            *rt = p;
            rt = &p->next_parked;
        }
    }
    CURVE_ASSERT(v->inflight > 0);
    if (--v->inflight == 0 && v->closing)
        pthread_cond_broadcast(&v->idle);
    pthread_mutex_unlock(&v->lock);
    while (ready) {
        aio_req *p = ready;
        ready = p->next_parked;
        int rc = curve_loop_post_msg(v->loop, &p->msg);
        CURVE_ASSERT(rc == 0); /* the IO loops outlive every open volume */
    }
}

/* Tries the fast path; returns false (nothing done) when the IO must take the engine path. */
static bool fast_io(curve_volume *v, curve_op op, void *buf, uint64_t len, uint64_t off,
                    int64_t *res)
{
    curve_chunk_loc loc;
    curve_peer leader;
    if (!fast_eligible(v, op, len, off, &loc, &leader))
        return false;
    uint64_t t0 = curve_now_mono_ns();
    fp_write w = {0};
    pthread_mutex_lock(&v->lock);
    /* Only while the volume is nearly idle: each fast-path call is a connection of its own at
     * the chunkserver, which then reads and answers the calls one by one, while the engine's
     * shared channel lets it take many requests per read and answer them with one write. With
     * more IO in flight the engine is cheaper for the cluster and faster (measured:
     * docs/client.md "Fast path"). */
    if (v->closing || v->inflight >= v->c->conf.fast_path_inflight) {
        pthread_mutex_unlock(&v->lock);
        return false; /* the engine path (which also refuses IO on a closing volume) */
    }
    v->inflight++;
    if (op == CURVE_OP_WRITE) {
        w.seq = ++v->fp_seq;
        w.prev = v->fp_tail;
        if (v->fp_tail)
            v->fp_tail->next = &w;
        else
            v->fp_head = &w;
        v->fp_tail = &w;
    }
    pthread_mutex_unlock(&v->lock);

    const curve_io_geom *g = &v->geom;
    curve_fastpath_call c = {
        .op = op == CURVE_OP_WRITE ? CURVE_RETRY_OP_WRITE : CURVE_RETRY_OP_READ,
        .addr = leader.addr,
        .pool_id = loc.pool_id,
        .copyset_id = loc.copyset_id,
        .chunk_id = loc.chunk_id,
        .chunk_off = (uint32_t)(off % g->chunk_size),
        .len = (uint32_t)len,
        .buf = buf,
        .file_id = v->file_id,
        .has_epoch = v->tr.writer, /* readers are never fenced: no epoch */
        .epoch = v->tr.writer ? v->epoch : 0,
        .timeout_ms = (uint32_t)v->c->conf.retry.rpc_timeout_ms,
    };
    curve_fastpath_do(v->c->fp, &c);
    int st = c.status;
    if (st == CURVE_ERR_CHUNK_NOTEXIST && op == CURVE_OP_READ) {
        memset(buf, 0, len); /* never written: zeros (DESIGN §4) */
        st = 0;
    }
    if (st == 0) {
        if (v->c->unstable)
            curve_unstable_on_success(v->c->unstable, leader.cs_id);
        record_io(v, op, t0, 0, len);
        if (v->m.fast)
            curve_counter_add(v->m.fast, 1);
        *res = (int64_t)len;
    } else {
        /* the engine continues from this first attempt under the retry policy */
        if (st != CURVE_ERR_CHUNK_NOTEXIST && !curve_retry_status_is_fatal(st))
            on_retry(v, curve_retry_cause_of(st, c.timed_out));
        fp_seed seed = {.status = st,
                        .timed_out = c.timed_out,
                        .peer = leader.addr,
                        .hint = c.hint,
                        .start_ns = t0};
        *res = slow_io(v, op, buf, len, off, &seed);
    }
    fast_end(v, op == CURVE_OP_WRITE ? &w : NULL, *res < 0 ? (int)*res : 0);
    return true;
}

static int64_t sync_io(curve_volume *v, curve_op op, void *buf, uint64_t len, uint64_t off)
{
    if (tls_in_cb)
        return -EDEADLK;
    int64_t res;
    if (v && buf && (op == CURVE_OP_READ || op == CURVE_OP_WRITE) &&
        fast_io(v, op, buf, len, off, &res))
        return res;
    return slow_io(v, op, buf, len, off, NULL);
}

CURVE_EXPORT ssize_t curve_pread(curve_volume *v, void *buf, size_t len, uint64_t offset)
{
    return (ssize_t)sync_io(v, CURVE_OP_READ, buf, len, offset);
}

CURVE_EXPORT ssize_t curve_pwrite(curve_volume *v, const void *buf, size_t len, uint64_t offset)
{
    return (ssize_t)sync_io(v, CURVE_OP_WRITE, (void *)buf, len, offset);
}

CURVE_EXPORT int curve_discard(curve_volume *v, uint64_t offset, uint64_t len)
{
    return (int)sync_io(v, CURVE_OP_DISCARD, NULL, len, offset);
}

CURVE_EXPORT int curve_flush(curve_volume *v)
{
    return (int)sync_io(v, CURVE_OP_FLUSH, NULL, 0, 0);
}

/* ---- open / close ------------------------------------------------------------------------ */

static int geom_from_file(const curve_client *c, const Curve__Mds__FileInfo *fi, curve_io_geom *g)
{
    g->volume_size = fi->size;
    g->segment_size = fi->segment_size;
    g->chunk_size = fi->chunk_size;
    g->align = c->conf.allow_512 ? 512 : 4096;
    g->max_rpc_size = c->conf.max_rpc_size < fi->chunk_size ? c->conf.max_rpc_size : fi->chunk_size;
    return curve_io_geom_validate(g);
}

static void vol_free_engine(void *arg)
{
    curve_volume *v = arg;
    CURVE_ASSERT(v->tr.outstanding == 0);
    curve_volio_free(v->vio);
    v->vio = NULL;
}

CURVE_EXPORT int curve_open(curve_client *c, const char *path, unsigned flags, curve_volume **out)
{
    if (!c || !out)
        return -EINVAL;
    *out = NULL;
    if (tls_in_cb)
        return -EDEADLK;
    if (check_path(path) != 0 || (flags & ~(CURVE_OPEN_RDONLY | CURVE_OPEN_EXCLUSIVE)) ||
        ((flags & CURVE_OPEN_RDONLY) && (flags & CURVE_OPEN_EXCLUSIVE)))
        return -EINVAL;
    Curve__Mds__OpenRequest req = CURVE__MDS__OPEN_REQUEST__INIT;
    req.path = (char *)path;
    req.has_exclusive = 1;
    req.exclusive = (flags & CURVE_OPEN_EXCLUSIVE) != 0;
    req.has_read_only = 1;
    req.read_only = (flags & CURVE_OPEN_RDONLY) != 0;
    /* Identifies this opener to the MDS, so a retried Open (or a later re-open) is not refused
     * as busy by the session its own earlier attempt created (docs/sessions.md). */
    char token[CURVE_MDS_TOKEN_MAX + 1];
    if (curve_mds_token_new(token, sizeof(token)) < 0)
        return -EINVAL;
    req.client_token = token;
    Curve__Mds__OpenResponse *resp = NULL;
    int rc =
        mds_call(c, CURVE_MDS_SVC_NAMESPACE, CURVE_MDS_NS_OPEN, &req.base,
                 &curve__mds__open_response__descriptor, (ProtobufCMessage **)&resp, "open", path);
    if (rc == CURVE_ERR_INVALID_REQUEST) {
        Curve__Mds__FileInfo *fi = NULL;
        if (stat_path(c, path, &fi) == 0 && fi->type == CURVE__MDS__FILE_TYPE__FILE_DIR)
            rc = -EISDIR;
        free_msg(fi);
    }
    if (rc != 0) {
        CLOG_ERROR("libcurve: open '%s': %s", path, curve_strerror(rc));
        return rc;
    }
    curve_volume *v = calloc(1, sizeof(*v));
    if (!v) {
        rc = -ENOMEM;
        goto err_after_open;
    }
    v->c = c;
    snprintf(v->path, sizeof(v->path), "%s", path);
    v->flags = flags;
    v->id = atomic_fetch_add(&c->next_vol_id, 1);
    const Curve__Mds__FileInfo *fi = resp->file;
    if (!fi || fi->type != CURVE__MDS__FILE_TYPE__FILE_VOLUME || geom_from_file(c, fi, &v->geom)) {
        CLOG_ERROR("libcurve: open '%s': the MDS answered a bad file record (size %llu, "
                   "segment %u, chunk %u)",
                   path, fi ? (unsigned long long)fi->size : 0ull, fi ? fi->segment_size : 0,
                   fi ? fi->chunk_size : 0);
        rc = CURVE_ERR_RPC_PROTO;
        goto err_after_vol;
    }
    v->file_id = fi->id;
    v->epoch = fi->epoch;
    atomic_init(&v->size, fi->size);
    rc = curve_mds_session_start(c->mds, path, resp->session_id, resp->lease_ms,
                                 c->conf.session_expire_ms, v->file_id, v->epoch,
                                 (flags & CURVE_OPEN_RDONLY) != 0, token, &v->sess);
    if (rc != 0)
        goto err_after_vol;
    unsigned li = atomic_fetch_add(&c->next_loop, 1) % c->conf.io_threads;
    v->loop = curve_loop_group_get(c->loops, li);
    v->tr.loop = v->loop;
    v->tr.chans = c->chans[li];
    v->tr.mds = c->mds;
    v->tr.mc = c->mc;
    v->tr.path = v->path;
    v->tr.file_id = v->file_id;
    v->tr.epoch = v->epoch;
    v->tr.writer = !(flags & CURVE_OPEN_RDONLY);
    v->tr.geom = v->geom;
    v->tr.leader_timeout_ms = c->conf.retry.rpc_timeout_ms;
    v->tr.on_retry = on_retry;
    v->tr.cb_ctx = v;
    atomic_init(&v->tr.fenced, false);
    curve_volio_env env = {.mc = c->mc,
                           .unstable = c->unstable,
                           .opts = &c->conf.retry,
                           .clock = curve_clock_system(),
                           .geom = v->geom,
                           .file_id = v->file_id,
                           .epoch = v->epoch,
                           .max_inflight = c->conf.max_inflight_rpcs,
                           .ops = &curve_chunk_transport_ops,
                           .ops_ctx = &v->tr,
                           .on_slow = on_slow,
                           .slow_ctx = v};
    rc = curve_volio_new(&env, &v->vio);
    if (rc != 0)
        goto err_after_session;
    pthread_mutex_init(&v->lock, NULL);
    pthread_cond_init(&v->idle, NULL);
    metrics_register(v);
    pthread_mutex_lock(&c->lock);
    c->nvols++;
    pthread_mutex_unlock(&c->lock);
    CLOG_INFO("libcurve: opened '%s' (id %llu, epoch %llu, %llu bytes%s%s) on %s", path,
              (unsigned long long)v->file_id, (unsigned long long)v->epoch,
              (unsigned long long)fi->size, flags & CURVE_OPEN_RDONLY ? ", read-only" : "",
              flags & CURVE_OPEN_EXCLUSIVE ? ", exclusive" : "", curve_loop_name(v->loop));
    free_msg(resp);
    *out = v;
    return 0;
err_after_session:
    curve_mds_session_stop(v->sess, false);
    free(v);
    free_msg(resp);
    return rc;
err_after_vol:
    free(v);
err_after_open:
    /* end the session the MDS opened */
    {
        Curve__Mds__SessionRequest sreq = CURVE__MDS__SESSION_REQUEST__INIT;
        sreq.path = (char *)path;
        sreq.session_id = resp->session_id;
        mds_call(c, CURVE_MDS_SVC_NAMESPACE, CURVE_MDS_NS_CLOSE, &sreq.base,
                 &curve__mds__empty__descriptor, NULL, "close", path);
    }
    free_msg(resp);
    return rc;
}

CURVE_EXPORT int curve_close(curve_volume *v)
{
    if (!v)
        return -EINVAL;
    if (tls_in_cb)
        return -EDEADLK;
    pthread_mutex_lock(&v->lock);
    v->closing = true;
    while (v->inflight > 0) /* every accepted AIO completes (the engine has no lost path) */
        pthread_cond_wait(&v->idle, &v->lock);
    pthread_mutex_unlock(&v->lock);
    int rc = curve_loop_call_sync(v->loop, vol_free_engine, v);
    CURVE_ASSERT(rc == 0);
    int err = vol_fence_error(v);
    /* aborted: the cluster is presumably not answering; the MDS ends the session when its lease
     * runs out instead of this call waiting client.mds.call_deadline_ms for the Close */
    rc = curve_mds_session_stop(v->sess, atomic_load(&v->aborted));
    if (err == 0 && rc == CURVE_ERR_SESSION_EXPIRED)
        err = rc;
    if (err == CURVE_ERR_SESSION_EXPIRED && atomic_load(&v->tr.fenced))
        err = CURVE_ERR_FENCED;
    metrics_unregister(v);
    curve_metacache_invalidate_file(v->c->mc, v->file_id);
    curve_client *c = v->c;
    pthread_mutex_lock(&c->lock);
    c->nvols--;
    pthread_mutex_unlock(&c->lock);
    CLOG_INFO("libcurve: closed '%s'%s%s", v->path, err ? ": " : "",
              err ? curve_strerror(err) : "");
    pthread_cond_destroy(&v->idle);
    pthread_mutex_destroy(&v->lock);
    free(v);
    return err;
}

static void vol_abort(void *arg)
{
    curve_volume *v = arg;
    curve_volio_cancel(v->vio, CURVE_ERR_CANCELED);
    curve_chunk_transport_wake_sleepers(&v->tr);
}

CURVE_EXPORT int curve_abort_io(curve_volume *v)
{
    if (!v)
        return -EINVAL;
    if (atomic_exchange(&v->aborted, true))
        return 0; /* already done */
    CLOG_WARN("libcurve: '%s': IO aborted by the application: every pending and later IO fails "
              "with %s", v->path, curve_errname(CURVE_ERR_CANCELED));
    v->abort_msg.fn = vol_abort;
    v->abort_msg.arg = v;
    int rc = curve_loop_post_msg(v->loop, &v->abort_msg);
    CURVE_ASSERT(rc == 0); /* the IO loops outlive every open volume */
    return 0;
}

/* ---- metadata ---------------------------------------------------------------------------- */

CURVE_EXPORT int curve_stat(curve_client *c, const char *path, struct curve_stat *st)
{
    if (!c || !st)
        return -EINVAL;
    if (tls_in_cb)
        return -EDEADLK;
    if (check_path(path) != 0)
        return -EINVAL;
    Curve__Mds__FileInfo *fi = NULL;
    int rc = stat_path_ex(c, path, true, &fi);
    if (rc == 0)
        fill_stat(fi, st);
    free_msg(fi);
    return rc;
}

typedef struct set_size_arg {
    curve_volume *v;
    uint64_t size;
} set_size_arg;

static void vol_set_size(void *arg)
{
    set_size_arg *a = arg;
    if (curve_volio_set_size(a->v->vio, a->size) == 0)
        atomic_store(&a->v->size, a->size);
}

CURVE_EXPORT int curve_fstat(curve_volume *v, struct curve_stat *st)
{
    if (!v || !st)
        return -EINVAL;
    if (tls_in_cb)
        return -EDEADLK;
    int rc = curve_stat(v->c, v->path, st);
    if (rc != 0)
        return rc;
    if (st->id == v->file_id && st->size > atomic_load(&v->size)) {
        set_size_arg a = {.v = v, .size = st->size};
        curve_loop_call_sync(v->loop, vol_set_size, &a);
    }
    return 0;
}

CURVE_EXPORT int curve_block_status(curve_volume *v, uint64_t offset, uint64_t *start,
                                    uint64_t *len)
{
    if (!v || !start || !len)
        return -EINVAL;
    if (tls_in_cb)
        return -EDEADLK;
    uint64_t size = atomic_load(&v->size);
    if (offset >= size)
        return -ERANGE;
    uint64_t seg_size = v->geom.segment_size;
    uint64_t seg = offset / seg_size;
    *start = seg * seg_size;
    *len = size - *start < seg_size ? size - *start : seg_size;
    curve_chunk_loc loc;
    if (curve_metacache_get_chunk(v->c->mc, v->file_id, seg, 0, &loc) == 0)
        return 1; /* cached: allocated (unallocated segments are never cached) */
    Curve__Mds__SegmentRequest req = CURVE__MDS__SEGMENT_REQUEST__INIT;
    req.path = v->path;
    req.offset = *start;
    req.has_allocate = 1;
    req.allocate = 0;
    Curve__Mds__SegmentResponse *sr = NULL;
    int rc = mds_call(v->c, CURVE_MDS_SVC_NAMESPACE, CURVE_MDS_NS_GET_SEGMENT, &req.base,
                      &curve__mds__segment_response__descriptor, (ProtobufCMessage **)&sr,
                      "block status", v->path);
    if (rc == CURVE_ERR_NOT_FOUND)
        return 0;
    if (rc != 0)
        return rc;
    bool same = sr->file_id == v->file_id;
    free_msg(sr);
    if (!same) {
        CLOG_ERROR("libcurve: block status of '%s': the path names another volume now", v->path);
        return CURVE_ERR_FENCED;
    }
    return 1;
}

/* ---- management -------------------------------------------------------------------------- */

#define NS(method, req, desc, resp, what, path)                                                    \
    mds_call(c, CURVE_MDS_SVC_NAMESPACE, method, &(req).base, desc, resp, what, path)

#define MGMT_PROLOGUE(c, path)                                                                     \
    do {                                                                                           \
        if (!(c))                                                                                  \
            return -EINVAL;                                                                        \
        if (tls_in_cb)                                                                             \
            return -EDEADLK;                                                                       \
        if (check_path(path) != 0)                                                                 \
            return -EINVAL;                                                                        \
    } while (0)

CURVE_EXPORT int curve_create(curve_client *c, const char *path, uint64_t size)
{
    MGMT_PROLOGUE(c, path);
    Curve__Mds__CreateVolumeRequest req = CURVE__MDS__CREATE_VOLUME_REQUEST__INIT;
    req.path = (char *)path;
    req.size = size;
    req.owner = c->conf.owner;
    return NS(CURVE_MDS_NS_CREATE, req, &curve__mds__file_info__descriptor, NULL, "create", path);
}

CURVE_EXPORT int curve_delete(curve_client *c, const char *path, unsigned flags)
{
    MGMT_PROLOGUE(c, path);
    if (flags & ~CURVE_DELETE_FORCE)
        return -EINVAL;
    Curve__Mds__FileInfo *fi = NULL;
    int rc = stat_path(c, path, &fi);
    if (rc != 0)
        return rc;
    bool dir = fi->type == CURVE__MDS__FILE_TYPE__FILE_DIR;
    char binpath[CURVE_NAME_MAX + 64];
    snprintf(binpath, sizeof(binpath), "/RecycleBin/%s-%" PRIu64, fi->name, fi->id);
    free_msg(fi);
    if (dir)
        return -EISDIR;
    Curve__Mds__PathRequest req = CURVE__MDS__PATH_REQUEST__INIT;
    req.path = (char *)path;
    rc = NS(CURVE_MDS_NS_DELETE, req, &curve__mds__empty__descriptor, NULL, "delete", path);
    if (rc != 0 || !(flags & CURVE_DELETE_FORCE))
        return rc;
    req.path = binpath;
    return NS(CURVE_MDS_NS_PURGE, req, &curve__mds__empty__descriptor, NULL, "purge", binpath);
}

/* Reads directory `dir` from the MDS page by page (client.list_page_size entries per ListDir)
 * and calls fn(entry, ctx) for each entry in name order; a non-zero return of fn stops the
 * listing and is returned. Pages continue after the last name the previous page covered, so a
 * directory changed meanwhile may show a renamed entry twice or not at all. */
typedef int (*list_entry_fn)(const Curve__Mds__FileInfo *e, void *ctx);

static int list_pages(curve_client *c, const char *dir, list_entry_fn fn, void *ctx)
{
    char after[CURVE_NAME_MAX + 64] = "";
    for (;;) {
        Curve__Mds__ListDirRequest req = CURVE__MDS__LIST_DIR_REQUEST__INIT;
        req.path = (char *)dir;
        req.has_limit = true;
        req.limit = c->conf.list_page_size;
        if (after[0])
            req.start_after = after;
        Curve__Mds__ListDirResponse *ls = NULL;
        int rc = NS(CURVE_MDS_NS_LISTDIR, req, &curve__mds__list_dir_response__descriptor,
                    (ProtobufCMessage **)&ls, "list", dir);
        if (rc != 0)
            return rc;
        for (size_t i = 0; i < ls->n_entries && rc == 0; i++)
            rc = fn(ls->entries[i], ctx);
        bool more = ls->has_more && ls->more;
        if (rc == 0 && more) {
            /* the next page starts after the last name this one covered; it must move on */
            const char *last = ls->last_name;
            if (!last || strlen(last) >= sizeof(after) || strcmp(last, after) <= 0) {
                CLOG_ERROR("libcurve: list '%s': the MDS returned a page without a usable "
                           "last name after '%s'",
                           dir, after);
                rc = -EPROTO;
            } else {
                snprintf(after, sizeof(after), "%s", last);
            }
        }
        free_msg(ls);
        if (rc != 0 || !more)
            return rc;
    }
}

typedef struct {
    curve_list_cb cb;
    void *ctx;
} list_ctx;

static int list_one(const Curve__Mds__FileInfo *e, void *arg)
{
    list_ctx *l = arg;
    struct curve_stat st;
    fill_stat(e, &st);
    return l->cb(&st, l->ctx);
}

/* Recover's search of /RecycleBin: the most recently deleted candidate (file ids grow, so the
 * largest id) with the original name and parent, and the id asked for if any. */
typedef struct {
    const char *name;
    uint64_t dir_id, id;
    uint64_t best_id;
    char best_name[CURVE_NAME_MAX + 64];
} recover_ctx;

static int recover_one(const Curve__Mds__FileInfo *e, void *arg)
{
    recover_ctx *r = arg;
    const char *orig = e->original_name ? e->original_name : "";
    if (strcmp(orig, r->name) != 0 || e->parent_id != r->dir_id || (r->id != 0 && e->id != r->id))
        return 0;
    if (r->best_id == 0 || e->id > r->best_id) {
        if (!e->name || strlen(e->name) >= sizeof(r->best_name))
            return 0;
        r->best_id = e->id;
        snprintf(r->best_name, sizeof(r->best_name), "%s", e->name);
    }
    return 0;
}

CURVE_EXPORT int curve_recover(curve_client *c, const char *path, uint64_t id)
{
    MGMT_PROLOGUE(c, path);
    const char *slash = strrchr(path, '/');
    const char *name = slash + 1;
    if (!*name)
        return CURVE_ERR_BAD_NAME;
    char dir[CURVE_PATH_MAX + 1];
    size_t dl = slash == path ? 1 : (size_t)(slash - path);
    memcpy(dir, path, dl);
    dir[dl] = '\0';
    Curve__Mds__FileInfo *di = NULL;
    int rc = stat_path(c, dir, &di);
    if (rc != 0)
        return rc;
    uint64_t dir_id = di->id;
    free_msg(di);
    recover_ctx rc_ = {.name = name, .dir_id = dir_id, .id = id};
    rc = list_pages(c, "/RecycleBin", recover_one, &rc_);
    if (rc != 0)
        return rc;
    if (rc_.best_id == 0) {
        CLOG_ERROR("libcurve: recover '%s': nothing recoverable in /RecycleBin", path);
        return CURVE_ERR_NOT_FOUND;
    }
    char binpath[CURVE_NAME_MAX + 80];
    snprintf(binpath, sizeof(binpath), "/RecycleBin/%s", rc_.best_name);
    Curve__Mds__RecoverRequest req = CURVE__MDS__RECOVER_REQUEST__INIT;
    req.path = binpath;
    return NS(CURVE_MDS_NS_RECOVER, req, &curve__mds__file_info__descriptor, NULL, "recover", path);
}

CURVE_EXPORT int curve_rename(curve_client *c, const char *oldpath, const char *newpath)
{
    MGMT_PROLOGUE(c, oldpath);
    if (check_path(newpath) != 0)
        return -EINVAL;
    Curve__Mds__RenameRequest req = CURVE__MDS__RENAME_REQUEST__INIT;
    req.from = (char *)oldpath;
    req.to = (char *)newpath;
    return NS(CURVE_MDS_NS_RENAME, req, &curve__mds__empty__descriptor, NULL, "rename", oldpath);
}

CURVE_EXPORT int curve_extend(curve_client *c, const char *path, uint64_t new_size)
{
    MGMT_PROLOGUE(c, path);
    Curve__Mds__ExtendRequest req = CURVE__MDS__EXTEND_REQUEST__INIT;
    req.path = (char *)path;
    req.size = new_size;
    return NS(CURVE_MDS_NS_EXTEND, req, &curve__mds__file_info__descriptor, NULL, "extend", path);
}

CURVE_EXPORT int curve_mkdir(curve_client *c, const char *path)
{
    MGMT_PROLOGUE(c, path);
    Curve__Mds__MkdirRequest req = CURVE__MDS__MKDIR_REQUEST__INIT;
    req.path = (char *)path;
    req.owner = c->conf.owner;
    return NS(CURVE_MDS_NS_MKDIR, req, &curve__mds__file_info__descriptor, NULL, "mkdir", path);
}

CURVE_EXPORT int curve_rmdir(curve_client *c, const char *path)
{
    MGMT_PROLOGUE(c, path);
    if (strcmp(path, "/") == 0 || strcmp(path, "/RecycleBin") == 0)
        return -EBUSY;
    Curve__Mds__FileInfo *fi = NULL;
    int rc = stat_path(c, path, &fi);
    if (rc != 0)
        return rc;
    bool dir = fi->type == CURVE__MDS__FILE_TYPE__FILE_DIR;
    free_msg(fi);
    if (!dir)
        return -ENOTDIR;
    Curve__Mds__PathRequest req = CURVE__MDS__PATH_REQUEST__INIT;
    req.path = (char *)path;
    return NS(CURVE_MDS_NS_DELETE, req, &curve__mds__empty__descriptor, NULL, "rmdir", path);
}

CURVE_EXPORT int curve_list(curve_client *c, const char *dir, curve_list_cb cb, void *ctx)
{
    MGMT_PROLOGUE(c, dir);
    if (!cb)
        return -EINVAL;
    list_ctx l = {.cb = cb, .ctx = ctx};
    return list_pages(c, dir, list_one, &l);
}
