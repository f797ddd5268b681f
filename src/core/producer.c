/*
 * producer.c — idempotent producer validation (see producer.h).
 *
 * The rules, with (E, L) the stored epoch and last seq:
 *
 *   no state:      seq == 0 → ACCEPT; seq > 0 → GAP (expected 0)
 *   epoch <  E:    STALE_EPOCH (403, Producer-Epoch: E)
 *   epoch >  E:    seq == 0 → ACCEPT (new epoch); else BAD_EPOCH_SEQ (400)
 *   epoch == E:    seq <= L → DUPLICATE (204)
 *                  seq == L + 1 → ACCEPT
 *                  seq >  L + 1 → GAP (409, expected L + 1)
 */
#include <string.h>

#include "core/producer.h"
#include "parley/parley.h"

parley_producer_verdict_t parley_producer_check(const parley_producer_state_t *st, uint64_t epoch,
                                                uint64_t seq, parley_producer_state_t *next,
                                                uint64_t *expected)
{
    next->exists = true;
    next->epoch = epoch;
    next->last_seq = seq;
    if (!st->exists) {
        if (seq == 0)
            return PARLEY_PRODUCER_ACCEPT;
        *expected = 0;
        return PARLEY_PRODUCER_GAP;
    }
    if (epoch < st->epoch)
        return PARLEY_PRODUCER_STALE_EPOCH;
    if (epoch > st->epoch)
        return seq == 0 ? PARLEY_PRODUCER_ACCEPT : PARLEY_PRODUCER_BAD_EPOCH_SEQ;
    if (seq <= st->last_seq)
        return PARLEY_PRODUCER_DUPLICATE;
    if (seq == st->last_seq + 1)
        return PARLEY_PRODUCER_ACCEPT;
    *expected = st->last_seq + 1;
    return PARLEY_PRODUCER_GAP;
}

int parley_producer_parse_uint(const char *s, uint64_t *out)
{
    if (!s || !*s)
        return PARLEY_EINVAL;
    size_t n = strlen(s);
    if (n > 16 || (n > 1 && s[0] == '0'))
        return PARLEY_EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return PARLEY_EINVAL;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > PARLEY_PRODUCER_MAX)
        return PARLEY_EINVAL;
    *out = v;
    return 0;
}
