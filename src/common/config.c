/* Typed configuration: schema, defaults, key=value files, --key=value overrides (config.h). */
#include "common/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/assert.h"
#include "curve/errors.h"

/* Largest configuration file accepted. */
#define CFG_FILE_MAX (4u << 20)
/* Longest key accepted (schema and input). */
#define CFG_KEY_MAX 128
/* Longest value quoted back in an error message. */
#define CFG_ERR_VALUE_MAX 64

typedef struct cfg_val {
    bool set; /* a value (default or explicit) is present */
    bool explicit_set; /* set from a file, argument or curve_config_set */
    char *s;
    int64_t i;
    bool b;
    double d;
} cfg_val;

struct curve_config {
    const curve_cfg_def *defs;
    size_t n;
    cfg_val *vals;
};

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

static bool key_valid(const char *k, size_t len)
{
    if (len == 0 || len > CFG_KEY_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.'))
            return false;
    }
    return true;
}

static long find_key(const curve_config *cfg, const char *key, size_t len)
{
    for (size_t i = 0; i < cfg->n; i++)
        if (strlen(cfg->defs[i].key) == len && memcmp(cfg->defs[i].key, key, len) == 0)
            return (long)i;
    return -1;
}

/* Copies a value for an error message, cut and with non-printable bytes replaced. */
static const char *quote_value(const char *v, char *out, size_t outlen)
{
    size_t n = 0;
    for (; v[n] && n + 4 < outlen && n < CFG_ERR_VALUE_MAX; n++)
        out[n] = isprint((unsigned char)v[n]) ? v[n] : '?';
    if (v[n] && n + 4 <= outlen) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}

static int mul_overflows(int64_t a, int64_t m, int64_t *out)
{
    return __builtin_mul_overflow(a, m, out);
}

static int parse_int(const char *v, int64_t *out)
{
    if (!*v || isspace((unsigned char)*v))
        return -EINVAL;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (end == v || errno == ERANGE)
        return -EINVAL;
    int64_t mult = 1;
    if (*end) {
        switch (tolower((unsigned char)*end)) {
        case 'k': mult = 1LL << 10; break;
        case 'm': mult = 1LL << 20; break;
        case 'g': mult = 1LL << 30; break;
        case 't': mult = 1LL << 40; break;
        default: return -EINVAL;
        }
        end++;
        if (strcasecmp(end, "ib") == 0 || strcasecmp(end, "b") == 0)
            end += strlen(end);
        if (*end)
            return -EINVAL;
    }
    int64_t r;
    if (mul_overflows((int64_t)x, mult, &r))
        return -EINVAL;
    *out = r;
    return 0;
}

static int parse_duration(const char *v, int64_t *out)
{
    if (!*v || isspace((unsigned char)*v))
        return -EINVAL;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (end == v || errno == ERANGE)
        return -EINVAL;
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {
        {"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"min", 60000}, {"h", 3600000},
        {"d", 86400000},
    };
    for (size_t i = 0; i < CURVE_ARRAY_SIZE(units); i++) {
        if (strcmp(end, units[i].unit) == 0) {
            int64_t r;
            if (mul_overflows((int64_t)x, units[i].ms, &r))
                return -EINVAL;
            *out = r;
            return 0;
        }
    }
    return -EINVAL;
}

static int parse_bool(const char *v, bool *out)
{
    static const char *yes[] = {"true", "yes", "1", "on"};
    static const char *no[] = {"false", "no", "0", "off"};
    for (size_t i = 0; i < CURVE_ARRAY_SIZE(yes); i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

static int parse_double(const char *v, double *out)
{
    if (!*v || isspace((unsigned char)*v))
        return -EINVAL;
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *end || errno == ERANGE || !isfinite(d))
        return -EINVAL;
    *out = d;
    return 0;
}

static const char *type_name(curve_cfg_type t)
{
    switch (t) {
    case CURVE_CFG_STRING: return "string";
    case CURVE_CFG_INT: return "integer (optional suffix k/m/g/t)";
    case CURVE_CFG_BOOL: return "boolean (true/false/yes/no/1/0/on/off)";
    case CURVE_CFG_DOUBLE: return "number";
    case CURVE_CFG_DURATION_MS: return "duration (e.g. 250ms, 5s, 2m, 1h; bare = ms)";
    }
    return "?";
}

/* Parses `v` for definition `d` into `out` (out->s newly allocated for strings). */
static int parse_value(const curve_cfg_def *d, const char *v, const char *src, cfg_val *out,
                       char *err, size_t errlen)
{
    char q[CFG_ERR_VALUE_MAX + 8];
    int rc = 0;
    memset(out, 0, sizeof(*out));
    switch (d->type) {
    case CURVE_CFG_STRING:
        out->s = strdup(v);
        if (!out->s) {
            set_err(err, errlen, "%s: out of memory", src);
            return -ENOMEM;
        }
        break;
    case CURVE_CFG_INT:
        rc = parse_int(v, &out->i);
        break;
    case CURVE_CFG_DURATION_MS:
        rc = parse_duration(v, &out->i);
        break;
    case CURVE_CFG_BOOL:
        rc = parse_bool(v, &out->b);
        break;
    case CURVE_CFG_DOUBLE:
        rc = parse_double(v, &out->d);
        break;
    default:
        set_err(err, errlen, "%s: key '%s' has an invalid type in the schema", src, d->key);
        return CURVE_ERR_CONFIG;
    }
    if (rc != 0) {
        set_err(err, errlen, "%s: bad value '%s' for key '%s': expected %s", src,
                quote_value(v, q, sizeof(q)), d->key, type_name(d->type));
        return CURVE_ERR_CONFIG;
    }
    if ((d->type == CURVE_CFG_INT || d->type == CURVE_CFG_DURATION_MS) &&
        !(d->min == 0 && d->max == 0) && (out->i < d->min || out->i > d->max)) {
        set_err(err, errlen, "%s: value %lld for key '%s' out of range [%lld, %lld]", src,
                (long long)out->i, d->key, (long long)d->min, (long long)d->max);
        return CURVE_ERR_CONFIG;
    }
    out->set = true;
    return 0;
}

static void commit_value(cfg_val *dst, cfg_val *src, bool explicit_set)
{
    free(dst->s);
    *dst = *src;
    dst->explicit_set = explicit_set;
}

int curve_config_new(const curve_cfg_def *defs, size_t ndefs, curve_config **out, char *err,
                     size_t errlen)
{
    CURVE_ASSERT(out != NULL);
    CURVE_ASSERT(defs != NULL || ndefs == 0);
    *out = NULL;
    curve_config *cfg = calloc(1, sizeof(*cfg));
    if (!cfg) {
        set_err(err, errlen, "config: out of memory");
        return -ENOMEM;
    }
    cfg->defs = defs;
    cfg->n = ndefs;
    cfg->vals = calloc(ndefs ? ndefs : 1, sizeof(*cfg->vals));
    if (!cfg->vals) {
        set_err(err, errlen, "config: out of memory");
        free(cfg);
        return -ENOMEM;
    }
    int rc = 0;
    for (size_t i = 0; i < ndefs; i++) {
        const curve_cfg_def *d = &defs[i];
        if (!d->key || !key_valid(d->key, strlen(d->key))) {
            set_err(err, errlen, "schema: invalid key '%s'", d->key ? d->key : "(null)");
            rc = CURVE_ERR_CONFIG;
            goto err_after_alloc;
        }
        if (find_key(cfg, d->key, strlen(d->key)) != (long)i) {
            set_err(err, errlen, "schema: duplicate key '%s'", d->key);
            rc = CURVE_ERR_CONFIG;
            goto err_after_alloc;
        }
        if (!d->defval)
            continue;
        cfg_val v;
        rc = parse_value(d, d->defval, "schema default", &v, err, errlen);
        if (rc != 0)
            goto err_after_alloc;
        commit_value(&cfg->vals[i], &v, false);
    }
    *out = cfg;
    return 0;

err_after_alloc:
    curve_config_free(cfg);
    return rc;
}

void curve_config_free(curve_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n; i++)
        free(cfg->vals[i].s);
    free(cfg->vals);
    free(cfg);
}

/* Applies key/value (both NUL-terminated, already trimmed). */
static int config_set_n(curve_config *cfg, const char *key, size_t keylen, const char *value,
                        const char *src, char *err, size_t errlen)
{
    long idx = find_key(cfg, key, keylen);
    if (idx < 0) {
        char k[CFG_ERR_VALUE_MAX + 8];
        char tmp[CFG_ERR_VALUE_MAX + 1];
        size_t n = keylen < CFG_ERR_VALUE_MAX ? keylen : CFG_ERR_VALUE_MAX;
        memcpy(tmp, key, n);
        tmp[n] = '\0';
        set_err(err, errlen, "%s: unknown key '%s'", src, quote_value(tmp, k, sizeof(k)));
        return CURVE_ERR_CONFIG;
    }
    cfg_val v;
    int rc = parse_value(&cfg->defs[idx], value, src, &v, err, errlen);
    if (rc != 0)
        return rc;
    commit_value(&cfg->vals[idx], &v, true);
    return 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\r')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

int curve_config_set(curve_config *cfg, const char *key, const char *value, const char *source,
                     char *err, size_t errlen)
{
    CURVE_ASSERT(cfg != NULL);
    const char *src = source ? source : "set";
    if (!key || !value) {
        set_err(err, errlen, "%s: missing key or value", src);
        return CURVE_ERR_CONFIG;
    }
    char *v = strdup(value);
    if (!v) {
        set_err(err, errlen, "%s: out of memory", src);
        return -ENOMEM;
    }
    int rc = config_set_n(cfg, key, strlen(key), trim(v), src, err, errlen);
    free(v);
    return rc;
}

/* Parses one line (modified in place). */
static int load_line(curve_config *cfg, char *line, const char *name, unsigned lineno, char *err,
                     size_t errlen)
{
    char src[512];
    snprintf(src, sizeof(src), "%s:%u", name, lineno);
    /* '#' starts a comment at the beginning of a line or after whitespace. */
    for (char *p = line; *p; p++) {
        if (*p == '#' && (p == line || p[-1] == ' ' || p[-1] == '\t')) {
            *p = '\0';
            break;
        }
    }
    char *s = trim(line);
    if (!*s)
        return 0;
    char *eq = strchr(s, '=');
    if (!eq) {
        set_err(err, errlen, "%s: expected 'key = value'", src);
        return CURVE_ERR_CONFIG;
    }
    *eq = '\0';
    char *key = trim(s);
    char *value = trim(eq + 1);
    if (!*key) {
        set_err(err, errlen, "%s: missing key before '='", src);
        return CURVE_ERR_CONFIG;
    }
    return config_set_n(cfg, key, strlen(key), value, src, err, errlen);
}

int curve_config_load_buffer(curve_config *cfg, const char *name, const char *data, size_t len,
                             char *err, size_t errlen)
{
    CURVE_ASSERT(cfg != NULL);
    CURVE_ASSERT(data != NULL || len == 0);
    if (!name)
        name = "<buffer>";
    if (memchr(data, '\0', len)) {
        unsigned lineno = 1;
        for (const char *p = data; *p; p++)
            lineno += *p == '\n';
        set_err(err, errlen, "%s:%u: NUL byte in configuration", name, lineno);
        return CURVE_ERR_CONFIG;
    }
    char *copy = malloc(len + 1);
    if (!copy) {
        set_err(err, errlen, "%s: out of memory", name);
        return -ENOMEM;
    }
    memcpy(copy, data, len);
    copy[len] = '\0';
    int rc = 0;
    unsigned lineno = 0;
    char *p = copy;
    while (*p) {
        lineno++;
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        rc = load_line(cfg, p, name, lineno, err, errlen);
        if (rc != 0 || !nl)
            break;
        p = nl + 1;
    }
    free(copy);
    return rc;
}

int curve_config_load_file(curve_config *cfg, const char *path, char *err, size_t errlen)
{
    CURVE_ASSERT(cfg != NULL && path != NULL);
    int rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        set_err(err, errlen, "%s: cannot open: %s", path, strerror(-rc));
        return rc;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        set_err(err, errlen, "%s: cannot stat: %s", path, strerror(-rc));
        goto err_after_open;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > CFG_FILE_MAX) {
        set_err(err, errlen, "%s: not a regular file of at most %u bytes", path, CFG_FILE_MAX);
        rc = CURVE_ERR_CONFIG;
        goto err_after_open;
    }
    size_t size = (size_t)st.st_size;
    char *data = malloc(size ? size : 1);
    if (!data) {
        set_err(err, errlen, "%s: out of memory", path);
        rc = -ENOMEM;
        goto err_after_open;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, data + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            set_err(err, errlen, "%s: read failed: %s", path, strerror(-rc));
            goto err_after_malloc;
        }
        if (r == 0)
            break; /* file shrank: parse what we got */
        got += (size_t)r;
    }
    rc = curve_config_load_buffer(cfg, path, data, got, err, errlen);

err_after_malloc:
    free(data);
err_after_open:
    close(fd);
    return rc;
}

int curve_config_parse_args(curve_config *cfg, int *argc, char **argv, char *err, size_t errlen)
{
    CURVE_ASSERT(cfg != NULL && argc != NULL && *argc >= 0);
    int n = *argc;
    int rc;
    /* Pass 1: configuration files, in order, before any --key=value. */
    for (int i = 0; i < n; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strncmp(argv[i], "--conf=", 7) == 0) {
            rc = curve_config_load_file(cfg, argv[i] + 7, err, errlen);
            if (rc != 0)
                return rc;
        }
    }
    /* Pass 2: overrides; compact everything else. */
    int out = 0;
    bool rest = false;
    for (int i = 0; i < n; i++) {
        char *a = argv[i];
        if (rest || strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (a[0] == '-' && a[1] == '-' && a[2] == '\0')
                rest = true;
            argv[out++] = a;
            continue;
        }
        if (strncmp(a, "--conf=", 7) == 0)
            continue;
        const char *key = a + 2;
        const char *eq = strchr(key, '=');
        size_t keylen = eq ? (size_t)(eq - key) : strlen(key);
        char src[CFG_KEY_MAX + 8];
        snprintf(src, sizeof(src), "--%.*s", (int)(keylen < CFG_KEY_MAX ? keylen : CFG_KEY_MAX),
                 key);
        long idx = find_key(cfg, key, keylen);
        if (!eq) {
            if (idx >= 0 && cfg->defs[idx].type == CURVE_CFG_BOOL) {
                rc = config_set_n(cfg, key, keylen, "true", src, err, errlen);
                if (rc != 0)
                    return rc;
                continue;
            }
            if (idx >= 0) {
                set_err(err, errlen, "%s: expects --%s=<value>", src, cfg->defs[idx].key);
                return CURVE_ERR_CONFIG;
            }
            argv[out++] = a; /* a flag for someone else, e.g. --help */
            continue;
        }
        char *v = strdup(eq + 1);
        if (!v) {
            set_err(err, errlen, "%s: out of memory", src);
            return -ENOMEM;
        }
        rc = config_set_n(cfg, key, keylen, trim(v), src, err, errlen);
        free(v);
        if (rc != 0)
            return rc;
    }
    if (out < n)
        argv[out] = NULL;
    *argc = out;
    return 0;
}

int curve_config_check_required(const curve_config *cfg, char *err, size_t errlen)
{
    CURVE_ASSERT(cfg != NULL);
    for (size_t i = 0; i < cfg->n; i++) {
        if (!cfg->defs[i].defval && !cfg->vals[i].set) {
            set_err(err, errlen, "required key '%s' is not set (%s)", cfg->defs[i].key,
                    cfg->defs[i].help ? cfg->defs[i].help : "no help");
            return CURVE_ERR_CONFIG;
        }
    }
    return 0;
}

bool curve_config_is_set(const curve_config *cfg, const char *key)
{
    CURVE_ASSERT(cfg != NULL && key != NULL);
    long idx = find_key(cfg, key, strlen(key));
    CURVE_ASSERT(idx >= 0);
    return cfg->vals[idx].explicit_set;
}

static const cfg_val *get(const curve_config *cfg, const char *key, curve_cfg_type t)
{
    CURVE_ASSERT(cfg != NULL && key != NULL);
    long idx = find_key(cfg, key, strlen(key));
    if (idx < 0) {
        fprintf(stderr, "config: key '%s' is not in the schema\n", key);
        CURVE_ASSERT(idx >= 0);
    }
    CURVE_ASSERT(cfg->defs[idx].type == t);
    return &cfg->vals[idx];
}

const char *curve_config_str(const curve_config *cfg, const char *key)
{
    const cfg_val *v = get(cfg, key, CURVE_CFG_STRING);
    return v->s ? v->s : "";
}

int64_t curve_config_int(const curve_config *cfg, const char *key)
{
    return get(cfg, key, CURVE_CFG_INT)->i;
}

bool curve_config_bool(const curve_config *cfg, const char *key)
{
    return get(cfg, key, CURVE_CFG_BOOL)->b;
}

double curve_config_double(const curve_config *cfg, const char *key)
{
    return get(cfg, key, CURVE_CFG_DOUBLE)->d;
}

int64_t curve_config_duration_ms(const curve_config *cfg, const char *key)
{
    return get(cfg, key, CURVE_CFG_DURATION_MS)->i;
}

void curve_config_usage(const curve_config *cfg, char *buf, size_t len)
{
    CURVE_ASSERT(cfg != NULL);
    if (!buf || len == 0)
        return;
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < cfg->n && off + 1 < len; i++) {
        const curve_cfg_def *d = &cfg->defs[i];
        int w = snprintf(buf + off, len - off, "  --%s=%s  %s\n", d->key,
                         d->defval ? d->defval : "<required>", d->help ? d->help : "");
        if (w < 0)
            break;
        off += (size_t)w;
        if (off >= len)
            off = len - 1;
    }
}
