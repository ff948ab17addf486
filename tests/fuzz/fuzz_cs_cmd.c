/* libFuzzer target: the copyset command decoder and the snapshot manifest meta decoder. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "chunkserver/copyset_fsm.h"
#include "common/assert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cs_cmd c;
    if (cs_cmd_decode(data, size, &c) == 0) {
        CURVE_ASSERT(c.type == CS_CMD_WRITE || c.type == CS_CMD_DELETE);
        CURVE_ASSERT((size_t)c.len + CS_CMD_HDR_SIZE == size);
        /* a decoded command re-encodes to the same bytes */
        uint8_t hdr[CS_CMD_HDR_SIZE];
        cs_cmd_encode_hdr(&c, NULL, 0, hdr);
        CURVE_ASSERT(memcmp(hdr, data, CS_CMD_HDR_SIZE) == 0);
    }
    uint64_t epoch, gid;
    uint32_t csize;
    (void)cs_fsm__meta_decode(data, size, &epoch, &gid, &csize);
    char name[32];
    size_t n = size < sizeof(name) - 1 ? size : sizeof(name) - 1;
    memcpy(name, data, n);
    name[n] = '\0';
    uint64_t id;
    (void)cs_fsm__parse_chunk_name(name, &id);
    return 0;
}
