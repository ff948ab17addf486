/*
 * curve-chunk-tool: a client of the chunkserver services for tests, benchmarks and operators.
 * Every command prints one JSON object per result line on stdout; exit code 0 when the call
 * got an answer (whatever its status), 1 on transport errors, 2 on bad usage.
 *
 *   curve-chunk-tool --addr=IP:PORT CMD [--key=value ...]
 *   ChunkService:   write  --pool --copyset --chunk --offset --size [--seed=N] [--epoch --file-id]
 *                   read   --pool --copyset --chunk --offset --size [--seed=N: check the data]
 *                   delete --pool --copyset --chunk         info --pool --copyset --chunk
 *   CopysetService: create-copyset --pool --copyset --peers=a:p,b:p,...
 *                   delete-copyset | copyset-status --pool --copyset      list-copysets
 *   CliService:     get-leader | add-peer | remove-peer | transfer-leader | reset-peer
 *                   --pool --copyset [--peer=ip:port]; change-peer --old-peer --new-peer
 *   Streams (--peers=a,b,c instead of --addr; follow REDIRECTED hints, move on to the next
 *   peer after DISK_FAIL, retry until success):
 *     write-stream --pool --copyset --count=N [--chunks=K] [--size=4096] [--chunk-size=16m]
 *                  [--out=FILE]: write i = 0..N-1 goes to chunk 1 + i / (chunk_size/size),
 *                  offset (i % per_chunk) * size, pattern seed i; every acknowledged write is
 *                  appended to FILE as "chunk offset size seed" (flushed) and printed.
 *     verify --pool --copyset --in=FILE: reads every line's range from the leader and checks
 *                  the pattern; prints {"checked": n, "bad": m}.
 *     bench --pool --copyset --op=write|read --qd=N --seconds=S [--size=4096] [--chunks=K]
 *                  random aligned IO; prints IOPS and latency percentiles.
 * Data pattern: 8-byte little-endian words, word w of seed s = s * 0x9E3779B97F4A7C15 + w.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunk.pb-c.h"
#include "cli.pb-c.h"
#include "common/clock.h"
#include "common/crc32c.h"
#include "copyset.pb-c.h"
#include "curve/errors.h"
#include "loop/loop.h"
#include "rpc/rpc_channel.h"

#define TOOL_MAX_PEERS 9
#define TOOL_MAX_OPTS 32
#define TOOL_RETRY_MAX 2000        /* attempts per streamed request */
#define TOOL_BENCH_QD_MAX 256
#define TOOL_BENCH_SAMPLES (1u << 22)

typedef struct tool {
    curve_loop *loop;
    const char *keys[TOOL_MAX_OPTS], *vals[TOOL_MAX_OPTS];
    int nopts;
    char peers[TOOL_MAX_PEERS][64];
    rpc_channel *ch[TOOL_MAX_PEERS];
    int npeers, leader;
    uint32_t timeout_ms;
} tool;

static const char *opt(tool *t, const char *k, const char *def)
{
    for (int i = 0; i < t->nopts; i++) {
        if (strcmp(t->keys[i], k) == 0)
            return t->vals[i];
    }
    return def;
}

static uint64_t opt_u64(tool *t, const char *k, uint64_t def)
{
    const char *v = opt(t, k, NULL);
    if (v == NULL)
        return def;
    char *end;
    uint64_t x = strtoull(v, &end, 0);
    if (*end == 'k' || *end == 'K')
        x <<= 10, end++;
    else if (*end == 'm' || *end == 'M')
        x <<= 20, end++;
    if (*end != '\0') {
        fprintf(stderr, "curve-chunk-tool: bad number --%s=%s\n", k, v);
        exit(2);
    }
    return x;
}

static void pattern(uint8_t *buf, size_t len, uint64_t seed, uint64_t first_word)
{
    for (size_t w = 0; w < len / 8; w++) {
        uint64_t v = seed * 0x9E3779B97F4A7C15ull + first_word + w;
        for (int b = 0; b < 8; b++)
            buf[w * 8 + b] = (uint8_t)(v >> (8 * b));
    }
}

static const char *chunk_status_name(int s)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&curve__chunk__chunk_status__descriptor, s);
    return v ? v->name + strlen("CHUNK_OP_STATUS_") : "?";
}

static int add_peer_channel(tool *t, const char *addr)
{
    if (t->npeers >= TOOL_MAX_PEERS)
        return -ENOSPC;
    /* accept "ip:port:0" too */
    char a[64];
    snprintf(a, sizeof(a), "%s", addr);
    char *c1 = strchr(a, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (c2)
        *c2 = '\0';
    for (int i = 0; i < t->npeers; i++) {
        if (strcmp(t->peers[i], a) == 0)
            return i;
    }
    rpc_channel_opts co = {.timeout_ms = t->timeout_ms};
    int rc = rpc_channel_new(t->loop, a, &co, &t->ch[t->npeers]);
    if (rc != 0)
        return rc;
    snprintf(t->peers[t->npeers], sizeof(t->peers[0]), "%s", a);
    return t->npeers++;
}

/* One ChunkService call to channel i. */
static int chunk_call(tool *t, int i, uint32_t method, Curve__Chunk__ChunkRequest *req,
                      curve_iobuf *data, Curve__Chunk__ChunkResponse **resp, curve_iobuf *rattach,
                      char *err, size_t errlen)
{
    ProtobufCMessage *r = NULL;
    int rc = rpc_call_sync(t->ch[i], 10, method, &req->base, data,
                           &curve__chunk__chunk_response__descriptor, t->timeout_ms, &r, rattach,
                           err, errlen);
    *resp = (Curve__Chunk__ChunkResponse *)r;
    return rc;
}

static void fill_req(tool *t, Curve__Chunk__ChunkRequest *req, uint32_t op)
{
    req->op_type = op;
    req->logical_pool_id = (uint32_t)opt_u64(t, "pool", 1);
    req->copyset_id = (uint32_t)opt_u64(t, "copyset", 1);
    req->chunk_id = opt_u64(t, "chunk", 1);
    if (opt(t, "offset", NULL)) {
        req->has_offset = 1;
        req->offset = opt_u64(t, "offset", 0);
    }
    if (opt(t, "size", NULL)) {
        req->has_size = 1;
        req->size = (uint32_t)opt_u64(t, "size", 0);
    }
    if (opt(t, "epoch", NULL)) {
        req->has_epoch = req->has_file_id = 1;
        req->epoch = opt_u64(t, "epoch", 0);
        req->file_id = opt_u64(t, "file-id", 0);
    }
    if (opt(t, "sn", NULL)) {
        req->has_sn = 1;
        req->sn = opt_u64(t, "sn", 0);
    }
}

static int cmd_chunk(tool *t, const char *cmd)
{
    uint32_t method = strcmp(cmd, "write") == 0 ? 1 : strcmp(cmd, "read") == 0 ? 2
                      : strcmp(cmd, "delete") == 0 ? 3 : 4;
    Curve__Chunk__ChunkRequest req = CURVE__CHUNK__CHUNK_REQUEST__INIT;
    fill_req(t, &req, method);
    curve_iobuf data, rattach;
    curve_iobuf_init(&data);
    curve_iobuf_init(&rattach);
    uint64_t seed = opt_u64(t, "seed", 0);
    uint64_t attach_len = opt_u64(t, "attach-len", req.size);
    if (method == 1 && attach_len > 0) {
        uint8_t *buf = malloc(attach_len);
        pattern(buf, attach_len, seed, 0);
        curve_iobuf_append_copy(&data, buf, attach_len);
        if (opt(t, "crc", NULL)) {
            req.has_data_crc = 1;
            req.data_crc = (uint32_t)opt_u64(t, "crc", 0);
        }
        free(buf);
    }
    Curve__Chunk__ChunkResponse *resp = NULL;
    char err[256] = "";
    int rc = chunk_call(t, 0, method, &req, &data, &resp, &rattach, err, sizeof(err));
    json_t *o = json_object();
    if (rc != 0) {
        json_object_set_new(o, "rpc_error", json_string(curve_errname(rc)));
        json_object_set_new(o, "error", json_string(err));
    } else {
        json_object_set_new(o, "status", json_string(chunk_status_name(resp->status)));
        if (resp->leader_hint)
            json_object_set_new(o, "leader_hint", json_string(resp->leader_hint));
        if (resp->has_applied_index)
            json_object_set_new(o, "applied_index", json_integer((json_int_t)resp->applied_index));
        if (resp->has_chunk_sn)
            json_object_set_new(o, "sn", json_integer((json_int_t)resp->chunk_sn));
        if (resp->has_epoch)
            json_object_set_new(o, "epoch", json_integer((json_int_t)resp->epoch));
        if (resp->error)
            json_object_set_new(o, "error", json_string(resp->error));
        if (method == 2 && resp->status == 0) {
            uint8_t *buf = malloc(rattach.len + 8), *exp = malloc(rattach.len + 8);
            curve_iobuf_copyout(&rattach, 0, buf, rattach.len);
            json_object_set_new(o, "len", json_integer((json_int_t)rattach.len));
            json_object_set_new(o, "crc32c", json_integer(curve_crc32c(0, buf, rattach.len)));
            if (opt(t, "seed", NULL)) {
                pattern(exp, rattach.len, seed, 0);
                json_object_set_new(o, "match",
                                    json_boolean(memcmp(buf, exp, rattach.len) == 0));
            }
            free(buf);
            free(exp);
        }
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    }
    char *s = json_dumps(o, JSON_COMPACT);
    printf("%s\n", s);
    free(s);
    json_decref(o);
    curve_iobuf_reset(&data);
    curve_iobuf_reset(&rattach);
    return rc == 0 ? 0 : 1;
}

static void print_msg(const ProtobufCMessage *m, int rc, const char *err)
{
    json_t *o = json_object();
    if (rc != 0) {
        json_object_set_new(o, "rpc_error", json_string(curve_errname(rc)));
        json_object_set_new(o, "error", json_string(err));
    } else {
        const ProtobufCMessageDescriptor *d = m->descriptor;
        for (unsigned i = 0; i < d->n_fields; i++) {
            const ProtobufCFieldDescriptor *f = &d->fields[i];
            const char *base = (const char *)m;
            const void *p = base + f->offset;
            if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset != 0 &&
                f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE &&
                !*(const protobuf_c_boolean *)(base + f->quantifier_offset))
                continue;
            if (f->label == PROTOBUF_C_LABEL_REPEATED) {
                size_t n = *(const size_t *)(base + f->quantifier_offset);
                json_t *a = json_array();
                for (size_t k = 0; k < n; k++) {
                    if (f->type == PROTOBUF_C_TYPE_STRING) {
                        json_array_append_new(a, json_string((*(char ***)p)[k]));
                    } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                        ProtobufCMessage *sub = (*(ProtobufCMessage ***)p)[k];
                        json_t *so = json_object();
                        for (unsigned q = 0; q < sub->descriptor->n_fields; q++) {
                            const ProtobufCFieldDescriptor *sf = &sub->descriptor->fields[q];
                            json_object_set_new(so, sf->name,
                                json_integer(*(const uint32_t *)((char *)sub + sf->offset)));
                        }
                        json_array_append_new(a, so);
                    }
                }
                json_object_set_new(o, f->name, a);
                continue;
            }
            switch (f->type) {
            case PROTOBUF_C_TYPE_STRING:
                if (*(char *const *)p)
                    json_object_set_new(o, f->name, json_string(*(char *const *)p));
                break;
            case PROTOBUF_C_TYPE_ENUM: {
                const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
                    f->descriptor, *(const int *)p);
                json_object_set_new(o, f->name, json_string(v ? v->name : "?"));
                break;
            }
            case PROTOBUF_C_TYPE_UINT64:
                json_object_set_new(o, f->name, json_integer((json_int_t) * (const uint64_t *)p));
                break;
            case PROTOBUF_C_TYPE_UINT32:
                json_object_set_new(o, f->name, json_integer(*(const uint32_t *)p));
                break;
            default:
                break;
            }
        }
    }
    char *s = json_dumps(o, JSON_COMPACT);
    printf("%s\n", s);
    free(s);
    json_decref(o);
}

static int cmd_admin(tool *t, const char *cmd)
{
    uint32_t svc, method;
    const ProtobufCMessageDescriptor *rd;
    ProtobufCMessage *req;
    Curve__Copyset__CreateCopysetRequest cr = CURVE__COPYSET__CREATE_COPYSET_REQUEST__INIT;
    Curve__Copyset__CopysetRequest csr = CURVE__COPYSET__COPYSET_REQUEST__INIT;
    Curve__Copyset__ListCopysetsRequest lr = CURVE__COPYSET__LIST_COPYSETS_REQUEST__INIT;
    Curve__Cli__GetLeaderRequest gl = CURVE__CLI__GET_LEADER_REQUEST__INIT;
    Curve__Cli__PeerRequest pr = CURVE__CLI__PEER_REQUEST__INIT;
    Curve__Cli__ChangePeerRequest cp = CURVE__CLI__CHANGE_PEER_REQUEST__INIT;
    uint32_t pool = (uint32_t)opt_u64(t, "pool", 1), cs = (uint32_t)opt_u64(t, "copyset", 1);
    char *peers[TOOL_MAX_PEERS];
    char plist[512];
    snprintf(plist, sizeof(plist), "%s", opt(t, "peers", ""));
    if (strcmp(cmd, "create-copyset") == 0) {
        cr.logical_pool_id = pool;
        cr.copyset_id = cs;
        for (char *s = strtok(plist, ","); s && cr.n_peers < TOOL_MAX_PEERS; s = strtok(NULL, ","))
            peers[cr.n_peers++] = s;
        cr.peers = peers;
        svc = 12, method = 1, req = &cr.base, rd = &curve__copyset__copyset_response__descriptor;
    } else if (strcmp(cmd, "delete-copyset") == 0 || strcmp(cmd, "copyset-status") == 0) {
        csr.logical_pool_id = pool;
        csr.copyset_id = cs;
        bool del = cmd[0] == 'd';
        svc = 12, method = del ? 2 : 3, req = &csr.base;
        rd = del ? &curve__copyset__copyset_response__descriptor
                 : &curve__copyset__copyset_status_response__descriptor;
    } else if (strcmp(cmd, "list-copysets") == 0) {
        svc = 12, method = 4, req = &lr.base;
        rd = &curve__copyset__list_copysets_response__descriptor;
    } else if (strcmp(cmd, "get-leader") == 0) {
        gl.logical_pool_id = pool;
        gl.copyset_id = cs;
        svc = 11, method = 1, req = &gl.base, rd = &curve__cli__get_leader_response__descriptor;
    } else if (strcmp(cmd, "change-peer") == 0) {
        cp.logical_pool_id = pool;
        cp.copyset_id = cs;
        cp.old_peer = (char *)opt(t, "old-peer", "");
        cp.new_peer = (char *)opt(t, "new-peer", "");
        svc = 11, method = 4, req = &cp.base, rd = &curve__cli__cli_response__descriptor;
    } else {
        static const char *names[] = {"add-peer", "remove-peer", NULL, "transfer-leader",
                                      "reset-peer"};
        method = 0;
        for (uint32_t i = 0; i < 5; i++) {
            if (names[i] && strcmp(cmd, names[i]) == 0)
                method = i + 2;
        }
        if (method == 0) {
            fprintf(stderr, "curve-chunk-tool: unknown command %s\n", cmd);
            return 2;
        }
        pr.logical_pool_id = pool;
        pr.copyset_id = cs;
        pr.peer = (char *)opt(t, "peer", "");
        svc = 11, req = &pr.base, rd = &curve__cli__cli_response__descriptor;
    }
    ProtobufCMessage *resp = NULL;
    char err[256] = "";
    int rc = rpc_call_sync(t->ch[0], svc, method, req, NULL, rd, t->timeout_ms, &resp, NULL, err,
                           sizeof(err));
    print_msg(resp, rc, err);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    return rc == 0 ? 0 : 1;
}

static volatile sig_atomic_t stop_flag;
static void on_term(int sig)
{
    (void)sig;
    stop_flag = 1;
}

/* Sends one chunk request to the leader, following hints and rotating peers, until SUCCESS or
 * a final status. Returns the final chunk status (>= 0) or a negative transport error. */
static int leader_call(tool *t, uint32_t method, Curve__Chunk__ChunkRequest *req,
                       const uint8_t *data, curve_iobuf *rattach)
{
    for (int attempt = 0; attempt < TOOL_RETRY_MAX && !stop_flag; attempt++) {
        curve_iobuf d;
        curve_iobuf_init(&d);
        if (data != NULL)
            curve_iobuf_append_copy(&d, data, req->size);
        Curve__Chunk__ChunkResponse *resp = NULL;
        char err[256];
        curve_iobuf_reset(rattach);
        int rc = chunk_call(t, t->leader, method, req, &d, &resp, rattach, err, sizeof(err));
        curve_iobuf_reset(&d);
        if (rc != 0) {
            t->leader = (t->leader + 1) % t->npeers;
            usleep(attempt < 10 ? 10000 : 100000);
            continue;
        }
        int st = resp->status;
        int hint = -1;
        if (st == CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_REDIRECTED && resp->leader_hint)
            hint = add_peer_channel(t, resp->leader_hint);
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        switch (st) {
        case CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_REDIRECTED:
            t->leader = hint >= 0 ? hint : (t->leader + 1) % t->npeers;
            if (hint < 0)
                usleep(20000);
            continue;
        case CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_DISK_FAIL:
            if (t->npeers < 2)
                return st; /* --addr: report it */
            /* that replica's disk failed: it stopped leading, another replica takes over */
            t->leader = (t->leader + 1) % t->npeers;
            usleep(20000);
            continue;
        case CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_OVERLOAD:
        case CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_FAILURE_UNKNOWN:
        case CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_COPYSET_NOTEXIST:
            usleep(20000);
            if (st == CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_COPYSET_NOTEXIST)
                t->leader = (t->leader + 1) % t->npeers;
            continue;
        default:
            return st;
        }
    }
    return stop_flag ? CURVE_ERR_CANCELED : CURVE_ERR_TIMEOUT;
}

static int cmd_write_stream(tool *t)
{
    uint64_t count = opt_u64(t, "count", 1000), size = opt_u64(t, "size", 4096);
    uint64_t csize = opt_u64(t, "chunk-size", 16u << 20), per = csize / size;
    const char *out = opt(t, "out", NULL);
    FILE *f = out ? fopen(out, "a") : NULL;
    if (out && f == NULL) {
        fprintf(stderr, "curve-chunk-tool: cannot open %s\n", out);
        return 2;
    }
    signal(SIGTERM, on_term);
    uint8_t *buf = malloc(size);
    curve_iobuf ra;
    curve_iobuf_init(&ra);
    uint64_t acked = 0;
    int rc = 0;
    for (uint64_t i = 0; i < count && !stop_flag; i++) {
        Curve__Chunk__ChunkRequest req = CURVE__CHUNK__CHUNK_REQUEST__INIT;
        fill_req(t, &req, 1);
        req.chunk_id = 1 + i / per;
        req.has_offset = req.has_size = 1;
        req.offset = (i % per) * size;
        req.size = (uint32_t)size;
        pattern(buf, size, i, 0);
        int st = leader_call(t, 1, &req, buf, &ra);
        if (st == CURVE_ERR_CANCELED)
            break; /* SIGTERM while retrying: this write is not acknowledged */
        if (st != 0) {
            printf("{\"failed\": %" PRIu64 ", \"status\": %d}\n", i, st);
            rc = 1;
            break;
        }
        acked++;
        if (f) {
            fprintf(f, "%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", req.chunk_id,
                    req.offset, size, i);
            fflush(f);
        }
    }
    printf("{\"acked\": %" PRIu64 "}\n", acked);
    fflush(stdout);
    if (f)
        fclose(f);
    free(buf);
    curve_iobuf_reset(&ra);
    return rc;
}

static int cmd_verify(tool *t)
{
    const char *in = opt(t, "in", NULL);
    FILE *f = in ? fopen(in, "r") : NULL;
    if (f == NULL) {
        fprintf(stderr, "curve-chunk-tool: verify needs --in=FILE\n");
        return 2;
    }
    uint64_t chunk, off, size, seed, checked = 0, bad = 0;
    curve_iobuf ra;
    curve_iobuf_init(&ra);
    while (fscanf(f, "%" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64, &chunk, &off, &size,
                  &seed) == 4) {
        if (size == 0 || size > (4u << 20)) {
            bad++;
            continue;
        }
        Curve__Chunk__ChunkRequest req = CURVE__CHUNK__CHUNK_REQUEST__INIT;
        fill_req(t, &req, 2);
        req.chunk_id = chunk;
        req.has_offset = req.has_size = 1;
        req.offset = off;
        req.size = (uint32_t)size;
        int st = leader_call(t, 2, &req, NULL, &ra);
        uint8_t *got = malloc(size), *exp = malloc(size);
        pattern(exp, size, seed, 0);
        bool ok = st == 0 && ra.len == size;
        if (ok) {
            curve_iobuf_copyout(&ra, 0, got, size);
            ok = memcmp(got, exp, size) == 0;
        }
        if (!ok) {
            bad++;
            fprintf(stderr, "mismatch chunk %" PRIu64 " offset %" PRIu64 " seed %" PRIu64
                            " status %d\n", chunk, off, seed, st);
        }
        checked++;
        free(got);
        free(exp);
    }
    fclose(f);
    curve_iobuf_reset(&ra);
    printf("{\"checked\": %" PRIu64 ", \"bad\": %" PRIu64 "}\n", checked, bad);
    return 0;
}

/* ---- bench: QD requests in flight through async calls on the tool's loop ----------------- */

typedef struct bench {
    tool *t;
    uint32_t method, size;
    uint64_t chunks, csize, end_ns;
    curve_buf *data;
    uint64_t *lat_us;
    _Atomic uint64_t done, errors, overload;
    _Atomic int active;
    curve_completion fin;
    uint64_t rng;
} bench;

typedef struct bench_slot {
    bench *b;
    uint64_t t0;
} bench_slot;

static uint64_t bench_rand(bench *b)
{
    b->rng ^= b->rng << 13;
    b->rng ^= b->rng >> 7;
    b->rng ^= b->rng << 17;
    return b->rng;
}

static void bench_issue(bench_slot *s);

static void bench_cb(rpc_result *r, void *arg)
{
    bench_slot *s = arg;
    bench *b = s->b;
    uint64_t now = curve_now_mono_ns();
    uint64_t n = atomic_fetch_add(&b->done, 1);
    if (n < TOOL_BENCH_SAMPLES)
        b->lat_us[n] = (now - s->t0) / 1000;
    Curve__Chunk__ChunkResponse *resp = (void *)r->resp;
    if (resp != NULL && resp->status == CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_OVERLOAD)
        atomic_fetch_add(&b->overload, 1);
    else if (r->status != 0 || resp == NULL ||
        (resp->status != 0 && resp->status != CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_CHUNK_NOTEXIST))
        atomic_fetch_add(&b->errors, 1);
    if (now < b->end_ns) {
        bench_issue(s);
        return;
    }
    if (atomic_fetch_sub(&b->active, 1) == 1)
        curve_completion_signal(&b->fin, 0);
}

static void bench_issue(bench_slot *s)
{
    bench *b = s->b;
    Curve__Chunk__ChunkRequest req = CURVE__CHUNK__CHUNK_REQUEST__INIT;
    fill_req(b->t, &req, b->method);
    uint64_t per = b->csize / b->size;
    uint64_t r = bench_rand(b);
    req.chunk_id = 1 + r % b->chunks;
    req.has_offset = req.has_size = 1;
    req.offset = ((r >> 20) % per) * b->size;
    req.size = b->size;
    curve_iobuf d;
    curve_iobuf_init(&d);
    if (b->method == 1)
        curve_iobuf_append(&d, b->data, 0, b->size);
    s->t0 = curve_now_mono_ns();
    int rc = rpc_channel_call(b->t->ch[b->t->leader], 10, b->method, &req.base, &d,
                              &curve__chunk__chunk_response__descriptor, 0, bench_cb, s, NULL);
    curve_iobuf_reset(&d);
    if (rc != 0) {
        atomic_fetch_add(&b->errors, 1);
        if (atomic_fetch_sub(&b->active, 1) == 1)
            curve_completion_signal(&b->fin, 0);
    }
}

static void bench_start(void *arg)
{
    bench_slot *slots = arg;
    bench *b = slots[0].b;
    int qd = atomic_load(&b->active);
    for (int i = 0; i < qd; i++)
        bench_issue(&slots[i]);
}

static int u64cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmd_bench(tool *t)
{
    bench b = {.t = t, .rng = 0x9E3779B97F4A7C15ull};
    b.method = strcmp(opt(t, "op", "write"), "read") == 0 ? 2 : 1;
    b.size = (uint32_t)opt_u64(t, "size", 4096);
    b.chunks = opt_u64(t, "chunks", 4);
    b.csize = opt_u64(t, "chunk-size", 16u << 20);
    int qd = (int)opt_u64(t, "qd", 1);
    double secs = (double)opt_u64(t, "seconds", 5);
    if (qd < 1 || qd > TOOL_BENCH_QD_MAX || b.size == 0 || b.chunks == 0)
        return 2;
    /* find the leader with one acknowledged write of the first block */
    b.data = curve_buf_new(b.size);
    pattern(curve_buf_data(b.data), b.size, 7, 0);
    curve_buf_set_len(b.data, b.size);
    curve_iobuf ra;
    curve_iobuf_init(&ra);
    for (uint64_t c = 1; c <= b.chunks; c++) { /* create the chunks (reads then hit data) */
        Curve__Chunk__ChunkRequest req = CURVE__CHUNK__CHUNK_REQUEST__INIT;
        fill_req(t, &req, 1);
        req.chunk_id = c;
        req.has_offset = req.has_size = 1;
        req.offset = 0;
        req.size = b.size;
        if (leader_call(t, 1, &req, curve_buf_data(b.data), &ra) != 0) {
            fprintf(stderr, "curve-chunk-tool: bench: cannot write chunk %" PRIu64 "\n", c);
            return 1;
        }
    }
    curve_iobuf_reset(&ra);
    b.lat_us = calloc(TOOL_BENCH_SAMPLES, sizeof(uint64_t));
    bench_slot *slots = calloc((size_t)qd, sizeof(*slots));
    for (int i = 0; i < qd; i++)
        slots[i].b = &b;
    curve_completion_init(&b.fin);
    atomic_store(&b.active, qd);
    uint64_t t0 = curve_now_mono_ns();
    b.end_ns = t0 + (uint64_t)(secs * 1e9);
    curve_loop_post(t->loop, bench_start, slots);
    curve_completion_wait(&b.fin, 0);
    double el = (double)(curve_now_mono_ns() - t0) / 1e9;
    uint64_t n = atomic_load(&b.done), ns = n < TOOL_BENCH_SAMPLES ? n : TOOL_BENCH_SAMPLES;
    qsort(b.lat_us, ns, sizeof(uint64_t), u64cmp);
    double sum = 0;
    for (uint64_t i = 0; i < ns; i++)
        sum += (double)b.lat_us[i];
    printf("{\"op\": \"%s\", \"qd\": %d, \"ops\": %" PRIu64 ", \"errors\": %" PRIu64 ", \"overload\": %" PRIu64
           ", \"iops\": %.1f, \"lat_avg_us\": %.1f, \"lat_p50_us\": %" PRIu64
           ", \"lat_p99_us\": %" PRIu64 "}\n",
           b.method == 1 ? "write" : "read", qd, n, atomic_load(&b.errors),
           atomic_load(&b.overload), (double)n / el,
           ns ? sum / (double)ns : 0.0, ns ? b.lat_us[ns / 2] : 0,
           ns ? b.lat_us[(ns * 99) / 100] : 0);
    curve_completion_destroy(&b.fin);
    free(slots);
    free(b.lat_us);
    curve_buf_unref(b.data);
    return atomic_load(&b.errors) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    tool t = {.timeout_ms = 3000};
    const char *cmd = NULL;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) == 0) {
            if (t.nopts >= TOOL_MAX_OPTS)
                return 2;
            char *eq = strchr(argv[i], '=');
            t.keys[t.nopts] = argv[i] + 2;
            t.vals[t.nopts] = eq ? eq + 1 : "1";
            if (eq)
                *eq = '\0';
            t.nopts++;
        } else if (cmd == NULL) {
            cmd = argv[i];
        } else {
            fprintf(stderr, "curve-chunk-tool: unexpected argument %s\n", argv[i]);
            return 2;
        }
    }
    if (cmd == NULL) {
        fprintf(stderr, "usage: curve-chunk-tool --addr=IP:PORT|--peers=A,B,C CMD [--k=v...]\n");
        return 2;
    }
    t.timeout_ms = (uint32_t)opt_u64(&t, "timeout-ms", 3000);
    signal(SIGPIPE, SIG_IGN);
    if (curve_loop_new("tool", &t.loop) != 0 || curve_loop_start(t.loop) != 0)
        return 1;
    char peers[1024];
    snprintf(peers, sizeof(peers), "%s", opt(&t, "addr", opt(&t, "peers", "")));
    for (char *s = strtok(peers, ","); s; s = strtok(NULL, ",")) {
        if (add_peer_channel(&t, s) < 0) {
            fprintf(stderr, "curve-chunk-tool: bad address %s\n", s);
            return 2;
        }
    }
    if (t.npeers == 0) {
        fprintf(stderr, "curve-chunk-tool: --addr or --peers is required\n");
        return 2;
    }
    int rc;
    if (!strcmp(cmd, "write") || !strcmp(cmd, "read") || !strcmp(cmd, "delete") ||
        !strcmp(cmd, "info"))
        rc = cmd_chunk(&t, cmd);
    else if (!strcmp(cmd, "write-stream"))
        rc = cmd_write_stream(&t);
    else if (!strcmp(cmd, "verify"))
        rc = cmd_verify(&t);
    else if (!strcmp(cmd, "bench"))
        rc = cmd_bench(&t);
    else
        rc = cmd_admin(&t, cmd);
    fflush(stdout);
    for (int i = 0; i < t.npeers; i++)
        rpc_channel_close_sync(t.ch[i]);
    curve_loop_stop(t.loop);
    curve_loop_join(t.loop);
    curve_loop_free(t.loop);
    return rc;
}
