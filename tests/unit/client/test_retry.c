/* Retry policy (DESIGN §4) against a manual clock and a fake PRNG. */
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

#include "client/retry.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "curve/errors.h"

#define MS (1000000ull)

typedef struct fake_rand {
    uint64_t value; /* returned by every call */
    unsigned calls;
} fake_rand;

static uint64_t fake_rand_fn(void *ctx)
{
    fake_rand *f = ctx;
    f->calls++;
    return f->value;
}

typedef struct fixture {
    curve_retry_opts opts;
    curve_clock_manual clock;
    fake_rand rnd;
    curve_retry_state st;
} fixture;

static void fx_start(fixture *f, curve_retry_op op)
{
    curve_retry_init(&f->st, &f->opts, &f->clock.base, fake_rand_fn, &f->rnd, op);
}

static int setup(void **state)
{
    static fixture f;
    memset(&f, 0, sizeof(f));
    curve_retry_opts_default(&f.opts);
    curve_clock_manual_init(&f.clock, 1000 * MS);
    *state = &f;
    return 0;
}

static void feed(fixture *f, int status, curve_retry_action *act)
{
    curve_rpc_outcome o = {.status = status};
    curve_retry_on_outcome(&f->st, &o, act);
}

static void feed_timeout(fixture *f, bool may_change, curve_retry_action *act)
{
    curve_rpc_outcome o = {.status = 0, .timed_out = true, .leader_may_change = may_change};
    curve_retry_on_outcome(&f->st, &o, act);
}

static void test_defaults_match_design(void **state)
{
    curve_retry_opts o;
    curve_retry_opts_default(&o);
    assert_int_equal(o.op_retry_interval_ms, 100);
    assert_int_equal(o.overload_max_pow, 6);
    assert_int_equal(o.overload_jitter_pct, 10);
    assert_int_equal(o.max_retry_sleep_ms, 8000);
    assert_int_equal(o.rpc_timeout_ms, 1000);
    assert_int_equal(o.timeout_max_pow, 3);
    assert_int_equal(o.max_rpc_timeout_ms, 8000);
    assert_int_equal(o.min_retries_force_timeout_backoff, 5);
    assert_int_equal(o.redirect_sleep_ms, 10);
    assert_int_equal(o.total_deadline_ms, 0);
    assert_int_equal(o.max_attempts, 0);
    assert_int_equal(o.slow_threshold_ms, 45000);
    assert_int_equal(o.unstable_timeout_threshold, 10);
    assert_int_equal(curve_retry_opts_validate(&o, NULL, 0), 0);
}

static void test_success_first_try(void **state)
{
    fixture *f = *state;
    fx_start(f, CURVE_RETRY_OP_WRITE);
    assert_int_equal(curve_retry_timeout_ms(&f->st), 1000);
    curve_retry_action a;
    feed(f, 0, &a);
    assert_int_equal(a.verdict, CURVE_RETRY_DONE);
    assert_false(a.became_slow);
}

/* OVERLOAD without jitter: 100 ms * 2^min(n, 6), n = 1, 2, ... */
static void test_overload_sequence_exact(void **state)
{
    fixture *f = *state;
    f->opts.overload_jitter_pct = 0;
    fx_start(f, CURVE_RETRY_OP_WRITE);
    const uint64_t want[] = {200, 400, 800, 1600, 3200, 6400, 6400, 6400, 6400};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        curve_retry_action a;
        feed(f, CURVE_ERR_OVERLOAD, &a);
        assert_int_equal(a.verdict, CURVE_RETRY_AGAIN);
        assert_int_equal(a.resolve, CURVE_RESOLVE_NONE);
        assert_int_equal(a.sleep_ms, want[i]);
    }
    /* the RPC-layer overload code is handled the same way */
    curve_retry_action a;
    feed(f, CURVE_ERR_RPC_OVERLOAD, &a);
    assert_int_equal(a.sleep_ms, 6400);
}

/* Jitter bounds: r % (2*delta+1) picks base - delta .. base + delta. */
static void test_overload_jitter_bounds(void **state)
{
    fixture *f = *state;
    fx_start(f, CURVE_RETRY_OP_WRITE);
    curve_retry_action a;
    f->rnd.value = 0; /* lowest */
    feed(f, CURVE_ERR_OVERLOAD, &a);
    assert_int_equal(a.sleep_ms, 180); /* 200 - 10% */
    f->rnd.value = 80;                 /* 80 % 81 = 80: highest for base 400 (delta 40) */
    feed(f, CURVE_ERR_OVERLOAD, &a);
    assert_int_equal(a.sleep_ms, 440);
    f->rnd.value = 80; /* base 800, delta 80: middle */
    feed(f, CURVE_ERR_OVERLOAD, &a);
    assert_int_equal(a.sleep_ms, 800);
    assert_int_equal(f->rnd.calls, 3);

    /* with the real PRNG every sleep stays within +-10% and both halves occur */
    curve_retry_state st;
    for (int round = 0; round < 7; round++) {
        uint64_t lo = UINT64_MAX, hi = 0;
        for (int i = 0; i < 2000; i++) {
            curve_retry_init(&st, &f->opts, &f->clock.base, NULL, NULL, CURVE_RETRY_OP_READ);
            curve_rpc_outcome o = {.status = CURVE_ERR_OVERLOAD};
            for (int k = 0; k <= round; k++)
                curve_retry_on_outcome(&st, &o, &a);
            uint64_t base = 100ull << (round + 1 > 6 ? 6 : round + 1);
            assert_true(a.sleep_ms >= base - base / 10 && a.sleep_ms <= base + base / 10);
            lo = a.sleep_ms < lo ? a.sleep_ms : lo;
            hi = a.sleep_ms > hi ? a.sleep_ms : hi;
        }
        uint64_t base = 100ull << (round + 1 > 6 ? 6 : round + 1);
        assert_true(lo < base && hi > base);
    }
}

static void test_overload_cap_and_floor(void **state)
{
    fixture *f = *state;
    f->opts.op_retry_interval_ms = 1000;
    f->opts.overload_jitter_pct = 0;
    fx_start(f, CURVE_RETRY_OP_WRITE);
    const uint64_t want[] = {2000, 4000, 8000, 8000, 8000};
    curve_retry_action a;
    for (size_t i = 0; i < 5; i++) {
        feed(f, CURVE_ERR_OVERLOAD, &a);
        assert_int_equal(a.sleep_ms, want[i]);
    }
    /* cap applies after jitter: 8000 + 10% is still 8000 */
    f->opts.overload_jitter_pct = 10;
    f->rnd.value = 1600; /* top of the jitter range for base 8000 */
    feed(f, CURVE_ERR_OVERLOAD, &a);
    assert_int_equal(a.sleep_ms, 8000);

    /* floor: never below the base interval even with jitter pulling down */
    setup(state);
    f = *state;
    f->opts.overload_max_pow = 0;
    fx_start(f, CURVE_RETRY_OP_WRITE);
    f->rnd.value = 0;
    feed(f, CURVE_ERR_OVERLOAD, &a);
    assert_int_equal(a.sleep_ms, 100);
}

/* Timeouts: 1 s * 2^min(n, 3), capped at 8 s; re-resolve the leader; no sleep. */
static void test_timeout_sequence(void **state)
{
    fixture *f = *state;
    fx_start(f, CURVE_RETRY_OP_READ);
    assert_int_equal(curve_retry_timeout_ms(&f->st), 1000);
    const uint64_t want[] = {2000, 4000, 8000, 8000, 8000, 8000};
    for (size_t i = 0; i < 6; i++) {
        curve_retry_action a;
        feed_timeout(f, false, &a);
        assert_int_equal(a.verdict, CURVE_RETRY_AGAIN);
        assert_int_equal(a.resolve, CURVE_RESOLVE_PEERS);
        assert_int_equal(a.sleep_ms, 0);
        assert_int_equal(a.timeout_ms, want[i]);
        assert_int_equal(curve_retry_timeout_ms(&f->st), want[i]);
    }
    /* a status code meaning timeout is a timeout too */
    setup(state);
    f = *state;
    fx_start(f, CURVE_RETRY_OP_READ);
    curve_retry_action a;
    feed(f, CURVE_ERR_TIMEOUT, &a);
    assert_int_equal(a.timeout_ms, 2000);
    feed(f, -ETIMEDOUT, &a);
    assert_int_equal(a.timeout_ms, 4000);
    assert_int_equal(a.resolve, CURVE_RESOLVE_PEERS);
}

static void test_timeout_cap_configurable(void **state)
{
    fixture *f = *state;
    f->opts.max_rpc_timeout_ms = 5000;
    fx_start(f, CURVE_RETRY_OP_READ);
    const uint64_t want[] = {2000, 4000, 5000, 5000};
    for (size_t i = 0; i < 4; i++) {
        curve_retry_action a;
        feed_timeout(f, false, &a);
        assert_int_equal(a.timeout_ms, want[i]);
    }
}

/* While the leader may have changed the timeout stays at 1 s, until n reaches 5. */
static void test_timeout_reset_leader_may_change(void **state)
{
    fixture *f = *state;
    fx_start(f, CURVE_RETRY_OP_WRITE);
    curve_retry_action a;
    feed_timeout(f, false, &a);
    assert_int_equal(a.timeout_ms, 2000);
    feed_timeout(f, false, &a);
    assert_int_equal(a.timeout_ms, 4000);
    feed_timeout(f, true, &a); /* n = 3 */
    assert_int_equal(a.timeout_ms, 1000);
    feed_timeout(f, true, &a); /* n = 4 */
    assert_int_equal(a.timeout_ms, 1000);
    feed_timeout(f, true, &a); /* n = 5: backoff forced */
    assert_int_equal(a.timeout_ms, 8000);
    feed_timeout(f, true, &a);
    assert_int_equal(a.timeout_ms, 8000);
    feed_timeout(f, false, &a);
    assert_int_equal(a.timeout_ms, 8000);
}

/* Polling the peers after a timeout (election under way): not a failed attempt, base timeout
 * while n < 5, the deadline applies. */
static void test_poll_peers(void **state)
{
    fixture *f = *state;
    f->opts.total_deadline_ms = 3000;
    fx_start(f, CURVE_RETRY_OP_WRITE);
    curve_retry_action a;
    curve_clock_manual_advance(&f->clock, 1000 * MS);
    feed_timeout(f, false, &a);
    assert_int_equal(a.timeout_ms, 2000);
    for (int i = 0; i < 5; i++) {
        curve_clock_manual_advance(&f->clock, 100 * MS);
        curve_retry_poll_peers(&f->st, 100, &a);
        assert_int_equal(a.verdict, CURVE_RETRY_AGAIN);
        assert_int_equal(a.resolve, CURVE_RESOLVE_PEERS);
        assert_int_equal(a.sleep_ms, 100);
        assert_int_equal(a.timeout_ms, 1000);
    }
    assert_int_equal(f->st.retries, 1);
    /* the next timeout grows from n = 1 as before */
    feed_timeout(f, false, &a);
    assert_int_equal(f->st.retries, 2);
    assert_int_equal(a.timeout_ms, 1500); /* 4000, clamped to the 1500 ms left */
    curve_clock_manual_advance(&f->clock, 1450 * MS);
    curve_retry_poll_peers(&f->st, 100, &a); /* 50 ms left < sleep */
    assert_int_equal(a.verdict, CURVE_RETRY_FAIL);
    assert_int_equal(a.err, CURVE_ERR_TIMEOUT);
    /* from n = 5 the backoff applies even while polling */
    f->opts.total_deadline_ms = 0;
    fx_start(f, CURVE_RETRY_OP_WRITE);
    for (int i = 0; i < 5; i++)
        feed_timeout(f, false, &a);
    curve_retry_poll_peers(&f->st, 100, &a);
    assert_int_equal(a.timeout_ms, 8000);
}

static void test_redirected_with_hint(void **state)
{
    fixture *f = *state;
    fx_start(f, CURVE_RETRY_OP_WRITE);
    curve_rpc_outcome o = {.status = CURVE_ERR_REDIRECTED, .leader_hint = "127.0.0.1:8202"};
    curve_retry_action a;
    curve_retry_on_outcome(&f->st, &o, &a);
    assert_int_equal(a.verdict, CURVE_RETRY_AGAIN);
    assert_int_equal(a.resolve, CURVE_RESOLVE_HINT);
    assert_string_equal(a.target, "127.0.0.1:8202");
    assert_int_equal(a.sleep_ms, 0);
    /* redirected again right after: the hint is followed but after redirect_sleep */
    o.leader_hint = "127.0.0.1:8201";
    curve_retry_on_outcome(&f->st, &o, &a);
    assert_int_equal(a.resolve, CURVE_RESOLVE_HINT);
    assert_string_equal(a.target, "127.0.0.1:8201");
    assert_int_equal(a.sleep_ms, 10);
    /* a different failure in between resets that */
    feed(f, CURVE_ERR_FAILURE_UNKNOWN, &a);
    o.leader_hint = "127.0.0.1:8203";
    curve_retry_on_outcome(&f->st, &o, &a);
    assert_int_equal(a.sleep_ms, 0);
    assert_string_equal(a.target, "127.0.0.1:8203");
}

static void test_redirected_without_hint(void **state)
{
    fixture *f = *state;
    fx_start(f, CURVE_RETRY_OP_WRITE);
    curve_retry_action a;
    /* NULL hint, empty hint and an over-long hint all mean "no hint" */
    char longhint[CURVE_ADDR_MAX + 8];
    memset(longhint, 'a', sizeof(longhint) - 1);
    longhint[sizeof(longhint) - 1] = '\0';
    const char *hints[] = {NULL, "", longhint};
    for (int i = 0; i < 3; i++) {
        curve_rpc_outcome o = {.status = CURVE_ERR_REDIRECTED, .leader_hint = hints[i]};
        curve_retry_on_outcome(&f->st, &o, &a);
        assert_int_equal(a.verdict, CURVE_RETRY_AGAIN);
        assert_int_equal(a.resolve, CURVE_RESOLVE_PEERS);
        assert_int_equal(a.target[0], '\0');
    }
    /* peers answered: resend at once */
    curve_retry_on_resolved(&f->st, CURVE_RESOLVE_PEERS, true, &a);
    assert_int_equal(a.verdict, CURVE_RETRY_AGAIN);
    assert_int_equal(a.resolve, CURVE_RESOLVE_NONE);
    assert_int_equal(a.sleep_ms, 0);
    /* peers failed: ask the MDS; MDS failed too: sleep 10 ms */
    feed(f, CURVE_ERR_REDIRECTED, &a);
    curve_retry_on_resolved(&f->st, CURVE_RESOLVE_PEERS, false, &a);
    assert_int_equal(a.verdict, CURVE_RETRY_AGAIN);
    assert_int_equal(a.resolve, CURVE_RESOLVE_MDS);
    curve_retry_on_resolved(&f->st, CURVE_RESOLVE_MDS, false, &a);
    assert_int_equal(a.resolve, CURVE_RESOLVE_NONE);
    assert_int_equal(a.sleep_ms, 10);
    /* MDS succeeded: no sleep */
    feed(f, CURVE_ERR_REDIRECTED, &a);
    curve_retry_on_resolved(&f->st, CURVE_RESOLVE_PEERS, false, &a);
    curve_retry_on_resolved(&f->st, CURVE_RESOLVE_MDS, true, &a);
    assert_int_equal(a.resolve, CURVE_RESOLVE_NONE);
    assert_int_equal(a.sleep_ms, 0);
    /* NOT_LEADER from the RPC layer behaves like REDIRECTED */
    feed(f, CURVE_ERR_NOT_LEADER, &a);
    assert_int_equal(a.resolve, CURVE_RESOLVE_PEERS);
}

static void test_copyset_notexist_refresh(void **state)
{
    fixture *f = *state;
    fx_start(f, CURVE_RETRY_OP_READ);
    curve_retry_action a;
    feed(f, CURVE_ERR_COPYSET_NOTEXIST, &a);
    assert_int_equal(a.verdict, CURVE_RETRY_AGAIN);
    assert_int_equal(a.resolve, CURVE_RESOLVE_MDS);
    assert_int_equal(a.sleep_ms, 0);
    curve_retry_on_resolved(&f->st, CURVE_RESOLVE_MDS, true, &a);
    assert_int_equal(a.resolve, CURVE_RESOLVE_NONE);
    assert_int_equal(a.sleep_ms, 0);
    /* still missing after the refresh: refresh again, then wait op_retry_interval */
    feed(f, CURVE_ERR_COPYSET_NOTEXIST, &a);
    assert_int_equal(a.resolve, CURVE_RESOLVE_MDS);
    curve_retry_on_resolved(&f->st, CURVE_RESOLVE_MDS, true, &a);
    assert_int_equal(a.sleep_ms, 100);
    /* MDS unreachable: op_retry_interval */
    feed(f, CURVE_ERR_OVERLOAD, &a);
    feed(f, CURVE_ERR_COPYSET_NOTEXIST, &a);
    curve_retry_on_resolved(&f->st, CURVE_RESOLVE_MDS, false, &a);
    assert_int_equal(a.resolve, CURVE_RESOLVE_NONE);
    assert_int_equal(a.sleep_ms, 100);
}

static void test_chunk_notexist(void **state)
{
    fixture *f = *state;
    curve_retry_action a;
    fx_start(f, CURVE_RETRY_OP_READ);
    feed(f, CURVE_ERR_CHUNK_NOTEXIST, &a);
    assert_int_equal(a.verdict, CURVE_RETRY_ZEROS);
    fx_start(f, CURVE_RETRY_OP_WRITE);
    feed(f, CURVE_ERR_CHUNK_NOTEXIST, &a);
    assert_int_equal(a.verdict, CURVE_RETRY_FAIL);
    assert_int_equal(a.err, CURVE_ERR_CHUNK_NOTEXIST);
    fx_start(f, CURVE_RETRY_OP_DISCARD);
    feed(f, CURVE_ERR_CHUNK_NOTEXIST, &a);
    assert_int_equal(a.verdict, CURVE_RETRY_DONE);
    /* a read that first retried still completes with zeros */
    fx_start(f, CURVE_RETRY_OP_READ);
    feed(f, CURVE_ERR_OVERLOAD, &a);
    assert_int_equal(a.verdict, CURVE_RETRY_AGAIN);
    feed(f, CURVE_ERR_CHUNK_NOTEXIST, &a);
    assert_int_equal(a.verdict, CURVE_RETRY_ZEROS);
}

static void test_fatal_statuses(void **state)
{
    fixture *f = *state;
    const int fatal[] = {CURVE_ERR_INVALID_REQUEST, CURVE_ERR_EPOCH_TOO_OLD, CURVE_ERR_FENCED,
                         CURVE_ERR_RPC_BADREQ, CURVE_ERR_RPC_NOMETHOD};
    for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++) {
        fx_start(f, CURVE_RETRY_OP_WRITE);
        curve_retry_action a;
        feed(f, CURVE_ERR_OVERLOAD, &a); /* even after retries */
        feed(f, fatal[i], &a);
        assert_int_equal(a.verdict, CURVE_RETRY_FAIL);
        assert_int_equal(a.err, fatal[i]);
        assert_true(curve_retry_status_is_fatal(fatal[i]));
    }
    assert_false(curve_retry_status_is_fatal(CURVE_ERR_OVERLOAD));
    assert_false(curve_retry_status_is_fatal(CURVE_ERR_DISK_FAIL));
}

static void test_other_and_connection_errors(void **state)
{
    fixture *f = *state;
    fx_start(f, CURVE_RETRY_OP_WRITE);
    curve_retry_action a;
    const int other[] = {CURVE_ERR_CRC_FAIL, CURVE_ERR_NOSPACE, CURVE_ERR_FAILURE_UNKNOWN,
                         CURVE_ERR_BACKWARD, -EIO};
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        feed(f, other[i], &a);
        assert_int_equal(a.verdict, CURVE_RETRY_AGAIN);
        assert_int_equal(a.resolve, CURVE_RESOLVE_NONE);
        assert_int_equal(a.sleep_ms, 100);
    }
    /* the timeout grows with n whatever the failure was (Curve's retriedTimes) */
    assert_int_equal(a.timeout_ms, 8000);

    fx_start(f, CURVE_RETRY_OP_WRITE);
    /* DISK_FAIL too: that replica gave up leadership for good (docs/client.md) */
    const int conn[] = {CURVE_ERR_RPC_CONN, -ECONNREFUSED, -ECONNRESET, -EHOSTUNREACH,
                        CURVE_ERR_DISK_FAIL};
    for (size_t i = 0; i < sizeof(conn) / sizeof(conn[0]); i++) {
        feed(f, conn[i], &a);
        assert_int_equal(a.resolve, CURVE_RESOLVE_PEERS);
        assert_int_equal(a.sleep_ms, 0);
        /* the leader may have changed: no timeout growth from connection failures */
        assert_int_equal(a.timeout_ms, 1000);
    }
    curve_retry_on_resolved(&f->st, CURVE_RESOLVE_PEERS, false, &a);
    assert_int_equal(a.resolve, CURVE_RESOLVE_MDS);
    curve_retry_on_resolved(&f->st, CURVE_RESOLVE_MDS, false, &a);
    assert_int_equal(a.resolve, CURVE_RESOLVE_NONE);
    assert_int_equal(a.sleep_ms, 100);
    /* after a timeout whose re-resolution failed: only the short redirect pause */
    feed_timeout(f, false, &a);
    curve_retry_on_resolved(&f->st, CURVE_RESOLVE_PEERS, false, &a);
    curve_retry_on_resolved(&f->st, CURVE_RESOLVE_MDS, false, &a);
    assert_int_equal(a.sleep_ms, 10);
}

static void test_unbounded_by_default(void **state)
{
    fixture *f = *state;
    fx_start(f, CURVE_RETRY_OP_WRITE);
    curve_retry_action a;
    for (int i = 0; i < 10000; i++) {
        curve_clock_manual_advance(&f->clock, 3600ull * 1000 * MS);
        feed(f, CURVE_ERR_FAILURE_UNKNOWN, &a);
        assert_int_equal(a.verdict, CURVE_RETRY_AGAIN);
    }
}

static void test_total_deadline(void **state)
{
    fixture *f = *state;
    f->opts.total_deadline_ms = 5000;
    fx_start(f, CURVE_RETRY_OP_WRITE);
    curve_retry_action a;
    curve_clock_manual_advance(&f->clock, 4000 * MS);
    feed(f, CURVE_ERR_FAILURE_UNKNOWN, &a);
    assert_int_equal(a.verdict, CURVE_RETRY_AGAIN);
    assert_int_equal(a.sleep_ms, 100);
    assert_int_equal(a.timeout_ms, 900); /* clamped: 5000 - 4000 - 100 */
    curve_clock_manual_advance(&f->clock, 850 * MS);
    feed(f, CURVE_ERR_FAILURE_UNKNOWN, &a); /* 150 ms left, sleep 100: 50 ms for the RPC */
    assert_int_equal(a.verdict, CURVE_RETRY_AGAIN);
    assert_int_equal(a.timeout_ms, 50);
    curve_clock_manual_advance(&f->clock, 60 * MS);
    feed(f, CURVE_ERR_FAILURE_UNKNOWN, &a); /* 90 ms left < sleep 100 */
    assert_int_equal(a.verdict, CURVE_RETRY_FAIL);
    assert_int_equal(a.err, CURVE_ERR_TIMEOUT);
    /* a resolve step past the deadline fails as well */
    fx_start(f, CURVE_RETRY_OP_WRITE);
    feed(f, CURVE_ERR_REDIRECTED, &a);
    assert_int_equal(a.resolve, CURVE_RESOLVE_PEERS);
    curve_clock_manual_advance(&f->clock, 5000 * MS);
    curve_retry_on_resolved(&f->st, CURVE_RESOLVE_PEERS, true, &a);
    assert_int_equal(a.verdict, CURVE_RETRY_FAIL);
    assert_int_equal(a.err, CURVE_ERR_TIMEOUT);
    /* success after the deadline is still success */
    fx_start(f, CURVE_RETRY_OP_WRITE);
    curve_clock_manual_advance(&f->clock, 6000 * MS);
    feed(f, 0, &a);
    assert_int_equal(a.verdict, CURVE_RETRY_DONE);
}

static void test_max_attempts(void **state)
{
    fixture *f = *state;
    f->opts.max_attempts = 3;
    fx_start(f, CURVE_RETRY_OP_WRITE);
    curve_retry_action a;
    feed(f, CURVE_ERR_OVERLOAD, &a);
    assert_int_equal(a.verdict, CURVE_RETRY_AGAIN);
    feed(f, CURVE_ERR_OVERLOAD, &a);
    assert_int_equal(a.verdict, CURVE_RETRY_AGAIN);
    feed(f, CURVE_ERR_OVERLOAD, &a);
    assert_int_equal(a.verdict, CURVE_RETRY_FAIL);
    assert_int_equal(a.err, CURVE_ERR_TIMEOUT);
}

static void test_slow_reported_once(void **state)
{
    fixture *f = *state;
    fx_start(f, CURVE_RETRY_OP_WRITE);
    curve_retry_action a;
    curve_clock_manual_advance(&f->clock, 44999 * MS);
    feed(f, CURVE_ERR_FAILURE_UNKNOWN, &a);
    assert_false(a.became_slow);
    curve_clock_manual_advance(&f->clock, 1 * MS);
    feed(f, CURVE_ERR_FAILURE_UNKNOWN, &a);
    assert_true(a.became_slow);
    curve_clock_manual_advance(&f->clock, 10000 * MS);
    feed(f, CURVE_ERR_FAILURE_UNKNOWN, &a);
    assert_false(a.became_slow);
    feed(f, 0, &a);
    assert_false(a.became_slow);
    /* a request that succeeds only after 45 s is slow too */
    fx_start(f, CURVE_RETRY_OP_WRITE);
    curve_clock_manual_advance(&f->clock, 46000 * MS);
    feed(f, 0, &a);
    assert_int_equal(a.verdict, CURVE_RETRY_DONE);
    assert_true(a.became_slow);
}

static void test_unstable_tracker(void **state)
{
    curve_unstable_tracker *t = malloc(sizeof(*t));
    assert_non_null(t);
    assert_int_equal(curve_unstable_init(t, 0), -EINVAL);
    assert_int_equal(curve_unstable_init(t, 10), 0);
    for (int i = 1; i <= 9; i++) {
        assert_false(curve_unstable_on_timeout(t, 7));
        assert_int_equal(curve_unstable_timeouts(t, 7), i);
    }
    assert_false(curve_unstable_is_unstable(t, 7));
    assert_true(curve_unstable_on_timeout(t, 7)); /* 10th */
    assert_true(curve_unstable_is_unstable(t, 7));
    assert_false(curve_unstable_on_timeout(t, 7)); /* reported once */
    assert_true(curve_unstable_is_unstable(t, 7));
    assert_false(curve_unstable_is_unstable(t, 8));
    curve_unstable_on_success(t, 7);
    assert_false(curve_unstable_is_unstable(t, 7));
    assert_int_equal(curve_unstable_timeouts(t, 7), 0);
    /* non-consecutive timeouts never mark it */
    for (int i = 0; i < 50; i++) {
        assert_false(curve_unstable_on_timeout(t, 7));
        if (i % 9 == 8)
            curve_unstable_on_success(t, 7);
    }
    /* chunkservers are independent */
    for (int i = 0; i < 9; i++) {
        curve_unstable_on_timeout(t, 100);
        curve_unstable_on_timeout(t, 200);
    }
    curve_unstable_on_success(t, 100);
    assert_false(curve_unstable_on_timeout(t, 100));
    assert_true(curve_unstable_on_timeout(t, 200));
    /* bounded table: ids beyond the capacity are not tracked, tracked ones keep working */
    for (uint32_t id = 1000; id < 1000 + CURVE_UNSTABLE_MAX_CS; id++)
        curve_unstable_on_timeout(t, id);
    assert_int_equal(t->used, CURVE_UNSTABLE_MAX_CS);
    assert_int_equal(curve_unstable_timeouts(t, 999999), 0);
    assert_false(curve_unstable_on_timeout(t, 999999));
    assert_true(curve_unstable_is_unstable(t, 200));
    curve_unstable_destroy(t);
    free(t);
}

static void test_mds_rotation(void **state)
{
    curve_mds_rotor r;
    char err[128], cur[CURVE_ADDR_MAX];
    assert_int_equal(curve_mds_rotor_init(&r, " 127.0.0.1:6700, 127.0.0.1:6701 ,host-c:6702", 2,
                                          100, err, sizeof(err)),
                     0);
    assert_int_equal(r.n, 3);
    assert_int_equal(curve_mds_rotor_current(&r, cur, sizeof(cur)), 0);
    assert_string_equal(cur, "127.0.0.1:6700");
    uint64_t sleep_ms = 99;
    /* two failures before switching */
    assert_int_equal(curve_mds_rotor_on_failure(&r, 0, false, &sleep_ms), 0);
    assert_int_equal(sleep_ms, 0);
    assert_int_equal(curve_mds_rotor_on_failure(&r, 0, false, &sleep_ms), 1);
    assert_int_equal(curve_mds_rotor_current(&r, cur, sizeof(cur)), 1);
    assert_string_equal(cur, "127.0.0.1:6701");
    /* a late failure report for the old address is ignored */
    assert_int_equal(curve_mds_rotor_on_failure(&r, 0, false, &sleep_ms), 1);
    /* "not leader" switches at once */
    assert_int_equal(curve_mds_rotor_on_failure(&r, 1, true, &sleep_ms), 2);
    assert_int_equal(sleep_ms, 0);
    assert_int_equal(curve_mds_rotor_current(&r, cur, sizeof(cur)), 2);
    assert_string_equal(cur, "host-c:6702");
    /* wrapping around after every address failed asks for a sleep */
    assert_int_equal(curve_mds_rotor_on_failure(&r, 2, false, &sleep_ms), 2);
    assert_int_equal(curve_mds_rotor_on_failure(&r, 2, false, &sleep_ms), 0);
    assert_int_equal(sleep_ms, 100);
    /* success resets the failure count and the round */
    assert_int_equal(curve_mds_rotor_on_failure(&r, 0, false, &sleep_ms), 0);
    curve_mds_rotor_on_success(&r, 0);
    assert_int_equal(curve_mds_rotor_on_failure(&r, 0, false, &sleep_ms), 0);
    assert_int_equal(curve_mds_rotor_on_failure(&r, 0, true, &sleep_ms), 1);
    assert_int_equal(sleep_ms, 0);
    curve_mds_rotor_destroy(&r);

    /* a single address: every switch is a full round */
    assert_int_equal(curve_mds_rotor_init(&r, "a:1", 1, 50, err, sizeof(err)), 0);
    assert_int_equal(curve_mds_rotor_on_failure(&r, 0, false, &sleep_ms), 0);
    assert_int_equal(sleep_ms, 50);
    curve_mds_rotor_destroy(&r);

    const char *bad[] = {"",         "a",    "a:",    ":1",   "a:0", "a:65536",
                         "a:1,,b:2", "a:1x", "a b:1", "a:1,", NULL};
    for (int i = 0; bad[i]; i++) {
        err[0] = '\0';
        assert_int_equal(curve_mds_rotor_init(&r, bad[i], 2, 100, err, sizeof(err)), -EINVAL);
        assert_true(strlen(err) > 0);
    }
    assert_int_equal(curve_mds_rotor_init(&r, NULL, 2, 100, err, sizeof(err)), -EINVAL);
    assert_int_equal(curve_mds_rotor_init(&r, "a:1", 0, 100, err, sizeof(err)), -EINVAL);
    char many[512] = "";
    for (int i = 0; i <= CURVE_MDS_ADDRS_MAX; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%sh:%d", i ? "," : "", i + 1);
    assert_int_equal(curve_mds_rotor_init(&r, many, 2, 100, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "more than"));
}

/* Random outcome sequences: every action respects the configured bounds. */
static void test_random_invariants(void **state)
{
    fixture *f = *state;
    const char *env = getenv("CURVE_TEST_SEED");
    unsigned seed = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL);
    printf("seed %u (replay with CURVE_TEST_SEED=%u)\n", seed, seed);
    srand(seed);
    curve_log_level saved = curve_log_get_level();
    curve_log_set_level(CURVE_LOG_ERROR); /* "giving up" warnings are expected here */
    const int statuses[] = {0,
                            CURVE_ERR_OVERLOAD,
                            CURVE_ERR_REDIRECTED,
                            CURVE_ERR_COPYSET_NOTEXIST,
                            CURVE_ERR_CHUNK_NOTEXIST,
                            CURVE_ERR_DISK_FAIL,
                            CURVE_ERR_RPC_CONN,
                            CURVE_ERR_TIMEOUT,
                            CURVE_ERR_INVALID_REQUEST,
                            -EIO};
    for (int req = 0; req < 2000; req++) {
        f->opts.total_deadline_ms = rand() % 2 ? 0 : 1000 + (uint64_t)(rand() % 60000);
        fx_start(f, (curve_retry_op)(rand() % 3));
        for (int step = 0; step < 60; step++) {
            curve_rpc_outcome o = {.status = statuses[rand() % 10],
                                   .timed_out = rand() % 8 == 0,
                                   .leader_may_change = rand() % 2,
                                   .leader_hint = rand() % 2 ? "10.0.0.1:8200" : NULL};
            f->rnd.value = (uint64_t)rand() * (uint64_t)rand();
            curve_retry_action a;
            curve_retry_on_outcome(&f->st, &o, &a);
            while (a.verdict == CURVE_RETRY_AGAIN &&
                   (a.resolve == CURVE_RESOLVE_PEERS || a.resolve == CURVE_RESOLVE_MDS))
                curve_retry_on_resolved(&f->st, a.resolve, rand() % 2, &a);
            if (a.verdict != CURVE_RETRY_AGAIN) {
                if (a.verdict == CURVE_RETRY_FAIL)
                    assert_true(a.err < 0);
                break;
            }
            assert_true(a.timeout_ms >= 1 && a.timeout_ms <= f->opts.max_rpc_timeout_ms);
            assert_true(a.sleep_ms <= f->opts.max_retry_sleep_ms);
            if (a.resolve == CURVE_RESOLVE_HINT)
                assert_string_equal(a.target, "10.0.0.1:8200");
            if (f->opts.total_deadline_ms) {
                uint64_t el = (curve_clock_mono_ns(&f->clock.base) - f->st.start_ns) / MS;
                assert_true(el + a.sleep_ms + a.timeout_ms <= f->opts.total_deadline_ms);
            }
            curve_clock_manual_advance(&f->clock, (a.sleep_ms + a.timeout_ms / 2) * MS);
        }
    }
    curve_log_set_level(saved);
}

static bool opts_equal(const curve_retry_opts *a, const curve_retry_opts *b)
{
    return a->op_retry_interval_ms == b->op_retry_interval_ms &&
           a->overload_max_pow == b->overload_max_pow &&
           a->overload_jitter_pct == b->overload_jitter_pct &&
           a->max_retry_sleep_ms == b->max_retry_sleep_ms &&
           a->rpc_timeout_ms == b->rpc_timeout_ms && a->timeout_max_pow == b->timeout_max_pow &&
           a->max_rpc_timeout_ms == b->max_rpc_timeout_ms &&
           a->min_retries_force_timeout_backoff == b->min_retries_force_timeout_backoff &&
           a->redirect_sleep_ms == b->redirect_sleep_ms &&
           a->total_deadline_ms == b->total_deadline_ms && a->max_attempts == b->max_attempts &&
           a->slow_threshold_ms == b->slow_threshold_ms &&
           a->unstable_timeout_threshold == b->unstable_timeout_threshold &&
           a->mds_failures_before_switch == b->mds_failures_before_switch &&
           a->mds_retry_interval_ms == b->mds_retry_interval_ms;
}

/* Random bytes never crash the address parser; whatever it accepts is well-formed. */
static void test_mds_list_garbage(void **state)
{
    const char *env = getenv("CURVE_TEST_SEED");
    unsigned seed = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL);
    printf("seed %u (replay with CURVE_TEST_SEED=%u)\n", seed, seed);
    srand(seed);
    const char alphabet[] = "ab1:9:0,, \t.x65535\x01\xff";
    curve_mds_rotor r;
    char err[128], buf[200];
    int accepted = 0;
    for (int i = 0; i < 20000; i++) {
        if (i % 2) {
            size_t n = (size_t)(rand() % (int)(sizeof(buf) - 1));
            for (size_t k = 0; k < n; k++)
                buf[k] = alphabet[rand() % (int)(sizeof(alphabet) - 1)];
            buf[n] = '\0';
        } else { /* near-valid lists: random hosts, ports and separators */
            static const char *hosts[] = {"h", "10.0.0.1", "", "a b", "x:y"};
            static const char *ports[] = {"1", "80", "65535", "0", "65536", "", "8x"};
            static const char *seps[] = {",", ", ", " ,", ",,"};
            buf[0] = '\0';
            int k = 1 + rand() % 18;
            for (int j = 0; j < k; j++)
                snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s:%s",
                         j ? seps[rand() % 4] : "", hosts[rand() % 5], ports[rand() % 7]);
        }
        if (curve_mds_rotor_init(&r, buf, 1, 0, err, sizeof(err)) != 0) {
            assert_int_equal(r.n, 0);
            curve_mds_rotor_destroy(&r);
            continue;
        }
        accepted++;
        assert_true(r.n >= 1 && r.n <= CURVE_MDS_ADDRS_MAX);
        for (uint32_t k = 0; k < r.n; k++) {
            const char *colon = strrchr(r.addrs[k], ':');
            assert_non_null(colon);
            assert_true(colon > r.addrs[k]);
            long port = strtol(colon + 1, NULL, 10);
            assert_true(port >= 1 && port <= 65535);
            assert_null(strchr(r.addrs[k], ','));
        }
        curve_mds_rotor_destroy(&r);
    }
    printf("accepted %d of 20000\n", accepted);
    assert_true(accepted > 100); /* the accept path was exercised */
}

static void test_config_table(void **state)
{
    size_t n;
    const curve_cfg_def *defs = curve_retry_cfg_defs(&n);
    assert_true(n >= 15);
    curve_config *cfg;
    char err[256];
    assert_int_equal(curve_config_new(defs, n, &cfg, err, sizeof(err)), 0);
    /* the table's defaults are the struct's defaults */
    curve_retry_opts fromcfg, dflt;
    curve_retry_opts_default(&dflt);
    assert_int_equal(curve_retry_opts_from_config(cfg, &fromcfg, err, sizeof(err)), 0);
    assert_true(opts_equal(&fromcfg, &dflt));
    const char *text = "client.retry.rpc_timeout_ms = 2s\n"
                       "client.retry.total_deadline_ms=30s\n"
                       "client.retry.overload_jitter_pct=5\n"
                       "client.mds.failures_before_switch=3\n";
    assert_int_equal(curve_config_load_buffer(cfg, "t.conf", text, strlen(text), err, sizeof(err)),
                     0);
    assert_int_equal(curve_retry_opts_from_config(cfg, &fromcfg, err, sizeof(err)), 0);
    assert_int_equal(fromcfg.rpc_timeout_ms, 2000);
    assert_int_equal(fromcfg.total_deadline_ms, 30000);
    assert_int_equal(fromcfg.overload_jitter_pct, 5);
    assert_int_equal(fromcfg.mds_failures_before_switch, 3);
    /* inconsistent values are rejected with the key named */
    assert_int_equal(
        curve_config_set(cfg, "client.retry.max_rpc_timeout_ms", "1s", "test", err, sizeof(err)),
        0);
    assert_int_equal(curve_retry_opts_from_config(cfg, &fromcfg, err, sizeof(err)),
                     CURVE_ERR_CONFIG);
    assert_non_null(strstr(err, "max_rpc_timeout_ms"));
    /* out-of-range values are refused by the schema */
    assert_int_equal(
        curve_config_set(cfg, "client.retry.overload_jitter_pct", "101", "test", err, sizeof(err)),
        CURVE_ERR_CONFIG);
    curve_config_free(cfg);

    curve_retry_opts o;
    curve_retry_opts_default(&o);
    o.op_retry_interval_ms = 0;
    assert_int_equal(curve_retry_opts_validate(&o, err, sizeof(err)), CURVE_ERR_CONFIG);
    curve_retry_opts_default(&o);
    o.unstable_timeout_threshold = 0;
    assert_int_equal(curve_retry_opts_validate(&o, err, sizeof(err)), CURVE_ERR_CONFIG);
}

/* A request bouncing off a dead leader (connection refused) during an election, then timing
 * out: the refused attempts do not count in the timeout backoff; a resolve that finds the
 * leader changed brings the timeout back to the base while n < 5. */
static void test_conn_failures_keep_timeout_short(void **state)
{
    fixture *f = *state;
    fx_start(f, CURVE_RETRY_OP_WRITE);
    curve_retry_action a;
    for (int i = 0; i < 20; i++) {
        feed(f, i % 2 ? -ECONNREFUSED : CURVE_ERR_RPC_CONN, &a);
        assert_int_equal(a.verdict, CURVE_RETRY_AGAIN);
        assert_int_equal(a.resolve, CURVE_RESOLVE_PEERS);
        assert_int_equal(a.timeout_ms, 1000);
        curve_retry_on_resolved(&f->st, CURVE_RESOLVE_PEERS, true, &a);
        assert_int_equal(a.timeout_ms, 1000);
    }
    /* the first real timeout backs off as the first failure would */
    feed_timeout(f, false, &a);
    assert_int_equal(a.timeout_ms, 2000);
    feed_timeout(f, false, &a);
    assert_int_equal(a.timeout_ms, 4000);
    /* the peers named another leader */
    curve_retry_leader_changed(&f->st);
    curve_retry_on_resolved(&f->st, CURVE_RESOLVE_PEERS, true, &a);
    assert_int_equal(a.timeout_ms, 1000);
    /* from the 5th counted failure on, backoff applies anyway */
    for (int i = 0; i < 3; i++)
        feed_timeout(f, false, &a);
    assert_int_equal(a.timeout_ms, 8000);
    curve_retry_leader_changed(&f->st);
    curve_retry_on_resolved(&f->st, CURVE_RESOLVE_PEERS, true, &a);
    assert_int_equal(a.timeout_ms, 8000);
    /* a connection failure after that: n >= 5, no reset either */
    feed(f, -ECONNRESET, &a);
    assert_int_equal(a.timeout_ms, 8000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_match_design),
        cmocka_unit_test_setup(test_success_first_try, setup),
        cmocka_unit_test_setup(test_overload_sequence_exact, setup),
        cmocka_unit_test_setup(test_overload_jitter_bounds, setup),
        cmocka_unit_test_setup(test_overload_cap_and_floor, setup),
        cmocka_unit_test_setup(test_timeout_sequence, setup),
        cmocka_unit_test_setup(test_timeout_cap_configurable, setup),
        cmocka_unit_test_setup(test_timeout_reset_leader_may_change, setup),
        cmocka_unit_test_setup(test_poll_peers, setup),
        cmocka_unit_test_setup(test_redirected_with_hint, setup),
        cmocka_unit_test_setup(test_redirected_without_hint, setup),
        cmocka_unit_test_setup(test_copyset_notexist_refresh, setup),
        cmocka_unit_test_setup(test_chunk_notexist, setup),
        cmocka_unit_test_setup(test_fatal_statuses, setup),
        cmocka_unit_test_setup(test_other_and_connection_errors, setup),
        cmocka_unit_test_setup(test_conn_failures_keep_timeout_short, setup),
        cmocka_unit_test_setup(test_unbounded_by_default, setup),
        cmocka_unit_test_setup(test_total_deadline, setup),
        cmocka_unit_test_setup(test_max_attempts, setup),
        cmocka_unit_test_setup(test_slow_reported_once, setup),
        cmocka_unit_test_setup(test_random_invariants, setup),
        cmocka_unit_test(test_unstable_tracker),
        cmocka_unit_test(test_mds_rotation),
        cmocka_unit_test(test_mds_list_garbage),
        cmocka_unit_test(test_config_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
