/*
 * curve-election-demo: a stand-in for the MDS to test the election (tests/integration).
 *
 *   curve-election-demo --etcd=127.0.0.1:2379,127.0.0.1:2479 --name=mds1 --port=PORT
 *                       [--prefix=/curve/v1/election/mds] [--ttl=5] [--request_timeout=..]
 *
 * Listens on 127.0.0.1:PORT (0 = ephemeral; the chosen port is printed). Each connection gets
 * one line: "LEADER <name> <key>" only if election_is_leader() passes for that very request,
 * else "NOTLEADER <role>". Role changes are printed on stdout as "ROLE <role> ..." lines.
 * Exits 3 when leadership/candidacy is lost (for a supervisor to restart it), 0 on SIGTERM
 * (resigning: the lease is revoked), 1 on bad arguments or setup failure.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "curve/errors.h"
#include "etcd/election.h"
#include "etcd/etcd.h"

#define DEMO_MAX_ENDPOINTS ETCD_MAX_ENDPOINTS
#define DEMO_POLL_MS 100
#define DEMO_READ_TIMEOUT_MS 1000

static const curve_cfg_def demo_cfg[] = {
    {"etcd", CURVE_CFG_STRING, NULL, 0, 0, "comma-separated etcd endpoints"},
    {"name", CURVE_CFG_STRING, "demo", 0, 0, "candidate name"},
    {"port", CURVE_CFG_INT, "0", 0, 65535, "whoami TCP port on 127.0.0.1 (0 = ephemeral)"},
    {"prefix", CURVE_CFG_STRING, "/curve/v1/election/mds", 0, 0, "election prefix"},
    {"ttl", CURVE_CFG_INT, "5", 2, 3600, "lease TTL in seconds"},
    {"request_timeout", CURVE_CFG_DURATION_MS, "0", 0, 60000,
     "etcd request timeout (0 = ttl/4)"},
};

static atomic_int lost_flag;
static volatile sig_atomic_t term_flag;

static void on_term(int sig)
{
    term_flag = 1;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%" PRIu64 " ", curve_now_mono_ms());
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void leader_cb(election *e, void *arg)
{
    say("ROLE leader key=%s lease=%" PRIx64, election_key(e), (uint64_t)election_lease(e));
}

static void follower_cb(election *e, const char *watched, void *arg)
{
    say("ROLE follower key=%s watching=%s", election_key(e), watched);
}

static void lost_cb(election *e, const char *why, void *arg)
{
    say("ROLE lost why=%s", why);
    atomic_store(&lost_flag, 1);
}

static int listen_on(int port, int *out_port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    *out_port = ntohs(a.sin_port);
    return fd;
}

/* Serves one connection: reads one request line (bounded wait), then answers. */
static void serve_one(int lfd, election *e, const char *name)
{
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char req[128];
    if (poll(&p, 1, DEMO_READ_TIMEOUT_MS) <= 0 || read(fd, req, sizeof(req)) <= 0) {
        close(fd);
        return;
    }
    char resp[512];
    /* The per-request leadership check: monotonic clock against the last proven lease. */
    if (election_is_leader(e))
        snprintf(resp, sizeof(resp), "LEADER %s %s\n", name, election_key(e));
    else
        snprintf(resp, sizeof(resp), "NOTLEADER %s\n", election_role_name(election_get_role(e)));
    ssize_t n = write(fd, resp, strlen(resp));
    (void)n;
    close(fd);
}

static int split_endpoints(char *s, const char **eps)
{
    int n = 0;
    for (char *save = NULL, *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == DEMO_MAX_ENDPOINTS)
            return -EINVAL;
        eps[n++] = t;
    }
    return n > 0 ? n : -EINVAL;
}

int main(int argc, char **argv)
{
    char err[512];
    curve_config *cfg;
    if (curve_config_new(demo_cfg, sizeof(demo_cfg) / sizeof(demo_cfg[0]), &cfg, err,
                         sizeof(err)) ||
        curve_config_parse_args(cfg, &argc, argv, err, sizeof(err)) ||
        curve_config_check_required(cfg, err, sizeof(err))) {
        fprintf(stderr, "curve-election-demo: %s\n", err);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    char *eps_buf = strdup(curve_config_str(cfg, "etcd"));
    const char *eps[DEMO_MAX_ENDPOINTS];
    int n = eps_buf ? split_endpoints(eps_buf, eps) : -ENOMEM;
    if (n < 0) {
        fprintf(stderr, "curve-election-demo: bad --etcd list\n");
        return 1;
    }
    int64_t ttl = curve_config_int(cfg, "ttl");
    int64_t rto = curve_config_duration_ms(cfg, "request_timeout");
    etcd_client_opts co;
    etcd_client_opts_init(&co);
    co.request_timeout_ms = (uint32_t)(rto ? rto : ttl * 1000 / 4);
    co.connect_timeout_ms = co.request_timeout_ms / 2;
    co.deadline_ms = (uint32_t)(ttl * 1000 / 3);
    etcd_client *c;
    if (etcd_client_new(eps, (size_t)n, &co, &c)) {
        fprintf(stderr, "curve-election-demo: %s\n", etcd_last_error());
        return 1;
    }
    int port = 0;
    int lfd = listen_on((int)curve_config_int(cfg, "port"), &port);
    if (lfd < 0) {
        fprintf(stderr, "curve-election-demo: listen: %s\n", strerror(-lfd));
        return 1;
    }
    const char *name = curve_config_str(cfg, "name");
    say("LISTEN port=%d pid=%d", port, (int)getpid());
    election_opts eo;
    election_opts_init(&eo);
    eo.prefix = curve_config_str(cfg, "prefix");
    eo.value = name;
    eo.ttl_s = ttl;
    eo.leader_cb = leader_cb;
    eo.follower_cb = follower_cb;
    eo.lost_cb = lost_cb;
    election *e;
    int rc = election_new(c, &eo, &e);
    if (rc == 0)
        rc = election_start(e);
    if (rc) {
        fprintf(stderr, "curve-election-demo: election: %s\n", curve_strerror(rc));
        return 1;
    }
    while (!term_flag && !atomic_load(&lost_flag)) {
        struct pollfd p = {.fd = lfd, .events = POLLIN};
        if (poll(&p, 1, DEMO_POLL_MS) > 0)
            serve_one(lfd, e, name);
    }
    close(lfd);
    if (atomic_load(&lost_flag)) {
        say("EXIT lost leadership");
        _exit(3); /* no resign: the lease is already gone or unprovable */
    }
    election_free(e);
    etcd_client_free(c);
    curve_config_free(cfg);
    free(eps_buf);
    say("EXIT resigned");
    return 0;
}
