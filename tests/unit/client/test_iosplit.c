/* IO splitting and the completion tracker. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "client/iosplit.h"

#define KiB (1024ull)
#define MiB (1024ull * 1024)
#define GiB (1024ull * 1024 * 1024)

/* Small test geometry: 4 MiB chunks, 16 MiB segments, 64 MiB volume, 64 KiB RPCs. */
static curve_io_geom small_geom(void)
{
    return (curve_io_geom){.volume_size = 64 * MiB,
                           .segment_size = 16 * MiB,
                           .chunk_size = 4 * MiB,
                           .align = 4096,
                           .max_rpc_size = 64 * KiB};
}

static void test_geom_validate(void **state)
{
    curve_io_geom g = small_geom();
    assert_int_equal(curve_io_geom_validate(&g), 0);
    curve_io_geom prod = {.volume_size = 10 * GiB,
                          .segment_size = GiB,
                          .chunk_size = 16 * MiB,
                          .align = 4096,
                          .max_rpc_size = 1 * MiB};
    assert_int_equal(curve_io_geom_validate(&prod), 0);
    assert_int_equal(curve_io_geom_validate(NULL), -EINVAL);
    g = small_geom();
    g.align = 1024;
    assert_int_equal(curve_io_geom_validate(&g), -EINVAL);
    g = small_geom();
    g.align = 512;
    assert_int_equal(curve_io_geom_validate(&g), 0);
    g = small_geom();
    g.chunk_size = 3 * MiB; /* not a power of two */
    assert_int_equal(curve_io_geom_validate(&g), -EINVAL);
    g = small_geom();
    g.segment_size = 18 * MiB; /* not a multiple of the chunk */
    assert_int_equal(curve_io_geom_validate(&g), -EINVAL);
    g = small_geom();
    g.volume_size = 65 * MiB; /* not whole segments */
    assert_int_equal(curve_io_geom_validate(&g), -EINVAL);
    g = small_geom();
    g.max_rpc_size = 32 * KiB; /* below 64 KiB */
    assert_int_equal(curve_io_geom_validate(&g), -EINVAL);
    g = small_geom();
    g.max_rpc_size = 2 * MiB; /* above 1 MiB */
    assert_int_equal(curve_io_geom_validate(&g), -EINVAL);
    g = small_geom();
    g.max_rpc_size = 64 * KiB + 512; /* not aligned */
    assert_int_equal(curve_io_geom_validate(&g), -EINVAL);
    g = small_geom();
    g.chunk_size = 0;
    assert_int_equal(curve_io_geom_validate(&g), -EINVAL);
    g = small_geom();
    g.segment_size = 0;
    assert_int_equal(curve_io_geom_validate(&g), -EINVAL);
}

static void test_check_alignment_and_range(void **state)
{
    curve_io_geom g = small_geom();
    assert_int_equal(curve_io_check(&g, 0, 4096), 0);
    assert_int_equal(curve_io_check(&g, 0, 0), 0);
    assert_int_equal(curve_io_check(&g, 512, 4096), -EINVAL);
    assert_int_equal(curve_io_check(&g, 0, 4096 + 512), -EINVAL);
    assert_int_equal(curve_io_check(&g, 1, 4096), -EINVAL);
    assert_int_equal(curve_io_check(&g, 64 * MiB - 4096, 4096), 0);
    assert_int_equal(curve_io_check(&g, 64 * MiB - 4096, 8192), -ERANGE);
    assert_int_equal(curve_io_check(&g, 64 * MiB, 0), 0);
    assert_int_equal(curve_io_check(&g, 64 * MiB, 4096), -ERANGE);
    /* offset + len wraps around */
    assert_int_equal(curve_io_check(&g, UINT64_MAX - 4095, 8192), -ERANGE);
    curve_io_geom big = {.volume_size = 1024 * GiB,
                         .segment_size = GiB,
                         .chunk_size = 16 * MiB,
                         .align = 4096,
                         .max_rpc_size = MiB};
    assert_int_equal(curve_io_check(&big, 0, CURVE_IO_MAX_LEN), 0);
    assert_int_equal(curve_io_check(&big, 0, CURVE_IO_MAX_LEN + 4096), -EINVAL);
    /* 512-byte alignment when the geometry allows it */
    g.align = 512;
    assert_int_equal(curve_io_check(&g, 512, 1024), 0);
    assert_int_equal(curve_io_check(&g, 256, 512), -EINVAL);
    curve_io_iter it;
    assert_int_equal(curve_io_iter_init(&it, &g, 512, 513, 0), -EINVAL);
    assert_int_equal(curve_io_iter_init(&it, &g, 64 * MiB, 512, 0), -ERANGE);
    assert_int_equal(curve_io_iter_init(&it, &g, 0, 512, 1000), -EINVAL); /* piece_max unaligned */
}

static void test_split_rpc_size(void **state)
{
    curve_io_geom g = small_geom();
    curve_io_iter it;
    curve_io_piece p;
    assert_int_equal(curve_io_iter_init(&it, &g, 128 * KiB, 200 * KiB, g.max_rpc_size), 0);
    const uint32_t lens[] = {64 * KiB, 64 * KiB, 64 * KiB, 8 * KiB};
    for (int i = 0; i < 4; i++) {
        assert_true(curve_io_iter_next(&it, &p));
        assert_int_equal(p.len, lens[i]);
        assert_int_equal(p.buf_off, (uint64_t)i * 64 * KiB);
        assert_int_equal(p.vol_off, 128 * KiB + (uint64_t)i * 64 * KiB);
        assert_int_equal(p.chunk_off, 128 * KiB + (uint64_t)i * 64 * KiB);
        assert_int_equal(p.chunk_index, 0);
        assert_int_equal(p.seg_index, 0);
        assert_int_equal(p.chunk_in_seg, 0);
    }
    assert_false(curve_io_iter_next(&it, &p));
    assert_false(curve_io_iter_next(&it, &p));
    assert_int_equal(curve_io_piece_count(&g, 128 * KiB, 200 * KiB, g.max_rpc_size), 4);
    /* a zero-length IO has no pieces */
    assert_int_equal(curve_io_iter_init(&it, &g, 0, 0, g.max_rpc_size), 0);
    assert_false(curve_io_iter_next(&it, &p));
    assert_int_equal(curve_io_piece_count(&g, 0, 0, g.max_rpc_size), 0);
}

static void test_split_chunk_and_segment_boundary(void **state)
{
    curve_io_geom g = small_geom();
    g.max_rpc_size = 1 * MiB;
    curve_io_iter it;
    curve_io_piece p;
    /* 8 KiB before the end of chunk 3 (last of segment 0) to 8 KiB into chunk 4 (segment 1) */
    uint64_t off = 16 * MiB - 8 * KiB;
    assert_int_equal(curve_io_iter_init(&it, &g, off, 16 * KiB, g.max_rpc_size), 0);
    assert_true(curve_io_iter_next(&it, &p));
    assert_int_equal(p.vol_off, off);
    assert_int_equal(p.chunk_index, 3);
    assert_int_equal(p.seg_index, 0);
    assert_int_equal(p.chunk_in_seg, 3);
    assert_int_equal(p.chunk_off, 4 * MiB - 8 * KiB);
    assert_int_equal(p.len, 8 * KiB);
    assert_int_equal(p.buf_off, 0);
    assert_true(curve_io_iter_next(&it, &p));
    assert_int_equal(p.vol_off, 16 * MiB);
    assert_int_equal(p.chunk_index, 4);
    assert_int_equal(p.seg_index, 1);
    assert_int_equal(p.chunk_in_seg, 0);
    assert_int_equal(p.chunk_off, 0);
    assert_int_equal(p.len, 8 * KiB);
    assert_int_equal(p.buf_off, 8 * KiB);
    assert_false(curve_io_iter_next(&it, &p));

    /* discard: one piece per chunk (piece_max 0) */
    assert_int_equal(curve_io_iter_init(&it, &g, 2 * MiB, 10 * MiB, 0), 0);
    const uint64_t want_off[] = {2 * MiB, 4 * MiB, 8 * MiB};
    const uint32_t want_len[] = {2 * MiB, 4 * MiB, 4 * MiB};
    for (int i = 0; i < 3; i++) {
        assert_true(curve_io_iter_next(&it, &p));
        assert_int_equal(p.vol_off, want_off[i]);
        assert_int_equal(p.len, want_len[i]);
    }
    assert_false(curve_io_iter_next(&it, &p));
    assert_int_equal(curve_io_piece_count(&g, 2 * MiB, 10 * MiB, 0), 3);
}

/* Random IOs: pieces are contiguous, cover the IO, stay inside one chunk and below the piece
 * size, and their number matches curve_io_piece_count. */
static void test_split_random_properties(void **state)
{
    const char *env = getenv("CURVE_TEST_SEED");
    unsigned seed = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL);
    printf("seed %u (replay with CURVE_TEST_SEED=%u)\n", seed, seed);
    srand(seed);
    curve_io_geom g = small_geom();
    g.align = 512;
    const uint32_t pms[] = {0, 64 * KiB, 128 * KiB, 1 * MiB, 4 * MiB};
    for (int iter = 0; iter < 3000; iter++) {
        uint64_t off = ((uint64_t)rand() % (g.volume_size / 512)) * 512;
        uint64_t maxlen = g.volume_size - off;
        uint64_t len = ((uint64_t)rand() % (maxlen / 512 + 1)) * 512;
        if (rand() % 2 && len > 64 * KiB) /* many short IOs too */
            len = ((uint64_t)rand() % 256) * 512;
        if (len > maxlen)
            len = maxlen;
        uint32_t pm = pms[rand() % 5];
        uint32_t eff = pm == 0 ? g.chunk_size : pm;
        curve_io_iter it;
        assert_int_equal(curve_io_iter_init(&it, &g, off, len, pm), 0);
        curve_io_piece p;
        uint64_t pos = 0, count = 0;
        while (curve_io_iter_next(&it, &p)) {
            assert_int_equal(p.vol_off, off + pos);
            assert_int_equal(p.buf_off, pos);
            assert_true(p.len > 0 && p.len <= eff);
            assert_int_equal(p.chunk_index, p.vol_off / g.chunk_size);
            assert_int_equal(p.chunk_off, p.vol_off % g.chunk_size);
            assert_true((uint64_t)p.chunk_off + p.len <= g.chunk_size);
            assert_int_equal(p.seg_index, p.vol_off / g.segment_size);
            assert_int_equal(p.chunk_in_seg, (p.vol_off % g.segment_size) / g.chunk_size);
            pos += p.len;
            count++;
        }
        assert_int_equal(pos, len);
        assert_int_equal(count, curve_io_piece_count(&g, off, len, pm));
    }
}

/* ---- tracker ---- */

typedef struct done_rec {
    atomic_int calls;
    int result;
} done_rec;

static void done_cb(curve_io_tracker *t, int result, void *ctx)
{
    done_rec *d = ctx;
    d->result = result;
    atomic_fetch_add(&d->calls, 1);
}

static void test_tracker_basic(void **state)
{
    curve_io_tracker t;
    done_rec d = {0};
    /* no pieces: completes on arm */
    curve_io_tracker_init(&t, done_cb, &d);
    curve_io_tracker_arm(&t);
    assert_int_equal(atomic_load(&d.calls), 1);
    assert_int_equal(d.result, 0);

    /* pieces finishing before arm do not complete it early */
    d = (done_rec){0};
    curve_io_tracker_init(&t, done_cb, &d);
    curve_io_tracker_add(&t, 1);
    curve_io_tracker_piece_done(&t, 0);
    curve_io_tracker_add(&t, 2);
    curve_io_tracker_piece_done(&t, 0);
    assert_int_equal(atomic_load(&d.calls), 0);
    curve_io_tracker_arm(&t);
    assert_int_equal(atomic_load(&d.calls), 0);
    curve_io_tracker_piece_done(&t, 0);
    assert_int_equal(atomic_load(&d.calls), 1);
    assert_int_equal(d.result, 0);

    /* first error wins */
    d = (done_rec){0};
    curve_io_tracker_init(&t, done_cb, &d);
    curve_io_tracker_add(&t, 3);
    curve_io_tracker_arm(&t);
    curve_io_tracker_piece_done(&t, 0);
    curve_io_tracker_piece_done(&t, -EIO);
    assert_int_equal(atomic_load(&d.calls), 0);
    curve_io_tracker_piece_done(&t, -ENOSPC);
    assert_int_equal(atomic_load(&d.calls), 1);
    assert_int_equal(d.result, -EIO);

    /* fail() records without finishing a piece */
    d = (done_rec){0};
    curve_io_tracker_init(&t, done_cb, &d);
    curve_io_tracker_add(&t, 1);
    curve_io_tracker_fail(&t, -ENOMEM);
    curve_io_tracker_arm(&t);
    assert_int_equal(atomic_load(&d.calls), 0);
    curve_io_tracker_piece_done(&t, -EIO);
    assert_int_equal(atomic_load(&d.calls), 1);
    assert_int_equal(d.result, -ENOMEM);
}

#define T_THREADS 8
#define T_PIECES  16000
#define T_ROUNDS  20

typedef struct tshared {
    curve_io_tracker t;
    done_rec d;
    pthread_barrier_t start;
    atomic_int available; /* pieces added (submitted) but not yet taken by a worker */
    atomic_int taken;     /* pieces taken so far */
} tshared;

static void *piece_thread(void *p)
{
    tshared *sh = p;
    pthread_barrier_wait(&sh->start);
    while (atomic_load(&sh->taken) < T_PIECES) {
        int a = atomic_load(&sh->available);
        if (a == 0 || !atomic_compare_exchange_weak(&sh->available, &a, a - 1))
            continue;
        int idx = atomic_fetch_add(&sh->taken, 1);
        /* a few pieces fail, with different errors */
        int r = idx % 997 == 500 ? -(100 + idx % 7) : 0;
        curve_io_tracker_piece_done(&sh->t, r);
    }
    return NULL;
}

/* Many threads finish pieces while the submitter still adds (each piece is added before it
 * can complete, as the contract says) and then arms: the callback runs exactly once, after the
 * last piece, with one of the errors. */
static void test_tracker_threads_exactly_once(void **state)
{
    tshared *sh = calloc(1, sizeof(*sh));
    assert_non_null(sh);
    for (int round = 0; round < T_ROUNDS; round++) {
        sh->d = (done_rec){0};
        atomic_store(&sh->taken, 0);
        curve_io_tracker_init(&sh->t, done_cb, &sh->d);
        curve_io_tracker_add(&sh->t, T_PIECES / 2);
        atomic_store(&sh->available, T_PIECES / 2);
        assert_int_equal(pthread_barrier_init(&sh->start, NULL, T_THREADS + 1), 0);
        pthread_t th[T_THREADS];
        for (int i = 0; i < T_THREADS; i++)
            assert_int_equal(pthread_create(&th[i], NULL, piece_thread, sh), 0);
        pthread_barrier_wait(&sh->start);
        for (int i = 0; i < T_PIECES / 2; i++) {
            curve_io_tracker_add(&sh->t, 1);
            atomic_fetch_add(&sh->available, 1);
        }
        curve_io_tracker_arm(&sh->t);
        for (int i = 0; i < T_THREADS; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&sh->start);
        assert_int_equal(atomic_load(&sh->taken), T_PIECES);
        assert_int_equal(atomic_load(&sh->d.calls), 1);
        int r = sh->d.result;
        assert_true(r <= -100 && r >= -106);
    }
    free(sh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_geom_validate),
        cmocka_unit_test(test_check_alignment_and_range),
        cmocka_unit_test(test_split_rpc_size),
        cmocka_unit_test(test_split_chunk_and_segment_boundary),
        cmocka_unit_test(test_split_random_properties),
        cmocka_unit_test(test_tracker_basic),
        cmocka_unit_test(test_tracker_threads_exactly_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
