/*
 * A tiny in-memory cluster for unit tests of the Raft core (canonical/raft fixture style):
 * manual clock, FIFO network with per-link cuts, a disk whose writes complete on the next step,
 * and a state machine recording what it applies (commands overwrite 8-byte slots of 2 files).
 * Everything is deterministic (fixed PRNG seed).
 */
#ifndef CURVE_TEST_RAFT_FIXTURE_H
#define CURVE_TEST_RAFT_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "raft/raft.h"

#define FX_MAX        6
#define FX_FILE_BYTES 128
#define FX_NFILES     2

struct fx_entry {
    uint64_t term;
    uint8_t type;
    uint32_t len;
    uint8_t *data;
};

struct fx_node {
    struct fx *fx;
    uint64_t id;
    bool up;
    struct raft *r;
    struct raft_io io;
    struct raft_fsm fsm;
    /* durable state */
    uint64_t term, vote;
    struct fx_entry *log;
    uint64_t first, n, cap;
    bool has_snap;
    struct raft_snapshot_meta snap;
    /* pending completions (applied at the next fx_step) */
    uint64_t pend_meta_term[64], pend_meta_vote[64];
    uint32_t npend_meta;
    uint64_t pend_append[256];
    uint32_t npend_append;
    /* state machine */
    uint64_t applied, ncmds;
    uint64_t cmds[1024]; /* values of applied commands, in order (reset by snapshot install) */
    uint8_t files[FX_NFILES][FX_FILE_BYTES];
    uint8_t stage[FX_NFILES][FX_FILE_BYTES];
    bool saving;
    uint64_t save_index;
    uint32_t installs;
    uint32_t sent_snapshot_pieces;
    uint32_t state_changes; /* cbs.state_changed calls (found through raft_cbs_data) */
    uint64_t snap_files;    /* versioned_files: index whose snapshot files exist */
    uint32_t read_errors;   /* snapshot_read fails with -EIO while > 0 (decremented) */
    uint32_t failed_reads;  /* snapshot_read calls that failed */
    /* cbs.apply_pending (set when opts.apply_budget_us != 0): raft_apply at the next step */
    bool want_apply;
    uint32_t apply_pending_calls;
    uint32_t max_applied_per_call; /* most entries applied by one call into the node */
    uint32_t applied_this_call;
    uint64_t call_gen;
    /* every fsm apply takes this long (real time: the apply budget is measured in real time) */
    uint32_t apply_delay_us;
};

struct fx_msg {
    struct raft_msg m;
    struct raft_entry *ents;
    uint8_t *blob;
};

struct fx {
    struct fx_node nodes[FX_MAX];
    uint32_t n, voters;
    uint64_t now;
    uint64_t rng;
    struct fx_msg *q;
    uint32_t nq, capq;
    bool cut[FX_MAX + 1][FX_MAX + 1]; /* [from][to] by id */
    struct raft_options opts;
    /* Snapshot files are named "a.<index>", "b.<index>"; saving (or installing) a snapshot
     * deletes the previous one's files, so snapshot_read of an older snapshot fails. */
    bool versioned_files;
    uint64_t call_gen; /* bumped before every call into a node */
    /* completions seen */
    uint64_t props_ok, props_failed, reads_ok, reads_failed;
    int last_prop_status, last_read_status;
    uint64_t last_read_index;
};

/* Creates n nodes (ids 1..n), the first `voters` bootstrapped as voters (others start empty). */
void fx_init(struct fx *fx, uint32_t n, uint32_t voters, const struct raft_options *opts);
void fx_free(struct fx *fx);
/* Starts (or restarts) node id from its durable state. */
void fx_start(struct fx *fx, uint64_t id);
/* Stops node id (pending writes are lost). */
void fx_stop(struct fx *fx, uint64_t id);
/* One millisecond: complete disk writes, deliver queued messages, tick every node. */
void fx_step(struct fx *fx);
/* Steps until the predicate holds or max_ms pass; returns whether it holds. */
bool fx_run_until(struct fx *fx, bool (*pred)(struct fx *fx, void *arg), void *arg,
                  uint32_t max_ms);
void fx_run(struct fx *fx, uint32_t ms);
/* Cuts (or restores) both directions between id and every other node. */
void fx_isolate(struct fx *fx, uint64_t id, bool cut);
/* The unique leader with the highest term, or NULL. */
struct fx_node *fx_leader(struct fx *fx);
struct fx_node *fx_node(struct fx *fx, uint64_t id);
/* Proposes value v on node id; returns raft_propose's result. */
int fx_propose(struct fx *fx, uint64_t id, uint64_t v);
/* Predicates */
bool fx_has_leader(struct fx *fx, void *arg);
bool fx_all_applied(struct fx *fx, void *arg); /* arg: uint64_t *index */

#endif
