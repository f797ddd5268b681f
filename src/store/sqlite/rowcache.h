/*
 * rowcache.h — the SQLite writer's copy of the stream rows it has read.
 *
 * An append needs its stream's row (owner, content type, closed, tail,
 * Stream-Seq, TTL...) and moves its tail. Reading the row with a SELECT and
 * moving the tail with UPDATE ... RETURNING cost more than the append's own
 * chunk. On SQLite the writer connection is the only one that writes, so it
 * can keep the rows it has read and answer the next read from memory, as
 * long as every change to a row it holds is seen (store_sqlite.c):
 *
 *   1. Rows are put in only as read from the database on the writer's own
 *      transaction (or as an append through the cache left them).
 *   2. Every other change to a streams row on the writer connection (close,
 *      touch, delete, refs, imports, user moves, any SQL) drops the row:
 *      SQLite's update hook names the rowid (store_sqlite.c on_update).
 *   3. A rollback, whole or to the request's savepoint, empties the cache:
 *      the rows may hold changes the database no longer has.
 *   4. A commit by another connection (PRAGMA data_version moves) empties
 *      it at the next transaction.
 *
 * A bounded table: PARLEY_ROWCACHE_ROWS rows; putting one more empties it
 * (a writer appending to a few hot streams keeps them; a sweep over many
 * reads them as before).
 *
 * PostgreSQL has no such cache: another node may append to the same stream.
 *
 * Threads: the writer's thread only (the cache belongs to its connection).
 */
#ifndef PARLEY_STORE_SQLITE_ROWCACHE_H
#define PARLEY_STORE_SQLITE_ROWCACHE_H

#include <stdint.h>

#include "store/store.h"

#define PARLEY_ROWCACHE_ROWS 256 /* rows held before the cache is emptied */

typedef struct parley_rowcache parley_rowcache_t;

/* A new, empty cache (free with parley_rowcache_free). */
int parley_rowcache_new(parley_rowcache_t **out);

/* Free the cache; NULL is accepted. */
void parley_rowcache_free(parley_rowcache_t *c);

/* The row of the stream at path, or NULL (borrowed: valid until the next
 * call that changes the cache). */
parley_stream_t *parley_rowcache_by_path(parley_rowcache_t *c, const char *path);

/* The row of stream id, or NULL (borrowed, as by_path). */
parley_stream_t *parley_rowcache_by_id(parley_rowcache_t *c, int64_t id);

/* Hold a copy of row (replacing any row with its id). */
void parley_rowcache_put(parley_rowcache_t *c, const parley_stream_t *row);

/* Forget the row of stream id, if held. */
void parley_rowcache_drop(parley_rowcache_t *c, int64_t id);

/* Forget every row. */
void parley_rowcache_clear(parley_rowcache_t *c);

#endif
