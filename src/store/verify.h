/*
 * verify.h — the store's own invariants, checked on a whole database.
 *
 * parley_store_verify() reads every table through the table_scan op (so
 * each backend runs the same checks) after the backend's integrity check,
 * and prints a report: one line per check with its counts, then one line
 * per problem found. It is what `parley verify` runs, and what a backup or
 * a restore runs on its copy before it is installed.
 *
 * The checks:
 *   integrity      the backend's structural check (SQLite integrity_check;
 *                  on PostgreSQL amcheck's bt_index_check when installed)
 *   streams        every stream's chunks tile [fork_pos, tail) with no gap
 *                  or overlap; a JSON stream's chunks hold valid JSON, one
 *                  message per position; a fork's source exists and holds
 *                  the fork position
 *   conversations  messages carry seq 1, 2, 3... with no gap, their count
 *                  is the conversation's message_count, the message log is
 *                  owned by the conversation's owner
 *   sessions       status is a legal state, a lease exactly when the state
 *                  needs one (processing), the conversation exists and has
 *                  the session's owner
 *   snapshots      kind and source agree; the frozen message log is a fork
 *                  of the source conversation's log, owned by the snapshot's
 *                  owner
 *   idempotency    every stored response parses (an outcome record, or a
 *                  reply stored by an earlier version) and the fingerprint
 *                  is 64 hex digits
 *
 * A higher layer may add checks of its own (parley_store_verify_with):
 * they run last, inside the same read transaction, and report through
 * parley_verify_problem() and parley_verify_check_end() in the same
 * format. `parley verify` adds the rebuild from the feed (core/rebuild.h).
 *
 * Threads: any thread, on a connection it owns.
 */
#ifndef PARLEY_STORE_VERIFY_H
#define PARLEY_STORE_VERIFY_H

#include <stdio.h>

#include "store/store.h"

/*
 * Run every check on db (a read connection; one read transaction around
 * each table), printing the report to out. *problems is the number of
 * problems found. 0 when the checks ran (whatever they found), or an
 * error when a table could not be read at all (also counted and reported
 * as a problem).
 */
int parley_store_verify(parley_db_t *db, FILE *out, long *problems);

/* One verification in progress (opaque): what an added check reports to. */
typedef struct parley_verify parley_verify_t;

/* An added check: reads db (inside the verification's read transaction),
 * reports through v. 0, or an error when it could not run at all. */
typedef int (*parley_verify_check_fn)(parley_db_t *db, parley_verify_t *v, void *arg);

/* parley_store_verify, then extra (may be NULL) with arg, before the verdict. */
int parley_store_verify_with(parley_db_t *db, FILE *out, parley_verify_check_fn extra, void *arg,
                             long *problems);

/* Start an added check's section (its problem count starts at 0). */
void parley_verify_check_begin(parley_verify_t *v);

/* Report one problem of the current check (printf format; a line of its own). */
void parley_verify_problem(parley_verify_t *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* End the current check: its line "NAME  COUNTS: ok|PROBLEMS". */
void parley_verify_check_end(parley_verify_t *v, const char *name, const char *counts);

#endif
