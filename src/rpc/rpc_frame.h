/*
 * RPC frame codec (docs/rpc.md has the byte layout).
 *
 * A frame is a fixed 48-byte little-endian header, then `body_len` bytes of protobuf-c encoded
 * body, then `attach_len` raw attachment bytes. The header carries its own crc32c. The decoder
 * is incremental: feed it whatever the transport read, in pieces of any size; it never trusts a
 * length before the header crc and the configured limits have been checked, and it hands the
 * attachment over as slices of the receive buffers (no copy).
 *
 * Thread model: a decoder belongs to one connection (one loop); the pure functions are
 * thread-safe.
 */
#ifndef CURVE_RPC_FRAME_H
#define CURVE_RPC_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define RPC_FRAME_MAGIC    0x52565243u /* "CRVR" read as little-endian bytes 'C','R','V','R' */
#define RPC_FRAME_VERSION  1u
#define RPC_FRAME_HDR_SIZE 48u

/* Default and hard upper limits for body and attachment sizes. */
#define RPC_FRAME_BODY_MAX_DEFAULT   (4u << 20)
#define RPC_FRAME_ATTACH_MAX_DEFAULT (64u << 20)
#define RPC_FRAME_LIMIT_HARD         (1u << 30)

typedef enum rpc_frame_type {
    RPC_FRAME_REQUEST = 1,
    RPC_FRAME_RESPONSE = 2,
} rpc_frame_type;

/* Decoded header fields (host order). */
typedef struct rpc_frame_hdr {
    uint8_t version;
    uint8_t type;     /* rpc_frame_type */
    uint16_t flags;   /* must be 0 in version 1 */
    uint64_t corr_id; /* correlation id chosen by the client, echoed by the server */
    uint32_t service_id;
    uint32_t method_id;
    int32_t status; /* 0 or a negative CURVE_ERR_* / errno (responses only) */
    uint32_t body_len;
    uint32_t attach_len;
    uint32_t timeout_ms; /* the client's timeout for the call (requests; 0 = none) */
} rpc_frame_hdr;

/* Writes the 48-byte header (with crc) into `out`. Asserts body/attach lengths fit. */
void rpc_frame_hdr_encode(const rpc_frame_hdr *h, uint8_t out[RPC_FRAME_HDR_SIZE]);

/* Limits applied by the decoder. */
typedef struct rpc_frame_limits {
    uint32_t body_max;   /* <= RPC_FRAME_LIMIT_HARD */
    uint32_t attach_max; /* <= RPC_FRAME_LIMIT_HARD */
} rpc_frame_limits;

/* Parses and validates a header: magic, version, type, flags, reserved bytes, crc, limits.
 * Returns 0, CURVE_ERR_RPC_PROTO (bad magic/version/type/flags/crc; `why` says which) or
 * CURVE_ERR_RPC_TOOBIG (length beyond the limits). `why` may be NULL; it points to a static
 * string. */
int rpc_frame_hdr_decode(const uint8_t in[RPC_FRAME_HDR_SIZE], const rpc_frame_limits *lim,
                         rpc_frame_hdr *h, const char **why);

/* A complete received frame. Owned by whoever receives it from the decoder; release with
 * rpc_frame_free(). */
typedef struct rpc_frame {
    rpc_frame_hdr hdr;
    curve_iobuf body;   /* body_len bytes */
    curve_iobuf attach; /* attach_len bytes, slices of the receive buffers */
} rpc_frame;

rpc_frame *rpc_frame_new(void);    /* NULL on ENOMEM */
void rpc_frame_free(rpc_frame *f); /* NULL is ignored */

/* Returns a pointer to the body as contiguous bytes: directly into the receive buffer when the
 * body is one slice, else a copy in *tmp (malloc'd; the caller frees *tmp, NULL otherwise).
 * Returns NULL only on ENOMEM (with body_len > 0); for an empty body returns a valid pointer. */
const uint8_t *rpc_frame_body(const rpc_frame *f, uint8_t **tmp);

/* Incremental decoder. */
typedef void (*rpc_frame_cb)(rpc_frame *f, void *arg); /* takes ownership of f */

typedef struct rpc_frame_decoder {
    rpc_frame_limits lim;
    uint8_t hdr[RPC_FRAME_HDR_SIZE];
    size_t hdr_have;               /* header bytes collected */
    rpc_frame *cur;                /* frame being assembled once the header is valid */
    size_t need_body, need_attach; /* bytes still missing */
    int error;                     /* sticky: once failed, the decoder refuses more input */
    const char *why;
} rpc_frame_decoder;

void rpc_frame_decoder_init(rpc_frame_decoder *d, const rpc_frame_limits *lim);
/* Frees a partially assembled frame. */
void rpc_frame_decoder_reset(rpc_frame_decoder *d);

/* Consumes bytes [off, off+len) of `b` (borrowed; slices take their own references), calling
 * cb for every complete frame in order. Returns 0, or a negative error (CURVE_ERR_RPC_PROTO,
 * CURVE_ERR_RPC_TOOBIG, -ENOMEM) with `d->why` describing it; after an error the connection
 * must be closed (the decoder stays failed). Frames delivered before the error stand. */
int rpc_frame_decoder_feed(rpc_frame_decoder *d, curve_buf *b, size_t off, size_t len,
                           rpc_frame_cb cb, void *arg);

/* Bytes the decoder still needs to finish the current frame (>= 1), a hint for sizing the next
 * receive buffer. */
size_t rpc_frame_decoder_want(const rpc_frame_decoder *d);

#endif
