/*
 * Metrics registry. See metrics.h for the contract.
 *
 * Layout: a registry holds a name-sorted list of families; each family holds its metrics in
 * registration order. One mutex per registry protects both lists (registration, rendering).
 * The hot path touches only the metric's own atomics:
 *   - counters: CURVE_COUNTER_STRIPES cache-line sized slots; a thread always adds to "its"
 *     slot (assigned round-robin on its first add), readers sum the slots;
 *   - windowed metrics (latency, rate): a ring of one-second buckets indexed by
 *     second % window_s. A bucket is tagged with the second it holds (+1, 0 = never used).
 *     The first writer of a new second recycles the bucket under the metric's own mutex, so
 *     the lock is taken at most once per second per metric.
 */
#include "common/metrics.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/assert.h"

/* ---- limits and constants ---- */

#define CURVE_COUNTER_STRIPES 8 /* per-thread slots of a counter (power of two) */
#define CACHE_LINE 64
#define NS_PER_S UINT64_C(1000000000)

/* Log-linear histogram: values < HIST_SUB are exact; above, each power of two [2^e, 2^(e+1))
 * is split into HIST_SUB linear sub-buckets, so a bucket is at most 1/HIST_SUB of its lower
 * bound wide and its midpoint is within 1/(2*HIST_SUB) of any value in it. */
#define HIST_SUB_BITS 4
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_MAX_EXP 39 /* highest power of two: CURVE_LATENCY_MAX_US < 2^40 */
#define HIST_BUCKETS (HIST_SUB + (HIST_MAX_EXP - HIST_SUB_BITS + 1) * HIST_SUB)

CURVE_STATIC_ASSERT(CURVE_LATENCY_MAX_US < (UINT64_C(1) << (HIST_MAX_EXP + 1)),
                    "histogram must cover CURVE_LATENCY_MAX_US");
CURVE_STATIC_ASSERT((CURVE_COUNTER_STRIPES & (CURVE_COUNTER_STRIPES - 1)) == 0,
                    "stripes must be a power of two");

/* ---- objects ---- */

typedef struct metric metric;
typedef struct family family;

struct family {
    family *next;     /* registry list, sorted by name */
    metric *head;     /* metrics in registration order */
    metric **tail;
    size_t nmetrics;
    curve_metric_kind kind;
    char *name;
    char *help;
};

/* Common header of every handle (first member of each kind's struct). */
struct metric {
    metric *next;      /* family list */
    family *fam;
    curve_metrics *reg;
    size_t nlabels;
    char *keys[CURVE_METRIC_LABELS_MAX];
    char *values[CURVE_METRIC_LABELS_MAX];
};

struct curve_metrics {
    pthread_mutex_t mu; /* protects families and every family's metric list */
    family *families;
    size_t nmetrics;
};

typedef struct counter_stripe {
    _Alignas(CACHE_LINE) _Atomic uint64_t v;
} counter_stripe;

struct curve_counter {
    metric m;
    curve_gauge_cb cb; /* callback counter: value = cb(ctx), stripes unused */
    void *ctx;
    counter_stripe stripes[CURVE_COUNTER_STRIPES];
};

struct curve_gauge {
    metric m;
    _Atomic int64_t v;
    curve_gauge_cb cb;
    void *ctx;
};

/* Shared machinery of the windowed kinds. */
typedef struct window {
    const curve_clock *clock;
    unsigned nslots;      /* == window_s */
    uint64_t created_ns;
    pthread_mutex_t mu;   /* serialises bucket recycling only */
} window;

/* The window count of a slot is the sum of its histogram: one shared atomic less per record. */
typedef struct lat_slot {
    _Atomic uint64_t tag; /* second + 1 this slot holds; 0 = unused */
    _Atomic uint64_t sum;
    _Atomic uint64_t max;
    _Atomic uint32_t hist[HIST_BUCKETS];
} lat_slot;

typedef struct lat_stripe {
    _Alignas(CACHE_LINE) _Atomic uint64_t count; /* cumulative, this stripe's share */
    _Atomic uint64_t sum;
} lat_stripe;

struct curve_latency {
    metric m;
    window w;
    lat_slot *slots; /* w.nslots */
    lat_stripe stripes[CURVE_COUNTER_STRIPES];
};

typedef struct rate_slot {
    _Atomic uint64_t tag;
    _Atomic uint64_t count;
} rate_slot;

struct curve_rate {
    metric m;
    window w;
    rate_slot *slots;
    counter_stripe total[CURVE_COUNTER_STRIPES];
};

/* ---- validation ---- */

static bool is_alpha_(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

bool curve_metric_name_valid(const char *name)
{
    if (name == NULL || name[0] == '\0')
        return false;
    size_t n = strnlen(name, CURVE_METRIC_NAME_MAX + 1);
    if (n > CURVE_METRIC_NAME_MAX)
        return false;
    if (!is_alpha_(name[0]) && name[0] != ':')
        return false;
    for (size_t i = 1; i < n; i++) {
        if (!is_alpha_(name[i]) && !is_digit(name[i]) && name[i] != ':')
            return false;
    }
    return true;
}

bool curve_metric_label_key_valid(const char *key)
{
    if (key == NULL || key[0] == '\0')
        return false;
    size_t n = strnlen(key, CURVE_METRIC_NAME_MAX + 1);
    if (n > CURVE_METRIC_NAME_MAX)
        return false;
    if (!is_alpha_(key[0]) || (key[0] == '_' && key[1] == '_'))
        return false;
    for (size_t i = 1; i < n; i++) {
        if (!is_alpha_(key[i]) && !is_digit(key[i]))
            return false;
    }
    return true;
}

/* Strict UTF-8 (no overlong forms, surrogates or code points above U+10FFFF): the exposition
 * format requires UTF-8 label values and help texts. */
static bool utf8_valid(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    while (*s != 0) {
        unsigned c = *s, n;
        uint32_t cp;
        if (c < 0x80) {
            s++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 1, cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2, cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3, cp = c & 0x07;
        } else {
            return false;
        }
        for (unsigned i = 1; i <= n; i++) {
            if ((s[i] & 0xC0) != 0x80) /* also stops at the NUL */
                return false;
            cp = (cp << 6) | (s[i] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        s += n + 1;
    }
    return true;
}

#define HELP_MAX 1024 /* bytes of a help text */

static bool help_valid(const char *help)
{
    return help != NULL && help[0] != '\0' && strnlen(help, HELP_MAX + 1) <= HELP_MAX &&
           utf8_valid(help);
}

/* Validates `labels` (NULL-terminated key/value pairs) for a metric of `kind`; returns the
 * number of pairs in *n. */
static int labels_check(const char *const *labels, curve_metric_kind kind, size_t *n)
{
    size_t cnt = 0;
    *n = 0;
    if (labels == NULL)
        return 0;
    for (; labels[2 * cnt] != NULL; cnt++) {
        if (cnt >= CURVE_METRIC_LABELS_MAX)
            return -EINVAL;
        const char *k = labels[2 * cnt], *v = labels[2 * cnt + 1];
        if (v == NULL || !curve_metric_label_key_valid(k))
            return -EINVAL;
        if (strnlen(v, CURVE_METRIC_LABEL_VALUE_MAX + 1) > CURVE_METRIC_LABEL_VALUE_MAX ||
            !utf8_valid(v))
            return -EINVAL;
        if (kind == CURVE_METRIC_LATENCY && strcmp(k, "quantile") == 0)
            return -EINVAL;
        for (size_t j = 0; j < cnt; j++) {
            if (strcmp(labels[2 * j], k) == 0)
                return -EINVAL;
        }
    }
    *n = cnt;
    return 0;
}

/* Same label set (as a set: order does not matter)? */
static bool labels_equal(const metric *m, const char *const *labels, size_t n)
{
    if (m->nlabels != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t j = 0; j < m->nlabels && !found; j++) {
            found = strcmp(m->keys[j], labels[2 * i]) == 0 &&
                    strcmp(m->values[j], labels[2 * i + 1]) == 0;
        }
        if (!found)
            return false;
    }
    return true;
}

/* ---- registry ---- */

static void registry_init(curve_metrics *reg)
{
    memset(reg, 0, sizeof(*reg));
    CURVE_ASSERT(pthread_mutex_init(&reg->mu, NULL) == 0);
}

int curve_metrics_new(curve_metrics **out)
{
    if (out == NULL)
        return -EINVAL;
    curve_metrics *reg = malloc(sizeof(*reg));
    if (reg == NULL)
        return -ENOMEM;
    registry_init(reg);
    *out = reg;
    return 0;
}

static curve_metrics default_registry;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void default_init(void)
{
    registry_init(&default_registry);
}

curve_metrics *curve_metrics_default(void)
{
    CURVE_ASSERT(pthread_once(&default_once, default_init) == 0);
    return &default_registry;
}

size_t curve_metrics_count(curve_metrics *reg)
{
    pthread_mutex_lock(&reg->mu);
    size_t n = reg->nmetrics;
    pthread_mutex_unlock(&reg->mu);
    return n;
}

static family *family_find(curve_metrics *reg, const char *name)
{
    for (family *f = reg->families; f != NULL; f = f->next) {
        if (strcmp(f->name, name) == 0)
            return f;
    }
    return NULL;
}

/* Does `name` end in `suffix`, and if so is the stem a family of kind `kind`? */
static bool derived_of(curve_metrics *reg, const char *name, const char *suffix,
                       curve_metric_kind kind)
{
    size_t n = strlen(name), s = strlen(suffix);
    if (n <= s || strcmp(name + n - s, suffix) != 0)
        return false;
    char stem[CURVE_METRIC_NAME_MAX + 1];
    memcpy(stem, name, n - s);
    stem[n - s] = '\0';
    family *f = family_find(reg, stem);
    return f != NULL && f->kind == kind;
}

static const char *const latency_suffixes[] = {"_sum", "_count", "_max"};

/* Would a new family `name` of `kind` export a name another family already exports? */
static bool name_collides(curve_metrics *reg, const char *name, curve_metric_kind kind)
{
    for (size_t i = 0; i < CURVE_ARRAY_SIZE(latency_suffixes); i++) {
        if (derived_of(reg, name, latency_suffixes[i], CURVE_METRIC_LATENCY))
            return true;
    }
    if (kind == CURVE_METRIC_LATENCY) {
        char buf[CURVE_METRIC_NAME_MAX + 16];
        for (size_t i = 0; i < CURVE_ARRAY_SIZE(latency_suffixes); i++) {
            snprintf(buf, sizeof(buf), "%s%s", name, latency_suffixes[i]);
            if (family_find(reg, buf) != NULL)
                return true;
        }
    }
    return false;
}

static void family_free(family *f)
{
    free(f->name);
    free(f->help);
    free(f);
}

static void metric_free_labels(metric *m)
{
    for (size_t i = 0; i < m->nlabels; i++) {
        free(m->keys[i]);
        free(m->values[i]);
    }
}

/* Validates and links `m` (already allocated, labels not yet set) into the registry. */
static int metric_register(curve_metrics *reg, metric *m, const char *name, const char *help,
                           const char *const *labels, curve_metric_kind kind)
{
    size_t n;
    int rc;

    if (reg == NULL || !curve_metric_name_valid(name) || !help_valid(help))
        return -EINVAL;
    if (kind == CURVE_METRIC_LATENCY && strlen(name) + strlen("_count") > CURVE_METRIC_NAME_MAX)
        return -EINVAL;
    rc = labels_check(labels, kind, &n);
    if (rc != 0)
        return rc;

    m->reg = reg;
    m->nlabels = 0;
    for (size_t i = 0; i < n; i++) {
        m->keys[i] = strdup(labels[2 * i]);
        m->values[i] = strdup(labels[2 * i + 1]);
        m->nlabels = i + 1;
        if (m->keys[i] == NULL || m->values[i] == NULL) {
            rc = -ENOMEM;
            goto err_after_labels;
        }
    }

    pthread_mutex_lock(&reg->mu);
    family *f = family_find(reg, name);
    if (f != NULL) {
        if (f->kind != kind) {
            rc = -EEXIST;
            goto err_after_lock;
        }
        for (metric *o = f->head; o != NULL; o = o->next) {
            if (labels_equal(o, labels, n)) {
                rc = -EEXIST;
                goto err_after_lock;
            }
        }
    } else {
        if (name_collides(reg, name, kind)) {
            rc = -EEXIST;
            goto err_after_lock;
        }
        f = calloc(1, sizeof(*f));
        if (f == NULL) {
            rc = -ENOMEM;
            goto err_after_lock;
        }
        f->name = strdup(name);
        f->help = strdup(help);
        if (f->name == NULL || f->help == NULL) {
            family_free(f);
            rc = -ENOMEM;
            goto err_after_lock;
        }
        f->kind = kind;
        f->tail = &f->head;
        family **pp = &reg->families;
        while (*pp != NULL && strcmp((*pp)->name, name) < 0)
            pp = &(*pp)->next;
        f->next = *pp;
        *pp = f;
    }
    m->fam = f;
    m->next = NULL;
    *f->tail = m;
    f->tail = &m->next;
    f->nmetrics++;
    reg->nmetrics++;
    pthread_mutex_unlock(&reg->mu);
    return 0;

err_after_lock:
    pthread_mutex_unlock(&reg->mu);
err_after_labels:
    metric_free_labels(m);
    return rc;
}

/* Unlinks `m` (mutex held); frees its family when it was the last metric. */
static void metric_unlink(metric *m)
{
    curve_metrics *reg = m->reg;
    family *f = m->fam;
    metric **pp = &f->head;
    while (*pp != m) {
        CURVE_ASSERT(*pp != NULL);
        pp = &(*pp)->next;
    }
    *pp = m->next;
    if (f->tail == &m->next)
        f->tail = pp;
    CURVE_ASSERT(f->nmetrics > 0 && reg->nmetrics > 0);
    f->nmetrics--;
    reg->nmetrics--;
    if (f->nmetrics == 0) {
        CURVE_ASSERT(f->head == NULL);
        family **fp = &reg->families;
        while (*fp != f)
            fp = &(*fp)->next;
        *fp = f->next;
        family_free(f);
    }
}

static void window_destroy(window *w)
{
    pthread_mutex_destroy(&w->mu);
}

static void counter_destroy(curve_counter *c)
{
    metric_free_labels(&c->m);
    free(c);
}

static void gauge_destroy(curve_gauge *g)
{
    metric_free_labels(&g->m);
    free(g);
}

static void latency_destroy(curve_latency *l)
{
    metric_free_labels(&l->m);
    window_destroy(&l->w);
    free(l->slots);
    free(l);
}

static void rate_destroy(curve_rate *r)
{
    metric_free_labels(&r->m);
    window_destroy(&r->w);
    free(r->slots);
    free(r);
}

static void metric_destroy_any(metric *m, curve_metric_kind kind)
{
    switch (kind) {
    case CURVE_METRIC_COUNTER:
        counter_destroy((curve_counter *)m);
        break;
    case CURVE_METRIC_GAUGE:
        gauge_destroy((curve_gauge *)m);
        break;
    case CURVE_METRIC_LATENCY:
        latency_destroy((curve_latency *)m);
        break;
    case CURVE_METRIC_RATE:
        rate_destroy((curve_rate *)m);
        break;
    }
}

void curve_metrics_free(curve_metrics *reg)
{
    if (reg == NULL)
        return;
    CURVE_ASSERT(reg != &default_registry);
    family *f = reg->families;
    while (f != NULL) {
        family *fnext = f->next;
        metric *m = f->head;
        while (m != NULL) {
            metric *mnext = m->next;
            metric_destroy_any(m, f->kind);
            m = mnext;
        }
        family_free(f);
        f = fnext;
    }
    pthread_mutex_destroy(&reg->mu);
    free(reg);
}

static void metric_unregister(metric *m)
{
    curve_metrics *reg = m->reg;
    pthread_mutex_lock(&reg->mu);
    curve_metric_kind kind = m->fam->kind;
    metric_unlink(m);
    pthread_mutex_unlock(&reg->mu);
    metric_destroy_any(m, kind);
}

/* ---- counter ---- */

static _Atomic unsigned next_stripe;
static _Thread_local unsigned my_stripe = UINT32_MAX;

static unsigned stripe_index(void)
{
    if (my_stripe == UINT32_MAX)
        my_stripe = atomic_fetch_add_explicit(&next_stripe, 1, memory_order_relaxed);
    return my_stripe & (CURVE_COUNTER_STRIPES - 1);
}

static int counter_new(curve_metrics *reg, const char *name, const char *help,
                       const char *const *labels, curve_gauge_cb cb, void *ctx,
                       curve_counter **out)
{
    if (out == NULL)
        return -EINVAL;
    curve_counter *c = aligned_alloc(CACHE_LINE, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < CURVE_COUNTER_STRIPES; i++)
        atomic_init(&c->stripes[i].v, 0);
    c->cb = cb;
    c->ctx = ctx;
    int rc = metric_register(reg, &c->m, name, help, labels, CURVE_METRIC_COUNTER);
    if (rc != 0) {
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int curve_metrics_counter(curve_metrics *reg, const char *name, const char *help,
                          const char *const *labels, curve_counter **out)
{
    return counter_new(reg, name, help, labels, NULL, NULL, out);
}

int curve_metrics_counter_fn(curve_metrics *reg, const char *name, const char *help,
                             const char *const *labels, curve_gauge_cb cb, void *ctx,
                             curve_counter **out)
{
    if (cb == NULL)
        return -EINVAL;
    return counter_new(reg, name, help, labels, cb, ctx, out);
}

/* Callback counter value, clamped to [0, 2^64) (the callback is the caller's code). */
static double counter_fn_value(const curve_counter *c)
{
    double d = c->cb(c->ctx);
    if (!(d >= 0)) /* also NaN */
        return 0;
    return d < 18446744073709551616.0 ? d : 18446744073709549568.0;
}

void curve_counter_add(curve_counter *c, uint64_t n)
{
    CURVE_ASSERT(c->cb == NULL);
    atomic_fetch_add_explicit(&c->stripes[stripe_index()].v, n, memory_order_relaxed);
}

uint64_t curve_counter_get(const curve_counter *c)
{
    if (c->cb != NULL)
        return (uint64_t)counter_fn_value(c);
    uint64_t sum = 0;
    for (size_t i = 0; i < CURVE_COUNTER_STRIPES; i++)
        sum += atomic_load_explicit(&c->stripes[i].v, memory_order_relaxed);
    return sum;
}

void curve_counter_unregister(curve_counter *c)
{
    if (c != NULL)
        metric_unregister(&c->m);
}

/* ---- gauge ---- */

static int gauge_new(curve_metrics *reg, const char *name, const char *help,
                     const char *const *labels, curve_gauge_cb cb, void *ctx, curve_gauge **out)
{
    if (out == NULL)
        return -EINVAL;
    curve_gauge *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return -ENOMEM;
    atomic_init(&g->v, 0);
    g->cb = cb;
    g->ctx = ctx;
    int rc = metric_register(reg, &g->m, name, help, labels, CURVE_METRIC_GAUGE);
    if (rc != 0) {
        free(g);
        return rc;
    }
    *out = g;
    return 0;
}

int curve_metrics_gauge(curve_metrics *reg, const char *name, const char *help,
                        const char *const *labels, curve_gauge **out)
{
    return gauge_new(reg, name, help, labels, NULL, NULL, out);
}

int curve_metrics_gauge_fn(curve_metrics *reg, const char *name, const char *help,
                           const char *const *labels, curve_gauge_cb cb, void *ctx,
                           curve_gauge **out)
{
    if (cb == NULL)
        return -EINVAL;
    return gauge_new(reg, name, help, labels, cb, ctx, out);
}

void curve_gauge_set(curve_gauge *g, int64_t v)
{
    CURVE_ASSERT(g->cb == NULL);
    atomic_store_explicit(&g->v, v, memory_order_relaxed);
}

void curve_gauge_add(curve_gauge *g, int64_t delta)
{
    CURVE_ASSERT(g->cb == NULL);
    atomic_fetch_add_explicit(&g->v, delta, memory_order_relaxed);
}

double curve_gauge_get(const curve_gauge *g)
{
    if (g->cb != NULL)
        return g->cb(g->ctx);
    return (double)atomic_load_explicit(&g->v, memory_order_relaxed);
}

void curve_gauge_unregister(curve_gauge *g)
{
    if (g != NULL)
        metric_unregister(&g->m);
}

/* ---- sliding window ---- */

static int window_init(window *w, const curve_clock *clock, unsigned window_s)
{
    if (window_s == 0)
        window_s = CURVE_METRIC_WINDOW_DEFAULT_S;
    if (window_s > CURVE_METRIC_WINDOW_MAX_S)
        return -EINVAL;
    w->clock = clock != NULL ? clock : curve_clock_system();
    w->nslots = window_s;
    w->created_ns = curve_clock_mono_ns(w->clock);
    if (pthread_mutex_init(&w->mu, NULL) != 0)
        return -ENOMEM;
    return 0;
}

/* Tag a slot must carry to be in the window ending in second `now_s`: [lo, now_s + 1]. */
static uint64_t window_low_tag(const window *w, uint64_t now_s)
{
    return now_s + 1 >= w->nslots ? now_s + 1 - (w->nslots - 1) : 1;
}

/* Seconds covered by the window's buckets at `now_ns` (at least 1 ms, from creation on). */
static double window_span_s(const window *w, uint64_t now_ns)
{
    uint64_t now_s = now_ns / NS_PER_S;
    uint64_t start_ns = (window_low_tag(w, now_s) - 1) * NS_PER_S;
    if (start_ns < w->created_ns)
        start_ns = w->created_ns;
    uint64_t span = now_ns > start_ns ? now_ns - start_ns : 0;
    if (span < NS_PER_S / 1000)
        span = NS_PER_S / 1000;
    return (double)span / (double)NS_PER_S;
}

/* ---- latency recorder ---- */

static unsigned hist_index(uint64_t v)
{
    if (v < HIST_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= HIST_SUB_BITS */
    unsigned sub = (unsigned)(v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1);
    unsigned idx = HIST_SUB + (e - HIST_SUB_BITS) * HIST_SUB + sub;
    CURVE_ASSERT(idx < HIST_BUCKETS);
    return idx;
}

/* Midpoint of bucket `idx` (the value reported for a quantile falling into it). */
static uint64_t hist_value(unsigned idx)
{
    if (idx < HIST_SUB)
        return idx;
    unsigned e = (idx - HIST_SUB) / HIST_SUB + HIST_SUB_BITS;
    unsigned sub = (idx - HIST_SUB) % HIST_SUB;
    uint64_t width = UINT64_C(1) << (e - HIST_SUB_BITS);
    uint64_t low = (uint64_t)(HIST_SUB + sub) << (e - HIST_SUB_BITS);
    return low + width / 2;
}

int curve_metrics_latency(curve_metrics *reg, const char *name, const char *help,
                          const char *const *labels, const curve_clock *clock, unsigned window_s,
                          curve_latency **out)
{
    int rc;
    if (out == NULL)
        return -EINVAL;
    curve_latency *l = aligned_alloc(CACHE_LINE, sizeof(*l));
    if (l == NULL)
        return -ENOMEM;
    memset(l, 0, sizeof(*l));
    rc = window_init(&l->w, clock, window_s);
    if (rc != 0)
        goto err_after_alloc;
    l->slots = calloc(l->w.nslots, sizeof(*l->slots));
    if (l->slots == NULL) {
        rc = -ENOMEM;
        goto err_after_window;
    }
    rc = metric_register(reg, &l->m, name, help, labels, CURVE_METRIC_LATENCY);
    if (rc != 0)
        goto err_after_slots;
    *out = l;
    return 0;

err_after_slots:
    free(l->slots);
err_after_window:
    window_destroy(&l->w);
err_after_alloc:
    free(l);
    return rc;
}

/* Makes `s` hold the second tagged `tag` if it holds an older one. If it already holds a newer
 * second (the caller's clock reading is stale) it is left alone and the caller records there
 * anyway: a rare, harmless misattribution. */
static void lat_slot_claim(curve_latency *l, lat_slot *s, uint64_t tag)
{
    pthread_mutex_lock(&l->w.mu);
    if (atomic_load_explicit(&s->tag, memory_order_acquire) < tag) {
        atomic_store_explicit(&s->sum, 0, memory_order_relaxed);
        atomic_store_explicit(&s->max, 0, memory_order_relaxed);
        for (unsigned i = 0; i < HIST_BUCKETS; i++)
            atomic_store_explicit(&s->hist[i], 0, memory_order_relaxed);
        atomic_store_explicit(&s->tag, tag, memory_order_release);
    }
    pthread_mutex_unlock(&l->w.mu);
}

void curve_latency_record(curve_latency *l, uint64_t us)
{
    if (us > CURVE_LATENCY_MAX_US)
        us = CURVE_LATENCY_MAX_US;
    uint64_t now_s = curve_clock_mono_ns(l->w.clock) / NS_PER_S;
    lat_slot *s = &l->slots[now_s % l->w.nslots];
    uint64_t tag = now_s + 1;
    if (atomic_load_explicit(&s->tag, memory_order_acquire) < tag)
        lat_slot_claim(l, s, tag);

    atomic_fetch_add_explicit(&s->sum, us, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->hist[hist_index(us)], 1, memory_order_relaxed);
    uint64_t cur = atomic_load_explicit(&s->max, memory_order_relaxed);
    while (us > cur &&
           !atomic_compare_exchange_weak_explicit(&s->max, &cur, us, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
    lat_stripe *st = &l->stripes[stripe_index()];
    atomic_fetch_add_explicit(&st->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->sum, us, memory_order_relaxed);
}

/* Sums the window's histograms into `hist` (HIST_BUCKETS entries). */
static void latency_merge(const curve_latency *l, uint64_t now_ns, uint64_t *hist,
                          curve_latency_stats *st)
{
    uint64_t now_s = now_ns / NS_PER_S;
    uint64_t lo = window_low_tag(&l->w, now_s), hi = now_s + 1;
    memset(hist, 0, HIST_BUCKETS * sizeof(*hist));
    for (unsigned i = 0; i < l->w.nslots; i++) {
        lat_slot *s = &l->slots[i];
        uint64_t tag = atomic_load_explicit(&s->tag, memory_order_acquire);
        if (tag < lo || tag > hi)
            continue;
        st->win_sum_us += atomic_load_explicit(&s->sum, memory_order_relaxed);
        uint64_t mx = atomic_load_explicit(&s->max, memory_order_relaxed);
        if (mx > st->win_max_us)
            st->win_max_us = mx;
        for (unsigned b = 0; b < HIST_BUCKETS; b++) {
            uint32_t n = atomic_load_explicit(&s->hist[b], memory_order_relaxed);
            hist[b] += n;
            st->win_count += n;
        }
    }
}

/* Quantile from a merged histogram: the bucket holding the ceil(q * total)-th value. The
 * result never exceeds the window's max. */
static uint64_t hist_quantile(const uint64_t *hist, double q, uint64_t max)
{
    uint64_t total = 0;
    for (unsigned b = 0; b < HIST_BUCKETS; b++)
        total += hist[b];
    if (total == 0)
        return 0;
    if (q <= 0)
        q = 1e-9;
    if (q > 1)
        q = 1;
    uint64_t rank = (uint64_t)ceil(q * (double)total);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned b = 0; b < HIST_BUCKETS; b++) {
        seen += hist[b];
        if (seen >= rank) {
            uint64_t v = hist_value(b);
            return v > max && max > 0 ? max : v;
        }
    }
    return max;
}

void curve_latency_get_stats(const curve_latency *l, curve_latency_stats *st)
{
    uint64_t hist[HIST_BUCKETS];
    memset(st, 0, sizeof(*st));
    uint64_t now_ns = curve_clock_mono_ns(l->w.clock);
    for (size_t i = 0; i < CURVE_COUNTER_STRIPES; i++) {
        st->count += atomic_load_explicit(&l->stripes[i].count, memory_order_relaxed);
        st->sum_us += atomic_load_explicit(&l->stripes[i].sum, memory_order_relaxed);
    }
    st->window_s = l->w.nslots;
    latency_merge(l, now_ns, hist, st);
    if (st->win_count == 0)
        return;
    st->win_avg_us = (double)st->win_sum_us / (double)st->win_count;
    st->qps = (double)st->win_count / window_span_s(&l->w, now_ns);
    st->p50_us = hist_quantile(hist, 0.5, st->win_max_us);
    st->p90_us = hist_quantile(hist, 0.9, st->win_max_us);
    st->p99_us = hist_quantile(hist, 0.99, st->win_max_us);
    st->p999_us = hist_quantile(hist, 0.999, st->win_max_us);
}

uint64_t curve_latency_quantile(const curve_latency *l, double q)
{
    uint64_t hist[HIST_BUCKETS];
    curve_latency_stats st;
    memset(&st, 0, sizeof(st));
    latency_merge(l, curve_clock_mono_ns(l->w.clock), hist, &st);
    return hist_quantile(hist, q, st.win_max_us);
}

void curve_latency_unregister(curve_latency *l)
{
    if (l != NULL)
        metric_unregister(&l->m);
}

/* ---- rate ---- */

int curve_metrics_rate(curve_metrics *reg, const char *name, const char *help,
                       const char *const *labels, const curve_clock *clock, unsigned window_s,
                       curve_rate **out)
{
    int rc;
    if (out == NULL)
        return -EINVAL;
    curve_rate *r = aligned_alloc(CACHE_LINE, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    memset(r, 0, sizeof(*r));
    rc = window_init(&r->w, clock, window_s);
    if (rc != 0)
        goto err_after_alloc;
    r->slots = calloc(r->w.nslots, sizeof(*r->slots));
    if (r->slots == NULL) {
        rc = -ENOMEM;
        goto err_after_window;
    }
    rc = metric_register(reg, &r->m, name, help, labels, CURVE_METRIC_RATE);
    if (rc != 0)
        goto err_after_slots;
    *out = r;
    return 0;

err_after_slots:
    free(r->slots);
err_after_window:
    window_destroy(&r->w);
err_after_alloc:
    free(r);
    return rc;
}

void curve_rate_add(curve_rate *r, uint64_t n)
{
    uint64_t now_s = curve_clock_mono_ns(r->w.clock) / NS_PER_S;
    rate_slot *s = &r->slots[now_s % r->w.nslots];
    uint64_t tag = now_s + 1;
    if (atomic_load_explicit(&s->tag, memory_order_acquire) < tag) {
        pthread_mutex_lock(&r->w.mu);
        if (atomic_load_explicit(&s->tag, memory_order_acquire) < tag) {
            atomic_store_explicit(&s->count, 0, memory_order_relaxed);
            atomic_store_explicit(&s->tag, tag, memory_order_release);
        }
        pthread_mutex_unlock(&r->w.mu);
    }
    atomic_fetch_add_explicit(&s->count, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->total[stripe_index()].v, n, memory_order_relaxed);
}

void curve_rate_get_stats(const curve_rate *r, curve_rate_stats *st)
{
    memset(st, 0, sizeof(*st));
    uint64_t now_ns = curve_clock_mono_ns(r->w.clock);
    uint64_t now_s = now_ns / NS_PER_S;
    uint64_t lo = window_low_tag(&r->w, now_s), hi = now_s + 1;
    for (size_t i = 0; i < CURVE_COUNTER_STRIPES; i++)
        st->total += atomic_load_explicit(&r->total[i].v, memory_order_relaxed);
    st->window_s = r->w.nslots;
    for (unsigned i = 0; i < r->w.nslots; i++) {
        uint64_t tag = atomic_load_explicit(&r->slots[i].tag, memory_order_acquire);
        if (tag >= lo && tag <= hi)
            st->win_count += atomic_load_explicit(&r->slots[i].count, memory_order_relaxed);
    }
    st->per_second = (double)st->win_count / window_span_s(&r->w, now_ns);
}

void curve_rate_unregister(curve_rate *r)
{
    if (r != NULL)
        metric_unregister(&r->m);
}

/* ---- process metrics (from /proc/self) ---- */

typedef enum {
    PROC_CPU,
    PROC_RSS,
    PROC_VSIZE,
    PROC_FDS,
    PROC_MAX_FDS,
    PROC_THREADS,
    PROC_START,
} proc_metric;

#define PROC_STAT_MAX 4096 /* bytes read from /proc/self/stat */

/* Fields 14.. of /proc/self/stat we use (proc(5) numbering). */
typedef struct proc_stat {
    uint64_t utime, stime; /* clock ticks */
    uint64_t threads;      /* field 20 */
    uint64_t starttime;    /* field 22, clock ticks after boot */
    uint64_t vsize;        /* field 23, bytes */
    uint64_t rss;          /* field 24, pages */
} proc_stat;

static int proc_read_stat(proc_stat *ps)
{
    char buf[PROC_STAT_MAX];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -EIO;
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces and parentheses: start after the last ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return -EIO;
    p++;
    memset(ps, 0, sizeof(*ps));
    for (unsigned field = 3; field <= 24; field++) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            return -EIO;
        char *end = p;
        unsigned long long v = strtoull(p, &end, 10);
        switch (field) {
        case 14: ps->utime = v; break;
        case 15: ps->stime = v; break;
        case 20: ps->threads = v; break;
        case 22: ps->starttime = v; break;
        case 23: ps->vsize = v; break;
        case 24: ps->rss = v; break;
        default: break;
        }
        while (*p != ' ' && *p != '\0')
            p++;
    }
    return 0;
}

/* Boot time in seconds since the epoch ("btime" in /proc/stat); read once. */
static uint64_t proc_btime;
static pthread_once_t proc_btime_once = PTHREAD_ONCE_INIT;

static void proc_read_btime(void)
{
    FILE *fp = fopen("/proc/stat", "re");
    char line[256];
    if (fp == NULL)
        return;
    while (fgets(line, sizeof(line), fp) != NULL) {
        unsigned long long v;
        if (sscanf(line, "btime %llu", &v) == 1) {
            proc_btime = v;
            break;
        }
    }
    fclose(fp);
}

static double proc_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return NAN;
    double n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n > 0 ? n - 1 : 0; /* minus the directory's own descriptor */
}

static double proc_value(void *ctx)
{
    proc_metric which = (proc_metric)(uintptr_t)ctx;
    proc_stat ps;
    struct rlimit rl;
    double hz = (double)sysconf(_SC_CLK_TCK);

    switch (which) {
    case PROC_FDS:
        return proc_count_fds();
    case PROC_MAX_FDS:
        if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
            return NAN;
        return rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur;
    default:
        break;
    }
    if (proc_read_stat(&ps) != 0 || hz <= 0)
        return NAN;
    switch (which) {
    case PROC_CPU:
        return (double)(ps.utime + ps.stime) / hz;
    case PROC_RSS:
        return (double)ps.rss * (double)sysconf(_SC_PAGESIZE);
    case PROC_VSIZE:
        return (double)ps.vsize;
    case PROC_THREADS:
        return (double)ps.threads;
    case PROC_START:
        pthread_once(&proc_btime_once, proc_read_btime);
        if (proc_btime == 0)
            return NAN;
        return (double)proc_btime + (double)ps.starttime / hz;
    default:
        return NAN;
    }
}

int curve_metrics_register_process(curve_metrics *reg)
{
    static const struct {
        proc_metric which;
        const char *name;
        const char *help;
    } gauges[] = {
        {PROC_RSS, "process_resident_memory_bytes", "Resident memory size in bytes."},
        {PROC_VSIZE, "process_virtual_memory_bytes", "Virtual memory size in bytes."},
        {PROC_FDS, "process_open_fds", "Number of open file descriptors."},
        {PROC_MAX_FDS, "process_max_fds", "Maximum number of open file descriptors."},
        {PROC_THREADS, "process_threads", "Number of OS threads in the process."},
        {PROC_START, "process_start_time_seconds",
         "Start time of the process since unix epoch in seconds."},
    };
    curve_gauge *g[CURVE_ARRAY_SIZE(gauges)] = {0};
    curve_counter *cpu = NULL;
    size_t done = 0;
    int rc;

    if (reg == NULL)
        return -EINVAL;
    rc = curve_metrics_counter_fn(reg, "process_cpu_seconds_total",
                                  "Total user and system CPU time spent in seconds.", NULL,
                                  proc_value, (void *)(uintptr_t)PROC_CPU, &cpu);
    if (rc != 0)
        return rc;
    for (; done < CURVE_ARRAY_SIZE(gauges); done++) {
        rc = curve_metrics_gauge_fn(reg, gauges[done].name, gauges[done].help, NULL, proc_value,
                                    (void *)(uintptr_t)gauges[done].which, &g[done]);
        if (rc != 0)
            goto err_after_some;
    }
    return 0;

err_after_some:
    while (done > 0)
        curve_gauge_unregister(g[--done]);
    curve_counter_unregister(cpu);
    return rc;
}

/* ---- visiting ---- */

static void metric_view(const family *f, const metric *m, curve_metric_view *v)
{
    memset(v, 0, sizeof(*v));
    v->name = f->name;
    v->help = f->help;
    v->kind = f->kind;
    v->nlabels = m->nlabels;
    v->label_keys = (const char *const *)m->keys;
    v->label_values = (const char *const *)m->values;
    switch (f->kind) {
    case CURVE_METRIC_COUNTER: {
        const curve_counter *c = (const curve_counter *)m;
        v->callback = c->cb != NULL;
        if (v->callback)
            v->v.gauge = counter_fn_value(c);
        else
            v->v.counter = curve_counter_get(c);
        break;
    }
    case CURVE_METRIC_GAUGE:
        v->callback = ((const curve_gauge *)m)->cb != NULL;
        v->v.gauge = curve_gauge_get((const curve_gauge *)m);
        break;
    case CURVE_METRIC_LATENCY:
        curve_latency_get_stats((const curve_latency *)m, &v->v.latency);
        break;
    case CURVE_METRIC_RATE:
        curve_rate_get_stats((const curve_rate *)m, &v->v.rate);
        break;
    }
}

int curve_metrics_foreach(curve_metrics *reg, int (*cb)(const curve_metric_view *m, void *ctx),
                          void *ctx)
{
    int rc = 0;
    curve_metric_view v;
    pthread_mutex_lock(&reg->mu);
    for (family *f = reg->families; f != NULL && rc == 0; f = f->next) {
        for (metric *m = f->head; m != NULL && rc == 0; m = m->next) {
            metric_view(f, m, &v);
            rc = cb(&v, ctx);
        }
    }
    pthread_mutex_unlock(&reg->mu);
    return rc;
}

/* ---- Prometheus text format 0.0.4 ---- */

/* HELP text escapes backslash and newline; label values also escape the double quote. */
static void put_escaped(FILE *fp, const char *s, bool quote)
{
    for (; *s != '\0'; s++) {
        switch (*s) {
        case '\\':
            fputs("\\\\", fp);
            break;
        case '\n':
            fputs("\\n", fp);
            break;
        case '"':
            fputs(quote ? "\\\"" : "\"", fp);
            break;
        default:
            fputc(*s, fp);
        }
    }
}

/* `{k="v",...[,extra_k="extra_v"]}` or nothing when there are no labels at all. */
static void put_labels(FILE *fp, const metric *m, const char *extra_k, const char *extra_v)
{
    if (m->nlabels == 0 && extra_k == NULL)
        return;
    fputc('{', fp);
    for (size_t i = 0; i < m->nlabels; i++) {
        fprintf(fp, "%s%s=\"", i > 0 ? "," : "", m->keys[i]);
        put_escaped(fp, m->values[i], true);
        fputc('"', fp);
    }
    if (extra_k != NULL)
        fprintf(fp, "%s%s=\"%s\"", m->nlabels > 0 ? "," : "", extra_k, extra_v);
    fputc('}', fp);
}

static void put_double(FILE *fp, double d)
{
    if (isnan(d))
        fputs("NaN", fp);
    else if (isinf(d))
        fputs(d > 0 ? "+Inf" : "-Inf", fp);
    else
        fprintf(fp, "%.15g", d);
}

static void put_header(FILE *fp, const char *name, const char *suffix, const char *help,
                       const char *type)
{
    fprintf(fp, "# HELP %s%s ", name, suffix);
    put_escaped(fp, help, false);
    fprintf(fp, "\n# TYPE %s%s %s\n", name, suffix, type);
}

static const struct {
    const char *label;
    size_t off;
} quantiles[] = {
    {"0.5", offsetof(curve_latency_stats, p50_us)},
    {"0.9", offsetof(curve_latency_stats, p90_us)},
    {"0.99", offsetof(curve_latency_stats, p99_us)},
    {"0.999", offsetof(curve_latency_stats, p999_us)},
};

/* Prometheus wants base units: recorders count µs, the exposition says seconds. */
static void put_us_as_seconds(FILE *fp, uint64_t us)
{
    fputc(' ', fp);
    put_double(fp, (double)us / 1e6);
    fputc('\n', fp);
}

static void render_latency_family(FILE *fp, const family *f)
{
    curve_latency_stats st;
    char help[HELP_MAX + 64];

    put_header(fp, f->name, "", f->help, "summary");
    for (const metric *m = f->head; m != NULL; m = m->next) {
        curve_latency_get_stats((const curve_latency *)m, &st);
        for (size_t i = 0; i < CURVE_ARRAY_SIZE(quantiles); i++) {
            fputs(f->name, fp);
            put_labels(fp, m, "quantile", quantiles[i].label);
            if (st.win_count == 0) {
                fputs(" NaN\n", fp);
            } else {
                uint64_t q;
                memcpy(&q, (const char *)&st + quantiles[i].off, sizeof(q));
                put_us_as_seconds(fp, q);
            }
        }
        fprintf(fp, "%s_sum", f->name);
        put_labels(fp, m, NULL, NULL);
        put_us_as_seconds(fp, st.sum_us);
        fprintf(fp, "%s_count", f->name);
        put_labels(fp, m, NULL, NULL);
        fprintf(fp, " %llu\n", (unsigned long long)st.count);
    }
    /* The max is a separate gauge family: a summary has no place for it. */
    const metric *first = f->head;
    snprintf(help, sizeof(help), "Maximum of %s over the last %u s", f->name,
             ((const curve_latency *)first)->w.nslots);
    put_header(fp, f->name, "_max", help, "gauge");
    for (const metric *m = f->head; m != NULL; m = m->next) {
        curve_latency_get_stats((const curve_latency *)m, &st);
        fprintf(fp, "%s_max", f->name);
        put_labels(fp, m, NULL, NULL);
        put_us_as_seconds(fp, st.win_max_us);
    }
}

static void render_family(FILE *fp, const family *f)
{
    switch (f->kind) {
    case CURVE_METRIC_COUNTER:
        put_header(fp, f->name, "", f->help, "counter");
        for (const metric *m = f->head; m != NULL; m = m->next) {
            fputs(f->name, fp);
            put_labels(fp, m, NULL, NULL);
            const curve_counter *c = (const curve_counter *)m;
            if (c->cb != NULL) {
                fputc(' ', fp);
                put_double(fp, counter_fn_value(c));
                fputc('\n', fp);
            } else {
                fprintf(fp, " %llu\n", (unsigned long long)curve_counter_get(c));
            }
        }
        break;
    case CURVE_METRIC_GAUGE:
        put_header(fp, f->name, "", f->help, "gauge");
        for (const metric *m = f->head; m != NULL; m = m->next) {
            const curve_gauge *g = (const curve_gauge *)m;
            fputs(f->name, fp);
            put_labels(fp, m, NULL, NULL);
            if (g->cb != NULL) {
                fputc(' ', fp);
                put_double(fp, g->cb(g->ctx));
                fputc('\n', fp);
            } else {
                fprintf(fp, " %lld\n",
                        (long long)atomic_load_explicit(&g->v, memory_order_relaxed));
            }
        }
        break;
    case CURVE_METRIC_LATENCY:
        render_latency_family(fp, f);
        break;
    case CURVE_METRIC_RATE:
        put_header(fp, f->name, "", f->help, "gauge");
        for (const metric *m = f->head; m != NULL; m = m->next) {
            curve_rate_stats st;
            curve_rate_get_stats((const curve_rate *)m, &st);
            fputs(f->name, fp);
            put_labels(fp, m, NULL, NULL);
            fputc(' ', fp);
            put_double(fp, st.per_second);
            fputc('\n', fp);
        }
        break;
    }
}

int curve_metrics_render_prometheus(curve_metrics *reg, char **out, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    if (reg == NULL || out == NULL)
        return -EINVAL;
    FILE *fp = open_memstream(&buf, &n);
    if (fp == NULL)
        return -ENOMEM;
    pthread_mutex_lock(&reg->mu);
    for (const family *f = reg->families; f != NULL; f = f->next)
        render_family(fp, f);
    pthread_mutex_unlock(&reg->mu);
    bool failed = ferror(fp) != 0;
    if (fclose(fp) != 0 || failed) {
        free(buf);
        return -ENOMEM;
    }
    *out = buf;
    if (len != NULL)
        *len = n;
    return 0;
}
