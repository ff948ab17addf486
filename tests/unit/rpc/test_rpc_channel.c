/* In-process tests of the RPC channel and server over TCP on 127.0.0.1 (echo service). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/failpoint.h"
#include "common/log.h"
#include "common/metrics.h"
#include "curve/errors.h"
#include "rpc/echo_service.h"
#include "rpc/rpc_channel.h"

#define WAIT_MS 20000 /* bound for every wait */

typedef struct env {
    curve_loop_group *srv_loops;
    curve_workpool *wp;
    echo_service svc;
    rpc_server *srv;
    curve_loop *cli_loop;
    rpc_channel *ch;
    char addr[64];
    int port;
} env;

static int start_server(env *e, const rpc_server_opts *opts, const char *addr)
{
    int rc = rpc_server_new(e->srv_loops, opts, &e->srv);
    if (rc < 0)
        return rc;
    assert_int_equal(rpc_server_add_service(e->srv, &e->svc.def), 0);
    assert_int_equal(rpc_server_add_service(e->srv, &e->svc.def), -EEXIST);
    rc = rpc_server_start(e->srv, addr);
    if (rc < 0) {
        rpc_server_free(e->srv);
        e->srv = NULL;
        return rc;
    }
    e->port = rpc_server_port(e->srv);
    snprintf(e->addr, sizeof(e->addr), "127.0.0.1:%d", e->port);
    return 0;
}

static env *env_new(const rpc_server_opts *sopts, const rpc_channel_opts *copts)
{
    env *e = calloc(1, sizeof(*e));
    assert_int_equal(curve_loop_group_new("tsrv", 2, &e->srv_loops), 0);
    assert_int_equal(curve_workpool_new("twork", 2, 1024, &e->wp), 0);
    echo_service_init(&e->svc, e->wp);
    assert_int_equal(start_server(e, sopts, "127.0.0.1:0"), 0);
    assert_int_equal(curve_loop_new("tcli", &e->cli_loop), 0);
    assert_int_equal(curve_loop_start(e->cli_loop), 0);
    assert_int_equal(rpc_channel_new(e->cli_loop, e->addr, copts, &e->ch), 0);
    return e;
}

static void env_free(env *e)
{
    /* Let delayed echo handlers finish (bounded), so nothing is left behind. */
    uint64_t deadline = curve_now_mono_ms() + WAIT_MS;
    while (atomic_load(&e->svc.pending) > 0 && curve_now_mono_ms() < deadline)
        usleep(1000); /* polling a condition with a deadline, not a sleep for sync */
    assert_int_equal(atomic_load(&e->svc.pending), 0);
    if (e->ch)
        rpc_channel_close_sync(e->ch);
    curve_loop_free(e->cli_loop);
    rpc_server_free(e->srv);
    curve_workpool_free(e->wp);
    curve_loop_group_free(e->srv_loops);
    free(e);
}

static int echo_sync(rpc_channel *ch, const char *msg, uint32_t delay_ms, int fail_status,
                     size_t attach, uint32_t timeout_ms, char *errmsg)
{
    Curve__Echo__EchoRequest req = CURVE__ECHO__ECHO_REQUEST__INIT;
    req.message = (char *)msg;
    req.has_delay_ms = delay_ms > 0;
    req.delay_ms = delay_ms;
    req.has_fail_status = fail_status != 0;
    req.fail_status = fail_status;
    curve_iobuf att, ratt;
    curve_iobuf_init(&att);
    curve_iobuf_init(&ratt);
    uint8_t *pattern = malloc(attach + 1);
    for (size_t i = 0; i < attach; i++)
        pattern[i] = (uint8_t)(i * 7 + 3);
    if (attach)
        assert_int_equal(curve_iobuf_append_copy(&att, pattern, attach), 0);
    ProtobufCMessage *resp = NULL;
    char local_err[RPC_CHANNEL_ERRMSG_MAX];
    int rc = rpc_call_sync(ch, ECHO_SERVICE_ID, ECHO_METHOD_ECHO, &req.base, &att,
                           &curve__echo__echo_response__descriptor, timeout_ms, &resp, &ratt,
                           errmsg ? errmsg : local_err, RPC_CHANNEL_ERRMSG_MAX);
    assert_int_equal(att.len, 0);
    if (rc == 0) {
        Curve__Echo__EchoResponse *r = (Curve__Echo__EchoResponse *)resp;
        assert_non_null(r);
        assert_string_equal(r->message, msg);
        assert_int_equal(r->attach_len, attach);
        assert_int_equal(ratt.len, attach);
        uint8_t *got = malloc(attach + 1);
        curve_iobuf_copyout(&ratt, 0, got, attach);
        assert_memory_equal(got, pattern, attach);
        free(got);
        protobuf_c_message_free_unpacked(resp, NULL);
    } else {
        assert_null(resp);
    }
    curve_iobuf_reset(&ratt);
    free(pattern);
    return rc;
}

static void test_sync_echo_and_errors(void **state)
{
    env *e = env_new(NULL, NULL);
    assert_int_equal(echo_sync(e->ch, "hello", 0, 0, 0, 0, NULL), 0);
    assert_int_equal(echo_sync(e->ch, "big", 0, 0, 4 << 20, 0, NULL), 0);
    char err[RPC_CHANNEL_ERRMSG_MAX];
    assert_int_equal(echo_sync(e->ch, "x", 0, CURVE_ERR_NOSPACE, 10, 0, err), CURVE_ERR_NOSPACE);
    assert_non_null(strstr(err, "echo failed on request"));
    assert_int_equal(echo_sync(e->ch, "x", 0, 5, 0, 0, err), CURVE_ERR_RPC_BADREQ);

    /* Unknown service and method. */
    Curve__Echo__EchoRequest req = CURVE__ECHO__ECHO_REQUEST__INIT;
    req.message = "m";
    assert_int_equal(
        rpc_call_sync(e->ch, 99, 1, &req.base, NULL, NULL, 0, NULL, NULL, err, sizeof(err)),
        CURVE_ERR_RPC_NOSERVICE);
    assert_non_null(strstr(err, "99"));
    assert_int_equal(rpc_call_sync(e->ch, ECHO_SERVICE_ID, 42, &req.base, NULL, NULL, 0, NULL, NULL,
                                   err, sizeof(err)),
                     CURVE_ERR_RPC_NOMETHOD);
    /* An empty request body is not a valid EchoRequest (missing required field). */
    assert_int_equal(rpc_call_sync(e->ch, ECHO_SERVICE_ID, ECHO_METHOD_ECHO, NULL, NULL, NULL, 0,
                                   NULL, NULL, err, sizeof(err)),
                     CURVE_ERR_RPC_BADREQ);
    env_free(e);
}

/* ---- many calls in flight from several threads ---- */

#define MT_THREADS 4
#define MT_CALLS   300

typedef struct mt_call {
    atomic_int *ok, *bad;
    curve_completion *done;
    atomic_int *left;
    size_t size;
    uint8_t seed;
    char msg[32];
} mt_call;

static void mt_cb(rpc_result *r, void *arg)
{
    mt_call *c = arg;
    bool good = r->status == 0 && r->resp &&
                strcmp(((Curve__Echo__EchoResponse *)r->resp)->message, c->msg) == 0 &&
                r->attach.len == c->size;
    if (good && c->size) {
        uint8_t *got = malloc(c->size);
        curve_iobuf_copyout(&r->attach, 0, got, c->size);
        for (size_t i = 0; i < c->size && good; i++)
            good = got[i] == (uint8_t)(c->seed + i);
        free(got);
    }
    atomic_fetch_add(good ? c->ok : c->bad, 1);
    if (atomic_fetch_sub(c->left, 1) == 1)
        curve_completion_signal(c->done, 0);
    free(c);
}

typedef struct mt_arg {
    rpc_channel *ch;
    unsigned idx;
    atomic_int *ok, *bad, *left;
    curve_completion *done;
} mt_arg;

static void *mt_main(void *arg)
{
    mt_arg *a = arg;
    for (unsigned i = 0; i < MT_CALLS; i++) {
        mt_call *c = calloc(1, sizeof(*c));
        c->ok = a->ok;
        c->bad = a->bad;
        c->left = a->left;
        c->done = a->done;
        c->size = (i * 7919u + a->idx * 131u) % (i % 10 == 0 ? (256u << 10) : 5000u);
        c->seed = (uint8_t)(i + a->idx);
        snprintf(c->msg, sizeof(c->msg), "t%u-%u", a->idx, i);
        Curve__Echo__EchoRequest req = CURVE__ECHO__ECHO_REQUEST__INIT;
        req.message = c->msg;
        req.has_reply_from_worker = i % 3 == 0;
        req.reply_from_worker = i % 3 == 0;
        curve_iobuf att;
        curve_iobuf_init(&att);
        if (c->size) {
            uint8_t *p = malloc(c->size);
            for (size_t k = 0; k < c->size; k++)
                p[k] = (uint8_t)(c->seed + k);
            curve_iobuf_append_copy(&att, p, c->size);
            free(p);
        }
        int rc = rpc_channel_call(a->ch, ECHO_SERVICE_ID, ECHO_METHOD_ECHO, &req.base, &att,
                                  &curve__echo__echo_response__descriptor, 10000, mt_cb, c, NULL);
        if (rc < 0) {
            atomic_fetch_add(a->bad, 1);
            if (atomic_fetch_sub(a->left, 1) == 1)
                curve_completion_signal(a->done, 0);
            free(c);
        }
    }
    return NULL;
}

static void test_many_in_flight_from_threads(void **state)
{
    env *e = env_new(NULL, NULL);
    atomic_int ok = 0, bad = 0, left = MT_THREADS * MT_CALLS;
    curve_completion done;
    curve_completion_init(&done);
    pthread_t th[MT_THREADS];
    mt_arg args[MT_THREADS];
    for (unsigned i = 0; i < MT_THREADS; i++) {
        args[i] =
            (mt_arg){.ch = e->ch, .idx = i, .ok = &ok, .bad = &bad, .left = &left, .done = &done};
        assert_int_equal(pthread_create(&th[i], NULL, mt_main, &args[i]), 0);
    }
    for (unsigned i = 0; i < MT_THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(curve_completion_wait(&done, WAIT_MS), 0);
    assert_int_equal(atomic_load(&bad), 0);
    assert_int_equal(atomic_load(&ok), MT_THREADS * MT_CALLS);
    assert_int_equal(rpc_channel_inflight(e->ch), 0);
    curve_completion_destroy(&done);
    env_free(e);
}

/* ---- timeout and cancel ---- */

typedef struct one_result {
    curve_completion done;
    int status;
    uint64_t at_ms;
    char errmsg[RPC_CHANNEL_ERRMSG_MAX];
    atomic_int calls;
} one_result;

static void one_cb(rpc_result *r, void *arg)
{
    one_result *o = arg;
    o->status = r->status;
    o->at_ms = curve_now_mono_ms();
    snprintf(o->errmsg, sizeof(o->errmsg), "%s", r->errmsg);
    if (atomic_fetch_add(&o->calls, 1) == 0)
        curve_completion_signal(&o->done, 0);
}

static int start_delayed(rpc_channel *ch, uint32_t delay_ms, uint32_t timeout_ms, one_result *o,
                         uint64_t *id)
{
    Curve__Echo__EchoRequest req = CURVE__ECHO__ECHO_REQUEST__INIT;
    req.message = "slow";
    req.has_delay_ms = 1;
    req.delay_ms = delay_ms;
    curve_completion_init(&o->done);
    atomic_init(&o->calls, 0);
    return rpc_channel_call(ch, ECHO_SERVICE_ID, ECHO_METHOD_ECHO, &req.base, NULL,
                            &curve__echo__echo_response__descriptor, timeout_ms, one_cb, o, id);
}

static void test_timeout_and_cancel(void **state)
{
    env *e = env_new(NULL, NULL);
    assert_int_equal(echo_sync(e->ch, "warm", 0, 0, 0, 0, NULL), 0);
    one_result t;
    uint64_t t0 = curve_now_mono_ms();
    assert_int_equal(start_delayed(e->ch, 1000, 100, &t, NULL), 0);
    assert_int_equal(curve_completion_wait(&t.done, WAIT_MS), 0);
    assert_int_equal(t.status, CURVE_ERR_TIMEOUT);
    assert_true(t.at_ms - t0 >= 100);
    assert_true(t.at_ms - t0 < 900);
    assert_non_null(strstr(t.errmsg, "timed out after 100 ms"));

    one_result c;
    uint64_t id = 0;
    t0 = curve_now_mono_ms();
    assert_int_equal(start_delayed(e->ch, 1000, 10000, &c, &id), 0);
    assert_true(id != 0);
    assert_int_equal(rpc_channel_cancel(e->ch, id), 0);
    assert_int_equal(curve_completion_wait(&c.done, WAIT_MS), 0);
    assert_int_equal(c.status, CURVE_ERR_CANCELED);
    assert_true(c.at_ms - t0 < 900);
    /* Cancel of a finished call is harmless. */
    assert_int_equal(rpc_channel_cancel(e->ch, id), 0);
    /* The channel still works and the late replies were dropped. */
    assert_int_equal(echo_sync(e->ch, "after", 0, 0, 100, 0, NULL), 0);
    assert_int_equal(atomic_load(&t.calls), 1);
    assert_int_equal(atomic_load(&c.calls), 1);
    curve_completion_destroy(&t.done);
    curve_completion_destroy(&c.done);
    env_free(e);
}

/* ---- bounds ---- */

static void test_overload_and_client_bound(void **state)
{
    rpc_server_opts so = {.max_inflight_per_conn = 2};
    rpc_channel_opts co = {.max_inflight = 5};
    env *e = env_new(&so, &co);
    one_result r[6];
    for (int i = 0; i < 5; i++)
        assert_int_equal(start_delayed(e->ch, 300, 5000, &r[i], NULL), 0);
    /* The client-side bound refuses the 6th synchronously. */
    assert_int_equal(start_delayed(e->ch, 300, 5000, &r[5], NULL), CURVE_ERR_BUSY);
    curve_completion_destroy(&r[5].done);
    int ok = 0, overload = 0;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(curve_completion_wait(&r[i].done, WAIT_MS), 0);
        if (r[i].status == 0)
            ok++;
        else if (r[i].status == CURVE_ERR_RPC_OVERLOAD)
            overload++;
        curve_completion_destroy(&r[i].done);
    }
    assert_int_equal(ok, 2);
    assert_int_equal(overload, 3);
    env_free(e);
}

static void test_global_inflight_bound(void **state)
{
    rpc_server_opts so = {.max_inflight = 3};
    env *e = env_new(&so, NULL);
    rpc_channel *ch2;
    assert_int_equal(rpc_channel_new(e->cli_loop, e->addr, NULL, &ch2), 0);
    one_result r[4];
    /* Two connections, two calls each: the server-wide bound admits three. */
    assert_int_equal(start_delayed(e->ch, 300, 5000, &r[0], NULL), 0);
    assert_int_equal(start_delayed(ch2, 300, 5000, &r[1], NULL), 0);
    assert_int_equal(start_delayed(e->ch, 300, 5000, &r[2], NULL), 0);
    assert_int_equal(start_delayed(ch2, 300, 5000, &r[3], NULL), 0);
    int ok = 0, overload = 0;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(curve_completion_wait(&r[i].done, WAIT_MS), 0);
        ok += r[i].status == 0;
        overload += r[i].status == CURVE_ERR_RPC_OVERLOAD;
        curve_completion_destroy(&r[i].done);
    }
    assert_int_equal(ok, 3);
    assert_int_equal(overload, 1);
    rpc_channel_close_sync(ch2);
    env_free(e);
}

static int start_delayed_attach(rpc_channel *ch, uint32_t delay_ms, size_t attach, one_result *o)
{
    Curve__Echo__EchoRequest req = CURVE__ECHO__ECHO_REQUEST__INIT;
    req.message = "slow";
    req.has_delay_ms = 1;
    req.delay_ms = delay_ms;
    curve_completion_init(&o->done);
    atomic_init(&o->calls, 0);
    curve_iobuf att;
    curve_iobuf_init(&att);
    curve_buf *b = curve_buf_new(attach);
    memset(curve_buf_data(b), 7, attach);
    curve_buf_set_len(b, attach);
    assert_int_equal(curve_iobuf_append(&att, b, 0, attach), 0);
    curve_buf_unref(b);
    return rpc_channel_call(ch, ECHO_SERVICE_ID, ECHO_METHOD_ECHO, &req.base, &att,
                            &curve__echo__echo_response__descriptor, 5000, one_cb, o, NULL);
}

static void test_byte_bound_and_max_conns(void **state)
{
    /* 1 MiB per connection: two 400 KiB calls fit, the third does not. */
    rpc_server_opts so = {.max_inflight_bytes_per_conn = 1 << 20, .max_conns = 1};
    env *e = env_new(&so, NULL);
    one_result r[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(start_delayed_attach(e->ch, 300, 400 << 10, &r[i]), 0);
    int ok = 0, overload = 0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(curve_completion_wait(&r[i].done, WAIT_MS), 0);
        ok += r[i].status == 0;
        overload += r[i].status == CURVE_ERR_RPC_OVERLOAD;
        curve_completion_destroy(&r[i].done);
    }
    assert_int_equal(ok, 2);
    assert_int_equal(overload, 1);
    /* A second connection is over max_conns: closed at once, the first still works. */
    rpc_channel *ch2;
    assert_int_equal(rpc_channel_new(e->cli_loop, e->addr, NULL, &ch2), 0);
    assert_int_equal(echo_sync(ch2, "second", 0, 0, 0, 5000, NULL), CURVE_ERR_RPC_CONN);
    rpc_channel_close_sync(ch2);
    assert_int_equal(echo_sync(e->ch, "first", 0, 0, 10, 0, NULL), 0);
    env_free(e);
}

static void test_connect_backoff(void **state)
{
    /* A port nobody listens on: take one from a server and stop it. */
    rpc_channel_opts co = {.backoff_initial_ms = 300, .backoff_max_ms = 300};
    env *e = env_new(NULL, &co);
    rpc_server_stop(e->srv, 0);
    char err[RPC_CHANNEL_ERRMSG_MAX];
    uint64_t t0 = curve_now_mono_ms();
    assert_int_equal(echo_sync(e->ch, "a", 0, 0, 0, 5000, err), CURVE_ERR_RPC_CONN);
    assert_non_null(strstr(err, "connect to"));
    uint64_t t1 = curve_now_mono_ms();
    /* The next call waits for the backoff to expire before the next attempt fails. */
    assert_int_equal(echo_sync(e->ch, "b", 0, 0, 0, 5000, err), CURVE_ERR_RPC_CONN);
    uint64_t t2 = curve_now_mono_ms();
    assert_true(t1 - t0 < 250);
    assert_true(t2 - t0 >= 250);
    /* A call whose timeout is shorter than the backoff times out, never sent. */
    assert_int_equal(echo_sync(e->ch, "c", 0, 0, 0, 50, err), CURVE_ERR_TIMEOUT);
    assert_non_null(strstr(err, "never sent"));
    env_free(e);
}

static void test_failpoints(void **state)
{
    env *e = env_new(NULL, NULL);
    assert_int_equal(echo_sync(e->ch, "warm", 0, 0, 0, 0, NULL), 0);
    /* Delayed replies: the loop keeps serving while the reply waits. */
    assert_int_equal(curve_failpoint_set("rpc.server.reply_delay", "1*return(300)"), 0);
    uint64_t t0 = curve_now_mono_ms();
    assert_int_equal(echo_sync(e->ch, "delayed", 0, 0, 100, 5000, NULL), 0);
    assert_true(curve_now_mono_ms() - t0 >= 300);
    t0 = curve_now_mono_ms();
    assert_int_equal(echo_sync(e->ch, "not-delayed", 0, 0, 100, 5000, NULL), 0);
    assert_true(curve_now_mono_ms() - t0 < 300);
    /* A lost reply and a lost request: both calls time out; the next ones work. */
    char err[RPC_CHANNEL_ERRMSG_MAX];
    assert_int_equal(curve_failpoint_set("rpc.server.reply", "1*return"), 0);
    assert_int_equal(echo_sync(e->ch, "lost-reply", 0, 0, 0, 200, err), CURVE_ERR_TIMEOUT);
    assert_int_equal(curve_failpoint_set("rpc.channel.send", "1*return"), 0);
    assert_int_equal(echo_sync(e->ch, "lost-request", 0, 0, 0, 200, err), CURVE_ERR_TIMEOUT);
    assert_int_equal(curve_failpoint_hits("rpc.channel.send"), 1);
    assert_int_equal(echo_sync(e->ch, "fine", 0, 0, 10, 0, NULL), 0);
    curve_failpoint_clear_all();
    env_free(e);
}

static void test_server_metrics(void **state)
{
    curve_metrics *reg;
    assert_int_equal(curve_metrics_new(&reg), 0);
    rpc_server_opts so = {.metrics = reg, .metrics_name = "t"};
    env *e = env_new(&so, NULL);
    /* A second server with the same metrics name in the same registry is refused. */
    rpc_server *dup;
    assert_int_equal(rpc_server_new(e->srv_loops, &so, &dup), -EEXIST);
    for (int i = 0; i < 3; i++)
        assert_int_equal(echo_sync(e->ch, "m", 0, 0, 10, 0, NULL), 0);
    Curve__Echo__EchoRequest req = CURVE__ECHO__ECHO_REQUEST__INIT;
    req.message = "m";
    assert_int_equal(
        rpc_call_sync(e->ch, ECHO_SERVICE_ID, 9, &req.base, NULL, NULL, 0, NULL, NULL, NULL, 0),
        CURVE_ERR_RPC_NOMETHOD);
    char *text;
    size_t len;
    assert_int_equal(curve_metrics_render_prometheus(reg, &text, &len), 0);
    assert_non_null(strstr(text, "curve_rpc_server_requests_total{server=\"t\"} 4\n"));
    assert_non_null(
        strstr(text, "curve_rpc_server_rejected_total{server=\"t\",reason=\"nomethod\"} 1\n"));
    assert_non_null(
        strstr(text, "curve_rpc_server_rejected_total{server=\"t\",reason=\"overload\"} 0\n"));
    assert_non_null(strstr(text, "curve_rpc_server_handler_seconds_count{server=\"t\"} 3\n"));
    assert_non_null(strstr(text, "curve_rpc_server_connections{server=\"t\"} 1\n"));
    free(text);
    env_free(e);
    assert_int_equal(curve_metrics_count(reg), 0); /* the server unregistered everything */
    curve_metrics_free(reg);
}

/* ---- connection loss, reconnect, refused ---- */

static void test_server_gone_then_back(void **state)
{
    rpc_channel_opts co = {.backoff_initial_ms = 10, .backoff_max_ms = 50};
    env *e = env_new(NULL, &co);
    assert_int_equal(echo_sync(e->ch, "one", 0, 0, 10, 0, NULL), 0);
    one_result r[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(start_delayed(e->ch, 1000, 20000, &r[i], NULL), 0);
    /* Wait until the server runs them, then stop it with no grace. */
    uint64_t deadline = curve_now_mono_ms() + WAIT_MS;
    while (rpc_server_inflight(e->srv) < 4 && curve_now_mono_ms() < deadline)
        sched_yield();
    assert_int_equal(rpc_server_inflight(e->srv), 4);
    uint64_t t0 = curve_now_mono_ms();
    rpc_server_stop(e->srv, 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(curve_completion_wait(&r[i].done, WAIT_MS), 0);
        assert_int_equal(r[i].status, CURVE_ERR_RPC_CONN);
        assert_non_null(strstr(r[i].errmsg, "connection lost"));
        assert_true(r[i].at_ms - t0 < 900);
        curve_completion_destroy(&r[i].done);
    }
    rpc_server_free(e->srv); /* the delayed handlers still hold it; it goes when they reply */
    e->srv = NULL;
    char err[RPC_CHANNEL_ERRMSG_MAX];
    assert_int_equal(echo_sync(e->ch, "refused", 0, 0, 0, 0, err), CURVE_ERR_RPC_CONN);
    assert_non_null(strstr(err, "connect to"));

    /* A new server on the same port: the channel reconnects (after its backoff). */
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", e->port);
    assert_int_equal(start_server(e, NULL, addr), 0);
    int rc = -1;
    deadline = curve_now_mono_ms() + WAIT_MS;
    while (rc != 0 && curve_now_mono_ms() < deadline)
        rc = echo_sync(e->ch, "again", 0, 0, 1000, 2000, NULL);
    assert_int_equal(rc, 0);
    env_free(e);
}

typedef struct stats_arg {
    rpc_channel *ch;
    int rc;
    rpc_net_stats st;
} stats_arg;

static void stats_on_loop(void *arg)
{
    stats_arg *a = arg;
    a->rc = rpc_channel_net_stats(a->ch, &a->st);
}

/* Socket counters of the channel's connection (TCP_INFO): none before it connects; data
 * segments grow with the calls, nothing retransmitted on loopback; a new connection after
 * the server came back has a new generation and counters from 0. */
static void test_net_stats(void **state)
{
    rpc_channel_opts co = {.backoff_initial_ms = 10, .backoff_max_ms = 50};
    env *e = env_new(NULL, &co);
    stats_arg a = {.ch = e->ch};
    assert_int_equal(curve_loop_call_sync(e->cli_loop, stats_on_loop, &a), 0);
    assert_int_equal(a.rc, -ENOTCONN);
    for (int i = 0; i < 20; i++)
        assert_int_equal(echo_sync(e->ch, "s", 0, 0, 100000, 0, NULL), 0);
    assert_int_equal(curve_loop_call_sync(e->cli_loop, stats_on_loop, &a), 0);
    assert_int_equal(a.rc, 0);
    assert_true(a.st.data_segs_out >= 20); /* 20 requests of 100 KB: many segments */
    assert_int_equal(a.st.retrans, 0);
    assert_int_equal(a.st.user_timeout_ms, 5000); /* unacknowledged data fails the connection */
    uint64_t gen = a.st.conn_gen, segs = a.st.data_segs_out;
    assert_true(gen >= 1);

    rpc_server_stop(e->srv, 0);
    rpc_server_free(e->srv);
    e->srv = NULL;
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", e->port);
    assert_int_equal(start_server(e, NULL, addr), 0);
    int rc = -1;
    uint64_t deadline = curve_now_mono_ms() + WAIT_MS;
    while (rc != 0 && curve_now_mono_ms() < deadline)
        rc = echo_sync(e->ch, "again", 0, 0, 10, 2000, NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(curve_loop_call_sync(e->cli_loop, stats_on_loop, &a), 0);
    assert_int_equal(a.rc, 0);
    assert_true(a.st.conn_gen > gen);
    assert_true(a.st.data_segs_out >= 1 && a.st.data_segs_out < segs);
    env_free(e);
}

static void test_close_fails_pending(void **state)
{
    env *e = env_new(NULL, NULL);
    one_result r;
    assert_int_equal(start_delayed(e->ch, 1000, 10000, &r, NULL), 0);
    rpc_channel_close_sync(e->ch);
    e->ch = NULL;
    assert_int_equal(curve_completion_wait(&r.done, WAIT_MS), 0);
    assert_int_equal(r.status, CURVE_ERR_SHUTDOWN);
    curve_completion_destroy(&r.done);
    env_free(e);
}

/* Calls posted from another thread right up to the close: each accepted call gets exactly one
 * callback (success or CURVE_ERR_SHUTDOWN), and the close completes only after all of them.
 * The lock only guarantees that no call *starts* after rpc_channel_close (the contract). */
typedef struct race {
    rpc_channel *ch;
    pthread_mutex_t lock;
    bool stop; /* under lock */
    atomic_int accepted, callbacks;
    curve_completion closed;
} race;

static void race_cb(rpc_result *r, void *arg)
{
    race *rc = arg;
    assert_true(r->status == 0 || r->status == CURVE_ERR_SHUTDOWN);
    atomic_fetch_add(&rc->callbacks, 1);
}

static void *race_main(void *arg)
{
    race *rc = arg;
    Curve__Echo__EchoRequest req = CURVE__ECHO__ECHO_REQUEST__INIT;
    req.message = "race";
    for (;;) {
        pthread_mutex_lock(&rc->lock);
        if (rc->stop) {
            pthread_mutex_unlock(&rc->lock);
            break;
        }
        int r = rpc_channel_call(rc->ch, ECHO_SERVICE_ID, ECHO_METHOD_ECHO, &req.base, NULL,
                                 &curve__echo__echo_response__descriptor, 5000, race_cb, rc, NULL);
        pthread_mutex_unlock(&rc->lock);
        if (r == 0)
            atomic_fetch_add(&rc->accepted, 1);
        else
            assert_int_equal(r, CURVE_ERR_BUSY); /* client bound reached: try again */
    }
    return NULL;
}

static void race_closed(void *arg)
{
    race *rc = arg;
    curve_completion_signal(&rc->closed, 0);
}

static void test_calls_racing_close(void **state)
{
    env *e = env_new(NULL, NULL);
    race rc = {.ch = e->ch};
    pthread_mutex_init(&rc.lock, NULL);
    curve_completion_init(&rc.closed);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, race_main, &rc), 0);
    uint64_t deadline = curve_now_mono_ms() + WAIT_MS;
    while (atomic_load(&rc.accepted) < 2000 && curve_now_mono_ms() < deadline)
        sched_yield();
    pthread_mutex_lock(&rc.lock);
    rpc_channel_close(e->ch, race_closed, &rc);
    rc.stop = true;
    pthread_mutex_unlock(&rc.lock);
    e->ch = NULL;
    assert_int_equal(curve_completion_wait(&rc.closed, WAIT_MS), 0);
    pthread_join(th, NULL);
    assert_true(atomic_load(&rc.accepted) >= 2000);
    assert_int_equal(atomic_load(&rc.callbacks), atomic_load(&rc.accepted));
    curve_completion_destroy(&rc.closed);
    pthread_mutex_destroy(&rc.lock);
    env_free(e);
}

/* ---- garbage on the wire: that connection is closed, the server keeps serving ---- */

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* Waits (bounded) until the server closes `fd`. */
static void expect_closed(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    uint64_t deadline = curve_now_mono_ms() + WAIT_MS;
    char buf[256];
    for (;;) {
        int left = (int)(deadline - curve_now_mono_ms());
        assert_true(left > 0);
        assert_true(poll(&p, 1, left) >= 0);
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return;
    }
}

static void test_garbage_closes_only_that_connection(void **state)
{
    env *e = env_new(NULL, NULL);
    assert_int_equal(echo_sync(e->ch, "before", 0, 0, 0, 0, NULL), 0);
    /* Random bytes. */
    int fd = raw_connect(e->port);
    uint8_t junk[4096];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 2654435761u >> 13);
    assert_int_equal(send(fd, junk, sizeof(junk), MSG_NOSIGNAL), (ssize_t)sizeof(junk));
    expect_closed(fd);
    close(fd);
    /* A valid header announcing an oversized body. */
    fd = raw_connect(e->port);
    rpc_frame_hdr h = {.type = RPC_FRAME_REQUEST,
                       .corr_id = 1,
                       .service_id = 1,
                       .method_id = 1,
                       .body_len = RPC_FRAME_BODY_MAX_DEFAULT + 1};
    uint8_t hb[RPC_FRAME_HDR_SIZE];
    rpc_frame_hdr_encode(&h, hb);
    assert_int_equal(send(fd, hb, sizeof(hb), MSG_NOSIGNAL), (ssize_t)sizeof(hb));
    expect_closed(fd);
    close(fd);
    /* A response frame sent to the server is a protocol violation. */
    fd = raw_connect(e->port);
    h = (rpc_frame_hdr){.type = RPC_FRAME_RESPONSE, .corr_id = 1};
    rpc_frame_hdr_encode(&h, hb);
    assert_int_equal(send(fd, hb, sizeof(hb), MSG_NOSIGNAL), (ssize_t)sizeof(hb));
    expect_closed(fd);
    close(fd);
    /* A half-open connection (partial header, then silence) does not block anyone. */
    int idle = raw_connect(e->port);
    assert_int_equal(send(idle, hb, 10, MSG_NOSIGNAL), 10);
    assert_int_equal(echo_sync(e->ch, "after", 0, 0, 5000, 0, NULL), 0);
    close(idle);
    env_free(e);
}

static void test_stalled_frame_closed(void **state)
{
    rpc_server_opts so = {.frame_timeout_ms = 200};
    env *e = env_new(&so, NULL);
    int idle = raw_connect(e->port); /* sends nothing: kept */
    int stalled = raw_connect(e->port);
    rpc_frame_hdr h = {
        .type = RPC_FRAME_REQUEST, .corr_id = 1, .service_id = 1, .method_id = 1, .body_len = 100};
    uint8_t hb[RPC_FRAME_HDR_SIZE];
    rpc_frame_hdr_encode(&h, hb);
    assert_int_equal(send(stalled, hb, sizeof(hb), MSG_NOSIGNAL), (ssize_t)sizeof(hb));
    uint64_t t0 = curve_now_mono_ms();
    expect_closed(stalled);
    assert_true(curve_now_mono_ms() - t0 >= 150);
    close(stalled);
    char c;
    assert_int_equal(recv(idle, &c, 1, MSG_DONTWAIT), -1);
    assert_int_equal(errno, EAGAIN);
    /* The channel's connection, idle between calls, is kept too. */
    assert_int_equal(echo_sync(e->ch, "x", 0, 0, 10, 0, NULL), 0);
    assert_int_equal(echo_sync(e->ch, "y", 500, 0, 10, 0, NULL), 0);
    close(idle);
    env_free(e);
}

/* ---- a misbehaving server: the channel fails the calls cleanly and keeps working ---- */

/* Reads one request frame header (and skips its body/attachment) from a raw socket. */
static void read_request(int fd, rpc_frame_hdr *h)
{
    uint8_t hb[RPC_FRAME_HDR_SIZE];
    size_t got = 0;
    while (got < sizeof(hb)) {
        ssize_t n = recv(fd, hb + got, sizeof(hb) - got, 0);
        assert_true(n > 0);
        got += (size_t)n;
    }
    rpc_frame_limits lim = {.body_max = 1 << 20, .attach_max = 1 << 20};
    assert_int_equal(rpc_frame_hdr_decode(hb, &lim, h, NULL), 0);
    size_t skip = h->body_len + h->attach_len;
    uint8_t junk[4096];
    while (skip > 0) {
        ssize_t n = recv(fd, junk, skip < sizeof(junk) ? skip : sizeof(junk), 0);
        assert_true(n > 0);
        skip -= (size_t)n;
    }
}

static void send_response(int fd, const rpc_frame_hdr *req, uint32_t method, int32_t status)
{
    rpc_frame_hdr h = {.type = RPC_FRAME_RESPONSE,
                       .corr_id = req->corr_id,
                       .service_id = req->service_id,
                       .method_id = method,
                       .status = status};
    uint8_t hb[RPC_FRAME_HDR_SIZE];
    rpc_frame_hdr_encode(&h, hb);
    assert_int_equal(send(fd, hb, sizeof(hb), MSG_NOSIGNAL), (ssize_t)sizeof(hb));
}

static void test_bad_server_responses(void **state)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sa.sin_port));
    curve_loop *loop;
    assert_int_equal(curve_loop_new("tbad", &loop), 0);
    assert_int_equal(curve_loop_start(loop), 0);
    rpc_channel *ch;
    assert_int_equal(rpc_channel_new(loop, addr, NULL, &ch), 0);

    /* 1: a response naming another method; 2: a positive status; 3: a body that is not an
     * EchoResponse; 4: garbage bytes, which close the connection. */
    one_result r[4];
    for (int i = 0; i < 4; i++) {
        Curve__Echo__EchoRequest req = CURVE__ECHO__ECHO_REQUEST__INIT;
        req.message = "q";
        curve_completion_init(&r[i].done);
        atomic_init(&r[i].calls, 0);
        assert_int_equal(rpc_channel_call(ch, ECHO_SERVICE_ID, ECHO_METHOD_ECHO, &req.base, NULL,
                                          &curve__echo__echo_response__descriptor, 10000, one_cb,
                                          &r[i], NULL),
                         0);
    }
    int fd = accept(lfd, NULL, NULL);
    assert_true(fd >= 0);
    rpc_frame_hdr h[4];
    for (int i = 0; i < 4; i++)
        read_request(fd, &h[i]);
    send_response(fd, &h[0], 77, 0);
    send_response(fd, &h[1], ECHO_METHOD_ECHO, 5);
    send_response(fd, &h[2], ECHO_METHOD_ECHO, 0); /* empty body: required field missing */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(curve_completion_wait(&r[i].done, WAIT_MS), 0);
        assert_int_equal(r[i].status, CURVE_ERR_RPC_PROTO);
    }
    assert_non_null(strstr(r[0].errmsg, "invalid"));
    assert_non_null(strstr(r[2].errmsg, "not a valid"));
    assert_int_equal(
        send(fd, "garbage-garbage-garbage-garbage-garbage-garbage-!", 50, MSG_NOSIGNAL), 50);
    assert_int_equal(curve_completion_wait(&r[3].done, WAIT_MS), 0);
    assert_int_equal(r[3].status, CURVE_ERR_RPC_CONN);
    expect_closed(fd);
    close(fd);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(atomic_load(&r[i].calls), 1);
        curve_completion_destroy(&r[i].done);
    }
    rpc_channel_close_sync(ch);
    curve_loop_free(loop);
    close(lfd);
}

/* ---- callbacks that cancel or close while the channel fails a batch of calls ---- */

/* Three calls wait for a connection that is refused. The first callback cancels the second
 * call (or closes the channel); every call must still complete exactly once. */
typedef struct reent {
    rpc_channel *ch;
    bool close_in_cb;
    uint64_t ids[3];
    atomic_int calls[3];
    int status[3];
    atomic_int total;
    curve_completion all_done, closed;
} reent;

typedef struct reent_arg {
    reent *r;
    int i;
} reent_arg;

static void reent_closed(void *arg)
{
    curve_completion_signal(&((reent *)arg)->closed, 0);
}

static void reent_cb(rpc_result *res, void *arg)
{
    reent_arg *a = arg;
    reent *r = a->r;
    atomic_fetch_add(&r->calls[a->i], 1);
    r->status[a->i] = res->status;
    if (a->i == 0) {
        if (r->close_in_cb)
            rpc_channel_close(r->ch, reent_closed, r);
        else
            (void)rpc_channel_cancel(r->ch, r->ids[1]);
    }
    if (atomic_fetch_add(&r->total, 1) + 1 == 3)
        curve_completion_signal(&r->all_done, 0);
}

static reent_arg reent_args[3];

/* Runs on the channel's loop, so that the three calls wait for the same connect attempt. */
static void reent_start(void *arg)
{
    reent *r = arg;
    Curve__Echo__EchoRequest req = CURVE__ECHO__ECHO_REQUEST__INIT;
    req.message = "reent";
    for (int i = 0; i < 3; i++) {
        reent_args[i] = (reent_arg){.r = r, .i = i};
        assert_int_equal(rpc_channel_call(r->ch, ECHO_SERVICE_ID, ECHO_METHOD_ECHO, &req.base,
                                          NULL, &curve__echo__echo_response__descriptor, 10000,
                                          reent_cb, &reent_args[i], &r->ids[i]),
                         0);
    }
}

static void run_reentrant(bool close_in_cb)
{
    env *e = env_new(NULL, NULL);
    rpc_server_stop(e->srv, 0); /* connections to its port are now refused */
    reent r = {.ch = e->ch, .close_in_cb = close_in_cb};
    curve_completion_init(&r.all_done);
    curve_completion_init(&r.closed);
    assert_int_equal(curve_loop_call_sync(e->cli_loop, reent_start, &r), 0);
    assert_int_equal(curve_completion_wait(&r.all_done, WAIT_MS), 0);
    if (close_in_cb) {
        assert_int_equal(curve_completion_wait(&r.closed, WAIT_MS), 0);
        e->ch = NULL;
    } else {
        rpc_channel_close_sync(e->ch); /* every callback has run once the close completes */
        e->ch = NULL;
    }
    assert_int_equal(r.status[0], CURVE_ERR_RPC_CONN);
    /* Calls already being failed keep their status when the channel closes meanwhile. */
    if (close_in_cb)
        assert_true(r.status[1] == CURVE_ERR_RPC_CONN || r.status[1] == CURVE_ERR_SHUTDOWN);
    else
        assert_int_equal(r.status[1], CURVE_ERR_CANCELED);
    assert_true(r.status[2] == CURVE_ERR_RPC_CONN || r.status[2] == CURVE_ERR_SHUTDOWN);
    for (int i = 0; i < 3; i++)
        assert_int_equal(atomic_load(&r.calls[i]), 1);
    assert_int_equal(atomic_load(&r.total), 3);
    curve_completion_destroy(&r.all_done);
    curve_completion_destroy(&r.closed);
    env_free(e);
}

static void test_callback_cancels_sibling(void **state)
{
    run_reentrant(false);
}

static void test_callback_closes_channel(void **state)
{
    run_reentrant(true);
}

/* ---- graceful close towards a peer that does not read is bounded ---- */

static void stuck_closed(void *arg)
{
    curve_completion_signal(arg, 0);
}

/* The channel's connection has megabytes queued for a server that stopped reading (SIGSTOP,
 * a hung process): closing the channel must still complete, after a bounded flush attempt. */
static void test_close_with_stuck_peer(void **state)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sa.sin_port));
    curve_loop *loop;
    assert_int_equal(curve_loop_new("tstuck", &loop), 0);
    assert_int_equal(curve_loop_start(loop), 0);
    rpc_channel *ch;
    assert_int_equal(rpc_channel_new(loop, addr, NULL, &ch), 0);

    enum { BIG = 48 << 20 }; /* far more than the socket buffers on both sides hold */
    curve_iobuf att;
    curve_iobuf_init(&att);
    curve_buf *b = curve_buf_new(BIG);
    assert_non_null(b);
    memset(curve_buf_data(b), 0x5a, BIG);
    curve_buf_set_len(b, BIG);
    assert_int_equal(curve_iobuf_append(&att, b, 0, BIG), 0);
    curve_buf_unref(b);
    Curve__Echo__EchoRequest req = CURVE__ECHO__ECHO_REQUEST__INIT;
    req.message = "stuck";
    one_result r;
    curve_completion_init(&r.done);
    atomic_init(&r.calls, 0);
    int rc = rpc_channel_call(ch, ECHO_SERVICE_ID, ECHO_METHOD_ECHO, &req.base, &att,
                              &curve__echo__echo_response__descriptor, 60000, one_cb, &r, NULL);
    assert_int_equal(rc, 0);
    /* Accept and read the start of the request (so the client is connected and writing), then
     * never read again. */
    int fd = accept(lfd, NULL, NULL);
    assert_true(fd >= 0);
    uint8_t hb[RPC_FRAME_HDR_SIZE];
    size_t got = 0;
    while (got < sizeof(hb)) {
        ssize_t n = recv(fd, hb + got, sizeof(hb) - got, 0);
        assert_true(n > 0);
        got += (size_t)n;
    }
    rpc_frame_limits lim = {.body_max = 1 << 20, .attach_max = BIG};
    rpc_frame_hdr h;
    assert_int_equal(rpc_frame_hdr_decode(hb, &lim, &h, NULL), 0);
    assert_int_equal(h.attach_len, BIG);

    curve_completion closed;
    curve_completion_init(&closed);
    uint64_t t0 = curve_now_mono_ms();
    rpc_channel_close(ch, stuck_closed, &closed);
    assert_int_equal(curve_completion_wait(&closed, WAIT_MS), 0);
    uint64_t took = curve_now_mono_ms() - t0;
    print_message("close with a stuck peer took %llu ms\n", (unsigned long long)took);
    assert_int_equal(curve_completion_wait(&r.done, WAIT_MS), 0);
    assert_int_equal(r.status, CURVE_ERR_SHUTDOWN);
    assert_int_equal(atomic_load(&r.calls), 1);
    curve_completion_destroy(&r.done);
    curve_completion_destroy(&closed);
    curve_loop_free(loop);
    close(fd);
    close(lfd);
}

/* ---- out of descriptors: the listener pauses instead of spinning ---- */

static int highest_open_fd(void)
{
    int hi = -1;
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        int fd = atoi(de->d_name);
        if (de->d_name[0] != '.' && fd > hi && fd != dirfd(d))
            hi = fd;
    }
    closedir(d);
    return hi;
}

static size_t count_in_file(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[4096];
    size_t n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* accept() failing with EMFILE leaves the connection in the backlog, so a level-triggered poll
 * fires again at once: without a pause the listener's loop spins, logging on every turn. */
static void test_accept_emfile_pauses(void **state)
{
    env *e = env_new(NULL, NULL);
    assert_int_equal(echo_sync(e->ch, "warm", 0, 0, 0, 0, NULL), 0);
    char dir[] = "/tmp/curve-rpc-emfile-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char logpath[128];
    snprintf(logpath, sizeof(logpath), "%s/log", dir);
    assert_int_equal(curve_log_open(logpath), 0);

    int cfd = socket(AF_INET, SOCK_STREAM, 0); /* created before the descriptors run out */
    assert_true(cfd >= 0);
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    struct rlimit low = old;
    low.rlim_cur = (rlim_t)highest_open_fd() + 1;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int fillers[1024], nfill = 0;
    while (nfill < 1024) { /* fill the holes below the limit */
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            break;
        fillers[nfill++] = fd;
    }
    assert_true(nfill < 1024);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)e->port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int crc = connect(cfd, (struct sockaddr *)&sa, sizeof(sa)); /* completes in the backlog */
    /* A measuring window (not synchronisation): how often the listener retries meanwhile. */
    usleep(500 * 1000);
    for (int i = 0; i < nfill; i++)
        close(fillers[i]);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_int_equal(crc, 0);
    /* The listener comes back: the pending connection is accepted and served. */
    Curve__Echo__EchoRequest req = CURVE__ECHO__ECHO_REQUEST__INIT;
    req.message = "after";
    rpc_out *o;
    rpc_frame_hdr h = {.type = RPC_FRAME_REQUEST, .corr_id = 5, .service_id = ECHO_SERVICE_ID,
                       .method_id = ECHO_METHOD_ECHO};
    rpc_frame_limits lim = {.body_max = 1 << 20, .attach_max = 1 << 20};
    assert_int_equal(rpc_out_new(&h, &req.base, NULL, 0, NULL, &lim, &o), 0);
    assert_int_equal(send(cfd, o->data, o->len, MSG_NOSIGNAL), (ssize_t)o->len);
    rpc_out_free(o);
    struct pollfd p = {.fd = cfd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, WAIT_MS), 1);
    uint8_t hb[RPC_FRAME_HDR_SIZE];
    assert_int_equal(recv(cfd, hb, sizeof(hb), MSG_WAITALL), (ssize_t)sizeof(hb));
    rpc_frame_hdr rh;
    assert_int_equal(rpc_frame_hdr_decode(hb, &lim, &rh, NULL), 0);
    assert_true(rh.corr_id == 5 && rh.status == 0);
    close(cfd);

    assert_int_equal(curve_log_open(NULL), 0);
    size_t warnings = count_in_file(logpath, "accept on port");
    print_message("accept warnings during 500 ms without descriptors: %zu\n", warnings);
    assert_true(warnings >= 1);  /* the failure is reported */
    assert_true(warnings <= 20); /* about one per TCP_ACCEPT_RETRY_MS, not one per loop turn */
    unlink(logpath);
    rmdir(dir);
    env_free(e);
}

/* ---- a failed start may be retried ---- */

static void test_start_retry_after_failure(void **state)
{
    env *e = env_new(NULL, NULL);
    /* A second server on the first one's port fails (address in use), then starts elsewhere. */
    rpc_server *s2;
    assert_int_equal(rpc_server_new(e->srv_loops, NULL, &s2), 0);
    echo_service svc2;
    echo_service_init(&svc2, NULL);
    assert_int_equal(rpc_server_add_service(s2, &svc2.def), 0);
    assert_int_equal(rpc_server_start(s2, e->addr), -EADDRINUSE);
    assert_int_equal(rpc_server_start(s2, "127.0.0.1:0"), 0);
    char addr2[64];
    snprintf(addr2, sizeof(addr2), "127.0.0.1:%d", rpc_server_port(s2));
    rpc_channel *ch2;
    assert_int_equal(rpc_channel_new(e->cli_loop, addr2, NULL, &ch2), 0);
    assert_int_equal(echo_sync(ch2, "second", 0, 0, 10, 0, NULL), 0);
    rpc_channel_close_sync(ch2);
    rpc_server_free(s2);
    env_free(e);
}

/* ---- a connect that fails synchronously still completes calls later ---- */

static int refusing_connect(curve_loop *loop, const char *addr, const rpc_conn_handler *h,
                            void *ud, const rpc_frame_limits *lim, rpc_conn **out)
{
    return -EMFILE; /* e.g. no descriptor left for the socket */
}

typedef struct sync_fail {
    rpc_channel *ch;
    bool returned;         /* rpc_channel_call returned (loop thread only) */
    bool ran_inside_call;  /* the callback ran before rpc_channel_call returned */
    int status;
    char errmsg[RPC_CHANNEL_ERRMSG_MAX];
    atomic_int calls;
    curve_completion done;
} sync_fail;

static void sync_fail_cb(rpc_result *r, void *arg)
{
    sync_fail *f = arg;
    f->ran_inside_call = !f->returned;
    f->status = r->status;
    snprintf(f->errmsg, sizeof(f->errmsg), "%s", r->errmsg);
    if (atomic_fetch_add(&f->calls, 1) == 0)
        curve_completion_signal(&f->done, 0);
}

static void sync_fail_start(void *arg)
{
    sync_fail *f = arg;
    Curve__Echo__EchoRequest req = CURVE__ECHO__ECHO_REQUEST__INIT;
    req.message = "x";
    f->returned = false;
    int rc = rpc_channel_call(f->ch, ECHO_SERVICE_ID, ECHO_METHOD_ECHO, &req.base, NULL, NULL,
                              5000, sync_fail_cb, f, NULL);
    assert_int_equal(rc, 0);
    f->returned = true;
}

static void test_sync_connect_failure_completes_later(void **state)
{
    rpc_transport_ops ops = *rpc_transport_tcp();
    ops.connect = refusing_connect;
    rpc_channel_opts co = {.transport = &ops, .backoff_initial_ms = 10, .backoff_max_ms = 10};
    curve_loop *loop;
    assert_int_equal(curve_loop_new("tsyncf", &loop), 0);
    assert_int_equal(curve_loop_start(loop), 0);
    sync_fail f = {0};
    assert_int_equal(rpc_channel_new(loop, "127.0.0.1:9", &co, &f.ch), 0);
    for (int round = 0; round < 2; round++) { /* the second attempt follows a backoff */
        curve_completion_init(&f.done);
        atomic_store(&f.calls, 0);
        assert_int_equal(curve_loop_call_sync(loop, sync_fail_start, &f), 0);
        assert_int_equal(curve_completion_wait(&f.done, WAIT_MS), 0);
        assert_false(f.ran_inside_call); /* "returns 0 => the callback runs later" */
        assert_int_equal(f.status, CURVE_ERR_RPC_CONN);
        assert_non_null(strstr(f.errmsg, "connect"));
        curve_completion_destroy(&f.done);
    }
    rpc_channel_close_sync(f.ch);
    assert_int_equal(atomic_load(&f.calls), 1);
    curve_loop_free(loop);
}

/* ---- stop returns once every connection is closed, even towards a peer that does not read ---- */

static bool metrics_has(curve_metrics *reg, const char *line)
{
    char *text;
    size_t len;
    assert_int_equal(curve_metrics_render_prometheus(reg, &text, &len), 0);
    bool found = strstr(text, line) != NULL;
    free(text);
    return found;
}

static void test_stop_closes_connections_of_stuck_peers(void **state)
{
    curve_metrics *reg;
    assert_int_equal(curve_metrics_new(&reg), 0);
    rpc_server_opts so = {.metrics = reg, .metrics_name = "stuck"};
    env *e = env_new(&so, NULL);
    /* A raw client sends one echo with a 32 MiB attachment and never reads the reply. */
    enum { BIG = 32 << 20 };
    int fd = raw_connect(e->port);
    Curve__Echo__EchoRequest req = CURVE__ECHO__ECHO_REQUEST__INIT;
    req.message = "big";
    rpc_frame_hdr h = {.type = RPC_FRAME_REQUEST, .corr_id = 1, .service_id = ECHO_SERVICE_ID,
                       .method_id = ECHO_METHOD_ECHO};
    curve_iobuf att;
    curve_iobuf_init(&att);
    curve_buf *b = curve_buf_new(BIG);
    memset(curve_buf_data(b), 0x3c, BIG);
    curve_buf_set_len(b, BIG);
    assert_int_equal(curve_iobuf_append(&att, b, 0, BIG), 0);
    rpc_frame_limits lim = {.body_max = 1 << 20, .attach_max = BIG};
    rpc_out *o;
    assert_int_equal(rpc_out_new(&h, &req.base, NULL, 0, &att, &lim, &o), 0);
    assert_int_equal(send(fd, o->data, o->len, MSG_NOSIGNAL), (ssize_t)o->len);
    for (size_t off = 0; off < BIG;) {
        ssize_t n = send(fd, curve_buf_data(b) + off, BIG - off, MSG_NOSIGNAL);
        assert_true(n > 0);
        off += (size_t)n;
    }
    rpc_out_free(o);
    curve_buf_unref(b);
    /* The reply has been handed to the transport (and mostly sits in its queue). */
    uint64_t deadline = curve_now_mono_ms() + WAIT_MS;
    while (!metrics_has(reg, "curve_rpc_server_handler_seconds_count{server=\"stuck\"} 1\n")) {
        assert_true(curve_now_mono_ms() < deadline);
        usleep(1000); /* polling a condition with a deadline */
    }
    assert_true(metrics_has(reg, "curve_rpc_server_connections{server=\"stuck\"} 1\n"));
    rpc_server_stop(e->srv, 0);
    assert_true(metrics_has(reg, "curve_rpc_server_connections{server=\"stuck\"} 0\n"));
    close(fd);
    env_free(e);
    curve_metrics_free(reg);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sync_echo_and_errors),
        cmocka_unit_test(test_many_in_flight_from_threads),
        cmocka_unit_test(test_timeout_and_cancel),
        cmocka_unit_test(test_overload_and_client_bound),
        cmocka_unit_test(test_global_inflight_bound),
        cmocka_unit_test(test_byte_bound_and_max_conns),
        cmocka_unit_test(test_connect_backoff),
        cmocka_unit_test(test_failpoints),
        cmocka_unit_test(test_server_metrics),
        cmocka_unit_test(test_server_gone_then_back),
        cmocka_unit_test(test_net_stats),
        cmocka_unit_test(test_close_fails_pending),
        cmocka_unit_test(test_calls_racing_close),
        cmocka_unit_test(test_garbage_closes_only_that_connection),
        cmocka_unit_test(test_bad_server_responses),
        cmocka_unit_test(test_stalled_frame_closed),
        cmocka_unit_test(test_callback_cancels_sibling),
        cmocka_unit_test(test_callback_closes_channel),
        cmocka_unit_test(test_close_with_stuck_peer),
        cmocka_unit_test(test_accept_emfile_pauses),
        cmocka_unit_test(test_start_retry_after_failure),
        cmocka_unit_test(test_sync_connect_failure_completes_later),
        cmocka_unit_test(test_stop_closes_connections_of_stuck_peers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
