/*
 * ratelimit.h — token buckets for request rate limits, in a table of fixed
 * size.
 *
 * A limit is a class of buckets (writes per user, reads per user, writes
 * per client address, reads per client address) with one rule: a bucket
 * holds at most `burst` tokens and gains one every `interval_ns`; a request
 * takes one token or is refused with the time until one is there. Buckets
 * are found by a key (a user id, an address) within their class.
 *
 * The table never allocates after parley_ratelimit_create(): it has a fixed
 * number of buckets, and a new key takes the place of an idle bucket or,
 * when its set holds none, of the bucket nearest to full (see ratelimit.c).
 * So memory is bounded whatever the churn of keys; the price is that under
 * extreme churn a busy key may find itself with a full bucket again.
 *
 * Time is passed in by the caller (monotonic nanoseconds), so the rules are
 * pure and tests drive the clock. Thread-safe: any thread may call
 * parley_ratelimit_admit() concurrently; create and free are single-threaded.
 */
#ifndef PARLEY_CORE_RATELIMIT_H
#define PARLEY_CORE_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "parley/parley.h"

#define PARLEY_RATELIMIT_BUCKETS   65536   /* the server's table: 1 MiB */
#define PARLEY_RATELIMIT_MAX_BURST 1000000 /* largest burst a rule takes */

/* The classes of buckets; a key in one class never meets another's. */
typedef enum parley_rate_class {
    PARLEY_RATE_USER_WRITES = 0, /* writes, by user id */
    PARLEY_RATE_USER_READS,      /* reads, by user id */
    PARLEY_RATE_ADDR_WRITES,     /* writes, by client address */
    PARLEY_RATE_ADDR_READS,      /* reads, by client address */
    PARLEY_RATE_NCLASSES         /* how many classes */
} parley_rate_class_t;

/* One class's rule. interval_ns 0: no limit. */
typedef struct parley_rate_rule {
    int64_t interval_ns; /* time to gain one token: period / count */
    int64_t burst;       /* most tokens a bucket holds, >= 1 */
    uint32_t count;      /* as configured: requests per period */
    uint32_t period_s;   /* as configured: the period in seconds */
} parley_rate_rule_t;

typedef struct parley_ratelimit parley_ratelimit_t;

/*
 * The rule for a configured limit. A limit that is not set (period_s 0)
 * is off in local mode or without a default (def NULL), else it takes
 * def's rate, and def's burst unless a burst was set; count 0 is off.
 * 0, or PARLEY_EINVAL for a period over an hour or a burst over
 * PARLEY_RATELIMIT_MAX_BURST.
 */
int parley_ratelimit_rule(const parley_rate_t *rate, const parley_rate_t *def, bool local_mode,
                          parley_rate_rule_t *out);

/* True when the rule limits anything. */
bool parley_ratelimit_rule_is_on(const parley_rate_rule_t *rule);

/*
 * Make a table of about `buckets` buckets (rounded up to a power of two,
 * at least one set) for these rules, one per class (copied). seed: 16
 * bytes keying the hash of keys, or NULL for random ones (a client cannot
 * then aim its keys at another's bucket). 0 with *out, or PARLEY_ENOMEM,
 * PARLEY_EINVAL, -errno. Free with parley_ratelimit_free().
 */
int parley_ratelimit_create(const parley_rate_rule_t rules[PARLEY_RATE_NCLASSES], size_t buckets,
                            const unsigned char *seed, parley_ratelimit_t **out);
void parley_ratelimit_free(parley_ratelimit_t *rl);

/* This class's rule (borrowed for the table's life). */
const parley_rate_rule_t *parley_ratelimit_rule_of(const parley_ratelimit_t *rl,
                                                   parley_rate_class_t cls);

/*
 * May a request with this key (len bytes, any content) go ahead at now_ns
 * (monotonic nanoseconds)? True: it took one token. False: refused, and
 * *wait_ns is how long until one token is there. Always true for a class
 * with no limit. Any thread.
 */
bool parley_ratelimit_admit(parley_ratelimit_t *rl, parley_rate_class_t cls, const void *key,
                            size_t len, int64_t now_ns, int64_t *wait_ns);

/* A wait as Retry-After seconds: rounded up, at least 1. */
int64_t parley_ratelimit_retry_after_s(int64_t wait_ns);

/* Buckets in use, and live buckets dropped to make room (statistics;
 * approximate while other threads admit). */
size_t parley_ratelimit_used(parley_ratelimit_t *rl, int64_t now_ns);
uint64_t parley_ratelimit_evictions(const parley_ratelimit_t *rl);

#endif
