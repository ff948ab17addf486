/*
 * Metrics registry: counters, gauges, latency recorders and windowed rates, rendered in the
 * Prometheus text exposition format 0.0.4 (served by src/admin on /metrics) and visited as
 * structured values (turned into JSON by src/admin for /status).
 *
 * Model
 *   A *family* is a metric name with one kind and one help text. A family holds one or more
 *   *metrics*, each with a distinct set of constant labels (e.g. one per copyset:
 *   copyset="4294967297"). Registering a name that exists adds a label set to the family (the
 *   kind must match; the first help text is kept). A family disappears with its last metric.
 *
 * Names and labels (validated; violations return -EINVAL)
 *   name:        [a-zA-Z_:][a-zA-Z0-9_:]*, at most CURVE_METRIC_NAME_MAX bytes.
 *   label key:   [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", at most CURVE_METRIC_NAME_MAX
 *                bytes, unique within a label set; "quantile" is reserved for latency recorders.
 *   label value: valid UTF-8, at most CURVE_METRIC_LABEL_VALUE_MAX bytes (escaped on output:
 *                backslash, double quote, newline).
 *   help:        required, valid UTF-8, at most 1024 bytes (escaped on output: backslash,
 *                newline).
 *   at most CURVE_METRIC_LABELS_MAX labels per metric.
 *   Labels are passed as a NULL-terminated array of alternating key/value strings, e.g.
 *   (const char *[]){"copyset", "4294967297", "pool", "1", NULL}, or NULL for none. They are
 *   copied.
 *   A latency recorder named N also exports N_sum, N_count and N_max; these derived names may
 *   not collide with another family (-EEXIST).
 *   Prometheus naming rules (checked by `promtool check metrics`, documented in docs/metrics.md,
 *   not enforced here): counters end in "_total"; units are base units spelled out
 *   ("_seconds", "_bytes"), never abbreviated ("_us", "_ms") — so name latency recorders
 *   "..._seconds": they take µs but are exported in seconds.
 *
 * Kinds
 *   counter   monotonic u64; add is a relaxed atomic add on a per-thread stripe (no lock, little
 *             cache-line sharing).
 *   gauge     i64 set/add (one atomic), or a callback gauge whose value (a double) is computed
 *             at render time.
 *   latency   records durations in µs (exported to Prometheus in seconds, the base unit; the
 *             JSON view and curve_latency_get_stats stay in µs). Keeps cumulative count and
 *             sum (Prometheus _count/_sum)
 *             and, over a sliding window of `window_s` one-second buckets, count, sum, avg, max,
 *             qps and p50/p90/p99/p999 from a log-linear histogram (16 linear sub-buckets per
 *             power of two: relative error <= 1/32; values clamp at CURVE_LATENCY_MAX_US).
 *             Memory per recorder: about window_s * 2.4 KiB. Recording is lock-free except
 *             once per second per recorder, when one thread recycles the oldest bucket under
 *             the recorder's own mutex.
 *   rate      a counter that also counts per second over a sliding window; exported to
 *             Prometheus as a gauge with the per-second rate over the window (the total is in
 *             the JSON view). For Prometheus alone prefer a counter and PromQL rate().
 *   The window covers the current (partial) second and the window_s-1 seconds before it; rates
 *   divide by exactly the time those buckets cover (not less than the time since creation).
 *
 * Threads
 *   Every function is thread-safe. The registry mutex is taken by register, unregister, render
 *   and foreach only — never by add/set/record. Gauge callbacks and foreach callbacks run with
 *   the registry mutex held: they must not call register/unregister/render on the same
 *   registry. After an unregister function returns, a gauge callback never runs again.
 *
 * Ownership
 *   Register functions return a handle owned by the registry; the matching *_unregister()
 *   removes and frees it. The caller must ensure no thread uses a handle during or after its
 *   unregistration. Destroying a registry frees every metric still in it.
 */
#ifndef CURVE_COMMON_METRICS_H
#define CURVE_COMMON_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/clock.h"

#define CURVE_METRIC_NAME_MAX 128        /* bytes in a metric name or label key */
#define CURVE_METRIC_LABEL_VALUE_MAX 256 /* bytes in a label value */
#define CURVE_METRIC_LABELS_MAX 8        /* labels per metric */
#define CURVE_METRIC_WINDOW_DEFAULT_S 10 /* default sliding window of latency/rate */
#define CURVE_METRIC_WINDOW_MAX_S 60     /* largest window accepted */
#define CURVE_LATENCY_MAX_US ((UINT64_C(1) << 40) - 1) /* ~12.7 days; larger values clamp */

typedef struct curve_metrics curve_metrics;
typedef struct curve_counter curve_counter;
typedef struct curve_gauge curve_gauge;
typedef struct curve_latency curve_latency;
typedef struct curve_rate curve_rate;

typedef enum {
    CURVE_METRIC_COUNTER,
    CURVE_METRIC_GAUGE,    /* set/add gauge and callback gauge */
    CURVE_METRIC_LATENCY,
    CURVE_METRIC_RATE,
} curve_metric_kind;

/* Value of a callback gauge. Runs on the thread that renders (the admin HTTP thread), with
 * the registry mutex held; must be fast and must not touch the registry. */
typedef double (*curve_gauge_cb)(void *ctx);

/* ---- registry ---- */

/* Creates an empty registry. Returns 0 or -ENOMEM. */
int curve_metrics_new(curve_metrics **out);
/* Frees the registry and every metric still registered (their handles become invalid).
 * NULL is ignored. Must not be called on the default registry. */
void curve_metrics_free(curve_metrics *reg);
/* The process-wide default registry (created on first use, never freed). Never NULL. */
curve_metrics *curve_metrics_default(void);
/* Number of metrics (label sets, not families) registered; for tests and /status. */
size_t curve_metrics_count(curve_metrics *reg);

/* Validation helpers (also used by the register functions). */
bool curve_metric_name_valid(const char *name);
bool curve_metric_label_key_valid(const char *key);

/* ---- registration ----
 * All return 0, -EINVAL (bad name, help, labels or window; NULL reg/name/out), -EEXIST (the
 * name exists with another kind, the label set already exists in the family, or a derived name
 * collides) or -ENOMEM. On error *out is left unchanged. */
int curve_metrics_counter(curve_metrics *reg, const char *name, const char *help,
                          const char *const *labels, curve_counter **out);
int curve_metrics_gauge(curve_metrics *reg, const char *name, const char *help,
                        const char *const *labels, curve_gauge **out);
/* A counter whose value is cb(ctx) at render time (e.g. CPU seconds read from /proc); the
 * callback must return a non-decreasing value (negative/NaN read as 0). curve_counter_add must
 * not be used on it (asserted); curve_counter_get returns the value truncated to an integer. */
int curve_metrics_counter_fn(curve_metrics *reg, const char *name, const char *help,
                             const char *const *labels, curve_gauge_cb cb, void *ctx,
                             curve_counter **out);
/* A gauge whose value is cb(ctx) at render time; curve_gauge_set/add must not be used on it. */
int curve_metrics_gauge_fn(curve_metrics *reg, const char *name, const char *help,
                           const char *const *labels, curve_gauge_cb cb, void *ctx,
                           curve_gauge **out);
/* `clock` (borrowed, must outlive the recorder; NULL = system clock) gives the window time;
 * `window_s` in 1..CURVE_METRIC_WINDOW_MAX_S, 0 = CURVE_METRIC_WINDOW_DEFAULT_S. */
int curve_metrics_latency(curve_metrics *reg, const char *name, const char *help,
                          const char *const *labels, const curve_clock *clock, unsigned window_s,
                          curve_latency **out);
int curve_metrics_rate(curve_metrics *reg, const char *name, const char *help,
                       const char *const *labels, const curve_clock *clock, unsigned window_s,
                       curve_rate **out);

/* Remove from the registry and free. NULL is ignored. */
void curve_counter_unregister(curve_counter *c);
void curve_gauge_unregister(curve_gauge *g);
void curve_latency_unregister(curve_latency *l);
void curve_rate_unregister(curve_rate *r);

/* ---- hot path (lock-free, any thread) ---- */

void curve_counter_add(curve_counter *c, uint64_t n);
static inline void curve_counter_inc(curve_counter *c)
{
    curve_counter_add(c, 1);
}
uint64_t curve_counter_get(const curve_counter *c);

void curve_gauge_set(curve_gauge *g, int64_t v);
void curve_gauge_add(curve_gauge *g, int64_t delta); /* negative delta decrements */
/* Current value (calls the callback of a callback gauge, without the registry mutex). */
double curve_gauge_get(const curve_gauge *g);

/* Records one duration in µs (values above CURVE_LATENCY_MAX_US are clamped). */
void curve_latency_record(curve_latency *l, uint64_t us);

void curve_rate_add(curve_rate *r, uint64_t n);

/* ---- reading ---- */

typedef struct curve_latency_stats {
    uint64_t count;       /* cumulative since registration */
    uint64_t sum_us;      /* cumulative since registration */
    uint64_t win_count;   /* in the window */
    uint64_t win_sum_us;
    uint64_t win_max_us;  /* 0 when win_count == 0 */
    double win_avg_us;    /* 0 when win_count == 0 */
    double qps;           /* win_count per second of window */
    uint64_t p50_us, p90_us, p99_us, p999_us; /* 0 when win_count == 0 */
    unsigned window_s;
} curve_latency_stats;

/* Snapshot of the recorder at the clock's current time. Approximate (not torn, but possibly
 * missing a few concurrent records) while other threads record. */
void curve_latency_get_stats(const curve_latency *l, curve_latency_stats *st);

/* Value `q` in (0, 1] quantile over the window, in µs; 0 when the window is empty. */
uint64_t curve_latency_quantile(const curve_latency *l, double q);

typedef struct curve_rate_stats {
    uint64_t total;     /* cumulative since registration */
    uint64_t win_count; /* in the window */
    double per_second;  /* win_count / seconds covered */
    unsigned window_s;
} curve_rate_stats;
void curve_rate_get_stats(const curve_rate *r, curve_rate_stats *st);

/* Registers the standard Prometheus process metrics, computed from /proc/self at render time:
 * process_cpu_seconds_total (counter), process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_open_fds, process_max_fds, process_threads,
 * process_start_time_seconds (gauges). Call once per registry (usually the default one) at
 * daemon start; they stay until the registry is freed. Returns 0, -EEXIST (already there) or
 * -ENOMEM; on error nothing is left registered. A value that cannot be read renders as NaN. */
int curve_metrics_register_process(curve_metrics *reg);

/* ---- rendering and visiting ---- */

/* Renders every metric in the Prometheus text format 0.0.4 (families sorted by name, HELP and
 * TYPE once per family, latency recorders as a summary in seconds — quantiles 0.5, 0.9, 0.99,
 * 0.999 over the window (NaN when it is empty), cumulative _sum and _count — plus a
 * `<name>_max` gauge in seconds over the window). On success
 * returns 0 and a NUL-terminated malloc'd string in *out (length in *len if len is not NULL);
 * the caller frees it. Returns -ENOMEM on allocation failure. */
int curve_metrics_render_prometheus(curve_metrics *reg, char **out, size_t *len);

/* One metric as seen by curve_metrics_foreach(). Everything is borrowed for the duration of
 * the callback only. */
typedef struct curve_metric_view {
    const char *name;
    const char *help;
    curve_metric_kind kind;
    size_t nlabels;
    const char *const *label_keys;   /* nlabels entries */
    const char *const *label_values; /* nlabels entries */
    bool callback; /* callback counter or gauge: the value is in v.gauge for both */
    union {
        uint64_t counter; /* counters without callback */
        double gauge;
        curve_latency_stats latency;
        curve_rate_stats rate;
    } v;
} curve_metric_view;

/* Calls cb for every metric (families sorted by name, metrics in registration order) with the
 * registry mutex held. Stops early and returns cb's value if it returns non-zero; else 0. */
int curve_metrics_foreach(curve_metrics *reg, int (*cb)(const curve_metric_view *m, void *ctx),
                          void *ctx);

#endif
