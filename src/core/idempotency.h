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
 * A record holds the outcome the write's rule decided (core/outcome.h,
 * parley_outcome_encode), and the API answers a retry by rendering it
 * again; records stored before that hold the rendered HTTP reply itself,
 * which the API still answers with (parley_outcome_is_record tells the
 * two apart) until they expire.
 *
 * The in-flight registry is in memory: it is only about requests this
 * process is handling right now. Threads: all functions are thread-safe.
 */
#ifndef PARLEY_CORE_IDEMPOTENCY_H
#define PARLEY_CORE_IDEMPOTENCY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* A request's key and what it is checked against. */
typedef struct parley_idem_key {
    const char *owner;       /* key scope: the caller */
    const char *key;         /* the Idempotency-Key */
    const char *fingerprint; /* of this request (64 hex digits) */
    int64_t ttl_ms;          /* record lifetime */
    bool canonical_body;     /* record the body as its canonical text (outcome.h) */
} parley_idem_key_t;

/* What parley_idem_find found. */
typedef enum parley_idem_found {
    PARLEY_IDEM_NONE,   /* no live record: run the request */
    PARLEY_IDEM_SAME,   /* recorded for this request: answer with the record */
    PARLEY_IDEM_REUSED, /* recorded for another request: 422 */
} parley_idem_found_t;

/*
 * Look k up in db (any connection, inside a transaction). 0 with *found,
 * and with the record in *blob (malloc'd, *len bytes) when SAME; or a
 * store error.
 */
int parley_idem_find(parley_db_t *db, const parley_idem_key_t *k, parley_idem_found_t *found,
                     char **blob, size_t *len);
/* The same, with the record's creation time in *created_ms when SAME. */
int parley_idem_find_at(parley_db_t *db, const parley_idem_key_t *k, parley_idem_found_t *found,
                        char **blob, size_t *len, int64_t *created_ms);

/*
 * Each thread's recent records: a small cache in front of the store for
 * retries answered outside the writer (api/write.c). A record never
 * changes while it is live (a key is only recorded again once its record
 * has expired, parley_idem_record), so a copy is the record until its TTL
 * runs out, which parley_idem_cached checks as parley_idem_find does; the
 * one write that moves live records, a user's transfer to another
 * (core/transfer.h), calls parley_idem_forget_all once it has committed,
 * and every copy read before is dropped; a copy is also read again after
 * a minute, so a transfer made by another node sharing the database is
 * seen here within a minute.
 * parley_idem_keep copies a record found SAME (up to 16 KiB; 64 per
 * thread, a newer one takes an older one's slot), with the generation
 * taken before the read that found it (parley_idem_generation).
 * parley_idem_cached: SAME with *blob (borrowed: valid until this thread's
 * next call of these functions), REUSED (kept for another fingerprint),
 * or NONE (not kept, expired or forgotten: look in the store). A thread's
 * copies are freed when it ends.
 */
#define PARLEY_IDEM_NAME_MAX 520 /* owner, '\0', key */
parley_idem_found_t parley_idem_cached(const parley_idem_key_t *k, const char **blob, size_t *len);
uint64_t parley_idem_generation(void);
void parley_idem_keep(const parley_idem_key_t *k, uint64_t generation_read, int64_t created_ms,
                      const char *blob, size_t len);
void parley_idem_forget_all(void);
/*
 * Record blob for k (writer, in the write's savepoint): insert if absent or
 * expired. 0, PARLEY_EEXIST when a live record is there already (another
 * request with the key committed first), or a store error.
 */
int parley_idem_record(parley_db_t *db, const parley_idem_key_t *k, const char *blob, size_t len);

/* Mark (owner, key) in flight: 0, or PARLEY_ECONFLICT if it already is. */
int parley_idem_begin(const char *owner, const char *key);
/* Clear the mark set by a successful parley_idem_begin(). */
void parley_idem_end(const char *owner, const char *key);

#endif
