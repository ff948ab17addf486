/* libcurve configuration schema and loading (client_conf.h). */
#include "client/client_conf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/iosplit.h"
#include "client/metacache.h"
#include "common/assert.h"
#include "common/config.h"

static const curve_cfg_def client_defs[] = {
    {"mds.addrs", CURVE_CFG_STRING, NULL, 0, 0,
     "MDS addresses host:port[,host:port...], tried in this order"},
    {"client.owner", CURVE_CFG_STRING, "curve", 0, 0, "owner name used to create and open"},
    {"client.mds.rpc_timeout_ms", CURVE_CFG_DURATION_MS, "500ms", 1, 3600000,
     "timeout of one MDS RPC"},
    {"client.mds.call_deadline_ms", CURVE_CFG_DURATION_MS, "10s", 1, 86400000,
     "a blocking MDS call retries the MDS addresses this long before failing"},
    {"client.session.expire_ms", CURVE_CFG_DURATION_MS, "0", 0, 86400000,
     "opt-in: IO fails after this long without a successful refresh (0: never)"},
    {"client.max_rpc_size", CURVE_CFG_INT, "1m", CURVE_RPC_SIZE_MIN, CURVE_RPC_SIZE_MAX,
     "largest data RPC in bytes (64k..1m, multiple of 4k)"},
    {"client.max_inflight_rpcs", CURVE_CFG_INT, "128", 1, CURVE_CLIENT_INFLIGHT_MAX,
     "data RPCs in flight per volume"},
    {"client.io_threads", CURVE_CFG_INT, "1", 1, CURVE_CLIENT_IO_THREADS_MAX,
     "IO event-loop threads"},
    {"client.allow_512", CURVE_CFG_BOOL, "false", 0, 0, "accept 512-byte aligned IO"},
    {"client.fast_path_inflight", CURVE_CFG_INT, "2", 0, CURVE_CLIENT_INFLIGHT_MAX,
     "a blocking one-piece read/write sends its RPC from the caller's thread when fewer than "
     "this many IOs are in flight on the volume (0: never)"},
    {"client.list_page_size", CURVE_CFG_INT, "1000", 1, 4000,
     "directory entries asked from the MDS per ListDir page (curve_list, curve_recover)"},
    {"client.metacache.max_segments", CURVE_CFG_INT, "4096", 1, CURVE_METACACHE_LIMIT_MAX,
     "segments kept in the metadata cache"},
    {"client.metacache.max_copysets", CURVE_CFG_INT, "65536", 1, CURVE_METACACHE_LIMIT_MAX,
     "copysets kept in the metadata cache"},
    {"client.log_path", CURVE_CFG_STRING, "", 0, 0, "log file (empty: stderr)"},
    {"client.log_level", CURVE_CFG_STRING, "info", 0, 0, "debug, info, warn or error"},
};

const curve_cfg_def *curve_client_cfg_defs(size_t *n)
{
    CURVE_ASSERT(n != NULL);
    *n = CURVE_ARRAY_SIZE(client_defs);
    return client_defs;
}

#define CONF_ERR(...)                                                                              \
    do {                                                                                           \
        if (err && errlen)                                                                         \
            snprintf(err, errlen, __VA_ARGS__);                                                    \
        rc = CURVE_ERR_CONFIG;                                                                     \
        goto out;                                                                                  \
    } while (0)

/* Copies a string value into a fixed buffer or fails naming the key. */
static int copy_str(const curve_config *cfg, const char *key, char *dst, size_t cap, char *err,
                    size_t errlen)
{
    const char *v = curve_config_str(cfg, key);
    size_t l = strlen(v);
    if (l >= cap) {
        if (err && errlen)
            snprintf(err, errlen, "%s: value longer than %zu bytes", key, cap - 1);
        return CURVE_ERR_CONFIG;
    }
    memcpy(dst, v, l + 1);
    return 0;
}

static int read_values(const curve_config *cfg, curve_client_conf *o, char *err, size_t errlen)
{
    int rc = copy_str(cfg, "mds.addrs", o->mds_addrs, sizeof(o->mds_addrs), err, errlen);
    if (rc == 0)
        rc = copy_str(cfg, "client.owner", o->owner, sizeof(o->owner), err, errlen);
    if (rc == 0)
        rc = copy_str(cfg, "client.log_path", o->log_path, sizeof(o->log_path), err, errlen);
    if (rc != 0)
        return rc;
    if (o->owner[0] == '\0') {
        if (err && errlen)
            snprintf(err, errlen, "client.owner must not be empty");
        return CURVE_ERR_CONFIG;
    }
    o->mds_rpc_timeout_ms = (uint64_t)curve_config_duration_ms(cfg, "client.mds.rpc_timeout_ms");
    o->mds_call_deadline_ms =
        (uint64_t)curve_config_duration_ms(cfg, "client.mds.call_deadline_ms");
    o->session_expire_ms = (uint64_t)curve_config_duration_ms(cfg, "client.session.expire_ms");
    o->max_rpc_size = (uint32_t)curve_config_int(cfg, "client.max_rpc_size");
    o->max_inflight_rpcs = (uint32_t)curve_config_int(cfg, "client.max_inflight_rpcs");
    o->io_threads = (uint32_t)curve_config_int(cfg, "client.io_threads");
    o->allow_512 = curve_config_bool(cfg, "client.allow_512");
    o->fast_path_inflight = (uint32_t)curve_config_int(cfg, "client.fast_path_inflight");
    o->list_page_size = (uint32_t)curve_config_int(cfg, "client.list_page_size");
    o->metacache_max_segments = (uint32_t)curve_config_int(cfg, "client.metacache.max_segments");
    o->metacache_max_copysets = (uint32_t)curve_config_int(cfg, "client.metacache.max_copysets");
    if (o->max_rpc_size % 4096 != 0) {
        if (err && errlen)
            snprintf(err, errlen, "client.max_rpc_size (%u) must be a multiple of 4096",
                     o->max_rpc_size);
        return CURVE_ERR_CONFIG;
    }
    if (curve_log_parse_level(curve_config_str(cfg, "client.log_level"), &o->log_level) != 0) {
        if (err && errlen)
            snprintf(err, errlen, "client.log_level: want debug, info, warn or error");
        return CURVE_ERR_CONFIG;
    }
    return curve_retry_opts_from_config(cfg, &o->retry, err, errlen);
}

int curve_client_conf_load(const char *conf_path, const char *const *overrides,
                           curve_client_conf *out, char *err, size_t errlen)
{
    CURVE_ASSERT(out != NULL);
    size_t nc, nr;
    const curve_cfg_def *cd = curve_client_cfg_defs(&nc);
    const curve_cfg_def *rd = curve_retry_cfg_defs(&nr);
    /* one schema: the config borrows the array, so it lives until the config is freed */
    curve_cfg_def *defs = malloc((nc + nr) * sizeof(*defs));
    if (!defs)
        return -ENOMEM;
    memcpy(defs, cd, nc * sizeof(*defs));
    memcpy(defs + nc, rd, nr * sizeof(*defs));
    curve_config *cfg = NULL;
    int rc = curve_config_new(defs, nc + nr, &cfg, err, errlen);
    if (rc != 0)
        goto err_after_defs;
    if (conf_path) {
        rc = curve_config_load_file(cfg, conf_path, err, errlen);
        if (rc != 0)
            goto out;
    }
    for (size_t i = 0; overrides && overrides[i]; i++) {
        const char *kv = overrides[i];
        const char *eq = strchr(kv, '=');
        if (!eq || eq == kv)
            CONF_ERR("override '%.64s': want key=value", kv);
        char key[160];
        size_t kl = (size_t)(eq - kv);
        if (kl >= sizeof(key))
            CONF_ERR("override '%.64s': key too long", kv);
        memcpy(key, kv, kl);
        key[kl] = '\0';
        rc = curve_config_set(cfg, key, eq + 1, "override", err, errlen);
        if (rc != 0)
            goto out;
    }
    rc = curve_config_check_required(cfg, err, errlen);
    if (rc != 0)
        goto out;
    memset(out, 0, sizeof(*out));
    rc = read_values(cfg, out, err, errlen);
    if (rc != 0)
        goto out;
    /* mds.addrs must parse: validate with the rotor that will use it */
    curve_mds_rotor r;
    char rerr[160];
    if (curve_mds_rotor_init(&r, out->mds_addrs, 1, 0, rerr, sizeof(rerr)) != 0)
        CONF_ERR("mds.addrs: %s", rerr);
    curve_mds_rotor_destroy(&r);
out:
    curve_config_free(cfg);
err_after_defs:
    free(defs);
    return rc;
}
