/*
 * curve-echo-client: drives the echo service and checks every reply.
 *
 *   curve-echo-client --addr=IP:PORT [--channels=1] [--calls=100] [--inflight=1]
 *       [--attach=BYTES | --attach-mixed=MAXBYTES] [--timeout-ms=5000] [--delay-ms=0]
 *       [--worker-every=0] [--seed=N] [--expect=ok|timeout|conn|error]
 *
 * Each channel (one connection) runs --calls calls with --inflight of them in flight. Each
 * call carries a message and an attachment filled with a pseudo-random pattern derived from the
 * seed and the call; the reply must echo both exactly. --attach-mixed draws sizes from 0 B to
 * MAXBYTES (5% empty, 3% exactly MAXBYTES, 7% uniform up to MAXBYTES, the rest up to
 * 64 KiB). --worker-every=K makes every K-th call be
 * answered from a server worker thread.
 *
 * Prints "started" once the first calls are queued, then a summary line
 * "done ok=N failed=M verified=V" and one "error <NAME> count=<n> example=<text>" line per error
 * kind. Exit status 0 only if every call ended as --expect says (ok: all replies verified;
 * timeout/conn: every call failed with CURVE_ERR_TIMEOUT / CURVE_ERR_RPC_CONN; error: every call
 * failed), 1 otherwise, 2 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/assert.h"
#include "common/clock.h"
#include "curve/errors.h"
#include "rpc/echo_service.h"
#include "rpc/rpc_channel.h"

/* Distinct error codes remembered for the summary. */
#define CLIENT_ERR_KINDS_MAX 16

typedef enum { EXPECT_OK, EXPECT_TIMEOUT, EXPECT_CONN, EXPECT_ERROR } expect_kind;

typedef struct client_opts {
    const char *addr;
    uint32_t channels, calls, inflight, timeout_ms, delay_ms, worker_every;
    uint64_t attach, attach_mixed, seed;
    expect_kind expect;
} client_opts;

typedef struct err_kind {
    int code;
    unsigned count;
    char example[RPC_CHANNEL_ERRMSG_MAX];
} err_kind;

typedef struct client client;

typedef struct chan {
    client *cl;
    unsigned idx;
    rpc_channel *ch;
    uint32_t started, finished;
} chan;

typedef struct pending {
    chan *c;
    uint32_t seq;
    uint64_t size;
    char msg[48];
} pending;

struct client {
    client_opts o;
    curve_loop *loop;
    chan *chans;
    unsigned chans_done, chans_closed;
    uint64_t ok, failed, verified, bytes;
    err_kind errs[CLIENT_ERR_KINDS_MAX];
    unsigned nerrs;
};

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* The attachment pattern of one call: a xorshift stream seeded from (seed, channel, seq). */
static void fill_pattern(uint8_t *p, size_t n, uint64_t key)
{
    uint64_t x = mix64(key) | 1;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(p + i, &x, 8);
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    for (size_t k = 0; i < n; i++, k++)
        p[i] = (uint8_t)(x >> (8 * k));
}

static uint64_t call_key(const client *cl, unsigned ch, uint32_t seq)
{
    return cl->o.seed * 0x100000001b3ULL ^ ((uint64_t)ch << 32) ^ seq;
}

static uint64_t pick_size(const client *cl, uint64_t key)
{
    if (!cl->o.attach_mixed)
        return cl->o.attach;
    uint64_t r = mix64(key ^ 0x5bd1e995);
    unsigned pct = (unsigned)(r % 100);
    uint64_t max = cl->o.attach_mixed;
    if (pct < 5)
        return 0;
    if (pct < 8)
        return max;
    if (pct < 15)
        return (r >> 8) % (max + 1);
    uint64_t small = max < 65536 ? max : 65536;
    return (r >> 8) % (small + 1);
}

static void record_error(client *cl, int code, const char *text)
{
    for (unsigned i = 0; i < cl->nerrs; i++) {
        if (cl->errs[i].code == code) {
            cl->errs[i].count++;
            return;
        }
    }
    if (cl->nerrs < CLIENT_ERR_KINDS_MAX) {
        err_kind *e = &cl->errs[cl->nerrs++];
        e->code = code;
        e->count = 1;
        snprintf(e->example, sizeof(e->example), "%s", text);
    }
}

static bool start_call(chan *c);

/* Starts the next call of `c`; calls refused synchronously are accounted and skipped. */
static void start_next(chan *c)
{
    while (c->started < c->cl->o.calls && !start_call(c)) {
    }
}

static void chan_closed(void *arg)
{
    chan *c = arg;
    client *cl = c->cl;
    if (++cl->chans_closed == cl->o.channels)
        curve_loop_stop(cl->loop);
}

static bool verify(client *cl, pending *p, rpc_result *r, char *why, size_t whylen)
{
    const Curve__Echo__EchoResponse *resp = (const Curve__Echo__EchoResponse *)r->resp;
    if (!resp || strcmp(resp->message, p->msg) != 0) {
        snprintf(why, whylen, "message mismatch for %s", p->msg);
        return false;
    }
    if (resp->attach_len != p->size || r->attach.len != p->size) {
        snprintf(why, whylen, "%s: attachment length %" PRIu64 "/%zu, expected %" PRIu64, p->msg,
                 resp->attach_len, r->attach.len, p->size);
        return false;
    }
    if (p->size == 0)
        return true;
    uint8_t *want = malloc(p->size), *got = malloc(p->size);
    CURVE_ASSERT(want && got);
    fill_pattern(want, p->size, call_key(cl, p->c->idx, p->seq));
    size_t n = curve_iobuf_copyout(&r->attach, 0, got, p->size);
    bool same = n == p->size && memcmp(want, got, p->size) == 0;
    if (!same)
        snprintf(why, whylen, "%s: attachment content differs", p->msg);
    free(want);
    free(got);
    return same;
}

static void call_done(rpc_result *r, void *arg)
{
    pending *p = arg;
    chan *c = p->c;
    client *cl = c->cl;
    if (r->status == 0) {
        char why[200];
        if (verify(cl, p, r, why, sizeof(why))) {
            cl->ok++;
            cl->verified++;
            cl->bytes += p->size;
        } else {
            cl->failed++;
            record_error(cl, CURVE_ERR_CORRUPT, why);
        }
    } else {
        cl->failed++;
        record_error(cl, r->status, r->errmsg);
    }
    free(p);
    c->finished++;
    start_next(c);
    if (c->finished == cl->o.calls)
        rpc_channel_close(c->ch, chan_closed, c);
}

/* Returns false if the call was refused synchronously (already accounted as failed). */
static bool start_call(chan *c)
{
    client *cl = c->cl;
    uint32_t seq = c->started++;
    uint64_t key = call_key(cl, c->idx, seq);
    pending *p = calloc(1, sizeof(*p));
    CURVE_ASSERT(p);
    p->c = c;
    p->seq = seq;
    p->size = pick_size(cl, key);
    snprintf(p->msg, sizeof(p->msg), "c%u-%u", c->idx, seq);
    Curve__Echo__EchoRequest req = CURVE__ECHO__ECHO_REQUEST__INIT;
    req.message = p->msg;
    if (cl->o.delay_ms) {
        req.has_delay_ms = 1;
        req.delay_ms = cl->o.delay_ms;
    }
    if (cl->o.worker_every && seq % cl->o.worker_every == 0) {
        req.has_reply_from_worker = 1;
        req.reply_from_worker = 1;
    }
    curve_iobuf att;
    curve_iobuf_init(&att);
    if (p->size) {
        curve_buf *b = curve_buf_new(p->size);
        CURVE_ASSERT(b);
        fill_pattern(curve_buf_data(b), p->size, key);
        curve_buf_set_len(b, p->size);
        int rc = curve_iobuf_append(&att, b, 0, p->size);
        CURVE_ASSERT(rc == 0);
        curve_buf_unref(b);
    }
    int rc = rpc_channel_call(c->ch, ECHO_SERVICE_ID, ECHO_METHOD_ECHO, &req.base, &att,
                              &curve__echo__echo_response__descriptor, cl->o.timeout_ms, call_done,
                              p, NULL);
    if (rc < 0) {
        /* No callback will come: account for the call here. */
        cl->failed++;
        record_error(cl, rc, "rpc_channel_call refused the call");
        free(p);
        if (++c->finished == cl->o.calls)
            rpc_channel_close(c->ch, chan_closed, c);
        return false;
    }
    return true;
}

static void start_all(void *arg)
{
    client *cl = arg;
    for (unsigned i = 0; i < cl->o.channels; i++) {
        chan *c = &cl->chans[i];
        uint32_t n = cl->o.inflight < cl->o.calls ? cl->o.inflight : cl->o.calls;
        while (c->started < n)
            start_next(c);
    }
    printf("started\n");
    fflush(stdout);
}

static int parse_u64(const char *name, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *s == 0 || *end != 0 || v < min || v > max) {
        fprintf(stderr,
                "curve-echo-client: --%s=%s: expected an integer in [%" PRIu64 ", %" PRIu64 "]\n",
                name, s, min, max);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

static int parse_u32(const char *name, const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    uint64_t v;
    int rc = parse_u64(name, s, min, max, &v);
    if (rc == 0)
        *out = (uint32_t)v;
    return rc;
}

static int parse_opts(int argc, char **argv, client_opts *o)
{
    *o = (client_opts){.channels = 1,
                       .calls = 100,
                       .inflight = 1,
                       .timeout_ms = 5000,
                       .seed = 1,
                       .expect = EXPECT_OK};
    static const struct option longopts[] = {
        {"addr", required_argument, NULL, 'a'},
        {"channels", required_argument, NULL, 'C'},
        {"calls", required_argument, NULL, 'n'},
        {"inflight", required_argument, NULL, 'i'},
        {"attach", required_argument, NULL, 's'},
        {"attach-mixed", required_argument, NULL, 'm'},
        {"timeout-ms", required_argument, NULL, 't'},
        {"delay-ms", required_argument, NULL, 'd'},
        {"worker-every", required_argument, NULL, 'w'},
        {"seed", required_argument, NULL, 'S'},
        {"expect", required_argument, NULL, 'e'},
        {NULL, 0, NULL, 0},
    };
    int opt, rc = 0;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1 && rc == 0) {
        switch (opt) {
        case 'a':
            o->addr = optarg;
            break;
        case 'C':
            rc = parse_u32("channels", optarg, 1, 4096, &o->channels);
            break;
        case 'n':
            rc = parse_u32("calls", optarg, 1, 100000000, &o->calls);
            break;
        case 'i':
            rc = parse_u32("inflight", optarg, 1, 4096, &o->inflight);
            break;
        case 's':
            rc = parse_u64("attach", optarg, 0, 64u << 20, &o->attach);
            break;
        case 'm':
            rc = parse_u64("attach-mixed", optarg, 1, 64u << 20, &o->attach_mixed);
            break;
        case 't':
            rc = parse_u32("timeout-ms", optarg, 1, 3600000, &o->timeout_ms);
            break;
        case 'd':
            rc = parse_u32("delay-ms", optarg, 0, ECHO_DELAY_MAX_MS, &o->delay_ms);
            break;
        case 'w':
            rc = parse_u32("worker-every", optarg, 0, 1000000, &o->worker_every);
            break;
        case 'S':
            rc = parse_u64("seed", optarg, 0, UINT64_MAX, &o->seed);
            break;
        case 'e':
            if (!strcmp(optarg, "ok"))
                o->expect = EXPECT_OK;
            else if (!strcmp(optarg, "timeout"))
                o->expect = EXPECT_TIMEOUT;
            else if (!strcmp(optarg, "conn"))
                o->expect = EXPECT_CONN;
            else if (!strcmp(optarg, "error"))
                o->expect = EXPECT_ERROR;
            else
                rc = -EINVAL;
            break;
        default:
            rc = -EINVAL;
        }
    }
    if (rc == 0 && (!o->addr || optind != argc))
        rc = -EINVAL;
    if (rc < 0)
        fprintf(stderr, "usage: curve-echo-client --addr=IP:PORT [--channels=N] [--calls=N] "
                        "[--inflight=N] [--attach=B|--attach-mixed=MAX] [--timeout-ms=MS] "
                        "[--delay-ms=MS] [--worker-every=K] [--seed=N] "
                        "[--expect=ok|timeout|conn|error]\n");
    return rc;
}

int main(int argc, char **argv)
{
    static client cl;
    if (parse_opts(argc, argv, &cl.o) < 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    int rc = curve_loop_new("echo-client", &cl.loop);
    if (rc < 0) {
        fprintf(stderr, "curve-echo-client: %s\n", curve_strerror(rc));
        return 1;
    }
    cl.chans = calloc(cl.o.channels, sizeof(*cl.chans));
    CURVE_ASSERT(cl.chans);
    rpc_channel_opts copts = {.timeout_ms = cl.o.timeout_ms, .max_inflight = cl.o.inflight};
    for (unsigned i = 0; i < cl.o.channels; i++) {
        cl.chans[i].cl = &cl;
        cl.chans[i].idx = i;
        rc = rpc_channel_new(cl.loop, cl.o.addr, &copts, &cl.chans[i].ch);
        if (rc < 0) {
            fprintf(stderr, "curve-echo-client: bad address '%s': %s\n", cl.o.addr,
                    curve_strerror(rc));
            return 2;
        }
    }
    printf("seed %" PRIu64 "\n", cl.o.seed);
    uint64_t t0 = curve_now_mono_ns();
    rc = curve_loop_post(cl.loop, start_all, &cl);
    CURVE_ASSERT(rc == 0);
    curve_loop_run(cl.loop);
    double secs = (double)(curve_now_mono_ns() - t0) / 1e9;
    curve_loop_free(cl.loop);
    free(cl.chans);

    printf("done ok=%" PRIu64 " failed=%" PRIu64 " verified=%" PRIu64 " bytes=%" PRIu64
           " seconds=%.3f\n",
           cl.ok, cl.failed, cl.verified, cl.bytes, secs);
    for (unsigned i = 0; i < cl.nerrs; i++)
        printf("error %s count=%u example=%s\n", curve_errname(cl.errs[i].code), cl.errs[i].count,
               cl.errs[i].example);
    uint64_t total = (uint64_t)cl.o.channels * cl.o.calls;
    bool good;
    switch (cl.o.expect) {
    case EXPECT_OK:
        good = cl.verified == total;
        break;
    case EXPECT_TIMEOUT:
        good = cl.failed == total && cl.nerrs == 1 && cl.errs[0].code == CURVE_ERR_TIMEOUT;
        break;
    case EXPECT_CONN:
        good = cl.failed == total && cl.nerrs == 1 && cl.errs[0].code == CURVE_ERR_RPC_CONN;
        break;
    default:
        good = cl.failed == total;
        break;
    }
    fflush(stdout);
    return good ? 0 : 1;
}
