/*
 * store_sqlite.h — the SQLite backend's entry point, for store/store.c's
 * URL dispatch only. Everything else reaches the backend through the ops
 * table (store.h).
 */
#ifndef PARLEY_STORE_SQLITE_STORE_SQLITE_H
#define PARLEY_STORE_SQLITE_STORE_SQLITE_H

#include "store/store.h"

/* The SQLite backend's ops table (static, lives for the process). It serves
 * "sqlite:PATH" URLs. */
const parley_store_ops_t *parley_store_sqlite_ops(void);

/*
 * Take the lock of the database file `file` (its lock file beside it:
 * "parley.db" -> "parley.lock", any other name + ".lock"), as a server
 * does for its whole life: *fd_out holds it until closed. PARLEY_ELOCKED
 * when another process holds it (a server runs on that database). For
 * tools that replace the file (`parley restore`).
 */
int parley_sqlite_lock(const char *file, int *fd_out);

#endif
