/* etcd v3 JSON-gateway client: transport, retries and endpoint failover (see etcd.h). */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "common/assert.h"
#include "common/clock.h"
#include "common/failpoint.h"
#include "common/log.h"
#include "curve/errors.h"
#include "etcd/etcd_internal.h"

#define ETCD_ENDPOINT_MAX_LEN 200

struct etcd_client {
    char *endpoints[ETCD_MAX_ENDPOINTS]; /* "http://host:port", no trailing slash */
    size_t n;
    etcd_client_opts opts;
    atomic_size_t cur;           /* preferred endpoint; advanced on failure */
    pthread_mutex_t pool_lock;   /* protects pool[] and n_pool */
    CURL *pool[ETCD_HANDLE_POOL_MAX];
    size_t n_pool;
};

static _Thread_local char tls_err[ETCD_ERRMSG_MAX];

const char *etcd_last_error(void)
{
    return tls_err;
}

static void set_last_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_last_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_err, sizeof(tls_err), fmt, ap);
    va_end(ap);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;
static void curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void etcd_client_opts_init(etcd_client_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->request_timeout_ms = 2000;
    o->connect_timeout_ms = 500;
    o->max_attempts = 0;
    o->deadline_ms = 5000;
    o->retry_backoff_ms = 50;
}

int etcd_client_new(const char *const *endpoints, size_t n, const etcd_client_opts *opts,
                    etcd_client **out)
{
    *out = NULL;
    if (!endpoints || n == 0 || n > ETCD_MAX_ENDPOINTS) {
        set_last_error("etcd client: need 1..%d endpoints, got %zu", ETCD_MAX_ENDPOINTS, n);
        return -EINVAL;
    }
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK) {
        set_last_error("curl_global_init failed: %s", curl_easy_strerror(curl_init_rc));
        return -ENOMEM;
    }
    etcd_client *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    if (opts)
        c->opts = *opts;
    else
        etcd_client_opts_init(&c->opts);
    if (c->opts.request_timeout_ms == 0 || c->opts.deadline_ms == 0) {
        set_last_error("etcd client: request_timeout_ms and deadline_ms must be > 0");
        free(c);
        return -EINVAL;
    }
    if (c->opts.connect_timeout_ms == 0 || c->opts.connect_timeout_ms > c->opts.request_timeout_ms)
        c->opts.connect_timeout_ms = c->opts.request_timeout_ms;
    if (c->opts.max_attempts == 0)
        c->opts.max_attempts = (uint32_t)(2 * n);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const char *e = endpoints[i];
        size_t len = e ? strlen(e) : 0;
        while (len > 0 && e[len - 1] == '/')
            len--;
        if (len == 0 || len > ETCD_ENDPOINT_MAX_LEN) {
            set_last_error("etcd client: bad endpoint #%zu '%s'", i, e ? e : "(null)");
            rc = -EINVAL;
            goto err_after_alloc;
        }
        bool has_scheme = strstr(e, "://") != NULL;
        char *s = NULL;
        if (asprintf(&s, "%s%.*s", has_scheme ? "" : "http://", (int)len, e) < 0) {
            rc = -ENOMEM;
            goto err_after_alloc;
        }
        c->endpoints[i] = s;
        c->n = i + 1;
    }
    pthread_mutex_init(&c->pool_lock, NULL);
    atomic_init(&c->cur, 0);
    *out = c;
    return 0;

err_after_alloc:
    for (size_t i = 0; i < c->n; i++)
        free(c->endpoints[i]);
    free(c);
    return rc;
}

void etcd_client_free(etcd_client *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_pool; i++)
        curl_easy_cleanup(c->pool[i]);
    for (size_t i = 0; i < c->n; i++)
        free(c->endpoints[i]);
    pthread_mutex_destroy(&c->pool_lock);
    free(c);
}

size_t etcd_client_current_endpoint(etcd_client *c)
{
    return atomic_load(&c->cur) % c->n;
}

/* ---- handle pool ---- */

static CURL *handle_get(etcd_client *c)
{
    CURL *h = NULL;
    pthread_mutex_lock(&c->pool_lock);
    if (c->n_pool > 0)
        h = c->pool[--c->n_pool];
    pthread_mutex_unlock(&c->pool_lock);
    return h ? h : curl_easy_init();
}

static void handle_put(etcd_client *c, CURL *h)
{
    pthread_mutex_lock(&c->pool_lock);
    if (c->n_pool < ETCD_HANDLE_POOL_MAX) {
        c->pool[c->n_pool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->pool_lock);
    if (h)
        curl_easy_cleanup(h);
}

/* ---- one HTTP attempt ---- */

typedef struct resp_buf {
    char *data;
    size_t len, cap;
    bool too_big;
} resp_buf;

static size_t resp_write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    resp_buf *b = ud;
    size_t n = size * nmemb;
    if (b->len + n + 1 > ETCD_MAX_RESPONSE) {
        b->too_big = true;
        return 0;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

typedef enum {
    ATTEMPT_OK,            /* got an answer from etcd (maybe an error answer) */
    ATTEMPT_NOT_SENT,      /* could not connect: the request never reached etcd */
    ATTEMPT_MAYBE_SENT,    /* lost after connecting: etcd may have applied it */
    ATTEMPT_TIMEOUT,       /* timed out (connected or not) */
    ATTEMPT_FATAL,         /* local failure (ENOMEM, response too big) */
} attempt_status;

static void setup_common(CURL *h, struct curl_slist *hdrs, uint32_t connect_ms)
{
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)connect_ms);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
}

static struct curl_slist *json_headers(void)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    struct curl_slist *h2 = h ? curl_slist_append(h, "Expect:") : NULL; /* no 100-continue wait */
    if (!h2) {
        curl_slist_free_all(h);
        return NULL;
    }
    return h2;
}

static attempt_status http_post(etcd_client *c, const char *ep, const char *path,
                                const char *body, uint32_t timeout_ms, long *status,
                                resp_buf *rb)
{
    char url[ETCD_ENDPOINT_MAX_LEN + 64];
    snprintf(url, sizeof(url), "%s%s", ep, path);
    /* Fault injection (docs/etcd-client.md "Failpoints"): behave as if `ep` refused the
     * connection, so a test can cut one process off etcd while others keep using it. */
    int fp = CURVE_FAILPOINT("etcd.request");
    if (fp != 0) {
        set_last_error("etcd %s%s: %s (failpoint etcd.request)", ep, path, curve_strerror(fp));
        return ATTEMPT_NOT_SENT;
    }
    CURL *h = handle_get(c);
    struct curl_slist *hdrs = json_headers();
    if (!h || !hdrs) {
        if (h)
            curl_easy_cleanup(h);
        curl_slist_free_all(hdrs);
        set_last_error("etcd %s: out of memory", path);
        return ATTEMPT_FATAL;
    }
    curl_easy_reset(h);
    setup_common(h, hdrs, c->opts.connect_timeout_ms < timeout_ms ? c->opts.connect_timeout_ms
                                                                  : timeout_ms);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, resp_write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, rb);
    CURLcode cc = curl_easy_perform(h);
    attempt_status st = ATTEMPT_OK;
    if (cc == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    } else {
        long connect_ok = 0;
        curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &connect_ok);
        set_last_error("etcd %s%s: %s", ep, path, curl_easy_strerror(cc));
        if (rb->too_big) {
            set_last_error("etcd %s%s: response larger than %u bytes", ep, path,
                           ETCD_MAX_RESPONSE);
            st = ATTEMPT_FATAL;
        } else if (cc == CURLE_OPERATION_TIMEDOUT) {
            st = connect_ok ? ATTEMPT_TIMEOUT : ATTEMPT_NOT_SENT;
        } else if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST) {
            st = ATTEMPT_NOT_SENT;
        } else if (cc == CURLE_OUT_OF_MEMORY || cc == CURLE_WRITE_ERROR) {
            st = ATTEMPT_FATAL;
        } else {
            st = ATTEMPT_MAYBE_SENT;
        }
        if (st == ATTEMPT_NOT_SENT && cc == CURLE_OPERATION_TIMEDOUT) {
            /* connect timeout: report it as a timeout if nothing else succeeds */
            set_last_error("etcd %s%s: connect timed out", ep, path);
        }
    }
    handle_put(c, h);
    curl_slist_free_all(hdrs);
    return st;
}

/* How a call may be retried after an attempt that may have reached etcd. */
typedef enum { RETRY_ALWAYS, RETRY_IF_NOT_SENT } retry_mode;

static void advance_endpoint(etcd_client *c, size_t from)
{
    size_t expect = from;
    atomic_compare_exchange_strong(&c->cur, &expect, (from + 1) % c->n);
}

static void sleep_ms(uint32_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* Runs one request with retries; on success *out is the parsed response object. */
static int do_call(etcd_client *c, const char *path, const char *body, retry_mode mode,
                   bool stream, json_t **out)
{
    *out = NULL;
    uint64_t start = curve_now_mono_ms();
    uint64_t deadline = start + c->opts.deadline_ms;
    int last = 0;
    bool any_timeout = false, any_reply = false;
    char err[ETCD_ERRMSG_MAX] = "";
    for (uint32_t attempt = 0; attempt < c->opts.max_attempts; attempt++) {
        uint64_t now = curve_now_mono_ms();
        if (now >= deadline)
            break;
        if (attempt > 0 && attempt % c->n == 0)
            sleep_ms(c->opts.retry_backoff_ms < deadline - now ? c->opts.retry_backoff_ms
                                                               : (uint32_t)(deadline - now));
        now = curve_now_mono_ms();
        if (now >= deadline)
            break;
        uint32_t left = (uint32_t)(deadline - now);
        uint32_t tmo = c->opts.request_timeout_ms < left ? c->opts.request_timeout_ms : left;
        size_t ep = atomic_load(&c->cur) % c->n;
        long status = 0;
        resp_buf rb = {0};
        attempt_status st = http_post(c, c->endpoints[ep], path, body, tmo, &status, &rb);
        if (st == ATTEMPT_OK) {
            any_reply = true;
            int rc = etcd__parse_body(rb.data ? rb.data : "", rb.len, stream, out, err,
                                      sizeof(err));
            if (rc == 0 && status != 200) {
                json_decref(*out);
                *out = NULL;
                snprintf(err, sizeof(err), "HTTP status %ld", status);
                rc = CURVE_ERR_ETCD;
            }
            free(rb.data);
            if (rc == 0)
                return 0;
            set_last_error("etcd %s%s: %s", c->endpoints[ep], path, err);
            last = rc;
            if (rc != -EAGAIN || mode != RETRY_ALWAYS)
                break;
            advance_endpoint(c, ep);
            continue;
        }
        free(rb.data);
        if (st == ATTEMPT_FATAL)
            return -ENOMEM;
        advance_endpoint(c, ep);
        if (st == ATTEMPT_TIMEOUT)
            any_timeout = true;
        if (st != ATTEMPT_NOT_SENT && mode == RETRY_IF_NOT_SENT) {
            last = st == ATTEMPT_TIMEOUT ? CURVE_ERR_TIMEOUT : CURVE_ERR_ETCD;
            CLOG_WARN("%s (not retried: the request may have been applied)", tls_err);
            return last;
        }
        last = st == ATTEMPT_TIMEOUT ? CURVE_ERR_TIMEOUT : -ECONNREFUSED;
    }
    if (last == -EAGAIN)
        last = CURVE_ERR_ETCD;
    if (last == -ECONNREFUSED && any_timeout)
        last = CURVE_ERR_TIMEOUT;
    if (last == 0) { /* deadline passed before any attempt finished */
        last = CURVE_ERR_TIMEOUT;
        set_last_error("etcd %s: deadline of %u ms passed", path, c->opts.deadline_ms);
    } else if (!any_reply && (last == -ECONNREFUSED || last == CURVE_ERR_TIMEOUT)) {
        char tmp[ETCD_ERRMSG_MAX];
        snprintf(tmp, sizeof(tmp), "%s", tls_err);
        set_last_error("etcd %s: no endpoint answered within %llu ms (%zu endpoints); last: %s",
                       path, (unsigned long long)(curve_now_mono_ms() - start), c->n, tmp);
    }
    return last;
}

/* Encodes with `enc_rc`/`body`, runs the call, frees the body. */
static int call_json(etcd_client *c, const char *path, int enc_rc, char *body, retry_mode mode,
                     bool stream, json_t **out)
{
    *out = NULL;
    if (enc_rc) {
        free(body);
        set_last_error("etcd %s: %s", path,
                       enc_rc == -EINVAL ? "invalid argument" : "out of memory");
        return enc_rc;
    }
    int rc = do_call(c, path, body, mode, stream, out);
    free(body);
    return rc;
}

static int decoded(int rc, const char *path, const char *err)
{
    if (rc)
        set_last_error("etcd %s: %s", path, err[0] ? err : "out of memory");
    return rc;
}

/* ---- KV ---- */

int etcd_range(etcd_client *c, const etcd_range_req *req, etcd_range_result *out)
{
    memset(out, 0, sizeof(*out));
    char *body;
    int erc = etcd__enc_range(req, &body);
    json_t *o;
    int rc = call_json(c, "/v3/kv/range", erc, body, RETRY_ALWAYS, false, &o);
    if (rc)
        return rc;
    char err[ETCD_ERRMSG_MAX] = "";
    rc = etcd__dec_range(o, out, err, sizeof(err));
    json_decref(o);
    return decoded(rc, "/v3/kv/range", err);
}

int etcd_get(etcd_client *c, const char *key, etcd_range_result *out)
{
    etcd_range_req r = {.key = key};
    return etcd_range(c, &r, out);
}

int etcd_put(etcd_client *c, const char *key, const void *value, size_t value_len,
             int64_t lease, bool prev_kv, etcd_put_result *out)
{
    if (out)
        memset(out, 0, sizeof(*out));
    char *body;
    int erc = etcd__enc_put(key, value, value_len, lease, prev_kv, &body);
    json_t *o;
    /* A put is idempotent in its final state; a retry only bumps the revision once more. */
    int rc = call_json(c, "/v3/kv/put", erc, body, prev_kv ? RETRY_IF_NOT_SENT : RETRY_ALWAYS,
                       false, &o);
    if (rc)
        return rc;
    char err[ETCD_ERRMSG_MAX] = "";
    etcd_put_result tmp;
    rc = etcd__dec_put(o, &tmp, err, sizeof(err));
    json_decref(o);
    if (rc == 0 && out)
        *out = tmp;
    else if (rc == 0)
        etcd_put_result_free(&tmp);
    return decoded(rc, "/v3/kv/put", err);
}

int etcd_delete(etcd_client *c, const char *key, const char *range_end, bool prefix,
                bool prev_kv, etcd_delete_result *out)
{
    if (out)
        memset(out, 0, sizeof(*out));
    char *body;
    int erc = etcd__enc_delete(key, range_end, prefix, prev_kv, &body);
    json_t *o;
    int rc = call_json(c, "/v3/kv/deleterange", erc, body,
                       prev_kv || out ? RETRY_IF_NOT_SENT : RETRY_ALWAYS, false, &o);
    if (rc)
        return rc;
    char err[ETCD_ERRMSG_MAX] = "";
    etcd_delete_result tmp;
    rc = etcd__dec_delete(o, &tmp, err, sizeof(err));
    json_decref(o);
    if (rc == 0 && out)
        *out = tmp;
    else if (rc == 0)
        etcd_delete_result_free(&tmp);
    return decoded(rc, "/v3/kv/deleterange", err);
}

int etcd_txn(etcd_client *c, const etcd_compare *cmp, size_t n_cmp, const etcd_op *success,
             size_t n_success, const etcd_op *failure, size_t n_failure, etcd_txn_result *out)
{
    if (out)
        memset(out, 0, sizeof(*out));
    char *body;
    int erc = etcd__enc_txn(cmp, n_cmp, success, n_success, failure, n_failure, &body);
    json_t *o;
    int rc = call_json(c, "/v3/kv/txn", erc, body, RETRY_IF_NOT_SENT, false, &o);
    if (rc)
        return rc;
    char err[ETCD_ERRMSG_MAX] = "";
    etcd_txn_result tmp;
    rc = etcd__dec_txn(o, &tmp, err, sizeof(err));
    json_decref(o);
    if (rc == 0 && out)
        *out = tmp;
    else if (rc == 0)
        etcd_txn_result_free(&tmp);
    return decoded(rc, "/v3/kv/txn", err);
}

int etcd_compact(etcd_client *c, int64_t revision, bool physical)
{
    char *body;
    int erc = etcd__enc_compact(revision, physical, &body);
    json_t *o;
    int rc = call_json(c, "/v3/kv/compaction", erc, body, RETRY_ALWAYS, false, &o);
    json_decref(o);
    return rc;
}

/* ---- leases ---- */

int etcd_lease_grant(etcd_client *c, int64_t ttl_s, int64_t id, int64_t *id_out,
                     int64_t *ttl_out)
{
    char *body;
    int erc = etcd__enc_lease_grant(ttl_s, id, &body);
    json_t *o;
    /* A retried grant at worst leaks a lease that expires by itself after ttl_s. */
    int rc = call_json(c, "/v3/lease/grant", erc, body, id ? RETRY_IF_NOT_SENT : RETRY_ALWAYS,
                       false, &o);
    if (rc)
        return rc;
    char err[ETCD_ERRMSG_MAX] = "";
    int64_t gid = 0, gttl = 0;
    rc = etcd__dec_lease_grant(o, &gid, &gttl, err, sizeof(err));
    json_decref(o);
    if (rc == 0) {
        if (id_out)
            *id_out = gid;
        if (ttl_out)
            *ttl_out = gttl;
    }
    return decoded(rc, "/v3/lease/grant", err);
}

int etcd_lease_revoke(etcd_client *c, int64_t id)
{
    char *body;
    int erc = etcd__enc_lease_id(id, &body);
    json_t *o;
    int rc = call_json(c, "/v3/lease/revoke", erc, body, RETRY_ALWAYS, false, &o);
    json_decref(o);
    return rc;
}

int etcd_lease_keepalive_once(etcd_client *c, int64_t id, int64_t *ttl_out)
{
    char *body;
    int erc = etcd__enc_lease_id(id, &body);
    json_t *o;
    int rc = call_json(c, "/v3/lease/keepalive", erc, body, RETRY_ALWAYS, true, &o);
    if (rc)
        return rc;
    char err[ETCD_ERRMSG_MAX] = "";
    int64_t ttl = 0;
    rc = etcd__dec_keepalive(o, &ttl, err, sizeof(err));
    json_decref(o);
    if (rc == 0 && ttl_out)
        *ttl_out = ttl;
    return decoded(rc, "/v3/lease/keepalive", err);
}

int etcd_lease_ttl(etcd_client *c, int64_t id, bool keys, etcd_lease_info *out)
{
    memset(out, 0, sizeof(*out));
    char *body;
    int erc = etcd__enc_lease_ttl(id, keys, &body);
    json_t *o;
    int rc = call_json(c, "/v3/lease/timetolive", erc, body, RETRY_ALWAYS, false, &o);
    if (rc)
        return rc;
    char err[ETCD_ERRMSG_MAX] = "";
    rc = etcd__dec_lease_ttl(o, out, err, sizeof(err));
    json_decref(o);
    return decoded(rc, "/v3/lease/timetolive", err);
}

/* ---- watch ---- */

#define WATCH_POLL_MS 1000 /* multi poll period; cancel wakes it at once */

typedef enum { WS_STARTING, WS_RUNNING, WS_FAILED, WS_ENDED } watch_state;

struct etcd_watch {
    etcd_client *c;
    char *body;
    etcd_watch_cbs cbs;
    pthread_t thread;
    CURLM *multi;
    atomic_bool stop;
    pthread_mutex_t lock; /* protects state, start_rc, created_rev, err */
    pthread_cond_t cond;  /* signalled when state leaves WS_STARTING */
    watch_state state;
    int start_rc;
    int64_t created_rev;
    char err[ETCD_ERRMSG_MAX];
    /* watch-thread only: */
    resp_buf line;
    bool created;
    bool ended; /* error_cb already ran or the stream must stop */
    int end_rc;
    int64_t compact_rev;
    char end_msg[ETCD_ERRMSG_MAX];
};

static void watch_set_state(etcd_watch *w, watch_state s, int rc, int64_t rev, const char *msg)
{
    pthread_mutex_lock(&w->lock);
    w->state = s;
    w->start_rc = rc;
    w->created_rev = rev;
    if (msg)
        snprintf(w->err, sizeof(w->err), "%s", msg);
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* Handles one stream line. Returns false to abort the stream. */
static bool watch_line(etcd_watch *w, const char *line, size_t len)
{
    json_t *o = NULL;
    char err[ETCD_ERRMSG_MAX / 2] = "";
    int rc = etcd__parse_body(line, len, true, &o, err, sizeof(err));
    etcd__watch_resp r;
    if (rc == 0) {
        rc = etcd__dec_watch(o, &r, err, sizeof(err));
        json_decref(o);
    }
    if (rc) {
        w->end_rc = rc == -EAGAIN ? CURVE_ERR_ETCD : rc;
        snprintf(w->end_msg, sizeof(w->end_msg), "watch stream: %s", err);
        return false;
    }
    bool keep = true;
    if (r.created && !w->created) {
        w->created = true;
        watch_set_state(w, WS_RUNNING, 0, r.revision, NULL);
    }
    if (r.n_events > 0 && w->created && !atomic_load(&w->stop) && w->cbs.events_cb)
        w->cbs.events_cb(w, r.events, r.n_events, r.revision, w->cbs.arg);
    if (r.canceled) {
        w->end_rc = CURVE_ERR_ETCD;
        w->compact_rev = r.compact_revision;
        snprintf(w->end_msg, sizeof(w->end_msg), "watch canceled by etcd%s%s%s",
                 r.cancel_reason[0] ? ": " : "", r.cancel_reason,
                 r.compact_revision ? " (start revision compacted)" : "");
        keep = false;
    }
    etcd__watch_resp_free(&r);
    return keep;
}

static size_t watch_write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    etcd_watch *w = ud;
    size_t n = size * nmemb;
    if (atomic_load(&w->stop))
        return 0;
    if (resp_write_cb(ptr, size, nmemb, &w->line) != n) {
        w->end_rc = -ENOMEM;
        snprintf(w->end_msg, sizeof(w->end_msg), "watch stream: line too long or no memory");
        return 0;
    }
    for (;;) {
        char *nl = memchr(w->line.data, '\n', w->line.len);
        if (!nl)
            break;
        size_t ll = (size_t)(nl - w->line.data);
        bool keep = ll == 0 || watch_line(w, w->line.data, ll);
        memmove(w->line.data, nl + 1, w->line.len - ll - 1);
        w->line.len -= ll + 1;
        w->line.data[w->line.len] = '\0';
        if (!keep)
            return 0;
    }
    return n;
}

/* Runs one stream against `ep` until it ends or stop. Returns true once it was created. */
static void watch_run_stream(etcd_watch *w, const char *ep, uint64_t create_deadline_ms)
{
    char url[ETCD_ENDPOINT_MAX_LEN + 16];
    snprintf(url, sizeof(url), "%s/v3/watch", ep);
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = json_headers();
    if (!h || !hdrs) {
        w->end_rc = -ENOMEM;
        snprintf(w->end_msg, sizeof(w->end_msg), "watch: out of memory");
        goto out;
    }
    setup_common(h, hdrs, w->c->opts.connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, w->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(w->body));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, watch_write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, w);
    curl_multi_add_handle(w->multi, h);
    w->line.len = 0;
    w->end_rc = 0;
    w->end_msg[0] = '\0';
    int running = 1;
    while (running && !atomic_load(&w->stop)) {
        int fp = CURVE_FAILPOINT("etcd.request"); /* a cut-off process loses its streams too */
        if (fp != 0) {
            w->end_rc = -ECONNREFUSED;
            snprintf(w->end_msg, sizeof(w->end_msg), "watch %s: %s (failpoint etcd.request)",
                     ep, curve_strerror(fp));
            break;
        }
        CURLMcode mc = curl_multi_perform(w->multi, &running);
        if (mc != CURLM_OK) {
            w->end_rc = CURVE_ERR_ETCD;
            snprintf(w->end_msg, sizeof(w->end_msg), "watch: %s", curl_multi_strerror(mc));
            break;
        }
        if (!running)
            break;
        if (!w->created && curve_now_mono_ms() >= create_deadline_ms) {
            w->end_rc = CURVE_ERR_TIMEOUT;
            snprintf(w->end_msg, sizeof(w->end_msg), "watch %s: not created in time", ep);
            break;
        }
        curl_multi_poll(w->multi, NULL, 0, w->created ? WATCH_POLL_MS : 50, NULL);
    }
    int msgs;
    CURLMsg *m;
    while ((m = curl_multi_info_read(w->multi, &msgs))) {
        if (m->msg == CURLMSG_DONE && w->end_rc == 0) {
            long status = 0;
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
            w->end_rc = m->data.result == CURLE_COULDNT_CONNECT ? -ECONNREFUSED : CURVE_ERR_ETCD;
            if (m->data.result == CURLE_OK && status != 200 && w->line.len > 0) {
                json_t *o;
                char err[ETCD_ERRMSG_MAX / 2] = "";
                w->end_rc = etcd__parse_body(w->line.data, w->line.len, false, &o, err,
                                             sizeof(err));
                if (w->end_rc == 0) {
                    json_decref(o);
                    w->end_rc = CURVE_ERR_ETCD;
                }
                if (w->end_rc == -EAGAIN)
                    w->end_rc = CURVE_ERR_ETCD;
                snprintf(w->end_msg, sizeof(w->end_msg), "watch %s: HTTP %ld: %s", ep, status,
                         err);
            } else {
                snprintf(w->end_msg, sizeof(w->end_msg), "watch %s: stream ended: %s", ep,
                         m->data.result == CURLE_OK ? "closed by server"
                                                    : curl_easy_strerror(m->data.result));
            }
        }
    }
    if (w->end_rc == 0 && !atomic_load(&w->stop)) {
        w->end_rc = CURVE_ERR_ETCD;
        snprintf(w->end_msg, sizeof(w->end_msg), "watch %s: stream ended", ep);
    }
    curl_multi_remove_handle(w->multi, h);
out:
    if (h)
        curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
}

static void *watch_thread(void *arg)
{
    etcd_watch *w = arg;
    etcd_client *c = w->c;
    uint64_t deadline = curve_now_mono_ms() + c->opts.deadline_ms;
    /* Create the stream, trying endpoints like a call does. */
    for (uint32_t attempt = 0; attempt < c->opts.max_attempts && !atomic_load(&w->stop);
         attempt++) {
        if (curve_now_mono_ms() >= deadline)
            break;
        size_t ep = atomic_load(&c->cur) % c->n;
        uint64_t create_deadline = curve_now_mono_ms() + c->opts.request_timeout_ms;
        if (create_deadline > deadline)
            create_deadline = deadline;
        watch_run_stream(w, c->endpoints[ep], create_deadline);
        if (w->created)
            break;
        if (w->end_rc == -ENOMEM || w->end_rc == -EINVAL)
            break;
        advance_endpoint(c, ep);
        if ((attempt + 1) % c->n == 0)
            sleep_ms(c->opts.retry_backoff_ms);
    }
    if (!w->created) {
        int rc = w->end_rc ? w->end_rc : CURVE_ERR_TIMEOUT;
        watch_set_state(w, WS_FAILED, rc, 0, w->end_msg[0] ? w->end_msg : "watch not created");
        return NULL;
    }
    if (!atomic_load(&w->stop)) {
        CLOG_DEBUG("%s", w->end_msg);
        if (w->cbs.error_cb)
            w->cbs.error_cb(w, w->end_rc, w->end_msg, w->compact_rev, w->cbs.arg);
    }
    pthread_mutex_lock(&w->lock);
    w->state = WS_ENDED;
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int etcd_watch_start(etcd_client *c, const etcd_watch_req *req, const etcd_watch_cbs *cbs,
                     int64_t *created_revision, etcd_watch **out)
{
    *out = NULL;
    etcd_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->c = c;
    w->cbs = *cbs;
    int rc = etcd__enc_watch_create(req, &w->body);
    if (rc) {
        set_last_error("etcd watch: %s", rc == -EINVAL ? "invalid argument" : "out of memory");
        goto err_after_alloc;
    }
    w->multi = curl_multi_init();
    if (!w->multi) {
        rc = -ENOMEM;
        goto err_after_body;
    }
    atomic_init(&w->stop, false);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->state = WS_STARTING;
    rc = -pthread_create(&w->thread, NULL, watch_thread, w);
    if (rc) {
        set_last_error("etcd watch: cannot start thread");
        goto err_after_multi;
    }
    pthread_mutex_lock(&w->lock);
    while (w->state == WS_STARTING)
        pthread_cond_wait(&w->cond, &w->lock);
    rc = w->state == WS_FAILED ? w->start_rc : 0;
    int64_t rev = w->created_rev;
    pthread_mutex_unlock(&w->lock);
    if (rc) {
        set_last_error("%s", w->err);
        pthread_join(w->thread, NULL);
        goto err_after_sync;
    }
    if (created_revision)
        *created_revision = rev;
    *out = w;
    return 0;

err_after_sync:
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
err_after_multi:
    curl_multi_cleanup(w->multi);
err_after_body:
    free(w->body);
err_after_alloc:
    free(w->line.data);
    free(w);
    return rc;
}

void etcd_watch_free(etcd_watch *w)
{
    if (!w)
        return;
    atomic_store(&w->stop, true);
    curl_multi_wakeup(w->multi);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    curl_multi_cleanup(w->multi);
    free(w->body);
    free(w->line.data);
    free(w);
}
