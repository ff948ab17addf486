/*
 * The echo service (proto/echo.proto, service id 1): echoes the message and the attachment
 * (moved, not copied, into the reply). Options in the request exercise delayed replies, replies
 * from a worker thread and error statuses. Used by curve-echo-server, tests and bench/rpc.
 */
#ifndef CURVE_RPC_ECHO_SERVICE_H
#define CURVE_RPC_ECHO_SERVICE_H

#include <stdatomic.h>

#include "echo.pb-c.h"
#include "loop/loop.h"
#include "rpc/rpc_server.h"

#define ECHO_SERVICE_ID  1u
#define ECHO_METHOD_ECHO 1u
/* Largest delay_ms accepted in a request. */
#define ECHO_DELAY_MAX_MS 600000u

typedef struct echo_service {
    rpc_service_def def;
    rpc_method_def methods[1];
    curve_workpool *wp;  /* for reply_from_worker; may be NULL (such requests then fail) */
    atomic_uint pending; /* delayed or worker replies not sent yet (tests wait for 0) */
} echo_service;

/* Fills `svc` (caller-owned; must outlive the server) for rpc_server_add_service(&svc->def). */
void echo_service_init(echo_service *svc, curve_workpool *wp);

#endif
