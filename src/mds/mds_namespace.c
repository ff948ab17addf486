/*
 * NamespaceService (proto/mds.proto, service 32) and the background purge.
 *
 * etcd is the source of truth for the namespace: every handler reads what it needs and changes
 * it with one fenced transaction whose compares pin what was read (create or mod revision), so
 * concurrent handlers and a failover never lose or duplicate an entry; a handler that lost a
 * race retries (MDS_RETRY_TXN) from the read.
 *
 * Keys (docs/mds.md "Daemon"):
 *   /curve/v1/ns/<parent id>/<name>     file record (namespace_rules.h)
 *   /curve/v1/dirid/<dir id>            the ns key of a directory (id -> path lookups)
 *   /curve/v1/seg/<file id>/<offset>    segment record
 *   /curve/v1/session/<file id>/<lease> open session, bound to an etcd lease
 *   /curve/v1/writer/<file id>          the current read-write session (docs/sessions.md)
 *   /curve/v1/ids/file, /curve/v1/ids/chunk  id high-water marks
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.pb-c.h"
#include "common/assert.h"
#include "common/clock.h"
#include "common/log.h"
#include "curve/errors.h"
#include "mds.pb-c.h"
#include "mds/mds_daemon.h"

#define MDS_DIRID_PREFIX MDS_PREFIX "dirid/"

/* A resolved entry: the record and where it is stored. */
typedef struct ns_ent {
    mds_file f;
    char key[MDS_KEY_MAX];
    int64_t create_rev, mod_rev; /* 0 for the root (not stored) */
} ns_ent;

static void ns_key(char *buf, size_t len, uint64_t parent, const char *name)
{
    snprintf(buf, len, MDS_NS_PREFIX "%" PRIu64 "/%s", parent, name);
}

static void root_ent(ns_ent *e)
{
    memset(e, 0, sizeof(*e));
    e->f.id = MDS_NS_ROOT_ID;
    e->f.type = MDS_FILE_DIR;
    snprintf(e->f.owner, sizeof(e->f.owner), "root");
}

/*
 * Entry cache: (parent id, name) -> record + revisions, direct-mapped, MDS_NSCACHE_MAX slots.
 * Only this leader writes the namespace (fenced txns) and every write path updates or drops
 * the entries it changes (rename and recover drop everything); a txn whose compares failed
 * also drops everything, so a stale entry costs at most one retry. Rules that keep it
 * coherent with concurrent handlers:
 *   - an entry never replaces one of the same key with a higher mod revision;
 *   - `gen` is bumped by every drop, and a value read from etcd is inserted only if no drop
 *     happened since the read started (a read racing a delete cannot resurrect the entry).
 */
typedef struct dc_slot {
    bool used;
    uint64_t parent;
    char name[MDS_NS_NAME_MAX + 1];
    mds_file f;
    int64_t create_rev, mod_rev;
} dc_slot;
static dc_slot *dc_slots;
static uint64_t dc_gen;
static pthread_mutex_t dc_mu = PTHREAD_MUTEX_INITIALIZER; /* protects dc_slots, dc_gen */

static size_t dc_hash(uint64_t parent, const char *name)
{
    uint64_t h = 1469598103934665603ull ^ parent;
    for (const char *p = name; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return (size_t)(h % MDS_NSCACHE_MAX);
}

static bool dc_lookup(uint64_t parent, const char *name, ns_ent *e, uint64_t *gen)
{
    bool hit = false;
    pthread_mutex_lock(&dc_mu);
    *gen = dc_gen;
    if (dc_slots) {
        dc_slot *s = &dc_slots[dc_hash(parent, name)];
        if (s->used && s->parent == parent && strcmp(s->name, name) == 0) {
            e->f = s->f;
            e->create_rev = s->create_rev;
            e->mod_rev = s->mod_rev;
            ns_key(e->key, sizeof(e->key), parent, name);
            hit = true;
        }
    }
    pthread_mutex_unlock(&dc_mu);
    return hit;
}

/* gen: the generation read before the etcd read, or UINT64_MAX after a successful write. */
static void dc_insert(uint64_t parent, const char *name, const ns_ent *e, uint64_t gen)
{
    pthread_mutex_lock(&dc_mu);
    if (!dc_slots)
        dc_slots = calloc(MDS_NSCACHE_MAX, sizeof(*dc_slots));
    if (dc_slots && (gen == UINT64_MAX || gen == dc_gen)) {
        dc_slot *s = &dc_slots[dc_hash(parent, name)];
        bool same = s->used && s->parent == parent && strcmp(s->name, name) == 0;
        if (!same || s->mod_rev <= e->mod_rev) {
            s->used = true;
            s->parent = parent;
            snprintf(s->name, sizeof(s->name), "%s", name);
            s->f = e->f;
            s->create_rev = e->create_rev;
            s->mod_rev = e->mod_rev;
        }
    }
    pthread_mutex_unlock(&dc_mu);
}

static void dc_remove(uint64_t parent, const char *name)
{
    pthread_mutex_lock(&dc_mu);
    dc_gen++;
    if (dc_slots) {
        dc_slot *s = &dc_slots[dc_hash(parent, name)];
        if (s->used && s->parent == parent && strcmp(s->name, name) == 0)
            s->used = false;
    }
    pthread_mutex_unlock(&dc_mu);
}

static void dc_clear(void)
{
    pthread_mutex_lock(&dc_mu);
    dc_gen++;
    if (dc_slots)
        memset(dc_slots, 0, sizeof(*dc_slots) * MDS_NSCACHE_MAX);
    pthread_mutex_unlock(&dc_mu);
}

void mds_ns_cache_clear(void)
{
    dc_clear();
}

/* Parent id and name of an ns key ("/curve/v1/ns/<parent>/<name>"). */
static const char *key_split(const char *key, uint64_t *parent)
{
    *parent = strtoull(key + strlen(MDS_NS_PREFIX), NULL, 10);
    const char *s = strrchr(key, '/');
    return s ? s + 1 : key;
}

static void dc_put_ent(const ns_ent *e)
{
    uint64_t parent;
    const char *name = key_split(e->key, &parent);
    dc_insert(parent, name, e, UINT64_MAX);
}

static void dc_drop_ent(const char *key)
{
    uint64_t parent;
    const char *name = key_split(key, &parent);
    dc_remove(parent, name);
}

/* Reads one entry. Returns 0, CURVE_ERR_NOT_FOUND, CURVE_ERR_CORRUPT or an etcd error. */
static int get_ent(mds_daemon *d, uint64_t parent, const char *name, ns_ent *e, char *err,
                   size_t errlen)
{
    uint64_t gen;
    if (dc_lookup(parent, name, e, &gen))
        return 0;
    ns_key(e->key, sizeof(e->key), parent, name);
    etcd_range_result r;
    int rc = etcd_get(mds_etcd(d), e->key, &r);
    if (rc < 0) {
        snprintf(err, errlen, "etcd: %s", etcd_last_error());
        return rc;
    }
    if (r.n_kvs == 0) {
        etcd_range_result_free(&r);
        return CURVE_ERR_NOT_FOUND;
    }
    rc = mds_file_decode((const uint8_t *)r.kvs[0].value, r.kvs[0].value_len, &e->f, err,
                         errlen);
    e->create_rev = r.kvs[0].create_revision;
    e->mod_rev = r.kvs[0].mod_revision;
    etcd_range_result_free(&r);
    if (rc < 0)
        CLOG_ERROR("mds: %s: %s", e->key, err);
    else
        dc_insert(parent, name, e, gen);
    return rc;
}

/* Resolves the first `n` components of `p`. */
static int resolve(mds_daemon *d, const mds_ns_path *p, size_t n, ns_ent *e, char *err,
                   size_t errlen)
{
    root_ent(e);
    for (size_t i = 0; i < n; i++) {
        if (e->f.type != MDS_FILE_DIR) {
            snprintf(err, errlen, "'%s' is not a directory", p->comp[i - 1]);
            return -ENOTDIR;
        }
        int rc = get_ent(d, e->f.id, p->comp[i], e, err, errlen);
        if (rc == CURVE_ERR_NOT_FOUND)
            snprintf(err, errlen, "'%s' does not exist", p->comp[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int resolve_path(mds_daemon *d, const char *path, mds_ns_path *p, ns_ent *e, char *err,
                        size_t errlen)
{
    int rc = mds_ns_parse_path(path, p, err, errlen);
    if (rc < 0)
        return rc;
    return resolve(d, p, p->n, e, err, errlen);
}

static void file_pb(const ns_ent *e, Curve__Mds__FileInfo *fi, const char *entry_name)
{
    curve__mds__file_info__init(fi);
    fi->id = e->f.id;
    fi->parent_id = e->f.parent_id;
    fi->name = (char *)(entry_name ? entry_name : e->f.name);
    fi->type = e->f.type == MDS_FILE_DIR ? CURVE__MDS__FILE_TYPE__FILE_DIR
                                         : CURVE__MDS__FILE_TYPE__FILE_VOLUME;
    fi->size = e->f.size;
    fi->segment_size = e->f.segment_size;
    fi->chunk_size = e->f.chunk_size;
    fi->ctime_ns = e->f.ctime_ns;
    fi->epoch = e->f.epoch;
    fi->owner = (char *)e->f.owner;
    fi->status = (char *)(e->f.status == MDS_FILE_DELETING ? "deleting" : "normal");
    if (entry_name && strcmp(entry_name, e->f.name) != 0)
        fi->original_name = (char *)e->f.name;
}

/* Last component of the key ("/curve/v1/ns/2/vol-17" -> "vol-17"). */
static const char *key_name(const char *key)
{
    const char *s = strrchr(key, '/');
    return s ? s + 1 : key;
}

static void reply_rc(mds_daemon *d, rpc_call_ctx *ctx, int rc, const char *what,
                     const char *err)
{
    if (rc == CURVE_ERR_NOT_LEADER || rc == CURVE_ERR_ETCD || rc == CURVE_ERR_TIMEOUT ||
        rc == -ECONNREFUSED)
        mds_reply_err(d, ctx, rc, "%s: %s%s%s", what, curve_strerror(rc), *err ? ": " : "", err);
    else
        mds_reply_err(d, ctx, rc, "%s: %s", what, *err ? err : curve_strerror(rc));
}

static int encode_put(const mds_file *f, uint8_t *buf, etcd_op *op, const char *key)
{
    int len = mds_file_encode(f, buf, MDS_FILE_REC_MAX);
    if (len < 0)
        return len;
    *op = (etcd_op){.type = ETCD_OP_PUT, .key = key, .value = buf, .value_len = (size_t)len};
    return 0;
}

/* Compare "key exists with create revision rev" (rev 0: root, no compare needed). */
static size_t cmp_exists(const ns_ent *e, etcd_compare *c)
{
    if (e->create_rev == 0)
        return 0;
    *c = (etcd_compare){.key = e->key, .target = ETCD_CMP_CREATE, .result = ETCD_CMP_EQUAL,
                        .number = e->create_rev};
    return 1;
}

/* ---- create (mkdir / volume) ---- */

static int do_create(mds_daemon *d, const char *path, const char *owner, mds_file_type type,
                     uint64_t size, ns_ent *out, char *err, size_t errlen)
{
    mds_ns_path p;
    int rc = mds_ns_parse_path(path, &p, err, errlen);
    if (rc < 0)
        return rc;
    if (p.n == 0) {
        snprintf(err, errlen, "'/' already exists");
        return CURVE_ERR_EXISTS;
    }
    if ((rc = mds_ns_check_owner(owner, err, errlen)) < 0)
        return rc;
    if (type == MDS_FILE_VOLUME && (rc = mds_ns_check_size(&d->sizes, size, err, errlen)) < 0)
        return rc;
    const char *name = p.comp[p.n - 1];
    for (int attempt = 0; attempt < MDS_RETRY_TXN; attempt++) {
        ns_ent parent;
        rc = resolve(d, &p, p.n - 1, &parent, err, errlen);
        if (rc < 0)
            return rc;
        if (parent.f.type != MDS_FILE_DIR) {
            snprintf(err, errlen, "parent of '%s' is not a directory", path);
            return -ENOTDIR;
        }
        if ((rc = mds_ns_check_create(parent.f.id, name, err, errlen)) < 0)
            return rc;
        uint64_t id;
        rc = mds_ids_take(d, MDS_IDS_FILE, &d->file_ids, 1, &id);
        if (rc < 0) {
            snprintf(err, errlen, "file id allocation failed");
            return rc;
        }
        ns_ent *e = out;
        memset(e, 0, sizeof(*e));
        ns_key(e->key, sizeof(e->key), parent.f.id, name);
        e->f = (mds_file){.id = id, .parent_id = parent.f.id, .type = type,
                          .status = MDS_FILE_NORMAL, .ctime_ns = curve_now_wall_ns()};
        snprintf(e->f.name, sizeof(e->f.name), "%s", name);
        snprintf(e->f.owner, sizeof(e->f.owner), "%s", owner);
        if (type == MDS_FILE_VOLUME) {
            e->f.size = size;
            e->f.segment_size = (uint32_t)d->sizes.segment_size;
            e->f.chunk_size = (uint32_t)d->sizes.chunk_size;
        }
        uint8_t buf[MDS_FILE_REC_MAX];
        etcd_compare c[2];
        size_t nc = cmp_exists(&parent, c);
        c[nc++] = (etcd_compare){.key = e->key, .target = ETCD_CMP_CREATE,
                                 .result = ETCD_CMP_EQUAL, .number = 0};
        etcd_op ops[2];
        size_t nops = 1;
        if ((rc = encode_put(&e->f, buf, &ops[0], e->key)) < 0)
            return rc;
        char dkey[MDS_KEY_MAX];
        if (type == MDS_FILE_DIR) {
            snprintf(dkey, sizeof(dkey), MDS_DIRID_PREFIX "%" PRIu64, id);
            ops[nops++] = (etcd_op){.type = ETCD_OP_PUT, .key = dkey, .value = e->key,
                                    .value_len = strlen(e->key)};
        }
        /* No failure branch: the hot path stays a plain conditional put (cheaper in etcd);
         * a failure is told apart by one read. */
        etcd_txn_result r;
        rc = mds_txn(d, c, nc, ops, nops, NULL, 0, &r);
        if (rc < 0)
            return rc;
        bool ok = r.succeeded;
        e->create_rev = e->mod_rev = r.revision;
        etcd_txn_result_free(&r);
        if (ok) {
            dc_put_ent(e);
            return 0;
        }
        etcd_range_result g;
        if ((rc = etcd_get(mds_etcd(d), e->key, &g)) < 0)
            return rc;
        bool exists = g.n_kvs > 0;
        etcd_range_result_free(&g);
        if (exists) {
            snprintf(err, errlen, "'%s' already exists", path);
            return CURVE_ERR_EXISTS;
        }
        /* The parent changed under us (or the fence failed): re-read. */
        dc_clear();
        if (!election_is_leader(d->el))
            return CURVE_ERR_NOT_LEADER;
    }
    snprintf(err, errlen, "'%s': too many concurrent changes", path);
    return CURVE_ERR_BUSY;
}

static void h_mkdir(mds_daemon *d, rpc_call_ctx *ctx, const ProtobufCMessage *m)
{
    const Curve__Mds__MkdirRequest *req = (const void *)m;
    char err[512] = "";
    ns_ent e;
    int rc = do_create(d, req->path, req->owner, MDS_FILE_DIR, 0, &e, err, sizeof(err));
    if (rc < 0)
        return reply_rc(d, ctx, rc, "mkdir", err);
    Curve__Mds__FileInfo fi;
    file_pb(&e, &fi, NULL);
    mds_reply_ok(d, ctx, &fi.base);
}

static void h_create(mds_daemon *d, rpc_call_ctx *ctx, const ProtobufCMessage *m)
{
    const Curve__Mds__CreateVolumeRequest *req = (const void *)m;
    char err[512] = "";
    ns_ent e;
    int rc = do_create(d, req->path, req->owner, MDS_FILE_VOLUME, req->size, &e, err,
                       sizeof(err));
    if (rc < 0)
        return reply_rc(d, ctx, rc, "create volume", err);
    Curve__Mds__FileInfo fi;
    file_pb(&e, &fi, NULL);
    mds_reply_ok(d, ctx, &fi.base);
}

static bool sess_maybe(uint64_t fid);

/* The file id of a session key "<MDS_SESSION_PREFIX><file id>/<lease id>". */
static uint64_t session_fid(const char *key)
{
    return strtoull(key + strlen(MDS_SESSION_PREFIX), NULL, 10);
}

/* Keys under `prefix`. `serializable`: read the local etcd member without a quorum round (the
 * count may lag by a moment; for informational counts, never for a decision). */
static int count_prefix(mds_daemon *d, const char *prefix, bool serializable, int64_t *count)
{
    etcd_range_req q = {
        .key = prefix, .prefix = true, .count_only = true, .serializable = serializable};
    etcd_range_result r;
    int rc = etcd_range(mds_etcd(d), &q, &r);
    if (rc == 0) {
        *count = r.count;
        etcd_range_result_free(&r);
    }
    return rc;
}

/* Sessions open on volume `fid` (0 without asking etcd when it never had one). */
static int open_count(mds_daemon *d, uint64_t fid, uint32_t *out)
{
    *out = 0;
    if (!sess_maybe(fid))
        return 0;
    char prefix[MDS_KEY_MAX];
    snprintf(prefix, sizeof(prefix), MDS_SESSION_PREFIX "%" PRIu64 "/", fid);
    int64_t n = 0;
    int rc = count_prefix(d, prefix, true, &n);
    if (rc == 0)
        *out = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    return rc;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Fills open_count of the volumes of a ListDir page: one keys-only, serializable read of every
 * session when one of them may have sessions (sessions are few: one per open volume and
 * client). When etcd cannot answer, the page goes out without counts (not an error). */
static int page_open_counts(mds_daemon *d, Curve__Mds__FileInfo *fis, size_t n)
{
    bool any = false;
    for (size_t i = 0; i < n; i++)
        if (fis[i].type == CURVE__MDS__FILE_TYPE__FILE_VOLUME)
            any = any || sess_maybe(fis[i].id);
    etcd_range_req q = {
        .key = MDS_SESSION_PREFIX, .prefix = true, .keys_only = true, .serializable = true};
    etcd_range_result r;
    if (any && etcd_range(mds_etcd(d), &q, &r) < 0)
        return 0; /* no counts */
    for (size_t i = 0; i < n; i++) {
        if (fis[i].type != CURVE__MDS__FILE_TYPE__FILE_VOLUME)
            continue;
        fis[i].has_open_count = true;
        fis[i].open_count = 0;
    }
    if (!any)
        return 0;
    uint64_t *fids = malloc((r.n_kvs + 1) * sizeof(uint64_t));
    if (!fids) {
        for (size_t i = 0; i < n; i++)
            fis[i].has_open_count = false;
        etcd_range_result_free(&r);
        return 0;
    }
    for (size_t k = 0; k < r.n_kvs; k++)
        fids[k] = session_fid(r.kvs[k].key);
    qsort(fids, r.n_kvs, sizeof(uint64_t), u64_cmp);
    for (size_t i = 0; i < n; i++) {
        if (!fis[i].has_open_count)
            continue;
        const uint64_t *hit = bsearch(&fis[i].id, fids, r.n_kvs, sizeof(uint64_t), u64_cmp);
        if (!hit)
            continue;
        while (hit > fids && hit[-1] == fis[i].id)
            hit--;
        uint32_t c = 0;
        for (; hit < fids + r.n_kvs && *hit == fis[i].id; hit++)
            c++;
        fis[i].open_count = c;
    }
    free(fids);
    etcd_range_result_free(&r);
    return 0;
}

static void h_stat(mds_daemon *d, rpc_call_ctx *ctx, const ProtobufCMessage *m)
{
    const Curve__Mds__PathRequest *req = (const void *)m;
    char err[512] = "";
    mds_ns_path p;
    ns_ent e;
    int rc = resolve_path(d, req->path, &p, &e, err, sizeof(err));
    if (rc < 0)
        return reply_rc(d, ctx, rc, "stat", err);
    Curve__Mds__FileInfo fi;
    file_pb(&e, &fi, p.n ? p.comp[p.n - 1] : "");
    /* an informational count: when etcd cannot answer it, the Stat still succeeds without */
    if (e.f.type == MDS_FILE_VOLUME && req->has_open_count && req->open_count &&
        open_count(d, e.f.id, &fi.open_count) == 0)
        fi.has_open_count = true;
    mds_reply_ok(d, ctx, &fi.base);
}

/* Reads one page of the keys under `prefix` (ending in '/'): names after `after` (NULL or "":
 * from the first), at most `limit`. On success *first is the index in r->kvs of the first
 * entry of the page, *n the page's size and *more tells that later keys exist. */
static int ns_page(mds_daemon *d, const char *prefix, const char *after, size_t limit,
                   etcd_range_result *r, size_t *first, size_t *n, bool *more)
{
    char key[MDS_KEY_MAX], end[MDS_KEY_MAX];
    bool skip_after = after && *after;
    size_t pl = strlen(prefix);
    CURVE_ASSERT(pl > 0 && prefix[pl - 1] == '/' && limit > 0);
    if (snprintf(key, sizeof(key), "%s%s", prefix, skip_after ? after : "") >= (int)sizeof(key))
        return -ENAMETOOLONG;
    (void)etcd_prefix_end(prefix, end); /* every key starting with `prefix` is < end */
    etcd_range_req q = {
        .key = key, .range_end = end, .limit = (int64_t)(limit + (skip_after ? 1 : 0))};
    int rc = etcd_range(mds_etcd(d), &q, r);
    if (rc < 0)
        return rc;
    *first = skip_after && r->n_kvs > 0 && strcmp(r->kvs[0].key, key) == 0 ? 1 : 0;
    *n = r->n_kvs - *first;
    *more = r->more;
    if (*n > limit) { /* `after` itself was gone: one entry more than the page */
        *n = limit;
        *more = true;
    }
    return 0;
}

/* The largest page fits one RPC reply whatever the names: name (<= 255 + "-<id>"), original
 * name (255), owner (64), status and the numbers stay below MDS_LIST_ENTRY_MAX_BYTES. */
CURVE_STATIC_ASSERT(MDS_NS_NAME_MAX + 21 + MDS_NS_NAME_MAX + MDS_NS_OWNER_MAX + 16 + 12 * 11 <
                        MDS_LIST_ENTRY_MAX_BYTES,
                    "a ListDir entry stays below its bound");
CURVE_STATIC_ASSERT((uint64_t)MDS_LIST_PAGE_MAX * MDS_LIST_ENTRY_MAX_BYTES < RPC_FRAME_BODY_MAX_DEFAULT,
                    "the largest ListDir page fits one RPC reply");

static void h_listdir(mds_daemon *d, rpc_call_ctx *ctx, const ProtobufCMessage *m)
{
    const Curve__Mds__ListDirRequest *req = (const void *)m;
    char err[512] = "";
    const char *after = req->start_after ? req->start_after : "";
    if (strchr(after, '/') || strlen(after) > MDS_NS_NAME_MAX + 32)
        return mds_reply_err(d, ctx, -EINVAL,
                             "list: start_after must be an entry name (no '/', <= %d bytes)",
                             MDS_NS_NAME_MAX + 32);
    size_t limit = req->has_limit && req->limit ? req->limit : MDS_LIST_PAGE_DEFAULT;
    if (limit > MDS_LIST_PAGE_MAX)
        limit = MDS_LIST_PAGE_MAX;
    mds_ns_path p;
    ns_ent dir;
    int rc = resolve_path(d, req->path, &p, &dir, err, sizeof(err));
    if (rc < 0)
        return reply_rc(d, ctx, rc, "list", err);
    if (dir.f.type != MDS_FILE_DIR)
        return mds_reply_err(d, ctx, -ENOTDIR, "list: '%s' is not a directory", req->path);
    char prefix[MDS_KEY_MAX];
    snprintf(prefix, sizeof(prefix), MDS_NS_PREFIX "%" PRIu64 "/", dir.f.id);
    etcd_range_result r;
    size_t first = 0, npage = 0;
    bool more = false;
    rc = ns_page(d, prefix, after, limit, &r, &first, &npage, &more);
    if (rc < 0)
        return reply_rc(d, ctx, rc, "list",
                        rc == -ENAMETOOLONG ? "start_after too long" : etcd_last_error());
    ns_ent *ents = calloc(npage + 1, sizeof(ns_ent));
    Curve__Mds__FileInfo *fis = calloc(npage + 1, sizeof(*fis));
    Curve__Mds__FileInfo **pfis = calloc(npage + 1, sizeof(*pfis));
    if (!ents || !fis || !pfis) {
        mds_reply_err(d, ctx, -ENOMEM, "list: out of memory");
        goto out;
    }
    size_t n = 0;
    for (size_t i = first; i < first + npage; i++) {
        if (mds_file_decode((const uint8_t *)r.kvs[i].value, r.kvs[i].value_len, &ents[n].f,
                            err, sizeof(err)) < 0) {
            CLOG_ERROR("mds: %s: %s (skipped in list)", r.kvs[i].key, err);
            continue;
        }
        snprintf(ents[n].key, sizeof(ents[n].key), "%s", r.kvs[i].key);
        file_pb(&ents[n], &fis[n], key_name(ents[n].key));
        pfis[n] = &fis[n];
        n++;
    }
    (void)page_open_counts(d, fis, n);
    Curve__Mds__ListDirResponse resp = CURVE__MDS__LIST_DIR_RESPONSE__INIT;
    resp.n_entries = n;
    resp.entries = pfis;
    resp.has_more = true;
    resp.more = more;
    char last[MDS_KEY_MAX];
    if (npage > 0) {
        snprintf(last, sizeof(last), "%s", key_name(r.kvs[first + npage - 1].key));
        resp.last_name = last;
    }
    mds_reply_ok(d, ctx, &resp.base);
out:
    free(ents);
    free(fis);
    free(pfis);
    etcd_range_result_free(&r);
}

/* ---- rename ---- */

static int do_rename(mds_daemon *d, const char *from, const char *to, char *err, size_t errlen)
{
    mds_ns_path pf, pt;
    int rc = mds_ns_parse_path(from, &pf, err, errlen);
    if (rc == 0)
        rc = mds_ns_parse_path(to, &pt, err, errlen);
    if (rc == 0)
        rc = mds_ns_check_rename(&pf, &pt, err, errlen);
    if (rc < 0)
        return rc;
    for (int attempt = 0; attempt < MDS_RETRY_TXN; attempt++) {
        ns_ent src, dparent;
        if ((rc = resolve(d, &pf, pf.n, &src, err, errlen)) < 0)
            return rc;
        if ((rc = resolve(d, &pt, pt.n - 1, &dparent, err, errlen)) < 0)
            return rc;
        if (dparent.f.type != MDS_FILE_DIR) {
            snprintf(err, errlen, "parent of '%s' is not a directory", to);
            return -ENOTDIR;
        }
        const char *name = pt.comp[pt.n - 1];
        if ((rc = mds_ns_check_create(dparent.f.id, name, err, errlen)) < 0)
            return rc;
        if (src.f.parent_id == dparent.f.id && strcmp(src.f.name, name) == 0)
            return 0; /* same place */
        mds_file nf = src.f;
        nf.parent_id = dparent.f.id;
        snprintf(nf.name, sizeof(nf.name), "%s", name);
        char dkey[MDS_KEY_MAX], idkey[MDS_KEY_MAX];
        ns_key(dkey, sizeof(dkey), dparent.f.id, name);
        uint8_t buf[MDS_FILE_REC_MAX];
        etcd_compare c[3];
        size_t nc = cmp_exists(&dparent, c);
        c[nc++] = (etcd_compare){.key = src.key, .target = ETCD_CMP_MOD,
                                 .result = ETCD_CMP_EQUAL, .number = src.mod_rev};
        c[nc++] = (etcd_compare){.key = dkey, .target = ETCD_CMP_CREATE,
                                 .result = ETCD_CMP_EQUAL, .number = 0};
        etcd_op ops[3];
        ops[0] = (etcd_op){.type = ETCD_OP_DELETE, .key = src.key};
        if ((rc = encode_put(&nf, buf, &ops[1], dkey)) < 0)
            return rc;
        size_t nops = 2;
        if (nf.type == MDS_FILE_DIR) {
            snprintf(idkey, sizeof(idkey), MDS_DIRID_PREFIX "%" PRIu64, nf.id);
            ops[nops++] = (etcd_op){.type = ETCD_OP_PUT, .key = idkey, .value = dkey,
                                    .value_len = strlen(dkey)};
        }
        etcd_op probe = {.type = ETCD_OP_RANGE, .key = dkey};
        etcd_txn_result r;
        rc = mds_txn(d, c, nc, ops, nops, &probe, 1, &r);
        if (rc < 0)
            return rc;
        bool ok = r.succeeded;
        bool exists = !ok && r.n_results == 1 && r.results[0].range.n_kvs > 0;
        etcd_txn_result_free(&r);
        dc_clear(); /* the source may be a directory; or the compares failed */
        if (ok)
            return 0;
        if (exists) {
            snprintf(err, errlen, "'%s' already exists", to);
            return CURVE_ERR_EXISTS;
        }
        if (!election_is_leader(d->el))
            return CURVE_ERR_NOT_LEADER;
    }
    snprintf(err, errlen, "rename '%s': too many concurrent changes", from);
    return CURVE_ERR_BUSY;
}

static void h_rename(mds_daemon *d, rpc_call_ctx *ctx, const ProtobufCMessage *m)
{
    const Curve__Mds__RenameRequest *req = (const void *)m;
    char err[512] = "";
    int rc = do_rename(d, req->from, req->to, err, sizeof(err));
    if (rc < 0)
        return reply_rc(d, ctx, rc, "rename", err);
    Curve__Mds__Empty e = CURVE__MDS__EMPTY__INIT;
    mds_reply_ok(d, ctx, &e.base);
}

/* ---- single-record updates (extend, purge mark) ---- */

static int update_rec(mds_daemon *d, ns_ent *e, etcd_op *extra, size_t nextra)
{
    uint8_t buf[MDS_FILE_REC_MAX];
    etcd_op ops[4];
    CURVE_ASSERT(nextra <= 3);
    int rc = encode_put(&e->f, buf, &ops[0], e->key);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < nextra; i++)
        ops[1 + i] = extra[i];
    etcd_compare c = {.key = e->key, .target = ETCD_CMP_MOD, .result = ETCD_CMP_EQUAL,
                      .number = e->mod_rev};
    etcd_txn_result r;
    rc = mds_txn(d, &c, 1, ops, 1 + nextra, NULL, 0, &r);
    if (rc < 0)
        return rc;
    bool ok = r.succeeded;
    if (ok) {
        e->mod_rev = r.revision;
        dc_put_ent(e);
    } else {
        dc_clear();
    }
    etcd_txn_result_free(&r);
    if (!ok && !election_is_leader(d->el))
        return CURVE_ERR_NOT_LEADER;
    return ok ? 0 : -EAGAIN;
}

static void h_extend(mds_daemon *d, rpc_call_ctx *ctx, const ProtobufCMessage *m)
{
    const Curve__Mds__ExtendRequest *req = (const void *)m;
    char err[512] = "";
    mds_ns_path p;
    ns_ent e;
    int rc = -EAGAIN;
    for (int attempt = 0; attempt < MDS_RETRY_TXN && rc == -EAGAIN; attempt++) {
        if ((rc = resolve_path(d, req->path, &p, &e, err, sizeof(err))) < 0)
            break;
        if (e.f.type != MDS_FILE_VOLUME) {
            snprintf(err, sizeof(err), "'%s' is not a volume", req->path);
            rc = CURVE_ERR_INVALID_REQUEST;
            break;
        }
        if ((rc = mds_ns_check_extend(&d->sizes, e.f.size, req->size, err, sizeof(err))) < 0)
            break;
        if (e.f.size == req->size)
            break;
        e.f.size = req->size;
        rc = update_rec(d, &e, NULL, 0);
    }
    if (rc == -EAGAIN)
        rc = CURVE_ERR_BUSY;
    if (rc < 0)
        return reply_rc(d, ctx, rc, "extend", err);
    Curve__Mds__FileInfo fi;
    file_pb(&e, &fi, NULL);
    mds_reply_ok(d, ctx, &fi.base);
}

/*
 * Files that may have sessions. Every session is created by the leader (fenced txn), so a file
 * absent from this set has none: Delete then skips the etcd count. The set only grows (closed
 * or expired sessions leave their file in it: the count in etcd decides then); on takeover it
 * is loaded from /curve/v1/session/. When it is full, or the load failed, every Delete asks
 * etcd.
 */
static uint64_t *sess_set;      /* open addressing, 0 = empty slot */
static size_t sess_n;
static bool sess_unknown = true; /* until loaded */
static pthread_mutex_t sess_mu = PTHREAD_MUTEX_INITIALIZER; /* protects sess_* */

static void sess_add_locked(uint64_t fid)
{
    if (!sess_set)
        sess_set = calloc(MDS_SESSION_FILES_MAX, sizeof(uint64_t));
    if (!sess_set || sess_n >= MDS_SESSION_FILES_MAX / 2) {
        sess_unknown = true;
        return;
    }
    size_t i = (size_t)((fid * 0x9E3779B97F4A7C15ull) % MDS_SESSION_FILES_MAX);
    while (sess_set[i] && sess_set[i] != fid)
        i = (i + 1) % MDS_SESSION_FILES_MAX;
    if (!sess_set[i]) {
        sess_set[i] = fid;
        sess_n++;
    }
}

static void sess_add(uint64_t fid)
{
    pthread_mutex_lock(&sess_mu);
    sess_add_locked(fid);
    pthread_mutex_unlock(&sess_mu);
}

static bool sess_maybe(uint64_t fid)
{
    bool maybe = true;
    pthread_mutex_lock(&sess_mu);
    if (!sess_unknown && sess_set) {
        size_t i = (size_t)((fid * 0x9E3779B97F4A7C15ull) % MDS_SESSION_FILES_MAX);
        while (sess_set[i] && sess_set[i] != fid)
            i = (i + 1) % MDS_SESSION_FILES_MAX;
        maybe = sess_set[i] == fid;
    } else if (!sess_unknown) {
        maybe = false;
    }
    pthread_mutex_unlock(&sess_mu);
    return maybe;
}

int mds_ns_sessions_load(mds_daemon *d)
{
    etcd_range_req q = {.key = MDS_SESSION_PREFIX, .prefix = true, .keys_only = true};
    etcd_range_result r;
    int rc = etcd_range(mds_etcd(d), &q, &r);
    pthread_mutex_lock(&sess_mu);
    if (sess_set)
        memset(sess_set, 0, MDS_SESSION_FILES_MAX * sizeof(uint64_t));
    sess_n = 0;
    sess_unknown = rc < 0;
    for (size_t i = 0; rc == 0 && i < r.n_kvs; i++)
        sess_add_locked(session_fid(r.kvs[i].key));
    pthread_mutex_unlock(&sess_mu);
    if (rc == 0)
        etcd_range_result_free(&r);
    return rc;
}

/* ---- delete / recover / purge ---- */

static int do_delete(mds_daemon *d, const char *path, char *err, size_t errlen)
{
    mds_ns_path p;
    ns_ent e;
    for (int attempt = 0; attempt < MDS_RETRY_TXN; attempt++) {
        int rc = resolve_path(d, path, &p, &e, err, errlen);
        if (rc < 0)
            return rc;
        if (p.n == 0 || e.f.id == MDS_RECYCLE_ID) {
            snprintf(err, errlen, "'%s' cannot be deleted", path);
            return CURVE_ERR_PERMISSION;
        }
        char prefix[MDS_KEY_MAX];
        int64_t count = 0;
        if (e.f.type == MDS_FILE_DIR) {
            snprintf(prefix, sizeof(prefix), MDS_NS_PREFIX "%" PRIu64 "/", e.f.id);
            if ((rc = count_prefix(d, prefix, false, &count)) < 0)
                return rc;
            if (count > 0) {
                snprintf(err, errlen, "directory '%s' is not empty (%" PRId64 " entries)",
                         path, count);
                return CURVE_ERR_NOT_EMPTY;
            }
            char idkey[MDS_KEY_MAX];
            snprintf(idkey, sizeof(idkey), MDS_DIRID_PREFIX "%" PRIu64, e.f.id);
            /* "still empty" is part of the txn: an entry created in the directory after the
             * count above makes it fail (then the count reports it). */
            etcd_compare c[2] = {
                {.key = e.key, .target = ETCD_CMP_MOD, .result = ETCD_CMP_EQUAL,
                 .number = e.mod_rev},
                {.key = prefix, .prefix = true, .target = ETCD_CMP_CREATE,
                 .result = ETCD_CMP_EQUAL, .number = 0},
            };
            etcd_op ops[2] = {{.type = ETCD_OP_DELETE, .key = e.key},
                              {.type = ETCD_OP_DELETE, .key = idkey}};
            etcd_txn_result r;
            if ((rc = mds_txn(d, c, 2, ops, 2, NULL, 0, &r)) < 0)
                return rc;
            bool ok = r.succeeded;
            etcd_txn_result_free(&r);
            dc_clear(); /* deleted, or the compare failed */
            if (ok)
                return 0;
            continue;
        }
        if (e.f.parent_id == MDS_RECYCLE_ID) {
            snprintf(err, errlen, "'%s' is in the recycle bin: purge it instead", path);
            return CURVE_ERR_PERMISSION;
        }
        snprintf(prefix, sizeof(prefix), MDS_SESSION_PREFIX "%" PRIu64 "/", e.f.id);
        if ((attempt > 0 || sess_maybe(e.f.id)) &&
            (rc = count_prefix(d, prefix, false, &count)) < 0)
            return rc;
        if (count > 0) {
            snprintf(err, errlen, "volume '%s' is open (%" PRId64 " sessions)", path, count);
            return CURVE_ERR_BUSY;
        }
        char rname[MDS_NS_NAME_MAX + 1], rkey[MDS_KEY_MAX];
        if (mds_ns_recycle_name(e.f.name, e.f.id, rname, sizeof(rname)) < 0)
            return -ENAMETOOLONG;
        ns_key(rkey, sizeof(rkey), MDS_RECYCLE_ID, rname);
        /* The record keeps its original parent and name: Recover puts it back there. */
        uint8_t buf[MDS_FILE_REC_MAX];
        etcd_op ops[2] = {{.type = ETCD_OP_DELETE, .key = e.key}};
        if ((rc = encode_put(&e.f, buf, &ops[1], rkey)) < 0)
            return rc;
        /* "no open session" is part of the txn: an Open that wins the race makes it fail
         * (then the count above reports the session). */
        etcd_compare c[2] = {
            {.key = e.key, .target = ETCD_CMP_MOD, .result = ETCD_CMP_EQUAL,
             .number = e.mod_rev},
            {.key = prefix, .prefix = true, .target = ETCD_CMP_CREATE,
             .result = ETCD_CMP_EQUAL, .number = 0},
        };
        etcd_txn_result r;
        if ((rc = mds_txn(d, c, 2, ops, 2, NULL, 0, &r)) < 0)
            return rc;
        bool ok = r.succeeded;
        etcd_txn_result_free(&r);
        if (ok) {
            dc_drop_ent(e.key);
            return 0;
        }
        dc_clear();
        if (!election_is_leader(d->el))
            return CURVE_ERR_NOT_LEADER;
    }
    snprintf(err, errlen, "delete '%s': too many concurrent changes", path);
    return CURVE_ERR_BUSY;
}

static void h_delete(mds_daemon *d, rpc_call_ctx *ctx, const ProtobufCMessage *m)
{
    const Curve__Mds__PathRequest *req = (const void *)m;
    char err[512] = "";
    int rc = do_delete(d, req->path, err, sizeof(err));
    if (rc < 0)
        return reply_rc(d, ctx, rc, "delete", err);
    Curve__Mds__Empty e = CURVE__MDS__EMPTY__INIT;
    mds_reply_ok(d, ctx, &e.base);
}

static int recycle_ent(mds_daemon *d, const char *path, ns_ent *e, char *err, size_t errlen)
{
    mds_ns_path p;
    int rc = resolve_path(d, path, &p, e, err, errlen);
    if (rc < 0)
        return rc;
    if (p.n != 2 || strcmp(p.comp[0], MDS_NS_RECYCLE_BIN) != 0 ||
        e->f.type != MDS_FILE_VOLUME) {
        snprintf(err, errlen, "'%s' is not a volume in /%s", path, MDS_NS_RECYCLE_BIN);
        return CURVE_ERR_INVALID_REQUEST;
    }
    return 0;
}

static int do_recover(mds_daemon *d, const char *path, ns_ent *out, char *err, size_t errlen)
{
    for (int attempt = 0; attempt < MDS_RETRY_TXN; attempt++) {
        ns_ent e, parent;
        int rc = recycle_ent(d, path, &e, err, errlen);
        if (rc < 0)
            return rc;
        if (e.f.status == MDS_FILE_DELETING) {
            snprintf(err, errlen, "'%s' is being purged", path);
            return CURVE_ERR_BUSY;
        }
        root_ent(&parent);
        if (e.f.parent_id != MDS_NS_ROOT_ID) {
            /* The original directory, by id. */
            char idkey[MDS_KEY_MAX];
            snprintf(idkey, sizeof(idkey), MDS_DIRID_PREFIX "%" PRIu64, e.f.parent_id);
            etcd_range_result g;
            if ((rc = etcd_get(mds_etcd(d), idkey, &g)) < 0)
                return rc;
            char pkey[MDS_KEY_MAX] = "";
            if (g.n_kvs == 1)
                snprintf(pkey, sizeof(pkey), "%.*s", (int)g.kvs[0].value_len, g.kvs[0].value);
            etcd_range_result_free(&g);
            const char *slash = strrchr(pkey, '/');
            uint64_t gp = slash ? strtoull(pkey + strlen(MDS_NS_PREFIX), NULL, 10) : 0;
            rc = slash ? get_ent(d, gp, slash + 1, &parent, err, errlen) : CURVE_ERR_NOT_FOUND;
            if (rc == CURVE_ERR_NOT_FOUND || (rc == 0 && parent.f.id != e.f.parent_id)) {
                snprintf(err, errlen, "the original directory (id %" PRIu64 ") of '%s' is gone",
                         e.f.parent_id, path);
                return CURVE_ERR_NOT_FOUND;
            }
            if (rc < 0)
                return rc;
        }
        char dkey[MDS_KEY_MAX];
        ns_key(dkey, sizeof(dkey), e.f.parent_id, e.f.name);
        etcd_compare c[3];
        size_t nc = cmp_exists(&parent, c);
        c[nc++] = (etcd_compare){.key = e.key, .target = ETCD_CMP_MOD, .result = ETCD_CMP_EQUAL,
                                 .number = e.mod_rev};
        c[nc++] = (etcd_compare){.key = dkey, .target = ETCD_CMP_CREATE,
                                 .result = ETCD_CMP_EQUAL, .number = 0};
        uint8_t buf[MDS_FILE_REC_MAX];
        etcd_op ops[2] = {{.type = ETCD_OP_DELETE, .key = e.key}};
        if ((rc = encode_put(&e.f, buf, &ops[1], dkey)) < 0)
            return rc;
        etcd_op probe = {.type = ETCD_OP_RANGE, .key = dkey};
        etcd_txn_result r;
        if ((rc = mds_txn(d, c, nc, ops, 2, &probe, 1, &r)) < 0)
            return rc;
        bool ok = r.succeeded;
        bool exists = !ok && r.n_results == 1 && r.results[0].range.n_kvs > 0;
        etcd_txn_result_free(&r);
        dc_clear();
        if (ok) {
            *out = e;
            snprintf(out->key, sizeof(out->key), "%s", dkey);
            return 0;
        }
        if (exists) {
            snprintf(err, errlen, "'%s' cannot be recovered: its name '%s' is taken again", path,
                     e.f.name);
            return CURVE_ERR_EXISTS;
        }
        if (!election_is_leader(d->el))
            return CURVE_ERR_NOT_LEADER;
    }
    snprintf(err, errlen, "recover '%s': too many concurrent changes", path);
    return CURVE_ERR_BUSY;
}

static void h_recover(mds_daemon *d, rpc_call_ctx *ctx, const ProtobufCMessage *m)
{
    const Curve__Mds__RecoverRequest *req = (const void *)m;
    char err[512] = "";
    ns_ent e;
    int rc = do_recover(d, req->path, &e, err, sizeof(err));
    if (rc < 0)
        return reply_rc(d, ctx, rc, "recover", err);
    Curve__Mds__FileInfo fi;
    file_pb(&e, &fi, NULL);
    mds_reply_ok(d, ctx, &fi.base);
}

static void h_purge(mds_daemon *d, rpc_call_ctx *ctx, const ProtobufCMessage *m)
{
    const Curve__Mds__PathRequest *req = (const void *)m;
    char err[512] = "";
    ns_ent e;
    int rc = -EAGAIN;
    for (int attempt = 0; attempt < MDS_RETRY_TXN && rc == -EAGAIN; attempt++) {
        if ((rc = recycle_ent(d, req->path, &e, err, sizeof(err))) < 0)
            break;
        if (e.f.status == MDS_FILE_DELETING)
            break; /* already marked: idempotent */
        e.f.status = MDS_FILE_DELETING;
        rc = update_rec(d, &e, NULL, 0);
    }
    if (rc == -EAGAIN)
        rc = CURVE_ERR_BUSY;
    if (rc < 0)
        return reply_rc(d, ctx, rc, "purge", err);
    pthread_mutex_lock(&d->bg_mu);
    pthread_cond_signal(&d->bg_cv); /* start purging now */
    pthread_mutex_unlock(&d->bg_mu);
    Curve__Mds__Empty em = CURVE__MDS__EMPTY__INIT;
    mds_reply_ok(d, ctx, &em.base);
}

/* ---- sessions ---- */

static void session_key(char *buf, size_t len, uint64_t fid, int64_t lease)
{
    snprintf(buf, len, MDS_SESSION_PREFIX "%" PRIu64 "/%016" PRIx64, fid, (uint64_t)lease);
}

static void writer_key(char *buf, size_t len, uint64_t fid)
{
    snprintf(buf, len, MDS_WRITER_PREFIX "%" PRIu64, fid);
}

/*
 * One attempt at a read-write, non-exclusive open (docs/sessions.md): "no current writer" (or
 * "the writer record is still the one we saw", when it is our own orphan) is a compare of the
 * same txn that creates the session, so of two racing openers exactly one wins. Unless it
 * re-establishes an expired session (`reopen`), the open also bumps the volume epoch, like an
 * exclusive one: the previous writer's session may have expired while that client is still
 * alive and writing (clients keep their IO going without MDS contact), and the new epoch is
 * what fences it at the chunkservers. A re-open keeps the epoch; the client accepts it only if
 * the epoch is still its own.
 * Returns 0, -EAGAIN (retry from the read), -EBUSY, or an etcd error. *wmod / *orphan carry
 * what an earlier attempt saw.
 */
static int open_shared(mds_daemon *d, ns_ent *e, const char *token, bool reopen,
                       const etcd_op *sput, int64_t lease, int64_t *wmod, int64_t *orphan,
                       char *err, size_t errlen)
{
    char wkey[MDS_KEY_MAX], wval[MDS_WRITER_REC_MAX];
    writer_key(wkey, sizeof(wkey), e->f.id);
    int n = mds_ns_writer_encode(lease, token, wval, sizeof(wval));
    if (n < 0)
        return n;
    etcd_compare c[2];
    size_t nc = 0;
    etcd_op ops[3];
    size_t nops = 0;
    uint8_t rec[MDS_FILE_REC_MAX];
    if (reopen) {
        nc = cmp_exists(e, c);
    } else {
        c[nc++] = (etcd_compare){.key = e->key, .target = ETCD_CMP_MOD,
                                 .result = ETCD_CMP_EQUAL, .number = e->mod_rev};
        e->f.epoch++;
        int rc = encode_put(&e->f, rec, &ops[nops++], e->key);
        if (rc < 0)
            return rc;
    }
    c[nc++] = (etcd_compare){.key = wkey, .target = *wmod ? ETCD_CMP_MOD : ETCD_CMP_CREATE,
                             .result = ETCD_CMP_EQUAL, .number = *wmod};
    ops[nops++] = *sput;
    ops[nops++] = (etcd_op){.type = ETCD_OP_PUT, .key = wkey, .value = wval,
                            .value_len = (size_t)n, .lease = lease};
    etcd_op probe = {.type = ETCD_OP_RANGE, .key = wkey};
    etcd_txn_result r;
    int rc = mds_txn(d, c, nc, ops, nops, &probe, 1, &r);
    if (rc < 0)
        return rc;
    if (r.succeeded) {
        if (!reopen) {
            e->mod_rev = r.revision;
            dc_put_ent(e);
        }
        etcd_txn_result_free(&r);
        return 0;
    }
    rc = -EAGAIN; /* the file changed, or the fence: re-read */
    if (r.n_results == 1 && r.results[0].range.n_kvs == 1) {
        const etcd_kv *kv = &r.results[0].range.kvs[0];
        int64_t old = 0;
        int k = mds_ns_writer_conflict(kv->value, kv->value_len, token, lease, &old, err, errlen);
        if (k == 1 && kv->mod_revision != *wmod) {
            *wmod = kv->mod_revision; /* our own orphan: take it over on the next attempt */
            *orphan = old;
        } else if (k != 1) {
            rc = -EBUSY;
        }
    } else {
        *wmod = 0;
    }
    if (rc == -EAGAIN)
        dc_clear(); /* the record may have changed behind the cache */
    etcd_txn_result_free(&r);
    return rc;
}

static void h_open(mds_daemon *d, rpc_call_ctx *ctx, const ProtobufCMessage *m)
{
    const Curve__Mds__OpenRequest *req = (const void *)m;
    char err[512] = "";
    mds_open_mode mode;
    int rc = mds_ns_open_mode(req->has_exclusive && req->exclusive,
                              req->has_read_only && req->read_only, &mode, err, sizeof(err));
    if (rc == 0)
        rc = mds_ns_check_token(req->client_token, err, sizeof(err));
    if (rc < 0)
        return reply_rc(d, ctx, rc, "open", err);
    int64_t lease = 0;
    rc = etcd_lease_grant(mds_etcd(d), (d->session_lease_ms + 999) / 1000, 0, &lease, NULL);
    if (rc < 0)
        return reply_rc(d, ctx, rc, "open", etcd_last_error());
    mds_ns_path p;
    ns_ent e;
    int64_t wmod = 0, orphan = 0;
    rc = -EAGAIN;
    for (int attempt = 0; attempt < MDS_RETRY_TXN && rc == -EAGAIN; attempt++) {
        if ((rc = resolve_path(d, req->path, &p, &e, err, sizeof(err))) < 0)
            break;
        if (e.f.type != MDS_FILE_VOLUME || e.f.parent_id == MDS_RECYCLE_ID) {
            snprintf(err, sizeof(err), "'%s' is not an open-able volume", req->path);
            rc = CURVE_ERR_INVALID_REQUEST;
            break;
        }
        char skey[MDS_KEY_MAX];
        session_key(skey, sizeof(skey), e.f.id, lease);
        sess_add(e.f.id); /* before the session exists */
        const char *v = mds_ns_open_mode_name(mode);
        etcd_op sput = {.type = ETCD_OP_PUT, .key = skey, .value = v, .value_len = strlen(v),
                        .lease = lease};
        if (mode == MDS_OPEN_EXCLUSIVE) {
            /* Fences older writers (DESIGN §7) and becomes the current writer. */
            char wkey[MDS_KEY_MAX], wval[MDS_WRITER_REC_MAX];
            writer_key(wkey, sizeof(wkey), e.f.id);
            int n = mds_ns_writer_encode(lease, req->client_token, wval, sizeof(wval));
            if (n < 0) {
                rc = n;
                break;
            }
            etcd_op extra[2] = {sput, {.type = ETCD_OP_PUT, .key = wkey, .value = wval,
                                       .value_len = (size_t)n, .lease = lease}};
            e.f.epoch++;
            rc = update_rec(d, &e, extra, 2);
        } else if (mode == MDS_OPEN_SHARED) {
            rc = open_shared(d, &e, req->client_token, req->has_reopen && req->reopen, &sput,
                             lease, &wmod, &orphan, err, sizeof(err));
        } else {
            etcd_compare c;
            size_t nc = cmp_exists(&e, &c);
            etcd_txn_result r;
            if ((rc = mds_txn(d, &c, nc, &sput, 1, NULL, 0, &r)) < 0)
                break;
            rc = r.succeeded ? 0 : -EAGAIN;
            etcd_txn_result_free(&r);
        }
        if (rc == -EAGAIN && !election_is_leader(d->el))
            rc = CURVE_ERR_NOT_LEADER;
    }
    if (rc < 0) {
        etcd_lease_revoke(mds_etcd(d), lease);
        if (rc == -EAGAIN)
            rc = CURVE_ERR_BUSY;
        if (rc == -EBUSY)
            curve_counter_inc(d->m.open_busy);
        return reply_rc(d, ctx, rc, "open", err);
    }
    if (orphan != 0) {
        /* The session of our own lost attempt: nobody refreshes it; end it now (best effort,
         * its lease expires anyway). The writer record is ours now, so it stays. */
        (void)etcd_lease_revoke(mds_etcd(d), orphan);
    }
    char sid[32];
    snprintf(sid, sizeof(sid), "%016" PRIx64, (uint64_t)lease);
    Curve__Mds__FileInfo fi;
    file_pb(&e, &fi, NULL);
    Curve__Mds__OpenResponse resp = CURVE__MDS__OPEN_RESPONSE__INIT;
    resp.file = &fi;
    resp.session_id = sid;
    resp.lease_ms = d->session_lease_ms;
    mds_reply_ok(d, ctx, &resp.base);
}

static int session_check(mds_daemon *d, const Curve__Mds__SessionRequest *req, int64_t *lease,
                         char *err, size_t errlen)
{
    char *end;
    uint64_t l = strtoull(req->session_id, &end, 16);
    if (*req->session_id == 0 || *end || strlen(req->session_id) != 16 || l == 0 ||
        l > INT64_MAX) {
        snprintf(err, errlen, "bad session id '%.40s'", req->session_id);
        return CURVE_ERR_INVALID_REQUEST;
    }
    *lease = (int64_t)l;
    mds_ns_path p;
    ns_ent e;
    int rc = resolve_path(d, req->path, &p, &e, err, errlen);
    if (rc < 0)
        return rc;
    char skey[MDS_KEY_MAX];
    session_key(skey, sizeof(skey), e.f.id, *lease);
    etcd_range_result g;
    if ((rc = etcd_get(mds_etcd(d), skey, &g)) < 0)
        return rc;
    bool found = g.n_kvs == 1;
    etcd_range_result_free(&g);
    if (!found) {
        snprintf(err, errlen, "session %s of '%s' expired or unknown", req->session_id,
                 req->path);
        return CURVE_ERR_SESSION_EXPIRED;
    }
    return 0;
}

static void h_refresh(mds_daemon *d, rpc_call_ctx *ctx, const ProtobufCMessage *m)
{
    const Curve__Mds__SessionRequest *req = (const void *)m;
    char err[512] = "";
    int64_t lease;
    int rc = session_check(d, req, &lease, err, sizeof(err));
    if (rc == 0) {
        rc = etcd_lease_keepalive_once(mds_etcd(d), lease, NULL);
        if (rc == CURVE_ERR_NOT_FOUND) {
            rc = CURVE_ERR_SESSION_EXPIRED;
            snprintf(err, sizeof(err), "session %s expired", req->session_id);
        }
    }
    if (rc < 0)
        return reply_rc(d, ctx, rc, "refresh session", err);
    Curve__Mds__Empty em = CURVE__MDS__EMPTY__INIT;
    mds_reply_ok(d, ctx, &em.base);
}

static void h_close(mds_daemon *d, rpc_call_ctx *ctx, const ProtobufCMessage *m)
{
    const Curve__Mds__SessionRequest *req = (const void *)m;
    char err[512] = "";
    int64_t lease;
    int rc = session_check(d, req, &lease, err, sizeof(err));
    if (rc == 0) {
        rc = etcd_lease_revoke(mds_etcd(d), lease);
        if (rc == CURVE_ERR_NOT_FOUND)
            rc = 0; /* expired meanwhile: closed anyway */
    }
    if (rc < 0)
        return reply_rc(d, ctx, rc, "close", err);
    Curve__Mds__Empty em = CURVE__MDS__EMPTY__INIT;
    mds_reply_ok(d, ctx, &em.base);
}

/* ---- segments ---- */

/*
 * Segment cache: (file id, offset) -> encoded record, direct-mapped, MDS_SEGCACHE_MAX slots,
 * records up to MDS_SEGCACHE_REC_MAX bytes. A segment never changes once allocated, and file
 * ids are never reused, so an entry is never stale (a deleted file fails path resolution
 * before its segments are looked up).
 */
typedef struct sc_slot {
    uint64_t fid, off;
    size_t len;
    uint8_t *rec; /* NULL = empty */
} sc_slot;
static sc_slot *sc_slots;
static pthread_mutex_t sc_mu = PTHREAD_MUTEX_INITIALIZER; /* protects sc_slots */

static size_t sc_hash(uint64_t fid, uint64_t off)
{
    uint64_t h = (fid * 0x9E3779B97F4A7C15ull) ^ (off >> 12) * 0xC2B2AE3D27D4EB4Full;
    return (size_t)((h ^ (h >> 29)) % MDS_SEGCACHE_MAX);
}

/* Copies the record into buf (*len: its size in, record length out). */
static bool sc_lookup(uint64_t fid, uint64_t off, uint8_t *buf, size_t *len)
{
    bool hit = false;
    pthread_mutex_lock(&sc_mu);
    if (sc_slots) {
        sc_slot *s = &sc_slots[sc_hash(fid, off)];
        if (s->rec && s->fid == fid && s->off == off && s->len <= *len) {
            memcpy(buf, s->rec, s->len);
            *len = s->len;
            hit = true;
        }
    }
    pthread_mutex_unlock(&sc_mu);
    return hit;
}

static void sc_insert(uint64_t fid, uint64_t off, const uint8_t *rec, size_t len)
{
    if (len > MDS_SEGCACHE_REC_MAX)
        return;
    uint8_t *copy = malloc(len);
    if (!copy)
        return;
    memcpy(copy, rec, len);
    pthread_mutex_lock(&sc_mu);
    if (!sc_slots)
        sc_slots = calloc(MDS_SEGCACHE_MAX, sizeof(*sc_slots));
    if (sc_slots) {
        sc_slot *s = &sc_slots[sc_hash(fid, off)];
        free(s->rec);
        *s = (sc_slot){fid, off, len, copy};
        copy = NULL;
    }
    pthread_mutex_unlock(&sc_mu);
    free(copy);
}

static void seg_key(char *buf, size_t len, uint64_t fid, uint64_t off)
{
    snprintf(buf, len, MDS_SEG_PREFIX "%" PRIu64 "/%" PRIu64, fid, off);
}

/* Plans a new segment (no etcd write). */
static int plan_segment(mds_daemon *d, const mds_file *f, uint64_t off, mds_segment *s,
                        char *err, size_t errlen)
{
    uint32_t nchunks = f->segment_size / f->chunk_size;
    uint64_t *ids = malloc(sizeof(uint64_t) * nchunks);
    uint32_t *css = NULL;
    if (!ids)
        return -ENOMEM;
    int rc = mds_ids_take(d, MDS_IDS_CHUNK, &d->chunk_ids, nchunks, ids);
    if (rc < 0) {
        snprintf(err, errlen, "chunk id allocation failed: %s", curve_strerror(rc));
        goto out;
    }
    mds_idalloc tmp;
    mds_idalloc_init(&tmp, nchunks, 0);
    CURVE_ASSERT(mds_idalloc_refill(&tmp, ids[0], nchunks) == 0);
    pthread_mutex_lock(&d->lock);
    uint32_t pool;
    rc = mds_ns_choose_pool(&d->topo, &d->rng, &pool);
    if (rc == 0) {
        size_t n = mds_ns_pool_copyset_ids(&d->topo, pool, NULL, 0);
        css = malloc(sizeof(uint32_t) * (n ? n : 1));
        if (!css) {
            rc = -ENOMEM;
        } else {
            mds_ns_pool_copyset_ids(&d->topo, pool, css, n);
            s->file_id = f->id;
            s->offset = off;
            s->pool_id = pool;
            s->nchunks = nchunks;
            rc = mds_ns_alloc_segment(css, n, off / f->segment_size, nchunks, &d->rng, &tmp,
                                      s->chunks);
        }
    } else {
        snprintf(err, errlen, "no logical pool with copysets is ready");
        rc = CURVE_ERR_NOSPACE;
    }
    pthread_mutex_unlock(&d->lock);
out:
    free(css);
    free(ids);
    return rc;
}

static void h_segment_common(mds_daemon *d, rpc_call_ctx *ctx,
                             const Curve__Mds__SegmentRequest *req, bool allocate)
{
    char err[512] = "";
    mds_ns_path p;
    ns_ent e;
    mds_segment *s = malloc(sizeof(*s));
    uint8_t *buf = malloc(MDS_SEG_REC_LEN(MDS_NS_MAX_CHUNKS_PER_SEGMENT));
    Curve__Mds__ChunkLocation *locs = NULL, **plocs = NULL;
    int rc = s && buf ? 0 : -ENOMEM;
    if (rc == 0)
        rc = resolve_path(d, req->path, &p, &e, err, sizeof(err));
    if (rc == 0 && (e.f.type != MDS_FILE_VOLUME || e.f.parent_id == MDS_RECYCLE_ID)) {
        snprintf(err, sizeof(err), "'%s' is not a volume", req->path);
        rc = CURVE_ERR_INVALID_REQUEST;
    }
    if (rc == 0 && req->offset >= e.f.size) {
        snprintf(err, sizeof(err), "offset %" PRIu64 " is beyond the size %" PRIu64 " of '%s'",
                 req->offset, e.f.size, req->path);
        rc = -ERANGE;
    }
    if (rc < 0)
        goto out_err;
    uint64_t off = req->offset - req->offset % e.f.segment_size;
    char key[MDS_KEY_MAX];
    seg_key(key, sizeof(key), e.f.id, off);
    size_t clen = MDS_SEG_REC_LEN(MDS_NS_MAX_CHUNKS_PER_SEGMENT);
    if (sc_lookup(e.f.id, off, buf, &clen)) {
        rc = mds_segment_decode(buf, clen, s, err, sizeof(err));
    } else if (!allocate) {
        etcd_range_result g;
        if ((rc = etcd_get(mds_etcd(d), key, &g)) < 0) {
            snprintf(err, sizeof(err), "%s", etcd_last_error());
            goto out_err;
        }
        if (g.n_kvs == 1) {
            rc = mds_segment_decode((const uint8_t *)g.kvs[0].value, g.kvs[0].value_len, s,
                                    err, sizeof(err));
            if (rc == 0)
                sc_insert(e.f.id, off, (const uint8_t *)g.kvs[0].value, g.kvs[0].value_len);
        } else {
            snprintf(err, sizeof(err), "segment at %" PRIu64 " of '%s' is not allocated", off,
                     req->path);
            rc = CURVE_ERR_NOT_FOUND;
        }
        etcd_range_result_free(&g);
    } else {
        /* One txn: put if absent, else read what is there. The planned chunk ids are lost
         * when the segment existed (only after a cache miss): gaps are harmless. */
        if ((rc = plan_segment(d, &e.f, off, s, err, sizeof(err))) < 0)
            goto out_err;
        int len = mds_segment_encode(s, buf, MDS_SEG_REC_LEN(s->nchunks));
        CURVE_ASSERT(len > 0);
        /* Only if the volume is still the same file and nobody allocated it meanwhile. */
        etcd_compare c[2];
        cmp_exists(&e, &c[0]);
        c[1] = (etcd_compare){.key = key, .target = ETCD_CMP_CREATE, .result = ETCD_CMP_EQUAL};
        etcd_op put = {.type = ETCD_OP_PUT, .key = key, .value = buf, .value_len = (size_t)len};
        etcd_op probe = {.type = ETCD_OP_RANGE, .key = key};
        etcd_txn_result r;
        if ((rc = mds_txn(d, c, 2, &put, 1, &probe, 1, &r)) < 0)
            goto out_err;
        if (r.succeeded) {
            sc_insert(e.f.id, off, buf, (size_t)len);
        } else if (r.n_results == 1 && r.results[0].range.n_kvs == 1) {
            const etcd_kv *kv = &r.results[0].range.kvs[0];
            rc = mds_segment_decode((const uint8_t *)kv->value, kv->value_len, s, err,
                                    sizeof(err));
            if (rc == 0)
                sc_insert(e.f.id, off, (const uint8_t *)kv->value, kv->value_len);
        } else {
            dc_clear();
            snprintf(err, sizeof(err), "'%s' changed during the allocation", req->path);
            rc = election_is_leader(d->el) ? CURVE_ERR_BUSY : CURVE_ERR_NOT_LEADER;
        }
        etcd_txn_result_free(&r);
    }
    if (rc < 0)
        goto out_err;
    locs = calloc(s->nchunks, sizeof(*locs));
    plocs = calloc(s->nchunks, sizeof(*plocs));
    if (!locs || !plocs) {
        rc = -ENOMEM;
        goto out_err;
    }
    for (uint32_t i = 0; i < s->nchunks; i++) {
        curve__mds__chunk_location__init(&locs[i]);
        locs[i].copyset_id = s->chunks[i].copyset_id;
        locs[i].chunk_id = s->chunks[i].chunk_id;
        plocs[i] = &locs[i];
    }
    Curve__Mds__SegmentResponse resp = CURVE__MDS__SEGMENT_RESPONSE__INIT;
    resp.file_id = e.f.id;
    resp.offset = s->offset;
    resp.logical_pool_id = s->pool_id;
    resp.chunk_size = e.f.chunk_size;
    resp.segment_size = e.f.segment_size;
    resp.n_chunks = s->nchunks;
    resp.chunks = plocs;
    resp.epoch = e.f.epoch;
    mds_reply_ok(d, ctx, &resp.base);
    goto out;
out_err:
    reply_rc(d, ctx, rc, allocate ? "get or allocate segment" : "get segment", err);
out:
    free(locs);
    free(plocs);
    free(s);
    free(buf);
}

static void h_get_or_alloc(mds_daemon *d, rpc_call_ctx *ctx, const ProtobufCMessage *m)
{
    h_segment_common(d, ctx, (const void *)m, true);
}

static void h_get_segment(mds_daemon *d, rpc_call_ctx *ctx, const ProtobufCMessage *m)
{
    h_segment_common(d, ctx, (const void *)m, false);
}

/* ---- purge (background thread) ---- */

typedef struct purge_call {
    curve_completion done;
    int status;
    Curve__Chunk__ChunkStatus cst;
} purge_call;

static void purge_cb(rpc_result *r, void *arg)
{
    purge_call *pc = arg;
    pc->status = r->status;
    if (r->status == 0 && r->resp)
        pc->cst = ((Curve__Chunk__ChunkResponse *)r->resp)->status;
    curve_completion_signal(&pc->done, 0);
}

/* Deletes one chunk through its copyset leader. 0 when gone. */
static int purge_chunk(mds_daemon *d, uint32_t pool, const mds_chunk_loc *c)
{
    char addr[MDS_ADDR_MAX + MDS_HOST_MAX] = "";
    pthread_mutex_lock(&d->lock);
    mds_copyset *cs = mds_topo_copyset(&d->topo, pool, c->copyset_id);
    mds_chunkserver *l = cs && cs->leader ? mds_topo_cs(&d->topo, cs->leader) : NULL;
    if (l)
        snprintf(addr, sizeof(addr), "%s:%u", l->host, l->port);
    bool gone = cs == NULL; /* the copyset no longer exists: nothing to delete */
    pthread_mutex_unlock(&d->lock);
    if (gone)
        return 0;
    if (!*addr)
        return -EAGAIN;
    rpc_channel *ch = mds_channel(d, addr);
    if (!ch)
        return -EAGAIN;
    Curve__Chunk__ChunkRequest req = CURVE__CHUNK__CHUNK_REQUEST__INIT;
    req.op_type = CURVE__CHUNK__CHUNK_OP_TYPE__CHUNK_OP_DELETE;
    req.logical_pool_id = pool;
    req.copyset_id = c->copyset_id;
    req.chunk_id = c->chunk_id;
    purge_call pc = {.status = -1};
    curve_completion_init(&pc.done);
    int rc = rpc_channel_call(ch, MDS_CHUNK_SERVICE_ID, 3, &req.base, NULL,
                              &curve__chunk__chunk_response__descriptor, 3000, purge_cb, &pc,
                              NULL);
    if (rc == 0)
        curve_completion_wait(&pc.done, 0);
    curve_completion_destroy(&pc.done);
    if (rc < 0 || pc.status != 0)
        return -EAGAIN;
    return pc.cst == CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_SUCCESS ||
                   pc.cst == CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_CHUNK_NOTEXIST
               ? 0
               : -EAGAIN;
}

/* Purges one volume as far as the budget allows; returns 1 when it is completely gone. */
static int purge_volume(mds_daemon *d, const etcd_kv *kv, const mds_file *f, size_t *budget)
{
    char prefix[MDS_KEY_MAX];
    snprintf(prefix, sizeof(prefix), MDS_SEG_PREFIX "%" PRIu64 "/", f->id);
    etcd_range_req q = {.key = prefix, .prefix = true, .limit = 16};
    etcd_range_result r;
    if (etcd_range(mds_etcd(d), &q, &r) < 0)
        return 0;
    mds_segment *s = malloc(sizeof(*s));
    bool all_done = s != NULL;
    char err[256];
    for (size_t i = 0; s && i < r.n_kvs && *budget > 0; i++) {
        bool seg_ok = true;
        if (mds_segment_decode((const uint8_t *)r.kvs[i].value, r.kvs[i].value_len, s, err,
                               sizeof(err)) < 0) {
            CLOG_ERROR("mds: purge: %s: %s (record dropped)", r.kvs[i].key, err);
        } else {
            for (uint32_t k = 0; k < s->nchunks && *budget > 0; k++, (*budget)--) {
                if (purge_chunk(d, s->pool_id, &s->chunks[k]) < 0)
                    seg_ok = false;
                else
                    curve_counter_inc(d->m.chunks_purged);
            }
        }
        if (!seg_ok || *budget == 0) {
            all_done = false;
            continue;
        }
        etcd_op del = {.type = ETCD_OP_DELETE, .key = r.kvs[i].key};
        etcd_txn_result tr;
        if (mds_txn(d, NULL, 0, &del, 1, NULL, 0, &tr) == 0)
            etcd_txn_result_free(&tr);
    }
    bool more = r.more || r.n_kvs > 0;
    etcd_range_result_free(&r);
    free(s);
    if (!all_done || more) {
        /* Re-check: every segment deleted now? */
        etcd_range_req q2 = {.key = prefix, .prefix = true, .count_only = true};
        if (etcd_range(mds_etcd(d), &q2, &r) < 0)
            return 0;
        int64_t left = r.count;
        etcd_range_result_free(&r);
        if (left > 0)
            return 0;
    }
    etcd_compare c = {.key = kv->key, .target = ETCD_CMP_MOD, .result = ETCD_CMP_EQUAL,
                      .number = kv->mod_revision};
    etcd_op del = {.type = ETCD_OP_DELETE, .key = kv->key};
    etcd_txn_result tr;
    if (mds_txn(d, &c, 1, &del, 1, NULL, 0, &tr) < 0)
        return 0;
    bool ok = tr.succeeded;
    etcd_txn_result_free(&tr);
    dc_drop_ent(kv->key);
    if (ok)
        CLOG_INFO("mds: purged volume %" PRIu64 " ('%s')", f->id, f->name);
    return ok;
}

uint64_t mds_purge_run(mds_daemon *d)
{
    char prefix[MDS_KEY_MAX], after[MDS_KEY_MAX] = "";
    snprintf(prefix, sizeof(prefix), MDS_NS_PREFIX "%d/", MDS_RECYCLE_ID);
    uint64_t pending = 0;
    size_t budget = MDS_PURGE_CHUNKS_PER_RUN;
    bool more = true;
    while (more && atomic_load(&d->serving)) {
        etcd_range_result r;
        size_t first = 0, n = 0;
        if (ns_page(d, prefix, after, MDS_LIST_PAGE_MAX, &r, &first, &n, &more) < 0)
            return d->pending_purge;
        for (size_t i = first; i < first + n && atomic_load(&d->serving); i++) {
            mds_file f;
            char err[256];
            if (mds_file_decode((const uint8_t *)r.kvs[i].value, r.kvs[i].value_len, &f, err,
                                sizeof(err)) < 0 ||
                f.status != MDS_FILE_DELETING)
                continue;
            if (budget == 0 || purge_volume(d, &r.kvs[i], &f, &budget) == 0)
                pending++;
        }
        if (n > 0)
            snprintf(after, sizeof(after), "%s", key_name(r.kvs[first + n - 1].key));
        etcd_range_result_free(&r);
        if (n == 0)
            break; /* nothing to move on from */
    }
    return pending;
}

/* ---- method table ---- */

#define H(name, fn)                                                                                \
    static void name(rpc_call_ctx *ctx, const ProtobufCMessage *req, curve_iobuf *a, void *arg)    \
    {                                                                                              \
        mds_submit(arg, ctx, req, fn);                                                             \
    }
H(r_mkdir, h_mkdir)
H(r_create, h_create)
H(r_stat, h_stat)
H(r_listdir, h_listdir)
H(r_rename, h_rename)
H(r_extend, h_extend)
H(r_delete, h_delete)
H(r_recover, h_recover)
H(r_purge, h_purge)
H(r_open, h_open)
H(r_refresh, h_refresh)
H(r_close, h_close)
H(r_goa, h_get_or_alloc)
H(r_gseg, h_get_segment)
#undef H

#define D(x) &curve__mds__##x##__descriptor
const rpc_method_def mds_namespace_methods[] = {
    {1, "Mkdir", D(mkdir_request), D(file_info), r_mkdir},
    {2, "CreateVolume", D(create_volume_request), D(file_info), r_create},
    {3, "Stat", D(path_request), D(file_info), r_stat},
    {4, "ListDir", D(list_dir_request), D(list_dir_response), r_listdir},
    {5, "Rename", D(rename_request), D(empty), r_rename},
    {6, "Extend", D(extend_request), D(file_info), r_extend},
    {7, "Delete", D(path_request), D(empty), r_delete},
    {8, "Recover", D(recover_request), D(file_info), r_recover},
    {9, "Purge", D(path_request), D(empty), r_purge},
    {10, "Open", D(open_request), D(open_response), r_open},
    {11, "RefreshSession", D(session_request), D(empty), r_refresh},
    {12, "Close", D(session_request), D(empty), r_close},
    {13, "GetOrAllocateSegment", D(segment_request), D(segment_response), r_goa},
    {14, "GetSegment", D(segment_request), D(segment_response), r_gseg},
};
#undef D
const size_t mds_namespace_nmethods =
    sizeof(mds_namespace_methods) / sizeof(mds_namespace_methods[0]);
