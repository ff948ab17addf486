/* Chunk store: see chunkstore.h for the contract and the locking rules. */
#include "chunkserver/chunkstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/assert.h"
#include "common/clock.h"
#include "common/failpoint.h"
#include "common/log.h"
#include "curve/errors.h"

/* Fds closed per eviction pass (bounds the work done by one caller). */
#define CS_EVICT_BATCH 8
/* Initial hash bucket count (power of two). */
#define CS_BUCKETS_MIN 64

typedef enum {
    CK_NEW = 0, /* entry exists, file not created yet (or creation failed) */
    CK_LIVE,    /* file exists; header valid when fd >= 0 */
    CK_CORRUPT, /* file exists, header failed validation: never served */
    CK_GONE,    /* deleted; entry only kept alive by pins */
} ck_state;

typedef struct cs_chunk cs_chunk;
struct cs_chunk {
    uint64_t id;
    pthread_rwlock_t lock; /* shared: data IO; exclusive: create/delete/install/sn/fd open */
    /* The fields below are protected by the store mutex. `state`, `fd` and `sn` are written
     * only with both the chunk lock (exclusive) and the store mutex held, so holding either
     * one is enough to read them — except for entries with refs == 0, whose fd the store
     * mutex alone may detach (nobody can hold their chunk lock). */
    ck_state state;
    int fd;
    uint64_t sn;
    unsigned refs;
    bool in_table, dirty, installing;
    cs_chunk *hnext;             /* hash chain */
    cs_chunk *lru_prev, *lru_next; /* open-fd LRU (head = most recent) */
    cs_chunk *d_prev, *d_next;   /* dirty list */
};

struct curve_chunkstore {
    char *dir;
    curve_cfp *pool;
    uint32_t chunk_size;
    uint64_t file_size;
    uint32_t io_align;
    unsigned fd_max;
    void (*on_write)(void *arg, uint64_t dur_us, bool ok); /* opts.on_write (may be NULL) */
    void *on_write_arg;

    pthread_mutex_t mu; /* protects everything below and the cs_chunk fields noted above */
    pthread_cond_t evict_cv; /* signalled when evict_inflight drops */
    cs_chunk **buckets;
    size_t nbuckets, nentries;
    cs_chunk lru;       /* sentinel */
    cs_chunk dirty;     /* sentinel */
    uint64_t nchunks, ndirty, open_fds, corrupt, evict_inflight;
    uint64_t reads, writes, read_bytes, write_bytes, syncs;
};

struct curve_chunk_install {
    curve_chunkstore *cs;
    cs_chunk *ch; /* pinned, installing = true */
    int fd;
    char path[PATH_MAX];
};

/* ---- small helpers --------------------------------------------------------------------- */

static void list_init(cs_chunk *s, bool lru)
{
    if (lru)
        s->lru_prev = s->lru_next = s;
    else
        s->d_prev = s->d_next = s;
}

static void lru_remove(cs_chunk *c)
{
    c->lru_prev->lru_next = c->lru_next;
    c->lru_next->lru_prev = c->lru_prev;
    c->lru_prev = c->lru_next = NULL;
}

static void lru_push_head(curve_chunkstore *cs, cs_chunk *c)
{
    c->lru_next = cs->lru.lru_next;
    c->lru_prev = &cs->lru;
    cs->lru.lru_next->lru_prev = c;
    cs->lru.lru_next = c;
}

/* Called with mu held. */
static void dirty_set(curve_chunkstore *cs, cs_chunk *c)
{
    if (c->dirty)
        return;
    c->dirty = true;
    c->d_next = cs->dirty.d_next;
    c->d_prev = &cs->dirty;
    cs->dirty.d_next->d_prev = c;
    cs->dirty.d_next = c;
    cs->ndirty++;
}

/* Called with mu held. */
static void dirty_clear(curve_chunkstore *cs, cs_chunk *c)
{
    if (!c->dirty)
        return;
    c->d_prev->d_next = c->d_next;
    c->d_next->d_prev = c->d_prev;
    c->d_prev = c->d_next = NULL;
    c->dirty = false;
    cs->ndirty--;
}

static size_t bucket_of(const curve_chunkstore *cs, uint64_t id)
{
    return (size_t)((id * 0x9e3779b97f4a7c15ull) >> 17) & (cs->nbuckets - 1);
}

static cs_chunk *table_find(curve_chunkstore *cs, uint64_t id)
{
    for (cs_chunk *c = cs->buckets[bucket_of(cs, id)]; c != NULL; c = c->hnext)
        if (c->id == id)
            return c;
    return NULL;
}

static void table_grow(curve_chunkstore *cs)
{
    size_t n = cs->nbuckets * 2;
    cs_chunk **nb = calloc(n, sizeof(*nb));
    if (nb == NULL)
        return; /* keep the longer chains */
    cs_chunk **old = cs->buckets;
    size_t oldn = cs->nbuckets;
    cs->buckets = nb;
    cs->nbuckets = n;
    for (size_t i = 0; i < oldn; i++) {
        cs_chunk *c = old[i];
        while (c != NULL) {
            cs_chunk *next = c->hnext;
            size_t b = bucket_of(cs, c->id);
            c->hnext = nb[b];
            nb[b] = c;
            c = next;
        }
    }
    free(old);
}

static void table_insert(curve_chunkstore *cs, cs_chunk *c)
{
    if (cs->nentries >= cs->nbuckets)
        table_grow(cs);
    size_t b = bucket_of(cs, c->id);
    c->hnext = cs->buckets[b];
    cs->buckets[b] = c;
    c->in_table = true;
    cs->nentries++;
}

static void table_remove(curve_chunkstore *cs, cs_chunk *c)
{
    cs_chunk **pp = &cs->buckets[bucket_of(cs, c->id)];
    while (*pp != c) {
        CURVE_ASSERT(*pp != NULL);
        pp = &(*pp)->hnext;
    }
    *pp = c->hnext;
    c->hnext = NULL;
    c->in_table = false;
    cs->nentries--;
}

static cs_chunk *chunk_new(uint64_t id, ck_state state)
{
    cs_chunk *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    if (pthread_rwlock_init(&c->lock, NULL) != 0) {
        free(c);
        return NULL;
    }
    c->id = id;
    c->state = state;
    c->fd = -1;
    return c;
}

static void chunk_free(cs_chunk *c)
{
    pthread_rwlock_destroy(&c->lock);
    free(c);
}

static void chunk_path(const curve_chunkstore *cs, uint64_t id, const char *suffix, char *out,
                       size_t len)
{
    int n = snprintf(out, len, "%s/chunk_%llu%s", cs->dir, (unsigned long long)id, suffix);
    CURVE_ASSERT(n > 0 && (size_t)n < len);
}

/* Marks the disk failed and returns the code every caller reports. */
static int cs_disk_fail(curve_chunkstore *cs, int err, const char *what, uint64_t id)
{
    CLOG_ERROR("chunk store %s: %s of chunk %llu failed: %s", cs->dir, what,
               (unsigned long long)id, curve_strerror(err));
    curve_cfp_mark_failed(cs->pool, err);
    return CURVE_ERR_DISK_FAIL;
}

/* Full pwrite / pread loops. Return 0 or -errno (-EIO on a zero-length transfer). */
static int pwritev_full(int fd, const struct iovec *iov_in, int iovcnt, uint64_t off)
{
    struct iovec iov[CURVE_CHUNKSTORE_IOV_MAX];
    CURVE_ASSERT(iovcnt > 0 && iovcnt <= CURVE_CHUNKSTORE_IOV_MAX);
    memcpy(iov, iov_in, sizeof(*iov) * (size_t)iovcnt);
    struct iovec *v = iov;
    while (iovcnt > 0) {
        ssize_t n = pwritev(fd, v, iovcnt, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;
        off += (uint64_t)n;
        while (iovcnt > 0 && (size_t)n >= v->iov_len) {
            n -= (ssize_t)v->iov_len;
            v++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            v->iov_base = (char *)v->iov_base + n;
            v->iov_len -= (size_t)n;
        }
    }
    return 0;
}

/* Reads up to len bytes; returns bytes read (short only at EOF) or -errno. */
static ssize_t pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

/* One chunk-file write as the disk sees it: the failpoint, then the full pwritev. With
 * `observe`, its duration goes to the store's write observer (slow-disk detection,
 * docs/chunkserver.md); snapshot-install writes (large, throttled, on a replica being built)
 * are not observed. */
static int cs_pwrite(curve_chunkstore *cs, int fd, const struct iovec *iov, int iovcnt,
                     uint64_t off, bool observe)
{
    observe = observe && cs->on_write != NULL;
    uint64_t t0 = observe ? curve_now_mono_ns() : 0;
    int rc = CURVE_FAILPOINT("chunkstore.write");
    if (rc == 0)
        rc = pwritev_full(fd, iov, iovcnt, off);
    if (observe)
        cs->on_write(cs->on_write_arg, (curve_now_mono_ns() - t0) / 1000, rc == 0);
    return rc;
}

/* ---- pinning and the fd cache ---------------------------------------------------------- */

/* Finds (or, with create, inserts a CK_NEW entry for) chunk `id` and takes a reference.
 * Returns 0, CURVE_ERR_CHUNK_NOTEXIST or -ENOMEM. */
static int cs_pin(curve_chunkstore *cs, uint64_t id, bool create, cs_chunk **out)
{
    pthread_mutex_lock(&cs->mu);
    cs_chunk *c = table_find(cs, id);
    if (c == NULL) {
        if (!create) {
            pthread_mutex_unlock(&cs->mu);
            return CURVE_ERR_CHUNK_NOTEXIST;
        }
        c = chunk_new(id, CK_NEW);
        if (c == NULL) {
            pthread_mutex_unlock(&cs->mu);
            return -ENOMEM;
        }
        table_insert(cs, c);
    }
    c->refs++;
    if (c->fd >= 0) {
        lru_remove(c);
        lru_push_head(cs, c);
    }
    pthread_mutex_unlock(&cs->mu);
    *out = c;
    return 0;
}

/* Detaches the fd of `c` (mu held). Returns the fd; the caller closes it. */
static int cs_detach_fd(curve_chunkstore *cs, cs_chunk *c)
{
    int fd = c->fd;
    if (fd >= 0) {
        lru_remove(c);
        c->fd = -1;
        cs->open_fds--;
    }
    return fd;
}

/* Closes fds beyond the cache bound, least recently used first, skipping pinned chunks. A
 * dirty fd is fdatasync'ed before it is closed (its dirty mark moves with it); sync_dirty
 * waits for such flushes through evict_inflight. */
static void cs_evict_excess(curve_chunkstore *cs)
{
    int fds[CS_EVICT_BATCH];
    bool dirty[CS_EVICT_BATCH];
    uint64_t ids[CS_EVICT_BATCH];
    unsigned n = 0, ndirty = 0;

    pthread_mutex_lock(&cs->mu);
    cs_chunk *c = cs->lru.lru_prev;
    while (cs->open_fds > cs->fd_max && n < CS_EVICT_BATCH && c != &cs->lru) {
        cs_chunk *prev = c->lru_prev;
        if (c->refs == 0) {
            dirty[n] = c->dirty;
            ids[n] = c->id;
            ndirty += c->dirty;
            dirty_clear(cs, c);
            fds[n++] = cs_detach_fd(cs, c);
        }
        c = prev;
    }
    cs->evict_inflight += ndirty;
    pthread_mutex_unlock(&cs->mu);
    if (n == 0)
        return;

    for (unsigned i = 0; i < n; i++) {
        if (dirty[i]) {
            int rc = CURVE_FAILPOINT("chunkstore.sync");
            if (rc == 0 && fdatasync(fds[i]) != 0)
                rc = -errno;
            if (rc != 0)
                (void)cs_disk_fail(cs, rc, "fdatasync (fd eviction)", ids[i]);
        }
        close(fds[i]);
    }
    pthread_mutex_lock(&cs->mu);
    cs->evict_inflight -= ndirty;
    pthread_cond_broadcast(&cs->evict_cv);
    pthread_mutex_unlock(&cs->mu);
}

static void cs_unpin(curve_chunkstore *cs, cs_chunk *c)
{
    bool free_it = false;
    pthread_mutex_lock(&cs->mu);
    CURVE_ASSERT(c->refs > 0);
    c->refs--;
    if (c->refs == 0 && (c->state == CK_NEW || c->state == CK_GONE)) {
        CURVE_ASSERT(c->fd < 0 && !c->dirty);
        if (c->in_table)
            table_remove(cs, c);
        free_it = true;
    }
    bool over = cs->open_fds > cs->fd_max;
    pthread_mutex_unlock(&cs->mu);
    if (free_it)
        chunk_free(c);
    if (over)
        cs_evict_excess(cs);
}

/* Sets state/fd/sn of a chunk whose lock is held exclusively. */
static void cs_set_state(curve_chunkstore *cs, cs_chunk *c, ck_state st)
{
    pthread_mutex_lock(&cs->mu);
    bool was = c->state == CK_LIVE || c->state == CK_CORRUPT;
    bool is = st == CK_LIVE || st == CK_CORRUPT;
    if (!was && is)
        cs->nchunks++;
    else if (was && !is)
        cs->nchunks--;
    if (st == CK_CORRUPT && c->state != CK_CORRUPT)
        cs->corrupt++;
    c->state = st;
    pthread_mutex_unlock(&cs->mu);
}

/* Opens the chunk file and validates its header. Chunk lock held exclusively. */
static int cs_open_fd(curve_chunkstore *cs, cs_chunk *c)
{
    char path[PATH_MAX];
    uint8_t page[CURVE_CHUNK_HEADER_SIZE];
    curve_chunk_header h;
    struct stat st;

    chunk_path(cs, c->id, "", path, sizeof(path));
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        if (rc == -ENOENT) {
            CLOG_ERROR("chunk file %s vanished", path);
            cs_set_state(cs, c, CK_GONE);
            return CURVE_ERR_CHUNK_NOTEXIST;
        }
        return cs_disk_fail(cs, rc, "open", c->id);
    }
    /* Chunk IO is small and random (4 KiB..1 MiB at any offset): no readahead, so the page
     * cache holds small folios. A 4 KiB write into a large folio costs a walk over all its
     * buffer heads (ext4_block_write_begin) and writes the whole folio back. Advisory. */
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
    ssize_t n = pread_full(fd, page, sizeof(page), 0);
    if (n < 0) {
        close(fd);
        return cs_disk_fail(cs, (int)n, "header read", c->id);
    }
    const char *why = NULL;
    if ((size_t)n != sizeof(page) || curve_chunk_header_decode(page, sizeof(page), &h) != 0)
        why = "bad header (magic/version/crc)";
    else if (h.flags & CURVE_CHUNK_FLAG_FREE)
        why = "header marks a free pool file";
    else if (h.chunk_id != c->id)
        why = "header holds another chunk id";
    else if (h.chunk_size != cs->chunk_size)
        why = "header chunk size differs from the pool's";
    else if (fstat(fd, &st) != 0 || (uint64_t)st.st_size < cs->file_size)
        why = "file shorter than a chunk";
    if (why != NULL) {
        close(fd);
        CLOG_ERROR("chunk file %s is CORRUPT: %s; not served", path, why);
        cs_set_state(cs, c, CK_CORRUPT);
        return CURVE_ERR_CORRUPT;
    }
    pthread_mutex_lock(&cs->mu);
    c->fd = fd;
    c->sn = h.sn;
    lru_push_head(cs, c);
    cs->open_fds++;
    pthread_mutex_unlock(&cs->mu);
    return 0;
}

static void cs_encode_header(const curve_chunkstore *cs, uint64_t id, uint64_t sn, uint8_t *page)
{
    curve_chunk_header h = {.version = CURVE_CHUNK_VERSION,
                            .flags = 0,
                            .chunk_id = id,
                            .sn = sn,
                            .corrected_sn = 0,
                            .chunk_size = cs->chunk_size};
    curve_chunk_header_encode(&h, page);
}

/* Creates the chunk file from the pool. Chunk lock held exclusively, state CK_NEW. */
static int cs_create_file(curve_chunkstore *cs, cs_chunk *c, uint64_t sn)
{
    char path[PATH_MAX];
    uint8_t page[CURVE_CHUNK_HEADER_SIZE];
    chunk_path(cs, c->id, "", path, sizeof(path));
    cs_encode_header(cs, c->id, sn, page);
    int rc = curve_cfp_get(cs->pool, path, page);
    if (rc != 0)
        return rc;
    cs_set_state(cs, c, CK_LIVE);
    return cs_open_fd(cs, c);
}

/* Rewrites the header with a newer sequence number. Chunk lock held exclusively. */
static int cs_update_sn(curve_chunkstore *cs, cs_chunk *c, uint64_t sn)
{
    uint8_t page[CURVE_CHUNK_HEADER_SIZE];
    cs_encode_header(cs, c->id, sn, page);
    struct iovec iov = {.iov_base = page, .iov_len = sizeof(page)};
    int rc = cs_pwrite(cs, c->fd, &iov, 1, 0, true);
    if (rc != 0)
        return cs_disk_fail(cs, rc, "header write", c->id);
    pthread_mutex_lock(&cs->mu);
    c->sn = sn;
    dirty_set(cs, c);
    pthread_mutex_unlock(&cs->mu);
    return 0;
}

/* Brings a chunk to a servable state: created (if `create`), fd open, header valid and, for
 * writes (`sn` != NULL), sn up to date. Chunk lock held exclusively. */
static int cs_prepare(curve_chunkstore *cs, cs_chunk *c, bool create, const uint64_t *sn)
{
    int rc;
    if (c->state == CK_GONE || (c->state == CK_NEW && !create))
        return CURVE_ERR_CHUNK_NOTEXIST;
    if (c->state == CK_CORRUPT)
        return CURVE_ERR_CORRUPT;
    if (c->state == CK_NEW) {
        rc = cs_create_file(cs, c, sn ? *sn : 0);
        if (rc != 0)
            return rc;
    }
    if (c->fd < 0 && (rc = cs_open_fd(cs, c)) != 0)
        return rc;
    if (sn != NULL && *sn < c->sn)
        return CURVE_ERR_BACKWARD;
    if (sn != NULL && *sn > c->sn)
        return cs_update_sn(cs, c, *sn);
    return 0;
}

/* True when the chunk can be served under a shared lock. */
static bool cs_ready(const cs_chunk *c, const uint64_t *sn)
{
    return c->state == CK_LIVE && c->fd >= 0 && (sn == NULL || *sn == c->sn);
}

/* Pins chunk `id` and locks it so that it is servable: shared when possible, else exclusive
 * after cs_prepare. On success *excl tells which lock is held. */
static int cs_acquire(curve_chunkstore *cs, uint64_t id, bool create, const uint64_t *sn,
                      cs_chunk **out, bool *excl)
{
    cs_chunk *c;
    int rc = cs_pin(cs, id, create, &c);
    if (rc != 0)
        return rc;
    pthread_rwlock_rdlock(&c->lock);
    if (cs_ready(c, sn)) {
        *out = c;
        *excl = false;
        return 0;
    }
    pthread_rwlock_unlock(&c->lock);
    pthread_rwlock_wrlock(&c->lock);
    rc = cs_prepare(cs, c, create, sn);
    if (rc != 0) {
        pthread_rwlock_unlock(&c->lock);
        cs_unpin(cs, c);
        return rc;
    }
    *out = c;
    *excl = true;
    return 0;
}

static void cs_release(curve_chunkstore *cs, cs_chunk *c)
{
    pthread_rwlock_unlock(&c->lock);
    cs_unpin(cs, c);
}

/* ---- open / close ---------------------------------------------------------------------- */

/* Parses "chunk_<id><suffix>" strictly. */
static bool parse_chunk_name(const char *name, const char *suffix, uint64_t *id)
{
    size_t len = strlen(name), slen = strlen(suffix);
    if (strncmp(name, "chunk_", 6) != 0 || len <= 6 + slen ||
        strcmp(name + len - slen, suffix) != 0)
        return false;
    size_t digits = len - 6 - slen;
    const char *d = name + 6;
    if (digits > 20 || (digits > 1 && d[0] == '0'))
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < digits; i++) {
        if (d[i] < '0' || d[i] > '9')
            return false;
        uint64_t nv = v * 10 + (uint64_t)(d[i] - '0');
        if (nv / 10 != v)
            return false; /* overflow */
        v = nv;
    }
    *id = v;
    return true;
}

static int cs_scan(curve_chunkstore *cs)
{
    char path[PATH_MAX];
    int rc = 0;
    DIR *d = opendir(cs->dir);
    if (d == NULL) {
        rc = -errno;
        CLOG_ERROR("cannot open chunk dir %s: %s", cs->dir, curve_strerror(rc));
        return rc;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t id;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (parse_chunk_name(de->d_name, ".install", &id)) {
            chunk_path(cs, id, ".install", path, sizeof(path));
            CLOG_WARN("giving interrupted install file %s back to the pool", path);
            if ((rc = curve_cfp_put(cs->pool, path)) != 0)
                break;
        } else if (parse_chunk_name(de->d_name, "", &id)) {
            if (table_find(cs, id) != NULL)
                continue;
            cs_chunk *c = chunk_new(id, CK_LIVE);
            if (c == NULL) {
                rc = -ENOMEM;
                break;
            }
            table_insert(cs, c);
            cs->nchunks++;
        } else {
            CLOG_WARN("ignoring unexpected file %s/%s in chunk dir", cs->dir, de->d_name);
        }
    }
    closedir(d);
    return rc;
}

int curve_chunkstore_open(const curve_chunkstore_opts *o, curve_chunkstore **out)
{
    int rc;
    if (o == NULL || out == NULL || o->data_dir == NULL || o->data_dir[0] == '\0' ||
        o->pool == NULL || strlen(o->data_dir) > PATH_MAX - 64 ||
        (o->io_align != 0 && o->io_align != 512 && o->io_align != 4096))
        return -EINVAL;
    curve_chunkstore *cs = calloc(1, sizeof(*cs));
    if (cs == NULL)
        return -ENOMEM;
    cs->dir = strdup(o->data_dir);
    cs->nbuckets = CS_BUCKETS_MIN;
    cs->buckets = calloc(cs->nbuckets, sizeof(*cs->buckets));
    if (cs->dir == NULL || cs->buckets == NULL) {
        rc = -ENOMEM;
        goto err_after_alloc;
    }
    cs->pool = o->pool;
    cs->chunk_size = curve_cfp_chunk_size(o->pool);
    cs->file_size = (uint64_t)cs->chunk_size + CURVE_CHUNK_HEADER_SIZE;
    cs->io_align = o->io_align ? o->io_align : 4096;
    cs->fd_max = o->fd_cache_max ? o->fd_cache_max : CURVE_CHUNKSTORE_FD_CACHE_DEFAULT;
    cs->on_write = o->on_write;
    cs->on_write_arg = o->on_write_arg;
    list_init(&cs->lru, true);
    list_init(&cs->dirty, false);
    pthread_mutex_init(&cs->mu, NULL);
    pthread_cond_init(&cs->evict_cv, NULL);
    if (mkdir(cs->dir, 0755) != 0 && errno != EEXIST) {
        rc = -errno;
        CLOG_ERROR("cannot create chunk dir %s: %s", cs->dir, curve_strerror(rc));
        goto err_after_init;
    }
    rc = cs_scan(cs);
    if (rc != 0)
        goto err_after_init;
    *out = cs;
    return 0;

err_after_init:
    for (size_t i = 0; i < cs->nbuckets; i++) {
        while (cs->buckets[i] != NULL) {
            cs_chunk *c = cs->buckets[i];
            cs->buckets[i] = c->hnext;
            chunk_free(c);
        }
    }
    pthread_cond_destroy(&cs->evict_cv);
    pthread_mutex_destroy(&cs->mu);
err_after_alloc:
    free(cs->buckets);
    free(cs->dir);
    free(cs);
    return rc;
}

void curve_chunkstore_close(curve_chunkstore *cs)
{
    if (cs == NULL)
        return;
    for (size_t i = 0; i < cs->nbuckets; i++) {
        cs_chunk *c = cs->buckets[i];
        while (c != NULL) {
            cs_chunk *next = c->hnext;
            CURVE_ASSERT(c->refs == 0);
            if (c->fd >= 0)
                close(c->fd);
            chunk_free(c);
            c = next;
        }
    }
    pthread_cond_destroy(&cs->evict_cv);
    pthread_mutex_destroy(&cs->mu);
    free(cs->buckets);
    free(cs->dir);
    free(cs);
}

/* ---- data path ------------------------------------------------------------------------- */

static bool cs_range_ok(const curve_chunkstore *cs, uint64_t off, size_t len)
{
    return len > 0 && off % cs->io_align == 0 && len % cs->io_align == 0 &&
           off <= cs->chunk_size && len <= cs->chunk_size - off;
}

int curve_chunkstore_writev(curve_chunkstore *cs, uint64_t chunk_id, uint64_t sn, uint64_t off,
                            const struct iovec *iov, int iovcnt)
{
    size_t len = 0;
    if (iov == NULL || iovcnt < 1 || iovcnt > CURVE_CHUNKSTORE_IOV_MAX)
        return CURVE_ERR_INVALID_REQUEST;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_base == NULL && iov[i].iov_len != 0)
            return CURVE_ERR_INVALID_REQUEST;
        if (iov[i].iov_len > cs->chunk_size || len + iov[i].iov_len > cs->chunk_size)
            return CURVE_ERR_INVALID_REQUEST;
        len += iov[i].iov_len;
    }
    if (!cs_range_ok(cs, off, len))
        return CURVE_ERR_INVALID_REQUEST;
    if (curve_cfp_failed(cs->pool) != 0)
        return CURVE_ERR_DISK_FAIL;

    cs_chunk *c;
    bool excl;
    int rc = cs_acquire(cs, chunk_id, true, &sn, &c, &excl);
    if (rc != 0)
        return rc;
    rc = cs_pwrite(cs, c->fd, iov, iovcnt, CURVE_CHUNK_HEADER_SIZE + off, true);
    if (rc != 0) {
        rc = cs_disk_fail(cs, rc, "write", chunk_id);
    } else {
        /* Marked after the pwrite: a sync that clears the mark covers this write. */
        pthread_mutex_lock(&cs->mu);
        dirty_set(cs, c);
        cs->writes++;
        cs->write_bytes += len;
        pthread_mutex_unlock(&cs->mu);
    }
    cs_release(cs, c);
    return rc;
}

int curve_chunkstore_write(curve_chunkstore *cs, uint64_t chunk_id, uint64_t sn, uint64_t off,
                           const void *buf, size_t len)
{
    if (buf == NULL)
        return CURVE_ERR_INVALID_REQUEST;
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    return curve_chunkstore_writev(cs, chunk_id, sn, off, &iov, 1);
}

int curve_chunkstore_read(curve_chunkstore *cs, uint64_t chunk_id, uint64_t off, void *buf,
                          size_t len)
{
    if (buf == NULL || !cs_range_ok(cs, off, len))
        return CURVE_ERR_INVALID_REQUEST;
    if (curve_cfp_failed(cs->pool) != 0)
        return CURVE_ERR_DISK_FAIL;
    cs_chunk *c;
    bool excl;
    int rc = cs_acquire(cs, chunk_id, false, NULL, &c, &excl);
    if (rc != 0)
        return rc;
    rc = CURVE_FAILPOINT("chunkstore.read");
    if (rc == 0) {
        ssize_t n = pread_full(c->fd, buf, len, CURVE_CHUNK_HEADER_SIZE + off);
        rc = n < 0 ? (int)n : (size_t)n != len ? -EIO : 0;
    }
    if (rc != 0) {
        rc = cs_disk_fail(cs, rc, "read", chunk_id);
    } else {
        pthread_mutex_lock(&cs->mu);
        cs->reads++;
        cs->read_bytes += len;
        pthread_mutex_unlock(&cs->mu);
    }
    cs_release(cs, c);
    return rc;
}

int curve_chunkstore_create(curve_chunkstore *cs, uint64_t chunk_id, uint64_t sn)
{
    if (curve_cfp_failed(cs->pool) != 0)
        return CURVE_ERR_DISK_FAIL;
    cs_chunk *c;
    int rc = cs_pin(cs, chunk_id, true, &c);
    if (rc != 0)
        return rc;
    pthread_rwlock_wrlock(&c->lock);
    if (c->state == CK_LIVE || c->state == CK_CORRUPT)
        rc = CURVE_ERR_CHUNK_EXIST;
    else if (c->state == CK_GONE)
        rc = CURVE_ERR_BUSY; /* a concurrent delete still holds this entry */
    else
        rc = cs_prepare(cs, c, true, &sn);
    cs_release(cs, c);
    return rc;
}

int curve_chunkstore_delete(curve_chunkstore *cs, uint64_t chunk_id)
{
    char path[PATH_MAX];
    if (curve_cfp_failed(cs->pool) != 0)
        return CURVE_ERR_DISK_FAIL;
    cs_chunk *c;
    int rc = cs_pin(cs, chunk_id, false, &c);
    if (rc != 0)
        return rc;
    pthread_rwlock_wrlock(&c->lock);
    if (c->state != CK_LIVE && c->state != CK_CORRUPT) {
        rc = CURVE_ERR_CHUNK_NOTEXIST;
        goto out;
    }
    pthread_mutex_lock(&cs->mu);
    dirty_clear(cs, c); /* the data is going away: nothing to sync */
    int fd = cs_detach_fd(cs, c);
    pthread_mutex_unlock(&cs->mu);
    if (fd >= 0)
        close(fd);
    chunk_path(cs, chunk_id, "", path, sizeof(path));
    rc = curve_cfp_put(cs->pool, path);
    if (rc == -ENOENT) {
        CLOG_ERROR("chunk file %s vanished before delete", path);
        rc = 0;
    }
    if (rc == 0) {
        cs_set_state(cs, c, CK_GONE);
        pthread_mutex_lock(&cs->mu);
        table_remove(cs, c);
        pthread_mutex_unlock(&cs->mu);
    }
out:
    cs_release(cs, c);
    return rc;
}

int curve_chunkstore_get_info(curve_chunkstore *cs, uint64_t chunk_id, curve_chunk_info *info)
{
    if (info == NULL)
        return -EINVAL;
    if (curve_cfp_failed(cs->pool) != 0)
        return CURVE_ERR_DISK_FAIL;
    cs_chunk *c;
    bool excl;
    int rc = cs_acquire(cs, chunk_id, false, NULL, &c, &excl);
    if (rc != 0)
        return rc;
    info->chunk_id = chunk_id;
    info->sn = c->sn;
    info->size = cs->chunk_size;
    info->file_size = cs->file_size;
    cs_release(cs, c);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int curve_chunkstore_list(curve_chunkstore *cs, uint64_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    pthread_mutex_lock(&cs->mu);
    size_t cnt = cs->nchunks, k = 0;
    uint64_t *v = cnt ? malloc(cnt * sizeof(*v)) : NULL;
    if (cnt && v == NULL) {
        pthread_mutex_unlock(&cs->mu);
        return -ENOMEM;
    }
    for (size_t i = 0; i < cs->nbuckets; i++)
        for (cs_chunk *c = cs->buckets[i]; c != NULL; c = c->hnext)
            if (c->state == CK_LIVE || c->state == CK_CORRUPT)
                v[k++] = c->id;
    pthread_mutex_unlock(&cs->mu);
    CURVE_ASSERT(k == cnt);
    if (k > 1)
        qsort(v, k, sizeof(*v), cmp_u64);
    *ids = v;
    *n = k;
    return 0;
}

int curve_chunkstore_sync_dirty(curve_chunkstore *cs)
{
    if (curve_cfp_failed(cs->pool) != 0)
        return CURVE_ERR_DISK_FAIL;
    pthread_mutex_lock(&cs->mu);
    size_t n = cs->ndirty, k = 0;
    cs_chunk **v = n ? malloc(n * sizeof(*v)) : NULL;
    if (n && v == NULL) {
        pthread_mutex_unlock(&cs->mu);
        return -ENOMEM;
    }
    while (cs->dirty.d_next != &cs->dirty) {
        cs_chunk *c = cs->dirty.d_next;
        dirty_clear(cs, c);
        c->refs++;
        v[k++] = c;
    }
    pthread_mutex_unlock(&cs->mu);
    CURVE_ASSERT(k == n);

    int rc = 0;
    for (size_t i = 0; i < k; i++) {
        cs_chunk *c = v[i];
        pthread_rwlock_rdlock(&c->lock);
        /* fd < 0: deleted or replaced by an install (which synced its file) meanwhile */
        if (rc == 0 && c->fd >= 0) {
            int e = CURVE_FAILPOINT("chunkstore.sync");
            if (e == 0 && fdatasync(c->fd) != 0)
                e = -errno;
            if (e != 0)
                rc = cs_disk_fail(cs, e, "fdatasync", c->id);
        }
        cs_release(cs, c);
    }
    free(v);

    /* Dirty fds being flushed by an eviction must be durable before we answer. */
    pthread_mutex_lock(&cs->mu);
    while (cs->evict_inflight > 0)
        pthread_cond_wait(&cs->evict_cv, &cs->mu);
    cs->syncs++;
    pthread_mutex_unlock(&cs->mu);
    if (rc == 0 && curve_cfp_failed(cs->pool) != 0)
        rc = CURVE_ERR_DISK_FAIL;
    return rc;
}

/* ---- snapshot support ------------------------------------------------------------------- */

int curve_chunkstore_manifest(curve_chunkstore *cs, curve_chunk_manifest_entry **entries,
                              size_t *n)
{
    uint64_t *ids;
    size_t cnt;
    *entries = NULL;
    *n = 0;
    int rc = curve_chunkstore_list(cs, &ids, &cnt);
    if (rc != 0)
        return rc;
    if (cnt == 0)
        return 0;
    curve_chunk_manifest_entry *e = calloc(cnt, sizeof(*e));
    if (e == NULL) {
        free(ids);
        return -ENOMEM;
    }
    for (size_t i = 0; i < cnt; i++) {
        e[i].chunk_id = ids[i];
        snprintf(e[i].name, sizeof(e[i].name), "chunk_%llu", (unsigned long long)ids[i]);
        e[i].file_size = cs->file_size;
    }
    free(ids);
    *entries = e;
    *n = cnt;
    return 0;
}

int64_t curve_chunkstore_read_raw(curve_chunkstore *cs, uint64_t chunk_id, uint64_t off,
                                  void *buf, size_t len)
{
    if (buf == NULL || off > cs->file_size || len > cs->file_size - off)
        return CURVE_ERR_INVALID_REQUEST;
    if (curve_cfp_failed(cs->pool) != 0)
        return CURVE_ERR_DISK_FAIL;
    cs_chunk *c;
    bool excl;
    int rc = cs_acquire(cs, chunk_id, false, NULL, &c, &excl);
    if (rc != 0)
        return rc;
    rc = CURVE_FAILPOINT("chunkstore.read");
    ssize_t n = rc != 0 ? rc : pread_full(c->fd, buf, len, off);
    if (n < 0)
        n = cs_disk_fail(cs, (int)n, "raw read", chunk_id);
    cs_release(cs, c);
    return n;
}

int curve_chunkstore_install_begin(curve_chunkstore *cs, uint64_t chunk_id,
                                   curve_chunk_install **out)
{
    /* An all-zero page: the install only validates once the leader's header arrives. */
    static const uint8_t zero_page[CURVE_CHUNK_HEADER_SIZE];
    if (out == NULL)
        return -EINVAL;
    if (curve_cfp_failed(cs->pool) != 0)
        return CURVE_ERR_DISK_FAIL;
    curve_chunk_install *in = calloc(1, sizeof(*in));
    if (in == NULL)
        return -ENOMEM;
    in->cs = cs;
    in->fd = -1;
    chunk_path(cs, chunk_id, ".install", in->path, sizeof(in->path));
    int rc = cs_pin(cs, chunk_id, true, &in->ch);
    if (rc != 0)
        goto err_after_alloc;
    pthread_mutex_lock(&cs->mu);
    bool busy = in->ch->installing;
    in->ch->installing = true;
    pthread_mutex_unlock(&cs->mu);
    if (busy) {
        rc = -EBUSY;
        goto err_after_pin;
    }
    rc = curve_cfp_get(cs->pool, in->path, zero_page);
    if (rc != 0)
        goto err_after_mark;
    in->fd = open(in->path, O_RDWR | O_CLOEXEC);
    if (in->fd < 0) {
        rc = cs_disk_fail(cs, -errno, "open install file", chunk_id);
        goto err_after_mark;
    }
    *out = in;
    return 0;

err_after_mark:
    pthread_mutex_lock(&cs->mu);
    in->ch->installing = false;
    pthread_mutex_unlock(&cs->mu);
err_after_pin:
    cs_unpin(cs, in->ch);
err_after_alloc:
    free(in);
    return rc;
}

int curve_chunkstore_install_write(curve_chunk_install *in, uint64_t off, const void *buf,
                                   size_t len)
{
    curve_chunkstore *cs = in->cs;
    if (buf == NULL || len == 0 || off > cs->file_size || len > cs->file_size - off)
        return CURVE_ERR_INVALID_REQUEST;
    if (curve_cfp_failed(cs->pool) != 0)
        return CURVE_ERR_DISK_FAIL;
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    int rc = cs_pwrite(cs, in->fd, &iov, 1, off, false);
    if (rc != 0)
        return cs_disk_fail(cs, rc, "install write", in->ch->id);
    return 0;
}

static void install_free(curve_chunk_install *in, bool put_back)
{
    curve_chunkstore *cs = in->cs;
    if (in->fd >= 0)
        close(in->fd);
    if (put_back) {
        int rc = curve_cfp_put(cs->pool, in->path);
        if (rc != 0)
            CLOG_WARN("cannot give %s back to the pool now (%s): done at next open", in->path,
                      curve_strerror(rc));
    }
    pthread_mutex_lock(&cs->mu);
    in->ch->installing = false;
    pthread_mutex_unlock(&cs->mu);
    cs_unpin(cs, in->ch);
    free(in);
}

void curve_chunkstore_install_abort(curve_chunk_install *in)
{
    if (in != NULL)
        install_free(in, true);
}

int curve_chunkstore_install_finish(curve_chunk_install *in)
{
    curve_chunkstore *cs = in->cs;
    cs_chunk *c = in->ch;
    uint8_t page[CURVE_CHUNK_HEADER_SIZE];
    curve_chunk_header h;
    char live[PATH_MAX];

    ssize_t n = pread_full(in->fd, page, sizeof(page), 0);
    if (n < 0) {
        int rc = cs_disk_fail(cs, (int)n, "install header read", c->id);
        install_free(in, true);
        return rc;
    }
    if ((size_t)n != sizeof(page) || curve_chunk_header_decode(page, sizeof(page), &h) != 0 ||
        (h.flags & CURVE_CHUNK_FLAG_FREE) || h.chunk_id != c->id ||
        h.chunk_size != cs->chunk_size) {
        CLOG_ERROR("install of chunk %llu into %s: received header is invalid",
                   (unsigned long long)c->id, cs->dir);
        install_free(in, true);
        return CURVE_ERR_CORRUPT;
    }
    int rc = CURVE_FAILPOINT("chunkstore.sync");
    if (rc == 0 && fdatasync(in->fd) != 0)
        rc = -errno;
    if (rc != 0) {
        rc = cs_disk_fail(cs, rc, "install fdatasync", c->id);
        install_free(in, false);
        return rc;
    }
    close(in->fd);
    in->fd = -1;

    pthread_rwlock_wrlock(&c->lock);
    pthread_mutex_lock(&cs->mu);
    dirty_clear(cs, c); /* the old file's unsynced writes are superseded */
    int fd = cs_detach_fd(cs, c);
    pthread_mutex_unlock(&cs->mu);
    if (fd >= 0)
        close(fd);
    chunk_path(cs, c->id, "", live, sizeof(live));
    if (!c->in_table) {
        /* The chunk was deleted while it was being installed (its entry left the table):
         * the Raft state machine raced with itself; refuse rather than resurrect it. */
        rc = -EBUSY;
    } else {
        rc = curve_cfp_replace(cs->pool, in->path, live);
    }
    if (rc == 0) {
        cs_set_state(cs, c, CK_LIVE);
        pthread_mutex_lock(&cs->mu);
        c->sn = h.sn;
        pthread_mutex_unlock(&cs->mu);
    }
    pthread_rwlock_unlock(&c->lock);
    install_free(in, rc != 0 && rc != CURVE_ERR_DISK_FAIL);
    return rc;
}

/* ---- status ----------------------------------------------------------------------------- */

int curve_chunkstore_disk_failed(const curve_chunkstore *cs)
{
    return curve_cfp_failed(cs->pool);
}

uint32_t curve_chunkstore_chunk_size(const curve_chunkstore *cs)
{
    return cs->chunk_size;
}

void curve_chunkstore_get_status(curve_chunkstore *cs, curve_chunkstore_status *out)
{
    pthread_mutex_lock(&cs->mu);
    out->chunks = cs->nchunks;
    out->dirty = cs->ndirty;
    out->open_fds = cs->open_fds;
    out->corrupt = cs->corrupt;
    out->reads = cs->reads;
    out->writes = cs->writes;
    out->read_bytes = cs->read_bytes;
    out->write_bytes = cs->write_bytes;
    out->syncs = cs->syncs;
    pthread_mutex_unlock(&cs->mu);
    out->disk_err = curve_cfp_failed(cs->pool);
}
