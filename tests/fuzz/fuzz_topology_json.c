/*
 * libFuzzer target for the MDS core decoders: the topology description (mds_topo_apply_json),
 * the per-record JSON stored in etcd (mds_topo_load_record), and the binary file / segment
 * records (mds_file_decode, mds_segment_decode). The first byte picks the decoder.
 * Nothing may crash, leak or trip a sanitizer; accepted input must re-encode consistently.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/assert.h"
#include "mds/namespace_rules.h"
#include "mds/topology.h"

static const char base_desc[] =
    "{\"physical_pools\":[{\"name\":\"pp1\"}],"
    "\"zones\":[{\"name\":\"z1\",\"physical_pool\":\"pp1\"}],"
    "\"servers\":[{\"name\":\"s1\",\"zone\":\"z1\",\"host\":\"127.0.0.1\"}],"
    "\"logical_pools\":[{\"name\":\"lp1\",\"physical_pool\":\"pp1\",\"replicas\":3,"
    "\"copysets\":3}]}";

static void fuzz_desc(const uint8_t *data, size_t size)
{
    mds_topology t;
    char err[256];
    size_t changed = 0;
    mds_topo_init(&t);
    /* on top of an existing topology, so merges and conflicts are exercised too */
    CURVE_ASSERT(mds_topo_apply_json(&t, base_desc, strlen(base_desc), NULL, err, sizeof(err)) ==
                 0);
    size_t before = t.ppools.n + t.zones.n + t.servers.n + t.lpools.n;
    int rc = mds_topo_apply_json(&t, (const char *)data, size, &changed, err, sizeof(err));
    size_t after = t.ppools.n + t.zones.n + t.servers.n + t.lpools.n;
    if (rc == 0)
        CURVE_ASSERT(after == before + changed);
    else
        CURVE_ASSERT(after == before); /* all or nothing */
    mds_topo_destroy(&t);
}

/* The input spliced into a description skeleton, so the fuzzer reaches the per-item checks
 * without having to invent the surrounding JSON first. */
static void fuzz_desc_item(const uint8_t *data, size_t size)
{
    static const char *const pre[] = {
        "{\"physical_pools\":[",
        "{\"zones\":[{\"name\":\"z2\",\"physical_pool\":\"pp1\"},",
        "{\"servers\":[{\"name\":\"s2\",\"zone\":\"z1\",\"host\":\"h2\"},",
        "{\"logical_pools\":[",
    };
    if (size == 0)
        return;
    const char *p = pre[data[0] % 4];
    size_t np = strlen(p), total = np + (size - 1) + 2;
    char *buf = malloc(total);
    CURVE_ASSERT(buf != NULL);
    memcpy(buf, p, np);
    memcpy(buf + np, data + 1, size - 1);
    memcpy(buf + np + size - 1, "]}", 2);
    fuzz_desc((const uint8_t *)buf, total);
    free(buf);
}

static void fuzz_record(mds_topo_kind k, const uint8_t *data, size_t size)
{
    mds_topology t;
    char err[256];
    mds_topo_init(&t);
    CURVE_ASSERT(mds_topo_apply_json(&t, base_desc, strlen(base_desc), NULL, err, sizeof(err)) ==
                 0);
    (void)mds_topo_load_record(&t, k, (const char *)data, size, err, sizeof(err));
    mds_topo_destroy(&t);
}

static void fuzz_file(const uint8_t *data, size_t size)
{
    mds_file f;
    uint8_t buf[MDS_FILE_REC_MAX];
    char err[256];
    if (mds_file_decode(data, size, &f, err, sizeof(err)) != 0)
        return;
    int n = mds_file_encode(&f, buf, sizeof(buf));
    CURVE_ASSERT(n > 0 && (size_t)n == size && memcmp(buf, data, size) == 0);
}

static void fuzz_segment(const uint8_t *data, size_t size)
{
    static mds_segment s;
    char err[256];
    if (mds_segment_decode(data, size, &s, err, sizeof(err)) != 0)
        return;
    uint8_t *buf = malloc(size);
    CURVE_ASSERT(buf != NULL);
    int n = mds_segment_encode(&s, buf, size);
    CURVE_ASSERT(n > 0 && (size_t)n == size && memcmp(buf, data, size) == 0);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t sel = data[0] % (MDS_TOPO_NKINDS + 4);
    data++;
    size--;
    if (sel == 0)
        fuzz_desc(data, size);
    else if (sel <= MDS_TOPO_NKINDS)
        fuzz_record((mds_topo_kind)(sel - 1), data, size);
    else if (sel == MDS_TOPO_NKINDS + 1)
        fuzz_file(data, size);
    else if (sel == MDS_TOPO_NKINDS + 2)
        fuzz_segment(data, size);
    else
        fuzz_desc_item(data, size);
    return 0;
}
