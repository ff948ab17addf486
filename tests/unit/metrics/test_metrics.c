/* Unit tests of the metrics registry (src/common/metrics.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>

#include "common/assert.h"
#include "common/clock.h"
#include "common/metrics.h"

#define NS_PER_S 1000000000ull

static curve_metrics *reg_new(void)
{
    curve_metrics *reg = NULL;
    assert_int_equal(curve_metrics_new(&reg), 0);
    assert_non_null(reg);
    return reg;
}

static char *render(curve_metrics *reg)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(curve_metrics_render_prometheus(reg, &text, &len), 0);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

/* ---- names and registration errors ---- */

static void test_name_validation(void **state)
{
    const char *good[] = {"a", "_x", "curve_cs_write_total", "ns:sub_metric", ":x", "A9_b"};
    const char *bad[] = {"", "9abc", "a-b", "a b", "a.b", "é", "a\nb", "a{b}"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(curve_metric_name_valid(good[i]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(curve_metric_name_valid(bad[i]));
    assert_false(curve_metric_name_valid(NULL));

    char longname[CURVE_METRIC_NAME_MAX + 2];
    memset(longname, 'a', sizeof(longname));
    longname[CURVE_METRIC_NAME_MAX] = '\0';
    assert_true(curve_metric_name_valid(longname));
    longname[CURVE_METRIC_NAME_MAX] = 'a';
    longname[CURVE_METRIC_NAME_MAX + 1] = '\0';
    assert_false(curve_metric_name_valid(longname));

    assert_true(curve_metric_label_key_valid("copyset"));
    assert_true(curve_metric_label_key_valid("_x1"));
    assert_false(curve_metric_label_key_valid("__reserved"));
    assert_false(curve_metric_label_key_valid("a:b"));
    assert_false(curve_metric_label_key_valid("1a"));
    assert_false(curve_metric_label_key_valid(""));
}

static void test_register_errors(void **state)
{
    curve_metrics *reg = reg_new();
    curve_counter *c = NULL, *c2 = NULL;
    curve_gauge *g = NULL;
    curve_latency *l = NULL;

    assert_int_equal(curve_metrics_counter(reg, "bad-name", "h", NULL, &c), -EINVAL);
    assert_int_equal(curve_metrics_counter(reg, "ok_total", NULL, NULL, &c), -EINVAL);
    assert_int_equal(curve_metrics_counter(reg, "ok_total", "", NULL, &c), -EINVAL);
    assert_int_equal(curve_metrics_counter(NULL, "ok_total", "h", NULL, &c), -EINVAL);
    assert_int_equal(curve_metrics_counter(reg, "ok_total", "h", NULL, NULL), -EINVAL);
    assert_null(c);

    /* Bad label sets. */
    const char *badkey[] = {"__x", "v", NULL};
    const char *dupkey[] = {"a", "1", "a", "2", NULL};
    const char *novalue[] = {"a", NULL};
    const char *many[2 * (CURVE_METRIC_LABELS_MAX + 1) + 1];
    char keys[CURVE_METRIC_LABELS_MAX + 1][8];
    for (int i = 0; i <= CURVE_METRIC_LABELS_MAX; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%d", i);
        many[2 * i] = keys[i];
        many[2 * i + 1] = "v";
    }
    many[2 * (CURVE_METRIC_LABELS_MAX + 1)] = NULL;
    char longval[CURVE_METRIC_LABEL_VALUE_MAX + 2];
    memset(longval, 'v', sizeof(longval) - 1);
    longval[sizeof(longval) - 1] = '\0';
    const char *longv[] = {"k", longval, NULL};
    assert_int_equal(curve_metrics_counter(reg, "ok_total", "h", badkey, &c), -EINVAL);
    assert_int_equal(curve_metrics_counter(reg, "ok_total", "h", dupkey, &c), -EINVAL);
    assert_int_equal(curve_metrics_counter(reg, "ok_total", "h", novalue, &c), -EINVAL);
    assert_int_equal(curve_metrics_counter(reg, "ok_total", "h", many, &c), -EINVAL);
    assert_int_equal(curve_metrics_counter(reg, "ok_total", "h", longv, &c), -EINVAL);
    /* UTF-8: accepted when valid; truncated sequences, overlongs, surrogates, > U+10FFFF not. */
    const char *utf8_bad[] = {"\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff",
                              "a\xe2\x82"};
    for (size_t i = 0; i < sizeof(utf8_bad) / sizeof(utf8_bad[0]); i++) {
        const char *lv[] = {"k", utf8_bad[i], NULL};
        assert_int_equal(curve_metrics_counter(reg, "ok_total", "h", lv, &c), -EINVAL);
        assert_int_equal(curve_metrics_counter(reg, "ok_total", utf8_bad[i], NULL, &c), -EINVAL);
    }
    const char *utf8_ok[] = {"k", "\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x92\xbe", NULL};
    assert_int_equal(curve_metrics_counter(reg, "utf8_total", "caf\xc3\xa9", utf8_ok, &c), 0);
    curve_counter_unregister(c);
    c = NULL;
    const char *quantile[] = {"quantile", "x", NULL};
    assert_int_equal(curve_metrics_latency(reg, "lat_seconds", "h", quantile, NULL, 0, &l), -EINVAL);
    assert_int_equal(curve_metrics_latency(reg, "lat_seconds", "h", NULL, NULL,
                                           CURVE_METRIC_WINDOW_MAX_S + 1, &l),
                     -EINVAL);
    assert_int_equal(curve_metrics_gauge_fn(reg, "g", "h", NULL, NULL, NULL, &g), -EINVAL);
    assert_int_equal(curve_metrics_count(reg), 0);

    /* Duplicates: same label set (in any order), other kind, derived names. */
    const char *ab[] = {"a", "1", "b", "2", NULL};
    const char *ba[] = {"b", "2", "a", "1", NULL};
    assert_int_equal(curve_metrics_counter(reg, "ok_total", "h", ab, &c), 0);
    assert_int_equal(curve_metrics_counter(reg, "ok_total", "h", ba, &c2), -EEXIST);
    assert_int_equal(curve_metrics_gauge(reg, "ok_total", "h", NULL, &g), -EEXIST);
    assert_int_equal(curve_metrics_latency(reg, "lat_seconds", "h", NULL, NULL, 0, &l), 0);
    assert_int_equal(curve_metrics_gauge(reg, "lat_seconds_max", "h", NULL, &g), -EEXIST);
    assert_int_equal(curve_metrics_counter(reg, "lat_seconds_count", "h", NULL, &c2), -EEXIST);
    assert_int_equal(curve_metrics_gauge(reg, "other_max", "h", NULL, &g), 0);
    curve_latency *l2 = NULL;
    assert_int_equal(curve_metrics_latency(reg, "other", "h", NULL, NULL, 0, &l2), -EEXIST);
    assert_null(l2);
    assert_int_equal(curve_metrics_count(reg), 3);
    curve_metrics_free(reg);
}

/* ---- counters and gauges ---- */

#define ADD_THREADS 12 /* more than the stripes: some threads share one */
#define ADDS_PER_THREAD 200000

static void *adder(void *arg)
{
    curve_counter *c = arg;
    for (int i = 0; i < ADDS_PER_THREAD; i++)
        curve_counter_inc(c);
    curve_counter_add(c, 1000);
    return NULL;
}

static void test_counter_threads(void **state)
{
    curve_metrics *reg = reg_new();
    curve_counter *c = NULL;
    pthread_t th[ADD_THREADS];
    assert_int_equal(curve_metrics_counter(reg, "ops_total", "Ops.", NULL, &c), 0);
    for (int i = 0; i < ADD_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, adder, c), 0);
    for (int i = 0; i < ADD_THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(curve_counter_get(c), (uint64_t)ADD_THREADS * (ADDS_PER_THREAD + 1000));
    char *text = render(reg);
    char want[128];
    snprintf(want, sizeof(want), "\nops_total %llu\n",
             (unsigned long long)ADD_THREADS * (ADDS_PER_THREAD + 1000));
    assert_non_null(strstr(text, want));
    free(text);
    curve_metrics_free(reg);
}

static double fn_value(void *ctx)
{
    return *(double *)ctx;
}

static void test_gauges(void **state)
{
    curve_metrics *reg = reg_new();
    curve_gauge *g = NULL, *f = NULL;
    double val = 0.25;
    assert_int_equal(curve_metrics_gauge(reg, "inflight", "In flight.", NULL, &g), 0);
    curve_gauge_set(g, 10);
    curve_gauge_add(g, -15);
    assert_true(curve_gauge_get(g) == -5.0);
    assert_int_equal(curve_metrics_gauge_fn(reg, "ratio", "Ratio.", NULL, fn_value, &val, &f), 0);
    assert_true(curve_gauge_get(f) == 0.25);
    char *text = render(reg);
    assert_non_null(strstr(text, "\ninflight -5\n"));
    assert_non_null(strstr(text, "\nratio 0.25\n"));
    free(text);
    val = NAN;
    text = render(reg);
    assert_non_null(strstr(text, "\nratio NaN\n"));
    free(text);
    val = -INFINITY;
    text = render(reg);
    assert_non_null(strstr(text, "\nratio -Inf\n"));
    free(text);
    curve_metrics_free(reg);
}

static double fn_counter_value;

static double counter_cb(void *ctx)
{
    return fn_counter_value;
}

static void test_callback_counter(void **state)
{
    curve_metrics *reg = reg_new();
    curve_counter *c = NULL;
    assert_int_equal(curve_metrics_counter_fn(reg, "cb_total", "CB.", NULL, NULL, NULL, &c),
                     -EINVAL);
    assert_int_equal(curve_metrics_counter_fn(reg, "cb_total", "CB.", NULL, counter_cb, NULL, &c),
                     0);
    fn_counter_value = 2.5;
    assert_int_equal(curve_counter_get(c), 2);
    char *text = render(reg);
    assert_non_null(strstr(text, "# TYPE cb_total counter\ncb_total 2.5\n"));
    free(text);
    fn_counter_value = -1; /* a broken callback cannot make a counter negative */
    assert_int_equal(curve_counter_get(c), 0);
    text = render(reg);
    assert_non_null(strstr(text, "\ncb_total 0\n"));
    free(text);
    fn_counter_value = NAN;
    assert_int_equal(curve_counter_get(c), 0);
    curve_metrics_free(reg);
}

/* Value of an unlabelled sample `name` in a rendering (asserts it is there). */
static double sample_value(const char *text, const char *name)
{
    char key[128];
    snprintf(key, sizeof(key), "\n%s ", name);
    const char *p = strstr(text, key);
    if (p == NULL)
        fail_msg("sample %s missing", name);
    return strtod(p + strlen(key), NULL);
}

static void test_process_metrics(void **state)
{
    curve_metrics *reg = reg_new();
    assert_int_equal(curve_metrics_register_process(reg), 0);
    assert_int_equal(curve_metrics_count(reg), 7);
    assert_int_equal(curve_metrics_register_process(reg), -EEXIST);
    assert_int_equal(curve_metrics_count(reg), 7);

    /* Burn 30 ms of CPU (not of wall time: on a loaded machine 30 ms of wall time can be
     * less than one 10 ms clock tick of CPU) so the counter is not trivially zero. */
    volatile uint64_t x = 0;
    struct timespec ts;
    uint64_t cpu_ns;
    do {
        for (int i = 0; i < 100000; i++)
            x += 1;
        assert_int_equal(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts), 0);
        cpu_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    } while (cpu_ns < 30000000ull);
    assert_true(x > 0);
    char *text = render(reg);
    assert_non_null(strstr(text, "# TYPE process_cpu_seconds_total counter\n"));
    assert_true(sample_value(text, "process_cpu_seconds_total") > 0);
    assert_true(sample_value(text, "process_resident_memory_bytes") > 1e5);
    assert_true(sample_value(text, "process_virtual_memory_bytes") >=
                sample_value(text, "process_resident_memory_bytes"));
    assert_true(sample_value(text, "process_threads") >= 1);
    assert_true(sample_value(text, "process_max_fds") >= 3);

    /* Opening a file shows up in process_open_fds. */
    double fds = sample_value(text, "process_open_fds");
    assert_true(fds >= 3);
    free(text);
    FILE *fp = fopen("/proc/self/stat", "r");
    assert_non_null(fp);
    text = render(reg);
    assert_true(sample_value(text, "process_open_fds") == fds + 1);
    fclose(fp);

    double now_s = (double)curve_now_wall_ns() / 1e9;
    double start = sample_value(text, "process_start_time_seconds");
    assert_true(start <= now_s + 1 && start > now_s - 3600);
    free(text);
    curve_metrics_free(reg);
}

/* ---- latency recorder ---- */

/* Exact quantile of 1..n (each once): the ceil(q*n)-th value. */
static uint64_t exact_quantile(uint64_t n, double q)
{
    return (uint64_t)ceil(q * (double)n);
}

static void assert_close(uint64_t got, uint64_t want, double rel)
{
    double err = fabs((double)got - (double)want);
    if (err > rel * (double)want + 1.0)
        fail_msg("got %llu, want %llu (+-%.2f%%)", (unsigned long long)got,
                 (unsigned long long)want, rel * 100);
}

static void test_latency_percentiles(void **state)
{
    curve_clock_manual clk;
    curve_clock_manual_init(&clk, 1000 * NS_PER_S);
    curve_metrics *reg = reg_new();
    curve_latency *l = NULL;
    assert_int_equal(curve_metrics_latency(reg, "io_us", "IO latency.", NULL, &clk.base, 10, &l),
                     0);

    /* A uniform distribution 1..N µs, shuffled deterministically. */
    const uint64_t n = 100000;
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v = (i * 7919) % n + 1; /* 7919 is prime, coprime with n: a permutation */
        curve_latency_record(l, v);
        sum += v;
    }
    curve_latency_stats st;
    curve_latency_get_stats(l, &st);
    assert_int_equal(st.count, n);
    assert_int_equal(st.sum_us, sum);
    assert_int_equal(st.win_count, n);
    assert_int_equal(st.win_sum_us, sum);
    assert_int_equal(st.win_max_us, n);
    assert_true(fabs(st.win_avg_us - (double)sum / (double)n) < 1e-6);
    assert_int_equal(st.window_s, 10);
    /* Histogram buckets are 1/16 of their power of two wide; we report midpoints: <= 1/32. */
    const double rel = 1.0 / 32;
    assert_close(st.p50_us, exact_quantile(n, 0.5), rel);
    assert_close(st.p90_us, exact_quantile(n, 0.9), rel);
    assert_close(st.p99_us, exact_quantile(n, 0.99), rel);
    assert_close(st.p999_us, exact_quantile(n, 0.999), rel);
    assert_true(st.p50_us <= st.p90_us && st.p90_us <= st.p99_us && st.p99_us <= st.p999_us);
    assert_true(st.p999_us <= st.win_max_us);
    assert_close(curve_latency_quantile(l, 0.25), exact_quantile(n, 0.25), rel);
    /* All records happened at one instant; qps divides by at least 1 ms. */
    assert_true(st.qps > 0);

    /* Small values are exact; a skewed distribution: 99% at 5 µs, 1% at 10000 µs. */
    curve_latency *s = NULL;
    assert_int_equal(curve_metrics_latency(reg, "small_us", "Small.", NULL, &clk.base, 10, &s),
                     0);
    for (int i = 0; i < 990; i++)
        curve_latency_record(s, 5);
    for (int i = 0; i < 10; i++)
        curve_latency_record(s, 10000);
    curve_latency_get_stats(s, &st);
    assert_int_equal(st.p50_us, 5);
    assert_int_equal(st.p90_us, 5);
    assert_int_equal(st.p99_us, 5);
    assert_close(st.p999_us, 10000, rel);
    assert_int_equal(st.win_max_us, 10000);

    /* The worst case of the bucket error: a value just above a power of two, in the widest
     * bucket relative to its value. The reported midpoint must stay within 1/32. */
    curve_latency *p2 = NULL;
    assert_int_equal(curve_metrics_latency(reg, "p2_us", "P2.", NULL, &clk.base, 10, &p2), 0);
    for (int i = 0; i < 100; i++)
        curve_latency_record(p2, 32769);
    curve_latency_record(p2, 40000);
    assert_close(curve_latency_quantile(p2, 0.5), 32769, rel);

    /* Clamping of absurd values. */
    curve_latency_record(s, UINT64_MAX);
    curve_latency_get_stats(s, &st);
    assert_int_equal(st.win_max_us, CURVE_LATENCY_MAX_US);
    curve_metrics_free(reg);
}

static void test_latency_window_slides(void **state)
{
    curve_clock_manual clk;
    curve_clock_manual_init(&clk, 1000 * NS_PER_S + NS_PER_S / 2); /* t = 1000.5 s */
    curve_metrics *reg = reg_new();
    curve_latency *l = NULL;
    curve_latency_stats st;
    assert_int_equal(curve_metrics_latency(reg, "w_seconds", "W.", NULL, &clk.base, 10, &l), 0);

    for (int i = 0; i < 100; i++)
        curve_latency_record(l, 1000); /* second 1000 */
    curve_clock_manual_advance(&clk, 5 * NS_PER_S); /* t = 1005.5 */
    for (int i = 0; i < 100; i++)
        curve_latency_record(l, 10); /* second 1005 */
    curve_latency_get_stats(l, &st);
    assert_int_equal(st.win_count, 200);
    assert_int_equal(st.win_max_us, 1000);
    assert_int_equal(st.p50_us, 10);
    assert_close(st.p90_us, 1000, 1.0 / 32);
    /* Window covers seconds 996..1005 but starts at creation (1000.5): span 5 s. */
    assert_true(fabs(st.qps - 200.0 / 5.0) < 1e-9);

    /* t = 1009.9: window is seconds 1000..1009, both still in. */
    curve_clock_manual_advance(&clk, 4 * NS_PER_S + 4 * NS_PER_S / 10);
    curve_latency_get_stats(l, &st);
    assert_int_equal(st.win_count, 200);

    /* t = 1010.0: second 1000 left the window; its max and its values are gone. */
    curve_clock_manual_advance(&clk, NS_PER_S / 10);
    curve_latency_get_stats(l, &st);
    assert_int_equal(st.win_count, 100);
    assert_int_equal(st.win_max_us, 10);
    assert_int_equal(st.p999_us, 10);
    assert_true(fabs(st.qps - 100.0 / 9.0) < 1e-9); /* window 1001.0 .. 1010.0 */

    /* Recording in second 1010 reuses slot 0 (which held second 1000): old data is cleared. */
    curve_latency_record(l, 50);
    curve_latency_get_stats(l, &st);
    assert_int_equal(st.win_count, 101);
    assert_int_equal(st.win_sum_us, 100 * 10 + 50);

    /* Far in the future: the window is empty, the cumulative totals remain. */
    curve_clock_manual_advance(&clk, 100 * NS_PER_S);
    curve_latency_get_stats(l, &st);
    assert_int_equal(st.win_count, 0);
    assert_int_equal(st.win_max_us, 0);
    assert_int_equal(st.p50_us, 0);
    assert_true(st.qps == 0);
    assert_int_equal(st.count, 201);
    assert_int_equal(st.sum_us, 100 * 1000 + 100 * 10 + 50);
    char *text = render(reg);
    assert_non_null(strstr(text, "w_seconds{quantile=\"0.5\"} NaN\n"));
    assert_non_null(strstr(text, "\nw_seconds_count 201\n"));
    assert_non_null(strstr(text, "\nw_seconds_max 0\n"));
    free(text);
    curve_metrics_free(reg);
}

#define REC_THREADS 4
#define RECS_PER_THREAD 50000

static void *recorder(void *arg)
{
    curve_latency *l = arg;
    for (int i = 0; i < RECS_PER_THREAD; i++)
        curve_latency_record(l, (uint64_t)(i % 1000) + 1);
    return NULL;
}

static void test_latency_threads(void **state)
{
    /* System clock: the threads may cross a second boundary and race on slot recycling. */
    curve_metrics *reg = reg_new();
    curve_latency *l = NULL;
    pthread_t th[REC_THREADS];
    assert_int_equal(curve_metrics_latency(reg, "t_us", "T.", NULL, NULL, 0, &l), 0);
    for (int i = 0; i < REC_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, recorder, l), 0);
    for (int i = 0; i < REC_THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    curve_latency_stats st;
    curve_latency_get_stats(l, &st);
    uint64_t per_thread_sum = 0;
    for (int i = 0; i < RECS_PER_THREAD; i++)
        per_thread_sum += (uint64_t)(i % 1000) + 1;
    assert_int_equal(st.count, (uint64_t)REC_THREADS * RECS_PER_THREAD);
    assert_int_equal(st.sum_us, REC_THREADS * per_thread_sum);
    assert_true(st.win_max_us == 1000);
    curve_metrics_free(reg);
}

/* ---- rate ---- */

static void test_rate_window(void **state)
{
    curve_clock_manual clk;
    curve_clock_manual_init(&clk, 1000 * NS_PER_S);
    curve_metrics *reg = reg_new();
    curve_rate *r = NULL;
    curve_rate_stats st;
    assert_int_equal(curve_metrics_rate(reg, "bytes_per_second", "Bytes/s.", NULL, &clk.base, 10,
                                        &r),
                     0);
    curve_rate_get_stats(r, &st);
    assert_int_equal(st.total, 0);
    assert_true(st.per_second == 0);

    /* 100 per second for 10 seconds, each at x.5 s. */
    curve_clock_manual_advance(&clk, NS_PER_S / 2);
    for (int i = 0; i < 10; i++) {
        curve_rate_add(r, 100);
        if (i < 9)
            curve_clock_manual_advance(&clk, NS_PER_S);
    }
    /* t = 1009.5; window = seconds 1000..1009 = [1000.0, 1009.5]: 1000 in 9.5 s. */
    curve_rate_get_stats(r, &st);
    assert_int_equal(st.total, 1000);
    assert_int_equal(st.win_count, 1000);
    assert_true(fabs(st.per_second - 1000.0 / 9.5) < 1e-9);

    /* t = 1015.5: seconds 1006..1015 → adds of 1006..1009 (400) remain. */
    curve_clock_manual_advance(&clk, 6 * NS_PER_S);
    curve_rate_get_stats(r, &st);
    assert_int_equal(st.win_count, 400);
    assert_true(fabs(st.per_second - 400.0 / 9.5) < 1e-9);

    /* Much later: only the new add counts; the total keeps everything. */
    curve_clock_manual_advance(&clk, 15 * NS_PER_S);
    curve_rate_add(r, 50);
    curve_rate_get_stats(r, &st);
    assert_int_equal(st.total, 1050);
    assert_int_equal(st.win_count, 50);
    assert_true(fabs(st.per_second - 50.0 / 9.5) < 1e-9);
    char *text = render(reg);
    assert_non_null(strstr(text, "# TYPE bytes_per_second gauge\n"));
    char want[64];
    snprintf(want, sizeof(want), "\nbytes_per_second %.15g\n", 50.0 / 9.5);
    assert_non_null(strstr(text, want));
    free(text);
    curve_metrics_free(reg);
}

/* ---- unregister ---- */

static void test_unregister(void **state)
{
    curve_metrics *reg = reg_new();
    curve_counter *c[3];
    char ids[3][16];
    for (int i = 0; i < 3; i++) {
        snprintf(ids[i], sizeof(ids[i]), "%lld", 4294967297LL + i);
        const char *labels[] = {"copyset", ids[i], NULL};
        assert_int_equal(curve_metrics_counter(reg, "cs_ops_total", "Ops.", labels, &c[i]), 0);
        curve_counter_add(c[i], (uint64_t)i + 1);
    }
    curve_rate *r = NULL;
    assert_int_equal(curve_metrics_rate(reg, "r", "R.", NULL, NULL, 0, &r), 0);
    assert_int_equal(curve_metrics_count(reg), 4);

    curve_counter_unregister(c[1]);
    assert_int_equal(curve_metrics_count(reg), 3);
    char *text = render(reg);
    assert_non_null(strstr(text, "cs_ops_total{copyset=\"4294967297\"} 1\n"));
    assert_null(strstr(text, "4294967298"));
    assert_non_null(strstr(text, "cs_ops_total{copyset=\"4294967299\"} 3\n"));
    free(text);

    /* The label set can come back (a copyset re-created) and starts from zero. */
    const char *again[] = {"copyset", ids[1], NULL};
    assert_int_equal(curve_metrics_counter(reg, "cs_ops_total", "Ops.", again, &c[1]), 0);
    assert_int_equal(curve_counter_get(c[1]), 0);

    for (int i = 0; i < 3; i++)
        curve_counter_unregister(c[i]);
    curve_rate_unregister(r);
    curve_counter_unregister(NULL);
    assert_int_equal(curve_metrics_count(reg), 0);
    text = render(reg);
    assert_string_equal(text, "");
    free(text);
    /* The family is gone with its last member: the name may now be another kind. */
    curve_gauge *g = NULL;
    assert_int_equal(curve_metrics_gauge(reg, "cs_ops_total", "Now a gauge.", NULL, &g), 0);
    curve_gauge_unregister(g);
    curve_metrics_free(reg);
}

/* ---- rendering ---- */

static double seven(void *ctx)
{
    return 7.5;
}

static void test_prometheus_render(void **state)
{
    curve_clock_manual clk;
    curve_clock_manual_init(&clk, 50 * NS_PER_S);
    curve_metrics *reg = reg_new();
    curve_counter *c1 = NULL, *c2 = NULL;
    curve_gauge *g = NULL;
    curve_latency *l = NULL;
    const char *l1[] = {"copyset", "4294967297", "path", "a\"b\\c\nd", NULL};
    const char *l2[] = {"copyset", "4294967298", NULL};
    assert_int_equal(
        curve_metrics_counter(reg, "z_writes_total", "Writes; \\ and\nnewline \"q\".", l1, &c1),
        0);
    assert_int_equal(curve_metrics_counter(reg, "z_writes_total", "ignored", l2, &c2), 0);
    assert_int_equal(curve_metrics_gauge_fn(reg, "a_gauge", "A gauge.", NULL, seven, NULL, &g), 0);
    assert_int_equal(
        curve_metrics_latency(reg, "m_lat_seconds", "Latency.", l2, &clk.base, 10, &l), 0);
    curve_counter_add(c1, 3);
    curve_counter_add(c2, 4);
    curve_latency_record(l, 8);
    curve_latency_record(l, 12);

    char *text = render(reg);
    const char *want =
        "# HELP a_gauge A gauge.\n"
        "# TYPE a_gauge gauge\n"
        "a_gauge 7.5\n"
        "# HELP m_lat_seconds Latency.\n"
        "# TYPE m_lat_seconds summary\n"
        "m_lat_seconds{copyset=\"4294967298\",quantile=\"0.5\"} 8e-06\n"
        "m_lat_seconds{copyset=\"4294967298\",quantile=\"0.9\"} 1.2e-05\n"
        "m_lat_seconds{copyset=\"4294967298\",quantile=\"0.99\"} 1.2e-05\n"
        "m_lat_seconds{copyset=\"4294967298\",quantile=\"0.999\"} 1.2e-05\n"
        "m_lat_seconds_sum{copyset=\"4294967298\"} 2e-05\n"
        "m_lat_seconds_count{copyset=\"4294967298\"} 2\n"
        "# HELP m_lat_seconds_max Maximum of m_lat_seconds over the last 10 s\n"
        "# TYPE m_lat_seconds_max gauge\n"
        "m_lat_seconds_max{copyset=\"4294967298\"} 1.2e-05\n"
        "# HELP z_writes_total Writes; \\\\ and\\nnewline \"q\".\n"
        "# TYPE z_writes_total counter\n"
        "z_writes_total{copyset=\"4294967297\",path=\"a\\\"b\\\\c\\nd\"} 3\n"
        "z_writes_total{copyset=\"4294967298\"} 4\n";
    assert_string_equal(text, want);
    free(text);
    curve_metrics_free(reg);
}

typedef struct visit_ctx {
    int n;
    int stop_at;
    uint64_t counter_sum;
} visit_ctx;

static int visit(const curve_metric_view *m, void *arg)
{
    visit_ctx *v = arg;
    v->n++;
    if (m->kind == CURVE_METRIC_COUNTER) {
        assert_string_equal(m->name, "c_total");
        assert_int_equal(m->nlabels, 1);
        assert_string_equal(m->label_keys[0], "k");
        v->counter_sum += m->v.counter;
    }
    return v->n == v->stop_at ? 42 : 0;
}

static void test_foreach(void **state)
{
    curve_metrics *reg = reg_new();
    curve_counter *a = NULL, *b = NULL;
    curve_latency *l = NULL;
    assert_int_equal(curve_metrics_counter(reg, "c_total", "C.", (const char *[]){"k", "1", NULL},
                                           &a),
                     0);
    assert_int_equal(curve_metrics_counter(reg, "c_total", "C.", (const char *[]){"k", "2", NULL},
                                           &b),
                     0);
    assert_int_equal(curve_metrics_latency(reg, "l_us", "L.", NULL, NULL, 0, &l), 0);
    curve_counter_add(a, 5);
    curve_counter_add(b, 6);
    visit_ctx v = {0};
    assert_int_equal(curve_metrics_foreach(reg, visit, &v), 0);
    assert_int_equal(v.n, 3);
    assert_int_equal(v.counter_sum, 11);
    visit_ctx stop = {.stop_at = 1};
    assert_int_equal(curve_metrics_foreach(reg, visit, &stop), 42);
    assert_int_equal(stop.n, 1);
    curve_metrics_free(reg);
}

static void test_default_registry(void **state)
{
    curve_metrics *d = curve_metrics_default();
    assert_ptr_equal(d, curve_metrics_default());
    curve_counter *c = NULL;
    assert_int_equal(curve_metrics_counter(d, "default_test_total", "T.", NULL, &c), 0);
    curve_counter_inc(c);
    char *text = render(d);
    assert_non_null(strstr(text, "\ndefault_test_total 1\n"));
    free(text);
    curve_counter_unregister(c);
}

/* Registration and rendering racing with each other and with hot-path updates (for ASan and
 * TSan builds; the counts must still come out exact). */
#define CHURN_ROUNDS 300

typedef struct churn_ctx {
    curve_metrics *reg;
    curve_counter *stable;
} churn_ctx;

static void *churner(void *arg)
{
    churn_ctx *cc = arg;
    for (int i = 0; i < CHURN_ROUNDS; i++) {
        char id[16];
        snprintf(id, sizeof(id), "%d", i % 7);
        const char *labels[] = {"copyset", id, NULL};
        curve_latency *l = NULL;
        CURVE_ASSERT(curve_metrics_latency(cc->reg, "churn_us", "C.", labels, NULL, 0, &l) == 0);
        curve_latency_record(l, 5);
        curve_counter_inc(cc->stable);
        curve_latency_unregister(l);
    }
    return NULL;
}

static void test_concurrent_churn(void **state)
{
    churn_ctx cc = {.reg = reg_new()};
    assert_int_equal(curve_metrics_counter(cc.reg, "stable_total", "S.", NULL, &cc.stable), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, churner, &cc), 0);
    for (int i = 0; i < CHURN_ROUNDS / 3; i++) {
        char *text = render(cc.reg);
        assert_non_null(strstr(text, "# TYPE stable_total counter\n"));
        free(text);
    }
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(curve_counter_get(cc.stable), CHURN_ROUNDS);
    assert_int_equal(curve_metrics_count(cc.reg), 1);
    curve_metrics_free(cc.reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_validation),
        cmocka_unit_test(test_register_errors),
        cmocka_unit_test(test_counter_threads),
        cmocka_unit_test(test_gauges),
        cmocka_unit_test(test_callback_counter),
        cmocka_unit_test(test_process_metrics),
        cmocka_unit_test(test_latency_percentiles),
        cmocka_unit_test(test_latency_window_slides),
        cmocka_unit_test(test_latency_threads),
        cmocka_unit_test(test_rate_window),
        cmocka_unit_test(test_unregister),
        cmocka_unit_test(test_prometheus_render),
        cmocka_unit_test(test_foreach),
        cmocka_unit_test(test_default_registry),
        cmocka_unit_test(test_concurrent_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
