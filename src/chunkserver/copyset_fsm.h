/*
 * Copyset state machine: the Raft state machine (src/raft/raft.h struct raft_fsm contract) of one
 * copyset, over its chunk store (chunkstore.h). docs/chunkserver.md "Raft state machine".
 *
 * Commands (Raft COMMAND entries) are encoded by cs_cmd_encode: a 56-byte little-endian header
 * with a version byte and a crc32c covering the header and the data, then the data:
 *      0 u8  version        CS_CMD_VERSION
 *      1 u8  type           CS_CMD_WRITE / CS_CMD_DELETE
 *      2 u16 flags          0
 *      4 u32 data_len       bytes of data following the header (WRITE: > 0; DELETE: 0)
 *      8 u64 chunk_id
 *     16 u64 offset         WRITE: chunk data offset
 *     24 u64 sn             WRITE: chunk sequence number
 *     32 u64 epoch          volume epoch of the request (informational)
 *     40 u64 file_id        volume id (informational)
 *     48 u32 reserved       0
 *     52 u32 crc            crc32c of bytes [0, 52) followed by the data
 * Apply is an idempotent overwrite (pwrite into the chunk file) or delete (a missing chunk is a
 * success), so re-applying entries after a restart from a snapshot is harmless.
 *
 * Configuration epoch: every CONFIG entry applied increments it; it is part of the snapshot,
 * so every replica computes the same epoch for the same applied index.
 *
 * Snapshot = the chunk file list + the configuration epoch (DESIGN §5). cs_fsm_snapshot_build
 * fdatasyncs every chunk written since the last snapshot (curve_chunkstore_sync_dirty) BEFORE
 * it returns the manifest, so the Raft log behind the snapshot may be truncated safely. It also
 * writes <snapshot_dir>/cs_snapshot (crc-checked) so that a restart recovers the epoch.
 * A follower installs a snapshot by receiving every chunk file (cs_fsm_install_*), then chunks
 * absent from the manifest are deleted.
 *
 * Threads: one fsm belongs to its group's loop: apply, snapshot_read and install_* run there.
 * cs_fsm_snapshot_build may run on a worker thread concurrently with apply (the chunk store is
 * thread-safe; newer chunk content in a snapshot is fine because the log after the snapshot
 * index is replayed); the epoch it records is the one the caller captured on the loop.
 */
#ifndef CURVE_CHUNKSERVER_COPYSET_FSM_H
#define CURVE_CHUNKSERVER_COPYSET_FSM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunkserver/chunkstore.h"
#include "raft/raft.h"

/* ---- commands -------------------------------------------------------------------------- */

#define CS_CMD_VERSION 1u
#define CS_CMD_HDR_SIZE 56u
#define CS_CMD_WRITE 1u
#define CS_CMD_DELETE 2u
/* Largest data payload of one write command (bounded by the Raft entry size). */
#define CS_CMD_DATA_MAX (4u << 20)

typedef struct cs_cmd {
    uint8_t type;       /* CS_CMD_WRITE / CS_CMD_DELETE */
    uint64_t chunk_id;
    uint64_t offset;
    uint64_t sn;
    uint64_t epoch;
    uint64_t file_id;
    uint32_t len;       /* data bytes */
    const void *data;   /* borrowed (decode: points into the decoded buffer) */
} cs_cmd;

/* Encodes the header of `c` into hdr; the crc covers hdr and `data` (c->data, c->len bytes, or
 * the iovecs when c->data is NULL and iov != NULL). Returns CS_CMD_HDR_SIZE. */
size_t cs_cmd_encode_hdr(const cs_cmd *c, const struct iovec *iov, unsigned iovcnt,
                         uint8_t hdr[CS_CMD_HDR_SIZE]);
/* Encodes header + data of `c` into `buf` (cap bytes). Returns the total length or -ENOSPC /
 * -EINVAL (bad type, data_len rules, len > CS_CMD_DATA_MAX). */
int cs_cmd_encode(const cs_cmd *c, void *buf, size_t cap);
/* Decodes and validates (version, type, flags, reserved, lengths, crc). out->data points into
 * buf. Returns 0 or CURVE_ERR_CORRUPT. Never reads beyond len. */
int cs_cmd_decode(const void *buf, size_t len, cs_cmd *out);

/* ---- state machine --------------------------------------------------------------------- */

#define CS_FSM_SNAPSHOT_FILE "cs_snapshot"
#define CS_FSM_SNAP_MAGIC 0x50414e53u /* "SNAP" */
#define CS_FSM_SNAP_VERSION 2u /* 1: no volume-epoch table (still read) */
/* Volume-epoch table of one copyset: the highest volume epoch (the MDS's per-volume fencing
 * epoch, DESIGN §7) seen in an applied write, per file id. It is part of the snapshot (manifest
 * meta and cs_snapshot) so that a fence survives a snapshot install, log truncation and
 * restarts. Bound: CS_FSM_VOL_EPOCHS_MAX slots, open addressing probing CS_FSM_VOL_PROBE slots;
 * when all are taken the lowest epoch among them is replaced (that volume loses its fence on
 * this copyset: only with more than CS_FSM_VOL_EPOCHS_MAX fenced volumes in one copyset). */
#define CS_FSM_VOL_EPOCHS_MAX 1024u
#define CS_FSM_VOL_PROBE 8u
typedef struct cs_vol_epoch {
    uint64_t file_id;
    uint64_t epoch; /* > 0 */
} cs_vol_epoch;
/* Encoded manifest meta (the opaque bytes in struct raft_manifest.meta), version 2:
 *   u32 magic "CSME", u32 version 2, u64 epoch, u64 group_id, u32 chunk_size, u32 nvol,
 *   nvol x (u64 file_id, u64 epoch), u32 crc32c of everything before.
 * Version 1 (32 bytes: no nvol, no table) is still decoded. */
#define CS_FSM_MANIFEST_META_SIZE(nvol) (36u + 16u * (nvol))
#define CS_FSM_MANIFEST_META_MAX CS_FSM_MANIFEST_META_SIZE(CS_FSM_VOL_EPOCHS_MAX)

typedef struct cs_fsm cs_fsm;

typedef struct cs_fsm_opts {
    uint64_t group_id;
    curve_chunkstore *store;  /* borrowed; must outlive the fsm */
    const char *snapshot_dir; /* <group>/snapshot (created if missing); copied */
    /* Optional: called (on the apply thread) with the volume epoch of every applied write
     * whose epoch is non-zero, so that every replica — and so a future leader — learns the
     * epoch fence from the log; also for every entry of the volume-epoch table loaded from
     * cs_snapshot (in cs_fsm_open) or received with a snapshot (install finish). */
    void (*epoch_seen)(void *arg, uint64_t file_id, uint64_t epoch);
    void *epoch_arg;
} cs_fsm_opts;

typedef struct cs_fsm_stats {
    uint64_t applied_index;   /* last index applied */
    uint64_t epoch;           /* configuration epoch */
    uint64_t writes, deletes, config_changes, apply_errors, corrupt_cmds;
    uint64_t snapshots, installs, install_bytes;
    int last_apply_err;       /* last non-zero apply result */
} cs_fsm_stats;

/* Opens the fsm: reads <snapshot_dir>/cs_snapshot if present (epoch). Returns 0, -EINVAL,
 * -ENOMEM, CURVE_ERR_CORRUPT (file damaged: logged with the path) or -errno. */
int cs_fsm_open(const cs_fsm_opts *o, cs_fsm **out);
/* Aborts an unfinished install and frees the fsm. NULL is ignored. */
void cs_fsm_close(cs_fsm *f);

/* struct raft_fsm-compatible operations (ctx = the fsm). */
int cs_fsm_apply(void *ctx, uint64_t index, const struct raft_entry *e);
int cs_fsm_snapshot_read(void *ctx, const char *name, uint64_t offset, void *buf, uint32_t len);
int cs_fsm_install_begin(void *ctx, const struct raft_snapshot_meta *meta,
                         const struct raft_manifest *manifest);
int cs_fsm_install_write(void *ctx, const char *name, uint64_t offset, const void *buf,
                         uint32_t len);
int cs_fsm_install_finish(void *ctx, const struct raft_snapshot_meta *meta,
                          const struct raft_manifest *manifest);
void cs_fsm_install_abort(void *ctx);

/* A built snapshot: owns the manifest it exposes. */
typedef struct cs_fsm_snap cs_fsm_snap;

/* Builds the snapshot of `meta` with configuration epoch `epoch` (captured on the loop with
 * cs_fsm_epoch when the core asked): sync_dirty, list the chunk files, write cs_snapshot
 * durably (tmp + fsync + rename + dir fsync). Blocking: call from a worker thread.
 * Returns 0 and *out, CURVE_ERR_DISK_FAIL, -ENOMEM or -errno. */
int cs_fsm_snapshot_build(cs_fsm *f, const struct raft_snapshot_meta *meta, uint64_t epoch,
                          cs_fsm_snap **out);
/* The manifest of a built snapshot (valid until cs_fsm_snap_free). */
const struct raft_manifest *cs_fsm_snap_manifest(const cs_fsm_snap *s);
void cs_fsm_snap_free(cs_fsm_snap *s);

uint64_t cs_fsm_epoch(const cs_fsm *f);
/* Copies up to cap entries of the volume-epoch table into out; returns the number copied.
 * Any thread. */
uint32_t cs_fsm_vol_epochs(const cs_fsm *f, cs_vol_epoch *out, uint32_t cap);
void cs_fsm_get_stats(const cs_fsm *f, cs_fsm_stats *out);
curve_chunkstore *cs_fsm_store(const cs_fsm *f);

/* Manifest meta codec (exposed for tests and the fuzz target). */
/* Encodes manifest meta version 2 into out (CS_FSM_MANIFEST_META_SIZE(nvol) bytes);
 * nvol <= CS_FSM_VOL_EPOCHS_MAX. Returns the length. */
size_t cs_fsm__meta_encode(uint64_t epoch, uint64_t group_id, uint32_t chunk_size,
                           const cs_vol_epoch *vols, uint32_t nvol, uint8_t *out);
/* Decodes manifest meta (version 1 or 2). vols (CS_FSM_VOL_EPOCHS_MAX entries) may be NULL;
 * *nvol gets the table size (0 for version 1). Returns 0 or CURVE_ERR_CORRUPT (bad magic,
 * version, length, crc, nvol > CS_FSM_VOL_EPOCHS_MAX or an entry with epoch 0). */
int cs_fsm__meta_decode(const void *buf, size_t len, uint64_t *epoch, uint64_t *group_id,
                        uint32_t *chunk_size, cs_vol_epoch *vols, uint32_t *nvol);
/* cs_snapshot file codec: returns 0, the epoch and the volume-epoch table (vols: NULL or
 * CS_FSM_VOL_EPOCHS_MAX entries; *nvol may be NULL), or CURVE_ERR_CORRUPT. Version 1 files
 * (reserved word 0, no table) are accepted. */
int cs_fsm__snapfile_decode(const uint8_t *buf, size_t len, uint64_t group_id, uint64_t *epoch,
                            cs_vol_epoch *vols, uint32_t *nvol);
/* Parses "chunk_<decimal id>" strictly. Returns 0 or -EINVAL. */
int cs_fsm__parse_chunk_name(const char *name, uint64_t *id);

#endif
