/*
 * Chunkserver heartbeats at the MDS (DESIGN §5, §7; docs/mds.md "Heartbeats").
 *
 * mds_hb_process() applies one heartbeat report to the topology: chunkserver liveness and
 * disk usage, then per copyset the reported view, with these rules:
 *   - a report with a lower configuration epoch than the known one is stale and ignored;
 *   - a higher epoch replaces the peers (the higher epoch wins);
 *   - an equal epoch with different peers is a conflict: counted, ignored;
 *   - leader and term are taken from a report whose term is higher than the known one (or
 *     equal with no known leader); a different leader in the same term is a conflict;
 *   - after an update, the copyset's operator (if any) is checked for completion.
 * It also collects the operators the chunkserver must run: those of copysets it leads.
 *
 * mds_hb_tick() moves chunkservers through online -> unstable -> offline by the time since
 * their last heartbeat (a heartbeat brings them back online at once; retired never changes).
 *
 * Pure functions, time passed in (monotonic ms). Single-threaded (the MDS loop).
 */
#ifndef CURVE_MDS_HEARTBEAT_H
#define CURVE_MDS_HEARTBEAT_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "mds/scheduler.h"
#include "mds/topology.h"

#define MDS_HB_MAX_COPYSETS  65536 /* bound on copysets in one report */
#define MDS_HB_MAX_REPLY_OPS 64    /* operators carried by one heartbeat reply */
#define MDS_HB_MAX_EVENTS    64    /* operator completions reported per heartbeat */
#define MDS_HB_MAX_CHANGED   256   /* changed copysets listed per heartbeat (then overflow) */
#define MDS_HB_MAX_GC        256   /* removable copysets listed per heartbeat */

typedef struct mds_hb_cfg {
    uint64_t unstable_ms; /* no heartbeat for this long: unstable (Curve: 30 s) */
    uint64_t offline_ms;  /* no heartbeat for this long: offline (Curve: 30 min; tests: s) */
    /* A chunkserver that reports a copyset it is no longer a member of is told to recycle its
     * replica only after the copyset's membership has been settled this long: no change of
     * epoch, no operator and no change reported in flight by its leader (a configuration entry
     * a failed change left uncommitted may still be committed by a later leader, and a replica
     * being added may report the older configuration of the snapshot it installed). */
    uint64_t recycle_grace_ms;
} mds_hb_cfg;

void mds_hb_cfg_default(mds_hb_cfg *cfg);

/* Configuration keys (add them to the daemon's schema): mds.heartbeat.unstable_ms (30s),
 * mds.heartbeat.offline_ms (30m), mds.heartbeat.recycle_grace_ms (60s). */
extern const curve_cfg_def mds_hb_cfg_defs[];
extern const size_t mds_hb_cfg_ndefs;
/* Reads the keys above from a loaded config (whose schema includes mds_hb_cfg_defs) and checks
 * them. 0 or CURVE_ERR_CONFIG with a message. */
int mds_hb_cfg_from_config(const curve_config *c, mds_hb_cfg *out, char *err, size_t errlen);
/* 0 < unstable_ms < offline_ms, else -EINVAL. */
int mds_hb_cfg_check(const mds_hb_cfg *cfg);

/* One copyset as the chunkserver sees it. The daemon maps the wire's "ip:port:0" peer strings
 * to chunkserver ids with mds_topo_cs_by_addr (an unknown address becomes 0: the entry is then
 * counted invalid). */
typedef struct mds_hb_copyset {
    uint32_t pool_id, copyset_id;
    uint32_t npeers;
    uint32_t peers[MDS_MAX_PEERS];
    uint32_t leader; /* 0 = unknown to the reporter */
    uint64_t term, epoch;
    /* Configuration change the reporter runs as leader (heartbeat.proto ConfigChangeType):
     * 0 = none. When it reports the change failed, the matching operator fails at once. */
    uint32_t change_type; /* mds_op_type or 0 */
    uint32_t change_peer; /* its target chunkserver */
    bool change_failed;
} mds_hb_copyset;

typedef struct mds_hb_report {
    uint32_t cs_id;
    const char *token; /* must match the registered token */
    const char *host;  /* NULL = not checked; else must match the registered host:port */
    uint32_t port;
    bool disk_failed;  /* the chunkserver's disk failed: it is marked offline at once */
    uint64_t capacity, used;
    const mds_hb_copyset *copysets; /* borrowed */
    size_t ncopysets;
} mds_hb_report;

typedef struct mds_copyset_key {
    uint32_t pool_id, copyset_id;
} mds_copyset_key;

typedef struct mds_hb_result {
    uint32_t accepted;       /* copyset views accepted (equal or newer epoch, consistent) */
    uint32_t stale;          /* lower epoch than known */
    uint32_t conflicts;      /* same epoch, different peers; or two leaders in one term */
    uint32_t unknown;        /* copyset not in the topology */
    uint32_t invalid;        /* malformed entry (peers, leader) */
    uint32_t leader_updates; /* leader/term changed */
    /* copysets whose stored view changed (the daemon writes them to etcd) */
    size_t nchanged;
    bool changed_overflow; /* more than MDS_HB_MAX_CHANGED: store every reported copyset */
    mds_copyset_key changed[MDS_HB_MAX_CHANGED];
    /* copysets listed to this chunkserver as stale (heartbeat.proto stale_copysets): unknown
     * to the MDS (epoch 0: the chunkserver keeps and reports it), or reported with an older
     * epoch by a chunkserver that is no longer a peer (the MDS's epoch, newer than the
     * chunkserver's: it recycles its replica) once the membership has settled
     * (cfg->recycle_grace_ms); `waiting` counts those not listed yet for the grace */
    size_t ngc;
    struct {
        uint32_t pool_id, copyset_id;
        uint64_t epoch; /* the MDS's epoch of the copyset; 0: unknown copyset */
    } gc[MDS_HB_MAX_GC];
    uint32_t gc_waiting;
    /* operators that finished with this heartbeat */
    size_t nevents;
    mds_op_event events[MDS_HB_MAX_EVENTS];
    /* operators for the reply: copysets led by this chunkserver */
    size_t nops;
    mds_operator ops[MDS_HB_MAX_REPLY_OPS];
} mds_hb_result;

/*
 * Applies report `r` at time now_ms under `cfg` (NULL: mds_hb_cfg_default). `res` is zeroed and
 * filled (it is large: allocate it
 * once and reuse it). Returns 0; CURVE_ERR_NOT_FOUND (unknown chunkserver); CURVE_ERR_PERMISSION
 * (token mismatch); CURVE_ERR_FENCED (retired chunkserver); -EINVAL (used > capacity, too
 * many copysets, address differs from the registered one). On error nothing changes. Bad
 * copyset entries do not fail the call: they are counted in res->invalid.
 */
int mds_hb_process(mds_topology *t, mds_optable *ops, const mds_hb_cfg *cfg,
                   const mds_hb_report *r, uint64_t now_ms, mds_hb_result *res, char *err,
                   size_t errlen);

/* On becoming leader (after loading the topology from etcd): sets every chunkserver's last
 * heartbeat time to now_ms, so nobody is declared unstable/offline before it could reach the
 * new leader. States are kept (an offline chunkserver stays offline until it heartbeats). */
void mds_hb_reset_all(mds_topology *t, uint64_t now_ms);

typedef struct mds_hb_transition {
    uint32_t cs_id;
    mds_cs_state from, to;
} mds_hb_transition;

/* Applies time-based transitions at now_ms; fills up to `max` transitions into `out`
 * (may be NULL when max is 0) and returns the number of chunkservers that changed state. */
size_t mds_hb_tick(mds_topology *t, const mds_hb_cfg *cfg, uint64_t now_ms,
                   mds_hb_transition *out, size_t max);

#endif
