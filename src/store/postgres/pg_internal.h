/*
 * pg_internal.h — what the PostgreSQL backend's files share and nothing
 * above the store sees: the connection's libpq handle and the error map
 * (store_pg.c), and the search and user-move ops (search_pg.c).
 *
 * Threads: as store.h's ops (a connection is used by one thread at a time).
 */
#ifndef PARLEY_STORE_POSTGRES_PG_INTERNAL_H
#define PARLEY_STORE_POSTGRES_PG_INTERNAL_H

#include <libpq-fe.h>
#include <stdint.h>

#include "store/store.h"

/* The connection's libpq handle (borrowed). */
PGconn *parley_pg_conn(parley_db_t *db);
/* A failed result (or a broken connection) as a Parley error. */
int parley_pg_error(parley_db_t *db, const PGresult *res, const char *what);

/* search_pg.c: the migration step that makes the search index and the
 * transfer records, and the ops over them (store.h). */
extern const char parley_pg_search_sql[];
int parley_pg_search_put(parley_db_t *db, const char *conv_id, const char *msg_id, int64_t seq,
                         const char *text);
int parley_pg_search_query(parley_db_t *db, const char *owner, const parley_search_query_t *q,
                           int64_t offset, int limit,
                           int (*cb)(void *arg, const parley_search_hit_t *h), void *arg);
int parley_pg_user_move(parley_db_t *db, const char *from, const char *to,
                        parley_move_counts_t *out);
int parley_pg_transfer_get(parley_db_t *db, const char *from, char *to, char **answer);
int parley_pg_transfer_put(parley_db_t *db, const char *from, const char *to, const char *answer,
                           int64_t now_ms);

#endif
