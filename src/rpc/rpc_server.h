/*
 * RPC server: services register method tables; requests are decoded and dispatched on the loop
 * that owns the connection; handlers reply (now or later, from any thread) with
 * rpc_call_reply().
 *
 * Bounds: at most max_inflight_per_conn calls (holding max_inflight_bytes_per_conn request
 * bytes) per connection and max_inflight calls (max_inflight_bytes) in the whole server are in
 * a handler at once; beyond them a request gets CURVE_ERR_RPC_OVERLOAD immediately, without
 * running the handler. At most max_conns connections are open; more are closed on accept.
 *
 * Shutdown (rpc_server_stop): stop accepting, answer new requests with CURVE_ERR_SHUTDOWN, wait
 * up to grace_ms for handlers to reply, then close every connection (replies that come later
 * are dropped) and wait, at most RPC_SERVER_CLOSE_WAIT_MS, until they are closed (queued
 * replies are flushed first, for a bounded time).
 */
#ifndef CURVE_RPC_SERVER_H
#define CURVE_RPC_SERVER_H

#include <protobuf-c/protobuf-c.h>
#include <stdint.h>

#include "common/buf.h"
#include "loop/loop.h"
#include "rpc/rpc_frame.h"
#include "rpc/rpc_transport.h"

typedef struct rpc_server rpc_server;
typedef struct rpc_call_ctx rpc_call_ctx;

/* Defaults and bounds. */
#define RPC_SERVER_INFLIGHT_PER_CONN_DEFAULT       1024u
#define RPC_SERVER_INFLIGHT_DEFAULT                65536u
#define RPC_SERVER_INFLIGHT_BYTES_PER_CONN_DEFAULT ((uint64_t)256 << 20)
#define RPC_SERVER_INFLIGHT_BYTES_DEFAULT          ((uint64_t)2 << 30)
#define RPC_SERVER_CONNS_DEFAULT                   10000u
#define RPC_SERVER_FRAME_TIMEOUT_DEFAULT_MS        30000u
#define RPC_SERVER_SWEEP_INTERVAL_MS               1000u
#define RPC_SERVER_CLOSE_WAIT_MS                   5000u /* stop: bound on closing connections */
#define RPC_SERVER_SERVICES_MAX                    64u
#define RPC_SERVER_ERRTEXT_MAX                     256u /* error text sent with a failed status */

/* A request handler. Runs on the connection's loop. `req` (unpacked request) and `attach`
 * (request attachment; the handler may move its slices out, e.g. into its reply) stay valid
 * until rpc_call_reply(ctx) is called. The handler must call rpc_call_reply exactly once,
 * now or later, from any thread. */
typedef void (*rpc_handler_fn)(rpc_call_ctx *ctx, const ProtobufCMessage *req, curve_iobuf *attach,
                               void *svc_arg);

typedef struct rpc_method_def {
    uint32_t id;
    const char *name;
    const ProtobufCMessageDescriptor *req_desc;  /* request type */
    const ProtobufCMessageDescriptor *resp_desc; /* response type (documentation + checks) */
    rpc_handler_fn handler;
} rpc_method_def;

typedef struct rpc_service_def {
    uint32_t id;
    const char *name;
    const rpc_method_def *methods; /* borrowed: must outlive the server */
    size_t nmethods;
    void *arg; /* passed to every handler */
} rpc_service_def;

typedef struct rpc_server_opts {
    uint32_t max_inflight_per_conn; /* 0: default */
    uint32_t max_inflight;          /* 0: default */
    /* Request bytes (body + attachment) held by calls inside handlers (0: defaults). */
    uint64_t max_inflight_bytes_per_conn;
    uint64_t max_inflight_bytes;
    uint32_t max_conns; /* open connections; more are closed at once (0: default) */
    /* A connection whose peer started a frame and then sent nothing for this long is closed
     * (a stalled or malicious peer holding buffers). 0: default; checked every second. */
    uint32_t frame_timeout_ms;
    rpc_frame_limits limits;            /* 0: defaults */
    const rpc_transport_ops *transport; /* NULL: TCP */
    /* Metrics registry (borrowed; NULL: no metrics). Registered with the label
     * server=<metrics_name> (default "rpc"): curve_rpc_server_requests_total,
     * curve_rpc_server_rejected_total{reason=overload|shutdown|noservice|nomethod|badreq},
     * curve_rpc_server_handler_seconds (dispatch to reply), curve_rpc_server_inflight_calls,
     * curve_rpc_server_connections. */
    struct curve_metrics *metrics;
    const char *metrics_name;
} rpc_server_opts;

/* Creates a server whose connections are spread over `loops` (borrowed; must outlive the
 * server and keep running until rpc_server_free returned). opts may be NULL.
 * Returns 0, -ENOMEM, or an error of the metrics registry (-EEXIST: a server with the same
 * metrics_name is registered). */
int rpc_server_new(curve_loop_group *loops, const rpc_server_opts *opts, rpc_server **out);

/* Registers a service (borrowed). Before rpc_server_start only. Returns 0, -EEXIST (id already
 * registered), -EINVAL (no methods / duplicate method id / NULL handler), -ENOSPC (more than
 * RPC_SERVER_SERVICES_MAX). */
int rpc_server_add_service(rpc_server *s, const rpc_service_def *svc);

/* Listens on `addr` ("ip:port", port 0 = ephemeral). Returns 0 or a negative errno (e.g.
 * -EADDRINUSE; the call may then be repeated, with another address). Once it returned 0, not
 * again. Not from one of the server's loops. */
int rpc_server_start(rpc_server *s, const char *addr);

/* The bound port (after start). */
int rpc_server_port(const rpc_server *s);

/* Graceful stop (see above). Blocks; not from one of the server's loops. Idempotent. */
void rpc_server_stop(rpc_server *s, uint32_t grace_ms);

/* Stops (if needed, with grace 0) and releases the server; memory still referenced by calls
 * whose handlers have not replied is released when they do. Not from one of its loops. */
void rpc_server_free(rpc_server *s);

/* Calls currently inside handlers. Any thread. */
unsigned rpc_server_inflight(const rpc_server *s);

/* Replies to a call and releases `ctx` (also req and the request attachment). `resp` (may be
 * NULL: empty body; ignored when status != 0) is packed before returning. The slices of
 * `attach` (may be NULL) are moved into the reply. status 0 or a negative CURVE_ERR_* / errno.
 * Returns 0, or a negative error if the reply could not be built (the caller gets
 * CURVE_ERR_RPC_INTERNAL instead); ctx is released in every case. Any thread. */
int rpc_call_reply(rpc_call_ctx *ctx, int status, const ProtobufCMessage *resp,
                   curve_iobuf *attach);

/* Replies with an error status and a human-readable text (printf format) for the client. */
int rpc_call_reply_error(rpc_call_ctx *ctx, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Information about the call (valid until the reply). */
curve_loop *rpc_call_loop(const rpc_call_ctx *ctx);
const char *rpc_call_peer(const rpc_call_ctx *ctx);
uint64_t rpc_call_id(const rpc_call_ctx *ctx);
uint32_t rpc_call_timeout_ms(const rpc_call_ctx *ctx); /* the client's timeout, 0 = none */

#endif
