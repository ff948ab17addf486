/* JSON encoding of etcd v3 gateway requests and responses (see etcd_internal.h). */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "curve/errors.h"
#include "etcd/etcd_internal.h"

/* ---- base64 (RFC 4648, standard alphabet) ---- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *etcd__b64_encode(const void *data, size_t len)
{
    const unsigned char *p = data;
    if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
        return NULL;
    size_t olen = (len + 2) / 3 * 4;
    char *out = malloc(olen + 1);
    if (!out)
        return NULL;
    size_t o = 0, i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = b64_alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)p[i + 1] << 8;
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return out;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

int etcd__b64_decode(const char *s, size_t slen, char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    while (slen > 0 && s[slen - 1] == '=')
        slen--;
    if (slen % 4 == 1)
        return -EINVAL;
    char *buf = malloc(slen / 4 * 3 + 3);
    if (!buf)
        return -ENOMEM;
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < slen; i++) {
        int v = b64_value(s[i]);
        if (v < 0) {
            free(buf);
            return -EINVAL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    buf[o] = '\0';
    *out = buf;
    *outlen = o;
    return 0;
}

/* ---- field helpers ---- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int etcd__get_i64(const json_t *obj, const char *field, int64_t *out)
{
    *out = 0;
    json_t *v = json_object_get(obj, field);
    if (!v || json_is_null(v))
        return 0;
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (!json_is_string(v))
        return -EINVAL;
    const char *s = json_string_value(v);
    if (*s == '\0')
        return -EINVAL;
    errno = 0;
    char *end = NULL;
    /* uint64 fields (cluster_id, member_id, lease ids) may exceed INT64_MAX: parse unsigned and
     * keep the bit pattern, like etcd's own clients do for lease ids. */
    if (*s == '-') {
        long long x = strtoll(s, &end, 10);
        if (errno || *end != '\0')
            return -EINVAL;
        *out = x;
    } else {
        unsigned long long x = strtoull(s, &end, 10);
        if (errno || *end != '\0' || (*s < '0' || *s > '9'))
            return -EINVAL;
        *out = (int64_t)x;
    }
    return 0;
}

int etcd__get_bool(const json_t *obj, const char *field, bool *out)
{
    *out = false;
    json_t *v = json_object_get(obj, field);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return -EINVAL;
    *out = json_is_true(v);
    return 0;
}

int etcd__set_i64(json_t *obj, const char *field, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld", (long long)v);
    return json_object_set_new(obj, field, json_string(buf)) == 0 ? 0 : -ENOMEM;
}

int etcd__set_bytes(json_t *obj, const char *field, const void *data, size_t len)
{
    char *b = etcd__b64_encode(data ? data : "", data ? len : 0);
    if (!b)
        return -ENOMEM;
    int rc = json_object_set_new(obj, field, json_string(b)) == 0 ? 0 : -ENOMEM;
    free(b);
    return rc;
}

static int set_bool(json_t *obj, const char *field, bool v)
{
    if (!v)
        return 0;
    return json_object_set_new(obj, field, json_true()) == 0 ? 0 : -ENOMEM;
}

static int set_str(json_t *obj, const char *field, const char *v)
{
    return json_object_set_new(obj, field, json_string(v)) == 0 ? 0 : -ENOMEM;
}

/* Sets "key" and "range_end" for a key, an explicit end, a prefix or from_key. */
static int set_range(json_t *o, const char *key, const char *range_end, bool prefix,
                     bool from_key)
{
    if (!key)
        return -EINVAL;
    size_t klen = strlen(key);
    int rc = etcd__set_bytes(o, "key", key, klen);
    if (rc)
        return rc;
    if (prefix) {
        char *end = malloc(klen + 1);
        if (!end)
            return -ENOMEM;
        size_t elen = etcd_prefix_end(key, end);
        /* elen 0 means "to the end": etcd's marker is the single byte 0. */
        rc = elen ? etcd__set_bytes(o, "range_end", end, elen)
                  : etcd__set_bytes(o, "range_end", "\0", 1);
        free(end);
        return rc;
    }
    if (from_key)
        return etcd__set_bytes(o, "range_end", "\0", 1);
    if (range_end)
        return etcd__set_bytes(o, "range_end", range_end, strlen(range_end));
    return 0;
}

size_t etcd_prefix_end(const char *key, char *out)
{
    size_t n = strlen(key);
    memcpy(out, key, n + 1);
    while (n > 0) {
        unsigned char c = (unsigned char)out[n - 1];
        if (c < 0xff) {
            out[n - 1] = (char)(c + 1);
            out[n] = '\0';
            return n;
        }
        n--;
    }
    out[0] = '\0';
    return 0;
}

static int dump(json_t *o, char **out)
{
    *out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return *out ? 0 : -ENOMEM;
}

/* ---- requests ---- */

static const char *sort_order_names[] = {"NONE", "ASCEND", "DESCEND"};
static const char *sort_target_names[] = {"KEY", "VERSION", "CREATE", "MOD", "VALUE"};

static int fill_range(json_t *o, const etcd_range_req *r)
{
    int rc = set_range(o, r->key, r->range_end, r->prefix, r->from_key);
    if (rc)
        return rc;
    if (r->limit < 0 || r->revision < 0)
        return -EINVAL;
    if ((unsigned)r->sort_order >= 3 || (unsigned)r->sort_target >= 5)
        return -EINVAL;
    if (r->limit)
        rc = rc ? rc : etcd__set_i64(o, "limit", r->limit);
    if (r->revision)
        rc = rc ? rc : etcd__set_i64(o, "revision", r->revision);
    if (r->sort_order != ETCD_SORT_NONE) {
        rc = rc ? rc : set_str(o, "sort_order", sort_order_names[r->sort_order]);
        rc = rc ? rc : set_str(o, "sort_target", sort_target_names[r->sort_target]);
    }
    rc = rc ? rc : set_bool(o, "serializable", r->serializable);
    rc = rc ? rc : set_bool(o, "keys_only", r->keys_only);
    rc = rc ? rc : set_bool(o, "count_only", r->count_only);
    return rc;
}

int etcd__enc_range(const etcd_range_req *r, char **out)
{
    *out = NULL;
    json_t *o = json_object();
    if (!o)
        return -ENOMEM;
    int rc = fill_range(o, r);
    if (rc) {
        json_decref(o);
        return rc;
    }
    return dump(o, out);
}

static int fill_put(json_t *o, const char *key, const void *value, size_t value_len,
                    int64_t lease, bool prev_kv)
{
    if (!key || (!value && value_len) || lease < 0)
        return -EINVAL;
    int rc = etcd__set_bytes(o, "key", key, strlen(key));
    rc = rc ? rc : etcd__set_bytes(o, "value", value, value_len);
    if (lease)
        rc = rc ? rc : etcd__set_i64(o, "lease", lease);
    rc = rc ? rc : set_bool(o, "prev_kv", prev_kv);
    return rc;
}

int etcd__enc_put(const char *key, const void *value, size_t value_len, int64_t lease,
                  bool prev_kv, char **out)
{
    *out = NULL;
    json_t *o = json_object();
    if (!o)
        return -ENOMEM;
    int rc = fill_put(o, key, value, value_len, lease, prev_kv);
    if (rc) {
        json_decref(o);
        return rc;
    }
    return dump(o, out);
}

static int fill_delete(json_t *o, const char *key, const char *range_end, bool prefix,
                       bool prev_kv)
{
    int rc = set_range(o, key, range_end, prefix, false);
    rc = rc ? rc : set_bool(o, "prev_kv", prev_kv);
    return rc;
}

int etcd__enc_delete(const char *key, const char *range_end, bool prefix, bool prev_kv,
                     char **out)
{
    *out = NULL;
    json_t *o = json_object();
    if (!o)
        return -ENOMEM;
    int rc = fill_delete(o, key, range_end, prefix, prev_kv);
    if (rc) {
        json_decref(o);
        return rc;
    }
    return dump(o, out);
}

static const char *cmp_result_names[] = {"EQUAL", "GREATER", "LESS", "NOT_EQUAL"};
static const char *cmp_target_names[] = {"VERSION", "CREATE", "MOD", "VALUE", "LEASE"};
static const char *cmp_target_fields[] = {"version", "create_revision", "mod_revision", "value",
                                          "lease"};

static int enc_compare(json_t *arr, const etcd_compare *c)
{
    if (!c->key || (unsigned)c->result >= 4 || (unsigned)c->target >= 5)
        return -EINVAL;
    if (c->target == ETCD_CMP_VALUE && !c->value && c->value_len)
        return -EINVAL;
    json_t *o = json_object();
    if (!o || json_array_append_new(arr, o))
        return -ENOMEM;
    int rc = set_range(o, c->key, c->range_end, c->prefix, false);
    rc = rc ? rc : set_str(o, "result", cmp_result_names[c->result]);
    rc = rc ? rc : set_str(o, "target", cmp_target_names[c->target]);
    if (c->target == ETCD_CMP_VALUE)
        rc = rc ? rc : etcd__set_bytes(o, "value", c->value, c->value_len);
    else
        rc = rc ? rc : etcd__set_i64(o, cmp_target_fields[c->target], c->number);
    return rc;
}

static int enc_op(json_t *arr, const etcd_op *op)
{
    json_t *o = json_object();
    json_t *inner = json_object();
    if (!o || !inner || json_array_append_new(arr, o)) {
        json_decref(inner);
        return -ENOMEM;
    }
    int rc;
    switch (op->type) {
    case ETCD_OP_RANGE: {
        etcd_range_req r = {.key = op->key, .range_end = op->range_end, .prefix = op->prefix,
                            .limit = op->limit};
        rc = fill_range(inner, &r);
        if (json_object_set_new(o, "request_range", inner))
            return -ENOMEM;
        return rc;
    }
    case ETCD_OP_PUT:
        rc = fill_put(inner, op->key, op->value, op->value_len, op->lease, op->prev_kv);
        if (json_object_set_new(o, "request_put", inner))
            return -ENOMEM;
        return rc;
    case ETCD_OP_DELETE:
        rc = fill_delete(inner, op->key, op->range_end, op->prefix, op->prev_kv);
        if (json_object_set_new(o, "request_delete_range", inner))
            return -ENOMEM;
        return rc;
    }
    json_decref(inner);
    return -EINVAL;
}

int etcd__enc_txn(const etcd_compare *cmp, size_t n_cmp, const etcd_op *success,
                  size_t n_success, const etcd_op *failure, size_t n_failure, char **out)
{
    *out = NULL;
    if (n_cmp > ETCD_MAX_TXN_OPS || n_success > ETCD_MAX_TXN_OPS ||
        n_failure > ETCD_MAX_TXN_OPS || (n_cmp && !cmp) || (n_success && !success) ||
        (n_failure && !failure))
        return -EINVAL;
    json_t *o = json_object();
    json_t *c = json_array(), *s = json_array(), *f = json_array();
    if (!o || !c || !s || !f) {
        json_decref(o);
        json_decref(c);
        json_decref(s);
        json_decref(f);
        return -ENOMEM;
    }
    int rc = 0;
    for (size_t i = 0; i < n_cmp && !rc; i++)
        rc = enc_compare(c, &cmp[i]);
    for (size_t i = 0; i < n_success && !rc; i++)
        rc = enc_op(s, &success[i]);
    for (size_t i = 0; i < n_failure && !rc; i++)
        rc = enc_op(f, &failure[i]);
    if (json_object_set_new(o, "compare", c) | json_object_set_new(o, "success", s) |
        json_object_set_new(o, "failure", f))
        rc = rc ? rc : -ENOMEM;
    if (rc) {
        json_decref(o);
        return rc;
    }
    return dump(o, out);
}

int etcd__enc_compact(int64_t revision, bool physical, char **out)
{
    *out = NULL;
    if (revision <= 0)
        return -EINVAL;
    json_t *o = json_object();
    if (!o)
        return -ENOMEM;
    int rc = etcd__set_i64(o, "revision", revision);
    rc = rc ? rc : set_bool(o, "physical", physical);
    if (rc) {
        json_decref(o);
        return rc;
    }
    return dump(o, out);
}

int etcd__enc_lease_grant(int64_t ttl_s, int64_t id, char **out)
{
    *out = NULL;
    if (ttl_s <= 0 || id < 0)
        return -EINVAL;
    json_t *o = json_object();
    if (!o)
        return -ENOMEM;
    int rc = etcd__set_i64(o, "TTL", ttl_s);
    if (id)
        rc = rc ? rc : etcd__set_i64(o, "ID", id);
    if (rc) {
        json_decref(o);
        return rc;
    }
    return dump(o, out);
}

int etcd__enc_lease_id(int64_t id, char **out)
{
    *out = NULL;
    if (id <= 0)
        return -EINVAL;
    json_t *o = json_object();
    if (!o)
        return -ENOMEM;
    if (etcd__set_i64(o, "ID", id)) {
        json_decref(o);
        return -ENOMEM;
    }
    return dump(o, out);
}

int etcd__enc_lease_ttl(int64_t id, bool keys, char **out)
{
    *out = NULL;
    if (id <= 0)
        return -EINVAL;
    json_t *o = json_object();
    if (!o)
        return -ENOMEM;
    int rc = etcd__set_i64(o, "ID", id);
    rc = rc ? rc : set_bool(o, "keys", keys);
    if (rc) {
        json_decref(o);
        return rc;
    }
    return dump(o, out);
}

int etcd__enc_watch_create(const etcd_watch_req *r, char **out)
{
    *out = NULL;
    if (r->start_revision < 0)
        return -EINVAL;
    json_t *o = json_object();
    json_t *cr = json_object();
    json_t *filters = json_array();
    if (!o || !cr || !filters) {
        json_decref(o);
        json_decref(cr);
        json_decref(filters);
        return -ENOMEM;
    }
    int rc = set_range(cr, r->key, r->range_end, r->prefix, false);
    if (r->start_revision)
        rc = rc ? rc : etcd__set_i64(cr, "start_revision", r->start_revision);
    rc = rc ? rc : set_bool(cr, "prev_kv", r->prev_kv);
    if (r->no_put && json_array_append_new(filters, json_string("NOPUT")))
        rc = rc ? rc : -ENOMEM;
    if (r->no_delete && json_array_append_new(filters, json_string("NODELETE")))
        rc = rc ? rc : -ENOMEM;
    if (json_array_size(filters)) {
        if (json_object_set(cr, "filters", filters))
            rc = rc ? rc : -ENOMEM;
    }
    json_decref(filters);
    if (json_object_set_new(o, "create_request", cr))
        rc = rc ? rc : -ENOMEM;
    if (rc) {
        json_decref(o);
        return rc;
    }
    return dump(o, out);
}

/* ---- responses ---- */

static int get_header_rev(const json_t *o, int64_t *rev, char *err, size_t errlen)
{
    *rev = 0;
    json_t *h = json_object_get(o, "header");
    if (!h)
        return 0; /* nested txn responses may lack cluster fields; revision then 0 */
    if (!json_is_object(h) || etcd__get_i64(h, "revision", rev)) {
        set_err(err, errlen, "malformed response: bad header");
        return CURVE_ERR_ETCD;
    }
    return 0;
}

static int get_bytes(const json_t *o, const char *field, char **out, size_t *len, char *err,
                     size_t errlen)
{
    json_t *v = json_object_get(o, field);
    const char *s = "";
    size_t slen = 0;
    if (v) {
        if (!json_is_string(v)) {
            set_err(err, errlen, "malformed response: '%s' is not a string", field);
            return CURVE_ERR_ETCD;
        }
        s = json_string_value(v);
        slen = json_string_length(v);
    }
    int rc = etcd__b64_decode(s, slen, out, len);
    if (rc == -EINVAL) {
        set_err(err, errlen, "malformed response: '%s' is not base64", field);
        return CURVE_ERR_ETCD;
    }
    return rc;
}

void etcd_kv_free(etcd_kv *kv)
{
    if (!kv)
        return;
    free(kv->key);
    free(kv->value);
    memset(kv, 0, sizeof(*kv));
}

int etcd__dec_kv(const json_t *o, etcd_kv *kv, char *err, size_t errlen)
{
    memset(kv, 0, sizeof(*kv));
    if (!json_is_object(o)) {
        set_err(err, errlen, "malformed response: kv is not an object");
        return CURVE_ERR_ETCD;
    }
    int rc = get_bytes(o, "key", &kv->key, &kv->key_len, err, errlen);
    rc = rc ? rc : get_bytes(o, "value", &kv->value, &kv->value_len, err, errlen);
    if (!rc && (etcd__get_i64(o, "create_revision", &kv->create_revision) ||
                etcd__get_i64(o, "mod_revision", &kv->mod_revision) ||
                etcd__get_i64(o, "version", &kv->version) ||
                etcd__get_i64(o, "lease", &kv->lease))) {
        set_err(err, errlen, "malformed response: bad kv revision/version/lease");
        rc = CURVE_ERR_ETCD;
    }
    if (rc)
        etcd_kv_free(kv);
    return rc;
}

static int dec_kv_array(const json_t *o, const char *field, etcd_kv **out, size_t *n, char *err,
                        size_t errlen)
{
    *out = NULL;
    *n = 0;
    json_t *a = json_object_get(o, field);
    if (!a)
        return 0;
    if (!json_is_array(a) || json_array_size(a) > ETCD_MAX_KVS_PER_RESPONSE) {
        set_err(err, errlen, "malformed response: '%s' is not an array", field);
        return CURVE_ERR_ETCD;
    }
    size_t cnt = json_array_size(a);
    if (cnt == 0)
        return 0;
    etcd_kv *kvs = calloc(cnt, sizeof(*kvs));
    if (!kvs)
        return -ENOMEM;
    for (size_t i = 0; i < cnt; i++) {
        int rc = etcd__dec_kv(json_array_get(a, i), &kvs[i], err, errlen);
        if (rc) {
            for (size_t j = 0; j < i; j++)
                etcd_kv_free(&kvs[j]);
            free(kvs);
            return rc;
        }
    }
    *out = kvs;
    *n = cnt;
    return 0;
}

void etcd_range_result_free(etcd_range_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_kvs; i++)
        etcd_kv_free(&r->kvs[i]);
    free(r->kvs);
    memset(r, 0, sizeof(*r));
}

static int need_object(const json_t *o, char *err, size_t errlen)
{
    if (json_is_object(o))
        return 0;
    set_err(err, errlen, "malformed response: not a JSON object");
    return CURVE_ERR_ETCD;
}

int etcd__dec_range(const json_t *o, etcd_range_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    int rc = need_object(o, err, errlen);
    rc = rc ? rc : get_header_rev(o, &out->revision, err, errlen);
    rc = rc ? rc : dec_kv_array(o, "kvs", &out->kvs, &out->n_kvs, err, errlen);
    if (!rc && (etcd__get_i64(o, "count", &out->count) ||
                etcd__get_bool(o, "more", &out->more) || out->count < 0)) {
        set_err(err, errlen, "malformed response: bad count/more");
        rc = CURVE_ERR_ETCD;
    }
    if (rc)
        etcd_range_result_free(out);
    return rc;
}

void etcd_put_result_free(etcd_put_result *r)
{
    if (!r)
        return;
    etcd_kv_free(&r->prev);
    memset(r, 0, sizeof(*r));
}

int etcd__dec_put(const json_t *o, etcd_put_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    int rc = need_object(o, err, errlen);
    rc = rc ? rc : get_header_rev(o, &out->revision, err, errlen);
    json_t *p = json_object_get(o, "prev_kv");
    if (!rc && p) {
        rc = etcd__dec_kv(p, &out->prev, err, errlen);
        out->has_prev = rc == 0;
    }
    return rc;
}

void etcd_delete_result_free(etcd_delete_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_prev_kvs; i++)
        etcd_kv_free(&r->prev_kvs[i]);
    free(r->prev_kvs);
    memset(r, 0, sizeof(*r));
}

int etcd__dec_delete(const json_t *o, etcd_delete_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    int rc = need_object(o, err, errlen);
    rc = rc ? rc : get_header_rev(o, &out->revision, err, errlen);
    if (!rc && (etcd__get_i64(o, "deleted", &out->deleted) || out->deleted < 0)) {
        set_err(err, errlen, "malformed response: bad 'deleted'");
        rc = CURVE_ERR_ETCD;
    }
    rc = rc ? rc : dec_kv_array(o, "prev_kvs", &out->prev_kvs, &out->n_prev_kvs, err, errlen);
    if (rc)
        etcd_delete_result_free(out);
    return rc;
}

static void op_result_free(etcd_op_result *r)
{
    etcd_range_result_free(&r->range);
    etcd_put_result_free(&r->put);
    etcd_delete_result_free(&r->del);
}

void etcd_txn_result_free(etcd_txn_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_results; i++)
        op_result_free(&r->results[i]);
    free(r->results);
    memset(r, 0, sizeof(*r));
}

static int dec_op_result(const json_t *o, etcd_op_result *r, char *err, size_t errlen)
{
    json_t *v;
    memset(r, 0, sizeof(*r));
    if (!json_is_object(o)) {
        set_err(err, errlen, "malformed response: txn response is not an object");
        return CURVE_ERR_ETCD;
    }
    if ((v = json_object_get(o, "response_range"))) {
        r->type = ETCD_OP_RANGE;
        return etcd__dec_range(v, &r->range, err, errlen);
    }
    if ((v = json_object_get(o, "response_put"))) {
        r->type = ETCD_OP_PUT;
        return etcd__dec_put(v, &r->put, err, errlen);
    }
    if ((v = json_object_get(o, "response_delete_range"))) {
        r->type = ETCD_OP_DELETE;
        return etcd__dec_delete(v, &r->del, err, errlen);
    }
    set_err(err, errlen, "malformed response: unknown txn response kind");
    return CURVE_ERR_ETCD;
}

int etcd__dec_txn(const json_t *o, etcd_txn_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    int rc = need_object(o, err, errlen);
    rc = rc ? rc : get_header_rev(o, &out->revision, err, errlen);
    if (!rc && etcd__get_bool(o, "succeeded", &out->succeeded)) {
        set_err(err, errlen, "malformed response: bad 'succeeded'");
        rc = CURVE_ERR_ETCD;
    }
    json_t *a = json_object_get(o, "responses");
    if (rc || !a)
        return rc;
    if (!json_is_array(a) || json_array_size(a) > ETCD_MAX_TXN_OPS) {
        set_err(err, errlen, "malformed response: bad 'responses'");
        return CURVE_ERR_ETCD;
    }
    size_t n = json_array_size(a);
    if (n == 0)
        return 0;
    out->results = calloc(n, sizeof(*out->results));
    if (!out->results)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        rc = dec_op_result(json_array_get(a, i), &out->results[i], err, errlen);
        out->n_results = i + 1;
        if (rc) {
            etcd_txn_result_free(out);
            return rc;
        }
    }
    return 0;
}

int etcd__dec_lease_grant(const json_t *o, int64_t *id, int64_t *ttl, char *err, size_t errlen)
{
    int rc = need_object(o, err, errlen);
    if (rc)
        return rc;
    json_t *e = json_object_get(o, "error");
    if (e && json_is_string(e) && json_string_length(e) > 0) {
        set_err(err, errlen, "lease grant failed: %s", json_string_value(e));
        return CURVE_ERR_ETCD;
    }
    if (etcd__get_i64(o, "ID", id) || etcd__get_i64(o, "TTL", ttl) || *id <= 0 || *ttl <= 0) {
        set_err(err, errlen, "malformed response: bad lease ID/TTL");
        return CURVE_ERR_ETCD;
    }
    return 0;
}

int etcd__dec_keepalive(const json_t *o, int64_t *ttl, char *err, size_t errlen)
{
    int rc = need_object(o, err, errlen);
    if (rc)
        return rc;
    int64_t id;
    if (etcd__get_i64(o, "TTL", ttl) || etcd__get_i64(o, "ID", &id)) {
        set_err(err, errlen, "malformed response: bad keepalive TTL");
        return CURVE_ERR_ETCD;
    }
    if (*ttl <= 0) {
        set_err(err, errlen, "lease %llx not found (expired or revoked)", (long long)id);
        return CURVE_ERR_NOT_FOUND;
    }
    return 0;
}

void etcd_lease_info_free(etcd_lease_info *i)
{
    if (!i)
        return;
    for (size_t k = 0; k < i->n_keys; k++)
        free(i->keys[k]);
    free(i->keys);
    memset(i, 0, sizeof(*i));
}

int etcd__dec_lease_ttl(const json_t *o, etcd_lease_info *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    int rc = need_object(o, err, errlen);
    rc = rc ? rc : get_header_rev(o, &out->revision, err, errlen);
    if (rc)
        return rc;
    if (etcd__get_i64(o, "ID", &out->id) || etcd__get_i64(o, "TTL", &out->ttl) ||
        etcd__get_i64(o, "grantedTTL", &out->granted_ttl)) {
        set_err(err, errlen, "malformed response: bad lease ID/TTL");
        return CURVE_ERR_ETCD;
    }
    if (out->ttl < 0) {
        set_err(err, errlen, "lease %llx not found (expired or revoked)", (long long)out->id);
        return CURVE_ERR_NOT_FOUND;
    }
    json_t *a = json_object_get(o, "keys");
    if (!a)
        return 0;
    if (!json_is_array(a) || json_array_size(a) > ETCD_MAX_KVS_PER_RESPONSE) {
        set_err(err, errlen, "malformed response: bad lease 'keys'");
        return CURVE_ERR_ETCD;
    }
    size_t n = json_array_size(a);
    if (n == 0)
        return 0;
    out->keys = calloc(n, sizeof(char *));
    if (!out->keys)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *k = json_array_get(a, i);
        size_t len;
        rc = json_is_string(k) ? etcd__b64_decode(json_string_value(k), json_string_length(k),
                                                  &out->keys[i], &len)
                               : -EINVAL;
        out->n_keys = i + 1;
        if (rc) {
            etcd_lease_info_free(out);
            set_err(err, errlen, "malformed response: bad lease key");
            return rc == -ENOMEM ? rc : CURVE_ERR_ETCD;
        }
    }
    return 0;
}

static void event_free(etcd_event *e)
{
    etcd_kv_free(&e->kv);
    etcd_kv_free(&e->prev_kv);
}

void etcd__watch_resp_free(etcd__watch_resp *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_events; i++)
        event_free(&w->events[i]);
    free(w->events);
    memset(w, 0, sizeof(*w));
}

static int dec_event(const json_t *o, etcd_event *e, char *err, size_t errlen)
{
    memset(e, 0, sizeof(*e));
    if (!json_is_object(o)) {
        set_err(err, errlen, "malformed response: event is not an object");
        return CURVE_ERR_ETCD;
    }
    json_t *t = json_object_get(o, "type");
    if (!t || (json_is_string(t) && strcmp(json_string_value(t), "PUT") == 0) ||
        (json_is_integer(t) && json_integer_value(t) == 0)) {
        e->type = ETCD_EV_PUT;
    } else if ((json_is_string(t) && strcmp(json_string_value(t), "DELETE") == 0) ||
               (json_is_integer(t) && json_integer_value(t) == 1)) {
        e->type = ETCD_EV_DELETE;
    } else {
        set_err(err, errlen, "malformed response: unknown event type");
        return CURVE_ERR_ETCD;
    }
    json_t *kv = json_object_get(o, "kv");
    if (!kv) {
        set_err(err, errlen, "malformed response: event without kv");
        return CURVE_ERR_ETCD;
    }
    int rc = etcd__dec_kv(kv, &e->kv, err, errlen);
    json_t *p = json_object_get(o, "prev_kv");
    if (!rc && p) {
        rc = etcd__dec_kv(p, &e->prev_kv, err, errlen);
        e->has_prev = rc == 0;
    }
    if (rc)
        event_free(e);
    return rc;
}

int etcd__dec_watch(const json_t *o, etcd__watch_resp *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    int rc = need_object(o, err, errlen);
    rc = rc ? rc : get_header_rev(o, &out->revision, err, errlen);
    if (rc)
        return rc;
    if (etcd__get_i64(o, "watch_id", &out->watch_id) ||
        etcd__get_bool(o, "created", &out->created) ||
        etcd__get_bool(o, "canceled", &out->canceled) ||
        etcd__get_i64(o, "compact_revision", &out->compact_revision)) {
        set_err(err, errlen, "malformed response: bad watch fields");
        return CURVE_ERR_ETCD;
    }
    json_t *cr = json_object_get(o, "cancel_reason");
    if (cr && json_is_string(cr))
        snprintf(out->cancel_reason, sizeof(out->cancel_reason), "%s", json_string_value(cr));
    json_t *a = json_object_get(o, "events");
    if (!a)
        return 0;
    if (!json_is_array(a) || json_array_size(a) > ETCD_MAX_EVENTS_PER_RESPONSE) {
        set_err(err, errlen, "malformed response: bad 'events'");
        return CURVE_ERR_ETCD;
    }
    size_t n = json_array_size(a);
    if (n == 0)
        return 0;
    out->events = calloc(n, sizeof(*out->events));
    if (!out->events)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        rc = dec_event(json_array_get(a, i), &out->events[i], err, errlen);
        if (rc) {
            etcd__watch_resp_free(out);
            return rc;
        }
        out->n_events = i + 1;
    }
    return 0;
}

int etcd__map_grpc(int64_t code)
{
    switch (code) {
    case ETCD_GRPC_INVALID_ARGUMENT:
        return -EINVAL;
    case ETCD_GRPC_DEADLINE_EXCEEDED:
        return CURVE_ERR_TIMEOUT;
    case ETCD_GRPC_NOT_FOUND:
        return CURVE_ERR_NOT_FOUND;
    case ETCD_GRPC_UNAVAILABLE:
        return -EAGAIN;
    default:
        return CURVE_ERR_ETCD;
    }
}

/* Reads a gateway error object: {"error": "msg", "code": N, "message": "msg"}. In streams the
 * error is {"error": {"grpc_code": N, "http_code": H, "message": "msg", ...}}. */
static int dec_gateway_error(const json_t *e, const json_t *root, char *err, size_t errlen)
{
    int64_t code = 0;
    const char *msg = NULL;
    if (json_is_object(e)) {
        if (etcd__get_i64(e, "grpc_code", &code) || code == 0)
            etcd__get_i64(e, "code", &code);
        json_t *m = json_object_get(e, "message");
        msg = json_is_string(m) ? json_string_value(m) : NULL;
    } else {
        etcd__get_i64(root, "code", &code);
        msg = json_is_string(e) ? json_string_value(e) : NULL;
    }
    set_err(err, errlen, "etcd error (grpc code %lld): %s", (long long)code,
            msg ? msg : "(no message)");
    /* "etcdserver: request timed out" / leader changes come with code 14 in 3.4; map it so the
     * caller retries. */
    return etcd__map_grpc(code);
}

int etcd__parse_body(const char *body, size_t len, bool stream, json_t **out, char *err,
                     size_t errlen)
{
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        set_err(err, errlen, "malformed response: %s at offset %d", jerr.text, jerr.position);
        return CURVE_ERR_ETCD;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        set_err(err, errlen, "malformed response: not a JSON object");
        return CURVE_ERR_ETCD;
    }
    json_t *e = json_object_get(root, "error");
    if (e && !json_is_null(e) && !(json_is_string(e) && !json_object_get(root, "code") &&
                                   json_object_get(root, "ID"))) {
        /* (A lease grant answer carries an "error" string field of its own next to "ID".) */
        int rc = dec_gateway_error(e, root, err, errlen);
        json_decref(root);
        return rc;
    }
    if (stream) {
        json_t *r = json_object_get(root, "result");
        if (!json_is_object(r)) {
            json_decref(root);
            set_err(err, errlen, "malformed response: stream line without 'result'");
            return CURVE_ERR_ETCD;
        }
        json_incref(r);
        json_decref(root);
        root = r;
    }
    *out = root;
    return 0;
}
