/*
 * hist.h — a histogram that any thread may add to without a lock, for
 * /metrics (Prometheus histograms: cumulative buckets, a sum, a count).
 *
 * Values are unsigned integers in the histogram's own unit (microseconds
 * for times, writes for batch sizes); the bounds are the buckets' upper
 * limits in that unit, ascending, at most PARLEY_HIST_MAX_BOUNDS of them,
 * plus the implicit +Inf bucket. Each observation is two relaxed atomic
 * additions (its bucket and the sum) after a scan of the bounds: no lock,
 * nothing allocated. A reader (the scrape) sums the buckets up itself;
 * it may see an observation's bucket without its sum or the reverse,
 * which Prometheus tolerates (a scrape is not a snapshot).
 *
 * Threads: parley_hist_observe() from any thread; parley_hist_read() from
 * any thread; init before anyone observes.
 */
#ifndef PARLEY_UTIL_HIST_H
#define PARLEY_UTIL_HIST_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define PARLEY_HIST_MAX_BOUNDS 16

typedef struct parley_hist {
    const uint64_t *bounds; /* upper bounds (borrowed, static) */
    size_t nbounds;         /* entries in bounds */
    _Atomic uint64_t
        buckets[PARLEY_HIST_MAX_BOUNDS + 1]; /* per bucket, not cumulative; last +Inf */
    _Atomic uint64_t sum;                    /* sum of the values observed */
} parley_hist_t;

/* One read of a histogram: cumulative counts, as Prometheus wants them. */
typedef struct parley_hist_snap {
    size_t nbounds;                                  /* as the histogram's */
    const uint64_t *bounds;                          /* as the histogram's (borrowed) */
    uint64_t cumulative[PARLEY_HIST_MAX_BOUNDS + 1]; /* observations <= bounds[i]; last: all */
    uint64_t sum;                                    /* sum of the values */
} parley_hist_snap_t;

/* Zero h and give it its bounds (static storage, ascending, at most
 * PARLEY_HIST_MAX_BOUNDS; more are ignored). */
void parley_hist_init(parley_hist_t *h, const uint64_t *bounds, size_t nbounds);
/* Add one value. Any thread, no lock. */
void parley_hist_observe(parley_hist_t *h, uint64_t value);
/* Read h into *out. Any thread. */
void parley_hist_read(const parley_hist_t *h, parley_hist_snap_t *out);
/* The observations counted so far (the +Inf bucket). Any thread. */
uint64_t parley_hist_count(const parley_hist_t *h);

/* Bounds in microseconds for request and commit latencies (1 ms .. 10 s). */
extern const uint64_t parley_hist_latency_us[];
extern const size_t parley_hist_latency_n;

#endif
