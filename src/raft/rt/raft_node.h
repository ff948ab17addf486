/*
 * Raft runtime: a multi-Raft host running many groups (copysets) of the Raft core
 * (src/raft/raft.h) over the disk log (src/raft/io/disklog.h), the metadata store
 * (src/raft/io/metastore.h), event loops (src/loop) and the RPC framework (src/rpc).
 * Design, threads, wire messages and data layout: docs/raft-runtime.md.
 *
 * Model
 *   A host owns: one RPC server port shared by every group (service RAFTRT_SERVICE_ID), a group
 *   of event loops (each Raft group is bound to one of them by its id), a worker pool (term/vote
 *   and snapshot-meta fsyncs), an address book server id -> "ip:port" and one RPC channel per
 *   peer address shared by all groups. Each group has its own directory
 *   <data_dir>/<group id>/{log,meta,snapshot} and its own disk log; by default the logs of all
 *   groups with the same data_dir are written by one shared writer thread (rlog_disk, see
 *   raftrt_host_opts.log_thread_per_group).
 *
 *   Transport: every Raft message is one RPC request (service 20, method 1, curve.raft.Message
 *   with the group id; entry payloads / snapshot bytes in the attachment). The receiver answers
 *   with an empty Ack right after handing the message to the group; the sender ignores the
 *   reply (fire and forget: Raft tolerates loss). Unknown groups are acknowledged and dropped.
 *
 * Threads
 *   raftrt_host_* : from the creating thread (never from a host loop), except raftrt_host_loop
 *   and the address book functions (any thread).
 *   Group functions: any thread that is NOT one of the host's loops, unless stated otherwise
 *   (they run on the group's loop through curve_loop_call_sync). raftrt_propose and
 *   raftrt_read may be called from any thread including the loops.
 *   Every callback (fsm ops, propose/read completions) runs on the group's loop.
 *
 * Errors: 0 or a negative errno / CURVE_ERR_* (include/curve/errors.h).
 */
#ifndef CURVE_RAFT_RT_RAFT_NODE_H
#define CURVE_RAFT_RT_RAFT_NODE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/metrics.h"
#include "loop/loop.h"
#include "raft/io/disklog.h"
#include "raft/raft.h"
#include "rpc/rpc_server.h"

#define RAFTRT_SERVICE_ID     20u
#define RAFTRT_METHOD_MESSAGE 1u

/* Bounds. */
#define RAFTRT_MAX_PEERS        1024u /* entries in the host address book */
#define RAFTRT_MAX_GROUPS       4096u /* groups per host */
#define RAFTRT_ADDR_MAX         64u   /* bytes of "ip:port" */
#define RAFTRT_META_QUEUE_MAX   64u   /* term/vote stores queued per group */
#define RAFTRT_SEND_TIMEOUT_MS  2000u /* timeout of one message RPC */
#define RAFTRT_CHANNEL_INFLIGHT 8192u /* messages in flight per peer channel */
#define RAFTRT_LOOPS_MAX        64u
#define RAFTRT_MEM_MIN_SNAPSHOT_BYTES (1u << 20) /* applied bytes below which the memory budget
                                                  never forces a group's snapshot */
#define RAFTRT_MAX_LOG_DISKS    16u   /* shared log writers (distinct data_dirs) per host; more
                                       * data_dirs fall back to a log thread per group */
#define RAFTRT_SNAP_META_FILE   "raft_snapshot_meta" /* in <group>/snapshot */

typedef struct raftrt_host raftrt_host;
typedef struct raftrt_group raftrt_group;

typedef struct raftrt_host_opts {
    uint64_t self_id;        /* this server's id in every group (!= 0) */
    const char *listen_addr; /* "ip:port" (port 0 = ephemeral) */
    unsigned nloops;         /* loops shared by groups and RPC connections (0: 2) */
    unsigned nworkers;       /* worker pool threads (0: 2) */
    curve_metrics *metrics;  /* borrowed; NULL: no metrics */
    /* false (default): the disk logs of all groups with the same data_dir share one writer
     * thread (rlog_disk: one write per group and one fdatasync per touched group per round);
     * true: every group's log has its own IO thread (the behaviour before shared writers). */
    bool log_thread_per_group;
    /* Bound on the payload bytes that all groups of this host keep in memory (each Raft core
     * keeps every entry since its last snapshot/compaction). When the total is above it, a
     * group holding at least its share (budget / groups, and at least
     * RAFTRT_MEM_MIN_SNAPSHOT_BYTES applied since its last snapshot) takes a snapshot, which
     * compacts its log. 0: no budget (per-group snapshot thresholds only). */
    uint64_t log_mem_budget;
} raftrt_host_opts;

/* Creates a host: loops, worker pool, RPC server with the Raft service (not listening yet).
 * Returns 0, -EINVAL or -ENOMEM / errno. */
int raftrt_host_new(const raftrt_host_opts *opts, raftrt_host **out);
/* Adds another RPC service (e.g. the daemon's own) on the same port; before start. `svc`
 * borrowed (must outlive the host). Returns what rpc_server_add_service returns. */
int raftrt_host_add_service(raftrt_host *h, const rpc_service_def *svc);
/* Starts listening. Returns 0 or a negative errno. */
int raftrt_host_start(raftrt_host *h);
/* Bound port after start. */
int raftrt_host_port(const raftrt_host *h);
/* Stops the RPC server, stops every group still open, closes channels, frees everything. */
void raftrt_host_free(raftrt_host *h);
/* The loop a group id is bound to (any thread). */
curve_loop *raftrt_host_loop(raftrt_host *h, uint64_t group_id);
curve_workpool *raftrt_host_workpool(raftrt_host *h);

/* Address book: sets (or replaces) the address of server `id` ("ip:port", copied).
 * Returns 0, -EINVAL, -ENOSPC (RAFTRT_MAX_PEERS). Any thread. */
int raftrt_host_set_peer(raftrt_host *h, uint64_t id, const char *addr);
/* Copies the address of `id` into buf; returns 0 or -ENOENT. Any thread. */
int raftrt_host_peer_addr(raftrt_host *h, uint64_t id, char *buf, size_t len);

/* The state machine of one group. Same contract as struct raft_fsm (src/raft/raft.h) except
 * for snapshot_save: the runtime stores the snapshot meta (for raft_boot after a restart) in
 * <group>/snapshot/raft_snapshot_meta after the fsm has finished, so the fsm calls
 * raftrt_snapshot_saved() instead of raft_snapshot_saved(). After install_finish succeeds the
 * runtime stores that file too (synchronously, on the loop). All ops run on the group loop.
 * An apply returning CURVE_ERR_DISK_FAIL stops the node (raft_fail: a leader steps down and
 * hands over, the node stops voting and campaigning) until the group is reopened. */
typedef struct raftrt_fsm {
    void *ctx;
    int (*apply)(void *ctx, uint64_t index, const struct raft_entry *e);
    int (*snapshot_save)(void *ctx, raftrt_group *g, const struct raft_snapshot_meta *meta);
    int (*snapshot_read)(void *ctx, const char *name, uint64_t offset, void *buf, uint32_t len);
    int (*install_begin)(void *ctx, const struct raft_snapshot_meta *meta,
                         const struct raft_manifest *manifest);
    int (*install_write)(void *ctx, const char *name, uint64_t offset, const void *buf,
                         uint32_t len);
    int (*install_finish)(void *ctx, const struct raft_snapshot_meta *meta,
                          const struct raft_manifest *manifest);
    void (*install_abort)(void *ctx);
    /* Optional: role/term/leader changed (group loop). */
    void (*state_changed)(void *ctx, int role, uint64_t term, uint64_t leader);
    /* Optional: the node entered the failed state (log, term/vote or state machine storage
     * failed: `err`) and stepped down; it stays so until the group is reopened. Once, on the
     * group loop, right after the matching state_changed. */
    void (*failed)(void *ctx, int err);
} raftrt_fsm;

typedef struct raftrt_group_opts {
    uint64_t group_id;
    const char *data_dir;                /* the group lives in <data_dir>/<group_id> */
    struct raft_options raft;            /* group_id and id are overwritten; 0 fields: defaults */
    const struct raft_config *bootstrap; /* initial members (NULL: joins later as learner) */
    const raftrt_fsm *fsm;               /* copied; fsm->ctx must outlive the group */
    uint32_t tick_ms;                    /* 0: heartbeat_ms / 2 */
    uint32_t log_segment_bytes;          /* 0: disklog default */
} raftrt_group_opts;

/* Apply budget per loop turn and group (raft_options.apply_budget_us): a slow state machine
 * delays its own entries, never the loop's messages, heartbeats and other groups for longer. */
#define RAFTRT_APPLY_BUDGET_US 5000u

/* Fills o->raft with raft_options_default() (apply_budget_us RAFTRT_APPLY_BUDGET_US) and the
 * rest with zeros. */
void raftrt_group_opts_default(raftrt_group_opts *o);

/* Creates the directories if needed, recovers the log, the term/vote and the snapshot meta,
 * starts the node on its loop. The fsm must already hold the state of its latest snapshot
 * (it finds it in <data_dir>/<group id>/snapshot, see raftrt_group_path()). Returns 0, -EEXIST
 * (group already open), -EINVAL, -ENOSPC (RAFTRT_MAX_GROUPS), CURVE_ERR_CORRUPT (log/meta
 * damaged; logged), -ENOMEM or an errno. Not from a host loop; not concurrently for one id.
 * Server ids of the configuration must be in the address book before they are sent to
 * (raftrt_host_set_peer; e.g. before raftrt_add_learner). */
int raftrt_group_open(raftrt_host *h, const raftrt_group_opts *o, raftrt_group **out);
/* Stops the node (pending proposals and reads complete with CURVE_ERR_SHUTDOWN on the loop before
 * this returns), closes its log and releases the group: `g` must not be passed to any function
 * afterwards (callers stop their own submitters first). Not from a host loop. */
void raftrt_group_stop(raftrt_group *g);
/* Stops the group and deletes its directory. Returns 0 or a negative errno. */
int raftrt_group_remove(raftrt_group *g);

/* "<data_dir>/<gid>/<sub>" into buf (sub may be NULL/"" for the group dir). */
int raftrt_group_path(const char *data_dir, uint64_t group_id, const char *sub, char *buf,
                      size_t len);
/* Calls cb(arg, group_id) for every <data_dir>/<decimal id> directory (for daemons reloading
 * their groups). Returns 0 or a negative errno, or cb's non-zero return. */
int raftrt_scan_groups(const char *data_dir, int (*cb)(void *arg, uint64_t group_id), void *arg);

/* The open group `group_id` of this host, or NULL. The pointer stays valid until the caller
 * (who opened it) stops it. Any thread. */
raftrt_group *raftrt_host_group(raftrt_host *h, uint64_t group_id);
uint64_t raftrt_group_id(const raftrt_group *g);
curve_loop *raftrt_group_loop(raftrt_group *g);
/* The core node (group loop only). */
struct raft *raftrt_group_raft(raftrt_group *g);

/* Completion of a proposal: status is the fsm apply result (committed and applied), or
 * CURVE_ERR_NOT_LEADER (leader_hint: the known leader id or 0), CURVE_ERR_BUSY,
 * CURVE_ERR_FAILURE_UNKNOWN, CURVE_ERR_SHUTDOWN, -EINVAL, -ENOMEM. Runs on the group loop. */
typedef void (*raftrt_propose_cb)(void *arg, int status, uint64_t index, uint64_t leader_hint);
/* Proposes `len` bytes (copied). Returns 0 (cb runs exactly once, later) or -ENOMEM /
 * CURVE_ERR_SHUTDOWN (cb never runs). Any thread. */
int raftrt_propose(raftrt_group *g, const void *cmd, uint32_t len, raftrt_propose_cb cb, void *arg);

/* Like raftrt_propose, but fails with CURVE_ERR_NOT_LEADER unless this node is still the
 * leader in `expected_term` when the proposal reaches the group's loop (the term the caller saw
 * in raftrt_group_status; 0 = any). Any thread. */
int raftrt_propose_term(raftrt_group *g, const void *cmd, uint32_t len, uint64_t expected_term,
                        raftrt_propose_cb cb, void *arg);
/* Like raftrt_propose_term() with the command in the first `len` bytes of a refcounted buffer:
 * the runtime, the core's log, the disk log queue and the AppendEntries attachments reference
 * it instead of copying it (the caller must not modify it afterwards). `b` is borrowed (a
 * reference is taken). -EINVAL if b is NULL or len > its capacity. Any thread. */
int raftrt_propose_buf(raftrt_group *g, curve_buf *b, uint32_t len, uint64_t expected_term,
                       raftrt_propose_cb cb, void *arg);

/* Linearizable read barrier: cb(arg, 0, ...) on the group loop when the state machine may be
 * read (leader lease valid, else ReadIndex); NOT_LEADER / BUSY / SHUTDOWN otherwise. Returns 0
 * (cb runs once) or -ENOMEM / CURVE_ERR_SHUTDOWN. Any thread. */
int raftrt_read(raftrt_group *g, raftrt_propose_cb cb, void *arg);

/* Runs fn(arg, g, alive) on the group's loop, later; `alive` is false once the group has been
 * stopped (g stays valid during the call, e.g. to read the state machine there).
 * Returns 0 (fn runs exactly once) or -ENOMEM / CURVE_ERR_SHUTDOWN. Any thread. */
int raftrt_group_post(raftrt_group *g, void (*fn)(void *arg, raftrt_group *g, bool alive),
                      void *arg);

/* The fsm finished snapshot_save(meta->index == index): the runtime persists the snapshot
 * meta on the worker pool then calls raft_snapshot_saved. `manifest` is copied. Must be called
 * exactly once for every snapshot_save that returned 0, also after raftrt_group_stop (the group
 * memory stays allocated until then; the completion is then dropped). Any thread. */
void raftrt_snapshot_saved(raftrt_group *g, uint64_t index, int status,
                           const struct raft_manifest *manifest);

/* Status, membership and leadership (run on the group loop; return the core's result). */
void raftrt_group_status(raftrt_group *g, struct raft_status *st);
int raftrt_add_learner(raftrt_group *g, uint64_t id);
int raftrt_promote(raftrt_group *g, uint64_t id);
int raftrt_remove_peer(raftrt_group *g, uint64_t id);
int raftrt_transfer_leader(raftrt_group *g, uint64_t target);

/* Runtime counters of a group. Any thread. */
typedef struct raftrt_group_stats {
    rlog_stats log;     /* disk log counters (entries, syncs => batching factor) */
    uint64_t proposals; /* accepted by raftrt_propose */
    uint64_t msgs_sent, msgs_recv, send_errors;
    uint64_t snapshots_saved, snapshots_installed;
    uint64_t log_mem_bytes;     /* payload bytes the core keeps in memory now */
    uint64_t log_mem_max;       /* highest log_mem_bytes seen (sampled after each change) */
    uint64_t mem_snapshots;     /* snapshots requested by the host's log_mem_budget */
} raftrt_group_stats;
/* Payload bytes kept in memory by all groups of the host now (see log_mem_budget). */
uint64_t raftrt_host_log_mem(raftrt_host *h);
void raftrt_group_get_stats(raftrt_group *g, raftrt_group_stats *st);

/* Counters of the shared log writer of `data_dir` (as passed to raftrt_group_open). Returns 0,
 * or -ENOENT when this host has no shared writer for it (log_thread_per_group, or no group
 * opened there yet). Any thread. */
int raftrt_host_log_disk_stats(raftrt_host *h, const char *data_dir, rlog_disk_stats *st);

/* ---- internal, exposed for tests and the fuzz target ---- */
/* Snapshot meta file codec: "RSNM" u32 magic, u32 version, u64 index, u64 term, u64 conf_index,
 * u32 conf_len, conf bytes, u32 crc32c of everything before. Returns bytes / 0 or
 * CURVE_ERR_CORRUPT. */
#define RAFTRT__SNAPMETA_MAX (32 + RAFT_CONFIG_ENCODED_MAX + 4)
size_t raftrt__snapmeta_encode(const struct raft_snapshot_meta *m, uint8_t *buf, size_t len);
int raftrt__snapmeta_decode(const uint8_t *buf, size_t len, struct raft_snapshot_meta *m);

/* Decodes one wire message (protobuf body + attachment) exactly like the receive path and
 * validates it. Returns 0 or CURVE_ERR_RPC_BADREQ / -ENOMEM. For the fuzz target. */
int raftrt__decode_wire(const uint8_t *body, size_t blen, const uint8_t *att, size_t alen);

#endif
