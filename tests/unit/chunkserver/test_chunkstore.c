/* Unit tests for the per-copyset chunk store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <time.h>

#include "chunkserver/chunkstore.h"
#include "common/failpoint.h"
#include "curve/errors.h"
#include "cs_test_util.h"

typedef struct fixture {
    char *root;
    char data[512];
    curve_cfp *pool;
    curve_chunkstore *cs;
} fixture;

/* Fixtures alive in the current test: a failed assertion leaves the test early, so teardown
 * stops their pool threads and removes their directories. */
#define MAX_LIVE_FX 4
static fixture *live_fx[MAX_LIVE_FX];

static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static curve_chunkstore *open_store(fixture *f, unsigned fd_max, uint32_t align)
{
    curve_chunkstore_opts o = {.data_dir = f->data, .pool = f->pool, .io_align = align,
                               .fd_cache_max = fd_max};
    curve_chunkstore *cs = NULL;
    assert_int_equal(curve_chunkstore_open(&o, &cs), 0);
    return cs;
}

/* Pool of `files` formatted files, store over <root>/copysets/1/data. */
static fixture *fx_new(uint64_t files, unsigned fd_max)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->root = tu_mkdtemp();
    f->pool = tu_pool(f->root, files, true);
    assert_int_equal(curve_cfp_wait(f->pool, UINT64_MAX, TEST_WAIT_MS), 0);
    char p[512];
    tu_path(p, sizeof(p), f->root, "copysets");
    assert_int_equal(mkdir(p, 0755), 0);
    tu_path(p, sizeof(p), f->root, "copysets/1");
    assert_int_equal(mkdir(p, 0755), 0);
    tu_path(f->data, sizeof(f->data), f->root, "copysets/1/data");
    f->cs = open_store(f, fd_max, 0);
    for (int i = 0; i < MAX_LIVE_FX; i++) {
        if (live_fx[i] == NULL) {
            live_fx[i] = f;
            return f;
        }
    }
    fail_msg("too many fixtures");
    return NULL;
}

static void fx_free(fixture *f)
{
    for (int i = 0; i < MAX_LIVE_FX; i++)
        if (live_fx[i] == f)
            live_fx[i] = NULL;
    curve_chunkstore_close(f->cs);
    curve_cfp_close(f->pool);
    tu_rmrf(f->root);
    free(f);
}

static int setup(void **state)
{
    curve_failpoint_clear_all();
    rng_state = (uint64_t)time(NULL) | 1;
    print_message("seed %llu\n", (unsigned long long)rng_state);
    return 0;
}

static int teardown(void **state)
{
    curve_failpoint_clear_all();
    for (int i = 0; i < MAX_LIVE_FX; i++) {
        fixture *f = live_fx[i];
        if (f == NULL)
            continue;
        /* The store may be mid-call (chunks pinned): only stop the pool and remove files. */
        curve_cfp_close(f->pool);
        tu_rmrf(f->root);
        live_fx[i] = NULL;
    }
    return 0;
}

static void test_roundtrip_random(void **state)
{
    enum { NCHUNK = 3, NOPS = 300, MAXLEN = 64 << 10 };
    fixture *f = fx_new(NCHUNK + 1, 2); /* small fd cache: exercises eviction too */
    uint8_t *shadow[NCHUNK], *buf = malloc(TEST_CHUNK_SIZE);
    bool created[NCHUNK] = {false};
    assert_non_null(buf);
    for (int i = 0; i < NCHUNK; i++) {
        shadow[i] = calloc(1, TEST_CHUNK_SIZE);
        assert_non_null(shadow[i]);
    }
    for (int op = 0; op < NOPS; op++) {
        int c = (int)(rnd() % NCHUNK);
        uint64_t len = (1 + rnd() % (MAXLEN / 4096)) * 4096;
        uint64_t off = (rnd() % ((TEST_CHUNK_SIZE - len) / 4096 + 1)) * 4096;
        if (rnd() % 2) {
            for (uint64_t i = 0; i < len; i++)
                shadow[c][off + i] = (uint8_t)rnd();
            assert_int_equal(curve_chunkstore_write(f->cs, 100 + c, 0, off, shadow[c] + off, len),
                             0);
            created[c] = true;
        } else {
            int rc = curve_chunkstore_read(f->cs, 100 + c, off, buf, len);
            if (!created[c]) {
                assert_int_equal(rc, CURVE_ERR_CHUNK_NOTEXIST);
            } else {
                assert_int_equal(rc, 0);
                assert_memory_equal(buf, shadow[c] + off, len);
            }
        }
    }
    curve_chunkstore_status st;
    curve_chunkstore_get_status(f->cs, &st);
    assert_true(st.open_fds <= 2);
    assert_int_equal(curve_chunkstore_sync_dirty(f->cs), 0);
    /* reopen: the data persisted */
    curve_chunkstore_close(f->cs);
    f->cs = open_store(f, 0, 0);
    for (int c = 0; c < NCHUNK; c++) {
        int rc = curve_chunkstore_read(f->cs, 100 + c, 0, buf, TEST_CHUNK_SIZE);
        if (!created[c]) {
            assert_int_equal(rc, CURVE_ERR_CHUNK_NOTEXIST);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_memory_equal(buf, shadow[c], TEST_CHUNK_SIZE);
    }
    /* writev with several pieces */
    if (created[0]) {
        struct iovec iov[3] = {{shadow[1], 4096}, {shadow[1] + 4096, 8192}, {shadow[2], 4096}};
        assert_int_equal(curve_chunkstore_writev(f->cs, 100, 0, 8192, iov, 3), 0);
        assert_int_equal(curve_chunkstore_read(f->cs, 100, 8192, buf, 16384), 0);
        assert_memory_equal(buf, shadow[1], 12288);
        assert_memory_equal(buf + 12288, shadow[2], 4096);
    }
    for (int i = 0; i < NCHUNK; i++)
        free(shadow[i]);
    free(buf);
    fx_free(f);
}

static void test_bounds_alignment(void **state)
{
    fixture *f = fx_new(2, 0);
    static uint8_t buf[8192];
    const int INV = CURVE_ERR_INVALID_REQUEST;
    assert_int_equal(curve_chunkstore_write(f->cs, 1, 0, 1, buf, 4096), INV);
    assert_int_equal(curve_chunkstore_write(f->cs, 1, 0, 0, buf, 100), INV);
    assert_int_equal(curve_chunkstore_write(f->cs, 1, 0, 0, buf, 0), INV);
    assert_int_equal(curve_chunkstore_write(f->cs, 1, 0, TEST_CHUNK_SIZE - 4096, buf, 8192), INV);
    assert_int_equal(curve_chunkstore_write(f->cs, 1, 0, TEST_CHUNK_SIZE, buf, 4096), INV);
    assert_int_equal(curve_chunkstore_write(f->cs, 1, 0, UINT64_MAX - 4095, buf, 4096), INV);
    assert_int_equal(curve_chunkstore_write(f->cs, 1, 0, 0, NULL, 4096), INV);
    assert_int_equal(curve_chunkstore_writev(f->cs, 1, 0, 0, NULL, 1), INV);
    struct iovec iov = {buf, 4096};
    assert_int_equal(curve_chunkstore_writev(f->cs, 1, 0, 0, &iov, 0), INV);
    assert_int_equal(curve_chunkstore_writev(f->cs, 1, 0, 0, &iov, CURVE_CHUNKSTORE_IOV_MAX + 1),
                     INV);
    assert_int_equal(curve_chunkstore_read(f->cs, 1, 512, buf, 4096), INV);
    assert_int_equal(curve_chunkstore_read(f->cs, 1, 0, buf, TEST_CHUNK_SIZE + 4096), INV);
    /* nothing was created by the rejected calls */
    assert_int_equal(curve_chunkstore_read(f->cs, 1, 0, buf, 4096), CURVE_ERR_CHUNK_NOTEXIST);
    curve_chunkstore_status st;
    curve_chunkstore_get_status(f->cs, &st);
    assert_int_equal(st.chunks, 0);
    /* last page is fine */
    memset(buf, 7, sizeof(buf));
    assert_int_equal(curve_chunkstore_write(f->cs, 1, 0, TEST_CHUNK_SIZE - 4096, buf, 4096), 0);
    /* 512-byte alignment when configured */
    curve_chunkstore_close(f->cs);
    f->cs = open_store(f, 0, 512);
    assert_int_equal(curve_chunkstore_write(f->cs, 1, 0, 512, buf, 512), 0);
    memset(buf, 0, sizeof(buf));
    assert_int_equal(curve_chunkstore_read(f->cs, 1, 0, buf, 1024), 0);
    assert_int_equal(buf[0], 0);
    assert_int_equal(buf[512], 7);
    assert_int_equal(curve_chunkstore_read(f->cs, 1, 100, buf, 512), INV);
    fx_free(f);
}

static void test_sn_and_info(void **state)
{
    fixture *f = fx_new(3, 0);
    static uint8_t buf[4096];
    curve_chunk_info info;
    assert_int_equal(curve_chunkstore_get_info(f->cs, 5, &info), CURVE_ERR_CHUNK_NOTEXIST);
    assert_int_equal(curve_chunkstore_create(f->cs, 5, 2), 0);
    assert_int_equal(curve_chunkstore_create(f->cs, 5, 2), CURVE_ERR_CHUNK_EXIST);
    assert_int_equal(curve_chunkstore_get_info(f->cs, 5, &info), 0);
    assert_int_equal(info.sn, 2);
    assert_int_equal(info.size, TEST_CHUNK_SIZE);
    assert_int_equal(info.file_size, TEST_FILE_SIZE);
    assert_int_equal(curve_chunkstore_write(f->cs, 5, 1, 0, buf, 4096), CURVE_ERR_BACKWARD);
    assert_int_equal(curve_chunkstore_write(f->cs, 5, 4, 0, buf, 4096), 0);
    assert_int_equal(curve_chunkstore_sync_dirty(f->cs), 0);
    curve_chunkstore_close(f->cs);
    f->cs = open_store(f, 0, 0);
    assert_int_equal(curve_chunkstore_get_info(f->cs, 5, &info), 0);
    assert_int_equal(info.sn, 4); /* the header update persisted */
    assert_int_equal(curve_chunkstore_write(f->cs, 9, 0, 0, buf, 4096), 0);
    uint64_t *ids;
    size_t n;
    assert_int_equal(curve_chunkstore_list(f->cs, &ids, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 5);
    assert_int_equal(ids[1], 9);
    free(ids);
    fx_free(f);
}

static void test_corrupt_header(void **state)
{
    fixture *f = fx_new(3, 0);
    static uint8_t buf[4096];
    char path[600], path2[600];
    memset(buf, 1, sizeof(buf));
    assert_int_equal(curve_chunkstore_write(f->cs, 1, 0, 0, buf, 4096), 0);
    assert_int_equal(curve_chunkstore_write(f->cs, 2, 0, 0, buf, 4096), 0);
    assert_int_equal(curve_chunkstore_sync_dirty(f->cs), 0);
    curve_chunkstore_close(f->cs);
    /* flip a byte of chunk 1's sn field */
    tu_path(path, sizeof(path), f->data, "chunk_1");
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, 24), 1);
    b ^= 0xff;
    assert_int_equal(pwrite(fd, &b, 1, 24), 1);
    close(fd);
    /* chunk 2's file under another id's name */
    tu_path(path, sizeof(path), f->data, "chunk_2");
    tu_path(path2, sizeof(path2), f->data, "chunk_3");
    assert_int_equal(rename(path, path2), 0);

    f->cs = open_store(f, 0, 0);
    curve_chunk_info info;
    assert_int_equal(curve_chunkstore_read(f->cs, 1, 0, buf, 4096), CURVE_ERR_CORRUPT);
    assert_int_equal(curve_chunkstore_write(f->cs, 1, 0, 0, buf, 4096), CURVE_ERR_CORRUPT);
    assert_int_equal(curve_chunkstore_get_info(f->cs, 1, &info), CURVE_ERR_CORRUPT);
    assert_int_equal(curve_chunkstore_read_raw(f->cs, 1, 0, buf, 64), CURVE_ERR_CORRUPT);
    assert_int_equal(curve_chunkstore_read(f->cs, 3, 0, buf, 4096), CURVE_ERR_CORRUPT);
    assert_int_equal(curve_chunkstore_read(f->cs, 2, 0, buf, 4096), CURVE_ERR_CHUNK_NOTEXIST);
    curve_chunkstore_status st;
    curve_chunkstore_get_status(f->cs, &st);
    assert_int_equal(st.corrupt, 2);
    assert_int_equal(st.chunks, 2);
    assert_int_equal(st.disk_err, 0); /* corruption is not a disk failure */
    /* a corrupt chunk can be deleted; its file is recycled */
    assert_int_equal(curve_chunkstore_delete(f->cs, 1), 0);
    assert_int_equal(curve_chunkstore_read(f->cs, 1, 0, buf, 4096), CURVE_ERR_CHUNK_NOTEXIST);
    assert_int_equal(curve_cfp_wait(f->pool, UINT64_MAX, TEST_WAIT_MS), 0);
    curve_cfp_stats ps;
    curve_cfp_get_stats(f->pool, &ps);
    assert_int_equal(ps.ready, 2);
    fx_free(f);
}

static void test_write_eio_disk_fail(void **state)
{
    fixture *f = fx_new(3, 0);
    static uint8_t buf[8192], rbuf[8192];
    memset(buf, 3, sizeof(buf));
    assert_int_equal(curve_chunkstore_write(f->cs, 1, 0, 0, buf, 8192), 0);
    assert_int_equal(curve_failpoint_set("chunkstore.write", "1*return(EIO)"), 0);
    memset(buf, 4, sizeof(buf));
    assert_int_equal(curve_chunkstore_write(f->cs, 1, 0, 0, buf, 4096), CURVE_ERR_DISK_FAIL);
    assert_int_equal(curve_failpoint_hits("chunkstore.write"), 1);
    /* the failpoint is exhausted but the disk stays failed: nothing is served any more */
    assert_int_equal(curve_chunkstore_write(f->cs, 1, 0, 4096, buf, 4096), CURVE_ERR_DISK_FAIL);
    assert_int_equal(curve_chunkstore_write(f->cs, 2, 0, 0, buf, 4096), CURVE_ERR_DISK_FAIL);
    assert_int_equal(curve_chunkstore_read(f->cs, 1, 0, rbuf, 4096), CURVE_ERR_DISK_FAIL);
    assert_int_equal(curve_chunkstore_sync_dirty(f->cs), CURVE_ERR_DISK_FAIL);
    assert_int_equal(curve_chunkstore_create(f->cs, 3, 0), CURVE_ERR_DISK_FAIL);
    assert_int_equal(curve_chunkstore_delete(f->cs, 1), CURVE_ERR_DISK_FAIL);
    curve_chunkstore_status st;
    curve_chunkstore_get_status(f->cs, &st);
    assert_int_equal(st.disk_err, -EIO);
    assert_int_equal(st.writes, 1); /* only the first write counted as done */
    assert_int_equal(curve_chunkstore_disk_failed(f->cs), -EIO);
    /* another copyset on the same disk is rejected too */
    char other[600];
    tu_path(other, sizeof(other), f->root, "copysets/2");
    curve_chunkstore_opts o = {.data_dir = other, .pool = f->pool};
    curve_chunkstore *cs2;
    assert_int_equal(curve_chunkstore_open(&o, &cs2), 0);
    assert_int_equal(curve_chunkstore_write(cs2, 1, 0, 0, buf, 4096), CURVE_ERR_DISK_FAIL);
    curve_chunkstore_close(cs2);
    fx_free(f);
}

static void test_read_and_sync_errors(void **state)
{
    static uint8_t buf[4096];
    fixture *f = fx_new(2, 0);
    assert_int_equal(curve_chunkstore_write(f->cs, 1, 0, 0, buf, 4096), 0);
    assert_int_equal(curve_failpoint_set("chunkstore.sync", "return(ENOSPC)"), 0);
    assert_int_equal(curve_chunkstore_sync_dirty(f->cs), CURVE_ERR_DISK_FAIL);
    assert_int_equal(curve_chunkstore_disk_failed(f->cs), -ENOSPC);
    fx_free(f);

    curve_failpoint_clear_all();
    f = fx_new(2, 0);
    assert_int_equal(curve_chunkstore_write(f->cs, 1, 0, 0, buf, 4096), 0);
    assert_int_equal(curve_failpoint_set("chunkstore.read", "return(EIO)"), 0);
    assert_int_equal(curve_chunkstore_read(f->cs, 1, 0, buf, 4096), CURVE_ERR_DISK_FAIL);
    assert_int_equal(curve_chunkstore_disk_failed(f->cs), -EIO);
    fx_free(f);

    /* latency injection slows the call but it still succeeds */
    curve_failpoint_clear_all();
    f = fx_new(2, 0);
    assert_int_equal(curve_failpoint_set("chunkstore.write", "1*delay(20)"), 0);
    assert_int_equal(curve_chunkstore_write(f->cs, 1, 0, 0, buf, 4096), 0);
    assert_int_equal(curve_failpoint_hits("chunkstore.write"), 1);
    fx_free(f);
}

static void test_dirty_sync(void **state)
{
    static uint8_t buf[4096];
    fixture *f = fx_new(6, 2);
    curve_chunkstore_status st;
    /* delay(0) never fails: it only counts the fdatasyncs */
    assert_int_equal(curve_failpoint_set("chunkstore.sync", "delay(0)"), 0);
    for (uint64_t id = 1; id <= 3; id++)
        assert_int_equal(curve_chunkstore_write(f->cs, id, 0, 0, buf, 4096), 0);
    curve_chunkstore_get_status(f->cs, &st);
    /* 3 chunks written, fd cache 2: one was evicted and synced on the way out */
    assert_int_equal(st.dirty + curve_failpoint_hits("chunkstore.sync"), 3);
    assert_int_equal(curve_chunkstore_sync_dirty(f->cs), 0);
    assert_int_equal(curve_failpoint_hits("chunkstore.sync"), 3);
    curve_chunkstore_get_status(f->cs, &st);
    assert_int_equal(st.dirty, 0);
    assert_int_equal(st.syncs, 1);
    /* nothing dirty: nothing synced */
    assert_int_equal(curve_chunkstore_sync_dirty(f->cs), 0);
    assert_int_equal(curve_failpoint_hits("chunkstore.sync"), 3);
    /* rewriting one chunk makes only it dirty; reads do not */
    assert_int_equal(curve_chunkstore_read(f->cs, 2, 0, buf, 4096), 0);
    assert_int_equal(curve_chunkstore_write(f->cs, 2, 0, 0, buf, 4096), 0);
    curve_chunkstore_get_status(f->cs, &st);
    assert_int_equal(st.dirty, 1);
    assert_int_equal(curve_chunkstore_sync_dirty(f->cs), 0);
    assert_int_equal(curve_failpoint_hits("chunkstore.sync"), 4);
    /* a deleted dirty chunk is not synced */
    assert_int_equal(curve_chunkstore_write(f->cs, 3, 0, 0, buf, 4096), 0);
    assert_int_equal(curve_chunkstore_delete(f->cs, 3), 0);
    curve_chunkstore_get_status(f->cs, &st);
    assert_int_equal(st.dirty, 0);
    fx_free(f);
}

static void test_delete_returns_to_pool(void **state)
{
    static uint8_t buf[4096];
    fixture *f = fx_new(2, 0);
    curve_cfp_stats ps;
    memset(buf, 9, sizeof(buf));
    assert_int_equal(curve_chunkstore_write(f->cs, 1, 0, 0, buf, 4096), 0);
    assert_int_equal(curve_chunkstore_write(f->cs, 2, 0, 0, buf, 4096), 0);
    /* pool empty and the file system "full": NOSPACE, no chunk created */
    assert_int_equal(curve_failpoint_set("chunkfilepool.create", "1*return(ENOSPC)"), 0);
    assert_int_equal(curve_chunkstore_write(f->cs, 3, 0, 0, buf, 4096), CURVE_ERR_NOSPACE);
    assert_int_equal(curve_chunkstore_read(f->cs, 3, 0, buf, 4096), CURVE_ERR_CHUNK_NOTEXIST);
    assert_int_equal(curve_chunkstore_delete(f->cs, 1), 0);
    assert_int_equal(curve_chunkstore_delete(f->cs, 1), CURVE_ERR_CHUNK_NOTEXIST);
    assert_int_equal(curve_chunkstore_read(f->cs, 1, 0, buf, 4096), CURVE_ERR_CHUNK_NOTEXIST);
    char path[600];
    tu_path(path, sizeof(path), f->data, "chunk_1");
    assert_false(tu_exists(path));
    assert_int_equal(curve_cfp_wait(f->pool, 1, TEST_WAIT_MS), 0);
    curve_cfp_get_stats(f->pool, &ps);
    assert_int_equal(ps.puts, 1);
    /* the recycled file is zeroed: a new chunk made from it reads back zeros */
    assert_int_equal(curve_chunkstore_create(f->cs, 3, 0), 0);
    memset(buf, 1, sizeof(buf));
    assert_int_equal(curve_chunkstore_read(f->cs, 3, 0, buf, 4096), 0);
    for (size_t i = 0; i < sizeof(buf); i++)
        assert_int_equal(buf[i], 0);
    curve_chunkstore_status st;
    curve_chunkstore_get_status(f->cs, &st);
    assert_int_equal(st.chunks, 2);
    fx_free(f);
}

/* Copies chunk `id` from `src` into `dst` by pieces of odd sizes, in reverse order. */
static int install_copy(curve_chunkstore *src, curve_chunkstore *dst, uint64_t id, bool skip_hdr)
{
    curve_chunk_install *in;
    int rc = curve_chunkstore_install_begin(dst, id, &in);
    if (rc != 0)
        return rc;
    enum { PIECE = 100003 };
    uint8_t *piece = malloc(PIECE);
    assert_non_null(piece);
    uint64_t npieces = (TEST_FILE_SIZE + PIECE - 1) / PIECE;
    for (uint64_t k = npieces; k-- > 0;) {
        uint64_t off = k * PIECE;
        if (skip_hdr && off == 0)
            continue;
        size_t len = (size_t)(TEST_FILE_SIZE - off < PIECE ? TEST_FILE_SIZE - off : PIECE);
        assert_int_equal(curve_chunkstore_read_raw(src, id, off, piece, len), (int64_t)len);
        assert_int_equal(curve_chunkstore_install_write(in, off, piece, len), 0);
    }
    assert_int_equal(curve_chunkstore_install_write(in, TEST_FILE_SIZE, piece, 1),
                     CURVE_ERR_INVALID_REQUEST);
    free(piece);
    return curve_chunkstore_install_finish(in);
}

static void test_install_by_pieces(void **state)
{
    fixture *a = fx_new(2, 0), *b = fx_new(4, 0);
    uint8_t *data = malloc(TEST_CHUNK_SIZE), *got = malloc(TEST_CHUNK_SIZE);
    assert_non_null(data);
    assert_non_null(got);
    for (size_t i = 0; i < TEST_CHUNK_SIZE; i++)
        data[i] = (uint8_t)rnd();
    assert_int_equal(curve_chunkstore_write(a->cs, 5, 3, 0, data, TEST_CHUNK_SIZE), 0);
    /* follower has an older version of chunk 5 */
    memset(got, 0xee, 4096);
    assert_int_equal(curve_chunkstore_write(b->cs, 5, 1, 0, got, 4096), 0);

    curve_chunk_manifest_entry *m;
    size_t n;
    assert_int_equal(curve_chunkstore_manifest(a->cs, &m, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(m[0].chunk_id, 5);
    assert_string_equal(m[0].name, "chunk_5");
    assert_int_equal(m[0].file_size, TEST_FILE_SIZE);
    free(m);

    /* second concurrent install of the same chunk is refused */
    curve_chunk_install *in;
    assert_int_equal(curve_chunkstore_install_begin(b->cs, 5, &in), 0);
    curve_chunk_install *in2;
    assert_int_equal(curve_chunkstore_install_begin(b->cs, 5, &in2), -EBUSY);
    curve_chunkstore_install_abort(in);

    /* an install missing the header piece does not validate; the old chunk stays */
    assert_int_equal(install_copy(a->cs, b->cs, 5, true), CURVE_ERR_CORRUPT);
    assert_int_equal(curve_chunkstore_read(b->cs, 5, 0, got, 4096), 0);
    assert_int_equal(got[0], 0xee);

    assert_int_equal(install_copy(a->cs, b->cs, 5, false), 0);
    assert_int_equal(curve_chunkstore_read(b->cs, 5, 0, got, TEST_CHUNK_SIZE), 0);
    assert_memory_equal(got, data, TEST_CHUNK_SIZE);
    curve_chunk_info info;
    assert_int_equal(curve_chunkstore_get_info(b->cs, 5, &info), 0);
    assert_int_equal(info.sn, 3);
    /* installing a chunk the follower never had */
    assert_int_equal(curve_chunkstore_write(a->cs, 6, 0, 4096, data, 4096), 0);
    /* returned files become usable only once zeroed in the background */
    assert_int_equal(curve_cfp_wait(b->pool, 1, TEST_WAIT_MS), 0);
    assert_int_equal(install_copy(a->cs, b->cs, 6, false), 0);
    assert_int_equal(curve_chunkstore_read(b->cs, 6, 4096, got, 4096), 0);
    assert_memory_equal(got, data, 4096);
    /* every file given back (abort, bad install, replaced old chunk) is recycled */
    assert_int_equal(curve_cfp_wait(b->pool, UINT64_MAX, TEST_WAIT_MS), 0);
    curve_cfp_stats ps;
    curve_cfp_get_stats(b->pool, &ps);
    assert_int_equal(ps.ready, 2); /* 4 files - chunk 5 - chunk 6 */
    assert_int_equal(ps.puts, 3);
    /* still correct after reopening */
    curve_chunkstore_close(b->cs);
    b->cs = open_store(b, 0, 0);
    assert_int_equal(curve_chunkstore_read(b->cs, 5, 0, got, TEST_CHUNK_SIZE), 0);
    assert_memory_equal(got, data, TEST_CHUNK_SIZE);
    free(data);
    free(got);
    fx_free(a);
    fx_free(b);
}

static void test_leftover_install_recycled(void **state)
{
    fixture *f = fx_new(2, 0);
    curve_chunk_install *in;
    assert_int_equal(curve_chunkstore_install_begin(f->cs, 8, &in), 0);
    char path[600];
    tu_path(path, sizeof(path), f->data, "chunk_8.install");
    assert_true(tu_exists(path));
    /* simulate a crash: forget the install (close fd) without finishing it */
    curve_chunkstore_install_abort(in);
    assert_false(tu_exists(path));
    /* a leftover from a real crash */
    uint8_t page[CURVE_CHUNK_HEADER_SIZE] = {0};
    assert_int_equal(curve_cfp_get(f->pool, path, page), 0);
    curve_chunkstore_close(f->cs);
    f->cs = open_store(f, 0, 0);
    assert_false(tu_exists(path));
    assert_int_equal(curve_cfp_wait(f->pool, UINT64_MAX, TEST_WAIT_MS), 0);
    curve_cfp_stats ps;
    curve_cfp_get_stats(f->pool, &ps);
    assert_int_equal(ps.ready, 2);
    uint64_t *ids;
    size_t n;
    assert_int_equal(curve_chunkstore_list(f->cs, &ids, &n), 0);
    assert_int_equal(n, 0);
    assert_null(ids);
    fx_free(f);
}

typedef struct mt_arg {
    curve_chunkstore *cs;
    uint64_t id;
    int errors;
} mt_arg;

static void *mt_worker(void *p)
{
    mt_arg *a = p;
    uint8_t w[4096], r[4096];
    for (int i = 0; i < 200; i++) {
        uint64_t off = (uint64_t)(i % 64) * 4096;
        memset(w, (int)(a->id * 31 + (uint64_t)i), sizeof(w));
        if (curve_chunkstore_write(a->cs, a->id, 0, off, w, sizeof(w)) != 0 ||
            curve_chunkstore_read(a->cs, a->id, off, r, sizeof(r)) != 0 ||
            memcmp(w, r, sizeof(w)) != 0)
            a->errors++;
        if (i % 50 == 49 && curve_chunkstore_sync_dirty(a->cs) != 0)
            a->errors++;
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    enum { NT = 4 };
    fixture *f = fx_new(NT, 2);
    pthread_t th[NT];
    mt_arg args[NT];
    for (int i = 0; i < NT; i++) {
        args[i] = (mt_arg){.cs = f->cs, .id = (uint64_t)i + 1};
        assert_int_equal(pthread_create(&th[i], NULL, mt_worker, &args[i]), 0);
    }
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].errors, 0);
    }
    assert_int_equal(curve_chunkstore_sync_dirty(f->cs), 0);
    curve_chunkstore_status st;
    curve_chunkstore_get_status(f->cs, &st);
    assert_int_equal(st.chunks, NT);
    assert_int_equal(st.dirty, 0);
    assert_int_equal(st.writes, NT * 200);
    fx_free(f);
}

typedef struct stress_arg {
    curve_chunkstore *cs;
    uint64_t seed;
    int bad; /* results outside the allowed set */
} stress_arg;

/* Random create/write/read/delete/info on a few shared chunk ids. Races between them may
 * legitimately answer NOTEXIST, nothing else (an empty pool creates files on demand). */
static void *stress_worker(void *p)
{
    stress_arg *a = p;
    uint64_t x = a->seed;
    uint8_t buf[8192];
    for (int i = 0; i < 400; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t id = 1 + x % 4, off = ((x >> 8) % 128) * 4096;
        curve_chunk_info info;
        int rc;
        switch ((x >> 20) % 5) {
        case 0:
        case 1:
            memset(buf, (int)i, sizeof(buf));
            rc = curve_chunkstore_write(a->cs, id, 0, off, buf, sizeof(buf));
            a->bad += rc != 0 && rc != CURVE_ERR_CHUNK_NOTEXIST;
            break;
        case 2:
            rc = curve_chunkstore_read(a->cs, id, off, buf, sizeof(buf));
            a->bad += rc != 0 && rc != CURVE_ERR_CHUNK_NOTEXIST;
            break;
        case 3:
            rc = curve_chunkstore_delete(a->cs, id);
            a->bad += rc != 0 && rc != CURVE_ERR_CHUNK_NOTEXIST;
            break;
        default:
            rc = curve_chunkstore_get_info(a->cs, id, &info);
            a->bad += rc != 0 && rc != CURVE_ERR_CHUNK_NOTEXIST;
            if (i % 40 == 0)
                a->bad += curve_chunkstore_sync_dirty(a->cs) != 0;
            break;
        }
    }
    return NULL;
}

static void test_concurrent_create_delete(void **state)
{
    enum { NT = 4, FILES = 8 };
    fixture *f = fx_new(FILES, 2);
    pthread_t th[NT];
    stress_arg args[NT];
    for (int i = 0; i < NT; i++) {
        args[i] = (stress_arg){.cs = f->cs, .seed = rnd() | 1};
        assert_int_equal(pthread_create(&th[i], NULL, stress_worker, &args[i]), 0);
    }
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].bad, 0);
    }
    assert_int_equal(curve_chunkstore_sync_dirty(f->cs), 0);
    /* no file lost or duplicated: chunks + pool files == FILES + files created on demand (the
     * pool ran empty while returned files were being zeroed), and the listing matches the
     * files in the data directory */
    assert_int_equal(curve_cfp_wait(f->pool, UINT64_MAX, TEST_WAIT_MS), 0);
    uint64_t *ids;
    size_t n;
    assert_int_equal(curve_chunkstore_list(f->cs, &ids, &n), 0);
    curve_cfp_stats ps;
    curve_cfp_get_stats(f->pool, &ps);
    assert_int_equal(ps.ready + n, FILES + ps.empty_creates);
    for (size_t i = 0; i < n; i++) {
        char name[64], path[1024];
        snprintf(name, sizeof(name), "chunk_%llu", (unsigned long long)ids[i]);
        tu_path(path, sizeof(path), f->data, name);
        assert_true(tu_exists(path));
    }
    free(ids);
    curve_chunkstore_status st;
    curve_chunkstore_get_status(f->cs, &st);
    assert_int_equal(st.chunks, n);
    assert_int_equal(st.disk_err, 0);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip_random, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounds_alignment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sn_and_info, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_eio_disk_fail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_and_sync_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dirty_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_returns_to_pool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_install_by_pieces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leftover_install_recycled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_create_delete, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
