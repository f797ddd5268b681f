/*
 * status.c — outcome → HTTP status, in one place (see status.h).
 */
#include <stdio.h>

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

int parley_api_status(const parley_outcome_t *o, const parley_status_override_t *overrides)
{
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

void parley_api_store_failed(parley_req_t *r, int rc, const char *what)
{
    char msg[160];
    switch (rc) {
    case PARLEY_EUNAVAIL:
        parley_req_add_header(r, "Retry-After", "1");
        parley_req_error(r, 503, "database_unavailable",
                         "the database cannot be reached right now; nothing was changed. Retry "
                         "shortly");
        return;
    case PARLEY_ERETRY:
        parley_req_add_header(r, "Retry-After", "1");
        parley_req_error(r, 503, "write_conflict",
                         "the write kept conflicting with other writes to the same data and was "
                         "not applied; retry");
        return;
    case PARLEY_EFULL:
        parley_req_error(r, 507, "insufficient_storage",
                         "the disk is full; nothing was written. Retry once space is freed");
        return;
    case PARLEY_ECLOSED:
        parley_req_error(r, 503, "unavailable", "the server is shutting down; retry shortly");
        return;
    case PARLEY_ENOMEM:
        parley_req_error(r, 503, "out_of_memory", "the server is out of memory; retry shortly");
        return;
    default:
        snprintf(msg, sizeof msg, "%s could not be read; retry", what);
        parley_req_error(r, 500, "storage_error", msg);
    }
}
