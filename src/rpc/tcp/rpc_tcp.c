/*
 * TCP transport on libuv (see rpc_transport.h).
 *
 * Receive path: reads go into refcounted curve_buf pieces (at least TCP_RBUF_SIZE, or as large
 * as the frame being assembled still needs, up to TCP_RBUF_MAX), and the decoder hands the
 * attachment over as slices of those pieces: no copy between the socket and the handler.
 * Send path: one uv_write (writev) per frame with the header+body and every attachment slice.
 * Accept path: the listening socket is ours (so we can spread accepted sockets over a loop
 * group); loop 0 polls it and posts each accepted fd to the next loop of the group.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/assert.h"
#include "common/log.h"
#include "curve/errors.h"
#include "rpc/rpc_transport.h"

/* Default receive buffer size, and the largest one allocated for a big frame. */
#define TCP_RBUF_SIZE (64u << 10)
#define TCP_RBUF_MAX (8u << 20)
/* A receive buffer with less free tail than this is replaced. */
#define TCP_RBUF_MIN_TAIL (4u << 10)
/* Accepts per readiness event (fairness with other work on loop 0). */
#define TCP_ACCEPT_BATCH_MAX 64
/* listen(2) backlog. */
#define TCP_LISTEN_BACKLOG 1024
/* uv_buf_t array kept on the stack for a send; more slices use the heap. */
#define TCP_SEND_STACK_BUFS 32

CURVE_STATIC_ASSERT(sizeof(uv_write_t) <= RPC_OUT_PRIV_SIZE, "uv_write_t fits rpc_out.priv");

typedef struct tcp_conn {
    rpc_conn base;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_shutdown_t sreq; /* graceful close: flush queued writes first */
    rpc_frame_decoder dec;
    curve_buf *rbuf; /* current receive buffer (our reference) */
    size_t rused;    /* bytes of rbuf already filled */
    bool connected;
    bool closing;
    bool silent; /* connect() failed synchronously: no on_close */
    int close_reason;
} tcp_conn;

static void tcp_close(rpc_conn *c, int reason);

static tcp_conn *tcp_conn_new(curve_loop *loop, const rpc_conn_handler *h, void *ud,
                              const rpc_frame_limits *lim)
{
    tcp_conn *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->base.ops = rpc_transport_tcp();
    t->base.loop = loop;
    t->base.h = h;
    t->base.ud = ud;
    atomic_init(&t->base.refs, 1);
    snprintf(t->base.peer, sizeof(t->base.peer), "?");
    rpc_frame_decoder_init(&t->dec, lim);
    t->tcp.data = t;
    return t;
}

static void tcp_destroy(rpc_conn *c)
{
    tcp_conn *t = (tcp_conn *)c;
    CURVE_ASSERT(t->closing);
    free(t);
}

static void tcp_alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    tcp_conn *t = handle->data;
    size_t want = rpc_frame_decoder_want(&t->dec);
    size_t tail = t->rbuf ? curve_buf_cap(t->rbuf) - t->rused : 0;
    if (tail < TCP_RBUF_MIN_TAIL || (want > tail && want > TCP_RBUF_SIZE)) {
        size_t size = TCP_RBUF_SIZE;
        if (want > size)
            size = want + RPC_FRAME_HDR_SIZE < TCP_RBUF_MAX ? want + RPC_FRAME_HDR_SIZE
                                                            : TCP_RBUF_MAX;
        curve_buf *nb = curve_buf_new(size);
        if (!nb) {
            *buf = uv_buf_init(NULL, 0); /* read_cb gets UV_ENOBUFS */
            return;
        }
        curve_buf_unref(t->rbuf); /* slices handed to the decoder keep their own refs */
        t->rbuf = nb;
        t->rused = 0;
        tail = size;
    }
    *buf = uv_buf_init((char *)curve_buf_data(t->rbuf) + t->rused, (unsigned)tail);
}

static void tcp_on_frame(rpc_frame *f, void *arg)
{
    tcp_conn *t = arg;
    if (t->closing) { /* the user closed us from an earlier frame's callback */
        rpc_frame_free(f);
        return;
    }
    t->base.h->on_frame(&t->base, f, t->base.ud);
}

static void tcp_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    tcp_conn *t = stream->data;
    if (nread > 0) {
        curve_buf_set_len(t->rbuf, t->rused + (size_t)nread);
        size_t off = t->rused;
        t->rused += (size_t)nread;
        int rc = rpc_frame_decoder_feed(&t->dec, t->rbuf, off, (size_t)nread, tcp_on_frame, t);
        if (rc < 0 && !t->closing) {
            CLOG_WARN("rpc tcp: closing connection with %s: %s (%s)", t->base.peer,
                      t->dec.why ? t->dec.why : "decode error", curve_strerror(rc));
            tcp_close(&t->base, rc);
        }
        return;
    }
    if (nread == 0 || t->closing)
        return;
    if (nread == UV_EOF) {
        CLOG_DEBUG("rpc tcp: %s closed the connection", t->base.peer);
        tcp_close(&t->base, CURVE_ERR_RPC_CONN);
    } else {
        CLOG_INFO("rpc tcp: read from %s failed: %s", t->base.peer, uv_strerror((int)nread));
        tcp_close(&t->base, (int)nread);
    }
}

static void tcp_close_cb(uv_handle_t *h)
{
    tcp_conn *t = h->data;
    rpc_frame_decoder_reset(&t->dec);
    curve_buf_unref(t->rbuf);
    t->rbuf = NULL;
    if (!t->silent)
        t->base.h->on_close(&t->base, t->close_reason, t->base.ud);
    rpc_conn_unref(&t->base);
}

static void tcp_shutdown_cb(uv_shutdown_t *req, int status)
{
    tcp_conn *t = req->data;
    uv_close((uv_handle_t *)&t->tcp, tcp_close_cb);
}

static void tcp_close(rpc_conn *c, int reason)
{
    tcp_conn *t = (tcp_conn *)c;
    CURVE_ASSERT(curve_loop_is_current(c->loop));
    if (t->closing)
        return;
    t->closing = true;
    t->close_reason = reason ? reason : CURVE_ERR_RPC_CONN;
    uv_read_stop((uv_stream_t *)&t->tcp);
    /* A graceful close (shutdown) first flushes replies already queued; an error close
     * drops them. */
    if (reason == CURVE_ERR_SHUTDOWN && t->connected &&
        uv_stream_get_write_queue_size((uv_stream_t *)&t->tcp) > 0) {
        t->sreq.data = t;
        if (uv_shutdown(&t->sreq, (uv_stream_t *)&t->tcp, tcp_shutdown_cb) == 0)
            return;
    }
    uv_close((uv_handle_t *)&t->tcp, tcp_close_cb);
}

static void tcp_write_cb(uv_write_t *req, int status)
{
    rpc_out *o = req->data;
    tcp_conn *t = req->handle->data;
    rpc_out_free(o);
    if (status < 0 && status != UV_ECANCELED && !t->closing) {
        CLOG_INFO("rpc tcp: write to %s failed: %s", t->base.peer, uv_strerror(status));
        tcp_close(&t->base, status);
    }
}

static int tcp_send(rpc_conn *c, rpc_out *o)
{
    tcp_conn *t = (tcp_conn *)c;
    if (!t->connected || t->closing) {
        rpc_out_free(o);
        return -ENOTCONN;
    }
    uv_buf_t stackbufs[TCP_SEND_STACK_BUFS];
    uv_buf_t *bufs = stackbufs;
    unsigned n = 1 + o->attach.n;
    if (n > TCP_SEND_STACK_BUFS) {
        bufs = malloc(n * sizeof(*bufs));
        if (!bufs) {
            rpc_out_free(o);
            tcp_close(c, -ENOMEM);
            return -ENOTCONN;
        }
    }
    unsigned nb = 0;
    bufs[nb++] = uv_buf_init((char *)o->data, (unsigned)o->len);
    for (unsigned i = 0; i < o->attach.n; i++) {
        const curve_slice *s = &o->attach.v[i];
        if (s->len)
            bufs[nb++] = uv_buf_init((char *)curve_buf_data(s->buf) + s->off, (unsigned)s->len);
    }
    /* Fast path: write directly (one writev) when nothing is queued; only what the socket
     * does not take goes through uv_write (whose completion costs an extra loop pass and an
     * epoll_ctl in libuv 1.44). */
    size_t total = o->len + o->attach.len;
    int rc = uv_try_write((uv_stream_t *)&t->tcp, bufs, nb);
    if (rc >= 0 && (size_t)rc == total) {
        if (bufs != stackbufs)
            free(bufs);
        rpc_out_free(o);
        return 0;
    }
    if (rc < 0 && rc != UV_EAGAIN) {
        if (bufs != stackbufs)
            free(bufs);
        rpc_out_free(o);
        CLOG_INFO("rpc tcp: write to %s failed: %s", c->peer, uv_strerror(rc));
        tcp_close(c, rc);
        return -ENOTCONN;
    }
    /* Skip what was written; queue the rest. */
    size_t done = rc > 0 ? (size_t)rc : 0;
    unsigned first = 0;
    while (first < nb && done >= bufs[first].len) {
        done -= bufs[first].len;
        first++;
    }
    CURVE_ASSERT(first < nb);
    bufs[first].base += done;
    bufs[first].len -= done;
    uv_write_t *w = (uv_write_t *)o->priv.bytes;
    w->data = o;
    rc = uv_write(w, (uv_stream_t *)&t->tcp, bufs + first, nb - first, tcp_write_cb);
    if (bufs != stackbufs)
        free(bufs);
    if (rc < 0) {
        rpc_out_free(o);
        CLOG_INFO("rpc tcp: write to %s failed: %s", c->peer, uv_strerror(rc));
        tcp_close(c, rc);
        return -ENOTCONN;
    }
    return 0;
}

static void tcp_fill_peer(tcp_conn *t)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&t->tcp, (struct sockaddr *)&ss, &len) == 0 &&
        ss.ss_family == AF_INET) {
        struct sockaddr_in *sa = (struct sockaddr_in *)&ss;
        char ip[INET_ADDRSTRLEN];
        uv_ip4_name(sa, ip, sizeof(ip));
        snprintf(t->base.peer, sizeof(t->base.peer), "%s:%u", ip, ntohs(sa->sin_port));
    }
}

static void tcp_connect_cb(uv_connect_t *req, int status)
{
    tcp_conn *t = req->data;
    if (t->closing)
        return;
    if (status < 0) {
        tcp_close(&t->base, status);
        return;
    }
    t->connected = true;
    int rc = uv_read_start((uv_stream_t *)&t->tcp, tcp_alloc_cb, tcp_read_cb);
    if (rc < 0) {
        tcp_close(&t->base, rc);
        return;
    }
    if (t->base.h->on_connect)
        t->base.h->on_connect(&t->base, t->base.ud);
}

static int tcp_connect(curve_loop *loop, const char *addr, const rpc_conn_handler *h, void *ud,
                       const rpc_frame_limits *lim, rpc_conn **out)
{
    CURVE_ASSERT(curve_loop_is_current(loop));
    struct sockaddr_in sa;
    int rc = rpc_parse_addr(addr, &sa);
    if (rc < 0)
        return rc;
    tcp_conn *t = tcp_conn_new(loop, h, ud, lim);
    if (!t)
        return -ENOMEM;
    snprintf(t->base.peer, sizeof(t->base.peer), "%s", addr);
    rc = uv_tcp_init(curve_loop_uv(loop), &t->tcp);
    if (rc < 0)
        goto err_after_alloc;
    uv_tcp_nodelay(&t->tcp, 1);
    t->creq.data = t;
    rc = uv_tcp_connect(&t->creq, &t->tcp, (const struct sockaddr *)&sa, tcp_connect_cb);
    if (rc < 0)
        goto err_after_init;
    *out = &t->base;
    return 0;

err_after_init:
    t->silent = true;
    t->closing = true;
    uv_close((uv_handle_t *)&t->tcp, tcp_close_cb);
    return rc;
err_after_alloc:
    free(t);
    return rc;
}

/* ---- listener ---- */

struct rpc_listener {
    curve_loop_group *loops;
    curve_loop *loop0;
    int fd;
    int port;
    uv_poll_t poll;
    const rpc_conn_handler *h;
    void *ud;
    rpc_frame_limits lim;
    int start_rc;
    curve_completion closed;
};

typedef struct accept_msg {
    curve_loop_msg msg;
    curve_loop *loop;
    int fd;
    const rpc_conn_handler *h;
    void *ud;
    rpc_frame_limits lim;
} accept_msg;

static void accept_run(void *arg)
{
    accept_msg *am = arg;
    tcp_conn *t = tcp_conn_new(am->loop, am->h, am->ud, &am->lim);
    int rc = -ENOMEM;
    if (!t)
        goto err_after_msg;
    rc = uv_tcp_init(curve_loop_uv(am->loop), &t->tcp);
    if (rc < 0)
        goto err_after_conn;
    rc = uv_tcp_open(&t->tcp, am->fd);
    if (rc < 0) {
        t->silent = true;
        t->closing = true;
        uv_close((uv_handle_t *)&t->tcp, tcp_close_cb);
        goto err_after_msg;
    }
    uv_tcp_nodelay(&t->tcp, 1);
    tcp_fill_peer(t);
    t->connected = true;
    free(am);
    if (t->base.h->on_accept)
        t->base.h->on_accept(&t->base, t->base.ud);
    if (t->closing)
        return;
    rc = uv_read_start((uv_stream_t *)&t->tcp, tcp_alloc_cb, tcp_read_cb);
    if (rc < 0)
        tcp_close(&t->base, rc);
    return;

err_after_conn:
    free(t);
err_after_msg:
    CLOG_WARN("rpc tcp: cannot set up an accepted connection: %s", curve_strerror(rc));
    close(am->fd);
    free(am);
}

static void listener_poll_cb(uv_poll_t *p, int status, int events)
{
    rpc_listener *l = p->data;
    if (status < 0) {
        CLOG_WARN("rpc tcp: listener poll error: %s", uv_strerror(status));
        return;
    }
    for (int i = 0; i < TCP_ACCEPT_BATCH_MAX; i++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                CLOG_WARN("rpc tcp: accept on port %d: %s", l->port, strerror(errno));
            return;
        }
        accept_msg *am = malloc(sizeof(*am));
        if (!am) {
            close(fd);
            continue;
        }
        am->loop = curve_loop_group_next(l->loops);
        am->fd = fd;
        am->h = l->h;
        am->ud = l->ud;
        am->lim = l->lim;
        am->msg.fn = accept_run;
        am->msg.arg = am;
        if (curve_loop_post_msg(am->loop, &am->msg) < 0) {
            close(fd);
            free(am);
        }
    }
}

static void listener_start_run(void *arg)
{
    rpc_listener *l = arg;
    l->start_rc = uv_poll_init_socket(curve_loop_uv(l->loop0), &l->poll, l->fd);
    if (l->start_rc < 0)
        return;
    l->poll.data = l;
    l->start_rc = uv_poll_start(&l->poll, UV_READABLE, listener_poll_cb);
    if (l->start_rc < 0)
        uv_close((uv_handle_t *)&l->poll, NULL);
}

static int tcp_listen(curve_loop_group *loops, const char *addr, const rpc_conn_handler *h,
                      void *ud, const rpc_frame_limits *lim, rpc_listener **out)
{
    struct sockaddr_in sa;
    int rc = rpc_parse_addr(addr, &sa);
    if (rc < 0)
        return rc;
    rpc_listener *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->loops = loops;
    l->loop0 = curve_loop_group_get(loops, 0);
    l->h = h;
    l->ud = ud;
    l->lim = *lim;
    l->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->fd < 0) {
        rc = -errno;
        goto err_after_alloc;
    }
    int one = 1;
    setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(l->fd, TCP_LISTEN_BACKLOG) < 0) {
        rc = -errno;
        goto err_after_socket;
    }
    socklen_t slen = sizeof(sa);
    if (getsockname(l->fd, (struct sockaddr *)&sa, &slen) < 0) {
        rc = -errno;
        goto err_after_socket;
    }
    l->port = ntohs(sa.sin_port);
    curve_completion_init(&l->closed);
    rc = curve_loop_call_sync(l->loop0, listener_start_run, l);
    if (rc == 0)
        rc = l->start_rc;
    if (rc < 0)
        goto err_after_completion;
    *out = l;
    return 0;

err_after_completion:
    curve_completion_destroy(&l->closed);
err_after_socket:
    close(l->fd);
err_after_alloc:
    free(l);
    return rc;
}

static int tcp_listener_port(const rpc_listener *l)
{
    return l->port;
}

static void listener_poll_close_cb(uv_handle_t *h)
{
    rpc_listener *l = h->data;
    curve_completion_signal(&l->closed, 0);
}

static void listener_close_run(void *arg)
{
    rpc_listener *l = arg;
    uv_poll_stop(&l->poll);
    uv_close((uv_handle_t *)&l->poll, listener_poll_close_cb);
}

static void tcp_listener_close(rpc_listener *l)
{
    CURVE_ASSERT(!curve_loop_is_current(l->loop0));
    if (curve_loop_call_sync(l->loop0, listener_close_run, l) == 0)
        curve_completion_wait(&l->closed, 0);
    close(l->fd);
    curve_completion_destroy(&l->closed);
    free(l);
}

static const rpc_transport_ops tcp_ops = {
    .name = "tcp",
    .listen = tcp_listen,
    .listener_port = tcp_listener_port,
    .listener_close = tcp_listener_close,
    .connect = tcp_connect,
    .send = tcp_send,
    .close = tcp_close,
    .destroy = tcp_destroy,
};

const rpc_transport_ops *rpc_transport_tcp(void)
{
    return &tcp_ops;
}
