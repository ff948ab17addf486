/* libcurve MDS client (mds_client.h): rotation over MDS addresses, sync and async calls,
 * session refresh timers. */
#include "client/mds_client.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/assert.h"
#include "common/clock.h"
#include "common/log.h"
#include "curve/errors.h"
#include "mds.pb-c.h"
#include "rpc/rpc_channel.h"

struct curve_mds_client {
    curve_loop *loop;
    curve_mds_rotor rotor;
    rpc_channel *ch[CURVE_MDS_ADDRS_MAX]; /* one per configured address, owned by `loop` */
    uint32_t n;
    uint64_t rpc_timeout_ms;
    uint64_t call_deadline_ms;
};

/* Statuses meaning "this MDS could not serve the call": try the next address. */
static bool mds_unavailable(int st)
{
    return st == CURVE_ERR_TIMEOUT || st == CURVE_ERR_RPC_CONN || st == CURVE_ERR_NOT_LEADER ||
           st == CURVE_ERR_SHUTDOWN || st == CURVE_ERR_RPC_OVERLOAD || st == CURVE_ERR_BUSY ||
           st == CURVE_ERR_ETCD || st == -ECONNREFUSED || st == CURVE_ERR_RPC_PROTO;
}

int curve_mds_client_new(const curve_client_conf *conf, curve_mds_client **out)
{
    CURVE_ASSERT(conf != NULL && out != NULL);
    *out = NULL;
    curve_mds_client *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    char err[160];
    int rc =
        curve_mds_rotor_init(&m->rotor, conf->mds_addrs, conf->retry.mds_failures_before_switch,
                             conf->retry.mds_retry_interval_ms, err, sizeof(err));
    if (rc != 0) {
        CLOG_ERROR("libcurve: mds.addrs '%s': %s", conf->mds_addrs, err);
        goto err_after_alloc;
    }
    m->n = m->rotor.n;
    m->rpc_timeout_ms = conf->mds_rpc_timeout_ms;
    m->call_deadline_ms = conf->mds_call_deadline_ms;
    rc = curve_loop_new("curve-mds", &m->loop);
    if (rc != 0)
        goto err_after_rotor;
    rc = curve_loop_start(m->loop);
    if (rc != 0)
        goto err_after_loop;
    rpc_channel_opts o = {.timeout_ms = (uint32_t)m->rpc_timeout_ms,
                          .connect_timeout_ms = (uint32_t)m->rpc_timeout_ms,
                          .backoff_max_ms = 500};
    for (uint32_t i = 0; i < m->n; i++) {
        rc = rpc_channel_new(m->loop, m->rotor.addrs[i], &o, &m->ch[i]);
        if (rc != 0) {
            CLOG_ERROR("libcurve: MDS channel to %s: %s", m->rotor.addrs[i], curve_strerror(rc));
            goto err_after_channels;
        }
    }
    *out = m;
    return 0;
err_after_channels:
    for (uint32_t i = 0; i < m->n; i++)
        if (m->ch[i])
            rpc_channel_close_sync(m->ch[i]);
err_after_loop:
    curve_loop_free(m->loop);
err_after_rotor:
    curve_mds_rotor_destroy(&m->rotor);
err_after_alloc:
    free(m);
    return rc;
}

void curve_mds_client_free(curve_mds_client *m)
{
    if (!m)
        return;
    CURVE_ASSERT(!curve_loop_is_current(m->loop));
    for (uint32_t i = 0; i < m->n; i++)
        rpc_channel_close_sync(m->ch[i]);
    curve_loop_free(m->loop);
    curve_mds_rotor_destroy(&m->rotor);
    free(m);
}

curve_loop *curve_mds_client_loop(curve_mds_client *m)
{
    return m->loop;
}

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int curve_mds_call(curve_mds_client *m, uint32_t svc, uint32_t method, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp, char *err,
                   size_t errlen)
{
    CURVE_ASSERT(m != NULL && req != NULL);
    CURVE_ASSERT(!curve_loop_is_current(m->loop));
    if (resp)
        *resp = NULL;
    uint64_t deadline = curve_now_mono_ms() + m->call_deadline_ms;
    char msg[RPC_CHANNEL_ERRMSG_MAX];
    int rc;
    bool saw_not_leader = false; /* some MDS is up but follows: report "no leader" */
    /* Bounded by the deadline; each attempt takes at most rpc_timeout_ms (+ connect). */
    for (;;) {
        char addr[CURVE_ADDR_MAX];
        uint32_t idx = curve_mds_rotor_current(&m->rotor, addr, sizeof(addr));
        msg[0] = '\0';
        ProtobufCMessage *r = NULL;
        rc = rpc_call_sync(m->ch[idx], svc, method, req, NULL, resp_desc,
                           (uint32_t)m->rpc_timeout_ms, resp ? &r : NULL, NULL, msg, sizeof(msg));
        if (!mds_unavailable(rc)) {
            curve_mds_rotor_on_success(&m->rotor, idx);
            if (resp)
                *resp = r;
            else if (r)
                protobuf_c_message_free_unpacked(r, NULL);
            break;
        }
        if (r)
            protobuf_c_message_free_unpacked(r, NULL);
        uint64_t pause = 0;
        saw_not_leader = saw_not_leader || rc == CURVE_ERR_NOT_LEADER;
        curve_mds_rotor_on_failure(&m->rotor, idx, rc == CURVE_ERR_NOT_LEADER, &pause);
        CLOG_DEBUG("libcurve: MDS %s (svc %u method %u): %s", addr, svc, method,
                   msg[0] ? msg : curve_strerror(rc));
        uint64_t now = curve_now_mono_ms();
        if (now + pause >= deadline) {
            if (saw_not_leader && rc != CURVE_ERR_NOT_LEADER &&
                (rc == CURVE_ERR_TIMEOUT || rc == CURVE_ERR_RPC_CONN || rc == -ECONNREFUSED)) {
                /* e.g. etcd down: the leader is gone, the others answer NOT_LEADER */
                char last[RPC_CHANNEL_ERRMSG_MAX];
                snprintf(last, sizeof(last), "%s", msg[0] ? msg : curve_strerror(rc));
                rc = CURVE_ERR_NOT_LEADER;
                snprintf(msg, sizeof(msg), "no MDS leader among %u addresses (last: %.150s)",
                         m->n, last);
            } else {
                /* say who was tried, not only the transport's error (e.g. every MDS down) */
                char last[RPC_CHANNEL_ERRMSG_MAX];
                snprintf(last, sizeof(last), "%s", msg[0] ? msg : curve_strerror(rc));
                snprintf(msg, sizeof(msg),
                         "no MDS answered within %llu ms (%u addresses, last %.64s: %.120s)",
                         (unsigned long long)m->call_deadline_ms, m->n, addr, last);
            }
            CLOG_WARN("libcurve: no MDS (%u configured, first %s) answered svc %u method %u "
                      "within %llu ms: %s",
                      m->n, m->rotor.addrs[0], svc, method, (unsigned long long)m->call_deadline_ms,
                      msg[0] ? msg : curve_strerror(rc));
            break;
        }
        if (pause > 0)
            sleep_ms(pause);
    }
    if (err && errlen)
        snprintf(err, errlen, "%s", rc == 0 ? "" : (msg[0] ? msg : curve_strerror(rc)));
    return rc;
}

/* ---- async ---- */

typedef struct async_call {
    curve_mds_client *m;
    uint32_t idx;
    curve_mds_async_cb cb;
    void *arg;
} async_call;

static void async_done(rpc_result *r, void *arg)
{
    async_call *a = arg;
    curve_mds_client *m = a->m;
    if (mds_unavailable(r->status)) {
        uint64_t pause;
        curve_mds_rotor_on_failure(&m->rotor, a->idx, r->status == CURVE_ERR_NOT_LEADER, &pause);
    } else {
        curve_mds_rotor_on_success(&m->rotor, a->idx);
    }
    a->cb(r->status, r->status == 0 ? r->resp : NULL, r->errmsg, a->arg);
    free(a);
}

int curve_mds_call_async(curve_mds_client *m, uint32_t svc, uint32_t method,
                         const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                         curve_mds_async_cb cb, void *arg)
{
    CURVE_ASSERT(m != NULL && req != NULL && cb != NULL);
    async_call *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    char addr[CURVE_ADDR_MAX];
    a->m = m;
    a->idx = curve_mds_rotor_current(&m->rotor, addr, sizeof(addr));
    a->cb = cb;
    a->arg = arg;
    int rc = rpc_channel_call(m->ch[a->idx], svc, method, req, NULL, resp_desc,
                              (uint32_t)m->rpc_timeout_ms, async_done, a, NULL);
    if (rc != 0)
        free(a);
    return rc;
}

/* ---- sessions ---- */

struct curve_mds_session {
    curve_mds_client *m;
    char path[CURVE_PATH_MAX + 1];
    char sid[64]; /* changes on re-open: loop only (and curve_mds_session_stop after it) */
    char token[CURVE_MDS_TOKEN_MAX + 1]; /* opener token, repeated by re-opens */
    uint64_t period_ms;
    uint64_t lease_ms;
    uint64_t expire_ms;              /* 0: never lost for lack of contact */
    atomic_uint_fast64_t last_ok_ms; /* mono time of the last successful refresh (or start) */
    atomic_bool lost; /* sticky: cannot be re-established (or opt-in expire_ms passed) */
    atomic_uint_fast64_t refreshes;
    atomic_bool fenced; /* sticky: a newer epoch or another file at `path` */
    uint64_t file_id, epoch;
    bool read_only; /* re-opens read-only; no epoch watch */
    /* loop-only state */
    curve_timer timer;
    bool inflight, stopping, timer_closed;
    bool out_of_contact; /* logged "no MDS contact for a lease": log the recovery once */
    curve_completion stopped;
};

static void session_maybe_stopped(curve_mds_session *s)
{
    if (s->stopping && s->timer_closed && !s->inflight)
        curve_completion_signal(&s->stopped, 0);
}

static void epoch_done(int status, const ProtobufCMessage *resp, const char *errmsg, void *arg)
{
    curve_mds_session *s = arg;
    s->inflight = false;
    const Curve__Mds__FileInfo *fi = (const void *)resp;
    if (status == 0 && (fi->id != s->file_id || fi->epoch > s->epoch)) {
        if (!atomic_exchange(&s->fenced, true))
            CLOG_ERROR("libcurve: '%s' fenced: now file %llu epoch %llu, opened as file %llu "
                       "epoch %llu (exclusive open elsewhere)",
                       s->path, (unsigned long long)fi->id, (unsigned long long)fi->epoch,
                       (unsigned long long)s->file_id, (unsigned long long)s->epoch);
    } else if (status == CURVE_ERR_NOT_FOUND) {
        if (!atomic_exchange(&s->fenced, true))
            CLOG_ERROR("libcurve: '%s' fenced: the volume is gone (deleted or renamed)", s->path);
    }
    session_maybe_stopped(s);
}

static void close_done(int status, const ProtobufCMessage *resp, const char *errmsg, void *arg)
{
    curve_mds_session *s = arg;
    s->inflight = false;
    session_maybe_stopped(s);
}

/* Records a successful exchange with the MDS about this session. */
static void session_contact(curve_mds_session *s)
{
    uint64_t now = curve_now_mono_ms();
    uint64_t last = atomic_exchange(&s->last_ok_ms, now);
    if (s->out_of_contact) {
        s->out_of_contact = false;
        CLOG_WARN("libcurve: session %s of '%s' confirmed by the MDS again after %llu ms without "
                  "(IO continued meanwhile)",
                  s->sid, s->path, (unsigned long long)(now - last));
    }
}

static void reopen_done(int status, const ProtobufCMessage *resp, const char *errmsg, void *arg)
{
    curve_mds_session *s = arg;
    s->inflight = false;
    const Curve__Mds__OpenResponse *r = (const void *)resp;
    if (status == 0 && r->file && r->file->id == s->file_id && r->file->epoch <= s->epoch &&
        r->lease_ms >= 4 && strlen(r->session_id) < sizeof(s->sid)) {
        CLOG_WARN("libcurve: session of '%s' re-established as %s (the old one %s expired)",
                  s->path, r->session_id, s->sid);
        snprintf(s->sid, sizeof(s->sid), "%s", r->session_id);
        session_contact(s);
    } else if (status == -EBUSY) {
        /* Our session expired and another opener became the volume's writer meanwhile: we
         * may not write any more (docs/sessions.md). Sticky, like a fence. */
        if (!atomic_exchange(&s->lost, true))
            CLOG_ERROR("libcurve: session of '%s' lost: it expired and cannot be re-established "
                       "(%s)",
                       s->path, errmsg && *errmsg ? errmsg : curve_strerror(status));
    } else if (status == 0 || status == CURVE_ERR_NOT_FOUND) {
        /* another volume at the path, or a newer epoch: an exclusive opener took over */
        if (!atomic_exchange(&s->fenced, true))
            CLOG_ERROR("libcurve: '%s' fenced: the expired session cannot be re-established "
                       "(%s)",
                       s->path, status == 0 ? "newer epoch or another volume" : "volume gone");
        if (status == 0) { /* end the session just opened */
            Curve__Mds__SessionRequest req = CURVE__MDS__SESSION_REQUEST__INIT;
            req.path = s->path;
            req.session_id = r->session_id;
            if (curve_mds_call_async(s->m, CURVE_MDS_SVC_NAMESPACE, CURVE_MDS_NS_CLOSE, &req.base,
                                     &curve__mds__empty__descriptor, close_done, s) == 0)
                s->inflight = true;
        }
    } else {
        CLOG_WARN("libcurve: re-opening the session of '%s' failed: %s", s->path,
                  errmsg && *errmsg ? errmsg : curve_strerror(status));
    }
    session_maybe_stopped(s);
}

/* The MDS forgot the session (it expired during an MDS failover, or the client was paused):
 * open a new one. Safe because exclusivity is carried by the epoch, which reopen_done checks
 * is still ours; a non-exclusive open does not change it. */
static void session_reopen(curve_mds_session *s)
{
    Curve__Mds__OpenRequest req = CURVE__MDS__OPEN_REQUEST__INIT;
    req.path = s->path;
    req.has_exclusive = 1;
    req.exclusive = false;
    req.has_read_only = 1;
    req.read_only = s->read_only;
    req.client_token = s->token;
    req.has_reopen = 1; /* keep the epoch: ours, if nobody else opened meanwhile */
    req.reopen = true;
    if (curve_mds_call_async(s->m, CURVE_MDS_SVC_NAMESPACE, CURVE_MDS_NS_OPEN, &req.base,
                             &curve__mds__open_response__descriptor, reopen_done, s) == 0)
        s->inflight = true;
}

static void refresh_done(int status, const ProtobufCMessage *resp, const char *errmsg, void *arg)
{
    curve_mds_session *s = arg;
    s->inflight = false;
    if (status == 0) {
        session_contact(s);
        atomic_fetch_add(&s->refreshes, 1);
        if (!s->read_only && !s->stopping) {
            Curve__Mds__PathRequest req = CURVE__MDS__PATH_REQUEST__INIT;
            req.path = s->path;
            if (curve_mds_call_async(s->m, CURVE_MDS_SVC_NAMESPACE, CURVE_MDS_NS_STAT, &req.base,
                                     &curve__mds__file_info__descriptor, epoch_done, s) == 0) {
                s->inflight = true;
                return;
            }
        }
    } else if (status == CURVE_ERR_SESSION_EXPIRED || status == CURVE_ERR_NOT_FOUND) {
        CLOG_WARN("libcurve: session %s of '%s' expired at the MDS: %s; re-opening", s->sid,
                  s->path, errmsg && *errmsg ? errmsg : curve_strerror(status));
        if (!s->stopping)
            session_reopen(s);
    } else {
        /* No MDS could vouch for the session (no leader, etcd down, network): IO goes on, as
         * safety against a newer writer comes from the epoch (docs/sessions.md). */
        uint64_t since = curve_now_mono_ms() - atomic_load(&s->last_ok_ms);
        if (!s->out_of_contact && since >= s->lease_ms) {
            s->out_of_contact = true;
            CLOG_WARN("libcurve: session %s of '%s' not refreshed for %llu ms (%s); IO "
                      "continues, retrying",
                      s->sid, s->path, (unsigned long long)since,
                      errmsg && *errmsg ? errmsg : curve_strerror(status));
        } else {
            CLOG_DEBUG("libcurve: refresh of session %s of '%s' failed: %s", s->sid, s->path,
                       errmsg && *errmsg ? errmsg : curve_strerror(status));
        }
    }
    session_maybe_stopped(s);
}

static void session_tick(curve_timer *t, void *arg)
{
    curve_mds_session *s = arg;
    (void)curve_mds_session_check(s); /* makes a timeout sticky even without IO */
    if (s->inflight || s->stopping || atomic_load(&s->lost) || atomic_load(&s->fenced))
        return;
    Curve__Mds__SessionRequest req = CURVE__MDS__SESSION_REQUEST__INIT;
    req.path = s->path;
    req.session_id = s->sid;
    int rc = curve_mds_call_async(s->m, CURVE_MDS_SVC_NAMESPACE, CURVE_MDS_NS_REFRESH, &req.base,
                                  &curve__mds__empty__descriptor, refresh_done, s);
    if (rc == 0)
        s->inflight = true;
    else
        CLOG_WARN("libcurve: refresh of session %s: %s", s->sid, curve_strerror(rc));
}

static void session_arm(void *arg)
{
    curve_mds_session *s = arg;
    int rc = curve_timer_init(s->m->loop, &s->timer, session_tick, s);
    CURVE_ASSERT(rc == 0); /* uv_timer_init cannot fail on a live loop */
    curve_timer_start(&s->timer, s->period_ms, s->period_ms);
}

int curve_mds_session_start(curve_mds_client *m, const char *path, const char *session_id,
                            uint32_t lease_ms, uint64_t expire_ms, uint64_t file_id, uint64_t epoch,
                            bool read_only, const char *token, curve_mds_session **out)
{
    CURVE_ASSERT(m != NULL && path != NULL && session_id != NULL && out != NULL);
    if (lease_ms < 4 || strlen(path) > CURVE_PATH_MAX || strlen(session_id) >= 64 ||
        (token && strlen(token) > CURVE_MDS_TOKEN_MAX))
        return -EINVAL;
    curve_mds_session *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->m = m;
    snprintf(s->path, sizeof(s->path), "%s", path);
    snprintf(s->sid, sizeof(s->sid), "%s", session_id);
    snprintf(s->token, sizeof(s->token), "%s", token ? token : "");
    s->period_ms = lease_ms / 4; /* DESIGN §7: refreshed 4x per lease */
    s->lease_ms = lease_ms;
    s->expire_ms = expire_ms;
    atomic_init(&s->last_ok_ms, curve_now_mono_ms());
    atomic_init(&s->lost, false);
    atomic_init(&s->refreshes, 0);
    atomic_init(&s->fenced, false);
    s->file_id = file_id;
    s->epoch = epoch;
    s->read_only = read_only;
    curve_completion_init(&s->stopped);
    int rc = curve_loop_call_sync(m->loop, session_arm, s);
    if (rc != 0) {
        curve_completion_destroy(&s->stopped);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int curve_mds_session_check(curve_mds_session *s)
{
    if (atomic_load(&s->fenced))
        return CURVE_ERR_FENCED;
    if (atomic_load(&s->lost))
        return CURVE_ERR_SESSION_EXPIRED;
    if (s->expire_ms == 0)
        return 0;
    uint64_t last = atomic_load(&s->last_ok_ms);
    uint64_t now = curve_now_mono_ms();
    if (now > last && now - last > s->expire_ms) {
        if (!atomic_exchange(&s->lost, true))
            CLOG_ERROR("libcurve: session of '%s' lost: no successful refresh for %llu ms", s->path,
                       (unsigned long long)(now - last));
        return CURVE_ERR_SESSION_EXPIRED;
    }
    return 0;
}

uint64_t curve_mds_session_refreshes(curve_mds_session *s)
{
    return atomic_load(&s->refreshes);
}

static void session_timer_closed(curve_timer *t)
{
    curve_mds_session *s = CURVE_CONTAINER_OF(t, curve_mds_session, timer);
    s->timer_closed = true;
    session_maybe_stopped(s);
}

static void session_disarm(void *arg)
{
    curve_mds_session *s = arg;
    s->stopping = true;
    curve_timer_stop(&s->timer);
    curve_timer_close(&s->timer, session_timer_closed);
}

int curve_mds_session_stop(curve_mds_session *s, bool skip_close)
{
    if (!s)
        return 0;
    curve_mds_client *m = s->m;
    int rc = curve_loop_call_sync(m->loop, session_disarm, s);
    CURVE_ASSERT(rc == 0);
    curve_completion_wait(&s->stopped, 0); /* bounded by the MDS rpc timeout of a refresh */
    rc = 0;
    if (!skip_close) {
        Curve__Mds__SessionRequest req = CURVE__MDS__SESSION_REQUEST__INIT;
        req.path = s->path;
        req.session_id = s->sid;
        char err[CURVE_MDS_ERR_MAX];
        rc = curve_mds_call(m, CURVE_MDS_SVC_NAMESPACE, CURVE_MDS_NS_CLOSE, &req.base,
                            &curve__mds__empty__descriptor, NULL, err, sizeof(err));
        if (rc != 0)
            CLOG_WARN("libcurve: close of session %s of '%s': %s", s->sid, s->path, err);
    }
    curve_completion_destroy(&s->stopped);
    free(s);
    return rc;
}

int curve_mds_token_new(char *buf, size_t len)
{
    if (len < 17)
        return -EINVAL;
    uint8_t r[8];
    ssize_t n = getrandom(r, sizeof(r), 0);
    if (n != (ssize_t)sizeof(r)) {
        /* no entropy source: time and address are unique enough for a retry marker */
        uint64_t x = curve_now_mono_ns() ^ ((uint64_t)(uintptr_t)buf << 16) ^ (uint64_t)getpid();
        memcpy(r, &x, sizeof(r));
    }
    for (size_t i = 0; i < sizeof(r); i++)
        snprintf(buf + 2 * i, 3, "%02x", r[i]);
    return 0;
}

int curve_peer_addr_normalize(const char *peer, char *out, size_t outlen)
{
    if (!peer || !*peer || outlen == 0)
        return -EINVAL;
    const char *c1 = strchr(peer, ':');
    if (!c1 || c1 == peer || !c1[1])
        return -EINVAL;
    const char *c2 = strchr(c1 + 1, ':');
    size_t l = c2 ? (size_t)(c2 - peer) : strlen(peer);
    if (l >= outlen || l >= CURVE_ADDR_MAX || (c2 && c2 == c1 + 1))
        return -EINVAL;
    memcpy(out, peer, l);
    out[l] = '\0';
    return 0;
}
