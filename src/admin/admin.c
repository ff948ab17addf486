/*
 * Admin HTTP server. See admin.h for the contract.
 *
 * We create the listening socket ourselves (exact bind errors, ephemeral port through
 * getsockname) and hand it to libmicrohttpd, which owns and closes it from then on. MHD runs
 * one internal polling thread; the access handler accumulates a bounded request body in a
 * per-request context and dispatches once the body is complete.
 */
#include "admin/admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/assert.h"
#include "common/failpoint.h"
#include "common/log.h"
#include "curve/errors.h"

#ifndef CURVE_VERSION_STRING
#define CURVE_VERSION_STRING "unknown"
#endif

#define ADMIN_LISTEN_BACKLOG 64  /* pending connections on the admin socket */
#define FAILPOINT_DUMP_ATTEMPTS 3 /* re-sizings of the failpoint dump buffer */

typedef struct admin_handler {
    char *prefix; /* NULL = free slot */
    size_t prefix_len;
    unsigned methods;
    curve_admin_handler_cb cb;
    void *ctx;
} admin_handler;

struct curve_admin {
    struct MHD_Daemon *mhd;
    uint16_t port;
    char *role;
    char *version;
    curve_metrics *metrics;
    const curve_clock *clock;
    uint64_t start_mono_ns;
    uint64_t start_wall_ns;

    /* Protects the callbacks below; held while any of them runs (on the HTTP thread). */
    pthread_mutex_t mu;
    curve_admin_health_cb health_cb;
    void *health_ctx;
    curve_admin_status_cb status_cb;
    void *status_ctx;
    admin_handler handlers[CURVE_ADMIN_HANDLERS_MAX];
};

/* Per-request state (MHD's *con_cls). */
typedef struct admin_req_ctx {
    char *body;
    size_t len, cap;
    bool too_big;
} admin_req_ctx;

struct curve_admin_request {
    struct MHD_Connection *conn;
    const char *method;
    const char *path;
    const char *body;
    size_t body_len;
};

struct curve_admin_reply {
    bool set;
    unsigned status;
    char *body; /* malloc'd */
    size_t len;
    const char *content_type;
};

static const char *const builtin_paths[] = {"/metrics", "/health", "/status"};

#define CT_TEXT "text/plain; charset=utf-8"
#define CT_JSON "application/json"
#define CT_PROM "text/plain; version=0.0.4; charset=utf-8"

/* ---- small helpers ---- */

static void admin_mhd_log(void *cls, const char *fmt, va_list ap)
{
    curve_log_vwrite(CURVE_LOG_WARN, __FILE__, __LINE__, fmt, ap);
}

/* Queues `body` (taken, malloc'd or NULL) with `status`; extra header optional. */
static enum MHD_Result send_owned(struct MHD_Connection *conn, unsigned status, char *body,
                                  size_t len, const char *ctype, const char *hdr,
                                  const char *hdr_val)
{
    struct MHD_Response *resp;
    if (body == NULL)
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    else
        resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(body);
        return MHD_NO;
    }
    enum MHD_Result r = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (r == MHD_YES && hdr != NULL)
        r = MHD_add_response_header(resp, hdr, hdr_val);
    if (r == MHD_YES)
        r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result send_text(struct MHD_Connection *conn, unsigned status, const char *text,
                                 const char *hdr, const char *hdr_val)
{
    char *body = strdup(text);
    if (body == NULL)
        return MHD_NO;
    return send_owned(conn, status, body, strlen(body), CT_TEXT, hdr, hdr_val);
}

static enum MHD_Result send_json(struct MHD_Connection *conn, unsigned status, json_t *obj)
{
    char *s = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (s == NULL)
        return send_text(conn, 500, "out of memory\n", NULL, NULL);
    /* jansson allocates with malloc by default, so MHD's free() is the right release. */
    return send_owned(conn, status, s, strlen(s), CT_JSON, NULL, NULL);
}

static json_t *json_u64(uint64_t v)
{
    return json_integer(v > (uint64_t)LLONG_MAX ? LLONG_MAX : (json_int_t)v);
}

/* ---- metrics as JSON ---- */

/* JSON has no NaN or infinities: those become null. */
static json_t *json_num(double d)
{
    return isfinite(d) ? json_real(d) : json_null();
}

static int metric_json_cb(const curve_metric_view *m, void *ctx)
{
    json_t *root = ctx;
    json_t *arr = json_object_get(root, m->name);
    if (arr == NULL) {
        arr = json_array();
        if (arr == NULL || json_object_set_new(root, m->name, arr) != 0)
            return -ENOMEM;
    }
    json_t *o = json_object();
    json_t *labels = json_object();
    if (o == NULL || labels == NULL || json_array_append_new(arr, o) != 0) {
        json_decref(o);
        json_decref(labels);
        return -ENOMEM;
    }
    for (size_t i = 0; i < m->nlabels; i++)
        json_object_set_new(labels, m->label_keys[i], json_string(m->label_values[i]));
    json_object_set_new(o, "labels", labels);
    switch (m->kind) {
    case CURVE_METRIC_COUNTER:
        json_object_set_new(o, "type", json_string("counter"));
        json_object_set_new(o, "value",
                            m->callback ? json_num(m->v.gauge) : json_u64(m->v.counter));
        break;
    case CURVE_METRIC_GAUGE:
        json_object_set_new(o, "type", json_string("gauge"));
        json_object_set_new(o, "value", json_num(m->v.gauge));
        break;
    case CURVE_METRIC_RATE:
        json_object_set_new(o, "type", json_string("rate"));
        json_object_set_new(o, "total", json_u64(m->v.rate.total));
        json_object_set_new(o, "window_count", json_u64(m->v.rate.win_count));
        json_object_set_new(o, "per_second", json_num(m->v.rate.per_second));
        json_object_set_new(o, "window_s", json_integer(m->v.rate.window_s));
        break;
    case CURVE_METRIC_LATENCY: {
        const curve_latency_stats *s = &m->v.latency;
        json_object_set_new(o, "type", json_string("latency"));
        json_object_set_new(o, "count", json_u64(s->count));
        json_object_set_new(o, "sum_us", json_u64(s->sum_us));
        json_object_set_new(o, "window_count", json_u64(s->win_count));
        json_object_set_new(o, "window_sum_us", json_u64(s->win_sum_us));
        json_object_set_new(o, "avg_us", json_num(s->win_avg_us));
        json_object_set_new(o, "max_us", json_u64(s->win_max_us));
        json_object_set_new(o, "qps", json_num(s->qps));
        json_object_set_new(o, "p50_us", json_u64(s->p50_us));
        json_object_set_new(o, "p90_us", json_u64(s->p90_us));
        json_object_set_new(o, "p99_us", json_u64(s->p99_us));
        json_object_set_new(o, "p999_us", json_u64(s->p999_us));
        json_object_set_new(o, "window_s", json_integer(s->window_s));
        break;
    }
    }
    return 0;
}

json_t *curve_admin_metrics_json(curve_metrics *reg)
{
    json_t *root = json_object();
    if (root == NULL)
        return NULL;
    if (curve_metrics_foreach(reg, metric_json_cb, root) != 0) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* ---- request / reply accessors ---- */

const char *curve_admin_req_method(const curve_admin_request *req)
{
    return req->method;
}

const char *curve_admin_req_path(const curve_admin_request *req)
{
    return req->path;
}

const char *curve_admin_req_query(const curve_admin_request *req, const char *key)
{
    const char *val = NULL;
    size_t vlen = 0;
    if (key == NULL)
        return NULL;
    if (MHD_lookup_connection_value_n(req->conn, MHD_GET_ARGUMENT_KIND, key, strlen(key), &val,
                                      &vlen) != MHD_YES)
        return NULL;
    return val != NULL ? val : "";
}

const char *curve_admin_req_body(const curve_admin_request *req, size_t *len)
{
    if (len != NULL)
        *len = req->body_len;
    return req->body;
}

static void reply_set(curve_admin_reply *rep, unsigned status, char *body, size_t len,
                      const char *ctype)
{
    free(rep->body);
    rep->set = true;
    rep->status = status;
    rep->body = body;
    rep->len = len;
    rep->content_type = ctype;
}

int curve_admin_reply_text(curve_admin_reply *rep, unsigned status, const char *text)
{
    char *b = strdup(text != NULL ? text : "");
    if (b == NULL)
        return -ENOMEM;
    reply_set(rep, status, b, strlen(b), CT_TEXT);
    return 0;
}

int curve_admin_reply_json(curve_admin_reply *rep, unsigned status, json_t *obj)
{
    char *s = obj != NULL ? json_dumps(obj, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(obj);
    if (s == NULL)
        return -ENOMEM;
    reply_set(rep, status, s, strlen(s), CT_JSON);
    return 0;
}

/* ---- built-in endpoints ---- */

static enum MHD_Result serve_metrics(curve_admin *a, struct MHD_Connection *conn)
{
    char *text = NULL;
    size_t len = 0;
    int rc = curve_metrics_render_prometheus(a->metrics, &text, &len);
    if (rc != 0)
        return send_text(conn, 500, "cannot render metrics\n", NULL, NULL);
    return send_owned(conn, 200, text, len, CT_PROM, NULL, NULL);
}

static enum MHD_Result serve_health(curve_admin *a, struct MHD_Connection *conn)
{
    char reason[CURVE_ADMIN_REASON_MAX];
    int bad = 0;
    reason[0] = '\0';
    pthread_mutex_lock(&a->mu);
    if (a->health_cb != NULL)
        bad = a->health_cb(a->health_ctx, reason, sizeof(reason));
    pthread_mutex_unlock(&a->mu);
    if (bad == 0)
        return send_text(conn, 200, "OK\n", NULL, NULL);
    reason[sizeof(reason) - 1] = '\0';
    char msg[CURVE_ADMIN_REASON_MAX + 2];
    snprintf(msg, sizeof(msg), "%s\n", reason[0] != '\0' ? reason : "unhealthy");
    return send_text(conn, 503, msg, NULL, NULL);
}

static enum MHD_Result serve_status(curve_admin *a, struct MHD_Connection *conn)
{
    json_t *o = json_object();
    if (o == NULL)
        return send_text(conn, 500, "out of memory\n", NULL, NULL);
    uint64_t now = curve_clock_mono_ns(a->clock);
    json_object_set_new(o, "role", json_string(a->role));
    json_object_set_new(o, "version", json_string(a->version));
    json_object_set_new(o, "uptime_s", json_u64((now - a->start_mono_ns) / 1000000000u));
    json_object_set_new(o, "pid", json_integer(getpid()));
    json_object_set_new(o, "start_time_unix_s", json_u64(a->start_wall_ns / 1000000000u));
    pthread_mutex_lock(&a->mu);
    if (a->status_cb != NULL)
        a->status_cb(a->status_ctx, o);
    pthread_mutex_unlock(&a->mu);
    const char *want = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "metrics");
    if (want == NULL || strcmp(want, "0") != 0) {
        json_t *m = curve_admin_metrics_json(a->metrics);
        if (m == NULL) {
            json_decref(o);
            return send_text(conn, 500, "out of memory\n", NULL, NULL);
        }
        json_object_set_new(o, "metrics", m);
    }
    return send_json(conn, 200, o);
}

/* ---- dispatch ---- */

static bool prefix_matches(const admin_handler *h, const char *path)
{
    return strncmp(path, h->prefix, h->prefix_len) == 0 &&
           (path[h->prefix_len] == '\0' || path[h->prefix_len] == '/');
}

/* Longest registered prefix matching `path` (mutex held), or NULL. */
static admin_handler *handler_find(curve_admin *a, const char *path)
{
    admin_handler *best = NULL;
    for (size_t i = 0; i < CURVE_ADMIN_HANDLERS_MAX; i++) {
        admin_handler *h = &a->handlers[i];
        if (h->prefix != NULL && prefix_matches(h, path) &&
            (best == NULL || h->prefix_len > best->prefix_len))
            best = h;
    }
    return best;
}

static const char *allow_header(unsigned methods)
{
    if ((methods & CURVE_ADMIN_GET) && (methods & CURVE_ADMIN_POST))
        return "GET, HEAD, POST";
    if (methods & CURVE_ADMIN_POST)
        return "POST";
    return "GET, HEAD";
}

static enum MHD_Result serve_handler(curve_admin *a, struct MHD_Connection *conn,
                                     const char *path, const char *method,
                                     const admin_req_ctx *rc)
{
    bool is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    bool is_post = strcmp(method, "POST") == 0;
    curve_admin_reply rep = {0};
    curve_admin_request req = {
        .conn = conn,
        .method = is_post ? "POST" : "GET",
        .path = path,
        .body = rc->body != NULL ? rc->body : "",
        .body_len = rc->len,
    };

    pthread_mutex_lock(&a->mu);
    admin_handler *h = handler_find(a, path);
    if (h == NULL) {
        pthread_mutex_unlock(&a->mu);
        return send_text(conn, 404, "not found\n", NULL, NULL);
    }
    unsigned methods = h->methods;
    if (!((is_get && (methods & CURVE_ADMIN_GET)) || (is_post && (methods & CURVE_ADMIN_POST)))) {
        pthread_mutex_unlock(&a->mu);
        return send_text(conn, 405, "method not allowed\n", MHD_HTTP_HEADER_ALLOW,
                         allow_header(methods));
    }
    int err = h->cb(&req, &rep, h->ctx);
    pthread_mutex_unlock(&a->mu);

    if (err < 0 || !rep.set) {
        free(rep.body);
        char msg[256];
        snprintf(msg, sizeof(msg), "handler for %s failed: %s\n", path,
                 err < 0 ? curve_strerror(err) : "no reply");
        return send_text(conn, 500, msg, NULL, NULL);
    }
    if (rep.status < 100 || rep.status > 599)
        rep.status = 500;
    return send_owned(conn, rep.status, rep.body, rep.len, rep.content_type, NULL, NULL);
}

static enum MHD_Result admin_access_cb(void *cls, struct MHD_Connection *conn, const char *url,
                                       const char *method, const char *version,
                                       const char *upload_data, size_t *upload_data_size,
                                       void **con_cls)
{
    curve_admin *a = cls;
    admin_req_ctx *rc = *con_cls;

    if (rc == NULL) {
        rc = calloc(1, sizeof(*rc));
        if (rc == NULL)
            return MHD_NO;
        *con_cls = rc;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rc->too_big || rc->len + n > CURVE_ADMIN_BODY_MAX) {
            rc->too_big = true;
            return MHD_YES;
        }
        if (rc->len + n + 1 > rc->cap) {
            size_t cap = rc->cap == 0 ? 1024 : rc->cap;
            while (cap < rc->len + n + 1)
                cap *= 2;
            char *nb = realloc(rc->body, cap);
            if (nb == NULL)
                return MHD_NO;
            rc->body = nb;
            rc->cap = cap;
        }
        memcpy(rc->body + rc->len, upload_data, n);
        rc->len += n;
        rc->body[rc->len] = '\0';
        return MHD_YES;
    }

    if (rc->too_big)
        return send_text(conn, 413, "request body too large\n", NULL, NULL);
    for (size_t i = 0; i < CURVE_ARRAY_SIZE(builtin_paths); i++) {
        if (strcmp(url, builtin_paths[i]) != 0)
            continue;
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
            return send_text(conn, 405, "method not allowed\n", MHD_HTTP_HEADER_ALLOW,
                             "GET, HEAD");
        if (i == 0)
            return serve_metrics(a, conn);
        if (i == 1)
            return serve_health(a, conn);
        return serve_status(a, conn);
    }
    return serve_handler(a, conn, url, method, rc);
}

static void admin_completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
                               enum MHD_RequestTerminationCode toe)
{
    admin_req_ctx *rc = *con_cls;
    if (rc != NULL) {
        free(rc->body);
        free(rc);
        *con_cls = NULL;
    }
}

/* ---- lifecycle ---- */

/* Binds and listens on host:port; returns the socket or a negative errno. */
static int admin_listen(const char *host, uint16_t port, bool *ipv6, uint16_t *bound)
{
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_PASSIVE,
                             .ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int fd, one = 1, rc;

    if (getaddrinfo(host, NULL, &hints, &ai) != 0 || ai == NULL) {
        CLOG_ERROR("admin: bad listen address '%s' (numeric IPv4/IPv6 expected)", host);
        return -EINVAL;
    }
    if (ai->ai_family == AF_INET6)
        ((struct sockaddr_in6 *)ai->ai_addr)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)ai->ai_addr)->sin_port = htons(port);
    *ipv6 = ai->ai_family == AF_INET6;
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        rc = -errno;
        goto err_after_ai;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, ADMIN_LISTEN_BACKLOG) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        rc = -errno;
        CLOG_ERROR("admin: cannot listen on %s:%u: %s", host, (unsigned)port, curve_strerror(rc));
        goto err_after_socket;
    }
    *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                            : ((struct sockaddr_in *)&ss)->sin_port);
    freeaddrinfo(ai);
    return fd;

err_after_socket:
    close(fd);
err_after_ai:
    freeaddrinfo(ai);
    return rc;
}

int curve_admin_start(const curve_admin_opts *opts, curve_admin **out)
{
    int rc, fd;
    bool ipv6 = false;

    if (opts == NULL || out == NULL)
        return -EINVAL;
    curve_admin *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return -ENOMEM;
    a->role = strdup(opts->role != NULL ? opts->role : "unknown");
    a->version = strdup(opts->version != NULL ? opts->version : CURVE_VERSION_STRING);
    if (a->role == NULL || a->version == NULL) {
        rc = -ENOMEM;
        goto err_after_alloc;
    }
    a->metrics = opts->metrics != NULL ? opts->metrics : curve_metrics_default();
    a->clock = opts->clock != NULL ? opts->clock : curve_clock_system();
    a->start_mono_ns = curve_clock_mono_ns(a->clock);
    a->start_wall_ns = curve_clock_wall_ns(a->clock);
    if (pthread_mutex_init(&a->mu, NULL) != 0) {
        rc = -ENOMEM;
        goto err_after_alloc;
    }

    fd = admin_listen(opts->host != NULL ? opts->host : "127.0.0.1", opts->port, &ipv6,
                      &a->port);
    if (fd < 0) {
        rc = fd;
        goto err_after_mutex;
    }
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (ipv6)
        flags |= MHD_USE_IPv6;
    a->mhd = MHD_start_daemon(flags, 0, NULL, NULL, admin_access_cb, a,
                              MHD_OPTION_EXTERNAL_LOGGER, admin_mhd_log, NULL,
                              MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)CURVE_ADMIN_CONN_MAX,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CURVE_ADMIN_CONN_TIMEOUT_S,
                              MHD_OPTION_NOTIFY_COMPLETED, admin_completed_cb, a,
                              MHD_OPTION_END);
    if (a->mhd == NULL) {
        CLOG_ERROR("admin: libmicrohttpd failed to start on port %u", (unsigned)a->port);
        close(fd);
        rc = CURVE_ERR_UNKNOWN;
        goto err_after_mutex;
    }
    const char *host = opts->host != NULL ? opts->host : "127.0.0.1";
    CLOG_INFO("admin: serving http://%s%s%s:%u/ (role %s)", ipv6 ? "[" : "", host, ipv6 ? "]" : "",
              (unsigned)a->port, a->role);
    *out = a;
    return 0;

err_after_mutex:
    pthread_mutex_destroy(&a->mu);
err_after_alloc:
    free(a->role);
    free(a->version);
    free(a);
    return rc;
}

void curve_admin_stop(curve_admin *a)
{
    if (a == NULL)
        return;
    MHD_stop_daemon(a->mhd); /* joins the HTTP thread and closes the listening socket */
    for (size_t i = 0; i < CURVE_ADMIN_HANDLERS_MAX; i++)
        free(a->handlers[i].prefix);
    pthread_mutex_destroy(&a->mu);
    free(a->role);
    free(a->version);
    free(a);
}

uint16_t curve_admin_port(const curve_admin *a)
{
    return a->port;
}

void curve_admin_set_health_cb(curve_admin *a, curve_admin_health_cb cb, void *ctx)
{
    pthread_mutex_lock(&a->mu);
    a->health_cb = cb;
    a->health_ctx = ctx;
    pthread_mutex_unlock(&a->mu);
}

void curve_admin_set_status_cb(curve_admin *a, curve_admin_status_cb cb, void *ctx)
{
    pthread_mutex_lock(&a->mu);
    a->status_cb = cb;
    a->status_ctx = ctx;
    pthread_mutex_unlock(&a->mu);
}

static bool prefix_valid(const char *prefix)
{
    if (prefix == NULL || prefix[0] != '/')
        return false;
    size_t n = strnlen(prefix, CURVE_ADMIN_PREFIX_MAX + 1);
    if (n > CURVE_ADMIN_PREFIX_MAX || strpbrk(prefix, "?#") != NULL)
        return false;
    return n == 1 || prefix[n - 1] != '/';
}

int curve_admin_add_handler(curve_admin *a, const char *prefix, unsigned methods,
                            curve_admin_handler_cb cb, void *ctx)
{
    if (a == NULL || cb == NULL || !prefix_valid(prefix) || methods == 0 ||
        (methods & ~(CURVE_ADMIN_GET | CURVE_ADMIN_POST)) != 0)
        return -EINVAL;
    for (size_t i = 0; i < CURVE_ARRAY_SIZE(builtin_paths); i++) {
        if (strcmp(prefix, builtin_paths[i]) == 0)
            return -EEXIST;
    }
    char *copy = strdup(prefix);
    if (copy == NULL)
        return -ENOMEM;
    int rc = -ENOSPC;
    pthread_mutex_lock(&a->mu);
    admin_handler *slot = NULL;
    for (size_t i = 0; i < CURVE_ADMIN_HANDLERS_MAX; i++) {
        admin_handler *h = &a->handlers[i];
        if (h->prefix != NULL && strcmp(h->prefix, prefix) == 0) {
            rc = -EEXIST;
            slot = NULL;
            break;
        }
        if (h->prefix == NULL && slot == NULL)
            slot = h;
    }
    if (slot != NULL) {
        *slot = (admin_handler){.prefix = copy,
                                .prefix_len = strlen(copy),
                                .methods = methods,
                                .cb = cb,
                                .ctx = ctx};
        copy = NULL;
        rc = 0;
    }
    pthread_mutex_unlock(&a->mu);
    free(copy);
    return rc;
}

int curve_admin_remove_handler(curve_admin *a, const char *prefix)
{
    int rc = -ENOENT;
    if (a == NULL || prefix == NULL)
        return -EINVAL;
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < CURVE_ADMIN_HANDLERS_MAX; i++) {
        admin_handler *h = &a->handlers[i];
        if (h->prefix != NULL && strcmp(h->prefix, prefix) == 0) {
            free(h->prefix);
            memset(h, 0, sizeof(*h));
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

/* ---- /failpoint ---- */

/* {"failpoints": {name: {"action", "hits"}}} from curve_failpoint_dump()'s "n=a;n=a". */
static json_t *failpoints_json(void)
{
    char *buf = NULL;
    /* The set may grow between sizing and dumping: retry a bounded number of times. */
    for (int attempt = 0; attempt < FAILPOINT_DUMP_ATTEMPTS; attempt++) {
        size_t need = curve_failpoint_dump(NULL, 0) + 1;
        free(buf);
        buf = malloc(need);
        if (buf == NULL || curve_failpoint_dump(buf, need) < need)
            break;
    }
    json_t *root = json_object(), *fps = json_object();
    if (buf == NULL || root == NULL || fps == NULL || json_object_set(root, "failpoints", fps)) {
        free(buf);
        json_decref(root);
        json_decref(fps);
        return NULL;
    }
    json_decref(fps); /* root holds it */
    char *save = NULL;
    for (char *e = strtok_r(buf, ";", &save); e != NULL; e = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(e, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        json_object_set_new(fps, e,
                            json_pack("{s:s, s:I}", "action", eq + 1, "hits",
                                      (json_int_t)curve_failpoint_hits(e)));
    }
    free(buf);
    return root;
}

static int failpoint_handler(const curve_admin_request *req, curve_admin_reply *rep, void *ctx)
{
    char err[256], msg[300];
    int rc;

    if (strcmp(curve_admin_req_path(req), "/failpoint") != 0)
        return curve_admin_reply_text(rep, 404, "not found\n");
    if (strcmp(curve_admin_req_method(req), "GET") == 0) {
        json_t *o = failpoints_json();
        return o != NULL ? curve_admin_reply_json(rep, 200, o) : -ENOMEM;
    }
    const char *name = curve_admin_req_query(req, "name");
    const char *action = curve_admin_req_query(req, "action");
    const char *clear = curve_admin_req_query(req, "clear");
    size_t blen = 0;
    const char *body = curve_admin_req_body(req, &blen);
    err[0] = '\0';
    if (clear != NULL && strcmp(clear, "1") == 0) {
        curve_failpoint_clear_all();
        rc = 0;
    } else if (name != NULL && action != NULL) {
        rc = curve_failpoint_set(name, action);
        if (rc != 0)
            snprintf(err, sizeof(err), "cannot set failpoint '%s' to '%s'", name, action);
    } else if (name == NULL && action == NULL && blen > 0) {
        if (strlen(body) != blen)
            return curve_admin_reply_text(rep, 400, "failpoint spec contains a NUL byte\n");
        rc = curve_failpoint_configure(body, err, sizeof(err));
    } else {
        return curve_admin_reply_text(
            rep, 400, "use ?name=<n>&action=<a>, ?clear=1, or a body \"<n>=<a>;...\"\n");
    }
    if (rc == 0) {
        CLOG_INFO("admin: failpoints changed by HTTP request");
        return curve_admin_reply_text(rep, 200, "OK\n");
    }
    snprintf(msg, sizeof(msg), "%s: %s\n", err[0] != '\0' ? err : "bad failpoint request",
             curve_strerror(rc));
    return curve_admin_reply_text(rep, 400, msg);
}

int curve_admin_enable_failpoints(curve_admin *a)
{
    return curve_admin_add_handler(a, "/failpoint", CURVE_ADMIN_GET | CURVE_ADMIN_POST,
                                   failpoint_handler, NULL);
}
