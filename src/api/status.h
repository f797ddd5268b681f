/*
 * status.h — the one mapping from a rule's outcome to an HTTP status.
 *
 * A core rule says what it decided in terms of its own (parley_outcome_t:
 * done, or a refusal as a PARLEY_E* code); the API answers with the HTTP
 * status this mapping gives. Defaults:
 *
 *     done:    OK 200, CREATED 201, EMPTY 204, NOTHING 204
 *     refusal: EINVAL 400, EFORBIDDEN 403, ENOTFOUND 404, ECONFLICT 409,
 *              EFENCED 409, EGONE 410, EPRECOND 412, ETOOBIG 413,
 *              anything else 500
 *
 * A route family may override refusals: the Durable Streams routes answer
 * a stale producer epoch (EFENCED) with 403, as the protocol says
 * (parley_api_stream_statuses). An outcome of a rule not yet converted
 * carries its HTTP status itself (parley_outcome_t.status), returned as it
 * is.
 *
 * Threads: any; pure.
 */
#ifndef PARLEY_API_STATUS_H
#define PARLEY_API_STATUS_H

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

#endif
