/* Unit tests of the RPC frame codec: round trips, corrupt and oversized headers, truncation,
 * incremental decoding and zero-copy attachments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"
#include "curve/errors.h"
#include "rpc/rpc_frame.h"
#include "rpc/rpc_transport.h"

static const rpc_frame_limits LIM = {.body_max = 1 << 20, .attach_max = 8 << 20};

static rpc_frame_hdr sample_hdr(void)
{
    return (rpc_frame_hdr){
        .version = RPC_FRAME_VERSION,
        .type = RPC_FRAME_RESPONSE,
        .corr_id = 0x0123456789abcdefULL,
        .service_id = 0xdeadbeef,
        .method_id = 7,
        .status = CURVE_ERR_RPC_OVERLOAD,
        .body_len = 1000,
        .attach_len = 4 << 20,
        .timeout_ms = 1234,
    };
}

static void test_hdr_round_trip(void **state)
{
    rpc_frame_hdr h = sample_hdr(), d;
    uint8_t b[RPC_FRAME_HDR_SIZE];
    rpc_frame_hdr_encode(&h, b);
    /* Little-endian magic "CRVR" and the crc over the first 44 bytes. */
    assert_memory_equal(b, "CRVR", 4);
    uint32_t crc =
        (uint32_t)b[44] | (uint32_t)b[45] << 8 | (uint32_t)b[46] << 16 | (uint32_t)b[47] << 24;
    assert_int_equal(crc, curve_crc32c(0, b, 44));
    assert_int_equal(b[8], 0xef); /* corr id is little-endian at offset 8 */
    assert_int_equal(rpc_frame_hdr_decode(b, &LIM, &d, NULL), 0);
    assert_int_equal(d.type, h.type);
    assert_true(d.corr_id == h.corr_id);
    assert_int_equal(d.service_id, h.service_id);
    assert_int_equal(d.method_id, h.method_id);
    assert_int_equal(d.status, h.status);
    assert_int_equal(d.body_len, h.body_len);
    assert_int_equal(d.attach_len, h.attach_len);
    assert_int_equal(d.timeout_ms, h.timeout_ms);
}

static void test_hdr_rejects_corruption(void **state)
{
    rpc_frame_hdr h = sample_hdr(), d;
    uint8_t good[RPC_FRAME_HDR_SIZE], b[RPC_FRAME_HDR_SIZE];
    rpc_frame_hdr_encode(&h, good);
    const char *why;
    /* Every single-bit flip anywhere in the header is caught. */
    for (unsigned bit = 0; bit < RPC_FRAME_HDR_SIZE * 8; bit++) {
        memcpy(b, good, sizeof(b));
        b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_int_equal(rpc_frame_hdr_decode(b, &LIM, &d, &why), CURVE_ERR_RPC_PROTO);
        assert_non_null(why);
    }
    /* Valid crc but bad fields. */
    rpc_frame_hdr bad = h;
    bad.type = 9;
    rpc_frame_hdr_encode(&bad, b);
    assert_int_equal(rpc_frame_hdr_decode(b, &LIM, &d, &why), CURVE_ERR_RPC_PROTO);
    assert_string_equal(why, "unknown frame type");
    bad = h;
    bad.version = 2;
    rpc_frame_hdr_encode(&bad, b);
    assert_int_equal(rpc_frame_hdr_decode(b, &LIM, &d, &why), CURVE_ERR_RPC_PROTO);
    bad = h;
    bad.flags = 1;
    rpc_frame_hdr_encode(&bad, b);
    assert_int_equal(rpc_frame_hdr_decode(b, &LIM, &d, &why), CURVE_ERR_RPC_PROTO);
}

static void test_hdr_oversized(void **state)
{
    rpc_frame_hdr h = sample_hdr(), d;
    uint8_t b[RPC_FRAME_HDR_SIZE];
    const char *why;
    h.body_len = LIM.body_max + 1;
    rpc_frame_hdr_encode(&h, b);
    assert_int_equal(rpc_frame_hdr_decode(b, &LIM, &d, &why), CURVE_ERR_RPC_TOOBIG);
    h = sample_hdr();
    h.attach_len = LIM.attach_max + 1;
    rpc_frame_hdr_encode(&h, b);
    assert_int_equal(rpc_frame_hdr_decode(b, &LIM, &d, &why), CURVE_ERR_RPC_TOOBIG);
    h.attach_len = LIM.attach_max;
    rpc_frame_hdr_encode(&h, b);
    assert_int_equal(rpc_frame_hdr_decode(b, &LIM, &d, &why), 0);
}

/* Builds a stream of frames into one buffer. */
typedef struct stream {
    uint8_t *p;
    size_t len, cap;
} stream;

static void stream_put(stream *s, const void *d, size_t n)
{
    if (s->len + n > s->cap) {
        s->cap = (s->len + n) * 2;
        s->p = realloc(s->p, s->cap);
    }
    memcpy(s->p + s->len, d, n);
    s->len += n;
}

static void add_frame(stream *s, uint64_t id, size_t body, size_t attach)
{
    rpc_frame_hdr h = {.type = RPC_FRAME_REQUEST,
                       .corr_id = id,
                       .service_id = 1,
                       .method_id = 2,
                       .body_len = (uint32_t)body,
                       .attach_len = (uint32_t)attach};
    uint8_t b[RPC_FRAME_HDR_SIZE];
    rpc_frame_hdr_encode(&h, b);
    stream_put(s, b, sizeof(b));
    for (size_t i = 0; i < body + attach; i++) {
        uint8_t c = (uint8_t)(id * 31 + i);
        stream_put(s, &c, 1);
    }
}

typedef struct collected {
    rpc_frame *f[16];
    unsigned n;
} collected;

static void collect_cb(rpc_frame *f, void *arg)
{
    collected *c = arg;
    assert_true(c->n < 16);
    c->f[c->n++] = f;
}

static void check_frame(rpc_frame *f, uint64_t id, size_t body, size_t attach)
{
    assert_true(f->hdr.corr_id == id);
    assert_int_equal(f->body.len, body);
    assert_int_equal(f->attach.len, attach);
    uint8_t *all = malloc(body + attach + 1);
    curve_iobuf_copyout(&f->body, 0, all, body);
    curve_iobuf_copyout(&f->attach, 0, all + body, attach);
    for (size_t i = 0; i < body + attach; i++)
        assert_int_equal(all[i], (uint8_t)(id * 31 + i));
    uint8_t *tmp;
    const uint8_t *bp = rpc_frame_body(f, &tmp);
    assert_non_null(bp);
    assert_memory_equal(bp, all, body);
    free(tmp);
    free(all);
}

/* Feeds the stream in chunks of `chunk` bytes, each in its own curve_buf. */
static void feed_chunks(rpc_frame_decoder *d, const stream *s, size_t chunk, collected *c)
{
    for (size_t off = 0; off < s->len; off += chunk) {
        size_t n = s->len - off < chunk ? s->len - off : chunk;
        curve_buf *b = curve_buf_new(n);
        memcpy(curve_buf_data(b), s->p + off, n);
        curve_buf_set_len(b, n);
        assert_int_equal(rpc_frame_decoder_feed(d, b, 0, n, collect_cb, c), 0);
        curve_buf_unref(b); /* frames keep their own references */
    }
}

static void test_decoder_incremental(void **state)
{
    stream s = {0};
    add_frame(&s, 1, 0, 0);
    add_frame(&s, 2, 10, 0);
    add_frame(&s, 3, 0, 100);
    add_frame(&s, 4, 300, 70000);
    add_frame(&s, 5, 1, 1);
    const size_t chunks[] = {1, 7, 48, 49, 4096, 1 << 20};
    for (size_t k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
        rpc_frame_decoder d;
        rpc_frame_decoder_init(&d, &LIM);
        collected c = {0};
        feed_chunks(&d, &s, chunks[k], &c);
        assert_int_equal(c.n, 5);
        check_frame(c.f[0], 1, 0, 0);
        check_frame(c.f[1], 2, 10, 0);
        check_frame(c.f[2], 3, 0, 100);
        check_frame(c.f[3], 4, 300, 70000);
        check_frame(c.f[4], 5, 1, 1);
        for (unsigned i = 0; i < c.n; i++)
            rpc_frame_free(c.f[i]);
        assert_int_equal(rpc_frame_decoder_want(&d), RPC_FRAME_HDR_SIZE);
        rpc_frame_decoder_reset(&d);
    }
    free(s.p);
}

static void test_decoder_zero_copy(void **state)
{
    stream s = {0};
    add_frame(&s, 9, 5, 1000);
    curve_buf *b = curve_buf_new(s.len);
    memcpy(curve_buf_data(b), s.p, s.len);
    curve_buf_set_len(b, s.len);
    rpc_frame_decoder d;
    rpc_frame_decoder_init(&d, &LIM);
    collected c = {0};
    assert_int_equal(rpc_frame_decoder_feed(&d, b, 0, s.len, collect_cb, &c), 0);
    assert_int_equal(c.n, 1);
    /* The attachment is a slice of the receive buffer, not a copy. */
    assert_int_equal(c.f[0]->attach.n, 1);
    assert_ptr_equal(c.f[0]->attach.v[0].buf, b);
    assert_int_equal(c.f[0]->attach.v[0].off, RPC_FRAME_HDR_SIZE + 5);
    assert_int_equal(curve_buf_refcount(b), 3); /* ours + body slice + attachment slice */
    rpc_frame_free(c.f[0]);
    assert_int_equal(curve_buf_refcount(b), 1);
    curve_buf_unref(b);
    free(s.p);
}

/* A frame trickled in 1-byte reads into one receive buffer (as the TCP transport does while
 * the buffer has room) must not cost one slice per read: body and attachment stay one slice
 * each (24 bytes of slice per received byte would let a slow peer amplify memory). */
static void test_decoder_small_reads_coalesce(void **state)
{
    stream s = {0};
    add_frame(&s, 11, 200, 70000);
    curve_buf *b = curve_buf_new(s.len);
    memcpy(curve_buf_data(b), s.p, s.len);
    curve_buf_set_len(b, s.len);
    rpc_frame_decoder d;
    rpc_frame_decoder_init(&d, &LIM);
    collected c = {0};
    for (size_t off = 0; off < s.len; off++)
        assert_int_equal(rpc_frame_decoder_feed(&d, b, off, 1, collect_cb, &c), 0);
    assert_int_equal(c.n, 1);
    check_frame(c.f[0], 11, 200, 70000);
    assert_int_equal(c.f[0]->body.n, 1);
    assert_int_equal(c.f[0]->attach.n, 1);
    assert_int_equal(curve_buf_refcount(b), 3); /* ours + body slice + attachment slice */
    rpc_frame_free(c.f[0]);
    assert_int_equal(curve_buf_refcount(b), 1);
    curve_buf_unref(b);
    rpc_frame_decoder_reset(&d);
    free(s.p);
}

static void test_decoder_truncated_and_errors(void **state)
{
    stream s = {0};
    add_frame(&s, 1, 100, 100);
    rpc_frame_decoder d;
    rpc_frame_decoder_init(&d, &LIM);
    collected c = {0};
    stream part = {0};
    stream_put(&part, s.p, s.len - 1); /* one byte short */
    feed_chunks(&d, &part, 13, &c);
    assert_int_equal(c.n, 0);
    assert_int_equal(rpc_frame_decoder_want(&d), 1);
    rpc_frame_decoder_reset(&d); /* frees the partial frame (checked by ASan) */

    /* A corrupt header fails, and the decoder stays failed. */
    s.p[3] ^= 0xff;
    curve_buf *b = curve_buf_new(s.len);
    memcpy(curve_buf_data(b), s.p, s.len);
    curve_buf_set_len(b, s.len);
    assert_int_equal(rpc_frame_decoder_feed(&d, b, 0, s.len, collect_cb, &c), CURVE_ERR_RPC_PROTO);
    assert_string_equal(d.why, "bad magic");
    s.p[3] ^= 0xff;
    memcpy(curve_buf_data(b), s.p, s.len);
    assert_int_equal(rpc_frame_decoder_feed(&d, b, 0, s.len, collect_cb, &c), CURVE_ERR_RPC_PROTO);
    assert_int_equal(c.n, 0);

    /* Oversized: a good frame then a too-big header; the good one is still delivered. */
    rpc_frame_limits small = {.body_max = 100, .attach_max = 100};
    rpc_frame_decoder_init(&d, &small);
    stream two = {0};
    add_frame(&two, 1, 100, 100);
    add_frame(&two, 2, 100, 101);
    curve_buf_unref(b);
    b = curve_buf_new(two.len);
    memcpy(curve_buf_data(b), two.p, two.len);
    curve_buf_set_len(b, two.len);
    assert_int_equal(rpc_frame_decoder_feed(&d, b, 0, two.len, collect_cb, &c),
                     CURVE_ERR_RPC_TOOBIG);
    assert_int_equal(c.n, 1);
    rpc_frame_free(c.f[0]);
    curve_buf_unref(b);
    free(two.p);
    free(part.p);
    free(s.p);
}

static void test_out_round_trip(void **state)
{
    curve_iobuf att;
    curve_iobuf_init(&att);
    assert_int_equal(curve_iobuf_append_copy(&att, "hello ", 6), 0);
    assert_int_equal(curve_iobuf_append_copy(&att, "world", 5), 0);
    rpc_frame_hdr h = {.type = RPC_FRAME_REQUEST, .corr_id = 77, .service_id = 3, .method_id = 4};
    rpc_out *o;
    assert_int_equal(rpc_out_new(&h, NULL, "raw-body", 8, &att, &LIM, &o), 0);
    assert_int_equal(att.len, 0); /* moved */
    assert_int_equal(o->attach.len, 11);
    /* Decode what would go on the wire: data[] then the attachment slices. */
    rpc_frame_decoder d;
    rpc_frame_decoder_init(&d, &LIM);
    collected c = {0};
    curve_buf *b = curve_buf_new(o->len);
    memcpy(curve_buf_data(b), o->data, o->len);
    curve_buf_set_len(b, o->len);
    assert_int_equal(rpc_frame_decoder_feed(&d, b, 0, o->len, collect_cb, &c), 0);
    for (unsigned i = 0; i < o->attach.n; i++)
        assert_int_equal(rpc_frame_decoder_feed(&d, o->attach.v[i].buf, o->attach.v[i].off,
                                                o->attach.v[i].len, collect_cb, &c),
                         0);
    assert_int_equal(c.n, 1);
    assert_true(c.f[0]->hdr.corr_id == 77);
    char got[32] = {0};
    curve_iobuf_copyout(&c.f[0]->body, 0, got, 8);
    assert_string_equal(got, "raw-body");
    memset(got, 0, sizeof(got));
    curve_iobuf_copyout(&c.f[0]->attach, 0, got, 11);
    assert_string_equal(got, "hello world");
    rpc_frame_free(c.f[0]);
    curve_buf_unref(b);
    rpc_out_free(o);

    /* Too big for the limits. */
    rpc_frame_limits tiny = {.body_max = 4, .attach_max = 4};
    assert_int_equal(rpc_out_new(&h, NULL, "raw-body", 8, NULL, &tiny, &o), CURVE_ERR_RPC_TOOBIG);
}

static void test_parse_addr(void **state)
{
    struct sockaddr_in sa;
    assert_int_equal(rpc_parse_addr("127.0.0.1:8200", &sa), 0);
    assert_int_equal(ntohs(sa.sin_port), 8200);
    assert_int_equal(rpc_parse_addr("127.0.0.1:0", &sa), 0);
    const char *bad[] = {"",
                         ":80",
                         "127.0.0.1",
                         "127.0.0.1:",
                         "127.0.0.1:65536",
                         "127.0.0.1:8x",
                         "300.0.0.1:1",
                         "localhost:1",
                         "1234567890123456789:1",
                         "127.0.0.1:+80",
                         "127.0.0.1: 80",
                         "127.0.0.1:-1",
                         "127.0.0.1:-18446744073709551615", /* strtoul wraps this to 1 */
                         "127.0.0.1:000000000000000000080"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(rpc_parse_addr(bad[i], &sa), -EINVAL);
    assert_int_equal(rpc_parse_addr(NULL, &sa), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hdr_round_trip),
        cmocka_unit_test(test_hdr_rejects_corruption),
        cmocka_unit_test(test_hdr_oversized),
        cmocka_unit_test(test_decoder_incremental),
        cmocka_unit_test(test_decoder_zero_copy),
        cmocka_unit_test(test_decoder_small_reads_coalesce),
        cmocka_unit_test(test_decoder_truncated_and_errors),
        cmocka_unit_test(test_out_round_trip),
        cmocka_unit_test(test_parse_addr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
