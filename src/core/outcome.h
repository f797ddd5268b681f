/*
 * outcome.h — what a chat-model rule (conversation, message, session,
 * snapshot) decided, as plain data for the API layer to answer with.
 *
 * The rules in core/conversation.c, core/session.c and core/snapshot.c run
 * on the writer thread inside a request's savepoint. Each fills one
 * outcome: an HTTP status, for a refusal an error code and message, the
 * JSON representation to answer with (for a 409/412 the current object,
 * which the API puts in error.details.current), and the streams whose live
 * readers must wake after the commit (the resource's own streams and the
 * feeds its events went to).
 *
 * The rules return 0 with an outcome, or a negative error: PARLEY_ESTORE,
 * PARLEY_EFULL or PARLEY_ENOMEM when the store failed (the writer stops, as
 * for any storage failure), PARLEY_EINVAL when stored rows contradict each
 * other (a message log whose tail is not the message count, say): that one
 * request is refused with a 500 and rolled back, and the server goes on.
 *
 * Ownership: body is a new reference owned by the outcome; release it with
 * parley_outcome_clear(). Threads: one thread at a time.
 */
#ifndef PARLEY_CORE_OUTCOME_H
#define PARLEY_CORE_OUTCOME_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/wakeset.h"

typedef struct parley_outcome {
    int status;            /* HTTP status; >= 400 means refused */
    const char *code;      /* snake_case error code (static) */
    const char *error;     /* what went wrong (static) */
    json_t *body;          /* representation, or the current object */
    parley_wakeset_t wake; /* streams to wake after the commit */
} parley_outcome_t;

/* An empty outcome (status 0, no body). */
static inline void parley_outcome_init(parley_outcome_t *o)
{
    o->status = 0;
    o->code = o->error = NULL;
    o->body = NULL;
    parley_wakeset_init(&o->wake);
}

/* Release the body. Accepts NULL. */
static inline void parley_outcome_clear(parley_outcome_t *o)
{
    if (!o)
        return;
    json_decref(o->body);
    o->body = NULL;
}

/* Refuse with status, code and message; current (stolen, may be NULL) is
 * the object as it is now, for the client to merge with. */
static inline void parley_outcome_refuse(parley_outcome_t *o, int status, const char *code,
                                         const char *error, json_t *current)
{
    o->status = status;
    o->code = code;
    o->error = error;
    json_decref(o->body);
    o->body = current;
}

/* Succeed with status and body (stolen, may be NULL). */
static inline void parley_outcome_ok(parley_outcome_t *o, int status, json_t *body)
{
    o->status = status;
    json_decref(o->body);
    o->body = body;
}

#endif
