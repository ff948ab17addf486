/* Unit tests of the admin HTTP server (src/admin), driven through libcurl on 127.0.0.1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "admin/admin.h"
#include "common/clock.h"
#include "common/failpoint.h"
#include "common/metrics.h"

#define HTTP_TIMEOUT_MS 5000 /* bound of every request in these tests */

typedef struct http_resp {
    long status;
    char *body;
    size_t len;
    char ctype[128];
    char allow[64];
} http_resp;

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    http_resp *r = ud;
    size_t n = size * nmemb;
    char *nb = realloc(r->body, r->len + n + 1);
    if (nb == NULL)
        return 0;
    memcpy(nb + r->len, ptr, n);
    r->body = nb;
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

static size_t header_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    http_resp *r = ud;
    size_t n = size * nmemb;
    if (n > 6 && strncasecmp(ptr, "Allow:", 6) == 0) {
        snprintf(r->allow, sizeof(r->allow), "%.*s", (int)(n - 6), ptr + 6);
        r->allow[strcspn(r->allow, "\r\n")] = '\0';
    }
    return n;
}

/* Performs `method` on http://127.0.0.1:port<path> with an optional body. */
static void http(uint16_t port, const char *method, const char *path, const char *body,
                 size_t body_len, http_resp *r)
{
    char url[512];
    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", (unsigned)port, path);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)HTTP_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body != NULL ? body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", method, url, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    char *ct = NULL;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    if (ct != NULL)
        snprintf(r->ctype, sizeof(r->ctype), "%s", ct);
    if (r->body == NULL)
        r->body = calloc(1, 1);
    curl_easy_cleanup(c);
}

static void get(uint16_t port, const char *path, http_resp *r)
{
    http(port, "GET", path, NULL, 0, r);
}

/* ---- fixture ---- */

typedef struct fixture {
    curve_clock_manual clk;
    curve_metrics *reg;
    curve_admin *admin;
    curve_counter *ops;
    curve_latency *lat;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    curve_clock_manual_init(&f->clk, 100ull * 1000000000ull);
    assert_int_equal(curve_metrics_new(&f->reg), 0);
    const char *labels[] = {"copyset", "4294967297", NULL};
    assert_int_equal(curve_metrics_counter(f->reg, "demo_ops_total", "Ops.", labels, &f->ops), 0);
    assert_int_equal(
        curve_metrics_latency(f->reg, "demo_lat_seconds", "Lat.", NULL, &f->clk.base, 10, &f->lat), 0);
    curve_counter_add(f->ops, 42);
    curve_latency_record(f->lat, 100);
    curve_admin_opts o = {.host = "127.0.0.1",
                          .port = 0,
                          .role = "testd",
                          .version = "9.9.9",
                          .metrics = f->reg,
                          .clock = &f->clk.base};
    assert_int_equal(curve_admin_start(&o, &f->admin), 0);
    assert_true(curve_admin_port(f->admin) != 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    curve_admin_stop(f->admin);
    curve_metrics_free(f->reg);
    free(f);
    return 0;
}

/* ---- tests ---- */

static void test_metrics_endpoint(void **state)
{
    fixture *f = *state;
    http_resp r;
    get(curve_admin_port(f->admin), "/metrics", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.ctype, "text/plain; version=0.0.4"));
    assert_non_null(strstr(r.body, "# TYPE demo_ops_total counter\n"
                                   "demo_ops_total{copyset=\"4294967297\"} 42\n"));
    assert_non_null(strstr(r.body, "demo_lat_seconds{quantile=\"0.5\"} 0.0001\n"));
    assert_non_null(strstr(r.body, "demo_lat_seconds_max 0.0001\n"));
    free(r.body);

    /* Values are live. */
    curve_counter_add(f->ops, 8);
    get(curve_admin_port(f->admin), "/metrics", &r);
    assert_non_null(strstr(r.body, "demo_ops_total{copyset=\"4294967297\"} 50\n"));
    free(r.body);

    http(curve_admin_port(f->admin), "HEAD", "/metrics", NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    free(r.body);
}

static int health_state; /* 0 healthy */

static int health_cb(void *ctx, char *reason, size_t len)
{
    if (*(int *)ctx == 0)
        return 0;
    snprintf(reason, len, "disk %s failed", "/data/3");
    return 1;
}

static void test_health(void **state)
{
    fixture *f = *state;
    http_resp r;
    get(curve_admin_port(f->admin), "/health", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "OK\n");
    free(r.body);

    health_state = 1;
    curve_admin_set_health_cb(f->admin, health_cb, &health_state);
    get(curve_admin_port(f->admin), "/health", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "disk /data/3 failed\n");
    free(r.body);

    health_state = 0;
    get(curve_admin_port(f->admin), "/health", &r);
    assert_int_equal(r.status, 200);
    free(r.body);
    curve_admin_set_health_cb(f->admin, NULL, NULL);
}

static void status_cb(void *ctx, json_t *obj)
{
    json_object_set_new(obj, "copysets", json_integer(*(int *)ctx));
    json_object_set_new(obj, "role", json_string("leader"));
}

static double nan_cb(void *ctx)
{
    return NAN;
}

static void test_status(void **state)
{
    fixture *f = *state;
    http_resp r;
    json_error_t jerr;
    int ncopysets = 17;
    curve_gauge *nan_gauge = NULL;
    assert_int_equal(curve_metrics_gauge_fn(f->reg, "demo_nan", "NaN.", NULL, nan_cb, NULL,
                                            &nan_gauge),
                     0);

    curve_clock_manual_advance(&f->clk, 65ull * 1000000000ull);
    get(curve_admin_port(f->admin), "/status", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.ctype, "application/json"));
    json_t *o = json_loads(r.body, 0, &jerr);
    if (o == NULL)
        fail_msg("bad JSON (%s): %s", jerr.text, r.body);
    assert_string_equal(json_string_value(json_object_get(o, "role")), "testd");
    assert_string_equal(json_string_value(json_object_get(o, "version")), "9.9.9");
    assert_int_equal(json_integer_value(json_object_get(o, "uptime_s")), 65);
    assert_int_equal(json_integer_value(json_object_get(o, "pid")), getpid());
    json_t *m = json_object_get(o, "metrics");
    assert_true(json_is_object(m));
    json_t *ops = json_array_get(json_object_get(m, "demo_ops_total"), 0);
    assert_int_equal(json_integer_value(json_object_get(ops, "value")), 42);
    assert_string_equal(json_string_value(json_object_get(json_object_get(ops, "labels"),
                                                          "copyset")),
                        "4294967297");
    /* JSON has no NaN: it becomes null (and the rest of the document is intact). */
    json_t *nan = json_array_get(json_object_get(m, "demo_nan"), 0);
    assert_true(json_is_null(json_object_get(nan, "value")));
    /* The latency sample (recorded at t=100 s) left the 10 s window at t=165 s. */
    json_t *lat = json_array_get(json_object_get(m, "demo_lat_seconds"), 0);
    assert_int_equal(json_integer_value(json_object_get(lat, "count")), 1);
    assert_int_equal(json_integer_value(json_object_get(lat, "window_count")), 0);
    json_decref(o);
    free(r.body);

    curve_latency_record(f->lat, 300);
    curve_admin_set_status_cb(f->admin, status_cb, &ncopysets);
    get(curve_admin_port(f->admin), "/status?metrics=0", &r);
    assert_int_equal(r.status, 200);
    o = json_loads(r.body, 0, &jerr);
    assert_non_null(o);
    assert_int_equal(json_integer_value(json_object_get(o, "copysets")), 17);
    assert_string_equal(json_string_value(json_object_get(o, "role")), "leader");
    assert_null(json_object_get(o, "metrics"));
    json_decref(o);
    free(r.body);

    get(curve_admin_port(f->admin), "/status", &r);
    o = json_loads(r.body, 0, &jerr);
    assert_non_null(o);
    lat = json_array_get(json_object_get(json_object_get(o, "metrics"), "demo_lat_seconds"), 0);
    assert_int_equal(json_integer_value(json_object_get(lat, "window_count")), 1);
    /* One sample: p99 is its histogram bucket's midpoint, within 1/32 of the value. */
    json_int_t p99 = json_integer_value(json_object_get(lat, "p99_us"));
    assert_in_range(p99, 300 - 300 / 32, 300);
    assert_int_equal(json_integer_value(json_object_get(lat, "max_us")), 300);
    json_decref(o);
    free(r.body);
    curve_admin_set_status_cb(f->admin, NULL, NULL);
}

static void test_not_found_and_bad_method(void **state)
{
    fixture *f = *state;
    uint16_t port = curve_admin_port(f->admin);
    http_resp r;
    get(port, "/nope", &r);
    assert_int_equal(r.status, 404);
    free(r.body);
    get(port, "/metricsx", &r);
    assert_int_equal(r.status, 404);
    free(r.body);
    get(port, "/metrics/x", &r);
    assert_int_equal(r.status, 404);
    free(r.body);
    http(port, "POST", "/metrics", "x", 1, &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, " GET, HEAD");
    free(r.body);
    http(port, "DELETE", "/status", NULL, 0, &r);
    assert_int_equal(r.status, 405);
    free(r.body);
    http(port, "PUT", "/health", NULL, 0, &r);
    assert_int_equal(r.status, 405);
    free(r.body);
}

/* A failpoint-like handler: GET lists, POST sets name=action from the query, echoes the body. */
typedef struct fp_state {
    char last[256];
    int calls;
} fp_state;

static int fp_handler(const curve_admin_request *req, curve_admin_reply *rep, void *ctx)
{
    fp_state *s = ctx;
    s->calls++;
    if (strcmp(curve_admin_req_method(req), "GET") == 0) {
        json_t *o = json_pack("{s:s, s:s}", "path", curve_admin_req_path(req), "last", s->last);
        return curve_admin_reply_json(rep, 200, o);
    }
    const char *name = curve_admin_req_query(req, "name");
    const char *action = curve_admin_req_query(req, "action");
    if (name == NULL || action == NULL)
        return curve_admin_reply_text(rep, 400, "need name and action\n");
    size_t blen = 0;
    const char *body = curve_admin_req_body(req, &blen);
    snprintf(s->last, sizeof(s->last), "%s=%s;body=%.*s", name, action, (int)blen, body);
    return curve_admin_reply_text(rep, 200, "ok\n");
}

static int failing_handler(const curve_admin_request *req, curve_admin_reply *rep, void *ctx)
{
    return -EIO;
}

static void test_extra_handlers(void **state)
{
    fixture *f = *state;
    uint16_t port = curve_admin_port(f->admin);
    fp_state s = {.last = "none"};
    http_resp r;

    assert_int_equal(curve_admin_add_handler(f->admin, "/failpoint",
                                             CURVE_ADMIN_GET | CURVE_ADMIN_POST, fp_handler, &s),
                     0);
    assert_int_equal(curve_admin_add_handler(f->admin, "/failpoint", CURVE_ADMIN_GET, fp_handler,
                                             &s),
                     -EEXIST);
    assert_int_equal(curve_admin_add_handler(f->admin, "/metrics", CURVE_ADMIN_GET, fp_handler,
                                             &s),
                     -EEXIST);
    assert_int_equal(curve_admin_add_handler(f->admin, "nope", CURVE_ADMIN_GET, fp_handler, &s),
                     -EINVAL);
    assert_int_equal(curve_admin_add_handler(f->admin, "/x/", CURVE_ADMIN_GET, fp_handler, &s),
                     -EINVAL);
    assert_int_equal(curve_admin_add_handler(f->admin, "/x", 0, fp_handler, &s), -EINVAL);
    assert_int_equal(curve_admin_add_handler(f->admin, "/fail", CURVE_ADMIN_GET, failing_handler,
                                             NULL),
                     0);

    http(port, "POST", "/failpoint?name=chunkstore.write&action=return(EIO)", "hello", 5, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok\n");
    free(r.body);
    assert_string_equal(s.last, "chunkstore.write=return(EIO);body=hello");

    http(port, "POST", "/failpoint?name=x", NULL, 0, &r);
    assert_int_equal(r.status, 400);
    free(r.body);

    get(port, "/failpoint/list", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.ctype, "application/json"));
    json_t *o = json_loads(r.body, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "path")), "/failpoint/list");
    assert_string_equal(json_string_value(json_object_get(o, "last")),
                        "chunkstore.write=return(EIO);body=hello");
    json_decref(o);
    free(r.body);

    /* "/failpoints" is not under "/failpoint"; "/fail" is its own prefix. */
    get(port, "/failpoints", &r);
    assert_int_equal(r.status, 404);
    free(r.body);
    get(port, "/fail", &r);
    assert_int_equal(r.status, 500);
    assert_non_null(strstr(r.body, "/fail"));
    free(r.body);
    http(port, "POST", "/fail", "x", 1, &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, " GET, HEAD");
    free(r.body);

    /* Bodies beyond the bound are refused. */
    size_t big = CURVE_ADMIN_BODY_MAX + 1;
    char *body = malloc(big);
    assert_non_null(body);
    memset(body, 'b', big);
    int calls = s.calls;
    http(port, "POST", "/failpoint?name=a&action=b", body, big, &r);
    assert_int_equal(r.status, 413);
    assert_int_equal(s.calls, calls);
    free(r.body);
    free(body);

    assert_int_equal(curve_admin_remove_handler(f->admin, "/failpoint"), 0);
    assert_int_equal(curve_admin_remove_handler(f->admin, "/failpoint"), -ENOENT);
    get(port, "/failpoint", &r);
    assert_int_equal(r.status, 404);
    free(r.body);
    assert_int_equal(curve_admin_remove_handler(f->admin, "/fail"), 0);
}

static void test_failpoint_endpoint(void **state)
{
    fixture *f = *state;
    uint16_t port = curve_admin_port(f->admin);
    http_resp r;
    curve_failpoint_clear_all();
    assert_int_equal(curve_admin_enable_failpoints(f->admin), 0);
    assert_int_equal(curve_admin_enable_failpoints(f->admin), -EEXIST);

    get(port, "/failpoint", &r);
    assert_int_equal(r.status, 200);
    json_t *o = json_loads(r.body, 0, NULL);
    assert_non_null(o);
    assert_int_equal(json_object_size(json_object_get(o, "failpoints")), 0);
    json_decref(o);
    free(r.body);

    assert_int_equal(CURVE_FAILPOINT("admin.test.write"), 0);
    http(port, "POST", "/failpoint?name=admin.test.write&action=return(EIO)", NULL, 0, &r);
    assert_int_equal(r.status, 200);
    free(r.body);
    assert_int_equal(CURVE_FAILPOINT("admin.test.write"), -EIO);

    /* A whole spec in the body. */
    const char *spec = "admin.test.a=2*return(ENOSPC);admin.test.b=delay(1)";
    http(port, "POST", "/failpoint", spec, strlen(spec), &r);
    assert_int_equal(r.status, 200);
    free(r.body);
    assert_int_equal(CURVE_FAILPOINT("admin.test.a"), -ENOSPC);

    get(port, "/failpoint", &r);
    o = json_loads(r.body, 0, NULL);
    assert_non_null(o);
    json_t *fps = json_object_get(o, "failpoints");
    assert_int_equal(json_object_size(fps), 3);
    json_t *w = json_object_get(fps, "admin.test.write");
    assert_string_equal(json_string_value(json_object_get(w, "action")), "return(EIO)");
    assert_int_equal(json_integer_value(json_object_get(w, "hits")), 1);
    json_decref(o);
    free(r.body);

    /* Bad requests change nothing and say why. */
    http(port, "POST", "/failpoint?name=admin.test.write&action=explode", NULL, 0, &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "admin.test.write"));
    free(r.body);
    assert_int_equal(CURVE_FAILPOINT("admin.test.write"), -EIO);
    const char *bad = "admin.test.c=return;=oops";
    http(port, "POST", "/failpoint", bad, strlen(bad), &r);
    assert_int_equal(r.status, 400);
    free(r.body);
    assert_int_equal(CURVE_FAILPOINT("admin.test.c"), 0);
    http(port, "POST", "/failpoint?name=x", NULL, 0, &r);
    assert_int_equal(r.status, 400);
    free(r.body);
    get(port, "/failpoint/other", &r);
    assert_int_equal(r.status, 404);
    free(r.body);

    http(port, "POST", "/failpoint?name=admin.test.write&action=off", NULL, 0, &r);
    assert_int_equal(r.status, 200);
    free(r.body);
    assert_int_equal(CURVE_FAILPOINT("admin.test.write"), 0);
    http(port, "POST", "/failpoint?clear=1", NULL, 0, &r);
    assert_int_equal(r.status, 200);
    free(r.body);
    assert_int_equal(CURVE_FAILPOINT("admin.test.b"), 0);
    get(port, "/failpoint", &r);
    o = json_loads(r.body, 0, NULL);
    assert_int_equal(json_object_size(json_object_get(o, "failpoints")), 0);
    json_decref(o);
    free(r.body);
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

static void test_start_errors_and_cleanup(void **state)
{
    fixture *f = *state;
    curve_admin *a = NULL;
    curve_admin_opts o = {.host = "not-an-ip", .metrics = f->reg};
    assert_int_equal(curve_admin_start(&o, &a), -EINVAL);
    assert_null(a);
    /* The fixture's port is taken. */
    o.host = "127.0.0.1";
    o.port = curve_admin_port(f->admin);
    assert_int_equal(curve_admin_start(&o, &a), -EADDRINUSE);
    assert_null(a);

    /* Start/stop leaks no descriptor (the listening socket is closed by stop). */
    int before = count_fds();
    for (int i = 0; i < 3; i++) {
        o.port = 0;
        o.metrics = NULL; /* default registry */
        assert_int_equal(curve_admin_start(&o, &a), 0);
        http_resp r;
        get(curve_admin_port(a), "/health", &r);
        assert_int_equal(r.status, 200);
        free(r.body);
        curve_admin_stop(a);
    }
    assert_int_equal(count_fds(), before);
    curve_admin_stop(NULL);
}

static void test_ipv6(void **state)
{
    curve_admin *a = NULL;
    curve_admin_opts o = {.host = "::1", .port = 0, .role = "v6"};
    int rc = curve_admin_start(&o, &a);
    if (rc != 0) {
        /* No IPv6 loopback in this environment: the error must be a clean one. */
        assert_true(rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT);
        skip();
    }
    char url[64];
    snprintf(url, sizeof(url), "http://[::1]:%u/health", (unsigned)curve_admin_port(a));
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)HTTP_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    assert_int_equal(status, 200);
    curl_easy_cleanup(c);
    curve_admin_stop(a);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metrics_endpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found_and_bad_method, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extra_handlers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failpoint_endpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_errors_and_cleanup, setup, teardown),
        cmocka_unit_test(test_ipv6),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
