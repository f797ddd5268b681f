/*
 * error.c — text for Parley's error codes.
 */
#include <string.h>

#include "parley/parley.h"

const char *parley_strerror(int err)
{
    switch (err) {
    case PARLEY_OK:
        return "success";
    case PARLEY_ENOMEM:
        return "out of memory";
    case PARLEY_EINVAL:
        return "invalid argument";
    case PARLEY_ENOTFOUND:
        return "not found";
    case PARLEY_EEXIST:
        return "already exists";
    case PARLEY_ECONFLICT:
        return "conflict with current state";
    case PARLEY_ETOOBIG:
        return "over a configured limit";
    case PARLEY_ESTORE:
        return "storage failure";
    case PARLEY_ELOCKED:
        return "data directory is in use by another process";
    case PARLEY_ECLOSED:
        return "shutting down";
    case PARLEY_EFULL:
        return "storage is full";
    case PARLEY_EUNAVAIL:
        return "the database is unavailable";
    case PARLEY_ERETRY:
        return "transient conflict; retry";
    case PARLEY_EGONE:
        return "deleted";
    case PARLEY_EPRECOND:
        return "precondition failed";
    case PARLEY_EFORBIDDEN:
        return "forbidden";
    case PARLEY_EFENCED:
        return "fenced by a newer holder";
    case PARLEY_EUNAUTH:
        return "not authenticated";
    default:
        if (err < 0 && err > -4096)
            return strerror(-err);
        return "unknown error";
    }
}
