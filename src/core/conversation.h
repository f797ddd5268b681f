/*
 * conversation.h — conversations and their message logs: the rules
 * (DESIGN.md §2.3).
 *
 * A conversation is a row (store.h parley_conv_t) plus its message log, an
 * internal JSON-mode stream at "_parley/conv/<id>" holding one stream
 * message per chat message: message seq N is stream position N - 1, so the
 * log can be read (catch-up, long-poll, SSE, resume by offset) like any
 * Durable Stream, and a snapshot is a fork of it.
 *
 * A message is stored as the canonical JSON (codec/canonjson.h) of
 *     {id, conversation_id, seq, role, content, metadata, session_id,
 *      created_at}
 * so what a client sent comes back with the same values: strings byte for
 * byte, numbers as the shortest text that reads back to the same number,
 * object members in sorted order.
 *
 * Invariants:
 *   1. message_count == the log stream's tail; seq is 1..message_count with
 *      no gap, assigned on the writer thread in commit order.
 *   2. version grows by one with every change of the conversation object
 *      (title, metadata, and message_count / last_message_at when a message
 *      is added), so "<version>" is an exact ETag.
 *   3. activity is a global counter taken at creation and at every new
 *      message: the list order "most recently active first".
 *   4. Every change emits its event (conversation.created|updated|deleted,
 *      message.created) to the owner's feed in the same transaction.
 *   5. Every write of a conversation row is in this file; the modules
 *      above it (core/session.c reads, core/turn.c writes through these
 *      functions) never put a conversation row themselves.
 *
 * This module does not know sessions: a message with its session, a
 * turn's completion and the delete cascade are core/turn.h's.
 *
 * Threads: parley_conversation_parse on the connection's thread (pure);
 * the apply, find, tombstone and add_message functions on the writer
 * thread; the read helpers on any thread with its own connection; the
 * rest are pure.
 */
#ifndef PARLEY_CORE_CONVERSATION_H
#define PARLEY_CORE_CONVERSATION_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/outcome.h"
#include "store/store.h"
#include "util/buf.h"

#define PARLEY_CONV_PATH_PREFIX "_parley/conv/" /* message log stream paths */

typedef enum {
    PARLEY_CONV_CREATE, /* POST /v1/conversations */
    PARLEY_CONV_PATCH,  /* PATCH /v1/conversations/{id} (merge patch) */
    PARLEY_CONV_DELETE, /* DELETE /v1/conversations/{id} */
} parley_conv_op_t;

typedef struct parley_conv_req {
    parley_conv_op_t op; /* what to do */
    const char *id;      /* create: the new id; otherwise the target */
    const char *user;    /* the caller (owner of what it creates) */
    bool admin;          /* the caller reaches every user's conversations */
    json_t *body;        /* create: {title?, metadata?}; patch: the merge patch (borrowed,
                            checked by parley_conversation_parse) */
    bool has_if_match;   /* If-Match given (patch, delete) */
    int64_t if_match;    /* its version */
} parley_conv_req_t;

/* The log stream path of conversation id into out. */
void parley_conversation_stream_path(const char *id, char *out, size_t cap);

/* True if c is live and the caller may see it (owner or admin). Pure. */
bool parley_conversation_visible(const parley_conv_t *c, const char *user, bool admin);

/* The representation {id, title, metadata, owner, version, created_at,
 * updated_at, message_count, last_message_at} (new reference; NULL when
 * memory runs out or stored text is corrupt). Any thread. */
json_t *parley_conversation_json(const parley_conv_t *c);

/*
 * Check a request body for op (connection's thread, before the write is
 * submitted; pure): create takes an optional object {title?, metadata?},
 * patch a merge patch object on those two, delete no body. 0, or
 * PARLEY_EINVAL with the refusal (400 invalid_conversation, for an
 * unknown field with details.field) in out, which is initialized here.
 */
int parley_conversation_parse(parley_conv_op_t op, json_t *body, parley_outcome_t *out);

/*
 * Create or patch (writer thread, in the request's savepoint; the body
 * checked by parley_conversation_parse). 0 with the outcome in *out: 201
 * or 200 with the conversation, or a refusal (404 not_found, 412
 * precondition_failed with the current conversation) that changed
 * nothing; or a negative storage error (PARLEY_EINVAL for a delete, which
 * is core/turn.h's, or an unchecked body). out is initialized here.
 */
int parley_conversation_apply(parley_db_t *db, const parley_conv_req_t *req, parley_outcome_t *out);

/*
 * Read req->id for a write by req->user (writer thread): 0 with *c loaded
 * (the caller clears it) when it is live, visible and matches If-Match;
 * 0 with a refusal in out (404 not_found; 412 precondition_failed with
 * the current conversation) and *c empty otherwise; or a negative storage
 * error. out must be initialized.
 */
int parley_conversation_find(parley_db_t *db, const parley_conv_req_t *req, parley_conv_t *c,
                             parley_outcome_t *out);

/*
 * The last step of a delete (writer thread): delete c's log stream (forks
 * made by snapshots keep reading it), turn c into a tombstone (title and
 * metadata dropped, version + 1), emit conversation.deleted, and answer
 * 204 in out. c is updated in place. The caller has removed what hangs on
 * the conversation first (core/turn.c: its sessions).
 */
int parley_conversation_tombstone(parley_db_t *db, parley_conv_t *c, parley_outcome_t *out);

/*
 * Add one message to the log of c (a live conversation row the caller has
 * read in this transaction; updated in place and stored). content and
 * metadata are borrowed; metadata may be NULL ({}), session_id may be
 * NULL. *msg (new reference) is the stored message. Emits message.created.
 * text, when not NULL, receives *msg's canonical JSON text (malloc'd, the
 * caller frees it; *len bytes), the bytes stored in the log, so that the
 * answer need not be serialised again (parley_outcome_answer_text).
 * Writer thread; used by core/turn.c (a posted message, a completed
 * turn's reply).
 */
int parley_conversation_add_message(parley_db_t *db, parley_conv_t *c, const char *id,
                                    const char *role, json_t *content, json_t *metadata,
                                    const char *session_id, json_t **msg, char **text, size_t *len,
                                    parley_outcome_t *out);

/*
 * Add one message to a branch of c other than the main one (core/branch.h):
 * appended to the branch's log at log_path (made with the branch), seq =
 * its messages + 1 along that branch. The row's version, updated_at,
 * last_message_at and activity move; message_count (the main branch's)
 * does not. message.created carries data.branch. As add_message
 * otherwise; writer thread, used by core/turn.c.
 */
int parley_conversation_add_branch_message(parley_db_t *db, parley_conv_t *c, const char *log_path,
                                           const char *branch, const char *id, const char *role,
                                           json_t *content, json_t *metadata,
                                           const char *session_id, json_t **msg,
                                           parley_outcome_t *out);

/*
 * Read one page of a message log (the stream *log: a conversation's, or a
 * snapshot's fork of it): messages with seq > after, at most limit of them,
 * stopping early once max_bytes are collected (at least one message is
 * returned when there is one). The messages are appended to out as their
 * stored JSON texts joined by ','; *count is how many, *last_seq the seq of
 * the last one, *more whether further messages exist. Any thread with its
 * own connection (inside a read transaction for a consistent page).
 */
int parley_conversation_read_page(parley_db_t *db, const parley_stream_t *log, uint64_t after,
                                  int limit, size_t max_bytes, parley_buf_t *out, int *count,
                                  uint64_t *last_seq, bool *more);

#endif
