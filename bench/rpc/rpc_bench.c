/*
 * rpc_bench: RPC echo against a raw TCP baseline with the same payload (bench/rpc/run.sh).
 *
 *   rpc_bench raw-server [--listen=127.0.0.1:0]
 *       Raw TCP echo: each message is a 4-byte little-endian length and that many bytes; a
 *       thread per connection reads with a large buffer (batched reads) and writes all the
 *       complete messages of one read back with one write(2) (batched writes, the best a
 *       hand-written server does). Prints "listening IP:PORT".
 *       The raw client likewise sends the replacements for all the replies of one read with
 *       one write(2).
 *   rpc_bench raw-client --addr=IP:PORT [--size=4096] [--inflight=1] [--seconds=2]
 *   rpc_bench rpc-client --addr=IP:PORT [--size=4096] [--inflight=1] [--seconds=2]
 *       Keep --inflight messages/calls outstanding for --seconds and print
 *       "RESULT kind=<raw|rpc> inflight=N ops=N seconds=S ops_per_s=X rtt_mean_us=X
 *        rtt_p50_us=X rtt_p99_us=X". The RPC client talks to curve-echo-server (echo service,
 *       payload as the attachment) over one channel on one loop.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/assert.h"
#include "common/clock.h"
#include "curve/errors.h"
#include "rpc/echo_service.h"
#include "rpc/rpc_channel.h"

/* Latency samples kept (the rest are counted but not sampled). */
#define BENCH_SAMPLES_MAX  (4u << 20)
#define BENCH_INFLIGHT_MAX 1024u
#define BENCH_SIZE_MAX     (16u << 20)
/* Raw receive buffer. */
#define RAW_RBUF (1u << 20)

typedef struct bench_opts {
    const char *addr;
    uint32_t size, inflight;
    double seconds;
} bench_opts;

typedef struct stats {
    uint64_t ops;
    uint64_t *samples; /* ns */
    size_t nsamples;
} stats;

static void stats_add(stats *s, uint64_t ns)
{
    s->ops++;
    if (s->nsamples < BENCH_SAMPLES_MAX)
        s->samples[s->nsamples++] = ns;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void stats_print(const char *kind, const bench_opts *o, stats *s, double secs)
{
    qsort(s->samples, s->nsamples, sizeof(uint64_t), cmp_u64);
    double sum = 0;
    for (size_t i = 0; i < s->nsamples; i++)
        sum += (double)s->samples[i];
    double mean = s->nsamples ? sum / (double)s->nsamples / 1000.0 : 0;
    double p50 = s->nsamples ? (double)s->samples[s->nsamples / 2] / 1000.0 : 0;
    double p99 = s->nsamples ? (double)s->samples[s->nsamples * 99 / 100] / 1000.0 : 0;
    printf("RESULT kind=%s size=%u inflight=%u ops=%" PRIu64 " seconds=%.3f ops_per_s=%.0f "
           "rtt_mean_us=%.2f rtt_p50_us=%.2f rtt_p99_us=%.2f\n",
           kind, o->size, o->inflight, s->ops, secs, (double)s->ops / secs, mean, p50, p99);
    fflush(stdout);
}

static int connect_to(const char *addr)
{
    struct sockaddr_in sa;
    if (rpc_parse_addr(addr, &sa) < 0)
        return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---- raw server ---- */

static void *raw_conn_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    uint8_t *buf = malloc(RAW_RBUF);
    size_t have = 0;
    CURVE_ASSERT(buf);
    for (;;) {
        ssize_t n = read(fd, buf + have, RAW_RBUF - have);
        if (n <= 0)
            break;
        have += (size_t)n;
        size_t off = 0;
        for (;;) {
            if (have - off < 4)
                break;
            uint32_t len;
            memcpy(&len, buf + off, 4);
            if (len > RAW_RBUF - 4)
                goto out;
            if (have - off < 4 + (size_t)len)
                break;
            off += 4 + (size_t)len;
        }
        /* Echo every complete message of this read with one write. */
        if (off > 0 && write_all(fd, buf, off) < 0)
            goto out;
        memmove(buf, buf + off, have - off);
        have -= off;
    }
out:
    free(buf);
    close(fd);
    return NULL;
}

static int raw_server(const char *listen_addr)
{
    struct sockaddr_in sa;
    if (rpc_parse_addr(listen_addr, &sa) < 0) {
        fprintf(stderr, "rpc_bench: bad --listen %s\n", listen_addr);
        return 2;
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    socklen_t sl = sizeof(sa);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 128) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0) {
        perror("rpc_bench: raw-server");
        return 1;
    }
    printf("listening %s:%u\n", inet_ntoa(sa.sin_addr), ntohs(sa.sin_port));
    fflush(stdout);
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            perror("rpc_bench: accept");
            return 1;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        pthread_t th;
        if (pthread_create(&th, NULL, raw_conn_main, (void *)(intptr_t)fd) == 0)
            pthread_detach(th);
        else
            close(fd);
    }
}

/* ---- raw client ---- */

static int raw_client(const bench_opts *o, stats *s)
{
    int fd = connect_to(o->addr);
    if (fd < 0) {
        fprintf(stderr, "rpc_bench: connect %s: %s\n", o->addr, strerror(-fd));
        return 1;
    }
    size_t msg = 4 + (size_t)o->size;
    /* One message per possible slot, so that a batch of replacements is one write. */
    uint8_t *out = malloc(msg * o->inflight);
    uint8_t *in = malloc(RAW_RBUF > msg ? RAW_RBUF : msg);
    uint64_t *sent_at = calloc(o->inflight, sizeof(uint64_t));
    CURVE_ASSERT(out && in && sent_at);
    for (unsigned i = 0; i < o->inflight; i++) {
        memcpy(out + i * msg, &o->size, 4);
        memset(out + i * msg + 4, 0xab, o->size);
    }
    size_t bufcap = RAW_RBUF > msg ? RAW_RBUF : msg;
    uint64_t t0 = curve_now_mono_ns();
    uint64_t end = t0 + (uint64_t)(o->seconds * 1e9);
    unsigned head = 0, tail = 0; /* FIFO of send times: replies come back in order */
    for (unsigned i = 0; i < o->inflight; i++)
        sent_at[tail++ % o->inflight] = t0;
    if (write_all(fd, out, msg * o->inflight) < 0)
        return 1;
    size_t have = 0;
    bool stopping = false;
    unsigned outstanding = o->inflight;
    while (outstanding > 0) {
        ssize_t n = read(fd, in + have, bufcap - have);
        if (n <= 0) {
            fprintf(stderr, "rpc_bench: raw read failed\n");
            return 1;
        }
        have += (size_t)n;
        unsigned got = 0;
        uint64_t now = curve_now_mono_ns();
        while (have >= msg) {
            stats_add(s, now - sent_at[head++ % o->inflight]);
            outstanding--;
            got++;
            memmove(in, in + msg, have - msg);
            have -= msg;
        }
        if (now >= end)
            stopping = true;
        if (!stopping && got > 0) {
            for (unsigned i = 0; i < got; i++)
                sent_at[tail++ % o->inflight] = now;
            if (write_all(fd, out, msg * got) < 0)
                return 1;
            outstanding += got;
        }
    }
    double secs = (double)(curve_now_mono_ns() - t0) / 1e9;
    stats_print("raw", o, s, secs);
    close(fd);
    free(out);
    free(in);
    free(sent_at);
    return 0;
}

/* ---- RPC client ---- */

typedef struct rpc_bench {
    const bench_opts *o;
    stats *s;
    curve_loop *loop;
    rpc_channel *ch;
    curve_buf *payload; /* shared by every call (refcounted slices, no copies) */
    uint64_t t0, end;
    unsigned outstanding;
    bool stopping;
    int errors;
    struct rpc_slot *slots;
} rpc_bench;

typedef struct rpc_slot {
    rpc_bench *b;
    uint64_t sent_at;
} rpc_slot;

static void rpc_issue(rpc_slot *slot);

static void rpc_closed(void *arg)
{
    rpc_bench *b = arg;
    curve_loop_stop(b->loop);
}

static void rpc_done(rpc_result *r, void *arg)
{
    rpc_slot *slot = arg;
    rpc_bench *b = slot->b;
    uint64_t now = curve_now_mono_ns();
    b->outstanding--;
    if (r->status != 0 || r->attach.len != b->o->size) {
        if (b->errors++ < 5)
            fprintf(stderr, "rpc_bench: call failed: %s\n", r->errmsg);
        b->stopping = true;
    } else {
        stats_add(b->s, now - slot->sent_at);
    }
    if (now >= b->end)
        b->stopping = true;
    if (!b->stopping)
        rpc_issue(slot);
    if (b->outstanding == 0)
        rpc_channel_close(b->ch, rpc_closed, b);
}

static void rpc_issue(rpc_slot *slot)
{
    rpc_bench *b = slot->b;
    Curve__Echo__EchoRequest req = CURVE__ECHO__ECHO_REQUEST__INIT;
    req.message = "";
    curve_iobuf att;
    curve_iobuf_init(&att);
    if (b->o->size)
        CURVE_ASSERT(curve_iobuf_append(&att, b->payload, 0, b->o->size) == 0);
    slot->sent_at = curve_now_mono_ns();
    int rc = rpc_channel_call(b->ch, ECHO_SERVICE_ID, ECHO_METHOD_ECHO, &req.base, &att,
                              &curve__echo__echo_response__descriptor, 10000, rpc_done, slot, NULL);
    CURVE_ASSERT(rc == 0);
    b->outstanding++;
}

static void rpc_start(void *arg)
{
    rpc_bench *b = arg;
    rpc_slot *slots = calloc(b->o->inflight, sizeof(*slots));
    CURVE_ASSERT(slots);
    b->t0 = curve_now_mono_ns();
    b->end = b->t0 + (uint64_t)(b->o->seconds * 1e9);
    for (unsigned i = 0; i < b->o->inflight; i++) {
        slots[i].b = b;
        rpc_issue(&slots[i]);
    }
    b->slots = slots; /* freed by rpc_client after the loop stopped */
}

static int rpc_client(const bench_opts *o, stats *s)
{
    rpc_bench b = {.o = o, .s = s};
    int rc = curve_loop_new("bench", &b.loop);
    CURVE_ASSERT(rc == 0);
    rpc_channel_opts co = {.max_inflight = BENCH_INFLIGHT_MAX};
    rc = rpc_channel_new(b.loop, o->addr, &co, &b.ch);
    if (rc < 0) {
        fprintf(stderr, "rpc_bench: bad address %s\n", o->addr);
        return 2;
    }
    b.payload = curve_buf_new(o->size ? o->size : 1);
    memset(curve_buf_data(b.payload), 0xab, o->size);
    curve_buf_set_len(b.payload, o->size);
    /* Warm up: connect before measuring. */
    Curve__Echo__EchoRequest req = CURVE__ECHO__ECHO_REQUEST__INIT;
    req.message = "warmup";
    CURVE_ASSERT(curve_loop_start(b.loop) == 0);
    char err[RPC_CHANNEL_ERRMSG_MAX];
    for (int i = 0; i < 100; i++) {
        rc = rpc_call_sync(b.ch, ECHO_SERVICE_ID, ECHO_METHOD_ECHO, &req.base, NULL, NULL, 5000,
                           NULL, NULL, err, sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "rpc_bench: warm-up call failed: %s\n", err);
            return 1;
        }
    }
    CURVE_ASSERT(curve_loop_post(b.loop, rpc_start, &b) == 0);
    curve_loop_join(b.loop);
    double secs = (double)(curve_now_mono_ns() - b.t0) / 1e9;
    curve_loop_free(b.loop);
    free(b.slots);
    curve_buf_unref(b.payload);
    if (b.errors)
        return 1;
    stats_print("rpc", o, s, secs);
    return 0;
}

static int parse_opts(int argc, char **argv, bench_opts *o, const char **listen_addr)
{
    *o = (bench_opts){.size = 4096, .inflight = 1, .seconds = 2};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        char *end = NULL;
        if (!strncmp(a, "--addr=", 7)) {
            o->addr = a + 7;
        } else if (!strncmp(a, "--listen=", 9)) {
            *listen_addr = a + 9;
        } else if (!strncmp(a, "--size=", 7)) {
            unsigned long v = strtoul(a + 7, &end, 10);
            if (*end || v > BENCH_SIZE_MAX)
                return -EINVAL;
            o->size = (uint32_t)v;
        } else if (!strncmp(a, "--inflight=", 11)) {
            unsigned long v = strtoul(a + 11, &end, 10);
            if (*end || v == 0 || v > BENCH_INFLIGHT_MAX)
                return -EINVAL;
            o->inflight = (uint32_t)v;
        } else if (!strncmp(a, "--seconds=", 10)) {
            o->seconds = strtod(a + 10, &end);
            if (*end || o->seconds <= 0 || o->seconds > 600)
                return -EINVAL;
        } else {
            return -EINVAL;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    bench_opts o;
    const char *listen_addr = "127.0.0.1:0";
    if (argc < 2 || parse_opts(argc, argv, &o, &listen_addr) < 0) {
        fprintf(stderr, "usage: rpc_bench raw-server [--listen=IP:PORT]\n"
                        "       rpc_bench raw-client|rpc-client --addr=IP:PORT [--size=B] "
                        "[--inflight=N] [--seconds=S]\n");
        return 2;
    }
    if (!strcmp(argv[1], "raw-server"))
        return raw_server(listen_addr);
    if (!o.addr) {
        fprintf(stderr, "rpc_bench: --addr is required\n");
        return 2;
    }
    stats s = {.samples = malloc(BENCH_SAMPLES_MAX * sizeof(uint64_t))};
    CURVE_ASSERT(s.samples);
    int rc;
    if (!strcmp(argv[1], "raw-client"))
        rc = raw_client(&o, &s);
    else if (!strcmp(argv[1], "rpc-client"))
        rc = rpc_client(&o, &s);
    else
        rc = 2;
    free(s.samples);
    return rc;
}
