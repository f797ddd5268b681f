/*
 * turn.h — a message plus its turn: the rules that change a conversation
 * and its sessions together (DESIGN.md §2.3).
 *
 * Three writes span both nouns, and they all live here:
 *   - posting a message: the message is appended to the conversation and,
 *     with "process": true, a pending session for it is created in the
 *     same transaction;
 *   - completing a turn: the assistant's message is appended to the
 *     conversation and the session becomes completed (its stream closed)
 *     in the same transaction;
 *   - deleting a conversation: its sessions and their token streams go,
 *     then the conversation becomes a tombstone.
 * Everything else about a conversation is core/conversation.h's, about a
 * session core/session.h's; this module adds no rule of its own beyond the
 * order in which it calls theirs.
 *
 * Ownership: requests borrow their strings and JSON values; outcomes own
 * their body (core/outcome.h). Threads: writer thread only, each call in
 * the request's savepoint (a refusal or an error rolls back all of it).
 */
#ifndef PARLEY_CORE_TURN_H
#define PARLEY_CORE_TURN_H

#include <stdbool.h>

#include "core/branch.h"
#include "core/conversation.h"
#include "core/message.h"
#include "core/outcome.h"
#include "core/session.h"
#include "store/store.h"

/* POST /v1/conversations/{id}/messages, its body parsed. */
typedef struct parley_turn_post_req {
    const char *conversation_id; /* where to append */
    const char *user;            /* the caller */
    bool admin;                  /* reaches every user's conversations */
    parley_message_t message;    /* the body, parsed by parley_message_parse */
    const char *message_id;      /* new id for the message */
    const char *session_id;      /* new id for the session (used with process) */
    const char *branch;          /* the branch to append to, NULL for the active one */
} parley_turn_post_req_t;

/*
 * Append a message, and with message.process a pending session for it
 * (writer thread), on req->branch or the active branch. 0 with 201 and the
 * message in out (with process also its session_id and the created
 * "session"; on a branch other than main also "branch"), or 404 not_found
 * (conversation or branch); or a negative error. out is initialized here.
 */
int parley_turn_post(parley_db_t *db, const parley_turn_post_req_t *req, parley_outcome_t *out);

/* The branch writes (core/branch.h). */
typedef enum parley_turn_branch_op {
    PARLEY_TURN_EDIT,       /* POST .../messages/{mid}/edit */
    PARLEY_TURN_REGENERATE, /* POST .../messages/{mid}/regenerate */
    PARLEY_TURN_ACTIVATE,   /* PATCH .../branches/{bid} {"active": true} */
} parley_turn_branch_op_t;

typedef struct parley_turn_branch_req {
    parley_turn_branch_op_t op;  /* what to do */
    const char *conversation_id; /* the conversation */
    const char *user;            /* the caller */
    bool admin;                  /* reaches every user's conversations */
    const char *branch;          /* edit, regenerate: where the message is read (NULL: the
                                    active branch); activate: the branch to activate */
    const char *message_id;      /* edit, regenerate: the message */
    parley_message_t message;    /* edit: the new message (role user; parsed) */
    int64_t max_attempts;        /* regenerate: the session's attempts */
    const char *new_branch;      /* edit, regenerate: id for the new branch */
    const char *new_message;     /* edit: id for the new message */
    const char *session_id;      /* edit with process, regenerate: id for the session */
} parley_turn_branch_req_t;

/*
 * A branch write (writer thread), after the conversation's checks (404):
 *   edit        the user message req->message_id along req->branch gets a
 *               sibling: a new branch at its position holding the new
 *               message (and with message.process a pending session for
 *               it, which answers into that branch), made active; 201 with
 *               the message, its "branch" and its "session".
 *   regenerate  the assistant message gets a sibling: a new branch at its
 *               position, empty, made active, and a pending session for
 *               the message before it whose completion appends the new
 *               answer there; 201 {branch, session}.
 *   activate    200 with the branch, now active.
 * Refusals: 404 (no such branch, no such message on it), 400
 * invalid_message (edit of a message that is not the user's, regenerate
 * of one that is not an assistant answer after a message), 409
 * too_many_branches. 0 with the outcome in out, or a negative error; out
 * is initialized here.
 */
int parley_turn_branch(parley_db_t *db, const parley_turn_branch_req_t *req, parley_outcome_t *out);

/*
 * POST /v1/sessions/{id}/complete (writer thread; req->action is
 * PARLEY_SESSION_COMPLETE and req parsed by parley_session_parse): the
 * session's checks (403, 404, 409 stale_attempt or invalid_transition
 * with the current session), then the reply as an assistant message with
 * id req->reply_id, then the session completed with result_message_id set
 * and its stream closed. 0 with 200 and the session, or the refusal, in
 * out; or a negative error (PARLEY_EINVAL when the session's conversation
 * is gone, which a delete never leaves behind). out is initialized here.
 */
int parley_turn_complete(parley_db_t *db, const parley_session_req_t *req, parley_outcome_t *out);

/*
 * DELETE /v1/conversations/{id} (writer thread; req->op is
 * PARLEY_CONV_DELETE): 404, or 412 with the current conversation on a
 * stale If-Match; else every session of the conversation and its token
 * stream removed, then parley_conversation_tombstone (204). 0 with the
 * outcome in out, or a negative error. out is initialized here.
 */
int parley_turn_delete_conversation(parley_db_t *db, const parley_conv_req_t *req,
                                    parley_outcome_t *out);

#endif
