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

#endif
