/*
 * Curve-C Raft core: a consensus state machine with NO I/O of its own (canonical/raft style).
 *
 * Time, randomness, disk and network reach the core only through `struct raft_io`; the
 * replicated state machine is `struct raft_fsm`. The same code runs in the daemons (with the
 * disk-log + RPC adapters of src/raft/io/) and in the deterministic simulator (tests/sim).
 * See docs/raft.md for the design, the lease bound and the snapshot protocol.
 *
 * Features: pre-vote, randomized election timeouts, leader election, log replication with
 * pipelining and batching, commit of current-term entries by counting (Raft §5.4.2), in-order
 * apply, check-quorum, leader lease + ReadIndex, state-machine-owned snapshots with chunked file
 * transfer, single-server membership change (learner → voter), leader transfer (TimeoutNow),
 * forced single-member reset.
 *
 * Threading: a `struct raft` belongs to one event loop. Every raft_* function, every io/fsm
 * callback and every completion (raft_io_*_done, raft_snapshot_saved) runs on that loop.
 * The core never calls back into itself re-entrantly from an io function: an io function must
 * not call raft_* on the same node before returning (queue the completion instead).
 *
 * Errors: functions return 0 or a negative errno / CURVE_ERR_* (include/curve/errors.h).
 */
#ifndef CURVE_RAFT_H
#define CURVE_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Bounds (TigerBeetle style: every queue and batch is bounded; defaults in raft_options)
 * ------------------------------------------------------------------------------------------- */
#define RAFT_MAX_SERVERS         9           /* voters + learners in one configuration */
#define RAFT_MAX_INFLIGHT        64          /* hard cap of pipelined AppendEntries per follower */
#define RAFT_MAX_ENTRIES_PER_MSG 1024        /* hard cap of entries in one AppendEntries */
#define RAFT_MAX_ENTRY_BYTES     (64u << 20) /* one entry's payload */
#define RAFT_MAX_MANIFEST_BYTES  (4u << 20)  /* encoded snapshot manifest */
#define RAFT_MAX_SNAPSHOT_FILES  65536       /* files in one manifest */
#define RAFT_MAX_FILE_NAME       255         /* bytes of a snapshot file name */
#define RAFT_MAX_PIECES_INFLIGHT 32 /* hard cap of snapshot pieces in flight per follower */
#define RAFT_MAX_DEFERRED_MSGS   16 /* replies held until term/vote are durable */
/* Consecutive fsm->snapshot_read errors (one attempt per tick) a transfer tolerates on a
 * snapshot that is still the newest; then it is abandoned, a fresh snapshot is requested and a
 * new transfer starts one election timeout later. (An error while a newer snapshot exists
 * switches the transfer to it at once: docs/raft.md §6.) */
#define RAFT_MAX_SNAPSHOT_READ_FAILURES 8
#define RAFT_MAX_PENDING_APPENDS        4096 /* io->append requests not yet completed */
/* Entries handed to io->append and not yet completed. An io implementation must accept at
 * least this many queued entries (the disk log's default bound is 65536). */
#define RAFT_MAX_PENDING_APPEND_ENTRIES 16384

/* ---------------------------------------------------------------------------------------------
 * Entries and configurations
 * ------------------------------------------------------------------------------------------- */
enum raft_entry_type {
    RAFT_ENTRY_COMMAND = 1, /* opaque state-machine command */
    RAFT_ENTRY_CONFIG = 2,  /* encoded struct raft_config (raft_config_encode) */
    RAFT_ENTRY_NOOP = 3,    /* appended by every new leader (commits the previous terms) */
};

/* A log entry. Its index is implicit (position). `data` is BORROWED wherever an entry crosses
 * the API (io->append, io->send, fsm->apply, raft_recv): valid only during that call. */
struct raft_entry {
    uint64_t term;
    uint8_t type;     /* enum raft_entry_type */
    uint32_t len;     /* <= RAFT_MAX_ENTRY_BYTES */
    const void *data; /* len bytes (NULL when len == 0) */
    /* Set by the core on the entries it hands out (io->append, io->send, fsm->apply) when
     * len > 0: the refcounted buffer `data` points into, so an io can keep the bytes (disk log
     * queue, RPC attachment) by taking a reference instead of copying them. Ignored on entries
     * handed to the core (a copy of a raft_entry may carry a stale pointer here); callers give
     * buffers explicitly: raft_msg.ae.buf, raft_prop.buf. */
    struct curve_buf *buf;
};

enum raft_server_role {
    RAFT_VOTER = 1,
    RAFT_LEARNER = 2, /* receives the log, does not vote, not counted for quorum */
};

struct raft_server {
    uint64_t id;  /* != 0 */
    uint8_t role; /* enum raft_server_role */
};

struct raft_config {
    uint32_t n;
    struct raft_server s[RAFT_MAX_SERVERS];
};

#define RAFT_CONFIG_ENCODED_MAX (2 + RAFT_MAX_SERVERS * 9)
/* Encodes `c` (version byte, count, n × (u64 id LE, u8 role)) into buf. Returns the length. */
size_t raft_config_encode(const struct raft_config *c, uint8_t buf[RAFT_CONFIG_ENCODED_MAX]);
/* Decodes and validates (ids unique and non-zero, roles known, at most RAFT_MAX_SERVERS).
 * Returns 0 or CURVE_ERR_CORRUPT. */
int raft_config_decode(const void *buf, size_t len, struct raft_config *out);
/* Returns the server with `id`, or NULL. */
const struct raft_server *raft_config_get(const struct raft_config *c, uint64_t id);

/* ---------------------------------------------------------------------------------------------
 * Snapshots (owned by the state machine)
 * ------------------------------------------------------------------------------------------- */
struct raft_snapshot_meta {
    uint64_t index;      /* last log index covered */
    uint64_t term;       /* term of that entry */
    uint64_t conf_index; /* index of the configuration entry in effect at `index` */
    struct raft_config conf;
};

struct raft_snapshot_file {
    const char *name; /* NUL-terminated, 1..RAFT_MAX_FILE_NAME bytes, no '/' at start */
    uint64_t size;    /* bytes to transfer */
};

/* What the state machine returns from a snapshot save: opaque bytes (for chunk data: the
 * configuration epoch and whatever else it needs) plus the list of files a lagging follower must
 * fetch. Everything is borrowed during the call that passes it. */
struct raft_manifest {
    const void *meta;
    uint32_t meta_len;
    uint32_t nfiles;
    const struct raft_snapshot_file *files;
};

/* ---------------------------------------------------------------------------------------------
 * Messages (the network transport encodes these; see docs/raft.md "Message types")
 * ------------------------------------------------------------------------------------------- */
enum raft_msg_type {
    RAFT_MSG_REQUEST_VOTE = 1,
    RAFT_MSG_REQUEST_VOTE_RESULT = 2,
    RAFT_MSG_APPEND_ENTRIES = 3,
    RAFT_MSG_APPEND_ENTRIES_RESULT = 4,
    RAFT_MSG_INSTALL_SNAPSHOT = 5,
    RAFT_MSG_INSTALL_SNAPSHOT_RESULT = 6,
    RAFT_MSG_TIMEOUT_NOW = 7,
};
#define RAFT_MSG_TYPE_MAX 7

enum raft_snap_kind {
    RAFT_SNAP_BEGIN = 1,  /* meta + encoded manifest in data */
    RAFT_SNAP_PIECE = 2,  /* bytes [offset, offset+len) of manifest file #file */
    RAFT_SNAP_FINISH = 3, /* all pieces acknowledged: install it */
};

struct raft_msg {
    uint8_t type;      /* enum raft_msg_type */
    uint64_t group_id; /* must match the receiving node's group */
    uint64_t from, to; /* server ids */
    uint64_t term;
    union {
        struct {
            uint64_t last_index, last_term;
            uint8_t pre_vote; /* 1: pre-vote (Raft thesis §9.6): term not incremented */
            uint8_t transfer; /* 1: leader transfer; voters ignore leader stickiness */
        } rv;
        struct {
            uint8_t granted;
            uint8_t pre_vote;
        } rvr;
        struct {
            uint64_t prev_index, prev_term, commit;
            uint64_t seq; /* leader's send sequence, echoed (ReadIndex) */
            uint64_t ts;  /* leader's now_ms at send, echoed (lease) */
            uint32_t n;
            const struct raft_entry *entries; /* n entries, prev_index+1.. */
            /* Receiving only, optional: a refcounted buffer holding every entry's data; the
             * core keeps references to it instead of copying the entries (NULL: copied). */
            struct curve_buf *buf;
        } ae;
        struct {
            uint8_t success;
            uint64_t last_index; /* success: matched (durable) index; reject: rejected prev */
            uint64_t hint;       /* reject: next index the leader should try */
            uint64_t seq, ts;    /* echoed from the AppendEntries */
        } aer;
        struct {
            uint8_t kind;                   /* enum raft_snap_kind */
            struct raft_snapshot_meta meta; /* BEGIN/PIECE/FINISH: index+term identify it */
            uint32_t file;
            uint64_t offset;
            uint32_t len;
            const void *data; /* BEGIN: encoded manifest; PIECE: file bytes */
        } snap;
        struct {
            uint8_t kind;
            int32_t status; /* 0 or negative error */
            uint64_t index; /* snapshot index */
            uint32_t file;
            uint64_t offset;
            uint32_t len;
        } snapr;
    };
};

/* ---------------------------------------------------------------------------------------------
 * I/O interface (implemented by the simulator and by src/raft/io adapters)
 * ------------------------------------------------------------------------------------------- */
#define RAFT_IO_VERSION 1

struct raft;

struct raft_io {
    int version; /* RAFT_IO_VERSION */
    void *data;  /* owned by the implementation */

    /* Monotonic milliseconds. Rate drift versus other nodes' clocks must stay within
     * raft_options.max_clock_drift_permille (lease safety, docs/raft.md). */
    uint64_t (*now_ms)(struct raft_io *io);
    /* Uniform random 64 bits (need not be cryptographic). */
    uint64_t (*random)(struct raft_io *io);

    /* Durably store (term, vote). Asynchronous: return 0 and later call raft_io_meta_done(r,
     * term, vote, status) exactly once, completions in call order. Non-zero return: failure
     * (the node stops: see raft_failed). */
    int (*persist_meta)(struct raft_io *io, uint64_t term, uint64_t vote);

    /* Append n >= 1 entries starting at first_index (the entry before is the current log
     * tail). The entries and their data are borrowed during the call only. Asynchronous: later
     * call raft_io_append_done(r, seq, status) once, in call order; a completion means these
     * entries AND every earlier write are durable (group commit). */
    int (*append)(struct raft_io *io, uint64_t seq, uint64_t first_index,
                  const struct raft_entry *entries, uint32_t n);
    /* Delete entries >= from_index. Ordered with append (applies after earlier appends,
     * before later ones); no completion (the next append completion covers it). */
    int (*truncate)(struct raft_io *io, uint64_t from_index);
    /* Entries <= upto_index are no longer needed (a snapshot covers them) and may be deleted
     * whenever convenient. Never required for correctness. */
    int (*compact)(struct raft_io *io, uint64_t upto_index);
    /* Delete every entry; the next append will be at index+1 (after a snapshot install whose
     * last entry is (index, term)). Ordered like truncate. */
    int (*reset_log)(struct raft_io *io, uint64_t index, uint64_t term);

    /* Send a message, fire and forget (may be lost). `m` and everything it points to are
     * borrowed: encode or copy before returning. Returns 0 or an error (ignored: treated as a
     * lost message). */
    int (*send)(struct raft_io *io, const struct raft_msg *m);
};

/* ---------------------------------------------------------------------------------------------
 * State machine interface
 * ------------------------------------------------------------------------------------------- */
#define RAFT_FSM_VERSION 1

struct raft_fsm {
    int version; /* RAFT_FSM_VERSION */
    void *data;

    /* Apply committed entry `index` (every type, in order, exactly once per process life; after
     * a restart entries after the snapshot index are applied again: apply must be idempotent
     * with respect to the snapshot it restarted from). Returns a status handed to the proposal's
     * completion (0 or negative); never fatal to the core. */
    int (*apply)(struct raft_fsm *f, uint64_t index, const struct raft_entry *e);

    /* Take a snapshot of the state as of `meta->index` (== the last applied index at the time
     * of the call) and store it durably together with `meta` (so the adapter can pass it back in
     * raft_boot after a restart). Asynchronous: return 0 and later call
     * raft_snapshot_saved(r, meta->index, status, manifest). Optional (NULL: never snapshot). */
    int (*snapshot_save)(struct raft_fsm *f, const struct raft_snapshot_meta *meta);

    /* Leader side of a transfer: read up to len bytes at `offset` of snapshot file `name` into
     * buf. Synchronous. Returns bytes read (>= 0; fewer than len only at end of file, files may
     * have grown or been rewritten since the snapshot: newer content is fine) or an error. On an
     * error the core moves the transfer to a newer snapshot if there is one (so the state machine
     * may delete an older snapshot's files once a newer one is saved), otherwise retries at the
     * next tick, at most RAFT_MAX_SNAPSHOT_READ_FAILURES times in a row (docs/raft.md §6). */
    int (*snapshot_read)(struct raft_fsm *f, const char *name, uint64_t offset, void *buf,
                         uint32_t len);

    /* Follower side: a transfer of snapshot `meta` with `manifest` starts (any previous
     * unfinished one is abandoned first through install_abort). Synchronous. */
    int (*install_begin)(struct raft_fsm *f, const struct raft_snapshot_meta *meta,
                         const struct raft_manifest *manifest);
    /* Write bytes of a file of the transfer in progress (pieces may come in any order and
     * more than once). Synchronous. */
    int (*install_write)(struct raft_fsm *f, const char *name, uint64_t offset, const void *buf,
                         uint32_t len);
    /* All pieces written: make the snapshot durable and the state machine's state (it then
     * reflects at least every entry <= meta->index; later entries will be re-applied).
     * Synchronous. Returns 0 or error (the leader retries). */
    int (*install_finish)(struct raft_fsm *f, const struct raft_snapshot_meta *meta,
                          const struct raft_manifest *manifest);
    /* Drop the unfinished transfer. */
    void (*install_abort)(struct raft_fsm *f);
};

/* ---------------------------------------------------------------------------------------------
 * Node
 * ------------------------------------------------------------------------------------------- */
enum raft_role {
    RAFT_FOLLOWER = 1,
    RAFT_PRE_CANDIDATE = 2,
    RAFT_CANDIDATE = 3,
    RAFT_LEADER = 4,
};

/* Completions of proposals and reads. Exactly once per accepted request (see raft_propose /
 * raft_read_index); `data` is the cbs.data pointer. May be NULL. */
struct raft_cbs {
    void *data;
    /* status: the fsm apply result (committed and applied); CURVE_ERR_NOT_LEADER (another
     * entry was committed at that index: definitely not committed); CURVE_ERR_FAILURE_UNKNOWN
     * (the entry left this node's log, e.g. truncated by a new leader or replaced by an
     * installed snapshot: it may still commit elsewhere); CURVE_ERR_SHUTDOWN (raft_free before
     * the outcome was known). */
    void (*propose_done)(struct raft *r, void *cookie, uint64_t index, int status);
    /* status 0: every entry committed before the read was requested is applied locally, read
     * the state machine now. CURVE_ERR_NOT_LEADER / CURVE_ERR_SHUTDOWN otherwise. */
    void (*read_done)(struct raft *r, void *cookie, uint64_t index, int status);
    /* Optional notification: role or term changed (e.g. for heartbeats to MDS). */
    void (*state_changed)(struct raft *r, int role, uint64_t term, uint64_t leader);
    /* Optional: committed entries wait to be applied. With it and o.apply_budget_us, the
     * node never applies inside other calls (messages, completions, ticks): it calls this once
     * and the owner calls raft_apply() on the node's loop later (a later loop turn, never from
     * inside this callback), which applies for at most the budget and calls this again if
     * entries are left. Without it the budget is ignored and entries apply as they commit. */
    void (*apply_pending)(struct raft *r);
};

struct raft_options {
    uint64_t group_id;
    uint64_t id;                       /* this server, != 0 */
    uint32_t election_timeout_ms;      /* base T: timeouts are random in [T, 2T) */
    uint32_t heartbeat_ms;             /* < election_timeout_ms / 2 */
    uint32_t max_clock_drift_permille; /* clock rate drift bound, lease = T × (1 − drift) */
    bool pre_vote;
    bool check_quorum;
    uint32_t max_entry_bytes; /* largest command (<= RAFT_MAX_ENTRY_BYTES and <= what
                                 the io's log accepts) */
    uint32_t max_entries_per_msg;
    uint32_t max_bytes_per_msg;        /* at least one entry is always sent */
    uint32_t max_inflight_msgs;        /* pipelined AppendEntries per follower */
    uint32_t max_pending_proposals;    /* raft_propose → CURVE_ERR_BUSY beyond */
    uint32_t max_pending_reads;        /* raft_read_index → CURVE_ERR_BUSY beyond */
    uint64_t snapshot_threshold;       /* take a snapshot every N applied entries (0: never) */
    uint64_t snapshot_threshold_bytes; /* ... or once the in-memory log holds this many payload
                                          bytes (0: no byte trigger). Bounds the memory of the
                                          log: entries are kept in memory until compacted */
    uint64_t snapshot_trailing;        /* keep up to N entries behind a snapshot for slow
                                          followers ... */
    uint64_t snapshot_trailing_bytes;  /* ... and at most this many payload bytes of them */
    uint64_t max_log_bytes;            /* leader: a proposal that would make the in-memory log
                                          exceed this many payload bytes is refused with
                                          CURVE_ERR_BUSY (and a snapshot is requested), so the
                                          log never holds more than this plus one entry;
                                          follower: new entries are dropped (the leader
                                          resends later) while the in-memory log holds more,
                                          e.g. when its state machine applies slower than the
                                          others (0: unlimited) */
    uint32_t snapshot_piece_bytes;     /* bytes per file piece */
    uint32_t snapshot_max_inflight;    /* pieces in flight per follower */
    uint64_t snapshot_bytes_per_sec;   /* transfer throttle per follower (0: unlimited) */
    uint32_t promote_max_lag;          /* raft_promote: learner within N entries of last index */
    uint32_t apply_budget_us;          /* apply for at most this long per call into the node (at
                                          least one entry), then yield (cbs.apply_pending); 0:
                                          apply every committed entry at once */
    /* Test-only fault injection proving the simulator's checker can fail. Never set in
     * production. Bit 0: commit entries of older terms by counting (Raft Figure 8 bug).
     * Bit 1: grant votes without the log up-to-date check. Bit 2: no leader stickiness (breaks
     * the lease). Bit 3: a snapshot transfer keeps its snapshot and retries a failed
     * snapshot_read forever (the stuck-transfer bug: breaks liveness). */
    uint32_t debug_unsafe;
};
#define RAFT_UNSAFE_COMMIT_OLD_TERMS 1u
#define RAFT_UNSAFE_VOTE_ANY_LOG     2u
#define RAFT_UNSAFE_NO_STICKINESS    4u
#define RAFT_UNSAFE_STUCK_TRANSFER   8u

/* Fills defaults: election 1000 ms, heartbeat 100 ms, drift 50‰, pre-vote and check-quorum on,
 * 4 MiB per entry, 64 entries / 1 MiB per message, 8 in flight, 4096 proposals, 1024 reads,
 * snapshot every 10000 entries or 64 MiB keeping 1000 entries / 8 MiB, 256 KiB pieces × 4,
 * 64 MiB/s, promote lag 64. */
void raft_options_default(struct raft_options *o);

/* State loaded from disk by the adapter (all borrowed during raft_start). */
struct raft_boot {
    uint64_t term, vote;
    const struct raft_snapshot_meta *snap; /* NULL: no snapshot */
    uint64_t first_index;                  /* index of entries[0] */
    const struct raft_entry *entries;
    uint32_t n;
    /* Used only when there is no snapshot and no entry: becomes entry 1 (term 1). Every
     * initial member must be bootstrapped with the same configuration. NULL for a server that
     * joins later as a learner (it receives the log from the leader). */
    const struct raft_config *bootstrap;
};

/* Allocates a node. `io`, `fsm` and `cbs` are borrowed and must outlive it. Returns 0,
 * -EINVAL (bad options, message says which) or -ENOMEM. Not started: call raft_start. */
int raft_new(const struct raft_options *o, struct raft_io *io, struct raft_fsm *fsm,
             const struct raft_cbs *cbs, struct raft **out);
/* Loads the boot state (copies it), validates it, and starts as a follower. May call io
 * (persist_meta, append, reset_log). Entries that do not continue the snapshot are dropped
 * (reset_log). A node alone in its configuration elects itself at its first tick.
 * Returns 0, -ENOMEM, -EINVAL (bad bootstrap configuration), -EIO (io refused reset_log) or
 * CURVE_ERR_CORRUPT (bad snapshot meta, entries with bad types or decreasing terms). */
int raft_start(struct raft *r, const struct raft_boot *boot);
/* Fails every pending proposal/read with CURVE_ERR_SHUTDOWN and frees the node. Completions
 * still owed by io (raft_io_*_done) must not be delivered afterwards. NULL is ignored. */
void raft_free(struct raft *r);

/* Drives timers (elections, heartbeats, check-quorum, transfer timeouts, snapshot pacing).
 * Call at least every heartbeat_ms / 2. */
void raft_tick(struct raft *r);
/* Continues applying committed entries after cbs.apply_pending (same budget). */
void raft_apply(struct raft *r);
/* Committed entries not applied yet (and the node has not failed). */
bool raft_apply_pending(const struct raft *r);
/* Handles a received message (borrowed for the call). Returns 0, or CURVE_ERR_RPC_BADREQ for a
 * malformed message (wrong group or destination, from 0 or from ourselves, term 0, unknown type,
 * counts or lengths beyond the bounds, entries with bad types/terms, undecodable configuration
 * entries, bad snapshot meta): the message is ignored and the node is unaffected. Messages that
 * are well formed but stale or unexpected are ignored (0). */
int raft_recv(struct raft *r, const struct raft_msg *m);

/* I/O completions (see struct raft_io), on the node's loop, never from inside an io call.
 * status != 0: the node enters the failed state (raft_failed() returns the error; it no longer
 * votes, replicates, applies or campaigns; the owner should close and reopen the group). A
 * failed leader steps down at once: TimeoutNow to its most up-to-date voter, then follower
 * with no leader; pending proposals fail with CURVE_ERR_FAILURE_UNKNOWN and reads with
 * CURVE_ERR_NOT_LEADER; cbs.state_changed runs once then (leader or not) with raft_failed()
 * already set, so the owner learns of the failure. */
void raft_io_meta_done(struct raft *r, uint64_t term, uint64_t vote, int status);
void raft_io_append_done(struct raft *r, uint64_t seq, int status);
/* State machine snapshot completion (fsm->snapshot_save). manifest borrowed. */
void raft_snapshot_saved(struct raft *r, uint64_t index, int status,
                         const struct raft_manifest *manifest);

/* Proposes a command on the leader (data copied). On 0, the index and term outputs (may be
 * NULL) receive the entry's position and cbs.propose_done(cookie) runs exactly once later. Errors:
 * CURVE_ERR_NOT_LEADER, CURVE_ERR_BUSY (too many pending, or leader transfer in progress),
 * -EINVAL (len > max_entry_bytes), -ENOMEM. */
int raft_propose(struct raft *r, const void *data, uint32_t len, void *cookie, uint64_t *index,
                 uint64_t *term);
/* One proposal of raft_propose_batch(). */
struct raft_prop {
    const void *data; /* borrowed for the call (copied, unless buf is set) */
    uint32_t len;
    struct curve_buf *buf; /* optional: data lies inside it; referenced instead of copied */
    void *cookie;
    uint64_t index, term; /* out: the entry's position when accepted */
    int status;           /* out: 0 accepted (propose_done(cookie) runs exactly once later),
                             else what raft_propose() would have returned (no callback) */
};
/* Proposes p[0..n) in order as consecutive entries with ONE io->append and one AppendEntries
 * round per follower (batching of the proposals that arrived in one loop turn). Each p[i] is
 * accepted or refused as raft_propose() would accept or refuse it at that point (refused ones
 * leave no gap). Returns the number accepted. Same thread rules as raft_propose(). */
uint32_t raft_propose_batch(struct raft *r, struct raft_prop *p, uint32_t n);
/* Linearizable read barrier (ReadIndex, Raft thesis §6.4): on 0, cbs.read_done(cookie) runs
 * exactly once later. Errors: CURVE_ERR_NOT_LEADER, CURVE_ERR_BUSY. */
int raft_read_index(struct raft *r, void *cookie);
/* True when this node is leader and may serve reads from its state machine without a round
 * trip (leader lease; docs/raft.md gives the bound). */
bool raft_lease_valid(struct raft *r);

/* Membership, one server at a time, leader only (CURVE_ERR_NOT_LEADER); CURVE_ERR_BUSY while
 * the previous configuration change is uncommitted or the leader has not committed in its term;
 * -EINVAL for a bad id or role; -EEXIST / -ENOENT. Completion: the configuration entry commits
 * (observe with raft_status / state machine apply of the CONFIG entry). */
int raft_add_learner(struct raft *r, uint64_t id);
/* Learner → voter; CURVE_ERR_BUSY until the learner is within promote_max_lag entries. */
int raft_promote(struct raft *r, uint64_t id);
/* Removes a voter or learner (the leader may remove itself: it steps down once committed). */
int raft_remove(struct raft *r, uint64_t id);
/* Leader transfer (TimeoutNow). target 0: the most up-to-date voter. The leader stops taking
 * proposals until the transfer ends (success or one election timeout), and does not serve lease
 * reads for the rest of its term. Completion: observe the role change (cbs.state_changed).
 * Errors: CURVE_ERR_NOT_LEADER, CURVE_ERR_BUSY (a transfer is in progress), -EALREADY (target
 * is this node), -EINVAL (target is not a voter of the configuration). */
int raft_transfer_leader(struct raft *r, uint64_t target);
/* Operator-only forced reset when a majority is permanently lost: makes this node the single
 * voter of the group (new term, configuration entry appended locally) and it elects itself.
 * UNSAFE by nature (acknowledged entries on the lost majority may be lost); others must be
 * removed or wiped. Errors: the failed-state error, CURVE_ERR_BUSY (io backlog), -ENOMEM. */
int raft_reset_peers(struct raft *r);

struct raft_peer_status {
    uint64_t id;
    uint8_t role;         /* enum raft_server_role */
    uint64_t match, next; /* leader only */
    uint8_t progress;     /* 1 probe, 2 pipeline, 3 snapshot (leader only) */
    uint64_t last_ack_ms; /* leader only: now_ms of the last response */
};

struct raft_status {
    uint8_t role;
    uint64_t id, term, vote, leader;
    uint64_t commit, applied, last_index, first_index, durable;
    uint64_t snapshot_index, snapshot_term;
    uint64_t log_bytes;         /* payload bytes of the entries kept in memory */
    int64_t lease_remaining_ms; /* <= 0: no valid lease */
    int failed;                 /* non-zero: the io error that stopped the node */
    uint64_t follower_refused;  /* AppendEntries dropped over max_log_bytes (as follower) */
    uint32_t npeers;
    struct raft_peer_status peers[RAFT_MAX_SERVERS];
};
void raft_status(struct raft *r, struct raft_status *st);

/* Small accessors (also used by the simulator's checker). */
int raft_role(const struct raft *r);
uint64_t raft_term(const struct raft *r);
uint64_t raft_leader(const struct raft *r);
uint64_t raft_commit_index(const struct raft *r);
uint64_t raft_applied_index(const struct raft *r);
uint64_t raft_last_index(const struct raft *r);
/* Term of entry `index` if known (in the log or the snapshot's last entry), else 0. */
uint64_t raft_term_at(const struct raft *r, uint64_t index);
/* Payload bytes of the entries held in memory (every entry after the last compaction). */
uint64_t raft_log_bytes(const struct raft *r);
/* Payload bytes applied since the last snapshot (what a snapshot now would let compact). */
uint64_t raft_unsnapshotted_bytes(const struct raft *r);
/* Asks for a snapshot at the applied index now (memory pressure), unless one is being saved
 * or nothing was applied since the last one. Loop thread. */
void raft_request_snapshot(struct raft *r);
/* Entry at index if it is in memory, else NULL (borrowed until the next raft_* call). */
const struct raft_entry *raft_entry_at(const struct raft *r, uint64_t index);
const struct raft_config *raft_config(const struct raft *r);
int raft_failed(const struct raft *r);
/* The owner reports that the node's storage failed outside the raft io (e.g. the state
 * machine's disk: a chunk write or fsync failed): the node enters the failed state like an
 * append failure (err: negative errno / CURVE_ERR_*; other values read as -EIO). Safe to call
 * from inside a callback (e.g. fsm->apply): the step-down (see raft_io_append_done) runs at
 * the next raft_tick, not inside this call. Idempotent; returns raft_failed(). Loop thread. */
int raft_fail(struct raft *r, int err);
/* The `cbs.data` pointer given to raft_new (copied there, never changes), so that callbacks
 * receiving only `r` (state_changed, propose_done, read_done) can find their owner without
 * thread-locals. Safe to call from any callback and at any time between raft_new and raft_free. */
void *raft_cbs_data(const struct raft *r);

const char *raft_role_name(int role);

#ifdef __cplusplus
}
#endif
#endif
