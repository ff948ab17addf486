/* IO splitting and the per-IO completion tracker (iosplit.h, DESIGN §3.1). */
#include "client/iosplit.h"

#include <errno.h>
#include <string.h>

#include "common/assert.h"

static bool is_pow2(uint64_t v)
{
    return v != 0 && (v & (v - 1)) == 0;
}

int curve_io_geom_validate(const curve_io_geom *g)
{
    if (!g)
        return -EINVAL;
    if (g->align != 512 && g->align != 4096)
        return -EINVAL;
    if (!is_pow2(g->chunk_size) || g->chunk_size < CURVE_CHUNK_SIZE_MIN ||
        g->chunk_size > CURVE_CHUNK_SIZE_MAX)
        return -EINVAL;
    if (g->segment_size == 0 || g->segment_size % g->chunk_size != 0 ||
        g->segment_size / g->chunk_size > UINT32_MAX)
        return -EINVAL;
    if (g->volume_size % g->segment_size != 0)
        return -EINVAL;
    if (g->max_rpc_size < CURVE_RPC_SIZE_MIN || g->max_rpc_size > CURVE_RPC_SIZE_MAX ||
        g->max_rpc_size % g->align != 0 || g->max_rpc_size > g->chunk_size)
        return -EINVAL;
    return 0;
}

int curve_io_check(const curve_io_geom *g, uint64_t off, uint64_t len)
{
    CURVE_ASSERT(g != NULL);
    if (off % g->align != 0 || len % g->align != 0 || len > CURVE_IO_MAX_LEN)
        return -EINVAL;
    if (off > g->volume_size || len > g->volume_size - off)
        return -ERANGE;
    return 0;
}

int curve_io_iter_init(curve_io_iter *it, const curve_io_geom *g, uint64_t off, uint64_t len,
                       uint32_t piece_max)
{
    CURVE_ASSERT(it != NULL && g != NULL);
    if (piece_max % g->align != 0)
        return -EINVAL;
    int rc = curve_io_check(g, off, len);
    if (rc != 0)
        return rc;
    *it = (curve_io_iter){
        .g = g,
        .off = off,
        .len = len,
        .pos = 0,
        .piece_max = (piece_max == 0 || piece_max > g->chunk_size) ? g->chunk_size : piece_max,
    };
    return 0;
}

bool curve_io_iter_next(curve_io_iter *it, curve_io_piece *p)
{
    CURVE_ASSERT(it != NULL && p != NULL && it->pos <= it->len);
    if (it->pos == it->len)
        return false;
    const curve_io_geom *g = it->g;
    uint64_t vo = it->off + it->pos;
    uint32_t coff = (uint32_t)(vo & (g->chunk_size - 1));
    uint64_t room = g->chunk_size - coff;
    uint64_t n = it->len - it->pos;
    if (n > room)
        n = room;
    if (n > it->piece_max)
        n = it->piece_max;
    uint64_t ci = vo / g->chunk_size;
    *p = (curve_io_piece){
        .vol_off = vo,
        .chunk_index = ci,
        .seg_index = vo / g->segment_size,
        .chunk_in_seg = (uint32_t)((vo % g->segment_size) / g->chunk_size),
        .chunk_off = coff,
        .len = (uint32_t)n,
        .buf_off = it->pos,
    };
    it->pos += n;
    CURVE_ASSERT(p->len > 0 && (uint64_t)p->chunk_off + p->len <= g->chunk_size);
    return true;
}

uint64_t curve_io_piece_count(const curve_io_geom *g, uint64_t off, uint64_t len,
                              uint32_t piece_max)
{
    CURVE_ASSERT(g != NULL && len <= UINT64_MAX - off);
    if (len == 0)
        return 0;
    uint64_t pm = (piece_max == 0 || piece_max > g->chunk_size) ? g->chunk_size : piece_max;
    uint64_t first = off / g->chunk_size, last = (off + len - 1) / g->chunk_size;
    if (first == last)
        return (len + pm - 1) / pm;
    /* head chunk, full chunks in between, tail chunk */
    uint64_t head = g->chunk_size - off % g->chunk_size;
    uint64_t tail = (off + len) - last * g->chunk_size;
    uint64_t per_full = (g->chunk_size + pm - 1) / pm;
    return (head + pm - 1) / pm + (last - first - 1) * per_full + (tail + pm - 1) / pm;
}

/* ---- completion tracker ----------------------------------------------------------------- */

void curve_io_tracker_init(curve_io_tracker *t, curve_io_done_cb cb, void *ctx)
{
    CURVE_ASSERT(t != NULL && cb != NULL);
    atomic_init(&t->pending, 1u);
    atomic_init(&t->result, 0);
    atomic_init(&t->armed, false);
    t->cb = cb;
    t->ctx = ctx;
}

void curve_io_tracker_add(curve_io_tracker *t, unsigned n)
{
    CURVE_ASSERT(t != NULL && !atomic_load(&t->armed));
    unsigned prev = atomic_fetch_add(&t->pending, n);
    CURVE_ASSERT(prev >= 1 && prev - 1 + n <= CURVE_IO_TRACKER_MAX_PIECES);
}

void curve_io_tracker_fail(curve_io_tracker *t, int result)
{
    CURVE_ASSERT(t != NULL && result <= 0);
    if (result == 0)
        return;
    int expected = 0;
    atomic_compare_exchange_strong(&t->result, &expected, result);
}

static void tracker_put(curve_io_tracker *t)
{
    unsigned prev = atomic_fetch_sub_explicit(&t->pending, 1u, memory_order_acq_rel);
    CURVE_ASSERT(prev >= 1);
    if (prev == 1) {
        CURVE_ASSERT(atomic_load(&t->armed));
        t->cb(t, atomic_load(&t->result), t->ctx);
    }
}

void curve_io_tracker_piece_done(curve_io_tracker *t, int result)
{
    CURVE_ASSERT(t != NULL);
    curve_io_tracker_fail(t, result);
    tracker_put(t);
}

void curve_io_tracker_arm(curve_io_tracker *t)
{
    CURVE_ASSERT(t != NULL);
    bool was = atomic_exchange(&t->armed, true);
    CURVE_ASSERT(!was);
    tracker_put(t);
}
