/*
 * MDS topology: the in-memory model of the cluster (DESIGN §2, docs/mds.md).
 *
 *   physical pool -> zone (failure domain) -> server -> chunkserver (one disk)
 *   logical pool (3 replicas, N copysets) lives on one physical pool
 *   copyset (pool id, copyset id): peers, leader, configuration epoch, term
 *
 * Pure logic, no I/O: the daemon loads records from etcd (mds_topo_load_record), applies the
 * operator's description file (mds_topo_apply_json) and stores each changed record back
 * (mds_topo_record_to_json + mds_topo_record_key).
 *
 * Storage: one array per kind, sorted by id (copysets by (pool, id)); lookups are binary
 * searches. Pointers returned by the lookup functions stay valid only until the next call
 * that inserts into the same kind (arrays may move).
 *
 * Thread model: a topology belongs to one thread (the MDS scheduler/heartbeat loop); none of
 * these functions lock.
 *
 * Errors: 0 or a negative errno / CURVE_ERR_* code. Functions with `err`/`errlen` write a
 * human message naming the failing field/id there (always NUL-terminated when errlen > 0;
 * `err` may be NULL).
 */
#ifndef CURVE_MDS_TOPOLOGY_H
#define CURVE_MDS_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define MDS_NAME_MAX        64      /* pool/zone/server names, including the NUL */
#define MDS_HOST_MAX        64      /* host (IP or DNS name), including the NUL */
#define MDS_TOKEN_LEN       32      /* chunkserver token: 32 lowercase hex chars */
#define MDS_DISK_PATH_MAX   256     /* chunkserver data directory, including the NUL */
#define MDS_REPLICAS        3       /* replicas of every logical pool (DESIGN §2) */
#define MDS_MAX_PEERS       5       /* peers of a copyset, room for a transient change */
#define MDS_TOPO_MAX_ITEMS  (1u << 20) /* bound on records of one kind (zones, copysets...) */
#define MDS_MAX_COPYSETS_PER_POOL 1000000u /* bound on a logical pool's copyset count */
#define MDS_TOPO_DESC_MAX   (4u << 20)  /* bound on a topology description file (bytes) */

/* ---- a small deterministic PRNG (splitmix64): randomness enters the MDS only through it --- */
typedef struct mds_rng {
    uint64_t s;
} mds_rng;

void mds_rng_seed(mds_rng *r, uint64_t seed);
uint64_t mds_rng_next(mds_rng *r);
/* Uniform in [0, n); n must be > 0 (asserted). */
uint32_t mds_rng_below(mds_rng *r, uint32_t n);

/* ---- records ---- */
typedef enum mds_cs_state {
    MDS_CS_ONLINE = 0,
    MDS_CS_UNSTABLE = 1, /* missed heartbeats for a while: still counted alive */
    MDS_CS_OFFLINE = 2,  /* gone long enough that recovery replaces its replicas */
    MDS_CS_RETIRED = 3,  /* removed by the operator: never placed, never revived */
} mds_cs_state;

const char *mds_cs_state_name(mds_cs_state s);

typedef struct mds_ppool {
    uint32_t id;
    char name[MDS_NAME_MAX];
} mds_ppool;

typedef struct mds_zone {
    uint32_t id;
    uint32_t ppool_id;
    char name[MDS_NAME_MAX];
} mds_zone;

typedef struct mds_server {
    uint32_t id;
    uint32_t zone_id;
    char name[MDS_NAME_MAX];
    char host[MDS_HOST_MAX];
} mds_server;

typedef struct mds_chunkserver {
    uint32_t id;
    uint32_t server_id;
    uint32_t zone_id;  /* derived from the server (not stored) */
    uint32_t ppool_id; /* derived from the zone (not stored) */
    uint32_t port;
    mds_cs_state state;
    char token[MDS_TOKEN_LEN + 1];
    char host[MDS_HOST_MAX];
    char disk_path[MDS_DISK_PATH_MAX]; /* data directory on the server */
    uint64_t capacity; /* disk bytes */
    uint64_t used;     /* disk bytes */
    uint64_t last_hb_ms; /* monotonic ms of the last heartbeat (runtime only, not stored) */
} mds_chunkserver;

typedef struct mds_lpool {
    uint32_t id;
    uint32_t ppool_id;
    uint32_t replicas;      /* always MDS_REPLICAS */
    uint32_t copyset_count; /* wanted number of copysets */
    bool copysets_created;  /* placement done and copysets stored */
    char name[MDS_NAME_MAX];
} mds_lpool;

typedef struct mds_copyset {
    uint32_t pool_id; /* logical pool */
    uint32_t id;      /* copyset id inside the pool, from 1 */
    uint32_t npeers;
    uint32_t peers[MDS_MAX_PEERS]; /* chunkserver ids, in no particular order */
    uint32_t leader;               /* 0 = unknown */
    uint64_t epoch;                /* configuration epoch: +1 per membership change */
    uint64_t term;                 /* Raft term of `leader` */
    uint64_t last_update_ms;       /* runtime only, not stored */
    /* runtime only: when the membership last changed or a change of it was last seen in flight
     * (an operator, or the leader reporting one); 0 = not seen since load. Removed replicas are
     * recycled only once it lies recycle_grace_ms back (heartbeat.h). */
    uint64_t settled_ms;
} mds_copyset;

/* Raft group id (DESIGN §2). */
static inline uint64_t mds_group_id(uint32_t pool_id, uint32_t copyset_id)
{
    return ((uint64_t)pool_id << 32) | copyset_id;
}

bool mds_copyset_has_peer(const mds_copyset *c, uint32_t cs_id);

#define MDS_VEC(T)                                                                                 \
    struct {                                                                                       \
        T *v;                                                                                      \
        size_t n, cap;                                                                             \
    }

typedef struct mds_topology {
    MDS_VEC(mds_ppool) ppools;
    MDS_VEC(mds_zone) zones;
    MDS_VEC(mds_server) servers;
    MDS_VEC(mds_chunkserver) css;
    MDS_VEC(mds_lpool) lpools;
    MDS_VEC(mds_copyset) copysets; /* sorted by (pool_id, id) */
} mds_topology;

void mds_topo_init(mds_topology *t);
void mds_topo_destroy(mds_topology *t);
/* Deep copy into `dst` (initialised here). Returns 0 or -ENOMEM. */
int mds_topo_clone(mds_topology *dst, const mds_topology *src);

/* ---- lookups (NULL when absent) ---- */
mds_ppool *mds_topo_ppool(const mds_topology *t, uint32_t id);
mds_zone *mds_topo_zone(const mds_topology *t, uint32_t id);
mds_server *mds_topo_server(const mds_topology *t, uint32_t id);
mds_chunkserver *mds_topo_cs(const mds_topology *t, uint32_t id);
mds_lpool *mds_topo_lpool(const mds_topology *t, uint32_t id);
mds_copyset *mds_topo_copyset(const mds_topology *t, uint32_t pool_id, uint32_t id);
mds_ppool *mds_topo_ppool_by_name(const mds_topology *t, const char *name);
mds_zone *mds_topo_zone_by_name(const mds_topology *t, const char *name);
mds_server *mds_topo_server_by_name(const mds_topology *t, const char *name);
mds_lpool *mds_topo_lpool_by_name(const mds_topology *t, const char *name);
/* Chunkserver registered at host:port (retired ones excluded). */
mds_chunkserver *mds_topo_cs_by_addr(const mds_topology *t, const char *host, uint32_t port);

/* Copysets of logical pool `pool_id`: index range [*first, *first + return) in t->copysets. */
size_t mds_topo_pool_copysets(const mds_topology *t, uint32_t pool_id, size_t *first);
/* Fills `out` (up to `max`) with ids of chunkservers of zone `zone_id`; returns the total count
 * (may exceed max). */
size_t mds_topo_css_of_zone(const mds_topology *t, uint32_t zone_id, uint32_t *out, size_t max);
/* Chunkservers of copyset `c` as records, up to `max`; absent ids are skipped. Returns count. */
size_t mds_topo_css_of_copyset(const mds_topology *t, const mds_copyset *c,
                               const mds_chunkserver **out, size_t max);
/* Copysets having `cs_id` as a peer, up to `max` into `out`; returns the total count. */
size_t mds_topo_copysets_of_cs(const mds_topology *t, uint32_t cs_id, const mds_copyset **out,
                               size_t max);
/* Number of distinct other chunkservers sharing at least one copyset with `cs_id`. O(copysets);
 * returns 0 also when out of memory (for many at once see mds_place_scatter_widths). */
size_t mds_topo_scatter_width(const mds_topology *t, uint32_t cs_id);

/* ---- mutations ---- */
/* Insert a record (ids chosen by the caller; e.g. loaded from etcd). References are checked
 * (zone->ppool, server->zone, cs->server, lpool->ppool, copyset->lpool); derived fields of a
 * chunkserver are filled in. Returns 0, -EEXIST (id taken), CURVE_ERR_NOT_FOUND (dangling
 * reference), -EINVAL (bad field), -ENOSPC (MDS_TOPO_MAX_ITEMS) or -ENOMEM. */
int mds_topo_add_ppool(mds_topology *t, const mds_ppool *p, char *err, size_t errlen);
int mds_topo_add_zone(mds_topology *t, const mds_zone *z, char *err, size_t errlen);
int mds_topo_add_server(mds_topology *t, const mds_server *s, char *err, size_t errlen);
int mds_topo_add_cs(mds_topology *t, const mds_chunkserver *c, char *err, size_t errlen);
int mds_topo_add_lpool(mds_topology *t, const mds_lpool *l, char *err, size_t errlen);
int mds_topo_add_copyset(mds_topology *t, const mds_copyset *c, char *err, size_t errlen);

/* Retires a chunkserver (operator action): it is never placed again, its heartbeats are
 * refused and recovery replaces its replicas. 0 or CURVE_ERR_NOT_FOUND. */
int mds_topo_retire_cs(mds_topology *t, uint32_t id);

/* Next free id of a kind (max id + 1). */
uint32_t mds_topo_next_cs_id(const mds_topology *t);

/*
 * Chunkserver registration (DESIGN §5: chunkserver.dat keeps id + token). The chunkserver at
 * host:port must run on a server whose `host` is `host`. If a non-retired chunkserver is
 * already registered at host:port with the same disk path, its id and token are returned again
 * (registration is idempotent: the chunkserver may have crashed before saving
 * chunkserver.dat). Otherwise a new id and a random token (from `rng`) are assigned, state
 * online, last heartbeat `now_ms`. `*out` points into the topology (see pointer validity).
 * Returns 0, CURVE_ERR_NOT_FOUND (no server with that host), -EEXIST (host:port or the disk
 * path of that server is held by another chunkserver), -EINVAL (bad host/port/path), -ENOSPC,
 * -ENOMEM.
 */
int mds_topo_register_cs(mds_topology *t, const char *host, uint32_t port, const char *disk_path,
                         uint64_t capacity, mds_rng *rng, uint64_t now_ms, mds_chunkserver **out,
                         char *err, size_t errlen);

/* Validates a disk path: absolute, 2..MDS_DISK_PATH_MAX-1 printable ASCII chars, no spaces.
 * 0 or -EINVAL. */
int mds_topo_check_disk_path(const char *path);

/*
 * Applies a topology description (JSON text of `len` bytes, see docs/mds.md):
 *   {"physical_pools": [{"name": "pp1"}],
 *    "zones":   [{"name": "z1", "physical_pool": "pp1"}],
 *    "servers": [{"name": "s1", "zone": "z1", "host": "127.0.0.1"}],
 *    "logical_pools": [{"name": "lp1", "physical_pool": "pp1", "replicas": 3,
 *                       "copysets": 300}]}
 * Every section is optional. Items that already exist with the same attributes are kept
 * (applying twice is a no-op); new ones get the next free id; an existing name with different
 * attributes is an error. All or nothing: on error `t` is unchanged.
 * Returns 0, CURVE_ERR_CONFIG with a message naming the field (e.g. "zones[1].physical_pool:
 * unknown physical pool 'pp9'"), or -ENOMEM. `*nchanged` (may be NULL) gets the number of
 * records added.
 */
int mds_topo_apply_json(mds_topology *t, const char *text, size_t len, size_t *nchanged,
                        char *err, size_t errlen);

/* ---- persistence: one compact JSON object per record, stored in etcd ---- */
typedef enum mds_topo_kind {
    MDS_TOPO_PPOOL = 0,
    MDS_TOPO_ZONE,
    MDS_TOPO_SERVER,
    MDS_TOPO_CS,
    MDS_TOPO_LPOOL,
    MDS_TOPO_COPYSET,
    MDS_TOPO_NKINDS,
} mds_topo_kind;

const char *mds_topo_kind_name(mds_topo_kind k);
/* Parses "ppool", "zone", ... Returns 0 or -EINVAL. */
int mds_topo_kind_parse(const char *s, mds_topo_kind *out);

/* etcd key of a record: "/curve/v1/topo/<kind>/<id>" and, for copysets,
 * "/curve/v1/copyset/<pool>/<id>". `rec` points to the record struct of that kind.
 * Returns the key length, or -ENOSPC if `len` is too small. */
int mds_topo_record_key(mds_topo_kind k, const void *rec, char *buf, size_t len);

/* New JSON object for a record (caller owns it: json_decref). NULL on ENOMEM. */
json_t *mds_topo_record_to_json(mds_topo_kind k, const void *rec);
/* Decodes a record of kind `k` into `rec` (a zeroed struct of that kind is written).
 * Unknown or missing fields, wrong types and out-of-range values are errors.
 * Returns 0 or CURVE_ERR_CORRUPT with a message. */
int mds_topo_record_from_json(mds_topo_kind k, const json_t *j, void *rec, char *err,
                              size_t errlen);
/* Decodes `text` (len bytes) and inserts it with mds_topo_add_*. */
int mds_topo_load_record(mds_topology *t, mds_topo_kind k, const char *text, size_t len,
                         char *err, size_t errlen);

/* Validates a topology name: 1..MDS_NAME_MAX-1 chars of [A-Za-z0-9._-]. 0 or -EINVAL. */
int mds_topo_check_name(const char *name);
/* Validates a host: 1..MDS_HOST_MAX-1 chars of [A-Za-z0-9.:-]. 0 or -EINVAL. */
int mds_topo_check_host(const char *host);

/* Writes an error message (helper shared by the mds core files). */
void mds__errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
