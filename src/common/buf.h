/*
 * Reference-counted buffers for zero-copy IO.
 *
 * A curve_buf owns a block of memory (allocated by us, or wrapped with a free callback).
 * Refcounts are atomic: a buffer may be shared between loops/threads, but its *contents* must
 * not be written after it has been shared.
 *
 * A curve_iobuf is a small list of slices (buf, offset, length) — e.g. an RPC attachment made of
 * several received segments, or a user buffer plus a header — that is passed around without
 * copying. It holds one reference per slice.
 */
#ifndef CURVE_COMMON_BUF_H
#define CURVE_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

typedef struct curve_buf curve_buf;
typedef void (*curve_buf_free_cb)(void *data, void *ctx);

/* New buffer of `cap` bytes (len 0), data aligned to 4096 if cap >= 4096 (for O_DIRECT).
 * Returns NULL on allocation failure. Refcount starts at 1. */
curve_buf *curve_buf_new(size_t cap);
/* Wraps caller memory; `free_cb(data, ctx)` runs when the last reference goes (may be NULL). */
curve_buf *curve_buf_wrap(void *data, size_t len, curve_buf_free_cb free_cb, void *ctx);
curve_buf *curve_buf_ref(curve_buf *b);
void curve_buf_unref(curve_buf *b); /* NULL is ignored */
uint8_t *curve_buf_data(const curve_buf *b);
size_t curve_buf_len(const curve_buf *b);
size_t curve_buf_cap(const curve_buf *b);
void curve_buf_set_len(curve_buf *b, size_t len); /* asserts len <= cap */
unsigned curve_buf_refcount(const curve_buf *b); /* for tests */

typedef struct curve_slice {
    curve_buf *buf;
    size_t off;
    size_t len;
} curve_slice;

#define CURVE_IOBUF_INLINE 4

typedef struct curve_iobuf {
    curve_slice *v;  /* points to `inl` or to heap storage */
    unsigned n, cap;
    size_t len;      /* total bytes */
    curve_slice inl[CURVE_IOBUF_INLINE];
} curve_iobuf;

void curve_iobuf_init(curve_iobuf *io);
/* Drops all slices (unreferencing their buffers); the iobuf may be reused after. */
void curve_iobuf_reset(curve_iobuf *io);
/* Appends a slice, taking a new reference on `b`. Returns 0 or -ENOMEM. */
int curve_iobuf_append(curve_iobuf *io, curve_buf *b, size_t off, size_t len);
/* Copies `len` bytes from `data` into a new buffer and appends it. */
int curve_iobuf_append_copy(curve_iobuf *io, const void *data, size_t len);
/* Moves all slices of `src` to the end of `dst` (src is left empty). */
int curve_iobuf_move(curve_iobuf *dst, curve_iobuf *src);
/* Copies bytes [off, off+len) out into `dst`; returns bytes copied. */
size_t curve_iobuf_copyout(const curve_iobuf *io, size_t off, void *dst, size_t len);
/* Fills up to `max` iovecs describing the iobuf; returns the count used. */
unsigned curve_iobuf_iov(const curve_iobuf *io, struct iovec *iov, unsigned max);
/* Returns a single contiguous buffer with all the data (a new ref to the only slice's buffer
 * when there is one slice starting at offset 0, else a fresh copy). NULL on ENOMEM. */
curve_buf *curve_iobuf_flatten(const curve_iobuf *io);

#endif
