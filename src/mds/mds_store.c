/*
 * etcd persistence of the MDS (docs/mds.md "etcd keys"): fenced transactions, id allocators,
 * topology records, loading on takeover.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/assert.h"
#include "common/clock.h"
#include "common/log.h"
#include "curve/errors.h"
#include "mds/mds_daemon.h"

#define MDS_TXN_CMP_MAX 8 /* compares per MDS txn, fence included */

etcd_client *mds_etcd(mds_daemon *d)
{
    static atomic_uint next;
    static _Thread_local int idx = -1;
    if (idx < 0)
        idx = (int)(atomic_fetch_add(&next, 1) % d->netcds);
    return d->etcds[idx];
}

int mds_txn(mds_daemon *d, const etcd_compare *cmp, size_t ncmp, const etcd_op *succ,
            size_t nsucc, const etcd_op *fail, size_t nfail, etcd_txn_result *out)
{
    etcd_compare all[MDS_TXN_CMP_MAX];
    if (ncmp + 1 > MDS_TXN_CMP_MAX)
        return -EINVAL;
    /* Every state change carries the election fence (docs/mds-ha.md): a deposed leader's
     * writes fail once its key is gone. */
    int rc = election_fence(d->el, &all[0]);
    if (rc < 0)
        return CURVE_ERR_NOT_LEADER;
    for (size_t i = 0; i < ncmp; i++)
        all[i + 1] = cmp[i];
    rc = etcd_txn(mds_etcd(d), all, ncmp + 1, succ, nsucc, fail, nfail, out);
    if (rc < 0) {
        curve_counter_inc(d->m.etcd_errors);
        CLOG_WARN("mds: etcd txn failed: %s (%s)", curve_strerror(rc), etcd_last_error());
    }
    return rc;
}

int mds_put_many(mds_daemon *d, char **keys, char **vals, size_t n)
{
    etcd_op ops[MDS_TXN_BATCH];
    for (size_t off = 0; off < n; off += MDS_TXN_BATCH) {
        size_t k = n - off < MDS_TXN_BATCH ? n - off : MDS_TXN_BATCH;
        for (size_t i = 0; i < k; i++)
            ops[i] = (etcd_op){.type = ETCD_OP_PUT, .key = keys[off + i],
                               .value = vals[off + i], .value_len = strlen(vals[off + i])};
        etcd_txn_result r;
        int rc = mds_txn(d, NULL, 0, ops, k, NULL, 0, &r);
        if (rc < 0)
            return rc;
        bool ok = r.succeeded;
        etcd_txn_result_free(&r);
        if (!ok)
            return CURVE_ERR_NOT_LEADER; /* only the fence can fail */
    }
    return 0;
}

int mds_ids_refill(mds_daemon *d, const char *key, mds_idalloc *a, uint64_t n)
{
    for (int attempt = 0; attempt < MDS_RETRY_TXN; attempt++) {
        etcd_range_result g;
        int rc = etcd_get(mds_etcd(d), key, &g);
        if (rc < 0)
            return rc;
        uint64_t hw = MDS_FILE_ID_FIRST;
        int64_t create_rev = 0;
        char cur[32] = "";
        if (g.n_kvs == 1) {
            char *end;
            snprintf(cur, sizeof(cur), "%.*s", (int)g.kvs[0].value_len, g.kvs[0].value);
            hw = strtoull(cur, &end, 10);
            create_rev = g.kvs[0].create_revision;
            if (*cur == 0 || *end || hw == 0 || hw > UINT64_MAX / 2) {
                CLOG_ERROR("mds: id counter %s holds '%s': not a positive decimal", key, cur);
                etcd_range_result_free(&g);
                return CURVE_ERR_CORRUPT;
            }
        }
        etcd_range_result_free(&g);
        uint64_t batch = n > a->batch ? n : a->batch;
        char next[32];
        snprintf(next, sizeof(next), "%" PRIu64, hw + batch);
        etcd_compare c = create_rev ? (etcd_compare){.key = key, .target = ETCD_CMP_VALUE,
                                                     .result = ETCD_CMP_EQUAL, .value = cur,
                                                     .value_len = strlen(cur)}
                                    : (etcd_compare){.key = key, .target = ETCD_CMP_CREATE,
                                                     .result = ETCD_CMP_EQUAL, .number = 0};
        etcd_op put = {.type = ETCD_OP_PUT, .key = key, .value = next, .value_len = strlen(next)};
        etcd_txn_result r;
        rc = mds_txn(d, &c, 1, &put, 1, NULL, 0, &r);
        if (rc < 0)
            return rc;
        bool ok = r.succeeded;
        etcd_txn_result_free(&r);
        if (ok) {
            /* Ids already handed out lie below hw: the new range is above them. */
            if (hw < a->end)
                return CURVE_ERR_CORRUPT;
            return mds_idalloc_refill(a, hw, batch);
        }
    }
    return CURVE_ERR_BUSY;
}

int mds_ids_take(mds_daemon *d, const char *key, mds_idalloc *a, uint64_t n, uint64_t *out)
{
    pthread_mutex_lock(&d->ids_lock);
    int rc = 0;
    if (mds_idalloc_left(a) < n)
        rc = mds_ids_refill(d, key, a, n);
    if (rc == 0)
        rc = mds_idalloc_take(a, n, out);
    pthread_mutex_unlock(&d->ids_lock);
    return rc;
}

int mds_store_record(mds_topo_kind k, const void *rec, char **key, char **val)
{
    char kb[MDS_KEY_MAX];
    if (mds_topo_record_key(k, rec, kb, sizeof(kb)) < 0)
        return -ENOSPC;
    json_t *j = mds_topo_record_to_json(k, rec);
    if (!j)
        return -ENOMEM;
    *val = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    *key = strdup(kb);
    if (!*val || !*key) {
        free(*val);
        free(*key);
        return -ENOMEM;
    }
    return 0;
}

static int load_prefix(mds_daemon *d, mds_topo_kind k, const char *prefix, char *err,
                       size_t errlen)
{
    etcd_range_req q = {.key = prefix, .prefix = true};
    etcd_range_result r;
    int rc = etcd_range(mds_etcd(d), &q, &r);
    if (rc < 0) {
        snprintf(err, errlen, "reading %s: %s (%s)", prefix, curve_strerror(rc),
                 etcd_last_error());
        return rc;
    }
    /* Copysets sort as /<pool>/<id> text: insertion order does not matter to the topology. */
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < r.n_kvs && rc == 0; i++) {
        char e[256];
        rc = mds_topo_load_record(&d->topo, k, r.kvs[i].value, r.kvs[i].value_len, e,
                                  sizeof(e));
        if (rc < 0)
            snprintf(err, errlen, "%s: %s", r.kvs[i].key, e);
    }
    pthread_mutex_unlock(&d->lock);
    etcd_range_result_free(&r);
    return rc;
}

int mds_store_load_topology(mds_daemon *d, char *err, size_t errlen)
{
    static const char *const prefixes[MDS_TOPO_NKINDS] = {
        MDS_PREFIX "topo/ppool/", MDS_PREFIX "topo/zone/", MDS_PREFIX "topo/server/",
        MDS_PREFIX "topo/chunkserver/", MDS_PREFIX "topo/lpool/", MDS_PREFIX "copyset/",
    };
    for (int k = 0; k < MDS_TOPO_NKINDS; k++) {
        int rc = load_prefix(d, (mds_topo_kind)k, prefixes[k], err, errlen);
        if (rc < 0)
            return rc;
    }
    pthread_mutex_lock(&d->lock);
    /* Nobody is declared offline before it had a chance to reach the new leader. */
    mds_hb_reset_all(&d->topo, curve_now_mono_ms());
    pthread_mutex_unlock(&d->lock);
    return 0;
}

int mds_store_init_namespace(mds_daemon *d)
{
    char key[MDS_KEY_MAX];
    snprintf(key, sizeof(key), MDS_NS_PREFIX "%d/%s", MDS_NS_ROOT_ID, MDS_NS_RECYCLE_BIN);
    mds_file f = {.id = MDS_RECYCLE_ID, .parent_id = MDS_NS_ROOT_ID, .type = MDS_FILE_DIR,
                  .status = MDS_FILE_NORMAL, .ctime_ns = curve_now_wall_ns()};
    snprintf(f.name, sizeof(f.name), "%s", MDS_NS_RECYCLE_BIN);
    snprintf(f.owner, sizeof(f.owner), "root");
    uint8_t buf[MDS_FILE_REC_MAX];
    int len = mds_file_encode(&f, buf, sizeof(buf));
    CURVE_ASSERT(len > 0);
    etcd_compare c = {.key = key, .target = ETCD_CMP_CREATE, .result = ETCD_CMP_EQUAL};
    etcd_op put = {.type = ETCD_OP_PUT, .key = key, .value = buf, .value_len = (size_t)len};
    etcd_txn_result r;
    int rc = mds_txn(d, &c, 1, &put, 1, NULL, 0, &r);
    if (rc == 0)
        etcd_txn_result_free(&r);
    return rc;
}

int mds_persist_unlock(mds_daemon *d, char **keys, char **vals, size_t n)
{
    pthread_mutex_lock(&d->persist_lock);
    pthread_mutex_unlock(&d->lock);
    int rc = n ? mds_put_many(d, keys, vals, n) : 0;
    pthread_mutex_unlock(&d->persist_lock);
    for (size_t i = 0; i < n; i++) {
        free(keys[i]);
        free(vals[i]);
    }
    return rc;
}

int mds_topo_persist_all(mds_daemon *d, bool with_copysets)
{
    pthread_mutex_lock(&d->lock);
    mds_topology *t = &d->topo;
    size_t n = t->ppools.n + t->zones.n + t->servers.n + t->css.n + t->lpools.n +
               (with_copysets ? t->copysets.n : 0);
    char **keys = calloc(n + 1, sizeof(char *)), **vals = calloc(n + 1, sizeof(char *));
    size_t k = 0;
    int rc = keys && vals ? 0 : -ENOMEM;
    /* Copysets first, pools last: a pool marked created always has its copysets stored. */
    if (with_copysets)
        for (size_t i = 0; i < t->copysets.n && rc == 0; i++, k++)
            rc = mds_store_record(MDS_TOPO_COPYSET, &t->copysets.v[i], &keys[k], &vals[k]);
    for (size_t i = 0; i < t->ppools.n && rc == 0; i++, k++)
        rc = mds_store_record(MDS_TOPO_PPOOL, &t->ppools.v[i], &keys[k], &vals[k]);
    for (size_t i = 0; i < t->zones.n && rc == 0; i++, k++)
        rc = mds_store_record(MDS_TOPO_ZONE, &t->zones.v[i], &keys[k], &vals[k]);
    for (size_t i = 0; i < t->servers.n && rc == 0; i++, k++)
        rc = mds_store_record(MDS_TOPO_SERVER, &t->servers.v[i], &keys[k], &vals[k]);
    for (size_t i = 0; i < t->css.n && rc == 0; i++, k++)
        rc = mds_store_record(MDS_TOPO_CS, &t->css.v[i], &keys[k], &vals[k]);
    for (size_t i = 0; i < t->lpools.n && rc == 0; i++, k++)
        rc = mds_store_record(MDS_TOPO_LPOOL, &t->lpools.v[i], &keys[k], &vals[k]);
    if (rc < 0) {
        pthread_mutex_unlock(&d->lock);
        for (size_t i = 0; keys && vals && i < n; i++) {
            free(keys[i]);
            free(vals[i]);
        }
        free(keys);
        free(vals);
        return rc;
    }
    rc = mds_persist_unlock(d, keys, vals, k);
    free(keys);
    free(vals);
    return rc;
}
