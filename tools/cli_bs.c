/* `curve bs ...`: volumes, directories, cluster status, topology and copysets, through the MDS
 * RPCs of proto/mds.proto (docs/cli.md). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "curve/curve.h"
#include "mds.pb-c.h"
#include "tools/cli.h"
#include "tools/cli_mds.h"

#define CLI_DEFAULT_OWNER "curve" /* libcurve's default client.owner */
#define RECYCLE_DIR       "/RecycleBin"

typedef ProtobufCMessage pbm;

static const struct cli_col file_cols[] = {
    {"path", "path", CLI_COL_STR},
    {"type", "type", CLI_COL_STR},
    {"id", "id", CLI_COL_STR},
    {"size", "size", CLI_COL_BYTES},
    {"owner", "owner", CLI_COL_STR},
    {"ctime_ns", "created", CLI_COL_TIME_NS},
    {"epoch", "epoch", CLI_COL_STR},
    {"chunk_size", "chunk size", CLI_COL_BYTES},
    {"segment_size", "segment size", CLI_COL_BYTES},
    {"status", "status", CLI_COL_STR},
    {"original_name", "original name", CLI_COL_STR},
    {"open_count", "open sessions", CLI_COL_STR},
};

static const struct cli_col dir_cols[] = {
    {"name", "NAME", CLI_COL_STR},   {"type", "TYPE", CLI_COL_STR},
    {"size", "SIZE", CLI_COL_BYTES}, {"owner", "OWNER", CLI_COL_STR},
    {"id", "ID", CLI_COL_STR},       {"ctime_ns", "CREATED", CLI_COL_TIME_NS},
    {"open_count", "OPEN", CLI_COL_STR},
};

static const struct cli_col recycle_cols[] = {
    {"name", "NAME", CLI_COL_STR},   {"original_name", "ORIGINAL", CLI_COL_STR},
    {"id", "ID", CLI_COL_STR},       {"size", "SIZE", CLI_COL_BYTES},
    {"owner", "OWNER", CLI_COL_STR}, {"status", "STATUS", CLI_COL_STR},
};

#define NCOLS(a) (sizeof(a) / sizeof((a)[0]))

/* Opens the MDS client or reports why not. Returns 0 or an exit code. */
static int mds_open(struct cli_opts *o, struct cli_mds **m)
{
    char err[CLI_ERR_MAX];
    int r = cli_mds_open(o, m, err, sizeof(err));
    if (r != 0)
        return cli_fail(o, r == CLI_EXIT_USAGE ? -EINVAL : CURVE_ERR_CONFIG, r, "%s", err);
    return 0;
}

static int check_path(struct cli_opts *o, const char *path)
{
    char err[CLI_ERR_MAX];
    if (cli_check_path(path, err, sizeof(err)) < 0) {
        cli_fail(o, -EINVAL, CLI_EXIT_USAGE, "%s", err);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

/* FileInfo -> JSON with a readable type and, when known, the full path. */
static json_t *file_json(const Curve__Mds__FileInfo *fi, const char *path)
{
    json_t *j = cli_pb_json(&fi->base);
    if (j == NULL)
        return NULL;
    json_object_set_new(
        j, "type",
        json_string(fi->type == CURVE__MDS__FILE_TYPE__FILE_DIR ? "directory" : "volume"));
    if (path != NULL) {
        json_t *obj = json_object();
        json_object_set_new(obj, "path", json_string(path));
        json_object_update(obj, j);
        json_decref(j);
        j = obj;
    }
    return j;
}

/* Runs one call and reports failures as "<what> <subject>: <reason>". */
static int call(struct cli_opts *o, struct cli_mds *m, uint32_t svc, uint32_t method,
                const pbm *req, const ProtobufCMessageDescriptor *rd, pbm **resp, const char *what,
                const char *subject)
{
    char err[CLI_ERR_MAX];
    int r = cli_mds_call(m, svc, method, req, rd, resp, err, sizeof(err));
    if (r < 0)
        return -cli_fail(o, r, 0, "%s%s%s: %s (%s)", what, subject[0] ? " " : "", subject, err,
                         curve_errname(r));
    return 0;
}

/* Prints a FileInfo response as an object and frees it. */
static int print_file(struct cli_opts *o, pbm *resp, const char *path)
{
    json_t *j = file_json((Curve__Mds__FileInfo *)resp, path);
    protobuf_c_message_free_unpacked(resp, NULL);
    if (j == NULL)
        return cli_fail(o, -ENOMEM, 0, "out of memory");
    cli_render_object(stdout, o->format, j, file_cols, NCOLS(file_cols));
    json_decref(j);
    return CLI_EXIT_OK;
}

static int print_done(struct cli_opts *o, json_t *j)
{
    if (j == NULL)
        return cli_fail(o, -ENOMEM, 0, "out of memory");
    cli_render_object(stdout, o->format, j, NULL, 0);
    json_decref(j);
    return CLI_EXIT_OK;
}

/* ---- volumes and directories ---- */

int cli_bs_create(const struct cli_cmd *cmd, struct cli_opts *o, const char **pos, int npos)
{
    int r = check_path(o, pos[0]);
    if (r)
        return r;
    if (o->size == 0)
        return cli_fail(o, -EINVAL, CLI_EXIT_USAGE, "--size must be greater than 0");
    struct cli_mds *m;
    if ((r = mds_open(o, &m)) != 0)
        return r;
    Curve__Mds__CreateVolumeRequest req = CURVE__MDS__CREATE_VOLUME_REQUEST__INIT;
    req.path = (char *)pos[0];
    req.size = o->size;
    req.owner = (char *)(o->owner ? o->owner : CLI_DEFAULT_OWNER);
    pbm *resp = NULL;
    r = call(o, m, CLI_SVC_NAMESPACE, CLI_NS_CREATE, &req.base, &curve__mds__file_info__descriptor,
             &resp, "create volume", pos[0]);
    cli_mds_close(m);
    return r < 0 ? -r : print_file(o, resp, pos[0]);
}

static int stat_path(struct cli_opts *o, struct cli_mds *m, const char *path,
                     Curve__Mds__FileInfo **fi)
{
    Curve__Mds__PathRequest req = CURVE__MDS__PATH_REQUEST__INIT;
    req.path = (char *)path;
    req.has_open_count = req.open_count = true;
    return call(o, m, CLI_SVC_NAMESPACE, CLI_NS_STAT, &req.base, &curve__mds__file_info__descriptor,
                (pbm **)fi, "stat", path);
}

int cli_bs_delete(const struct cli_cmd *cmd, struct cli_opts *o, const char **pos, int npos)
{
    int r = check_path(o, pos[0]);
    if (r)
        return r;
    struct cli_mds *m;
    if ((r = mds_open(o, &m)) != 0)
        return r;
    Curve__Mds__FileInfo *fi = NULL;
    r = stat_path(o, m, pos[0], &fi);
    if (r < 0)
        goto out;
    if (fi->type != CURVE__MDS__FILE_TYPE__FILE_VOLUME) {
        r = -cli_fail(o, -EISDIR, 0, "delete volume %s: is a directory (use curve bs rmdir)",
                      pos[0]);
        goto out;
    }
    char recycled[CURVE_PATH_MAX + 64];
    snprintf(recycled, sizeof(recycled), RECYCLE_DIR "/%s-%" PRIu64, fi->name, fi->id);
    Curve__Mds__PathRequest req = CURVE__MDS__PATH_REQUEST__INIT;
    req.path = (char *)pos[0];
    r = call(o, m, CLI_SVC_NAMESPACE, CLI_NS_DELETE, &req.base, NULL, NULL, "delete volume",
             pos[0]);
    if (r < 0)
        goto out;
    if (o->force) {
        req.path = recycled;
        r = call(o, m, CLI_SVC_NAMESPACE, CLI_NS_PURGE, &req.base, NULL, NULL,
                 "purge (volume already in the recycle bin)", recycled);
        if (r < 0)
            goto out;
    }
    r = print_done(o, json_pack("{s:s, s:I, s:s, s:b}", "deleted", pos[0], "id", (json_int_t)fi->id,
                                "recycle_path", recycled, "purged", o->force));
out:
    if (fi != NULL)
        protobuf_c_message_free_unpacked(&fi->base, NULL);
    cli_mds_close(m);
    return r < 0 ? -r : r;
}

static const char *basename_of(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Reads directory `dir` page by page (--page-size entries per ListDir, default CLI_LIST_PAGE)
 * and calls fn(entry, ctx) for every entry in name order; fn returns 0 to go on or a negative
 * value that stops the listing and is returned. Returns 0 or a negative value already reported
 * through cli_fail (stdout/stderr). */
typedef int (*list_fn)(const Curve__Mds__FileInfo *e, void *ctx);

static int list_dir_pages(struct cli_opts *o, struct cli_mds *m, const char *dir, list_fn fn,
                          void *ctx)
{
    char after[CURVE_NAME_MAX + 64] = "";
    for (;;) {
        Curve__Mds__ListDirRequest req = CURVE__MDS__LIST_DIR_REQUEST__INIT;
        req.path = (char *)dir;
        req.has_limit = true;
        req.limit = (o->flags_seen & CLI_F_PAGE) ? o->page_size : CLI_LIST_PAGE;
        if (after[0])
            req.start_after = after;
        Curve__Mds__ListDirResponse *ls = NULL;
        int r = call(o, m, CLI_SVC_NAMESPACE, CLI_NS_LISTDIR, &req.base,
                     &curve__mds__list_dir_response__descriptor, (pbm **)&ls, "list", dir);
        if (r < 0)
            return r;
        for (size_t i = 0; i < ls->n_entries && r == 0; i++)
            r = fn(ls->entries[i], ctx);
        bool more = ls->has_more && ls->more;
        if (r == 0 && more) {
            const char *last = ls->last_name;
            if (!last || strlen(last) >= sizeof(after) || strcmp(last, after) <= 0)
                r = -cli_fail(o, -EPROTO, 0,
                              "list %s: the MDS answered a page without a usable last name "
                              "(after '%s')",
                              dir, after);
            else
                snprintf(after, sizeof(after), "%s", last);
        }
        protobuf_c_message_free_unpacked(&ls->base, NULL);
        if (r < 0 || !more)
            return r;
    }
}

typedef struct {
    struct cli_opts *o;
    const char *name;
    int matches, purging;
    char target[CURVE_PATH_MAX + 64];
} recover_scan;

static int recover_match(const Curve__Mds__FileInfo *e, void *arg)
{
    recover_scan *rs = arg;
    if (e->original_name == NULL || strcmp(e->original_name, rs->name) != 0)
        return 0;
    if ((rs->o->flags_seen & CLI_F_ID) && e->id != rs->o->id)
        return 0;
    if (e->status != NULL && strcmp(e->status, "deleting") == 0) {
        rs->purging++; /* purge in progress: no longer recoverable */
        return 0;
    }
    rs->matches++;
    snprintf(rs->target, sizeof(rs->target), RECYCLE_DIR "/%s", e->name);
    return 0;
}

int cli_bs_recover(const struct cli_cmd *cmd, struct cli_opts *o, const char **pos, int npos)
{
    int r = check_path(o, pos[0]);
    if (r)
        return r;
    struct cli_mds *m;
    if ((r = mds_open(o, &m)) != 0)
        return r;
    char target[CURVE_PATH_MAX + 64] = "";
    if (strncmp(pos[0], RECYCLE_DIR "/", sizeof(RECYCLE_DIR)) == 0) {
        snprintf(target, sizeof(target), "%s", pos[0]);
    } else {
        /* Find the deleted volume by its original name (and --id) in the recycle bin. */
        const char *name = basename_of(pos[0]);
        recover_scan rs = {.o = o, .name = name};
        r = list_dir_pages(o, m, RECYCLE_DIR, recover_match, &rs);
        if (r < 0)
            goto out;
        int matches = rs.matches, purging = rs.purging;
        snprintf(target, sizeof(target), "%s", rs.target);
        if (matches == 0) {
            r = -cli_fail(o, CURVE_ERR_NOT_FOUND, 0,
                          "recover volume %s: no recoverable volume named '%s'%s in " RECYCLE_DIR
                          "%s",
                          pos[0], name, (o->flags_seen & CLI_F_ID) ? " with that --id" : "",
                          purging ? " (being purged)" : "");
            goto out;
        }
        if (matches > 1) {
            r = -cli_fail(o, -EINVAL, 0,
                          "recover volume %s: %d deleted volumes named '%s': choose one with "
                          "--id (curve bs list volume " RECYCLE_DIR ")",
                          pos[0], matches, name);
            goto out;
        }
    }
    Curve__Mds__RecoverRequest req = CURVE__MDS__RECOVER_REQUEST__INIT;
    req.path = target;
    pbm *resp = NULL;
    r = call(o, m, CLI_SVC_NAMESPACE, CLI_NS_RECOVER, &req.base, &curve__mds__file_info__descriptor,
             &resp, "recover volume", target);
    if (r == 0)
        r = print_file(o, resp, NULL);
out:
    cli_mds_close(m);
    return r < 0 ? -r : r;
}

int cli_bs_rename(const struct cli_cmd *cmd, struct cli_opts *o, const char **pos, int npos)
{
    int r = check_path(o, pos[0]);
    if (r == 0)
        r = check_path(o, pos[1]);
    if (r)
        return r;
    struct cli_mds *m;
    if ((r = mds_open(o, &m)) != 0)
        return r;
    Curve__Mds__RenameRequest req = CURVE__MDS__RENAME_REQUEST__INIT;
    req.from = (char *)pos[0];
    req.to = (char *)pos[1];
    r = call(o, m, CLI_SVC_NAMESPACE, CLI_NS_RENAME, &req.base, NULL, NULL, "rename", pos[0]);
    cli_mds_close(m);
    if (r < 0)
        return -r;
    return print_done(o, json_pack("{s:s, s:s}", "from", pos[0], "to", pos[1]));
}

int cli_bs_extend(const struct cli_cmd *cmd, struct cli_opts *o, const char **pos, int npos)
{
    int r = check_path(o, pos[0]);
    if (r)
        return r;
    struct cli_mds *m;
    if ((r = mds_open(o, &m)) != 0)
        return r;
    Curve__Mds__ExtendRequest req = CURVE__MDS__EXTEND_REQUEST__INIT;
    req.path = (char *)pos[0];
    req.size = o->size;
    pbm *resp = NULL;
    r = call(o, m, CLI_SVC_NAMESPACE, CLI_NS_EXTEND, &req.base, &curve__mds__file_info__descriptor,
             &resp, "extend volume", pos[0]);
    cli_mds_close(m);
    return r < 0 ? -r : print_file(o, resp, pos[0]);
}

int cli_bs_stat(const struct cli_cmd *cmd, struct cli_opts *o, const char **pos, int npos)
{
    int r = check_path(o, pos[0]);
    if (r)
        return r;
    struct cli_mds *m;
    if ((r = mds_open(o, &m)) != 0)
        return r;
    Curve__Mds__FileInfo *fi = NULL;
    r = stat_path(o, m, pos[0], &fi);
    cli_mds_close(m);
    return r < 0 ? -r : print_file(o, &fi->base, pos[0]);
}

static int list_row(const Curve__Mds__FileInfo *e, void *arg)
{
    json_t *row = file_json(e, NULL);
    if (row == NULL || json_array_append_new(arg, row) != 0)
        return -ENOMEM;
    return 0;
}

int cli_bs_list_volume(const struct cli_cmd *cmd, struct cli_opts *o, const char **pos, int npos)
{
    const char *dir = npos > 0 ? pos[0] : "/";
    int r = check_path(o, dir);
    if (r)
        return r;
    struct cli_mds *m;
    if ((r = mds_open(o, &m)) != 0)
        return r;
    json_t *rows = json_array();
    if (rows == NULL) {
        cli_mds_close(m);
        return cli_fail(o, -ENOMEM, 0, "out of memory");
    }
    r = list_dir_pages(o, m, dir, list_row, rows);
    cli_mds_close(m);
    if (r < 0) {
        json_decref(rows);
        return r == -ENOMEM ? cli_fail(o, -ENOMEM, 0, "out of memory") : -r;
    }
    bool recycle = strncmp(dir, RECYCLE_DIR, sizeof(RECYCLE_DIR) - 1) == 0;
    cli_render_table(stdout, o->format, rows, recycle ? recycle_cols : dir_cols,
                     recycle ? NCOLS(recycle_cols) : NCOLS(dir_cols));
    json_decref(rows);
    return CLI_EXIT_OK;
}

int cli_bs_mkdir(const struct cli_cmd *cmd, struct cli_opts *o, const char **pos, int npos)
{
    int r = check_path(o, pos[0]);
    if (r)
        return r;
    struct cli_mds *m;
    if ((r = mds_open(o, &m)) != 0)
        return r;
    Curve__Mds__MkdirRequest req = CURVE__MDS__MKDIR_REQUEST__INIT;
    req.path = (char *)pos[0];
    req.owner = (char *)(o->owner ? o->owner : CLI_DEFAULT_OWNER);
    pbm *resp = NULL;
    r = call(o, m, CLI_SVC_NAMESPACE, CLI_NS_MKDIR, &req.base, &curve__mds__file_info__descriptor,
             &resp, "mkdir", pos[0]);
    cli_mds_close(m);
    return r < 0 ? -r : print_file(o, resp, pos[0]);
}

int cli_bs_rmdir(const struct cli_cmd *cmd, struct cli_opts *o, const char **pos, int npos)
{
    int r = check_path(o, pos[0]);
    if (r)
        return r;
    struct cli_mds *m;
    if ((r = mds_open(o, &m)) != 0)
        return r;
    Curve__Mds__FileInfo *fi = NULL;
    r = stat_path(o, m, pos[0], &fi);
    if (r == 0 && fi->type != CURVE__MDS__FILE_TYPE__FILE_DIR)
        r = -cli_fail(o, -ENOTDIR, 0, "rmdir %s: not a directory (use curve bs delete volume)",
                      pos[0]);
    if (fi != NULL)
        protobuf_c_message_free_unpacked(&fi->base, NULL);
    if (r == 0) {
        Curve__Mds__PathRequest req = CURVE__MDS__PATH_REQUEST__INIT;
        req.path = (char *)pos[0];
        r = call(o, m, CLI_SVC_NAMESPACE, CLI_NS_DELETE, &req.base, NULL, NULL, "rmdir", pos[0]);
    }
    cli_mds_close(m);
    if (r < 0)
        return -r;
    return print_done(o, json_pack("{s:s}", "removed", pos[0]));
}

/* ---- cluster status, topology, copysets ---- */

static int list_topology(struct cli_opts *o, struct cli_mds *m,
                         Curve__Mds__ListTopologyResponse **t)
{
    Curve__Mds__ListTopologyRequest req = CURVE__MDS__LIST_TOPOLOGY_REQUEST__INIT;
    return call(o, m, CLI_SVC_TOPOLOGY, CLI_TOPO_LIST, &req.base,
                &curve__mds__list_topology_response__descriptor, (pbm **)t, "list topology", "");
}

json_t *cli_status_json(const Curve__Mds__ClusterStatusResponse *s,
                        const Curve__Mds__ListTopologyResponse *t);

/* Builds the `bs status` object (also used by `cluster up` to decide "healthy"). */
json_t *cli_status_json(const Curve__Mds__ClusterStatusResponse *s,
                        const Curve__Mds__ListTopologyResponse *t)
{
    uint64_t cap = 0, used = 0;
    for (size_t i = 0; t != NULL && i < t->n_chunkservers; i++) {
        cap += t->chunkservers[i]->capacity;
        used += t->chunkservers[i]->used;
    }
    /* Slow chunkservers (marked by the MDS, leaders moved off) still serve as followers: they
     * do not make the cluster unhealthy. An MDS without the field: counted from the topology. */
    uint32_t slow = 0;
    if (s->has_slow_chunkservers) {
        slow = s->slow_chunkservers;
    } else {
        for (size_t i = 0; t != NULL && i < t->n_chunkservers; i++)
            slow += t->chunkservers[i]->has_slow && t->chunkservers[i]->slow;
    }
    bool healthy = s->etcd_ok && s->chunkservers > 0 && s->online == s->chunkservers - s->retired &&
                   s->copysets > 0 && s->healthy_copysets == s->copysets;
    return json_pack(
        "{s:s, s:b, s:b, s:{s:i, s:i, s:i, s:i, s:i, s:i}, s:i,"
        " s:{s:i, s:i, s:i, s:i}, s:i, s:I, s:{s:I, s:I}}",
        "mds_leader", s->leader, "etcd_ok", s->etcd_ok, "healthy", healthy, "chunkservers", "total",
        s->chunkservers, "online", s->online, "unstable", s->unstable, "offline", s->offline,
        "retired", s->retired, "slow", slow, "logical_pools", s->logical_pools, "copysets", "total", s->copysets,
        "healthy", s->healthy_copysets, "degraded", s->degraded_copysets, "unavailable",
        s->majority_lost, "operators", s->operators, "pending_purge", (json_int_t)s->pending_purge,
        "space", "capacity", (json_int_t)cap, "used", (json_int_t)used);
}

int cli_bs_status(const struct cli_cmd *cmd, struct cli_opts *o, const char **pos, int npos)
{
    struct cli_mds *m;
    int r;
    if ((r = mds_open(o, &m)) != 0)
        return r;
    Curve__Mds__ClusterStatusRequest req = CURVE__MDS__CLUSTER_STATUS_REQUEST__INIT;
    Curve__Mds__ClusterStatusResponse *s = NULL;
    Curve__Mds__ListTopologyResponse *t = NULL;
    r = call(o, m, CLI_SVC_STATUS, CLI_STATUS_CLUSTER, &req.base,
             &curve__mds__cluster_status_response__descriptor, (pbm **)&s, "cluster status", "");
    if (r == 0)
        r = list_topology(o, m, &t);
    cli_mds_close(m);
    if (r < 0) {
        if (s != NULL)
            protobuf_c_message_free_unpacked(&s->base, NULL);
        return -r;
    }
    json_t *j = cli_status_json(s, t);
    protobuf_c_message_free_unpacked(&s->base, NULL);
    protobuf_c_message_free_unpacked(&t->base, NULL);
    if (j == NULL)
        return cli_fail(o, -ENOMEM, 0, "out of memory");
    if (o->format == CLI_FMT_JSON) {
        cli_render_object(stdout, o->format, j, NULL, 0);
    } else {
        const json_t *cs = json_object_get(j, "chunkservers");
        const json_t *cp = json_object_get(j, "copysets");
        const json_t *sp = json_object_get(j, "space");
        char cap[32], used[32];
        cli_bytes((uint64_t)json_integer_value(json_object_get(sp, "capacity")), cap, sizeof(cap));
        cli_bytes((uint64_t)json_integer_value(json_object_get(sp, "used")), used, sizeof(used));
#define JI(o_, k_) ((long long)json_integer_value(json_object_get((o_), (k_))))
        printf("cluster       %s\n",
               json_is_true(json_object_get(j, "healthy")) ? "HEALTHY" : "NOT HEALTHY");
        printf("mds leader    %s\n", json_string_value(json_object_get(j, "mds_leader")));
        printf("etcd          %s\n",
               json_is_true(json_object_get(j, "etcd_ok")) ? "ok" : "UNREACHABLE");
        printf("chunkservers  %lld total: %lld online, %lld unstable, %lld offline, %lld "
               "retired, %lld slow\n",
               JI(cs, "total"), JI(cs, "online"), JI(cs, "unstable"), JI(cs, "offline"),
               JI(cs, "retired"), JI(cs, "slow"));
        printf("copysets      %lld total: %lld healthy, %lld degraded, %lld unavailable "
               "(%lld logical pools, %lld operators)\n",
               JI(cp, "total"), JI(cp, "healthy"), JI(cp, "degraded"), JI(cp, "unavailable"),
               JI(j, "logical_pools"), JI(j, "operators"));
        printf("space         %s used of %s\n", used, cap);
        printf("purge queue   %lld\n", JI(j, "pending_purge"));
#undef JI
    }
    json_decref(j);
    return CLI_EXIT_OK;
}

static const struct cli_col cs_cols[] = {
    {"id", "ID", CLI_COL_STR},
    {"host", "HOST", CLI_COL_STR},
    {"port", "PORT", CLI_COL_STR},
    {"server", "SERVER", CLI_COL_STR},
    {"zone", "ZONE", CLI_COL_STR},
    {"state", "STATE", CLI_COL_STR},
    {"copysets", "COPYSETS", CLI_COL_STR},
    {"leaders", "LEADERS", CLI_COL_STR},
    {"used", "USED", CLI_COL_BYTES},
    {"capacity", "CAPACITY", CLI_COL_BYTES},
};
static const struct cli_col server_cols[] = {
    {"id", "ID", CLI_COL_STR},
    {"name", "NAME", CLI_COL_STR},
    {"host", "HOST", CLI_COL_STR},
    {"zone", "ZONE", CLI_COL_STR},
};
static const struct cli_col zone_cols[] = {
    {"id", "ID", CLI_COL_STR},
    {"name", "NAME", CLI_COL_STR},
    {"physical_pool", "PHYSICAL POOL", CLI_COL_STR},
};
static const struct cli_col lpool_cols[] = {
    {"kind", "KIND", CLI_COL_STR},         {"id", "ID", CLI_COL_STR},
    {"name", "NAME", CLI_COL_STR},         {"physical_pool", "PHYSICAL POOL", CLI_COL_STR},
    {"replicas", "REPLICAS", CLI_COL_STR}, {"copysets", "COPYSETS", CLI_COL_STR},
    {"created", "CREATED", CLI_COL_STR},
};

json_t *cli_cs_rows(const json_t *chunkservers, bool table);

/* The rows of `bs list chunkserver` (a new array). JSON: every row has "slow" (false when the
 * MDS does not say). Table: a chunkserver marked slow shows "<state>,slow" in STATE. */
json_t *cli_cs_rows(const json_t *chunkservers, bool table)
{
    json_t *rows = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(chunkservers, i, c)
    {
        json_t *row = json_deep_copy(c);
        if (row == NULL)
            continue;
        bool slow = json_is_true(json_object_get(row, "slow"));
        if (table && slow) {
            const char *state = json_string_value(json_object_get(row, "state"));
            char st[64];
            snprintf(st, sizeof(st), "%s,slow", state ? state : "?");
            json_object_set_new(row, "state", json_string(st));
        }
        json_object_set_new(row, "slow", json_boolean(slow));
        json_array_append_new(rows, row);
    }
    return rows;
}

int cli_bs_list_topo(const struct cli_cmd *cmd, struct cli_opts *o, const char **pos, int npos)
{
    struct cli_mds *m;
    int r;
    if ((r = mds_open(o, &m)) != 0)
        return r;
    Curve__Mds__ListTopologyResponse *t = NULL;
    r = list_topology(o, m, &t);
    cli_mds_close(m);
    if (r < 0)
        return -r;
    json_t *all = cli_pb_json(&t->base);
    protobuf_c_message_free_unpacked(&t->base, NULL);
    if (all == NULL)
        return cli_fail(o, -ENOMEM, 0, "out of memory");
    const char *obj = cmd->object;
    if (strcmp(obj, "chunkserver") == 0) {
        json_t *rows =
            cli_cs_rows(json_object_get(all, "chunkservers"), o->format != CLI_FMT_JSON);
        cli_render_table(stdout, o->format, rows, cs_cols, NCOLS(cs_cols));
        json_decref(rows);
    } else if (strcmp(obj, "server") == 0) {
        cli_render_table(stdout, o->format, json_object_get(all, "servers"), server_cols,
                         NCOLS(server_cols));
    } else if (strcmp(obj, "zone") == 0) {
        cli_render_table(stdout, o->format, json_object_get(all, "zones"), zone_cols,
                         NCOLS(zone_cols));
    } else {
        /* pools: physical and logical in one table (JSON keeps them apart) */
        json_t *rows = json_array();
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(all, "physical_pools"), i, p)
        {
            json_t *row = json_deep_copy(p);
            json_object_set_new(row, "kind", json_string("physical"));
            json_array_append_new(rows, row);
        }
        json_array_foreach(json_object_get(all, "logical_pools"), i, p)
        {
            json_t *row = json_deep_copy(p);
            json_object_set_new(row, "kind", json_string("logical"));
            json_array_append_new(rows, row);
        }
        if (o->format == CLI_FMT_JSON) {
            json_t *j =
                json_pack("{s:O, s:O}", "physical_pools", json_object_get(all, "physical_pools"),
                          "logical_pools", json_object_get(all, "logical_pools"));
            cli_render_object(stdout, o->format, j, NULL, 0);
            json_decref(j);
        } else {
            cli_render_table(stdout, o->format, rows, lpool_cols, NCOLS(lpool_cols));
        }
        json_decref(rows);
    }
    json_decref(all);
    return CLI_EXIT_OK;
}

static const struct cli_col copyset_cols[] = {
    {"logical_pool_id", "POOL", CLI_COL_STR},
    {"copyset_id", "COPYSET", CLI_COL_STR},
    {"leader", "LEADER", CLI_COL_STR},
    {"peers", "PEERS", CLI_COL_LIST},
    {"term", "TERM", CLI_COL_STR},
    {"epoch", "EPOCH", CLI_COL_STR},
    {"healthy", "HEALTHY", CLI_COL_STR},
    {"operator", "OPERATOR", CLI_COL_STR},
};
static const struct cli_col copyset_obj_cols[] = {
    {"logical_pool_id", "logical pool", CLI_COL_STR},
    {"copyset_id", "copyset", CLI_COL_STR},
    {"healthy", "healthy", CLI_COL_STR},
    {"leader", "leader", CLI_COL_STR},
    {"leader_addr", "leader address", CLI_COL_STR},
    {"peers", "peers", CLI_COL_LIST},
    {"peer_addrs", "peer addresses", CLI_COL_LIST},
    {"term", "term", CLI_COL_STR},
    {"epoch", "epoch", CLI_COL_STR},
    {"operator", "operator", CLI_COL_STR},
};

int cli_bs_list_copyset(const struct cli_cmd *cmd, struct cli_opts *o, const char **pos, int npos)
{
    struct cli_mds *m;
    int r;
    if ((r = mds_open(o, &m)) != 0)
        return r;
    Curve__Mds__ListCopysetsRequest req = CURVE__MDS__LIST_COPYSETS_REQUEST__INIT;
    if (o->pool) {
        req.has_logical_pool_id = 1;
        req.logical_pool_id = o->pool;
    }
    if (o->chunkserver) {
        req.has_chunkserver_id = 1;
        req.chunkserver_id = o->chunkserver;
    }
    pbm *resp = NULL;
    r = call(o, m, CLI_SVC_TOPOLOGY, CLI_TOPO_LIST_COPYSETS, &req.base,
             &curve__mds__list_copysets_response__descriptor, &resp, "list copysets", "");
    cli_mds_close(m);
    if (r < 0)
        return -r;
    json_t *j = cli_pb_json(resp);
    protobuf_c_message_free_unpacked(resp, NULL);
    if (j == NULL)
        return cli_fail(o, -ENOMEM, 0, "out of memory");
    cli_render_table(stdout, o->format, json_object_get(j, "copysets"), copyset_cols,
                     NCOLS(copyset_cols));
    json_decref(j);
    return CLI_EXIT_OK;
}

int cli_bs_copyset_status(const struct cli_cmd *cmd, struct cli_opts *o, const char **pos, int npos)
{
    uint64_t pool, id;
    if (cli_parse_uint(pos[0], UINT32_MAX, &pool) < 0 || pool == 0)
        return cli_fail(o, -EINVAL, CLI_EXIT_USAGE,
                        "logical pool id '%s': expected an integer from 1 to 4294967295", pos[0]);
    if (cli_parse_uint(pos[1], UINT32_MAX, &id) < 0 || id == 0)
        return cli_fail(o, -EINVAL, CLI_EXIT_USAGE,
                        "copyset id '%s': expected an integer from 1 to 4294967295", pos[1]);
    struct cli_mds *m;
    int r;
    if ((r = mds_open(o, &m)) != 0)
        return r;
    Curve__Mds__GetCopysetRequest req = CURVE__MDS__GET_COPYSET_REQUEST__INIT;
    req.logical_pool_id = (uint32_t)pool;
    req.copyset_id = (uint32_t)id;
    char subject[64];
    snprintf(subject, sizeof(subject), "%" PRIu64 ".%" PRIu64, pool, id);
    pbm *resp = NULL;
    r = call(o, m, CLI_SVC_TOPOLOGY, CLI_TOPO_GET_COPYSET, &req.base,
             &curve__mds__copyset_info__descriptor, &resp, "copyset", subject);
    cli_mds_close(m);
    if (r < 0)
        return -r;
    json_t *j = cli_pb_json(resp);
    protobuf_c_message_free_unpacked(resp, NULL);
    if (j == NULL)
        return cli_fail(o, -ENOMEM, 0, "out of memory");
    cli_render_object(stdout, o->format, j, copyset_obj_cols, NCOLS(copyset_obj_cols));
    json_decref(j);
    return CLI_EXIT_OK;
}
