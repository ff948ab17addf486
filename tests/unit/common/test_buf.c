#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"

static void test_new_and_refs(void **state)
{
    curve_buf *b = curve_buf_new(100);
    assert_non_null(b);
    assert_int_equal(curve_buf_cap(b), 100);
    assert_int_equal(curve_buf_len(b), 0);
    assert_int_equal(curve_buf_refcount(b), 1);
    assert_ptr_equal(curve_buf_ref(b), b);
    assert_int_equal(curve_buf_refcount(b), 2);
    memset(curve_buf_data(b), 'x', 100);
    curve_buf_set_len(b, 100);
    assert_int_equal(curve_buf_len(b), 100);
    curve_buf_unref(b);
    assert_int_equal(curve_buf_refcount(b), 1);
    curve_buf_unref(b);
    curve_buf_unref(NULL);
}

static void test_alignment(void **state)
{
    size_t caps[] = {4096, 8192, 65536, 4097, 1 << 20};
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        curve_buf *b = curve_buf_new(caps[i]);
        assert_non_null(b);
        assert_int_equal((uintptr_t)curve_buf_data(b) % 4096, 0);
        memset(curve_buf_data(b), 0, caps[i]);
        curve_buf_unref(b);
    }
    curve_buf *z = curve_buf_new(0);
    assert_non_null(z);
    assert_int_equal(curve_buf_cap(z), 0);
    curve_buf_unref(z);
}

static int freed;
static void count_free(void *data, void *ctx)
{
    assert_ptr_equal(ctx, &freed);
    freed++;
    free(data);
}

static void test_wrap(void **state)
{
    freed = 0;
    char *mem = malloc(10);
    assert_non_null(mem);
    memcpy(mem, "abcdefghij", 10);
    curve_buf *b = curve_buf_wrap(mem, 10, count_free, &freed);
    assert_non_null(b);
    assert_ptr_equal(curve_buf_data(b), mem);
    assert_int_equal(curve_buf_len(b), 10);
    curve_buf_ref(b);
    curve_buf_unref(b);
    assert_int_equal(freed, 0);
    curve_buf_unref(b);
    assert_int_equal(freed, 1);
    /* wrap without free callback */
    static char stat[4] = "xyz";
    curve_buf *s = curve_buf_wrap(stat, 3, NULL, NULL);
    assert_non_null(s);
    curve_buf_unref(s);
}

static void test_iobuf_append_copyout(void **state)
{
    curve_iobuf io;
    curve_iobuf_init(&io);
    curve_buf *b = curve_buf_new(26);
    memcpy(curve_buf_data(b), "abcdefghijklmnopqrstuvwxyz", 26);
    curve_buf_set_len(b, 26);
    assert_int_equal(curve_iobuf_append(&io, b, 0, 3), 0);   /* abc */
    assert_int_equal(curve_iobuf_append(&io, b, 10, 5), 0);  /* klmno */
    assert_int_equal(curve_iobuf_append(&io, b, 25, 0), 0);  /* empty: no slice */
    assert_int_equal(curve_buf_refcount(b), 3);
    assert_int_equal(curve_iobuf_append_copy(&io, "XYZ", 3), 0);
    assert_int_equal(io.len, 11);
    assert_int_equal(io.n, 3);
    char out[32] = {0};
    assert_int_equal(curve_iobuf_copyout(&io, 0, out, sizeof(out)), 11);
    assert_memory_equal(out, "abcklmnoXYZ", 11);
    memset(out, 0, sizeof(out));
    assert_int_equal(curve_iobuf_copyout(&io, 2, out, 5), 5);
    assert_memory_equal(out, "cklmn", 5);
    assert_int_equal(curve_iobuf_copyout(&io, 11, out, 5), 0);
    assert_int_equal(curve_iobuf_copyout(&io, 100, out, 5), 0);
    assert_int_equal(curve_iobuf_copyout(&io, 9, out, 5), 2);
    assert_memory_equal(out, "YZ", 2);

    struct iovec iov[8];
    assert_int_equal(curve_iobuf_iov(&io, iov, 8), 3);
    assert_int_equal(iov[1].iov_len, 5);
    assert_memory_equal(iov[1].iov_base, "klmno", 5);
    assert_int_equal(curve_iobuf_iov(&io, iov, 2), 2);

    curve_iobuf_reset(&io);
    assert_int_equal(io.len, 0);
    assert_int_equal(io.n, 0);
    assert_int_equal(curve_buf_refcount(b), 1);
    curve_buf_unref(b);
}

static void test_iobuf_many_slices(void **state)
{
    enum { N = 1000 };
    curve_iobuf io;
    curve_iobuf_init(&io);
    curve_buf *b = curve_buf_new(N);
    for (int i = 0; i < N; i++)
        curve_buf_data(b)[i] = (uint8_t)(i * 31);
    curve_buf_set_len(b, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(curve_iobuf_append(&io, b, (size_t)i, 1), 0);
    assert_true(io.n == N && io.cap >= N);
    assert_int_equal(curve_buf_refcount(b), N + 1);
    uint8_t *out = malloc(N);
    assert_int_equal(curve_iobuf_copyout(&io, 0, out, N), N);
    assert_memory_equal(out, curve_buf_data(b), N);

    curve_buf *flat = curve_iobuf_flatten(&io);
    assert_non_null(flat);
    assert_ptr_not_equal(flat, b);
    assert_int_equal(curve_buf_len(flat), N);
    assert_memory_equal(curve_buf_data(flat), curve_buf_data(b), N);
    curve_buf_unref(flat);

    /* move many into an iobuf with inline slices in use */
    curve_iobuf dst;
    curve_iobuf_init(&dst);
    assert_int_equal(curve_iobuf_append_copy(&dst, "head", 4), 0);
    assert_int_equal(curve_iobuf_move(&dst, &io), 0);
    assert_int_equal(io.n, 0);
    assert_int_equal(io.len, 0);
    assert_int_equal(dst.n, N + 1);
    assert_int_equal(dst.len, N + 4);
    assert_int_equal(curve_buf_refcount(b), N + 1); /* moved, not re-referenced */
    assert_int_equal(curve_iobuf_copyout(&dst, 4, out, N), N);
    assert_memory_equal(out, curve_buf_data(b), N);
    curve_iobuf_reset(&io); /* reset of an emptied iobuf is harmless */
    curve_iobuf_reset(&dst);
    assert_int_equal(curve_buf_refcount(b), 1);
    curve_buf_unref(b);
    free(out);
}

static void test_iobuf_move_inline(void **state)
{
    curve_iobuf a, b;
    curve_iobuf_init(&a);
    curve_iobuf_init(&b);
    assert_int_equal(curve_iobuf_append_copy(&a, "12", 2), 0);
    assert_int_equal(curve_iobuf_append_copy(&b, "34", 2), 0);
    assert_int_equal(curve_iobuf_append_copy(&b, "56", 2), 0);
    assert_int_equal(curve_iobuf_move(&a, &b), 0);
    assert_int_equal(curve_iobuf_move(&a, &b), 0); /* empty src */
    char out[8];
    assert_int_equal(curve_iobuf_copyout(&a, 0, out, 8), 6);
    assert_memory_equal(out, "123456", 6);
    /* b is reusable after the move */
    assert_int_equal(curve_iobuf_append_copy(&b, "7", 1), 0);
    assert_int_equal(b.len, 1);
    curve_iobuf_reset(&a);
    curve_iobuf_reset(&b);
}

static void test_flatten_single(void **state)
{
    curve_iobuf io;
    curve_iobuf_init(&io);
    curve_buf *b = curve_buf_new(8);
    memcpy(curve_buf_data(b), "abcdefgh", 8);
    curve_buf_set_len(b, 8);
    assert_int_equal(curve_iobuf_append(&io, b, 0, 8), 0);
    curve_buf *f = curve_iobuf_flatten(&io);
    assert_ptr_equal(f, b); /* zero-copy */
    assert_int_equal(curve_buf_refcount(b), 3);
    curve_buf_unref(f);
    curve_iobuf_reset(&io);
    /* a sub-range gets a copy of exactly that range */
    assert_int_equal(curve_iobuf_append(&io, b, 2, 3), 0);
    f = curve_iobuf_flatten(&io);
    assert_ptr_not_equal(f, b);
    assert_int_equal(curve_buf_len(f), 3);
    assert_memory_equal(curve_buf_data(f), "cde", 3);
    curve_buf_unref(f);
    curve_iobuf_reset(&io);
    /* empty iobuf flattens to an empty buffer */
    f = curve_iobuf_flatten(&io);
    assert_non_null(f);
    assert_int_equal(curve_buf_len(f), 0);
    curve_buf_unref(f);
    curve_buf_unref(b);
}

enum { REF_THREADS = 4, REF_ITERS = 1000000 };
static pthread_barrier_t ref_start;

static void *ref_unref_loop(void *arg)
{
    curve_buf *b = arg;
    pthread_barrier_wait(&ref_start); /* all threads hammer the count at the same time */
    for (int i = 0; i < REF_ITERS; i++) {
        curve_buf_ref(b);
        curve_buf_unref(b);
    }
    return NULL;
}

/* Concurrent ref/unref from several threads never loses a count; the free callback runs once,
 * when the last reference goes. */
static void test_concurrent_refcount(void **state)
{
    freed = 0;
    char *mem = malloc(16);
    assert_non_null(mem);
    curve_buf *b = curve_buf_wrap(mem, 16, count_free, &freed);
    pthread_t th[REF_THREADS];
    assert_int_equal(pthread_barrier_init(&ref_start, NULL, REF_THREADS), 0);
    for (int i = 0; i < REF_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, ref_unref_loop, b), 0);
    for (int i = 0; i < REF_THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&ref_start);
    assert_int_equal(curve_buf_refcount(b), 1);
    assert_int_equal(freed, 0);
    curve_buf_unref(b);
    assert_int_equal(freed, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_and_refs),
        cmocka_unit_test(test_alignment),
        cmocka_unit_test(test_wrap),
        cmocka_unit_test(test_iobuf_append_copyout),
        cmocka_unit_test(test_iobuf_many_slices),
        cmocka_unit_test(test_iobuf_move_inline),
        cmocka_unit_test(test_flatten_single),
        cmocka_unit_test(test_concurrent_refcount),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
