/* Unit tests of the `curve` CLI's pure parts: argument parsing and validation, command lookup,
 * sizes/durations/paths, exit codes, table and JSON rendering, protobuf -> JSON. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "curve/errors.h"
#include "mds.pb-c.h"
#include "tools/cli.h"
#include "tools/cli_mds.h"

json_t *cli_status_json(const Curve__Mds__ClusterStatusResponse *s,
                        const Curve__Mds__ListTopologyResponse *t);
json_t *cli_cs_rows(const json_t *chunkservers, bool table);

/* Parses a space-separated command line (no quoting). */
static int parse(const char *line, struct cli_opts *o, char *err, size_t errlen)
{
    static char buf[1024];
    static char *argv[64];
    snprintf(buf, sizeof(buf), "%s", line);
    int argc = 0;
    for (char *t = strtok(buf, " "); t != NULL && argc < 64; t = strtok(NULL, " "))
        argv[argc++] = t;
    return cli_parse(argc, argv, o, err, errlen);
}

static int lookup(const char *line, const struct cli_cmd **cmd, const char ***pos, int *npos,
                  char *err, size_t errlen)
{
    static struct cli_opts o;
    int r = parse(line, &o, err, errlen);
    if (r != 0)
        return r;
    return cli_lookup(&o, cmd, pos, npos, err, errlen);
}

static void test_parse_flags(void **state)
{
    struct cli_opts o;
    char err[256];
    unsetenv("CURVE_MDS_ADDRS");
    unsetenv("CURVE_CONF");
    assert_int_equal(parse("bs create volume /v --size 10g --owner=bob --format=json "
                           "--mds-addrs=127.0.0.1:1,127.0.0.1:2 --timeout=250ms",
                           &o, err, sizeof(err)),
                     0);
    assert_int_equal(o.nwords, 4);
    assert_string_equal(o.words[3], "/v");
    assert_int_equal(o.size, 10ull << 30);
    assert_string_equal(o.owner, "bob");
    assert_int_equal(o.format, CLI_FMT_JSON);
    assert_string_equal(o.mds_addrs, "127.0.0.1:1,127.0.0.1:2");
    assert_int_equal(o.timeout_ms, 250);
    assert_true(o.flags_seen & CLI_F_SIZE);
    assert_true(o.flags_seen & CLI_F_OWNER);

    assert_int_equal(parse("bs delete volume --force /v --json", &o, err, sizeof(err)), 0);
    assert_true(o.force);
    assert_int_equal(o.format, CLI_FMT_JSON);
    assert_int_equal(o.nwords, 4);
    assert_string_equal(o.words[3], "/v");
    assert_int_equal(o.timeout_ms, CLI_TIMEOUT_MS);

    setenv("CURVE_MDS_ADDRS", "10.0.0.1:6700", 1);
    assert_int_equal(parse("bs status", &o, err, sizeof(err)), 0);
    assert_string_equal(o.mds_addrs, "10.0.0.1:6700");
    unsetenv("CURVE_MDS_ADDRS");
    /* "--" ends the options: "-x" is then a word */
    assert_int_equal(parse("bs stat volume -- --weird", &o, err, sizeof(err)), 0);
    assert_string_equal(o.words[3], "--weird");
}

static void test_parse_errors(void **state)
{
    struct cli_opts o;
    char err[256];
    static const struct {
        const char *line, *msg;
    } cases[] = {
        {"bs status --bogus", "unknown option '--bogus'"},
        {"bs status -x", "unknown option '-x'"},
        {"bs status --format=xml", "--format=xml"},
        {"bs status --format", "needs a value"},
        {"bs create volume /v --size=ten", "--size=ten"},
        {"bs create volume /v --size=99999999999999999999", "--size"},
        {"bs create volume /v --size=17179869184g", "too large"},
        {"bs status --timeout=0", "--timeout=0"},
        {"bs status --timeout=5parsecs", "--timeout=5parsecs"},
        {"bs list copyset --pool=0", "--pool"},
        {"bs list copyset --chunkserver=-1", "--chunkserver"},
        {"bs delete volume /v --force=yes", "takes no value"},
        {"bs recover volume /v --id=abc", "--id=abc"},
        {"cluster up --wait=forever", "--wait=forever"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        int r = parse(cases[i].line, &o, err, sizeof(err));
        if (r != CLI_EXIT_USAGE || strstr(err, cases[i].msg) == NULL)
            fail_msg("'%s': rc %d err '%s', expected usage error with '%s'", cases[i].line, r, err,
                     cases[i].msg);
    }
}

static void test_lookup(void **state)
{
    const struct cli_cmd *cmd;
    const char **pos;
    int npos;
    char err[256];
    assert_int_equal(lookup("bs create volume /v --size=1g", &cmd, &pos, &npos, err, sizeof(err)),
                     0);
    assert_ptr_equal(cmd->fn, cli_bs_create);
    assert_int_equal(npos, 1);
    assert_string_equal(pos[0], "/v");
    assert_int_equal(lookup("bs list volume", &cmd, &pos, &npos, err, sizeof(err)), 0);
    assert_ptr_equal(cmd->fn, cli_bs_list_volume);
    assert_int_equal(npos, 0);
    assert_int_equal(lookup("bs list copyset --pool=2", &cmd, &pos, &npos, err, sizeof(err)), 0);
    assert_ptr_equal(cmd->fn, cli_bs_list_copyset);
    assert_int_equal(lookup("bs copyset status 1 7", &cmd, &pos, &npos, err, sizeof(err)), 0);
    assert_ptr_equal(cmd->fn, cli_bs_copyset_status);
    assert_int_equal(npos, 2);
    assert_int_equal(lookup("bs mkdir /d", &cmd, &pos, &npos, err, sizeof(err)), 0);
    assert_ptr_equal(cmd->fn, cli_bs_mkdir);
    assert_int_equal(lookup("cluster up --dir=/tmp/x", &cmd, &pos, &npos, err, sizeof(err)), 0);
    assert_ptr_equal(cmd->fn, cli_cluster_up);

    static const struct {
        const char *line, *msg;
        bool cmd_known;
    } bad[] = {
        {"", "no command", false},
        {"fs create", "unknown command group 'fs'", false},
        {"bs", "needs a command", false},
        {"bs frobnicate", "unknown command 'bs frobnicate'", false},
        {"bs list", "needs an object", false},
        {"bs list nothing", "unknown object 'nothing'", false},
        {"bs create volume", "missing argument", true},
        {"bs create volume /v", "--size is required", true},
        {"bs create volume /v /w --size=1g", "unexpected argument '/w'", true},
        {"bs stat volume /v --size=1g", "--size not accepted", true},
        {"bs rename volume /a", "missing argument", true},
        {"bs copyset status 1", "missing argument", true},
        {"cluster down --wait=5s", "--wait not accepted", true},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        cmd = NULL;
        int r = lookup(bad[i].line, &cmd, &pos, &npos, err, sizeof(err));
        if (r != CLI_EXIT_USAGE || strstr(err, bad[i].msg) == NULL ||
            (cmd != NULL) != bad[i].cmd_known)
            fail_msg("'%s': rc %d err '%s' cmd %p, expected '%s'", bad[i].line, r, err, (void *)cmd,
                     bad[i].msg);
    }
}

static void test_sizes_durations(void **state)
{
    uint64_t v;
    assert_int_equal(cli_parse_size("4096", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(cli_parse_size("64m", &v), 0);
    assert_int_equal(v, 64ull << 20);
    assert_int_equal(cli_parse_size("10GiB", &v), 0);
    assert_int_equal(v, 10ull << 30);
    assert_int_equal(cli_parse_size("2T", &v), 0);
    assert_int_equal(v, 2ull << 40);
    assert_int_equal(cli_parse_size("1kb", &v), 0);
    assert_int_equal(v, 1024);
    assert_int_equal(cli_parse_size("1.5g", &v), -EINVAL);
    assert_int_equal(cli_parse_size("-1", &v), -EINVAL);
    assert_int_equal(cli_parse_size("", &v), -EINVAL);
    assert_int_equal(cli_parse_size("1x", &v), -EINVAL);
    assert_int_equal(cli_parse_size("1gg", &v), -EINVAL);
    assert_int_equal(cli_parse_size("16384p", &v), -ERANGE);
    assert_int_equal(cli_parse_size("18446744073709551616", &v), -ERANGE);
    assert_int_equal(cli_parse_duration_ms("250ms", &v), 0);
    assert_int_equal(v, 250);
    assert_int_equal(cli_parse_duration_ms("5", &v), 0);
    assert_int_equal(v, 5000);
    assert_int_equal(cli_parse_duration_ms("2m", &v), 0);
    assert_int_equal(v, 120000);
    assert_int_equal(cli_parse_duration_ms("1h", &v), 0);
    assert_int_equal(v, 3600000);
    assert_int_equal(cli_parse_duration_ms("1d", &v), -EINVAL);
    assert_int_equal(cli_parse_uint("42", 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(cli_parse_uint("101", 100, &v), -ERANGE);
    assert_int_equal(cli_parse_uint("4x", 100, &v), -EINVAL);
    assert_int_equal(cli_parse_uint("+4", 100, &v), -EINVAL);
}

static void test_paths(void **state)
{
    char err[256];
    assert_int_equal(cli_check_path("/", err, sizeof(err)), 0);
    assert_int_equal(cli_check_path("/a/b", err, sizeof(err)), 0);
    assert_int_equal(cli_check_path("/dir/", err, sizeof(err)), 0);
    assert_int_equal(cli_check_path("a/b", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "absolute"));
    assert_int_equal(cli_check_path("/a//b", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "empty component"));
    assert_int_equal(cli_check_path("/a/../b", err, sizeof(err)), -EINVAL);
    assert_int_equal(cli_check_path("/.", err, sizeof(err)), -EINVAL);
    char longname[300];
    memset(longname, 'x', sizeof(longname));
    longname[0] = '/';
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(cli_check_path(longname, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "longer than 255"));
}

static void test_exit_codes(void **state)
{
    assert_int_equal(cli_exit_code(0), CLI_EXIT_OK);
    assert_int_equal(cli_exit_code(CURVE_ERR_NOT_FOUND), CLI_EXIT_NOT_FOUND);
    assert_int_equal(cli_exit_code(CURVE_ERR_TIMEOUT), CLI_EXIT_UNAVAILABLE);
    assert_int_equal(cli_exit_code(CURVE_ERR_RPC_CONN), CLI_EXIT_UNAVAILABLE);
    assert_int_equal(cli_exit_code(CURVE_ERR_NOT_LEADER), CLI_EXIT_UNAVAILABLE);
    assert_int_equal(cli_exit_code(CURVE_ERR_EXISTS), CLI_EXIT_FAIL);
    assert_int_equal(cli_exit_code(CURVE_ERR_BAD_SIZE), CLI_EXIT_FAIL);
    assert_int_equal(cli_exit_code(-EBUSY), CLI_EXIT_FAIL);
    assert_int_equal(cli_exit_code(CURVE_ERR_BUSY), CLI_EXIT_FAIL); /* reachable, but busy */
    assert_int_equal(cli_exit_code(-12345), CLI_EXIT_FAIL);
}

static void test_mds_addrs(void **state)
{
    char addrs[CLI_MDS_ADDRS_MAX][CLI_MDS_ADDR_LEN];
    char err[256];
    assert_int_equal(cli_mds_parse_addrs("127.0.0.1:6700", addrs, 16, err, sizeof(err)), 1);
    assert_int_equal(cli_mds_parse_addrs("a:1,b:2,c:65535", addrs, 16, err, sizeof(err)), 3);
    assert_string_equal(addrs[2], "c:65535");
    assert_int_equal(cli_mds_parse_addrs("a:1,,b:2", addrs, 16, err, sizeof(err)), -EINVAL);
    assert_int_equal(cli_mds_parse_addrs("a", addrs, 16, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "ip:port"));
    assert_int_equal(cli_mds_parse_addrs("a:0", addrs, 16, err, sizeof(err)), -EINVAL);
    assert_int_equal(cli_mds_parse_addrs("a:70000", addrs, 16, err, sizeof(err)), -EINVAL);
    assert_int_equal(cli_mds_parse_addrs(":5", addrs, 16, err, sizeof(err)), -EINVAL);
    assert_int_equal(cli_mds_parse_addrs("a:1,b:2,c:3", addrs, 2, err, sizeof(err)), -EINVAL);
    assert_int_equal(cli_mds_parse_addrs("", addrs, 2, err, sizeof(err)), -EINVAL);
}

static char *render(void (*fn)(FILE *, void *), void *arg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    fn(f, arg);
    fclose(f);
    return buf;
}

static const struct cli_col test_cols[] = {
    {"name", "NAME", CLI_COL_STR},
    {"size", "SIZE", CLI_COL_BYTES},
    {"peers", "PEERS", CLI_COL_LIST},
};

static void render_rows_table(FILE *f, void *rows)
{
    cli_render_table(f, CLI_FMT_TABLE, rows, test_cols, 3);
}
static void render_rows_json(FILE *f, void *rows)
{
    cli_render_table(f, CLI_FMT_JSON, rows, test_cols, 3);
}

static void test_render_table(void **state)
{
    json_t *rows = json_pack("[{s:s, s:i, s:[i,i,i]}, {s:s, s:I, s:[]}]", "name", "vol1", "size",
                             4096, "peers", 1, 2, 3, "name", "a-much-longer-name", "size",
                             (json_int_t)(10ll << 30), "peers");
    assert_non_null(rows);
    char *out = render(render_rows_table, rows);
    /* header padded to the widest cell; bytes humanized and right-aligned; lists joined */
    const char *expect = "NAME                  SIZE  PEERS\n"
                         "vol1                 4 KiB  1,2,3\n"
                         "a-much-longer-name  10 GiB  -\n";
    assert_string_equal(out, expect);
    free(out);
    out = render(render_rows_json, rows);
    json_error_t je;
    json_t *back = json_loads(out, 0, &je);
    assert_non_null(back);
    assert_true(json_equal(back, rows)); /* JSON mode prints the raw values */
    json_decref(back);
    free(out);
    json_decref(rows);

    json_t *empty = json_array();
    out = render(render_rows_table, empty);
    assert_string_equal(out, "NAME  SIZE  PEERS\n(none)\n");
    free(out);
    json_t *frac = json_pack("[{s:s, s:i, s:[]}]", "name", "x", "size", 1536, "peers");
    out = render(render_rows_table, frac);
    assert_string_equal(out, "NAME     SIZE  PEERS\nx     1.5 KiB  -\n");
    free(out);
    json_decref(frac);
    json_decref(empty);
}

static void render_obj(FILE *f, void *obj)
{
    cli_render_object(f, CLI_FMT_TABLE, obj, NULL, 0);
}

static void test_render_object_and_cells(void **state)
{
    json_t *obj = json_pack("{s:s, s:b, s:i}", "path", "/v", "healthy", 1, "n", 3);
    char *out = render(render_obj, obj);
    assert_string_equal(out, "path     /v\nhealthy  yes\nn        3\n");
    free(out);
    json_decref(obj);

    char buf[64];
    cli_bytes(0, buf, sizeof(buf));
    assert_string_equal(buf, "0 B");
    cli_bytes(1023, buf, sizeof(buf));
    assert_string_equal(buf, "1023 B");
    cli_bytes(1536, buf, sizeof(buf));
    assert_string_equal(buf, "1.5 KiB");
    cli_bytes(64ull << 20, buf, sizeof(buf));
    assert_string_equal(buf, "64 MiB");
    cli_bytes(20ull << 40, buf, sizeof(buf));
    assert_string_equal(buf, "20 TiB");
    json_t *t = json_integer(1764132001000000000ll); /* 2025-11-26 04:40:01 UTC */
    cli_cell(t, CLI_COL_TIME_NS, buf, sizeof(buf));
    assert_string_equal(buf, "2025-11-26 04:40:01");
    json_decref(t);
    cli_cell(NULL, CLI_COL_STR, buf, sizeof(buf));
    assert_string_equal(buf, "-");
}

static void test_pb_json(void **state)
{
    Curve__Mds__CopysetInfo ci = CURVE__MDS__COPYSET_INFO__INIT;
    uint32_t peers[] = {1, 2, 3};
    char *addrs[] = {"127.0.0.1:1:0", "127.0.0.2:2:0", "127.0.0.3:3:0"};
    ci.logical_pool_id = 1;
    ci.copyset_id = 7;
    ci.n_peers = 3;
    ci.peers = peers;
    ci.n_peer_addrs = 3;
    ci.peer_addrs = addrs;
    ci.has_leader = 1;
    ci.leader = 2;
    ci.epoch = 5;
    ci.term = 9;
    ci.healthy = 1;
    json_t *j = cli_pb_json(&ci.base);
    assert_non_null(j);
    json_t *expect =
        json_pack("{s:i, s:i, s:[i,i,i], s:[s,s,s], s:i, s:i, s:i, s:b}", "logical_pool_id", 1,
                  "copyset_id", 7, "peers", 1, 2, 3, "peer_addrs", addrs[0], addrs[1], addrs[2],
                  "leader", 2, "epoch", 5, "term", 9, "healthy", 1);
    /* unset optional fields (leader_addr, operator) are omitted */
    if (!json_equal(j, expect)) {
        char *s = json_dumps(j, 0);
        fail_msg("got %s", s);
    }
    json_decref(j);
    json_decref(expect);

    Curve__Mds__FileInfo fi = CURVE__MDS__FILE_INFO__INIT;
    fi.name = "v";
    fi.owner = "o";
    fi.type = CURVE__MDS__FILE_TYPE__FILE_VOLUME;
    j = cli_pb_json(&fi.base);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "FILE_VOLUME");
    assert_null(json_object_get(j, "status"));
    json_decref(j);
}

static void test_status_health(void **state)
{
    Curve__Mds__ClusterStatusResponse s = CURVE__MDS__CLUSTER_STATUS_RESPONSE__INIT;
    Curve__Mds__ChunkServerInfo cs = CURVE__MDS__CHUNK_SERVER_INFO__INIT;
    Curve__Mds__ChunkServerInfo *csl[] = {&cs, &cs};
    Curve__Mds__ListTopologyResponse t = CURVE__MDS__LIST_TOPOLOGY_RESPONSE__INIT;
    cs.capacity = 100;
    cs.used = 10;
    t.n_chunkservers = 2;
    t.chunkservers = csl;
    s.leader = "127.0.0.1:6700";
    s.etcd_ok = 1;
    s.chunkservers = 3;
    s.online = 3;
    s.copysets = 24;
    s.healthy_copysets = 24;
    json_t *j = cli_status_json(&s, &t);
    assert_true(json_is_true(json_object_get(j, "healthy")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "space"), "capacity")),
                     200);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "space"), "used")), 20);
    json_decref(j);
    s.healthy_copysets = 23;
    s.degraded_copysets = 1;
    j = cli_status_json(&s, &t);
    assert_true(json_is_false(json_object_get(j, "healthy")));
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "copysets"), "degraded")), 1);
    json_decref(j);
    s.healthy_copysets = 24;
    s.online = 2;
    s.offline = 1;
    j = cli_status_json(&s, &t);
    assert_true(json_is_false(json_object_get(j, "healthy")));
    json_decref(j);
    s.online = 3;
    s.offline = 0;
    s.etcd_ok = 0;
    j = cli_status_json(&s, NULL);
    assert_true(json_is_false(json_object_get(j, "healthy")));
    json_decref(j);
}

/* A chunkserver the MDS marked slow: the ListTopology field reaches the JSON rows as "slow"
 * and the table's STATE column as "<state>,slow"; the status counts it but stays healthy. */
static void test_slow_chunkservers(void **state)
{
    Curve__Mds__ChunkServerInfo a = CURVE__MDS__CHUNK_SERVER_INFO__INIT,
                                b = CURVE__MDS__CHUNK_SERVER_INFO__INIT,
                                old = CURVE__MDS__CHUNK_SERVER_INFO__INIT;
    a.id = 1, b.id = 2, old.id = 3;
    a.state = b.state = old.state = "online";
    a.host = b.host = old.host = "127.0.0.1";
    a.has_slow = b.has_slow = 1;
    b.slow = 1; /* old: an MDS that does not send the field */
    Curve__Mds__ChunkServerInfo *csl[] = {&a, &b, &old};
    Curve__Mds__ListTopologyResponse t = CURVE__MDS__LIST_TOPOLOGY_RESPONSE__INIT;
    t.n_chunkservers = 3;
    t.chunkservers = csl;
    json_t *all = cli_pb_json(&t.base);
    json_t *cs = json_object_get(all, "chunkservers");
    assert_true(json_is_true(json_object_get(json_array_get(cs, 1), "slow")));
    json_t *rows = cli_cs_rows(cs, false);
    assert_int_equal(json_array_size(rows), 3);
    assert_true(json_is_false(json_object_get(json_array_get(rows, 0), "slow")));
    assert_true(json_is_true(json_object_get(json_array_get(rows, 1), "slow")));
    assert_true(json_is_false(json_object_get(json_array_get(rows, 2), "slow")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 1), "state")),
                        "online");
    json_decref(rows);
    rows = cli_cs_rows(cs, true);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "state")),
                        "online");
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 1), "state")),
                        "online,slow");
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 2), "state")),
                        "online");
    json_decref(rows);
    json_decref(all);

    Curve__Mds__ClusterStatusResponse s = CURVE__MDS__CLUSTER_STATUS_RESPONSE__INIT;
    s.leader = "127.0.0.1:6700";
    s.etcd_ok = 1;
    s.chunkservers = s.online = 3;
    s.copysets = s.healthy_copysets = 6;
    s.has_slow_chunkservers = 1;
    s.slow_chunkservers = 2; /* the status answer wins over the topology */
    json_t *j = cli_status_json(&s, &t);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "chunkservers"), "slow")),
                     2);
    assert_true(json_is_true(json_object_get(j, "healthy")));
    json_decref(j);
    s.has_slow_chunkservers = 0; /* an older MDS: counted from the topology */
    j = cli_status_json(&s, &t);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "chunkservers"), "slow")),
                     1);
    json_decref(j);
    j = cli_status_json(&s, NULL);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "chunkservers"), "slow")),
                     0);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_flags),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_sizes_durations),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_exit_codes),
        cmocka_unit_test(test_mds_addrs),
        cmocka_unit_test(test_render_table),
        cmocka_unit_test(test_render_object_and_cells),
        cmocka_unit_test(test_pb_json),
        cmocka_unit_test(test_status_health),
        cmocka_unit_test(test_slow_chunkservers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
