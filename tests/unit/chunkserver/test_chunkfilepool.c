/* Unit tests for the chunk file pool and the chunk header codec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>

#include "common/clock.h"

#include "chunkserver/chunkfilepool.h"
#include "common/failpoint.h"
#include "curve/errors.h"
#include "cs_test_util.h"

static int setup(void **state)
{
    curve_failpoint_clear_all();
    *state = tu_mkdtemp();
    return 0;
}

static int teardown(void **state)
{
    curve_failpoint_clear_all();
    tu_rmrf(*state);
    return 0;
}

/* Counts pool files by kind; returns the number of entries with any other name. */
static int count_pool(const char *root, int *ready, int *tmp, int *dirty)
{
    char dir[512];
    int other = 0;
    *ready = *tmp = *dirty = 0;
    tu_path(dir, sizeof(dir), root, "chunkfilepool");
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (strstr(de->d_name, ".tmp"))
            (*tmp)++;
        else if (strstr(de->d_name, ".dirty"))
            (*dirty)++;
        else if (strspn(de->d_name, "0123456789") == strlen(de->d_name))
            (*ready)++;
        else
            other++;
    }
    closedir(d);
    return other;
}

static void check_all_ready_files(const char *root, int expect)
{
    char dir[512], path[600];
    int n = 0;
    tu_path(dir, sizeof(dir), root, "chunkfilepool");
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || strspn(de->d_name, "0123456789") != strlen(de->d_name))
            continue;
        tu_path(path, sizeof(path), dir, de->d_name);
        assert_true(tu_file_is_free_zeroed(path));
        n++;
    }
    closedir(d);
    assert_int_equal(n, expect);
}

static void test_header_codec(void **state)
{
    uint8_t page[CURVE_CHUNK_HEADER_SIZE];
    curve_chunk_header h = {.version = CURVE_CHUNK_VERSION, .flags = 0, .chunk_id = 0x1122334455667788ull,
                            .sn = 7, .corrected_sn = 3, .chunk_size = 16u << 20};
    curve_chunk_header d;
    curve_chunk_header_encode(&h, page);
    assert_memory_equal(page, "CURVECHK", 8);
    assert_int_equal(page[16], 0x88); /* little-endian chunk id at offset 16 */
    assert_int_equal(curve_chunk_header_decode(page, sizeof(page), &d), 0);
    assert_int_equal(d.chunk_id, h.chunk_id);
    assert_int_equal(d.sn, 7);
    assert_int_equal(d.corrected_sn, 3);
    assert_int_equal(d.chunk_size, 16u << 20);
    /* every single-bit flip in the encoded bytes is detected */
    for (size_t i = 0; i < CURVE_CHUNK_HEADER_LEN * 8; i++) {
        page[i / 8] ^= (uint8_t)(1u << (i % 8));
        assert_int_equal(curve_chunk_header_decode(page, sizeof(page), &d), CURVE_ERR_CORRUPT);
        page[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    page[100] = 1; /* non-zero padding */
    assert_int_equal(curve_chunk_header_decode(page, sizeof(page), &d), CURVE_ERR_CORRUPT);
    page[100] = 0;
    assert_int_equal(curve_chunk_header_decode(page, CURVE_CHUNK_HEADER_LEN, &d), 0);
    assert_int_equal(curve_chunk_header_decode(page, CURVE_CHUNK_HEADER_LEN - 1, &d),
                     CURVE_ERR_CORRUPT);
    assert_int_equal(curve_chunk_header_decode(NULL, 0, &d), CURVE_ERR_CORRUPT);
    /* a well-formed crc over bad fields is still rejected */
    h.chunk_size = 4095;
    curve_chunk_header_encode(&h, page);
    assert_int_equal(curve_chunk_header_decode(page, sizeof(page), &d), CURVE_ERR_CORRUPT);
    h.chunk_size = 4096;
    h.flags = 0x80;
    curve_chunk_header_encode(&h, page);
    assert_int_equal(curve_chunk_header_decode(page, sizeof(page), &d), CURVE_ERR_CORRUPT);
    h.flags = 0;
    h.version = 2;
    curve_chunk_header_encode(&h, page);
    assert_int_equal(curve_chunk_header_decode(page, sizeof(page), &d), CURVE_ERR_CORRUPT);
}

static void test_bad_opts(void **state)
{
    char dir[512];
    curve_cfp *p = NULL;
    tu_path(dir, sizeof(dir), *state, "chunkfilepool");
    curve_cfp_opts o = {.dir = dir, .chunk_size = TEST_CHUNK_SIZE};
    assert_int_equal(curve_cfp_open(&o, &p), CURVE_ERR_CONFIG);
    o.target_files = 1;
    o.chunk_size = 1000;
    assert_int_equal(curve_cfp_open(&o, &p), -EINVAL);
    o.chunk_size = TEST_CHUNK_SIZE;
    o.target_pct = 101;
    assert_int_equal(curve_cfp_open(&o, &p), -EINVAL);
    o.target_pct = 0;
    o.dir = "";
    assert_int_equal(curve_cfp_open(&o, &p), -EINVAL);
    assert_null(p);
}

static void test_target_from_share(void **state)
{
    char dir[512];
    curve_cfp *p = NULL;
    struct statvfs sv;
    tu_path(dir, sizeof(dir), *state, "chunkfilepool");
    curve_cfp_opts o = {.dir = dir, .chunk_size = TEST_CHUNK_SIZE, .target_pct = 1,
                        .in_use_files = 2};
    assert_int_equal(curve_cfp_open(&o, &p), 0);
    assert_int_equal(statvfs(dir, &sv), 0);
    uint64_t total = (uint64_t)((long double)sv.f_blocks * sv.f_frsize / 100.0L) / TEST_FILE_SIZE;
    curve_cfp_stats st;
    curve_cfp_get_stats(p, &st);
    assert_int_equal(st.format_target, total > 2 ? total - 2 : 0);
    uint64_t fs_total, fs_avail;
    assert_int_equal(curve_cfp_disk_usage(p, &fs_total, &fs_avail), 0);
    assert_int_equal(fs_total, (uint64_t)sv.f_blocks * sv.f_frsize);
    assert_true(fs_avail <= fs_total && fs_avail > 0);
    assert_int_equal(st.state, CURVE_CFP_IDLE);
    curve_cfp_close(p); /* never started: nothing written */
}

static void test_format(void **state)
{
    curve_cfp *p = tu_pool(*state, 5, true);
    assert_int_equal(curve_cfp_wait(p, UINT64_MAX, TEST_WAIT_MS), 0);
    curve_cfp_stats st;
    curve_cfp_get_stats(p, &st);
    assert_int_equal(st.state, CURVE_CFP_DONE);
    assert_int_equal(st.ready, 5);
    assert_int_equal(st.formatted, 5);
    assert_int_equal(st.format_target, 5);
    assert_int_equal(st.bytes_written, 5 * TEST_FILE_SIZE);
    assert_int_equal(st.failed_err, 0);
    assert_string_equal(curve_cfp_state_name(st.state), "done");
    assert_int_equal(curve_cfp_start(p), -EALREADY);
    curve_cfp_close(p);
    check_all_ready_files(*state, 5);
    /* reopening an already formatted pool formats nothing */
    p = tu_pool(*state, 5, false);
    curve_cfp_get_stats(p, &st);
    assert_int_equal(st.ready, 5);
    assert_int_equal(st.format_target, 0);
    curve_cfp_close(p);
}

static void test_format_resume(void **state)
{
    char path[600];
    int ready, tmp, dirty;
    const char *root = *state;

    /* A format killed early (stopped between two writes) ... */
    curve_cfp *p = tu_pool(root, 12, true);
    assert_int_equal(curve_cfp_wait(p, 2, TEST_WAIT_MS), 0);
    curve_cfp_close(p);
    /* ... plus a half-written file, a truncated "ready" file and a foreign file. */
    uint8_t junk[10000];
    memset(junk, 0xab, sizeof(junk));
    tu_path(path, sizeof(path), root, "chunkfilepool/100.tmp");
    assert_int_equal(tu_write_file(path, junk, sizeof(junk)), 0);
    tu_path(path, sizeof(path), root, "chunkfilepool/101");
    assert_int_equal(tu_write_file(path, junk, sizeof(junk)), 0);
    tu_path(path, sizeof(path), root, "chunkfilepool/notes.txt");
    assert_int_equal(tu_write_file(path, junk, 10), 0);

    p = tu_pool(root, 12, false);
    tu_path(path, sizeof(path), root, "chunkfilepool/100.tmp");
    assert_false(tu_exists(path)); /* half-written file removed at open */
    tu_path(path, sizeof(path), root, "chunkfilepool/101.dirty");
    assert_true(tu_exists(path));  /* bad file queued for redo */
    assert_int_equal(curve_cfp_start(p), 0);
    assert_int_equal(curve_cfp_wait(p, UINT64_MAX, TEST_WAIT_MS), 0);
    curve_cfp_stats st;
    curve_cfp_get_stats(p, &st);
    assert_int_equal(st.ready, 12);
    assert_int_equal(st.dirty, 0);
    assert_int_equal(st.zeroed, 1);
    curve_cfp_close(p);
    assert_int_equal(count_pool(root, &ready, &tmp, &dirty), 1); /* notes.txt left alone */
    assert_int_equal(ready, 12);
    assert_int_equal(tmp, 0);
    assert_int_equal(dirty, 0);
    check_all_ready_files(root, 12);
}

/* A format killed with SIGKILL in the middle (a real crash, not a clean stop) resumes: the
 * half-written file is detected and redone, and the pool ends with exactly the target. */
static void test_format_resume_after_kill(void **state)
{
    enum { TARGET = 40 };
    const char *root = *state;
    int ready, tmp, dirty;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* slow each 1 MiB write down so the parent can kill us mid-format */
        if (curve_failpoint_set("chunkfilepool.format", "delay(3)") != 0)
            _exit(2);
        curve_cfp *p = tu_pool(root, TARGET, true);
        curve_cfp_wait(p, UINT64_MAX, TEST_WAIT_MS);
        _exit(3); /* not reached in time: the parent kills us first */
    }
    /* wait (bounded) until a few files are done, then kill */
    uint64_t deadline = curve_now_mono_ms() + TEST_WAIT_MS;
    char dir[512];
    tu_path(dir, sizeof(dir), root, "chunkfilepool");
    for (;;) {
        ready = 0;
        if (tu_exists(dir))
            (void)count_pool(root, &ready, &tmp, &dirty);
        if (ready >= 3 || curve_now_mono_ms() > deadline)
            break;
        struct timespec ts = {0, 1000000}; /* polling interval of a bounded condition wait */
        nanosleep(&ts, NULL);
    }
    assert_true(ready >= 3);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status)); /* it really died mid-format */
    (void)count_pool(root, &ready, &tmp, &dirty);
    assert_true(ready < TARGET);
    print_message("killed with %d ready, %d half-written\n", ready, tmp);

    curve_cfp *p = tu_pool(root, TARGET, false);
    curve_cfp_stats st;
    curve_cfp_get_stats(p, &st);
    assert_int_equal(st.format_target, (uint64_t)(TARGET - ready));
    assert_int_equal(curve_cfp_start(p), 0);
    assert_int_equal(curve_cfp_wait(p, UINT64_MAX, TEST_WAIT_MS), 0);
    curve_cfp_get_stats(p, &st);
    assert_int_equal(st.ready, TARGET);
    curve_cfp_close(p);
    assert_int_equal(count_pool(root, &ready, &tmp, &dirty), 0);
    assert_int_equal(ready, TARGET);
    assert_int_equal(tmp, 0);
    check_all_ready_files(root, TARGET);
}

static void test_get_put_zeroing(void **state)
{
    char dst[600], data[600];
    const char *root = *state;
    uint8_t page[CURVE_CHUNK_HEADER_SIZE];
    curve_chunk_header h = {.version = CURVE_CHUNK_VERSION, .chunk_id = 7, .sn = 1,
                            .chunk_size = TEST_CHUNK_SIZE};
    curve_chunk_header_encode(&h, page);
    tu_path(data, sizeof(data), root, "data");
    assert_int_equal(mkdir(data, 0755), 0);
    tu_path(dst, sizeof(dst), data, "chunk_7");

    curve_cfp *p = tu_pool(root, 2, true);
    assert_int_equal(curve_cfp_wait(p, UINT64_MAX, TEST_WAIT_MS), 0);
    assert_int_equal(curve_cfp_get(p, dst, page), 0);
    curve_cfp_stats st;
    curve_cfp_get_stats(p, &st);
    assert_int_equal(st.ready, 1);
    assert_int_equal(st.gets, 1);

    /* the taken file carries the new header and zero data */
    uint8_t *buf = malloc(TEST_FILE_SIZE);
    assert_non_null(buf);
    int fd = open(dst, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, TEST_FILE_SIZE, 0), (ssize_t)TEST_FILE_SIZE);
    curve_chunk_header d;
    assert_int_equal(curve_chunk_header_decode(buf, CURVE_CHUNK_HEADER_SIZE, &d), 0);
    assert_int_equal(d.chunk_id, 7);
    assert_int_equal(d.flags, 0);
    memset(buf, 0x5a, TEST_FILE_SIZE);
    assert_int_equal(pwrite(fd, buf, TEST_FILE_SIZE, 0), (ssize_t)TEST_FILE_SIZE);
    close(fd);

    /* get onto an existing path fails and the file is not lost */
    assert_int_equal(curve_cfp_get(p, dst, page), -EEXIST);
    assert_int_equal(curve_cfp_put(p, dst), 0);
    assert_false(tu_exists(dst));
    assert_int_equal(curve_cfp_wait(p, 2, TEST_WAIT_MS), 0);
    assert_int_equal(curve_cfp_wait(p, UINT64_MAX, TEST_WAIT_MS), 0);
    curve_cfp_get_stats(p, &st);
    assert_int_equal(st.ready, 2);
    assert_int_equal(st.puts, 1);
    assert_int_equal(st.zeroed, 2); /* the requeued one and the returned one */
    curve_cfp_close(p);
    check_all_ready_files(root, 2);
    p = tu_pool(root, 2, false);
    assert_int_equal(curve_cfp_put(p, dst), -ENOENT); /* nothing to give back */
    curve_cfp_close(p);
    free(buf);
}

/* An empty pool does not turn into NOSPACE while the file system has room: the chunk file is
 * created on demand (allocated, header written, synced) and counted. */
static void test_empty_pool_creates_on_demand(void **state)
{
    char dst[600];
    uint8_t page[CURVE_CHUNK_HEADER_SIZE];
    curve_chunk_header h = {.version = CURVE_CHUNK_VERSION, .chunk_id = 1,
                            .chunk_size = TEST_CHUNK_SIZE};
    curve_chunk_header_encode(&h, page);
    for (uint64_t files = 1; files <= 2; files++) {
        char root[600];
        snprintf(root, sizeof(root), "%s/p%llu", (const char *)*state, (unsigned long long)files);
        assert_int_equal(mkdir(root, 0755), 0);
        curve_cfp *p = tu_pool(root, files, true);
        assert_int_equal(curve_cfp_wait(p, UINT64_MAX, TEST_WAIT_MS), 0);
        for (uint64_t i = 1; i <= 3; i++) {
            char name[32];
            snprintf(name, sizeof(name), "c%llu", (unsigned long long)i);
            tu_path(dst, sizeof(dst), root, name);
            assert_int_equal(curve_cfp_get(p, dst, page), 0);
            /* same on-disk format as a pool file: full size, our header, zero data */
            uint8_t *buf = malloc(TEST_FILE_SIZE + 1);
            assert_non_null(buf);
            int fd = open(dst, O_RDONLY);
            assert_true(fd >= 0);
            assert_int_equal(pread(fd, buf, TEST_FILE_SIZE + 1, 0), (ssize_t)TEST_FILE_SIZE);
            close(fd);
            curve_chunk_header d;
            assert_int_equal(curve_chunk_header_decode(buf, CURVE_CHUNK_HEADER_SIZE, &d), 0);
            assert_int_equal(d.chunk_id, 1);
            assert_int_equal(d.chunk_size, TEST_CHUNK_SIZE);
            for (size_t j = CURVE_CHUNK_HEADER_SIZE; j < TEST_FILE_SIZE; j++)
                if (buf[j] != 0)
                    fail_msg("byte %zu of %s is not zero", j, dst);
            free(buf);
            struct stat st;
            assert_int_equal(stat(dst, &st), 0);
            /* allocated for real, not sparse */
            assert_true((uint64_t)st.st_blocks * 512 >= TEST_FILE_SIZE);
        }
        curve_cfp_stats st;
        curve_cfp_get_stats(p, &st);
        assert_int_equal(st.gets, 3);
        assert_int_equal(st.empty_creates, 3 - files);
        assert_int_equal(st.failed_err, 0);
        int ready, tmp, dirty;
        assert_int_equal(count_pool(root, &ready, &tmp, &dirty), 0);
        assert_int_equal(ready + tmp + dirty, 0); /* nothing left behind in the pool */
        /* onto an existing path: -EEXIST, the existing file untouched, no temp file left */
        assert_int_equal(curve_cfp_get(p, dst, page), -EEXIST);
        assert_int_equal(count_pool(root, &ready, &tmp, &dirty), 0);
        assert_int_equal(tmp, 0);
        curve_cfp_close(p);
    }
}

/* NOSPACE only when the file system itself is full: below the reserve, or ENOSPC while
 * allocating (failpoint). Other allocation errors fail the disk. */
static void test_nospace_when_fs_full(void **state)
{
    char dir[512], dst[600];
    uint8_t page[CURVE_CHUNK_HEADER_SIZE];
    curve_chunk_header h = {.version = CURVE_CHUNK_VERSION, .chunk_id = 1,
                            .chunk_size = TEST_CHUNK_SIZE};
    curve_chunk_header_encode(&h, page);
    tu_path(dir, sizeof(dir), *state, "chunkfilepool");
    /* a reserve larger than any file system: the formatter stops, get answers NOSPACE */
    curve_cfp_opts o = {.dir = dir, .chunk_size = TEST_CHUNK_SIZE, .target_files = 2,
                        .reserve_bytes = UINT64_MAX / 4};
    curve_cfp *p;
    assert_int_equal(curve_cfp_open(&o, &p), 0);
    assert_int_equal(curve_cfp_start(p), 0);
    assert_int_equal(curve_cfp_wait(p, UINT64_MAX, TEST_WAIT_MS), 0);
    tu_path(dst, sizeof(dst), *state, "c1");
    assert_int_equal(curve_cfp_get(p, dst, page), CURVE_ERR_NOSPACE);
    assert_false(tu_exists(dst));
    assert_int_equal(curve_cfp_failed(p), 0);
    curve_cfp_close(p);

    /* ENOSPC from the allocation (file system filled up meanwhile) */
    p = tu_pool(*state, 1, true);
    assert_int_equal(curve_cfp_wait(p, UINT64_MAX, TEST_WAIT_MS), 0);
    tu_path(dst, sizeof(dst), *state, "c0");
    assert_int_equal(curve_cfp_get(p, dst, page), 0); /* the pool's only file */
    tu_path(dst, sizeof(dst), *state, "c1");
    assert_int_equal(curve_failpoint_set("chunkfilepool.create", "1*return(ENOSPC)"), 0);
    assert_int_equal(curve_cfp_get(p, dst, page), CURVE_ERR_NOSPACE);
    assert_false(tu_exists(dst));
    int ready, tmp, dirty;
    assert_int_equal(count_pool(*state, &ready, &tmp, &dirty), 0);
    assert_int_equal(tmp, 0);
    assert_int_equal(curve_cfp_failed(p), 0);
    /* space came back: the next get succeeds */
    assert_int_equal(curve_cfp_get(p, dst, page), 0);
    assert_true(tu_exists(dst));
    /* an IO error while creating fails the disk */
    tu_path(dst, sizeof(dst), *state, "c2");
    assert_int_equal(curve_failpoint_set("chunkfilepool.create", "1*return(EIO)"), 0);
    assert_int_equal(curve_cfp_get(p, dst, page), CURVE_ERR_DISK_FAIL);
    assert_false(tu_exists(dst));
    assert_int_equal(curve_cfp_failed(p), -EIO);
    assert_int_equal(count_pool(*state, &ready, &tmp, &dirty), 0);
    assert_int_equal(tmp, 0);
    curve_cfp_close(p);
}

static void test_format_disk_error(void **state)
{
    char dst[600];
    uint8_t page[CURVE_CHUNK_HEADER_SIZE] = {0};
    assert_int_equal(curve_failpoint_set("chunkfilepool.format", "return(EIO)"), 0);
    curve_cfp *p = tu_pool(*state, 3, true);
    assert_int_equal(curve_cfp_wait(p, 3, TEST_WAIT_MS), CURVE_ERR_DISK_FAIL);
    curve_cfp_stats st;
    curve_cfp_get_stats(p, &st);
    assert_int_equal(st.state, CURVE_CFP_FAILED);
    assert_int_equal(st.failed_err, -EIO);
    assert_int_equal(curve_cfp_failed(p), -EIO);
    assert_true(curve_failpoint_hits("chunkfilepool.format") >= 1);
    tu_path(dst, sizeof(dst), *state, "c1");
    assert_int_equal(curve_cfp_get(p, dst, page), CURVE_ERR_DISK_FAIL);
    curve_cfp_close(p);
}

static void test_format_enospc_is_disk_full(void **state)
{
    assert_int_equal(curve_failpoint_set("chunkfilepool.format", "return(ENOSPC)"), 0);
    curve_cfp *p = tu_pool(*state, 3, true);
    assert_int_equal(curve_cfp_wait(p, 3, TEST_WAIT_MS), 0);
    curve_cfp_stats st;
    curve_cfp_get_stats(p, &st);
    assert_true(st.disk_full);
    assert_int_equal(st.failed_err, 0);
    assert_int_equal(st.ready, 0);
    assert_int_equal(st.state, CURVE_CFP_DONE);
    curve_cfp_close(p);
}

static void test_get_error_marks_failed(void **state)
{
    char dst[600];
    uint8_t page[CURVE_CHUNK_HEADER_SIZE] = {0};
    curve_cfp *p = tu_pool(*state, 1, true);
    assert_int_equal(curve_cfp_wait(p, UINT64_MAX, TEST_WAIT_MS), 0);
    assert_int_equal(curve_failpoint_set("chunkfilepool.get", "1*return(EIO)"), 0);
    tu_path(dst, sizeof(dst), *state, "c1");
    assert_int_equal(curve_cfp_get(p, dst, page), CURVE_ERR_DISK_FAIL);
    assert_false(tu_exists(dst));
    assert_int_equal(curve_cfp_failed(p), -EIO);
    assert_int_equal(curve_cfp_wait(p, 1, 10), CURVE_ERR_DISK_FAIL);
    curve_cfp_close(p);
}

/* Reads the value of `name{disk="<dir>"}` from a Prometheus rendering; -1 if absent. */
static double metric_value(const char *text, const char *name, const char *dir)
{
    char key[1024];
    snprintf(key, sizeof(key), "%s{disk=\"%s\"} ", name, dir);
    const char *at = strstr(text, key);
    return at ? strtod(at + strlen(key), NULL) : -1;
}

static void test_metrics(void **state)
{
    char dir[512];
    curve_metrics *reg;
    assert_int_equal(curve_metrics_new(&reg), 0);
    tu_path(dir, sizeof(dir), *state, "chunkfilepool");
    curve_cfp_opts o = {.dir = dir, .chunk_size = TEST_CHUNK_SIZE, .target_files = 3,
                        .metrics = reg};
    curve_cfp *p;
    assert_int_equal(curve_cfp_open(&o, &p), 0);
    assert_int_equal(curve_cfp_start(p), 0);
    assert_int_equal(curve_cfp_wait(p, UINT64_MAX, TEST_WAIT_MS), 0);
    char *text;
    assert_int_equal(curve_metrics_render_prometheus(reg, &text, NULL), 0);
    assert_true(metric_value(text, "curve_chunkfilepool_ready_files", dir) == 3.0);
    assert_true(metric_value(text, "curve_chunkfilepool_formatted_files", dir) == 3.0);
    assert_true(metric_value(text, "curve_chunkfilepool_format_target_files", dir) == 3.0);
    assert_true(metric_value(text, "curve_chunkfilepool_dirty_files", dir) == 0.0);
    assert_true(metric_value(text, "curve_chunkfilepool_written_bytes", dir) ==
                3.0 * TEST_FILE_SIZE);
    assert_true(metric_value(text, "curve_chunkfilepool_disk_failed", dir) == 0.0);
    assert_true(metric_value(text, "curve_chunkfilepool_empty_creates_total", dir) == 0.0);
    free(text);
    uint8_t page[CURVE_CHUNK_HEADER_SIZE] = {0};
    char dst[600];
    for (int i = 0; i < 4; i++) { /* 3 from the pool, 1 created on demand */
        char name[16];
        snprintf(name, sizeof(name), "c%d", i);
        tu_path(dst, sizeof(dst), *state, name);
        assert_int_equal(curve_cfp_get(p, dst, page), 0);
    }
    assert_int_equal(curve_metrics_render_prometheus(reg, &text, NULL), 0);
    assert_true(metric_value(text, "curve_chunkfilepool_ready_files", dir) == 0.0);
    assert_true(metric_value(text, "curve_chunkfilepool_empty_creates_total", dir) == 1.0);
    free(text);
    curve_cfp_mark_failed(p, -EIO);
    assert_int_equal(curve_metrics_render_prometheus(reg, &text, NULL), 0);
    assert_true(metric_value(text, "curve_chunkfilepool_disk_failed", dir) == 1.0);
    free(text);
    curve_cfp_close(p);
    assert_int_equal(curve_metrics_count(reg), 0); /* close unregistered them */
    curve_metrics_free(reg);
}

static void test_zero_error_marks_failed(void **state)
{
    char dst[600];
    uint8_t page[CURVE_CHUNK_HEADER_SIZE] = {0};
    curve_cfp *p = tu_pool(*state, 1, true);
    assert_int_equal(curve_cfp_wait(p, UINT64_MAX, TEST_WAIT_MS), 0);
    tu_path(dst, sizeof(dst), *state, "c1");
    assert_int_equal(curve_cfp_get(p, dst, page), 0);
    assert_int_equal(curve_failpoint_set("chunkfilepool.zero", "return(EIO)"), 0);
    assert_int_equal(curve_cfp_put(p, dst), 0);
    assert_int_equal(curve_cfp_wait(p, 1, TEST_WAIT_MS), CURVE_ERR_DISK_FAIL);
    assert_int_equal(curve_cfp_failed(p), -EIO);
    curve_cfp_stats st;
    curve_cfp_get_stats(p, &st);
    assert_int_equal(st.ready, 0); /* the file that failed to zero is never handed out */
    curve_cfp_close(p);
}

/* A crash inside curve_cfp_replace after link() and before rename() leaves the live chunk
 * hard-linked into the pool: reopening must drop the pool name, never zero the live data. */
static void test_replace_crash_keeps_live_chunk(void **state)
{
    char live[600], fresh[600], link_path[600];
    const char *root = *state;
    uint8_t page[CURVE_CHUNK_HEADER_SIZE] = {0};
    curve_cfp *p = tu_pool(root, 2, true);
    assert_int_equal(curve_cfp_wait(p, UINT64_MAX, TEST_WAIT_MS), 0);
    tu_path(live, sizeof(live), root, "live");
    tu_path(fresh, sizeof(fresh), root, "fresh");
    assert_int_equal(curve_cfp_get(p, live, page), 0);
    assert_int_equal(curve_cfp_get(p, fresh, page), 0);
    curve_cfp_close(p);
    int fd = open(live, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "LIVE", 4, CURVE_CHUNK_HEADER_SIZE), 4);
    close(fd);
    tu_path(link_path, sizeof(link_path), root, "chunkfilepool/77.dirty");
    assert_int_equal(link(live, link_path), 0);

    p = tu_pool(root, 2, true);
    assert_false(tu_exists(link_path));
    assert_int_equal(curve_cfp_wait(p, UINT64_MAX, TEST_WAIT_MS), 0);
    char got[4];
    fd = open(live, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, got, 4, CURVE_CHUNK_HEADER_SIZE), 4);
    close(fd);
    assert_memory_equal(got, "LIVE", 4);

    /* a completed replace: live now has fresh's inode, the old one is recycled */
    assert_int_equal(curve_cfp_replace(p, fresh, live), 0);
    assert_false(tu_exists(fresh));
    fd = open(live, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, got, 4, CURVE_CHUNK_HEADER_SIZE), 4);
    close(fd);
    assert_memory_equal(got, "\0\0\0\0", 4);
    assert_int_equal(curve_cfp_wait(p, UINT64_MAX, TEST_WAIT_MS), 0);
    curve_cfp_stats st;
    curve_cfp_get_stats(p, &st);
    /* reopened with both files in use and no in_use_files: 2 new files were formatted */
    assert_int_equal(st.formatted, 2);
    assert_int_equal(st.ready, 3);
    assert_int_equal(st.zeroed, 1);
    assert_int_equal(st.puts, 1);
    curve_cfp_close(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_codec),
        cmocka_unit_test_setup_teardown(test_bad_opts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_target_from_share, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format_resume_after_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_put_zeroing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_pool_creates_on_demand, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nospace_when_fs_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format_disk_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format_enospc_is_disk_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_error_marks_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_error_marks_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace_crash_keeps_live_chunk, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
