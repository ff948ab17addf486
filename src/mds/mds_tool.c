/*
 * curve-mds-tool: one MDS RPC per invocation, JSON on stdout (for tests and scripts).
 *
 *   curve-mds-tool --addr=IP:PORT[,IP:PORT...] [--timeout-ms=N] COMMAND ARGS...
 *
 * Commands: status | apply-topology FILE | list-topology | list-copysets [POOL [CS]] |
 *   get-copyset POOL ID | retire CS | mkdir PATH [OWNER] | create PATH SIZE [OWNER] |
 *   stat PATH | ls PATH [START_AFTER [LIMIT]] (one page) | rename FROM TO | extend PATH SIZE | delete PATH | recover PATH |
 *   purge PATH | open PATH [exclusive|readonly|reopen] [token=T] | refresh PATH SID | close PATH SID |
 *   segment PATH OFFSET (get or allocate) | get-segment PATH OFFSET |
 *   register IP PORT CAPACITY [DISK_PATH] | heartbeat JSON
 * heartbeat JSON: {"id":1,"token":"..","ip":"127.0.0.1","port":8200,"capacity":N,"used":N,
 *   "copysets":[{"pool":1,"id":1,"peers":["ip:port:0",..],"leader":"ip:port:0","term":1,
 *   "epoch":0}]}
 * Output: {"ok":true,"addr":"..","result":{...}} and exit 0, or {"ok":false,"code":N,
 * "error":"CURVE_ERR_...","message":"..."} and exit 1 (2 for usage errors). The addresses are
 * tried in order; a refused connection or CURVE_ERR_NOT_LEADER moves to the next one.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/buf.h"
#include "curve/errors.h"
#include "heartbeat.pb-c.h"
#include "loop/loop.h"
#include "mds.pb-c.h"
#include "rpc/rpc_channel.h"

#define TOOL_ADDRS_MAX 16
#define TOOL_SIZE_MAX (1ull << 60)

static json_t *msg_json(const ProtobufCMessage *m);

static json_t *field_json(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: return json_integer(*(const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: return json_integer((json_int_t) * (const uint64_t *)p);
    case PROTOBUF_C_TYPE_FLOAT: return json_real(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE: return json_real(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL: return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *v =
            protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int *)p);
        return v ? json_string(v->name) : json_integer(*(const int *)p);
    }
    case PROTOBUF_C_TYPE_STRING: return json_string(*(char *const *)p ? *(char *const *)p : "");
    case PROTOBUF_C_TYPE_BYTES:
        return json_integer((json_int_t)((const ProtobufCBinaryData *)p)->len);
    case PROTOBUF_C_TYPE_MESSAGE: return msg_json(*(ProtobufCMessage *const *)p);
    }
    return json_null();
}

static size_t type_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: return 8;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    default: return 4;
    }
}

static json_t *msg_json(const ProtobufCMessage *m)
{
    if (!m)
        return json_null();
    json_t *o = json_object();
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *base = (const char *)m + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
            const char *arr = *(char *const *)base;
            json_t *a = json_array();
            for (size_t k = 0; k < n; k++)
                json_array_append_new(a, field_json(f, arr + k * type_size(f->type)));
            json_object_set_new(o, f->name, a);
            continue;
        }
        if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
            if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (*(void *const *)base == NULL)
                    continue;
            } else if (f->quantifier_offset &&
                       !*(const protobuf_c_boolean *)((const char *)m + f->quantifier_offset)) {
                continue;
            }
        }
        json_object_set_new(o, f->name, field_json(f, base));
    }
    return o;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: curve-mds-tool --addr=IP:PORT[,IP:PORT...] [--timeout-ms=N] COMMAND ARGS\n"
            "see the header of src/mds/mds_tool.c for the commands\n");
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *s == 0 || *s == '-' || *end || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc((4u << 20) + 1);
    size_t n = buf ? fread(buf, 1, 4u << 20, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = 0;
    return buf;
}

typedef struct call {
    uint32_t svc, method;
    const ProtobufCMessage *req;
    const ProtobufCMessageDescriptor *resp_desc;
} call;

/* Heartbeat request from JSON (borrowed strings point into `j`). */
static int build_heartbeat(json_t *j, Curve__Heartbeat__HeartbeatRequest *r,
                           Curve__Heartbeat__DiskState *ds)
{
    json_int_t id = 0, port = 0, cap = 0, used = 0;
    const char *token = NULL, *ip = NULL;
    json_t *cps = NULL;
    if (json_unpack(j, "{s:I,s:s,s:s,s:I,s:I,s:I,s?o}", "id", &id, "token", &token, "ip", &ip,
                    "port", &port, "capacity", &cap, "used", &used, "copysets", &cps) < 0)
        return -EINVAL;
    curve__heartbeat__heartbeat_request__init(r);
    curve__heartbeat__disk_state__init(ds);
    r->chunkserver_id = (uint32_t)id;
    r->token = (char *)token;
    r->ip = (char *)ip;
    r->port = (uint32_t)port;
    r->disk_capacity = (uint64_t)cap;
    r->disk_used = (uint64_t)used;
    r->disk_state = ds;
    size_t n = cps ? json_array_size(cps) : 0;
    r->n_copysets = n;
    r->copysets = calloc(n + 1, sizeof(void *));
    Curve__Heartbeat__CopysetInfo *infos = calloc(n + 1, sizeof(*infos));
    if (!r->copysets || !infos)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(cps, i), *peers = NULL;
        json_int_t pool = 0, cid = 0, term = 0, epoch = 0;
        const char *leader = NULL;
        if (json_unpack(c, "{s:I,s:I,s:o,s?s,s:I,s:I}", "pool", &pool, "id", &cid, "peers",
                        &peers, "leader", &leader, "term", &term, "epoch", &epoch) < 0 ||
            !json_is_array(peers))
            return -EINVAL;
        Curve__Heartbeat__CopysetInfo *ci = &infos[i];
        curve__heartbeat__copyset_info__init(ci);
        ci->logical_pool_id = (uint32_t)pool;
        ci->copyset_id = (uint32_t)cid;
        ci->term = (uint64_t)term;
        ci->epoch = (uint64_t)epoch;
        ci->leader = (char *)leader;
        ci->n_peers = json_array_size(peers);
        ci->peers = calloc(ci->n_peers + 1, sizeof(char *));
        if (!ci->peers)
            return -ENOMEM;
        for (size_t k = 0; k < ci->n_peers; k++) {
            const char *s = json_string_value(json_array_get(peers, k));
            if (!s)
                return -EINVAL;
            ci->peers[k] = (char *)s;
        }
        r->copysets[i] = ci;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *addrs_arg = NULL;
    uint64_t timeout_ms = 10000;
    int ai = 1;
    for (; ai < argc && strncmp(argv[ai], "--", 2) == 0; ai++) {
        if (strncmp(argv[ai], "--addr=", 7) == 0)
            addrs_arg = argv[ai] + 7;
        else if (strncmp(argv[ai], "--timeout-ms=", 13) == 0 &&
                 parse_u64(argv[ai] + 13, 600000, &timeout_ms) == 0)
            ;
        else {
            usage();
            return 2;
        }
    }
    if (!addrs_arg || ai >= argc) {
        usage();
        return 2;
    }
    const char *cmd = argv[ai++];
    int nargs = argc - ai;
    char **a = argv + ai;
    uint64_t u1 = 0, u2 = 0;
    call c = {0};
    json_t *hbjson = NULL;
    char *text = NULL;

    /* Requests (only the one used is filled). */
    Curve__Mds__ClusterStatusRequest st = CURVE__MDS__CLUSTER_STATUS_REQUEST__INIT;
    Curve__Mds__ApplyTopologyRequest ap = CURVE__MDS__APPLY_TOPOLOGY_REQUEST__INIT;
    Curve__Mds__ListTopologyRequest lt = CURVE__MDS__LIST_TOPOLOGY_REQUEST__INIT;
    Curve__Mds__ListCopysetsRequest lc = CURVE__MDS__LIST_COPYSETS_REQUEST__INIT;
    Curve__Mds__GetCopysetRequest gc = CURVE__MDS__GET_COPYSET_REQUEST__INIT;
    Curve__Mds__RetireChunkServerRequest rt = CURVE__MDS__RETIRE_CHUNK_SERVER_REQUEST__INIT;
    Curve__Mds__MkdirRequest mk = CURVE__MDS__MKDIR_REQUEST__INIT;
    Curve__Mds__CreateVolumeRequest cv = CURVE__MDS__CREATE_VOLUME_REQUEST__INIT;
    Curve__Mds__PathRequest pr = CURVE__MDS__PATH_REQUEST__INIT;
    Curve__Mds__ListDirRequest ls = CURVE__MDS__LIST_DIR_REQUEST__INIT;
    Curve__Mds__RenameRequest rn = CURVE__MDS__RENAME_REQUEST__INIT;
    Curve__Mds__ExtendRequest ex = CURVE__MDS__EXTEND_REQUEST__INIT;
    Curve__Mds__RecoverRequest rc_ = CURVE__MDS__RECOVER_REQUEST__INIT;
    Curve__Mds__OpenRequest op = CURVE__MDS__OPEN_REQUEST__INIT;
    Curve__Mds__SessionRequest ss = CURVE__MDS__SESSION_REQUEST__INIT;
    Curve__Mds__SegmentRequest sg = CURVE__MDS__SEGMENT_REQUEST__INIT;
    Curve__Heartbeat__RegisterChunkServerRequest rg =
        CURVE__HEARTBEAT__REGISTER_CHUNK_SERVER_REQUEST__INIT;
    Curve__Heartbeat__HeartbeatRequest hb;
    Curve__Heartbeat__DiskState ds;

#define NEED(n)                                                                                    \
    do {                                                                                           \
        if (nargs < (n)) {                                                                         \
            usage();                                                                               \
            return 2;                                                                              \
        }                                                                                          \
    } while (0)
#define SET(s, m, r, rd) c = (call){s, m, &(r).base, &curve__mds__##rd##__descriptor}
    if (strcmp(cmd, "status") == 0) {
        SET(33, 1, st, cluster_status_response);
    } else if (strcmp(cmd, "apply-topology") == 0) {
        NEED(1);
        if (!(text = read_file(a[0]))) {
            fprintf(stderr, "curve-mds-tool: cannot read %s\n", a[0]);
            return 2;
        }
        ap.json = text;
        SET(31, 1, ap, apply_topology_response);
    } else if (strcmp(cmd, "list-topology") == 0) {
        SET(31, 2, lt, list_topology_response);
    } else if (strcmp(cmd, "list-copysets") == 0) {
        if (nargs >= 1 && parse_u64(a[0], UINT32_MAX, &u1) == 0 && u1) {
            lc.has_logical_pool_id = true;
            lc.logical_pool_id = (uint32_t)u1;
        }
        if (nargs >= 2 && parse_u64(a[1], UINT32_MAX, &u2) == 0 && u2) {
            lc.has_chunkserver_id = true;
            lc.chunkserver_id = (uint32_t)u2;
        }
        SET(31, 3, lc, list_copysets_response);
    } else if (strcmp(cmd, "get-copyset") == 0) {
        NEED(2);
        if (parse_u64(a[0], UINT32_MAX, &u1) < 0 || parse_u64(a[1], UINT32_MAX, &u2) < 0)
            return 2;
        gc.logical_pool_id = (uint32_t)u1;
        gc.copyset_id = (uint32_t)u2;
        SET(31, 4, gc, copyset_info);
    } else if (strcmp(cmd, "retire") == 0) {
        NEED(1);
        if (parse_u64(a[0], UINT32_MAX, &u1) < 0)
            return 2;
        rt.chunkserver_id = (uint32_t)u1;
        SET(31, 5, rt, empty);
    } else if (strcmp(cmd, "mkdir") == 0) {
        NEED(1);
        mk.path = a[0];
        mk.owner = nargs > 1 ? a[1] : "curve";
        SET(32, 1, mk, file_info);
    } else if (strcmp(cmd, "create") == 0) {
        NEED(2);
        if (parse_u64(a[1], TOOL_SIZE_MAX, &u1) < 0)
            return 2;
        cv.path = a[0];
        cv.size = u1;
        cv.owner = nargs > 2 ? a[2] : "curve";
        SET(32, 2, cv, file_info);
    } else if (strcmp(cmd, "ls") == 0) {
        NEED(1);
        ls.path = a[0];
        if (nargs > 1 && a[1][0])
            ls.start_after = a[1];
        if (nargs > 2) {
            if (parse_u64(a[2], UINT32_MAX, &u1) < 0)
                return 2;
            ls.has_limit = true;
            ls.limit = (uint32_t)u1;
        }
        SET(32, 4, ls, list_dir_response);
    } else if (strcmp(cmd, "stat") == 0 || strcmp(cmd, "delete") == 0 ||
               strcmp(cmd, "purge") == 0) {
        NEED(1);
        pr.path = a[0];
        if (cmd[0] == 's') {
            pr.has_open_count = pr.open_count = true;
            SET(32, 3, pr, file_info);
        }
        else if (cmd[0] == 'd')
            SET(32, 7, pr, empty);
        else
            SET(32, 9, pr, empty);
    } else if (strcmp(cmd, "rename") == 0) {
        NEED(2);
        rn.from = a[0];
        rn.to = a[1];
        SET(32, 5, rn, empty);
    } else if (strcmp(cmd, "extend") == 0) {
        NEED(2);
        if (parse_u64(a[1], TOOL_SIZE_MAX, &u1) < 0)
            return 2;
        ex.path = a[0];
        ex.size = u1;
        SET(32, 6, ex, file_info);
    } else if (strcmp(cmd, "recover") == 0) {
        NEED(1);
        rc_.path = a[0];
        SET(32, 8, rc_, file_info);
    } else if (strcmp(cmd, "open") == 0) {
        NEED(1);
        op.path = a[0];
        for (int i = 1; i < nargs; i++) { /* [exclusive|readonly] [token=T] */
            if (strcmp(a[i], "exclusive") == 0)
                op.has_exclusive = op.exclusive = true;
            else if (strcmp(a[i], "readonly") == 0)
                op.has_read_only = op.read_only = true;
            else if (strcmp(a[i], "reopen") == 0)
                op.has_reopen = op.reopen = true;
            else if (strncmp(a[i], "token=", 6) == 0)
                op.client_token = a[i] + 6;
        }
        SET(32, 10, op, open_response);
    } else if (strcmp(cmd, "refresh") == 0 || strcmp(cmd, "close") == 0) {
        NEED(2);
        ss.path = a[0];
        ss.session_id = a[1];
        SET(32, cmd[0] == 'r' ? 11 : 12, ss, empty);
    } else if (strcmp(cmd, "segment") == 0 || strcmp(cmd, "get-segment") == 0) {
        NEED(2);
        if (parse_u64(a[1], TOOL_SIZE_MAX, &u1) < 0)
            return 2;
        sg.path = a[0];
        sg.offset = u1;
        sg.has_allocate = cmd[0] == 's';
        sg.allocate = sg.has_allocate;
        SET(32, cmd[0] == 's' ? 13 : 14, sg, segment_response);
    } else if (strcmp(cmd, "register") == 0) {
        NEED(3);
        if (parse_u64(a[1], 65535, &u1) < 0 || parse_u64(a[2], TOOL_SIZE_MAX, &u2) < 0)
            return 2;
        rg.ip = a[0];
        rg.port = (uint32_t)u1;
        rg.disk_capacity = u2;
        rg.disk_path = nargs > 3 ? a[3] : "/tool";
        c = (call){30, 1, &rg.base, &curve__heartbeat__register_chunk_server_response__descriptor};
    } else if (strcmp(cmd, "heartbeat") == 0) {
        NEED(1);
        json_error_t je;
        hbjson = json_loads(a[0], 0, &je);
        if (!hbjson || build_heartbeat(hbjson, &hb, &ds) < 0) {
            fprintf(stderr, "curve-mds-tool: bad heartbeat JSON\n");
            return 2;
        }
        c = (call){30, 2, &hb.base, &curve__heartbeat__heartbeat_response__descriptor};
    } else {
        usage();
        return 2;
    }
#undef SET
#undef NEED

    curve_loop *loop;
    if (curve_loop_new("tool", &loop) < 0 || curve_loop_start(loop) < 0)
        return 1;
    char *addrs = strdup(addrs_arg);
    int status = CURVE_ERR_RPC_CONN;
    char errmsg[512] = "no address";
    char used_addr[128] = "";
    ProtobufCMessage *resp = NULL;
    int n = 0;
    for (char *save = NULL, *ad = strtok_r(addrs, ",", &save); ad && n < TOOL_ADDRS_MAX;
         ad = strtok_r(NULL, ",", &save), n++) {
        rpc_channel *ch;
        if (rpc_channel_new(loop, ad, NULL, &ch) < 0) {
            snprintf(errmsg, sizeof(errmsg), "bad address '%s'", ad);
            status = -EINVAL;
            continue;
        }
        status = rpc_call_sync(ch, c.svc, c.method, c.req, NULL, c.resp_desc,
                               (uint32_t)timeout_ms, &resp, NULL, errmsg, sizeof(errmsg));
        rpc_channel_close_sync(ch);
        snprintf(used_addr, sizeof(used_addr), "%s", ad);
        if (status != CURVE_ERR_RPC_CONN && status != CURVE_ERR_NOT_LEADER &&
            status != CURVE_ERR_TIMEOUT)
            break;
    }
    free(addrs);
    json_t *out = json_object();
    json_object_set_new(out, "ok", json_boolean(status == 0));
    json_object_set_new(out, "addr", json_string(used_addr));
    if (status == 0) {
        json_object_set_new(out, "result", msg_json(resp));
        protobuf_c_message_free_unpacked(resp, NULL);
    } else {
        json_object_set_new(out, "code", json_integer(status));
        json_object_set_new(out, "error", json_string(curve_errname(status)));
        json_object_set_new(out, "message", json_string(errmsg));
    }
    char *s = json_dumps(out, JSON_COMPACT);
    printf("%s\n", s ? s : "{}");
    fflush(stdout);
    free(s);
    json_decref(out);
    json_decref(hbjson);
    free(text);
    curve_loop_stop(loop);
    curve_loop_join(loop);
    curve_loop_free(loop);
    return status == 0 ? 0 : 1;
}
