/* libFuzzer target for the Raft runtime's decoders (src/raft/rt): the received message (protobuf
 * body + attachment, as the RPC handler sees them) and the snapshot-meta file. Input: u16 body
 * length, body, attachment. Decoders must reject bad input with an error, never crash; a
 * snapshot meta that decodes must re-encode to the same bytes. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "curve/errors.h"
#include "raft/rt/raft_node.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= 2) {
        size_t blen = (size_t)data[0] | ((size_t)data[1] << 8);
        if (blen > size - 2)
            blen = size - 2;
        int rc = raftrt__decode_wire(data + 2, blen, data + 2 + blen, size - 2 - blen);
        if (rc != 0 && rc != CURVE_ERR_RPC_BADREQ && rc != -ENOMEM)
            abort();
    }
    struct raft_snapshot_meta m;
    if (raftrt__snapmeta_decode(data, size, &m) == 0) {
        uint8_t buf[RAFTRT__SNAPMETA_MAX];
        size_t n = raftrt__snapmeta_encode(&m, buf, sizeof(buf));
        if (n != size || memcmp(buf, data, n) != 0)
            abort();
    }
    return 0;
}
