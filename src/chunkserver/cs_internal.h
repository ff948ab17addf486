/* Internals shared by the chunkserver's manager, services and daemon (not a public API). */
#ifndef CURVE_CHUNKSERVER_CS_INTERNAL_H
#define CURVE_CHUNKSERVER_CS_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

#include "chunkserver/chunkserver.h"
#include "chunkserver/chunkstore.h"
#include "chunkserver/copyset_fsm.h"
#include "common/metrics.h"
#include "loop/loop.h"

enum { CS_OP_WRITE = 0, CS_OP_READ, CS_OP_DELETE, CS_OP_INFO, CS_OP_MAX };

typedef struct cs_copyset {
    struct cs_mgr *mgr;
    uint64_t gid;
    uint32_t pool, id;
    char dir[PATH_MAX];
    curve_chunkstore *store;
    cs_fsm *fsm;
    raftrt_group *group;
    _Atomic int role;            /* from state_changed */
    _Atomic uint64_t term, leader;
    _Atomic int snap_pending;    /* snapshot jobs on the worker pool */
    _Atomic int refs;            /* cs__get holders (blocking service work); removal waits */
    uint64_t slow_regain_ms;     /* group loop: when this copyset's leadership, regained while
                                  * the disk was slow, was last handed over again (0: never) */
} cs_copyset;

#define CS_TOMBSTONE ((cs_copyset *)1)

typedef struct cs_epoch_slot {
    uint64_t file_id;
    uint64_t epoch;
} cs_epoch_slot;

struct cs_mgr {
    cs_mgr_opts o;
    raftrt_host *host;
    curve_cfp *pool;
    uint64_t self_id;
    uint32_t io_align;
    uint32_t max_inflight;
    char data_dir[PATH_MAX];
    char copysets_dir[PATH_MAX];
    char recycler_dir[PATH_MAX];
    /* protects table and count; held shared by requests while they look up and submit */
    pthread_rwlock_t lock;
    cs_copyset *table[CS_MGR_MAX_COPYSETS];
    uint32_t count;
    /* serialises create/remove/load (held across their file IO) */
    pthread_mutex_t admin_lock;
    /* protects epochs: file id -> highest volume epoch seen (open addressing; a collision
     * replaces the older entry, documented in docs/chunkserver.md) */
    pthread_mutex_t epoch_lock;
    cs_epoch_slot *epochs;
    _Atomic unsigned inflight;
    /* slow-disk handoff (cs_mgr_opts.slow_write_*): current streak of slow chunk writes, time
     * of the last handoff, handoffs and leader transfers started */
    _Atomic uint32_t slow_streak;
    _Atomic uint64_t slow_last_ms;
    _Atomic bool slow_active;    /* handed over for a slow disk; cleared after slow_write_count
                                  * fast chunk writes in a row */
    _Atomic uint32_t fast_streak; /* fast chunk writes in a row while slow_active */
    _Atomic uint64_t slow_handoffs, slow_transfers;
    curve_workpool *wp;      /* CLI / copyset / status work */
    curve_workpool *snap_wp; /* snapshot builds */
    /* services (registered on the host) */
    rpc_service_def svc[3];
    rpc_method_def chunk_methods[4], cli_methods[6], copyset_methods[4];
    /* metrics (NULL when no registry) */
    curve_latency *m_lat[CS_OP_MAX];
    curve_rate *m_iops[CS_OP_MAX];
    curve_counter *m_bytes[CS_OP_MAX], *m_errors[CS_OP_MAX], *m_overload;
    curve_latency *m_apply_lat, *m_commit_lat;
    curve_gauge *m_g[3];
};

cs_copyset *cs__find_locked(cs_mgr *m, uint64_t gid);
/* Looks a copyset up and takes a reference (NULL when absent); cs__put drops it. A removed
 * copyset is stopped only after every reference is dropped. Not from a Raft host loop when the
 * holder then blocks on the group. */
cs_copyset *cs__get(cs_mgr *m, uint64_t gid);
void cs__put(cs_copyset *cs);
void cs__learn_peer(cs_mgr *m, uint64_t id);
/* Raises the epoch fence of file_id to at least epoch (arg: the cs_mgr). Any thread. */
void cs__epoch_note(void *arg, uint64_t file_id, uint64_t epoch);
void cs__put32(uint8_t *p, uint32_t v);
uint32_t cs__get32(const uint8_t *p);
int cs__fsync_dir(const char *dir);

#endif
