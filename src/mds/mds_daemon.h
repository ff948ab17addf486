/*
 * curve-mds daemon internals (docs/mds.md "Daemon"): shared state of the modules
 * mds_main.c (startup, election, admin), mds_store.c (etcd persistence), mds_namespace.c,
 * mds_topology_svc.c, mds_heartbeat_svc.c and mds_scheduler_run.c.
 *
 * Threads:
 *   - main thread: configuration, election events, etcd probe, signals;
 *   - election campaign thread (src/etcd/election.h): leader_cb / lost_cb;
 *   - RPC loops (curve_loop_group): decode requests, never block; every handler is queued on
 *     the worker pool (mds_submit) because handlers make blocking etcd calls;
 *   - worker pool threads: run the handlers (any number at once);
 *   - background thread (mds_scheduler_run.c): heartbeat tick, schedulers, copyset creation on
 *     chunkservers, purge of deleted volumes. Runs only on the leader.
 *
 * Locks (always taken in this order, never held across an RPC to a chunkserver):
 *   ids_lock   protects chunk_ids and file_ids (held across the etcd CAS of a refill);
 *   lock       protects topo, ops, rng, hbres, pending_create (never held across etcd calls);
 *   persist_lock  orders topology writes to etcd (taken while holding `lock`, so that record
 *              versions reach etcd in the order they were produced, then `lock` is released
 *              and the write runs).
 */
#ifndef CURVE_MDS_DAEMON_H
#define CURVE_MDS_DAEMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "admin/admin.h"
#include "common/config.h"
#include "common/metrics.h"
#include "etcd/election.h"
#include "etcd/etcd.h"
#include "loop/loop.h"
#include "mds/heartbeat.h"
#include "mds/namespace_rules.h"
#include "mds/placement.h"
#include "mds/scheduler.h"
#include "mds/slownode.h"
#include "mds/topology.h"
#include "rpc/rpc_channel.h"
#include "rpc/rpc_server.h"

#define MDS_HEARTBEAT_SERVICE_ID 30u
#define MDS_TOPOLOGY_SERVICE_ID 31u
#define MDS_NAMESPACE_SERVICE_ID 32u
#define MDS_STATUS_SERVICE_ID 33u
#define MDS_COPYSET_SERVICE_ID 12u /* on chunkservers (proto/copyset.proto) */
#define MDS_CHUNK_SERVICE_ID 10u   /* on chunkservers (proto/chunk.proto) */

#define MDS_KEY_MAX 512          /* bytes of an etcd key built by the MDS */
#define MDS_TXN_BATCH 100        /* puts per etcd transaction when storing many records */
#define MDS_CHANNELS_MAX 1024    /* cached RPC channels to chunkservers */
#define MDS_CREATE_PER_RUN 256   /* CreateCopyset RPCs per background run */
#define MDS_PURGE_CHUNKS_PER_RUN 1024 /* DeleteChunk RPCs per background run */
#define MDS_LIST_PAGE_DEFAULT 1000u /* entries of a ListDir page when the request sets no limit */
#define MDS_LIST_PAGE_MAX 4000u     /* most entries of one ListDir page (bounds the reply) */
#define MDS_LIST_ENTRY_MAX_BYTES 800u /* an encoded FileInfo with every string at its maximum */
#define MDS_RETRY_TXN 8          /* retries of a namespace txn that lost a race */
#define MDS_ETCD_CLIENTS 8      /* data etcd clients (see mds_daemon.etcds) */
#define MDS_NSCACHE_MAX 32768   /* namespace entries cached by (parent id, name) */
#define MDS_SEGCACHE_MAX 16384  /* segment records cached by (file id, offset) */
#define MDS_SEGCACHE_REC_MAX 4096 /* larger segment records are not cached */
#define MDS_PREPARED_MAX 4096   /* operators remembered as prepared (ring) */
#define MDS_PREPARE_PER_RUN 64  /* CreateCopyset RPCs for new peers per background run */
#define MDS_SESSION_FILES_MAX 65536 /* slots of the "may have sessions" set (half usable) */
#define MDS_ADDR_MAX 96 /* "host:port:0" with a host of up to MDS_HOST_MAX */

#define MDS_PREFIX "/curve/v1/"
#define MDS_NS_PREFIX MDS_PREFIX "ns/"
#define MDS_SEG_PREFIX MDS_PREFIX "seg/"
#define MDS_SESSION_PREFIX MDS_PREFIX "session/"
#define MDS_WRITER_PREFIX MDS_PREFIX "writer/" /* <file id>: current read-write session */
#define MDS_IDS_CHUNK MDS_PREFIX "ids/chunk"
#define MDS_IDS_FILE MDS_PREFIX "ids/file"
#define MDS_FILE_ID_FIRST 16 /* ids below are reserved: 1 = "/", 2 = "/RecycleBin" */
#define MDS_RECYCLE_ID 2

typedef struct mds_daemon mds_daemon;

typedef struct mds_metrics {
    curve_counter *rpc_ok, *rpc_err, *hb, *hb_err, *ops_created, *ops_done, *ops_failed,
        *ops_expired, *alerts_majority, *alerts_nocand, *copysets_created, *chunks_purged,
        *etcd_errors, *open_busy;
    curve_latency *ns_lat, *hb_lat;
} mds_metrics;

struct mds_daemon {
    curve_config *cfg;
    /* data clients (default timeouts): several, because each keeps at most
     * ETCD_HANDLE_POOL_MAX idle connections and the workers outnumber that; a thread always
     * uses the same one (mds_etcd) */
    etcd_client *etcds[MDS_ETCD_CLIENTS];
    size_t netcds;
    etcd_client *el_etcd; /* election client (short timeouts) */
    election *el;
    curve_admin *admin;
    curve_loop_group *loops;
    curve_workpool *wp;
    rpc_server *srv;
    curve_loop *cli_loop; /* channels to chunkservers */
    char rpc_addr[MDS_ADDR_MAX];
    atomic_bool serving;
    atomic_bool etcd_ok;
    atomic_bool stop_bg;

    pthread_mutex_t ids_lock;
    mds_idalloc chunk_ids, file_ids;
    uint64_t chunk_id_batch, file_id_batch;

    pthread_mutex_t lock;
    mds_topology topo;
    mds_optable ops;
    mds_rng rng;
    mds_hb_result *hbres;
    uint64_t pending_purge;
    /* ids of add/change operators whose new peer already has the copyset (CreateCopyset with
     * no peers: it joins as a learner); only those are sent to leaders. Ring of
     * MDS_PREPARED_MAX, under `lock`. */
    uint64_t prepared[MDS_PREPARED_MAX];
    size_t nprepared;
    pthread_mutex_t persist_lock;

    mds_ns_size_cfg sizes;
    mds_hb_cfg hbcfg;
    mds_sched_cfg schedcfg;
    uint32_t session_lease_ms;
    uint64_t placement_wait_ms;
    bool prepare_peers; /* CreateCopyset on a new peer before its operator is sent */
    /* Slow chunkservers (slownode.h): the mds.slow.* keys, and the tracker, under `lock`
     * (initialised from slowcfg by mds_slow_glue_reset on first use; reset on becoming
     * leader). */
    mds_slow_cfg slowcfg;
    mds_slow_tracker slow;
    bool slow_init;
    atomic_uint_fast64_t last_topo_change_ms; /* monotonic: last apply or registration */

    pthread_t bg;
    bool bg_started;
    pthread_mutex_t bg_mu; /* with bg_cv: wakes the background thread early (stop) */
    pthread_cond_t bg_cv;

    pthread_mutex_t ch_lock; /* protects the channel cache */
    struct {
        char addr[MDS_ADDR_MAX];
        rpc_channel *ch;
    } channels[MDS_CHANNELS_MAX];
    size_t nchannels;

    mds_metrics m;
};

/* ---- RPC plumbing (mds_main.c) ---- */

/* A handler body run on a worker thread. It must reply to ctx exactly once. */
typedef void (*mds_work_fn)(mds_daemon *d, rpc_call_ctx *ctx, const ProtobufCMessage *req);
/* Queues fn on the worker pool (replies CURVE_ERR_BUSY when the pool is full) after checking
 * leadership (CURVE_ERR_NOT_LEADER). Called from RPC loops. */
void mds_submit(mds_daemon *d, rpc_call_ctx *ctx, const ProtobufCMessage *req, mds_work_fn fn);
/* Replies `rc` (<0) with a message, counting the error. Any thread. */
void mds_reply_err(mds_daemon *d, rpc_call_ctx *ctx, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void mds_reply_ok(mds_daemon *d, rpc_call_ctx *ctx, const ProtobufCMessage *resp);
/* Channel to a chunkserver (cached, bounded). NULL on error. Any thread. */
rpc_channel *mds_channel(mds_daemon *d, const char *addr);

/* ---- etcd store (mds_store.c) ---- */

/* The data etcd client of the calling thread. */
etcd_client *mds_etcd(mds_daemon *d);

/* Runs a txn with the election fence added to `cmp`. *succeeded tells whether the compares
 * held (a fence failure also reads as false: check mds_fence_ok). Returns 0 or an etcd error
 * (CURVE_ERR_NOT_LEADER when the fence cannot be built). */
int mds_txn(mds_daemon *d, const etcd_compare *cmp, size_t ncmp, const etcd_op *succ,
            size_t nsucc, const etcd_op *fail, size_t nfail, etcd_txn_result *out);
/* Puts key/value pairs in fenced transactions of MDS_TXN_BATCH. */
int mds_put_many(mds_daemon *d, char **keys, char **vals, size_t n);
/* Reserves `n` more ids for `a` from the counter `key` (CAS loop). Call with ids_lock held. */
int mds_ids_refill(mds_daemon *d, const char *key, mds_idalloc *a, uint64_t n);
/* Takes one id from `a`, refilling from `key` as needed. Takes ids_lock. */
int mds_ids_take(mds_daemon *d, const char *key, mds_idalloc *a, uint64_t n, uint64_t *out);
/* Loads the topology from etcd into d->topo (on becoming leader). */
int mds_store_load_topology(mds_daemon *d, char *err, size_t errlen);
/* Builds key+JSON of a topology record into the arrays (caller frees). */
int mds_store_record(mds_topo_kind k, const void *rec, char **key, char **val);
/* Ensures "/RecycleBin" exists (on becoming leader). */
int mds_store_init_namespace(mds_daemon *d);

/* ---- services ---- */
extern const rpc_method_def mds_namespace_methods[];
extern const size_t mds_namespace_nmethods;
extern const rpc_method_def mds_topology_methods[];
extern const size_t mds_topology_nmethods;
extern const rpc_method_def mds_status_methods[];
extern const size_t mds_status_nmethods;
extern const rpc_method_def mds_heartbeat_methods[];
extern const size_t mds_heartbeat_nmethods;

/* Persists the records of every kind but copysets (after ApplyTopology). Takes the locks. */
int mds_topo_persist_all(mds_daemon *d, bool with_copysets);
/* Writes the given records: called with d->lock held; releases it (see persist_lock). */
int mds_persist_unlock(mds_daemon *d, char **keys, char **vals, size_t n);

/* Places the copysets of logical pools not created yet and stores them; returns the number of
 * pools placed (ids into placed[0..max)) or an error (mds_topology_svc.c). */
int mds_place_pending(mds_daemon *d, uint32_t *placed, size_t max);
/* Logs and counts finished operators (mds_heartbeat_svc.c). Any thread. */
void mds_log_op_events(mds_daemon *d, const mds_op_event *ev, size_t n);

/* True when operator `op` may be sent to the copyset leader: not an add/change, or its new
 * peer was prepared. Call with d->lock held (mds_scheduler_run.c). */
bool mds_op_prepared(const mds_daemon *d, const mds_operator *op);

/* ---- background (mds_scheduler_run.c) ---- */
int mds_bg_start(mds_daemon *d);
void mds_bg_stop(mds_daemon *d);

/* Purge pass (mds_namespace.c): deletes chunks of volumes marked deleting; returns the number
 * of volumes still pending. Background thread only. */
uint64_t mds_purge_run(mds_daemon *d);

/* Forgets the namespace entry cache (mds_namespace.c). Any thread. */
void mds_ns_cache_clear(void);
/* Loads the set of files that have sessions (on takeover). 0 or an etcd error (then every
 * Delete counts sessions in etcd). */
int mds_ns_sessions_load(mds_daemon *d);

/* "ip:port:0" of a chunkserver record. */
void mds_cs_peer(const mds_chunkserver *cs, char *buf, size_t len);

#endif
