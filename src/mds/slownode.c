/* Slow chunkserver detection: see slownode.h and docs/mds.md "Slow chunkservers". */
#include "mds/slownode.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/assert.h"

const char *mds_slow_sig_name(mds_slow_sig s)
{
    static const char *const names[] = {"write", "apply", "probe", "probe_mean", "loss"};
    return (unsigned)s < CURVE_ARRAY_SIZE(names) ? names[s] : "?";
}

void mds_slow_cfg_default(mds_slow_cfg *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->enabled = true;
    cfg->factor_pct = 300;
    cfg->floor_us[MDS_SLOW_SIG_WRITE] = 50 * 1000;
    cfg->floor_us[MDS_SLOW_SIG_APPLY] = 10 * 1000;
    cfg->floor_us[MDS_SLOW_SIG_PROBE] = 15 * 1000;
    cfg->floor_us[MDS_SLOW_SIG_PROBE_MEAN] = 40 * 1000;
    cfg->floor_us[MDS_SLOW_SIG_LOSS] = 20; /* per mille */
    cfg->min_samples[MDS_SLOW_SIG_WRITE] = 20;
    cfg->min_samples[MDS_SLOW_SIG_APPLY] = 20;
    cfg->min_samples[MDS_SLOW_SIG_PROBE] = 10;
    cfg->min_samples[MDS_SLOW_SIG_PROBE_MEAN] = 20;
    cfg->min_samples[MDS_SLOW_SIG_LOSS] = 20; /* data segments */
    cfg->enter_count = 2;
    cfg->write_enter_count = 5;
    cfg->loss_enter_count = 1;
    cfg->hold_ms = 20 * 1000;
    cfg->stale_ms = 5 * 1000;
}

const curve_cfg_def mds_slow_cfg_defs[] = {
    {"mds.slow.enabled", CURVE_CFG_BOOL, "true", 0, 0,
     "detect slow chunkservers and move copyset leaders off them"},
    {"mds.slow.factor_pct", CURVE_CFG_INT, "300", 101, 100000,
     "a chunkserver is slow above this % of the cluster median of a latency signal"},
    {"mds.slow.write_floor_ms", CURVE_CFG_DURATION_MS, "50ms", 1, 60000,
     "mean chunk write service time below this is never slow"},
    {"mds.slow.apply_floor_ms", CURVE_CFG_DURATION_MS, "10ms", 1, 60000,
     "mean apply time per entry below this is never slow"},
    {"mds.slow.probe_floor_ms", CURVE_CFG_DURATION_MS, "15ms", 1, 60000,
     "median probe round trip below this is never slow"},
    {"mds.slow.probe_mean_floor_ms", CURVE_CFG_DURATION_MS, "40ms", 1, 60000,
     "mean probe round trip below this is never slow"},
    {"mds.slow.loss_floor_permille", CURVE_CFG_INT, "20", 1, 1000,
     "share of TCP segments to a chunkserver retransmitted (median over its peers, per mille) "
     "at or below which it is never slow"},
    {"mds.slow.enter_count", CURVE_CFG_INT, "2", 1, 1000,
     "consecutive slow evaluations (scheduler ticks) before a chunkserver is marked slow"},
    {"mds.slow.loss_enter_count", CURVE_CFG_INT, "1", 1, 1000,
     "consecutive evaluations the loss signal (retransmissions) must be slow to mark"},
    {"mds.slow.write_enter_count", CURVE_CFG_INT, "5", 1, 1000,
     "consecutive evaluations the leader write time must be slow to mark"},
    {"mds.slow.hold_ms", CURVE_CFG_DURATION_MS, "20s", 0, 24ll * 3600 * 1000,
     "a slow chunkserver is unmarked after being healthy this long"},
    {"mds.slow.stale_ms", CURVE_CFG_DURATION_MS, "5s", 100, 3600 * 1000,
     "health reports older than this are ignored"},
};
const size_t mds_slow_cfg_ndefs = CURVE_ARRAY_SIZE(mds_slow_cfg_defs);

void mds_slow_cfg_from_config(const curve_config *c, mds_slow_cfg *out)
{
    mds_slow_cfg_default(out);
    out->enabled = curve_config_bool(c, "mds.slow.enabled");
    out->factor_pct = (uint32_t)curve_config_int(c, "mds.slow.factor_pct");
    out->floor_us[MDS_SLOW_SIG_WRITE] =
        (uint32_t)curve_config_duration_ms(c, "mds.slow.write_floor_ms") * 1000;
    out->floor_us[MDS_SLOW_SIG_APPLY] =
        (uint32_t)curve_config_duration_ms(c, "mds.slow.apply_floor_ms") * 1000;
    out->floor_us[MDS_SLOW_SIG_PROBE] =
        (uint32_t)curve_config_duration_ms(c, "mds.slow.probe_floor_ms") * 1000;
    out->floor_us[MDS_SLOW_SIG_PROBE_MEAN] =
        (uint32_t)curve_config_duration_ms(c, "mds.slow.probe_mean_floor_ms") * 1000;
    out->floor_us[MDS_SLOW_SIG_LOSS] = (uint32_t)curve_config_int(c, "mds.slow.loss_floor_permille");
    out->enter_count = (uint32_t)curve_config_int(c, "mds.slow.enter_count");
    out->write_enter_count = (uint32_t)curve_config_int(c, "mds.slow.write_enter_count");
    out->loss_enter_count = (uint32_t)curve_config_int(c, "mds.slow.loss_enter_count");
    out->hold_ms = (uint64_t)curve_config_duration_ms(c, "mds.slow.hold_ms");
    out->stale_ms = (uint64_t)curve_config_duration_ms(c, "mds.slow.stale_ms");
}

void mds_slow_init(mds_slow_tracker *s, const mds_slow_cfg *cfg)
{
    memset(s, 0, sizeof(*s));
    if (cfg != NULL)
        s->cfg = *cfg;
    else
        mds_slow_cfg_default(&s->cfg);
}

void mds_slow_destroy(mds_slow_tracker *s)
{
    free(s->v);
    memset(s, 0, sizeof(*s));
}

void mds_slow_reset(mds_slow_tracker *s)
{
    s->n = 0;
}

static long find_index(const mds_slow_tracker *s, uint32_t cs_id, size_t *pos)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->v[mid].cs_id < cs_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (pos != NULL)
        *pos = lo;
    return lo < s->n && s->v[lo].cs_id == cs_id ? (long)lo : -1;
}

const mds_slow_cs *mds_slow_get(const mds_slow_tracker *s, uint32_t cs_id)
{
    long i = find_index(s, cs_id, NULL);
    return i >= 0 ? &s->v[i] : NULL;
}

bool mds_slow_is_marked(const mds_slow_tracker *s, uint32_t cs_id)
{
    const mds_slow_cs *e = mds_slow_get(s, cs_id);
    return e != NULL && e->marked;
}

bool mds_slow_marked_cb(void *ctx, uint32_t cs_id)
{
    return mds_slow_is_marked(ctx, cs_id);
}

bool mds_slow_suspect_cb(void *ctx, uint32_t cs_id)
{
    const mds_slow_cs *e = mds_slow_get(ctx, cs_id);
    return e != NULL && (e->marked || e->streak > 0 || e->rep.disk_slow);
}

size_t mds_slow_count(const mds_slow_tracker *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        n += s->v[i].marked;
    return n;
}

static mds_slow_cs *get_or_add(mds_slow_tracker *s, uint32_t cs_id)
{
    size_t pos;
    long i = find_index(s, cs_id, &pos);
    if (i >= 0)
        return &s->v[i];
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 16;
        mds_slow_cs *nv = realloc(s->v, ncap * sizeof(*nv));
        if (nv == NULL)
            return NULL;
        s->v = nv;
        s->cap = ncap;
    }
    memmove(&s->v[pos + 1], &s->v[pos], (s->n - pos) * sizeof(*s->v));
    s->n++;
    mds_slow_cs *e = &s->v[pos];
    memset(e, 0, sizeof(*e));
    e->cs_id = cs_id;
    e->slow_sig = -1;
    return e;
}

/* A report that may be compared: recent, from a chunkserver that is online. */
static bool fresh(const mds_slow_tracker *s, const mds_topology *t, const mds_slow_cs *e,
                  uint64_t now_ms)
{
    if (e->report_ms == 0 || now_ms > e->report_ms + s->cfg.stale_ms)
        return false;
    const mds_chunkserver *cs = mds_topo_cs(t, e->cs_id);
    return cs != NULL && cs->state == MDS_CS_ONLINE;
}

/* Online or unstable: alive, may lead copysets. */
static bool live(const mds_topology *t, uint32_t cs_id)
{
    const mds_chunkserver *cs = mds_topo_cs(t, cs_id);
    return cs != NULL && (cs->state == MDS_CS_ONLINE || cs->state == MDS_CS_UNSTABLE);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Lower median of v[0..n) (sorts v); n > 0. The lower one, so that with two values the
 * healthier wins. */
static uint32_t lower_median(uint32_t *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_u32);
    return v[(n - 1) / 2];
}

/* Probe signal of chunkserver `target`: lower median over the fresh reporters (other than
 * target) of their mean round trip to it. False when nobody measured it. */
static bool probe_value(const mds_slow_tracker *s, const mds_topology *t, uint32_t target,
                        mds_slow_sig sig, uint64_t now_ms, uint32_t *tmp, uint32_t *out)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++) {
        const mds_slow_cs *r = &s->v[i];
        if (r->cs_id == target || !fresh(s, t, r, now_ms))
            continue;
        for (size_t k = 0; k < r->rep.nprobes; k++) {
            const mds_slow_probe *p = &r->rep.probes[k];
            if (p->target != target)
                continue;
            if (sig == MDS_SLOW_SIG_LOSS) {
                if (p->segs >= s->cfg.min_samples[sig])
                    tmp[n++] = (uint32_t)((uint64_t)p->retrans * 1000 / p->segs);
            } else if (p->samples >= s->cfg.min_samples[sig]) {
                tmp[n++] = sig == MDS_SLOW_SIG_PROBE ? p->p50_us : p->mean_us;
            }
            break;
        }
    }
    if (n == 0)
        return false;
    *out = lower_median(tmp, n);
    return true;
}

/* Value of signal `sig` for entry e (fresh). */
static bool sig_value(const mds_slow_tracker *s, const mds_topology *t, const mds_slow_cs *e,
                      mds_slow_sig sig, uint64_t now_ms, uint32_t *tmp, uint32_t *out)
{
    switch (sig) {
    case MDS_SLOW_SIG_WRITE:
        *out = e->rep.write_mean_us;
        return e->rep.writes >= s->cfg.min_samples[sig] && e->rep.writes > 0;
    case MDS_SLOW_SIG_APPLY:
        *out = e->rep.apply_mean_us;
        return e->rep.applies >= s->cfg.min_samples[sig] && e->rep.applies > 0;
    case MDS_SLOW_SIG_PROBE:
    case MDS_SLOW_SIG_PROBE_MEAN:
    case MDS_SLOW_SIG_LOSS:
        return probe_value(s, t, e->cs_id, sig, now_ms, tmp, out);
    default:
        return false;
    }
}

/* Evaluations a signal must stay slow to mark: the leader write time is the most exposed to
 * load (chunk creation on the first writes, a node leading hot copysets), so it needs longer. */
static uint32_t need(const mds_slow_tracker *s, int sig)
{
    return sig == MDS_SLOW_SIG_WRITE  ? s->cfg.write_enter_count
           : sig == MDS_SLOW_SIG_LOSS ? s->cfg.loss_enter_count
                                      : s->cfg.enter_count;
}

/* Evaluates entry x: fills its value/median per signal and the per-signal streaks; returns
 * the first slow signal or -1. */
static int evaluate(mds_slow_tracker *s, const mds_topology *t, mds_slow_cs *x, uint64_t now_ms,
                    uint32_t *vals, uint32_t *tmp)
{
    int slow = -1;
    /* while marked, half the thresholds: it must clearly recover before the hold starts */
    uint32_t factor = x->marked ? (s->cfg.factor_pct / 2 > 100 ? s->cfg.factor_pct / 2 : 100)
                                : s->cfg.factor_pct;
    for (int sig = 0; sig < MDS_SLOW_NSIG; sig++) {
        x->value_us[sig] = x->median_us[sig] = 0;
        uint32_t prev = x->sig_streak[sig];
        x->sig_streak[sig] = 0; /* stays 0 unless slow now */
        uint32_t mine;
        bool probe = sig == MDS_SLOW_SIG_PROBE || sig == MDS_SLOW_SIG_PROBE_MEAN ||
                     sig == MDS_SLOW_SIG_LOSS;
        if (!probe && !fresh(s, t, x, now_ms))
            continue; /* its own measurements are too old */
        if (!sig_value(s, t, x, (mds_slow_sig)sig, now_ms, tmp, &mine))
            continue;
        size_t n = 0;
        for (size_t i = 0; i < s->n; i++) {
            const mds_slow_cs *e = &s->v[i];
            uint32_t v;
            if (e == x)
                vals[n++] = mine;
            else if (probe ? live(t, e->cs_id) : fresh(s, t, e, now_ms))
                if (sig_value(s, t, e, (mds_slow_sig)sig, now_ms, tmp, &v))
                    vals[n++] = v;
        }
        CURVE_ASSERT(n >= 1);
        uint32_t median = lower_median(vals, n);
        x->value_us[sig] = mine;
        x->median_us[sig] = median;
        uint32_t floor = x->marked ? s->cfg.floor_us[sig] / 2 : s->cfg.floor_us[sig];
        if (mine > floor && (uint64_t)mine * 100 > (uint64_t)median * factor) {
            x->sig_streak[sig] = prev < UINT32_MAX ? prev + 1 : prev;
            if (slow < 0)
                slow = sig;
        }
    }
    return slow;
}

int mds_slow_report_add(mds_slow_tracker *s, const mds_slow_report *r, uint64_t now_ms)
{
    if (!s->cfg.enabled)
        return 0;
    mds_slow_cs *x = get_or_add(s, r->cs_id);
    if (x == NULL)
        return -ENOMEM;
    x->rep = *r;
    if (x->rep.nprobes > MDS_SLOW_MAX_PROBES)
        x->rep.nprobes = MDS_SLOW_MAX_PROBES;
    x->report_ms = now_ms ? now_ms : 1;
    return 0;
}

/* Applies one evaluation's verdict `slow` (signal or -1) to x; returns 1 when its mark
 * changed (*ch filled). */
static int verdict(mds_slow_tracker *s, mds_slow_cs *x, int slow, size_t nlive, size_t *nmarked,
                   uint64_t now_ms, mds_slow_change *ch)
{
    x->slow_sig = slow;
    if (slow >= 0) {
        x->last_slow_ms = now_ms;
        if (x->streak < UINT32_MAX)
            x->streak++;
        int ready = -1; /* a signal slow for long enough */
        for (int sig = 0; sig < MDS_SLOW_NSIG && ready < 0; sig++)
            if (x->sig_streak[sig] >= need(s, sig))
                ready = sig;
        /* never more than half of the cluster: then the "median" itself is what is slow */
        if (!x->marked && ready >= 0 && 2 * (*nmarked + 1) <= nlive) {
            slow = ready;
            x->marked = true;
            x->marked_ms = now_ms;
            s->marks++;
            (*nmarked)++;
            *ch = (mds_slow_change){.cs_id = x->cs_id, .marked = true, .sig = (mds_slow_sig)slow,
                                    .value_us = x->value_us[slow],
                                    .median_us = x->median_us[slow]};
            return 1;
        }
        return 0;
    }
    x->streak = 0;
    if (x->marked && now_ms >= x->last_slow_ms + s->cfg.hold_ms) {
        x->marked = false;
        s->unmarks++;
        (*nmarked)--;
        *ch = (mds_slow_change){.cs_id = x->cs_id, .marked = false};
        return 1;
    }
    return 0;
}

size_t mds_slow_evaluate(mds_slow_tracker *s, const mds_topology *t, uint64_t now_ms,
                         mds_slow_change *out, size_t max)
{
    if (!s->cfg.enabled)
        return 0;
    /* every live chunkserver somebody probes gets an entry (it may not report itself: a
     * node whose threads are stalled may miss its heartbeats while others still see it) */
    for (size_t i = 0; i < t->css.n; i++) {
        const mds_chunkserver *cs = &t->css.v[i];
        if ((cs->state == MDS_CS_ONLINE || cs->state == MDS_CS_UNSTABLE) &&
            mds_slow_get(s, cs->id) == NULL && get_or_add(s, cs->id) == NULL)
            return 0; /* out of memory: no verdict this time */
    }
    uint32_t *vals = malloc((s->n + 1) * sizeof(uint32_t));
    uint32_t *tmp = malloc((s->n + 1) * sizeof(uint32_t));
    if (vals == NULL || tmp == NULL) {
        free(vals);
        free(tmp);
        return 0;
    }
    size_t nlive = 0, nmarked = 0, nch = 0;
    for (size_t i = 0; i < s->n; i++) {
        nlive += live(t, s->v[i].cs_id);
        nmarked += s->v[i].marked;
    }
    for (size_t i = 0; i < s->n; i++) {
        mds_slow_cs *x = &s->v[i];
        if (!live(t, x->cs_id)) {
            x->streak = 0; /* not judged: offline nodes lead nothing, retired ones are gone */
            memset(x->sig_streak, 0, sizeof(x->sig_streak));
            continue;
        }
        int slow = evaluate(s, t, x, now_ms, vals, tmp);
        mds_slow_change ch;
        if (verdict(s, x, slow, nlive, &nmarked, now_ms, &ch) == 1) {
            if (nch < max)
                out[nch] = ch;
            nch++;
        }
    }
    free(vals);
    free(tmp);
    return nch;
}
