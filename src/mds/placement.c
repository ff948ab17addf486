/* Copyset placement: see placement.h and docs/mds.md. */
#include "mds/placement.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/assert.h"
#include "curve/errors.h"

long mds_place_cs_index(const mds_topology *t, uint32_t id)
{
    const mds_chunkserver *c = mds_topo_cs(t, id);
    return c ? (long)(c - t->css.v) : -1;
}

void mds_place_copyset_counts(const mds_topology *t, uint32_t *counts)
{
    memset(counts, 0, t->css.n * sizeof(*counts));
    for (size_t i = 0; i < t->copysets.n; i++) {
        const mds_copyset *c = &t->copysets.v[i];
        for (uint32_t k = 0; k < c->npeers; k++) {
            long idx = mds_place_cs_index(t, c->peers[k]);
            if (idx >= 0)
                counts[idx]++;
        }
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Number of distinct values in a sorted array. */
static size_t count_distinct(uint32_t *v, size_t n)
{
    size_t d = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || v[i] != v[i - 1])
            d++;
    return d;
}

bool mds_place_zone_mode(const mds_topology *t, uint32_t ppool_id)
{
    uint32_t zones[MDS_REPLICAS];
    size_t nz = 0;
    for (size_t i = 0; i < t->css.n && nz < MDS_REPLICAS; i++) {
        const mds_chunkserver *c = &t->css.v[i];
        if (c->ppool_id != ppool_id || c->state == MDS_CS_RETIRED)
            continue;
        bool seen = false;
        for (size_t k = 0; k < nz; k++)
            if (zones[k] == c->zone_id)
                seen = true;
        if (!seen)
            zones[nz++] = c->zone_id;
    }
    return nz >= MDS_REPLICAS;
}

/* ---------------------------------------------------------------------------------------- */
/* planning */

typedef struct cand {
    uint32_t domain; /* zone id or server id */
    uint32_t cs_id;
} cand;

static int cmp_cand(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->domain != y->domain)
        return x->domain < y->domain ? -1 : 1;
    return x->cs_id < y->cs_id ? -1 : x->cs_id > y->cs_id;
}

typedef struct plan_ctx {
    cand *c;          /* candidates sorted by (domain, id); never reordered after sorting */
    size_t n;
    uint32_t *perm;   /* candidate indexes, shuffled inside each domain's range every round */
    size_t *dstart;   /* per domain: first candidate */
    size_t *dlen;     /* per domain: number of candidates */
    size_t *dorder;   /* domain visiting order of the current round */
    size_t ndom;
    uint32_t *seq;    /* one round: candidate indexes, round-robin across domains */
    uint8_t *used;    /* per seq position */
    uint32_t *groups; /* count * 3 candidate indexes */
    uint64_t *pairs;  /* count * 6 ordered (a, b) pairs for the scatter width */
    uint32_t *sw;     /* per candidate */
    uint8_t *paired;  /* n x n bitmap "already share a copyset" (NULL above the bound) */
} plan_ctx;

static bool pair_get(const plan_ctx *p, uint32_t a, uint32_t b)
{
    size_t bit = (size_t)a * p->n + b;
    return (p->paired[bit / 8] >> (bit % 8)) & 1;
}

static void pair_set(plan_ctx *p, uint32_t a, uint32_t b)
{
    size_t bit = (size_t)a * p->n + b;
    p->paired[bit / 8] |= (uint8_t)(1u << (bit % 8));
}

/* How many of the members picked so far already share a copyset with candidate `x`. */
static unsigned dup_pairs(const plan_ctx *p, const uint32_t *pick, size_t npick, uint32_t x)
{
    unsigned d = 0;
    for (size_t k = 0; k < npick; k++)
        d += pair_get(p, p->seq[pick[k]], x);
    return d;
}

static bool domain_clash(const plan_ctx *p, const uint32_t *pick, size_t npick, size_t i)
{
    for (size_t k = 0; k < npick; k++)
        if (p->c[p->seq[pick[k]]].domain == p->c[p->seq[i]].domain)
            return true;
    return false;
}

static void shuffle_u32(uint32_t *v, size_t n, mds_rng *rng)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = mds_rng_below(rng, (uint32_t)i);
        uint32_t tmp = v[i - 1];
        v[i - 1] = v[j];
        v[j] = tmp;
    }
}

static void shuffle_size(size_t *v, size_t n, mds_rng *rng)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = mds_rng_below(rng, (uint32_t)i);
        size_t tmp = v[i - 1];
        v[i - 1] = v[j];
        v[j] = tmp;
    }
}

/* One round: shuffle inside each domain, read round-robin across domains into p->seq.
 * Returns the sequence length (always p->n). */
static size_t build_round(plan_ctx *p, mds_rng *rng)
{
    size_t maxlen = 0, n = 0;
    for (size_t d = 0; d < p->ndom; d++) {
        shuffle_u32(p->perm + p->dstart[d], p->dlen[d], rng);
        if (p->dlen[d] > maxlen)
            maxlen = p->dlen[d];
        p->dorder[d] = d;
    }
    shuffle_size(p->dorder, p->ndom, rng);
    for (size_t r = 0; r < maxlen; r++) {
        for (size_t k = 0; k < p->ndom; k++) {
            size_t d = p->dorder[k];
            if (r < p->dlen[d])
                p->seq[n++] = p->perm[p->dstart[d] + r];
        }
    }
    CURVE_ASSERT(n == p->n);
    return n;
}

/* Cuts the round into groups of 3 with distinct domains, appending to p->groups from group
 * `g` up to `count`. Returns the new number of groups. */
static uint32_t cut_round(plan_ctx *p, uint32_t g, uint32_t count)
{
    size_t n = p->n, first = 0;
    memset(p->used, 0, n);
    while (g < count) {
        uint32_t pick[MDS_REPLICAS];
        size_t npick = 0;
        while (first < n && p->used[first])
            first++;
        for (size_t i = first; i < n && npick < MDS_REPLICAS; i++) {
            if (p->used[i] || domain_clash(p, pick, npick, i))
                continue;
            size_t best = i;
            if (npick > 0 && p->paired != NULL) {
                /* Prefer, among the next few members of the same domain, one that shares no
                 * copyset with those picked so far: fewer repeated pairs, higher scatter
                 * width. Same domain only, so the round still cuts into as many groups. */
                uint32_t dom = p->c[p->seq[i]].domain;
                unsigned best_dup = dup_pairs(p, pick, npick, p->seq[i]), seen = 1;
                for (size_t j = i + 1; j < n && best_dup > 0 && seen < MDS_PLACE_LOOKAHEAD;
                     j++) {
                    if (p->used[j] || p->c[p->seq[j]].domain != dom)
                        continue;
                    seen++;
                    unsigned d = dup_pairs(p, pick, npick, p->seq[j]);
                    if (d < best_dup) {
                        best = j;
                        best_dup = d;
                    }
                }
            }
            pick[npick++] = (uint32_t)best;
        }
        if (npick < MDS_REPLICAS)
            break; /* the rest of this round cannot form a group: next round */
        for (size_t k = 0; k < MDS_REPLICAS; k++) {
            p->used[pick[k]] = 1;
            p->groups[(size_t)g * MDS_REPLICAS + k] = p->seq[pick[k]];
            for (size_t m = 0; m < k && p->paired != NULL; m++) {
                pair_set(p, p->seq[pick[k]], p->seq[pick[m]]);
                pair_set(p, p->seq[pick[m]], p->seq[pick[k]]);
            }
        }
        g++;
    }
    return g;
}

/* Scatter width of every candidate for the plan in p->groups; returns mean, sets min/max. */
static double scatter_widths(plan_ctx *p, uint32_t count, uint32_t *mn, uint32_t *mx)
{
    size_t np = 0;
    for (uint32_t g = 0; g < count; g++) {
        const uint32_t *m = &p->groups[(size_t)g * MDS_REPLICAS];
        for (int a = 0; a < MDS_REPLICAS; a++)
            for (int b = 0; b < MDS_REPLICAS; b++)
                if (a != b)
                    p->pairs[np++] = ((uint64_t)m[a] << 32) | m[b];
    }
    qsort(p->pairs, np, sizeof(*p->pairs), cmp_u64);
    memset(p->sw, 0, p->n * sizeof(*p->sw));
    for (size_t i = 0; i < np; i++)
        if (i == 0 || p->pairs[i] != p->pairs[i - 1])
            p->sw[p->pairs[i] >> 32]++;
    uint64_t sum = 0;
    *mn = UINT32_MAX;
    *mx = 0;
    for (size_t i = 0; i < p->n; i++) {
        sum += p->sw[i];
        if (p->sw[i] < *mn)
            *mn = p->sw[i];
        if (p->sw[i] > *mx)
            *mx = p->sw[i];
    }
    return (double)sum / (double)p->n;
}

static void plan_free(plan_ctx *p)
{
    free(p->c);
    free(p->perm);
    free(p->dstart);
    free(p->dlen);
    free(p->dorder);
    free(p->seq);
    free(p->used);
    free(p->groups);
    free(p->pairs);
    free(p->sw);
    free(p->paired);
}

/* Collects the online chunkservers of the physical pool and decides zone vs server domains. */
static int plan_candidates(const mds_topology *t, const mds_lpool *lp, plan_ctx *p,
                           bool *by_zone, char *err, size_t errlen)
{
    p->c = malloc((t->css.n ? t->css.n : 1) * sizeof(*p->c));
    if (p->c == NULL)
        return -ENOMEM;
    uint32_t *zones = malloc((t->css.n ? t->css.n : 1) * sizeof(*zones));
    uint32_t *servers = malloc((t->css.n ? t->css.n : 1) * sizeof(*servers));
    if (zones == NULL || servers == NULL) {
        free(zones);
        free(servers);
        return -ENOMEM;
    }
    for (size_t i = 0; i < t->css.n; i++) {
        const mds_chunkserver *c = &t->css.v[i];
        if (c->ppool_id != lp->ppool_id || c->state != MDS_CS_ONLINE)
            continue;
        zones[p->n] = c->zone_id;
        servers[p->n] = c->server_id;
        p->c[p->n].cs_id = c->id;
        p->n++;
    }
    qsort(zones, p->n, sizeof(*zones), cmp_u32);
    qsort(servers, p->n, sizeof(*servers), cmp_u32);
    size_t nz = count_distinct(zones, p->n), ns = count_distinct(servers, p->n);
    free(zones);
    free(servers);
    if (nz < MDS_REPLICAS && ns < MDS_REPLICAS) {
        mds__errf(err, errlen,
                  "logical pool '%s': physical pool %u has %zu zones and %zu servers with online "
                  "chunkservers; need at least %d zones or %d servers",
                  lp->name, lp->ppool_id, nz, ns, MDS_REPLICAS, MDS_REPLICAS);
        return -ENOSPC;
    }
    *by_zone = nz >= MDS_REPLICAS;
    for (size_t i = 0; i < p->n; i++) {
        const mds_chunkserver *c = mds_topo_cs(t, p->c[i].cs_id);
        p->c[i].domain = *by_zone ? c->zone_id : c->server_id;
    }
    qsort(p->c, p->n, sizeof(*p->c), cmp_cand);
    p->ndom = *by_zone ? nz : ns;
    return 0;
}

static int plan_alloc(plan_ctx *p, uint32_t count)
{
    p->dstart = calloc(p->ndom, sizeof(*p->dstart));
    p->dlen = calloc(p->ndom, sizeof(*p->dlen));
    p->dorder = calloc(p->ndom, sizeof(*p->dorder));
    p->seq = calloc(p->n, sizeof(*p->seq));
    p->used = calloc(p->n, 1);
    p->groups = calloc((size_t)count * MDS_REPLICAS, sizeof(*p->groups));
    p->pairs = calloc((size_t)count * MDS_REPLICAS * (MDS_REPLICAS - 1), sizeof(*p->pairs));
    p->sw = calloc(p->n, sizeof(*p->sw));
    p->perm = calloc(p->n, sizeof(*p->perm));
    if (p->n <= MDS_PLACE_PAIR_TRACK_MAX) {
        p->paired = calloc((p->n * p->n + 7) / 8, 1);
        if (p->paired == NULL)
            return -ENOMEM;
    }
    if (!p->perm || !p->dstart || !p->dlen || !p->dorder || !p->seq || !p->used ||
        !p->groups || !p->pairs || !p->sw)
        return -ENOMEM;
    size_t d = 0;
    for (size_t i = 0; i < p->n; i++) {
        p->perm[i] = (uint32_t)i;
        if (i > 0 && p->c[i].domain != p->c[i - 1].domain)
            d++;
        if (p->dlen[d] == 0)
            p->dstart[d] = i;
        p->dlen[d]++;
    }
    CURVE_ASSERT(d + 1 == p->ndom);
    return 0;
}

int mds_place_copysets(const mds_topology *t, uint32_t lpool_id, uint32_t count, mds_rng *rng,
                       const mds_place_opts *opts, uint32_t **out_peers, mds_place_stats *stats,
                       char *err, size_t errlen)
{
    plan_ctx p;
    bool by_zone = false;
    uint32_t tol = opts && opts->sw_tolerance_pct ? opts->sw_tolerance_pct
                                                  : MDS_PLACE_SW_TOLERANCE_PCT;
    uint32_t max_attempts = opts && opts->max_attempts ? opts->max_attempts
                                                       : MDS_PLACE_MAX_ATTEMPTS;
    mds_place_stats st;
    int rc;

    memset(&p, 0, sizeof(p));
    memset(&st, 0, sizeof(st));
    const mds_lpool *lp = mds_topo_lpool(t, lpool_id);
    if (lp == NULL) {
        mds__errf(err, errlen, "logical pool %u not found", lpool_id);
        return CURVE_ERR_NOT_FOUND;
    }
    if (count == 0 || count > MDS_MAX_COPYSETS_PER_POOL) {
        mds__errf(err, errlen, "logical pool '%s': copyset count %u not in 1..%u", lp->name,
                  count, MDS_MAX_COPYSETS_PER_POOL);
        return -EINVAL;
    }
    rc = plan_candidates(t, lp, &p, &by_zone, err, errlen);
    if (rc != 0)
        goto out;
    rc = plan_alloc(&p, count);
    if (rc != 0)
        goto out;
    st.ncandidates = (uint32_t)p.n;
    st.by_zone = by_zone;
    rc = -EAGAIN;
    for (uint32_t attempt = 1; attempt <= max_attempts; attempt++) {
        uint32_t g = 0;
        st.attempts = attempt;
        if (p.paired != NULL)
            memset(p.paired, 0, (p.n * p.n + 7) / 8);
        while (g < count) {
            build_round(&p, rng);
            uint32_t ng = cut_round(&p, g, count);
            CURVE_ASSERT(ng > g); /* >= 3 domains: every round yields a group */
            g = ng;
        }
        st.sw_mean = scatter_widths(&p, count, &st.sw_min, &st.sw_max);
        double slack = st.sw_mean * tol / 100.0;
        if (slack < MDS_PLACE_SW_MIN_SLACK)
            slack = MDS_PLACE_SW_MIN_SLACK;
        if (st.sw_min + slack >= st.sw_mean && st.sw_max <= st.sw_mean + slack) {
            rc = 0;
            break;
        }
    }
    if (rc != 0) {
        mds__errf(err, errlen,
                  "logical pool '%s': no plan with scatter width within %u%% of the mean after %u "
                  "attempts (last: min %u, max %u, mean %.1f)",
                  lp->name, tol, max_attempts, st.sw_min, st.sw_max, st.sw_mean);
        goto out;
    }
    uint32_t *peers = malloc((size_t)count * MDS_REPLICAS * sizeof(*peers));
    if (peers == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < (size_t)count * MDS_REPLICAS; i++)
        peers[i] = p.c[p.groups[i]].cs_id;
    *out_peers = peers;
out:
    if (rc == -ENOMEM)
        mds__errf(err, errlen, "placement: out of memory");
    if (stats != NULL)
        *stats = st;
    plan_free(&p);
    return rc;
}

int mds_place_create_pool_copysets(mds_topology *t, uint32_t lpool_id, mds_rng *rng,
                                   const mds_place_opts *opts, mds_place_stats *stats, char *err,
                                   size_t errlen)
{
    size_t first;
    uint32_t *peers = NULL;
    mds_lpool *lp = mds_topo_lpool(t, lpool_id);
    if (lp == NULL) {
        mds__errf(err, errlen, "logical pool %u not found", lpool_id);
        return CURVE_ERR_NOT_FOUND;
    }
    if (mds_topo_pool_copysets(t, lpool_id, &first) > 0 || lp->copysets_created) {
        mds__errf(err, errlen, "logical pool '%s' already has copysets", lp->name);
        return -EEXIST;
    }
    int rc = mds_place_copysets(t, lpool_id, lp->copyset_count, rng, opts, &peers, stats, err,
                                errlen);
    if (rc != 0)
        return rc;
    mds_topology work;
    rc = mds_topo_clone(&work, t);
    if (rc != 0)
        goto err_after_plan;
    for (uint32_t i = 0; i < lp->copyset_count; i++) {
        mds_copyset c;
        memset(&c, 0, sizeof(c));
        c.pool_id = lpool_id;
        c.id = i + 1;
        c.npeers = MDS_REPLICAS;
        memcpy(c.peers, &peers[(size_t)i * MDS_REPLICAS], MDS_REPLICAS * sizeof(uint32_t));
        rc = mds_topo_add_copyset(&work, &c, err, errlen);
        if (rc != 0)
            goto err_after_clone;
    }
    mds_topo_lpool(&work, lpool_id)->copysets_created = true;
    mds_topo_destroy(t);
    *t = work;
    free(peers);
    return 0;

err_after_clone:
    mds_topo_destroy(&work);
err_after_plan:
    free(peers);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* replacement */

static bool is_full(const mds_chunkserver *c)
{
    if (c->capacity == 0)
        return false; /* unknown capacity (no heartbeat yet): do not exclude */
    return (double)c->used * 100.0 >= (double)c->capacity * MDS_PLACE_FULL_PCT;
}

int mds_place_scatter_widths(const mds_topology *t, uint32_t *sw)
{
    memset(sw, 0, t->css.n * sizeof(*sw));
    size_t np = 0, cap = 0;
    for (size_t i = 0; i < t->copysets.n; i++)
        cap += (size_t)t->copysets.v[i].npeers * t->copysets.v[i].npeers;
    uint64_t *pairs = malloc((cap ? cap : 1) * sizeof(*pairs));
    if (pairs == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < t->copysets.n; i++) {
        const mds_copyset *c = &t->copysets.v[i];
        for (uint32_t a = 0; a < c->npeers; a++) {
            long ia = mds_place_cs_index(t, c->peers[a]);
            for (uint32_t b = 0; b < c->npeers && ia >= 0; b++)
                if (a != b)
                    pairs[np++] = ((uint64_t)ia << 32) | c->peers[b];
        }
    }
    qsort(pairs, np, sizeof(*pairs), cmp_u64);
    for (size_t i = 0; i < np; i++)
        if (i == 0 || pairs[i] != pairs[i - 1])
            sw[pairs[i] >> 32]++;
    free(pairs);
    return 0;
}

int mds_place_choose_replacement(const mds_topology *t, const mds_replace_req *req,
                                 uint32_t *out, char *err, size_t errlen)
{
    const mds_copyset *cs = req->copyset;
    const mds_lpool *lp = mds_topo_lpool(t, cs->pool_id);
    if (lp == NULL) {
        mds__errf(err, errlen, "copyset %u.%u: logical pool not found", cs->pool_id, cs->id);
        return CURVE_ERR_NOT_FOUND;
    }
    bool by_zone = mds_place_zone_mode(t, lp->ppool_id);
    uint32_t *own = NULL;
    const uint32_t *counts = req->counts, *scatter = req->scatter;
    if (counts == NULL || scatter == NULL) {
        own = malloc(2 * (t->css.n ? t->css.n : 1) * sizeof(*own));
        if (own == NULL)
            return -ENOMEM;
        if (counts == NULL) {
            mds_place_copyset_counts(t, own);
            counts = own;
        }
        if (scatter == NULL) {
            if (mds_place_scatter_widths(t, own + t->css.n) != 0) {
                free(own);
                return -ENOMEM;
            }
            scatter = own + t->css.n;
        }
    }

    long best = -1;
    size_t best_sw = 0;
    for (size_t i = 0; i < t->css.n; i++) {
        const mds_chunkserver *c = &t->css.v[i];
        if (c->ppool_id != lp->ppool_id || c->state != MDS_CS_ONLINE || is_full(c) ||
            mds_copyset_has_peer(cs, c->id))
            continue;
        if (req->max_copysets != 0 && counts[i] >= req->max_copysets)
            continue;
        if (req->busy != NULL && req->busy(req->busy_ctx, c->id))
            continue;
        bool clash = false;
        for (uint32_t k = 0; k < cs->npeers && !clash; k++) {
            if (cs->peers[k] == req->old_peer)
                continue;
            const mds_chunkserver *m = mds_topo_cs(t, cs->peers[k]);
            if (m == NULL)
                continue;
            clash = by_zone ? m->zone_id == c->zone_id : m->server_id == c->server_id;
        }
        if (clash)
            continue;
        if (best >= 0 && counts[i] > counts[best])
            continue;
        size_t sw = scatter[i];
        if (best < 0 || counts[i] < counts[best] || sw < best_sw) {
            best = (long)i;
            best_sw = sw;
        }
    }
    free(own);
    if (best < 0) {
        mds__errf(err, errlen,
                  "copyset %u.%u: no online, idle, non-full chunkserver in a distinct %s to "
                  "replace %u",
                  cs->pool_id, cs->id, by_zone ? "zone" : "server", req->old_peer);
        return -ENOSPC;
    }
    *out = t->css.v[best].id;
    return 0;
}
