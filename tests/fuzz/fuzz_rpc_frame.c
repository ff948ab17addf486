/*
 * libFuzzer target for the RPC frame decoder (src/rpc/rpc_frame.c).
 *
 * The first input byte picks how the rest is split into receive pieces (as a socket would
 * deliver them, low 6 bits), whether the pieces are separate buffers or consecutive ranges of one
 * buffer (bit 6: the TCP transport's case, where the decoder extends slices), and, with its high
 * bit set, "repairs" the header crc of every frame
 * the stream appears to contain, so that the fuzzer gets past the crc check and explores the
 * field and length validation. Every delivered frame is checked for consistency with its
 * header and the body accessor is exercised. Small limits make the length checks reachable.
 * The codec source is compiled into this target so that its coverage is instrumented.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/assert.h"
#include "common/crc32c.h"
#include "rpc/rpc_frame.h"

static void on_frame(rpc_frame *f, void *arg)
{
    unsigned *n = arg;
    (*n)++;
    CURVE_ASSERT(f->body.len == f->hdr.body_len);
    CURVE_ASSERT(f->attach.len == f->hdr.attach_len);
    CURVE_ASSERT(f->hdr.type == RPC_FRAME_REQUEST || f->hdr.type == RPC_FRAME_RESPONSE);
    uint8_t *tmp;
    const uint8_t *body = rpc_frame_body(f, &tmp);
    CURVE_ASSERT(body != NULL);
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < f->body.len; i++)
        sink ^= body[i];
    (void)sink;
    free(tmp);
    rpc_frame_free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t chunk = (size_t)(data[0] & 0x3f) + 1;
    bool shared = data[0] & 0x40;
    bool repair = data[0] & 0x80;
    data++;
    size--;
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    if (repair) {
        for (size_t pos = 0; pos + RPC_FRAME_HDR_SIZE <= size;) {
            uint32_t crc = curve_crc32c(0, copy + pos, RPC_FRAME_HDR_SIZE - 4);
            for (int i = 0; i < 4; i++)
                copy[pos + RPC_FRAME_HDR_SIZE - 4 + i] = (uint8_t)(crc >> (8 * i));
            uint64_t body = (uint64_t)copy[pos + 28] | (uint64_t)copy[pos + 29] << 8 |
                            (uint64_t)copy[pos + 30] << 16 | (uint64_t)copy[pos + 31] << 24;
            uint64_t att = (uint64_t)copy[pos + 32] | (uint64_t)copy[pos + 33] << 8 |
                           (uint64_t)copy[pos + 34] << 16 | (uint64_t)copy[pos + 35] << 24;
            uint64_t next = pos + RPC_FRAME_HDR_SIZE + body + att;
            if (next > size)
                break;
            pos = (size_t)next;
        }
    }
    data = copy;
    const rpc_frame_limits lim = {.body_max = 4096, .attach_max = 65536};
    rpc_frame_decoder d;
    rpc_frame_decoder_init(&d, &lim);
    unsigned frames = 0;
    int rc = 0;
    curve_buf *whole = NULL;
    if (shared) {
        whole = curve_buf_new(size ? size : 1);
        if (!whole) {
            free(copy);
            return 0;
        }
        memcpy(curve_buf_data(whole), data, size);
        curve_buf_set_len(whole, size);
    }
    for (size_t off = 0; off < size && rc == 0; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        if (shared) {
            rc = rpc_frame_decoder_feed(&d, whole, off, n, on_frame, &frames);
        } else {
            curve_buf *b = curve_buf_new(n);
            if (!b)
                break;
            memcpy(curve_buf_data(b), data + off, n);
            curve_buf_set_len(b, n);
            rc = rpc_frame_decoder_feed(&d, b, 0, n, on_frame, &frames);
            curve_buf_unref(b);
        }
        if (rc < 0) {
            CURVE_ASSERT(d.why != NULL);
            /* Sticky: further input is refused. */
            CURVE_ASSERT(d.error == rc);
        }
    }
    CURVE_ASSERT(rpc_frame_decoder_want(&d) >= 1);
    rpc_frame_decoder_reset(&d);
    if (whole) {
        CURVE_ASSERT(curve_buf_refcount(whole) == 1); /* every slice was released */
        curve_buf_unref(whole);
    }
    free(copy);
    return 0;
}
