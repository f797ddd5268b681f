/*
 * status_of.h — the HTTP status an outcome is answered with, for unit
 * tests of core rules, which cannot reach the API layer: the defaults of
 * api/status.c (no route overrides), written out so a test states what each
 * rule must decide, and core tests need not link the api layer. test_status
 * (api layer) fails when this copy and api/status.c disagree on any
 * outcome.
 */
#ifndef PARLEY_TEST_STATUS_OF_H
#define PARLEY_TEST_STATUS_OF_H

#include "core/outcome.h"
#include "parley/parley.h"

static inline int outcome_status(const parley_outcome_t *o)
{
    switch (o->refusal) {
    case 0:
        return o->done == PARLEY_DONE_CREATED ? 201 : o->done == PARLEY_DONE_OK ? 200 : 204;
    case PARLEY_EINVAL:
        return 400;
    case PARLEY_EUNAUTH:
        return 401;
    case PARLEY_EFORBIDDEN:
        return 403;
    case PARLEY_ENOTFOUND:
        return 404;
    case PARLEY_ECONFLICT:
    case PARLEY_EFENCED:
        return 409;
    case PARLEY_EGONE:
        return 410;
    case PARLEY_EPRECOND:
        return 412;
    case PARLEY_ETOOBIG:
        return 413;
    case PARLEY_EFULL: /* a quota (blobs) */
        return 507;
    default:
        return 500;
    }
}

#endif
