/*
 * session.h — sessions: one assistant turn being produced, with its state
 * machine, its lease and its token stream (DESIGN.md §2.3).
 *
 * A session is created with a message ("process": true), waits as
 * pending until a worker claims it, and is processing while the worker
 * holds a lease that heartbeats extend. The worker streams output into the
 * session's internal JSON-mode stream "_parley/session/<id>" and ends the
 * turn with complete (the assistant message is appended to the
 * conversation: core/turn.c, which runs this module's begin and finish
 * around it), fail, or await (it needs input, e.g. a tool approval,
 * which the user gives with input). The user may cancel at any time before
 * the end. A lease that runs out hands the session back to pending with
 * attempt + 1 (and an {"type":"attempt"} marker in the stream), or fails it
 * once max_attempts attempts have run out.
 *
 * The state machine is a table (parley_session_next), drawn in session.c
 * with the function that performs each transition. Illegal combinations
 * are refused with 409 and the current session.
 *
 * Dependencies: a session reads its conversation (visibility, for a claim
 * by conversation_id) and never writes one; what writes both is
 * core/turn.c.
 *
 * Ownership: requests borrow their strings and JSON values; outcomes own
 * their body (core/outcome.h). Threads: parley_session_parse on the
 * connection's thread; the apply functions on the writer thread; the
 * table functions are pure and thread-safe.
 */
#ifndef PARLEY_CORE_SESSION_H
#define PARLEY_CORE_SESSION_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/outcome.h"
#include "store/store.h"

#define PARLEY_SESSION_PATH_PREFIX     "_parley/session/" /* token stream paths */
#define PARLEY_SESSION_MAX_ATTEMPTS    100                /* largest max_attempts accepted */
#define PARLEY_SESSION_LEASE_DEFAULT_S 60                 /* claim's default lease_seconds */
#define PARLEY_SESSION_LEASE_MAX_S     3600               /* largest lease_seconds */

typedef enum parley_session_state {
    PARLEY_SESSION_PENDING,        /* waiting for a worker */
    PARLEY_SESSION_PROCESSING,     /* a worker holds the lease */
    PARLEY_SESSION_AWAITING_INPUT, /* the worker asked the user something */
    PARLEY_SESSION_COMPLETED,      /* done; the reply is in the conversation */
    PARLEY_SESSION_FAILED,         /* given up (worker's fail, or leases ran out) */
    PARLEY_SESSION_CANCELLED,      /* stopped by the user */
    PARLEY_SESSION_NSTATES
} parley_session_state_t;

typedef enum parley_session_action {
    PARLEY_SESSION_CLAIM,     /* worker takes the oldest pending session */
    PARLEY_SESSION_HEARTBEAT, /* worker extends its lease */
    PARLEY_SESSION_APPEND,    /* worker appends output to the stream */
    PARLEY_SESSION_AWAIT,     /* worker asks for input */
    PARLEY_SESSION_INPUT,     /* user answers */
    PARLEY_SESSION_COMPLETE,  /* worker finishes with the reply */
    PARLEY_SESSION_FAIL,      /* worker gives up */
    PARLEY_SESSION_CANCEL,    /* user stops it */
    PARLEY_SESSION_EXPIRE,    /* the lease ran out (writer's maintenance) */
    PARLEY_SESSION_NACTIONS
} parley_session_action_t;

/*
 * The table: the state after action in state from, in *to. 0, or
 * PARLEY_ECONFLICT when the action is not allowed there. EXPIRE answers
 * PENDING; the caller turns it into FAILED when no attempt is left.
 * Pure.
 */
int parley_session_next(parley_session_state_t from, parley_session_action_t action,
                        parley_session_state_t *to);

/* Names as in the API ("pending", "awaiting_input"; "claim", "heartbeat"). */
const char *parley_session_state_name(parley_session_state_t s);
const char *parley_session_action_name(parley_session_action_t a);
/* Parse a name. 0, or PARLEY_EINVAL. Pure. */
int parley_session_state_parse(const char *name, parley_session_state_t *out);
int parley_session_action_parse(const char *name, parley_session_action_t *out);

/* The token stream path of session id into out. */
void parley_session_stream_path(const char *id, char *out, size_t cap);

/* True if the caller may see s (its conversation's owner, or the admin). */
bool parley_session_visible(const parley_sess_t *s, const char *user, bool admin);

/* The representation {id, conversation_id, message_id, status, attempt,
 * max_attempts, lease_expires_at, error, request, input,
 * result_message_id, created_at, updated_at, stream} (new reference, or
 * NULL when memory runs out or stored text is corrupt). Any thread. */
json_t *parley_session_json(const parley_sess_t *s);

#define PARLEY_SESSION_ETAG_LEN 24 /* characters of an ETag, quotes included */

/*
 * The strong ETag of s's representation into out: a quoted 22-character
 * base64url digest (the first 128 bits of SHA-256) of every field that can
 * change — status, attempt, max_attempts, lease, error, request, input,
 * result_message_id, updated_at — and the id. Two rows that render alike
 * have the same tag; a change of any rendered field changes it, even two
 * changes in one millisecond. Costs one hash of the row, no JSON. Pure;
 * any thread.
 */
void parley_session_etag(const parley_sess_t *s, char out[PARLEY_SESSION_ETAG_LEN + 1]);

/*
 * Create a pending session for message_id in conversation conversation_id
 * owned by owner (writer thread, inside the message's transaction; the
 * caller has checked the conversation): its row, its empty token stream,
 * and the session.updated event (from null to pending). *sess is the new
 * session (new reference).
 */
int parley_session_create(parley_db_t *db, const char *conversation_id, const char *owner,
                          const char *id, const char *message_id, int64_t max_attempts,
                          json_t **sess, parley_outcome_t *out);

/* An action's body, parsed by parley_session_parse. The JSON values are
 * borrowed from the request's body. */
typedef struct parley_session_args {
    bool parsed;                 /* filled by parley_session_parse (apply refuses otherwise) */
    int64_t lease_ms;            /* lease_seconds * 1000, 0 when absent */
    int64_t attempt;             /* the worker's attempt number, -1 when absent */
    const char *conversation_id; /* claim: only from this conversation, NULL for any */
    json_t *request;             /* await: what the worker asks */
    json_t *data;                /* input: the user's answer */
    json_t *content;             /* complete: the assistant's reply */
    json_t *metadata;            /* complete: an object, or NULL for {} */
    json_t *error;               /* fail: the error, NULL for {"reason":"failed"} */
} parley_session_args_t;

/* A session action request (claim, heartbeat, await, input, complete,
 * fail, cancel). Bodies are borrowed. */
typedef struct parley_session_req {
    parley_session_action_t action; /* what to do */
    const char *id;                 /* the session (not for claim) */
    const char *user;               /* the caller */
    bool admin;                     /* the caller is the admin (worker actions need it) */
    json_t *body;                   /* the request body object, or NULL for none */
    const char *reply_id;           /* complete: new id for the assistant message */
    parley_session_args_t args;     /* body parsed by parley_session_parse */
} parley_session_req_t;

/*
 * Check req's caller and body for its action and fill req->args
 * (connection's thread, before the write is submitted; pure). 0, or
 * PARLEY_EINVAL with the refusal in out: 403 forbidden (a worker action
 * for a non-admin, checked first, as the writer would), 400
 * invalid_request (for an unknown field with details.field and
 * details.action). out is initialized here.
 */
int parley_session_parse(parley_session_req_t *req, parley_outcome_t *out);

/*
 * Run an action other than complete (core/turn.h) and append (writer
 * thread, in the request's savepoint; req parsed by parley_session_parse).
 * 0 with the outcome: 200 with the session after the action, 204 for a
 * claim that found nothing, or a refusal that changed nothing: 403
 * forbidden (worker actions for a non-admin), 404 not_found, 409
 * invalid_transition or stale_attempt (with the current session). A
 * negative error otherwise (PARLEY_EINVAL for an unparsed request or an
 * action this function does not run). out is initialized here.
 */
int parley_session_apply(parley_db_t *db, const parley_session_req_t *req, parley_outcome_t *out);

/*
 * The two halves of an action, for a rule that does more in between
 * (core/turn.c's completion). Writer thread, in the request's savepoint.
 *
 * begin: the checks before any change — 403 for a worker action by a
 * non-admin, 404, 409 stale_attempt (req->args.attempt) and
 * invalid_transition. 0 with *s loaded (the caller clears it) and *from,
 * *to the transition; 0 with a refusal in out (out->refusal) and *s
 * empty; or a negative error. out must be initialized.
 *
 * finish: store *s in state to (the caller has set the action's fields),
 * close its stream when to is final, emit session.updated when the state
 * changed, and answer 200 with the session in out.
 */
int parley_session_begin_action(parley_db_t *db, const parley_session_req_t *req, parley_sess_t *s,
                                parley_session_state_t *from, parley_session_state_t *to,
                                parley_outcome_t *out);
int parley_session_finish_action(parley_db_t *db, parley_sess_t *s, parley_session_state_t from,
                                 parley_session_state_t to, int64_t now, parley_outcome_t *out);

/*
 * May output be appended to session id's stream now (writer thread, in the
 * append's savepoint)? 0 with out->status 0 and *path filled when it may;
 * else a refusal in out (404, 409 with the current session). attempt >= 0
 * also checks it is the current attempt (a stale worker's fence).
 */
int parley_session_check_append(parley_db_t *db, const char *id, const char *user, bool admin,
                                int64_t attempt, char *path, size_t cap, parley_outcome_t *out);

/*
 * Writer maintenance: sessions whose lease has run out go back to pending
 * with attempt + 1 and an {"type":"attempt","attempt":N} marker in their
 * stream, or to failed ({"reason":"lease_expired"}) when it was the last
 * attempt. A bounded batch per call; the streams to wake join wake.
 */
int parley_session_expire_leases(parley_db_t *db, int64_t now_ms, parley_wakeset_t *wake);

#endif
