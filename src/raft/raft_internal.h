/* Internal state of the Raft core (src/raft/raft.c). Not for use outside src/raft and tests. */
#ifndef CURVE_RAFT_INTERNAL_H
#define CURVE_RAFT_INTERNAL_H

#include "raft/raft.h"

/* Entries kept in memory: e[start .. start+n) are indexes offset+1 .. offset+n. Each entry's
 * data is owned (malloc) by the log. */
struct raft_log {
    struct raft_entry *e;
    uint64_t start, n, cap;
    uint64_t offset;      /* index of the entry before the first in memory */
    uint64_t offset_term; /* its term (0 for index 0) */
    uint64_t bytes;       /* payload bytes held */
};

enum raft_progress_state {
    RAFT_PR_PROBE = 1,    /* one AppendEntries at a time until the follower's position is known */
    RAFT_PR_PIPELINE = 2, /* up to max_inflight_msgs optimistic AppendEntries */
    RAFT_PR_SNAPSHOT = 3, /* the follower needs a snapshot (entries compacted) */
};

/* Decoded manifest: one allocation holding files[] and the NUL-terminated names. */
struct raft_mdec {
    struct raft_manifest m;
    void *mem;
};

/* A snapshot known to this node; shared (refcounted) by transfers in progress. */
struct raft_snap {
    unsigned refs;
    struct raft_snapshot_meta meta;
    uint8_t *enc; /* encoded manifest, NULL when unknown (e.g. loaded at boot) */
    uint32_t enc_len;
    struct raft_mdec dec;
};

struct raft_piece {
    uint32_t file;
    uint64_t off;
    uint32_t len;
    uint64_t sent_ms;
};

enum raft_xfer_phase {
    RAFT_XFER_BEGIN = 1,
    RAFT_XFER_PIECES = 2,
    RAFT_XFER_FINISH = 3,
};

/* Leader side of a snapshot transfer to one follower. */
struct raft_xfer {
    struct raft_snap *s;
    uint8_t phase;
    uint64_t phase_ms; /* when BEGIN / FINISH was last sent */
    uint32_t file;     /* send cursor */
    uint64_t off;
    struct raft_piece inflight[RAFT_MAX_PIECES_INFLIGHT];
    uint32_t ninflight;
    uint64_t tokens, tokens_ms; /* throttle (token bucket in bytes) */
    uint8_t *buf;               /* one piece */
    uint32_t read_failures;     /* consecutive snapshot_read errors on `s` (bound:
                                   RAFT_MAX_SNAPSHOT_READ_FAILURES) */
};

struct raft_progress {
    uint64_t id;
    uint8_t role;
    uint8_t state;
    uint8_t probe_sent;
    uint64_t match, next;
    uint64_t inflight[RAFT_MAX_INFLIGHT]; /* last index of each pipelined AppendEntries */
    uint32_t ninflight;
    uint64_t last_send_ms, last_ack_ms, last_progress_ms;
    uint64_t ack_seq, ack_ts;
    struct raft_xfer *x;
    uint64_t xfer_retry_ms; /* no new transfer before this time (after an abandoned one) */
};

struct raft_proposal {
    uint64_t index, term;
    void *cookie;
};

struct raft_read {
    uint64_t index; /* 0: waiting for the leader's first commit in its term */
    uint64_t seq;
    void *cookie;
};

struct raft_append_req {
    uint64_t seq, last;
    uint32_t n;
};

/* Follower side of an install in progress. */
struct raft_inst {
    bool active;
    uint64_t term;
    struct raft_snapshot_meta meta;
    uint8_t *enc; /* copy of the encoded manifest (dec points into it) */
    struct raft_mdec dec;
};

struct raft {
    struct raft_options o;
    struct raft_io *io;
    struct raft_fsm *fsm;
    struct raft_cbs cbs;
    uint64_t id;
    int failed;
    bool failed_stepped_down; /* failed_stepdown() ran (once per failure) */
    bool started;

    int role;
    uint64_t term, vote, leader;
    uint64_t durable_term, durable_vote; /* last (term, vote) known durable */
    struct raft_msg deferred[RAFT_MAX_DEFERRED_MSGS];
    uint32_t ndeferred;

    struct raft_log log;
    uint64_t commit, applied, durable;
    struct raft_append_req *appends; /* ring of RAFT_MAX_PENDING_APPENDS */
    uint64_t append_issued, append_done, trunc_seq;
    uint64_t append_entries_inflight; /* <= RAFT_MAX_PENDING_APPEND_ENTRIES */

    struct raft_config conf; /* latest in the log (in effect) */
    uint64_t conf_index;
    struct raft_config conf_applied; /* as of `applied` (for snapshots) */
    uint64_t conf_applied_index;

    bool has_snap;
    struct raft_snapshot_meta snap_meta; /* latest snapshot of this node */
    struct raft_snap *snap;              /* with manifest, when known */
    bool saving;
    uint64_t follower_refused;  /* AppendEntries dropped over max_log_bytes (follower) */
    bool apply_yielded;
    bool in_apply; /* inside raft_apply(): with a budget, only it applies */         /* cbs.apply_pending called, raft_apply() not yet */
    uint64_t applied_bytes;     /* payload applied since the last snapshot */
    uint64_t saving_bytes_mark; /* applied_bytes when the save in flight was requested */
    bool want_snapshot;         /* a follower needs one and we have no manifest */
    uint64_t xfer_switches;     /* transfers moved to a newer snapshot (stats, tests) */
    uint64_t xfer_abandons;     /* transfers abandoned after RAFT_MAX_SNAPSHOT_READ_FAILURES */

    /* elections */
    uint64_t election_deadline, last_leader_contact;
    uint64_t votes[RAFT_MAX_SERVERS];
    uint32_t nvotes;
    bool campaign_pending; /* candidate waiting for its vote to be durable */
    bool campaign_transfer;

    /* follower: acknowledgement owed to the leader */
    uint64_t f_match, f_acked, f_seq, f_ts;

    /* leader */
    struct raft_progress pr[RAFT_MAX_SERVERS];
    uint32_t npr;
    uint64_t hb_deadline, cq_deadline;
    uint64_t send_seq;
    uint64_t noop_index;
    bool lease_disabled;
    uint64_t transfer_target, transfer_deadline;
    bool transfer_sent;

    struct raft_proposal *props; /* ring of o.max_pending_proposals */
    uint64_t props_head, nprops;
    struct raft_read *reads; /* ring of o.max_pending_reads */
    uint64_t reads_head, nreads;

    struct raft_inst inst;
};

#endif
