/* libFuzzer target: Raft log record decoder, segment recovery scan and metadata decoder.
 *
 * Mode (first byte, even): the rest is raw bytes, fed as a record, as a segment image and as a
 * metadata file. Nothing may crash and the scan result must be self-consistent.
 * Mode (first byte, odd): the rest describes a segment — writes of records, each write on a
 * page boundary as the log writes them — which is encoded validly, then one byte is XORed.
 * The scan must then find exactly the records before the damaged one, and classify the damage
 * as a torn tail (damaged record in the last write) or corruption (a later write follows). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/assert.h"
#include "common/crc32c.h"
#include "raft/io/disklog.h"
#include "raft/io/metastore.h"

#define FZ_MAX_WRITES 6
#define FZ_MAX_RECS_PER_WRITE 4
#define FZ_MAX_LEN 600
#define FZ_MAX_RECS (FZ_MAX_WRITES * FZ_MAX_RECS_PER_WRITE)

typedef struct fz_ctx {
    uint64_t n;
    size_t last_end;
} fz_ctx;

static int fz_cb(void *arg, const rlog__hdr *h, size_t off)
{
    fz_ctx *c = arg;
    CURVE_ASSERT(off >= c->last_end);
    c->last_end = off + RLOG__HDR_SIZE + h->data_len;
    c->n++;
    return 0;
}

static void check_result(const uint8_t *img, size_t size, uint64_t prev_term,
                         rlog__scan_result *r)
{
    fz_ctx c = {0, 0};
    CURVE_ASSERT(rlog__scan_segment(img, size, 1, prev_term, fz_cb, &c, r) == 0);
    CURVE_ASSERT(r->count == c.n);
    CURVE_ASSERT(r->end_off == c.last_end && r->end_off <= size);
    CURVE_ASSERT(r->status == RLOG__SCAN_CLEAN || r->why != NULL);
    if (r->status == RLOG__SCAN_CLEAN)
        CURVE_ASSERT(r->nonzero_bytes == 0);
}

static void raw_mode(const uint8_t *data, size_t size)
{
    uint64_t prev_term = size ? data[0] : 0;
    rlog__hdr h;
    const char *why = NULL;
    if (rlog__decode_record(data, size, &h, &why) == 0)
        CURVE_ASSERT(RLOG__HDR_SIZE + (size_t)h.data_len <= size);
    else
        CURVE_ASSERT(why != NULL);
    rlog__scan_result r;
    check_result(data, size, prev_term, &r);
    rmeta_state st;
    if (rmeta__decode(data, size, &st) == 0) {
        CURVE_ASSERT(st.blob_len <= RMETA_MAX_BLOB);
        rmeta_state_free(&st);
    }
}

typedef struct fz_in {
    const uint8_t *p;
    size_t n;
} fz_in;

static unsigned take(fz_in *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

static void structured_mode(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    size_t rec_off[FZ_MAX_RECS], rec_end[FZ_MAX_RECS];
    unsigned rec_write[FZ_MAX_RECS];
    unsigned nwrites = 1 + take(&in) % FZ_MAX_WRITES, nrec = 0;
    size_t cap = nwrites * (FZ_MAX_RECS_PER_WRITE * (RLOG__HDR_SIZE + FZ_MAX_LEN) +
                            RLOG_PAGE_SIZE) + RLOG_PAGE_SIZE;
    uint8_t *img = calloc(1, cap);
    CURVE_ASSERT(img);
    uint8_t payload[FZ_MAX_LEN];
    size_t off = 0;
    uint64_t term = 1;
    for (unsigned w = 0; w < nwrites; w++) {
        unsigned k = 1 + take(&in) % FZ_MAX_RECS_PER_WRITE;
        for (unsigned j = 0; j < k; j++) {
            uint32_t len = (uint32_t)((take(&in) << 8 | take(&in)) % FZ_MAX_LEN);
            term += take(&in) % 2;
            for (uint32_t b = 0; b < len; b++)
                payload[b] = (uint8_t)(b * 31 + nrec);
            rlog__hdr h = {.version = RLOG__VERSION, .type = (uint8_t)nrec, .term = term,
                           .index = 1 + nrec, .data_len = len,
                           .data_crc = curve_crc32c(0, payload, len),
                           .flags = j == 0 ? RLOG__FLAG_WRITE_START : 0};
            rlog__encode_hdr(&h, img + off);
            memcpy(img + off + RLOG__HDR_SIZE, payload, len);
            rec_off[nrec] = off;
            rec_end[nrec] = off + RLOG__HDR_SIZE + len;
            rec_write[nrec] = w;
            off = rec_end[nrec];
            nrec++;
        }
        off = (off + RLOG_PAGE_SIZE - 1) / RLOG_PAGE_SIZE * RLOG_PAGE_SIZE;
    }
    size_t len = off + RLOG_PAGE_SIZE;
    CURVE_ASSERT(len <= cap);
    size_t pos = (take(&in) << 16 | take(&in) << 8 | take(&in)) % len;
    uint8_t x = (uint8_t)take(&in);
    img[pos] ^= x;

    rlog__scan_result r;
    check_result(img, len, 0, &r);
    if (x == 0) {
        CURVE_ASSERT(r.status == RLOG__SCAN_CLEAN && r.count == nrec);
        goto out;
    }
    for (unsigned i = 0; i < nrec; i++) {
        if (pos >= rec_off[i] && pos < rec_end[i]) {
            /* crc32c detects every error burst of up to 32 bits: record i must fail. */
            CURVE_ASSERT(r.count == i);
            bool last_write = rec_write[i] == rec_write[nrec - 1];
            CURVE_ASSERT(r.status == (last_write ? RLOG__SCAN_TORN : RLOG__SCAN_CORRUPT));
            goto out;
        }
    }
    /* Damage in padding / after the end: never more records than written, never a record
     * that was not written (indexes are checked), and a tail change is never CLEAN. */
    CURVE_ASSERT(r.count <= nrec);
    if (pos >= rec_end[nrec - 1])
        CURVE_ASSERT(r.status == RLOG__SCAN_TORN && r.count == nrec);
out:
    free(img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        structured_mode(data + 1, size - 1);
    else
        raw_mode(data + 1, size - 1);
    return 0;
}
