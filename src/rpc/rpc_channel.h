/*
 * RPC client channel: calls to one server address over one shared connection.
 *
 * - Many calls in flight on the connection, matched to responses by correlation id.
 * - Per-call timeout, cancellation, client-side in-flight bound.
 * - The connection is opened lazily on the first call and re-opened after it is lost; failed
 *   connect attempts back off exponentially (backoff_initial_ms doubling up to backoff_max_ms,
 *   reset by a successful connect). Calls waiting for a connection fail with
 *   CURVE_ERR_RPC_CONN when the attempt they wait for fails.
 * - Calls already sent when the connection is lost fail at once with CURVE_ERR_RPC_CONN.
 *
 * Callback contract: rpc_channel_call() returning 0 means the callback runs exactly once, later,
 * on the channel's loop, with the final status; an error return means it never runs.
 *
 * Threading: a channel belongs to one loop (the one given to rpc_channel_new); calls, cancels
 * and close may come from any thread (they are posted to the loop when needed).
 */
#ifndef CURVE_RPC_CHANNEL_H
#define CURVE_RPC_CHANNEL_H

#include <protobuf-c/protobuf-c.h>
#include <stdint.h>

#include "common/buf.h"
#include "loop/loop.h"
#include "rpc/rpc_frame.h"
#include "rpc/rpc_transport.h"

typedef struct rpc_channel rpc_channel;

/* Defaults and bounds. */
#define RPC_CHANNEL_TIMEOUT_DEFAULT_MS         5000u
#define RPC_CHANNEL_CONNECT_TIMEOUT_DEFAULT_MS 2000u
#define RPC_CHANNEL_BACKOFF_INITIAL_DEFAULT_MS 20u
#define RPC_CHANNEL_BACKOFF_MAX_DEFAULT_MS     2000u
#define RPC_CHANNEL_INFLIGHT_DEFAULT           4096u /* calls started and not yet completed */
#define RPC_CHANNEL_ERRMSG_MAX                 256u  /* error text kept per result */

typedef struct rpc_channel_opts {
    uint32_t timeout_ms;                /* default per-call timeout (0: default) */
    uint32_t connect_timeout_ms;        /* (0: default) */
    uint32_t backoff_initial_ms;        /* (0: default) */
    uint32_t backoff_max_ms;            /* (0: default) */
    uint32_t max_inflight;              /* client-side bound (0: default); beyond: CURVE_ERR_BUSY */
    rpc_frame_limits limits;            /* for received frames and sent bodies (0: defaults) */
    const rpc_transport_ops *transport; /* NULL: TCP */
} rpc_channel_opts;

/* The outcome of a call, valid during the callback only. */
typedef struct rpc_result {
    int status; /* 0, a status from the server, or CURVE_ERR_TIMEOUT / _CANCELED / _RPC_CONN /
                   _SHUTDOWN / _RPC_PROTO from this side */
    /* Unpacked response (status 0 only, else NULL). The callback may take it by setting it to
     * NULL; it then frees it with protobuf_c_message_free_unpacked(msg, NULL). */
    ProtobufCMessage *resp;
    /* Response attachment; the callback may move its slices out (curve_iobuf_move). */
    curve_iobuf attach;
    uint64_t call_id;
    /* Human-readable reason when status != 0 ("call 7 (svc 1 method 2) to 127.0.0.1:8200
     * timed out after 1000 ms", or the server's error text). */
    char errmsg[RPC_CHANNEL_ERRMSG_MAX];
} rpc_result;

typedef void (*rpc_call_cb)(rpc_result *r, void *arg);

/* Creates a channel to `addr` ("ip:port") owned by `loop`. No connection is made until the
 * first call. `opts` may be NULL. Returns 0, -EINVAL (bad address), -ENOMEM. Any thread. */
int rpc_channel_new(curve_loop *loop, const char *addr, const rpc_channel_opts *opts,
                    rpc_channel **out);

/* Starts a call. `req` is packed before returning (borrowed). The slices of `attach` (may be
 * NULL) are moved into the call (attach is left empty, also on error). `resp_desc` is the
 * expected response type (NULL: the response body is ignored). timeout_ms 0 = the channel's
 * default. On success *call_id (may be NULL) is set and 0 returned: cb(result, arg) then runs
 * exactly once on the channel's loop. Errors (no callback): CURVE_ERR_SHUTDOWN (channel
 * closed), CURVE_ERR_BUSY (max_inflight reached), CURVE_ERR_RPC_TOOBIG, -ENOMEM.
 * Any thread. */
int rpc_channel_call(rpc_channel *ch, uint32_t service_id, uint32_t method_id,
                     const ProtobufCMessage *req, curve_iobuf *attach,
                     const ProtobufCMessageDescriptor *resp_desc, uint32_t timeout_ms,
                     rpc_call_cb cb, void *arg, uint64_t *call_id);

/* Cancels a call: if it has not completed yet, its callback runs with CURVE_ERR_CANCELED (a
 * response arriving later is dropped). Asynchronous when not on the channel's loop (a cancel
 * posted by another thread than the one that started the call may reach the loop before the
 * call itself and then has no effect). Returns 0, -ENOMEM/-ESHUTDOWN (not posted), or -ENOENT
 * when called on the loop and the call is not pending. Any thread. */
int rpc_channel_cancel(rpc_channel *ch, uint64_t call_id);

/* Closes the channel: pending calls complete with CURVE_ERR_SHUTDOWN, the connection is
 * closed, and when everything is released closed_cb(arg) (may be NULL) runs on the loop.
 * The channel must not be used after this call. Any thread; the loop must keep running until
 * closed_cb ran. */
void rpc_channel_close(rpc_channel *ch, void (*closed_cb)(void *arg), void *arg);

/* rpc_channel_close() and wait for closed_cb. Not from the channel's loop. */
void rpc_channel_close_sync(rpc_channel *ch);

/* Calls in flight (started, not completed). Any thread. */
unsigned rpc_channel_inflight(rpc_channel *ch);
const char *rpc_channel_addr(const rpc_channel *ch);
/* Socket counters of the channel's current connection (rpc_transport.h rpc_net_stats; conn_gen
 * changes with every new connection, whose counters start again at 0). Only on the channel's
 * loop (e.g. inside a call's callback). 0, -ENOTCONN (no connection) or -ENOTSUP. */
struct rpc_net_stats;
int rpc_channel_net_stats(rpc_channel *ch, struct rpc_net_stats *out);

/* Blocking call for tools and tests. Not from the channel's loop. On status 0, *resp (if
 * resp != NULL) receives the unpacked response (free it with
 * protobuf_c_message_free_unpacked(*resp, NULL)) and resp_attach (if not NULL, initialised by
 * the caller) receives the attachment slices. errmsg (may be NULL) receives the error text.
 * Returns the call status (or a synchronous error of rpc_channel_call). */
int rpc_call_sync(rpc_channel *ch, uint32_t service_id, uint32_t method_id,
                  const ProtobufCMessage *req, curve_iobuf *attach,
                  const ProtobufCMessageDescriptor *resp_desc, uint32_t timeout_ms,
                  ProtobufCMessage **resp, curve_iobuf *resp_attach, char *errmsg,
                  size_t errmsg_len);

#endif
