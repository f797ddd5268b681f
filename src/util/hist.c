/*
 * hist.c — lock-free histograms (see hist.h).
 */
#include <string.h>

#include "util/hist.h"

const uint64_t parley_hist_latency_us[] = {
    100,   250,    500,    1000,   2500,    5000,    10000,   25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};
const size_t parley_hist_latency_n = sizeof parley_hist_latency_us / sizeof(uint64_t);

void parley_hist_init(parley_hist_t *h, const uint64_t *bounds, size_t nbounds)
{
    memset(h, 0, sizeof *h);
    h->bounds = bounds;
    h->nbounds = nbounds > PARLEY_HIST_MAX_BOUNDS ? PARLEY_HIST_MAX_BOUNDS : nbounds;
}

void parley_hist_observe(parley_hist_t *h, uint64_t value)
{
    size_t i = 0;
    while (i < h->nbounds && value > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, value, memory_order_relaxed);
}

void parley_hist_read(const parley_hist_t *h, parley_hist_snap_t *out)
{
    uint64_t total = 0;
    out->nbounds = h->nbounds;
    out->bounds = h->bounds;
    for (size_t i = 0; i <= h->nbounds; i++) {
        total += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        out->cumulative[i] = total;
    }
    out->sum = atomic_load_explicit(&h->sum, memory_order_relaxed);
}

uint64_t parley_hist_count(const parley_hist_t *h)
{
    uint64_t total = 0;
    for (size_t i = 0; i <= h->nbounds; i++)
        total += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
    return total;
}
