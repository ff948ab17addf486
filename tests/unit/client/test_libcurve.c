/*
 * libcurve (curve.h) over real RPC against an in-process fake cluster: a fake MDS
 * (NamespaceService + TopologyService GetCopyset) and two fake chunkservers (ChunkService +
 * CliService GetLeader) on rpc_server, 127.0.0.1, ephemeral ports. The first chunkserver is a
 * follower that redirects to the second (the leader), which stores chunks in memory and fences
 * old epochs. A second "MDS" answers NOT_LEADER to everything and is listed first, so every
 * MDS call also exercises address rotation.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chunk.pb-c.h"
#include "cli.pb-c.h"
#include "client/client_conf.h"
#include "client/mds_client.h"
#include "common/assert.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "curve/curve.h"
#include "curve/errors.h"
#include "mds.pb-c.h"
#include "rpc/rpc_server.h"

#define KiB      1024u
#define CHUNK    (64u * KiB)
#define SEG      (4u * CHUNK)
#define VOLSIZE  (4u * SEG)
#define NCHUNKS  (VOLSIZE / CHUNK)
#define MAXFILES 32
#define POOL     1u
#define WAIT_MS  10000 /* bound of every condition wait */

/* ---- fake cluster state (lock protects everything below) ---- */

typedef struct ffile {
    bool used, dir, deleted;
    uint64_t id, parent, size, epoch;
    char name[64];
    char path[256];
    bool seg_alloc[VOLSIZE / SEG];
} ffile;

static struct {
    pthread_mutex_t lock;
    ffile files[MAXFILES];
    uint64_t next_id;
    uint32_t lease_ms;
    bool expire_sessions; /* refresh answers SESSION_EXPIRED */
    bool sessions_down;   /* refresh and open answer CURVE_ERR_ETCD */
    bool open_busy;       /* open answers -EBUSY (another writer holds the volume) */
    bool last_read_only, last_reopen; /* what the last Open asked for */
    char last_token[40];              /* ... and the opener token it carried */
    int refreshes, opens, get_copyset, redirects, writes, reads, deletes, seg_calls;
    int list_calls;       /* ListDir pages served */
    bool list_no_last;    /* ListDir answers more=true without last_name (a broken MDS) */
    uint64_t cs_epoch[MAXFILES]; /* highest epoch seen per file id (leader) */
    uint8_t data[MAXFILES][VOLSIZE];
    bool written[MAXFILES][NCHUNKS];
    char leader_addr[64], follower_addr[64];
    int overload_next;        /* the leader answers OVERLOAD to this many more chunk requests */
    bool hold_writes;         /* the leader keeps the reply of the next write in held */
    rpc_call_ctx *held;       /* (then replies SUCCESS when the test releases it) */
} F;

static curve_loop_group *srv_loops;
static rpc_server *mds_srv, *bad_mds_srv, *cs_leader, *cs_follower;
static char mds_addrs[256];

/* chunk id = file id * 1000 + chunk index + 1; copyset = chunk index % 2 + 1 */
static uint64_t chunk_of(uint64_t fid, uint64_t idx)
{
    return fid * 1000 + idx + 1;
}

static ffile *find_path(const char *path)
{
    if (strcmp(path, "/") == 0)
        return &F.files[0];
    for (int i = 1; i < MAXFILES; i++)
        if (F.files[i].used && !F.files[i].deleted && strcmp(F.files[i].path, path) == 0)
            return &F.files[i];
    return NULL;
}

static ffile *parent_of(const char *path, const char **name)
{
    const char *s = strrchr(path, '/');
    *name = s + 1;
    char dir[256];
    size_t l = s == path ? 1 : (size_t)(s - path);
    snprintf(dir, sizeof(dir), "%.*s", (int)l, path);
    return find_path(dir);
}

static void file_pb(const ffile *f, Curve__Mds__FileInfo *fi)
{
    curve__mds__file_info__init(fi);
    fi->id = f->id;
    fi->parent_id = f->parent;
    fi->name = (char *)f->name;
    fi->type = f->dir ? CURVE__MDS__FILE_TYPE__FILE_DIR : CURVE__MDS__FILE_TYPE__FILE_VOLUME;
    fi->size = f->size;
    fi->segment_size = SEG;
    fi->chunk_size = CHUNK;
    fi->epoch = f->epoch;
    fi->owner = "curve";
}

static ffile *new_file(const char *path, bool dir, uint64_t size, int *rc)
{
    const char *name;
    ffile *p = parent_of(path, &name);
    if (!p) {
        *rc = CURVE_ERR_NOT_FOUND;
        return NULL;
    }
    if (!p->dir) {
        *rc = -ENOTDIR;
        return NULL;
    }
    if (find_path(path)) {
        *rc = CURVE_ERR_EXISTS;
        return NULL;
    }
    for (int i = 1; i < MAXFILES; i++)
        if (!F.files[i].used) {
            ffile *f = &F.files[i];
            memset(f, 0, sizeof(*f));
            f->used = true;
            f->dir = dir;
            f->id = F.next_id++;
            f->parent = p->id;
            f->size = size;
            f->epoch = 1;
            snprintf(f->name, sizeof(f->name), "%s", name);
            snprintf(f->path, sizeof(f->path), "%s", path);
            *rc = 0;
            return f;
        }
    *rc = CURVE_ERR_NOSPACE;
    return NULL;
}

static void reply_file(rpc_call_ctx *ctx, const ffile *f)
{
    Curve__Mds__FileInfo fi;
    file_pb(f, &fi);
    rpc_call_reply(ctx, 0, &fi.base, NULL);
}

/* ---- fake MDS handlers ---- */

static void h_mkdir(rpc_call_ctx *ctx, const ProtobufCMessage *m, curve_iobuf *a, void *arg)
{
    const Curve__Mds__MkdirRequest *r = (const void *)m;
    int rc;
    pthread_mutex_lock(&F.lock);
    ffile *f = new_file(r->path, true, 0, &rc);
    if (f)
        reply_file(ctx, f);
    else
        rpc_call_reply_error(ctx, rc, "mkdir %s", r->path);
    pthread_mutex_unlock(&F.lock);
}

static void h_create(rpc_call_ctx *ctx, const ProtobufCMessage *m, curve_iobuf *a, void *arg)
{
    const Curve__Mds__CreateVolumeRequest *r = (const void *)m;
    int rc;
    pthread_mutex_lock(&F.lock);
    ffile *f = NULL;
    if (r->size == 0 || r->size % SEG || r->size > VOLSIZE * 4)
        rc = CURVE_ERR_BAD_SIZE;
    else
        f = new_file(r->path, false, r->size, &rc);
    if (f)
        reply_file(ctx, f);
    else
        rpc_call_reply_error(ctx, rc, "create %s", r->path);
    pthread_mutex_unlock(&F.lock);
}

static void h_stat(rpc_call_ctx *ctx, const ProtobufCMessage *m, curve_iobuf *a, void *arg)
{
    const Curve__Mds__PathRequest *r = (const void *)m;
    pthread_mutex_lock(&F.lock);
    ffile *f = find_path(r->path);
    if (f)
        reply_file(ctx, f);
    else
        rpc_call_reply_error(ctx, CURVE_ERR_NOT_FOUND, "'%s' not found", r->path);
    pthread_mutex_unlock(&F.lock);
}

static int fi_name_cmp(const void *a, const void *b)
{
    const Curve__Mds__FileInfo *x = *(Curve__Mds__FileInfo *const *)a;
    const Curve__Mds__FileInfo *y = *(Curve__Mds__FileInfo *const *)b;
    return strcmp(x->name, y->name);
}

/* One ListDir page like the MDS's: entries in name order after start_after, at most limit
 * (0: all), more + last_name. */
static void h_list(rpc_call_ctx *ctx, const ProtobufCMessage *m, curve_iobuf *a, void *arg)
{
    const Curve__Mds__ListDirRequest *r = (const void *)m;
    pthread_mutex_lock(&F.lock);
    F.list_calls++;
    bool bin = strcmp(r->path, "/RecycleBin") == 0;
    ffile *d = bin ? NULL : find_path(r->path);
    if (!bin && (!d || !d->dir)) {
        rpc_call_reply_error(ctx, d ? -ENOTDIR : CURVE_ERR_NOT_FOUND, "ls %s", r->path);
        pthread_mutex_unlock(&F.lock);
        return;
    }
    Curve__Mds__FileInfo fis[MAXFILES], *ptrs[MAXFILES];
    char names[MAXFILES][96];
    size_t n = 0;
    for (int i = 1; i < MAXFILES; i++) {
        ffile *f = &F.files[i];
        if (!f->used || f->deleted != bin || (!bin && f->parent != d->id))
            continue;
        file_pb(f, &fis[n]);
        if (bin) {
            snprintf(names[n], sizeof(names[n]), "%s-%llu", f->name, (unsigned long long)f->id);
            fis[n].name = names[n];
            fis[n].original_name = f->name;
        }
        ptrs[n] = &fis[n];
        n++;
    }
    qsort(ptrs, n, sizeof(ptrs[0]), fi_name_cmp);
    size_t first = 0;
    while (r->start_after && first < n && strcmp(ptrs[first]->name, r->start_after) <= 0)
        first++;
    size_t count = n - first;
    if (r->has_limit && r->limit && count > r->limit)
        count = r->limit;
    Curve__Mds__ListDirResponse resp = CURVE__MDS__LIST_DIR_RESPONSE__INIT;
    resp.n_entries = count;
    resp.entries = ptrs + first;
    resp.has_more = true;
    resp.more = first + count < n || F.list_no_last;
    if (count > 0 && !F.list_no_last)
        resp.last_name = ptrs[first + count - 1]->name;
    rpc_call_reply(ctx, 0, &resp.base, NULL);
    pthread_mutex_unlock(&F.lock);
}

static void reply_empty(rpc_call_ctx *ctx)
{
    Curve__Mds__Empty e = CURVE__MDS__EMPTY__INIT;
    rpc_call_reply(ctx, 0, &e.base, NULL);
}

static void h_rename(rpc_call_ctx *ctx, const ProtobufCMessage *m, curve_iobuf *a, void *arg)
{
    const Curve__Mds__RenameRequest *r = (const void *)m;
    pthread_mutex_lock(&F.lock);
    ffile *f = find_path(r->from);
    const char *name;
    ffile *p = parent_of(r->to, &name);
    if (!f || !p)
        rpc_call_reply_error(ctx, CURVE_ERR_NOT_FOUND, "rename");
    else if (find_path(r->to))
        rpc_call_reply_error(ctx, CURVE_ERR_EXISTS, "rename");
    else {
        f->parent = p->id;
        snprintf(f->name, sizeof(f->name), "%s", name);
        snprintf(f->path, sizeof(f->path), "%s", r->to);
        reply_empty(ctx);
    }
    pthread_mutex_unlock(&F.lock);
}

static void h_extend(rpc_call_ctx *ctx, const ProtobufCMessage *m, curve_iobuf *a, void *arg)
{
    const Curve__Mds__ExtendRequest *r = (const void *)m;
    pthread_mutex_lock(&F.lock);
    ffile *f = find_path(r->path);
    if (!f)
        rpc_call_reply_error(ctx, CURVE_ERR_NOT_FOUND, "extend");
    else if (r->size <= f->size || r->size % SEG || r->size > VOLSIZE)
        rpc_call_reply_error(ctx, CURVE_ERR_BAD_SIZE, "extend");
    else {
        f->size = r->size;
        reply_file(ctx, f);
    }
    pthread_mutex_unlock(&F.lock);
}

static void h_delete(rpc_call_ctx *ctx, const ProtobufCMessage *m, curve_iobuf *a, void *arg)
{
    const Curve__Mds__PathRequest *r = (const void *)m;
    pthread_mutex_lock(&F.lock);
    ffile *f = find_path(r->path);
    if (!f) {
        rpc_call_reply_error(ctx, CURVE_ERR_NOT_FOUND, "delete");
    } else if (f->dir) {
        bool empty = true;
        for (int i = 1; i < MAXFILES; i++)
            if (F.files[i].used && !F.files[i].deleted && F.files[i].parent == f->id)
                empty = false;
        if (!empty) {
            rpc_call_reply_error(ctx, CURVE_ERR_NOT_EMPTY, "delete");
        } else {
            f->used = false;
            reply_empty(ctx);
        }
    } else {
        f->deleted = true;
        reply_empty(ctx);
    }
    pthread_mutex_unlock(&F.lock);
}

static ffile *find_bin(const char *path)
{
    for (int i = 1; i < MAXFILES; i++) {
        ffile *f = &F.files[i];
        char p[128];
        snprintf(p, sizeof(p), "/RecycleBin/%s-%llu", f->name, (unsigned long long)f->id);
        if (f->used && f->deleted && strcmp(p, path) == 0)
            return f;
    }
    return NULL;
}

static void h_recover(rpc_call_ctx *ctx, const ProtobufCMessage *m, curve_iobuf *a, void *arg)
{
    const Curve__Mds__RecoverRequest *r = (const void *)m;
    pthread_mutex_lock(&F.lock);
    ffile *f = find_bin(r->path);
    if (!f) {
        rpc_call_reply_error(ctx, CURVE_ERR_NOT_FOUND, "recover %s", r->path);
    } else if (find_path(f->path)) {
        rpc_call_reply_error(ctx, CURVE_ERR_EXISTS, "recover");
    } else {
        f->deleted = false;
        reply_file(ctx, f);
    }
    pthread_mutex_unlock(&F.lock);
}

static void h_purge(rpc_call_ctx *ctx, const ProtobufCMessage *m, curve_iobuf *a, void *arg)
{
    const Curve__Mds__PathRequest *r = (const void *)m;
    pthread_mutex_lock(&F.lock);
    ffile *f = find_bin(r->path);
    if (!f) {
        rpc_call_reply_error(ctx, CURVE_ERR_NOT_FOUND, "purge %s", r->path);
    } else {
        f->used = false;
        reply_empty(ctx);
    }
    pthread_mutex_unlock(&F.lock);
}

static void h_open(rpc_call_ctx *ctx, const ProtobufCMessage *m, curve_iobuf *a, void *arg)
{
    const Curve__Mds__OpenRequest *r = (const void *)m;
    pthread_mutex_lock(&F.lock);
    ffile *f = find_path(r->path);
    F.last_read_only = r->has_read_only && r->read_only;
    F.last_reopen = r->has_reopen && r->reopen;
    snprintf(F.last_token, sizeof(F.last_token), "%s", r->client_token ? r->client_token : "");
    if (F.sessions_down) {
        rpc_call_reply_error(ctx, CURVE_ERR_ETCD, "etcd unavailable");
    } else if (F.open_busy && f && !f->dir && !F.last_read_only) {
        F.opens++;
        rpc_call_reply_error(ctx, -EBUSY, "open read-write by session 00000000000000bb");
    } else if (!f || f->dir) {
        rpc_call_reply_error(ctx, f ? CURVE_ERR_INVALID_REQUEST : CURVE_ERR_NOT_FOUND, "open");
    } else {
        F.opens++;
        if (r->has_exclusive && r->exclusive)
            f->epoch++;
        Curve__Mds__FileInfo fi;
        file_pb(f, &fi);
        Curve__Mds__OpenResponse resp = CURVE__MDS__OPEN_RESPONSE__INIT;
        resp.file = &fi;
        resp.session_id = "00000000000000aa";
        resp.lease_ms = F.lease_ms;
        rpc_call_reply(ctx, 0, &resp.base, NULL);
    }
    pthread_mutex_unlock(&F.lock);
}

static void h_refresh(rpc_call_ctx *ctx, const ProtobufCMessage *m, curve_iobuf *a, void *arg)
{
    pthread_mutex_lock(&F.lock);
    F.refreshes++;
    if (F.sessions_down)
        rpc_call_reply_error(ctx, CURVE_ERR_ETCD, "etcd unavailable");
    else if (F.expire_sessions)
        rpc_call_reply_error(ctx, CURVE_ERR_SESSION_EXPIRED, "session expired");
    else
        reply_empty(ctx);
    pthread_mutex_unlock(&F.lock);
}

static void h_close(rpc_call_ctx *ctx, const ProtobufCMessage *m, curve_iobuf *a, void *arg)
{
    reply_empty(ctx);
}

static void h_segment(rpc_call_ctx *ctx, const ProtobufCMessage *m, curve_iobuf *a, void *arg,
                      bool alloc)
{
    const Curve__Mds__SegmentRequest *r = (const void *)m;
    pthread_mutex_lock(&F.lock);
    F.seg_calls++;
    ffile *f = find_path(r->path);
    uint64_t si = r->offset / SEG;
    if (!f || f->dir || r->offset >= f->size) {
        rpc_call_reply_error(ctx, f ? -ERANGE : CURVE_ERR_NOT_FOUND, "segment");
    } else if (!alloc && !f->seg_alloc[si]) {
        rpc_call_reply_error(ctx, CURVE_ERR_NOT_FOUND, "segment not allocated");
    } else {
        f->seg_alloc[si] = true;
        Curve__Mds__ChunkLocation locs[SEG / CHUNK], *lp[SEG / CHUNK];
        for (unsigned i = 0; i < SEG / CHUNK; i++) {
            curve__mds__chunk_location__init(&locs[i]);
            uint64_t idx = si * (SEG / CHUNK) + i;
            locs[i].chunk_id = chunk_of(f->id, idx);
            locs[i].copyset_id = (uint32_t)(idx % 2) + 1;
            lp[i] = &locs[i];
        }
        Curve__Mds__SegmentResponse resp = CURVE__MDS__SEGMENT_RESPONSE__INIT;
        resp.file_id = f->id;
        resp.offset = si * SEG;
        resp.logical_pool_id = POOL;
        resp.chunk_size = CHUNK;
        resp.segment_size = SEG;
        resp.n_chunks = SEG / CHUNK;
        resp.chunks = lp;
        resp.epoch = f->epoch;
        rpc_call_reply(ctx, 0, &resp.base, NULL);
    }
    pthread_mutex_unlock(&F.lock);
}

static void h_getseg(rpc_call_ctx *ctx, const ProtobufCMessage *m, curve_iobuf *a, void *arg)
{
    h_segment(ctx, m, a, arg, false);
}

static void h_allocseg(rpc_call_ctx *ctx, const ProtobufCMessage *m, curve_iobuf *a, void *arg)
{
    h_segment(ctx, m, a, arg, true);
}

static void h_get_copyset(rpc_call_ctx *ctx, const ProtobufCMessage *m, curve_iobuf *a, void *arg)
{
    const Curve__Mds__GetCopysetRequest *r = (const void *)m;
    pthread_mutex_lock(&F.lock);
    F.get_copyset++;
    char p1[80], p2[80];
    snprintf(p1, sizeof(p1), "%s:0", F.follower_addr);
    snprintf(p2, sizeof(p2), "%s:0", F.leader_addr);
    uint32_t ids[2] = {1, 2};
    char *addrs[2] = {p1, p2};
    Curve__Mds__CopysetInfo ci = CURVE__MDS__COPYSET_INFO__INIT;
    ci.logical_pool_id = r->logical_pool_id;
    ci.copyset_id = r->copyset_id;
    ci.n_peers = 2;
    ci.peers = ids;
    ci.n_peer_addrs = 2;
    ci.peer_addrs = addrs;
    /* the MDS believes the follower leads: the client must follow the redirect */
    ci.has_leader = 1;
    ci.leader = 1;
    ci.leader_addr = p1;
    ci.epoch = 1;
    ci.term = 1;
    rpc_call_reply(ctx, 0, &ci.base, NULL);
    pthread_mutex_unlock(&F.lock);
}

static void h_not_leader(rpc_call_ctx *ctx, const ProtobufCMessage *m, curve_iobuf *a, void *arg)
{
    rpc_call_reply_error(ctx, CURVE_ERR_NOT_LEADER, "not the leader");
}

#define D(t) &curve__mds__##t##__descriptor
static const rpc_method_def ns_methods[] = {
    {1, "Mkdir", D(mkdir_request), D(file_info), h_mkdir},
    {2, "CreateVolume", D(create_volume_request), D(file_info), h_create},
    {3, "Stat", D(path_request), D(file_info), h_stat},
    {4, "ListDir", D(list_dir_request), D(list_dir_response), h_list},
    {5, "Rename", D(rename_request), D(empty), h_rename},
    {6, "Extend", D(extend_request), D(file_info), h_extend},
    {7, "Delete", D(path_request), D(empty), h_delete},
    {8, "Recover", D(recover_request), D(file_info), h_recover},
    {9, "Purge", D(path_request), D(empty), h_purge},
    {10, "Open", D(open_request), D(open_response), h_open},
    {11, "RefreshSession", D(session_request), D(empty), h_refresh},
    {12, "Close", D(session_request), D(empty), h_close},
    {13, "GetOrAllocateSegment", D(segment_request), D(segment_response), h_allocseg},
    {14, "GetSegment", D(segment_request), D(segment_response), h_getseg},
};
static const rpc_method_def topo_methods[] = {
    {4, "GetCopyset", D(get_copyset_request), D(copyset_info), h_get_copyset},
};
static rpc_method_def bad_ns_methods[CURVE_ARRAY_SIZE(ns_methods)];
static const rpc_method_def bad_topo_methods[] = {
    {4, "GetCopyset", D(get_copyset_request), D(copyset_info), h_not_leader},
};

/* ---- fake chunkservers ---- */

static void chunk_reply(rpc_call_ctx *ctx, Curve__Chunk__ChunkStatus st, const char *hint,
                        curve_iobuf *att)
{
    Curve__Chunk__ChunkResponse resp = CURVE__CHUNK__CHUNK_RESPONSE__INIT;
    resp.status = st;
    resp.leader_hint = (char *)hint;
    rpc_call_reply(ctx, 0, &resp.base, att);
}

static void h_chunk(rpc_call_ctx *ctx, const ProtobufCMessage *m, curve_iobuf *att, void *arg)
{
    const Curve__Chunk__ChunkRequest *r = (const void *)m;
    bool leader = arg != NULL;
    pthread_mutex_lock(&F.lock);
    if (!leader) {
        F.redirects++;
        chunk_reply(ctx, CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_REDIRECTED, F.leader_addr,
                    NULL);
        pthread_mutex_unlock(&F.lock);
        return;
    }
    if (F.overload_next > 0) {
        F.overload_next--;
        chunk_reply(ctx, CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_OVERLOAD, NULL, NULL);
        pthread_mutex_unlock(&F.lock);
        return;
    }
    uint64_t fid = r->file_id, idx = (r->chunk_id % 1000) - 1;
    if (fid >= MAXFILES || idx >= NCHUNKS || chunk_of(fid, idx) != r->chunk_id ||
        r->offset + r->size > CHUNK) {
        chunk_reply(ctx, CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_INVALID_REQUEST, NULL, NULL);
        pthread_mutex_unlock(&F.lock);
        return;
    }
    /* like the real chunkserver: every op is fenced; epoch 0 means "no fencing" */
    if (r->has_epoch && r->epoch != 0) {
        if (r->epoch < F.cs_epoch[fid]) {
            chunk_reply(ctx, CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_EPOCH_TOO_OLD, NULL, NULL);
            pthread_mutex_unlock(&F.lock);
            return;
        }
        F.cs_epoch[fid] = r->epoch;
    }
    uint8_t *base = F.data[fid] + idx * CHUNK;
    switch (r->op_type) {
    case CURVE__CHUNK__CHUNK_OP_TYPE__CHUNK_OP_WRITE:
        F.writes++;
        if (att->len != r->size) {
            chunk_reply(ctx, CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_INVALID_REQUEST, NULL,
                        NULL);
            break;
        }
        curve_iobuf_copyout(att, 0, base + r->offset, r->size);
        F.written[fid][idx] = true;
        if (F.hold_writes && !F.held) {
            F.held = ctx; /* the test replies */
            break;
        }
        chunk_reply(ctx, CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_SUCCESS, NULL, NULL);
        break;
    case CURVE__CHUNK__CHUNK_OP_TYPE__CHUNK_OP_READ: {
        F.reads++;
        if (!F.written[fid][idx]) {
            chunk_reply(ctx, CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_CHUNK_NOTEXIST, NULL,
                        NULL);
            break;
        }
        curve_iobuf out;
        curve_iobuf_init(&out);
        curve_iobuf_append_copy(&out, base + r->offset, r->size);
        chunk_reply(ctx, CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_SUCCESS, NULL, &out);
        curve_iobuf_reset(&out);
        break;
    }
    case CURVE__CHUNK__CHUNK_OP_TYPE__CHUNK_OP_DELETE:
        F.deletes++;
        memset(base, 0, CHUNK);
        bool existed = F.written[fid][idx];
        F.written[fid][idx] = false;
        chunk_reply(ctx,
                    existed ? CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_SUCCESS
                            : CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_CHUNK_NOTEXIST,
                    NULL, NULL);
        break;
    default:
        chunk_reply(ctx, CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_INVALID_REQUEST, NULL, NULL);
    }
    pthread_mutex_unlock(&F.lock);
}

static void h_get_leader(rpc_call_ctx *ctx, const ProtobufCMessage *m, curve_iobuf *a, void *arg)
{
    char l[80];
    pthread_mutex_lock(&F.lock);
    snprintf(l, sizeof(l), "%s:0", F.leader_addr);
    pthread_mutex_unlock(&F.lock);
    Curve__Cli__GetLeaderResponse resp = CURVE__CLI__GET_LEADER_RESPONSE__INIT;
    resp.status = CURVE__CLI__CLI_STATUS__CLI_OK;
    resp.leader = l;
    resp.has_term = 1;
    resp.term = 2;
    rpc_call_reply(ctx, 0, &resp.base, NULL);
}

#define CD(t) &curve__chunk__##t##__descriptor
static const rpc_method_def chunk_methods[] = {
    {1, "WriteChunk", CD(chunk_request), CD(chunk_response), h_chunk},
    {2, "ReadChunk", CD(chunk_request), CD(chunk_response), h_chunk},
    {3, "DeleteChunk", CD(chunk_request), CD(chunk_response), h_chunk},
};
static const rpc_method_def cli_methods[] = {
    {1, "GetLeader", &curve__cli__get_leader_request__descriptor,
     &curve__cli__get_leader_response__descriptor, h_get_leader},
};

static rpc_server *start_server(const rpc_service_def *svcs, int n)
{
    rpc_server *s;
    assert_int_equal(rpc_server_new(srv_loops, NULL, &s), 0);
    for (int i = 0; i < n; i++)
        assert_int_equal(rpc_server_add_service(s, &svcs[i]), 0);
    assert_int_equal(rpc_server_start(s, "127.0.0.1:0"), 0);
    return s;
}

static int setup(void **state)
{
    memset(&F, 0, sizeof(F));
    pthread_mutex_init(&F.lock, NULL);
    F.next_id = 2;
    F.lease_ms = 2000;
    F.files[0] = (ffile){.used = true, .dir = true, .id = 1, .parent = 0, .name = "", .path = "/"};
    assert_int_equal(curve_loop_group_new("fake", 1, &srv_loops), 0);
    rpc_service_def mds[] = {
        {32, "NamespaceService", ns_methods, CURVE_ARRAY_SIZE(ns_methods), NULL},
        {31, "TopologyService", topo_methods, CURVE_ARRAY_SIZE(topo_methods), NULL},
    };
    mds_srv = start_server(mds, 2);
    memcpy(bad_ns_methods, ns_methods, sizeof(ns_methods));
    for (size_t i = 0; i < CURVE_ARRAY_SIZE(bad_ns_methods); i++)
        bad_ns_methods[i].handler = h_not_leader;
    rpc_service_def bad[] = {
        {32, "NamespaceService", bad_ns_methods, CURVE_ARRAY_SIZE(bad_ns_methods), NULL},
        {31, "TopologyService", bad_topo_methods, 1, NULL},
    };
    bad_mds_srv = start_server(bad, 2);
    static int leader_tag;
    rpc_service_def csl[] = {
        {10, "ChunkService", chunk_methods, CURVE_ARRAY_SIZE(chunk_methods), &leader_tag},
        {11, "CliService", cli_methods, 1, NULL},
    };
    rpc_service_def csf[] = {
        {10, "ChunkService", chunk_methods, CURVE_ARRAY_SIZE(chunk_methods), NULL},
        {11, "CliService", cli_methods, 1, NULL},
    };
    cs_leader = start_server(csl, 2);
    cs_follower = start_server(csf, 2);
    snprintf(F.leader_addr, sizeof(F.leader_addr), "127.0.0.1:%d", rpc_server_port(cs_leader));
    snprintf(F.follower_addr, sizeof(F.follower_addr), "127.0.0.1:%d",
             rpc_server_port(cs_follower));
    snprintf(mds_addrs, sizeof(mds_addrs), "mds.addrs=127.0.0.1:%d,127.0.0.1:%d",
             rpc_server_port(bad_mds_srv), rpc_server_port(mds_srv));
    return 0;
}

static int teardown(void **state)
{
    rpc_server_free(cs_follower);
    rpc_server_free(cs_leader);
    rpc_server_free(bad_mds_srv);
    rpc_server_free(mds_srv);
    curve_loop_group_free(srv_loops);
    pthread_mutex_destroy(&F.lock);
    return 0;
}

static curve_client *new_client(const char *extra)
{
    const char *kv[] = {mds_addrs,
                        "client.retry.total_deadline_ms=10s",
                        "client.mds.call_deadline_ms=5s",
                        "client.log_level=warn",
                        extra,
                        NULL};
    curve_client *c = NULL;
    assert_int_equal(curve_client_init(NULL, kv, &c), 0);
    return c;
}

static int counter(int *p)
{
    pthread_mutex_lock(&F.lock);
    int v = *p;
    pthread_mutex_unlock(&F.lock);
    return v;
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 12));
}

/* ---- tests ---- */

static void test_init_errors(void **state)
{
    curve_client *c = (curve_client *)1;
    assert_int_equal(curve_client_init(NULL, NULL, &c), CURVE_ERR_CONFIG);
    assert_null(c);
    const char *bad[] = {"mds.addrs=127.0.0.1:1", "client.nope=1", NULL};
    assert_int_equal(curve_client_init(NULL, bad, &c), CURVE_ERR_CONFIG);
    const char *badaddr[] = {"mds.addrs=nohost", NULL};
    assert_int_equal(curve_client_init(NULL, badaddr, &c), CURVE_ERR_CONFIG);
    assert_int_equal(curve_client_init("/nonexistent/conf", NULL, &c), -ENOENT);
    assert_int_equal(curve_client_destroy(NULL), 0);
    assert_string_equal(curve_version(), "0.1.0");
}

static int list_cb(const struct curve_stat *st, void *ctx)
{
    char *out = ctx;
    strcat(out, st->name);
    strcat(out, st->type == CURVE_FILE_DIRECTORY ? "/ " : " ");
    return 0;
}

static int list_stop_cb(const struct curve_stat *st, void *ctx)
{
    return 42;
}

static void test_management(void **state)
{
    curve_client *c = new_client(NULL);
    assert_int_equal(curve_mkdir(c, "/d"), 0);
    assert_int_equal(curve_mkdir(c, "/d"), CURVE_ERR_EXISTS);
    assert_int_equal(curve_create(c, "/d/v", SEG), 0);
    assert_int_equal(curve_create(c, "/x/v", SEG), CURVE_ERR_NOT_FOUND);
    assert_int_equal(curve_create(c, "/d/bad", SEG + 1), CURVE_ERR_BAD_SIZE);
    assert_int_equal(curve_create(c, "relative", SEG), -EINVAL);
    struct curve_stat st;
    assert_int_equal(curve_stat(c, "/d/v", &st), 0);
    assert_int_equal(st.type, CURVE_FILE_VOLUME);
    assert_int_equal(st.size, SEG);
    assert_int_equal(st.chunk_size, CHUNK);
    assert_string_equal(st.name, "v");
    assert_string_equal(st.owner, "curve");
    assert_int_equal(curve_stat(c, "/", &st), 0);
    assert_string_equal(st.name, "/");
    assert_int_equal(st.type, CURVE_FILE_DIRECTORY);
    char names[256] = "";
    assert_int_equal(curve_list(c, "/d", list_cb, names), 0);
    assert_string_equal(names, "v ");
    assert_int_equal(curve_list(c, "/d", list_stop_cb, NULL), 42);
    assert_int_equal(curve_list(c, "/d/v", list_cb, names), -ENOTDIR);
    assert_int_equal(curve_extend(c, "/d/v", 2 * SEG), 0);
    assert_int_equal(curve_extend(c, "/d/v", SEG), CURVE_ERR_BAD_SIZE);
    assert_int_equal(curve_rename(c, "/d/v", "/d/w"), 0);
    assert_int_equal(curve_stat(c, "/d/v", &st), CURVE_ERR_NOT_FOUND);
    assert_int_equal(curve_rmdir(c, "/d"), CURVE_ERR_NOT_EMPTY);
    assert_int_equal(curve_rmdir(c, "/d/w"), -ENOTDIR);
    assert_int_equal(curve_delete(c, "/d", 0), -EISDIR);
    assert_int_equal(curve_delete(c, "/d/w", 4), -EINVAL);
    assert_int_equal(curve_stat(c, "/d/w", &st), 0);
    uint64_t id = st.id;
    assert_int_equal(curve_delete(c, "/d/w", 0), 0);
    assert_int_equal(curve_stat(c, "/d/w", &st), CURVE_ERR_NOT_FOUND);
    names[0] = '\0';
    assert_int_equal(curve_list(c, "/RecycleBin", list_cb, names), 0);
    char exp[64];
    snprintf(exp, sizeof(exp), "w-%llu ", (unsigned long long)id);
    assert_string_equal(names, exp);
    assert_int_equal(curve_recover(c, "/d/w", id + 100), CURVE_ERR_NOT_FOUND);
    assert_int_equal(curve_recover(c, "/d/w", 0), 0);
    assert_int_equal(curve_stat(c, "/d/w", &st), 0);
    assert_int_equal(st.id, id);
    assert_int_equal(curve_delete(c, "/d/w", CURVE_DELETE_FORCE), 0);
    assert_int_equal(curve_recover(c, "/d/w", 0), CURVE_ERR_NOT_FOUND);
    assert_int_equal(curve_rmdir(c, "/d"), 0);
    assert_int_equal(curve_rmdir(c, "/"), -EBUSY);
    assert_int_equal(curve_client_destroy(c), 0);
}

typedef struct my_aio {
    struct curve_aio aio;
    atomic_int done;
    curve_volume *v;
    int deadlk; /* result of a blocking call made inside the callback */
} my_aio;

static void aio_cb(struct curve_aio *a)
{
    my_aio *m = (my_aio *)a->ctx;
    m->deadlk = curve_flush(m->v);
    atomic_store(&m->done, 1);
}

static void wait_done(my_aio *m)
{
    uint64_t end = curve_now_mono_ms() + WAIT_MS;
    while (!atomic_load(&m->done) && curve_now_mono_ms() < end)
        sched_yield();
    assert_true(atomic_load(&m->done));
}

/* Value of the first rendered sample whose line contains every string of `parts`, or -1. */
static double metric_value(const char *const *parts)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(curve_metrics_render_prometheus(curve_metrics_default(), &text, &len), 0);
    double val = -1;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        bool all = line[0] != '#';
        for (int i = 0; all && parts[i]; i++)
            all = strstr(line, parts[i]) != NULL;
        if (all) {
            val = strtod(strrchr(line, ' ') + 1, NULL);
            break;
        }
    }
    free(text);
    return val;
}

/* curve_list and curve_recover read the directory in pages of client.list_page_size: every
 * entry exactly once and in name order, a callback's stop ends the paging, a broken page
 * (more without a last name) fails with -EPROTO instead of looping. */
static void test_list_pages(void **state)
{
    curve_client *c = new_client("client.list_page_size=2");
    assert_int_equal(curve_mkdir(c, "/p"), 0);
    const char *order[] = {"v3", "v1", "v5", "v2", "v4"};
    char path[64];
    for (size_t i = 0; i < 5; i++) {
        snprintf(path, sizeof(path), "/p/%s", order[i]);
        assert_int_equal(curve_create(c, path, SEG), 0);
    }
    char names[256] = "";
    int calls0 = counter(&F.list_calls);
    assert_int_equal(curve_list(c, "/p", list_cb, names), 0);
    assert_string_equal(names, "v1 v2 v3 v4 v5 ");
    assert_int_equal(counter(&F.list_calls) - calls0, 3); /* 2 + 2 + 1 */
    calls0 = counter(&F.list_calls);
    assert_int_equal(curve_list(c, "/p", list_stop_cb, NULL), 42);
    assert_int_equal(counter(&F.list_calls) - calls0, 1);

    /* recover finds its volume on a later page of /RecycleBin */
    struct curve_stat st;
    assert_int_equal(curve_stat(c, "/p/v4", &st), 0);
    uint64_t id4 = st.id;
    for (size_t i = 0; i < 5; i++) {
        snprintf(path, sizeof(path), "/p/%s", order[i]);
        assert_int_equal(curve_delete(c, path, 0), 0);
    }
    calls0 = counter(&F.list_calls);
    assert_int_equal(curve_recover(c, "/p/v4", 0), 0);
    assert_int_equal(counter(&F.list_calls) - calls0, 3);
    assert_int_equal(curve_stat(c, "/p/v4", &st), 0);
    assert_int_equal(st.id, id4);

    pthread_mutex_lock(&F.lock);
    F.list_no_last = true;
    pthread_mutex_unlock(&F.lock);
    names[0] = '\0';
    assert_int_equal(curve_list(c, "/p", list_cb, names), -EPROTO);
    assert_string_equal(names, "v4 ");
    assert_int_equal(curve_client_destroy(c), 0);
}

static void test_io(void **state)
{
    curve_client *c = new_client("client.max_rpc_size=64k");
    assert_int_equal(curve_create(c, "/v", VOLSIZE), 0);
    curve_volume *v;
    assert_int_equal(curve_open(c, "/nope", 0, &v), CURVE_ERR_NOT_FOUND);
    assert_int_equal(curve_open(c, "/v", 99, &v), -EINVAL);
    assert_int_equal(curve_open(c, "/", 0, &v), -EISDIR);
    assert_int_equal(curve_open(c, "/v", 0, &v), 0);
    assert_int_equal(curve_client_destroy(c), -EBUSY);
    size_t len = CHUNK + 3 * 4096; /* crosses a chunk boundary, two RPCs */
    uint64_t off = CHUNK - 8192;
    uint8_t *w = malloc(len), *r = malloc(len);
    fill(w, len, 1);
    assert_int_equal(curve_pwrite(v, w, len, off), (ssize_t)len);
    assert_true(counter(&F.redirects) > 0); /* the MDS named the follower first */
    assert_true(counter(&F.get_copyset) > 0);
    memset(r, 0, len);
    assert_int_equal(curve_pread(v, r, len, off), (ssize_t)len);
    assert_memory_equal(w, r, len);
    /* unallocated segment and unwritten chunk read as zeros, without allocating */
    int segs = counter(&F.seg_calls);
    memset(r, 0xee, len);
    assert_int_equal(curve_pread(v, r, 8192, VOLSIZE - 8192), 8192);
    for (int i = 0; i < 8192; i++)
        assert_int_equal(r[i], 0);
    assert_true(counter(&F.seg_calls) > segs);
    pthread_mutex_lock(&F.lock);
    assert_false(find_path("/v")->seg_alloc[VOLSIZE / SEG - 1]);
    pthread_mutex_unlock(&F.lock);
    memset(r, 0xee, 4096);
    assert_int_equal(curve_pread(v, r, 4096, 3 * CHUNK), 4096); /* chunk never written */
    for (int i = 0; i < 4096; i++)
        assert_int_equal(r[i], 0);
    /* refused requests */
    assert_int_equal(curve_pread(v, r, 100, 0), -EINVAL);
    assert_int_equal(curve_pread(v, r, 4096, VOLSIZE), -ERANGE);
    assert_int_equal(curve_pwrite(v, NULL, 4096, 0), -EINVAL);
    struct curve_aio bad = {0};
    assert_int_equal(curve_aio_read(v, &bad), -EINVAL); /* no callback */
    /* async write with ctx; a blocking call from the callback gets -EDEADLK */
    my_aio m = {0};
    m.v = v;
    m.aio.buf = w;
    m.aio.len = 4096;
    m.aio.offset = 3 * CHUNK;
    m.aio.cb = aio_cb;
    m.aio.ctx = &m;
    assert_int_equal(curve_aio_write(v, &m.aio), 0);
    wait_done(&m);
    assert_int_equal(m.aio.result, 4096);
    assert_int_equal(m.aio.op, CURVE_OP_WRITE);
    assert_int_equal(m.deadlk, -EDEADLK);
    assert_int_equal(curve_flush(v), 0);
    /* discard: a partial chunk is zeroed, a whole chunk deleted */
    assert_int_equal(curve_discard(v, off, 4096), 0);
    int dels = counter(&F.deletes);
    assert_int_equal(curve_discard(v, CHUNK, CHUNK), 0);
    assert_true(counter(&F.deletes) > dels);
    assert_int_equal(curve_pread(v, r, len, off), (ssize_t)len);
    for (size_t i = 0; i < len; i++) {
        bool zero = i < 4096 || (i >= 8192 && i < 8192 + CHUNK);
        if (zero)
            assert_int_equal(r[i], 0);
        else
            assert_int_equal(r[i], w[i]);
    }
    /* per-volume metrics: the MDS named a follower, so the redirect was counted */
    const char *redir[] = {"curve_client_retries_total{", "volume=\"/v\"", "cause=\"redirected\"",
                           NULL};
    assert_true(metric_value(redir) >= 1);
    const char *wlat[] = {"curve_client_io_latency_seconds_count{", "volume=\"/v\"", "op=\"write\"",
                          NULL};
    assert_true(metric_value(wlat) >= 2);
    const char *dump = getenv("CURVE_TEST_METRICS_OUT"); /* for `promtool check metrics` */
    if (dump) {
        char *text = NULL;
        assert_int_equal(curve_metrics_render_prometheus(curve_metrics_default(), &text, NULL), 0);
        FILE *f = fopen(dump, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
        free(text);
    }
    const char *bytes[] = {"curve_client_io_bytes_total{", "volume=\"/v\"", "op=\"read\"", NULL};
    assert_true(metric_value(bytes) >= (double)len);
    const char *errs[] = {"curve_client_io_errors_total{", "volume=\"/v\"", NULL};
    assert_true(metric_value(errs) == 0);
    /* fstat reports the unchanged size; the end stays the end */
    struct curve_stat st;
    assert_int_equal(curve_fstat(v, &st), 0);
    assert_int_equal(st.size, VOLSIZE);
    assert_int_equal(curve_pread(v, r, 4096, VOLSIZE), -ERANGE);
    free(w);
    free(r);
    assert_int_equal(curve_close(v), 0);
    assert_true(metric_value(wlat) < 0); /* unregistered with the volume */
    assert_int_equal(curve_delete(c, "/v", CURVE_DELETE_FORCE), 0);
    assert_int_equal(curve_client_destroy(c), 0);
}

typedef struct bg_io {
    curve_volume *v;
    bool flush;
    uint8_t *buf;
    atomic_int done;
    int64_t result;
} bg_io;

static void *bg_io_run(void *arg)
{
    bg_io *b = arg;
    b->result = b->flush ? curve_flush(b->v) : curve_pwrite(b->v, b->buf, 4096, 0);
    atomic_store(&b->done, 1);
    return NULL;
}

static void wait_flag(atomic_int *f)
{
    uint64_t end = curve_now_mono_ms() + WAIT_MS;
    while (!atomic_load(f) && curve_now_mono_ms() < end)
        sched_yield();
    assert_true(atomic_load(f));
}

/* The blocking fast path (fastpath.h): one-piece sync IO sent from the caller's thread once the
 * segment and leader are cached; a failed first attempt continues in the engine under the
 * retry policy; a flush waits for fast-path writes in progress. */
static void test_fast_path(void **state)
{
    curve_client *c = new_client("client.max_rpc_size=64k");
    assert_int_equal(curve_create(c, "/f", VOLSIZE), 0);
    curve_volume *v;
    assert_int_equal(curve_open(c, "/f", 0, &v), 0);
    const char *fast[] = {"curve_client_fast_path_ios_total{", "volume=\"/f\"", NULL};
    uint8_t w[8192], r[8192];
    fill(w, sizeof(w), 5);
    /* cold: the engine allocates the segment and learns the leader (the MDS names the
     * follower first) */
    assert_int_equal(curve_pwrite(v, w, 8192, CHUNK), 8192);
    assert_true(metric_value(fast) == 0);
    /* warm: straight from this thread, data round-trips (also an unwritten chunk: zeros) */
    int writes = counter(&F.writes);
    assert_int_equal(curve_pwrite(v, w, 4096, CHUNK + 8192), 4096);
    assert_int_equal(counter(&F.writes), writes + 1);
    memset(r, 0xee, sizeof(r));
    assert_int_equal(curve_pread(v, r, 8192, CHUNK), 8192);
    assert_memory_equal(r, w, 8192);
    assert_int_equal(curve_pread(v, r, 4096, CHUNK + 8192), 4096);
    assert_memory_equal(r, w, 4096);
    assert_true(metric_value(fast) == 3);
    /* another copyset, whose leader the MDS names wrongly: the fast attempt is redirected and
     * the engine follows the hint from there (one redirect, not two) */
    int redirects = counter(&F.redirects);
    memset(r, 0xee, sizeof(r));
    assert_int_equal(curve_pread(v, r, 4096, 2 * CHUNK), 4096); /* never written: zeros */
    for (int i = 0; i < 4096; i++)
        assert_int_equal(r[i], 0);
    assert_int_equal(counter(&F.redirects), redirects + 1);
    assert_true(metric_value(fast) == 3);
    assert_int_equal(curve_pread(v, r, 4096, 2 * CHUNK), 4096); /* now the leader is known */
    assert_true(metric_value(fast) == 4);
    /* OVERLOAD on the fast attempt: the engine backs off (200 ms -10% at least) and resends */
    pthread_mutex_lock(&F.lock);
    F.overload_next = 1;
    pthread_mutex_unlock(&F.lock);
    uint64_t t0 = curve_now_mono_ms();
    fill(w, sizeof(w), 6);
    assert_int_equal(curve_pwrite(v, w, 4096, CHUNK), 4096);
    uint64_t took = curve_now_mono_ms() - t0;
    if (took < 180)
        fail_msg("the overloaded write took only %llu ms", (unsigned long long)took);
    const char *ovl[] = {"curve_client_retries_total{", "volume=\"/f\"", "cause=\"overload\"",
                         NULL};
    assert_true(metric_value(ovl) == 1);
    assert_int_equal(curve_pread(v, r, 4096, CHUNK), 4096);
    assert_memory_equal(r, w, 4096);
    /* a flush submitted while a fast-path write is in progress waits for it */
    assert_int_equal(curve_pwrite(v, w, 4096, 0), 4096); /* warm chunk 0 */
    pthread_mutex_lock(&F.lock);
    F.hold_writes = true;
    pthread_mutex_unlock(&F.lock);
    writes = counter(&F.writes);
    bg_io wr = {.v = v, .buf = w}, fl = {.v = v, .flush = true};
    pthread_t tw, tf;
    assert_int_equal(pthread_create(&tw, NULL, bg_io_run, &wr), 0);
    uint64_t end = curve_now_mono_ms() + WAIT_MS;
    while (counter(&F.writes) == writes && curve_now_mono_ms() < end)
        sched_yield(); /* the write reached the chunkserver, whose reply is held */
    assert_int_equal(counter(&F.writes), writes + 1);
    assert_int_equal(pthread_create(&tf, NULL, bg_io_run, &fl), 0);
    /* negative check: give a wrong flush time to return (it must not) */
    end = curve_now_mono_ms() + 200;
    while (curve_now_mono_ms() < end)
        sched_yield();
    assert_false(atomic_load(&fl.done));
    assert_false(atomic_load(&wr.done));
    pthread_mutex_lock(&F.lock);
    rpc_call_ctx *held = F.held;
    F.held = NULL;
    F.hold_writes = false;
    pthread_mutex_unlock(&F.lock);
    assert_non_null(held);
    chunk_reply(held, CURVE__CHUNK__CHUNK_STATUS__CHUNK_OP_STATUS_SUCCESS, NULL, NULL);
    wait_flag(&wr.done);
    wait_flag(&fl.done);
    pthread_join(tw, NULL);
    pthread_join(tf, NULL);
    assert_int_equal(wr.result, 4096);
    assert_int_equal(fl.result, 0);
    assert_int_equal(curve_close(v), 0);
    assert_int_equal(curve_delete(c, "/f", CURVE_DELETE_FORCE), 0);
    assert_int_equal(curve_client_destroy(c), 0);
    /* switched off: nothing goes the fast way */
    c = new_client("client.fast_path_inflight=0");
    assert_int_equal(curve_create(c, "/g", VOLSIZE), 0);
    assert_int_equal(curve_open(c, "/g", 0, &v), 0);
    const char *gfast[] = {"curve_client_fast_path_ios_total{", "volume=\"/g\"", NULL};
    for (int i = 0; i < 3; i++)
        assert_int_equal(curve_pwrite(v, w, 4096, 0), 4096);
    assert_true(metric_value(gfast) == 0);
    assert_int_equal(curve_close(v), 0);
    assert_int_equal(curve_delete(c, "/g", CURVE_DELETE_FORCE), 0);
    assert_int_equal(curve_client_destroy(c), 0);
}

/* curve_abort_io: a write sleeping in an 8 s OVERLOAD back-off fails with CURVE_ERR_CANCELED
 * at once (the back-off is cut short and nothing is resent), later IO fails the same way, and
 * curve_close still succeeds. */
static void test_abort_io(void **state)
{
    curve_client *c = new_client("client.retry.op_interval_ms=4s");
    assert_int_equal(curve_create(c, "/ab", VOLSIZE), 0);
    curve_volume *v;
    assert_int_equal(curve_open(c, "/ab", 0, &v), 0);
    uint8_t w[4096], r[4096];
    fill(w, sizeof(w), 9);
    assert_int_equal(curve_pwrite(v, w, 4096, 0), 4096); /* warm: segment and leader cached */
    const char *ovl[] = {"curve_client_retries_total{", "volume=\"/ab\"", "cause=\"overload\"",
                         NULL};
    pthread_mutex_lock(&F.lock);
    F.overload_next = 1000;
    pthread_mutex_unlock(&F.lock);
    bg_io wr = {.v = v, .buf = w};
    pthread_t tw;
    assert_int_equal(pthread_create(&tw, NULL, bg_io_run, &wr), 0);
    uint64_t end = curve_now_mono_ms() + WAIT_MS;
    while (metric_value(ovl) < 1 && curve_now_mono_ms() < end)
        sched_yield(); /* OVERLOAD answered: the write now sleeps 4 s * 2 = 8 s */
    assert_true(metric_value(ovl) == 1);
    assert_false(atomic_load(&wr.done));
    uint64_t t0 = curve_now_mono_ms();
    assert_int_equal(curve_abort_io(v), 0);
    assert_int_equal(curve_abort_io(v), 0); /* idempotent */
    wait_flag(&wr.done);
    uint64_t took = curve_now_mono_ms() - t0;
    pthread_join(tw, NULL);
    assert_int_equal(wr.result, CURVE_ERR_CANCELED);
    if (took >= 4000) /* the back-off it was in lasts 8 s: it must have been cut short */
        fail_msg("the aborted write took %llu ms", (unsigned long long)took);
    assert_true(metric_value(ovl) == 1); /* nothing resent */
    assert_int_equal(curve_pread(v, r, 4096, 0), CURVE_ERR_CANCELED);
    assert_int_equal(curve_pwrite(v, w, 4096, CHUNK), CURVE_ERR_CANCELED);
    assert_int_equal(curve_flush(v), CURVE_ERR_CANCELED); /* a flush is refused too */
    assert_int_equal(curve_abort_io(NULL), -EINVAL);
    pthread_mutex_lock(&F.lock);
    F.overload_next = 0;
    pthread_mutex_unlock(&F.lock);
    assert_int_equal(curve_close(v), 0);
    assert_int_equal(curve_delete(c, "/ab", CURVE_DELETE_FORCE), 0);
    assert_int_equal(curve_client_destroy(c), 0);
}

static void test_readonly_and_extend(void **state)
{
    curve_client *c = new_client(NULL);
    assert_int_equal(curve_create(c, "/r", SEG), 0);
    curve_volume *v, *ro;
    assert_int_equal(curve_open(c, "/r", CURVE_OPEN_RDONLY | CURVE_OPEN_EXCLUSIVE, &ro), -EINVAL);
    assert_int_equal(curve_open(c, "/r", CURVE_OPEN_RDONLY, &ro), 0);
    assert_int_equal(curve_open(c, "/r", 0, &v), 0);
    uint8_t b[4096];
    fill(b, sizeof(b), 3);
    assert_int_equal(curve_pwrite(ro, b, 4096, 0), -EBADF);
    assert_int_equal(curve_discard(ro, 0, 4096), -EBADF);
    assert_int_equal(curve_pwrite(v, b, 4096, SEG - 4096), 4096);
    assert_int_equal(curve_pwrite(v, b, 4096, SEG), -ERANGE);
    assert_int_equal(curve_extend(c, "/r", 2 * SEG), 0);
    assert_int_equal(curve_pwrite(v, b, 4096, SEG), -ERANGE); /* not seen before fstat */
    struct curve_stat st;
    assert_int_equal(curve_fstat(v, &st), 0);
    assert_int_equal(st.size, 2 * SEG);
    assert_int_equal(curve_pwrite(v, b, 4096, SEG), 4096);
    uint8_t r[4096];
    assert_int_equal(curve_pread(ro, r, 4096, SEG - 4096), 4096);
    assert_memory_equal(r, b, 4096);
    assert_int_equal(curve_close(ro), 0);
    assert_int_equal(curve_close(v), 0);
    assert_int_equal(curve_client_destroy(c), 0);
}

static void test_exclusive_fences_old_writer(void **state)
{
    pthread_mutex_lock(&F.lock);
    F.lease_ms = 60000; /* no refresh during the test: the chunkserver fences */
    pthread_mutex_unlock(&F.lock);
    curve_client *c = new_client(NULL);
    assert_int_equal(curve_create(c, "/f", SEG), 0);
    curve_volume *a, *b;
    uint8_t wa[4096], wb[4096], r[4096];
    memset(wa, 0xaa, sizeof(wa));
    memset(wb, 0xbb, sizeof(wb));
    assert_int_equal(curve_open(c, "/f", 0, &a), 0);
    assert_int_equal(curve_pwrite(a, wa, 4096, 0), 4096);
    assert_int_equal(curve_open(c, "/f", CURVE_OPEN_EXCLUSIVE, &b), 0);
    struct curve_stat st;
    assert_int_equal(curve_fstat(b, &st), 0);
    assert_int_equal(st.epoch, 2);
    assert_int_equal(curve_pwrite(b, wb, 4096, 0), 4096);
    /* the old writer's write is refused by the chunkserver; later IO is fenced at once */
    assert_int_equal(curve_pwrite(a, wa, 4096, 0), CURVE_ERR_EPOCH_TOO_OLD);
    int writes = counter(&F.writes);
    assert_int_equal(curve_pwrite(a, wa, 4096, 4096), CURVE_ERR_FENCED);
    assert_int_equal(curve_pread(a, r, 4096, 0), CURVE_ERR_FENCED);
    assert_int_equal(counter(&F.writes), writes);
    assert_int_equal(curve_pread(b, r, 4096, 0), 4096);
    assert_memory_equal(r, wb, 4096);
    assert_int_equal(curve_close(a), CURVE_ERR_FENCED);
    assert_int_equal(curve_close(b), 0);
    assert_int_equal(curve_client_destroy(c), 0);
}

/* The new exclusive opener never writes, so no chunkserver knows its epoch: the old writer is
 * still fenced by its session refresh, which sees the newer epoch at the MDS. */
static void test_epoch_seen_by_refresh_fences(void **state)
{
    pthread_mutex_lock(&F.lock);
    F.lease_ms = 200;
    pthread_mutex_unlock(&F.lock);
    curve_client *c = new_client(NULL);
    assert_int_equal(curve_create(c, "/e", 2 * SEG), 0);
    curve_volume *a, *b, *ro;
    uint8_t w[4096] = {7};
    assert_int_equal(curve_open(c, "/e", 0, &a), 0);
    assert_int_equal(curve_open(c, "/e", CURVE_OPEN_RDONLY, &ro), 0);
    assert_int_equal(curve_pwrite(a, w, 4096, 0), 4096);
    assert_int_equal(curve_open(c, "/e", CURVE_OPEN_EXCLUSIVE, &b), 0);
    ssize_t rc;
    uint64_t end = curve_now_mono_ms() + WAIT_MS;
    while ((rc = curve_pwrite(a, w, 4096, 0)) == 4096 && curve_now_mono_ms() < end)
        sched_yield();
    assert_int_equal(rc, CURVE_ERR_FENCED);
    /* readers are not fenced by an exclusive writer, also not on a segment allocated after it
     * (a second client: its own metadata cache) */
    assert_int_equal(curve_pread(ro, w, 4096, 0), 4096);
    assert_int_equal(curve_pwrite(b, w, 4096, SEG), 4096);
    curve_client *c2 = new_client(NULL);
    curve_volume *ro2;
    assert_int_equal(curve_open(c2, "/e", CURVE_OPEN_RDONLY, &ro2), 0);
    assert_int_equal(curve_pwrite(b, w, 4096, SEG + CHUNK), 4096);
    assert_int_equal(curve_pread(ro2, w, 4096, SEG), 4096);
    assert_int_equal(curve_close(ro2), 0);
    assert_int_equal(curve_client_destroy(c2), 0);
    assert_int_equal(curve_pread(ro, w, 4096, SEG + CHUNK), 4096);
    assert_int_equal(curve_close(a), CURVE_ERR_FENCED);
    assert_int_equal(curve_close(b), 0);
    assert_int_equal(curve_close(ro), 0);
    pthread_mutex_lock(&F.lock);
    F.lease_ms = 2000;
    pthread_mutex_unlock(&F.lock);
    assert_int_equal(curve_client_destroy(c), 0);
}

static void wait_counter(int *p, int at_least)
{
    uint64_t end = curve_now_mono_ms() + WAIT_MS;
    while (counter(p) < at_least && curve_now_mono_ms() < end)
        sched_yield();
    assert_true(counter(p) >= at_least);
}

/* The MDS forgot the session (expired during a failover): libcurve opens a new one and IO goes
 * on; if the volume's epoch moved meanwhile, the re-open fences instead. */
static void test_session_reopened_or_fenced(void **state)
{
    pthread_mutex_lock(&F.lock);
    F.lease_ms = 200; /* refresh every 50 ms */
    pthread_mutex_unlock(&F.lock);
    curve_client *c = new_client(NULL);
    assert_int_equal(curve_create(c, "/s", SEG), 0);
    curve_volume *v;
    assert_int_equal(curve_open(c, "/s", 0, &v), 0);
    uint8_t b[4096] = {1};
    wait_counter(&F.refreshes, 3); /* refreshed on the timer */
    assert_int_equal(curve_pwrite(v, b, 4096, 0), 4096);
    int opens = counter(&F.opens);
    pthread_mutex_lock(&F.lock);
    F.expire_sessions = true;
    pthread_mutex_unlock(&F.lock);
    wait_counter(&F.opens, opens + 2); /* re-opened (and again: the fake keeps expiring) */
    assert_int_equal(curve_pwrite(v, b, 4096, 0), 4096);
    /* an exclusive open elsewhere while our session is gone: the re-open sees the epoch */
    pthread_mutex_lock(&F.lock);
    find_path("/s")->epoch++;
    pthread_mutex_unlock(&F.lock);
    ssize_t rc;
    uint64_t end = curve_now_mono_ms() + WAIT_MS;
    while ((rc = curve_pwrite(v, b, 4096, 0)) == 4096 && curve_now_mono_ms() < end)
        sched_yield();
    assert_int_equal(rc, CURVE_ERR_FENCED);
    assert_int_equal(curve_close(v), CURVE_ERR_FENCED);
    assert_int_equal(curve_client_destroy(c), 0);
}

/* No refresh gets through for client.session.expire_ms: IO fails with SESSION_EXPIRED. */
static void test_session_lost_fences_io(void **state)
{
    pthread_mutex_lock(&F.lock);
    F.lease_ms = 200;
    pthread_mutex_unlock(&F.lock);
    curve_client *c = new_client("client.session.expire_ms=300ms");
    assert_int_equal(curve_create(c, "/s", SEG), 0);
    curve_volume *v;
    assert_int_equal(curve_open(c, "/s", 0, &v), 0);
    uint8_t b[4096] = {1};
    assert_int_equal(curve_pwrite(v, b, 4096, 0), 4096);
    pthread_mutex_lock(&F.lock);
    F.sessions_down = true; /* refresh and open fail (etcd trouble at the MDS) */
    pthread_mutex_unlock(&F.lock);
    ssize_t rc;
    uint64_t end = curve_now_mono_ms() + WAIT_MS;
    while ((rc = curve_pwrite(v, b, 4096, 0)) == 4096 && curve_now_mono_ms() < end)
        sched_yield();
    assert_int_equal(rc, CURVE_ERR_SESSION_EXPIRED);
    assert_int_equal(curve_pread(v, b, 4096, 0), CURVE_ERR_SESSION_EXPIRED);
    assert_int_equal(curve_close(v), CURVE_ERR_SESSION_EXPIRED);
    assert_int_equal(curve_client_destroy(c), 0);
}

/* A read-write open of a volume another writer holds: -EBUSY to the caller, nothing opened;
 * read-only opens are still allowed. The request carries the opener's token, not `reopen`. */
static void test_open_busy(void **state)
{
    curve_client *c = new_client(NULL);
    assert_int_equal(curve_create(c, "/b", SEG), 0);
    pthread_mutex_lock(&F.lock);
    F.open_busy = true;
    pthread_mutex_unlock(&F.lock);
    curve_volume *v = (curve_volume *)1;
    assert_int_equal(curve_open(c, "/b", 0, &v), -EBUSY);
    pthread_mutex_lock(&F.lock);
    assert_false(F.last_read_only);
    assert_false(F.last_reopen);
    assert_int_equal(strlen(F.last_token), 16);
    assert_int_equal(strspn(F.last_token, "0123456789abcdef"), 16);
    char first_token[40];
    snprintf(first_token, sizeof(first_token), "%s", F.last_token);
    pthread_mutex_unlock(&F.lock);
    assert_int_equal(curve_open(c, "/b", 0, &v), -EBUSY);
    pthread_mutex_lock(&F.lock);
    assert_string_not_equal(F.last_token, first_token); /* a fresh token per curve_open */
    pthread_mutex_unlock(&F.lock);
    assert_int_equal(curve_open(c, "/b", CURVE_OPEN_RDONLY, &v), 0);
    pthread_mutex_lock(&F.lock);
    assert_true(F.last_read_only);
    F.open_busy = false;
    pthread_mutex_unlock(&F.lock);
    uint8_t b[4096];
    assert_int_equal(curve_pread(v, b, 4096, 0), 4096);
    assert_int_equal(curve_close(v), 0);
    assert_int_equal(curve_open(c, "/b", 0, &v), 0);
    assert_int_equal(curve_close(v), 0);
    assert_int_equal(curve_client_destroy(c), 0);
}

/* The library default: a session is never given up for lack of MDS contact
 * (client.session.expire_ms = 0, docs/sessions.md). */
static void test_session_expire_default_never(void **state)
{
    const char *kv[] = {"mds.addrs=127.0.0.1:1", NULL};
    curve_client_conf conf;
    char err[256];
    assert_int_equal(curve_client_conf_load(NULL, kv, &conf, err, sizeof(err)), 0);
    assert_int_equal(conf.session_expire_ms, 0);
}

/* No MDS can vouch for the session (etcd down) for many leases: with expire_ms = 0 (the
 * default) IO goes on the whole time, and the session is confirmed again afterwards. */
static void test_io_continues_sessions_down(void **state)
{
    pthread_mutex_lock(&F.lock);
    F.lease_ms = 200; /* refresh every 50 ms */
    pthread_mutex_unlock(&F.lock);
    curve_client *c = new_client("client.session.expire_ms=0");
    assert_int_equal(curve_create(c, "/d", SEG), 0);
    curve_volume *v;
    assert_int_equal(curve_open(c, "/d", 0, &v), 0);
    uint8_t w[4096], r[4096];
    fill(w, sizeof(w), 3);
    assert_int_equal(curve_pwrite(v, w, 4096, 0), 4096);
    pthread_mutex_lock(&F.lock);
    F.sessions_down = true;
    int r0 = F.refreshes;
    pthread_mutex_unlock(&F.lock);
    /* 20 failed refreshes span at least 5 leases, more than the 300 ms after which
     * test_session_lost_fences_io loses its session */
    uint64_t t0 = curve_now_mono_ms(), end = t0 + WAIT_MS;
    unsigned n = 0;
    while (counter(&F.refreshes) < r0 + 20 && curve_now_mono_ms() < end) {
        fill(w, sizeof(w), n);
        assert_int_equal(curve_pwrite(v, w, 4096, (n % 8) * 4096), 4096);
        assert_int_equal(curve_pread(v, r, 4096, (n % 8) * 4096), 4096);
        assert_memory_equal(w, r, 4096);
        n++;
    }
    assert_true(counter(&F.refreshes) >= r0 + 20);
    assert_true(curve_now_mono_ms() - t0 >= 4 * 200);
    /* the control plane is back: refreshes succeed again, IO still fine */
    pthread_mutex_lock(&F.lock);
    F.sessions_down = false;
    int r1 = F.refreshes;
    pthread_mutex_unlock(&F.lock);
    wait_counter(&F.refreshes, r1 + 2);
    assert_int_equal(curve_pwrite(v, w, 4096, 0), 4096);
    assert_int_equal(curve_close(v), 0);
    assert_int_equal(curve_client_destroy(c), 0);
}

/* Our session expired at the MDS and another writer opened the volume meanwhile: the re-open
 * (same mode, same token, `reopen`) answers -EBUSY and IO fails with SESSION_EXPIRED. */
static void test_reopen_busy_loses_session(void **state)
{
    pthread_mutex_lock(&F.lock);
    F.lease_ms = 200;
    pthread_mutex_unlock(&F.lock);
    curve_client *c = new_client(NULL);
    assert_int_equal(curve_create(c, "/r", SEG), 0);
    curve_volume *v;
    assert_int_equal(curve_open(c, "/r", 0, &v), 0);
    char token[40];
    pthread_mutex_lock(&F.lock);
    snprintf(token, sizeof(token), "%s", F.last_token);
    int opens = F.opens;
    pthread_mutex_unlock(&F.lock);
    uint8_t b[4096] = {1};
    assert_int_equal(curve_pwrite(v, b, 4096, 0), 4096);
    pthread_mutex_lock(&F.lock);
    F.expire_sessions = true;
    F.open_busy = true;
    pthread_mutex_unlock(&F.lock);
    ssize_t rc;
    uint64_t end = curve_now_mono_ms() + WAIT_MS;
    while ((rc = curve_pwrite(v, b, 4096, 0)) == 4096 && curve_now_mono_ms() < end)
        sched_yield();
    assert_int_equal(rc, CURVE_ERR_SESSION_EXPIRED);
    pthread_mutex_lock(&F.lock);
    assert_true(F.opens > opens); /* a re-open was refused */
    assert_true(F.last_reopen);
    assert_false(F.last_read_only);
    assert_string_equal(F.last_token, token);
    F.expire_sessions = false; /* sticky: the MDS being fine again changes nothing */
    F.open_busy = false;
    pthread_mutex_unlock(&F.lock);
    assert_int_equal(curve_pread(v, b, 4096, 0), CURVE_ERR_SESSION_EXPIRED);
    assert_int_equal(curve_close(v), CURVE_ERR_SESSION_EXPIRED);
    assert_int_equal(curve_client_destroy(c), 0);
}

static void test_mds_unreachable(void **state)
{
    /* a port nobody listens on (the fake MDS's port right after closing is racy; use 1) */
    const char *kv[] = {"mds.addrs=127.0.0.1:1", "client.mds.call_deadline_ms=300ms",
                        "client.log_level=error", NULL};
    curve_client *c;
    assert_int_equal(curve_client_init(NULL, kv, &c), 0);
    uint64_t t0 = curve_now_mono_ms();
    struct curve_stat st;
    int rc = curve_stat(c, "/", &st);
    assert_true(rc == CURVE_ERR_RPC_CONN || rc == CURVE_ERR_TIMEOUT);
    assert_true(curve_now_mono_ms() - t0 < 5000);
    assert_int_equal(curve_client_destroy(c), 0);
}

static void test_peer_addr_normalize(void **state)
{
    char out[CURVE_ADDR_MAX];
    assert_int_equal(curve_peer_addr_normalize("1.2.3.4:80:0", out, sizeof(out)), 0);
    assert_string_equal(out, "1.2.3.4:80");
    assert_int_equal(curve_peer_addr_normalize("1.2.3.4:80", out, sizeof(out)), 0);
    assert_string_equal(out, "1.2.3.4:80");
    assert_int_equal(curve_peer_addr_normalize("", out, sizeof(out)), -EINVAL);
    assert_int_equal(curve_peer_addr_normalize("noport", out, sizeof(out)), -EINVAL);
    assert_int_equal(curve_peer_addr_normalize("h:", out, sizeof(out)), -EINVAL);
    assert_int_equal(curve_peer_addr_normalize("h::0", out, sizeof(out)), -EINVAL);
    assert_int_equal(curve_peer_addr_normalize("1.2.3.4:80:0", out, 4), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peer_addr_normalize),
        cmocka_unit_test(test_init_errors),
        cmocka_unit_test_setup_teardown(test_management, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fast_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_io, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readonly_and_extend, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exclusive_fences_old_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_epoch_seen_by_refresh_fences, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_reopened_or_fenced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_lost_fences_io, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_busy, setup, teardown),
        cmocka_unit_test(test_session_expire_default_never),
        cmocka_unit_test_setup_teardown(test_io_continues_sessions_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_busy_loses_session, setup, teardown),
        cmocka_unit_test(test_mds_unreachable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
