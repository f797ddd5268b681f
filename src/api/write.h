/*
 * write.h — an API write: parsed on the connection's thread into a core
 * command, run on the writer thread, answered after the commit.
 *
 * Every mutating handler goes through parley_api_write(). The handler
 * parses and checks the request (everything that needs no stored row) into
 * a command (core/command.h) and a render function. parley_api_write adds
 * what all writes share: Idempotency-Key for POST and PATCH
 * (core/idempotency.h), with the record stored in the same transaction as
 * the write, and the storage failure answers (507 on a full disk, 503
 * while stopping, 500 when a commit failed).
 *
 * Only core runs on the writer thread: parley_command_run() (the command's
 * rule, and the key's record). The rule's outcome comes back with the
 * request, and render turns it into the HTTP answer on the connection's
 * thread, after the commit. A retry with the key is answered by rendering
 * the recorded outcome again, so render must depend only on the outcome
 * and on what a retry repeats (method, path, body) — never on a fresh id
 * or a header.
 *
 * Ownership: cmd and ctx are owned by the caller's ctx from the call on
 * (cmd points into it), freed with free_ctx once the response is queued
 * (also when the call fails).
 */
#ifndef PARLEY_API_WRITE_H
#define PARLEY_API_WRITE_H

#include "api/reply.h"
#include "api/request.h"
#include "core/command.h"

/* Connection thread: the answer for o (a rule's outcome) into rp. */
typedef void (*parley_api_render_fn)(void *ctx, const parley_outcome_t *o, parley_reply_t *rp);

void parley_api_write(parley_req_t *r, const parley_command_t *cmd, parley_api_render_fn render,
                      void *ctx, void (*free_ctx)(void *));

/* As parley_api_write, for a request whose body was streamed and not kept
 * (api/blobs.c): digest (borrowed for the call) stands for the body in the
 * Idempotency-Key's fingerprint. */
void parley_api_write_digest(parley_req_t *r, const parley_command_t *cmd,
                             parley_api_render_fn render, void *ctx, void (*free_ctx)(void *),
                             const char *digest);

#endif
