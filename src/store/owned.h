/*
 * owned.h — the one list of what a user owns, for moving a user's data to
 * another user (core/transfer.h). Internal to src/store/ and core.
 *
 * Every kind of row that has an owner is one entry of parley_owned[]:
 * the table, the answer's name for it, the rows that stay behind (a
 * condition), and, for kinds whose ids are unique per owner rather than
 * globally, the key columns on which the source's rows may collide with
 * the destination's. parley_owned_move() walks the list and runs, per
 * entry, the same few statements on either backend, so a new kind of
 * owned data (blobs) is one line here.
 *
 * Collisions: where the destination already has a row with the same key,
 * the destination's row is kept and the source's is deleted (counted as
 * dropped). Before that, an entry's `before` statements may settle
 * particular cases (documents: a destination tombstone gives way to the
 * source's live document, whose version is raised above the tombstone's).
 *
 * Threads: constant tables; parley_owned_move runs on the writer.
 */
#ifndef PARLEY_STORE_OWNED_H
#define PARLEY_STORE_OWNED_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* One owned kind. SQL fragments use ?1 for the source user and ?2 for the
 * destination; the PostgreSQL backend writes them as $1 and $2. */
typedef struct parley_owned {
    const char *name;          /* the kind's name in the answer ("documents") */
    const char *table;         /* its table, with an `owner` column */
    const char *keep;          /* rows that stay with the source (SQL condition), or NULL */
    const char *key;           /* "col, col": unique per owner (collisions), NULL: ids are global */
    const char *const *before; /* statements run first, NULL-terminated, or NULL */
} parley_owned_t;

extern const parley_owned_t parley_owned[];
extern const size_t parley_owned_count; /* entries (<= PARLEY_OWNED_MAX) */

/* Run one statement (sql, NUL-terminated, ?1/?2 as above) with from and to
 * bound; *changes gets the rows it changed. 0 or a PARLEY_E* error. */
typedef int (*parley_owned_exec_fn)(parley_db_t *db, const char *sql, const char *from,
                                    const char *to, int64_t *changes);

/* The store's user_move op over exec: every entry's statements in order. */
int parley_owned_move(parley_db_t *db, parley_owned_exec_fn exec, const char *from, const char *to,
                      parley_move_counts_t *out);

#endif
