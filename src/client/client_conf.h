/*
 * libcurve configuration: the key schema behind curve_client_init() (include/curve/curve.h) and
 * its loading into a validated struct. The retry keys ("client.retry.*", "client.mds.*") come
 * from retry.h and are part of the same schema.
 *
 * Thread model: curve_client_conf_load is reentrant (no global state); the resulting struct is
 * plain data, read-only after loading.
 */
#ifndef CURVE_CLIENT_CLIENT_CONF_H
#define CURVE_CLIENT_CLIENT_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/retry.h"
#include "common/log.h"
#include "curve/curve.h"

/* Longest mds.addrs value accepted. */
#define CURVE_CLIENT_MDS_ADDRS_MAX (CURVE_MDS_ADDRS_MAX * CURVE_ADDR_MAX)
/* Longest client.log_path accepted. */
#define CURVE_CLIENT_LOG_PATH_MAX 1024
/* Bounds of client.io_threads and client.max_inflight_rpcs. */
#define CURVE_CLIENT_IO_THREADS_MAX 64
#define CURVE_CLIENT_INFLIGHT_MAX   65536

typedef struct curve_client_conf {
    char mds_addrs[CURVE_CLIENT_MDS_ADDRS_MAX]; /* validated by curve_mds_rotor_init */
    char owner[CURVE_OWNER_MAX + 1];
    uint64_t mds_rpc_timeout_ms;
    uint64_t mds_call_deadline_ms; /* blocking MDS calls retry addresses this long */
    uint64_t session_expire_ms;    /* opt-in: session lost after this long without a
                                      successful refresh or re-open; 0 = never (default:
                                      the chunkserver epoch is the fence, docs/sessions.md) */
    uint32_t max_rpc_size;         /* CURVE_RPC_SIZE_MIN..MAX, multiple of 4096 */
    uint32_t max_inflight_rpcs;    /* per volume, 1..CURVE_CLIENT_INFLIGHT_MAX */
    uint32_t io_threads;           /* 1..CURVE_CLIENT_IO_THREADS_MAX */
    bool allow_512;
    uint32_t list_page_size;     /* entries per ListDir page (1..4000) */
    uint32_t fast_path_inflight; /* sync one-piece IOs sent from callers' threads at once per
                                    volume (fastpath.h); 0 = no fast path */
    uint32_t metacache_max_segments;
    uint32_t metacache_max_copysets;
    char log_path[CURVE_CLIENT_LOG_PATH_MAX]; /* "" = stderr */
    curve_log_level log_level;
    curve_retry_opts retry;
} curve_client_conf;

/* The client's own keys (without the retry keys); `*n` receives the count. Static table. */
const curve_cfg_def *curve_client_cfg_defs(size_t *n);

/*
 * Loads a configuration: defaults, then the file `conf_path` (may be NULL), then `overrides`
 * ("key=value" strings, NULL-terminated; may be NULL), then checks required keys and
 * cross-field rules (mds.addrs parses; max_rpc_size aligned; retry options consistent).
 * Returns 0, CURVE_ERR_CONFIG or -errno (file unreadable) with a message naming the key (and
 * "<path>:<line>" for file errors) in `err`.
 */
int curve_client_conf_load(const char *conf_path, const char *const *overrides,
                           curve_client_conf *out, char *err, size_t errlen);

#endif
