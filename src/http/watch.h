/*
 * watch.h — notice a parked connection's peer hanging up.
 *
 * A suspended libmicrohttpd connection is not polled, so a client that
 * resets or closes a parked long-poll or SSE read would otherwise be
 * noticed only at its deadline, holding a descriptor and its request until
 * then. The watcher keeps one epoll set and one thread: each parked
 * connection's socket is registered for EPOLLRDHUP (never EPOLLIN, so
 * bytes a client pipelines behind its request do not wake it; EPOLLHUP and
 * EPOLLERR always come), and on a hang-up the entry's owner is asked to
 * claim the resume (claim(), under the watcher's lock) and, if it does, is
 * told the peer is gone (gone(), without the lock), which resumes the
 * connection so that it ends at once.
 *
 * Exactly-once: claim() arbitrates with whoever else may resume the
 * connection (the hub's wake-up): it returns true only if that other party
 * can no longer do so. The entry is unregistered before gone() runs, and
 * its owner unregisters it (parley_watch_remove) before resuming for any
 * other reason, so a watched descriptor is never one that libmicrohttpd has
 * closed or reused.
 *
 * Ownership: entries are owned by their connection; an entry must stay
 * valid until parley_watch_remove() returned or gone() was called.
 * Threads: every function is thread-safe; claim() runs on the watcher
 * thread with the watcher's lock held (it may take locks that are never
 * held while calling parley_watch_*), gone() on the watcher thread without
 * it.
 */
#ifndef PARLEY_HTTP_WATCH_H
#define PARLEY_HTTP_WATCH_H

#include <stdbool.h>
#include <stdint.h>

typedef struct parley_watch parley_watch_t;
typedef struct parley_watch_entry parley_watch_entry_t;

struct parley_watch_entry {
    /* public: set before parley_watch_add() */
    bool (*claim)(parley_watch_entry_t *e); /* take over the resume? (lock held) */
    void (*gone)(parley_watch_entry_t *e);  /* the peer hung up (after claim) */
    void *arg;                              /* for the callbacks */
    /* private: the watcher's */
    int fd;       /* the watched socket, -1 when not registered */
    uint32_t gen; /* registration number, to discard stale events */
};

/* Start the watcher thread. 0 or a negative error. */
int parley_watch_create(parley_watch_t **out);
/* Stop the thread and free. Entries still registered are dropped without
 * a callback. Accepts NULL. */
void parley_watch_destroy(parley_watch_t *w);

/* Watch fd for a hang-up on behalf of e. 0, or a negative error (e is then
 * not registered and its callbacks never run). */
int parley_watch_add(parley_watch_t *w, parley_watch_entry_t *e, int fd);
/* Stop watching e if it is registered (a no-op otherwise). Unless claim()
 * already returned true for e, no callback of e runs after it returns. */
void parley_watch_remove(parley_watch_t *w, parley_watch_entry_t *e);

/* Entries registered right now. */
unsigned parley_watch_count(parley_watch_t *w);

#endif
