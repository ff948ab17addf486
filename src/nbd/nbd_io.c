/* Byte-granular IO over libcurve's 4 KiB-aligned IO; see nbd_io.h for the contract. */
#include "nbd/nbd_io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/assert.h"

#define ALIGN_DOWN(x) ((x) & ~(uint64_t)(NBD_IO_ALIGN - 1))
#define IS_ALIGNED(x) (((x) & (NBD_IO_ALIGN - 1)) == 0)

int nbd_io_init(struct nbd_io *io, curve_volume *vol, uint64_t size)
{
    if (!IS_ALIGNED(size))
        return -EINVAL;
    memset(io, 0, sizeof(*io));
    io->vol = vol;
    io->size = size;
    void *z = calloc(1, NBD_IO_ZERO_BUF);
    if (z == NULL)
        return -ENOMEM;
    io->zeros = z;
    for (unsigned i = 0; i < NBD_IO_RMW_LOCKS; i++)
        CURVE_ASSERT(pthread_mutex_init(&io->rmw_lock[i], NULL) == 0);
    return 0;
}

void nbd_io_fini(struct nbd_io *io)
{
    for (unsigned i = 0; i < NBD_IO_RMW_LOCKS; i++)
        pthread_mutex_destroy(&io->rmw_lock[i]);
    free((void *)io->zeros);
    io->zeros = NULL;
}

static int check_range(const struct nbd_io *io, uint64_t len, uint64_t offset)
{
    if (offset > io->size || len > io->size - offset)
        return -ERANGE;
    return 0;
}

/* Aligned calls, split into pieces of at most NBD_IO_MAX_CHUNK. */
static int aligned_read(struct nbd_io *io, void *buf, uint64_t len, uint64_t off)
{
    CURVE_ASSERT(IS_ALIGNED(len) && IS_ALIGNED(off));
    while (len > 0) {
        size_t n = len < NBD_IO_MAX_CHUNK ? (size_t)len : NBD_IO_MAX_CHUNK;
        ssize_t r = curve_pread(io->vol, buf, n, off);
        if (r < 0)
            return (int)r;
        if ((size_t)r != n)
            return -EIO;
        buf = (char *)buf + n;
        off += n;
        len -= n;
    }
    return 0;
}

static int aligned_write(struct nbd_io *io, const void *buf, uint64_t len, uint64_t off)
{
    CURVE_ASSERT(IS_ALIGNED(len) && IS_ALIGNED(off));
    while (len > 0) {
        size_t n = len < NBD_IO_MAX_CHUNK ? (size_t)len : NBD_IO_MAX_CHUNK;
        ssize_t r = curve_pwrite(io->vol, buf, n, off);
        if (r < 0)
            return (int)r;
        if ((size_t)r != n)
            return -EIO;
        buf = (const char *)buf + n;
        off += n;
        len -= n;
    }
    return 0;
}

static int aligned_write_zeros(struct nbd_io *io, uint64_t len, uint64_t off)
{
    while (len > 0) {
        uint64_t n = len < NBD_IO_ZERO_BUF ? len : NBD_IO_ZERO_BUF;
        int r = aligned_write(io, io->zeros, n, off);
        if (r < 0)
            return r;
        off += n;
        len -= n;
    }
    return 0;
}

static int aligned_discard(struct nbd_io *io, uint64_t len, uint64_t off)
{
    while (len > 0) {
        uint64_t n = len < NBD_IO_MAX_CHUNK ? len : NBD_IO_MAX_CHUNK;
        int r = curve_discard(io->vol, off, n);
        if (r < 0)
            return r;
        off += n;
        len -= n;
    }
    return 0;
}

/* Replaces [skip, skip+n) of the block at `block_off` with `src` (NULL: zeros) under the block's
 * stripe lock. */
static int rmw_block(struct nbd_io *io, uint64_t block_off, uint32_t skip, uint32_t n,
                     const void *src)
{
    CURVE_ASSERT(IS_ALIGNED(block_off) && skip + n <= NBD_IO_ALIGN && n > 0);
    unsigned char blk[NBD_IO_ALIGN] __attribute__((aligned(64)));
    pthread_mutex_t *lock = &io->rmw_lock[(block_off / NBD_IO_ALIGN) % NBD_IO_RMW_LOCKS];
    pthread_mutex_lock(lock);
    int r = aligned_read(io, blk, NBD_IO_ALIGN, block_off);
    if (r == 0) {
        if (src != NULL)
            memcpy(blk + skip, src, n);
        else
            memset(blk + skip, 0, n);
        r = aligned_write(io, blk, NBD_IO_ALIGN, block_off);
    }
    pthread_mutex_unlock(lock);
    return r;
}

/* Splits [off, off+len) into an unaligned head, an aligned middle and an unaligned tail. */
struct split {
    uint64_t head_block;
    uint32_t head_skip, head_len;
    uint64_t mid_off, mid_len;
    uint64_t tail_block;
    uint32_t tail_len;
};

static void split_range(uint64_t len, uint64_t off, struct split *s)
{
    memset(s, 0, sizeof(*s));
    uint64_t end = off + len;
    if (!IS_ALIGNED(off)) {
        s->head_block = ALIGN_DOWN(off);
        s->head_skip = (uint32_t)(off - s->head_block);
        uint64_t block_end = s->head_block + NBD_IO_ALIGN;
        s->head_len = (uint32_t)((end < block_end ? end : block_end) - off);
        off += s->head_len;
    }
    if (off < end) {
        s->mid_off = off;
        s->mid_len = ALIGN_DOWN(end - off);
        off += s->mid_len;
    }
    if (off < end) {
        s->tail_block = off;
        s->tail_len = (uint32_t)(end - off);
    }
    CURVE_ASSERT((uint64_t)s->head_len + s->mid_len + s->tail_len == len);
}

static int read_partial(struct nbd_io *io, void *dst, uint64_t block, uint32_t skip, uint32_t n)
{
    unsigned char blk[NBD_IO_ALIGN] __attribute__((aligned(64)));
    int r = aligned_read(io, blk, NBD_IO_ALIGN, block);
    if (r == 0)
        memcpy(dst, blk + skip, n);
    return r;
}

int nbd_io_read(struct nbd_io *io, void *buf, uint64_t len, uint64_t offset)
{
    int r = check_range(io, len, offset);
    if (r < 0 || len == 0)
        return r;
    struct split s;
    split_range(len, offset, &s);
    char *p = buf;
    if (s.head_len > 0) {
        r = read_partial(io, p, s.head_block, s.head_skip, s.head_len);
        if (r < 0)
            return r;
        p += s.head_len;
    }
    if (s.mid_len > 0) {
        r = aligned_read(io, p, s.mid_len, s.mid_off);
        if (r < 0)
            return r;
        p += s.mid_len;
    }
    if (s.tail_len > 0)
        r = read_partial(io, p, s.tail_block, 0, s.tail_len);
    return r;
}

int nbd_io_write(struct nbd_io *io, const void *buf, uint64_t len, uint64_t offset)
{
    int r = check_range(io, len, offset);
    if (r < 0 || len == 0)
        return r;
    struct split s;
    split_range(len, offset, &s);
    const char *p = buf;
    if (s.head_len > 0) {
        r = rmw_block(io, s.head_block, s.head_skip, s.head_len, p);
        if (r < 0)
            return r;
        p += s.head_len;
    }
    if (s.mid_len > 0) {
        r = aligned_write(io, p, s.mid_len, s.mid_off);
        if (r < 0)
            return r;
        p += s.mid_len;
    }
    if (s.tail_len > 0)
        r = rmw_block(io, s.tail_block, 0, s.tail_len, p);
    return r;
}

int nbd_io_zero(struct nbd_io *io, uint64_t len, uint64_t offset, bool may_trim)
{
    int r = check_range(io, len, offset);
    if (r < 0 || len == 0)
        return r;
    struct split s;
    split_range(len, offset, &s);
    if (s.head_len > 0) {
        r = rmw_block(io, s.head_block, s.head_skip, s.head_len, NULL);
        if (r < 0)
            return r;
    }
    if (s.mid_len > 0) {
        r = may_trim ? aligned_discard(io, s.mid_len, s.mid_off)
                     : aligned_write_zeros(io, s.mid_len, s.mid_off);
        if (r < 0)
            return r;
    }
    if (s.tail_len > 0)
        r = rmw_block(io, s.tail_block, 0, s.tail_len, NULL);
    return r;
}

int nbd_io_trim(struct nbd_io *io, uint64_t len, uint64_t offset)
{
    int r = check_range(io, len, offset);
    if (r < 0 || len == 0)
        return r;
    struct split s;
    split_range(len, offset, &s);
    if (s.mid_len == 0)
        return 0;
    return aligned_discard(io, s.mid_len, s.mid_off);
}

int nbd_io_flush(struct nbd_io *io)
{
    return curve_flush(io->vol);
}

int nbd_io_errno(int err)
{
    if (err >= 0)
        return 0;
    switch (err) {
    case -EPERM:
    case -EIO:
    case -ENOMEM:
    case -EINVAL:
    case -ENOSPC:
    case -EOVERFLOW:
    case -ENOTSUP:
    case -ESHUTDOWN:
        return -err;
    case -ERANGE:
        return EINVAL;
    case -EBADF:
    case -EROFS:
    case CURVE_ERR_FENCED:
    case CURVE_ERR_EPOCH_TOO_OLD:
    case CURVE_ERR_PERMISSION:
        return EPERM;
    case CURVE_ERR_NOSPACE:
        return ENOSPC;
    case CURVE_ERR_INVALID_REQUEST:
        return EINVAL;
    case CURVE_ERR_SHUTDOWN:
    case CURVE_ERR_CANCELED: /* curve_abort_io: the export is stopping */
    case CURVE_ERR_SESSION_EXPIRED:
        return ESHUTDOWN;
    default:
        return EIO;
    }
}

int nbd_io_block_status(struct nbd_io *io, uint64_t offset, uint64_t *start, uint64_t *len,
                        bool *hole)
{
    if (offset >= io->size)
        return -ERANGE;
    int r = curve_block_status(io->vol, offset, start, len);
    if (r < 0)
        return r;
    CURVE_ASSERT(*start <= offset && *len > 0 && offset - *start < *len);
    *hole = r == 0;
    return 0;
}
