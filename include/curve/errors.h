/*
 * Curve-C error codes.
 *
 * Every function in Curve-C returns 0 on success or a negative number on failure:
 *   - a negative errno (-EINVAL, -ENOMEM, -EIO, ...) for system-level failures;
 *   - a negative Curve code from the reserved band below for Curve-specific failures.
 * curve_strerror() turns either kind into a human string.
 *
 * The band starts at 10000 so it never collides with errno values (< 4096 on Linux).
 * The numeric values are part of the wire format (RPC status, chunk status): never renumber.
 */
#ifndef CURVE_ERRORS_H
#define CURVE_ERRORS_H

#ifdef __cplusplus
extern "C" {
#endif

#define CURVE_ERR_BASE 10000

enum curve_err {
    /* generic */
    CURVE_ERR_UNKNOWN = -(CURVE_ERR_BASE + 1),       /* unclassified failure */
    CURVE_ERR_TIMEOUT = -(CURVE_ERR_BASE + 2),       /* operation timed out */
    CURVE_ERR_CANCELED = -(CURVE_ERR_BASE + 3),      /* operation canceled by caller */
    CURVE_ERR_SHUTDOWN = -(CURVE_ERR_BASE + 4),      /* component is shutting down */
    CURVE_ERR_CORRUPT = -(CURVE_ERR_BASE + 5),       /* checksum / format check failed */
    CURVE_ERR_CONFIG = -(CURVE_ERR_BASE + 6),        /* bad configuration */
    CURVE_ERR_NOT_LEADER = -(CURVE_ERR_BASE + 7),    /* this node is not the leader */
    CURVE_ERR_BUSY = -(CURVE_ERR_BASE + 8),          /* resource busy, retry later */
    /* RPC layer */
    CURVE_ERR_RPC_CONN = -(CURVE_ERR_BASE + 100),     /* connection failed or was lost */
    CURVE_ERR_RPC_PROTO = -(CURVE_ERR_BASE + 101),    /* malformed frame / protocol violation */
    CURVE_ERR_RPC_NOSERVICE = -(CURVE_ERR_BASE + 102),/* unknown service id */
    CURVE_ERR_RPC_NOMETHOD = -(CURVE_ERR_BASE + 103), /* unknown method id */
    CURVE_ERR_RPC_TOOBIG = -(CURVE_ERR_BASE + 104),   /* frame exceeds the configured limit */
    CURVE_ERR_RPC_OVERLOAD = -(CURVE_ERR_BASE + 105), /* server in-flight bound reached */
    CURVE_ERR_RPC_BADREQ = -(CURVE_ERR_BASE + 106),   /* request body failed to decode */
    CURVE_ERR_RPC_INTERNAL = -(CURVE_ERR_BASE + 107), /* handler failed unexpectedly */
    /* chunk status (DESIGN §3) */
    CURVE_ERR_REDIRECTED = -(CURVE_ERR_BASE + 200),
    CURVE_ERR_DISK_FAIL = -(CURVE_ERR_BASE + 201),
    CURVE_ERR_CRC_FAIL = -(CURVE_ERR_BASE + 202),
    CURVE_ERR_INVALID_REQUEST = -(CURVE_ERR_BASE + 203),
    CURVE_ERR_NOSPACE = -(CURVE_ERR_BASE + 204),
    CURVE_ERR_COPYSET_NOTEXIST = -(CURVE_ERR_BASE + 205),
    CURVE_ERR_CHUNK_NOTEXIST = -(CURVE_ERR_BASE + 206),
    CURVE_ERR_FAILURE_UNKNOWN = -(CURVE_ERR_BASE + 207),
    CURVE_ERR_OVERLOAD = -(CURVE_ERR_BASE + 208),
    CURVE_ERR_BACKWARD = -(CURVE_ERR_BASE + 209),
    CURVE_ERR_CHUNK_EXIST = -(CURVE_ERR_BASE + 210),
    CURVE_ERR_EPOCH_TOO_OLD = -(CURVE_ERR_BASE + 211),
    /* namespace / MDS */
    CURVE_ERR_NOT_FOUND = -(CURVE_ERR_BASE + 300),
    CURVE_ERR_EXISTS = -(CURVE_ERR_BASE + 301),
    CURVE_ERR_NOT_EMPTY = -(CURVE_ERR_BASE + 302),
    CURVE_ERR_BAD_NAME = -(CURVE_ERR_BASE + 303),
    CURVE_ERR_BAD_SIZE = -(CURVE_ERR_BASE + 304),
    CURVE_ERR_PERMISSION = -(CURVE_ERR_BASE + 305),
    CURVE_ERR_SESSION_EXPIRED = -(CURVE_ERR_BASE + 306),
    CURVE_ERR_FENCED = -(CURVE_ERR_BASE + 307),
    CURVE_ERR_ETCD = -(CURVE_ERR_BASE + 308),
};

/* Returns a static, human-readable description of `err` (a negative errno or Curve code).
 * Never returns NULL; unknown codes give "unknown error <n>" from a thread-local buffer.
 * Thread-safe. */
const char *curve_strerror(int err);

/* Returns the symbolic name ("CURVE_ERR_TIMEOUT", "EIO", ...) of `err`, or "?" if unknown. */
const char *curve_errname(int err);

#ifdef __cplusplus
}
#endif
#endif
