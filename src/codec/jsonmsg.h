/*
 * jsonmsg.h — JSON-mode message framing for application/json streams.
 *
 * A POST body to a JSON stream is one JSON value. If it is an array, exactly
 * one level is flattened: each element is one message; otherwise the value
 * itself is one message. This module validates the body strictly (RFC 8259,
 * including UTF-8 and a nesting limit) without building a tree, and reports
 * each message as a span of the original bytes with surrounding whitespace
 * trimmed, so stored messages are the client's bytes, byte for byte
 * (numbers are never re-formatted, big integers never lose precision).
 *
 * Pure functions, thread-safe.
 */
#ifndef PARLEY_CODEC_JSONMSG_H
#define PARLEY_CODEC_JSONMSG_H

#include <stddef.h>

#define PARLEY_JSON_MAX_DEPTH 512 /* deeper nesting is rejected */

typedef struct parley_jsonmsg_span {
    size_t off; /* first byte of the message in the body */
    size_t len; /* its length, whitespace trimmed */
} parley_jsonmsg_span_t;

/*
 * Callback for each message, in order. Return 0 to go on, non-zero to stop
 * (that value is returned by parley_jsonmsg_split).
 */
typedef int (*parley_jsonmsg_cb)(void *arg, const char *msg, size_t len);

/*
 * Validate body[0..len) as one JSON value and call cb for each message.
 * If the top level is an array it is flattened one level; an empty array
 * yields no messages and *count = 0. Validation happens before the first
 * callback, so an invalid body never produces a partial set of messages.
 *
 * Returns 0 (with *count messages), PARLEY_EINVAL with a static reason in
 * *why (when why != NULL), or the callback's non-zero return.
 */
int parley_jsonmsg_split(const char *body, size_t len, parley_jsonmsg_cb cb, void *arg,
                         size_t *count, const char **why);

/*
 * Frame a JSON-mode append without splitting it: validate body and report
 * how many messages it holds (*count) and the span [*off, *off + *len) that
 * holds them as a comma-separated list — the array's interior for an array
 * (whitespace trimmed), or the value itself otherwise. "[" span "]" is
 * then a JSON array of exactly the messages. 0 or PARLEY_EINVAL with *why.
 */
int parley_jsonmsg_frame(const char *body, size_t len, size_t *off, size_t *span_len, size_t *count,
                         const char **why);

/* Validate only: 0 or PARLEY_EINVAL with *why. */
int parley_jsonmsg_validate(const char *body, size_t len, const char **why);

#endif
