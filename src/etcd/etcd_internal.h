/*
 * Internals of the etcd client shared between etcd.c (transport) and etcd_json.c (the JSON
 * gateway encoding), and exposed to tests/unit/etcd and the fuzz target. Pure functions: no
 * I/O, no global state; thread-safe.
 *
 * Gateway encoding rules (etcd 3.4 grpc-gateway, see docs/etcd-client.md):
 *   - keys and values are base64 (standard alphabet, padded);
 *   - int64/uint64 fields are JSON strings ("123"); we also accept JSON integers;
 *   - false / zero / empty fields are omitted (a missing field means its zero value);
 *   - enums are sent as names ("EQUAL", "VALUE", "DELETE") and accepted as names or numbers;
 *   - errors are {"error": msg, "code": grpc code, "message": msg} with an HTTP status != 200;
 *   - streams send one JSON object per line wrapped as {"result": {...}} or {"error": {...}}.
 */
#ifndef CURVE_ETCD_ETCD_INTERNAL_H
#define CURVE_ETCD_ETCD_INTERNAL_H

#include <jansson.h>

#include "etcd/etcd.h"

/* Bounds for decoding (CONVENTIONS §7). */
#define ETCD_MAX_KVS_PER_RESPONSE (1u << 20)
#define ETCD_MAX_EVENTS_PER_RESPONSE (1u << 20)

/* gRPC status codes that matter to us. */
#define ETCD_GRPC_INVALID_ARGUMENT 3
#define ETCD_GRPC_DEADLINE_EXCEEDED 4
#define ETCD_GRPC_NOT_FOUND 5
#define ETCD_GRPC_UNAVAILABLE 14

/* ---- base64 ---- */
/* Returns a malloc'd NUL-terminated base64 string of `len` bytes, or NULL on ENOMEM. */
char *etcd__b64_encode(const void *data, size_t len);
/* Decodes `slen` chars of base64 (padding optional) into a malloc'd buffer with a trailing NUL
 * (not counted in *outlen). Returns 0, -EINVAL (bad character / length), -ENOMEM. */
int etcd__b64_decode(const char *s, size_t slen, char **out, size_t *outlen);

/* ---- field helpers ---- */
/* Reads an int64 field of `obj` (string or integer; missing -> 0). Returns 0 or -EINVAL. */
int etcd__get_i64(const json_t *obj, const char *field, int64_t *out);
/* Reads a boolean field (missing -> false). Returns 0 or -EINVAL. */
int etcd__get_bool(const json_t *obj, const char *field, bool *out);
/* Adds an int64 field as a string. Returns 0 or -ENOMEM. */
int etcd__set_i64(json_t *obj, const char *field, int64_t v);
/* Adds a base64-encoded bytes field. Returns 0 or -ENOMEM. */
int etcd__set_bytes(json_t *obj, const char *field, const void *data, size_t len);

/* ---- requests: each returns 0 and a malloc'd compact JSON text in *out, -EINVAL, -ENOMEM ---- */
int etcd__enc_range(const etcd_range_req *r, char **out);
int etcd__enc_put(const char *key, const void *value, size_t value_len, int64_t lease,
                  bool prev_kv, char **out);
int etcd__enc_delete(const char *key, const char *range_end, bool prefix, bool prev_kv,
                     char **out);
int etcd__enc_txn(const etcd_compare *cmp, size_t n_cmp, const etcd_op *success,
                  size_t n_success, const etcd_op *failure, size_t n_failure, char **out);
int etcd__enc_compact(int64_t revision, bool physical, char **out);
int etcd__enc_lease_grant(int64_t ttl_s, int64_t id, char **out);
int etcd__enc_lease_id(int64_t id, char **out);               /* revoke, keepalive */
int etcd__enc_lease_ttl(int64_t id, bool keys, char **out);
int etcd__enc_watch_create(const etcd_watch_req *r, char **out);

/* ---- responses ----
 * Each decoder takes the parsed response object (the unwrapped "result" for streams), fills
 * *out (zeroed first; freed again on error) and returns 0, -ENOMEM, or CURVE_ERR_ETCD with a
 * message in `err` naming the bad field. */
int etcd__dec_range(const json_t *o, etcd_range_result *out, char *err, size_t errlen);
int etcd__dec_put(const json_t *o, etcd_put_result *out, char *err, size_t errlen);
int etcd__dec_delete(const json_t *o, etcd_delete_result *out, char *err, size_t errlen);
int etcd__dec_txn(const json_t *o, etcd_txn_result *out, char *err, size_t errlen);
int etcd__dec_lease_grant(const json_t *o, int64_t *id, int64_t *ttl, char *err, size_t errlen);
/* keepalive: CURVE_ERR_NOT_FOUND when the TTL is missing/<= 0 (the lease is gone). */
int etcd__dec_keepalive(const json_t *o, int64_t *ttl, char *err, size_t errlen);
/* time-to-live: CURVE_ERR_NOT_FOUND when TTL is -1. */
int etcd__dec_lease_ttl(const json_t *o, etcd_lease_info *out, char *err, size_t errlen);
int etcd__dec_kv(const json_t *o, etcd_kv *kv, char *err, size_t errlen);

typedef struct etcd__watch_resp {
    int64_t revision;
    int64_t watch_id;
    bool created;
    bool canceled;
    int64_t compact_revision;
    char cancel_reason[256];
    etcd_event *events;
    size_t n_events;
} etcd__watch_resp;
int etcd__dec_watch(const json_t *o, etcd__watch_resp *out, char *err, size_t errlen);
void etcd__watch_resp_free(etcd__watch_resp *w);

/* Parses one complete response body. If it is a gateway error object ({"error":..,"code":..})
 * or not JSON, returns a negative code (see etcd__map_grpc) with the message in `err` and
 * *out NULL; else 0 with *out the parsed object (caller json_decref()s it). For stream lines
 * (`stream` true) the {"result": x} wrapper is removed and *out is x. */
int etcd__parse_body(const char *body, size_t len, bool stream, json_t **out, char *err,
                     size_t errlen);
/* Maps a gRPC status code to our codes: NOT_FOUND -> CURVE_ERR_NOT_FOUND, INVALID_ARGUMENT ->
 * -EINVAL, DEADLINE_EXCEEDED -> CURVE_ERR_TIMEOUT, UNAVAILABLE -> -EAGAIN (retryable),
 * others -> CURVE_ERR_ETCD. */
int etcd__map_grpc(int64_t code);

#endif
