/* The echo service (see echo_service.h). */
#include "rpc/echo_service.h"

#include <errno.h>
#include <stdlib.h>

#include "common/assert.h"
#include "common/log.h"
#include "curve/errors.h"

/* Builds and sends the echo reply; moves the request attachment into it. */
static void echo_reply(rpc_call_ctx *ctx, const Curve__Echo__EchoRequest *req, curve_iobuf *attach)
{
    Curve__Echo__EchoResponse resp = CURVE__ECHO__ECHO_RESPONSE__INIT;
    resp.message = req->message;
    resp.attach_len = attach->len;
    (void)rpc_call_reply(ctx, 0, &resp.base, attach);
}

typedef struct delayed {
    curve_timer timer;
    echo_service *svc;
    rpc_call_ctx *ctx;
    const Curve__Echo__EchoRequest *req;
    curve_iobuf *attach;
} delayed;

static void delayed_closed(curve_timer *t)
{
    free(CURVE_CONTAINER_OF(t, delayed, timer));
}

static void delayed_fire(curve_timer *t, void *arg)
{
    delayed *d = arg;
    echo_service *svc = d->svc;
    echo_reply(d->ctx, d->req, d->attach);
    curve_timer_close(&d->timer, delayed_closed);
    atomic_fetch_sub(&svc->pending, 1);
}

typedef struct worker_job {
    echo_service *svc;
    rpc_call_ctx *ctx;
    const Curve__Echo__EchoRequest *req;
    curve_iobuf *attach;
} worker_job;

static int worker_reply(void *arg)
{
    worker_job *j = arg;
    echo_reply(j->ctx, j->req, j->attach); /* from a worker thread: posted to the loop */
    atomic_fetch_sub(&j->svc->pending, 1);
    return 0;
}

static void worker_done(void *arg, int result)
{
    worker_job *j = arg;
    if (result == -ECANCELED) { /* the pool was freed before the job ran */
        rpc_call_reply_error(j->ctx, CURVE_ERR_SHUTDOWN, "echo: worker pool stopped");
        atomic_fetch_sub(&j->svc->pending, 1);
    }
    free(j);
}

static void echo_handler(rpc_call_ctx *ctx, const ProtobufCMessage *msg, curve_iobuf *attach,
                         void *svc_arg)
{
    echo_service *svc = svc_arg;
    const Curve__Echo__EchoRequest *req = (const Curve__Echo__EchoRequest *)msg;
    if (req->has_fail_status && req->fail_status != 0) {
        if (req->fail_status > 0 || req->fail_status < -(CURVE_ERR_BASE + 1000)) {
            rpc_call_reply_error(ctx, CURVE_ERR_RPC_BADREQ, "fail_status %d out of range",
                                 req->fail_status);
            return;
        }
        rpc_call_reply_error(ctx, req->fail_status, "echo failed on request: %s",
                             curve_strerror(req->fail_status));
        return;
    }
    if (req->has_delay_ms && req->delay_ms > ECHO_DELAY_MAX_MS) {
        rpc_call_reply_error(ctx, CURVE_ERR_RPC_BADREQ, "delay_ms %u over the limit %u",
                             req->delay_ms, ECHO_DELAY_MAX_MS);
        return;
    }
    if (req->has_delay_ms && req->delay_ms > 0) {
        delayed *d = malloc(sizeof(*d));
        if (!d || curve_timer_init(rpc_call_loop(ctx), &d->timer, delayed_fire, d) < 0) {
            free(d);
            rpc_call_reply_error(ctx, -ENOMEM, "echo: cannot start a timer");
            return;
        }
        d->svc = svc;
        d->ctx = ctx;
        d->req = req;
        d->attach = attach;
        atomic_fetch_add(&svc->pending, 1);
        CLOG_DEBUG("echo: call %llu from %s: replying in %u ms",
                   (unsigned long long)rpc_call_id(ctx), rpc_call_peer(ctx), req->delay_ms);
        curve_timer_start(&d->timer, req->delay_ms, 0);
        return;
    }
    if (req->has_reply_from_worker && req->reply_from_worker) {
        worker_job *j = malloc(sizeof(*j));
        int rc = -ENOMEM;
        if (j) {
            j->svc = svc;
            j->ctx = ctx;
            j->req = req;
            j->attach = attach;
            atomic_fetch_add(&svc->pending, 1);
            rc = svc->wp ? curve_workpool_submit(svc->wp, rpc_call_loop(ctx), worker_reply,
                                                 worker_done, j)
                         : -ENOTSUP;
            if (rc < 0)
                atomic_fetch_sub(&svc->pending, 1);
        }
        if (rc < 0) {
            free(j);
            rpc_call_reply_error(ctx, rc == -EAGAIN ? CURVE_ERR_BUSY : rc,
                                 "echo: cannot use a worker: %s", curve_strerror(rc));
        }
        return;
    }
    echo_reply(ctx, req, attach);
}

void echo_service_init(echo_service *svc, curve_workpool *wp)
{
    svc->wp = wp;
    atomic_init(&svc->pending, 0);
    svc->methods[0] = (rpc_method_def){
        .id = ECHO_METHOD_ECHO,
        .name = "Echo",
        .req_desc = &curve__echo__echo_request__descriptor,
        .resp_desc = &curve__echo__echo_response__descriptor,
        .handler = echo_handler,
    };
    svc->def = (rpc_service_def){
        .id = ECHO_SERVICE_ID,
        .name = "curve.echo.Echo",
        .methods = svc->methods,
        .nmethods = 1,
        .arg = svc,
    };
}
