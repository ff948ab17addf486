/*
 * curve-admin-demo: serves an admin HTTP port with a few metrics of every kind until SIGTERM or
 * SIGINT. Prints the bound port on stdout (one line) once it is serving.
 *
 *   curve-admin-demo [--host=127.0.0.1] [--port=0]
 *
 * Used by tests/integration/test_metrics.py and handy to look at the output formats.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/admin.h"
#include "common/log.h"
#include "common/metrics.h"
#include "curve/errors.h"

#define DEMO_TICK_MS 200 /* how often the demo updates its metrics */

typedef struct demo {
    curve_counter *requests[2];
    curve_gauge *inflight;
    curve_gauge *disk_used;
    curve_gauge *uptime_fn;
    curve_latency *latency[2];
    curve_rate *bytes;
    unsigned long ticks;
} demo;

static double ticks_fn(void *ctx)
{
    return (double)((demo *)ctx)->ticks * DEMO_TICK_MS / 1000.0;
}

static void status_cb(void *ctx, json_t *obj)
{
    json_object_set_new(obj, "demo_ticks", json_integer((json_int_t)((demo *)ctx)->ticks));
}

static int echo_handler(const curve_admin_request *req, curve_admin_reply *rep, void *ctx)
{
    const char *msg = curve_admin_req_query(req, "msg");
    return curve_admin_reply_text(rep, 200, msg != NULL ? msg : "");
}

static int demo_register(curve_metrics *reg, demo *d)
{
    static const char *const copysets[2] = {"4294967297", "4294967298"};
    int rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++) {
        const char *labels[] = {"copyset", copysets[i], "op", "write", NULL};
        rc = curve_metrics_counter(reg, "curve_demo_requests_total", "Requests served.", labels,
                                   &d->requests[i]);
        if (rc == 0)
            rc = curve_metrics_latency(reg, "curve_demo_request_latency_seconds",
                                       "Request latency.", labels, NULL, 0,
                                       &d->latency[i]);
    }
    if (rc == 0)
        rc = curve_metrics_gauge(reg, "curve_demo_inflight", "Requests in flight.", NULL,
                                 &d->inflight);
    if (rc == 0) {
        /* A label value that needs every escape, for promtool to check. */
        const char *labels[] = {"path", "/data/disk \"0\"\\x\nnext \xc3\xa9", NULL};
        rc = curve_metrics_gauge(reg, "curve_demo_disk_used_bytes", "Bytes used on a disk.",
                                 labels, &d->disk_used);
    }
    if (rc == 0)
        rc = curve_metrics_gauge_fn(reg, "curve_demo_run_seconds",
                                    "Seconds of demo ticks (callback gauge).", NULL, ticks_fn, d,
                                    &d->uptime_fn);
    if (rc == 0)
        rc = curve_metrics_rate(reg, "curve_demo_bytes_per_second",
                                "Bytes per second over the last 10 s.", NULL, NULL, 0, &d->bytes);
    return rc;
}

static void demo_tick(demo *d)
{
    d->ticks++;
    for (int i = 0; i < 2; i++) {
        curve_counter_add(d->requests[i], 10 + (uint64_t)i);
        for (unsigned k = 1; k <= 20; k++)
            curve_latency_record(d->latency[i], k * 50 * (unsigned)(i + 1));
    }
    curve_gauge_set(d->inflight, (int64_t)(d->ticks % 7));
    curve_gauge_add(d->disk_used, 4096);
    curve_rate_add(d->bytes, 4096);
}

int main(int argc, char **argv)
{
    curve_admin_opts o = {.host = "127.0.0.1", .port = 0, .role = "admin-demo"};
    demo d = {0};
    curve_admin *a = NULL;
    sigset_t set;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--host=", 7) == 0) {
            o.host = argv[i] + 7;
        } else if (strncmp(argv[i], "--port=", 7) == 0) {
            char *end = NULL;
            errno = 0;
            long p = strtol(argv[i] + 7, &end, 10);
            if (errno != 0 || *end != '\0' || p < 0 || p > 65535) {
                fprintf(stderr, "curve-admin-demo: bad port '%s'\n", argv[i] + 7);
                return 2;
            }
            o.port = (uint16_t)p;
        } else {
            fprintf(stderr, "usage: curve-admin-demo [--host=ADDR] [--port=N]\n");
            return 2;
        }
    }

    /* Block the signals before any thread starts so that only sigtimedwait() sees them. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    rc = demo_register(curve_metrics_default(), &d);
    if (rc == 0)
        rc = curve_metrics_register_process(curve_metrics_default());
    if (rc != 0) {
        fprintf(stderr, "curve-admin-demo: cannot register metrics: %s\n", curve_strerror(rc));
        return 1;
    }
    demo_tick(&d);
    rc = curve_admin_start(&o, &a);
    if (rc != 0) {
        fprintf(stderr, "curve-admin-demo: cannot start admin server on %s:%u: %s\n", o.host,
                (unsigned)o.port, curve_strerror(rc));
        return 1;
    }
    curve_admin_set_status_cb(a, status_cb, &d);
    if (curve_admin_add_handler(a, "/echo", CURVE_ADMIN_GET | CURVE_ADMIN_POST, echo_handler,
                                NULL) != 0 ||
        curve_admin_enable_failpoints(a) != 0) {
        fprintf(stderr, "curve-admin-demo: cannot register handlers\n");
        curve_admin_stop(a);
        return 1;
    }
    printf("%u\n", (unsigned)curve_admin_port(a));
    fflush(stdout);

    for (;;) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = DEMO_TICK_MS * 1000000L};
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT)
            break;
        if (sig < 0 && errno != EAGAIN && errno != EINTR) {
            perror("sigtimedwait");
            break;
        }
        demo_tick(&d);
    }
    curve_admin_stop(a);
    CLOG_INFO("curve-admin-demo: stopped");
    return 0;
}
