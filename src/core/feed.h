/*
 * feed.h — the change feed: every change, as an event, in the same
 * transaction as the change.
 *
 * Each user has a feed, and there is one feed of all users for the admin.
 * Both are ordinary JSON-mode streams at reserved paths ("_parley/feed/u/
 * <user>" and "_parley/feed/all"), so a feed is read like any stream:
 * catch-up, long-poll, SSE, resume by offset (GET /v1/events). An event is
 *
 *     {"type": "document.updated", "at": "<RFC 3339>", "user": "<owner>",
 *      ...ids of what changed..., "data": {...}}
 *
 * and is appended to both feeds by the writer inside the request's
 * transaction: a change and its event commit together or not at all, and
 * the feed's order is commit order.
 *
 * Threads: writer thread only (emit); the path helper is pure.
 */
#ifndef PARLEY_CORE_FEED_H
#define PARLEY_CORE_FEED_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "store/wakeset.h"

/* The feed stream path of user, or of all users when user is NULL. */
void parley_feed_path(const char *user, char *out, size_t cap);

/*
 * Append an event of type for user to the user's feed and the feed of all.
 * fields (borrowed, may be NULL) are merged into the event; data
 * (borrowed, may be NULL) becomes its "data". The two feed streams join
 * wake (to wake their readers) once both appends succeeded.
 */
int parley_feed_emit(parley_db_t *db, const char *user, const char *type, json_t *fields,
                     json_t *data, parley_wakeset_t *wake);

/*
 * RETENTION (serve --feed-retention). The maintenance tick removes the
 * feed events whose "at" is before cutoff_ms: for each feed stream, in
 * turn, it reads events from the stream's start while they are older and
 * deletes their chunks (store chunk_trim). At most budget events are
 * looked at per call, and a call goes on from the feed stream where the
 * last one stopped (a round-robin cursor kept by the writer thread), so a
 * tick stays short however many users there are. *n: events removed.
 *
 * A feed stream's data then begins at the start of its first chunk (its
 * tail when none is left): feeds are never forked, so positions are
 * contiguous, and parley_feed_start reads where they begin. Offsets never
 * move; a read before the start is answered 410 with the earliest offset.
 * Writer thread only (trim); start on any connection.
 */
int parley_feed_trim(parley_db_t *db, int64_t cutoff_ms, int budget, int *n);

/* true if path is a change feed stream (trimmed by retention). Pure. */
bool parley_feed_is_feed(const char *path);

/* The first position still held by the feed stream st (see RETENTION). */
int parley_feed_start(parley_db_t *db, const parley_stream_t *st, uint64_t *start);

#endif
