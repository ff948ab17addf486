/* Chunk file pool: see chunkfilepool.h for the directory layout and the recovery rules. */
#include "chunkserver/chunkfilepool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/assert.h"
#include "common/crc32c.h"
#include "common/failpoint.h"
#include "common/log.h"
#include "curve/errors.h"

/* ---- header codec ------------------------------------------------------------------------ */

CURVE_STATIC_ASSERT(CURVE_CHUNK_HEADER_LEN == 64, "header layout is 64 bytes");
CURVE_STATIC_ASSERT(CURVE_CHUNK_HEADER_LEN <= CURVE_CHUNK_HEADER_SIZE, "header fits its page");
CURVE_STATIC_ASSERT(CURVE_CFP_IO_BLOCK % CURVE_CHUNK_HEADER_SIZE == 0, "io block alignment");

enum {
    HDR_OFF_MAGIC = 0,
    HDR_OFF_VERSION = 8,
    HDR_OFF_FLAGS = 12,
    HDR_OFF_CHUNK_ID = 16,
    HDR_OFF_SN = 24,
    HDR_OFF_CORRECTED_SN = 32,
    HDR_OFF_CHUNK_SIZE = 40,
    HDR_OFF_HEADER_SIZE = 44,
    HDR_OFF_RESERVED = 48,
    HDR_OFF_CRC = 60,
};
CURVE_STATIC_ASSERT(HDR_OFF_CRC + 4 == CURVE_CHUNK_HEADER_LEN, "crc closes the header");

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_le32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

void curve_chunk_header_encode(const curve_chunk_header *h, uint8_t *page)
{
    memset(page, 0, CURVE_CHUNK_HEADER_SIZE);
    put_le64(page + HDR_OFF_MAGIC, CURVE_CHUNK_MAGIC);
    put_le32(page + HDR_OFF_VERSION, h->version);
    put_le32(page + HDR_OFF_FLAGS, h->flags);
    put_le64(page + HDR_OFF_CHUNK_ID, h->chunk_id);
    put_le64(page + HDR_OFF_SN, h->sn);
    put_le64(page + HDR_OFF_CORRECTED_SN, h->corrected_sn);
    put_le32(page + HDR_OFF_CHUNK_SIZE, h->chunk_size);
    put_le32(page + HDR_OFF_HEADER_SIZE, CURVE_CHUNK_HEADER_SIZE);
    put_le32(page + HDR_OFF_CRC, curve_crc32c(0, page, HDR_OFF_CRC));
}

int curve_chunk_header_decode(const uint8_t *buf, size_t len, curve_chunk_header *h)
{
    if (buf == NULL || len < CURVE_CHUNK_HEADER_LEN)
        return CURVE_ERR_CORRUPT;
    if (get_le64(buf + HDR_OFF_MAGIC) != CURVE_CHUNK_MAGIC)
        return CURVE_ERR_CORRUPT;
    if (get_le32(buf + HDR_OFF_CRC) != curve_crc32c(0, buf, HDR_OFF_CRC))
        return CURVE_ERR_CORRUPT;
    uint32_t version = get_le32(buf + HDR_OFF_VERSION);
    uint32_t flags = get_le32(buf + HDR_OFF_FLAGS);
    uint32_t chunk_size = get_le32(buf + HDR_OFF_CHUNK_SIZE);
    if (version != CURVE_CHUNK_VERSION || (flags & ~CURVE_CHUNK_FLAGS_KNOWN) != 0)
        return CURVE_ERR_CORRUPT;
    if (get_le32(buf + HDR_OFF_HEADER_SIZE) != CURVE_CHUNK_HEADER_SIZE)
        return CURVE_ERR_CORRUPT;
    if (chunk_size < CURVE_CHUNK_SIZE_MIN || chunk_size > CURVE_CHUNK_SIZE_MAX ||
        chunk_size % CURVE_CHUNK_HEADER_SIZE != 0)
        return CURVE_ERR_CORRUPT;
    for (size_t i = HDR_OFF_RESERVED; i < HDR_OFF_CRC; i++)
        if (buf[i] != 0)
            return CURVE_ERR_CORRUPT;
    size_t pad_end = len < CURVE_CHUNK_HEADER_SIZE ? len : CURVE_CHUNK_HEADER_SIZE;
    for (size_t i = CURVE_CHUNK_HEADER_LEN; i < pad_end; i++)
        if (buf[i] != 0)
            return CURVE_ERR_CORRUPT;
    h->version = version;
    h->flags = flags;
    h->chunk_id = get_le64(buf + HDR_OFF_CHUNK_ID);
    h->sn = get_le64(buf + HDR_OFF_SN);
    h->corrected_sn = get_le64(buf + HDR_OFF_CORRECTED_SN);
    h->chunk_size = chunk_size;
    return 0;
}

/* ---- pool --------------------------------------------------------------------------------- */

/* Exported gauges (see curve_cfp_opts.metrics). */
enum { CFP_G_READY, CFP_G_DIRTY, CFP_G_TARGET, CFP_G_FORMATTED, CFP_G_BYTES, CFP_G_FAILED,
       CFP_NGAUGES };

/* A growable stack of file indexes. */
typedef struct cfp_vec {
    uint64_t *v;
    size_t n, cap;
} cfp_vec;

struct curve_cfp {
    char *dir;
    uint32_t chunk_size;
    uint64_t file_size;
    uint64_t reserve_bytes;
    atomic_int failed;  /* 0 or the first negative errno that failed the disk */
    atomic_bool stop;   /* asks the worker to stop between two IO blocks */

    /* mu protects everything below; cv signals any change (work for the worker, progress for
     * curve_cfp_wait). */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started;
    pthread_t thread;
    cfp_vec ready;
    cfp_vec dirty;
    unsigned zeroing;   /* dirty files being zeroed by the worker (0 or 1) */
    uint64_t next_idx;
    curve_cfp_state state;
    uint64_t format_target, formatted, bytes_written, zeroed, gets, puts;
    uint64_t empty_creates;        /* chunk files created on demand (pool was empty) */
    uint64_t empty_warn_ms;        /* CLOCK_MONOTONIC ms of the last "pool empty" warning */
    uint64_t empty_warn_skipped;   /* warnings suppressed since then */
    bool disk_full;

    void (*fail_cb)(void *ctx, int err); /* curve_cfp_set_fail_cb */
    void *fail_ctx;

    curve_gauge *gauges[CFP_NGAUGES]; /* registered in open, unregistered in close */
    curve_counter *empty_creates_ctr; /* idem */
};

static int vec_push(cfp_vec *v, uint64_t x)
{
    if (v->n == v->cap) {
        size_t ncap = v->cap ? v->cap * 2 : 64;
        uint64_t *nv = realloc(v->v, ncap * sizeof(*nv));
        if (nv == NULL)
            return -ENOMEM;
        v->v = nv;
        v->cap = ncap;
    }
    v->v[v->n++] = x;
    return 0;
}

static uint64_t vec_pop(cfp_vec *v)
{
    CURVE_ASSERT(v->n > 0);
    return v->v[--v->n];
}

static void cfp_path(const curve_cfp *p, uint64_t idx, const char *suffix, char *out, size_t len)
{
    int n = snprintf(out, len, "%s/%llu%s", p->dir, (unsigned long long)idx, suffix);
    CURVE_ASSERT(n > 0 && (size_t)n < len);
}

/* fsyncs a directory so that renames/creates/unlinks in it are durable. */
static int fsync_dir(const char *dir)
{
    return curve_fsync_dir(dir);
}

/* fsyncs the directory containing `path`. */
static int fsync_parent(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return fsync_dir(".");
    size_t n = (size_t)(slash - path);
    if (n == 0)
        return fsync_dir("/");
    if (n >= sizeof(dir))
        return -ENAMETOOLONG;
    memcpy(dir, path, n);
    dir[n] = '\0';
    return fsync_dir(dir);
}

/* Called with mu held, so that waiters see `failed`, `state` and the counters change
 * together. Returns true for the first failure. */
static bool cfp_mark_failed_locked(curve_cfp *p, int err)
{
    int expected = 0;
    CURVE_ASSERT(err < 0);
    if (!atomic_compare_exchange_strong(&p->failed, &expected, err))
        return false;
    p->state = CURVE_CFP_FAILED;
    pthread_cond_broadcast(&p->cv);
    return true;
}

/* Runs the fail hook for the first failure `err`; called without mu. The hook runs under mu
 * (it must not block nor call the pool) so that curve_cfp_set_fail_cb(NULL) returns only once
 * no call is in flight. */
static void cfp_run_fail_cb(curve_cfp *p, int err)
{
    pthread_mutex_lock(&p->mu);
    if (p->fail_cb != NULL)
        p->fail_cb(p->fail_ctx, err);
    pthread_mutex_unlock(&p->mu);
}

void curve_cfp_mark_failed(curve_cfp *p, int err)
{
    pthread_mutex_lock(&p->mu);
    bool first = cfp_mark_failed_locked(p, err);
    pthread_mutex_unlock(&p->mu);
    if (first) {
        CLOG_ERROR("disk of chunk file pool %s marked FAILED: %s", p->dir, curve_strerror(err));
        cfp_run_fail_cb(p, err);
    }
}

void curve_cfp_set_fail_cb(curve_cfp *p, void (*cb)(void *ctx, int err), void *ctx)
{
    pthread_mutex_lock(&p->mu);
    p->fail_cb = cb;
    p->fail_ctx = ctx;
    int err = curve_cfp_failed(p);
    if (err != 0 && cb != NULL)
        cb(ctx, err);
    pthread_mutex_unlock(&p->mu);
}

int curve_cfp_failed(const curve_cfp *p)
{
    return atomic_load_explicit(&p->failed, memory_order_relaxed);
}

int curve_cfp_disk_usage(const curve_cfp *p, uint64_t *total_bytes, uint64_t *avail_bytes)
{
    struct statvfs sv;
    if (statvfs(p->dir, &sv) != 0)
        return -errno;
    *total_bytes = (uint64_t)sv.f_blocks * sv.f_frsize;
    *avail_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
    return 0;
}

uint32_t curve_cfp_chunk_size(const curve_cfp *p)
{
    return p->chunk_size;
}

const char *curve_cfp_dir(const curve_cfp *p)
{
    return p->dir;
}

const char *curve_cfp_state_name(curve_cfp_state s)
{
    switch (s) {
    case CURVE_CFP_IDLE: return "idle";
    case CURVE_CFP_FORMATTING: return "formatting";
    case CURVE_CFP_DONE: return "done";
    case CURVE_CFP_FAILED: return "failed";
    }
    return "?";
}

/* Parses "<n><suffix>" strictly (decimal, no sign, no leading zeros except "0"). */
static bool parse_pool_name(const char *name, const char *suffix, uint64_t *idx)
{
    size_t len = strlen(name), slen = strlen(suffix);
    if (len <= slen || strcmp(name + len - slen, suffix) != 0)
        return false;
    size_t digits = len - slen;
    if (digits > 19 || (digits > 1 && name[0] == '0'))
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < digits; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    *idx = v;
    return true;
}

/* Checks that a "<n>" file looks ready: right size, valid FREE header. */
static bool cfp_file_is_ready(const curve_cfp *p, const char *path)
{
    uint8_t page[CURVE_CHUNK_HEADER_SIZE];
    curve_chunk_header h;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = fstat(fd, &st) == 0 && (uint64_t)st.st_size == p->file_size &&
              pread(fd, page, sizeof(page), 0) == (ssize_t)sizeof(page) &&
              curve_chunk_header_decode(page, sizeof(page), &h) == 0 &&
              (h.flags & CURVE_CHUNK_FLAG_FREE) && h.chunk_size == p->chunk_size;
    close(fd);
    return ok;
}

/* Scans the pool directory (see curve_cfp_open). */
static int cfp_scan(curve_cfp *p)
{
    char path[PATH_MAX], dpath[PATH_MAX];
    bool changed = false;
    int rc = 0;
    DIR *d = opendir(p->dir);
    if (d == NULL) {
        rc = -errno;
        CLOG_ERROR("cannot open chunk file pool %s: %s", p->dir, curve_strerror(rc));
        return rc;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t idx;
        struct stat st;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (parse_pool_name(de->d_name, ".tmp", &idx)) {
            cfp_path(p, idx, ".tmp", path, sizeof(path));
            CLOG_WARN("removing half-formatted pool file %s", path);
            if (unlink(path) != 0 && errno != ENOENT) {
                rc = -errno;
                break;
            }
            changed = true;
        } else if (parse_pool_name(de->d_name, ".dirty", &idx)) {
            cfp_path(p, idx, ".dirty", path, sizeof(path));
            if (lstat(path, &st) != 0) {
                rc = -errno;
                break;
            }
            if (st.st_nlink > 1) {
                /* An interrupted replace: the inode is still a live chunk. */
                CLOG_WARN("dropping pool link %s still linked elsewhere", path);
                if (unlink(path) != 0) {
                    rc = -errno;
                    break;
                }
                changed = true;
            } else if ((rc = vec_push(&p->dirty, idx)) != 0) {
                break;
            }
        } else if (parse_pool_name(de->d_name, "", &idx)) {
            cfp_path(p, idx, "", path, sizeof(path));
            if (lstat(path, &st) != 0) {
                rc = -errno;
                break;
            }
            if (st.st_nlink > 1) {
                CLOG_WARN("dropping pool link %s still linked elsewhere", path);
                if (unlink(path) != 0) {
                    rc = -errno;
                    break;
                }
                changed = true;
            } else if (cfp_file_is_ready(p, path)) {
                rc = vec_push(&p->ready, idx);
            } else {
                CLOG_WARN("pool file %s has a bad size or header: zeroing it again", path);
                cfp_path(p, idx, ".dirty", dpath, sizeof(dpath));
                if (rename(path, dpath) != 0) {
                    rc = -errno;
                    break;
                }
                changed = true;
                rc = vec_push(&p->dirty, idx);
            }
            if (rc != 0)
                break;
        } else {
            CLOG_WARN("ignoring unexpected file %s/%s in chunk file pool", p->dir, de->d_name);
            continue;
        }
        if (idx >= p->next_idx)
            p->next_idx = idx + 1;
    }
    closedir(d);
    if (rc == 0 && changed)
        rc = fsync_dir(p->dir);
    if (rc != 0)
        CLOG_ERROR("scanning chunk file pool %s: %s", p->dir, curve_strerror(rc));
    return rc;
}

static int cfp_compute_target(curve_cfp *p, const curve_cfp_opts *o)
{
    uint64_t total = o->target_files;
    if (total == 0) {
        struct statvfs sv;
        if (statvfs(p->dir, &sv) != 0)
            return -errno;
        uint64_t fs_bytes = (uint64_t)sv.f_blocks * sv.f_frsize;
        total = (uint64_t)((long double)fs_bytes * o->target_pct / 100.0L) / p->file_size;
    }
    uint64_t have = p->ready.n + p->dirty.n + o->in_use_files;
    p->format_target = total > have ? total - have : 0;
    return 0;
}

#define CFP_GAUGE_FN(fn, expr)                                                                     \
    static double fn(void *ctx)                                                                    \
    {                                                                                              \
        curve_cfp_stats st;                                                                        \
        curve_cfp_get_stats(ctx, &st);                                                             \
        return (double)(expr);                                                                     \
    }
CFP_GAUGE_FN(cfp_g_ready, st.ready)
CFP_GAUGE_FN(cfp_g_dirty, st.dirty)
CFP_GAUGE_FN(cfp_g_target, st.format_target)
CFP_GAUGE_FN(cfp_g_formatted, st.formatted)
CFP_GAUGE_FN(cfp_g_bytes, st.bytes_written)
CFP_GAUGE_FN(cfp_g_failed, st.failed_err != 0)

static double cfp_c_empty_creates(void *ctx)
{
    curve_cfp_stats st;
    curve_cfp_get_stats(ctx, &st);
    return (double)st.empty_creates;
}

static void cfp_unregister_metrics(curve_cfp *p)
{
    curve_counter_unregister(p->empty_creates_ctr);
    p->empty_creates_ctr = NULL;
    for (int i = 0; i < CFP_NGAUGES; i++) {
        curve_gauge_unregister(p->gauges[i]);
        p->gauges[i] = NULL;
    }
}

static int cfp_register_metrics(curve_cfp *p, curve_metrics *reg)
{
    static const struct {
        const char *name, *help;
        curve_gauge_cb cb;
    } defs[CFP_NGAUGES] = {
        [CFP_G_READY] = {"curve_chunkfilepool_ready_files", "Chunk files ready to be taken",
                         cfp_g_ready},
        [CFP_G_DIRTY] = {"curve_chunkfilepool_dirty_files",
                         "Returned chunk files waiting to be zeroed", cfp_g_dirty},
        [CFP_G_TARGET] = {"curve_chunkfilepool_format_target_files",
                          "Chunk files the formatter creates in this run", cfp_g_target},
        [CFP_G_FORMATTED] = {"curve_chunkfilepool_formatted_files",
                             "Chunk files created by the formatter in this run",
                             cfp_g_formatted},
        [CFP_G_BYTES] = {"curve_chunkfilepool_written_bytes",
                         "Bytes written by formatting and zeroing in this run", cfp_g_bytes},
        [CFP_G_FAILED] = {"curve_chunkfilepool_disk_failed",
                          "1 when the disk has been marked failed", cfp_g_failed},
    };
    const char *disk = p->dir;
    size_t dlen = strlen(disk);
    if (dlen > CURVE_METRIC_LABEL_VALUE_MAX)
        disk += dlen - CURVE_METRIC_LABEL_VALUE_MAX; /* keep the distinctive tail */
    const char *labels[] = {"disk", disk, NULL};
    for (int i = 0; i < CFP_NGAUGES; i++) {
        int rc = curve_metrics_gauge_fn(reg, defs[i].name, defs[i].help, labels, defs[i].cb, p,
                                        &p->gauges[i]);
        if (rc != 0) {
            CLOG_ERROR("registering metric %s for %s: %s", defs[i].name, p->dir,
                       curve_strerror(rc));
            cfp_unregister_metrics(p);
            return rc;
        }
    }
    int rc = curve_metrics_counter_fn(
        reg, "curve_chunkfilepool_empty_creates_total",
        "Chunk files created on demand because the pool had no ready file", labels,
        cfp_c_empty_creates, p, &p->empty_creates_ctr);
    if (rc != 0) {
        CLOG_ERROR("registering metric curve_chunkfilepool_empty_creates_total for %s: %s",
                   p->dir, curve_strerror(rc));
        cfp_unregister_metrics(p);
    }
    return rc;
}

int curve_cfp_open(const curve_cfp_opts *o, curve_cfp **out)
{
    int rc;
    if (o == NULL || out == NULL || o->dir == NULL || o->dir[0] == '\0' ||
        o->chunk_size < CURVE_CHUNK_SIZE_MIN || o->chunk_size > CURVE_CHUNK_SIZE_MAX ||
        o->chunk_size % CURVE_CHUNK_HEADER_SIZE != 0 || o->target_pct > 100 ||
        strlen(o->dir) > PATH_MAX - 64)
        return -EINVAL;
    if (o->target_files == 0 && o->target_pct == 0)
        return CURVE_ERR_CONFIG;

    curve_cfp *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->dir = strdup(o->dir);
    if (p->dir == NULL) {
        rc = -ENOMEM;
        goto err_after_alloc;
    }
    p->chunk_size = o->chunk_size;
    p->file_size = (uint64_t)o->chunk_size + CURVE_CHUNK_HEADER_SIZE;
    p->reserve_bytes = o->reserve_bytes;
    atomic_init(&p->failed, 0);
    atomic_init(&p->stop, false);
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    p->state = CURVE_CFP_IDLE;

    if (mkdir(p->dir, 0755) != 0 && errno != EEXIST) {
        rc = -errno;
        CLOG_ERROR("cannot create chunk file pool dir %s: %s", p->dir, curve_strerror(rc));
        goto err_after_init;
    }
    rc = cfp_scan(p);
    if (rc != 0)
        goto err_after_init;
    rc = cfp_compute_target(p, o);
    if (rc != 0)
        goto err_after_init;
    if (o->metrics != NULL && (rc = cfp_register_metrics(p, o->metrics)) != 0)
        goto err_after_init;
    CLOG_INFO("chunk file pool %s: %zu ready, %zu to zero, %llu to format (chunk %u bytes)",
              p->dir, p->ready.n, p->dirty.n, (unsigned long long)p->format_target,
              p->chunk_size);
    *out = p;
    return 0;

err_after_init:
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->ready.v);
    free(p->dirty.v);
    free(p->dir);
err_after_alloc:
    free(p);
    return rc;
}

/* Writes a FREE header page and zeros over the whole file, then fdatasyncs. Returns 0,
 * -ECANCELED (stop requested), or -errno (failpoint "chunkfilepool.format" or ".zero" injects
 * before each write). */
static int cfp_write_file(curve_cfp *p, int fd, const uint8_t *zeros, bool formatting)
{
    uint8_t page[CURVE_CHUNK_HEADER_SIZE];
    curve_chunk_header h = {.version = CURVE_CHUNK_VERSION,
                            .flags = CURVE_CHUNK_FLAG_FREE,
                            .chunk_size = p->chunk_size};
    uint64_t off = 0;
    curve_chunk_header_encode(&h, page);
    while (off < p->file_size) {
        if (atomic_load(&p->stop))
            return -ECANCELED;
        const uint8_t *src = off == 0 ? page : zeros;
        size_t len = off == 0 ? CURVE_CHUNK_HEADER_SIZE : CURVE_CFP_IO_BLOCK;
        if (len > p->file_size - off)
            len = (size_t)(p->file_size - off);
        int rc = formatting ? CURVE_FAILPOINT("chunkfilepool.format")
                            : CURVE_FAILPOINT("chunkfilepool.zero");
        if (rc != 0)
            return rc;
        ssize_t n = pwrite(fd, src, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;
        off += (uint64_t)n;
        pthread_mutex_lock(&p->mu);
        p->bytes_written += (uint64_t)n;
        pthread_mutex_unlock(&p->mu);
    }
    if (ftruncate(fd, (off_t)p->file_size) != 0)
        return -errno;
    if (fdatasync(fd) != 0)
        return -errno;
    /* Drop the (clean) zero pages: they were cached as large folios by the big writes, and a
     * later 4 KiB chunk write into a large folio walks all its buffer heads and dirties the
     * whole folio (measured: ~2x the CPU per 4 KiB write). Advisory; also frees the memory. */
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    return 0;
}

/* Formats file `idx`. Returns 0, 1 (file system full: nothing created), -ECANCELED or -errno. */
static int cfp_format_one(curve_cfp *p, uint64_t idx, const uint8_t *zeros)
{
    char tmp[PATH_MAX], final[PATH_MAX];
    struct statvfs sv;
    if (statvfs(p->dir, &sv) != 0)
        return -errno;
    if ((uint64_t)sv.f_bavail * sv.f_frsize < p->file_size + p->reserve_bytes)
        return 1;
    cfp_path(p, idx, ".tmp", tmp, sizeof(tmp));
    cfp_path(p, idx, "", final, sizeof(final));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = cfp_write_file(p, fd, zeros, true);
    close(fd);
    if (rc == 0 && rename(tmp, final) != 0)
        rc = -errno;
    if (rc == 0)
        rc = fsync_dir(p->dir);
    if (rc == -ENOSPC) {
        unlink(tmp);
        return 1;
    }
    return rc;
}

/* Zeroes returned file `idx`. Returns 0 (now ready), 1 (dropped: still linked elsewhere),
 * -ECANCELED or -errno. */
static int cfp_zero_one(curve_cfp *p, uint64_t idx, const uint8_t *zeros)
{
    char dirty[PATH_MAX], final[PATH_MAX];
    struct stat st;
    cfp_path(p, idx, ".dirty", dirty, sizeof(dirty));
    cfp_path(p, idx, "", final, sizeof(final));
    int fd = open(dirty, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    if (st.st_nlink > 1) {
        close(fd);
        CLOG_WARN("pool file %s is still linked elsewhere: dropping it", dirty);
        return unlink(dirty) == 0 ? 1 : -errno;
    }
    int rc = cfp_write_file(p, fd, zeros, false);
    close(fd);
    if (rc == 0 && rename(dirty, final) != 0)
        rc = -errno;
    if (rc == 0)
        rc = fsync_dir(p->dir);
    return rc;
}

static void *cfp_worker(void *arg)
{
    curve_cfp *p = arg;
    uint8_t *zeros = calloc(1, CURVE_CFP_IO_BLOCK);
    if (zeros == NULL) {
        curve_cfp_mark_failed(p, -ENOMEM);
        return NULL;
    }
    pthread_mutex_lock(&p->mu);
    while (!atomic_load(&p->stop)) {
        if (curve_cfp_failed(p) != 0) {
            pthread_cond_wait(&p->cv, &p->mu);
            continue;
        }
        int rc;
        if (p->dirty.n > 0) {
            uint64_t idx = vec_pop(&p->dirty);
            p->zeroing++;
            pthread_mutex_unlock(&p->mu);
            rc = cfp_zero_one(p, idx, zeros);
            pthread_mutex_lock(&p->mu);
            p->zeroing--;
            if (rc == 0) {
                p->zeroed++;
                if (vec_push(&p->ready, idx) != 0)
                    rc = -ENOMEM;
            } else if (rc == -ECANCELED) {
                (void)vec_push(&p->dirty, idx); /* capacity exists: it was just popped */
            }
        } else if (p->formatted < p->format_target && !p->disk_full) {
            uint64_t idx = p->next_idx++;
            pthread_mutex_unlock(&p->mu);
            rc = cfp_format_one(p, idx, zeros);
            pthread_mutex_lock(&p->mu);
            if (rc == 0) {
                p->formatted++;
                if (vec_push(&p->ready, idx) != 0)
                    rc = -ENOMEM;
            } else if (rc == 1) {
                CLOG_WARN("chunk file pool %s: file system full after %llu of %llu files",
                          p->dir, (unsigned long long)p->formatted,
                          (unsigned long long)p->format_target);
                p->disk_full = true;
            }
        } else {
            if (p->state == CURVE_CFP_FORMATTING) {
                p->state = CURVE_CFP_DONE;
                CLOG_INFO("chunk file pool %s: formatting done, %zu files ready", p->dir,
                          p->ready.n);
                pthread_cond_broadcast(&p->cv);
            }
            pthread_cond_wait(&p->cv, &p->mu);
            continue;
        }
        /* Fail in the same critical section that retired the file, so that no waiter sees
         * "nothing left to do" before it sees the failure. */
        if (rc < 0 && rc != -ECANCELED && cfp_mark_failed_locked(p, rc)) {
            CLOG_ERROR("disk of chunk file pool %s marked FAILED: %s", p->dir,
                       curve_strerror(rc));
            pthread_cond_broadcast(&p->cv);
            pthread_mutex_unlock(&p->mu);
            cfp_run_fail_cb(p, rc);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    free(zeros);
    return NULL;
}

int curve_cfp_start(curve_cfp *p)
{
    pthread_mutex_lock(&p->mu);
    if (p->started) {
        pthread_mutex_unlock(&p->mu);
        return -EALREADY;
    }
    if (p->state == CURVE_CFP_IDLE)
        p->state = CURVE_CFP_FORMATTING;
    int rc = -pthread_create(&p->thread, NULL, cfp_worker, p);
    p->started = rc == 0;
    pthread_mutex_unlock(&p->mu);
    return rc;
}

void curve_cfp_close(curve_cfp *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, true);
    pthread_cond_broadcast(&p->cv);
    bool started = p->started;
    pthread_mutex_unlock(&p->mu);
    if (started)
        pthread_join(p->thread, NULL);
    cfp_unregister_metrics(p);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->ready.v);
    free(p->dirty.v);
    free(p->dir);
    free(p);
}

/* Called with mu held. */
static bool cfp_settled(const curve_cfp *p)
{
    return (p->state == CURVE_CFP_DONE || p->formatted >= p->format_target || p->disk_full) &&
           p->dirty.n == 0 && p->zeroing == 0 && p->state != CURVE_CFP_IDLE;
}

int curve_cfp_wait(curve_cfp *p, uint64_t min_ready, uint64_t timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += (time_t)(timeout_ms / 1000);
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (curve_cfp_failed(p) != 0) {
            rc = CURVE_ERR_DISK_FAIL;
            break;
        }
        if (p->ready.n >= min_ready || cfp_settled(p))
            break;
        if (pthread_cond_timedwait(&p->cv, &p->mu, &deadline) == ETIMEDOUT) {
            rc = p->ready.n >= min_ready || cfp_settled(p) ? 0 : CURVE_ERR_TIMEOUT;
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* Queues `idx` as dirty (its header no longer says FREE) and wakes the worker. */
static void cfp_requeue_dirty(curve_cfp *p, uint64_t idx)
{
    char from[PATH_MAX], to[PATH_MAX];
    cfp_path(p, idx, "", from, sizeof(from));
    cfp_path(p, idx, ".dirty", to, sizeof(to));
    if (rename(from, to) != 0) {
        CLOG_WARN("cannot requeue pool file %s: %s (rescanned at next open)", from,
                  curve_strerror(-errno));
        return;
    }
    pthread_mutex_lock(&p->mu);
    if (vec_push(&p->dirty, idx) != 0)
        CLOG_WARN("out of memory queueing %s: zeroed at next open", to);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static uint64_t cfp_new_idx(curve_cfp *p);

/* Logs "pool empty" at most once per CFP_EMPTY_WARN_MS, with the number of suppressed ones. */
#define CFP_EMPTY_WARN_MS 10000u
static void cfp_warn_empty(curve_cfp *p, const char *dst_path, const char *what)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    pthread_mutex_lock(&p->mu);
    bool log = p->empty_warn_ms == 0 || now_ms - p->empty_warn_ms >= CFP_EMPTY_WARN_MS;
    uint64_t skipped = p->empty_warn_skipped;
    if (log) {
        p->empty_warn_ms = now_ms == 0 ? 1 : now_ms;
        p->empty_warn_skipped = 0;
    } else {
        p->empty_warn_skipped++;
    }
    pthread_mutex_unlock(&p->mu);
    if (log)
        CLOG_WARN("chunk file pool %s is empty: %s for %s (%llu similar warnings suppressed)",
                  p->dir, what, dst_path, (unsigned long long)skipped);
}

/* Creates the chunk file `dst_path` directly because the pool has no ready file: same layout as
 * a pool file (header page + chunk_size bytes), with the blocks allocated for real
 * (posix_fallocate) so that a later chunk write cannot hit ENOSPC mid-chunk. Built as
 * "<n>.tmp" in the pool directory (a crash leaves a .tmp that curve_cfp_open removes), header
 * written, fdatasync'ed, then renamed to dst_path and both directories fsync'ed, exactly like
 * curve_cfp_get. Returns 0, CURVE_ERR_NOSPACE (the file system has less than one file plus
 * reserve_bytes free, or ENOSPC while allocating; failpoint "chunkfilepool.create" injects
 * before the allocation), CURVE_ERR_DISK_FAIL (the disk is marked failed), -EEXIST, -EXDEV
 * or another -errno from rename. */
static int cfp_create_on_demand(curve_cfp *p, const char *dst_path, const uint8_t *header_page)
{
    char tmp[PATH_MAX];
    struct statvfs sv;
    int rc;
    if (statvfs(p->dir, &sv) != 0) {
        rc = -errno;
        CLOG_ERROR("statvfs %s: %s", p->dir, curve_strerror(rc));
        curve_cfp_mark_failed(p, rc);
        return CURVE_ERR_DISK_FAIL;
    }
    if ((uint64_t)sv.f_bavail * sv.f_frsize < p->file_size + p->reserve_bytes) {
        cfp_warn_empty(p, dst_path, "file system full (below the reserve), answering NOSPACE");
        return CURVE_ERR_NOSPACE;
    }
    cfp_path(p, cfp_new_idx(p), ".tmp", tmp, sizeof(tmp));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = -errno;
        goto err_io;
    }
    rc = CURVE_FAILPOINT("chunkfilepool.create");
    if (rc == 0)
        rc = -posix_fallocate(fd, 0, (off_t)p->file_size);
    if (rc == -ENOSPC) {
        close(fd);
        unlink(tmp);
        cfp_warn_empty(p, dst_path, "no space to create a chunk file, answering NOSPACE");
        return CURVE_ERR_NOSPACE;
    }
    if (rc == 0) {
        ssize_t n = pwrite(fd, header_page, CURVE_CHUNK_HEADER_SIZE, 0);
        rc = n == (ssize_t)CURVE_CHUNK_HEADER_SIZE ? 0 : n < 0 ? -errno : -EIO;
    }
    if (rc == 0 && fdatasync(fd) != 0)
        rc = -errno;
    close(fd);
    if (rc != 0)
        goto err_after_create;
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dst_path, RENAME_NOREPLACE) != 0) {
        rc = -errno;
        CLOG_WARN("cannot move new chunk file %s to %s: %s", tmp, dst_path, curve_strerror(rc));
        unlink(tmp);
        return rc;
    }
    rc = fsync_dir(p->dir);
    if (rc == 0)
        rc = fsync_parent(dst_path);
    if (rc != 0)
        goto err_io;
    pthread_mutex_lock(&p->mu);
    p->empty_creates++;
    p->gets++;
    pthread_mutex_unlock(&p->mu);
    cfp_warn_empty(p, dst_path, "created the chunk file on demand");
    return 0;

err_after_create:
    unlink(tmp);
err_io:
    CLOG_ERROR("creating chunk file %s on demand (via %s): %s", dst_path, tmp,
               curve_strerror(rc));
    curve_cfp_mark_failed(p, rc);
    return CURVE_ERR_DISK_FAIL;
}

int curve_cfp_get(curve_cfp *p, const char *dst_path, const uint8_t *header_page)
{
    char src[PATH_MAX];
    int rc;
    if (dst_path == NULL || header_page == NULL)
        return -EINVAL;
    if (curve_cfp_failed(p) != 0)
        return CURVE_ERR_DISK_FAIL;
    pthread_mutex_lock(&p->mu);
    if (p->ready.n == 0) {
        pthread_mutex_unlock(&p->mu);
        return cfp_create_on_demand(p, dst_path, header_page);
    }
    uint64_t idx = vec_pop(&p->ready);
    pthread_mutex_unlock(&p->mu);
    cfp_path(p, idx, "", src, sizeof(src));

    int fd = open(src, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        CLOG_ERROR("cannot open pool file %s: %s", src, curve_strerror(rc));
        curve_cfp_mark_failed(p, rc);
        return CURVE_ERR_DISK_FAIL;
    }
    rc = CURVE_FAILPOINT("chunkfilepool.get");
    if (rc == 0) {
        ssize_t n = pwrite(fd, header_page, CURVE_CHUNK_HEADER_SIZE, 0);
        rc = n == (ssize_t)CURVE_CHUNK_HEADER_SIZE ? 0 : n < 0 ? -errno : -EIO;
    }
    if (rc == 0 && fdatasync(fd) != 0)
        rc = -errno;
    close(fd);
    if (rc != 0) {
        CLOG_ERROR("writing header of pool file %s for %s: %s", src, dst_path,
                   curve_strerror(rc));
        curve_cfp_mark_failed(p, rc);
        return CURVE_ERR_DISK_FAIL;
    }
    if (renameat2(AT_FDCWD, src, AT_FDCWD, dst_path, RENAME_NOREPLACE) != 0) {
        rc = -errno;
        CLOG_WARN("cannot move pool file %s to %s: %s", src, dst_path, curve_strerror(rc));
        cfp_requeue_dirty(p, idx);
        return rc;
    }
    rc = fsync_dir(p->dir);
    if (rc == 0)
        rc = fsync_parent(dst_path);
    if (rc != 0) {
        CLOG_ERROR("fsync after moving %s to %s: %s", src, dst_path, curve_strerror(rc));
        curve_cfp_mark_failed(p, rc);
        return CURVE_ERR_DISK_FAIL;
    }
    pthread_mutex_lock(&p->mu);
    p->gets++;
    pthread_mutex_unlock(&p->mu);
    return 0;
}

/* Reserves a new pool index. */
static uint64_t cfp_new_idx(curve_cfp *p)
{
    pthread_mutex_lock(&p->mu);
    uint64_t idx = p->next_idx++;
    pthread_mutex_unlock(&p->mu);
    return idx;
}

static void cfp_queue_returned(curve_cfp *p, uint64_t idx)
{
    pthread_mutex_lock(&p->mu);
    p->puts++;
    if (vec_push(&p->dirty, idx) != 0)
        CLOG_WARN("out of memory queueing pool file %llu: zeroed at next open",
                  (unsigned long long)idx);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

int curve_cfp_put(curve_cfp *p, const char *src_path)
{
    char dst[PATH_MAX];
    if (src_path == NULL)
        return -EINVAL;
    if (curve_cfp_failed(p) != 0)
        return CURVE_ERR_DISK_FAIL;
    uint64_t idx = cfp_new_idx(p);
    cfp_path(p, idx, ".dirty", dst, sizeof(dst));
    if (renameat2(AT_FDCWD, src_path, AT_FDCWD, dst, RENAME_NOREPLACE) != 0) {
        int rc = -errno;
        CLOG_WARN("cannot return %s to the pool: %s", src_path, curve_strerror(rc));
        return rc;
    }
    int rc = fsync_parent(src_path);
    if (rc == 0)
        rc = fsync_dir(p->dir);
    if (rc != 0) {
        CLOG_ERROR("fsync after returning %s to the pool: %s", src_path, curve_strerror(rc));
        curve_cfp_mark_failed(p, rc);
        return CURVE_ERR_DISK_FAIL;
    }
    cfp_queue_returned(p, idx);
    return 0;
}

int curve_cfp_replace(curve_cfp *p, const char *new_path, const char *live_path)
{
    char dst[PATH_MAX];
    bool linked = true;
    int rc;
    if (new_path == NULL || live_path == NULL)
        return -EINVAL;
    if (curve_cfp_failed(p) != 0)
        return CURVE_ERR_DISK_FAIL;
    uint64_t idx = cfp_new_idx(p);
    cfp_path(p, idx, ".dirty", dst, sizeof(dst));
    if (link(live_path, dst) != 0) {
        rc = -errno;
        if (rc != -ENOENT) {
            CLOG_WARN("cannot link %s into the pool: %s", live_path, curve_strerror(rc));
            return rc;
        }
        linked = false;
    }
    if (rename(new_path, live_path) != 0) {
        rc = -errno;
        CLOG_WARN("cannot rename %s to %s: %s", new_path, live_path, curve_strerror(rc));
        if (linked)
            unlink(dst);
        return rc;
    }
    rc = fsync_parent(live_path);
    if (rc == 0)
        rc = fsync_parent(new_path);
    if (rc == 0 && linked)
        rc = fsync_dir(p->dir);
    if (rc != 0) {
        CLOG_ERROR("fsync after replacing %s: %s", live_path, curve_strerror(rc));
        curve_cfp_mark_failed(p, rc);
        return CURVE_ERR_DISK_FAIL;
    }
    if (linked)
        cfp_queue_returned(p, idx);
    return 0;
}

void curve_cfp_get_stats(curve_cfp *p, curve_cfp_stats *out)
{
    pthread_mutex_lock(&p->mu);
    out->state = p->state;
    out->ready = p->ready.n;
    out->dirty = p->dirty.n + p->zeroing;
    out->format_target = p->format_target;
    out->formatted = p->formatted;
    out->bytes_written = p->bytes_written;
    out->zeroed = p->zeroed;
    out->gets = p->gets;
    out->puts = p->puts;
    out->empty_creates = p->empty_creates;
    out->disk_full = p->disk_full;
    pthread_mutex_unlock(&p->mu);
    out->failed_err = curve_cfp_failed(p);
}
