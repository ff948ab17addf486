/*
 * nbdkit-curve-plugin: exports one Curve-C volume over NBD (docs/nbd.md).
 *
 *   nbdkit curve volume=/dir/vol conf=/etc/curve/client.conf [exclusive=true]
 *          [readonly=true] [busy_retry_ms=5000] [mds.addrs=host:port,...]
 *          [client.<key>=<value> ...]
 *
 * One libcurve client and one open volume serve every connection of the nbdkit process: the
 * volume is opened once in .after_fork (libcurve starts threads, which must not cross nbdkit's
 * daemonizing fork) and shared, so NBD multi-conn is safe — all connections see the same
 * volume, and a flush on any connection is a barrier for writes acknowledged on all of them.
 * libcurve acknowledges a write only when it is durable on a quorum of replicas, so FUA is
 * native and free, and .flush only waits for writes still in flight.
 *
 * Thread model PARALLEL: libcurve volumes are thread-safe; nbd_io serializes only the
 * read-modify-write of partially written 4 KiB blocks.
 *
 * Shutdown: libcurve retries IO without bound while the cluster does not answer (a hung disk),
 * and nbdkit waits for the requests in progress before it exits, so a SIGTERM would never end
 * an export of a dead cluster. A watcher thread sleeps in nbdkit_nanosleep(), which returns
 * early once nbdkit is shutting down; then, if the requests still running have not finished
 * within shutdown_grace_ms, it calls curve_abort_io(): they fail with ESHUTDOWN and nbdkit
 * exits (docs/nbd.md "Stopping an export").
 */
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "curve/curve.h"
#include "nbd/nbd_io.h"

#define NBD_PLUGIN_MAX_OVERRIDES 32 /* client.* / mds.* keys passed through to libcurve */
/* A writer that crashed holds the volume until its session lease (5 s at the MDS) runs out, so
 * an nbdkit restarted right away is refused with -EBUSY: retry the open for about one lease. */
#define NBD_PLUGIN_BUSY_RETRY_MS_DEFAULT 5000u
#define NBD_PLUGIN_BUSY_RETRY_MS_MAX     3600000u /* bound of busy_retry_ms */
#define NBD_PLUGIN_BUSY_INTERVAL_MS      250u     /* pause between two busy attempts */
/* After nbdkit starts shutting down, requests still running get this long to finish before the
 * watcher aborts the volume's IO (a healthy cluster answers in milliseconds). */
#define NBD_PLUGIN_SHUTDOWN_GRACE_MS_DEFAULT 3000u
#define NBD_PLUGIN_SHUTDOWN_GRACE_MS_MAX     3600000u
#define NBD_PLUGIN_WATCH_STEP_MS             100u /* how fast the watcher notices .cleanup */

static struct {
    /* configuration (set in .config, on nbdkit's main thread) */
    char *volume;
    char *conf;                                    /* absolute path or NULL */
    char *overrides[NBD_PLUGIN_MAX_OVERRIDES + 1]; /* "key=value", NULL-terminated */
    unsigned noverrides;
    bool exclusive;
    bool readonly;
    uint32_t busy_retry_ms; /* retry -EBUSY at open this long; 0: fail at once */
    bool busy_retry_set;
    uint32_t shutdown_grace_ms; /* see NBD_PLUGIN_SHUTDOWN_GRACE_MS_DEFAULT */
    bool shutdown_grace_set;
    /* runtime (set in .after_fork, read-only afterwards until .cleanup) */
    curve_client *client;
    curve_volume *vol;
    struct nbd_io io;
    bool io_ready;
    /* shutdown watcher (started in .after_fork, joined in .cleanup) */
    pthread_t watcher;
    bool watcher_started;
    atomic_bool watcher_stop;
} g;

static int fail(int err, const char *what)
{
    nbdkit_error("curve: %s %s: %s", what, g.volume ? g.volume : "?", curve_strerror(err));
    nbdkit_set_error(nbd_io_errno(err));
    return -1;
}

static void curve_nbd_unload(void)
{
    free(g.volume);
    free(g.conf);
    for (unsigned i = 0; i < g.noverrides; i++)
        free(g.overrides[i]);
    memset(&g, 0, sizeof(g));
}

static int curve_nbd_config(const char *key, const char *value)
{
    if (strcmp(key, "volume") == 0) {
        if (value[0] != '/' || strlen(value) > CURVE_PATH_MAX) {
            nbdkit_error("curve: volume=%s: must be an absolute volume path (\"/dir/vol\")", value);
            return -1;
        }
        free(g.volume);
        g.volume = strdup(value);
        return g.volume ? 0 : -1;
    }
    if (strcmp(key, "conf") == 0) {
        free(g.conf);
        g.conf = nbdkit_absolute_path(value); /* nbdkit chdir's to / when it daemonizes */
        return g.conf ? 0 : -1;
    }
    if (strcmp(key, "exclusive") == 0 || strcmp(key, "readonly") == 0) {
        int b = nbdkit_parse_bool(value);
        if (b < 0)
            return -1; /* nbdkit_parse_bool printed the error */
        if (key[0] == 'e')
            g.exclusive = b;
        else
            g.readonly = b;
        return 0;
    }
    if (strcmp(key, "busy_retry_ms") == 0 || strcmp(key, "shutdown_grace_ms") == 0) {
        bool busy = key[0] == 'b';
        uint32_t ms, max = busy ? NBD_PLUGIN_BUSY_RETRY_MS_MAX : NBD_PLUGIN_SHUTDOWN_GRACE_MS_MAX;
        if (nbdkit_parse_uint32_t(key, value, &ms) < 0)
            return -1; /* printed the error */
        if (ms > max) {
            nbdkit_error("curve: %s=%s: at most %u", key, value, max);
            return -1;
        }
        if (busy) {
            g.busy_retry_ms = ms;
            g.busy_retry_set = true;
        } else {
            g.shutdown_grace_ms = ms;
            g.shutdown_grace_set = true;
        }
        return 0;
    }
    if (strncmp(key, "client.", 7) == 0 || strncmp(key, "mds.", 4) == 0) {
        if (g.noverrides == NBD_PLUGIN_MAX_OVERRIDES) {
            nbdkit_error("curve: more than %d client.*/mds.* keys", NBD_PLUGIN_MAX_OVERRIDES);
            return -1;
        }
        char *kv;
        if (asprintf(&kv, "%s=%s", key, value) < 0)
            return -1;
        g.overrides[g.noverrides++] = kv;
        return 0;
    }
    nbdkit_error("curve: unknown parameter '%s' (expected volume=, conf=, exclusive=, readonly=, "
                 "busy_retry_ms=, shutdown_grace_ms=, mds.addrs= or client.<key>=)",
                 key);
    return -1;
}

static int curve_nbd_config_complete(void)
{
    if (g.volume == NULL) {
        nbdkit_error("curve: the volume=/path parameter is required");
        return -1;
    }
    if (g.conf == NULL && g.noverrides == 0) {
        nbdkit_error("curve: give conf=<client.conf> or mds.addrs=host:port[,...]");
        return -1;
    }
    if (!g.busy_retry_set)
        g.busy_retry_ms = NBD_PLUGIN_BUSY_RETRY_MS_DEFAULT;
    if (!g.shutdown_grace_set)
        g.shutdown_grace_ms = NBD_PLUGIN_SHUTDOWN_GRACE_MS_DEFAULT;
    return 0;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* curve_open, retrying -EBUSY (the volume is open read-write elsewhere, possibly by a crashed
 * process whose session has not expired yet) every NBD_PLUGIN_BUSY_INTERVAL_MS until
 * busy_retry_ms have passed since the first attempt. Each retry is logged once. */
static int open_retry_busy(unsigned flags)
{
    uint64_t start = mono_ms();
    for (unsigned attempt = 1;; attempt++) {
        int r = curve_open(g.client, g.volume, flags, &g.vol);
        if (r != -EBUSY)
            return r;
        uint64_t waited = mono_ms() - start;
        if (waited + NBD_PLUGIN_BUSY_INTERVAL_MS > g.busy_retry_ms) {
            if (attempt > 1)
                nbdkit_error("curve: open %s: still busy after %u attempts in %" PRIu64
                             " ms (busy_retry_ms=%u)",
                             g.volume, attempt, waited, g.busy_retry_ms);
            return r;
        }
        nbdkit_error("curve: open %s: busy (open read-write elsewhere); retry %u in %u ms "
                     "(%" PRIu64 " of busy_retry_ms=%u ms used)",
                     g.volume, attempt, NBD_PLUGIN_BUSY_INTERVAL_MS, waited, g.busy_retry_ms);
        struct timespec pause = {0, (long)NBD_PLUGIN_BUSY_INTERVAL_MS * 1000000L};
        while (nanosleep(&pause, &pause) != 0 && errno == EINTR)
            ;
    }
}

/* Sleeps `ms` (against the monotonic clock) unless .cleanup asks the watcher to stop first;
 * returns false then. */
static bool watch_pause(uint32_t ms)
{
    uint64_t end = mono_ms() + ms;
    for (;;) {
        if (atomic_load(&g.watcher_stop))
            return false;
        uint64_t now = mono_ms();
        if (now >= end)
            return true;
        uint64_t step = end - now < NBD_PLUGIN_WATCH_STEP_MS ? end - now : NBD_PLUGIN_WATCH_STEP_MS;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)step * 1000000};
        nanosleep(&ts, NULL);
    }
}

/* The shutdown watcher (see the top of this file). nbdkit_nanosleep() fails with ESHUTDOWN
 * as soon as nbdkit has been told to stop (it polls nbdkit's quit pipe; this thread has no
 * connection, so a client disconnecting does not wake it). */
static void *shutdown_watch(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* nbdkit's signals are for its main thread */
    while (!atomic_load(&g.watcher_stop)) {
        if (nbdkit_nanosleep(0, NBD_PLUGIN_WATCH_STEP_MS * 1000000u) == 0)
            continue;
        if (errno != ESHUTDOWN) {
            (void)watch_pause(NBD_PLUGIN_WATCH_STEP_MS); /* poll failed: do not spin */
            continue;
        }
        /* .cleanup runs (and stops this thread) once every connection has finished: if that
         * takes longer than the grace, requests are stuck in libcurve's retries */
        if (!watch_pause(g.shutdown_grace_ms))
            return NULL;
        nbdkit_error("curve: %s: requests still running %u ms after the shutdown request "
                     "(the cluster does not answer): aborting them",
                     g.volume, g.shutdown_grace_ms);
        curve_abort_io(g.vol);
        return NULL;
    }
    return NULL;
}

static int curve_nbd_after_fork(void)
{
    int r = curve_client_init(g.conf, (const char *const *)g.overrides, &g.client);
    if (r < 0) {
        nbdkit_error("curve: client configuration %s: %s", g.conf ? g.conf : "(none)",
                     curve_strerror(r));
        return -1;
    }
    unsigned flags = g.readonly ? CURVE_OPEN_RDONLY : CURVE_OPEN_RDWR;
    if (g.exclusive)
        flags |= CURVE_OPEN_EXCLUSIVE;
    r = open_retry_busy(flags);
    if (r < 0) {
        fail(r, "open");
        goto err_after_client;
    }
    struct curve_stat st;
    r = curve_fstat(g.vol, &st);
    if (r < 0) {
        fail(r, "stat");
        goto err_after_open;
    }
    r = nbd_io_init(&g.io, g.vol, st.size);
    if (r < 0) {
        nbdkit_error("curve: %s: size %" PRIu64 " unusable: %s", g.volume, st.size,
                     curve_strerror(r));
        goto err_after_open;
    }
    g.io_ready = true;
    atomic_store(&g.watcher_stop, false);
    r = pthread_create(&g.watcher, NULL, shutdown_watch, NULL);
    if (r != 0) {
        nbdkit_error("curve: cannot start the shutdown watcher: %s", strerror(r));
        nbd_io_fini(&g.io);
        g.io_ready = false;
        goto err_after_open;
    }
    g.watcher_started = true;
    nbdkit_debug("curve: opened %s (%" PRIu64 " bytes, epoch %" PRIu64 ")%s%s", g.volume, st.size,
                 st.epoch, g.readonly ? " read-only" : "", g.exclusive ? " exclusive" : "");
    return 0;

err_after_open:
    curve_close(g.vol);
    g.vol = NULL;
err_after_client:
    curve_client_destroy(g.client);
    g.client = NULL;
    return -1;
}

static void curve_nbd_cleanup(void)
{
    if (g.watcher_started) {
        atomic_store(&g.watcher_stop, true);
        pthread_join(g.watcher, NULL); /* within one NBD_PLUGIN_WATCH_STEP_MS */
        g.watcher_started = false;
    }
    if (g.io_ready) {
        nbd_io_fini(&g.io);
        g.io_ready = false;
    }
    if (g.vol != NULL) {
        int r = curve_close(g.vol);
        if (r < 0)
            nbdkit_error("curve: close %s: %s", g.volume, curve_strerror(r));
        g.vol = NULL;
    }
    if (g.client != NULL) {
        curve_client_destroy(g.client);
        g.client = NULL;
    }
}

/* Every connection shares the one open volume; the handle only needs to be non-NULL. */
static void *curve_nbd_open(int readonly)
{
    if (!g.io_ready) {
        nbdkit_error("curve: volume %s is not open", g.volume);
        return NULL;
    }
    return &g;
}

static int64_t curve_nbd_get_size(void *h)
{
    return (int64_t)g.io.size;
}

static int curve_nbd_can_write(void *h)
{
    return !g.readonly;
}

static int curve_nbd_one(void *h)
{
    return 1;
}

/* Writes are durable when acknowledged (quorum-replicated): FUA costs nothing. */
static int curve_nbd_can_fua(void *h)
{
    return NBDKIT_FUA_NATIVE;
}

static int curve_nbd_block_size(void *h, uint32_t *minimum, uint32_t *preferred, uint32_t *maximum)
{
    *minimum = 1; /* unaligned requests are read-modify-written by nbd_io */
    *preferred = NBD_IO_ALIGN;
    *maximum = 0xffffffff;
    return 0;
}

static int curve_nbd_pread(void *h, void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
    int r = nbd_io_read(&g.io, buf, count, offset);
    return r < 0 ? fail(r, "read") : 0;
}

static int curve_nbd_pwrite(void *h, const void *buf, uint32_t count, uint64_t offset,
                            uint32_t flags)
{
    int r = nbd_io_write(&g.io, buf, count, offset);
    return r < 0 ? fail(r, "write") : 0;
}

static int curve_nbd_flush(void *h, uint32_t flags)
{
    int r = nbd_io_flush(&g.io);
    return r < 0 ? fail(r, "flush") : 0;
}

static int curve_nbd_trim(void *h, uint32_t count, uint64_t offset, uint32_t flags)
{
    int r = nbd_io_trim(&g.io, count, offset);
    return r < 0 ? fail(r, "trim") : 0;
}

static int curve_nbd_zero(void *h, uint32_t count, uint64_t offset, uint32_t flags)
{
    bool may_trim = (flags & NBDKIT_FLAG_MAY_TRIM) != 0;
    if ((flags & NBDKIT_FLAG_FAST_ZERO) && !may_trim) {
        /* Writing zeros is no faster than the client writing them itself. */
        nbdkit_set_error(ENOTSUP);
        return -1;
    }
    int r = nbd_io_zero(&g.io, count, offset, may_trim);
    return r < 0 ? fail(r, "zero") : 0;
}

/* Block status: Curve allocates a segment (64 MiB … 1 GiB) on the first write into it; an
 * unallocated segment holds nothing and reads as zeros, so it is reported as a hole. An
 * allocated segment is reported as data (libcurve does not track which of its chunks were
 * written). At most NBD_PLUGIN_EXTENTS_MAX segments per request (each may cost an MDS call);
 * nbdkit asks again for the rest. */
#define NBD_PLUGIN_EXTENTS_MAX 64

static int curve_nbd_extents(void *h, uint32_t count, uint64_t offset, uint32_t flags,
                             struct nbdkit_extents *extents)
{
    uint64_t end = offset + count;
    unsigned n = 0;
    while (offset < end && n < NBD_PLUGIN_EXTENTS_MAX) {
        uint64_t start, len;
        bool hole;
        int r = nbd_io_block_status(&g.io, offset, &start, &len, &hole);
        if (r < 0)
            return fail(r, "block status");
        uint32_t type = hole ? NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO : 0;
        if (nbdkit_add_extent(extents, start, len, type) < 0)
            return -1; /* nbdkit set the error */
        offset = start + len;
        n++;
        if (flags & NBDKIT_FLAG_REQ_ONE)
            break;
    }
    return 0;
}

static int curve_nbd_thread_model(void)
{
    return NBDKIT_THREAD_MODEL_PARALLEL;
}

static void curve_nbd_dump_plugin(void)
{
    printf("curve_version=%s\n", curve_version());
    printf("curve_api_version=%d\n", CURVE_API_VERSION);
}

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

static struct nbdkit_plugin plugin = {
    .name = CURVE_NBD_PLUGIN_NAME,
    .longname = "Curve-C block volume",
    .version = "0.1.0",
    .description = "Exports a Curve-C volume (libcurve) over NBD",
    .unload = curve_nbd_unload,
    .config = curve_nbd_config,
    .config_complete = curve_nbd_config_complete,
    .config_help = "volume=<PATH>          (required) volume path, e.g. /dir/vol\n"
                   "conf=<FILE>            libcurve client configuration file\n"
                   "mds.addrs=<ADDRS>      MDS addresses host:port[,...] (overrides conf)\n"
                   "client.<key>=<VALUE>   any libcurve client key (docs/client.md)\n"
                   "exclusive=<BOOL>       fence other writers of the volume (epoch bump)\n"
                   "readonly=<BOOL>        open the volume read-only\n"
                   "busy_retry_ms=<MS>     retry an open refused as busy this long (5000; 0: no)\n"
                   "shutdown_grace_ms=<MS> on shutdown, abort requests still running after this "
                   "long (3000)",
    .magic_config_key = "volume",
    .after_fork = curve_nbd_after_fork,
    .cleanup = curve_nbd_cleanup,
    .open = curve_nbd_open,
    .get_size = curve_nbd_get_size,
    .can_write = curve_nbd_can_write,
    .can_flush = curve_nbd_one,
    .can_trim = curve_nbd_one,
    .can_zero = curve_nbd_one,
    .can_fast_zero = curve_nbd_one,
    .can_multi_conn = curve_nbd_one,
    .can_fua = curve_nbd_can_fua,
    .block_size = curve_nbd_block_size,
    .pread = curve_nbd_pread,
    .pwrite = curve_nbd_pwrite,
    .flush = curve_nbd_flush,
    .trim = curve_nbd_trim,
    .zero = curve_nbd_zero,
    .can_extents = curve_nbd_one,
    .extents = curve_nbd_extents,
    .thread_model = curve_nbd_thread_model,
    .dump_plugin = curve_nbd_dump_plugin,
    .errno_is_preserved = 0,
};

NBDKIT_REGISTER_PLUGIN(plugin)
