/*
 * synctime.h — how long the store's syncs take, for /metrics
 * (parley_fsync_seconds).
 *
 * Process-wide histograms, one per kind of file synced, in microseconds.
 * The SQLite backend observes every sync of its files where it happens
 * (store/sqlite/syncvfs.c: around the VFS's xSync, so the WAL sync that
 * makes a COMMIT durable and the checkpointer's syncs of the database
 * file are measured alone, without the WAL write before them). PostgreSQL
 * syncs in the server, not here: its backend observes the COMMIT round
 * trip as the WAL kind, which holds the server's WAL flush (and a network
 * round trip).
 *
 * Threads: any thread observes and reads, without a lock (util/hist.h).
 */
#ifndef PARLEY_STORE_SYNCTIME_H
#define PARLEY_STORE_SYNCTIME_H

#include <stdint.h>

#include "util/hist.h"

/* What was synced: the label file="..." of parley_fsync_seconds. */
typedef enum parley_sync_file {
    PARLEY_SYNC_WAL,      /* the write-ahead log (SQLite -wal; PostgreSQL's COMMIT) */
    PARLEY_SYNC_DATABASE, /* the database file (SQLite: checkpoints, schema changes) */
    PARLEY_SYNC_FILES     /* how many kinds */
} parley_sync_file_t;

/* Count one sync of file that took us microseconds. Any thread. */
void parley_synctime_observe(parley_sync_file_t file, uint64_t us);

/* The histogram of file (static storage, never NULL). Any thread. */
const parley_hist_t *parley_synctime_hist(parley_sync_file_t file);

/* The label value of file: "wal", "database". */
const char *parley_synctime_name(parley_sync_file_t file);

#endif
