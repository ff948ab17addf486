/*
 * Slow chunkserver detection at the MDS (docs/mds.md "Slow chunkservers").
 *
 * Every chunkserver heartbeat carries its recent service health (heartbeat.proto
 * ServiceHealth): the mean chunk write service time as leader and the mean state machine apply
 * time (chunk store writes, any role) since its previous heartbeat, and the round trips of probe
 * RPCs it sent to each of its peers over the last seconds. From these the tracker derives, per
 * chunkserver X, three signals:
 *
 *   write  X's own mean chunk write service time (only while X leads and serves writes);
 *   apply  X's own mean apply time per entry (a slow disk shows here in every role);
 *   probe  the lower median, over the other chunkservers R that probed X, of R's median probe
 *          round trip to X (a reply delay or a stalled RPC loop on X shows here, and only a
 *          majority of X's observers can make it high: a node whose own network is bad sees
 *          everybody slow, but nobody else sees the others slow);
 *   probe_mean  the same with R's mean round trip: occasional TCP retransmissions (packet loss)
 *          raise the mean but not the median; its floor is higher, because a node that leads
 *          many copysets has a busier RPC loop and a longer tail (not a slow node).
 *   loss   the lower median, over the observers R, of the share of R's TCP data segments to X
 *          (its probe connection) that were retransmitted, in per mille: packet loss on X's
 *          network shows here as soon as a few segments were lost, while the round trips may
 *          hardly move (a tail-loss probe resends after ~10 ms). A healthy local network
 *          retransmits nothing; a node whose own link loses packets also sees loss towards
 *          everybody, but only it does, so the median over observers keeps it local.
 *          (Stored in the *_us arrays like the others; its unit is per mille.)
 *
 * A signal of X is *slow* when it is above both an absolute floor and factor_pct % of the
 * cluster median of that signal (the lower median over every chunkserver with a fresh value,
 * X included): a busy cluster raises every node's latency and the median with it, so nobody
 * stands out. X is slow in an evaluation when any signal is slow. While X is marked the
 * thresholds are halved (hysteresis), so a node at the edge does not flap.
 *
 *   - X is *marked* once one signal was slow in enter_count consecutive evaluations
 *     (write_enter_count for the write signal, the one most exposed to load) —
 *     mds_slow_evaluate, once per scheduler tick — if at most half of the live chunkservers
 *     would then be marked;
 *   - X is *unmarked* once it has been evaluated not slow for hold_ms without interruption.
 *
 * While X is marked, the scheduler moves every copyset leadership off X (TransferLeader to a
 * healthy follower, scheduler.h mds_sched_slow_leaders) and leader balance neither moves
 * leaders to X nor counts X (mds_sched_leader_balance_ex). Neither picks a *suspect* (found
 * slow by the last evaluation, not marked yet) as a new leader.
 *
 * Pure logic: time comes in as parameters; no locks (the MDS holds its main lock).
 */
#ifndef CURVE_MDS_SLOWNODE_H
#define CURVE_MDS_SLOWNODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "mds/topology.h"

#define MDS_SLOW_MAX_PROBES 32 /* peers per report (the chunkserver probes at most 32) */

typedef enum mds_slow_sig {
    MDS_SLOW_SIG_WRITE = 0,
    MDS_SLOW_SIG_APPLY = 1,
    MDS_SLOW_SIG_PROBE = 2,      /* median probe round trip (delay, stalled loop) */
    MDS_SLOW_SIG_PROBE_MEAN = 3, /* mean probe round trip (retransmissions: packet loss) */
    MDS_SLOW_SIG_LOSS = 4,       /* TCP retransmissions toward it, per mille (packet loss) */
    MDS_SLOW_NSIG = 5,
} mds_slow_sig;

const char *mds_slow_sig_name(mds_slow_sig s);

typedef struct mds_slow_cfg {
    bool enabled;
    uint32_t factor_pct;              /* slow: above this % of the cluster median ... */
    uint32_t floor_us[MDS_SLOW_NSIG]; /* ... and above this absolute floor */
    uint32_t min_samples[MDS_SLOW_NSIG]; /* a value built on fewer samples is ignored */
    uint32_t enter_count;             /* consecutive slow evaluations of a signal to mark */
    uint32_t write_enter_count;       /* the same for the write signal */
    uint32_t loss_enter_count;        /* the same for the loss signal (retransmissions are
                                         unambiguous: 1, so a lossy leader leaves at once) */
    uint64_t hold_ms;                 /* not slow for this long: unmarked */
    uint64_t stale_ms;                /* reports older than this are ignored */
} mds_slow_cfg;

/* Defaults: enabled, 300 %, floors write 50 ms / apply 10 ms / probe 15 ms / probe_mean
 * 40 ms / loss 20 per mille, min samples 20 / 20 / 10 / 20 / 20 segments, enter after 2
 * evaluations (write: 5, loss: 1), hold 20 s, stale after 5 s. */
void mds_slow_cfg_default(mds_slow_cfg *cfg);

/* Configuration keys: mds.slow.enabled (true), mds.slow.factor_pct (300),
 * mds.slow.write_floor_ms (50ms), mds.slow.apply_floor_ms (10ms), mds.slow.probe_floor_ms
 * (15ms), mds.slow.probe_mean_floor_ms (40ms), mds.slow.loss_floor_permille (20),
 * mds.slow.enter_count (2),
 * mds.slow.write_enter_count (5), mds.slow.loss_enter_count (1), mds.slow.hold_ms (20s),
 * mds.slow.stale_ms (5s). */
extern const curve_cfg_def mds_slow_cfg_defs[];
extern const size_t mds_slow_cfg_ndefs;
/* Reads the keys above from a config whose schema includes mds_slow_cfg_defs. */
void mds_slow_cfg_from_config(const curve_config *c, mds_slow_cfg *out);

typedef struct mds_slow_probe {
    uint32_t target; /* chunkserver id (0: unknown address, ignored) */
    uint32_t samples, lost, mean_us, p50_us, p90_us;
    uint32_t segs, retrans; /* TCP data segments sent to target / retransmitted (window) */
} mds_slow_probe;

/* The health part of one heartbeat (heartbeat.proto ServiceHealth), ids resolved. */
typedef struct mds_slow_report {
    uint32_t cs_id;
    uint64_t writes, applies; /* samples behind the means (0: no value) */
    uint32_t write_mean_us, apply_mean_us;
    bool disk_slow; /* it handed its leaderships over for a slow disk (ServiceHealth.disk_slow) */
    size_t nprobes;
    mds_slow_probe probes[MDS_SLOW_MAX_PROBES];
} mds_slow_report;

typedef struct mds_slow_cs {
    uint32_t cs_id;
    uint64_t report_ms; /* 0: no report yet */
    mds_slow_report rep;
    uint32_t streak;    /* consecutive slow evaluations (any signal) */
    uint32_t sig_streak[MDS_SLOW_NSIG]; /* consecutive slow evaluations per signal */
    bool marked;
    uint64_t marked_ms, last_slow_ms;
    /* last evaluation: per signal the value and the cluster median (0 = no value) */
    uint32_t value_us[MDS_SLOW_NSIG], median_us[MDS_SLOW_NSIG];
    int slow_sig; /* the signal found slow last (-1: none) */
} mds_slow_cs;

typedef struct mds_slow_tracker {
    mds_slow_cfg cfg;
    mds_slow_cs *v; /* sorted by cs_id */
    size_t n, cap;
    uint64_t marks, unmarks; /* totals */
} mds_slow_tracker;

/* What an evaluation changed. */
typedef struct mds_slow_change {
    uint32_t cs_id;
    bool marked;        /* true: now marked; false: now unmarked */
    mds_slow_sig sig;   /* marking: the slow signal */
    uint32_t value_us, median_us;
} mds_slow_change;

void mds_slow_init(mds_slow_tracker *s, const mds_slow_cfg *cfg);
void mds_slow_destroy(mds_slow_tracker *s);
/* Forgets every report and mark (on becoming leader). */
void mds_slow_reset(mds_slow_tracker *s);

/* Stores report `r` of chunkserver r->cs_id, received at now_ms. Returns 0 or -ENOMEM.
 * Disabled: stores nothing. */
int mds_slow_report_add(mds_slow_tracker *s, const mds_slow_report *r, uint64_t now_ms);

/*
 * Evaluates every live (online or unstable) chunkserver of `t` at now_ms against the fresh
 * reports (one evaluation = one step of the enter/hold counters; the MDS runs it once per
 * scheduler tick). A chunkserver that does not report itself (e.g. its threads stall and it
 * misses heartbeats) is still judged by the probes of the others. Fills up to `max` mark
 * changes into `out` and returns their number.
 */
size_t mds_slow_evaluate(mds_slow_tracker *s, const mds_topology *t, uint64_t now_ms,
                         mds_slow_change *out, size_t max);

bool mds_slow_is_marked(const mds_slow_tracker *s, uint32_t cs_id);
/* mds_cs_busy_fn adapter (placement.h): ctx is a `const mds_slow_tracker *`. */
bool mds_slow_marked_cb(void *ctx, uint32_t cs_id);
/* Marked, found slow by the last evaluation (not marked yet), or its latest report says it
 * gave its leaderships away for a slow disk: not a good new leader.
 * mds_cs_busy_fn adapter, ctx as above. */
bool mds_slow_suspect_cb(void *ctx, uint32_t cs_id);
/* Number of marked chunkservers. */
size_t mds_slow_count(const mds_slow_tracker *s);
/* The entry of a chunkserver, or NULL. Valid until the next report_add. */
const mds_slow_cs *mds_slow_get(const mds_slow_tracker *s, uint32_t cs_id);

/* ---- daemon glue (mds_heartbeat_svc.c, mds_scheduler_run.c; not in curve_mdscore) ---- */

/* The daemon's tracker is mds_daemon.slow (mds_daemon.h), used under mds_daemon.lock and reset
 * by mds_bg_start on becoming leader. */
struct mds_daemon;
/* Initialises d->slow from d->slowcfg (the mds.slow.* keys; first call) or forgets its state;
 * registers the metrics once. Call with d->lock held. */
void mds_slow_glue_reset(struct mds_daemon *d);
/* Runs mds_sched_slow_leaders when a chunkserver is marked (d->lock held). */
void mds_slow_glue_schedule(struct mds_daemon *d, uint64_t now_ms);
/* One evaluation (mds_slow_evaluate): logs and counts mark changes (d->lock held; tick). */
void mds_slow_glue_evaluate(struct mds_daemon *d, uint64_t now_ms);

#endif
