/*
 * Raft term/vote metadata store: one small file per Raft group, replaced atomically.
 *
 * File "<dir>/raft_meta", little-endian (docs/raft-log.md):
 *   0 u32 magic "RMET"  4 u16 version (1)  6 u16 reserved (0)  8 u64 term  16 u64 voted_for
 *   24 u32 blob_len (<= RMETA_MAX_BLOB)  28 u32 crc32c of bytes 0..27 followed by the blob
 *   32 blob (e.g. the encoded configuration)
 * rmeta_store() writes "<dir>/raft_meta.tmp", fsyncs it, renames it over raft_meta and fsyncs
 * the directory, so a crash leaves either the old or the new content, never a mix.
 *
 * Fault injection: failpoints "raftmeta.write" and "raftmeta.sync" (src/common/failpoint.h).
 *
 * Threads: the functions are stateless; calls for the same directory must not run concurrently.
 * They block (fsync): call them from a worker/IO thread, not from an event loop.
 */
#ifndef CURVE_RAFT_IO_METASTORE_H
#define CURVE_RAFT_IO_METASTORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RMETA_MAX_BLOB (64u << 10) /* largest optional blob */
#define RMETA_FILE_NAME "raft_meta"
#define RMETA__MAGIC 0x54454d52u   /* "RMET" */
#define RMETA__VERSION 1u
#define RMETA__HDR_SIZE 32u

typedef struct rmeta_state {
    uint64_t term;
    uint64_t voted_for; /* 0 = no vote */
    void *blob;         /* owned by the struct after rmeta_load(); borrowed by rmeta_store() */
    size_t blob_len;
} rmeta_state;

/* Loads `dir`/raft_meta into `out` (out->blob is malloc'ed, free it with rmeta_state_free()).
 * A leftover raft_meta.tmp from an interrupted store is ignored and removed.
 * Returns 0, -ENOENT (no metadata yet: a brand-new group), CURVE_ERR_CORRUPT (bad magic,
 * version, size or crc; logged with the path), -ENOMEM or another negative errno. */
int rmeta_load(const char *dir, rmeta_state *out);

/* Atomically replaces `dir`/raft_meta with `st` (durable on return). `st` is borrowed.
 * Returns 0, -EINVAL (blob_len > RMETA_MAX_BLOB, or blob NULL with blob_len > 0) or a
 * negative errno (logged with the path); on error the previous content is intact. */
int rmeta_store(const char *dir, const rmeta_state *st);

/* Frees out->blob and clears the struct. NULL-safe. */
void rmeta_state_free(rmeta_state *st);

/* Internal, for tests and fuzzing: encodes into `buf` (RMETA__HDR_SIZE + blob_len bytes) /
 * decodes a whole file image. decode returns 0 or CURVE_ERR_CORRUPT (-ENOMEM). */
size_t rmeta__encode(const rmeta_state *st, uint8_t *buf, size_t len);
int rmeta__decode(const uint8_t *buf, size_t len, rmeta_state *out);

#ifdef __cplusplus
}
#endif
#endif
