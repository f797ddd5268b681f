/*
 * watch.c — the parked-connection watcher (see watch.h).
 *
 * NOTES ON THE DESIGN
 *
 * Registered entries are found by descriptor in a table indexed by fd
 * (grown on demand): a descriptor is open and unique while its connection
 * is suspended, and it is unregistered before the connection resumes. Each
 * registration gets a number (gen) that travels in the epoll event, so an
 * event fetched for an entry that was removed meanwhile — and whose
 * descriptor may already belong to a newer parked connection — is
 * recognised as stale and dropped.
 *
 * Events are level-triggered. When claim() refuses (the other party is
 * resuming the connection right now, or has not yet finished parking it),
 * the entry stays registered and reports again; the thread then pauses a
 * millisecond before the next round so that it cannot spin.
 *
 * Invariants:
 *   1. An entry is registered iff table[e->fd] == e, and then its fd is
 *      in the epoll set.
 *   2. gone(e) is called at most once per registration, after e was
 *      unregistered, and never after parley_watch_remove(e) returned.
 *   3. The lock is never held while gone() runs.
 *
 * Threads: the watcher thread waits in epoll_wait; parley_watch_add and
 * parley_watch_remove come from HTTP workers and from the threads that
 * wake parked connections (writer, hub timer).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "http/watch.h"
#include "parley/parley.h"
#include "util/log.h"
#include "util/thread.h"

#define MAX_EVENTS 256

struct parley_watch {
    pthread_mutex_t lock;         /* guards everything below */
    int epfd;                     /* the epoll set */
    int stopfd;                   /* eventfd that stops the thread */
    parley_watch_entry_t **table; /* registered entries by fd */
    size_t cap;                   /* slots in table */
    unsigned count;               /* entries registered */
    uint32_t next_gen;            /* next registration number */
    pthread_t thread;             /* the watcher thread */
};

static uint64_t token_of(int fd, uint32_t gen)
{
    return (uint64_t)gen << 32 | (uint32_t)fd;
}

/* Unregister e (lock held). */
static void drop(parley_watch_t *w, parley_watch_entry_t *e)
{
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, e->fd, NULL);
    w->table[e->fd] = NULL;
    e->fd = -1;
    w->count--;
}

static void *watch_main(void *arg)
{
    parley_watch_t *w = arg;
    struct epoll_event ev[MAX_EVENTS];
    parley_watch_entry_t *gone[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(w->epfd, ev, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            parley_log_error("watch: epoll_wait: %s", strerror(errno));
            return NULL;
        }
        int ngone = 0;
        bool refused = false;
        pthread_mutex_lock(&w->lock);
        for (int i = 0; i < n; i++) {
            if (ev[i].data.u64 == UINT64_MAX) {
                pthread_mutex_unlock(&w->lock);
                return NULL; /* stop */
            }
            int fd = (int)(uint32_t)ev[i].data.u64;
            uint32_t gen = (uint32_t)(ev[i].data.u64 >> 32);
            parley_watch_entry_t *e = (size_t)fd < w->cap ? w->table[fd] : NULL;
            if (!e || e->gen != gen)
                continue; /* stale: removed since the event was fetched */
            if (!e->claim(e)) {
                refused = true;
                continue;
            }
            drop(w, e);
            gone[ngone++] = e;
        }
        pthread_mutex_unlock(&w->lock);
        for (int i = 0; i < ngone; i++)
            gone[i]->gone(gone[i]);
        if (refused)
            usleep(1000);
    }
}

int parley_watch_create(parley_watch_t **out)
{
    parley_watch_t *w = calloc(1, sizeof *w);
    if (!w)
        return PARLEY_ENOMEM;
    int rc = 0;
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->epfd < 0) {
        rc = -errno;
        goto out_free;
    }
    w->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->stopfd < 0) {
        rc = -errno;
        goto out_close_ep;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->stopfd, &ev) < 0) {
        rc = -errno;
        goto out_close_stop;
    }
    pthread_mutex_init(&w->lock, NULL);
    rc = parley_thread_start(&w->thread, "parley-watch", watch_main, w);
    if (rc) {
        rc = -rc;
        pthread_mutex_destroy(&w->lock);
        goto out_close_stop;
    }
    *out = w;
    return 0;
out_close_stop:
    close(w->stopfd);
out_close_ep:
    close(w->epfd);
out_free:
    free(w);
    return rc;
}

void parley_watch_destroy(parley_watch_t *w)
{
    if (!w)
        return;
    uint64_t one = 1;
    if (write(w->stopfd, &one, sizeof one) != sizeof one)
        parley_log_error("watch: cannot stop the thread: %s", strerror(errno));
    pthread_join(w->thread, NULL);
    close(w->stopfd);
    close(w->epfd);
    pthread_mutex_destroy(&w->lock);
    free(w->table);
    free(w);
}

int parley_watch_add(parley_watch_t *w, parley_watch_entry_t *e, int fd)
{
    int rc = 0;
    e->fd = -1;
    if (fd < 0)
        return PARLEY_EINVAL;
    pthread_mutex_lock(&w->lock);
    if ((size_t)fd >= w->cap) {
        size_t cap = w->cap ? w->cap : 1024;
        while (cap <= (size_t)fd)
            cap *= 2;
        parley_watch_entry_t **t = realloc(w->table, cap * sizeof *t);
        if (!t) {
            rc = PARLEY_ENOMEM;
            goto out_unlock;
        }
        memset(t + w->cap, 0, (cap - w->cap) * sizeof *t);
        w->table = t;
        w->cap = cap;
    }
    if (w->table[fd]) {
        rc = PARLEY_EEXIST; /* cannot happen: one parked request per socket */
        goto out_unlock;
    }
    e->gen = ++w->next_gen;
    struct epoll_event ev = {.events = EPOLLRDHUP, .data.u64 = token_of(fd, e->gen)};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        rc = -errno;
        goto out_unlock;
    }
    w->table[fd] = e;
    e->fd = fd;
    w->count++;
out_unlock:
    pthread_mutex_unlock(&w->lock);
    return rc;
}

void parley_watch_remove(parley_watch_t *w, parley_watch_entry_t *e)
{
    pthread_mutex_lock(&w->lock);
    if (e->fd >= 0 && (size_t)e->fd < w->cap && w->table[e->fd] == e)
        drop(w, e);
    pthread_mutex_unlock(&w->lock);
}

unsigned parley_watch_count(parley_watch_t *w)
{
    pthread_mutex_lock(&w->lock);
    unsigned n = w->count;
    pthread_mutex_unlock(&w->lock);
    return n;
}
