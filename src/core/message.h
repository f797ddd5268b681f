/*
 * message.h — a chat message as a client sends it: the body of
 * POST /v1/conversations/{id}/messages, checked and parsed (DESIGN.md
 * §2.3).
 *
 * A message body takes only role, content, metadata, process and
 * max_attempts (and branch, which the API takes out before the parse:
 * core/branch.h). parley_message_parse() holds every check of that body, so
 * the API runs it on the connection's thread and a bad body is refused
 * with 400 invalid_message before anything reaches the writer; the rule
 * that stores the message (core/turn.h) takes the parsed value and does
 * not look at the body again. An unknown field is a 400 that names it, so
 * a typo never silently drops data.
 *
 * Invariants of a parsed message (what parley_message_parse guarantees):
 *   1. role is one of user, assistant, system, tool.
 *   2. content is present (any JSON value).
 *   3. metadata is NULL or a JSON object (a JSON null counts as absent).
 *   4. max_attempts is from 1 to PARLEY_SESSION_MAX_ATTEMPTS (core/session.h)
 *      when the body gives it, which it may only with process true.
 *
 * Ownership: a parsed message borrows role, content and metadata from the
 * body it was parsed from; keep the body alive as long as the message.
 * Threads: pure; any thread.
 */
#ifndef PARLEY_CORE_MESSAGE_H
#define PARLEY_CORE_MESSAGE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/outcome.h"

typedef struct parley_message {
    const char *role;     /* user, assistant, system or tool (borrowed from the body) */
    json_t *content;      /* any JSON value (borrowed) */
    json_t *metadata;     /* a JSON object, or NULL for {} (borrowed) */
    bool process;         /* also create a session for the message */
    int64_t max_attempts; /* the session's attempts (the default unless given) */
} parley_message_t;

/* True if role is one of user, assistant, system, tool. Pure. */
bool parley_message_role_is_valid(const char *role);

/*
 * Check and parse a message body (borrowed; NULL counts as not an object).
 * default_attempts is the session's max_attempts when the body gives none.
 * 0 with *msg filled, or PARLEY_EINVAL with the refusal (400
 * invalid_message, and for an unknown field details.field) in out, which
 * this function initializes either way. Pure; any thread.
 */
int parley_message_parse(json_t *body, int64_t default_attempts, parley_message_t *msg,
                         parley_outcome_t *out);

#endif
