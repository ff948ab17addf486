#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/config.h"
#include "curve/errors.h"

static const curve_cfg_def defs[] = {
    {"name", CURVE_CFG_STRING, "default-name", 0, 0, "a name"},
    {"port", CURVE_CFG_INT, "8200", 1, 65535, "listen port"},
    {"chunk_size", CURVE_CFG_INT, "16m", 0, 0, "chunk size"},
    {"debug", CURVE_CFG_BOOL, "false", 0, 0, "debug mode"},
    {"ratio", CURVE_CFG_DOUBLE, "0.5", 0, 0, "a ratio"},
    {"raft.election_ms", CURVE_CFG_DURATION_MS, "1s", 100, 60000, "election timeout"},
    {"data_dir", CURVE_CFG_STRING, NULL, 0, 0, "data directory"},
};
#define NDEFS (sizeof(defs) / sizeof(defs[0]))

static char tmpdir[64];

static int setup(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/curve_cfg_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *content)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static curve_config *mk(void)
{
    curve_config *cfg = NULL;
    char err[256] = "";
    int rc = curve_config_new(defs, NDEFS, &cfg, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    return cfg;
}

static void test_defaults(void **state)
{
    curve_config *cfg = mk();
    assert_string_equal(curve_config_str(cfg, "name"), "default-name");
    assert_int_equal(curve_config_int(cfg, "port"), 8200);
    assert_int_equal(curve_config_int(cfg, "chunk_size"), 16 << 20);
    assert_false(curve_config_bool(cfg, "debug"));
    assert_true(curve_config_double(cfg, "ratio") == 0.5);
    assert_int_equal(curve_config_duration_ms(cfg, "raft.election_ms"), 1000);
    assert_false(curve_config_is_set(cfg, "port"));
    char err[256] = "";
    assert_int_equal(curve_config_check_required(cfg, err, sizeof(err)), CURVE_ERR_CONFIG);
    assert_non_null(strstr(err, "data_dir"));
    curve_config_free(cfg);
}

static void test_file_load(void **state)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/a.conf", tmpdir);
    write_file(path, "# a comment\n"
                     "\n"
                     "  name =  my node  \n"
                     "port=9000 # inline comment\n"
                     "debug = YES\r\n"
                     "ratio = -2.25\n"
                     "raft.election_ms = 30s\n"
                     "data_dir = /data/x#y\n"
                     "chunk_size = 4MiB");
    curve_config *cfg = mk();
    char err[256] = "";
    assert_int_equal(curve_config_load_file(cfg, path, err, sizeof(err)), 0);
    assert_string_equal(curve_config_str(cfg, "name"), "my node");
    assert_int_equal(curve_config_int(cfg, "port"), 9000);
    assert_true(curve_config_bool(cfg, "debug"));
    assert_true(curve_config_double(cfg, "ratio") == -2.25);
    assert_int_equal(curve_config_duration_ms(cfg, "raft.election_ms"), 30000);
    assert_string_equal(curve_config_str(cfg, "data_dir"), "/data/x#y");
    assert_int_equal(curve_config_int(cfg, "chunk_size"), 4 << 20);
    assert_true(curve_config_is_set(cfg, "port"));
    assert_int_equal(curve_config_check_required(cfg, err, sizeof(err)), 0);
    curve_config_free(cfg);
}

/* Loads `content` and checks the error names `want1` and `want2`. */
static void expect_file_error(const char *content, const char *want1, const char *want2)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/bad.conf", tmpdir);
    write_file(path, content);
    curve_config *cfg = mk();
    char err[256] = "";
    assert_int_equal(curve_config_load_file(cfg, path, err, sizeof(err)), CURVE_ERR_CONFIG);
    if (!strstr(err, want1) || (want2 && !strstr(err, want2)))
        fprintf(stderr, "error text: %s\n", err);
    assert_non_null(strstr(err, want1));
    if (want2)
        assert_non_null(strstr(err, want2));
    curve_config_free(cfg);
}

static void test_file_errors(void **state)
{
    char loc[160];
    snprintf(loc, sizeof(loc), "%s/bad.conf:3:", tmpdir);
    expect_file_error("port=1\n\nraft.electon_ms = 5\n", loc, "unknown key 'raft.electon_ms'");
    snprintf(loc, sizeof(loc), "%s/bad.conf:2:", tmpdir);
    expect_file_error("# x\nport = abc\n", loc, "bad value 'abc' for key 'port'");
    expect_file_error("port = 70000\n", "bad.conf:1:", "out of range [1, 65535]");
    expect_file_error("port = 0\n", "bad.conf:1:", "out of range");
    expect_file_error("port = 12x\n", "bad.conf:1:", "'port'");
    expect_file_error("port = \n", "bad.conf:1:", "'port'");
    expect_file_error("debug = maybe\n", "bad.conf:1:", "'debug'");
    expect_file_error("ratio = 1.5x\n", "bad.conf:1:", "'ratio'");
    expect_file_error("ratio = nan\n", "bad.conf:1:", "'ratio'");
    expect_file_error("raft.election_ms = 5 s\n", "bad.conf:1:", "'raft.election_ms'");
    expect_file_error("raft.election_ms = 50ms\n", "bad.conf:1:", "out of range [100, 60000]");
    expect_file_error("raft.election_ms = 2h\n", "bad.conf:1:", "out of range");
    expect_file_error("\n\n\njust words\n", "bad.conf:4:", "key = value");
    expect_file_error(" = 5\n", "bad.conf:1:", "missing key");
    expect_file_error("chunk_size = 99999999999t\n", "bad.conf:1:", "'chunk_size'");
    expect_file_error("chunk_size = 99999999999999999999\n", "bad.conf:1:", "'chunk_size'");
}

static void test_missing_file(void **state)
{
    curve_config *cfg = mk();
    char err[256] = "";
    char path[128];
    snprintf(path, sizeof(path), "%s/nope.conf", tmpdir);
    assert_int_equal(curve_config_load_file(cfg, path, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "nope.conf"));
    /* a directory is not a config file */
    assert_int_equal(curve_config_load_file(cfg, tmpdir, err, sizeof(err)), CURVE_ERR_CONFIG);
    curve_config_free(cfg);
}

static void test_suffixes(void **state)
{
    curve_config *cfg = mk();
    char err[256];
    static const struct {
        const char *v;
        long long want;
    } ints[] = {
        {"0", 0}, {"7", 7}, {"-3", -3}, {"1k", 1024}, {"2K", 2048}, {"16m", 16LL << 20},
        {"3g", 3LL << 30}, {"1t", 1LL << 40}, {"4kb", 4096}, {"8GiB", 8LL << 30},
    };
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        assert_int_equal(curve_config_set(cfg, "chunk_size", ints[i].v, "test", err, sizeof(err)),
                         0);
        assert_int_equal(curve_config_int(cfg, "chunk_size"), ints[i].want);
    }
    assert_int_equal(curve_config_set(cfg, "chunk_size", "1p", "test", err, sizeof(err)),
                     CURVE_ERR_CONFIG);
    assert_int_equal(curve_config_set(cfg, "chunk_size", "k", "test", err, sizeof(err)),
                     CURVE_ERR_CONFIG);
    static const struct {
        const char *v;
        long long want;
    } durs[] = {
        {"250", 250}, {"250ms", 250}, {"5s", 5000}, {"1m", 60000}, {"1min", 60000},
    };
    for (size_t i = 0; i < sizeof(durs) / sizeof(durs[0]); i++) {
        assert_int_equal(
            curve_config_set(cfg, "raft.election_ms", durs[i].v, "test", err, sizeof(err)), 0);
        assert_int_equal(curve_config_duration_ms(cfg, "raft.election_ms"), durs[i].want);
    }
    static const struct {
        const char *v;
        bool want;
    } bools[] = {
        {"true", true}, {"false", false}, {"yes", true}, {"no", false},
        {"1", true},    {"0", false},     {"ON", true},  {"off", false},
    };
    for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
        assert_int_equal(curve_config_set(cfg, "debug", bools[i].v, "test", err, sizeof(err)), 0);
        assert_int_equal(curve_config_bool(cfg, "debug"), bools[i].want);
    }
    curve_config_free(cfg);
}

static void test_failed_set_keeps_value(void **state)
{
    curve_config *cfg = mk();
    char err[256];
    assert_int_equal(curve_config_set(cfg, "port", "1234", "env", err, sizeof(err)), 0);
    assert_int_equal(curve_config_set(cfg, "port", "99999", "env", err, sizeof(err)),
                     CURVE_ERR_CONFIG);
    assert_non_null(strstr(err, "env:"));
    assert_int_equal(curve_config_int(cfg, "port"), 1234);
    assert_int_equal(curve_config_set(cfg, "nokey", "1", "env", err, sizeof(err)),
                     CURVE_ERR_CONFIG);
    assert_non_null(strstr(err, "unknown key 'nokey'"));
    curve_config_free(cfg);
}

static void test_args_override_order(void **state)
{
    char path[128], confarg[160];
    snprintf(path, sizeof(path), "%s/b.conf", tmpdir);
    write_file(path, "port = 1111\nname = from-file\ndata_dir = /file\n");
    snprintf(confarg, sizeof(confarg), "--conf=%s", path);
    curve_config *cfg = mk();
    char err[256] = "";
    /* the override comes before --conf on the command line but still wins */
    char *argv[] = {"prog", "--port=2222", "positional", confarg, "--debug", "--help",
                    "--", "--port=3", NULL};
    int argc = 8;
    int rc = curve_config_parse_args(cfg, &argc, argv, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(curve_config_int(cfg, "port"), 2222);
    assert_string_equal(curve_config_str(cfg, "name"), "from-file");
    assert_string_equal(curve_config_str(cfg, "data_dir"), "/file");
    assert_true(curve_config_bool(cfg, "debug"));
    assert_int_equal(argc, 5);
    assert_string_equal(argv[0], "prog");
    assert_string_equal(argv[1], "positional");
    assert_string_equal(argv[2], "--help");
    assert_string_equal(argv[3], "--");
    assert_string_equal(argv[4], "--port=3");
    curve_config_free(cfg);
}

static void test_args_errors(void **state)
{
    curve_config *cfg = mk();
    char err[256] = "";
    char *argv1[] = {"prog", "--portt=1", NULL};
    int argc = 2;
    assert_int_equal(curve_config_parse_args(cfg, &argc, argv1, err, sizeof(err)),
                     CURVE_ERR_CONFIG);
    assert_non_null(strstr(err, "--portt"));
    assert_non_null(strstr(err, "unknown key 'portt'"));
    char *argv2[] = {"prog", "--port=0", NULL};
    argc = 2;
    assert_int_equal(curve_config_parse_args(cfg, &argc, argv2, err, sizeof(err)),
                     CURVE_ERR_CONFIG);
    assert_non_null(strstr(err, "--port: value 0 for key 'port' out of range"));
    char *argv3[] = {"prog", "--port", NULL};
    argc = 2;
    assert_int_equal(curve_config_parse_args(cfg, &argc, argv3, err, sizeof(err)),
                     CURVE_ERR_CONFIG);
    assert_non_null(strstr(err, "--port=<value>"));
    char *argv4[] = {"prog", "--conf=/nonexistent/x.conf", NULL};
    argc = 2;
    assert_int_equal(curve_config_parse_args(cfg, &argc, argv4, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "/nonexistent/x.conf"));
    curve_config_free(cfg);
}

static void test_bad_schema(void **state)
{
    curve_config *cfg = (curve_config *)1;
    char err[256] = "";
    const curve_cfg_def bad_default[] = {{"x", CURVE_CFG_INT, "12q", 0, 0, ""}};
    assert_int_equal(curve_config_new(bad_default, 1, &cfg, err, sizeof(err)), CURVE_ERR_CONFIG);
    assert_null(cfg);
    assert_non_null(strstr(err, "'x'"));
    const curve_cfg_def bad_range[] = {{"x", CURVE_CFG_INT, "0", 1, 5, ""}};
    assert_int_equal(curve_config_new(bad_range, 1, &cfg, err, sizeof(err)), CURVE_ERR_CONFIG);
    const curve_cfg_def bad_key[] = {{"Bad-Key", CURVE_CFG_INT, "0", 0, 0, ""}};
    assert_int_equal(curve_config_new(bad_key, 1, &cfg, err, sizeof(err)), CURVE_ERR_CONFIG);
    assert_non_null(strstr(err, "Bad-Key"));
    const curve_cfg_def dup[] = {{"a", CURVE_CFG_INT, "0", 0, 0, ""},
                                 {"a", CURVE_CFG_BOOL, "no", 0, 0, ""}};
    assert_int_equal(curve_config_new(dup, 2, &cfg, err, sizeof(err)), CURVE_ERR_CONFIG);
    assert_non_null(strstr(err, "duplicate"));
}

static void test_usage_and_buffer(void **state)
{
    curve_config *cfg = mk();
    char buf[1024];
    curve_config_usage(cfg, buf, sizeof(buf));
    assert_non_null(strstr(buf, "  --port=8200  listen port\n"));
    assert_non_null(strstr(buf, "  --data_dir=<required>  data directory\n"));
    char small[10];
    curve_config_usage(cfg, small, sizeof(small));
    assert_int_equal(strlen(small), 9);
    char err[256];
    const char data[] = "port = 42\nname = x"; /* not NUL-terminated at len */
    assert_int_equal(curve_config_load_buffer(cfg, "mem", data, 9, err, sizeof(err)), 0);
    assert_int_equal(curve_config_int(cfg, "port"), 42);
    assert_string_equal(curve_config_str(cfg, "name"), "default-name");
    const char nul[] = "port = 4\n\0x";
    assert_int_equal(curve_config_load_buffer(cfg, "mem", nul, sizeof(nul) - 1, err, sizeof(err)),
                     CURVE_ERR_CONFIG);
    assert_non_null(strstr(err, "mem:2:"));
    curve_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_file_load),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_suffixes),
        cmocka_unit_test(test_failed_set_keeps_value),
        cmocka_unit_test(test_args_override_order),
        cmocka_unit_test(test_args_errors),
        cmocka_unit_test(test_bad_schema),
        cmocka_unit_test(test_usage_and_buffer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
