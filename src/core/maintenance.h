/*
 * maintenance.h — the writer's periodic maintenance, about once a second.
 *
 * One tick, in one transaction on the writer (store/writer.h runs it):
 *   1. streams past their TTL or Stream-Expires-At are deleted as a
 *      client DELETE would delete them, with the stream.deleted event and
 *      the subscription hook (core/streamrules.h);
 *   2. sessions whose lease ran out go back to the queue (or fail);
 *   3. the forks of expired snapshots are freed;
 *   4. subscription leases that ran out end (their workers are fenced);
 *   5. Idempotency-Key records past their lifetime are purged;
 *   6. change feed events older than the retention are removed
 *      (core/feed.h, parley_feed_trim), when a retention is set.
 * Each step handles a bounded batch per tick, so maintenance never holds
 * the writer for long; what is left waits for the next tick.
 *
 * Returns 0 or the first step's negative PARLEY_E*; the streams to wake
 * after the commit join wake. Threads: writer thread only.
 */
#ifndef PARLEY_CORE_MAINTENANCE_H
#define PARLEY_CORE_MAINTENANCE_H

#include <stdint.h>

#include "store/store.h"
#include "store/wakeset.h"

/* What maintenance needs to know of the server's configuration. */
typedef struct parley_maintenance_cfg {
    int64_t idempotency_ttl_s; /* lifetime of an Idempotency-Key record, seconds */
    int64_t feed_retention_s;  /* change feed events kept, seconds; 0: all */
    int64_t blob_grace_s;      /* unreferenced blobs and idle uploads kept, seconds */
} parley_maintenance_cfg_t;

int parley_maintenance_tick(parley_db_t *db, const parley_maintenance_cfg_t *cfg, int64_t now,
                            parley_wakeset_t *wake);

#endif
