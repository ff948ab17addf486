/* Unit tests of the client's retry/failover rules against fake in-process HTTP servers
 * (no etcd): failover on "unavailable", no txn retry once a request may have been applied,
 * bounded timeouts, malformed answers, HTTP errors. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/failpoint.h"
#include "curve/errors.h"
#include "etcd/etcd.h"

typedef enum {
    FAKE_OK_RANGE,    /* 200 with a one-key range answer */
    FAKE_UNAVAILABLE, /* 503 {"error":"etcdserver: no leader","code":14} */
    FAKE_HANG,        /* reads the request, never answers */
    FAKE_GARBAGE,     /* 200 with a body that is not JSON */
    FAKE_404,         /* 404 with an empty body */
} fake_mode;

#define FAKE_MAX_CONNS 16
#define FAKE_BUF 65536

typedef struct fake_server {
    int lfd;
    int port;
    fake_mode mode;
    atomic_int requests;
    atomic_bool stop;
    int wake[2]; /* pipe to wake the poll loop */
    pthread_t thread;
    int conns[FAKE_MAX_CONNS];
    char *bufs[FAKE_MAX_CONNS];
    size_t lens[FAKE_MAX_CONNS];
} fake_server;

static const char RANGE_BODY[] =
    "{\"header\":{\"revision\":\"7\"},\"kvs\":[{\"key\":\"YQ==\",\"create_revision\":\"2\","
    "\"mod_revision\":\"2\",\"version\":\"1\",\"value\":\"MQ==\"}],\"count\":\"1\"}";
static const char UNAVAIL_BODY[] =
    "{\"error\":\"etcdserver: no leader\",\"message\":\"etcdserver: no leader\",\"code\":14}";

static void respond(int fd, int status, const char *reason, const char *body)
{
    char hdr[256];
    int n = snprintf(hdr, sizeof(hdr),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     status, reason, strlen(body));
    ssize_t w = write(fd, hdr, (size_t)n);
    w = write(fd, body, strlen(body));
    (void)w;
}

/* Returns true when conn i holds a complete request (headers + Content-Length body). */
static bool take_request(fake_server *s, int i)
{
    char *b = s->bufs[i];
    char *end = memmem(b, s->lens[i], "\r\n\r\n", 4);
    if (!end)
        return false;
    size_t hlen = (size_t)(end - b) + 4;
    size_t clen = 0;
    char *cl = memmem(b, hlen, "Content-Length:", 15);
    if (cl)
        clen = strtoul(cl + 15, NULL, 10);
    if (s->lens[i] < hlen + clen)
        return false;
    memmove(b, b + hlen + clen, s->lens[i] - hlen - clen);
    s->lens[i] -= hlen + clen;
    return true;
}

static void *fake_main(void *arg)
{
    fake_server *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd p[FAKE_MAX_CONNS + 2];
        int n = 0;
        p[n++] = (struct pollfd){.fd = s->wake[0], .events = POLLIN};
        p[n++] = (struct pollfd){.fd = s->lfd, .events = POLLIN};
        int idx[FAKE_MAX_CONNS];
        for (int i = 0; i < FAKE_MAX_CONNS; i++)
            if (s->conns[i] >= 0) {
                idx[n - 2] = i;
                p[n++] = (struct pollfd){.fd = s->conns[i], .events = POLLIN};
            }
        if (poll(p, (nfds_t)n, 1000) <= 0)
            continue;
        if (p[1].revents & POLLIN) {
            int fd = accept(s->lfd, NULL, NULL);
            for (int i = 0; i < FAKE_MAX_CONNS && fd >= 0; i++)
                if (s->conns[i] < 0) {
                    s->conns[i] = fd;
                    s->lens[i] = 0;
                    fd = -1;
                }
            if (fd >= 0)
                close(fd);
        }
        for (int k = 2; k < n; k++) {
            if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            int i = idx[k - 2];
            ssize_t r = read(s->conns[i], s->bufs[i] + s->lens[i], FAKE_BUF - s->lens[i]);
            if (r <= 0) {
                close(s->conns[i]);
                s->conns[i] = -1;
                continue;
            }
            s->lens[i] += (size_t)r;
            while (take_request(s, i)) {
                atomic_fetch_add(&s->requests, 1);
                switch (s->mode) {
                case FAKE_OK_RANGE:
                    respond(s->conns[i], 200, "OK", RANGE_BODY);
                    break;
                case FAKE_UNAVAILABLE:
                    respond(s->conns[i], 503, "Service Unavailable", UNAVAIL_BODY);
                    break;
                case FAKE_GARBAGE:
                    respond(s->conns[i], 200, "OK", "<html>not json</html>");
                    break;
                case FAKE_404:
                    respond(s->conns[i], 404, "Not Found", "");
                    break;
                case FAKE_HANG:
                    break;
                }
            }
        }
    }
    return NULL;
}

static void fake_start(fake_server *s, fake_mode mode)
{
    memset(s, 0, sizeof(*s));
    s->mode = mode;
    for (int i = 0; i < FAKE_MAX_CONNS; i++) {
        s->conns[i] = -1;
        s->bufs[i] = malloc(FAKE_BUF);
        assert_non_null(s->bufs[i]);
    }
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->lfd, 16), 0);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &alen), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pipe(s->wake), 0);
    assert_int_equal(pthread_create(&s->thread, NULL, fake_main, s), 0);
}

static void fake_stop(fake_server *s)
{
    atomic_store(&s->stop, true);
    ssize_t w = write(s->wake[1], "x", 1);
    (void)w;
    pthread_join(s->thread, NULL);
    for (int i = 0; i < FAKE_MAX_CONNS; i++) {
        if (s->conns[i] >= 0)
            close(s->conns[i]);
        free(s->bufs[i]);
    }
    close(s->lfd);
    close(s->wake[0]);
    close(s->wake[1]);
}

static etcd_client *client_for(fake_server *a, fake_server *b, uint32_t timeout_ms)
{
    char e1[64], e2[64];
    snprintf(e1, sizeof(e1), "127.0.0.1:%d", a->port);
    snprintf(e2, sizeof(e2), "http://127.0.0.1:%d/", b->port);
    const char *eps[2] = {e1, e2};
    etcd_client_opts o;
    etcd_client_opts_init(&o);
    o.request_timeout_ms = timeout_ms;
    o.deadline_ms = 4 * timeout_ms;
    etcd_client *c;
    assert_int_equal(etcd_client_new(eps, 2, &o, &c), 0);
    return c;
}

static void test_failover_on_unavailable(void **state)
{
    fake_server a, b;
    fake_start(&a, FAKE_UNAVAILABLE);
    fake_start(&b, FAKE_OK_RANGE);
    etcd_client *c = client_for(&a, &b, 1000);
    etcd_range_result r;
    assert_int_equal(etcd_get(c, "a", &r), 0);
    assert_int_equal(r.n_kvs, 1);
    assert_string_equal(r.kvs[0].value, "1");
    assert_int_equal(r.revision, 7);
    etcd_range_result_free(&r);
    assert_int_equal(atomic_load(&a.requests), 1);
    assert_int_equal(atomic_load(&b.requests), 1);
    assert_int_equal(etcd_client_current_endpoint(c), 1);
    /* the failover sticks: the next call goes straight to b */
    assert_int_equal(etcd_get(c, "a", &r), 0);
    etcd_range_result_free(&r);
    assert_int_equal(atomic_load(&a.requests), 1);
    assert_int_equal(atomic_load(&b.requests), 2);
    etcd_client_free(c);
    fake_stop(&a);
    fake_stop(&b);
}

static void test_txn_not_retried_when_maybe_applied(void **state)
{
    fake_server a, b;
    fake_start(&a, FAKE_UNAVAILABLE);
    fake_start(&b, FAKE_OK_RANGE);
    etcd_client *c = client_for(&a, &b, 1000);
    etcd_compare cmp = {.key = "k", .target = ETCD_CMP_VERSION, .result = ETCD_CMP_EQUAL};
    etcd_txn_result t;
    assert_int_equal(etcd_txn(c, &cmp, 1, NULL, 0, NULL, 0, &t), CURVE_ERR_ETCD);
    assert_non_null(strstr(etcd_last_error(), "no leader"));
    assert_int_equal(atomic_load(&b.requests), 0);
    etcd_client_free(c);
    fake_stop(&a);

    /* a server that takes the request and never answers: timeout, and no retry elsewhere */
    fake_start(&a, FAKE_HANG);
    c = client_for(&a, &b, 300);
    uint64_t t0 = curve_now_mono_ms();
    assert_int_equal(etcd_txn(c, &cmp, 1, NULL, 0, NULL, 0, &t), CURVE_ERR_TIMEOUT);
    uint64_t el = curve_now_mono_ms() - t0;
    assert_true(el >= 250 && el < 2000);
    assert_int_equal(atomic_load(&a.requests), 1);
    assert_int_equal(atomic_load(&b.requests), 0);
    /* ... whereas a read is retried on the next endpoint */
    etcd_range_result r;
    assert_int_equal(etcd_get(c, "a", &r), 0);
    etcd_range_result_free(&r);
    assert_int_equal(atomic_load(&b.requests), 1);
    etcd_client_free(c);
    fake_stop(&a);
    fake_stop(&b);
}

static void test_timeout_bounded(void **state)
{
    fake_server a, b;
    fake_start(&a, FAKE_HANG);
    fake_start(&b, FAKE_HANG);
    etcd_client *c = client_for(&a, &b, 200); /* deadline 800 ms */
    etcd_range_result r;
    uint64_t t0 = curve_now_mono_ms();
    assert_int_equal(etcd_get(c, "a", &r), CURVE_ERR_TIMEOUT);
    uint64_t el = curve_now_mono_ms() - t0;
    assert_true(el >= 700 && el < 2000);
    assert_true(strlen(etcd_last_error()) > 0);
    /* both endpoints tried, at most max_attempts (4) attempts in all */
    int tries = atomic_load(&a.requests) + atomic_load(&b.requests);
    assert_true(atomic_load(&a.requests) >= 1 && atomic_load(&b.requests) >= 1 && tries <= 4);
    etcd_client_free(c);
    fake_stop(&a);
    fake_stop(&b);
}

static void test_bad_answers(void **state)
{
    fake_server a, b;
    fake_start(&a, FAKE_GARBAGE);
    fake_start(&b, FAKE_404);
    etcd_client *c = client_for(&a, &b, 500);
    etcd_range_result r;
    assert_int_equal(etcd_get(c, "a", &r), CURVE_ERR_ETCD);
    assert_non_null(strstr(etcd_last_error(), "malformed"));
    assert_int_equal(atomic_load(&b.requests), 0); /* an answer is not retried elsewhere */
    etcd_client_free(c);
    c = client_for(&b, &a, 500);
    assert_int_equal(etcd_get(c, "a", &r), CURVE_ERR_ETCD);
    etcd_client_free(c);
    fake_stop(&a);
    fake_stop(&b);
}

static void test_bad_config(void **state)
{
    etcd_client *c;
    const char *none[1] = {""};
    assert_int_equal(etcd_client_new(none, 1, NULL, &c), -EINVAL);
    assert_int_equal(etcd_client_new(none, 0, NULL, &c), -EINVAL);
    const char *ok[1] = {"127.0.0.1:1"};
    etcd_client_opts o;
    etcd_client_opts_init(&o);
    o.deadline_ms = 0;
    assert_int_equal(etcd_client_new(ok, 1, &o, &c), -EINVAL);
    assert_int_equal(etcd_client_new(ok, 1, NULL, &c), 0);
    assert_int_equal(etcd_put(c, "k", NULL, 3, 0, false, NULL), -EINVAL);
    assert_int_equal(etcd_lease_grant(c, 0, 0, NULL, NULL), -EINVAL);
    etcd_client_free(c);
}

/* Failpoint "etcd.request": every attempt fails as a refused connection without reaching the
 * server (a process cut off from etcd); txns are retried (nothing was sent); switching it off
 * restores service at once. */
static void test_failpoint_cuts_off(void **state)
{
    fake_server a, b;
    fake_start(&a, FAKE_OK_RANGE);
    fake_start(&b, FAKE_OK_RANGE);
    etcd_client *c = client_for(&a, &b, 300);
    etcd_range_result r;
    assert_int_equal(etcd_get(c, "a", &r), 0);
    etcd_range_result_free(&r);
    int before = atomic_load(&a.requests) + atomic_load(&b.requests);
    assert_int_equal(curve_failpoint_set("etcd.request", "return(ECONNREFUSED)"), 0);
    uint64_t t0 = curve_now_mono_ms();
    assert_int_equal(etcd_get(c, "a", &r), -ECONNREFUSED);
    assert_non_null(strstr(etcd_last_error(), "failpoint etcd.request"));
    etcd_compare cmp = {.key = "a", .target = ETCD_CMP_VERSION, .result = ETCD_CMP_EQUAL};
    etcd_op op = {.type = ETCD_OP_PUT, .key = "a", .value = "1", .value_len = 1};
    etcd_txn_result tr;
    assert_int_equal(etcd_txn(c, &cmp, 1, &op, 1, NULL, 0, &tr), -ECONNREFUSED);
    assert_true(curve_now_mono_ms() - t0 < 4 * 300 * 2); /* bounded by the deadlines */
    assert_int_equal(atomic_load(&a.requests) + atomic_load(&b.requests), before);
    assert_true(curve_failpoint_hits("etcd.request") >= 2);
    assert_int_equal(curve_failpoint_set("etcd.request", "off"), 0);
    assert_int_equal(etcd_get(c, "a", &r), 0);
    assert_int_equal(r.n_kvs, 1);
    etcd_range_result_free(&r);
    assert_int_equal(atomic_load(&a.requests) + atomic_load(&b.requests), before + 1);
    /* a count: the first attempt fails, the retry on the next endpoint succeeds */
    assert_int_equal(curve_failpoint_set("etcd.request", "1*return(ECONNREFUSED)"), 0);
    assert_int_equal(etcd_get(c, "a", &r), 0);
    etcd_range_result_free(&r);
    curve_failpoint_clear_all();
    etcd_client_free(c);
    fake_stop(&a);
    fake_stop(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failover_on_unavailable),
        cmocka_unit_test(test_txn_not_retried_when_maybe_applied),
        cmocka_unit_test(test_timeout_bounded),
        cmocka_unit_test(test_bad_answers),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_failpoint_cuts_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
