/* libFuzzer target: every etcd gateway response decoder on arbitrary bytes (registered from
 * tests/unit/etcd/CMakeLists.txt). Decoders must never crash or leak on bad input. */
#include <stddef.h>
#include <stdint.h>

#include "etcd/etcd_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    for (int stream = 0; stream < 2; stream++) {
        json_t *o = NULL;
        if (etcd__parse_body((const char *)data, size, stream, &o, err, sizeof(err)) != 0)
            continue;
        etcd_range_result r;
        if (etcd__dec_range(o, &r, err, sizeof(err)) == 0)
            etcd_range_result_free(&r);
        etcd_put_result p;
        if (etcd__dec_put(o, &p, err, sizeof(err)) == 0)
            etcd_put_result_free(&p);
        etcd_delete_result d;
        if (etcd__dec_delete(o, &d, err, sizeof(err)) == 0)
            etcd_delete_result_free(&d);
        etcd_txn_result t;
        if (etcd__dec_txn(o, &t, err, sizeof(err)) == 0)
            etcd_txn_result_free(&t);
        int64_t id, ttl;
        etcd__dec_lease_grant(o, &id, &ttl, err, sizeof(err));
        etcd__dec_keepalive(o, &ttl, err, sizeof(err));
        etcd_lease_info li;
        if (etcd__dec_lease_ttl(o, &li, err, sizeof(err)) == 0)
            etcd_lease_info_free(&li);
        etcd__watch_resp w;
        if (etcd__dec_watch(o, &w, err, sizeof(err)) == 0)
            etcd__watch_resp_free(&w);
        json_decref(o);
    }
    return 0;
}
