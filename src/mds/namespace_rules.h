/*
 * Volume namespace rules (DESIGN §2, §7; docs/mds.md "Namespace"): name and path validation,
 * size validation, segment allocation, the chunk-id allocator and the file/segment records
 * stored in etcd.
 *
 * Pure functions, no I/O; single-threaded objects (mds_idalloc belongs to the MDS loop).
 *
 * Error codes (each failure class has its own code; `err` gets the message naming the input):
 *   CURVE_ERR_BAD_NAME   empty, ".", "..", bad character, not absolute, empty component
 *   -ENAMETOOLONG        a component > MDS_NS_NAME_MAX bytes or a path > MDS_NS_PATH_MAX
 *   CURVE_ERR_PERMISSION reserved name (RecycleBin at the root) or operation on "/"
 *   CURVE_ERR_BAD_SIZE   size not a multiple of the segment size
 *   -ERANGE              size below the minimum
 *   -EFBIG               size above the maximum
 *   -EOPNOTSUPP          extend to a smaller size (volumes never shrink)
 *   -EINVAL              bad size configuration, rename into its own subtree
 *   CURVE_ERR_CORRUPT    record failed its magic/version/length/crc check
 */
#ifndef CURVE_MDS_NAMESPACE_RULES_H
#define CURVE_MDS_NAMESPACE_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "mds/topology.h"

#define MDS_NS_NAME_MAX      255   /* bytes per path component */
#define MDS_NS_PATH_MAX      4096  /* bytes per path, including the leading '/' */
#define MDS_NS_DEPTH_MAX     256   /* components per path */
#define MDS_NS_OWNER_MAX     64    /* bytes of an owner name */
#define MDS_NS_RECYCLE_BIN   "RecycleBin" /* reserved at the root (DESIGN §7) */
#define MDS_NS_ROOT_ID       1     /* file id of "/" */
#define MDS_NS_MAX_CHUNKS_PER_SEGMENT 4096 /* bound on segment_size / chunk_size */

/* ---- names and paths ---- */

/* One path component: 1..255 bytes of [A-Za-z0-9._+=@:-], not "." or "..", not starting with
 * '-'. */
int mds_ns_check_name(const char *name, char *err, size_t errlen);

/* Owner name: 1..MDS_NS_OWNER_MAX bytes of the name characters. 0 or CURVE_ERR_BAD_NAME. */
int mds_ns_check_owner(const char *owner, char *err, size_t errlen);

/* Name of a new entry `name` in the directory with id `parent_id`: mds_ns_check_name plus
 * reserved names (RecycleBin under the root). */
int mds_ns_check_create(uint64_t parent_id, const char *name, char *err, size_t errlen);

typedef struct mds_ns_path {
    size_t n;                       /* number of components; 0 for "/" */
    const char *comp[MDS_NS_DEPTH_MAX]; /* NUL-terminated, point into `buf` */
    char buf[MDS_NS_PATH_MAX + 1];
} mds_ns_path;

/* Splits an absolute path ("/", "/a/b"; a single trailing '/' is allowed, "//" is not) into
 * components, each checked by mds_ns_check_name. Returns 0 or an error above. */
int mds_ns_parse_path(const char *path, mds_ns_path *out, char *err, size_t errlen);

/* Rename checks on parsed paths: neither is "/" or "/RecycleBin", the destination is not
 * inside the source, and the destination name is not reserved. 0 or an error above. */
int mds_ns_check_rename(const mds_ns_path *from, const mds_ns_path *to, char *err,
                        size_t errlen);

/* Name of a deleted file in /RecycleBin: "<name>-<id>" (the name shortened to fit 255 bytes).
 * Returns 0 or -ENOSPC if len is too small. */
int mds_ns_recycle_name(const char *name, uint64_t id, char *buf, size_t len);

/* ---- sizes ---- */

typedef struct mds_ns_size_cfg {
    uint64_t chunk_size;   /* power of two, >= 4 KiB (DESIGN: 16 MiB; tests 4 MiB) */
    uint64_t segment_size; /* multiple of chunk_size, <= 4 GiB (DESIGN: 1 GiB) */
    uint64_t min_size;     /* smallest volume, multiple of segment_size (DESIGN: 10 GiB) */
    uint64_t max_size;     /* largest volume, multiple of segment_size (DESIGN: 20 TiB) */
} mds_ns_size_cfg;

/* The production defaults of DESIGN §2. */
void mds_ns_size_cfg_default(mds_ns_size_cfg *cfg);

/* Configuration keys: mds.volume.chunk_size (16m), mds.volume.segment_size (1g),
 * mds.volume.min_size (10g), mds.volume.max_size (20t), mds.chunkid.batch (4096). */
extern const curve_cfg_def mds_ns_cfg_defs[];
extern const size_t mds_ns_cfg_ndefs;
/* Reads and checks the size keys (mds_ns_check_size_cfg) and, if `batch` is not NULL, the
 * chunk-id batch. 0 or CURVE_ERR_CONFIG with a message. */
int mds_ns_cfg_from_config(const curve_config *c, mds_ns_size_cfg *out, uint64_t *batch,
                           char *err, size_t errlen);
/* 0 or -EINVAL naming the bad field. */
int mds_ns_check_size_cfg(const mds_ns_size_cfg *cfg, char *err, size_t errlen);
/* Size of a new volume. */
int mds_ns_check_size(const mds_ns_size_cfg *cfg, uint64_t size, char *err, size_t errlen);
/* Extend from old_size to new_size: the new size is valid and >= old size (never shrink).
 * Equal sizes are accepted (idempotent retry). */
int mds_ns_check_extend(const mds_ns_size_cfg *cfg, uint64_t old_size, uint64_t new_size,
                        char *err, size_t errlen);

/* ---- chunk-id allocator (ids reserved from etcd in batches) ---- */

#define MDS_IDALLOC_DEFAULT_BATCH 4096

/*
 * Holds one range [next, end) of ids reserved in etcd (`/curve/v1/ids/chunk`). The daemon
 * refills it by a compare-and-swap of the stored high-water mark from H to H + batch and then
 * calls mds_idalloc_refill(a, H, batch). Ids left in a replaced range are skipped (never
 * reused): gaps are harmless, reuse would not be.
 */
typedef struct mds_idalloc {
    uint64_t next, end;
    uint64_t batch;     /* ids per refill */
    uint64_t low_water; /* need_refill() turns true below this many ids left */
} mds_idalloc;

/* batch > 0; low_water < batch (asserted). Starts empty. */
void mds_idalloc_init(mds_idalloc *a, uint64_t batch, uint64_t low_water);
uint64_t mds_idalloc_left(const mds_idalloc *a);
/* True when fewer than `low_water` ids are left, or fewer than `want`. */
bool mds_idalloc_need_refill(const mds_idalloc *a, uint64_t want);
/* Installs the reserved range [start, start + count); start > 0 and no wrap (else -EINVAL);
 * the range must lie above every id handed out so far (else -EINVAL). */
int mds_idalloc_refill(mds_idalloc *a, uint64_t start, uint64_t count);
/* Takes `n` ids into out[0..n) atomically: all or none. -EAGAIN when fewer than n are left. */
int mds_idalloc_take(mds_idalloc *a, uint64_t n, uint64_t *out);

/* ---- segments ---- */

typedef struct mds_chunk_loc {
    uint32_t copyset_id;
    uint64_t chunk_id;
} mds_chunk_loc;

/*
 * Allocates the chunks of segment `seg_index` of a file (DESIGN §2): chunk k goes to
 * copysets[(start + k) % ncopysets] with `start` drawn from `rng`, and gets the next chunk id
 * from `ids`. `nchunks` <= MDS_NS_MAX_CHUNKS_PER_SEGMENT. out[] has nchunks entries.
 * Returns 0, -EINVAL (no copysets / bad nchunks), or -EAGAIN (ids must be refilled first;
 * nothing consumed).
 */
int mds_ns_alloc_segment(const uint32_t *copysets, size_t ncopysets, uint64_t seg_index,
                         uint32_t nchunks, mds_rng *rng, mds_idalloc *ids, mds_chunk_loc *out);

/* Picks the logical pool of a new segment: uniformly among pools whose copysets are created,
 * weighted by their copyset count (bigger pools take proportionally more segments).
 * Returns 0 with *pool_id, or -ENOSPC when no pool is ready. */
int mds_ns_choose_pool(const mds_topology *t, mds_rng *rng, uint32_t *pool_id);

/* Copyset ids of logical pool `pool_id` in id order into out[0..max); returns the total count
 * (may exceed max): the `copysets` argument of mds_ns_alloc_segment. */
size_t mds_ns_pool_copyset_ids(const mds_topology *t, uint32_t pool_id, uint32_t *out,
                               size_t max);

/* ---- records (compact binary, little-endian, crc32c; docs/mds.md "Records") ---- */

typedef enum mds_file_type {
    MDS_FILE_DIR = 1,
    MDS_FILE_VOLUME = 2,
} mds_file_type;

typedef enum mds_file_status {
    MDS_FILE_NORMAL = 0,
    MDS_FILE_DELETING = 1, /* in the recycle bin being purged: chunks are being removed */
} mds_file_status;

typedef struct mds_file {
    uint64_t id;
    uint64_t parent_id;
    mds_file_type type;
    mds_file_status status;
    uint64_t size;         /* volumes: bytes; directories: 0 */
    uint32_t segment_size; /* volumes */
    uint32_t chunk_size;   /* volumes */
    uint64_t ctime_ns;     /* wall clock at creation */
    uint64_t epoch;        /* volume epoch fencing older writers (DESIGN §7) */
    char owner[MDS_NS_OWNER_MAX + 1];
    char name[MDS_NS_NAME_MAX + 1];
} mds_file;

#define MDS_FILE_REC_MAGIC   0x52464D43u /* "CMFR" little-endian */
#define MDS_FILE_REC_VERSION 1
#define MDS_FILE_REC_HDR     60 /* fixed part before name and owner */
#define MDS_FILE_REC_MAX     (MDS_FILE_REC_HDR + MDS_NS_NAME_MAX + MDS_NS_OWNER_MAX + 4)

/* Encodes into buf (len >= MDS_FILE_REC_MAX is always enough). Returns the record length or
 * -EINVAL (invalid field: type, status, name, owner) / -ENOSPC. */
int mds_file_encode(const mds_file *f, uint8_t *buf, size_t len);
/* Decodes and validates (magic, version, lengths, crc, type, status, name chars).
 * Returns 0 or CURVE_ERR_CORRUPT with a message. */
int mds_file_decode(const uint8_t *buf, size_t len, mds_file *f, char *err, size_t errlen);

#define MDS_SEG_REC_MAGIC   0x47534D43u /* "CMSG" */
#define MDS_SEG_REC_VERSION 1
#define MDS_SEG_REC_HDR     32
#define MDS_SEG_REC_LEN(n)  (MDS_SEG_REC_HDR + 12 * (size_t)(n) + 4)

typedef struct mds_segment {
    uint64_t file_id;
    uint64_t offset;  /* byte offset of the segment in the volume */
    uint32_t pool_id; /* logical pool */
    uint32_t nchunks;
    mds_chunk_loc chunks[MDS_NS_MAX_CHUNKS_PER_SEGMENT];
} mds_segment;

/* Returns the record length or -EINVAL / -ENOSPC. */
int mds_segment_encode(const mds_segment *s, uint8_t *buf, size_t len);
/* 0 or CURVE_ERR_CORRUPT. */
int mds_segment_decode(const uint8_t *buf, size_t len, mds_segment *s, char *err,
                       size_t errlen);

/* ---- sessions (docs/sessions.md) ---- */

/*
 * Open modes. A read-write volume has at most one *current writer*: the key
 * /curve/v1/writer/<file id>, bound to the writer session's etcd lease, names it. A read-write
 * open without `exclusive` creates that key inside the open's etcd txn only if it is absent
 * (create revision 0), else fails with -EBUSY; an exclusive open overwrites it. Both bump the
 * volume epoch (fencing a previous writer whose session expired while it kept writing), except
 * a re-open of an expired session, which keeps it. A read-only open does not touch the key or
 * the epoch. The key disappears with its session's lease (close, expiry), so the next
 * read-write open succeeds then.
 */
typedef enum {
    MDS_OPEN_READONLY = 0,
    MDS_OPEN_SHARED = 1,    /* read-write, -EBUSY while another writer is current */
    MDS_OPEN_EXCLUSIVE = 2, /* read-write, takes over (epoch + 1) */
} mds_open_mode;

#define MDS_SESSION_TOKEN_MAX 64 /* bytes of an opener token ([A-Za-z0-9_-]) */
#define MDS_WRITER_REC_MAX (3 + 17 + MDS_SESSION_TOKEN_MAX + 1 + 8 + 1)

/* The mode of an OpenRequest (proto/mds.proto). read-only and exclusive together: -EINVAL. */
int mds_ns_open_mode(bool exclusive, bool read_only, mds_open_mode *mode, char *err,
                     size_t errlen);
/* Session value stored under /curve/v1/session/<fid>/<lease>: "readonly", "shared",
 * "exclusive". */
const char *mds_ns_open_mode_name(mds_open_mode mode);
/* An opener token: 0..MDS_SESSION_TOKEN_MAX bytes of [A-Za-z0-9_-] (NULL = empty). The client
 * picks a random one per curve_open and repeats it when it re-opens that session, so the MDS
 * recognises a writer record left by its own earlier attempt whose answer was lost.
 * 0 or -EINVAL. */
int mds_ns_check_token(const char *token, char *err, size_t errlen);

/* Writer record: "w1 <lease, 16 hex> <token> <crc32c of what precedes, 8 hex>" (text, so an
 * operator can read it with etcdctl). encode returns the length (< len) or -ENOSPC / -EINVAL;
 * decode returns 0 or CURVE_ERR_CORRUPT. `token` receives MDS_SESSION_TOKEN_MAX + 1 bytes. */
int mds_ns_writer_encode(int64_t lease, const char *token, char *buf, size_t len);
int mds_ns_writer_decode(const char *buf, size_t len, int64_t *lease, char *token);

/* A read-write, non-exclusive open with `token` found the writer record `rec` (another
 * session is the current writer). Returns 1 when that record was written by the same opener
 * (same non-empty token, another lease: an attempt whose answer was lost, or an orphan of a
 * re-open): the open may take the record over (compare its mod revision) and *orphan_lease is
 * the lease to revoke. Returns 0 when another opener holds it (the open fails with -EBUSY; the
 * message in `err` names the session), CURVE_ERR_CORRUPT for a bad record (treated as held). */
int mds_ns_writer_conflict(const char *rec, size_t len, const char *token, int64_t own_lease,
                           int64_t *orphan_lease, char *err, size_t errlen);

#endif
