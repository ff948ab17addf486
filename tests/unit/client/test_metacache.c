/* Client metadata cache: fill, lookup, versions, invalidation, bounds, threads. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client/metacache.h"
#include "client/retry.h"
#include "common/clock.h"

static void make_seg(curve_chunk_loc *c, uint32_t n, uint64_t base)
{
    for (uint32_t i = 0; i < n; i++)
        c[i] = (curve_chunk_loc){.chunk_id = base + i, .pool_id = 1, .copyset_id = 100 + i % 5};
}

static curve_peer peer(uint32_t id, const char *addr)
{
    curve_peer p = {.cs_id = id};
    snprintf(p.addr, sizeof(p.addr), "%s", addr);
    return p;
}

static void test_new_bounds(void **state)
{
    curve_metacache *mc = NULL;
    assert_int_equal(curve_metacache_new(0, 10, &mc), -EINVAL);
    assert_int_equal(curve_metacache_new(10, 0, &mc), -EINVAL);
    assert_int_equal(curve_metacache_new(CURVE_METACACHE_LIMIT_MAX + 1, 10, &mc), -EINVAL);
    assert_null(mc);
    assert_int_equal(curve_metacache_new(CURVE_METACACHE_SEGMENTS_DEFAULT,
                                         CURVE_METACACHE_COPYSETS_DEFAULT, &mc),
                     0);
    assert_non_null(mc);
    curve_metacache_free(mc);
    curve_metacache_free(NULL);
}

static void test_segment_fill_lookup(void **state)
{
    curve_metacache *mc;
    assert_int_equal(curve_metacache_new(16, 16, &mc), 0);
    curve_chunk_loc seg[64], out;
    make_seg(seg, 64, 1000);
    assert_int_equal(curve_metacache_get_chunk(mc, 7, 0, 0, &out), -ENOENT);
    assert_int_equal(curve_metacache_put_segment(mc, 7, 0, seg, 64), 0);
    assert_int_equal(curve_metacache_get_chunk(mc, 7, 0, 5, &out), 0);
    assert_int_equal(out.chunk_id, 1005);
    assert_int_equal(out.pool_id, 1);
    assert_int_equal(out.copyset_id, 100);
    assert_int_equal(curve_metacache_get_chunk(mc, 7, 0, 63, &out), 0);
    assert_int_equal(out.chunk_id, 1063);
    assert_int_equal(curve_metacache_get_chunk(mc, 7, 0, 64, &out), -EINVAL);
    assert_int_equal(curve_metacache_get_chunk(mc, 7, 1, 0, &out), -ENOENT);
    assert_int_equal(curve_metacache_get_chunk(mc, 8, 0, 0, &out), -ENOENT);
    /* replace */
    make_seg(seg, 64, 5000);
    assert_int_equal(curve_metacache_put_segment(mc, 7, 0, seg, 64), 0);
    assert_int_equal(curve_metacache_get_chunk(mc, 7, 0, 5, &out), 0);
    assert_int_equal(out.chunk_id, 5005);
    /* bad input */
    assert_int_equal(curve_metacache_put_segment(mc, 7, 1, seg, 0), -EINVAL);
    assert_int_equal(curve_metacache_put_segment(mc, 7, 1, NULL, 4), -EINVAL);
    assert_int_equal(curve_metacache_put_segment(mc, 7, 1, seg, CURVE_SEGMENT_MAX_CHUNKS + 1),
                     -EINVAL);
    seg[3].chunk_id = 0;
    assert_int_equal(curve_metacache_put_segment(mc, 7, 1, seg, 64), -EINVAL);
    assert_int_equal(curve_metacache_get_chunk(mc, 7, 1, 0, &out), -ENOENT);
    curve_metacache_stats st;
    curve_metacache_get_stats(mc, &st);
    assert_int_equal(st.segments, 1);
    assert_int_equal(st.seg_hits, 3);
    assert_true(st.seg_misses >= 4);
    curve_metacache_free(mc);
}

static void test_segment_invalidate(void **state)
{
    curve_metacache *mc;
    assert_int_equal(curve_metacache_new(64, 16, &mc), 0);
    curve_chunk_loc seg[4], out;
    make_seg(seg, 4, 1);
    for (uint64_t f = 1; f <= 3; f++)
        for (uint64_t s = 0; s < 5; s++)
            assert_int_equal(curve_metacache_put_segment(mc, f, s, seg, 4), 0);
    curve_metacache_invalidate_segment(mc, 2, 3);
    assert_int_equal(curve_metacache_get_chunk(mc, 2, 3, 0, &out), -ENOENT);
    assert_int_equal(curve_metacache_get_chunk(mc, 2, 2, 0, &out), 0);
    curve_metacache_invalidate_segment(mc, 2, 3); /* absent: no-op */
    curve_metacache_invalidate_file(mc, 1);
    for (uint64_t s = 0; s < 5; s++) {
        assert_int_equal(curve_metacache_get_chunk(mc, 1, s, 0, &out), -ENOENT);
        assert_int_equal(curve_metacache_get_chunk(mc, 3, s, 0, &out), 0);
    }
    curve_metacache_stats st;
    curve_metacache_get_stats(mc, &st);
    assert_int_equal(st.segments, 9);
    curve_metacache_free(mc);
}

static void test_segment_lru_bound(void **state)
{
    curve_metacache *mc;
    assert_int_equal(curve_metacache_new(4, 4, &mc), 0);
    curve_chunk_loc seg[2], out;
    make_seg(seg, 2, 1);
    for (uint64_t s = 0; s < 4; s++)
        assert_int_equal(curve_metacache_put_segment(mc, 1, s, seg, 2), 0);
    /* touch segment 0 so segment 1 is the least recently used */
    assert_int_equal(curve_metacache_get_chunk(mc, 1, 0, 0, &out), 0);
    assert_int_equal(curve_metacache_put_segment(mc, 1, 4, seg, 2), 0);
    assert_int_equal(curve_metacache_get_chunk(mc, 1, 1, 0, &out), -ENOENT);
    assert_int_equal(curve_metacache_get_chunk(mc, 1, 0, 0, &out), 0);
    assert_int_equal(curve_metacache_get_chunk(mc, 1, 4, 0, &out), 0);
    for (uint64_t s = 100; s < 200; s++)
        assert_int_equal(curve_metacache_put_segment(mc, 1, s, seg, 2), 0);
    curve_metacache_stats st;
    curve_metacache_get_stats(mc, &st);
    assert_int_equal(st.segments, 4);
    assert_int_equal(st.seg_evictions, 101);
    for (uint64_t s = 196; s < 200; s++)
        assert_int_equal(curve_metacache_get_chunk(mc, 1, s, 1, &out), 0);
    curve_metacache_free(mc);
}

static void put3(curve_metacache *mc, uint32_t cpid, uint64_t epoch, const char *leader,
                 uint64_t term, int want)
{
    curve_peer p[3] = {peer(1, "127.0.0.1:8201"), peer(2, "127.0.0.1:8202"),
                       peer(3, "127.0.0.1:8203")};
    assert_int_equal(curve_metacache_put_copyset(mc, 1, cpid, epoch, p, 3, leader, term), want);
}

static void test_copyset_fill_leader(void **state)
{
    curve_metacache *mc;
    assert_int_equal(curve_metacache_new(4, 16, &mc), 0);
    curve_peer l;
    bool mc_flag = true;
    assert_int_equal(curve_metacache_get_leader(mc, 1, 100, &l, NULL), -ENOENT);
    put3(mc, 100, 5, NULL, 0, 0);
    assert_int_equal(curve_metacache_get_leader(mc, 1, 100, &l, NULL), -EAGAIN);
    assert_int_equal(curve_metacache_set_leader(mc, 1, 100, "127.0.0.1:8202", 7), 0);
    assert_int_equal(curve_metacache_get_leader(mc, 1, 100, &l, &mc_flag), 0);
    assert_int_equal(l.cs_id, 2);
    assert_string_equal(l.addr, "127.0.0.1:8202");
    assert_false(mc_flag);
    /* a leader that is not a member: membership is stale */
    assert_int_equal(curve_metacache_set_leader(mc, 1, 100, "127.0.0.1:9999", 8), -ESRCH);
    assert_int_equal(curve_metacache_set_leader(mc, 1, 100, "", 8), -ESRCH);
    assert_int_equal(curve_metacache_set_leader(mc, 1, 101, "127.0.0.1:8202", 8), -ENOENT);
    /* stale term ignored; a hint without term accepted */
    assert_int_equal(curve_metacache_set_leader(mc, 1, 100, "127.0.0.1:8201", 6), -ESTALE);
    assert_int_equal(curve_metacache_get_leader(mc, 1, 100, &l, NULL), 0);
    assert_int_equal(l.cs_id, 2);
    assert_int_equal(curve_metacache_set_leader(mc, 1, 100, "127.0.0.1:8203", 0), 0);
    assert_int_equal(curve_metacache_get_leader(mc, 1, 100, &l, NULL), 0);
    assert_int_equal(l.cs_id, 3);
    curve_copyset_info ci;
    assert_int_equal(curve_metacache_get_copyset(mc, 1, 100, &ci), 0);
    assert_int_equal(ci.leader_term, 7);
    assert_int_equal(ci.epoch, 5);
    assert_int_equal(ci.npeers, 3);
    /* leader given with the membership */
    put3(mc, 101, 1, "127.0.0.1:8201", 3, 0);
    assert_int_equal(curve_metacache_get_leader(mc, 1, 101, &l, NULL), 0);
    assert_int_equal(l.cs_id, 1);
    /* invalid input */
    put3(mc, 102, 1, "127.0.0.1:7777", 3, -EINVAL);
    curve_peer bad[2] = {peer(0, "a:1"), peer(2, "b:2")};
    assert_int_equal(curve_metacache_put_copyset(mc, 1, 103, 1, bad, 2, NULL, 0), -EINVAL);
    bad[0] = peer(1, "");
    assert_int_equal(curve_metacache_put_copyset(mc, 1, 103, 1, bad, 2, NULL, 0), -EINVAL);
    assert_int_equal(curve_metacache_put_copyset(mc, 1, 103, 1, bad, 0, NULL, 0), -EINVAL);
    curve_peer many[CURVE_COPYSET_MAX_PEERS + 1];
    for (int i = 0; i <= CURVE_COPYSET_MAX_PEERS; i++)
        many[i] = peer((uint32_t)i + 1, "x:1");
    assert_int_equal(
        curve_metacache_put_copyset(mc, 1, 103, 1, many, CURVE_COPYSET_MAX_PEERS + 1, NULL, 0),
        -EINVAL);
    assert_int_equal(curve_metacache_get_copyset(mc, 1, 103, &ci), -ENOENT);
    curve_metacache_free(mc);
}

static void test_copyset_epoch(void **state)
{
    curve_metacache *mc;
    assert_int_equal(curve_metacache_new(4, 16, &mc), 0);
    put3(mc, 100, 5, "127.0.0.1:8202", 7, 0);
    /* older membership ignored */
    curve_peer old[3] = {peer(1, "127.0.0.1:8201"), peer(4, "127.0.0.1:8204"),
                         peer(5, "127.0.0.1:8205")};
    assert_int_equal(curve_metacache_put_copyset(mc, 1, 100, 4, old, 3, NULL, 0), -ESTALE);
    curve_copyset_info ci;
    assert_int_equal(curve_metacache_get_copyset(mc, 1, 100, &ci), 0);
    assert_int_equal(ci.epoch, 5);
    assert_int_equal(ci.peers[1].cs_id, 2);
    /* newer membership keeping the leader: leader and its term kept */
    curve_peer nw[3] = {peer(2, "127.0.0.1:8202"), peer(3, "127.0.0.1:8203"),
                        peer(6, "127.0.0.1:8206")};
    assert_int_equal(curve_metacache_put_copyset(mc, 1, 100, 6, nw, 3, NULL, 0), 0);
    curve_peer l;
    assert_int_equal(curve_metacache_get_leader(mc, 1, 100, &l, NULL), 0);
    assert_int_equal(l.cs_id, 2);
    assert_int_equal(curve_metacache_get_copyset(mc, 1, 100, &ci), 0);
    assert_int_equal(ci.leader_term, 7);
    assert_int_equal(ci.leader, 0);
    /* newer membership without the leader: leader unknown */
    curve_peer nw2[3] = {peer(3, "127.0.0.1:8203"), peer(6, "127.0.0.1:8206"),
                         peer(7, "127.0.0.1:8207")};
    assert_int_equal(curve_metacache_put_copyset(mc, 1, 100, 7, nw2, 3, NULL, 0), 0);
    assert_int_equal(curve_metacache_get_leader(mc, 1, 100, &l, NULL), -EAGAIN);
    /* same epoch with a leader from an older term does not replace the newer leader */
    assert_int_equal(curve_metacache_set_leader(mc, 1, 100, "127.0.0.1:8206", 9), 0);
    assert_int_equal(curve_metacache_put_copyset(mc, 1, 100, 7, nw2, 3, "127.0.0.1:8207", 8), 0);
    assert_int_equal(curve_metacache_get_leader(mc, 1, 100, &l, NULL), 0);
    assert_int_equal(l.cs_id, 6);
    assert_int_equal(curve_metacache_put_copyset(mc, 1, 100, 7, nw2, 3, "127.0.0.1:8207", 10), 0);
    assert_int_equal(curve_metacache_get_leader(mc, 1, 100, &l, NULL), 0);
    assert_int_equal(l.cs_id, 7);
    curve_metacache_free(mc);
}

static void test_copyset_invalidate_and_unstable(void **state)
{
    curve_metacache *mc;
    assert_int_equal(curve_metacache_new(4, 16, &mc), 0);
    put3(mc, 100, 1, "127.0.0.1:8201", 1, 0);
    put3(mc, 101, 1, "127.0.0.1:8201", 1, 0);
    put3(mc, 102, 1, "127.0.0.1:8202", 1, 0);
    put3(mc, 103, 1, NULL, 0, 0);
    curve_peer l;
    bool may = false;
    assert_int_equal(curve_metacache_mark_cs_unstable(mc, 1), 2);
    assert_int_equal(curve_metacache_get_leader(mc, 1, 100, &l, &may), 0);
    assert_true(may);
    assert_int_equal(curve_metacache_get_leader(mc, 1, 102, &l, &may), 0);
    assert_false(may);
    /* the flag drives the retry policy: the timeout stays at 1 s */
    curve_retry_opts o;
    curve_retry_opts_default(&o);
    curve_clock_manual clk;
    curve_clock_manual_init(&clk, 0);
    curve_retry_state st;
    curve_retry_init(&st, &o, &clk.base, NULL, NULL, CURVE_RETRY_OP_WRITE);
    assert_int_equal(curve_metacache_get_leader(mc, 1, 101, &l, &may), 0);
    curve_rpc_outcome out = {.timed_out = true, .leader_may_change = may};
    curve_retry_action a;
    curve_retry_on_outcome(&st, &out, &a);
    assert_int_equal(a.timeout_ms, 1000);
    /* learning a leader clears the flag */
    assert_int_equal(curve_metacache_set_leader(mc, 1, 100, "127.0.0.1:8203", 2), 0);
    assert_int_equal(curve_metacache_get_leader(mc, 1, 100, &l, &may), 0);
    assert_false(may);
    /* invalidations */
    curve_metacache_invalidate_leader(mc, 1, 101);
    assert_int_equal(curve_metacache_get_leader(mc, 1, 101, &l, NULL), -EAGAIN);
    curve_metacache_invalidate_copyset(mc, 1, 102);
    assert_int_equal(curve_metacache_get_leader(mc, 1, 102, &l, NULL), -ENOENT);
    curve_metacache_invalidate_copyset(mc, 1, 102);
    curve_metacache_invalidate_leader(mc, 1, 999);
    curve_metacache_stats s;
    curve_metacache_get_stats(mc, &s);
    assert_int_equal(s.copysets, 3);
    curve_metacache_free(mc);
}

static void test_copyset_lru_bound(void **state)
{
    curve_metacache *mc;
    assert_int_equal(curve_metacache_new(4, 8, &mc), 0);
    for (uint32_t c = 0; c < 8; c++)
        put3(mc, c, 1, NULL, 0, 0);
    curve_copyset_info ci;
    assert_int_equal(curve_metacache_get_copyset(mc, 1, 0, &ci), 0); /* 1 is now LRU */
    put3(mc, 8, 1, NULL, 0, 0);
    assert_int_equal(curve_metacache_get_copyset(mc, 1, 1, &ci), -ENOENT);
    assert_int_equal(curve_metacache_get_copyset(mc, 1, 0, &ci), 0);
    for (uint32_t c = 100; c < 1100; c++)
        put3(mc, c, 1, NULL, 0, 0);
    curve_metacache_stats s;
    curve_metacache_get_stats(mc, &s);
    assert_int_equal(s.copysets, 8);
    assert_int_equal(s.cs_evictions, 1001);
    curve_metacache_free(mc);
}

#define MT_THREADS 6
#define MT_OPS     20000

typedef struct mt_arg {
    curve_metacache *mc;
    unsigned seed;
    int errors;
} mt_arg;

static void *mt_thread(void *p)
{
    mt_arg *a = p;
    curve_chunk_loc seg[8], out;
    curve_peer ps[3] = {peer(1, "h:1"), peer(2, "h:2"), peer(3, "h:3")};
    for (int i = 0; i < MT_OPS; i++) {
        unsigned r = rand_r(&a->seed);
        uint64_t s = r % 64;
        switch (r / 64 % 6) {
        case 0:
            make_seg(seg, 8, s * 100 + 1);
            if (curve_metacache_put_segment(a->mc, 1, s, seg, 8) != 0)
                a->errors++;
            break;
        case 1:
            /* a hit always returns what was stored for that segment */
            if (curve_metacache_get_chunk(a->mc, 1, s, 3, &out) == 0 && out.chunk_id != s * 100 + 4)
                a->errors++;
            break;
        case 2:
            curve_metacache_invalidate_segment(a->mc, 1, s);
            break;
        case 3:
            curve_metacache_put_copyset(a->mc, 1, (uint32_t)s, r % 5, ps, 3, "h:2", r % 7);
            break;
        case 4: {
            curve_peer l;
            int rc = curve_metacache_get_leader(a->mc, 1, (uint32_t)s, &l, NULL);
            if (rc == 0 && (l.cs_id < 1 || l.cs_id > 3))
                a->errors++;
            break;
        }
        default:
            curve_metacache_mark_cs_unstable(a->mc, 2);
            curve_metacache_set_leader(a->mc, 1, (uint32_t)s, "h:3", r % 7);
            break;
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    curve_metacache *mc;
    assert_int_equal(curve_metacache_new(16, 16, &mc), 0); /* small: constant eviction */
    pthread_t th[MT_THREADS];
    mt_arg args[MT_THREADS];
    for (int i = 0; i < MT_THREADS; i++) {
        args[i] = (mt_arg){.mc = mc, .seed = 1234u + (unsigned)i};
        assert_int_equal(pthread_create(&th[i], NULL, mt_thread, &args[i]), 0);
    }
    for (int i = 0; i < MT_THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].errors, 0);
    }
    curve_metacache_stats s;
    curve_metacache_get_stats(mc, &s);
    assert_true(s.segments <= 16 && s.copysets <= 16);
    curve_metacache_free(mc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_bounds),
        cmocka_unit_test(test_segment_fill_lookup),
        cmocka_unit_test(test_segment_invalidate),
        cmocka_unit_test(test_segment_lru_bound),
        cmocka_unit_test(test_copyset_fill_leader),
        cmocka_unit_test(test_copyset_epoch),
        cmocka_unit_test(test_copyset_invalidate_and_unstable),
        cmocka_unit_test(test_copyset_lru_bound),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
