/*
 * ops.h — backups taken by a running server (`parley serve --backup-every`).
 *
 * A background thread wakes every `every_s` seconds, takes a backup of the
 * store into `dir` exactly as `parley backup --keep N DIR` does (ops.c: a
 * read connection of its own, VACUUM INTO a temporary file, verified,
 * fsynced, renamed, the directory fsynced, the oldest beyond keep
 * removed), and logs the outcome. It never runs on the commit path: the
 * writer keeps committing while a backup is written.
 *
 * Threads: start and stop from the server thread.
 */
#ifndef PARLEY_SERVER_OPS_H
#define PARLEY_SERVER_OPS_H

#include "store/store.h"

typedef struct parley_backup_sched parley_backup_sched_t;

/* Start the thread. keep 0: keep every backup. */
int parley_backup_sched_start(parley_store_t *store, const char *dir, unsigned every_s,
                              unsigned keep, parley_backup_sched_t **out);

/* Stop and join it (a backup under way finishes first). NULL is fine. */
void parley_backup_sched_stop(parley_backup_sched_t *b);

#endif
