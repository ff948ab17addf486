/* `curve` argument parsing, command table and validation (docs/cli.md). */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "curve/curve.h"
#include "tools/cli.h"

#define SZ "SIZE"

const struct cli_cmd cli_commands[] = {
    {"bs", "create", "volume", 1, 1, CLI_F_SIZE | CLI_F_OWNER, CLI_F_SIZE,
     "<path> --size=SIZE [--owner=NAME]",
     "create a volume (SIZE e.g. 10g; a multiple of the "
     "segment size)",
     cli_bs_create},
    {"bs", "delete", "volume", 1, 1, CLI_F_FORCE, 0, "<path> [--force]",
     "move a volume to /RecycleBin (--force: purge it at once, unrecoverable)", cli_bs_delete},
    {"bs", "recover", "volume", 1, 1, CLI_F_ID | CLI_F_PAGE, 0, "<path> [--id=ID] [--page-size=N]",
     "restore a deleted volume from /RecycleBin to <path> (--id picks among several)",
     cli_bs_recover},
    {"bs", "rename", "volume", 2, 2, 0, 0, "<from> <to>", "rename a volume or directory",
     cli_bs_rename},
    {"bs", "extend", "volume", 1, 1, CLI_F_SIZE, CLI_F_SIZE, "<path> --size=SIZE",
     "grow a volume to SIZE", cli_bs_extend},
    {"bs", "stat", "volume", 1, 1, 0, 0, "<path>", "show a volume or directory", cli_bs_stat},
    {"bs", "list", "volume", 0, 1, CLI_F_PAGE, 0, "[<dir>] [--page-size=N]",
     "list a directory (default /; /RecycleBin lists deleted volumes), read from the MDS N "
     "entries at a time (default 1000)",
     cli_bs_list_volume},
    {"bs", "mkdir", NULL, 1, 1, CLI_F_OWNER, 0, "<path> [--owner=NAME]", "create a directory",
     cli_bs_mkdir},
    {"bs", "rmdir", NULL, 1, 1, 0, 0, "<path>", "remove an empty directory", cli_bs_rmdir},
    {"bs", "status", NULL, 0, 0, 0, 0, "",
     "cluster health: MDS leader, etcd, chunkservers, copysets, space", cli_bs_status},
    {"bs", "list", "chunkserver", 0, 0, 0, 0, "", "list chunkservers", cli_bs_list_topo},
    {"bs", "list", "server", 0, 0, 0, 0, "", "list servers", cli_bs_list_topo},
    {"bs", "list", "pool", 0, 0, 0, 0, "", "list physical and logical pools", cli_bs_list_topo},
    {"bs", "list", "zone", 0, 0, 0, 0, "", "list zones", cli_bs_list_topo},
    {"bs", "list", "copyset", 0, 0, CLI_F_POOL | CLI_F_CS, 0, "[--pool=ID] [--chunkserver=ID]",
     "list copysets", cli_bs_list_copyset},
    {"bs", "copyset", "status", 2, 2, 0, 0, "<logical pool id> <copyset id>",
     "show one copyset: peers, leader, term, epoch, operator", cli_bs_copyset_status},
    {"cluster", "apply", NULL, 1, 1, 0, 0, "<topology.json>",
     "add the pools, zones, servers and chunkservers of a topology file", cli_cluster_apply},
    {"cluster", "up", NULL, 0, 0, CLI_F_DIR | CLI_F_BIN | CLI_F_WAIT, 0,
     "[--dir=D] [--bin-dir=B] [--wait=60s]",
     "start a local test cluster (etcd, 3 MDS, 3 chunkservers) and wait until healthy",
     cli_cluster_up},
    {"cluster", "down", NULL, 0, 0, CLI_F_DIR, 0, "[--dir=D]",
     "stop the processes `cluster up` started (recorded in D/cluster.json)", cli_cluster_down},
    {"cluster", "status", NULL, 0, 0, CLI_F_DIR, 0, "[--dir=D]",
     "show the processes of a local cluster and whether they run", cli_cluster_status},
    {NULL, NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};

static const struct {
    const char *name;
    unsigned bit;
    bool has_value;
} cli_flags[] = {
    {"size", CLI_F_SIZE, true},      {"force", CLI_F_FORCE, false}, {"id", CLI_F_ID, true},
    {"owner", CLI_F_OWNER, true},    {"dir", CLI_F_DIR, true},      {"pool", CLI_F_POOL, true},
    {"chunkserver", CLI_F_CS, true}, {"wait", CLI_F_WAIT, true},    {"bin-dir", CLI_F_BIN, true},
    {"page-size", CLI_F_PAGE, true},
};

static int usage_err(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
    snprintf(err, errlen, fmt, a, b ? b : "");
    return CLI_EXIT_USAGE;
}

int cli_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    if (s == NULL || !isdigit((unsigned char)s[0]))
        return -EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0')
        return -EINVAL;
    if (errno == ERANGE || v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

int cli_parse_size(const char *s, uint64_t *out)
{
    if (s == NULL || !isdigit((unsigned char)s[0]))
        return -EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE)
        return -ERANGE;
    unsigned shift = 0;
    if (*end != '\0') {
        const char *units = "kmgtp";
        const char *u = strchr(units, tolower((unsigned char)*end));
        if (u == NULL)
            return -EINVAL;
        shift = 10 * (unsigned)(u - units + 1);
        end++;
        if (*end == 'i' || *end == 'I')
            end++;
        if (*end == 'b' || *end == 'B')
            end++;
        if (*end != '\0')
            return -EINVAL;
    }
    if (shift > 0 && v > (UINT64_MAX >> shift))
        return -ERANGE;
    *out = (uint64_t)v << shift;
    return 0;
}

int cli_parse_duration_ms(const char *s, uint64_t *out)
{
    if (s == NULL || !isdigit((unsigned char)s[0]))
        return -EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE)
        return -ERANGE;
    uint64_t mult;
    if (strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "s") == 0 || *end == '\0')
        mult = 1000;
    else if (strcmp(end, "m") == 0)
        mult = 60000;
    else if (strcmp(end, "h") == 0)
        mult = 3600000;
    else
        return -EINVAL;
    if (v > UINT64_MAX / mult)
        return -ERANGE;
    *out = v * mult;
    return 0;
}

int cli_check_path(const char *path, char *err, size_t errlen)
{
    if (path == NULL || path[0] != '/') {
        snprintf(err, errlen, "path '%.200s' must be absolute (start with '/')", path ? path : "");
        return -EINVAL;
    }
    size_t total = strlen(path);
    if (total > CURVE_PATH_MAX) {
        snprintf(err, errlen, "path is %zu bytes long (at most %d)", total, CURVE_PATH_MAX);
        return -EINVAL;
    }
    if (strcmp(path, "/") == 0)
        return 0;
    const char *p = path + 1;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 && slash == NULL && p > path + 1)
            return 0; /* trailing '/' */
        if (n == 0) {
            snprintf(err, errlen, "path '%.200s' has an empty component", path);
            return -EINVAL;
        }
        if (n > CURVE_NAME_MAX) {
            snprintf(err, errlen, "path has a component longer than %d bytes ('%.40s...')",
                     CURVE_NAME_MAX, p);
            return -EINVAL;
        }
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) {
            snprintf(err, errlen, "path '%.200s' may not contain '.' or '..'", path);
            return -EINVAL;
        }
        if (slash == NULL)
            return 0;
        p = slash + 1;
    }
}

static int set_flag(struct cli_opts *o, const char *name, size_t nlen, const char *val,
                    bool *consumed_value, char *err, size_t errlen)
{
    char nm[32];
    if (nlen >= sizeof(nm))
        return usage_err(err, errlen, "unknown option '--%s'%s", name, NULL);
    memcpy(nm, name, nlen);
    nm[nlen] = '\0';
    *consumed_value = false;
    uint64_t v;

    if (strcmp(nm, "help") == 0 || strcmp(nm, "h") == 0) {
        o->help = true;
        return 0;
    }
    if (strcmp(nm, "json") == 0) {
        o->format = CLI_FMT_JSON;
        return 0;
    }
    /* global flags with values */
    if (strcmp(nm, "format") == 0 || strcmp(nm, "mds-addrs") == 0 || strcmp(nm, "conf") == 0 ||
        strcmp(nm, "timeout") == 0) {
        if (val == NULL)
            return usage_err(err, errlen, "option '--%s' needs a value", nm, NULL);
        *consumed_value = true;
        if (nm[0] == 'f') {
            if (strcmp(val, "table") == 0)
                o->format = CLI_FMT_TABLE;
            else if (strcmp(val, "json") == 0)
                o->format = CLI_FMT_JSON;
            else
                return usage_err(err, errlen, "--format=%s: expected 'table' or 'json'", val, NULL);
        } else if (nm[0] == 'm') {
            o->mds_addrs = val;
        } else if (nm[0] == 'c') {
            o->conf = val;
        } else {
            if (cli_parse_duration_ms(val, &v) < 0 || v == 0 || v > CLI_TIMEOUT_MAX)
                return usage_err(err, errlen,
                                 "--timeout=%s: expected a duration like 500ms, 5s or 1m%s", val,
                                 " (at most 1h)");
            o->timeout_ms = (uint32_t)v;
        }
        return 0;
    }
    for (size_t i = 0; i < sizeof(cli_flags) / sizeof(cli_flags[0]); i++) {
        if (strcmp(nm, cli_flags[i].name) != 0)
            continue;
        if (!cli_flags[i].has_value) {
            if (val != NULL && strchr(name, '=') != NULL)
                return usage_err(err, errlen, "option '--%s' takes no value", nm, NULL);
            o->flags_seen |= cli_flags[i].bit;
            o->force = true;
            return 0;
        }
        if (val == NULL)
            return usage_err(err, errlen, "option '--%s' needs a value", nm, NULL);
        *consumed_value = true;
        o->flags_seen |= cli_flags[i].bit;
        int r = 0;
        switch (cli_flags[i].bit) {
        case CLI_F_SIZE:
            r = cli_parse_size(val, &o->size);
            if (r < 0)
                return usage_err(err, errlen, "--size=%s: expected a size like 10g or 512m%s", val,
                                 r == -ERANGE ? " (too large)" : "");
            return 0;
        case CLI_F_ID:
            if (cli_parse_uint(val, UINT64_MAX, &o->id) < 0)
                return usage_err(err, errlen, "--id=%s: expected an unsigned integer%s", val, NULL);
            return 0;
        case CLI_F_POOL:
        case CLI_F_CS:
            if (cli_parse_uint(val, UINT32_MAX, &v) < 0 || v == 0)
                return usage_err(err, errlen, "--%s: expected an id from 1 to 4294967295%s", nm,
                                 NULL);
            if (cli_flags[i].bit == CLI_F_POOL)
                o->pool = (uint32_t)v;
            else
                o->chunkserver = (uint32_t)v;
            return 0;
        case CLI_F_PAGE:
            if (cli_parse_uint(val, CLI_LIST_PAGE_MAX, &v) < 0 || v == 0)
                return usage_err(err, errlen, "--page-size=%s: expected 1 to 4000 entries%s", val,
                                 NULL);
            o->page_size = (uint32_t)v;
            return 0;
        case CLI_F_WAIT:
            r = cli_parse_duration_ms(val, &o->wait_ms);
            if (r < 0 || o->wait_ms == 0 || o->wait_ms > CLI_TIMEOUT_MAX)
                return usage_err(err, errlen, "--wait=%s: expected a duration like 30s or 2m%s",
                                 val, " (at most 1h)");
            return 0;
        case CLI_F_OWNER:
            if (val[0] == '\0' || strlen(val) > CURVE_OWNER_MAX)
                return usage_err(err, errlen, "--owner=%s: 1 to 64 bytes expected%s", val, NULL);
            o->owner = val;
            return 0;
        case CLI_F_DIR:
            if (val[0] == '\0')
                return usage_err(err, errlen, "--dir: empty directory name%s%s", "", NULL);
            o->dir = val;
            return 0;
        case CLI_F_BIN:
            o->bin_dir = val;
            return 0;
        default:
            break;
        }
        (void)r;
    }
    return usage_err(err, errlen, "unknown option '--%s'%s", nm, NULL);
}

int cli_parse(int argc, char **argv, struct cli_opts *o, char *err, size_t errlen)
{
    memset(o, 0, sizeof(*o));
    o->format = CLI_FMT_TABLE;
    o->timeout_ms = CLI_TIMEOUT_MS;
    bool only_words = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!only_words && strcmp(a, "--") == 0) {
            only_words = true;
            continue;
        }
        if (!only_words && strcmp(a, "-h") == 0) {
            o->help = true;
            continue;
        }
        if (!only_words && a[0] == '-' && a[1] == '-') {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
            const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[i + 1] : NULL);
            bool consumed;
            int r = set_flag(o, name, nlen, val, &consumed, err, errlen);
            if (r != 0)
                return r;
            if (consumed && eq == NULL)
                i++;
            continue;
        }
        if (!only_words && a[0] == '-' && a[1] != '\0' && !isdigit((unsigned char)a[1]))
            return usage_err(err, errlen, "unknown option '%s' (options start with '--')%s", a,
                             NULL);
        if (o->nwords == (int)(sizeof(o->words) / sizeof(o->words[0])))
            return usage_err(err, errlen, "too many arguments (at '%s')%s", a, NULL);
        o->words[o->nwords++] = a;
    }
    if (o->mds_addrs == NULL)
        o->mds_addrs = getenv("CURVE_MDS_ADDRS");
    if (o->conf == NULL)
        o->conf = getenv("CURVE_CONF");
    return 0;
}

static void flags_usage(char *buf, size_t len, unsigned bits)
{
    buf[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < sizeof(cli_flags) / sizeof(cli_flags[0]); i++) {
        if (!(bits & cli_flags[i].bit))
            continue;
        int n = snprintf(buf + used, len - used, "%s--%s", used ? ", " : "", cli_flags[i].name);
        if (n < 0 || (size_t)n >= len - used)
            return;
        used += (size_t)n;
    }
}

int cli_lookup(const struct cli_opts *o, const struct cli_cmd **cmd, const char ***pos, int *npos,
               char *err, size_t errlen)
{
    *cmd = NULL;
    if (o->nwords < 1)
        return usage_err(err, errlen, "no command given%s%s", "", NULL);
    bool group_ok = false, verb_ok = false;
    const struct cli_cmd *found = NULL;
    int used = 0;
    for (const struct cli_cmd *c = cli_commands; c->group != NULL; c++) {
        if (strcmp(c->group, o->words[0]) != 0)
            continue;
        group_ok = true;
        if (o->nwords < 2 || strcmp(c->verb, o->words[1]) != 0)
            continue;
        verb_ok = true;
        if (c->object == NULL) {
            found = c;
            used = 2;
            break;
        }
        if (o->nwords >= 3 && strcmp(c->object, o->words[2]) == 0) {
            found = c;
            used = 3;
            break;
        }
    }
    if (!group_ok)
        return usage_err(err, errlen, "unknown command group '%s' (expected bs or cluster)%s",
                         o->words[0], NULL);
    if (o->nwords < 2)
        return usage_err(err, errlen, "'%s' needs a command%s", o->words[0], NULL);
    if (!verb_ok)
        return usage_err(err, errlen, "unknown command '%s %s'", o->words[0], o->words[1]);
    if (found == NULL) {
        if (o->nwords < 3)
            return usage_err(err, errlen, "'%s %s' needs an object", o->words[0], o->words[1]);
        snprintf(err, errlen, "unknown object '%s' for '%s %s'", o->words[2], o->words[0],
                 o->words[1]);
        return CLI_EXIT_USAGE;
    }
    *cmd = found;
    *pos = (const char **)&o->words[used];
    *npos = o->nwords - used;
    if (*npos < found->min_pos) {
        snprintf(err, errlen, "missing argument: expected %s", found->args);
        return CLI_EXIT_USAGE;
    }
    if (*npos > found->max_pos) {
        snprintf(err, errlen, "unexpected argument '%s'", (*pos)[found->max_pos]);
        return CLI_EXIT_USAGE;
    }
    unsigned extra = o->flags_seen & ~found->flags;
    if (extra) {
        char names[128];
        flags_usage(names, sizeof(names), extra);
        snprintf(err, errlen, "option %s not accepted by this command", names);
        return CLI_EXIT_USAGE;
    }
    unsigned missing = found->required & ~o->flags_seen;
    if (missing) {
        char names[128];
        flags_usage(names, sizeof(names), missing);
        snprintf(err, errlen, "option %s is required", names);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

static void cmd_line(FILE *f, const struct cli_cmd *c)
{
    char head[64];
    snprintf(head, sizeof(head), "%s %s%s%s", c->group, c->verb, c->object ? " " : "",
             c->object ? c->object : "");
    fprintf(f, "  curve %-26s %s\n", head, c->args);
    fprintf(f, "        %-26s %s\n", "", c->help);
}

void cli_usage(FILE *f, const struct cli_cmd *cmd, const char *group)
{
    if (cmd != NULL) {
        fprintf(f, "usage:\n");
        cmd_line(f, cmd);
    } else {
        fprintf(f, "usage: curve <group> <command> [object] [arguments] [options]\n\n"
                   "commands:\n");
        for (const struct cli_cmd *c = cli_commands; c->group != NULL; c++)
            if (group == NULL || strcmp(group, c->group) == 0)
                cmd_line(f, c);
    }
    fprintf(f, "\nglobal options:\n"
               "  --mds-addrs=IP:PORT[,IP:PORT...]  MDS addresses (env CURVE_MDS_ADDRS)\n"
               "  --conf=FILE                       libcurve client conf with mds.addrs "
               "(env CURVE_CONF)\n"
               "  --format=table|json               output format (--json = --format=json)\n"
               "  --timeout=DURATION                per-RPC timeout (default 5s)\n"
               "exit codes: 0 ok, 1 failed, 2 usage, 3 not found, 4 cluster unavailable or "
               "timeout (docs/cli.md)\n");
}

int cli_exit_code(int err)
{
    if (err >= 0)
        return CLI_EXIT_OK;
    switch (err) {
    case CURVE_ERR_NOT_FOUND:
    case -ENOENT:
        return CLI_EXIT_NOT_FOUND;
    case CURVE_ERR_TIMEOUT:
    case CURVE_ERR_RPC_CONN:
    case CURVE_ERR_NOT_LEADER:
    case CURVE_ERR_SHUTDOWN:
    case CURVE_ERR_ETCD:
    case CURVE_ERR_RPC_OVERLOAD:
    case -ETIMEDOUT:
    case -ECONNREFUSED:
        return CLI_EXIT_UNAVAILABLE;
    default:
        return CLI_EXIT_FAIL;
    }
}
