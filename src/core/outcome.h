/*
 * outcome.h — what a write rule decided, as plain data for the API layer
 * to answer with.
 *
 * The rules run on the writer thread inside a request's savepoint. Each
 * fills one outcome: done (how it succeeded) or a refusal (a PARLEY_E*
 * code, with an error code and message), the JSON representation to
 * answer with (on a 409/412 the current object, which the API puts in
 * error.details.current), for stream writes the stream and the Durable
 * Streams fields to echo in headers, and the streams whose live readers
 * must wake after the commit. The HTTP status is the API's business: one
 * mapping, api/status.c.
 *
 * The rules return 0 with an outcome, or a negative error: PARLEY_ESTORE,
 * PARLEY_EFULL or PARLEY_ENOMEM when the store failed (the writer stops, as
 * for any storage failure), PARLEY_EINVAL when stored rows contradict each
 * other (a message log whose tail is not the message count, say): that one
 * request is refused with a 500 and rolled back, and the server goes on.
 *
 * An outcome is also what an Idempotency-Key's record holds
 * (parley_outcome_encode): a retry is answered by rendering it again.
 *
 * Ownership: body is a new reference owned by the outcome; release it with
 * parley_outcome_clear(). Threads: one thread at a time.
 */
#ifndef PARLEY_CORE_OUTCOME_H
#define PARLEY_CORE_OUTCOME_H

#include <assert.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/wakeset.h"

/* How a rule succeeded (when refusal is 0). */
typedef enum parley_done {
    PARLEY_DONE_OK,      /* changed or unchanged, representation in body (HTTP 200) */
    PARLEY_DONE_CREATED, /* created (201) */
    PARLEY_DONE_EMPTY,   /* changed or replayed, no body (204) */
    PARLEY_DONE_NOTHING, /* a claim found no work (204) */
} parley_done_t;

/* The Durable Streams response fields of a stream write. */
typedef struct parley_stream_echo {
    bool has_offset;   /* next is set: Stream-Next-Offset */
    uint64_t next;     /* the position it names */
    bool closed;       /* Stream-Closed: true */
    bool has_epoch;    /* Producer-Epoch */
    uint64_t epoch;    /* its value */
    bool has_seq;      /* Producer-Seq */
    uint64_t seq;      /* its value */
    bool has_gap;      /* Producer-Expected-Seq / Producer-Received-Seq */
    uint64_t expected; /* expected */
    uint64_t received; /* received */
    unsigned changes;  /* what the write changed: parley_stream_change_t bits (0: none) */
} parley_stream_echo_t;

typedef struct parley_outcome {
    int refusal;               /* 0 = done; else -PARLEY_E* (EINVAL, ENOTFOUND, EGONE, ...) */
    parley_done_t done;        /* how it succeeded, when refusal is 0 */
    const char *code;          /* API error code (static); NULL = the refusal's default */
    const char *error;         /* what went wrong (static) */
    json_t *body;              /* representation, or the current object */
    char *body_text;           /* body's canonical JSON text when the rule made it
                                  (parley_outcome_answer_text; malloc'd), or NULL */
    size_t body_text_len;      /* bytes in body_text */
    parley_stream_t meta;      /* stream writes: the stream after the write (headers) */
    parley_stream_echo_t echo; /* stream writes: protocol fields to echo */
    parley_wakeset_t wake;     /* streams to wake after the commit */
} parley_outcome_t;

/* An empty outcome (done OK, no body, nothing to wake). */
static inline void parley_outcome_init(parley_outcome_t *o)
{
    memset(o, 0, sizeof *o);
    parley_wakeset_init(&o->wake);
}

/* Refuse with err (a negative PARLEY_E*) and message (static); the API
 * picks the status and, when code is NULL here, the error code. */
static inline void parley_outcome_deny(parley_outcome_t *o, int err, const char *error)
{
    o->refusal = err;
    o->error = error;
}

/* Succeed: done. */
static inline void parley_outcome_done(parley_outcome_t *o, parley_done_t done)
{
    o->refusal = 0;
    o->done = done;
}

/* Release the body. Accepts NULL. */
static inline void parley_outcome_clear(parley_outcome_t *o)
{
    if (!o)
        return;
    json_decref(o->body);
    o->body = NULL;
    free(o->body_text);
    o->body_text = NULL;
    o->body_text_len = 0;
}

/* Refuse with err (a negative PARLEY_E*), code (static; NULL = the
 * refusal's default) and message (static); current (stolen, may be NULL)
 * is the object as it is now, for the client to merge with (ECONFLICT,
 * EPRECOND, EFENCED), or the details of another refusal. */
static inline void parley_outcome_refuse(parley_outcome_t *o, int err, const char *code,
                                         const char *error, json_t *current)
{
    assert(err < 0);
    o->refusal = err;
    o->code = code;
    o->error = error;
    parley_outcome_clear(o);
    o->body = current;
}

/* Succeed with done and body (stolen, may be NULL: no representation). */
static inline void parley_outcome_answer(parley_outcome_t *o, parley_done_t done, json_t *body)
{
    o->refusal = 0;
    o->done = done;
    parley_outcome_clear(o);
    o->body = body;
}

/* Succeed with done, body (stolen) and body's canonical JSON text (text,
 * malloc'd, stolen: codec/canonjson.h's dump of body, which the rule made
 * anyway), so that recording the outcome does not serialise body again.
 * Whoever changes body afterwards must drop the text (parley_outcome_answer
 * with the changed body does). */
static inline void parley_outcome_answer_text(parley_outcome_t *o, parley_done_t done, json_t *body,
                                              char *text, size_t len)
{
    parley_outcome_answer(o, done, body);
    o->body_text = text;
    o->body_text_len = text ? len : 0;
}

/*
 * Idempotency records (core/outcome.c): a done outcome as bytes, stored
 * with its Idempotency-Key in the write's transaction, and back. encode:
 * 0 with *blob (malloc'd, *len bytes), PARLEY_EINVAL for a refusal (never
 * recorded) or PARLEY_ENOMEM. decode: 0 with o filled (initialised here;
 * clear it after), or PARLEY_EINVAL for bytes that are not such a record.
 * parley_outcome_is_record tells a record from one stored before outcomes
 * were (a rendered reply).
 */
int parley_outcome_encode(const parley_outcome_t *o, char **blob, size_t *len);
int parley_outcome_decode(const char *blob, size_t len, parley_outcome_t *o);
/*
 * The same with the body kept as its canonical JSON text (codec/canonjson.h),
 * for writes whose answer is exactly that text (api/resource.h's render):
 * encode_text records it so; decode_text reads any record but leaves such a
 * body unparsed: *body points at its text inside blob (*body_len bytes) and
 * o->body stays NULL. A record with the body inside (parley_outcome_encode's)
 * comes back parsed in o->body, *body NULL. No body: both NULL.
 */
int parley_outcome_encode_text(const parley_outcome_t *o, char **blob, size_t *len);
int parley_outcome_decode_text(const char *blob, size_t len, parley_outcome_t *o, const char **body,
                               size_t *body_len);
/* An encode_text record's body text, without reading the rest: true with
 * *body (inside blob) and *body_len, false when blob has none. */
bool parley_outcome_text_body(const char *blob, size_t len, const char **body, size_t *body_len);
/* An encode_text record's done and body text, read from the fixed start of
 * its head ("O2\n{\"done\":N,"; encode_text writes "done" first) without
 * parsing it: all a retry answered with the body text as it is needs (a
 * record has no refusal). true with o initialised (only o->done set),
 * *body and *body_len; false when blob has no body text or does not start
 * so (decode_text reads it then). */
bool parley_outcome_text_done(const char *blob, size_t len, parley_outcome_t *o, const char **body,
                              size_t *body_len);
bool parley_outcome_is_record(const char *blob, size_t len);

#endif
