/* Blocking chunk RPCs on the caller's thread (fastpath.h). */
#include "client/fastpath.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "chunk.pb-c.h"
#include "client/chunk_transport.h"
#include "common/assert.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "curve/errors.h"
#include "rpc/rpc_frame.h"

typedef struct fp_conn {
    struct fp_conn *next;
    int fd;
    char addr[CURVE_ADDR_MAX];
} fp_conn;

struct curve_fastpath {
    pthread_mutex_t lock; /* protects idle and nidle */
    fp_conn *idle;        /* LIFO: the most recently used first (warm) */
    unsigned nidle;
    atomic_uint_fast64_t next_id; /* correlation ids (unique per connection is enough) */
};

int curve_chunk_status_to_err(int s)
{
    if (s == 0)
        return 0;
    if (s >= 1 && s <= 12)
        return -(CURVE_ERR_BASE + 199 + s);
    return CURVE_ERR_RPC_PROTO;
}

int curve_fastpath_new(curve_fastpath **out)
{
    curve_fastpath *fp = calloc(1, sizeof(*fp));
    if (!fp)
        return -ENOMEM;
    pthread_mutex_init(&fp->lock, NULL);
    atomic_init(&fp->next_id, 1);
    *out = fp;
    return 0;
}

static void conn_close(fp_conn *c)
{
    close(c->fd);
    free(c);
}

void curve_fastpath_free(curve_fastpath *fp)
{
    if (!fp)
        return;
    while (fp->idle) {
        fp_conn *c = fp->idle;
        fp->idle = c->next;
        conn_close(c);
    }
    pthread_mutex_destroy(&fp->lock);
    free(fp);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Waits for `events` on fd until `deadline`; 0, CURVE_ERR_TIMEOUT or CURVE_ERR_RPC_CONN. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = mono_ms();
        if (now >= deadline)
            return CURVE_ERR_TIMEOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)(deadline - now));
        if (n > 0)
            return (p.revents & (POLLERR | POLLNVAL)) && !(p.revents & events) ? CURVE_ERR_RPC_CONN
                                                                                : 0;
        if (n < 0 && errno != EINTR)
            return CURVE_ERR_RPC_CONN;
    }
}

/* A new non-blocking TCP connection to "ip:port" (IPv4), connected before `deadline`. */
static int conn_open(const char *addr, uint64_t deadline, fp_conn **out)
{
    char host[CURVE_ADDR_MAX];
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof(host))
        return CURVE_ERR_RPC_CONN;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (*end || port == 0 || port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return CURVE_ERR_RPC_CONN;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return CURVE_ERR_RPC_CONN;
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int rc = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (errno != EINPROGRESS) {
            rc = CURVE_ERR_RPC_CONN;
        } else {
            rc = wait_fd(fd, POLLOUT, deadline);
            int err = 0;
            socklen_t el = sizeof(err);
            if (rc == 0 && (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0))
                rc = CURVE_ERR_RPC_CONN;
        }
    }
    fp_conn *c = rc == 0 ? calloc(1, sizeof(*c)) : NULL;
    if (!c) {
        close(fd);
        return rc != 0 ? rc : -ENOMEM;
    }
    c->fd = fd;
    snprintf(c->addr, sizeof(c->addr), "%s", addr);
    *out = c;
    return 0;
}

static fp_conn *pool_take(curve_fastpath *fp, const char *addr)
{
    pthread_mutex_lock(&fp->lock);
    fp_conn **pp = &fp->idle;
    while (*pp && strcmp((*pp)->addr, addr) != 0)
        pp = &(*pp)->next;
    fp_conn *c = *pp;
    if (c) {
        *pp = c->next;
        fp->nidle--;
    }
    pthread_mutex_unlock(&fp->lock);
    return c;
}

static void pool_put(curve_fastpath *fp, fp_conn *c)
{
    pthread_mutex_lock(&fp->lock);
    if (fp->nidle < CURVE_FASTPATH_IDLE_MAX) {
        c->next = fp->idle;
        fp->idle = c;
        fp->nidle++;
        c = NULL;
    }
    pthread_mutex_unlock(&fp->lock);
    if (c)
        conn_close(c);
}

/* Sends every byte of iov[0..n) before `deadline` (iov is consumed). */
static int send_all(int fd, struct iovec *iov, int n, uint64_t deadline)
{
    while (n > 0) {
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return CURVE_ERR_RPC_CONN;
            int rc = wait_fd(fd, POLLOUT, deadline);
            if (rc != 0)
                return rc;
            continue;
        }
        size_t left = (size_t)w;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

/* Receives exactly len bytes into buf (NULL: discard them) before `deadline`. */
static int recv_all(int fd, void *buf, size_t len, uint64_t deadline)
{
    char scratch[4096];
    while (len > 0) {
        void *dst = buf ? buf : scratch;
        size_t want = buf ? len : (len < sizeof(scratch) ? len : sizeof(scratch));
        ssize_t r = recv(fd, dst, want, 0);
        if (r > 0) {
            if (buf)
                buf = (char *)buf + r;
            len -= (size_t)r;
            continue;
        }
        if (r == 0)
            return CURVE_ERR_RPC_CONN; /* the peer closed the connection */
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return CURVE_ERR_RPC_CONN;
        int rc = wait_fd(fd, POLLIN, deadline);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* One request/reply exchange on `conn`. Returns 0 when a whole reply frame was consumed (the
 * connection can be reused; the outcome is in c->status), else the transport error. */
static int exchange(curve_fastpath *fp, fp_conn *conn, curve_fastpath_call *c, uint64_t deadline)
{
    Curve__Chunk__ChunkRequest req = CURVE__CHUNK__CHUNK_REQUEST__INIT;
    req.logical_pool_id = c->pool_id;
    req.copyset_id = c->copyset_id;
    req.chunk_id = c->chunk_id;
    req.has_file_id = 1;
    req.file_id = c->file_id;
    req.has_epoch = c->has_epoch;
    req.epoch = c->has_epoch ? c->epoch : 0;
    req.has_offset = req.has_size = 1;
    req.offset = c->chunk_off;
    req.size = c->len;
    bool wr = c->op == CURVE_RETRY_OP_WRITE;
    uint32_t method = wr ? 1 : 2;
    if (wr) {
        req.op_type = CURVE__CHUNK__CHUNK_OP_TYPE__CHUNK_OP_WRITE;
        req.has_data_crc = 1;
        req.data_crc = curve_crc32c(0, c->buf, c->len);
    } else {
        req.op_type = CURVE__CHUNK__CHUNK_OP_TYPE__CHUNK_OP_READ;
    }
    uint8_t body[256];
    size_t blen = protobuf_c_message_get_packed_size(&req.base);
    CURVE_ASSERT(blen <= sizeof(body)); /* a handful of varints */
    protobuf_c_message_pack(&req.base, body);
    uint64_t id = atomic_fetch_add(&fp->next_id, 1);
    rpc_frame_hdr h = {.type = RPC_FRAME_REQUEST,
                       .corr_id = id,
                       .service_id = CURVE_CHUNK_SVC,
                       .method_id = method,
                       .body_len = (uint32_t)blen,
                       .attach_len = wr ? c->len : 0,
                       .timeout_ms = c->timeout_ms};
    uint8_t hdr[RPC_FRAME_HDR_SIZE];
    rpc_frame_hdr_encode(&h, hdr);
    struct iovec iov[3] = {{hdr, sizeof(hdr)}, {body, blen}, {c->buf, wr ? c->len : 0}};
    int rc = send_all(conn->fd, iov, wr ? 3 : 2, deadline);
    if (rc != 0)
        return rc;

    /* The reply: wait for it, then take header, body and a small attachment with one recv
     * (a 4 KiB read is one syscall); the rest of a large attachment goes straight into the
     * user buffer. One call at a time per connection, so no byte beyond this frame arrives. */
    uint8_t rb[RPC_FRAME_HDR_SIZE + CURVE_FASTPATH_BODY_MAX + 4096];
    size_t have = 0;
    while (have < RPC_FRAME_HDR_SIZE) {
        rc = wait_fd(conn->fd, POLLIN, deadline);
        if (rc != 0)
            return rc;
        ssize_t r = recv(conn->fd, rb + have, sizeof(rb) - have, 0);
        if (r == 0)
            return CURVE_ERR_RPC_CONN;
        if (r < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            return CURVE_ERR_RPC_CONN;
        if (r > 0)
            have += (size_t)r;
    }
    rpc_frame_limits lim = {.body_max = CURVE_FASTPATH_BODY_MAX, .attach_max = wr ? 0 : c->len};
    rpc_frame_hdr rh;
    const char *why = NULL;
    size_t frame_len = 0;
    if (rpc_frame_hdr_decode(rb, &lim, &rh, &why) == 0)
        frame_len = RPC_FRAME_HDR_SIZE + (size_t)rh.body_len + rh.attach_len;
    if (frame_len == 0 || rh.type != RPC_FRAME_RESPONSE || rh.corr_id != id ||
        rh.service_id != CURVE_CHUNK_SVC || rh.method_id != method || rh.status > 0 ||
        have > frame_len) {
        CLOG_WARN("libcurve: fast path: bad reply from %s (%s)", conn->addr,
                  why ? why : "unexpected header");
        return CURVE_ERR_RPC_PROTO;
    }
    size_t body_end = RPC_FRAME_HDR_SIZE + rh.body_len;
    if (have < body_end) {
        rc = recv_all(conn->fd, rb + have, body_end - have, deadline);
        if (rc != 0)
            return rc;
        have = body_end;
    }
    size_t att_have = have - body_end; /* attachment bytes already in rb */
    if (rh.status != 0) { /* an RPC-layer answer (overload, shutdown, ...): body is text */
        c->status = rh.status;
        return recv_all(conn->fd, NULL, rh.attach_len - att_have, deadline);
    }
    Curve__Chunk__ChunkResponse *resp =
        curve__chunk__chunk_response__unpack(NULL, rh.body_len, rb + RPC_FRAME_HDR_SIZE);
    if (!resp) {
        CLOG_WARN("libcurve: fast path: undecodable ChunkResponse from %s", conn->addr);
        return CURVE_ERR_RPC_PROTO;
    }
    int st = curve_chunk_status_to_err((int)resp->status);
    if (st == CURVE_ERR_REDIRECTED && resp->leader_hint)
        snprintf(c->hint, sizeof(c->hint), "%s", resp->leader_hint);
    curve__chunk__chunk_response__free_unpacked(resp, NULL);
    if (st == 0 && !wr) {
        if (rh.attach_len != c->len) {
            CLOG_WARN("libcurve: fast path: read of chunk %llu from %s: %u bytes instead of %u",
                      (unsigned long long)c->chunk_id, conn->addr, rh.attach_len, c->len);
            return CURVE_ERR_RPC_PROTO;
        }
        memcpy(c->buf, rb + body_end, att_have);
        rc = recv_all(conn->fd, (char *)c->buf + att_have, c->len - att_have, deadline);
    } else {
        rc = recv_all(conn->fd, NULL, rh.attach_len - att_have, deadline);
    }
    if (rc == 0)
        c->status = st;
    return rc;
}

void curve_fastpath_do(curve_fastpath *fp, curve_fastpath_call *c)
{
    CURVE_ASSERT(c->op == CURVE_RETRY_OP_READ || c->op == CURVE_RETRY_OP_WRITE);
    c->status = 0;
    c->timed_out = false;
    c->hint[0] = '\0';
    uint64_t deadline = mono_ms() + c->timeout_ms;
    for (int attempt = 0; attempt < 2; attempt++) {
        fp_conn *conn = attempt == 0 ? pool_take(fp, c->addr) : NULL;
        bool reused = conn != NULL;
        int rc = conn ? 0 : conn_open(c->addr, deadline, &conn);
        if (rc == 0) {
            rc = exchange(fp, conn, c, deadline);
            if (rc == 0) {
                pool_put(fp, conn);
                return;
            }
            conn_close(conn); /* never reuse a connection in an unknown state */
        }
        /* A pooled connection found dead: the chunkserver restarted or dropped it while idle.
         * Try once more on a fresh one (a write may then execute twice: it is an idempotent
         * overwrite, like any retry). */
        if (rc == CURVE_ERR_RPC_CONN && reused)
            continue;
        c->status = rc;
        c->timed_out = rc == CURVE_ERR_TIMEOUT;
        return;
    }
    c->status = CURVE_ERR_RPC_CONN;
}
