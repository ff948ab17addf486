/*
 * Admin HTTP server embedded in every daemon (libmicrohttpd).
 *
 * Built-in endpoints (GET or HEAD):
 *   /metrics   the metrics registry in Prometheus text format 0.0.4,
 *              Content-Type "text/plain; version=0.0.4; charset=utf-8".
 *   /health    200 "OK\n", or 503 "<reason>\n" when the health callback reports a problem.
 *   /status    JSON object: "role", "version", "uptime_s", "pid", "start_time_unix_s", then the
 *              fields the daemon's status callback adds (it may override any of them, e.g. an
 *              MDS follower sets "role": "follower"), then "metrics" (the registry as JSON, see
 *              curve_admin_metrics_json) unless the query has metrics=0.
 * Extra handlers registered for a path prefix (e.g. "/failpoint") serve GET and/or POST.
 * Unknown path: 404. Method not allowed for a known path: 405 with an Allow header.
 *
 * Threads: the server runs one internal libmicrohttpd thread (MHD_USE_INTERNAL_POLLING_THREAD).
 * Every callback (health, status, handlers, gauge callbacks through rendering) runs on that
 * thread, one request at a time, with the server's handler mutex held: callbacks must not call
 * curve_admin_* functions of the same server, and should be quick (they delay other requests).
 * All curve_admin_* functions are thread-safe. After a remove/set function returns, the
 * previous callback is not running and will not run again.
 *
 * Bounds: CURVE_ADMIN_CONN_MAX concurrent connections, CURVE_ADMIN_BODY_MAX bytes of POST
 * body (413 beyond), CURVE_ADMIN_HANDLERS_MAX extra handlers, CURVE_ADMIN_CONN_TIMEOUT_S idle
 * connection timeout.
 */
#ifndef CURVE_ADMIN_ADMIN_H
#define CURVE_ADMIN_ADMIN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/clock.h"
#include "common/metrics.h"

#define CURVE_ADMIN_CONN_MAX 64        /* concurrent HTTP connections */
#define CURVE_ADMIN_BODY_MAX 65536     /* bytes of request body accepted */
#define CURVE_ADMIN_HANDLERS_MAX 32    /* extra path-prefix handlers */
#define CURVE_ADMIN_PREFIX_MAX 128     /* bytes of a handler prefix */
#define CURVE_ADMIN_REASON_MAX 512     /* bytes of a health failure reason */
#define CURVE_ADMIN_CONN_TIMEOUT_S 10  /* idle connection timeout */

typedef struct curve_admin curve_admin;

typedef struct curve_admin_opts {
    const char *host;         /* numeric IPv4/IPv6 address to bind; NULL = "127.0.0.1" */
    uint16_t port;            /* 0 = ephemeral (see curve_admin_port) */
    const char *role;         /* "/status" role, e.g. "chunkserver"; NULL = "unknown" (copied) */
    const char *version;      /* NULL = the project version (copied) */
    curve_metrics *metrics;   /* borrowed; NULL = curve_metrics_default() */
    const curve_clock *clock; /* borrowed, for uptime; NULL = system clock */
} curve_admin_opts;

/* Health callback: return 0 when healthy; otherwise write a one-line reason (NUL-terminated,
 * truncated to `len`) into `reason` and return non-zero. */
typedef int (*curve_admin_health_cb)(void *ctx, char *reason, size_t len);

/* Status callback: add fields to `obj` (a JSON object, borrowed) with json_object_set_new. */
typedef void (*curve_admin_status_cb)(void *ctx, json_t *obj);

/* What an extra handler sees. Borrowed for the duration of the call. */
typedef struct curve_admin_request curve_admin_request;
const char *curve_admin_req_method(const curve_admin_request *req); /* "GET" or "POST" */
const char *curve_admin_req_path(const curve_admin_request *req);   /* URL path, no query */
/* Value of query argument `key` (URL-decoded), "" for "?key", NULL when absent. */
const char *curve_admin_req_query(const curve_admin_request *req, const char *key);
/* Request body (POST); NUL-terminated, may be empty; length in *len if len != NULL. */
const char *curve_admin_req_body(const curve_admin_request *req, size_t *len);

/* The answer an extra handler builds. Exactly one reply_* call should be made; a later call
 * replaces an earlier one. */
typedef struct curve_admin_reply curve_admin_reply;
/* Copies `text` as the body with Content-Type text/plain. Returns 0 or -ENOMEM. */
int curve_admin_reply_text(curve_admin_reply *rep, unsigned status, const char *text);
/* Serialises `obj` (takes ownership, even on error) with Content-Type application/json. */
int curve_admin_reply_json(curve_admin_reply *rep, unsigned status, json_t *obj);

/* Extra handler. Return 0 after a reply_* call. A negative return (or no reply) answers
 * 500 with curve_strerror(rc). */
typedef int (*curve_admin_handler_cb)(const curve_admin_request *req, curve_admin_reply *rep,
                                      void *ctx);

#define CURVE_ADMIN_GET 1u
#define CURVE_ADMIN_POST 2u

/* Starts the server. On success *out is running and its bound port is curve_admin_port().
 * Returns 0, -EINVAL (bad opts/host), -EADDRINUSE / -EACCES / CURVE_ERR_UNKNOWN (cannot
 * listen; the reason is logged) or -ENOMEM. Any thread. */
int curve_admin_start(const curve_admin_opts *opts, curve_admin **out);

/* Stops accepting, waits for the HTTP thread to finish the current request, frees everything.
 * Must not be called from a callback. NULL is ignored. */
void curve_admin_stop(curve_admin *a);

/* The bound TCP port (the ephemeral one when opts.port was 0). */
uint16_t curve_admin_port(const curve_admin *a);

/* Replace the health / status callback (NULL cb = none: always healthy / no extra fields). */
void curve_admin_set_health_cb(curve_admin *a, curve_admin_health_cb cb, void *ctx);
void curve_admin_set_status_cb(curve_admin *a, curve_admin_status_cb cb, void *ctx);

/* Serves `methods` (CURVE_ADMIN_GET | CURVE_ADMIN_POST) on `prefix` and below: "/failpoint"
 * matches "/failpoint" and "/failpoint/..." but not "/failpoints". The longest matching prefix
 * wins. `prefix` starts with '/', has no '?', at most CURVE_ADMIN_PREFIX_MAX bytes (copied).
 * Returns 0, -EINVAL, -EEXIST (prefix taken, or a built-in path), -ENOSPC (table full),
 * -ENOMEM. */
int curve_admin_add_handler(curve_admin *a, const char *prefix, unsigned methods,
                            curve_admin_handler_cb cb, void *ctx);
/* Returns 0 or -ENOENT. */
int curve_admin_remove_handler(curve_admin *a, const char *prefix);

/* Serves the process's failpoints (src/common/failpoint.h) on "/failpoint":
 *   GET  /failpoint                         200 {"failpoints": {"<name>": {"action": "...",
 *                                           "hits": n}, ...}}
 *   POST /failpoint?name=<n>&action=<a>     sets one ("off" removes it)
 *   POST /failpoint with body "<n>=<a>;..." applies a whole spec (all or nothing)
 *   POST /failpoint?clear=1                 switches every failpoint off
 * POST answers 200 "OK" or 400 with the reason (nothing changed). Opt-in: fault injection
 * over HTTP is for test clusters; daemons enable it from their configuration.
 * Returns what curve_admin_add_handler returns. */
int curve_admin_enable_failpoints(curve_admin *a);

/* The registry as JSON: {"<name>": [{"labels": {...}, <values>}, ...], ...}. Values per kind:
 * counter {"value": u64}; gauge {"value": number}; rate {"total", "window_count",
 * "per_second", "window_s"}; latency {"count", "sum_us", "window_count", "window_sum_us",
 * "avg_us", "max_us", "qps", "p50_us", "p90_us", "p99_us", "p999_us", "window_s"}.
 * Returns a new reference, or NULL on ENOMEM. Any thread (takes the registry mutex). */
json_t *curve_admin_metrics_json(curve_metrics *reg);

#endif
