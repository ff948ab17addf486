/* Volume IO engine against a fake cluster on a simulated event loop (manual clock). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "client/volio.h"
#include "common/assert.h"
#include "common/clock.h"
#include "common/log.h"
#include "curve/errors.h"

#define MS         (1000000ull)
#define KiB        (1024u)
#define CHUNK      (256u * KiB)
#define SEG        (4u * CHUNK) /* 4 chunks per segment */
#define VOL        (8u * SEG)
#define NSEG       (VOL / SEG)
#define NCHUNK     (VOL / CHUNK)
#define NODES      3
#define NCOPYSETS  3
#define EVENTS_MAX 4096   /* pending events in the fake loop */
#define STEPS_MAX  200000 /* events processed before a test is declared hung */
#define LATENCY_MS 1

/* ---- fake cluster ---- */

typedef struct node {
    char addr[CURVE_ADDR_MAX];
    bool down;
    int overload;    /* answer OVERLOAD this many more times */
    int fail_status; /* answer this status to every SEND when non-zero */
} node;

typedef struct event {
    uint64_t due_ns;
    uint64_t order;
    curve_volio_call *c;
    /* the result, decided when the call was made */
    int status;
    bool timed_out;
    char hint[CURVE_ADDR_MAX];
} event;

typedef struct world {
    curve_clock_manual clock;
    curve_retry_opts opts;
    curve_metacache *mc;
    curve_unstable_tracker *ut;
    curve_volio_ops ops;
    curve_volio *v;
    uint64_t rnd;
    /* cluster */
    node nodes[NODES];
    int leader[NCOPYSETS + 1]; /* per copyset: node index */
    bool seg_alloc[NSEG];
    uint8_t *chunk_data[NCHUNK]; /* NULL = chunk never written */
    int mds_failures;            /* fail this many more MDS segment calls */
    uint64_t epoch_seen;
    int seg_calls, seg_allocs;
    /* loop */
    event ev[EVENTS_MAX];
    int nev;
    uint64_t order;
    int sends_now, sends_peak, sends_total;
    bool in_submit;
    int cb_in_submit;
} world;

static uint64_t world_rand(void *ctx)
{
    return *(uint64_t *)ctx;
}

static uint32_t copyset_of(uint32_t chunk_index)
{
    return chunk_index % NCOPYSETS + 1;
}

static void push(world *w, curve_volio_call *c, uint64_t delay_ms, int status, bool timed_out,
                 const char *hint)
{
    assert_true(w->nev < EVENTS_MAX);
    event *e = &w->ev[w->nev++];
    *e = (event){.due_ns = curve_clock_mono_ns(&w->clock.base) + delay_ms * MS,
                 .order = w->order++,
                 .c = c,
                 .status = status,
                 .timed_out = timed_out};
    if (hint)
        snprintf(e->hint, sizeof(e->hint), "%s", hint);
}

static int node_of(world *w, const char *addr)
{
    for (int i = 0; i < NODES; i++)
        if (strcmp(w->nodes[i].addr, addr) == 0)
            return i;
    fail_msg("unknown address %s", addr);
    return -1;
}

static void put_copyset(world *w, uint32_t cs)
{
    curve_peer p[NODES];
    for (int i = 0; i < NODES; i++) {
        p[i].cs_id = (uint32_t)i + 1;
        snprintf(p[i].addr, sizeof(p[i].addr), "%s", w->nodes[i].addr);
    }
    assert_int_equal(
        curve_metacache_put_copyset(w->mc, 1, cs, 1, p, NODES, w->nodes[w->leader[cs]].addr, 1), 0);
}

/* Executes a chunk RPC on the leader's store; returns the status. */
static int do_chunk_op(world *w, curve_volio_call *c)
{
    uint32_t ci = (uint32_t)(c->chunk_id - 1000);
    assert_true(ci < NCHUNK);
    assert_int_equal(c->copyset_id, copyset_of(ci));
    assert_true((uint64_t)c->chunk_off + c->len <= CHUNK);
    w->epoch_seen = c->epoch;
    switch (c->op) {
    case CURVE_RETRY_OP_WRITE:
        if (!w->chunk_data[ci])
            w->chunk_data[ci] = calloc(1, CHUNK);
        memcpy(w->chunk_data[ci] + c->chunk_off, c->buf, c->len);
        return 0;
    case CURVE_RETRY_OP_READ:
        if (!w->chunk_data[ci])
            return CURVE_ERR_CHUNK_NOTEXIST;
        memcpy(c->buf, w->chunk_data[ci] + c->chunk_off, c->len);
        return 0;
    case CURVE_RETRY_OP_DISCARD:
        if (!w->chunk_data[ci])
            return CURVE_ERR_CHUNK_NOTEXIST;
        memset(w->chunk_data[ci] + c->chunk_off, 0, c->len);
        return 0;
    }
    return CURVE_ERR_INVALID_REQUEST;
}

static void fake_call(void *ctx, curve_volio_call *c)
{
    world *w = ctx;
    switch (c->kind) {
    case CURVE_VOLIO_CALL_SEND: {
        w->sends_now++;
        w->sends_total++;
        if (w->sends_now > w->sends_peak)
            w->sends_peak = w->sends_now;
        node *n = &w->nodes[node_of(w, c->peer.addr)];
        int li = w->leader[c->copyset_id];
        if (n->down)
            push(w, c, c->timeout_ms, 0, true, NULL);
        else if (n->fail_status)
            push(w, c, LATENCY_MS, n->fail_status, false, NULL);
        else if (n->overload > 0 && n->overload--)
            push(w, c, LATENCY_MS, CURVE_ERR_OVERLOAD, false, NULL);
        else if (n != &w->nodes[li])
            push(w, c, LATENCY_MS, CURVE_ERR_REDIRECTED, false, w->nodes[li].addr);
        else
            push(w, c, LATENCY_MS, do_chunk_op(w, c), false, NULL);
        return;
    }
    case CURVE_VOLIO_CALL_GET_LEADER:
        push(w, c, LATENCY_MS, 0, false, w->nodes[w->leader[c->copyset_id]].addr);
        return;
    case CURVE_VOLIO_CALL_REFRESH_MDS:
        put_copyset(w, c->copyset_id);
        push(w, c, LATENCY_MS, 0, false, NULL);
        return;
    case CURVE_VOLIO_CALL_GET_SEGMENT: {
        w->seg_calls++;
        assert_true(c->seg_index < NSEG);
        if (w->mds_failures > 0) {
            w->mds_failures--;
            push(w, c, LATENCY_MS, CURVE_ERR_RPC_CONN, false, NULL);
            return;
        }
        if (!w->seg_alloc[c->seg_index]) {
            if (!c->allocate) {
                push(w, c, LATENCY_MS, CURVE_ERR_NOT_FOUND, false, NULL);
                return;
            }
            w->seg_alloc[c->seg_index] = true;
            w->seg_allocs++;
        }
        curve_chunk_loc locs[SEG / CHUNK];
        for (uint32_t i = 0; i < SEG / CHUNK; i++) {
            uint32_t ci = (uint32_t)c->seg_index * (SEG / CHUNK) + i;
            locs[i] = (curve_chunk_loc){
                .chunk_id = 1000 + ci, .pool_id = 1, .copyset_id = copyset_of(ci)};
        }
        assert_int_equal(
            curve_metacache_put_segment(w->mc, c->file_id, c->seg_index, locs, SEG / CHUNK), 0);
        push(w, c, LATENCY_MS, 0, false, NULL);
        return;
    }
    case CURVE_VOLIO_CALL_SLEEP:
        break;
    }
    fail_msg("unexpected call kind %d", c->kind);
}

static void fake_sleep(void *ctx, curve_volio_call *c)
{
    world *w = ctx;
    assert_int_equal(c->kind, CURVE_VOLIO_CALL_SLEEP);
    push(w, c, c->sleep_ms, 0, false, NULL);
}

/* Delivers events in time order until none is left or the next one is due after `until_ns`. */
static void run_until(world *w, uint64_t until_ns)
{
    for (int steps = 0; w->nev > 0; steps++) {
        assert_true(steps < STEPS_MAX);
        int best = 0;
        for (int i = 1; i < w->nev; i++)
            if (w->ev[i].due_ns < w->ev[best].due_ns ||
                (w->ev[i].due_ns == w->ev[best].due_ns && w->ev[i].order < w->ev[best].order))
                best = i;
        if (w->ev[best].due_ns > until_ns)
            return;
        event e = w->ev[best];
        w->ev[best] = w->ev[--w->nev];
        uint64_t now = curve_clock_mono_ns(&w->clock.base);
        if (e.due_ns > now)
            curve_clock_manual_advance(&w->clock, e.due_ns - now);
        switch (e.c->kind) {
        case CURVE_VOLIO_CALL_SEND:
            w->sends_now--;
            curve_volio_send_done(e.c, e.status, e.timed_out, e.hint[0] ? e.hint : NULL);
            break;
        case CURVE_VOLIO_CALL_GET_LEADER:
            curve_volio_leader_done(e.c, e.hint, 1);
            break;
        case CURVE_VOLIO_CALL_REFRESH_MDS:
            curve_volio_mds_done(e.c, e.status);
            break;
        case CURVE_VOLIO_CALL_GET_SEGMENT:
            curve_volio_segment_done(e.c, e.status);
            break;
        case CURVE_VOLIO_CALL_SLEEP:
            curve_volio_wakeup(e.c);
            break;
        }
    }
}

static void run_loop(world *w)
{
    run_until(w, UINT64_MAX);
}

/* Makes every pending SLEEP due now (what the real transport's wake_sleepers does). */
static void wake_sleeps(world *w)
{
    uint64_t now = curve_clock_mono_ns(&w->clock.base);
    for (int i = 0; i < w->nev; i++)
        if (w->ev[i].c->kind == CURVE_VOLIO_CALL_SLEEP)
            w->ev[i].due_ns = now;
}

static world *make_world(uint32_t max_inflight)
{
    world *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    curve_clock_manual_init(&w->clock, 1000 * MS);
    curve_retry_opts_default(&w->opts);
    w->opts.overload_jitter_pct = 0;
    assert_int_equal(curve_metacache_new(64, 64, &w->mc), 0);
    w->ut = malloc(sizeof(*w->ut));
    assert_non_null(w->ut);
    assert_int_equal(curve_unstable_init(w->ut, 10), 0);
    for (int i = 0; i < NODES; i++)
        snprintf(w->nodes[i].addr, CURVE_ADDR_MAX, "127.0.0.1:83%02d", i);
    for (int cs = 1; cs <= NCOPYSETS; cs++)
        w->leader[cs] = (cs - 1) % NODES;
    w->ops = (curve_volio_ops){.call = fake_call, .sleep = fake_sleep};
    curve_volio_env env = {.mc = w->mc,
                           .unstable = w->ut,
                           .opts = &w->opts,
                           .clock = &w->clock.base,
                           .rand = world_rand,
                           .rand_ctx = &w->rnd,
                           .geom = {.volume_size = VOL,
                                    .segment_size = SEG,
                                    .chunk_size = CHUNK,
                                    .align = 4096,
                                    .max_rpc_size = 64 * KiB},
                           .file_id = 77,
                           .epoch = 5,
                           .max_inflight = max_inflight,
                           .ops = &w->ops,
                           .ops_ctx = w};
    assert_int_equal(curve_volio_new(&env, &w->v), 0);
    return w;
}

static void free_world(world *w)
{
    curve_volio_free(w->v);
    curve_metacache_free(w->mc);
    curve_unstable_destroy(w->ut);
    free(w->ut);
    for (unsigned i = 0; i < NCHUNK; i++)
        free(w->chunk_data[i]);
    free(w);
}

/* ---- user side ---- */

typedef struct uio {
    curve_volio_io io;
    world *w;
    int done;
    int result;
    int order; /* completion rank */
} uio;

static int g_rank;

static void user_cb(curve_volio_io *io)
{
    uio *u = CURVE_CONTAINER_OF(io, uio, io);
    if (u->w->in_submit)
        u->w->cb_in_submit++;
    u->done++;
    u->result = io->result;
    u->order = ++g_rank;
}

static int submit(world *w, uio *u, curve_retry_op op, uint64_t off, uint64_t len, void *buf)
{
    memset(u, 0, sizeof(*u));
    u->w = w;
    u->io = (curve_volio_io){.op = op, .offset = off, .len = len, .buf = buf, .cb = user_cb};
    w->in_submit = true;
    int rc = curve_volio_submit(w->v, &u->io);
    w->in_submit = false;
    return rc;
}

static int do_io(world *w, curve_retry_op op, uint64_t off, uint64_t len, void *buf)
{
    uio u;
    int rc = submit(w, &u, op, off, len, buf);
    if (rc != 0)
        return rc;
    run_loop(w);
    assert_int_equal(u.done, 1);
    return u.result;
}

static void fill_random(uint8_t *b, size_t n, unsigned *seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)rand_r(seed);
}

static void test_write_read_back(void **state)
{
    world *w = make_world(8);
    unsigned seed = 42;
    /* 3 chunks + across a segment boundary: 16 KiB before segment 1 to 2 chunks after it */
    uint64_t off = SEG - 16 * KiB, len = 16 * KiB + 2 * CHUNK + 8 * KiB;
    uint8_t *wbuf = malloc(len), *rbuf = malloc(len);
    fill_random(wbuf, len, &seed);
    assert_int_equal(do_io(w, CURVE_RETRY_OP_WRITE, off, len, wbuf), 0);
    assert_int_equal(w->epoch_seen, 5);
    assert_true(w->seg_alloc[0] && w->seg_alloc[1] && !w->seg_alloc[2]);
    assert_int_equal(w->seg_allocs, 2);
    memset(rbuf, 0xAA, len);
    assert_int_equal(do_io(w, CURVE_RETRY_OP_READ, off, len, rbuf), 0);
    assert_memory_equal(rbuf, wbuf, len);
    /* the segments are cached now: reading again asks the MDS nothing */
    int calls = w->seg_calls;
    assert_int_equal(do_io(w, CURVE_RETRY_OP_READ, off, len, rbuf), 0);
    assert_int_equal(w->seg_calls, calls);
    assert_int_equal(w->cb_in_submit, 0);
    free(wbuf);
    free(rbuf);
    free_world(w);
}

static void test_unwritten_reads_zero(void **state)
{
    world *w = make_world(4);
    uint8_t *buf = malloc(2 * CHUNK);
    /* an unallocated segment: zeros, and the read allocates nothing */
    memset(buf, 0xAA, 2 * CHUNK);
    assert_int_equal(do_io(w, CURVE_RETRY_OP_READ, 5 * SEG, 2 * CHUNK, buf), 0);
    for (size_t i = 0; i < 2 * CHUNK; i++)
        assert_int_equal(buf[i], 0);
    assert_false(w->seg_alloc[5]);
    assert_int_equal(w->seg_allocs, 0);
    /* an allocated segment whose chunk was never written: zeros through CHUNK_NOTEXIST */
    uint8_t one[4096];
    memset(one, 0x5A, sizeof(one));
    assert_int_equal(do_io(w, CURVE_RETRY_OP_WRITE, 3 * SEG, 4096, one), 0);
    memset(buf, 0xAA, 2 * CHUNK);
    assert_int_equal(do_io(w, CURVE_RETRY_OP_READ, 3 * SEG + CHUNK, CHUNK, buf), 0);
    for (size_t i = 0; i < CHUNK; i++)
        assert_int_equal(buf[i], 0);
    curve_volio_stats st;
    curve_volio_get_stats(w->v, &st);
    assert_true(st.zero_filled >= 2 * (CHUNK / (64 * KiB)));
    free(buf);
    free_world(w);
}

static void test_inflight_bound(void **state)
{
    world *w = make_world(2);
    size_t len = 1024 * KiB; /* 16 RPCs */
    uint8_t *wbuf = malloc(len), *rbuf = malloc(len);
    unsigned seed = 7;
    fill_random(wbuf, len, &seed);
    assert_int_equal(do_io(w, CURVE_RETRY_OP_WRITE, 0, len, wbuf), 0);
    assert_true(w->sends_peak >= 1 && w->sends_peak <= 2);
    assert_int_equal(do_io(w, CURVE_RETRY_OP_READ, 0, len, rbuf), 0);
    assert_memory_equal(rbuf, wbuf, len);
    curve_volio_stats st;
    curve_volio_get_stats(w->v, &st);
    assert_int_equal(st.ios_inflight, 0);
    assert_int_equal(st.pieces_inflight, 0);
    free(wbuf);
    free(rbuf);
    free_world(w);
}

static void test_leader_change_and_overload(void **state)
{
    world *w = make_world(8);
    size_t len = 3 * CHUNK;
    uint8_t *wbuf = malloc(len), *rbuf = malloc(len);
    unsigned seed = 9;
    fill_random(wbuf, len, &seed);
    /* warm the cache, then move copyset 1's leader and overload copyset 2's leader */
    assert_int_equal(do_io(w, CURVE_RETRY_OP_WRITE, 0, len, wbuf), 0);
    w->leader[1] = 2;
    w->nodes[1].overload = 2;
    uint64_t t0 = curve_clock_mono_ns(&w->clock.base);
    fill_random(wbuf, len, &seed);
    assert_int_equal(do_io(w, CURVE_RETRY_OP_WRITE, 0, len, wbuf), 0);
    /* the pieces that got OVERLOAD backed off 200 ms (jitter 0) before succeeding */
    assert_true(curve_clock_mono_ns(&w->clock.base) - t0 >= 200 * MS);
    assert_int_equal(w->nodes[1].overload, 0);
    assert_int_equal(do_io(w, CURVE_RETRY_OP_READ, 0, len, rbuf), 0);
    assert_memory_equal(rbuf, wbuf, len);
    curve_peer l;
    assert_int_equal(curve_metacache_get_leader(w->mc, 1, 1, &l, NULL), 0);
    assert_string_equal(l.addr, w->nodes[2].addr);
    free(wbuf);
    free(rbuf);
    free_world(w);
}

/* A one-piece IO whose first attempt was made elsewhere (libcurve's sync fast path) continues
 * from that outcome under the retry policy instead of starting over. */
static int seeded_io(world *w, curve_retry_op op, uint64_t off, void *buf, int status,
                     const char *peer, const char *hint)
{
    uio u;
    memset(&u, 0, sizeof(u));
    u.w = w;
    u.io = (curve_volio_io){.op = op,
                            .offset = off,
                            .len = 4096,
                            .buf = buf,
                            .cb = user_cb,
                            .seed_status = status,
                            .seed_peer = peer,
                            .seed_hint = hint};
    assert_int_equal(curve_volio_submit(w->v, &u.io), 0);
    run_loop(w);
    assert_int_equal(u.done, 1);
    return u.result;
}

static void test_seeded_first_attempt(void **state)
{
    world *w = make_world(8);
    uint8_t buf[4096] = {7, 7, 7};
    assert_int_equal(do_io(w, CURVE_RETRY_OP_WRITE, 0, 4096, buf), 0); /* copyset 1, node 0 */
    /* OVERLOAD: one resend, after the 200 ms backoff of the first failure (jitter 0) */
    w->sends_total = 0;
    uint64_t t0 = curve_clock_mono_ns(&w->clock.base);
    assert_int_equal(seeded_io(w, CURVE_RETRY_OP_WRITE, 0, buf, CURVE_ERR_OVERLOAD,
                               w->nodes[0].addr, ""),
                     0);
    assert_int_equal(w->sends_total, 1);
    uint64_t took = (curve_clock_mono_ns(&w->clock.base) - t0) / MS;
    assert_true(took >= 200 && took < 210);
    /* REDIRECTED with a hint: straight to the new leader, which the cache learns */
    w->leader[1] = 1;
    w->sends_total = 0;
    t0 = curve_clock_mono_ns(&w->clock.base);
    assert_int_equal(seeded_io(w, CURVE_RETRY_OP_READ, 0, buf, CURVE_ERR_REDIRECTED,
                               w->nodes[0].addr, w->nodes[1].addr),
                     0);
    assert_int_equal(w->sends_total, 1);
    assert_true((curve_clock_mono_ns(&w->clock.base) - t0) / MS < 10);
    assert_int_equal(buf[0], 7);
    curve_peer l;
    assert_int_equal(curve_metacache_get_leader(w->mc, 1, 1, &l, NULL), 0);
    assert_string_equal(l.addr, w->nodes[1].addr);
    /* a fatal outcome completes the IO with it, without any RPC */
    w->sends_total = 0;
    assert_int_equal(seeded_io(w, CURVE_RETRY_OP_WRITE, 0, buf, CURVE_ERR_EPOCH_TOO_OLD,
                               w->nodes[1].addr, ""),
                     CURVE_ERR_EPOCH_TOO_OLD);
    assert_int_equal(w->sends_total, 0);
    /* the retry deadline counts from the seeded attempt's start: 900 ms of a 1 s budget gone,
     * the 200 ms OVERLOAD backoff would cross it, so the IO fails at once */
    w->opts.total_deadline_ms = 1000;
    w->sends_total = 0;
    {
        uio u;
        memset(&u, 0, sizeof(u));
        u.w = w;
        u.io = (curve_volio_io){.op = CURVE_RETRY_OP_WRITE,
                                .len = 4096,
                                .buf = buf,
                                .cb = user_cb,
                                .seed_status = CURVE_ERR_OVERLOAD,
                                .seed_peer = w->nodes[1].addr,
                                .seed_hint = "",
                                .seed_start_ns = curve_clock_mono_ns(&w->clock.base) - 900 * MS};
        assert_int_equal(curve_volio_submit(w->v, &u.io), 0);
        run_loop(w);
        assert_int_equal(u.done, 1);
        assert_int_equal(u.result, CURVE_ERR_TIMEOUT);
    }
    assert_int_equal(w->sends_total, 0);
    w->opts.total_deadline_ms = 0;
    /* a seed for another peer than the engine's first SEND is stale: ignored */
    assert_int_equal(seeded_io(w, CURVE_RETRY_OP_WRITE, 0, buf, CURVE_ERR_EPOCH_TOO_OLD,
                               w->nodes[2].addr, ""),
                     0);
    assert_int_equal(w->sends_total, 1);
    free_world(w);
}

static void test_dead_node_timeout(void **state)
{
    world *w = make_world(8);
    uint8_t buf[4096] = {1, 2, 3};
    assert_int_equal(do_io(w, CURVE_RETRY_OP_WRITE, 0, 4096, buf), 0); /* copyset 1, node 0 */
    w->nodes[0].down = true;
    w->leader[1] = 1;
    uint64_t t0 = curve_clock_mono_ns(&w->clock.base);
    assert_int_equal(do_io(w, CURVE_RETRY_OP_WRITE, 0, 4096, buf), 0);
    uint64_t took = (curve_clock_mono_ns(&w->clock.base) - t0) / MS;
    assert_true(took >= 1000 && took < 1100); /* one 1 s timeout, then the new leader */
    free_world(w);
}

static void test_flush_waits_for_writes(void **state)
{
    world *w = make_world(8);
    uint8_t buf[4096] = {7};
    /* nothing outstanding: completes, but not inside the call */
    uio f0;
    memset(&f0, 0, sizeof(f0));
    f0.w = w;
    f0.io.cb = user_cb;
    w->in_submit = true;
    assert_int_equal(curve_volio_flush(w->v, &f0.io), 0);
    w->in_submit = false;
    assert_int_equal(f0.done, 0);
    run_loop(w);
    assert_int_equal(f0.done, 1);
    assert_int_equal(f0.result, 0);
    /* warm the cache so only the overload delays the write */
    assert_int_equal(do_io(w, CURVE_RETRY_OP_WRITE, 0, 4096, buf), 0);
    w->nodes[0].overload = 3;
    uio wr, rd, fl;
    assert_int_equal(submit(w, &wr, CURVE_RETRY_OP_WRITE, 0, 4096, buf), 0);
    uint8_t rbuf[4096];
    assert_int_equal(submit(w, &rd, CURVE_RETRY_OP_READ, CHUNK, 4096, rbuf), 0);
    memset(&fl, 0, sizeof(fl));
    fl.w = w;
    fl.io.cb = user_cb;
    assert_int_equal(curve_volio_flush(w->v, &fl.io), 0);
    uio late;
    assert_int_equal(submit(w, &late, CURVE_RETRY_OP_WRITE, CHUNK, 4096, buf), 0);
    run_loop(w);
    assert_int_equal(wr.done, 1);
    assert_int_equal(fl.done, 1);
    assert_true(fl.order > wr.order);   /* the flush waited for the earlier write */
    assert_true(late.order < wr.order); /* a later write did not wait for anything */
    assert_int_equal(fl.result, 0);
    /* a failed write makes the flush covering it fail */
    w->nodes[0].fail_status = CURVE_ERR_EPOCH_TOO_OLD;
    assert_int_equal(submit(w, &wr, CURVE_RETRY_OP_WRITE, 0, 4096, buf), 0);
    memset(&fl, 0, sizeof(fl));
    fl.w = w;
    fl.io.cb = user_cb;
    assert_int_equal(curve_volio_flush(w->v, &fl.io), 0);
    run_loop(w);
    assert_int_equal(wr.result, CURVE_ERR_EPOCH_TOO_OLD);
    assert_int_equal(fl.result, CURVE_ERR_EPOCH_TOO_OLD);
    assert_int_equal(w->cb_in_submit, 0);
    free_world(w);
}

static void test_bad_submits(void **state)
{
    world *w = make_world(8);
    uint8_t buf[8192];
    uio u;
    assert_int_equal(submit(w, &u, CURVE_RETRY_OP_READ, 512, 4096, buf), -EINVAL);
    assert_int_equal(submit(w, &u, CURVE_RETRY_OP_READ, 0, 4000, buf), -EINVAL);
    assert_int_equal(submit(w, &u, CURVE_RETRY_OP_READ, VOL - 4096, 8192, buf), -ERANGE);
    assert_int_equal(submit(w, &u, CURVE_RETRY_OP_WRITE, 0, 4096, NULL), -EINVAL);
    assert_int_equal(submit(w, &u, (curve_retry_op)9, 0, 4096, buf), -EINVAL);
    memset(&u, 0, sizeof(u));
    u.io = (curve_volio_io){.op = CURVE_RETRY_OP_READ, .len = 4096, .buf = buf};
    assert_int_equal(curve_volio_submit(w->v, &u.io), -EINVAL); /* no callback */
    assert_int_equal(w->nev, 0);
    /* zero length: accepted, completed later */
    assert_int_equal(submit(w, &u, CURVE_RETRY_OP_READ, 0, 0, buf), 0);
    assert_int_equal(u.done, 0);
    run_loop(w);
    assert_int_equal(u.done, 1);
    assert_int_equal(u.result, 0);
    free_world(w);
}

static void test_mds_retries(void **state)
{
    world *w = make_world(8);
    curve_log_level saved = curve_log_get_level();
    curve_log_set_level(CURVE_LOG_ERROR);
    uint8_t buf[4096] = {3};
    w->mds_failures = 3;
    uint64_t t0 = curve_clock_mono_ns(&w->clock.base);
    assert_int_equal(do_io(w, CURVE_RETRY_OP_WRITE, 0, 4096, buf), 0);
    assert_int_equal(w->seg_calls, 4);
    /* three failures, each followed by a 100 ms pause */
    assert_true(curve_clock_mono_ns(&w->clock.base) - t0 >= 300 * MS);
    /* with a deadline the IO gives up */
    w->opts.total_deadline_ms = 250;
    w->mds_failures = 1000;
    assert_int_equal(do_io(w, CURVE_RETRY_OP_WRITE, 2 * SEG, 4096, buf), CURVE_ERR_TIMEOUT);
    curve_log_set_level(saved);
    free_world(w);
}

static void test_discard(void **state)
{
    world *w = make_world(8);
    size_t len = 2 * CHUNK;
    uint8_t *wbuf = malloc(len), *rbuf = malloc(len);
    memset(wbuf, 0x77, len);
    assert_int_equal(do_io(w, CURVE_RETRY_OP_WRITE, 0, len, wbuf), 0);
    /* discard from the middle of chunk 0 into chunk 1 */
    assert_int_equal(do_io(w, CURVE_RETRY_OP_DISCARD, 64 * KiB, CHUNK, NULL), 0);
    assert_int_equal(do_io(w, CURVE_RETRY_OP_READ, 0, len, rbuf), 0);
    for (size_t i = 0; i < len; i++) {
        uint8_t want = (i >= 64 * KiB && i < 64 * KiB + CHUNK) ? 0 : 0x77;
        if (rbuf[i] != want)
            fail_msg("byte %zu: %u, want %u", i, rbuf[i], want);
    }
    /* discarding never-written or unallocated ranges succeeds and allocates nothing */
    assert_int_equal(do_io(w, CURVE_RETRY_OP_DISCARD, 6 * SEG, SEG, NULL), 0);
    assert_false(w->seg_alloc[6]);
    assert_int_equal(do_io(w, CURVE_RETRY_OP_DISCARD, 2 * CHUNK, CHUNK, NULL), 0);
    free(wbuf);
    free(rbuf);
    free_world(w);
}

/* Many concurrent random IOs checked against a model of the volume. */
static void test_random_model(void **state)
{
    const char *env = getenv("CURVE_TEST_SEED");
    unsigned seed = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL);
    printf("seed %u (replay with CURVE_TEST_SEED=%u)\n", seed, seed);
    world *w = make_world(4);
    uint8_t *model = calloc(1, VOL);
    enum { BATCH = 16, ROUNDS = 30, MAXLEN = 96 * 1024 };
    uio *u = calloc(BATCH, sizeof(*u));
    uint8_t *bufs = malloc((size_t)BATCH * MAXLEN);
    for (int round = 0; round < ROUNDS; round++) {
        /* a batch of non-overlapping writes (overlapping in-flight writes are unordered) */
        uint64_t used_lo[BATCH], used_hi[BATCH];
        int n = 0;
        for (int i = 0; i < BATCH; i++) {
            uint64_t len = (1 + (uint64_t)rand_r(&seed) % (MAXLEN / 4096)) * 4096;
            uint64_t off = ((uint64_t)rand_r(&seed) % ((VOL - len) / 4096)) * 4096;
            bool clash = false;
            for (int k = 0; k < n; k++)
                clash |= off < used_hi[k] && used_lo[k] < off + len;
            if (clash)
                continue;
            used_lo[n] = off;
            used_hi[n] = off + len;
            uint8_t *b = bufs + (size_t)n * MAXLEN;
            fill_random(b, len, &seed);
            bool discard = rand_r(&seed) % 8 == 0;
            if (discard)
                memset(model + off, 0, len);
            else
                memcpy(model + off, b, len);
            assert_int_equal(submit(w, &u[n],
                                    discard ? CURVE_RETRY_OP_DISCARD : CURVE_RETRY_OP_WRITE, off,
                                    len, discard ? NULL : b),
                             0);
            n++;
        }
        if (rand_r(&seed) % 3 == 0)
            w->nodes[rand_r(&seed) % NODES].overload = 1 + rand_r(&seed) % 3;
        if (rand_r(&seed) % 4 == 0)
            w->leader[1 + rand_r(&seed) % NCOPYSETS] = (int)(rand_r(&seed) % NODES);
        run_loop(w);
        for (int k = 0; k < n; k++) {
            assert_int_equal(u[k].done, 1);
            assert_int_equal(u[k].result, 0);
        }
        /* read a few random ranges back */
        for (int k = 0; k < 4; k++) {
            uint64_t len = (1 + (uint64_t)rand_r(&seed) % (MAXLEN / 4096)) * 4096;
            uint64_t off = ((uint64_t)rand_r(&seed) % ((VOL - len) / 4096)) * 4096;
            assert_int_equal(do_io(w, CURVE_RETRY_OP_READ, off, len, bufs), 0);
            if (memcmp(bufs, model + off, len) != 0)
                fail_msg("round %d: read [%llu, +%llu) differs from the model", round,
                         (unsigned long long)off, (unsigned long long)len);
        }
    }
    assert_int_equal(w->cb_in_submit, 0);
    free(u);
    free(bufs);
    free(model);
    free_world(w);
}

/* curve_volio_cancel (curve_abort_io): IOs retrying in back-off, waiting for a slot or
 * submitted later complete with the error and no further call is made; an answer already on
 * its way still counts. */
static void test_cancel(void **state)
{
    world *w = make_world(2);
    size_t len = 1024 * KiB; /* 16 pieces, at most 2 in flight */
    uint8_t *wbuf = malloc(len), *rbuf = malloc(len);
    unsigned seed = 11;
    fill_random(wbuf, len, &seed);
    assert_int_equal(do_io(w, CURVE_RETRY_OP_WRITE, 0, len, wbuf), 0); /* warm the caches */
    for (int i = 0; i < NODES; i++)
        w->nodes[i].overload = 1 << 20; /* every SEND: OVERLOAD, back-off growing to 6.4 s */
    uio wr, rd;
    assert_int_equal(submit(w, &wr, CURVE_RETRY_OP_WRITE, 0, len, wbuf), 0);
    assert_int_equal(submit(w, &rd, CURVE_RETRY_OP_READ, 0, 4096, rbuf), 0);
    run_until(w, curve_clock_mono_ns(&w->clock.base) + 30000 * MS);
    assert_int_equal(wr.done + rd.done, 0); /* still retrying after 30 s */
    int sends = w->sends_total, in_flight = w->sends_now;
    curve_volio_cancel(w->v, CURVE_ERR_CANCELED);
    curve_volio_cancel(w->v, -EIO); /* the first error stays */
    wake_sleeps(w);
    uint64_t t0 = curve_clock_mono_ns(&w->clock.base);
    run_loop(w);
    assert_int_equal(wr.done, 1);
    assert_int_equal(rd.done, 1);
    assert_int_equal(wr.result, CURVE_ERR_CANCELED);
    assert_int_equal(rd.result, CURVE_ERR_CANCELED);
    assert_int_equal(w->sends_total, sends); /* nothing sent after the cancel */
    /* only the answers already on their way were waited for (1 ms each) */
    assert_true(curve_clock_mono_ns(&w->clock.base) - t0 <= (uint64_t)(in_flight ? LATENCY_MS : 0) * MS);
    /* later IO: canceled, never inside the submit, no call */
    assert_int_equal(submit(w, &wr, CURVE_RETRY_OP_WRITE, 0, 4096, wbuf), 0);
    assert_int_equal(w->cb_in_submit, 0);
    run_loop(w);
    assert_int_equal(wr.done, 1);
    assert_int_equal(wr.result, CURVE_ERR_CANCELED);
    assert_int_equal(w->sends_total, sends);
    curve_volio_stats st;
    curve_volio_get_stats(w->v, &st);
    assert_int_equal(st.ios_inflight, 0);
    assert_int_equal(st.pieces_inflight, 0);
    free_world(w);

    /* a write whose SEND is already out when the cancel comes completes with its answer */
    w = make_world(8);
    assert_int_equal(do_io(w, CURVE_RETRY_OP_WRITE, 0, 4096, wbuf), 0);
    fill_random(wbuf, 4096, &seed);
    assert_int_equal(submit(w, &wr, CURVE_RETRY_OP_WRITE, 0, 4096, wbuf), 0);
    assert_int_equal(w->sends_now, 1);
    curve_volio_cancel(w->v, CURVE_ERR_CANCELED);
    run_loop(w);
    assert_int_equal(wr.done, 1);
    assert_int_equal(wr.result, 0);
    assert_memory_equal(w->chunk_data[0], wbuf, 4096);
    /* a piece whose segment is not cached yet: the MDS answer no longer leads to a SEND */
    int sends2 = w->sends_total;
    w->mds_failures = 1;
    assert_int_equal(submit(w, &wr, CURVE_RETRY_OP_WRITE, SEG, 4096, wbuf), 0);
    curve_volio_cancel(w->v, CURVE_ERR_CANCELED);
    run_loop(w);
    assert_int_equal(wr.result, CURVE_ERR_CANCELED);
    assert_int_equal(w->sends_total, sends2);
    free_world(w);
    /* the same with a successful MDS answer arriving after the cancel: no SEND either */
    w = make_world(8);
    assert_int_equal(submit(w, &wr, CURVE_RETRY_OP_WRITE, 2 * SEG, 4096, wbuf), 0);
    assert_int_equal(w->seg_calls, 1); /* the lookup is out */
    curve_volio_cancel(w->v, CURVE_ERR_CANCELED);
    run_loop(w);
    assert_int_equal(wr.done, 1);
    assert_int_equal(wr.result, CURVE_ERR_CANCELED);
    assert_int_equal(w->seg_calls, 1);
    assert_int_equal(w->sends_total, 0);
    free_world(w);
    free(wbuf);
    free(rbuf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_read_back),   cmocka_unit_test(test_unwritten_reads_zero),
        cmocka_unit_test(test_inflight_bound),    cmocka_unit_test(test_leader_change_and_overload),
        cmocka_unit_test(test_dead_node_timeout), cmocka_unit_test(test_flush_waits_for_writes),
        cmocka_unit_test(test_bad_submits),       cmocka_unit_test(test_mds_retries),
        cmocka_unit_test(test_discard),           cmocka_unit_test(test_random_model),
        cmocka_unit_test(test_seeded_first_attempt), cmocka_unit_test(test_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
