/*
 * wakeset.h — the streams whose live readers must wake after a commit.
 *
 * Every write rule, the writer's batches and its maintenance tick collect
 * the streams they changed in one parley_wakeset_t, and the fan-out hub
 * takes one (parley_hub_notify_set). A set names up to PARLEY_WAKESET_MAX
 * distinct stream ids; one more sets `all` instead, and then every live
 * reader wakes and re-reads its stream. A change is never dropped: waking
 * a reader whose stream did not change costs one read, missing one leaves
 * a live reader waiting for data that is already there.
 *
 * Invariants:
 *   1. ids[0..n) are distinct and n <= PARLEY_WAKESET_MAX.
 *   2. all, once set, stays set (merging never clears it).
 *
 * Threads: a set is plain data; one thread at a time.
 */
#ifndef PARLEY_STORE_WAKESET_H
#define PARLEY_STORE_WAKESET_H

#include <stdbool.h>
#include <stdint.h>

#define PARLEY_WAKESET_MAX 32 /* stream ids a set names before it becomes `all` */

typedef struct parley_wakeset {
    int64_t ids[PARLEY_WAKESET_MAX]; /* distinct stream ids to wake */
    int n;                           /* entries in ids */
    bool all;                        /* more than fit: wake every live reader */
} parley_wakeset_t;

/* An empty set. */
void parley_wakeset_init(parley_wakeset_t *ws);

/* Add a stream id; a duplicate is ignored, one past the max sets all. */
void parley_wakeset_add(parley_wakeset_t *ws, int64_t id);

/* Add every stream of src to dst (and its all flag). */
void parley_wakeset_merge(parley_wakeset_t *dst, const parley_wakeset_t *src);

/* True if the set wakes nobody. */
bool parley_wakeset_empty(const parley_wakeset_t *ws);

#endif
