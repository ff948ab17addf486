/* libcurve configuration loading and the public header. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "client/client_conf.h"
#include "curve/curve.h"

/* The public header is self-contained C and its request struct keeps its documented shape. */
_Static_assert(offsetof(struct curve_aio, buf) == 0, "curve_aio.buf first");
_Static_assert(sizeof(((struct curve_aio *)0)->internal_) == 64, "curve_aio private area");
_Static_assert(CURVE_OPEN_RDONLY != CURVE_OPEN_EXCLUSIVE, "distinct open flags");

static void test_defaults(void **state)
{
    const char *kv[] = {"mds.addrs=127.0.0.1:6700", NULL};
    curve_client_conf c;
    char err[256] = "";
    assert_int_equal(curve_client_conf_load(NULL, kv, &c, err, sizeof(err)), 0);
    assert_string_equal(c.mds_addrs, "127.0.0.1:6700");
    assert_string_equal(c.owner, "curve");
    assert_int_equal(c.mds_rpc_timeout_ms, 500);
    assert_int_equal(c.max_rpc_size, 1024 * 1024);
    assert_int_equal(c.max_inflight_rpcs, 128);
    assert_int_equal(c.io_threads, 1);
    assert_false(c.allow_512);
    assert_int_equal(c.metacache_max_segments, 4096);
    assert_int_equal(c.metacache_max_copysets, 65536);
    assert_string_equal(c.log_path, "");
    assert_int_equal(c.log_level, CURVE_LOG_INFO);
    curve_retry_opts d;
    curve_retry_opts_default(&d);
    assert_int_equal(c.retry.rpc_timeout_ms, d.rpc_timeout_ms);
    assert_int_equal(c.retry.op_retry_interval_ms, d.op_retry_interval_ms);
    assert_int_equal(c.retry.slow_threshold_ms, d.slow_threshold_ms);
    assert_int_equal(c.retry.total_deadline_ms, 0);
}

static void test_file_then_overrides(void **state)
{
    char path[] = "/tmp/curve_client_conf_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "# client\n"
                       "mds.addrs = 127.0.0.1:6700, 127.0.0.1:6701\n"
                       "client.max_rpc_size = 64k\n"
                       "client.retry.total_deadline_ms = 30s\n"
                       "client.allow_512 = yes\n"
                       "client.log_level = debug\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    const char *kv[] = {"client.max_rpc_size=128k", "client.owner=alice", NULL};
    curve_client_conf c;
    char err[256] = "";
    int rc = curve_client_conf_load(path, kv, &c, err, sizeof(err));
    unlink(path);
    assert_int_equal(rc, 0);
    assert_string_equal(c.mds_addrs, "127.0.0.1:6700, 127.0.0.1:6701");
    assert_int_equal(c.max_rpc_size, 128 * 1024);
    assert_string_equal(c.owner, "alice");
    assert_int_equal(c.retry.total_deadline_ms, 30000);
    assert_true(c.allow_512);
    assert_int_equal(c.log_level, CURVE_LOG_DEBUG);
}

static void expect_error(const char *const *kv, const char *needle)
{
    curve_client_conf c;
    char err[256] = "";
    int rc = curve_client_conf_load(NULL, kv, &c, err, sizeof(err));
    if (rc != CURVE_ERR_CONFIG || !strstr(err, needle))
        fail_msg("rc %d err '%s', wanted CURVE_ERR_CONFIG naming '%s'", rc, err, needle);
}

static void test_errors(void **state)
{
    const char *missing[] = {"client.owner=x", NULL};
    expect_error(missing, "mds.addrs");
    const char *bad_addr[] = {"mds.addrs=127.0.0.1", NULL};
    expect_error(bad_addr, "mds.addrs");
    const char *unknown[] = {"mds.addrs=a:1", "client.no_such_key=1", NULL};
    expect_error(unknown, "client.no_such_key");
    const char *no_eq[] = {"mds.addrs=a:1", "client.owner", NULL};
    expect_error(no_eq, "client.owner");
    const char *rpc_small[] = {"mds.addrs=a:1", "client.max_rpc_size=4k", NULL};
    expect_error(rpc_small, "client.max_rpc_size");
    const char *rpc_unaligned[] = {"mds.addrs=a:1", "client.max_rpc_size=66000", NULL};
    expect_error(rpc_unaligned, "client.max_rpc_size");
    const char *inflight0[] = {"mds.addrs=a:1", "client.max_inflight_rpcs=0", NULL};
    expect_error(inflight0, "client.max_inflight_rpcs");
    const char *level[] = {"mds.addrs=a:1", "client.log_level=loud", NULL};
    expect_error(level, "client.log_level");
    const char *owner[] = {"mds.addrs=a:1", "client.owner=", NULL};
    expect_error(owner, "client.owner");
    const char *retry[] = {"mds.addrs=a:1", "client.retry.max_sleep_ms=50ms", NULL};
    expect_error(retry, "client.retry.max_sleep_ms");
    curve_client_conf c;
    char err[256];
    assert_int_equal(curve_client_conf_load("/nonexistent/curve.conf", NULL, &c, err, sizeof(err)),
                     -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_file_then_overrides),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
