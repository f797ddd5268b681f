/*
 * idempotency.h — Idempotency-Key: retried writes are applied once.
 *
 * Semantics (IETF httpapi idempotency-key draft, Stripe): a POST or PATCH
 * carrying Idempotency-Key is recorded, per user, with a fingerprint of
 * the request (method, path, body) and the response it got. The record is
 * written in the same transaction as the write itself, so it survives a
 * crash exactly when the write does.
 *
 *   same key, same fingerprint       → the stored response again
 *                                      (Idempotent-Replayed: true)
 *   same key, different fingerprint  → 422 idempotency_key_reused
 *   same key while the first request
 *   with it is still in flight       → 409 idempotency_key_in_flight
 *
 * Only successful (2xx) responses are stored: a refused request (bad
 * input, failed precondition) can be corrected and retried with the same
 * key. Records expire after the configured time (24 h by default) and are
 * purged by the writer's maintenance tick, a bounded batch at a time.
 *
 * The in-flight registry is in memory: it is only about requests this
 * process is handling right now. Threads: all functions are thread-safe.
 */
#ifndef PARLEY_CORE_IDEMPOTENCY_H
#define PARLEY_CORE_IDEMPOTENCY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Mark (owner, key) in flight: 0, or PARLEY_ECONFLICT if it already is. */
int parley_idem_begin(const char *owner, const char *key);
/* Clear the mark set by a successful parley_idem_begin(). */
void parley_idem_end(const char *owner, const char *key);

#endif
