/*
 * Internals of the `curve` operator CLI (docs/cli.md). Not a public API: tools/ only, and the
 * unit tests in tests/unit/cli.
 *
 *   curve <group> <verb> [object] [positional args] [--flags]
 *
 * cli_args.c  argument parsing, command table lookup and validation, sizes, exit codes
 * cli_out.c   rendering of results (a jansson value) as human tables or JSON
 * cli_mds.c   blocking MDS RPCs, rotating over the MDS addresses
 * cli_bs.c    `curve bs ...` handlers; cli_cluster.c `curve cluster ...` handlers
 *
 * Threads: the CLI is single-threaded apart from the RPC loop thread inside cli_mds.
 */
#ifndef CURVE_TOOLS_CLI_H
#define CURVE_TOOLS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

/* Exit codes (docs/cli.md "Exit codes"). */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAIL = 1,        /* the operation was refused or failed */
    CLI_EXIT_USAGE = 2,       /* bad command line: usage printed */
    CLI_EXIT_NOT_FOUND = 3,   /* the named volume/directory/copyset/... does not exist */
    CLI_EXIT_UNAVAILABLE = 4, /* cluster unreachable, no leader, or timed out */
};

#define CLI_MAX_POS       8    /* positional arguments after the command words */
#define CLI_ERR_MAX       512  /* bytes of an error message */
#define CLI_TIMEOUT_MS    5000 /* default per-RPC timeout */
#define CLI_TIMEOUT_MAX   (3600u * 1000)
#define CLI_LIST_PAGE     1000u  /* default --page-size */
#define CLI_LIST_PAGE_MAX 4000u  /* the MDS's largest page */

typedef enum { CLI_FMT_TABLE = 0, CLI_FMT_JSON = 1 } cli_format;

/* Flags, as a bit mask so each command says which it accepts. */
enum {
    CLI_F_SIZE = 1u << 0,  /* --size=SIZE */
    CLI_F_FORCE = 1u << 1, /* --force */
    CLI_F_ID = 1u << 2,    /* --id=N */
    CLI_F_OWNER = 1u << 3, /* --owner=NAME */
    CLI_F_DIR = 1u << 4,   /* --dir=D */
    CLI_F_POOL = 1u << 5,  /* --pool=N */
    CLI_F_CS = 1u << 6,    /* --chunkserver=N */
    CLI_F_WAIT = 1u << 7,  /* --wait=DURATION */
    CLI_F_BIN = 1u << 8,   /* --bin-dir=D */
    CLI_F_PAGE = 1u << 9,  /* --page-size=N */
};

struct cli_opts {
    /* global flags */
    cli_format format;
    const char *mds_addrs; /* --mds-addrs, else env CURVE_MDS_ADDRS, else the conf file */
    const char *conf;      /* --conf, else env CURVE_CONF */
    uint32_t timeout_ms;   /* --timeout (duration), default CLI_TIMEOUT_MS */
    bool help;
    /* command flags (valid when the bit is in `flags_seen`) */
    unsigned flags_seen;
    uint64_t size;
    bool force;
    uint64_t id;
    const char *owner;
    const char *dir;
    uint32_t pool;
    uint32_t chunkserver;
    uint64_t wait_ms;
    const char *bin_dir;
    uint32_t page_size; /* --page-size: directory entries per MDS ListDir (default CLI_LIST_PAGE) */
    /* words: command words then positional arguments */
    int nwords;
    const char *words[3 + CLI_MAX_POS];
};

struct cli_cmd;
typedef int (*cli_handler)(const struct cli_cmd *cmd, struct cli_opts *o, const char **pos,
                           int npos);

struct cli_cmd {
    const char *group;  /* "bs", "cluster" */
    const char *verb;   /* "create", "list", ... */
    const char *object; /* "volume", "chunkserver", ... or NULL */
    int min_pos, max_pos;
    unsigned flags;    /* CLI_F_* accepted */
    unsigned required; /* CLI_F_* that must be given */
    const char *args;  /* usage of the arguments, e.g. "<path> --size=SIZE [--owner=NAME]" */
    const char *help;  /* one line */
    cli_handler fn;
};

/* The command table (cli_args.c), terminated by an entry with group == NULL. */
extern const struct cli_cmd cli_commands[];

/*
 * Parses argv (without argv[0]) into *o. Flags may appear anywhere, as --name=value or
 * --name value. Returns 0, or CLI_EXIT_USAGE with a message in err naming the bad argument.
 */
int cli_parse(int argc, char **argv, struct cli_opts *o, char *err, size_t errlen);

/*
 * Finds the command named by o->words and checks its positional count and flags. On success
 * *cmd is set, *pos and *npos give the positional arguments, returns 0. Otherwise returns
 * CLI_EXIT_USAGE with err filled; *cmd is set when the command words matched (so its usage can
 * be printed), else NULL.
 */
int cli_lookup(const struct cli_opts *o, const struct cli_cmd **cmd, const char ***pos, int *npos,
               char *err, size_t errlen);

/* Prints the usage of one command, of a group (group != NULL) or of everything. */
void cli_usage(FILE *f, const struct cli_cmd *cmd, const char *group);

/* Parses "10g", "512MiB", "4096", "1.5t" is refused (integers only); suffixes k/m/g/t/p
 * (x1024), optionally followed by "i", "ib" or "b". Returns 0 or -EINVAL / -ERANGE. */
int cli_parse_size(const char *s, uint64_t *out);
/* Parses a duration: "250ms", "5s", "2m", bare = seconds. Returns 0 or -EINVAL / -ERANGE. */
int cli_parse_duration_ms(const char *s, uint64_t *out);
/* Parses a decimal unsigned integer <= max. Returns 0 or -EINVAL / -ERANGE. */
int cli_parse_uint(const char *s, uint64_t max, uint64_t *out);
/* Checks a volume/directory path like libcurve does: absolute, components 1..255 bytes, not
 * "." or "..", total <= 4096. Returns 0 or -EINVAL with err naming the problem. */
int cli_check_path(const char *path, char *err, size_t errlen);

/* Maps a negative errno / CURVE_ERR_* to an exit code (CLI_EXIT_FAIL for unknown ones). */
int cli_exit_code(int err);

/* ---- output (cli_out.c) ---- */

typedef enum {
    CLI_COL_STR = 0, /* strings, integers and booleans as they are */
    CLI_COL_BYTES,   /* integer bytes -> "10 GiB" */
    CLI_COL_TIME_NS, /* integer ns since the epoch -> "2026-11-26 04:40:01" (UTC) */
    CLI_COL_LIST,    /* array -> "a,b,c" */
} cli_col_kind;

struct cli_col {
    const char *key;    /* member of each row object */
    const char *header; /* column title */
    cli_col_kind kind;
};

/* Formats one JSON value for a table cell per `kind` into buf (always NUL-terminated). */
void cli_cell(const json_t *v, cli_col_kind kind, char *buf, size_t len);
/* Formats a byte count: "0 B", "4.0 KiB", "10 GiB" (one decimal below 10 units). */
void cli_bytes(uint64_t n, char *buf, size_t len);

/* Renders `rows` (an array of objects) as a table with `cols` (ncols), or as JSON. */
void cli_render_table(FILE *f, cli_format fmt, const json_t *rows, const struct cli_col *cols,
                      size_t ncols);
/* Renders an object as "key: value" lines (cols pick and order the keys; NULL = all keys in
 * order, cells as CLI_COL_STR), or as JSON. */
void cli_render_object(FILE *f, cli_format fmt, const json_t *obj, const struct cli_col *cols,
                       size_t ncols);
/* Prints an error: "curve: <msg>" on stderr, and in JSON mode also
 * {"ok":false,"exit":N,"code":err,"error":"<name>","message":"<msg>"} on stdout.
 * Returns the exit code for err (cli_exit_code), or `exit_code` when it is non-zero. */
int cli_fail(const struct cli_opts *o, int err, int exit_code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Validates a cluster.json record held in memory (crc32c, fields, bounds), as `cluster down`
 * does before trusting any PID in it. Returns 0 or -EINVAL with err filled. (Fuzzed.) */
int cli_cluster_check_state(const char *text, size_t len, char *err, size_t errlen);

/* ---- handlers (cli_bs.c, cli_cluster.c) ---- */
int cli_bs_create(const struct cli_cmd *, struct cli_opts *, const char **, int);
int cli_bs_delete(const struct cli_cmd *, struct cli_opts *, const char **, int);
int cli_bs_recover(const struct cli_cmd *, struct cli_opts *, const char **, int);
int cli_bs_rename(const struct cli_cmd *, struct cli_opts *, const char **, int);
int cli_bs_extend(const struct cli_cmd *, struct cli_opts *, const char **, int);
int cli_bs_stat(const struct cli_cmd *, struct cli_opts *, const char **, int);
int cli_bs_list_volume(const struct cli_cmd *, struct cli_opts *, const char **, int);
int cli_bs_mkdir(const struct cli_cmd *, struct cli_opts *, const char **, int);
int cli_bs_rmdir(const struct cli_cmd *, struct cli_opts *, const char **, int);
int cli_bs_status(const struct cli_cmd *, struct cli_opts *, const char **, int);
int cli_bs_list_topo(const struct cli_cmd *, struct cli_opts *, const char **, int);
int cli_bs_list_copyset(const struct cli_cmd *, struct cli_opts *, const char **, int);
int cli_bs_copyset_status(const struct cli_cmd *, struct cli_opts *, const char **, int);
int cli_cluster_apply(const struct cli_cmd *, struct cli_opts *, const char **, int);
int cli_cluster_up(const struct cli_cmd *, struct cli_opts *, const char **, int);
int cli_cluster_down(const struct cli_cmd *, struct cli_opts *, const char **, int);
int cli_cluster_status(const struct cli_cmd *, struct cli_opts *, const char **, int);

#endif
