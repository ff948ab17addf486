/* libFuzzer target for the configuration parser: arbitrary bytes as a config file, then the same
 * bytes split into command-line arguments. Must never crash, leak or read out of bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/assert.h"
#include "common/config.h"
#include "curve/errors.h"

static const curve_cfg_def defs[] = {
    {"name", CURVE_CFG_STRING, "x", 0, 0, "string"},
    {"port", CURVE_CFG_INT, "8200", 1, 65535, "ranged int"},
    {"size", CURVE_CFG_INT, "16m", 0, 0, "int with suffix"},
    {"flag", CURVE_CFG_BOOL, "false", 0, 0, "bool"},
    {"ratio", CURVE_CFG_DOUBLE, "0.5", 0, 0, "double"},
    {"a.timeout_ms", CURVE_CFG_DURATION_MS, "1s", 1, 3600000, "duration"},
    {"req", CURVE_CFG_STRING, NULL, 0, 0, "required"},
};

/* Most arguments built from one input. */
#define FUZZ_MAX_ARGS 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    curve_config *cfg = NULL;
    char err[256];
    int rc = curve_config_new(defs, CURVE_ARRAY_SIZE(defs), &cfg, err, sizeof(err));
    CURVE_ASSERT(rc == 0);

    rc = curve_config_load_buffer(cfg, "fuzz.conf", (const char *)data, size, err, sizeof(err));
    CURVE_ASSERT(rc == 0 || rc == CURVE_ERR_CONFIG);
    if (rc != 0)
        CURVE_ASSERT(strncmp(err, "fuzz.conf:", 10) == 0);
    /* Values always stay within their ranges. */
    int64_t port = curve_config_int(cfg, "port");
    CURVE_ASSERT(port >= 1 && port <= 65535);
    int64_t t = curve_config_duration_ms(cfg, "a.timeout_ms");
    CURVE_ASSERT(t >= 1 && t <= 3600000);
    (void)curve_config_str(cfg, "name");
    (void)curve_config_check_required(cfg, err, sizeof(err));

    /* The same bytes as argv, split at newlines; --conf= is dropped (no file access). */
    char *copy = malloc(size + 1);
    CURVE_ASSERT(copy != NULL);
    memcpy(copy, data, size);
    copy[size] = '\0';
    char *argv[FUZZ_MAX_ARGS + 1];
    int argc = 0;
    for (char *p = copy; argc < FUZZ_MAX_ARGS;) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        if (strncmp(p, "--conf", 6) != 0)
            argv[argc++] = p;
        if (!nl)
            break;
        p = nl + 1;
    }
    argv[argc] = NULL;
    int before = argc;
    rc = curve_config_parse_args(cfg, &argc, argv, err, sizeof(err));
    CURVE_ASSERT(rc == 0 || rc == CURVE_ERR_CONFIG);
    CURVE_ASSERT(argc >= 0 && argc <= before);
    port = curve_config_int(cfg, "port");
    CURVE_ASSERT(port >= 1 && port <= 65535);
    char usage[512];
    curve_config_usage(cfg, usage, sizeof(usage));
    free(copy);
    curve_config_free(cfg);
    return 0;
}
