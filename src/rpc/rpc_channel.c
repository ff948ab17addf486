/* RPC client channel (see rpc_channel.h, docs/rpc.md). */
#include "rpc/rpc_channel.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/assert.h"
#include "common/failpoint.h"
#include "common/log.h"
#include "curve/errors.h"

typedef enum { CH_IDLE, CH_CONNECTING, CH_CONNECTED, CH_BACKOFF, CH_CLOSED } ch_state;

/* Initial number of hash buckets (power of two); the table doubles when full. */
#define CH_BUCKETS_INITIAL_BITS 6u

typedef struct ccall {
    curve_loop_msg msg; /* submit message when started off the loop */
    rpc_channel *ch;
    uint64_t id;
    uint32_t service_id, method_id, timeout_ms;
    uint64_t deadline_ms;
    rpc_out *out; /* until handed to the transport */
    const ProtobufCMessageDescriptor *resp_desc;
    rpc_call_cb cb;
    void *arg;
    size_t heap_idx;
    struct ccall *hnext;         /* hash chain */
    struct ccall *wprev, *wnext; /* wait queue (calls waiting for a connection) */
    /* Doomed list: calls being failed as a batch (connection lost, channel closed). A callback
     * may cancel or fail other calls of the batch (or close the channel), so the batch is a
     * list that call_complete() unlinks from, never a snapshot. */
    struct ccall *dprev, *dnext;
    int dstatus, dreason;
    const char *dwhat;
    bool doomed;
    bool waiting;
    bool in_hash;
    bool sent;
} ccall;

struct rpc_channel {
    curve_loop *loop;
    char addr[64];
    rpc_channel_opts o;
    atomic_int refs; /* owner + posted messages + open timers + the connection */
    atomic_bool closed_flag;
    atomic_uint inflight;
    atomic_uint_fast64_t next_id;

    /* Loop-only state below. */
    ch_state state;
    rpc_conn *conn;
    uint64_t conn_gen; /* connections made (rpc_channel_net_stats) */
    uint32_t backoff_ms;
    int connect_err; /* a connect that failed synchronously, reported by connect_timer */
    bool timers_init;
    curve_timer deadline_timer, backoff_timer, connect_timer;
    uint64_t armed_deadline; /* UINT64_MAX when the deadline timer is idle */
    ccall **buckets;
    unsigned bucket_bits;
    unsigned ncalls;
    ccall **heap; /* min-heap on deadline_ms */
    size_t heap_n, heap_cap;
    ccall *wq_head, *wq_tail;
    ccall *doom_head, *doom_tail; /* calls to fail (ch_doom / ch_complete_doomed) */
    curve_loop_msg close_msg;
    void (*closed_cb)(void *arg);
    void *closed_arg;
};

static void ch_unref(rpc_channel *ch);
static void ch_connect(rpc_channel *ch);
static void ch_connect_failed(rpc_channel *ch, int reason);

/* ---- hash of pending calls, keyed by correlation id ---- */

static unsigned ch_hash(const rpc_channel *ch, uint64_t id)
{
    return (unsigned)((id * 0x9E3779B97F4A7C15ULL) >> (64 - ch->bucket_bits));
}

static int ch_hash_grow(rpc_channel *ch)
{
    unsigned nbits = ch->bucket_bits + 1;
    ccall **nb = calloc((size_t)1 << nbits, sizeof(*nb));
    if (!nb)
        return -ENOMEM;
    ccall **old = ch->buckets;
    unsigned oldn = 1u << ch->bucket_bits;
    ch->buckets = nb;
    ch->bucket_bits = nbits;
    for (unsigned i = 0; i < oldn; i++) {
        for (ccall *c = old[i], *next; c; c = next) {
            next = c->hnext;
            unsigned h = ch_hash(ch, c->id);
            c->hnext = nb[h];
            nb[h] = c;
        }
    }
    free(old);
    return 0;
}

static void ch_hash_insert(rpc_channel *ch, ccall *c)
{
    if (ch->ncalls >= (1u << ch->bucket_bits))
        (void)ch_hash_grow(ch); /* on ENOMEM chains just get longer */
    unsigned h = ch_hash(ch, c->id);
    c->hnext = ch->buckets[h];
    ch->buckets[h] = c;
    ch->ncalls++;
    c->in_hash = true;
}

static ccall *ch_hash_find(rpc_channel *ch, uint64_t id)
{
    for (ccall *c = ch->buckets[ch_hash(ch, id)]; c; c = c->hnext)
        if (c->id == id)
            return c;
    return NULL;
}

static void ch_hash_remove(rpc_channel *ch, ccall *c)
{
    ccall **pp = &ch->buckets[ch_hash(ch, c->id)];
    while (*pp != c) {
        CURVE_ASSERT(*pp != NULL);
        pp = &(*pp)->hnext;
    }
    *pp = c->hnext;
    c->hnext = NULL;
    ch->ncalls--;
    c->in_hash = false;
}

/* ---- deadline min-heap ---- */

static void heap_set(rpc_channel *ch, size_t i, ccall *c)
{
    ch->heap[i] = c;
    c->heap_idx = i;
}

static void heap_up(rpc_channel *ch, size_t i)
{
    ccall *c = ch->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (ch->heap[p]->deadline_ms <= c->deadline_ms)
            break;
        heap_set(ch, i, ch->heap[p]);
        i = p;
    }
    heap_set(ch, i, c);
}

static void heap_down(rpc_channel *ch, size_t i)
{
    ccall *c = ch->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        uint64_t best = c->deadline_ms;
        if (l < ch->heap_n && ch->heap[l]->deadline_ms < best) {
            m = l;
            best = ch->heap[l]->deadline_ms;
        }
        if (l + 1 < ch->heap_n && ch->heap[l + 1]->deadline_ms < best)
            m = l + 1;
        if (m == i)
            break;
        heap_set(ch, i, ch->heap[m]);
        i = m;
    }
    heap_set(ch, i, c);
}

static int heap_push(rpc_channel *ch, ccall *c)
{
    if (ch->heap_n == ch->heap_cap) {
        size_t ncap = ch->heap_cap ? ch->heap_cap * 2 : 64;
        ccall **nh = realloc(ch->heap, ncap * sizeof(*nh));
        if (!nh)
            return -ENOMEM;
        ch->heap = nh;
        ch->heap_cap = ncap;
    }
    ch->heap[ch->heap_n] = c;
    c->heap_idx = ch->heap_n++;
    heap_up(ch, c->heap_idx);
    return 0;
}

static void heap_remove(rpc_channel *ch, ccall *c)
{
    size_t i = c->heap_idx;
    CURVE_ASSERT(i < ch->heap_n && ch->heap[i] == c);
    ch->heap_n--;
    if (i != ch->heap_n) {
        heap_set(ch, i, ch->heap[ch->heap_n]);
        heap_down(ch, i);
        heap_up(ch, ch->heap[i]->heap_idx);
    }
    c->heap_idx = SIZE_MAX;
}

/* ---- wait queue ---- */

static void wq_append(rpc_channel *ch, ccall *c)
{
    c->wnext = NULL;
    c->wprev = ch->wq_tail;
    if (ch->wq_tail)
        ch->wq_tail->wnext = c;
    else
        ch->wq_head = c;
    ch->wq_tail = c;
    c->waiting = true;
}

static void wq_remove(rpc_channel *ch, ccall *c)
{
    if (c->wprev)
        c->wprev->wnext = c->wnext;
    else
        ch->wq_head = c->wnext;
    if (c->wnext)
        c->wnext->wprev = c->wprev;
    else
        ch->wq_tail = c->wprev;
    c->wprev = c->wnext = NULL;
    c->waiting = false;
}

/* ---- doomed list ---- */

/* Marks `c` to be failed by the next ch_complete_doomed() (no-op if already marked). */
static void ch_doom(rpc_channel *ch, ccall *c, int status, const char *what, int reason)
{
    if (c->doomed)
        return;
    c->doomed = true;
    c->dstatus = status;
    c->dwhat = what;
    c->dreason = reason;
    c->dnext = NULL;
    c->dprev = ch->doom_tail;
    if (ch->doom_tail)
        ch->doom_tail->dnext = c;
    else
        ch->doom_head = c;
    ch->doom_tail = c;
}

static void doom_remove(rpc_channel *ch, ccall *c)
{
    if (c->dprev)
        c->dprev->dnext = c->dnext;
    else
        ch->doom_head = c->dnext;
    if (c->dnext)
        c->dnext->dprev = c->dprev;
    else
        ch->doom_tail = c->dprev;
    c->dprev = c->dnext = NULL;
    c->doomed = false;
}

/* ---- completion ---- */

static void call_free(ccall *c)
{
    rpc_out_free(c->out);
    free(c);
}

/* Copies a server error text, keeping printable ASCII only. */
static void copy_errtext(char *dst, size_t cap, const rpc_frame *f)
{
    char tmp[RPC_CHANNEL_ERRMSG_MAX];
    size_t n = curve_iobuf_copyout(&f->body, 0, tmp, sizeof(tmp) - 1);
    for (size_t i = 0; i < n; i++)
        if (tmp[i] < 0x20 || tmp[i] > 0x7e)
            tmp[i] = '?';
    tmp[n] = 0;
    snprintf(dst, cap, "%s", tmp);
}

/* Completes a call exactly once: unlinks it, runs the callback, frees it. Takes `f`. */
static void call_complete(ccall *c, int status, rpc_frame *f, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void call_complete(ccall *c, int status, rpc_frame *f, const char *fmt, ...)
{
    rpc_channel *ch = c->ch;
    if (c->in_hash)
        ch_hash_remove(ch, c);
    if (c->heap_idx != SIZE_MAX)
        heap_remove(ch, c);
    if (c->waiting)
        wq_remove(ch, c);
    if (c->doomed)
        doom_remove(ch, c);

    rpc_result r;
    r.status = status;
    r.resp = NULL;
    r.call_id = c->id;
    r.errmsg[0] = 0;
    curve_iobuf_init(&r.attach);
    if (f && status == 0) {
        if (c->resp_desc) {
            uint8_t *tmp;
            const uint8_t *body = rpc_frame_body(f, &tmp);
            r.resp = body ? protobuf_c_message_unpack(c->resp_desc, NULL, f->body.len, body) : NULL;
            free(tmp);
            if (!r.resp) {
                r.status = CURVE_ERR_RPC_PROTO;
                snprintf(r.errmsg, sizeof(r.errmsg),
                         "response to call %llu (svc %u method %u) from %s: body is not a "
                         "valid %s",
                         (unsigned long long)c->id, c->service_id, c->method_id, ch->addr,
                         c->resp_desc->name);
            }
        }
        if (r.status == 0)
            (void)curve_iobuf_move(&r.attach, &f->attach);
    } else if (f) {
        copy_errtext(r.errmsg, sizeof(r.errmsg), f);
    } else if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r.errmsg, sizeof(r.errmsg), fmt, ap);
        va_end(ap);
    }
    rpc_frame_free(f);
    unsigned old = atomic_fetch_sub_explicit(&ch->inflight, 1, memory_order_relaxed);
    CURVE_ASSERT(old > 0);

    c->cb(&r, c->arg);

    if (r.resp)
        protobuf_c_message_free_unpacked(r.resp, NULL);
    curve_iobuf_reset(&r.attach);
    call_free(c);
}

/* ---- timers ---- */

static void ch_arm_deadline(rpc_channel *ch)
{
    if (ch->heap_n == 0) {
        curve_timer_stop(&ch->deadline_timer);
        ch->armed_deadline = UINT64_MAX;
        return;
    }
    uint64_t d = ch->heap[0]->deadline_ms;
    if (d == ch->armed_deadline)
        return;
    uint64_t now = curve_loop_now_ms(ch->loop);
    curve_timer_start(&ch->deadline_timer, d > now ? d - now : 0, 0);
    ch->armed_deadline = d;
}

static void ch_deadline_cb(curve_timer *t, void *arg)
{
    rpc_channel *ch = arg;
    ch->armed_deadline = UINT64_MAX;
    uint64_t now = curve_loop_now_ms(ch->loop);
    while (ch->heap_n > 0 && ch->heap[0]->deadline_ms <= now) {
        ccall *c = ch->heap[0];
        call_complete(c, CURVE_ERR_TIMEOUT, NULL,
                      "call %llu (svc %u method %u) to %s timed out after %u ms%s",
                      (unsigned long long)c->id, c->service_id, c->method_id, ch->addr,
                      c->timeout_ms, c->sent ? "" : " (never sent: no connection)");
    }
    ch_arm_deadline(ch);
}

static void ch_backoff_cb(curve_timer *t, void *arg)
{
    rpc_channel *ch = arg;
    if (ch->state != CH_BACKOFF)
        return;
    ch->state = CH_IDLE;
    if (ch->wq_head)
        ch_connect(ch);
}

static void ch_connect_timeout_cb(curve_timer *t, void *arg)
{
    rpc_channel *ch = arg;
    if (ch->state != CH_CONNECTING)
        return;
    if (ch->conn)
        rpc_conn_close(ch->conn, -ETIMEDOUT);
    else /* the transport refused to start the attempt (ch_connect) */
        ch_connect_failed(ch, ch->connect_err);
}

static void ch_timer_closed(curve_timer *t)
{
    ch_unref(t->arg);
}

static void ch_init_timers(rpc_channel *ch)
{
    if (ch->timers_init)
        return;
    int rc = curve_timer_init(ch->loop, &ch->deadline_timer, ch_deadline_cb, ch);
    CURVE_ASSERT(rc == 0);
    rc = curve_timer_init(ch->loop, &ch->backoff_timer, ch_backoff_cb, ch);
    CURVE_ASSERT(rc == 0);
    rc = curve_timer_init(ch->loop, &ch->connect_timer, ch_connect_timeout_cb, ch);
    CURVE_ASSERT(rc == 0);
    atomic_fetch_add(&ch->refs, 3);
    ch->timers_init = true;
    ch->armed_deadline = UINT64_MAX;
}

/* ---- connection ---- */

static void ch_send(rpc_channel *ch, ccall *c)
{
    rpc_out *o = c->out;
    c->out = NULL;
    c->sent = true;
    /* Failpoint "rpc.channel.send=return" loses the request (the call times out). */
    if (CURVE_FAILPOINT("rpc.channel.send") < 0) {
        CLOG_DEBUG("rpc channel: failpoint rpc.channel.send dropped call %llu to %s",
                   (unsigned long long)c->id, ch->addr);
        rpc_out_free(o);
        return;
    }
    /* A failed send means the connection is closing: on_close fails the call. */
    (void)rpc_conn_send(ch->conn, o);
}

static void ch_on_connect(rpc_conn *conn, void *ud)
{
    rpc_channel *ch = ud;
    CURVE_ASSERT(ch->state == CH_CONNECTING && ch->conn == conn);
    curve_timer_stop(&ch->connect_timer);
    ch->state = CH_CONNECTED;
    ch->backoff_ms = 0;
    CLOG_DEBUG("rpc channel: connected to %s", ch->addr);
    while (ch->wq_head) {
        ccall *c = ch->wq_head;
        wq_remove(ch, c);
        ch_send(ch, c);
        if (ch->state != CH_CONNECTED)
            break;
    }
}

static void ch_on_frame(rpc_conn *conn, rpc_frame *f, void *ud)
{
    rpc_channel *ch = ud;
    if (f->hdr.type != RPC_FRAME_RESPONSE) {
        CLOG_WARN("rpc channel: %s sent a frame of type %u, closing the connection", ch->addr,
                  f->hdr.type);
        rpc_frame_free(f);
        rpc_conn_close(conn, CURVE_ERR_RPC_PROTO);
        return;
    }
    ccall *c = ch_hash_find(ch, f->hdr.corr_id);
    if (!c || !c->sent) { /* timed out or canceled already */
        rpc_frame_free(f);
        return;
    }
    uint32_t svc = f->hdr.service_id, method = f->hdr.method_id;
    int32_t status = f->hdr.status;
    if (svc != c->service_id || method != c->method_id || status > 0) {
        rpc_frame_free(f);
        call_complete(c, CURVE_ERR_RPC_PROTO, NULL,
                      "response to call %llu from %s is invalid: svc %u method %u (expected "
                      "%u/%u), status %d",
                      (unsigned long long)c->id, ch->addr, svc, method, c->service_id, c->method_id,
                      status);
        ch_arm_deadline(ch);
        return;
    }
    call_complete(c, status, f, NULL);
    ch_arm_deadline(ch);
}

/* Completes every doomed call. Callbacks may cancel doomed calls, start new ones or close the
 * channel (which dooms and completes the rest from inside): each call still completes once. */
static void ch_complete_doomed(rpc_channel *ch)
{
    while (ch->doom_head) {
        ccall *c = ch->doom_head;
        call_complete(c, c->dstatus, NULL, "call %llu (svc %u method %u) to %s: %s: %s",
                      (unsigned long long)c->id, c->service_id, c->method_id, ch->addr, c->dwhat,
                      curve_strerror(c->dreason));
    }
}

/* Fails every pending call (or only those already sent). */
static void ch_fail_calls(rpc_channel *ch, bool sent_only, int status, const char *what, int reason)
{
    /* Mark first: completing unlinks from the table we walk. */
    unsigned nb = 1u << ch->bucket_bits;
    for (unsigned i = 0; i < nb; i++)
        for (ccall *c = ch->buckets[i]; c; c = c->hnext)
            if (!sent_only || c->sent)
                ch_doom(ch, c, status, what, reason);
    ch_complete_doomed(ch);
}

static void ch_on_close(rpc_conn *conn, int reason, void *ud)
{
    rpc_channel *ch = ud;
    CURVE_ASSERT(ch->conn == conn);
    ch->conn = NULL;
    curve_timer_stop(&ch->connect_timer);
    ch_state was = ch->state;
    if (was == CH_CONNECTING) {
        ch_connect_failed(ch, reason);
    } else if (was == CH_CONNECTED) {
        ch->state = CH_IDLE;
        CLOG_INFO("rpc channel: connection to %s lost: %s", ch->addr, curve_strerror(reason));
        ch_fail_calls(ch, true, CURVE_ERR_RPC_CONN, "connection lost", reason);
        if (ch->wq_head && ch->state == CH_IDLE)
            ch_connect(ch);
    }
    ch_arm_deadline(ch);
    ch_unref(ch); /* the connection's reference */
}

/* The current connect attempt failed (state CONNECTING, no connection left): back off, and fail
 * the calls waiting for this attempt (they would otherwise just time out). */
static void ch_connect_failed(rpc_channel *ch, int reason)
{
    CURVE_ASSERT(ch->state == CH_CONNECTING && ch->conn == NULL);
    ch->state = CH_BACKOFF;
    uint32_t delay = ch->backoff_ms ? ch->backoff_ms : ch->o.backoff_initial_ms;
    ch->backoff_ms = delay * 2 < ch->o.backoff_max_ms ? delay * 2 : ch->o.backoff_max_ms;
    CLOG_INFO("rpc channel: connect to %s failed: %s; next attempt in %u ms", ch->addr,
              curve_strerror(reason), delay);
    curve_timer_start(&ch->backoff_timer, delay, 0);
    /* Mark them first: callbacks may start new calls, which wait for the next attempt. */
    for (ccall *c = ch->wq_head; c; c = c->wnext)
        ch_doom(ch, c, CURVE_ERR_RPC_CONN, "connect to the server failed", reason);
    ch_complete_doomed(ch);
}

static const rpc_conn_handler ch_handler = {
    .on_connect = ch_on_connect,
    .on_frame = ch_on_frame,
    .on_close = ch_on_close,
};

static void ch_connect(rpc_channel *ch)
{
    CURVE_ASSERT(ch->state == CH_IDLE && ch->conn == NULL);
    rpc_conn *conn;
    int rc = ch->o.transport->connect(ch->loop, ch->addr, &ch_handler, ch, &ch->o.limits, &conn);
    if (rc < 0) {
        /* Cannot even start (e.g. no descriptor left). Report it like a failed attempt, from
         * the connect timer: failing the waiting calls here would run a callback inside the
         * rpc_channel_call() that triggered the attempt, before it returned 0. */
        ch->state = CH_CONNECTING;
        ch->connect_err = rc;
        curve_timer_start(&ch->connect_timer, 0, 0);
        return;
    }
    atomic_fetch_add(&ch->refs, 1);
    ch->conn = conn;
    ch->conn_gen++;
    ch->state = CH_CONNECTING;
    curve_timer_start(&ch->connect_timer, ch->o.connect_timeout_ms, 0);
}

/* ---- calls ---- */

/* Starts a call on the loop. Returns 0 or -ENOMEM (the call was not linked anywhere). */
static int ch_submit(rpc_channel *ch, ccall *c)
{
    if (ch->state == CH_CLOSED) { /* posted before the close, run after it */
        call_complete(c, CURVE_ERR_SHUTDOWN, NULL, "channel to %s is closed", ch->addr);
        return 0;
    }
    ch_init_timers(ch);
    c->deadline_ms = curve_loop_now_ms(ch->loop) + c->timeout_ms;
    if (heap_push(ch, c) < 0)
        return -ENOMEM;
    ch_hash_insert(ch, c);
    if (ch->state == CH_CONNECTED) {
        ch_send(ch, c);
    } else {
        wq_append(ch, c);
        if (ch->state == CH_IDLE)
            ch_connect(ch);
    }
    ch_arm_deadline(ch);
    return 0;
}

static void ch_submit_msg(void *arg)
{
    ccall *c = arg;
    rpc_channel *ch = c->ch;
    if (ch_submit(ch, c) < 0)
        call_complete(c, -ENOMEM, NULL, "call %llu to %s: out of memory", (unsigned long long)c->id,
                      ch->addr);
    ch_unref(ch);
}

int rpc_channel_call(rpc_channel *ch, uint32_t service_id, uint32_t method_id,
                     const ProtobufCMessage *req, curve_iobuf *attach,
                     const ProtobufCMessageDescriptor *resp_desc, uint32_t timeout_ms,
                     rpc_call_cb cb, void *arg, uint64_t *call_id)
{
    CURVE_ASSERT(cb != NULL);
    int rc;
    if (atomic_load(&ch->closed_flag)) {
        rc = CURVE_ERR_SHUTDOWN;
        goto err_out;
    }
    unsigned old = atomic_fetch_add_explicit(&ch->inflight, 1, memory_order_relaxed);
    if (old >= ch->o.max_inflight) {
        rc = CURVE_ERR_BUSY;
        goto err_after_inflight;
    }
    ccall *c = calloc(1, sizeof(*c));
    if (!c) {
        rc = -ENOMEM;
        goto err_after_inflight;
    }
    c->ch = ch;
    c->id = atomic_fetch_add_explicit(&ch->next_id, 1, memory_order_relaxed);
    c->service_id = service_id;
    c->method_id = method_id;
    c->timeout_ms = timeout_ms ? timeout_ms : ch->o.timeout_ms;
    c->resp_desc = resp_desc;
    c->cb = cb;
    c->arg = arg;
    c->heap_idx = SIZE_MAX;
    rpc_frame_hdr h = {
        .type = RPC_FRAME_REQUEST,
        .corr_id = c->id,
        .service_id = service_id,
        .method_id = method_id,
        .timeout_ms = c->timeout_ms,
    };
    rc = rpc_out_new(&h, req, NULL, 0, attach, &ch->o.limits, &c->out);
    if (rc < 0)
        goto err_after_call;
    if (call_id)
        *call_id = c->id;
    if (curve_loop_is_current(ch->loop)) {
        rc = ch_submit(ch, c);
        if (rc < 0)
            goto err_after_call;
        return 0;
    }
    atomic_fetch_add(&ch->refs, 1);
    c->msg.fn = ch_submit_msg;
    c->msg.arg = c;
    rc = curve_loop_post_msg(ch->loop, &c->msg);
    if (rc < 0) {
        atomic_fetch_sub(&ch->refs, 1);
        goto err_after_call;
    }
    return 0;

err_after_call:
    call_free(c);
err_after_inflight:
    atomic_fetch_sub_explicit(&ch->inflight, 1, memory_order_relaxed);
err_out:
    if (attach)
        curve_iobuf_reset(attach);
    return rc;
}

typedef struct cancel_msg {
    rpc_channel *ch;
    uint64_t id;
} cancel_msg;

static int ch_cancel_here(rpc_channel *ch, uint64_t id)
{
    if (!ch->buckets)
        return -ENOENT;
    ccall *c = ch_hash_find(ch, id);
    if (!c)
        return -ENOENT;
    call_complete(c, CURVE_ERR_CANCELED, NULL, "call %llu (svc %u method %u) to %s canceled",
                  (unsigned long long)c->id, c->service_id, c->method_id, ch->addr);
    ch_arm_deadline(ch);
    return 0;
}

static void ch_cancel_msg(void *arg)
{
    cancel_msg *m = arg;
    (void)ch_cancel_here(m->ch, m->id);
    ch_unref(m->ch);
    free(m);
}

int rpc_channel_cancel(rpc_channel *ch, uint64_t call_id)
{
    if (curve_loop_is_current(ch->loop))
        return ch_cancel_here(ch, call_id);
    cancel_msg *m = malloc(sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->ch = ch;
    m->id = call_id;
    atomic_fetch_add(&ch->refs, 1);
    int rc = curve_loop_post(ch->loop, ch_cancel_msg, m);
    if (rc < 0) {
        atomic_fetch_sub(&ch->refs, 1);
        free(m);
    }
    return rc;
}

/* ---- lifetime ---- */

int rpc_channel_new(curve_loop *loop, const char *addr, const rpc_channel_opts *opts,
                    rpc_channel **out)
{
    struct sockaddr_in sa;
    if (!addr || strlen(addr) >= sizeof(((rpc_channel *)0)->addr) || rpc_parse_addr(addr, &sa) < 0)
        return -EINVAL;
    rpc_channel *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return -ENOMEM;
    ch->loop = loop;
    snprintf(ch->addr, sizeof(ch->addr), "%s", addr);
    if (opts)
        ch->o = *opts;
    if (!ch->o.timeout_ms)
        ch->o.timeout_ms = RPC_CHANNEL_TIMEOUT_DEFAULT_MS;
    if (!ch->o.connect_timeout_ms)
        ch->o.connect_timeout_ms = RPC_CHANNEL_CONNECT_TIMEOUT_DEFAULT_MS;
    if (!ch->o.backoff_initial_ms)
        ch->o.backoff_initial_ms = RPC_CHANNEL_BACKOFF_INITIAL_DEFAULT_MS;
    if (!ch->o.backoff_max_ms)
        ch->o.backoff_max_ms = RPC_CHANNEL_BACKOFF_MAX_DEFAULT_MS;
    if (ch->o.backoff_max_ms < ch->o.backoff_initial_ms)
        ch->o.backoff_max_ms = ch->o.backoff_initial_ms;
    if (!ch->o.max_inflight)
        ch->o.max_inflight = RPC_CHANNEL_INFLIGHT_DEFAULT;
    if (!ch->o.limits.body_max)
        ch->o.limits.body_max = RPC_FRAME_BODY_MAX_DEFAULT;
    if (!ch->o.limits.attach_max)
        ch->o.limits.attach_max = RPC_FRAME_ATTACH_MAX_DEFAULT;
    if (!ch->o.transport)
        ch->o.transport = rpc_transport_tcp();
    atomic_init(&ch->refs, 1);
    atomic_init(&ch->closed_flag, false);
    atomic_init(&ch->inflight, 0);
    atomic_init(&ch->next_id, 1);
    ch->state = CH_IDLE;
    ch->bucket_bits = CH_BUCKETS_INITIAL_BITS;
    ch->buckets = calloc((size_t)1 << ch->bucket_bits, sizeof(*ch->buckets));
    if (!ch->buckets) {
        free(ch);
        return -ENOMEM;
    }
    *out = ch;
    return 0;
}

static void ch_unref(rpc_channel *ch)
{
    int old = atomic_fetch_sub_explicit(&ch->refs, 1, memory_order_acq_rel);
    CURVE_ASSERT(old > 0);
    if (old != 1)
        return;
    CURVE_ASSERT(ch->ncalls == 0 && ch->heap_n == 0 && ch->conn == NULL);
    void (*cb)(void *) = ch->closed_cb;
    void *arg = ch->closed_arg;
    free(ch->buckets);
    free(ch->heap);
    free(ch);
    if (cb)
        cb(arg);
}

static void ch_close_run(void *arg)
{
    rpc_channel *ch = arg;
    CURVE_ASSERT(ch->state != CH_CLOSED);
    ch->state = CH_CLOSED;
    ch_fail_calls(ch, false, CURVE_ERR_SHUTDOWN, "channel closed", CURVE_ERR_SHUTDOWN);
    if (ch->conn)
        rpc_conn_close(ch->conn, CURVE_ERR_SHUTDOWN);
    if (ch->timers_init) {
        curve_timer_close(&ch->deadline_timer, ch_timer_closed);
        curve_timer_close(&ch->backoff_timer, ch_timer_closed);
        curve_timer_close(&ch->connect_timer, ch_timer_closed);
    }
    ch_unref(ch); /* the owner's reference */
}

void rpc_channel_close(rpc_channel *ch, void (*closed_cb)(void *arg), void *arg)
{
    bool was = atomic_exchange(&ch->closed_flag, true);
    CURVE_ASSERT(!was);
    ch->closed_cb = closed_cb;
    ch->closed_arg = arg;
    if (curve_loop_is_current(ch->loop)) {
        ch_close_run(ch);
        return;
    }
    ch->close_msg.fn = ch_close_run;
    ch->close_msg.arg = ch;
    int rc = curve_loop_post_msg(ch->loop, &ch->close_msg);
    CURVE_ASSERT(rc == 0); /* the loop must run until the channel is closed */
}

static void close_sync_cb(void *arg)
{
    curve_completion_signal(arg, 0);
}

void rpc_channel_close_sync(rpc_channel *ch)
{
    CURVE_ASSERT(!curve_loop_is_current(ch->loop));
    curve_completion done;
    curve_completion_init(&done);
    rpc_channel_close(ch, close_sync_cb, &done);
    curve_completion_wait(&done, 0);
    curve_completion_destroy(&done);
}

unsigned rpc_channel_inflight(rpc_channel *ch)
{
    return atomic_load_explicit(&ch->inflight, memory_order_relaxed);
}

const char *rpc_channel_addr(const rpc_channel *ch)
{
    return ch->addr;
}

int rpc_channel_net_stats(rpc_channel *ch, rpc_net_stats *out)
{
    CURVE_ASSERT(curve_loop_is_current(ch->loop));
    if (ch->conn == NULL || ch->state != CH_CONNECTED)
        return -ENOTCONN;
    if (ch->conn->ops->net_stats == NULL)
        return -ENOTSUP;
    int rc = ch->conn->ops->net_stats(ch->conn, out);
    out->conn_gen = ch->conn_gen;
    return rc;
}

/* ---- blocking wrapper ---- */

typedef struct sync_call {
    curve_completion done;
    ProtobufCMessage *resp;
    curve_iobuf *resp_attach;
    char *errmsg;
    size_t errmsg_len;
} sync_call;

static void sync_call_cb(rpc_result *r, void *arg)
{
    sync_call *s = arg;
    if (r->status == 0) {
        s->resp = r->resp;
        r->resp = NULL;
        if (s->resp_attach)
            (void)curve_iobuf_move(s->resp_attach, &r->attach);
    }
    if (s->errmsg && s->errmsg_len)
        snprintf(s->errmsg, s->errmsg_len, "%s", r->errmsg);
    curve_completion_signal(&s->done, r->status);
}

int rpc_call_sync(rpc_channel *ch, uint32_t service_id, uint32_t method_id,
                  const ProtobufCMessage *req, curve_iobuf *attach,
                  const ProtobufCMessageDescriptor *resp_desc, uint32_t timeout_ms,
                  ProtobufCMessage **resp, curve_iobuf *resp_attach, char *errmsg,
                  size_t errmsg_len)
{
    CURVE_ASSERT(!curve_loop_is_current(ch->loop));
    sync_call s = {.resp_attach = resp_attach, .errmsg = errmsg, .errmsg_len = errmsg_len};
    curve_completion_init(&s.done);
    if (errmsg && errmsg_len)
        errmsg[0] = 0;
    int rc = rpc_channel_call(ch, service_id, method_id, req, attach, resp_desc, timeout_ms,
                              sync_call_cb, &s, NULL);
    if (rc == 0)
        rc = curve_completion_wait(&s.done, 0);
    else if (errmsg && errmsg_len)
        snprintf(errmsg, errmsg_len, "call to %s not started: %s", ch->addr, curve_strerror(rc));
    curve_completion_destroy(&s.done);
    if (resp)
        *resp = s.resp;
    else if (s.resp)
        protobuf_c_message_free_unpacked(s.resp, NULL);
    return rc;
}
