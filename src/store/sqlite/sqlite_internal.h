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
#include <stdint.h>

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
 * The name of the VFS that times every sync of the store's files
 * (syncvfs.c; registered on the first call), for sqlite3_open_v2; NULL
 * (SQLite's default VFS, untimed) if it could not be registered. Any
 * thread.
 */
const char *parley_sqlite_sync_vfs(void);

/* The connection's SQLite handle (borrowed; the connection's thread). */
struct sqlite3;
struct sqlite3 *parley_sqlite_conn(parley_db_t *db);
/* A SQLite result code as a Parley error (logging unexpected ones). */
int parley_sqlite_error(parley_db_t *db, int rc, const char *what);
/* Whether db is the store's one write connection. */
bool parley_sqlite_is_writer(parley_db_t *db);
/* The connection's count of messages its open transaction queued to
 * index (search_sqlite.c counts and clears it; a rollback clears it). */
int *parley_sqlite_search_queued(parley_db_t *db);

/* Statements the other files of the backend keep prepared on a connection:
 * slot (0 .. PARLEY_SQLITE_OWN_STMTS - 1, one per statement, numbered by
 * the file that owns it) holds sql, prepared on first use; *out is
 * borrowed, lives as long as the connection, and is reset by its user
 * after each use. The connection's thread. */
#define PARLEY_SQLITE_OWN_STMTS 4
struct sqlite3_stmt;
int parley_sqlite_stmt(parley_db_t *db, int slot, const char *sql, struct sqlite3_stmt **out);

/* search_sqlite.c: the search index and moving a user's rows (store.h's
 * search_put, search_query, user_move, transfer_get, transfer_put), and the
 * migration step that makes their tables. */
extern const char parley_sqlite_search_sql[];
/* The writer's queue of messages to index at commit (a TEMP table, made
 * when the write connection opens). */
extern const char parley_sqlite_search_queue_sql[];
int parley_sqlite_search_put(parley_db_t *db, const char *conv_id, const char *msg_id, int64_t seq,
                             const char *text);
/* Index what the writer's open transaction queued (search_put), just
 * before its COMMIT: 0 or -PARLEY_E* (the transaction then fails). Writer
 * thread only. */
int parley_sqlite_search_flush(parley_db_t *db);
int parley_sqlite_search_query(parley_db_t *db, const char *owner, const parley_search_query_t *q,
                               int64_t offset, int limit,
                               int (*cb)(void *arg, const parley_search_hit_t *h), void *arg);
int parley_sqlite_user_move(parley_db_t *db, const char *from, const char *to,
                            parley_move_counts_t *out);
int parley_sqlite_transfer_get(parley_db_t *db, const char *from, char *to, char **answer);
int parley_sqlite_transfer_put(parley_db_t *db, const char *from, const char *to,
                               const char *answer, int64_t now_ms);

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
