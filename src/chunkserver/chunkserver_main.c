/*
 * curve-chunkserver: the chunkserver daemon (docs/chunkserver.md "Daemon").
 *
 *   curve-chunkserver --data-dir=DIR --port=P [--ip=127.0.0.1] [--admin-port=A]
 *                     [--mds-addrs=ip:port,...] [--conf=FILE] [--key=value ...]
 *   curve-chunkserver --format --data-dir=DIR [--pool.target-files=N | --pool.target-pct=N]
 *
 * Option names accept '-' for '_' ("--data-dir" is key "data_dir"); every key is listed by
 * --help. Prints "listening <ip>:<port> admin <port>" once it serves. SIGTERM/SIGINT: graceful
 * stop (RPC server drained, copysets stopped, pool closed).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin/admin.h"
#include "common/assert.h"
#include "chunkserver/cs_heartbeat.h"
#include "chunkserver/cs_internal.h"
#include "common/config.h"
#include "common/failpoint.h"
#include "common/log.h"
#include "curve/errors.h"

static const curve_cfg_def cs_schema[] = {
    {"data_dir", CURVE_CFG_STRING, NULL, 0, 0, "data directory (copysets, pool, chunkserver.dat)"},
    {"ip", CURVE_CFG_STRING, "127.0.0.1", 0, 0, "IPv4 address to listen on and to advertise"},
    {"port", CURVE_CFG_INT, "0", 0, 65535, "RPC port (required unless --format)"},
    {"admin_port", CURVE_CFG_INT, "0", 0, 65535, "admin HTTP port (0: ephemeral)"},
    {"mds_addrs", CURVE_CFG_STRING, "", 0, 0, "MDS addresses ip:port,... (empty: standalone)"},
    {"chunk_size", CURVE_CFG_INT, "16m", 4096, 1073741824, "chunk data bytes"},
    {"io_align", CURVE_CFG_INT, "4096", 512, 4096, "IO alignment (4096 or 512)"},
    {"max_inflight", CURVE_CFG_INT, "4096", 1, 1048576, "chunk requests in progress (OVERLOAD)"},
    {"loops", CURVE_CFG_INT, "0", 0, 64,
     "event loops (Raft groups and RPC); 0 = auto: 1 on a machine with at most 4 CPUs, else 2"},
    {"workers", CURVE_CFG_INT, "2", 1, 64, "worker threads for blocking service work"},
    {"pool.target_files", CURVE_CFG_INT, "0", 0, 0, "chunk files to format (0: by percentage)"},
    {"pool.target_pct", CURVE_CFG_INT, "0", 0, 100, "share of the disk to format"},
    {"pool.reserve_bytes", CURVE_CFG_INT, "1g", 0, 0, "free space left when formatting"},
    {"pool.min_ready", CURVE_CFG_INT, "1", 0, 0, "ready files needed before serving"},
    {"pool.wait", CURVE_CFG_DURATION_MS, "10m", 1, 86400000, "how long to wait for pool.min_ready"},
    {"raft.election_timeout", CURVE_CFG_DURATION_MS, "1s", 50, 60000, "Raft election timeout"},
    {"raft.heartbeat", CURVE_CFG_DURATION_MS, "100ms", 10, 30000, "Raft heartbeat interval"},
    {"raft.snapshot_threshold", CURVE_CFG_INT, "10000", 0, 0, "snapshot every N entries"},
    {"raft.snapshot_trailing", CURVE_CFG_INT, "1000", 0, 0, "entries kept behind a snapshot"},
    {"raft.snapshot_threshold_bytes", CURVE_CFG_INT, "16m", 0, 0,
     "snapshot once this many bytes were applied since the last one (memory bound)"},
    {"raft.snapshot_trailing_bytes", CURVE_CFG_INT, "2m", 0, 0,
     "bytes of entries kept in memory behind a snapshot"},
    {"raft.max_log_bytes", CURVE_CFG_INT, "64m", 0, 0,
     "per copyset: writes beyond this many bytes of in-memory log get OVERLOAD (0: no cap)"},
    {"raft.log_mem_budget", CURVE_CFG_INT, "512m", 0, 0,
     "all copysets: in-memory log bytes above which the biggest copysets snapshot (0: none)"},
    {"raft.snapshot_bytes_per_sec", CURVE_CFG_INT, "64m", 0, 0, "snapshot transfer throttle"},
    {"raft.log_segment_bytes", CURVE_CFG_INT, "8m", 65536, 1073741824, "Raft log segment"},
    {"heartbeat.interval", CURVE_CFG_DURATION_MS, "10s", 10, 3600000, "MDS heartbeat period"},
    {"heartbeat.timeout", CURVE_CFG_DURATION_MS, "3s", 10, 600000, "MDS RPC timeout"},
    {"recycler.purge_age", CURVE_CFG_DURATION_MS, "1h", 0, 0, "age before removed copysets go"},
    {"disk.slow_write", CURVE_CFG_DURATION_MS, "40ms", 0, 60000,
     "a chunk write this slow counts toward a slow disk (0: never hand leaderships over)"},
    {"disk.slow_write_count", CURVE_CFG_INT, "5", 1, 1000000,
     "that many slow chunk writes in a row: hand every leadership over"},
    {"disk.slow_cooldown", CURVE_CFG_DURATION_MS, "30s", 0, 86400000,
     "at most one slow-disk handoff per this long"},
    {"admin.failpoints", CURVE_CFG_BOOL, "false", 0, 0, "serve POST /failpoint (tests)"},
    {"log_file", CURVE_CFG_STRING, "-", 0, 0, "log file ('-': stderr)"},
};

typedef struct daemon_ctx {
    curve_config *cfg;
    curve_cfp *pool;
    cs_mgr *mgr;
    cs_hb *hb;
    /* housekeeping thread (recycler purge) */
    pthread_t house;
    bool house_started;
    pthread_mutex_t house_lock; /* protects house_stop, disk_fail_err, disk_fail_done */
    pthread_cond_t house_cond;
    bool house_stop;
    int disk_fail_err;   /* set by the pool's fail hook: stop every Raft node */
    bool disk_fail_done; /* cs_mgr_disk_failed ran */
} daemon_ctx;

/* Bound on the housekeeping period: removed copysets are looked at least this often. */
#define CS_HOUSEKEEPING_MAX_MS 60000u

/* Purges recycled copysets older than recycler.purge_age, periodically, until stopped. */
static void *housekeeping(void *arg)
{
    daemon_ctx *d = arg;
    uint64_t age = (uint64_t)curve_config_duration_ms(d->cfg, "recycler.purge_age");
    uint64_t period = age / 2 < CS_HOUSEKEEPING_MAX_MS ? age / 2 : CS_HOUSEKEEPING_MAX_MS;
    if (period < 100)
        period = 100;
    pthread_mutex_lock(&d->house_lock);
    while (!d->house_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (period % 1000) * 1000000u;
        ts.tv_sec += (time_t)(period / 1000 + ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        while (!d->house_stop && !(d->disk_fail_err != 0 && !d->disk_fail_done) &&
               pthread_cond_timedwait(&d->house_cond, &d->house_lock, &ts) != ETIMEDOUT) {
        }
        if (d->house_stop)
            break;
        if (d->disk_fail_err != 0 && !d->disk_fail_done) {
            /* out of the pool's hook (which must not block): the failed disk's copysets give
             * up their leaderships and stop voting (failure-table finding 4) */
            d->disk_fail_done = true;
            int err = d->disk_fail_err;
            pthread_mutex_unlock(&d->house_lock);
            cs_mgr_disk_failed(d->mgr, err);
            pthread_mutex_lock(&d->house_lock);
            continue;
        }
        pthread_mutex_unlock(&d->house_lock);
        int n = cs_mgr_purge_recycler(d->mgr, age);
        if (n > 0)
            CLOG_INFO("purged %d recycled copysets", n);
        pthread_mutex_lock(&d->house_lock);
    }
    pthread_mutex_unlock(&d->house_lock);
    return NULL;
}

/* The pool's fail hook (any thread, under the pool's lock: only wakes the housekeeping). */
static void disk_failed_cb(void *ctx, int err)
{
    daemon_ctx *d = ctx;
    pthread_mutex_lock(&d->house_lock);
    if (d->disk_fail_err == 0)
        d->disk_fail_err = err;
    pthread_cond_broadcast(&d->house_cond);
    pthread_mutex_unlock(&d->house_lock);
}

static int housekeeping_start(daemon_ctx *d)
{
    pthread_mutex_init(&d->house_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->house_cond, &ca);
    pthread_condattr_destroy(&ca);
    int rc = -pthread_create(&d->house, NULL, housekeeping, d);
    d->house_started = rc == 0;
    if (rc == 0)
        curve_cfp_set_fail_cb(d->pool, disk_failed_cb, d);
    return rc;
}

static void housekeeping_stop(daemon_ctx *d)
{
    if (!d->house_started)
        return;
    curve_cfp_set_fail_cb(d->pool, NULL, NULL); /* no hook call in flight after this */
    pthread_mutex_lock(&d->house_lock);
    d->house_stop = true;
    pthread_cond_broadcast(&d->house_cond);
    pthread_mutex_unlock(&d->house_lock);
    pthread_join(d->house, NULL);
    pthread_cond_destroy(&d->house_cond);
    pthread_mutex_destroy(&d->house_lock);
    d->house_started = false;
}

static void usage(curve_config *cfg)
{
    static char buf[8192];
    curve_config_usage(cfg, buf, sizeof(buf));
    fprintf(stderr,
            "usage: curve-chunkserver --data-dir=DIR --port=P [options]\n"
            "       curve-chunkserver --format --data-dir=DIR [--pool.target-files=N]\n"
            "options ('-' may replace '_'):\n%s",
            buf);
}

/* "--data-dir=x" -> "--data_dir=x" (keys use '_'; values are left alone). */
static void normalize_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) != 0)
            continue;
        for (char *p = argv[i] + 2; *p != '\0' && *p != '='; p++) {
            if (*p == '-')
                *p = '_';
        }
    }
}

static int open_pool(curve_config *cfg, curve_metrics *reg, curve_cfp **out)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/chunkfilepool", curve_config_str(cfg, "data_dir"));
    curve_cfp_opts po = {
        .dir = dir,
        .chunk_size = (uint32_t)curve_config_int(cfg, "chunk_size"),
        .target_files = (uint64_t)curve_config_int(cfg, "pool.target_files"),
        .target_pct = (uint32_t)curve_config_int(cfg, "pool.target_pct"),
        .reserve_bytes = (uint64_t)curve_config_int(cfg, "pool.reserve_bytes"),
        .metrics = reg,
    };
    if (po.target_files == 0 && po.target_pct == 0)
        po.target_pct = 10;
    int rc = curve_cfp_open(&po, out);
    if (rc != 0) {
        fprintf(stderr, "curve-chunkserver: cannot open chunk file pool %s: %s\n", dir,
                curve_strerror(rc));
        return rc;
    }
    rc = curve_cfp_start(*out);
    if (rc != 0) {
        curve_cfp_close(*out);
        *out = NULL;
    }
    return rc;
}

static int do_format(curve_config *cfg)
{
    const char *data_dir = curve_config_str(cfg, "data_dir");
    if (mkdir(data_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "curve-chunkserver: cannot create %s: %s\n", data_dir, strerror(errno));
        return 1;
    }
    curve_cfp *pool;
    int rc = open_pool(cfg, NULL, &pool);
    if (rc != 0)
        return 1;
    for (;;) {
        rc = curve_cfp_wait(pool, UINT64_MAX, 1000);
        curve_cfp_stats st;
        curve_cfp_get_stats(pool, &st);
        printf("format %s: %" PRIu64 "/%" PRIu64 " files, %" PRIu64 " ready\n",
               curve_cfp_state_name(st.state), st.formatted, st.format_target, st.ready);
        fflush(stdout);
        if (rc != CURVE_ERR_TIMEOUT)
            break;
    }
    curve_cfp_close(pool);
    if (rc != 0) {
        fprintf(stderr, "curve-chunkserver: format failed: %s\n", curve_strerror(rc));
        return 1;
    }
    printf("format done\n");
    return 0;
}

static void status_cb(void *ctx, json_t *obj)
{
    daemon_ctx *d = ctx;
    json_object_set_new(obj, "role", json_string("chunkserver"));
    curve_cfp_stats st;
    curve_cfp_get_stats(d->pool, &st);
    json_object_set_new(
        obj, "pool",
        json_pack("{s:s, s:I, s:I, s:I, s:I, s:b}", "state", curve_cfp_state_name(st.state),
                  "ready", (json_int_t)st.ready, "dirty", (json_int_t)st.dirty, "format_target",
                  (json_int_t)st.format_target, "formatted", (json_int_t)st.formatted,
                  "disk_full", st.disk_full));
    int err = curve_cfp_failed(d->pool);
    json_object_set_new(obj, "disk", json_pack("{s:b, s:i, s:s}", "failed", err != 0, "error",
                                               err, "message", err ? curve_strerror(err) : ""));
    cs_mgr_status_json(d->mgr, obj);
    if (d->hb != NULL)
        cs_hb_status_json(d->hb, obj);
}

static int health_cb(void *ctx, char *reason, size_t len)
{
    daemon_ctx *d = ctx;
    int err = curve_cfp_failed(d->pool);
    if (err != 0) {
        snprintf(reason, len, "disk failed: %s", curve_strerror(err));
        return 1;
    }
    return 0;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* `loops` = 0: one loop on a small machine, two otherwise. A request is served on the loop of
 * its connection and its copyset's Raft group lives on one loop: with two loops most requests
 * cross between loops twice (post, then completion), which on a 2-CPU machine running three
 * chunkservers cost more than the second loop gives (measured: docs/benchmarks.md, fifth
 * session: 1 loop −20 % QD1 write latency, −40 % QD1 read latency, +20 % QD32 writes). */
#define CS_AUTO_LOOPS_SMALL_CPUS 4
static unsigned cs_auto_loops(int64_t configured)
{
    if (configured > 0)
        return (unsigned)configured;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    return ncpu > 0 && ncpu <= CS_AUTO_LOOPS_SMALL_CPUS ? 1u : 2u;
}

static int serve(curve_config *cfg)
{
    daemon_ctx d = {.cfg = cfg};
    const char *ip = curve_config_str(cfg, "ip");
    int port = (int)curve_config_int(cfg, "port");
    char self[CS_PEER_STR_MAX + 8];
    snprintf(self, sizeof(self), "%s:%d", ip, port);
    uint64_t self_id;
    if (port == 0 || cs_peer_parse(self, &self_id) != 0) {
        fprintf(stderr, "curve-chunkserver: --ip/--port must be an IPv4 address and a port "
                        "(got %s)\n", self);
        return 2;
    }
    int64_t align = curve_config_int(cfg, "io_align");
    if (align != 512 && align != 4096) {
        fprintf(stderr, "curve-chunkserver: --io-align must be 512 or 4096 (got %" PRId64 ")\n",
                align);
        return 2;
    }
    const char *data_dir = curve_config_str(cfg, "data_dir");
    if (mkdir(data_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "curve-chunkserver: cannot create %s: %s\n", data_dir, strerror(errno));
        return 1;
    }
    raise_nofile();
    curve_metrics *reg;
    int rc = curve_metrics_new(&reg);
    if (rc != 0)
        return 1;
    (void)curve_metrics_register_process(reg);
    rc = open_pool(cfg, reg, &d.pool);
    if (rc != 0)
        goto err_after_reg;
    uint64_t min_ready = (uint64_t)curve_config_int(cfg, "pool.min_ready");
    rc = curve_cfp_wait(d.pool, min_ready, (uint64_t)curve_config_duration_ms(cfg, "pool.wait"));
    if (rc != 0) {
        fprintf(stderr, "curve-chunkserver: chunk file pool not ready (%" PRIu64 " files): %s\n",
                min_ready, curve_strerror(rc));
        goto err_after_pool;
    }
    raftrt_host_opts ho = {.self_id = self_id, .listen_addr = self,
                           .nloops = cs_auto_loops(curve_config_int(cfg, "loops")), .metrics = reg,
                           .log_mem_budget = (uint64_t)curve_config_int(cfg, "raft.log_mem_budget")};
    raftrt_host *host;
    rc = raftrt_host_new(&ho, &host);
    if (rc != 0) {
        fprintf(stderr, "curve-chunkserver: cannot create the Raft host: %s\n",
                curve_strerror(rc));
        goto err_after_pool;
    }
    cs_mgr_opts mo = {
        .data_dir = data_dir, .host = host, .pool = d.pool, .self_id = self_id,
        .io_align = (uint32_t)curve_config_int(cfg, "io_align"),
        .max_inflight = (uint32_t)curve_config_int(cfg, "max_inflight"),
        .election_timeout_ms = (uint32_t)curve_config_duration_ms(cfg, "raft.election_timeout"),
        .heartbeat_ms = (uint32_t)curve_config_duration_ms(cfg, "raft.heartbeat"),
        .snapshot_threshold = (uint64_t)curve_config_int(cfg, "raft.snapshot_threshold"),
        .snapshot_trailing = (uint64_t)curve_config_int(cfg, "raft.snapshot_trailing"),
        .snapshot_threshold_bytes =
            (uint64_t)curve_config_int(cfg, "raft.snapshot_threshold_bytes"),
        .snapshot_trailing_bytes = (uint64_t)curve_config_int(cfg, "raft.snapshot_trailing_bytes"),
        .max_log_bytes = (uint64_t)curve_config_int(cfg, "raft.max_log_bytes"),
        .snapshot_bytes_per_sec = (uint64_t)curve_config_int(cfg, "raft.snapshot_bytes_per_sec"),
        .log_segment_bytes = (uint32_t)curve_config_int(cfg, "raft.log_segment_bytes"),
        .nworkers = (unsigned)curve_config_int(cfg, "workers"),
        .slow_write_ms = (uint32_t)curve_config_duration_ms(cfg, "disk.slow_write"),
        .slow_write_count = (uint32_t)curve_config_int(cfg, "disk.slow_write_count"),
        .slow_handoff_cooldown_ms = (uint64_t)curve_config_duration_ms(cfg, "disk.slow_cooldown"),
        .metrics = reg,
    };
    rc = cs_mgr_new(&mo, &d.mgr);
    if (rc == 0)
        rc = cs_mgr_register_services(d.mgr);
    if (rc == 0)
        rc = cs_mgr_load_all(d.mgr);
    if (rc != 0) {
        fprintf(stderr, "curve-chunkserver: cannot load copysets from %s: %s\n", data_dir,
                curve_strerror(rc));
        goto err_after_mgr;
    }
    int purged = cs_mgr_purge_recycler(d.mgr,
                                       (uint64_t)curve_config_duration_ms(cfg,
                                                                          "recycler.purge_age"));
    if (purged > 0)
        CLOG_INFO("purged %d recycled copysets", purged);
    rc = raftrt_host_start(host);
    if (rc != 0) {
        fprintf(stderr, "curve-chunkserver: cannot listen on %s: %s\n", self, curve_strerror(rc));
        goto err_after_mgr;
    }
    curve_admin_opts ao = {.host = ip, .port = (uint16_t)curve_config_int(cfg, "admin_port"),
                           .role = "chunkserver", .metrics = reg};
    curve_admin *admin;
    rc = curve_admin_start(&ao, &admin);
    if (rc != 0) {
        fprintf(stderr, "curve-chunkserver: cannot start the admin server: %s\n",
                curve_strerror(rc));
        goto err_after_mgr;
    }
    curve_admin_set_status_cb(admin, status_cb, &d);
    curve_admin_set_health_cb(admin, health_cb, &d);
    if (curve_config_bool(cfg, "admin.failpoints"))
        (void)curve_admin_enable_failpoints(admin);
    const char *mds = curve_config_str(cfg, "mds_addrs");
    if (mds[0] != '\0') {
        cs_hb_opts hbo = {
            .mds_addrs = mds, .data_dir = data_dir, .ip = ip, .port = (uint32_t)port,
            .admin_port = curve_admin_port(admin), .mgr = d.mgr, .pool = d.pool,
            .interval_ms = (uint64_t)curve_config_duration_ms(cfg, "heartbeat.interval"),
            .timeout_ms = (uint32_t)curve_config_duration_ms(cfg, "heartbeat.timeout"),
        };
        rc = cs_hb_start(&hbo, &d.hb);
        if (rc != 0) {
            fprintf(stderr, "curve-chunkserver: bad --mds-addrs %s: %s\n", mds,
                    curve_strerror(rc));
            goto err_after_admin;
        }
    }
    rc = housekeeping_start(&d);
    if (rc != 0)
        goto err_after_hb;
    CLOG_INFO("serving on %s:%d with %u event loop(s)%s", ip, raftrt_host_port(host), ho.nloops,
              curve_config_int(cfg, "loops") == 0 ? " (loops=0: auto)" : "");
    printf("listening %s:%d admin %u\n", ip, raftrt_host_port(host), curve_admin_port(admin));
    fflush(stdout);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int sig = 0;
    sigwait(&set, &sig);
    CLOG_INFO("stopping (signal %d)", sig);
    rc = 0;
    housekeeping_stop(&d);
err_after_hb:
    cs_hb_stop(d.hb);
    d.hb = NULL;
err_after_admin:
    curve_admin_stop(admin);
err_after_mgr:
    cs_mgr_free(d.mgr); /* detaches every copyset first: late requests get COPYSET_NOTEXIST */
    raftrt_host_free(host);
err_after_pool:
    curve_cfp_close(d.pool);
err_after_reg:
    curve_metrics_free(reg);
    if (rc == 0) {
        printf("stopped\n");
        fflush(stdout);
    }
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    curve_config *cfg;
    char err[512];
    if (curve_config_new(cs_schema, CURVE_ARRAY_SIZE(cs_schema), &cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "curve-chunkserver: %s\n", err);
        return 2;
    }
    normalize_args(argc, argv);
    int rc = curve_config_parse_args(cfg, &argc, argv, err, sizeof(err));
    bool format = false, help = false;
    for (int i = 1; rc == 0 && i < argc; i++) {
        if (strcmp(argv[i], "--format") == 0)
            format = true;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            help = true;
        else {
            snprintf(err, sizeof(err), "unknown argument '%s'", argv[i]);
            rc = CURVE_ERR_CONFIG;
        }
    }
    if (rc == 0 && !help)
        rc = curve_config_check_required(cfg, err, sizeof(err));
    if (rc != 0 || help) {
        if (rc != 0)
            fprintf(stderr, "curve-chunkserver: %s\n", err);
        usage(cfg);
        curve_config_free(cfg);
        return help ? 0 : 2;
    }
    if (curve_failpoint_init_from_env() != 0) {
        fprintf(stderr, "curve-chunkserver: bad CURVE_FAILPOINTS\n");
        curve_config_free(cfg);
        return 2;
    }
    const char *log_file = curve_config_str(cfg, "log_file");
    if (curve_log_open(log_file) != 0) {
        fprintf(stderr, "curve-chunkserver: cannot open log %s\n", log_file);
        curve_config_free(cfg);
        return 2;
    }
    rc = format ? do_format(cfg) : serve(cfg);
    curve_config_free(cfg);
    curve_log_close();
    return rc;
}
