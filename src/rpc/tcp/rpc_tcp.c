/*
 * TCP transport on libuv (see rpc_transport.h).
 *
 * Receive path: reads go into refcounted curve_buf pieces (at least TCP_RBUF_SIZE, or as large
 * as the frame being assembled still needs, up to TCP_RBUF_MAX), and the decoder hands the
 * attachment over as slices of those pieces: no copy between the socket and the handler.
 * Send path: frames sent during one loop iteration are queued and flushed together, right
 * before the loop polls again (a uv_prepare handle), with one writev of every header+body block
 * and attachment slice (uv_try_write; only what the socket does not take goes through
 * uv_write). Many replies produced by one read thus cost one syscall.
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
#define TCP_RBUF_MAX  (8u << 20)
/* A receive buffer with less free tail than this is replaced. */
#define TCP_RBUF_MIN_TAIL (4u << 10)
/* Accepts per readiness event (fairness with other work on loop 0). */
#define TCP_ACCEPT_BATCH_MAX 64
/* When accept fails for lack of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM), the
 * listener stops polling for this long: the pending connection stays in the backlog and the
 * level-triggered poll would otherwise spin at 100% CPU, logging on every iteration. */
#define TCP_ACCEPT_RETRY_MS 100u
/* listen(2) backlog. */
#define TCP_LISTEN_BACKLOG 1024
/* Bytes queued for sending on one connection beyond which the peer is considered stuck (it
 * does not read its replies) and the connection is closed. */
#define TCP_WRITE_QUEUE_MAX ((size_t)256 << 20)
/* A graceful close (CURVE_ERR_SHUTDOWN) flushes what is queued for at most this long; a peer
 * that does not read (stopped, hung) must not keep the connection, and whoever waits for its
 * on_close (channel close, server stop), forever. */
#define TCP_SHUTDOWN_TIMEOUT_MS 2000u
/* uv_buf_t array kept on the stack for a flush; more slices use the heap. */
#define TCP_SEND_STACK_BUFS 128
/* TCP_USER_TIMEOUT of every connection: sent data unacknowledged this long (the peer's host
 * or the network path is gone, e.g. a partition) fails the connection, so the channel
 * reconnects instead of waiting for the kernel's exponentially backed-off retransmissions,
 * which after a 30 s partition resume only tens of seconds after the heal (chaos finding 14).
 * A live but stopped peer still acknowledges (its kernel does). */
#define TCP_USER_TIMEOUT_MS 5000u
/* A send queue reaching either bound is flushed at once instead of before the next poll. */
#define TCP_FLUSH_FRAMES_MAX 64u
#define TCP_FLUSH_BYTES_MAX  ((size_t)256 << 10)

CURVE_STATIC_ASSERT(sizeof(uv_write_t) <= RPC_OUT_PRIV_SIZE, "uv_write_t fits rpc_out.priv");

typedef struct tcp_conn {
    rpc_conn base;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_shutdown_t sreq;             /* graceful close: flush queued writes first */
    uv_prepare_t flush;             /* flushes `pend` before the loop polls */
    uv_timer_t stimer;              /* bounds a graceful close (TCP_SHUTDOWN_TIMEOUT_MS) */
    rpc_out *pend_head, *pend_tail; /* frames not yet handed to the socket */
    unsigned pend_n;
    size_t pend_bytes;
    bool flush_armed;
    rpc_frame_decoder dec;
    curve_buf *rbuf; /* current receive buffer (our reference) */
    size_t rused;    /* bytes of rbuf already filled */
    bool connected;
    bool closing;
    bool silent; /* connect() failed synchronously: no on_close */
    bool handles_closing; /* tcp_close_handles ran: the close chain is under way */
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
    t->flush.data = t;
    t->stimer.data = t;
    return t;
}

/* Initialises the three handles; on failure nothing is left to close. */
static int tcp_init_handles(tcp_conn *t)
{
    int rc = uv_tcp_init(curve_loop_uv(t->base.loop), &t->tcp);
    if (rc < 0)
        return rc;
    rc = uv_prepare_init(curve_loop_uv(t->base.loop), &t->flush);
    CURVE_ASSERT(rc == 0); /* cannot fail in libuv */
    rc = uv_timer_init(curve_loop_uv(t->base.loop), &t->stimer);
    CURVE_ASSERT(rc == 0); /* cannot fail in libuv */
    return 0;
}

static void tcp_free_pending(tcp_conn *t)
{
    while (t->pend_head) {
        rpc_out *o = t->pend_head;
        t->pend_head = o->next;
        rpc_out_free(o);
    }
    t->pend_tail = NULL;
    t->pend_n = 0;
    t->pend_bytes = 0;
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
            size =
                want + RPC_FRAME_HDR_SIZE < TCP_RBUF_MAX ? want + RPC_FRAME_HDR_SIZE : TCP_RBUF_MAX;
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
        /* The buffer's own length stays 0: other threads may hold slices of it while we keep
         * filling its tail, so only the slices (off, len) describe its contents. */
        size_t off = t->rused;
        t->rused += (size_t)nread;
        int rc = rpc_frame_decoder_feed(&t->dec, t->rbuf, off, (size_t)nread, tcp_on_frame, t);
        t->base.rx_last_ms = curve_loop_now_ms(t->base.loop);
        t->base.rx_partial = t->dec.hdr_have > 0 || t->dec.cur != NULL;
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
    tcp_free_pending(t);
    rpc_frame_decoder_reset(&t->dec);
    curve_buf_unref(t->rbuf);
    t->rbuf = NULL;
    if (!t->silent)
        t->base.h->on_close(&t->base, t->close_reason, t->base.ud);
    rpc_conn_unref(&t->base);
}

/* Closes the flush handle, the shutdown timer, then the socket (one after the other: the
 * socket's close callback may free the connection). */
static void tcp_timer_closed_cb(uv_handle_t *h)
{
    tcp_conn *t = h->data;
    uv_close((uv_handle_t *)&t->tcp, tcp_close_cb);
}

static void tcp_prepare_closed_cb(uv_handle_t *h)
{
    tcp_conn *t = h->data;
    uv_close((uv_handle_t *)&t->stimer, tcp_timer_closed_cb);
}

/* Starts the close chain; idempotent (a graceful close may end by its shutdown callback or by
 * its timer, and closing the socket cancels a pending shutdown). */
static void tcp_close_handles(tcp_conn *t)
{
    if (t->handles_closing)
        return;
    t->handles_closing = true;
    uv_prepare_stop(&t->flush);
    t->flush_armed = false;
    uv_timer_stop(&t->stimer);
    uv_close((uv_handle_t *)&t->flush, tcp_prepare_closed_cb);
}

static void tcp_shutdown_cb(uv_shutdown_t *req, int status)
{
    tcp_conn *t = req->data;
    /* UV_ECANCELED: the socket is being closed already (by our chain after the timeout, or by
     * curve_loop_free closing leftover handles): closing anything again would be a double
     * uv_close. */
    if (status == UV_ECANCELED)
        return;
    tcp_close_handles(t);
}

static void tcp_shutdown_timeout_cb(uv_timer_t *timer)
{
    tcp_conn *t = timer->data;
    CLOG_WARN("rpc tcp: %s did not take %zu queued bytes within %u ms of a graceful close; "
              "dropping them",
              t->base.peer, uv_stream_get_write_queue_size((uv_stream_t *)&t->tcp),
              TCP_SHUTDOWN_TIMEOUT_MS);
    tcp_close_handles(t);
}

static void tcp_flush(tcp_conn *t);

static void tcp_close(rpc_conn *c, int reason)
{
    tcp_conn *t = (tcp_conn *)c;
    CURVE_ASSERT(curve_loop_is_current(c->loop));
    if (t->closing)
        return;
    t->closing = true;
    t->close_reason = reason ? reason : CURVE_ERR_RPC_CONN;
    uv_read_stop((uv_stream_t *)&t->tcp);
    /* A graceful close (shutdown) first sends what is queued; an error close drops it. */
    if (reason == CURVE_ERR_SHUTDOWN && t->connected) {
        tcp_flush(t);
        if (uv_stream_get_write_queue_size((uv_stream_t *)&t->tcp) > 0) {
            t->sreq.data = t;
            if (uv_shutdown(&t->sreq, (uv_stream_t *)&t->tcp, tcp_shutdown_cb) == 0) {
                uv_timer_start(&t->stimer, tcp_shutdown_timeout_cb, TCP_SHUTDOWN_TIMEOUT_MS, 0);
                return;
            }
        }
    }
    tcp_free_pending(t);
    tcp_close_handles(t);
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

/* Queues the frames from `o` on (the first `skip` bytes of `o` are already written) with
 * uv_write, one request per frame. Returns 0 or a libuv error (the frames are freed). */
static int tcp_queue_writes(tcp_conn *t, rpc_out *o, size_t skip)
{
    int rc = 0;
    while (o) {
        rpc_out *next = o->next;
        o->next = NULL;
        if (rc < 0) {
            rpc_out_free(o);
            o = next;
            continue;
        }
        uv_buf_t stackbufs[TCP_SEND_STACK_BUFS];
        uv_buf_t *bufs = stackbufs;
        unsigned n = 1 + o->attach.n;
        if (n > TCP_SEND_STACK_BUFS && !(bufs = malloc(n * sizeof(*bufs)))) {
            rc = UV_ENOMEM;
            rpc_out_free(o);
            o = next;
            continue;
        }
        unsigned nb = 0;
        if (skip < o->len)
            bufs[nb++] = uv_buf_init((char *)o->data + skip, (unsigned)(o->len - skip));
        size_t left = skip > o->len ? skip - o->len : 0;
        for (unsigned i = 0; i < o->attach.n; i++) {
            const curve_slice *sl = &o->attach.v[i];
            if (left >= sl->len) {
                left -= sl->len;
                continue;
            }
            bufs[nb++] = uv_buf_init((char *)curve_buf_data(sl->buf) + sl->off + left,
                                     (unsigned)(sl->len - left));
            left = 0;
        }
        skip = 0;
        CURVE_ASSERT(nb > 0);
        uv_write_t *w = (uv_write_t *)o->priv.bytes;
        w->data = o;
        rc = uv_write(w, (uv_stream_t *)&t->tcp, bufs, nb, tcp_write_cb);
        if (rc < 0)
            rpc_out_free(o);
        if (bufs != stackbufs)
            free(bufs);
        o = next;
    }
    return rc;
}

/* Hands every queued frame to the socket: one writev for all of them when nothing is queued in
 * libuv, the rest (if the socket is full) through uv_write. */
static void tcp_flush(tcp_conn *t)
{
    if (t->flush_armed) {
        uv_prepare_stop(&t->flush);
        t->flush_armed = false;
    }
    rpc_out *head = t->pend_head;
    unsigned nframes = t->pend_n;
    t->pend_head = t->pend_tail = NULL;
    t->pend_n = 0;
    t->pend_bytes = 0;
    if (!head)
        return;
    size_t nbufs = 0;
    for (rpc_out *o = head; o; o = o->next)
        nbufs += 1 + o->attach.n;
    uv_buf_t stackbufs[TCP_SEND_STACK_BUFS];
    uv_buf_t *bufs = stackbufs;
    if (nbufs > TCP_SEND_STACK_BUFS && !(bufs = malloc(nbufs * sizeof(*bufs))))
        nbufs = 0; /* no memory for the vector: every frame goes through uv_write */
    int rc = UV_EAGAIN;
    if (nbufs > 0) {
        unsigned nb = 0;
        for (rpc_out *o = head; o; o = o->next) {
            bufs[nb++] = uv_buf_init((char *)o->data, (unsigned)o->len);
            for (unsigned i = 0; i < o->attach.n; i++) {
                const curve_slice *sl = &o->attach.v[i];
                if (sl->len)
                    bufs[nb++] =
                        uv_buf_init((char *)curve_buf_data(sl->buf) + sl->off, (unsigned)sl->len);
            }
        }
        rc = uv_try_write((uv_stream_t *)&t->tcp, bufs, nb);
        if (bufs != stackbufs)
            free(bufs);
    }
    if (rc < 0 && rc != UV_EAGAIN) {
        CLOG_INFO("rpc tcp: write of %u frames to %s failed: %s", nframes, t->base.peer,
                  uv_strerror(rc));
        t->pend_head = head; /* freed by tcp_close */
        tcp_free_pending(t);
        tcp_close(&t->base, rc);
        return;
    }
    /* Free what went out completely; queue the rest. */
    size_t done = rc > 0 ? (size_t)rc : 0;
    while (head && done >= head->len + head->attach.len) {
        rpc_out *o = head;
        head = o->next;
        done -= o->len + o->attach.len;
        rpc_out_free(o);
    }
    if (!head)
        return;
    rc = tcp_queue_writes(t, head, done);
    if (rc < 0) {
        CLOG_INFO("rpc tcp: write to %s failed: %s", t->base.peer, uv_strerror(rc));
        tcp_close(&t->base, rc);
    }
}

static void tcp_flush_cb(uv_prepare_t *p)
{
    tcp_flush(p->data);
}

static int tcp_send(rpc_conn *c, rpc_out *o)
{
    tcp_conn *t = (tcp_conn *)c;
    if (!t->connected || t->closing) {
        rpc_out_free(o);
        return -ENOTCONN;
    }
    size_t queued = uv_stream_get_write_queue_size((uv_stream_t *)&t->tcp) + t->pend_bytes;
    if (queued > TCP_WRITE_QUEUE_MAX) {
        CLOG_WARN("rpc tcp: %zu bytes queued for %s, which does not read; closing", queued,
                  c->peer);
        rpc_out_free(o);
        tcp_close(c, CURVE_ERR_RPC_OVERLOAD);
        return -ENOTCONN;
    }
    o->next = NULL;
    if (t->pend_tail)
        t->pend_tail->next = o;
    else
        t->pend_head = o;
    t->pend_tail = o;
    t->pend_n++;
    t->pend_bytes += o->len + o->attach.len;
    if (t->pend_n >= TCP_FLUSH_FRAMES_MAX || t->pend_bytes >= TCP_FLUSH_BYTES_MAX) {
        tcp_flush(t);
    } else if (!t->flush_armed) {
        uv_prepare_start(&t->flush, tcp_flush_cb);
        t->flush_armed = true;
    }
    return 0;
}

static void tcp_fill_peer(tcp_conn *t)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&t->tcp, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family == AF_INET) {
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

static void tcp_set_opts(tcp_conn *t);

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
    rc = tcp_init_handles(t);
    if (rc < 0)
        goto err_after_alloc;
    t->creq.data = t;
    rc = uv_tcp_connect(&t->creq, &t->tcp, (const struct sockaddr *)&sa, tcp_connect_cb);
    if (rc < 0)
        goto err_after_init;
    tcp_set_opts(t); /* the socket exists now; also bounds an unanswered connect */
    *out = &t->base;
    return 0;

err_after_init:
    t->silent = true;
    t->closing = true;
    tcp_close_handles(t);
    return rc;
err_after_alloc:
    free(t);
    return rc;
}

/* Sets the connection's options once its socket exists: no Nagle, TCP_USER_TIMEOUT. */
static void tcp_set_opts(tcp_conn *t)
{
    uv_tcp_nodelay(&t->tcp, 1);
    uv_os_fd_t fd;
    unsigned int ms = TCP_USER_TIMEOUT_MS;
    if (uv_fileno((const uv_handle_t *)&t->tcp, &fd) == 0 &&
        setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms)) != 0)
        CLOG_DEBUG("rpc tcp: TCP_USER_TIMEOUT on %s: %s", t->base.peer, strerror(errno));
}

/* ---- listener ---- */

struct rpc_listener {
    curve_loop_group *loops;
    curve_loop *loop0;
    int fd;
    int port;
    uv_poll_t poll;
    uv_timer_t retry; /* resumes polling after an accept failed for lack of resources */
    unsigned open_handles; /* poll + retry timer, counted down by their close callbacks */
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
    rc = tcp_init_handles(t);
    if (rc < 0)
        goto err_after_conn;
    rc = uv_tcp_open(&t->tcp, am->fd);
    if (rc < 0) {
        t->silent = true;
        t->closing = true;
        tcp_close_handles(t);
        goto err_after_msg;
    }
    tcp_set_opts(t);
    tcp_fill_peer(t);
    t->connected = true;
    t->base.rx_last_ms = curve_loop_now_ms(am->loop);
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

static void listener_poll_cb(uv_poll_t *p, int status, int events);

static void listener_retry_cb(uv_timer_t *timer)
{
    rpc_listener *l = timer->data;
    int rc = uv_poll_start(&l->poll, UV_READABLE, listener_poll_cb);
    if (rc < 0) {
        CLOG_WARN("rpc tcp: cannot resume accepting on port %d: %s", l->port, uv_strerror(rc));
        uv_timer_start(&l->retry, listener_retry_cb, TCP_ACCEPT_RETRY_MS, 0);
    }
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
            int err = errno;
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
                CLOG_WARN("rpc tcp: accept on port %d: %s; pausing accepts for %u ms", l->port,
                          strerror(err), TCP_ACCEPT_RETRY_MS);
                uv_poll_stop(&l->poll);
                uv_timer_start(&l->retry, listener_retry_cb, TCP_ACCEPT_RETRY_MS, 0);
            } else if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR) {
                CLOG_WARN("rpc tcp: accept on port %d: %s", l->port, strerror(err));
            }
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

static void listener_handle_closed_cb(uv_handle_t *h)
{
    rpc_listener *l = h->data;
    CURVE_ASSERT(l->open_handles > 0);
    if (--l->open_handles == 0)
        curve_completion_signal(&l->closed, 0);
}

static void listener_close_handles(rpc_listener *l)
{
    uv_poll_stop(&l->poll);
    uv_timer_stop(&l->retry);
    uv_close((uv_handle_t *)&l->poll, listener_handle_closed_cb);
    uv_close((uv_handle_t *)&l->retry, listener_handle_closed_cb);
}

static void listener_start_run(void *arg)
{
    rpc_listener *l = arg;
    l->start_rc = uv_poll_init_socket(curve_loop_uv(l->loop0), &l->poll, l->fd);
    if (l->start_rc < 0)
        return;
    l->poll.data = l;
    int rc = uv_timer_init(curve_loop_uv(l->loop0), &l->retry);
    CURVE_ASSERT(rc == 0); /* cannot fail in libuv */
    l->retry.data = l;
    l->open_handles = 2;
    l->start_rc = uv_poll_start(&l->poll, UV_READABLE, listener_poll_cb);
    if (l->start_rc < 0)
        listener_close_handles(l); /* tcp_listen waits for `closed` before freeing l */
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
    if (rc < 0) {
        if (l->open_handles > 0) /* handles were set up and are closing on loop 0 */
            curve_completion_wait(&l->closed, 0);
        goto err_after_completion;
    }
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

static void listener_close_run(void *arg)
{
    listener_close_handles(arg);
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

static int tcp_net_stats(rpc_conn *c, rpc_net_stats *out)
{
    tcp_conn *tc = (tcp_conn *)c;
    if (!tc->connected || tc->closing)
        return -ENOTCONN;
    uv_os_fd_t fd;
    if (uv_fileno((const uv_handle_t *)&tc->tcp, &fd) != 0)
        return -ENOTCONN;
    unsigned int ms = 0;
    socklen_t len = sizeof(ms);
    out->user_timeout_ms = getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, &len) == 0 ? ms : 0;
    return rpc_tcp_fd_stats(fd, &out->data_segs_out, &out->retrans);
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
    .net_stats = tcp_net_stats,
};

const rpc_transport_ops *rpc_transport_tcp(void)
{
    return &tcp_ops;
}
