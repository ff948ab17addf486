/* Bounded in-flight RPC limiter with a FIFO of waiters (inflight.h). */
#include "client/inflight.h"

#include <errno.h>
#include <stddef.h>

#include "common/assert.h"

int curve_inflight_init(curve_inflight *l, uint32_t limit)
{
    CURVE_ASSERT(l != NULL);
    if (limit == 0)
        return -EINVAL;
    *l = (curve_inflight){.limit = limit};
    int rc = pthread_mutex_init(&l->lock, NULL);
    return rc ? -rc : 0;
}

void curve_inflight_destroy(curve_inflight *l)
{
    if (!l)
        return;
    CURVE_ASSERT(l->used == 0 && l->head == NULL && l->waiting == 0);
    pthread_mutex_destroy(&l->lock);
}

bool curve_inflight_try_acquire(curve_inflight *l)
{
    CURVE_ASSERT(l != NULL);
    pthread_mutex_lock(&l->lock);
    bool ok = l->used < l->limit && l->head == NULL;
    if (ok)
        l->used++;
    pthread_mutex_unlock(&l->lock);
    return ok;
}

bool curve_inflight_acquire(curve_inflight *l, curve_inflight_waiter *w, curve_inflight_cb cb)
{
    CURVE_ASSERT(l != NULL && w != NULL && cb != NULL);
    pthread_mutex_lock(&l->lock);
    bool ok = l->used < l->limit && l->head == NULL;
    if (ok) {
        l->used++;
    } else {
        w->next = NULL;
        w->cb = cb;
        if (l->tail)
            l->tail->next = w;
        else
            l->head = w;
        l->tail = w;
        l->waiting++;
        if (l->waiting > l->max_waiting)
            l->max_waiting = l->waiting;
    }
    CURVE_ASSERT(l->used <= l->limit);
    pthread_mutex_unlock(&l->lock);
    return ok;
}

void curve_inflight_release(curve_inflight *l)
{
    CURVE_ASSERT(l != NULL);
    pthread_mutex_lock(&l->lock);
    CURVE_ASSERT(l->used > 0);
    curve_inflight_waiter *w = l->head;
    if (w) {
        /* the slot passes straight to the oldest waiter: `used` does not change */
        l->head = w->next;
        if (!l->head)
            l->tail = NULL;
        l->waiting--;
    } else {
        l->used--;
    }
    pthread_mutex_unlock(&l->lock);
    if (w)
        w->cb(w);
}

uint32_t curve_inflight_used(curve_inflight *l)
{
    CURVE_ASSERT(l != NULL);
    pthread_mutex_lock(&l->lock);
    uint32_t u = l->used;
    pthread_mutex_unlock(&l->lock);
    return u;
}

uint64_t curve_inflight_waiting(curve_inflight *l)
{
    CURVE_ASSERT(l != NULL);
    pthread_mutex_lock(&l->lock);
    uint64_t n = l->waiting;
    pthread_mutex_unlock(&l->lock);
    return n;
}
