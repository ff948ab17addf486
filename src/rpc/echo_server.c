/*
 * curve-echo-server: serves the echo service (proto/echo.proto) for tests and benchmarks.
 *
 *   curve-echo-server [--listen=127.0.0.1:0] [--threads=2] [--workers=2]
 *                     [--max-inflight=65536] [--max-inflight-per-conn=1024] [--grace-ms=5000]
 *                     [--max-conns=10000] [--max-inflight-mib=2048]
 *
 * Prints "listening <ip>:<port>" on stdout once it accepts connections. SIGTERM or SIGINT ⇒
 * graceful shutdown (stop accepting, let handlers finish up to --grace-ms, close), then prints
 * "stopped" and exits 0.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "curve/errors.h"
#include "rpc/echo_service.h"

static int parse_u32(const char *name, const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *s == 0 || *end != 0 || v < min || v > max) {
        fprintf(stderr, "curve-echo-server: --%s=%s: expected an integer in [%u, %u]\n", name, s,
                min, max);
        return -EINVAL;
    }
    *out = (uint32_t)v;
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: curve-echo-server [--listen=IP:PORT] [--threads=N] [--workers=N]\n"
                    "       [--max-inflight=N] [--max-inflight-per-conn=N] [--grace-ms=MS]\n"
                    "       [--max-conns=N] [--max-inflight-mib=N]\n");
}

int main(int argc, char **argv)
{
    const char *listen_addr = "127.0.0.1:0";
    uint32_t threads = 2, workers = 2, grace_ms = 5000, mib = 0;
    rpc_server_opts opts = {0};
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"threads", required_argument, NULL, 't'},
        {"workers", required_argument, NULL, 'w'},
        {"max-inflight", required_argument, NULL, 'm'},
        {"max-inflight-per-conn", required_argument, NULL, 'c'},
        {"grace-ms", required_argument, NULL, 'g'},
        {"max-conns", required_argument, NULL, 'C'},
        {"max-inflight-mib", required_argument, NULL, 'B'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        int rc = 0;
        switch (opt) {
        case 'l':
            listen_addr = optarg;
            break;
        case 't':
            rc = parse_u32("threads", optarg, 1, CURVE_LOOP_GROUP_MAX, &threads);
            break;
        case 'w':
            rc = parse_u32("workers", optarg, 1, CURVE_WORKPOOL_THREADS_MAX, &workers);
            break;
        case 'm':
            rc = parse_u32("max-inflight", optarg, 1, 1u << 24, &opts.max_inflight);
            break;
        case 'c':
            rc = parse_u32("max-inflight-per-conn", optarg, 1, 1u << 24,
                           &opts.max_inflight_per_conn);
            break;
        case 'g':
            rc = parse_u32("grace-ms", optarg, 0, 3600000, &grace_ms);
            break;
        case 'C':
            rc = parse_u32("max-conns", optarg, 1, 1000000, &opts.max_conns);
            break;
        case 'B':
            rc = parse_u32("max-inflight-mib", optarg, 1, 1u << 20, &mib);
            opts.max_inflight_bytes = (uint64_t)mib << 20;
            break;
        case 'h':
            usage();
            return 0;
        default:
            usage();
            return 2;
        }
        if (rc < 0)
            return 2;
    }
    if (optind != argc) {
        usage();
        return 2;
    }

    /* Signals are handled by sigwait in main; every thread created below inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    curve_loop_group *loops;
    int rc = curve_loop_group_new("echo", threads, &loops);
    if (rc < 0) {
        fprintf(stderr, "curve-echo-server: cannot start loops: %s\n", curve_strerror(rc));
        return 1;
    }
    curve_workpool *wp;
    rc = curve_workpool_new("echo-work", workers, 4096, &wp);
    if (rc < 0) {
        fprintf(stderr, "curve-echo-server: cannot start workers: %s\n", curve_strerror(rc));
        goto err_after_loops;
    }
    static echo_service svc;
    echo_service_init(&svc, wp);
    rpc_server *srv;
    rc = rpc_server_new(loops, &opts, &srv);
    if (rc < 0)
        goto err_after_wp;
    rc = rpc_server_add_service(srv, &svc.def);
    if (rc < 0)
        goto err_after_srv;
    rc = rpc_server_start(srv, listen_addr);
    if (rc < 0) {
        fprintf(stderr, "curve-echo-server: cannot listen on %s: %s\n", listen_addr,
                curve_strerror(rc));
        goto err_after_srv;
    }
    char ip[64];
    const char *colon = strrchr(listen_addr, ':');
    snprintf(ip, sizeof(ip), "%.*s", (int)(colon - listen_addr), listen_addr);
    printf("listening %s:%d\n", ip, rpc_server_port(srv));
    fflush(stdout);

    int sig = 0;
    sigwait(&set, &sig);
    printf("stopping (signal %d)\n", sig);
    fflush(stdout);
    rpc_server_stop(srv, grace_ms);
    rpc_server_free(srv);
    curve_workpool_free(wp);
    curve_loop_group_free(loops);
    printf("stopped\n");
    fflush(stdout);
    return 0;

err_after_srv:
    rpc_server_free(srv);
err_after_wp:
    curve_workpool_free(wp);
err_after_loops:
    curve_loop_group_free(loops);
    return 1;
}
