/* Error code table behind curve_strerror() / curve_errname(). */
#include "curve/errors.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/assert.h"

typedef struct err_entry {
    int code;
    const char *name;
    const char *desc;
} err_entry;

#define E(c, d) {c, #c, d}

/* One table for every Curve code (docs/errors.md mirrors it). */
static const err_entry curve_err_table[] = {
    E(CURVE_ERR_UNKNOWN, "unclassified failure"),
    E(CURVE_ERR_TIMEOUT, "operation timed out"),
    E(CURVE_ERR_CANCELED, "operation canceled"),
    E(CURVE_ERR_SHUTDOWN, "component is shutting down"),
    E(CURVE_ERR_CORRUPT, "data corrupt (checksum or format check failed)"),
    E(CURVE_ERR_CONFIG, "bad configuration"),
    E(CURVE_ERR_NOT_LEADER, "not the leader"),
    E(CURVE_ERR_BUSY, "resource busy, retry later"),
    E(CURVE_ERR_RPC_CONN, "RPC connection failed or lost"),
    E(CURVE_ERR_RPC_PROTO, "RPC protocol violation (malformed frame)"),
    E(CURVE_ERR_RPC_NOSERVICE, "RPC unknown service"),
    E(CURVE_ERR_RPC_NOMETHOD, "RPC unknown method"),
    E(CURVE_ERR_RPC_TOOBIG, "RPC frame exceeds the size limit"),
    E(CURVE_ERR_RPC_OVERLOAD, "RPC server overloaded (in-flight bound reached)"),
    E(CURVE_ERR_RPC_BADREQ, "RPC request body failed to decode"),
    E(CURVE_ERR_RPC_INTERNAL, "RPC handler failed unexpectedly"),
    E(CURVE_ERR_REDIRECTED, "not the copyset leader (redirected)"),
    E(CURVE_ERR_DISK_FAIL, "chunkserver disk failure"),
    E(CURVE_ERR_CRC_FAIL, "chunk data crc check failed"),
    E(CURVE_ERR_INVALID_REQUEST, "invalid request (alignment, bounds or fields)"),
    E(CURVE_ERR_NOSPACE, "no space left on chunkserver"),
    E(CURVE_ERR_COPYSET_NOTEXIST, "copyset does not exist"),
    E(CURVE_ERR_CHUNK_NOTEXIST, "chunk does not exist"),
    E(CURVE_ERR_FAILURE_UNKNOWN, "unknown chunk operation failure"),
    E(CURVE_ERR_OVERLOAD, "chunkserver overloaded"),
    E(CURVE_ERR_BACKWARD, "request sequence went backward"),
    E(CURVE_ERR_CHUNK_EXIST, "chunk already exists"),
    E(CURVE_ERR_EPOCH_TOO_OLD, "volume epoch too old (writer fenced)"),
    E(CURVE_ERR_NOT_FOUND, "not found"),
    E(CURVE_ERR_EXISTS, "already exists"),
    E(CURVE_ERR_NOT_EMPTY, "directory not empty"),
    E(CURVE_ERR_BAD_NAME, "invalid name"),
    E(CURVE_ERR_BAD_SIZE, "invalid size"),
    E(CURVE_ERR_PERMISSION, "permission denied"),
    E(CURVE_ERR_SESSION_EXPIRED, "session expired"),
    E(CURVE_ERR_FENCED, "fenced by a newer owner"),
    E(CURVE_ERR_ETCD, "etcd request failed"),
};

#undef E

static const err_entry *find_curve(int err)
{
    for (size_t i = 0; i < CURVE_ARRAY_SIZE(curve_err_table); i++)
        if (curve_err_table[i].code == err)
            return &curve_err_table[i];
    return NULL;
}

#define UNKNOWN_BUF_LEN 48
static _Thread_local char unknown_buf[UNKNOWN_BUF_LEN];

const char *curve_strerror(int err)
{
    if (err == 0)
        return "success";
    const err_entry *e = find_curve(err);
    if (e)
        return e->desc;
    if (err < 0 && err > -4096) {
        const char *d = strerrordesc_np(-err);
        if (d)
            return d;
    }
    snprintf(unknown_buf, sizeof(unknown_buf), "unknown error %d", err);
    return unknown_buf;
}

const char *curve_errname(int err)
{
    if (err == 0)
        return "OK";
    const err_entry *e = find_curve(err);
    if (e)
        return e->name;
    if (err < 0 && err > -4096) {
        const char *n = strerrorname_np(-err);
        if (n)
            return n;
    }
    return "?";
}
