/*
 * checkpointer.h — the thread that copies the WAL back into the database.
 *
 * Commits only append to the WAL; checkpointing (copying committed pages
 * back into the database file so the WAL can be reused) is work the
 * committing thread should not wait for. This thread does it: the writer's
 * WAL hook tells it the WAL's size after each commit, and once it passes a
 * threshold the thread runs a PASSIVE checkpoint, which never blocks the
 * writer or readers.
 *
 * A background checkpoint under steady writes copies almost everything but
 * never quite catches up, and SQLite rewinds the WAL only after a complete
 * one. So when the WAL passes a hard limit the writer finishes the job
 * itself, between two transactions (where a checkpoint always completes):
 * the pages are already copied, so that costs little, and the WAL stays
 * bounded (about PARLEY_CHECKPOINT_HARD_FRAMES pages plus one batch).
 *
 * Fail-stop: a checkpoint that fails with an I/O error (a failed fsync of
 * the database file above all) calls on_fatal once: the data is still safe
 * in the WAL, but nothing may be trusted after a failed fsync, so the
 * server stops and recovers on restart.
 *
 * Private to the SQLite backend: the store's start op starts it and its
 * stop op stops it (store_sqlite.c).
 *
 * Threads: start/stop from the main thread; the hook runs on the writer.
 */
#ifndef PARLEY_STORE_SQLITE_CHECKPOINTER_H
#define PARLEY_STORE_SQLITE_CHECKPOINTER_H

#include "store/store.h"

#define PARLEY_CHECKPOINT_FRAMES      1000 /* WAL pages: checkpoint in the background */
#define PARLEY_CHECKPOINT_HARD_FRAMES 4000 /* WAL pages: the writer completes one */

typedef struct parley_checkpointer parley_checkpointer_t;

/* Start the thread and hook the store's writer (before the writer starts). */
int parley_checkpointer_start(parley_store_t *store, void (*on_fatal)(void *), void *fatal_arg,
                              parley_checkpointer_t **out);
/* Run a last checkpoint, stop the thread, unhook, free. Accepts NULL.
 * Call after the writer has stopped. */
void parley_checkpointer_stop(parley_checkpointer_t *cp);

/* Checkpoints run so far (for /metrics and tests). */
unsigned long parley_checkpointer_count(parley_checkpointer_t *cp);

#endif
