/* Failpoints: see failpoint.h for the grammar and the cost model. */
#include "common/failpoint.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/assert.h"
#include "common/log.h"

atomic_uint curve__failpoints_active = 0;

typedef enum { FP_OFF = 0, FP_RETURN, FP_DELAY } fp_kind;

typedef struct fp_action {
    fp_kind kind;
    int arg;          /* errno (positive) for RETURN, milliseconds for DELAY */
    unsigned pct;     /* 0..100; 100 when not given */
    uint64_t count;   /* remaining firings; 0 = unlimited */
} fp_action;

typedef struct fp_entry {
    bool used; /* slot holds a name (possibly switched off, to keep its hit counter) */
    char name[CURVE_FAILPOINT_NAME_MAX + 1];
    fp_action act;
    uint64_t hits;
} fp_entry;

/* fp_mu protects fp_table, fp_rng and the writes to curve__failpoints_active (which is kept
 * equal to the number of entries whose action is not FP_OFF). */
static pthread_mutex_t fp_mu = PTHREAD_MUTEX_INITIALIZER;
static fp_entry fp_table[CURVE_FAILPOINT_MAX];
static uint64_t fp_rng = 0x9e3779b97f4a7c15ull;

static const struct {
    const char *name;
    int val;
} fp_errnos[] = {
    {"EIO", EIO},       {"ENOSPC", ENOSPC},     {"EAGAIN", EAGAIN},
    {"EINTR", EINTR},   {"ENOMEM", ENOMEM},     {"EROFS", EROFS},
    {"EDQUOT", EDQUOT}, {"ETIMEDOUT", ETIMEDOUT}, {"EBUSY", EBUSY},
    {"ENOENT", ENOENT}, {"EINVAL", EINVAL},     {"EPERM", EPERM},
    {"EACCES", EACCES}, {"EEXIST", EEXIST},     {"ECONNRESET", ECONNRESET},
    {"ECONNREFUSED", ECONNREFUSED}, {"EPIPE", EPIPE},
};

/* splitmix64; called with fp_mu held. */
static uint64_t fp_next_random(void)
{
    uint64_t z = (fp_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static bool fp_valid_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '.' || c == ':' || c == '-';
}

/* Copies [s, s+n) into out without surrounding spaces. Returns false if it does not fit. */
static bool fp_trim(const char *s, size_t n, char *out, size_t outlen)
{
    while (n > 0 && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    if (n >= outlen)
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}

static bool fp_valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > CURVE_FAILPOINT_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!fp_valid_name_char(name[i]))
            return false;
    return true;
}

/* Parses a decimal number at *p (advancing it). Returns false if there are no digits or it
 * exceeds max. */
static bool fp_parse_uint(const char **p, uint64_t max, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (!isdigit((unsigned char)*s))
        return false;
    while (isdigit((unsigned char)*s)) {
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > max)
            return false;
        s++;
    }
    *p = s;
    *out = v;
    return true;
}

static bool fp_parse_errno(const char *s, int *out)
{
    uint64_t v;
    const char *p = s;
    if (fp_parse_uint(&p, 4095, &v)) {
        if (*p != '\0' || v == 0)
            return false;
        *out = (int)v;
        return true;
    }
    for (size_t i = 0; i < CURVE_ARRAY_SIZE(fp_errnos); i++) {
        if (strcmp(s, fp_errnos[i].name) == 0) {
            *out = fp_errnos[i].val;
            return true;
        }
    }
    return false;
}

/* Parses an action (already trimmed). Returns 0 or -EINVAL. */
static int fp_parse_action(const char *s, fp_action *out)
{
    fp_action a = {.kind = FP_OFF, .arg = 0, .pct = 100, .count = 0};
    const char *p = s;
    uint64_t v;
    char arg[32];

    if (strcmp(s, "off") == 0) {
        *out = a;
        return 0;
    }
    /* optional "<pct>%" and "<count>*" prefixes, each a number followed by its marker */
    for (int i = 0; i < 2 && isdigit((unsigned char)*p); i++) {
        const char *q = p;
        if (!fp_parse_uint(&q, UINT32_MAX, &v))
            return -EINVAL;
        if (*q == '%' && i == 0 && a.pct == 100 && v <= 100) {
            a.pct = (unsigned)v;
            p = q + 1;
        } else if (*q == '*' && v >= 1) {
            a.count = v;
            p = q + 1;
            break;
        } else {
            return -EINVAL;
        }
    }
    if (strncmp(p, "return", 6) == 0) {
        a.kind = FP_RETURN;
        a.arg = EIO;
        p += 6;
    } else if (strncmp(p, "delay", 5) == 0) {
        a.kind = FP_DELAY;
        p += 5;
    } else {
        return -EINVAL;
    }
    if (*p == '\0') {
        if (a.kind == FP_DELAY)
            return -EINVAL; /* delay needs its argument */
        *out = a;
        return 0;
    }
    if (*p != '(')
        return -EINVAL;
    const char *close = strchr(p, ')');
    if (close == NULL || close[1] != '\0')
        return -EINVAL;
    if (!fp_trim(p + 1, (size_t)(close - p - 1), arg, sizeof(arg)))
        return -EINVAL;
    if (a.kind == FP_RETURN) {
        if (!fp_parse_errno(arg, &a.arg))
            return -EINVAL;
    } else {
        const char *q = arg;
        if (!fp_parse_uint(&q, CURVE_FAILPOINT_DELAY_MAX_MS, &v) || *q != '\0')
            return -EINVAL;
        a.arg = (int)v;
    }
    *out = a;
    return 0;
}

/* Called with fp_mu held. */
static fp_entry *fp_find(const char *name)
{
    for (size_t i = 0; i < CURVE_FAILPOINT_MAX; i++)
        if (fp_table[i].used && strcmp(fp_table[i].name, name) == 0)
            return &fp_table[i];
    return NULL;
}

/* Called with fp_mu held: a free slot, or one holding a switched-off failpoint. */
static fp_entry *fp_free_slot(void)
{
    for (size_t i = 0; i < CURVE_FAILPOINT_MAX; i++)
        if (!fp_table[i].used)
            return &fp_table[i];
    for (size_t i = 0; i < CURVE_FAILPOINT_MAX; i++)
        if (fp_table[i].act.kind == FP_OFF)
            return &fp_table[i];
    return NULL;
}

/* Called with fp_mu held. */
static void fp_set_locked(fp_entry *e, const fp_action *a)
{
    bool was_on = e->act.kind != FP_OFF;
    bool on = a->kind != FP_OFF;
    e->act = *a;
    e->hits = 0;
    if (was_on && !on)
        atomic_fetch_sub_explicit(&curve__failpoints_active, 1, memory_order_relaxed);
    else if (!was_on && on)
        atomic_fetch_add_explicit(&curve__failpoints_active, 1, memory_order_relaxed);
}

/* Applies (name, action) with fp_mu held. Returns 0 or -ENOSPC. */
static int fp_apply_locked(const char *name, const fp_action *a)
{
    fp_entry *e = fp_find(name);
    if (e == NULL) {
        if (a->kind == FP_OFF)
            return 0;
        e = fp_free_slot();
        if (e == NULL)
            return -ENOSPC;
        if (e->used)
            fp_set_locked(e, &(fp_action){.kind = FP_OFF});
        e->used = true;
        snprintf(e->name, sizeof(e->name), "%s", name);
        e->act.kind = FP_OFF;
    }
    fp_set_locked(e, a);
    return 0;
}

int curve_failpoint_set(const char *name, const char *action)
{
    fp_action a;
    char act[128];
    if (name == NULL || action == NULL || !fp_valid_name(name))
        return -EINVAL;
    if (!fp_trim(action, strlen(action), act, sizeof(act)) || fp_parse_action(act, &a) != 0)
        return -EINVAL;
    pthread_mutex_lock(&fp_mu);
    int rc = fp_apply_locked(name, &a);
    pthread_mutex_unlock(&fp_mu);
    return rc;
}

typedef struct fp_parsed {
    char name[CURVE_FAILPOINT_NAME_MAX + 1];
    fp_action act;
} fp_parsed;

int curve_failpoint_configure(const char *spec, char *err, size_t errlen)
{
    fp_parsed *list;
    size_t n = 0;
    int rc = 0;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (spec == NULL)
        return -EINVAL;
    /* A spec can never hold more entries than it has ';' + 1. */
    size_t max_entries = 1;
    for (const char *p = spec; *p; p++)
        max_entries += *p == ';';
    list = calloc(max_entries, sizeof(*list));
    if (list == NULL)
        return -ENOMEM;

    const char *p = spec;
    while (*p != '\0') {
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char entry[256];
        if (!fp_trim(p, len, entry, sizeof(entry))) {
            if (err)
                snprintf(err, errlen, "failpoint entry too long: '%.40s...'", p);
            rc = -EINVAL;
            goto out;
        }
        p += len + (end != NULL);
        if (entry[0] == '\0')
            continue;
        char *eq = strchr(entry, '=');
        char act[200];
        if (eq == NULL || !fp_trim(entry, (size_t)(eq - entry), list[n].name,
                                   sizeof(list[n].name)) ||
            !fp_valid_name(list[n].name)) {
            if (err)
                snprintf(err, errlen, "bad failpoint entry '%s' (want name=action)", entry);
            rc = -EINVAL;
            goto out;
        }
        if (!fp_trim(eq + 1, strlen(eq + 1), act, sizeof(act)) ||
            fp_parse_action(act, &list[n].act) != 0) {
            if (err)
                snprintf(err, errlen, "bad failpoint action in '%s'", entry);
            rc = -EINVAL;
            goto out;
        }
        n++;
    }

    pthread_mutex_lock(&fp_mu);
    /* Check capacity first so that a failure leaves the table unchanged. */
    size_t need = 0, free_slots = 0;
    for (size_t i = 0; i < CURVE_FAILPOINT_MAX; i++)
        free_slots += !fp_table[i].used || fp_table[i].act.kind == FP_OFF;
    for (size_t i = 0; i < n; i++) {
        fp_entry *e = fp_find(list[i].name);
        bool dup = false;
        for (size_t j = 0; j < i; j++)
            dup |= strcmp(list[j].name, list[i].name) == 0;
        if (!dup && list[i].act.kind != FP_OFF && (e == NULL || e->act.kind == FP_OFF))
            need++;
    }
    if (need > free_slots) {
        pthread_mutex_unlock(&fp_mu);
        if (err)
            snprintf(err, errlen, "too many failpoints (max %d)", CURVE_FAILPOINT_MAX);
        rc = -ENOSPC;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        rc = fp_apply_locked(list[i].name, &list[i].act);
        CURVE_ASSERT(rc == 0);
    }
    pthread_mutex_unlock(&fp_mu);
out:
    free(list);
    return rc;
}

int curve_failpoint_init_from_env(void)
{
    const char *spec = getenv("CURVE_FAILPOINTS");
    char err[256];
    if (spec == NULL || spec[0] == '\0')
        return 0;
    int rc = curve_failpoint_configure(spec, err, sizeof(err));
    if (rc != 0)
        CLOG_ERROR("CURVE_FAILPOINTS ignored: %s", err[0] ? err : "invalid");
    else
        CLOG_WARN("failpoints enabled from environment: %s", spec);
    return rc;
}

__attribute__((constructor)) static void fp_ctor(void)
{
    (void)curve_failpoint_init_from_env();
}

void curve_failpoint_clear_all(void)
{
    pthread_mutex_lock(&fp_mu);
    for (size_t i = 0; i < CURVE_FAILPOINT_MAX; i++) {
        if (fp_table[i].used)
            fp_set_locked(&fp_table[i], &(fp_action){.kind = FP_OFF});
        fp_table[i].used = false;
    }
    CURVE_ASSERT(atomic_load(&curve__failpoints_active) == 0);
    pthread_mutex_unlock(&fp_mu);
}

uint64_t curve_failpoint_hits(const char *name)
{
    uint64_t hits = 0;
    if (name == NULL)
        return 0;
    pthread_mutex_lock(&fp_mu);
    fp_entry *e = fp_find(name);
    if (e != NULL)
        hits = e->hits;
    pthread_mutex_unlock(&fp_mu);
    return hits;
}

void curve_failpoint_seed(uint64_t seed)
{
    pthread_mutex_lock(&fp_mu);
    fp_rng = seed;
    pthread_mutex_unlock(&fp_mu);
}

static const char *fp_errno_name(int e, char *buf, size_t len)
{
    for (size_t i = 0; i < CURVE_ARRAY_SIZE(fp_errnos); i++)
        if (fp_errnos[i].val == e)
            return fp_errnos[i].name;
    snprintf(buf, len, "%d", e);
    return buf;
}

size_t curve_failpoint_dump(char *buf, size_t len)
{
    size_t total = 0;
    char tmp[256], num[16];
    if (buf != NULL && len > 0)
        buf[0] = '\0';
    pthread_mutex_lock(&fp_mu);
    for (size_t i = 0; i < CURVE_FAILPOINT_MAX; i++) {
        const fp_entry *e = &fp_table[i];
        if (!e->used || e->act.kind == FP_OFF)
            continue;
        int n = snprintf(tmp, sizeof(tmp), "%s%s=", total ? ";" : "", e->name);
        if (e->act.pct != 100)
            n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, "%u%%", e->act.pct);
        if (e->act.count != 0)
            n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, "%llu*",
                          (unsigned long long)e->act.count);
        if (e->act.kind == FP_RETURN)
            n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, "return(%s)",
                          fp_errno_name(e->act.arg, num, sizeof(num)));
        else
            n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, "delay(%d)", e->act.arg);
        if (buf != NULL && total + 1 < len)
            snprintf(buf + total, len - total, "%s", tmp);
        total += (size_t)n;
    }
    pthread_mutex_unlock(&fp_mu);
    return total;
}

int curve__failpoint_eval(const char *name)
{
    int rc = 0, delay_ms = 0;

    pthread_mutex_lock(&fp_mu);
    fp_entry *e = fp_find(name);
    if (e != NULL && e->act.kind != FP_OFF) {
        bool fire = e->act.pct >= 100 || (fp_next_random() % 100) < e->act.pct;
        if (fire) {
            e->hits++;
            if (e->act.kind == FP_RETURN)
                rc = -e->act.arg;
            else
                delay_ms = e->act.arg;
            if (e->act.count != 0 && --e->act.count == 0) {
                uint64_t hits = e->hits;
                fp_set_locked(e, &(fp_action){.kind = FP_OFF});
                e->hits = hits; /* keep the counter readable after exhaustion */
            }
        }
    }
    pthread_mutex_unlock(&fp_mu);

    if (delay_ms > 0) {
        struct timespec ts = {.tv_sec = delay_ms / 1000, .tv_nsec = (delay_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    return rc;
}
