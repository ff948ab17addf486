/*
 * libFuzzer target for the `curve` CLI's input decoders (tools/cli_args.c, tools/cli_cluster.c):
 * first byte even: the rest is a command line (arguments separated by NUL bytes) fed to
 * cli_parse + cli_lookup + the size/duration/path/address parsers; odd: the rest is a
 * cluster.json record for cli_cluster_check_state. Nothing may crash, leak or overflow.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"
#include "tools/cli_mds.h"

#define FUZZ_ARGS_MAX  32
#define FUZZ_INPUT_MAX 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > FUZZ_INPUT_MAX)
        return 0;
    char err[CLI_ERR_MAX];
    if (data[0] & 1) {
        cli_cluster_check_state((const char *)data + 1, size - 1, err, sizeof(err));
        return 0;
    }
    char *buf = malloc(size); /* the rest, NUL-terminated */
    if (buf == NULL)
        return 0;
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    char *argv[FUZZ_ARGS_MAX];
    int argc = 0;
    for (char *p = buf; p < buf + size - 1 && argc < FUZZ_ARGS_MAX; p += strlen(p) + 1)
        argv[argc++] = p;
    struct cli_opts o;
    if (cli_parse(argc, argv, &o, err, sizeof(err)) == 0) {
        const struct cli_cmd *cmd;
        const char **pos;
        int npos;
        cli_lookup(&o, &cmd, &pos, &npos, err, sizeof(err));
    }
    for (int i = 0; i < argc; i++) {
        uint64_t v;
        char addrs[CLI_MDS_ADDRS_MAX][CLI_MDS_ADDR_LEN];
        cli_parse_size(argv[i], &v);
        cli_parse_duration_ms(argv[i], &v);
        cli_check_path(argv[i], err, sizeof(err));
        cli_mds_parse_addrs(argv[i], addrs, CLI_MDS_ADDRS_MAX, err, sizeof(err));
    }
    free(buf);
    return 0;
}
