/*
 * curve: the Curve-C operator CLI (docs/cli.md).
 *
 *   curve <group> <command> [object] [arguments] [--format=table|json] [--mds-addrs=...]
 *
 * Exit codes: 0 ok, 1 operation failed, 2 usage error, 3 not found, 4 cluster unavailable or
 * timed out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "tools/cli.h"

int main(int argc, char **argv)
{
    struct cli_opts o;
    char err[CLI_ERR_MAX];
    /* The CLI's own messages go to stderr through cli_fail; library logs only when asked. */
    if (getenv("CURVE_LOG_LEVEL") == NULL)
        curve_log_set_level(CURVE_LOG_ERROR);
    int r = cli_parse(argc - 1, argv + 1, &o, err, sizeof(err));
    if (r != 0) {
        fprintf(stderr, "curve: %s\n\n", err);
        cli_usage(stderr, NULL, NULL);
        return CLI_EXIT_USAGE;
    }
    if (o.nwords == 0 || (o.help && o.nwords == 1)) {
        cli_usage(o.help ? stdout : stderr, NULL, o.nwords ? o.words[0] : NULL);
        return o.help ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    }
    if (o.nwords == 1 && strcmp(o.words[0], "help") == 0) {
        cli_usage(stdout, NULL, NULL);
        return CLI_EXIT_OK;
    }
    const struct cli_cmd *cmd;
    const char **pos;
    int npos;
    r = cli_lookup(&o, &cmd, &pos, &npos, err, sizeof(err));
    if (o.help && cmd != NULL) {
        cli_usage(stdout, cmd, NULL);
        return CLI_EXIT_OK;
    }
    if (r != 0) {
        fprintf(stderr, "curve: %s\n\n", err);
        cli_usage(stderr, cmd, cmd ? NULL : o.words[0]);
        return CLI_EXIT_USAGE;
    }
    r = cmd->fn(cmd, &o, pos, npos);
    if (r == CLI_EXIT_USAGE) {
        fputc('\n', stderr);
        cli_usage(stderr, cmd, NULL);
    }
    return r;
}
