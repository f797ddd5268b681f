/*
 * ratelimit.h — request rate limits as the API applies them: which bucket
 * a request takes a token from, and the 429 it gets when there is none.
 *
 * Every request the router authenticates (and every anonymous snapshot
 * read) takes one token from up to two buckets of core/ratelimit.h: its
 * client address's (reads or writes) and its user's (reads or writes).
 * GET and HEAD are reads; every other method is a write. A live read
 * (long-poll, SSE) is one request however long it stays. CORS preflights,
 * /healthz and /readyz are never limited.
 *
 * The admin key's own principal ("@admin") is exempt from per-user limits
 * and meets per-address ones (config rate_admin changes that); the admin
 * key acting for a user (Parley-User) counts as that user. Local mode's
 * user is limited like anyone once a limit is set (none is by default).
 *
 * Threads: create and free at start-up and shutdown; refuse on any HTTP
 * worker thread.
 */
#ifndef PARLEY_API_RATELIMIT_H
#define PARLEY_API_RATELIMIT_H

#include <stdbool.h>

#include "core/ratelimit.h"
#include "api/request.h"
#include "parley/parley.h"

/* Defaults when a limit is not configured and the server is not in local
 * mode. Per-address limits are off: behind a proxy every client would
 * share its address. */
#define PARLEY_RATE_DEFAULT_USER_WRITES ((parley_rate_t){50, 1, 100})
#define PARLEY_RATE_DEFAULT_USER_READS  ((parley_rate_t){200, 1, 400})

/*
 * The server's rate limiter for cfg: 0 with *out, or with *out NULL when
 * every limit is off (then nothing is charged at all); PARLEY_EINVAL for
 * a limit out of range; PARLEY_ENOMEM. Free with parley_ratelimit_free().
 */
int parley_api_ratelimit_create(const parley_config_t *cfg, parley_ratelimit_t **out);

/*
 * Charge r to its buckets. False: go ahead. True: r was over a limit and
 * has been answered 429 with Retry-After and the error rate_limited.
 * Call once per request, after authentication.
 */
bool parley_api_ratelimit_refuse(parley_req_t *r);

struct sockaddr;
/*
 * The bucket key of a client address into key: an IPv4 address (IPv4-mapped
 * IPv6 included) or an IPv6 /64, with a family byte. Returns its length, 0
 * when there is no address. Pure; any thread.
 */
size_t parley_api_ratelimit_address_key(const struct sockaddr *sa, unsigned char key[9]);

#endif
