/* The chunk request driver against a fake cluster and a manual clock: which address is tried
 * next, with which timeout, after which sleep. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client/chunkreq.h"
#include "common/clock.h"
#include "common/log.h"
#include "curve/errors.h"

#define MS                   (1000000ull)
#define NODES                6
#define SCRIPT_MAX           32
#define LOG_MAX              1024
#define STEPS_MAX            2000 /* a request taking more steps than this fails the test */
#define CONN_COST_MS         20   /* a refused connection attempt (the channel's reconnect pause) */
#define GETLEADER_TIMEOUT_MS 1000 /* GetLeader to a stopped peer waits this long */

typedef struct fake_node {
    uint32_t id;
    char addr[CURVE_ADDR_MAX];
    bool down;              /* RPCs time out */
    bool refused;           /* killed: connections are refused after CONN_COST_MS */
    int timeouts_left;      /* the next this many chunk RPCs time out (a slow moment) */
    int script[SCRIPT_MAX]; /* statuses returned first, in order */
    int nscript, pos;
} fake_node;

typedef struct cluster {
    fake_node n[NODES];
    /* the truth */
    int leader; /* node index, -1 = none elected */
    uint64_t term;
    uint64_t elect_at_ns;  /* != 0: at this clock time `next_leader` wins an election */
    uint64_t forget_at_ns; /* != 0: from then on the followers name no leader (pre-vote) */
    int next_leader;
    int members[3]; /* node indexes */
    uint64_t epoch;
    bool mds_down;
    int mds_leader;     /* what the MDS believes (-1 none) */
    bool chunk_missing; /* replies CHUNK_NOTEXIST */
    /* what happened: "send <addr> t=<timeout> s=<sleep>", "getleader s=..", "mds s=.." */
    char log[LOG_MAX][96];
    int nlog;
    int sends;
    int asked_down; /* GetLeader RPCs to a stopped or killed node */
} cluster;

typedef struct fixture {
    cluster c;
    curve_clock_manual clock;
    curve_retry_opts opts;
    curve_metacache *mc;
    curve_unstable_tracker *ut;
    curve_chunkreq_env env;
    uint64_t rnd;
} fixture;

static uint64_t zero_rand(void *ctx)
{
    return *(uint64_t *)ctx;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    for (int i = 0; i < NODES; i++) {
        f->c.n[i].id = (uint32_t)(i + 1);
        snprintf(f->c.n[i].addr, CURVE_ADDR_MAX, "127.0.0.1:82%02d", i + 1);
    }
    f->c.leader = 0;
    f->c.term = 3;
    f->c.members[0] = 0, f->c.members[1] = 1, f->c.members[2] = 2;
    f->c.epoch = 1;
    f->c.mds_leader = 0;
    curve_clock_manual_init(&f->clock, 1000 * MS);
    curve_retry_opts_default(&f->opts);
    f->opts.overload_jitter_pct = 0;
    assert_int_equal(curve_metacache_new(16, 16, &f->mc), 0);
    f->ut = malloc(sizeof(*f->ut));
    assert_non_null(f->ut);
    assert_int_equal(curve_unstable_init(f->ut, f->opts.unstable_timeout_threshold), 0);
    f->env = (curve_chunkreq_env){.mc = f->mc,
                                  .unstable = f->ut,
                                  .opts = &f->opts,
                                  .clock = &f->clock.base,
                                  .rand = zero_rand,
                                  .rand_ctx = &f->rnd};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    curve_metacache_free(f->mc);
    curve_unstable_destroy(f->ut);
    free(f->ut);
    free(f);
    return 0;
}

static int node_by_addr(cluster *c, const char *addr)
{
    for (int i = 0; i < NODES; i++)
        if (strcmp(c->n[i].addr, addr) == 0)
            return i;
    return -1;
}

static void logf_(cluster *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(cluster *c, const char *fmt, ...)
{
    assert_true(c->nlog < LOG_MAX);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->log[c->nlog++], sizeof(c->log[0]), fmt, ap);
    va_end(ap);
}

/* The MDS answer: the true membership with the leader the MDS believes in. */
static int mds_answer(fixture *f)
{
    cluster *c = &f->c;
    if (c->mds_down)
        return -EIO;
    curve_peer p[3];
    for (int i = 0; i < 3; i++) {
        p[i].cs_id = c->n[c->members[i]].id;
        snprintf(p[i].addr, sizeof(p[i].addr), "%s", c->n[c->members[i]].addr);
    }
    const char *l = c->mds_leader >= 0 ? c->n[c->mds_leader].addr : NULL;
    return curve_metacache_put_copyset(f->mc, 1, 1, c->epoch, p, 3, l, l ? c->term : 0);
}

static bool is_member(cluster *c, int idx)
{
    return idx == c->members[0] || idx == c->members[1] || idx == c->members[2];
}

/* The scheduled election happens once its time has come. */
static void elect(fixture *f)
{
    cluster *c = &f->c;
    if (c->forget_at_ns != 0 && curve_clock_mono_ns(&f->clock.base) >= c->forget_at_ns) {
        c->leader = -1;
        c->forget_at_ns = 0;
    }
    if (c->elect_at_ns != 0 && curve_clock_mono_ns(&f->clock.base) >= c->elect_at_ns) {
        c->leader = c->next_leader;
        c->term++;
        c->elect_at_ns = 0;
    }
}

/* Runs one request to completion; returns the final step. */
static curve_step run(fixture *f, curve_retry_op op)
{
    cluster *c = &f->c;
    curve_chunkreq r;
    curve_step s;
    curve_chunkreq_start(&r, &f->env, op, 1, 1, &s);
    for (int steps = 0; s.kind != CURVE_STEP_DONE; steps++) {
        assert_true(steps < STEPS_MAX);
        curve_clock_manual_advance(&f->clock, s.sleep_ms * MS);
        elect(f);
        switch (s.kind) {
        case CURVE_STEP_SEND: {
            logf_(c, "send %s t=%llu s=%llu", s.peer.addr, (unsigned long long)s.timeout_ms,
                  (unsigned long long)s.sleep_ms);
            c->sends++;
            int i = node_by_addr(c, s.peer.addr);
            assert_true(i >= 0);
            fake_node *n = &c->n[i];
            if (n->refused) {
                curve_clock_manual_advance(&f->clock, CONN_COST_MS * MS);
                curve_chunkreq_on_reply(&r, CURVE_ERR_RPC_CONN, false, NULL, &s);
            } else if (n->down || n->timeouts_left > 0) {
                if (n->timeouts_left > 0)
                    n->timeouts_left--;
                curve_clock_manual_advance(&f->clock, s.timeout_ms * MS);
                curve_chunkreq_on_reply(&r, 0, true, NULL, &s);
            } else if (n->pos < n->nscript) {
                curve_chunkreq_on_reply(&r, n->script[n->pos++], false, NULL, &s);
            } else if (!is_member(c, i)) {
                curve_chunkreq_on_reply(&r, CURVE_ERR_COPYSET_NOTEXIST, false, NULL, &s);
            } else if (i != c->leader) {
                curve_chunkreq_on_reply(&r, CURVE_ERR_REDIRECTED, false,
                                        c->leader >= 0 ? c->n[c->leader].addr : NULL, &s);
            } else {
                curve_chunkreq_on_reply(&r, c->chunk_missing ? CURVE_ERR_CHUNK_NOTEXIST : 0, false,
                                        NULL, &s);
            }
            break;
        }
        case CURVE_STEP_GET_LEADER: {
            logf_(c, "getleader s=%llu", (unsigned long long)s.sleep_ms);
            assert_true(s.npeers > 0);
            /* the peers are asked in order; any live member names the leader it knows (until
             * the election, the old one); dead ones cost a refused connection or a timeout */
            const char *ans = NULL;
            for (uint32_t k = 0; k < s.npeers; k++) {
                int i = node_by_addr(c, s.peers[k].addr);
                if (i >= 0 && (c->n[i].refused || c->n[i].down))
                    c->asked_down++;
                if (i >= 0 && c->n[i].refused) {
                    curve_clock_manual_advance(&f->clock, CONN_COST_MS * MS);
                    continue;
                }
                if (i >= 0 && c->n[i].down) {
                    curve_clock_manual_advance(&f->clock, GETLEADER_TIMEOUT_MS * MS);
                    elect(f);
                    continue;
                }
                if (i >= 0 && is_member(c, i) && c->leader >= 0) {
                    ans = c->n[c->leader].addr;
                    break;
                }
            }
            curve_chunkreq_on_leader(&r, ans, ans ? c->term : 0, &s);
            break;
        }
        case CURVE_STEP_REFRESH_MDS:
            logf_(c, "mds s=%llu", (unsigned long long)s.sleep_ms);
            assert_int_equal(s.pool_id, 1);
            assert_int_equal(s.copyset_id, 1);
            curve_chunkreq_on_mds(&r, mds_answer(f), &s);
            break;
        case CURVE_STEP_DONE:
            break;
        }
    }
    return s;
}

static void expect_log(fixture *f, const char *const *want)
{
    int n = 0;
    while (want[n])
        n++;
    for (int i = 0; i < n && i < f->c.nlog; i++)
        if (strcmp(f->c.log[i], want[i]) != 0)
            fail_msg("step %d: got '%s', want '%s'", i, f->c.log[i], want[i]);
    if (n != f->c.nlog) {
        for (int i = 0; i < f->c.nlog; i++)
            print_message("  %s\n", f->c.log[i]);
        fail_msg("%d steps, want %d", f->c.nlog, n);
    }
    f->c.nlog = 0;
}

/* The SEND lines of the log: the first entries of `want` (NULL-terminated) in order, and
 * `total` of them in all. */
static void expect_sends(fixture *f, const char *const *want, int total)
{
    int k = 0, w = 0;
    for (int i = 0; i < f->c.nlog; i++) {
        if (strncmp(f->c.log[i], "send ", 5) != 0)
            continue;
        if (want[w] && strcmp(f->c.log[i], want[w]) != 0)
            fail_msg("send %d: got '%s', want '%s'", k, f->c.log[i], want[w]);
        if (want[w])
            w++;
        k++;
    }
    assert_null(want[w]);
    assert_int_equal(k, total);
}

static int count_sends_to(fixture *f, const char *addr)
{
    char p[96];
    snprintf(p, sizeof(p), "send %s ", addr);
    int k = 0;
    for (int i = 0; i < f->c.nlog; i++)
        k += strncmp(f->c.log[i], p, strlen(p)) == 0;
    return k;
}

static void test_cold_cache(void **state)
{
    fixture *f = *state;
    curve_step s = run(f, CURVE_RETRY_OP_WRITE);
    assert_int_equal(s.result, 0);
    expect_log(f, (const char *[]){"mds s=0", "send 127.0.0.1:8201 t=1000 s=0", NULL});
    /* warm: straight to the leader */
    s = run(f, CURVE_RETRY_OP_WRITE);
    assert_int_equal(s.result, 0);
    expect_log(f, (const char *[]){"send 127.0.0.1:8201 t=1000 s=0", NULL});
}

static void test_membership_without_leader(void **state)
{
    fixture *f = *state;
    f->c.mds_leader = -1; /* MDS knows the peers only */
    f->c.leader = 1;
    curve_step s = run(f, CURVE_RETRY_OP_READ);
    assert_int_equal(s.result, 0);
    expect_log(
        f, (const char *[]){"mds s=0", "getleader s=0", "send 127.0.0.1:8202 t=1000 s=0", NULL});
}

static void test_redirect_follows_hint(void **state)
{
    fixture *f = *state;
    assert_int_equal(mds_answer(f), 0); /* cache says node 1 leads */
    f->c.leader = 2;                    /* but node 3 does now */
    curve_step s = run(f, CURVE_RETRY_OP_WRITE);
    assert_int_equal(s.result, 0);
    expect_log(f, (const char *[]){"send 127.0.0.1:8201 t=1000 s=0",
                                   "send 127.0.0.1:8203 t=2000 s=0", NULL});
    curve_peer l;
    assert_int_equal(curve_metacache_get_leader(f->mc, 1, 1, &l, NULL), 0);
    assert_string_equal(l.addr, "127.0.0.1:8203");
}

static void test_dead_leader_reresolved(void **state)
{
    fixture *f = *state;
    assert_int_equal(mds_answer(f), 0);
    f->c.n[0].down = true;
    f->c.leader = 1; /* node 2 elected */
    curve_step s = run(f, CURVE_RETRY_OP_WRITE);
    assert_int_equal(s.result, 0);
    /* the new leader: back to the short timeout */
    expect_log(f, (const char *[]){"send 127.0.0.1:8201 t=1000 s=0", "getleader s=0",
                                   "send 127.0.0.1:8202 t=1000 s=0", NULL});
}

static void test_overload_then_success(void **state)
{
    fixture *f = *state;
    assert_int_equal(mds_answer(f), 0);
    fake_node *n = &f->c.n[0];
    n->script[0] = n->script[1] = n->script[2] = CURVE_ERR_OVERLOAD;
    n->nscript = 3;
    curve_step s = run(f, CURVE_RETRY_OP_WRITE);
    assert_int_equal(s.result, 0);
    expect_log(f, (const char *[]){"send 127.0.0.1:8201 t=1000 s=0",
                                   "send 127.0.0.1:8201 t=2000 s=200",
                                   "send 127.0.0.1:8201 t=4000 s=400",
                                   "send 127.0.0.1:8201 t=8000 s=800", NULL});
}

static void test_copyset_moved(void **state)
{
    fixture *f = *state;
    assert_int_equal(mds_answer(f), 0);
    /* the copyset moved to nodes 4, 5, 6 with node 5 leading; the old nodes lost it */
    f->c.members[0] = 3, f->c.members[1] = 4, f->c.members[2] = 5;
    f->c.epoch = 2;
    f->c.leader = 4;
    f->c.mds_leader = 4;
    f->c.term = 9;
    curve_step s = run(f, CURVE_RETRY_OP_WRITE);
    assert_int_equal(s.result, 0);
    expect_log(f, (const char *[]){"send 127.0.0.1:8201 t=1000 s=0", "mds s=0",
                                   "send 127.0.0.1:8205 t=1000 s=0", NULL});
}

static void test_read_missing_chunk_zeros(void **state)
{
    fixture *f = *state;
    f->c.chunk_missing = true;
    curve_step s = run(f, CURVE_RETRY_OP_READ);
    assert_int_equal(s.result, 0);
    assert_true(s.zero_fill);
    s = run(f, CURVE_RETRY_OP_WRITE);
    assert_int_equal(s.result, CURVE_ERR_CHUNK_NOTEXIST);
    assert_false(s.zero_fill);
}

static void test_fatal_epoch(void **state)
{
    fixture *f = *state;
    f->c.n[0].script[0] = CURVE_ERR_EPOCH_TOO_OLD;
    f->c.n[0].nscript = 1;
    curve_step s = run(f, CURVE_RETRY_OP_WRITE);
    assert_int_equal(s.result, CURVE_ERR_EPOCH_TOO_OLD);
}

/* The leader's chunkserver stops answering and no new leader is elected: 10 timeouts mark it
 * unstable; from then on a new request keeps its timeout at 1 s for its first retries. */
static void test_unstable_keeps_timeout_short(void **state)
{
    fixture *f = *state;
    curve_log_level saved = curve_log_get_level();
    curve_log_set_level(CURVE_LOG_ERROR);
    assert_int_equal(mds_answer(f), 0);
    f->c.n[0].down = true;
    f->c.leader = -1;
    f->opts.max_attempts = 10;
    curve_step s = run(f, CURVE_RETRY_OP_WRITE);
    assert_int_equal(s.result, CURVE_ERR_TIMEOUT);
    assert_true(curve_unstable_is_unstable(f->ut, 1));
    /* the first request: the peers know no leader (the leader may have changed): for one base
     * timeout after each timeout the client polls the live peers (every 100 ms), then asks the
     * stopped node too, then the (stale) MDS, which still names node 1; the timeout stays 1 s
     * until n = 5 (force_timeout_backoff_after), then 8 s */
    static const char *const sends1[] = {
        "send 127.0.0.1:8201 t=1000 s=0", "send 127.0.0.1:8201 t=1000 s=0",
        "send 127.0.0.1:8201 t=1000 s=0", "send 127.0.0.1:8201 t=1000 s=0",
        "send 127.0.0.1:8201 t=1000 s=0", "send 127.0.0.1:8201 t=8000 s=0",
        "send 127.0.0.1:8201 t=8000 s=0", NULL};
    expect_sends(f, sends1, 10);
    assert_string_equal(f->c.log[1], "getleader s=0");
    for (int i = 2; i <= 10; i++)
        assert_string_equal(f->c.log[i], "getleader s=100");
    assert_string_equal(f->c.log[11], "getleader s=100"); /* window over: the stopped node too */
    assert_string_equal(f->c.log[12], "mds s=0");
    assert_string_equal(f->c.log[13], "send 127.0.0.1:8201 t=1000 s=0");
    f->c.nlog = 0;
    f->opts.max_attempts = 4;
    s = run(f, CURVE_RETRY_OP_WRITE);
    assert_int_equal(s.result, CURVE_ERR_TIMEOUT);
    static const char *const sends2[] = {
        "send 127.0.0.1:8201 t=1000 s=0", "send 127.0.0.1:8201 t=1000 s=0",
        "send 127.0.0.1:8201 t=1000 s=0", "send 127.0.0.1:8201 t=1000 s=0", NULL};
    expect_sends(f, sends2, 4);
    f->c.nlog = 0;
    /* the node answers again (marked stable) and redirects to the leader elected meanwhile; the
     * redirect came while the leader "may have changed" (it had), so the timeout stays 1 s */
    f->c.n[0].down = false;
    f->c.leader = 1;
    f->opts.max_attempts = 0;
    s = run(f, CURVE_RETRY_OP_WRITE);
    assert_int_equal(s.result, 0);
    assert_false(curve_unstable_is_unstable(f->ut, 1));
    expect_log(f, (const char *[]){"send 127.0.0.1:8201 t=1000 s=0",
                                   "send 127.0.0.1:8202 t=1000 s=0", NULL});
    /* the new leader cleared the flag: the next request backs off normally */
    curve_peer l;
    bool may = true;
    assert_int_equal(curve_metacache_get_leader(f->mc, 1, 1, &l, &may), 0);
    assert_false(may);
    f->c.n[1].script[0] = CURVE_ERR_FAILURE_UNKNOWN;
    f->c.n[1].nscript = 1;
    s = run(f, CURVE_RETRY_OP_WRITE);
    assert_int_equal(s.result, 0);
    expect_log(f, (const char *[]){"send 127.0.0.1:8202 t=1000 s=0",
                                   "send 127.0.0.1:8202 t=2000 s=100", NULL});
    curve_log_set_level(saved);
}

/* The MDS is down and nothing is cached: retry every 100 ms until the deadline. */
static void test_mds_down_deadline(void **state)
{
    fixture *f = *state;
    curve_log_level saved = curve_log_get_level();
    curve_log_set_level(CURVE_LOG_ERROR);
    f->c.mds_down = true;
    f->opts.total_deadline_ms = 450;
    curve_step s = run(f, CURVE_RETRY_OP_READ);
    assert_int_equal(s.result, CURVE_ERR_TIMEOUT);
    expect_log(
        f, (const char *[]){"mds s=0", "mds s=100", "mds s=100", "mds s=100", "mds s=100", NULL});
    /* the MDS comes back before the deadline: the request goes through */
    f->opts.total_deadline_ms = 0;
    f->c.mds_down = false;
    s = run(f, CURVE_RETRY_OP_READ);
    assert_int_equal(s.result, 0);
    curve_log_set_level(saved);
}

/* No leader anywhere for a while (election): the client cycles peers -> MDS -> short pause
 * without spinning, and succeeds once a leader exists. */
static void test_election_in_progress(void **state)
{
    fixture *f = *state;
    f->c.leader = -1;
    f->c.mds_leader = -1;
    curve_chunkreq r;
    curve_step s;
    curve_chunkreq_start(&r, &f->env, CURVE_RETRY_OP_WRITE, 1, 1, &s);
    uint64_t slept = 0;
    int rounds = 0;
    while (s.kind != CURVE_STEP_SEND) {
        assert_true(rounds++ < 100);
        slept += s.sleep_ms;
        if (s.kind == CURVE_STEP_REFRESH_MDS)
            curve_chunkreq_on_mds(&r, mds_answer(f), &s);
        else if (s.kind == CURVE_STEP_GET_LEADER)
            curve_chunkreq_on_leader(&r, rounds > 30 ? f->c.n[2].addr : NULL, 4, &s);
        else
            fail_msg("unexpected step %d", s.kind);
    }
    assert_string_equal(s.peer.addr, "127.0.0.1:8203");
    /* every peers+MDS round that found nothing paused at least once */
    assert_true(slept >= 100);
}

/* The leader's chunkserver is killed (SIGKILL: connections refused); the other two elect a new
 * leader ELECT_MS later and name the dead one until then. The client keeps re-resolving
 * through the peers (asking the dead one last) and reaches the new leader right after the
 * election with the first RPC timeout, not one grown by the refused attempts. */
#define ELECT_MS 1600
static void test_leader_killed_election(void **state)
{
    fixture *f = *state;
    curve_log_level saved = curve_log_get_level();
    curve_log_set_level(CURVE_LOG_ERROR);
    assert_int_equal(mds_answer(f), 0);
    uint64_t t0 = curve_clock_mono_ns(&f->clock.base);
    f->c.n[0].refused = true;
    f->c.elect_at_ns = t0 + ELECT_MS * MS;
    f->c.next_leader = 1;
    curve_step s = run(f, CURVE_RETRY_OP_WRITE);
    assert_int_equal(s.result, 0);
    uint64_t took_ms = (curve_clock_mono_ns(&f->clock.base) - t0) / MS;
    assert_true(f->c.nlog >= 2);
    const char *last = f->c.log[f->c.nlog - 1];
    if (strcmp(last, "send 127.0.0.1:8202 t=1000 s=0") != 0)
        fail_msg("reached the new leader with '%s' after %d steps", last, f->c.nlog);
    /* done within one poll interval (op_retry_interval 100 ms) of the election */
    assert_true(took_ms >= ELECT_MS);
    assert_true(took_ms <= ELECT_MS + 100 + CONN_COST_MS);
    /* without spinning on the dead node: one refused attempt per base timeout (1 s) */
    assert_true(count_sends_to(f, "127.0.0.1:8201") <= 1 + ELECT_MS / 1000);
    curve_log_set_level(saved);
}

/* The leader's chunkserver is stopped (SIGSTOP / partition: RPCs time out). The live peers name
 * it until the election; the client must not wait for it with a doubled timeout while they do,
 * and must not spend a GetLeader timeout on it before asking them. */
static void test_leader_stopped_election(void **state)
{
    fixture *f = *state;
    curve_log_level saved = curve_log_get_level();
    curve_log_set_level(CURVE_LOG_ERROR);
    assert_int_equal(mds_answer(f), 0);
    uint64_t t0 = curve_clock_mono_ns(&f->clock.base);
    f->c.n[0].down = true;
    f->c.elect_at_ns = t0 + ELECT_MS * MS;
    f->c.next_leader = 1;
    curve_step s = run(f, CURVE_RETRY_OP_WRITE);
    assert_int_equal(s.result, 0);
    uint64_t took_ms = (curve_clock_mono_ns(&f->clock.base) - t0) / MS;
    /* timed out at 1000 ms; the peers name node 1 until the election at 1600 ms: polled every
     * 100 ms, the new leader is used 1600 ms after the stop (it was 2000 ms: one more 1 s
     * timeout on the stopped node) */
    expect_log(f, (const char *[]){"send 127.0.0.1:8201 t=1000 s=0", "getleader s=0",
                                   "getleader s=100", "getleader s=100", "getleader s=100",
                                   "getleader s=100", "getleader s=100", "getleader s=100",
                                   "send 127.0.0.1:8202 t=1000 s=0", NULL});
    assert_int_equal(took_ms, ELECT_MS);
    assert_int_equal(f->c.asked_down, 0);
    curve_log_set_level(saved);
}

/* Hung leader, and the followers' election timeout runs out before a new leader wins: from
 * 1100 ms they name nobody (pre-vote), the new leader wins at 1600 ms. The client must not ask
 * the stopped node (a GetLeader timeout) nor believe the MDS (its view is the old leader) and
 * go back to the stopped node with a grown timeout. */
static void test_leader_stopped_no_leader_window(void **state)
{
    fixture *f = *state;
    curve_log_level saved = curve_log_get_level();
    curve_log_set_level(CURVE_LOG_ERROR);
    assert_int_equal(mds_answer(f), 0);
    uint64_t t0 = curve_clock_mono_ns(&f->clock.base);
    f->c.n[0].down = true;
    f->c.forget_at_ns = t0 + 1100 * MS;
    f->c.elect_at_ns = t0 + ELECT_MS * MS;
    f->c.next_leader = 2;
    curve_step s = run(f, CURVE_RETRY_OP_WRITE);
    assert_int_equal(s.result, 0);
    uint64_t took_ms = (curve_clock_mono_ns(&f->clock.base) - t0) / MS;
    expect_log(f, (const char *[]){"send 127.0.0.1:8201 t=1000 s=0", "getleader s=0",
                                   "getleader s=100", "getleader s=100", "getleader s=100",
                                   "getleader s=100", "getleader s=100", "getleader s=100",
                                   "send 127.0.0.1:8203 t=1000 s=0", NULL});
    assert_int_equal(took_ms, ELECT_MS);
    assert_int_equal(f->c.asked_down, 0);
    curve_log_set_level(saved);
}

/* Killed leader whose followers name it for 1.5 s: the client polls them instead of
 * reconnecting to the dead node in a loop, and uses the new leader within a poll interval. */
static void test_leader_killed_peers_name_old(void **state)
{
    fixture *f = *state;
    curve_log_level saved = curve_log_get_level();
    curve_log_set_level(CURVE_LOG_ERROR);
    assert_int_equal(mds_answer(f), 0);
    uint64_t t0 = curve_clock_mono_ns(&f->clock.base);
    f->c.n[0].refused = true;
    f->c.elect_at_ns = t0 + 1500 * MS;
    f->c.next_leader = 1;
    curve_step s = run(f, CURVE_RETRY_OP_WRITE);
    assert_int_equal(s.result, 0);
    uint64_t took_ms = (curve_clock_mono_ns(&f->clock.base) - t0) / MS;
    /* refused at 20 ms; polled to 1020 ms; refused again at 1040 ms; polled; elected 1500 ms */
    assert_int_equal(count_sends_to(f, "127.0.0.1:8201"), 2);
    assert_string_equal(f->c.log[f->c.nlog - 1], "send 127.0.0.1:8202 t=1000 s=0");
    assert_true(took_ms >= 1500 && took_ms <= 1500 + 100);
    assert_int_equal(f->c.asked_down, 0);
    curve_log_set_level(saved);
}

/* A leader that is merely slow for a moment (one RPC times out) and that the followers keep
 * naming: after one base timeout of polling it gets the request again, with the base timeout
 * (the bounded price of not resending to it at once). */
static void test_slow_leader_retried_after_window(void **state)
{
    fixture *f = *state;
    assert_int_equal(mds_answer(f), 0);
    uint64_t t0 = curve_clock_mono_ns(&f->clock.base);
    f->c.n[0].timeouts_left = 1;
    curve_step s = run(f, CURVE_RETRY_OP_WRITE);
    assert_int_equal(s.result, 0);
    uint64_t took_ms = (curve_clock_mono_ns(&f->clock.base) - t0) / MS;
    expect_log(f, (const char *[]){"send 127.0.0.1:8201 t=1000 s=0", "getleader s=0",
                                   "getleader s=100", "getleader s=100", "getleader s=100",
                                   "getleader s=100", "getleader s=100", "getleader s=100",
                                   "getleader s=100", "getleader s=100", "getleader s=100",
                                   "getleader s=100", "send 127.0.0.1:8201 t=1000 s=0", NULL});
    assert_int_equal(took_ms, 2000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cold_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_membership_without_leader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redirect_follows_hint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_leader_reresolved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overload_then_success, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copyset_moved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_missing_chunk_zeros, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fatal_epoch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unstable_keeps_timeout_short, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mds_down_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_election_in_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leader_killed_election, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leader_stopped_election, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leader_stopped_no_leader_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leader_killed_peers_name_old, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_leader_retried_after_window, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
