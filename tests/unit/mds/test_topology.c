/* Unit tests: topology model, description JSON, registration, record persistence. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "curve/errors.h"
#include "mds_test_util.h"

static const char *desc_ok =
    "{\"physical_pools\":[{\"name\":\"pp1\"}],"
    " \"zones\":[{\"name\":\"z1\",\"physical_pool\":\"pp1\"},"
    "            {\"name\":\"z2\",\"physical_pool\":\"pp1\"}],"
    " \"servers\":[{\"name\":\"s1\",\"zone\":\"z1\",\"host\":\"127.0.0.1\"},"
    "              {\"name\":\"s2\",\"zone\":\"z2\",\"host\":\"127.0.0.2\"}],"
    " \"logical_pools\":[{\"name\":\"lp1\",\"physical_pool\":\"pp1\",\"replicas\":3,"
    "                     \"copysets\":30}]}";

static void test_apply_ok_and_idempotent(void **state)
{
    mds_topology t;
    char err[256] = "";
    size_t changed = 0;
    mds_topo_init(&t);
    assert_int_equal(mds_topo_apply_json(&t, desc_ok, strlen(desc_ok), &changed, err, sizeof(err)),
                     0);
    assert_int_equal(changed, 6);
    assert_int_equal(t.ppools.n, 1);
    assert_int_equal(t.zones.n, 2);
    assert_int_equal(t.servers.n, 2);
    assert_int_equal(t.lpools.n, 1);
    const mds_server *s2 = mds_topo_server_by_name(&t, "s2");
    assert_non_null(s2);
    assert_string_equal(s2->host, "127.0.0.2");
    assert_int_equal(mds_topo_zone(&t, s2->zone_id)->ppool_id,
                     mds_topo_ppool_by_name(&t, "pp1")->id);
    const mds_lpool *lp = mds_topo_lpool_by_name(&t, "lp1");
    assert_int_equal(lp->copyset_count, 30);
    assert_int_equal(lp->replicas, 3);
    /* applying again changes nothing */
    assert_int_equal(mds_topo_apply_json(&t, desc_ok, strlen(desc_ok), &changed, err, sizeof(err)),
                     0);
    assert_int_equal(changed, 0);
    assert_int_equal(t.zones.n, 2);
    /* adding one more zone keeps the others and their ids */
    const char *more = "{\"zones\":[{\"name\":\"z3\",\"physical_pool\":\"pp1\"}]}";
    assert_int_equal(mds_topo_apply_json(&t, more, strlen(more), &changed, err, sizeof(err)), 0);
    assert_int_equal(changed, 1);
    assert_int_equal(mds_topo_zone_by_name(&t, "z3")->id, 3);
    mds_topo_destroy(&t);
}

static void test_apply_errors(void **state)
{
    static const struct {
        const char *json;
        const char *msg; /* substring expected in the error */
    } cases[] = {
        {"", "topology JSON"},
        {"[1]", "top level must be an object"},
        {"{\"zonez\":[]}", "unknown field 'zonez'"},
        {"{\"zones\":{}}", "zones: must be an array"},
        {"{\"zones\":[1]}", "zones[0]: must be an object"},
        {"{\"physical_pools\":[{}]}", "physical_pools[0].name: missing"},
        {"{\"physical_pools\":[{\"name\":5}]}", "physical_pools[0].name: must be a string"},
        {"{\"physical_pools\":[{\"name\":\"a b\"}]}", "physical_pools[0].name: invalid value"},
        {"{\"physical_pools\":[{\"name\":\"p\",\"x\":1}]}", "physical_pools[0]: unknown field 'x'"},
        {"{\"zones\":[{\"name\":\"z\",\"physical_pool\":\"nope\"}]}",
         "zones[0].physical_pool: unknown physical pool 'nope'"},
        {"{\"physical_pools\":[{\"name\":\"p\"}],"
         "\"zones\":[{\"name\":\"z\",\"physical_pool\":\"p\"}],"
         "\"servers\":[{\"name\":\"s\",\"zone\":\"z\",\"host\":\"bad host\"}]}",
         "servers[0].host: invalid value"},
        {"{\"physical_pools\":[{\"name\":\"p\"}],"
         "\"zones\":[{\"name\":\"z\",\"physical_pool\":\"p\"}],"
         "\"servers\":[{\"name\":\"s\",\"zone\":\"z\",\"host\":\"h1\"},"
         "{\"name\":\"s2\",\"zone\":\"z\",\"host\":\"h1\"}]}",
         "servers[1].host: host 'h1' already belongs to server 's'"},
        {"{\"physical_pools\":[{\"name\":\"p\"}],\"logical_pools\":[{\"name\":\"l\","
         "\"physical_pool\":\"p\",\"replicas\":2,\"copysets\":10}]}",
         "logical_pools[0].replicas: must be an integer in 3..3"},
        {"{\"physical_pools\":[{\"name\":\"p\"}],\"logical_pools\":[{\"name\":\"l\","
         "\"physical_pool\":\"p\",\"replicas\":3,\"copysets\":0}]}",
         "logical_pools[0].copysets: must be an integer in 1..1000000"},
        {"{\"physical_pools\":[{\"name\":\"p\"}],\"logical_pools\":[{\"name\":\"l\","
         "\"physical_pool\":\"p\",\"replicas\":3}]}",
         "logical_pools[0].copysets: missing"},
        {"{\"physical_pools\":[{\"name\":\"p\"}],"
         "\"zones\":[{\"name\":\"z\",\"physical_pool\":\"p\"}]"
         ",\"physical_pools\":[]}",
         "duplicate"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        mds_topology t;
        char err[256] = "";
        mds_topo_init(&t);
        int rc = mds_topo_apply_json(&t, cases[i].json, strlen(cases[i].json), NULL, err,
                                     sizeof(err));
        if (rc != CURVE_ERR_CONFIG || strstr(err, cases[i].msg) == NULL)
            fail_msg("case %zu: rc %d err '%s', want '%s'", i, rc, err, cases[i].msg);
        /* all or nothing */
        assert_int_equal(t.ppools.n + t.zones.n + t.servers.n + t.lpools.n, 0);
        mds_topo_destroy(&t);
    }
}

static void test_apply_conflict_keeps_topology(void **state)
{
    mds_topology t;
    char err[256] = "";
    mds_topo_init(&t);
    assert_int_equal(mds_topo_apply_json(&t, desc_ok, strlen(desc_ok), NULL, err, sizeof(err)), 0);
    const char *bad = "{\"physical_pools\":[{\"name\":\"pp2\"}],"
                      "\"zones\":[{\"name\":\"z1\",\"physical_pool\":\"pp2\"}]}";
    assert_int_equal(mds_topo_apply_json(&t, bad, strlen(bad), NULL, err, sizeof(err)),
                     CURVE_ERR_CONFIG);
    assert_non_null(strstr(err, "zones[0]: zone 'z1' already exists"));
    assert_null(mds_topo_ppool_by_name(&t, "pp2")); /* pp2 was not kept */
    mds_topo_destroy(&t);
}

static void test_register_and_queries(void **state)
{
    mds_topology t;
    char err[256] = "";
    mds_rng rng;
    mds_rng_seed(&rng, 1);
    mds_topo_init(&t);
    assert_int_equal(mds_topo_apply_json(&t, desc_ok, strlen(desc_ok), NULL, err, sizeof(err)), 0);
    mds_chunkserver *a = NULL, *b = NULL;
#define REG(host, port, disk, now, out)                                                            \
    mds_topo_register_cs(&t, host, port, disk, 100, &rng, now, out, err, sizeof(err))
    assert_int_equal(REG("127.0.0.1", 8200, "/data/d1", 5, &a), 0);
    uint32_t a_id = a->id;
    char token[MDS_TOKEN_LEN + 1];
    memcpy(token, a->token, sizeof(token));
    assert_int_equal(strlen(token), MDS_TOKEN_LEN);
    assert_int_equal(a->zone_id, mds_topo_zone_by_name(&t, "z1")->id);
    assert_int_equal(a->state, MDS_CS_ONLINE);
    assert_string_equal(a->disk_path, "/data/d1");
    /* same address and disk again: same id and token */
    assert_int_equal(REG("127.0.0.1", 8200, "/data/d1", 6, &b), 0);
    assert_int_equal(b->id, a_id);
    assert_string_equal(b->token, token);
    /* same address, other disk; or same disk, other port: held by chunkserver a */
    assert_int_equal(REG("127.0.0.1", 8200, "/data/d2", 6, &b), -EEXIST);
    assert_non_null(strstr(err, "address held by chunkserver"));
    assert_int_equal(REG("127.0.0.1", 8201, "/data/d1", 6, &b), -EEXIST);
    assert_non_null(strstr(err, "disk /data/d1 held by chunkserver"));
    /* a second disk on the same server */
    assert_int_equal(REG("127.0.0.1", 8201, "/data/d2", 6, &b), 0);
    assert_int_not_equal(b->id, a_id);
    assert_int_equal(REG("127.0.0.2", 8200, "/data/d1", 6, &b), 0);
    assert_int_not_equal(b->id, a_id);
    assert_string_not_equal(b->token, token);
    assert_int_equal(REG("127.0.0.9", 8200, "/data/d1", 6, &b), CURVE_ERR_NOT_FOUND);
    assert_non_null(strstr(err, "no server with host 127.0.0.9"));
    assert_int_equal(REG("127.0.0.1", 0, "/data/d9", 6, &b), -EINVAL);
    assert_int_equal(REG("127.0.0.1", 70000, "/data/d9", 6, &b), -EINVAL);
    assert_int_equal(REG("127.0.0.1", 8209, "data/d9", 6, &b), -EINVAL);
    assert_int_equal(REG("127.0.0.1", 8209, "/data/d 9", 6, &b), -EINVAL);
    assert_int_equal(REG("127.0.0.1", 8209, NULL, 6, &b), -EINVAL);
    /* a retired chunkserver frees its address and disk */
    assert_int_equal(mds_topo_retire_cs(&t, a_id), 0);
    assert_int_equal(REG("127.0.0.1", 8200, "/data/d1", 7, &b), 0);
    assert_int_not_equal(b->id, a_id);
#undef REG

    /* queries */
    uint32_t ids[4];
    assert_int_equal(mds_topo_css_of_zone(&t, mds_topo_zone_by_name(&t, "z1")->id, ids, 4), 3);
    assert_int_equal(ids[0], a_id);
    mds_topo_destroy(&t);
}

static void test_copyset_queries(void **state)
{
    mds_topology t;
    mdst_build(&t, 3, 2, NULL, 1, 10); /* css 1..6: zone0 {1,2}, zone1 {3,4}, zone2 {5,6} */
    mdst_copyset(&t, 1, 1, 3, 5, 1);
    mdst_copyset(&t, 2, 1, 4, 6, 4);
    mdst_copyset(&t, 3, 2, 3, 5, 0);
    const mds_copyset *cs[8];
    assert_int_equal(mds_topo_copysets_of_cs(&t, 1, cs, 8), 2);
    assert_int_equal(cs[0]->id, 1);
    assert_int_equal(cs[1]->id, 2);
    assert_int_equal(mds_topo_copysets_of_cs(&t, 3, cs, 1), 2); /* total even if max is 1 */
    assert_int_equal(mds_topo_scatter_width(&t, 1), 4);        /* 3,5,4,6 */
    assert_int_equal(mds_topo_scatter_width(&t, 3), 3);        /* 1,5,2 */
    assert_int_equal(mds_topo_scatter_width(&t, 2), 2);
    const mds_chunkserver *m[3];
    assert_int_equal(mds_topo_css_of_copyset(&t, mds_topo_copyset(&t, 1, 2), m, 3), 3);
    assert_int_equal(m[1]->id, 4);
    size_t first;
    assert_int_equal(mds_topo_pool_copysets(&t, 1, &first), 3);
    assert_int_equal(first, 0);
    assert_int_equal(mds_topo_pool_copysets(&t, 2, &first), 0);
    assert_int_equal(mds_group_id(1, 2), (1ull << 32) | 2);
    /* bad copysets */
    mds_copyset bad = *mds_topo_copyset(&t, 1, 1);
    bad.id = 9;
    bad.peers[1] = bad.peers[0];
    assert_int_equal(mds_topo_add_copyset(&t, &bad, NULL, 0), -EINVAL);
    bad.peers[1] = 77;
    assert_int_equal(mds_topo_add_copyset(&t, &bad, NULL, 0), CURVE_ERR_NOT_FOUND);
    bad = *mds_topo_copyset(&t, 1, 1);
    assert_int_equal(mds_topo_add_copyset(&t, &bad, NULL, 0), -EEXIST);
    bad.id = 10;
    bad.leader = 6;
    assert_int_equal(mds_topo_add_copyset(&t, &bad, NULL, 0), -EINVAL);
    mds_topo_destroy(&t);
}

/* Every kind: to JSON -> key -> text -> load into a fresh topology -> equal. */
static void test_record_roundtrip(void **state)
{
    mds_topology t, u;
    char err[256] = "";
    mdst_build(&t, 3, 1, NULL, 1, 3);
    mdst_copyset(&t, 1, 1, 2, 3, 2);
    mds_topo_copyset(&t, 1, 1)->epoch = 7;
    mds_topo_copyset(&t, 1, 1)->term = 9;
    mds_topo_cs(&t, 2)->used = 12345;
    mds_topo_cs(&t, 3)->state = MDS_CS_OFFLINE;
    mds_topo_init(&u);
    for (int k = 0; k < MDS_TOPO_NKINDS; k++) {
        const void *recs;
        size_t n, esz;
        switch (k) {
        case MDS_TOPO_PPOOL:
            recs = t.ppools.v, n = t.ppools.n, esz = sizeof(mds_ppool);
            break;
        case MDS_TOPO_ZONE:
            recs = t.zones.v, n = t.zones.n, esz = sizeof(mds_zone);
            break;
        case MDS_TOPO_SERVER:
            recs = t.servers.v, n = t.servers.n, esz = sizeof(mds_server);
            break;
        case MDS_TOPO_CS:
            recs = t.css.v, n = t.css.n, esz = sizeof(mds_chunkserver);
            break;
        case MDS_TOPO_LPOOL:
            recs = t.lpools.v, n = t.lpools.n, esz = sizeof(mds_lpool);
            break;
        default:
            recs = t.copysets.v, n = t.copysets.n, esz = sizeof(mds_copyset);
            break;
        }
        assert_true(n > 0);
        for (size_t i = 0; i < n; i++) {
            const void *rec = (const char *)recs + i * esz;
            json_t *j = mds_topo_record_to_json((mds_topo_kind)k, rec);
            assert_non_null(j);
            char *text = json_dumps(j, JSON_COMPACT);
            json_decref(j);
            char key[128];
            assert_true(mds_topo_record_key((mds_topo_kind)k, rec, key, sizeof(key)) > 0);
            assert_true(strncmp(key, "/curve/v1/", 10) == 0);
            int rc = mds_topo_load_record(&u, (mds_topo_kind)k, text, strlen(text), err,
                                          sizeof(err));
            if (rc != 0)
                fail_msg("kind %d: %s (%s)", k, err, text);
            free(text);
        }
    }
    char key[64];
    assert_int_equal(mds_topo_record_key(MDS_TOPO_COPYSET, mds_topo_copyset(&t, 1, 1), key,
                                         sizeof(key)),
                     (int)strlen("/curve/v1/copyset/1/1"));
    assert_string_equal(key, "/curve/v1/copyset/1/1");
    mds_topo_record_key(MDS_TOPO_ZONE, &t.zones.v[1], key, sizeof(key));
    assert_string_equal(key, "/curve/v1/topo/zone/2");
    assert_int_equal(mds_topo_record_key(MDS_TOPO_ZONE, &t.zones.v[1], key, 8), -ENOSPC);

    assert_int_equal(u.css.n, t.css.n);
    for (size_t i = 0; i < t.css.n; i++) {
        t.css.v[i].last_hb_ms = 0; /* runtime only */
        assert_memory_equal(&u.css.v[i], &t.css.v[i], sizeof(mds_chunkserver));
    }
    const mds_copyset *a = mds_topo_copyset(&t, 1, 1), *b = mds_topo_copyset(&u, 1, 1);
    assert_int_equal(b->epoch, 7);
    assert_int_equal(b->term, 9);
    assert_int_equal(b->leader, a->leader);
    assert_memory_equal(b->peers, a->peers, sizeof(a->peers));
    assert_string_equal(mds_topo_lpool(&u, 1)->name, "lp1");
    assert_int_equal(mds_topo_lpool(&u, 1)->copyset_count, 3);
    mds_topo_destroy(&t);
    mds_topo_destroy(&u);
}

static void test_record_decode_errors(void **state)
{
    static const struct {
        mds_topo_kind k;
        const char *json;
        int rc;
    } cases[] = {
        {MDS_TOPO_PPOOL, "{\"id\":1}", CURVE_ERR_CORRUPT},
        {MDS_TOPO_PPOOL, "{\"id\":0,\"name\":\"a\"}", CURVE_ERR_CORRUPT},
        {MDS_TOPO_PPOOL, "{\"id\":1,\"name\":\"a\",\"x\":1}", CURVE_ERR_CORRUPT},
        {MDS_TOPO_PPOOL, "{\"id\":4294967296,\"name\":\"a\"}", CURVE_ERR_CORRUPT},
        {MDS_TOPO_PPOOL, "{\"id\":1,\"name\":\"\"}", CURVE_ERR_CORRUPT},
        {MDS_TOPO_PPOOL, "[]", CURVE_ERR_CORRUPT},
        {MDS_TOPO_PPOOL, "{", CURVE_ERR_CORRUPT},
        {MDS_TOPO_PPOOL, "{\"id\":1,\"name\":\"a\\u0000b\"}", CURVE_ERR_CORRUPT},
        {MDS_TOPO_ZONE, "{\"id\":1,\"ppool\":9,\"name\":\"z\"}", CURVE_ERR_NOT_FOUND},
        {MDS_TOPO_COPYSET, "{\"pool\":1,\"id\":1,\"peers\":[],\"leader\":0,\"epoch\":0,\"term\":0}",
         CURVE_ERR_CORRUPT},
        {MDS_TOPO_COPYSET,
         "{\"pool\":1,\"id\":1,\"peers\":[1,2,3,4,5,6],\"leader\":0,\"epoch\":0,\"term\":0}",
         CURVE_ERR_CORRUPT},
        {MDS_TOPO_COPYSET,
         "{\"pool\":1,\"id\":1,\"peers\":[1,\"2\"],\"leader\":0,\"epoch\":0,\"term\":0}",
         CURVE_ERR_CORRUPT},
        {MDS_TOPO_COPYSET,
         "{\"pool\":1,\"id\":1,\"peers\":[1,2,3],\"leader\":0,\"epoch\":-1,\"term\":0}",
         CURVE_ERR_CORRUPT},
        {MDS_TOPO_CS,
         "{\"id\":1,\"server\":1,\"port\":1,\"state\":\"dead\",\"token\":\"t\",\"host\":\"h\","
         "\"disk\":\"/d\",\"cap\":1,\"used\":0}",
         CURVE_ERR_CORRUPT},
        {MDS_TOPO_LPOOL,
         "{\"id\":1,\"ppool\":1,\"replicas\":3,\"copysets\":1,\"created\":1,\"name\":\"l\"}",
         CURVE_ERR_CORRUPT},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        mds_topology t;
        char err[256] = "";
        mds_topo_init(&t);
        int rc = mds_topo_load_record(&t, cases[i].k, cases[i].json, strlen(cases[i].json), err,
                                      sizeof(err));
        if (rc != cases[i].rc)
            fail_msg("case %zu: rc %d (%s), want %d", i, rc, err, cases[i].rc);
        assert_true(strlen(err) > 0);
        mds_topo_destroy(&t);
    }
}

static void test_rng(void **state)
{
    mds_rng a, b;
    mds_rng_seed(&a, 42);
    mds_rng_seed(&b, 42);
    uint32_t hist[10] = {0};
    for (int i = 0; i < 10000; i++) {
        uint32_t x = mds_rng_below(&a, 10);
        assert_int_equal(x, mds_rng_below(&b, 10));
        assert_true(x < 10);
        hist[x]++;
    }
    for (int i = 0; i < 10; i++)
        assert_in_range(hist[i], 850, 1150);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply_ok_and_idempotent),
        cmocka_unit_test(test_apply_errors),
        cmocka_unit_test(test_apply_conflict_keeps_topology),
        cmocka_unit_test(test_register_and_queries),
        cmocka_unit_test(test_copyset_queries),
        cmocka_unit_test(test_record_roundtrip),
        cmocka_unit_test(test_record_decode_errors),
        cmocka_unit_test(test_rng),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
