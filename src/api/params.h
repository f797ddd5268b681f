/*
 * params.h — parsing of request header and query values the API accepts.
 *
 * Each parser is strict: it accepts exactly the documented form and
 * nothing else (no trimming, no signs, no leading zeros), so that a value
 * the server accepts always means one thing. Pure functions, thread-safe.
 */
#ifndef PARLEY_API_PARAMS_H
#define PARLEY_API_PARAMS_H

#include <stdbool.h>
#include <stdint.h>

/* ^(0|[1-9][0-9]*)$ with value <= max. 0 or PARLEY_EINVAL. */
int parley_param_decimal(const char *s, uint64_t max, uint64_t *out);

/* A boolean header such as Stream-Closed: true iff "true" in any case. */
bool parley_param_true(const char *v);

/*
 * A stream path below /v1/stream/: 1..1024 bytes, '/'-separated segments,
 * none empty, "." or "..", no control characters. On false, *why says
 * which rule was broken (static string).
 */
bool parley_param_stream_path(const char *p, const char **why);

/*
 * Does an If-None-Match / If-Match header value match etag? The value is
 * "*" or a comma-separated list of entity tags; weak tags (W/"x") compare
 * by their opaque part (RFC 9110 §8.8.3.2, weak comparison).
 */
bool parley_param_etag_match(const char *header, const char *etag);

#endif
