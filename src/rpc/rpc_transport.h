/*
 * Transport interface (Redis ConnectionType style): a function table per transport, so that the
 * RPC layer (channel, server) is the same over TCP and, later, UCX.
 *
 * A transport moves whole frames: the sender hands over an rpc_out (header + body bytes and an
 * attachment iobuf, sent without copying), the receiver gets complete rpc_frame objects whose
 * attachment is a list of slices of the receive buffers.
 *
 * Threading: a connection belongs to the loop it was created on (connect: the given loop;
 * accept: the loop the listener picked). All ops except ref/unref and listen/listener_close must
 * be called on that loop. Handler callbacks run on that loop.
 */
#ifndef CURVE_RPC_TRANSPORT_H
#define CURVE_RPC_TRANSPORT_H

#include <protobuf-c/protobuf-c.h>
#include <stdatomic.h>
#include <stdint.h>

#include "common/buf.h"
#include "loop/loop.h"
#include "rpc/rpc_frame.h"

typedef struct rpc_conn rpc_conn;
typedef struct rpc_listener rpc_listener;
typedef struct rpc_transport_ops rpc_transport_ops;

/* Scratch space inside every rpc_out reserved for the transport (e.g. a uv_write_t). */
#define RPC_OUT_PRIV_SIZE 256u

/* An outgoing frame: header + body in `data`, attachment slices in `attach`. */
typedef struct rpc_out {
    struct rpc_out *next; /* free for the current owner's queues */
    curve_iobuf attach;
    size_t len; /* bytes in data[] (header + body) */
    union {
        uint8_t bytes[RPC_OUT_PRIV_SIZE];
        void *align_p;
        uint64_t align_u;
    } priv;
    uint8_t data[]; /* RPC_FRAME_HDR_SIZE header bytes, then the body */
} rpc_out;

/* Builds an outgoing frame. The body is `msg` packed with protobuf-c when msg != NULL, else the
 * `raw_len` bytes at `raw` (e.g. an error text). The slices of `attach` (may be NULL) are MOVED
 * into the frame (attach is left empty). h->body_len / h->attach_len are filled in here.
 * Returns 0, -ENOMEM or CURVE_ERR_RPC_TOOBIG (body > body_max or attachment > attach_max).
 * Any thread. */
int rpc_out_new(const rpc_frame_hdr *h, const ProtobufCMessage *msg, const void *raw,
                size_t raw_len, curve_iobuf *attach, const rpc_frame_limits *lim, rpc_out **out);
void rpc_out_free(rpc_out *o); /* NULL is ignored */

/* Callbacks from a transport to its user. */
typedef struct rpc_conn_handler {
    /* An accepted connection is ready (server side); may set rpc_conn_set_user(). May be NULL. */
    void (*on_accept)(rpc_conn *c, void *ud);
    /* A connect() attempt succeeded (client side). May be NULL. */
    void (*on_connect)(rpc_conn *c, void *ud);
    /* A complete frame arrived; the callee owns `f` (rpc_frame_free). */
    void (*on_frame)(rpc_conn *c, rpc_frame *f, void *ud);
    /* The connection is closed (failed connect, peer gone, protocol error or close()), exactly
     * once, last callback; `reason` is a negative CURVE_ERR_* / errno. After it returns, the
     * transport drops its own reference. */
    void (*on_close)(rpc_conn *c, int reason, void *ud);
} rpc_conn_handler;

/* Cumulative counters of a connection's socket (TCP_INFO for TCP): data segments sent and
 * segments retransmitted. Retransmissions on a healthy local network are ~0; packet loss on
 * the path shows as retrans / data_segs_out. */
typedef struct rpc_net_stats {
    uint64_t data_segs_out, retrans;
    uint64_t conn_gen; /* rpc_channel_net_stats: bumped per new connection (counters restart) */
    uint32_t user_timeout_ms; /* TCP_USER_TIMEOUT of the socket (0: none) */
} rpc_net_stats;

/* Common part of every connection; transports embed it first. */
struct rpc_conn {
    const rpc_transport_ops *ops;
    curve_loop *loop;
    const rpc_conn_handler *h;
    void *ud;   /* handler argument */
    void *user; /* free for the user (rpc_conn_set_user) */
    atomic_int refs;
    char peer[64]; /* "ip:port" of the other side */
    /* Receive progress, maintained by the transport on the connection's loop: loop time of the
     * last bytes received, and whether a frame is partially received (stalled-peer checks). */
    uint64_t rx_last_ms;
    bool rx_partial;
};

struct rpc_transport_ops {
    const char *name; /* "tcp" */
    /* Listens on `addr` ("ip:port", port 0 = ephemeral); accepted connections are spread
     * round-robin over `loops` and reported through h->on_accept on their loop. Call from any
     * thread that is not one of the group's loops. Returns 0 or a negative errno. */
    int (*listen)(curve_loop_group *loops, const char *addr, const rpc_conn_handler *h, void *ud,
                  const rpc_frame_limits *lim, rpc_listener **out);
    /* The bound port. Any thread. */
    int (*listener_port)(const rpc_listener *l);
    /* Stops accepting and frees the listener; returns after the socket is closed. Any thread
     * that is not the listener's loop. */
    void (*listener_close)(rpc_listener *l);
    /* Starts connecting to `addr` from `loop` (loop thread). Returns 0 (then exactly one of
     * on_connect/on_close follows, and on_close always ends the connection) or a negative
     * errno (nothing follows). *out is the new connection (the transport's reference). */
    int (*connect)(curve_loop *loop, const char *addr, const rpc_conn_handler *h, void *ud,
                   const rpc_frame_limits *lim, rpc_conn **out);
    /* Queues `o` for sending; always takes ownership of `o`. Returns 0 or -ENOTCONN. */
    int (*send)(rpc_conn *c, rpc_out *o);
    /* Closes the connection; on_close(reason) follows later. Idempotent. */
    void (*close)(rpc_conn *c, int reason);
    /* Frees the memory once the last reference is gone (called by rpc_conn_unref). */
    void (*destroy)(rpc_conn *c);
    /* Socket counters (loop thread). 0, -ENOTCONN or -ENOTSUP. May be NULL (not supported). */
    int (*net_stats)(rpc_conn *c, rpc_net_stats *out);
};

/* The TCP transport (libuv; src/rpc/tcp/). */
const rpc_transport_ops *rpc_transport_tcp(void);
/* TCP_INFO of socket fd: data segments sent, segments retransmitted (tcp/tcp_stats.c). */
int rpc_tcp_fd_stats(int fd, uint64_t *data_segs_out, uint64_t *retrans);

/* Reference counting: the transport holds one reference until on_close returned; users that
 * keep the pointer longer take their own. Thread-safe. */
rpc_conn *rpc_conn_ref(rpc_conn *c);
void rpc_conn_unref(rpc_conn *c);

static inline void rpc_conn_set_user(rpc_conn *c, void *user)
{
    c->user = user;
}
static inline int rpc_conn_send(rpc_conn *c, rpc_out *o)
{
    return c->ops->send(c, o);
}
static inline void rpc_conn_close(rpc_conn *c, int reason)
{
    c->ops->close(c, reason);
}

/* Parses "a.b.c.d:port" (IPv4) into `sa`. Returns 0 or -EINVAL. */
struct sockaddr_in;
int rpc_parse_addr(const char *addr, struct sockaddr_in *sa);

#endif
