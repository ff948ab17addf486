/* Helpers shared by the MDS core unit tests: build fake topologies. */
#ifndef CURVE_TEST_MDS_UTIL_H
#define CURVE_TEST_MDS_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mds/placement.h"
#include "mds/topology.h"

/* Seed of the randomized tests: CURVE_TEST_SEED overrides; always printed for replay. */
static inline uint64_t mdst_seed(void)
{
    const char *s = getenv("CURVE_TEST_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 0) : 20261126;
    fprintf(stderr, "# seed %llu (set CURVE_TEST_SEED to replay)\n", (unsigned long long)seed);
    return seed;
}

/*
 * Builds physical pool "pp1" with `nzones` zones; zone z has servers_per_zone[z] servers
 * (or `servers` for every zone when servers_per_zone is NULL), each with `css` registered
 * chunkservers (capacity 1 TiB); logical pool "lp1" with `copysets` copysets (not placed).
 */
static inline void mdst_build(mds_topology *t, int nzones, int servers,
                              const int *servers_per_zone, int css, uint32_t copysets)
{
    size_t cap = 1 << 16, n = 0;
    char *js = malloc(cap);
    assert_non_null(js);
    n += (size_t)snprintf(js + n, cap - n, "{\"physical_pools\":[{\"name\":\"pp1\"}],\"zones\":[");
    for (int z = 0; z < nzones; z++)
        n += (size_t)snprintf(js + n, cap - n, "%s{\"name\":\"z%d\",\"physical_pool\":\"pp1\"}",
                              z ? "," : "", z);
    n += (size_t)snprintf(js + n, cap - n, "],\"servers\":[");
    int first = 1;
    for (int z = 0; z < nzones; z++) {
        int ns = servers_per_zone ? servers_per_zone[z] : servers;
        for (int s = 0; s < ns; s++) {
            n += (size_t)snprintf(js + n, cap - n,
                                  "%s{\"name\":\"s%d-%d\",\"zone\":\"z%d\","
                                  "\"host\":\"10.0.%d.%d\"}",
                                  first ? "" : ",", z, s, z, z, s);
            first = 0;
        }
    }
    n += (size_t)snprintf(js + n, cap - n,
                          "],\"logical_pools\":[{\"name\":\"lp1\",\"physical_pool\":\"pp1\","
                          "\"replicas\":3,\"copysets\":%u}]}",
                          copysets);
    assert_true(n < cap);
    char err[256] = "";
    mds_topo_init(t);
    int rc = mds_topo_apply_json(t, js, n, NULL, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "apply: %s\n", err);
    assert_int_equal(rc, 0);
    free(js);
    mds_rng rng;
    mds_rng_seed(&rng, 7);
    for (int z = 0; z < nzones; z++) {
        int ns = servers_per_zone ? servers_per_zone[z] : servers;
        for (int s = 0; s < ns; s++) {
            for (int c = 0; c < css; c++) {
                char host[32], disk[32];
                snprintf(host, sizeof(host), "10.0.%d.%d", z, s);
                snprintf(disk, sizeof(disk), "/data/cs%d", c);
                mds_chunkserver *cs = NULL;
                rc = mds_topo_register_cs(t, host, 8200 + (uint32_t)c, disk, 1ull << 40, &rng, 0,
                                          &cs, err, sizeof(err));
                assert_int_equal(rc, 0);
            }
        }
    }
}

/* Places the copysets of pool 1 with `seed` and sets every copyset's leader to its first
 * peer (term 1). */
static inline void mdst_place(mds_topology *t, uint64_t seed)
{
    mds_rng rng;
    char err[256] = "";
    mds_rng_seed(&rng, seed);
    int rc = mds_place_create_pool_copysets(t, 1, &rng, NULL, NULL, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "place: %s\n", err);
    assert_int_equal(rc, 0);
    for (size_t i = 0; i < t->copysets.n; i++) {
        t->copysets.v[i].leader = t->copysets.v[i].peers[0];
        t->copysets.v[i].term = 1;
    }
}

/* Adds copyset (pool 1, id) with the given peers and leader directly. */
static inline void mdst_copyset(mds_topology *t, uint32_t id, uint32_t a, uint32_t b, uint32_t c,
                                uint32_t leader)
{
    mds_copyset cs;
    memset(&cs, 0, sizeof(cs));
    cs.pool_id = 1;
    cs.id = id;
    cs.npeers = 3;
    cs.peers[0] = a;
    cs.peers[1] = b;
    cs.peers[2] = c;
    cs.leader = leader;
    cs.term = 1;
    char err[256] = "";
    int rc = mds_topo_add_copyset(t, &cs, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "add copyset: %s\n", err);
    assert_int_equal(rc, 0);
}

#endif
