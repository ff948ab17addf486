/*
 * libFuzzer target for the metrics registry: arbitrary bytes as metric names, help texts and
 * label keys/values must never crash registration, and whatever is accepted must render as a
 * well-formed Prometheus text exposition (every sample line: a valid name, an optional label
 * block with properly quoted and escaped values, one space, a value, a newline).
 *
 * Input: fields separated by NUL bytes: kind-selector, name, help, k1, v1, k2, v2, ...
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/assert.h"
#include "common/metrics.h"

#define FUZZ_FIELDS_MAX 24 /* fields taken from one input */

static const char *skip_name(const char *p)
{
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
           *p == '_' || *p == ':')
        p++;
    return p;
}

/* Checks one sample line [p, end) and returns true when it is well formed. */
static bool sample_ok(const char *p, const char *end)
{
    const char *q = skip_name(p);
    if (q == p || (*p >= '0' && *p <= '9'))
        return false;
    if (*q == '{') {
        q++;
        while (*q != '}') {
            const char *k = q;
            q = skip_name(q);
            if (q == k || *q != '=' || q[1] != '"')
                return false;
            q += 2;
            while (*q != '"') {
                if (q >= end || *q == '\n')
                    return false;
                if (*q == '\\') {
                    if (q[1] != '\\' && q[1] != '"' && q[1] != 'n')
                        return false;
                    q++;
                }
                q++;
            }
            q++;
            if (*q == ',')
                q++;
            else if (*q != '}')
                return false;
        }
        q++;
    }
    return *q == ' ' && q + 1 < end;
}

static void check_exposition(const char *text)
{
    const char *p = text;
    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        CURVE_ASSERT(nl != NULL); /* every line is terminated */
        if (*p == '#')
            CURVE_ASSERT(strncmp(p, "# HELP ", 7) == 0 || strncmp(p, "# TYPE ", 7) == 0);
        else
            CURVE_ASSERT(sample_ok(p, nl));
        p = nl + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';

    const char *f[FUZZ_FIELDS_MAX + 1];
    size_t nf = 0;
    for (char *p = buf; nf < FUZZ_FIELDS_MAX && p <= buf + size; p += strlen(p) + 1)
        f[nf++] = p;
    if (nf < 3) {
        free(buf);
        return 0;
    }
    /* labels: fields 3.. as pairs, NULL-terminated (an odd count leaves a key without value) */
    const char *labels[FUZZ_FIELDS_MAX + 1];
    size_t nl = 0;
    for (size_t i = 3; i < nf; i++)
        labels[nl++] = f[i];
    labels[nl] = NULL;

    curve_metrics *reg = NULL;
    CURVE_ASSERT(curve_metrics_new(&reg) == 0);
    unsigned sel = (unsigned char)f[0][0];
    /* Two registrations of one name with the selected kinds, to exercise families. */
    for (int round = 0; round < 2; round++, sel >>= 2) {
        const char *const *lab = round == 0 ? labels : NULL;
        switch (sel & 3) {
        case 0: {
            curve_counter *c = NULL;
            if (curve_metrics_counter(reg, f[1], f[2], lab, &c) == 0)
                curve_counter_add(c, size);
            break;
        }
        case 1: {
            curve_gauge *g = NULL;
            if (curve_metrics_gauge(reg, f[1], f[2], lab, &g) == 0)
                curve_gauge_set(g, -(int64_t)size);
            break;
        }
        case 2: {
            curve_latency *l = NULL;
            if (curve_metrics_latency(reg, f[1], f[2], lab, NULL, (unsigned)size % 70, &l) == 0)
                curve_latency_record(l, (uint64_t)size * 977);
            break;
        }
        default: {
            curve_rate *r = NULL;
            if (curve_metrics_rate(reg, f[1], f[2], lab, NULL, 0, &r) == 0)
                curve_rate_add(r, size);
            break;
        }
        }
    }
    char *text = NULL;
    CURVE_ASSERT(curve_metrics_render_prometheus(reg, &text, NULL) == 0);
    check_exposition(text);
    free(text);
    curve_metrics_free(reg);
    free(buf);
    return 0;
}
