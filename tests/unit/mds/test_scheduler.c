/* Unit tests: scheduler decisions and operator lifecycle on fake topologies. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "curve/errors.h"
#include "mds/scheduler.h"
#include "mds_test_util.h"

static mds_sched_result res; /* large: static */

static mds_sched_cfg cfg_with(uint32_t max_ops)
{
    mds_sched_cfg cfg;
    mds_sched_cfg_default(&cfg);
    cfg.max_ops_per_run = max_ops;
    return cfg;
}

/* Plays the copyset leader: applies the operator's change to the topology like a finished
 * Raft membership change would (epoch + 1, or the new leader), then lets the table observe. */
static void complete_op(mds_topology *t, mds_optable *ops, const mds_operator *op)
{
    mds_copyset *c = mds_topo_copyset(t, op->pool_id, op->copyset_id);
    mds_operator copy = *op;
    assert_non_null(c);
    switch (copy.type) {
    case MDS_OP_CHANGE_PEER:
        for (uint32_t i = 0; i < c->npeers; i++)
            if (c->peers[i] == copy.old_peer)
                c->peers[i] = copy.new_peer;
        c->epoch++;
        break;
    case MDS_OP_ADD_PEER:
        c->peers[c->npeers++] = copy.new_peer;
        c->epoch++;
        break;
    case MDS_OP_REMOVE_PEER:
        for (uint32_t i = 0; i < c->npeers; i++)
            if (c->peers[i] == copy.old_peer)
                c->peers[i] = c->peers[--c->npeers];
        c->epoch++;
        break;
    case MDS_OP_TRANSFER_LEADER:
        c->leader = copy.new_peer;
        c->term++;
        break;
    }
    if (c->leader != 0 && !mds_copyset_has_peer(c, c->leader))
        c->leader = 0; /* a leader that removed itself steps down (Raft §6) */
    mds_op_event ev;
    assert_int_equal(mds_optable_observe(ops, c, &ev), 1);
    assert_int_equal(ev.outcome, MDS_OP_DONE);
    assert_int_equal(ev.op.id, copy.id);
}

static void complete_all(mds_topology *t, mds_optable *ops)
{
    while (ops->n > 0) {
        mds_operator op = ops->v[0];
        complete_op(t, ops, &op);
    }
}

static const mds_chunkserver *cs(const mds_topology *t, uint32_t id)
{
    return mds_topo_cs(t, id);
}

/* 9 chunkservers (zone0 {1,2,3}, zone1 {4,5,6}, zone2 {7,8,9}), 300 copysets placed. */
static void test_recovery_change_peer(void **state)
{
    mds_topology t;
    mds_optable ops;
    mdst_build(&t, 3, 3, NULL, 1, 300);
    mdst_place(&t, mdst_seed());
    mds_optable_init(&ops, 0);
    mds_sched_cfg cfg = cfg_with(1000);
    mds_topo_cs(&t, 5)->state = MDS_CS_OFFLINE;

    assert_int_equal(mds_sched_recovery(&t, &ops, 1000, &cfg, &res), 0);
    /* one operator per disk: the only possible targets are 4 and 6 (zone of 5) */
    assert_int_equal(res.ops_created, 2);
    assert_int_equal(ops.n, 2);
    assert_int_equal(res.nalerts, 0);
    assert_true(res.skipped_busy > 0);
    assert_true(res.skipped_no_leader > 0); /* copysets led by 5: wait for a new leader */
    bool got4 = false, got6 = false;
    for (size_t i = 0; i < ops.n; i++) {
        const mds_operator *op = &ops.v[i];
        const mds_copyset *c = mds_topo_copyset(&t, op->pool_id, op->copyset_id);
        assert_int_equal(op->type, MDS_OP_CHANGE_PEER);
        assert_int_equal(op->origin, MDS_SCHED_RECOVERY);
        assert_int_equal(op->old_peer, 5);
        assert_true(mds_copyset_has_peer(c, 5));
        assert_int_not_equal(c->leader, 5);
        assert_int_equal(cs(&t, op->new_peer)->zone_id, cs(&t, 5)->zone_id);
        assert_int_equal(op->deadline_ms, 1000 + cfg.change_timeout_ms);
        assert_int_equal(op->start_epoch, c->epoch);
        got4 |= op->new_peer == 4;
        got6 |= op->new_peer == 6;
        /* delivered to the copyset's leader */
        mds_operator out[4];
        assert_int_equal(mds_optable_for_leader(&ops, &t, c->leader, out, 4) >= 1, 1);
    }
    assert_true(got4 && got6);
    /* nothing new while the disks are busy */
    assert_int_equal(mds_sched_recovery(&t, &ops, 2000, &cfg, &res), 0);
    assert_int_equal(res.ops_created, 0);
    /* drive recovery to the end: complete, re-run, until no copyset has 5 */
    int rounds = 0;
    for (; rounds < 300; rounds++) {
        complete_all(&t, &ops);
        /* copysets led by 5 elect a new leader among the survivors */
        for (size_t i = 0; i < t.copysets.n; i++) {
            mds_copyset *c = &t.copysets.v[i];
            if (c->leader == 5)
                c->leader = c->peers[0] == 5 ? c->peers[1] : c->peers[0], c->term++;
        }
        assert_int_equal(mds_sched_recovery(&t, &ops, 3000, &cfg, &res), 0);
        if (res.ops_created == 0)
            break;
        assert_true(res.ops_created <= 2);
    }
    const mds_copyset *left[1];
    assert_int_equal(mds_topo_copysets_of_cs(&t, 5, left, 1), 0);
    assert_true(rounds >= 49); /* 100 replicas, two disks at a time */
    for (size_t i = 0; i < t.copysets.n; i++) {
        const mds_copyset *c = &t.copysets.v[i];
        assert_int_not_equal(cs(&t, c->peers[0])->zone_id, cs(&t, c->peers[1])->zone_id);
        assert_int_not_equal(cs(&t, c->peers[1])->zone_id, cs(&t, c->peers[2])->zone_id);
        assert_int_not_equal(cs(&t, c->peers[0])->zone_id, cs(&t, c->peers[2])->zone_id);
    }
    mds_optable_destroy(&ops);
    mds_topo_destroy(&t);
}

static void test_recovery_majority_lost(void **state)
{
    mds_topology t;
    mds_optable ops;
    mdst_build(&t, 3, 3, NULL, 1, 10);
    mdst_copyset(&t, 1, 1, 4, 7, 1);
    mdst_copyset(&t, 2, 2, 5, 8, 2);
    mds_optable_init(&ops, 0);
    mds_sched_cfg cfg = cfg_with(100);
    mds_topo_cs(&t, 4)->state = MDS_CS_OFFLINE;
    mds_topo_cs(&t, 7)->state = MDS_CS_OFFLINE;
    mds_topo_cs(&t, 5)->state = MDS_CS_UNSTABLE; /* unstable is alive: no recovery */
    assert_int_equal(mds_sched_recovery(&t, &ops, 10, &cfg, &res), 0);
    assert_int_equal(res.ops_created, 0);
    assert_int_equal(ops.n, 0);
    assert_int_equal(res.nalerts, 1);
    assert_int_equal(res.alerts[0].kind, MDS_ALERT_MAJORITY_LOST);
    assert_int_equal(res.alerts[0].copyset_id, 1);
    assert_int_equal(res.alerts[0].alive, 1);
    assert_int_equal(res.alerts[0].npeers, 3);
    assert_string_equal(mds_alert_kind_name(res.alerts[0].kind), "majority_lost");
    /* a retired peer counts as gone too: copyset 2 loses 8, 5 unstable, 2 alive: recover 8 */
    mds_topo_cs(&t, 8)->state = MDS_CS_RETIRED;
    assert_int_equal(mds_sched_recovery(&t, &ops, 10, &cfg, &res), 0);
    assert_int_equal(res.ops_created, 1);
    assert_int_equal(ops.v[0].old_peer, 8);
    assert_int_equal(ops.v[0].new_peer, 9); /* the only online zone2 disk not in the copyset */
    mds_optable_destroy(&ops);
    mds_topo_destroy(&t);
}

static void test_recovery_no_candidate(void **state)
{
    mds_topology t;
    mds_optable ops;
    mdst_build(&t, 3, 1, NULL, 1, 10); /* exactly 3 disks: nowhere to go */
    mdst_copyset(&t, 1, 1, 2, 3, 1);
    mds_optable_init(&ops, 0);
    mds_sched_cfg cfg = cfg_with(100);
    mds_topo_cs(&t, 3)->state = MDS_CS_OFFLINE;
    assert_int_equal(mds_sched_recovery(&t, &ops, 10, &cfg, &res), 0);
    assert_int_equal(res.ops_created, 0);
    assert_int_equal(res.nalerts, 1);
    assert_int_equal(res.alerts[0].kind, MDS_ALERT_NO_CANDIDATE);
    assert_int_equal(res.alerts[0].cs_id, 3);
    mds_optable_destroy(&ops);
    mds_topo_destroy(&t);
}

static void test_rate_limit(void **state)
{
    mds_topology t;
    mds_optable ops;
    mdst_build(&t, 3, 3, NULL, 2, 300); /* 18 disks */
    mdst_place(&t, 3);
    mds_optable_init(&ops, 0);
    mds_sched_cfg cfg = cfg_with(3);
    mds_topo_cs(&t, 1)->state = MDS_CS_OFFLINE;
    assert_int_equal(mds_sched_recovery(&t, &ops, 10, &cfg, &res), 0);
    assert_int_equal(res.ops_created, 3);
    assert_true(res.rate_limited > 0);
    /* every operator on a distinct target disk */
    assert_int_not_equal(ops.v[0].new_peer, ops.v[1].new_peer);
    assert_int_not_equal(ops.v[0].new_peer, ops.v[2].new_peer);
    assert_int_not_equal(ops.v[1].new_peer, ops.v[2].new_peer);
    mds_optable_destroy(&ops);
    mds_topo_destroy(&t);
}

static void test_optable_rules_and_timeout(void **state)
{
    mds_topology t;
    mds_optable ops;
    mdst_build(&t, 3, 3, NULL, 1, 10);
    mdst_copyset(&t, 1, 1, 4, 7, 1);
    mdst_copyset(&t, 2, 2, 5, 8, 2);
    mds_optable_init(&ops, 2);
    mds_operator a = {.type = MDS_OP_CHANGE_PEER, .pool_id = 1, .copyset_id = 1, .old_peer = 7,
                      .new_peer = 9, .deadline_ms = 100};
    uint64_t id = 0;
    assert_int_equal(mds_optable_add(&ops, &a, &id), 0);
    assert_int_equal(id, 1);
    assert_true(mds_optable_cs_busy(&ops, 9));
    assert_false(mds_optable_cs_busy(&ops, 7)); /* the leaving (offline) disk is not held */
    /* same copyset: busy */
    mds_operator b = a;
    b.new_peer = 8;
    assert_int_equal(mds_optable_add(&ops, &b, NULL), CURVE_ERR_BUSY);
    /* same target disk for another copyset: busy */
    b = (mds_operator){.type = MDS_OP_CHANGE_PEER, .pool_id = 1, .copyset_id = 2, .old_peer = 8,
                       .new_peer = 9, .deadline_ms = 200};
    assert_int_equal(mds_optable_add(&ops, &b, NULL), CURVE_ERR_BUSY);
    /* invalid ones */
    b.new_peer = 8;
    assert_int_equal(mds_optable_add(&ops, &b, NULL), -EINVAL);
    b.new_peer = 0;
    assert_int_equal(mds_optable_add(&ops, &b, NULL), -EINVAL);
    b.type = MDS_OP_TRANSFER_LEADER;
    b.new_peer = 5;
    b.deadline_ms = 300;
    assert_int_equal(mds_optable_add(&ops, &b, NULL), 0);
    /* table bound */
    mds_operator c = {.type = MDS_OP_ADD_PEER, .pool_id = 1, .copyset_id = 3, .new_peer = 3};
    assert_int_equal(mds_optable_add(&ops, &c, NULL), -ENOSPC);
    /* nothing expires before its deadline */
    mds_op_event ev[4];
    assert_int_equal(mds_optable_expire(&ops, 99, ev, 4), 0);
    assert_int_equal(mds_optable_expire(&ops, 100, ev, 4), 1);
    assert_int_equal(ev[0].outcome, MDS_OP_EXPIRED);
    assert_int_equal(ev[0].op.copyset_id, 1);
    assert_false(mds_optable_cs_busy(&ops, 9));
    /* the expired copyset is backed off for as long as its timeout (100 ms) */
    assert_true(mds_optable_in_backoff(&ops, 1, 1, 100));
    assert_true(mds_optable_in_backoff(&ops, 1, 1, 199));
    assert_false(mds_optable_in_backoff(&ops, 1, 1, 200));
    assert_false(mds_optable_in_backoff(&ops, 1, 2, 100));
    mds_topo_cs(&t, 7)->state = MDS_CS_OFFLINE;
    mds_sched_cfg cfg = cfg_with(10);
    mds_optable_remove(&ops, 1, 2);
    assert_int_equal(mds_sched_recovery(&t, &ops, 150, &cfg, &res), 0);
    assert_int_equal(res.ops_created, 0);
    assert_int_equal(res.skipped_backoff, 1);
    assert_int_equal(mds_sched_recovery(&t, &ops, 200, &cfg, &res), 0);
    assert_int_equal(res.ops_created, 1);
    mds_topo_cs(&t, 7)->state = MDS_CS_ONLINE;
    mds_optable_remove(&ops, 1, 1);
    b = (mds_operator){.type = MDS_OP_TRANSFER_LEADER, .pool_id = 1, .copyset_id = 2,
                       .old_peer = 2, .new_peer = 5, .deadline_ms = 200};
    assert_int_equal(mds_optable_add(&ops, &b, NULL), 0);
    /* a leader transfer ends when the leader changes; to someone else: failed */
    mds_copyset *c2 = mds_topo_copyset(&t, 1, 2);
    assert_int_equal(mds_optable_observe(&ops, c2, &ev[0]), 0);
    c2->leader = 8;
    c2->term++;
    assert_int_equal(mds_optable_observe(&ops, c2, &ev[0]), 0); /* may still move to 5 */
    c2->epoch++;
    assert_int_equal(mds_optable_observe(&ops, c2, &ev[0]), 1);
    assert_int_equal(ev[0].outcome, MDS_OP_FAILED);
    assert_int_equal(ops.n, 0);
    assert_int_equal(mds_optable_remove(&ops, 1, 2), CURVE_ERR_NOT_FOUND);
    mds_optable_destroy(&ops);
    mds_topo_destroy(&t);
}

static void test_replica_count(void **state)
{
    mds_topology t;
    mds_optable ops;
    mdst_build(&t, 3, 3, NULL, 1, 10);
    mdst_copyset(&t, 1, 1, 4, 7, 1);
    mdst_copyset(&t, 2, 2, 5, 8, 2);
    mdst_copyset(&t, 3, 3, 6, 9, 3);
    mdst_copyset(&t, 4, 1, 5, 9, 1);
    mds_optable_init(&ops, 0);
    mds_sched_cfg cfg = cfg_with(100);
    /* copyset 1 lost a member (2 peers): add one in the missing zone */
    mds_copyset *c1 = mds_topo_copyset(&t, 1, 1);
    c1->npeers = 2; /* {1,4} */
    c1->peers[2] = 0;
    /* copyset 2 has a 4th peer (3, zone0): remove one; 2 is the leader so not 2 */
    mds_copyset *c2 = mds_topo_copyset(&t, 1, 2);
    c2->peers[c2->npeers++] = 3;
    assert_int_equal(mds_sched_replica(&t, &ops, 5, &cfg, &res), 0);
    assert_int_equal(res.ops_created, 2);
    const mds_operator *add = mds_optable_find(&ops, 1, 1);
    const mds_operator *rem = mds_optable_find(&ops, 1, 2);
    assert_non_null(add);
    assert_non_null(rem);
    assert_int_equal(add->type, MDS_OP_ADD_PEER);
    assert_int_equal(cs(&t, add->new_peer)->zone_id, cs(&t, 7)->zone_id);
    assert_int_equal(rem->type, MDS_OP_REMOVE_PEER);
    assert_int_not_equal(rem->old_peer, 2);
    /* 3 has 2 copysets (3 and this one), 5 has 2 (2 and 4), 8 has 1: highest count, lowest id */
    assert_int_equal(rem->old_peer, 3);
    /* an offline extra peer is removed first */
    mds_optable_remove(&ops, 1, 2);
    mds_topo_cs(&t, 8)->state = MDS_CS_OFFLINE;
    assert_int_equal(mds_sched_replica(&t, &ops, 5, &cfg, &res), 0);
    rem = mds_optable_find(&ops, 1, 2);
    assert_non_null(rem);
    assert_int_equal(rem->old_peer, 8);
    /* A copyset left with 4 peers by a balance move that failed (its 10 min back-off): the
     * replica count is repaired after MDS_URGENT_BACKOFF_MS, not after the back-off; balance
     * still waits for all of it. */
    mds_optable_remove(&ops, 1, 2);
    uint64_t t0 = 1000, until = t0 + 600000;
    assert_int_equal(mds_optable_backoff(&ops, 1, 2, t0, until), 0);
    assert_true(mds_optable_in_backoff(&ops, 1, 2, t0 + MDS_URGENT_BACKOFF_MS));
    assert_true(mds_optable_in_urgent_backoff(&ops, 1, 2, t0 + MDS_URGENT_BACKOFF_MS - 1));
    assert_false(mds_optable_in_urgent_backoff(&ops, 1, 2, t0 + MDS_URGENT_BACKOFF_MS));
    assert_int_equal(mds_sched_replica(&t, &ops, t0 + 1, &cfg, &res), 0);
    assert_null(mds_optable_find(&ops, 1, 2));
    assert_int_equal(res.skipped_backoff, 1);
    assert_int_equal(mds_sched_replica(&t, &ops, t0 + MDS_URGENT_BACKOFF_MS, &cfg, &res), 0);
    rem = mds_optable_find(&ops, 1, 2);
    assert_non_null(rem);
    assert_int_equal(rem->type, MDS_OP_REMOVE_PEER);
    mds_optable_destroy(&ops);
    mds_topo_destroy(&t);
}

/* Copyset counts of the online chunkservers: checks within mean +- (range + 1). */
static void check_balanced(const mds_topology *t, double pct)
{
    uint32_t counts[64];
    assert_true(t->css.n <= 64);
    mds_place_copyset_counts(t, counts);
    double mean = 0;
    for (size_t i = 0; i < t->css.n; i++)
        mean += counts[i];
    mean /= (double)t->css.n;
    double range = mean * pct / 100 < 1 ? 1 : mean * pct / 100;
    for (size_t i = 0; i < t->css.n; i++)
        if ((double)counts[i] > mean + range + 1 || (double)counts[i] < mean - range - 1)
            fail_msg("cs %u has %u copysets, mean %.1f", t->css.v[i].id, counts[i], mean);
}

/* 3 zones x 4 servers; the 4th disk of each zone joins after placement. */
static void test_copyset_balance(void **state)
{
    mds_topology t;
    mds_optable ops;
    mdst_build(&t, 3, 4, NULL, 1, 300); /* zone0 {1..4}, zone1 {5..8}, zone2 {9..12} */
    uint32_t late[] = {4, 8, 12};
    for (int i = 0; i < 3; i++)
        mds_topo_cs(&t, late[i])->state = MDS_CS_OFFLINE;
    mdst_place(&t, mdst_seed());
    for (int i = 0; i < 3; i++)
        mds_topo_cs(&t, late[i])->state = MDS_CS_ONLINE;
    mds_optable_init(&ops, 0);
    mds_sched_cfg cfg = cfg_with(100);
    uint32_t before[12];
    mds_place_copyset_counts(&t, before);
    assert_int_equal(before[3], 0);
    assert_int_equal(before[0], 100);

    assert_int_equal(mds_sched_copyset_balance(&t, &ops, 7, &cfg, &res), 0);
    /* one operator per target disk: exactly the three new disks, each from its own zone */
    assert_int_equal(res.ops_created, 3);
    for (size_t i = 0; i < ops.n; i++) {
        const mds_operator *op = &ops.v[i];
        const mds_copyset *c = mds_topo_copyset(&t, op->pool_id, op->copyset_id);
        assert_int_equal(op->type, MDS_OP_CHANGE_PEER);
        assert_int_equal(op->origin, MDS_SCHED_COPYSET_BALANCE);
        assert_true(op->new_peer == 4 || op->new_peer == 8 || op->new_peer == 12);
        assert_int_equal(cs(&t, op->new_peer)->zone_id, cs(&t, op->old_peer)->zone_id);
        assert_int_not_equal(c->leader, op->old_peer);
    }
    /* iterate to convergence */
    int rounds = 0;
    for (; rounds < 500; rounds++) {
        complete_all(&t, &ops);
        assert_int_equal(mds_sched_copyset_balance(&t, &ops, 7, &cfg, &res), 0);
        if (res.ops_created == 0)
            break;
    }
    assert_true(rounds < 500);
    check_balanced(&t, cfg.balance_range_pct);
    /* a balanced cluster gets no operator */
    assert_int_equal(mds_sched_copyset_balance(&t, &ops, 7, &cfg, &res), 0);
    assert_int_equal(res.ops_created, 0);
    /* replicas stay zone-distinct */
    for (size_t i = 0; i < t.copysets.n; i++) {
        const mds_copyset *c = &t.copysets.v[i];
        assert_int_not_equal(cs(&t, c->peers[0])->zone_id, cs(&t, c->peers[1])->zone_id);
        assert_int_not_equal(cs(&t, c->peers[1])->zone_id, cs(&t, c->peers[2])->zone_id);
        assert_int_not_equal(cs(&t, c->peers[0])->zone_id, cs(&t, c->peers[2])->zone_id);
    }
    mds_optable_destroy(&ops);
    mds_topo_destroy(&t);
}

static void leader_counts(const mds_topology *t, uint32_t *leaders)
{
    memset(leaders, 0, t->css.n * sizeof(*leaders));
    for (size_t i = 0; i < t->copysets.n; i++)
        leaders[mds_topo_cs(t, t->copysets.v[i].leader) - t->css.v]++;
}

static void test_leader_balance(void **state)
{
    mds_topology t;
    mds_optable ops;
    mdst_build(&t, 3, 3, NULL, 1, 300);
    mdst_place(&t, mdst_seed());
    /* every copyset led by its zone0 member: 1,2,3 lead 100 each, the rest none */
    for (size_t i = 0; i < t.copysets.n; i++) {
        mds_copyset *c = &t.copysets.v[i];
        for (uint32_t k = 0; k < 3; k++)
            if (cs(&t, c->peers[k])->zone_id == 1)
                c->leader = c->peers[k];
    }
    mds_optable_init(&ops, 0);
    mds_sched_cfg cfg = cfg_with(100);
    assert_int_equal(mds_sched_leader_balance(&t, &ops, 50, &cfg, &res), 0);
    /* targets are disks: one transfer per target: 6 non-leading disks */
    assert_int_equal(res.ops_created, 6);
    for (size_t i = 0; i < ops.n; i++) {
        const mds_operator *op = &ops.v[i];
        const mds_copyset *c = mds_topo_copyset(&t, op->pool_id, op->copyset_id);
        assert_int_equal(op->type, MDS_OP_TRANSFER_LEADER);
        assert_int_equal(op->old_peer, c->leader);
        assert_true(mds_copyset_has_peer(c, op->new_peer));
        assert_int_not_equal(cs(&t, op->new_peer)->zone_id, 1);
        assert_int_equal(op->deadline_ms, 50 + cfg.transfer_timeout_ms);
    }
    int rounds = 0;
    for (; rounds < 500; rounds++) {
        complete_all(&t, &ops);
        assert_int_equal(mds_sched_leader_balance(&t, &ops, 50, &cfg, &res), 0);
        if (res.ops_created == 0)
            break;
    }
    assert_true(rounds < 500);
    uint32_t leaders[9];
    leader_counts(&t, leaders);
    double mean = 300.0 / 9, range = mean * cfg.leader_range_pct / 100;
    for (int i = 0; i < 9; i++)
        if (leaders[i] > mean + range + 1 || leaders[i] < mean - range - 2)
            fail_msg("cs %d leads %u (mean %.1f)", i + 1, leaders[i], mean);
    /* offline members never receive leadership */
    mds_topo_cs(&t, 9)->state = MDS_CS_OFFLINE;
    for (size_t i = 0; i < t.copysets.n; i++) {
        mds_copyset *c = &t.copysets.v[i];
        c->leader = c->peers[0] == 9 ? c->peers[1] : c->peers[0];
    }
    assert_int_equal(mds_sched_leader_balance(&t, &ops, 60, &cfg, &res), 0);
    for (size_t i = 0; i < ops.n; i++)
        assert_int_not_equal(ops.v[i].new_peer, 9);
    /* an ONLINE member not heard from within leader_target_fresh_ms (cut off, not yet
     * unstable) never receives leadership either; the others still do */
    mds_optable_destroy(&ops);
    mds_optable_init(&ops, 0);
    mds_topo_cs(&t, 9)->state = MDS_CS_ONLINE;
    for (size_t i = 0; i < t.css.n; i++)
        t.css.v[i].last_hb_ms = 10000;
    mds_topo_cs(&t, 8)->last_hb_ms = 7000; /* 3 s ago */
    cfg.leader_target_fresh_ms = 2500;
    assert_int_equal(mds_sched_leader_balance(&t, &ops, 10000, &cfg, &res), 0);
    assert_true(res.ops_created > 0);
    bool to9 = false;
    for (size_t i = 0; i < ops.n; i++) {
        assert_int_not_equal(ops.v[i].new_peer, 8);
        to9 = to9 || ops.v[i].new_peer == 9;
    }
    assert_true(to9);
    mds_optable_destroy(&ops);
    mds_topo_destroy(&t);
}

/* A cluster of 120 disks (3 zones x 10 servers x 4 disks) with 4000 copysets: one disk dies,
 * recovery runs to completion with the default rate limit, placement rules still hold and
 * the dead disk's replicas are spread over many disks of its zone. */
static void test_scale_recovery(void **state)
{
    mds_topology t;
    mds_optable ops;
    mdst_build(&t, 3, 10, NULL, 4, 4000);
    mdst_place(&t, mdst_seed());
    mds_optable_init(&ops, 0);
    mds_sched_cfg cfg;
    mds_sched_cfg_default(&cfg);
    uint32_t before[120], after[120];
    mds_place_copyset_counts(&t, before);
    const uint32_t dead = 17;
    const mds_copyset *tmp[1];
    size_t lost = mds_topo_copysets_of_cs(&t, dead, tmp, 1);
    assert_true(lost >= 90 && lost <= 110);
    mds_topo_cs(&t, dead)->state = MDS_CS_OFFLINE;
    /* copysets led by the dead disk elect another leader */
    for (size_t i = 0; i < t.copysets.n; i++) {
        mds_copyset *c = &t.copysets.v[i];
        if (c->leader == dead)
            c->leader = c->peers[0] == dead ? c->peers[1] : c->peers[0];
    }
    int runs = 0;
    for (; runs < 100; runs++) {
        assert_int_equal(mds_sched_recovery(&t, &ops, (uint64_t)runs, &cfg, &res), 0);
        assert_int_equal(res.nalerts, 0);
        assert_true(res.ops_created <= cfg.max_ops_per_run);
        if (res.ops_created == 0 && ops.n == 0)
            break;
        complete_all(&t, &ops);
    }
    assert_int_equal(mds_topo_copysets_of_cs(&t, dead, tmp, 1), 0);
    assert_true(runs >= (int)(lost / cfg.max_ops_per_run));
    mds_place_copyset_counts(&t, after);
    size_t receivers = 0;
    for (size_t i = 0; i < t.css.n; i++) {
        if (after[i] > before[i]) {
            receivers++;
            assert_int_equal(t.css.v[i].zone_id, cs(&t, dead)->zone_id);
            assert_true(after[i] - before[i] <= 6); /* spread, not piled on one disk */
        }
    }
    assert_true(receivers >= 20);
    for (size_t i = 0; i < t.copysets.n; i++) {
        const mds_copyset *c = &t.copysets.v[i];
        assert_int_not_equal(cs(&t, c->peers[0])->zone_id, cs(&t, c->peers[1])->zone_id);
        assert_int_not_equal(cs(&t, c->peers[1])->zone_id, cs(&t, c->peers[2])->zone_id);
        assert_int_not_equal(cs(&t, c->peers[0])->zone_id, cs(&t, c->peers[2])->zone_id);
    }
    mds_optable_destroy(&ops);
    mds_topo_destroy(&t);
}

/* Invariants that must hold after every step of the simulation below. */
static void check_invariants(const mds_topology *t, const mds_optable *ops, uint64_t now)
{
    for (size_t i = 0; i < ops->n; i++) {
        const mds_operator *a = &ops->v[i];
        if (i > 0) /* one operator per copyset (the table is sorted by group id) */
            assert_true(mds_group_id(ops->v[i - 1].pool_id, ops->v[i - 1].copyset_id) <
                        mds_group_id(a->pool_id, a->copyset_id));
        for (size_t k = 0; k < i; k++) /* one operator per disk */
            assert_int_not_equal(mds_op_disk(a), mds_op_disk(&ops->v[k]));
        assert_true(a->deadline_ms > now);
    }
    for (size_t i = 0; i < t->copysets.n; i++) {
        const mds_copyset *c = &t->copysets.v[i];
        assert_int_equal(c->npeers, 3);
        for (uint32_t a = 0; a < 3; a++)
            for (uint32_t b = 0; b < a; b++)
                assert_int_not_equal(cs(t, c->peers[a])->zone_id, cs(t, c->peers[b])->zone_id);
        assert_true(c->leader == 0 || mds_copyset_has_peer(c, c->leader));
    }
}

static uint32_t alive_peers(const mds_topology *t, const mds_copyset *c)
{
    uint32_t n = 0;
    for (uint32_t k = 0; k < c->npeers; k++)
        n += cs(t, c->peers[k])->state != MDS_CS_OFFLINE;
    return n;
}

/*
 * Randomized simulation (seeded, replayable): disks die and come back, leaders fail over,
 * leaders run operators with random delays or never, operators expire; all four schedulers run
 * every step. Invariants hold at every step; a copyset that lost its majority never gets an
 * operator; at the end, with one disk dead for good, recovery empties it and balance holds.
 */
static void test_random_simulation(void **state)
{
    mds_topology t;
    mds_optable ops;
    mds_rng rng;
    uint64_t seed = mdst_seed();
    mds_rng_seed(&rng, seed);
    mdst_build(&t, 3, 3, NULL, 2, 360); /* 18 disks */
    mdst_place(&t, seed);
    mds_optable_init(&ops, 0);
    mds_sched_cfg cfg = cfg_with(8);
    cfg.change_timeout_ms = 20000;
    cfg.transfer_timeout_ms = 5000;
    uint64_t now = 1000;
    size_t majority_alerts = 0, created = 0;
    mds_op_event ev[64];
    const int steps = 300;
    for (int step = 0; step < steps + 200; step++, now += 1000) {
        bool chaos = step < steps;
        /* disks fail and return (at most 3 down at a time); at the end disk 5 dies for good */
        uint32_t victim = 1 + mds_rng_below(&rng, 18);
        size_t down = 0;
        for (size_t i = 0; i < t.css.n; i++)
            down += t.css.v[i].state == MDS_CS_OFFLINE;
        if (chaos && mds_rng_below(&rng, 10) == 0 && down < 3)
            mds_topo_cs(&t, victim)->state = MDS_CS_OFFLINE;
        else if (chaos && mds_rng_below(&rng, 8) == 0)
            mds_topo_cs(&t, victim)->state = MDS_CS_ONLINE;
        if (step == steps) {
            for (size_t i = 0; i < t.css.n; i++)
                t.css.v[i].state = MDS_CS_ONLINE;
            mds_topo_cs(&t, 5)->state = MDS_CS_OFFLINE;
        }
        /* leader failover where a majority is alive */
        for (size_t i = 0; i < t.copysets.n; i++) {
            mds_copyset *c = &t.copysets.v[i];
            if (c->leader != 0 && cs(&t, c->leader)->state != MDS_CS_OFFLINE)
                continue;
            c->leader = 0;
            if (alive_peers(&t, c) >= 2) {
                for (uint32_t k = 0; k < 3 && c->leader == 0; k++)
                    if (cs(&t, c->peers[k])->state != MDS_CS_OFFLINE)
                        c->leader = c->peers[k];
                c->term++;
            }
        }
        /* leaders run operators: done now (1/2), later, or never (expire) */
        for (size_t i = 0; i < ops.n;) {
            mds_operator op = ops.v[i];
            const mds_copyset *c = mds_topo_copyset(&t, op.pool_id, op.copyset_id);
            bool can = c->leader != 0 && cs(&t, c->leader)->state != MDS_CS_OFFLINE &&
                       (op.new_peer == 0 || cs(&t, op.new_peer)->state != MDS_CS_OFFLINE) &&
                       op.start_epoch == c->epoch && op.copyset_id % 7 != 0;
            if (can && mds_rng_below(&rng, 2) == 0) {
                complete_op(&t, &ops, &op);
                continue; /* removed: the next operator moved into slot i */
            }
            i++;
        }
        mds_optable_expire(&ops, now, ev, 64);
        size_t before = ops.n;
        mds_sched_result r;
        assert_int_equal(mds_sched_recovery(&t, &ops, now, &cfg, &r), 0);
        for (size_t a = 0; a < r.nalerts; a++) {
            /* an operator from before the loss may still wait for its deadline; none is new */
            const mds_operator *op =
                mds_optable_find(&ops, r.alerts[a].pool_id, r.alerts[a].copyset_id);
            if (r.alerts[a].kind == MDS_ALERT_MAJORITY_LOST && op != NULL)
                assert_true(op->created_ms < now);
        }
        majority_alerts += r.nalerts;
        assert_int_equal(mds_sched_replica(&t, &ops, now, &cfg, &r), 0);
        assert_int_equal(r.ops_created, 0); /* nothing changes the replica count here */
        assert_int_equal(mds_sched_copyset_balance(&t, &ops, now, &cfg, &r), 0);
        assert_int_equal(mds_sched_leader_balance(&t, &ops, now, &cfg, &r), 0);
        /* new operators: majority alive, live leader, online target */
        for (size_t i = 0; i < ops.n; i++) {
            const mds_operator *op = &ops.v[i];
            if (op->created_ms != now)
                continue;
            const mds_copyset *c = mds_topo_copyset(&t, op->pool_id, op->copyset_id);
            assert_true(alive_peers(&t, c) >= 2);
            assert_true(c->leader != 0 && cs(&t, c->leader)->state != MDS_CS_OFFLINE);
            assert_int_equal(cs(&t, op->new_peer)->state, MDS_CS_ONLINE);
        }
        created += ops.n > before ? ops.n - before : 0;
        check_invariants(&t, &ops, now);
    }
    fprintf(stderr, "# %zu operators created, %zu alerts\n", created, majority_alerts);
    assert_true(created > 100);
    /* disk 5 has been dead for 200 steps: every replica moved (copysets whose id is a
     * multiple of 7 never run operators in this simulation: they stay) */
    const mds_copyset *list[700];
    size_t n5 = mds_topo_copysets_of_cs(&t, 5, list, 700);
    for (size_t i = 0; i < n5; i++) {
        const mds_copyset *c = list[i];
        if (c->id % 7 != 0) {
            const mds_operator *op = mds_optable_find(&ops, c->pool_id, c->id);
            mds_sched_result rr;
            mds_sched_recovery(&t, &ops, now, &cfg, &rr);
            fprintf(stderr, "created %zu busy %zu noleader %zu rl %zu alerts %zu ops %zu\n",
                    rr.ops_created, rr.skipped_busy, rr.skipped_no_leader, rr.rate_limited,
                    rr.nalerts, ops.n);
            for (size_t k = 0; k < ops.n; k++)
                fprintf(stderr, "op %u %s %u->%u\n", ops.v[k].copyset_id,
                        mds_op_type_name(ops.v[k].type), ops.v[k].old_peer, ops.v[k].new_peer);
            for (uint32_t k = 1; k <= 18; k++)
                fprintf(stderr, "cs %u state %d\n", k, cs(&t, k)->state);
            fail_msg("copyset %u peers %u,%u,%u leader %u epoch %llu op %s", c->id, c->peers[0],
                     c->peers[1], c->peers[2], c->leader, (unsigned long long)c->epoch,
                     op ? mds_op_type_name(op->type) : "none");
        }
    }
    mds_optable_destroy(&ops);
    mds_topo_destroy(&t);
}

/* Many operators in random order: lookups, sortedness, removal keep working. */
static void test_optable_many(void **state)
{
    mds_optable ops;
    mds_rng rng;
    mds_rng_seed(&rng, mdst_seed());
    mds_optable_init(&ops, 1000);
    uint32_t ids[500];
    for (uint32_t i = 0; i < 500; i++)
        ids[i] = i + 1;
    for (uint32_t i = 500; i > 1; i--) { /* shuffle copyset ids */
        uint32_t j = mds_rng_below(&rng, i), tmp = ids[i - 1];
        ids[i - 1] = ids[j];
        ids[j] = tmp;
    }
    for (uint32_t i = 0; i < 500; i++) {
        mds_operator op = {.type = MDS_OP_ADD_PEER, .pool_id = 1 + ids[i] % 2,
                           .copyset_id = ids[i], .new_peer = 1000 + i, .deadline_ms = ids[i]};
        assert_int_equal(mds_optable_add(&ops, &op, NULL), 0);
    }
    for (size_t i = 1; i < ops.n; i++)
        assert_true(mds_group_id(ops.v[i - 1].pool_id, ops.v[i - 1].copyset_id) <
                    mds_group_id(ops.v[i].pool_id, ops.v[i].copyset_id));
    for (uint32_t i = 0; i < 500; i++) {
        const mds_operator *op = mds_optable_find(&ops, 1 + ids[i] % 2, ids[i]);
        assert_non_null(op);
        assert_int_equal(op->new_peer, 1000 + i);
        assert_null(mds_optable_find(&ops, 2 - ids[i] % 2, ids[i]));
    }
    /* expire the first 250 deadlines */
    mds_op_event ev[8];
    assert_int_equal(mds_optable_expire(&ops, 250, ev, 8), 250);
    assert_int_equal(ops.n, 250);
    for (uint32_t id = 1; id <= 500; id++)
        assert_true((mds_optable_find(&ops, 1 + id % 2, id) != NULL) == (id > 250));
    mds_optable_destroy(&ops);
}

static void test_names(void **state)
{
    assert_string_equal(mds_op_type_name(MDS_OP_CHANGE_PEER), "change_peer");
    assert_string_equal(mds_sched_kind_name(MDS_SCHED_LEADER_BALANCE), "leader_balance");
    assert_string_equal(mds_sched_kind_name((mds_sched_kind)42), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recovery_change_peer),
        cmocka_unit_test(test_recovery_majority_lost),
        cmocka_unit_test(test_recovery_no_candidate),
        cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_optable_rules_and_timeout),
        cmocka_unit_test(test_replica_count),
        cmocka_unit_test(test_copyset_balance),
        cmocka_unit_test(test_leader_balance),
        cmocka_unit_test(test_optable_many),
        cmocka_unit_test(test_scale_recovery),
        cmocka_unit_test(test_random_simulation),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
