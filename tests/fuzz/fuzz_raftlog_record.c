/* libFuzzer target: Raft log record decoder, segment recovery scan and metadata decoder.
 * Input: arbitrary bytes. The first byte picks the prev_term; the rest is treated as a record,
 * as a segment image and as a metadata file. Nothing may crash, and the scan result must be
 * self-consistent. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/assert.h"
#include "raft/io/disklog.h"
#include "raft/io/metastore.h"

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint64_t prev_term = data[0];
    data++;
    size--;
    rlog__hdr h;
    const char *why = NULL;
    if (rlog__decode_record(data, size, &h, &why) == 0)
        CURVE_ASSERT(RLOG__HDR_SIZE + (size_t)h.data_len <= size);
    else
        CURVE_ASSERT(why != NULL);

    fz_ctx c = {0, 0};
    rlog__scan_result r;
    CURVE_ASSERT(rlog__scan_segment(data, size, 1, prev_term, fz_cb, &c, &r) == 0);
    CURVE_ASSERT(r.count == c.n);
    CURVE_ASSERT(r.end_off == c.last_end && r.end_off <= size);
    CURVE_ASSERT(r.status == RLOG__SCAN_CLEAN || r.why != NULL);
    if (r.status == RLOG__SCAN_CLEAN)
        CURVE_ASSERT(r.nonzero_bytes == 0);

    rmeta_state st;
    if (rmeta__decode(data, size, &st) == 0) {
        CURVE_ASSERT(st.blob_len <= RMETA_MAX_BLOB);
        rmeta_state_free(&st);
    }
    return 0;
}
