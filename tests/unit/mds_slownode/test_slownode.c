/* Slow chunkserver detection (src/mds/slownode.c) and the operators it causes
 * (mds_sched_slow_leaders, mds_sched_leader_balance_ex): fake heartbeats of slow, busy and
 * flapping chunkservers; docs/mds.md "Slow chunkservers". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "curve/errors.h"
#include "mds_test_util.h"
#include "mds/scheduler.h"
#include "mds/slownode.h"

#define NCS_MAX 8
#define HB_MS 1000 /* heartbeat period of the fake chunkservers */

static mds_sched_result res; /* large: static */

/* Per fake chunkserver: apply mean, write mean (0 = no writes), and the mean round trip every
 * other chunkserver measures to it (0 = not probed). */
typedef struct fake {
    uint32_t apply_us, write_us, seen_rtt_us;
    /* overrides of what this chunkserver measures toward others (0: their seen_rtt_us) */
    uint32_t my_rtt_us;
    uint32_t seen_p50_us; /* median round trip others measure to it (0: = the mean) */
    /* TCP retransmissions (per mille of 100 data segments) others see toward it, and (if not
     * 0) what it sees toward every other; segs: data segments per probe summary (0: 100) */
    uint32_t seen_loss, my_loss, segs;
} fake;

static mds_slow_report make_report(uint32_t id, const fake *f, size_t n)
{
    mds_slow_report r;
    memset(&r, 0, sizeof(r));
    r.cs_id = id;
    r.applies = 400;
    r.apply_mean_us = f[id - 1].apply_us;
    if (f[id - 1].write_us) {
        r.writes = 300;
        r.write_mean_us = f[id - 1].write_us;
    }
    for (size_t k = 1; k <= n; k++) {
        if (k == id || f[k - 1].seen_rtt_us == 0)
            continue;
        mds_slow_probe *p = &r.probes[r.nprobes++];
        p->target = (uint32_t)k;
        p->samples = 60;
        p->mean_us = f[id - 1].my_rtt_us ? f[id - 1].my_rtt_us : f[k - 1].seen_rtt_us;
        p->p50_us = f[k - 1].seen_p50_us ? f[k - 1].seen_p50_us : p->mean_us;
        p->p90_us = p->mean_us;
        p->segs = f[id - 1].segs ? f[id - 1].segs : 100;
        p->retrans = (f[id - 1].my_loss ? f[id - 1].my_loss : f[k - 1].seen_loss) * p->segs / 1000;
    }
    return r;
}

/* One heartbeat of every chunkserver at *now, then one evaluation (the MDS tick); *now +=
 * HB_MS. Returns a bitmask of the chunkservers whose mark changed. */
static unsigned evaluate_at(mds_slow_tracker *s, const mds_topology *t, uint64_t now)
{
    mds_slow_change ch[NCS_MAX];
    size_t n = mds_slow_evaluate(s, t, now, ch, NCS_MAX);
    unsigned changed = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ch[i].marked, mds_slow_is_marked(s, ch[i].cs_id));
        changed |= 1u << ch[i].cs_id;
    }
    return changed;
}

static unsigned round_all(mds_slow_tracker *s, const mds_topology *t, const fake *f, size_t n,
                          uint64_t *now)
{
    for (uint32_t id = 1; id <= n; id++) {
        mds_slow_report r = make_report(id, f, n);
        assert_int_equal(mds_slow_report_add(s, &r, *now + id), 0);
    }
    unsigned changed = evaluate_at(s, t, *now + HB_MS / 2);
    *now += HB_MS;
    return changed;
}

static void healthy(fake *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        f[i] = (fake){.apply_us = 40, .write_us = 3000, .seen_rtt_us = 300};
}

static void topo3(mds_topology *t)
{
    mdst_build(t, 3, 1, NULL, 1, 24);
    mdst_place(t, mdst_seed());
    assert_int_equal(t->css.n, 3);
}

/* The common start of a test: 3 chunkservers, a tracker with the default config, all healthy. */
static void fx_open(mds_topology *t, mds_slow_tracker *s, fake f[3])
{
    topo3(t);
    mds_slow_init(s, NULL);
    healthy(f, 3);
}

/* A slow disk (apply 50 ms on one node): marked after exactly enter_count heartbeats, by the
 * apply signal; the healthy nodes never. Unmarked exactly hold_ms after its last slow report. */
static void test_slow_disk_marked_then_unmarked(void **state)
{
    (void)state;
    mds_topology t;
    mds_slow_tracker s;
    fake f[3];
    fx_open(&t, &s, f);
    uint64_t now = 1000;
    for (int i = 0; i < 10; i++)
        assert_int_equal(round_all(&s, &t, f, 3, &now), 0);
    f[2].apply_us = 50000;
    assert_int_equal(s.cfg.enter_count, 2);
    assert_int_equal(round_all(&s, &t, f, 3, &now), 0);
    assert_int_equal(mds_slow_get(&s, 3)->streak, 1);
    assert_int_equal(round_all(&s, &t, f, 3, &now), 1u << 3); /* second slow evaluation */
    assert_true(mds_slow_is_marked(&s, 3));
    const mds_slow_cs *e = mds_slow_get(&s, 3);
    assert_int_equal(e->slow_sig, MDS_SLOW_SIG_APPLY);
    assert_int_equal(e->value_us[MDS_SLOW_SIG_APPLY], 50000);
    assert_int_equal(e->median_us[MDS_SLOW_SIG_APPLY], 40);
    assert_int_equal(mds_slow_count(&s), 1);
    assert_false(mds_slow_is_marked(&s, 1));
    assert_false(mds_slow_is_marked(&s, 2));
    for (int i = 0; i < 30; i++) /* stays marked while slow */
        assert_int_equal(round_all(&s, &t, f, 3, &now), 0);
    uint64_t last_slow = mds_slow_get(&s, 3)->last_slow_ms;
    healthy(f, 3);
    unsigned ch = 0;
    uint64_t unmarked_at = 0;
    while (ch == 0 && now < last_slow + 10 * s.cfg.hold_ms) {
        uint64_t at = now + HB_MS / 2; /* the time of this round's evaluation */
        ch = round_all(&s, &t, f, 3, &now);
        if (ch)
            unmarked_at = at;
    }
    assert_int_equal(ch, 1u << 3);
    assert_false(mds_slow_is_marked(&s, 3));
    assert_true(unmarked_at >= last_slow + s.cfg.hold_ms);
    assert_true(unmarked_at < last_slow + s.cfg.hold_ms + HB_MS);
    assert_int_equal(s.marks, 1);
    assert_int_equal(s.unmarks, 1);
    mds_slow_destroy(&s);
    mds_topo_destroy(&t);
}

/* A busy cluster: every node slow alike (apply, writes, probes far above the floors): the
 * median moves with them and nobody is marked. */
static void test_busy_cluster_not_marked(void **state)
{
    (void)state;
    mds_topology t;
    topo3(&t);
    mds_slow_tracker s;
    mds_slow_init(&s, NULL);
    fake f[3];
    uint64_t now = 1000;
    for (int i = 0; i < 50; i++) {
        for (int k = 0; k < 3; k++) /* all slow, a little different from each other */
            f[k] = (fake){.apply_us = 40000 + 5000u * (unsigned)((i + k) % 3),
                          .write_us = 200000 + 20000u * (unsigned)k,
                          .seen_rtt_us = 30000 + 3000u * (unsigned)((i * k) % 4)};
        assert_int_equal(round_all(&s, &t, f, 3, &now), 0);
    }
    assert_int_equal(mds_slow_count(&s), 0);
    /* a node leading many copysets: its busier RPC loop answers probes with a longer tail
     * (seen on a loaded 2-core machine: mean 16 ms, median 9 ms vs 4.6 ms elsewhere) */
    healthy(f, 3);
    for (int k = 0; k < 3; k++)
        f[k].seen_rtt_us = 4600;
    f[1].seen_rtt_us = 16000;
    f[1].seen_p50_us = 9000;
    for (int i = 0; i < 20; i++)
        assert_int_equal(round_all(&s, &t, f, 3, &now), 0);
    /* below the absolute floors a ratio alone does not make a node slow */
    healthy(f, 3);
    f[0].apply_us = 4000; /* 100x the median, under the 10 ms floor */
    f[0].seen_rtt_us = 5000;
    for (int i = 0; i < 20; i++)
        assert_int_equal(round_all(&s, &t, f, 3, &now), 0);
    mds_slow_destroy(&s);
    mds_topo_destroy(&t);
}

/* The leader write time alone (e.g. chunk creation at the first writes of a volume, seen
 * at chaos warm-up: 145 ms vs 7 ms) must stay slow for write_enter_count evaluations; two
 * signals slow in alternation never add up. */
static void test_write_signal_needs_longer(void **state)
{
    (void)state;
    mds_topology t;
    mds_slow_tracker s;
    fake f[3];
    fx_open(&t, &s, f);
    uint64_t now = 1000;
    f[0].write_us = 145000;
    uint32_t n = 0;
    unsigned ch = 0;
    while (ch == 0 && n < 20) {
        ch = round_all(&s, &t, f, 3, &now);
        n++;
    }
    assert_int_equal(ch, 1u << 1);
    assert_int_equal(n, s.cfg.write_enter_count);
    assert_true(s.cfg.write_enter_count > s.cfg.enter_count);
    mds_slow_destroy(&s);
    /* write and apply slow in alternation: each signal's streak restarts */
    mds_slow_init(&s, NULL);
    healthy(f, 3);
    for (int i = 0; i < 20; i++) {
        f[0].write_us = i % 2 ? 145000 : 3000;
        f[0].apply_us = i % 2 ? 40 : 60000;
        assert_int_equal(round_all(&s, &t, f, 3, &now), 0);
    }
    assert_true(mds_slow_get(&s, 1)->streak >= 20);
    mds_slow_destroy(&s);
    mds_topo_destroy(&t);
}

/* Flapping: slow every other heartbeat never reaches enter_count; once marked, a node slow
 * every other heartbeat is never unmarked (each slow report restarts the hold). */
static void test_flapping(void **state)
{
    (void)state;
    mds_topology t;
    mds_slow_tracker s;
    fake f[3];
    fx_open(&t, &s, f);
    uint64_t now = 1000;
    for (int i = 0; i < 40; i++) {
        f[1].apply_us = i % 2 ? 60000 : 40;
        assert_int_equal(round_all(&s, &t, f, 3, &now), 0);
    }
    f[1].apply_us = 60000;
    for (int i = 0; i < 2; i++)
        round_all(&s, &t, f, 3, &now);
    assert_true(mds_slow_is_marked(&s, 2));
    for (int i = 0; i < 100; i++) { /* 100 s of flapping: more than the hold time */
        f[1].apply_us = i % 2 ? 60000 : 40;
        assert_int_equal(round_all(&s, &t, f, 3, &now), 0);
    }
    assert_true(mds_slow_is_marked(&s, 2));
    mds_slow_destroy(&s);
    mds_topo_destroy(&t);
}

/* Hysteresis: a marked node that improves to just under the marking thresholds (but above
 * half of them) stays marked; a node at that level is not marked. */
static void test_hysteresis(void **state)
{
    (void)state;
    mds_topology t;
    mds_slow_tracker s;
    fake f[3];
    fx_open(&t, &s, f);
    uint64_t now = 1000;
    f[0].apply_us = 8000; /* below the 10 ms floor, above its half */
    for (int i = 0; i < 20; i++)
        assert_int_equal(round_all(&s, &t, f, 3, &now), 0);
    f[0].apply_us = 30000;
    for (int i = 0; i < 2; i++)
        round_all(&s, &t, f, 3, &now);
    assert_true(mds_slow_is_marked(&s, 1));
    f[0].apply_us = 8000;
    for (int i = 0; i < 60; i++)
        assert_int_equal(round_all(&s, &t, f, 3, &now), 0);
    assert_true(mds_slow_is_marked(&s, 1));
    f[0].apply_us = 40;
    unsigned ch = 0;
    for (int i = 0; i < 60 && ch == 0; i++)
        ch = round_all(&s, &t, f, 3, &now);
    assert_int_equal(ch, 1u << 1);
    mds_slow_destroy(&s);
    mds_topo_destroy(&t);
}

/* Probes: a node that answers everybody 20 ms late is marked by the probe signal. A node
 * whose own network is bad (it sees everybody slow, everybody sees it slow) is the only one
 * marked; a node seen slow by one of its two observers only is not marked. */
static void test_probe_signal(void **state)
{
    (void)state;
    mds_topology t;
    mds_slow_tracker s;
    fake f[3];
    fx_open(&t, &s, f);
    uint64_t now = 1000;
    f[2].seen_rtt_us = 21000; /* reply delay on chunkserver 3 */
    unsigned ch = 0;
    for (int i = 0; i < 2; i++)
        ch |= round_all(&s, &t, f, 3, &now);
    assert_int_equal(ch, 1u << 3);
    assert_int_equal(mds_slow_get(&s, 3)->slow_sig, MDS_SLOW_SIG_PROBE);
    assert_int_equal(mds_slow_get(&s, 3)->value_us[MDS_SLOW_SIG_PROBE], 21000);
    mds_slow_destroy(&s);

    /* lossy node 1: its probes to 2 and 3 and theirs to it are all slow */
    mds_slow_init(&s, NULL);
    healthy(f, 3);
    f[0].seen_rtt_us = 25000;
    f[0].my_rtt_us = 25000;
    ch = 0;
    for (int i = 0; i < 10; i++)
        ch |= round_all(&s, &t, f, 3, &now);
    assert_int_equal(ch, 1u << 1);
    assert_false(mds_slow_is_marked(&s, 2));
    assert_false(mds_slow_is_marked(&s, 3));
    mds_slow_destroy(&s);

    /* only chunkserver 1 sees chunkserver 2 slow (a problem of 1's path): nobody marked */
    mds_slow_init(&s, NULL);
    healthy(f, 3);
    for (int i = 0; i < 10; i++) {
        for (uint32_t id = 1; id <= 3; id++) {
            mds_slow_report r = make_report(id, f, 3);
            if (id == 1)
                for (size_t k = 0; k < r.nprobes; k++)
                    if (r.probes[k].target == 2)
                        r.probes[k].mean_us = 40000;
            assert_int_equal(mds_slow_report_add(&s, &r, now + id), 0);
        }
        assert_int_equal(evaluate_at(&s, &t, now + HB_MS / 2), 0);
        now += HB_MS;
    }
    assert_int_equal(mds_slow_count(&s), 0);
    mds_slow_destroy(&s);
    mds_topo_destroy(&t);
}

/* A node whose threads stall (slow disk blocking its loops) misses heartbeats and turns
 * unstable; the probes of the others still see it and it is marked. */
static void test_silent_node_marked_by_probes(void **state)
{
    (void)state;
    mds_topology t;
    mds_slow_tracker s;
    fake f[3];
    fx_open(&t, &s, f);
    uint64_t now = 1000;
    for (int i = 0; i < 5; i++)
        assert_int_equal(round_all(&s, &t, f, 3, &now), 0);
    mds_topo_cs(&t, 2)->state = MDS_CS_UNSTABLE;
    f[1].seen_rtt_us = 400000;
    unsigned ch = 0;
    for (int i = 0; i < 12 && ch == 0; i++) { /* only 1 and 3 report */
        for (uint32_t id = 1; id <= 3; id += 2) {
            mds_slow_report r = make_report(id, f, 3);
            assert_int_equal(mds_slow_report_add(&s, &r, now + id), 0);
        }
        ch = evaluate_at(&s, &t, now + HB_MS / 2);
        now += HB_MS;
    }
    assert_int_equal(ch, 1u << 2);
    assert_int_equal(mds_slow_get(&s, 2)->slow_sig, MDS_SLOW_SIG_PROBE);
    /* offline: no longer judged, the mark stays (it leads nothing) */
    mds_topo_cs(&t, 2)->state = MDS_CS_OFFLINE;
    healthy(f, 3);
    for (int i = 0; i < 40; i++)
        assert_int_equal(round_all(&s, &t, f, 3, &now), 0);
    assert_true(mds_slow_is_marked(&s, 2));
    mds_slow_destroy(&s);
    mds_topo_destroy(&t);
}

/* Packet loss: the median round trip stays low, retransmissions (200 ms) raise the mean. */
static void test_probe_mean_loss(void **state)
{
    (void)state;
    mds_topology t;
    mds_slow_tracker s;
    fake f[3];
    fx_open(&t, &s, f);
    f[0].seen_rtt_us = 45000; /* ~20 % of the probes retransmitted */
    f[0].seen_p50_us = 400;
    uint64_t now = 1000;
    unsigned ch = 0;
    for (int i = 0; i < 3; i++)
        ch |= round_all(&s, &t, f, 3, &now);
    assert_int_equal(ch, 1u << 1);
    assert_int_equal(mds_slow_get(&s, 1)->slow_sig, MDS_SLOW_SIG_PROBE_MEAN);
    mds_slow_destroy(&s);
    mds_topo_destroy(&t);
}

/* `rounds` heartbeat rounds in which no mark changes. */
static void rounds_no_change(mds_slow_tracker *s, const mds_topology *t, const fake *f,
                             uint64_t *now, int rounds)
{
    for (int i = 0; i < rounds; i++)
        assert_int_equal(round_all(s, t, f, 3, now), 0);
}

/* Packet loss seen as TCP retransmissions: every peer of chunkserver 1 retransmits 5 % of its
 * segments to it (and 1 to them): marked by the loss signal after enter_count heartbeats, the
 * others never (1's view of them is one observer out of two). Loss seen by only one observer,
 * loss at the floor, and too few segments mark nobody. */
static void test_loss_signal(void **state)
{
    (void)state;
    mds_topology t;
    mds_slow_tracker s;
    fake f[3];
    fx_open(&t, &s, f);
    uint64_t now = 1000;
    f[0].seen_loss = 50;
    f[0].my_loss = 50;
    assert_int_equal(s.cfg.loss_enter_count, 1);
    assert_int_equal(round_all(&s, &t, f, 3, &now), 1u << 1); /* the first slow evaluation */
    assert_int_equal(mds_slow_get(&s, 1)->slow_sig, MDS_SLOW_SIG_LOSS);
    assert_int_equal(mds_slow_get(&s, 1)->value_us[MDS_SLOW_SIG_LOSS], 50);
    assert_int_equal(mds_slow_get(&s, 1)->median_us[MDS_SLOW_SIG_LOSS], 0);
    rounds_no_change(&s, &t, f, &now, 5);
    assert_false(mds_slow_is_marked(&s, 2));
    assert_false(mds_slow_is_marked(&s, 3));
    /* healed: unmarked after the hold time */
    healthy(f, 3);
    unsigned ch = 0;
    for (int i = 0; i < 25 && ch == 0; i++)
        ch = round_all(&s, &t, f, 3, &now);
    assert_int_equal(ch, 1u << 1);
    assert_false(mds_slow_is_marked(&s, 1));
    mds_slow_destroy(&s);

    /* only chunkserver 2 retransmits to 3 (its own path): nobody marked */
    mds_slow_init(&s, NULL);
    healthy(f, 3);
    f[1].my_loss = 80;
    rounds_no_change(&s, &t, f, &now, 6);
    assert_int_equal(mds_slow_count(&s), 0);
    mds_slow_destroy(&s);

    /* at the floor (20 per mille), or over too few segments (10 < 20): nobody marked */
    mds_slow_init(&s, NULL);
    healthy(f, 3);
    f[0].seen_loss = 20;
    rounds_no_change(&s, &t, f, &now, 6);
    healthy(f, 3);
    f[0].seen_loss = 500;
    f[1].segs = f[2].segs = 10;
    rounds_no_change(&s, &t, f, &now, 6);
    assert_int_equal(mds_slow_count(&s), 0);
    mds_slow_destroy(&s);
    mds_topo_destroy(&t);
}

/* Reports of offline chunkservers and stale reports are not compared; a value built on too
 * few samples is ignored; the tracker marks fewer than half of the reporting chunkservers. */
static void test_stale_offline_samples_and_bound(void **state)
{
    (void)state;
    mds_topology t;
    mds_slow_tracker s;
    fake f[3];
    fx_open(&t, &s, f);
    uint64_t now = 1000;
    round_all(&s, &t, f, 3, &now);
    /* only chunkserver 3 keeps reporting (the others' reports go stale): alone, it cannot
     * be compared with anybody */
    f[2].apply_us = 50000;
    now += s.cfg.stale_ms + 1;
    for (int i = 0; i < 20; i++) {
        mds_slow_report r = make_report(3, f, 3);
        assert_int_equal(mds_slow_report_add(&s, &r, now), 0);
        assert_int_equal(evaluate_at(&s, &t, now + 1), 0);
        now += HB_MS;
    }
    assert_false(mds_slow_is_marked(&s, 3));
    /* too few applies behind the mean */
    for (int i = 0; i < 10; i++) {
        for (uint32_t id = 1; id <= 3; id++) {
            mds_slow_report r = make_report(id, f, 3);
            if (id == 3)
                r.applies = s.cfg.min_samples[MDS_SLOW_SIG_APPLY] - 1;
            assert_int_equal(mds_slow_report_add(&s, &r, now + id), 0);
        }
        assert_int_equal(evaluate_at(&s, &t, now + HB_MS / 2), 0);
        now += HB_MS;
    }
    assert_false(mds_slow_is_marked(&s, 3));
    /* an offline chunkserver is not judged */
    mds_topo_cs(&t, 3)->state = MDS_CS_OFFLINE;
    for (int i = 0; i < 10; i++)
        assert_int_equal(round_all(&s, &t, f, 3, &now), 0);
    mds_topo_cs(&t, 3)->state = MDS_CS_ONLINE;
    mds_slow_destroy(&s);
    mds_topo_destroy(&t);

    /* 4 chunkservers, two slow (the lower median stays healthy): both are marked (half);
     * when they recover but are still held and the two others turn slow, marking those would
     * make 4 of 4: none is marked */
    mdst_build(&t, 4, 1, NULL, 1, 4);
    mds_slow_init(&s, NULL);
    fake g[4];
    healthy(g, 4);
    g[2].apply_us = g[3].apply_us = 50000;
    for (int i = 0; i < 3; i++)
        round_all(&s, &t, g, 4, &now);
    assert_int_equal(mds_slow_count(&s), 2);
    assert_true(mds_slow_is_marked(&s, 3) && mds_slow_is_marked(&s, 4));
    healthy(g, 4);
    g[0].apply_us = g[1].apply_us = 50000;
    for (int i = 0; i < 5; i++)
        assert_int_equal(round_all(&s, &t, g, 4, &now), 0);
    assert_int_equal(mds_slow_count(&s), 2);
    assert_true(mds_slow_get(&s, 1)->streak >= 2);
    mds_slow_destroy(&s);
    mds_topo_destroy(&t);
}

static void test_disabled_and_config(void **state)
{
    (void)state;
    mds_topology t;
    topo3(&t);
    mds_slow_cfg cfg;
    mds_slow_cfg_default(&cfg);
    cfg.enabled = false;
    mds_slow_tracker s;
    mds_slow_init(&s, &cfg);
    fake f[3];
    healthy(f, 3);
    f[2].apply_us = 90000;
    uint64_t now = 1000;
    for (int i = 0; i < 10; i++)
        assert_int_equal(round_all(&s, &t, f, 3, &now), 0);
    assert_int_equal(s.n, 0);
    mds_slow_destroy(&s);
    /* a shorter hold and enter count from the configuration keys */
    curve_config *c = NULL;
    char err[256] = "";
    assert_int_equal(curve_config_new(mds_slow_cfg_defs, mds_slow_cfg_ndefs, &c, err,
                                      sizeof(err)), 0);
    assert_int_equal(curve_config_set(c, "mds.slow.hold_ms", "2s", "test", err, sizeof(err)), 0);
    assert_int_equal(curve_config_set(c, "mds.slow.enter_count", "1", "test", err, sizeof(err)),
                     0);
    assert_int_equal(curve_config_set(c, "mds.slow.apply_floor_ms", "5ms", "test", err,
                                      sizeof(err)), 0);
    mds_slow_cfg_from_config(c, &cfg);
    curve_config_free(c);
    assert_int_equal(cfg.hold_ms, 2000);
    assert_int_equal(cfg.enter_count, 1);
    assert_int_equal(cfg.floor_us[MDS_SLOW_SIG_APPLY], 5000);
    assert_true(cfg.enabled);
    mds_slow_init(&s, &cfg);
    f[2].apply_us = 6000;
    assert_int_equal(round_all(&s, &t, f, 3, &now), 1u << 3);
    mds_slow_destroy(&s);
    mds_topo_destroy(&t);
}

/* ---- operators ---- */

static mds_sched_cfg sched_cfg(uint32_t max_ops)
{
    mds_sched_cfg cfg;
    mds_sched_cfg_default(&cfg);
    cfg.max_ops_per_run = max_ops;
    return cfg;
}

static bool slow_set_cb(void *ctx, uint32_t cs_id)
{
    return (*(const uint32_t *)ctx >> cs_id) & 1u;
}

static uint32_t leaders_of(const mds_topology *t, uint32_t id)
{
    uint32_t n = 0;
    for (size_t i = 0; i < t->copysets.n; i++)
        n += t->copysets.v[i].leader == id;
    return n;
}

/* Every copyset led by the slow node gets one transfer, in one run (several to the same
 * target), to its healthiest follower; completing them leaves the slow node without leaders
 * and the next run creates nothing. */
static void test_slow_leaders_ops(void **state)
{
    (void)state;
    mds_topology t;
    mdst_build(&t, 3, 2, NULL, 1, 30); /* 6 chunkservers, 2 per zone */
    mdst_place(&t, mdst_seed());
    uint32_t slow = 1u << 1; /* chunkserver 1 */
    size_t led = 0;
    for (size_t i = 0; i < t.copysets.n; i++) {
        mds_copyset *c = &t.copysets.v[i];
        if (mds_copyset_has_peer(c, 1)) {
            c->leader = 1;
            led++;
        }
    }
    assert_true(led >= 4);
    mds_optable ops;
    mds_optable_init(&ops, 0);
    mds_sched_cfg cfg = sched_cfg(1000);
    assert_int_equal(mds_sched_slow_leaders(&t, &ops, 100, &cfg, slow_set_cb, NULL, &slow, &res), 0);
    assert_int_equal(res.ops_created, led);
    assert_int_equal(ops.n, led);
    for (size_t i = 0; i < ops.n; i++) {
        const mds_operator *op = &ops.v[i];
        const mds_copyset *c = mds_topo_copyset(&t, op->pool_id, op->copyset_id);
        assert_int_equal(op->type, MDS_OP_TRANSFER_LEADER);
        assert_int_equal(op->origin, MDS_SCHED_SLOW_NODE);
        assert_int_equal(op->old_peer, 1);
        assert_int_not_equal(op->new_peer, 1);
        assert_true(mds_copyset_has_peer(c, op->new_peer));
        assert_int_equal(op->deadline_ms, 100 + cfg.transfer_timeout_ms);
    }
    /* the operators reach the slow leader in its heartbeat reply */
    mds_operator out[64];
    assert_int_equal(mds_optable_for_leader(&ops, &t, 1, out, 64), led);
    /* nothing more while they run */
    assert_int_equal(mds_sched_slow_leaders(&t, &ops, 200, &cfg, slow_set_cb, NULL, &slow, &res), 0);
    assert_int_equal(res.ops_created, 0);
    /* done: the new leaders are reported */
    for (size_t i = 0; i < ops.n; i++) {
        mds_copyset *c = mds_topo_copyset(&t, ops.v[i].pool_id, ops.v[i].copyset_id);
        c->leader = ops.v[i].new_peer;
        c->term++;
    }
    while (ops.n > 0) {
        mds_op_event ev;
        const mds_copyset *c = mds_topo_copyset(&t, ops.v[0].pool_id, ops.v[0].copyset_id);
        assert_int_equal(mds_optable_observe(&ops, c, &ev), 1);
        assert_int_equal(ev.outcome, MDS_OP_DONE);
    }
    assert_int_equal(leaders_of(&t, 1), 0);
    assert_int_equal(mds_sched_slow_leaders(&t, &ops, 300, &cfg, slow_set_cb, NULL, &slow, &res), 0);
    assert_int_equal(res.ops_created, 0);
    /* the leaders spread over the healthy followers: no target got more than its share + 1 */
    uint32_t maxl = 0, minl = UINT32_MAX;
    for (uint32_t id = 2; id <= 6; id++) {
        uint32_t n = leaders_of(&t, id);
        maxl = n > maxl ? n : maxl;
        minl = n < minl ? n : minl;
    }
    assert_true(maxl - minl <= (uint32_t)(led / 2 + 1));
    mds_optable_destroy(&ops);
    mds_topo_destroy(&t);
}

/* Targets: never a slow or offline follower; a copyset with no healthy follower keeps its
 * leader; a leader-balance transfer *to* the slow node is replaced; a membership change in
 * flight is left alone; the rate limit holds; no slow node, no operator. */
static void test_slow_leaders_targets(void **state)
{
    (void)state;
    mds_topology t;
    topo3(&t);
    for (size_t i = 0; i < t.copysets.n; i++)
        t.copysets.v[i].leader = 3;
    mds_optable ops;
    mds_optable_init(&ops, 0);
    mds_sched_cfg cfg = sched_cfg(1000);
    uint32_t none = 0;
    assert_int_equal(mds_sched_slow_leaders(&t, &ops, 10, &cfg, slow_set_cb, NULL, &none, &res), 0);
    assert_int_equal(res.ops_created, 0);
    assert_int_equal(mds_sched_slow_leaders(&t, &ops, 10, &cfg, NULL, NULL, NULL, &res), 0);
    assert_int_equal(res.ops_created, 0);

    /* 3 slow, 2 offline: every transfer goes to 1 */
    uint32_t slow = 1u << 3;
    mds_topo_cs(&t, 2)->state = MDS_CS_OFFLINE;
    assert_int_equal(mds_sched_slow_leaders(&t, &ops, 10, &cfg, slow_set_cb, NULL, &slow, &res), 0);
    assert_int_equal(res.ops_created, t.copysets.n);
    for (size_t i = 0; i < ops.n; i++)
        assert_int_equal(ops.v[i].new_peer, 1);
    mds_optable_destroy(&ops);

    /* 3 and 1 slow, 2 offline: nowhere to go */
    mds_optable_init(&ops, 0);
    slow = (1u << 3) | (1u << 1);
    assert_int_equal(mds_sched_slow_leaders(&t, &ops, 10, &cfg, slow_set_cb, NULL, &slow, &res), 0);
    assert_int_equal(res.ops_created, 0);
    assert_int_equal(res.skipped_busy, t.copysets.n);
    mds_topo_cs(&t, 2)->state = MDS_CS_ONLINE;

    /* copyset 1: leader 1 (healthy) with a balance transfer to 3 (slow) in flight: replaced
     * only when its leader is slow, so make 1's copysets led by 3 again and add the ops */
    slow = 1u << 3;
    mds_copyset *c1 = &t.copysets.v[0], *c2 = &t.copysets.v[1];
    mds_operator bal = {.type = MDS_OP_TRANSFER_LEADER, .origin = MDS_SCHED_LEADER_BALANCE,
                        .pool_id = c1->pool_id, .copyset_id = c1->id, .old_peer = 3,
                        .new_peer = 3, .deadline_ms = 1000000};
    /* a balance op "to 3" on a copyset 3 leads (stale plan) */
    assert_int_equal(mds_optable_add(&ops, &bal, NULL), 0);
    mds_operator chg = {.type = MDS_OP_CHANGE_PEER, .origin = MDS_SCHED_RECOVERY,
                        .pool_id = c2->pool_id, .copyset_id = c2->id, .old_peer = 2,
                        .new_peer = 1, .deadline_ms = 1000000};
    assert_int_equal(mds_optable_add(&ops, &chg, NULL), 0);
    cfg = sched_cfg(5);
    assert_int_equal(mds_sched_slow_leaders(&t, &ops, 10, &cfg, slow_set_cb, NULL, &slow, &res), 0);
    assert_int_equal(res.ops_created, 5);
    assert_true(res.rate_limited >= 1);
    const mds_operator *o1 = mds_optable_find(&ops, c1->pool_id, c1->id);
    assert_non_null(o1);
    assert_int_equal(o1->origin, MDS_SCHED_SLOW_NODE);
    assert_int_not_equal(o1->new_peer, 3);
    const mds_operator *o2 = mds_optable_find(&ops, c2->pool_id, c2->id);
    assert_non_null(o2);
    assert_int_equal(o2->type, MDS_OP_CHANGE_PEER); /* left alone */
    mds_optable_destroy(&ops);
    mds_topo_destroy(&t);
}

/* A suspect (slow in the last evaluation, not marked yet) is never chosen as the new leader:
 * an early false mark of one node must not push its leaders onto the node that is really
 * slow. */
static void test_slow_leaders_avoid_suspects(void **state)
{
    (void)state;
    mds_topology t;
    topo3(&t);
    for (size_t i = 0; i < t.copysets.n; i++)
        t.copysets.v[i].leader = 3;
    mds_slow_tracker s;
    mds_slow_init(&s, NULL);
    fake f[3];
    healthy(f, 3);
    uint64_t now = 1000;
    f[2].apply_us = 60000;
    for (int i = 0; i < 2; i++)
        round_all(&s, &t, f, 3, &now);
    assert_true(mds_slow_is_marked(&s, 3));
    f[0].seen_rtt_us = 30000; /* 1 turns slow too (probes): one evaluation, a suspect */
    round_all(&s, &t, f, 3, &now);
    assert_false(mds_slow_is_marked(&s, 1));
    assert_true(mds_slow_suspect_cb(&s, 1));
    assert_false(mds_slow_suspect_cb(&s, 2));
    mds_optable ops;
    mds_optable_init(&ops, 0);
    mds_sched_cfg cfg = sched_cfg(1000);
    assert_int_equal(mds_sched_slow_leaders(&t, &ops, now, &cfg, mds_slow_marked_cb,
                                            mds_slow_suspect_cb, &s, &res), 0);
    assert_int_equal(res.ops_created, t.copysets.n);
    for (size_t i = 0; i < ops.n; i++)
        assert_int_equal(ops.v[i].new_peer, 2);
    mds_optable_destroy(&ops);
    mds_slow_destroy(&s);
    mds_topo_destroy(&t);
}

/* Leader balance leaves the slow node out: it gets no leadership back even with none, and the
 * healthy nodes are balanced among themselves. Without the avoid set it would be a target. */
static void test_leader_balance_avoids_slow(void **state)
{
    (void)state;
    mds_topology t;
    mdst_build(&t, 3, 1, NULL, 1, 30);
    mdst_place(&t, mdst_seed());
    for (size_t i = 0; i < t.copysets.n; i++) /* 1 leads 22, 2 leads 8, 3 none */
        t.copysets.v[i].leader = i < 22 ? 1 : 2;
    mds_sched_cfg cfg = sched_cfg(1000);
    mds_optable ops;
    mds_optable_init(&ops, 0);
    assert_int_equal(mds_sched_leader_balance(&t, &ops, 10, &cfg, &res), 0);
    bool to3 = false;
    for (size_t i = 0; i < ops.n; i++)
        to3 |= ops.v[i].new_peer == 3;
    assert_true(to3);
    mds_optable_destroy(&ops);

    mds_optable_init(&ops, 0);
    uint32_t slow = 1u << 3;
    int rounds = 0;
    for (; rounds < 100; rounds++) {
        assert_int_equal(mds_sched_leader_balance_ex(&t, &ops, 10, &cfg, slow_set_cb, &slow,
                                                     &res), 0);
        for (size_t i = 0; i < ops.n; i++)
            assert_int_not_equal(ops.v[i].new_peer, 3);
        if (res.ops_created == 0)
            break;
        while (ops.n > 0) { /* complete them */
            mds_copyset *c = mds_topo_copyset(&t, ops.v[0].pool_id, ops.v[0].copyset_id);
            c->leader = ops.v[0].new_peer;
            c->term++;
            mds_op_event ev;
            assert_int_equal(mds_optable_observe(&ops, c, &ev), 1);
        }
    }
    assert_true(rounds < 100);
    assert_int_equal(leaders_of(&t, 3), 0);
    uint32_t a = leaders_of(&t, 1), b = leaders_of(&t, 2);
    assert_true(a + b == 30 && (a > b ? a - b : b - a) <= 3);
    mds_optable_destroy(&ops);
    mds_topo_destroy(&t);
}

/* A heartbeat saying disk_slow (the chunkserver gave its leaderships away for a slow disk) makes
 * it a suspect at once, before any evaluation found it slow: leader balance moves nothing to
 * it; the next report without the flag ends that (nothing is marked either way). */
static void test_disk_slow_report_suspect(void **state)
{
    (void)state;
    mds_topology t;
    mds_slow_tracker s;
    fake f[3];
    fx_open(&t, &s, f);
    uint64_t now = 1000;
    (void)round_all(&s, &t, f, 3, &now);
    assert_false(mds_slow_suspect_cb(&s, 3));
    mds_slow_report r = make_report(3, f, 3);
    r.disk_slow = true;
    assert_int_equal(mds_slow_report_add(&s, &r, now), 0);
    assert_true(mds_slow_suspect_cb(&s, 3));
    assert_false(mds_slow_is_marked(&s, 3));
    assert_false(mds_slow_suspect_cb(&s, 1));

    for (size_t i = 0; i < t.copysets.n; i++) /* 1 and 2 lead everything, 3 nothing */
        t.copysets.v[i].leader = (i % 2) ? 1 : 2;
    mds_sched_cfg cfg = sched_cfg(1000);
    mds_optable ops;
    mds_optable_init(&ops, 0);
    assert_int_equal(
        mds_sched_leader_balance_ex(&t, &ops, now, &cfg, mds_slow_suspect_cb, &s, &res), 0);
    for (size_t i = 0; i < ops.n; i++)
        assert_int_not_equal(ops.v[i].new_peer, 3);
    mds_optable_destroy(&ops);

    r.disk_slow = false; /* a fast write since: leaders may come back */
    assert_int_equal(mds_slow_report_add(&s, &r, now + HB_MS), 0);
    assert_false(mds_slow_suspect_cb(&s, 3));
    mds_optable_init(&ops, 0);
    assert_int_equal(
        mds_sched_leader_balance_ex(&t, &ops, now + HB_MS, &cfg, mds_slow_suspect_cb, &s, &res),
        0);
    bool to3 = false;
    for (size_t i = 0; i < ops.n; i++)
        to3 |= ops.v[i].new_peer == 3;
    assert_true(to3);
    mds_optable_destroy(&ops);
    mds_slow_destroy(&s);
    mds_topo_destroy(&t);
}

/* The one-operator-per-disk rule still holds for every other operator. */
static void test_optable_shared_target(void **state)
{
    (void)state;
    mds_optable ops;
    mds_optable_init(&ops, 0);
    mds_operator op = {.type = MDS_OP_TRANSFER_LEADER, .origin = MDS_SCHED_SLOW_NODE,
                       .pool_id = 1, .copyset_id = 1, .old_peer = 3, .new_peer = 1,
                       .deadline_ms = 10};
    assert_int_equal(mds_optable_add(&ops, &op, NULL), 0);
    op.copyset_id = 2;
    assert_int_equal(mds_optable_add(&ops, &op, NULL), 0);
    op.copyset_id = 3;
    op.origin = MDS_SCHED_LEADER_BALANCE;
    assert_int_equal(mds_optable_add(&ops, &op, NULL), CURVE_ERR_BUSY);
    op.type = MDS_OP_CHANGE_PEER;
    op.origin = MDS_SCHED_RECOVERY;
    assert_int_equal(mds_optable_add(&ops, &op, NULL), CURVE_ERR_BUSY);
    assert_string_equal(mds_sched_kind_name(MDS_SCHED_SLOW_NODE), "slow_node");
    mds_optable_destroy(&ops);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_disk_marked_then_unmarked),
        cmocka_unit_test(test_busy_cluster_not_marked),
        cmocka_unit_test(test_write_signal_needs_longer),
        cmocka_unit_test(test_flapping),
        cmocka_unit_test(test_hysteresis),
        cmocka_unit_test(test_probe_signal),
        cmocka_unit_test(test_silent_node_marked_by_probes),
        cmocka_unit_test(test_probe_mean_loss),
        cmocka_unit_test(test_loss_signal),
        cmocka_unit_test(test_stale_offline_samples_and_bound),
        cmocka_unit_test(test_disabled_and_config),
        cmocka_unit_test(test_slow_leaders_ops),
        cmocka_unit_test(test_slow_leaders_targets),
        cmocka_unit_test(test_slow_leaders_avoid_suspects),
        cmocka_unit_test(test_leader_balance_avoids_slow),
        cmocka_unit_test(test_disk_slow_report_suspect),
        cmocka_unit_test(test_optable_shared_target),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
