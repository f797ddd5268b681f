/*
 * visits.h — counting the views of a snapshot without turning its reads
 * into writes (core/snapshot.h keeps the record).
 *
 * After GET /v1/snapshots/{id} has been answered 200, the handler calls
 * parley_api_visit(). A VIEWER is
 *   - with a token: the user it names (the admin key acting for a user
 *     with Parley-User is that user);
 *   - without a token (a public snapshot's shared link): the client's
 *     address (an IPv4 address or an IPv6 /64) and its User-Agent.
 * The owner's own reads are not visits, nor those of Parley's own
 * principals (the admin key itself, @admin: the app's backend and its
 * console; @local). A viewer's reads of one snapshot
 * count once per --snapshot-visit-interval: an in-memory limiter (the
 * token buckets of core/ratelimit.h, burst 1, one token per interval,
 * keyed by SipHash with a random key, so viewer identities are never
 * stored) lets a visit through only when it is due. A due visit is handed
 * to the writer as a write of its own and the read never waits for it: the
 * read has already been answered from the reader's snapshot.
 *
 * Invariants:
 *   1. No visit write is ever on a read's commit path.
 *   2. At most PARLEY_VISITS_QUEUE_MAX visit writes are queued at once; a
 *      due visit past that is dropped (counted in dropped), so a storm of
 *      new viewers cannot fill the writer's queue.
 *   3. Memory is fixed: the limiter's table is PARLEY_VISITS_BUCKETS
 *      buckets. Under extreme churn a viewer whose bucket was taken counts
 *      again before its interval ends (a visit too many, never a write
 *      storm: each one still passed the table).
 *   4. Several nodes (PostgreSQL) each keep their own limiter: a viewer
 *      load-balanced over N nodes counts at most N times per interval.
 *
 * Threads: parley_api_visit from any HTTP worker thread; the writes run on
 * the writer thread.
 */
#ifndef PARLEY_API_VISITS_H
#define PARLEY_API_VISITS_H

#include <stdint.h>

#include "api/request.h"
#include "store/store.h"
#include "store/writer.h"

#define PARLEY_VISITS_BUCKETS   65536 /* viewers remembered at once (1 MiB) */
#define PARLEY_VISITS_QUEUE_MAX 1024  /* visit writes queued at once */

typedef struct parley_visits parley_visits_t;

/*
 * The limiter for visits counted once per interval_s seconds per viewer
 * and snapshot, submitting to writer (borrowed; it must outlive the
 * limiter's last visit). interval_s 0: *out = NULL, visits are not
 * counted. 0, or PARLEY_ENOMEM / -errno. Free with parley_api_visits_free()
 * once no request runs and the writer has stopped.
 */
int parley_api_visits_create(unsigned interval_s, parley_writer_t *writer, parley_visits_t **out);
void parley_api_visits_free(parley_visits_t *v);

/* After r's read of snapshot s was answered 200: submit a visit if one is
 * due (see above). Never blocks, never answers r. */
void parley_api_visit(parley_req_t *r, const parley_snap_t *s);

/* Visits dropped because the queue was full (statistics). */
uint64_t parley_api_visits_dropped(const parley_visits_t *v);

#endif
