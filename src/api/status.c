/*
 * status.c — outcome → HTTP status, in one place (see status.h).
 */
#include "api/status.h"
#include "parley/parley.h"

const parley_status_override_t parley_api_stream_statuses[] = {
    {PARLEY_EFENCED, 403}, /* stale producer epoch (PROTOCOL.md §5.2) */
    {0, 0},
};

static int refusal_status(int err)
{
    switch (err) {
    case PARLEY_EINVAL:
        return 400;
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
    default:
        return 500;
    }
}

int parley_api_status(const parley_outcome_t *o, const parley_status_override_t *overrides)
{
    if (o->status)
        return o->status; /* a rule not yet converted */
    if (o->refusal) {
        for (const parley_status_override_t *v = overrides; v && v->err; v++)
            if (v->err == o->refusal)
                return v->status;
        return refusal_status(o->refusal);
    }
    switch (o->done) {
    case PARLEY_DONE_CREATED:
        return 201;
    case PARLEY_DONE_EMPTY:
    case PARLEY_DONE_NOTHING:
        return 204;
    default:
        return 200;
    }
}
