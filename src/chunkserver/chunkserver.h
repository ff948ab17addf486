/*
 * Chunkserver core: the copyset manager and the RPC services (ChunkService id 10, CliService
 * id 11, CopysetService id 12; proto/{chunk,cli,copyset}.proto). docs/chunkserver.md "Daemon"
 * and "Services". The daemon (chunkserver_main.c) wires it to the Raft host, the chunk file
 * pool, the admin server and the MDS heartbeat.
 *
 * Copysets: <data>/copysets/<group id>/{log,meta,snapshot,data,cs_peers}; group id =
 * (logical pool id << 32) | copyset id. A removed copyset is renamed to
 * <data>/recycler/<group id>.<unix ms>; cs_mgr_purge_recycler gives its chunk files back to the
 * pool later.
 *
 * Peers: a peer "ip:port[:idx]" has the Raft server id (IPv4 address << 16) | port, so every id
 * maps back to its address without a directory (cs_peer_parse / cs_peer_format).
 *
 * Threads: cs_mgr_* functions may be called from any thread that is not a Raft host loop
 * (they block on the group loops), except where stated. Service handlers run on the RPC loops
 * and hand blocking work to the manager's worker pool. The copyset table is protected by a
 * rwlock; a request holds it shared only while it looks a copyset up and submits to it.
 */
#ifndef CURVE_CHUNKSERVER_CHUNKSERVER_H
#define CURVE_CHUNKSERVER_CHUNKSERVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "chunkserver/chunkfilepool.h"
#include "common/metrics.h"
#include "raft/raft.h"
#include "raft/rt/raft_node.h"
#include "rpc/rpc_server.h"

#define CS_CHUNK_SERVICE_ID 10u
#define CS_CLI_SERVICE_ID 11u
#define CS_COPYSET_SERVICE_ID 12u

#define CS_CHUNK_WRITE 1u
#define CS_CHUNK_READ 2u
#define CS_CHUNK_DELETE 3u
#define CS_CHUNK_GET_INFO 4u
#define CS_CLI_GET_LEADER 1u
#define CS_CLI_ADD_PEER 2u
#define CS_CLI_REMOVE_PEER 3u
#define CS_CLI_CHANGE_PEER 4u
#define CS_CLI_TRANSFER_LEADER 5u
#define CS_CLI_RESET_PEER 6u
#define CS_COPYSET_CREATE 1u
#define CS_COPYSET_DELETE 2u
#define CS_COPYSET_STATUS 3u
#define CS_COPYSET_LIST 4u

/* Bounds. */
#define CS_MGR_MAX_COPYSETS 4096u      /* copysets per chunkserver */
#define CS_EPOCH_TABLE_SLOTS 65536u    /* volumes whose epoch fence is remembered */
#define CS_MAX_IO_BYTES (4u << 20)     /* largest read/write of one request */
#define CS_CLI_CHANGE_DEADLINE_MS 30000u /* a membership step waits this long for BUSY to clear */
#define CS_PEER_STR_MAX 32u            /* "255.255.255.255:65535:0" */

typedef struct cs_mgr cs_mgr;

typedef struct cs_mgr_opts {
    const char *data_dir;          /* the chunkserver data dir (copied) */
    raftrt_host *host;             /* borrowed */
    curve_cfp *pool;               /* borrowed */
    uint64_t self_id;              /* this server's Raft id (from its address) */
    uint32_t io_align;             /* 4096 or 512 */
    uint32_t max_inflight;         /* chunk requests in progress; beyond: OVERLOAD */
    uint32_t election_timeout_ms;  /* 0: raft default */
    uint32_t heartbeat_ms;         /* 0: raft default */
    uint64_t snapshot_threshold;   /* 0: raft default */
    uint64_t snapshot_trailing;    /* 0: raft default */
    uint64_t snapshot_threshold_bytes; /* 0: raft default (memory bound of a copyset's log) */
    uint64_t snapshot_trailing_bytes;  /* 0: raft default */
    uint64_t max_log_bytes;            /* 0: no cap (raft_options.max_log_bytes) */
    uint64_t snapshot_bytes_per_sec; /* snapshot transfer throttle (0: raft default) */
    uint32_t log_segment_bytes;    /* 0: disk log default */
    unsigned nworkers;             /* worker threads for blocking service work (0: 2) */
    /* Slow disk: after slow_write_count chunk writes in a row each taking >= slow_write_ms,
     * this chunkserver hands the leadership of every copyset it leads to the most up-to-date
     * follower (at most once per slow_handoff_cooldown_ms). slow_write_ms 0: off. */
    uint32_t slow_write_ms;
    uint32_t slow_write_count;
    uint64_t slow_handoff_cooldown_ms;
    curve_metrics *metrics;        /* borrowed; may be NULL */
} cs_mgr_opts;

/* Creates the manager (no copyset loaded yet). Returns 0, -EINVAL, -ENOMEM or -errno. */
int cs_mgr_new(const cs_mgr_opts *o, cs_mgr **out);
/* Loads every copyset found in <data>/copysets. Returns 0 or the first error (logged). */
int cs_mgr_load_all(cs_mgr *m);
/* Registers the three services on the host (before raftrt_host_start). */
int cs_mgr_register_services(cs_mgr *m);
/* Stops every copyset and frees the manager. Call after the RPC server stopped. */
void cs_mgr_free(cs_mgr *m);

/* Creates copyset (pool, id) with initial voters `peers` (n may be 0: joins as a learner).
 * Idempotent when it exists. Returns 0, -EEXIST (exists with other peers is not checked:
 * returns 0), -EINVAL, -ENOSPC (CS_MGR_MAX_COPYSETS), CURVE_ERR_DISK_FAIL or -errno. */
int cs_mgr_create(cs_mgr *m, uint32_t pool, uint32_t id, const uint64_t *peers, uint32_t n);
/* Stops the copyset and moves it to recycler/. Returns 0, CURVE_ERR_COPYSET_NOTEXIST, -errno. */
int cs_mgr_remove(cs_mgr *m, uint32_t pool, uint32_t id);
/* The configuration epoch of copyset (pool, id) and, when `leader` is not NULL, the leader its
 * Raft node knows now (0: none; this server's id when it leads). Returns 0 or
 * CURVE_ERR_COPYSET_NOTEXIST. */
int cs_mgr_copyset_epoch(cs_mgr *m, uint32_t pool, uint32_t id, uint64_t *epoch,
                         uint64_t *leader);
/* Gives the chunk files of recycled copysets older than `age_ms` back to the pool and deletes
 * them. Returns the number purged or -errno. */
int cs_mgr_purge_recycler(cs_mgr *m, uint64_t age_ms);

/* The disk failed with `err`: every copyset's Raft node is stopped (raft_fail, posted to its
 * loop): leaders step down and hand over, no node votes or campaigns any more, so the healthy
 * replicas elect new leaders within an election timeout. Until a restart. Any thread except
 * the host's loops (takes the manager's read lock). */
void cs_mgr_disk_failed(cs_mgr *m, int err);

/* Adds {"copysets": [...], "copyset_count", "leader_count", "inflight"} to obj. */
void cs_mgr_status_json(cs_mgr *m, json_t *obj);
uint32_t cs_mgr_copyset_count(cs_mgr *m);
uint32_t cs_mgr_leader_count(cs_mgr *m);

/* One copyset's view for the heartbeat. */
typedef struct cs_copyset_info {
    uint32_t pool, id;
    struct raft_status st;
    struct raft_config conf;
    uint64_t epoch;
    uint64_t chunks;
} cs_copyset_info;
/* Fills up to `max` infos; returns the count. */
uint32_t cs_mgr_snapshot_infos(cs_mgr *m, cs_copyset_info *out, uint32_t max);

/* Membership operations (also used by heartbeat operators). Return 0 or an error:
 * CURVE_ERR_COPYSET_NOTEXIST, CURVE_ERR_NOT_LEADER, CURVE_ERR_BUSY, CURVE_ERR_TIMEOUT, -EINVAL. */
int cs_mgr_add_peer(cs_mgr *m, uint32_t pool, uint32_t id, uint64_t peer);
int cs_mgr_remove_peer(cs_mgr *m, uint32_t pool, uint32_t id, uint64_t peer);
int cs_mgr_change_peer(cs_mgr *m, uint32_t pool, uint32_t id, uint64_t old_peer,
                       uint64_t new_peer);
int cs_mgr_transfer_leader(cs_mgr *m, uint32_t pool, uint32_t id, uint64_t peer);

/* cs_peers file codec (exposed for tests and the fuzz target): fills c (c->n == 0: the copyset
 * joins as a learner). Returns 0 or CURVE_ERR_CORRUPT. */
int cs_peers_decode(const uint8_t *buf, size_t len, struct raft_config *c);

/* Peer strings. parse accepts "a.b.c.d:port" and "a.b.c.d:port:idx"; returns 0 or -EINVAL. */
int cs_peer_parse(const char *s, uint64_t *id);
/* "a.b.c.d:port" (with_index adds ":0") into buf of >= CS_PEER_STR_MAX bytes. */
void cs_peer_format(uint64_t id, bool with_index, char *buf, size_t len);

#endif
