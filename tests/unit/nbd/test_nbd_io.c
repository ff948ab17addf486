/* Unit tests of src/nbd/nbd_io.c (byte-granular IO over 4 KiB-aligned libcurve IO), run against
 * the file-backed fake libcurve (fake_curve.c). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "nbd/nbd_io.h"

#define VOL_SIZE  (1024u * 1024)
#define RAND_OPS  2000 /* random ops checked against the in-memory model */
#define N_THREADS 8

struct fixture {
    char path[64];
    curve_client *c;
    curve_volume *v;
    struct nbd_io io;
    unsigned char *model;
};

static int open_fixture(void **state, const char *const *overrides)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    strcpy(f->path, "/tmp/curve-nbdio-XXXXXX");
    int fd = mkstemp(f->path);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, VOL_SIZE), 0);
    close(fd);
    assert_int_equal(curve_client_init(NULL, overrides, &f->c), 0);
    assert_int_equal(curve_open(f->c, f->path, CURVE_OPEN_RDWR, &f->v), 0);
    assert_int_equal(nbd_io_init(&f->io, f->v, VOL_SIZE), 0);
    f->model = calloc(1, VOL_SIZE);
    assert_non_null(f->model);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return open_fixture(state, NULL);
}

static int setup_failing(void **state)
{
    static const char *const kv[] = {"fake.fail_writes=-10204", NULL}; /* CURVE_ERR_NOSPACE */
    return open_fixture(state, kv);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    nbd_io_fini(&f->io);
    assert_int_equal(curve_close(f->v), 0);
    assert_int_equal(curve_client_destroy(f->c), 0);
    unlink(f->path);
    free(f->model);
    free(f);
    return 0;
}

static void check_all(struct fixture *f)
{
    unsigned char *buf = malloc(VOL_SIZE);
    assert_non_null(buf);
    assert_int_equal(nbd_io_read(&f->io, buf, VOL_SIZE, 0), 0);
    assert_memory_equal(buf, f->model, VOL_SIZE);
    free(buf);
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed * 131 + i * 7 + 1);
}

static void test_unaligned_edges(void **state)
{
    struct fixture *f = *state;
    static const struct {
        uint64_t off, len;
    } cases[] = {
        {1, 1},
        {4095, 2},
        {4000, 200},
        {100, 10000},
        {8192, 4096},
        {8191, 8194},
        {0, 4097},
        {VOL_SIZE - 1, 1},
        {12288, 1},
        {5, 3 * 4096},
        {VOL_SIZE - 5000, 5000},
    };
    unsigned char buf[20000];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fill(buf, cases[i].len, (unsigned)i);
        assert_int_equal(nbd_io_write(&f->io, buf, cases[i].len, cases[i].off), 0);
        memcpy(f->model + cases[i].off, buf, cases[i].len);
        unsigned char back[20000];
        assert_int_equal(nbd_io_read(&f->io, back, cases[i].len, cases[i].off), 0);
        assert_memory_equal(back, buf, cases[i].len);
    }
    check_all(f);
}

static void test_random_ops(void **state)
{
    struct fixture *f = *state;
    unsigned seed = (unsigned)time(NULL);
    const char *env = getenv("NBD_IO_SEED");
    if (env)
        seed = (unsigned)strtoul(env, NULL, 10);
    printf("test_random_ops seed=%u (replay with NBD_IO_SEED)\n", seed);
    srand(seed);
    unsigned char *buf = malloc(70000);
    assert_non_null(buf);
    for (int i = 0; i < RAND_OPS; i++) {
        uint64_t len = (uint64_t)(rand() % 70000);
        uint64_t off = (uint64_t)rand() % (VOL_SIZE - len + 1);
        int op = rand() % 5;
        if (op <= 1) {
            fill(buf, len, (unsigned)i);
            assert_int_equal(nbd_io_write(&f->io, buf, len, off), 0);
            memcpy(f->model + off, buf, len);
        } else if (op == 2) {
            bool may_trim = rand() % 2;
            assert_int_equal(nbd_io_zero(&f->io, len, off, may_trim), 0);
            memset(f->model + off, 0, len);
        } else if (op == 3) {
            assert_int_equal(nbd_io_read(&f->io, buf, len, off), 0);
            assert_memory_equal(buf, f->model + off, len);
        } else {
            /* trim: aligned blocks strictly inside read as zeros, the edges are unchanged */
            assert_int_equal(nbd_io_trim(&f->io, len, off), 0);
            uint64_t a = (off + NBD_IO_ALIGN - 1) & ~(uint64_t)(NBD_IO_ALIGN - 1);
            uint64_t b = (off + len) & ~(uint64_t)(NBD_IO_ALIGN - 1);
            if (b > a)
                memset(f->model + a, 0, b - a);
        }
    }
    free(buf);
    assert_int_equal(nbd_io_flush(&f->io), 0);
    check_all(f);
}

static void test_zero_trim(void **state)
{
    struct fixture *f = *state;
    unsigned char *buf = malloc(VOL_SIZE);
    assert_non_null(buf);
    memset(buf, 0xab, VOL_SIZE);
    assert_int_equal(nbd_io_write(&f->io, buf, VOL_SIZE, 0), 0);
    memset(f->model, 0xab, VOL_SIZE);
    /* zero without trim, unaligned, larger than the zero buffer */
    assert_int_equal(nbd_io_zero(&f->io, NBD_IO_ZERO_BUF / 2 + 3000, 1000, false), 0);
    memset(f->model + 1000, 0, NBD_IO_ZERO_BUF / 2 + 3000);
    check_all(f);
    /* trim inside one block changes nothing */
    assert_int_equal(nbd_io_trim(&f->io, 100, VOL_SIZE - 200), 0);
    check_all(f);
    /* trim of the whole volume zeroes it */
    assert_int_equal(nbd_io_trim(&f->io, VOL_SIZE, 0), 0);
    memset(f->model, 0, VOL_SIZE);
    check_all(f);
    free(buf);
}

static void test_range_errors(void **state)
{
    struct fixture *f = *state;
    unsigned char buf[8192];
    assert_int_equal(nbd_io_read(&f->io, buf, 2, VOL_SIZE - 1), -ERANGE);
    assert_int_equal(nbd_io_write(&f->io, buf, 1, VOL_SIZE), -ERANGE);
    assert_int_equal(nbd_io_write(&f->io, buf, 8192, UINT64_MAX - 10), -ERANGE);
    assert_int_equal(nbd_io_zero(&f->io, VOL_SIZE + 1, 0, true), -ERANGE);
    assert_int_equal(nbd_io_trim(&f->io, 4096, VOL_SIZE), -ERANGE);
    assert_int_equal(nbd_io_read(&f->io, buf, 0, VOL_SIZE), 0);
    struct nbd_io bad;
    assert_int_equal(nbd_io_init(&bad, f->v, VOL_SIZE + 512), -EINVAL);
}

static void test_write_errors(void **state)
{
    struct fixture *f = *state;
    unsigned char buf[8192] = {1};
    /* aligned, and unaligned (the RMW read succeeds, its write fails) */
    assert_int_equal(nbd_io_write(&f->io, buf, 4096, 0), CURVE_ERR_NOSPACE);
    assert_int_equal(nbd_io_write(&f->io, buf, 10, 5), CURVE_ERR_NOSPACE);
    assert_int_equal(nbd_io_zero(&f->io, 8192, 0, true), CURVE_ERR_NOSPACE);
    assert_int_equal(nbd_io_flush(&f->io), CURVE_ERR_NOSPACE);
    assert_int_equal(nbd_io_read(&f->io, buf, 10, 5), 0);
    assert_int_equal(nbd_io_errno(CURVE_ERR_NOSPACE), ENOSPC);
}

static void test_errno_map(void **state)
{
    assert_int_equal(nbd_io_errno(0), 0);
    assert_int_equal(nbd_io_errno(-EIO), EIO);
    assert_int_equal(nbd_io_errno(-ENOSPC), ENOSPC);
    assert_int_equal(nbd_io_errno(-ERANGE), EINVAL);
    assert_int_equal(nbd_io_errno(-EBADF), EPERM);
    assert_int_equal(nbd_io_errno(CURVE_ERR_FENCED), EPERM);
    assert_int_equal(nbd_io_errno(CURVE_ERR_TIMEOUT), EIO);
    assert_int_equal(nbd_io_errno(CURVE_ERR_SHUTDOWN), ESHUTDOWN);
    assert_int_equal(nbd_io_errno(CURVE_ERR_CANCELED), ESHUTDOWN); /* curve_abort_io */
    assert_int_equal(nbd_io_errno(-12345678), EIO);
}

/* Threads write disjoint byte ranges that share 4 KiB blocks: without the RMW lock, one
 * thread's read-modify-write would overwrite another's bytes with stale data. */
struct thr {
    struct fixture *f;
    int idx;
};

#define STRIPE 100 /* bytes per thread per round: N_THREADS * STRIPE < 4096 */
#define ROUNDS 200

static void *writer(void *arg)
{
    struct thr *t = arg;
    unsigned char b[STRIPE];
    for (int r = 0; r < ROUNDS; r++) {
        uint64_t block = (uint64_t)(r % 16) * NBD_IO_ALIGN;
        memset(b, (unsigned char)(t->idx * 16 + r % 16 + 1), STRIPE);
        int rc = nbd_io_write(&t->f->io, b, STRIPE, block + 7 + (uint64_t)t->idx * STRIPE);
        if (rc != 0)
            return (void *)1;
    }
    return NULL;
}

static void test_concurrent_rmw(void **state)
{
    struct fixture *f = *state;
    pthread_t th[N_THREADS];
    struct thr args[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        args[i] = (struct thr){f, i};
        assert_int_equal(pthread_create(&th[i], NULL, writer, &args[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++) {
        void *ret;
        assert_int_equal(pthread_join(th[i], &ret), 0);
        assert_null(ret);
    }
    for (int blk = 0; blk < 16; blk++)
        for (int i = 0; i < N_THREADS; i++)
            memset(f->model + blk * NBD_IO_ALIGN + 7 + i * STRIPE, i * 16 + blk + 1, STRIPE);
    check_all(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unaligned_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_trim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_errors, setup_failing, teardown),
        cmocka_unit_test(test_errno_map),
        cmocka_unit_test_setup_teardown(test_concurrent_rmw, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
