/*
 * rebuild.h — the state rebuilt from the change feed and the message logs,
 * compared with the stored rows (the "rebuild" check of `parley verify`).
 *
 * The feed of all users (core/feed.h) is replayed in commit order into
 * in-memory objects — documents, conversations (with their messages, read
 * back from the message logs), sessions, snapshots and client streams —
 * one table entry per event type, then every stored row of those kinds is
 * compared with the object the replay made, field by field.
 *
 * REBUILDABLE. An object is rebuilt from its last "base" event: one that
 * carries its whole state (a creation, a document PUT, any conversation
 * created/updated event, a delete), followed by events that each carry
 * what they changed. Two kinds of object are not rebuilt, and are counted
 * rather than reported as problems:
 *   - older events: the object's events were written before events carried
 *     what a rebuild needs (a document event with only its version, a
 *     session created without max_attempts, a snapshot without "public");
 *     a later base event (e.g. a PUT) makes it rebuildable again;
 *   - feed trimmed (serve --feed-retention): the feed no longer starts at
 *     its first event and the object's base event is gone; a stored row
 *     with no event left at all counts here too.
 * With an untrimmed feed, a row without events, or events without a row,
 * is a problem.
 *
 * Not compared: times (an event's "at" is read from the clock apart from
 * the row's own times), a session's lease (a time, moved by heartbeats,
 * which emit nothing; the store check compares it with the status), a
 * stream's bytes (a stream is its own log).
 *
 * Threads: any thread, on a read connection it owns.
 */
#ifndef PARLEY_CORE_REBUILD_H
#define PARLEY_CORE_REBUILD_H

#include "store/store.h"
#include "store/verify.h"

/*
 * The rebuild check, as a parley_verify_check_fn (arg unused): replay the
 * feed of all users and compare with the stored rows, reporting each
 * mismatch through v. 0 when it ran (whatever it found), or an error when
 * the feed or a table could not be read (also reported).
 */
int parley_rebuild_check(parley_db_t *db, parley_verify_t *v, void *arg);

#endif
