/*
 * producer.h — idempotent producer validation (Durable Streams §5.2.1).
 *
 * A producer is identified per stream by Producer-Id; the server keeps its
 * epoch and the last accepted Producer-Seq in the same transaction as the
 * data, so a retry after a crash is still recognised. This module is the
 * pure decision: given the stored state and a request's (epoch, seq), what
 * happens. The caller (core/stream.c) applies it inside the writer's
 * transaction, which serializes every (stream, producer) pair.
 *
 * Thread-safe (no state).
 */
#ifndef PARLEY_CORE_PRODUCER_H
#define PARLEY_CORE_PRODUCER_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h" /* parley_producer_state_t, the stored record */

#define PARLEY_PRODUCER_MAX 9007199254740991ULL /* 2^53 - 1 */

typedef enum {
    PARLEY_PRODUCER_ACCEPT,        /* append; state becomes (epoch, seq) → 200 */
    PARLEY_PRODUCER_DUPLICATE,     /* already applied → 204 */
    PARLEY_PRODUCER_STALE_EPOCH,   /* epoch < stored → 403 with stored epoch */
    PARLEY_PRODUCER_BAD_EPOCH_SEQ, /* new epoch not starting at 0 → 400 */
    PARLEY_PRODUCER_GAP,           /* seq > last + 1 → 409 with expected seq */
} parley_producer_verdict_t;

/*
 * Decide a request (epoch, seq) against *st. On ACCEPT, *next holds the
 * state to store; on GAP, *expected holds the seq the server expects.
 */
parley_producer_verdict_t parley_producer_check(const parley_producer_state_t *st, uint64_t epoch,
                                                uint64_t seq, parley_producer_state_t *next,
                                                uint64_t *expected);

/*
 * Parse a Producer-Epoch / Producer-Seq header value: a decimal integer in
 * [0, 2^53-1] without sign, leading zeros or other characters.
 * 0 or PARLEY_EINVAL.
 */
int parley_producer_parse_uint(const char *s, uint64_t *out);

#endif
