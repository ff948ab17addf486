/*
 * Blocking MDS RPCs for the `curve` CLI. The MDS addresses are tried in order; a refused
 * connection, a timeout or CURVE_ERR_NOT_LEADER moves to the next one (only the leader serves;
 * docs/mds-ha.md), for at most CLI_MDS_ROUNDS passes over the list.
 * Not thread-safe: one CLI thread uses it (the RPC loop runs on its own thread inside).
 */
#ifndef CURVE_TOOLS_CLI_MDS_H
#define CURVE_TOOLS_CLI_MDS_H

#include <protobuf-c/protobuf-c.h>
#include <stdint.h>

#include "tools/cli.h"

#define CLI_MDS_ADDRS_MAX      16  /* addresses in --mds-addrs */
#define CLI_MDS_ADDR_LEN       64  /* bytes of one "ip:port" */
#define CLI_MDS_ROUNDS         3   /* passes over the address list before giving up */
#define CLI_MDS_ROUND_PAUSE_MS 300 /* between passes (an election may be in progress) */

/* Service and method ids of proto/mds.proto. */
enum {
    CLI_SVC_TOPOLOGY = 31,
    CLI_SVC_NAMESPACE = 32,
    CLI_SVC_STATUS = 33,
};
enum {
    CLI_TOPO_APPLY = 1,
    CLI_TOPO_LIST = 2,
    CLI_TOPO_LIST_COPYSETS = 3,
    CLI_TOPO_GET_COPYSET = 4,
};
enum {
    CLI_NS_MKDIR = 1,
    CLI_NS_CREATE = 2,
    CLI_NS_STAT = 3,
    CLI_NS_LISTDIR = 4,
    CLI_NS_RENAME = 5,
    CLI_NS_EXTEND = 6,
    CLI_NS_DELETE = 7,
    CLI_NS_RECOVER = 8,
    CLI_NS_PURGE = 9,
};
enum { CLI_STATUS_CLUSTER = 1 };

struct cli_mds;

/* Resolves the MDS addresses (o->mds_addrs, else mds.addrs of o->conf) and starts the RPC
 * loop. Returns 0, or CLI_EXIT_USAGE / CLI_EXIT_FAIL with err filled (no address given,
 * malformed address, unreadable conf). */
int cli_mds_open(const struct cli_opts *o, struct cli_mds **out, char *err, size_t errlen);
void cli_mds_close(struct cli_mds *m);

/* One call. On 0, *resp (caller frees with protobuf_c_message_free_unpacked) is set when
 * resp_desc != NULL. On failure returns the status (negative) with err naming the call, the
 * address(es) and the server's reason. */
int cli_mds_call(struct cli_mds *m, uint32_t svc, uint32_t method, const ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp, char *err,
                 size_t errlen);
/* The address that answered the last successful call ("" before). */
const char *cli_mds_leader(const struct cli_mds *m);

/* Splits "a:1,b:2" into addrs (validated "ip:port", port 1..65535). Returns the count, or
 * -EINVAL with err naming the bad element. */
int cli_mds_parse_addrs(const char *s, char addrs[][CLI_MDS_ADDR_LEN], int max, char *err,
                        size_t errlen);

/* Converts a protobuf-c message to a JSON object (field names as in the .proto; enums by name;
 * repeated fields as arrays; unset optional fields omitted). Returns a new reference or NULL. */
json_t *cli_pb_json(const ProtobufCMessage *m);

#endif
