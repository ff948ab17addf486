/* RPC server (see rpc_server.h, docs/rpc.md). */
#include "rpc/rpc_server.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/assert.h"
#include "common/failpoint.h"
#include "common/metrics.h"
#include "common/log.h"
#include "curve/errors.h"

/* Per-connection state; belongs to the connection's loop. */
typedef struct srv_conn {
    rpc_server *srv;
    rpc_conn *conn; /* our reference */
    struct srv_loop *sl;
    uint32_t inflight;       /* calls of this connection inside handlers */
    uint64_t inflight_bytes; /* their request bytes */
    int refs;                /* 1 while open + 1 per call in a handler (loop-only) */
    bool closed;
    struct srv_conn *prev, *next; /* in sl->conns */
} srv_conn;

/* Per-loop list of open connections; touched only on that loop. */
typedef struct srv_loop {
    curve_loop *loop;
    srv_conn *conns;
    struct rpc_server *srv;
    curve_timer sweep; /* closes connections with a stalled frame */
    bool sweep_on;
    curve_completion sweep_closed;
} srv_loop;

/* Why a request was answered without running its handler (metrics label). */
typedef enum {
    REJ_OVERLOAD,
    REJ_SHUTDOWN,
    REJ_NOSERVICE,
    REJ_NOMETHOD,
    REJ_BADREQ,
    REJ_COUNT,
} srv_reject;

static const char *const reject_names[REJ_COUNT] = {"overload", "shutdown", "noservice", "nomethod",
                                                    "badreq"};

typedef struct srv_metrics {
    curve_counter *requests;
    curve_counter *rejected[REJ_COUNT];
    curve_latency *handler;
    curve_gauge *inflight, *conns;
} srv_metrics;

struct rpc_server {
    curve_loop_group *loops;
    srv_metrics m; /* all NULL without a registry */
    rpc_server_opts o;
    rpc_service_def svcs[RPC_SERVER_SERVICES_MAX];
    size_t nsvcs;
    rpc_listener *listener;
    srv_loop *sl;
    unsigned nloops;
    atomic_uint inflight;                /* calls inside handlers, whole server */
    atomic_uint_fast64_t inflight_bytes; /* their request bytes */
    atomic_uint conns;                   /* open connections */
    atomic_bool stopping;                /* set by rpc_server_stop */
    atomic_int refs;                     /* owner + one per srv_conn */
    bool stopped;                        /* owner thread only */
    /* Protects nothing but the waits of stop (inflight == 0, then conns == 0): cond and its
     * predicates. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
};

struct rpc_call_ctx {
    curve_loop_msg msg; /* reply delivery when replying from another thread */
    srv_conn *sc;
    rpc_frame_hdr hdr; /* of the request */
    uint64_t bytes;    /* request body + attachment, counted against the byte bounds */
    uint64_t start_ns; /* dispatch time (handler latency metric) */
    const rpc_method_def *m;
    ProtobufCMessage *req;
    curve_iobuf attach;
    rpc_out *out;
    curve_timer *delay; /* failpoint rpc.server.reply_delay: the reply waits on this timer */
};

static void srv_unref(rpc_server *s)
{
    int old = atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel);
    CURVE_ASSERT(old > 0);
    if (old != 1)
        return;
    curve_counter_unregister(s->m.requests);
    for (int i = 0; i < REJ_COUNT; i++)
        curve_counter_unregister(s->m.rejected[i]);
    curve_latency_unregister(s->m.handler);
    curve_gauge_unregister(s->m.inflight);
    curve_gauge_unregister(s->m.conns);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s->sl);
    free(s);
}

static void sc_unref(srv_conn *sc)
{
    CURVE_ASSERT(sc->refs > 0);
    if (--sc->refs > 0)
        return;
    rpc_conn_unref(sc->conn);
    srv_unref(sc->srv);
    free(sc);
}

/* ---- replies ---- */

static void send_error(srv_conn *sc, const rpc_frame_hdr *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void send_error(srv_conn *sc, const rpc_frame_hdr *req, int status, const char *fmt, ...)
{
    char text[RPC_SERVER_ERRTEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(text))
        n = sizeof(text) - 1;
    int reason = status == CURVE_ERR_RPC_OVERLOAD    ? REJ_OVERLOAD
                 : status == CURVE_ERR_SHUTDOWN      ? REJ_SHUTDOWN
                 : status == CURVE_ERR_RPC_NOSERVICE ? REJ_NOSERVICE
                 : status == CURVE_ERR_RPC_NOMETHOD  ? REJ_NOMETHOD
                 : status == CURVE_ERR_RPC_BADREQ    ? REJ_BADREQ
                                                     : -1;
    if (reason >= 0 && sc->srv->m.rejected[reason])
        curve_counter_inc(sc->srv->m.rejected[reason]);
    rpc_frame_hdr h = {
        .type = RPC_FRAME_RESPONSE,
        .corr_id = req->corr_id,
        .service_id = req->service_id,
        .method_id = req->method_id,
        .status = status,
    };
    rpc_out *o;
    if (rpc_out_new(&h, NULL, text, (size_t)n, NULL, &sc->srv->o.limits, &o) == 0)
        (void)rpc_conn_send(sc->conn, o);
}

static void inflight_done(rpc_server *s)
{
    unsigned old = atomic_fetch_sub_explicit(&s->inflight, 1, memory_order_acq_rel);
    CURVE_ASSERT(old > 0);
    if (old == 1 && atomic_load(&s->stopping)) {
        pthread_mutex_lock(&s->lock);
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
    }
}

static void ctx_free(rpc_call_ctx *ctx)
{
    if (ctx->req)
        protobuf_c_message_free_unpacked(ctx->req, NULL);
    curve_iobuf_reset(&ctx->attach);
    rpc_out_free(ctx->out);
    free(ctx->delay);
    free(ctx);
}

static void ctx_deliver(void *arg);

static void ctx_delay_closed(curve_timer *t)
{
    ctx_deliver(t->arg); /* ctx->delay stays set (freed with ctx): no second delay */
}

static void ctx_delay_fired(curve_timer *t, void *arg)
{
    curve_timer_close(t, ctx_delay_closed);
}

/* Runs on the connection's loop: sends the reply (if the connection is still open). */
static void ctx_deliver(void *arg)
{
    rpc_call_ctx *ctx = arg;
    srv_conn *sc = ctx->sc;
    rpc_server *s = sc->srv;
    /* Failpoints for fault-injection tests (tc netem is not available, DESIGN §10):
     *  - "rpc.server.reply_delay=return(N)" holds each reply N ms (1..4095) on a timer (the loop
     *    keeps running), e.g. "rpc.server.reply_delay=50%return(200)";
     *  - "rpc.server.reply=return" drops the reply (a lost message: the client times out).
     * (A delay(...) action on these names would block the whole loop: use return(N).) */
    if (ctx->out && !ctx->delay) {
        int delay_ms = -CURVE_FAILPOINT("rpc.server.reply_delay");
        if (delay_ms > 0 && (ctx->delay = malloc(sizeof(*ctx->delay))) != NULL) {
            if (curve_timer_init(sc->conn->loop, ctx->delay, ctx_delay_fired, ctx) == 0) {
                curve_timer_start(ctx->delay, (uint64_t)delay_ms, 0);
                return;
            }
            free(ctx->delay);
            ctx->delay = NULL;
        }
    }
    if (ctx->out && CURVE_FAILPOINT("rpc.server.reply") < 0) {
        CLOG_DEBUG("rpc server: failpoint rpc.server.reply dropped the reply to call %llu",
                   (unsigned long long)ctx->hdr.corr_id);
        rpc_out_free(ctx->out);
        ctx->out = NULL;
    }
    if (ctx->out && !sc->closed) {
        (void)rpc_conn_send(sc->conn, ctx->out);
        ctx->out = NULL;
    }
    if (s->m.handler)
        curve_latency_record(s->m.handler, (curve_now_mono_ns() - ctx->start_ns) / 1000);
    CURVE_ASSERT(sc->inflight > 0 && sc->inflight_bytes >= ctx->bytes);
    sc->inflight--;
    sc->inflight_bytes -= ctx->bytes;
    atomic_fetch_sub_explicit(&s->inflight_bytes, ctx->bytes, memory_order_relaxed);
    ctx_free(ctx);
    inflight_done(s);
    sc_unref(sc);
}

int rpc_call_reply(rpc_call_ctx *ctx, int status, const ProtobufCMessage *resp, curve_iobuf *attach)
{
    CURVE_ASSERT(status <= 0);
    srv_conn *sc = ctx->sc;
    rpc_server *s = sc->srv;
    rpc_frame_hdr h = {
        .type = RPC_FRAME_RESPONSE,
        .corr_id = ctx->hdr.corr_id,
        .service_id = ctx->hdr.service_id,
        .method_id = ctx->hdr.method_id,
        .status = status,
    };
    int rc = rpc_out_new(&h, status == 0 ? resp : NULL, NULL, 0, status == 0 ? attach : NULL,
                         &s->o.limits, &ctx->out);
    if (rc < 0) {
        CLOG_ERROR("rpc server: cannot build the reply to call %llu (%s) from %s: %s",
                   (unsigned long long)ctx->hdr.corr_id, ctx->m->name, sc->conn->peer,
                   curve_strerror(rc));
        char text[RPC_SERVER_ERRTEXT_MAX];
        int n = snprintf(text, sizeof(text), "server could not build the reply: %s",
                         curve_strerror(rc));
        size_t tlen = n < 0 ? 0 : ((size_t)n >= sizeof(text) ? sizeof(text) - 1 : (size_t)n);
        h.status = CURVE_ERR_RPC_INTERNAL;
        if (rpc_out_new(&h, NULL, text, tlen, NULL, &s->o.limits, &ctx->out) < 0)
            ctx->out = NULL; /* out of memory: the client times out */
    }
    if (attach)
        curve_iobuf_reset(attach);
    if (curve_loop_is_current(sc->conn->loop)) {
        ctx_deliver(ctx);
        return rc;
    }
    ctx->msg.fn = ctx_deliver;
    ctx->msg.arg = ctx;
    int prc = curve_loop_post_msg(sc->conn->loop, &ctx->msg);
    /* The owner keeps the loops running until the server is freed (rpc_server.h). */
    CURVE_ASSERT(prc == 0);
    return rc;
}

int rpc_call_reply_error(rpc_call_ctx *ctx, int status, const char *fmt, ...)
{
    CURVE_ASSERT(status < 0);
    char text[RPC_SERVER_ERRTEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(text))
        n = sizeof(text) - 1;
    srv_conn *sc = ctx->sc;
    rpc_frame_hdr h = {
        .type = RPC_FRAME_RESPONSE,
        .corr_id = ctx->hdr.corr_id,
        .service_id = ctx->hdr.service_id,
        .method_id = ctx->hdr.method_id,
        .status = status,
    };
    int rc = rpc_out_new(&h, NULL, text, (size_t)n, NULL, &sc->srv->o.limits, &ctx->out);
    if (rc < 0)
        ctx->out = NULL;
    if (curve_loop_is_current(sc->conn->loop)) {
        ctx_deliver(ctx);
        return rc;
    }
    ctx->msg.fn = ctx_deliver;
    ctx->msg.arg = ctx;
    int prc = curve_loop_post_msg(sc->conn->loop, &ctx->msg);
    CURVE_ASSERT(prc == 0);
    return rc;
}

curve_loop *rpc_call_loop(const rpc_call_ctx *ctx)
{
    return ctx->sc->conn->loop;
}

const char *rpc_call_peer(const rpc_call_ctx *ctx)
{
    return ctx->sc->conn->peer;
}

uint64_t rpc_call_id(const rpc_call_ctx *ctx)
{
    return ctx->hdr.corr_id;
}

uint32_t rpc_call_timeout_ms(const rpc_call_ctx *ctx)
{
    return ctx->hdr.timeout_ms;
}

/* ---- dispatch ---- */

static const rpc_service_def *find_service(const rpc_server *s, uint32_t id)
{
    for (size_t i = 0; i < s->nsvcs; i++)
        if (s->svcs[i].id == id)
            return &s->svcs[i];
    return NULL;
}

static const rpc_method_def *find_method(const rpc_service_def *svc, uint32_t id)
{
    for (size_t i = 0; i < svc->nmethods; i++)
        if (svc->methods[i].id == id)
            return &svc->methods[i];
    return NULL;
}

static void srv_on_frame(rpc_conn *conn, rpc_frame *f, void *ud)
{
    rpc_server *s = ud;
    srv_conn *sc = conn->user;
    const rpc_frame_hdr *h = &f->hdr;
    if (!sc || sc->closed) {
        rpc_frame_free(f);
        return;
    }
    if (h->type != RPC_FRAME_REQUEST) {
        CLOG_WARN("rpc server: %s sent a frame of type %u, closing the connection", conn->peer,
                  h->type);
        rpc_frame_free(f);
        rpc_conn_close(conn, CURVE_ERR_RPC_PROTO);
        return;
    }
    if (s->m.requests)
        curve_counter_inc(s->m.requests);
    if (atomic_load(&s->stopping)) {
        send_error(sc, h, CURVE_ERR_SHUTDOWN, "server is shutting down");
        goto out_free;
    }
    const rpc_service_def *svc = find_service(s, h->service_id);
    if (!svc) {
        send_error(sc, h, CURVE_ERR_RPC_NOSERVICE, "no service with id %u", h->service_id);
        goto out_free;
    }
    const rpc_method_def *m = find_method(svc, h->method_id);
    if (!m) {
        send_error(sc, h, CURVE_ERR_RPC_NOMETHOD, "service %s has no method with id %u", svc->name,
                   h->method_id);
        goto out_free;
    }
    if (sc->inflight >= s->o.max_inflight_per_conn) {
        send_error(sc, h, CURVE_ERR_RPC_OVERLOAD,
                   "server overloaded: %u calls in flight on this connection",
                   s->o.max_inflight_per_conn);
        goto out_free;
    }
    uint64_t bytes = (uint64_t)h->body_len + h->attach_len;
    /* At least one call is always admitted, however large (the frame limits bound it). */
    if (sc->inflight > 0 && sc->inflight_bytes + bytes > s->o.max_inflight_bytes_per_conn) {
        send_error(sc, h, CURVE_ERR_RPC_OVERLOAD,
                   "server overloaded: %llu request bytes in flight on this connection",
                   (unsigned long long)sc->inflight_bytes);
        goto out_free;
    }
    unsigned old = atomic_fetch_add_explicit(&s->inflight, 1, memory_order_acq_rel);
    if (old >= s->o.max_inflight) {
        inflight_done(s);
        send_error(sc, h, CURVE_ERR_RPC_OVERLOAD, "server overloaded: %u calls in flight",
                   s->o.max_inflight);
        goto out_free;
    }
    uint64_t old_bytes = atomic_fetch_add_explicit(&s->inflight_bytes, bytes, memory_order_relaxed);
    if (old_bytes > 0 && old_bytes + bytes > s->o.max_inflight_bytes) {
        atomic_fetch_sub_explicit(&s->inflight_bytes, bytes, memory_order_relaxed);
        inflight_done(s);
        send_error(sc, h, CURVE_ERR_RPC_OVERLOAD, "server overloaded: %llu request bytes in flight",
                   (unsigned long long)old_bytes);
        goto out_free;
    }
    rpc_call_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx) {
        atomic_fetch_sub_explicit(&s->inflight_bytes, bytes, memory_order_relaxed);
        inflight_done(s);
        send_error(sc, h, -ENOMEM, "server out of memory");
        goto out_free;
    }
    uint8_t *tmp;
    const uint8_t *body = rpc_frame_body(f, &tmp);
    ctx->req = body ? protobuf_c_message_unpack(m->req_desc, NULL, f->body.len, body) : NULL;
    free(tmp);
    if (!ctx->req) {
        free(ctx);
        atomic_fetch_sub_explicit(&s->inflight_bytes, bytes, memory_order_relaxed);
        inflight_done(s);
        send_error(sc, h, CURVE_ERR_RPC_BADREQ, "request body is not a valid %s",
                   m->req_desc->name);
        goto out_free;
    }
    ctx->sc = sc;
    ctx->hdr = *h;
    ctx->bytes = bytes;
    ctx->start_ns = s->m.handler ? curve_now_mono_ns() : 0;
    ctx->m = m;
    curve_iobuf_init(&ctx->attach);
    (void)curve_iobuf_move(&ctx->attach, &f->attach);
    rpc_frame_free(f);
    sc->inflight++;
    sc->inflight_bytes += bytes;
    sc->refs++;
    m->handler(ctx, ctx->req, &ctx->attach, svc->arg);
    return;

out_free:
    rpc_frame_free(f);
}

static srv_loop *find_srv_loop(rpc_server *s, curve_loop *loop)
{
    for (unsigned i = 0; i < s->nloops; i++)
        if (s->sl[i].loop == loop)
            return &s->sl[i];
    CURVE_UNREACHABLE();
}

static void srv_on_accept(rpc_conn *conn, void *ud)
{
    rpc_server *s = ud;
    if (atomic_load(&s->stopping)) {
        rpc_conn_close(conn, CURVE_ERR_SHUTDOWN);
        return;
    }
    if (atomic_load(&s->conns) >= s->o.max_conns) {
        CLOG_WARN("rpc server: %u connections open (the limit); closing %s", s->o.max_conns,
                  conn->peer);
        rpc_conn_close(conn, CURVE_ERR_RPC_OVERLOAD);
        return;
    }
    srv_conn *sc = calloc(1, sizeof(*sc));
    if (!sc) {
        CLOG_WARN("rpc server: out of memory accepting %s", conn->peer);
        rpc_conn_close(conn, -ENOMEM);
        return;
    }
    sc->srv = s;
    sc->conn = rpc_conn_ref(conn);
    sc->sl = find_srv_loop(s, conn->loop);
    sc->refs = 1;
    atomic_fetch_add(&s->refs, 1);
    atomic_fetch_add(&s->conns, 1);
    sc->next = sc->sl->conns;
    if (sc->next)
        sc->next->prev = sc;
    sc->sl->conns = sc;
    rpc_conn_set_user(conn, sc);
    CLOG_DEBUG("rpc server: accepted %s on %s", conn->peer, curve_loop_name(conn->loop));
}

static void srv_on_close(rpc_conn *conn, int reason, void *ud)
{
    srv_conn *sc = conn->user;
    if (!sc)
        return;
    CLOG_DEBUG("rpc server: connection from %s closed: %s", conn->peer, curve_strerror(reason));
    sc->closed = true;
    rpc_server *s = sc->srv;
    unsigned old = atomic_fetch_sub(&s->conns, 1);
    if (old == 1 && atomic_load(&s->stopping)) { /* rpc_server_stop may wait for this */
        pthread_mutex_lock(&s->lock);
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
    }
    if (sc->prev)
        sc->prev->next = sc->next;
    else
        sc->sl->conns = sc->next;
    if (sc->next)
        sc->next->prev = sc->prev;
    sc->prev = sc->next = NULL;
    rpc_conn_set_user(conn, NULL);
    sc_unref(sc);
}

static const rpc_conn_handler srv_handler = {
    .on_accept = srv_on_accept,
    .on_frame = srv_on_frame,
    .on_close = srv_on_close,
};

/* ---- lifetime ---- */

static double gauge_inflight(void *arg)
{
    return (double)atomic_load(&((rpc_server *)arg)->inflight);
}

static double gauge_conns(void *arg)
{
    return (double)atomic_load(&((rpc_server *)arg)->conns);
}

/* Registers the server's metrics; on failure the caller unregisters what was registered. */
static int srv_register_metrics(rpc_server *s, curve_metrics *reg, const char *name)
{
    const char *labels[] = {"server", name, NULL};
    int rc = curve_metrics_counter(reg, "curve_rpc_server_requests_total", "RPC requests received",
                                   labels, &s->m.requests);
    for (int i = 0; i < REJ_COUNT && rc == 0; i++) {
        const char *rl[] = {"server", name, "reason", reject_names[i], NULL};
        rc = curve_metrics_counter(reg, "curve_rpc_server_rejected_total",
                                   "RPC requests answered without running their handler", rl,
                                   &s->m.rejected[i]);
    }
    if (rc == 0)
        rc = curve_metrics_latency(reg, "curve_rpc_server_handler_seconds",
                                   "Time from dispatching an RPC to sending its reply", labels,
                                   NULL, 0, &s->m.handler);
    if (rc == 0)
        rc = curve_metrics_gauge_fn(reg, "curve_rpc_server_inflight_calls",
                                    "RPC calls inside handlers", labels, gauge_inflight, s,
                                    &s->m.inflight);
    if (rc == 0)
        rc = curve_metrics_gauge_fn(reg, "curve_rpc_server_connections", "Open RPC connections",
                                    labels, gauge_conns, s, &s->m.conns);
    return rc;
}

int rpc_server_new(curve_loop_group *loops, const rpc_server_opts *opts, rpc_server **out)
{
    rpc_server *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->loops = loops;
    if (opts)
        s->o = *opts;
    if (!s->o.max_inflight_per_conn)
        s->o.max_inflight_per_conn = RPC_SERVER_INFLIGHT_PER_CONN_DEFAULT;
    if (!s->o.max_inflight)
        s->o.max_inflight = RPC_SERVER_INFLIGHT_DEFAULT;
    if (!s->o.max_inflight_bytes_per_conn)
        s->o.max_inflight_bytes_per_conn = RPC_SERVER_INFLIGHT_BYTES_PER_CONN_DEFAULT;
    if (!s->o.max_inflight_bytes)
        s->o.max_inflight_bytes = RPC_SERVER_INFLIGHT_BYTES_DEFAULT;
    if (!s->o.max_conns)
        s->o.max_conns = RPC_SERVER_CONNS_DEFAULT;
    if (!s->o.frame_timeout_ms)
        s->o.frame_timeout_ms = RPC_SERVER_FRAME_TIMEOUT_DEFAULT_MS;
    if (!s->o.limits.body_max)
        s->o.limits.body_max = RPC_FRAME_BODY_MAX_DEFAULT;
    if (!s->o.limits.attach_max)
        s->o.limits.attach_max = RPC_FRAME_ATTACH_MAX_DEFAULT;
    if (!s->o.transport)
        s->o.transport = rpc_transport_tcp();
    s->nloops = curve_loop_group_size(loops);
    s->sl = calloc(s->nloops, sizeof(*s->sl));
    if (!s->sl) {
        free(s);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < s->nloops; i++) {
        s->sl[i].loop = curve_loop_group_get(loops, i);
        s->sl[i].srv = s;
    }
    atomic_init(&s->inflight, 0);
    atomic_init(&s->inflight_bytes, 0);
    atomic_init(&s->conns, 0);
    atomic_init(&s->stopping, false);
    atomic_init(&s->refs, 1);
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &attr);
    pthread_condattr_destroy(&attr);
    if (s->o.metrics) {
        int rc =
            srv_register_metrics(s, s->o.metrics, s->o.metrics_name ? s->o.metrics_name : "rpc");
        if (rc < 0) {
            CLOG_ERROR("rpc server: cannot register metrics: %s", curve_strerror(rc));
            srv_unref(s); /* unregisters what was registered */
            return rc;
        }
    }
    *out = s;
    return 0;
}

int rpc_server_add_service(rpc_server *s, const rpc_service_def *svc)
{
    CURVE_ASSERT(s->listener == NULL);
    if (!svc || !svc->methods || svc->nmethods == 0)
        return -EINVAL;
    if (find_service(s, svc->id))
        return -EEXIST;
    if (s->nsvcs >= RPC_SERVER_SERVICES_MAX)
        return -ENOSPC;
    for (size_t i = 0; i < svc->nmethods; i++) {
        if (!svc->methods[i].handler || !svc->methods[i].req_desc)
            return -EINVAL;
        for (size_t j = 0; j < i; j++)
            if (svc->methods[j].id == svc->methods[i].id)
                return -EINVAL;
    }
    s->svcs[s->nsvcs++] = *svc;
    return 0;
}

static void sweep_cb(curve_timer *t, void *arg)
{
    srv_loop *sl = arg;
    rpc_server *s = sl->srv;
    uint64_t now = curve_loop_now_ms(sl->loop);
    for (srv_conn *sc = sl->conns; sc; sc = sc->next) {
        rpc_conn *c = sc->conn; /* closing only unlinks later, in on_close */
        if (c->rx_partial && now - c->rx_last_ms >= s->o.frame_timeout_ms) {
            CLOG_WARN("rpc server: closing connection with %s: frame stalled for %llu ms", c->peer,
                      (unsigned long long)(now - c->rx_last_ms));
            rpc_conn_close(c, CURVE_ERR_TIMEOUT);
        }
    }
}

static void sweep_start_run(void *arg)
{
    srv_loop *sl = arg;
    if (sl->sweep_on) /* a start that failed to listen is being retried */
        return;
    if (curve_timer_init(sl->loop, &sl->sweep, sweep_cb, sl) < 0)
        return;
    uint64_t every = sl->srv->o.frame_timeout_ms < RPC_SERVER_SWEEP_INTERVAL_MS
                         ? sl->srv->o.frame_timeout_ms
                         : RPC_SERVER_SWEEP_INTERVAL_MS;
    curve_timer_start(&sl->sweep, every, every);
    sl->sweep_on = true;
}

static void sweep_closed_cb(curve_timer *t)
{
    srv_loop *sl = CURVE_CONTAINER_OF(t, srv_loop, sweep);
    curve_completion_signal(&sl->sweep_closed, 0);
}

static void sweep_stop_run(void *arg)
{
    srv_loop *sl = arg;
    curve_timer_close(&sl->sweep, sweep_closed_cb);
}

int rpc_server_start(rpc_server *s, const char *addr)
{
    CURVE_ASSERT(s->listener == NULL);
    for (unsigned i = 0; i < s->nloops; i++)
        (void)curve_loop_call_sync(s->sl[i].loop, sweep_start_run, &s->sl[i]);
    int rc = s->o.transport->listen(s->loops, addr, &srv_handler, s, &s->o.limits, &s->listener);
    if (rc < 0) {
        CLOG_ERROR("rpc server: cannot listen on %s: %s", addr, curve_strerror(rc));
        return rc;
    }
    CLOG_INFO("rpc server: listening on port %d (%u loops)", rpc_server_port(s), s->nloops);
    return 0;
}

int rpc_server_port(const rpc_server *s)
{
    return s->listener ? s->o.transport->listener_port(s->listener) : -1;
}

unsigned rpc_server_inflight(const rpc_server *s)
{
    return atomic_load(&((rpc_server *)s)->inflight);
}

static void close_loop_conns(void *arg)
{
    srv_loop *sl = arg;
    for (srv_conn *sc = sl->conns; sc; sc = sc->next)
        rpc_conn_close(sc->conn, CURVE_ERR_SHUTDOWN);
}

static void barrier_run(void *arg) {}

/* Waits (condition s->cond, predicate read under s->lock) until `*counter` is 0 or `deadline`
 * (CLOCK_MONOTONIC) passed. Returns the last value seen. */
static unsigned srv_wait_zero(rpc_server *s, atomic_uint *counter, const struct timespec *deadline)
{
    pthread_mutex_lock(&s->lock);
    while (atomic_load(counter) > 0) {
        if (pthread_cond_timedwait(&s->cond, &s->lock, deadline) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&s->lock);
    return atomic_load(counter);
}

static struct timespec deadline_after_ms(uint32_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)(ms % 1000) * 1000000u;
    ts.tv_sec += (time_t)(ms / 1000 + ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    return ts;
}

void rpc_server_stop(rpc_server *s, uint32_t grace_ms)
{
    if (s->stopped)
        return;
    s->stopped = true;
    atomic_store(&s->stopping, true);
    if (s->listener) {
        s->o.transport->listener_close(s->listener);
        s->listener = NULL;
    }
    /* Let handlers finish, up to the grace period. */
    struct timespec ts = deadline_after_ms(grace_ms);
    unsigned left = srv_wait_zero(s, &s->inflight, &ts);
    if (left)
        CLOG_WARN("rpc server: %u calls still in handlers after %u ms; their replies are "
                  "dropped",
                  left, grace_ms);
    for (unsigned i = 0; i < s->nloops; i++)
        (void)curve_loop_call_sync(s->sl[i].loop, close_loop_conns, &s->sl[i]);
    /* Wait until they are closed: queued replies are flushed (bounded by the transport, e.g.
     * 2 s for a peer that does not read), then on_close has run for each. */
    ts = deadline_after_ms(RPC_SERVER_CLOSE_WAIT_MS);
    left = srv_wait_zero(s, &s->conns, &ts);
    if (left)
        CLOG_WARN("rpc server: %u connections still open %u ms after stop", left,
                  RPC_SERVER_CLOSE_WAIT_MS);
    /* One more round on every loop, so that nothing of the closing runs concurrently. */
    for (unsigned i = 0; i < s->nloops; i++)
        (void)curve_loop_call_sync(s->sl[i].loop, barrier_run, NULL);
    for (unsigned i = 0; i < s->nloops; i++) {
        srv_loop *sl = &s->sl[i];
        if (!sl->sweep_on)
            continue;
        curve_completion_init(&sl->sweep_closed);
        if (curve_loop_call_sync(sl->loop, sweep_stop_run, sl) == 0)
            curve_completion_wait(&sl->sweep_closed, 0);
        curve_completion_destroy(&sl->sweep_closed);
        sl->sweep_on = false;
    }
}

void rpc_server_free(rpc_server *s)
{
    if (!s)
        return;
    rpc_server_stop(s, 0);
    srv_unref(s);
}
