/* Raft term/vote metadata: atomic replace (write temp, fsync, rename, fsync dir). */
#include "raft/io/metastore.h"

#include <errno.h>
#include <fcntl.h>
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

CURVE_STATIC_ASSERT(RMETA__HDR_SIZE == 32, "metadata header is 32 bytes");

#define TMP_SUFFIX ".tmp"

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
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}
static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static uint32_t meta_crc(const uint8_t *buf, size_t blob_len)
{
    uint32_t c = curve_crc32c(0, buf, 28);
    return curve_crc32c(c, buf + RMETA__HDR_SIZE, blob_len);
}

size_t rmeta__encode(const rmeta_state *st, uint8_t *buf, size_t len)
{
    size_t need = RMETA__HDR_SIZE + st->blob_len;
    CURVE_ASSERT(len >= need && st->blob_len <= RMETA_MAX_BLOB);
    put32(buf, RMETA__MAGIC);
    put16(buf + 4, RMETA__VERSION);
    put16(buf + 6, 0);
    put64(buf + 8, st->term);
    put64(buf + 16, st->voted_for);
    put32(buf + 24, (uint32_t)st->blob_len);
    if (st->blob_len)
        memcpy(buf + RMETA__HDR_SIZE, st->blob, st->blob_len);
    put32(buf + 28, meta_crc(buf, st->blob_len));
    return need;
}

int rmeta__decode(const uint8_t *buf, size_t len, rmeta_state *out)
{
    memset(out, 0, sizeof(*out));
    if (len < RMETA__HDR_SIZE || get32(buf) != RMETA__MAGIC || get16(buf + 4) != RMETA__VERSION ||
        get16(buf + 6) != 0)
        return CURVE_ERR_CORRUPT;
    uint32_t blob_len = get32(buf + 24);
    if (blob_len > RMETA_MAX_BLOB || len != RMETA__HDR_SIZE + (size_t)blob_len)
        return CURVE_ERR_CORRUPT;
    if (get32(buf + 28) != meta_crc(buf, blob_len))
        return CURVE_ERR_CORRUPT;
    if (blob_len) {
        out->blob = malloc(blob_len);
        if (!out->blob)
            return -ENOMEM;
        memcpy(out->blob, buf + RMETA__HDR_SIZE, blob_len);
    }
    out->blob_len = blob_len;
    out->term = get64(buf + 8);
    out->voted_for = get64(buf + 16);
    return 0;
}

void rmeta_state_free(rmeta_state *st)
{
    if (!st)
        return;
    free(st->blob);
    memset(st, 0, sizeof(*st));
}

static int read_file(const char *path, uint8_t *buf, size_t cap, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t done = 0;
    int rc = 0;
    while (done < cap) {
        ssize_t n = read(fd, buf + done, cap - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    close(fd);
    *len = done;
    return rc;
}

int rmeta_load(const char *dir, rmeta_state *out)
{
    char path[4096], tmp[4096];
    memset(out, 0, sizeof(*out));
    snprintf(path, sizeof(path), "%s/" RMETA_FILE_NAME, dir);
    snprintf(tmp, sizeof(tmp), "%s/" RMETA_FILE_NAME TMP_SUFFIX, dir);
    if (unlink(tmp) == 0)
        CLOG_WARN("rmeta: removed %s left by an interrupted update", tmp);
    /* One byte more than the largest valid file, so oversized files are detected. */
    size_t cap = RMETA__HDR_SIZE + RMETA_MAX_BLOB + 1, len = 0;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    int rc = read_file(path, buf, cap, &len);
    if (rc == 0) {
        rc = rmeta__decode(buf, len, out);
        if (rc == CURVE_ERR_CORRUPT)
            CLOG_ERROR("rmeta: %s is corrupt (%zu bytes: bad magic, version, size or crc)", path,
                       len);
    } else if (rc != -ENOENT) {
        CLOG_ERROR("rmeta: reading %s: %s", path, curve_strerror(rc));
    }
    free(buf);
    return rc;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int rmeta_store(const char *dir, const rmeta_state *st)
{
    if (!dir || !st || st->blob_len > RMETA_MAX_BLOB || (st->blob_len && !st->blob))
        return -EINVAL;
    char path[4096], tmp[4096];
    snprintf(path, sizeof(path), "%s/" RMETA_FILE_NAME, dir);
    snprintf(tmp, sizeof(tmp), "%s/" RMETA_FILE_NAME TMP_SUFFIX, dir);
    int rc = 0;
    const char *step = "encode";
    size_t len = RMETA__HDR_SIZE + st->blob_len;
    uint8_t *buf = malloc(len);
    if (!buf)
        return -ENOMEM;
    rmeta__encode(st, buf, len);

    step = "create";
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = -errno;
        goto err_after_buf;
    }
    step = "write";
    rc = CURVE_FAILPOINT("raftmeta.write");
    if (rc == 0)
        rc = write_all(fd, buf, len);
    if (rc != 0)
        goto err_after_open;
    step = "fsync";
    rc = CURVE_FAILPOINT("raftmeta.sync");
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (rc != 0)
        goto err_after_open;
    close(fd);
    fd = -1;
    step = "rename";
    if (rename(tmp, path) != 0) {
        rc = -errno;
        goto err_after_open;
    }
    step = "fsync directory";
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0)
        rc = -errno;
    if (dfd >= 0)
        close(dfd);
    if (rc != 0)
        goto err_after_buf;
    free(buf);
    return 0;

err_after_open:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
err_after_buf:
    free(buf);
    CLOG_ERROR("rmeta: storing %s failed at %s: %s", path, step, curve_strerror(rc));
    return rc;
}
