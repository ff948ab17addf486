/* Unit tests: heartbeat processing (epoch rules, leader/term, auth) and state transitions. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/clock.h"
#include "curve/errors.h"
#include "mds/heartbeat.h"
#include "mds/namespace_rules.h"
#include "mds/scheduler.h"
#include "mds_test_util.h"

static mds_hb_result res; /* large: static */

typedef struct fixture {
    mds_topology t;
    mds_optable ops;
} fixture;

/* css 1..9: zone0 {1,2,3}, zone1 {4,5,6}, zone2 {7,8,9}; copyset 1 = {1,4,7}, epoch 5,
 * term 2, leader 1; copyset 2 = {2,5,8} no leader. */
static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    mdst_build(&f->t, 3, 3, NULL, 1, 10);
    mdst_copyset(&f->t, 1, 1, 4, 7, 1);
    mdst_copyset(&f->t, 2, 2, 5, 8, 0);
    mds_copyset *c = mds_topo_copyset(&f->t, 1, 1);
    c->epoch = 5;
    c->term = 2;
    mds_topo_copyset(&f->t, 1, 2)->term = 0;
    mds_optable_init(&f->ops, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    mds_topo_destroy(&f->t);
    mds_optable_destroy(&f->ops);
    free(f);
    return 0;
}

static mds_hb_copyset entry(uint32_t id, uint64_t epoch, uint64_t term, uint32_t leader,
                            uint32_t a, uint32_t b, uint32_t c)
{
    mds_hb_copyset e;
    memset(&e, 0, sizeof(e));
    e.pool_id = 1;
    e.copyset_id = id;
    e.epoch = epoch;
    e.term = term;
    e.leader = leader;
    e.npeers = c ? 3 : 2;
    e.peers[0] = a;
    e.peers[1] = b;
    e.peers[2] = c;
    return e;
}

static int send_hb(fixture *f, uint32_t cs, const mds_hb_copyset *e, size_t n, uint64_t now)
{
    mds_hb_report r = {.cs_id = cs,
                       .token = mds_topo_cs(&f->t, cs)->token,
                       .capacity = 1000,
                       .used = 10,
                       .copysets = e,
                       .ncopysets = n};
    char err[256] = "";
    int rc = mds_hb_process(&f->t, &f->ops, NULL, &r, now, &res, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "hb: %s\n", err);
    return rc;
}

static void test_auth_and_bounds(void **state)
{
    fixture *f = *state;
    char err[256];
    mds_hb_report r = {.cs_id = 99, .token = "x", .capacity = 10, .used = 1};
    assert_int_equal(mds_hb_process(&f->t, &f->ops, NULL, &r, 1, &res, err, sizeof(err)),
                     CURVE_ERR_NOT_FOUND);
    r.cs_id = 1;
    assert_int_equal(mds_hb_process(&f->t, &f->ops, NULL, &r, 1, &res, err, sizeof(err)),
                     CURVE_ERR_PERMISSION);
    assert_non_null(strstr(err, "bad token"));
    r.token = NULL;
    assert_int_equal(mds_hb_process(&f->t, &f->ops, NULL, &r, 1, &res, err, sizeof(err)),
                     CURVE_ERR_PERMISSION);
    r.token = mds_topo_cs(&f->t, 1)->token;
    r.used = 11;
    assert_int_equal(mds_hb_process(&f->t, &f->ops, NULL, &r, 1, &res, err, sizeof(err)), -EINVAL);
    r.used = 1;
    r.ncopysets = MDS_HB_MAX_COPYSETS + 1;
    assert_int_equal(mds_hb_process(&f->t, &f->ops, NULL, &r, 1, &res, err, sizeof(err)), -EINVAL);
    r.ncopysets = 0;
    mds_topo_cs(&f->t, 1)->state = MDS_CS_RETIRED;
    assert_int_equal(mds_hb_process(&f->t, &f->ops, NULL, &r, 1, &res, err, sizeof(err)),
                     CURVE_ERR_FENCED);
    assert_int_equal(mds_topo_cs(&f->t, 1)->capacity, 1ull << 40); /* untouched on error */
    mds_topo_cs(&f->t, 1)->state = MDS_CS_OFFLINE;
    assert_int_equal(mds_hb_process(&f->t, &f->ops, NULL, &r, 77, &res, err, sizeof(err)), 0);
    assert_int_equal(mds_topo_cs(&f->t, 1)->state, MDS_CS_ONLINE);
    assert_int_equal(mds_topo_cs(&f->t, 1)->last_hb_ms, 77);
    assert_int_equal(mds_topo_cs(&f->t, 1)->capacity, 10);
    assert_int_equal(mds_topo_cs(&f->t, 1)->used, 1);
}

static void test_epoch_rules(void **state)
{
    fixture *f = *state;
    const mds_copyset *c = mds_topo_copyset(&f->t, 1, 1);
    /* lower epoch with other peers: stale, ignored */
    mds_hb_copyset e = entry(1, 4, 2, 1, 1, 4, 8);
    assert_int_equal(send_hb(f, 1, &e, 1, 10), 0);
    assert_int_equal(res.stale, 1);
    assert_int_equal(res.accepted, 0);
    assert_true(mds_copyset_has_peer(c, 7));
    assert_int_equal(c->epoch, 5);
    /* same epoch, same peers (any order): accepted, nothing to store */
    e = entry(1, 5, 2, 1, 7, 1, 4);
    assert_int_equal(send_hb(f, 4, &e, 1, 11), 0);
    assert_int_equal(res.accepted, 1);
    assert_int_equal(res.nchanged, 0);
    assert_int_equal(c->last_update_ms, 11);
    /* same epoch, different peers: conflict, ignored */
    e = entry(1, 5, 2, 1, 1, 4, 8);
    assert_int_equal(send_hb(f, 1, &e, 1, 12), 0);
    assert_int_equal(res.conflicts, 1);
    assert_true(mds_copyset_has_peer(c, 7));
    assert_false(mds_copyset_has_peer(c, 8));
    /* higher epoch wins */
    e = entry(1, 6, 2, 1, 1, 4, 8);
    assert_int_equal(send_hb(f, 1, &e, 1, 13), 0);
    assert_int_equal(res.accepted, 1);
    assert_int_equal(c->epoch, 6);
    assert_true(mds_copyset_has_peer(c, 8));
    assert_false(mds_copyset_has_peer(c, 7));
    assert_int_equal(res.nchanged, 1);
    assert_int_equal(res.changed[0].copyset_id, 1);
    /* and a late report of the old configuration is now stale */
    e = entry(1, 5, 2, 1, 1, 4, 7);
    assert_int_equal(send_hb(f, 7, &e, 1, 14), 0);
    assert_int_equal(res.stale, 1);
    assert_true(mds_copyset_has_peer(c, 8));
}

static void test_leader_term(void **state)
{
    fixture *f = *state;
    const mds_copyset *c = mds_topo_copyset(&f->t, 1, 1);
    /* higher term: new leader */
    mds_hb_copyset e = entry(1, 5, 3, 4, 1, 4, 7);
    assert_int_equal(send_hb(f, 4, &e, 1, 10), 0);
    assert_int_equal(res.leader_updates, 1);
    assert_int_equal(c->leader, 4);
    assert_int_equal(c->term, 3);
    assert_int_equal(res.nchanged, 1);
    /* lower term: ignored */
    e = entry(1, 5, 2, 1, 1, 4, 7);
    assert_int_equal(send_hb(f, 1, &e, 1, 11), 0);
    assert_int_equal(res.leader_updates, 0);
    assert_int_equal(c->leader, 4);
    /* same term, other leader: conflict */
    e = entry(1, 5, 3, 7, 1, 4, 7);
    assert_int_equal(send_hb(f, 7, &e, 1, 12), 0);
    assert_int_equal(res.conflicts, 1);
    assert_int_equal(c->leader, 4);
    /* no leader known: same term is enough */
    const mds_copyset *c2 = mds_topo_copyset(&f->t, 1, 2);
    e = entry(2, 0, 0, 5, 2, 5, 8);
    assert_int_equal(send_hb(f, 5, &e, 1, 13), 0);
    assert_int_equal(c2->leader, 5);
    /* leader removed by a newer configuration: leader unknown until reported */
    e = entry(1, 6, 3, 0, 1, 7, 8);
    assert_int_equal(send_hb(f, 1, &e, 1, 14), 0);
    assert_int_equal(c->leader, 0);
    assert_int_equal(c->epoch, 6);
}

static void test_invalid_entries(void **state)
{
    fixture *f = *state;
    mds_hb_copyset e[6];
    e[0] = entry(1, 9, 9, 1, 1, 4, 99); /* unknown chunkserver */
    e[1] = entry(1, 9, 9, 1, 1, 4, 4);  /* duplicate peer */
    e[2] = entry(1, 9, 9, 2, 1, 4, 7);  /* leader not a peer */
    e[3] = entry(1, 9, 9, 1, 1, 4, 7);
    e[3].npeers = 6; /* too many peers */
    e[4] = entry(77, 9, 9, 1, 1, 4, 7); /* unknown copyset */
    e[5] = entry(2, 1, 1, 2, 2, 5, 8);  /* fine */
    assert_int_equal(send_hb(f, 1, e, 6, 10), 0);
    assert_int_equal(res.invalid, 4);
    assert_int_equal(res.unknown, 1);
    assert_int_equal(res.accepted, 1);
    assert_int_equal(mds_topo_copyset(&f->t, 1, 1)->epoch, 5);
    assert_int_equal(mds_topo_copyset(&f->t, 1, 2)->epoch, 1);
}

static void test_operator_completion(void **state)
{
    fixture *f = *state;
    mds_operator op = {.type = MDS_OP_CHANGE_PEER, .pool_id = 1, .copyset_id = 1,
                       .old_peer = 7, .new_peer = 8, .start_epoch = 5, .deadline_ms = 1000};
    assert_int_equal(mds_optable_add(&f->ops, &op, NULL), 0);
    /* a follower's heartbeat carries no operator; the leader's does */
    mds_hb_copyset e = entry(1, 5, 2, 1, 1, 4, 7);
    assert_int_equal(send_hb(f, 4, &e, 1, 10), 0);
    assert_int_equal(res.nops, 0);
    assert_int_equal(send_hb(f, 1, &e, 1, 10), 0);
    assert_int_equal(res.nops, 1);
    assert_int_equal(res.ops[0].type, MDS_OP_CHANGE_PEER);
    assert_int_equal(res.ops[0].new_peer, 8);
    /* midpoint of the change: 4 peers, epoch 6: still running */
    e = entry(1, 6, 2, 1, 1, 4, 7);
    e.npeers = 4;
    e.peers[3] = 8;
    assert_int_equal(send_hb(f, 1, &e, 1, 20), 0);
    assert_int_equal(res.nevents, 0);
    assert_non_null(mds_optable_find(&f->ops, 1, 1));
    /* done */
    e = entry(1, 7, 2, 1, 1, 4, 8);
    assert_int_equal(send_hb(f, 1, &e, 1, 30), 0);
    assert_int_equal(res.nevents, 1);
    assert_int_equal(res.events[0].outcome, MDS_OP_DONE);
    assert_int_equal(res.events[0].op.new_peer, 8);
    assert_null(mds_optable_find(&f->ops, 1, 1));
    assert_int_equal(res.nops, 0);
    /* an add that ends with another configuration: failed */
    op = (mds_operator){.type = MDS_OP_ADD_PEER, .pool_id = 1, .copyset_id = 2, .new_peer = 9,
                        .start_epoch = 0, .deadline_ms = 1000};
    assert_int_equal(mds_optable_add(&f->ops, &op, NULL), 0);
    e = entry(2, 1, 1, 2, 2, 5, 7);
    assert_int_equal(send_hb(f, 2, &e, 1, 40), 0);
    assert_int_equal(res.nevents, 1);
    assert_int_equal(res.events[0].outcome, MDS_OP_FAILED);
}

static void test_address_and_disk_failure(void **state)
{
    fixture *f = *state;
    char err[256];
    const mds_chunkserver *c = mds_topo_cs(&f->t, 4);
    mds_hb_report r = {.cs_id = 4, .token = c->token, .host = c->host, .port = c->port + 1,
                       .capacity = 10, .used = 1};
    assert_int_equal(mds_hb_process(&f->t, &f->ops, NULL, &r, 5, &res, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "registered as 10.0.1.0:8200"));
    r.port = c->port;
    assert_int_equal(mds_hb_process(&f->t, &f->ops, NULL, &r, 5, &res, err, sizeof(err)), 0);
    assert_int_equal(c->state, MDS_CS_ONLINE);
    r.disk_failed = true;
    assert_int_equal(mds_hb_process(&f->t, &f->ops, NULL, &r, 6, &res, err, sizeof(err)), 0);
    assert_int_equal(c->state, MDS_CS_OFFLINE);
    assert_int_equal(c->last_hb_ms, 6);
}

#define GRACE 60000u /* mds_hb_cfg_default's recycle_grace_ms */

/* Copysets a chunkserver may drop: unknown ones (epoch 0: listed, never recycled), and old
 * views from removed members, with the MDS's epoch, once the membership settled. */
static void test_gc_list(void **state)
{
    fixture *f = *state;
    mds_hb_copyset e[3];
    e[0] = entry(42, 1, 1, 0, 1, 4, 7); /* unknown */
    e[1] = entry(1, 4, 2, 1, 1, 4, 9);  /* 9 was removed: its epoch-4 view is stale */
    e[2] = entry(1, 4, 2, 1, 1, 4, 7);  /* stale too, but 7 is still a member: keep */
    assert_int_equal(send_hb(f, 9, e, 2, 10), 0);
    /* first sight of copyset 1 since load: the grace starts now */
    assert_int_equal(res.ngc, 1);
    assert_int_equal(res.gc[0].copyset_id, 42);
    assert_int_equal(res.gc[0].epoch, 0);
    assert_int_equal(res.gc_waiting, 1);
    assert_int_equal(send_hb(f, 9, e, 2, 10 + GRACE - 1), 0);
    assert_int_equal(res.ngc, 1);
    assert_int_equal(send_hb(f, 9, e, 2, 10 + GRACE), 0);
    assert_int_equal(res.ngc, 2);
    assert_int_equal(res.gc[1].copyset_id, 1);
    assert_int_equal(res.gc[1].epoch, 5); /* the MDS's: newer than the reporter's 4 */
    assert_int_equal(res.gc_waiting, 0);
    assert_int_equal(send_hb(f, 7, &e[2], 1, 10 + GRACE), 0);
    assert_int_equal(res.stale, 1);
    assert_int_equal(res.ngc, 0);
}

/* The grace restarts with every sign of a membership change: a new epoch, an operator in
 * flight, a change the leader reports running or failed; a custom grace is honoured. */
static void test_gc_grace(void **state)
{
    fixture *f = *state;
    mds_hb_cfg cfg;
    mds_hb_cfg_default(&cfg);
    cfg.recycle_grace_ms = 100;
    char err[256];
    mds_hb_copyset old = entry(1, 4, 2, 1, 1, 4, 9); /* removed member 9's view */
    mds_hb_report r9 = {.cs_id = 9, .token = mds_topo_cs(&f->t, 9)->token, .capacity = 1000,
                        .copysets = &old, .ncopysets = 1};
#define HB9(now) mds_hb_process(&f->t, &f->ops, &cfg, &r9, (now), &res, err, sizeof(err))
    assert_int_equal(HB9(1000), 0);
    assert_int_equal(res.gc_waiting, 1);
    assert_int_equal(HB9(1100), 0);
    assert_int_equal(res.ngc, 1);

    /* the leader reports epoch 6 (another change happened): the grace restarts */
    mds_hb_copyset lead = entry(1, 6, 2, 1, 1, 4, 8);
    assert_int_equal(send_hb(f, 1, &lead, 1, 1200), 0);
    assert_int_equal(HB9(1250), 0);
    assert_int_equal(res.ngc, 0);
    assert_int_equal(HB9(1300), 0);
    assert_int_equal(res.ngc, 1);
    assert_int_equal(res.gc[0].epoch, 6);

    /* an operator in flight: nothing is recycled while it lasts, nor for the grace after */
    mds_operator op = {.type = MDS_OP_ADD_PEER, .pool_id = 1, .copyset_id = 1, .new_peer = 9,
                       .start_epoch = 6, .deadline_ms = 100000};
    assert_int_equal(mds_optable_add(&f->ops, &op, NULL), 0);
    assert_int_equal(HB9(1400), 0);
    assert_int_equal(res.ngc, 0);
    assert_int_equal(HB9(5000), 0);
    assert_int_equal(res.ngc, 0);
    assert_int_equal(mds_optable_remove(&f->ops, 1, 1), 0);
    assert_int_equal(HB9(5050), 0);
    assert_int_equal(res.ngc, 0);
    assert_int_equal(HB9(5100), 0);
    assert_int_equal(res.ngc, 1);

    /* the leader reports a change it runs (or that failed): the grace restarts */
    lead.change_type = MDS_OP_ADD_PEER;
    lead.change_peer = 9;
    lead.change_failed = true;
    assert_int_equal(send_hb(f, 1, &lead, 1, 5200), 0);
    assert_int_equal(HB9(5250), 0);
    assert_int_equal(res.ngc, 0);
    assert_int_equal(HB9(5300), 0);
    assert_int_equal(res.ngc, 1);
#undef HB9
}

/* The leader says the change failed: the operator fails now, not at its deadline. */
static void test_change_failed(void **state)
{
    fixture *f = *state;
    mds_operator op = {.type = MDS_OP_CHANGE_PEER, .pool_id = 1, .copyset_id = 1,
                       .old_peer = 7, .new_peer = 8, .start_epoch = 5, .deadline_ms = 1000};
    assert_int_equal(mds_optable_add(&f->ops, &op, NULL), 0);
    mds_hb_copyset e = entry(1, 5, 2, 1, 1, 4, 7);
    e.change_type = MDS_OP_CHANGE_PEER;
    e.change_peer = 8;
    assert_int_equal(send_hb(f, 1, &e, 1, 10), 0); /* in progress */
    assert_int_equal(res.nevents, 0);
    e.change_failed = true;
    assert_int_equal(send_hb(f, 4, &e, 1, 11), 0); /* not from the leader: ignored */
    assert_int_equal(res.nevents, 0);
    e.change_peer = 9;
    assert_int_equal(send_hb(f, 1, &e, 1, 12), 0); /* another change: ignored */
    assert_int_equal(res.nevents, 0);
    e.change_peer = 8;
    assert_int_equal(send_hb(f, 1, &e, 1, 13), 0);
    assert_int_equal(res.nevents, 1);
    assert_int_equal(res.events[0].outcome, MDS_OP_FAILED);
    assert_null(mds_optable_find(&f->ops, 1, 1));
    assert_false(mds_optable_cs_busy(&f->ops, 8));
}

static void test_state_transitions(void **state)
{
    fixture *f = *state;
    curve_clock_manual m;
    curve_clock_manual_init(&m, 1000000000ull);
    const curve_clock *clk = &m.base;
    mds_hb_cfg cfg = {.unstable_ms = 3000, .offline_ms = 10000};
    assert_int_equal(mds_hb_cfg_check(&cfg), 0);
    mds_hb_cfg bad = {.unstable_ms = 5, .offline_ms = 5};
    assert_int_equal(mds_hb_cfg_check(&bad), -EINVAL);
    mds_hb_transition tr[16];
    uint64_t t0 = curve_clock_mono_ms(clk);
    /* a new leader resets the heartbeat times: nobody is stale right after a takeover */
    mds_hb_reset_all(&f->t, t0);
    for (size_t i = 0; i < f->t.css.n; i++)
        assert_int_equal(f->t.css.v[i].last_hb_ms, t0);
    assert_int_equal(mds_topo_retire_cs(&f->t, 9), 0);
    assert_int_equal(mds_topo_retire_cs(&f->t, 99), CURVE_ERR_NOT_FOUND);
    /* chunkserver 1 keeps heartbeating; the others fall silent */
    assert_int_equal(mds_hb_tick(&f->t, &cfg, curve_clock_mono_ms(clk), tr, 16), 0);
    curve_clock_manual_advance(&m, 2999ull * 1000000);
    assert_int_equal(mds_hb_tick(&f->t, &cfg, curve_clock_mono_ms(clk), tr, 16), 0);
    assert_int_equal(send_hb(f, 1, NULL, 0, curve_clock_mono_ms(clk)), 0);
    curve_clock_manual_advance(&m, 1ull * 1000000);
    assert_int_equal(mds_hb_tick(&f->t, &cfg, curve_clock_mono_ms(clk), tr, 16), 7);
    for (int i = 0; i < 7; i++) {
        assert_int_equal(tr[i].from, MDS_CS_ONLINE);
        assert_int_equal(tr[i].to, MDS_CS_UNSTABLE);
        assert_int_not_equal(tr[i].cs_id, 1);
        assert_int_not_equal(tr[i].cs_id, 9);
    }
    assert_int_equal(mds_topo_cs(&f->t, 1)->state, MDS_CS_ONLINE);
    assert_int_equal(mds_topo_cs(&f->t, 2)->state, MDS_CS_UNSTABLE);
    /* idempotent */
    assert_int_equal(mds_hb_tick(&f->t, &cfg, curve_clock_mono_ms(clk), tr, 16), 0);
    /* a heartbeat brings 2 back at once */
    assert_int_equal(send_hb(f, 2, NULL, 0, curve_clock_mono_ms(clk)), 0);
    assert_int_equal(mds_topo_cs(&f->t, 2)->state, MDS_CS_ONLINE);
    curve_clock_manual_advance(&m, 7000ull * 1000000); /* 10 s since t0 */
    size_t n = mds_hb_tick(&f->t, &cfg, curve_clock_mono_ms(clk), tr, 2);
    assert_int_equal(n, 8); /* 3..8 offline; 1 and 2 unstable; only 2 reported in tr */
    assert_int_equal(mds_topo_cs(&f->t, 3)->state, MDS_CS_OFFLINE);
    assert_int_equal(mds_topo_cs(&f->t, 1)->state, MDS_CS_UNSTABLE);
    assert_int_equal(mds_topo_cs(&f->t, 9)->state, MDS_CS_RETIRED);
    /* straight from online to offline when ticks are rare */
    assert_int_equal(send_hb(f, 3, NULL, 0, curve_clock_mono_ms(clk)), 0);
    curve_clock_manual_advance(&m, 60000ull * 1000000);
    n = mds_hb_tick(&f->t, &cfg, curve_clock_mono_ms(clk), tr, 16);
    bool seen = false;
    for (size_t i = 0; i < n; i++)
        if (tr[i].cs_id == 3) {
            assert_int_equal(tr[i].from, MDS_CS_ONLINE);
            assert_int_equal(tr[i].to, MDS_CS_OFFLINE);
            seen = true;
        }
    assert_true(seen);
    for (uint32_t id = 1; id <= 8; id++)
        assert_int_equal(mds_topo_cs(&f->t, id)->state, MDS_CS_OFFLINE);
}

/* The config keys of the three modules form one schema; defaults equal the _default() values;
 * bad combinations are refused with a message. */
static void test_config(void **state)
{
    curve_cfg_def defs[32];
    size_t n = 0;
    memcpy(defs + n, mds_hb_cfg_defs, mds_hb_cfg_ndefs * sizeof(*defs));
    n += mds_hb_cfg_ndefs;
    memcpy(defs + n, mds_sched_cfg_defs, mds_sched_cfg_ndefs * sizeof(*defs));
    n += mds_sched_cfg_ndefs;
    memcpy(defs + n, mds_ns_cfg_defs, mds_ns_cfg_ndefs * sizeof(*defs));
    n += mds_ns_cfg_ndefs;
    curve_config *cfg = NULL;
    char err[256] = "";
    int rc = curve_config_new(defs, n, &cfg, err, sizeof(err));
    if (rc != 0)
        fail_msg("%s", err);
    mds_hb_cfg hb, hb_def;
    mds_sched_cfg sc, sc_def;
    mds_ns_size_cfg ns, ns_def;
    uint64_t batch = 0;
    mds_hb_cfg_default(&hb_def);
    mds_sched_cfg_default(&sc_def);
    mds_ns_size_cfg_default(&ns_def);
    assert_int_equal(mds_hb_cfg_from_config(cfg, &hb, err, sizeof(err)), 0);
    assert_int_equal(mds_sched_cfg_from_config(cfg, &sc), 0);
    assert_int_equal(mds_ns_cfg_from_config(cfg, &ns, &batch, err, sizeof(err)), 0);
    assert_int_equal(hb.unstable_ms, hb_def.unstable_ms);
    assert_int_equal(hb.offline_ms, hb_def.offline_ms);
    assert_int_equal(hb.recycle_grace_ms, hb_def.recycle_grace_ms);
    assert_int_equal(sc.max_ops_per_run, sc_def.max_ops_per_run);
    assert_int_equal(sc.change_timeout_ms, sc_def.change_timeout_ms);
    assert_int_equal(sc.transfer_timeout_ms, sc_def.transfer_timeout_ms);
    assert_int_equal(sc.balance_range_pct, sc_def.balance_range_pct);
    assert_int_equal(sc.leader_range_pct, sc_def.leader_range_pct);
    assert_int_equal(ns.chunk_size, ns_def.chunk_size);
    assert_int_equal(ns.segment_size, ns_def.segment_size);
    assert_int_equal(ns.min_size, ns_def.min_size);
    assert_int_equal(ns.max_size, ns_def.max_size);
    assert_int_equal(batch, MDS_IDALLOC_DEFAULT_BATCH);
    /* test-sized values */
    assert_int_equal(curve_config_set(cfg, "mds.heartbeat.offline_ms", "5s", "test", err,
                                      sizeof(err)),
                     0);
    assert_int_equal(curve_config_set(cfg, "mds.heartbeat.unstable_ms", "1s", "test", err,
                                      sizeof(err)),
                     0);
    assert_int_equal(curve_config_set(cfg, "mds.heartbeat.recycle_grace_ms", "3s", "test", err,
                                      sizeof(err)),
                     0);
    assert_int_equal(curve_config_set(cfg, "mds.volume.chunk_size", "4m", "test", err,
                                      sizeof(err)),
                     0);
    assert_int_equal(curve_config_set(cfg, "mds.volume.segment_size", "64m", "test", err,
                                      sizeof(err)),
                     0);
    assert_int_equal(curve_config_set(cfg, "mds.volume.min_size", "64m", "test", err,
                                      sizeof(err)),
                     0);
    assert_int_equal(mds_hb_cfg_from_config(cfg, &hb, err, sizeof(err)), 0);
    assert_int_equal(hb.offline_ms, 5000);
    assert_int_equal(hb.unstable_ms, 1000);
    assert_int_equal(hb.recycle_grace_ms, 3000);
    assert_int_equal(mds_ns_cfg_from_config(cfg, &ns, NULL, err, sizeof(err)), 0);
    assert_int_equal(ns.segment_size, 64ull << 20);
    /* inconsistent combinations */
    assert_int_equal(curve_config_set(cfg, "mds.heartbeat.unstable_ms", "6s", "test", err,
                                      sizeof(err)),
                     0);
    assert_int_equal(mds_hb_cfg_from_config(cfg, &hb, err, sizeof(err)), CURVE_ERR_CONFIG);
    assert_non_null(strstr(err, "mds.heartbeat.unstable_ms"));
    assert_int_equal(curve_config_set(cfg, "mds.volume.segment_size", "6m", "test", err,
                                      sizeof(err)),
                     0);
    assert_int_equal(mds_ns_cfg_from_config(cfg, &ns, NULL, err, sizeof(err)), CURVE_ERR_CONFIG);
    assert_non_null(strstr(err, "segment_size"));
    curve_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_auth_and_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_epoch_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leader_term, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_operator_completion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_transitions, setup, teardown),
        cmocka_unit_test(test_config),
        cmocka_unit_test_setup_teardown(test_address_and_disk_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gc_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gc_grace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_change_failed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
