/*
 * hub.h — the fan-out hub: live readers wait here for their stream to change.
 *
 * A live reader (long-poll or SSE) that finds nothing new registers a
 * waiter for one stream and suspends its connection. After each commit the
 * writer tells the hub which streams changed; the hub wakes exactly the
 * waiters of those streams. A timer thread wakes waiters whose deadline
 * (long-poll timeout, SSE recycle) has passed.
 *
 * Missed wake-ups are impossible: a reader takes the hub's generation with
 * parley_hub_generation() before it reads the store; parley_hub_wait()
 * refuses to park it (PARLEY_ECONFLICT) if any commit was announced since,
 * and the reader reads again.
 *
 * Ownership: waiters are owned by their connection and must stay valid
 * until their wake callback has run or parley_hub_cancel() returned true.
 * Wake callbacks run on the writer thread, the timer thread or the thread
 * that closes the hub, never with the hub's lock held.
 *
 * It lives in the API layer: its users are the API's live reads (through
 * api/app.h, which parks a request's waiter and resumes the request from
 * the wake callback) and the server, which hands it each commit's wake set
 * and parks the webhook doorbell. The store and core rules never see it:
 * the writer reports a parley_wakeset_t and the server forwards it here.
 *
 * Threads: every function is thread-safe.
 */
#ifndef PARLEY_API_HUB_H
#define PARLEY_API_HUB_H

#include <stdbool.h>
#include <stdint.h>

#include "store/wakeset.h"

typedef struct parley_hub parley_hub_t;

typedef enum {
    PARLEY_WAKE_DATA,     /* the stream changed */
    PARLEY_WAKE_TIMEOUT,  /* the deadline passed */
    PARLEY_WAKE_SHUTDOWN, /* the server is stopping */
    PARLEY_WAKE_GONE,     /* the client hung up (never from the hub itself:
                             the HTTP layer's watcher, after parley_hub_cancel) */
} parley_wake_t;

typedef struct parley_waiter parley_waiter_t;
typedef void (*parley_wake_cb)(parley_waiter_t *w, parley_wake_t why);

struct parley_waiter {
    /* public: set before parley_hub_wait() */
    int64_t stream_id;      /* the stream waited on */
    int64_t deadline_ms;    /* monotonic deadline, 0 for none */
    parley_wake_cb on_wake; /* called once when woken */
    void *arg;              /* for the callback */
    /* private: the hub's */
    parley_waiter_t *prev, *next; /* links in the bucket list */
    bool parked;                  /* in the hub */
};

int parley_hub_create(parley_hub_t **out);
/* Wake every waiter with SHUTDOWN, refuse new ones, stop the timer, free. */
void parley_hub_destroy(parley_hub_t *hub);
/* Wake every waiter with SHUTDOWN and refuse new ones (hub stays valid). */
void parley_hub_close(parley_hub_t *hub);

/* The count of announced commits so far. */
uint64_t parley_hub_generation(parley_hub_t *hub);

/*
 * Park w until its stream changes or its deadline passes. gen is the
 * generation taken before the caller read the store. Returns 0 (parked),
 * PARLEY_ECONFLICT (something committed since gen: read again; w not
 * parked) or PARLEY_ECLOSED (hub closed; w not parked).
 */
int parley_hub_wait(parley_hub_t *hub, parley_waiter_t *w, uint64_t gen);

/* Remove w if still parked. true if removed (its callback will not run). */
bool parley_hub_cancel(parley_hub_t *hub, parley_waiter_t *w);

/* Announce a commit that changed these streams (writer thread). */
void parley_hub_notify(parley_hub_t *hub, const int64_t *stream_ids, int n);

/* Announce a commit that changed more streams than it can name: wake
 * every parked waiter with DATA (each re-reads its stream). */
void parley_hub_notify_all(parley_hub_t *hub);

/* Announce a commit that changed the streams of wake: its streams' waiters
 * wake, or every parked waiter when wake->all is set. */
void parley_hub_notify_set(parley_hub_t *hub, const parley_wakeset_t *wake);

/* Waiters parked right now. */
unsigned parley_hub_waiting(parley_hub_t *hub);

#endif
