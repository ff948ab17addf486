/* Unit tests for src/common/failpoint.{h,c}. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/clock.h"
#include "common/failpoint.h"

static int setup(void **state)
{
    curve_failpoint_clear_all();
    return 0;
}

static void test_off_by_default(void **state)
{
    assert_int_equal(CURVE_FAILPOINT("t.none"), 0);
    assert_int_equal(atomic_load(&curve__failpoints_active), 0);
    assert_int_equal(curve_failpoint_hits("t.none"), 0);
}

static void test_return_errno(void **state)
{
    assert_int_equal(curve_failpoint_set("t.a", "return(ENOSPC)"), 0);
    assert_int_equal(CURVE_FAILPOINT("t.a"), -ENOSPC);
    assert_int_equal(CURVE_FAILPOINT("t.a"), -ENOSPC);
    assert_int_equal(CURVE_FAILPOINT("t.other"), 0);
    assert_int_equal(curve_failpoint_hits("t.a"), 2);
    assert_int_equal(curve_failpoint_set("t.a", "return"), 0);
    assert_int_equal(CURVE_FAILPOINT("t.a"), -EIO);
    assert_int_equal(curve_failpoint_set("t.a", "return(5)"), 0);
    assert_int_equal(CURVE_FAILPOINT("t.a"), -5);
    assert_int_equal(curve_failpoint_set("t.a", "off"), 0);
    assert_int_equal(CURVE_FAILPOINT("t.a"), 0);
    assert_int_equal(atomic_load(&curve__failpoints_active), 0);
}

static void test_count(void **state)
{
    assert_int_equal(curve_failpoint_set("t.c", "3*return(EIO)"), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(CURVE_FAILPOINT("t.c"), -EIO);
    assert_int_equal(CURVE_FAILPOINT("t.c"), 0);
    assert_int_equal(curve_failpoint_hits("t.c"), 3);
    assert_int_equal(atomic_load(&curve__failpoints_active), 0);
}

static void test_probability(void **state)
{
    int fired = 0;
    curve_failpoint_seed(42);
    assert_int_equal(curve_failpoint_set("t.p", "30%return(EIO)"), 0);
    for (int i = 0; i < 10000; i++)
        fired += CURVE_FAILPOINT("t.p") != 0;
    /* binomial(10000, 0.3): sd ~46; allow a wide margin but fail on 0% or 100% */
    assert_in_range(fired, 2500, 3500);
    assert_int_equal(curve_failpoint_hits("t.p"), (uint64_t)fired);
    assert_int_equal(curve_failpoint_set("t.p", "0%return"), 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(CURVE_FAILPOINT("t.p"), 0);
    /* probability and count: fires exactly twice, then off */
    assert_int_equal(curve_failpoint_set("t.p", "50%2*return(EAGAIN)"), 0);
    fired = 0;
    for (int i = 0; i < 1000; i++)
        fired += CURVE_FAILPOINT("t.p") == -EAGAIN;
    assert_int_equal(fired, 2);
}

static void test_delay(void **state)
{
    assert_int_equal(curve_failpoint_set("t.d", "1*delay(50)"), 0);
    uint64_t t0 = curve_now_mono_ms();
    assert_int_equal(CURVE_FAILPOINT("t.d"), 0);
    uint64_t t1 = curve_now_mono_ms();
    assert_true(t1 - t0 >= 50);
    assert_int_equal(curve_failpoint_hits("t.d"), 1);
    /* exhausted: it no longer fires (no delay, no hit) */
    assert_int_equal(CURVE_FAILPOINT("t.d"), 0);
    assert_int_equal(curve_failpoint_hits("t.d"), 1);
    assert_int_equal(atomic_load(&curve__failpoints_active), 0);
}

static void test_bad_actions(void **state)
{
    const char *bad[] = {"", "retrun", "return(", "return(EFOO)", "return(0)", "return(4096)",
                         "delay", "delay(x)", "delay(60001)", "101%return", "0*return",
                         "5%5%return", "return(EIO)x", "*return", "%return", "return)"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(curve_failpoint_set("t.bad", bad[i]), -EINVAL);
    }
    assert_int_equal(curve_failpoint_set("bad name", "return"), -EINVAL);
    assert_int_equal(curve_failpoint_set("", "return"), -EINVAL);
    assert_int_equal(curve_failpoint_set(NULL, "return"), -EINVAL);
    assert_int_equal(atomic_load(&curve__failpoints_active), 0);
}

static void test_configure_spec(void **state)
{
    char err[128];
    assert_int_equal(curve_failpoint_configure(" a.x = return(EIO) ; b.y=delay(1);; ", err,
                                               sizeof(err)),
                     0);
    assert_int_equal(CURVE_FAILPOINT("a.x"), -EIO);
    assert_int_equal(CURVE_FAILPOINT("b.y"), 0);
    assert_int_equal(curve_failpoint_hits("b.y"), 1);
    char dump[256];
    size_t n = curve_failpoint_dump(dump, sizeof(dump));
    assert_int_equal(n, strlen(dump));
    assert_non_null(strstr(dump, "a.x=return(EIO)"));
    assert_non_null(strstr(dump, "b.y=delay(1)"));
    /* all-or-nothing: a bad entry leaves everything unchanged */
    assert_int_equal(curve_failpoint_configure("a.x=off;c.z=bogus", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "c.z"));
    assert_int_equal(CURVE_FAILPOINT("a.x"), -EIO);
    assert_int_equal(CURVE_FAILPOINT("c.z"), 0);
    assert_int_equal(curve_failpoint_configure("noequals", err, sizeof(err)), -EINVAL);
    assert_int_equal(curve_failpoint_configure("a.x=off;b.y=off", NULL, 0), 0);
    assert_int_equal(atomic_load(&curve__failpoints_active), 0);
    /* truncated dump still reports the full length */
    assert_int_equal(curve_failpoint_set("long.name.for.dump", "return"), 0);
    char small[8];
    n = curve_failpoint_dump(small, sizeof(small));
    assert_true(n > sizeof(small));
    assert_true(strlen(small) < sizeof(small));
}

static void test_table_full(void **state)
{
    char name[32];
    for (int i = 0; i < CURVE_FAILPOINT_MAX; i++) {
        snprintf(name, sizeof(name), "t.full%d", i);
        assert_int_equal(curve_failpoint_set(name, "return"), 0);
    }
    assert_int_equal(curve_failpoint_set("t.one_more", "return"), -ENOSPC);
    assert_int_equal(curve_failpoint_configure("t.one_more=return", NULL, 0), -ENOSPC);
    assert_int_equal(CURVE_FAILPOINT("t.one_more"), 0);
    /* switching one off frees a slot */
    assert_int_equal(curve_failpoint_set("t.full0", "off"), 0);
    assert_int_equal(curve_failpoint_set("t.one_more", "return"), 0);
    assert_int_equal(CURVE_FAILPOINT("t.one_more"), -EIO);
    assert_int_equal(atomic_load(&curve__failpoints_active), CURVE_FAILPOINT_MAX);
    curve_failpoint_clear_all();
    assert_int_equal(atomic_load(&curve__failpoints_active), 0);
}

static void test_env(void **state)
{
    setenv("CURVE_FAILPOINTS", "env.fp=2*return(EROFS)", 1);
    assert_int_equal(curve_failpoint_init_from_env(), 0);
    assert_int_equal(CURVE_FAILPOINT("env.fp"), -EROFS);
    setenv("CURVE_FAILPOINTS", "env.fp=garbage", 1);
    assert_int_equal(curve_failpoint_init_from_env(), -EINVAL);
    assert_int_equal(CURVE_FAILPOINT("env.fp"), -EROFS); /* unchanged; last of 2 */
    assert_int_equal(CURVE_FAILPOINT("env.fp"), 0);
    unsetenv("CURVE_FAILPOINTS");
    assert_int_equal(curve_failpoint_init_from_env(), 0);
}

#define MT_THREADS 4
#define MT_ITERS 20000

static void *mt_worker(void *arg)
{
    long fired = 0;
    for (int i = 0; i < MT_ITERS; i++)
        fired += CURVE_FAILPOINT("t.mt") != 0;
    return (void *)fired;
}

static void test_threads_count_exact(void **state)
{
    pthread_t th[MT_THREADS];
    assert_int_equal(curve_failpoint_set("t.mt", "1000*return(EIO)"), 0);
    for (int i = 0; i < MT_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, mt_worker, NULL), 0);
    long total = 0;
    for (int i = 0; i < MT_THREADS; i++) {
        void *r;
        pthread_join(th[i], &r);
        total += (long)r;
    }
    assert_int_equal(total, 1000);
    assert_int_equal(curve_failpoint_hits("t.mt"), 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_off_by_default, setup),
        cmocka_unit_test_setup(test_return_errno, setup),
        cmocka_unit_test_setup(test_count, setup),
        cmocka_unit_test_setup(test_probability, setup),
        cmocka_unit_test_setup(test_delay, setup),
        cmocka_unit_test_setup(test_bad_actions, setup),
        cmocka_unit_test_setup(test_configure_spec, setup),
        cmocka_unit_test_setup(test_table_full, setup),
        cmocka_unit_test_setup(test_env, setup),
        cmocka_unit_test_setup(test_threads_count_exact, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
