/* MDS topology model: see topology.h and docs/mds.md. */
#include "mds/topology.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/assert.h"
#include "curve/errors.h"

void mds__errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------------------------------- */
/* PRNG */

void mds_rng_seed(mds_rng *r, uint64_t seed)
{
    r->s = seed;
}

uint64_t mds_rng_next(mds_rng *r)
{
    /* splitmix64 (Steele, Lea, Flood 2014): tiny, fast, full period, good enough here. */
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint32_t mds_rng_below(mds_rng *r, uint32_t n)
{
    CURVE_ASSERT(n > 0);
    /* Lemire's multiply-shift; the tiny bias is irrelevant for placement. */
    return (uint32_t)(((mds_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* ---------------------------------------------------------------------------------------- */
/* generic sorted vectors */

typedef uint64_t (*key_fn)(const void *rec);

static uint64_t key_u32(const void *rec)
{
    uint32_t id;
    memcpy(&id, rec, sizeof(id)); /* every record but copysets starts with its uint32 id */
    return id;
}

static uint64_t key_copyset(const void *rec)
{
    const mds_copyset *c = rec;
    return mds_group_id(c->pool_id, c->id);
}

static size_t lower_bound(const void *base, size_t n, size_t esz, uint64_t key, key_fn kf)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (kf((const char *)base + mid * esz) < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void *vec_find(const void *base, size_t n, size_t esz, uint64_t key, key_fn kf)
{
    size_t i = lower_bound(base, n, esz, key, kf);
    if (i < n && kf((const char *)base + i * esz) == key)
        return (char *)base + i * esz;
    return NULL;
}

/* Inserts `rec` in key order. Returns the (possibly moved) array; *rc = 0, -EEXIST, -ENOSPC
 * or -ENOMEM (array unchanged on error). */
static void *vec_insert(void *base, size_t *n, size_t *cap, size_t esz, const void *rec,
                        key_fn kf, int *rc)
{
    uint64_t key = kf(rec);
    size_t i = lower_bound(base, *n, esz, key, kf);
    if (i < *n && kf((char *)base + i * esz) == key) {
        *rc = -EEXIST;
        return base;
    }
    if (*n >= MDS_TOPO_MAX_ITEMS) {
        *rc = -ENOSPC;
        return base;
    }
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        void *nb = realloc(base, ncap * esz);
        if (nb == NULL) {
            *rc = -ENOMEM;
            return base;
        }
        base = nb;
        *cap = ncap;
    }
    char *p = (char *)base + i * esz;
    memmove(p + esz, p, (*n - i) * esz);
    memcpy(p, rec, esz);
    (*n)++;
    *rc = 0;
    return base;
}

static void *vec_dup(const void *base, size_t n, size_t esz, int *rc)
{
    if (n == 0)
        return NULL;
    void *p = malloc(n * esz);
    if (p == NULL) {
        *rc = -ENOMEM;
        return NULL;
    }
    memcpy(p, base, n * esz);
    return p;
}

/* ---------------------------------------------------------------------------------------- */
/* basics */

const char *mds_cs_state_name(mds_cs_state s)
{
    switch (s) {
    case MDS_CS_ONLINE:
        return "online";
    case MDS_CS_UNSTABLE:
        return "unstable";
    case MDS_CS_OFFLINE:
        return "offline";
    case MDS_CS_RETIRED:
        return "retired";
    }
    return "?";
}

static int cs_state_parse(const char *s, mds_cs_state *out)
{
    for (int i = MDS_CS_ONLINE; i <= MDS_CS_RETIRED; i++) {
        if (strcmp(s, mds_cs_state_name((mds_cs_state)i)) == 0) {
            *out = (mds_cs_state)i;
            return 0;
        }
    }
    return -EINVAL;
}

bool mds_copyset_has_peer(const mds_copyset *c, uint32_t cs_id)
{
    for (uint32_t i = 0; i < c->npeers; i++)
        if (c->peers[i] == cs_id)
            return true;
    return false;
}

void mds_topo_init(mds_topology *t)
{
    memset(t, 0, sizeof(*t));
}

void mds_topo_destroy(mds_topology *t)
{
    free(t->ppools.v);
    free(t->zones.v);
    free(t->servers.v);
    free(t->css.v);
    free(t->lpools.v);
    free(t->copysets.v);
    memset(t, 0, sizeof(*t));
}

#define DUP_VEC(dst, src, f)                                                                       \
    do {                                                                                           \
        (dst)->f.v = vec_dup((src)->f.v, (src)->f.n, sizeof(*(src)->f.v), &rc);                    \
        (dst)->f.n = (dst)->f.cap = (dst)->f.v ? (src)->f.n : 0;                                   \
    } while (0)

int mds_topo_clone(mds_topology *dst, const mds_topology *src)
{
    int rc = 0;
    mds_topo_init(dst);
    DUP_VEC(dst, src, ppools);
    DUP_VEC(dst, src, zones);
    DUP_VEC(dst, src, servers);
    DUP_VEC(dst, src, css);
    DUP_VEC(dst, src, lpools);
    DUP_VEC(dst, src, copysets);
    if (rc != 0)
        mds_topo_destroy(dst);
    return rc;
}

int mds_topo_check_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= MDS_NAME_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return -EINVAL;
    }
    return 0;
}

int mds_topo_check_host(const char *host)
{
    size_t n = strlen(host);
    if (n == 0 || n >= MDS_HOST_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        char c = host[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == ':' || c == '-'))
            return -EINVAL;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* lookups */

#define FIND(vec, key, kf) vec_find((vec).v, (vec).n, sizeof(*(vec).v), (key), (kf))

mds_ppool *mds_topo_ppool(const mds_topology *t, uint32_t id)
{
    return FIND(t->ppools, id, key_u32);
}
mds_zone *mds_topo_zone(const mds_topology *t, uint32_t id)
{
    return FIND(t->zones, id, key_u32);
}
mds_server *mds_topo_server(const mds_topology *t, uint32_t id)
{
    return FIND(t->servers, id, key_u32);
}
mds_chunkserver *mds_topo_cs(const mds_topology *t, uint32_t id)
{
    return FIND(t->css, id, key_u32);
}
mds_lpool *mds_topo_lpool(const mds_topology *t, uint32_t id)
{
    return FIND(t->lpools, id, key_u32);
}
mds_copyset *mds_topo_copyset(const mds_topology *t, uint32_t pool_id, uint32_t id)
{
    return FIND(t->copysets, mds_group_id(pool_id, id), key_copyset);
}

#define FIND_BY_NAME(vec, nm)                                                                      \
    do {                                                                                           \
        for (size_t i_ = 0; i_ < (vec).n; i_++)                                                    \
            if (strcmp((vec).v[i_].name, (nm)) == 0)                                               \
                return &(vec).v[i_];                                                               \
        return NULL;                                                                               \
    } while (0)

mds_ppool *mds_topo_ppool_by_name(const mds_topology *t, const char *name)
{
    FIND_BY_NAME(t->ppools, name);
}
mds_zone *mds_topo_zone_by_name(const mds_topology *t, const char *name)
{
    FIND_BY_NAME(t->zones, name);
}
mds_server *mds_topo_server_by_name(const mds_topology *t, const char *name)
{
    FIND_BY_NAME(t->servers, name);
}
mds_lpool *mds_topo_lpool_by_name(const mds_topology *t, const char *name)
{
    FIND_BY_NAME(t->lpools, name);
}

mds_chunkserver *mds_topo_cs_by_addr(const mds_topology *t, const char *host, uint32_t port)
{
    for (size_t i = 0; i < t->css.n; i++) {
        mds_chunkserver *c = &t->css.v[i];
        if (c->state != MDS_CS_RETIRED && c->port == port && strcmp(c->host, host) == 0)
            return c;
    }
    return NULL;
}

size_t mds_topo_pool_copysets(const mds_topology *t, uint32_t pool_id, size_t *first)
{
    size_t lo = lower_bound(t->copysets.v, t->copysets.n, sizeof(mds_copyset),
                            mds_group_id(pool_id, 0), key_copyset);
    size_t hi = lower_bound(t->copysets.v, t->copysets.n, sizeof(mds_copyset),
                            mds_group_id(pool_id + 1, 0), key_copyset);
    if (pool_id == UINT32_MAX)
        hi = t->copysets.n;
    *first = lo;
    return hi - lo;
}

size_t mds_topo_css_of_zone(const mds_topology *t, uint32_t zone_id, uint32_t *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < t->css.n; i++) {
        if (t->css.v[i].zone_id != zone_id)
            continue;
        if (n < max)
            out[n] = t->css.v[i].id;
        n++;
    }
    return n;
}

size_t mds_topo_css_of_copyset(const mds_topology *t, const mds_copyset *c,
                               const mds_chunkserver **out, size_t max)
{
    size_t n = 0;
    for (uint32_t i = 0; i < c->npeers && n < max; i++) {
        const mds_chunkserver *cs = mds_topo_cs(t, c->peers[i]);
        if (cs != NULL)
            out[n++] = cs;
    }
    return n;
}

size_t mds_topo_copysets_of_cs(const mds_topology *t, uint32_t cs_id, const mds_copyset **out,
                               size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < t->copysets.n; i++) {
        if (!mds_copyset_has_peer(&t->copysets.v[i], cs_id))
            continue;
        if (n < max)
            out[n] = &t->copysets.v[i];
        n++;
    }
    return n;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

size_t mds_topo_scatter_width(const mds_topology *t, uint32_t cs_id)
{
    /* Collect every peer of every copyset of cs_id, then count the distinct ones. */
    size_t cap = 64, n = 0;
    uint32_t *peers = malloc(cap * sizeof(*peers));
    if (peers == NULL)
        return 0;
    for (size_t i = 0; i < t->copysets.n; i++) {
        const mds_copyset *c = &t->copysets.v[i];
        if (!mds_copyset_has_peer(c, cs_id))
            continue;
        for (uint32_t k = 0; k < c->npeers; k++) {
            if (c->peers[k] == cs_id)
                continue;
            if (n == cap) {
                uint32_t *np = realloc(peers, cap * 2 * sizeof(*peers));
                if (np == NULL) {
                    free(peers);
                    return 0;
                }
                peers = np;
                cap *= 2;
            }
            peers[n++] = c->peers[k];
        }
    }
    qsort(peers, n, sizeof(*peers), cmp_u32);
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || peers[i] != peers[i - 1])
            distinct++;
    free(peers);
    return distinct;
}

int mds_topo_retire_cs(mds_topology *t, uint32_t id)
{
    mds_chunkserver *c = mds_topo_cs(t, id);
    if (c == NULL)
        return CURVE_ERR_NOT_FOUND;
    c->state = MDS_CS_RETIRED;
    return 0;
}

uint32_t mds_topo_next_cs_id(const mds_topology *t)
{
    return t->css.n ? t->css.v[t->css.n - 1].id + 1 : 1;
}

/* ---------------------------------------------------------------------------------------- */
/* inserts */

#define INSERT(vec, rec, kf, rcp)                                                                  \
    ((vec).v = vec_insert((vec).v, &(vec).n, &(vec).cap, sizeof(*(vec).v), (rec), (kf), (rcp)))

static int insert_rc(int rc, const char *kind, uint64_t id, char *err, size_t errlen)
{
    if (rc == -EEXIST)
        mds__errf(err, errlen, "%s %" PRIu64 " already exists", kind, id);
    else if (rc == -ENOSPC)
        mds__errf(err, errlen, "too many %s records (max %u)", kind, MDS_TOPO_MAX_ITEMS);
    else if (rc == -ENOMEM)
        mds__errf(err, errlen, "out of memory adding %s %" PRIu64, kind, id);
    return rc;
}

static int check_id_name(const char *kind, uint32_t id, const char *name, char *err,
                         size_t errlen)
{
    if (id == 0) {
        mds__errf(err, errlen, "%s id must be > 0", kind);
        return -EINVAL;
    }
    if (memchr(name, 0, MDS_NAME_MAX) == NULL || mds_topo_check_name(name) != 0) {
        mds__errf(err, errlen, "%s %u: bad name (1..%d chars of [A-Za-z0-9._-])", kind, id,
                  MDS_NAME_MAX - 1);
        return -EINVAL;
    }
    return 0;
}

int mds_topo_add_ppool(mds_topology *t, const mds_ppool *p, char *err, size_t errlen)
{
    int rc = check_id_name("physical pool", p->id, p->name, err, errlen);
    if (rc != 0)
        return rc;
    INSERT(t->ppools, p, key_u32, &rc);
    return insert_rc(rc, "physical pool", p->id, err, errlen);
}

int mds_topo_add_zone(mds_topology *t, const mds_zone *z, char *err, size_t errlen)
{
    int rc = check_id_name("zone", z->id, z->name, err, errlen);
    if (rc != 0)
        return rc;
    if (mds_topo_ppool(t, z->ppool_id) == NULL) {
        mds__errf(err, errlen, "zone %u: unknown physical pool %u", z->id, z->ppool_id);
        return CURVE_ERR_NOT_FOUND;
    }
    INSERT(t->zones, z, key_u32, &rc);
    return insert_rc(rc, "zone", z->id, err, errlen);
}

int mds_topo_add_server(mds_topology *t, const mds_server *s, char *err, size_t errlen)
{
    int rc = check_id_name("server", s->id, s->name, err, errlen);
    if (rc != 0)
        return rc;
    if (memchr(s->host, 0, MDS_HOST_MAX) == NULL || mds_topo_check_host(s->host) != 0) {
        mds__errf(err, errlen, "server %u: bad host", s->id);
        return -EINVAL;
    }
    if (mds_topo_zone(t, s->zone_id) == NULL) {
        mds__errf(err, errlen, "server %u: unknown zone %u", s->id, s->zone_id);
        return CURVE_ERR_NOT_FOUND;
    }
    INSERT(t->servers, s, key_u32, &rc);
    return insert_rc(rc, "server", s->id, err, errlen);
}

int mds_topo_add_cs(mds_topology *t, const mds_chunkserver *c, char *err, size_t errlen)
{
    int rc;
    if (c->id == 0) {
        mds__errf(err, errlen, "chunkserver id must be > 0");
        return -EINVAL;
    }
    if (memchr(c->host, 0, MDS_HOST_MAX) == NULL || mds_topo_check_host(c->host) != 0 ||
        c->port == 0 || c->port > 65535) {
        mds__errf(err, errlen, "chunkserver %u: bad address", c->id);
        return -EINVAL;
    }
    if (memchr(c->disk_path, 0, sizeof(c->disk_path)) == NULL ||
        mds_topo_check_disk_path(c->disk_path) != 0) {
        mds__errf(err, errlen, "chunkserver %u: bad disk path", c->id);
        return -EINVAL;
    }
    if (memchr(c->token, 0, sizeof(c->token)) == NULL || strlen(c->token) != MDS_TOKEN_LEN) {
        mds__errf(err, errlen, "chunkserver %u: token must be %d chars", c->id, MDS_TOKEN_LEN);
        return -EINVAL;
    }
    if ((unsigned)c->state > MDS_CS_RETIRED) {
        mds__errf(err, errlen, "chunkserver %u: bad state %u", c->id, (unsigned)c->state);
        return -EINVAL;
    }
    const mds_server *s = mds_topo_server(t, c->server_id);
    if (s == NULL) {
        mds__errf(err, errlen, "chunkserver %u: unknown server %u", c->id, c->server_id);
        return CURVE_ERR_NOT_FOUND;
    }
    const mds_zone *z = mds_topo_zone(t, s->zone_id);
    CURVE_ASSERT(z != NULL); /* add_server checked the reference */
    mds_chunkserver rec = *c;
    rec.zone_id = z->id;
    rec.ppool_id = z->ppool_id;
    INSERT(t->css, &rec, key_u32, &rc);
    return insert_rc(rc, "chunkserver", c->id, err, errlen);
}

int mds_topo_add_lpool(mds_topology *t, const mds_lpool *l, char *err, size_t errlen)
{
    int rc = check_id_name("logical pool", l->id, l->name, err, errlen);
    if (rc != 0)
        return rc;
    if (l->replicas != MDS_REPLICAS) {
        mds__errf(err, errlen, "logical pool %u: replicas must be %d, not %u", l->id,
                  MDS_REPLICAS, l->replicas);
        return -EINVAL;
    }
    if (l->copyset_count == 0 || l->copyset_count > MDS_MAX_COPYSETS_PER_POOL) {
        mds__errf(err, errlen, "logical pool %u: copyset count must be 1..%u", l->id,
                  MDS_MAX_COPYSETS_PER_POOL);
        return -EINVAL;
    }
    if (mds_topo_ppool(t, l->ppool_id) == NULL) {
        mds__errf(err, errlen, "logical pool %u: unknown physical pool %u", l->id, l->ppool_id);
        return CURVE_ERR_NOT_FOUND;
    }
    INSERT(t->lpools, l, key_u32, &rc);
    return insert_rc(rc, "logical pool", l->id, err, errlen);
}

int mds_topo_add_copyset(mds_topology *t, const mds_copyset *c, char *err, size_t errlen)
{
    int rc;
    if (c->id == 0 || c->npeers == 0 || c->npeers > MDS_MAX_PEERS) {
        mds__errf(err, errlen, "copyset %u.%u: bad id or peer count %u", c->pool_id, c->id,
                  c->npeers);
        return -EINVAL;
    }
    if (mds_topo_lpool(t, c->pool_id) == NULL) {
        mds__errf(err, errlen, "copyset %u.%u: unknown logical pool", c->pool_id, c->id);
        return CURVE_ERR_NOT_FOUND;
    }
    for (uint32_t i = 0; i < c->npeers; i++) {
        for (uint32_t k = 0; k < i; k++) {
            if (c->peers[k] == c->peers[i]) {
                mds__errf(err, errlen, "copyset %u.%u: duplicate peer %u", c->pool_id, c->id,
                          c->peers[i]);
                return -EINVAL;
            }
        }
        if (mds_topo_cs(t, c->peers[i]) == NULL) {
            mds__errf(err, errlen, "copyset %u.%u: unknown chunkserver %u", c->pool_id, c->id,
                      c->peers[i]);
            return CURVE_ERR_NOT_FOUND;
        }
    }
    if (c->leader != 0 && !mds_copyset_has_peer(c, c->leader)) {
        mds__errf(err, errlen, "copyset %u.%u: leader %u is not a peer", c->pool_id, c->id,
                  c->leader);
        return -EINVAL;
    }
    mds_copyset rec = *c;
    for (uint32_t i = rec.npeers; i < MDS_MAX_PEERS; i++)
        rec.peers[i] = 0;
    INSERT(t->copysets, &rec, key_copyset, &rc);
    if (rc == -EEXIST)
        mds__errf(err, errlen, "copyset %u.%u already exists", c->pool_id, c->id);
    else if (rc != 0)
        insert_rc(rc, "copyset", c->id, err, errlen);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* registration */

int mds_topo_check_disk_path(const char *path)
{
    size_t n = strnlen(path, MDS_DISK_PATH_MAX);
    if (n < 2 || n >= MDS_DISK_PATH_MAX || path[0] != '/')
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (path[i] <= ' ' || path[i] > '~')
            return -EINVAL;
    return 0;
}

int mds_topo_register_cs(mds_topology *t, const char *host, uint32_t port, const char *disk_path,
                         uint64_t capacity, mds_rng *rng, uint64_t now_ms, mds_chunkserver **out,
                         char *err, size_t errlen)
{
    static const char hex[] = "0123456789abcdef";
    if (host == NULL || mds_topo_check_host(host) != 0 || port == 0 || port > 65535) {
        mds__errf(err, errlen, "register: bad address %s:%u", host ? host : "(null)", port);
        return -EINVAL;
    }
    if (disk_path == NULL || mds_topo_check_disk_path(disk_path) != 0) {
        mds__errf(err, errlen, "register %s:%u: bad disk path (absolute, printable, no spaces)",
                  host, port);
        return -EINVAL;
    }
    mds_chunkserver *old = mds_topo_cs_by_addr(t, host, port);
    if (old != NULL) {
        if (strcmp(old->disk_path, disk_path) != 0) {
            mds__errf(err, errlen, "register %s:%u: address held by chunkserver %u (disk %s)",
                      host, port, old->id, old->disk_path);
            return -EEXIST;
        }
        *out = old;
        return 0;
    }
    for (size_t i = 0; i < t->css.n; i++) {
        const mds_chunkserver *o = &t->css.v[i];
        if (o->state != MDS_CS_RETIRED && strcmp(o->host, host) == 0 &&
            strcmp(o->disk_path, disk_path) == 0) {
            mds__errf(err, errlen, "register %s:%u: disk %s held by chunkserver %u (port %u)",
                      host, port, disk_path, o->id, o->port);
            return -EEXIST;
        }
    }
    const mds_server *srv = NULL;
    for (size_t i = 0; i < t->servers.n; i++) {
        if (strcmp(t->servers.v[i].host, host) == 0) {
            srv = &t->servers.v[i];
            break;
        }
    }
    if (srv == NULL) {
        mds__errf(err, errlen, "register %s:%u: no server with host %s in the topology", host,
                  port, host);
        return CURVE_ERR_NOT_FOUND;
    }
    mds_chunkserver c;
    memset(&c, 0, sizeof(c));
    c.id = mds_topo_next_cs_id(t);
    c.server_id = srv->id;
    c.port = port;
    c.state = MDS_CS_ONLINE;
    c.capacity = capacity;
    c.last_hb_ms = now_ms;
    snprintf(c.host, sizeof(c.host), "%s", host);
    snprintf(c.disk_path, sizeof(c.disk_path), "%s", disk_path);
    for (int i = 0; i < MDS_TOKEN_LEN; i++)
        c.token[i] = hex[mds_rng_below(rng, 16)];
    int rc = mds_topo_add_cs(t, &c, err, errlen);
    if (rc != 0)
        return rc;
    *out = mds_topo_cs(t, c.id);
    CURVE_ASSERT(*out != NULL);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* topology description (JSON) */

/* Checks that every key of object `o` is in `allowed` (NULL-terminated). */
static int check_keys(const json_t *o, const char *const *allowed, const char *where, char *err,
                      size_t errlen)
{
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)o, key, val)
    {
        bool ok = false;
        for (size_t i = 0; allowed[i] != NULL; i++)
            if (strcmp(key, allowed[i]) == 0)
                ok = true;
        if (!ok) {
            mds__errf(err, errlen, "%s: unknown field '%.64s'", where, key);
            return CURVE_ERR_CONFIG;
        }
    }
    return 0;
}

/* Required string field checked by `check` copied into dst[cap]. */
static int get_str(const json_t *o, const char *key, const char *where, char *dst, size_t cap,
                   int (*check)(const char *), char *err, size_t errlen)
{
    const json_t *v = json_object_get(o, key);
    if (v == NULL) {
        mds__errf(err, errlen, "%s.%s: missing", where, key);
        return CURVE_ERR_CONFIG;
    }
    if (!json_is_string(v)) {
        mds__errf(err, errlen, "%s.%s: must be a string", where, key);
        return CURVE_ERR_CONFIG;
    }
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v) || strlen(s) >= cap || check(s) != 0) {
        mds__errf(err, errlen, "%s.%s: invalid value '%.64s' (1..%zu chars of %s)", where, key, s,
                  cap - 1, check == mds_topo_check_name ? "[A-Za-z0-9._-]" : "[A-Za-z0-9.:-]");
        return CURVE_ERR_CONFIG;
    }
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

static int get_uint(const json_t *o, const char *key, const char *where, uint64_t min,
                    uint64_t max, uint64_t *out, char *err, size_t errlen)
{
    const json_t *v = json_object_get(o, key);
    if (v == NULL) {
        mds__errf(err, errlen, "%s.%s: missing", where, key);
        return CURVE_ERR_CONFIG;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        (uint64_t)json_integer_value(v) < min || (uint64_t)json_integer_value(v) > max) {
        mds__errf(err, errlen, "%s.%s: must be an integer in %" PRIu64 "..%" PRIu64, where, key,
                  min, max);
        return CURVE_ERR_CONFIG;
    }
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

typedef int (*item_fn)(mds_topology *t, const json_t *item, const char *where, size_t *nchanged,
                       char *err, size_t errlen);

static int apply_ppool(mds_topology *t, const json_t *item, const char *where, size_t *nchanged,
                       char *err, size_t errlen)
{
    static const char *const keys[] = {"name", NULL};
    mds_ppool p;
    memset(&p, 0, sizeof(p));
    int rc = check_keys(item, keys, where, err, errlen);
    if (rc == 0)
        rc = get_str(item, "name", where, p.name, sizeof(p.name), mds_topo_check_name, err,
                     errlen);
    if (rc != 0)
        return rc;
    if (mds_topo_ppool_by_name(t, p.name) != NULL)
        return 0;
    p.id = t->ppools.n ? t->ppools.v[t->ppools.n - 1].id + 1 : 1;
    (*nchanged)++;
    return mds_topo_add_ppool(t, &p, err, errlen);
}

static int apply_zone(mds_topology *t, const json_t *item, const char *where, size_t *nchanged,
                      char *err, size_t errlen)
{
    static const char *const keys[] = {"name", "physical_pool", NULL};
    mds_zone z;
    char pp[MDS_NAME_MAX];
    memset(&z, 0, sizeof(z));
    int rc = check_keys(item, keys, where, err, errlen);
    if (rc == 0)
        rc = get_str(item, "name", where, z.name, sizeof(z.name), mds_topo_check_name, err,
                     errlen);
    if (rc == 0)
        rc = get_str(item, "physical_pool", where, pp, sizeof(pp), mds_topo_check_name, err,
                     errlen);
    if (rc != 0)
        return rc;
    const mds_ppool *p = mds_topo_ppool_by_name(t, pp);
    if (p == NULL) {
        mds__errf(err, errlen, "%s.physical_pool: unknown physical pool '%s'", where, pp);
        return CURVE_ERR_CONFIG;
    }
    const mds_zone *old = mds_topo_zone_by_name(t, z.name);
    if (old != NULL) {
        if (old->ppool_id == p->id)
            return 0;
        mds__errf(err, errlen, "%s: zone '%s' already exists in another physical pool", where,
                  z.name);
        return CURVE_ERR_CONFIG;
    }
    z.ppool_id = p->id;
    z.id = t->zones.n ? t->zones.v[t->zones.n - 1].id + 1 : 1;
    (*nchanged)++;
    return mds_topo_add_zone(t, &z, err, errlen);
}

static int apply_server(mds_topology *t, const json_t *item, const char *where, size_t *nchanged,
                        char *err, size_t errlen)
{
    static const char *const keys[] = {"name", "zone", "host", NULL};
    mds_server s;
    char zn[MDS_NAME_MAX];
    memset(&s, 0, sizeof(s));
    int rc = check_keys(item, keys, where, err, errlen);
    if (rc == 0)
        rc = get_str(item, "name", where, s.name, sizeof(s.name), mds_topo_check_name, err,
                     errlen);
    if (rc == 0)
        rc = get_str(item, "zone", where, zn, sizeof(zn), mds_topo_check_name, err, errlen);
    if (rc == 0)
        rc = get_str(item, "host", where, s.host, sizeof(s.host), mds_topo_check_host, err,
                     errlen);
    if (rc != 0)
        return rc;
    const mds_zone *z = mds_topo_zone_by_name(t, zn);
    if (z == NULL) {
        mds__errf(err, errlen, "%s.zone: unknown zone '%s'", where, zn);
        return CURVE_ERR_CONFIG;
    }
    const mds_server *old = mds_topo_server_by_name(t, s.name);
    if (old != NULL) {
        if (old->zone_id == z->id && strcmp(old->host, s.host) == 0)
            return 0;
        mds__errf(err, errlen, "%s: server '%s' already exists with another zone or host",
                  where, s.name);
        return CURVE_ERR_CONFIG;
    }
    for (size_t i = 0; i < t->servers.n; i++) {
        if (strcmp(t->servers.v[i].host, s.host) == 0) {
            mds__errf(err, errlen, "%s.host: host '%s' already belongs to server '%s'", where,
                      s.host, t->servers.v[i].name);
            return CURVE_ERR_CONFIG;
        }
    }
    s.zone_id = z->id;
    s.id = t->servers.n ? t->servers.v[t->servers.n - 1].id + 1 : 1;
    (*nchanged)++;
    return mds_topo_add_server(t, &s, err, errlen);
}

static int apply_lpool(mds_topology *t, const json_t *item, const char *where, size_t *nchanged,
                       char *err, size_t errlen)
{
    static const char *const keys[] = {"name", "physical_pool", "replicas", "copysets", NULL};
    mds_lpool l;
    char pp[MDS_NAME_MAX];
    uint64_t replicas = 0, copysets = 0;
    memset(&l, 0, sizeof(l));
    int rc = check_keys(item, keys, where, err, errlen);
    if (rc == 0)
        rc = get_str(item, "name", where, l.name, sizeof(l.name), mds_topo_check_name, err,
                     errlen);
    if (rc == 0)
        rc = get_str(item, "physical_pool", where, pp, sizeof(pp), mds_topo_check_name, err,
                     errlen);
    if (rc == 0)
        rc = get_uint(item, "replicas", where, MDS_REPLICAS, MDS_REPLICAS, &replicas, err,
                      errlen);
    if (rc == 0)
        rc = get_uint(item, "copysets", where, 1, MDS_MAX_COPYSETS_PER_POOL, &copysets, err,
                      errlen);
    if (rc != 0)
        return rc;
    const mds_ppool *p = mds_topo_ppool_by_name(t, pp);
    if (p == NULL) {
        mds__errf(err, errlen, "%s.physical_pool: unknown physical pool '%s'", where, pp);
        return CURVE_ERR_CONFIG;
    }
    const mds_lpool *old = mds_topo_lpool_by_name(t, l.name);
    if (old != NULL) {
        if (old->ppool_id == p->id && old->copyset_count == copysets)
            return 0;
        mds__errf(err, errlen,
                  "%s: logical pool '%s' already exists with another physical pool or copyset "
                  "count",
                  where, l.name);
        return CURVE_ERR_CONFIG;
    }
    l.ppool_id = p->id;
    l.replicas = (uint32_t)replicas;
    l.copyset_count = (uint32_t)copysets;
    l.id = t->lpools.n ? t->lpools.v[t->lpools.n - 1].id + 1 : 1;
    (*nchanged)++;
    return mds_topo_add_lpool(t, &l, err, errlen);
}

static int apply_section(mds_topology *t, const json_t *root, const char *name, item_fn fn,
                         size_t *nchanged, char *err, size_t errlen)
{
    const json_t *arr = json_object_get(root, name);
    if (arr == NULL)
        return 0;
    if (!json_is_array(arr)) {
        mds__errf(err, errlen, "%s: must be an array", name);
        return CURVE_ERR_CONFIG;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        char where[64];
        snprintf(where, sizeof(where), "%s[%zu]", name, i);
        const json_t *item = json_array_get(arr, i);
        if (!json_is_object(item)) {
            mds__errf(err, errlen, "%s: must be an object", where);
            return CURVE_ERR_CONFIG;
        }
        int rc = fn(t, item, where, nchanged, err, errlen);
        if (rc == -ENOMEM)
            return rc;
        if (rc != 0) {
            /* Normalise errors of the add functions (they name ids, not fields). */
            return CURVE_ERR_CONFIG;
        }
    }
    return 0;
}

int mds_topo_apply_json(mds_topology *t, const char *text, size_t len, size_t *nchanged,
                        char *err, size_t errlen)
{
    static const char *const keys[] = {"physical_pools", "zones", "servers", "logical_pools",
                                       NULL};
    json_error_t jerr;
    size_t changed = 0;
    mds_topology work;
    int rc;

    if (len > MDS_TOPO_DESC_MAX) {
        mds__errf(err, errlen, "topology description too large (%zu bytes, max %u)", len,
                  MDS_TOPO_DESC_MAX);
        return CURVE_ERR_CONFIG;
    }
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        mds__errf(err, errlen, "topology JSON: line %d column %d: %s", jerr.line, jerr.column,
                  jerr.text);
        return CURVE_ERR_CONFIG;
    }
    if (!json_is_object(root)) {
        mds__errf(err, errlen, "topology JSON: top level must be an object");
        rc = CURVE_ERR_CONFIG;
        goto err_after_load;
    }
    rc = check_keys(root, keys, "topology", err, errlen);
    if (rc != 0)
        goto err_after_load;
    rc = mds_topo_clone(&work, t);
    if (rc != 0)
        goto err_after_load;
    rc = apply_section(&work, root, "physical_pools", apply_ppool, &changed, err, errlen);
    if (rc == 0)
        rc = apply_section(&work, root, "zones", apply_zone, &changed, err, errlen);
    if (rc == 0)
        rc = apply_section(&work, root, "servers", apply_server, &changed, err, errlen);
    if (rc == 0)
        rc = apply_section(&work, root, "logical_pools", apply_lpool, &changed, err, errlen);
    if (rc != 0)
        goto err_after_clone;
    mds_topo_destroy(t);
    *t = work;
    json_decref(root);
    if (nchanged != NULL)
        *nchanged = changed;
    return 0;

err_after_clone:
    mds_topo_destroy(&work);
err_after_load:
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* records <-> JSON, through one field table per kind */

typedef enum { F_U32, F_U64, F_STR, F_STATE, F_BOOL, F_PEERS } ftype;

typedef struct fdesc {
    const char *name;
    ftype type;
    size_t off;
    size_t size; /* F_STR: buffer size */
    uint64_t min, max;
} fdesc;

#define FU32(T, f, n, lo) {n, F_U32, offsetof(T, f), 0, lo, UINT32_MAX}
#define FU64(T, f, n)     {n, F_U64, offsetof(T, f), 0, 0, INT64_MAX}
#define FSTR(T, f, n)     {n, F_STR, offsetof(T, f), sizeof(((T *)0)->f), 0, 0}

static const fdesc ppool_fields[] = {FU32(mds_ppool, id, "id", 1), FSTR(mds_ppool, name, "name")};
static const fdesc zone_fields[] = {FU32(mds_zone, id, "id", 1),
                                    FU32(mds_zone, ppool_id, "ppool", 1),
                                    FSTR(mds_zone, name, "name")};
static const fdesc server_fields[] = {FU32(mds_server, id, "id", 1),
                                      FU32(mds_server, zone_id, "zone", 1),
                                      FSTR(mds_server, name, "name"),
                                      FSTR(mds_server, host, "host")};
static const fdesc cs_fields[] = {
    FU32(mds_chunkserver, id, "id", 1),
    FU32(mds_chunkserver, server_id, "server", 1),
    {"port", F_U32, offsetof(mds_chunkserver, port), 0, 1, 65535},
    {"state", F_STATE, offsetof(mds_chunkserver, state), 0, 0, 0},
    FSTR(mds_chunkserver, token, "token"),
    FSTR(mds_chunkserver, host, "host"),
    FSTR(mds_chunkserver, disk_path, "disk"),
    FU64(mds_chunkserver, capacity, "cap"),
    FU64(mds_chunkserver, used, "used"),
};
static const fdesc lpool_fields[] = {
    FU32(mds_lpool, id, "id", 1),
    FU32(mds_lpool, ppool_id, "ppool", 1),
    {"replicas", F_U32, offsetof(mds_lpool, replicas), 0, MDS_REPLICAS, MDS_REPLICAS},
    {"copysets", F_U32, offsetof(mds_lpool, copyset_count), 0, 1, MDS_MAX_COPYSETS_PER_POOL},
    {"created", F_BOOL, offsetof(mds_lpool, copysets_created), 0, 0, 0},
    FSTR(mds_lpool, name, "name"),
};
static const fdesc copyset_fields[] = {
    FU32(mds_copyset, pool_id, "pool", 1),
    FU32(mds_copyset, id, "id", 1),
    {"peers", F_PEERS, offsetof(mds_copyset, npeers), 0, 1, MDS_MAX_PEERS},
    FU32(mds_copyset, leader, "leader", 0),
    FU64(mds_copyset, epoch, "epoch"),
    FU64(mds_copyset, term, "term"),
};

static const struct {
    const char *name;
    const fdesc *fields;
    size_t nfields;
    size_t size;
} kinds[MDS_TOPO_NKINDS] = {
    [MDS_TOPO_PPOOL] = {"ppool", ppool_fields, CURVE_ARRAY_SIZE(ppool_fields), sizeof(mds_ppool)},
    [MDS_TOPO_ZONE] = {"zone", zone_fields, CURVE_ARRAY_SIZE(zone_fields), sizeof(mds_zone)},
    [MDS_TOPO_SERVER] = {"server", server_fields, CURVE_ARRAY_SIZE(server_fields),
                         sizeof(mds_server)},
    [MDS_TOPO_CS] = {"chunkserver", cs_fields, CURVE_ARRAY_SIZE(cs_fields),
                     sizeof(mds_chunkserver)},
    [MDS_TOPO_LPOOL] = {"lpool", lpool_fields, CURVE_ARRAY_SIZE(lpool_fields), sizeof(mds_lpool)},
    [MDS_TOPO_COPYSET] = {"copyset", copyset_fields, CURVE_ARRAY_SIZE(copyset_fields),
                          sizeof(mds_copyset)},
};

const char *mds_topo_kind_name(mds_topo_kind k)
{
    return (unsigned)k < MDS_TOPO_NKINDS ? kinds[k].name : "?";
}

int mds_topo_kind_parse(const char *s, mds_topo_kind *out)
{
    for (int k = 0; k < MDS_TOPO_NKINDS; k++) {
        if (strcmp(s, kinds[k].name) == 0) {
            *out = (mds_topo_kind)k;
            return 0;
        }
    }
    return -EINVAL;
}

int mds_topo_record_key(mds_topo_kind k, const void *rec, char *buf, size_t len)
{
    int n;
    CURVE_ASSERT((unsigned)k < MDS_TOPO_NKINDS);
    if (k == MDS_TOPO_COPYSET) {
        const mds_copyset *c = rec;
        n = snprintf(buf, len, "/curve/v1/copyset/%u/%u", c->pool_id, c->id);
    } else {
        n = snprintf(buf, len, "/curve/v1/topo/%s/%" PRIu64, kinds[k].name, key_u32(rec));
    }
    if (n < 0 || (size_t)n >= len)
        return -ENOSPC;
    return n;
}

json_t *mds_topo_record_to_json(mds_topo_kind k, const void *rec)
{
    CURVE_ASSERT((unsigned)k < MDS_TOPO_NKINDS);
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    const char *base = rec;
    for (size_t i = 0; i < kinds[k].nfields; i++) {
        const fdesc *f = &kinds[k].fields[i];
        const char *p = base + f->off;
        json_t *v = NULL;
        uint32_t u32;
        uint64_t u64;
        switch (f->type) {
        case F_U32:
            memcpy(&u32, p, sizeof(u32));
            v = json_integer(u32);
            break;
        case F_U64:
            memcpy(&u64, p, sizeof(u64));
            v = json_integer((json_int_t)u64);
            break;
        case F_STR:
            v = json_stringn(p, strnlen(p, f->size));
            break;
        case F_STATE: {
            mds_cs_state s;
            memcpy(&s, p, sizeof(s));
            v = json_string(mds_cs_state_name(s));
            break;
        }
        case F_BOOL: {
            bool b;
            memcpy(&b, p, sizeof(b));
            v = json_boolean(b);
            break;
        }
        case F_PEERS: {
            const mds_copyset *c = rec;
            v = json_array();
            for (uint32_t j = 0; v != NULL && j < c->npeers && j < MDS_MAX_PEERS; j++)
                if (json_array_append_new(v, json_integer(c->peers[j])) != 0)
                    goto err_after_object;
            break;
        }
        }
        if (v == NULL || json_object_set_new(o, f->name, v) != 0)
            goto err_after_object;
    }
    return o;

err_after_object:
    json_decref(o);
    return NULL;
}

static int field_from_json(const fdesc *f, const json_t *v, char *base, const char *kind,
                           char *err, size_t errlen)
{
    char *p = base + f->off;
    switch (f->type) {
    case F_U32:
    case F_U64: {
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            (uint64_t)json_integer_value(v) < f->min || (uint64_t)json_integer_value(v) > f->max)
            goto bad;
        uint64_t u = (uint64_t)json_integer_value(v);
        if (f->type == F_U32) {
            uint32_t u32 = (uint32_t)u;
            memcpy(p, &u32, sizeof(u32));
        } else {
            memcpy(p, &u, sizeof(u));
        }
        return 0;
    }
    case F_STR: {
        if (!json_is_string(v))
            goto bad;
        size_t n = json_string_length(v);
        const char *s = json_string_value(v);
        if (n == 0 || n >= f->size || strlen(s) != n)
            goto bad;
        memcpy(p, s, n + 1);
        return 0;
    }
    case F_STATE: {
        mds_cs_state s;
        if (!json_is_string(v) || cs_state_parse(json_string_value(v), &s) != 0)
            goto bad;
        memcpy(p, &s, sizeof(s));
        return 0;
    }
    case F_BOOL: {
        if (!json_is_boolean(v))
            goto bad;
        bool b = json_is_true(v);
        memcpy(p, &b, sizeof(b));
        return 0;
    }
    case F_PEERS: {
        mds_copyset *c = (mds_copyset *)base;
        size_t n = json_array_size(v);
        if (!json_is_array(v) || n < f->min || n > f->max)
            goto bad;
        for (size_t i = 0; i < n; i++) {
            const json_t *e = json_array_get(v, i);
            if (!json_is_integer(e) || json_integer_value(e) < 1 ||
                json_integer_value(e) > UINT32_MAX)
                goto bad;
            c->peers[i] = (uint32_t)json_integer_value(e);
        }
        c->npeers = (uint32_t)n;
        return 0;
    }
    }
bad:
    mds__errf(err, errlen, "%s record: field '%s' has a bad type or value", kind, f->name);
    return CURVE_ERR_CORRUPT;
}

int mds_topo_record_from_json(mds_topo_kind k, const json_t *j, void *rec, char *err,
                              size_t errlen)
{
    CURVE_ASSERT((unsigned)k < MDS_TOPO_NKINDS);
    memset(rec, 0, kinds[k].size);
    if (!json_is_object(j)) {
        mds__errf(err, errlen, "%s record: not a JSON object", kinds[k].name);
        return CURVE_ERR_CORRUPT;
    }
    if (json_object_size(j) != kinds[k].nfields) {
        /* Either a missing or an unknown field: find which for the message. */
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)j, key, val)
        {
            bool ok = false;
            for (size_t i = 0; i < kinds[k].nfields; i++)
                if (strcmp(kinds[k].fields[i].name, key) == 0)
                    ok = true;
            if (!ok) {
                mds__errf(err, errlen, "%s record: unknown field '%.64s'", kinds[k].name, key);
                return CURVE_ERR_CORRUPT;
            }
        }
    }
    for (size_t i = 0; i < kinds[k].nfields; i++) {
        const fdesc *f = &kinds[k].fields[i];
        const json_t *v = json_object_get(j, f->name);
        if (v == NULL) {
            mds__errf(err, errlen, "%s record: missing field '%s'", kinds[k].name, f->name);
            return CURVE_ERR_CORRUPT;
        }
        int rc = field_from_json(f, v, rec, kinds[k].name, err, errlen);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int mds_topo_load_record(mds_topology *t, mds_topo_kind k, const char *text, size_t len,
                         char *err, size_t errlen)
{
    union {
        mds_ppool p;
        mds_zone z;
        mds_server s;
        mds_chunkserver c;
        mds_lpool l;
        mds_copyset cs;
    } u;
    json_error_t jerr;
    if ((unsigned)k >= MDS_TOPO_NKINDS)
        return -EINVAL;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL) {
        mds__errf(err, errlen, "%s record: bad JSON: %s", kinds[k].name, jerr.text);
        return CURVE_ERR_CORRUPT;
    }
    int rc = mds_topo_record_from_json(k, j, &u, err, errlen);
    json_decref(j);
    if (rc != 0)
        return rc;
    switch (k) {
    case MDS_TOPO_PPOOL:
        return mds_topo_add_ppool(t, &u.p, err, errlen);
    case MDS_TOPO_ZONE:
        return mds_topo_add_zone(t, &u.z, err, errlen);
    case MDS_TOPO_SERVER:
        return mds_topo_add_server(t, &u.s, err, errlen);
    case MDS_TOPO_CS:
        return mds_topo_add_cs(t, &u.c, err, errlen);
    case MDS_TOPO_LPOOL:
        return mds_topo_add_lpool(t, &u.l, err, errlen);
    case MDS_TOPO_COPYSET:
        return mds_topo_add_copyset(t, &u.cs, err, errlen);
    default:
        break;
    }
    return -EINVAL;
}
