#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "common/clock.h"

static void test_system_monotonic(void **state)
{
    const curve_clock *c = curve_clock_system();
    assert_non_null(c);
    assert_ptr_equal(c, curve_clock_system());
    uint64_t prev = curve_clock_mono_ns(c);
    for (int i = 0; i < 10000; i++) {
        uint64_t now = curve_clock_mono_ns(c);
        assert_true(now >= prev);
        prev = now;
    }
    /* agrees with clock_gettime(CLOCK_MONOTONIC) within 1 s */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ref = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    uint64_t mine = curve_now_mono_ns();
    assert_true(mine >= ref && mine - ref < 1000000000u);
    uint64_t ms = curve_now_mono_ms();
    assert_true(ms >= ref / 1000000u && ms - ref / 1000000u < 1000u);
}

static void test_system_wall(void **state)
{
    time_t t = time(NULL);
    uint64_t w = curve_now_wall_ns();
    uint64_t w2 = curve_clock_wall_ns(curve_clock_system());
    assert_true(w / 1000000000u + 1 >= (uint64_t)t && w / 1000000000u <= (uint64_t)t + 1);
    assert_true(w2 >= w);
}

static void test_manual(void **state)
{
    curve_clock_manual m;
    curve_clock_manual_init(&m, 5000);
    const curve_clock *c = &m.base;
    assert_int_equal(curve_clock_mono_ns(c), 5000);
    uint64_t w0 = curve_clock_wall_ns(c);
    assert_int_equal(curve_clock_mono_ns(c), 5000); /* does not move by itself */
    curve_clock_manual_advance(&m, 3000000);
    assert_int_equal(curve_clock_mono_ns(c), 3005000);
    assert_int_equal(curve_clock_mono_ms(c), 3);
    assert_int_equal(curve_clock_wall_ns(c) - w0, 3000000);
    curve_clock_manual_advance(&m, 0);
    assert_int_equal(curve_clock_mono_ns(c), 3005000);
    /* two manual clocks are independent */
    curve_clock_manual m2;
    curve_clock_manual_init(&m2, 0);
    curve_clock_manual_advance(&m2, 7);
    assert_int_equal(curve_clock_mono_ns(&m2.base), 7);
    assert_int_equal(curve_clock_mono_ns(c), 3005000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_system_monotonic),
        cmocka_unit_test(test_system_wall),
        cmocka_unit_test(test_manual),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
