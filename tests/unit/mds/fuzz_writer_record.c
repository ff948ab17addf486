/*
 * libFuzzer target for the MDS session writer record stored in etcd under
 * /curve/v1/writer/<file id> (mds_ns_writer_decode, mds_ns_writer_conflict; docs/sessions.md).
 * Nothing may crash or trip a sanitizer; an accepted record must re-encode to the same bytes.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/assert.h"
#include "mds/namespace_rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t lease = 0;
    char tok[MDS_SESSION_TOKEN_MAX + 1];
    if (mds_ns_writer_decode((const char *)data, size, &lease, tok) == 0) {
        char buf[MDS_WRITER_REC_MAX];
        int n = mds_ns_writer_encode(lease, tok, buf, sizeof(buf));
        CURVE_ASSERT(n > 0 && (size_t)n == size && memcmp(buf, data, size) == 0);
    }
    char err[256];
    int64_t orphan = 0;
    int k = mds_ns_writer_conflict((const char *)data, size, "tok", 1, &orphan, err, sizeof(err));
    CURVE_ASSERT(k == 0 || k == 1 || k < 0);
    CURVE_ASSERT(k == 1 || orphan == 0);
    /* Round trip of records built from the input (random bytes rarely pass the crc): lease and
     * token from the input, then one byte changed at an input-chosen place must be refused. */
    if (size >= 10) {
        int64_t l;
        memcpy(&l, data, sizeof(l));
        l &= INT64_MAX;
        char t[MDS_SESSION_TOKEN_MAX + 1];
        size_t tl = 0;
        for (size_t i = 10; i < size && tl < MDS_SESSION_TOKEN_MAX; i++)
            t[tl++] = "abcdefghijklmnopqrstuvwxyz0123456789_-"[data[i] % 38];
        t[tl] = '\0';
        char rec[MDS_WRITER_REC_MAX];
        int n = mds_ns_writer_encode(l, t, rec, sizeof(rec));
        if (l == 0) {
            CURVE_ASSERT(n == -EINVAL);
            return 0;
        }
        CURVE_ASSERT(n > 0);
        CURVE_ASSERT(mds_ns_writer_decode(rec, (size_t)n, &lease, tok) == 0);
        CURVE_ASSERT(lease == l && strcmp(tok, t) == 0);
        size_t pos = data[8] % (size_t)n;
        uint8_t flip = data[9] ? data[9] : 1;
        rec[pos] = (char)(rec[pos] ^ flip);
        CURVE_ASSERT(mds_ns_writer_decode(rec, (size_t)n, &lease, tok) != 0);
    }
    return 0;
}
