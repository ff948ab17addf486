/* Event loops on libuv with a locked MPSC message queue (see loop.h, docs/concurrency.md). */
#include "loop/loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/assert.h"
#include "common/log.h"

struct curve_loop {
    uv_loop_t uv;
    uv_async_t wakeup;
    char name[32];
    pthread_t thread;
    bool started; /* a thread was started by curve_loop_start */
    bool joined;

    /* Protects the message queue and the flags below. Held only for list surgery. */
    pthread_mutex_t lock;
    curve_loop_msg *head, *tail; /* FIFO of posted messages */
    unsigned nalloc;             /* allocated (curve_loop_post) messages queued */
    bool stopping;               /* curve_loop_stop called */
    bool stopped;                /* the loop finished running: posts fail with -ESHUTDOWN */
};

/* The loop running on this thread (set while curve_loop_run / the loop thread runs). */
static _Thread_local curve_loop *tls_current;

/* Allocated messages carry this marker in `fn` position of a wrapper. */
typedef struct alloc_msg {
    curve_loop_msg m;
    curve_loop *loop;
    curve_loop_fn fn;
    void *arg;
} alloc_msg;

static void alloc_msg_run(void *arg)
{
    alloc_msg *am = arg;
    curve_loop_fn fn = am->fn;
    void *fa = am->arg;
    free(am);
    fn(fa);
}

/* Runs up to CURVE_LOOP_BATCH_MAX queued messages; returns true if more remain. */
static bool loop_drain(curve_loop *loop, unsigned max)
{
    pthread_mutex_lock(&loop->lock);
    curve_loop_msg *list = loop->head;
    loop->head = loop->tail = NULL;
    pthread_mutex_unlock(&loop->lock);

    unsigned n = 0, nalloc = 0;
    while (list && n < max) {
        curve_loop_msg *m = list;
        list = m->next;
        m->next = NULL;
        nalloc += m->fn == alloc_msg_run;
        m->fn(m->arg);
        n++;
    }
    if (nalloc) {
        pthread_mutex_lock(&loop->lock);
        CURVE_ASSERT(loop->nalloc >= nalloc);
        loop->nalloc -= nalloc;
        pthread_mutex_unlock(&loop->lock);
    }
    if (!list)
        return false;
    /* Put the rest back in front of anything posted meanwhile, preserving FIFO order. */
    curve_loop_msg *last = list;
    while (last->next)
        last = last->next;
    pthread_mutex_lock(&loop->lock);
    last->next = loop->head;
    if (!loop->head)
        loop->tail = last;
    loop->head = list;
    pthread_mutex_unlock(&loop->lock);
    return true;
}

static void loop_wakeup_cb(uv_async_t *h)
{
    curve_loop *loop = h->data;
    if (loop_drain(loop, CURVE_LOOP_BATCH_MAX))
        uv_async_send(&loop->wakeup); /* more work: come back after polling IO */
    pthread_mutex_lock(&loop->lock);
    bool stop = loop->stopping;
    pthread_mutex_unlock(&loop->lock);
    if (stop)
        uv_stop(&loop->uv);
}

int curve_loop_new(const char *name, curve_loop **out)
{
    curve_loop *loop = calloc(1, sizeof(*loop));
    if (!loop)
        return -ENOMEM;
    snprintf(loop->name, sizeof(loop->name), "%s", name ? name : "loop");
    int rc = uv_loop_init(&loop->uv);
    if (rc < 0)
        goto err_after_alloc;
    rc = uv_async_init(&loop->uv, &loop->wakeup, loop_wakeup_cb);
    if (rc < 0)
        goto err_after_uv;
    loop->wakeup.data = loop;
    loop->uv.data = loop;
    pthread_mutex_init(&loop->lock, NULL);
    *out = loop;
    return 0;

err_after_uv:
    uv_loop_close(&loop->uv);
err_after_alloc:
    free(loop);
    return rc;
}

/* Runs the loop until stop, then runs what was posted before `stopped` was set. */
static void loop_run_until_stopped(curve_loop *loop)
{
    tls_current = loop;
    for (;;) {
        uv_run(&loop->uv, UV_RUN_DEFAULT);
        pthread_mutex_lock(&loop->lock);
        bool stop = loop->stopping;
        if (stop)
            loop->stopped = true;
        pthread_mutex_unlock(&loop->lock);
        if (stop)
            break;
    }
    /* Honour the contract for messages accepted before `stopped` was set. */
    while (loop_drain(loop, CURVE_LOOP_BATCH_MAX)) {
    }
    tls_current = NULL;
}

static void *loop_thread_main(void *arg)
{
    curve_loop *loop = arg;
    char tname[16];
    memcpy(tname, loop->name, sizeof(tname) - 1);
    tname[sizeof(tname) - 1] = 0;
    pthread_setname_np(pthread_self(), tname);
    loop_run_until_stopped(loop);
    return NULL;
}

int curve_loop_start(curve_loop *loop)
{
    CURVE_ASSERT(!loop->started);
    int rc = pthread_create(&loop->thread, NULL, loop_thread_main, loop);
    if (rc != 0)
        return -rc;
    loop->started = true;
    return 0;
}

int curve_loop_run(curve_loop *loop)
{
    CURVE_ASSERT(!loop->started);
    loop_run_until_stopped(loop);
    return 0;
}

void curve_loop_stop(curve_loop *loop)
{
    pthread_mutex_lock(&loop->lock);
    bool already = loop->stopping;
    loop->stopping = true;
    bool stopped = loop->stopped;
    pthread_mutex_unlock(&loop->lock);
    if (!already && !stopped)
        uv_async_send(&loop->wakeup);
}

void curve_loop_join(curve_loop *loop)
{
    if (!loop->started || loop->joined)
        return;
    CURVE_ASSERT(!pthread_equal(pthread_self(), loop->thread));
    pthread_join(loop->thread, NULL);
    loop->joined = true;
}

static void loop_close_leftover(uv_handle_t *h, void *arg)
{
    curve_loop *loop = arg;
    if (uv_is_closing(h))
        return;
    if (h != (uv_handle_t *)&loop->wakeup)
        CLOG_WARN("loop %s: closing leftover handle type %s", loop->name,
                  uv_handle_type_name(uv_handle_get_type(h)));
    uv_close(h, NULL);
}

void curve_loop_free(curve_loop *loop)
{
    if (!loop)
        return;
    curve_loop_stop(loop);
    curve_loop_join(loop);
    pthread_mutex_lock(&loop->lock);
    loop->stopped = true;
    pthread_mutex_unlock(&loop->lock);
    /* Messages accepted but never run (the loop never ran, or was stopped before reaching
     * them) run now, on this thread acting as the loop: a post that returned 0 always runs. */
    tls_current = loop;
    while (loop_drain(loop, CURVE_LOOP_BATCH_MAX)) {
    }
    tls_current = NULL;
    uv_walk(&loop->uv, loop_close_leftover, loop);
    uv_run(&loop->uv, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&loop->uv);
    if (rc < 0)
        CLOG_WARN("loop %s: uv_loop_close: %s", loop->name, uv_strerror(rc));
    pthread_mutex_destroy(&loop->lock);
    free(loop);
}

uv_loop_t *curve_loop_uv(curve_loop *loop)
{
    return &loop->uv;
}

const char *curve_loop_name(const curve_loop *loop)
{
    return loop->name;
}

bool curve_loop_is_current(const curve_loop *loop)
{
    return tls_current == loop;
}

curve_loop *curve_loop_current(void)
{
    return tls_current;
}

static int loop_enqueue(curve_loop *loop, curve_loop_msg *m, bool counted)
{
    m->next = NULL;
    pthread_mutex_lock(&loop->lock);
    if (loop->stopped) {
        pthread_mutex_unlock(&loop->lock);
        return -ESHUTDOWN;
    }
    if (counted) {
        if (loop->nalloc >= CURVE_LOOP_POST_MAX) {
            pthread_mutex_unlock(&loop->lock);
            return -EAGAIN;
        }
        loop->nalloc++;
    }
    bool was_empty = loop->head == NULL;
    if (loop->tail)
        loop->tail->next = m;
    else
        loop->head = m;
    loop->tail = m;
    pthread_mutex_unlock(&loop->lock);
    /* Only the first message after the queue was drained needs to wake the loop. */
    if (was_empty)
        uv_async_send(&loop->wakeup);
    return 0;
}

int curve_loop_post(curve_loop *loop, curve_loop_fn fn, void *arg)
{
    CURVE_ASSERT(fn != NULL);
    alloc_msg *am = malloc(sizeof(*am));
    if (!am)
        return -ENOMEM;
    am->m.fn = alloc_msg_run;
    am->m.arg = am;
    am->loop = loop;
    am->fn = fn;
    am->arg = arg;
    int rc = loop_enqueue(loop, &am->m, true);
    if (rc < 0)
        free(am);
    return rc;
}

int curve_loop_post_msg(curve_loop *loop, curve_loop_msg *m)
{
    CURVE_ASSERT(m->fn != NULL && m->fn != alloc_msg_run);
    return loop_enqueue(loop, m, false);
}

typedef struct call_sync_arg {
    curve_loop_msg msg;
    curve_loop_fn fn;
    void *arg;
    curve_completion done;
} call_sync_arg;

static void call_sync_run(void *arg)
{
    call_sync_arg *a = arg;
    a->fn(a->arg);
    curve_completion_signal(&a->done, 0);
}

int curve_loop_call_sync(curve_loop *loop, curve_loop_fn fn, void *arg)
{
    if (curve_loop_is_current(loop)) {
        fn(arg);
        return 0;
    }
    call_sync_arg a = {.msg = {.fn = call_sync_run, .arg = &a}, .fn = fn, .arg = arg};
    curve_completion_init(&a.done);
    int rc = curve_loop_post_msg(loop, &a.msg);
    if (rc == 0)
        rc = curve_completion_wait(&a.done, 0);
    curve_completion_destroy(&a.done);
    return rc;
}

void curve_completion_init(curve_completion *c)
{
    pthread_mutex_init(&c->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cond, &attr);
    pthread_condattr_destroy(&attr);
    c->done = false;
    c->result = 0;
}

void curve_completion_destroy(curve_completion *c)
{
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
}

void curve_completion_signal(curve_completion *c, int result)
{
    pthread_mutex_lock(&c->lock);
    CURVE_ASSERT(!c->done);
    c->done = true;
    c->result = result;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

int curve_completion_wait(curve_completion *c, uint64_t timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + (timeout_ms % 1000) * 1000000u;
    ts.tv_sec += (time_t)(timeout_ms / 1000 + ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    pthread_mutex_lock(&c->lock);
    while (!c->done) {
        if (timeout_ms == 0) {
            pthread_cond_wait(&c->cond, &c->lock);
        } else if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) == ETIMEDOUT && !c->done) {
            pthread_mutex_unlock(&c->lock);
            return -ETIMEDOUT;
        }
    }
    int rc = c->result;
    pthread_mutex_unlock(&c->lock);
    return rc;
}

/* ---- timers ---- */

static void timer_uv_cb(uv_timer_t *h)
{
    curve_timer *t = CURVE_CONTAINER_OF(h, curve_timer, uv);
    t->cb(t, t->arg);
}

int curve_timer_init(curve_loop *loop, curve_timer *t, curve_timer_cb cb, void *arg)
{
    CURVE_ASSERT(cb != NULL);
    t->cb = cb;
    t->arg = arg;
    t->close_cb = NULL;
    return uv_timer_init(&loop->uv, &t->uv);
}

void curve_timer_start(curve_timer *t, uint64_t timeout_ms, uint64_t repeat_ms)
{
    int rc = uv_timer_start(&t->uv, timer_uv_cb, timeout_ms, repeat_ms);
    CURVE_ASSERT(rc == 0);
}

void curve_timer_stop(curve_timer *t)
{
    uv_timer_stop(&t->uv);
}

static void timer_close_uv_cb(uv_handle_t *h)
{
    curve_timer *t = CURVE_CONTAINER_OF((uv_timer_t *)h, curve_timer, uv);
    if (t->close_cb)
        t->close_cb(t);
}

void curve_timer_close(curve_timer *t, void (*close_cb)(curve_timer *t))
{
    t->close_cb = close_cb;
    uv_close((uv_handle_t *)&t->uv, timer_close_uv_cb);
}

uint64_t curve_loop_now_ms(curve_loop *loop)
{
    return uv_now(&loop->uv);
}

/* ---- groups ---- */

struct curve_loop_group {
    unsigned n;
    atomic_uint rr;
    curve_loop *loops[];
};

int curve_loop_group_new(const char *prefix, unsigned n, curve_loop_group **out)
{
    if (n == 0 || n > CURVE_LOOP_GROUP_MAX)
        return -EINVAL;
    curve_loop_group *g = calloc(1, sizeof(*g) + n * sizeof(g->loops[0]));
    if (!g)
        return -ENOMEM;
    atomic_init(&g->rr, 0);
    int rc = 0;
    unsigned made = 0;
    for (; made < n; made++) {
        char name[32];
        snprintf(name, sizeof(name), "%s%u", prefix ? prefix : "loop", made);
        rc = curve_loop_new(name, &g->loops[made]);
        if (rc < 0)
            goto err_after_loops;
        rc = curve_loop_start(g->loops[made]);
        if (rc < 0) {
            curve_loop_free(g->loops[made]);
            goto err_after_loops;
        }
    }
    g->n = n;
    *out = g;
    return 0;

err_after_loops:
    for (unsigned i = 0; i < made; i++)
        curve_loop_free(g->loops[i]);
    free(g);
    return rc;
}

unsigned curve_loop_group_size(const curve_loop_group *g)
{
    return g->n;
}

curve_loop *curve_loop_group_get(curve_loop_group *g, unsigned i)
{
    CURVE_ASSERT(i < g->n);
    return g->loops[i];
}

curve_loop *curve_loop_group_next(curve_loop_group *g)
{
    unsigned i = atomic_fetch_add_explicit(&g->rr, 1, memory_order_relaxed);
    return g->loops[i % g->n];
}

curve_loop *curve_loop_group_pick(curve_loop_group *g, uint64_t key)
{
    /* Mix the key so that sequential ids spread evenly (splitmix64 finaliser). */
    key ^= key >> 30;
    key *= 0xbf58476d1ce4e5b9ULL;
    key ^= key >> 27;
    key *= 0x94d049bb133111ebULL;
    key ^= key >> 31;
    return g->loops[key % g->n];
}

void curve_loop_group_free(curve_loop_group *g)
{
    if (!g)
        return;
    for (unsigned i = 0; i < g->n; i++)
        curve_loop_stop(g->loops[i]);
    for (unsigned i = 0; i < g->n; i++)
        curve_loop_free(g->loops[i]);
    free(g);
}

/* ---- worker pool ---- */

typedef struct work_item {
    curve_loop_msg done_msg; /* posted to `loop` when finished */
    struct work_item *next;
    curve_loop *loop;
    curve_work_fn fn;
    curve_work_done_cb done_cb;
    void *arg;
    int result;
} work_item;

struct curve_workpool {
    char name[32];
    unsigned nthreads, queue_max;
    pthread_t *threads;
    /* Protects the queue, `queued` and `shutdown`. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    work_item *head, *tail;
    unsigned queued;
    bool shutdown;
};

static void work_done_run(void *arg)
{
    work_item *w = arg;
    curve_work_done_cb cb = w->done_cb;
    void *a = w->arg;
    int result = w->result;
    free(w);
    cb(a, result);
}

static void work_complete(curve_workpool *wp, work_item *w, int result)
{
    w->result = result;
    w->done_msg.fn = work_done_run;
    w->done_msg.arg = w;
    int rc = curve_loop_post_msg(w->loop, &w->done_msg);
    if (rc < 0) {
        /* The submitter broke the contract by stopping its loop first; nothing safe to call. */
        CLOG_ERROR("workpool %s: loop %s stopped before work completion was delivered", wp->name,
                   curve_loop_name(w->loop));
        free(w);
    }
}

static void *workpool_thread_main(void *arg)
{
    curve_workpool *wp = arg;
    char tname[16];
    memcpy(tname, wp->name, sizeof(tname) - 1);
    tname[sizeof(tname) - 1] = 0;
    pthread_setname_np(pthread_self(), tname);
    for (;;) {
        pthread_mutex_lock(&wp->lock);
        while (!wp->head && !wp->shutdown)
            pthread_cond_wait(&wp->cond, &wp->lock);
        if (wp->shutdown) {
            pthread_mutex_unlock(&wp->lock);
            return NULL;
        }
        work_item *w = wp->head;
        wp->head = w->next;
        if (!wp->head)
            wp->tail = NULL;
        wp->queued--;
        pthread_mutex_unlock(&wp->lock);
        work_complete(wp, w, w->fn(w->arg));
    }
}

int curve_workpool_new(const char *name, unsigned nthreads, unsigned queue_max,
                       curve_workpool **out)
{
    if (nthreads == 0 || nthreads > CURVE_WORKPOOL_THREADS_MAX || queue_max == 0 ||
        queue_max > CURVE_WORKPOOL_QUEUE_MAX)
        return -EINVAL;
    curve_workpool *wp = calloc(1, sizeof(*wp));
    if (!wp)
        return -ENOMEM;
    snprintf(wp->name, sizeof(wp->name), "%s", name ? name : "work");
    wp->queue_max = queue_max;
    wp->threads = calloc(nthreads, sizeof(pthread_t));
    int rc = -ENOMEM;
    if (!wp->threads)
        goto err_after_alloc;
    pthread_mutex_init(&wp->lock, NULL);
    pthread_cond_init(&wp->cond, NULL);
    for (; wp->nthreads < nthreads; wp->nthreads++) {
        rc = -pthread_create(&wp->threads[wp->nthreads], NULL, workpool_thread_main, wp);
        if (rc < 0)
            goto err_after_threads;
    }
    *out = wp;
    return 0;

err_after_threads:
    curve_workpool_free(wp);
    return rc;
err_after_alloc:
    free(wp);
    return rc;
}

int curve_workpool_submit(curve_workpool *wp, curve_loop *loop, curve_work_fn work_fn,
                          curve_work_done_cb done_cb, void *arg)
{
    CURVE_ASSERT(work_fn != NULL && done_cb != NULL && loop != NULL);
    work_item *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->loop = loop;
    w->fn = work_fn;
    w->done_cb = done_cb;
    w->arg = arg;
    pthread_mutex_lock(&wp->lock);
    int rc = 0;
    if (wp->shutdown)
        rc = -ESHUTDOWN;
    else if (wp->queued >= wp->queue_max)
        rc = -EAGAIN;
    if (rc < 0) {
        pthread_mutex_unlock(&wp->lock);
        free(w);
        return rc;
    }
    if (wp->tail)
        wp->tail->next = w;
    else
        wp->head = w;
    wp->tail = w;
    wp->queued++;
    pthread_cond_signal(&wp->cond);
    pthread_mutex_unlock(&wp->lock);
    return 0;
}

unsigned curve_workpool_queued(curve_workpool *wp)
{
    pthread_mutex_lock(&wp->lock);
    unsigned n = wp->queued;
    pthread_mutex_unlock(&wp->lock);
    return n;
}

void curve_workpool_free(curve_workpool *wp)
{
    if (!wp)
        return;
    pthread_mutex_lock(&wp->lock);
    wp->shutdown = true;
    work_item *left = wp->head;
    wp->head = wp->tail = NULL;
    wp->queued = 0;
    pthread_cond_broadcast(&wp->cond);
    pthread_mutex_unlock(&wp->lock);
    for (unsigned i = 0; i < wp->nthreads; i++)
        pthread_join(wp->threads[i], NULL);
    while (left) {
        work_item *w = left;
        left = w->next;
        work_complete(wp, w, -ECANCELED);
    }
    pthread_cond_destroy(&wp->cond);
    pthread_mutex_destroy(&wp->lock);
    free(wp->threads);
    free(wp);
}
