/* Unit tests: copyset placement and replacement choice. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "curve/errors.h"
#include "mds_test_util.h"

/* Checks every copyset of pool 1: 3 distinct peers, in distinct zones (or servers);
 * returns per-chunkserver copyset counts in counts[t->css.n]. */
static void check_spread(const mds_topology *t, bool by_zone, uint32_t *counts)
{
    memset(counts, 0, t->css.n * sizeof(*counts));
    for (size_t i = 0; i < t->copysets.n; i++) {
        const mds_copyset *c = &t->copysets.v[i];
        assert_int_equal(c->npeers, 3);
        for (int a = 0; a < 3; a++) {
            const mds_chunkserver *x = mds_topo_cs(t, c->peers[a]);
            assert_non_null(x);
            counts[x - t->css.v]++;
            for (int b = 0; b < a; b++) {
                const mds_chunkserver *y = mds_topo_cs(t, c->peers[b]);
                assert_int_not_equal(x->id, y->id);
                if (by_zone)
                    assert_int_not_equal(x->zone_id, y->zone_id);
                else
                    assert_int_not_equal(x->server_id, y->server_id);
            }
        }
    }
}

/* Scatter widths within `pct` of the mean (MDS_PLACE_SW_MIN_SLACK at least). */
static void check_sw_balance(const mds_topology *t, double pct)
{
    double sum = 0;
    size_t *sw = calloc(t->css.n, sizeof(*sw));
    for (size_t i = 0; i < t->css.n; i++) {
        sw[i] = mds_topo_scatter_width(t, t->css.v[i].id);
        sum += (double)sw[i];
    }
    double mean = sum / (double)t->css.n, slack = mean * pct / 100;
    if (slack < MDS_PLACE_SW_MIN_SLACK)
        slack = MDS_PLACE_SW_MIN_SLACK;
    for (size_t i = 0; i < t->css.n; i++)
        if ((double)sw[i] < mean - slack || (double)sw[i] > mean + slack)
            fail_msg("cs %u scatter width %zu, mean %.1f", t->css.v[i].id, sw[i], mean);
    free(sw);
}

/* 3 zones x 3 servers x 1 chunkserver, 100 copysets per chunkserver (300 copysets). */
static void test_nine_chunkservers_300(void **state)
{
    mds_topology t;
    uint64_t seed = mdst_seed();
    mdst_build(&t, 3, 3, NULL, 1, 300);
    mds_place_stats st;
    mds_rng rng;
    char err[256] = "";
    mds_rng_seed(&rng, seed);
    assert_int_equal(mds_place_create_pool_copysets(&t, 1, &rng, NULL, &st, err, sizeof(err)), 0);
    assert_true(st.by_zone);
    assert_int_equal(st.ncandidates, 9);
    assert_int_equal(t.copysets.n, 300);
    assert_true(mds_topo_lpool(&t, 1)->copysets_created);
    uint32_t counts[9];
    check_spread(&t, true, counts);
    for (int i = 0; i < 9; i++)
        assert_int_equal(counts[i], 100); /* every round uses every chunkserver once */
    for (int i = 0; i < 9; i++)
        assert_int_equal(mds_topo_scatter_width(&t, t.css.v[i].id), 6); /* all other zones */
    check_sw_balance(&t, 20);
    /* ids are 1..300 */
    for (uint32_t i = 0; i < 300; i++)
        assert_int_equal(t.copysets.v[i].id, i + 1);
    /* second creation is refused */
    assert_int_equal(mds_place_create_pool_copysets(&t, 1, &rng, NULL, NULL, err, sizeof(err)),
                     -EEXIST);
    mds_topo_destroy(&t);
}

/* Larger and uneven: zones with 4, 3, 5 servers x 3 chunkservers = 36, 1200 copysets. */
static void test_uneven_zones(void **state)
{
    static const int spz[] = {4, 3, 5};
    mds_topology t;
    uint64_t seed = mdst_seed();
    mdst_build(&t, 3, 0, spz, 3, 1200);
    mds_rng rng;
    mds_place_stats st;
    char err[256] = "";
    mds_rng_seed(&rng, seed);
    int rc = mds_place_create_pool_copysets(&t, 1, &rng, NULL, &st, err, sizeof(err));
    if (rc != 0)
        fail_msg("%s", err);
    uint32_t counts[36];
    check_spread(&t, true, counts);
    check_sw_balance(&t, 20);
    /* the smallest zone (9 chunkservers) is in every copyset: 1200 / 9 each, +-1 round */
    for (size_t i = 0; i < t.css.n; i++) {
        if (t.css.v[i].zone_id == mds_topo_zone_by_name(&t, "z1")->id)
            assert_in_range(counts[i], 1200 / 9 - 2, 1200 / 9 + 2);
    }
    mds_topo_destroy(&t);
}

/* Many disks, few copysets per disk (120 disks, 2.5 copysets each on average) and many
 * copysets (120 disks x 100): both accepted and balanced. */
static void test_sparse_and_dense(void **state)
{
    static const uint32_t counts[] = {300, 4000};
    uint64_t seed = mdst_seed();
    for (size_t k = 0; k < 2; k++) {
        mds_topology t;
        mdst_build(&t, 3, 10, NULL, 4, counts[k]);
        mds_rng rng;
        mds_place_stats st;
        char err[256] = "";
        mds_rng_seed(&rng, seed + k);
        int rc = mds_place_create_pool_copysets(&t, 1, &rng, NULL, &st, err, sizeof(err));
        if (rc != 0)
            fail_msg("%u copysets: %s", counts[k], err);
        uint32_t per_cs[120];
        check_spread(&t, true, per_cs);
        for (int i = 0; i < 120; i++) /* rounds use every disk once: counts differ by <= 1 */
            assert_in_range(per_cs[i], counts[k] * 3 / 120 - 1, counts[k] * 3 / 120 + 1);
        check_sw_balance(&t, 20);
        fprintf(stderr, "# %u copysets: %u attempts, scatter width %u..%u mean %.1f\n",
                counts[k], st.attempts, st.sw_min, st.sw_max, st.sw_mean);
        mds_topo_destroy(&t);
    }
}

/* Fewer than 3 zones: distinct servers. */
static void test_server_mode(void **state)
{
    mds_topology t;
    mdst_build(&t, 2, 3, NULL, 2, 120); /* 6 servers x 2 css */
    mds_rng rng;
    mds_place_stats st;
    char err[256] = "";
    mds_rng_seed(&rng, mdst_seed());
    assert_int_equal(mds_place_create_pool_copysets(&t, 1, &rng, NULL, &st, err, sizeof(err)), 0);
    assert_false(st.by_zone);
    uint32_t counts[12];
    check_spread(&t, false, counts);
    check_sw_balance(&t, 20);
    mds_topo_destroy(&t);
}

static void test_determinism(void **state)
{
    mds_topology a, b;
    mdst_build(&a, 3, 2, NULL, 2, 200);
    mdst_build(&b, 3, 2, NULL, 2, 200);
    uint32_t *pa = NULL, *pb = NULL, *pc = NULL;
    mds_rng r1, r2, r3;
    mds_rng_seed(&r1, 99);
    mds_rng_seed(&r2, 99);
    mds_rng_seed(&r3, 100);
    assert_int_equal(mds_place_copysets(&a, 1, 200, &r1, NULL, &pa, NULL, NULL, 0), 0);
    assert_int_equal(mds_place_copysets(&b, 1, 200, &r2, NULL, &pb, NULL, NULL, 0), 0);
    assert_int_equal(mds_place_copysets(&b, 1, 200, &r3, NULL, &pc, NULL, NULL, 0), 0);
    assert_memory_equal(pa, pb, 600 * sizeof(uint32_t));
    assert_memory_not_equal(pa, pc, 600 * sizeof(uint32_t));
    free(pa);
    free(pb);
    free(pc);
    mds_topo_destroy(&a);
    mds_topo_destroy(&b);
}

static void test_impossible(void **state)
{
    mds_topology t;
    mds_rng rng;
    uint32_t *peers = NULL;
    char err[256] = "";
    mds_rng_seed(&rng, 1);
    /* 2 zones x 1 server: 2 domains */
    mdst_build(&t, 2, 1, NULL, 3, 10);
    assert_int_equal(mds_place_copysets(&t, 1, 10, &rng, NULL, &peers, NULL, err, sizeof(err)),
                     -ENOSPC);
    assert_non_null(strstr(err, "has 2 zones and 2 servers"));
    mds_topo_destroy(&t);
    /* 1 zone, 1 server with 5 disks */
    mdst_build(&t, 1, 1, NULL, 5, 10);
    assert_int_equal(mds_place_copysets(&t, 1, 10, &rng, NULL, &peers, NULL, err, sizeof(err)),
                     -ENOSPC);
    mds_topo_destroy(&t);
    /* 3 zones but one has only offline chunkservers */
    mdst_build(&t, 3, 1, NULL, 2, 10);
    for (size_t i = 0; i < t.css.n; i++)
        if (t.css.v[i].zone_id == 3)
            t.css.v[i].state = MDS_CS_OFFLINE;
    assert_int_equal(mds_place_copysets(&t, 1, 10, &rng, NULL, &peers, NULL, err, sizeof(err)),
                     -ENOSPC);
    /* bad inputs */
    assert_int_equal(mds_place_copysets(&t, 9, 10, &rng, NULL, &peers, NULL, err, sizeof(err)),
                     CURVE_ERR_NOT_FOUND);
    assert_int_equal(mds_place_copysets(&t, 1, 0, &rng, NULL, &peers, NULL, err, sizeof(err)),
                     -EINVAL);
    mds_topo_destroy(&t);
    /* a balance demand that cannot be met: a huge zone next to two single-disk ones gives
     * scatter widths 2 (big zone) vs ~many; tolerance 1% with 2 attempts */
    static const int spz[] = {1, 1, 8};
    mdst_build(&t, 3, 0, spz, 1, 40);
    mds_place_opts opts = {.sw_tolerance_pct = 1, .max_attempts = 2};
    mds_place_stats st;
    assert_int_equal(mds_place_copysets(&t, 1, 40, &rng, &opts, &peers, &st, err, sizeof(err)),
                     -EAGAIN);
    assert_int_equal(st.attempts, 2);
    assert_non_null(strstr(err, "scatter width"));
    mds_topo_destroy(&t);
}

static bool busy_cs5(void *ctx, uint32_t id)
{
    return id == *(uint32_t *)ctx;
}

/* css: zone0 {1,2,3}, zone1 {4,5,6}, zone2 {7,8,9} (3 servers x 1 cs per zone). */
static void test_replacement(void **state)
{
    mds_topology t;
    char err[256] = "";
    mdst_build(&t, 3, 3, NULL, 1, 10);
    mdst_copyset(&t, 1, 1, 4, 7, 1);
    mdst_copyset(&t, 2, 2, 5, 8, 2);
    mdst_copyset(&t, 3, 2, 6, 9, 2);
    mdst_copyset(&t, 4, 3, 6, 9, 3);
    const mds_copyset *c = mds_topo_copyset(&t, 1, 1);
    /* replace 4 (zone1): candidates are 5 (1 copyset) and 6 (2 copysets): 5 */
    mds_replace_req req = {.copyset = c, .old_peer = 4};
    uint32_t out = 0;
    assert_int_equal(mds_place_choose_replacement(&t, &req, &out, err, sizeof(err)), 0);
    assert_int_equal(out, 5);
    /* 5 busy: 6 */
    uint32_t busy = 5;
    req.busy = busy_cs5;
    req.busy_ctx = &busy;
    assert_int_equal(mds_place_choose_replacement(&t, &req, &out, err, sizeof(err)), 0);
    assert_int_equal(out, 6);
    /* 6 offline too: none */
    mds_topo_cs(&t, 6)->state = MDS_CS_OFFLINE;
    assert_int_equal(mds_place_choose_replacement(&t, &req, &out, err, sizeof(err)), -ENOSPC);
    assert_non_null(strstr(err, "distinct zone"));
    mds_topo_cs(&t, 6)->state = MDS_CS_ONLINE;
    /* 6 full: none */
    mds_topo_cs(&t, 6)->used = mds_topo_cs(&t, 6)->capacity;
    assert_int_equal(mds_place_choose_replacement(&t, &req, &out, err, sizeof(err)), -ENOSPC);
    mds_topo_cs(&t, 6)->used = 0;
    /* add (no old peer) to copyset 4 {3,6,9}: every zone already used: none */
    req.copyset = mds_topo_copyset(&t, 1, 4);
    req.old_peer = 0;
    req.busy = NULL;
    assert_int_equal(mds_place_choose_replacement(&t, &req, &out, err, sizeof(err)), -ENOSPC);
    /* replace 3 (zone0) in copyset 4: 1 (1 copyset) vs 2 (2 copysets): 1 */
    req.old_peer = 3;
    assert_int_equal(mds_place_choose_replacement(&t, &req, &out, err, sizeof(err)), 0);
    assert_int_equal(out, 1);
    /* equal counts: lowest scatter width wins. Replace 9 (zone2) in copyset 1... 7 is a peer;
     * copyset 2: replace 8: candidates 7 (1 copyset, sw 2) and 9 (2 copysets): 7 */
    req.copyset = mds_topo_copyset(&t, 1, 2);
    req.old_peer = 8;
    assert_int_equal(mds_place_choose_replacement(&t, &req, &out, err, sizeof(err)), 0);
    assert_int_equal(out, 7);
    /* max_copysets excludes candidates that are not below it */
    req.max_copysets = 1;
    assert_int_equal(mds_place_choose_replacement(&t, &req, &out, err, sizeof(err)), -ENOSPC);
    mds_topo_destroy(&t);
}

/* Same copyset count: the lower scatter width is chosen. */
static void test_replacement_scatter_tiebreak(void **state)
{
    mds_topology t;
    mdst_build(&t, 3, 3, NULL, 1, 10);
    /* 5 and 6 both have 2 copysets; 5 shares them with {1,7} only (sw 2), 6 with {2,3,8,9} */
    mdst_copyset(&t, 1, 1, 5, 7, 1);
    mdst_copyset(&t, 2, 1, 5, 7, 1);
    mdst_copyset(&t, 3, 2, 6, 8, 2);
    mdst_copyset(&t, 4, 3, 6, 9, 3);
    mdst_copyset(&t, 5, 2, 4, 9, 2);
    mdst_copyset(&t, 6, 3, 4, 8, 3);
    /* replace 4 in copyset 5 {2,4,9}: zone1 candidates 5 (2, sw 2) and 6 (2, sw 4) */
    mds_replace_req req = {.copyset = mds_topo_copyset(&t, 1, 5), .old_peer = 4};
    uint32_t out = 0;
    assert_int_equal(mds_place_choose_replacement(&t, &req, &out, NULL, 0), 0);
    assert_int_equal(out, 5);
    mds_topo_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nine_chunkservers_300),
        cmocka_unit_test(test_uneven_zones),
        cmocka_unit_test(test_server_mode),
        cmocka_unit_test(test_sparse_and_dense),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_impossible),
        cmocka_unit_test(test_replacement),
        cmocka_unit_test(test_replacement_scatter_tiebreak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
