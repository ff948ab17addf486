/* Unit tests of the etcd JSON-gateway encoding (no server): base64, int64-as-string, omitted
 * fields, enum names, error objects, stream lines, and the election position helper. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "curve/errors.h"
#include "etcd/election.h"
#include "etcd/etcd_internal.h"

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *o = json_loads(s, 0, &e);
    assert_non_null(o);
    return o;
}

static const char *sget(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return v && json_is_string(v) ? json_string_value(v) : NULL;
}

static void test_b64_roundtrip(void **state)
{
    const char *vec[][2] = {{"", ""},         {"f", "Zg=="},     {"fo", "Zm8="},
                            {"foo", "Zm9v"},  {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
                            {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        char *enc = etcd__b64_encode(vec[i][0], strlen(vec[i][0]));
        assert_string_equal(enc, vec[i][1]);
        char *dec;
        size_t len;
        assert_int_equal(etcd__b64_decode(enc, strlen(enc), &dec, &len), 0);
        assert_int_equal(len, strlen(vec[i][0]));
        assert_memory_equal(dec, vec[i][0], len);
        assert_int_equal(dec[len], '\0');
        free(enc);
        free(dec);
    }
    /* binary with NULs and 0xff */
    unsigned char bin[] = {0, 0xff, 0x10, 0, 0xfe};
    char *enc = etcd__b64_encode(bin, sizeof(bin));
    char *dec;
    size_t len;
    assert_int_equal(etcd__b64_decode(enc, strlen(enc), &dec, &len), 0);
    assert_int_equal(len, sizeof(bin));
    assert_memory_equal(dec, bin, sizeof(bin));
    free(enc);
    free(dec);
    /* bad input */
    assert_int_equal(etcd__b64_decode("Zm9v!", 5, &dec, &len), -EINVAL);
    assert_int_equal(etcd__b64_decode("Z", 1, &dec, &len), -EINVAL);
    assert_null(dec);
}

static void test_i64_fields(void **state)
{
    json_t *o = parse("{\"a\":\"123\",\"b\":45,\"c\":\"-7\",\"d\":\"18446744073709551615\","
                      "\"e\":\"12x\",\"f\":true,\"g\":\"\"}");
    int64_t v;
    assert_int_equal(etcd__get_i64(o, "a", &v), 0);
    assert_int_equal(v, 123);
    assert_int_equal(etcd__get_i64(o, "b", &v), 0);
    assert_int_equal(v, 45);
    assert_int_equal(etcd__get_i64(o, "c", &v), 0);
    assert_int_equal(v, -7);
    assert_int_equal(etcd__get_i64(o, "d", &v), 0); /* uint64 bit pattern kept */
    assert_int_equal((uint64_t)v, UINT64_MAX);
    assert_int_equal(etcd__get_i64(o, "missing", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(etcd__get_i64(o, "e", &v), -EINVAL);
    assert_int_equal(etcd__get_i64(o, "f", &v), -EINVAL);
    assert_int_equal(etcd__get_i64(o, "g", &v), -EINVAL);
    json_decref(o);
}

static void test_enc_range(void **state)
{
    etcd_range_req r = {.key = "/a/", .prefix = true, .limit = 10, .revision = 5,
                        .keys_only = true, .sort_order = ETCD_SORT_ASCEND,
                        .sort_target = ETCD_SORT_CREATE};
    char *s;
    assert_int_equal(etcd__enc_range(&r, &s), 0);
    json_t *o = parse(s);
    assert_string_equal(sget(o, "key"), "L2Ev");        /* "/a/" */
    assert_string_equal(sget(o, "range_end"), "L2Ew"); /* "/a0" */
    assert_string_equal(sget(o, "limit"), "10");       /* int64 as string */
    assert_string_equal(sget(o, "revision"), "5");
    assert_true(json_is_true(json_object_get(o, "keys_only")));
    assert_null(json_object_get(o, "count_only")); /* false fields omitted */
    assert_string_equal(sget(o, "sort_order"), "ASCEND");
    assert_string_equal(sget(o, "sort_target"), "CREATE");
    json_decref(o);
    free(s);

    etcd_range_req all = {.key = "", .prefix = true};
    assert_int_equal(etcd__enc_range(&all, &s), 0);
    o = parse(s);
    assert_string_equal(sget(o, "range_end"), "AA=="); /* "\0": the whole key space */
    json_decref(o);
    free(s);

    etcd_range_req single = {.key = "k"};
    assert_int_equal(etcd__enc_range(&single, &s), 0);
    o = parse(s);
    assert_null(json_object_get(o, "range_end"));
    assert_null(json_object_get(o, "limit"));
    json_decref(o);
    free(s);

    etcd_range_req bad = {.key = NULL};
    assert_int_equal(etcd__enc_range(&bad, &s), -EINVAL);
    etcd_range_req bad2 = {.key = "k", .limit = -1};
    assert_int_equal(etcd__enc_range(&bad2, &s), -EINVAL);
}

static void test_prefix_end(void **state)
{
    char out[16];
    assert_int_equal(etcd_prefix_end("abc", out), 3);
    assert_string_equal(out, "abd");
    assert_int_equal(etcd_prefix_end("a\xff", out), 1);
    assert_string_equal(out, "b");
    assert_int_equal(etcd_prefix_end("\xff\xff", out), 0);
    assert_int_equal(etcd_prefix_end("", out), 0);
}

static void test_enc_put_txn(void **state)
{
    char *s;
    assert_int_equal(etcd__enc_put("k", "v\0x", 3, 0x1234, true, &s), 0);
    json_t *o = parse(s);
    assert_string_equal(sget(o, "key"), "aw==");
    assert_string_equal(sget(o, "value"), "dgB4");
    assert_string_equal(sget(o, "lease"), "4660");
    assert_true(json_is_true(json_object_get(o, "prev_kv")));
    json_decref(o);
    free(s);

    etcd_compare cmp[2] = {
        {.key = "k", .target = ETCD_CMP_VALUE, .result = ETCD_CMP_EQUAL, .value = "1",
         .value_len = 1},
        {.key = "k", .target = ETCD_CMP_MOD, .result = ETCD_CMP_LESS, .number = 9},
    };
    etcd_op succ = {.type = ETCD_OP_PUT, .key = "k", .value = "2", .value_len = 1};
    etcd_op fail[2] = {{.type = ETCD_OP_RANGE, .key = "k"},
                       {.type = ETCD_OP_DELETE, .key = "p/", .prefix = true}};
    assert_int_equal(etcd__enc_txn(cmp, 2, &succ, 1, fail, 2, &s), 0);
    o = parse(s);
    json_t *c = json_object_get(o, "compare");
    assert_int_equal(json_array_size(c), 2);
    assert_string_equal(sget(json_array_get(c, 0), "target"), "VALUE");
    assert_string_equal(sget(json_array_get(c, 0), "result"), "EQUAL");
    assert_string_equal(sget(json_array_get(c, 0), "value"), "MQ==");
    assert_string_equal(sget(json_array_get(c, 1), "target"), "MOD");
    assert_string_equal(sget(json_array_get(c, 1), "result"), "LESS");
    assert_string_equal(sget(json_array_get(c, 1), "mod_revision"), "9");
    json_t *f = json_object_get(o, "failure");
    assert_non_null(json_object_get(json_array_get(f, 0), "request_range"));
    json_t *d = json_object_get(json_array_get(f, 1), "request_delete_range");
    assert_string_equal(sget(d, "range_end"), "cDA="); /* "p0" */
    assert_non_null(json_object_get(json_array_get(json_object_get(o, "success"), 0),
                                    "request_put"));
    json_decref(o);
    free(s);

    /* range compares: prefix (end = key + 1 in the last byte) and an explicit range_end */
    etcd_compare rc2[2] = {
        {.key = "d/", .prefix = true, .target = ETCD_CMP_CREATE, .result = ETCD_CMP_EQUAL},
        {.key = "a", .range_end = "b", .target = ETCD_CMP_VERSION, .result = ETCD_CMP_GREATER},
    };
    assert_int_equal(etcd__enc_txn(rc2, 2, NULL, 0, NULL, 0, &s), 0);
    o = parse(s);
    c = json_object_get(o, "compare");
    assert_string_equal(sget(json_array_get(c, 0), "key"), "ZC8=");       /* "d/" */
    assert_string_equal(sget(json_array_get(c, 0), "range_end"), "ZDA="); /* "d0" */
    assert_string_equal(sget(json_array_get(c, 0), "create_revision"), "0");
    assert_string_equal(sget(json_array_get(c, 1), "range_end"), "Yg=="); /* "b" */
    json_decref(o);
    free(s);
    /* a single-key compare carries no range_end */
    assert_int_equal(etcd__enc_txn(cmp, 1, NULL, 0, NULL, 0, &s), 0);
    o = parse(s);
    assert_null(json_object_get(json_array_get(json_object_get(o, "compare"), 0), "range_end"));
    json_decref(o);
    free(s);

    etcd_compare badc = {.key = "k", .target = 7};
    assert_int_equal(etcd__enc_txn(&badc, 1, NULL, 0, NULL, 0, &s), -EINVAL);
    assert_int_equal(etcd__enc_txn(NULL, ETCD_MAX_TXN_OPS + 1, NULL, 0, NULL, 0, &s), -EINVAL);
}

static void test_enc_lease_watch(void **state)
{
    char *s;
    assert_int_equal(etcd__enc_lease_grant(5, 0, &s), 0);
    json_t *o = parse(s);
    assert_string_equal(sget(o, "TTL"), "5");
    assert_null(json_object_get(o, "ID"));
    json_decref(o);
    free(s);
    assert_int_equal(etcd__enc_lease_grant(0, 0, &s), -EINVAL);
    assert_int_equal(etcd__enc_lease_id(0, &s), -EINVAL);

    assert_int_equal(etcd__enc_compact(12, true, &s), 0);
    o = parse(s);
    assert_string_equal(sget(o, "revision"), "12");
    assert_true(json_is_true(json_object_get(o, "physical")));
    json_decref(o);
    free(s);
    assert_int_equal(etcd__enc_compact(0, false, &s), -EINVAL);

    etcd_watch_req w = {.key = "a", .start_revision = 42, .no_put = true, .prev_kv = true};
    assert_int_equal(etcd__enc_watch_create(&w, &s), 0);
    o = parse(s);
    json_t *cr = json_object_get(o, "create_request");
    assert_string_equal(sget(cr, "key"), "YQ==");
    assert_string_equal(sget(cr, "start_revision"), "42");
    assert_string_equal(json_string_value(json_array_get(json_object_get(cr, "filters"), 0)),
                        "NOPUT");
    json_decref(o);
    free(s);
}

/* A real etcd 3.4 answer, with omitted zero fields. */
static const char *RANGE_RESP =
    "{\"header\":{\"cluster_id\":\"15118495548433857066\",\"member_id\":\"13668033151171901709\","
    "\"revision\":\"7\",\"raft_term\":\"2\"},\"kvs\":[{\"key\":\"YQ==\",\"create_revision\":\"2\","
    "\"mod_revision\":\"6\",\"version\":\"3\",\"value\":\"MQ==\"},{\"key\":\"Yg==\","
    "\"create_revision\":\"5\",\"mod_revision\":\"5\",\"version\":\"1\",\"lease\":\"99\"}],"
    "\"count\":\"2\"}";

static void test_dec_range(void **state)
{
    json_t *o;
    char err[256];
    assert_int_equal(etcd__parse_body(RANGE_RESP, strlen(RANGE_RESP), false, &o, err, 256), 0);
    etcd_range_result r;
    assert_int_equal(etcd__dec_range(o, &r, err, sizeof(err)), 0);
    assert_int_equal(r.revision, 7);
    assert_int_equal(r.count, 2);
    assert_false(r.more);
    assert_int_equal(r.n_kvs, 2);
    assert_string_equal(r.kvs[0].key, "a");
    assert_string_equal(r.kvs[0].value, "1");
    assert_int_equal(r.kvs[0].mod_revision, 6);
    assert_int_equal(r.kvs[0].version, 3);
    assert_int_equal(r.kvs[0].lease, 0);
    assert_int_equal(r.kvs[1].value_len, 0); /* omitted empty value */
    assert_string_equal(r.kvs[1].value, "");
    assert_int_equal(r.kvs[1].lease, 99);
    etcd_range_result_free(&r);
    json_decref(o);

    /* empty result: no kvs, no count */
    o = parse("{\"header\":{\"revision\":\"3\"}}");
    assert_int_equal(etcd__dec_range(o, &r, err, sizeof(err)), 0);
    assert_int_equal(r.n_kvs, 0);
    assert_int_equal(r.count, 0);
    json_decref(o);

    /* malformed */
    const char *bad[] = {"{\"kvs\":[{\"key\":\"!!\"}]}", "{\"kvs\":{}}",
                         "{\"kvs\":[{\"key\":\"YQ==\",\"version\":\"x\"}]}", "{\"count\":[1]}",
                         "{\"header\":{\"revision\":{}}}", "{\"kvs\":[1]}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        o = parse(bad[i]);
        assert_int_equal(etcd__dec_range(o, &r, err, sizeof(err)), CURVE_ERR_ETCD);
        assert_true(strstr(err, "malformed") != NULL);
        json_decref(o);
    }
}

static void test_dec_txn(void **state)
{
    /* failed txn: no "succeeded" field at all */
    const char *s = "{\"header\":{\"revision\":\"2\"},\"responses\":[{\"response_range\":"
                    "{\"header\":{\"revision\":\"2\"},\"kvs\":[{\"key\":\"YQ==\","
                    "\"create_revision\":\"2\",\"mod_revision\":\"2\",\"version\":\"1\","
                    "\"value\":\"MQ==\"}],\"count\":\"1\"}}]}";
    json_t *o = parse(s);
    char err[256];
    etcd_txn_result t;
    assert_int_equal(etcd__dec_txn(o, &t, err, sizeof(err)), 0);
    assert_false(t.succeeded);
    assert_int_equal(t.n_results, 1);
    assert_int_equal(t.results[0].type, ETCD_OP_RANGE);
    assert_string_equal(t.results[0].range.kvs[0].value, "1");
    etcd_txn_result_free(&t);
    json_decref(o);

    o = parse("{\"header\":{\"revision\":\"9\"},\"succeeded\":true,\"responses\":["
              "{\"response_put\":{\"header\":{\"revision\":\"9\"}}},"
              "{\"response_delete_range\":{\"header\":{},\"deleted\":\"2\"}}]}");
    assert_int_equal(etcd__dec_txn(o, &t, err, sizeof(err)), 0);
    assert_true(t.succeeded);
    assert_int_equal(t.revision, 9);
    assert_int_equal(t.results[1].type, ETCD_OP_DELETE);
    assert_int_equal(t.results[1].del.deleted, 2);
    etcd_txn_result_free(&t);
    json_decref(o);

    o = parse("{\"responses\":[{\"response_what\":{}}]}");
    assert_int_equal(etcd__dec_txn(o, &t, err, sizeof(err)), CURVE_ERR_ETCD);
    json_decref(o);
}

static void test_dec_lease(void **state)
{
    char err[256];
    json_t *o = parse("{\"header\":{},\"ID\":\"4111120250811900936\",\"TTL\":\"5\"}");
    int64_t id, ttl;
    assert_int_equal(etcd__dec_lease_grant(o, &id, &ttl, err, sizeof(err)), 0);
    assert_int_equal(id, 4111120250811900936LL);
    assert_int_equal(ttl, 5);
    json_decref(o);

    /* keepalive of an expired lease: TTL omitted */
    const char *line = "{\"result\":{\"header\":{\"revision\":\"2\"},\"ID\":\"1\"}}";
    assert_int_equal(etcd__parse_body(line, strlen(line), true, &o, err, sizeof(err)), 0);
    assert_int_equal(etcd__dec_keepalive(o, &ttl, err, sizeof(err)), CURVE_ERR_NOT_FOUND);
    json_decref(o);
    line = "{\"result\":{\"header\":{\"revision\":\"2\"},\"ID\":\"1\",\"TTL\":\"5\"}}";
    assert_int_equal(etcd__parse_body(line, strlen(line), true, &o, err, sizeof(err)), 0);
    assert_int_equal(etcd__dec_keepalive(o, &ttl, err, sizeof(err)), 0);
    assert_int_equal(ttl, 5);
    json_decref(o);

    etcd_lease_info li;
    o = parse("{\"header\":{\"revision\":\"3\"},\"ID\":\"5\",\"TTL\":\"-1\"}");
    assert_int_equal(etcd__dec_lease_ttl(o, &li, err, sizeof(err)), CURVE_ERR_NOT_FOUND);
    json_decref(o);
    o = parse("{\"ID\":\"5\",\"TTL\":\"2\",\"grantedTTL\":\"5\",\"keys\":[\"YQ==\",\"Yg==\"]}");
    assert_int_equal(etcd__dec_lease_ttl(o, &li, err, sizeof(err)), 0);
    assert_int_equal(li.ttl, 2);
    assert_int_equal(li.granted_ttl, 5);
    assert_int_equal(li.n_keys, 2);
    assert_string_equal(li.keys[1], "b");
    etcd_lease_info_free(&li);
    json_decref(o);
}

static void test_dec_errors(void **state)
{
    char err[256];
    json_t *o;
    const char *e1 = "{\"error\":\"etcdserver: requested lease not found\",\"message\":"
                     "\"etcdserver: requested lease not found\",\"code\":5}";
    assert_int_equal(etcd__parse_body(e1, strlen(e1), false, &o, err, sizeof(err)),
                     CURVE_ERR_NOT_FOUND);
    assert_null(o);
    assert_true(strstr(err, "lease not found") != NULL);
    const char *e2 = "{\"error\":\"x\",\"code\":3}";
    assert_int_equal(etcd__parse_body(e2, strlen(e2), false, &o, err, sizeof(err)), -EINVAL);
    const char *e3 = "{\"error\":\"etcdserver: no leader\",\"code\":14}";
    assert_int_equal(etcd__parse_body(e3, strlen(e3), false, &o, err, sizeof(err)), -EAGAIN);
    const char *e4 = "{\"error\":{\"grpc_code\":11,\"http_code\":400,\"message\":\"compacted\"}}";
    assert_int_equal(etcd__parse_body(e4, strlen(e4), true, &o, err, sizeof(err)),
                     CURVE_ERR_ETCD);
    assert_true(strstr(err, "compacted") != NULL);
    assert_int_equal(etcd__parse_body("garbage", 7, false, &o, err, sizeof(err)),
                     CURVE_ERR_ETCD);
    assert_int_equal(etcd__parse_body("[1]", 3, false, &o, err, sizeof(err)), CURVE_ERR_ETCD);
    assert_int_equal(etcd__parse_body("{\"x\":1}", 7, true, &o, err, sizeof(err)),
                     CURVE_ERR_ETCD); /* stream line without result */
}

static void test_dec_watch(void **state)
{
    char err[256];
    json_t *o;
    etcd__watch_resp w;
    const char *created = "{\"result\":{\"header\":{\"revision\":\"3\"},\"created\":true}}";
    assert_int_equal(etcd__parse_body(created, strlen(created), true, &o, err, 256), 0);
    assert_int_equal(etcd__dec_watch(o, &w, err, sizeof(err)), 0);
    assert_true(w.created);
    assert_int_equal(w.revision, 3);
    assert_int_equal(w.n_events, 0);
    json_decref(o);

    const char *ev = "{\"result\":{\"header\":{\"revision\":\"5\"},\"events\":[{\"kv\":{\"key\":"
                     "\"Yg==\",\"create_revision\":\"4\",\"mod_revision\":\"4\",\"version\":\"1\","
                     "\"value\":\"MQ==\"}},{\"type\":\"DELETE\",\"kv\":{\"key\":\"Yg==\","
                     "\"mod_revision\":\"5\"}}]}}";
    assert_int_equal(etcd__parse_body(ev, strlen(ev), true, &o, err, 256), 0);
    assert_int_equal(etcd__dec_watch(o, &w, err, sizeof(err)), 0);
    assert_int_equal(w.n_events, 2);
    assert_int_equal(w.events[0].type, ETCD_EV_PUT); /* type omitted = PUT */
    assert_string_equal(w.events[0].kv.value, "1");
    assert_int_equal(w.events[1].type, ETCD_EV_DELETE);
    assert_int_equal(w.events[1].kv.mod_revision, 5);
    etcd__watch_resp_free(&w);
    json_decref(o);

    o = parse("{\"canceled\":true,\"compact_revision\":\"17\",\"cancel_reason\":\"x\"}");
    assert_int_equal(etcd__dec_watch(o, &w, err, sizeof(err)), 0);
    assert_true(w.canceled);
    assert_int_equal(w.compact_revision, 17);
    json_decref(o);

    o = parse("{\"events\":[{\"type\":\"BOGUS\",\"kv\":{}}]}");
    assert_int_equal(etcd__dec_watch(o, &w, err, sizeof(err)), CURVE_ERR_ETCD);
    json_decref(o);
}

static void test_election_position(void **state)
{
    etcd_kv kvs[3] = {{.key = "/e/b", .create_revision = 9},
                      {.key = "/e/a", .create_revision = 4},
                      {.key = "/e/c", .create_revision = 12}};
    long pred;
    assert_int_equal(election__position(kvs, 3, "/e/a", &pred), 0);
    assert_int_equal(pred, -1); /* lowest create revision leads */
    assert_int_equal(election__position(kvs, 3, "/e/b", &pred), 0);
    assert_int_equal(pred, 1);
    assert_int_equal(election__position(kvs, 3, "/e/c", &pred), 0);
    assert_int_equal(pred, 0); /* watches the key just ahead, not the leader */
    assert_int_equal(election__position(kvs, 3, "/e/x", &pred), -ENOENT);
    assert_int_equal(election__position(kvs, 2, "/e/b", &pred), 0);
    assert_int_equal(pred, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_roundtrip),   cmocka_unit_test(test_i64_fields),
        cmocka_unit_test(test_enc_range),       cmocka_unit_test(test_prefix_end),
        cmocka_unit_test(test_enc_put_txn),     cmocka_unit_test(test_enc_lease_watch),
        cmocka_unit_test(test_dec_range),       cmocka_unit_test(test_dec_txn),
        cmocka_unit_test(test_dec_lease),       cmocka_unit_test(test_dec_errors),
        cmocka_unit_test(test_dec_watch),       cmocka_unit_test(test_election_position),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
