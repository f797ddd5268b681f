/*
 * synctime.c — the sync-time histograms of synctime.h: static, zeroed at
 * load, so a sync may be observed before anything else starts.
 *
 * Threads: any (lock-free histograms).
 */
#include "store/synctime.h"

/* Bounds in microseconds: 50 us (a fast NVMe fdatasync) to 10 s. */
static const uint64_t sync_bounds_us[] = {50,     100,     250,     500,     1000,   2500,
                                          5000,   10000,   25000,   50000,   100000, 250000,
                                          500000, 1000000, 2500000, 10000000};
#define NBOUNDS (sizeof sync_bounds_us / sizeof sync_bounds_us[0])

static parley_hist_t hists[PARLEY_SYNC_FILES] = {
    [PARLEY_SYNC_WAL] = {.bounds = sync_bounds_us, .nbounds = NBOUNDS},
    [PARLEY_SYNC_DATABASE] = {.bounds = sync_bounds_us, .nbounds = NBOUNDS},
};

void parley_synctime_observe(parley_sync_file_t file, uint64_t us)
{
    if (file < PARLEY_SYNC_FILES)
        parley_hist_observe(&hists[file], us);
}

const parley_hist_t *parley_synctime_hist(parley_sync_file_t file)
{
    return &hists[file < PARLEY_SYNC_FILES ? file : PARLEY_SYNC_WAL];
}

const char *parley_synctime_name(parley_sync_file_t file)
{
    return file == PARLEY_SYNC_DATABASE ? "database" : "wal";
}
