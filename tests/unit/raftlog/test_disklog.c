/* Unit tests of the segmented Raft disk log (src/raft/io/disklog.c). */
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "common/crc32c.h"
#include "common/failpoint.h"
#include "curve/errors.h"
#include "raft/io/disklog.h"
#include "raftlog_test_util.h"

#define SMALL_SEG (64u << 10)
#define MAX_PAYLOAD 3000u

static void small_opts(rlog_opts *o)
{
    rlog_opts_default(o);
    o->segment_bytes = SMALL_SEG;
    o->max_entry_bytes = 16u << 10;
    o->cache_bytes = 32u << 10; /* small: most reads go to disk */
}

/* Appends entries [from, to] with `term`, `per_call` entries per rlog_append, then waits. */
static void append_range(rlog *log, uint64_t from, uint64_t to, uint64_t term, size_t per_call,
                         uint32_t max_len, bool wait)
{
    static uint8_t bufs[64][MAX_PAYLOAD > (16u << 10) ? MAX_PAYLOAD : (16u << 10)];
    rlog_entry ents[64];
    rt_waiter w;
    rt_waiter_init(&w);
    unsigned calls = 0;
    assert_true(per_call <= 64);
    for (uint64_t i = from; i <= to;) {
        size_t n = 0;
        while (n < per_call && i <= to) {
            uint32_t len = rt_len(i, max_len);
            rt_fill(bufs[n], len, i, term);
            ents[n] = (rlog_entry){.index = i, .term = term, .type = (uint8_t)(i % 3),
                                   .data = bufs[n], .len = len};
            n++;
            i++;
        }
        assert_int_equal(rlog_append(log, ents, n, wait ? rt_cb : NULL, &w), 0);
        calls++;
    }
    if (wait) {
        assert_int_equal(rt_wait(&w, calls), 0);
        assert_int_equal(w.errors, 0);
    }
    rt_waiter_destroy(&w);
}

static void check_entry(const rlog_entry *e, uint64_t index, uint64_t term, uint32_t max_len)
{
    uint8_t exp[16u << 10];
    uint32_t len = rt_len(index, max_len);
    rt_fill(exp, len, index, term);
    assert_int_equal(e->index, index);
    assert_int_equal(e->term, term);
    assert_int_equal(e->type, index % 3);
    assert_int_equal(e->len, len);
    if (len)
        assert_memory_equal(e->data, exp, len);
}

static void check_range(rlog *log, uint64_t from, uint64_t to, uint64_t term, uint32_t max_len)
{
    for (uint64_t i = from; i <= to; i++) {
        rlog_entry e;
        int rc = rlog_read(log, i, &e);
        if (rc != 0)
            fail_msg("read %" PRIu64 ": %d", i, rc);
        check_entry(&e, i, term, max_len);
        uint64_t t = 0;
        assert_int_equal(rlog_term_at(log, i, &t), 0);
        assert_int_equal(t, term);
        rlog_entry_release(&e);
    }
}

static unsigned count_fds(void)
{
    FILE *p = popen("ls /proc/self/fd | wc -l", "r"); /* counts the child's fds: same set */
    unsigned n = 0;
    if (p) {
        if (fscanf(p, "%u", &n) != 1)
            n = 0;
        pclose(p);
    }
    return n;
}

static unsigned count_segments(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "ls %s | grep -c '^log_' ", dir);
    FILE *p = popen(cmd, "r");
    unsigned n = 0;
    if (p) {
        if (fscanf(p, "%u", &n) != 1)
            n = 0;
        pclose(p);
    }
    return n;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_codec(void **state)
{
    (void)state;
    uint8_t rec[RLOG__HDR_SIZE + 5];
    rlog__hdr h = {.version = RLOG__VERSION, .type = 7, .flags = RLOG__FLAG_WRITE_START,
                   .term = 0x1122334455667788ull, .index = 42, .data_len = 5};
    memcpy(rec + RLOG__HDR_SIZE, "hello", 5);
    h.data_crc = curve_crc32c(0, "hello", 5);
    rlog__encode_hdr(&h, rec);
    /* little-endian on disk */
    assert_int_equal(rec[0], 0x52);
    assert_int_equal(rec[8], 0x88);
    assert_int_equal(rec[16], 42);
    rlog__hdr d;
    const char *why = NULL;
    assert_int_equal(rlog__decode_record(rec, sizeof(rec), &d, &why), 0);
    assert_int_equal(d.term, h.term);
    assert_int_equal(d.index, 42);
    assert_int_equal(d.type, 7);
    assert_int_equal(d.flags, RLOG__FLAG_WRITE_START);
    assert_int_equal(d.data_len, 5);
    assert_int_equal(rlog__decode_record(rec, sizeof(rec) - 1, &d, &why), CURVE_ERR_CORRUPT);
    assert_string_equal(why, "truncated data");
    for (size_t i = 0; i < sizeof(rec); i++) {
        rec[i] ^= 0x10;
        assert_int_equal(rlog__decode_record(rec, sizeof(rec), &d, NULL), CURVE_ERR_CORRUPT);
        rec[i] ^= 0x10;
    }
}

static void test_bad_args(void **state)
{
    (void)state;
    char *dir = rt_mkdtemp();
    assert_non_null(dir);
    rlog_opts o;
    small_opts(&o);
    rlog *log = NULL;
    rlog_opts bad = o;
    bad.segment_bytes = 5000;
    assert_int_equal(rlog_open(dir, &bad, &log, NULL), -EINVAL);
    bad = o;
    bad.max_entry_bytes = SMALL_SEG;
    assert_int_equal(rlog_open(dir, &bad, &log, NULL), -EINVAL);

    rlog_info info;
    assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
    assert_int_equal(info.first_index, 1);
    assert_int_equal(info.last_index, 0);
    rlog_entry e = {.index = 2, .term = 1};
    assert_int_equal(rlog_append(log, &e, 1, NULL, NULL), -EINVAL); /* gap */
    e.index = 1;
    e.len = o.max_entry_bytes + 1;
    e.data = "x";
    assert_int_equal(rlog_append(log, &e, 1, NULL, NULL), -EINVAL); /* too big */
    assert_int_equal(rlog_truncate_suffix(log, 5, NULL, NULL), -EINVAL);
    assert_int_equal(rlog_reset(log, 0, NULL, NULL), -EINVAL);
    rlog_entry out;
    assert_int_equal(rlog_read(log, 1, &out), -ENOENT);
    append_range(log, 1, 3, 5, 3, 100, true);
    e = (rlog_entry){.index = 4, .term = 4};
    assert_int_equal(rlog_append(log, &e, 1, NULL, NULL), -EINVAL); /* term goes back */
    rlog_close(log);
    rt_rmtree(dir);
}

static void test_roundtrip_many_segments(void **state)
{
    (void)state;
    char *dir = rt_mkdtemp();
    rlog_opts o;
    small_opts(&o);
    rlog *log = NULL;
    rlog_info info;
    assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
    const uint64_t n = 600;
    append_range(log, 1, n, 3, 7, MAX_PAYLOAD, true);
    assert_int_equal(rlog_last_index(log), n);
    assert_int_equal(rlog_durable_index(log), n);
    check_range(log, 1, n, 3, MAX_PAYLOAD);
    rlog_stats st;
    rlog_get_stats(log, &st);
    assert_int_equal(st.entries, n);
    assert_true(st.segments_created >= 5);
    rlog_close(log);
    unsigned segs = count_segments(dir);
    assert_true(segs >= 5);

    unsigned fds_before = count_fds();
    assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
    assert_int_equal(info.first_index, 1);
    assert_int_equal(info.last_index, n);
    assert_int_equal(info.last_term, 3);
    assert_int_equal(info.segments, segs);
    assert_false(info.tail_truncated);
    check_range(log, 1, n, 3, MAX_PAYLOAD);
    /* Reading every segment keeps at most 4 closed segments open (+ dir + open segment). */
    unsigned fds = count_fds();
    assert_true(segs > 6);
    if (fds > fds_before + 2 + 4)
        fail_msg("%u fds open after reading %u segments (%u before open)", fds, segs, fds_before);
    rlog_entry range[50];
    size_t got = 0;
    assert_int_equal(rlog_read_range(log, 100, 50, SIZE_MAX, range, &got), 0);
    assert_int_equal(got, 50);
    for (size_t i = 0; i < got; i++) {
        check_entry(&range[i], 100 + i, 3, MAX_PAYLOAD);
        rlog_entry_release(&range[i]);
    }
    assert_int_equal(rlog_read_range(log, n - 2, 50, SIZE_MAX, range, &got), 0);
    assert_int_equal(got, 3);
    for (size_t i = 0; i < got; i++)
        rlog_entry_release(&range[i]);
    /* Append after reopen continues the open segment. */
    append_range(log, n + 1, n + 20, 4, 5, MAX_PAYLOAD, true);
    rlog_close(log);
    assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
    assert_int_equal(info.last_index, n + 20);
    assert_int_equal(info.last_term, 4);
    check_range(log, 1, n, 3, MAX_PAYLOAD);
    check_range(log, n + 1, n + 20, 4, MAX_PAYLOAD);
    rlog_close(log);
    rt_rmtree(dir);
}

/* Reads of entries that are queued but not yet durable come from memory. */
static void test_read_before_durable(void **state)
{
    (void)state;
    char *dir = rt_mkdtemp();
    rlog_opts o;
    small_opts(&o);
    o.cache_bytes = 0;
    rlog *log = NULL;
    assert_int_equal(rlog_open(dir, &o, &log, NULL), 0);
    append_range(log, 1, 200, 1, 10, 500, false);
    check_range(log, 1, 200, 1, 500); /* some durable (disk), some maybe still queued */
    rt_waiter w;
    rt_waiter_init(&w);
    assert_int_equal(rlog_truncate_suffix(log, 201, rt_cb, &w), 0); /* barrier: no-op */
    assert_int_equal(rt_wait(&w, 1), 0);
    assert_int_equal(rlog_durable_index(log), 200);
    check_range(log, 1, 200, 1, 500);
    rt_waiter_destroy(&w);
    rlog_close(log);
    rt_rmtree(dir);
}

typedef struct gc_ctx {
    rlog *log;
    pthread_mutex_t *mu; /* serialises index assignment + rlog_append */
    uint64_t *next;
    unsigned per_thread;
    rt_waiter *w;
} gc_ctx;

static void *gc_thread(void *arg)
{
    gc_ctx *c = arg;
    uint8_t buf[512];
    for (unsigned i = 0; i < c->per_thread; i++) {
        pthread_mutex_lock(c->mu);
        uint64_t idx = (*c->next)++;
        uint32_t len = rt_len(idx, sizeof(buf));
        rt_fill(buf, len, idx, 1);
        rlog_entry e = {.index = idx, .term = 1, .type = (uint8_t)(idx % 3), .data = buf,
                        .len = len};
        int rc = rlog_append(c->log, &e, 1, rt_cb, c->w);
        pthread_mutex_unlock(c->mu);
        if (rc != 0)
            return (void *)(intptr_t)rc;
    }
    return NULL;
}

static void test_group_commit(void **state)
{
    (void)state;
    char *dir = rt_mkdtemp();
    rlog_opts o;
    rlog_opts_default(&o);
    rlog *log = NULL;
    assert_int_equal(rlog_open(dir, &o, &log, NULL), 0);
    enum { THREADS = 8, PER = 150 };
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    uint64_t next = 1;
    rt_waiter w;
    rt_waiter_init(&w);
    gc_ctx c = {log, &mu, &next, PER, &w};
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, gc_thread, &c), 0);
    for (int i = 0; i < THREADS; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        assert_null(ret);
    }
    assert_int_equal(rt_wait(&w, THREADS * PER), 0);
    assert_int_equal(w.errors, 0);
    rlog_stats st;
    rlog_get_stats(log, &st);
    print_message("group commit: %" PRIu64 " appends, %" PRIu64 " fdatasyncs, max batch %" PRIu64
                  "\n", st.append_calls, st.syncs, st.max_batch);
    assert_int_equal(st.append_calls, THREADS * PER);
    assert_int_equal(st.entries, THREADS * PER);
    assert_true(st.syncs < st.append_calls);
    assert_true(st.max_batch > 1);
    rlog_close(log);
    rlog_info info;
    assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
    assert_int_equal(info.last_index, THREADS * PER);
    for (uint64_t i = 1; i <= THREADS * PER; i++) {
        rlog_entry e;
        assert_int_equal(rlog_read(log, i, &e), 0);
        check_entry(&e, i, 1, 512);
        rlog_entry_release(&e);
    }
    rlog_close(log);
    rt_waiter_destroy(&w);
    rt_rmtree(dir);
}

static void test_truncate_suffix(void **state)
{
    (void)state;
    char *dir = rt_mkdtemp();
    rlog_opts o;
    small_opts(&o);
    rlog *log = NULL;
    rlog_info info;
    assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
    append_range(log, 1, 300, 1, 10, MAX_PAYLOAD, true);
    unsigned segs_before = count_segments(dir);
    /* Truncate into an older segment: newer segment files must go. */
    rt_waiter w;
    rt_waiter_init(&w);
    assert_int_equal(rlog_truncate_suffix(log, 40, rt_cb, &w), 0);
    assert_int_equal(rlog_last_index(log), 39);
    uint64_t t;
    assert_int_equal(rlog_term_at(log, 40, &t), -ENOENT);
    append_range(log, 40, 120, 2, 9, MAX_PAYLOAD, true);
    assert_int_equal(rt_wait(&w, 1), 0);
    assert_int_equal(w.errors, 0);
    assert_true(count_segments(dir) < segs_before);
    check_range(log, 1, 39, 1, MAX_PAYLOAD);
    check_range(log, 40, 120, 2, MAX_PAYLOAD);

    /* Truncate while the appends it removes are still queued, then append again. */
    append_range(log, 121, 200, 2, 4, MAX_PAYLOAD, false);
    assert_int_equal(rlog_truncate_suffix(log, 150, rt_cb, &w), 0);
    append_range(log, 150, 180, 3, 4, MAX_PAYLOAD, true);
    assert_int_equal(rt_wait(&w, 2), 0);
    check_range(log, 121, 149, 2, MAX_PAYLOAD);
    check_range(log, 150, 180, 3, MAX_PAYLOAD);
    assert_int_equal(rlog_durable_index(log), 180);
    rlog_close(log);

    assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
    assert_int_equal(info.last_index, 180);
    assert_int_equal(info.last_term, 3);
    assert_false(info.tail_truncated);
    check_range(log, 1, 39, 1, MAX_PAYLOAD);
    check_range(log, 40, 149, 2, MAX_PAYLOAD);
    check_range(log, 150, 180, 3, MAX_PAYLOAD);
    /* Truncate everything: the next index must survive a restart. */
    assert_int_equal(rlog_truncate_suffix(log, 1, rt_cb, &w), 0);
    assert_int_equal(rt_wait(&w, 3), 0);
    rlog_close(log);
    assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
    assert_int_equal(info.first_index, 1);
    assert_int_equal(info.last_index, 0);
    append_range(log, 1, 5, 9, 2, 100, true);
    check_range(log, 1, 5, 9, 100);
    rlog_close(log);
    rt_waiter_destroy(&w);
    rt_rmtree(dir);
}

static void test_compact_and_reset(void **state)
{
    (void)state;
    char *dir = rt_mkdtemp();
    rlog_opts o;
    small_opts(&o);
    rlog *log = NULL;
    rlog_info info;
    assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
    append_range(log, 1, 500, 1, 10, MAX_PAYLOAD, true);
    unsigned segs = count_segments(dir);
    rt_waiter w;
    rt_waiter_init(&w);
    assert_int_equal(rlog_compact_prefix(log, 250, rt_cb, &w), 0);
    assert_int_equal(rt_wait(&w, 1), 0);
    assert_int_equal(w.errors, 0);
    uint64_t first = rlog_first_index(log);
    assert_true(first > 1 && first <= 251);
    assert_true(count_segments(dir) < segs);
    rlog_entry e;
    assert_int_equal(rlog_read(log, first - 1, &e), -ENOENT);
    check_range(log, first, 500, 1, MAX_PAYLOAD);
    rlog_stats st;
    rlog_get_stats(log, &st);
    assert_true(st.segments_removed > 0);
    /* Compacting everything keeps the open segment. */
    assert_int_equal(rlog_compact_prefix(log, 10000, rt_cb, &w), 0);
    assert_int_equal(rt_wait(&w, 2), 0);
    assert_int_equal(count_segments(dir), 1);
    assert_int_equal(rlog_last_index(log), 500);
    uint64_t first2 = rlog_first_index(log);
    rlog_close(log);
    assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
    assert_int_equal(info.first_index, first2);
    assert_int_equal(info.last_index, 500);
    check_range(log, first2, 500, 1, MAX_PAYLOAD);

    /* Reset beyond the end (snapshot install), then append from there. */
    assert_int_equal(rlog_reset(log, 1000, rt_cb, &w), 0);
    assert_int_equal(rlog_first_index(log), 1000);
    assert_int_equal(rlog_last_index(log), 999);
    assert_int_equal(rt_wait(&w, 3), 0);
    rlog_close(log);
    assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
    assert_int_equal(info.first_index, 1000);
    assert_int_equal(info.last_index, 999);
    append_range(log, 1000, 1100, 7, 10, MAX_PAYLOAD, true);
    rlog_close(log);
    assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
    assert_int_equal(info.first_index, 1000);
    assert_int_equal(info.last_index, 1100);
    check_range(log, 1000, 1100, 7, MAX_PAYLOAD);
    rlog_close(log);
    rt_waiter_destroy(&w);
    rt_rmtree(dir);
}

/* ---- crash simulation --------------------------------------------------------------------- */

typedef struct last_rec {
    size_t off, end;
    uint64_t index;
} last_rec;

static int last_rec_cb(void *arg, const rlog__hdr *h, size_t off)
{
    last_rec *l = arg;
    l->off = off;
    l->end = off + RLOG__HDR_SIZE + h->data_len;
    l->index = h->index;
    return 0;
}

static uint8_t *read_whole(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    uint8_t *b = malloc((size_t)st.st_size);
    assert_non_null(b);
    assert_int_equal(pread(fd, b, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return b;
}

static void write_whole(const char *path, const uint8_t *b, size_t len)
{
    int fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, b, len, 0), (ssize_t)len);
    close(fd);
}

/* Builds a log of `n` entries in `n` separate writes (each acknowledged) in one segment. */
static void build_log(const char *dir, const rlog_opts *o, uint64_t n, uint32_t max_len)
{
    rlog *log = NULL;
    assert_int_equal(rlog_open(dir, o, &log, NULL), 0);
    for (uint64_t i = 1; i <= n; i++)
        append_range(log, i, i, 1, 1, max_len, true);
    rlog_close(log);
}

static void expect_recovered(const char *dir, const rlog_opts *o, uint64_t last, uint32_t max_len,
                             bool truncated, const char *what, size_t off)
{
    rlog *log = NULL;
    rlog_info info;
    int rc = rlog_open(dir, o, &log, &info);
    if (rc != 0)
        fail_msg("%s at offset %zu: open failed %d", what, off, rc);
    if (info.last_index != last)
        fail_msg("%s at offset %zu: last %" PRIu64 " expected %" PRIu64, what, off,
                 info.last_index, last);
    if (info.tail_truncated != truncated)
        fail_msg("%s at offset %zu: tail_truncated %d", what, off, info.tail_truncated);
    check_range(log, 1, last, 1, max_len);
    rlog_close(log);
}

static void test_crash_torn_tail(void **state)
{
    (void)state;
    char *dir = rt_mkdtemp();
    rlog_opts o;
    small_opts(&o);
    const uint64_t n = 12;
    const uint32_t max_len = 700;
    build_log(dir, &o, n, max_len);
    char path[600];
    snprintf(path, sizeof(path), "%s/log_%020d", dir, 1);
    size_t len;
    uint8_t *orig = read_whole(path, &len);
    last_rec lr = {0};
    rlog__scan_result res;
    assert_int_equal(rlog__scan_segment(orig, len, 1, 0, last_rec_cb, &lr, &res), 0);
    assert_int_equal(res.status, RLOG__SCAN_CLEAN);
    assert_int_equal(lr.index, n);
    assert_true(lr.end > lr.off + RLOG__HDR_SIZE);

    uint8_t *img = malloc(len);
    for (size_t x = lr.off; x < lr.end; x++) {
        /* (a) file cut at x (the rest never reached the disk) */
        write_whole(path, orig, len);
        assert_int_equal(truncate(path, (off_t)x), 0);
        expect_recovered(dir, &o, n - 1, max_len, x > lr.off, "cut", x);
        /* (b) bytes [x, end) of the record are zeros (pages not written) */
        memcpy(img, orig, len);
        memset(img + x, 0, lr.end - x);
        write_whole(path, img, len);
        expect_recovered(dir, &o, n - 1, max_len, x > lr.off, "zeroed", x);
        /* (c) one flipped bit at x */
        memcpy(img, orig, len);
        img[x] ^= (uint8_t)(1u << (x % 8));
        write_whole(path, img, len);
        expect_recovered(dir, &o, n - 1, max_len, true, "bitflip", x);
        /* (d) garbage after a cut: still never returned */
        if (x % 97 == 0) {
            memcpy(img, orig, len);
            for (size_t k = x; k < lr.end + 300 && k < len; k++)
                img[k] = (uint8_t)(k * 31 + 7);
            write_whole(path, img, len);
            expect_recovered(dir, &o, n - 1, max_len, true, "garbage", x);
            /* the repaired log accepts new entries, and they survive */
            rlog *log = NULL;
            assert_int_equal(rlog_open(dir, &o, &log, NULL), 0);
            append_range(log, n, n + 2, 2, 3, max_len, true);
            rlog_close(log);
            rlog_info info;
            assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
            assert_int_equal(info.last_index, n + 2);
            assert_false(info.tail_truncated);
            check_range(log, n, n + 2, 2, max_len);
            rlog_close(log);
        }
    }
    free(img);
    free(orig);
    rt_rmtree(dir);
}

/* A crash right after a segment roll: the newest segment is empty, shorter than preallocated,
 * or holds only garbage. Recovery keeps the older segments and reuses the newest file. */
static void test_torn_segment_roll(void **state)
{
    (void)state;
    char *dir = rt_mkdtemp();
    rlog_opts o;
    small_opts(&o);
    const uint32_t max_len = 700;
    rlog *log = NULL;
    assert_int_equal(rlog_open(dir, &o, &log, NULL), 0);
    uint64_t n = 0;
    while (count_segments(dir) < 2) {
        n++;
        append_range(log, n, n, 1, 1, max_len, true);
    }
    rlog_close(log);
    uint64_t k = n; /* the entry that opened the second segment */
    char path[600];
    snprintf(path, sizeof(path), "%s/log_%020" PRIu64, dir, k);
    size_t len;
    uint8_t *orig = read_whole(path, &len);
    for (int variant = 0; variant < 3; variant++) {
        write_whole(path, orig, len);
        if (variant == 0) {
            assert_int_equal(truncate(path, 0), 0); /* created, never preallocated */
        } else if (variant == 1) {
            assert_int_equal(truncate(path, 0), 0);
            assert_int_equal(truncate(path, (off_t)o.segment_bytes), 0); /* preallocated only */
        } else {
            uint8_t junk[100];
            for (size_t i = 0; i < sizeof(junk); i++)
                junk[i] = (uint8_t)(i * 13 + 1);
            int fd = open(path, O_WRONLY);
            assert_true(fd >= 0);
            assert_int_equal(pwrite(fd, junk, sizeof(junk), 0), (ssize_t)sizeof(junk));
            close(fd);
        }
        rlog_info info;
        assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
        assert_int_equal(info.last_index, k - 1);
        assert_int_equal(info.segments, 2);
        assert_int_equal(info.tail_truncated, variant == 2);
        check_range(log, 1, k - 1, 1, max_len);
        append_range(log, k, k + 3, 2, 2, max_len, true);
        rlog_close(log);
        assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
        assert_int_equal(info.last_index, k + 3);
        assert_false(info.tail_truncated);
        check_range(log, k, k + 3, 2, max_len);
        rlog_close(log);
    }
    free(orig);

    /* ENOSPC while creating the next segment fails the append; the log reopens intact. */
    assert_int_equal(rlog_open(dir, &o, &log, NULL), 0);
    assert_int_equal(curve_failpoint_set("raftlog.create", "return(ENOSPC)"), 0);
    rt_waiter w;
    rt_waiter_init(&w);
    uint64_t i = k + 4;
    int status = 0;
    unsigned expect = 0;
    for (; status == 0; i++) {
        uint8_t buf[700];
        rt_fill(buf, sizeof(buf), i, 2);
        rlog_entry e = {.index = i, .term = 2, .data = buf, .len = sizeof(buf)};
        assert_int_equal(rlog_append(log, &e, 1, rt_cb, &w), 0);
        assert_int_equal(rt_wait(&w, ++expect), 0);
        status = w.last_status;
        assert_true(i < k + 200); /* the segment fills long before */
    }
    assert_int_equal(status, -ENOSPC);
    uint64_t durable = rlog_durable_index(log);
    assert_int_equal(durable, i - 2);
    rlog_close(log);
    curve_failpoint_clear_all();
    rlog_info info;
    assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
    assert_int_equal(info.last_index, durable);
    rlog_close(log);
    rt_waiter_destroy(&w);
    rt_rmtree(dir);
}

static void test_corrupt_middle_is_error(void **state)
{
    (void)state;
    char *dir = rt_mkdtemp();
    rlog_opts o;
    small_opts(&o);
    const uint32_t max_len = 700;
    /* Two segments: entries in separate writes. */
    rlog *log = NULL;
    assert_int_equal(rlog_open(dir, &o, &log, NULL), 0);
    uint64_t n = 0;
    while (count_segments(dir) < 2 || n < 10) {
        n++;
        append_range(log, n, n, 1, 1, max_len, true);
    }
    n += 10;
    for (uint64_t i = n - 9; i <= n; i++)
        append_range(log, i, i, 1, 1, max_len, true);
    rlog_close(log);

    char first[600];
    snprintf(first, sizeof(first), "%s/log_%020d", dir, 1);
    size_t len;
    uint8_t *orig = read_whole(first, &len);
    last_rec lr = {0};
    rlog__scan_result res;
    assert_int_equal(rlog__scan_segment(orig, len, 1, 0, last_rec_cb, &lr, &res), 0);
    uint64_t seg2 = lr.index + 1;
    /* (a) a flip anywhere in a closed segment is corruption */
    uint8_t *img = malloc(len);
    memcpy(img, orig, len);
    img[lr.off + RLOG__HDR_SIZE / 2] ^= 1;
    write_whole(first, img, len);
    assert_int_equal(rlog_open(dir, &o, &log, NULL), CURVE_ERR_CORRUPT);
    uint8_t *after = read_whole(first, &len);
    assert_memory_equal(after, img, len); /* untouched */
    free(after);
    write_whole(first, orig, len);
    free(orig);

    /* (b) a flip in the middle of the open segment, followed by later durable writes */
    char last[600];
    snprintf(last, sizeof(last), "%s/log_%020" PRIu64, dir, seg2);
    orig = read_whole(last, &len);
    last_rec mid = {0};
    size_t idx_target = 3, seen = 0;
    /* find the 3rd record of the open segment */
    rlog__scan_result r2;
    assert_int_equal(rlog__scan_segment(orig, len, seg2, 1, last_rec_cb, &lr, &r2), 0);
    assert_true(r2.count > idx_target + 2);
    size_t off = 0;
    while (seen < idx_target) {
        rlog__hdr h;
        assert_int_equal(rlog__decode_record(orig + off, len - off, &h, NULL), 0);
        mid.off = off;
        off = (off + RLOG__HDR_SIZE + h.data_len + RLOG_PAGE_SIZE - 1) / RLOG_PAGE_SIZE *
              RLOG_PAGE_SIZE;
        seen++;
    }
    free(img);
    img = malloc(len);
    memcpy(img, orig, len);
    img[mid.off + RLOG__HDR_SIZE + 1] ^= 0x80; /* data of a record in a middle write */
    write_whole(last, img, len);
    assert_int_equal(rlog_open(dir, &o, &log, NULL), CURVE_ERR_CORRUPT);
    /* header damage is corruption too */
    memcpy(img, orig, len);
    img[mid.off + 9] ^= 0x04;
    write_whole(last, img, len);
    assert_int_equal(rlog_open(dir, &o, &log, NULL), CURVE_ERR_CORRUPT);
    /* a whole lost page in the middle (zeros) followed by later writes */
    memcpy(img, orig, len);
    memset(img + mid.off, 0, RLOG_PAGE_SIZE);
    write_whole(last, img, len);
    assert_int_equal(rlog_open(dir, &o, &log, NULL), CURVE_ERR_CORRUPT);
    /* restored: opens fine */
    write_whole(last, orig, len);
    rlog_info info;
    assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
    assert_int_equal(info.last_index, n);
    rlog_close(log);
    free(img);
    free(orig);

    /* (c) a missing segment in the middle is corruption */
    char third[600];
    log = NULL;
    assert_int_equal(rlog_open(dir, &o, &log, NULL), 0);
    uint64_t m = n;
    while (count_segments(dir) < 3) {
        m++;
        append_range(log, m, m, 1, 1, max_len, true);
    }
    rlog_close(log);
    snprintf(third, sizeof(third), "%s/log_%020" PRIu64, dir, seg2);
    assert_int_equal(unlink(third), 0);
    assert_int_equal(rlog_open(dir, &o, &log, NULL), CURVE_ERR_CORRUPT);
    rt_rmtree(dir);
}

static void test_scan_rules(void **state)
{
    (void)state;
    /* Build an image by hand: write A = records 5,6 at 0; write B = record 7 at 4096. */
    uint8_t img[3 * RLOG_PAGE_SIZE];
    memset(img, 0, sizeof(img));
    size_t offs[3] = {0, RLOG__HDR_SIZE + 10, RLOG_PAGE_SIZE};
    for (int i = 0; i < 3; i++) {
        uint8_t data[10];
        rt_fill(data, sizeof(data), 5 + i, 2);
        rlog__hdr h = {.version = RLOG__VERSION, .term = 2, .index = 5 + (uint64_t)i,
                       .data_len = 10, .data_crc = curve_crc32c(0, data, 10),
                       .flags = i != 1 ? RLOG__FLAG_WRITE_START : 0};
        rlog__encode_hdr(&h, img + offs[i]);
        memcpy(img + offs[i] + RLOG__HDR_SIZE, data, 10);
    }
    rlog__scan_result r;
    assert_int_equal(rlog__scan_segment(img, sizeof(img), 5, 1, NULL, NULL, &r), 0);
    assert_int_equal(r.status, RLOG__SCAN_CLEAN);
    assert_int_equal(r.count, 3);
    assert_int_equal(r.last_term, 2);
    /* wrong first index */
    assert_int_equal(rlog__scan_segment(img, sizeof(img), 4, 1, NULL, NULL, &r), 0);
    assert_int_equal(r.count, 0);
    assert_int_equal(r.status, RLOG__SCAN_CORRUPT); /* record 7 starts a later write */
    /* term going back relative to the previous segment */
    assert_int_equal(rlog__scan_segment(img, sizeof(img), 5, 3, NULL, NULL, &r), 0);
    assert_int_equal(r.count, 0);
    /* damage in record 6 (same write as 5) followed by write B: corruption */
    img[offs[1] + RLOG__HDR_SIZE] ^= 1;
    assert_int_equal(rlog__scan_segment(img, sizeof(img), 5, 1, NULL, NULL, &r), 0);
    assert_int_equal(r.status, RLOG__SCAN_CORRUPT);
    assert_int_equal(r.count, 1);
    img[offs[1] + RLOG__HDR_SIZE] ^= 1;
    /* damage in record 7 (last write): torn, 2 records kept */
    img[offs[2] + 3] ^= 1;
    assert_int_equal(rlog__scan_segment(img, sizeof(img), 5, 1, NULL, NULL, &r), 0);
    assert_int_equal(r.status, RLOG__SCAN_TORN);
    assert_int_equal(r.count, 2);
    assert_int_equal(r.end_off, offs[1] + RLOG__HDR_SIZE + 10);
    assert_non_null(r.why);
    img[offs[2] + 3] ^= 1;
    /* record 7 without WRITE_START after padding: torn (it cannot be a later write) */
    rlog__hdr h;
    assert_int_equal(rlog__decode_hdr(img + offs[2], &h, NULL), 0);
    h.flags = 0;
    rlog__encode_hdr(&h, img + offs[2]);
    assert_int_equal(rlog__scan_segment(img, sizeof(img), 5, 1, NULL, NULL, &r), 0);
    assert_int_equal(r.status, RLOG__SCAN_TORN);
    assert_int_equal(r.count, 2);
}

/* A write ending a few bytes before a page boundary: the zero padding is shorter than a
 * header and the next write's header follows right after it. */
static void test_scan_short_padding(void **state)
{
    (void)state;
    static uint8_t img[2 * RLOG_PAGE_SIZE];
    static uint8_t data[RLOG_PAGE_SIZE];
    for (uint32_t pad = 1; pad < RLOG__HDR_SIZE + 2; pad++) {
        memset(img, 0, sizeof(img));
        uint32_t len = RLOG_PAGE_SIZE - RLOG__HDR_SIZE - pad;
        rt_fill(data, len, 1, 1);
        rlog__hdr h = {.version = RLOG__VERSION, .term = 1, .index = 1, .data_len = len,
                       .data_crc = curve_crc32c(0, data, len), .flags = RLOG__FLAG_WRITE_START};
        rlog__encode_hdr(&h, img);
        memcpy(img + RLOG__HDR_SIZE, data, len);
        h.index = 2;
        h.data_len = 8;
        h.data_crc = curve_crc32c(0, data, 8);
        rlog__encode_hdr(&h, img + RLOG_PAGE_SIZE);
        memcpy(img + RLOG_PAGE_SIZE + RLOG__HDR_SIZE, data, 8);
        rlog__scan_result r;
        assert_int_equal(rlog__scan_segment(img, sizeof(img), 1, 0, NULL, NULL, &r), 0);
        assert_int_equal(r.status, RLOG__SCAN_CLEAN);
        assert_int_equal(r.count, 2);
    }
}

static void test_write_faults(void **state)
{
    (void)state;
    char *dir = rt_mkdtemp();
    rlog_opts o;
    small_opts(&o);
    rlog *log = NULL;
    assert_int_equal(rlog_open(dir, &o, &log, NULL), 0);
    append_range(log, 1, 10, 1, 2, 500, true);
    assert_int_equal(curve_failpoint_set("raftlog.sync", "1*return(EIO)"), 0);
    rt_waiter w;
    rt_waiter_init(&w);
    rlog_entry e = {.index = 11, .term = 1, .data = "abc", .len = 3};
    assert_int_equal(rlog_append(log, &e, 1, rt_cb, &w), 0);
    assert_int_equal(rt_wait(&w, 1), 0);
    assert_int_equal(w.errors, 1);
    assert_int_equal(w.last_status, -EIO);
    e.index = 12;
    assert_int_equal(rlog_append(log, &e, 1, rt_cb, &w), -EIO); /* failed log */
    assert_int_equal(rlog_durable_index(log), 10);
    rlog_close(log);
    curve_failpoint_clear_all();
    rlog_info info;
    assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
    assert_true(info.last_index == 10 || info.last_index == 11); /* 11 was never acknowledged */
    check_range(log, 1, 10, 1, 500);
    rlog_close(log);

    /* ENOSPC while writing */
    assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
    uint64_t next = info.last_index + 1;
    assert_int_equal(curve_failpoint_set("raftlog.write", "1*return(ENOSPC)"), 0);
    e.index = next;
    assert_int_equal(rlog_append(log, &e, 1, rt_cb, &w), 0);
    assert_int_equal(rt_wait(&w, 2), 0);
    assert_int_equal(w.last_status, -ENOSPC);
    rlog_close(log);
    curve_failpoint_clear_all();
    assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
    assert_int_equal(info.last_index, next - 1);
    rlog_close(log);
    rt_waiter_destroy(&w);
    rt_rmtree(dir);
}

/* Teardown of tests that set failpoints: a failing test must not leave them on. */
static int clear_failpoints(void **state)
{
    (void)state;
    curve_failpoint_clear_all();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec),
        cmocka_unit_test(test_scan_rules),
        cmocka_unit_test(test_scan_short_padding),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_roundtrip_many_segments),
        cmocka_unit_test(test_read_before_durable),
        cmocka_unit_test(test_group_commit),
        cmocka_unit_test(test_truncate_suffix),
        cmocka_unit_test(test_compact_and_reset),
        cmocka_unit_test(test_crash_torn_tail),
        cmocka_unit_test_teardown(test_torn_segment_roll, clear_failpoints),
        cmocka_unit_test(test_corrupt_middle_is_error),
        cmocka_unit_test_teardown(test_write_faults, clear_failpoints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
