/* Unit tests of the Raft core through the in-memory fixture (tests/unit/raft/fixture.h). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/log.h"
#include "curve/errors.h"
#include "fixture.h"
#include "raft/raft_internal.h" /* transfer counters */

static struct fx g_fx;

static int setup3(void **state)
{
    fx_init(&g_fx, 3, 3, NULL);
    *state = &g_fx;
    return 0;
}

static int setup5(void **state)
{
    fx_init(&g_fx, 5, 3, NULL); /* nodes 4 and 5 start empty (future learners) */
    *state = &g_fx;
    return 0;
}

static int teardown(void **state)
{
    fx_free(&g_fx);
    return 0;
}

static struct fx_node *elect(struct fx *fx)
{
    assert_true(fx_run_until(fx, fx_has_leader, NULL, 2000));
    return fx_leader(fx);
}

static uint32_t count_leaders(struct fx *fx)
{
    uint32_t c = 0;
    for (uint32_t i = 0; i < fx->n; i++)
        if (fx->nodes[i].up && raft_role(fx->nodes[i].r) == RAFT_LEADER)
            c++;
    return c;
}

/* ---------------------------------------------------------------------------------------- */

static void test_election(void **state)
{
    struct fx *fx = *state;
    struct fx_node *l = elect(fx);
    assert_non_null(l);
    assert_int_equal(count_leaders(fx), 1);
    assert_ptr_equal(raft_cbs_data(l->r), l); /* cbs.data, as given to raft_new */
    assert_true(l->state_changes > 0);        /* state_changed found its node through it */
    uint64_t t = raft_term(l->r);
    assert_true(t >= 2); /* bootstrap term 1, then one campaign */
    /* the others follow it in the same term */
    fx_run(fx, 50);
    for (uint32_t i = 0; i < fx->n; i++) {
        assert_int_equal(raft_term(fx->nodes[i].r), t);
        assert_int_equal(raft_leader(fx->nodes[i].r), l->id);
    }
    struct raft_status st;
    raft_status(l->r, &st);
    assert_int_equal(st.role, RAFT_LEADER);
    assert_int_equal(st.npeers, 3);
    assert_int_equal(st.commit, st.last_index);
}

static void test_replication_and_apply(void **state)
{
    struct fx *fx = *state;
    struct fx_node *l = elect(fx);
    for (uint64_t v = 1; v <= 20; v++)
        assert_int_equal(fx_propose(fx, l->id, v), 0);
    uint64_t last = raft_last_index(l->r);
    assert_true(fx_run_until(fx, fx_all_applied, &last, 1000));
    assert_int_equal(fx->props_ok, 20);
    for (uint32_t i = 0; i < fx->n; i++) {
        struct fx_node *n = &fx->nodes[i];
        assert_int_equal(n->ncmds, 20);
        for (uint64_t k = 0; k < 20; k++)
            assert_int_equal(n->cmds[k], k + 1);
    }
    /* a follower refuses proposals */
    uint64_t f = l->id % 3 + 1;
    assert_int_equal(fx_propose(fx, f, 99), CURVE_ERR_NOT_LEADER);
}

static void test_backtracking_and_conflicts(void **state)
{
    struct fx *fx = *state;
    struct fx_node *l = elect(fx);
    uint64_t lagger = l->id % 3 + 1;
    fx_isolate(fx, lagger, true);
    for (uint64_t v = 1; v <= 100; v++)
        assert_int_equal(fx_propose(fx, l->id, v), 0);
    fx_run(fx, 200);
    assert_int_equal(fx->props_ok, 100);
    /* the old leader, alone, takes proposals that can never commit */
    struct fx_node *old = fx_leader(fx);
    uint64_t other = 6 - old->id - lagger;
    fx_isolate(fx, lagger, false);
    fx_isolate(fx, old->id, true);
    for (uint64_t v = 1000; v < 1010; v++)
        assert_int_equal(fx_propose(fx, old->id, v), 0);
    /* the lagger catches up from the new leader (nextIndex backtracking with hints) */
    assert_true(fx_run_until(fx, fx_has_leader, NULL, 3000));
    struct fx_node *nl = fx_leader(fx);
    assert_true(nl->id == lagger || nl->id == other);
    assert_int_equal(fx_propose(fx, nl->id, 5000), 0);
    fx_isolate(fx, old->id, false);
    uint64_t last = raft_last_index(nl->r);
    assert_true(fx_run_until(fx, fx_all_applied, &last, 3000));
    /* the old leader's uncommitted suffix was overwritten: outcome reported as not committed */
    assert_int_equal(fx->props_failed, 10);
    for (uint32_t i = 0; i < fx->n; i++) {
        struct fx_node *n = &fx->nodes[i];
        assert_int_equal(n->ncmds, 101);
        assert_int_equal(n->cmds[100], 5000);
        assert_int_equal(raft_term_at(n->r, last), raft_term(nl->r));
    }
}

static void test_prevote_prevents_disruption(void **state)
{
    struct fx *fx = *state;
    struct fx_node *l = elect(fx);
    uint64_t term = raft_term(l->r);
    uint64_t f = l->id % 3 + 1;
    fx_isolate(fx, f, true);
    fx_run(fx, 1000);                                     /* ~10 election timeouts alone */
    assert_int_equal(raft_term(fx_node(fx, f)->r), term); /* pre-votes never won: no bump */
    fx_isolate(fx, f, false);
    fx_run(fx, 200);
    assert_ptr_equal(fx_leader(fx), l);
    assert_int_equal(raft_term(l->r), term);
    assert_int_equal(raft_leader(fx_node(fx, f)->r), l->id);
}

static void test_check_quorum_step_down(void **state)
{
    struct fx *fx = *state;
    struct fx_node *l = elect(fx);
    fx_isolate(fx, l->id, true);
    /* within two election timeouts the isolated leader steps down */
    fx_run(fx, 2 * fx->opts.election_timeout_ms + 10);
    assert_int_not_equal(raft_role(l->r), RAFT_LEADER);
    /* and the majority elected someone else */
    struct fx_node *nl = fx_leader(fx);
    assert_non_null(nl);
    assert_ptr_not_equal(nl, l);
}

static bool lease_valid_pred(struct fx *fx, void *arg)
{
    return raft_lease_valid(((struct fx_node *)arg)->r);
}

static void test_lease(void **state)
{
    struct fx *fx = *state;
    struct fx_node *l = elect(fx);
    assert_true(fx_run_until(fx, lease_valid_pred, l, 200));
    struct raft_status st;
    raft_status(l->r, &st);
    uint64_t lease =
        (uint64_t)fx->opts.election_timeout_ms * (1000 - fx->opts.max_clock_drift_permille) / 1000;
    assert_true(st.lease_remaining_ms > 0 && (uint64_t)st.lease_remaining_ms <= lease);
    /* followers never hold a lease */
    for (uint32_t i = 0; i < fx->n; i++)
        if (&fx->nodes[i] != l)
            assert_false(raft_lease_valid(fx->nodes[i].r));
    /* isolated: the lease runs out no later than `lease` ms after the last acknowledgement, and
     * before anyone else can be elected */
    fx_isolate(fx, l->id, true);
    uint64_t t0 = fx->now;
    while (raft_lease_valid(l->r)) {
        assert_null(fx_leader(fx) != l ? fx_leader(fx) : NULL);
        fx_step(fx);
        assert_true(fx->now - t0 <= lease + 1);
    }
    for (uint32_t i = 0; i < fx->n; i++)
        if (&fx->nodes[i] != l)
            assert_int_not_equal(raft_role(fx->nodes[i].r), RAFT_LEADER);
}

static bool read_done_pred(struct fx *fx, void *arg)
{
    return fx->reads_ok + fx->reads_failed > 0;
}

static void test_read_index(void **state)
{
    struct fx *fx = *state;
    struct fx_node *l = elect(fx);
    for (uint64_t v = 1; v <= 5; v++)
        assert_int_equal(fx_propose(fx, l->id, v), 0);
    uint64_t f = l->id % 3 + 1;
    assert_int_equal(raft_read_index(fx_node(fx, f)->r, fx), CURVE_ERR_NOT_LEADER);
    uint64_t last = raft_last_index(l->r);
    assert_true(fx_run_until(fx, fx_all_applied, &last, 500));
    assert_int_equal(raft_read_index(l->r, fx), 0);
    assert_int_equal(fx->reads_ok, 0); /* never completes synchronously */
    assert_true(fx_run_until(fx, read_done_pred, NULL, 500));
    assert_int_equal(fx->last_read_status, 0);
    /* the read index covers the five commands committed before it */
    assert_true(fx->last_read_index >= last);
    assert_true(l->applied >= fx->last_read_index);
    /* an isolated leader cannot confirm a read: it fails when it steps down */
    fx_isolate(fx, l->id, true);
    fx->reads_ok = fx->reads_failed = 0;
    assert_int_equal(raft_read_index(l->r, fx), 0);
    assert_true(fx_run_until(fx, read_done_pred, NULL, 1000));
    assert_int_equal(fx->reads_ok, 0);
    assert_int_equal(fx->last_read_status, CURVE_ERR_NOT_LEADER);
}

static bool learner_caught_up(struct fx *fx, void *arg)
{
    struct fx_node *l = fx_leader(fx);
    uint64_t id = *(uint64_t *)arg;
    return l && fx_node(fx, id)->applied == raft_last_index(l->r);
}

static bool committed_all(struct fx *fx, void *arg)
{
    struct fx_node *l = fx_leader(fx);
    return l && raft_commit_index(l->r) == raft_last_index(l->r);
}

static void test_membership(void **state)
{
    struct fx *fx = *state;
    struct fx_node *l = elect(fx);
    for (uint64_t v = 1; v <= 10; v++)
        assert_int_equal(fx_propose(fx, l->id, v), 0);
    assert_int_equal(raft_add_learner(l->r, 4), 0);
    assert_int_equal(raft_add_learner(l->r, 5), CURVE_ERR_BUSY); /* one change at a time */
    uint64_t id4 = 4;
    assert_true(fx_run_until(fx, learner_caught_up, &id4, 1000));
    const struct raft_config *c = raft_config(l->r);
    assert_int_equal(c->n, 4);
    assert_int_equal(raft_config_get(c, 4)->role, RAFT_LEARNER);
    /* a learner never campaigns, even alone */
    assert_int_equal(fx_node(fx, 4)->ncmds, 10);
    assert_true(fx_run_until(fx, committed_all, NULL, 500));
    assert_int_equal(raft_promote(l->r, 4), 0);
    assert_true(fx_run_until(fx, committed_all, NULL, 500));
    assert_int_equal(raft_config_get(raft_config(l->r), 4)->role, RAFT_VOTER);
    assert_int_equal(raft_promote(l->r, 4), -EINVAL);
    assert_int_equal(raft_remove(l->r, 6), -ENOENT);
    /* remove a follower */
    uint64_t victim = l->id % 3 + 1;
    assert_int_equal(raft_remove(l->r, victim), 0);
    assert_true(fx_run_until(fx, committed_all, NULL, 500));
    assert_null(raft_config_get(raft_config(l->r), victim));
    fx_stop(fx, victim);
    /* the group (now l, the other original, 4) still commits */
    uint64_t ok = fx->props_ok;
    assert_int_equal(fx_propose(fx, l->id, 77), 0);
    fx_run(fx, 100);
    assert_int_equal(fx->props_ok, ok + 1);
    /* the leader removes itself: it steps down once that commits, another takes over */
    assert_int_equal(raft_remove(l->r, l->id), 0);
    fx_run(fx, 50);
    assert_int_not_equal(raft_role(l->r), RAFT_LEADER);
    fx_stop(fx, l->id);
    struct fx_node *nl = elect(fx);
    assert_int_equal(raft_config(nl->r)->n, 2);
}

static void test_leader_transfer(void **state)
{
    struct fx *fx = *state;
    struct fx_node *l = elect(fx);
    uint64_t target = l->id % 3 + 1;
    assert_int_equal(fx_propose(fx, l->id, 1), 0);
    assert_int_equal(raft_transfer_leader(l->r, target), 0);
    assert_int_equal(fx_propose(fx, l->id, 2), CURVE_ERR_BUSY); /* paused while transferring */
    assert_false(raft_lease_valid(l->r));                       /* no lease reads any more */
    fx_run(fx, 50); /* far less than an election timeout */
    struct fx_node *nl = fx_leader(fx);
    assert_non_null(nl);
    assert_int_equal(nl->id, target);
    assert_int_not_equal(raft_role(l->r), RAFT_LEADER);
    assert_int_equal(raft_transfer_leader(l->r, 0), CURVE_ERR_NOT_LEADER);
}

static bool fx_committed(struct fx *fx, void *arg)
{
    uint64_t last = *(uint64_t *)arg;
    for (uint32_t i = 0; i < fx->n; i++)
        if (raft_commit_index(fx->nodes[i].r) < last)
            return false;
    return true;
}

/* A slow state machine (every apply takes 3 ms, budget 1 ms) applies one entry per call into
 * the node and yields (cbs.apply_pending, raft_apply at the next step): the nodes keep handling
 * messages, and a leader transfer completes while most committed entries are unapplied (the
 * deposed leader's pending proposals then fail as outcome unknown, all entries still apply). With
 * budget 0 the first call applies the whole backlog (the behaviour the budget replaces). */
static bool fx_committed_leader(struct fx *fx, void *arg)
{
    struct fx_node *l = fx_leader(fx);
    return l != NULL && raft_commit_index(l->r) >= *(uint64_t *)arg && fx->props_ok > 0 &&
           raft_applied_index(l->r) >= *(uint64_t *)arg;
}

static void run_apply_budget(uint32_t budget_us)
{
    struct raft_options o;
    raft_options_default(&o);
    o.election_timeout_ms = 100;
    o.heartbeat_ms = 10;
    o.snapshot_threshold = 0;
    o.apply_budget_us = budget_us;
    struct fx *fx = &g_fx;
    fx_init(fx, 3, 3, &o);
    struct fx_node *l = elect(fx);
    for (uint32_t i = 0; i < fx->n; i++) {
        fx->nodes[i].max_applied_per_call = 0;
        fx->nodes[i].apply_delay_us = 3000;
    }
    for (uint64_t v = 1; v <= 40; v++)
        assert_int_equal(fx_propose(fx, l->id, v), 0);
    uint64_t last = raft_last_index(l->r);
    assert_true(fx_run_until(fx, fx_committed, &last, 100));
    printf("applied on the leader once committed everywhere: %llu of %llu\n",
           (unsigned long long)raft_applied_index(l->r), (unsigned long long)last);
    if (budget_us == 0) {
        assert_int_equal(raft_applied_index(l->r), last);
        assert_true(l->max_applied_per_call >= 20);
        assert_int_equal(l->apply_pending_calls, 0);
        fx_free(fx);
        return;
    }
    assert_true(raft_applied_index(l->r) < last - 20); /* a backlog */
    assert_true(raft_apply_pending(l->r));
    uint64_t target = l->id % 3 + 1;
    assert_int_equal(raft_transfer_leader(l->r, target), 0);
    fx_run(fx, 5); /* far less than an election timeout */
    struct fx_node *nl = fx_leader(fx);
    assert_non_null(nl);
    assert_int_equal(nl->id, target);
    assert_true(raft_applied_index(l->r) < last); /* still applying: transfer did not wait */
    last = raft_last_index(nl->r);                /* with the new leader's first entry */
    assert_true(fx_run_until(fx, fx_all_applied, &last, 1000));
    /* the old leader answered what it applied while leading, and failed the rest at once as
     * "outcome unknown" when it stepped down (it does not make them wait for its slow applies:
     * they commit through the new leader) */
    assert_true(fx->props_ok > 0 && fx->props_failed > 0);
    assert_int_equal(fx->props_ok + fx->props_failed, 40);
    assert_int_equal(fx->last_prop_status, CURVE_ERR_FAILURE_UNKNOWN);
    for (uint32_t i = 0; i < fx->n; i++) {
        struct fx_node *n = &fx->nodes[i];
        assert_int_equal(n->max_applied_per_call, 1);
        assert_true(n->apply_pending_calls >= 5);
        assert_false(raft_apply_pending(n->r));
        for (uint64_t k = 0; k < 40; k++)
            assert_int_equal(n->cmds[k], k + 1);
    }
    fx_free(fx);
}

/* A follower whose state machine is slow (every apply 2 ms, budget 1 ms) stops taking new
 * entries while its in-memory log holds more than max_log_bytes: its memory stays bounded
 * while the leader and the other follower commit everything; it catches up once applying
 * resumes its normal speed. */
static void test_follower_log_bounded(void **state)
{
    (void)state;
    struct raft_options o;
    raft_options_default(&o);
    o.election_timeout_ms = 100;
    o.heartbeat_ms = 10;
    o.snapshot_threshold = 0;
    o.snapshot_threshold_bytes = 64; /* applied entries are compacted soon */
    o.snapshot_trailing = 4;
    o.snapshot_trailing_bytes = 32;
    o.apply_budget_us = 1000;
    o.max_log_bytes = 100000; /* the leader never refuses (8-byte commands) */
    struct fx *fx = &g_fx;
    fx_init(fx, 3, 3, &o);
    struct fx_node *l = elect(fx);
    struct fx_node *slow = fx_node(fx, l->id % 3 + 1);
    uint64_t bound = 8 * 16;
    slow->r->o.max_log_bytes = bound; /* its own bound, set on the running node */
    slow->apply_delay_us = 2000;
    uint64_t max_bytes = 0;
    for (uint64_t v = 1; v <= 400; v++) {
        assert_int_equal(fx_propose(fx, l->id, v), 0);
        if (v % 8 == 0) /* faster than it applies */
            fx_step(fx);
        max_bytes = raft_log_bytes(slow->r) > max_bytes ? raft_log_bytes(slow->r) : max_bytes;
    }
    uint64_t last = raft_last_index(l->r);
    assert_true(fx_run_until(fx, fx_committed_leader, &last, 100));
    assert_int_equal(fx->props_ok, 400); /* committed and applied with the other follower */
    /* at most the bound plus one message of entries (64 × 8 bytes) */
    assert_true(max_bytes <= bound + 64 * 8);
    assert_true(slow->r->follower_refused > 0);
    assert_true(raft_last_index(slow->r) < last); /* it did not take everything */
    slow->apply_delay_us = 0;
    assert_true(fx_run_until(fx, fx_all_applied, &last, 2000));
    /* same state as the leader (it may have caught up from a snapshot of the leader's) */
    assert_memory_equal(slow->files, l->files, sizeof(l->files));
    fx_free(fx);
}

static void test_apply_budget_yields(void **state)
{
    (void)state;
    run_apply_budget(1000);
    run_apply_budget(0);
}

/* A leader whose storage fails (raft_fail from the owner, e.g. a state machine disk error, or a
 * failed log append) gives up its leadership at once: TimeoutNow to the most up-to-date voter
 * (a new leader well within one election timeout), follower without a leader, pending
 * proposals failed; then it never campaigns, votes or disturbs the new leader. */
static void check_failed_leader(struct fx *fx, struct fx_node *l, uint32_t changes_before)
{
    assert_int_not_equal(raft_failed(l->r), 0);
    fx_run(fx, 50); /* far less than an election timeout (100 ms): only TimeoutNow does that */
    struct fx_node *nl = fx_leader(fx);
    assert_non_null(nl);
    assert_int_not_equal(nl->id, l->id);
    assert_int_not_equal(raft_role(l->r), RAFT_LEADER);
    assert_int_equal(raft_leader(l->r), 0);
    assert_true(l->state_changes > changes_before); /* the owner was told */
    assert_int_equal(fx_propose(fx, l->id, 9), raft_failed(l->r));
    /* the two healthy nodes commit without it */
    uint64_t term = raft_term(nl->r), l_term = raft_term(l->r);
    assert_int_equal(fx_propose(fx, nl->id, 3), 0);
    uint64_t idx = raft_last_index(nl->r);
    fx_run(fx, 100);
    assert_true(raft_applied_index(nl->r) >= idx);
    /* many election timeouts later: same leader and term, the failed node stayed silent */
    fx_run(fx, 2000);
    assert_ptr_equal(fx_leader(fx), nl);
    assert_int_equal(raft_term(nl->r), term);
    assert_int_equal(raft_term(l->r), l_term);
    assert_int_equal(count_leaders(fx), 1);
}

static void test_failed_leader_hands_over(void **state)
{
    struct fx *fx = *state;
    struct fx_node *l = elect(fx);
    assert_int_equal(fx_propose(fx, l->id, 1), 0);
    fx_run(fx, 50);
    uint32_t changes = l->state_changes;
    fx->props_failed = 0;
    assert_int_equal(fx_propose(fx, l->id, 2), 0); /* still pending when the disk fails */
    assert_int_equal(raft_fail(l->r, -EIO), -EIO);
    assert_int_equal(raft_fail(l->r, -ENOSPC), -EIO); /* the first error is kept */
    fx_step(fx);
    assert_int_equal(raft_role(l->r), RAFT_FOLLOWER); /* stepped down at its next tick */
    assert_int_equal(fx->props_failed, 1);
    assert_int_equal(fx->last_prop_status, CURVE_ERR_FAILURE_UNKNOWN);
    check_failed_leader(fx, l, changes);
}

static void test_failed_append_steps_down(void **state)
{
    struct fx *fx = *state;
    struct fx_node *l = elect(fx);
    assert_int_equal(fx_propose(fx, l->id, 1), 0);
    fx_run(fx, 50);
    uint32_t changes = l->state_changes;
    raft_io_append_done(l->r, raft_last_index(l->r), -ENOSPC); /* the log write failed */
    assert_int_equal(raft_failed(l->r), -ENOSPC);
    assert_int_equal(raft_role(l->r), RAFT_FOLLOWER); /* at once, in the completion */
    check_failed_leader(fx, l, changes);
}

static bool installed(struct fx *fx, void *arg)
{
    return fx_node(fx, *(uint64_t *)arg)->installs > 0;
}

static void test_snapshot_install(void **state)
{
    struct fx *fx = *state;
    struct raft_options o = fx->opts;
    fx_free(fx);
    o.snapshot_threshold = 20;
    o.snapshot_trailing = 2;
    o.snapshot_piece_bytes = 32; /* 2 files x 128 bytes: 8 pieces */
    o.snapshot_max_inflight = 2;
    o.snapshot_bytes_per_sec = 64000;
    fx_init(fx, 3, 3, &o);
    struct fx_node *l = elect(fx);
    uint64_t lagger = l->id % 3 + 1;
    fx_isolate(fx, lagger, true);
    for (uint64_t v = 1; v <= 60; v++) {
        assert_int_equal(fx_propose(fx, l->id, v), 0);
        fx_step(fx);
    }
    fx_run(fx, 50);
    struct raft_status st;
    raft_status(l->r, &st);
    assert_true(st.snapshot_index >= 40);
    assert_true(st.first_index > 2); /* compacted */
    fx_isolate(fx, lagger, false);
    assert_true(fx_run_until(fx, installed, &lagger, 2000));
    assert_true(l->sent_snapshot_pieces >= 8);
    uint64_t last = raft_last_index(l->r);
    assert_true(fx_run_until(fx, fx_all_applied, &last, 2000));
    struct fx_node *n = fx_node(fx, lagger);
    assert_memory_equal(n->files, l->files, sizeof(n->files));
    raft_status(n->r, &st);
    assert_true(st.snapshot_index > 0);
    /* the follower restarts from its snapshot and the log after it */
    fx_stop(fx, lagger);
    fx_start(fx, lagger);
    assert_int_equal(fx_propose(fx, l->id, 1000), 0);
    last = raft_last_index(l->r);
    assert_true(fx_run_until(fx, fx_all_applied, &last, 2000));
    assert_memory_equal(n->files, l->files, sizeof(n->files));
}

/* A leader whose snapshot transfer is running (slow throttle) and whose state machine replaces
 * the snapshot meanwhile (the older files are deleted): snapshot_read of the old snapshot fails,
 * and the transfer must move to the newer snapshot and finish with it (not retry forever). */
static struct raft_options snapshot_opts(struct fx *fx)
{
    struct raft_options o = fx->opts;
    o.snapshot_threshold = 20;
    o.snapshot_trailing = 2;
    o.snapshot_piece_bytes = 32; /* 2 files x 128 bytes: 8 pieces */
    o.snapshot_max_inflight = 1;
    o.snapshot_bytes_per_sec = 500; /* 32 bytes every 64 ms: the transfer takes ~0.5 s */
    return o;
}

struct pieces_arg {
    uint64_t leader;
    uint32_t min;
};

static bool pieces_sent(struct fx *fx, void *arg)
{
    struct pieces_arg *a = arg;
    return fx_node(fx, a->leader)->sent_snapshot_pieces >= a->min;
}

static bool leader_applied(struct fx *fx, void *arg)
{
    struct pieces_arg *a = arg;
    return fx_node(fx, a->leader)->applied >= a->min;
}

/* Isolates a follower, commits 60 entries (snapshots, log compacted), reconnects it. */
static struct fx_node *lagging_follower(struct fx *fx, uint64_t *lagger)
{
    struct raft_options o = snapshot_opts(fx);
    fx_free(fx);
    fx_init(fx, 3, 3, &o);
    fx->versioned_files = true;
    struct fx_node *l = elect(fx);
    *lagger = l->id % 3 + 1;
    fx_isolate(fx, *lagger, true);
    for (uint64_t v = 1; v <= 60; v++) {
        assert_int_equal(fx_propose(fx, l->id, v), 0);
        fx_step(fx);
    }
    fx_run(fx, 50);
    struct raft_status st;
    raft_status(l->r, &st);
    assert_true(st.snapshot_index >= 40 && st.first_index > 2);
    fx_isolate(fx, *lagger, false);
    return l;
}

static void test_snapshot_transfer_moves_to_newer(void **state)
{
    struct fx *fx = *state;
    uint64_t lagger;
    struct fx_node *l = lagging_follower(fx, &lagger);
    uint64_t old_snap = l->snap_files;
    struct pieces_arg pa = {l->id, l->sent_snapshot_pieces + 2};
    assert_true(fx_run_until(fx, pieces_sent, &pa, 2000)); /* the transfer is in its pieces */
    assert_int_equal(fx_node(fx, lagger)->installs, 0);
    for (uint64_t v = 100; v < 125; v++) { /* the leader snapshots again: old files deleted */
        assert_int_equal(fx_propose(fx, l->id, v), 0);
        fx_step(fx);
    }
    uint64_t last = raft_last_index(l->r);
    struct pieces_arg aa = {l->id, (uint32_t)last};
    assert_true(fx_run_until(fx, leader_applied, &aa, 200));
    assert_true(l->snap_files > old_snap);
    assert_int_equal(fx_node(fx, lagger)->installs, 0); /* still transferring */
    assert_true(fx_run_until(fx, installed, &lagger, 3000));
    struct fx_node *n = fx_node(fx, lagger);
    assert_int_equal(n->snap.index, l->snap_files); /* the newer snapshot was installed */
    assert_true(l->failed_reads >= 1);
    assert_true(l->r->xfer_switches >= 1);
    assert_int_equal(l->r->xfer_abandons, 0);
    assert_true(fx_run_until(fx, fx_all_applied, &last, 2000));
    assert_memory_equal(n->files, l->files, sizeof(n->files));
}

/* snapshot_read keeps failing on the newest snapshot: the transfer gives up after
 * RAFT_MAX_SNAPSHOT_READ_FAILURES attempts, backs off one election timeout, and succeeds once
 * the reads work again. */
static void test_snapshot_read_failures_bounded(void **state)
{
    struct fx *fx = *state;
    uint64_t lagger;
    struct fx_node *l = lagging_follower(fx, &lagger);
    l->read_errors = 1000;
    assert_true(fx_run_until(fx, fx_has_leader, NULL, 10)); /* leader still */
    uint32_t before = l->failed_reads;
    for (uint32_t i = 0; i < 2000 && l->r->xfer_abandons == 0; i++)
        fx_step(fx);
    assert_int_equal(l->r->xfer_abandons, 1);
    assert_int_equal(l->failed_reads - before, RAFT_MAX_SNAPSHOT_READ_FAILURES);
    /* backing off: no read for most of an election timeout */
    uint32_t mark = l->failed_reads;
    fx_run(fx, fx->opts.election_timeout_ms - 10);
    assert_int_equal(l->failed_reads, mark);
    assert_int_equal(fx_node(fx, lagger)->installs, 0);
    /* then it tries again, gives up again, ... until the reads work */
    for (uint32_t i = 0; i < 2000 && l->r->xfer_abandons < 2; i++)
        fx_step(fx);
    assert_int_equal(l->r->xfer_abandons, 2);
    l->read_errors = 0;
    assert_true(fx_run_until(fx, installed, &lagger, 3000));
    uint64_t last = raft_last_index(l->r);
    assert_true(fx_run_until(fx, fx_all_applied, &last, 2000));
    assert_memory_equal(fx_node(fx, lagger)->files, l->files, sizeof(l->files));
}

static void test_reset_peers(void **state)
{
    struct fx *fx = *state;
    struct fx_node *l = elect(fx);
    assert_int_equal(fx_propose(fx, l->id, 1), 0);
    fx_run(fx, 20);
    uint64_t survivor = l->id % 3 + 1;
    for (uint64_t id = 1; id <= 3; id++)
        if (id != survivor)
            fx_stop(fx, id);
    fx_run(fx, 500);
    assert_null(fx_leader(fx)); /* no majority */
    assert_int_equal(raft_reset_peers(fx_node(fx, survivor)->r), 0);
    struct fx_node *nl = elect(fx);
    assert_int_equal(nl->id, survivor);
    assert_int_equal(raft_config(nl->r)->n, 1);
    uint64_t ok = fx->props_ok;
    assert_int_equal(fx_propose(fx, survivor, 2), 0);
    fx_run(fx, 10);
    assert_int_equal(fx->props_ok, ok + 1);
}

static void test_restart_keeps_state(void **state)
{
    struct fx *fx = *state;
    struct fx_node *l = elect(fx);
    for (uint64_t v = 1; v <= 5; v++)
        assert_int_equal(fx_propose(fx, l->id, v), 0);
    uint64_t last = raft_last_index(l->r);
    assert_true(fx_run_until(fx, fx_all_applied, &last, 500));
    uint64_t term = raft_term(l->r);
    for (uint64_t id = 1; id <= 3; id++)
        fx_stop(fx, id);
    for (uint64_t id = 1; id <= 3; id++) {
        fx_node(fx, id)->applied = 0;
        fx_node(fx, id)->ncmds = 0;
        fx_start(fx, id);
        assert_true(raft_term(fx_node(fx, id)->r) >= term);
        assert_int_equal(raft_last_index(fx_node(fx, id)->r), last);
    }
    struct fx_node *nl = elect(fx);
    assert_true(raft_term(nl->r) > term);
    last = raft_last_index(nl->r);
    assert_true(fx_run_until(fx, fx_all_applied, &last, 500));
    for (uint64_t id = 1; id <= 3; id++)
        assert_int_equal(fx_node(fx, id)->ncmds, 5); /* re-applied after the restart */
}

static void test_bad_messages(void **state)
{
    struct fx *fx = *state;
    struct raft *r = fx_node(fx, 1)->r;
    struct raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_APPEND_ENTRIES;
    m.group_id = 1;
    m.from = 2;
    m.to = 1;
    m.term = 5;
    assert_int_equal(raft_recv(r, &m), 0);
    struct raft_msg b = m;
    b.group_id = 99;
    assert_int_equal(raft_recv(r, &b), CURVE_ERR_RPC_BADREQ);
    b = m;
    b.type = 42;
    assert_int_equal(raft_recv(r, &b), CURVE_ERR_RPC_BADREQ);
    b = m;
    b.from = 1; /* from myself */
    assert_int_equal(raft_recv(r, &b), CURVE_ERR_RPC_BADREQ);
    b = m;
    b.ae.n = 3;
    b.ae.entries = NULL;
    assert_int_equal(raft_recv(r, &b), CURVE_ERR_RPC_BADREQ);
    b = m;
    b.ae.n = RAFT_MAX_ENTRIES_PER_MSG + 1;
    assert_int_equal(raft_recv(r, &b), CURVE_ERR_RPC_BADREQ);
    struct raft_entry e = {.term = 6, .type = RAFT_ENTRY_COMMAND, .len = 0}; /* term > msg */
    b = m;
    b.ae.n = 1;
    b.ae.entries = &e;
    assert_int_equal(raft_recv(r, &b), CURVE_ERR_RPC_BADREQ);
    uint8_t junk[5] = {1, 3, 0, 0, 0};
    struct raft_entry ce = {.term = 5, .type = RAFT_ENTRY_CONFIG, .len = 5, .data = junk};
    b.ae.entries = &ce;
    assert_int_equal(raft_recv(r, &b), CURVE_ERR_RPC_BADREQ);
    struct raft_entry te = {.term = 5, .type = 9};
    b.ae.entries = &te;
    assert_int_equal(raft_recv(r, &b), CURVE_ERR_RPC_BADREQ);
    b = m;
    b.type = RAFT_MSG_INSTALL_SNAPSHOT;
    b.snap.kind = 7;
    assert_int_equal(raft_recv(r, &b), CURVE_ERR_RPC_BADREQ);
    b.snap.kind = RAFT_SNAP_BEGIN;
    b.snap.meta.index = 10;
    b.snap.meta.term = 5;
    b.snap.len = 8;
    b.snap.data = "garbage!"; /* a corrupt manifest is refused with an error reply */
    assert_int_equal(raft_recv(r, &b), 0);
    assert_int_equal(raft_recv(r, NULL), CURVE_ERR_RPC_BADREQ);
    /* the node still works */
    fx_run(fx, 10);
    assert_non_null(elect(fx));
}

static void test_config_codec(void **state)
{
    struct raft_config c = {0}, d;
    c.n = 3;
    for (uint32_t i = 0; i < 3; i++) {
        c.s[i].id = 100 + i;
        c.s[i].role = i == 2 ? RAFT_LEARNER : RAFT_VOTER;
    }
    uint8_t buf[RAFT_CONFIG_ENCODED_MAX];
    size_t len = raft_config_encode(&c, buf);
    assert_int_equal(len, 2 + 3 * 9);
    assert_int_equal(raft_config_decode(buf, len, &d), 0);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.s[2].id, 102);
    assert_int_equal(d.s[2].role, RAFT_LEARNER);
    assert_int_equal(raft_config_decode(buf, len - 1, &d), CURVE_ERR_CORRUPT);
    buf[0] = 2;
    assert_int_equal(raft_config_decode(buf, len, &d), CURVE_ERR_CORRUPT);
    buf[0] = 1;
    buf[2 + 9 + 8] = 7; /* bad role */
    assert_int_equal(raft_config_decode(buf, len, &d), CURVE_ERR_CORRUPT);
    c.s[1].id = 100; /* duplicate id */
    len = raft_config_encode(&c, buf);
    assert_int_equal(raft_config_decode(buf, len, &d), CURVE_ERR_CORRUPT);
    assert_int_equal(raft_config_decode(NULL, 0, &d), CURVE_ERR_CORRUPT);
}

static void test_bad_options(void **state)
{
    struct fx *fx = *state;
    struct raft_options o;
    raft_options_default(&o);
    struct fx_node *n = fx_node(fx, 1);
    struct raft *r = NULL;
    assert_int_equal(raft_new(&o, &n->io, &n->fsm, NULL, &r), -EINVAL); /* id 0 */
    o.id = 9;
    o.heartbeat_ms = o.election_timeout_ms;
    assert_int_equal(raft_new(&o, &n->io, &n->fsm, NULL, &r), -EINVAL);
    raft_options_default(&o);
    o.id = 9;
    struct raft_io io = n->io;
    io.version = 99;
    assert_int_equal(raft_new(&o, &io, &n->fsm, NULL, &r), -EINVAL);
    assert_int_equal(raft_new(&o, &n->io, &n->fsm, NULL, &r), 0);
    raft_free(r);
}

/* ---- follower log matching with hand-made AppendEntries --------------------------------- */

static void cut_all(struct fx *fx, bool cut);

static const struct raft_msg *last_sent(struct fx *fx, uint8_t type)
{
    for (uint32_t i = fx->nq; i > 0; i--)
        if (fx->q[i - 1].m.type == type)
            return &fx->q[i - 1].m;
    return NULL;
}

static struct raft_msg ae_msg(uint64_t term, uint64_t prev, uint64_t prev_term, uint64_t commit,
                              const struct raft_entry *e, uint32_t n)
{
    struct raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_APPEND_ENTRIES;
    m.group_id = 1;
    m.from = 2;
    m.to = 1;
    m.term = term;
    m.ae.prev_index = prev;
    m.ae.prev_term = prev_term;
    m.ae.commit = commit;
    m.ae.n = n;
    m.ae.entries = e;
    return m;
}

static void deliver_completions(struct fx *fx, struct fx_node *n)
{
    /* complete the node's disk writes without delivering any message */
    for (uint32_t k = 0; k < n->npend_meta; k++) {
        n->term = n->pend_meta_term[k];
        n->vote = n->pend_meta_vote[k];
        raft_io_meta_done(n->r, n->term, n->vote, 0);
    }
    uint32_t na = n->npend_append;
    n->npend_meta = n->npend_append = 0;
    for (uint32_t k = 0; k < na; k++)
        raft_io_append_done(n->r, n->pend_append[k], 0);
}

static void test_log_matching_follower(void **state)
{
    struct fx *fx = *state;
    cut_all(fx, true); /* only our hand-made messages reach node 1 */
    struct fx_node *n = fx_node(fx, 1);
    struct raft *r = n->r;
    deliver_completions(fx, n);
    uint64_t v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    struct raft_entry e[4];
    for (int i = 0; i < 4; i++)
        e[i] = (struct raft_entry){.term = 2, .type = RAFT_ENTRY_COMMAND, .len = 8, .data = &v[i]};
    /* entries 2..4 of term 2 after the bootstrap entry (1, term 1) */
    struct raft_msg m = ae_msg(2, 1, 1, 0, e, 3);
    assert_int_equal(raft_recv(r, &m), 0);
    assert_int_equal(raft_last_index(r), 4);
    assert_int_equal(raft_leader(r), 2);
    /* term 2 is not durable yet: no reply may reveal it */
    assert_null(last_sent(fx, RAFT_MSG_APPEND_ENTRIES_RESULT));
    deliver_completions(fx, n);
    const struct raft_msg *a = last_sent(fx, RAFT_MSG_APPEND_ENTRIES_RESULT);
    assert_non_null(a);
    assert_true(a->aer.success);
    assert_int_equal(a->aer.last_index, 4);
    /* an acknowledgement only covers what is durable */
    m = ae_msg(2, 4, 2, 0, &e[3], 1);
    assert_int_equal(raft_recv(r, &m), 0);
    a = last_sent(fx, RAFT_MSG_APPEND_ENTRIES_RESULT);
    assert_true(a->aer.success);
    assert_int_equal(a->aer.last_index, 4);
    deliver_completions(fx, n);
    a = last_sent(fx, RAFT_MSG_APPEND_ENTRIES_RESULT);
    assert_int_equal(a->aer.last_index, 5);
    /* a gap is rejected with a hint = our last index + 1 */
    m = ae_msg(2, 9, 2, 0, e, 1);
    assert_int_equal(raft_recv(r, &m), 0);
    a = last_sent(fx, RAFT_MSG_APPEND_ENTRIES_RESULT);
    assert_false(a->aer.success);
    assert_int_equal(a->aer.last_index, 9);
    assert_int_equal(a->aer.hint, 6);
    /* a term mismatch at prev is rejected with the first index of our conflicting term */
    m = ae_msg(3, 5, 3, 0, e, 0);
    m.from = 3;
    assert_int_equal(raft_recv(r, &m), 0);
    deliver_completions(fx, n);
    a = last_sent(fx, RAFT_MSG_APPEND_ENTRIES_RESULT);
    assert_false(a->aer.success);
    assert_int_equal(a->aer.hint, 2);
    /* the new leader overwrites the conflicting suffix 3..4 with term-3 entries */
    struct raft_entry e3[2];
    for (int i = 0; i < 2; i++)
        e3[i] =
            (struct raft_entry){.term = 3, .type = RAFT_ENTRY_COMMAND, .len = 8, .data = &v[4 + i]};
    m = ae_msg(3, 2, 2, 2, e3, 2);
    m.from = 3;
    assert_int_equal(raft_recv(r, &m), 0);
    assert_int_equal(raft_last_index(r), 4); /* 5 was removed with the conflicting suffix */
    assert_int_equal(raft_term_at(r, 2), 2);
    assert_int_equal(raft_term_at(r, 3), 3);
    assert_int_equal(raft_term_at(r, 4), 3);
    assert_int_equal(raft_commit_index(r), 2); /* commit bounded by the leader's */
    /* a duplicate (older, shorter) AppendEntries does not truncate anything */
    m = ae_msg(3, 2, 2, 2, e3, 1);
    m.from = 3;
    assert_int_equal(raft_recv(r, &m), 0);
    assert_int_equal(raft_last_index(r), 4);
    /* the commit index never passes the matched prefix of this message */
    m = ae_msg(3, 3, 3, 100, NULL, 0);
    m.from = 3;
    assert_int_equal(raft_recv(r, &m), 0);
    assert_int_equal(raft_commit_index(r), 3);
    deliver_completions(fx, n);
    assert_int_equal(n->applied, 3);
    assert_int_equal(n->ncmds, 2);
    assert_int_equal(n->cmds[0], 1);
    assert_int_equal(n->cmds[1], 5);
    /* a message from a stale term is answered with our term and changes nothing */
    m = ae_msg(2, 4, 2, 4, e, 1);
    assert_int_equal(raft_recv(r, &m), 0);
    a = last_sent(fx, RAFT_MSG_APPEND_ENTRIES_RESULT);
    assert_int_equal(a->term, 3);
    assert_false(a->aer.success);
    assert_int_equal(raft_commit_index(r), 3);
    assert_int_equal(raft_term_at(r, 4), 3);
}

/* ---- Raft Figure 8: committing an old-term entry by counting is unsafe --------------------- */

struct f8 {
    uint64_t id;
    uint64_t index;
};

static bool applied_at_least(struct fx *fx, void *arg)
{
    struct f8 *a = arg;
    return fx_node(fx, a->id)->up && fx_node(fx, a->id)->applied >= a->index;
}

static bool leader_among(struct fx *fx, void *arg)
{
    struct fx_node *l = fx_leader(fx);
    return l && l->id != *(uint64_t *)arg;
}

static void cut_all(struct fx *fx, bool cut)
{
    for (uint64_t id = 1; id <= fx->n; id++)
        fx_isolate(fx, id, cut);
}

/* Drives the schedule of the paper's Figure 8 with three nodes and returns whether two nodes
 * applied different entries at the same index. */
static bool figure8(struct fx *fx, uint32_t unsafe)
{
    struct raft_options o;
    raft_options_default(&o);
    o.election_timeout_ms = 100;
    o.heartbeat_ms = 10;
    o.snapshot_threshold = 0;
    o.max_entries_per_msg = 1; /* the old entry travels without the new leader's no-op */
    o.debug_unsafe = unsafe;
    fx_free(fx); /* replace the setup's cluster */
    fx_init(fx, 3, 3, &o);
    /* (a) leader A with everything committed */
    struct fx_node *a = elect(fx);
    uint64_t ida = a->id;
    /* (b) A alone appends X at index i in term t1 */
    cut_all(fx, true);
    assert_int_equal(fx_propose(fx, ida, 42), 0);
    uint64_t i = raft_last_index(a->r), t1 = raft_term(a->r);
    /* (c) B is elected by B and C; its no-op Y (index i, term t2) stays on B */
    for (uint64_t x = 1; x <= 3; x++)
        for (uint64_t y = 1; y <= 3; y++)
            if (x != ida && y != ida)
                fx->cut[x][y] = false;
    assert_true(fx_run_until(fx, leader_among, &ida, 3000));
    struct fx_node *b = fx_leader(fx);
    uint64_t idb = b->id, idc = 6 - ida - idb;
    cut_all(fx, true);
    assert_int_equal(raft_last_index(b->r), i);
    uint64_t t2 = raft_term_at(b->r, i);
    assert_true(t2 > t1);
    /* (d) A comes back with C, wins term t3 and replicates X to C */
    fx->cut[ida][idc] = fx->cut[idc][ida] = false;
    struct f8 arg = {ida, i};
    bool applied = fx_run_until(fx, applied_at_least, &arg, 3000);
    assert_true(applied);
    assert_int_equal(raft_term_at(a->r, i), t1);
    fx_isolate(fx, ida, true); /* A crashes before its no-op reaches C (if it has not yet) */
    fx_stop(fx, ida);
    /* (e) B and C reconnect; B wins if C lacks A's no-op, and overwrites index i */
    fx->cut[idb][idc] = fx->cut[idc][idb] = false;
    fx_run(fx, 1500);
    struct fx_node *l = fx_leader(fx);
    bool diverged = false;
    if (l != NULL && l->applied >= i && raft_term_at(l->r, i) != t1)
        diverged = true;
    fx_free(fx);
    memset(fx, 0, sizeof(*fx));
    fx_init(fx, 3, 3, NULL); /* for the teardown */
    return diverged;
}

static void test_figure8_safe(void **state)
{
    assert_false(figure8(*state, 0));
}

static void test_figure8_unsafe_commit(void **state)
{
    /* the checker-style assertion fails when the rule of §5.4.2 is disabled */
    assert_true(figure8(*state, RAFT_UNSAFE_COMMIT_OLD_TERMS));
}

int main(void)
{
    curve_log_set_level(CURVE_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_election, setup3, teardown),
        cmocka_unit_test_setup_teardown(test_failed_leader_hands_over, setup3, teardown),
        cmocka_unit_test_setup_teardown(test_failed_append_steps_down, setup3, teardown),
        cmocka_unit_test_setup_teardown(test_replication_and_apply, setup3, teardown),
        cmocka_unit_test_setup_teardown(test_backtracking_and_conflicts, setup3, teardown),
        cmocka_unit_test_setup_teardown(test_log_matching_follower, setup3, teardown),
        cmocka_unit_test_setup_teardown(test_prevote_prevents_disruption, setup3, teardown),
        cmocka_unit_test_setup_teardown(test_check_quorum_step_down, setup3, teardown),
        cmocka_unit_test_setup_teardown(test_lease, setup3, teardown),
        cmocka_unit_test_setup_teardown(test_read_index, setup3, teardown),
        cmocka_unit_test_setup_teardown(test_membership, setup5, teardown),
        cmocka_unit_test_setup_teardown(test_leader_transfer, setup3, teardown),
        cmocka_unit_test(test_apply_budget_yields),
        cmocka_unit_test(test_follower_log_bounded),
        cmocka_unit_test_setup_teardown(test_snapshot_install, setup3, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_transfer_moves_to_newer, setup3, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_read_failures_bounded, setup3, teardown),
        cmocka_unit_test_setup_teardown(test_reset_peers, setup3, teardown),
        cmocka_unit_test_setup_teardown(test_restart_keeps_state, setup3, teardown),
        cmocka_unit_test_setup_teardown(test_bad_messages, setup3, teardown),
        cmocka_unit_test(test_config_codec),
        cmocka_unit_test_setup_teardown(test_figure8_safe, setup3, teardown),
        cmocka_unit_test_setup_teardown(test_figure8_unsafe_commit, setup3, teardown),
        cmocka_unit_test_setup_teardown(test_bad_options, setup3, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
