/*
 * budget.h — the budget for readers' pending output.
 *
 * A reader's response body (catch-up, long-poll data, SSE) is produced from
 * the store a window at a time: the transport asks the budget how much the
 * next window may hold, fills it, and reports what is still unsent as the
 * client drains it. One reader holds at most one window (--read-window);
 * all readers together are meant to hold at most the budget
 * (--read-budget). A reader's window shrinks to its share of the budget
 * when many read at once (never below MIN_WINDOW, so every reader makes
 * progress).
 *
 * Slow consumers are disconnected: while the readers hold more than the
 * budget, a sweep (a thread, four times a second) disconnects readers whose
 * client has taken no bytes for a second — those over their share first —
 * until the rest fit. Disconnecting shuts the socket
 * down; libmicrohttpd then closes the connection on its own thread, and the
 * client resumes from the last offset it saw.
 *
 * Ownership: entries belong to their response; an entry must be removed
 * (parley_budget_remove) before its socket can be closed.
 * Threads: every function is thread-safe.
 */
#ifndef PARLEY_HTTP_BUDGET_H
#define PARLEY_HTTP_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PARLEY_BUDGET_MIN_WINDOW (16 * 1024) /* smallest window granted */
#define PARLEY_BUDGET_STALL_MS   1000        /* no progress this long: stalled */

typedef struct parley_budget parley_budget_t;

typedef struct parley_budget_entry {
    /* private: the budget's */
    int fd;                                  /* the connection's socket */
    size_t held;                             /* pending bytes not yet sent */
    int64_t progress_ms;                     /* last time bytes left (monotonic) */
    bool evicted;                            /* its socket was shut down */
    struct parley_budget_entry *prev, *next; /* links in the list of readers */
} parley_budget_entry_t;

/* Counters for tests and logs. */
typedef struct parley_budget_stats {
    size_t held;      /* bytes pending across readers */
    unsigned readers; /* readers registered */
    uint64_t evicted; /* readers disconnected so far */
} parley_budget_stats_t;

/* Start a budget of total bytes, at most window per reader, with its sweep
 * thread. 0 or a negative error. */
int parley_budget_create(size_t total, size_t window, parley_budget_t **out);
/* Stop the sweep and free (entries must all be removed). Accepts NULL. */
void parley_budget_destroy(parley_budget_t *b);

/* Register a reader whose socket is fd (holding nothing yet). */
void parley_budget_add(parley_budget_t *b, parley_budget_entry_t *e, int fd);
/* Unregister it (its held bytes are released). No-op if not registered. */
void parley_budget_remove(parley_budget_t *b, parley_budget_entry_t *e);
/* How many bytes e's next window may hold: its share of the budget. */
size_t parley_budget_grant(parley_budget_t *b, const parley_budget_entry_t *e);
/* e now holds held pending bytes; less than before counts as progress. */
void parley_budget_hold(parley_budget_t *b, parley_budget_entry_t *e, size_t held);
/* Run one sweep now (the thread does this four times a second); returns
 * the readers disconnected. now_ms is the monotonic time. */
unsigned parley_budget_sweep(parley_budget_t *b, int64_t now_ms);
void parley_budget_stats(parley_budget_t *b, parley_budget_stats_t *out);

#endif
