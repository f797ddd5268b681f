/*
 * streamrules.h — a client stream's write, with everything it causes.
 *
 * core/stream.c decides a Durable Streams write (create, append/close,
 * delete) and reports what it changed (parley_outcome_t echo.changes). This
 * module runs that rule and then, when it was done (not refused), in the
 * same savepoint, what follows from the change: the change feed's stream.created / stream.closed /
 * stream.deleted events (core/feed.h) and the subscription hooks
 * (parley_subscription_stream_created / _appended / _deleted). It is the
 * only place that emits stream.* events, so every path that changes a
 * stream — a client's request, a session's output, TTL expiry — has the
 * same events and hooks: a stream that expires is deleted exactly as a
 * client DELETE would delete it.
 *
 * Each function returns what the stream.c rule returns: 0 with the
 * outcome in out (done or refused; nothing followed a refusal), or a
 * negative PARLEY_E* (storage failure or an event that cannot be built).
 * The streams to wake after the commit (the stream, the feeds, wake
 * streams of subscriptions) are in out->wake.
 *
 * Threads: writer thread only, inside a request's or the tick's savepoint.
 */
#ifndef PARLEY_CORE_STREAMRULES_H
#define PARLEY_CORE_STREAMRULES_H

#include <stdint.h>

#include "core/outcome.h"
#include "core/stream.h"
#include "store/store.h"
#include "store/wakeset.h"

int parley_streamrules_create(parley_db_t *db, const parley_stream_req_t *req,
                              parley_outcome_t *out);
int parley_streamrules_append(parley_db_t *db, const parley_stream_req_t *req,
                              parley_outcome_t *out);
int parley_streamrules_delete(parley_db_t *db, const parley_stream_req_t *req,
                              parley_outcome_t *out);

/*
 * Writer maintenance: delete the streams expired at now (a bounded batch
 * per call), each with the stream.deleted event in its owner's feed and
 * the subscription hook of a DELETE. The streams to wake join wake.
 */
int parley_streamrules_expire(parley_db_t *db, int64_t now, parley_wakeset_t *wake);

#endif
