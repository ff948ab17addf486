/* Transport-independent helpers: outgoing frames, connection references, addresses. */
#include "rpc/rpc_transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/assert.h"
#include "curve/errors.h"

int rpc_out_new(const rpc_frame_hdr *h, const ProtobufCMessage *msg, const void *raw,
                size_t raw_len, curve_iobuf *attach, const rpc_frame_limits *lim, rpc_out **out)
{
    size_t body_len = msg ? protobuf_c_message_get_packed_size(msg) : raw_len;
    size_t attach_len = attach ? attach->len : 0;
    if (body_len > lim->body_max || attach_len > lim->attach_max)
        return CURVE_ERR_RPC_TOOBIG;
    rpc_out *o = malloc(sizeof(*o) + RPC_FRAME_HDR_SIZE + body_len);
    if (!o)
        return -ENOMEM;
    o->next = NULL;
    curve_iobuf_init(&o->attach);
    if (attach && curve_iobuf_move(&o->attach, attach) < 0) {
        free(o);
        return -ENOMEM;
    }
    rpc_frame_hdr hh = *h;
    hh.body_len = (uint32_t)body_len;
    hh.attach_len = (uint32_t)attach_len;
    rpc_frame_hdr_encode(&hh, o->data);
    if (msg) {
        size_t packed = protobuf_c_message_pack(msg, o->data + RPC_FRAME_HDR_SIZE);
        CURVE_ASSERT(packed == body_len);
    } else if (raw_len) {
        memcpy(o->data + RPC_FRAME_HDR_SIZE, raw, raw_len);
    }
    o->len = RPC_FRAME_HDR_SIZE + body_len;
    *out = o;
    return 0;
}

void rpc_out_free(rpc_out *o)
{
    if (!o)
        return;
    curve_iobuf_reset(&o->attach);
    free(o);
}

rpc_conn *rpc_conn_ref(rpc_conn *c)
{
    int old = atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    CURVE_ASSERT(old > 0);
    return c;
}

void rpc_conn_unref(rpc_conn *c)
{
    if (!c)
        return;
    int old = atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel);
    CURVE_ASSERT(old > 0);
    if (old == 1)
        c->ops->destroy(c);
}

int rpc_parse_addr(const char *addr, struct sockaddr_in *sa)
{
    if (!addr)
        return -EINVAL;
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || (size_t)(colon - addr) >= INET_ADDRSTRLEN)
        return -EINVAL;
    char ip[INET_ADDRSTRLEN];
    memcpy(ip, addr, (size_t)(colon - addr));
    ip[colon - addr] = 0;
    /* 1..5 decimal digits only: strtoul alone would take a sign, spaces, or wrap "-18446..."
     * around to a small port. */
    const char *digits = colon + 1;
    size_t ndigits = strspn(digits, "0123456789");
    if (ndigits == 0 || ndigits > 5 || digits[ndigits] != 0)
        return -EINVAL;
    unsigned long port = strtoul(digits, NULL, 10);
    if (port > 65535)
        return -EINVAL;
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, &sa->sin_addr) != 1)
        return -EINVAL;
    return 0;
}
