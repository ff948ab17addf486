/* Blocking MDS RPCs for the CLI; see cli_mds.h. */
#include "tools/cli_mds.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/config.h"
#include "curve/errors.h"
#include "loop/loop.h"
#include "rpc/rpc_channel.h"

struct cli_mds {
    curve_loop *loop;
    int naddrs;
    char addrs[CLI_MDS_ADDRS_MAX][CLI_MDS_ADDR_LEN];
    rpc_channel *ch[CLI_MDS_ADDRS_MAX]; /* created lazily */
    int cur;                            /* address to try first */
    char leader[CLI_MDS_ADDR_LEN];
    uint32_t timeout_ms;
};

int cli_mds_parse_addrs(const char *s, char addrs[][CLI_MDS_ADDR_LEN], int max, char *err,
                        size_t errlen)
{
    int n = 0;
    const char *p = s;
    if (s == NULL || *s == '\0') {
        snprintf(err, errlen, "empty MDS address list");
        return -EINVAL;
    }
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char one[CLI_MDS_ADDR_LEN];
        if (len == 0 || len >= sizeof(one)) {
            snprintf(err, errlen, "bad MDS address '%.*s' in '%s'", (int)(len < 80 ? len : 80), p,
                     s);
            return -EINVAL;
        }
        memcpy(one, p, len);
        one[len] = '\0';
        const char *colon = strrchr(one, ':');
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        if (colon == NULL || colon == one || end == colon + 1 || *end != '\0' || port < 1 ||
            port > 65535) {
            snprintf(err, errlen, "bad MDS address '%s' (expected ip:port)", one);
            return -EINVAL;
        }
        if (n == max) {
            snprintf(err, errlen, "more than %d MDS addresses", max);
            return -EINVAL;
        }
        memcpy(addrs[n++], one, len + 1);
        if (comma == NULL)
            return n;
        p = comma + 1;
    }
}

/* mds.addrs from a libcurve client conf: the only key the CLI needs. Other keys of the same
 * file are libcurve's and are left to it. */
static int addrs_from_conf(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        int e = errno;
        snprintf(err, errlen, "cannot read conf %s: %s", path, strerror(e));
        return -e;
    }
    char line[1024];
    int found = -ENOENT;
    while (fgets(line, sizeof(line), f) != NULL) {
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, "mds.addrs", 9) != 0)
            continue;
        p += 9;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != '=')
            continue;
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        size_t n = strcspn(p, " \t\r\n#");
        if (n >= outlen) {
            snprintf(err, errlen, "%s: mds.addrs is too long", path);
            found = -EINVAL;
            break;
        }
        memcpy(out, p, n);
        out[n] = '\0';
        found = 0;
    }
    fclose(f);
    if (found == -ENOENT)
        snprintf(err, errlen, "%s has no mds.addrs key", path);
    return found;
}

int cli_mds_open(const struct cli_opts *o, struct cli_mds **out, char *err, size_t errlen)
{
    char buf[CLI_MDS_ADDRS_MAX * CLI_MDS_ADDR_LEN];
    const char *addrs = o->mds_addrs;
    if (addrs == NULL && o->conf != NULL) {
        if (addrs_from_conf(o->conf, buf, sizeof(buf), err, errlen) < 0)
            return CLI_EXIT_FAIL;
        addrs = buf;
    }
    if (addrs == NULL) {
        snprintf(err, errlen,
                 "no MDS address: give --mds-addrs=IP:PORT[,...] or --conf=FILE "
                 "(or set CURVE_MDS_ADDRS / CURVE_CONF)");
        return CLI_EXIT_USAGE;
    }
    struct cli_mds *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        snprintf(err, errlen, "out of memory");
        return CLI_EXIT_FAIL;
    }
    m->naddrs = cli_mds_parse_addrs(addrs, m->addrs, CLI_MDS_ADDRS_MAX, err, errlen);
    if (m->naddrs < 0) {
        free(m);
        return CLI_EXIT_USAGE;
    }
    m->timeout_ms = o->timeout_ms ? o->timeout_ms : CLI_TIMEOUT_MS;
    int r = curve_loop_new("curve-cli", &m->loop);
    if (r == 0) {
        r = curve_loop_start(m->loop);
        if (r < 0)
            curve_loop_free(m->loop);
    }
    if (r < 0) {
        snprintf(err, errlen, "cannot start the RPC loop: %s", curve_strerror(r));
        free(m);
        return CLI_EXIT_FAIL;
    }
    *out = m;
    return 0;
}

void cli_mds_close(struct cli_mds *m)
{
    if (m == NULL)
        return;
    for (int i = 0; i < m->naddrs; i++)
        if (m->ch[i] != NULL)
            rpc_channel_close_sync(m->ch[i]);
    curve_loop_stop(m->loop);
    curve_loop_join(m->loop);
    curve_loop_free(m->loop);
    free(m);
}

const char *cli_mds_leader(const struct cli_mds *m)
{
    return m->leader;
}

static bool try_next(int status)
{
    return status == CURVE_ERR_RPC_CONN || status == CURVE_ERR_NOT_LEADER ||
           status == CURVE_ERR_TIMEOUT || status == CURVE_ERR_SHUTDOWN;
}

int cli_mds_call(struct cli_mds *m, uint32_t svc, uint32_t method, const ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp, char *err,
                 size_t errlen)
{
    int status = CURVE_ERR_RPC_CONN;
    char msg[RPC_CHANNEL_ERRMSG_MAX] = "";
    for (int round = 0; round < CLI_MDS_ROUNDS; round++) {
        if (round > 0) {
            struct timespec ts = {0, CLI_MDS_ROUND_PAUSE_MS * 1000000L};
            nanosleep(&ts, NULL); /* back off before the next pass over the addresses */
        }
        for (int k = 0; k < m->naddrs; k++) {
            int i = (m->cur + k) % m->naddrs;
            if (m->ch[i] == NULL) {
                rpc_channel_opts opts = {.timeout_ms = m->timeout_ms,
                                         .connect_timeout_ms = m->timeout_ms};
                int r = rpc_channel_new(m->loop, m->addrs[i], &opts, &m->ch[i]);
                if (r < 0) {
                    snprintf(err, errlen, "MDS address %s: %s", m->addrs[i], curve_strerror(r));
                    return r;
                }
            }
            msg[0] = '\0';
            status = rpc_call_sync(m->ch[i], svc, method, req, NULL, resp_desc, m->timeout_ms,
                                   resp_desc ? resp : NULL, NULL, msg, sizeof(msg));
            if (status == 0) {
                m->cur = i;
                snprintf(m->leader, sizeof(m->leader), "%s", m->addrs[i]);
                return 0;
            }
            if (!try_next(status)) {
                snprintf(err, errlen, "%s", msg[0] ? msg : curve_strerror(status));
                return status;
            }
        }
    }
    if (status == CURVE_ERR_NOT_LEADER)
        status = CURVE_ERR_TIMEOUT; /* nobody claims leadership: the cluster is unavailable */
    snprintf(err, errlen, "no MDS leader answered at %s%s (%d passes): last error: %s", m->addrs[0],
             m->naddrs > 1 ? ",..." : "", CLI_MDS_ROUNDS, msg[0] ? msg : curve_strerror(status));
    return status;
}

static json_t *field_json(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return json_integer(*(const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return json_integer((json_int_t) * (const uint64_t *)p);
    case PROTOBUF_C_TYPE_FLOAT:
        return json_real(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE:
        return json_real(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *v =
            protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int *)p);
        return v ? json_string(v->name) : json_integer(*(const int *)p);
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return json_string(s ? s : "");
    }
    case PROTOBUF_C_TYPE_BYTES:
        return json_integer((json_int_t)((const ProtobufCBinaryData *)p)->len);
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
        return sub ? cli_pb_json(sub) : json_null();
    }
    }
    return json_null();
}

static size_t field_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    default:
        return 4;
    }
}

json_t *cli_pb_json(const ProtobufCMessage *m)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *base = (const char *)m + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
            const char *arr = *(char *const *)base;
            json_t *a = json_array();
            for (size_t k = 0; k < n && a != NULL; k++)
                json_array_append_new(a, field_json(f, arr + k * field_size(f)));
            json_object_set_new(o, f->name, a);
            continue;
        }
        if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
            bool present;
            if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE)
                present = *(void *const *)base != NULL;
            else
                present = f->quantifier_offset != 0 &&
                          *(const protobuf_c_boolean *)((const char *)m + f->quantifier_offset);
            if (!present)
                continue;
        }
        json_object_set_new(o, f->name, field_json(f, base));
    }
    return o;
}
