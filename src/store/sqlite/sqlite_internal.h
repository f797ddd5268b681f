/*
 * sqlite_internal.h — what the SQLite backend's files share and nothing
 * above the store sees: the WAL hooks the checkpointer drives
 * (checkpointer.c) on the store store_sqlite.c opened.
 *
 * Threads: as each function says.
 */
#ifndef PARLEY_STORE_SQLITE_SQLITE_INTERNAL_H
#define PARLEY_STORE_SQLITE_SQLITE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>

#include "store/store.h"

/*
 * wal_watch: call fn(arg, frames) on the writer thread after every commit
 * with the WAL's size in frames (set before the writer starts; fn NULL
 * unhooks). If fn returns true, the store checkpoints at once on the
 * writer's connection, between transactions, where a checkpoint always
 * completes and the next transaction rewinds the WAL; if that checkpoint
 * fails, fn is called again with frames = -1.
 */
void parley_sqlite_wal_watch(parley_store_t *store, bool (*fn)(void *arg, int frames), void *arg);

/*
 * Copy the WAL back into the database without blocking the writer or
 * readers (SQLite's PASSIVE mode), on a connection of its own; *frames and
 * *done report the WAL's size and how much of it is now in the database.
 * Checkpointer thread only.
 */
int parley_sqlite_checkpoint(parley_store_t *store, int *frames, int *done);

/*
 * The part of the start-up integrity check that is not run at open: the
 * full PRAGMA quick_check (the stored bytes and the free list; see
 * store_sqlite.c), on a read-only connection of its own, closed before it
 * returns. PARLEY_ESTORE when it finds damage (each problem logged), 0 when
 * none or when *cancel became true meanwhile (it stops within a few ms).
 * Checkpointer thread only.
 */
int parley_sqlite_quick_check(parley_store_t *store, const atomic_bool *cancel);

#endif
