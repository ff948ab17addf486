/* Leader election on etcd leases (see election.h and docs/mds-ha.md). */
#include "etcd/election.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/assert.h"
#include "common/log.h"
#include "curve/errors.h"

#define WHY_MAX 256

struct election {
    etcd_client *c;
    char prefix[ELECTION_MAX_PREFIX + 2]; /* "<prefix>/" */
    char *value;
    int64_t ttl_s;
    uint32_t keepalive_ms, deadline_ms, recheck_ms;
    const curve_clock *clock;
    election_opts cbs; /* only the callbacks and arg are used */

    pthread_t campaign_thread, keepalive_thread;
    bool campaign_started, keepalive_started;

    atomic_int role;         /* election_role */
    atomic_bool key_ready;   /* key and create_rev are written and immutable */
    atomic_bool stop;
    atomic_int_least64_t lease; /* 0 until granted */
    /* Monotonic ns at which the last successful keep-alive (or the grant) was SENT: etcd's
     * lease is alive at least until proof_ns + TTL. 0 = never proven. */
    atomic_uint_least64_t proof_ns;

    pthread_mutex_t lock; /* protects the fields below, and wakes the threads via cond */
    pthread_cond_t cond;  /* CLOCK_MONOTONIC; signalled on stop, lost, watch events */
    bool pred_gone;       /* the watched predecessor was deleted */
    bool watch_failed;    /* the predecessor watch stream ended */
    bool lost_pending;    /* lost_cb still has to run */
    char why[WHY_MAX];
    char key[ELECTION_MAX_PREFIX + 24]; /* own key; written once before role leaves INIT */
    int64_t create_rev;
};

static uint64_t now_ns(const election *e)
{
    return curve_clock_mono_ns(e->clock);
}

void election_opts_init(election_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->ttl_s = 5;
}

const char *election_role_name(election_role r)
{
    switch (r) {
    case ELECTION_INIT:
        return "candidate";
    case ELECTION_FOLLOWER:
        return "follower";
    case ELECTION_LEADER:
        return "leader";
    case ELECTION_LOST:
        return "lost";
    case ELECTION_STOPPED:
        return "stopped";
    }
    return "?";
}

int election_new(etcd_client *client, const election_opts *o, election **out)
{
    *out = NULL;
    if (!client || !o || !o->prefix || o->prefix[0] == '\0' ||
        strlen(o->prefix) > ELECTION_MAX_PREFIX || o->prefix[strlen(o->prefix) - 1] == '/' ||
        (o->value && strlen(o->value) > ELECTION_MAX_VALUE) || o->ttl_s < 2 || o->ttl_s > 3600)
        return -EINVAL;
    election *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->c = client;
    snprintf(e->prefix, sizeof(e->prefix), "%s/", o->prefix);
    e->value = strdup(o->value ? o->value : "");
    if (!e->value)
        goto err_after_alloc;
    uint32_t ttl_ms = (uint32_t)o->ttl_s * 1000u;
    uint32_t margin = ttl_ms / 5 > 500 ? ttl_ms / 5 : 500;
    e->ttl_s = o->ttl_s;
    e->keepalive_ms = o->keepalive_ms ? o->keepalive_ms : ttl_ms / 3;
    e->deadline_ms = o->deadline_ms ? o->deadline_ms : ttl_ms - margin;
    e->recheck_ms = o->recheck_ms ? o->recheck_ms : ttl_ms;
    if (e->deadline_ms >= ttl_ms || e->deadline_ms <= e->keepalive_ms) {
        free(e->value);
        free(e);
        return -EINVAL;
    }
    e->clock = o->clock ? o->clock : curve_clock_system();
    e->cbs = *o;
    e->cbs.prefix = NULL;
    e->cbs.value = NULL;
    atomic_init(&e->role, ELECTION_INIT);
    atomic_init(&e->stop, false);
    atomic_init(&e->key_ready, false);
    atomic_init(&e->lease, 0);
    atomic_init(&e->proof_ns, 0);
    pthread_mutex_init(&e->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->cond, &ca);
    pthread_condattr_destroy(&ca);
    *out = e;
    return 0;

err_after_alloc:
    free(e);
    return -ENOMEM;
}

/* Waits on e->cond for at most `ms` (real monotonic time). Caller holds e->lock. */
static void wait_ms(election *e, uint64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + (ms % 1000) * 1000000u;
    ts.tv_sec += (time_t)(ms / 1000 + ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    pthread_cond_timedwait(&e->cond, &e->lock, &ts);
}

static void sleep_interruptible(election *e, uint64_t ms)
{
    pthread_mutex_lock(&e->lock);
    if (!atomic_load(&e->stop) && atomic_load(&e->role) != ELECTION_LOST)
        wait_ms(e, ms);
    pthread_mutex_unlock(&e->lock);
}

/* Moves to LOST (terminal) once; the campaign thread runs lost_cb. Any thread. */
static void lose(election *e, const char *why)
{
    int r = atomic_load(&e->role);
    while (r != ELECTION_LOST && r != ELECTION_STOPPED) {
        if (atomic_compare_exchange_weak(&e->role, &r, ELECTION_LOST)) {
            pthread_mutex_lock(&e->lock);
            snprintf(e->why, sizeof(e->why), "%s", why);
            e->lost_pending = true;
            pthread_cond_broadcast(&e->cond);
            pthread_mutex_unlock(&e->lock);
            return;
        }
    }
}

static bool proven(election *e, uint64_t now)
{
    uint64_t p = atomic_load(&e->proof_ns);
    return p != 0 && now < p + (uint64_t)e->deadline_ms * 1000000u;
}

bool election_is_leader(election *e)
{
    if (atomic_load(&e->role) != ELECTION_LEADER)
        return false;
    uint64_t now = now_ns(e);
    if (proven(e, now))
        return true;
    char why[WHY_MAX];
    snprintf(why, sizeof(why), "lease %" PRIx64 " not proven alive for %" PRIu64 " ms (bound %u ms)",
             (uint64_t)atomic_load(&e->lease),
             (now - atomic_load(&e->proof_ns)) / 1000000u, e->deadline_ms);
    lose(e, why);
    return false;
}

election_role election_get_role(election *e)
{
    return (election_role)atomic_load(&e->role);
}

const char *election_key(election *e)
{
    return atomic_load(&e->key_ready) ? e->key : "";
}

int64_t election_lease(election *e)
{
    return atomic_load(&e->lease);
}

int election_fence(election *e, etcd_compare *cmp)
{
    memset(cmp, 0, sizeof(*cmp));
    if (!atomic_load(&e->key_ready))
        return CURVE_ERR_NOT_LEADER;
    cmp->key = e->key;
    cmp->target = ETCD_CMP_CREATE;
    cmp->result = ETCD_CMP_EQUAL;
    cmp->number = e->create_rev;
    return 0;
}

int election__position(const etcd_kv *kvs, size_t n, const char *own_key, long *pred)
{
    *pred = -1;
    const etcd_kv *own = NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(kvs[i].key, own_key) == 0)
            own = &kvs[i];
    if (!own)
        return -ENOENT;
    int64_t best = 0;
    for (size_t i = 0; i < n; i++) {
        if (kvs[i].create_revision < own->create_revision && kvs[i].create_revision > best) {
            best = kvs[i].create_revision;
            *pred = (long)i;
        }
    }
    return 0;
}

/* ---- keep-alive thread ---- */

/* As leader: the lease must still carry our key (SEED §3 "checks that its key still exists"). */
static void check_key_attached(election *e, int64_t lease)
{
    etcd_lease_info info;
    int rc = etcd_lease_ttl(e->c, lease, true, &info);
    if (rc == CURVE_ERR_NOT_FOUND) {
        lose(e, "lease expired (time-to-live check)");
        return;
    }
    if (rc) {
        CLOG_WARN("election: lease time-to-live check failed: %s", etcd_last_error());
        return;
    }
    bool found = false;
    for (size_t i = 0; i < info.n_keys; i++)
        found = found || strcmp(info.keys[i], e->key) == 0;
    etcd_lease_info_free(&info);
    if (!found)
        lose(e, "own election key no longer attached to the lease");
}

static void *keepalive_main(void *arg)
{
    election *e = arg;
    int64_t lease = atomic_load(&e->lease);
    while (!atomic_load(&e->stop) && atomic_load(&e->role) != ELECTION_LOST) {
        uint64_t t0 = now_ns(e);
        int64_t ttl = 0;
        int rc = etcd_lease_keepalive_once(e->c, lease, &ttl);
        if (rc == 0) {
            atomic_store(&e->proof_ns, t0);
            if (atomic_load(&e->role) == ELECTION_LEADER)
                check_key_attached(e, lease);
        } else if (rc == CURVE_ERR_NOT_FOUND) {
            lose(e, "lease expired (keep-alive answered not found)");
        } else {
            CLOG_WARN("election: keep-alive of lease %" PRIx64 " failed: %s", (uint64_t)lease,
                      etcd_last_error());
        }
        uint64_t spent_ms = (now_ns(e) - t0) / 1000000u;
        if (spent_ms < e->keepalive_ms)
            sleep_interruptible(e, e->keepalive_ms - spent_ms);
    }
    return NULL;
}

/* ---- campaign thread ---- */

typedef struct backoff {
    uint64_t ms;
} backoff;

static void backoff_wait(election *e, backoff *b)
{
    b->ms = b->ms ? b->ms * 2 : 50;
    if (b->ms > ELECTION_RETRY_MAX_MS)
        b->ms = ELECTION_RETRY_MAX_MS;
    sleep_interruptible(e, b->ms);
}

static bool running(election *e)
{
    return !atomic_load(&e->stop) && atomic_load(&e->role) != ELECTION_LOST;
}

static int grant_lease(election *e)
{
    backoff b = {0};
    while (running(e)) {
        uint64_t t0 = now_ns(e);
        int64_t id = 0, ttl = 0;
        int rc = etcd_lease_grant(e->c, e->ttl_s, 0, &id, &ttl);
        if (rc == 0) {
            atomic_store(&e->lease, id);
            atomic_store(&e->proof_ns, t0);
            CLOG_INFO("election: granted lease %" PRIx64 " ttl %" PRId64 " s", (uint64_t)id, ttl);
            return 0;
        }
        CLOG_WARN("election: lease grant failed, retrying: %s", etcd_last_error());
        backoff_wait(e, &b);
    }
    return CURVE_ERR_SHUTDOWN;
}

/* Creates the candidate key (if absent) bound to our lease and learns its create revision. */
static int create_key(election *e)
{
    int64_t lease = atomic_load(&e->lease);
    snprintf(e->key, sizeof(e->key), "%s%016" PRIx64, e->prefix, (uint64_t)lease);
    etcd_compare cmp = {.key = e->key, .target = ETCD_CMP_CREATE, .result = ETCD_CMP_EQUAL};
    etcd_op put = {.type = ETCD_OP_PUT, .key = e->key, .value = e->value,
                   .value_len = strlen(e->value), .lease = lease};
    etcd_op get = {.type = ETCD_OP_RANGE, .key = e->key};
    backoff b = {0};
    while (running(e)) {
        etcd_txn_result r;
        int rc = etcd_txn(e->c, &cmp, 1, &put, 1, &get, 1, &r);
        if (rc == 0) {
            int64_t crev = r.succeeded ? r.revision : 0;
            if (!r.succeeded && r.n_results == 1 && r.results[0].range.n_kvs == 1) {
                const etcd_kv *kv = &r.results[0].range.kvs[0];
                crev = kv->lease == lease ? kv->create_revision : 0;
            }
            etcd_txn_result_free(&r);
            if (crev <= 0) {
                lose(e, "candidate key exists but is not bound to our lease");
                return CURVE_ERR_ETCD;
            }
            e->create_rev = crev;
            atomic_store(&e->key_ready, true);
            CLOG_INFO("election: candidate key %s create revision %" PRId64, e->key, crev);
            return 0;
        }
        /* A txn that timed out may have been applied: the next round finds the key. */
        CLOG_WARN("election: creating %s failed, retrying: %s", e->key, etcd_last_error());
        backoff_wait(e, &b);
    }
    return CURVE_ERR_SHUTDOWN;
}

static void watch_events_cb(etcd_watch *w, const etcd_event *ev, size_t n, int64_t rev,
                            void *arg)
{
    election *e = arg;
    bool gone = false;
    for (size_t i = 0; i < n; i++)
        gone = gone || ev[i].type == ETCD_EV_DELETE;
    if (!gone)
        return;
    pthread_mutex_lock(&e->lock);
    e->pred_gone = true;
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
}

static void watch_error_cb(etcd_watch *w, int err, const char *msg, int64_t compact, void *arg)
{
    election *e = arg;
    CLOG_WARN("election: predecessor watch ended: %s", msg);
    pthread_mutex_lock(&e->lock);
    e->watch_failed = true;
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
}

/* Leads until the lease can no longer be proven, then returns (role is LOST or stopping). */
static void lead(election *e)
{
    if (e->cbs.leader_cb)
        e->cbs.leader_cb(e, e->cbs.arg);
    pthread_mutex_lock(&e->lock);
    while (!atomic_load(&e->stop) && atomic_load(&e->role) == ELECTION_LEADER) {
        uint64_t now = now_ns(e);
        uint64_t until = atomic_load(&e->proof_ns) + (uint64_t)e->deadline_ms * 1000000u;
        if (now >= until) {
            pthread_mutex_unlock(&e->lock);
            election_is_leader(e); /* records why and moves to LOST */
            pthread_mutex_lock(&e->lock);
            break;
        }
        wait_ms(e, (until - now + 999999u) / 1000000u);
    }
    pthread_mutex_unlock(&e->lock);
}

/* Watches `pred_key` from `rev` until it is deleted, the watch fails, or recheck_ms passes.
 * Returns 0, or the error of a watch that could not be created (the caller backs off). */
static int follow(election *e, const char *pred_key, int64_t rev, char *last_pred)
{
    etcd_watch_req wr = {.key = pred_key, .start_revision = rev, .no_put = true};
    etcd_watch_cbs cbs = {.events_cb = watch_events_cb, .error_cb = watch_error_cb, .arg = e};
    etcd_watch *w = NULL;
    pthread_mutex_lock(&e->lock);
    e->pred_gone = false;
    e->watch_failed = false;
    pthread_mutex_unlock(&e->lock);
    int rc = etcd_watch_start(e->c, &wr, &cbs, NULL, &w);
    if (rc) {
        CLOG_WARN("election: cannot watch %s: %s", pred_key, etcd_last_error());
        return rc;
    }
    int expect = ELECTION_INIT;
    atomic_compare_exchange_strong(&e->role, &expect, ELECTION_FOLLOWER);
    if (strcmp(last_pred, pred_key) != 0) {
        snprintf(last_pred, ELECTION_MAX_PREFIX + 24, "%s", pred_key);
        CLOG_INFO("election: following, watching %s", pred_key);
        if (e->cbs.follower_cb)
            e->cbs.follower_cb(e, pred_key, e->cbs.arg);
    }
    uint64_t until = now_ns(e) + (uint64_t)e->recheck_ms * 1000000u;
    pthread_mutex_lock(&e->lock);
    while (running(e) && !e->pred_gone && !e->watch_failed) {
        uint64_t now = now_ns(e);
        if (now >= until)
            break;
        wait_ms(e, (until - now + 999999u) / 1000000u);
    }
    pthread_mutex_unlock(&e->lock);
    etcd_watch_free(w);
    return 0;
}

/* One round: read the candidates, lead or follow. Returns 0 or an etcd error to back off. */
static int campaign_round(election *e, char *last_pred)
{
    etcd_range_req rq = {.key = e->prefix, .prefix = true, .limit = ELECTION_MAX_CANDIDATES,
                         .sort_order = ETCD_SORT_ASCEND, .sort_target = ETCD_SORT_CREATE};
    etcd_range_result r;
    int rc = etcd_range(e->c, &rq, &r);
    if (rc) {
        CLOG_WARN("election: reading %s failed: %s", e->prefix, etcd_last_error());
        return rc;
    }
    long pred;
    rc = election__position(r.kvs, r.n_kvs, e->key, &pred);
    if (rc) {
        etcd_range_result_free(&r);
        lose(e, "own candidate key disappeared (lease expired?)");
        return 0;
    }
    if (pred < 0) {
        etcd_range_result_free(&r);
        /* First in line. Lead only with a fresh proof; else wait for the next keep-alive. */
        if (!proven(e, now_ns(e)))
            return CURVE_ERR_TIMEOUT;
        int expect = atomic_load(&e->role);
        if ((expect == ELECTION_INIT || expect == ELECTION_FOLLOWER) &&
            atomic_compare_exchange_strong(&e->role, &expect, ELECTION_LEADER)) {
            CLOG_INFO("election: %s is leader (lease %" PRIx64 ")", e->key,
                      (uint64_t)atomic_load(&e->lease));
            lead(e);
        }
        return 0;
    }
    char pred_key[ELECTION_MAX_PREFIX + 24];
    snprintf(pred_key, sizeof(pred_key), "%s", r.kvs[pred].key);
    int64_t rev = r.revision + 1;
    etcd_range_result_free(&r);
    return follow(e, pred_key, rev, last_pred);
}

static void *campaign_main(void *arg)
{
    election *e = arg;
    char last_pred[ELECTION_MAX_PREFIX + 24] = "";
    if (grant_lease(e) == 0) {
        if (pthread_create(&e->keepalive_thread, NULL, keepalive_main, e) != 0) {
            lose(e, "cannot start the keep-alive thread");
        } else {
            e->keepalive_started = true;
            if (create_key(e) == 0) {
                backoff b = {0};
                while (running(e)) {
                    if (campaign_round(e, last_pred) == 0)
                        b.ms = 0;
                    else
                        backoff_wait(e, &b);
                }
            }
        }
    }
    pthread_mutex_lock(&e->lock);
    bool run_cb = e->lost_pending && !atomic_load(&e->stop);
    e->lost_pending = false;
    char why[WHY_MAX];
    snprintf(why, sizeof(why), "%s", e->why);
    pthread_mutex_unlock(&e->lock);
    if (run_cb) {
        CLOG_ERROR("election: lost: %s", why);
        if (e->cbs.lost_cb)
            e->cbs.lost_cb(e, why, e->cbs.arg);
    }
    return NULL;
}

int election_start(election *e)
{
    CURVE_ASSERT(!e->campaign_started);
    int rc = pthread_create(&e->campaign_thread, NULL, campaign_main, e);
    if (rc)
        return -rc;
    e->campaign_started = true;
    return 0;
}

void election_free(election *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->lock);
    atomic_store(&e->stop, true);
    int r = atomic_load(&e->role);
    if (r != ELECTION_LOST)
        atomic_store(&e->role, ELECTION_STOPPED);
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
    if (e->campaign_started)
        pthread_join(e->campaign_thread, NULL);
    if (e->keepalive_started)
        pthread_join(e->keepalive_thread, NULL);
    int64_t lease = atomic_load(&e->lease);
    if (lease && etcd_lease_revoke(e->c, lease) != 0)
        CLOG_WARN("election: revoking lease %" PRIx64 " failed: %s", (uint64_t)lease,
                  etcd_last_error());
    pthread_cond_destroy(&e->cond);
    pthread_mutex_destroy(&e->lock);
    free(e->value);
    free(e);
}
