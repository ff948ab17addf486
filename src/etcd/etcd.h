/*
 * etcd v3 client over the JSON gateway (etcd 3.4: POST http://<endpoint>/v3/...).
 *
 * A blocking, thread-safe client: any thread may call any function on one etcd_client at the
 * same time (each call borrows a libcurl easy handle from a small pool, so keep-alive connections
 * are reused). Watches run a streaming request on their own thread and deliver events to a
 * callback on that thread.
 *
 * Keys are NUL-terminated strings (Curve keys are text, see docs/etcd-client.md for the layout);
 * values are byte strings (pointer + length) and may hold anything, including NUL bytes.
 *
 * Errors: every function returns 0 or a negative code:
 *   -EINVAL               bad argument (also: etcd answered "invalid argument")
 *   -ENOMEM               allocation failure
 *   -ECONNREFUSED         no endpoint could be reached (every attempt failed to connect)
 *   CURVE_ERR_TIMEOUT     an attempt timed out and the retry budget is spent
 *   CURVE_ERR_NOT_FOUND   etcd answered "not found" (e.g. unknown or expired lease)
 *   CURVE_ERR_ETCD        any other etcd error (HTTP error, gRPC code, malformed response)
 * and the text of the last error of the calling thread is kept: etcd_last_error().
 *
 * Retry rules (docs/etcd-client.md): an attempt goes to the "current" endpoint; on a connection
 * error, a timeout, or an etcd "unavailable" answer the next endpoint becomes current and the
 * call is retried, at most opts.max_attempts attempts and never past opts.deadline_ms.
 * Transactions are only retried when the request could not have reached etcd (connect failure),
 * because a retried txn whose first attempt was applied would report the wrong outcome.
 */
#ifndef CURVE_ETCD_ETCD_H
#define CURVE_ETCD_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bounds (CONVENTIONS §7). */
#define ETCD_MAX_ENDPOINTS 16       /* endpoints per client */
#define ETCD_HANDLE_POOL_MAX 8      /* idle curl handles kept for reuse */
#define ETCD_MAX_RESPONSE (64u << 20) /* largest response body accepted (bytes) */
#define ETCD_MAX_TXN_OPS 128        /* etcd's own default --max-txn-ops */
#define ETCD_ERRMSG_MAX 512         /* length of the last-error text */

typedef struct etcd_client etcd_client;

typedef struct etcd_client_opts {
    uint32_t request_timeout_ms; /* one HTTP attempt, connect included (default 2000) */
    uint32_t connect_timeout_ms; /* TCP connect of one attempt (default 500) */
    uint32_t max_attempts;       /* attempts per call over all endpoints (default 2 * n, >= 1) */
    uint32_t deadline_ms;        /* whole call including retries (default 5000) */
    uint32_t retry_backoff_ms;   /* pause after each full round of failed endpoints (default 50) */
} etcd_client_opts;

/* Fills `o` with the defaults above (max_attempts 0 = "2 * number of endpoints"). */
void etcd_client_opts_init(etcd_client_opts *o);

/* Creates a client for `n` endpoints ("http://127.0.0.1:2379" or "127.0.0.1:2379"; copied).
 * `opts` may be NULL for defaults. Does not contact etcd. Returns 0 and sets *out, -EINVAL
 * (n == 0, n > ETCD_MAX_ENDPOINTS, empty or too long endpoint), -ENOMEM. */
int etcd_client_new(const char *const *endpoints, size_t n, const etcd_client_opts *opts,
                    etcd_client **out);
/* Frees the client. No call may be in progress and every watch created on it must have been
 * freed first. NULL is ignored. */
void etcd_client_free(etcd_client *c);

/* Text of the last error returned to the calling thread by any etcd_* call ("" if none).
 * Thread-local; valid until the next etcd_* call on this thread. */
const char *etcd_last_error(void);

/* Index of the endpoint the client currently prefers (after failovers), for tests and status. */
size_t etcd_client_current_endpoint(etcd_client *c);

/* ---- data ---------------------------------------------------------------------------------- */

/* A key-value pair as stored in etcd. key and value are NUL-terminated copies owned by the
 * result that contains them (value may also contain NULs: use value_len). */
typedef struct etcd_kv {
    char *key;
    size_t key_len;
    char *value;
    size_t value_len;
    int64_t create_revision;
    int64_t mod_revision;
    int64_t version;
    int64_t lease;
} etcd_kv;

typedef struct etcd_range_result {
    int64_t revision; /* header revision */
    etcd_kv *kvs;
    size_t n_kvs;
    int64_t count; /* number of keys in the range (may exceed n_kvs with a limit) */
    bool more;
} etcd_range_result;

/* Frees what a range result owns and zeroes it. NULL is ignored. */
void etcd_range_result_free(etcd_range_result *r);
void etcd_kv_free(etcd_kv *kv);

typedef enum { ETCD_SORT_NONE = 0, ETCD_SORT_ASCEND = 1, ETCD_SORT_DESCEND = 2 } etcd_sort_order;
typedef enum {
    ETCD_SORT_KEY = 0,
    ETCD_SORT_VERSION = 1,
    ETCD_SORT_CREATE = 2,
    ETCD_SORT_MOD = 3,
    ETCD_SORT_VALUE = 4,
} etcd_sort_target;

/* A range request. Zero-initialise, then set what you need. Borrowed for the call only. */
typedef struct etcd_range_req {
    const char *key;       /* required */
    const char *range_end; /* NULL: the single key (unless prefix/from_key) */
    bool prefix;           /* every key starting with `key` (range_end ignored) */
    bool from_key;         /* every key >= `key` */
    int64_t limit;         /* 0 = no limit */
    int64_t revision;      /* 0 = latest */
    bool keys_only;
    bool count_only;
    bool serializable;     /* read the local member without a quorum round (may be stale) */
    etcd_sort_order sort_order;
    etcd_sort_target sort_target;
} etcd_range_req;

/* Runs a range. On success fills *out (free with etcd_range_result_free); on error *out is
 * zeroed. */
int etcd_range(etcd_client *c, const etcd_range_req *req, etcd_range_result *out);

/* Shorthand: reads one key. Returns 0 with out->n_kvs 0 or 1. */
int etcd_get(etcd_client *c, const char *key, etcd_range_result *out);

typedef struct etcd_put_result {
    int64_t revision; /* header revision (the revision of this put) */
    bool has_prev;
    etcd_kv prev; /* when prev_kv was asked and the key existed */
} etcd_put_result;
void etcd_put_result_free(etcd_put_result *r);

/* Puts key = value (value_len bytes, may be 0). lease 0 = none. prev_kv asks for the previous
 * pair in out->prev. `out` may be NULL. */
int etcd_put(etcd_client *c, const char *key, const void *value, size_t value_len,
             int64_t lease, bool prev_kv, etcd_put_result *out);

typedef struct etcd_delete_result {
    int64_t revision;
    int64_t deleted;
    etcd_kv *prev_kvs; /* when prev_kv was asked */
    size_t n_prev_kvs;
} etcd_delete_result;
void etcd_delete_result_free(etcd_delete_result *r);

/* Deletes `key`, or the range [key, range_end), or every key with prefix `key` (prefix=true).
 * `out` may be NULL. */
int etcd_delete(etcd_client *c, const char *key, const char *range_end, bool prefix,
                bool prev_kv, etcd_delete_result *out);

/* Compacts the key-value history up to `revision` (physical: wait until it is applied).
 * Watches and reads of older revisions then fail (watches report compact_revision). */
int etcd_compact(etcd_client *c, int64_t revision, bool physical);

/* ---- transactions ------------------------------------------------------------------------ */

typedef enum {
    ETCD_CMP_EQUAL = 0,
    ETCD_CMP_GREATER = 1,
    ETCD_CMP_LESS = 2,
    ETCD_CMP_NOT_EQUAL = 3,
} etcd_cmp_result;

typedef enum {
    ETCD_CMP_VERSION = 0,
    ETCD_CMP_CREATE = 1, /* create_revision (0 = key does not exist) */
    ETCD_CMP_MOD = 2,
    ETCD_CMP_VALUE = 3,
    ETCD_CMP_LEASE = 4,
} etcd_cmp_target;

/* A compare on one key, or on every key of a range (etcd >= 3.3): with `range_end` (the range
 * [key, range_end)) or `prefix` (every key starting with `key`; range_end ignored) the compare
 * holds when it holds for every key in the range; on an empty range it is evaluated against a
 * key that does not exist (version, create and mod revision 0, lease 0), except that a VALUE
 * compare on an empty range fails. "No key under prefix P" is therefore
 * {.key = P, .prefix = true, .target = ETCD_CMP_CREATE, .result = ETCD_CMP_EQUAL, .number = 0}.
 * The strings are borrowed for the duration of the call. */
typedef struct etcd_compare {
    const char *key;
    etcd_cmp_target target;
    etcd_cmp_result result;
    int64_t number;    /* for VERSION / CREATE / MOD / LEASE */
    const void *value; /* for VALUE */
    size_t value_len;
    const char *range_end; /* NULL: the single key (unless prefix) */
    bool prefix;           /* every key starting with `key` */
} etcd_compare;

typedef enum { ETCD_OP_RANGE = 0, ETCD_OP_PUT = 1, ETCD_OP_DELETE = 2 } etcd_op_type;

typedef struct etcd_op {
    etcd_op_type type;
    const char *key;
    const char *range_end; /* RANGE / DELETE */
    bool prefix;           /* RANGE / DELETE */
    const void *value;     /* PUT */
    size_t value_len;      /* PUT */
    int64_t lease;         /* PUT */
    int64_t limit;         /* RANGE */
    bool prev_kv;          /* PUT / DELETE */
} etcd_op;

typedef struct etcd_op_result {
    etcd_op_type type;
    etcd_range_result range;   /* RANGE: kvs, count, more */
    etcd_put_result put;       /* PUT: prev */
    etcd_delete_result del;    /* DELETE: deleted, prev_kvs */
} etcd_op_result;

typedef struct etcd_txn_result {
    int64_t revision;
    bool succeeded; /* all compares held: the success ops ran; else the failure ops ran */
    etcd_op_result *results;
    size_t n_results;
} etcd_txn_result;
void etcd_txn_result_free(etcd_txn_result *r);

/* Runs "if all `cmp` then `success` else `failure`" atomically. Up to ETCD_MAX_TXN_OPS ops per
 * branch. `out` may be NULL (then only the return code says it ran; succeeded is lost, so pass
 * one). Not retried once the request may have reached etcd (see the header comment). */
int etcd_txn(etcd_client *c, const etcd_compare *cmp, size_t n_cmp, const etcd_op *success,
             size_t n_success, const etcd_op *failure, size_t n_failure, etcd_txn_result *out);

/* ---- leases ------------------------------------------------------------------------------- */

/* Grants a lease of `ttl_s` seconds (id 0 = let etcd choose). Returns the id in *id_out and the
 * granted TTL in *ttl_out (may be NULL). */
int etcd_lease_grant(etcd_client *c, int64_t ttl_s, int64_t id, int64_t *id_out,
                     int64_t *ttl_out);
/* Revokes a lease (deleting its keys). CURVE_ERR_NOT_FOUND if it does not exist. */
int etcd_lease_revoke(etcd_client *c, int64_t id);
/* One keep-alive round trip. *ttl_out (may be NULL) gets the renewed TTL.
 * CURVE_ERR_NOT_FOUND if the lease has expired or never existed. */
int etcd_lease_keepalive_once(etcd_client *c, int64_t id, int64_t *ttl_out);

typedef struct etcd_lease_info {
    int64_t revision;
    int64_t id;
    int64_t ttl;         /* remaining seconds */
    int64_t granted_ttl;
    char **keys;         /* when keys were asked: attached keys (owned) */
    size_t n_keys;
} etcd_lease_info;
void etcd_lease_info_free(etcd_lease_info *i);

/* Remaining TTL of a lease (and its keys if `keys`). CURVE_ERR_NOT_FOUND if expired/unknown. */
int etcd_lease_ttl(etcd_client *c, int64_t id, bool keys, etcd_lease_info *out);

/* ---- watch -------------------------------------------------------------------------------- */

typedef enum { ETCD_EV_PUT = 0, ETCD_EV_DELETE = 1 } etcd_event_type;

typedef struct etcd_event {
    etcd_event_type type;
    etcd_kv kv; /* for DELETE: key and mod_revision (the deletion revision) */
    bool has_prev;
    etcd_kv prev_kv;
} etcd_event;

typedef struct etcd_watch etcd_watch;

/* Called on the watch thread.
 *   events_cb: a batch of events (in revision order) and the header revision. Borrowed: valid
 *              during the call only.
 *   error_cb:  the stream ended without etcd_watch_free() (connection lost, server canceled the
 *              watch, compaction). Called at most once, after which no callback runs again; the
 *              caller should free this watch and re-watch from the last seen revision + 1.
 *              `compact_revision` > 0 when start revision was compacted (re-read then re-watch).
 * Callbacks must not call etcd_watch_free() on their own watch. */
typedef struct etcd_watch_cbs {
    void (*events_cb)(etcd_watch *w, const etcd_event *ev, size_t n, int64_t revision,
                      void *arg);
    void (*error_cb)(etcd_watch *w, int err, const char *msg, int64_t compact_revision,
                     void *arg);
    void *arg;
} etcd_watch_cbs;

typedef struct etcd_watch_req {
    const char *key;
    const char *range_end;
    bool prefix;
    int64_t start_revision; /* 0 = from now */
    bool prev_kv;
    bool no_put;            /* filter out PUT events */
    bool no_delete;         /* filter out DELETE events */
} etcd_watch_req;

/* Starts a watch. Returns 0 once etcd has confirmed the watch ("created"), so every change
 * after the returned revision (in *created_revision, may be NULL) will be delivered. Tries the
 * endpoints like any call. On error no callback ever runs. `cbs` is copied. */
int etcd_watch_start(etcd_client *c, const etcd_watch_req *req, const etcd_watch_cbs *cbs,
                     int64_t *created_revision, etcd_watch **out);
/* Cancels the stream, joins the watch thread (bounded by the wakeup: no network wait) and frees
 * the watch. No callback runs after it returns. NULL is ignored. Not from a callback. */
void etcd_watch_free(etcd_watch *w);

/* Computes the range end of a prefix ("abc" -> "abd"; "" or all-0xff -> "\0", meaning "every
 * key"). Writes a NUL-terminated string into `out` (size >= strlen(key) + 1) and returns its
 * length; a return of 0 with out[0] == 0 means "to the end of the key space". */
size_t etcd_prefix_end(const char *key, char *out);

#ifdef __cplusplus
}
#endif
#endif
