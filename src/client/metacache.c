/* Client metadata cache: two bounded LRU hash tables (metacache.h). */
#include "client/metacache.h"

#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/assert.h"

/* ---- a small intrusive hash table with an LRU list, keyed by two u64 --------------------- */

typedef struct mc_node {
    struct mc_node *hnext;         /* bucket chain */
    struct mc_node *lprev, *lnext; /* LRU list: head.lnext = most recent */
    uint64_t k1, k2;
} mc_node;

typedef struct mc_table {
    mc_node **buckets;
    uint32_t mask; /* nbuckets - 1 */
    uint32_t count;
    uint32_t limit;
    mc_node lru; /* sentinel */
    uint64_t hits, misses, evictions;
} mc_table;

struct curve_metacache {
    pthread_mutex_t seg_lock; /* protects segs (table, LRU, entries, counters) */
    mc_table segs;
    pthread_mutex_t cs_lock; /* protects css (table, LRU, entries, counters) */
    mc_table css;
};

typedef struct seg_entry {
    mc_node n; /* k1 = file id, k2 = segment index */
    uint32_t nchunks;
    curve_chunk_loc chunks[];
} seg_entry;

typedef struct cs_entry {
    mc_node n; /* k1 = pool id, k2 = copyset id */
    curve_copyset_info info;
} cs_entry;

/* mc_insert frees evicted nodes as whole entries */
CURVE_STATIC_ASSERT(offsetof(seg_entry, n) == 0, "node first in seg_entry");
CURVE_STATIC_ASSERT(offsetof(cs_entry, n) == 0, "node first in cs_entry");

static uint32_t mc_hash(uint64_t k1, uint64_t k2)
{
    uint64_t h = k1 * 0x9E3779B97F4A7C15ull ^ (k2 + 0x632BE59BD9B4E019ull) * 0xC2B2AE3D27D4EB4Full;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return (uint32_t)h;
}

static int mc_table_init(mc_table *t, uint32_t limit)
{
    uint32_t nb = 16;
    while (nb < limit && nb < (1u << 24))
        nb <<= 1;
    t->buckets = calloc(nb, sizeof(*t->buckets));
    if (!t->buckets)
        return -ENOMEM;
    t->mask = nb - 1;
    t->count = 0;
    t->limit = limit;
    t->lru.lnext = t->lru.lprev = &t->lru;
    t->hits = t->misses = t->evictions = 0;
    return 0;
}

static void lru_unlink(mc_node *n)
{
    n->lprev->lnext = n->lnext;
    n->lnext->lprev = n->lprev;
}

static void lru_push_front(mc_table *t, mc_node *n)
{
    n->lnext = t->lru.lnext;
    n->lprev = &t->lru;
    t->lru.lnext->lprev = n;
    t->lru.lnext = n;
}

/* Finds a node; moves it to the LRU front when `touch`. */
static mc_node *mc_find(mc_table *t, uint64_t k1, uint64_t k2, bool touch)
{
    for (mc_node *n = t->buckets[mc_hash(k1, k2) & t->mask]; n; n = n->hnext) {
        if (n->k1 == k1 && n->k2 == k2) {
            if (touch) {
                lru_unlink(n);
                lru_push_front(t, n);
            }
            return n;
        }
    }
    return NULL;
}

/* Unlinks `n` from its bucket and the LRU list (the caller frees it). */
static void mc_remove(mc_table *t, mc_node *n)
{
    mc_node **pp = &t->buckets[mc_hash(n->k1, n->k2) & t->mask];
    while (*pp != n) {
        CURVE_ASSERT(*pp != NULL);
        pp = &(*pp)->hnext;
    }
    *pp = n->hnext;
    lru_unlink(n);
    CURVE_ASSERT(t->count > 0);
    t->count--;
}

/* Inserts a node whose key is not in the table, evicting the LRU tail when full. */
static void mc_insert(mc_table *t, mc_node *n)
{
    if (t->count >= t->limit) {
        mc_node *victim = t->lru.lprev;
        CURVE_ASSERT(victim != &t->lru);
        mc_remove(t, victim);
        free(victim);
        t->evictions++;
    }
    mc_node **b = &t->buckets[mc_hash(n->k1, n->k2) & t->mask];
    n->hnext = *b;
    *b = n;
    lru_push_front(t, n);
    t->count++;
    CURVE_ASSERT(t->count <= t->limit);
}

static void mc_table_destroy(mc_table *t)
{
    mc_node *n = t->lru.lnext;
    while (n != &t->lru) {
        mc_node *next = n->lnext;
        free(n);
        n = next;
    }
    free(t->buckets);
    t->buckets = NULL;
}

/* ---- cache ------------------------------------------------------------------------------ */

int curve_metacache_new(uint32_t max_segments, uint32_t max_copysets, curve_metacache **out)
{
    CURVE_ASSERT(out != NULL);
    *out = NULL;
    if (max_segments == 0 || max_copysets == 0 || max_segments > CURVE_METACACHE_LIMIT_MAX ||
        max_copysets > CURVE_METACACHE_LIMIT_MAX)
        return -EINVAL;
    curve_metacache *mc = calloc(1, sizeof(*mc));
    if (!mc)
        return -ENOMEM;
    int rc = mc_table_init(&mc->segs, max_segments);
    if (rc != 0)
        goto err_after_alloc;
    rc = mc_table_init(&mc->css, max_copysets);
    if (rc != 0)
        goto err_after_segs;
    rc = -pthread_mutex_init(&mc->seg_lock, NULL);
    if (rc != 0)
        goto err_after_css;
    rc = -pthread_mutex_init(&mc->cs_lock, NULL);
    if (rc != 0)
        goto err_after_seg_lock;
    *out = mc;
    return 0;

err_after_seg_lock:
    pthread_mutex_destroy(&mc->seg_lock);
err_after_css:
    mc_table_destroy(&mc->css);
err_after_segs:
    mc_table_destroy(&mc->segs);
err_after_alloc:
    free(mc);
    return rc;
}

void curve_metacache_free(curve_metacache *mc)
{
    if (!mc)
        return;
    mc_table_destroy(&mc->segs);
    mc_table_destroy(&mc->css);
    pthread_mutex_destroy(&mc->seg_lock);
    pthread_mutex_destroy(&mc->cs_lock);
    free(mc);
}

/* ---- segments --------------------------------------------------------------------------- */

int curve_metacache_put_segment(curve_metacache *mc, uint64_t file_id, uint64_t seg_index,
                                const curve_chunk_loc *chunks, uint32_t n)
{
    CURVE_ASSERT(mc != NULL);
    if (!chunks || n == 0 || n > CURVE_SEGMENT_MAX_CHUNKS)
        return -EINVAL;
    for (uint32_t i = 0; i < n; i++)
        if (chunks[i].chunk_id == 0)
            return -EINVAL;
    seg_entry *e = malloc(sizeof(*e) + (size_t)n * sizeof(e->chunks[0]));
    if (!e)
        return -ENOMEM;
    e->n.k1 = file_id;
    e->n.k2 = seg_index;
    e->nchunks = n;
    memcpy(e->chunks, chunks, (size_t)n * sizeof(e->chunks[0]));

    pthread_mutex_lock(&mc->seg_lock);
    mc_node *old = mc_find(&mc->segs, file_id, seg_index, false);
    if (old)
        mc_remove(&mc->segs, old);
    mc_insert(&mc->segs, &e->n);
    pthread_mutex_unlock(&mc->seg_lock);
    free(old);
    return 0;
}

int curve_metacache_get_chunk(curve_metacache *mc, uint64_t file_id, uint64_t seg_index,
                              uint32_t chunk_in_seg, curve_chunk_loc *out)
{
    CURVE_ASSERT(mc != NULL && out != NULL);
    int rc = 0;
    pthread_mutex_lock(&mc->seg_lock);
    mc_node *n = mc_find(&mc->segs, file_id, seg_index, true);
    if (!n) {
        mc->segs.misses++;
        rc = -ENOENT;
    } else {
        seg_entry *e = CURVE_CONTAINER_OF(n, seg_entry, n);
        if (chunk_in_seg >= e->nchunks) {
            rc = -EINVAL;
        } else {
            mc->segs.hits++;
            *out = e->chunks[chunk_in_seg];
        }
    }
    pthread_mutex_unlock(&mc->seg_lock);
    return rc;
}

void curve_metacache_invalidate_segment(curve_metacache *mc, uint64_t file_id, uint64_t seg_index)
{
    CURVE_ASSERT(mc != NULL);
    pthread_mutex_lock(&mc->seg_lock);
    mc_node *n = mc_find(&mc->segs, file_id, seg_index, false);
    if (n)
        mc_remove(&mc->segs, n);
    pthread_mutex_unlock(&mc->seg_lock);
    free(n);
}

void curve_metacache_invalidate_file(curve_metacache *mc, uint64_t file_id)
{
    CURVE_ASSERT(mc != NULL);
    mc_node *dead = NULL;
    pthread_mutex_lock(&mc->seg_lock);
    mc_node *n = mc->segs.lru.lnext;
    while (n != &mc->segs.lru) {
        mc_node *next = n->lnext;
        if (n->k1 == file_id) {
            mc_remove(&mc->segs, n);
            n->hnext = dead; /* reuse the chain pointer for the free list */
            dead = n;
        }
        n = next;
    }
    pthread_mutex_unlock(&mc->seg_lock);
    while (dead) {
        mc_node *next = dead->hnext;
        free(dead);
        dead = next;
    }
}

/* ---- copysets --------------------------------------------------------------------------- */

static int find_peer(const curve_copyset_info *ci, const char *addr)
{
    for (uint32_t i = 0; i < ci->npeers; i++)
        if (strcmp(ci->peers[i].addr, addr) == 0)
            return (int)i;
    return -1;
}

static bool addr_ok(const char *a)
{
    size_t l = strnlen(a, CURVE_ADDR_MAX);
    return l > 0 && l < CURVE_ADDR_MAX;
}

int curve_metacache_put_copyset(curve_metacache *mc, uint32_t pool_id, uint32_t copyset_id,
                                uint64_t epoch, const curve_peer *peers, uint32_t npeers,
                                const char *leader_addr, uint64_t term)
{
    CURVE_ASSERT(mc != NULL);
    if (!peers || npeers == 0 || npeers > CURVE_COPYSET_MAX_PEERS)
        return -EINVAL;
    curve_copyset_info ni = {
        .pool_id = pool_id,
        .copyset_id = copyset_id,
        .epoch = epoch,
        .npeers = npeers,
        .leader = -1,
    };
    for (uint32_t i = 0; i < npeers; i++) {
        if (peers[i].cs_id == 0 || !addr_ok(peers[i].addr))
            return -EINVAL;
        ni.peers[i].cs_id = peers[i].cs_id;
        memcpy(ni.peers[i].addr, peers[i].addr, strlen(peers[i].addr) + 1);
    }
    int lead = -1;
    if (leader_addr) {
        if (!addr_ok(leader_addr) || (lead = find_peer(&ni, leader_addr)) < 0)
            return -EINVAL;
    }
    cs_entry *fresh = malloc(sizeof(*fresh)); /* allocated outside the lock */
    if (!fresh)
        return -ENOMEM;

    int rc = 0;
    pthread_mutex_lock(&mc->cs_lock);
    mc_node *n = mc_find(&mc->css, pool_id, copyset_id, true);
    if (n) {
        curve_copyset_info *ci = &CURVE_CONTAINER_OF(n, cs_entry, n)->info;
        if (epoch < ci->epoch) {
            rc = -ESTALE;
        } else {
            /* keep what we knew about the leader when it is still a member */
            int old = ci->leader >= 0 ? find_peer(&ni, ci->peers[ci->leader].addr) : -1;
            if (lead >= 0 && (term == 0 || term >= ci->leader_term)) {
                ni.leader = lead;
                ni.leader_term = term > ci->leader_term ? term : ci->leader_term;
                /* the same leader confirmed again is still on an unstable chunkserver */
                ni.leader_may_change = lead == old && ci->leader_may_change;
            } else if (old >= 0) {
                ni.leader = old;
                ni.leader_term = ci->leader_term;
                ni.leader_may_change = ci->leader_may_change;
            }
            *ci = ni;
        }
    } else {
        ni.leader = lead;
        ni.leader_term = lead >= 0 ? term : 0;
        fresh->n.k1 = pool_id;
        fresh->n.k2 = copyset_id;
        fresh->info = ni;
        mc_insert(&mc->css, &fresh->n);
        fresh = NULL;
    }
    pthread_mutex_unlock(&mc->cs_lock);
    free(fresh);
    return rc;
}

int curve_metacache_set_leader(curve_metacache *mc, uint32_t pool_id, uint32_t copyset_id,
                               const char *leader_addr, uint64_t term)
{
    CURVE_ASSERT(mc != NULL);
    if (!leader_addr || !addr_ok(leader_addr))
        return -ESRCH;
    int rc = 0;
    pthread_mutex_lock(&mc->cs_lock);
    mc_node *n = mc_find(&mc->css, pool_id, copyset_id, true);
    if (!n) {
        rc = -ENOENT;
    } else {
        curve_copyset_info *ci = &CURVE_CONTAINER_OF(n, cs_entry, n)->info;
        int idx = find_peer(ci, leader_addr);
        if (idx < 0) {
            rc = -ESRCH;
        } else if (term != 0 && term < ci->leader_term) {
            rc = -ESTALE;
        } else {
            if (idx != ci->leader)
                ci->leader_may_change = false; /* a different leader: it may be healthy */
            ci->leader = idx;
            if (term != 0)
                ci->leader_term = term;
        }
    }
    pthread_mutex_unlock(&mc->cs_lock);
    return rc;
}

int curve_metacache_get_leader(curve_metacache *mc, uint32_t pool_id, uint32_t copyset_id,
                               curve_peer *leader, bool *may_change)
{
    CURVE_ASSERT(mc != NULL && leader != NULL);
    int rc = 0;
    pthread_mutex_lock(&mc->cs_lock);
    mc_node *n = mc_find(&mc->css, pool_id, copyset_id, true);
    if (!n) {
        mc->css.misses++;
        rc = -ENOENT;
    } else {
        const curve_copyset_info *ci = &CURVE_CONTAINER_OF(n, cs_entry, n)->info;
        mc->css.hits++;
        if (ci->leader < 0) {
            rc = -EAGAIN;
        } else {
            *leader = ci->peers[ci->leader];
            if (may_change)
                *may_change = ci->leader_may_change;
        }
    }
    pthread_mutex_unlock(&mc->cs_lock);
    return rc;
}

int curve_metacache_get_copyset(curve_metacache *mc, uint32_t pool_id, uint32_t copyset_id,
                                curve_copyset_info *out)
{
    CURVE_ASSERT(mc != NULL && out != NULL);
    int rc = 0;
    pthread_mutex_lock(&mc->cs_lock);
    mc_node *n = mc_find(&mc->css, pool_id, copyset_id, true);
    if (!n) {
        mc->css.misses++;
        rc = -ENOENT;
    } else {
        mc->css.hits++;
        *out = CURVE_CONTAINER_OF(n, cs_entry, n)->info;
    }
    pthread_mutex_unlock(&mc->cs_lock);
    return rc;
}

void curve_metacache_invalidate_leader(curve_metacache *mc, uint32_t pool_id, uint32_t copyset_id)
{
    CURVE_ASSERT(mc != NULL);
    pthread_mutex_lock(&mc->cs_lock);
    mc_node *n = mc_find(&mc->css, pool_id, copyset_id, false);
    if (n)
        CURVE_CONTAINER_OF(n, cs_entry, n)->info.leader = -1;
    pthread_mutex_unlock(&mc->cs_lock);
}

void curve_metacache_invalidate_copyset(curve_metacache *mc, uint32_t pool_id, uint32_t copyset_id)
{
    CURVE_ASSERT(mc != NULL);
    pthread_mutex_lock(&mc->cs_lock);
    mc_node *n = mc_find(&mc->css, pool_id, copyset_id, false);
    if (n)
        mc_remove(&mc->css, n);
    pthread_mutex_unlock(&mc->cs_lock);
    free(n);
}

uint32_t curve_metacache_mark_cs_unstable(curve_metacache *mc, uint32_t cs_id)
{
    CURVE_ASSERT(mc != NULL);
    uint32_t marked = 0;
    pthread_mutex_lock(&mc->cs_lock);
    for (mc_node *n = mc->css.lru.lnext; n != &mc->css.lru; n = n->lnext) {
        curve_copyset_info *ci = &CURVE_CONTAINER_OF(n, cs_entry, n)->info;
        if (ci->leader >= 0 && ci->peers[ci->leader].cs_id == cs_id) {
            ci->leader_may_change = true;
            marked++;
        }
    }
    pthread_mutex_unlock(&mc->cs_lock);
    return marked;
}

void curve_metacache_get_stats(curve_metacache *mc, curve_metacache_stats *out)
{
    CURVE_ASSERT(mc != NULL && out != NULL);
    pthread_mutex_lock(&mc->seg_lock);
    out->segments = mc->segs.count;
    out->seg_hits = mc->segs.hits;
    out->seg_misses = mc->segs.misses;
    out->seg_evictions = mc->segs.evictions;
    pthread_mutex_unlock(&mc->seg_lock);
    pthread_mutex_lock(&mc->cs_lock);
    out->copysets = mc->css.count;
    out->cs_hits = mc->css.hits;
    out->cs_misses = mc->css.misses;
    out->cs_evictions = mc->css.evictions;
    pthread_mutex_unlock(&mc->cs_lock);
}
