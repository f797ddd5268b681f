/*
 * status.h — the one mapping from a rule's outcome to an HTTP status.
 *
 * A core rule says what it decided in terms of its own (parley_outcome_t:
 * done, or a refusal as a PARLEY_E* code); the API answers with the HTTP
 * status this mapping gives. Defaults:
 *
 *     done:    OK 200, CREATED 201, EMPTY 204, NOTHING 204
 *     refusal: EINVAL 400, EUNAUTH 401, EFORBIDDEN 403, ENOTFOUND 404,
 *              ECONFLICT 409, EFENCED 409, EGONE 410, EPRECOND 412,
 *              ETOOBIG 413, anything else 500
 *
 * A route family may override refusals: the Durable Streams routes answer
 * a stale producer epoch (EFENCED) with 403, as the protocol says
 * (parley_api_stream_statuses).
 *
 * Threads: any; pure.
 */
#ifndef PARLEY_API_STATUS_H
#define PARLEY_API_STATUS_H

#include "api/request.h"
#include "core/outcome.h"

/* One refusal whose status differs from the default; a list ends with
 * err 0. */
typedef struct parley_status_override {
    int err;    /* negative PARLEY_E* */
    int status; /* HTTP status for it */
} parley_status_override_t;

/* The Durable Streams routes' overrides (EFENCED 403). */
extern const parley_status_override_t parley_api_stream_statuses[];

/* The HTTP status for o; overrides may be NULL. */
int parley_api_status(const parley_outcome_t *o, const parley_status_override_t *overrides);

/*
 * Answer r for a store failure: rc from the store or the writer, what the
 * object read or written ("the stream"). One mapping for every route:
 *   PARLEY_EUNAVAIL  503 database_unavailable, Retry-After: 1 (the database
 *                    cannot be reached now; nothing was written)
 *   PARLEY_ERETRY    503 write_conflict, Retry-After: 1 (a write that kept
 *                    conflicting with other nodes' writes; not applied)
 *   PARLEY_EFULL     507 insufficient_storage (nothing was written)
 *   PARLEY_ECLOSED   503 unavailable (the server is shutting down)
 *   PARLEY_ENOMEM    503 out_of_memory
 *   anything else    500 storage_error "<what> could not be read; retry"
 */
void parley_api_store_failed(parley_req_t *r, int rc, const char *what);

#endif
