/*
 * Pre-written spare segments of the disk log: the next segment is zero-filled and fsynced in the
 * background as "spare_segment.tmp" and renamed into place when the log rolls (see
 * docs/raft-log.md). Checked here: rolls use the spare (with a thread per log and on a shared
 * disk writer), rolled segments have no unwritten extents (FIEMAP, where supported), a
 * half-written or complete spare left by a crash is deleted on open and never read as log, a
 * zero-filled segment left by a crash after the rename is an empty segment, and a failing
 * preparation (failpoint raftlog.spare) falls back to preallocation without failing the log.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "common/failpoint.h"
#include "curve/errors.h"
#include "raft/io/disklog.h"
#include "raftlog_test_util.h"

#define SEG (64u << 10)
#define LEN 3000u
#define SPARE "spare_segment.tmp"
#define FIEMAP_MAX_EXTENTS 64 /* a 64 KiB file has at most 16 extents of 4 KiB */

static void opts(rlog_opts *o, rlog_disk *disk)
{
    rlog_opts_default(o);
    o->segment_bytes = SEG;
    o->max_entry_bytes = 8u << 10;
    o->disk = disk;
}

/* Appends [from, to] one entry per call, waiting for each to be durable. */
static void append_sync(rlog *log, uint64_t from, uint64_t to, uint64_t term)
{
    rt_waiter w;
    rt_waiter_init(&w);
    uint8_t buf[LEN];
    unsigned n = 0;
    for (uint64_t i = from; i <= to; i++) {
        rt_fill(buf, LEN, i, term);
        rlog_entry e = {.index = i, .term = term, .data = buf, .len = LEN};
        assert_int_equal(rlog_append(log, &e, 1, rt_cb, &w), 0);
        assert_int_equal(rt_wait(&w, ++n), 0);
    }
    assert_int_equal(w.errors, 0);
    rt_waiter_destroy(&w);
}

static void check(rlog *log, uint64_t from, uint64_t to, uint64_t term)
{
    uint8_t buf[LEN];
    for (uint64_t i = from; i <= to; i++) {
        rlog_entry e;
        assert_int_equal(rlog_read(log, i, &e), 0);
        assert_int_equal(e.term, term);
        assert_int_equal(e.len, LEN);
        rt_fill(buf, LEN, i, term);
        assert_memory_equal(e.data, buf, LEN);
        rlog_entry_release(&e);
    }
}

static bool exists(const char *dir, const char *name, off_t *size)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    struct stat st;
    if (stat(p, &st) != 0)
        return false;
    if (size)
        *size = st.st_size;
    return true;
}

/* Returns the number of unwritten extents of a file, or -1 when FIEMAP is unsupported. */
static int unwritten_extents(const char *path)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    size_t sz = sizeof(struct fiemap) + FIEMAP_MAX_EXTENTS * sizeof(struct fiemap_extent);
    struct fiemap *fm = calloc(1, sz);
    assert_non_null(fm);
    fm->fm_length = ~(__u64)0;
    fm->fm_extent_count = FIEMAP_MAX_EXTENTS;
    fm->fm_flags = FIEMAP_FLAG_SYNC;
    int n = -1;
    if (ioctl(fd, FS_IOC_FIEMAP, fm) == 0) {
        n = 0;
        for (unsigned i = 0; i < fm->fm_mapped_extents; i++)
            if (fm->fm_extents[i].fe_flags & FIEMAP_EXTENT_UNWRITTEN)
                n++;
    }
    free(fm);
    close(fd);
    return n;
}

/* Rolls several segments; every roll after the first takes the spare prepared meanwhile. */
static void lifecycle(rlog_disk *disk)
{
    char *dir = rt_mkdtemp();
    rlog_opts o;
    opts(&o, disk);
    rlog *log = NULL;
    rlog_info info;
    assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
    uint64_t n = 0;
    rlog_stats st;
    do {
        n++;
        append_sync(log, n, n, 1);
        rlog_get_stats(log, &st);
    } while (st.segments_created < 5);
    /* A spare step runs after each batch and zero-fills twice what the batch wrote: the spare
     * consumed by a roll is ready again before the next roll; only the very first segment
     * predates the first spare. */
    assert_true(st.segments_from_spare + 1 >= st.segments_created);
    assert_true(st.spares_prepared >= st.segments_from_spare);
    assert_int_equal(st.spare_failures, 0);
    /* The next spare is ready by the time half of the open segment is written: full size, all
     * zeros, not a segment. */
    uint64_t used = st.segments_from_spare;
    while (st.spares_prepared <= used) {
        n++;
        append_sync(log, n, n, 1);
        rlog_get_stats(log, &st);
        assert_int_equal(st.segments_from_spare, used); /* before the next roll */
    }
    off_t size = 0;
    assert_true(exists(dir, SPARE, &size));
    assert_int_equal(size, (off_t)SEG);
    char p[600];
    snprintf(p, sizeof(p), "%s/%s", dir, SPARE);
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    static uint8_t img[SEG], zero[SEG];
    assert_int_equal(pread(fd, img, SEG, 0), (ssize_t)SEG);
    close(fd);
    assert_memory_equal(img, zero, SEG);
    /* Segments made from the spare have only written extents (ext4: no extent conversion to
     * commit at fdatasync). Segment 1 may be preallocated; the ones after it are spares. */
    rlog_entry e;
    assert_int_equal(rlog_read(log, n, &e), 0);
    rlog_entry_release(&e);
    int checked = 0;
    for (uint64_t i = 2; i <= n; i++) {
        char name[64];
        snprintf(name, sizeof(name), "log_%020" PRIu64, i);
        if (!exists(dir, name, &size))
            continue;
        assert_int_equal(size, (off_t)SEG);
        snprintf(p, sizeof(p), "%s/%s", dir, name);
        int u = unwritten_extents(p);
        if (u >= 0) {
            assert_int_equal(u, 0);
            checked++;
        }
    }
    printf("spare lifecycle (%s): %" PRIu64 " segments, %" PRIu64 " from spares, %d checked "
           "with FIEMAP\n", disk ? "shared writer" : "own thread", st.segments_created,
           st.segments_from_spare, checked);
    /* Close removes the spare; the log reopens with every entry. */
    rlog_close(log);
    assert_false(exists(dir, SPARE, NULL));
    assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
    assert_int_equal(info.last_index, n);
    assert_false(info.tail_truncated);
    check(log, 1, n, 1);
    /* and keeps rolling onto spares after the restart */
    rlog_stats st2;
    do {
        n++;
        append_sync(log, n, n, 1);
        rlog_get_stats(log, &st2);
    } while (st2.segments_created < 3);
    assert_true(st2.segments_from_spare + 1 >= st2.segments_created);
    rlog_close(log);
    assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
    assert_int_equal(info.last_index, n);
    check(log, 1, n, 1);
    rlog_close(log);
    rt_rmtree(dir);
}

static void test_lifecycle_own_thread(void **state)
{
    (void)state;
    lifecycle(NULL);
}

static void test_lifecycle_shared_writer(void **state)
{
    (void)state;
    rlog_disk *d = NULL;
    assert_int_equal(rlog_disk_create("spare", NULL, &d), 0);
    lifecycle(d);
    rlog_disk_destroy(d);
}

/* Large batches (a few per segment): the spare is zero-filled at twice the rate the log is
 * written, so it is still ready at every roll. */
#define BIG_SEG (2u << 20)
#define BIG_BATCH 160 /* entries of LEN bytes per call: ~480 KB, four batches per segment */

static void large_batches(rlog_disk *disk)
{
    char *dir = rt_mkdtemp();
    rlog_opts o;
    opts(&o, disk);
    o.segment_bytes = BIG_SEG;
    rlog *log = NULL;
    rlog_info info;
    assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
    static uint8_t bufs[BIG_BATCH][LEN];
    rlog_entry ents[BIG_BATCH];
    rt_waiter w;
    rt_waiter_init(&w);
    uint64_t n = 0;
    unsigned calls = 0;
    rlog_stats st;
    do {
        for (unsigned i = 0; i < BIG_BATCH; i++) {
            n++;
            rt_fill(bufs[i], LEN, n, 1);
            ents[i] = (rlog_entry){.index = n, .term = 1, .data = bufs[i], .len = LEN};
        }
        assert_int_equal(rlog_append(log, ents, BIG_BATCH, rt_cb, &w), 0);
        assert_int_equal(rt_wait(&w, ++calls), 0);
        assert_int_equal(w.errors, 0);
        rlog_get_stats(log, &st);
    } while (st.segments_created < 5);
    printf("large batches (%s): %" PRIu64 " segments, %" PRIu64 " from spares\n",
           disk ? "shared writer" : "own thread", st.segments_created, st.segments_from_spare);
    assert_true(st.segments_from_spare + 1 >= st.segments_created);
    rlog_close(log);
    assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
    assert_int_equal(info.last_index, n);
    check(log, 1, n, 1);
    rlog_close(log);
    rt_waiter_destroy(&w);
    rt_rmtree(dir);
}

static void test_large_batches(void **state)
{
    (void)state;
    large_batches(NULL);
    rlog_disk *d = NULL;
    assert_int_equal(rlog_disk_create("spare", NULL, &d), 0);
    large_batches(d);
    rlog_disk_destroy(d);
}

static void write_file(const char *dir, const char *name, const uint8_t *buf, size_t len)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    close(fd);
}

/* A crash while the spare was being prepared (or after it was ready, before the roll) leaves
 * spare_segment.tmp: open() deletes it and never reads it, even when it holds valid records
 * that would continue the log. */
static void test_crash_with_spare_left(void **state)
{
    (void)state;
    char *dir = rt_mkdtemp();
    rlog_opts o;
    opts(&o, NULL);
    rlog *log = NULL;
    rlog_info info;
    assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
    append_sync(log, 1, 10, 1);
    rlog_close(log);
    /* the segment's image: records 1..10, a perfect continuation if it were taken as a log */
    char p[600];
    snprintf(p, sizeof(p), "%s/log_%020d", dir, 1);
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    static uint8_t img[SEG];
    assert_int_equal(pread(fd, img, SEG, 0), (ssize_t)SEG);
    close(fd);
    assert_int_equal(curve_failpoint_set("raftlog.spare", "return(EIO)"), 0);
    for (int variant = 0; variant < 3; variant++) {
        if (variant == 0) { /* half-written: zeros then nothing */
            static const uint8_t zeros[SEG / 2];
            write_file(dir, SPARE, zeros, sizeof(zeros));
        } else if (variant == 1) { /* garbage (a torn page cache) */
            static uint8_t junk[SEG / 3];
            for (size_t i = 0; i < sizeof(junk); i++)
                junk[i] = (uint8_t)(i * 31 + 7);
            write_file(dir, SPARE, junk, sizeof(junk));
        } else { /* records */
            write_file(dir, SPARE, img, SEG);
        }
        assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
        assert_int_equal(info.first_index, 1);
        assert_int_equal(info.last_index, 10 + (uint64_t)variant * 5);
        assert_false(info.tail_truncated);
        /* removed by open itself (the failpoint keeps a fresh spare from being made) */
        assert_false(exists(dir, SPARE, NULL));
        check(log, 1, info.last_index, 1);
        append_sync(log, info.last_index + 1, info.last_index + 5, 1);
        rlog_close(log);
        assert_false(exists(dir, SPARE, NULL));
    }
    rt_rmtree(dir);
}

/* A crash after the spare was renamed into place but before anything was written to it: the
 * newest segment is all zeros, which recovery reads as an empty segment (zero-filled tail =
 * end of log), neither torn nor corrupt; appends continue in it. */
static void test_crash_after_rename(void **state)
{
    (void)state;
    char *dir = rt_mkdtemp();
    rlog_opts o;
    opts(&o, NULL);
    rlog *log = NULL;
    rlog_info info;
    assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
    append_sync(log, 1, 10, 1);
    rlog_close(log);
    static const uint8_t zeros[SEG];
    write_file(dir, "log_00000000000000000011", zeros, SEG);
    assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
    assert_int_equal(info.last_index, 10);
    assert_int_equal(info.segments, 2);
    assert_false(info.tail_truncated);
    assert_int_equal(info.truncated_bytes, 0);
    append_sync(log, 11, 40, 2);
    rlog_close(log);
    assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
    assert_int_equal(info.last_index, 40);
    assert_false(info.tail_truncated);
    check(log, 1, 10, 1);
    check(log, 11, 40, 2);
    rlog_close(log);
    rt_rmtree(dir);
}

/* A failing preparation is not a log failure: rolls fall back to preallocated segments and the
 * spare comes back once the fault is gone. */
static void test_spare_fault(void **state)
{
    (void)state;
    char *dir = rt_mkdtemp();
    rlog_opts o;
    opts(&o, NULL);
    rlog *log = NULL;
    rlog_info info;
    assert_int_equal(curve_failpoint_set("raftlog.spare", "return(EIO)"), 0);
    assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
    uint64_t n = 0;
    rlog_stats st;
    do {
        n++;
        append_sync(log, n, n, 1);
        rlog_get_stats(log, &st);
    } while (st.segments_created < 3);
    assert_int_equal(st.segments_from_spare, 0);
    assert_int_equal(st.spares_prepared, 0);
    assert_true(st.spare_failures > 0);
    assert_false(exists(dir, SPARE, NULL));
    curve_failpoint_clear_all();
    do {
        n++;
        append_sync(log, n, n, 1);
        rlog_get_stats(log, &st);
    } while (st.segments_from_spare < 2);
    rlog_close(log);
    assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
    assert_int_equal(info.last_index, n);
    check(log, 1, n, 1);
    rlog_close(log);
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
        cmocka_unit_test(test_lifecycle_own_thread),
        cmocka_unit_test(test_lifecycle_shared_writer),
        cmocka_unit_test_teardown(test_crash_with_spare_left, clear_failpoints),
        cmocka_unit_test(test_crash_after_rename),
        cmocka_unit_test(test_large_batches),
        cmocka_unit_test_teardown(test_spare_fault, clear_failpoints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
