/*
 * curve-raft-kv: one node of a replicated key-value store on the Raft runtime, and its client.
 *
 * Node:
 *   curve-raft-kv --id=N --data-dir=DIR --peers=1=127.0.0.1:P1,2=...,3=... --port=P
 *                 [--admin-port=A] [--snapshot-threshold=N] [--snapshot-trailing=N]
 *                 [--election-timeout-ms=N] [--heartbeat-ms=N] [--enable-failpoints]
 *   Prints "listening 127.0.0.1:P admin A" once it serves. SIGTERM/SIGINT: clean stop.
 *   The group (id 1) lives in DIR/1/{log,meta,snapshot}; the key-value map is snapshotted to
 *   DIR/1/snapshot/kv_<index>.dat (crc32c-checked) and rebuilt from it plus the log on restart.
 *   /status on the admin port adds: raft role/term/leader/commit/applied/snapshot and the map's
 *   applied index, hash and key count; /health answers 503 once the Raft node stopped on an I/O
 *   error; --enable-failpoints serves /failpoint (fault injection, e.g. raftlog.sync).
 *
 * Client (argument order free):
 *   curve-raft-kv client put-stream --peers=... --out=FILE [--prefix=k] [--count=N]
 *                 [--timeout-ms=1000]
 *     Writes keys <prefix><i> (i = 0, 1, ...) one at a time, each retried until acknowledged
 *     (commit + apply on the leader), following the leader hint on NOT_LEADER and rotating
 *     through the peers on timeouts; appends every acknowledged key to FILE (one per line,
 *     flushed) and stops after N keys or at SIGTERM/SIGINT. Prints "done acked=N".
 *   curve-raft-kv client dump --addr=IP:PORT
 *     Prints a JSON summary line of that replica, then "key<TAB>value" lines.
 *   curve-raft-kv client put --peers=... --key=K --value=V
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include "admin/admin.h"
#include "common/assert.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "curve/errors.h"
#include "raft.pb-c.h"
#include "raft/rt/raft_node.h"
#include "rpc/rpc_channel.h"

#define KV_SERVICE_ID  21u
#define KV_METHOD_PUT  1u
#define KV_METHOD_GET  2u
#define KV_METHOD_DUMP 3u
#define KV_GROUP_ID    1u
#define KV_MAX_PEERS   9u
#define KV_KEY_MAX     256u
#define KV_VALUE_MAX   (64u << 10)
#define KV_FILE_MAX    (256u << 20) /* largest snapshot file accepted */
#define KV_SNAP_MAGIC  0x4b56534eu  /* "NSVK" */
#define KV_PATH_MAX    4200u

/* ============================================================================================
 * The key-value map (group loop only)
 * ========================================================================================== */
struct kv_item {
    struct kv_item *next;
    uint32_t klen, vlen;
    char *key, *val;
};

struct kv_map {
    struct kv_item **b;
    size_t nb, n;
};

static uint64_t fnv(const void *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ ((const uint8_t *)p)[i]) * 1099511628211ull;
    return h;
}

static void map_free(struct kv_map *m)
{
    for (size_t i = 0; i < m->nb; i++) {
        struct kv_item *it = m->b[i];
        while (it) {
            struct kv_item *nx = it->next;
            free(it->key);
            free(it->val);
            free(it);
            it = nx;
        }
    }
    free(m->b);
    memset(m, 0, sizeof(*m));
}

static struct kv_item *map_get(const struct kv_map *m, const void *k, uint32_t klen)
{
    if (m->nb == 0)
        return NULL;
    for (struct kv_item *it = m->b[fnv(k, klen) % m->nb]; it; it = it->next)
        if (it->klen == klen && memcmp(it->key, k, klen) == 0)
            return it;
    return NULL;
}

static int map_put(struct kv_map *m, const void *k, uint32_t klen, const void *v, uint32_t vlen)
{
    struct kv_item *it = map_get(m, k, klen);
    char *nv = malloc(vlen + 1);
    if (nv == NULL)
        return -ENOMEM;
    memcpy(nv, v, vlen);
    nv[vlen] = 0;
    if (it) {
        free(it->val);
        it->val = nv;
        it->vlen = vlen;
        return 0;
    }
    if (m->n >= m->nb * 2) {
        size_t nb = m->nb ? m->nb * 4 : 1024;
        struct kv_item **b = calloc(nb, sizeof(*b));
        if (b == NULL) {
            free(nv);
            return -ENOMEM;
        }
        for (size_t i = 0; i < m->nb; i++) {
            while (m->b[i]) {
                struct kv_item *x = m->b[i];
                m->b[i] = x->next;
                size_t j = fnv(x->key, x->klen) % nb;
                x->next = b[j];
                b[j] = x;
            }
        }
        free(m->b);
        m->b = b;
        m->nb = nb;
    }
    it = calloc(1, sizeof(*it));
    char *nk = malloc(klen + 1);
    if (it == NULL || nk == NULL) {
        free(it);
        free(nk);
        free(nv);
        return -ENOMEM;
    }
    memcpy(nk, k, klen);
    nk[klen] = 0;
    *it = (struct kv_item){.klen = klen, .vlen = vlen, .key = nk, .val = nv};
    size_t j = fnv(k, klen) % m->nb;
    it->next = m->b[j];
    m->b[j] = it;
    m->n++;
    return 0;
}

/* ============================================================================================
 * Node state
 * ========================================================================================== */
struct kv_node {
    uint64_t id;
    char data_dir[KV_PATH_MAX], snap_dir[KV_PATH_MAX];
    raftrt_host *host;
    raftrt_group *g;
    curve_workpool *wp;
    /* group loop only */
    struct kv_map map;
    uint64_t applied, hash;
    int inst_fd;
    int read_fd; /* file being sent to a follower (leader side) */
    char inst_name[64];
    uint64_t inst_size;
    /* rpc */
    rpc_service_def svc;
    rpc_method_def methods[3];
};

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdull;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4); /* little-endian hosts only (x86-64, arm64): asserted in main */
}
static void put_u64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}
static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Command: u32 klen, key, value. */
static int cmd_decode(const struct raft_entry *e, const uint8_t **k, uint32_t *klen,
                      const uint8_t **v, uint32_t *vlen)
{
    if (e->len < 4)
        return -EINVAL;
    const uint8_t *p = e->data;
    *klen = get_u32(p);
    if (*klen == 0 || *klen > KV_KEY_MAX || *klen > e->len - 4)
        return -EINVAL;
    *k = p + 4;
    *v = p + 4 + *klen;
    *vlen = e->len - 4 - *klen;
    return *vlen <= KV_VALUE_MAX ? 0 : -EINVAL;
}

static int kv_apply(void *ctx, uint64_t index, const struct raft_entry *e)
{
    struct kv_node *n = ctx;
    if (index <= n->applied)
        return 0; /* already in the snapshot the map was loaded from */
    uint32_t crc = e->len ? curve_crc32c(0, e->data, e->len) : 0;
    n->hash = mix(mix(mix(n->hash, index), e->term), ((uint64_t)e->type << 32) | crc);
    n->applied = index;
    if (e->type != RAFT_ENTRY_COMMAND)
        return 0;
    const uint8_t *k, *v;
    uint32_t klen, vlen;
    if (cmd_decode(e, &k, &klen, &v, &vlen) != 0)
        return -EINVAL; /* a bad command is rejected the same way on every replica */
    return map_put(&n->map, k, klen, v, vlen);
}

/* Snapshot image: u32 magic, u32 version 1, u64 applied, u64 hash, u64 nkeys,
 * nkeys × (u32 klen, u32 vlen, key, value), u32 crc32c of everything before. */
static uint8_t *snap_encode(struct kv_node *n, size_t *len)
{
    size_t sz = 32 + 4;
    for (size_t i = 0; i < n->map.nb; i++)
        for (struct kv_item *it = n->map.b[i]; it; it = it->next)
            sz += 8 + it->klen + it->vlen;
    uint8_t *b = malloc(sz), *p = b;
    if (b == NULL)
        return NULL;
    put_u32(p, KV_SNAP_MAGIC);
    put_u32(p + 4, 1);
    put_u64(p + 8, n->applied);
    put_u64(p + 16, n->hash);
    put_u64(p + 24, n->map.n);
    p += 32;
    for (size_t i = 0; i < n->map.nb; i++) {
        for (struct kv_item *it = n->map.b[i]; it; it = it->next) {
            put_u32(p, it->klen);
            put_u32(p + 4, it->vlen);
            memcpy(p + 8, it->key, it->klen);
            memcpy(p + 8 + it->klen, it->val, it->vlen);
            p += 8 + it->klen + it->vlen;
        }
    }
    put_u32(p, curve_crc32c(0, b, sz - 4));
    *len = sz;
    return b;
}

static int snap_decode(const uint8_t *b, size_t len, struct kv_map *m, uint64_t *applied,
                       uint64_t *hash)
{
    if (len < 36 || get_u32(b) != KV_SNAP_MAGIC || get_u32(b + 4) != 1 ||
        get_u32(b + len - 4) != curve_crc32c(0, b, len - 4))
        return CURVE_ERR_CORRUPT;
    *applied = get_u64(b + 8);
    *hash = get_u64(b + 16);
    uint64_t nk = get_u64(b + 24);
    size_t off = 32, end = len - 4;
    memset(m, 0, sizeof(*m));
    for (uint64_t i = 0; i < nk; i++) {
        if (end - off < 8)
            goto bad;
        uint32_t kl = get_u32(b + off), vl = get_u32(b + off + 4);
        if (kl == 0 || kl > KV_KEY_MAX || vl > KV_VALUE_MAX || end - off - 8 < (size_t)kl + vl)
            goto bad;
        if (map_put(m, b + off + 8, kl, b + off + 8 + kl, vl) != 0)
            goto bad;
        off += 8 + kl + vl;
    }
    if (off != end)
        goto bad;
    return 0;
bad:
    map_free(m);
    return CURVE_ERR_CORRUPT;
}

static int read_file(const char *path, uint8_t **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size > KV_FILE_MAX) {
        close(fd);
        return -EFBIG;
    }
    uint8_t *b = malloc((size_t)st.st_size + 1);
    ssize_t got = b ? pread(fd, b, (size_t)st.st_size, 0) : -1;
    close(fd);
    if (got != st.st_size) {
        free(b);
        return -EIO;
    }
    *out = b;
    *len = (size_t)got;
    return 0;
}

/* The snapshot file has one fixed name, replaced atomically. The manifest declares
 * KV_FILE_MAX as its size: the core then streams it to its end (a short read ends a file), so a
 * transfer that started with an older snapshot serves the newest one instead of a deleted file
 * (the core keeps the manifest of a transfer for its whole life; see docs/raft-runtime.md). */
#define KV_SNAP_NAME "kv.dat"

static bool snap_name_ok(const char *name)
{
    return strcmp(name, KV_SNAP_NAME) == 0;
}

/* Loads the map from its snapshot (none: empty map). A damaged file fails the start. */
static int kv_load(struct kv_node *n)
{
    char path[KV_PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/%s", n->snap_dir, KV_SNAP_NAME);
    uint8_t *b;
    size_t len;
    int rc = read_file(path, &b, &len);
    if (rc == -ENOENT)
        return 0;
    if (rc != 0)
        return rc;
    rc = snap_decode(b, len, &n->map, &n->applied, &n->hash);
    free(b);
    if (rc != 0) {
        CLOG_ERROR("kv: %s is damaged", path);
        return rc;
    }
    CLOG_INFO("kv: loaded %s (applied %" PRIu64 ", %zu keys)", path, n->applied, n->map.n);
    return 0;
}

static int write_durable(const char *dir, const char *name, const void *b, size_t len)
{
    char tmp[KV_PATH_MAX + 80], path[KV_PATH_MAX + 80];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (write(fd, b, len) != (ssize_t)len || fsync(fd) != 0)
        rc = errno ? -errno : -EIO;
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc == 0) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
            if (fsync(dfd) != 0)
                rc = -errno;
            close(dfd);
        }
    }
    return rc;
}

struct save_job {
    struct kv_node *n;
    raftrt_group *g;
    uint64_t raft_index, kv_index;
    uint8_t *img;
    size_t len;
    char name[64];
};

static int save_work(void *arg)
{
    struct save_job *j = arg;
    return write_durable(j->n->snap_dir, j->name, j->img, j->len);
}

static void save_done(void *arg, int result)
{
    struct save_job *j = arg;
    struct raft_snapshot_file f = {.name = j->name, .size = KV_FILE_MAX};
    struct raft_manifest mf = {.meta = NULL, .meta_len = 0, .nfiles = 1, .files = &f};
    raftrt_snapshot_saved(j->g, j->raft_index, result, &mf);
    free(j->img);
    free(j);
}

static int kv_snapshot_save(void *ctx, raftrt_group *g, const struct raft_snapshot_meta *meta)
{
    struct kv_node *n = ctx;
    struct save_job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return -ENOMEM;
    j->n = n;
    j->g = g;
    j->raft_index = meta->index;
    j->kv_index = n->applied; /* >= meta->index (see kv_apply) */
    snprintf(j->name, sizeof(j->name), "%s", KV_SNAP_NAME);
    j->img = snap_encode(n, &j->len);
    if (j->img == NULL) {
        free(j);
        return -ENOMEM;
    }
    int rc = curve_workpool_submit(n->wp, raftrt_group_loop(g), save_work, save_done, j);
    if (rc != 0) {
        free(j->img);
        free(j);
    }
    return rc;
}

/* A transfer reads from offset 0 upwards: offset 0 opens the current file and later pieces
 * come from that same inode even if a newer snapshot replaces the name meanwhile. */
static int kv_snapshot_read(void *ctx, const char *name, uint64_t off, void *buf, uint32_t len)
{
    struct kv_node *n = ctx;
    if (!snap_name_ok(name))
        return -EINVAL;
    if (off == 0 || n->read_fd < 0) {
        if (n->read_fd >= 0)
            close(n->read_fd);
        char path[KV_PATH_MAX + 64];
        snprintf(path, sizeof(path), "%s/%s", n->snap_dir, KV_SNAP_NAME);
        n->read_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (n->read_fd < 0)
            return -errno;
    }
    ssize_t got = pread(n->read_fd, buf, len, (off_t)off);
    return got < 0 ? -errno : (int)got;
}

static void kv_install_abort(void *ctx)
{
    struct kv_node *n = ctx;
    if (n->inst_fd >= 0) {
        close(n->inst_fd);
        n->inst_fd = -1;
        char tmp[KV_PATH_MAX + 32];
        snprintf(tmp, sizeof(tmp), "%s/install.tmp", n->snap_dir);
        unlink(tmp);
    }
}

static int kv_install_begin(void *ctx, const struct raft_snapshot_meta *meta,
                            const struct raft_manifest *mf)
{
    struct kv_node *n = ctx;
    kv_install_abort(n);
    if (mf->nfiles != 1 || !snap_name_ok(mf->files[0].name) || mf->files[0].size > KV_FILE_MAX ||
        strlen(mf->files[0].name) >= sizeof(n->inst_name))
        return -EINVAL;
    char tmp[KV_PATH_MAX + 32];
    snprintf(tmp, sizeof(tmp), "%s/install.tmp", n->snap_dir);
    n->inst_fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (n->inst_fd < 0)
        return -errno;
    snprintf(n->inst_name, sizeof(n->inst_name), "%s", mf->files[0].name);
    n->inst_size = mf->files[0].size;
    return 0;
}

static int kv_install_write(void *ctx, const char *name, uint64_t off, const void *buf,
                            uint32_t len)
{
    struct kv_node *n = ctx;
    if (n->inst_fd < 0 || strcmp(name, n->inst_name) != 0 || off > n->inst_size ||
        len > n->inst_size - off)
        return -EINVAL;
    return pwrite(n->inst_fd, buf, len, (off_t)off) == (ssize_t)len ? 0 : -EIO;
}

static int kv_install_finish(void *ctx, const struct raft_snapshot_meta *meta,
                             const struct raft_manifest *mf)
{
    struct kv_node *n = ctx;
    if (n->inst_fd < 0)
        return -EINVAL;
    char tmp[KV_PATH_MAX + 32], path[KV_PATH_MAX + 80];
    snprintf(tmp, sizeof(tmp), "%s/install.tmp", n->snap_dir);
    snprintf(path, sizeof(path), "%s/%s", n->snap_dir, n->inst_name);
    int rc = fsync(n->inst_fd) == 0 ? 0 : -errno;
    close(n->inst_fd);
    n->inst_fd = -1;
    uint8_t *b = NULL;
    size_t len = 0;
    struct kv_map m;
    uint64_t applied = 0, hash = 0;
    if (rc == 0)
        rc = read_file(tmp, &b, &len);
    if (rc == 0)
        rc = snap_decode(b, len, &m, &applied, &hash);
    free(b);
    if (rc == 0 && applied < meta->index) {
        map_free(&m);
        rc = CURVE_ERR_CORRUPT;
    }
    if (rc != 0) {
        CLOG_WARN("kv: installed snapshot %s rejected: %s", n->inst_name, curve_strerror(rc));
        unlink(tmp);
        return rc;
    }
    if (rename(tmp, path) != 0) {
        rc = -errno;
        map_free(&m);
        return rc;
    }
    int dfd = open(n->snap_dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    map_free(&n->map);
    n->map = m;
    n->applied = applied;
    n->hash = hash;
    CLOG_INFO("kv: installed snapshot %s (applied %" PRIu64 ", %zu keys)", n->inst_name, applied,
              m.n);
    return 0;
}

/* ============================================================================================
 * RPC service
 * ========================================================================================== */
static struct kv_node g_node;

static void reply_kv(rpc_call_ctx *ctx, int status, uint64_t index, uint64_t leader,
                     const struct kv_item *it, bool get)
{
    Curve__Raft__KvReply r = CURVE__RAFT__KV_REPLY__INIT;
    char addr[RAFTRT_ADDR_MAX] = "";
    r.status = status;
    r.has_index = 1;
    r.index = index;
    if (leader) {
        r.has_leader_id = 1;
        r.leader_id = leader;
        if (raftrt_host_peer_addr(g_node.host, leader, addr, sizeof(addr)) == 0)
            r.leader_addr = addr;
    }
    if (get) {
        r.has_found = 1;
        r.found = it != NULL;
        if (it) {
            r.has_value = 1;
            r.value.data = (uint8_t *)it->val;
            r.value.len = it->vlen;
        }
    }
    (void)rpc_call_reply(ctx, 0, &r.base, NULL);
}

static void put_done(void *arg, int status, uint64_t index, uint64_t leader)
{
    reply_kv(arg, status, index, leader, NULL, false);
}

static bool bytes_ok(const ProtobufCBinaryData *b, size_t min, size_t max)
{
    if (b->len < min || b->len > max)
        return false;
    for (size_t i = 0; i < b->len; i++)
        if (b->data[i] == '\t' || b->data[i] == '\n')
            return false;
    return true;
}

static void put_handler(rpc_call_ctx *ctx, const ProtobufCMessage *msg, curve_iobuf *attach,
                        void *arg)
{
    const Curve__Raft__KvPutRequest *req = (const Curve__Raft__KvPutRequest *)msg;
    if (!bytes_ok(&req->key, 1, KV_KEY_MAX) || !bytes_ok(&req->value, 0, KV_VALUE_MAX)) {
        rpc_call_reply_error(ctx, CURVE_ERR_INVALID_REQUEST,
                             "key must be 1..%u bytes, value <= %u bytes, no tab or newline",
                             KV_KEY_MAX, KV_VALUE_MAX);
        return;
    }
    uint32_t len = (uint32_t)(4 + req->key.len + req->value.len);
    uint8_t *cmd = malloc(len);
    if (cmd == NULL) {
        rpc_call_reply_error(ctx, -ENOMEM, "out of memory");
        return;
    }
    put_u32(cmd, (uint32_t)req->key.len);
    memcpy(cmd + 4, req->key.data, req->key.len);
    memcpy(cmd + 4 + req->key.len, req->value.data, req->value.len);
    int rc = raftrt_propose(g_node.g, cmd, len, put_done, ctx);
    free(cmd);
    if (rc != 0)
        reply_kv(ctx, rc, 0, 0, NULL, false);
}

struct get_req {
    rpc_call_ctx *ctx;
    const Curve__Raft__KvGetRequest *req;
};

static void get_done(void *arg, int status, uint64_t index, uint64_t leader)
{
    struct get_req *gr = arg;
    const struct kv_item *it = NULL;
    if (status == 0)
        it = map_get(&g_node.map, gr->req->key.data, (uint32_t)gr->req->key.len);
    reply_kv(gr->ctx, status, index, leader, it, true);
    free(gr);
}

static void get_handler(rpc_call_ctx *ctx, const ProtobufCMessage *msg, curve_iobuf *attach,
                        void *arg)
{
    struct get_req *gr = malloc(sizeof(*gr));
    if (gr == NULL) {
        rpc_call_reply_error(ctx, -ENOMEM, "out of memory");
        return;
    }
    gr->ctx = ctx;
    gr->req = (const Curve__Raft__KvGetRequest *)msg;
    int rc = raftrt_read(g_node.g, get_done, gr);
    if (rc != 0) {
        free(gr);
        reply_kv(ctx, rc, 0, 0, NULL, true);
    }
}

static void dump_on_loop(void *arg, raftrt_group *g, bool alive)
{
    rpc_call_ctx *ctx = arg;
    struct kv_node *n = &g_node;
    if (!alive) {
        rpc_call_reply_error(ctx, CURVE_ERR_SHUTDOWN, "the group is stopping");
        return;
    }
    struct raft *r = raftrt_group_raft(g);
    Curve__Raft__KvDumpReply d = CURVE__RAFT__KV_DUMP_REPLY__INIT;
    d.applied = n->applied;
    d.hash = n->hash;
    d.nkeys = n->map.n;
    if (r) {
        struct raft_status st;
        raft_status(r, &st);
        d.role = st.role;
        d.term = st.term;
        d.commit = st.commit;
        d.snapshot_index = st.snapshot_index;
        d.leader_id = st.leader;
    }
    raftrt_group_stats gs;
    raftrt_group_get_stats(g, &gs);
    d.snapshots_installed = gs.snapshots_installed;
    size_t sz = 0;
    for (size_t i = 0; i < n->map.nb; i++)
        for (struct kv_item *it = n->map.b[i]; it; it = it->next)
            sz += it->klen + it->vlen + 2;
    curve_iobuf att;
    curve_iobuf_init(&att);
    curve_buf *b = sz ? curve_buf_new(sz) : NULL;
    if (sz && b == NULL) {
        rpc_call_reply_error(ctx, -ENOMEM, "out of memory");
        return;
    }
    if (b) {
        uint8_t *p = curve_buf_data(b);
        for (size_t i = 0; i < n->map.nb; i++) {
            for (struct kv_item *it = n->map.b[i]; it; it = it->next) {
                memcpy(p, it->key, it->klen);
                p[it->klen] = '\t';
                memcpy(p + it->klen + 1, it->val, it->vlen);
                p[it->klen + 1 + it->vlen] = '\n';
                p += it->klen + it->vlen + 2;
            }
        }
        curve_buf_set_len(b, sz);
        (void)curve_iobuf_append(&att, b, 0, sz);
        curve_buf_unref(b);
    }
    (void)rpc_call_reply(ctx, 0, &d.base, &att);
    curve_iobuf_reset(&att);
}

static void dump_handler(rpc_call_ctx *ctx, const ProtobufCMessage *msg, curve_iobuf *attach,
                         void *arg)
{
    if (raftrt_group_post(g_node.g, dump_on_loop, ctx) != 0)
        rpc_call_reply_error(ctx, CURVE_ERR_BUSY, "cannot queue the dump");
}

/* ============================================================================================
 * Admin /status
 * ========================================================================================== */
struct status_snap {
    struct raft_status st;
    uint64_t applied, hash, nkeys;
};

static void status_on_loop(void *arg)
{
    struct status_snap *s = arg;
    struct raft *r = raftrt_group_raft(g_node.g);
    if (r)
        raft_status(r, &s->st);
    s->applied = g_node.applied;
    s->hash = g_node.hash;
    s->nkeys = g_node.map.n;
}

static void admin_status(void *ctx, json_t *obj)
{
    struct status_snap s;
    memset(&s, 0, sizeof(s));
    if (curve_loop_call_sync(raftrt_group_loop(g_node.g), status_on_loop, &s) != 0)
        return;
    char hash[32];
    snprintf(hash, sizeof(hash), "%016" PRIx64, s.hash);
    json_object_set_new(obj, "role", json_string(s.st.role == RAFT_LEADER ? "leader" : "follower"));
    json_object_set_new(obj, "raft_role", json_string(raft_role_name(s.st.role)));
    json_object_set_new(obj, "id", json_integer((json_int_t)g_node.id));
    json_object_set_new(obj, "term", json_integer((json_int_t)s.st.term));
    json_object_set_new(obj, "leader", json_integer((json_int_t)s.st.leader));
    json_object_set_new(obj, "commit", json_integer((json_int_t)s.st.commit));
    json_object_set_new(obj, "applied", json_integer((json_int_t)s.st.applied));
    json_object_set_new(obj, "last_index", json_integer((json_int_t)s.st.last_index));
    json_object_set_new(obj, "first_index", json_integer((json_int_t)s.st.first_index));
    json_object_set_new(obj, "snapshot_index", json_integer((json_int_t)s.st.snapshot_index));
    json_object_set_new(obj, "failed", json_integer(s.st.failed));
    json_object_set_new(obj, "kv_applied", json_integer((json_int_t)s.applied));
    json_object_set_new(obj, "kv_hash", json_string(hash));
    json_object_set_new(obj, "kv_keys", json_integer((json_int_t)s.nkeys));
    raftrt_group_stats gs;
    raftrt_group_get_stats(g_node.g, &gs);
    json_object_set_new(obj, "snapshots_installed",
                        json_integer((json_int_t)gs.snapshots_installed));
    json_object_set_new(obj, "snapshots_saved", json_integer((json_int_t)gs.snapshots_saved));
}

static void health_on_loop(void *arg)
{
    struct raft *r = raftrt_group_raft(g_node.g);
    *(int *)arg = r ? raft_failed(r) : CURVE_ERR_SHUTDOWN;
}

/* Unhealthy once the Raft node has stopped on an I/O error (it then needs a restart). */
static int admin_health(void *ctx, char *reason, size_t len)
{
    int failed = 0;
    if (curve_loop_call_sync(raftrt_group_loop(g_node.g), health_on_loop, &failed) != 0)
        failed = CURVE_ERR_SHUTDOWN;
    if (failed == 0)
        return 0;
    snprintf(reason, len, "raft group %u failed: %s", KV_GROUP_ID, curve_strerror(failed));
    return 1;
}

/* ============================================================================================
 * Command line
 * ========================================================================================== */
struct peer_arg {
    uint64_t id;
    char addr[RAFTRT_ADDR_MAX];
};

static int parse_peers(const char *s, struct peer_arg *out, unsigned *n)
{
    *n = 0;
    char buf[1024];
    if (strlen(s) >= sizeof(buf))
        return -EINVAL;
    snprintf(buf, sizeof(buf), "%s", s);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '='), *end;
        if (eq == NULL || *n == KV_MAX_PEERS)
            return -EINVAL;
        *eq = 0;
        errno = 0;
        unsigned long long id = strtoull(tok, &end, 10);
        if (errno || *end || id == 0 || strlen(eq + 1) >= RAFTRT_ADDR_MAX ||
            strchr(eq + 1, ':') == NULL)
            return -EINVAL;
        for (unsigned i = 0; i < *n; i++)
            if (out[i].id == id)
                return -EINVAL;
        out[*n].id = id;
        snprintf(out[*n].addr, sizeof(out[*n].addr), "%s", eq + 1);
        (*n)++;
    }
    return *n ? 0 : -EINVAL;
}

static int parse_u64(const char *name, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *s == 0 || *end || v < min || v > max) {
        fprintf(stderr,
                "curve-raft-kv: --%s=%s: expected an integer in [%" PRIu64 ", %" PRIu64 "]\n", name,
                s, min, max);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    g_stop = 1;
}

/* ---- client ---- */
struct client {
    curve_loop *loop;
    struct peer_arg peers[KV_MAX_PEERS];
    unsigned npeers;
    rpc_channel *ch[KV_MAX_PEERS];
    unsigned cur;
    uint32_t timeout_ms;
};

static int client_open(struct client *c, const char *peers, const char *addr)
{
    memset(c, 0, sizeof(*c));
    int rc = 0;
    if (peers)
        rc = parse_peers(peers, c->peers, &c->npeers);
    else if (addr && strlen(addr) < RAFTRT_ADDR_MAX) {
        c->npeers = 1;
        c->peers[0].id = 1;
        snprintf(c->peers[0].addr, sizeof(c->peers[0].addr), "%s", addr);
    } else
        rc = -EINVAL;
    if (rc != 0) {
        fprintf(stderr, "curve-raft-kv: bad --peers/--addr\n");
        return rc;
    }
    rc = curve_loop_new("kv-client", &c->loop);
    if (rc == 0)
        rc = curve_loop_start(c->loop);
    for (unsigned i = 0; rc == 0 && i < c->npeers; i++) {
        rpc_channel_opts o = {.backoff_max_ms = 200, .connect_timeout_ms = 500};
        rc = rpc_channel_new(c->loop, c->peers[i].addr, &o, &c->ch[i]);
    }
    return rc;
}

static void client_close(struct client *c)
{
    for (unsigned i = 0; i < c->npeers; i++)
        if (c->ch[i])
            rpc_channel_close_sync(c->ch[i]);
    if (c->loop) {
        curve_loop_stop(c->loop);
        curve_loop_join(c->loop);
        curve_loop_free(c->loop);
    }
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Puts one key until acknowledged (or stop). Returns 0 when acknowledged. */
static int client_put(struct client *c, const char *key, const char *val)
{
    Curve__Raft__KvPutRequest req = CURVE__RAFT__KV_PUT_REQUEST__INIT;
    req.key.data = (uint8_t *)key;
    req.key.len = strlen(key);
    req.value.data = (uint8_t *)val;
    req.value.len = strlen(val);
    unsigned backoff = 5;
    while (!g_stop) {
        ProtobufCMessage *resp = NULL;
        char err[RPC_CHANNEL_ERRMSG_MAX];
        int rc = rpc_call_sync(c->ch[c->cur], KV_SERVICE_ID, KV_METHOD_PUT, &req.base, NULL,
                               &curve__raft__kv_reply__descriptor, c->timeout_ms, &resp, NULL, err,
                               sizeof(err));
        if (rc == CURVE_ERR_INVALID_REQUEST) {
            fprintf(stderr, "curve-raft-kv: put %s refused: %s\n", key, err);
            return rc;
        }
        if (rc == 0) {
            Curve__Raft__KvReply *r = (Curve__Raft__KvReply *)resp;
            rc = r->status;
            uint64_t hint = r->has_leader_id ? r->leader_id : 0;
            protobuf_c_message_free_unpacked(resp, NULL);
            if (rc == 0)
                return 0;
            if (rc == CURVE_ERR_INVALID_REQUEST)
                return rc;
            if (rc == CURVE_ERR_NOT_LEADER && hint) {
                for (unsigned i = 0; i < c->npeers; i++)
                    if (c->peers[i].id == hint && i != c->cur) {
                        c->cur = i;
                        backoff = 5;
                        goto next;
                    }
            }
        }
        /* timeout, connection error, no leader known, or the entry's fate is unknown: rotate */
        c->cur = (c->cur + 1) % c->npeers;
        sleep_ms(backoff); /* retry backoff, bounded below */
        if (backoff < 100)
            backoff *= 2;
    next:;
    }
    return CURVE_ERR_CANCELED;
}

static int cmd_client(int argc, char **argv)
{
    const char *sub = NULL, *peers = NULL, *addr = NULL, *out = NULL, *prefix = "k";
    const char *key = NULL, *value = NULL;
    uint64_t count = UINT64_MAX, timeout_ms = 1000;
    static const struct option lo[] = {
        {"peers", required_argument, NULL, 'p'},
        {"addr", required_argument, NULL, 'a'},
        {"out", required_argument, NULL, 'o'},
        {"prefix", required_argument, NULL, 'x'},
        {"count", required_argument, NULL, 'c'},
        {"timeout-ms", required_argument, NULL, 't'},
        {"key", required_argument, NULL, 'k'},
        {"value", required_argument, NULL, 'v'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'p':
            peers = optarg;
            break;
        case 'a':
            addr = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'x':
            prefix = optarg;
            break;
        case 'c':
            if (parse_u64("count", optarg, 1, UINT64_MAX, &count))
                return 2;
            break;
        case 't':
            if (parse_u64("timeout-ms", optarg, 10, 600000, &timeout_ms))
                return 2;
            break;
        case 'k':
            key = optarg;
            break;
        case 'v':
            value = optarg;
            break;
        default:
            return 2;
        }
    }
    if (optind < argc)
        sub = argv[optind];
    if (sub == NULL) {
        fprintf(stderr, "usage: curve-raft-kv client put-stream|put|dump ...\n");
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct client c;
    int rc = client_open(&c, peers, addr);
    if (rc != 0) {
        client_close(&c);
        return 2;
    }
    c.timeout_ms = (uint32_t)timeout_ms;
    int ret = 0;
    if (strcmp(sub, "put-stream") == 0) {
        FILE *f = out ? fopen(out, "a") : NULL;
        if (f == NULL) {
            fprintf(stderr, "curve-raft-kv: put-stream needs --out=FILE (%s)\n",
                    out ? strerror(errno) : "missing");
            client_close(&c);
            return 2;
        }
        uint64_t acked = 0;
        printf("streaming\n");
        fflush(stdout);
        for (uint64_t i = 0; i < count && !g_stop; i++) {
            char k[KV_KEY_MAX], v[64];
            snprintf(k, sizeof(k), "%s%08" PRIu64, prefix, i);
            snprintf(v, sizeof(v), "v%" PRIu64, i);
            if (client_put(&c, k, v) != 0)
                break;
            fprintf(f, "%s\t%s\n", k, v);
            fflush(f);
            acked++;
        }
        fclose(f);
        printf("done acked=%" PRIu64 "\n", acked);
    } else if (strcmp(sub, "put") == 0 && key && value) {
        rc = client_put(&c, key, value);
        printf("put %s\n", rc == 0 ? "ok" : curve_strerror(rc));
        ret = rc == 0 ? 0 : 1;
    } else if (strcmp(sub, "dump") == 0) {
        Curve__Raft__KvDumpRequest req = CURVE__RAFT__KV_DUMP_REQUEST__INIT;
        ProtobufCMessage *resp = NULL;
        curve_iobuf att;
        curve_iobuf_init(&att);
        char err[RPC_CHANNEL_ERRMSG_MAX] = "";
        rc = rpc_call_sync(c.ch[0], KV_SERVICE_ID, KV_METHOD_DUMP, &req.base, NULL,
                           &curve__raft__kv_dump_reply__descriptor, c.timeout_ms, &resp, &att, err,
                           sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "curve-raft-kv: dump failed: %s %s\n", curve_strerror(rc), err);
            ret = 1;
        } else {
            Curve__Raft__KvDumpReply *d = (Curve__Raft__KvDumpReply *)resp;
            printf("{\"applied\": %" PRIu64 ", \"hash\": \"%016" PRIx64 "\", \"nkeys\": %" PRIu64
                   ", \"role\": %u, \"term\": %" PRIu64 ", \"commit\": %" PRIu64
                   ", \"snapshot_index\": %" PRIu64 ", \"snapshots_installed\": %" PRIu64
                   ", \"leader\": %" PRIu64 "}\n",
                   d->applied, d->hash, d->nkeys, d->role, d->term, d->commit, d->snapshot_index,
                   d->snapshots_installed, d->leader_id);
            char *buf = malloc(att.len + 1);
            if (buf) {
                curve_iobuf_copyout(&att, 0, buf, att.len);
                fwrite(buf, 1, att.len, stdout);
                free(buf);
            }
            protobuf_c_message_free_unpacked(resp, NULL);
        }
        curve_iobuf_reset(&att);
    } else {
        fprintf(stderr, "curve-raft-kv: unknown or incomplete client command %s\n", sub);
        ret = 2;
    }
    fflush(stdout);
    client_close(&c);
    return ret;
}

/* ---- node ---- */
static int cmd_node(int argc, char **argv)
{
    uint64_t id = 0, port = 0, admin_port = 0, snap_threshold = 1000, snap_trailing = 100;
    uint64_t election_ms = 1000, heartbeat_ms = 100;
    bool failpoints = false;
    const char *data_dir = NULL, *peers_s = NULL;
    static const struct option lo[] = {
        {"id", required_argument, NULL, 'i'},
        {"data-dir", required_argument, NULL, 'd'},
        {"peers", required_argument, NULL, 'p'},
        {"port", required_argument, NULL, 'P'},
        {"admin-port", required_argument, NULL, 'A'},
        {"snapshot-threshold", required_argument, NULL, 's'},
        {"snapshot-trailing", required_argument, NULL, 'T'},
        {"election-timeout-ms", required_argument, NULL, 'e'},
        {"heartbeat-ms", required_argument, NULL, 'h'},
        {"enable-failpoints", no_argument, NULL, 'F'},
        {NULL, 0, NULL, 0},
    };
    int opt, rc = 0;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'i':
            rc = parse_u64("id", optarg, 1, UINT64_MAX, &id);
            break;
        case 'd':
            data_dir = optarg;
            break;
        case 'p':
            peers_s = optarg;
            break;
        case 'P':
            rc = parse_u64("port", optarg, 0, 65535, &port);
            break;
        case 'A':
            rc = parse_u64("admin-port", optarg, 0, 65535, &admin_port);
            break;
        case 's':
            rc = parse_u64("snapshot-threshold", optarg, 0, 1u << 30, &snap_threshold);
            break;
        case 'T':
            rc = parse_u64("snapshot-trailing", optarg, 0, 1u << 30, &snap_trailing);
            break;
        case 'F':
            failpoints = true;
            break;
        case 'e':
            rc = parse_u64("election-timeout-ms", optarg, 10, 60000, &election_ms);
            break;
        case 'h':
            rc = parse_u64("heartbeat-ms", optarg, 1, 30000, &heartbeat_ms);
            break;
        default:
            rc = -EINVAL;
            break;
        }
        if (rc != 0)
            return 2;
    }
    struct peer_arg peers[KV_MAX_PEERS];
    unsigned npeers = 0;
    if (id == 0 || data_dir == NULL || peers_s == NULL || parse_peers(peers_s, peers, &npeers)) {
        fprintf(stderr, "usage: curve-raft-kv --id=N --data-dir=DIR --peers=ID=IP:PORT,... "
                        "--port=P [--admin-port=A]\n");
        return 2;
    }
    if (heartbeat_ms * 2 > election_ms) {
        fprintf(stderr, "curve-raft-kv: --heartbeat-ms must be <= --election-timeout-ms / 2\n");
        return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct kv_node *n = &g_node;
    n->id = id;
    n->inst_fd = -1;
    n->read_fd = -1;
    snprintf(n->data_dir, sizeof(n->data_dir), "%s", data_dir);
    if (raftrt_group_path(data_dir, KV_GROUP_ID, "snapshot", n->snap_dir, sizeof(n->snap_dir))) {
        fprintf(stderr, "curve-raft-kv: data dir path too long\n");
        return 2;
    }
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%" PRIu64, port);
    curve_metrics *reg = curve_metrics_default();
    raftrt_host_opts ho = {
        .self_id = id, .listen_addr = listen, .nloops = 2, .nworkers = 2, .metrics = reg};
    rc = raftrt_host_new(&ho, &n->host);
    if (rc != 0) {
        fprintf(stderr, "curve-raft-kv: cannot create the raft host: %s\n", curve_strerror(rc));
        return 1;
    }
    n->wp = raftrt_host_workpool(n->host);
    struct raft_config conf = {0};
    for (unsigned i = 0; i < npeers; i++) {
        raftrt_host_set_peer(n->host, peers[i].id, peers[i].addr);
        conf.s[i].id = peers[i].id;
        conf.s[i].role = RAFT_VOTER;
    }
    conf.n = npeers;
    n->methods[0] = (rpc_method_def){KV_METHOD_PUT, "Put", &curve__raft__kv_put_request__descriptor,
                                     &curve__raft__kv_reply__descriptor, put_handler};
    n->methods[1] = (rpc_method_def){KV_METHOD_GET, "Get", &curve__raft__kv_get_request__descriptor,
                                     &curve__raft__kv_reply__descriptor, get_handler};
    n->methods[2] =
        (rpc_method_def){KV_METHOD_DUMP, "Dump", &curve__raft__kv_dump_request__descriptor,
                         &curve__raft__kv_dump_reply__descriptor, dump_handler};
    n->svc = (rpc_service_def){KV_SERVICE_ID, "curve.raft.kv", n->methods, 3, n};
    rc = raftrt_host_add_service(n->host, &n->svc);
    if (rc != 0)
        goto err_after_host;
    /* the map first (its newest snapshot), then the group replays the log after it */
    char gdir[KV_PATH_MAX];
    raftrt_group_path(data_dir, KV_GROUP_ID, NULL, gdir, sizeof(gdir));
    struct stat st;
    if (stat(n->snap_dir, &st) == 0 && (rc = kv_load(n)) != 0) {
        fprintf(stderr, "curve-raft-kv: cannot load the map: %s\n", curve_strerror(rc));
        goto err_after_host;
    }
    raftrt_fsm fsm = {.ctx = n,
                      .apply = kv_apply,
                      .snapshot_save = kv_snapshot_save,
                      .snapshot_read = kv_snapshot_read,
                      .install_begin = kv_install_begin,
                      .install_write = kv_install_write,
                      .install_finish = kv_install_finish,
                      .install_abort = kv_install_abort};
    raftrt_group_opts go;
    raftrt_group_opts_default(&go);
    go.group_id = KV_GROUP_ID;
    go.data_dir = data_dir;
    go.bootstrap = &conf;
    go.fsm = &fsm;
    go.raft.election_timeout_ms = (uint32_t)election_ms;
    go.raft.heartbeat_ms = (uint32_t)heartbeat_ms;
    go.raft.snapshot_threshold = snap_threshold;
    go.raft.snapshot_trailing = snap_trailing;
    go.raft.snapshot_piece_bytes = 16u << 10; /* several pieces even for small maps */
    rc = raftrt_group_open(n->host, &go, &n->g);
    if (rc != 0) {
        fprintf(stderr, "curve-raft-kv: cannot open the group in %s: %s\n", gdir,
                curve_strerror(rc));
        goto err_after_host;
    }
    rc = raftrt_host_start(n->host);
    if (rc != 0) {
        fprintf(stderr, "curve-raft-kv: cannot listen on %s: %s\n", listen, curve_strerror(rc));
        goto err_after_group;
    }
    (void)curve_metrics_register_process(reg);
    curve_admin_opts ao = {.port = (uint16_t)admin_port, .role = "raft-kv", .metrics = reg};
    curve_admin *admin = NULL;
    rc = curve_admin_start(&ao, &admin);
    if (rc != 0) {
        fprintf(stderr, "curve-raft-kv: cannot start the admin server on port %" PRIu64 ": %s\n",
                admin_port, curve_strerror(rc));
        goto err_after_group;
    }
    curve_admin_set_status_cb(admin, admin_status, n);
    curve_admin_set_health_cb(admin, admin_health, n);
    if (failpoints && (rc = curve_admin_enable_failpoints(admin)) != 0) {
        fprintf(stderr, "curve-raft-kv: cannot enable failpoints: %s\n", curve_strerror(rc));
        curve_admin_stop(admin);
        goto err_after_group;
    }
    printf("listening 127.0.0.1:%d admin %u\n", raftrt_host_port(n->host), curve_admin_port(admin));
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    printf("stopping (signal %d)\n", sig);
    fflush(stdout);
    curve_admin_stop(admin);
    /* the RPC server stops first (no handler runs afterwards), then the group */
    raftrt_host_free(n->host);
    map_free(&n->map);
    kv_install_abort(n);
    if (n->read_fd >= 0)
        close(n->read_fd);
    printf("stopped\n");
    fflush(stdout);
    return 0;
err_after_group:
    raftrt_group_stop(n->g);
err_after_host:
    raftrt_host_free(n->host);
    map_free(&n->map);
    return 1;
}

int main(int argc, char **argv)
{
    CURVE_STATIC_ASSERT(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "little-endian host");
    if (argc >= 2 && strcmp(argv[1], "client") == 0)
        return cmd_client(argc - 1, argv + 1);
    return cmd_node(argc, argv);
}
