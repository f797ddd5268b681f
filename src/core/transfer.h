/*
 * transfer.h — moving all of one user's data to another user (POST
 * /v1/users/{from}/transfer, api/users.c): an anonymous user who signs in
 * keeps everything they did.
 *
 * One rule, in one transaction on the writer: every row of every owned
 * kind (store/owned.h: conversations with their message logs, sessions
 * with their token streams, snapshots with their forks, the user's own
 * streams, documents, idempotency records) becomes `to`'s; the search
 * index follows its conversations. Stream paths do not change (they are
 * the streams' URLs, which clients hold with their offsets): a path that
 * names the old user (u/<from>/...) keeps its name and is now `to`'s. The
 * user's change feed is the principal's and is not moved: both feeds get
 * a `user.transferred` event, and the old user's feed keeps only that
 * event (its earlier events, which named the moved data, are trimmed as
 * retention trims). Documents whose (collection, id) `to` already has:
 * `to`'s live document is kept and `from`'s dropped; a tombstone of `to`'s
 * gives way to `from`'s live document (continuing above its version).
 *
 * Idempotent: the answer ({from, to, moved, dropped}, counts per kind) is
 * recorded per `from`; a call that finds nothing left to move and a
 * record naming the same `to` answers the recorded answer again and
 * writes nothing (no events). A call that moves rows made since adds them
 * to the recorded counts.
 *
 * Threads: parse anywhere; apply on the writer.
 */
#ifndef PARLEY_CORE_TRANSFER_H
#define PARLEY_CORE_TRANSFER_H

#include <stdbool.h>

#include "core/outcome.h"
#include "store/store.h"

typedef struct parley_transfer_req {
    const char *from; /* the user whose data moves */
    const char *to;   /* the user who gets it */
} parley_transfer_req_t;

/* Move req->from's data to req->to (see above); out answers 200 with the
 * transfer's answer. Writer. */
int parley_transfer_apply(parley_db_t *db, const parley_transfer_req_t *req, parley_outcome_t *out);

#endif
