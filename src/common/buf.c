/* Reference-counted buffers and slice lists (see buf.h). */
#include "common/buf.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/assert.h"

/* Buffers at least this large get page-aligned data (O_DIRECT). */
#define BUF_ALIGN 4096
/* Upper bound on slices in one iobuf: a sanity limit against runaway appends. */
#define IOBUF_MAX_SLICES (1u << 24)

struct curve_buf {
    atomic_uint refs;
    uint8_t *data;
    size_t len, cap;
    curve_buf_free_cb free_cb; /* NULL for our own allocations and for unowned wraps */
    void *free_ctx;
    int owned; /* data allocated by curve_buf_new (free() it) */
};

curve_buf *curve_buf_new(size_t cap)
{
    curve_buf *b = malloc(sizeof(*b));
    if (!b)
        return NULL;
    void *data = NULL;
    if (cap >= BUF_ALIGN) {
        if (posix_memalign(&data, BUF_ALIGN, cap) != 0)
            data = NULL;
    } else {
        data = malloc(cap ? cap : 1);
    }
    if (!data)
        goto err_after_struct;
    atomic_init(&b->refs, 1);
    b->data = data;
    b->len = 0;
    b->cap = cap;
    b->free_cb = NULL;
    b->free_ctx = NULL;
    b->owned = 1;
    return b;

err_after_struct:
    free(b);
    return NULL;
}

curve_buf *curve_buf_wrap(void *data, size_t len, curve_buf_free_cb free_cb, void *ctx)
{
    CURVE_ASSERT(data != NULL || len == 0);
    curve_buf *b = malloc(sizeof(*b));
    if (!b)
        return NULL;
    atomic_init(&b->refs, 1);
    b->data = data;
    b->len = len;
    b->cap = len;
    b->free_cb = free_cb;
    b->free_ctx = ctx;
    b->owned = 0;
    return b;
}

curve_buf *curve_buf_ref(curve_buf *b)
{
    CURVE_ASSERT(b != NULL);
    unsigned old = atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    CURVE_ASSERT(old > 0);
    return b;
}

void curve_buf_unref(curve_buf *b)
{
    if (!b)
        return;
    unsigned old = atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel);
    CURVE_ASSERT(old > 0);
    if (old != 1)
        return;
    if (b->owned)
        free(b->data);
    else if (b->free_cb)
        b->free_cb(b->data, b->free_ctx);
    free(b);
}

uint8_t *curve_buf_data(const curve_buf *b)
{
    return b->data;
}

size_t curve_buf_len(const curve_buf *b)
{
    return b->len;
}

size_t curve_buf_cap(const curve_buf *b)
{
    return b->cap;
}

void curve_buf_set_len(curve_buf *b, size_t len)
{
    CURVE_ASSERT(len <= b->cap);
    b->len = len;
}

unsigned curve_buf_refcount(const curve_buf *b)
{
    return atomic_load_explicit(&((curve_buf *)b)->refs, memory_order_relaxed);
}

/* ---- iobuf ---- */

void curve_iobuf_init(curve_iobuf *io)
{
    io->v = io->inl;
    io->n = 0;
    io->cap = CURVE_IOBUF_INLINE;
    io->len = 0;
}

void curve_iobuf_reset(curve_iobuf *io)
{
    for (unsigned i = 0; i < io->n; i++)
        curve_buf_unref(io->v[i].buf);
    if (io->v != io->inl)
        free(io->v);
    curve_iobuf_init(io);
}

/* Makes room for `extra` more slices. */
static int iobuf_reserve(curve_iobuf *io, unsigned extra)
{
    if (io->n + (size_t)extra <= io->cap)
        return 0;
    if ((size_t)io->n + extra > IOBUF_MAX_SLICES)
        return -ENOMEM;
    size_t ncap = (size_t)io->cap * 2;
    while (ncap < (size_t)io->n + extra)
        ncap *= 2;
    if (ncap > IOBUF_MAX_SLICES)
        ncap = IOBUF_MAX_SLICES;
    curve_slice *nv;
    if (io->v == io->inl) {
        nv = malloc(ncap * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        memcpy(nv, io->inl, io->n * sizeof(*nv));
    } else {
        nv = realloc(io->v, ncap * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
    }
    io->v = nv;
    io->cap = (unsigned)ncap;
    return 0;
}

int curve_iobuf_append(curve_iobuf *io, curve_buf *b, size_t off, size_t len)
{
    CURVE_ASSERT(b != NULL);
    CURVE_ASSERT(off <= b->cap && len <= b->cap - off);
    if (len == 0)
        return 0;
    int rc = iobuf_reserve(io, 1);
    if (rc != 0)
        return rc;
    io->v[io->n++] = (curve_slice){.buf = curve_buf_ref(b), .off = off, .len = len};
    io->len += len;
    return 0;
}

int curve_iobuf_append_copy(curve_iobuf *io, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    curve_buf *b = curve_buf_new(len);
    if (!b)
        return -ENOMEM;
    memcpy(b->data, data, len);
    b->len = len;
    int rc = curve_iobuf_append(io, b, 0, len);
    curve_buf_unref(b);
    return rc;
}

int curve_iobuf_move(curve_iobuf *dst, curve_iobuf *src)
{
    CURVE_ASSERT(dst != src);
    if (src->n == 0)
        return 0;
    int rc = iobuf_reserve(dst, src->n);
    if (rc != 0)
        return rc;
    memcpy(dst->v + dst->n, src->v, src->n * sizeof(curve_slice));
    dst->n += src->n;
    dst->len += src->len;
    if (src->v != src->inl)
        free(src->v);
    curve_iobuf_init(src);
    return 0;
}

size_t curve_iobuf_copyout(const curve_iobuf *io, size_t off, void *dst, size_t len)
{
    uint8_t *out = dst;
    size_t done = 0;
    for (unsigned i = 0; i < io->n && done < len; i++) {
        const curve_slice *s = &io->v[i];
        if (off >= s->len) {
            off -= s->len;
            continue;
        }
        size_t n = s->len - off;
        if (n > len - done)
            n = len - done;
        memcpy(out + done, s->buf->data + s->off + off, n);
        done += n;
        off = 0;
    }
    return done;
}

unsigned curve_iobuf_iov(const curve_iobuf *io, struct iovec *iov, unsigned max)
{
    unsigned n = io->n < max ? io->n : max;
    for (unsigned i = 0; i < n; i++) {
        iov[i].iov_base = io->v[i].buf->data + io->v[i].off;
        iov[i].iov_len = io->v[i].len;
    }
    return n;
}

curve_buf *curve_iobuf_flatten(const curve_iobuf *io)
{
    if (io->n == 1 && io->v[0].off == 0 && io->v[0].len == io->v[0].buf->len)
        return curve_buf_ref(io->v[0].buf);
    curve_buf *b = curve_buf_new(io->len);
    if (!b)
        return NULL;
    size_t got = curve_iobuf_copyout(io, 0, b->data, io->len);
    CURVE_ASSERT(got == io->len);
    b->len = got;
    return b;
}
