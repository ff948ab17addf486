/*
 * Configuration: a schema of typed keys with defaults, values from a `key=value` file
 * (# comments, blank lines, surrounding spaces ignored) and from `--key=value` command-line
 * overrides (applied after the file). Unknown keys and bad values are errors naming the key and,
 * for files, "<path>:<line>".
 *
 * Thread model: build and load on one thread; after loading, getters are read-only and
 * thread-safe.
 */
#ifndef CURVE_COMMON_CONFIG_H
#define CURVE_COMMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    CURVE_CFG_STRING,
    CURVE_CFG_INT,    /* int64, accepts suffixes k/m/g/t (x1024) e.g. "16m" */
    CURVE_CFG_BOOL,   /* true/false/yes/no/1/0/on/off */
    CURVE_CFG_DOUBLE,
    CURVE_CFG_DURATION_MS, /* int64 milliseconds; accepts "250ms", "5s", "2m", "1h", bare = ms */
} curve_cfg_type;

typedef struct curve_cfg_def {
    const char *key;     /* [a-z0-9_.]+ */
    curve_cfg_type type;
    const char *defval;  /* default, parsed like a file value; NULL = required */
    int64_t min, max;    /* for INT / DURATION_MS: inclusive range (min==max==0: unbounded) */
    const char *help;    /* one line, shown by curve_config_usage() */
} curve_cfg_def;

typedef struct curve_config curve_config;

/* Creates a config from `defs` (borrowed: must outlive the config). Defaults are applied.
 * Returns 0, -ENOMEM, or CURVE_ERR_CONFIG with `err` filled (bad default in the schema). */
int curve_config_new(const curve_cfg_def *defs, size_t ndefs, curve_config **out, char *err,
                     size_t errlen);
void curve_config_free(curve_config *cfg);

/* Loads `path`. On failure returns -errno (cannot read) or CURVE_ERR_CONFIG and writes a message
 * like "conf/cs.conf:12: unknown key 'raft.electon_ms'" into `err`. */
int curve_config_load_file(curve_config *cfg, const char *path, char *err, size_t errlen);

/* Like curve_config_load_file, for `len` bytes of file content in memory (need not be
 * NUL-terminated); `name` (may be NULL) stands for the path in error messages. */
int curve_config_load_buffer(curve_config *cfg, const char *name, const char *data, size_t len,
                             char *err, size_t errlen);

/* Applies one "key=value" assignment (source names it in errors, e.g. "--raft.x" or "env"). */
int curve_config_set(curve_config *cfg, const char *key, const char *value, const char *source,
                     char *err, size_t errlen);

/* Consumes every "--key=value" argument of argv whose key is in the schema, plus
 * "--conf=<file>" (loaded first, wherever it appears). Other arguments are kept, in order, in
 * argv[0..*argc-1]. "--key=value" with an unknown key is an error. Returns 0 or
 * CURVE_ERR_CONFIG / -errno with `err` filled. */
int curve_config_parse_args(curve_config *cfg, int *argc, char **argv, char *err, size_t errlen);

/* Fails with CURVE_ERR_CONFIG naming the first required key (defval NULL) never set. */
int curve_config_check_required(const curve_config *cfg, char *err, size_t errlen);

/* True when `key` (in the schema, asserted) was set by a file, an argument or curve_config_set,
 * false when it holds its default. */
bool curve_config_is_set(const curve_config *cfg, const char *key);

/* Getters; the key must be in the schema with that type (asserted). */
const char *curve_config_str(const curve_config *cfg, const char *key);
int64_t curve_config_int(const curve_config *cfg, const char *key);
bool curve_config_bool(const curve_config *cfg, const char *key);
double curve_config_double(const curve_config *cfg, const char *key);
int64_t curve_config_duration_ms(const curve_config *cfg, const char *key);

/* Writes "  --key=<default>  help" lines for every key into `buf` (truncated to len). */
void curve_config_usage(const curve_config *cfg, char *buf, size_t len);

#endif
