/*
 * `curve cluster ...`: apply a topology, and the one-command local test cluster
 * (docs/cli.md "Local cluster"):
 *
 *   up     etcd + 3 curve-mds + 3 curve-chunkserver on loopback, small sizes (4 MiB chunks,
 *          64 MiB segments), topology of 3 zones applied, waits (bounded) until healthy.
 *          Every process, its argv, ports and log are recorded in D/cluster.json.
 *   down   stops exactly the recorded processes: each PID is checked against its recorded
 *          command line (/proc/<pid>/cmdline) before any signal; SIGTERM, then SIGKILL after
 *          CLUSTER_STOP_TIMEOUT_MS.
 *   status the recorded processes and whether each is still running.
 *
 * Ports are found free at run time (bind port 0, close, reuse): racy by nature. A daemon that
 * loses the race exits; `up` then stops everything and fails naming that daemon's log (run it
 * again). Restarting just that daemon on another port is not done: the MDS addresses are given
 * to every other process up front.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/assert.h"
#include "common/clock.h"
#include "common/crc32c.h"
#include "curve/errors.h"
#include "mds.pb-c.h"
#include "tools/cli.h"
#include "tools/cli_mds.h"

#define CLUSTER_DEFAULT_DIR     "/tmp/curve-cluster"
#define CLUSTER_MDS             3
#define CLUSTER_CS              3
#define CLUSTER_PROCS_MAX       (1 + CLUSTER_MDS + CLUSTER_CS)
#define CLUSTER_ARGS_MAX        32
#define CLUSTER_WAIT_DEFAULT_MS 120000u /* bound of `up` waiting for health */
#define CLUSTER_STOP_TIMEOUT_MS 10000u  /* SIGTERM -> SIGKILL */
#define CLUSTER_POLL_MS         100u
#define CLUSTER_CHUNK           "4m"
#define CLUSTER_SEGMENT         "64m"
#define CLUSTER_POOL_FILES      "48" /* chunk files formatted per chunkserver (192 MiB) */
#define CLUSTER_COPYSETS        24
#define CLUSTER_STATE_MAX       (1u << 20) /* bytes of cluster.json */
#define CLUSTER_PID_MAX         4194304    /* Linux PID_MAX_LIMIT */

typedef ProtobufCMessage pbm;

struct cproc {
    char name[16];
    char log[PATH_MAX];
    int nargs;
    char *argv[CLUSTER_ARGS_MAX + 1];
    pid_t pid;
    int port;
};

struct cluster {
    char dir[PATH_MAX];
    char bin_mds[PATH_MAX], bin_cs[PATH_MAX], bin_etcd[PATH_MAX];
    int etcd_port, etcd_peer_port;
    char mds_addrs[CLUSTER_MDS * 24];
    int nprocs;
    struct cproc procs[CLUSTER_PROCS_MAX];
};

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int r = 0;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        r = -errno;
    close(fd);
    return r < 0 ? r : ntohs(sa.sin_port);
}

/* True when `port` can be bound on `ip` (127.0.0.x) now. */
static bool port_bindable(const char *ip, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    bool ok = inet_pton(AF_INET, ip, &sa.sin_addr) == 1 &&
              bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* Ports of a stopped cluster recorded in the directory: `up` on it starts the same cluster
 * again, so every daemon must get its old address back (the chunkservers registered theirs
 * with the MDS, and the MDS addresses are in client.conf). */
struct prev_ports {
    bool have;
    int etcd, etcd_peer, mds[CLUSTER_MDS], cs[CLUSTER_CS];
};

/* Records `port` for the daemon called `name` (etcd, etcd_peer, mdsN, csN); others ignored. */
static void note_port(struct prev_ports *pp, const char *name, int port)
{
    int k;
    if (port <= 0 || port > 65535)
        return;
    if (strcmp(name, "etcd") == 0)
        pp->etcd = port;
    else if (strcmp(name, "etcd_peer") == 0)
        pp->etcd_peer = port;
    else if (sscanf(name, "mds%d", &k) == 1 && k >= 1 && k <= CLUSTER_MDS)
        pp->mds[k - 1] = port;
    else if (sscanf(name, "cs%d", &k) == 1 && k >= 1 && k <= CLUSTER_CS)
        pp->cs[k - 1] = port;
}

/* Sets pp->have when every daemon has a port. */
static void ports_check_complete(struct prev_ports *pp)
{
    bool all = pp->etcd > 0 && pp->etcd_peer > 0;
    for (int i = 0; i < CLUSTER_MDS; i++)
        all = all && pp->mds[i] > 0;
    for (int i = 0; i < CLUSTER_CS; i++)
        all = all && pp->cs[i] > 0;
    pp->have = all;
}

static void remember_ports(const struct cluster *c, struct prev_ports *pp)
{
    memset(pp, 0, sizeof(*pp));
    for (int i = 0; i < c->nprocs; i++) {
        const struct cproc *p = &c->procs[i];
        note_port(pp, p->name, p->port);
        int peer = 0;
        if (strcmp(p->name, "etcd") == 0)
            for (int a = 0; a < p->nargs; a++)
                (void)sscanf(p->argv[a], "--listen-peer-urls=http://127.0.0.1:%d", &peer);
        if (peer)
            note_port(pp, "etcd_peer", peer);
    }
    ports_check_complete(pp);
}

static int write_text(const char *dir, const char *name, const char *text);

/* D/ports: the same ports in a file of their own, written once a start has spawned every
 * daemon, so that a later `up` that failed half-way (which rewrites cluster.json with what it
 * had started) does not lose the chunkservers' registered ports. Lines "<name> <port>". */
#define CLUSTER_PORTS_FILE "ports"

static void read_ports_file(const char *dir, struct prev_ports *pp)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/" CLUSTER_PORTS_FILE, dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    struct prev_ports q = {0};
    char name[16];
    int port, n = 0;
    while (n < 64 && fscanf(f, "%15s %d", name, &port) == 2) {
        n++;
        note_port(&q, name, port);
    }
    fclose(f);
    ports_check_complete(&q);
    if (q.have)
        *pp = q;
}

static void write_ports_file(const struct cluster *c)
{
    char text[512], tmp[PATH_MAX + 16], path[PATH_MAX + 16];
    size_t n = (size_t)snprintf(text, sizeof(text), "etcd %d\netcd_peer %d\n", c->etcd_port,
                                c->etcd_peer_port);
    for (int i = 0; i < c->nprocs && n < sizeof(text); i++)
        if (strcmp(c->procs[i].name, "etcd") != 0)
            n += (size_t)snprintf(text + n, sizeof(text) - n, "%s %d\n", c->procs[i].name,
                                  c->procs[i].port);
    snprintf(tmp, sizeof(tmp), "%s/" CLUSTER_PORTS_FILE ".tmp", c->dir);
    snprintf(path, sizeof(path), "%s/" CLUSTER_PORTS_FILE, c->dir);
    if (write_text(c->dir, CLUSTER_PORTS_FILE ".tmp", text) == 0 && rename(tmp, path) != 0)
        (void)unlink(tmp);
}

/* 0 when every recorded port can be bound again, else -EADDRINUSE naming the first one. */
static int prev_ports_free(const struct prev_ports *pp, char *err, size_t errlen)
{
    struct port_use {
        const char *who;
        int port, host;
    } all[2 + CLUSTER_MDS + CLUSTER_CS];
    int n = 0;
    all[n++] = (struct port_use){"etcd", pp->etcd, 1};
    all[n++] = (struct port_use){"etcd (peer)", pp->etcd_peer, 1};
    for (int i = 0; i < CLUSTER_MDS; i++)
        all[n++] = (struct port_use){"an MDS", pp->mds[i], 1};
    for (int i = 0; i < CLUSTER_CS; i++)
        all[n++] = (struct port_use){"a chunkserver", pp->cs[i], i + 1};
    for (int i = 0; i < n; i++) {
        char ip[16];
        snprintf(ip, sizeof(ip), "127.0.0.%d", all[i].host);
        if (!port_bindable(ip, all[i].port)) {
            snprintf(err, errlen,
                     "port %s:%d of %s recorded in cluster.json is in use (stop what uses it, "
                     "or remove the directory for a new cluster)",
                     ip, all[i].port, all[i].who);
            return -EADDRINUSE;
        }
    }
    return 0;
}

/* The recorded port of a restarted cluster, else a free one. */
static int pick_port(const struct prev_ports *pp, int recorded)
{
    return pp->have ? recorded : free_port();
}

/* ---- finding binaries ---- */

static bool executable(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0;
}

/* Looks for `name` in --bin-dir, then around the build dir of this `curve` executable
 * (<build>/tools/curve -> <build>/src/<sub>/), then PATH. */
static int find_binary(const struct cli_opts *o, const char *name, const char *sub, char *out,
                       size_t outlen)
{
    char self[PATH_MAX];
    if (o->bin_dir != NULL) {
        snprintf(out, outlen, "%s/%s", o->bin_dir, name);
        if (executable(out))
            return 0;
    }
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash != NULL) {
            *slash = '\0';
            snprintf(out, outlen, "%s/%s", self, name);
            if (executable(out))
                return 0;
            slash = strrchr(self, '/');
            if (sub != NULL && slash != NULL) {
                *slash = '\0'; /* <build>/tools -> <build> */
                snprintf(out, outlen, "%s/src/%s/%s", self, sub, name);
                if (executable(out))
                    return 0;
            }
        }
    }
    const char *path = getenv("PATH");
    while (path != NULL && *path != '\0') {
        size_t len = strcspn(path, ":");
        snprintf(out, outlen, "%.*s/%s", (int)len, path, name);
        if (len > 0 && executable(out))
            return 0;
        path += len + (path[len] == ':');
    }
    return -ENOENT;
}

/* ---- cluster.json ---- */

/* crc32c of the record without its "crc32c" member, serialized compactly with sorted keys
 * (the same bytes as Python's json.dumps(obj, separators=(",", ":"), sort_keys=True,
 * ensure_ascii=False) for the values we store). */
static int state_crc(const json_t *j, uint32_t *out)
{
    json_t *copy = json_copy((json_t *)j);
    if (copy == NULL)
        return -ENOMEM;
    json_object_del(copy, "crc32c");
    char *text = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(copy);
    if (text == NULL)
        return -ENOMEM;
    *out = curve_crc32c(0, text, strlen(text));
    free(text);
    return 0;
}

static int save_state(const struct cluster *c)
{
    json_t *procs = json_array();
    for (int i = 0; i < c->nprocs; i++) {
        const struct cproc *p = &c->procs[i];
        json_t *argv = json_array();
        for (int k = 0; k < p->nargs; k++)
            json_array_append_new(argv, json_string(p->argv[k]));
        json_array_append_new(procs,
                              json_pack("{s:s, s:i, s:i, s:s, s:o}", "name", p->name, "pid",
                                        (int)p->pid, "port", p->port, "log", p->log, "argv", argv));
    }
    char etcd[64];
    snprintf(etcd, sizeof(etcd), "http://127.0.0.1:%d", c->etcd_port);
    json_t *j = json_pack("{s:i, s:s, s:s, s:s, s:o}", "version", 1, "dir", c->dir, "etcd", etcd,
                          "mds_addrs", c->mds_addrs, "procs", procs);
    uint32_t crc;
    if (j == NULL || state_crc(j, &crc) < 0) {
        json_decref(j);
        return -ENOMEM;
    }
    json_object_set_new(j, "crc32c", json_integer(crc));
    char path[PATH_MAX + 32], tmp[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/cluster.json", c->dir);
    snprintf(tmp, sizeof(tmp), "%s/cluster.json.tmp", c->dir);
    int r = json_dump_file(j, tmp, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    int fd = r == 0 ? open(tmp, O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0 || fsync(fd) != 0)
        r = -1;
    if (fd >= 0)
        close(fd);
    if (r != 0 || rename(tmp, path) != 0)
        return -EIO;
    return 0;
}

static void free_procs(struct cluster *c)
{
    for (int i = 0; i < c->nprocs; i++)
        for (int k = 0; k < c->procs[i].nargs; k++)
            free(c->procs[i].argv[k]);
    c->nprocs = 0;
}

/* Parses and validates a cluster.json record (crc32c, every field, bounds) into *c (whose dir
 * the caller set). `name` names the record in errors. Returns 0 or -EINVAL (err says why). */
static int parse_state(const char *text, size_t len, const char *name, struct cluster *c, char *err,
                       size_t errlen)
{
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL) {
        snprintf(err, errlen, "%s:%d: %s", name, je.line, je.text);
        return -EINVAL;
    }
    const char *addrs = NULL;
    json_t *procs = NULL;
    json_int_t version = 0, crc = -1;
    uint32_t want;
    if (json_unpack_ex(j, &je, 0, "{s:I, s:s, s:o, s:I}", "version", &version, "mds_addrs", &addrs,
                       "procs", &procs, "crc32c", &crc) != 0 ||
        !json_is_array(procs) || json_array_size(procs) > CLUSTER_PROCS_MAX) {
        snprintf(err, errlen, "%s: malformed (%s)", name, je.text);
        goto err_after_load;
    }
    if (version != 1) {
        snprintf(err, errlen, "%s: unknown version %" JSON_INTEGER_FORMAT, name, version);
        goto err_after_load;
    }
    if (state_crc(j, &want) < 0 || crc != (json_int_t)want) {
        snprintf(err, errlen, "%s: crc32c mismatch (corrupt or edited by hand)", name);
        goto err_after_load;
    }
    snprintf(c->mds_addrs, sizeof(c->mds_addrs), "%s", addrs);
    size_t i;
    json_t *p;
    json_array_foreach(procs, i, p)
    {
        struct cproc *cp = &c->procs[c->nprocs];
        const char *pname, *log;
        json_int_t pid, port;
        json_t *argv;
        if (json_unpack_ex(p, &je, 0, "{s:s, s:I, s:I, s:s, s:o}", "name", &pname, "pid", &pid,
                           "port", &port, "log", &log, "argv", &argv) != 0 ||
            !json_is_array(argv) || json_array_size(argv) == 0 ||
            json_array_size(argv) > CLUSTER_ARGS_MAX || pid <= 1 || pid > CLUSTER_PID_MAX ||
            port < 0 || port > 65535) {
            snprintf(err, errlen, "%s: procs[%zu] malformed", name, i);
            goto err_after_procs;
        }
        snprintf(cp->name, sizeof(cp->name), "%s", pname);
        snprintf(cp->log, sizeof(cp->log), "%s", log);
        cp->pid = (pid_t)pid;
        cp->port = (int)port;
        c->nprocs++;
        size_t k;
        json_t *a;
        json_array_foreach(argv, k, a)
        {
            if (!json_is_string(a)) {
                snprintf(err, errlen, "%s: procs[%zu].argv[%zu] is not a string", name, i, k);
                goto err_after_procs;
            }
            char *dup = strdup(json_string_value(a));
            if (dup == NULL) {
                snprintf(err, errlen, "out of memory");
                goto err_after_procs;
            }
            cp->argv[cp->nargs++] = dup;
        }
    }
    json_decref(j);
    return 0;

err_after_procs:
    free_procs(c);
err_after_load:
    json_decref(j);
    return -EINVAL;
}

int cli_cluster_check_state(const char *text, size_t len, char *err, size_t errlen)
{
    static struct cluster c; /* large: not on the stack */
    memset(&c, 0, sizeof(c));
    int r = parse_state(text, len, "cluster.json", &c, err, errlen);
    free_procs(&c);
    return r;
}

/* Loads D/cluster.json. Returns 0, -ENOENT or -EINVAL (err says). */
static int load_state(const char *dir, struct cluster *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->dir, sizeof(c->dir), "%s", dir);
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/cluster.json", dir);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT) {
            snprintf(err, errlen, "no cluster recorded in %s (no cluster.json)", dir);
            return -ENOENT;
        }
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -EINVAL;
    }
    char *buf = malloc(CLUSTER_STATE_MAX + 1);
    size_t n = buf ? fread(buf, 1, CLUSTER_STATE_MAX + 1, f) : 0;
    fclose(f);
    if (buf == NULL || n > CLUSTER_STATE_MAX) {
        free(buf);
        snprintf(err, errlen, "%s: %s", path, buf ? "larger than 1 MiB" : "out of memory");
        return -EINVAL;
    }
    int r = parse_state(buf, n, path, c, err, errlen);
    free(buf);
    return r;
}

/* ---- processes ---- */

/* True when `pid` runs exactly the recorded argv (so it is ours and not a reused PID). */
static bool proc_matches(const struct cproc *p)
{
    char path[64], buf[8192];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)p->pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n <= 0)
        return false; /* exited (zombie: empty cmdline) */
    size_t off = 0;
    for (int k = 0; k < p->nargs; k++) {
        size_t len = strlen(p->argv[k]) + 1;
        if (off + len > (size_t)n || memcmp(buf + off, p->argv[k], len) != 0)
            return false;
        off += len;
    }
    return off == (size_t)n;
}

/* Starts p->argv in its own session with output to p->log. Returns once the exec succeeded
 * (a close-on-exec pipe reports an exec failure), so /proc/<pid>/cmdline is the daemon's. */
static int spawn(struct cluster *c, struct cproc *p)
{
    int fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fd);
        close(pfd[0]);
        close(pfd[1]);
        return -e;
    }
    if (pid == 0) {
        /* child: own session (survives the CLI), stdin from /dev/null, output to the log */
        close(pfd[0]);
        setsid();
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        int e = 0;
        if (chdir(c->dir) != 0)
            e = errno;
        else
            execv(p->argv[0], p->argv);
        e = e ? e : errno;
        dprintf(2, "curve cluster: exec %s: %s\n", p->argv[0], strerror(e));
        if (write(pfd[1], &e, sizeof(e)) < 0)
            _exit(127);
        _exit(127);
    }
    close(fd);
    close(pfd[1]);
    int child_err = 0;
    ssize_t n;
    do {
        n = read(pfd[0], &child_err, sizeof(child_err));
    } while (n < 0 && errno == EINTR);
    close(pfd[0]);
    if (n > 0) {
        waitpid(pid, NULL, 0);
        return -(child_err ? child_err : ENOEXEC);
    }
    p->pid = pid;
    return 0;
}

static bool reap_exited(pid_t pid)
{
    int st;
    return waitpid(pid, &st, WNOHANG) == pid;
}

/* Sends SIGTERM (after checking the PID is still ours), waits, then SIGKILL. Returns 0 when it
 * is gone, 1 when it was not running (or the PID belongs to someone else now). */
static int stop_proc(const struct cproc *p)
{
    if (!proc_matches(p))
        return 1;
    kill(p->pid, SIGTERM);
    uint64_t deadline = curve_now_mono_ms() + CLUSTER_STOP_TIMEOUT_MS;
    while (curve_now_mono_ms() < deadline) {
        reap_exited(p->pid);
        if (!proc_matches(p))
            return 0;
        sleep_ms(CLUSTER_POLL_MS);
    }
    if (proc_matches(p)) {
        fprintf(stderr, "curve: %s (pid %d) ignored SIGTERM for %u ms: SIGKILL\n", p->name,
                (int)p->pid, CLUSTER_STOP_TIMEOUT_MS);
        kill(p->pid, SIGKILL);
        deadline = curve_now_mono_ms() + CLUSTER_STOP_TIMEOUT_MS;
        while (curve_now_mono_ms() < deadline && proc_matches(p)) {
            reap_exited(p->pid);
            sleep_ms(CLUSTER_POLL_MS);
        }
    }
    return 0;
}

static void add_arg(struct cproc *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_arg(struct cproc *p, const char *fmt, ...)
{
    CURVE_STATIC_ASSERT(CLUSTER_ARGS_MAX >= 24, "room for the daemons' arguments");
    if (p->nargs >= CLUSTER_ARGS_MAX)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) >= 0)
        p->argv[p->nargs++] = s;
    va_end(ap);
}

static struct cproc *new_proc(struct cluster *c, const char *name, const char *bin)
{
    CURVE_ASSERT(c->nprocs < CLUSTER_PROCS_MAX);
    struct cproc *p = &c->procs[c->nprocs++];
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", name);
    snprintf(p->log, sizeof(p->log), "%s/logs/%s.log", c->dir, name);
    add_arg(p, "%s", bin);
    return p;
}

static int mkdir_p(const char *dir)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", dir);
    for (char *s = tmp + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return -errno;
        *s = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static bool any_running(const struct cluster *c)
{
    for (int i = 0; i < c->nprocs; i++)
        if (proc_matches(&c->procs[i]))
            return true;
    return false;
}

static void stop_all(struct cluster *c)
{
    for (int i = c->nprocs - 1; i >= 0; i--)
        stop_proc(&c->procs[i]);
}

/* Waits until etcd answers /health (through the HTTP port: a TCP connect suffices as a first
 * sign, then the MDS checks etcd itself). */
static int wait_port(struct cluster *c, struct cproc *p, int port, uint64_t deadline)
{
    while (curve_now_mono_ms() < deadline) {
        if (reap_exited(p->pid))
            return -ECHILD;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int r = fd >= 0 ? connect(fd, (struct sockaddr *)&sa, sizeof(sa)) : -1;
        if (fd >= 0)
            close(fd);
        if (r == 0)
            return 0;
        sleep_ms(CLUSTER_POLL_MS);
    }
    return CURVE_ERR_TIMEOUT;
}

static int mds_status(struct cli_mds *m, Curve__Mds__ClusterStatusResponse **s, char *err,
                      size_t errlen)
{
    Curve__Mds__ClusterStatusRequest req = CURVE__MDS__CLUSTER_STATUS_REQUEST__INIT;
    return cli_mds_call(m, CLI_SVC_STATUS, CLI_STATUS_CLUSTER, &req.base,
                        &curve__mds__cluster_status_response__descriptor, (pbm **)s, err, errlen);
}

static int apply_topology(struct cli_mds *m, const char *json, char *err, size_t errlen,
                          Curve__Mds__ApplyTopologyResponse **resp)
{
    Curve__Mds__ApplyTopologyRequest req = CURVE__MDS__APPLY_TOPOLOGY_REQUEST__INIT;
    req.json = (char *)json;
    return cli_mds_call(m, CLI_SVC_TOPOLOGY, CLI_TOPO_APPLY, &req.base,
                        &curve__mds__apply_topology_response__descriptor, (pbm **)resp, err,
                        errlen);
}

static int read_file(const char *path, char **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        int e = errno;
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(e));
        return -e;
    }
    const size_t max = 4u << 20; /* the MDS's MDS_TOPO_DESC_MAX */
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    fclose(f);
    if (buf == NULL)
        return -ENOMEM;
    if (n > max) {
        free(buf);
        snprintf(err, errlen, "%s is larger than 4 MiB", path);
        return -EFBIG;
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

int cli_cluster_apply(const struct cli_cmd *cmd, struct cli_opts *o, const char **pos, int npos)
{
    char err[CLI_ERR_MAX];
    char *json = NULL;
    int r = read_file(pos[0], &json, err, sizeof(err));
    if (r < 0)
        return cli_fail(o, r, CLI_EXIT_FAIL, "cluster apply: %s", err);
    json_error_t je;
    json_t *parsed = json_loads(json, JSON_REJECT_DUPLICATES, &je);
    if (parsed == NULL) {
        free(json);
        return cli_fail(o, -EINVAL, CLI_EXIT_FAIL, "cluster apply: %s:%d:%d: %s", pos[0], je.line,
                        je.column, je.text);
    }
    json_decref(parsed);
    struct cli_mds *m;
    r = cli_mds_open(o, &m, err, sizeof(err));
    if (r != 0) {
        free(json);
        return cli_fail(o, -EINVAL, r, "%s", err);
    }
    Curve__Mds__ApplyTopologyResponse *resp = NULL;
    r = apply_topology(m, json, err, sizeof(err), &resp);
    cli_mds_close(m);
    free(json);
    if (r < 0)
        return cli_fail(o, r, 0, "cluster apply %s: %s (%s)", pos[0], err, curve_errname(r));
    json_t *j = cli_pb_json(&resp->base);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    cli_render_object(stdout, o->format, j, NULL, 0);
    json_decref(j);
    return CLI_EXIT_OK;
}

static const char *cluster_dir(const struct cli_opts *o)
{
    if (o->dir != NULL)
        return o->dir;
    const char *e = getenv("CURVE_CLUSTER_DIR");
    return e != NULL ? e : CLUSTER_DEFAULT_DIR;
}

static int write_text(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -errno;
    fputs(text, f);
    return fclose(f) == 0 ? 0 : -EIO;
}

static int up_fail(struct cli_opts *o, struct cluster *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int up_fail(struct cli_opts *o, struct cluster *c, int err, const char *fmt, ...)
{
    char msg[CLI_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    stop_all(c);
    save_state(c);
    free_procs(c);
    return cli_fail(o, err, 0, "cluster up: %s (stopped what was started; logs in %s/logs)", msg,
                    c->dir);
}

static const char *topology_json(char *buf, size_t len)
{
    snprintf(buf, len,
             "{\"physical_pools\": [{\"name\": \"pp1\"}],\n"
             " \"zones\": [{\"name\": \"z1\", \"physical_pool\": \"pp1\"},\n"
             "           {\"name\": \"z2\", \"physical_pool\": \"pp1\"},\n"
             "           {\"name\": \"z3\", \"physical_pool\": \"pp1\"}],\n"
             " \"servers\": [{\"name\": \"s1\", \"zone\": \"z1\", \"host\": \"127.0.0.1\"},\n"
             "             {\"name\": \"s2\", \"zone\": \"z2\", \"host\": \"127.0.0.2\"},\n"
             "             {\"name\": \"s3\", \"zone\": \"z3\", \"host\": \"127.0.0.3\"}],\n"
             " \"logical_pools\": [{\"name\": \"lp1\", \"physical_pool\": \"pp1\", "
             "\"replicas\": 3, \"copysets\": %d}]}\n",
             CLUSTER_COPYSETS);
    return buf;
}

int cli_cluster_up(const struct cli_cmd *cmd, struct cli_opts *o, const char **pos, int npos)
{
    static struct cluster cl;
    struct cluster *c = &cl;
    char err[CLI_ERR_MAX];
    const char *dir = cluster_dir(o);
    uint64_t wait_ms = o->wait_ms ? o->wait_ms : CLUSTER_WAIT_DEFAULT_MS;
    uint64_t deadline = curve_now_mono_ms() + wait_ms;

    struct prev_ports pp = {0};
    if (load_state(dir, c, err, sizeof(err)) == 0) {
        bool running = any_running(c);
        remember_ports(c, &pp);
        free_procs(c);
        if (running)
            return cli_fail(o, -EEXIST, CLI_EXIT_FAIL,
                            "cluster up: a cluster recorded in %s is still running (curve "
                            "cluster down --dir=%s)",
                            dir, dir);
    }
    if (!pp.have)
        read_ports_file(dir, &pp);
    if (pp.have && prev_ports_free(&pp, err, sizeof(err)) < 0)
        return cli_fail(o, -EADDRINUSE, CLI_EXIT_FAIL, "cluster up: %s", err);
    if (!pp.have) {
        /* chunkservers registered at ports nobody recorded: new ones would never be accepted */
        char dat[PATH_MAX + 32];
        snprintf(dat, sizeof(dat), "%s/cs1/chunkserver.dat", dir);
        if (access(dat, F_OK) == 0)
            return cli_fail(o, -EINVAL, CLI_EXIT_FAIL,
                            "cluster up: %s holds a cluster whose ports are not recorded (no "
                            "complete cluster.json or " CLUSTER_PORTS_FILE
                            "): remove the directory for a new cluster",
                            dir);
    }
    memset(c, 0, sizeof(*c));
    if (realpath(dir, c->dir) == NULL) {
        int r = mkdir_p(dir);
        if (r < 0 || realpath(dir, c->dir) == NULL)
            return cli_fail(o, r < 0 ? r : -errno, CLI_EXIT_FAIL, "cluster up: cannot create %s",
                            dir);
    }
    char sub[PATH_MAX + 32];
    snprintf(sub, sizeof(sub), "%s/logs", c->dir);
    mkdir_p(sub);
    if (find_binary(o, "curve-mds", "mds", c->bin_mds, sizeof(c->bin_mds)) < 0 ||
        find_binary(o, "curve-chunkserver", "chunkserver", c->bin_cs, sizeof(c->bin_cs)) < 0 ||
        find_binary(o, "etcd", NULL, c->bin_etcd, sizeof(c->bin_etcd)) < 0)
        return cli_fail(o, -ENOENT, CLI_EXIT_FAIL,
                        "cluster up: etcd, curve-mds and curve-chunkserver must be next to "
                        "curve, in its build dir (src/mds, src/chunkserver), in --bin-dir or "
                        "in PATH");

    /* etcd */
    c->etcd_port = pick_port(&pp, pp.etcd);
    c->etcd_peer_port = pick_port(&pp, pp.etcd_peer);
    struct cproc *etcd = new_proc(c, "etcd", c->bin_etcd);
    add_arg(etcd, "--name=n1");
    add_arg(etcd, "--data-dir=%s/etcd", c->dir);
    add_arg(etcd, "--listen-client-urls=http://127.0.0.1:%d", c->etcd_port);
    add_arg(etcd, "--advertise-client-urls=http://127.0.0.1:%d", c->etcd_port);
    add_arg(etcd, "--listen-peer-urls=http://127.0.0.1:%d", c->etcd_peer_port);
    add_arg(etcd, "--initial-advertise-peer-urls=http://127.0.0.1:%d", c->etcd_peer_port);
    add_arg(etcd, "--initial-cluster=n1=http://127.0.0.1:%d", c->etcd_peer_port);
    etcd->port = c->etcd_port;
    int r = spawn(c, etcd);
    if (r < 0)
        return up_fail(o, c, r, "start etcd: %s", strerror(-r));
    save_state(c);
    r = wait_port(c, etcd, c->etcd_port, deadline);
    if (r < 0)
        return up_fail(o, c, CURVE_ERR_TIMEOUT, "etcd did not start (%s)", etcd->log);

    /* 3 MDS: addresses fixed up front so that every client and chunkserver gets the list.
     * Daemon keys are spelled with '_': the daemons rewrite "--a-b" to "--a_b" inside argv,
     * which would change /proc/<pid>/cmdline, the identity check of `down`. */
    size_t used = 0;
    for (int i = 0; i < CLUSTER_MDS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "mds%d", i + 1);
        struct cproc *p = new_proc(c, name, c->bin_mds);
        p->port = pick_port(&pp, pp.mds[i]);
        add_arg(p, "--etcd_endpoints=http://127.0.0.1:%d", c->etcd_port);
        add_arg(p, "--ip=127.0.0.1");
        add_arg(p, "--port=%d", p->port);
        add_arg(p, "--admin_port=0");
        add_arg(p, "--name=%s", name);
        add_arg(p, "--chunk_size=" CLUSTER_CHUNK);
        add_arg(p, "--segment_size=" CLUSTER_SEGMENT);
        add_arg(p, "--min_volume_size=" CLUSTER_SEGMENT);
        add_arg(p, "--max_volume_size=1t");
        add_arg(p, "--unstable_time=5s");
        add_arg(p, "--offline_time=60s");
        used += (size_t)snprintf(c->mds_addrs + used, sizeof(c->mds_addrs) - used, "%s127.0.0.1:%d",
                                 i ? "," : "", p->port);
    }
    for (int i = 1; i <= CLUSTER_MDS; i++) {
        r = spawn(c, &c->procs[i]);
        if (r < 0)
            return up_fail(o, c, r, "start %s: %s", c->procs[i].name, strerror(-r));
    }
    save_state(c);
    char conf[sizeof(c->mds_addrs) + 64];
    snprintf(conf, sizeof(conf), "# written by curve cluster up\nmds.addrs=%s\n", c->mds_addrs);
    write_text(c->dir, "client.conf", conf);

    struct cli_opts mo = *o;
    mo.mds_addrs = c->mds_addrs;
    mo.timeout_ms = 1000;
    struct cli_mds *m;
    r = cli_mds_open(&mo, &m, err, sizeof(err));
    if (r != 0)
        return up_fail(o, c, -EINVAL, "%s", err);
    /* wait for an MDS leader */
    Curve__Mds__ClusterStatusResponse *st = NULL;
    while ((r = mds_status(m, &st, err, sizeof(err))) < 0 && curve_now_mono_ms() < deadline) {
        for (int i = 1; i <= CLUSTER_MDS; i++)
            if (reap_exited(c->procs[i].pid)) {
                cli_mds_close(m);
                return up_fail(o, c, CURVE_ERR_UNKNOWN, "%s exited (see %s)", c->procs[i].name,
                               c->procs[i].log);
            }
        sleep_ms(CLUSTER_POLL_MS);
    }
    if (r < 0) {
        cli_mds_close(m);
        return up_fail(o, c, CURVE_ERR_TIMEOUT, "no MDS leader: %s", err);
    }
    protobuf_c_message_free_unpacked(&st->base, NULL);

    /* topology before the chunkservers: they may only register on a known host */
    char topo[2048];
    topology_json(topo, sizeof(topo));
    write_text(c->dir, "topology.json", topo);
    Curve__Mds__ApplyTopologyResponse *ar = NULL;
    r = apply_topology(m, topo, err, sizeof(err), &ar);
    if (r < 0) {
        cli_mds_close(m);
        return up_fail(o, c, r, "apply topology: %s", err);
    }
    protobuf_c_message_free_unpacked(&ar->base, NULL);

    /* 3 chunkservers, one per server/zone (hosts 127.0.0.1..3) */
    for (int i = 0; i < CLUSTER_CS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "cs%d", i + 1);
        struct cproc *p = new_proc(c, name, c->bin_cs);
        p->port = pick_port(&pp, pp.cs[i]);
        add_arg(p, "--data_dir=%s/%s", c->dir, name);
        add_arg(p, "--ip=127.0.0.%d", i + 1);
        add_arg(p, "--port=%d", p->port);
        add_arg(p, "--admin_port=0");
        add_arg(p, "--mds_addrs=%s", c->mds_addrs);
        add_arg(p, "--chunk_size=" CLUSTER_CHUNK);
        add_arg(p, "--pool.target_files=" CLUSTER_POOL_FILES);
        add_arg(p, "--pool.reserve_bytes=0");
        add_arg(p, "--pool.min_ready=4");
        add_arg(p, "--heartbeat.interval=1s");
        snprintf(sub, sizeof(sub), "%s/%s", c->dir, name);
        mkdir_p(sub);
        r = spawn(c, p);
        if (r < 0) {
            cli_mds_close(m);
            return up_fail(o, c, r, "start %s: %s", name, strerror(-r));
        }
    }
    save_state(c);
    write_ports_file(c);

    /* healthy: all chunkservers online, copysets placed and all healthy */
    bool healthy = false;
    char last[256] = "no answer";
    while (!healthy && curve_now_mono_ms() < deadline) {
        for (int i = 0; i < c->nprocs; i++)
            if (reap_exited(c->procs[i].pid)) {
                cli_mds_close(m);
                return up_fail(o, c, CURVE_ERR_UNKNOWN, "%s exited (see %s)", c->procs[i].name,
                               c->procs[i].log);
            }
        r = mds_status(m, &st, err, sizeof(err));
        if (r == 0) {
            if (st->online == CLUSTER_CS && st->copysets == 0) {
                /* placement may need the chunkservers: applying again is a no-op otherwise */
                if (apply_topology(m, topo, err, sizeof(err), &ar) == 0)
                    protobuf_c_message_free_unpacked(&ar->base, NULL);
            }
            healthy = st->etcd_ok && st->online == CLUSTER_CS && st->copysets > 0 &&
                      st->healthy_copysets == st->copysets;
            snprintf(last, sizeof(last),
                     "%u/%d chunkservers online, %u/%u copysets healthy, etcd %s", st->online,
                     CLUSTER_CS, st->healthy_copysets, st->copysets, st->etcd_ok ? "ok" : "down");
            protobuf_c_message_free_unpacked(&st->base, NULL);
        } else {
            snprintf(last, sizeof(last), "%s", err);
        }
        if (!healthy)
            sleep_ms(200);
    }
    cli_mds_close(m);
    if (!healthy)
        return up_fail(o, c, CURVE_ERR_TIMEOUT, "not healthy after %" PRIu64 " ms: %s", wait_ms,
                       last);

    json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "dir", c->dir, "mds_addrs", c->mds_addrs, "conf",
                          "", "stop", "");
    char buf[PATH_MAX + 64];
    snprintf(buf, sizeof(buf), "%s/client.conf", c->dir);
    json_object_set_new(j, "conf", json_string(buf));
    snprintf(buf, sizeof(buf), "curve cluster down --dir=%s", c->dir);
    json_object_set_new(j, "stop", json_string(buf));
    cli_render_object(stdout, o->format, j, NULL, 0);
    json_decref(j);
    free_procs(c);
    return CLI_EXIT_OK;
}

int cli_cluster_down(const struct cli_cmd *cmd, struct cli_opts *o, const char **pos, int npos)
{
    static struct cluster cl;
    char err[CLI_ERR_MAX];
    const char *dir = cluster_dir(o);
    int r = load_state(dir, &cl, err, sizeof(err));
    if (r < 0)
        return cli_fail(o, r, r == -ENOENT ? CLI_EXIT_NOT_FOUND : CLI_EXIT_FAIL, "cluster down: %s",
                        err);
    json_t *rows = json_array();
    for (int i = cl.nprocs - 1; i >= 0; i--) {
        int s = stop_proc(&cl.procs[i]);
        json_array_append_new(rows, json_pack("{s:s, s:i, s:s}", "name", cl.procs[i].name, "pid",
                                              (int)cl.procs[i].pid, "result",
                                              s == 0 ? "stopped" : "not running"));
    }
    free_procs(&cl);
    static const struct cli_col cols[] = {
        {"name", "NAME", CLI_COL_STR},
        {"pid", "PID", CLI_COL_STR},
        {"result", "RESULT", CLI_COL_STR},
    };
    cli_render_table(stdout, o->format, rows, cols, 3);
    json_decref(rows);
    return CLI_EXIT_OK;
}

int cli_cluster_status(const struct cli_cmd *cmd, struct cli_opts *o, const char **pos, int npos)
{
    static struct cluster cl;
    char err[CLI_ERR_MAX];
    const char *dir = cluster_dir(o);
    int r = load_state(dir, &cl, err, sizeof(err));
    if (r < 0)
        return cli_fail(o, r, r == -ENOENT ? CLI_EXIT_NOT_FOUND : CLI_EXIT_FAIL,
                        "cluster status: %s", err);
    json_t *rows = json_array();
    int running = 0;
    for (int i = 0; i < cl.nprocs; i++) {
        bool up = proc_matches(&cl.procs[i]);
        running += up;
        json_array_append_new(rows, json_pack("{s:s, s:i, s:i, s:s, s:s}", "name", cl.procs[i].name,
                                              "pid", (int)cl.procs[i].pid, "port", cl.procs[i].port,
                                              "state", up ? "running" : "stopped", "log",
                                              cl.procs[i].log));
    }
    free_procs(&cl);
    static const struct cli_col cols[] = {
        {"name", "NAME", CLI_COL_STR},   {"pid", "PID", CLI_COL_STR}, {"port", "PORT", CLI_COL_STR},
        {"state", "STATE", CLI_COL_STR}, {"log", "LOG", CLI_COL_STR},
    };
    if (o->format == CLI_FMT_JSON) {
        json_t *j =
            json_pack("{s:s, s:s, s:o}", "dir", dir, "mds_addrs", cl.mds_addrs, "procs", rows);
        cli_render_object(stdout, o->format, j, NULL, 0);
        json_decref(j);
    } else {
        printf("cluster dir %s, MDS %s\n", dir, cl.mds_addrs);
        cli_render_table(stdout, o->format, rows, cols, 5);
        json_decref(rows);
    }
    return running > 0 ? CLI_EXIT_OK : CLI_EXIT_UNAVAILABLE;
}
