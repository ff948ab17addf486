/*
 * curve-mds: the MDS daemon (docs/mds.md "Daemon", docs/mds-ha.md).
 *
 *   curve-mds --etcd-endpoints=http://127.0.0.1:2379[,...] [--conf=FILE] [--ip=127.0.0.1]
 *             [--port=6700] [--admin-port=0] [--election-prefix=...] [--lease-ttl-s=5] ...
 *
 * Every key of the schema below can be given as --key=value ('-' and '_' are the same in
 * keys) or in the --conf file. Prints on stdout (flushed):
 *   "admin <ip>:<port>"              at start
 *   "follower"                        when campaigning behind another MDS
 *   "leader serving <ip>:<port>"      when the state is loaded and the RPC port accepts
 *   "lost leadership: <why>"          then exits 3 (the supervisor restarts it as a candidate)
 * SIGTERM/SIGINT: stop serving, resign (revoke the lease: the successor takes over at once),
 * exit 0.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/assert.h"
#include "common/clock.h"
#include "common/log.h"
#include "curve/errors.h"
#include "mds/mds_daemon.h"

static const curve_cfg_def mds_cfg_defs[] = {
    {"etcd_endpoints", CURVE_CFG_STRING, NULL, 0, 0, "comma-separated etcd endpoints"},
    {"ip", CURVE_CFG_STRING, "127.0.0.1", 0, 0, "RPC and admin address"},
    {"port", CURVE_CFG_INT, "6700", 0, 65535, "RPC port (0 = ephemeral)"},
    {"admin_port", CURVE_CFG_INT, "0", 0, 65535, "admin HTTP port (0 = ephemeral)"},
    {"name", CURVE_CFG_STRING, "mds", 0, 0, "name shown in the election key"},
    {"election_prefix", CURVE_CFG_STRING, "/curve/v1/election/mds", 0, 0, "election prefix"},
    {"lease_ttl_s", CURVE_CFG_INT, "5", 2, 3600, "election lease TTL (seconds)"},
    {"chunk_size", CURVE_CFG_INT, "16m", 4096, 1LL << 31, "chunk size (bytes)"},
    {"segment_size", CURVE_CFG_INT, "1g", 4096, 1LL << 32, "segment size (bytes)"},
    {"min_volume_size", CURVE_CFG_INT, "10g", 4096, 1LL << 50, "smallest volume"},
    {"max_volume_size", CURVE_CFG_INT, "20t", 4096, 1LL << 50, "largest volume"},
    {"chunk_id_batch", CURVE_CFG_INT, "4096", 1, 1 << 24, "chunk ids reserved per etcd CAS"},
    {"file_id_batch", CURVE_CFG_INT, "1024", 1, 1 << 24, "file ids reserved per etcd CAS"},
    {"unstable_time", CURVE_CFG_DURATION_MS, "30s", 1, 86400000, "no heartbeat: unstable"},
    {"offline_time", CURVE_CFG_DURATION_MS, "30m", 2, 86400000LL * 30, "no heartbeat: offline"},
    {"recycle_grace", CURVE_CFG_DURATION_MS, "60s", 1, 86400000,
     "a removed replica is recycled once its copyset's membership is settled this long"},
    {"sched_interval", CURVE_CFG_DURATION_MS, "1s", 10, 3600000, "recovery/tick period"},
    {"balance_interval", CURVE_CFG_DURATION_MS, "5s", 10, 3600000, "balance schedulers period"},
    {"max_ops_per_run", CURVE_CFG_INT, "16", 1, 100000, "operators per scheduler run"},
    {"change_timeout", CURVE_CFG_DURATION_MS, "10m", 100, 86400000, "peer change deadline"},
    {"transfer_timeout", CURVE_CFG_DURATION_MS, "10s", 100, 3600000, "leader transfer deadline"},
    {"balance_range_pct", CURVE_CFG_INT, "5", 0, 100, "copyset count range around the mean"},
    {"leader_range_pct", CURVE_CFG_INT, "10", 0, 100, "leader count range around the mean"},
    {"leader_balance", CURVE_CFG_BOOL, "true", 0, 0, "run the leader balance scheduler"},
    {"copyset_balance", CURVE_CFG_BOOL, "true", 0, 0, "run the copyset balance scheduler"},
    {"placement_wait", CURVE_CFG_DURATION_MS, "10s", 0, 3600000,
     "place copysets once every server registered or the topology was quiet this long"},
    {"prepare_peers", CURVE_CFG_BOOL, "true", 0, 0,
     "create the copyset on a new peer before sending its add/change operator"},
    {"session_lease", CURVE_CFG_DURATION_MS, "5s", 2000, 600000, "volume session lease"},
    {"workers", CURVE_CFG_INT, "16", 1, 64, "worker threads running RPC handlers"},
    {"rpc_threads", CURVE_CFG_INT, "2", 1, 64, "RPC event loops"},
    {"seed", CURVE_CFG_INT, "0", 0, 0, "PRNG seed (0 = from the clock)"},
    {"log_level", CURVE_CFG_STRING, "info", 0, 0, "debug, info, warn, error"},
    {"admin.failpoints", CURVE_CFG_BOOL, "false", 0, 0,
     "serve POST /failpoint on the admin port (tests: e.g. etcd.request=return(ECONNREFUSED))"},
};

/* The daemon's schema: mds_cfg_defs followed by the slow chunkserver keys (slownode.h). The
 * config keeps a pointer to it, hence static. */
#define MDS_EXTRA_CFG_DEFS_MAX 32
static curve_cfg_def mds_all_cfg_defs[CURVE_ARRAY_SIZE(mds_cfg_defs) + MDS_EXTRA_CFG_DEFS_MAX];

static size_t mds_schema(void)
{
    CURVE_ASSERT(mds_slow_cfg_ndefs <= MDS_EXTRA_CFG_DEFS_MAX);
    size_t n = CURVE_ARRAY_SIZE(mds_cfg_defs);
    memcpy(mds_all_cfg_defs, mds_cfg_defs, sizeof(mds_cfg_defs));
    memcpy(&mds_all_cfg_defs[n], mds_slow_cfg_defs, mds_slow_cfg_ndefs * sizeof(curve_cfg_def));
    return n + mds_slow_cfg_ndefs;
}

static mds_daemon g_d;
static atomic_bool g_leader_event;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* ---- RPC plumbing ---- */

typedef struct mds_job {
    mds_daemon *d;
    rpc_call_ctx *ctx;
    const ProtobufCMessage *req;
    mds_work_fn fn;
    uint64_t start_us;
} mds_job;

void mds_reply_err(mds_daemon *d, rpc_call_ctx *ctx, int rc, const char *fmt, ...)
{
    char msg[RPC_SERVER_ERRTEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    curve_counter_inc(d->m.rpc_err);
    CLOG_DEBUG("mds: rpc error %s: %s", curve_errname(rc), msg);
    rpc_call_reply_error(ctx, rc, "%s", msg);
}

void mds_reply_ok(mds_daemon *d, rpc_call_ctx *ctx, const ProtobufCMessage *resp)
{
    curve_counter_inc(d->m.rpc_ok);
    rpc_call_reply(ctx, 0, resp, NULL);
}

static int job_work(void *arg)
{
    mds_job *j = arg;
    /* Checked on the worker right before serving (docs/mds-ha.md): a process resumed after a
     * pause sees its leadership expired before it answers anything. */
    if (!atomic_load(&j->d->serving) || !election_is_leader(j->d->el)) {
        mds_reply_err(j->d, j->ctx, CURVE_ERR_NOT_LEADER, "this MDS (%s) is not the leader",
                      j->d->rpc_addr);
        return 0;
    }
    j->fn(j->d, j->ctx, j->req);
    curve_latency_record(j->d->m.ns_lat, curve_now_mono_ns() / 1000 - j->start_us);
    return 0;
}

static void job_done(void *arg, int result)
{
    mds_job *j = arg;
    if (result == -ECANCELED)
        mds_reply_err(j->d, j->ctx, CURVE_ERR_SHUTDOWN, "MDS shutting down");
    free(j);
}

void mds_submit(mds_daemon *d, rpc_call_ctx *ctx, const ProtobufCMessage *req, mds_work_fn fn)
{
    mds_job *j = malloc(sizeof(*j));
    if (!j) {
        mds_reply_err(d, ctx, -ENOMEM, "out of memory");
        return;
    }
    *j = (mds_job){d, ctx, req, fn, curve_now_mono_ns() / 1000};
    int rc = curve_workpool_submit(d->wp, rpc_call_loop(ctx), job_work, job_done, j);
    if (rc < 0) {
        free(j);
        mds_reply_err(d, ctx, rc == -EAGAIN ? CURVE_ERR_BUSY : CURVE_ERR_SHUTDOWN,
                      "MDS worker queue: %s", curve_strerror(rc));
    }
}

rpc_channel *mds_channel(mds_daemon *d, const char *addr)
{
    rpc_channel *ch = NULL;
    pthread_mutex_lock(&d->ch_lock);
    for (size_t i = 0; i < d->nchannels; i++) {
        if (strcmp(d->channels[i].addr, addr) == 0) {
            ch = d->channels[i].ch;
            goto out;
        }
    }
    if (d->nchannels == MDS_CHANNELS_MAX || strlen(addr) >= MDS_ADDR_MAX)
        goto out;
    rpc_channel_opts o = {0};
    o.timeout_ms = 3000;
    o.connect_timeout_ms = 1000;
    o.backoff_max_ms = 1000;
    if (rpc_channel_new(d->cli_loop, addr, &o, &ch) == 0) {
        snprintf(d->channels[d->nchannels].addr, MDS_ADDR_MAX, "%s", addr);
        d->channels[d->nchannels++].ch = ch;
    }
out:
    pthread_mutex_unlock(&d->ch_lock);
    return ch;
}

void mds_cs_peer(const mds_chunkserver *cs, char *buf, size_t len)
{
    snprintf(buf, len, "%s:%u:0", cs->host, cs->port);
}

/* ---- election ---- */

static void on_leader(election *e, void *arg)
{
    atomic_store(&g_leader_event, true);
}

static void on_follower(election *e, const char *watched, void *arg)
{
    say("follower (watching %s)", watched);
}

static void on_lost(election *e, const char *why, void *arg)
{
    mds_daemon *d = arg;
    atomic_store(&d->serving, false);
    /* Terminal (docs/mds-ha.md): stop at once, the supervisor restarts us as a candidate. */
    say("lost leadership: %s", why);
    CLOG_ERROR("mds: lost leadership: %s; exiting", why);
    _exit(3);
}

/* ---- admin ---- */

static int health_cb(void *ctx, char *reason, size_t len)
{
    mds_daemon *d = ctx;
    if (!atomic_load(&d->etcd_ok)) {
        snprintf(reason, len, "etcd unreachable");
        return 1;
    }
    return 0;
}

static void status_cb(void *ctx, json_t *obj)
{
    mds_daemon *d = ctx;
    /* election_is_leader() checks the lease proof against the clock: a process resumed
     * after a pause reports "lost", never a stale "leader". */
    bool leader = election_is_leader(d->el);
    election_role r = election_get_role(d->el);
    const char *role = leader && atomic_load(&d->serving) ? "leader"
                       : r == ELECTION_LOST                              ? "lost"
                                                                         : "follower";
    json_object_set_new(obj, "role", json_string(role));
    json_object_set_new(obj, "election", json_string(election_role_name(r)));
    json_object_set_new(obj, "etcd_ok", json_boolean(atomic_load(&d->etcd_ok)));
    json_object_set_new(obj, "rpc_addr", json_string(d->rpc_addr));
    json_object_set_new(obj, "serving", json_boolean(atomic_load(&d->serving)));
    json_object_set_new(obj, "election_key", json_string(election_key(d->el)));
    /* chunkservers marked slow by this MDS (slownode.h; only a leader evaluates) */
    json_t *slow = json_array();
    pthread_mutex_lock(&d->lock);
    size_t nslow = 0;
    for (size_t i = 0; d->slow_init && i < d->slow.n; i++) {
        if (d->slow.v[i].marked) {
            json_array_append_new(slow, json_integer(d->slow.v[i].cs_id));
            nslow++;
        }
    }
    pthread_mutex_unlock(&d->lock);
    json_object_set_new(obj, "slow_detection",
                        json_boolean(d->slowcfg.enabled));
    json_object_set_new(obj, "slow_chunkservers", json_integer((json_int_t)nslow));
    json_object_set_new(obj, "slow_chunkserver_ids", slow);
}

static int metrics_init(mds_daemon *d)
{
    curve_metrics *r = curve_metrics_default();
    int rc = 0;
#define C(field, name, help) rc = rc ? rc : curve_metrics_counter(r, name, help, NULL, &d->m.field)
    C(rpc_ok, "mds_rpc_ok_total", "MDS RPCs answered successfully");
    C(rpc_err, "mds_rpc_errors_total", "MDS RPCs answered with an error");
    C(hb, "mds_heartbeats_total", "heartbeats accepted");
    C(hb_err, "mds_heartbeat_errors_total", "heartbeats refused");
    C(ops_created, "mds_operators_created_total", "operators created by the schedulers");
    C(ops_done, "mds_operators_done_total", "operators completed");
    C(ops_failed, "mds_operators_failed_total", "operators failed");
    C(ops_expired, "mds_operators_expired_total", "operators expired");
    C(alerts_majority, "mds_alerts_majority_lost_total", "copysets found without majority");
    C(alerts_nocand, "mds_alerts_no_candidate_total", "replacements without a candidate");
    C(copysets_created, "mds_copysets_created_total", "CreateCopyset RPCs that succeeded");
    C(chunks_purged, "mds_chunks_purged_total", "chunks deleted by purge");
    C(etcd_errors, "mds_etcd_errors_total", "failed etcd calls");
    C(open_busy, "mds_open_busy_total", "read-write opens refused: another writer is current");
#undef C
    if (rc == 0)
        rc = curve_metrics_latency(r, "mds_rpc_latency", "MDS RPC handler latency", NULL, NULL,
                                   0, &d->m.ns_lat);
    if (rc == 0)
        rc = curve_metrics_latency(r, "mds_heartbeat_latency", "heartbeat handling latency",
                                   NULL, NULL, 0, &d->m.hb_lat);
    if (rc == 0)
        rc = curve_metrics_register_process(r);
    return rc;
}

/* ---- leadership ---- */

static int become_leader(mds_daemon *d)
{
    char err[512] = "";
    uint64_t t0 = curve_now_mono_ms();
    mds_ns_cache_clear();
    atomic_store(&d->last_topo_change_ms, t0);
    int rc = mds_store_init_namespace(d);
    if (rc < 0) {
        CLOG_ERROR("mds: cannot initialise the namespace: %s (%s)", curve_strerror(rc),
                   etcd_last_error());
        return rc;
    }
    rc = mds_ns_sessions_load(d);
    if (rc < 0)
        CLOG_WARN("mds: cannot load the session list (%s): every delete will check etcd",
                  curve_strerror(rc));
    pthread_mutex_lock(&d->lock);
    mds_topo_destroy(&d->topo);
    mds_topo_init(&d->topo);
    mds_optable_destroy(&d->ops);
    mds_optable_init(&d->ops, 0);
    pthread_mutex_unlock(&d->lock);
    rc = mds_store_load_topology(d, err, sizeof(err));
    if (rc < 0) {
        CLOG_ERROR("mds: cannot load the topology: %s", err);
        return rc;
    }
    pthread_mutex_lock(&d->ids_lock);
    mds_idalloc_init(&d->chunk_ids, d->chunk_id_batch, d->chunk_id_batch / 4);
    mds_idalloc_init(&d->file_ids, d->file_id_batch, 0);
    pthread_mutex_unlock(&d->ids_lock);

    rc = rpc_server_new(d->loops, NULL, &d->srv);
    if (rc < 0)
        return rc;
    static rpc_service_def svcs[4];
    svcs[0] = (rpc_service_def){MDS_NAMESPACE_SERVICE_ID, "NamespaceService",
                                mds_namespace_methods, mds_namespace_nmethods, d};
    svcs[1] = (rpc_service_def){MDS_TOPOLOGY_SERVICE_ID, "TopologyService",
                                mds_topology_methods, mds_topology_nmethods, d};
    svcs[2] = (rpc_service_def){MDS_STATUS_SERVICE_ID, "StatusService", mds_status_methods,
                                mds_status_nmethods, d};
    svcs[3] = (rpc_service_def){MDS_HEARTBEAT_SERVICE_ID, "HeartbeatService",
                                mds_heartbeat_methods, mds_heartbeat_nmethods, d};
    for (size_t i = 0; i < 4 && rc == 0; i++)
        rc = rpc_server_add_service(d->srv, &svcs[i]);
    if (rc < 0)
        return rc;
    atomic_store(&d->serving, true);
    rc = mds_bg_start(d);
    if (rc < 0)
        return rc;
    char listen[MDS_ADDR_MAX + 8];
    snprintf(listen, sizeof(listen), "%s:%" PRId64, curve_config_str(d->cfg, "ip"),
             curve_config_int(d->cfg, "port"));
    rc = rpc_server_start(d->srv, listen);
    if (rc < 0) {
        CLOG_ERROR("mds: cannot listen on %s: %s", listen, curve_strerror(rc));
        return rc;
    }
    snprintf(d->rpc_addr, sizeof(d->rpc_addr), "%s:%d", curve_config_str(d->cfg, "ip"),
             rpc_server_port(d->srv));
    say("leader serving %s (state loaded in %" PRIu64 " ms: %zu chunkservers, %zu copysets)",
        d->rpc_addr, curve_now_mono_ms() - t0, d->topo.css.n, d->topo.copysets.n);
    return 0;
}

static int split_endpoints(char *s, const char **eps)
{
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(s, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (n == ETCD_MAX_ENDPOINTS)
            return -EINVAL;
        eps[n++] = tok;
    }
    return n ? n : -EINVAL;
}

/* "--etcd-endpoints=x" -> "--etcd_endpoints=x" (config keys use '_'). */
static void normalize_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) != 0)
            continue;
        for (char *p = argv[i] + 2; *p && *p != '='; p++)
            if (*p == '-')
                *p = '_';
    }
}

static int load_config(mds_daemon *d, int argc, char **argv)
{
    char err[512];
    int rc = curve_config_new(mds_all_cfg_defs, mds_schema(), &d->cfg, err, sizeof(err));
    if (rc == 0) {
        normalize_args(argc, argv);
        rc = curve_config_parse_args(d->cfg, &argc, argv, err, sizeof(err));
    }
    if (rc == 0)
        rc = curve_config_check_required(d->cfg, err, sizeof(err));
    if (rc == 0 && argc > 1) {
        snprintf(err, sizeof(err), "unexpected argument '%s'", argv[1]);
        rc = CURVE_ERR_CONFIG;
    }
    if (rc < 0) {
        char usage[8192];
        if (d->cfg) {
            curve_config_usage(d->cfg, usage, sizeof(usage));
            fprintf(stderr, "curve-mds: %s\nusage: curve-mds [--conf=FILE] --key=value...\n%s",
                    err, usage);
        } else {
            fprintf(stderr, "curve-mds: %s\n", err);
        }
        return rc;
    }
    curve_log_level lvl;
    if (curve_log_parse_level(curve_config_str(d->cfg, "log_level"), &lvl) < 0) {
        fprintf(stderr, "curve-mds: --log_level: expected debug, info, warn or error\n");
        return CURVE_ERR_CONFIG;
    }
    curve_log_set_level(lvl);
    d->sizes.chunk_size = (uint64_t)curve_config_int(d->cfg, "chunk_size");
    d->sizes.segment_size = (uint64_t)curve_config_int(d->cfg, "segment_size");
    d->sizes.min_size = (uint64_t)curve_config_int(d->cfg, "min_volume_size");
    d->sizes.max_size = (uint64_t)curve_config_int(d->cfg, "max_volume_size");
    rc = mds_ns_check_size_cfg(&d->sizes, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "curve-mds: sizes: %s\n", err);
        return CURVE_ERR_CONFIG;
    }
    d->hbcfg.unstable_ms = (uint64_t)curve_config_duration_ms(d->cfg, "unstable_time");
    d->hbcfg.offline_ms = (uint64_t)curve_config_duration_ms(d->cfg, "offline_time");
    d->hbcfg.recycle_grace_ms = (uint64_t)curve_config_duration_ms(d->cfg, "recycle_grace");
    if (mds_hb_cfg_check(&d->hbcfg) < 0) {
        fprintf(stderr, "curve-mds: unstable_time must be below offline_time\n");
        return CURVE_ERR_CONFIG;
    }
    mds_sched_cfg_default(&d->schedcfg);
    d->schedcfg.max_ops_per_run = (uint32_t)curve_config_int(d->cfg, "max_ops_per_run");
    d->schedcfg.change_timeout_ms = (uint64_t)curve_config_duration_ms(d->cfg, "change_timeout");
    d->schedcfg.transfer_timeout_ms =
        (uint64_t)curve_config_duration_ms(d->cfg, "transfer_timeout");
    d->schedcfg.balance_range_pct = (uint32_t)curve_config_int(d->cfg, "balance_range_pct");
    d->schedcfg.leader_range_pct = (uint32_t)curve_config_int(d->cfg, "leader_range_pct");
    d->schedcfg.leader_target_fresh_ms = d->hbcfg.unstable_ms / 2;
    d->session_lease_ms = (uint32_t)curve_config_duration_ms(d->cfg, "session_lease");
    d->placement_wait_ms = (uint64_t)curve_config_duration_ms(d->cfg, "placement_wait");
    d->prepare_peers = curve_config_bool(d->cfg, "prepare_peers");
    mds_slow_cfg_from_config(d->cfg, &d->slowcfg);
    d->chunk_id_batch = (uint64_t)curve_config_int(d->cfg, "chunk_id_batch");
    d->file_id_batch = (uint64_t)curve_config_int(d->cfg, "file_id_batch");
    if (d->chunk_id_batch < 4) {
        fprintf(stderr, "curve-mds: chunk_id_batch must be >= 4\n");
        return CURVE_ERR_CONFIG;
    }
    return 0;
}

int main(int argc, char **argv)
{
    mds_daemon *d = &g_d;
    int rc, exit_code = 1;
    if (load_config(d, argc, argv) < 0)
        return 2;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    pthread_mutex_init(&d->ids_lock, NULL);
    pthread_mutex_init(&d->lock, NULL);
    pthread_mutex_init(&d->persist_lock, NULL);
    pthread_mutex_init(&d->ch_lock, NULL);
    pthread_mutex_init(&d->bg_mu, NULL);
    pthread_cond_init(&d->bg_cv, NULL);
    mds_topo_init(&d->topo);
    mds_optable_init(&d->ops, 0);
    uint64_t seed = (uint64_t)curve_config_int(d->cfg, "seed");
    mds_rng_seed(&d->rng, seed ? seed : curve_now_wall_ns() ^ (uint64_t)getpid());
    d->hbres = calloc(1, sizeof(*d->hbres));
    if (!d->hbres || metrics_init(d) < 0) {
        fprintf(stderr, "curve-mds: out of memory\n");
        return 1;
    }

    /* etcd clients: the election one has short timeouts (docs/mds-ha.md). */
    char *eps_buf = strdup(curve_config_str(d->cfg, "etcd_endpoints"));
    const char *eps[ETCD_MAX_ENDPOINTS];
    int neps = eps_buf ? split_endpoints(eps_buf, eps) : -ENOMEM;
    if (neps < 0) {
        fprintf(stderr, "curve-mds: --etcd-endpoints: expected 1..%d comma-separated "
                        "endpoints\n", ETCD_MAX_ENDPOINTS);
        return 2;
    }
    int64_t ttl = curve_config_int(d->cfg, "lease_ttl_s");
    etcd_client_opts co;
    etcd_client_opts_init(&co);
    co.request_timeout_ms = (uint32_t)(ttl * 1000 / 4);
    co.connect_timeout_ms = co.request_timeout_ms / 2;
    co.deadline_ms = (uint32_t)(ttl * 1000 / 3);
    rc = etcd_client_new(eps, (size_t)neps, &co, &d->el_etcd);
    etcd_client_opts_init(&co);
    co.request_timeout_ms = 2000;
    co.deadline_ms = 4000;
    for (; rc == 0 && d->netcds < MDS_ETCD_CLIENTS; d->netcds++)
        rc = etcd_client_new(eps, (size_t)neps, &co, &d->etcds[d->netcds]);
    free(eps_buf);
    if (rc < 0) {
        fprintf(stderr, "curve-mds: etcd client: %s\n", curve_strerror(rc));
        return 2;
    }

    rc = curve_loop_group_new("mds-rpc", (unsigned)curve_config_int(d->cfg, "rpc_threads"),
                              &d->loops);
    if (rc == 0)
        rc = curve_workpool_new("mds-work", (unsigned)curve_config_int(d->cfg, "workers"), 65536,
                                &d->wp);
    if (rc == 0)
        rc = curve_loop_new("mds-cli", &d->cli_loop);
    if (rc == 0)
        rc = curve_loop_start(d->cli_loop);
    if (rc < 0) {
        fprintf(stderr, "curve-mds: cannot start threads: %s\n", curve_strerror(rc));
        return 1;
    }

    curve_admin_opts ao = {0};
    ao.host = curve_config_str(d->cfg, "ip");
    ao.port = (uint16_t)curve_config_int(d->cfg, "admin_port");
    ao.role = "follower";
    rc = curve_admin_start(&ao, &d->admin);
    if (rc < 0) {
        fprintf(stderr, "curve-mds: admin port: %s\n", curve_strerror(rc));
        return 1;
    }
    curve_admin_set_health_cb(d->admin, health_cb, d);
    if (curve_config_bool(d->cfg, "admin.failpoints"))
        (void)curve_admin_enable_failpoints(d->admin);
    say("admin %s:%u", ao.host, curve_admin_port(d->admin));

    snprintf(d->rpc_addr, sizeof(d->rpc_addr), "%s:%" PRId64, curve_config_str(d->cfg, "ip"),
             curve_config_int(d->cfg, "port"));
    char value[256];
    snprintf(value, sizeof(value), "%s pid %d", curve_config_str(d->cfg, "name"), (int)getpid());
    election_opts eo;
    election_opts_init(&eo);
    eo.prefix = curve_config_str(d->cfg, "election_prefix");
    eo.value = value;
    eo.ttl_s = ttl;
    eo.leader_cb = on_leader;
    eo.follower_cb = on_follower;
    eo.lost_cb = on_lost;
    eo.arg = d;
    rc = election_new(d->el_etcd, &eo, &d->el);
    if (rc == 0)
        rc = election_start(d->el);
    if (rc < 0) {
        fprintf(stderr, "curve-mds: election: %s\n", curve_strerror(rc));
        return 2;
    }
    curve_admin_set_status_cb(d->admin, status_cb, d);

    uint64_t last_probe = 0;
    for (;;) {
        uint64_t now = curve_now_mono_ms();
        if (now - last_probe >= 1000) {
            /* /status "etcd_ok" and /health: one cheap serializable read per second. */
            etcd_range_result r;
            etcd_range_req q = {.key = MDS_IDS_FILE, .count_only = true, .serializable = true};
            bool ok = etcd_range(d->el_etcd, &q, &r) == 0;
            if (ok)
                etcd_range_result_free(&r);
            atomic_store(&d->etcd_ok, ok);
            last_probe = now;
        }
        struct timespec ts = {0, 100 * 1000 * 1000};
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            say("stopping (signal %d)", sig);
            exit_code = 0;
            break;
        }
        if (atomic_exchange(&g_leader_event, false)) {
            /* The RPC port opens only once the whole state is loaded (DESIGN §7). */
            if (become_leader(d) < 0) {
                say("cannot take over as leader; exiting");
                exit_code = 4;
                break;
            }
        }
    }
    atomic_store(&d->serving, false);
    if (d->srv)
        rpc_server_stop(d->srv, 2000);
    mds_bg_stop(d);
    election_free(d->el); /* resign: the successor takes over at once */
    say("stopped");
    /* The process exits here: the remaining threads and memory go with it. */
    fflush(stdout);
    _exit(exit_code);
}
