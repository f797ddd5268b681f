/*
 * transfer.h — a store as JSON Lines and back: `parley export` and
 * `parley import` (store/transfer.c has the format and the kinds).
 *
 * parley_store_export() writes every object of a store (or of one owner)
 * to out, one JSON object per line, in dependency order, between a header
 * line and an end line that counts the objects. parley_store_import()
 * reads such lines into a store inside the caller's transaction: objects
 * already there with the same content are skipped, one already there with
 * different content (or any bad line) stops it with an error naming the
 * line, and the caller rolls the transaction back, so nothing is half
 * imported.
 *
 * Threads: any thread, on a connection it owns.
 */
#ifndef PARLEY_STORE_TRANSFER_H
#define PARLEY_STORE_TRANSFER_H

#include <stdint.h>
#include <jansson.h>
#include <stdio.h>

#include "store/store.h"

/* What an import did. */
typedef struct parley_import_stats {
    int64_t lines;         /* lines read */
    int64_t inserted;      /* objects written */
    int64_t present;       /* objects already in the store with the same content (skipped) */
    json_t *conversations; /* ids of the conversations written, to index for search (owned) */
} parley_import_stats_t;

/*
 * Write the store db reads to out as JSON Lines: every object when user is
 * NULL, else only the objects owned by user (and the counters). Run it
 * inside a read transaction on db for one consistent snapshot. *objects
 * (may be NULL) the object lines written. 0, an error from the store, or
 * PARLEY_ESTORE with the reason on err (a value that cannot be written
 * out, an output error).
 */
int parley_store_export(parley_db_t *db, const char *user, FILE *out, FILE *err, int64_t *objects);

/*
 * Read JSON Lines from in and write the objects they hold through db (the
 * writer connection, inside a transaction the caller began). 0 when every
 * line was read and the end line matched; otherwise the first problem is
 * reported on err ("line N: ...") and PARLEY_EINVAL (bad input),
 * PARLEY_ECONFLICT (an object is in the store with different content) or
 * the store's error is returned, and the caller must roll back.
 */
int parley_store_import(parley_db_t *db, FILE *in, FILE *err, parley_import_stats_t *stats);

#endif
