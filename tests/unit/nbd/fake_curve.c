/*
 * curve_fake: a file-backed stand-in for libcurve (include/curve/curve.h), used to test the
 * nbdkit plugin before libcurve talks to a cluster. A "volume path" is a host file path; the
 * volume size is the file size. It enforces the parts of the curve.h contract the plugin relies
 * on: 4 KiB alignment (512 B with client.allow_512=true), range checks, read-only opens, and
 * one read-write opener per volume (a second one gets -EBUSY unless CURVE_OPEN_EXCLUSIVE, like
 * a real session; implemented with flock so it holds across processes).
 *
 * Extra override keys for fault tests: fake.fail_writes=<errno-or-curve-code> makes every
 * write, discard and flush fail with that (negative) code. client.fake_hang_writes=true makes
 * every write block (like libcurve retrying against a cluster that does not answer) until
 * curve_abort_io(), then fail with CURVE_ERR_CANCELED; each blocked write prints
 * "fake: write blocked" on stderr.
 * Only the functions the plugin and the tests call are implemented; management calls return
 * -ENOSYS.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "curve/curve.h"

#define FAKE_MAX_IO (256u * 1024 * 1024) /* curve.h: len at most 256 MiB */

struct curve_client {
    unsigned align;
    int fail_writes; /* 0 or the negative code every write returns */
    bool hang_writes;
    int nopen;
};

struct curve_volume {
    curve_client *c;
    int fd;
    bool rdonly;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool aborted;
};

const char *curve_version(void)
{
    return "0.1.0-fake";
}

int curve_client_init(const char *conf_path, const char *const *overrides, curve_client **out)
{
    if (conf_path != NULL && access(conf_path, R_OK) != 0)
        return -errno;
    curve_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->align = 4096;
    for (const char *const *kv = overrides; kv != NULL && *kv != NULL; kv++) {
        const char *eq = strchr(*kv, '=');
        if (eq == NULL)
            goto err_config;
        size_t klen = (size_t)(eq - *kv);
        const char *val = eq + 1;
        if (klen == 16 && strncmp(*kv, "client.allow_512", klen) == 0) {
            c->align = (strcmp(val, "true") == 0 || strcmp(val, "1") == 0) ? 512 : 4096;
        } else if (klen == 16 && strncmp(*kv, "fake.fail_writes", klen) == 0) {
            char *end;
            long v = strtol(val, &end, 10);
            if (*end != '\0' || v > 0 || v < INT_MIN)
                goto err_config;
            c->fail_writes = (int)v;
        } else if (klen == 23 && strncmp(*kv, "client.fake_hang_writes", klen) == 0) {
            c->hang_writes = strcmp(val, "true") == 0 || strcmp(val, "1") == 0;
        } else if (strncmp(*kv, "mds.", 4) != 0 && strncmp(*kv, "client.", 7) != 0) {
            goto err_config;
        }
    }
    *out = c;
    return 0;

err_config:
    free(c);
    return CURVE_ERR_CONFIG;
}

int curve_client_destroy(curve_client *c)
{
    if (c == NULL)
        return 0;
    if (c->nopen > 0)
        return -EBUSY;
    free(c);
    return 0;
}

int curve_open(curve_client *c, const char *path, unsigned flags, curve_volume **out)
{
    if (flags & ~(CURVE_OPEN_RDONLY | CURVE_OPEN_EXCLUSIVE))
        return -EINVAL;
    if (path == NULL || path[0] != '/')
        return CURVE_ERR_BAD_NAME;
    bool rdonly = (flags & CURVE_OPEN_RDONLY) != 0;
    int fd = open(path, (rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? CURVE_ERR_NOT_FOUND : -errno;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -EISDIR;
    }
    if (!rdonly && !(flags & CURVE_OPEN_EXCLUSIVE) && flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        return -EBUSY;
    }
    curve_volume *v = calloc(1, sizeof(*v));
    if (v == NULL) {
        close(fd);
        return -ENOMEM;
    }
    v->c = c;
    v->fd = fd;
    v->rdonly = rdonly;
    pthread_mutex_init(&v->mu, NULL);
    pthread_cond_init(&v->cv, NULL);
    c->nopen++;
    *out = v;
    return 0;
}

int curve_close(curve_volume *v)
{
    v->c->nopen--;
    close(v->fd);
    pthread_cond_destroy(&v->cv);
    pthread_mutex_destroy(&v->mu);
    free(v);
    return 0;
}

int curve_abort_io(curve_volume *v)
{
    if (v == NULL)
        return -EINVAL;
    pthread_mutex_lock(&v->mu);
    v->aborted = true;
    pthread_cond_broadcast(&v->cv);
    pthread_mutex_unlock(&v->mu);
    return 0;
}

/* client.fake_hang_writes: blocks until curve_abort_io(). */
static int fake_hang(curve_volume *v)
{
    pthread_mutex_lock(&v->mu);
    if (v->c->hang_writes && !v->aborted) {
        fprintf(stderr, "fake: write blocked\n");
        fflush(stderr);
    }
    while (v->c->hang_writes && !v->aborted)
        pthread_cond_wait(&v->cv, &v->mu);
    bool aborted = v->aborted;
    pthread_mutex_unlock(&v->mu);
    return aborted ? CURVE_ERR_CANCELED : 0;
}

static int fake_check(curve_volume *v, uint64_t len, uint64_t off)
{
    struct stat st;
    if (len % v->c->align != 0 || off % v->c->align != 0 || len > FAKE_MAX_IO)
        return -EINVAL;
    if (fstat(v->fd, &st) != 0)
        return -errno;
    if (off > (uint64_t)st.st_size || len > (uint64_t)st.st_size - off)
        return -ERANGE;
    return 0;
}

ssize_t curve_pread(curve_volume *v, void *buf, size_t len, uint64_t offset)
{
    int r = fake_check(v, len, offset);
    if (r < 0)
        return r;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(v->fd, (char *)buf + done, len - done, (off_t)(offset + done));
        if (n < 0)
            return errno == EINTR ? 0 : -errno;
        if (n == 0)
            return -EIO;
        done += (size_t)n;
    }
    return (ssize_t)len;
}

ssize_t curve_pwrite(curve_volume *v, const void *buf, size_t len, uint64_t offset)
{
    int r = fake_check(v, len, offset);
    if (r < 0)
        return r;
    if (v->rdonly)
        return -EBADF;
    if (v->c->fail_writes)
        return v->c->fail_writes;
    r = fake_hang(v);
    if (r < 0)
        return r;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(v->fd, (const char *)buf + done, len - done, (off_t)(offset + done));
        if (n < 0)
            return -errno;
        done += (size_t)n;
    }
    return (ssize_t)len;
}

int curve_discard(curve_volume *v, uint64_t offset, uint64_t len)
{
    int r = fake_check(v, len, offset);
    if (r < 0)
        return r;
    if (v->rdonly)
        return -EBADF;
    if (v->c->fail_writes)
        return v->c->fail_writes;
    if (len == 0)
        return 0;
    if (fallocate(v->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)len) !=
        0)
        return -errno;
    return 0;
}

int curve_flush(curve_volume *v)
{
    if (v->c->fail_writes)
        return v->c->fail_writes;
    return fdatasync(v->fd) == 0 ? 0 : -errno;
}

int curve_fstat(curve_volume *v, struct curve_stat *st)
{
    struct stat s;
    if (fstat(v->fd, &s) != 0)
        return -errno;
    memset(st, 0, sizeof(*st));
    st->id = (uint64_t)s.st_ino;
    st->parent_id = 1;
    st->type = CURVE_FILE_VOLUME;
    st->size = (uint64_t)s.st_size;
    st->chunk_size = 4u << 20;
    st->segment_size = 64u << 20;
    st->open_count = (uint32_t)v->c->nopen;
    strcpy(st->owner, "fake");
    strcpy(st->name, "fake");
    return 0;
}

/* Allocation in units of the fake's segment size (curve_fstat: 64 MiB): a unit is allocated
 * when the backing file has data in it (SEEK_DATA), so holes punched or never written are
 * holes, as unallocated segments are on a real volume. */
int curve_block_status(curve_volume *v, uint64_t offset, uint64_t *start, uint64_t *len)
{
    if (!v || !start || !len)
        return -EINVAL;
    struct stat s;
    if (fstat(v->fd, &s) != 0)
        return -errno;
    uint64_t size = (uint64_t)s.st_size, seg = 64u << 20;
    if (offset >= size)
        return -ERANGE;
    *start = offset / seg * seg;
    *len = size - *start < seg ? size - *start : seg;
    off_t d = lseek(v->fd, (off_t)*start, SEEK_DATA);
    if (d < 0)
        return errno == ENXIO ? 0 : -errno;
    return (uint64_t)d < *start + *len ? 1 : 0;
}
