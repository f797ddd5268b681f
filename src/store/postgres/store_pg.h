/*
 * store_pg.h — the PostgreSQL backend's entry point, for store/store.c's
 * URL dispatch only. Everything else reaches the backend through the ops
 * table (store.h).
 */
#ifndef PARLEY_STORE_POSTGRES_STORE_PG_H
#define PARLEY_STORE_POSTGRES_STORE_PG_H

#include "store/store.h"

/* The PostgreSQL backend's ops table (static, lives for the process). It
 * serves "postgres://..." and "postgresql://..." URLs (libpq's URI form). */
const parley_store_ops_t *parley_store_pg_ops(void);

#endif
