/* RPC frame codec (see rpc_frame.h, docs/rpc.md). */
#include "rpc/rpc_frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/assert.h"
#include "common/crc32c.h"
#include "curve/errors.h"

/* Byte offsets of the header fields (little-endian). */
enum {
    OFF_MAGIC = 0,
    OFF_VERSION = 4,
    OFF_TYPE = 5,
    OFF_FLAGS = 6,
    OFF_CORR = 8,
    OFF_SERVICE = 16,
    OFF_METHOD = 20,
    OFF_STATUS = 24,
    OFF_BODY_LEN = 28,
    OFF_ATTACH_LEN = 32,
    OFF_TIMEOUT = 36,
    OFF_RESERVED = 40,
    OFF_CRC = 44,
    HDR_END = 48,
};
CURVE_STATIC_ASSERT(HDR_END == RPC_FRAME_HDR_SIZE, "rpc frame header is 48 bytes");
CURVE_STATIC_ASSERT(OFF_CRC + 4 == RPC_FRAME_HDR_SIZE, "crc is the last header field");

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32);
}

void rpc_frame_hdr_encode(const rpc_frame_hdr *h, uint8_t out[RPC_FRAME_HDR_SIZE])
{
    CURVE_ASSERT(h->body_len <= RPC_FRAME_LIMIT_HARD && h->attach_len <= RPC_FRAME_LIMIT_HARD);
    put32(out + OFF_MAGIC, RPC_FRAME_MAGIC);
    out[OFF_VERSION] = h->version ? h->version : RPC_FRAME_VERSION;
    out[OFF_TYPE] = h->type;
    put16(out + OFF_FLAGS, h->flags);
    put64(out + OFF_CORR, h->corr_id);
    put32(out + OFF_SERVICE, h->service_id);
    put32(out + OFF_METHOD, h->method_id);
    put32(out + OFF_STATUS, (uint32_t)h->status);
    put32(out + OFF_BODY_LEN, h->body_len);
    put32(out + OFF_ATTACH_LEN, h->attach_len);
    put32(out + OFF_TIMEOUT, h->timeout_ms);
    put32(out + OFF_RESERVED, 0);
    put32(out + OFF_CRC, curve_crc32c(0, out, OFF_CRC));
}

int rpc_frame_hdr_decode(const uint8_t in[RPC_FRAME_HDR_SIZE], const rpc_frame_limits *lim,
                         rpc_frame_hdr *h, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    if (get32(in + OFF_MAGIC) != RPC_FRAME_MAGIC) {
        *why = "bad magic";
        return CURVE_ERR_RPC_PROTO;
    }
    if (get32(in + OFF_CRC) != curve_crc32c(0, in, OFF_CRC)) {
        *why = "header crc mismatch";
        return CURVE_ERR_RPC_PROTO;
    }
    h->version = in[OFF_VERSION];
    if (h->version != RPC_FRAME_VERSION) {
        *why = "unsupported version";
        return CURVE_ERR_RPC_PROTO;
    }
    h->type = in[OFF_TYPE];
    if (h->type != RPC_FRAME_REQUEST && h->type != RPC_FRAME_RESPONSE) {
        *why = "unknown frame type";
        return CURVE_ERR_RPC_PROTO;
    }
    h->flags = get16(in + OFF_FLAGS);
    if (h->flags != 0 || get32(in + OFF_RESERVED) != 0) {
        *why = "non-zero flags or reserved bytes";
        return CURVE_ERR_RPC_PROTO;
    }
    h->corr_id = get64(in + OFF_CORR);
    h->service_id = get32(in + OFF_SERVICE);
    h->method_id = get32(in + OFF_METHOD);
    h->status = (int32_t)get32(in + OFF_STATUS);
    h->body_len = get32(in + OFF_BODY_LEN);
    h->attach_len = get32(in + OFF_ATTACH_LEN);
    h->timeout_ms = get32(in + OFF_TIMEOUT);
    if (h->body_len > lim->body_max) {
        *why = "body length over the limit";
        return CURVE_ERR_RPC_TOOBIG;
    }
    if (h->attach_len > lim->attach_max) {
        *why = "attachment length over the limit";
        return CURVE_ERR_RPC_TOOBIG;
    }
    *why = NULL;
    return 0;
}

rpc_frame *rpc_frame_new(void)
{
    rpc_frame *f = malloc(sizeof(*f));
    if (!f)
        return NULL;
    memset(&f->hdr, 0, sizeof(f->hdr));
    curve_iobuf_init(&f->body);
    curve_iobuf_init(&f->attach);
    return f;
}

void rpc_frame_free(rpc_frame *f)
{
    if (!f)
        return;
    curve_iobuf_reset(&f->body);
    curve_iobuf_reset(&f->attach);
    free(f);
}

const uint8_t *rpc_frame_body(const rpc_frame *f, uint8_t **tmp)
{
    static const uint8_t empty[1];
    *tmp = NULL;
    if (f->body.len == 0)
        return empty;
    if (f->body.n == 1)
        return curve_buf_data(f->body.v[0].buf) + f->body.v[0].off;
    uint8_t *p = malloc(f->body.len);
    if (!p)
        return NULL;
    size_t got = curve_iobuf_copyout(&f->body, 0, p, f->body.len);
    CURVE_ASSERT(got == f->body.len);
    *tmp = p;
    return p;
}

void rpc_frame_decoder_init(rpc_frame_decoder *d, const rpc_frame_limits *lim)
{
    memset(d, 0, sizeof(*d));
    d->lim = *lim;
    if (d->lim.body_max > RPC_FRAME_LIMIT_HARD)
        d->lim.body_max = RPC_FRAME_LIMIT_HARD;
    if (d->lim.attach_max > RPC_FRAME_LIMIT_HARD)
        d->lim.attach_max = RPC_FRAME_LIMIT_HARD;
}

void rpc_frame_decoder_reset(rpc_frame_decoder *d)
{
    rpc_frame_free(d->cur);
    d->cur = NULL;
    d->hdr_have = 0;
    d->need_body = d->need_attach = 0;
}

size_t rpc_frame_decoder_want(const rpc_frame_decoder *d)
{
    if (!d->cur)
        return RPC_FRAME_HDR_SIZE - d->hdr_have;
    return d->need_body + d->need_attach;
}

/* Appends bytes [off, off+n) of `b` to `dst`, extending the last slice when it ends exactly
 * there in the same buffer: a frame received in many small reads into one receive buffer costs
 * one slice, not one per read (a slow peer must not turn each byte into a 24-byte slice). */
static int frame_append(curve_iobuf *dst, curve_buf *b, size_t off, size_t n)
{
    if (dst->n > 0) {
        curve_slice *last = &dst->v[dst->n - 1];
        if (last->buf == b && last->off + last->len == off) {
            CURVE_ASSERT(n <= curve_buf_cap(b) - off);
            last->len += n;
            dst->len += n;
            return 0;
        }
    }
    return curve_iobuf_append(dst, b, off, n);
}

static int decoder_fail(rpc_frame_decoder *d, int err, const char *why)
{
    d->error = err;
    d->why = why;
    rpc_frame_decoder_reset(d);
    return err;
}

int rpc_frame_decoder_feed(rpc_frame_decoder *d, curve_buf *b, size_t off, size_t len,
                           rpc_frame_cb cb, void *arg)
{
    if (d->error)
        return d->error;
    const uint8_t *data = curve_buf_data(b);
    while (len > 0) {
        if (!d->cur) {
            size_t n = RPC_FRAME_HDR_SIZE - d->hdr_have;
            if (n > len)
                n = len;
            memcpy(d->hdr + d->hdr_have, data + off, n);
            d->hdr_have += n;
            off += n;
            len -= n;
            if (d->hdr_have < RPC_FRAME_HDR_SIZE)
                break;
            rpc_frame_hdr h;
            const char *why;
            int rc = rpc_frame_hdr_decode(d->hdr, &d->lim, &h, &why);
            if (rc < 0)
                return decoder_fail(d, rc, why);
            d->cur = rpc_frame_new();
            if (!d->cur)
                return decoder_fail(d, -ENOMEM, "out of memory");
            d->cur->hdr = h;
            d->need_body = h.body_len;
            d->need_attach = h.attach_len;
        } else {
            curve_iobuf *dst = d->need_body ? &d->cur->body : &d->cur->attach;
            size_t *need = d->need_body ? &d->need_body : &d->need_attach;
            size_t n = *need < len ? *need : len;
            if (n > 0) {
                if (frame_append(dst, b, off, n) < 0)
                    return decoder_fail(d, -ENOMEM, "out of memory");
                *need -= n;
                off += n;
                len -= n;
            }
        }
        if (d->cur && d->need_body == 0 && d->need_attach == 0) {
            rpc_frame *f = d->cur;
            d->cur = NULL;
            d->hdr_have = 0;
            cb(f, arg);
        }
    }
    /* A header-only frame completes as soon as its header is in. */
    if (d->cur && d->need_body == 0 && d->need_attach == 0) {
        rpc_frame *f = d->cur;
        d->cur = NULL;
        d->hdr_have = 0;
        cb(f, arg);
    }
    return 0;
}
