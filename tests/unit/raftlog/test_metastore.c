/* Unit tests of the Raft term/vote metadata store (src/raft/io/metastore.c). */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "common/failpoint.h"
#include "curve/errors.h"
#include "raft/io/metastore.h"
#include "raftlog_test_util.h"

static void path_of(const char *dir, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", dir, name);
}

static void test_roundtrip(void **state)
{
    (void)state;
    char *dir = rt_mkdtemp();
    assert_non_null(dir);
    rmeta_state st;
    assert_int_equal(rmeta_load(dir, &st), -ENOENT);
    rmeta_state in = {.term = 7, .voted_for = 3};
    assert_int_equal(rmeta_store(dir, &in), 0);
    assert_int_equal(rmeta_load(dir, &st), 0);
    assert_int_equal(st.term, 7);
    assert_int_equal(st.voted_for, 3);
    assert_int_equal(st.blob_len, 0);
    assert_null(st.blob);
    rmeta_state_free(&st);

    char blob[1000];
    for (size_t i = 0; i < sizeof(blob); i++)
        blob[i] = (char)(i * 7);
    in = (rmeta_state){.term = UINT64_MAX - 1, .voted_for = 0, .blob = blob,
                       .blob_len = sizeof(blob)};
    assert_int_equal(rmeta_store(dir, &in), 0);
    assert_int_equal(rmeta_load(dir, &st), 0);
    assert_int_equal(st.term, UINT64_MAX - 1);
    assert_int_equal(st.voted_for, 0);
    assert_int_equal(st.blob_len, sizeof(blob));
    assert_memory_equal(st.blob, blob, sizeof(blob));
    rmeta_state_free(&st);

    /* no temp file is left behind */
    char tmp[600];
    path_of(dir, RMETA_FILE_NAME ".tmp", tmp, sizeof(tmp));
    assert_int_equal(access(tmp, F_OK), -1);

    in.blob_len = RMETA_MAX_BLOB + 1;
    assert_int_equal(rmeta_store(dir, &in), -EINVAL);
    in.blob = NULL;
    in.blob_len = 1;
    assert_int_equal(rmeta_store(dir, &in), -EINVAL);
    assert_int_equal(rmeta_store("/nonexistent-dir/for-rmeta", &in), -EINVAL);
    in.blob_len = 0;
    assert_true(rmeta_store("/nonexistent-dir/for-rmeta", &in) < 0);
    rt_rmtree(dir);
}

/* An interrupted update (only the temp file written) leaves the old content in force. */
static void test_interrupted_update(void **state)
{
    (void)state;
    char *dir = rt_mkdtemp();
    rmeta_state in = {.term = 5, .voted_for = 2};
    assert_int_equal(rmeta_store(dir, &in), 0);
    char tmp[600];
    path_of(dir, RMETA_FILE_NAME ".tmp", tmp, sizeof(tmp));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "RMET garbage", 12), 12);
    close(fd);
    rmeta_state st;
    assert_int_equal(rmeta_load(dir, &st), 0);
    assert_int_equal(st.term, 5);
    assert_int_equal(st.voted_for, 2);
    assert_int_equal(access(tmp, F_OK), -1);
    rmeta_state_free(&st);
    rt_rmtree(dir);
}

static void test_corruption_detected(void **state)
{
    (void)state;
    char *dir = rt_mkdtemp();
    const char blob[] = "configuration: 1,2,3";
    rmeta_state in = {.term = 9, .voted_for = 1, .blob = (void *)blob, .blob_len = sizeof(blob)};
    assert_int_equal(rmeta_store(dir, &in), 0);
    char path[600];
    path_of(dir, RMETA_FILE_NAME, path, sizeof(path));
    uint8_t orig[RMETA__HDR_SIZE + sizeof(blob)];
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, orig, sizeof(orig), 0), (ssize_t)sizeof(orig));
    rmeta_state st;
    /* every single-bit flip anywhere is detected */
    for (size_t i = 0; i < sizeof(orig); i++) {
        uint8_t b = orig[i] ^ (uint8_t)(1u << (i % 8));
        assert_int_equal(pwrite(fd, &b, 1, (off_t)i), 1);
        assert_int_equal(rmeta_load(dir, &st), CURVE_ERR_CORRUPT);
        assert_int_equal(pwrite(fd, &orig[i], 1, (off_t)i), 1);
    }
    /* truncation at every length is detected */
    for (size_t l = 0; l < sizeof(orig); l++) {
        assert_int_equal(ftruncate(fd, (off_t)l), 0);
        assert_int_equal(rmeta_load(dir, &st), CURVE_ERR_CORRUPT);
    }
    /* trailing bytes are detected */
    assert_int_equal(pwrite(fd, orig, sizeof(orig), 0), (ssize_t)sizeof(orig));
    assert_int_equal(pwrite(fd, "x", 1, (off_t)sizeof(orig)), 1);
    assert_int_equal(rmeta_load(dir, &st), CURVE_ERR_CORRUPT);
    assert_int_equal(ftruncate(fd, (off_t)sizeof(orig)), 0);
    assert_int_equal(rmeta_load(dir, &st), 0);
    assert_int_equal(st.term, 9);
    assert_memory_equal(st.blob, blob, sizeof(blob));
    rmeta_state_free(&st);
    close(fd);
    rt_rmtree(dir);
}

/* A failed update (EIO on write, ENOSPC on fsync) leaves the previous content in force. */
static void test_failed_update_keeps_old(void **state)
{
    (void)state;
    char *dir = rt_mkdtemp();
    rmeta_state in = {.term = 11, .voted_for = 4};
    assert_int_equal(rmeta_store(dir, &in), 0);
    const char *fps[] = {"raftmeta.write", "raftmeta.sync"};
    const char *acts[] = {"1*return(EIO)", "1*return(ENOSPC)"};
    const int errs[] = {-EIO, -ENOSPC};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(curve_failpoint_set(fps[i], acts[i]), 0);
        rmeta_state upd = {.term = 12, .voted_for = 5};
        assert_int_equal(rmeta_store(dir, &upd), errs[i]);
        rmeta_state st;
        assert_int_equal(rmeta_load(dir, &st), 0);
        assert_int_equal(st.term, 11);
        assert_int_equal(st.voted_for, 4);
        rmeta_state_free(&st);
    }
    curve_failpoint_clear_all();
    rmeta_state upd = {.term = 12, .voted_for = 5};
    assert_int_equal(rmeta_store(dir, &upd), 0);
    rmeta_state st;
    assert_int_equal(rmeta_load(dir, &st), 0);
    assert_int_equal(st.term, 12);
    rmeta_state_free(&st);
    rt_rmtree(dir);
}

static int clear_failpoints(void **state)
{
    (void)state;
    curve_failpoint_clear_all();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_interrupted_update),
        cmocka_unit_test(test_corruption_detected),
        cmocka_unit_test_teardown(test_failed_update_keeps_old, clear_failpoints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
