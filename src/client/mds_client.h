/*
 * libcurve's MDS client: NamespaceService / TopologyService calls (proto/mds.proto) to the
 * leader MDS, with address rotation (curve_mds_rotor: failures and NOT_LEADER move to the next
 * configured address) and volume sessions refreshed on a timer (DESIGN §7).
 *
 * Threads: the client owns one event loop ("curve-mds") that owns every MDS channel and every
 * session timer. curve_mds_call() blocks the calling thread (any thread except that loop);
 * curve_mds_call_async() may be called from any thread and completes on the MDS loop.
 *
 * Errors: calls return the MDS's status (a negative CURVE_ERR_* / errno, e.g.
 * CURVE_ERR_NOT_FOUND) or, when no MDS answered within client.mds.call_deadline_ms,
 * the last transport error (CURVE_ERR_TIMEOUT / CURVE_ERR_RPC_CONN / CURVE_ERR_NOT_LEADER).
 */
#ifndef CURVE_CLIENT_MDS_CLIENT_H
#define CURVE_CLIENT_MDS_CLIENT_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/client_conf.h"
#include "loop/loop.h"

/* Service and method ids of proto/mds.proto. */
#define CURVE_MDS_SVC_TOPOLOGY  31u
#define CURVE_MDS_SVC_NAMESPACE 32u
enum {
    CURVE_MDS_TOPO_GET_COPYSET = 4,
    CURVE_MDS_NS_MKDIR = 1,
    CURVE_MDS_NS_CREATE = 2,
    CURVE_MDS_NS_STAT = 3,
    CURVE_MDS_NS_LISTDIR = 4,
    CURVE_MDS_NS_RENAME = 5,
    CURVE_MDS_NS_EXTEND = 6,
    CURVE_MDS_NS_DELETE = 7,
    CURVE_MDS_NS_RECOVER = 8,
    CURVE_MDS_NS_PURGE = 9,
    CURVE_MDS_NS_OPEN = 10,
    CURVE_MDS_NS_REFRESH = 11,
    CURVE_MDS_NS_CLOSE = 12,
    CURVE_MDS_NS_GET_OR_ALLOC_SEGMENT = 13,
    CURVE_MDS_NS_GET_SEGMENT = 14,
};

/* Length of the error text kept per call. */
#define CURVE_MDS_ERR_MAX 256

typedef struct curve_mds_client curve_mds_client;

/* Creates the client for `conf` (borrowed during the call): parses mds.addrs, starts the MDS
 * loop and one channel per address (connections are made lazily). Returns 0, -EINVAL (bad
 * address list), -ENOMEM or a loop error. */
int curve_mds_client_new(const curve_client_conf *conf, curve_mds_client **out);
/* Stops every session still running, closes the channels and the loop. Not from the MDS loop.
 * NULL is ignored. */
void curve_mds_client_free(curve_mds_client *m);
curve_loop *curve_mds_client_loop(curve_mds_client *m);

/* Blocking call of method `method` of service `svc`. On 0, *resp (if resp != NULL) holds the
 * unpacked response (free with protobuf_c_message_free_unpacked(*resp, NULL)). Transport
 * failures and NOT_LEADER / ETCD / BUSY answers are retried on the next address (sleeping
 * client.mds.retry_interval_ms once every address failed) until client.mds.call_deadline_ms.
 * `err` (may be NULL) receives the error text. Not from the MDS loop (asserted). */
int curve_mds_call(curve_mds_client *m, uint32_t svc, uint32_t method, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp, char *err,
                   size_t errlen);

/* Completion of an async call, on the MDS loop. `resp` is NULL unless status == 0; it is
 * freed after the callback returns. */
typedef void (*curve_mds_async_cb)(int status, const ProtobufCMessage *resp, const char *errmsg,
                                   void *arg);

/* One attempt at the current MDS address (the rotor moves on after failures; callers retry
 * with their own policy). Returns 0 (cb runs exactly once, later, on the MDS loop) or a
 * synchronous error (cb never runs). Any thread. */
int curve_mds_call_async(curve_mds_client *m, uint32_t svc, uint32_t method,
                         const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                         curve_mds_async_cb cb, void *arg);

/* ---- sessions ---- */

typedef struct curve_mds_session curve_mds_session;

/* Bytes of an opener token (OpenRequest.client_token, docs/sessions.md). */
#define CURVE_MDS_TOKEN_MAX 64

/* Writes a new random opener token (16 hex digits) into `buf` (len >= 17). 0 or -EINVAL. */
int curve_mds_token_new(char *buf, size_t len);

/* Starts refreshing session `session_id` of volume `path` every lease_ms / 4 on the MDS loop
 * (docs/sessions.md). A refresh that gets no answer, or a transient one (no MDS leader, etcd
 * unavailable), changes nothing: IO goes on, because safety against a newer writer comes from
 * the volume epoch that chunkservers check, not from the session. When the MDS answers
 * CURVE_ERR_SESSION_EXPIRED (e.g. the session expired while no MDS could refresh it) a new
 * session is opened (non-exclusive, read-only if `read_only`, with the same opener `token`)
 * and accepted only while the volume's id and epoch are unchanged, else the session is fenced;
 * if the re-open answers -EBUSY (another writer opened the volume meanwhile) the session is
 * lost. Both are sticky. `expire_ms` > 0 is an opt-in hard limit: the session also counts as
 * lost when nothing succeeded for that long; 0 = never. Unless `read_only`, every successful
 * refresh is followed by a Stat of the volume: a file id other than `file_id` or an epoch
 * above `epoch` (an exclusive open elsewhere) fences the session. This bounds the fencing
 * delay of a writer to about lease_ms / 4 even where no chunkserver has seen the newer epoch
 * yet. `token` (copied, may be NULL) at most CURVE_MDS_TOKEN_MAX bytes. Returns 0, -EINVAL,
 * -ENOMEM. */
int curve_mds_session_start(curve_mds_client *m, const char *path, const char *session_id,
                            uint32_t lease_ms, uint64_t expire_ms, uint64_t file_id, uint64_t epoch,
                            bool read_only, const char *token, curve_mds_session **out);
/* 0 while the session may be used (also while no MDS answers), CURVE_ERR_FENCED once a newer
 * epoch (or another volume at the path) was seen, CURVE_ERR_SESSION_EXPIRED once it could not
 * be re-established (or the opt-in expire_ms passed). Any thread. */
int curve_mds_session_check(curve_mds_session *s);
/* Refreshes that succeeded (tests, metrics). Any thread. */
uint64_t curve_mds_session_refreshes(curve_mds_session *s);
/* Stops the timer, waits for a refresh in flight, sends Close to the MDS (unless `skip_close`)
 * and frees `s`. Returns the Close status (0 when skipped). Not from the MDS loop. */
int curve_mds_session_stop(curve_mds_session *s, bool skip_close);

/* Strips a ":index" suffix of a Curve peer id ("ip:port:0" -> "ip:port") into `out`
 * (CURVE_ADDR_MAX bytes). Returns 0 or -EINVAL (empty, too long, no port). */
int curve_peer_addr_normalize(const char *peer, char *out, size_t outlen);

#endif
