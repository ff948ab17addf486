/* Unit tests: names, paths, sizes, id allocator, segment allocation, records. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "curve/errors.h"
#include "mds/namespace_rules.h"
#include "mds_test_util.h"

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void test_names(void **state)
{
    char *n255 = repeat('a', 255), *n256 = repeat('a', 256);
    const struct {
        const char *name;
        int rc;
    } cases[] = {
        {"vol1", 0},
        {"a", 0},
        {"My_Vol-2.img", 0},
        {"user@host:x+y=z", 0},
        {".hidden", 0},
        {"..x", 0},
        {n255, 0},
        {n256, -ENAMETOOLONG},
        {"", CURVE_ERR_BAD_NAME},
        {".", CURVE_ERR_BAD_NAME},
        {"..", CURVE_ERR_BAD_NAME},
        {"-rf", CURVE_ERR_BAD_NAME},
        {"a/b", CURVE_ERR_BAD_NAME},
        {"a b", CURVE_ERR_BAD_NAME},
        {"tab\t", CURVE_ERR_BAD_NAME},
        {"nl\n", CURVE_ERR_BAD_NAME},
        {"\xc3\xa9t\xc3\xa9", CURVE_ERR_BAD_NAME},
        {"star*", CURVE_ERR_BAD_NAME},
        {"back\\slash", CURVE_ERR_BAD_NAME},
        {"RecycleBin", 0}, /* only reserved at the root: see test_reserved */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256] = "";
        int rc = mds_ns_check_name(cases[i].name, err, sizeof(err));
        if (rc != cases[i].rc)
            fail_msg("case %zu '%.20s': rc %d (%s), want %d", i, cases[i].name, rc, err,
                     cases[i].rc);
        if (rc != 0)
            assert_true(strlen(err) > 0);
    }
    assert_int_equal(mds_ns_check_name(NULL, NULL, 0), CURVE_ERR_BAD_NAME);
    free(n255);
    free(n256);
}

static void test_owner(void **state)
{
    char err[128];
    assert_int_equal(mds_ns_check_owner("alice", err, sizeof(err)), 0);
    assert_int_equal(mds_ns_check_owner("", err, sizeof(err)), CURVE_ERR_BAD_NAME);
    assert_int_equal(mds_ns_check_owner(NULL, err, sizeof(err)), CURVE_ERR_BAD_NAME);
    assert_int_equal(mds_ns_check_owner("a b", err, sizeof(err)), CURVE_ERR_BAD_NAME);
    char *o65 = repeat('o', 65);
    assert_int_equal(mds_ns_check_owner(o65, err, sizeof(err)), CURVE_ERR_BAD_NAME);
    o65[64] = '\0';
    assert_int_equal(mds_ns_check_owner(o65, err, sizeof(err)), 0);
    free(o65);
}

static void test_reserved(void **state)
{
    char err[128];
    assert_int_equal(mds_ns_check_create(MDS_NS_ROOT_ID, "RecycleBin", err, sizeof(err)),
                     CURVE_ERR_PERMISSION);
    assert_non_null(strstr(err, "reserved"));
    assert_int_equal(mds_ns_check_create(5, "RecycleBin", err, sizeof(err)), 0);
    assert_int_equal(mds_ns_check_create(MDS_NS_ROOT_ID, "vol", err, sizeof(err)), 0);
    assert_int_equal(mds_ns_check_create(MDS_NS_ROOT_ID, "..", err, sizeof(err)),
                     CURVE_ERR_BAD_NAME);
}

static void test_paths(void **state)
{
    static mds_ns_path p; /* large: keep it off the stack */
    char err[256];
    assert_int_equal(mds_ns_parse_path("/", &p, err, sizeof(err)), 0);
    assert_int_equal(p.n, 0);
    assert_int_equal(mds_ns_parse_path("/a/b/vol", &p, err, sizeof(err)), 0);
    assert_int_equal(p.n, 3);
    assert_string_equal(p.comp[0], "a");
    assert_string_equal(p.comp[2], "vol");
    assert_int_equal(mds_ns_parse_path("/dir/", &p, err, sizeof(err)), 0);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.comp[0], "dir");
    assert_int_equal(mds_ns_parse_path("rel/x", &p, err, sizeof(err)), CURVE_ERR_BAD_NAME);
    assert_int_equal(mds_ns_parse_path("", &p, err, sizeof(err)), CURVE_ERR_BAD_NAME);
    assert_int_equal(mds_ns_parse_path(NULL, &p, err, sizeof(err)), CURVE_ERR_BAD_NAME);
    assert_int_equal(mds_ns_parse_path("//", &p, err, sizeof(err)), CURVE_ERR_BAD_NAME);
    assert_int_equal(mds_ns_parse_path("/a//b", &p, err, sizeof(err)), CURVE_ERR_BAD_NAME);
    assert_int_equal(mds_ns_parse_path("/a/./b", &p, err, sizeof(err)), CURVE_ERR_BAD_NAME);
    assert_int_equal(mds_ns_parse_path("/a/../b", &p, err, sizeof(err)), CURVE_ERR_BAD_NAME);
    assert_int_equal(mds_ns_parse_path("/a b", &p, err, sizeof(err)), CURVE_ERR_BAD_NAME);
    /* component too long */
    char *longc = repeat('x', 300);
    longc[0] = '/';
    assert_int_equal(mds_ns_parse_path(longc, &p, err, sizeof(err)), -ENAMETOOLONG);
    free(longc);
    /* path of 4096 bytes is fine, 4097 is not */
    char *path = repeat('a', 4097);
    for (size_t i = 0; i < 4097; i += 128)
        path[i] = '/';
    path[4096] = '\0';
    assert_int_equal(mds_ns_parse_path(path, &p, err, sizeof(err)), 0);
    assert_int_equal(p.n, 32);
    path[4096] = 'a';
    assert_int_equal(mds_ns_parse_path(path, &p, err, sizeof(err)), -ENAMETOOLONG);
    free(path);
    /* depth bound */
    char *deep = malloc(2 * 300 + 1);
    for (int i = 0; i < 300; i++) {
        deep[2 * i] = '/';
        deep[2 * i + 1] = 'd';
    }
    deep[600] = '\0';
    assert_int_equal(mds_ns_parse_path(deep, &p, err, sizeof(err)), -ENAMETOOLONG);
    free(deep);
}

static void test_rename_rules(void **state)
{
    static mds_ns_path a, b;
    char err[128];
    mds_ns_parse_path("/a/b", &a, NULL, 0);
    mds_ns_parse_path("/a/b/c", &b, NULL, 0);
    assert_int_equal(mds_ns_check_rename(&a, &b, err, sizeof(err)), -EINVAL);
    assert_int_equal(mds_ns_check_rename(&b, &a, err, sizeof(err)), 0);
    mds_ns_parse_path("/a/bc", &b, NULL, 0);
    assert_int_equal(mds_ns_check_rename(&a, &b, err, sizeof(err)), 0);
    mds_ns_parse_path("/", &b, NULL, 0);
    assert_int_equal(mds_ns_check_rename(&a, &b, err, sizeof(err)), CURVE_ERR_PERMISSION);
    assert_int_equal(mds_ns_check_rename(&b, &a, err, sizeof(err)), CURVE_ERR_PERMISSION);
    mds_ns_parse_path("/RecycleBin", &b, NULL, 0);
    assert_int_equal(mds_ns_check_rename(&a, &b, err, sizeof(err)), CURVE_ERR_PERMISSION);
    assert_int_equal(mds_ns_check_rename(&b, &a, err, sizeof(err)), CURVE_ERR_PERMISSION);
    mds_ns_parse_path("/RecycleBin/x-5", &b, NULL, 0);
    assert_int_equal(mds_ns_check_rename(&b, &a, err, sizeof(err)), 0); /* restore */
}

static void test_recycle_name(void **state)
{
    char buf[300];
    assert_int_equal(mds_ns_recycle_name("vol", 42, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "vol-42");
    char *n255 = repeat('v', 255);
    assert_int_equal(mds_ns_recycle_name(n255, 123456, buf, sizeof(buf)), 0);
    assert_int_equal(strlen(buf), 255);
    assert_int_equal(mds_ns_check_name(buf, NULL, 0), 0);
    assert_string_equal(buf + 248, "-123456");
    assert_int_equal(mds_ns_recycle_name("vol", 42, buf, 6), -ENOSPC);
    free(n255);
}

#define MiB (1024ull * 1024)
#define GiB (1024 * MiB)

static void test_sizes(void **state)
{
    mds_ns_size_cfg cfg;
    char err[256];
    mds_ns_size_cfg_default(&cfg);
    assert_int_equal(mds_ns_check_size_cfg(&cfg, err, sizeof(err)), 0);
    assert_int_equal(mds_ns_check_size(&cfg, 10 * GiB, err, sizeof(err)), 0);
    assert_int_equal(mds_ns_check_size(&cfg, 20 * 1024 * GiB, err, sizeof(err)), 0);
    assert_int_equal(mds_ns_check_size(&cfg, 9 * GiB, err, sizeof(err)), -ERANGE);
    assert_non_null(strstr(err, "below the minimum"));
    assert_int_equal(mds_ns_check_size(&cfg, 10 * GiB + 4096, err, sizeof(err)),
                     CURVE_ERR_BAD_SIZE);
    assert_non_null(strstr(err, "not a multiple"));
    assert_int_equal(mds_ns_check_size(&cfg, 20 * 1024 * GiB + GiB, err, sizeof(err)), -EFBIG);
    assert_int_equal(mds_ns_check_size(&cfg, 0, err, sizeof(err)), -ERANGE);
    /* extend */
    assert_int_equal(mds_ns_check_extend(&cfg, 10 * GiB, 11 * GiB, err, sizeof(err)), 0);
    assert_int_equal(mds_ns_check_extend(&cfg, 10 * GiB, 10 * GiB, err, sizeof(err)), 0);
    assert_int_equal(mds_ns_check_extend(&cfg, 11 * GiB, 10 * GiB, err, sizeof(err)),
                     -EOPNOTSUPP);
    assert_non_null(strstr(err, "shrink"));
    assert_int_equal(mds_ns_check_extend(&cfg, 10 * GiB, 11 * GiB + 1, err, sizeof(err)),
                     CURVE_ERR_BAD_SIZE);
    /* test-sized units */
    mds_ns_size_cfg small = {.chunk_size = 4 * MiB, .segment_size = 64 * MiB,
                             .min_size = 64 * MiB, .max_size = 1 * GiB};
    assert_int_equal(mds_ns_check_size_cfg(&small, err, sizeof(err)), 0);
    assert_int_equal(mds_ns_check_size(&small, 128 * MiB, err, sizeof(err)), 0);
    /* bad configurations */
    mds_ns_size_cfg bad = small;
    bad.chunk_size = 3 * MiB;
    assert_int_equal(mds_ns_check_size_cfg(&bad, err, sizeof(err)), -EINVAL);
    bad = small;
    bad.segment_size = 6 * MiB;
    assert_int_equal(mds_ns_check_size_cfg(&bad, err, sizeof(err)), -EINVAL);
    bad = small;
    bad.min_size = 2 * GiB;
    assert_int_equal(mds_ns_check_size_cfg(&bad, err, sizeof(err)), -EINVAL);
    bad = small;
    bad.segment_size = 8 * GiB;
    assert_int_equal(mds_ns_check_size_cfg(&bad, err, sizeof(err)), -EINVAL);
    bad = small;
    bad.chunk_size = 4096;
    bad.segment_size = 64 * MiB; /* 16384 chunks > MDS_NS_MAX_CHUNKS_PER_SEGMENT */
    assert_int_equal(mds_ns_check_size_cfg(&bad, err, sizeof(err)), -EINVAL);
}

static void test_idalloc(void **state)
{
    mds_idalloc a;
    uint64_t ids[100];
    mds_idalloc_init(&a, 100, 10);
    assert_true(mds_idalloc_need_refill(&a, 1));
    assert_int_equal(mds_idalloc_take(&a, 1, ids), -EAGAIN);
    assert_int_equal(mds_idalloc_refill(&a, 0, 100), -EINVAL);
    assert_int_equal(mds_idalloc_refill(&a, UINT64_MAX - 5, 100), -EINVAL);
    assert_int_equal(mds_idalloc_refill(&a, 1, 100), 0); /* etcd gave [1, 101) */
    assert_false(mds_idalloc_need_refill(&a, 64));
    assert_int_equal(mds_idalloc_take(&a, 64, ids), 0);
    for (int i = 0; i < 64; i++)
        assert_int_equal(ids[i], 1 + (uint64_t)i);
    assert_int_equal(mds_idalloc_left(&a), 36);
    assert_true(mds_idalloc_need_refill(&a, 64)); /* not enough for another segment */
    assert_false(mds_idalloc_need_refill(&a, 30));
    /* all or nothing */
    assert_int_equal(mds_idalloc_take(&a, 64, ids), -EAGAIN);
    assert_int_equal(mds_idalloc_left(&a), 36);
    assert_int_equal(mds_idalloc_take(&a, 27, ids), 0);
    assert_true(mds_idalloc_need_refill(&a, 1)); /* 9 left < low water 10 */
    /* a refill below ids already handed out is refused */
    assert_int_equal(mds_idalloc_refill(&a, 50, 100), -EINVAL);
    assert_int_equal(mds_idalloc_refill(&a, 101, 100), 0);
    assert_int_equal(mds_idalloc_take(&a, 1, ids), 0);
    assert_int_equal(ids[0], 101); /* the 9 leftovers are skipped, never reused */
}

static void test_segment_alloc(void **state)
{
    uint32_t copysets[100];
    for (uint32_t i = 0; i < 100; i++)
        copysets[i] = i + 1;
    mds_idalloc ids;
    mds_idalloc_init(&ids, 64 * 1000, 64);
    assert_int_equal(mds_idalloc_refill(&ids, 1000, 64 * 1000), 0);
    mds_rng rng;
    mds_rng_seed(&rng, mdst_seed());
    uint32_t hits[101] = {0}, starts[100] = {0};
    mds_chunk_loc loc[64];
    uint64_t last_id = 999;
    for (int seg = 0; seg < 1000; seg++) {
        assert_int_equal(mds_ns_alloc_segment(copysets, 100, (uint64_t)seg, 64, &rng, &ids, loc),
                         0);
        starts[loc[0].copyset_id - 1]++;
        for (int k = 0; k < 64; k++) {
            /* round-robin: consecutive chunks on consecutive copysets */
            assert_int_equal(loc[k].copyset_id, (loc[0].copyset_id - 1 + (uint32_t)k) % 100 + 1);
            assert_int_equal(loc[k].chunk_id, last_id + 1); /* unique, increasing */
            last_id = loc[k].chunk_id;
            hits[loc[k].copyset_id]++;
        }
    }
    /* 64000 chunks over 100 copysets: 640 each on average; random starts keep it even */
    for (int i = 1; i <= 100; i++)
        assert_in_range(hits[i], 640 - 200, 640 + 200);
    int used_starts = 0;
    for (int i = 0; i < 100; i++)
        used_starts += starts[i] > 0;
    assert_true(used_starts > 90);
    /* out of ids: nothing consumed */
    assert_int_equal(mds_idalloc_left(&ids), 0);
    assert_int_equal(mds_ns_alloc_segment(copysets, 100, 0, 64, &rng, &ids, loc), -EAGAIN);
    assert_int_equal(mds_ns_alloc_segment(copysets, 0, 0, 64, &rng, &ids, loc), -EINVAL);
    assert_int_equal(mds_ns_alloc_segment(copysets, 100, 0, 0, &rng, &ids, loc), -EINVAL);
    /* fewer copysets than chunks: wraps around */
    mds_idalloc_refill(&ids, 100000, 64);
    assert_int_equal(mds_ns_alloc_segment(copysets, 3, 0, 64, &rng, &ids, loc), 0);
    for (int k = 1; k < 64; k++)
        assert_int_equal(loc[k].copyset_id, loc[k - 1].copyset_id % 3 + 1);
}

static void test_choose_pool(void **state)
{
    mds_topology t;
    mds_rng rng;
    uint32_t pool = 0;
    mds_rng_seed(&rng, mdst_seed());
    mdst_build(&t, 3, 1, NULL, 1, 30);
    assert_int_equal(mds_ns_choose_pool(&t, &rng, &pool), -ENOSPC); /* not placed yet */
    mdst_place(&t, 1);
    const char *more = "{\"logical_pools\":[{\"name\":\"lp2\",\"physical_pool\":\"pp1\","
                       "\"replicas\":3,\"copysets\":10}]}";
    assert_int_equal(mds_topo_apply_json(&t, more, strlen(more), NULL, NULL, 0), 0);
    char err[256];
    assert_int_equal(mds_place_create_pool_copysets(&t, 2, &rng, NULL, NULL, err, sizeof(err)),
                     0);
    uint32_t hits[3] = {0};
    for (int i = 0; i < 4000; i++) {
        assert_int_equal(mds_ns_choose_pool(&t, &rng, &pool), 0);
        assert_true(pool == 1 || pool == 2);
        hits[pool]++;
    }
    assert_in_range(hits[1], 2700, 3300); /* 30 of 40 copysets */
    uint32_t ids[64];
    assert_int_equal(mds_ns_pool_copyset_ids(&t, 2, ids, 64), 10);
    for (uint32_t i = 0; i < 10; i++)
        assert_int_equal(ids[i], i + 1);
    assert_int_equal(mds_ns_pool_copyset_ids(&t, 1, ids, 5), 30);
    mds_topo_destroy(&t);
}

static void test_file_record(void **state)
{
    mds_file f, g;
    uint8_t buf[MDS_FILE_REC_MAX];
    char err[256];
    memset(&f, 0, sizeof(f));
    f.id = 77;
    f.parent_id = 1;
    f.type = MDS_FILE_VOLUME;
    f.status = MDS_FILE_NORMAL;
    f.size = 10 * GiB;
    f.segment_size = 1 << 30;
    f.chunk_size = 16 << 20;
    f.ctime_ns = 1234567890123ull;
    f.epoch = 3;
    strcpy(f.owner, "alice");
    strcpy(f.name, "vol1");
    int n = mds_file_encode(&f, buf, sizeof(buf));
    assert_int_equal(n, MDS_FILE_REC_HDR + 4 + 5 + 4);
    assert_int_equal(mds_file_decode(buf, (size_t)n, &g, err, sizeof(err)), 0);
    assert_memory_equal(&f, &g, sizeof(f));
    /* every single-byte corruption is detected */
    for (int i = 0; i < n; i++) {
        buf[i] ^= 0x20;
        if (mds_file_decode(buf, (size_t)n, &g, err, sizeof(err)) != CURVE_ERR_CORRUPT)
            fail_msg("corruption at byte %d not detected", i);
        buf[i] ^= 0x20;
    }
    /* truncation */
    for (int len = 0; len < n; len++)
        assert_int_equal(mds_file_decode(buf, (size_t)len, &g, err, sizeof(err)),
                         CURVE_ERR_CORRUPT);
    /* root directory: empty name */
    memset(&f, 0, sizeof(f));
    f.id = MDS_NS_ROOT_ID;
    f.type = MDS_FILE_DIR;
    strcpy(f.owner, "root");
    n = mds_file_encode(&f, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(mds_file_decode(buf, (size_t)n, &g, err, sizeof(err)), 0);
    assert_string_equal(g.name, "");
    /* invalid records are not encoded */
    f.id = 5; /* empty name only for the root */
    assert_int_equal(mds_file_encode(&f, buf, sizeof(buf)), -EINVAL);
    strcpy(f.name, "x");
    f.type = (mds_file_type)9;
    assert_int_equal(mds_file_encode(&f, buf, sizeof(buf)), -EINVAL);
    f.type = MDS_FILE_DIR;
    f.owner[0] = '\0';
    assert_int_equal(mds_file_encode(&f, buf, sizeof(buf)), -EINVAL);
    strcpy(f.owner, "o");
    assert_int_equal(mds_file_encode(&f, buf, 10), -ENOSPC);
}

static void test_segment_record(void **state)
{
    static mds_segment s, g;
    static uint8_t buf[MDS_SEG_REC_LEN(MDS_NS_MAX_CHUNKS_PER_SEGMENT)];
    char err[256];
    s.file_id = 9;
    s.offset = 3 * GiB;
    s.pool_id = 1;
    s.nchunks = 64;
    for (uint32_t i = 0; i < 64; i++) {
        s.chunks[i].copyset_id = i % 7 + 1;
        s.chunks[i].chunk_id = 1000 + i;
    }
    int n = mds_segment_encode(&s, buf, sizeof(buf));
    assert_int_equal(n, 32 + 64 * 12 + 4);
    assert_int_equal(mds_segment_decode(buf, (size_t)n, &g, err, sizeof(err)), 0);
    assert_int_equal(g.file_id, 9);
    assert_int_equal(g.offset, 3 * GiB);
    assert_int_equal(g.nchunks, 64);
    assert_memory_equal(g.chunks, s.chunks, 64 * sizeof(mds_chunk_loc));
    buf[100] ^= 1;
    assert_int_equal(mds_segment_decode(buf, (size_t)n, &g, err, sizeof(err)),
                     CURVE_ERR_CORRUPT);
    assert_non_null(strstr(err, "crc"));
    buf[100] ^= 1;
    assert_int_equal(mds_segment_decode(buf, (size_t)n - 12, &g, err, sizeof(err)),
                     CURVE_ERR_CORRUPT);
    s.nchunks = 0;
    assert_int_equal(mds_segment_encode(&s, buf, sizeof(buf)), -EINVAL);
}

/* Open modes and opener tokens (docs/sessions.md). */
static void test_open_modes(void **state)
{
    char err[256];
    mds_open_mode m;
    assert_int_equal(mds_ns_open_mode(false, false, &m, err, sizeof(err)), 0);
    assert_int_equal(m, MDS_OPEN_SHARED);
    assert_string_equal(mds_ns_open_mode_name(m), "shared");
    assert_int_equal(mds_ns_open_mode(true, false, &m, err, sizeof(err)), 0);
    assert_int_equal(m, MDS_OPEN_EXCLUSIVE);
    assert_string_equal(mds_ns_open_mode_name(m), "exclusive");
    assert_int_equal(mds_ns_open_mode(false, true, &m, err, sizeof(err)), 0);
    assert_int_equal(m, MDS_OPEN_READONLY);
    assert_string_equal(mds_ns_open_mode_name(m), "readonly");
    assert_int_equal(mds_ns_open_mode(true, true, &m, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "read-only"));

    assert_int_equal(mds_ns_check_token(NULL, err, sizeof(err)), 0);
    assert_int_equal(mds_ns_check_token("", err, sizeof(err)), 0);
    assert_int_equal(mds_ns_check_token("0123abcdEF_-", err, sizeof(err)), 0);
    assert_int_equal(mds_ns_check_token("a b", err, sizeof(err)), -EINVAL);
    assert_int_equal(mds_ns_check_token("a/b", err, sizeof(err)), -EINVAL);
    char *t64 = repeat('t', 64), *t65 = repeat('t', 65);
    assert_int_equal(mds_ns_check_token(t64, err, sizeof(err)), 0);
    assert_int_equal(mds_ns_check_token(t65, err, sizeof(err)), -EINVAL);
    free(t64);
    free(t65);
}

/* The writer record: round trip, every single-byte corruption detected, bounds. */
static void test_writer_record(void **state)
{
    char buf[MDS_WRITER_REC_MAX], tok[MDS_SESSION_TOKEN_MAX + 1];
    int64_t lease = 0;
    int n = mds_ns_writer_encode(0x694d8a2b1c3e4f50LL, "abc123", buf, sizeof(buf));
    assert_true(n > 0 && (size_t)n < sizeof(buf));
    assert_int_equal(strncmp(buf, "w1 694d8a2b1c3e4f50 abc123 ", 27), 0);
    assert_int_equal(mds_ns_writer_decode(buf, (size_t)n, &lease, tok), 0);
    assert_true(lease == 0x694d8a2b1c3e4f50LL);
    assert_string_equal(tok, "abc123");
    for (int i = 0; i < n; i++) {
        char c[MDS_WRITER_REC_MAX];
        memcpy(c, buf, (size_t)n);
        c[i] ^= 0x01;
        if (mds_ns_writer_decode(c, (size_t)n, &lease, tok) != CURVE_ERR_CORRUPT)
            fail_msg("corruption at byte %d not detected", i);
    }
    assert_int_equal(mds_ns_writer_decode(buf, (size_t)n - 1, &lease, tok), CURVE_ERR_CORRUPT);
    assert_int_equal(mds_ns_writer_decode(buf, 5, &lease, tok), CURVE_ERR_CORRUPT);
    /* empty token, longest token */
    n = mds_ns_writer_encode(7, NULL, buf, sizeof(buf));
    assert_int_equal(mds_ns_writer_decode(buf, (size_t)n, &lease, tok), 0);
    assert_true(lease == 7 && tok[0] == '\0');
    char *t64 = repeat('z', 64);
    n = mds_ns_writer_encode(9, t64, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(mds_ns_writer_decode(buf, (size_t)n, &lease, tok), 0);
    assert_string_equal(tok, t64);
    assert_int_equal(mds_ns_writer_encode(9, t64, buf, 40), -ENOSPC);
    free(t64);
    assert_int_equal(mds_ns_writer_encode(0, "x", buf, sizeof(buf)), -EINVAL);
    assert_int_equal(mds_ns_writer_encode(1, "x y", buf, sizeof(buf)), -EINVAL);
}

/* Who may take over a current writer record without `exclusive`: only the same opener (its
 * own lost attempt); anyone else gets -EBUSY (return 0). */
static void test_writer_conflict(void **state)
{
    char buf[MDS_WRITER_REC_MAX], err[256];
    int64_t orphan = -1;
    int n = mds_ns_writer_encode(100, "tokA", buf, sizeof(buf));
    /* same opener, other lease: its own orphan */
    assert_int_equal(mds_ns_writer_conflict(buf, (size_t)n, "tokA", 200, &orphan, err,
                                            sizeof(err)), 1);
    assert_true(orphan == 100);
    /* another opener: busy, the message names the holder */
    assert_int_equal(mds_ns_writer_conflict(buf, (size_t)n, "tokB", 200, &orphan, err,
                                            sizeof(err)), 0);
    assert_true(orphan == 0);
    assert_non_null(strstr(err, "0000000000000064"));
    /* no token (an old client, the tool) never matches, not even an empty one */
    assert_int_equal(mds_ns_writer_conflict(buf, (size_t)n, "", 200, &orphan, err,
                                            sizeof(err)), 0);
    assert_int_equal(mds_ns_writer_conflict(buf, (size_t)n, NULL, 200, &orphan, err,
                                            sizeof(err)), 0);
    n = mds_ns_writer_encode(100, "", buf, sizeof(buf));
    assert_int_equal(mds_ns_writer_conflict(buf, (size_t)n, "", 200, &orphan, err,
                                            sizeof(err)), 0);
    /* the same lease is not an orphan */
    n = mds_ns_writer_encode(100, "tokA", buf, sizeof(buf));
    assert_int_equal(mds_ns_writer_conflict(buf, (size_t)n, "tokA", 100, &orphan, err,
                                            sizeof(err)), 0);
    /* a corrupt record counts as held */
    buf[4] ^= 1;
    assert_int_equal(mds_ns_writer_conflict(buf, (size_t)n, "tokA", 200, &orphan, err,
                                            sizeof(err)), CURVE_ERR_CORRUPT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),         cmocka_unit_test(test_reserved),
        cmocka_unit_test(test_paths),         cmocka_unit_test(test_rename_rules),
        cmocka_unit_test(test_recycle_name),  cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_idalloc),       cmocka_unit_test(test_segment_alloc),
        cmocka_unit_test(test_file_record),   cmocka_unit_test(test_segment_record),
        cmocka_unit_test(test_choose_pool),   cmocka_unit_test(test_owner),
        cmocka_unit_test(test_open_modes),    cmocka_unit_test(test_writer_record),
        cmocka_unit_test(test_writer_conflict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
