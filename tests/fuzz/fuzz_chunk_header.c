/* libFuzzer target for the chunk file header decoder (chunkfilepool.h). Any input must be
 * either rejected with CURVE_ERR_CORRUPT or decode to a header that re-encodes to the same
 * bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chunkserver/chunkfilepool.h"
#include "curve/errors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    curve_chunk_header h;
    static uint8_t page[CURVE_CHUNK_HEADER_SIZE];
    int rc = curve_chunk_header_decode(data, size, &h);
    if (rc != 0) {
        if (rc != CURVE_ERR_CORRUPT)
            abort();
        return 0;
    }
    curve_chunk_header_encode(&h, page);
    if (memcmp(page, data, CURVE_CHUNK_HEADER_LEN) != 0)
        abort();
    curve_chunk_header h2;
    if (curve_chunk_header_decode(page, sizeof(page), &h2) != 0 || h2.chunk_id != h.chunk_id ||
        h2.sn != h.sn || h2.flags != h.flags || h2.chunk_size != h.chunk_size)
        abort();
    return 0;
}
