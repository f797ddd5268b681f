/*
 * rowcache.h — the SQLite writer's copy of the stream rows it has read, and
 * of the tails its appends have moved but not yet written.
 *
 * An append needs its stream's row (owner, content type, closed, tail,
 * Stream-Seq, TTL...) and moves its tail. Reading the row with a SELECT and
 * moving the tail with UPDATE ... RETURNING cost more than the append's own
 * chunk. On SQLite the writer connection is the only one that writes, so it
 * keeps the rows it has read and answers the next read from memory, and an
 * append moves the tail in memory only: the row is written once per
 * transaction, however many appends moved it (to the narrow stream_tails
 * row: store_sqlite.c's tails_sql; "dirty" rows, written by
 * parley_rowcache_flush before anything else reads the streams table on
 * the writer, and before COMMIT). store_sqlite.c keeps it true:
 *
 *   1. Rows are put in only as read from the database on the writer's own
 *      transaction, with nothing dirty (every read flushes first).
 *   2. Every other change to a stream's rows (stream_rows, stream_tails:
 *      both keyed by the stream id) on the writer connection (close, touch,
 *      delete, refs, imports, user moves, any SQL) marks the row stale:
 *      SQLite's update hook names the rowid. A stale row is never
 *      answered; it is kept only for a rollback to the savepoint.
 *   3. Each request runs in a savepoint (parley_rowcache_savepoint); the
 *      first change to a row after it keeps a copy of the row as it was, and
 *      parley_rowcache_rollback_to puts every row back as it was at the
 *      savepoint, dirty flag included (a row written meanwhile is dirty
 *      again: the rollback took the write back too), and forgets the rows
 *      read since.
 *   4. A whole rollback, a failed commit, or a commit by another connection
 *      (PRAGMA data_version moves) empties the cache.
 *
 * Bounded: PARLEY_ROWCACHE_ROWS rows; when it is full and nothing is dirty
 * or kept for a rollback, putting one more empties it first, else the row
 * is not kept.
 *
 * PostgreSQL has no such cache: another node may append to the same stream.
 *
 * Threads: the writer's thread only (the cache belongs to its connection).
 */
#ifndef PARLEY_STORE_SQLITE_ROWCACHE_H
#define PARLEY_STORE_SQLITE_ROWCACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

#define PARLEY_ROWCACHE_ROWS 256 /* rows held at most */

typedef struct parley_rowcache parley_rowcache_t;

/* Write row's tail, touched_ms and stream_seq to the database: 0 or an
 * error (the cache's own write: the update hook must not mark it stale). */
typedef int (*parley_rowcache_write_fn)(void *arg, const parley_stream_t *row);

/* A new, empty cache (free with parley_rowcache_free). */
int parley_rowcache_new(parley_rowcache_t **out);

/* Free the cache; NULL is accepted. */
void parley_rowcache_free(parley_rowcache_t *c);

/* The row of the stream at path, or NULL (borrowed: valid until the next
 * call that changes the cache). NULL c is an empty cache. */
const parley_stream_t *parley_rowcache_by_path(parley_rowcache_t *c, const char *path);

/* The row of stream id, or NULL (borrowed, as by_path). */
const parley_stream_t *parley_rowcache_by_id(parley_rowcache_t *c, int64_t id);

/* Hold a copy of row as just read from the database (invariant 1). */
void parley_rowcache_put(parley_rowcache_t *c, const parley_stream_t *row);

/* An append moved stream id (held, not stale) to tail at touched_ms,
 * recording stream_seq when not NULL; the row is dirty until flushed. */
void parley_rowcache_advance(parley_rowcache_t *c, int64_t id, uint64_t tail, int64_t touched_ms,
                             const char *stream_seq);

/* Whether some row is dirty. */
bool parley_rowcache_dirty(const parley_rowcache_t *c);

/* Write every dirty row through write (arg passed along); a row written is
 * clean. Stops at the first error and returns it. */
int parley_rowcache_flush(parley_rowcache_t *c, parley_rowcache_write_fn write, void *arg);

/* Stream id's row was changed by something else (invariant 2). */
void parley_rowcache_stale(parley_rowcache_t *c, int64_t id);

/* A request's savepoint begins / was rolled back to (invariant 3). */
void parley_rowcache_savepoint(parley_rowcache_t *c);
void parley_rowcache_rollback_to(parley_rowcache_t *c);

/* Forget every row, dirty ones included (invariant 4). */
void parley_rowcache_clear(parley_rowcache_t *c);

#endif
