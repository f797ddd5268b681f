/*
 * budget.c — the budget for readers' pending output (see budget.h).
 *
 * NOTES ON THE DESIGN
 *
 * The registered readers form one list under one mutex, with the sum of
 * their held bytes. Grants are computed from the number of readers, not
 * reserved: a window is granted as min(window, max(MIN_WINDOW, total /
 * readers)), so a burst of readers can briefly hold more than the budget
 * (those that joined when fewer were reading hold bigger windows). The
 * sweep brings the sum back under the budget by disconnecting stalled
 * readers; readers that keep draining are never disconnected.
 *
 * Invariants:
 *   1. held (the sum) equals the sum of the registered entries' held.
 *   2. An entry's socket is shut down at most once, and only while the
 *      entry is registered (so the descriptor is still its connection's:
 *      the transport removes the entry before libmicrohttpd closes it).
 *
 * Threads: HTTP workers add, remove and update their entries; the sweep
 * thread disconnects.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "http/budget.h"
#include "parley/parley.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/thread.h"

#define SWEEP_MS 250

struct parley_budget {
    pthread_mutex_t lock;        /* guards everything below */
    pthread_cond_t wake;         /* the sweep thread sleeps on this */
    size_t total;                /* the budget */
    size_t window;               /* largest window */
    size_t held;                 /* bytes held by all entries */
    unsigned readers;            /* entries registered */
    uint64_t evicted;            /* readers disconnected so far */
    parley_budget_entry_t *list; /* registered entries */
    bool stop;                   /* the sweep thread should exit */
    pthread_t thread;            /* the sweep thread */
};

static size_t share_of(const parley_budget_t *b)
{
    size_t share = b->readers ? b->total / b->readers : b->total;
    if (share > b->window)
        share = b->window;
    return share < PARLEY_BUDGET_MIN_WINDOW ? PARLEY_BUDGET_MIN_WINDOW : share;
}

static void *sweep_main(void *arg)
{
    parley_budget_t *b = arg;
    pthread_mutex_lock(&b->lock);
    while (!b->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += SWEEP_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&b->wake, &b->lock, &ts);
        if (b->stop)
            break;
        pthread_mutex_unlock(&b->lock);
        unsigned n = parley_budget_sweep(b, parley_clock_mono_ms());
        if (n)
            parley_log_warn("http: disconnected %u reader%s that stopped reading while readers "
                            "held more than the read budget; they resume by offset",
                            n, n == 1 ? "" : "s");
        pthread_mutex_lock(&b->lock);
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

int parley_budget_create(size_t total, size_t window, parley_budget_t **out)
{
    parley_budget_t *b = calloc(1, sizeof *b);
    if (!b)
        return PARLEY_ENOMEM;
    b->total = total;
    b->window = window < PARLEY_BUDGET_MIN_WINDOW ? PARLEY_BUDGET_MIN_WINDOW : window;
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->wake, NULL);
    int rc = parley_thread_start(&b->thread, "parley-budget", sweep_main, b);
    if (rc) {
        pthread_cond_destroy(&b->wake);
        pthread_mutex_destroy(&b->lock);
        free(b);
        return -rc;
    }
    *out = b;
    return 0;
}

void parley_budget_destroy(parley_budget_t *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->lock);
    b->stop = true;
    pthread_cond_signal(&b->wake);
    pthread_mutex_unlock(&b->lock);
    pthread_join(b->thread, NULL);
    pthread_cond_destroy(&b->wake);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

void parley_budget_add(parley_budget_t *b, parley_budget_entry_t *e, int fd)
{
    e->fd = fd;
    e->held = 0;
    e->evicted = false;
    e->progress_ms = parley_clock_mono_ms();
    pthread_mutex_lock(&b->lock);
    e->prev = NULL;
    e->next = b->list;
    if (b->list)
        b->list->prev = e;
    b->list = e;
    b->readers++;
    pthread_mutex_unlock(&b->lock);
}

void parley_budget_remove(parley_budget_t *b, parley_budget_entry_t *e)
{
    pthread_mutex_lock(&b->lock);
    if (e->prev || b->list == e) {
        if (e->prev)
            e->prev->next = e->next;
        else
            b->list = e->next;
        if (e->next)
            e->next->prev = e->prev;
        e->prev = e->next = NULL;
        b->held -= e->held;
        e->held = 0;
        b->readers--;
    }
    pthread_mutex_unlock(&b->lock);
}

size_t parley_budget_grant(parley_budget_t *b, const parley_budget_entry_t *e)
{
    (void)e;
    pthread_mutex_lock(&b->lock);
    size_t share = share_of(b);
    pthread_mutex_unlock(&b->lock);
    return share;
}

void parley_budget_hold(parley_budget_t *b, parley_budget_entry_t *e, size_t held)
{
    pthread_mutex_lock(&b->lock);
    if (held < e->held)
        e->progress_ms = parley_clock_mono_ms();
    b->held = b->held - e->held + held;
    e->held = held;
    pthread_mutex_unlock(&b->lock);
}

unsigned parley_budget_sweep(parley_budget_t *b, int64_t now_ms)
{
    unsigned n = 0;
    pthread_mutex_lock(&b->lock);
    size_t projected = b->held;
    size_t share = share_of(b);
    for (parley_budget_entry_t *e = b->list; e; e = e->next)
        if (e->evicted)
            projected -= e->held; /* going: its connection is closing */
    /* Pass 0: stalled readers over their share; pass 1: any stalled. */
    for (int pass = 0; pass < 2 && projected > b->total; pass++) {
        for (parley_budget_entry_t *e = b->list; e && projected > b->total; e = e->next) {
            if (e->evicted || e->held == 0 || e->fd < 0 ||
                now_ms - e->progress_ms < PARLEY_BUDGET_STALL_MS)
                continue;
            if (pass == 0 && e->held <= share)
                continue;
            shutdown(e->fd, SHUT_RDWR);
            e->evicted = true;
            projected -= e->held;
            n++;
        }
    }
    b->evicted += n;
    pthread_mutex_unlock(&b->lock);
    return n;
}

void parley_budget_stats(parley_budget_t *b, parley_budget_stats_t *out)
{
    pthread_mutex_lock(&b->lock);
    out->held = b->held;
    out->readers = b->readers;
    out->evicted = b->evicted;
    pthread_mutex_unlock(&b->lock);
}
