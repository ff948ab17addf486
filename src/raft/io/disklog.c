/*
 * Raft disk log: segment files, record codec, recovery scan, IO thread with group commit.
 * See disklog.h for the contract and docs/raft-log.md for the format and recovery rules.
 *
 * Concurrency
 *   mu      protects the logical view (first/last/terms/durable/epoch), the request queue, the
 *           entry cache, stats, `failed` and `stopping`.
 *   disk_mu protects the segment table (segs[], seg->offs, seg->count, seg fds). Readers hold it
 *           across their preads so that the IO thread cannot close a file under them.
 *   The two locks are never held together. The IO thread owns the staging buffer and is the
 *   only writer of segment files.
 *   With a shared disk writer (rlog_disk), the disk's threads play the IO thread of each of its
 *   logs: the writer thread takes and writes a log's batch, then one sync helper fdatasyncs it
 *   and runs its callbacks; a log is *taken* (rd_in_round) by exactly one of them at a time,
 *   so the IO-thread-only fields above (stage, need_sync, the open segment) still have a
 *   single user, handed over under disk->mu. disk->mu protects the disk's ready list and sync
 *   queue, rd_next / rd_in_ready / rd_in_round / rd_sync_next of its logs, its counters and
 *   `stopping`. Lock order: log->mu, then disk->mu; no thread holds disk->mu while taking a
 *   log's lock, and none holds a lock while doing IO or running callbacks.
 */
#include "raft/io/disklog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/assert.h"
#include "common/crc32c.h"
#include "common/failpoint.h"
#include "common/log.h"
#include "curve/errors.h"

CURVE_STATIC_ASSERT(sizeof(rlog__hdr) <= 40, "in-memory header stays small");
CURVE_STATIC_ASSERT(RLOG__HDR_SIZE == 40, "on-disk record header is 40 bytes");
CURVE_STATIC_ASSERT((RLOG__MAGIC & 0xff) != 0, "a record never starts with a zero byte");
CURVE_STATIC_ASSERT(RLOG_DEFAULT_SEGMENT_BYTES % RLOG_PAGE_SIZE == 0, "segment is page aligned");

#define SEG_NAME_PREFIX "log_"
#define SEG_NAME_DIGITS 20
#define ZERO_CHUNK (1u << 20) /* bytes per pwrite when zeroing without fallocate */
#define RLOG_READ_RETRIES 3 /* reads racing with truncations */
/* Closed segments are opened read-only on demand; at most this many stay open per log (the
 * least recently used is closed first), so ~100 copysets per disk stay far below fd limits. */
#define RLOG_MAX_OPEN_CLOSED_SEGS 4
/* The next segment is prepared ahead as a zero-filled file under this name (not "log_...", so
 * never taken for a segment) and renamed into place when the log rolls; rlog_open() deletes it. */
#define SPARE_NAME "spare_segment.tmp"
/* A spare-preparation step (after each batch) zero-fills this many bytes per byte the log wrote
 * since the previous step: the spare is ready once half of the open segment is used, whatever
 * the batch size, and the extra disk traffic stays proportional to the log's own (no bursts of
 * zero-filling across many logs). */
#define SPARE_FILL_FACTOR 2
/* Largest pwrite of zeros (size of the static zero buffer). */
#define SPARE_WRITE_BYTES (256u << 10)
/* Writeback of the spare's zeros is started (sync_file_range) in pieces of this size: few large
 * writes next to the log's fdatasyncs rather than one per batch, and little left for the final
 * fsync. */
#define SPARE_WRITEBACK_BYTES (1u << 20)

/* ---- little-endian helpers ---------------------------------------------------------------- */

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static size_t align_up(size_t v)
{
    return (v + RLOG_PAGE_SIZE - 1) / RLOG_PAGE_SIZE * RLOG_PAGE_SIZE;
}

/* ---- record codec ------------------------------------------------------------------------- */

void rlog__encode_hdr(const rlog__hdr *h, uint8_t out[RLOG__HDR_SIZE])
{
    put32(out + 0, RLOG__MAGIC);
    out[4] = h->version;
    out[5] = h->type;
    put16(out + 6, h->flags);
    put64(out + 8, h->term);
    put64(out + 16, h->index);
    put32(out + 24, h->data_len);
    put32(out + 28, h->data_crc);
    put32(out + 32, 0);
    put32(out + 36, curve_crc32c(0, out, 36));
}

int rlog__decode_hdr(const uint8_t in[RLOG__HDR_SIZE], rlog__hdr *h, const char **why)
{
    const char *w = NULL;
    if (get32(in) != RLOG__MAGIC)
        w = "bad magic";
    else if (get32(in + 36) != curve_crc32c(0, in, 36))
        w = "header crc mismatch";
    else if (in[4] != RLOG__VERSION)
        w = "unsupported version";
    else if (get32(in + 32) != 0)
        w = "reserved field not zero";
    if (w) {
        if (why)
            *why = w;
        return CURVE_ERR_CORRUPT;
    }
    h->version = in[4];
    h->type = in[5];
    h->flags = get16(in + 6);
    h->term = get64(in + 8);
    h->index = get64(in + 16);
    h->data_len = get32(in + 24);
    h->data_crc = get32(in + 28);
    return 0;
}

int rlog__decode_record(const uint8_t *buf, size_t len, rlog__hdr *h, const char **why)
{
    if (len < RLOG__HDR_SIZE) {
        if (why)
            *why = "truncated header";
        return CURVE_ERR_CORRUPT;
    }
    int rc = rlog__decode_hdr(buf, h, why);
    if (rc != 0)
        return rc;
    if (h->data_len > len - RLOG__HDR_SIZE) {
        if (why)
            *why = "truncated data";
        return CURVE_ERR_CORRUPT;
    }
    if (curve_crc32c(0, buf + RLOG__HDR_SIZE, h->data_len) != h->data_crc) {
        if (why)
            *why = "data crc mismatch";
        return CURVE_ERR_CORRUPT;
    }
    return 0;
}

/* ---- recovery scan (pure) ----------------------------------------------------------------- */

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return false;
    return true;
}

/* Is there a complete, valid record starting a later write (flag WRITE_START, on a page
 * boundary after `from`, index >= `expect`)? Each write is fdatasync'ed before the next one
 * starts, so such a record proves that the damage before it was in a write already durable:
 * that is corruption, not a torn tail. */
static bool later_write_exists(const uint8_t *img, size_t len, size_t from, uint64_t expect)
{
    for (size_t p = (from / RLOG_PAGE_SIZE + 1) * RLOG_PAGE_SIZE; p < len && len - p >= RLOG__HDR_SIZE;
         p += RLOG_PAGE_SIZE) {
        rlog__hdr h;
        if (rlog__decode_record(img + p, len - p, &h, NULL) == 0 &&
            (h.flags & RLOG__FLAG_WRITE_START) && h.index >= expect)
            return true;
    }
    return false;
}

int rlog__scan_segment(const uint8_t *img, size_t len, uint64_t first_index, uint64_t prev_term,
                       rlog__scan_cb cb, void *arg, rlog__scan_result *res)
{
    memset(res, 0, sizeof(*res));
    res->last_term = prev_term;
    size_t off = 0;
    uint64_t expect = first_index;
    bool write_start_needed = true; /* offset 0 and offsets after padding begin a write */
    const char *why = NULL;

    while (off < len) {
        size_t avail = len - off;
        /* Padding check: bytes up to the page end (at most a header). A record never starts
         * with a zero byte (magic), so zeros here mean padding or the end, never a record. */
        size_t n = RLOG_PAGE_SIZE - off % RLOG_PAGE_SIZE;
        if (n > RLOG__HDR_SIZE)
            n = RLOG__HDR_SIZE;
        if (n > avail)
            n = avail;
        if (all_zero(img + off, n)) {
            if (off % RLOG_PAGE_SIZE == 0)
                break; /* end of the written area */
            off = align_up(off);  /* padding up to the next write */
            write_start_needed = true;
            continue;
        }
        rlog__hdr h;
        if (rlog__decode_record(img + off, avail, &h, &why) != 0)
            goto bad;
        if (h.index != expect) {
            why = "index out of sequence";
            goto bad;
        }
        if (h.term < res->last_term) {
            why = "term went backwards";
            goto bad;
        }
        if (h.flags & RLOG__FLAG_WRITE_START) {
            if (off % RLOG_PAGE_SIZE != 0) {
                why = "write start not page aligned";
                goto bad;
            }
        } else if (write_start_needed) {
            why = "record after padding does not start a write";
            goto bad;
        }
        if (cb) {
            int rc = cb(arg, &h, off);
            if (rc != 0)
                return rc;
        }
        write_start_needed = false;
        expect++;
        res->count++;
        res->last_term = h.term;
        off += RLOG__HDR_SIZE + h.data_len;
        res->end_off = off;
    }
    /* Clean end (zeros or end of file); anything non-zero after it is garbage or corruption. */
    res->status = RLOG__SCAN_CLEAN;
    res->bad_off = off < len ? off : len;
    why = "non-zero bytes after the last record";
    goto check_tail;
bad:
    res->status = RLOG__SCAN_TORN;
    res->bad_off = off;
check_tail:;
    size_t first_nz = len, last_nz = 0;
    for (size_t i = res->end_off; i < len; i++) {
        if (img[i] != 0) {
            if (first_nz == len)
                first_nz = i;
            last_nz = i;
        }
    }
    res->nonzero_bytes = first_nz == len ? 0 : last_nz + 1 - first_nz;
    if (res->nonzero_bytes == 0)
        return 0;
    bool zero_end = res->status == RLOG__SCAN_CLEAN;
    res->status = RLOG__SCAN_TORN;
    res->why = why;
    if (later_write_exists(img, len, res->bad_off, expect)) {
        res->status = RLOG__SCAN_CORRUPT;
        if (zero_end)
            res->why = "unwritten (zero) page before a later durable write";
    }
    return 0;
}

/* ---- fault hook --------------------------------------------------------------------------- */

int rlog__inject_write_fault(const char *site)
{
    /* CURVE_FAILPOINT wants a literal name per site. */
    if (strcmp(site, "write") == 0)
        return CURVE_FAILPOINT("raftlog.write");
    if (strcmp(site, "sync") == 0)
        return CURVE_FAILPOINT("raftlog.sync");
    if (strcmp(site, "create") == 0)
        return CURVE_FAILPOINT("raftlog.create");
    if (strcmp(site, "spare") == 0)
        return CURVE_FAILPOINT("raftlog.spare");
    return 0;
}

/* ---- structures --------------------------------------------------------------------------- */

typedef struct rlog_seg {
    uint64_t first;    /* index in the file name */
    uint64_t count;    /* records written */
    uint32_t *offs;    /* offsets of the `count` records */
    size_t offs_cap;
    int fd;            /* -1 when a closed segment is not open */
    bool ro_fd;        /* fd is a read-only fd of a closed segment (counts against the bound) */
    uint64_t fd_used;  /* LRU stamp of ro_fd */
    uint64_t cap;      /* preallocated file size */
    uint64_t write_off; /* next write (page aligned); meaningful for the newest segment */
} rlog_seg;

enum { OP_APPEND, OP_TRUNCATE, OP_COMPACT, OP_RESET };

typedef struct rlog_op rlog_op;

struct rlog_disk {
    char *name;
    rlog_disk_opts o;
    pthread_t thr;
    bool thr_started;
    pthread_mutex_t mu;      /* see file comment */
    pthread_cond_t cv;       /* the disk thread waits for ready logs */
    pthread_cond_t idle_cv;  /* closers wait for their log to leave the ready list and round */
    rlog *ready_head, *ready_tail; /* logs with queued requests (FIFO, each at most once) */
    uint64_t pending;        /* entries queued on all logs, not yet completed */
    bool stopping;
    rlog_disk_stats st;
    /* sync helpers: logs written by the disk thread wait here (FIFO, linked by rd_sync_next)
     * for a helper to fdatasync them and run their callbacks */
    pthread_t *helpers;
    unsigned nhelpers;
    pthread_cond_t sync_cv; /* helpers wait for logs to sync */
    rlog *sync_head, *sync_tail;
};

typedef struct rlog_op {
    struct rlog_op *next;
    int type;
    uint64_t arg;   /* from (truncate), upto (compact), next index (reset) */
    uint64_t epoch; /* log epoch when queued (append) */
    rlog_entry *ents; /* append: n entries, each holding a buffer reference when len > 0 */
    size_t n;
    size_t bytes;
    rlog_cb cb;
    void *cb_arg;
} rlog_op;

struct rlog {
    char *dir;
    int dirfd;
    rlog_opts o;
    pthread_t thr;
    bool thr_started;

    pthread_mutex_t mu; /* see file comment */
    pthread_cond_t cv;  /* IO thread waits for requests */
    uint64_t first, last;
    uint64_t *terms; /* terms[i - first] for i in [first, last] */
    size_t terms_cap;
    uint64_t durable; /* entries <= durable are synced and current on disk */
    uint64_t epoch;   /* bumped by truncate/reset; appends of older epochs don't raise durable */
    size_t pending;   /* entries queued and not yet completed */
    rlog_op *q_head, *q_tail;
    rlog_entry *cache; /* ring: contiguous indexes [c_first, c_first + c_n) */
    size_t c_cap, c_head, c_n;
    uint64_t c_first;
    uint64_t c_bytes;
    int failed;
    bool stopping;
    rlog_stats st;

    pthread_mutex_t disk_mu; /* see file comment */
    rlog_seg **segs;
    size_t nsegs, segs_cap;
    unsigned open_closed; /* segments with ro_fd, <= RLOG_MAX_OPEN_CLOSED_SEGS */
    uint64_t fd_clock;

    /* IO thread only */
    uint8_t *stage;
    size_t stage_cap, stage_len, stage_n;
    uint32_t *stage_offs; /* offsets relative to the stage start */
    size_t stage_offs_cap;
    bool need_sync;
    /* pre-written spare segment (SPARE_NAME), see spare_step() */
    int spare_fd;       /* -1: none */
    uint64_t spare_off; /* bytes zero-filled so far */
    uint64_t spare_wb;  /* writeback started for [0, spare_wb) */
    bool spare_ready;   /* fully zero-filled and fsynced: the next roll renames it into place */
    bool spare_failed;  /* preparation failed: not retried before the next roll */
    uint64_t spare_due; /* bytes to zero-fill at the next step (SPARE_FILL_FACTOR x written) */

    /* shared disk writer (NULL: own thread). rd_next, rd_in_ready, rd_in_round, rd_sync_next
     * under disk->mu; rd_round_next, rd_batch, rd_rc belong to the thread that took the log. */
    rlog_disk *disk;
    rlog *rd_next;
    bool rd_in_ready; /* on the disk's ready list */
    bool rd_in_round; /* taken: being written, synced or completed by one disk thread */
    rlog *rd_round_next;
    rlog *rd_sync_next; /* on the sync queue (under disk->mu) or the writer's own list */
    rlog_op *rd_batch;
    int rd_rc;
};

void rlog_opts_default(rlog_opts *o)
{
    o->segment_bytes = RLOG_DEFAULT_SEGMENT_BYTES;
    o->max_entry_bytes = RLOG_DEFAULT_MAX_ENTRY_BYTES;
    o->max_batch_bytes = RLOG_DEFAULT_MAX_BATCH_BYTES;
    o->max_batch_entries = RLOG_DEFAULT_MAX_BATCH_ENTRIES;
    o->max_pending_entries = RLOG_DEFAULT_MAX_PENDING_ENTRIES;
    o->cache_bytes = RLOG_DEFAULT_CACHE_BYTES;
    o->disk = NULL;
}

void rlog_entry_release(rlog_entry *e)
{
    if (!e)
        return;
    curve_buf_unref(e->buf);
    e->buf = NULL;
    e->data = NULL;
}

static int validate_opts(const rlog_opts *o)
{
    if (o->segment_bytes < RLOG_MIN_SEGMENT_BYTES || o->segment_bytes > RLOG_MAX_SEGMENT_BYTES ||
        o->segment_bytes % RLOG_PAGE_SIZE != 0) {
        CLOG_ERROR("rlog: segment_bytes %" PRIu32 " must be a multiple of %u in [%u, %u]",
                   o->segment_bytes, RLOG_PAGE_SIZE, RLOG_MIN_SEGMENT_BYTES,
                   RLOG_MAX_SEGMENT_BYTES);
        return -EINVAL;
    }
    if ((uint64_t)align_up((size_t)o->max_entry_bytes + RLOG__HDR_SIZE) > o->segment_bytes) {
        CLOG_ERROR("rlog: max_entry_bytes %" PRIu32 " does not fit a %" PRIu32 "-byte segment",
                   o->max_entry_bytes, o->segment_bytes);
        return -EINVAL;
    }
    if (o->max_batch_bytes == 0 || o->max_batch_entries == 0 || o->max_pending_entries == 0) {
        CLOG_ERROR("rlog: batch and pending bounds must be > 0");
        return -EINVAL;
    }
    return 0;
}

/* ---- small helpers ------------------------------------------------------------------------ */

static void seg_path(const rlog *log, uint64_t first, char *buf, size_t len)
{
    snprintf(buf, len, "%s/" SEG_NAME_PREFIX "%020" PRIu64, log->dir, first);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need)
        ncap *= 2;
    void *np = realloc(*p, ncap * elem);
    if (!np)
        return -ENOMEM;
    *p = np;
    *cap = ncap;
    return 0;
}

static int seg_push_off(rlog_seg *s, uint32_t off)
{
    int rc = grow((void **)&s->offs, &s->offs_cap, s->count + 1, sizeof(uint32_t));
    if (rc == 0)
        s->offs[s->count++] = off;
    return rc;
}

static void seg_free(rlog_seg *s)
{
    if (!s)
        return;
    if (s->fd >= 0)
        close(s->fd);
    free(s->offs);
    free(s);
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static int pread_all(int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
    uint8_t *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, p + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    if (got)
        *got = done;
    return 0;
}

/* Zeroes [off, end) of a file: fallocate(ZERO_RANGE) when supported, else pwrite of zeros. */
static int zero_range(int fd, uint64_t off, uint64_t end)
{
    if (end <= off)
        return 0;
    if (fallocate(fd, FALLOC_FL_ZERO_RANGE, (off_t)off, (off_t)(end - off)) == 0)
        return 0;
    if (errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL)
        return -errno;
    uint8_t *z = calloc(1, ZERO_CHUNK);
    if (!z)
        return -ENOMEM;
    int rc = 0;
    while (off < end && rc == 0) {
        size_t n = end - off < ZERO_CHUNK ? (size_t)(end - off) : ZERO_CHUNK;
        rc = pwrite_all(fd, z, n, off);
        off += n;
    }
    free(z);
    return rc;
}

/* Reserves `size` bytes for a segment (fallocate; ftruncate where unsupported, e.g. tmpfs
 * without fallocate). */
static int preallocate(int fd, uint64_t size)
{
    if (fallocate(fd, 0, 0, (off_t)size) == 0)
        return 0;
    if (errno != EOPNOTSUPP && errno != ENOSYS)
        return -errno;
    return ftruncate(fd, (off_t)size) == 0 ? 0 : -errno;
}

static int fsync_dir(rlog *log)
{
    if (fsync(log->dirfd) != 0) {
        int rc = -errno;
        CLOG_ERROR("rlog: fsync of directory %s failed: %s", log->dir, curve_strerror(rc));
        return rc;
    }
    return 0;
}

/* ---- segment fds (under disk_mu) ---------------------------------------------------------- */

static void seg_close_fd(rlog *log, rlog_seg *s)
{
    if (s->fd < 0)
        return;
    close(s->fd);
    s->fd = -1;
    if (s->ro_fd) {
        CURVE_ASSERT(log->open_closed > 0);
        log->open_closed--;
        s->ro_fd = false;
    }
}

/* Removes a segment from the table's accounting and frees it. */
static void seg_drop(rlog *log, rlog_seg *s)
{
    seg_close_fd(log, s);
    seg_free(s);
}

/* Returns a readable fd for `s`, opening a closed segment read-only if needed. */
static int seg_read_fd(rlog *log, rlog_seg *s)
{
    if (s->fd >= 0) {
        s->fd_used = ++log->fd_clock;
        return s->fd;
    }
    if (log->open_closed >= RLOG_MAX_OPEN_CLOSED_SEGS) {
        rlog_seg *lru = NULL;
        for (size_t i = 0; i < log->nsegs; i++) {
            rlog_seg *c = log->segs[i];
            if (c->ro_fd && (!lru || c->fd_used < lru->fd_used))
                lru = c;
        }
        CURVE_ASSERT(lru);
        seg_close_fd(log, lru);
    }
    char path[4096];
    seg_path(log, s->first, path, sizeof(path));
    s->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (s->fd < 0) {
        int rc = -errno;
        CLOG_ERROR("rlog: open %s: %s", path, curve_strerror(rc));
        return rc;
    }
    s->ro_fd = true;
    s->fd_used = ++log->fd_clock;
    log->open_closed++;
    return s->fd;
}

/* Makes `s` the open (writable) segment. */
static int seg_make_writable(rlog *log, rlog_seg *s)
{
    if (s->fd >= 0 && !s->ro_fd)
        return 0;
    seg_close_fd(log, s);
    char path[4096];
    seg_path(log, s->first, path, sizeof(path));
    s->fd = open(path, O_RDWR | O_CLOEXEC);
    if (s->fd < 0) {
        int rc = -errno;
        CLOG_ERROR("rlog: open %s: %s", path, curve_strerror(rc));
        return rc;
    }
    return 0;
}

/* ---- cache (under mu) --------------------------------------------------------------------- */

static rlog_entry *cache_at(rlog *log, size_t i)
{
    return &log->cache[(log->c_head + i) % log->c_cap];
}

static bool cache_has(const rlog *log, uint64_t index)
{
    return log->c_n > 0 && index >= log->c_first && index < log->c_first + log->c_n;
}

static int cache_reserve(rlog *log, size_t extra)
{
    size_t need = log->c_n + extra;
    if (need <= log->c_cap)
        return 0;
    size_t ncap = log->c_cap ? log->c_cap : 64;
    while (ncap < need)
        ncap *= 2;
    rlog_entry *nc = calloc(ncap, sizeof(*nc));
    if (!nc)
        return -ENOMEM;
    for (size_t i = 0; i < log->c_n; i++)
        nc[i] = *cache_at(log, i);
    free(log->cache);
    log->cache = nc;
    log->c_cap = ncap;
    log->c_head = 0;
    return 0;
}

/* Caller reserved room. Takes over the reference held in `e`. */
static void cache_push(rlog *log, const rlog_entry *e)
{
    if (log->c_n == 0)
        log->c_first = e->index;
    CURVE_ASSERT(e->index == log->c_first + log->c_n);
    CURVE_ASSERT(log->c_n < log->c_cap);
    *cache_at(log, log->c_n) = *e;
    log->c_n++;
    log->c_bytes += e->len + RLOG__HDR_SIZE;
}

static void cache_pop_front(rlog *log)
{
    rlog_entry *e = cache_at(log, 0);
    log->c_bytes -= e->len + RLOG__HDR_SIZE;
    rlog_entry_release(e);
    log->c_head = (log->c_head + 1) % log->c_cap;
    log->c_n--;
    log->c_first++;
}

static void cache_drop_from(rlog *log, uint64_t from)
{
    while (log->c_n > 0 && log->c_first + log->c_n - 1 >= from) {
        rlog_entry *e = cache_at(log, log->c_n - 1);
        log->c_bytes -= e->len + RLOG__HDR_SIZE;
        rlog_entry_release(e);
        log->c_n--;
    }
}

/* Evicts durable entries from the front while over budget, and anything before `first`. */
static void cache_evict(rlog *log)
{
    while (log->c_n > 0 && (log->c_first < log->first ||
                            (log->c_bytes > log->o.cache_bytes && log->c_first <= log->durable)))
        cache_pop_front(log);
}

/* ---- IO thread: staging, segments, ops ---------------------------------------------------- */

static rlog_seg *last_seg(rlog *log)
{
    return log->nsegs ? log->segs[log->nsegs - 1] : NULL;
}

/* Drops the spare (closing and deleting its file). IO thread. */
static void spare_drop(rlog *log)
{
    if (log->spare_fd >= 0) {
        close(log->spare_fd);
        log->spare_fd = -1;
        if (unlinkat(log->dirfd, SPARE_NAME, 0) != 0 && errno != ENOENT)
            CLOG_WARN("rlog: cannot remove %s/%s: %s", log->dir, SPARE_NAME,
                      curve_strerror(-errno));
    }
    log->spare_off = 0;
    log->spare_wb = 0;
    log->spare_ready = false;
}

static bool spare_wanted(const rlog *log)
{
    return !log->spare_ready && !log->spare_failed;
}

/* One step of preparing the spare segment: create it, write spare_due more zeros (starting
 * their writeback every SPARE_WRITEBACK_BYTES), and once all of it is written, fsync it and
 * mark it ready. Pre-written blocks make the appends into the segment pure overwrites: fdatasync
 * then has no extent conversion (ext4 unwritten extents after fallocate) to commit. A failure only
 * drops the spare: the next roll falls back to fallocate(). IO thread (or the disk thread that
 * took the log). */
static void spare_step(rlog *log)
{
    static uint8_t zeros[SPARE_WRITE_BYTES]; /* only read; not const so it stays in .bss */
    uint64_t size = log->o.segment_bytes;
    if (!spare_wanted(log)) {
        log->spare_due = 0; /* counts from the first write after the next roll */
        return;
    }
    int rc = rlog__inject_write_fault("spare");
    if (rc == 0 && log->spare_fd < 0) {
        /* O_TRUNC: a leftover of an earlier failed step is restarted from scratch */
        log->spare_fd = openat(log->dirfd, SPARE_NAME, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
                               0644);
        log->spare_off = 0;
        log->spare_wb = 0;
        if (log->spare_fd < 0)
            rc = -errno;
    }
    uint64_t budget = log->spare_due;
    log->spare_due = 0;
    while (rc == 0 && log->spare_off < size && budget > 0) {
        uint64_t n = size - log->spare_off;
        n = n < budget ? n : budget;
        n = n < SPARE_WRITE_BYTES ? n : SPARE_WRITE_BYTES;
        rc = pwrite_all(log->spare_fd, zeros, (size_t)n, log->spare_off);
        if (rc == 0)
            log->spare_off += n;
        budget -= n;
    }
    if (rc == 0 && log->spare_off - log->spare_wb >= SPARE_WRITEBACK_BYTES) {
        /* best effort: a filesystem without it just writes back later */
        (void)sync_file_range(log->spare_fd, (off_t)log->spare_wb,
                              (off_t)(log->spare_off - log->spare_wb), SYNC_FILE_RANGE_WRITE);
        log->spare_wb = log->spare_off;
    }
    if (rc == 0 && log->spare_off < size)
        return;
    if (rc == 0 && fsync(log->spare_fd) != 0)
        rc = -errno;
    pthread_mutex_lock(&log->mu);
    if (rc == 0)
        log->st.spares_prepared++;
    else
        log->st.spare_failures++;
    pthread_mutex_unlock(&log->mu);
    if (rc == 0) {
        log->spare_ready = true;
        return;
    }
    CLOG_WARN("rlog: preparing spare segment %s/%s: %s; the next segment is preallocated "
              "instead", log->dir, SPARE_NAME, curve_strerror(rc));
    spare_drop(log);
    log->spare_failed = true;
}

/* Renames the ready spare to segment `path` (name `first`) and hands over its fd. Returns 1
 * when done, 0 when the spare cannot be used (the caller creates the file itself), or a
 * negative error. */
static int spare_take(rlog *log, uint64_t first, int *fd_out)
{
    if (!log->spare_ready)
        return 0;
    CURVE_ASSERT(log->spare_fd >= 0 && log->spare_off == log->o.segment_bytes);
    char name[64];
    snprintf(name, sizeof(name), SEG_NAME_PREFIX "%020" PRIu64, first);
    /* NOREPLACE: like O_EXCL on the fallback path, an existing segment is never replaced */
    if (renameat2(log->dirfd, SPARE_NAME, log->dirfd, name, RENAME_NOREPLACE) != 0) {
        int rc = -errno;
        if (rc == -EINVAL || rc == -ENOSYS) { /* filesystem without RENAME_NOREPLACE */
            spare_drop(log);
            log->spare_failed = true;
            return 0;
        }
        return rc;
    }
    *fd_out = log->spare_fd;
    log->spare_fd = -1;
    log->spare_off = 0;
    log->spare_wb = 0;
    log->spare_ready = false;
    return 1;
}

/* Makes segment `first` the newest one: the pre-written spare renamed into place when it is
 * ready, else a new file reserved with fallocate(). The file and the directory are synced
 * before the segment is used, so a crash leaves either no file or a complete zero-filled
 * (or preallocated) one, which recovery reads as an empty segment. */
static int seg_create(rlog *log, uint64_t first)
{
    char path[4096];
    seg_path(log, first, path, sizeof(path));
    int rc = rlog__inject_write_fault("create");
    if (rc != 0)
        goto err;
    rlog_seg *s = calloc(1, sizeof(*s));
    if (!s) {
        rc = -ENOMEM;
        goto err;
    }
    s->first = first;
    s->cap = log->o.segment_bytes;
    s->fd = -1;
    int took = spare_take(log, first, &s->fd);
    if (took < 0) {
        rc = took;
        goto err_after_alloc;
    }
    if (!took) {
        s->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (s->fd < 0) {
            rc = -errno;
            goto err_after_alloc;
        }
        rc = preallocate(s->fd, s->cap);
        if (rc == 0 && fsync(s->fd) != 0)
            rc = -errno;
    }
    if (rc == 0)
        rc = fsync_dir(log);
    if (rc != 0)
        goto err_after_open;
    pthread_mutex_lock(&log->disk_mu);
    rc = grow((void **)&log->segs, &log->segs_cap, log->nsegs + 1, sizeof(rlog_seg *));
    if (rc == 0) {
        /* The previous segment is closed now (synced); readers reopen it read-only. */
        if (log->nsegs > 0)
            seg_close_fd(log, last_seg(log));
        log->segs[log->nsegs++] = s;
    }
    pthread_mutex_unlock(&log->disk_mu);
    if (rc != 0)
        goto err_after_open;
    log->spare_failed = false; /* try again for the next roll */
    pthread_mutex_lock(&log->mu);
    log->st.segments_created++;
    if (took)
        log->st.segments_from_spare++;
    pthread_mutex_unlock(&log->mu);
    return 0;

err_after_open:
    close(s->fd);
    unlink(path);
    s->fd = -1;
err_after_alloc:
    seg_free(s);
err:
    CLOG_ERROR("rlog: cannot create segment %s: %s", path, curve_strerror(rc));
    return rc;
}

/* Writes the staged records (padded to a page) to the newest segment. */
static int stage_flush(rlog *log)
{
    if (log->stage_n == 0)
        return 0;
    rlog_seg *s = last_seg(log);
    CURVE_ASSERT(s && s->write_off % RLOG_PAGE_SIZE == 0);
    size_t padded = align_up(log->stage_len);
    CURVE_ASSERT(s->write_off + padded <= s->cap && padded <= log->stage_cap);
    memset(log->stage + log->stage_len, 0, padded - log->stage_len);
    int rc = rlog__inject_write_fault("write");
    if (rc == 0)
        rc = pwrite_all(s->fd, log->stage, padded, s->write_off);
    if (rc != 0) {
        CLOG_ERROR("rlog: write of %zu bytes at %" PRIu64 " to segment %" PRIu64 " in %s: %s",
                   padded, s->write_off, s->first, log->dir, curve_strerror(rc));
        return rc;
    }
    pthread_mutex_lock(&log->disk_mu);
    for (size_t i = 0; i < log->stage_n && rc == 0; i++)
        rc = seg_push_off(s, (uint32_t)(s->write_off + log->stage_offs[i]));
    pthread_mutex_unlock(&log->disk_mu);
    if (rc != 0)
        return rc;
    s->write_off += padded;
    log->need_sync = true;
    log->spare_due += SPARE_FILL_FACTOR * (uint64_t)padded;
    pthread_mutex_lock(&log->mu);
    log->st.writes++;
    log->st.bytes += padded;
    pthread_mutex_unlock(&log->mu);
    log->stage_len = 0;
    log->stage_n = 0;
    return 0;
}

static int seg_sync(rlog *log)
{
    if (!log->need_sync)
        return 0;
    rlog_seg *s = last_seg(log);
    CURVE_ASSERT(s);
    int rc = rlog__inject_write_fault("sync");
    if (rc == 0 && fdatasync(s->fd) != 0)
        rc = -errno;
    if (rc != 0) {
        CLOG_ERROR("rlog: fdatasync of segment %" PRIu64 " in %s: %s", s->first, log->dir,
                   curve_strerror(rc));
        return rc;
    }
    log->need_sync = false;
    pthread_mutex_lock(&log->mu);
    log->st.syncs++;
    pthread_mutex_unlock(&log->mu);
    return 0;
}

static int flush_sync(rlog *log)
{
    int rc = stage_flush(log);
    return rc ? rc : seg_sync(log);
}

static int stage_reserve(rlog *log, size_t need)
{
    if (need <= log->stage_cap)
        return 0;
    size_t ncap = align_up(need);
    void *p = NULL;
    if (posix_memalign(&p, RLOG_PAGE_SIZE, ncap) != 0)
        return -ENOMEM;
    if (log->stage_len)
        memcpy(p, log->stage, log->stage_len);
    free(log->stage);
    log->stage = p;
    log->stage_cap = ncap;
    return 0;
}

/* Adds one record to the staging buffer, flushing/rolling segments as needed. */
static int stage_entry(rlog *log, const rlog_entry *e)
{
    size_t rec = RLOG__HDR_SIZE + e->len;
    size_t stage_limit = (size_t)log->o.max_batch_bytes + log->o.max_entry_bytes + RLOG__HDR_SIZE;
    rlog_seg *s = last_seg(log);
    int rc;
    if (s && (log->stage_len + rec > stage_limit ||
              s->write_off + align_up(log->stage_len + rec) > s->cap)) {
        rc = flush_sync(log);
        if (rc != 0)
            return rc;
        if (s->write_off + align_up(rec) > s->cap)
            s = NULL; /* full: roll to a new segment */
    }
    if (!s) {
        rc = seg_create(log, e->index);
        if (rc != 0)
            return rc;
        s = last_seg(log);
    }
    CURVE_ASSERT(e->index == s->first + s->count + log->stage_n);
    rc = stage_reserve(log, align_up(log->stage_len + rec));
    if (rc == 0)
        rc = grow((void **)&log->stage_offs, &log->stage_offs_cap, log->stage_n + 1,
                  sizeof(uint32_t));
    if (rc != 0)
        return rc;
    rlog__hdr h = {
        .version = RLOG__VERSION,
        .type = e->type,
        .flags = log->stage_n == 0 ? RLOG__FLAG_WRITE_START : 0,
        .term = e->term,
        .index = e->index,
        .data_len = e->len,
        .data_crc = curve_crc32c(0, e->data, e->len),
    };
    uint8_t *p = log->stage + log->stage_len;
    rlog__encode_hdr(&h, p);
    if (e->len)
        memcpy(p + RLOG__HDR_SIZE, e->data, e->len);
    log->stage_offs[log->stage_n++] = (uint32_t)log->stage_len;
    log->stage_len += rec;
    return 0;
}

static int unlink_seg(rlog *log, rlog_seg *s)
{
    char path[4096];
    seg_path(log, s->first, path, sizeof(path));
    if (unlink(path) != 0 && errno != ENOENT) {
        int rc = -errno;
        CLOG_ERROR("rlog: unlink %s: %s", path, curve_strerror(rc));
        return rc;
    }
    return 0;
}

static void bump_removed(rlog *log, uint64_t n)
{
    pthread_mutex_lock(&log->mu);
    log->st.segments_removed += n;
    pthread_mutex_unlock(&log->mu);
}

/* Removes records >= from. Newer segments go first (newest first), then the tail of the
 * segment holding `from` is zeroed, so a crash in between leaves a valid (longer) log. */
static int do_truncate(rlog *log, uint64_t from)
{
    int rc = 0;
    uint64_t removed = 0;
    pthread_mutex_lock(&log->disk_mu);
    while (log->nsegs > 1 && last_seg(log)->first > from) {
        rlog_seg *s = last_seg(log);
        rc = unlink_seg(log, s);
        if (rc != 0)
            break;
        seg_drop(log, s);
        log->nsegs--;
        removed++;
    }
    rlog_seg *s = last_seg(log);
    if (rc == 0 && s)
        rc = seg_make_writable(log, s);
    uint64_t zero_from = 0;
    bool zero = false;
    if (rc == 0 && s && from < s->first + s->count) {
        CURVE_ASSERT(from >= s->first);
        zero_from = s->offs[from - s->first];
        s->count = from - s->first;
        zero = true;
    }
    pthread_mutex_unlock(&log->disk_mu);
    bump_removed(log, removed);
    if (rc == 0 && removed)
        rc = fsync_dir(log);
    if (rc == 0 && zero) {
        rc = zero_range(s->fd, zero_from, s->cap);
        if (rc == 0 && fsync(s->fd) != 0)
            rc = -errno;
        if (rc != 0)
            CLOG_ERROR("rlog: truncating segment %" PRIu64 " in %s at offset %" PRIu64 ": %s",
                       s->first, log->dir, zero_from, curve_strerror(rc));
        s->write_off = align_up(zero_from);
    }
    return rc;
}

/* Lock order here only: mu, then disk_mu (nobody takes mu while holding disk_mu). Deciding
 * under both keeps the logical view and the segment table consistent with a concurrent
 * rlog_truncate_suffix(). */
static int do_compact(rlog *log, uint64_t upto)
{
    int rc = 0;
    size_t k = 0;
    pthread_mutex_lock(&log->mu);
    if (upto > log->last)
        upto = log->last;
    pthread_mutex_lock(&log->disk_mu);
    while (k + 1 < log->nsegs && log->segs[k + 1]->first - 1 <= upto) {
        rc = unlink_seg(log, log->segs[k]);
        if (rc != 0)
            break;
        seg_drop(log, log->segs[k]);
        k++;
    }
    if (k > 0) {
        memmove(log->segs, log->segs + k, (log->nsegs - k) * sizeof(rlog_seg *));
        log->nsegs -= k;
        log->st.segments_removed += k;
        uint64_t new_first = log->segs[0]->first;
        /* A rlog_reset() queued after this request may already have moved the logical view. */
        if (new_first > log->first && new_first <= log->last + 1) {
            uint64_t drop = new_first - log->first;
            uint64_t n = log->last + 1 - log->first;
            if (n > drop)
                memmove(log->terms, log->terms + drop, (n - drop) * sizeof(uint64_t));
            log->first = new_first;
            cache_evict(log);
        }
    }
    pthread_mutex_unlock(&log->disk_mu);
    pthread_mutex_unlock(&log->mu);
    if (k == 0)
        return rc;
    int rc2 = fsync_dir(log);
    return rc ? rc : rc2;
}

static int do_reset(rlog *log, uint64_t next)
{
    int rc = 0;
    uint64_t removed = 0;
    pthread_mutex_lock(&log->disk_mu);
    while (log->nsegs > 0) {
        rlog_seg *s = last_seg(log);
        rc = unlink_seg(log, s);
        if (rc != 0)
            break;
        seg_drop(log, s);
        log->nsegs--;
        removed++;
    }
    pthread_mutex_unlock(&log->disk_mu);
    bump_removed(log, removed);
    if (rc == 0)
        rc = fsync_dir(log);
    if (rc == 0)
        rc = seg_create(log, next);
    return rc;
}

/* Processes a batch. With `sync` false the last write is left unsynced (need_sync): the shared
 * disk writer syncs every log of a round after writing all of them. */
static int io_process(rlog *log, rlog_op *ops, bool sync)
{
    int rc = 0;
    for (rlog_op *op = ops; op && rc == 0; op = op->next) {
        switch (op->type) {
        case OP_APPEND:
            for (size_t i = 0; i < op->n && rc == 0; i++)
                rc = stage_entry(log, &op->ents[i]);
            break;
        case OP_TRUNCATE:
            rc = flush_sync(log);
            if (rc == 0)
                rc = do_truncate(log, op->arg);
            break;
        case OP_COMPACT:
            rc = flush_sync(log);
            if (rc == 0)
                rc = do_compact(log, op->arg);
            break;
        case OP_RESET:
            rc = flush_sync(log);
            if (rc == 0)
                rc = do_reset(log, op->arg);
            break;
        default:
            CURVE_UNREACHABLE();
        }
    }
    if (rc != 0)
        return rc;
    return sync ? flush_sync(log) : stage_flush(log);
}

static void op_free(rlog_op *op)
{
    for (size_t i = 0; i < op->n; i++)
        rlog_entry_release(&op->ents[i]);
    free(op->ents);
    free(op);
}

/* Takes the next batch of `log`: whole requests until the entry/byte bounds are reached.
 * Called with log->mu held; NULL when the queue is empty. */
static rlog_op *io_take(rlog *log, size_t *bytes_out)
{
    rlog_op *batch = log->q_head, *tail = batch;
    if (!batch)
        return NULL;
    size_t ents = batch->n, bytes = batch->bytes;
    while (tail->next && ents + tail->next->n <= log->o.max_batch_entries &&
           bytes + tail->next->bytes <= log->o.max_batch_bytes) {
        tail = tail->next;
        ents += tail->n;
        bytes += tail->bytes;
    }
    log->q_head = tail->next;
    if (!log->q_head)
        log->q_tail = NULL;
    tail->next = NULL;
    if (bytes_out)
        *bytes_out = bytes;
    return batch;
}

/* Records the outcome of a processed batch (durable index, stats, failure) and runs its
 * callbacks in submission order. Takes log->mu (and disk->mu, in that order). */
static void io_complete(rlog *log, rlog_op *batch, int rc)
{
    pthread_mutex_lock(&log->mu);
    if (rc != 0) {
        log->stage_len = 0;
        log->stage_n = 0;
        log->need_sync = false;
    }
    if (rc != 0 && log->failed == 0) {
        log->failed = rc;
        CLOG_ERROR("rlog: log in %s failed: %s; reopen to recover", log->dir, curve_strerror(rc));
    }
    size_t done = 0;
    for (rlog_op *op = batch; op; op = op->next) {
        /* A processed truncation is a barrier: everything before it is synced, so the
         * entries below its cut are durable even if their appends belonged to an older
         * epoch. */
        if (op->type == OP_TRUNCATE && rc == 0 && op->epoch == log->epoch &&
            op->arg - 1 > log->durable && op->arg - 1 <= log->last)
            log->durable = op->arg - 1;
        if (op->type != OP_APPEND)
            continue;
        log->pending -= op->n;
        done += op->n;
        if (rc == 0 && op->epoch == log->epoch && op->n) {
            uint64_t l = op->ents[op->n - 1].index;
            if (l > log->durable)
                log->durable = l;
        }
    }
    if (rc == 0 && done) {
        log->st.entries += done;
        log->st.batches++;
        if (done > log->st.max_batch)
            log->st.max_batch = done;
    }
    if (log->disk && done) {
        pthread_mutex_lock(&log->disk->mu);
        CURVE_ASSERT(log->disk->pending >= done);
        log->disk->pending -= done;
        if (rc == 0)
            log->disk->st.entries += done;
        pthread_mutex_unlock(&log->disk->mu);
    }
    cache_evict(log);
    pthread_mutex_unlock(&log->mu);

    while (batch) {
        rlog_op *op = batch;
        batch = op->next;
        if (op->cb)
            op->cb(op->cb_arg, rc);
        op_free(op);
    }
}

static void *io_main(void *arg)
{
    rlog *log = arg;
    for (;;) {
        pthread_mutex_lock(&log->mu);
        while (!log->q_head && !log->stopping)
            pthread_cond_wait(&log->cv, &log->mu);
        rlog_op *batch = io_take(log, NULL);
        if (!batch) {
            pthread_mutex_unlock(&log->mu);
            break;
        }
        int rc = log->failed;
        pthread_mutex_unlock(&log->mu);

        if (rc == 0)
            rc = io_process(log, batch, true);
        io_complete(log, batch, rc);
        /* After the callbacks: zero-fill of the next segment, in proportion to this batch. */
        if (rc == 0)
            spare_step(log);
    }
    return NULL;
}

/* ---- shared disk writer ------------------------------------------------------------------- */

void rlog_disk_opts_default(rlog_disk_opts *o)
{
    o->max_pending_entries = RLOG_DISK_DEFAULT_MAX_PENDING_ENTRIES;
    o->max_round_bytes = RLOG_DISK_DEFAULT_MAX_ROUND_BYTES;
    o->sync_threads = RLOG_DISK_DEFAULT_SYNC_THREADS;
    o->sync_lone_inline = false;
}

/* Appends `l` to the disk's ready list. Under d->mu. */
static void ready_push(rlog_disk *d, rlog *l)
{
    l->rd_in_ready = true;
    l->rd_next = NULL;
    if (d->ready_tail)
        d->ready_tail->rd_next = l;
    else
        d->ready_head = l;
    d->ready_tail = l;
}

/* Puts `log` on its disk's ready list (once) and wakes the disk thread. Called with log->mu
 * held (lock order log->mu -> disk->mu). */
static void disk_kick(rlog *log)
{
    rlog_disk *d = log->disk;
    pthread_mutex_lock(&d->mu);
    /* A taken log (rd_in_round) is put back by disk_finish_log() if requests remain: it must
     * never be on the ready list while a thread works on it. */
    if (!log->rd_in_ready && !log->rd_in_round) {
        ready_push(d, log);
        pthread_cond_signal(&d->cv);
    }
    pthread_mutex_unlock(&d->mu);
}

/* Detaches the whole ready list as this round's logs (marked rd_in_round). Under d->mu. */
static rlog *disk_take_ready(rlog_disk *d)
{
    rlog *round = d->ready_head;
    for (rlog *l = round; l; l = l->rd_next) {
        l->rd_in_ready = false;
        l->rd_in_round = true;
        l->rd_round_next = l->rd_next;
    }
    d->ready_head = d->ready_tail = NULL;
    return round;
}

/* Last step for a log taken by the disk thread: fdatasync its batch's final write (unless
 * failed), run its callbacks, then give the log back (to the ready list if requests remain;
 * its closer may free it as soon as d->mu is released). Runs on a sync helper, or on the disk
 * thread when it has none. No lock held on entry. */
static void disk_finish_log(rlog_disk *d, rlog *l)
{
    if (l->rd_batch && l->rd_rc == 0 && l->need_sync) {
        l->rd_rc = seg_sync(l);
        pthread_mutex_lock(&d->mu);
        d->st.syncs++;
        pthread_mutex_unlock(&d->mu);
    }
    if (l->rd_batch)
        io_complete(l, l->rd_batch, l->rd_rc);
    /* One bounded step towards the next pre-written segment, after the callbacks and while
     * the log is still taken (spare fields belong to the thread that took it). */
    if (l->rd_batch && l->rd_rc == 0)
        spare_step(l);
    l->rd_batch = NULL;
    /* Both locks (in order), so that an rlog_append() racing with us either sees the log
     * released (and kicks it) or is seen here. */
    pthread_mutex_lock(&l->mu);
    pthread_mutex_lock(&d->mu);
    l->rd_in_round = false;
    CURVE_ASSERT(!l->rd_in_ready);
    if (l->q_head) {
        ready_push(d, l);
        pthread_cond_signal(&d->cv);
    }
    /* l->mu first: a closer waiting on idle_cv frees `l` as soon as it gets d->mu. */
    pthread_mutex_unlock(&l->mu);
    pthread_cond_broadcast(&d->idle_cv);
    pthread_mutex_unlock(&d->mu);
}

/* Takes the next log waiting for its sync, or NULL. Under d->mu. */
static rlog *sync_pop(rlog_disk *d)
{
    rlog *l = d->sync_head;
    if (l) {
        d->sync_head = l->rd_sync_next;
        if (!d->sync_head)
            d->sync_tail = NULL;
    }
    return l;
}

static void *disk_helper_main(void *arg)
{
    rlog_disk *d = arg;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (!d->sync_head && !d->stopping)
            pthread_cond_wait(&d->sync_cv, &d->mu);
        rlog *l = sync_pop(d);
        if (!l)
            break; /* stopping (destroy asserted that no log is left) */
        pthread_mutex_unlock(&d->mu);
        disk_finish_log(d, l);
        pthread_mutex_lock(&d->mu);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* One pass of the disk thread over the logs that were ready: take each log's batch (the pass
 * is bounded by max_round_bytes; logs beyond it go back to the ready list), write it, and hand
 * the log to the sync helpers, which fdatasync it and run its callbacks while this thread
 * writes the next logs. A log stays taken (rd_in_round) until its callbacks have run, so its
 * requests are written, synced and completed strictly in order, batch after batch. Without
 * helpers this thread syncs and completes the pass's logs itself after writing all of them. */
static void disk_round(rlog_disk *d, rlog *round)
{
    size_t round_bytes = 0;
    uint64_t nlogs = 0;
    rlog *mine = NULL, **mine_tail = &mine; /* no helpers: finished here after the pass */
    for (rlog *l = round, *next; l; l = next) {
        next = l->rd_round_next;
        l->rd_batch = NULL;
        l->rd_rc = 0;
        if (round_bytes < d->o.max_round_bytes) {
            size_t bytes = 0;
            pthread_mutex_lock(&l->mu);
            l->rd_batch = io_take(l, &bytes);
            l->rd_rc = l->failed;
            pthread_mutex_unlock(&l->mu);
            round_bytes += bytes;
        }
        if (l->rd_batch) {
            nlogs++;
            /* Every request of the batch is written; truncations/compactions/resets sync what
             * precedes them themselves; the final write stays unsynced (need_sync). */
            if (l->rd_rc == 0)
                l->rd_rc = io_process(l, l->rd_batch, false);
        }
        if (d->nhelpers == 0 || !l->rd_batch) {
            l->rd_sync_next = NULL;
            *mine_tail = l;
            mine_tail = &l->rd_sync_next;
            continue;
        }
        pthread_mutex_lock(&d->mu);
        if (d->o.sync_lone_inline && next == NULL && nlogs == 1 && d->ready_head == NULL &&
            d->sync_head == NULL && mine == NULL) {
            /* The only log of this round and nobody else waiting: sync it here instead of
             * waking a helper (one thread hand-off less on the latency path of a lone
             * append). A log that becomes ready meanwhile waits at most this one fdatasync,
             * as it would behind a busy helper. */
            d->st.inline_syncs++;
            pthread_mutex_unlock(&d->mu);
            l->rd_sync_next = NULL;
            *mine_tail = l;
            mine_tail = &l->rd_sync_next;
            continue;
        }
        l->rd_sync_next = NULL;
        if (d->sync_tail)
            d->sync_tail->rd_sync_next = l;
        else
            d->sync_head = l;
        d->sync_tail = l;
        pthread_cond_signal(&d->sync_cv);
        pthread_mutex_unlock(&d->mu);
    }
    if (nlogs > 0) {
        pthread_mutex_lock(&d->mu);
        d->st.rounds++;
        if (nlogs > d->st.max_round_logs)
            d->st.max_round_logs = nlogs;
        pthread_mutex_unlock(&d->mu);
    }
    for (rlog *l = mine, *next; l; l = next) {
        next = l->rd_sync_next; /* `l` may be freed once finished */
        disk_finish_log(d, l);
    }
}

static void *disk_main(void *arg)
{
    rlog_disk *d = arg;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (!d->ready_head && !d->stopping)
            pthread_cond_wait(&d->cv, &d->mu);
        if (!d->ready_head)
            break; /* stopping; destroy asserted that no log is left */
        rlog *round = disk_take_ready(d);
        pthread_mutex_unlock(&d->mu);
        disk_round(d, round);
        pthread_mutex_lock(&d->mu);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

int rlog_disk_create(const char *name, const rlog_disk_opts *opts, rlog_disk **out)
{
    rlog_disk_opts o;
    if (opts)
        o = *opts;
    else
        rlog_disk_opts_default(&o);
    if (!out || o.max_pending_entries == 0 || o.max_round_bytes == 0 ||
        o.sync_threads > RLOG_DISK_MAX_SYNC_THREADS) {
        CLOG_ERROR("rlog: disk writer bounds must be > 0 and sync_threads <= %u",
                   RLOG_DISK_MAX_SYNC_THREADS);
        return -EINVAL;
    }
    rlog_disk *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->o = o;
    d->name = strdup(name ? name : "");
    if (!d->name) {
        free(d);
        return -ENOMEM;
    }
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    pthread_cond_init(&d->idle_cv, NULL);
    pthread_cond_init(&d->sync_cv, NULL);
    int rc = 0;
    if (o.sync_threads > 0) {
        d->helpers = calloc(o.sync_threads, sizeof(pthread_t));
        if (!d->helpers) {
            rc = ENOMEM;
            goto err_after_init;
        }
    }
    for (unsigned i = 0; i < o.sync_threads; i++) {
        rc = pthread_create(&d->helpers[i], NULL, disk_helper_main, d);
        if (rc != 0)
            goto err_after_helpers;
        pthread_setname_np(d->helpers[i], "rlog-sync");
        d->nhelpers++;
    }
    rc = pthread_create(&d->thr, NULL, disk_main, d);
    if (rc != 0)
        goto err_after_helpers;
    pthread_setname_np(d->thr, "rlog-disk");
    d->thr_started = true;
    *out = d;
    return 0;

err_after_helpers:
    CLOG_ERROR("rlog: cannot start the disk writer threads for %s: %s", d->name,
               curve_strerror(-rc));
    pthread_mutex_lock(&d->mu);
    d->stopping = true;
    pthread_cond_broadcast(&d->sync_cv);
    pthread_mutex_unlock(&d->mu);
    for (unsigned i = 0; i < d->nhelpers; i++)
        pthread_join(d->helpers[i], NULL);
err_after_init:
    free(d->helpers);
    pthread_cond_destroy(&d->sync_cv);
    pthread_cond_destroy(&d->idle_cv);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    free(d->name);
    free(d);
    return -rc;
}

void rlog_disk_destroy(rlog_disk *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    CURVE_ASSERT(d->st.logs == 0 && d->ready_head == NULL && d->sync_head == NULL &&
                 d->pending == 0);
    d->stopping = true;
    pthread_cond_signal(&d->cv);
    pthread_cond_broadcast(&d->sync_cv);
    pthread_mutex_unlock(&d->mu);
    if (d->thr_started)
        pthread_join(d->thr, NULL);
    for (unsigned i = 0; i < d->nhelpers; i++)
        pthread_join(d->helpers[i], NULL);
    free(d->helpers);
    pthread_cond_destroy(&d->sync_cv);
    pthread_cond_destroy(&d->idle_cv);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    free(d->name);
    free(d);
}

void rlog_disk_get_stats(rlog_disk *d, rlog_disk_stats *out)
{
    pthread_mutex_lock(&d->mu);
    *out = d->st;
    out->pending = d->pending;
    pthread_mutex_unlock(&d->mu);
}

/* ---- queueing (under mu) ------------------------------------------------------------------ */

static void enqueue(rlog *log, rlog_op *op)
{
    op->next = NULL;
    if (log->q_tail)
        log->q_tail->next = op;
    else
        log->q_head = op;
    log->q_tail = op;
    if (log->disk)
        disk_kick(log);
    else
        pthread_cond_signal(&log->cv);
}

static int check_usable(rlog *log)
{
    if (log->failed)
        return log->failed;
    if (log->stopping)
        return CURVE_ERR_SHUTDOWN;
    return 0;
}

int rlog_append(rlog *log, const rlog_entry *entries, size_t n, rlog_cb cb, void *arg)
{
    if (!log || !entries || n == 0 || n > RLOG_MAX_APPEND_ENTRIES)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        const rlog_entry *e = &entries[i];
        if (e->len > log->o.max_entry_bytes || (e->len && !e->data) ||
            (i > 0 && (e->index != entries[i - 1].index + 1 || e->term < entries[i - 1].term)))
            return -EINVAL;
    }
    rlog_op *op = calloc(1, sizeof(*op));
    if (!op)
        return -ENOMEM;
    op->ents = calloc(n, sizeof(rlog_entry));
    if (!op->ents) {
        free(op);
        return -ENOMEM;
    }
    op->type = OP_APPEND;
    op->cb = cb;
    op->cb_arg = arg;
    /* Copy or reference the data before taking the lock. */
    for (size_t i = 0; i < n; i++) {
        const rlog_entry *e = &entries[i];
        rlog_entry *d = &op->ents[i];
        *d = *e;
        d->buf = NULL;
        d->data = NULL;
        op->bytes += e->len + RLOG__HDR_SIZE;
        if (e->len == 0)
            continue;
        if (e->buf) {
            d->buf = curve_buf_ref(e->buf);
            d->data = e->data;
        } else {
            d->buf = curve_buf_new(e->len);
            if (!d->buf) {
                op_free(op);
                return -ENOMEM;
            }
            memcpy(curve_buf_data(d->buf), e->data, e->len);
            curve_buf_set_len(d->buf, e->len);
            d->data = curve_buf_data(d->buf);
        }
        op->n = i + 1; /* op_free releases what was taken so far */
    }
    op->n = n;

    pthread_mutex_lock(&log->mu);
    int rc = check_usable(log);
    if (rc == 0 && (entries[0].index != log->last + 1 ||
                    (log->last >= log->first && entries[0].term < log->terms[log->last - log->first])))
        rc = -EINVAL;
    if (rc == 0 && log->pending > 0 && log->pending + n > log->o.max_pending_entries)
        rc = CURVE_ERR_BUSY;
    if (rc == 0)
        rc = cache_reserve(log, n);
    if (rc == 0)
        rc = grow((void **)&log->terms, &log->terms_cap, log->last + 1 - log->first + n,
                  sizeof(uint64_t));
    if (rc == 0 && log->disk) { /* the per-disk bound, reserved last (nothing to undo after) */
        pthread_mutex_lock(&log->disk->mu);
        if (log->disk->pending > 0 &&
            log->disk->pending + n > log->disk->o.max_pending_entries)
            rc = CURVE_ERR_BUSY;
        else
            log->disk->pending += n;
        pthread_mutex_unlock(&log->disk->mu);
    }
    if (rc != 0) {
        pthread_mutex_unlock(&log->mu);
        op_free(op);
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        rlog_entry c = op->ents[i];
        if (c.buf)
            curve_buf_ref(c.buf);
        cache_push(log, &c);
        log->terms[log->last + 1 - log->first] = c.term;
        log->last++;
    }
    op->epoch = log->epoch;
    log->pending += n;
    log->st.append_calls++;
    enqueue(log, op);
    cache_evict(log);
    pthread_mutex_unlock(&log->mu);
    return 0;
}

static int queue_simple(rlog *log, int type, uint64_t a, uint64_t epoch, rlog_cb cb, void *arg)
{
    rlog_op *op = calloc(1, sizeof(*op));
    if (!op)
        return -ENOMEM;
    op->type = type;
    op->epoch = epoch;
    op->arg = a;
    op->cb = cb;
    op->cb_arg = arg;
    enqueue(log, op);
    return 0;
}

int rlog_truncate_suffix(rlog *log, uint64_t from_index, rlog_cb cb, void *arg)
{
    pthread_mutex_lock(&log->mu);
    int rc = check_usable(log);
    if (rc == 0 && (from_index < log->first || from_index > log->last + 1))
        rc = -EINVAL;
    bool cut = rc == 0 && from_index <= log->last;
    if (rc == 0)
        rc = queue_simple(log, OP_TRUNCATE, from_index, log->epoch + cut, cb, arg);
    if (rc == 0 && cut) {
        log->last = from_index - 1;
        log->epoch++;
        if (log->durable > log->last)
            log->durable = log->last;
        cache_drop_from(log, from_index);
    }
    pthread_mutex_unlock(&log->mu);
    return rc;
}

int rlog_compact_prefix(rlog *log, uint64_t upto_index, rlog_cb cb, void *arg)
{
    pthread_mutex_lock(&log->mu);
    int rc = check_usable(log);
    if (rc == 0)
        rc = queue_simple(log, OP_COMPACT, upto_index, log->epoch, cb, arg);
    pthread_mutex_unlock(&log->mu);
    return rc;
}

int rlog_reset(rlog *log, uint64_t next_index, rlog_cb cb, void *arg)
{
    if (next_index == 0)
        return -EINVAL;
    pthread_mutex_lock(&log->mu);
    int rc = check_usable(log);
    if (rc == 0)
        rc = queue_simple(log, OP_RESET, next_index, log->epoch + 1, cb, arg);
    if (rc == 0) {
        log->first = next_index;
        log->last = next_index - 1;
        log->durable = log->last;
        log->epoch++;
        cache_drop_from(log, 0);
    }
    pthread_mutex_unlock(&log->mu);
    return rc;
}

/* ---- reads -------------------------------------------------------------------------------- */

static rlog_seg *find_seg(rlog *log, uint64_t index)
{
    size_t lo = 0, hi = log->nsegs;
    while (lo < hi) { /* first segment with first > index */
        size_t mid = (lo + hi) / 2;
        if (log->segs[mid]->first <= index)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    rlog_seg *s = log->segs[lo - 1];
    return index < s->first + s->count ? s : NULL;
}

static int read_disk(rlog *log, uint64_t index, uint64_t term, rlog_entry *out)
{
    int rc;
    curve_buf *b = NULL;
    const char *why = NULL;
    uint8_t hb[RLOG__HDR_SIZE];
    rlog__hdr h;
    size_t got = 0;
    pthread_mutex_lock(&log->disk_mu);
    rlog_seg *s = find_seg(log, index);
    if (!s) {
        rc = -ENOENT;
        goto out;
    }
    uint64_t off = s->offs[index - s->first];
    int fd = seg_read_fd(log, s);
    if (fd < 0) {
        rc = fd;
        goto out;
    }
    rc = pread_all(fd, hb, sizeof(hb), off, &got);
    if (rc != 0)
        goto out;
    if (got == sizeof(hb) && rlog__decode_hdr(hb, &h, NULL) == 0 && h.index == index &&
        h.term != term) {
        rc = -ESTALE; /* maybe replaced by a concurrent truncate + append; caller decides */
        goto out;
    }
    if (got != sizeof(hb) || rlog__decode_hdr(hb, &h, &why) != 0 || h.index != index ||
        h.data_len > log->o.max_entry_bytes) {
        if (!why)
            why = got != sizeof(hb) ? "short read" : "index/term/length mismatch";
        rc = CURVE_ERR_CORRUPT;
        goto out;
    }
    b = curve_buf_new(h.data_len ? h.data_len : 1);
    if (!b) {
        rc = -ENOMEM;
        goto out;
    }
    rc = pread_all(fd, curve_buf_data(b), h.data_len, off + RLOG__HDR_SIZE, &got);
    if (rc != 0)
        goto out;
    if (got != h.data_len || curve_crc32c(0, curve_buf_data(b), h.data_len) != h.data_crc) {
        why = "data crc mismatch";
        rc = CURVE_ERR_CORRUPT;
        goto out;
    }
    curve_buf_set_len(b, h.data_len);
out:
    if (rc == CURVE_ERR_CORRUPT)
        CLOG_ERROR("rlog: entry %" PRIu64 " in segment %" PRIu64 " of %s is corrupt: %s", index,
                   s ? s->first : 0, log->dir, why);
    else if (rc != 0 && rc != -ENOENT && rc != -ESTALE)
        CLOG_ERROR("rlog: reading entry %" PRIu64 " in %s: %s", index, log->dir,
                   curve_strerror(rc));
    pthread_mutex_unlock(&log->disk_mu);
    if (rc != 0) {
        curve_buf_unref(b);
        return rc;
    }
    out->index = index;
    out->term = h.term;
    out->type = h.type;
    out->len = h.data_len;
    if (h.data_len) {
        out->buf = b;
        out->data = curve_buf_data(b);
    } else {
        curve_buf_unref(b);
        out->buf = NULL;
        out->data = NULL;
    }
    return 0;
}

int rlog_read(rlog *log, uint64_t index, rlog_entry *out)
{
    for (int attempt = 0;; attempt++) {
        memset(out, 0, sizeof(*out));
        pthread_mutex_lock(&log->mu);
        if (index < log->first || index > log->last) {
            pthread_mutex_unlock(&log->mu);
            return -ENOENT;
        }
        if (cache_has(log, index)) {
            *out = *cache_at(log, (size_t)(index - log->c_first));
            if (out->buf)
                curve_buf_ref(out->buf);
            pthread_mutex_unlock(&log->mu);
            return 0;
        }
        /* Entries that are not durable are never evicted from the cache. */
        CURVE_ASSERT(index <= log->durable);
        uint64_t term = log->terms[index - log->first];
        uint64_t epoch = log->epoch;
        pthread_mutex_unlock(&log->mu);
        int rc = read_disk(log, index, term, out);
        if (rc != -ESTALE)
            return rc;
        /* The record on disk has another term: fine if a truncation raced with us (retry,
         * bounded), corruption otherwise. */
        pthread_mutex_lock(&log->mu);
        bool raced = log->epoch != epoch;
        pthread_mutex_unlock(&log->mu);
        if (!raced || attempt + 1 >= RLOG_READ_RETRIES) {
            CLOG_ERROR("rlog: entry %" PRIu64 " in %s has an unexpected term on disk", index,
                       log->dir);
            return CURVE_ERR_CORRUPT;
        }
    }
}

int rlog_read_range(rlog *log, uint64_t index, size_t max_n, size_t max_bytes, rlog_entry *out,
                    size_t *n_out)
{
    size_t n = 0, bytes = 0;
    int rc = 0;
    *n_out = 0;
    while (n < max_n && (n == 0 || bytes < max_bytes)) {
        rc = rlog_read(log, index + n, &out[n]);
        if (rc == -ENOENT && n > 0) {
            rc = 0;
            break;
        }
        if (rc != 0)
            break;
        bytes += out[n].len;
        n++;
    }
    if (rc != 0) {
        for (size_t i = 0; i < n; i++)
            rlog_entry_release(&out[i]);
        return rc;
    }
    *n_out = n;
    return 0;
}

int rlog_term_at(rlog *log, uint64_t index, uint64_t *term)
{
    int rc = -ENOENT;
    pthread_mutex_lock(&log->mu);
    if (index >= log->first && index <= log->last) {
        *term = log->terms[index - log->first];
        rc = 0;
    }
    pthread_mutex_unlock(&log->mu);
    return rc;
}

uint64_t rlog_first_index(rlog *log)
{
    pthread_mutex_lock(&log->mu);
    uint64_t v = log->first;
    pthread_mutex_unlock(&log->mu);
    return v;
}

uint64_t rlog_last_index(rlog *log)
{
    pthread_mutex_lock(&log->mu);
    uint64_t v = log->last;
    pthread_mutex_unlock(&log->mu);
    return v;
}

uint64_t rlog_durable_index(rlog *log)
{
    pthread_mutex_lock(&log->mu);
    uint64_t v = log->durable;
    pthread_mutex_unlock(&log->mu);
    return v;
}

void rlog_get_stats(rlog *log, rlog_stats *out)
{
    pthread_mutex_lock(&log->mu);
    *out = log->st;
    pthread_mutex_unlock(&log->mu);
}

/* ---- open / recovery ---------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Parses "log_<20 digits>". */
static bool parse_seg_name(const char *name, uint64_t *first)
{
    size_t pl = strlen(SEG_NAME_PREFIX);
    if (strncmp(name, SEG_NAME_PREFIX, pl) != 0 || strlen(name) != pl + SEG_NAME_DIGITS)
        return false;
    uint64_t v = 0;
    for (size_t i = pl; i < pl + SEG_NAME_DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        uint64_t d = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *first = v;
    return v > 0;
}

static int list_segments(rlog *log, uint64_t **out, size_t *n_out)
{
    DIR *d = opendir(log->dir);
    if (!d)
        return -errno;
    uint64_t *v = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t first;
        if (!parse_seg_name(de->d_name, &first)) {
            if (strncmp(de->d_name, SEG_NAME_PREFIX, strlen(SEG_NAME_PREFIX)) == 0)
                CLOG_WARN("rlog: ignoring unexpected file %s/%s", log->dir, de->d_name);
            continue;
        }
        rc = grow((void **)&v, &cap, n + 1, sizeof(uint64_t));
        if (rc != 0)
            break;
        v[n++] = first;
    }
    closedir(d);
    if (rc != 0) {
        free(v);
        return rc;
    }
    if (n > 1)
        qsort(v, n, sizeof(uint64_t), cmp_u64);
    *out = v;
    *n_out = n;
    return 0;
}

typedef struct scan_ctx {
    rlog *log;
    rlog_seg *seg;
} scan_ctx;

static int scan_cb(void *arg, const rlog__hdr *h, size_t off)
{
    scan_ctx *c = arg;
    rlog *log = c->log;
    size_t i = (size_t)(h->index - log->first);
    int rc = grow((void **)&log->terms, &log->terms_cap, i + 1, sizeof(uint64_t));
    if (rc == 0)
        rc = seg_push_off(c->seg, (uint32_t)off);
    if (rc == 0)
        log->terms[i] = h->term;
    return rc;
}

/* Loads segment `first` (the `idx`-th of `n`) into the segment table. */
static int load_segment(rlog *log, uint64_t first, bool is_last, uint64_t *prev_term,
                        rlog_info *info)
{
    char path[4096];
    seg_path(log, first, path, sizeof(path));
    uint8_t *img = NULL;
    int rc;
    rlog_seg *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->first = first;
    s->fd = open(path, O_RDWR | O_CLOEXEC);
    if (s->fd < 0) {
        rc = -errno;
        CLOG_ERROR("rlog: open %s: %s", path, curve_strerror(rc));
        goto err_after_alloc;
    }
    struct stat st;
    if (fstat(s->fd, &st) != 0) {
        rc = -errno;
        goto err_after_alloc;
    }
    if ((uint64_t)st.st_size > RLOG_MAX_SEGMENT_BYTES) {
        CLOG_ERROR("rlog: %s is %jd bytes, more than the %u-byte limit", path,
                   (intmax_t)st.st_size, RLOG_MAX_SEGMENT_BYTES);
        rc = CURVE_ERR_CONFIG;
        goto err_after_alloc;
    }
    size_t len = (size_t)st.st_size;
    img = malloc(len ? len : 1);
    if (!img) {
        rc = -ENOMEM;
        goto err_after_alloc;
    }
    size_t got = 0;
    rc = pread_all(s->fd, img, len, 0, &got);
    if (rc != 0)
        goto err_after_img;
    len = got;
    if (log->nsegs > 0 && first != log->last + 1) {
        CLOG_ERROR("rlog: %s: segment starts at %" PRIu64 " but the previous one ends at %" PRIu64,
                   path, first, log->last);
        rc = CURVE_ERR_CORRUPT;
        goto err_after_img;
    }
    if (log->nsegs == 0) {
        log->first = first;
        log->last = first - 1;
    }
    scan_ctx c = {log, s};
    rlog__scan_result r;
    rc = rlog__scan_segment(img, len, first, *prev_term, scan_cb, &c, &r);
    if (rc != 0)
        goto err_after_img;
    s->count = r.count;
    log->last += r.count;
    *prev_term = r.last_term;
    if (r.status == RLOG__SCAN_CORRUPT || (r.status == RLOG__SCAN_TORN && !is_last)) {
        CLOG_ERROR("rlog: %s is corrupt at offset %zu (%s) %s; refusing to truncate", path,
                   r.bad_off, r.why,
                   r.status == RLOG__SCAN_CORRUPT ? "and a later durable write follows"
                                                  : "in a closed segment");
        rc = CURVE_ERR_CORRUPT;
        goto err_after_img;
    }
    s->cap = len > log->o.segment_bytes ? len : log->o.segment_bytes;
    if (is_last) {
        if (r.status == RLOG__SCAN_TORN) {
            CLOG_WARN("rlog: %s: torn or corrupt tail at offset %zu (%s); keeping %" PRIu64
                      " records up to offset %zu, zeroing %zu non-zero bytes after them",
                      path, r.bad_off, r.why, r.count, r.end_off, r.nonzero_bytes);
            rc = zero_range(s->fd, r.end_off, len);
            if (info) {
                info->tail_truncated = true;
                info->truncated_bytes += r.nonzero_bytes;
            }
        }
        if (rc == 0 && len < s->cap)
            rc = preallocate(s->fd, s->cap);
        if (rc == 0 && (r.status == RLOG__SCAN_TORN || len < s->cap) && fsync(s->fd) != 0)
            rc = -errno;
        if (rc != 0) {
            CLOG_ERROR("rlog: repairing tail of %s: %s", path, curve_strerror(rc));
            goto err_after_img;
        }
        s->write_off = align_up(r.end_off);
    } else {
        close(s->fd); /* reopened read-only on demand */
        s->fd = -1;
    }
    free(img);
    rc = grow((void **)&log->segs, &log->segs_cap, log->nsegs + 1, sizeof(rlog_seg *));
    if (rc != 0)
        goto err_after_alloc;
    log->segs[log->nsegs++] = s;
    return 0;

err_after_img:
    free(img);
err_after_alloc:
    seg_free(s);
    return rc;
}

static void log_free(rlog *log)
{
    for (size_t i = 0; i < log->nsegs; i++)
        seg_free(log->segs[i]);
    free(log->segs);
    cache_drop_from(log, 0);
    free(log->cache);
    free(log->terms);
    free(log->stage);
    free(log->stage_offs);
    if (log->dirfd >= 0) {
        spare_drop(log); /* a ready spare is not kept: rlog_open() would delete it anyway */
        close(log->dirfd);
    }
    pthread_mutex_destroy(&log->mu);
    pthread_mutex_destroy(&log->disk_mu);
    pthread_cond_destroy(&log->cv);
    free(log->dir);
    free(log);
}

int rlog_open(const char *dir, const rlog_opts *opts, rlog **out, rlog_info *info)
{
    rlog_opts o;
    if (opts)
        o = *opts;
    else
        rlog_opts_default(&o);
    if (!dir || !out || validate_opts(&o) != 0)
        return -EINVAL;
    if (info)
        memset(info, 0, sizeof(*info));
    rlog *log = calloc(1, sizeof(*log));
    if (!log)
        return -ENOMEM;
    log->o = o;
    log->dirfd = -1;
    log->spare_fd = -1;
    pthread_mutex_init(&log->mu, NULL);
    pthread_mutex_init(&log->disk_mu, NULL);
    pthread_cond_init(&log->cv, NULL);
    int rc = -ENOMEM;
    log->dir = strdup(dir);
    if (!log->dir)
        goto err;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        rc = -errno;
        CLOG_ERROR("rlog: mkdir %s: %s", dir, curve_strerror(rc));
        goto err;
    }
    log->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (log->dirfd < 0) {
        rc = -errno;
        CLOG_ERROR("rlog: open directory %s: %s", dir, curve_strerror(rc));
        goto err;
    }
    /* A spare is never part of the log: whatever state a crash left it in, it goes. */
    if (unlinkat(log->dirfd, SPARE_NAME, 0) == 0) {
        CLOG_INFO("rlog: removed leftover spare segment %s/%s", dir, SPARE_NAME);
    } else if (errno != ENOENT) {
        rc = -errno;
        CLOG_ERROR("rlog: cannot remove %s/%s: %s", dir, SPARE_NAME, curve_strerror(rc));
        goto err;
    }
    uint64_t *names = NULL;
    size_t nnames = 0;
    rc = list_segments(log, &names, &nnames);
    if (rc != 0) {
        CLOG_ERROR("rlog: listing %s: %s", dir, curve_strerror(rc));
        goto err;
    }
    log->first = 1;
    log->last = 0;
    uint64_t prev_term = 0;
    for (size_t i = 0; i < nnames && rc == 0; i++)
        rc = load_segment(log, names[i], i + 1 == nnames, &prev_term, info);
    free(names);
    if (rc != 0)
        goto err;
    log->durable = log->last;
    if (info) {
        info->first_index = log->first;
        info->last_index = log->last;
        info->last_term = log->last >= log->first ? log->terms[log->last - log->first] : 0;
        info->segments = (uint32_t)log->nsegs;
    }
    if (o.disk) {
        pthread_mutex_lock(&o.disk->mu);
        rc = o.disk->stopping ? CURVE_ERR_SHUTDOWN : 0;
        if (rc == 0)
            o.disk->st.logs++;
        pthread_mutex_unlock(&o.disk->mu);
        if (rc != 0)
            goto err;
        log->disk = o.disk;
    } else {
        rc = pthread_create(&log->thr, NULL, io_main, log);
        if (rc != 0) {
            rc = -rc;
            goto err;
        }
        pthread_setname_np(log->thr, "rlog-io");
        log->thr_started = true;
    }
    CLOG_INFO("rlog: opened %s: entries [%" PRIu64 ", %" PRIu64 "] in %zu segments", dir,
              log->first, log->last, log->nsegs);
    *out = log;
    return 0;
err:
    log_free(log);
    return rc;
}

void rlog_close(rlog *log)
{
    if (!log)
        return;
    pthread_mutex_lock(&log->mu);
    log->stopping = true;
    pthread_cond_signal(&log->cv);
    pthread_mutex_unlock(&log->mu);
    if (log->thr_started)
        pthread_join(log->thr, NULL);
    if (log->disk) {
        /* No request can be queued any more (stopping). A log with queued requests is on the
         * ready list or in the current round and goes back on the list while requests remain,
         * so once it is on neither, its queue is drained and the disk thread forgot it. */
        rlog_disk *d = log->disk;
        pthread_mutex_lock(&d->mu);
        while (log->rd_in_ready || log->rd_in_round)
            pthread_cond_wait(&d->idle_cv, &d->mu);
        CURVE_ASSERT(d->st.logs > 0);
        d->st.logs--;
        pthread_mutex_unlock(&d->mu);
    }
    CURVE_ASSERT(log->q_head == NULL && log->pending == 0);
    log_free(log);
}
