/*
 * hub.c — the fan-out hub (see hub.h).
 *
 * NOTES ON THE DESIGN
 *
 * Waiters live in a fixed hash table of doubly linked lists keyed by stream
 * id, so a notify touches only the waiters of the streams that changed.
 * One mutex guards the table and the generation counter. Woken waiters are
 * unlinked under the lock, collected on a private list and called after
 * the lock is dropped, so a wake callback (which resumes an HTTP
 * connection) never runs under the hub's lock.
 *
 * The timer thread checks deadlines every TICK_MS. Deadlines are coarse
 * (long-poll timeouts and SSE recycling), so scanning the table is cheaper
 * than keeping a heap in order on every park and wake.
 *
 * Invariants:
 *   1. A waiter is parked iff it is linked in exactly one bucket list.
 *   2. The generation only grows; it grows before waiters are woken.
 *   3. After close, nothing is parked and nothing can be.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "api/hub.h"
#include "parley/parley.h"
#include "util/clock.h"
#include "util/thread.h"

#define NBUCKETS 4096
#define TICK_MS  100

struct parley_hub {
    pthread_mutex_t lock;               /* guards everything below */
    pthread_cond_t tick;                /* timer thread sleeps on this */
    parley_waiter_t *buckets[NBUCKETS]; /* waiters by stream id */
    uint64_t generation;                /* commits announced */
    unsigned parked;                    /* waiters parked */
    bool closed;                        /* no more waiting */
    bool stop_timer;                    /* timer thread should exit */
    pthread_t timer;                    /* deadline checker */
};

static unsigned bucket_of(int64_t id)
{
    uint64_t x = (uint64_t)id * 0x9e3779b97f4a7c15ULL;
    return (unsigned)(x >> 52) & (NBUCKETS - 1);
}

static void unlink_waiter(parley_hub_t *hub, parley_waiter_t *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        hub->buckets[bucket_of(w->stream_id)] = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->parked = false;
    hub->parked--;
}

/* Call each woken waiter's callback (lock not held). Chained through next. */
static void run_wakes(parley_waiter_t *list, parley_wake_t why)
{
    while (list) {
        parley_waiter_t *next = list->next;
        list->next = NULL;
        list->on_wake(list, why);
        list = next;
    }
}

static void *timer_main(void *arg)
{
    parley_hub_t *hub = arg;
    pthread_mutex_lock(&hub->lock);
    while (!hub->stop_timer) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&hub->tick, &hub->lock, &ts);
        if (hub->stop_timer || !hub->parked)
            continue;
        int64_t now = parley_clock_mono_ms();
        parley_waiter_t *due = NULL;
        for (unsigned b = 0; b < NBUCKETS; b++) {
            parley_waiter_t *w = hub->buckets[b];
            while (w) {
                parley_waiter_t *next = w->next;
                if (w->deadline_ms && w->deadline_ms <= now) {
                    unlink_waiter(hub, w);
                    w->next = due;
                    due = w;
                }
                w = next;
            }
        }
        if (due) {
            pthread_mutex_unlock(&hub->lock);
            run_wakes(due, PARLEY_WAKE_TIMEOUT);
            pthread_mutex_lock(&hub->lock);
        }
    }
    pthread_mutex_unlock(&hub->lock);
    return NULL;
}

int parley_hub_create(parley_hub_t **out)
{
    parley_hub_t *hub = calloc(1, sizeof *hub);
    if (!hub)
        return PARLEY_ENOMEM;
    pthread_mutex_init(&hub->lock, NULL);
    pthread_cond_init(&hub->tick, NULL);
    int rc = parley_thread_start(&hub->timer, "parley-hub", timer_main, hub);
    if (rc) {
        pthread_mutex_destroy(&hub->lock);
        pthread_cond_destroy(&hub->tick);
        free(hub);
        return -rc;
    }
    *out = hub;
    return 0;
}

void parley_hub_close(parley_hub_t *hub)
{
    parley_waiter_t *all = NULL;
    pthread_mutex_lock(&hub->lock);
    hub->closed = true;
    for (unsigned b = 0; b < NBUCKETS; b++) {
        while (hub->buckets[b]) {
            parley_waiter_t *w = hub->buckets[b];
            unlink_waiter(hub, w);
            w->next = all;
            all = w;
        }
    }
    pthread_mutex_unlock(&hub->lock);
    run_wakes(all, PARLEY_WAKE_SHUTDOWN);
}

void parley_hub_destroy(parley_hub_t *hub)
{
    if (!hub)
        return;
    parley_hub_close(hub);
    pthread_mutex_lock(&hub->lock);
    hub->stop_timer = true;
    pthread_cond_signal(&hub->tick);
    pthread_mutex_unlock(&hub->lock);
    pthread_join(hub->timer, NULL);
    pthread_mutex_destroy(&hub->lock);
    pthread_cond_destroy(&hub->tick);
    free(hub);
}

uint64_t parley_hub_generation(parley_hub_t *hub)
{
    pthread_mutex_lock(&hub->lock);
    uint64_t g = hub->generation;
    pthread_mutex_unlock(&hub->lock);
    return g;
}

int parley_hub_wait(parley_hub_t *hub, parley_waiter_t *w, uint64_t gen)
{
    int rc = 0;
    pthread_mutex_lock(&hub->lock);
    if (hub->closed) {
        rc = PARLEY_ECLOSED;
    } else if (hub->generation != gen) {
        rc = PARLEY_ECONFLICT;
    } else {
        unsigned b = bucket_of(w->stream_id);
        w->prev = NULL;
        w->next = hub->buckets[b];
        if (w->next)
            w->next->prev = w;
        hub->buckets[b] = w;
        w->parked = true;
        hub->parked++;
    }
    pthread_mutex_unlock(&hub->lock);
    return rc;
}

bool parley_hub_cancel(parley_hub_t *hub, parley_waiter_t *w)
{
    bool removed = false;
    pthread_mutex_lock(&hub->lock);
    if (w->parked) {
        unlink_waiter(hub, w);
        removed = true;
    }
    pthread_mutex_unlock(&hub->lock);
    return removed;
}

void parley_hub_notify(parley_hub_t *hub, const int64_t *ids, int n)
{
    parley_waiter_t *woken = NULL;
    pthread_mutex_lock(&hub->lock);
    hub->generation++;
    for (int i = 0; i < n; i++) {
        parley_waiter_t *w = hub->buckets[bucket_of(ids[i])];
        while (w) {
            parley_waiter_t *next = w->next;
            if (w->stream_id == ids[i]) {
                unlink_waiter(hub, w);
                w->next = woken;
                woken = w;
            }
            w = next;
        }
    }
    pthread_mutex_unlock(&hub->lock);
    run_wakes(woken, PARLEY_WAKE_DATA);
}

void parley_hub_notify_all(parley_hub_t *hub)
{
    parley_waiter_t *woken = NULL;
    pthread_mutex_lock(&hub->lock);
    hub->generation++;
    for (unsigned b = 0; b < NBUCKETS; b++) {
        while (hub->buckets[b]) {
            parley_waiter_t *w = hub->buckets[b];
            unlink_waiter(hub, w);
            w->next = woken;
            woken = w;
        }
    }
    pthread_mutex_unlock(&hub->lock);
    run_wakes(woken, PARLEY_WAKE_DATA);
}

void parley_hub_notify_set(parley_hub_t *hub, const parley_wakeset_t *wake)
{
    if (wake->all)
        parley_hub_notify_all(hub);
    else
        parley_hub_notify(hub, wake->ids, wake->n);
}

unsigned parley_hub_waiting(parley_hub_t *hub)
{
    pthread_mutex_lock(&hub->lock);
    unsigned n = hub->parked;
    pthread_mutex_unlock(&hub->lock);
    return n;
}
