/*
 * etcd_client_check: exercises the etcd client against a live etcd (driven by
 * tests/integration/test_etcd.py, which starts and stops etcd).
 *
 *   etcd_client_check <case> <endpoint> [<endpoint>...]
 *
 * cases: kv, txn, lease, watch, compact, failover (first endpoint dead), timeout (etcd paused),
 *        refused (nothing listening), watch_error (prints WATCHING, then waits for the stream
 *        to fail after the test kills etcd).
 * Prints "OK <case>" and exits 0, or "FAIL <case>: <what> (<file>:<line>)" and exits 1.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "curve/errors.h"
#include "etcd/etcd.h"

static const char *g_case = "?";

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("FAIL %s: %s (%s:%d) last error: %s\n", g_case, #cond, __FILE__, __LINE__,    \
                   etcd_last_error());                                                             \
            fflush(stdout);                                                                        \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_RC(expr)                                                                             \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != 0) {                                                                            \
            printf("FAIL %s: %s returned %d %s (%s:%d): %s\n", g_case, #expr, rc_,               \
                   curve_errname(rc_), __FILE__, __LINE__, etcd_last_error());                   \
            fflush(stdout);                                                                        \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define WAIT_MS 10000 /* bound of every wait for an asynchronous effect */

static char prefix[64];

static const char *k(const char *suffix, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s", prefix, suffix);
    return buf;
}

static void case_kv(etcd_client *c)
{
    char a[96], b[96], x[96];
    etcd_put_result pr;
    CHECK_RC(etcd_put(c, k("a", a, sizeof(a)), "1", 1, 0, false, &pr));
    CHECK(pr.revision > 0 && !pr.has_prev);
    int64_t rev1 = pr.revision;
    CHECK_RC(etcd_put(c, a, "two", 3, 0, true, &pr));
    CHECK(pr.has_prev && pr.prev.value_len == 1 && pr.prev.value[0] == '1');
    CHECK(pr.revision == rev1 + 1);
    etcd_put_result_free(&pr);
    static const char bin[] = {'x', 0, (char)0xff, 'y'};
    CHECK_RC(etcd_put(c, k("b", b, sizeof(b)), bin, sizeof(bin), 0, false, NULL));
    CHECK_RC(etcd_put(c, "zz-outside", "o", 1, 0, false, NULL));

    etcd_range_result r;
    CHECK_RC(etcd_get(c, a, &r));
    CHECK(r.n_kvs == 1 && strcmp(r.kvs[0].value, "two") == 0 && r.kvs[0].version == 2);
    CHECK(r.kvs[0].create_revision == rev1 && r.kvs[0].mod_revision == rev1 + 1);
    CHECK(r.revision >= rev1 + 1);
    etcd_range_result_free(&r);
    CHECK_RC(etcd_get(c, k("missing", x, sizeof(x)), &r));
    CHECK(r.n_kvs == 0 && r.count == 0);
    etcd_range_result_free(&r);

    /* prefix, binary values, limit, count_only, keys_only, old revision */
    etcd_range_req q = {.key = prefix, .prefix = true};
    CHECK_RC(etcd_range(c, &q, &r));
    CHECK(r.n_kvs == 2 && r.count == 2);
    CHECK(strcmp(r.kvs[0].key, a) == 0 && strcmp(r.kvs[1].key, b) == 0);
    CHECK(r.kvs[1].value_len == sizeof(bin) && memcmp(r.kvs[1].value, bin, sizeof(bin)) == 0);
    etcd_range_result_free(&r);
    q.limit = 1;
    CHECK_RC(etcd_range(c, &q, &r));
    CHECK(r.n_kvs == 1 && r.count == 2 && r.more);
    etcd_range_result_free(&r);
    q.limit = 0;
    q.count_only = true;
    CHECK_RC(etcd_range(c, &q, &r));
    CHECK(r.n_kvs == 0 && r.count == 2);
    etcd_range_result_free(&r);
    q.count_only = false;
    q.keys_only = true;
    CHECK_RC(etcd_range(c, &q, &r));
    CHECK(r.n_kvs == 2 && r.kvs[0].value_len == 0);
    etcd_range_result_free(&r);
    etcd_range_req old = {.key = a, .revision = rev1};
    CHECK_RC(etcd_range(c, &old, &r));
    CHECK(r.n_kvs == 1 && strcmp(r.kvs[0].value, "1") == 0);
    etcd_range_result_free(&r);
    etcd_range_req future = {.key = a, .revision = rev1 + 1000000};
    CHECK(etcd_range(c, &future, &r) == CURVE_ERR_ETCD);
    CHECK(strstr(etcd_last_error(), "future revision") != NULL);

    /* delete: one key with prev_kv, then the prefix */
    etcd_delete_result d;
    CHECK_RC(etcd_delete(c, a, NULL, false, true, &d));
    CHECK(d.deleted == 1 && d.n_prev_kvs == 1 && strcmp(d.prev_kvs[0].value, "two") == 0);
    etcd_delete_result_free(&d);
    CHECK_RC(etcd_put(c, a, "3", 1, 0, false, NULL));
    CHECK_RC(etcd_delete(c, prefix, NULL, true, false, &d));
    CHECK(d.deleted == 2);
    etcd_delete_result_free(&d);
    CHECK_RC(etcd_range(c, &(etcd_range_req){.key = prefix, .prefix = true}, &r));
    CHECK(r.n_kvs == 0);
    etcd_range_result_free(&r);
    CHECK_RC(etcd_get(c, "zz-outside", &r));
    CHECK(r.n_kvs == 1); /* the prefix delete stayed inside the prefix */
    etcd_range_result_free(&r);
    CHECK_RC(etcd_delete(c, "zz-outside", NULL, false, false, NULL));

    /* bad arguments are rejected locally */
    CHECK(etcd_put(c, NULL, "v", 1, 0, false, NULL) == -EINVAL);
}

static void case_txn(etcd_client *c)
{
    char a[96], b[96];
    k("a", a, sizeof(a));
    k("b", b, sizeof(b));
    /* create-if-absent: compare create_revision == 0 */
    etcd_compare absent = {.key = a, .target = ETCD_CMP_CREATE, .result = ETCD_CMP_EQUAL};
    etcd_op put1 = {.type = ETCD_OP_PUT, .key = a, .value = "v1", .value_len = 2};
    etcd_op get = {.type = ETCD_OP_RANGE, .key = a};
    etcd_txn_result t;
    CHECK_RC(etcd_txn(c, &absent, 1, &put1, 1, &get, 1, &t));
    CHECK(t.succeeded && t.n_results == 1 && t.results[0].type == ETCD_OP_PUT);
    int64_t crev = t.revision;
    etcd_txn_result_free(&t);
    CHECK_RC(etcd_txn(c, &absent, 1, &put1, 1, &get, 1, &t));
    CHECK(!t.succeeded && t.n_results == 1 && t.results[0].type == ETCD_OP_RANGE);
    CHECK(t.results[0].range.n_kvs == 1 && t.results[0].range.kvs[0].create_revision == crev);
    etcd_txn_result_free(&t);

    /* compare on value: EQUAL / NOT_EQUAL, success puts two keys atomically */
    etcd_compare veq = {.key = a, .target = ETCD_CMP_VALUE, .result = ETCD_CMP_EQUAL,
                        .value = "v1", .value_len = 2};
    etcd_op two[2] = {{.type = ETCD_OP_PUT, .key = a, .value = "v2", .value_len = 2},
                      {.type = ETCD_OP_PUT, .key = b, .value = "w", .value_len = 1}};
    CHECK_RC(etcd_txn(c, &veq, 1, two, 2, NULL, 0, &t));
    CHECK(t.succeeded && t.n_results == 2);
    etcd_txn_result_free(&t);
    CHECK_RC(etcd_txn(c, &veq, 1, two, 2, NULL, 0, &t)); /* value is now v2 */
    CHECK(!t.succeeded && t.n_results == 0);
    etcd_txn_result_free(&t);
    etcd_compare vne = veq;
    vne.result = ETCD_CMP_NOT_EQUAL;
    CHECK_RC(etcd_txn(c, &vne, 1, NULL, 0, NULL, 0, &t));
    CHECK(t.succeeded);
    etcd_txn_result_free(&t);

    /* version / mod_revision with GREATER / LESS */
    etcd_range_result r;
    CHECK_RC(etcd_get(c, a, &r));
    int64_t mod = r.kvs[0].mod_revision;
    CHECK(r.kvs[0].version == 2);
    etcd_range_result_free(&r);
    etcd_compare vg = {.key = a, .target = ETCD_CMP_VERSION, .result = ETCD_CMP_GREATER,
                       .number = 1};
    etcd_compare ml = {.key = a, .target = ETCD_CMP_MOD, .result = ETCD_CMP_LESS, .number = mod};
    etcd_compare both[2] = {vg, ml};
    CHECK_RC(etcd_txn(c, &vg, 1, NULL, 0, NULL, 0, &t));
    CHECK(t.succeeded);
    etcd_txn_result_free(&t);
    CHECK_RC(etcd_txn(c, both, 2, NULL, 0, NULL, 0, &t)); /* mod < mod is false */
    CHECK(!t.succeeded);
    etcd_txn_result_free(&t);
    ml.number = mod + 1;
    both[1] = ml;
    etcd_op del = {.type = ETCD_OP_DELETE, .key = prefix, .prefix = true, .prev_kv = true};
    CHECK_RC(etcd_txn(c, both, 2, &del, 1, NULL, 0, &t));
    CHECK(t.succeeded && t.results[0].type == ETCD_OP_DELETE && t.results[0].del.deleted == 2);
    CHECK(t.results[0].del.n_prev_kvs == 2);
    etcd_txn_result_free(&t);

    /* range compares: "no key under the prefix" holds on the (now empty) prefix only */
    etcd_compare none = {.key = prefix, .prefix = true, .target = ETCD_CMP_CREATE,
                         .result = ETCD_CMP_EQUAL};
    CHECK_RC(etcd_txn(c, &none, 1, &put1, 1, NULL, 0, &t));
    CHECK(t.succeeded);
    etcd_txn_result_free(&t);
    CHECK_RC(etcd_txn(c, &none, 1, &put1, 1, NULL, 0, &t)); /* a exists now */
    CHECK(!t.succeeded);
    etcd_txn_result_free(&t);
    char cend[96];
    k("c", cend, sizeof(cend));
    etcd_compare rng = {.key = b, .range_end = cend, .target = ETCD_CMP_CREATE,
                        .result = ETCD_CMP_EQUAL};
    CHECK_RC(etcd_txn(c, &rng, 1, NULL, 0, NULL, 0, &t)); /* [b, c) is empty */
    CHECK(t.succeeded);
    etcd_txn_result_free(&t);
    rng.key = a; /* [a, c) holds a */
    CHECK_RC(etcd_txn(c, &rng, 1, NULL, 0, NULL, 0, &t));
    CHECK(!t.succeeded);
    etcd_txn_result_free(&t);
    etcd_compare vall = {.key = prefix, .prefix = true, .target = ETCD_CMP_VERSION,
                         .result = ETCD_CMP_EQUAL, .number = 1}; /* every key: version 1 */
    CHECK_RC(etcd_txn(c, &vall, 1, NULL, 0, NULL, 0, &t));
    CHECK(t.succeeded);
    etcd_txn_result_free(&t);
    CHECK_RC(etcd_delete(c, a, NULL, false, false, NULL));
}

static bool key_exists(etcd_client *c, const char *key)
{
    etcd_range_result r;
    CHECK_RC(etcd_get(c, key, &r));
    bool e = r.n_kvs == 1;
    etcd_range_result_free(&r);
    return e;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void case_lease(etcd_client *c)
{
    char a[96];
    k("leased", a, sizeof(a));
    int64_t id = 0, ttl = 0;
    CHECK_RC(etcd_lease_grant(c, 2, 0, &id, &ttl));
    CHECK(id > 0 && ttl == 2);
    CHECK_RC(etcd_put(c, a, "x", 1, id, false, NULL));
    etcd_lease_info li;
    CHECK_RC(etcd_lease_ttl(c, id, true, &li));
    CHECK(li.granted_ttl == 2 && li.ttl <= 2 && li.n_keys == 1 && strcmp(li.keys[0], a) == 0);
    etcd_lease_info_free(&li);
    /* Keep it alive for 2 TTLs: the key must survive (pacing, not synchronisation). */
    uint64_t until = curve_now_mono_ms() + 4000;
    while (curve_now_mono_ms() < until) {
        CHECK_RC(etcd_lease_keepalive_once(c, id, &ttl));
        CHECK(ttl == 2);
        sleep_ms(500);
    }
    CHECK(key_exists(c, a));
    /* Stop: the lease expires and deletes the key (bounded wait). */
    uint64_t t0 = curve_now_mono_ms();
    while (key_exists(c, a)) {
        CHECK(curve_now_mono_ms() - t0 < WAIT_MS);
        sleep_ms(50);
    }
    uint64_t gone_ms = curve_now_mono_ms() - t0;
    printf("lease expiry deleted the key %" PRIu64 " ms after the last keep-alive\n", gone_ms);
    CHECK(gone_ms >= 1000); /* not before ~TTL */
    CHECK(etcd_lease_keepalive_once(c, id, &ttl) == CURVE_ERR_NOT_FOUND);
    CHECK(etcd_lease_ttl(c, id, false, &li) == CURVE_ERR_NOT_FOUND);
    CHECK(etcd_lease_revoke(c, id) == CURVE_ERR_NOT_FOUND);
    /* revoke deletes attached keys at once */
    CHECK_RC(etcd_lease_grant(c, 30, 0, &id, NULL));
    CHECK_RC(etcd_put(c, a, "y", 1, id, false, NULL));
    CHECK_RC(etcd_lease_revoke(c, id));
    CHECK(!key_exists(c, a));
}

/* Watch collector */
#define MAX_EVENTS 16
typedef struct collector {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int n;
    etcd_event_type type[MAX_EVENTS];
    char key[MAX_EVENTS][96];
    char value[MAX_EVENTS][16];
    int64_t mod_rev[MAX_EVENTS];
    bool failed;
    int err;
    int64_t compact;
    char msg[256];
} collector;

static void ev_cb(etcd_watch *w, const etcd_event *ev, size_t n, int64_t rev, void *arg)
{
    collector *col = arg;
    pthread_mutex_lock(&col->lock);
    for (size_t i = 0; i < n && col->n < MAX_EVENTS; i++) {
        col->type[col->n] = ev[i].type;
        snprintf(col->key[col->n], 96, "%s", ev[i].kv.key);
        snprintf(col->value[col->n], 16, "%s", ev[i].kv.value);
        col->mod_rev[col->n] = ev[i].kv.mod_revision;
        col->n++;
    }
    pthread_cond_broadcast(&col->cond);
    pthread_mutex_unlock(&col->lock);
}

static void err_cb(etcd_watch *w, int err, const char *msg, int64_t compact, void *arg)
{
    collector *col = arg;
    pthread_mutex_lock(&col->lock);
    col->failed = true;
    col->err = err;
    snprintf(col->msg, sizeof(col->msg), "%s", msg);
    pthread_cond_broadcast(&col->cond);
    pthread_mutex_unlock(&col->lock);
}

static void compact_cb(etcd_watch *w, int err, const char *msg, int64_t compact, void *arg)
{
    collector *col = arg;
    pthread_mutex_lock(&col->lock);
    col->compact = compact;
    pthread_mutex_unlock(&col->lock);
    err_cb(w, err, msg, compact, arg);
}

static void wait_for(collector *col, int n_events, bool failed)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&col->lock);
    while (!(col->n >= n_events && (!failed || col->failed))) {
        if (pthread_cond_timedwait(&col->cond, &col->lock, &ts) == ETIMEDOUT)
            break;
    }
    bool ok = col->n >= n_events && (!failed || col->failed);
    pthread_mutex_unlock(&col->lock);
    CHECK(ok);
}

static void case_watch(etcd_client *c)
{
    char a[96], b[96];
    k("a", a, sizeof(a));
    k("b", b, sizeof(b));
    collector col = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    etcd_watch_req wr = {.key = prefix, .prefix = true};
    etcd_watch_cbs cbs = {.events_cb = ev_cb, .error_cb = err_cb, .arg = &col};
    etcd_watch *w;
    int64_t created = 0;
    CHECK_RC(etcd_watch_start(c, &wr, &cbs, &created, &w));
    CHECK(created > 0);
    CHECK_RC(etcd_put(c, "zz-not-watched", "n", 1, 0, false, NULL));
    CHECK_RC(etcd_put(c, a, "1", 1, 0, false, NULL));
    CHECK_RC(etcd_put(c, b, "2", 1, 0, false, NULL));
    CHECK_RC(etcd_delete(c, a, NULL, false, false, NULL));
    wait_for(&col, 3, false);
    CHECK(col.n == 3);
    CHECK(col.type[0] == ETCD_EV_PUT && strcmp(col.key[0], a) == 0 &&
          strcmp(col.value[0], "1") == 0);
    CHECK(col.type[1] == ETCD_EV_PUT && strcmp(col.key[1], b) == 0);
    CHECK(col.type[2] == ETCD_EV_DELETE && strcmp(col.key[2], a) == 0);
    CHECK(col.mod_rev[0] < col.mod_rev[1] && col.mod_rev[1] < col.mod_rev[2]);
    CHECK(!col.failed);
    uint64_t t0 = curve_now_mono_ms();
    etcd_watch_free(w);
    CHECK(curve_now_mono_ms() - t0 < 1000); /* cancel does not wait for the network */

    /* A watch from a past revision replays history. */
    collector col2 = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    cbs.arg = &col2;
    wr.start_revision = col.mod_rev[0];
    wr.no_put = true; /* filter: deletes only */
    CHECK_RC(etcd_watch_start(c, &wr, &cbs, NULL, &w));
    wait_for(&col2, 1, false);
    CHECK(col2.type[0] == ETCD_EV_DELETE && col2.mod_rev[0] == col.mod_rev[2]);
    etcd_watch_free(w);
    CHECK_RC(etcd_delete(c, prefix, NULL, true, false, NULL));
    CHECK_RC(etcd_delete(c, "zz-not-watched", NULL, false, false, NULL));
}

static void case_compact(etcd_client *c)
{
    char a[96];
    k("a", a, sizeof(a));
    etcd_put_result pr;
    CHECK_RC(etcd_put(c, a, "1", 1, 0, false, &pr));
    int64_t first = pr.revision;
    CHECK_RC(etcd_put(c, a, "2", 1, 0, false, &pr));
    CHECK_RC(etcd_put(c, a, "3", 1, 0, false, &pr));
    CHECK_RC(etcd_compact(c, pr.revision, true));
    etcd_range_result r;
    CHECK(etcd_range(c, &(etcd_range_req){.key = a, .revision = first}, &r) == CURVE_ERR_ETCD);
    CHECK(strstr(etcd_last_error(), "compacted") != NULL);
    /* a watch from a compacted revision is created, then canceled with compact_revision */
    collector col = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    etcd_watch_cbs cbs = {.events_cb = ev_cb, .error_cb = compact_cb, .arg = &col};
    etcd_watch *w;
    CHECK_RC(etcd_watch_start(c, &(etcd_watch_req){.key = a, .start_revision = first}, &cbs,
                              NULL, &w));
    wait_for(&col, 0, true);
    printf("watch from compacted revision: %s (compact revision %lld)\n", col.msg,
           (long long)col.compact);
    CHECK(col.err == CURVE_ERR_ETCD && col.compact == pr.revision && col.n == 0);
    etcd_watch_free(w);
    CHECK(etcd_compact(c, 0, false) == -EINVAL);
    CHECK_RC(etcd_delete(c, a, NULL, false, false, NULL));
}

static void case_watch_error(etcd_client *c)
{
    collector col = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    etcd_watch_req wr = {.key = prefix, .prefix = true};
    etcd_watch_cbs cbs = {.events_cb = ev_cb, .error_cb = err_cb, .arg = &col};
    etcd_watch *w;
    CHECK_RC(etcd_watch_start(c, &wr, &cbs, NULL, &w));
    printf("WATCHING\n");
    fflush(stdout);
    wait_for(&col, 0, true); /* the test kills etcd now */
    printf("watch error reported: %s (%s)\n", col.msg, curve_errname(col.err));
    CHECK(col.err < 0);
    etcd_watch_free(w);
}

static void case_failover(etcd_client *c)
{
    /* endpoint 0 is dead: the first call fails over and the client stays on endpoint 1 */
    char a[96];
    CHECK(etcd_client_current_endpoint(c) == 0);
    CHECK_RC(etcd_put(c, k("f", a, sizeof(a)), "1", 1, 0, false, NULL));
    CHECK(etcd_client_current_endpoint(c) == 1);
    etcd_range_result r;
    CHECK_RC(etcd_get(c, a, &r));
    CHECK(r.n_kvs == 1);
    etcd_range_result_free(&r);
    CHECK(etcd_client_current_endpoint(c) == 1);
    collector col = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    etcd_watch_cbs cbs = {.events_cb = ev_cb, .error_cb = err_cb, .arg = &col};
    etcd_watch *w;
    CHECK_RC(etcd_watch_start(c, &(etcd_watch_req){.key = a}, &cbs, NULL, &w));
    CHECK_RC(etcd_delete(c, a, NULL, false, false, NULL));
    wait_for(&col, 1, false);
    etcd_watch_free(w);
}

static void case_down(etcd_client *c, int expect)
{
    uint64_t t0 = curve_now_mono_ms();
    etcd_range_result r;
    int rc = etcd_get(c, "x", &r);
    uint64_t el = curve_now_mono_ms() - t0;
    printf("get with etcd down: %d %s after %" PRIu64 " ms: %s\n", rc, curve_errname(rc), el,
           etcd_last_error());
    CHECK(rc == expect);
    CHECK(el < 3000); /* opts below: deadline 1500 ms */
    CHECK(strlen(etcd_last_error()) > 0);
    int64_t ttl;
    CHECK(etcd_lease_keepalive_once(c, 1, &ttl) == expect);
    etcd_watch *w;
    etcd_watch_cbs cbs = {0};
    CHECK(etcd_watch_start(c, &(etcd_watch_req){.key = "x"}, &cbs, NULL, &w) != 0);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s <case> <endpoint>...\n", argv[0]);
        return 2;
    }
    g_case = argv[1];
    snprintf(prefix, sizeof(prefix), "/check/%d/%s/", (int)getpid(), g_case);
    etcd_client_opts o;
    etcd_client_opts_init(&o);
    o.request_timeout_ms = 500;
    o.connect_timeout_ms = 300;
    o.deadline_ms = 1500;
    etcd_client *c;
    CHECK_RC(etcd_client_new((const char *const *)argv + 2, (size_t)(argc - 2), &o, &c));
    if (strcmp(g_case, "kv") == 0)
        case_kv(c);
    else if (strcmp(g_case, "txn") == 0)
        case_txn(c);
    else if (strcmp(g_case, "lease") == 0)
        case_lease(c);
    else if (strcmp(g_case, "watch") == 0)
        case_watch(c);
    else if (strcmp(g_case, "compact") == 0)
        case_compact(c);
    else if (strcmp(g_case, "watch_error") == 0)
        case_watch_error(c);
    else if (strcmp(g_case, "failover") == 0)
        case_failover(c);
    else if (strcmp(g_case, "timeout") == 0)
        case_down(c, CURVE_ERR_TIMEOUT);
    else if (strcmp(g_case, "refused") == 0)
        case_down(c, -ECONNREFUSED);
    else {
        fprintf(stderr, "unknown case %s\n", g_case);
        return 2;
    }
    etcd_client_free(c);
    printf("OK %s\n", g_case);
    return 0;
}
