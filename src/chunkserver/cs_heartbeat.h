/*
 * Chunkserver registration and heartbeat to the MDS (DESIGN §5, proto/heartbeat.proto,
 * service 30 on the MDS leader). docs/chunkserver.md "Heartbeat".
 *
 * A thread registers once (RegisterChunkServer → id + token, saved in <data>/chunkserver.dat
 * with a crc32c) and then sends a Heartbeat every interval_ms with the disk's capacity, usage
 * and health, and per copyset its peers, leader, term, epoch and applied index. Operators in the
 * reply (add/remove/change peer, transfer leader; only for copysets this server leads) are run
 * through the copyset manager. A failed call or NOT_LEADER rotates to the next MDS address.
 * Each heartbeat also reports the node's recent service health (below).
 *
 * Threads: cs_hb_start/cs_hb_stop from the daemon's main thread; cs_hb_status_json from any.
 */
#ifndef CURVE_CHUNKSERVER_CS_HEARTBEAT_H
#define CURVE_CHUNKSERVER_CS_HEARTBEAT_H

#include <jansson.h>
#include <stdint.h>

#include "chunkserver/chunkserver.h"

#define CS_HB_MAX_MDS   8u   /* addresses in --mds-addrs */
#define CS_HB_TOKEN_MAX 256u /* bytes of a registration token */
#define CS_HB_MAX_OPS   64u  /* operators run per heartbeat reply */
#define CS_HB_MAX_STALE 256u /* stale copysets handled per heartbeat reply */
#define CS_DAT_FILE     "chunkserver.dat"

/* Service health (heartbeat.proto ServiceHealth; docs/mds.md "Slow chunkservers"). Every
 * heartbeat carries the mean chunk write service time (RPC arrival -> reply built, as leader)
 * and the mean state machine apply time (chunk store write, any role) since the previous
 * heartbeat, their p50/p99 over the metrics window, and per peer the round trips of small
 * probe RPCs (CliService GetLeader of the never-existing copyset 0.0: answered on the peer's
 * RPC loop without disk). The heartbeat thread sends one probe to every peer of its copysets
 * each CS_HB_PROBE_PERIOD_MS (at most one in flight per peer), so a reply delay, packet loss
 * (a TCP retransmission) or a stalled RPC loop on a peer shows as a longer round trip. */
#define CS_HB_PROBE_PEERS      32u     /* peers probed (the first ones found) */
#define CS_HB_PROBE_RING       64u     /* results kept per peer */
#define CS_HB_PROBE_PERIOD_MS  50u     /* one probe per peer per period */
#define CS_HB_PROBE_TIMEOUT_MS 1000u   /* a probe not answered by then counts as lost */
#define CS_HB_PROBE_WINDOW_MS  2000u   /* results younger than this are reported */
#define CS_HB_PROBE_FORGET_MS  30000u  /* a peer absent from our copysets this long is dropped */
#define CS_HB_STALE_WARN_MS    600000u /* "MDS lists copyset as stale: kept": once per 10 min */
#define CS_HB_STALE_WARN_SLOTS 64u     /* copysets remembered for that */
/* The copyset view of a heartbeat comes from a collector thread (cs_mgr_snapshot_infos blocks
 * on the group loops, which a slow disk stalls); a heartbeat waits this long for a fresh view,
 * then sends the latest complete one, so that a slow chunkserver keeps heartbeating. */
#define CS_HB_INFO_WAIT_MS 300u
#define CS_HB_URGENT_RETRY_MS 250u /* a failed urgent (disk_slow) heartbeat is retried after */

typedef struct cs_hb cs_hb;

typedef struct cs_hb_opts {
    const char *mds_addrs; /* "ip:port,ip:port" (copied) */
    const char *data_dir;  /* chunkserver.dat lives here (copied) */
    const char *ip;        /* advertised address (copied) */
    uint32_t port, admin_port;
    cs_mgr *mgr;     /* borrowed */
    curve_cfp *pool; /* borrowed */
    uint64_t interval_ms;
    uint32_t timeout_ms;
} cs_hb_opts;

/* Starts the heartbeat thread. Returns 0, -EINVAL (bad address list), CURVE_ERR_CORRUPT
 * (chunkserver.dat damaged), -ENOMEM or -errno. */
int cs_hb_start(const cs_hb_opts *o, cs_hb **out);
/* Stops the thread (bounded by one RPC timeout) and frees. NULL is ignored. */
void cs_hb_stop(cs_hb *hb);
/* Adds {"heartbeat": {...}} to obj. */
void cs_hb_status_json(cs_hb *hb, json_t *obj);

/* chunkserver.dat codec: u32 magic "CSDT", u32 version 1, u32 id, u32 token_len, token,
 * u32 crc32c of everything before. Exposed for tests. */
#define CS_DAT_MAX (16u + CS_HB_TOKEN_MAX + 4u)
int cs_dat_encode(uint32_t id, const char *token, uint8_t *buf, size_t len);
int cs_dat_decode(const uint8_t *buf, size_t len, uint32_t *id, char *token, size_t token_len);

#endif
