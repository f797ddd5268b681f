/*
 * write.h — an API write: parsed on the connection's thread, applied on
 * the writer thread, answered after the commit.
 *
 * Every mutating handler goes through parley_api_write(). It adds what all
 * writes share: Idempotency-Key for POST and PATCH (core/idempotency.h),
 * with the record stored in the same transaction as the write, and the
 * storage failure answers (507 on a full disk, 503 while stopping, 500 when
 * a commit failed).
 *
 * The apply function runs on the writer thread inside the request's
 * savepoint. It fills the reply and returns 0 to keep its changes, a
 * positive HTTP status to refuse (its changes are rolled back; the reply it
 * set is sent), or a negative PARLEY_E* storage error. It may add stream
 * ids to w->wake (store/wakeset.h) to wake live readers after the commit.
 *
 * Ownership: ctx is owned by the write from the call on and freed with
 * free_ctx once the response is queued (also when the call fails).
 */
#ifndef PARLEY_API_WRITE_H
#define PARLEY_API_WRITE_H

#include "api/reply.h"
#include "api/request.h"
#include "store/writer.h"

typedef int (*parley_api_apply_fn)(void *ctx, parley_db_t *db, parley_reply_t *reply,
                                   parley_write_t *w);

void parley_api_write(parley_req_t *r, parley_api_apply_fn fn, void *ctx, void (*free_ctx)(void *));

#endif
